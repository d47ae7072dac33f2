"""`python -m lotterylib.summary outputs/<preset>`: what the grid produced, where, with headline numbers.

Each notebook puts its headline numbers under the `summary` key of its metrics.json.
"""
from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd

from .runs import ALL_SEEDS, ALL_TASKS, display_path, read_json, resolve


def collect(outputs_root: str | Path) -> pd.DataFrame:
    """One row per finished stage: task, seed, stage, its headline numbers and its folder."""
    rows = []
    for path in sorted(resolve(outputs_root).glob("**/metrics.json")):
        stage_dir = path.parent
        seed_part, task_part = stage_dir.parent.name, stage_dir.parent.parent.name
        if seed_part == ALL_TASKS:
            task, seed = "(all)", "(all)"
        else:
            task, seed = task_part, "(all)" if seed_part == ALL_SEEDS else seed_part.removeprefix("seed_")
        headline = read_json(path).get("summary", {})
        rows.append({"task": task, "seed": seed, "stage": stage_dir.name,
                     "result": ", ".join(f"{k} {v:.3f}" if isinstance(v, float) else f"{k} {v}"
                                         for k, v in headline.items()),
                     "folder": display_path(stage_dir)})
    return pd.DataFrame(rows, columns=["task", "seed", "stage", "result", "folder"])


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m lotterylib.summary outputs/<preset>", file=sys.stderr)
        return 2
    table = collect(argv[0])
    if table.empty:
        print(f"No finished stages under {argv[0]}.")
        return 1
    with pd.option_context("display.max_rows", None, "display.max_colwidth", 80, "display.width", 200):
        print(f"\nFinished stages under {argv[0]} ({len(table)}):\n")
        print(table.to_string(index=False))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
