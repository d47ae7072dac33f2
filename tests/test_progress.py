"""Log lines: bars without a terminal write whole lines, step lines of both searches, human times."""
import io
import re
from datetime import datetime

import numpy as np

from lotterylib.core import progress
from lotterylib.pruning import magnitude as mg
from lotterylib.pruning.masks import sparsity
from lotterylib.pruning.structured import structured_search
from conftest import tiny_model
from test_magnitude import stub_scorer
from test_structured import Stub


class Terminal(io.StringIO):
    def isatty(self):
        return True


def test_without_a_terminal_a_bar_writes_whole_lines_at_start_and_end_only_when_fast():
    out = io.StringIO()
    with progress.bar(total=500, desc="fine-tune", unit="step", file=out) as bar:
        for _ in range(500):
            bar.update(1)   # far faster than LINE_INTERVAL_S: no line in between
    lines = out.getvalue().split("\n")
    assert "\r" not in out.getvalue() and lines[-1] == ""
    assert len(lines) == 3 and lines[0].startswith("fine-tune:   0%") and lines[1].startswith("fine-tune: 100%")
    assert "500/500" in lines[1]


def test_in_a_terminal_the_bar_redraws_in_place_and_disabled_writes_nothing():
    term, quiet = Terminal(), io.StringIO()
    with progress.bar(range(3), desc="x", file=term) as bar:
        assert not isinstance(bar, progress.LineBar)
        list(bar)
    assert "\r" in term.getvalue()
    list(progress.bar(range(3), desc="x", file=quiet, disable=True))
    assert quiet.getvalue() == ""


def test_clock_and_duration_against_hand_values():
    assert progress.clock(0) == "1970-01-01 00:00:00.000 UTC"
    assert progress.clock(86400 + 3723.25) == "1970-01-02 01:02:03.250 UTC"
    assert datetime.strptime(progress.clock(1.5), progress.CLOCK_FORMAT).microsecond == 500000
    assert [progress.duration(s) for s in (4.23, 392, 3720)] == ["4.2 s", "6 min 32 s", "1 h 02 min"]


def test_s_pruning_prints_each_step_what_it_pruned_its_score_and_the_threshold(capsys):
    res = structured_search(Stub(seed=3), 1.0, 4, 10, threshold=0.9, progress=True)
    lines = capsys.readouterr().out.splitlines()
    steps = [line for line in lines if "s-pruning step" in line]
    assert len(steps) == len(res.steps) - 1 and all(re.match(r"\[\d\d:\d\d:\d\d\] ", line) for line in lines)
    assert "keep pruning while the score is at least 0.9 x 1.0000 = 0.9000" in lines[0]
    before = res.steps[0]   # each step prunes from the last kept one (a failed step is undone)
    for k, (step, line) in enumerate(zip(res.steps[1:], steps), start=1):
        pruned = {f"{a}:{b}" for a, b in zip(*np.nonzero((before.masks.head > 0) & (step.masks.head == 0)))}
        before = step if step.accepted else before
        printed = re.search(r"pruned (?:heads ([\d:, ]+))?", line).group(1)
        assert set(printed.split(", ") if printed else []) == pruned
        assert f"step {k} ({step.phase})" in line and f"score {step.score:.4f} vs threshold 0.9000" in line
        assert line.endswith(": kept") == step.accepted
    assert lines[-1].endswith(f"score {res.score:.4f}") and f"keeps {int(res.masks.head.sum())}/40 heads" in lines[-1]
    structured_search(Stub(seed=3), 1.0, 4, 10, progress=False)
    assert capsys.readouterr().out == ""


def test_m_pruning_prints_each_step_its_sparsity_score_and_the_threshold(capsys):
    result = mg.magnitude_search(tiny_model(), stub_scorer(2), full_score=1.0, threshold=0.8, progress=True)
    lines = capsys.readouterr().out.splitlines()
    steps = [line for line in lines if "m-pruning step" in line]
    assert len(steps) == 3 and "at least 0.8 x 1.0000 = 0.8000" in lines[0]
    for step, line in zip(result.steps[1:], steps):
        assert f"sparsity {sparsity(step.masks):.2%}; score {step.score:.4f} vs threshold 0.8000" in line
    assert steps[-1].endswith("undone, search ends") and "good subnetwork is step 2" in lines[-1]
