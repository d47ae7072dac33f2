"""Presets and stages for the Snakemake workflow (`workflow/Snakefile`): what runs, where, with which values.

A preset (`params/<name>.yaml`) holds the grid (`tasks`, `seeds`, `stages`) and values for the notebooks'
parameters; a command-line `--config key=value` overrides any of them. Each job executes one stage's
notebook with papermill into its run folder; the notebook writes `metrics.json` last.
"""
from __future__ import annotations

import ast
import contextlib
import fcntl
import hashlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
import warnings
from functools import cache
from pathlib import Path
from typing import Any, Iterator

import yaml

from ..core.errors import ParameterError
from ..core.files import ALL_TASKS, PROJECT_ROOT, display_path, resolve
from ..core.progress import clock, duration
from ..stages.config import validate_preset
from ..stages.registry import DISPLAY_ONLY, GRID_KEYS, PARAMS, STAGES
from ..stages.runs import SIGNATURE_FILE, edited_params, stage_dir


DEFAULT_PRESET = "smoke"
Job = tuple[str, str | None, int | None]  # (stage, task, seed)
MARKERS = ".signatures"  # under outputs_root: `<stage>/<job>.<signature>`, the input that forces a stale job
LIBRARY = Path(__file__).resolve().parents[1]  # the lotterylib package whose code a job's signature covers
FOLDER_KEYS = ("preset", "name", "selection")  # overrides that choose a preset's output folder (`grid_preset`)
LOCAL_OUTPUTS = "outputs/local"  # git-ignored: runs of a committed preset changed by overrides
GPU_ENV = "LOTTERY_GPUS"  # e.g. "0,1,2,3": each job takes one free GPU of these (CUDA_VISIBLE_DEVICES)


