"""Stability of the pruning masks across seeds and tasks (paper section 5.1, Figure 15).

A mask is a 0/1 array, 1 = the element (head, MLP or weight) survived. A stack of masks is an (S, N)
array: one row per seed, one column per element (`masks.as_mask_stack`). `masks_by_task` is the nested dict
`{task: {seed: HeadMasks}}` (`masks.HeadMaskTree`) that `masks.load_head_mask_tree` builds from disk
(`stages.inputs.load_stability_masks` picks a preset's own s-pruning masks or a folder in the authors'
layout).

What the statistics test. Fleiss' kappa measures how much the seeds agree on kept / pruned beyond the
agreement expected from the overall keep rate. Cochran's Q tests marginal homogeneity: whether the seeds keep
different *numbers* of elements (its value depends on the per-seed totals and the per-element totals only, so
Q = 0 whenever every seed keeps as many elements, whichever they are); the paper's statistics are kept as the
paper computed them. Whether the seeds keep the same *elements* is decided by `agreement.agreement_test`: the
mean pairwise Jaccard overlap against random masks of the same per-seed sizes, and the shares of elements kept
by every seed, by some, by none. `stability_verdict` turns a row of the table into the checklist's verdict.

Degenerate inputs follow two conventions, used everywhere here:
- Fleiss' kappa is NaN when every element lands in the same category in every seed (chance agreement
  is 1, so kappa is 0/0), e.g. WNLI's MLPs, all pruned in every seed.
- Cochran's Q is 0 with p = 1 when all seeds' masks are identical (Q's formula is then 0/0, and identical
  masks have equal sizes, which is Q's null). The authors' notebook got NaN there and counted such a pair as
  *not* similar.
"""
from __future__ import annotations

import zlib
from collections.abc import Hashable, Mapping, Sequence
from itertools import combinations

import numpy as np
import pandas as pd
from statsmodels.stats.contingency_tables import cochrans_q
from statsmodels.stats.inter_rater import fleiss_kappa

from ..pruning.masks import HeadMasksByTask, as_mask_stack, stack_seeds
from . import agreement
from .verdicts import FAILS, HOLDS, cannot_tell

KINDS = {"head": 0, "mlp": 1}   # position in a (head_mask, mlp_mask) pair
UNITS = {"head": "heads", "mlp": "MLPs"}

POOLED = "all tasks"   # the task name of the row that pools the tasks
AGREEMENT_KEYS = ["jaccard", "jaccard_chance", "jaccard_ratio", "kappa_chance", "p_more", "p_less",
                  "kept_all", "kept_some", "kept_none", "core"]
TABLE_COLUMNS = ["task", "n_seeds", "head_kappa", "head_Q", "head_p", "head_similar_pairs", "n_pairs",
                 "mlp_kappa", "mlp_Q", "mlp_p", "mlp_similar_pairs", "head_survival", "mlp_survival",
                 *(f"{kind}_{key}" for kind in KINDS for key in AGREEMENT_KEYS), "n_draws"]
STABLE_SHARE = 0.5   # stable: at least this share of the elements that some seed keeps is kept by every seed


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


def _paper_stats(stack: np.ndarray, alpha: float) -> dict[str, float]:
    q, p = cochrans_q_test(stack)
    return {"kappa": fleiss_kappa_survival(stack), "Q": q, "p": p,
            "similar_pairs": int(pairwise_cochran(stack, alpha)["similar"].sum()), "survival": float(stack.mean())}


def _agreement_stats(test: agreement.Agreement, shares: tuple[float, float, float],
                     core: float) -> dict[str, float]:
    return {"jaccard": test.jaccard, "jaccard_chance": test.jaccard_chance, "jaccard_ratio": test.jaccard_ratio,
            "kappa_chance": test.kappa_chance, "p_more": test.p_more, "p_less": test.p_less,
            **dict(zip(("kept_all", "kept_some", "kept_none"), shares)), "core": core}


def core_share(kept_all: float, kept_some: float) -> float:
    """The share of the elements kept by some seed that every seed keeps: kept_all / (kept_all + kept_some);
    NaN when no seed keeps anything."""
    kept_any = kept_all + kept_some
    return kept_all / kept_any if kept_any > 0 else float("nan")


