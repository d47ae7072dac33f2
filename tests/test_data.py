
import numpy as np
import pytest

from lotterylib.core import data
from lotterylib.core.data import GlueDataError, load_split
from lotterylib.core.models import load_tokenizer
from lotterylib.core.tasks import TASKS, get_task

LOCAL_FILES = {  # what the shared copy holds: (task, split) -> official rows
    (t, s): TASKS[t].official_rows[s]
    for t in ("CoLA", "SST-2", "MRPC", "STS-B", "RTE", "WNLI") for s in ("train", "dev")
} | {("QNLI", "dev"): 5463}


@pytest.mark.parametrize(("task", "split"), sorted(LOCAL_FILES))
def test_every_shared_file_parses_with_official_counts_and_labels(glue_dir, task, split):
    d = load_split(task, split, glue_dir)
    assert len(d) == LOCAL_FILES[(task, split)] == len(d.texts)
    t = get_task(task)
    assert all(len(x) == len(t.text_columns) and all(isinstance(s, str) for s in x) for x in d.texts)
    if t.is_regression:
        assert d.labels.dtype == np.float32 and d.labels.min() >= 0 and d.labels.max() <= 5
    else:
        assert set(np.unique(d.labels)) == set(range(t.num_labels))


def test_parsing_quirks(glue_dir):
    mrpc = load_split("MRPC", "dev", glue_dir)  # BOM on the header: the columns are still found
    assert mrpc.texts[0][0].startswith("He said the foodservice pie business")
    assert mrpc.labels[:3].tolist() == [1, 0, 0]
    cola = load_split("CoLA", "train", glue_dir)  # no header: the first line is data
    assert cola.texts[0] == ("Our friends won't buy this analysis, let alone the next one we propose.",)
    assert cola.labels[0] == 1
    rte = load_split("RTE", "dev", glue_dir)  # string labels map to the hub ids
    assert rte.labels[0] == get_task("RTE").labels.index("not_entailment") == 1
    # an unbalanced quote does not swallow the following lines: counts above already prove it; spot-check
    stsb = load_split("STS-B", "train", glue_dir)
    assert any('"' in a or '"' in b for a, b in stsb.texts)


def test_malformed_row_names_the_file_and_line(tmp_path):
    p = tmp_path / "RTE" / "dev.tsv"
    p.parent.mkdir()
    p.write_text("index\tsentence1\tsentence2\tlabel\n0\ta\tb\tentailment\n1\tonly two\n")
    with pytest.raises(GlueDataError, match=r"dev.tsv, line 3: 2 tab-separated fields, expected 4"):
        load_split("RTE", "dev", tmp_path)
    p.write_text("index\tsentence1\tsentence2\tlabel\n0\ta\tb\tmaybe\n")
    with pytest.raises(GlueDataError, match="unknown RTE label 'maybe'"):
        load_split("RTE", "dev", tmp_path)


@pytest.mark.parametrize("content, says", [("sentence\tlabel\n", "only a header"), ("", "it is empty")])
def test_a_split_without_examples_is_a_clear_error(tmp_path, content, says):
    (tmp_path / "dev.tsv").write_text(content)
    with pytest.raises(data.GlueDataError, match=f"dev.tsv holds no examples \\({says}\\)\\. Fix: re-download it"):
        data.read_tsv("SST-2", tmp_path / "dev.tsv")


def test_no_source_gives_one_clear_error(tmp_path, monkeypatch):
    import datasets

    def offline(*a, **k):
        raise ConnectionError("offline")

    monkeypatch.setattr(datasets, "load_dataset", offline)
    with pytest.raises(GlueDataError) as err:
        load_split("QNLI", "train", tmp_path)
    msg = str(err.value)
    assert "QNLI train" in msg and str(tmp_path / "QNLI" / "train.tsv") in msg and "nyu-mll/glue/qnli" in msg
    assert "LOTTERY_GLUE_DIR" in msg and "HF_HUB_OFFLINE" in msg


