"""Attention patterns: layouts, the synthetic generator, the rule labeller, padding, the CNN, the archive loader."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from lotterylib.analysis.patterns.archive import load_authors_archive
from lotterylib.analysis.patterns.cnn import (PatternCNN, TrainedClassifier, class_shares, classify, deterministic,
                                              feature_size, member_spread, pad_or_crop, row_normalize,
                                              thread_stability, to_tensor, train_classifier)
from lotterylib.analysis.patterns.generate import generate_dataset, synthetic_map
from lotterylib.analysis.patterns.heads import (MapClassifier, label_maps, label_model, labelled_sets,
                                                train_map_classifiers)
from lotterylib.analysis.patterns.layout import CLASSES, glue_token_lists, layout
from lotterylib.analysis.patterns.rules import pattern_scores, rule_label
from lotterylib.analysis.patterns.shares import first_of_each_class, group_shares, head_class_counts, share_table
from lotterylib.core.models import load_tokenizer
from lotterylib.core.rules import Rules


@pytest.fixture(scope="module")
def token_lists() -> list[list[str]]:
    from conftest import GLUE_DIR

    if not GLUE_DIR.is_dir():
        pytest.skip(f"shared GLUE copy not found at {GLUE_DIR}")
    return glue_token_lists(load_tokenizer("minilm-l6"), tasks=("SST-2", "MRPC"), per_task=30,
                              glue_dir=GLUE_DIR, max_len=40)


@pytest.fixture(scope="module")
def real_maps() -> tuple[list[np.ndarray], np.ndarray]:
    """Every head's raw and norm-weighted map of 4 SST-2 dev sentences under the shipped pre-trained MiniLM-L6
    (576 maps, row-normalised) and their rule labels."""
    from conftest import GLUE_DIR

    from lotterylib.stages.head_patterns import pretrained_maps

    if not GLUE_DIR.is_dir():
        pytest.skip(f"shared GLUE copy not found at {GLUE_DIR}")
    return pretrained_maps("minilm-l6", "SST-2", load_tokenizer("minilm-l6"), str(GLUE_DIR), examples=4,
                           max_seq_len=40)


def test_layout_of_a_pair():
    tokens = ["[CLS]", "he", "said", ",", "hi", ".", "[SEP]", "yes", "!", "[SEP]"]
    lay = layout(tokens)
    assert lay.cls_sep.tolist() == [0, 6, 9] and lay.punctuation.tolist() == [3, 5, 8]
    assert lay.special.tolist() == [0, 3, 5, 6, 8, 9]
    assert lay.segments.tolist() == [0] * 7 + [1] * 3


def test_real_token_lists_have_singles_and_pairs(token_lists):
    assert len(token_lists) == 60 and all(t[0] == "[CLS]" and t[-1] == "[SEP]" for t in token_lists)
    n_sentences = [layout(t).segments.max() + 1 for t in token_lists]
    assert set(n_sentences) == {1, 2}


def test_generator_counts_and_determinism(token_lists):
    maps, labels = generate_dataset(token_lists, 7, np.random.default_rng(3))
    again, labels_again = generate_dataset(token_lists, 7, 3)
    other, _ = generate_dataset(token_lists, 7, 4)
    assert len(maps) == 35 and np.bincount(labels).tolist() == [7] * 5
    np.testing.assert_array_equal(labels, labels_again)
    assert all(np.array_equal(a, b) for a, b in zip(maps, again))
    assert not all(a.shape == b.shape and np.allclose(a, b) for a, b in zip(maps, other))
    lengths = {len(t) for t in token_lists}
    for m in maps:
        assert m.shape[0] == m.shape[1] and m.shape[0] in lengths and (m >= 0).all()
        np.testing.assert_allclose(m.sum(-1), 1.0, atol=1e-5)


def test_generator_needs_pairs(token_lists):
    singles = [t for t in token_lists if t.count("[SEP]") == 1]
    with pytest.raises(ValueError, match="pair"):
        generate_dataset(singles, 2, 0)


def test_rule_label_on_ideal_maps():
    tokens = ["[CLS]", "a", "b", "c", ",", "d", "[SEP]", "e", "f", "g", "h", "[SEP]"]
    lay = layout(tokens)
    n = len(tokens)
    vertical = np.zeros((n, n))
    vertical[:, 0] = 1
    diagonal = np.eye(n, k=-1)
    diagonal[0, 1] = 1
    block = (lay.segments[:, None] == lay.segments[None, :]) / np.bincount(lay.segments)[lay.segments][:, None]
    uniform = np.full((n, n), 1 / n)
    label = lambda m: rule_label(m, lay.special, lay.segments)  # noqa: E731
    assert label(vertical) == "vertical" and label(diagonal) == "diagonal" and label(block) == "block"
    assert label((vertical + diagonal) / 2) == "vertical+diagonal" and label(uniform) == "heterogeneous"
    assert pattern_scores(uniform, lay.special, lay.segments) == pytest.approx(
        {"vertical": 0.0, "diagonal": 0.0, "block": 0.0}, abs=1e-12)
    single = layout(["[CLS]", "a", "b", "c", "[SEP]"])
    assert pattern_scores(np.eye(5), single.special, single.segments)["block"] == 0.0


def test_rule_labeller_recovers_generator_labels(token_lists):
    rng = np.random.default_rng(0)
    layouts = [layout(t) for t in token_lists]
    pairs = [lay for lay in layouts if lay.segments.max() >= 1]
    hits = []
    for label in CLASSES:
        for _ in range(40):
            pool = pairs if label == "block" else layouts
            lay = pool[rng.integers(len(pool))]
            hits.append(rule_label(synthetic_map(label, lay, rng), lay.special, lay.segments) == label)
    assert np.mean(hits) >= 0.9


def test_pad_or_crop_by_hand():
    m = np.array([[1.0, 2.0], [3.0, 4.0]])
    expected = np.zeros((5, 5))
    expected[1:3, 1:3] = m                      # (5 - 2) // 2 = 1 before, 2 after
    np.testing.assert_array_equal(pad_or_crop(m, 5), expected)
    big = np.arange(16.0).reshape(4, 4)
    np.testing.assert_array_equal(pad_or_crop(big, 2), [[0, 1], [4, 5]])   # top-left corner, as the authors
    np.testing.assert_array_equal(pad_or_crop(big, 4), big)
    np.testing.assert_array_equal(row_normalize([[1.0, 3.0], [0.0, 0.0]]), [[0.25, 0.75], [0.0, 0.0]])


def test_cnn_shapes_and_parameter_count():
    model = PatternCNN(64)
    shapes = []
    x = torch.zeros(2, 1, 64, 64)
    for module in model.net:
        x = module(x)
        if not isinstance(module, torch.nn.ReLU):
            shapes.append(tuple(x.shape[1:]))
    assert shapes == [(16, 62, 62), (16, 60, 60), (16, 30, 30), (32, 28, 28), (32, 26, 26), (32, 13, 13),
                      (64, 11, 11), (64, 9, 9), (16, 9, 9), (16, 1, 1), (5, 1, 1)]
    assert model(torch.zeros(2, 1, 64, 64)).shape == (2, 5)
    by_hand = (16 * 9 + 16) + (16 * 16 * 9 + 16) + (32 * 16 * 9 + 32) + (32 * 32 * 9 + 32) \
        + (64 * 32 * 9 + 64) + (64 * 64 * 9 + 64) + (16 * 64 + 16) + (5 * 16 + 5)
    assert sum(p.numel() for p in model.parameters()) == by_hand == 72917
    assert feature_size(64) == 9 and feature_size(32) == 1
    with pytest.raises(ValueError, match="too small"):
        PatternCNN(31)
    assert not any(m.bias.detach().any() for m in model.net if isinstance(m, torch.nn.Conv2d))


def test_short_training_beats_chance(token_lists):
    maps, labels = generate_dataset(token_lists, 40, 0)
    train = lambda: train_classifier(maps, labels, seed=0, epochs=12, batch_size=32,  # noqa: E731
                                       progress=False, input_size=32)
    result, again = train(), train()
    assert result.accuracy >= 0.6                             # chance: 0.2
    assert result.accuracy == again.accuracy and result.best_epochs == again.best_epochs
    assert result.confusion.shape == (5, 5) and result.confusion.sum() == 40
    assert np.trace(result.confusion) / 40 == pytest.approx(result.accuracy)
    predicted = classify(result.model, maps[:10])
    assert predicted.shape == (10,) and set(predicted.tolist()) <= set(range(5))


def test_deterministic_fixes_the_threads_and_restores_the_settings():
    before = (torch.get_num_threads(), torch.are_deterministic_algorithms_enabled())
    with deterministic(1):
        assert torch.get_num_threads() == 1 and torch.are_deterministic_algorithms_enabled()
    assert (torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()) == before


def test_training_does_not_depend_on_the_callers_thread_count(token_lists, real_maps):
    """The same maps, trained with the caller at 1 and at 2 torch threads: the same weights, bit for bit, hence
    the same classes of generated and real maps (the issue's target: shares within 2 points)."""
    maps, labels = generate_dataset(token_lists, 30, 0)
    saved, models = torch.get_num_threads(), []
    try:
        for threads in (1, 2):
            torch.set_num_threads(threads)
            models.append(train_classifier(maps, labels, seed=0, epochs=5, batch_size=32, progress=False,
                                             input_size=32, device="cpu").model)
    finally:
        torch.set_num_threads(saved)
    for a, b in zip(models[0].state_dict().values(), models[1].state_dict().values()):
        assert torch.equal(a, b)
    probe = maps + real_maps[0]
    np.testing.assert_array_equal(classify(models[0], probe), classify(models[1], probe))
    assert thread_stability(maps, labels, probe, seed=0, epochs=2, batch_size=32, progress=False, input_size=32,
                              device="cpu") == 0.0


def test_ensemble_is_a_soft_vote_of_seeded_members(token_lists):
    maps, labels = generate_dataset(token_lists, 20, 1)
    train = lambda k: train_classifier(maps, labels, seed=3, epochs=3, batch_size=32, progress=False,  # noqa: E731
                                         input_size=32, device="cpu", ensemble=k)
    single, triple = train(1), train(3)
    assert len(triple.model.members) == len(triple.best_epochs) == 3 and len(single.best_epochs) == 1
    for a, b in zip(single.model.members[0].state_dict().values(), triple.model.members[0].state_dict().values()):
        assert torch.equal(a, b)                                      # member 0 is the seed-3 CNN
    short = [m for m in maps if len(m) <= 32][:8]                  # classified at the input size, uncropped
    x = to_tensor(short, 32)
    with torch.no_grad():
        by_hand = sum(m.eval()(x).softmax(-1) for m in triple.model.members) / 3
        torch.testing.assert_close(triple.model.eval()(x), by_hand)
    assert len(short) == 8
    np.testing.assert_array_equal(classify(triple.model, short), by_hand.argmax(-1).numpy())
    vote = class_shares(triple.model, maps)
    assert vote.sum() == pytest.approx(1.0)
    assert member_spread(triple.model, maps) == pytest.approx(
        max(np.abs(class_shares(m, maps) - vote).max() for m in triple.model.members))
    assert member_spread(single.model.members[0], maps) == 0.0
    assert triple.confusion.sum() == 20 and np.trace(triple.confusion) / 20 == pytest.approx(triple.accuracy)
    with pytest.raises(ValueError, match="ensemble"):
        train(0)


def write_maps(folder, names) -> dict[str, np.ndarray]:
    folder.mkdir(parents=True)
    maps = {}
    for k, name in enumerate(names):
        maps[name] = np.full((3 + k % 3, 3 + k % 3), float(k))
        np.save(folder / f"{name}.npy", maps[name])
    return maps


def test_authors_raw_archive_round_trip(tmp_path):
    root = tmp_path / "head_classification_data"
    maps = write_maps(root / "raw" / "for_training", ["0001", "0023", "0005", "7_2", "0012", "0100", "0300", "unused"])
    (root / "raw").joinpath("labels.txt").write_text(
        "single_vertical = 1, 23\n\ndouble_vertical = 0005\ndiagonal = 7_2, 12\n"
        "vertical_diagonal = 100\nheterogeneous = 300\n")
    loaded, labels = load_authors_archive(root, "raw")
    names = ["0001", "0005", "0012", "0023", "0100", "0300", "7_2"]   # sorted, zero-padded, `_` names as they are
    assert [CLASSES[k] for k in labels] == ["vertical", "vertical", "diagonal", "vertical",
                                              "vertical+diagonal", "heterogeneous", "diagonal"]
    for m, name in zip(loaded, names):
        np.testing.assert_array_equal(m, maps[name])


def test_authors_normed_archive_round_trip(tmp_path):
    maps = write_maps(tmp_path / "normed" / "data", ["a_1", "b_2", "c_3"])
    (tmp_path / "normed" / "attention_norm_annotated.tsv").write_text("b_2\tblock\na_1\tvertical\nc_3\theterogeneous\n")
    loaded, labels = load_authors_archive(tmp_path, "normed")
    assert [CLASSES[k] for k in labels] == ["vertical", "block", "heterogeneous"]
    np.testing.assert_array_equal(loaded[1], maps["b_2"])


def test_authors_archive_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="labels.txt"):
        load_authors_archive(tmp_path, "raw")
    write_maps(tmp_path / "raw" / "for_training", ["0001"])
    (tmp_path / "raw" / "labels.txt").write_text("block = 1, 2\n")
    with pytest.raises(FileNotFoundError, match="0002.npy"):
        load_authors_archive(tmp_path, "raw")
    (tmp_path / "raw" / "labels.txt").write_text("zigzag = 1\n")
    with pytest.raises(ValueError, match="zigzag"):
        load_authors_archive(tmp_path, "raw")
    with pytest.raises(ValueError, match="kind"):
        load_authors_archive(tmp_path, "pretty")


