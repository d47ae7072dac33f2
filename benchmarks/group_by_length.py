"""Length-grouped batches (`group_by_length`) vs the paper's plain random batches: fine-tuning time, padding,
how often batch mates meet again, and the full model's dev score, on one task and seed.

Not in the paper or the authors' code (they use a random sampler), so the `paper` preset turns it off; the
CPU presets keep it on as a speed option, and this script measures what that costs and gains. Default (a
few minutes on one CPU thread): MiniLM-L6 on SST-2, 1500 training examples (the demo's), the full dev set,
fp32. Three batch orders: random; grouped under the current rule (chunks of at most 50 batches and at most
1/16 of the train set, `data.group_chunk_size`); grouped under the former rule (`min_chunks=1`: one sorted
chunk per epoch below 50 batches of examples).

    python benchmarks/group_by_length.py
    python benchmarks/group_by_length.py --task MRPC --max-train-examples 3000 --seeds 1337 42

Prints one row per (seed, batch order): seconds of fine-tuning, padding tokens per real token, the share of
batch-mate pairs of one epoch that share a batch again in the next (`data.pair_repeat_rate`), dev score.
Timing is wall-clock of `training.fine_tune` alone (no model loading or evaluation), at `--threads` threads.
On a shared machine those totals drift with the load, so the steps of the batch orders are also timed in
alternating blocks of `--block` steps (one epoch each, same model and optimiser settings): the median seconds
per step and the speed-up over random batches, which load drift affects far less.
"""
from __future__ import annotations

import argparse
import time
from functools import partial
from unittest import mock

import numpy as np
import pandas as pd
import torch

from lotterylib.core import finetuning, models, training
from lotterylib.core.data import Encoded, GROUP_MIN_CHUNKS, batch_indices, collate, pair_repeat_rate
from lotterylib.core.training import TrainConfig, evaluate, fine_tune, task_loss

# batch order -> (group_by_length, min_chunks)
ORDERS = {"random": (False, 1), f"grouped, >= {GROUP_MIN_CHUNKS} chunks": (True, GROUP_MIN_CHUNKS),
          "grouped, former rule": (True, 1)}


def epoch_batches(enc: Encoded, batch_size: int, seed: int, order: str) -> list[np.ndarray]:
    """One training epoch's batches in the batch order `order` (a key of `ORDERS`)."""
    grouped, min_chunks = ORDERS[order]
    return batch_indices(enc, batch_size, shuffle=True, seed=seed, group_by_length=grouped, min_chunks=min_chunks)


def padding_ratio(enc: Encoded, batches: list[np.ndarray]) -> float:
    """Padding tokens per real token over one training epoch's batches."""
    lengths = np.array([len(x) for x in enc.input_ids])
    padded = sum(len(b) * lengths[b].max() for b in batches)
    return float(padded / lengths.sum() - 1)


def interleaved_step_seconds(net: torch.nn.Module, task, enc: Encoded, batch_size: int, seed: int,
                             block: int, steps: int = 0) -> dict[str, float]:
    """Median seconds per training step (forward, backward, AdamW step) of each batch order, timed in
    alternating blocks of `block` steps over the first `steps` batches (0: one epoch) of each."""
    orders = {o: epoch_batches(enc, batch_size, seed, o)[:steps or None] for o in ORDERS}
    opt = torch.optim.AdamW(net.parameters(), lr=1e-5)
    net.train()
    times: dict[str, list[float]] = {o: [] for o in ORDERS}
    for start in range(0, min(len(b) for b in orders.values()), block):
        for order, batches in orders.items():
            for idx in batches[start:start + block]:
                batch = collate(enc, idx)
                t = time.perf_counter()
                logits = net(**{k: v for k, v in batch.items() if k != "labels"}).logits
                task_loss(task, logits, batch["labels"]).backward()
                opt.step()
                opt.zero_grad(set_to_none=True)
                times[order].append(time.perf_counter() - t)
    return {o: float(np.median(v)) for o, v in times.items()}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="minilm-l6")
    p.add_argument("--task", default="SST-2")
    p.add_argument("--glue-dir", default="", help="classic GLUE folder (default: $LOTTERY_GLUE_DIR, then the hub)")
    p.add_argument("--max-train-examples", type=int, default=1500)
    p.add_argument("--max-dev-examples", type=int, default=0, help="0 = the whole dev set")
    p.add_argument("--max-seq-len", type=int, default=128)
    p.add_argument("--learning-rate", type=float, default=1e-4)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--epochs", type=float, default=3.0)
    p.add_argument("--seeds", type=int, nargs="+", default=[1337])
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--block", type=int, default=5, help="steps per block in the interleaved step timing")
    p.add_argument("--timing-steps", type=int, default=0, help="steps per batch order in the interleaved "
                   "timing (0: one epoch)")
    p.add_argument("--orders", nargs="+", choices=list(ORDERS), default=list(ORDERS),
                   help="the batch orders to fine-tune with")
    p.add_argument("--steps-only", action="store_true", help="only the interleaved step timing (no fine-tuning)")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> pd.DataFrame:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    tokenizer = models.load_tokenizer(args.model)
    td = finetuning.load_task_data(args.task, tokenizer, args.glue_dir, args.max_train_examples,
                                   args.max_dev_examples, args.max_seq_len)
    net = finetuning.build_model(args.model, td.task, args.seeds[0], device=torch.device("cpu"))
    step = interleaved_step_seconds(net, td.task, td.train_enc, args.batch_size, args.seeds[0] * 1000, args.block,
                                    args.timing_steps)
    print(f"{args.model}, {td.task.name}: {len(td.train)} train examples, fp32, {args.threads} thread(s), batch "
          f"{args.batch_size}; median s/step, interleaved: "
          + ", ".join(f"{o} {s:.3f} (x{step['random'] / s:.2f})" for o, s in step.items()), flush=True)
    if args.steps_only:
        return pd.DataFrame()
    rows = []
    for seed in args.seeds:
        for order in args.orders:
            grouped, min_chunks = ORDERS[order]
            cfg = TrainConfig(learning_rate=args.learning_rate, batch_size=args.batch_size, epochs=args.epochs,
                              group_by_length=grouped)
            net = finetuning.build_model(args.model, td.task, seed, device=torch.device("cpu"))
            # the former rule is no training option: fine_tune's batches are patched to it
            sampler = partial(batch_indices, min_chunks=min_chunks)
            start = time.perf_counter()
            with mock.patch.object(training, "batch_indices", sampler):
                fine_tune(net, td.task, td.train_enc, cfg, seed, progress=False)
            seconds = time.perf_counter() - start
            score = evaluate(net, td.task, td.dev_enc, cfg.eval_batch_size, progress=False).metrics["score"]
            first, second = (epoch_batches(td.train_enc, args.batch_size, seed * 1000 + e, order) for e in (0, 1))
            rows.append({"seed": seed, "batches": order, "fine-tune s": round(seconds, 1),
                         "padding / token": round(padding_ratio(td.train_enc, first), 3),
                         "pair repeat": round(pair_repeat_rate(first, second), 4),
                         f"dev {td.task.metric}": round(score, 4)})
            print(rows[-1], flush=True)
    table = pd.DataFrame(rows)
    print(f"{args.model}, {td.task.name}: {len(td.train)} train / {len(td.dev)} dev examples, fp32, "
          f"{args.threads} thread(s), {args.epochs:g} epochs, batch {args.batch_size}")
    print(table.to_string(index=False))
    return table


if __name__ == "__main__":
    main()
