"""The one search loop: a hand-made strategy and scorer with hand-computed accept / revert steps, and the two
pruning strategies (s- and m-pruning) through the same loop."""
import copy

import numpy as np
import torch

from conftest import tiny_model
from lotterylib.core.rules import Rules
from lotterylib.pruning import magnitude as mg, search, structured as st
from lotterylib.pruning.masks import HeadMasks
from test_structured import Stub


class Countdown:
    """Masks = the number of elements kept; phase "big" removes 3 per step, "small" 1; a phase ends at 0."""

    phases = ("big", "small")

    def __init__(self):
        self.calls = []

    def propose(self, phase, current, failed):
        self.calls.append((phase, current.masks, None if failed is None else failed.number))
        step = {"big": 3, "small": 1}[phase]
        return None if current.masks == 0 else max(0, current.masks - step)

    def describe(self, before, step, bar):
        return f"step {step.number} {step.phase} {before.masks}->{step.masks} {step.score:.4f} vs {bar:.4f}"


def table_scorer(scores):
    return lambda kept: search.Scored(scores[kept])


def test_hand_made_strategy_accepts_while_at_the_bar_and_reverts_the_failing_step(capsys):
    # bar 0.9: 10 -> 7 (.95) kept; 7 -> 4 (.80) reverted, "big" ends; "small" from 7: 6 (.90, = the bar) kept,
    # 5 (.85) reverted, the search ends
    scorer = table_scorer({10: 1.0, 7: 0.95, 4: 0.8, 6: 0.9, 5: 0.85})
    strategy = Countdown()
    start = search.score_step(scorer, 0, "full", 10, -np.inf)
    steps = search.run_search(strategy, scorer, start, bar=0.9, progress=True)
    assert [(s.number, s.phase, s.masks, s.score, s.accepted) for s in steps] == [
        (0, "full", 10, 1.0, True), (1, "big", 7, 0.95, True), (2, "big", 4, 0.8, False),
        (3, "small", 6, 0.9, True), (4, "small", 5, 0.85, False)]
    # the failing step reaches only the next phase's first proposal; every proposal starts from the last kept step
    assert strategy.calls == [("big", 10, None), ("big", 7, None), ("small", 7, 2), ("small", 6, None)]
    assert search.last_accepted(steps).number == 3 and search.last_accepted(steps, before=1).number == 1
    assert search.last_accepted(steps[:1], before=1) is start
    lines = capsys.readouterr().out.splitlines()
    assert [line.split("] ", 1)[1] for line in lines] == [
        "step 1 big 10->7 0.9500 vs 0.9000", "step 2 big 7->4 0.8000 vs 0.9000",
        "step 3 small 7->6 0.9000 vs 0.9000", "step 4 small 6->5 0.8500 vs 0.9000"]
    result = search.Result(1.0, 0.9, steps, search.last_accepted(steps))
    assert result.masks == 6 and result.score == 0.9


def test_a_phase_that_runs_out_ends_without_a_failure_and_the_next_starts_clean():
    strategy = Countdown()
    scorer = table_scorer({3: 1.0, 0: 0.95})
    steps = search.run_search(strategy, scorer, search.score_step(scorer, 0, "full", 3, -np.inf), 0.9, False)
    assert [(s.masks, s.accepted) for s in steps] == [(3, True), (0, True)]
    assert strategy.calls == [("big", 3, None), ("big", 0, None), ("small", 0, None)]


def test_a_start_scored_nan_is_not_accepted_but_stays_the_start():
    scorer = table_scorer({3: float("nan"), 0: 1.0})
    steps = search.run_search(Countdown(), scorer, search.score_step(scorer, 0, "full", 3, -np.inf), 0.9, False)
    assert [s.accepted for s in steps] == [False, True] and search.last_accepted(steps).masks == 0


def test_s_pruning_is_the_structured_strategy_in_the_one_loop():
    result = st.structured_search(Stub(seed=3), 1.0, 4, 10, progress=False, rules=Rules.from_setting("authors"))
    scorer = st.ranked(Stub(seed=3))
    start = search.score_step(scorer, 0, "full", HeadMasks(np.ones((4, 10)), np.ones(4)), -np.inf)
    steps = search.run_search(st.Structured("joint", 4, 10, Rules.from_setting("authors")), scorer, start, 0.9, progress=False)
    assert isinstance(result, search.Result) and len(steps) == len(result.steps) == 6
    for mine, theirs in zip(steps, result.steps):
        assert (mine.number, mine.phase, mine.score, mine.accepted) == (theirs.number, theirs.phase, theirs.score,
                                                                         theirs.accepted)
        np.testing.assert_array_equal(mine.masks.head, theirs.masks.head)
        np.testing.assert_array_equal(mine.scored.head_importance, theirs.scored.head_importance)
    assert result.kept is result.steps[3] and result.masks is result.steps[3].masks


def test_m_pruning_is_the_magnitude_strategy_in_the_one_loop():
    model, reference = tiny_model(), tiny_model()
    scores = iter([1.0, 1.0, 0.5])
    start = search.Step(0, "full", mg.full_masks(model), search.Scored(1.0), True)
    steps = search.run_search(mg.Magnitude(model, limit=5, progress=False), lambda masks: search.Scored(next(scores)),
                              start, bar=0.9, progress=False)
    assert [(s.number, s.phase, s.accepted) for s in steps] == [(0, "full", True), (1, "magnitude", True),
                                                                 (2, "magnitude", True), (3, "magnitude", False)]
    for step in steps[1:]:                                   # each step: 10% more of the model's weights
        expected = mg.magnitude_step(reference)
        assert all(torch.equal(step.masks[n], m) for n, m in expected.items())
    model = tiny_model()
    scores = iter([1.0, 1.0, 0.5])
    result = mg.magnitude_search(model, lambda masks: search.Scored(next(scores)), 1.0, progress=False)
    assert isinstance(result, search.Result) and result.kept_steps == 2
    assert all(torch.equal(result.masks[n], m) for n, m in steps[2].masks.items())


def test_the_authors_limit_keeps_the_step_before_the_last_through_the_loop():
    model = tiny_model()
    before = copy.deepcopy(model)
    result = mg.magnitude_search(model, lambda masks: search.Scored(1.0), 1.0, rules=Rules.from_setting("authors"),
                                 max_steps=3, progress=False)
    assert [s.accepted for s in result.steps] == [True] * 4 and result.kept is result.steps[2]
    for _ in range(2):
        two = mg.magnitude_step(before, Rules.from_setting("authors"))
    assert all(torch.equal(result.masks[n], m) for n, m in two.items())
    assert all(torch.equal(m, result.masks[n]) for n, m in mg.current_masks(model).items())   # model left at it
