"""Every mask type of the project and its files: save, load, stack, count (1 / True = kept).

- `HeadMasks`: the s-pruning pair, `head` (layers x heads) and `mlp` (layers), float 0/1 arrays; on disk in
  the authors' layout `<task>/seed_<seed>/head_mask.npy` and `mlp_mask.npy` (float32), a search's history in
  `steps.csv` and `importance.npz`, named sets (drawn subnetworks) in one npz of `<name>_head`, `<name>_mlp`.
- `WeightMasks`: the m-pruning masks, `{qualified parameter name: bool tensor}`, named as in
  `model.named_parameters()` of the dense model; on disk a compressed npz of bool arrays.
- `HeadMaskTree`: `{task: {seed: HeadMasks}}`, the input of the stability statistics (`stack_seeds`).
"""
from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd
import torch

from ..core.files import missing_stage_error, temporary_sibling

LAYOUT = ("<root>/<task>/seed_<seed>/head_mask.npy (layers x heads, 1 = kept) "
          "and <root>/<task>/seed_<seed>/mlp_mask.npy (layers)")
HEAD_FILE, MLP_FILE, HISTORY_FILE, STEPS_FILE = "head_mask.npy", "mlp_mask.npy", "importance.npz", "steps.csv"
WEIGHT_MASKS_FILE = "weight_masks.npz"  # the m-pruning stage's masks (`save_weight_masks`)


class HeadMasks(NamedTuple):
    """The s-pruning masks: heads (layers x heads) and MLPs (layers), 1 = kept. A tuple: `head, mlp = masks`."""

    head: np.ndarray
    mlp: np.ndarray

    def size(self) -> tuple[int, int]:
        """(heads kept, MLPs kept)."""
        return head_masks_size(self.head, self.mlp)


WeightMasks = dict[str, torch.Tensor]
HeadMaskTree = dict[str, dict[int, HeadMasks]]
HeadMasksBySeed = Mapping[int, tuple[np.ndarray, np.ndarray]]
HeadMasksByTask = Mapping[str, HeadMasksBySeed]


# --- HeadMasks -------------------------------------------------------------------------------------------

def head_masks_size(head_mask: np.ndarray, mlp_mask: np.ndarray) -> tuple[int, int]:
    """(heads kept, MLPs kept) of an s-mask."""
    return int(np.count_nonzero(head_mask)), int(np.count_nonzero(mlp_mask))


def check_head_masks(head: np.ndarray, mlp: np.ndarray, where: str) -> None:
    """A ValueError naming `where` and the expected shape unless head is (L, H) and mlp (L,), both 0/1."""
    if head.ndim != 2:
        raise ValueError(f"{where}: head mask has shape {head.shape}; expected (layers, heads), 1 = kept.")
    if mlp.shape != (head.shape[0],):
        raise ValueError(f"{where}: MLP mask has shape {mlp.shape}; expected ({head.shape[0]},) to match the "
                         f"head mask's {head.shape[0]} layers, 1 = kept.")
    for name, m in (("head", head), ("MLP", mlp)):
        if not np.isin(m, (0, 1)).all():
            raise ValueError(f"{where}: the {name} mask holds values other than 0 and 1.")


def save_head_masks(folder: str | Path, head_mask: np.ndarray, mlp_mask: np.ndarray) -> Path:
    """Write `head_mask.npy` (layers x heads) and `mlp_mask.npy` (layers), float32, 1 = kept."""
    head, mlp = np.asarray(head_mask, dtype=np.float32), np.asarray(mlp_mask, dtype=np.float32)
    check_head_masks(head, mlp, "save_head_masks")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    np.save(folder / HEAD_FILE, head)
    np.save(folder / MLP_FILE, mlp)
    return folder