def test_labelled_sets_and_classifiers_generated_and_archive(token_lists, tmp_path):
    generated = labelled_sets(token_lists, 10, seed=0)
    assert generated["raw"] is generated["normed"] and generated["raw"].source == "generated"
    assert np.bincount(generated["raw"].labels).tolist() == [10] * 5
    classifiers = train_map_classifiers(generated, seed=0, epochs=1, input_size=32, progress=False)
    assert classifiers["raw"].trained is classifiers["normed"].trained            # one CNN for both kinds
    assert (classifiers["raw"].row_normalize, classifiers["normed"].row_normalize) == (False, True)
    rng = np.random.default_rng(0)
    for kind, names_file in (("raw", "raw/labels.txt"), ("normed", "normed/attention_norm_annotated.tsv")):
        folder = tmp_path / ("raw/for_training" if kind == "raw" else "normed/data")
        folder.mkdir(parents=True)
        lines = []
        for k, label in enumerate(CLASSES):
            names = [f"{k}_{i}" for i in range(5)]
            for name in names:
                np.save(folder / f"{name}.npy", rng.uniform(size=(6, 6)))
            lines += [f"{label} = {', '.join(names)}"] if kind == "raw" else [f"{n}\t{label}" for n in names]
        (tmp_path / names_file).write_text("\n".join(lines) + "\n")
    archive_sets = labelled_sets([], 0, seed=0, authors_archive=tmp_path)
    assert archive_sets["normed"].source == "authors' archive (normed)" and len(archive_sets["raw"].maps) == 25
    archive = train_map_classifiers(archive_sets, seed=0, epochs=1, input_size=32, progress=False)
    assert archive["raw"].trained is not archive["normed"].trained
    assert not archive["normed"].row_normalize and not archive["raw"].row_normalize
    assert archive["raw"].trained.confusion.sum() == 5                    # 20% of 25 maps held out