def load_preset(name_or_path: str | None = None, overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """A preset's values (a name in `params/` or a YAML path) with overrides applied, validated against the
    schema (`config.validate_preset`) and normalised.

    Without `name_or_path` the overrides say which: their `preset`, else their `name` (so Snakemake's
    `--configfile params/demo.yaml` is `--config preset=demo`), else `smoke`. A config that names no preset
    file but holds a whole grid stands alone. Results go to `outputs_root`, by default `outputs/<name>` (`outputs/<name>-split` with `selection: split`)."""
    overrides = dict(overrides or {})
    chosen = name_or_path or overrides.pop("preset", None)
    path = _preset_path(chosen or overrides.get("name") or DEFAULT_PRESET)
    if path.is_file():
        preset, source = {"name": path.stem, **read_preset_yaml(path)}, display_path(path)
    elif not chosen and set(GRID_KEYS) <= set(overrides):  # a whole config of its own (--configfile)
        preset, source = {}, "the config"
    else:
        known = sorted(p.stem for p in (PROJECT_ROOT / "params").glob("*.yaml"))
        raise FileNotFoundError(f"No preset {chosen or overrides.get('name')!r} ({path}). Known presets: "
                                f"{', '.join(known)}; or pass the path of a YAML file.")
    preset.update({k: v for k, v in overrides.items() if k != "preset"})
    preset = validate_preset(preset, source=source)
    preset.setdefault("name", DEFAULT_PRESET)
    split = "-split" if preset.get("selection") == "split" else ""  # held-out selection: its own run folders
    preset.setdefault("outputs_root", f"outputs/{preset['name']}{split}")
    return preset


def grid_preset(config: dict[str, Any]) -> dict[str, Any]:
    """The preset a workflow runs with Snakemake's `config` (`load_preset`), kept out of a committed folder:
    when the overrides change any job's signature and the preset's default folder is tracked by git, the
    results go to `outputs/local/<folder>-<hash of the overrides>` (git-ignored) instead, which this prints.
    An explicit `outputs_root` is taken as given; `preset`, `name` and `selection` choose the folder itself."""
    preset = load_preset(overrides=config)
    if "outputs_root" in config or not tracked(preset["outputs_root"]):
        return preset
    base = load_preset(overrides={k: v for k, v in config.items() if k in FOLDER_KEYS})
    if all(job_signature(preset, *job) == job_signature(base, *job) for job in grid_jobs(preset)):
        return preset
    changes = {k: v for k, v in config.items() if k not in FOLDER_KEYS}
    folder = Path(preset["outputs_root"]).name
    preset["outputs_root"] = f"{LOCAL_OUTPUTS}/{folder}-{_sha(json.dumps(changes, sort_keys=True, default=str))[:8]}"
    print(f"The overrides {changes} change what the committed {display_path(resolve(base['outputs_root']))} "
          f"holds: writing to {preset['outputs_root']} instead (`--config outputs_root=...` chooses).",
          file=sys.stderr)
    return preset


def folder_overrides(folder: str | Path) -> dict[str, Any] | None:
    """The `--config` values whose grid writes into `folder` by default (`outputs/demo`: preset demo;
    `outputs/demo-split`: demo with selection split); None for a folder that is no preset's own."""
    root = resolve(folder)
    for name, extra in ((root.name, {}), (root.name.removesuffix("-split"), {"selection": "split"})):
        if (PROJECT_ROOT / "params" / f"{name}.yaml").is_file():
            overrides = {"preset": name, **extra}
            return overrides if resolve(load_preset(overrides=overrides)["outputs_root"]) == root else None
    return None


def tracked(path: str | Path) -> bool:
    """Whether git tracks files under `path` (a committed run folder); False outside a git checkout."""
    out = subprocess.run(["git", "ls-files", "--", str(resolve(path))], cwd=PROJECT_ROOT, capture_output=True,
                         text=True)
    return out.returncode == 0 and bool(out.stdout.strip())


def read_preset_yaml(path: Path) -> dict[str, Any]:
    """A preset file's mapping; a ParameterError naming the file and line when it is not valid YAML or not
    a mapping."""
    try:
        values = yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f", line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(e, "problem", None) or str(e)
        raise ParameterError(f"{display_path(path)}{where}: not valid YAML ({problem}). Fix: correct the "
                             "file there (a `key: value` per line, lists as [a, b]).") from None
    if values is not None and not isinstance(values, dict):
        raise ParameterError(f"{display_path(path)}: a preset is a mapping of `key: value` lines, not a "
                             f"{type(values).__name__}. Fix: correct the file.")
    return values or {}


def _preset_path(name_or_path: str) -> Path:
    path = Path(name_or_path)
    return path if path.suffix else PROJECT_ROOT / "params" / f"{name_or_path}.yaml"


def stage_params(preset: dict[str, Any], stage: str, task: str | None = None, seed: int | None = None) -> dict[str, Any]:
    """The values one job passes to its notebook: the preset's values for the parameters its stage takes.

    A per-task value (a mapping such as `max_train_examples: {SST-2: 2000, MRPC: 0}`) gives a task's job
    that task's value."""
    declared = STAGES[stage].params
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
    from ..core.tasks import get_task

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


def grid_jobs(preset: dict[str, Any]) -> list[Job]:
    """Every job of the grid, as (stage, task, seed); None where a stage runs across tasks or seeds."""
    jobs: list[Job] = []
    for stage in preset["stages"]:
        level = STAGES[stage].level
        if level == "preset":
            jobs.append((stage, None, None))
        for task in preset["tasks"] if level != "preset" else []:
            if level == "task":
                jobs.append((stage, task, None))
            else:
                jobs.extend((stage, task, seed) for seed in preset["seeds"])
    return jobs


def targets(preset: dict[str, Any]) -> list[str]:
    """Every stage's metrics.json of the grid."""
    return [metrics_path(preset, *job) for job in grid_jobs(preset)]


def upstream_jobs(preset: dict[str, Any], stage: str, task: str | None = None, seed: int | None = None) -> list[Job]:
    """The jobs whose results a job reads: its `needs` for the same task and seed, for every seed of the task
    (a per-task stage), or for every task and seed (a per-preset stage); a per-preset need once. A need in
    the stage's `every_seed` is read for every seed of the task when its parameter is true (a lottery job
    with `extras`, the super-survivors, reads every seed's s-pruning of its task). A stage that `needs_all`
    (the report) reads every other stage of the grid."""
    spec = STAGES[stage]
    needs = [s for s in preset["stages"] if s != stage] if spec.needs_all else spec.needs
    jobs: list[Job] = []
    for need in needs:
        if STAGES[need].level == "preset":
            jobs.append((need, None, None))
        elif STAGES[stage].level == "preset":
            jobs += [(need, t, s) for t in preset["tasks"] for s in preset["seeds"]]
        elif spec.level == "task" or (need in spec.every_seed and _flag(preset, stage, task, seed, spec.every_seed[need])):
            jobs += [(need, task, s) for s in preset["seeds"]]
        else:
            jobs.append((need, task, seed))
    return jobs


def _flag(preset: dict[str, Any], stage: str, task: str | None, seed: int | None, name: str) -> bool:
    """A boolean parameter of one job: the preset's value, else its declared default."""
    return bool(stage_params(preset, stage, task, seed).get(name, PARAMS[name].default))


@cache
def code_hash(notebook: str) -> str:
    """A hash of a notebook's code cells (parameters cell included), blind to its outputs and markdown."""
    return _sha("\n# cell\n".join(_code_cells(notebook)))


def _code_cells(notebook: str) -> list[str]:
    import nbformat

    cells = nbformat.read(resolve(notebook), as_version=4).cells
    return [c.source.strip() for c in cells if c.cell_type == "code"]


def library_hash(notebook: str) -> str:
    """A hash of the library code a notebook runs: the `lotterylib` modules it imports, transitively, with
    the package data folders they name (e.g. `data_files`, `schema`)."""
    return _library_hash(notebook, LIBRARY)


@cache
def _library_hash(notebook: str, package: Path) -> str:
    files = sorted(library_files(notebook, package))
    return _sha("\n".join(f"{f.relative_to(package)} {_file_hash(f, *_stamp(f))}" for f in files))


def _stamp(path: Path) -> tuple[int, int]:
    """A file's modification time and size: the key under which what was read of it stays valid."""
    info = path.stat()
    return info.st_mtime_ns, info.st_size


@cache
def _file_hash(path: Path, mtime_ns: int, size: int) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def library_files(notebook: str, package: Path = LIBRARY) -> set[Path]:
    """Every file of `package` a notebook's code may run or read: the modules its code cells import (`ast`;
    a module's enclosing packages too), the modules those import, and the files under a data folder
    (a subfolder that is no package) whose name a module holds as a string."""
    todo = [m for cell in _code_cells(notebook) for m in _imports(_python(cell), package.name, None)]
    files: set[Path] = set()
    while todo:
        name = todo.pop()
        path = _module_file(name, package)
        if path is None or path in files:
            continue
        imports, data = _module_facts(path, name, *_stamp(path))
        files.update((path, *data))
        todo += [*imports, name.rpartition(".")[0] or name]  # and the enclosing package's __init__
    return files


@cache
def _module_facts(path: Path, name: str, mtime_ns: int, size: int) -> tuple[tuple[str, ...], tuple[Path, ...]]:
    """What the module `name` (file `path`) imports of its package, and the data files it may read."""
    tree = ast.parse(path.read_text())
    imports = _imports(tree, name.split(".")[0], name if path.name == "__init__.py" else name.rpartition(".")[0])
    folders = {path.parent / node.value for node in ast.walk(tree)
               if isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value.isidentifier()}
    data = [f for folder in folders if folder.is_dir() and not (folder / "__init__.py").exists()
            for f in folder.rglob("*") if f.is_file() and "__pycache__" not in f.parts]
    return tuple(imports), tuple(data)


def _python(cell: str) -> ast.Module:
    """A code cell as Python (IPython's `%magic` and `!shell` lines left out)."""
    return ast.parse("\n".join(line for line in cell.splitlines() if not line.lstrip().startswith(("%", "!"))))


def _imports(tree: ast.AST, top: str, package: str | None) -> list[str]:
    """The dotted names of `top`'s modules (or names in them) that `tree` imports; `package`: the package a
    relative import is taken from (None outside the library)."""
    names = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names += [a.name for a in node.names if a.name.split(".")[0] == top]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                if package is None:
                    continue
                base = ".".join(package.split(".")[:len(package.split(".")) - node.level + 1])
            else:
                base = node.module or ""
                if base.split(".")[0] != top:
                    continue
            base = base if not node.level or not node.module else f"{base}.{node.module}"
            names += [base, *(f"{base}.{a.name}" for a in node.names)]  # a name may be a module or not
    return names


def _module_file(name: str, package: Path) -> Path | None:
    """The file of the dotted module `name` inside `package` (a module or a subpackage), or None."""
    parts = name.split(".")[1:]
    inner = package.joinpath(*parts)
    for path in ((inner.with_suffix(".py"),) if parts else ()) + (inner / "__init__.py",):
        if path.is_file():
            return path
    return None


def job_signature(preset: dict[str, Any], stage: str, task: str | None = None, seed: int | None = None) -> str:
    """The run identity: a hash of what a job's result follows from: its parameters (those in `DISPLAY_ONLY`
    left out), its notebook's code cells, the library code the notebook runs (`library_hash`) and the
    signatures of the jobs it reads. `run_stage` records it in the run folder; `is_current` compares."""
    upstream = sorted(job_signature(preset, *job) for job in set(upstream_jobs(preset, stage, task, seed)))
    values = {k: v for k, v in stage_params(preset, stage, task, seed).items() if k not in DISPLAY_ONLY}
    own = json.dumps(values, sort_keys=True, default=str)
    notebook = STAGES[stage].notebook
    return _sha("\n".join([own, code_hash(notebook), library_hash(notebook), *upstream]))


def recorded_signature(folder: str | Path) -> tuple[str | None, str | None]:
    """The signature a run folder records (None when it has none) and the git commit its job ran at."""
    path = resolve(folder) / SIGNATURE_FILE
    if not path.is_file():
        return None, None
    lines = path.read_text().split("\n")
    commit = next((line.split(" ", 1)[1] for line in lines[1:] if line.startswith("commit ")), None)
    return lines[0].strip() or None, commit


def record_signature(folder: str | Path, signature: str, commit: str | None = None) -> None:
    """Record in a run folder the signature of its finished job and the commit it ran at (default: now's)."""
    (resolve(folder) / SIGNATURE_FILE).write_text(f"{signature}\ncommit {commit or git_commit()}\n")


def git_commit(checkout: str | Path = PROJECT_ROOT) -> str:
    """`git rev-parse HEAD` of the checkout; "unknown" outside a git checkout."""
    out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=checkout, capture_output=True, text=True)
    return out.stdout.strip() if out.returncode == 0 else "unknown"


