"""Magnitude pruning ("m-pruning", docs/method.md section 3) through `torch.nn.utils.prune`.

Weight masks are `masks.WeightMasks`, dicts `{qualified parameter name: bool tensor}` (True = kept), named as
in `model.named_parameters()` of the dense model, e.g. `bert.encoder.layer.0.attention.self.query.weight`.
A masked model holds `<param>_orig` (the dense values, trained as usual) and `<param>_mask`; the forward
pre-hook computes `param = orig * mask`, so masked weights are exactly zero and get zero gradient.

Prunable set (the paper): the weight matrices of every encoder layer's Q, K, V, attention-output,
intermediate and output dense layers (84,934,656 parameters in bert-base). `rules.prune_biases`: the same
plus the biases of Q, K, V, attention-output and intermediate (85,008,384). Other encoder families prune
the same six roles under their own names (`lotterylib.core.families`: DistilBERT's `attention.q_lin` ...
`ffn.lin2`, DeBERTa's `attention.self.query_proj` ...); DeBERTa's separate positional projections are not
in the set.

The search (the `Magnitude` strategy of the one loop, `lotterylib.pruning.search`) removes 10% of the remaining
weights per step by global |w| ranking (cumulative sparsity 1 - 0.9^k) while the dev score stays >= threshold
x full score; the failing step is reverted.
`rules.magnitude_ten_steps_keep_ninth` stops after at most 10 steps and, if all of them pass, keeps the
9-step mask.
"""
from __future__ import annotations

import re

import numpy as np
import pandas as pd
import torch
from torch import nn
from torch.nn.utils import prune

from ..core.data import Encoded
from ..core.families import FAMILIES, family_of, submodule
from ..core.progress import step_line
from ..core.rules import PAPER_RULES, Rules
from ..core.tasks import Task
from ..core.training import evaluate
from .masks import WeightMasks, kept_count, sparsity
from .search import Result, Scored, Scorer, Step, last_accepted, run_search

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


def prunable_weights(model: nn.Module, rules: Rules = PAPER_RULES) -> WeightMasks:
    """The dense (unmasked) values of the prunable set, detached copies on the CPU."""
    return {name: _dense(m, p).detach().cpu().clone() for name, m, p in prunable_parameters(model, rules)}


def full_masks(model: nn.Module, rules: Rules = PAPER_RULES) -> WeightMasks:
    """All-True masks of the prunable set (the unpruned model)."""
    return {name: torch.ones_like(_dense(m, p), dtype=torch.bool, device="cpu")
            for name, m, p in prunable_parameters(model, rules)}


def apply_weight_masks(model: nn.Module, masks: WeightMasks, rules: Rules = PAPER_RULES) -> None:
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


def current_masks(model: nn.Module) -> WeightMasks:
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


def magnitude_step(model: nn.Module, rules: Rules = PAPER_RULES, amount: float = STEP_AMOUNT) -> WeightMasks:
    """Prune `amount` of the remaining weights of the prunable set by global |w| ranking; returns the masks.

    `prune.global_unstructured` ranks the surviving weights only, and removes round(amount x survivors)."""
    apply_weight_masks(model, current_masks(model) or full_masks(model, rules), rules)  # fresh `param`
    params = [(module, param) for _, module, param in prunable_parameters(model, rules)]
    prune.global_unstructured(params, pruning_method=prune.L1Unstructured, amount=amount)
    masks = current_masks(model)
    apply_weight_masks(model, masks, rules)  # one mask per parameter, not a growing PruningContainer
    return masks


class MagnitudeResult(Result[WeightMasks]):
    """The final masks and the history of the search (`steps[0]`: the start, the model's masks before it)."""

    def __init__(self, full_score: float, threshold: float, rules: Rules, steps: list[Step[WeightMasks]],
                 kept: Step[WeightMasks]):
        super().__init__(full_score, threshold, steps, kept)
        self.rules = rules

    @property
    def kept_steps(self) -> int:
        """The pruning steps behind `masks` (0: none kept, `score` is then the full score)."""
        return self.kept.number

    @property
    def sparsity(self) -> float:
        return sparsity(self.masks)

    def table(self) -> pd.DataFrame:
        """One row per evaluated step (the start left out): step, sparsity, score, accepted."""
        return pd.DataFrame([{"step": s.number, "sparsity": sparsity(s.masks), "score": s.score,
                              "accepted": s.accepted} for s in self.steps[1:]],
                            columns=["step", "sparsity", "score", "accepted"])


