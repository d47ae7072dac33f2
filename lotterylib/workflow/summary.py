"""`python -m lotterylib.workflow.summary outputs/<preset>`: what the grid produced, where, with headline numbers.

Each notebook puts its headline numbers under the `summary` key of its metrics.json. In a preset's own folder
(`outputs/demo`) the `current` column says whether each run is current (`pipeline.is_current`: made by the
code and parameters its job has now). `--table results`
gives instead every number of the preset as one tidy table (`lotterylib.workflow.results`), the content of
`outputs/<preset>/results.csv`.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd

from ..core.files import ALL_SEEDS, ALL_TASKS, display_path, read_json, resolve
from . import pipeline, results


def current_runs(outputs_root: str | Path) -> dict[Path, bool]:
    """{run folder: is_current} of a preset's own folder's grid; empty for any other folder."""
    overrides = pipeline.folder_overrides(outputs_root)
    if overrides is None:
        return {}
    preset = pipeline.load_preset(overrides=overrides)
    return {pipeline.stage_dir(preset["outputs_root"], *job): pipeline.is_current(preset, *job)
            for job in pipeline.grid_jobs(preset)}


def collect(outputs_root: str | Path) -> pd.DataFrame:
    """One row per finished stage: task, seed, stage, its headline numbers, whether it is current ("yes",
    "no"; "" outside a preset's own folder) and its folder."""
    current = current_runs(outputs_root)
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
                     "current": {True: "yes", False: "no"}.get(current.get(stage_dir), ""),
                     "folder": display_path(stage_dir)})
    return pd.DataFrame(rows, columns=["task", "seed", "stage", "result", "current", "folder"])


def render(table: pd.DataFrame, fmt: str) -> str:
    """`table` as plain text (aligned columns), CSV or a markdown pipe table."""
    if fmt == "csv":
        return table.to_csv(index=False)
    if fmt == "md":
        return results.markdown(table, floatfmt=".4g")
    with pd.option_context("display.max_rows", None, "display.max_colwidth", 80, "display.width", 200):
        return table.to_string(index=False) + "\n"


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m lotterylib.workflow.summary", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog="examples:\n  python -m lotterylib.workflow.summary outputs/demo\n"
                                       "  python -m lotterylib.workflow.summary outputs/demo --table results --format csv "
                                       "-o outputs/demo/results.csv")
    p.add_argument("outputs_root", help="a preset's output root, e.g. outputs/demo (relative to the project root)")
    p.add_argument("--table", choices=("stages", "results"), default="stages",
                   help="stages: one row per finished stage with its headline numbers (default); "
                        "results: every number, one per row (task, seed, stage, method, subnetwork, setting, "
                        "metric, value)")
    p.add_argument("--format", choices=("text", "csv", "md"), default="text",
                   help="text: aligned columns (default); csv; md: a markdown pipe table")
    p.add_argument("-o", "--output", metavar="FILE", help="write to FILE instead of standard output")
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    root = resolve(args.outputs_root)
    if not root.is_dir():
        print(f"{args.outputs_root}: no such folder. Give a preset's output root, e.g. outputs/demo, after "
              "running its grid (make grid PRESET=demo).", file=sys.stderr)
        return 1
    table = collect(root) if args.table == "stages" else results.collect(root)
    if table.empty:
        print(f"No finished stages under {args.outputs_root}.", file=sys.stderr)
        return 1
    text = render(table, args.format)
    if args.output:
        Path(args.output).parent.mkdir(parents=True, exist_ok=True)
        Path(args.output).write_text(text)
    else:
        if args.format == "text":
            print(f"\n{args.table.capitalize()} under {args.outputs_root} ({len(table)} rows):\n")
        print(text, end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
