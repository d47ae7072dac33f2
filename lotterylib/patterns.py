"""Attention-pattern classes of Kovaleva et al. (2019) and the head classifier of the paper (docs/method.md section 7).

The paper's annotated maps are not public, so this module makes a labelled set of its own: synthetic
row-stochastic maps laid on real tokenised GLUE sentences (positions of [CLS], [SEP], punctuation and of the
two sentences of a pair come from the tokenizer), checked by an independent rule-based labeller. It also
loads the authors' archive layout, pads/crops maps as the authors did, and trains the authors' CNN.

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

The classifier is an ensemble of the authors' CNN (soft vote), trained and applied under `deterministic()`: fp32,
CNN_THREADS CPU threads whatever the caller set, deterministic algorithms; so its classes do not depend on the
thread count (docs/method.md, "Attention patterns").
"""
from __future__ import annotations

import copy
import unicodedata
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from sklearn.metrics import confusion_matrix
from sklearn.model_selection import train_test_split
from torch import nn

from .data import Encoded
from .progress import bar as progress_bar
from .training import default_device

CLASSES = ("vertical", "diagonal", "vertical+diagonal", "block", "heterogeneous")
MAP_KINDS = ("raw", "normed")
SPECIAL_TOKENS = ("[CLS]", "[SEP]", "<s>", "</s>")   # WordPiece / SentencePiece-DeBERTa, and RoBERTa / XLM-R
SEP_TOKENS = ("[SEP]", "</s>")
WORD_START = ("\u0120", "\u2581")   # the word-start marks of byte-level BPE (RoBERTa) and SentencePiece

# Rule-labeller thresholds, on chance-corrected scores (observed mass - uniform-row mass) / (1 - uniform-row mass),
# averaged over rows: 0 = no more than a uniform map, 1 = all mass there (see `pattern_scores`).
STRONG_MIN = 0.5   # vertical / diagonal / block: the score of the pattern is at least this
MIX_MIN = 0.2      # vertical+diagonal: both scores at least this, and their sum at least STRONG_MIN

# Generator ranges.
STRENGTH_RANGE = (0.65, 0.95)
MIX_WEIGHT_RANGE = (0.35, 0.65)
JITTER_RANGE = (20.0, 100.0)   # Dirichlet concentration around each pattern row (higher = cleaner)
# Heterogeneous maps: (pattern, probability, largest weight) of a faint pattern mixed in, as real maps have.
WEAK_PATTERNS = (("vertical", 0.4, 0.45), ("diagonal", 0.2, 0.4))

# The CNN trains and classifies on this many CPU threads whatever the caller set (`deterministic`).
CNN_THREADS = 1
THREAD_CHECK_EPOCHS = 2   # epochs of the two trainings that `thread_stability` compares in notebook 7

# The authors' archive: label spellings mapped to CLASSES (the authors merge {single,double,multiple}_vertical).
LABEL_ALIASES = {
    "single_vertical": "vertical", "double_vertical": "vertical", "multiple_vertical": "vertical",
    "vertical_diagonal": "vertical+diagonal", "vertical + diagonal": "vertical+diagonal",
    "diagonal_vertical": "vertical+diagonal", "heterogenous": "heterogeneous",
}


# ----------------------------------------------------------------------------------------------- token layout
@dataclass(frozen=True)
class Layout:
    """Where the special columns and the sentences of one tokenised input are."""

    cls_sep: np.ndarray       # positions of [CLS] and [SEP]
    punctuation: np.ndarray   # positions of punctuation tokens
    segments: np.ndarray      # sentence id per position; a [SEP] belongs to the sentence it closes

    @property
    def special(self) -> np.ndarray:
        return np.union1d(self.cls_sep, self.punctuation)

    def __len__(self) -> int:
        return len(self.segments)


def is_punctuation(token: str) -> bool:
    """A token of punctuation or symbols alone (a BPE or SentencePiece word-start mark ignored)."""
    token = token[1:] if token[:1] in WORD_START else token
    return bool(token) and all(unicodedata.category(c)[0] in "PS" for c in token)


