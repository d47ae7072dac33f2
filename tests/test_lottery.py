"""Lottery-ticket tests: drawing, pruned and re-fine-tuned scores on tiny models, tidy-table summaries, Table 2."""
import numpy as np
import pandas as pd
import pytest
import torch

from conftest import tiny_encoded, tiny_model
from lotterylib.analysis import baselines, lottery as lt, lottery_stats as ls, plots, reference, tables as tb
from lotterylib.core import files, finetuning
from lotterylib.core.gates import Gates
from lotterylib.core.rules import Rules
from lotterylib.core.tasks import get_task
from lotterylib.core.training import TrainConfig, evaluate
from lotterylib.pruning import magnitude as mg, masks as mk, subnetworks as sn
from lotterylib.stages import runs
from lotterylib.workflow import results
from lotterylib.workflow.report import folders, frames

AUTHORS = Rules.from_setting("authors")

TASK = get_task("RTE")
CFG = TrainConfig(learning_rate=1e-3, batch_size=8, epochs=1, bf16=False)  # exact comparisons: fp32


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    """A tiny random BERT saved like a pre-trained model, so `finetuning.finetune_model` can load it."""
    path = tmp_path_factory.mktemp("tiny_bert")
    tiny_model(seed=11).save_pretrained(path)
    return str(path)


def setup_for(model_dir, **kw):
    return lt.LotterySetup(model_dir, TASK, tiny_encoded(16, seed=1), tiny_encoded(12, seed=2), CFG, seed=3,
                           progress=False, **kw)


def good_masks(seed=0):
    r = np.random.default_rng(seed)
    head = (r.random((3, 4)) < 0.5).astype(float)
    head[0, 0] = 1
    mlp = np.array([1.0, 0.0, 1.0])
    model = tiny_model()
    g = torch.Generator().manual_seed(seed)
    wm = {n: torch.rand(getattr(m, p).shape, generator=g) < 0.4 for n, m, p in mg.prunable_parameters(model)}
    return head, mlp, wm


def test_draw_subnetworks_is_a_function_of_the_seed():
    head, mlp, wm = good_masks()
    stacked = np.stack([head, np.ones_like(head)]), np.stack([mlp, np.ones_like(mlp)])
    a, b, c = (lt.draw_subnetworks(s, head, mlp, wm, *stacked) for s in (5, 5, 6))
    for name in ("good", "random", "bad"):
        assert all(np.array_equal(x, y) for x, y in zip(a["s"][name], b["s"][name]))
        assert all(torch.equal(a["m"][name][k], b["m"][name][k]) for k in wm)
        assert mk.head_masks_size(*a["s"][name]) == mk.head_masks_size(head, mlp)
        assert mk.kept_count(a["m"][name]) == mk.kept_count(wm)
    assert not all(np.array_equal(x, y) for x, y in zip(a["s"]["bad"], c["s"]["bad"]))
    assert not all(torch.equal(a["m"]["random"][k], c["m"]["random"][k]) for k in wm)
    assert np.array_equal(a["super"]["super"][0], head) and np.array_equal(a["super"]["super"][1], mlp)


def test_s_subnetworks_round_trip(tmp_path):
    head, mlp, _ = good_masks()
    subnets = sn.s_subnetworks(head, mlp, np.random.default_rng(0))
    back = mk.load_head_mask_sets(mk.save_head_mask_sets(tmp_path / "s.npz", subnets))
    assert list(back) == ["good", "random", "bad"]
    for name in subnets:
        assert all(np.array_equal(x, y) for x, y in zip(back[name], subnets[name]))


def test_pruned_scores_use_the_masks_and_leave_the_model_unchanged():
    sts = get_task("STS-B")   # a continuous metric: any change of the predictions changes the score
    setup = lt.LotterySetup("unused", sts, tiny_encoded(4), tiny_encoded(20, num_labels=1, seed=2), CFG, seed=3,
                            progress=False)
    net = tiny_model(num_labels=1, seed=4)
    head, mlp, wm = good_masks()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    plain = evaluate(net, sts, setup.dev, progress=False)
    with Gates(net, head, mlp) as gates:
        expected_s = evaluate(net, sts, setup.dev, gates=gates, progress=False).metrics["score"]
    mg.apply_weight_masks(net, wm)
    expected_m = evaluate(net, sts, setup.dev, progress=False).metrics["score"]
    mg.remove_weight_masks(net, permanent=False)
    assert plain.metrics["score"] not in (expected_s, expected_m)
    assert lt.pruned_s(setup, net, head, mlp).score == expected_s
    assert lt.pruned_m(setup, net, wm).score == expected_m
    after = evaluate(net, sts, setup.dev, progress=False)               # no gates or masks left behind
    assert np.array_equal(after.preds, plain.preds)
    assert mg.current_masks(net) == {}
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())