class Magnitude:
    """The m-pruning strategy (a `search.Proposer`): one phase, each step prunes 10% of the model's remaining
    weights (`magnitude_step`, which leaves them masked in the model), at most `limit` steps."""

    phases = ("magnitude",)

    def __init__(self, model: nn.Module, rules: Rules = PAPER_RULES, limit: int | None = None, progress: bool = True):
        self.model, self.rules, self.limit, self.progress = model, rules, limit, progress

    def propose(self, phase: str, current: Step[WeightMasks], failed: Step[WeightMasks] | None) -> WeightMasks | None:
        if self.limit is not None and current.number >= self.limit:
            return None
        masks = magnitude_step(self.model, self.rules)
        if kept_count(masks) == kept_count(current.masks):
            step_line("m-pruning: a further step would prune nothing; stopping", self.progress)
            return None
        return masks

    def describe(self, before: Step[WeightMasks], step: Step[WeightMasks], bar: float) -> str:
        """What the step pruned, the sparsity, the score and the verdict."""
        return (f"m-pruning step {step.number}: pruned {kept_count(before.masks) - kept_count(step.masks)} weights, "
                f"sparsity {sparsity(step.masks):.2%}; score {step.score:.4f} vs threshold {bar:.4f}: "
                + ("kept" if step.accepted else "below the threshold: undone, search ends"))


def magnitude_search(model: nn.Module, scorer: Scorer[WeightMasks], full_score: float, rules: Rules = PAPER_RULES,
                     threshold: float = 0.9, max_steps: int | None = None, progress: bool = True) -> MagnitudeResult:
    """Iterate `magnitude_step` while `scorer(masks)` (the model's score at its current masks, which the step has
    put in place) >= threshold x full_score; the failing step is reverted (`search.run_search` with the
    `Magnitude` strategy).

    The search starts from the model's current masks (none = dense) and also stops when a step would prune
    nothing. `max_steps` (default: none; 10 with `rules.magnitude_ten_steps_keep_ninth`) bounds the number of
    steps; with that rule, if every step passes, the mask before the last step is kept (9 steps: 61.26%).
    The model is left masked with the result's masks."""
    limit = max_steps if max_steps is not None else (AUTHORS_MAX_STEPS if rules.magnitude_ten_steps_keep_ninth
                                                     else None)
    bar = threshold * full_score
    start_masks = current_masks(model) or full_masks(model, rules)
    apply_weight_masks(model, start_masks, rules)
    start = Step(0, "full", start_masks, Scored(float(full_score)), accepted=True)
    step_line(f"m-pruning: full model {full_score:.4f}; keep pruning while the score is at least {threshold:g} x "
              f"{full_score:.4f} = {bar:.4f}" + (f", at most {limit} steps" if limit is not None else ""), progress)
    steps = run_search(Magnitude(model, rules, limit, progress), scorer, start, bar, progress)
    all_passed_to_limit = limit is not None and len(steps) - 1 == limit and steps[-1].accepted
    kept = last_accepted(steps, before=1 if rules.magnitude_ten_steps_keep_ninth and all_passed_to_limit else 0)
    apply_weight_masks(model, kept.masks, rules)
    step_line(f"m-pruning done: {len(steps) - 1} steps; the good subnetwork is step {kept.number}, sparsity "
              f"{sparsity(kept.masks):.2%}, score {kept.score:.4f}", progress)
    return MagnitudeResult(float(full_score), threshold, rules, steps, kept)


def make_scorer(model: nn.Module, task: Task, dev_encoded: Encoded, rules: Rules = PAPER_RULES, batch_size: int = 128,
                bf16: bool = False, progress: bool = False) -> Scorer[WeightMasks]:
    """The real scorer: evaluate the (masked) model on dev and return `metrics["stop_score"]`. The masks must be
    in the model already (`magnitude_step`, `apply_weight_masks`; none for the dense model's full score)."""
    def scorer(masks: WeightMasks | None = None) -> Scored:
        res = evaluate(model, task, dev_encoded, batch_size=batch_size, rules=rules, bf16=bf16,
                       progress=progress, desc="m-pruning eval")
        return Scored(float(res.metrics["stop_score"]))
    return scorer


def _per_head(role: str, kind: str, mask: torch.Tensor, num_heads: int) -> torch.Tensor | None:
    """(H, n) view of a mask's entries grouped by head, or None if the parameter belongs to no head."""
    if role in ("query", "key", "value"):          # Q/K/V: head h owns output rows (and bias entries)
        return mask.reshape(num_heads, -1)
    if role == "attn_out" and kind == "weight":    # W_O: head h owns input columns
        return mask.reshape(mask.shape[0], num_heads, -1).transpose(0, 1).reshape(num_heads, -1)
    return None


def survival_fractions(model_or_masks: nn.Module | WeightMasks, num_layers: int,
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
