"""Gates against the plain math of a BERT forward pass; model sources, offline and through a hub stand-in."""
import math

import numpy as np
import pytest
import torch
from torch.nn import functional as F

from conftest import padded_batch, tiny_model
from lotterylib.core.gates import Gates
from lotterylib.core.models import ModelSourceError, load_classifier, load_tokenizer, resolve_model


def reference_forward(model, input_ids, attention_mask, head_gates, mlp_gates):
    """BERT written out by hand: embeddings, then per layer gated heads and gated MLP, pooler, classifier."""
    bert, cfg = model.bert, model.config
    emb = bert.embeddings
    pos = torch.arange(input_ids.shape[1])
    x = emb.word_embeddings(input_ids) + emb.position_embeddings(pos) + emb.token_type_embeddings(torch.zeros_like(input_ids))
    x = emb.LayerNorm(x)
    H, d = cfg.num_attention_heads, cfg.hidden_size // cfg.num_attention_heads
    bias = (1.0 - attention_mask[:, None, None, :].float()) * torch.finfo(torch.float32).min
    for l, layer in enumerate(bert.encoder.layer):
        sa = layer.attention.self
        q, k, v = (lin(x).view(*x.shape[:2], H, d).transpose(1, 2) for lin in (sa.query, sa.key, sa.value))
        probs = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(d) + bias, dim=-1)
        ctx = (probs @ v) * head_gates[l].view(1, H, 1, 1)            # gate each head's context
        ctx = ctx.transpose(1, 2).reshape(*x.shape)
        out = layer.attention.output
        a = out.LayerNorm(out.dense(ctx) + x)
        mlp = layer.output.dense(F.gelu(layer.intermediate.dense(a)))
        x = layer.output.LayerNorm(mlp_gates[l] * mlp + a)             # xi * MLP(z) + z
    pooled = torch.tanh(bert.pooler.dense(x[:, 0]))
    return model.classifier(pooled)


@pytest.fixture
def batch():
    return padded_batch([9, 6, 4], 9)


def test_gated_model_equals_hand_computed_forward_for_random_gates(batch):
    model = tiny_model()
    ids, mask = batch
    rng = np.random.default_rng(0)
    head, mlp = rng.uniform(0, 1.5, (3, 4)), rng.uniform(0, 1.5, 3)
    head[1] = 0.0  # a layer with every head off
    expected = reference_forward(model, ids, mask, torch.tensor(head, dtype=torch.float32),
                                 torch.tensor(mlp, dtype=torch.float32))
    with Gates(model, head, mlp), torch.no_grad():
        got = model(input_ids=ids, attention_mask=mask).logits
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)
    assert not torch.allclose(got, model(input_ids=ids, attention_mask=mask).logits)  # gates removed again


def test_all_gates_at_one_is_the_plain_model(batch):
    model = tiny_model()
    ids, mask = batch
    with torch.no_grad():
        plain = model(input_ids=ids, attention_mask=mask).logits
        with Gates(model):
            gated = model(input_ids=ids, attention_mask=mask).logits
    torch.testing.assert_close(gated, plain, atol=0, rtol=0)


def test_gate_gradients_are_finite_and_nonzero(batch):
    model = tiny_model()
    ids, mask = batch
    gates = Gates(model)
    with gates.track_grad():
        loss = F.cross_entropy(model(input_ids=ids, attention_mask=mask).logits, torch.tensor([0, 1, 1]))
        g_head, g_mlp = torch.autograd.grad(loss, [gates.head, gates.mlp])
    assert g_head.shape == (3, 4) and g_mlp.shape == (3,)
    assert torch.isfinite(g_head).all() and torch.isfinite(g_mlp).all()
    assert (g_head != 0).all() and (g_mlp != 0).all()
    assert not gates.head.requires_grad  # back to constants outside the block


def test_wrong_mask_shape_names_the_expected_shape():
    model = tiny_model()
    with pytest.raises(ValueError, match=r"model has 3 layers x 4 heads: pass a \(3, 4\) array"):
        Gates(model, head_mask=np.ones((12, 12)))
    with pytest.raises(ValueError, match=r"pass a \(3,\) array"):
        Gates(model, mlp_mask=np.ones(4))


def test_minilm_alias_loads_offline():
    path = resolve_model("minilm-l6")
    assert path.endswith("model")
    model = load_classifier("minilm-l6", "STS-B")
    assert (model.config.num_hidden_layers, model.config.num_attention_heads, model.config.hidden_size) == (6, 12, 384)
    assert model.num_labels == 1
    assert load_tokenizer("minilm-l6")("Hello World")["input_ids"] == load_tokenizer("minilm-l6")("hello world")["input_ids"]


def test_hub_id_through_a_local_hub_cache(tmp_path, monkeypatch):
    """The real from_pretrained(hub id) path, answered offline by a hub cache laid out by hand."""
    snapshot = tmp_path / "models--someone--tiny-bert" / "snapshots" / ("0" * 40)
    tiny_model().save_pretrained(snapshot)
    (tmp_path / "models--someone--tiny-bert" / "refs").mkdir()
    (tmp_path / "models--someone--tiny-bert" / "refs" / "main").write_text("0" * 40)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))
    import huggingface_hub.constants as c

    monkeypatch.setattr(c, "HF_HUB_CACHE", str(tmp_path))
    model = load_classifier("someone/tiny-bert", "MNLI")
    assert model.config.num_hidden_layers == 3 and model.num_labels == 3


def test_unreachable_model_gives_a_clear_error():
    with pytest.raises(ModelSourceError, match="minilm-l6.*HF_HUB_OFFLINE"):
        load_classifier("nobody/no-such-model", "RTE")


def test_random_init_keeps_the_architecture_and_changes_weights():
    torch.manual_seed(0)
    pre = load_classifier("minilm-l6", "RTE")
    torch.manual_seed(0)
    rnd = load_classifier("minilm-l6", "RTE", random_init=True)
    assert sum(p.numel() for p in pre.parameters()) == sum(p.numel() for p in rnd.parameters())
    w = "bert.encoder.layer.0.attention.self.query.weight"
    assert not torch.equal(pre.state_dict()[w], rnd.state_dict()[w])


def test_loading_a_pretrained_body_prints_no_report(capsys, caplog):
    from lotterylib.core.models import load_classifier
    from transformers.utils import logging as hf_logging

    before = hf_logging.get_verbosity()
    load_classifier("minilm-l6", "RTE")
    out = capsys.readouterr()
    assert "LOAD REPORT" not in out.out + out.err and "LOAD REPORT" not in caplog.text
    assert hf_logging.get_verbosity() == before
