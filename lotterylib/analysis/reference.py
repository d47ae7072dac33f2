"""The paper's published numbers (`data_files/paper_numbers.csv`), the authors' good s-pruning masks
(`data_files/authors_masks/heads_mlps`) and the stability statistics their notebook printed for them
(`data_files/authors_stability.csv`), shipped with the package; sources and meaning in `data_files/README.md`."""
from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

PAPER_NUMBERS_ENV = "LOTTERY_PAPER_NUMBERS"
DATA_FILES = Path(__file__).resolve().parent / "data_files"
SHIPPED_PAPER_NUMBERS = DATA_FILES / "paper_numbers.csv"
AUTHORS_MASKS = DATA_FILES / "authors_masks" / "heads_mlps"   # <task>/seed_<seed>/{head,mlp}_{mask,importance}.npy
AUTHORS_STABILITY = DATA_FILES / "authors_stability.csv"


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


def authors_stability() -> pd.DataFrame:
    """The statistics the authors' notebook printed for their masks: columns task, component (heads / mlps),
    statistic (cochran_q_pvalue_5seeds, fraction_seed_pairs_not_rejected_p>=0.05, fleiss_kappa,
    krippendorff_alpha), value."""
    return pd.read_csv(AUTHORS_STABILITY)
