"""Fine-tuning: determinism, the schedule, masks held during training, importance scores."""
import numpy as np
import pytest
import torch

from conftest import tiny_encoded, tiny_model
from lotterylib import experiment
from lotterylib.gates import Gates
from lotterylib.tasks import get_task
from lotterylib.training import TrainConfig, evaluate, fine_tune

CFG = TrainConfig(learning_rate=1e-3, batch_size=8, epochs=2)


def trained(seed, head_mask=None, mlp_mask=None, data_seed=0):
    torch.manual_seed(seed)  # the model draws its init from the seed, as `experiment.build_model` does
    model = tiny_model(seed=seed)
    gates = Gates(model, head_mask, mlp_mask)
    losses = fine_tune(model, get_task("RTE"), tiny_encoded(24, seed=data_seed), CFG, seed, progress=False)
    return model, gates, losses


def test_same_seed_gives_bit_identical_weights_and_scores():
    (a, _, la), (b, _, lb), (c, _, lc) = trained(7), trained(7), trained(8)
    for (name, pa), pb in zip(a.state_dict().items(), b.state_dict().values()):
        assert torch.equal(pa, pb), name
    assert la == lb and la != lc
    dev = tiny_encoded(16, seed=5)
    ra, rb = evaluate(a, get_task("RTE"), dev, progress=False), evaluate(b, get_task("RTE"), dev, progress=False)
    assert ra.metrics == rb.metrics and np.array_equal(ra.preds, rb.preds)


def test_step_count_and_linear_decay_to_zero():
    model = tiny_model()
    seen = []
    orig = torch.optim.AdamW.step

    def spy(self, *a, **k):
        seen.append(self.param_groups[0]["lr"])
        return orig(self, *a, **k)

    torch.optim.AdamW.step = spy
    try:
        losses = fine_tune(model, get_task("RTE"), tiny_encoded(20), TrainConfig(learning_rate=1e-3, batch_size=8,
                                                                                 epochs=2), 0, progress=False)
    finally:
        torch.optim.AdamW.step = orig
    total = 2 * 3  # ceil(20 / 8) steps per epoch
    assert len(losses) == total
    assert seen == pytest.approx([1e-3 * (1 - s / total) for s in range(total)])


def test_gated_heads_and_mlps_stay_off_during_training():
    head = np.ones((3, 4))
    head[0, 1] = head[2, :] = 0
    mlp = np.array([1.0, 0.0, 1.0])
    torch.manual_seed(0)
    before = {k: v.clone() for k, v in tiny_model(seed=3).state_dict().items()}
    model, _, _ = trained(3, head, mlp)
    after = model.state_dict()
    d = 8
    q = "bert.encoder.layer.{}.attention.self.query.weight"
    assert torch.equal(before[q.format(0)][d:2 * d], after[q.format(0)][d:2 * d])      # pruned head: frozen
    assert not torch.equal(before[q.format(0)][:d], after[q.format(0)][:d])            # kept head: trained
    assert torch.equal(before[q.format(2)], after[q.format(2)])
    wo = "bert.encoder.layer.0.attention.output.dense.weight"
    assert torch.equal(before[wo][:, d:2 * d], after[wo][:, d:2 * d])
    for name in ("intermediate.dense.weight", "output.dense.weight", "output.dense.bias"):
        key = f"bert.encoder.layer.1.{name}"
        assert torch.equal(before[key], after[key]), key


def test_build_model_seeds_the_classifier_init():
    task = get_task("MRPC")
    a, b, c = (experiment.build_model("minilm-l6", task, s) for s in (1, 1, 2))
    assert torch.equal(a.classifier.weight, b.classifier.weight)
    assert not torch.equal(a.classifier.weight, c.classifier.weight)
    assert torch.equal(a.bert.encoder.layer[0].output.dense.weight, c.bert.encoder.layer[0].output.dense.weight)


def test_evaluate_preserves_example_order_and_regression_outputs():
    model = tiny_model(num_labels=1)
    dev = tiny_encoded(19, num_labels=1)
    res = evaluate(model, get_task("STS-B"), dev, batch_size=4, progress=False)
    with torch.no_grad():
        one = [model(input_ids=torch.tensor([ids])).logits.item() for ids in dev.input_ids]
    np.testing.assert_allclose(res.preds, one, atol=1e-5)
    assert set(res.metrics) >= {"pearson", "spearman", "score"}
