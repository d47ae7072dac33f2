"""Progress for someone watching a job's log with `tail -f`: bars that write whole lines where there is no
terminal, and one timestamped line per search step.

In a terminal a bar redraws itself in place (tqdm). Elsewhere (a papermill log, a notebook, a pipe) each
redraw is a full line, written when the bar starts, at most every `LINE_INTERVAL_S` seconds, and when it
ends: a 6-minute loop gives about a dozen lines instead of one line per update joined by carriage returns.
"""
from __future__ import annotations

import sys
import time
from typing import Any, Iterable

from tqdm import tqdm

LINE_INTERVAL_S = 30.0      # a bar without a terminal: at most one line this often
TERMINAL_INTERVAL_S = 2.0   # a bar in a terminal: redrawn at most this often


class _WholeLines:
    """A stream that passes on whole lines only: tqdm's bare "\n" or "\r" after its last redraw is dropped."""

    def __init__(self, stream: Any) -> None:
        self.stream = stream

    def write(self, text: str) -> None:
        if text not in ("\n", "\r"):
            self.stream.write(text)

    def flush(self) -> None:
        self.stream.flush()


class LineBar(tqdm):
    """A tqdm bar whose every redraw is a new line (with a newline, no carriage return); give it a
    `_WholeLines` file (`bar` does)."""

    def display(self, msg: str | None = None, pos: int | None = None) -> bool:
        self.fp.write((self.__str__() if msg is None else msg) + "\n")
        self.fp.flush()
        return True


def bar(iterable: Iterable[Any] | None = None, *, desc: str, total: int | None = None, disable: bool = False,
        unit: str = "it", file: Any = None) -> tqdm:
    """A progress bar for `iterable` (or `total` manual updates) under the policy above; `disable` for none."""
    stream = file if file is not None else sys.stderr
    terminal = bool(getattr(stream, "isatty", lambda: False)())
    if terminal:
        return tqdm(iterable, desc=desc, total=total, disable=disable, unit=unit, file=stream,
                    mininterval=TERMINAL_INTERVAL_S, dynamic_ncols=True)
    return LineBar(iterable, desc=desc, total=total, disable=disable, unit=unit, file=_WholeLines(stream),
                   mininterval=LINE_INTERVAL_S, maxinterval=LINE_INTERVAL_S, ascii=True)


CLOCK_FORMAT = "%Y-%m-%d %H:%M:%S.%f UTC"  # `clock`'s format, for datetime.strptime


def clock(seconds: float | None = None) -> str:
    """A time for a job's start and end lines: `2026-12-02 14:05:09.120 UTC` (now by default)."""
    seconds = time.time() if seconds is None else seconds
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(seconds)) + f".{int(seconds % 1 * 1000):03d} UTC"


def duration(seconds: float) -> str:
    """`1 h 02 min`, `6 min 32 s` or `4.2 s`."""
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(round(seconds), 60)
    return f"{minutes // 60} h {minutes % 60:02d} min" if minutes >= 60 else f"{minutes} min {secs} s"


def step_line(message: str, enabled: bool = True) -> None:
    """Print one line for the log, prefixed with the time (`[14:05:09] message`), when `enabled`."""
    if enabled:
        print(f"[{time.strftime('%H:%M:%S', time.gmtime())}] {message}", flush=True)
