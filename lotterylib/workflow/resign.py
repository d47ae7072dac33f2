"""`lottery resign demo demo-split demo_more`: keep committed runs current across a behaviour-neutral change.

A job's signature covers the library code it runs, so any change to that code makes the committed runs stale.
When the change computes the same numbers, `resign` proves it and re-stamps the runs instead of rerunning
them:
1. the base: the commit the runs were signed at (each run folder's signature.txt records it; `--base COMMIT`
   for runs signed before commits were recorded);
2. it runs the smoke grid at the base (a `git worktree` in a temporary folder, its own lotterylib) into
   `outputs/local/resign/<base>`, and at the current commit into `outputs/smoke` (Snakemake redoes only what
   is not current there);
3. it compares every number of every metrics.json (timings, keys ending in `seconds` or `minutes`, left
   out) and csv file, and every mask file (.npy, .npz), bit for bit (`differences`);
4. only if all are identical, and each run folder records the signature the base gives it (it was current
   there), it writes the current signature and commit into each run folder and `resigned.json` (the base,
   the proving commit, the date) into each preset's folder. Otherwise it refuses and lists what differs.
The current tree must be committed: the proving commit is HEAD.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import subprocess
import sys
import tempfile
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import pandas as pd

from ..core.files import PROJECT_ROOT, display_path, resolve, write_json_atomic
from ..stages.runs import stage_dir
from . import pipeline

COMPARED = ("metrics.json", "*.csv", "*.npy", "*.npz")
SKIPPED_FOLDERS = {"logs", "benchmarks", pipeline.MARKERS, "checkpoint"}
TIMING_SUFFIXES = ("seconds", "minutes")  # metrics.json keys ending so measure time, not results (cnn_train_seconds, minutes)
CODE = ("lotterylib", "notebooks", "workflow", "params")  # what must be committed for a proof
RECORD = "resigned.json"


class ResignError(RuntimeError):
    """The change is not proven neutral, or the runs cannot be re-stamped; the message says why."""


def differences(base: str | Path, new: str | Path) -> list[str]:
    """Every difference between two output folders: a compared file only in one, or a number or mask that is
    not bit-identical (`path: what`); empty when they agree."""
    files = [_compared_files(resolve(root)) for root in (base, new)]
    found = [f"{name}: only in {display_path(resolve(root))}"
             for name, root in [*((n, base) for n in files[0] - files[1]), *((n, new) for n in files[1] - files[0])]]
    for name in sorted(files[0] & files[1]):
        a, b = (_numbers(resolve(root) / name) for root in (base, new))
        found += [f"{name}: {key}: {a.get(key, 'missing')} != {b.get(key, 'missing')}"
                  for key in sorted(a.keys() | b.keys()) if not _same(a.get(key), b.get(key))]
    return sorted(found)


def _compared_files(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for pattern in COMPARED for p in root.rglob(pattern)
            if p.is_file() and not SKIPPED_FOLDERS & set(p.relative_to(root).parts[:-1])}


def _numbers(path: Path) -> dict[str, Any]:
    """A file's numbers by key: metrics.json's by their key path (timings left out), a csv's by column and
    row, an array file's arrays whole."""
    if path.suffix == ".json":
        return dict(_json_numbers(json.loads(path.read_text()), ""))
    if path.suffix == ".csv":
        table = pd.read_csv(path)
        numeric = table.select_dtypes("number")
        found: dict[str, Any] = {"columns": tuple(table.columns), "rows": len(table)}
        found.update({f"{column}[{row}]": value for column in numeric for row, value in numeric[column].items()})
        return found
    if path.suffix == ".npz":
        with np.load(path) as arrays:
            return {name: arrays[name] for name in arrays.files}
    return {"array": np.load(path)}