def load_npy(path: Path) -> np.ndarray:
    """An array from a .npy file; a truncated or corrupt file raises a ValueError naming it."""
    try:
        return np.load(path)
    except (ValueError, OSError, EOFError) as e:
        raise ValueError(f"{path} is not a readable .npy file ({e}): it is truncated or corrupt. Fix: rerun the "
                         "stage that wrote it, or copy it again.") from e


def load_head_masks(folder: str | Path) -> HeadMasks:
    """The float64 masks of one folder of the authors' layout; a missing `mlp_mask.npy` (a heads-only run)
    means every MLP kept."""
    folder = Path(folder)
    head_path = folder / HEAD_FILE
    if not head_path.is_file():
        raise FileNotFoundError(f"No mask in {folder}: {head_path.name} is missing. Expected the layout {LAYOUT}.")
    head = load_npy(head_path).astype(np.float64)
    mlp_path = folder / MLP_FILE
    mlp = load_npy(mlp_path).astype(np.float64) if mlp_path.is_file() else np.ones(head.shape[:1])
    check_head_masks(head, mlp, str(folder))
    return HeadMasks(head, mlp)


def save_search_history(folder: str | Path, table: pd.DataFrame, arrays: Mapping[str, np.ndarray]) -> Path:
    """A search's `steps.csv` (one row per step) and `importance.npz` (every step's masks and importance)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    table.to_csv(folder / STEPS_FILE, index=False)
    np.savez_compressed(folder / HISTORY_FILE, **arrays)
    return folder


def load_search_history(folder: str | Path) -> dict[str, np.ndarray]:
    """The arrays written by `save_search_history` (`importance.npz`)."""
    path = Path(folder) / HISTORY_FILE
    if not path.is_file():
        raise missing_stage_error(path, "s_pruning")
    with np.load(path) as data:
        return {k: data[k] for k in data.files}


def save_head_mask_sets(path: str | Path, sets: Mapping[str, tuple[np.ndarray, np.ndarray]]) -> Path:
    """One npz with `<name>_head` (layers x heads) and `<name>_mlp` (layers) per named s-mask, float32."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, **{f"{n}_{k}": np.asarray(m, dtype=np.float32)
                      for n, (h, p) in sets.items() for k, m in (("head", h), ("mlp", p))})
    return path


def load_head_mask_sets(path: str | Path) -> dict[str, HeadMasks]:
    """The named s-masks written by `save_head_mask_sets`, as float64 arrays, in the saved order."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"No mask sets at {path}. Fix: rerun the stage that writes it (the lottery stage "
                                "for s_subnetworks.npz and super_subnetworks.npz).")
    with np.load(path) as data:
        names = [k.removesuffix("_head") for k in data.files if k.endswith("_head")]
        return {n: HeadMasks(data[f"{n}_head"].astype(np.float64), data[f"{n}_mlp"].astype(np.float64))
                for n in names}


# --- HeadMaskTree ----------------------------------------------------------------------------------------

def load_head_mask_tree(root: str | Path, subdir: str = "") -> HeadMaskTree:
    """`{task: {seed: HeadMasks}}` from `<root>/<task>/seed_<seed>/[<subdir>/]head_mask.npy`."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"Mask folder {root} does not exist. Expected the layout {LAYOUT}.")
    pattern = "/".join(p for p in ("*", "seed_*", subdir, HEAD_FILE) if p)
    tree: HeadMaskTree = {}
    for head_path in sorted(root.glob(pattern)):
        task, seed_dir = head_path.relative_to(root).parts[:2]
        seed = seed_dir.removeprefix("seed_")
        if seed.isdigit():
            tree.setdefault(task, {})[int(seed)] = load_head_masks(head_path.parent)
    if not tree:
        raise FileNotFoundError(f"No masks under {root}" + (f" (subdir {subdir!r})" if subdir else "")
                                + f". Expected the layout {LAYOUT}.")
    return tree