def test_label_maps_rule_and_cnn():
    tokens = ["[CLS]", "a", "b", ",", "c", "[SEP]", "d", "e", "[SEP]"]
    lay, n = layout(tokens), len(tokens)
    vertical = np.zeros((n, n))
    vertical[:, 0] = 1
    diagonal = np.eye(n, k=1)
    diagonal[-1, -2] = 1
    block = (lay.segments[:, None] == lay.segments[None, :]).astype(float)
    maps = [np.stack([[vertical, 3 * diagonal], [block, np.full((n, n), 1 / n)]])]  # (L=2, H=2, n, n), unnormalised
    cnn_model = PatternCNN(32, generator=torch.Generator().manual_seed(0))
    trained = TrainedClassifier(cnn_model, 1.0, np.eye(5), (1,))
    for row_norm in (False, True):
        cnn, rule = label_maps(MapClassifier(trained, "test", row_norm), maps, [tokens])
        assert cnn.shape == rule.shape == (1, 2, 2)
        assert [CLASSES[k] for k in rule.ravel()] == ["vertical", "diagonal", "block", "heterogeneous"]
        seen = [row_normalize(m) for m in maps[0].reshape(4, n, n)] if row_norm else list(maps[0].reshape(4, n, n))
        np.testing.assert_array_equal(cnn.ravel(), classify(cnn_model, seen))
    with pytest.raises(ValueError, match="token list"):
        label_maps(MapClassifier(trained, "test", False), maps, [tokens[:-1]])