def test_refinetuning_keeps_masks_and_caches_identical_s_subnetworks(model_dir, monkeypatch):
    setup = setup_for(model_dir)
    head, mlp, wm = good_masks()
    calls = []
    real = lt.finetune_model

    def spy(model, task, train, cfg, seed, **kw):
        calls.append((cfg.epochs, kw.get("random_init", False)))
        net, gates, losses = real(model, task, train, cfg, seed, **kw)
        if kw.get("weight_masks") is not None:   # masked weights are exactly zero after training
            for name, m in wm.items():
                module, param = name.rsplit(".", 1)
                assert torch.all(getattr(net.get_submodule(module), param)[~m] == 0), name
                assert torch.equal(mg.current_masks(net)[name], m)
        return net, gates, losses

    monkeypatch.setattr(lt, "finetune_model", spy)
    first = lt.refinetuned_s(setup, head, mlp)
    again = lt.refinetuned_s(setup, head.astype(np.float32), mlp)   # same subnetwork: from the cache
    lt.refinetuned_s(setup, head, mlp, epochs_factor=2.0)
    lt.refinetuned_s(setup, head, mlp, random_init=True)
    assert first == again and calls == [(1.0, False), (2.0, False), (1.0, True)]
    # by hand: the same fine-tuning and scoring of the physically pruned s-subnetwork
    net, _, _ = real(model_dir, TASK, setup.train, CFG, 3, head_mask=head, mlp_mask=mlp, progress=False, physical=True)
    assert first.score == evaluate(net, TASK, setup.dev, progress=False).metrics["score"]
    lt.refinetuned_m(setup, wm)
    assert len(calls) == 4


def test_lottery_and_extra_rows(model_dir):
    setup = setup_for(model_dir)
    head, mlp, wm = good_masks()
    net = tiny_model(seed=4)
    stacked = np.stack([head]), np.stack([mlp])                           # one seed: super = good
    subnets = lt.draw_subnetworks(3, head, mlp, wm, *stacked)
    scores = lt.tidy(lt.s_lottery_rows(setup, net, subnets["s"]) + lt.m_lottery_rows(setup, net, subnets["m"])
                     + lt.extra_rows(setup, net, subnets["s"], subnets["super"]))
    assert list(scores.columns) == lt.SCORE_COLUMNS + lt.HELDOUT_COLUMNS + lt.SPREAD_COLUMNS
    assert len(scores) == 6 + 6 + 2 + 6
    assert scores[lt.HELDOUT_COLUMNS].isna().all().all() and lt.full_rows(setup, net) == []  # selection "dev"
    s = scores.set_index(["method", "subnetwork", "setting"])
    assert s.loc[(lt.S_PRUNING, "good", lt.PRUNED), "score"] == lt.pruned_s(setup, net, head, mlp).score
    assert s.loc[(lt.SUPER_SURVIVORS, "super", lt.REFINETUNED), "score"] == s.loc[(lt.S_PRUNING, "good", lt.REFINETUNED), "score"]
    assert s.loc[(lt.S_PRUNING, "bad", lt.REFINETUNED_2X), "epochs"] == 2 * CFG.epochs
    assert s.loc[(lt.S_PRUNING, "good", lt.PRUNED), "heads_kept"] == head.sum()
    assert s.loc[(lt.S_PRUNING, "good", lt.PRUNED), "weight_share"] == pytest.approx(sn.weight_share(head, mlp, net.config))
    assert s.loc[(lt.M_PRUNING, "bad", lt.PRUNED), "sparsity"] == pytest.approx(mk.sparsity(wm))
    table = lt.seed_table(scores)
    assert table.loc[(lt.M_PRUNING, "random"), lt.REFINETUNED] == s.loc[(lt.M_PRUNING, "random", lt.REFINETUNED), "score"]