def test_unknown_task_and_split():
    with pytest.raises(ValueError, match="Unknown GLUE task 'SST3'"):
        get_task("SST3")
    assert get_task("stsb").name == get_task("STS-B").name == "STS-B"
    with pytest.raises(ValueError, match="no split 'dev_mm'"):
        load_split("RTE", "dev_mm")


def test_hub_path_with_a_local_stand_in(monkeypatch):
    """The hub branch: `datasets.load_dataset("nyu-mll/glue", ...)`, here answered by a local Dataset."""
    import datasets

    calls = []

    def fake_load(path, name, split):
        calls.append((path, name, split))
        return datasets.Dataset.from_dict({"premise": ["p1", "p2"], "hypothesis": ["h1", "h2"], "label": [2, 0]})

    monkeypatch.setattr(datasets, "load_dataset", fake_load)
    monkeypatch.delenv(data.GLUE_DIR_ENV, raising=False)
    d = load_split("MNLI", "dev")
    assert calls == [("nyu-mll/glue", "mnli", "validation_matched")]
    assert d.texts == [("p1", "h1"), ("p2", "h2")] and d.labels.tolist() == [2, 0]
    assert d.source == "hub:nyu-mll/glue/mnli"
    load_split("MNLI", "dev_mm")
    assert calls[-1] == ("nyu-mll/glue", "mnli", "validation_mismatched")


def test_env_var_selects_the_local_folder(glue_dir, monkeypatch):
    monkeypatch.setenv(data.GLUE_DIR_ENV, str(glue_dir))
    assert load_split("WNLI", "dev").source == str(glue_dir / "WNLI" / "dev.tsv")


def test_subsample_is_seeded_and_keeps_order(glue_dir):
    d = load_split("RTE", "train", glue_dir)
    a, b, c = data.subsample(d, 100, 0), data.subsample(d, 100, 0), data.subsample(d, 100, 1)
    assert a.texts == b.texts and a.texts != c.texts and len(a) == 100
    pos = [d.texts.index(t) for t in a.texts]
    assert pos == sorted(pos)
    assert data.subsample(d, 0, 0) is d and data.subsample(d, 10**6, 0) is d


def test_majority_baseline_from_dev_labels(glue_dir):
    sst = load_split("SST-2", "dev", glue_dir)
    assert data.majority_baseline(sst) == pytest.approx(444 / 872)  # paper_numbers: 0.509174
    mrpc = load_split("MRPC", "dev", glue_dir)
    assert data.majority_baseline(mrpc) == pytest.approx(279 / 408)  # 0.683824
    assert data.majority_baseline(load_split("CoLA", "dev", glue_dir)) == 0.0


def test_tokenise_pad_and_batch(glue_dir):
    tok = load_tokenizer("minilm-l6")
    d = data.subsample(load_split("MRPC", "dev", glue_dir), 37, 0)
    enc = data.encode(d, tok, max_seq_len=32)
    assert max(len(x) for x in enc.input_ids) == 32
    first = enc.input_ids[0]
    assert first[0] == tok.cls_token_id and first.count(tok.sep_token_id) == 2  # a sentence pair
    assert set(enc.token_type_ids[0]) == {0, 1}
    batches = data.batch_indices(enc, 8, shuffle=False)
    assert sorted(np.concatenate(batches).tolist()) == list(range(37))
    lengths = [len(enc.input_ids[i]) for i in np.concatenate(batches)]
    assert lengths == sorted(lengths, reverse=True)  # evaluation: sorted by length
    batch = data.collate(enc, batches[-1])
    n = len(enc.input_ids[batches[-1][0]])
    assert batch["input_ids"].shape == (len(batches[-1]), n)
    assert batch["attention_mask"].sum().item() == sum(len(enc.input_ids[i]) for i in batches[-1])
    train = [data.batch_indices(enc, 8, shuffle=True, seed=s) for s in (3, 3, 4)]
    assert [b.tolist() for b in train[0]] == [b.tolist() for b in train[1]]
    assert [b.tolist() for b in train[0]] != [b.tolist() for b in train[2]]
    assert sorted(np.concatenate(train[0]).tolist()) == list(range(37))


