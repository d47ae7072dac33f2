"""The paper's published numbers (`data_files/paper_numbers.csv`, shipped with the package; source and
meaning in `data_files/README.md`) for side-by-side tables."""
from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

PAPER_NUMBERS_ENV = "LOTTERY_PAPER_NUMBERS"
SHIPPED_PAPER_NUMBERS = Path(__file__).resolve().parent / "data_files" / "paper_numbers.csv"


def paper_numbers_path(path: str | Path | None = None) -> Path:
    """`path`, else `$LOTTERY_PAPER_NUMBERS`, else the shipped copy."""
    return Path(path or os.environ.get(PAPER_NUMBERS_ENV) or SHIPPED_PAPER_NUMBERS)


def paper_numbers(path: str | Path | None = None) -> pd.DataFrame | None:
    """The published means and stds per (experiment, task) (columns experiment, meaning, task, paper_metric,
    mean_over_5_seeds, std_ddof1_over_5_seeds), or None when the file is not there."""
    path = paper_numbers_path(path)
    return pd.read_csv(path) if path.is_file() else None


def paper_value(experiment: str, task: str, path: str | Path | None = None) -> tuple[float, float] | None:
    """(mean, std) of one experiment on one task, or None if unknown or the file is missing."""
    df = paper_numbers(path)
    if df is None:
        return None
    row = df[(df.experiment == experiment) & (df.task == task)]
    return None if row.empty else (float(row.mean_over_5_seeds.iloc[0]), float(row.std_ddof1_over_5_seeds.iloc[0]))
