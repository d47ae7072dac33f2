"""Physically removed heads and MLPs compute what gating them computes; parameter counts from the arithmetic."""
import numpy as np
import pytest
import torch

from conftest import padded_batch, tiny_encoded, tiny_model as zero_bias_model
from lotterylib.core.data import collate
from lotterylib.core.finetuning import finetune_model
from lotterylib.core.gates import Gates
from lotterylib.core.physical import NoHeads, SkipMLP, count_parameters, expected_parameter_count, prune_physically
from lotterylib.core.tasks import get_task
from lotterylib.core.training import TrainConfig


def tiny_model(num_labels=2, seed=0):
    """A tiny BERT whose biases and LayerNorms are random too (the init sets them to 0 and 1, which would
    hide a dropped bias)."""
    model = zero_bias_model(num_labels=num_labels, seed=seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("bias") or "LayerNorm" in name:
                p.add_(0.2 * torch.randn_like(p))
    return model


def random_masks(seed, layers=3, heads=4):
    rng = np.random.default_rng(seed)
    return (rng.uniform(size=(layers, heads)) > 0.5).astype(float), (rng.uniform(size=layers) > 0.4).astype(float)


def layer_without_heads():
    head, mlp = random_masks(10)
    head[1] = 0
    return head, mlp


def no_mlps():
    return random_masks(11)[0], np.zeros(3)


def nothing_left():
    return np.zeros((3, 4)), np.zeros(3)


MASKS = {**{f"random{s}": (lambda s=s: random_masks(s)) for s in range(4)},
         "layer_without_heads": layer_without_heads, "no_mlps": no_mlps, "nothing_left": nothing_left}


@pytest.fixture(scope="module")
def batch():
    ids, mask = padded_batch([11, 7, 11, 3], 11)
    return {"input_ids": ids, "attention_mask": mask, "token_type_ids": (torch.arange(11) > 5).long().expand(4, -1)}


def gated_logits(model, head, mlp, batch):
    with Gates(model, head, mlp), torch.inference_mode():
        return model(**batch).logits


@pytest.mark.parametrize("name", list(MASKS))
def test_pruned_model_equals_gated_model(name, batch):
    head, mlp = MASKS[name]()
    model = tiny_model(seed=2)
    pruned = prune_physically(model, head, mlp)
    with torch.inference_mode():
        got = pruned(**batch).logits
    torch.testing.assert_close(got, gated_logits(model, head, mlp, batch), atol=1e-5, rtol=1e-5)
    assert count_parameters(pruned) == expected_parameter_count(model.config, head, mlp, num_labels=2)
    assert count_parameters(pruned) < count_parameters(model)


def test_structure_of_the_pruned_layers():
    head, mlp = layer_without_heads()
    model = tiny_model()
    pruned = prune_physically(model, head, mlp)
    for l, layer in enumerate(pruned.bert.encoder.layer):
        k = int(head[l].sum())
        assert layer.attention.output.dense.weight.shape == (32, 8 * k)
        assert layer.attention.output.dense.bias is not None            # W_O's bias is kept, as gating keeps it
        if k:
            assert layer.attention.self.query.weight.shape == (8 * k, 32)
            assert layer.attention.self.num_attention_heads == k
        else:
            assert isinstance(layer.attention.self, NoHeads)
        assert isinstance(layer.output, SkipMLP) != bool(mlp[l])
    assert model.bert.encoder.layer[1].attention.self.query.weight.shape == (32, 32)  # the original is untouched


def test_eager_attention_and_regression_head(batch):
    head, mlp = layer_without_heads()
    model = tiny_model(num_labels=1, seed=5)
    model.set_attn_implementation("eager")
    pruned = prune_physically(model, head, mlp)
    with torch.inference_mode():
        got = pruned(**batch).logits
    torch.testing.assert_close(got, gated_logits(model, head, mlp, batch), atol=1e-5, rtol=1e-5)
    assert count_parameters(pruned) == expected_parameter_count(model.config, head, mlp, num_labels=1)


def test_all_ones_mask_gives_the_same_model(batch):
    model = tiny_model(seed=3)
    pruned = prune_physically(model, np.ones((3, 4)), np.ones(3))
    assert count_parameters(pruned) == count_parameters(model) == expected_parameter_count(model.config, None, None, 2)
    original = model.state_dict()
    assert pruned.state_dict().keys() == original.keys()
    for key, value in pruned.state_dict().items():
        assert torch.equal(value, original[key]), key
    with torch.inference_mode():
        torch.testing.assert_close(pruned(**batch).logits, model(**batch).logits, atol=0, rtol=0)


def test_pruning_a_gated_model_drops_the_gate_hooks(batch):
    head, mlp = random_masks(1)
    model = tiny_model(seed=6)
    with Gates(model, head, mlp), torch.inference_mode():
        expected = model(**batch).logits
        pruned = prune_physically(model, head, mlp)   # copied while the hooks are attached
    with torch.inference_mode():
        torch.testing.assert_close(pruned(**batch).logits, expected, atol=1e-5, rtol=1e-5)


def test_gate_values_other_than_0_and_1_are_refused():
    with pytest.raises(ValueError, match="0/1"):
        prune_physically(tiny_model(), np.full((3, 4), 0.5), np.ones(3))
    with pytest.raises(ValueError, match="layers"):
        prune_physically(tiny_model(), np.ones((4, 3)), np.ones(3))


def test_physically_pruned_finetuning_equals_gated_finetuning(tmp_path):
    """Re-fine-tuning the physically pruned model gives the gated run's losses and logits (no dropout: the
    fewer heads would draw other dropout masks). Layer 1 loses every head and its MLP is removed too."""
    source = tiny_model(seed=5)
    source.config.hidden_dropout_prob = source.config.attention_probs_dropout_prob = 0.0
    source.save_pretrained(tmp_path)
    head = np.array([[1, 0, 1, 0], [0, 0, 0, 0], [1, 1, 1, 0]])
    mlp = np.array([1, 0, 1])
    task, train, dev = get_task("RTE"), tiny_encoded(20, seed=1), tiny_encoded(12, seed=2)
    cfg = TrainConfig(learning_rate=1e-3, batch_size=4, epochs=1.0, bf16=False)
    kw = dict(head_mask=head, mlp_mask=mlp, progress=False)
    gated, gates, gated_losses = finetune_model(str(tmp_path), task, train, cfg, seed=7, **kw)
    pruned, no_gates, pruned_losses = finetune_model(str(tmp_path), task, train, cfg, seed=7, physical=True, **kw)
    full, _, full_losses = finetune_model(str(tmp_path), task, train, cfg, seed=7, progress=False)
    assert no_gates is None and len(gated_losses) == 5
    np.testing.assert_allclose(pruned_losses, gated_losses, atol=1e-4)
    assert abs(full_losses[-1] - gated_losses[-1]) > 1e-3          # the masks matter: not a vacuous match
    batch = collate(dev, np.arange(len(dev)))
    inputs = {k: v for k, v in batch.items() if k != "labels"}
    with torch.no_grad():
        gated_logits, pruned_logits = gated(**inputs).logits, pruned(**inputs).logits
    torch.testing.assert_close(pruned_logits, gated_logits, atol=1e-4, rtol=0)
    assert isinstance(pruned.bert.encoder.layer[1].attention.self, NoHeads)
    assert count_parameters(pruned) < count_parameters(full)
    with pytest.raises(ValueError, match="before_training .weight masks. needs physical=False"):
        finetune_model(str(tmp_path), task, train, cfg, seed=7, physical=True, before_training=print)
