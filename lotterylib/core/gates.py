"""Head and MLP gates (docs/method.md section 2), implemented with forward hooks.

transformers 5.x removed `head_mask`; these hooks work with any attention kernel (sdpa, eager, flash):
- head gate xi_{h,l}: scales head h's slice of the context vector before the output projection W_O;
- MLP gate xi_l: `xi_l * MLP(z) + z`, i.e. scales the MLP's second dense output (bias included) before
  the residual add and LayerNorm.
The modules hooked are the family's `attn_out` and `mlp_out` (`lotterylib.core.families`): BERT's
`attention.output.dense` and `output.dense`, DistilBERT's `attention.out_lin` and `ffn.lin2`.
Gates are plain tensors; call `requires_grad_()` on them (or use `track_grad`) to get dL/dxi.
"""
from __future__ import annotations

from contextlib import contextmanager

import numpy as np
import torch

from .families import family_of, submodule
from .models import shape_of


def check_masks(head_mask, mlp_mask, num_layers: int, num_heads: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Masks as float tensors of the right shape; a wrong shape raises with the expected one."""
    head = torch.ones(num_layers, num_heads) if head_mask is None else torch.as_tensor(np.asarray(head_mask), dtype=torch.float32)
    mlp = torch.ones(num_layers) if mlp_mask is None else torch.as_tensor(np.asarray(mlp_mask), dtype=torch.float32)
    if tuple(head.shape) != (num_layers, num_heads):
        raise ValueError(f"head mask has shape {tuple(head.shape)}, but the model has {num_layers} layers x "
                         f"{num_heads} heads: pass a ({num_layers}, {num_heads}) array (1 = kept).")
    if tuple(mlp.shape) != (num_layers,):
        raise ValueError(f"MLP mask has shape {tuple(mlp.shape)}, but the model has {num_layers} layers: "
                         f"pass a ({num_layers},) array (1 = kept).")
    return head, mlp


class Gates:
    """Gates on every head and every MLP of an encoder (any supported family). Use as a context manager or
    call `remove()`."""

    def __init__(self, model: torch.nn.Module, head_mask=None, mlp_mask=None):
        self.num_layers, self.num_heads = shape_of(model)
        device = next(model.parameters()).device
        self.head, self.mlp = (t.to(device) for t in check_masks(head_mask, mlp_mask, self.num_layers, self.num_heads))
        self._hooks = []
        family = family_of(model)
        for l, layer in enumerate(family.encoder_layers(model)):
            self._hooks.append(submodule(layer, family.attn_out).register_forward_pre_hook(self._head_hook(l)))
            self._hooks.append(submodule(layer, family.mlp_out).register_forward_hook(self._mlp_hook(l)))

    def _head_hook(self, l: int):
        def hook(module, args):
            (context,) = args
            g = self.head[l].to(context.dtype)
            shaped = context.unflatten(-1, (self.num_heads, -1)) * g[:, None]
            return (shaped.flatten(-2),)
        return hook

    def _mlp_hook(self, l: int):
        def hook(module, args, output):
            return output * self.mlp[l].to(output.dtype)
        return hook

    def set(self, head_mask=None, mlp_mask=None) -> None:
        """Replace the gate values (None = all ones)."""
        head, mlp = check_masks(head_mask, mlp_mask, self.num_layers, self.num_heads)
        self.head, self.mlp = head.to(self.head.device), mlp.to(self.mlp.device)

    @contextmanager
    def track_grad(self):
        """Within the block the gates are leaves that require grad (for importance scores)."""
        self.head = self.head.detach().requires_grad_(True)
        self.mlp = self.mlp.detach().requires_grad_(True)
        try:
            yield self
        finally:
            self.head, self.mlp = self.head.detach(), self.mlp.detach()

    def remove(self) -> None:
        for h in self._hooks:
            h.remove()
        self._hooks = []

    def __enter__(self) -> Gates:
        return self

    def __exit__(self, *exc) -> None:
        self.remove()