def test_split_runs_score_pruned_rows_and_the_full_model_on_both_halves(model_dir):
    """selection "split": every pruned row (and the full model) is also scored on the half the masks were chosen
    on; `score` and `score_unseen` stay on the report half; re-fine-tuned rows have no held-out scores."""
    search = tiny_encoded(10, seed=5)
    setup = setup_for(model_dir, search_dev=search)
    head, mlp, wm = good_masks()
    net = tiny_model(seed=4)
    subnets = lt.draw_subnetworks(3, head, mlp, wm, np.stack([head]), np.stack([mlp]), both_rules=False)
    scores = lt.tidy(lt.full_rows(setup, net) + lt.s_lottery_rows(setup, net, {"good": subnets["s"]["good"]})
                     + lt.m_lottery_rows(setup, net, {"bad": subnets["m"]["bad"]}))
    s = scores.set_index(["method", "subnetwork", "setting"])
    with Gates(net, head, mlp) as gates:   # by hand: the good s-mask on the search half and on the report half
        on_search = evaluate(net, TASK, search, gates=gates, progress=False).metrics["score"]
        on_report = evaluate(net, TASK, setup.dev, gates=gates, progress=False).metrics["score"]
    good = s.loc[(lt.S_PRUNING, "good", lt.PRUNED)]
    assert (good.score_search, good.score_unseen, good.score) == (on_search, on_report, on_report)
    bad = s.loc[(lt.M_PRUNING, "bad", lt.PRUNED)]
    assert bad.score_search == lt.pruned_m(setup, net, subnets["m"]["bad"], dev=search).score
    assert bad.score_unseen == bad.score == lt.pruned_m(setup, net, subnets["m"]["bad"]).score
    full = s.loc[(lt.FULL, "", lt.FINETUNED)]
    assert full.score_search == evaluate(net, TASK, search, progress=False).metrics["score"]
    assert full.score_unseen == full.score == evaluate(net, TASK, setup.dev, progress=False).metrics["score"]
    assert (full.heads_kept, full.mlps_kept, full.weight_share) == (12, 3, 1.0)
    assert scores[scores.setting == lt.REFINETUNED][lt.HELDOUT_COLUMNS].isna().all().all()
    assert scores[scores.setting != lt.REFINETUNED][lt.HELDOUT_COLUMNS].notna().all().all()
    assert lt.FULL not in lt.seed_table(scores).index.get_level_values("method")
    checked = lt.search_setup(setup)                        # the check against the searches' scores
    assert checked.dev is search and checked.search_dev is None


def test_leak_table_by_hand():
    """Two seeds: full 0.90 / 0.80 on the search half, 0.85 / 0.80 on the unseen half; good pruned 0.81 / 0.76
    on the search half, 0.70 / 0.72 unseen; random 0.5 on both halves (seed 2 only: random has one seed)."""
    rows = []
    for seed, (fs, fu, gs, gu) in ((1, (0.90, 0.85, 0.81, 0.70)), (2, (0.80, 0.80, 0.76, 0.72))):
        rows += [dict(task="SST-2", seed=seed, method=lt.FULL, subnetwork="", setting=lt.FINETUNED, score=fu,
                      score_search=fs, score_unseen=fu),
                 dict(task="SST-2", seed=seed, method=lt.S_PRUNING, subnetwork="good", setting=lt.PRUNED, score=gu,
                      score_search=gs, score_unseen=gu),
                 dict(task="SST-2", seed=seed, method=lt.S_PRUNING, subnetwork="good", setting=lt.REFINETUNED, score=0.8)]
    rows.append(dict(task="SST-2", seed=2, method=lt.M_PRUNING, subnetwork="random", setting=lt.PRUNED, score=0.5,
                     score_search=0.5, score_unseen=0.5))
    per_seed = lt.leaks(lt.tidy(rows)).set_index(["seed", "method", "subnetwork"])
    assert len(per_seed) == 5                                                    # no re-fine-tuned row
    assert per_seed.loc[(1, lt.S_PRUNING, "good"), "leak"] == pytest.approx(0.11)
    assert per_seed.loc[(1, lt.S_PRUNING, "good"), "share_search"] == pytest.approx(0.81 / 0.90)
    assert per_seed.loc[(1, lt.S_PRUNING, "good"), "share_unseen"] == pytest.approx(0.70 / 0.85)
    assert per_seed.loc[(2, lt.M_PRUNING, "random"), "share_unseen"] == pytest.approx(0.5 / 0.8)
    table = lt.leak_table(lt.tidy(rows)).set_index(["task", "method", "subnetwork"])
    good = table.loc[("SST-2", lt.S_PRUNING, "good")]
    assert good.leak_mean == pytest.approx(0.075) and good.leak_std == pytest.approx(np.std([0.11, 0.04], ddof=1))
    assert (good["leak seed 1"], good["leak seed 2"], good.seeds) == (pytest.approx(0.11), pytest.approx(0.04), 2)
    assert good.share_unseen == pytest.approx((0.70 / 0.85 + 0.72 / 0.80) / 2)
    assert good.score_search == pytest.approx(0.785)
    full = table.loc[("SST-2", lt.FULL, "")]
    assert full.leak_mean == pytest.approx(0.025) and full.share_search == full.share_unseen == 1.0
    rand = table.loc[("SST-2", lt.M_PRUNING, "random")]
    assert rand.seeds == 1 and np.isnan(rand.leak_std) and np.isnan(rand["leak seed 1"])
    old = fake_scores()[lt.SCORE_COLUMNS]                                        # "dev" runs and older runs
    assert lt.leak_table(fake_scores()).empty and lt.leak_table(old).empty and lt.leaks(old).empty