def test_collate_pads_with_the_tokenizers_pad_id(glue_dir):
    tok = load_tokenizer("minilm-l6")
    tok.pad_token = tok.unk_token  # a padding id other than 0
    enc = data.encode(data.subsample(load_split("MRPC", "dev", glue_dir), 4, 0), tok, max_seq_len=128)
    assert enc.pad_id == tok.unk_token_id != 0
    batch = data.collate(enc, [0, 1, 2, 3])
    padding = batch["attention_mask"] == 0
    assert padding.any() and (batch["input_ids"][padding] == tok.unk_token_id).all()
    assert (batch["input_ids"][~padding] != tok.unk_token_id).all()
    tok.pad_token = None
    with pytest.raises(ValueError, match="no padding token"):
        data.encode(data.subsample(load_split("MRPC", "dev", glue_dir), 4, 0), tok)


def test_group_chunk_size_is_bounded_by_the_train_size():
    assert data.group_chunk_size(100_000, 32) == 50 * 32             # large sets: the 50-batch mega-chunk
    assert data.group_chunk_size(1500, 32) == 1500 // 16 == 93        # the demo: at most 1/16 of the train set
    assert data.group_chunk_size(48, 16) == 16                        # never below one batch (= random batches)
    assert data.group_chunk_size(1500, 32, min_chunks=1) == 1500      # the former rule: one chunk per epoch
    with pytest.raises(ValueError, match="min_chunks must be >= 1"):
        data.group_chunk_size(1500, 32, min_chunks=0)


def test_pair_repeat_rate_by_hand():
    first = [np.array([0, 1, 2]), np.array([3, 4, 5])]                # 6 pairs share a batch
    second = [np.array([0, 1, 3]), np.array([2, 4, 5])]               # (0,1) and (4,5) meet again
    assert data.pair_repeat_rate(first, second) == pytest.approx(2 / 6)
    assert data.pair_repeat_rate(first, first) == 1.0
    assert data.pair_repeat_rate(first, [np.array([0, 3]), np.array([1, 4]), np.array([2, 5])]) == 0.0
    with pytest.raises(ValueError, match="same examples"):
        data.pair_repeat_rate(first, [np.array([0, 1, 2])])


def length_encoded(n: int, seed: int = 0) -> data.Encoded:
    lengths = np.random.default_rng(seed).integers(5, 60, n)
    return data.Encoded([[1] * k for k in lengths], [[0] * k for k in lengths], np.zeros(n, dtype=np.int64))


def test_grouped_batches_stay_random_at_small_train_sizes():
    """1,500 examples, batch 32: under the former rule (one sorted chunk per epoch) 40% of batch mates met again
    in the next epoch; chunks of at most 1/16 of the set bring it near random batches' (B - 1) / (n - 1)."""
    enc = length_encoded(1500)
    rate = {(g, k): np.mean([data.pair_repeat_rate(*(data.batch_indices(enc, 32, True, s + e, g, k) for e in (0, 1)))
                             for s in range(0, 20, 2)])
            for g, k in ((False, 1), (True, 1), (True, data.GROUP_MIN_CHUNKS))}
    chance = 31 / 1499
    assert rate[(False, 1)] == pytest.approx(chance, rel=0.15)
    assert rate[(True, 1)] > 10 * chance
    assert rate[(True, data.GROUP_MIN_CHUNKS)] < 2.5 * chance
    batches = data.batch_indices(enc, 32, True, 7)
    assert sorted(np.concatenate(batches).tolist()) == list(range(1500))
    lengths = np.array([len(x) for x in enc.input_ids])
    padding = lambda bs: sum(len(b) * lengths[b].max() for b in bs) / lengths.sum()  # noqa: E731
    assert padding(batches) < 0.9 * padding(data.batch_indices(enc, 32, True, 7, group_by_length=False))
