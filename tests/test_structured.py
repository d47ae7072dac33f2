"""s-pruning: the schedule with a stub scorer, normalisation, mask files, and importance against autograd."""
import numpy as np
import pytest
import torch
from torch.nn import functional as F

from conftest import tiny_encoded, tiny_model
from lotterylib.core.data import batch_indices, collate
from lotterylib.core.gates import Gates
from lotterylib.core.rules import Rules
from lotterylib.core.tasks import get_task
from lotterylib.core.training import evaluate
from lotterylib.pruning.masks import (HeadMasks, load_head_mask_tree, load_head_masks, load_search_history,
                                      save_head_masks)
from lotterylib.pruning.structured import (ScoredMasks, make_scorer, normalise_importance, save_search,
                                           structured_search)


class Stub:
    """score = 1 - head_cost * heads pruned - mlp_cost * MLPs pruned; fresh random importance at every call,
    0 for pruned elements (the lowest possible, so only the masks can keep them from being chosen again)."""

    def __init__(self, head_cost=0.011, mlp_cost=0.021, seed=0):
        self.head_cost, self.mlp_cost = head_cost, mlp_cost
        self.rng = np.random.default_rng(seed)
        self.calls = []

    def __call__(self, masks):
        head_mask, mlp_mask = masks
        self.calls.append((head_mask.copy(), mlp_mask.copy()))
        score = 1 - self.head_cost * (head_mask == 0).sum() - self.mlp_cost * (mlp_mask == 0).sum()
        return ScoredMasks(score, self.rng.uniform(0.1, 1, head_mask.shape) * head_mask,
                           self.rng.uniform(0.1, 1, mlp_mask.shape) * mlp_mask)


def always_passes(masks):
    head_mask, mlp_mask = masks
    rng = np.random.default_rng(int(head_mask.sum() * 100 + mlp_mask.sum()))
    return ScoredMasks(1.0, rng.uniform(size=head_mask.shape), rng.uniform(size=mlp_mask.shape))


def pruned_counts(result):
    return [(int((s.masks.head == 0).sum()), int((s.masks.mlp == 0).sum())) for s in result.steps]


def check_chain(result):
    """Every step removes the least important survivors of the last accepted step, by its normalised importance."""
    current = result.steps[0]
    for step in result.steps[1:]:
        for mask, prev, imp in ((step.masks.head, current.masks.head, current.scored.head_importance),
                                (step.masks.mlp, current.masks.mlp, current.scored.mlp_importance)):
            removed = (prev == 1) & (mask == 0)
            assert not ((prev == 0) & (mask == 1)).any()                  # nothing comes back
            if removed.any():
                survivors = imp[(prev == 1) & ~removed]
                assert survivors.size == 0 or imp[removed].max() <= survivors.min()
        if step.accepted:
            current = step
    np.testing.assert_array_equal(result.masks.head, current.masks.head)
    np.testing.assert_array_equal(result.masks.mlp, current.masks.mlp)


def test_normalise_importance_against_hand_computed_numbers():
    head, mlp = normalise_importance(np.array([[3.0, 4.0], [6.0, 8.0], [1.0, 1.0]]), np.array([2.0, 4.0, 6.0]))
    # rows / l2 norm: [.6, .8], [.6, .8], [.7071, .7071]; then min-max over the model (min .6, max .8)
    r = (np.sqrt(0.5) - 0.6) / 0.2
    np.testing.assert_allclose(head, [[0, 1], [0, 1], [r, r]])
    np.testing.assert_allclose(mlp, [0, 0.5, 1])
    head, mlp = normalise_importance(np.array([[0.0, 0.0], [1.0, 0.0]]), np.array([3.0, 3.0]))
    np.testing.assert_array_equal(head, [[0, 0], [1, 0]])     # a zero row stays zero
    np.testing.assert_array_equal(mlp, [0, 0])                # a constant array: no NaN


def test_joint_schedule_phases_step_sizes_and_revert():
    stub = Stub()
    res = structured_search(stub, 1.0, num_layers=4, num_heads=10, progress=False)   # n = 4, phase 2: 2
    assert [s.phase for s in res.steps] == ["full", "joint", "joint", "heads", "heads", "mlps"]
    assert [s.accepted for s in res.steps] == [True, True, False, True, False, False]
    # score = 1 - .011 h - .021 m: (4, 1) .935 ok; (8, 2) .870 fails; from (4, 1): (6, 1) .913 ok, (8, 1) .891
    # fails; from (6, 1): (6, 2) .892 fails
    assert pruned_counts(res) == [(0, 0), (4, 1), (8, 2), (6, 1), (8, 1), (6, 2)]
    assert (int((res.masks.head == 0).sum()), int((res.masks.mlp == 0).sum())) == (6, 1)
    assert res.score == pytest.approx(1 - 6 * 0.011 - 0.021) and not res.pruned_everything
    assert len(stub.calls) == len(res.steps)
    np.testing.assert_array_equal(stub.calls[0][0], np.ones((4, 10)))
    for (head, mlp), step in zip(stub.calls, res.steps):
        np.testing.assert_array_equal(head, step.masks.head)
        np.testing.assert_array_equal(mlp, step.masks.mlp)
    check_chain(res)


