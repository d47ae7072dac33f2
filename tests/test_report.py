"""The report's logic on hand-made results tables: verdicts and their rules (degenerate seeds, the majority
floor, claims true by construction, pattern thresholds), ours next to the paper's, held-out leak, the generated
text, README."""
import io
import re
import tomllib

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from lotterylib.analysis import lottery, lottery_stats, reference, stability, tables
from lotterylib.analysis.lottery import M_PRUNING, PRUNED, REFINETUNED, S_PRUNING
from lotterylib.analysis.verdicts import FAILS, HOLDS, combine, interval, tally, verdict
from lotterylib.core import files
from lotterylib.core.rules import Rules
from lotterylib.stages import runs
from lotterylib.workflow import pipeline, results
from lotterylib.workflow.report.claims import (AT_FLOOR, BY_CONSTRUCTION, CANNOT_TELL_READING, STABILITY_PREDATES,
                                               claims, heldout_claims, pattern_claims, score_claims,
                                               stability_claims, task_reading)
from lotterylib.workflow.report.comparison import (comparison_notes, comparison_view, headline_table, mask_sizes,
                                                   orderings, paper_comparison)
from lotterylib.workflow.report.folders import (figure_gallery, glue_baselines, png_preview, report_split,
                                                split_results, stage_settings)
from lotterylib.workflow.report.frames import (degenerate_seeds, finetune_scores, gap_shares, headroom, leak,
                                               leak_summary, lottery_scores, pattern_shares, stability_table)
from lotterylib.workflow.report.readme import (NO_RUNS, README_END, README_START, committed_roots, heldout_line,
                                               partial_line, readme_section, render_readme, update_readme)
from lotterylib.workflow.report.text import bullets, conclusions, run_description, table2_notes

# Per seed: full, majority, then (method, subnetwork, setting) -> score; sparsity of the good subnetworks.
HOLDING = {"full": [0.90, 0.92, 0.91], "majority": [0.5, 0.5, 0.5],
           (S_PRUNING, "good", PRUNED): [0.85, 0.86, 0.84], (S_PRUNING, "random", PRUNED): [0.66, 0.64, 0.65],
           (S_PRUNING, "bad", PRUNED): [0.50, 0.52, 0.51], (S_PRUNING, "good", REFINETUNED): [0.88, 0.89, 0.87],
           (S_PRUNING, "random", REFINETUNED): [0.87, 0.90, 0.86], (S_PRUNING, "bad", REFINETUNED): [0.85, 0.84, 0.86],
           (M_PRUNING, "good", PRUNED): [0.84, 0.85, 0.86], (M_PRUNING, "random", PRUNED): [0.70, 0.72, 0.69],
           (M_PRUNING, "bad", PRUNED): [0.50, 0.52, 0.51], (M_PRUNING, "good", REFINETUNED): [0.88, 0.88, 0.89],
           "s sparsity": [0.30, 0.35, 0.32], "m sparsity": [0.60, 0.61, 0.62]}


def frame(rows):
    """A typed results table from rows (task, seed, stage, method, subnetwork, setting, metric, value[, component,
    pattern])."""
    full = [(*r[:6], *(r[8:10] if len(r) > 8 else ("", "")), r[6], r[7]) for r in rows]
    return results._typed(pd.DataFrame(full, columns=results.COLUMNS))


def table(changes=None, task="SST-2"):
    """A results table as `results.collect` would give for one task (the HOLDING numbers, with changes)."""
    spec = {**HOLDING, **(changes or {})}
    rows = []
    for i, seed in enumerate((1, 2, 3)[:len(spec["full"])]):
        rows += [(task, seed, "finetune", lottery.FULL, "", lottery.FINETUNED, "score", spec["full"][i]),
                 (task, seed, "finetune", lottery.FULL, "", lottery.FINETUNED, "train_examples", 2000),
                 (task, seed, "finetune", lottery.FULL, "", lottery.FINETUNED, "dev_examples", 872),
                 (task, seed, "finetune", results.MAJORITY, "", "", "score", spec["majority"][i])]
        for key, values in spec.items():
            if isinstance(key, tuple):
                rows.append((task, seed, "lottery", *key, "score", values[i]))
                for metric in ("score_search", "score_unseen"):
                    if metric in spec and key in spec[metric]:
                        rows.append((task, seed, "lottery", *key, metric, spec[metric][key][i]))
        for method, name in ((S_PRUNING, "s sparsity"), (M_PRUNING, "m sparsity")):
            rows.append((task, seed, "lottery", method, "good", PRUNED, "sparsity", spec[name][i]))
    return frame(rows)


def verdicts(res, **kwargs):
    out = score_claims(res, **kwargs)
    return dict(zip(out.claim.str.split(" ").str[:3].str.join(" "), out.verdict))


