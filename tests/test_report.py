"""The report's logic on hand-made results tables: verdicts, claims, paper vs ours, held-out gaps, README."""
import io
import re
import tomllib

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from lotterylib import reference, report, results, runs
from lotterylib.lottery import M, PRUNED, REFINETUNED, S

# Per seed: full, majority, then (method, subnetwork, setting) -> score; sparsity of the good subnetworks.
HOLDING = {"full": [0.90, 0.92, 0.91], "majority": [0.5, 0.5, 0.5],
           (S, "good", PRUNED): [0.85, 0.86, 0.84], (S, "random", PRUNED): [0.70, 0.60, 0.65],
           (S, "bad", PRUNED): [0.55, 0.60, 0.58], (S, "good", REFINETUNED): [0.88, 0.89, 0.87],
           (S, "random", REFINETUNED): [0.87, 0.90, 0.86], (S, "bad", REFINETUNED): [0.85, 0.84, 0.86],
           (M, "good", PRUNED): [0.84, 0.85, 0.86], (M, "random", PRUNED): [0.70, 0.72, 0.69],
           (M, "bad", PRUNED): [0.50, 0.52, 0.51], (M, "good", REFINETUNED): [0.88, 0.88, 0.89],
           "s sparsity": [0.30, 0.35, 0.32], "m sparsity": [0.60, 0.61, 0.62]}


def table(changes=None, task="SST-2"):
    """A results table as `results.collect` would give for one task (the HOLDING numbers, with changes)."""
    spec = {**HOLDING, **(changes or {})}
    rows = []
    for i, seed in enumerate((1, 2, 3)[:len(spec["full"])]):
        rows += [(task, seed, "finetune", results.FULL, "", results.FINETUNED, "score", spec["full"][i]),
                 (task, seed, "finetune", results.FULL, "", results.FINETUNED, "train_examples", 2000),
                 (task, seed, "finetune", results.FULL, "", results.FINETUNED, "dev_examples", 872),
                 (task, seed, "finetune", results.MAJORITY, "", "", "score", spec["majority"][i])]
        for key, values in spec.items():
            if isinstance(key, tuple):
                rows.append((task, seed, "lottery", *key, "score", values[i]))
        for method, name in ((S, "s sparsity"), (M, "m sparsity")):
            rows.append((task, seed, "lottery", method, "good", PRUNED, "sparsity", spec[name][i]))
    return results._typed(pd.DataFrame(rows, columns=results.COLUMNS))


def verdicts(res):
    out = report.score_claims(res)
    return dict(zip(out.claim.str.split(" ").str[:3].str.join(" "), out.verdict))


def test_interval_and_verdict_against_hand_computation():
    d = [0.1, 0.15, 0.2]
    half = stats.t.ppf(0.975, 2) * 0.05 / np.sqrt(3)                           # 0.124: the interval is above 0
    assert report.interval(d) == pytest.approx((0.15, 0.15 - half, 0.15 + half))
    assert report.verdict(d) == report.HOLDS and report.verdict([-x for x in d]) == report.FAILS
    assert report.verdict([0.1, 0.2, 0.3]) == "cannot tell with 3 seeds"      # all positive, but too spread
    assert report.verdict([0.3, -0.1, 0.05]) == "cannot tell with 3 seeds"
    assert report.verdict([0.5]) == "cannot tell with 1 seed"                   # one seed never decides
    assert report.verdict([0.01, 0.01]) == report.HOLDS                          # no spread: the sign decides
    assert report.verdict([0.0, 0.0, 0.0]) == report.FAILS                       # equal is not greater
    assert report.combine([report.HOLDS, "cannot tell with 2 seeds"]) == "cannot tell with 2 seeds"
    assert report.combine(["cannot tell with 2 seeds", report.FAILS]) == report.FAILS


def test_every_lottery_claim_holds_on_the_holding_table():
    out = report.score_claims(table())
    assert len(out) == 6 and (out.verdict == report.HOLDS).all() and (out.seeds == 3).all()
    row = out.set_index("claim").loc["m pruned: good > random > bad"]
    assert row.numbers.startswith("good 0.840/0.850/0.860, random 0.700/0.720/0.690, bad 0.500/0.520/0.510")


