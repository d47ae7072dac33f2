"""Figure 4's inputs: every seed's fine-tuned model and the pre-trained one, labelled head by head."""
import numpy as np
import pandas as pd
import pytest
import torch
from transformers import BertConfig, BertForSequenceClassification

from lotterylib.analysis.patterns.cnn import PatternCNN, TrainedClassifier
from lotterylib.analysis.patterns.heads import LabelledMaps, MapClassifier
from lotterylib.core import models
from lotterylib.pruning.masks import save_head_masks
from lotterylib.stages import head_patterns as hp, runs


def test_every_seed_is_classified_and_the_pre_trained_model_once(glue_dir, tmp_path):
    tok = models.load_tokenizer("minilm-l6")
    config = BertConfig(vocab_size=tok.vocab_size, hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=20, max_position_embeddings=64)
    torch.manual_seed(0)
    pretrained = tmp_path / "pretrained"
    BertForSequenceClassification(config).save_pretrained(pretrained)
    for seed in (1, 2):                                  # different fine-tuned weights per seed
        torch.manual_seed(seed)
        folder = runs.stage_dir(tmp_path, "finetune", "SST-2", seed) / "checkpoint"
        BertForSequenceClassification(config).save_pretrained(folder)
        tok.save_pretrained(folder)
        save_head_masks(runs.stage_dir(tmp_path, "s_pruning", "SST-2", seed), np.array([[1.0, 0.0], [1.0, seed - 1.0]]),
                   np.ones(2))
    trained = TrainedClassifier(PatternCNN(32, generator=torch.Generator().manual_seed(0)), 1.0,
                                         np.eye(5), (1,))
    classifiers = {"raw": MapClassifier(trained, "test", False),
                   "normed": MapClassifier(trained, "test", True)}
    out = hp.classify_heads(str(tmp_path), ["SST-2"], [1, 2], str(pretrained), tok, classifiers, str(glue_dir),
                            examples_per_task=3, max_seq_len=40)
    runs_seen = [(None if pd.isna(s) else int(s), m, k) for s, m, k in out.agreement[["seed", "model", "map"]].values]
    assert runs_seen == [(1, "fine-tuned", "raw"), (1, "fine-tuned", "normed"), (2, "fine-tuned", "raw"),
                         (2, "fine-tuned", "normed"), (None, "pre-trained", "raw"), (None, "pre-trained", "normed")]
    assert (out.agreement["maps"] == 3 * 2 * 2).all()
    per_run = out.counts.groupby(["seed", "model", "map"], dropna=False)["count"].sum()
    assert (per_run == 12).all() and len(per_run) == 6
    sup = out.counts[out.counts.super_survivor][["layer", "head"]].drop_duplicates().values.tolist()
    assert sup == [[0, 0], [1, 0]]                       # kept in both seeds
    assert out.rule_vs_cnn().sum() == 6 * 12 and out.rule_vs_cnn("raw").sum() == 3 * 12
    assert list(out.confusion.columns) == ["map", "rule", "cnn", "count"] and len(out.confusion) == 2 * 25
    np.testing.assert_array_equal(out.rule_vs_cnn(), out.rule_vs_cnn("raw") + out.rule_vs_cnn("normed"))
    normed = out.agreement[out.agreement["map"] == "normed"]
    assert np.trace(out.rule_vs_cnn("normed")) == round((normed["CNN = rule"] * normed["maps"]).sum())
    expected = np.mean([a for a in out.agreement["CNN = rule"]])
    assert out.rule_agreement == pytest.approx(expected)
    assert set(out.gallery) == {"raw", "normed"} and all(len(m) == len(t) for m, t in out.gallery.values())


def test_describe_agreement_is_generated_from_the_numbers():
    raw, normed = np.diag([6, 0, 0, 0, 2]), np.zeros((5, 5), dtype=int)
    raw[4, 0] = 2                                         # rule heterogeneous, CNN vertical
    normed[0, 0] = 10
    labels = hp.HeadLabels(pd.DataFrame(), pd.DataFrame(), hp._tidy({"raw": raw, "normed": normed}))
    np.testing.assert_array_equal(labels.rule_vs_cnn(), raw + normed)
    assert labels.rule_agreement == pytest.approx(18 / 20)
    text = hp.describe_agreement(labels, 0.0, 0.05)
    assert "same class to 90% of the 20 real maps (raw 80%, normed 100%), which meets the target of 80%" in text
    assert "the rule says heterogeneous and the CNN vertical on 10% of the maps" in text
    assert "differ by at most 0.0%" in text and "up to 5.0% away" in text
    assert "falls short of the target of 95%" in hp.describe_agreement(labels, 0.0, 0.05, target=0.95)


def test_notebook_7_figures_and_records(tmp_path):
    maps = [np.eye(6)[::-1] / 1.0, np.eye(6), np.full((6, 6), 1 / 6)]
    sets = {"raw": LabelledMaps(maps, np.array([1, 1, 4]), "generated"),
            "normed": LabelledMaps(maps[:2], np.array([0, 3]), "authors' archive (normed)")}
    assert list(hp.shown_sets(sets, by_kind=False)) == ["all"] and hp.shown_sets(sets, True) == sets
    text = hp.training_galleries(sets, False, tmp_path)
    assert text == "all: 3 maps from generated, per class [0, 2, 0, 0, 1]"
    assert (tmp_path / "training_examples_all.png").is_file()
    trained = TrainedClassifier(PatternCNN(32, generator=torch.Generator().manual_seed(0)), 0.75,
                                np.eye(5, dtype=int), (3, 4))
    classifiers = {"raw": MapClassifier(trained, "generated", False), "normed": MapClassifier(trained, "archive", True)}
    assert hp.classifier_figures(classifiers, True, 5, tmp_path) == {"raw": 0.75, "normed": 0.75}
    assert hp.classifier_figures(classifiers, False, 5, tmp_path) == {"all": 0.75}
    saved = {p.name for p in tmp_path.glob("cnn_confusion_*.png")}
    assert saved == {"cnn_confusion_raw.png", "cnn_confusion_normed.png", "cnn_confusion_all.png"}
    assert hp.classifier_record(classifiers) == {"cnn_best_epoch": {"raw": [3, 4], "normed": [3, 4]},
                                                 "training_source": {"raw": "generated", "normed": "archive"}}
    counts = pd.DataFrame({"task": ["RTE"] * 4 + ["MRPC"] * 2, "layer": [0, 0, 1, 0, 0, 1], "head": [0, 0, 1, 1, 0, 0],
                           "super_survivor": [True, True, True, False, False, False]})
    assert hp.super_survivor_heads(counts) == {"RTE": 2, "MRPC": 0}      # (0, 0) twice counts once
    assert hp.stage_summary({"all": 0.75}, 0.9, 0.0) == {"cnn held-out accuracy (all)": 0.75, "cnn-rule agreement": 0.9,
                                                         "thread stability (max share difference)": 0.0}
    labels = hp.HeadLabels(pd.DataFrame(), pd.DataFrame(), pd.DataFrame(),
                           {"raw": ([np.eye(4)], ["L1 H1: diagonal"])})
    hp.real_map_galleries(labels, "RTE", 1, tmp_path)
    assert (tmp_path / "real_examples_raw.png").is_file()
