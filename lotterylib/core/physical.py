"""Physically remove masked heads and MLPs from a classifier (docs/method.md section 2), in any supported
encoder family (`lotterylib.core.families`; the names below are BERT's).

The pruned model computes exactly what the gated model (`Gates` with 0/1 values) computes:
- a removed head: its rows of W_Q, W_K, W_V (and of DeBERTa's separate positional projections, where the
  model has them) and its input columns of W_O are sliced away. Every supported attention reshapes with
  `view(..., -1, head_size)`, so fewer heads need no other change (the module's head count is updated);
- a layer with no head left: the self-attention becomes `NoHeads` (a zero-width output) and W_O a
  Linear(0, d) that still adds its bias, as gating does. The authors' code dropped that bias (their
  `prune_heads` set W_O to None, giving LayerNorm(x)), a small mismatch with their gated model;
- a removed MLP: the intermediate layer becomes the identity and the output `SkipMLP`, which returns
  `LayerNorm(z)`: the MLP contributes nothing, its output bias included (as with xi = 0). In DistilBERT the
  `ffn` block becomes `NoMLP` (zero), so its output LayerNorm sees z alone.

The gated modules are rebuilt from their effective weights, so the copy carries no gate hooks (and no
`torch.nn.utils.prune` reparametrisation on them). The config keeps the unpruned sizes: a pruned model is
for inference and measurement; store its masks (`masks.save_head_masks`), not the model, and do not attach
`Gates` to it. With `output_attentions=True` it returns the kept heads only, and nothing for a layer
without heads.
"""
from __future__ import annotations

import copy
import warnings

import numpy as np
import torch
from torch import nn

from .families import Family, dims, family_of, parent_and_name, submodule
from .gates import check_masks


class NoHeads(nn.Module):
    """Self-attention of a layer whose heads were all removed: a zero-width context, no attention weights.

    In a family whose attention module also applies W_O (DistilBERT), `output` is that W_O with no input
    column left, so the module returns W_O's bias, as gating every head to 0 does."""

    def __init__(self, output: nn.Module | None = None):
        super().__init__()
        self.output = output

    def forward(self, hidden_states: torch.Tensor, *args, **kwargs) -> tuple[torch.Tensor, None]:
        context = hidden_states[..., :0]
        return (context if self.output is None else self.output(context)), None


class NoMLP(nn.Module):
    """A removed MLP in a family whose MLP block returns MLP(z) alone (DistilBERT's `ffn`): zero."""

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        return torch.zeros_like(hidden_states)


class SkipMLP(nn.Module):
    """The output block of a removed MLP: `LayerNorm(z + 0)`, i.e. the residual stream alone, normalised."""

    def __init__(self, layer_norm: nn.LayerNorm):
        super().__init__()
        self.LayerNorm = layer_norm

    def forward(self, hidden_states: torch.Tensor, input_tensor: torch.Tensor) -> torch.Tensor:
        return self.LayerNorm(input_tensor)


def _linear(linear: nn.Module, rows: torch.Tensor | None = None, cols: torch.Tensor | None = None) -> nn.Linear:
    """A fresh nn.Linear holding `linear`'s effective weight (and bias), restricted to rows (outputs) and
    columns (inputs)."""
    weight = linear.weight.detach()
    bias = None if linear.bias is None else linear.bias.detach()
    if rows is not None:
        weight, bias = weight[rows], None if bias is None else bias[rows]
    if cols is not None:
        weight = weight[:, cols]
    with warnings.catch_warnings():  # a 0-input Linear (no head left) warns that its init is a no-op
        warnings.filterwarnings("ignore", "Initializing zero-element tensors")
        new = nn.utils.skip_init(nn.Linear, weight.shape[1], weight.shape[0], bias=bias is not None,
                                 device=weight.device, dtype=weight.dtype)
    with torch.no_grad():
        new.weight.copy_(weight)
        if bias is not None:
            new.bias.copy_(bias)
    return new


def _head_index(kept: np.ndarray, head_size: int, device: torch.device) -> torch.Tensor:
    """Indices of the hidden units (rows of Q/K/V, columns of W_O) of the kept heads, in head order."""
    return (torch.as_tensor(kept, device=device)[:, None] * head_size
            + torch.arange(head_size, device=device)).flatten()