def _null_seed(seed: int, task: str, kind: str) -> list[int]:
    """The null draws' seed of one task and kind: the same whichever other tasks are in the table."""
    return [int(seed), zlib.crc32(f"{task}/{kind}".encode())]


def check_enough_seeds(masks_by_task: HeadMasksByTask) -> None:
    """Every task needs masks of at least 2 distinct seeds (agreement between seeds needs two); a ValueError
    naming the tasks and the seeds found otherwise."""
    few = {task: sorted(by_seed) for task, by_seed in masks_by_task.items() if len(by_seed) < 2}
    if few:
        found = "; ".join(f"{task} has {'masks for seeds ' + str(seeds) if seeds else 'no masks'}"
                          for task, seeds in few.items())
        raise ValueError(f"Stability needs at least 2 distinct seeds per task: {found}. Fix: run the s-pruning of "
                         "at least two different seeds of every task (e.g. seeds: [1, 2]), or leave the task out.")


def mask_statistics(masks_by_task: HeadMasksByTask, alpha: float = 0.05, n_draws: int = agreement.DEFAULT_DRAWS,
                    seed: int = 0) -> pd.DataFrame:
    """One row per task, and a last row `POOLED` over the tasks, for heads and for MLPs.

    The paper's statistics: Fleiss' kappa, Cochran's Q and p over all seeds, the number of seed pairs whose
    Cochran's Q is not rejected at `alpha` ("similar" in the authors' notebook) out of n_pairs, and the mean
    survival rate. The agreement test (`agreement.agreement_test`, `n_draws` draws seeded by `seed`, the task
    and the kind): mean pairwise Jaccard, its chance value and their ratio, kappa's chance value, the p-values
    of agreeing more / less than chance, the shares of elements kept by every seed, some, none, and the core
    share (`core_share`).

    The pooled row: kappa, survival, the kept shares and the core share are means over tasks (NaNs left out; a
    core share from pooled counts would let a task that prunes little outweigh the others), similar pairs and
    n_pairs sums,
    n_seeds the fewest seeds of a task, Q and p empty (the paper tests each task), and the agreement test
    pooled by `agreement.pooled_test`. Every task needs at least 2 seeds (`check_enough_seeds`)."""
    check_enough_seeds(masks_by_task)
    rows, tests = [], {kind: [] for kind in KINDS}
    for task, by_seed in masks_by_task.items():
        seeds = sorted(by_seed)
        row: dict[str, object] = {"task": task, "n_seeds": len(seeds), "n_pairs": len(seeds) * (len(seeds) - 1) // 2,
                                  "n_draws": n_draws}
        for kind, index in KINDS.items():
            stack = as_mask_stack([by_seed[s][index] for s in seeds])
            test = agreement.agreement_test(stack, n_draws, _null_seed(seed, task, kind))
            tests[kind].append(test)
            shares = agreement.kept_shares(stack)
            stats = {**_paper_stats(stack, alpha), **_agreement_stats(test, shares, core_share(*shares[:2]))}
            row.update({f"{kind}_{key}": value for key, value in stats.items()})
        rows.append(row)
    table = pd.DataFrame(rows, columns=TABLE_COLUMNS)
    pooled: dict[str, object] = {"task": POOLED, "n_seeds": int(table.n_seeds.min()),
                                 "n_pairs": int(table.n_pairs.sum()), "n_draws": n_draws}
    for kind in KINDS:
        test = agreement.pooled_test(tests[kind])
        shares = tuple(table[f"{kind}_{key}"].mean() for key in ("kept_all", "kept_some", "kept_none"))
        stats = {"kappa": test.kappa, "Q": np.nan, "p": np.nan,
                 "similar_pairs": int(table[f"{kind}_similar_pairs"].sum()),
                 "survival": table[f"{kind}_survival"].mean(),
                 **_agreement_stats(test, shares, table[f"{kind}_core"].mean())}
        pooled.update({f"{kind}_{key}": value for key, value in stats.items()})
    return pd.concat([table, pd.DataFrame([pooled], columns=TABLE_COLUMNS)], ignore_index=True)


