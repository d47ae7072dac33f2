"""What a stage notebook reads from the stages before it, loaded in one call (the lottery stage,
`notebooks/04_lottery_tests.ipynb`: `lottery_inputs`).

Loading reads files only: no random draw, no parameter written. The order of the reads is fixed (metrics,
checkpoint, masks, then the task's data), as the notebook did them before this module held them.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from . import runs
from .experiment import TaskData, check_selection, dev_half, load_checkpoint, load_task_data
from .masks import HeadMasks, WeightMasks, load_head_mask_tree, load_head_masks, load_weight_masks
from .tasks import get_task

UPSTREAM = ("finetune", "s_pruning", "m_pruning")   # the stages the lottery stage reads, for its task and seed


def task_s_masks(outputs_root: str | Path, task: str) -> dict[int, HeadMasks]:
    """`{seed: (head_mask, mlp_mask)}` of every seed of `task` whose s-pruning stage has written its masks."""
    tree = load_head_mask_tree(runs.resolve(outputs_root), subdir="s_pruning")
    if get_task(task).name not in tree:
        raise runs.missing_stage_error(runs.resolve(outputs_root) / get_task(task).name / "seed_*" / "s_pruning",
                                       "s_pruning")
    return tree[get_task(task).name]


@dataclass
class LotteryInputs:
    """The lottery stage's inputs for one (task, seed): the upstream stages' metrics, the fine-tuned model and
    its tokenizer, the good s-masks and weight masks of this seed, the s-masks of every seed for the
    super-survivors, and the task's data (dev: the report half with selection "split")."""

    metrics: dict[str, dict]          # {"finetune": ..., "s_pruning": ..., "m_pruning": ...}: their metrics.json
    net: torch.nn.Module
    tokenizer: Any
    head_mask: np.ndarray             # (layers, heads), 1 = kept
    mlp_mask: np.ndarray              # (layers,)
    weight_masks: WeightMasks
    all_seeds: dict[int, HeadMasks]      # `task_s_masks` with extras, else this seed's alone
    data: TaskData

    @property
    def finetune(self) -> dict:
        """Notebook 1's metrics (dev_score, majority_baseline, ...)."""
        return self.metrics["finetune"]


def lottery_inputs(outputs_root: str | Path, task: str, seed: int, glue_dir: str = "", max_train_examples: int = 0,
                   max_dev_examples: int = 0, max_seq_len: int = 128, selection: str = "dev",
                   extras: bool = True) -> LotteryInputs:
    """Load the lottery stage's inputs (`LotteryInputs`): the upstream stages' metrics (each checked to have run
    with `selection`), the fine-tuned checkpoint, this seed's good s-masks and weight masks, every seed's
    s-masks (with `extras`: the super-survivors; the workflow then waits for all of them) and the task's
    train and report-half dev data, tokenised with the checkpoint's tokenizer."""
    stage = lambda name: runs.stage_dir(outputs_root, name, task, seed)  # noqa: E731
    ft = runs.load_metrics(stage("finetune"))
    s_metrics, m_metrics = runs.load_metrics(stage("s_pruning")), runs.load_metrics(stage("m_pruning"))
    net, tokenizer = load_checkpoint(stage("finetune") / "checkpoint")
    head, mlp = load_head_masks(stage("s_pruning"))
    weight_masks = load_weight_masks(stage("m_pruning") / "weight_masks.npz")
    all_seeds = task_s_masks(outputs_root, task) if extras else {seed: (head, mlp)}
    if seed not in all_seeds:
        raise ValueError(f"seed {seed} has no s-pruning masks among {sorted(all_seeds)}")
    metrics = dict(zip(UPSTREAM, (ft, s_metrics, m_metrics)))
    for name, values in metrics.items():
        check_selection(values, selection, name)
    data = load_task_data(task, tokenizer, glue_dir, max_train_examples, max_dev_examples, max_seq_len,
                          dev_half=dev_half(selection, "report"))
    return LotteryInputs(metrics, net, tokenizer, head, mlp, weight_masks, all_seeds, data)