def is_current(preset: dict[str, Any], stage: str, task: str | None = None, seed: int | None = None) -> bool:
    """Whether a job's run folder records the signature the job has now: the one test of "this result
    stands", whatever its files' times or Snakemake's records say (the Snakefile, `lottery compare` and
    `lottery summary` ask it). A run whose params.json was edited after it ran is not current (a warning
    names the file): it reruns."""
    folder = stage_dir(preset["outputs_root"], stage, task, seed)
    if recorded_signature(folder)[0] != job_signature(preset, stage, task, seed):
        return False
    problem = edited_params(folder)
    if problem:
        warnings.warn(problem, stacklevel=2)
    return problem is None


def settled(preset: dict[str, Any], stage: str, task: str | None = None, seed: int | None = None) -> bool:
    """Whether a job's result stands and nothing it reads will be redone: it is finished and current
    (`is_current`), and so is every job above it. A job that is not settled reruns."""
    return (stage_dir(preset["outputs_root"], stage, task, seed) / "metrics.json").is_file() \
        and is_current(preset, stage, task, seed) \
        and all(settled(preset, *job) for job in set(upstream_jobs(preset, stage, task, seed)))


def stale_marker(preset: dict[str, Any], stage: str, task: str | None = None, seed: int | None = None) -> list[str]:
    """The extra input of a job that is not `settled`: a marker, `<outputs_root>/.signatures/<stage>/<job>.<signature>`,
    made here, newer than every file of the job's run folder, so Snakemake reruns the job whatever its
    metadata and its files' times say; every job below it (not settled either) gets its own. A missing input
    would not do: Snakemake skips a missing intermediate file whose readers are done. A settled job gets none."""
    if settled(preset, stage, task, seed):
        return []
    marker = resolve(job_file(preset, MARKERS, stage, f".{job_signature(preset, stage, task, seed)}", task, seed))
    folder = stage_dir(preset["outputs_root"], stage, task, seed)
    newest = max((p.stat().st_mtime for p in folder.rglob("*") if p.is_file()), default=0)
    for old in marker.parent.glob(f"{marker.stem}.*"):  # the job's older markers
        old.unlink()
    marker.parent.mkdir(parents=True, exist_ok=True)
    marker.touch()
    stamp = max(time.time(), newest) + 1
    os.utime(marker, (stamp, stamp))
    return [display_path(marker)]


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def job_file(preset: dict[str, Any], folder: str, stage: str, suffix: str, task: str | None = None,
             seed: int | str | None = None) -> str:
    """A job's log or benchmark file: `<outputs_root>/<folder>/<stage>/<task>_<seed><suffix>` for a
    per-seed job, `<task><suffix>` per task, `all_tasks<suffix>` per preset (task and seed may be wildcards)."""
    name = {"seed": f"{task}_{seed}", "task": f"{task}", "preset": ALL_TASKS}[STAGES[stage].level]
    return display_path(resolve(preset["outputs_root"]) / folder / stage / f"{name}{suffix}")


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


