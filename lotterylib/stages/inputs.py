"""What a stage notebook reads from the stages before it, loaded in one call: the lottery stage's
(`notebooks/04_lottery_tests.ipynb`: `lottery_inputs`) and the stability stage's (`load_stability_masks`,
`load_histories`, `load_m_survivals`).

Loading reads files only: no random draw, no parameter written. The order of the reads is fixed (metrics,
checkpoint, masks, then the task's data), as the notebook did them before this module held them.
"""
from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..analysis.stability import check_enough_seeds
from ..core.errors import ParameterError
from ..core.files import resolve
from ..core.finetuning import TaskData, check_selection, dev_half, load_task_data
from ..core.tasks import get_task
from ..pruning.masks import (HEAD_FILE, HISTORY_FILE, HeadMaskTree, HeadMasks, HeadMasksByTask, WeightMasks,
                             check_tree_shapes, load_head_mask_tree, load_head_masks, load_search_history)
from .checkpoints import load_checkpoint, load_m_pruning_masks
from .runs import load_metrics, missing_run_error, stage_dir

UPSTREAM = ("finetune", "s_pruning", "m_pruning")   # the stages the lottery stage reads, for its task and seed


def s_pruning_masks(run_dir: Path) -> HeadMasks:
    """The good s-masks of an s-pruning run folder; missing, the "run the s_pruning stage (its notebook) first"
    error (the pruning wing's loaders cannot name the registry's notebook)."""
    if not (run_dir / HEAD_FILE).is_file():
        raise missing_run_error(run_dir / HEAD_FILE, "s_pruning")
    return load_head_masks(run_dir)


def task_s_masks(outputs_root: str | Path, task: str) -> dict[int, HeadMasks]:
    """`{seed: (head_mask, mlp_mask)}` of every seed of `task` whose s-pruning stage has written its masks."""
    tree = load_head_mask_tree(resolve(outputs_root), subdir="s_pruning")
    if get_task(task).name not in tree:
        raise missing_run_error(resolve(outputs_root) / get_task(task).name / "seed_*" / "s_pruning", "s_pruning")
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
    stage = lambda name: stage_dir(outputs_root, name, task, seed)  # noqa: E731
    ft = load_metrics(stage("finetune"))
    s_metrics, m_metrics = load_metrics(stage("s_pruning")), load_metrics(stage("m_pruning"))
    net, tokenizer = load_checkpoint(stage("finetune") / "checkpoint")
    head, mlp = s_pruning_masks(stage("s_pruning"))
    weight_masks = load_m_pruning_masks(stage("m_pruning"))
    all_seeds = task_s_masks(outputs_root, task) if extras else {seed: (head, mlp)}
    if seed not in all_seeds:
        raise ValueError(f"seed {seed} has no s-pruning masks among {sorted(all_seeds)}")
    metrics = dict(zip(UPSTREAM, (ft, s_metrics, m_metrics)))
    for name, values in metrics.items():
        check_selection(values, selection, name)
    data = load_task_data(task, tokenizer, glue_dir, max_train_examples, max_dev_examples, max_seq_len,
                          dev_half=dev_half(selection, "report"))
    return LotteryInputs(metrics, net, tokenizer, head, mlp, weight_masks, all_seeds, data)


# --- the stability stage's inputs ---------------------------------------------------------------------

def run_folder(outputs_root: str | Path, masks_dir: str | Path = "", out_dir: str | Path = "") -> Path:
    """The stability run folder: the preset's `<outputs_root>/all_tasks/stability`, or with `masks_dir`
    (someone else's masks) `out_dir`, so that analysing other masks never writes into a preset's runs."""
    if masks_dir and not out_dir:
        raise ParameterError(f"masks_dir = {str(masks_dir)!r} needs an out_dir: the analysis of other masks is "
                             "written only there, never into a preset's run folders. Fix: set out_dir "
                             "(papermill `-p out_dir FOLDER`).")
    return resolve(out_dir) if masks_dir else stage_dir(outputs_root, "stability")


