"""Synthetic labelled attention maps laid on real tokenised sentences (the paper's annotated maps are not
public).

Generator recipes (each map: `s * pattern + (1 - s) * noise`, with strength s ~ U[STRENGTH_RANGE]; noise rows
are softmax(sigma * z), z ~ N(0, 1), sigma ~ U[0.5, 2]; pattern rows are Dirichlet-jittered around their mean):
- vertical: every row puts the same weights on 1 ([CLS] or a [SEP]), 2, or >= 3 special columns
  ([CLS]/[SEP]/punctuation; Kovaleva's single/double/multiple vertical), column weights ~ Dirichlet(2);
- diagonal: row i attends to i-1, i+1, or both (weights ~ Dirichlet(2, 2)); edge rows use the neighbour they have;
- vertical+diagonal: w * vertical + (1 - w) * diagonal with w ~ U[MIX_WEIGHT_RANGE];
- block: row i spreads over the tokens of its own segment (needs a pair: two blocks);
- heterogeneous: softmax of structured noisy logits, a random low-rank term (rank 1-4: blobs and stripes on
  arbitrary tokens) plus i.i.d. noise (scale ~ U[0.3, 1]), at a random temperature (~ U[0.5, 1.5]). A local
  band is deliberately left out: within a pair it is what the block class measures. Like real maps, 40% get a
  faint vertical pattern (weight ~ U[0, 0.45]) and 20% a faint diagonal one (~ U[0, 0.4]) mixed in
  (WEAK_PATTERNS), so that a faint stripe alone does not make a map vertical.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .layout import CLASSES, Layout, layout

# Generator ranges.
STRENGTH_RANGE = (0.65, 0.95)
MIX_WEIGHT_RANGE = (0.35, 0.65)
JITTER_RANGE = (20.0, 100.0)   # Dirichlet concentration around each pattern row (higher = cleaner)
# Heterogeneous maps: (pattern, probability, largest weight) of a faint pattern mixed in, as real maps have.
WEAK_PATTERNS = (("vertical", 0.4, 0.45), ("diagonal", 0.2, 0.4))


def _jitter(p: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Each row redrawn from a Dirichlet centred on it (on its support)."""
    g = rng.gamma(np.where(p > 0, rng.uniform(*JITTER_RANGE) * p, 1.0)) * (p > 0)
    return g / g.sum(-1, keepdims=True)


def _noise(n: int, rng: np.random.Generator) -> np.ndarray:
    z = rng.uniform(0.5, 2.0) * rng.standard_normal((n, n))
    e = np.exp(z - z.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def _vertical(lay: Layout, rng: np.random.Generator) -> np.ndarray:
    n, special = len(lay), lay.special
    kind = rng.integers(3)
    if kind == 0:
        cols = rng.choice(lay.cls_sep, 1)
    elif kind == 1:
        cols = rng.choice(special, min(2, len(special)), replace=False)
    else:
        cols = rng.choice(special, rng.integers(min(3, len(special)), len(special) + 1), replace=False)
    row = np.zeros(n)
    row[cols] = rng.dirichlet(np.full(len(cols), 2.0))
    return np.tile(row, (n, 1))


def _diagonal(lay: Layout, rng: np.random.Generator) -> np.ndarray:
    n = len(lay)
    w_prev, w_next = [(1.0, 0.0), (0.0, 1.0), tuple(rng.dirichlet((2.0, 2.0)))][rng.integers(3)]
    p = np.eye(n, k=-1) * w_prev + np.eye(n, k=1) * w_next
    empty = p.sum(-1) == 0                                          # edge rows without the chosen neighbour
    p[empty] = np.eye(n, k=-1)[empty] + np.eye(n, k=1)[empty]
    return p / p.sum(-1, keepdims=True)


def _block(lay: Layout, rng: np.random.Generator) -> np.ndarray:
    p = (lay.segments[:, None] == lay.segments[None, :]).astype(float)
    return p / p.sum(-1, keepdims=True)


def _heterogeneous(lay: Layout, rng: np.random.Generator) -> np.ndarray:
    n, rank = len(lay), rng.integers(1, 5)
    logits = (rng.standard_normal((n, rank)) @ rng.standard_normal((rank, n)) / np.sqrt(rank)
              + rng.uniform(0.3, 1.0) * rng.standard_normal((n, n)))
    z = rng.uniform(0.5, 1.5) * logits
    e = np.exp(z - z.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def _with_weak_pattern(m: np.ndarray, lay: Layout, rng: np.random.Generator) -> np.ndarray:
    """`m` with, by WEAK_PATTERNS, a faint vertical or diagonal pattern of weight w ~ U[0, largest] mixed in."""
    r = rng.random()
    for name, probability, largest in WEAK_PATTERNS:
        if r < probability:
            w = rng.uniform(0.0, largest)
            return (1 - w) * m + w * _jitter({"vertical": _vertical, "diagonal": _diagonal}[name](lay, rng), rng)
        r -= probability
    return m


def synthetic_map(label: str, lay: Layout, rng: np.random.Generator) -> np.ndarray:
    """One row-stochastic (n, n) map of class `label` on the layout `lay` (recipes: module docstring)."""
    if label == "heterogeneous":
        return _with_weak_pattern(_heterogeneous(lay, rng), lay, rng)
    if label == "vertical+diagonal":
        w = rng.uniform(*MIX_WEIGHT_RANGE)
        pattern = w * _jitter(_vertical(lay, rng), rng) + (1 - w) * _jitter(_diagonal(lay, rng), rng)
    else:
        pattern = _jitter({"vertical": _vertical, "diagonal": _diagonal, "block": _block}[label](lay, rng), rng)
    s = rng.uniform(*STRENGTH_RANGE)
    return s * pattern + (1 - s) * _noise(len(lay), rng)


def generate_dataset(token_lists: Sequence[Sequence[str]], n_per_class: int,
                     rng: np.random.Generator | int) -> tuple[list[np.ndarray], np.ndarray]:
    """`n_per_class` maps of each class on token lists drawn at random (block: from pairs only).
    Returns the maps (class by class) and their labels as indices into CLASSES."""
    rng = np.random.default_rng(rng)
    layouts = [layout(t) for t in token_lists]
    usable = [lay for lay in layouts if len(lay.cls_sep) >= 1 and len(lay) >= 3]
    pairs = [lay for lay in usable if lay.segments.max() >= 1]
    if not usable or not pairs:
        raise ValueError("generate_dataset needs token lists with [CLS]/[SEP] and at least one sentence pair "
                         "(for block maps): tokenise a pair task such as MRPC or RTE too.")
    maps, labels = [], []
    for k, label in enumerate(CLASSES):
        pool = pairs if label == "block" else usable
        for _ in range(n_per_class):
            maps.append(synthetic_map(label, pool[rng.integers(len(pool))], rng).astype(np.float32))
            labels.append(k)
    return maps, np.asarray(labels, dtype=np.int64)
