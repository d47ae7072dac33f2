"""Stability statistics against textbook formulas and hand-computed values."""
from __future__ import annotations

import math

import numpy as np
import pytest

from lotterylib import stability

# 3 seeds x 5 elements. Column totals (per seed) 4, 2, 2; row totals (per element) 3, 2, 1, 2, 0.
MASKS = np.array([[1, 1, 1, 1, 0],
                  [1, 0, 0, 1, 0],
                  [1, 1, 0, 0, 0]])


def textbook_fleiss(masks: np.ndarray) -> float:
    n = masks.shape[0]                                         # raters
    counts = np.stack([masks.sum(0), n - masks.sum(0)], 1)     # items x categories
    p_items = ((counts ** 2).sum(1) - n) / (n * (n - 1))
    p_cats = counts.sum(0) / counts.sum()
    p_bar, p_exp = p_items.mean(), (p_cats ** 2).sum()
    return (p_bar - p_exp) / (1 - p_exp)


def textbook_cochran(masks: np.ndarray) -> float:
    k = masks.shape[0]                                         # treatments = seeds
    cols, rows = masks.sum(1), masks.sum(0)
    total = masks.sum()
    return (k - 1) * (k * (cols ** 2).sum() - total ** 2) / (k * total - (rows ** 2).sum())


def test_fleiss_kappa_hand_computed():
    small = np.array([[1, 1, 0, 0], [1, 0, 0, 1], [1, 1, 0, 0]])
    # P_i = 1, 1/3, 1, 1/3 -> P = 2/3; p_kept = p_pruned = 1/2 -> Pe = 1/2; kappa = (2/3 - 1/2) / (1/2)
    assert stability.fleiss_kappa_survival(small) == pytest.approx(1 / 3)
    assert stability.fleiss_kappa_survival(MASKS) == pytest.approx(textbook_fleiss(MASKS))
    rand = np.random.default_rng(0).integers(0, 2, (5, 144))
    assert stability.fleiss_kappa_survival(rand) == pytest.approx(textbook_fleiss(rand))


def test_fleiss_kappa_degenerate():
    mask = np.array([[1, 0], [0, 1]])
    assert stability.fleiss_kappa_survival([mask, mask, mask]) == pytest.approx(1.0)
    assert math.isnan(stability.fleiss_kappa_survival(np.zeros((3, 4), int)))   # all pruned everywhere
    assert math.isnan(stability.fleiss_kappa_survival(MASKS[:1]))
    with pytest.raises(ValueError):
        stability.fleiss_kappa_survival(np.full((2, 3), 0.5))


def test_cochrans_q_textbook():
    q, p = stability.cochrans_q_test(MASKS)
    # Q = 2 * (3 * (16 + 4 + 4) - 8^2) / (3 * 8 - 18) = 8/3; chi2 with 2 df: p = exp(-Q / 2)
    assert q == pytest.approx(8 / 3) == pytest.approx(textbook_cochran(MASKS))
    assert p == pytest.approx(math.exp(-4 / 3))


def test_cochrans_q_degenerate():
    assert stability.cochrans_q_test(np.tile(MASKS[0], (4, 1))) == (0.0, 1.0)
    assert stability.cochrans_q_test(np.zeros((3, 5), int)) == (0.0, 1.0)
    assert all(math.isnan(v) for v in stability.cochrans_q_test(MASKS[:1]))


def test_pairwise_cochran():
    # pairs (0,1) and (0,2): Q = 2, p = chi2_1.sf(2) = 0.157; pair (1,2): equal totals, Q = 0, p = 1
    table = stability.pairwise_cochran(MASKS, labels=[42, 86, 71])
    assert list(table.columns) == ["seed_a", "seed_b", "Q", "p", "similar"]
    assert list(zip(table.seed_a, table.seed_b)) == [(42, 86), (42, 71), (86, 71)]
    np.testing.assert_allclose(table.Q, [2, 2, 0])
    assert table.similar.sum() == 3
    assert stability.pairwise_cochran(MASKS, alpha=0.2).similar.tolist() == [False, False, True]