def layout(tokens: Sequence[str]) -> Layout:
    """The layout of a token list (`tokenizer.convert_ids_to_tokens(ids)`) of WordPiece ([CLS] ... [SEP]), byte-level
    BPE or SentencePiece (<s> ... </s>, RoBERTa's pairs joined by </s></s>) tokenizers."""
    cls_sep = np.array([i for i, t in enumerate(tokens) if t in SPECIAL_TOKENS], dtype=int)
    punct = np.array([i for i, t in enumerate(tokens) if t not in SPECIAL_TOKENS and is_punctuation(t)], dtype=int)
    # a separator closes its sentence; RoBERTa's second </s> of a pair opens the next one
    is_sep = np.array([t in SEP_TOKENS and not (i and tokens[i - 1] in SEP_TOKENS) for i, t in enumerate(tokens)],
                      dtype=int)
    segments = np.concatenate([[0], np.cumsum(is_sep)[:-1]]) if len(tokens) else np.zeros(0, dtype=int)
    return Layout(cls_sep, punct, segments)


def glue_token_lists(tokenizer, tasks: Sequence[str] = ("SST-2", "MRPC", "RTE"), per_task: int = 100,
                     glue_dir: str | Path | None = None, max_len: int = 64, seed: int = 0) -> list[list[str]]:
    """Token lists of `per_task` seeded random dev examples of each task (single sentences and pairs)."""
    from .data import encode, load_split, subsample

    tokens = []
    for task in tasks:
        enc = encode(subsample(load_split(task, "dev", glue_dir=glue_dir), per_task, seed), tokenizer, max_len)
        tokens += [tokenizer.convert_ids_to_tokens(ids) for ids in enc.input_ids]
    return tokens


# ------------------------------------------------------------------------------------------- rule labeller
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


# ---------------------------------------------------------------------------------------------- generator
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


# -------------------------------------------------------------------------------------------- preprocessing
def pad_or_crop(m: np.ndarray, size: int) -> np.ndarray:
    """The authors' preprocessing: keep the top-left size x size corner, then zero-pad to size x size with the
    map centred (padding (size - n) // 2 before, the rest after)."""
    m = np.asarray(m)[:size, :size]
    (h, w) = m.shape
    top, left = (size - h) // 2, (size - w) // 2
    return np.pad(m, ((top, size - h - top), (left, size - w - left)))


def row_normalize(m: np.ndarray) -> np.ndarray:
    """Rows scaled to sum to 1 (e.g. norm-weighted maps before a classifier trained on probabilities)."""
    m = np.asarray(m, dtype=np.float64)
    total = m.sum(-1, keepdims=True)
    return np.divide(m, total, out=np.zeros_like(m), where=total > 0)


def to_tensor(maps: Sequence[np.ndarray], size: int) -> torch.Tensor:
    """A (N, 1, size, size) float32 batch of padded/cropped maps."""
    return torch.from_numpy(np.stack([pad_or_crop(m, size) for m in maps]).astype(np.float32))[:, None]


