"""Run folders: one deterministic folder per (task, seed, stage) under a preset's output root.

Every folder holds `params.json` (the validated parameters, their hash and the thread count), the stage's
artifacts, and `metrics.json`, written last and atomically: its presence means "finished". Whether a finished
run is current (made by the code and parameters a job has now) is the job signature's to say
(`pipeline.is_current`, the one run identity). The hash in params.json only detects a params.json edited by
hand after its run, which makes the run neither done nor current.
A run's folder is made when the work first touches it (`Run.dir`, `Run.path`), after its inputs loaded:
opening it takes the folder's lock (`.lock`, held until the run finishes or its process dies, so a second
writer fails naming the first) and removes an old `metrics.json` first, so a rerun is never marked done while it rewrites.
Relative paths are resolved against the project root, so notebooks run the same from any directory.
"""
from __future__ import annotations

import atexit
import contextlib
import fcntl
import hashlib
import json
import math
import os
import secrets
import shutil
import socket
import warnings
from pathlib import Path
from typing import IO, Any, Callable, Iterator

import numpy as np



def _project_root() -> Path:
    """The checkout the package sits in (beside workflow/, notebooks/, params/); for an installed wheel, the
    current folder: relative paths (outputs/...) are taken from where the user works."""
    checkout = Path(__file__).resolve().parents[1]
    return checkout if (checkout / "workflow" / "Snakefile").is_file() else Path.cwd()


PROJECT_ROOT = _project_root()
ALL_SEEDS = "all_seeds"   # task-level stages (across seeds)
ALL_TASKS = "all_tasks"   # preset-level stages (across tasks)
TMP_SUFFIX = ".tmp"       # partial files and folders (an interrupted write) end in this; a new run removes them
LOCK_FILE = ".lock"       # in a run folder: flock-ed by the process writing it; holds its host and pid
_HELD_LOCKS: dict[Path, IO[str]] = {}  # the run folders this process has locked (released when it exits)
atexit.register(lambda: [handle.close() for handle in _HELD_LOCKS.values()])


def resolve(path: str | Path) -> Path:
    """An absolute path as given; a relative one is taken from the project root."""
    path = Path(path).expanduser()
    return path if path.is_absolute() else PROJECT_ROOT / path


def stage_dir(outputs_root: str | Path, stage: str, task: str | None = None, seed: int | None = None) -> Path:
    """`<root>/<task>/seed_<seed>/<stage>`; without a seed `<root>/<task>/all_seeds/<stage>`;
    without a task `<root>/all_tasks/<stage>`. The task name is made canonical; a bad task or seed raises
    `config.ParameterError`."""
    from .config import validate_params

    root = resolve(outputs_root)
    if task is None:
        return root / ALL_TASKS / stage
    checked = validate_params({"task": task, "seed": seed} if seed is not None else {"task": task})
    return root / checked["task"] / (f"seed_{checked['seed']}" if seed is not None else ALL_SEEDS) / stage


