"""Presets and stages for the Snakemake workflow (`workflow/Snakefile`): what runs, where, with which values.

A preset (`params/<name>.yaml`) holds the grid (`tasks`, `seeds`, `stages`) and values for the notebooks'
parameters; a command-line `--config key=value` overrides any of them. Each job executes one stage's
notebook with papermill into its run folder; the notebook writes `metrics.json` last.
"""
from __future__ import annotations

import contextlib
import fcntl
import os
import time
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any, Iterator

import yaml

from .runs import PROJECT_ROOT, display_path, resolve, stage_dir


@dataclass(frozen=True)
class Stage:
    """A notebook and the level it runs at: per (task, seed), per task (across seeds) or per preset."""

    notebook: str
    level: str  # "seed" | "task" | "preset"


STAGES: dict[str, Stage] = {
    "finetune": Stage("notebooks/01_finetune.ipynb", "seed"),
    "s_pruning": Stage("notebooks/02_structured_pruning.ipynb", "seed"),
    "m_pruning": Stage("notebooks/03_magnitude_pruning.ipynb", "seed"),
    "lottery": Stage("notebooks/04_lottery_tests.ipynb", "seed"),
    "bad_subnetworks": Stage("notebooks/05_bad_subnetworks.ipynb", "preset"),
    "stability": Stage("notebooks/06_stability.ipynb", "preset"),
    "attention_patterns": Stage("notebooks/07_attention_patterns.ipynb", "preset"),
}

GRID_KEYS = ("tasks", "seeds", "stages")
GPU_ENV = "LOTTERY_GPUS"  # e.g. "0,1,2,3": each job takes one free GPU of these (CUDA_VISIBLE_DEVICES)


