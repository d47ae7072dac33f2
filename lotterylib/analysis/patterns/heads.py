"""Classifying a model's heads: the labelled training sets (generated, or the authors' archive), one trained
classifier per map kind, and each head's maps labelled by the CNN and by the rule labeller.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ...core.data import Encoded
from ...core.rules import PAPER_RULES, Rules
from .archive import load_authors_archive
from .cnn import TrainedClassifier, classify, row_normalize, train_classifier
from .generate import generate_dataset
from .layout import CLASSES, MAP_KINDS, layout
from .rules import rule_label


@dataclass
class MapClassifier:
    """The CNN used for one kind of map, and whether maps are row-normalised before it sees them (generated
    training maps are row-stochastic, norm-weighted maps are not)."""

    trained: TrainedClassifier
    source: str
    row_normalize: bool


@dataclass
class LabelledMaps:
    """A labelled training set: maps of any size, labels as indices into CLASSES, and where they come from."""

    maps: list[np.ndarray]
    labels: np.ndarray
    source: str   # "generated" or "authors' archive (<kind>)"


def labelled_sets(token_lists: Sequence[Sequence[str]], n_per_class: int, seed: int,
                  authors_archive: str | Path = "") -> dict[str, LabelledMaps]:
    """The training maps per map kind ("raw", "normed"): the authors' archive when given (one set per kind),
    else `n_per_class` generated maps per class on `token_lists` (seeded), one set shared by both kinds."""
    if authors_archive:
        return {kind: LabelledMaps(*load_authors_archive(authors_archive, kind), f"authors' archive ({kind})")
                for kind in MAP_KINDS}
    generated = LabelledMaps(*generate_dataset(token_lists, n_per_class, seed), "generated")
    return {kind: generated for kind in MAP_KINDS}


def train_map_classifiers(sets: dict[str, LabelledMaps], seed: int, epochs: int, input_size: int = 64,
                          progress: bool = True, **train_kwargs) -> dict[str, MapClassifier]:
    """A classifier per map kind, trained once per distinct set (`train_classifier`). Generated maps are
    row-stochastic, so norm-weighted maps are row-normalised for a CNN trained on them; the authors' maps are
    used as stored, and so are ours for their CNNs."""
    trained: dict[int, TrainedClassifier] = {}
    out = {}
    for kind, data in sets.items():
        if id(data) not in trained:
            trained[id(data)] = train_classifier(data.maps, data.labels, seed, epochs, input_size=input_size,
                                                 progress=progress, **train_kwargs)
        out[kind] = MapClassifier(trained[id(data)], data.source, kind == "normed" and data.source == "generated")
    return out


def label_model(model: torch.nn.Module, enc: Encoded, token_lists: Sequence[Sequence[str]],
                classifiers: dict[str, MapClassifier], rules: Rules = PAPER_RULES
                ) -> dict[str, tuple[list[np.ndarray], np.ndarray, np.ndarray]]:
    """For each map kind of `classifiers`: (maps, CNN labels, rule labels) of every head for every example of
    `enc`, whose tokens are `token_lists` (`attention_maps.example_maps`, then `label_maps`)."""
    from ..attention_maps import example_maps

    out = {}
    for kind, classifier in classifiers.items():
        maps = example_maps(model, enc, normed=kind == "normed", rules=rules)
        out[kind] = (maps, *label_maps(classifier, maps, token_lists))
    return out


def label_maps(classifier: MapClassifier, maps: Sequence[np.ndarray],
               token_lists: Sequence[Sequence[str]]) -> tuple[np.ndarray, np.ndarray]:
    """The CNN's and the rule labeller's classes (indices into CLASSES) of every head's map of every example:
    two (examples, layers, heads) arrays. `maps` holds one (layers, heads, n, n) array per example and
    `token_lists` its n tokens; the rule labeller always sees row-normalised maps."""
    cnn, rule = [], []
    for m, tokens in zip(maps, token_lists, strict=True):
        layers, heads, n, _ = m.shape
        if len(tokens) != n:
            raise ValueError(f"a map of {n} tokens with a token list of {len(tokens)}")
        flat = m.reshape(layers * heads, n, n)
        normalised = [row_normalize(x) for x in flat]
        cnn.append(classify(classifier.trained.model, normalised if classifier.row_normalize else flat))
        lay = layout(tokens)
        rule.append([CLASSES.index(rule_label(x, lay.special, lay.segments)) for x in normalised])
    shape = (len(cnn), *maps[0].shape[:2]) if cnn else (0, 0, 0)
    return np.asarray(cnn, dtype=np.int64).reshape(shape), np.asarray(rule, dtype=np.int64).reshape(shape)
