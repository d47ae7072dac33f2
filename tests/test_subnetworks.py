"""Good / random / bad subnetworks and super-survivors: exact sizes, disjointness, determinism, compat."""
import numpy as np
import pytest
import torch
from transformers import BertConfig

from conftest import tiny_model
from lotterylib.core.rules import Rules
from lotterylib.pruning import magnitude as mg, masks as mk, subnetworks as sn


def rng(seed=0):
    return np.random.default_rng(seed)


def good_s(heads_kept=50, mlps_kept=9, seed=123):
    """A 12 x 12 head mask and a 12-MLP mask with the given numbers kept."""
    r = rng(seed)
    head = np.zeros(144)
    head[r.choice(144, heads_kept, replace=False)] = 1
    mlp = np.zeros(12)
    mlp[r.choice(12, mlps_kept, replace=False)] = 1
    return head.reshape(12, 12), mlp


def good_m(keep=0.3, seed=0):
    model = tiny_model()
    g = torch.Generator().manual_seed(seed)
    return {n: torch.rand(getattr(m, p).shape, generator=g) < keep for n, m, p in mg.prunable_parameters(model)}


def flat(masks):
    return torch.cat([m.ravel() for m in masks.values()])


def test_resized_like_grows_shrinks_and_avoids():
    cand = np.zeros((4, 5))
    cand[0, :3] = 1
    avoid = np.zeros((4, 5))
    avoid[1:, :] = 1
    grown = sn.resized_like(cand, 6, rng(), avoid=avoid)
    assert grown.shape == (4, 5) and grown.dtype == np.float64 and grown.sum() == 6
    assert np.all(grown[cand == 1] == 1) and grown[1:].sum() == 1  # 2 more from row 0 (not avoided), then 1
    shrunk = sn.resized_like(cand, 2, rng())
    assert shrunk.sum() == 2 and np.all(shrunk[cand == 0] == 0)
    assert sn.resized_like(cand, 0, rng()).sum() == 0
    with pytest.raises(ValueError, match="cannot select"):
        sn.resized_like(cand, 21, rng())


def test_random_s_masks_have_the_good_sizes_and_are_seeded():
    head, mlp = good_s()
    rh, rm = sn.random_s_masks(head, mlp, rng(1))
    assert rh.shape == (12, 12) and rm.shape == (12,) and set(np.unique(rh)) <= {0.0, 1.0}
    assert mk.head_masks_size(rh, rm) == mk.head_masks_size(head, mlp) == (50, 9)
    again = sn.random_s_masks(head, mlp, rng(1))
    other = sn.random_s_masks(head, mlp, rng(2))
    assert np.array_equal(rh, again[0]) and np.array_equal(rm, again[1])
    assert not np.array_equal(rh, other[0])


def test_authors_random_s_masks_are_bernoulli():
    head, mlp = good_s()
    r = rng(3)
    sizes = np.array([mk.head_masks_size(*sn.random_s_masks(head, mlp, r, Rules(bernoulli_random_s=True))) for _ in range(2000)])
    assert len(set(sizes[:, 0])) > 5  # the size varies ...
    assert sizes[:, 0].mean() == pytest.approx(50, abs=0.5)  # ... around the good size
    assert sizes[:, 1].mean() == pytest.approx(9, abs=0.1)
    others = Rules(**{q: q != "bernoulli_random_s" for q in Rules.quirks()})   # every other quirk on: exact sizes
    assert mk.head_masks_size(*sn.random_s_masks(head, mlp, r, others)) == (50, 9)


@pytest.mark.parametrize("heads_kept,mlps_kept", [(100, 9), (30, 3)])
def test_bad_s_masks(heads_kept, mlps_kept):
    head, mlp = good_s(heads_kept, mlps_kept)
    bh, bm = sn.bad_s_masks(head, mlp, rng(4))
    assert mk.head_masks_size(bh, bm) == (heads_kept, mlps_kept)
    for good, bad in ((head, bh), (mlp, bm)):
        pruned = good == 0
        if pruned.sum() <= good.sum():  # every pruned element, topped up with survivors
            assert np.all(bad[pruned] == 1)
        else:                           # a sample of the pruned elements only
            assert np.all(bad[~pruned] == 0)
    again = sn.bad_s_masks(head, mlp, rng(4))
    assert np.array_equal(bh, again[0]) and np.array_equal(bm, again[1])
    assert not np.array_equal(bh, sn.bad_s_masks(head, mlp, rng(5))[0])


def test_bad_s_masks_degenerate_sizes():
    nothing = sn.bad_s_masks(np.zeros((2, 3)), np.zeros(2), rng())
    everything = sn.bad_s_masks(np.ones((2, 3)), np.ones(2), rng())
    assert mk.head_masks_size(*nothing) == (0, 0) and mk.head_masks_size(*everything) == (6, 2)


def test_s_subnetworks_draws_random_then_bad():
    head, mlp = good_s()
    subs = sn.s_subnetworks(head, mlp, rng(6))
    r = rng(6)
    random, bad = sn.random_s_masks(head, mlp, r), sn.bad_s_masks(head, mlp, r)
    assert np.array_equal(subs["good"][0], head)
    assert all(np.array_equal(a, b) for a, b in zip(subs["random"] + subs["bad"], random + bad))


