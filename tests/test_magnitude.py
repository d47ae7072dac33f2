"""Magnitude pruning: the prunable sets, the 10%-of-remaining steps, masks held in training, the search."""
import copy

import numpy as np
import pytest
import torch
from transformers import BertConfig, BertForSequenceClassification

from conftest import tiny_encoded, tiny_model
from lotterylib.core.rules import Rules
from lotterylib.core.tasks import get_task
from lotterylib.core.training import TrainConfig, evaluate, fine_tune
from lotterylib.pruning import magnitude as mg, masks as mk
from lotterylib.pruning.search import Scored


def bert_base_on_meta() -> BertForSequenceClassification:
    with torch.device("meta"):
        return BertForSequenceClassification(BertConfig())


AUTHORS = Rules.from_setting("authors")


def count(model, compat):
    return sum(getattr(module, p).numel() for _, module, p in mg.prunable_parameters(model, Rules.from_setting(compat)))


def remaining_after(total: int, steps: int) -> int:
    """torch's rule: each step prunes round(0.1 x survivors)."""
    for _ in range(steps):
        total -= round(0.1 * total)
    return total


def random_masks(model, rules=Rules(), keep=0.6, seed=0):
    g = torch.Generator().manual_seed(seed)
    return {name: torch.rand(getattr(m, p).shape, generator=g) < keep
            for name, m, p in mg.prunable_parameters(model, rules)}


def test_bert_base_prunable_counts():
    model = bert_base_on_meta()
    assert count(model, "paper") == 84_934_656 == 12 * (4 * 768 * 768 + 2 * 768 * 3072)
    assert count(model, "authors") == 85_008_384 == 84_934_656 + 12 * (4 * 768 + 3072)
    names = {name for name, _, _ in mg.prunable_parameters(model, AUTHORS)}
    assert "bert.encoder.layer.11.attention.output.dense.bias" in names
    assert "bert.encoder.layer.0.intermediate.dense.bias" in names
    assert "bert.encoder.layer.0.output.dense.bias" not in names
    assert not any(k in n for n in names for k in ("embeddings", "LayerNorm", "pooler", "classifier"))
    assert all(n.endswith(".weight") for n, _, _ in mg.prunable_parameters(model))
    only = Rules(prune_biases=True)                   # this quirk alone switches the prunable set
    assert [n for n, _, _ in mg.prunable_parameters(model, only)] == [n for n, _, _ in
                                                                      mg.prunable_parameters(model, AUTHORS)]
    everything_else = Rules(**{q: q != "prune_biases" for q in Rules.quirks()})
    assert [n for n, _, _ in mg.prunable_parameters(model, everything_else)] == [
        n for n, _, _ in mg.prunable_parameters(model)]


def test_each_step_prunes_ten_percent_of_the_remaining_by_global_magnitude():
    model = tiny_model()
    dense = mg.prunable_weights(model)
    total = sum(w.numel() for w in dense.values())
    previous = mg.full_masks(model)
    for k in range(1, 6):
        masks = mg.magnitude_step(model)
        assert mk.kept_count(masks) == remaining_after(total, k)
        assert mk.sparsity(masks) == pytest.approx(1 - 0.9 ** k, abs=1 / total)
        assert all(not (m & ~previous[n]).any() for n, m in masks.items())  # pruned weights stay pruned
        previous = masks
    kept = torch.cat([dense[n][m].abs() for n, m in masks.items()])
    pruned = torch.cat([dense[n][~m].abs() for n, m in masks.items()])
    assert pruned.max() <= kept.min()  # global ranking over all layers, not per tensor
    assert len({round(float(1 - m.float().mean()), 3) for m in masks.values()}) > 1


def test_masked_weights_are_zero_get_no_gradient_and_stay_zero_in_training():
    model = tiny_model(seed=1)
    masks = random_masks(model)
    mg.apply_weight_masks(model, masks)
    before = mg.prunable_weights(model)
    batch = tiny_encoded(8)
    out = model(input_ids=torch.tensor([batch.input_ids[0]]))
    out.logits.sum().backward()
    q = model.bert.encoder.layer[0].attention.self.query
    assert torch.all(q.weight_orig.grad[~masks["bert.encoder.layer.0.attention.self.query.weight"]] == 0)
    model.zero_grad()
    fine_tune(model, get_task("RTE"), tiny_encoded(24), TrainConfig(learning_rate=1e-2, batch_size=8, epochs=1),
              seed=0, progress=False)
    after = mg.prunable_weights(model)
    for name, module, param in mg.prunable_parameters(model):
        mask = masks[name]
        assert torch.all(getattr(module, param)[~mask] == 0), name
        assert torch.equal(after[name][~mask], before[name][~mask]), name
        assert not torch.equal(after[name][mask], before[name][mask]), name  # the rest trained
    assert all(torch.equal(m, masks[n]) for n, m in mg.current_masks(model).items())


