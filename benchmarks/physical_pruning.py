"""Gated vs physically pruned BERT: parameter count, dev-set inference time and training-step time.

Default (offline, under a minute on CPU): minilm-l6 with a random s-pruning mask keeping ~50% of the heads
and 4 of 6 MLPs, timed on synthetic random token batches.

    python benchmarks/physical_pruning.py
    python benchmarks/physical_pruning.py --checkpoint outputs/demo/SST-2/seed_1337/finetune/checkpoint \\
        --masks outputs/demo/SST-2/seed_1337/s_pruning --task SST-2

`--masks` is a folder of the authors' layout (head_mask.npy: layers x heads, mlp_mask.npy: layers, 1 = kept).
Timing: one warm-up pass, then the median of `--repeats` passes over all batches, under torch.inference_mode;
training: the median of `--repeats` AdamW steps (forward, backward, update) on the first batch, what
`finetune_model(physical=True)` saves when the lottery stage re-fine-tunes an s-subnetwork.
"""
from __future__ import annotations

import argparse
import copy
import statistics
import time

import numpy as np
import torch
from transformers.utils import logging as hf_logging

from lotterylib.core.data import batch_indices, collate, encode, load_split, subsample
from lotterylib.core.gates import Gates
from lotterylib.core.models import load_classifier, load_tokenizer, shape_of
from lotterylib.core.physical import count_parameters, prune_physically
from lotterylib.core.training import default_device, set_seed
from lotterylib.pruning.masks import load_head_masks
from lotterylib.stages.checkpoints import load_checkpoint

Batch = dict[str, torch.Tensor]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="minilm-l6", help="alias, directory or hub id (when no --checkpoint)")
    p.add_argument("--checkpoint", help="a fine-tuned checkpoint directory (save_pretrained), with its tokenizer")
    p.add_argument("--masks", help="folder with head_mask.npy and mlp_mask.npy (default: a random mask)")
    p.add_argument("--task", help="time the GLUE dev set of this task (default: synthetic batches)")
    p.add_argument("--glue-dir", help="classic GLUE folder (default: $LOTTERY_GLUE_DIR, then the hub)")
    p.add_argument("--max-examples", type=int, default=256, help="dev examples to time (0 = all)")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--batches", type=int, default=4, help="synthetic batches")
    p.add_argument("--seq-len", type=int, default=128, help="synthetic sequence length")
    p.add_argument("--keep-heads", type=float, default=0.5, help="random mask: fraction of heads kept")
    p.add_argument("--keep-mlps", type=int, default=4, help="random mask: number of MLPs kept")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default=str(default_device()))
    return p.parse_args(argv)