def test_interval_and_verdict_against_hand_computation():
    d = [0.1, 0.15, 0.2]
    half = stats.t.ppf(0.975, 2) * 0.05 / np.sqrt(3)                           # 0.124: the interval is above 0
    assert interval(d) == pytest.approx((0.15, 0.15 - half, 0.15 + half))
    assert verdict(d) == HOLDS and verdict([-x for x in d]) == FAILS
    assert verdict([0.1, 0.2, 0.3]) == "cannot tell with 3 seeds"      # all positive, but too spread
    assert verdict([0.3, -0.1, 0.05]) == "cannot tell with 3 seeds"
    assert verdict([0.5]) == "cannot tell with 1 seed"                   # one seed never decides
    assert verdict([0.01, 0.01]) == HOLDS                          # no spread: the sign decides
    assert verdict([0.0, 0.0, 0.0]) == FAILS                       # equal is not greater
    assert combine([HOLDS, "cannot tell with 2 seeds"]) == "cannot tell with 2 seeds"
    assert combine(["cannot tell with 2 seeds", FAILS]) == FAILS
    assert combine([AT_FLOOR, HOLDS]) == AT_FLOOR


def test_every_lottery_claim_holds_on_the_holding_table_and_90_percent_is_by_construction_on_dev():
    out = score_claims(table(), selection="split")                      # scored on unseen data: tested
    assert len(out) == 7 and (out.verdict == HOLDS).all() and (out.seeds == 3).all()
    row = out.set_index("claim").loc["m pruned: good > random > bad"]
    assert row.numbers.startswith("good 0.840/0.850/0.860, random 0.700/0.720/0.690, bad 0.500/0.520/0.510")
    dev = score_claims(table()).set_index("claim").verdict               # chosen and scored on dev
    assert dev["s: good pruned keeps >= 90% of full"] == dev["m: good pruned keeps >= 90% of full"] == BY_CONSTRUCTION
    assert (dev.drop(["s: good pruned keeps >= 90% of full", "m: good pruned keeps >= 90% of full"]) == HOLDS).all()
    assert tally(pd.Series([BY_CONSTRUCTION, AT_FLOOR, "cannot tell with 2 seeds", HOLDS])) \
        == {"holds by construction": 1, "cannot tell": 2, "holds": 1}


def test_claims_that_do_not_hold_or_cannot_be_told():
    fails = verdicts(table({"m sparsity": [0.2, 0.25, 0.22],
                           (M_PRUNING, "bad", PRUNED): [0.80, 0.81, 0.79]}))      # bad above random: the order breaks
    assert fails["m-pruning compresses more"] == FAILS
    assert fails["m pruned: good"] == FAILS
    unsure = verdicts(table({(S_PRUNING, "bad", REFINETUNED): [0.80, 0.60, 0.75],   # majority + half the gap: ~0.705
                           (S_PRUNING, "random", REFINETUNED): [0.87, 0.70, 0.88]}))
    assert unsure["s: bad re-fine-tuned"] == "cannot tell with 3 seeds"
    assert unsure["s re-fine-tuned: random"] == "cannot tell with 3 seeds"
    one = verdicts(table({k: v[:1] for k, v in HOLDING.items()}), selection="split")
    assert set(one.values()) == {"cannot tell with 1 seed"}
    low = verdicts(table({(S_PRUNING, "good", PRUNED): [0.70, 0.71, 0.72]}), selection="split")  # below 90% of ~0.91
    assert low["s: good pruned"] == FAILS and low["m: good pruned"] == HOLDS


def test_a_tie_at_the_majority_floor_cannot_tell_it_does_not_fail():
    """MRPC in demo_more: m random = m bad = the majority class on every seed."""
    floor = {"majority": [0.684] * 3, (M_PRUNING, "random", PRUNED): [0.684] * 3, (M_PRUNING, "bad", PRUNED): [0.684] * 3}
    out = score_claims(table(floor)).set_index("claim")
    assert out.loc["m pruned: good > random > bad", "verdict"] == AT_FLOOR
    above = {**floor, (M_PRUNING, "random", PRUNED): [0.70, 0.71, 0.70], (M_PRUNING, "bad", PRUNED): [0.72, 0.73, 0.72]}
    assert score_claims(table(above)).set_index("claim").loc["m pruned: good > random > bad", "verdict"] \
        == FAILS                                                        # off the floor, a reversed order fails


