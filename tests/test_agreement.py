"""The permutation test of agreement between masks: against hand computation and the exactly enumerated null."""
from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from lotterylib.analysis import agreement, stability


def all_masks(n_units: int, size: int) -> list[np.ndarray]:
    """Every 0/1 mask of `n_units` units keeping `size` of them."""
    return [np.isin(np.arange(n_units), kept).astype(int) for kept in itertools.combinations(range(n_units), size)]


def enumerated_null(sizes: tuple[int, ...], n_units: int) -> tuple[np.ndarray, np.ndarray]:
    """The exact null: mean pairwise Jaccard and Fleiss' kappa (statsmodels) of every equally likely stack."""
    stacks = [np.stack(rows) for rows in itertools.product(*(all_masks(n_units, k) for k in sizes))]
    jaccards = [np.mean([stability.jaccard(a, b) for a, b in itertools.combinations(stack, 2)]) for stack in stacks]
    return np.array(jaccards), np.array([stability.fleiss_kappa_survival(stack) for stack in stacks])


def test_the_null_of_two_seeds_of_4_units_by_hand():
    # sizes 2 and 2: the overlap is 0, 1 or 2 units with probabilities 1/6, 4/6, 1/6 -> Jaccard 0, 1/3, 1;
    # chance = 4/6 * 1/3 + 1/6 * 1 = 7/18. Identical masks (Jaccard 1): p more = 1/6, p less = 1.
    identical = np.array([[1, 1, 0, 0], [1, 1, 0, 0]])
    test = agreement.agreement_test(identical, n_draws=200_000, seed=3)
    assert test.jaccard == 1.0 and test.jaccard_chance == pytest.approx(7 / 18, abs=0.005)
    assert test.p_more == pytest.approx(1 / 6, abs=0.005) and test.p_less == 1.0
    # one shared unit (Jaccard 1/3): 5/6 of the draws are at least as high, 5/6 at most as low
    one_shared = agreement.agreement_test(np.array([[1, 1, 0, 0], [1, 0, 1, 0]]), n_draws=200_000, seed=3)
    assert (one_shared.p_more, one_shared.p_less) == pytest.approx((5 / 6, 5 / 6), abs=0.005)
    assert one_shared.jaccard_ratio == pytest.approx((1 / 3) / one_shared.jaccard_chance)


@pytest.mark.parametrize("observed", [
    [[1, 1, 0, 0], [1, 1, 1, 0]],                 # sizes 2, 3: the overlap is 1 or 2 units
    [[0, 0, 1, 1], [1, 1, 1, 0]],
    [[1, 0, 0, 0], [1, 1, 0, 0], [1, 1, 1, 0]],   # three seeds, sizes 1, 2, 3
    [[0, 0, 0, 1], [1, 1, 0, 0], [0, 1, 1, 1]],
])
def test_the_permutation_null_matches_the_enumerated_one(observed):
    observed = np.array(observed)
    null_jaccard, null_kappa = enumerated_null(tuple(observed.sum(1)), observed.shape[1])
    jaccard = np.mean([stability.jaccard(a, b) for a, b in itertools.combinations(observed, 2)])
    test = agreement.agreement_test(observed, n_draws=200_000, seed=0)
    assert test.jaccard == pytest.approx(jaccard)
    assert test.kappa == pytest.approx(stability.fleiss_kappa_survival(observed))
    assert test.jaccard_chance == pytest.approx(null_jaccard.mean(), abs=0.005)
    assert test.kappa_chance == pytest.approx(null_kappa.mean(), abs=0.005)
    assert test.p_more == pytest.approx(np.mean(null_jaccard >= jaccard - 1e-12), abs=0.005)
    assert test.p_less == pytest.approx(np.mean(null_jaccard <= jaccard + 1e-12), abs=0.005)


