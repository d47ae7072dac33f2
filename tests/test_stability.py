"""Stability statistics against textbook formulas and hand-computed values."""
from __future__ import annotations

import math
import re

import numpy as np
import pandas as pd
import pytest

from lotterylib.analysis import stability, stability_figures
from lotterylib.core import files
from lotterylib.core.errors import ParameterError
from lotterylib.pruning.masks import stack_seeds, tree_kept_counts, tree_shape
from lotterylib.stages import inputs

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


def test_mask_statistics_columns_and_the_pooled_row():
    rng = np.random.default_rng(1)
    masks = {"RTE": _by_seed(rng, [1, 2, 3]), "WNLI": _by_seed(rng, [1, 2])}
    table = stability.mask_statistics(masks, n_draws=200)
    assert list(table.columns) == stability.TABLE_COLUMNS
    assert table.task.tolist() == ["RTE", "WNLI", "all tasks"] and (table.n_draws == 200).all()
    rte, wnli, pooled = (table.iloc[i] for i in range(3))
    heads = np.stack([masks["RTE"][s][0].ravel() for s in (1, 2, 3)])
    assert rte.n_seeds == 3 and rte.n_pairs == 3
    assert rte.head_kappa == pytest.approx(stability.fleiss_kappa_survival(heads))
    assert rte.head_similar_pairs == stability.pairwise_cochran(heads).similar.sum()
    assert rte.head_survival == pytest.approx(heads.mean())
    assert rte.head_jaccard == pytest.approx(np.mean([stability.jaccard(heads[a], heads[b])
                                                      for a, b in ((0, 1), (0, 2), (1, 2))]))
    assert rte.head_jaccard_ratio == pytest.approx(rte.head_jaccard / rte.head_jaccard_chance)
    kept = heads.sum(0)
    assert (rte.head_kept_all, rte.head_kept_none) == (np.mean(kept == 3), np.mean(kept == 0))
    assert rte.head_kept_all + rte.head_kept_some + rte.head_kept_none == pytest.approx(1)
    # pooled: means over tasks, sums of pairs, the fewest seeds, no Cochran's Q
    assert pooled.n_seeds == 2 and pooled.n_pairs == 4
    assert pooled.head_similar_pairs == rte.head_similar_pairs + wnli.head_similar_pairs
    assert rte.head_core == pytest.approx(np.mean(kept == 3) / np.mean(kept > 0))
    for column in ("head_kappa", "head_survival", "head_kept_all", "head_jaccard", "mlp_kept_none",
                   "head_jaccard_chance", "head_core"):
        assert pooled[column] == pytest.approx((rte[column] + wnli[column]) / 2), column
    assert math.isnan(pooled.head_Q) and math.isnan(pooled.head_p)
    assert 0 < pooled.head_p_more <= 1 and 0 < pooled.head_p_less <= 1


@pytest.mark.parametrize("seeds", [[1], []])
def test_mask_statistics_refuses_fewer_than_two_seeds(seeds):
    rng = np.random.default_rng(1)
    masks = {"RTE": _by_seed(rng, [1, 2]), "WNLI": _by_seed(rng, seeds)}
    found = f"masks for seeds {seeds}" if seeds else "no masks"
    with pytest.raises(ValueError, match=rf"at least 2 distinct seeds per task: WNLI has {re.escape(found)}\. Fix"):
        stability.mask_statistics(masks)


def test_stability_stage_refuses_one_or_duplicate_seeds_before_reading_anything(tmp_path):
    for seeds in ([1, 1], [7]):
        with pytest.raises(ParameterError, match=rf"seeds = {re.escape(str(seeds))}: stability needs at least 2 "
                                                 rf"distinct seeds, found \[{seeds[0]}\]\. Fix"):
            inputs.load_stability_masks(tmp_path, ["RTE"], seeds)
    _write_masks(tmp_path, [("RTE", 1, "s_pruning"), ("RTE", 2, "s_pruning"), ("MRPC", 1, "s_pruning")])
    with pytest.warns(UserWarning), pytest.raises(ValueError, match=r"MRPC has masks for seeds \[1\]"):
        inputs.load_stability_masks(tmp_path, ["RTE", "MRPC"], [1, 2], allow_missing_seeds=True)


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


