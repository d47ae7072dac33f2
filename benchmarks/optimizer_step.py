"""AdamW's update on a CPU: torch's default (a loop over the tensors), which `lotterylib.core.training`
uses, the multi-tensor `foreach` update and the `fused` kernel, side by side in one run.

Each trains the same model (gated, as every unpruned run trains) on the same random batches for `--steps`
steps and reports the median CPU seconds of the optimizer's update alone and of a whole training step, the
speed-up over the default, and whether its weights equal the default's bit for bit afterwards (a change of
update that is not bit-identical would make every committed run's results differ from a rerun's). One
thread; process CPU time, so a busy machine does not distort the table.

    python benchmarks/optimizer_step.py                    # MiniLM-L6, batch 32 x 13 tokens (CoLA's mean)
    python benchmarks/optimizer_step.py --seq-len 86       # RTE's mean padded length
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch

from lotterylib.core.gates import Gates
from lotterylib.core.hardware import cpu_flags
from lotterylib.core.models import load_classifier
from lotterylib.core.training import _forward


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="minilm-l6")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--seq-len", type=int, default=13)
    p.add_argument("--steps", type=int, default=12)
    p.add_argument("--bf16", action="store_true", help="bfloat16 autocast in the forward pass")
    return p.parse_args(argv)


def train(args: argparse.Namespace, **variant: bool) -> tuple[list[torch.Tensor], float, float]:
    """Weights after `args.steps` steps, median update seconds, median step seconds."""
    torch.manual_seed(0)
    net = load_classifier(args.model, "SST-2").train()
    Gates(net)
    params = [p for p in net.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=1e-4, eps=1e-8, weight_decay=0.01, **variant)
    gen = torch.Generator().manual_seed(1)
    updates, steps = [], []
    for _ in range(args.steps):
        batch = {"input_ids": torch.randint(1000, net.config.vocab_size, (args.batch_size, args.seq_len), generator=gen),
                 "attention_mask": torch.ones(args.batch_size, args.seq_len, dtype=torch.long)}
        labels = torch.randint(0, 2, (args.batch_size,), generator=gen)
        start = time.process_time()
        loss = torch.nn.functional.cross_entropy(_forward(net, batch, args.bf16).float(), labels)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        before = time.process_time()
        opt.step()
        end = time.process_time()
        updates.append(end - before)
        steps.append(end - start)
    return [p.detach().clone() for p in params], statistics.median(updates[1:]), statistics.median(steps[1:])


def cpu_line() -> str:
    """`AMD EPYC (avx2 avx512_bf16 avx512f)`: the CPU's name and the flags that decide its speed here."""
    names = [line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")]
    flags = sorted(f for f in cpu_flags() if f in {"avx2", "avx512f", "avx512_bf16", "amx_bf16"})
    return f"{names[0] if names else 'unknown CPU'} ({' '.join(flags)})"


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    torch.set_num_threads(1)
    print(f"{cpu_line()}; 1 thread; {args.model}, batch {args.batch_size} x {args.seq_len} tokens, "
          f"{'bf16' if args.bf16 else 'fp32'}, {args.steps} steps")
    base, base_update, base_step = train(args, foreach=False)
    print(f"{'AdamW':<22} {'update (s)':>10} {'step (s)':>9} {'step speed-up':>14}  same weights")
    for name, variant in [("loop (lotterylib)", {"foreach": False}), ("foreach", {"foreach": True}),
                          ("fused", {"fused": True})]:
        weights, update, step = (base, base_update, base_step) if name.startswith("loop") else train(args, **variant)
        same = all(torch.equal(a, b) for a, b in zip(base, weights))
        print(f"{name:<22} {update:>10.4f} {step:>9.3f} {base_step / step:>13.2f}x  {'yes' if same else 'no'}")


if __name__ == "__main__":
    main()
