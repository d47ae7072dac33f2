"""Magnitude pruning ("m-pruning", docs/method.md section 3) through `torch.nn.utils.prune`.

Weight masks are dicts `{qualified parameter name: bool tensor}` (True = kept), named as in
`model.named_parameters()` of the dense model, e.g. `bert.encoder.layer.0.attention.self.query.weight`.
A masked model holds `<param>_orig` (the dense values, trained as usual) and `<param>_mask`; the forward
pre-hook computes `param = orig * mask`, so masked weights are exactly zero and get zero gradient.

Prunable set (the paper): the weight matrices of every encoder layer's Q, K, V, attention-output,
intermediate and output dense layers (84,934,656 parameters in bert-base). `rules.prune_biases`: the same
plus the biases of Q, K, V, attention-output and intermediate (85,008,384). Other encoder families prune
the same six roles under their own names (`lotterylib.families`: DistilBERT's `attention.q_lin` ...
`ffn.lin2`, DeBERTa's `attention.self.query_proj` ...); DeBERTa's separate positional projections are not
in the set.

The search removes 10% of the remaining weights per step by global |w| ranking (cumulative sparsity
1 - 0.9^k) while the dev score stays >= threshold x full score; the failing step is reverted.
`rules.magnitude_ten_steps_keep_ninth` stops after at most 10 steps and, if all of them pass, keeps the
9-step mask.
"""
from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import nn
from torch.nn.utils import prune

from .data import Encoded
from .families import FAMILIES, family_of, submodule
from .progress import step_line
from .rules import PAPER_RULES, Rules
from .tasks import Task
from .training import evaluate

STEP_AMOUNT = 0.1
AUTHORS_MAX_STEPS = 10

# Roles of an encoder layer's dense layers (`families.ROLES`) whose bias is prunable with `rules.prune_biases`
# (every role's weight is prunable; the output dense layer's bias never is).
_BIAS_ROLES = ("query", "key", "value", "attn_out", "mlp_in")


def _pruned(role: str, rules: Rules) -> tuple[str, ...]:
    """The parameters pruned in a dense layer of `role`: its weight, then its bias where the rules prune it."""
    return ("weight", "bias") if rules.prune_biases and role in _BIAS_ROLES else ("weight",)


def _role_of(path: str) -> str | None:
    """The role of a sub-module path inside a layer, in any registered family (a path has one role in all)."""
    return next((role for family in FAMILIES.values() for role, p in family.paths().items() if p == path), None)


_NAME = re.compile(r"layer\.(\d+)\.(.+)\.(weight|bias)$")
Masks = dict[str, torch.Tensor]


def prunable_parameters(model: nn.Module, rules: Rules = PAPER_RULES) -> list[tuple[str, nn.Module, str]]:
    """(qualified name, module, parameter name) of every prunable parameter, layer by layer."""
    names = {module: name for name, module in model.named_modules()}
    family = family_of(model)
    out = []
    for layer in family.encoder_layers(model):
        for role, path in family.paths().items():
            module = submodule(layer, path)
            out.extend((f"{names[module]}.{p}", module, p) for p in _pruned(role, rules))
    return out


def _is_masked(module: nn.Module, param: str) -> bool:
    return hasattr(module, f"{param}_mask")


def _dense(module: nn.Module, param: str) -> torch.Tensor:
    """The unmasked values of a (possibly masked) parameter."""
    return getattr(module, f"{param}_orig") if _is_masked(module, param) else getattr(module, param)


def _unmask(module: nn.Module, param: str) -> None:
    """Drop the reparametrisation and restore the dense values (the same Parameter object)."""
    dense = _dense(module, param).detach().clone()
    prune.remove(module, param)
    with torch.no_grad():
        getattr(module, param).copy_(dense)


def prunable_weights(model: nn.Module, rules: Rules = PAPER_RULES) -> Masks:
    """The dense (unmasked) values of the prunable set, detached copies on the CPU."""
    return {name: _dense(m, p).detach().cpu().clone() for name, m, p in prunable_parameters(model, rules)}


def full_masks(model: nn.Module, rules: Rules = PAPER_RULES) -> Masks:
    """All-True masks of the prunable set (the unpruned model)."""
    return {name: torch.ones_like(_dense(m, p), dtype=torch.bool, device="cpu")
            for name, m, p in prunable_parameters(model, rules)}