def _write_masks(root, layout):
    """Masks in `<root>/<task>/seed_<seed>/[<subdir>/]`; RTE without mlp_mask.npy (a heads-only run)."""
    for task, seed, subdir in layout:
        folder = root / task / f"seed_{seed}" / subdir
        folder.mkdir(parents=True)
        np.save(folder / "head_mask.npy", np.ones((2, 3)))
        if task == "RTE":
            np.save(folder / "mlp_mask.npy", np.array([1.0, 0.0]))


def test_authors_layout_via_structured_loader(tmp_path):
    _write_masks(tmp_path, [("RTE", 42, ""), ("RTE", 86, ""), ("RTE", 71, ""), ("CoLA", 42, ""), ("CoLA", 71, "")])
    with pytest.raises(FileNotFoundError, match=r"CoLA has no masks for seeds \[86\].*allow_missing_seeds: true"):
        inputs.load_stability_masks("unused", ["SST-2"], [1], masks_dir=tmp_path)
    with pytest.warns(UserWarning, match=r"CoLA has no masks for seeds \[86\]: .* with seeds \[42, 71\] only"):
        tree = inputs.load_stability_masks("unused", ["SST-2"], [1], masks_dir=tmp_path, allow_missing_seeds=True)
    assert sorted(tree) == ["CoLA", "RTE"] and sorted(tree["RTE"]) == [42, 71, 86]   # tasks/seeds from the folder
    np.testing.assert_array_equal(tree["RTE"][42][1], [1, 0])
    np.testing.assert_array_equal(tree["CoLA"][42][1], [1, 1])      # no mlp_mask.npy: all MLPs kept
    rte = stability.mask_statistics(tree, n_draws=10).set_index("task").loc["RTE"]
    assert math.isnan(rte.head_kappa) and rte.head_p == 1.0          # identical all-kept masks
    assert rte.head_kept_all == 1.0 and rte.head_p_more == 1.0      # random masks of these sizes are these masks


def test_own_masks_from_run_folders(tmp_path):
    _write_masks(tmp_path, [("RTE", 1, "s_pruning"), ("RTE", 2, "s_pruning"), ("RTE", 3, "s_pruning"),
                            ("MRPC", 1, "s_pruning"), ("MRPC", 3, "s_pruning")])
    tree = inputs.load_stability_masks(tmp_path, ["RTE"], [1, 2])   # only the asked tasks and seeds
    assert list(tree) == ["RTE"] and sorted(tree["RTE"]) == [1, 2]
    with pytest.raises(FileNotFoundError, match=r"s_pruning stage \(notebooks/02.*\) for MRPC, seed 2 first"):
        inputs.load_stability_masks(tmp_path, ["MRPC"], [1, 2, 3])
    with pytest.warns(UserWarning, match=r"MRPC has no masks for seeds \[2\]"):
        tree = inputs.load_stability_masks(tmp_path, ["mrpc"], [1, 2, 3], allow_missing_seeds=True)
    assert list(tree["MRPC"]) == [1, 3]


def test_masks_of_different_shapes_name_the_task_and_seeds(tmp_path):
    _write_masks(tmp_path, [("RTE", 1, ""), ("RTE", 2, "")])
    np.save(tmp_path / "RTE" / "seed_2" / "head_mask.npy", np.ones((4, 3)))   # another model: 4 layers
    np.save(tmp_path / "RTE" / "seed_2" / "mlp_mask.npy", np.ones(4))
    with pytest.raises(ValueError, match=r"heads \(2, 3\) and MLPs \(2,\): RTE seed 1; heads \(4, 3\) and MLPs \(4,\): "
                                         r"RTE seed 2"):
        inputs.load_stability_masks("unused", [], [], masks_dir=tmp_path)


def test_other_masks_are_analysed_only_under_out_dir(tmp_path):
    assert inputs.run_folder(tmp_path / "outputs") == tmp_path / "outputs" / "all_tasks" / "stability"
    assert inputs.run_folder(tmp_path / "outputs", tmp_path / "masks", tmp_path / "mine") == tmp_path / "mine"
    with pytest.raises(ParameterError, match="masks_dir = .* needs an out_dir.*Fix: set out_dir"):
        inputs.run_folder(tmp_path / "outputs", tmp_path / "masks")