def load_preset(name_or_path: str, overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """A preset's values (a name in `params/` or a YAML path) with overrides applied; checks the grid."""
    path = Path(name_or_path)
    if not path.suffix:
        path = PROJECT_ROOT / "params" / f"{name_or_path}.yaml"
    if not path.is_file():
        known = sorted(p.stem for p in (PROJECT_ROOT / "params").glob("*.yaml"))
        raise FileNotFoundError(f"No preset {name_or_path!r} ({path}). Known presets: {', '.join(known)}; "
                                "or pass the path of a YAML file.")
    preset = yaml.safe_load(path.read_text()) or {}
    preset.update({k: v for k, v in (overrides or {}).items() if k != "preset"})
    split = "-split" if preset.get("selection") == "split" else ""   # held-out selection: its own run folders
    preset.setdefault("outputs_root", f"outputs/{path.stem}{split}")
    for key in GRID_KEYS:
        if not isinstance(preset.get(key), list) or not preset[key]:
            raise ValueError(f"Preset {path.stem}: `{key}` must be a non-empty list.")
    unknown = [s for s in preset["stages"] if s not in STAGES]
    if unknown:
        raise ValueError(f"Preset {path.stem}: unknown stages {unknown}; known: {', '.join(STAGES)}.")
    from .tasks import get_task

    preset["tasks"] = [get_task(t).name for t in preset["tasks"]]
    for key, value in preset.items():
        if isinstance(value, dict):  # a per-task value: {task: value}
            preset[key] = {get_task(t).name: v for t, v in value.items()}
            lacking = [t for t in preset["tasks"] if t not in preset[key]]
            if lacking:
                raise ValueError(f"Preset {path.stem}: `{key}` is per task but has no value for "
                                 f"{', '.join(lacking)}; add them to its mapping.")
    return preset


@cache
def notebook_parameters(notebook: str) -> tuple[str, ...]:
    """The names declared in a notebook's `parameters` cell."""
    import papermill

    return tuple(papermill.inspect_notebook(str(resolve(notebook))))


def stage_params(preset: dict[str, Any], stage: str, task: str | None = None, seed: int | None = None) -> dict[str, Any]:
    """The values one job passes to its notebook: the preset's values for the parameters it declares.

    A per-task value (a mapping such as `max_train_examples: {SST-2: 2000, MRPC: 0}`) gives a task's job
    that task's value."""
    declared = notebook_parameters(STAGES[stage].notebook)
    values = {**preset, "task": task, "seed": seed}
    if task is not None:
        values = {k: v[task] if isinstance(v, dict) else v for k, v in values.items()}
    per_task = [k for k in declared if isinstance(values.get(k), dict)]
    if per_task:
        raise ValueError(f"`{per_task[0]}` is per task, but the {stage} stage runs over all tasks and takes "
                         "one value; give it a single value in the preset.")
    return {k: values[k] for k in declared if k in values and values[k] is not None}


def metrics_path(preset: dict[str, Any], stage: str, task: str | None = None, seed: int | None = None) -> str:
    """A job's output as Snakemake sees it (relative to the project root when inside it)."""
    return display_path(stage_dir(preset["outputs_root"], stage, task, seed) / "metrics.json")


def train_examples(preset: dict[str, Any], task: str) -> int:
    """How many training examples a task's jobs use: its `max_train_examples` (0: all) capped by its size."""
    from .tasks import get_task

    n = preset.get("max_train_examples") or 0
    n = (n.get(task) or 0) if isinstance(n, dict) else n
    size = get_task(task).official_rows["train"]
    return min(n, size) if n else size


def job_priority(preset: dict[str, Any], stage: str, task: str) -> int:
    """A per-seed job's Snakemake priority, for a tight schedule on few cores: fine-tuning and pruning
    first (so every lottery job is ready early), then the lottery jobs, which train six times, longest
    first (the tasks with the most training examples)."""
    by_size = sorted(preset["tasks"], key=lambda t: train_examples(preset, t))
    return by_size.index(task) if stage == "lottery" else len(by_size)


def targets(preset: dict[str, Any]) -> list[str]:
    """Every stage's metrics.json of the grid."""
    out = []
    for stage in preset["stages"]:
        level = STAGES[stage].level
        if level == "preset":
            out.append(metrics_path(preset, stage))
        for task in preset["tasks"] if level != "preset" else []:
            if level == "task":
                out.append(metrics_path(preset, stage, task))
            else:
                out.extend(metrics_path(preset, stage, task, seed) for seed in preset["seeds"])
    return out


@contextlib.contextmanager
def gpu_slot(lock_dir: Path) -> Iterator[None]:
    """With $LOTTERY_GPUS set, hold one of those GPUs (a lock file each) and pin CUDA_VISIBLE_DEVICES to it."""
    gpus = [g.strip() for g in os.environ.get(GPU_ENV, "").split(",") if g.strip()]
    if not gpus:
        yield
        return
    lock_dir.mkdir(parents=True, exist_ok=True)
    while True:
        for gpu in gpus:
            handle = open(lock_dir / f"gpu{gpu}.lock", "w")
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                handle.close()
                continue
            previous = os.environ.get("CUDA_VISIBLE_DEVICES")
            os.environ["CUDA_VISIBLE_DEVICES"] = gpu
            try:
                yield
            finally:
                if previous is None:
                    os.environ.pop("CUDA_VISIBLE_DEVICES", None)
                else:
                    os.environ["CUDA_VISIBLE_DEVICES"] = previous
                handle.close()
            return
        time.sleep(5)  # more jobs than GPUs: Snakemake's `--resources gpu=N` should prevent this


def run_stage(notebook: str, metrics_file: str, params: dict[str, Any], threads: int = 1) -> None:
    """Execute one notebook with papermill into its run folder; fail if it did not write metrics.json."""
    import papermill

    out_dir = Path(metrics_file).parent
    out_dir.mkdir(parents=True, exist_ok=True)
    os.environ["OMP_NUM_THREADS"] = str(threads)  # inherited by the kernel: torch uses this many threads
    with gpu_slot(PROJECT_ROOT / ".snakemake" / "gpu_locks"):
        papermill.execute_notebook(str(resolve(notebook)), str(out_dir / Path(notebook).name),
                                   parameters=params, kernel_name="python3", cwd=str(PROJECT_ROOT), progress_bar=False)
    if not Path(metrics_file).is_file():
        raise RuntimeError(f"{notebook} finished without writing {metrics_file}.")