def apply_weight_masks(model: nn.Module, masks: Masks, rules: Rules = PAPER_RULES) -> None:
    """Mask the prunable set with `prune.custom_from_mask`, replacing any masks already there.

    `masks` must name exactly the prunable set of `rules` (`rules.prune_biases`), with the parameters' shapes."""
    params = prunable_parameters(model, rules)
    expected = {name for name, _, _ in params}
    if set(masks) != expected:
        missing, extra = sorted(expected - set(masks)), sorted(set(masks) - expected)
        raise ValueError(f"weight masks do not match the prunable set with prune_biases={rules.prune_biases}: "
                         f"missing {missing[:3]}{'...' if len(missing) > 3 else ''}, unexpected {extra[:3]}"
                         f"{'...' if len(extra) > 3 else ''}. Were they made with the other compat?")
    for name, module, param in params:
        mask = torch.as_tensor(masks[name])
        dense = _dense(module, param)
        if tuple(mask.shape) != tuple(dense.shape):
            raise ValueError(f"mask {name} has shape {tuple(mask.shape)}, the parameter {tuple(dense.shape)}")
        if _is_masked(module, param):
            _unmask(module, param)
        prune.custom_from_mask(module, param, mask.to(device=dense.device, dtype=torch.bool))


def _masked(model: nn.Module) -> list[tuple[str, nn.Module, str]]:
    """(qualified name, module, parameter name) of every parameter that carries a pruning mask."""
    out = []
    for mname, module in model.named_modules():
        origs = {n.removesuffix("_orig") for n, _ in module.named_parameters(recurse=False) if n.endswith("_orig")}
        for buf, _ in module.named_buffers(recurse=False):
            if (param := buf.removesuffix("_mask")) in origs:
                out.append((f"{mname}.{param}" if mname else param, module, param))
    return out


def current_masks(model: nn.Module) -> Masks:
    """The masks in place (bool, CPU); empty if the model is not masked."""
    return {name: getattr(m, f"{p}_mask").detach().bool().cpu() for name, m, p in _masked(model)}


def remove_weight_masks(model: nn.Module, permanent: bool = True) -> None:
    """Remove every mask: `permanent=True` keeps the masked weights at zero (`prune.remove`),
    `permanent=False` restores their dense values."""
    for _, module, param in _masked(model):
        if permanent:
            prune.remove(module, param)
        else:
            _unmask(module, param)


def kept_count(masks: Masks) -> int:
    return int(sum(int(m.sum()) for m in masks.values()))


def total_count(masks: Masks) -> int:
    return int(sum(m.numel() for m in masks.values()))


def sparsity(masks: Masks) -> float:
    """Fraction of the masked parameters that are pruned."""
    return 1.0 - kept_count(masks) / total_count(masks)


def magnitude_step(model: nn.Module, rules: Rules = PAPER_RULES, amount: float = STEP_AMOUNT) -> Masks:
    """Prune `amount` of the remaining weights of the prunable set by global |w| ranking; returns the masks.

    `prune.global_unstructured` ranks the surviving weights only, and removes round(amount x survivors)."""
    apply_weight_masks(model, current_masks(model) or full_masks(model, rules), rules)  # fresh `param`
    params = [(module, param) for _, module, param in prunable_parameters(model, rules)]
    prune.global_unstructured(params, pruning_method=prune.L1Unstructured, amount=amount)
    masks = current_masks(model)
    apply_weight_masks(model, masks, rules)  # one mask per parameter, not a growing PruningContainer
    return masks


@dataclass(frozen=True)
class MagnitudeStep:
    """One pruning step of the search: its index (1 = first), sparsity, score and verdict."""

    step: int
    sparsity: float
    score: float
    accepted: bool


@dataclass
class MagnitudeResult:
    """The final masks and the history of the search."""

    masks: Masks
    steps: list[MagnitudeStep] = field(default_factory=list)
    full_score: float = float("nan")
    threshold: float = 0.9
    rules: Rules = PAPER_RULES
    kept_steps: int = 0   # pruning steps behind `masks`
    score: float = float("nan")  # the score of `masks` (the full score if no step was kept)

    @property
    def sparsity(self) -> float:
        return sparsity(self.masks)

    def table(self) -> pd.DataFrame:
        """One row per evaluated step: step, sparsity, score, accepted."""
        return pd.DataFrame([vars(s) for s in self.steps], columns=["step", "sparsity", "score", "accepted"])


