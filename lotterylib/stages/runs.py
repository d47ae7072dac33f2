"""Run folders: one deterministic folder per (task, seed, stage) under a preset's output root.

Every folder holds `params.json` (the validated parameters, their hash and the thread count), the stage's
artifacts, and `metrics.json`, written last and atomically: its presence means "finished". Whether a finished
run is current (made by the code and parameters a job has now) is the job signature's to say
(`pipeline.is_current`, the one run identity). The hash in params.json only detects a params.json edited by
hand after its run, which makes the run neither done nor current.
A run's folder is made when the work first touches it (`Run.dir`, `Run.path`), after its inputs loaded:
opening it takes the folder's lock (`.lock`, held until the run finishes or its process dies, so a second
writer fails naming the first) and removes an old `metrics.json` first, so a rerun is never marked done while it rewrites.
The paths, atomic writes and locks beneath this are `core.files`'.
"""
from __future__ import annotations

import hashlib
import json
import math
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from ..core.files import (ALL_SEEDS, ALL_TASKS, display_path, jsonable, lock_folder, missing_stage_error,
                          read_json, remove_partial, resolve, unlock_folder, write_json_atomic)
from .config import validate_params
from .registry import STAGES

SIGNATURE_FILE = "signature.txt"  # in a run folder: the job signature of its finished grid job, and its commit


def stage_dir(outputs_root: str | Path, stage: str, task: str | None = None, seed: int | None = None) -> Path:
    """`<root>/<task>/seed_<seed>/<stage>`; without a seed `<root>/<task>/all_seeds/<stage>`;
    without a task `<root>/all_tasks/<stage>`. The task name is made canonical; a bad task or seed raises
    `errors.ParameterError`."""
    root = resolve(outputs_root)
    if task is None:
        return root / ALL_TASKS / stage
    checked = validate_params({"task": task, "seed": seed} if seed is not None else {"task": task})
    return root / checked["task"] / (f"seed_{checked['seed']}" if seed is not None else ALL_SEEDS) / stage


def missing_run_error(path: str | Path, stage: str, hint: str = "") -> FileNotFoundError:
    """`files.missing_stage_error` naming the stage's notebook (the registry's): "run the s_pruning stage
    (notebooks/02_structured_pruning.ipynb) for SST-2, seed 1 first"."""
    return missing_stage_error(path, stage, hint, STAGES[stage].notebook if stage in STAGES else "")


def params_hash(params: dict[str, Any]) -> str:
    """A short stable hash of the parameters (key order does not matter), stored beside them in params.json
    to detect a hand edit (`edited_params`); not a run identity (that is `pipeline.job_signature`)."""
    blob = json.dumps(jsonable(params), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()[:12]


def non_finite(metrics: dict[str, Any]) -> list[str]:
    """The top-level numbers of `metrics` that are NaN or infinite (nested tables may hold undefined
    statistics, written as null)."""
    return [k for k, v in metrics.items()
            if isinstance(v, (float, np.floating)) and not math.isfinite(v)]


class Run:
    """A stage's run folder. `Run(dir, params)` records the parameters as given (a notebook's, validated and
    normalised once by `stages.open`, so equal settings give equal hashes) and creates nothing; the first use
    of `dir` or `path()` (when the work starts, after the inputs loaded) locks the folder, removes an old
    done-marker, signature (`SIGNATURE_FILE`: a run by hand into a grid's folder is no longer that grid job's
    result; the workflow records the new one when its job ends) and partial files, and writes params.json
    (with `params_hash`, to detect a hand edit); `finish(metrics)` marks it done and unlocks it."""

    def __init__(self, directory: str | Path, params: dict[str, Any]):
        self.params = jsonable(dict(params))
        self.hash = params_hash(self.params)
        self._dir = resolve(directory)
        self._opened = False

    @property
    def dir(self) -> Path:
        """The run folder, opened (made, locked, params.json written) on first use."""
        if not self._opened:
            self._open()
        return self._dir

    def _open(self) -> None:
        import torch

        lock_folder(self._dir)
        (self._dir / "metrics.json").unlink(missing_ok=True)
        (self._dir / SIGNATURE_FILE).unlink(missing_ok=True)  # it described the run being replaced
        remove_partial(self._dir)
        write_json_atomic(self._dir / "params.json", {"hash": self.hash, "params": self.params,
                                                      "threads": torch.get_num_threads()})
        self._opened = True

    def path(self, name: str) -> Path:
        return self.dir / name

    def finish(self, metrics: dict[str, Any]) -> dict[str, Any]:
        """Write metrics.json last and atomically; an invalid result (a NaN or
        infinite top-level number) raises instead and leaves the run unfinished."""
        bad = non_finite(metrics)
        if bad:
            raise ValueError(f"Not marking {display_path(self._dir)} done: {', '.join(bad)} "
                             f"{'is' if len(bad) == 1 else 'are'} not finite ({', '.join(str(metrics[k]) for k in bad)}). "
                             "Fix the run's inputs (e.g. a lower learning_rate) and rerun it.")
        write_json_atomic(self.dir / "metrics.json", metrics)
        unlock_folder(self._dir)  # done writing: another process may rerun it now
        return metrics


def edited_params(directory: str | Path) -> str | None:
    """Why a run folder's params.json cannot be trusted (its parameters no longer give the hash stored
    beside them: edited by hand after the run), or None when it is intact or absent."""
    path = resolve(directory) / "params.json"
    if not path.is_file():
        return None
    stored = read_json(path)
    if params_hash(stored.get("params", {})) == stored.get("hash"):
        return None
    return (f"{display_path(path)} was changed after its run: its parameters give hash "
            f"{params_hash(stored.get('params', {}))}, not the stored {stored.get('hash')}, so they may not be "
            "the settings the results came from. Fix: restore the file, or rerun the stage.")


def read_params(directory: str | Path) -> dict[str, Any]:
    """The parameters a run recorded (params.json); a ValueError if the file was edited after the run."""
    problem = edited_params(directory)
    if problem:
        raise ValueError(problem)
    return read_json(resolve(directory) / "params.json")["params"]


def is_done(directory: str | Path) -> bool:
    """The run finished: metrics.json exists and params.json is intact (an edited params.json warns, naming
    it, and the run counts as not done). Whether it is current is `pipeline.is_current`'s to say."""
    if not (resolve(directory) / "metrics.json").is_file():
        return False
    problem = edited_params(directory)
    if problem:
        warnings.warn(problem, stacklevel=2)
    return problem is None


def load_metrics(directory: str | Path) -> dict[str, Any]:
    """A finished stage's metrics; a clear error when the stage has not run (yet)."""
    path = resolve(directory) / "metrics.json"
    if not path.is_file():
        raise missing_run_error(path, path.parent.name)
    return read_json(path)