def test_recorded_importance_is_raw_and_normalised():
    res = structured_search(Stub(), 1.0, 4, 10, progress=False)
    for s in res.steps:
        h, m = normalise_importance(s.scored.raw_head_importance, s.scored.raw_mlp_importance)
        np.testing.assert_array_equal(h, s.scored.head_importance)
        np.testing.assert_array_equal(m, s.scored.mlp_importance)
    table = res.table()
    assert list(table.heads_kept) == [40, 36, 32, 34, 32, 34] and list(table.mlps_kept) == [4, 3, 2, 3, 3, 2]


def test_next_phase_starts_from_the_last_passing_masks_and_their_importance():
    res = structured_search(Stub(seed=3), 1.0, 4, 10, progress=False)
    passing, failing, heads_step = res.steps[1], res.steps[2], res.steps[3]
    removed = (passing.masks.head == 1) & (heads_step.masks.head == 0)
    alive = np.flatnonzero(passing.masks.head.ravel())
    expected = alive[np.argsort(passing.scored.head_importance.ravel()[alive], kind="stable")[:2]]
    assert sorted(np.flatnonzero(removed.ravel())) == sorted(expected)
    np.testing.assert_array_equal(heads_step.masks.mlp, passing.masks.mlp)   # the failing MLP removal is undone
    assert not np.array_equal(failing.scored.head_importance, passing.scored.head_importance)


def _first_step_removals(res, phase):
    """(the failed step before `phase`, the last passing masks, what `phase`'s first step removed)."""
    first = next(i for i, s in enumerate(res.steps) if s.phase == phase)
    passing = [s for s in res.steps[:first] if s.accepted][-1]
    step = res.steps[first]
    return res.steps[first - 1], passing, ((passing.masks.head == 1) & (step.masks.head == 0),
                                           (passing.masks.mlp == 1) & (step.masks.mlp == 0))


def _lowest(mask, importance, k):
    alive = np.flatnonzero(mask.ravel())
    return sorted(alive[np.argsort(importance.ravel()[alive], kind="stable")[:k]])


@pytest.mark.parametrize("compat", ["paper", "authors"])
def test_a_phase_s_first_step_ranks_by_the_failing_importance_only_in_authors_compat(compat):
    # stub costs: joint (4 heads + 1 MLP) .935 ok, (8 + 2) .870 fails; heads (2 per step) from (4, 1): (6, 1)
    # .913 ok, (8, 1) .891 fails; MLPs from (6, 1): (6, 2) .892 fails
    res = structured_search(Stub(seed=3), 1.0, 4, 10, progress=False,
                            rules=Rules(phase_starts_from_failed_step=compat == "authors"))
    assert [(s.phase, s.accepted) for s in res.steps] == [("full", True), ("joint", True), ("joint", False),
                                                         ("heads", True), ("heads", False), ("mlps", False)]
    differs = []
    for phase, kind, k in (("heads", 0, 2), ("mlps", 1, 1)):
        failing, passing, removed = _first_step_removals(res, phase)
        assert not failing.accepted and passing.accepted
        masks = (passing.masks.head, passing.masks.mlp)
        imps = {"authors": (failing.scored.head_importance, failing.scored.mlp_importance),
                "paper": (passing.scored.head_importance, passing.scored.mlp_importance)}
        assert sorted(np.flatnonzero(removed[kind].ravel())) == _lowest(masks[kind], imps[compat][kind], k)
        assert not removed[1 - kind].any()
        differs.append(_lowest(masks[kind], imps["authors"][kind], k) != _lowest(masks[kind], imps["paper"][kind], k))
    assert all(differs)                                   # the stub tells the two rules apart
    # every other quirk switched the other way changes nothing
    others = Rules(**{q: (q == "phase_starts_from_failed_step") == (compat == "authors") for q in Rules.quirks()})
    again = structured_search(Stub(seed=3), 1.0, 4, 10, progress=False, rules=others)
    assert [(s.masks.head.tolist(), s.masks.mlp.tolist()) for s in again.steps] == [
        (s.masks.head.tolist(), s.masks.mlp.tolist()) for s in res.steps]