def test_head_class_counts_and_shares():
    labels = np.array([[[0, 1]], [[0, 4]], [[3, 1]]])            # 3 examples, 1 layer, 2 heads
    counts = head_class_counts(labels, np.array([[1, 0]]), task="RTE", model="fine-tuned", map="raw")
    assert len(counts) == 2 * len(CLASSES)
    assert list(counts.columns) == ["task", "model", "map", "layer", "head", "super_survivor", "class", "count"]
    head0 = counts[counts["head"] == 0].set_index("class")["count"]
    assert head0["vertical"] == 2 and head0["block"] == 1 and head0.sum() == 3
    assert counts[counts["head"] == 0].super_survivor.all() and not counts[counts["head"] == 1].super_survivor.any()
    both = pd.concat([counts, head_class_counts(labels[:1], np.zeros((1, 2)), task="RTE", model="pre-trained",
                                                  map="raw")])
    shares = group_shares(both)
    assert list(shares.columns) == ["task", "model", "map_kind", "group", "class", "count", "share"]
    sup = shares[(shares.group == "super-survivors") & (shares.model == "fine-tuned")].set_index("class")["share"]
    assert sup["vertical"] == pytest.approx(2 / 3) and sup["block"] == pytest.approx(1 / 3)
    everything = shares[(shares.group == "all heads") & (shares.model == "fine-tuned")].set_index("class")["share"]
    assert everything["diagonal"] == pytest.approx(2 / 6)
    assert not ((shares.group == "super-survivors") & (shares.model == "pre-trained")).any()   # none there
    assert shares.groupby(["model", "group"])["share"].sum().tolist() == pytest.approx([1.0] * 3)
    wide = share_table(shares)                                    # one column per class, 0 where none
    assert list(wide.columns) == list(CLASSES) and len(wide) == 3
    assert wide.loc[("RTE", "raw", "super-survivors", "fine-tuned"), "vertical"] == pytest.approx(2 / 3)
    assert wide.loc[("RTE", "raw", "super-survivors", "fine-tuned"), "diagonal"] == 0.0


