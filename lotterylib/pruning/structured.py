"""Structured pruning ("s-pruning") of heads and whole MLPs (docs/method.md section 2).

One strategy (`Structured`) of the one search loop (`lotterylib.pruning.search`), driven by a
`scorer(HeadMasks) -> ScoredMasks`, which evaluates the model at those masks and returns the dev score and the
raw gate importance from the same pass; `make_scorer` builds the real one on `training.evaluate`, tests use a
stub. Schedule with n = max(1, int(0.1 * heads)):

- `joint` (the paper's "heads and MLPs together"): phase 1 removes n heads + 1 MLP per step, phase 2 heads
  only (n // 2 per step, at least 1, as in the authors' code), phase 3 MLPs only (1 per step);
- `heads`: n heads per step; `mlps`: 1 MLP per step (Appendix B).

A step is accepted while score >= threshold x full score. The failing step is reverted: the next phase,
and the result, start from the last passing masks. The next phase's first step ranks by the importance of
those last passing masks (the paper), or, as the authors' code does, by the importance computed at the
failing configuration (`rules.phase_starts_from_failed_step`; docs/method.md). A phase also ends when nothing of its kind
is left (the joint phase: when either kind is exhausted). Already-pruned elements are excluded by the
masks, never by their scores.

Masks are `masks.HeadMasks` (float arrays, 1 = kept), saved in the authors' layout
`<task>/seed_<seed>/head_mask.npy` (layers x heads) and `mlp_mask.npy` (layers) by `masks.save_head_masks`.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ..core.data import Encoded
from ..core.gates import Gates
from ..core.progress import step_line
from ..core.rules import PAPER_RULES, Rules
from ..core.tasks import Task
from ..core.training import evaluate
from .masks import HeadMasks, save_head_masks, save_search_history
from .search import Result, Scored, Scorer, Step, last_accepted, run_search, score_step

MODES = ("joint", "heads", "mlps")


@dataclass(frozen=True)
class ScoredMasks(Scored):
    """What an s-pruning scorer returns: the stopping score and the raw importance sums at the masks it was given."""

    head_importance: np.ndarray
    mlp_importance: np.ndarray


@dataclass(frozen=True)
class Ranked(ScoredMasks):
    """A scored step as the search records it: the raw importance and the normalised one (what ranks)."""

    raw_head_importance: np.ndarray  # sums of |dL/dxi| as the scorer returned them
    raw_mlp_importance: np.ndarray


class StructuredResult(Result[HeadMasks]):
    """The final masks (the last passing ones) and the full history of the search."""

    def __init__(self, mode: str, full_score: float, threshold: float, steps: list[Step[HeadMasks]]):
        super().__init__(full_score, threshold, steps, last_accepted(steps))
        self.mode = mode

    @property
    def pruned_everything(self) -> bool:
        """Every element this mode can prune was pruned (the degenerate case, e.g. WNLI)."""
        heads_gone, mlps_gone = not self.masks.head.any(), not self.masks.mlp.any()
        return {"joint": heads_gone and mlps_gone, "heads": heads_gone, "mlps": mlps_gone}[self.mode]

    def table(self) -> pd.DataFrame:
        """One row per step: phase, heads and MLPs kept, score, accepted."""
        return pd.DataFrame([{"step": i, "phase": s.phase, "heads_kept": int(s.masks.head.sum()),
                              "mlps_kept": int(s.masks.mlp.sum()), "score": s.score, "accepted": s.accepted}
                             for i, s in enumerate(self.steps)])

    def arrays(self) -> dict[str, np.ndarray]:
        """The history as stacked arrays (step 0 = the unpruned model), as saved in `importance.npz`."""
        fields = {"head_importance": lambda s: s.scored.head_importance,
                  "mlp_importance": lambda s: s.scored.mlp_importance,
                  "raw_head_importance": lambda s: s.scored.raw_head_importance,
                  "raw_mlp_importance": lambda s: s.scored.raw_mlp_importance,
                  "head_masks": lambda s: s.masks.head, "mlp_masks": lambda s: s.masks.mlp,
                  "scores": lambda s: s.score, "accepted": lambda s: s.accepted}
        return {name: np.stack([np.asarray(get(s)) for s in self.steps]) for name, get in fields.items()}


def _minmax(x: np.ndarray) -> np.ndarray:
    span = x.max() - x.min()
    return (x - x.min()) / span if span > 0 else np.zeros_like(x)


def normalise_importance(head_imp: np.ndarray, mlp_imp: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Heads divided by the l2 norm of their layer's row (an all-zero row stays zero), then heads and MLPs
    each min-max scaled to [0, 1] over the model (a constant array becomes zeros).

    As in the authors' (and Michel et al.'s) code, every element enters the norms, pruned ones included;
    pruned elements are kept out of the ranking by the masks."""
    head = np.asarray(head_imp, dtype=np.float64)
    norms = np.linalg.norm(head, axis=1, keepdims=True)
    head = np.divide(head, norms, out=np.zeros_like(head), where=norms > 0)
    return _minmax(head), _minmax(np.asarray(mlp_imp, dtype=np.float64))