def run_stage(notebook: str, metrics_file: str, log_file: str, params: dict[str, Any], signature: str,
              threads: int = 1) -> None:
    """Execute one notebook with papermill into its run folder; fail if it did not write metrics.json; then
    record the job's `signature` there.

    The notebook runs in a child process (`execute_in_child`) that stops with the workflow; its kernel talks over
    its own Unix sockets (`kernel.IPCKernelManager`), so parallel jobs cannot collide. The notebook's stdout and
    stderr go to `log_file`, between a start and an end line that give the time (UTC, `progress.clock`),
    CUDA_VISIBLE_DEVICES and, at the end, how long it took; a failure's message names the log and the executed
    notebook. The signature file also records the git commit the job ran at (`record_signature`)."""
    out_dir = Path(metrics_file).parent
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / SIGNATURE_FILE).unlink(missing_ok=True)
    executed = out_dir / Path(notebook).name
    log_path = Path(log_file)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    os.environ["OMP_NUM_THREADS"] = str(threads)  # inherited by the kernel: torch uses this many threads
    log_path.write_text("")
    with open(log_path, "a") as log, gpu_slot(PROJECT_ROOT / ".snakemake" / "gpu_locks"):  # the runner appends too
        started = time.time()

        def mark(event: str) -> None:
            gpu = os.environ.get("CUDA_VISIBLE_DEVICES", "")
            took = f" ({duration(time.time() - started)})" if event == "end" else ""
            log.write(f"[{event} {clock()} CUDA_VISIBLE_DEVICES={gpu}] {notebook}{took}\n")
            log.flush()

        mark("start")
        failure = execute_in_child(notebook, executed, params, log_path)
        if failure:
            raise RuntimeError(f"{notebook} failed: {failure}\n  log: {display_path(log_path)}\n"
                               f"  executed notebook: {display_path(executed)}")
        mark("end")
    if not Path(metrics_file).is_file():
        raise RuntimeError(f"{notebook} finished without writing {metrics_file}; see the executed notebook "
                           f"{display_path(executed)} and the log {display_path(log_path)}.")
    record_signature(out_dir, signature)