def magnitude_search(model: nn.Module, scorer: Callable[[], float], full_score: float, rules: Rules = PAPER_RULES,
                     threshold: float = 0.9, max_steps: int | None = None, progress: bool = True) -> MagnitudeResult:
    """Iterate `magnitude_step` while `scorer()` (the model's score at its current masks) >= threshold x
    full_score; the failing step is reverted.

    The search starts from the model's current masks (none = dense) and also stops when a step would prune
    nothing. `max_steps` (default: none; 10 with `rules.magnitude_ten_steps_keep_ninth`) bounds the number of
    steps; with that rule, if every step passes, the mask before the last step is kept (9 steps: 61.26%).
    The model is left masked with the result's masks."""
    limit = max_steps if max_steps is not None else (AUTHORS_MAX_STEPS if rules.magnitude_ten_steps_keep_ninth
                                                     else None)
    bar = threshold * full_score
    start = current_masks(model) or full_masks(model, rules)
    apply_weight_masks(model, start, rules)
    passed = [(start, float(full_score), 0)]  # the last two passing states: (masks, score, steps)
    steps: list[MagnitudeStep] = []
    step_line(f"m-pruning: full model {full_score:.4f}; keep pruning while the score is at least {threshold:g} x "
              f"{full_score:.4f} = {bar:.4f}" + (f", at most {limit} steps" if limit is not None else ""), progress)
    while limit is None or len(steps) < limit:
        before = kept_count(passed[-1][0])
        masks = magnitude_step(model, rules)
        if kept_count(masks) == before:
            step_line("m-pruning: a further step would prune nothing; stopping", progress)
            break
        score = float(scorer())
        steps.append(MagnitudeStep(len(steps) + 1, sparsity(masks), score, score >= bar))
        step_line(f"m-pruning step {len(steps)}: pruned {before - kept_count(masks)} weights, sparsity "
                  f"{steps[-1].sparsity:.2%}; score {score:.4f} vs threshold {bar:.4f}: "
                  + ("kept" if steps[-1].accepted else "below the threshold: undone, search ends"), progress)
        if not steps[-1].accepted:
            break
        passed = [passed[-1], (masks, score, len(steps))]
    all_passed_to_limit = limit is not None and len(steps) == limit and steps[-1].accepted
    masks, score, kept = passed[0] if rules.magnitude_ten_steps_keep_ninth and all_passed_to_limit else passed[-1]
    apply_weight_masks(model, masks, rules)
    step_line(f"m-pruning done: {len(steps)} steps; the good subnetwork is step {kept}, sparsity "
              f"{sparsity(masks):.2%}, score {score:.4f}", progress)
    return MagnitudeResult(masks, steps, float(full_score), threshold, rules, kept, score)


def make_scorer(model: nn.Module, task: Task, dev_encoded: Encoded, rules: Rules = PAPER_RULES, batch_size: int = 128,
                bf16: bool = False, progress: bool = False) -> Callable[[], float]:
    """The real scorer: evaluate the (masked) model on dev and return `metrics["stop_score"]`."""
    def scorer() -> float:
        res = evaluate(model, task, dev_encoded, batch_size=batch_size, rules=rules, bf16=bf16,
                       progress=progress, desc="m-pruning eval")
        return res.metrics["stop_score"]
    return scorer


def _per_head(role: str, kind: str, mask: torch.Tensor, num_heads: int) -> torch.Tensor | None:
    """(H, n) view of a mask's entries grouped by head, or None if the parameter belongs to no head."""
    if role in ("query", "key", "value"):          # Q/K/V: head h owns output rows (and bias entries)
        return mask.reshape(num_heads, -1)
    if role == "attn_out" and kind == "weight":    # W_O: head h owns input columns
        return mask.reshape(mask.shape[0], num_heads, -1).transpose(0, 1).reshape(num_heads, -1)
    return None


def survival_fractions(model_or_masks: nn.Module | Masks, num_layers: int,
                       num_heads: int) -> tuple[np.ndarray, np.ndarray]:
    """Fraction of surviving masked weights per head (L, H) and per MLP (L,) (Figure 1a).

    A head owns its Q/K/V rows (and Q/K/V bias entries when they are masked) and its W_O columns; W_O's
    bias belongs to no head. An MLP owns its masked intermediate and output parameters."""
    masks = current_masks(model_or_masks) if isinstance(model_or_masks, nn.Module) else model_or_masks
    if not masks:
        raise ValueError("no weight masks: prune the model or pass a masks dict")
    head_kept, head_total = np.zeros((num_layers, num_heads)), np.zeros((num_layers, num_heads))
    mlp_kept, mlp_total = np.zeros(num_layers), np.zeros(num_layers)
    for name, mask in masks.items():
        match = _NAME.search(name)
        role = None if match is None else _role_of(match[2])
        if role is None:
            raise ValueError(f"{name!r} is not an encoder-layer parameter of the prunable set")
        layer, kind = int(match[1]), match[3]
        mask = torch.as_tensor(mask).bool().cpu()
        if role in ("mlp_in", "mlp_out"):
            mlp_kept[layer] += int(mask.sum())
            mlp_total[layer] += mask.numel()
        elif (grouped := _per_head(role, kind, mask, num_heads)) is not None:
            head_kept[layer] += grouped.sum(1).numpy()
            head_total[layer] += grouped.shape[1]
    return head_kept / head_total, mlp_kept / mlp_total


def save_weight_masks(path: str | Path, masks: Masks) -> Path:
    """Write the masks as a compressed npz of bool arrays; returns the file's path (`.npz` appended)."""
    path = Path(path)
    path = path if path.suffix == ".npz" else path.with_name(path.name + ".npz")
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(path, **{name: torch.as_tensor(m).bool().cpu().numpy() for name, m in masks.items()})
    return path


def load_weight_masks(path: str | Path) -> Masks:
    """Masks written by `save_weight_masks`, as bool tensors in the saved order."""
    with np.load(Path(path)) as data:
        return {name: torch.from_numpy(data[name].astype(bool)) for name in data.files}