def test_first_of_each_class():
    labels = np.array([[[4, 1]], [[1, 0]]])
    assert first_of_each_class(labels) == {"vertical": (1, 0, 1), "diagonal": (0, 0, 1), "heterogeneous": (0, 0, 0)}


def test_label_model_matches_its_parts():
    from conftest import tiny_encoded, tiny_model

    from lotterylib.analysis.attention_maps import example_maps

    net, enc = tiny_model(), tiny_encoded(n=3, seed=2)
    tokens = [["[CLS]", *[f"w{i}" for i in range(len(ids) - 2)], "[SEP]"] for ids in enc.input_ids]
    trained = TrainedClassifier(PatternCNN(32, generator=torch.Generator().manual_seed(0)), 1.0, np.eye(5), (1,))
    classifiers = {"raw": MapClassifier(trained, "test", False), "normed": MapClassifier(trained, "test", True)}
    out = label_model(net, enc, tokens, classifiers, rules=Rules.from_setting("authors"))
    assert list(out) == ["raw", "normed"]
    for kind, (maps, cnn, rule) in out.items():
        expected = example_maps(net, enc, normed=kind == "normed", rules=Rules.from_setting("authors"))
        assert all(np.allclose(a, b) for a, b in zip(maps, expected))
        assert cnn.shape == rule.shape == (3, 3, 4)                       # examples, layers, heads
        np.testing.assert_array_equal(rule, label_maps(classifiers[kind], expected, tokens)[1])


