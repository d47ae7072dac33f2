"""The README's results section, generated from every committed preset's results.csv
(`lottery readme`, or `python -m lotterylib.workflow.report.readme`)."""
from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from ...analysis.verdicts import tally
from .. import pipeline, results
from .claims import claims
from .comparison import headline_table, mean_std
from .folders import report_split, run_settings
from .frames import degenerate_seeds, leak_summary
from .text import CI_PRESET
from ...core import files

README_START, README_END = "<!-- results:start -->", "<!-- results:end -->"


def heldout_line(split: pd.DataFrame | None) -> str | None:
    """One README line: the leak of the pruned good subnetworks (score on the half of dev the masks were chosen
    on minus on the other half, mean ± std over seeds) of a split run's results; None where there are none."""
    summary = leak_summary(split) if split is not None else pd.DataFrame()
    if summary.empty:
        return None
    good = summary.xs("good", level="subnetwork")
    parts = [f"{task}, {method[0]}: {mean_std(r['leak_mean'], r['leak_std'])}" for (task, method), r in good.iterrows()]
    return ("Held-out selection (masks chosen on one half of dev): the good subnetwork's pruned score on that half "
            "minus on the other half, mean ± std over seeds: " + "; ".join(parts) + ".")


def partial_line(preset: dict) -> str | None:
    """One README line for a preset's grid that runs in parts and is not finished yet: how many of its jobs
    have a result (a metrics.json in its run folder under the preset's `outputs_root`), the tasks with every
    job done and the stages across tasks not run yet; None for a finished grid."""
    jobs = pipeline.grid_jobs(preset)
    done = {job for job in jobs if pipeline.resolve(pipeline.metrics_path(preset, *job)).is_file()}
    if len(done) == len(jobs):
        return None
    tasks = [t for t in preset["tasks"] if all(job in done for job in jobs if job[1] == t)]
    across = [stage for stage, task, _ in jobs if task is None and (stage, None, None) not in done]
    return (f"**In progress**: {len(done)} of the grid's {len(jobs)} jobs have run (it runs in parts); "
            f"tasks with every job done: {', '.join(tasks) or 'none'}. The numbers below are those of the jobs "
            f"done so far; not run yet across tasks: {', '.join(across) or 'none'}.")


def readme_section(outputs_root: str | Path) -> str:
    """The README's markdown for one preset: headline table, precision, the held-out leak where a split run
    has it, the degenerate seeds and the claims tally, from its results.csv and run folders."""
    root = files.resolve(outputs_root)
    res = results.read(root)
    name = root.name
    settings = run_settings(root)
    precision = run_settings(root, "finetune").get("bf16")
    split = report_split(root)
    heldout = heldout_line(split)
    checklist = claims(res, selection=settings.get("selection", "dev"), split=split)
    degenerate = degenerate_seeds(res)
    report = root / "all_tasks" / "report" / "00_report.ipynb"
    overrides = pipeline.folder_overrides(root)   # a preset's own folder: its grid may be partly run
    partial = partial_line(pipeline.load_preset(overrides=overrides)) if overrides else None
    lines = [f"### `{name}`", "", *([partial, ""] if partial else []),
             f"Means ± std over seeds, dev sets, {settings.get('model', '?')}"
             f" (compat `{settings.get('compat', '?')}`"
             + ("" if precision is None else f", {'bf16' if precision else 'fp32'}")
             + f"). Every number: [`results.csv`]({files.display_path(root)}/"
             f"{results.CSV_NAME}); the report: [`00_report.ipynb`]({files.display_path(report)}).", "",
             results.markdown(headline_table(res)),
             *([heldout, ""] if heldout else []),
             *([f"![Figure 2, {name}]({files.display_path(report.parent / 'figure2.png')})", ""]
               if (report.parent / "figure2.png").is_file() else []),
             *(["Degenerate seeds, left out of the verdicts: " + "; ".join(
                 f"{r.task} seed {r.seed} ({r.reason})" for r in degenerate.itertuples()) + ".", ""]
               if not degenerate.empty else []),
             "Claims checklist: " + ", ".join(f"{k} {v}" for k, v in tally(checklist.verdict).items())
             + f" (of {len(checklist)}).", ""]
    return "\n".join(lines)

NO_RUNS = ("No committed runs yet: the results appear here once a preset's run is committed under `outputs/` "
           "and `make readme-results` regenerates this section.\n")


def committed_roots(outputs: str | Path = "outputs") -> list[Path]:
    """The output roots under `outputs` that hold a results.csv, but the CI's, sorted by name."""
    return sorted(p.parent for p in files.resolve(outputs).glob(f"*/{results.CSV_NAME}") if p.parent.name != CI_PRESET)


def render_readme(text: str, outputs_roots: Sequence[str | Path]) -> str:
    """`text` with the part between the results markers replaced by the sections of `outputs_roots`."""
    pattern = re.compile(re.escape(README_START) + ".*?" + re.escape(README_END), re.S)
    if not pattern.search(text):
        raise ValueError(f"no {README_START} ... {README_END} markers in the README: add them where the results go.")
    body = "\n".join(readme_section(r) for r in outputs_roots) if outputs_roots else NO_RUNS
    return pattern.sub(lambda _: f"{README_START}\n<!-- generated by `make readme-results`: do not edit -->\n\n"
                       f"{body}\n{README_END}", text)


def update_readme(readme: str | Path = "README.md", outputs_roots: Sequence[str | Path] | None = None) -> str:
    """Rewrite the README's results section from `outputs_roots` (default: `committed_roots()`); returns the text."""
    path = files.resolve(readme)
    text = render_readme(path.read_text(), committed_roots() if outputs_roots is None else outputs_roots)
    path.write_text(text)
    return text


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m lotterylib.workflow.report",
                                description="Regenerate the README's results section from the presets' results.csv.")
    p.add_argument("outputs_roots", nargs="*", help="output roots with a results.csv, e.g. outputs/demo "
                   "(default: every committed preset under outputs/, the CI's smoke preset left out)")
    p.add_argument("--readme", default="README.md", help="the README to update (default README.md)")
    args = p.parse_args(argv)
    update_readme(args.readme, args.outputs_roots or None)
    return 0



if __name__ == "__main__":
    sys.exit(main())