def missing_stage_error(path: str | Path, stage: str, hint: str = "") -> FileNotFoundError:
    """The one "run stage X first" error: what is missing, and which stage (notebook) makes it, for which
    task and seed (read from the run folder layout of `path`, where it has one)."""
    from .stages import STAGES

    path = Path(path)
    where = ""
    run_dir = next((p for p in (path, *path.parents) if p.name == stage), None)
    if run_dir is not None and run_dir.parent.name != ALL_TASKS:
        level = run_dir.parent.name  # seed_<seed> or all_seeds
        seed = level.removeprefix("seed_")
        where = f" for {run_dir.parent.parent.name}" + (f", seed {seed}" if seed.isdigit() else "")
    notebook = f" ({STAGES[stage].notebook})" if stage in STAGES else ""
    return FileNotFoundError(f"{display_path(path)} does not exist: run the {stage} stage{notebook}{where} first "
                             "(its notebook, or `make grid PRESET=...`)." + (f" {hint}" if hint else ""))


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
    """A short stable hash of the parameters (key order does not matter), stored beside them in params.json
    to detect a hand edit (`edited_params`); not a run identity (that is `pipeline.job_signature`)."""
    blob = json.dumps(_jsonable(params), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()[:12]


def temporary_sibling(path: str | Path) -> Path:
    """A fresh hidden name next to `path` for writing it before a rename (`.name.<random>.tmp`)."""
    path = Path(path)
    return path.with_name(f".{path.name}.{secrets.token_hex(4)}{TMP_SUFFIX}")


def remove_partial(folder: str | Path) -> None:
    """Remove what interrupted atomic writes left in `folder` (hidden `*.tmp` files and folders)."""
    for leftover in Path(folder).glob(f".*{TMP_SUFFIX}"):
        if leftover.is_dir():
            shutil.rmtree(leftover)
        else:
            leftover.unlink(missing_ok=True)


def write_json_atomic(path: str | Path, data: Any) -> None:
    """Write JSON through a temporary file and a rename: readers never see a half-written file. The file
    gets ordinary permissions (0666 less the umask), readable by others where the umask allows."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temporary_sibling(path)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(_jsonable(data), f, indent=2, sort_keys=True)
            f.write("\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def read_json(path: str | Path) -> Any:
    with open(path) as f:
        return json.load(f)


def non_finite(metrics: dict[str, Any]) -> list[str]:
    """The top-level numbers of `metrics` that are NaN or infinite (nested tables may hold undefined
    statistics, written as null)."""
    return [k for k, v in metrics.items()
            if isinstance(v, (float, np.floating)) and not math.isfinite(v)]


class RunLockedError(RuntimeError):
    """Another live process is writing the run folder."""


def lock_folder(folder: str | Path) -> None:
    """Take the run folder's lock until `unlock_folder` or the end of this process (a second call is a
    no-op). The OS releases it when the process dies, however it dies: there are no stale locks. A folder
    another process holds raises RunLockedError naming that process."""
    folder = resolve(folder)
    if folder in _HELD_LOCKS:
        return
    folder.mkdir(parents=True, exist_ok=True)
    handle = open(folder / LOCK_FILE, "a+")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        holder = handle.read().strip() or "another process"
        handle.close()
        raise RunLockedError(f"{display_path(folder)} is being written by {holder}. Fix: wait for that job to "
                             "finish, or stop it (an orphan of an interrupted workflow), then rerun.") from None
    handle.seek(0)
    handle.truncate()
    handle.write(f"pid {os.getpid()} on {socket.gethostname()}\n")
    handle.flush()
    _HELD_LOCKS[folder] = handle


@contextlib.contextmanager
def waiting_lock(folder: str | Path, on_wait: Callable[[str], None] | None = None) -> Iterator[None]:
    """Hold the run folder's lock (`lock_folder`'s `.lock`) for the block, waiting while another process holds
    it; `on_wait(holder)` is called once before waiting, with the holder the lock file names. A folder this
    process has locked already is held as it is."""
    folder = resolve(folder)
    if folder in _HELD_LOCKS:
        yield
        return
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / LOCK_FILE, "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            if on_wait is not None:
                on_wait(handle.read().strip() or "another process")
            fcntl.flock(handle, fcntl.LOCK_EX)
        handle.seek(0)
        handle.truncate()
        handle.write(f"pid {os.getpid()} on {socket.gethostname()}\n")
        handle.flush()
        yield  # closing the file releases the lock


def unlock_folder(folder: str | Path) -> None:
    """Release the run folder's lock this process holds (if it holds it)."""
    handle = _HELD_LOCKS.pop(resolve(folder), None)
    if handle is not None:
        handle.close()


class Run:
    """A stage's run folder. `Run(dir, params)` records the parameters as given (a notebook's, validated and
    normalised once by `stages.open`, so equal settings give equal hashes) and creates nothing; the first use
    of `dir` or `path()` (when the work starts, after the inputs loaded) locks the folder, removes an old
    done-marker and partial files, and writes params.json (with `params_hash`, to detect a hand edit);
    `finish(metrics)` marks it done and unlocks it."""

    def __init__(self, directory: str | Path, params: dict[str, Any]):
        self.params = _jsonable(dict(params))
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
        raise missing_stage_error(path, path.parent.name)
    return read_json(path)


def display_path(path: str | Path) -> str:
    """A path relative to the project root when it lies inside it (stable notebook output)."""
    path = Path(path)
    return str(path.relative_to(PROJECT_ROOT)) if path.is_relative_to(PROJECT_ROOT) else str(path)
