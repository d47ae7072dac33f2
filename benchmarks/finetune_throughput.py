"""Fine-tuning throughput: `lotterylib.core.training.fine_tune` against the Hugging Face `Trainer`.

Same model, data, batch size, epochs, learning rate and thread count, side by side in one run:
- lotterylib: dynamic padding, length-grouped random batches, a plain AdamW loop;
- Trainer, fixed: every example padded to `--max-seq-len` (what `run_glue.py` does by default);
- Trainer, dynamic: `DataCollatorWithPadding` and `train_sampling_strategy="group_by_length"`.

Prints examples/s per task, lotterylib's speed-up over each, and the share of this machine's fp32 matmul
peak (one thread) that each reaches, counting 6 x (non-embedding parameters) FLOPs per real (not padding)
token. fp32 throughout (`--bf16` for bfloat16 autocast in all three). Times are process CPU time: with one
thread that is the wall time of an unloaded core, and a busy shared machine does not distort the table
(with `--threads N` divide by N for the wall time of an idle machine).

    python benchmarks/finetune_throughput.py                     # 256 examples per task, 1 thread: minutes
    python benchmarks/finetune_throughput.py --examples 2000 --threads 2 --tasks SST-2 MRPC
"""
from __future__ import annotations

import argparse
import os
import tempfile
import time

import numpy as np
import torch
from transformers.utils import logging as hf_logging

from lotterylib.core.data import Encoded, encode, load_split, subsample
from lotterylib.core.finetuning import build_model
from lotterylib.core.models import load_tokenizer
from lotterylib.core.tasks import get_task
from lotterylib.core.training import TrainConfig, fine_tune
from lotterylib.workflow.timing import matmul_gflops


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="minilm-l6")
    p.add_argument("--tasks", nargs="+", default=["SST-2", "MRPC", "RTE", "CoLA"])
    p.add_argument("--examples", type=int, default=256, help="train examples per task (seeded subsample)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--epochs", type=float, default=1.0)
    p.add_argument("--max-seq-len", type=int, default=128)
    p.add_argument("--learning-rate", type=float, default=1e-4)
    p.add_argument("--bf16", action="store_true", help="bfloat16 autocast in all three")
    p.add_argument("--glue-dir", default=os.environ.get("LOTTERY_GLUE_DIR", ""))
    p.add_argument("--seed", type=int, default=1)
    return p.parse_args(argv)


class TokenDataset(torch.utils.data.Dataset):
    """Tokenised examples as the Trainer reads them; `pad_to` pads every one to a fixed length."""

    def __init__(self, enc: Encoded, pad_to: int | None = None):
        self.enc, self.pad_to = enc, pad_to

    def __len__(self) -> int:
        return len(self.enc.input_ids)

    def __getitem__(self, i: int) -> dict:
        ids, tts = self.enc.input_ids[i], self.enc.token_type_ids[i]
        pad = (self.pad_to - len(ids)) if self.pad_to else 0
        return {"input_ids": ids + [0] * pad, "token_type_ids": tts + [0] * pad,
                "attention_mask": [1] * len(ids) + [0] * pad, "labels": self.enc.labels[i].item()}


def run_lotterylib(args, task, enc: Encoded) -> float:
    net = build_model(args.model, task, args.seed, device=torch.device("cpu"))
    cfg = TrainConfig(learning_rate=args.learning_rate, batch_size=args.batch_size, epochs=args.epochs,
                      bf16=args.bf16)
    start = time.process_time()
    fine_tune(net, task, enc, cfg, args.seed, progress=False)
    return time.process_time() - start


def run_trainer(args, task, enc: Encoded, tokenizer, dynamic: bool) -> float:
    from transformers import (DataCollatorWithPadding, PrinterCallback, Trainer, TrainingArguments,
                              default_data_collator)

    net = build_model(args.model, task, args.seed, device=torch.device("cpu"))
    with tempfile.TemporaryDirectory() as out:
        targs = TrainingArguments(
            output_dir=out, per_device_train_batch_size=args.batch_size, num_train_epochs=args.epochs,
            learning_rate=args.learning_rate, weight_decay=0.0, adam_epsilon=1e-8, warmup_steps=0,
            lr_scheduler_type="linear", max_grad_norm=1.0, seed=args.seed, use_cpu=True, bf16=args.bf16,
            save_strategy="no", eval_strategy="no", logging_strategy="no", report_to=[], disable_tqdm=True,
            dataloader_num_workers=0, train_sampling_strategy="group_by_length" if dynamic else "random")
        trainer = Trainer(model=net, args=targs, train_dataset=TokenDataset(enc, None if dynamic else args.max_seq_len),
                          data_collator=DataCollatorWithPadding(tokenizer) if dynamic else default_data_collator)
        trainer.remove_callback(PrinterCallback)   # it prints the final metrics dict
        start = time.process_time()
        trainer.train()
        return time.process_time() - start


def flops_per_token(model: str) -> float:
    """6 x non-embedding parameters: the forward and backward matmul FLOPs of one token."""
    net = build_model(model, get_task("SST-2"), 0, device=torch.device("cpu"))
    embed = sum(p.numel() for p in net.base_model.embeddings.parameters())
    return 6.0 * (sum(p.numel() for p in net.parameters()) - embed)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    hf_logging.set_verbosity_error()
    torch.set_num_threads(args.threads)
    tokenizer = load_tokenizer(args.model)
    peak = matmul_gflops()
    per_token = flops_per_token(args.model)
    run_trainer(args, get_task("SST-2"), encode(subsample(load_split("SST-2", "train", args.glue_dir or None),
                                                         64, 0), tokenizer, args.max_seq_len), tokenizer, True)  # warm-up
    print(f"model {args.model}; {args.threads} thread(s); batch {args.batch_size}; {args.epochs:g} epoch(s); "
          f"{'bf16' if args.bf16 else 'fp32'}; fp32 matmul peak {peak:.1f} GFLOP/s")
    print(f"{'task':<6} {'examples':>8} {'tokens/ex':>9} | {'examples/s':>10} {'% peak':>6} | {'Trainer fixed':>13} "
          f"{'% peak':>6} | {'Trainer dynamic':>15} {'% peak':>6} | {'vs fixed':>8} {'vs dynamic':>10}")
    for name in args.tasks:
        task = get_task(name)
        enc = encode(subsample(load_split(task, "train", args.glue_dir or None), args.examples, 0), tokenizer,
                     args.max_seq_len)
        tokens = float(np.mean([len(x) for x in enc.input_ids]))
        times = [run_lotterylib(args, task, enc), run_trainer(args, task, enc, tokenizer, dynamic=False),
                 run_trainer(args, task, enc, tokenizer, dynamic=True)]
        rates = [len(enc.input_ids) * args.epochs / t for t in times]
        shares = [100 * r * tokens * per_token / 1e9 / peak for r in rates]
        print(f"{name:<6} {len(enc.input_ids):>8} {tokens:>9.1f} | {rates[0]:>10.1f} {shares[0]:>5.1f}% | "
              f"{rates[1]:>13.1f} {shares[1]:>5.1f}% | {rates[2]:>15.1f} {shares[2]:>5.1f}% | "
              f"{rates[0] / rates[1]:>7.2f}x {rates[0] / rates[2]:>9.2f}x", flush=True)


if __name__ == "__main__":
    main()
