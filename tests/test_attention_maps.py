"""Attention maps: raw and norm-weighted maps against plain torch re-computations, gates, compat."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from transformers import BertConfig, BertForSequenceClassification

from lotterylib.analysis.attention_maps import attention_maps, example_maps
from lotterylib.core.data import collate
from lotterylib.core.gates import Gates
from lotterylib.core.rules import Rules
from conftest import tiny_encoded

LAYERS, HEADS, HIDDEN = 2, 4, 32
D = HIDDEN // HEADS


@pytest.fixture
def model() -> BertForSequenceClassification:
    torch.manual_seed(0)
    config = BertConfig(hidden_size=HIDDEN, num_hidden_layers=LAYERS, num_attention_heads=HEADS,
                        intermediate_size=37, vocab_size=100)
    model = BertForSequenceClassification(config).eval()
    with torch.no_grad():  # BERT's init (std 0.02) gives near-uniform maps: sharpen them so that tests bite
        for module in model.modules():
            if isinstance(module, torch.nn.Linear):
                module.weight.normal_(0.0, 0.3)
                module.bias.normal_(0.0, 0.1)
    return model


@pytest.fixture
def batch() -> dict[str, torch.Tensor]:
    return collate(tiny_encoded(n=5, seed=3), list(range(5)))


def lengths(batch) -> list[int]:
    return batch["attention_mask"].sum(-1).tolist()


def layer_inputs(model, batch) -> tuple[torch.Tensor, ...]:
    """hidden_states[l] is the input of layer l."""
    with torch.no_grad():
        out = model(input_ids=batch["input_ids"], token_type_ids=batch["token_type_ids"],
                    attention_mask=batch["attention_mask"], output_hidden_states=True)
    return out.hidden_states


@torch.no_grad()
def direct_probs(model, x: torch.Tensor, layer: int, head: int, n: int) -> torch.Tensor:
    """softmax(q k^T / sqrt(d)) of one head on the first n (real) tokens of one example, plain torch."""
    attn = model.bert.encoder.layer[layer].attention.self
    rows = slice(head * D, (head + 1) * D)
    q = x[:n] @ attn.query.weight[rows].T + attn.query.bias[rows]
    k = x[:n] @ attn.key.weight[rows].T + attn.key.bias[rows]
    return torch.softmax(q @ k.T / D ** 0.5, dim=-1)


def test_raw_maps_match_direct_computation(model, batch):
    maps = attention_maps(model, batch)
    hidden = layer_inputs(model, batch)
    assert isinstance(maps, list) and len(maps) == 5
    for b, n in enumerate(lengths(batch)):
        assert maps[b].shape == (LAYERS, HEADS, n, n)
        np.testing.assert_allclose(maps[b].sum(-1), 1.0, atol=1e-5)
        for l in range(LAYERS):
            for h in range(HEADS):
                expected = direct_probs(model, hidden[l][b], l, h, n).numpy()
                np.testing.assert_allclose(maps[b][l, h], expected, atol=1e-5)


def test_equal_lengths_give_one_array(model):
    enc = tiny_encoded(n=3, seed=1)
    enc.input_ids = [ids[:4] + [2] for ids in enc.input_ids if len(ids) >= 5][:2]
    enc.token_type_ids = [[0] * 5] * 2
    enc.labels = enc.labels[:2]
    maps = attention_maps(model, collate(enc, [0, 1]))
    assert isinstance(maps, np.ndarray) and maps.shape == (2, LAYERS, HEADS, 5, 5)


def test_normed_maps_match_loops(model, batch):
    maps = attention_maps(model, batch, normed=True)
    hidden = layer_inputs(model, batch)
    l, h, b = 1, 2, 0
    n = lengths(batch)[b]
    x = hidden[l][b]
    layer = model.bert.encoder.layer[l]
    cols = slice(h * D, (h + 1) * D)
    w_v, b_v = layer.attention.self.value.weight[cols], layer.attention.self.value.bias[cols]
    w_o = layer.attention.output.dense.weight[:, cols]            # head h's input columns of W_O
    alpha = direct_probs(model, x, l, h, n)
    expected = torch.zeros(n, n)
    with torch.no_grad():
        for i in range(n):
            for j in range(n):
                f_j = (x[j] @ w_v.T + b_v) @ w_o.T
                expected[i, j] = torch.linalg.norm(alpha[i, j] * f_j)
    np.testing.assert_allclose(maps[b][l, h], expected.numpy(), rtol=1e-4, atol=1e-6)


def test_authors_variant_uses_rows_and_differs(model, batch):
    paper = attention_maps(model, batch, normed=True)
    authors = attention_maps(model, batch, normed=True, rules=Rules(attention_output_rows=True))
    l, h, b = 0, 1, 0
    n = lengths(batch)[b]
    x = layer_inputs(model, batch)[l][b][:n]
    layer = model.bert.encoder.layer[l]
    cols = slice(h * D, (h + 1) * D)
    with torch.no_grad():
        v = x @ layer.attention.self.value.weight[cols].T + layer.attention.self.value.bias[cols]
        f = v @ layer.attention.output.dense.weight[cols, :]        # rows of W_O, as the authors sliced them
        expected = direct_probs(model, x, l, h, n) * f.norm(dim=-1)[None, :]
    np.testing.assert_allclose(authors[b][l, h], expected.numpy(), rtol=1e-4, atol=1e-6)
    assert not np.allclose(paper[b][l, h], authors[b][l, h], rtol=1e-2)
    # every other quirk on, this one off: the paper's maps
    others = Rules(**{q: q != "attention_output_rows" for q in Rules.quirks()})
    assert all(np.array_equal(x, y) for x, y in zip(attention_maps(model, batch, normed=True, rules=others), paper))


def test_gated_model_gives_all_heads_and_outputs_unchanged(model, batch):
    inputs = {k: batch[k] for k in ("input_ids", "token_type_ids", "attention_mask")}
    head_mask = np.ones((LAYERS, HEADS))
    head_mask[0, [0, 2]] = 0
    head_mask[1, 3] = 0
    with Gates(model, head_mask=head_mask):
        with torch.no_grad():
            before = model(**inputs).logits
        kernel = model.config._attn_implementation
        maps = attention_maps(model, batch)
        with torch.no_grad():
            after = model(**inputs).logits
        hidden = layer_inputs(model, batch)
    assert model.config._attn_implementation == kernel and not model.training
    torch.testing.assert_close(before, after)
    ungated = attention_maps(model, batch)
    for b, n in enumerate(lengths(batch)):
        np.testing.assert_allclose(maps[b].sum(-1), 1.0, atol=1e-5)      # gated heads keep their maps
        np.testing.assert_allclose(maps[b][0], ungated[b][0], atol=1e-6)  # layer 0 sees the same input
        for h in range(HEADS):                                            # layer 1 sees the gated input
            np.testing.assert_allclose(maps[b][1, h], direct_probs(model, hidden[1][b], 1, h, n).numpy(), atol=1e-5)
    assert not np.allclose(maps[0][1], ungated[0][1], atol=1e-4)


def test_training_mode_restored_and_no_dropout(model, batch):
    model.train()
    first, second = attention_maps(model, batch), attention_maps(model, batch)
    assert model.training
    for a, b in zip(first, second):
        np.testing.assert_array_equal(a, b)


def test_example_maps_batches_in_order(model):
    enc = tiny_encoded(n=5, seed=3)
    maps = example_maps(model, enc, normed=True, batch_size=2)
    assert [m.shape[-1] for m in maps] == [len(ids) for ids in enc.input_ids]
    for i in range(5):
        alone = attention_maps(model, collate(enc, [i]), normed=True)[0]
        np.testing.assert_allclose(maps[i], alone, rtol=1e-4, atol=1e-6)