def _drop_lowest(mask: np.ndarray, importance: np.ndarray, k: int) -> np.ndarray:
    """A copy of `mask` with its k least important surviving elements set to 0 (all of them if fewer)."""
    flat = mask.ravel().copy()
    alive = np.flatnonzero(flat)
    flat[alive[np.argsort(importance.ravel()[alive], kind="stable")[:k]]] = 0.0
    return flat.reshape(mask.shape)


def _phases(mode: str, n: int) -> dict[str, tuple[int, int]]:
    """{name: (heads per step, MLPs per step)} of each phase of a mode, in order."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, not {mode!r}")
    return {"joint": {"joint": (n, 1), "heads": (max(1, n // 2), 0), "mlps": (0, 1)},
            "heads": {"heads": (n, 0)}, "mlps": {"mlps": (0, 1)}}[mode]


def ranked(scorer: Scorer[HeadMasks]) -> Scorer[HeadMasks]:
    """`scorer` (called on copies of the masks) with the importance normalised for the ranking (`Ranked`)."""
    def score(masks: HeadMasks) -> Ranked:
        scored = scorer(HeadMasks(masks.head.copy(), masks.mlp.copy()))
        raw_head, raw_mlp = np.asarray(scored.head_importance), np.asarray(scored.mlp_importance)
        return Ranked(scored.score, *normalise_importance(raw_head, raw_mlp), raw_head, raw_mlp)
    return score


class Structured:
    """The s-pruning strategy (a `search.Proposer`): each phase drops the least important surviving heads and
    MLPs, ranked by the last accepted step's importance (`rules.phase_starts_from_failed_step`: a phase's first
    step ranks by the importance of the failing step that ended the previous phase)."""

    def __init__(self, mode: str, num_layers: int, num_heads: int, rules: Rules = PAPER_RULES):
        self.per_step = _phases(mode, max(1, int(0.1 * num_layers * num_heads)))
        self.phases, self.rules = list(self.per_step), rules

    def propose(self, phase: str, current: Step[HeadMasks], failed: Step[HeadMasks] | None) -> HeadMasks | None:
        heads, mlps = self.per_step[phase]
        if (heads and not current.masks.head.any()) or (mlps and not current.masks.mlp.any()):
            return None   # nothing left of a kind this phase removes (joint: either kind)
        ranking = failed if self.rules.phase_starts_from_failed_step and failed is not None else current
        return HeadMasks(_drop_lowest(current.masks.head, ranking.scored.head_importance, heads),
                         _drop_lowest(current.masks.mlp, ranking.scored.mlp_importance, mlps))

    def describe(self, before: Step[HeadMasks], step: Step[HeadMasks], bar: float) -> str:
        """What the step pruned (layer:head, from 0), what is left, the score and the verdict."""
        (head0, mlp0), (head, mlp) = before.masks, step.masks
        heads = [f"{layer}:{h}" for layer, h in zip(*np.nonzero((head0 > 0) & (head == 0)))]
        mlps = [str(layer) for layer in np.flatnonzero((mlp0 > 0) & (mlp == 0))]
        pruned = "; ".join(part for part in (f"heads {', '.join(heads)}" if heads else "",
                                             f"MLPs {', '.join(mlps)}" if mlps else "") if part)
        verdict = "kept" if step.accepted else "below the threshold: undone, phase ends"
        return (f"s-pruning step {step.number} ({step.phase}): pruned {pruned or 'nothing'}; left "
                f"{int(head.sum())}/{head.size} heads, {int(mlp.sum())}/{mlp.size} "
                f"MLPs; score {step.score:.4f} vs threshold {bar:.4f}: {verdict}")


def structured_search(scorer: Scorer[HeadMasks], full_score: float | None, num_layers: int, num_heads: int,
                      mode: str = "joint", threshold: float = 0.9, progress: bool = True,
                      rules: Rules = PAPER_RULES) -> StructuredResult:
    """Iteratively remove the least important heads and/or MLPs while score >= threshold x full_score
    (`search.run_search` with the `Structured` strategy).

    The first call, `scorer(all ones)`, gives the starting importance and, with `full_score=None`, the full
    model's score. Every call is recorded in `result.steps`; `result.masks` (head (L, H), mlp (L,)) are the
    last passing masks. `rules.phase_starts_from_failed_step`: a phase that follows a failed step ranks its
    first step by the failed step's importance (applied to the last passing masks)."""
    strategy, scorer = Structured(mode, num_layers, num_heads, rules), ranked(scorer)
    start = score_step(scorer, 0, "full", HeadMasks(np.ones((num_layers, num_heads)), np.ones(num_layers)), -np.inf)
    full_score = start.score if full_score is None else full_score
    bar = threshold * full_score
    step_line(f"s-pruning ({mode}): full model {start.score:.4f}; keep pruning while the score is at least "
              f"{threshold:g} x {full_score:.4f} = {bar:.4f}", progress)
    result = StructuredResult(mode, float(full_score), threshold, run_search(strategy, scorer, start, bar, progress))
    (head, mlp), steps = result.masks, len(result.steps) - 1
    step_line(f"s-pruning done: {steps} steps; the good subnetwork keeps {int(head.sum())}/{head.size} heads and "
              f"{int(mlp.sum())}/{mlp.size} MLPs, score {result.score:.4f}", progress)
    return result