def test_heads_mode_removes_n_per_step_and_the_rest_at_the_end():
    res = structured_search(always_passes, 0.5, num_layers=3, num_heads=7, mode="heads", progress=False)
    sizes = np.diff([h for h, _ in pruned_counts(res)])
    assert list(sizes) == [2] * 10 + [1]                      # n = int(2.1) = 2; 21 heads
    assert {s.phase for s in res.steps[1:]} == {"heads"}
    assert res.pruned_everything and res.masks.mlp.all()
    check_chain(res)


def test_mlps_mode_one_per_step_until_the_threshold():
    res = structured_search(Stub(mlp_cost=0.04), 1.0, 4, 10, mode="mlps", progress=False)
    assert pruned_counts(res) == [(0, 0), (0, 1), (0, 2), (0, 3)]   # .96, .92 ok; .88 fails
    assert [s.accepted for s in res.steps] == [True, True, True, False]
    assert res.masks.head.all() and res.masks.mlp.sum() == 2 and not res.pruned_everything
    check_chain(res)


def test_degenerate_search_prunes_everything_and_is_flagged():
    res = structured_search(always_passes, 0.3, 4, 10, progress=False)
    phases = [s.phase for s in res.steps]
    # joint: 4 steps (16 heads, all 4 MLPs), then heads only, 2 per step, for the other 24; no MLP left
    assert phases == ["full"] + ["joint"] * 4 + ["heads"] * 12
    assert res.pruned_everything and not res.masks.head.any() and not res.masks.mlp.any()
    check_chain(res)


def test_a_failing_first_step_keeps_the_full_model():
    res = structured_search(Stub(head_cost=0.5), 1.0, 4, 10, mode="heads", progress=False)
    assert res.masks.head.all() and res.masks.mlp.all() and [s.accepted for s in res.steps] == [True, False]
    with pytest.raises(ValueError, match="mode"):
        structured_search(Stub(), 1.0, 4, 10, mode="layers", progress=False)


def test_save_load_round_trip_and_the_authors_tree(tmp_path):
    rng = np.random.default_rng(0)
    masks = {(t, s): ((rng.uniform(size=(3, 4)) > 0.5).astype(float), np.array([1.0, 0.0, 1.0]))
             for t in ("RTE", "MRPC") for s in (42, 1337)}
    for (task, seed), (head, mlp) in masks.items():
        save_head_masks(tmp_path / task / f"seed_{seed}", head, mlp)
    assert np.load(tmp_path / "RTE" / "seed_42" / "head_mask.npy").shape == (3, 4)
    assert np.load(tmp_path / "RTE" / "seed_42" / "mlp_mask.npy").shape == (3,)
    tree = load_head_mask_tree(tmp_path)
    assert set(tree) == {"RTE", "MRPC"} and set(tree["RTE"]) == {42, 1337}
    for (task, seed), (head, mlp) in masks.items():
        np.testing.assert_array_equal(tree[task][seed][0], head)
        np.testing.assert_array_equal(tree[task][seed][1], mlp)
    # heads-only runs of the authors saved no mlp_mask.npy: every MLP kept
    (tmp_path / "RTE" / "seed_42" / "mlp_mask.npy").unlink()
    np.testing.assert_array_equal(load_head_masks(tmp_path / "RTE" / "seed_42")[1], np.ones(3))


def test_mask_file_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="head_mask.npy.*seed_<seed>"):
        load_head_masks(tmp_path / "nowhere")
    with pytest.raises(FileNotFoundError, match="seed_<seed>"):
        load_head_mask_tree(tmp_path)
    with pytest.raises(ValueError, match=r"expected \(3,\)"):
        save_head_masks(tmp_path / "x", np.ones((3, 4)), np.ones(4))
    np.save(tmp_path / "head_mask.npy", np.ones(12))
    with pytest.raises(ValueError, match="layers, heads"):
        load_head_masks(tmp_path)
    np.save(tmp_path / "head_mask.npy", np.full((3, 4), 0.5))
    with pytest.raises(ValueError, match="0 and 1"):
        load_head_masks(tmp_path)


