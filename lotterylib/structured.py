"""Structured pruning ("s-pruning") of heads and whole MLPs (docs/method.md section 2).

The search is driven by a `scorer(head_mask, mlp_mask) -> ScoredMasks`, which evaluates the model at those
masks and returns the dev score and the raw gate importance from the same pass; `make_scorer` builds the
real one on `training.evaluate`, tests use a stub. Schedule with n = max(1, int(0.1 * heads)):

- `joint` (the paper's "heads and MLPs together"): phase 1 removes n heads + 1 MLP per step, phase 2 heads
  only (n // 2 per step, at least 1, as in the authors' code), phase 3 MLPs only (1 per step);
- `heads`: n heads per step; `mlps`: 1 MLP per step (Appendix B).

A step is accepted while score >= threshold x full score. The failing step is reverted: the next phase,
and the result, start from the last passing masks. The next phase's first step ranks by the importance of
those last passing masks (the paper), or, as the authors' code does, by the importance computed at the
failing configuration (`rules.phase_starts_from_failed_step`; docs/method.md). A phase also ends when nothing of its kind
is left (the joint phase: when either kind is exhausted). Already-pruned elements are excluded by the
masks, never by their scores.

Masks are float arrays, 1 = kept, saved in the authors' layout `<task>/seed_<seed>/head_mask.npy`
(layers x heads) and `mlp_mask.npy` (layers).
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from .data import Encoded
from .gates import Gates
from .progress import step_line
from .rules import PAPER_RULES, Rules
from .runs import missing_stage_error
from .tasks import Task
from .training import evaluate

MODES = ("joint", "heads", "mlps")
LAYOUT = ("<root>/<task>/seed_<seed>/head_mask.npy (layers x heads, 1 = kept) "
          "and <root>/<task>/seed_<seed>/mlp_mask.npy (layers)")


@dataclass(frozen=True)
class ScoredMasks:
    """What a scorer returns: the stopping score and the raw importance sums at the masks it was given."""

    score: float
    head_importance: np.ndarray
    mlp_importance: np.ndarray


Scorer = Callable[[np.ndarray, np.ndarray], ScoredMasks]


@dataclass(frozen=True)
class SearchStep:
    """One evaluation of the search: the masks tried, their score, their importance, and the verdict."""

    phase: str              # "full" (the unpruned start), "joint", "heads" or "mlps"
    head_mask: np.ndarray
    mlp_mask: np.ndarray
    score: float
    head_importance: np.ndarray      # normalised (what the ranking uses)
    mlp_importance: np.ndarray
    raw_head_importance: np.ndarray  # sums of |dL/dxi| as the scorer returned them
    raw_mlp_importance: np.ndarray
    accepted: bool


@dataclass
class SearchResult:
    """The final masks (the last passing ones) and the full history of the search."""

    mode: str
    full_score: float
    threshold: float
    head_mask: np.ndarray
    mlp_mask: np.ndarray
    score: float
    steps: list[SearchStep] = field(default_factory=list)

    @property
    def pruned_everything(self) -> bool:
        """Every element this mode can prune was pruned (the degenerate case, e.g. WNLI)."""
        heads_gone, mlps_gone = not self.head_mask.any(), not self.mlp_mask.any()
        return {"joint": heads_gone and mlps_gone, "heads": heads_gone, "mlps": mlps_gone}[self.mode]

    def table(self) -> pd.DataFrame:
        """One row per step: phase, heads and MLPs kept, score, accepted."""
        return pd.DataFrame([{"step": i, "phase": s.phase, "heads_kept": int(s.head_mask.sum()),
                              "mlps_kept": int(s.mlp_mask.sum()), "score": s.score, "accepted": s.accepted}
                             for i, s in enumerate(self.steps)])


    def arrays(self) -> dict[str, np.ndarray]:
        """The history as stacked arrays (step 0 = the unpruned model), as saved in `importance.npz`."""
        fields = ("head_importance", "mlp_importance", "raw_head_importance", "raw_mlp_importance",
                  "head_mask", "mlp_mask", "score", "accepted")
        names = {"head_mask": "head_masks", "mlp_mask": "mlp_masks", "score": "scores"}
        return {names.get(f, f): np.stack([np.asarray(getattr(s, f)) for s in self.steps]) for f in fields}


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


def _phases(mode: str, n: int) -> list[tuple[str, int, int]]:
    """(name, heads per step, MLPs per step) of each phase of a mode."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, not {mode!r}")
    return {"joint": [("joint", n, 1), ("heads", max(1, n // 2), 0), ("mlps", 0, 1)],
            "heads": [("heads", n, 0)], "mlps": [("mlps", 0, 1)]}[mode]


def _exhausted(step: SearchStep, heads_per_step: int, mlps_per_step: int) -> bool:
    """Nothing left of a kind this phase removes (the joint phase ends when either kind is gone)."""
    return bool((heads_per_step and not step.head_mask.any()) or (mlps_per_step and not step.mlp_mask.any()))


def _score(scorer: Scorer, phase: str, head: np.ndarray, mlp: np.ndarray, bar: float) -> SearchStep:
    scored = scorer(head.copy(), mlp.copy())
    raw_head, raw_mlp = np.asarray(scored.head_importance), np.asarray(scored.mlp_importance)
    head_imp, mlp_imp = normalise_importance(raw_head, raw_mlp)
    return SearchStep(phase, head, mlp, float(scored.score), head_imp, mlp_imp, raw_head, raw_mlp,
                      accepted=bool(scored.score >= bar))


def _step_text(number: int, before: SearchStep, step: SearchStep, bar: float) -> str:
    """One search step for the log: what it pruned (layer:head, from 0), what is left, the score and the verdict."""
    heads = [f"{layer}:{head}" for layer, head in zip(*np.nonzero((before.head_mask > 0) & (step.head_mask == 0)))]
    mlps = [str(layer) for layer in np.flatnonzero((before.mlp_mask > 0) & (step.mlp_mask == 0))]
    pruned = "; ".join(part for part in (f"heads {', '.join(heads)}" if heads else "",
                                         f"MLPs {', '.join(mlps)}" if mlps else "") if part)
    verdict = "kept" if step.accepted else "below the threshold: undone, phase ends"
    return (f"s-pruning step {number} ({step.phase}): pruned {pruned or 'nothing'}; left "
            f"{int(step.head_mask.sum())}/{step.head_mask.size} heads, {int(step.mlp_mask.sum())}/{step.mlp_mask.size} "
            f"MLPs; score {step.score:.4f} vs threshold {bar:.4f}: {verdict}")


def structured_search(scorer: Scorer, full_score: float | None, num_layers: int, num_heads: int,
                      mode: str = "joint", threshold: float = 0.9, progress: bool = True,
                      rules: Rules = PAPER_RULES) -> SearchResult:
    """Iteratively remove the least important heads and/or MLPs while score >= threshold x full_score.

    The first call, `scorer(all ones)`, gives the starting importance and, with `full_score=None`, the full
    model's score. Every call is recorded in `result.steps`; `result.head_mask` (L, H) and
    `result.mlp_mask` (L,) are the last passing masks. `rules.phase_starts_from_failed_step`: a phase that
    follows a failed step ranks its first step by the failed step's importance (applied to the last passing
    masks)."""
    n = max(1, int(0.1 * num_layers * num_heads))
    phases = _phases(mode, n)
    current = _score(scorer, "full", np.ones((num_layers, num_heads)), np.ones(num_layers), bar=-np.inf)
    full_score = current.score if full_score is None else full_score
    bar = threshold * full_score
    steps, failed = [current], None
    step_line(f"s-pruning ({mode}): full model {current.score:.4f}; keep pruning while the score is at least "
              f"{threshold:g} x {full_score:.4f} = {bar:.4f}", progress)
    for phase, heads_per_step, mlps_per_step in phases:
        ranking = failed if rules.phase_starts_from_failed_step and failed is not None else current
        failed = None
        while not _exhausted(current, heads_per_step, mlps_per_step):
            step = _score(scorer, phase,
                          _drop_lowest(current.head_mask, ranking.head_importance, heads_per_step),
                          _drop_lowest(current.mlp_mask, ranking.mlp_importance, mlps_per_step), bar)
            steps.append(step)
            step_line(_step_text(len(steps) - 1, current, step, bar), progress)
            if not step.accepted:
                failed = step
                break
            current = ranking = step
    step_line(f"s-pruning done: {len(steps) - 1} steps; the good subnetwork keeps {int(current.head_mask.sum())}"
              f"/{current.head_mask.size} heads and {int(current.mlp_mask.sum())}/{current.mlp_mask.size} MLPs, "
              f"score {current.score:.4f}", progress)
    return SearchResult(mode, float(full_score), threshold, current.head_mask, current.mlp_mask,
                        current.score, steps)


def make_scorer(model, task: Task, dev_encoded: Encoded, gates: Gates, rules: Rules = PAPER_RULES,
                batch_size: int = 128, progress: bool = False, bf16: bool = False) -> Scorer:
    """The real scorer: set the gates, evaluate the dev set, return `metrics["stop_score"]` and the raw
    importance (sums of |g_t|; with `rules.accumulated_gate_gradients`, of |sum_{s<=t} g_s|).

    The gates are left at the last masks scored; set them to the result's masks after the search."""
    def scorer(head_mask: np.ndarray, mlp_mask: np.ndarray) -> ScoredMasks:
        gates.set(head_mask, mlp_mask)
        res = evaluate(model, task, dev_encoded, batch_size=batch_size, gates=gates, importance=True,
                       rules=rules, bf16=bf16, progress=progress, desc="s-pruning eval")
        return ScoredMasks(res.metrics["stop_score"], res.head_importance, res.mlp_importance)
    return scorer


def _check_shapes(head: np.ndarray, mlp: np.ndarray, where: str) -> None:
    if head.ndim != 2:
        raise ValueError(f"{where}: head mask has shape {head.shape}; expected (layers, heads), 1 = kept.")
    if mlp.shape != (head.shape[0],):
        raise ValueError(f"{where}: MLP mask has shape {mlp.shape}; expected ({head.shape[0]},) to match the "
                         f"head mask's {head.shape[0]} layers, 1 = kept.")
    for name, m in (("head", head), ("MLP", mlp)):
        if not np.isin(m, (0, 1)).all():
            raise ValueError(f"{where}: the {name} mask holds values other than 0 and 1.")


def save_masks(folder: str | Path, head_mask: np.ndarray, mlp_mask: np.ndarray) -> Path:
    """Write `head_mask.npy` (layers x heads) and `mlp_mask.npy` (layers), float32, 1 = kept."""
    head, mlp = np.asarray(head_mask, dtype=np.float32), np.asarray(mlp_mask, dtype=np.float32)
    _check_shapes(head, mlp, "save_masks")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    np.save(folder / "head_mask.npy", head)
    np.save(folder / "mlp_mask.npy", mlp)
    return folder


def save_search(folder: str | Path, result: SearchResult) -> Path:
    """The final masks (`head_mask.npy`, `mlp_mask.npy`), `steps.csv` and every step's masks and
    importance (`importance.npz`, see `SearchResult.arrays`)."""
    folder = save_masks(folder, result.head_mask, result.mlp_mask)
    result.table().to_csv(folder / "steps.csv", index=False)
    np.savez_compressed(folder / "importance.npz", **result.arrays())
    return folder


def load_search_history(folder: str | Path) -> dict[str, np.ndarray]:
    """The arrays written by `save_search` (`importance.npz`)."""
    path = Path(folder) / "importance.npz"
    if not path.is_file():
        raise missing_stage_error(path, "s_pruning")
    with np.load(path) as data:
        return {k: data[k] for k in data.files}


def load_npy(path: Path) -> np.ndarray:
    """An array from a .npy file; a truncated or corrupt file raises a ValueError naming it."""
    try:
        return np.load(path)
    except (ValueError, OSError, EOFError) as e:
        raise ValueError(f"{path} is not a readable .npy file ({e}): it is truncated or corrupt. Fix: rerun the "
                         "stage that wrote it, or copy it again.") from e


def load_masks(folder: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """(head_mask (L, H), mlp_mask (L,)) as float arrays from one folder of the authors' layout.

    A missing `mlp_mask.npy` (a heads-only run) means every MLP kept."""
    folder = Path(folder)
    head_path = folder / "head_mask.npy"
    if not head_path.is_file():
        raise FileNotFoundError(f"No mask in {folder}: {head_path.name} is missing. Expected the layout {LAYOUT}.")
    head = load_npy(head_path).astype(np.float64)
    mlp_path = folder / "mlp_mask.npy"
    mlp = load_npy(mlp_path).astype(np.float64) if mlp_path.is_file() else np.ones(head.shape[:1])
    _check_shapes(head, mlp, str(folder))
    return head, mlp


def load_masks_tree(root: str | Path, subdir: str = "") -> dict[str, dict[int, tuple[np.ndarray, np.ndarray]]]:
    """`{task: {seed: (head_mask, mlp_mask)}}` from `<root>/<task>/seed_<seed>/[<subdir>/]head_mask.npy`."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"Mask folder {root} does not exist. Expected the layout {LAYOUT}.")
    pattern = "/".join(p for p in ("*", "seed_*", subdir, "head_mask.npy") if p)
    tree: dict[str, dict[int, tuple[np.ndarray, np.ndarray]]] = {}
    for head_path in sorted(root.glob(pattern)):
        task, seed_dir = head_path.relative_to(root).parts[:2]
        seed = seed_dir.removeprefix("seed_")
        if seed.isdigit():
            tree.setdefault(task, {})[int(seed)] = load_masks(head_path.parent)
    if not tree:
        raise FileNotFoundError(f"No masks under {root}" + (f" (subdir {subdir!r})" if subdir else "")
                                + f". Expected the layout {LAYOUT}.")
    return tree