def random_masks(num_layers: int, num_heads: int, keep_heads: float, keep_mlps: int,
                 seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A uniformly random mask with round(keep_heads x heads) heads and keep_mlps MLPs kept."""
    rng = np.random.default_rng(seed)
    head = np.zeros(num_layers * num_heads)
    head[rng.choice(head.size, round(keep_heads * head.size), replace=False)] = 1
    mlp = np.zeros(num_layers)
    mlp[rng.choice(num_layers, min(keep_mlps, num_layers), replace=False)] = 1
    return head.reshape(num_layers, num_heads), mlp


def synthetic_batches(vocab_size: int, n: int, batch_size: int, seq_len: int, seed: int) -> list[Batch]:
    g = torch.Generator().manual_seed(seed)
    low = min(1000, vocab_size // 2)  # above BERT's special and [unused] tokens
    return [{"input_ids": torch.randint(low, vocab_size, (batch_size, seq_len), generator=g),
             "attention_mask": torch.ones(batch_size, seq_len, dtype=torch.long)} for _ in range(n)]


def dev_batches(task: str, tokenizer, glue_dir: str | None, max_examples: int, batch_size: int,
                seed: int) -> list[Batch]:
    enc = encode(subsample(load_split(task, "dev", glue_dir), max_examples, seed), tokenizer)
    batches = [collate(enc, idx) for idx in batch_indices(enc, batch_size, shuffle=False)]
    return [{k: v for k, v in b.items() if k != "labels"} for b in batches]


def run_pass(model: torch.nn.Module, batches: list[Batch], device: torch.device) -> list[torch.Tensor]:
    with torch.inference_mode():
        out = [model(**{k: v.to(device) for k, v in b.items()}).logits for b in batches]
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return out


def median_time(model: torch.nn.Module, batches: list[Batch], device: torch.device, repeats: int) -> float:
    run_pass(model, batches, device)  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run_pass(model, batches, device)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def median_train_step(model: torch.nn.Module, batch: Batch, device: torch.device, repeats: int) -> float:
    """Median seconds of one AdamW training step (after one warm-up step); restores nothing: use a copy."""
    model.train()
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-5)
    inputs = {k: v.to(device) for k, v in batch.items()}
    labels = torch.zeros(len(inputs["input_ids"]), dtype=torch.long, device=device)
    times = []
    for _ in range(repeats + 1):
        start = time.perf_counter()
        loss = torch.nn.functional.cross_entropy(model(**inputs).logits, labels)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        times.append(time.perf_counter() - start)
    model.eval()
    return statistics.median(times[1:])


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    hf_logging.set_verbosity_error()  # the re-initialised classifier's load report is expected here
    device = torch.device(args.device)
    set_seed(args.seed)
    if args.checkpoint:
        model, tokenizer = load_checkpoint(args.checkpoint, device)
    else:
        model = load_classifier(args.model, args.task or "SST-2").to(device).eval()
        tokenizer = load_tokenizer(args.model) if args.task else None
    num_layers, num_heads = shape_of(model)
    head, mlp = (load_head_masks(args.masks) if args.masks
                 else random_masks(num_layers, num_heads, args.keep_heads, args.keep_mlps, args.seed))
    if args.task:
        batches = dev_batches(args.task, tokenizer, args.glue_dir, args.max_examples, args.batch_size, args.seed)
        data = f"{args.task} dev, {sum(len(b['input_ids']) for b in batches)} examples"
    else:
        batches = synthetic_batches(model.config.vocab_size, args.batches, args.batch_size, args.seq_len, args.seed)
        data = f"synthetic, {args.batches} x {args.batch_size} x {args.seq_len} tokens"

    pruned = prune_physically(model, head, mlp).eval()
    with Gates(model, head, mlp):
        gated_time = median_time(model, batches, device, args.repeats)
        gated_out = run_pass(model, batches, device)
    pruned_time = median_time(pruned, batches, device, args.repeats)
    diff = max((a - b).abs().max().item() for a, b in zip(gated_out, run_pass(pruned, batches, device)))
    with Gates(model, head, mlp):
        gated_step = median_train_step(copy.deepcopy(model), batches[0], device, args.repeats)
    pruned_step = median_train_step(pruned, batches[0], device, args.repeats)

    full, small = count_parameters(model), count_parameters(pruned)
    print(f"model: {args.checkpoint or args.model}; device: {device}; data: {data}")
    print(f"masks: {int(head.sum())}/{head.size} heads, {int(mlp.sum())}/{mlp.size} MLPs kept "
          f"({'from ' + args.masks if args.masks else 'random'}); max |logit difference| {diff:.2e}")
    print(f"{'':8} {'parameters':>12} {'ratio':>6} {'eval (s)':>9} {'ratio':>6} {'train step (s)':>15} {'ratio':>6}")
    print(f"{'gated':8} {full:>12,} {1:>6.3f} {gated_time:>9.4f} {1:>6.3f} {gated_step:>15.4f} {1:>6.3f}")
    print(f"{'pruned':8} {small:>12,} {small / full:>6.3f} {pruned_time:>9.4f} {pruned_time / gated_time:>6.3f} "
          f"{pruned_step:>15.4f} {pruned_step / gated_step:>6.3f}")


if __name__ == "__main__":
    main()
