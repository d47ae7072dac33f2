"""Why STS-B re-fine-tunings collapse to the mean prediction in `demo_more`, and what prevents it.

The committed `demo_more` run (bf16, lr 1e-4, no warm-up, 3 epochs on 2000 STS-B examples) scored the
re-fine-tuned random s-subnetwork of seed 86 at 0.086 and the bad one of seed 42 at 0.100, against a full
model of 0.80. This script re-fine-tunes those subnetworks (their masks are committed in
`outputs/demo_more/STS-B/seed_<seed>/lottery/s_subnetworks.npz`) from the pre-trained MiniLM-L6, exactly as
the lottery stage does (`finetune_model(physical=True)`), under a few settings:

- `bf16, bf16 head`: the code of the committed run (the regression head under autocast too);
- `bf16`: the current code (the regression head and loss in fp32, `training.fp32_head`);
- `fp32`: no autocast at all;
- `bf16, warm-up 10%`: a linear warm-up over the first 10% of the steps (`warmup_ratio=0.1`);
- `bf16, lr 5e-5 x2 epochs`: half the learning rate for twice the epochs.

    nice python benchmarks/refit_collapse.py                      # all cases and settings (~10 runs)
    nice python benchmarks/refit_collapse.py --cases 86:random --settings fp32 bf16

Prints one row per (case, setting): dev Pearson, the predictions' std (`pred_std`, the labels' is about
1.5) and whether they are constant, the mean loss of the first 25 steps and of the last epoch over the
train labels' variance (1 = predicting the mean), and the minutes it took. Results: docs/method.md,
"Re-fine-tuning STS-B".
"""
from __future__ import annotations

import argparse
import contextlib
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from lotterylib.core import finetuning, models, training
from lotterylib.core.training import TrainConfig, evaluate
from lotterylib.pruning.masks import load_head_mask_sets

ROOT = Path(__file__).resolve().parents[1]
RUN = ROOT / "outputs" / "demo_more" / "STS-B"
BASE = TrainConfig(learning_rate=1e-4, batch_size=32, epochs=3.0, bf16=True, group_by_length=True)
SETTINGS = {
    "bf16, bf16 head": (BASE, False),
    "bf16": (BASE, True),
    "fp32": (replace(BASE, bf16=False), True),
    "bf16, warm-up 10%": (replace(BASE, warmup_ratio=0.1), True),
    "bf16, lr 5e-5 x2 epochs": (replace(BASE, learning_rate=5e-5, epochs=6.0), True),
}
CASES = ("86:random", "42:bad")


@contextlib.contextmanager
def bf16_head() -> contextlib.AbstractContextManager:
    """The code before the fix: the regression head runs under autocast like the rest of the model."""
    kept = training.fp32_head
    training.fp32_head = lambda model, enabled=True: contextlib.nullcontext()
    try:
        yield
    finally:
        training.fp32_head = kept


def refit(td: finetuning.TaskData, seed: int, subnetwork: str, cfg: TrainConfig, head_fp32: bool) -> dict:
    """Re-fine-tune one committed s-subnetwork of demo_more's STS-B lottery stage; score it on dev."""
    head, mlp = load_head_mask_sets(RUN / f"seed_{seed}" / "lottery" / "s_subnetworks.npz")[subnetwork]
    start = time.perf_counter()
    with contextlib.nullcontext() if head_fp32 else bf16_head():
        net, _, losses = finetuning.finetune_model("minilm-l6", td.task, td.train_enc, cfg, seed, head_mask=head,
                                                   mlp_mask=mlp, progress=False, desc=f"{seed} {subnetwork}",
                                                   physical=True)
        result = evaluate(net, td.task, td.dev_enc, cfg.eval_batch_size, bf16=cfg.bf16, progress=False)
    spread = result.spread
    var = float(np.var(td.train_enc.labels))
    epoch = len(losses) // int(cfg.epochs)
    return {"pearson": result.metrics["score"], "pred_std": spread["pred_std"],
            "constant": spread["constant_predictions"], "loss 1-25 / var": np.mean(losses[:25]) / var,
            "last epoch loss / var": np.mean(losses[-epoch:]) / var,
            "minutes": (time.perf_counter() - start) / 60}


def main(argv: list[str] | None = None) -> pd.DataFrame:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cases", nargs="+", default=list(CASES), help="seed:subnetwork of demo_more's STS-B s-masks")
    ap.add_argument("--settings", nargs="+", default=list(SETTINGS), choices=list(SETTINGS))
    ap.add_argument("--threads", type=int, default=1, help="torch threads (the committed run used 1)")
    ap.add_argument("--out", default="", help="also write the table to this csv")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    tokenizer = models.load_tokenizer("minilm-l6")
    td = finetuning.load_task_data("STS-B", tokenizer, "", 2000, 0, 128)
    rows = []
    for case in args.cases:
        seed, subnetwork = case.split(":")
        for name in args.settings:
            cfg, head_fp32 = SETTINGS[name]
            rows.append({"seed": int(seed), "subnetwork": subnetwork, "setting": name,
                         **refit(td, int(seed), subnetwork, cfg, head_fp32)})
            print(pd.DataFrame(rows[-1:]).round(3).to_string(index=False, header=len(rows) == 1), flush=True)
    table = pd.DataFrame(rows)
    if args.out:
        table.to_csv(args.out, index=False)
    print(table.round(3).to_markdown(index=False))
    return table


if __name__ == "__main__":
    main()
