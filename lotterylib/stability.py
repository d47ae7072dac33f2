"""Stability of the pruning masks across seeds and tasks (paper section 5.1, Figure 15).

A mask is a 0/1 array, 1 = the element (head, MLP or weight) survived. A stack of masks is an (S, N)
array: one row per seed, one column per element. `masks_by_task` is the nested dict
`{task: {seed: (head_mask (L, H), mlp_mask (L,))}}` that `load_mask_tree` builds from disk.

Degenerate inputs follow two conventions, used everywhere here:
- Fleiss' kappa is NaN when every element lands in the same category in every seed (chance agreement
  is 1, so kappa is 0/0), e.g. WNLI, where everything is pruned.
- Cochran's Q is 0 with p = 1 when all seeds' masks are identical (Q's formula is then 0/0; identical
  masks are the strongest possible evidence of "similar"). The authors' notebook got NaN there and
  counted such a pair as *not* similar.
"""
from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from itertools import combinations
from pathlib import Path

import numpy as np
import pandas as pd
from statsmodels.stats.contingency_tables import cochrans_q
from statsmodels.stats.inter_rater import fleiss_kappa

MasksByTask = Mapping[str, Mapping[int, tuple[np.ndarray, np.ndarray]]]

TABLE_COLUMNS = ["task", "n_seeds", "head_kappa", "head_Q", "head_p", "head_similar_pairs", "n_pairs",
                 "mlp_kappa", "mlp_Q", "mlp_p", "mlp_similar_pairs", "head_survival", "mlp_survival"]


def as_mask_stack(masks: np.ndarray | Sequence[np.ndarray]) -> np.ndarray:
    """Masks of any equal shape, stacked and flattened to an (S, N) int array; checks they are 0/1."""
    arr = np.asarray(masks)
    if arr.ndim < 2 or arr.shape[0] == 0:
        raise ValueError(f"expected a non-empty stack of equal-shaped masks, got shape {arr.shape}")
    stack = arr.reshape(arr.shape[0], -1)
    if not ((stack == 0) | (stack == 1)).all():
        raise ValueError("masks must hold only 0 and 1")
    return stack.astype(np.int8)   # small: weight masks can have ~85M elements per seed


def fleiss_kappa_survival(masks: np.ndarray | Sequence[np.ndarray]) -> float:
    """Fleiss' kappa of survival: items = elements, raters = seeds, categories = kept / pruned.

    NaN when every element is in the same category in every seed (kappa undefined), or with < 2 seeds.
    """
    stack = as_mask_stack(masks)
    n_seeds = stack.shape[0]
    kept = stack.sum(axis=0)
    if n_seeds < 2 or np.all(kept == 0) or np.all(kept == n_seeds):
        return float("nan")
    table = np.column_stack([kept, n_seeds - kept])   # (elements, categories) counts
    return float(fleiss_kappa(table, method="fleiss"))


def cochrans_q_test(masks: np.ndarray | Sequence[np.ndarray]) -> tuple[float, float]:
    """Cochran's Q over the (elements x seeds) 0/1 matrix: H0 = every seed keeps elements with the
    same probability. Returns (Q, p); (0.0, 1.0) when all masks are identical, NaNs with < 2 seeds."""
    stack = as_mask_stack(masks)
    if stack.shape[0] < 2:
        return float("nan"), float("nan")
    if (stack == stack[0]).all():
        return 0.0, 1.0
    result = cochrans_q(stack.T)
    return float(result.statistic), float(result.pvalue)


def pairwise_cochran(masks: np.ndarray | Sequence[np.ndarray], alpha: float = 0.05,
                     labels: Sequence[Hashable] | None = None) -> pd.DataFrame:
    """Cochran's Q for every pair of masks: columns seed_a, seed_b, Q, p, similar (p >= alpha).

    `labels` name the rows of `masks` (default: their indices)."""
    stack = as_mask_stack(masks)
    labels = list(range(len(stack))) if labels is None else list(labels)
    if len(labels) != len(stack):
        raise ValueError(f"{len(labels)} labels for {len(stack)} masks")
    rows = []
    for i, j in combinations(range(len(stack)), 2):
        q, p = cochrans_q_test(stack[[i, j]])
        rows.append({"seed_a": labels[i], "seed_b": labels[j], "Q": q, "p": p, "similar": p >= alpha})
    return pd.DataFrame(rows, columns=["seed_a", "seed_b", "Q", "p", "similar"])


