"""The one pruning search: a strategy proposes the next masks, a scorer scores them, the loop accepts or reverts.

A step is accepted while its score >= threshold x the full model's score (the bar); a failing step is reverted:
the strategy's next phase (and the result) start from the last accepted step. Strategies: `structured`
(s-pruning: heads and MLPs by importance, in phases) and `magnitude` (m-pruning: 10% of the remaining weights
per step, one phase). A strategy (`Proposer`) says which phases it runs, proposes each step's masks from the
last accepted step (and the failing step that ended the previous phase), and describes a step for the log.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Generic, Protocol, TypeVar

from ..core.progress import step_line

M = TypeVar("M")   # the masks a strategy proposes
M_contra = TypeVar("M_contra", contravariant=True)


@dataclass(frozen=True)
class Scored:
    """What a scorer returns: the stopping score at the masks it was given (a strategy may add more)."""

    score: float


class Scorer(Protocol[M_contra]):
    """Scores the model at `masks` (a strategy may have put them in the model already)."""

    def __call__(self, masks: M_contra) -> Scored: ...


@dataclass(frozen=True)
class Step(Generic[M]):
    """One scored configuration: its number (0 = the start), phase, masks, what the scorer returned, verdict."""

    number: int
    phase: str
    masks: M
    scored: Scored
    accepted: bool

    @property
    def score(self) -> float:
        return float(self.scored.score)


class Proposer(Protocol[M]):
    """A search strategy."""

    phases: Sequence[str]

    def propose(self, phase: str, current: Step[M], failed: Step[M] | None) -> M | None:
        """The next masks of `phase` from the last accepted step, or None when the phase is over. `failed`: the
        step that ended the previous phase, for the phase's first proposal only (None otherwise)."""

    def describe(self, before: Step[M], step: Step[M], bar: float) -> str:
        """The log line of `step`, proposed from `before`."""


@dataclass
class Result(Generic[M]):
    """A search: every step (steps[0] = the start) and the step whose masks are the result."""

    full_score: float
    threshold: float
    steps: list[Step[M]]
    kept: Step[M]

    @property
    def masks(self) -> M:
        return self.kept.masks

    @property
    def score(self) -> float:
        return self.kept.score


def score_step(scorer: Scorer[M], number: int, phase: str, masks: M, bar: float) -> Step[M]:
    """Score `masks` and judge them against `bar`."""
    scored = scorer(masks)
    return Step(number, phase, masks, scored, accepted=bool(scored.score >= bar))


def run_search(proposer: Proposer[M], scorer: Scorer[M], start: Step[M], bar: float,
               progress: bool = True) -> list[Step[M]]:
    """Every phase in turn: propose, score, accept while score >= bar, else revert the step and end the phase.
    Returns every step, `start` first; a phase starts from the last accepted step."""
    steps, current, failed = [start], start, None
    for phase in proposer.phases:
        while (masks := proposer.propose(phase, current, failed)) is not None:
            step = score_step(scorer, len(steps), phase, masks, bar)
            steps.append(step)
            step_line(proposer.describe(current, step, bar), progress)
            if not step.accepted:
                failed = step
                break
            current, failed = step, None
        else:
            failed = None
    return steps


def last_accepted(steps: Sequence[Step[M]], before: int = 0) -> Step[M]:
    """The last accepted step, or with `before` = k the one k accepted steps earlier (the start if none).
    The start counts as accepted."""
    passed = [steps[0], *(s for s in steps[1:] if s.accepted)]
    return passed[max(0, len(passed) - 1 - before)]
