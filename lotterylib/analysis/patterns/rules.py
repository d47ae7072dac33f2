"""The rule-based labeller: chance-corrected pattern scores of a map and the class they give; an
independent check of the generator and of the CNN.
"""
from __future__ import annotations

import numpy as np
# Rule-labeller thresholds, on chance-corrected scores (observed mass - uniform-row mass) / (1 - uniform-row mass),
# averaged over rows: 0 = no more than a uniform map, 1 = all mass there (see `pattern_scores`).
STRONG_MIN = 0.5   # vertical / diagonal / block: the score of the pattern is at least this
MIX_MIN = 0.2      # vertical+diagonal: both scores at least this, and their sum at least STRONG_MIN


def _corrected(masks: np.ndarray, m: np.ndarray) -> float:
    """Chance-corrected mean row mass of `m` on the boolean (n, n) `masks`."""
    observed, chance = (m * masks).sum(-1).mean(), masks.mean(-1).mean()
    return 0.0 if chance >= 1.0 else float((observed - chance) / (1.0 - chance))


def pattern_scores(m: np.ndarray, special_positions: np.ndarray, segment_ids: np.ndarray) -> dict[str, float]:
    """Chance-corrected mass of a row-stochastic (n, n) map on special columns, on the +-1 diagonals and
    within the own segment (0 for a single segment: a block cannot then be told apart from diffuse attention)."""
    m = np.asarray(m, dtype=np.float64)
    n = m.shape[0]
    i, j = np.indices((n, n))
    special = np.isin(j, special_positions)
    segment_ids = np.asarray(segment_ids)
    return {"vertical": _corrected(special, m),
            "diagonal": _corrected(np.abs(i - j) == 1, m),
            "block": _corrected(segment_ids[i] == segment_ids[j], m)}


def rule_label(m: np.ndarray, special_positions: np.ndarray, segment_ids: np.ndarray) -> str:
    """The class of one map from its chance-corrected scores, in this order:
    vertical+diagonal if both scores >= MIX_MIN and their sum >= STRONG_MIN; else vertical or diagonal (the larger)
    if it is >= STRONG_MIN; else block if its score >= STRONG_MIN; else heterogeneous."""
    s = pattern_scores(m, special_positions, segment_ids)
    v, d = s["vertical"], s["diagonal"]
    if min(v, d) >= MIX_MIN and v + d >= STRONG_MIN:
        return "vertical+diagonal"
    if max(v, d) >= STRONG_MIN:
        return "vertical" if v >= d else "diagonal"
    return "block" if s["block"] >= STRONG_MIN else "heterogeneous"
