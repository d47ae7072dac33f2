"""GLUE metrics: the paper's metric per task (`score`) and the usual extras."""
from __future__ import annotations

import numpy as np
from scipy.stats import pearsonr, spearmanr
from sklearn.metrics import f1_score, matthews_corrcoef

from .rules import PAPER_RULES, Rules
from .tasks import Task, get_task


def min_eval_examples(task: Task) -> int:
    """The fewest examples a score may be computed on: 3 for a correlation (on 2 it is +-1 whatever the
    model), 1 otherwise."""
    return 3 if task.is_regression else 1


def _safe_corr(fn, a: np.ndarray, b: np.ndarray) -> float:
    """A correlation that is 0.0 (not NaN) when one side is constant, e.g. a collapsed model or the STS-B
    mean-score baseline. Constant means all values equal (`ptp`): the float32 std of a constant array of a
    few thousand values need not be 0."""
    if np.ptp(a) == 0 or np.ptp(b) == 0:
        return 0.0
    return float(fn(a, b)[0])


def compute_metrics(task: Task | str, preds: np.ndarray, labels: np.ndarray,
                    rules: Rules = PAPER_RULES) -> dict[str, float]:
    """Metrics for predictions (class ids, or scores for STS-B).

    `score` is the paper's metric (CoLA Matthews, STS-B Pearson, others accuracy). `stop_score` is what the
    pruning searches compare against 90% of the full model: the same, except with
    `rules.stsb_stop_on_mean_correlation` (the authors' code) where STS-B uses (Pearson + Spearman) / 2.
    """
    task = get_task(task) if isinstance(task, str) else task
    preds, labels = np.asarray(preds), np.asarray(labels)
    need = min_eval_examples(task)
    if len(labels) < need:
        raise ValueError(f"A {task.name} {task.metric} score on {len(labels)} example(s) is not a measurement: "
                         f"it needs at least {need}. Fix: evaluate on more examples (max_dev_examples).")
    if task.is_regression:
        p, s = _safe_corr(pearsonr, preds, labels), _safe_corr(spearmanr, preds, labels)
        out = {"pearson": p, "spearman": s, "corr": (p + s) / 2}
    else:
        out = {"acc": float((preds == labels).mean())}
        if task.name == "CoLA":
            out["mcc"] = float(matthews_corrcoef(labels, preds)) if len(set(preds.tolist())) > 1 else 0.0
        if task.name in ("MRPC", "QQP"):
            out["f1"] = float(f1_score(labels, preds, zero_division=0.0))
    out["score"] = out[task.metric]
    out["stop_score"] = out["corr"] if (rules.stsb_stop_on_mean_correlation and task.is_regression) else out["score"]
    return out


CONSTANT_TOLERANCE = 0.01  # regression predictions with a std below this share of the labels' std are "constant"


def prediction_spread(task: Task | str, preds: np.ndarray, labels: np.ndarray) -> dict[str, float | bool]:
    """How varied the predictions are, to tell a collapsed model from a weak one.

    Regression: `pred_std`, the predictions' standard deviation; constant when it is below
    `CONSTANT_TOLERANCE` times the labels' std. Classification: `pred_major_share`, the share of the most
    predicted class; constant when it is 1 (one class for every example). `constant_predictions` says which."""
    task = get_task(task) if isinstance(task, str) else task
    preds = np.asarray(preds)
    if task.is_regression:
        std = float(np.std(preds.astype(np.float64)))
        return {"pred_std": std, "constant_predictions": bool(std < CONSTANT_TOLERANCE * np.std(labels))}
    share = float(np.bincount(preds.astype(np.int64)).max() / len(preds))
    return {"pred_major_share": share, "constant_predictions": share == 1.0}


def constant_loss(task: Task | str, labels: np.ndarray) -> float:
    """The training loss of the best constant prediction: the labels' variance (MSE of predicting their
    mean) for regression, the entropy of the class shares (cross-entropy of predicting them) otherwise. A
    loss curve that sits at it has learned nothing about the inputs."""
    task = get_task(task) if isinstance(task, str) else task
    labels = np.asarray(labels)
    if task.is_regression:
        return float(np.var(labels.astype(np.float64)))
    shares = np.bincount(labels.astype(np.int64)) / len(labels)
    shares = shares[shares > 0]
    return float(-(shares * np.log(shares)).sum())