def _prune_heads(layer: nn.Module, family: Family, kept: np.ndarray, head_size: int) -> None:
    out_parent, out_name = parent_and_name(layer, family.attn_out)
    w_o = getattr(out_parent, out_name)
    idx = _head_index(kept, head_size, w_o.weight.device)
    w_o = _linear(w_o, cols=idx)   # the bias stays, even with no head left
    setattr(out_parent, out_name, w_o)
    if len(kept) == 0:
        parent, name = parent_and_name(layer, family.attention)
        inside = family.attn_out.startswith(family.attention + ".")   # W_O belongs to the attention module
        setattr(parent, name, NoHeads(w_o if inside else None))
        return
    attention = submodule(layer, family.attention)
    # head_extra: DeBERTa's positional projections, which exist only without share_att_key
    extra = [path for path in family.head_extra if hasattr(*parent_and_name(layer, path))]
    for path in (family.query, family.key, family.value, *extra):
        parent, name = parent_and_name(layer, path)
        setattr(parent, name, _linear(getattr(parent, name), rows=idx))
    setattr(attention, family.heads_attr, len(kept))
    if hasattr(attention, "all_head_size"):
        attention.all_head_size = len(kept) * head_size


def _remove_mlp(layer: nn.Module, family: Family) -> None:
    if family.mlp_block is not None:
        parent, name = parent_and_name(layer, family.mlp_block)
        setattr(parent, name, NoMLP())
        return
    # BERT layout: the blocks around mlp_in (intermediate) and mlp_out (output: dense, residual, LayerNorm)
    inner, outer = (path.rpartition(".")[0] for path in (family.mlp_in, family.mlp_out))
    parent, name = parent_and_name(layer, inner)
    setattr(parent, name, nn.Identity())
    parent, name = parent_and_name(layer, outer)
    setattr(parent, name, SkipMLP(getattr(parent, name).LayerNorm))


def prune_physically(model: nn.Module, head_mask, mlp_mask) -> nn.Module:
    """A deep copy of a classifier (any supported family) without the heads and MLPs whose mask is 0 (1 = kept).

    Masks must hold only 0 and 1: only then does the result equal the gated model."""
    family = family_of(model)
    num_layers, num_heads, _, head_size, _ = dims(model.config)
    head, mlp = (m.numpy() for m in check_masks(head_mask, mlp_mask, num_layers, num_heads))
    if not (np.isin(head, (0, 1)).all() and np.isin(mlp, (0, 1)).all()):
        raise ValueError("physical pruning needs 0/1 masks (1 = kept); other gate values only exist as gates.")
    pruned = copy.deepcopy(model)
    for l, layer in enumerate(family.encoder_layers(pruned)):
        _prune_heads(layer, family, np.flatnonzero(head[l]), head_size)
        if mlp[l]:
            parent, name = parent_and_name(layer, family.mlp_out)
            setattr(parent, name, _linear(getattr(parent, name)))  # rebuilt: drops a gate hook copied along
        else:
            _remove_mlp(layer, family)
    return pruned


def count_parameters(model: nn.Module) -> int:
    """Number of parameters (shared ones once)."""
    return sum(p.numel() for p in model.parameters())


def expected_parameter_count(config, head_mask, mlp_mask, num_labels: int) -> int:
    """Parameters of a pruned BertForSequenceClassification (the BERT family only), from the arithmetic.

    Embeddings (word, position, token type, LayerNorm); per layer, with k kept heads of size d_h:
    Q, K, V: 3 (D k d_h + k d_h), W_O: k d_h D + D (its bias is always kept), LayerNorm 2D; a kept MLP:
    D I + I + I D + D; the output LayerNorm 2D always; pooler D^2 + D; classifier D c + c."""
    D, I = config.hidden_size, config.intermediate_size
    head, mlp = (m.numpy() for m in check_masks(head_mask, mlp_mask, config.num_hidden_layers,
                                                config.num_attention_heads))
    d_h = D // config.num_attention_heads
    total = (config.vocab_size + config.max_position_embeddings + config.type_vocab_size) * D + 2 * D
    for k, keep_mlp in zip(head.sum(axis=1).astype(int), mlp.astype(bool)):
        width = k * d_h
        total += 3 * (D * width + width) + width * D + D + 2 * D
        total += (2 * D * I + I + D if keep_mlp else 0) + 2 * D
    return int(total + D * D + D + D * num_labels + num_labels)