def test_classify_never_cuts_off_real_tokens():
    """Maps longer than the CNN's input are classified whole (not cropped to the top-left corner); shorter
    ones are centre-padded; mixed sizes come back in input order."""
    cnn = PatternCNN(32, generator=torch.Generator().manual_seed(0))
    rng = np.random.default_rng(0)
    maps = [row_normalize(rng.random((n, n))) for n in (10, 50, 32, 70, 50)]
    expected = [int(cnn(torch.from_numpy(pad_or_crop(m, max(len(m), 32)).astype(np.float32))[None, None])
                    .argmax()) for m in maps]
    np.testing.assert_array_equal(classify(cnn, maps), expected)
    # the tail of a long map changes the logits: it is seen, not cropped away
    long = maps[3].copy()
    tail = long.copy()
    tail[40:, :] = 0
    tail[40:, 0] = 1.0
    logits = [cnn(torch.from_numpy(x.astype(np.float32))[None, None]) for x in (long, tail)]
    assert not torch.allclose(*logits)
    cropped = [cnn(torch.from_numpy(pad_or_crop(x, 32).astype(np.float32))[None, None]) for x in (long, tail)]
    assert torch.allclose(*cropped)                                     # what a fixed crop would have missed


@pytest.mark.slow
def test_agreement_with_the_rule_on_generated_and_real_maps_is_the_documented_one():
    """docs/method.md, "Attention patterns": one CNN (100 generated maps per class, 15 epochs) agrees with the rule
    labeller on >= 80% of held-out generated maps, but on only 60% of the real maps of the documented setting
    (pre-trained MiniLM-L6, 12 dev examples each of SST-2 and RTE): below the 80% target, for the reason given
    there. Diagonal maps, which the picture shows, agree."""
    from conftest import GLUE_DIR

    from lotterylib.stages.head_patterns import pretrained_maps

    if not GLUE_DIR.is_dir():
        pytest.skip(f"shared GLUE copy not found at {GLUE_DIR}")
    tokenizer = load_tokenizer("minilm-l6")
    maps, labels = generate_dataset(glue_token_lists(tokenizer, glue_dir=GLUE_DIR, max_len=64, seed=0), 100, 0)
    trained = train_classifier(maps, labels, seed=0, epochs=15, progress=False, device="cpu")
    assert trained.accuracy >= 0.8
    real, rule = zip(*(pretrained_maps("minilm-l6", task, tokenizer, str(GLUE_DIR), examples=12, max_seq_len=128)
                       for task in ("SST-2", "RTE")))
    real, rule = [m for part in real for m in part], np.concatenate(rule)
    cnn = classify(trained.model, real)
    assert len(real) == 3456 and np.mean(cnn == rule) == pytest.approx(0.60, abs=0.03)
    diagonal = rule == CLASSES.index("diagonal")
    assert np.mean(cnn[diagonal] == rule[diagonal]) >= 0.9
