"""Files and folders: the project root, paths shown relative to it, atomic JSON writes, partial-write
cleanup, run-folder locks, and the one "run stage X first" error.

Relative paths are resolved against the project root, so notebooks run the same from any directory. The
wings above (`pruning`, `analysis`) read and write files only through paths their callers give them; the run
folder layout itself is `stages.runs`'.
"""
from __future__ import annotations

import atexit
import contextlib
import fcntl
import json
import os
import secrets
import shutil
import socket
from pathlib import Path
from typing import IO, Any, Callable, Iterator

import numpy as np


def _project_root() -> Path:
    """The checkout the package sits in (beside workflow/, notebooks/, params/); for an installed wheel, the
    current folder: relative paths (outputs/...) are taken from where the user works."""
    checkout = Path(__file__).resolve().parents[2]  # lotterylib/core/files.py
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


def missing_stage_error(path: str | Path, stage: str, hint: str = "", notebook: str = "") -> FileNotFoundError:
    """The one "run stage X first" error: what is missing, and which stage (its `notebook`, where the caller
    knows it: `stages.runs.missing_run_error` names the registry's) makes it, for which task and seed (read from
    the run folder layout of `path`, where it has one)."""
    path = Path(path)
    where = ""
    run_dir = next((p for p in (path, *path.parents) if p.name == stage), None)
    if run_dir is not None and run_dir.parent.name != ALL_TASKS:
        level = run_dir.parent.name  # seed_<seed> or all_seeds
        seed = level.removeprefix("seed_")
        where = f" for {run_dir.parent.parent.name}" + (f", seed {seed}" if seed.isdigit() else "")
    shown = f" ({notebook})" if notebook else ""
    return FileNotFoundError(f"{display_path(path)} does not exist: run the {stage} stage{shown}{where} first "
                             "(its notebook, or `make grid PRESET=...`)." + (f" {hint}" if hint else ""))


def jsonable(obj: Any) -> Any:
    """`obj` as plain JSON values: numpy scalars and arrays as numbers and lists, paths as strings, NaN and
    infinities as None."""
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    if isinstance(obj, np.generic):
        return jsonable(obj.item())
    if isinstance(obj, float) and not np.isfinite(obj):
        return None  # strict JSON has no NaN: an undefined statistic is null
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    return obj


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
            json.dump(jsonable(data), f, indent=2, sort_keys=True)
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


def display_path(path: str | Path) -> str:
    """A path relative to the project root when it lies inside it (stable notebook output)."""
    path = Path(path)
    return str(path.relative_to(PROJECT_ROOT)) if path.is_relative_to(PROJECT_ROOT) else str(path)