def _json_numbers(value: Any, key: str) -> Iterator[tuple[str, Any]]:
    if isinstance(value, dict):
        for k, v in value.items():
            if not str(k).endswith(TIMING_SUFFIXES):
                yield from _json_numbers(v, f"{key}.{k}" if key else str(k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _json_numbers(v, f"{key}[{i}]")
    elif isinstance(value, (int, float)) or value is None:
        yield key, value


def _same(a: Any, b: Any) -> bool:
    """Bit for bit: arrays of one dtype, shape and bytes; numbers equal in value and type (NaN equals NaN)."""
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return (isinstance(a, np.ndarray) and isinstance(b, np.ndarray) and a.dtype == b.dtype
                and a.shape == b.shape and a.tobytes() == b.tobytes())
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    return type(a) is type(b) and a == b


def overrides_of(folder: str) -> dict[str, Any]:
    """The `--config` values of a committed folder's grid (`demo`, or `outputs/demo`: preset demo;
    `demo-split`: demo with selection split; `pipeline.folder_overrides`)."""
    overrides = pipeline.folder_overrides(folder if "/" in folder else f"outputs/{folder}")
    if overrides is None:
        raise ResignError(f"{folder}: no preset writes this folder. Name a committed folder of outputs/, e.g. "
                          "demo, demo-split.")
    return overrides


def signed_at(presets: list[dict[str, Any]]) -> str:
    """The one commit the presets' run folders were signed at; an error when they record none or several."""
    commits = {pipeline.recorded_signature(stage_dir(p["outputs_root"], *job))[1]
               for p in presets for job in pipeline.grid_jobs(p) if _finished(p, job)}
    if len(commits) != 1 or None in commits:
        found = ", ".join(sorted(str(c) for c in commits)) or "none"
        raise ResignError(f"The runs record no single commit they were signed at (found: {found}). Fix: give "
                          "--base COMMIT, the commit whose code made them.")
    return commits.pop()


def _finished(preset: dict[str, Any], job: pipeline.Job) -> bool:
    return (stage_dir(preset["outputs_root"], *job) / "metrics.json").is_file()


@contextlib.contextmanager
def checkout_at(commit: str) -> Iterator[Path]:
    """A temporary `git worktree` of the project at `commit`, removed afterwards."""
    with tempfile.TemporaryDirectory(prefix="lottery-resign-") as tmp:
        path = Path(tmp) / "checkout"
        _git("worktree", "add", "--detach", str(path), commit)
        try:
            yield path
        finally:
            _git("worktree", "remove", "--force", str(path))


def _git(*args: str) -> str:
    out = subprocess.run(["git", *args], cwd=PROJECT_ROOT, capture_output=True, text=True)
    if out.returncode:
        raise ResignError(f"git {' '.join(args)} failed: {out.stderr.strip()}")
    return out.stdout.strip()


def _in_checkout(checkout: Path, *args: str) -> subprocess.CompletedProcess:
    """Run Python in `checkout` with its own lotterylib (PYTHONPATH), output to this process's."""
    env = {**os.environ, "PYTHONPATH": str(checkout)}
    return subprocess.run([sys.executable, *args], cwd=checkout, env=env, text=True, stdout=subprocess.PIPE)


def run_smoke(checkout: Path, outputs_root: Path, cores: int) -> None:
    """The smoke grid of `checkout`'s code into `outputs_root`, through its own Snakefile."""
    done = _in_checkout(checkout, "-m", "snakemake", "-s", "workflow/Snakefile", "--cores", str(cores),
                        "--rerun-incomplete", "--config", "preset=smoke", f"outputs_root={outputs_root}")
    if done.returncode:
        raise ResignError(f"The smoke grid at {checkout} failed (exit {done.returncode}); see its output above.")


def signatures_at(checkout: Path, overrides: dict[str, Any]) -> dict[pipeline.Job, str]:
    """Every grid job's signature as `checkout`'s code gives it, for a preset and its overrides."""
    code = ("import json, sys\n"
            "try:\n    from lotterylib.workflow import pipeline\n"
            "except ImportError:  # a commit before the wings (lotterylib/pipeline.py)\n    from lotterylib import pipeline\n"
            "p = pipeline.load_preset(overrides=json.loads(sys.argv[1]))\n"
            "print(json.dumps([[list(j), pipeline.job_signature(p, *j)] for j in pipeline.grid_jobs(p)]))")
    done = _in_checkout(checkout, "-c", code, json.dumps(overrides))
    if done.returncode:
        raise ResignError(f"Could not compute the signatures at {checkout} for {overrides}.")
    return {tuple(job): signature for job, signature in json.loads(done.stdout.strip().splitlines()[-1])}


def not_current_at_base(preset: dict[str, Any], base: dict[pipeline.Job, str]) -> list[str]:
    """The finished run folders of `preset` that do not record the signature the base gives their job: they
    were stale before the change, and need a rerun, not a new stamp."""
    return [display_path(stage_dir(preset["outputs_root"], *job)) for job in pipeline.grid_jobs(preset)
            if _finished(preset, job)
            and pipeline.recorded_signature(stage_dir(preset["outputs_root"], *job))[0] != base.get(job)]


def restamp(preset: dict[str, Any], base_commit: str, proof: str) -> int:
    """Record the current signature and the proving commit in each finished run folder of `preset`, and
    `resigned.json` (base, proof, date) in its output folder; the number of folders re-stamped."""
    jobs = [job for job in pipeline.grid_jobs(preset) if _finished(preset, job)]
    for job in jobs:
        pipeline.record_signature(stage_dir(preset["outputs_root"], *job), pipeline.job_signature(preset, *job), proof)
    write_json_atomic(resolve(preset["outputs_root"]) / RECORD, {
        "base": base_commit, "proof": proof, "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "runs": len(jobs)})
    return len(jobs)


def prove_neutral(checkout: Path, base_commit: str, cores: int) -> None:
    """Run the smoke grid at the base (`checkout`) and at the current commit and compare them (`differences`)."""
    new_root = resolve(pipeline.load_preset("smoke")["outputs_root"])
    base_root = resolve(f"{pipeline.LOCAL_OUTPUTS}/resign/{base_commit[:12]}")
    run_smoke(checkout, base_root, cores)
    run_smoke(PROJECT_ROOT, new_root, cores)
    found = differences(base_root, new_root)
    if found:
        raise ResignError(f"The change is not neutral: {len(found)} difference(s) between the smoke grids at "
                          f"{base_commit[:12]} ({display_path(base_root)}) and now ({display_path(new_root)}):\n  "
                          + "\n  ".join(found[:50]))
    print(f"The smoke grids at {base_commit[:12]} and now agree bit for bit.")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="lottery resign", description=__doc__.splitlines()[0],
                                     epilog=__doc__.split("\n", 2)[2], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folders", nargs="+", help="committed output folders of outputs/, e.g. demo demo-split")
    parser.add_argument("--base", help="the commit the runs were signed at (default: what they record)")
    parser.add_argument("--cores", type=int, default=2, help="jobs at once for the smoke grids (default 2)")
    args = parser.parse_args(argv)
    try:
        if _git("status", "--porcelain", "--", *CODE):
            raise ResignError(f"Commit the change first ({', '.join(CODE)} hold uncommitted edits): the proof "
                              "is made at a commit.")
        overrides = [overrides_of(folder) for folder in args.folders]
        presets = [pipeline.load_preset(overrides=o) for o in overrides]
        base_commit = _git("rev-parse", args.base or signed_at(presets))
        proof = pipeline.git_commit()
        with checkout_at(base_commit) as checkout:
            stale = [f for o, p in zip(overrides, presets) for f in not_current_at_base(p, signatures_at(checkout, o))]
            if stale:
                raise ResignError(f"{len(stale)} run folder(s) were not current at {base_commit[:12]}; rerun "
                                  "them (`make grid PRESET=...`) instead: " + ", ".join(stale))
            prove_neutral(checkout, base_commit, args.cores)
        for preset in presets:
            n = restamp(preset, base_commit, proof)
            print(f"{display_path(resolve(preset['outputs_root']))}: {n} run folders re-stamped at {proof[:12]}, "
                  f"proven neutral against {base_commit[:12]}.")
    except ResignError as error:
        print(f"lottery resign: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
