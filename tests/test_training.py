"""Fine-tuning: determinism, the schedule, masks held during training, importance scores."""
import re

import numpy as np
import pytest
import torch

from conftest import tiny_encoded, tiny_model
from lotterylib.core import finetuning, training
from lotterylib.core.data import collate
from lotterylib.core.gates import Gates
from lotterylib.core.tasks import get_task
from lotterylib.core.training import TrainConfig, evaluate, fine_tune

CFG = TrainConfig(learning_rate=1e-3, batch_size=8, epochs=2)


def trained(seed, head_mask=None, mlp_mask=None, data_seed=0):
    torch.manual_seed(seed)  # the model draws its init from the seed, as `finetuning.build_model` does
    model = tiny_model(seed=seed)
    gates = Gates(model, head_mask, mlp_mask)
    losses = fine_tune(model, get_task("RTE"), tiny_encoded(24, seed=data_seed), CFG, seed, progress=False)
    return model, gates, losses


def test_same_seed_gives_bit_identical_weights_and_scores():
    (a, _, la), (b, _, lb), (_, _, lc) = trained(7), trained(7), trained(8)
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
    a, b, c = (finetuning.build_model("minilm-l6", task, s) for s in (1, 1, 2))
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


def test_every_steps_loss_is_recorded_as_the_loop_computed_it(monkeypatch):
    from lotterylib.core import training

    computed = []
    real = training.task_loss

    def spy(task, logits, labels):
        loss = real(task, logits, labels)
        computed.append(loss.item())
        return loss

    monkeypatch.setattr(training, "task_loss", spy)
    torch.manual_seed(0)
    losses = fine_tune(tiny_model(), get_task("RTE"), tiny_encoded(20), CFG, 0, progress=False)
    assert len(losses) == 2 * 3  # 2 epochs of ceil(20 / 8) steps
    assert losses == computed and all(np.isfinite(losses))


def test_one_log_line_per_epoch_with_loss_and_throughput(capsys):
    losses = fine_tune(tiny_model(), get_task("RTE"), tiny_encoded(20), CFG, 0, progress=False, desc="tiny")
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2
    for epoch, line in enumerate(lines, start=1):
        m = re.fullmatch(rf"tiny: epoch {epoch}/2 step {3 * epoch}/6 loss (\S+) (\S+) examples/s elapsed .+ ETA .+",
                         line)
        assert m, line
        assert float(m[1]) == pytest.approx(np.mean(losses[3 * (epoch - 1):3 * epoch]), abs=5e-5)
        assert float(m[2]) > 0
    fine_tune(tiny_model(), get_task("RTE"), tiny_encoded(20), CFG, 0, progress=False, log=False)
    assert capsys.readouterr().out == ""


def test_warmup_then_linear_decay():
    assert [training.lr_factor(s, 10, 0) for s in range(10)] == [1.0 - s / 10 for s in range(10)]  # the paper's
    assert [training.lr_factor(s, 6, 2) for s in range(6)] == pytest.approx([0, 0.5, 1, 0.75, 0.5, 0.25])
    with pytest.raises(ValueError, match="warmup_ratio"):
        fine_tune(tiny_model(), get_task("RTE"), tiny_encoded(8), TrainConfig(warmup_ratio=1.0), 0, progress=False)


def test_regression_head_runs_in_fp32_under_bf16_autocast():
    model, batch = tiny_model(num_labels=1), collate(tiny_encoded(6, num_labels=1), list(range(6)))
    pooled = []
    model.classifier.register_forward_hook(lambda m, inputs, out: pooled.append(inputs[0]))
    regression = training._forward(model, batch, bf16=True, regression=True)
    assert regression.dtype == torch.float32 and pooled[-1].dtype == torch.bfloat16
    # by hand: the fp32 linear map of the bf16 pooled output, not rounded to bf16 after
    expected = pooled[-1].float() @ model.classifier.weight.T + model.classifier.bias
    assert torch.equal(regression, expected)
    assert training._forward(model, batch, bf16=True, regression=False).dtype == torch.bfloat16  # classifiers: as before
    assert "forward" not in vars(model.classifier)  # the head is itself again afterwards
    # without autocast nothing changes: the fp32 run computes what it did before the fix
    assert torch.equal(training._forward(model, batch, False, True), training._forward(model, batch, False, False))
