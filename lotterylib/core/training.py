"""Fine-tuning and evaluation (docs/method.md section 1), with gate-importance scores from the same pass.

Paper defaults: AdamW lr 2e-5, eps 1e-8, no weight decay, batch 32, 3 epochs, no warm-up, linear decay to
0, gradient-norm clip 1.0, fp32. Gates (`Gates`) and weight masks (`torch.nn.utils.prune`) act through
hooks, so a masked model trains and evaluates through the same two functions.

Under bf16 autocast a regression head (STS-B) still runs in fp32 (`fp32_head`): a bf16 output near the label
mean moves in steps of 1/64, which rounds small differences between examples away (docs/method.md section 1).
`fine_tune` prints one line per epoch (loss, examples/s, ETA) whatever `progress` says; progress bars
(`progress_bar`) redraw in place on a terminal and write a line every `LOG_INTERVAL_S` seconds elsewhere.
"""
from __future__ import annotations

import contextlib
import math
import random
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass

import numpy as np
import torch
from torch.nn import functional as F

from .data import Encoded, batch_indices, collate
from .gates import Gates
from .hardware import bf16_enabled
from .metrics import compute_metrics, prediction_spread
from .progress import bar as progress_bar, duration
from .rules import PAPER_RULES, Rules
from .tasks import Task


@dataclass
class TrainConfig:
    """Fine-tuning hyper-parameters (paper defaults)."""

    learning_rate: float = 2e-5
    batch_size: int = 32
    epochs: float = 3.0
    adam_eps: float = 1e-8
    weight_decay: float = 0.0
    max_grad_norm: float = 1.0
    warmup_ratio: float = 0.0    # share of the steps over which the learning rate rises linearly from 0 (paper: 0)
    bf16: bool | str = "auto"    # bfloat16 autocast: "auto" = where native and faster (`hardware`), true, false
    group_by_length: bool = True  # length-grouped random batches: less padding, same distribution
    eval_batch_size: int = 128

    def to_dict(self) -> dict:
        return asdict(self)


def set_seed(seed: int) -> None:
    """Seed python, numpy and torch (all devices)."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def default_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def _device_of(model: torch.nn.Module) -> torch.device:
    return next(model.parameters()).device


def task_loss(task: Task, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Cross-entropy, or MSE for regression (STS-B): the loss of training and of the importance scores."""
    if task.is_regression:
        return F.mse_loss(logits.squeeze(-1).float(), labels.float())
    return F.cross_entropy(logits.float(), labels)


@contextlib.contextmanager
def fp32_head(model: torch.nn.Module, enabled: bool = True) -> Iterator[None]:
    """Inside, `model.classifier` runs in fp32 even under autocast (its input cast up); unchanged outside.

    Without autocast the head already runs in fp32, so an fp32 run computes exactly what it did before."""
    head = getattr(model, "classifier", None) if enabled else None
    if head is None:
        if enabled:
            raise AttributeError(f"fp32_head: {type(model).__name__} has no `classifier` module; only BERT-like "
                                 "sequence classifiers are supported.")
        yield
        return
    plain = type(head).forward

    def forward(x: torch.Tensor) -> torch.Tensor:
        with torch.autocast(x.device.type, enabled=False):
            return plain(head, x.float())

    head.forward = forward
    try:
        yield
    finally:
        del head.forward


def _forward(model, batch: dict[str, torch.Tensor], bf16: bool, regression: bool = False) -> torch.Tensor:
    """Logits of a batch; under bf16 autocast a regression head runs in fp32 (`fp32_head`)."""
    device = _device_of(model)
    inputs = {k: v.to(device) for k, v in batch.items() if k != "labels"}
    with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16), fp32_head(model, bf16 and regression):
        return model(**inputs).logits


def epoch_line(desc: str, epoch: int, epochs: int, step: int, total: int, losses: list[float], examples: int,
               epoch_seconds: float, elapsed: float) -> str:
    """The log line at the end of an epoch: mean loss of its steps, examples/s, elapsed time and ETA."""
    rate = examples / max(epoch_seconds, 1e-9)
    eta = elapsed / step * (total - step)
    return (f"{desc}: epoch {epoch}/{epochs} step {step}/{total} loss {np.mean(losses):.4f} "
            f"{rate:.1f} examples/s elapsed {duration(elapsed)} ETA {duration(eta)}")


def lr_factor(step: int, total: int, warmup: int) -> float:
    """The learning-rate multiplier before step `step` (0-based): linear from 0 to 1 over `warmup` steps,
    then linear down to 0 at `total` (with `warmup=0`, the paper's 1 - step / total exactly)."""
    if step < warmup:
        return step / warmup
    return max(0.0, 1.0 - (step - warmup) / (total - warmup))