def test_seed_survival_and_pairwise_table():
    by_seed = {2: (np.array([[1, 0], [1, 1]]), np.array([1, 0])), 1: (np.array([[1, 1], [0, 1]]), np.array([1, 1]))}
    mean, std, mlp_mean, mlp_std = stability.seed_survival(by_seed)
    np.testing.assert_allclose(mean, [[1, 0.5], [0.5, 1]])
    np.testing.assert_allclose(std, [[0, np.sqrt(0.5)], [np.sqrt(0.5), 0]])
    np.testing.assert_allclose(mlp_mean, [1, 0.5])
    assert np.isnan(stability.seed_survival({1: by_seed[1]})[1]).all()
    heads, mlps = stack_seeds(by_seed)
    assert heads.shape == (2, 2, 2) and mlps.tolist() == [[1, 1], [1, 0]]       # seeds sorted
    table = stability.pairwise_table({"RTE": by_seed, "WNLI": {1: by_seed[1]}})
    assert table[["task", "kind", "seed_a", "seed_b"]].values.tolist() == [["RTE", "head", 1, 2], ["RTE", "mlp", 1, 2]]
    heads = np.stack([by_seed[1][0].ravel(), by_seed[2][0].ravel()])
    assert table.Q[0] == pytest.approx(stability.cochrans_q_test(heads)[0])


def test_seed_and_task_overlap():
    a, b = np.array([[1, 1], [0, 0]]), np.array([[1, 0], [1, 0]])
    masks = {"A": {1: (a, np.ones(2)), 2: (b, np.ones(2))}, "B": {5: (a, np.zeros(2)), 7: (a, np.ones(2))}}
    seeds = stability.seed_overlap(masks["A"])
    assert list(seeds.index) == [1, 2] and seeds.loc[1, 2] == pytest.approx(1 / 3)
    assert stability.mean_offdiagonal(seeds) == pytest.approx(1 / 3)
    tasks = stability.task_overlap(masks)                    # runs: (A1, B5) -> 1, (A2, B7) -> 1/3
    assert tasks.loc["A", "B"] == pytest.approx(2 / 3) and tasks.loc["A", "A"] == 1.0
    mlps = stability.task_overlap(masks, kind="mlp")         # run 0: B keeps no MLP -> 0; run 1: 1
    assert mlps.loc["A", "B"] == pytest.approx(0.5)
    assert np.isnan(stability.mean_offdiagonal(pd.DataFrame([[1.0, np.nan], [np.nan, 1.0]])))


def _history(n_steps, rng):
    head_masks = np.ones((n_steps, 2, 3))
    head_masks[1:, 0, 0] = 0
    return {"scores": np.zeros(n_steps), "head_importance": rng.uniform(size=(n_steps, 2, 3)),
            "mlp_importance": rng.uniform(size=(n_steps, 2)), "head_masks": head_masks,
            "mlp_masks": np.ones((n_steps, 2))}


def test_importance_at_clips_and_drops_pruned():
    rng = np.random.default_rng(0)
    short, long = _history(2, rng), _history(4, rng)
    step, heads, mlps = stability.importance_at([short, long], 0)
    assert step == 0 and heads.shape == (12,) and mlps.shape == (4,)
    step, heads, mlps = stability.importance_at([short, long], 9)    # clipped to the shorter history
    assert step == 1 and heads.shape == (10,)                        # head (0, 0) pruned in both
    np.testing.assert_array_equal(heads[:5], short["head_importance"][1].ravel()[1:])
    with pytest.raises(ValueError):
        stability.importance_at([], 0)


def test_load_m_survival(tmp_path):
    folder = tmp_path / "RTE" / "seed_2" / "m_pruning"
    folder.mkdir(parents=True)
    np.savez(folder / "survival.npz", head=np.full((2, 3), 0.5), mlp=np.array([0.2, 0.4]))
    found = inputs.load_m_survival(tmp_path, "RTE", [1, 2])
    assert list(found) == [2] and found[2][0].shape == (2, 3)
    np.testing.assert_array_equal(found[2][1], [0.2, 0.4])
    assert inputs.load_m_survival(tmp_path, "MRPC", [1, 2]) == {}


