"""Per-head attention maps of a classifier of any supported encoder family (docs/method.md section 7), captured
with forward hooks on the family's attention module (`lotterylib.core.families`; the names below are BERT's).

Two kinds of map, both of shape (seq, seq) per head, row i = the attending token, column j = the attended one:
- raw: the attention probabilities alpha_ij;
- norm-weighted (Kobayashi et al. 2020): ||alpha_ij f(x_j)|| with f(x_j) = (x_j W_V^h + b_V^h) W_O^h, where x_j is
  the layer's input hidden state and W_O^h is head h's block of *input columns* of the attention output dense
  layer (`dense.weight[:, h*d:(h+1)*d]`, since an nn.Linear weight is (out, in)). Since alpha_ij >= 0 this is
  alpha_ij * ||f(x_j)||.
  `rules.attention_output_rows` reproduces the authors' code, which viewed `dense.weight` as (heads, d, hidden) and so used
  the *rows* `dense.weight[h*d:(h+1)*d, :]` as if they were head h's block: not Kobayashi's quantity.

Maps are computed in eval mode (no attention dropout) with the eager attention kernel; the model's mode and
kernel are restored afterwards. Head gates (`lotterylib.core.gates.Gates`) act after the attention probabilities,
so a gated model still yields the maps of all heads (a gated head's map is the one it would pass on at gate 1;
later layers see the gated hidden states).
"""
from __future__ import annotations

from contextlib import contextmanager

import numpy as np
import torch

from ..core.data import Encoded, collate
from ..core.families import Family, family_of, submodule
from ..core.rules import PAPER_RULES, Rules

MODEL_INPUTS = ("input_ids", "token_type_ids", "attention_mask")


@contextmanager
def _eager_eval(model: torch.nn.Module):
    """Eval mode and the eager attention kernel (which returns the probabilities) within the block."""
    kernel, training = model.config._attn_implementation, model.training
    if kernel != "eager":
        model.set_attn_implementation("eager")
    model.eval()
    try:
        yield
    finally:
        model.train(training)
        if kernel != "eager":
            model.set_attn_implementation(kernel)


@contextmanager
def _capture(model: torch.nn.Module):
    """Record (layer input x, attention probabilities) of every self-attention module during a forward pass
    (run it with `output_attentions=True`: DeBERTa's attention returns its probabilities only when asked)."""
    records: list[tuple[torch.Tensor, torch.Tensor]] = []

    def hook(module, args, kwargs, output):
        x = args[0] if args else kwargs["hidden_states"]
        records.append((x.detach(), output[1].detach()))

    family = family_of(model)
    handles = [submodule(layer, family.attention).register_forward_hook(hook, with_kwargs=True)
               for layer in family.encoder_layers(model)]
    try:
        yield records
    finally:
        for h in handles:
            h.remove()


def value_output_norms(layer: torch.nn.Module, x: torch.Tensor, family: Family, heads: int,
                       rules: Rules = PAPER_RULES) -> torch.Tensor:
    """||f(x_j)|| per head and token, shape (batch, heads, seq), for one encoder layer of `family` (with
    `heads` heads) and its input x."""
    v = submodule(layer, family.value)(x).unflatten(-1, (heads, -1))   # (b, n, H, d), includes b_V
    d = v.shape[-1]
    weight = submodule(layer, family.attn_out).weight                 # (out, in) = (hidden, H*d)
    if not rules.attention_output_rows:
        f = torch.einsum("bnhd,ohd->bhno", v, weight.unflatten(1, (heads, d)))   # input columns of head h
    else:
        f = torch.einsum("bnhd,hdo->bhno", v, weight.unflatten(0, (heads, d)))   # rows h*d:(h+1)*d (authors)
    return f.norm(dim=-1)


def attention_maps(model: torch.nn.Module, batch: dict[str, torch.Tensor], normed: bool = False,
                   rules: Rules = PAPER_RULES) -> np.ndarray | list[np.ndarray]:
    """Maps of every head for every example: (examples, layers, heads, seq, seq), each trimmed to its real length.

    `batch` is a right-padded batch (`lotterylib.core.data.collate`); extra keys such as `labels` are ignored.
    When the real lengths differ, a list of per-example (layers, heads, n, n) arrays is returned instead.
    `normed=True` gives norm-weighted maps; `rules.attention_output_rows` picks W_O's head block (see the
    module docstring).
    """
    device = next(model.parameters()).device
    inputs = {k: batch[k].to(device) for k in MODEL_INPUTS if k in batch}
    with _eager_eval(model), _capture(model) as records, torch.no_grad():
        model(**inputs, output_attentions=True)
        if normed:
            family = family_of(model)
            maps = [probs * value_output_norms(layer, x, family, probs.shape[1], rules)[:, :, None, :]
                    for layer, (x, probs) in zip(family.encoder_layers(model), records)]
        else:
            maps = [probs for _, probs in records]
    stacked = torch.stack(maps, dim=1).float().cpu().numpy()          # (b, L, H, n, n)
    mask = inputs.get("attention_mask")
    lengths = [stacked.shape[-1]] * len(stacked) if mask is None else mask.sum(-1).tolist()
    per_example = [m[:, :, :n, :n] for m, n in zip(stacked, lengths)]
    return np.stack(per_example) if len(set(lengths)) == 1 else per_example


def example_maps(model: torch.nn.Module, enc: Encoded, normed: bool = False, rules: Rules = PAPER_RULES,
                 batch_size: int = 16) -> list[np.ndarray]:
    """`attention_maps` of every example of `enc`, in order, batch by batch: one (layers, heads, n, n) array per
    example, n = its length (so `tokenizer.convert_ids_to_tokens(enc.input_ids[i])` labels map i's rows)."""
    maps: list[np.ndarray] = []
    for start in range(0, len(enc), batch_size):
        batch = collate(enc, list(range(start, min(start + batch_size, len(enc)))))
        maps.extend(attention_maps(model, batch, normed=normed, rules=rules))
    return maps