def stability_verdict(row: Mapping[str, float], kind: str = "head", alpha: float = 0.05,
                      stable_share: float = STABLE_SHARE) -> tuple[str, str]:
    """(verdict, numbers) on the paper's claim "the good subnetworks are not stable across seeds" from one row
    of `mask_statistics` (a task, or the pooled row), for heads (`kind` "head") or MLPs ("mlp").

    The core share (`core_share`; in the pooled row the mean over tasks) is the share of the elements kept by
    some seed that every seed keeps. The claim holds when it is below `stable_share` (most of what the seeds
    keep depends on the seed), whether or not the seeds agree more than chance. It does not hold when the core
    share reaches `stable_share` and the seeds agree more than random masks of their sizes (p_more < `alpha`).
    A core share reached while random masks of these sizes overlap as much (p_more >= alpha: e.g. every seed
    keeps nearly everything) cannot tell; nor can a row where no seed keeps anything, or one with < 2 seeds."""
    if kind not in KINDS:
        raise ValueError(f"kind = {kind!r}: one of {', '.join(KINDS)}")
    if any(f"{kind}_{key}" not in row for key in AGREEMENT_KEYS):
        return "cannot tell: stability stage predates the permutation test", ""
    get = {key: float(row[f"{kind}_{key}"]) for key in AGREEMENT_KEYS}
    n_seeds = int(row.get("n_seeds", 0))
    if n_seeds < 2:
        return cannot_tell(n_seeds), "agreement between seeds needs at least 2"
    units = UNITS[kind]
    core = get["core"]
    if not np.isfinite(core):
        return f"cannot tell: no seed keeps any of the {units}", f"every seed prunes all {units}"
    ratio = f"x{get['jaccard_ratio']:.2f}, " if np.isfinite(get["jaccard_ratio"]) else ""
    numbers = (f"every seed keeps {core:.0%} of the {units} some seed keeps (all {get['kept_all']:.0%}, "
               f"some {get['kept_some']:.0%}, none {get['kept_none']:.0%} of the {units}); mean pairwise Jaccard "
               f"{get['jaccard']:.2f} vs {get['jaccard_chance']:.2f} for random masks of the same sizes "
               f"({ratio}p more {get['p_more']:.2g}, p less {get['p_less']:.2g}); stable from {stable_share:.0%}")
    if core < stable_share:
        return HOLDS, numbers
    if get["p_more"] < alpha:
        return FAILS, numbers
    return f"cannot tell: random masks of these sizes overlap as much (p more {get['p_more']:.2g})", numbers


def agreement_view(table: pd.DataFrame, kind: str = "head", alpha: float = 0.05) -> pd.DataFrame:
    """The agreement test's columns of a `mask_statistics` for one kind, by task, with short names and the
    verdict of `stability_verdict`."""
    view = table.set_index("task")[[f"{kind}_{key}" for key in ("kappa", "kappa_chance", *AGREEMENT_KEYS[:3],
                                                                  *AGREEMENT_KEYS[4:])]]
    view.columns = [c.removeprefix(f"{kind}_") for c in view.columns]
    return view.assign(verdict=[stability_verdict(row, kind, alpha)[0] for row in table.to_dict(orient="records")])


def agreement_views(table: pd.DataFrame, alpha: float = 0.05) -> pd.DataFrame:
    """`agreement_view` of heads and of MLPs, one table with the kind ("heads", "MLPs") as its first index level."""
    return pd.concat({UNITS[kind]: agreement_view(table, kind, alpha) for kind in KINDS}, names=["kind"])


def verdicts_by_kind(table: pd.DataFrame, alpha: float = 0.05) -> dict[str, dict[str, str]]:
    """{kind: {task: verdict}} of `stability_verdict` for every row of a `mask_statistics` (for metrics.json)."""
    return {kind: agreement_view(table, kind, alpha).verdict.to_dict() for kind in KINDS}


def head_summary(table: pd.DataFrame) -> dict[str, float]:
    """The heads' headline statistics of a `mask_statistics` per task, flat: "<task> head <statistic>"."""
    keys = ("kappa", "Q", "p", "jaccard", "p_more", "kept_all")
    return {f"{row['task']} head {key}": row[f"head_{key}"] for row in table.to_dict(orient="records") for key in keys}


def _range(values: pd.Series, fmt: str) -> str:
    values = values.dropna()
    if values.empty:
        return "undefined"
    low, high = values.min(), values.max()
    return format(low, fmt) if low == high else f"{low:{fmt}} to {high:{fmt}}"