@pytest.mark.slow
def test_notebook_on_masks_in_the_authors_layout(tmp_path):
    """06_stability.ipynb end to end on a folder of someone else's masks, tables and figures to out_dir."""
    from lotterylib.workflow import kernel
    from lotterylib.pruning.masks import load_head_mask_tree, save_head_masks

    rng = np.random.default_rng(0)
    for task in ("RTE", "MRPC"):
        for seed in (42, 86, 71):
            save_head_masks(tmp_path / "masks" / task / f"seed_{seed}", rng.integers(0, 2, (4, 6)), rng.integers(0, 2, 4))
    kernel.execute(files.PROJECT_ROOT / "notebooks" / "06_stability.ipynb", tmp_path / "out.ipynb",
                   {"outputs_root": str(tmp_path / "outputs"), "masks_dir": str(tmp_path / "masks"),
                    "out_dir": str(tmp_path / "figures")}, files.PROJECT_ROOT)
    table = pd.read_csv(tmp_path / "figures" / "stability.csv")
    expected = stability.mask_statistics(load_head_mask_tree(tmp_path / "masks"))
    assert table.task.tolist() == ["MRPC", "RTE", "all tasks"] and table.n_seeds.tolist() == [3, 3, 3]
    pd.testing.assert_frame_equal(table, expected, check_dtype=False)
    metrics = files.read_json(tmp_path / "figures" / "metrics.json")
    assert not (tmp_path / "outputs").exists()   # nothing written into the preset's run folders
    assert metrics["seeds"] == {"MRPC": [42, 71, 86], "RTE": [42, 71, 86]}
    assert metrics["summary"]["RTE head kappa"] == pytest.approx(expected.head_kappa[1])
    figures = {p.name for p in (tmp_path / "figures").iterdir()}
    assert {"s_survival_RTE.png", "s_survival_MRPC.pdf", "survival_across_tasks.png", "overlap_tasks.png"} <= figures
    assert not any(name.startswith(("importance_", "m_survival_")) for name in figures)   # no histories there


# --- the checklist's verdict and the authors' masks -------------------------------------------------------

def _row(kept_all, kept_some, p_more, n_seeds=5, kind="head", **extra):
    values = {"jaccard": 0.5, "jaccard_chance": 0.4, "jaccard_ratio": 1.25, "kappa_chance": 0.0, "p_more": p_more,
              "p_less": 1 - p_more, "kept_all": kept_all, "kept_some": kept_some,
              "kept_none": 1 - kept_all - kept_some, "core": stability.core_share(kept_all, kept_some), **extra}
    return {"task": "RTE", "n_seeds": n_seeds, **{f"{kind}_{key}": value for key, value in values.items()}}


@pytest.mark.parametrize("row, kind, verdict", [
    (_row(0.2, 0.6, 0.0001), "head", "holds"),            # a quarter of what any seed keeps: unstable, though > chance
    (_row(0.2, 0.6, 0.9), "head", "holds"),
    (_row(0.4, 0.4, 0.0001), "head", "does not hold"),    # half is kept by every seed, more than chance
    (_row(0.4, 0.4, 0.2), "head", "cannot tell: random masks of these sizes overlap as much (p more 0.2)"),
    (_row(0.9, 0.1, 1.0), "head", "cannot tell: random masks of these sizes overlap as much (p more 1)"),
    (_row(0.0, 0.0, float("nan"), kind="mlp", jaccard=float("nan")), "mlp",
     "cannot tell: no seed keeps any of the MLPs"),
    (_row(0.4, 0.4, 0.0001, n_seeds=1), "head", "cannot tell with 1 seed"),
    ({"task": "RTE", "n_seeds": 3, "head_kappa": 0.2, "head_p": 0.01}, "head",
     "cannot tell: stability stage predates the permutation test"),
])
def test_stability_verdict_rule(row, kind, verdict):
    assert stability.stability_verdict(row, kind=kind)[0] == verdict


