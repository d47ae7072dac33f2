"""The verdict vocabulary and rules of the claims checklist, shared by `report.claims` and the modules that
decide a claim (`stability.stability_verdict`) without importing each other.

With n >= 2 seeds the 95% t-interval of the mean per-seed difference decides: entirely above 0 "holds",
entirely at or below 0 "does not hold", otherwise (and always with one seed) "cannot tell with n seeds".
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy import stats as scipy_stats

HOLDS, FAILS = "holds", "does not hold"


def cannot_tell(n: int) -> str:
    return f"cannot tell with {n} seed{'s' if n != 1 else ''}"


def interval(diffs: Sequence[float], confidence: float = 0.95) -> tuple[float, float, float]:
    """Mean of paired per-seed differences and its two-sided t-interval (NaN bounds for fewer than 2 values;
    a zero-width interval when all differences are equal)."""
    d = np.asarray(diffs, dtype=float)
    d = d[np.isfinite(d)]
    if len(d) < 2:
        return (float(d.mean()) if len(d) else np.nan), np.nan, np.nan
    half = scipy_stats.t.ppf(0.5 + confidence / 2, len(d) - 1) * d.std(ddof=1) / np.sqrt(len(d))
    return float(d.mean()), float(d.mean() - half), float(d.mean() + half)


def verdict(diffs: Sequence[float], confidence: float = 0.95) -> str:
    """"holds" / "does not hold" / "cannot tell with n seeds" for a claim that the differences are positive."""
    n = int(np.isfinite(np.asarray(diffs, dtype=float)).sum())
    _, low, high = interval(diffs, confidence)
    if n >= 2 and low > 0:
        return HOLDS
    if n >= 2 and high <= 0:
        return FAILS
    return cannot_tell(n)


def combine(verdicts: Sequence[str]) -> str:
    """A claim made of several parts: it holds if every part holds, fails if any part fails, else cannot tell."""
    if any(v == FAILS for v in verdicts):
        return FAILS
    if all(v == HOLDS for v in verdicts):
        return HOLDS
    return next(v for v in verdicts if v != HOLDS)


def tally(verdicts: pd.Series) -> dict[str, int]:
    """How many verdicts of each kind: every "cannot tell ..." (and "at the floor") counted as "cannot tell",
    "holds by construction (...)" as "holds by construction"."""
    kinds = verdicts.str.replace(r"^(cannot tell|at the floor).*", "cannot tell", regex=True)
    kinds = kinds.str.replace(r"^holds by construction.*", "holds by construction", regex=True)
    return kinds.value_counts().to_dict()