def hand_importance(model, task, data, head, mlp, batch_size, zero_grad):
    """sum over batches of |dL/dxi| with loss.backward(); without zeroing, .grad accumulates (authors)."""
    head_imp, mlp_imp = np.zeros(head.shape), np.zeros(mlp.shape)
    with Gates(model, head, mlp) as gates:
        gates.head.requires_grad_(True)
        gates.mlp.requires_grad_(True)
        for idx in batch_indices(data, batch_size, shuffle=False):
            batch = collate(data, idx)
            logits = model(input_ids=batch["input_ids"], token_type_ids=batch["token_type_ids"],
                           attention_mask=batch["attention_mask"]).logits
            F.cross_entropy(logits, batch["labels"]).backward()
            head_imp += gates.head.grad.abs().numpy()
            mlp_imp += gates.mlp.grad.abs().numpy()
            if zero_grad:
                gates.head.grad, gates.mlp.grad = None, None
    model.zero_grad(set_to_none=True)
    return head_imp, mlp_imp


@pytest.fixture
def masked_setup():
    head = np.ones((3, 4))
    head[0, 2] = head[2, 0] = 0
    return tiny_model(seed=4), get_task("RTE"), tiny_encoded(20, seed=1), head, np.array([1.0, 0.0, 1.0])


def test_importance_paper_and_authors_against_plain_autograd(masked_setup):
    model, task, data, head, mlp = masked_setup
    with Gates(model, head, mlp) as gates:
        paper = evaluate(model, task, data, batch_size=6, gates=gates, importance=True, progress=False)
        authors = evaluate(model, task, data, batch_size=6, gates=gates, importance=True, progress=False,
                           rules=Rules(accumulated_gate_gradients=True))
    for res, zero_grad in ((paper, True), (authors, False)):
        h, m = hand_importance(model, task, data, head, mlp, batch_size=6, zero_grad=zero_grad)
        np.testing.assert_allclose(res.head_importance, h, rtol=1e-4, atol=1e-7)
        np.testing.assert_allclose(res.mlp_importance, m, rtol=1e-4, atol=1e-7)
    assert not np.allclose(paper.head_importance, authors.head_importance)
    # authors = sum_t |sum_{s<=t} g_s|, from the per-batch gradients
    grads = []
    with Gates(model, head, mlp) as gates:
        for idx in batch_indices(data, 6, shuffle=False):
            batch = collate(data, idx)
            with gates.track_grad():
                logits = model(**{k: v for k, v in batch.items() if k != "labels"}).logits
                grads.append(torch.autograd.grad(F.cross_entropy(logits, batch["labels"]), gates.head)[0].numpy())
    assert len(grads) == 4
    np.testing.assert_allclose(authors.head_importance, np.abs(np.cumsum(grads, axis=0)).sum(0), rtol=1e-4, atol=1e-7)
    np.testing.assert_allclose(paper.head_importance, np.abs(grads).sum(0), rtol=1e-4, atol=1e-7)


def test_make_scorer_and_a_real_search_on_a_tiny_model(masked_setup):
    model, task, data, head, mlp = masked_setup
    with Gates(model) as gates:
        scorer = make_scorer(model, task, data, gates, batch_size=8)
        scored = scorer(HeadMasks(head, mlp))
        ref = evaluate(model, task, data, batch_size=8, gates=gates, importance=True, progress=False)
        np.testing.assert_array_equal(gates.head.numpy(), head)                  # the scorer set the gates
        assert scored.score == ref.metrics["stop_score"]
        np.testing.assert_allclose(scored.head_importance, ref.head_importance)
        full = scorer(HeadMasks(np.ones((3, 4)), np.ones(3))).score
        res = structured_search(scorer, full, 3, 4, threshold=0.9, progress=False)
    check_chain(res)
    assert all(s.accepted == (s.score >= 0.9 * full) for s in res.steps[1:])
    assert res.score >= 0.9 * full


def test_full_score_defaults_to_the_first_call_and_the_history_round_trips(tmp_path):
    stub = Stub()
    result = structured_search(stub, None, num_layers=3, num_heads=4, progress=False)
    assert result.full_score == 1.0 and result.steps[0].phase == "full"
    assert result.score >= 0.9 and not result.steps[-1].accepted
    save_search(tmp_path, result)
    head, mlp = load_head_masks(tmp_path)
    np.testing.assert_array_equal(head, result.masks.head)
    np.testing.assert_array_equal(mlp, result.masks.mlp)
    history = load_search_history(tmp_path)
    assert history["head_masks"].shape == (len(result.steps), 3, 4) and history["scores"].shape == (len(result.steps),)
    np.testing.assert_allclose(history["head_importance"][2], result.steps[2].scored.head_importance)
    np.testing.assert_array_equal(history["accepted"], [s.accepted for s in result.steps])
    assert (tmp_path / "steps.csv").read_text().splitlines()[0] == "step,phase,heads_kept,mlps_kept,score,accepted"
    with pytest.raises(FileNotFoundError, match=r"importance.npz does not exist: run the s_pruning stage first"):
        load_search_history(tmp_path / "nothing")
