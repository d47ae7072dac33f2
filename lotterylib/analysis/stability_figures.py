"""The figures of notebook 6 (`notebooks/06_stability.ipynb`) over its tasks: Figure 1 (which heads and MLPs survive
across seeds, s- and m-pruning), Figure 3 (importance at one pruning step), Figure 15 (in how many tasks each
survives) and the Jaccard overlaps between seeds and between tasks. Each function draws and saves one figure per
task (or one in all) into `save_dir`, from masks and arrays already loaded (`stability.load_*`)."""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from ..pruning.masks import HeadMasksByTask
from . import plots, stability


def importance_figures(histories: Mapping[str, Sequence[Mapping[str, np.ndarray]]], step: int,
                       save_dir: str | Path) -> dict[str, int]:
    """Figure 3 per task (`plots.importance_distribution` of `stability.importance_at`), saved as
    importance_<task>; returns the pruning step shown per task (`step` clipped to what every seed has)."""
    shown = {}
    for task, by_seed in histories.items():
        shown[task], heads, mlps = stability.importance_at(by_seed, step)
        plots.importance_distribution(heads, mlps, title=f"{task}: importance at pruning step {shown[task]}",
                                      save=Path(save_dir) / f"importance_{task}")
    return shown


def s_survival_figures(masks_by_task: HeadMasksByTask, save_dir: str | Path) -> None:
    """Figure 1 per task: the share of seeds in which each head and MLP survived s-pruning (s_survival_<task>)."""
    for task, by_seed in masks_by_task.items():
        plots.survival_heatmap(*stability.seed_survival(by_seed), vmin=0.0, vmax=1.0,
                               title=f"{task}: s-pruning survival over {len(by_seed)} seeds",
                               value_label="share of seeds kept", save=Path(save_dir) / f"s_survival_{task}")


def m_survival_figures(m_survival: Mapping[str, Mapping[int, tuple[np.ndarray, np.ndarray]]],
                       save_dir: str | Path) -> None:
    """Figure 1 for m-pruning per task: the percentage of each head's and MLP's weights kept, mean (std) over
    seeds (`inputs.load_m_survivals`), saved as m_survival_<task>."""
    for task, by_seed in m_survival.items():
        head_mean, head_std, mlp_mean, mlp_std = stability.seed_survival(by_seed)
        plots.survival_heatmap(100 * head_mean, 100 * head_std, 100 * mlp_mean, 100 * mlp_std, fmt=".0f",
                               title=f"{task}: m-pruning, weights surviving over {len(by_seed)} seeds",
                               value_label="% of weights kept", save=Path(save_dir) / f"m_survival_{task}")


def overlap_figures(masks_by_task: HeadMasksByTask, save_dir: str | Path) -> pd.Series:
    """Jaccard overlap of the kept heads between seeds, per task (overlap_seeds), and, with several tasks, of heads
    and MLPs between tasks (overlap_tasks); returns each task's mean overlap between seeds."""
    seeds = {task: stability.seed_overlap(by_seed) for task, by_seed in masks_by_task.items()}
    plots.overlap_heatmaps(seeds, title="Jaccard overlap of kept heads between seeds",
                           save=Path(save_dir) / "overlap_seeds")
    if len(masks_by_task) > 1:
        tasks = {"heads": stability.task_overlap(masks_by_task), "MLPs": stability.task_overlap(masks_by_task, "mlp")}
        plots.overlap_heatmaps(tasks, title="Jaccard overlap between tasks (mean over runs)",
                               save=Path(save_dir) / "overlap_tasks")
    return pd.Series({task: stability.mean_offdiagonal(m) for task, m in seeds.items()},
                     name="mean Jaccard between seeds (heads)")


def across_tasks_figure(masks_by_task: HeadMasksByTask, save_dir: str | Path) -> None:
    """Figure 15: in how many of the tasks each head and MLP survived (survival_across_tasks)."""
    plots.survival_heatmap(*stability.survival_across_tasks(masks_by_task), fmt=".1f", vmin=0, vmax=len(masks_by_task),
                           title=f"Number of tasks (of {len(masks_by_task)}) in which each head / MLP survived",
                           value_label="tasks survived", save=Path(save_dir) / "survival_across_tasks")
