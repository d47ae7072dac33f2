"""The mask types and their files: round trips, shape and file errors, stacking, counts, the committed runs."""
import numpy as np
import pandas as pd
import pytest
import torch

from lotterylib.core.files import PROJECT_ROOT
from lotterylib.pruning import masks as mk


def test_head_masks_round_trip_as_float32_files_and_float64_arrays(tmp_path):
    head, mlp = np.array([[1, 0, 1], [0, 0, 1]]), np.array([1, 0])
    assert mk.save_head_masks(tmp_path / "run", head, mlp) == tmp_path / "run"
    assert np.load(tmp_path / "run" / "head_mask.npy").dtype == np.float32
    assert np.load(tmp_path / "run" / "mlp_mask.npy").dtype == np.float32
    back = mk.load_head_masks(tmp_path / "run")
    assert isinstance(back, mk.HeadMasks) and back.head.dtype == back.mlp.dtype == np.float64
    np.testing.assert_array_equal(back.head, head)
    np.testing.assert_array_equal(back.mlp, mlp)
    assert back.size() == mk.head_masks_size(head, mlp) == (3, 1)
    head_back, mlp_back = back                                    # a HeadMasks is a (head, mlp) pair
    assert head_back is back.head and mlp_back is back.mlp


@pytest.mark.parametrize("head, mlp, message", [
    (np.ones(4), np.ones(4), r"save_head_masks: head mask has shape \(4,\); expected \(layers, heads\)"),
    (np.ones((3, 4)), np.ones(4), r"MLP mask has shape \(4,\); expected \(3,\) to match the head mask's 3 layers"),
    (np.full((2, 2), 0.5), np.ones(2), "the head mask holds values other than 0 and 1"),
    (np.ones((2, 2)), np.array([1, 2]), "the MLP mask holds values other than 0 and 1"),
])
def test_head_masks_of_the_wrong_shape_or_values_name_the_fix_and_write_nothing(tmp_path, head, mlp, message):
    with pytest.raises(ValueError, match=message):
        mk.save_head_masks(tmp_path / "run", head, mlp)
    assert not (tmp_path / "run").exists()


def test_missing_and_corrupt_head_mask_files(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"head_mask.npy is missing\. Expected the layout .*seed_<seed>"):
        mk.load_head_masks(tmp_path)
    np.save(tmp_path / "head_mask.npy", np.ones((2, 3)))
    np.testing.assert_array_equal(mk.load_head_masks(tmp_path).mlp, np.ones(2))   # heads-only run: all MLPs kept
    np.save(tmp_path / "mlp_mask.npy", np.ones(3))
    with pytest.raises(ValueError, match=r"expected \(2,\)"):
        mk.load_head_masks(tmp_path)
    (tmp_path / "mlp_mask.npy").write_bytes(b"not numpy")
    with pytest.raises(ValueError, match="mlp_mask.npy is not a readable .npy file.*Fix: rerun"):
        mk.load_head_masks(tmp_path)


def test_named_head_mask_sets_round_trip_in_order(tmp_path):
    sets = {"good": (np.ones((2, 3)), np.ones(2)), "random (authors)": (np.eye(2, 3), np.array([0.0, 1.0]))}
    back = mk.load_head_mask_sets(mk.save_head_mask_sets(tmp_path / "sub" / "s.npz", sets))
    assert list(back) == list(sets)
    assert sorted(np.load(tmp_path / "sub" / "s.npz").files) == ["good_head", "good_mlp", "random (authors)_head",
                                                                 "random (authors)_mlp"]
    for name, (head, mlp) in sets.items():
        np.testing.assert_array_equal(back[name].head, head)
        np.testing.assert_array_equal(back[name].mlp, mlp)
    with pytest.raises(FileNotFoundError, match="No mask sets at .*Fix: rerun"):
        mk.load_head_mask_sets(tmp_path / "none.npz")


def test_search_history_round_trip_and_a_missing_history_names_the_stage(tmp_path):
    arrays = {"head_masks": np.ones((2, 3, 4)), "scores": np.array([1.0, 0.5]), "accepted": np.array([True, False])}
    mk.save_search_history(tmp_path, pd.DataFrame({"step": [0, 1]}), arrays)
    assert (tmp_path / "steps.csv").read_text().splitlines() == ["step", "0", "1"]
    back = mk.load_search_history(tmp_path)
    assert list(back) == list(arrays) and all(np.array_equal(back[k], v) for k, v in arrays.items())
    with pytest.raises(FileNotFoundError, match=r"run the s_pruning stage"):
        mk.load_search_history(tmp_path / "nothing")


def _tree(rng, shapes):
    return {task: {seed: mk.HeadMasks(rng.integers(0, 2, (layers, 3)).astype(float), rng.integers(0, 2, layers)
                                      .astype(float)) for seed in (2, 1)} for task, layers in shapes.items()}