def test_apply_replaces_masks_and_checks_names_and_shapes():
    model = tiny_model()
    mg.apply_weight_masks(model, random_masks(model, seed=1))
    second = random_masks(model, seed=2)
    mg.apply_weight_masks(model, second)
    assert set(mg.current_masks(model)) == set(second)
    assert all(torch.equal(m, second[n]) for n, m in mg.current_masks(model).items())
    with pytest.raises(ValueError, match="other compat"):
        mg.apply_weight_masks(model, second, rules=AUTHORS)
    bad = dict(second)
    name = next(iter(bad))
    bad[name] = bad[name][:1]
    with pytest.raises(ValueError, match="shape"):
        mg.apply_weight_masks(model, bad)


def test_remove_weight_masks_permanent_or_restored():
    reference = tiny_model()
    dense = {k: v.clone() for k, v in reference.state_dict().items()}
    masks = random_masks(reference, rules=AUTHORS)
    for permanent in (True, False):
        model = copy.deepcopy(reference)
        mg.apply_weight_masks(model, masks, rules=AUTHORS)
        mg.remove_weight_masks(model, permanent=permanent)
        assert mg.current_masks(model) == {}
        state = model.state_dict()
        assert set(state) == set(dense)
        for name, m in masks.items():
            expected = dense[name] * m if permanent else dense[name]
            assert torch.equal(state[name], expected), name


def stub_scorer(passing_steps: int):
    calls = []

    def scorer(masks=None) -> Scored:
        calls.append(1)
        return Scored(1.0 if len(calls) <= passing_steps else 0.5)
    return scorer


@pytest.mark.parametrize("passing", [0, 3])
def test_search_reverts_the_failing_step(passing):
    model = tiny_model()
    reference = copy.deepcopy(model)
    for _ in range(passing):
        expected = mg.magnitude_step(reference)
    result = mg.magnitude_search(model, stub_scorer(passing), full_score=1.0, progress=False)
    assert [s.accepted for s in result.steps[1:]] == [True] * passing + [False]
    assert result.kept_steps == passing and result.score == 1.0
    total = mk.total_count(result.masks)
    assert [mk.sparsity(s.masks) for s in result.steps[1:]] == pytest.approx(
        [1 - remaining_after(total, k) / total for k in range(1, passing + 2)])
    if passing == 0:
        assert mk.kept_count(result.masks) == total
    else:
        assert all(torch.equal(m, expected[n]) for n, m in result.masks.items())
    assert all(torch.equal(m, result.masks[n]) for n, m in mg.current_masks(model).items())  # model at result
    assert list(result.table().columns) == ["step", "sparsity", "score", "accepted"]


def test_authors_search_keeps_the_nine_step_mask_when_all_ten_pass():
    model = tiny_model()
    reference = copy.deepcopy(model)
    for _ in range(9):
        nine = mg.magnitude_step(reference, AUTHORS)
    result = mg.magnitude_search(model, lambda masks: Scored(1.0), full_score=1.0, rules=AUTHORS, progress=False)
    assert len(result.steps[1:]) == 10 and all(s.accepted for s in result.steps)
    assert result.kept_steps == 9
    assert all(torch.equal(m, nine[n]) for n, m in result.masks.items())
    total = mk.total_count(result.masks)
    assert result.sparsity == 1 - remaining_after(total, 9) / total == pytest.approx(0.6126, abs=1e-3)


def test_authors_search_failing_before_the_limit_and_paper_max_steps():
    model = tiny_model()
    result = mg.magnitude_search(model, stub_scorer(4), full_score=1.0, rules=AUTHORS, progress=False)
    assert result.kept_steps == 4 and len(result.steps[1:]) == 5
    model = tiny_model()
    result = mg.magnitude_search(model, lambda masks: Scored(1.0), full_score=1.0, max_steps=3, progress=False)
    assert result.kept_steps == 3 and len(result.steps[1:]) == 3