def test_null_masks_keep_every_seeds_size_and_every_unit_equally_often():
    masks = agreement.null_masks([0, 3, 8, 5], 8, 20_000, np.random.default_rng(0))
    assert masks.shape == (20_000, 4, 8) and masks.dtype == bool
    assert (masks.sum(-1) == [0, 3, 8, 5]).all()
    np.testing.assert_allclose(masks[:, 1].mean(0), 3 / 8, atol=0.02)
    with pytest.raises(ValueError, match=r"mask sizes \[9\] must lie between 0 and the number of units, 8"):
        agreement.null_masks([9], 8, 10, np.random.default_rng(0))


def test_same_seed_same_result_other_seed_other_draws():
    masks = np.random.default_rng(5).integers(0, 2, (5, 144))
    first, second = agreement.agreement_test(masks, 500, seed=[1, 2]), agreement.agreement_test(masks, 500, seed=[1, 2])
    np.testing.assert_array_equal(first.null_jaccard, second.null_jaccard)
    assert first == second
    other = agreement.agreement_test(masks, 500, seed=[1, 3])
    assert not np.array_equal(other.null_jaccard, first.null_jaccard) and other.jaccard == first.jaccard


def test_vectorised_statistics_equal_the_scalar_ones():
    rng = np.random.default_rng(2)
    stacks = rng.integers(0, 2, (6, 4, 30))
    stacks[0, :2] = 0                                           # a pair keeping nothing is left out
    for stack, jaccard, kappa in zip(stacks, agreement.mean_pairwise_jaccard(stacks), agreement.fleiss_kappa(stacks)):
        pairs = [stability.jaccard(a, b) for a, b in itertools.combinations(stack, 2)]
        assert jaccard == pytest.approx(np.nanmean(pairs))
        assert kappa == pytest.approx(stability.fleiss_kappa_survival(stack))
    assert math.isnan(agreement.mean_pairwise_jaccard(np.zeros((3, 5))))
    assert math.isnan(agreement.fleiss_kappa(np.ones((3, 5))))


def test_permutation_p_counts_ties_and_is_never_zero():
    null = np.array([0.1, 0.2, 0.2, 0.3])
    assert agreement.permutation_p(0.2, null) == (4 / 5, 4 / 5)          # (1 + 3) / (1 + 4) both ways
    assert agreement.permutation_p(0.2 + 1e-15, null) == (4 / 5, 4 / 5)  # rounding is a tie
    assert agreement.permutation_p(0.5, null) == (1 / 5, 1.0)
    assert all(math.isnan(p) for p in agreement.permutation_p(float("nan"), null))


def test_kept_shares():
    masks = np.array([[1, 1, 0, 0, 1], [1, 0, 0, 0, 1], [1, 1, 0, 1, 1]])
    assert agreement.kept_shares(masks) == pytest.approx((2 / 5, 2 / 5, 1 / 5))   # units 0, 4 | 1, 3 | 2


def test_pooled_test_averages_tasks_draw_by_draw():
    def made(jaccard, null, kappa):
        null = np.array(null, dtype=float)
        return agreement.Agreement(jaccard, null.mean(), kappa, 0.0, *agreement.permutation_p(jaccard, null), 3, null)

    a, b = made(0.5, [0.1, 0.6, 0.2], 0.3), made(0.3, [0.5, 0.1, 0.2], 0.1)
    no_units = made(float("nan"), [np.nan] * 3, float("nan"))     # a task where no seed keeps anything
    pooled = agreement.pooled_test([a, b, no_units])
    # observed mean 0.4; null means per draw 0.3, 0.35, 0.2: none at least 0.4, all at most
    assert (pooled.jaccard, pooled.kappa) == pytest.approx((0.4, 0.2))
    assert pooled.jaccard_chance == pytest.approx((0.3 + 0.35 + 0.2) / 3)
    assert (pooled.p_more, pooled.p_less) == (1 / 4, 1.0)
    with pytest.raises(ValueError, match="same number of draws"):
        agreement.pooled_test([a, agreement.agreement_test(np.eye(2), 5)])