# ------------------------------------------------------------------------------------------------- the CNN
def feature_size(input_size: int) -> int:
    """Side of the feature map after the six 3x3 valid convolutions and two 2x2 max-pools."""
    return ((input_size - 4) // 2 - 4) // 2 - 4


class PatternCNN(nn.Module):
    """The authors' head classifier: convs 16,16,pool,32,32,pool,64,64 (3x3, no padding, ReLU), a 1x1 conv to 16,
    global average pooling and a 1x1 conv to the classes. Xavier-normal weights, zero biases (authors' init)."""

    def __init__(self, input_size: int = 64, num_classes: int = len(CLASSES), generator: torch.Generator | None = None):
        super().__init__()
        if feature_size(input_size) < 1:
            raise ValueError(f"input_size {input_size} is too small for six 3x3 valid convs and two pools; use >= 32.")
        self.input_size = input_size
        convs = []
        for c_in, c_out, pool in [(1, 16, False), (16, 16, True), (16, 32, False), (32, 32, True),
                                  (32, 64, False), (64, 64, False)]:
            convs += [nn.Conv2d(c_in, c_out, 3), nn.ReLU()] + ([nn.MaxPool2d(2, 2)] if pool else [])
        self.net = nn.Sequential(*convs, nn.Conv2d(64, 16, 1), nn.AdaptiveAvgPool2d(1), nn.Conv2d(16, num_classes, 1))
        for module in self.net:
            if isinstance(module, nn.Conv2d):
                nn.init.xavier_normal_(module.weight, generator=generator)
                nn.init.zeros_(module.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x).flatten(1)


@contextmanager
def deterministic(threads: int = CNN_THREADS) -> Iterator[None]:
    """Within the block: `threads` CPU threads and PyTorch's deterministic algorithms (warn-only: an op without a
    deterministic kernel warns instead of failing; cuDNN deterministic, no benchmarking). All restored after.
    On CPU a fixed thread count fixes the order of float summation, so training and classifying give the same
    bits whatever thread count the caller set."""
    saved = (torch.get_num_threads(), torch.are_deterministic_algorithms_enabled(),
             torch.is_deterministic_algorithms_warn_only_enabled(), torch.backends.cudnn.deterministic,
             torch.backends.cudnn.benchmark)
    torch.set_num_threads(threads)
    torch.use_deterministic_algorithms(True, warn_only=True)
    torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = True, False
    try:
        yield
    finally:
        torch.set_num_threads(saved[0])
        torch.use_deterministic_algorithms(saved[1], warn_only=saved[2])
        torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = saved[3], saved[4]


class Ensemble(nn.Module):
    """A soft vote of CNNs: the mean of their class probabilities (argmax = the ensemble's class)."""

    def __init__(self, members: Sequence[PatternCNN]):
        super().__init__()
        self.members = nn.ModuleList(members)
        self.input_size = members[0].input_size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.stack([m(x).softmax(-1) for m in self.members]).mean(0)


@dataclass
class TrainedClassifier:
    """The CNN ensemble (each member at its best validation epoch), with its accuracy and confusion matrix (rows:
    true class) on the held-out 20% (which also chose the epochs, as in the authors' code)."""

    model: nn.Module
    accuracy: float
    confusion: np.ndarray
    best_epochs: tuple[int, ...]


def _predict(model: nn.Module, x: torch.Tensor, batch_size: int = 256) -> np.ndarray:
    model.eval()
    device = next(model.parameters()).device
    with deterministic(), torch.no_grad():
        return torch.cat([model(x[i:i + batch_size].to(device)).argmax(-1).cpu()
                          for i in range(0, len(x), batch_size)]).numpy()


def _train_member(x: torch.Tensor, y: torch.Tensor, train_idx: np.ndarray, val_idx: np.ndarray, seed: int,
                  epochs: int, batch_size: int, lr: float, patience: int | None, bar) -> tuple[PatternCNN, int]:
    """One CNN (initialisation and batch order seeded by `seed`) at its best validation epoch (the latest on ties,
    as the authors' `>=`); `patience` stops after that many epochs without reaching the best."""
    gen = torch.Generator().manual_seed(seed)
    model = PatternCNN(x.shape[-1], generator=gen).to(x.device)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    loss_fn = nn.CrossEntropyLoss()
    val_labels = y[val_idx].cpu().numpy()
    best_acc, best_epoch, best_state = -1.0, 0, None
    for epoch in range(1, epochs + 1):
        model.train()
        order = torch.from_numpy(train_idx)[torch.randperm(len(train_idx), generator=gen)]
        for i in range(0, len(order), batch_size):
            idx = order[i:i + batch_size]
            optimizer.zero_grad()
            loss_fn(model(x[idx]), y[idx]).backward()
            optimizer.step()
        acc = float((_predict(model, x[val_idx]) == val_labels).mean())
        if acc >= best_acc:
            best_acc, best_epoch, best_state = acc, epoch, copy.deepcopy(model.state_dict())
        bar.update()
        bar.set_postfix(seed=seed, val_acc=f"{acc:.3f}", best=f"{best_acc:.3f}")
        if patience is not None and epoch - best_epoch >= patience:
            bar.update(epochs - epoch)
            break
    model.load_state_dict(best_state)
    return model, best_epoch


def train_classifier(maps: Sequence[np.ndarray], labels: Sequence[int], seed: int, epochs: int = 200,
                     batch_size: int = 64, lr: float = 1e-3, patience: int | None = None, progress: bool = True,
                     input_size: int = 64, device: torch.device | str | None = None,
                     ensemble: int = 1) -> TrainedClassifier:
    """`ensemble` CNNs (seeds seed, seed + 1, ...: initialisation and batch order), each trained with Adam on the
    same stratified 80/20 split (seeded by `seed`) and kept at its best validation epoch; they classify by soft
    vote (`Ensemble`). Training runs under `deterministic()`: fp32, CNN_THREADS CPU threads, deterministic
    algorithms. Trains on `device` (default: CUDA if available); `classify` then runs where the model is."""
    if ensemble < 1:
        raise ValueError(f"ensemble must be a positive number of CNNs, got {ensemble}.")
    labels = np.asarray(labels, dtype=np.int64)
    device = torch.device(device) if device is not None else default_device()
    x, y = to_tensor(maps, input_size).to(device), torch.from_numpy(labels).to(device)
    train_idx, val_idx = train_test_split(np.arange(len(y)), test_size=0.2, stratify=labels, random_state=seed)
    members, best_epochs = [], []
    with deterministic(), progress_bar(total=ensemble * epochs, desc="head classifier", disable=not progress,
                                      unit="epoch") as bar:
        for k in range(ensemble):
            member, best_epoch = _train_member(x, y, train_idx, val_idx, seed + k, epochs, batch_size, lr,
                                               patience, bar)
            members.append(member)
            best_epochs.append(best_epoch)
    model = Ensemble(members)
    pred = _predict(model, x[val_idx])
    confusion = confusion_matrix(labels[val_idx], pred, labels=np.arange(len(CLASSES)))
    return TrainedClassifier(model, float((pred == labels[val_idx]).mean()), confusion, tuple(best_epochs))


def class_shares(model: nn.Module, maps: Sequence[np.ndarray]) -> np.ndarray:
    """The share of `maps` that `model` puts in each class (a vector over CLASSES)."""
    return np.bincount(classify(model, maps), minlength=len(CLASSES)) / max(len(maps), 1)


def thread_stability(maps: Sequence[np.ndarray], labels: Sequence[int], probe: Sequence[np.ndarray], seed: int,
                     threads: tuple[int, int] = (1, 2), **train_kwargs) -> float:
    """The largest absolute difference of class shares on the `probe` maps between two trainings of the same
    classifier (`train_classifier(maps, labels, seed, **train_kwargs)`), with the caller's torch thread count set
    to each of `threads` (restored after). 0 when training does not depend on the thread count."""
    saved, shares = torch.get_num_threads(), []
    try:
        for n in threads:
            torch.set_num_threads(n)
            shares.append(class_shares(train_classifier(maps, labels, seed, **train_kwargs).model, probe))
    finally:
        torch.set_num_threads(saved)
    return float(np.abs(shares[0] - shares[1]).max())


def member_spread(model: nn.Module, maps: Sequence[np.ndarray]) -> float:
    """The largest absolute difference of a class share on `maps` between one member of an `Ensemble` and the
    ensemble's vote (0 for a single CNN)."""
    if not isinstance(model, Ensemble):
        return 0.0
    vote = class_shares(model, maps)
    return float(max(np.abs(class_shares(m, maps) - vote).max() for m in model.members))


def classify(model: nn.Module, maps: Sequence[np.ndarray]) -> np.ndarray:
    """Class indices (into CLASSES) of maps of any size. Like the authors' code for real maps, a map is never
    cropped: one smaller than the model's input size is centre-zero-padded to it, a larger one is classified
    whole (the CNN ends in global average pooling, so it takes any size). Maps are batched by size."""
    sizes = np.array([max(np.shape(m)[0], model.input_size) for m in maps], dtype=int)
    out = np.zeros(len(maps), dtype=np.int64)
    for size in np.unique(sizes):
        idx = np.flatnonzero(sizes == size)
        out[idx] = _predict(model, to_tensor([maps[i] for i in idx], int(size)))
    return out


# ------------------------------------------------------------------------------------- the authors' archive
def canonical_label(raw: str) -> str:
    """A label of the authors' files as one of CLASSES; unknown spellings raise."""
    label = LABEL_ALIASES.get(raw.strip().lower(), raw.strip().lower())
    if label not in CLASSES:
        raise ValueError(f"unknown pattern label {raw!r}: expected one of {CLASSES} or {sorted(LABEL_ALIASES)} "
                         "(extend patterns.LABEL_ALIASES for another spelling).")
    return label


def standardize_name(name: str) -> str:
    """The authors' rule for raw map names: names without `_` are zero-padded to 4 digits."""
    name = name.strip()
    return name if "_" in name else name.zfill(4)


def _read_raw_labels(path: Path) -> dict[str, str]:
    """`label = name, name, ...` lines; a later line wins for a name listed twice (as in the authors' dict)."""
    names = {}
    for n, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        if "=" not in line:
            raise ValueError(f"{path}, line {n}: expected `label = name, name, ...`, got {line!r}.")
        label, listed = (part.strip() for part in line.split("=", 1))
        names.update({standardize_name(x): canonical_label(label) for x in listed.split(",") if x.strip()})
    return names


def _read_normed_labels(path: Path) -> dict[str, str]:
    """`name<TAB>label` lines."""
    names = {}
    for n, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        fields = line.strip().split("\t")
        if len(fields) != 2:
            raise ValueError(f"{path}, line {n}: expected `name<TAB>label`, got {line!r}.")
        names[fields[0].strip()] = canonical_label(fields[1])
    return names


ARCHIVE_LAYOUT = {"raw": ("raw/labels.txt", "raw/for_training", _read_raw_labels),
                  "normed": ("normed/attention_norm_annotated.tsv", "normed/data", _read_normed_labels)}


def load_authors_archive(root: str | Path, kind: str = "raw") -> tuple[list[np.ndarray], np.ndarray]:
    """The labelled maps of the authors' `head_classification_data` folder, sorted by name as the authors'
    loader did: (maps of their own sizes, labels as indices into CLASSES)."""
    if kind not in ARCHIVE_LAYOUT:
        raise ValueError(f"kind must be one of {tuple(ARCHIVE_LAYOUT)}, got {kind!r}.")
    labels_file, maps_dir, read = ARCHIVE_LAYOUT[kind]
    root = Path(root).expanduser()
    path = root / labels_file
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: the {kind} archive needs {labels_file} and {maps_dir}/<name>.npy "
                                f"under {root}.")
    names = read(path)
    missing = [name for name in names if not (root / maps_dir / f"{name}.npy").is_file()]
    if missing:
        shown = ", ".join(f"{name}.npy" for name in sorted(missing)[:10])
        raise FileNotFoundError(f"{len(missing)} labelled maps are missing from {root / maps_dir}: {shown}"
                                + (" ..." if len(missing) > 10 else ""))
    order = sorted(names)
    maps = [np.load(root / maps_dir / f"{name}.npy") for name in order]
    return maps, np.array([CLASSES.index(names[name]) for name in order], dtype=np.int64)


# ------------------------------------------------------------------------------ classifying a model's heads
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
                classifiers: dict[str, MapClassifier], compat: str = "paper"
                ) -> dict[str, tuple[list[np.ndarray], np.ndarray, np.ndarray]]:
    """For each map kind of `classifiers`: (maps, CNN labels, rule labels) of every head for every example of
    `enc`, whose tokens are `token_lists` (`attention_maps.example_maps`, then `label_maps`)."""
    from .attention_maps import example_maps

    out = {}
    for kind, classifier in classifiers.items():
        maps = example_maps(model, enc, normed=kind == "normed", compat=compat)
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


def pattern_shares(counts: pd.DataFrame, keys: Sequence[str] = ("task", "model", "map")) -> pd.DataFrame:
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