def test_a_degenerate_seed_is_left_out_and_named():
    """CoLA seed 1337 in demo_more: a full model next to the majority class, a search that pruned nothing."""
    res = table({"full": [0.90, 0.92, 0.52]})                                 # seed 3: 0.02 above majority 0.5
    s_pruning = [("SST-2", 2, "s_pruning", S_PRUNING, "good", PRUNED, m, v, c, "")
                 for c, total in (("head", 72), ("mlp", 6)) for m, v in (("kept", total), ("total", total))]
    res = pd.concat([res, frame(s_pruning)], ignore_index=True)              # seed 2: s-pruning kept everything
    degenerate = degenerate_seeds(res)
    assert degenerate.seed.tolist() == [2, 3]
    assert degenerate.reason.tolist() == ["s-pruning kept every head and MLP",
                                          "full 0.520, less than 0.05 above the majority class 0.500"]
    out = score_claims(res)
    assert (out.seeds == 1).all() and out["left out"].iloc[0].startswith("seed 2 (s-pruning kept every head and MLP); seed 3")
    assert degenerate_seeds(res, margin=0.01).seed.tolist() == [2]     # the margin is a parameter
    assert np.isnan(gap_shares(res).set_index(["seed", "method", "subnetwork", "setting"])
                    .loc[(3, S_PRUNING, "good", PRUNED), "gap_share"])                 # no share of a 0.02 gap


def test_little_headroom_above_the_majority_class_is_said():
    """MRPC in demo_more: 0.9 x 0.792 = 0.713, against a majority of 0.684."""
    res = table({"full": [0.792] * 3, "majority": [0.684] * 3})
    room = headroom(res).loc["SST-2"]
    assert room.bar == pytest.approx(0.7128) and room.bar_share == pytest.approx((0.7128 - 0.684) / (0.792 - 0.684))
    numbers = score_claims(res).set_index("claim").loc["s: good pruned keeps >= 90% of full", "numbers"]
    assert "little headroom: 90% of full is only 27% of the gap" in numbers
    assert "headroom" not in score_claims(table()).numbers.iloc[0]        # 0.9 x 0.91 is 80% of the gap up


def test_gap_shares_by_hand():
    shares = gap_shares(table()).set_index(["seed", "method", "subnetwork", "setting"]).gap_share
    assert shares[(1, S_PRUNING, "good", PRUNED)] == pytest.approx((0.85 - 0.5) / (0.90 - 0.5))
    assert shares[(2, M_PRUNING, "bad", PRUNED)] == pytest.approx((0.52 - 0.5) / (0.92 - 0.5))


def stability_rows(task, n, kappa, q, p, extra=None):
    values = {"n_seeds": n, "head_kappa": kappa, "head_Q": q, "head_p": p, **(extra or {})}
    return frame([(task, pd.NA, "stability", "s-pruning", "good", results.ACROSS_SEEDS,
                   results.stability_key(k)[1], v, results.stability_key(k)[0], "") for k, v in values.items()])


def test_the_stability_claim_calls_the_stability_verdict_and_says_when_the_stage_is_too_old(monkeypatch):
    old = stability_claims(stability_rows("MRPC", 3, 0.3, 7.0, 0.03)).set_index("claim")
    assert old.loc["heads: the good subnetworks are not stable across seeds", "verdict"] == STABILITY_PREDATES
    seen = {}

    def decide(row, kind="head", alpha=0.05):
        seen[kind] = dict(row)
        return HOLDS, f"{kind} p_more {row[f'{kind}_p_more']}"
    monkeypatch.setattr(stability, "stability_verdict", decide, raising=False)
    new = stability_claims(stability_rows("MRPC", 3, 0.3, 7.0, 0.03, {"head_p_more": 0.2, "mlp_p_more": 0.4}))
    assert new.verdict.tolist() == [HOLDS, HOLDS] and new.numbers.tolist()[0] == "head p_more 0.2"
    assert seen["head"]["head_Q"] == 7.0 and seen["head"]["n_seeds"] == 3      # the stability.csv row, as written
    assert stability_table(stability_rows("MRPC", 3, 0.3, 7.0, 0.03)).loc["MRPC", "head_p"] == 0.03


def pattern_rows(task, group, kind, counts):
    return frame([(task, pd.NA, "attention_patterns", kind, group, "fine-tuned", "count", n, "", c)
                  for c, n in counts.items()])


def agreement_rows(task, share):
    return frame([(task, 1, "attention_patterns", "raw", "all heads", "fine-tuned", "cnn_rule_agreement", share)])


def test_checklist_groups_the_claims_by_task():
    res = pd.concat([table(), table(task="MRPC"), stability_rows("SST-2", 3, 0.2, 9.0, 0.01)], ignore_index=True)
    out = claims(res)
    assert out.task.tolist() == ["SST-2"] * 9 + ["MRPC"] * 7 and str(out.seeds.dtype) == "Int64"
    assert out.claim.iloc[7].startswith("heads: the good subnetworks") and claims(res.iloc[:0]).empty