def _stats(masks: Sequence[np.ndarray], alpha: float) -> dict[str, float]:
    nan = float("nan")
    if len(masks) < 2:
        return {"kappa": nan, "Q": nan, "p": nan, "similar_pairs": nan,
                "survival": float(as_mask_stack(masks).mean()) if len(masks) else nan}
    stack = as_mask_stack(masks)
    q, p = cochrans_q_test(stack)
    return {"kappa": fleiss_kappa_survival(stack), "Q": q, "p": p,
            "similar_pairs": int(pairwise_cochran(stack, alpha)["similar"].sum()),
            "survival": float(stack.mean())}


def stability_table(masks_by_task: MasksByTask, alpha: float = 0.05) -> pd.DataFrame:
    """One row per task: Fleiss' kappa, Cochran's Q and p over all seeds, the number of seed pairs
    that Cochran's Q finds similar (p >= alpha) out of n_pairs, for heads and for MLPs, and the mean
    survival rate (fraction of heads / MLPs kept, averaged over seeds). Fewer than 2 seeds: NaNs."""
    rows = []
    for task, by_seed in masks_by_task.items():
        seeds = sorted(by_seed)
        row: dict[str, object] = {"task": task, "n_seeds": len(seeds), "n_pairs": len(seeds) * (len(seeds) - 1) // 2}
        for kind, index in (("head", 0), ("mlp", 1)):
            stats = _stats([by_seed[s][index] for s in seeds], alpha)
            row.update({f"{kind}_{key}": value for key, value in stats.items()})
        rows.append(row)
    return pd.DataFrame(rows, columns=TABLE_COLUMNS)


def jaccard(a: np.ndarray, b: np.ndarray) -> float:
    """|kept in both| / |kept in either|; NaN when neither keeps anything."""
    a, b = as_mask_stack([a, b]).astype(bool)
    union = np.logical_or(a, b).sum()
    return float(np.logical_and(a, b).sum() / union) if union else float("nan")


def overlap_matrix(masks: Mapping[Hashable, np.ndarray]) -> pd.DataFrame:
    """Pairwise Jaccard overlap of the kept elements of labelled masks (seeds of a task, or tasks)."""
    labels = list(masks)
    values = [[jaccard(masks[a], masks[b]) for b in labels] for a in labels]
    return pd.DataFrame(values, index=labels, columns=labels, dtype=float)


def _mean_std(x: np.ndarray, ddof: int) -> tuple[np.ndarray, np.ndarray]:
    std = x.std(axis=0, ddof=ddof) if len(x) > ddof else np.full(x.shape[1:], np.nan)
    return x.mean(axis=0), std


def survival_across_tasks(masks_by_task: MasksByTask, ddof: int = 1
                          ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Figure 15: for each head / MLP, the number of tasks in which it survived, as mean and std over seeds.

    Seeds are paired across tasks by sorted order: the i-th smallest seed of every task forms run i
    (with the same seed list in every task, run i is seed i everywhere). Only the first
    min(#seeds over tasks) runs are used. `ddof=1` (sample std, as the authors' notebooks) gives NaN
    for a single run. Returns (head_mean (L, H), head_std (L, H), mlp_mean (L,), mlp_std (L,)).
    """
    if not masks_by_task:
        raise ValueError("no tasks")
    seed_lists = [(by_seed, sorted(by_seed)) for by_seed in masks_by_task.values()]
    n_runs = min(len(seeds) for _, seeds in seed_lists)
    if n_runs == 0:
        raise ValueError("a task has no seeds")
    runs = [[by_seed[seeds[i]] for by_seed, seeds in seed_lists] for i in range(n_runs)]
    heads = np.stack([sum(np.asarray(head, dtype=float) for head, _ in run) for run in runs])
    mlps = np.stack([sum(np.asarray(mlp, dtype=float) for _, mlp in run) for run in runs])
    return (*_mean_std(heads, ddof), *_mean_std(mlps, ddof))


def load_mask_tree(root: str | Path, subdir: str = "") -> dict[str, dict[int, tuple[np.ndarray, np.ndarray]]]:
    """Masks from `<root>/<task>/seed_<seed>/[<subdir>/]head_mask.npy` and `mlp_mask.npy` (1 = kept).

    This is the authors' layout (subdir "") and, with subdir = a stage name, the project's run folders.
    A missing `mlp_mask.npy` (heads-only runs) means all MLPs kept."""
    root = Path(root)
    pattern = "/".join(part for part in ("*", "seed_*", subdir, "head_mask.npy") if part)
    tree: dict[str, dict[int, tuple[np.ndarray, np.ndarray]]] = {}
    for head_path in sorted(root.glob(pattern)):
        task, seed_dir = head_path.relative_to(root).parts[:2]
        head = np.load(head_path)
        mlp_path = head_path.with_name("mlp_mask.npy")
        mlp = np.load(mlp_path) if mlp_path.exists() else np.ones(head.shape[0])
        tree.setdefault(task, {})[int(seed_dir.removeprefix("seed_"))] = (head, mlp)
    return tree