def fake_scores(extras=True):
    """Two tasks, two seeds, hand-picked scores: good 0.8 / 0.9 pruned, random 0.6 / 0.7, bad 0.4 / 0.6."""
    rows = []
    base = {"good": (0.8, 0.9), "random": (0.6, 0.7), "bad": (0.4, 0.6)}
    for t in ("SST-2", "STS-B"):
        for k, seed in enumerate((1, 2)):
            for method in (lt.S_PRUNING, lt.M_PRUNING):
                for n, (p, r) in base.items():
                    rows.append(dict(task=t, seed=seed, method=method, subnetwork=n, setting=lt.PRUNED,
                                     score=p + 0.1 * k))
                    rows.append(dict(task=t, seed=seed, method=method, subnetwork=n, setting=lt.REFINETUNED,
                                     score=r + 0.1 * k - (0.2 if t == "STS-B" else 0)))
            if extras:
                rows.append(dict(task=t, seed=seed, method=lt.S_PRUNING, subnetwork="bad", setting=lt.REFINETUNED_2X,
                                 score=0.75 + 0.1 * k))
                rows.append(dict(task=t, seed=seed, method=lt.RANDOM_INIT, subnetwork="random",
                                 setting=lt.REFINETUNED, score=0.5))
                for n, v in (("super", 0.85), ("bad", 0.3), ("random", 0.5)):
                    for setting in (lt.PRUNED, lt.REFINETUNED):
                        rows.append(dict(task=t, seed=seed, method=lt.SUPER_SURVIVORS, subnetwork=n, setting=setting,
                                         score=v, heads_kept=10, mlps_kept=4, weight_share=0.25 + 0.1 * k))
    return lt.tidy(rows)


def fake_refs():
    return pd.DataFrame({"full_mean": [0.9, 0.8], "full_std": [0.02, 0.04], "majority": [0.5, 0.0]},
                        index=pd.Index(["SST-2", "STS-B"], name="task"))


def test_seed_stats_and_lottery_means_by_hand():
    stats = ls.seed_stats(fake_scores())
    row = stats.set_index(["task", "method", "subnetwork", "setting"]).loc[("SST-2", lt.S_PRUNING, "bad", lt.PRUNED)]
    assert row["mean"] == pytest.approx(0.45) and row["std"] == pytest.approx(np.std([0.4, 0.5], ddof=1))
    assert row["seeds"] == 2
    means = ls.lottery_means(stats, fake_refs())
    assert list(means.columns) == ["good pruned", "random pruned", "bad pruned", "good re-fine-tuned",
                                   "random re-fine-tuned", "bad re-fine-tuned", "full", "majority"]
    assert means.loc[(lt.M_PRUNING, "STS-B"), "bad re-fine-tuned"] == pytest.approx(0.45)
    assert means.loc[(lt.M_PRUNING, "STS-B"), "full"] == 0.8


def test_table2_without_baselines_macro_average_and_marks(tmp_path):
    stats = ls.seed_stats(fake_scores())
    refs = fake_refs()
    table = tb.table2(stats, refs, {})
    assert list(table.index) == [tb.MAJORITY, *(r for r in tb.TABLE2_ROWS if "authors" not in r)]  # no such rows
    assert list(table.columns) == ["SST-2", "STS-B", "average"]
    assert table.loc["bad s-pruned (re-fine-tuned)", "SST-2"] == pytest.approx(0.65)
    assert table.loc["bad s-pruned (re-fine-tuned)", "average"] == pytest.approx((0.65 + 0.45) / 2)
    assert table.loc[tb.MAJORITY, "average"] == pytest.approx(0.25)
    assert table.loc["random init + random s-pruning", "average"] == pytest.approx(0.5)
    no_extras = tb.table2(ls.seed_stats(fake_scores(extras=False)), refs, {})
    assert "random init + random s-pruning" not in no_extras.index

    csv = tmp_path / "baselines.csv"
    pd.DataFrame({"model": ["CBOW", "CBOW", "BiLSTM+ELMo"], "task": ["SST-2", "STSB", "SST-2"],
                  "score": [0.8, 0.6, 0.9]}).to_csv(csv, index=False)
    rows = {k: {t: v[t] for t in v if t in ("SST-2", "STS-B")} for k, v in folders.load_baselines(csv).items()}
    assert rows["CBOW"] == {"SST-2": 0.8, "STS-B": 0.6}                   # the CSV overrides the shipped rows
    rows = {"CBOW": rows["CBOW"], "BiLSTM+ELMo": {"SST-2": 0.9}}
    table = tb.table2(stats, refs, rows)
    assert table.loc["CBOW", "average"] == pytest.approx(0.7)
    assert np.isnan(table.loc["BiLSTM+ELMo", "average"])                  # lacks STS-B: no average
    marked = tb.mark_best(table, {"*": list(tb.TABLE2_ROWS)[:2], "†": [tb.MAJORITY, "CBOW", "BiLSTM+ELMo"]})
    assert marked.loc["BiLSTM+ELMo", "SST-2"] == "0.900 †" and marked.loc["CBOW", "SST-2"] == "0.800"
    assert marked.loc["CBOW", "STS-B"] == "0.600 †" and marked.loc["BiLSTM+ELMo", "STS-B"] == ""
    # bad s and bad m have the same fake scores: both marked
    assert marked.loc["bad s-pruned (re-fine-tuned)", "SST-2"].endswith(" *")
    assert marked.loc["bad m-pruned (re-fine-tuned)", "SST-2"].endswith(" *")
    assert marked.loc["random init + random s-pruning", "SST-2"] == "0.500"
    bad = tmp_path / "bad.csv"
    pd.DataFrame({"name": ["CBOW"], "task": ["SST-2"], "score": [0.5]}).to_csv(bad, index=False)
    with pytest.raises(ValueError, match="model"):
        folders.load_baselines(bad)