def test_pattern_claims_need_an_agreeing_classifier_and_a_minimum_difference():
    shares = [pattern_rows("SST-2", "all heads", "raw", {"vertical": 60, "heterogeneous": 40}),
              pattern_rows("SST-2", "all heads", "normed", {"vertical": 20, "heterogeneous": 80}),
              pattern_rows("SST-2", "super-survivors", "raw", {"vertical": 9, "heterogeneous": 1}),
              pattern_rows("SST-2", "super-survivors", "normed", {"vertical": 1, "heterogeneous": 9})]
    res = pd.concat([*shares, agreement_rows("SST-2", 0.9)], ignore_index=True)
    shares_table = pattern_shares(res).set_index(["map_kind", "group", "class"])["share"]
    assert shares_table[("normed", "super-survivors", "heterogeneous")] == pytest.approx(0.9)
    out = pattern_claims(res).set_index("claim").verdict
    assert out["patterns: norm-weighted maps less vertical than raw (all heads)"] == HOLDS
    assert out["patterns (raw): super-survivors no more heterogeneous than all heads"] == HOLDS   # 0.1 < 0.4
    assert out["patterns (normed): super-survivors no more heterogeneous than all heads"] == FAILS  # 0.9 > 0.8
    close = pattern_claims(res, min_difference=0.2).set_index("claim").verdict      # 0.9 vs 0.8: too close
    assert close["patterns (normed): super-survivors no more heterogeneous than all heads"] == \
        "cannot tell: the shares differ by 0.10 (< 0.20)"
    unsure = pd.concat([*shares, agreement_rows("SST-2", 0.59)], ignore_index=True)
    assert set(pattern_claims(unsure).verdict) == {
        "cannot tell: the CNN and the rule labeller agree on 59% of maps (< 80%)"}
    no_super = pd.concat([pattern_rows("RTE", "all heads", "raw", {"vertical": 5}), agreement_rows("RTE", 0.9)])
    assert pattern_claims(no_super).verdict.tolist()[1] == "cannot tell (no maps)"


def paper_file(tmp_path):
    path = tmp_path / "paper.csv"
    pd.DataFrame({"experiment": ["no_mask", "global_bad", "head_mlp", "freq_baseline", "head_mlp_random",
                                 "head_mlp_bad_1"],
                  "meaning": "", "task": "SST-2", "mean_over_5_seeds": [0.92, 0.5, 0.84, 0.5, 0.86, 0.6],
                  "std_ddof1_over_5_seeds": [0.01, 0.02, 0.0, 0.0, 0.05, 0.05]}).to_csv(path, index=False)
    return path


def test_paper_comparison_side_by_side_in_shares_of_the_gap(tmp_path):
    path = paper_file(tmp_path)
    out = paper_comparison(table(), path=path).set_index(["method", "subnetwork", "setting"])
    assert list(out.index) == [(lottery.FULL, "", ""), (results.MAJORITY, "", ""), (S_PRUNING, "good", PRUNED),
                               (S_PRUNING, "random", PRUNED), (S_PRUNING, "bad", PRUNED), (M_PRUNING, "bad", PRUNED)]
    assert not any("paper std" in c and "/" in c for c in out.columns)        # no difference across the models
    full = out.loc[(lottery.FULL, "", "")]
    assert full["ours mean"] == pytest.approx(0.91) and full["seeds"] == 3 and full["paper mean"] == 0.92
    good = out.loc[(S_PRUNING, "good", PRUNED)]
    ours = [(0.85 - 0.5) / 0.40, (0.86 - 0.5) / 0.42, (0.84 - 0.5) / 0.41]
    assert good["ours gap share"] == pytest.approx(np.mean(ours))
    assert good["ours gap share std"] == pytest.approx(np.std(ours, ddof=1))
    assert good["paper gap share"] == pytest.approx((0.84 - 0.5) / (0.92 - 0.5))
    assert not out.loc[(M_PRUNING, "bad", PRUNED), "like for like"] and full["like for like"]
    assert paper_comparison(table(), Rules.from_setting("authors"), path=path)["like for like"].all()
    view = comparison_view(paper_comparison(table(), path=path)).loc["SST-2"]
    assert view.loc[(lottery.FULL, "", ""), ["ours", "paper", "like for like"]].tolist() == \
        ["0.910 ± 0.010", "0.920 ± 0.010", "yes"]
    assert view.loc[(S_PRUNING, "good", PRUNED), "paper: share of gap"] == "0.81"
    notes = comparison_notes(table(), paper_comparison(table(), path=path))
    assert any("`both_rules` off" in n for n in notes)                         # no (authors) row in this run
    with_authors = pd.concat([table(), table({(M_PRUNING, "bad (authors)", PRUNED): [0.5, 0.5, 0.5]})
                              .query("subnetwork == 'bad (authors)'")], ignore_index=True)
    notes = comparison_notes(with_authors, paper_comparison(with_authors, path=path))
    assert any("compare the `bad (authors)` row" in n for n in notes)
    assert paper_comparison(table(), path=tmp_path / "missing.csv").empty


