"""Counting the classes of a model's heads: per head and class, and the shares of the super-survivors'
maps against all heads' (Figure 4's input).
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from .layout import CLASSES


def head_class_counts(labels: np.ndarray, super_mask: np.ndarray, **keys: object) -> pd.DataFrame:
    """Tidy counts of an (examples, layers, heads) label array: one row per (layer, head, class), 0-based, with
    how many examples' maps got that class and whether the head is a super-survivor (`super_mask` (L, H) != 0);
    `keys` (e.g. task, model, map) become leading constant columns."""
    labels = np.asarray(labels)
    counts = np.stack([(labels == k).sum(0) for k in range(len(CLASSES))], axis=-1)   # (L, H, classes)
    layer, head, cls = (i.ravel() for i in np.indices(counts.shape))
    return pd.DataFrame({**{k: [v] * counts.size for k, v in keys.items()}, "layer": layer, "head": head,
                         "super_survivor": np.asarray(super_mask)[layer, head] != 0,
                         "class": np.asarray(CLASSES)[cls], "count": counts.ravel()})


def group_shares(counts: pd.DataFrame, keys: Sequence[str] = ("task", "model", "map")) -> pd.DataFrame:
    """Class counts and shares of the maps of the super-survivor heads and of all heads, per `keys`, from
    `head_class_counts` rows: columns *keys, group, class, count, share (`map` renamed `map_kind`, the
    input of `plots.pattern_distribution`). A key combination without super-survivors has no such rows."""
    keys = list(keys)
    parts = []
    for group, rows in (("super-survivors", counts[counts["super_survivor"]]), ("all heads", counts)):
        agg = rows.groupby([*keys, "class"], sort=False)["count"].sum().reset_index()
        agg["share"] = agg["count"] / agg.groupby(keys)["count"].transform("sum")
        parts.append(agg.assign(group=group))
    out = pd.concat(parts, ignore_index=True)[[*keys, "group", "class", "count", "share"]]
    return out.rename(columns={"map": "map_kind"})


def first_of_each_class(labels: np.ndarray) -> dict[str, tuple[int, ...]]:
    """The index of the first entry of each class present in a label array (e.g. (example, layer, head))."""
    labels = np.asarray(labels)
    return {name: tuple(int(i) for i in np.argwhere(labels == k)[0])
            for k, name in enumerate(CLASSES) if (labels == k).any()}


def share_table(shares: pd.DataFrame) -> pd.DataFrame:
    """`group_shares` for reading: one row per task, map kind, group and model, one column per class (0 where a
    class has no maps)."""
    return shares.pivot_table(index=["task", "map_kind", "group", "model"], columns="class", values="share",
                              fill_value=0.0)[list(CLASSES)]
