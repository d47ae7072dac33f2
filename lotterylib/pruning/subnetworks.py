"""Subnetworks for the lottery-ticket tests (docs/method.md sections 4 and 5), drawn with a numpy Generator.

For a "good" subnetwork (the survivors of a pruning search) of size k:
- random: k elements drawn uniformly from the whole model (`rules.bernoulli_random_s`, for s-pruning: each
  element kept with probability k / total, so only the expected size is k);
- bad: every element the search pruned, plus a uniform sample of survivors up to k; if more than k were
  pruned, a uniform sample of k of them (`rules.smallest_magnitude_bad_m`, for m-pruning: the k
  smallest-magnitude weights, deterministic).
Heads and MLPs are drawn separately. The paper's published random-s and bad-m numbers come from the authors'
rules, so `other_rule_subnetworks` also draws those two under the other rules (`Rules.other`), named
`"random (authors)"` / `"bad (authors)"` (or `"(paper)"`), to compare like for like (`other_rule_name`).
s-masks are `masks.HeadMasks` (float 0/1 arrays, heads (L, H), MLPs (L,)); m-masks are `masks.WeightMasks`
(dicts of bool tensors), drawn over the concatenation of all their parameters.

Super-survivors (Appendix E): the heads/MLPs kept in every seed of a task, against "bad" (pruned in every
seed) and "random" (neither) sets resized to the same size.
"""
from __future__ import annotations

import numpy as np
import torch

from ..core.families import dims
from ..core.rules import PAPER_RULES, Rules
from .masks import HeadMasks, WeightMasks