def test_random_m_masks():
    good = good_m()
    random = sn.random_m_masks(good, rng(1))
    assert list(random) == list(good)
    assert all(random[n].shape == m.shape and random[n].dtype == torch.bool for n, m in good.items())
    assert mk.kept_count(random) == mk.kept_count(good)
    assert not torch.equal(flat(random), flat(good))
    assert torch.equal(flat(random), flat(sn.random_m_masks(good, rng(1))))
    assert not torch.equal(flat(random), flat(sn.random_m_masks(good, rng(2))))
    per_param = [float(m.float().mean()) for m in random.values()]
    assert min(per_param) > 0.1 and max(per_param) < 0.5  # spread over every parameter


@pytest.mark.parametrize("keep", [0.7, 0.3])
def test_bad_m_masks_paper(keep):
    good = good_m(keep)
    bad = sn.bad_m_masks(good, rng(7))
    g, b = flat(good), flat(bad)
    assert int(b.sum()) == int(g.sum())
    if (~g).sum() <= g.sum():
        assert torch.all(b[~g])   # contains every pruned weight
    else:
        assert not torch.any(b[g])  # only pruned weights
    assert torch.equal(b, flat(sn.bad_m_masks(good, rng(7))))
    assert not torch.equal(b, flat(sn.bad_m_masks(good, rng(8))))


def test_bad_m_masks_authors_keeps_the_smallest_magnitudes():
    model = tiny_model()
    weights = mg.prunable_weights(model)
    good = good_m(0.4)
    bad = sn.bad_m_masks(good, rng(9), Rules(smallest_magnitude_bad_m=True), weights=weights)
    assert mk.kept_count(bad) == mk.kept_count(good)
    magnitudes = torch.cat([w.abs().ravel() for w in weights.values()])
    b = flat(bad)
    assert magnitudes[b].max() <= magnitudes[~b].min()
    assert torch.equal(b, flat(sn.bad_m_masks(good, rng(10), Rules.from_setting("authors"), weights=weights)))
    with pytest.raises(ValueError, match="weights"):
        sn.bad_m_masks(good, rng(), Rules.from_setting("authors"))
    others = Rules(**{q: q != "smallest_magnitude_bad_m" for q in Rules.quirks()})   # every other quirk on
    assert torch.equal(flat(sn.bad_m_masks(good, rng(9), others, weights)), flat(sn.bad_m_masks(good, rng(9))))


def test_m_subnetworks():
    good = good_m()
    subs = sn.m_subnetworks(good, rng(11))
    assert set(subs) == {"good", "random", "bad"}
    assert {mk.kept_count(m) for m in subs.values()} == {mk.kept_count(good)}
    mg.apply_weight_masks(tiny_model(), subs["bad"])  # the names fit the model


def test_super_survivors_and_always_pruned():
    heads = np.array([[[1, 1, 0], [0, 1, 0]],
                      [[1, 0, 0], [0, 1, 1]],
                      [[1, 1, 0], [0, 1, 0]]], dtype=float)  # 3 seeds x 2 layers x 3 heads
    mlps = np.array([[1, 0], [1, 0], [1, 1]], dtype=float)
    sh, sm = sn.super_survivors(heads, mlps)
    ah, am = sn.always_pruned(heads, mlps)
    np.testing.assert_array_equal(sh, [[1, 0, 0], [0, 1, 0]])
    np.testing.assert_array_equal(sm, [1, 0])
    np.testing.assert_array_equal(ah, [[0, 0, 1], [1, 0, 0]])
    np.testing.assert_array_equal(am, [0, 0])


def test_super_subnetworks_sizes_and_disjointness():
    r = rng(12)
    heads = (r.random((5, 12, 12)) < 0.6).astype(float)
    heads[:, :3, :] = 1  # 36 super-survivors
    heads[:, 3, :] = 0   # 12 always pruned
    mlps = np.tile([1, 1, 1, 0, 0, 0, 0, 0, 1, 1, 1, 1.0], (5, 1))
    mlps[0, [2, 8, 9, 10, 11]] = 0  # MLPs: 2 super, 5 always pruned, 5 neither
    subs = sn.super_subnetworks(heads, mlps, rng(13))
    sup_h, sup_m = subs["super"]
    never_h, never_m = sn.always_pruned(heads, mlps)
    for name in ("bad", "random"):
        h, m = subs[name]
        assert mk.head_masks_size(h, m) == mk.head_masks_size(sup_h, sup_m)
        assert not np.any((h == 1) & (sup_h == 1)) and not np.any((m == 1) & (sup_m == 1))
    bad_h, bad_m = subs["bad"]
    assert np.all(bad_h[never_h == 1] == 1)          # fewer always-pruned heads than super: all of them
    assert np.all(bad_m[never_m == 0] == 0)          # more always-pruned MLPs than super: a sample of them
    rand_h = subs["random"][0]
    assert np.all(rand_h[never_h == 1] == 0)         # enough "neither" heads: none always pruned
    again = sn.super_subnetworks(heads, mlps, rng(13))
    assert all(np.array_equal(a, b) for k in subs for a, b in zip(subs[k], again[k]))


def test_weight_share():
    config = BertConfig()
    assert sn.weight_share(np.ones((12, 12)), np.ones(12), config) == 1.0
    assert sn.weight_share(np.zeros((12, 12)), np.zeros(12), config) == 0.0
    one_head = np.zeros((12, 12))
    one_head[0, 0] = 1
    assert sn.weight_share(one_head, np.zeros(12), config) == pytest.approx(4 * 768 * 64 / 84_934_656)
    assert sn.weight_share(np.zeros((12, 12)), np.eye(12)[0], config) == pytest.approx(2 * 768 * 3072 / 84_934_656)
    assert sn.weight_share(np.ones((12, 12)), np.zeros(12), config) == pytest.approx(1 / 3)  # 4d^2 of 12d^2