def load_stability_masks(outputs_root: str | Path, tasks: Sequence[str], seeds: Sequence[int],
                         masks_dir: str | Path = "", stage: str = "s_pruning",
                         allow_missing_seeds: bool = False) -> HeadMaskTree:
    """The good s-masks to analyse. With `masks_dir`: every `<task>/seed_<seed>` found there (the authors'
    layout; tasks and seeds are what is found, and every task should have every seed found). Otherwise the
    project's `stage` masks of `tasks` x `seeds` under `outputs_root`.

    A task lacking some seeds is an error, or with `allow_missing_seeds` a warning naming the seeds used.
    Fewer than 2 distinct seeds (for a task, or in `seeds`) and masks of different shapes (other models) are
    errors naming the tasks and seeds. Nothing is written."""
    if masks_dir:
        tree = load_head_mask_tree(resolve(masks_dir))
        expected = sorted(set().union(*tree.values()))
    else:
        expected = sorted({int(s) for s in seeds})
        if len(expected) < 2:
            raise ParameterError(f"seeds = {list(seeds)}: stability needs at least 2 distinct seeds, found "
                                 f"{expected}. Fix: give two or more different seeds (e.g. seeds: [1, 2]).")
        tree = {}
        for task in tasks:
            for seed in expected:
                folder = stage_dir(outputs_root, stage, task, seed)
                if (folder / HEAD_FILE).is_file():
                    tree.setdefault(get_task(task).name, {})[seed] = load_head_masks(folder)
                elif not allow_missing_seeds:
                    raise missing_run_error(folder / HEAD_FILE, stage,
                                              hint="Or set allow_missing_seeds: true to analyse the seeds that exist, "
                                                   "or point `masks_dir` at masks in the authors' layout.")
    _check_seeds(tree, expected, allow_missing_seeds)
    check_enough_seeds(tree)
    check_tree_shapes(tree)
    return tree


def _check_seeds(tree: HeadMaskTree, expected: Sequence[int], allow_missing: bool) -> None:
    for task, by_seed in tree.items():
        missing = sorted(set(expected) - set(by_seed))
        if not missing:
            continue
        message = f"{task} has no masks for seeds {missing}: it would be analysed with seeds {sorted(by_seed)} only"
        if not allow_missing:
            raise FileNotFoundError(f"{message}, which changes its kappa and Q. Fix: add the missing masks, or set "
                                    "allow_missing_seeds: true to analyse each task with the seeds it has.")
        warnings.warn(f"{message} (allow_missing_seeds is true).", stacklevel=3)
    if not tree:
        raise FileNotFoundError("No masks found for any task and seed.")


def load_m_survival(outputs_root: str | Path, task: str, seeds: Sequence[int], stage: str = "m_pruning"
                    ) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    """`{seed: (head (L, H), mlp (L,))}` surviving-weight fractions from `<stage dir>/survival.npz`, for the
    seeds that have one (empty when m-pruning has not run)."""
    out = {}
    for seed in seeds:
        path = stage_dir(outputs_root, stage, task, seed) / "survival.npz"
        if path.is_file():
            with np.load(path) as data:
                out[int(seed)] = (data["head"], data["mlp"])
    return out


def load_histories(outputs_root: str | Path, masks_by_task: HeadMasksByTask) -> dict[str, list[dict[str, np.ndarray]]]:
    """Per task, the s-pruning search histories (`masks.load_search_history`) of the seeds in
    `masks_by_task`, in seed order: the input of Figure 3."""
    def history(task: str, seed: int) -> dict[str, np.ndarray]:
        folder = stage_dir(outputs_root, "s_pruning", task, seed)
        if not (folder / HISTORY_FILE).is_file():
            raise missing_run_error(folder / HISTORY_FILE, "s_pruning")
        return load_search_history(folder)
    return {task: [history(task, seed) for seed in sorted(by_seed)] for task, by_seed in masks_by_task.items()}


def load_m_survivals(outputs_root: str | Path, masks_by_task: HeadMasksByTask
                     ) -> dict[str, dict[int, tuple[np.ndarray, np.ndarray]]]:
    """`load_m_survival` of every task of `masks_by_task` (its seeds) that has m-pruning outputs."""
    found = {task: load_m_survival(outputs_root, task, sorted(by_seed)) for task, by_seed in masks_by_task.items()}
    return {task: by_seed for task, by_seed in found.items() if by_seed}