def test_claims_that_do_not_hold_or_cannot_be_told():
    fails = verdicts(table({"m sparsity": [0.2, 0.25, 0.22],
                           (M, "bad", PRUNED): [0.80, 0.81, 0.79]}))      # bad above random: the order breaks
    assert fails["m-pruning compresses more"] == report.FAILS
    assert fails["m pruned: good"] == report.FAILS
    unsure = verdicts(table({(S, "bad", REFINETUNED): [0.80, 0.60, 0.75],   # majority + half the gap: ~0.705
                           (S, "random", REFINETUNED): [0.87, 0.70, 0.88]}))
    assert unsure["s: bad re-fine-tuned"] == "cannot tell with 3 seeds"
    assert unsure["s re-fine-tuned: random"] == "cannot tell with 3 seeds"
    one = verdicts(table({k: v[:1] for k, v in HOLDING.items()}))
    assert set(one.values()) == {"cannot tell with 1 seed"}
    low = verdicts(table({(S, "good", PRUNED): [0.70, 0.71, 0.72]}))          # below 90% of ~0.91 on every seed
    assert low["s: good pruned"] == report.FAILS and low["m: good pruned"] == report.HOLDS


def stability_rows(task, n, kappa, q, p):
    return pd.DataFrame([(task, pd.NA, "stability", "s-pruning", "good", results.ACROSS_SEEDS, m, v)
                         for m, v in (("n_seeds", n), ("head_kappa", kappa), ("head_Q", q), ("head_p", p))],
                        columns=results.COLUMNS)


def test_stability_claim_reads_cochrans_p_the_right_way():
    res = results._typed(pd.concat([stability_rows("SST-2", 3, 0.2, 9.0, 0.01),    # masks differ: unstable
                                    stability_rows("MRPC", 3, 0.9, 0.5, 0.78),     # agree: stable
                                    stability_rows("RTE", 3, np.nan, 0.0, 1.0),    # identical (all pruned)
                                    stability_rows("CoLA", 2, 0.3, 1.0, 0.32)]))   # too few seeds to tell
    out = report.stability_claims(res).set_index("task").verdict
    assert out.to_dict() == {"SST-2": report.HOLDS, "MRPC": report.FAILS, "RTE": report.FAILS,
                             "CoLA": "cannot tell with 2 seeds"}


def pattern_rows(task, group, kind, counts):
    return pd.DataFrame([(task, pd.NA, "attention_patterns", kind, group, "fine-tuned", f"count {c}", n)
                         for c, n in counts.items()], columns=results.COLUMNS)


def test_checklist_groups_the_claims_by_task():
    res = results._typed(pd.concat([table(), table(task="MRPC"), stability_rows("SST-2", 3, 0.2, 9.0, 0.01)]))
    out = report.claims(res)
    assert out.task.tolist() == ["SST-2"] * 7 + ["MRPC"] * 6 and str(out.seeds.dtype) == "Int64"
    assert out.claim.iloc[6].startswith("masks unstable") and report.claims(res.iloc[:0]).empty


def test_pattern_claims_and_shares():
    res = results._typed(pd.concat([
        pattern_rows("SST-2", "all heads", "raw", {"vertical": 60, "heterogeneous": 40}),
        pattern_rows("SST-2", "all heads", "normed", {"vertical": 20, "heterogeneous": 80}),
        pattern_rows("SST-2", "super-survivors", "raw", {"vertical": 9, "heterogeneous": 1}),
        pattern_rows("SST-2", "super-survivors", "normed", {"vertical": 1, "heterogeneous": 9})]))
    shares = report.pattern_shares(res).set_index(["map_kind", "group", "class"])["share"]
    assert shares[("normed", "super-survivors", "heterogeneous")] == pytest.approx(0.9)
    out = report.pattern_claims(res).set_index("claim").verdict
    assert out["patterns: norm-weighted maps less vertical than raw (all heads)"] == report.HOLDS
    assert out["patterns (raw): super-survivors no more heterogeneous than all heads"] == report.HOLDS   # 0.1 <= 0.4
    assert out["patterns (normed): super-survivors no more heterogeneous than all heads"] == report.FAILS  # 0.9 > 0.8
    no_super = results._typed(pattern_rows("RTE", "all heads", "raw", {"vertical": 5}))
    assert report.pattern_claims(no_super).verdict.tolist()[1] == "cannot tell (no maps)"


