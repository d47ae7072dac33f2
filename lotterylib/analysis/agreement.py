"""Do the seeds keep the same heads more (or less) often than their mask sizes alone would make them?
A permutation test of agreement between masks.

A stack of masks is an (S, N) 0/1 array: one row per seed, one column per unit (head or MLP), 1 = kept.
The null hypothesis: each seed keeps a uniformly random set of units of its own size, independently of the
other seeds. Overlap under the null comes from the sizes only (two seeds that each keep 90% of the heads share
most of them whatever they are). The statistics:

- the mean pairwise Jaccard overlap |A and B| / |A or B| over the seed pairs (pairs where neither seed keeps
  anything are left out, in the data and in every draw alike; NaN when no pair is left);
- Fleiss' kappa of kept / pruned with the seeds as raters (the same formula as `statsmodels`).

`agreement_test` draws `n_draws` null stacks with the observed sizes and returns the observed values, their
means under the null ("chance") and the one-sided permutation p-values of "agree more than chance" (the share
of draws at least as high as observed) and "agree less than chance" (at most as low), each counted as
(1 + draws) / (1 + n_draws) so that a p-value is never 0. `pooled_test` combines tasks: its statistic is the
mean over tasks, its null the mean over tasks of independent draws (a stratified permutation test).
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

DEFAULT_DRAWS = 10_000
TIE_TOLERANCE = 1e-9   # a draw within this of the observed value counts as equal (floating-point ratios)


def null_masks(sizes: Sequence[int], n_units: int, n_draws: int, rng: np.random.Generator) -> np.ndarray:
    """`n_draws` stacks of random masks, (n_draws, S, n_units) bool: row s keeps `sizes[s]` units chosen
    uniformly at random (the `sizes[s]` smallest of `n_units` uniform keys), independently across rows."""
    sizes = [int(k) for k in sizes]
    if any(k < 0 or k > n_units for k in sizes):
        raise ValueError(f"mask sizes {sizes} must lie between 0 and the number of units, {n_units}")
    masks = np.zeros((n_draws, len(sizes), n_units), dtype=bool)
    for s, k in enumerate(sizes):
        keys = rng.random((n_draws, n_units))
        if k > 0:
            masks[:, s] = keys <= np.partition(keys, k - 1, axis=-1)[:, k - 1:k]
    return masks


def mean_pairwise_jaccard(masks: np.ndarray) -> np.ndarray:
    """Mean Jaccard overlap over the seed pairs of (..., S, N) 0/1 stacks -> (...), NaN where no pair keeps
    anything (pairs whose union is empty are left out)."""
    masks = np.asarray(masks, dtype=bool)
    first, second = np.triu_indices(masks.shape[-2], 1)
    sizes = masks.sum(-1)
    inter = np.stack([np.count_nonzero(masks[..., a, :] & masks[..., b, :], axis=-1)
                      for a, b in zip(first, second)], axis=-1)
    union = sizes[..., first] + sizes[..., second] - inter
    ratios = np.where(union > 0, inter / np.maximum(union, 1), 0.0)
    pairs = (union > 0).sum(-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(pairs > 0, ratios.sum(-1) / pairs, np.nan)


def fleiss_kappa(masks: np.ndarray) -> np.ndarray:
    """Fleiss' kappa of kept / pruned over (..., S, N) 0/1 stacks -> (...): items = units, raters = seeds.
    NaN where every unit is kept by every seed or by none (chance agreement 1: kappa is 0/0)."""
    masks = np.asarray(masks, dtype=bool)
    n = masks.shape[-2]
    kept = masks.sum(-2).astype(float)                                 # (..., N) raters saying "kept"
    share = kept.mean(-1) / n
    chance = share ** 2 + (1 - share) ** 2
    observed = ((kept ** 2 + (n - kept) ** 2 - n) / (n * (n - 1))).mean(-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(chance < 1, (observed - chance) / (1 - chance), np.nan)


def permutation_p(observed: float, null: np.ndarray) -> tuple[float, float]:
    """(p_more, p_less): (1 + #draws >= observed) / (1 + #draws) and (1 + #draws <= observed) / (1 + #draws).
    NaN when the observed value is NaN."""
    if not np.isfinite(observed):
        return float("nan"), float("nan")
    null = np.asarray(null, dtype=float)
    more = np.count_nonzero(null >= observed - TIE_TOLERANCE)
    less = np.count_nonzero(null <= observed + TIE_TOLERANCE)
    return float((1 + more) / (1 + null.size)), float((1 + less) / (1 + null.size))


def kept_shares(masks: np.ndarray) -> tuple[float, float, float]:
    """Shares of all units kept by every seed, by some but not all, and by none, of an (S, N) 0/1 stack."""
    masks = np.asarray(masks, dtype=bool)
    kept = masks.sum(0)
    every, none = float(np.mean(kept == len(masks))), float(np.mean(kept == 0))
    return every, 1.0 - every - none, none


@dataclass(frozen=True)
class Agreement:
    """Observed agreement of a stack of masks against random masks of the same sizes."""
    jaccard: float          # mean pairwise Jaccard
    jaccard_chance: float   # its mean under the null
    kappa: float            # Fleiss' kappa
    kappa_chance: float     # its mean under the null
    p_more: float           # p of agreeing more than chance (mean pairwise Jaccard)
    p_less: float           # p of agreeing less than chance
    n_draws: int
    null_jaccard: np.ndarray = field(repr=False, compare=False)   # one value per draw

    @property
    def jaccard_ratio(self) -> float:
        """Observed / chance mean pairwise Jaccard (NaN when chance is 0 or undefined)."""
        return self.jaccard / self.jaccard_chance if self.jaccard_chance > 0 else float("nan")


def _mean(values: np.ndarray) -> float:
    return float(values.mean()) if np.isfinite(values).all() else float("nan")


def agreement_test(masks: np.ndarray, n_draws: int = DEFAULT_DRAWS,
                   seed: int | Sequence[int] = 0) -> Agreement:
    """The permutation test of agreement of an (S, N) 0/1 stack (S >= 2) with `n_draws` null draws from
    `np.random.default_rng(seed)` (same seed, same result)."""
    masks = np.asarray(masks, dtype=bool)
    if masks.ndim != 2 or len(masks) < 2:
        raise ValueError(f"agreement needs an (S, N) stack of at least 2 masks, got shape {masks.shape}")
    if n_draws < 1:
        raise ValueError(f"n_draws = {n_draws}: needs at least 1 draw")
    null = null_masks(masks.sum(1), masks.shape[1], n_draws, np.random.default_rng(seed))
    observed = float(mean_pairwise_jaccard(masks))
    null_jaccard = mean_pairwise_jaccard(null)
    return Agreement(observed, _mean(null_jaccard), float(fleiss_kappa(masks)), _mean(fleiss_kappa(null)),
                     *permutation_p(observed, null_jaccard), n_draws, null_jaccard)


def pooled_test(tests: Sequence[Agreement]) -> Agreement:
    """Tasks pooled: the mean over tasks of each statistic (tasks where it is NaN left out, in the data and
    the null alike) and p-values from the mean over tasks of their independent null draws, draw by draw."""
    if not tests or len({t.n_draws for t in tests}) != 1:
        raise ValueError("pooling needs at least one test, all with the same number of draws")
    defined = [t for t in tests if np.isfinite(t.jaccard)]
    with_kappa = [t for t in tests if np.isfinite(t.kappa)]
    nan = float("nan")
    if defined:
        jaccard = float(np.mean([t.jaccard for t in defined]))
        null = np.mean([t.null_jaccard for t in defined], axis=0)
        chance = _mean(null)
    else:
        jaccard, chance, null = nan, nan, np.full(tests[0].n_draws, nan)
    kappa = float(np.mean([t.kappa for t in with_kappa])) if with_kappa else nan
    kappa_chance = float(np.mean([t.kappa_chance for t in with_kappa])) if with_kappa else nan
    return Agreement(jaccard, chance, kappa, kappa_chance, *permutation_p(jaccard, null), tests[0].n_draws, null)