def test_shipped_glue_baselines_are_the_glue_dev_table():
    rows = folders.load_baselines("")
    assert list(rows) == list(tb.GLUE_ROWS) == ["CBOW", "BiLSTM+GloVe", "BiLSTM+ELMo"]
    glue9 = ["CoLA", "SST-2", "MRPC", "QQP", "STS-B", "MNLI", "QNLI", "RTE", "WNLI"]
    assert all(list(v) == glue9 for v in rows.values())
    # GLUE Table 6, single-task BiLSTM (GloVe), scaled by 1/100: CoLA MCC, MRPC accuracy (not F1), STS-B Pearson
    assert rows["BiLSTM+GloVe"]["CoLA"] == 0.176 and rows["BiLSTM+GloVe"]["MRPC"] == 0.779
    assert rows["BiLSTM+ELMo"]["STS-B"] == 0.703 and rows["CBOW"]["QNLI"] == 0.625
    table = tb.table2(ls.seed_stats(fake_scores()), fake_refs(), rows)
    assert table.loc["BiLSTM+GloVe", "average"] == pytest.approx((0.875 + 0.716) / 2)
    assert table.loc["CBOW", "average"] == pytest.approx((0.795 + 0.706) / 2)


def test_glue_baselines_wnli_is_the_dev_majority_rate(glue_dir):
    """GLUE substitutes the most-frequent-class guess on WNLI: its dev table must show our dev majority."""
    from lotterylib.core.data import load_split, majority_baseline

    majority = majority_baseline(load_split("WNLI", "dev", glue_dir))
    for name, row in folders.load_baselines("").items():
        assert row["WNLI"] == pytest.approx(majority, abs=5e-4), name


def test_paper_numbers_side_by_side(tmp_path):
    path = tmp_path / "paper.csv"
    pd.DataFrame({"experiment": ["head_mlp_bad_1_retrained", "global_magnitude", "freq_baseline"],
                  "task": ["SST-2", "SST-2", "STS-B"], "mean_over_5_seeds": [0.8, 0.9, 0.02],
                  "std_ddof1_over_5_seeds": [0.01, 0.02, 0.0]}).to_csv(path, index=False)
    stats = ls.with_paper(ls.seed_stats(fake_scores()), path).set_index(["task", "method", "subnetwork", "setting"])
    assert stats.loc[("SST-2", lt.S_PRUNING, "bad", lt.REFINETUNED), "paper_mean"] == 0.8
    assert stats.loc[("SST-2", lt.M_PRUNING, "good", lt.PRUNED), "paper_std"] == 0.02
    assert np.isnan(stats.loc[("SST-2", lt.M_PRUNING, "good", lt.REFINETUNED), "paper_mean"])
    paper = tb.table2_paper(["SST-2", "STS-B"], path)
    assert paper.loc["majority class (paper)", "STS-B"] == 0.02
    assert paper.loc["bad s-pruned (re-fine-tuned) (paper)", "SST-2"] == 0.8
    assert tb.table2_paper(["SST-2"], tmp_path / "missing.csv").empty


