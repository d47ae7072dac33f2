"""The tidy results table: built from hand-made run folders, written and read back, and the summary CLI."""
import numpy as np
import pandas as pd
import pytest

from lotterylib.analysis import lottery
from lotterylib.analysis.lottery import SCORE_COLUMNS
from lotterylib.core import files
from lotterylib.stages import runs
from lotterylib.workflow import pipeline, results, summary


def fake_tree(root):
    """Two seeds of SST-2 with finetune, s_pruning, lottery; one stability and one attention_patterns stage."""
    for seed in (1, 2):
        files.write_json_atomic(runs.stage_dir(root, "finetune", "SST-2", seed) / "metrics.json",
                               {"dev_score": 0.8 + seed / 100, "majority_baseline": 0.5, "final_train_loss": 0.3,
                                "train_examples": 48, "dev_examples": 40})
        files.write_json_atomic(runs.stage_dir(root, "s_pruning", "SST-2", seed) / "metrics.json",
                               {"good_score": 0.75, "heads_kept": 40, "heads_total": 72, "mlps_kept": 5, "steps": 3})
        lot = runs.stage_dir(root, "lottery", "SST-2", seed)
        lot.mkdir(parents=True)
        pd.DataFrame([["SST-2", seed, "s-pruning", n, "pruned", np.nan, 40, 5, 0.6, 0.4, v]
                      for n, v in (("good", 0.75), ("random", 0.6), ("bad", 0.55))],
                     columns=SCORE_COLUMNS).to_csv(lot / "scores.csv", index=False)
        files.write_json_atomic(lot / "metrics.json", {})
    stab = runs.stage_dir(root, "stability")
    stab.mkdir(parents=True)
    pd.DataFrame({"task": ["SST-2"], "n_seeds": [2], "head_kappa": [0.2], "head_Q": [4.0], "head_p": [0.045],
                  "mlp_kappa": [np.nan]}).to_csv(stab / "stability.csv", index=False)
    pd.DataFrame({"task": ["SST-2"], "head_kappa": [0.25]}).to_csv(stab / "authors_stability.csv", index=False)
    files.write_json_atomic(stab / "metrics.json", {})
    att = runs.stage_dir(root, "attention_patterns")
    att.mkdir(parents=True)
    pd.DataFrame({"task": "SST-2", "model": "fine-tuned", "map_kind": "raw", "group": ["all heads", "all heads"],
                  "class": ["vertical", "block"], "count": [30, 10], "share": [0.75, 0.25]}
                 ).to_csv(att / "pattern_shares.csv", index=False)
    files.write_json_atomic(att / "metrics.json", {"cnn_held_out_accuracy": {"all": 0.9},
                                                  "agreement": [{"task": "SST-2", "model": "fine-tuned", "map": "raw",
                                                                 "CNN = rule": 0.6}]})
    (root / "SST-2" / "seed_1" / "m_pruning").mkdir(parents=True)     # unfinished: no metrics.json, no rows


def test_collect_reads_every_finished_stage(tmp_path):
    fake_tree(tmp_path)
    res = results.collect(tmp_path)
    assert list(res.columns) == results.COLUMNS
    assert set(res.stage) == {"finetune", "s_pruning", "lottery", "stability", "attention_patterns"}
    one = res.set_index(["task", "seed", "stage", "method", "subnetwork", "setting", "component", "metric"])["value"]
    assert one[("SST-2", 2, "finetune", lottery.FULL, "", lottery.FINETUNED, "", "score")] == pytest.approx(0.82)
    assert one[("SST-2", 1, "finetune", results.MAJORITY, "", "", "", "score")] == 0.5
    assert one[("SST-2", 1, "lottery", "s-pruning", "bad", "pruned", "", "score")] == 0.55
    assert one[("SST-2", 1, "lottery", "s-pruning", "bad", "pruned", "mlp", "kept")] == 5
    assert one[("SST-2", 2, "s_pruning", "s-pruning", "good", "pruned", "head", "kept")] == 40
    assert one[("SST-2", 2, "s_pruning", "s-pruning", "good", "pruned", "head", "total")] == 72
    stab = res[res.stage == "stability"].set_index(["setting", "component", "metric"])["value"]
    assert res[res.stage == "stability"].seed.isna().all() and stab[(results.ACROSS_SEEDS, "head", "cochran_p")] == 0.045
    assert stab[(results.ACROSS_SEEDS, "head", "cochran_q")] == 4 and stab[(results.ACROSS_SEEDS, "", "n_seeds")] == 2
    assert stab[(results.AUTHORS_MASKS, "head", "kappa")] == 0.25
    assert "mlp" not in set(stab.index.get_level_values("component")) and "epochs" not in set(res.metric)  # NaN out
    att = res[res.stage == "attention_patterns"].set_index(["task", "pattern", "metric"])["value"]
    assert att[("SST-2", "vertical", "share")] == 0.75 and att[("SST-2", "block", "count")] == 10
    assert att[("SST-2", "", "cnn_rule_agreement")] == 0.6 and att[("", "", "cnn_accuracy")] == 0.9
    assert one[("SST-2", 1, "finetune", lottery.FULL, "", lottery.FINETUNED, "", "train_examples")] == 48
    # 2 seeds x (5 finetune + 5 s_pruning + 3 subnetworks x 5 lottery metrics) + 5 stability + 4 + 1 + 1 patterns
    assert len(res) == 2 * (5 + 5 + 15) + 5 + 6
    names = set(res.metric)                                     # one naming style: no variables, no spaces
    assert all(n == n.lower() and " " not in n for n in names) and not {"head_kappa", "heads_kept"} & names