def _sample(pool: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    return rng.choice(pool, size=k, replace=False, shuffle=False)


def _resize_flat(candidates: np.ndarray, size: int, rng: np.random.Generator,
                 avoid: np.ndarray | None = None) -> np.ndarray:
    """Bool vector with exactly `size` True: a uniform sample of the candidates if there are enough, else all
    of them plus a uniform sample of the others, taken outside `avoid` first."""
    if not 0 <= size <= candidates.size:
        raise ValueError(f"cannot select {size} elements out of {candidates.size}")
    inside = np.flatnonzero(candidates)
    if inside.size >= size:
        chosen = _sample(inside, size, rng)
    else:
        avoid = np.zeros_like(candidates) if avoid is None else avoid
        preferred, rest = np.flatnonzero(~candidates & ~avoid), np.flatnonzero(~candidates & avoid)
        need = size - inside.size
        first = min(need, preferred.size)
        chosen = np.concatenate([inside, _sample(preferred, first, rng), _sample(rest, need - first, rng)])
    out = np.zeros(candidates.size, dtype=bool)
    out[chosen] = True
    return out


def resized_like(candidate_mask: np.ndarray, size: int, rng: np.random.Generator,
                 avoid: np.ndarray | None = None) -> np.ndarray:
    """The candidate elements (mask == 1) resized to `size` elements, as a float 0/1 array of the same shape.

    More candidates than `size`: a uniform sample of them. Fewer: all of them plus a uniform sample of the
    other elements, drawn outside `avoid` (a 0/1 mask) before any inside it."""
    cand = np.asarray(candidate_mask) != 0
    avoid_flat = None if avoid is None else (np.asarray(avoid) != 0).ravel()
    return _resize_flat(cand.ravel(), int(size), rng, avoid_flat).reshape(cand.shape).astype(np.float64)


# --- s-pruning -------------------------------------------------------------------------------------------

def random_s_masks(head_mask: np.ndarray, mlp_mask: np.ndarray, rng: np.random.Generator,
                   rules: Rules = PAPER_RULES) -> HeadMasks:
    """Random heads and MLPs, as many of each as the good masks keep (`rules.bernoulli_random_s`: each kept
    with probability k / total)."""
    if rules.bernoulli_random_s:
        return HeadMasks(*((rng.random(np.shape(m)) < np.count_nonzero(m) / np.size(m)).astype(np.float64)
                           for m in (head_mask, mlp_mask)))
    return HeadMasks(*(resized_like(np.zeros(np.shape(m)), np.count_nonzero(m), rng) for m in (head_mask, mlp_mask)))


def bad_s_masks(head_mask: np.ndarray, mlp_mask: np.ndarray, rng: np.random.Generator) -> HeadMasks:
    """The pruned heads and MLPs, resized (by random survivors, or a random sample of them) to the good sizes."""
    return HeadMasks(*(resized_like(np.asarray(m) == 0, np.count_nonzero(m), rng) for m in (head_mask, mlp_mask)))


def s_subnetworks(head_mask: np.ndarray, mlp_mask: np.ndarray, rng: np.random.Generator,
                  rules: Rules = PAPER_RULES) -> dict[str, HeadMasks]:
    """`good` (the masks as float arrays), `random` and `bad` s-masks, drawn in that order."""
    good = HeadMasks(np.asarray(head_mask, dtype=np.float64), np.asarray(mlp_mask, dtype=np.float64))
    return {"good": good, "random": random_s_masks(*good, rng, rules), "bad": bad_s_masks(*good, rng)}


# --- m-pruning -------------------------------------------------------------------------------------------

def _flatten(masks: WeightMasks) -> np.ndarray:
    return np.concatenate([torch.as_tensor(m).bool().cpu().numpy().ravel() for m in masks.values()])


def _unflatten(flat: np.ndarray, like: WeightMasks) -> WeightMasks:
    out, start = {}, 0
    for name, m in like.items():
        n = m.numel()
        out[name] = torch.from_numpy(flat[start:start + n].copy()).reshape(m.shape)
        start += n
    return out


def random_m_masks(masks: WeightMasks, rng: np.random.Generator) -> WeightMasks:
    """As many kept weights as `masks`, at uniform positions over the whole prunable set."""
    flat = _flatten(masks)
    return _unflatten(_resize_flat(np.zeros_like(flat), int(flat.sum()), rng), masks)


def bad_m_masks(masks: WeightMasks, rng: np.random.Generator, rules: Rules = PAPER_RULES,
                weights: WeightMasks | None = None) -> WeightMasks:
    """The pruned weights resized to the good size; `rules.smallest_magnitude_bad_m`: the good-size smallest
    |w| of `weights` (the dense fine-tuned values, e.g. `magnitude.prunable_weights`), ties broken by position."""
    flat = _flatten(masks)
    size = int(flat.sum())
    if not rules.smallest_magnitude_bad_m:
        return _unflatten(_resize_flat(~flat, size, rng), masks)
    if weights is None or list(weights) != list(masks):
        raise ValueError("the authors' bad m-masks (rules.smallest_magnitude_bad_m, compat 'authors') need "
                         "`weights` with the masks' names, in the same order")
    magnitude = np.concatenate([torch.as_tensor(w).detach().abs().float().cpu().numpy().ravel()
                                for w in weights.values()])
    keep = np.zeros_like(flat)
    keep[np.argsort(magnitude, kind="stable")[:size]] = True
    return _unflatten(keep, masks)


def m_subnetworks(masks: WeightMasks, rng: np.random.Generator, rules: Rules = PAPER_RULES,
                  weights: WeightMasks | None = None) -> dict[str, WeightMasks]:
    """`good` (the masks as bool CPU tensors), `random` and `bad` m-masks, drawn in that order."""
    good = {name: torch.as_tensor(m).bool().cpu() for name, m in masks.items()}
    return {"good": good, "random": random_m_masks(good, rng), "bad": bad_m_masks(good, rng, rules, weights)}


# --- both rules for the two subnetworks where the paper's text and the authors' code differ ------------

def other_rule_name(subnetwork: str, rules: Rules) -> str:
    """The name of `subnetwork` drawn under the other rules than `rules`, e.g. "random (authors)"."""
    return f"{subnetwork} ({rules.other().name})"


def other_rule_subnetworks(s_good: HeadMasks, m_good: WeightMasks, rng: np.random.Generator, rules: Rules = PAPER_RULES,
                           weights: WeightMasks | None = None) -> tuple[dict[str, HeadMasks], dict[str, WeightMasks]]:
    """The random s-subnetwork and the bad m-subnetwork under the other rules than `rules` (`Rules.other`),
    drawn in that order: `({"random (<rule>)": s-masks}, {"bad (<rule>)": m-masks})`. `weights` as for
    `bad_m_masks`."""
    other = rules.other()
    return ({other_rule_name("random", rules): random_s_masks(*s_good, rng, other)},
            {other_rule_name("bad", rules): bad_m_masks(m_good, rng, other, weights)})


# --- super-survivors (Appendix E) ------------------------------------------------------------------------

def super_survivors(head_masks: np.ndarray, mlp_masks: np.ndarray) -> HeadMasks:
    """Heads (L, H) and MLPs (L,) kept in every seed, from stacked masks (S, L, H) and (S, L)."""
    return HeadMasks(*(np.all(np.asarray(m) != 0, axis=0).astype(np.float64) for m in (head_masks, mlp_masks)))


def always_pruned(head_masks: np.ndarray, mlp_masks: np.ndarray) -> HeadMasks:
    """Heads (L, H) and MLPs (L,) pruned in every seed, from stacked masks (S, L, H) and (S, L)."""
    return HeadMasks(*(np.all(np.asarray(m) == 0, axis=0).astype(np.float64) for m in (head_masks, mlp_masks)))


def super_subnetworks(head_masks: np.ndarray, mlp_masks: np.ndarray,
                      rng: np.random.Generator) -> dict[str, HeadMasks]:
    """`super`, `bad` (always pruned) and `random` (neither super nor always pruned), the latter two resized
    to the super sizes, heads and MLPs separately; growing a set draws outside the super-survivors first."""
    sup, never = super_survivors(head_masks, mlp_masks), always_pruned(head_masks, mlp_masks)
    bad = HeadMasks(*(resized_like(n, s.sum(), rng, avoid=s) for s, n in zip(sup, never)))
    random = HeadMasks(*(resized_like((s == 0) & (n == 0), s.sum(), rng, avoid=s) for s, n in zip(sup, never)))
    return {"super": sup, "bad": bad, "random": random}


def weight_share(head_mask: np.ndarray, mlp_mask: np.ndarray, config) -> float:
    """Share of the encoder layers' weight matrices (Q, K, V, W_O, intermediate, output) that the kept heads
    (their Q/K/V rows and W_O columns) and MLPs hold; biases, LayerNorms (and DeBERTa's separate positional
    projections) are left out."""
    layers, heads, d, head_size, inter = dims(config)
    per_head, per_mlp = 4 * d * head_size, 2 * d * inter
    total = layers * (heads * per_head + per_mlp)
    return float((np.count_nonzero(head_mask) * per_head + np.count_nonzero(mlp_mask) * per_mlp) / total)