def test_appendix_tables():
    d = tb.appendix_d(ls.seed_stats(fake_scores()))
    assert d.loc["SST-2", "gain"] == pytest.approx(0.8 - 0.65)
    assert tb.appendix_d(ls.seed_stats(fake_scores(extras=False))).empty
    e = tb.appendix_e(fake_scores())
    assert e.loc[("STS-B", "super"), f"{lt.REFINETUNED} mean"] == pytest.approx(0.85)
    assert e.loc[("STS-B", "bad"), "weight_share"] == pytest.approx(0.3)
    assert tb.appendix_e(fake_scores(extras=False)).empty
    one_seed = fake_scores().query("seed == 1")                            # std NaN: the columns stay
    assert np.isnan(tb.appendix_d(ls.seed_stats(one_seed)).loc["SST-2", f"{lt.REFINETUNED} std"])
    assert np.isnan(tb.appendix_e(one_seed).loc[("SST-2", "bad"), f"{lt.PRUNED} std"])


def test_table2_marked_and_recorded():
    stats, refs = ls.seed_stats(fake_scores()), fake_refs()
    table = tb.table2(stats, refs, {"CBOW": {"SST-2": 0.7, "STS-B": 0.1}})
    marked = tb.mark_table2(table, ["CBOW"])
    assert marked.loc["CBOW", "SST-2"] == "0.700 †" and marked.loc[tb.MAJORITY, "SST-2"] == "0.500"
    assert marked.loc["bad s-pruned (re-fine-tuned)", "SST-2"].endswith(" *")
    record = tb.as_record(table)
    assert record["bad s-pruned (re-fine-tuned)"]["SST-2"] == pytest.approx(0.65)
    assert record["random init + random s-pruning"]["average"] == pytest.approx(table.iloc[-1]["average"])
    assert all(isinstance(v, float) or v is None for row in record.values() for v in row.values())


def test_notebook_5_summary_and_pruning_rows():
    stats = ls.seed_stats(fake_scores())
    assert set(ls.pruning_rows(stats).method) == {lt.S_PRUNING, lt.M_PRUNING}
    means = ls.lottery_means(stats, fake_refs())
    summary = ls.summary(means, {"holds": 3, "cannot tell": 1})
    assert summary["claims"] == "holds 3, cannot tell 1"
    assert summary["STS-B bad m re-fine-tuned"] == pytest.approx(0.45) and len(summary) == 1 + 4


def test_notebook_5_reads_exactly_its_run_folders_through_the_results_table(tmp_path):
    scores = fake_scores()
    for (t, s), part in scores.groupby(["task", "seed"]):
        folder = runs.stage_dir(tmp_path, "lottery", t, s)
        folder.mkdir(parents=True)
        part.to_csv(folder / "scores.csv", index=False)
        files.write_json_atomic(folder / "metrics.json", {})
        files.write_json_atomic(runs.stage_dir(tmp_path, "finetune", t, s) / "metrics.json",
                               {"dev_score": 0.9 - 0.1 * s, "majority_baseline": 0.5, "final_train_loss": 0.3,
                                "train_examples": 100, "dev_examples": 50})
    res = results.collect(tmp_path, ("finetune", "lottery"), ["SST-2", "STS-B"], [1, 2])
    back = frames.lottery_scores(res)
    assert len(back) == len(scores) and back.score.sum() == pytest.approx(scores.score.sum())
    assert back.heads_kept.fillna(-1).tolist() == scores.heads_kept.fillna(-1).tolist()
    with pytest.raises(FileNotFoundError, match="SST-2, seed 3"):
        results.collect(tmp_path, ("finetune", "lottery"), ["SST-2"], [1, 3])
    files.write_json_atomic(runs.stage_dir(tmp_path, "stability") / "metrics.json", {})   # a later stage: not read
    assert results.collect(tmp_path, ("finetune", "lottery"), ["SST-2", "STS-B"], [1, 2]).equals(res)
    refs = ls.reference_stats(frames.finetune_scores(res))
    assert refs.loc["SST-2", "full_mean"] == pytest.approx(0.75)
    assert refs.loc["SST-2", "full_std"] == pytest.approx(np.std([0.8, 0.7], ddof=1))
    fig = plots.lottery_figure(back, refs, save=tmp_path / "fig2")
    assert len(fig.axes) == 2 and (tmp_path / "fig2.png").is_file() and (tmp_path / "fig2.pdf").is_file()


def test_seed_summary():
    one = fake_scores().query("task == 'SST-2' and seed == 2")
    assert lt.seed_summary(one) == pytest.approx({"s good re-fine-tuned": 1.0, "s random re-fine-tuned": 0.8,
                                                  "s bad re-fine-tuned": 0.7, "m bad re-fine-tuned": 0.7})


