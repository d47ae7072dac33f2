"""Run folders: one deterministic folder per (task, seed, stage) under a preset's output root.

Every folder holds `params.json` (the resolved parameters and their hash), the stage's artifacts, and
`metrics.json`, written last and atomically: its presence with a matching hash means "done".
Relative paths are resolved against the project root, so notebooks run the same from any directory.
"""
from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

PROJECT_ROOT = Path(__file__).resolve().parents[1]
ALL_SEEDS = "all_seeds"   # task-level stages (across seeds)
ALL_TASKS = "all_tasks"   # preset-level stages (across tasks)


def resolve(path: str | Path) -> Path:
    """An absolute path as given; a relative one is taken from the project root."""
    path = Path(path).expanduser()
    return path if path.is_absolute() else PROJECT_ROOT / path


def stage_dir(outputs_root: str | Path, stage: str, task: str | None = None, seed: int | None = None) -> Path:
    """`<root>/<task>/seed_<seed>/<stage>`; without a seed `<root>/<task>/all_seeds/<stage>`;
    without a task `<root>/all_tasks/<stage>`."""
    root = resolve(outputs_root)
    if task is None:
        return root / ALL_TASKS / stage
    return root / task / (f"seed_{seed}" if seed is not None else ALL_SEEDS) / stage


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.generic):
        return _jsonable(obj.item())
    if isinstance(obj, float) and not np.isfinite(obj):
        return None  # strict JSON has no NaN: an undefined statistic is null
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    return obj


def params_hash(params: dict[str, Any]) -> str:
    """A short stable hash of the parameters (key order does not matter)."""
    blob = json.dumps(_jsonable(params), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()[:12]


def write_json_atomic(path: str | Path, data: Any) -> None:
    """Write JSON through a temporary file and a rename: readers never see a half-written file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(_jsonable(data), f, indent=2, sort_keys=True)
            f.write("\n")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def read_json(path: str | Path) -> Any:
    with open(path) as f:
        return json.load(f)


class Run:
    """A stage's run folder. `Run(dir, params)` writes params.json; `finish(metrics)` marks it done."""

    def __init__(self, directory: str | Path, params: dict[str, Any]):
        self.dir = resolve(directory)
        self.params = _jsonable(params)
        self.hash = params_hash(self.params)
        self.dir.mkdir(parents=True, exist_ok=True)
        if not self.is_done():
            (self.dir / "metrics.json").unlink(missing_ok=True)
            write_json_atomic(self.dir / "params.json", {"hash": self.hash, "params": self.params})

    def path(self, name: str) -> Path:
        return self.dir / name

    def is_done(self) -> bool:
        """metrics.json exists and was written for these very parameters."""
        return is_done(self.dir, self.hash)

    def finish(self, metrics: dict[str, Any]) -> dict[str, Any]:
        """Write metrics.json (with the params hash) last and atomically."""
        write_json_atomic(self.dir / "metrics.json", {**metrics, "params_hash": self.hash})
        return metrics


def is_done(directory: str | Path, expected_hash: str | None = None) -> bool:
    path = resolve(directory) / "metrics.json"
    if not path.is_file():
        return False
    return expected_hash is None or read_json(path).get("params_hash") == expected_hash


def load_metrics(directory: str | Path) -> dict[str, Any]:
    """A finished stage's metrics; a clear error when the stage has not run (yet)."""
    path = resolve(directory) / "metrics.json"
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist: the stage in {path.parent} has not finished. Run it "
                                "first (its notebook, or `make grid PRESET=...`).")
    return read_json(path)


def display_path(path: str | Path) -> str:
    """A path relative to the project root when it lies inside it (stable notebook output)."""
    path = Path(path)
    return str(path.relative_to(PROJECT_ROOT)) if path.is_relative_to(PROJECT_ROOT) else str(path)