def summary_markdown(table: pd.DataFrame, kind: str = "head", alpha: float = 0.05) -> str:
    """A paragraph of markdown generated from a `mask_statistics`: what the paper's statistics and the agreement
    test say about the heads (or MLPs) of its tasks, and the verdict on "the good subnetworks are not stable
    across seeds" per task and pooled (`stability_verdict`)."""
    units = UNITS[kind]
    tasks = table[table.task != POOLED]
    n = len(tasks)
    pooled = table[table.task == POOLED].iloc[0]
    col = lambda key: tasks[f"{kind}_{key}"]   # noqa: E731
    rejected = int((col("p") < alpha).sum())
    more, less = int((col("p_more") < alpha).sum()), int((col("p_less") < alpha).sum())
    verdicts = [stability_verdict(row, kind, alpha)[0] for row in tasks.to_dict(orient="records")]
    counts = {v: sum(x == v for x in verdicts) for v in (HOLDS, FAILS)}
    unclear = n - counts[HOLDS] - counts[FAILS]
    pooled_verdict, pooled_numbers = stability_verdict(pooled.to_dict(), kind, alpha)
    return (
        f"**{units[0].upper() + units[1:]}, {n} task{'s' if n != 1 else ''}.** Fleiss' kappa is "
        f"{_range(col('kappa'), '.2f')}. Cochran's Q, which tests whether the seeds keep equal numbers of {units} "
        f"(not whether they keep the same ones), rejects that in {rejected} of {n} (p < {alpha}). Against random "
        f"masks of the same sizes, the seeds' masks overlap more than chance in {more} of {n} tasks and less in "
        f"{less} (mean pairwise Jaccard {_range(col('jaccard'), '.2f')}, by chance "
        f"{_range(col('jaccard_chance'), '.2f')}). Every seed keeps {_range(col('core'), '.0%')} of the {units} "
        f"that some seed keeps. The paper's claim \"the good subnetworks are not stable across seeds\" holds in "
        f"{counts[HOLDS]}, does not hold in {counts[FAILS]} and cannot be told in {unclear} of {n}; over all tasks "
        f"it **{pooled_verdict}**: {pooled_numbers}.")


def summaries_markdown(table: pd.DataFrame, alpha: float = 0.05) -> str:
    """`summary_markdown` of heads and of MLPs, one paragraph each."""
    return "\n\n".join(summary_markdown(table, kind, alpha) for kind in KINDS)


PUBLISHED_STATISTICS = {"fleiss_kappa": "kappa", "cochran_q_pvalue_5seeds": "p",
                        "fraction_seed_pairs_not_rejected_p>=0.05": "similar_pairs"}   # published name -> our column


def authors_comparison(table: pd.DataFrame, published: pd.DataFrame) -> pd.DataFrame:
    """Our statistics of the authors' masks (`mask_statistics` of them) next to the ones the authors' notebook
    printed (`reference.authors_stability()`), for the tasks of `table`: task, kind, statistic, published, ours,
    difference (ours - published). The share of similar seed pairs is ours similar_pairs / n_pairs."""
    ours = table.set_index("task")
    rows = []
    for r in published[published.statistic.isin(list(PUBLISHED_STATISTICS))].itertuples():
        kind = {"heads": "head", "mlps": "mlp"}[r.component]
        if r.task not in ours.index:
            continue
        column = PUBLISHED_STATISTICS[r.statistic]
        value = float(ours.loc[r.task, f"{kind}_{column}"])
        if column == "similar_pairs":
            value /= float(ours.loc[r.task, "n_pairs"])
        rows.append({"task": r.task, "kind": kind, "statistic": r.statistic, "published": r.value, "ours": value,
                     "difference": value - r.value})
    return pd.DataFrame(rows, columns=["task", "kind", "statistic", "published", "ours", "difference"])


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


def _runs(masks_by_task: HeadMasksByTask) -> list[list[tuple[np.ndarray, np.ndarray]]]:
    """Run i = the i-th smallest seed of every task (tasks in dict order), for the first min(#seeds) runs."""
    if not masks_by_task:
        raise ValueError("no tasks")
    seed_lists = [(by_seed, sorted(by_seed)) for by_seed in masks_by_task.values()]
    n_runs = min(len(seeds) for _, seeds in seed_lists)
    if n_runs == 0:
        raise ValueError("a task has no seeds")
    return [[by_seed[seeds[i]] for by_seed, seeds in seed_lists] for i in range(n_runs)]