def test_both_rules_are_drawn_last_from_the_same_generator(tmp_path):
    head, mlp, wm = good_masks()
    stacked = np.stack([head, np.ones_like(head)]), np.stack([mlp, np.ones_like(mlp)])
    weights = {n: torch.randn(m.shape, generator=torch.Generator().manual_seed(1)) for n, m in wm.items()}
    plain = lt.draw_subnetworks(5, head, mlp, wm, *stacked)
    both = lt.draw_subnetworks(5, head, mlp, wm, *stacked, weights=weights)
    assert list(both["s"]) == ["good", "random", "bad", "random (authors)"]
    assert list(both["m"]) == ["good", "random", "bad", "bad (authors)"]
    for k in ("s", "super"):                                   # the paper-rule draws do not move
        for n in plain[k]:
            assert all(np.array_equal(x, y) for x, y in zip(plain[k][n], both[k][n]))
    assert all(torch.equal(plain["m"]["bad"][p], both["m"]["bad"][p]) for p in wm)
    # by hand: the same generator, after the s, m and super draws
    rng = np.random.default_rng(5)
    sn.s_subnetworks(head, mlp, rng), sn.m_subnetworks(wm, rng), sn.super_subnetworks(*stacked, rng)
    bernoulli = sn.random_s_masks(head, mlp, rng, AUTHORS)
    assert all(np.array_equal(x, y) for x, y in zip(both["s"]["random (authors)"], bernoulli))
    smallest = sn.bad_m_masks(both["m"]["good"], rng, AUTHORS, weights)
    assert all(torch.equal(both["m"]["bad (authors)"][p], smallest[p]) for p in wm)
    authors = lt.draw_subnetworks(5, head, mlp, wm, *stacked, rules=AUTHORS, weights=weights)
    assert list(authors["s"])[-1] == "random (paper)" and list(authors["m"])[-1] == "bad (paper)"
    assert all(torch.equal(authors["m"]["bad"][p], smallest[p]) for p in wm)
    # both_rules=False: the compat rule alone, the same draws (the authors' bad m still needs the weights)
    one = lt.draw_subnetworks(5, head, mlp, wm, *stacked, rules=AUTHORS, weights=weights, both_rules=False)
    assert list(one["s"]) == list(one["m"]) == ["good", "random", "bad"]
    assert all(torch.equal(one["m"]["bad"][p], smallest[p]) for p in wm)
    assert all(np.array_equal(x, y) for x, y in zip(one["s"]["random"], authors["s"]["random"]))
    # saved into a run folder under file-safe names
    lt.save_subnetworks(tmp_path, both)
    assert sorted(p.name for p in (tmp_path / "m_subnetworks").iterdir()) == [
        "bad.npz", "bad_authors.npz", "good.npz", "random.npz"]
    back = mk.load_weight_masks(tmp_path / "m_subnetworks" / "bad_authors.npz")
    assert all(torch.equal(back[p], both["m"]["bad (authors)"][p]) for p in wm)
    assert list(mk.load_head_mask_sets(tmp_path / "s_subnetworks.npz"))[-1] == "random (authors)"
    sizes = lt.subnetwork_sizes(both).set_index(["set", "subnetwork"])
    assert sizes.loc[("m", "bad (authors)"), "weights kept"] == mk.kept_count(wm)
    assert sizes.loc[("s", "random"), "heads kept"] == head.sum()


@pytest.mark.parametrize("method, subnetwork, compat, expected", [
    (lt.S_PRUNING, "random", "paper", False), (lt.S_PRUNING, "random (authors)", "paper", True),
    (lt.S_PRUNING, "random", "authors", True), (lt.S_PRUNING, "random (paper)", "authors", False),
    (lt.M_PRUNING, "bad", "paper", False), (lt.M_PRUNING, "bad (authors)", "paper", True),
    (lt.M_PRUNING, "bad", "authors", True), (lt.S_PRUNING, "bad", "paper", True), (lt.M_PRUNING, "random", "paper", True),
    (lt.SUPER_SURVIVORS, "random", "paper", True)])
def test_like_for_like(method, subnetwork, compat, expected):
    assert ls.like_for_like(method, subnetwork, Rules.from_setting(compat)) is expected