def test_jaccard_and_overlap_matrix():
    a, b = np.array([[1, 1], [0, 0]]), np.array([[1, 0], [1, 0]])
    assert stability.jaccard(a, b) == pytest.approx(1 / 3)            # 1 shared of 3 kept overall
    assert math.isnan(stability.jaccard(np.zeros(3), np.zeros(3)))
    m = stability.overlap_matrix({"x": a, "y": b, "z": a})
    assert list(m.index) == list(m.columns) == ["x", "y", "z"]
    assert m.loc["x", "z"] == 1.0 and m.loc["y", "x"] == m.loc["x", "y"] == pytest.approx(1 / 3)


def _by_seed(rng, seeds, layers=2, heads=3):
    return {s: (rng.integers(0, 2, (layers, heads)), rng.integers(0, 2, layers)) for s in seeds}


def test_stability_table_shape_and_nan_for_single_seed():
    rng = np.random.default_rng(1)
    masks = {"RTE": _by_seed(rng, [1, 2, 3]), "WNLI": _by_seed(rng, [1])}
    table = stability.stability_table(masks)
    assert list(table.columns) == stability.TABLE_COLUMNS
    assert table.shape == (2, len(stability.TABLE_COLUMNS))
    rte, wnli = table.iloc[0], table.iloc[1]
    heads = np.stack([masks["RTE"][s][0].ravel() for s in (1, 2, 3)])
    assert rte.n_seeds == 3 and rte.n_pairs == 3
    assert rte.head_kappa == pytest.approx(stability.fleiss_kappa_survival(heads))
    assert rte.head_similar_pairs == stability.pairwise_cochran(heads).similar.sum()
    assert rte.head_survival == pytest.approx(heads.mean())
    assert wnli.n_pairs == 0
    assert all(math.isnan(wnli[c]) for c in ("head_kappa", "head_Q", "head_p", "mlp_kappa", "mlp_similar_pairs"))
    assert wnli.mlp_survival == pytest.approx(masks["WNLI"][1][1].mean())


def test_survival_across_tasks():
    ones, zeros = np.ones((2, 3)), np.zeros((2, 3))
    masks = {"A": {1: (ones, np.ones(2)), 2: (zeros, np.ones(2)), 9: (ones, np.ones(2))},
             "B": {5: (ones, np.zeros(2)), 7: (ones, np.ones(2))}}
    # runs by sorted seed: run 0 = A1 + B5, run 1 = A2 + B7 (A's third seed is dropped)
    mean, std, mlp_mean, mlp_std = stability.survival_across_tasks(masks)
    np.testing.assert_allclose(mean, np.full((2, 3), 1.5))
    np.testing.assert_allclose(std, np.full((2, 3), np.std([2, 1], ddof=1)))
    np.testing.assert_allclose(mlp_mean, [1.5, 1.5])
    np.testing.assert_allclose(mlp_std, np.full(2, np.std([1, 2], ddof=1)))
    assert np.isnan(stability.survival_across_tasks({"A": {1: (ones, np.ones(2))}})[1]).all()


@pytest.mark.parametrize("subdir", ["", "prune_s"])
def test_load_mask_tree(tmp_path, subdir):
    for task, seed in [("RTE", 42), ("RTE", 86), ("CoLA", 42)]:
        folder = tmp_path / task / f"seed_{seed}" / subdir
        folder.mkdir(parents=True)
        np.save(folder / "head_mask.npy", np.ones((2, 3)))
        if task == "RTE":
            np.save(folder / "mlp_mask.npy", np.array([1.0, 0.0]))
    tree = stability.load_mask_tree(tmp_path, subdir)
    assert sorted(tree) == ["CoLA", "RTE"] and sorted(tree["RTE"]) == [42, 86]
    np.testing.assert_array_equal(tree["RTE"][42][1], [1, 0])
    np.testing.assert_array_equal(tree["CoLA"][42][1], [1, 1])      # no mlp_mask.npy: all MLPs kept
