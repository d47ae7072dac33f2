import numpy as np
import pytest

from lotterylib.core import metrics
from lotterylib.core.metrics import compute_metrics
from lotterylib.core.rules import Rules


def test_cola_matthews_by_hand():
    labels = np.array([1, 1, 1, 0, 0, 1, 0, 1])
    preds = np.array([1, 0, 1, 0, 1, 1, 0, 1])
    tp, tn, fp, fn = 4, 2, 1, 1
    mcc = (tp * tn - fp * fn) / np.sqrt((tp + fp) * (tp + fn) * (tn + fp) * (tn + fn))
    m = compute_metrics("CoLA", preds, labels)
    assert m["mcc"] == pytest.approx(mcc) and m["score"] == m["mcc"] and m["acc"] == 6 / 8


def test_mrpc_accuracy_is_the_score_and_f1_is_extra():
    labels = np.array([1, 1, 0, 0, 1])
    preds = np.array([1, 0, 0, 1, 1])
    m = compute_metrics("MRPC", preds, labels)
    precision, recall = 2 / 3, 2 / 3
    assert m["score"] == m["acc"] == 3 / 5
    assert m["f1"] == pytest.approx(2 * precision * recall / (precision + recall))


def test_stsb_pearson_spearman_and_authors_stopping_metric():
    labels = np.array([0.0, 1.0, 2.0, 3.0, 5.0])
    preds = np.array([0.5, 0.7, 2.5, 2.4, 4.0])
    x, y = preds - preds.mean(), labels - labels.mean()
    pearson = (x * y).sum() / np.sqrt((x**2).sum() * (y**2).sum())
    rank_p, rank_l = np.array([1, 2, 4, 3, 5]), np.array([1, 2, 3, 4, 5])
    spearman = 1 - 6 * ((rank_p - rank_l) ** 2).sum() / (5 * (25 - 1))
    m = compute_metrics("STS-B", preds, labels)
    assert m["score"] == m["stop_score"] == pytest.approx(pearson)
    assert m["spearman"] == pytest.approx(spearman)
    authors = compute_metrics("STS-B", preds, labels, rules=Rules(stsb_stop_on_mean_correlation=True))
    assert authors["score"] == pytest.approx(pearson)
    assert authors["stop_score"] == pytest.approx((pearson + spearman) / 2)


def test_degenerate_predictions_score_zero_not_nan():
    labels = np.array([0, 1, 1, 0])
    assert compute_metrics("CoLA", np.ones(4, int), labels)["mcc"] == 0.0
    assert compute_metrics("STS-B", np.full(4, 2.0), labels.astype(float))["pearson"] == 0.0
    assert compute_metrics("MNLI", np.array([0, 1, 2, 2]), np.array([0, 1, 1, 2]))["score"] == 0.75


def test_stsb_mean_score_baseline_is_zero_on_a_full_dev_set():
    """The STS-B majority baseline predicts the dev mean for every example: a constant, whose float32 std is
    not exactly 0 for 1500 values (the demo_more run failed on it with a NaN before)."""
    labels = np.random.default_rng(0).uniform(0, 5, 1500).astype(np.float32)
    preds = np.full(1500, 2.3639076, dtype=np.float32)         # the STS-B dev mean
    assert np.std(preds) != 0                                    # the trap: a constant with a nonzero std
    out = compute_metrics("STS-B", preds, labels)
    assert out["pearson"] == out["spearman"] == out["score"] == 0.0


def test_prediction_spread_flags_constant_predictions():
    labels = np.array([0.0, 1.0, 2.0, 3.0, 4.0])                           # std 1.414
    collapsed = metrics.prediction_spread("STS-B", np.full(5, 2.5, dtype=np.float32), labels)
    assert collapsed == {"pred_std": 0.0, "constant_predictions": True}
    nearly = metrics.prediction_spread("STS-B", np.array([2.5, 2.5, 2.5, 2.5, 2.53]), labels)
    assert nearly["pred_std"] == pytest.approx(0.012) and nearly["constant_predictions"]  # < 0.01 * 1.414
    weak = metrics.prediction_spread("STS-B", np.array([2.0, 2.5, 2.5, 2.5, 3.0]), labels)
    assert weak["pred_std"] == pytest.approx(np.sqrt(0.1)) and not weak["constant_predictions"]
    assert metrics.prediction_spread("MRPC", np.ones(4, dtype=int), np.array([0, 1, 1, 0])) == \
        {"pred_major_share": 1.0, "constant_predictions": True}
    assert metrics.prediction_spread("MRPC", np.array([1, 1, 1, 0]), np.array([0, 1, 1, 0])) == \
        {"pred_major_share": 0.75, "constant_predictions": False}


def test_constant_loss_is_the_loss_of_the_best_constant_prediction():
    labels = np.array([1.0, 2.0, 3.0, 6.0])
    assert metrics.constant_loss("STS-B", labels) == pytest.approx(np.mean((labels - 3.0) ** 2))
    classes = np.array([0, 0, 0, 1])
    assert metrics.constant_loss("MRPC", classes) == pytest.approx(-(0.75 * np.log(0.75) + 0.25 * np.log(0.25)))