def test_with_paper_maps_both_rules_to_the_published_row(tmp_path):
    path = tmp_path / "paper.csv"
    pd.DataFrame({"experiment": ["global_bad_retrained"], "task": ["SST-2"], "mean_over_5_seeds": [0.6],
                  "std_ddof1_over_5_seeds": [0.05]}).to_csv(path, index=False)
    scores = fake_scores()
    extra = scores[(scores.method == lt.M_PRUNING) & (scores.subnetwork == "bad")].assign(subnetwork="bad (authors)")
    side = ls.with_paper(ls.seed_stats(pd.concat([scores, extra])), path)
    side = side.set_index(["task", "method", "subnetwork", "setting"])
    for name, fair in (("bad", False), ("bad (authors)", True)):
        assert side.loc[("SST-2", lt.M_PRUNING, name, lt.REFINETUNED), "paper_mean"] == 0.6
        assert side.loc[("SST-2", lt.M_PRUNING, name, lt.REFINETUNED), "like_for_like"] == fair
    assert lt.file_stem("bad (authors)") == "bad_authors" and lt.file_stem("good") == "good"
    t2 = tb.table2(ls.seed_stats(pd.concat([scores, extra])), fake_refs(), {})
    assert t2.loc["bad m-pruned, authors' rule (re-fine-tuned)", "SST-2"] == pytest.approx(0.65)


def test_table2_uses_the_corrected_cola_values_not_the_misprints():
    printed, corrected = baselines.TABLE2_MISPRINTS[("CBOW", "CoLA")]
    assert (printed, corrected) == (0.46, 0.046)
    assert folders.load_baselines("")["CBOW"]["CoLA"] == corrected
    assert set(baselines.TABLE2_MISPRINTS) <= {(r, "CoLA") for r in (*tb.GLUE_ROWS, *tb.TABLE2_ROWS)}


def test_table2_paper_bad_m_cola_is_the_stored_result():
    if reference.paper_numbers() is None:
        pytest.skip("paper_numbers.csv not available")
    printed, corrected = baselines.TABLE2_MISPRINTS[("bad m-pruned (re-fine-tuned)", "CoLA")]
    value = tb.table2_paper(["CoLA"]).loc["bad m-pruned (re-fine-tuned) (paper)", "CoLA"]
    assert round(value, 3) == corrected and printed == 0.24


def test_refinetuning_starts_from_all_pretrained_weights_embeddings_included(model_dir, monkeypatch):
    """The paper says "(except embeddings)"; the authors' code, and ours, reset everything: at the first step
    of re-fine-tuning every parameter, embeddings included, is the pre-trained one (the classifier: the seed's)."""

    setup = setup_for(model_dir)
    head, mlp, wm = good_masks()
    started = []

    def capture(net, *args, **kw):
        started.append({n.removesuffix("_orig"): p.detach().clone() for n, p in net.named_parameters()})
        return [0.0]

    monkeypatch.setattr(finetuning, "fine_tune", capture)
    lt.refinetuned_s(setup, head, mlp)
    lt.refinetuned_m(setup, wm)
    fresh = dict(finetuning.build_model(model_dir, TASK, setup.seed).named_parameters())
    pretrained = dict(tiny_model(seed=11).named_parameters())          # what model_dir holds
    assert len(started) == 2
    for params in started:
        assert params.keys() <= fresh.keys() and any(n.startswith("bert.embeddings.") for n in params)
        for name, value in params.items():
            if value.shape != fresh[name].shape:  # s: physically pruned, heads sliced out (tests/test_physical.py)
                continue
            assert torch.equal(value, fresh[name]), name
            if not name.startswith("classifier."):
                assert torch.equal(value, pretrained[name]), name


def test_refinetuning_curves_spread_columns_and_result_lines(model_dir, monkeypatch, capsys):
    setup = setup_for(model_dir)
    head, mlp, wm = good_masks()
    subnets = lt.draw_subnetworks(3, head, mlp, wm, np.stack([head]), np.stack([mlp]))
    trained = []
    real = lt.finetune_model

    def spy(*args, **kw):
        net, gates, losses = real(*args, **kw)
        trained.append(losses)
        return net, gates, losses

    monkeypatch.setattr(lt, "finetune_model", spy)
    rows = lt.s_lottery_rows(setup, tiny_model(seed=4), subnets["s"])
    curves = lt.curves_table(rows)
    assert list(curves.columns) == lt.CURVE_COLUMNS
    assert set(curves.setting) == {lt.REFINETUNED}                       # pruned rows have no curve
    per_run = [g.loss.tolist() for _, g in curves.groupby(["subnetwork"], sort=False)]
    assert per_run == trained and all(len(c) == 2 for c in per_run)      # ceil(16 / 8) steps, 1 epoch
    assert curves.step.tolist() == [1, 2] * len(trained)
    scores = lt.tidy(rows)
    assert scores.pred_std.isna().all() and scores.pred_major_share.between(0.5, 1).all()  # RTE: 2 classes
    assert scores.constant_predictions.tolist() == (scores.pred_major_share == 1).tolist()
    lines = [x for x in capsys.readouterr().out.splitlines() if " re-fine-tune: dev acc " in x]
    assert len(lines) == len(trained) and all("most predicted class" in x for x in lines)
