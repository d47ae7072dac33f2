"""The authors' CNN over padded / cropped attention maps, trained as a seeded ensemble (soft vote) under
`deterministic()`: fp32, CNN_THREADS CPU threads whatever the caller set, deterministic algorithms; so its
classes do not depend on the thread count (docs/method.md, "Attention patterns").
"""
from __future__ import annotations

import copy
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import torch
from sklearn.metrics import confusion_matrix
from sklearn.model_selection import train_test_split
from torch import nn

from ...core.progress import bar as progress_bar
from ...core.training import default_device
from .layout import CLASSES

# The CNN trains and classifies on this many CPU threads whatever the caller set (`deterministic`).
CNN_THREADS = 1
THREAD_CHECK_EPOCHS = 2   # epochs of the two trainings that `thread_stability` compares in notebook 7


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