def test_paper_comparison_in_units_of_the_papers_std(tmp_path):
    path = tmp_path / "paper.csv"
    pd.DataFrame({"experiment": ["no_mask", "global_bad", "head_mlp", "freq_baseline"],
                  "meaning": ["full", "m bad", "s good", "majority"], "task": "SST-2",
                  "mean_over_5_seeds": [0.92, 0.5, 0.84, 0.5], "std_ddof1_over_5_seeds": [0.01, 0.02, 0.0, 0.0]}
                 ).to_csv(path, index=False)
    out = report.paper_comparison(table(), path=path).set_index(["method", "subnetwork", "setting"])
    assert list(out.index) == [(results.FULL, "", ""), (results.MAJORITY, "", ""), (S, "good", PRUNED), (M, "bad", PRUNED)]
    full = out.loc[(results.FULL, "", "")]
    assert full["ours mean"] == pytest.approx(0.91) and full["seeds"] == 3
    assert full["difference / paper std"] == pytest.approx(-1.0)
    assert out.loc[(M, "bad", PRUNED), "difference / paper std"] == pytest.approx((0.51 - 0.5) / 0.02)
    assert np.isnan(out.loc[(S, "good", PRUNED), "difference / paper std"])             # the paper's std is 0
    assert not out.loc[(M, "bad", PRUNED), "like for like"] and full["like for like"]
    assert report.paper_comparison(table(), compat="authors", path=path)["like for like"].all()
    view = report.comparison_view(report.paper_comparison(table(), path=path)).loc["SST-2"]
    assert view.loc[(results.FULL, "", ""), ["ours", "paper", "difference / paper std", "like for like"]].tolist() \
        == ["0.910 ± 0.010", "0.920 ± 0.010", -1.0, "yes"]
    assert view.loc[(M, "bad", PRUNED), "like for like"] == "no"
    assert report.paper_comparison(table(), path=tmp_path / "missing.csv").empty


def test_heldout_gaps_side_by_side():
    split = table({(S, "good", PRUNED): [0.75, 0.76, 0.74]})                       # the good mask loses 0.1 on new data
    out = report.heldout_gaps(table(), split).loc[(S, "SST-2")]
    assert out["good - random (dev)"] == pytest.approx(0.85 - 0.65)
    assert out["good - random (split)"] == pytest.approx(0.75 - 0.65)
    assert out["good - random kept"] == pytest.approx(0.5)
    assert report.heldout_gaps(table(), table()).loc[(M, "SST-2"), "good - bad kept"] == pytest.approx(1.0)


def test_table2_and_headline_from_the_results_table():
    res = pd.concat([table(), results._typed(pd.DataFrame(
        [("SST-2", pd.NA, "bad_subnetworks", results.GLUE_BASELINE, "CBOW", "", "score", 0.8)], columns=results.COLUMNS))])
    t2 = report.table2(res)
    assert t2.loc["CBOW", "SST-2"] == 0.8 and t2.loc["bad s-pruned (re-fine-tuned)", "SST-2"] == pytest.approx(0.85)
    head = report.headline_table(res).iloc[0]
    assert head["full model"] == "0.910 ± 0.010" and head[f"m good / random / bad, {PRUNED}"] == "0.850 / 0.703 / 0.510"