def fine_tune(model: torch.nn.Module, task: Task, train: Encoded, cfg: TrainConfig, seed: int,
              progress: bool = True, desc: str = "fine-tune", log: bool = True) -> list[float]:
    """Train in place; returns the loss of every step. The model after the last step is the result.

    `log`: print one line per epoch (`epoch_line`); `progress`: a progress bar over the steps."""
    if not 0.0 <= cfg.warmup_ratio < 1.0:
        raise ValueError(f"warmup_ratio must be in [0, 1), not {cfg.warmup_ratio}: it is the share of the steps "
                         "spent warming up.")
    set_seed(seed)
    device = _device_of(model)
    bf16 = bf16_enabled(cfg.bf16, device)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=cfg.learning_rate, eps=cfg.adam_eps, weight_decay=cfg.weight_decay)
    steps_per_epoch = math.ceil(len(train) / cfg.batch_size)
    total = max(1, int(round(cfg.epochs * steps_per_epoch)))
    warmup = min(int(round(cfg.warmup_ratio * total)), total - 1)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda step: lr_factor(step, total, warmup))
    model.train()
    losses: list[float] = []
    bar = progress_bar(total=total, desc=desc, disable=not progress, unit="step")
    epoch, epochs, start = 0, math.ceil(total / steps_per_epoch), time.perf_counter()
    while len(losses) < total:
        epoch_start, first, examples = time.perf_counter(), len(losses), 0
        for idx in batch_indices(train, cfg.batch_size, shuffle=True, seed=seed * 1000 + epoch,
                                 group_by_length=cfg.group_by_length):
            if len(losses) == total:
                break
            batch = collate(train, idx)
            examples += len(idx)
            loss = task_loss(task, _forward(model, batch, bf16, task.is_regression), batch["labels"].to(device))
            if not torch.isfinite(loss):
                raise FloatingPointError(f"Fine-tuning diverged: the loss is {loss.item()} at step {len(losses) + 1} "
                                         f"of {total} (learning rate {sched.get_last_lr()[0]:.3g}). Fix: lower "
                                         "learning_rate; the run is not marked done.")
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, cfg.max_grad_norm)
            opt.step()
            sched.step()
            losses.append(loss.item())
            bar.update(1)
            bar.set_postfix(loss=f"{np.mean(losses[-20:]):.4f}", refresh=False)
        epoch += 1
        if log:
            now = time.perf_counter()
            print(epoch_line(desc, epoch, epochs, len(losses), total, losses[first:], examples, now - epoch_start,
                             now - start), flush=True)
    bar.close()
    model.eval()
    return losses


@dataclass
class EvalResult:
    """Dev-set predictions, metrics and their spread (`metrics.prediction_spread`); importance scores when
    asked for (raw sums of |dL/dxi|)."""

    metrics: dict[str, float]
    preds: np.ndarray
    spread: dict
    head_importance: np.ndarray | None = None
    mlp_importance: np.ndarray | None = None


def result_line(desc: str, task: Task, score: float, spread: dict, losses: list[float] = ()) -> str:
    """The log line of a finished (re-)fine-tuning: dev score, final training loss, spread of the predictions,
    and a warning when they are constant."""
    loss = f"final loss {np.mean(losses[-20:]):.4f} (mean of the last 20 steps), " if len(losses) else ""
    what = (f"pred std {spread['pred_std']:.3f}" if task.is_regression else
            f"most predicted class {spread['pred_major_share']:.1%} of dev")
    flag = "; CONSTANT PREDICTIONS: the model predicts one value for every example" \
        if spread["constant_predictions"] else ""
    return f"{desc}: dev {task.metric} {score:.4f}, {loss}{what}{flag}"


def evaluate(model: torch.nn.Module, task: Task, data: Encoded, batch_size: int = 128,
             gates: Gates | None = None, importance: bool = False, rules: Rules = PAPER_RULES,
             bf16: bool | str = False, progress: bool = True, desc: str = "evaluate") -> EvalResult:
    """Predict a split and score it.

    `importance=True` also returns I = sum_t |dL_t/dxi| for every head and MLP gate, from the same
    forward pass (one backward per batch, task loss with gold labels); with `rules.accumulated_gate_gradients`
    the authors' never-zeroed gradients instead: sum_t |sum_{s<=t} g_s|. `rules` also picks the stopping
    score (`metrics.compute_metrics`).
    """
    if not isinstance(importance, bool):
        raise TypeError(f"importance must be True or False, not {importance!r}: the authors' accumulated "
                        "gradients are `rules.accumulated_gate_gradients`")
    if importance and gates is None:
        raise ValueError("importance scores need the model's Gates")
    model.eval()
    device = _device_of(model)
    bf16 = bf16_enabled(bf16, device)
    outputs, order = [], []
    if importance:
        head_imp, mlp_imp = torch.zeros_like(gates.head), torch.zeros_like(gates.mlp)
        head_acc, mlp_acc = torch.zeros_like(gates.head), torch.zeros_like(gates.mlp)
    batches = batch_indices(data, batch_size, shuffle=False)
    for idx in progress_bar(batches, desc=desc, disable=not progress, unit="batch"):
        batch = collate(data, idx)
        if importance:
            with gates.track_grad(), torch.enable_grad():
                logits = _forward(model, batch, bf16, task.is_regression)
                loss = task_loss(task, logits, batch["labels"].to(device))
                g_head, g_mlp = torch.autograd.grad(loss, [gates.head, gates.mlp])
            if rules.accumulated_gate_gradients:
                head_acc += g_head
                mlp_acc += g_mlp
                g_head, g_mlp = head_acc, mlp_acc
            head_imp += g_head.abs()
            mlp_imp += g_mlp.abs()
            logits = logits.detach()
        else:
            with torch.no_grad():
                logits = _forward(model, batch, bf16, task.is_regression)
        outputs.append(logits.float().cpu())
        order.append(idx)
    logits = torch.cat(outputs)[np.argsort(np.concatenate(order), kind="stable")]
    preds = logits.squeeze(-1).numpy() if task.is_regression else logits.argmax(-1).numpy()
    result = EvalResult(compute_metrics(task, preds, data.labels, rules=rules), preds,
                        prediction_spread(task, preds, data.labels))
    if importance:
        result.head_importance = head_imp.cpu().numpy()
        result.mlp_importance = mlp_imp.cpu().numpy()
    return result