def test_the_unseen_90_percent_claim_compares_with_the_full_model_on_the_same_half():
    full = (lottery.FULL, "", lottery.FINETUNED)
    split = table({full: [0.9, 0.9, 0.9], "score_search": {(S_PRUNING, "good", PRUNED): [0.88, 0.90, 0.86], full: [0.9] * 3},
                   "score_unseen": {(S_PRUNING, "good", PRUNED): [0.75, 0.76, 0.74], full: [0.78, 0.80, 0.79]}})
    out = heldout_claims(split, "split").set_index("claim").verdict
    # against the full model's unseen-half scores (0.78/0.80/0.79), not its dev score 0.9: 0.75 > 0.702, 0.76 > 0.72...
    assert out["s: good pruned keeps >= 90% of full, on the unseen half of dev"] == HOLDS
    leaks = leak(split).set_index(["method", "subnetwork"]).leak
    assert leaks.loc[(lottery.FULL, "")].tolist() == pytest.approx([0.12, 0.10, 0.11])   # the halves' own difference
    assert lottery.FULL not in set(lottery_scores(split).method)                 # never among the subnetworks


def test_orderings_ours_and_the_papers(tmp_path):
    res = table({(S_PRUNING, "bad", PRUNED): [0.70, 0.60, 0.70]})                     # random 0.66/0.64/0.65
    out = orderings(res, path=paper_file(tmp_path)).set_index(["method", "setting"])
    assert out.loc[(S_PRUNING, PRUNED), "ours"] == "good > bad > random"              # means: 0.85, 0.667, 0.65
    assert out.loc[(S_PRUNING, PRUNED), "seeds good > random > bad"] == "1/3"
    assert out.loc[(S_PRUNING, PRUNED), "paper"] == "random > good > bad"             # 0.86, 0.84, 0.6
    assert out.loc[(M_PRUNING, PRUNED), "paper"] == ""                                # the paper file lacks m good, random


def test_task_reading_from_the_pattern_claims():
    holding = claims(pd.concat([table(), table(task="MRPC")]))
    differs = claims(table({(M_PRUNING, "bad", PRUNED): [0.80, 0.81, 0.79]}, task="RTE"))
    unsure = claims(table({k: v[:1] for k, v in HOLDING.items()}, task="CoLA"))
    out = task_reading(pd.concat([holding, differs, unsure])).set_index("task").reading
    assert out.to_dict() == {"SST-2": "the paper's pattern holds", "MRPC": "the paper's pattern holds",
                             "RTE": "the paper's pattern differs here", "CoLA": CANNOT_TELL_READING}


def test_leak_and_the_90_percent_claim_on_the_unseen_half():
    split = table({"score_search": {(S_PRUNING, "good", PRUNED): [0.88, 0.90, 0.86]},
                   "score_unseen": {(S_PRUNING, "good", PRUNED): [0.75, 0.76, 0.74]}})
    leaks = leak(split)
    assert leaks.leak.tolist() == pytest.approx([0.13, 0.14, 0.12])
    summary = leak_summary(split).loc[("SST-2", S_PRUNING, "good")]
    assert summary.leak_mean == pytest.approx(0.13) and summary.leak_std == pytest.approx(0.01)
    assert summary.seeds == 3 and summary.filter(like="leak seed").tolist() == pytest.approx([0.13, 0.14, 0.12])
    out = heldout_claims(split, "split").set_index("claim").verdict
    assert out["s: good pruned keeps >= 90% of full, on the unseen half of dev"] == FAILS  # 0.75 < 0.81
    assert out["m: good pruned keeps >= 90% of full, on the unseen half of dev"] == HOLDS  # `score` there
    assert leak(table()).empty and heldout_claims(table(), "dev").empty        # a dev run has none
    both = claims(table(), split=split).claim                                      # a dev run and its twin
    assert both.str.endswith("on the unseen half of dev").sum() == 2
    own = claims(split, selection="split", split=split)                            # the split run itself
    assert not own.claim.str.endswith("on the unseen half of dev").any()
    assert own.set_index("claim").loc["s: good pruned keeps >= 90% of full", "verdict"] == FAILS  # unseen


def settings(**changes):
    return {"preset": "demo_more", "model": "minilm-l6", "learning_rate": 1e-4, "batch_size": 32, "epochs": 3.0,
            "bf16": False, "group_by_length": True, "selection": "dev", "both_rules": False, "extras": False,
            "seeds": [1337, 42, 86], "tasks": ["MRPC"], "examples": {"MRPC": (3000, 408)}, **changes}


