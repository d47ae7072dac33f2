"""Encoder families: where each architecture keeps its layers, attention parts and MLP (docs/method.md,
"Encoder families").

Every BERT-specific access of the library (gates, physical pruning, m-pruning, attention maps, sizes) goes
through the `Family` of the model's `config.model_type`. A family is a set of paths:
- `layers`: the ModuleList of transformer layers, from the base model (`model.base_model`);
- inside one layer: `query`, `key`, `value` (head h owns output rows h*d:(h+1)*d), `attn_out` (W_O, head h owns
  input columns h*d:(h+1)*d), `mlp_in` and `mlp_out` (the MLP's two dense layers), `attention` (the module that
  returns `(output, attention probabilities)`), and `head_extra` (other per-head projections, where present);
- `mlp_block`: the module that computes the MLP's result alone (DistilBERT's `ffn`); None where the MLP's
  output block also adds the residual and normalises (BERT's `output`: LayerNorm(dense(.) + z)).
Add a family with `register(Family(...))`; the tests in tests/test_families.py check one on a tiny model.
"""
from __future__ import annotations

from dataclasses import dataclass

from torch import nn

ROLES = ("query", "key", "value", "attn_out", "mlp_in", "mlp_out")


@dataclass(frozen=True)
class Family:
    """Where one encoder architecture keeps the parts the study gates, prunes and reads."""

    name: str
    model_types: tuple[str, ...]
    layers: str
    attention: str
    query: str
    key: str
    value: str
    attn_out: str
    mlp_in: str
    mlp_out: str
    heads_attr: str = "num_attention_heads"   # the attention module's head count (set when heads are removed)
    mlp_block: str | None = None
    head_extra: tuple[str, ...] = ()
    intermediate_attr: str = "intermediate_size"

    def paths(self) -> dict[str, str]:
        """{role: path inside a layer} for the six weight matrices of the prunable set."""
        return {role: getattr(self, role) for role in ROLES}

    def encoder_layers(self, model: nn.Module) -> nn.ModuleList:
        return submodule(getattr(model, "base_model", model), self.layers)


def submodule(module: nn.Module, path: str) -> nn.Module:
    """`module.a.b.c` for path "a.b.c"."""
    for part in path.split("."):
        module = getattr(module, part)
    return module


def parent_and_name(module: nn.Module, path: str) -> tuple[nn.Module, str]:
    """(the module holding the last part of `path`, that part's name), to replace it with setattr."""
    head, _, name = path.rpartition(".")
    return (submodule(module, head) if head else module), name


_BERT_LAYOUT = dict(layers="encoder.layer", attention="attention.self", query="attention.self.query",
                    key="attention.self.key", value="attention.self.value", attn_out="attention.output.dense",
                    mlp_in="intermediate.dense", mlp_out="output.dense")

FAMILIES: dict[str, Family] = {}

# model_type -> why it is refused (families whose structure the study cannot express).
REFUSED: dict[str, str] = {
    "albert": "ALBERT shares one layer's weights across all its layers, so a head or MLP removed in one layer "
              "would be removed in every layer: per-layer masks cannot be realised on it",
}


def register(family: Family) -> Family:
    """Make `family` known for each of its model types (replacing an earlier one)."""
    for model_type in family.model_types:
        FAMILIES[model_type] = family
    return family


register(Family("BERT", ("bert",), **_BERT_LAYOUT))
register(Family("RoBERTa", ("roberta", "xlm-roberta"), **_BERT_LAYOUT))
register(Family("ELECTRA", ("electra",), **_BERT_LAYOUT))
register(Family("DistilBERT", ("distilbert",), layers="transformer.layer", attention="attention",
                query="attention.q_lin", key="attention.k_lin", value="attention.v_lin", attn_out="attention.out_lin",
                mlp_in="ffn.lin1", mlp_out="ffn.lin2", heads_attr="n_heads", mlp_block="ffn",
                intermediate_attr="hidden_dim"))
register(Family("DeBERTa-v2/v3", ("deberta-v2",), layers="encoder.layer", attention="attention.self",
                query="attention.self.query_proj", key="attention.self.key_proj", value="attention.self.value_proj",
                attn_out="attention.output.dense", mlp_in="intermediate.dense", mlp_out="output.dense",
                head_extra=("attention.self.pos_key_proj", "attention.self.pos_query_proj")))


class UnsupportedModelError(ValueError):
    """The model's architecture has no family adapter; the message names it, the supported ones and the fix."""


def supported() -> str:
    """The supported families and their model types, for messages and docs."""
    names: dict[str, list[str]] = {}
    for model_type, family in FAMILIES.items():
        names.setdefault(family.name, []).append(model_type)
    return ", ".join(f"{name} ({'/'.join(types)})" for name, types in names.items())


def family_for(model_type: str) -> Family:
    """The family of a `config.model_type`; a clear error for a decoder, ALBERT or any type without an adapter."""
    if model_type in FAMILIES:
        return FAMILIES[model_type]
    why = REFUSED.get(model_type, "it has no family adapter (a decoder such as GPT-2 is not a bidirectional "
                                  "encoder, and the study prunes encoders)")
    raise UnsupportedModelError(
        f"model type {model_type!r} is not supported: {why}. Supported encoder families: {supported()}. "
        "To add an encoder family, register a `lotterylib.core.families.Family` naming its layers, attention and "
        "MLP parts (docs/method.md, 'Encoder families').")


def family_of(model: nn.Module) -> Family:
    """The family of a transformers model (from its config)."""
    return family_for(model.config.model_type)


def dims(config) -> tuple[int, int, int, int, int]:
    """(layers, heads per layer, hidden size, head size, MLP width) of the unpruned architecture."""
    family = family_for(config.model_type)
    layers, heads, hidden = config.num_hidden_layers, config.num_attention_heads, config.hidden_size
    head_size = getattr(config, "attention_head_size", None) or hidden // heads
    return layers, heads, hidden, head_size, getattr(config, family.intermediate_attr)