def test_paper_search_stops_when_nothing_is_left_to_prune():
    model = tiny_model(layers=1, heads=2)
    result = mg.magnitude_search(model, lambda masks: Scored(1.0), full_score=1.0, progress=False)
    assert all(s.accepted for s in result.steps) and result.kept_steps == len(result.steps[1:])
    kept = mk.kept_count(result.masks)
    assert 0 < kept <= 5 and round(0.1 * kept) == 0  # a further step would prune nothing (round(0.5) = 0)


def test_search_with_the_real_scorer():
    model = tiny_model()
    task, dev = get_task("RTE"), tiny_encoded(16, seed=3)
    scorer = mg.make_scorer(model, task, dev, batch_size=8)
    full = scorer().score
    assert full == evaluate(model, task, dev, progress=False).metrics["stop_score"]
    result = mg.magnitude_search(model, scorer, full_score=full, threshold=0.0, max_steps=2, progress=False)
    assert result.kept_steps == 2
    assert result.score == evaluate(model, task, dev, progress=False).metrics["stop_score"]


@pytest.mark.parametrize("compat", ["paper", "authors"])
def test_survival_fractions_by_hand(compat):
    model = tiny_model()  # 3 layers, 4 heads of size 8, d = 32, MLP 37
    masks = mg.full_masks(model, Rules.from_setting(compat))
    pre = "bert.encoder.layer"
    masks[f"{pre}.0.attention.self.query.weight"][0:8] = False                # head 0: all its Q rows
    masks[f"{pre}.0.attention.self.key.weight"][9, 3] = False                 # head 1: one K entry
    masks[f"{pre}.0.attention.output.dense.weight"][:, 16] = False            # head 2: one W_O column
    masks[f"{pre}.2.attention.self.value.weight"][31, :5] = False             # layer 2, head 3: 5 V entries
    masks[f"{pre}.1.intermediate.dense.weight"][0, :10] = False               # MLP 1: 10 weights
    masks[f"{pre}.1.output.dense.weight"][3, :4] = False                      # MLP 1: 4 more
    if compat == "authors":
        masks[f"{pre}.0.attention.self.query.bias"][25] = False               # head 3
        masks[f"{pre}.0.attention.output.dense.bias"][:] = False              # belongs to no head
        masks[f"{pre}.2.intermediate.dense.bias"][:2] = False                 # MLP 2
    per_head = 3 * 8 * 32 + 32 * 8 + (3 * 8 if compat == "authors" else 0)
    per_mlp = 2 * 32 * 37 + (37 if compat == "authors" else 0)
    head, mlp = mg.survival_fractions(masks, 3, 4)
    expected_head = np.ones((3, 4))
    expected_head[0] = [(per_head - 256) / per_head, (per_head - 1) / per_head, (per_head - 32) / per_head,
                        (per_head - (compat == "authors")) / per_head]
    expected_head[2, 3] = (per_head - 5) / per_head
    expected_mlp = np.array([1, (per_mlp - 14) / per_mlp, (per_mlp - 2 * (compat == "authors")) / per_mlp])
    np.testing.assert_allclose(head, expected_head)
    np.testing.assert_allclose(mlp, expected_mlp)
    mg.apply_weight_masks(model, masks, Rules.from_setting(compat))
    for got, want in zip(mg.survival_fractions(model, 3, 4), (head, mlp)):
        np.testing.assert_array_equal(got, want)
    with pytest.raises(ValueError, match="no weight masks"):
        mg.survival_fractions(tiny_model(), 3, 4)


def test_save_and_load_masks(tmp_path):
    model = tiny_model()
    masks = random_masks(model, rules=AUTHORS)
    path = mk.save_weight_masks(tmp_path / "sub" / "masks", masks)
    assert path.name == "masks.npz" and path.is_file()
    loaded = mk.load_weight_masks(path)
    assert list(loaded) == list(masks)
    assert all(loaded[n].dtype == torch.bool and torch.equal(loaded[n], m) for n, m in masks.items())
    mg.apply_weight_masks(model, loaded, rules=AUTHORS)