def test_the_run_description_speaks_for_its_own_run():
    text = run_description(settings())
    for part in ("`demo_more`", "sentence-embedding model", "NLI, QQP and paraphrase data", "MRPC 3000 / 408",
                 "1337, 42, 86 (3; the paper: 5)", "learning rate 1e-4 (the paper: 2e-5)", "fp32",
                 "grouped by length", "`both_rules` off", "Extras (Appendix D, super-survivors, random-init BERT) off"):
        assert part in text, part
    assert "smoke" not in text and "CI preset" not in text
    assert "CI preset" in run_description(settings(preset="smoke"))
    assert "needs the larger" not in run_description(settings(learning_rate=2e-5, epochs=1.0))
    assert "3 epochs" in text and "1 epoch." in run_description(settings(epochs=1.0))
    res = table({"full": [0.90, 0.92, 0.52]})
    checklist = claims(res)
    closing = conclusions(settings(preset="demo"), res, checklist, degenerate_seeds(res))
    assert closing.startswith("On `demo` (3 seeds)") and "smoke" not in closing
    # seeds 1, 2 (3 is left out): s good (0.35/0.40 + 0.36/0.42) / 2 = 0.87, random 0.37, bad 0.02; two seeds
    # cannot decide the s order (t with 1 degree of freedom), so neither can the reading
    assert ("SST-2: cannot tell whether the paper's pattern holds. Pruned, good / random / bad keep "
            "0.87 / 0.37 / 0.02 (s)") in closing
    assert "Left out of the verdicts as degenerate: SST-2 seed 3" in closing


def test_table2_notes_name_the_misprints_baselines_and_the_sts_b_majority():
    notes = table2_notes(["CoLA", "STS-B"], {"CoLA": (2000, 1043), "STS-B": (2000, 1500)})
    assert sum("misprint" in n for n in notes) == 2 and any("full training sets; ours trained on CoLA 2000" in n
                                                              for n in notes)
    assert any("random normal predictions (0.024)" in n for n in notes)
    assert not any("misprint" in n or "STS-B" in n for n in table2_notes(["MRPC"]))


def table2_of(res, outputs_root):
    """Table 2 as notebooks 0 and 5 build it from a results table."""
    stats = lottery_stats.seed_stats(lottery_scores(res))
    return tables.table2(stats, lottery_stats.reference_stats(finetune_scores(res)), glue_baselines(outputs_root))


def test_table2_and_headline_from_the_results_table(tmp_path):
    t2 = table2_of(table(), tmp_path)                                         # the shipped GLUE baselines
    assert t2.loc["CBOW", "SST-2"] == 0.795 and t2.loc["bad s-pruned (re-fine-tuned)", "SST-2"] == pytest.approx(0.85)
    folder = runs.stage_dir(tmp_path, "bad_subnetworks")                      # a run's own baselines_csv
    (tmp_path / "b.csv").write_text("model,task,score\nCBOW,SST-2,0.7\n")
    files.write_json_atomic(folder / "params.json", {"params": {"baselines_csv": str(tmp_path / "b.csv")}})
    t2 = table2_of(table(), tmp_path)
    assert t2.loc["CBOW", "SST-2"] == 0.7 and "STS-B" not in t2           # a baseline's other tasks are left out
    head = headline_table(table()).iloc[0]
    assert head["full model"] == "0.910 ± 0.010" and head[f"m good / random / bad, {PRUNED}"] == "0.850 / 0.703 / 0.510"