def survival_across_tasks(masks_by_task: HeadMasksByTask, ddof: int = 1
                          ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Figure 15: for each head / MLP, the number of tasks in which it survived, as mean and std over seeds.

    Seeds are paired across tasks by sorted order: the i-th smallest seed of every task forms run i
    (with the same seed list in every task, run i is seed i everywhere). Only the first
    min(#seeds over tasks) runs are used. `ddof=1` (sample std, as the authors' notebooks) gives NaN
    for a single run. Returns (head_mean (L, H), head_std (L, H), mlp_mean (L,), mlp_std (L,)).
    """
    runs = _runs(masks_by_task)
    heads = np.stack([sum(np.asarray(head, dtype=float) for head, _ in run) for run in runs])
    mlps = np.stack([sum(np.asarray(mlp, dtype=float) for _, mlp in run) for run in runs])
    return (*_mean_std(heads, ddof), *_mean_std(mlps, ddof))


def seed_survival(by_seed: Mapping[int, tuple[np.ndarray, np.ndarray]], ddof: int = 1
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Figure 1 for one task: mean and std over seeds of per-seed (head (L, H), MLP (L,)) arrays.

    For s-masks the mean is the fraction of seeds in which each head / MLP survived; for m-pruning's
    surviving-weight fractions it is the mean fraction. Returns (head_mean, head_std, mlp_mean, mlp_std)."""
    heads, mlps = stack_seeds(by_seed)
    return (*_mean_std(heads, ddof), *_mean_std(mlps, ddof))


def pairwise_table(masks_by_task: HeadMasksByTask, alpha: float = 0.05) -> pd.DataFrame:
    """Every seed pair's Cochran's Q for heads and MLPs of every task: task, kind, seed_a, seed_b, Q, p, similar."""
    parts = []
    for task, by_seed in masks_by_task.items():
        seeds = sorted(by_seed)
        for kind, index in KINDS.items():
            if len(seeds) >= 2:
                table = pairwise_cochran([by_seed[s][index] for s in seeds], alpha, labels=seeds)
                parts.append(table.assign(task=task, kind=kind))
    columns = ["task", "kind", "seed_a", "seed_b", "Q", "p", "similar"]
    return pd.concat(parts, ignore_index=True)[columns] if parts else pd.DataFrame(columns=columns)


def seed_overlap(by_seed: Mapping[int, tuple[np.ndarray, np.ndarray]], kind: str = "head") -> pd.DataFrame:
    """Jaccard overlap of the kept heads (kind "head") or MLPs ("mlp") between the seeds of one task."""
    return overlap_matrix({seed: by_seed[seed][KINDS[kind]] for seed in sorted(by_seed)})


def task_overlap(masks_by_task: HeadMasksByTask, kind: str = "head") -> pd.DataFrame:
    """Jaccard overlap of the kept heads or MLPs between tasks, averaged over runs (run i = the i-th smallest
    seed of each task, as in `survival_across_tasks`)."""
    matrices = [overlap_matrix(dict(zip(masks_by_task, (pair[KINDS[kind]] for pair in run))))
                for run in _runs(masks_by_task)]
    return sum(matrices) / len(matrices)


def mean_offdiagonal(matrix: pd.DataFrame) -> float:
    """Mean of the off-diagonal entries of a square overlap matrix, NaNs ignored (NaN if none)."""
    values = matrix.to_numpy(dtype=float)[~np.eye(len(matrix), dtype=bool)]
    return float(np.nanmean(values)) if np.isfinite(values).any() else float("nan")


def importance_at(histories: Sequence[Mapping[str, np.ndarray]], step: int) -> tuple[int, np.ndarray, np.ndarray]:
    """Figure 3: the normalised importance of the heads and MLPs still in the model at pruning step `step`
    (0 = the unpruned model), pooled over histories (`masks.load_search_history`, e.g. one per seed).

    `step` is clipped to the last step every history has. Returns (step used, head scores, MLP scores), flat."""
    if not histories:
        raise ValueError("no search histories")
    step = int(np.clip(step, 0, min(len(h["scores"]) for h in histories) - 1))
    heads = np.concatenate([h["head_importance"][step][h["head_masks"][step] != 0] for h in histories])
    mlps = np.concatenate([h["mlp_importance"][step][h["mlp_masks"][step] != 0] for h in histories])
    return step, heads, mlps