def test_tree_round_trip_stacking_counts_and_shape(tmp_path):
    tree = _tree(np.random.default_rng(0), {"RTE": 2, "MRPC": 2})
    for task, by_seed in tree.items():
        for seed, pair in by_seed.items():
            mk.save_head_masks(tmp_path / task / f"seed_{seed}" / "s_pruning", *pair)
    (tmp_path / "RTE" / "seed_x" / "s_pruning").mkdir(parents=True)            # not a seed: skipped
    back = mk.load_head_mask_tree(tmp_path, subdir="s_pruning")
    assert list(back) == ["MRPC", "RTE"] and list(back["RTE"]) == [1, 2]
    heads, mlps = mk.stack_seeds(back["RTE"])
    assert heads.shape == (2, 2, 3) and mlps.shape == (2, 2)
    np.testing.assert_array_equal(heads[0], tree["RTE"][1].head)              # seeds in sorted order
    counts = mk.tree_kept_counts(back)
    assert counts[["task", "seed"]].values.tolist() == [["MRPC", 1], ["MRPC", 2], ["RTE", 1], ["RTE", 2]]
    assert counts.iloc[2]["heads kept"] == tree["RTE"][1].head.sum()
    assert mk.tree_shape(back) == (2, 3)
    with pytest.raises(FileNotFoundError, match=r"No masks under .* \(subdir 'm_pruning'\)"):
        mk.load_head_mask_tree(tmp_path, subdir="m_pruning")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        mk.load_head_mask_tree(tmp_path / "nowhere")
    with pytest.raises(ValueError, match="no seeds"):
        mk.stack_seeds({})


def test_trees_of_two_models_and_non_binary_stacks_are_errors():
    tree = {**_tree(np.random.default_rng(1), {"RTE": 2}), **_tree(np.random.default_rng(2), {"MRPC": 4})}
    with pytest.raises(ValueError, match=r"differ in shape .*heads \(2, 3\).*RTE seed 1.*heads \(4, 3\)"):
        mk.check_tree_shapes(tree)
    mk.check_tree_shapes({"RTE": tree["RTE"]})
    assert mk.as_mask_stack([np.eye(2), np.ones((2, 2))]).tolist() == [[1, 0, 0, 1], [1, 1, 1, 1]]
    with pytest.raises(ValueError, match="only 0 and 1"):
        mk.as_mask_stack([np.full(3, 0.5)])
    with pytest.raises(ValueError, match="non-empty stack"):
        mk.as_mask_stack(np.ones(3))


def test_weight_masks_round_trip_and_counts_by_hand(tmp_path):
    masks = {"b.weight": torch.tensor([[True, False], [False, False]]), "a.bias": torch.tensor([True, True, False])}
    assert (mk.kept_count(masks), mk.total_count(masks)) == (3, 7)
    assert mk.sparsity(masks) == pytest.approx(4 / 7)
    path = mk.save_weight_masks(tmp_path / "m" / "weight_masks", masks)
    assert path == tmp_path / "m" / "weight_masks.npz"
    back = mk.load_weight_masks(path)
    assert list(back) == ["b.weight", "a.bias"]                                   # the saved order
    assert all(back[n].dtype == torch.bool and torch.equal(back[n], m) for n, m in masks.items())
    with pytest.raises(FileNotFoundError, match=r"run the m_pruning stage"):
        mk.load_weight_masks(tmp_path / "seed_1" / "m_pruning" / "weight_masks.npz")
    with pytest.raises(FileNotFoundError, match="No weight masks at .*Fix"):
        mk.load_weight_masks(tmp_path / "other.npz")


@pytest.mark.parametrize("preset, tasks", [("demo", ["SST-2"]), ("demo_more", ["CoLA", "MRPC", "STS-B"])])
def test_the_committed_masks_load_through_the_new_api(preset, tasks):
    root = PROJECT_ROOT / "outputs" / preset
    tree = mk.load_head_mask_tree(root, subdir="s_pruning")
    assert list(tree) == tasks and all(sorted(by_seed) == [42, 86, 1337] for by_seed in tree.values())
    mk.check_tree_shapes(tree)
    assert mk.tree_shape(tree) == (6, 12)
    for task, by_seed in tree.items():
        heads, mlps = mk.stack_seeds(by_seed)
        assert heads.shape == (3, 6, 12) and mlps.shape == (3, 6)
        for seed, good in by_seed.items():
            run = root / task / f"seed_{seed}"
            history = mk.load_search_history(run / "s_pruning")
            last = np.flatnonzero(history["accepted"])[-1]
            np.testing.assert_array_equal(history["head_masks"][last], good.head)   # the last passing step
            np.testing.assert_array_equal(history["mlp_masks"][last], good.mlp)
            drawn = mk.load_head_mask_sets(run / "lottery" / "s_subnetworks.npz")
            assert list(drawn)[:3] == ["good", "random", "bad"]
            np.testing.assert_array_equal(drawn["good"].head, good.head)
            assert drawn["bad"].size() == good.size()
            assert list(mk.load_head_mask_sets(run / "lottery" / "super_subnetworks.npz")) == ["super", "bad", "random"]