def test_readme_section_is_generated_between_the_markers(tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text(f"# x\n{README_START}\nold numbers\n{README_END}\ntail\n")
    root = tmp_path / "outputs" / "demo"
    root.mkdir(parents=True)
    table().to_csv(root / results.CSV_NAME, index=False)
    (tmp_path / "outputs" / "smoke").mkdir()
    (tmp_path / "outputs" / "smoke" / results.CSV_NAME).write_text("")
    assert committed_roots(tmp_path / "outputs") == [root]                    # the CI's runs stay out
    text = update_readme(readme, [root])
    assert "old numbers" not in text and text.endswith(f"{README_END}\ntail\n")
    assert "### `demo`" in text and re.search(r"\| SST-2 +\| 2000/872 +\| +3 \| 0.910 ± 0.010 +\|", text)
    assert "holds 5, holds by construction 2 (of 7)" in text
    assert "Held-out" not in text and "Degenerate" not in text                     # no split twin, no bad seed
    split = tmp_path / "outputs" / "demo-split"                                      # its split twin has run:
    split.mkdir()
    table({"score_search": {(S_PRUNING, "good", PRUNED): [0.88, 0.90, 0.86]},
           "score_unseen": {(S_PRUNING, "good", PRUNED): [0.75, 0.76, 0.74]}}).to_csv(split / results.CSV_NAME, index=False)
    report_params = {"heldout_root": str(split)}
    files.write_json_atomic(runs.stage_dir(root, "report") / "params.json",
                           {"hash": runs.params_hash(report_params), "params": report_params})
    line = heldout_line(report_split(root))
    assert line.endswith("mean ± std over seeds: SST-2, s: 0.130 ± 0.010.")
    assert line in readme_section(root)
    assert "holds 6, holds by construction 2, does not hold 1 (of 9)" in readme_section(root)  # s: 0.75 < 0.82
    assert NO_RUNS in update_readme(readme, [])
    readme.write_text("no markers")
    with pytest.raises(ValueError, match="markers"):
        update_readme(readme, [root])


def test_a_grid_run_in_parts_says_how_far_it_is(tmp_path):
    preset = pipeline.load_preset("smoke", {"outputs_root": str(tmp_path), "stages": ["finetune", "lottery", "report"]})
    done = [("finetune", "SST-2", 1), ("finetune", "SST-2", 2), ("lottery", "SST-2", 1), ("lottery", "SST-2", 2),
            ("finetune", "STS-B", 1)]
    for job in done:
        folder = runs.stage_dir(tmp_path, *job)
        folder.mkdir(parents=True)
        (folder / "metrics.json").write_text("{}")
    assert partial_line(preset) == (
        "**In progress**: 5 of the grid's 9 jobs have run (it runs in parts); tasks with every job done: SST-2. "
        "The numbers below are those of the jobs done so far; not run yet across tasks: report.")
    for job in [("finetune", "STS-B", 2), ("lottery", "STS-B", 1), ("lottery", "STS-B", 2), ("report", None, None)]:
        runs.stage_dir(tmp_path, *job).mkdir(parents=True)
        (runs.stage_dir(tmp_path, *job) / "metrics.json").write_text("{}")
    assert partial_line(preset) is None


def test_the_readme_results_are_the_generated_ones():
    text = (files.PROJECT_ROOT / "README.md").read_text()
    assert text == render_readme(text, committed_roots()), "run `make readme-results`"


def test_paper_numbers_ship_with_the_package(monkeypatch, tmp_path):
    monkeypatch.delenv(reference.PAPER_NUMBERS_ENV, raising=False)
    assert reference.paper_value("no_mask", "SST-2") == pytest.approx((0.925688, 0.003383))
    assert len(reference.paper_numbers()) == 180 and (reference.SHIPPED_PAPER_NUMBERS.parent / "README.md").is_file()
    package_data = tomllib.loads((files.PROJECT_ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    assert "data_files/*.csv" in package_data["package-data"]["lotterylib.analysis"]
    monkeypatch.setenv(reference.PAPER_NUMBERS_ENV, str(tmp_path / "none.csv"))   # renders without them
    assert reference.paper_numbers() is None and paper_comparison(table()).empty


@pytest.mark.slow
def test_the_workflow_writes_results_then_runs_the_report_last(tmp_path):
    """Dry run of the smoke grid: one results job whose inputs are every other stage's metrics.json, then the
    report, which needs results.csv and reads every other stage (its signature follows theirs)."""
    import subprocess
    import sys

    from lotterylib.workflow import pipeline

    root = tmp_path / "smoke"
    out = subprocess.run([sys.executable, "-m", "snakemake", "-s", "workflow/Snakefile", "--dry-run", "--nolock",
                          "--config", "preset=smoke", f"outputs_root={root}"], cwd=files.PROJECT_ROOT,
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    log = out.stdout + out.stderr
    jobs = dict(re.findall(r"^rule (\w+):\n((?:    .*\n)+)", log, flags=re.M))
    preset = pipeline.load_preset("smoke", {"outputs_root": str(root)})
    stages = [t for t in pipeline.targets(preset) if "/report/" not in t]
    assert set(jobs["results"].split("input: ")[1].split("\n")[0].split(", ")) == set(stages)
    report_inputs = {f for f in jobs["report"].split("input: ")[1].split("\n")[0].split(", ")
                     if "/.signatures/report/" not in f}  # the job's marker (pipeline.job_marker)
    assert report_inputs == {"notebooks/00_report.ipynb", f"{root}/results.csv", *stages}
    assert f"output: {root}/all_tasks/report/metrics.json" in jobs["report"]


def test_png_preview_scales_down_wide_figures_only(tmp_path):
    import matplotlib.pyplot as plt
    from PIL import Image

    fig, _ = plt.subplots(figsize=(10, 4))
    fig.savefig(tmp_path / "wide.png", dpi=200)                                # 2000 x 800
    fig.savefig(tmp_path / "small.png", dpi=50)                                # 500 x 200
    plt.close(fig)
    wide = Image.open(io.BytesIO(png_preview(tmp_path / "wide.png")))
    assert wide.size == (800, 320)
    assert Image.open(io.BytesIO(png_preview(tmp_path / "small.png"))).size == (500, 200)


def test_figure_gallery_embeds_the_matching_figures_in_name_order(tmp_path):
    import base64

    import matplotlib.pyplot as plt

    folder = runs.stage_dir(tmp_path, "stability")
    folder.mkdir(parents=True)
    fig, _ = plt.subplots(figsize=(2, 1))
    for name in ("s_survival_RTE", "m_survival_MRPC", "importance_RTE"):
        fig.savefig(folder / f"{name}.png", dpi=50)
    plt.close(fig)
    text = figure_gallery(tmp_path, "stability", "[sm]_survival_*")
    assert re.findall(r"`(\S+)`", text) == ["m_survival_MRPC.png", "s_survival_RTE.png"]
    first = re.search(r"base64,([^)]+)\)", text).group(1)
    assert base64.b64decode(first) == png_preview(folder / "m_survival_MRPC.png")
    assert figure_gallery(tmp_path, "stability", "overlap_*") == ""


def test_stage_settings_and_bullets(tmp_path):
    for stage, params in (("finetune", {"epochs": 3, "bf16": False}), ("lottery", {"epochs": 3, "compat": "paper"})):
        files.write_json_atomic(runs.stage_dir(tmp_path, stage, "SST-2", 1) / "params.json",
                               {"hash": runs.params_hash(params), "params": params})
    table = stage_settings(tmp_path)
    assert list(table.columns) == ["finetune", "lottery"] and table.loc["epochs"].tolist() == [3, 3]
    assert pd.isna(table.loc["compat", "finetune"]) and table.loc["compat", "lottery"] == "paper"
    assert bullets(["a", "b"]) == "- a\n- b" and bullets([]) == ""


def test_split_results_says_where_the_held_out_scores_come_from(tmp_path):
    dev, split = tmp_path / "demo", tmp_path / "demo-split"
    assert split_results(dev, "")[0] is None and "empty" in split_results(dev, "")[1]
    assert "selection=split" in split_results(dev, split)[1]            # not run yet
    split.mkdir()
    table().to_csv(split / results.CSV_NAME, index=False)
    found, where = split_results(dev, split)
    assert len(found) == len(table()) and "demo-split" in where
    split_params = {"selection": "split"}
    files.write_json_atomic(runs.stage_dir(split, "lottery", "SST-2", 1) / "params.json",
                           {"hash": runs.params_hash(split_params), "params": split_params})
    assert "this run" in split_results(split, "")[1]                    # a split run's own report


def test_notebook_5_closing_is_generated_from_its_means():
    res = table()
    stats = lottery_stats.seed_stats(lottery_scores(res))
    refs = lottery_stats.reference_stats(finetune_scores(res))
    means = lottery_stats.lottery_means(stats, refs)
    t2 = tables.table2(stats, refs, {"CBOW": {"SST-2": 0.795}})
    text = lottery_stats.conclusions(means, t2, "demo", [1, 2, 3])
    assert text.startswith("On `demo` (SST-2; 3 seeds)") and "smoke" not in text
    assert "the good s-pruning subnetwork beats random and bad on 1 of 1 tasks (SST-2)" in text
    # bad s re-fine-tuned 0.85 against majority 0.5 and full 0.91: (0.85 - 0.5) / 0.41 = 0.85
    assert "to the full model is SST-2 0.85" in text and "beats every GLUE baseline on 1 of 1 tasks (SST-2)" in text
    stalled = tables.table2(stats, refs.assign(full_mean=0.52), {})
    text = lottery_stats.conclusions(lottery_stats.lottery_means(stats, refs.assign(full_mean=0.52)), stalled, "demo", [1])
    assert "to the full model is SST-2 n/a" in text                       # 0.02 above the majority: no share


def test_mask_sizes_as_shares_next_to_the_authors_masks():
    s_pruning = [("SST-2", seed, "s_pruning", S_PRUNING, "good", PRUNED, m, v, c, "")
                 for seed, heads in ((1, 36), (2, 54), (3, 45))
                 for c, m, v in (("head", "kept", heads), ("head", "total", 72), ("mlp", "kept", 6), ("mlp", "total", 6))]
    weights = [("SST-2", seed, "lottery", method, "good", PRUNED, "weight_share", v)
               for seed in (1, 2, 3) for method, v in ((S_PRUNING, 0.6), (M_PRUNING, 0.4))]
    authors = frame([("SST-2", pd.NA, "stability", S_PRUNING, "good", results.AUTHORS_MASKS, m, v, c, "")
                     for c, m, v in (("head", "survival", 0.48), ("head", "kappa", 0.2))])
    res = pd.concat([table(), frame(s_pruning), frame(weights), stability_rows("SST-2", 3, 0.31, 4.0, 0.1), authors])
    row = mask_sizes(res).set_index("task").loc["SST-2"]
    assert row["heads kept"] == "0.62 ± 0.12" and row["MLPs kept"] == "1.00 ± 0.00"      # 36, 54, 45 of 72
    assert row["s: weights kept"] == "0.60 ± 0.00" and row["m: weights kept"] == "0.40 ± 0.00"
    assert row["heads kept, authors' masks"] == "0.48" and row["MLPs kept, authors' masks"] == ""
    assert row["head kappa, ours"] == "0.31" and row["head kappa, authors' masks"] == "0.20"