# --- jobs that stop with the workflow ------------------------------------------------------------------
# Snakemake runs a `run:` job in a thread of its own process and cannot stop it: on Ctrl-C it waits for the
# job, whose notebook then finishes and marks itself done. So each job's notebook runs in a child process
# (the runner: papermill, which starts the kernel). The runner stays in Snakemake's process group (a Ctrl-C
# in the terminal reaches it), gets SIGTERM when Snakemake dies however it dies (Linux PR_SET_PDEATHSIG, e.g.
# kill -9, of the Snakemake process that runs the job), and is sent SIGTERM when Snakemake alone gets SIGINT
# (`forward_interrupts`, installed by the Snakefile). The kernel (in a session of its own, as jupyter_client starts it) exits as soon as its parent,
# the runner, is gone (ipykernel's parent poller), so nothing keeps writing the run folder.

_RUNNERS: set[subprocess.Popen] = set()  # the live runners of this process's jobs
_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    """In the runner, before it starts: SIGTERM when the thread that started it (its job) dies (Linux)."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):
        pass  # not Linux: forward_interrupts and the kernel's parent poller remain


def execute_in_child(notebook: str, executed: Path, params: dict[str, Any], log_path: Path) -> str | None:
    """Run `notebook` with papermill in a runner process (see above) that appends to `log_path`; None when it
    succeeded, otherwise the failure in one line."""
    spec = json.dumps({"notebook": str(resolve(notebook)), "executed": os.path.abspath(executed), "params": params,
                       "log": os.path.abspath(log_path)}, default=str)  # the runner works in the project root
    proc = subprocess.Popen([sys.executable, "-m", "lotterylib.workflow.pipeline", "execute", spec], cwd=PROJECT_ROOT,
                            stdout=subprocess.PIPE, text=True, preexec_fn=_die_with_parent)
    _RUNNERS.add(proc)
    try:
        out, _ = proc.communicate()
    finally:
        _RUNNERS.discard(proc)
    if proc.returncode == 0:
        return None
    lines = out.strip().splitlines()
    if lines:
        return lines[-1]
    if proc.returncode < 0:
        return f"stopped by {signal.Signals(-proc.returncode).name}"
    return f"interrupted (exit code {proc.returncode})"


def forward_interrupts() -> None:
    """In the workflow's main thread (the Snakefile runs this): on SIGINT, stop the jobs, then interrupt as
    usual (KeyboardInterrupt). Snakemake runs each `run:` job in a Snakemake subprocess of its process group
    and, interrupted, waits for it; so a Snakemake that leads its process group (started from a shell) sends
    SIGINT to the group, as a Ctrl-C in the terminal does, and every process sends SIGTERM to its own jobs'
    runners (their kernels follow)."""
    if threading.current_thread() is not threading.main_thread():
        return

    def interrupt(signum: int, frame: Any) -> None:
        if os.getpgrp() == os.getpid():
            signal.signal(signal.SIGINT, signal.SIG_IGN)  # not to itself again
            os.killpg(os.getpgrp(), signal.SIGINT)
            signal.signal(signal.SIGINT, interrupt)
        for proc in list(_RUNNERS):
            with contextlib.suppress(ProcessLookupError):
                proc.terminate()
        signal.default_int_handler(signum, frame)

    signal.signal(signal.SIGINT, interrupt)


def _execute(spec: dict[str, Any]) -> int:
    """The runner: execute the notebook; on failure append the error to the log and print its last line."""
    from . import kernel

    with open(spec["log"], "a") as log:
        try:
            kernel.execute(spec["notebook"], spec["executed"], spec["params"], PROJECT_ROOT, stdout_file=log,
                           stderr_file=log)
        except Exception as error:
            log.write(f"{type(error).__name__}: {error}\n")
            print(str(error).strip().splitlines()[-1] if str(error).strip() else type(error).__name__)
            return 1
    return 0


if __name__ == "__main__":
    if sys.argv[1:2] != ["execute"] or len(sys.argv) != 3:
        sys.exit("usage: python -m lotterylib.workflow.pipeline execute SPEC_JSON (the runner of one job; see run_stage)")
    sys.exit(_execute(json.loads(sys.argv[2])))
