"""Cost of the pruning searches and memory of fine-tuning.

Fine-tunes `--model` on a seeded subsample of a task (peak resident memory sampled every 10 ms), then runs
the s-pruning search (gated importance passes over dev: forward and backward to the gates) and the
m-pruning search (forward passes over dev) from that model, and prints the dev passes, seconds and seconds
per pass of each (process CPU time: on one thread, the wall time of an unloaded core). `--checkpoint`
starts the searches from a fine-tuned checkpoint instead (its training memory is then not measured).

    python benchmarks/search_cost.py                                  # SST-2, 512 train / 256 dev: minutes
    python benchmarks/search_cost.py --checkpoint outputs/demo/SST-2/seed_1337/finetune/checkpoint --dev-examples 0
"""
from __future__ import annotations

import argparse
import os
import threading
import time

import psutil
import torch
from transformers.utils import logging as hf_logging

from lotterylib.core.finetuning import build_model, load_task_data
from lotterylib.core.gates import Gates
from lotterylib.core.models import load_tokenizer, shape_of
from lotterylib.core.training import TrainConfig, fine_tune
from lotterylib.pruning import magnitude, structured
from lotterylib.stages.checkpoints import load_checkpoint


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="minilm-l6")
    p.add_argument("--checkpoint", help="a fine-tuned checkpoint (skips the fine-tuning)")
    p.add_argument("--task", default="SST-2")
    p.add_argument("--train-examples", type=int, default=512)
    p.add_argument("--dev-examples", type=int, default=256, help="0 = the whole dev set")
    p.add_argument("--max-seq-len", type=int, default=128)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--epochs", type=float, default=1.0)
    p.add_argument("--learning-rate", type=float, default=1e-4)
    p.add_argument("--bf16", default="false", help="auto, true or false (default: fp32)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--max-steps", type=int, default=0, help="m-pruning step cap (0: none)")
    p.add_argument("--glue-dir", default=os.environ.get("LOTTERY_GLUE_DIR", ""))
    p.add_argument("--seed", type=int, default=1)
    return p.parse_args(argv)


class PeakRSS:
    """The process's largest resident set size (MB) while the block runs, sampled every 10 ms."""

    def __enter__(self) -> PeakRSS:
        self._proc, self._stop = psutil.Process(), threading.Event()
        self.start_mb = self.peak_mb = self._proc.memory_info().rss / 2**20
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._stop.wait(0.01):
            self.peak_mb = max(self.peak_mb, self._proc.memory_info().rss / 2**20)

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


def timed(fn):
    start = time.process_time()
    out = fn()
    return out, time.process_time() - start


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    hf_logging.set_verbosity_error()
    torch.set_num_threads(args.threads)
    cfg = TrainConfig(learning_rate=args.learning_rate, batch_size=args.batch_size, epochs=args.epochs,
                      bf16=args.bf16)
    rows = []
    if args.checkpoint:
        net, tokenizer = load_checkpoint(args.checkpoint, torch.device("cpu"))
    else:
        tokenizer = load_tokenizer(args.model)
    td = load_task_data(args.task, tokenizer, args.glue_dir, args.train_examples, args.dev_examples,
                        args.max_seq_len, with_train=not args.checkpoint)
    if not args.checkpoint:
        net = build_model(args.model, td.task, args.seed, device=torch.device("cpu"))
        with PeakRSS() as mem:
            losses, seconds = timed(lambda: fine_tune(net, td.task, td.train_enc, cfg, args.seed, progress=False))
        rows.append(("fine-tuning", f"{len(losses)} steps", seconds, seconds / len(losses),
                     f"peak RSS {mem.peak_mb:.0f} MB (+{mem.peak_mb - mem.start_mb:.0f} MB over the loaded model)"))
    num_layers, num_heads = shape_of(net)

    gates = Gates(net)
    scorer = structured.make_scorer(net, td.task, td.dev_enc, gates, bf16=cfg.bf16)
    s_result, seconds = timed(lambda: structured.structured_search(scorer, None, num_layers, num_heads, progress=False))
    passes = len(s_result.steps)
    rows.append(("s-pruning", f"{passes} dev passes", seconds, seconds / passes,
                 f"kept {int(s_result.masks.head.sum())}/{s_result.masks.head.size} heads, "
                 f"{int(s_result.masks.mlp.sum())}/{num_layers} MLPs"))
    gates.remove()

    m_scorer = magnitude.make_scorer(net, td.task, td.dev_enc, bf16=cfg.bf16)
    full, first = timed(m_scorer)
    m_result, seconds = timed(lambda: magnitude.magnitude_search(net, m_scorer, full.score,
                                                                 max_steps=args.max_steps or None, progress=False))
    passes = len(m_result.steps)   # steps[0] is the full model's pass
    rows.append(("m-pruning", f"{passes} dev passes", seconds + first, (seconds + first) / passes,
                 f"sparsity {m_result.sparsity:.1%}"))

    print(f"{args.checkpoint or args.model}, {args.task}: {len(td.dev)} dev examples"
          + ("" if args.checkpoint else f", {len(td.train)} train examples") + f"; {args.threads} thread(s); "
          f"bf16 {args.bf16}; batch {args.batch_size} (training), {cfg.eval_batch_size} (dev passes)")
    print(f"{'':12} {'work':>16} {'seconds':>9} {'s per step':>10}  notes")
    for name, work, seconds, per, note in rows:
        print(f"{name:12} {work:>16} {seconds:>9.1f} {per:>10.2f}  {note}")


if __name__ == "__main__":
    main()