def test_stability_verdict_numbers_and_threshold():
    verdict, numbers = stability.stability_verdict(_row(0.2, 0.6, 0.0001))
    assert numbers == ("every seed keeps 25% of the heads some seed keeps (all 20%, some 60%, none 20% of the heads); "
                       "mean pairwise Jaccard 0.50 vs 0.40 for random masks of the same sizes (x1.25, p more 0.0001, "
                       "p less 1); stable from 50%")
    assert stability.stability_verdict(_row(0.2, 0.6, 0.0001), stable_share=0.2)[0] == "does not hold"
    assert stability.stability_verdict(_row(0.4, 0.4, 0.03), alpha=0.01)[0].startswith("cannot tell")
    with pytest.raises(ValueError, match="kind = 'heads': one of head, mlp"):
        stability.stability_verdict(_row(0.2, 0.6, 0.0001), kind="heads")


@pytest.fixture(scope="module")
def authors_table():
    from lotterylib.analysis import reference

    masks = inputs.load_stability_masks("unused", [], [], masks_dir=reference.AUTHORS_MASKS)
    return stability.mask_statistics(masks, n_draws=20)


def test_authors_masks_are_shipped_complete(authors_table):
    import tomllib

    from lotterylib.analysis import reference

    assert authors_table.task.tolist() == ["CoLA", "MNLI", "MRPC", "QNLI", "QQP", "RTE", "SST-2", "STS-B", "WNLI",
                                           "all tasks"]
    assert (authors_table.n_seeds == 5).all()
    setuptools = tomllib.loads((files.PROJECT_ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    shipped = [p for pattern in setuptools["package-data"]["lotterylib.analysis"]
               for p in (files.PROJECT_ROOT / "lotterylib" / "analysis").glob(pattern)]
    assert sum(p.suffix == ".npy" for p in shipped) == 9 * 5 * 4                # masks and importances, in the wheel
    assert reference.AUTHORS_STABILITY in shipped and (reference.DATA_FILES / "README.md") in shipped


def test_the_paper_s_instability_reading_holds_on_its_own_masks(authors_table):
    """The answer docs/method.md gives: more overlap than chance, but a small core kept by every seed."""
    heads = stability.agreement_view(authors_table, "head")
    assert (heads.verdict == "holds").all()
    assert (heads.jaccard > heads.jaccard_chance).drop(index="WNLI").all()   # WNLI: 4 seeds keep no head, 1 all
    tasks = heads.drop(index="all tasks")
    np.testing.assert_allclose(tasks.core, tasks.kept_all / (1 - tasks.kept_none))
    np.testing.assert_allclose([tasks.core.drop(index="WNLI").min(), tasks.core.max(), heads.core["all tasks"]],
                               [0.087, 0.292, 0.177], atol=0.001)


def test_our_kappas_and_cochran_p_of_the_authors_masks_equal_the_published_ones(authors_table):
    from lotterylib.analysis import reference

    comparison = stability.authors_comparison(authors_table, reference.authors_stability())
    kappas = comparison[comparison.statistic == "fleiss_kappa"]
    assert len(kappas) == 9                                  # every task the masks cover (heads; none for MLPs)
    np.testing.assert_allclose(kappas.ours, kappas.published, atol=1e-3)
    p = comparison[(comparison.statistic == "cochran_q_pvalue_5seeds") & comparison.published.notna()]
    assert len(p) == 17                                       # WNLI's MLPs: all pruned, the authors got NaN
    np.testing.assert_allclose(p.ours, p.published, rtol=1e-6)
    # the shares of similar pairs differ only where two seeds' masks are identical (the authors counted NaN as no)
    pairs = comparison[comparison.statistic.str.startswith("fraction") & (comparison.difference != 0)]
    assert sorted(zip(pairs.task, pairs.kind)) == [("CoLA", "mlp"), ("MRPC", "mlp"), ("WNLI", "head"), ("WNLI", "mlp")]


def test_a_tasks_p_values_are_seeded_by_its_name_not_by_the_other_tasks():
    rng = np.random.default_rng(4)
    masks = {"MRPC": _by_seed(rng, [1, 2, 3], layers=4), "RTE": _by_seed(rng, [1, 2, 3], layers=4)}
    both = stability.mask_statistics(masks, n_draws=300).set_index("task")
    alone = stability.mask_statistics({"RTE": masks["RTE"]}, n_draws=300).set_index("task")
    pd.testing.assert_series_equal(both.loc["RTE"], alone.loc["RTE"])
    again = stability.mask_statistics(masks, n_draws=300, seed=0).set_index("task")
    pd.testing.assert_frame_equal(both, again)
    other = stability.mask_statistics(masks, n_draws=300, seed=1).set_index("task")
    assert (other.head_jaccard == both.head_jaccard).all()                       # the data, not the draws
    assert (other.head_jaccard_chance != both.head_jaccard_chance).any()


def test_notebook_6_tables_from_the_masks():
    rng = np.random.default_rng(3)
    masks = {"RTE": _by_seed(rng, [2, 1, 3]), "WNLI": _by_seed(rng, [1, 2])}
    kept = tree_kept_counts(masks)
    assert kept[["task", "seed"]].values.tolist() == [["RTE", 1], ["RTE", 2], ["RTE", 3], ["WNLI", 1], ["WNLI", 2]]
    assert kept.iloc[0]["heads kept"] == masks["RTE"][1][0].sum()
    assert kept.iloc[4]["MLPs kept"] == masks["WNLI"][2][1].sum()
    assert tree_shape(masks) == (2, 3)
    table = stability.mask_statistics(masks, n_draws=50)
    views = stability.agreement_views(table)
    assert views.index.get_level_values("kind").unique().tolist() == ["heads", "MLPs"]
    assert views.loc["MLPs"].equals(stability.agreement_view(table, "mlp"))
    verdicts = stability.verdicts_by_kind(table)
    assert verdicts["head"] == stability.agreement_view(table, "head").verdict.to_dict()
    assert set(verdicts) == {"head", "mlp"}
    summary = stability.head_summary(table)
    assert summary["RTE head kappa"] == table.set_index("task").loc["RTE", "head_kappa"] and len(summary) == 3 * 6
    assert stability.summaries_markdown(table) == (stability.summary_markdown(table, "head") + "\n\n"
                                                   + stability.summary_markdown(table, "mlp"))


def test_notebook_6_inputs_and_figures_from_run_folders(tmp_path):
    rng = np.random.default_rng(0)
    masks = {"RTE": _by_seed(rng, [1, 2]), "MRPC": _by_seed(rng, [1, 2])}
    for task, seed, steps in (("RTE", 1, 2), ("RTE", 2, 4), ("MRPC", 1, 3), ("MRPC", 2, 3)):
        folder = tmp_path / task / f"seed_{seed}" / "s_pruning"
        folder.mkdir(parents=True)
        np.savez(folder / "importance.npz", **_history(steps, rng))
    histories = inputs.load_histories(tmp_path, masks)
    assert [len(h["scores"]) for h in histories["RTE"]] == [2, 4]
    m_folder = tmp_path / "RTE" / "seed_2" / "m_pruning"
    m_folder.mkdir(parents=True)
    np.savez(m_folder / "survival.npz", head=np.full((2, 3), 0.5), mlp=np.array([0.2, 0.4]))
    m_survival = inputs.load_m_survivals(tmp_path, masks)
    assert list(m_survival) == ["RTE"] and list(m_survival["RTE"]) == [2]                   # MRPC has none
    out = tmp_path / "figures"
    assert stability_figures.importance_figures(histories, 9, out) == {"RTE": 1, "MRPC": 2}  # clipped per task
    stability_figures.s_survival_figures(masks, out)
    stability_figures.m_survival_figures(m_survival, out)
    overlaps = stability_figures.overlap_figures(masks, out)
    stability_figures.across_tasks_figure(masks, out)
    assert overlaps.to_dict() == {t: stability.mean_offdiagonal(stability.seed_overlap(m)) for t, m in masks.items()}
    assert sorted(p.name for p in out.glob("*.png")) == [
        "importance_MRPC.png", "importance_RTE.png", "m_survival_RTE.png", "overlap_seeds.png", "overlap_tasks.png",
        "s_survival_MRPC.png", "s_survival_RTE.png", "survival_across_tasks.png"]
