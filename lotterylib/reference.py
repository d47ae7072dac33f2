"""The paper's published numbers (`paper_numbers.csv`, kept outside the project) for side-by-side tables."""
from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

from .runs import PROJECT_ROOT

PAPER_NUMBERS_ENV = "LOTTERY_PAPER_NUMBERS"
DEFAULT_PAPER_NUMBERS = PROJECT_ROOT.parent / "shared" / "reference" / "paper_numbers.csv"


def paper_numbers(path: str | Path | None = None) -> pd.DataFrame | None:
    """The published means and stds per (experiment, task), or None when the file is not available.

    Looked up at `path`, then `$LOTTERY_PAPER_NUMBERS`, then `../shared/reference/paper_numbers.csv`.
    """
    path = Path(path or os.environ.get(PAPER_NUMBERS_ENV) or DEFAULT_PAPER_NUMBERS)
    return pd.read_csv(path) if path.is_file() else None


def paper_value(experiment: str, task: str, path: str | Path | None = None) -> tuple[float, float] | None:
    """(mean, std) of one experiment on one task, or None if unknown or the file is missing."""
    df = paper_numbers(path)
    if df is None:
        return None
    row = df[(df.experiment == experiment) & (df.task == task)]
    return None if row.empty else (float(row.mean_over_5_seeds.iloc[0]), float(row.std_ddof1_over_5_seeds.iloc[0]))