def make_scorer(model, task: Task, dev_encoded: Encoded, gates: Gates, rules: Rules = PAPER_RULES,
                batch_size: int = 128, progress: bool = False, bf16: bool = False) -> Scorer[HeadMasks]:
    """The real scorer: set the gates, evaluate the dev set, return `metrics["stop_score"]` and the raw
    importance (sums of |g_t|; with `rules.accumulated_gate_gradients`, of |sum_{s<=t} g_s|).

    The gates are left at the last masks scored; set them to the result's masks after the search."""
    def scorer(masks: HeadMasks) -> ScoredMasks:
        gates.set(masks.head, masks.mlp)
        res = evaluate(model, task, dev_encoded, batch_size=batch_size, gates=gates, importance=True,
                       rules=rules, bf16=bf16, progress=progress, desc="s-pruning eval")
        return ScoredMasks(res.metrics["stop_score"], res.head_importance, res.mlp_importance)
    return scorer


def save_search(folder: str | Path, result: StructuredResult) -> Path:
    """The final masks (`head_mask.npy`, `mlp_mask.npy`), `steps.csv` and every step's masks and
    importance (`importance.npz`, see `StructuredResult.arrays`)."""
    folder = save_head_masks(folder, *result.masks)
    return save_search_history(folder, result.table(), result.arrays())
