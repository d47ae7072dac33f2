"""The authors' archive of labelled maps (raw and norm-weighted), read into CLASSES.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from .layout import CLASSES

# The authors' archive: label spellings mapped to CLASSES (the authors merge {single,double,multiple}_vertical).
LABEL_ALIASES = {
    "single_vertical": "vertical", "double_vertical": "vertical", "multiple_vertical": "vertical",
    "vertical_diagonal": "vertical+diagonal", "vertical + diagonal": "vertical+diagonal",
    "diagonal_vertical": "vertical+diagonal", "heterogenous": "heterogeneous",
}


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