def test_readme_section_is_generated_between_the_markers(tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text(f"# x\n{report.README_START}\nold numbers\n{report.README_END}\ntail\n")
    root = tmp_path / "outputs" / "demo"
    root.mkdir(parents=True)
    table().to_csv(root / results.CSV_NAME, index=False)
    (tmp_path / "outputs" / "smoke").mkdir()
    (tmp_path / "outputs" / "smoke" / results.CSV_NAME).write_text("")
    assert report.committed_roots(tmp_path / "outputs") == [root]                    # the CI's runs stay out
    text = report.update_readme(readme, [root])
    assert "old numbers" not in text and text.endswith(f"{report.README_END}\ntail\n")
    assert "### `demo`" in text and "| SST-2 | 2000/872 | 3 | 0.910 ± 0.010 |" in text and "holds 6 (of 6)" in text
    assert "Held-out" not in text                                                    # no split twin
    split = tmp_path / "outputs" / "demo-split"                                      # its split twin has run:
    split.mkdir()
    table({(S, "good", PRUNED): [0.75, 0.76, 0.74]}).to_csv(split / results.CSV_NAME, index=False)
    report_params = {"heldout_root": str(split)}
    runs.write_json_atomic(runs.stage_dir(root, "report") / "params.json",
                           {"hash": runs.params_hash(report_params), "params": report_params})
    line = report.heldout_line(root, results.read(root))
    assert "[`demo-split`]" in line and "SST-2, s: good − random 0.200 → 0.100" in line
    assert "SST-2, m: good − random 0.147 → 0.147" in line
    assert line in report.readme_section(root)
    assert report.NO_RUNS in report.update_readme(readme, [])
    readme.write_text("no markers")
    with pytest.raises(ValueError, match="markers"):
        report.update_readme(readme, [root])


def test_the_readme_results_are_the_generated_ones():
    text = (results.runs.PROJECT_ROOT / "README.md").read_text()
    assert text == report.render_readme(text, report.committed_roots()), "run `make readme-results`"


def test_paper_numbers_ship_with_the_package(monkeypatch, tmp_path):
    monkeypatch.delenv(reference.PAPER_NUMBERS_ENV, raising=False)
    assert reference.paper_value("no_mask", "SST-2") == pytest.approx((0.925688, 0.003383))
    assert len(reference.paper_numbers()) == 180 and (reference.SHIPPED_PAPER_NUMBERS.parent / "README.md").is_file()
    package_data = tomllib.loads((results.runs.PROJECT_ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    assert "data_files/*.csv" in package_data["package-data"]["lotterylib"]
    monkeypatch.setenv(reference.PAPER_NUMBERS_ENV, str(tmp_path / "none.csv"))   # renders without them
    assert reference.paper_numbers() is None and report.paper_comparison(table()).empty


@pytest.mark.slow
def test_the_workflow_writes_results_then_runs_the_report_last(tmp_path):
    """Dry run of the smoke grid: one results job whose inputs are every other stage's metrics.json, then the
    report, which needs results.csv and reads every other stage (its signature follows theirs)."""
    import subprocess
    import sys

    from lotterylib import pipeline

    root = tmp_path / "smoke"
    out = subprocess.run([sys.executable, "-m", "snakemake", "-s", "workflow/Snakefile", "--dry-run", "--nolock",
                          "--config", "preset=smoke", f"outputs_root={root}"], cwd=results.runs.PROJECT_ROOT,
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    log = out.stdout + out.stderr
    jobs = dict(re.findall(r"^rule (\w+):\n((?:    .*\n)+)", log, flags=re.M))
    preset = pipeline.load_preset("smoke", {"outputs_root": str(root)})
    stages = [t for t in pipeline.targets(preset) if "/report/" not in t]
    assert set(jobs["results"].split("input: ")[1].split("\n")[0].split(", ")) == set(stages)
    report_inputs = set(jobs["report"].split("input: ")[1].split("\n")[0].split(", "))
    assert report_inputs == {"notebooks/00_report.ipynb", f"{root}/results.csv", *stages}
    assert f"output: {root}/all_tasks/report/metrics.json" in jobs["report"]


def test_png_preview_scales_down_wide_figures_only(tmp_path):
    import matplotlib.pyplot as plt
    from PIL import Image

    fig, _ = plt.subplots(figsize=(10, 4))
    fig.savefig(tmp_path / "wide.png", dpi=200)                                # 2000 x 800
    fig.savefig(tmp_path / "small.png", dpi=50)                                # 500 x 200
    plt.close(fig)
    wide = Image.open(io.BytesIO(report.png_preview(tmp_path / "wide.png")))
    assert wide.size == (800, 320)
    assert Image.open(io.BytesIO(report.png_preview(tmp_path / "small.png"))).size == (500, 200)


def test_heldout_note_says_why_there_is_no_comparison(tmp_path):
    dev, split = tmp_path / "demo", tmp_path / "demo-split"
    assert "empty" in report.heldout_note(dev, "")
    assert "itself" in report.heldout_note(split, split)
    assert "selection=split" in report.heldout_note(dev, split)            # not run yet
    split.mkdir()
    (split / "results.csv").write_text("task\n")
    assert report.heldout_note(dev, split) is None