def test_stability_names_round_trip():
    for name in ("head_Q", "mlp_p", "head_kappa", "head_jaccard_chance", "n_seeds", "n_draws"):
        assert results.stability_name(*results.stability_key(name)) == name
    assert results.stability_key("head_Q") == ("head", "cochran_q") and results.stability_key("n_pairs") == ("", "n_pairs")


def test_the_csv_holds_integer_seeds_and_old_tables_are_refused(tmp_path):
    fake_tree(tmp_path)
    path = results.write(tmp_path)
    lines = path.read_text().splitlines()
    assert lines[0] == ",".join(results.COLUMNS) and lines[1].startswith("SST-2,1,finetune,")
    assert not any(".0," in line.split(",", 2)[1] + "," for line in lines[1:])     # never 1.0
    assert set(pd.read_csv(path, dtype={"seed": "Int64"}).seed.dropna()) == {1, 2}
    old = pd.read_csv(path).drop(columns=["component", "pattern"])
    old.to_csv(tmp_path / "old.csv", index=False)
    with pytest.raises(ValueError, match="python -m lotterylib.workflow.results"):
        results.read(tmp_path / "old.csv")


def test_the_cli_rebuilds_into_another_folder(tmp_path, capsys):
    fake_tree(tmp_path / "run")
    assert results.main([str(tmp_path / "run"), "--to", str(tmp_path / "copy")]) == 0
    assert not (tmp_path / "run" / results.CSV_NAME).exists()                      # the run folders stay read-only
    pd.testing.assert_frame_equal(results.read(tmp_path / "copy"), results.collect(tmp_path / "run"))


@pytest.mark.parametrize("name", [results.CSV_NAME, results.PARQUET_NAME])
def test_write_and_read_round_trip(tmp_path, name):
    fake_tree(tmp_path)
    written = results.write(tmp_path)
    assert written == tmp_path / results.CSV_NAME and (tmp_path / results.PARQUET_NAME).is_file()
    assert not list(tmp_path.glob(".*.tmp"))
    back = results.read(tmp_path / name)
    pd.testing.assert_frame_equal(back, results.collect(tmp_path))
    assert str(back.seed.dtype) == "Int64" and back.loc[back.stage == "stability", "seed"].isna().all()
    assert (back.loc[back.stage == "finetune", "subnetwork"] == "").all()
    with pytest.raises(FileNotFoundError, match="lotterylib.workflow.results"):
        results.read(tmp_path / "nowhere")


def test_seed_table_and_markdown(tmp_path):
    fake_tree(tmp_path)
    table = results.seed_table(results.collect(tmp_path), "lottery")
    assert list(table.columns) == [1, 2] and table.loc[("SST-2", "s-pruning", "random", "pruned"), 2] == 0.6
    md = results.markdown(pd.DataFrame({"a": ["x|y", "z"], "b": [0.12345, np.nan], "n": [1, 2]}))
    assert md.splitlines() == ["| a    |     b |   n |", "|:-----|------:|----:|", "| x\\|y | 0.123 |   1 |",
                               "| z    |       |   2 |"]


def test_summary_cli(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_:
        summary.main(["--help"])
    assert exit_.value.code == 0 and "--format {text,csv,md}" in capsys.readouterr().out
    assert summary.main([str(tmp_path / "none")]) == 1 and "no such folder" in capsys.readouterr().err
    assert summary.main([str(tmp_path)]) == 1 and "No finished stages" in capsys.readouterr().err
    fake_tree(tmp_path)
    assert summary.main([str(tmp_path)]) == 0 and "lottery" in capsys.readouterr().out
    out = tmp_path / "r.csv"
    assert summary.main([str(tmp_path), "--table", "results", "--format", "csv", "-o", str(out)]) == 0
    pd.testing.assert_frame_equal(results.read(out), results.collect(tmp_path))
    assert summary.main([str(tmp_path), "--format", "md"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["|", "task", "|", "seed", "|", "stage", "|", "result", "|", "current", "|",
                                "folder", "|"]
    assert len(lines) == 2 + 2 * 3 + 2


def test_the_summary_of_a_preset_s_folder_says_which_runs_are_current(tmp_path, monkeypatch):
    overrides = {"preset": "smoke", "outputs_root": str(tmp_path), "tasks": "[SST-2]", "stages": "[finetune]"}
    preset = pipeline.load_preset(overrides=overrides)
    for job in pipeline.grid_jobs(preset):
        folder = runs.stage_dir(tmp_path, *job)
        folder.mkdir(parents=True)
        (folder / "metrics.json").write_text("{}")
        pipeline.record_signature(folder, pipeline.job_signature(preset, *job))
    pipeline.record_signature(runs.stage_dir(tmp_path, "finetune", "SST-2", 2), "older code")
    assert summary.collect(tmp_path)["current"].tolist() == ["", ""]       # not a preset's own folder
    monkeypatch.setattr(pipeline, "folder_overrides", lambda root: overrides)
    assert summary.collect(tmp_path)["current"].tolist() == ["yes", "no"]  # seeds 1 and 2


def test_table2_adds_no_rows_the_literature_baselines_are_shipped_data(tmp_path):
    """Our Table 2 rows are means of the lottery numbers (already in the table), the GLUE baselines are
    `lotterylib.analysis.baselines`: the bad_subnetworks stage adds nothing."""
    folder = runs.stage_dir(tmp_path, "bad_subnetworks")
    folder.mkdir(parents=True)
    pd.DataFrame({"SST-2": [0.51, 0.795]}, index=["majority class", "CBOW"]).to_csv(folder / "table2.csv")
    files.write_json_atomic(folder / "metrics.json", {})
    assert results.collect(tmp_path).empty