def stack_seeds(by_seed: HeadMasksBySeed) -> tuple[np.ndarray, np.ndarray]:
    """(heads (S, L, H), MLPs (S, L)) as float arrays, seeds in sorted order (`subnetworks.super_survivors`
    takes them)."""
    if not by_seed:
        raise ValueError("no seeds")
    seeds = sorted(by_seed)
    return tuple(np.stack([np.asarray(by_seed[s][i], dtype=float) for s in seeds]) for i in (0, 1))


def as_mask_stack(masks: np.ndarray | Sequence[np.ndarray]) -> np.ndarray:
    """Masks of any equal shape, stacked and flattened to an (S, N) int array; checks they are 0/1."""
    arr = np.asarray(masks)
    if arr.ndim < 2 or arr.shape[0] == 0:
        raise ValueError(f"expected a non-empty stack of equal-shaped masks, got shape {arr.shape}")
    stack = arr.reshape(arr.shape[0], -1)
    if not ((stack == 0) | (stack == 1)).all():
        raise ValueError("masks must hold only 0 and 1")
    return stack.astype(np.int8)   # small: weight masks can have ~85M elements per seed


def tree_kept_counts(tree: HeadMasksByTask) -> pd.DataFrame:
    """Per task and seed: the heads and MLPs a mask keeps."""
    return pd.DataFrame([{"task": task, "seed": seed, "heads kept": int(h.sum()), "MLPs kept": int(m.sum())}
                         for task, by_seed in tree.items() for seed, (h, m) in sorted(by_seed.items())])


def tree_shape(tree: HeadMasksByTask) -> tuple[int, int]:
    """(layers, heads) of the first mask of a tree (`check_tree_shapes` checks that they all agree)."""
    head, _ = next(iter(next(iter(tree.values())).values()))
    return head.shape


def check_tree_shapes(tree: HeadMasksByTask) -> None:
    """A ValueError naming the runs of each shape when the masks of a tree are not all of one shape."""
    by_shape: dict[tuple, list[str]] = {}
    for task, by_seed in tree.items():
        for seed, (head, mlp) in sorted(by_seed.items()):
            by_shape.setdefault((head.shape, mlp.shape), []).append(f"{task} seed {seed}")
    if len(by_shape) > 1:
        groups = "; ".join(f"heads {h} and MLPs {m}: {', '.join(runs)}" for (h, m), runs in by_shape.items())
        raise ValueError(f"The masks differ in shape ({groups}). Stability compares masks of one model: keep "
                         "only masks of the same model in the folder.")


# --- WeightMasks -----------------------------------------------------------------------------------------

def kept_count(masks: WeightMasks) -> int:
    """Weights kept."""
    return int(sum(int(m.sum()) for m in masks.values()))


def total_count(masks: WeightMasks) -> int:
    """Weights masked (kept or pruned)."""
    return int(sum(m.numel() for m in masks.values()))


def sparsity(masks: WeightMasks) -> float:
    """Fraction of the masked parameters that are pruned."""
    return 1.0 - kept_count(masks) / total_count(masks)


def save_weight_masks(path: str | Path, masks: WeightMasks) -> Path:
    """Write the masks as a compressed npz of bool arrays, through a temporary file and a rename (an interrupted
    write leaves the old file or none); returns the file's path (`.npz` appended)."""
    path = Path(path)
    path = path if path.suffix == ".npz" else path.with_name(path.name + ".npz")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temporary_sibling(path)
    try:
        with open(tmp, "wb") as f:
            np.savez_compressed(f, **{name: torch.as_tensor(m).bool().cpu().numpy() for name, m in masks.items()})
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def load_weight_masks(path: str | Path) -> WeightMasks:
    """Masks written by `save_weight_masks`, as bool tensors in the saved order."""
    path = Path(path)
    if not path.is_file():
        raise missing_stage_error(path, "m_pruning") if path.name == WEIGHT_MASKS_FILE else FileNotFoundError(
            f"No weight masks at {path}. Fix: rerun the stage that writes it.")
    with np.load(path) as data:
        return {name: torch.from_numpy(data[name].astype(bool)) for name in data.files}
