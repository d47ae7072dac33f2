"""A rerun against a committed run: every number of two `results.csv` side by side, with a verdict each.

`python -m lotterylib.workflow.compare outputs/demo outputs/local/demo` (what `make demo` ends with). A number (one
row of results.csv, keyed by every column but `value`) is
- "bit-identical": the same float in both runs (NaN counts as equal to NaN);
- "within seed noise": |rerun - committed| is at most the committed run's seed spread of that number, the
  max - min over the committed seeds of the rows that differ from it only in `seed`. Numbers over seeds
  (no seed) or of a single seed have no spread: any difference is "different";
- "different": otherwise;
- "only committed" / "only rerun": the row is missing from the other run.
The runs' precision (the fine-tuning's `bf16`, from params.json) is compared too: with another precision
bit-identical numbers are not expected, and the verdict says so. So is the committed run's age: where its jobs
recorded another signature than the current code and parameters give (`pipeline.is_current`), it was made by
older code, and differences are expected until it is rerun.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from . import pipeline, results
from .report import folders
from ..core import files

IDENTICAL, NOISE, DIFFERENT = "bit-identical", "within seed noise", "different"
ONLY_COMMITTED, ONLY_RERUN = "only committed", "only rerun"
VERDICTS = (IDENTICAL, NOISE, DIFFERENT, ONLY_COMMITTED, ONLY_RERUN)
KEY = [c for c in results.COLUMNS if c != "value"]
GROUP = [c for c in KEY if c != "seed"]  # a number across the seeds of a run


def seed_spread(committed: pd.DataFrame) -> pd.Series:
    """max - min over seeds of each seeded number of a run (indexed by `GROUP`); NaN with one seed."""
    seeded = committed[committed["seed"].notna()]
    grouped = seeded.groupby(GROUP, dropna=False)["value"]
    spread = grouped.max() - grouped.min()
    return spread.where(grouped.count() > 1)


def compare_results(committed: pd.DataFrame, rerun: pd.DataFrame) -> pd.DataFrame:
    """One row per number of either run: the key columns, `committed`, `rerun`, `diff` (rerun - committed),
    `seed_spread` and `verdict` (module docstring)."""
    def keyed(frame: pd.DataFrame) -> pd.DataFrame:
        frame = frame.copy()
        frame["seed"] = pd.to_numeric(frame["seed"], errors="coerce").astype("Int64")
        for column in results.TEXT_COLUMNS:
            frame[column] = frame[column].astype("string").fillna("").astype(str)
        return frame

    committed, rerun = keyed(committed), keyed(rerun)
    both = committed.merge(rerun, on=KEY, how="outer", suffixes=("_committed", "_rerun"), indicator=True)
    both = both.rename(columns={"value_committed": "committed", "value_rerun": "rerun"})
    spread = seed_spread(committed).rename("seed_spread").reset_index()
    for column in results.TEXT_COLUMNS:
        spread[column] = spread[column].fillna("").astype(str)
    both = both.merge(spread, on=GROUP, how="left")
    both.loc[both["seed"].isna(), "seed_spread"] = np.nan
    both["diff"] = both["rerun"] - both["committed"]
    same = (both["committed"] == both["rerun"]) | (both["committed"].isna() & both["rerun"].isna())
    noise = both["diff"].abs() <= both["seed_spread"]
    both["verdict"] = np.select(
        [both["_merge"] == "left_only", both["_merge"] == "right_only", same, noise],
        [ONLY_COMMITTED, ONLY_RERUN, IDENTICAL, NOISE], default=DIFFERENT)
    return both[KEY + ["committed", "rerun", "diff", "seed_spread", "verdict"]].reset_index(drop=True)


def precision_note(committed_root: str | Path, rerun_root: str | Path) -> str:
    """A sentence on the two runs' precision (bf16 of their fine-tuning runs)."""
    def precision(root: str | Path) -> str:
        bf16 = folders.run_settings(root, "finetune").get("bf16")
        return "unknown" if bf16 is None else "bf16" if bf16 else "fp32"

    ours, theirs = precision(rerun_root), precision(committed_root)
    if "unknown" in (ours, theirs):
        return f"The precision is not recorded (committed {theirs}, rerun {ours}): no fine-tuning params.json."
    if ours == theirs:
        return f"Both runs in {ours}."
    return (f"The precision differs (committed {theirs}, rerun {ours}): bit-identical numbers are not expected, "
            "compare against the seed noise.")


def stale_jobs(preset: dict) -> list[pipeline.Job]:
    """The jobs of a preset's grid whose run folder records another signature than the current code and
    parameters give (or none): made by older code, or never run."""
    return [job for job in pipeline.grid_jobs(preset) if not pipeline.is_current(preset, *job)]


def stale_note(committed_root: str | Path) -> str | None:
    """Where the committed folder is a preset's own (`outputs/<preset>` of `params/<preset>.yaml`): a sentence
    naming the stages of its `stale_jobs`; None when every job is current, or when the folder is not a
    preset's."""
    root = files.resolve(committed_root)
    overrides = pipeline.folder_overrides(root)
    if overrides is None:
        return None
    preset = pipeline.load_preset(overrides=overrides)
    stale = stale_jobs(preset)
    if not stale:
        return None
    stages = ", ".join(dict.fromkeys(stage for stage, _, _ in stale))
    return (f"The committed run predates the current code or parameters: {len(stale)} of its "
            f"{len(pipeline.grid_jobs(preset))} jobs recorded another signature ({stages}). Differences are "
            f"expected until it is rerun (`make grid PRESET={overrides['preset']}`), or re-stamped after a change "
            "proven neutral (`make resign`).")


def summary(table: pd.DataFrame) -> str:
    """The verdict counts in one line, e.g. "320 numbers: 320 bit-identical"."""
    counts = table["verdict"].value_counts()
    return f"{len(table)} numbers: " + ", ".join(f"{counts[v]} {v}" for v in VERDICTS if v in counts)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="lottery compare", description=__doc__.splitlines()[0])
    parser.add_argument("committed", help="the committed run's output folder, e.g. outputs/demo")
    parser.add_argument("rerun", help="the rerun's output folder, e.g. outputs/local/demo")
    parser.add_argument("--show", type=int, default=40, help="print at most this many numbers that are not "
                                                             "bit-identical (default 40)")
    args = parser.parse_args(argv)
    paths = [files.resolve(root) / results.CSV_NAME for root in (args.committed, args.rerun)]
    for path in paths:
        if not path.is_file():
            print(f"{files.display_path(path)} does not exist: run the grid into {files.display_path(path.parent)} "
                  "first (`make demo`).", file=sys.stderr)
            return 2
    table = compare_results(*(pd.read_csv(path) for path in paths))
    out = files.resolve(args.rerun) / "comparison.csv"
    table.to_csv(out, index=False)
    print(f"{files.display_path(paths[1])} against the committed {files.display_path(paths[0])}: {summary(table)}.")
    print(precision_note(args.committed, args.rerun))
    stale = stale_note(args.committed)
    if stale:
        print(stale)
    shown = table[table["verdict"] != IDENTICAL]
    if len(shown):
        with pd.option_context("display.width", 200, "display.max_columns", None):
            print(shown.head(args.show).to_string(index=False))
    print(f"every number and its verdict: {files.display_path(out)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
