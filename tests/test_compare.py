"""`make demo`'s comparison of a rerun with the committed run (lotterylib.workflow.compare), on constructed tables,
and the make target itself as a dry run."""
import shutil
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from lotterylib.core import files
from lotterylib.stages import runs
from lotterylib.workflow import compare, pipeline, results

ROOT = files.PROJECT_ROOT


def _table(rows: list[tuple]) -> pd.DataFrame:
    """results.csv rows from (task, seed, metric, value); the other key columns fixed."""
    return pd.DataFrame([dict(task=t, seed=s, stage="finetune", method="full model", subnetwork="", setting="fine-tuned",
                              metric=m, value=v) for t, s, m, v in rows], columns=results.COLUMNS)


COMMITTED = _table([("SST-2", 1, "score", 0.80), ("SST-2", 2, "score", 0.84), ("SST-2", 3, "score", 0.82),
                    ("STS-B", 1, "score", 0.50), ("STS-B", None, "kappa", float("nan")),
                    ("MRPC", 1, "score", 0.70)])


def test_each_number_gets_its_verdict_by_the_committed_seed_spread():
    rerun = _table([("SST-2", 1, "score", 0.80),      # the same float
                    ("SST-2", 2, "score", 0.80),      # 0.04 off; the committed seeds spread 0.84 - 0.80 = 0.04
                    ("SST-2", 3, "score", 0.87),      # 0.05 off: beyond the spread
                    ("STS-B", 1, "score", 0.5000001),  # one seed: no spread, any difference is different
                    ("STS-B", None, "kappa", float("nan")),  # undefined in both: identical
                    ("CoLA", 1, "score", 0.1)])
    table = compare.compare_results(COMMITTED, rerun).set_index(["task", "seed", "metric"])
    verdict = table["verdict"].to_dict()
    assert verdict == {("CoLA", 1, "score"): "only rerun", ("MRPC", 1, "score"): "only committed",
                       ("SST-2", 1, "score"): "bit-identical", ("SST-2", 2, "score"): "within seed noise",
                       ("SST-2", 3, "score"): "different", ("STS-B", 1, "score"): "different",
                       ("STS-B", pd.NA, "kappa"): "bit-identical"}
    assert table.loc[("SST-2", 2, "score"), "seed_spread"] == pytest.approx(0.04)
    assert table.loc[("SST-2", 3, "score"), "diff"] == pytest.approx(0.05)
    assert np.isnan(table.loc[("STS-B", 1, "score"), "seed_spread"])
    assert compare.summary(compare.compare_results(COMMITTED, rerun)) == \
        "7 numbers: 2 bit-identical, 1 within seed noise, 2 different, 1 only committed, 1 only rerun"


def test_the_committed_demo_against_itself_is_bit_identical_and_the_command_writes_every_verdict(tmp_path, capsys):
    committed = files.PROJECT_ROOT / "outputs" / "demo"
    shutil.copy(committed / "results.csv", tmp_path / "results.csv")
    assert compare.main([str(committed), str(tmp_path)]) == 0
    out = capsys.readouterr().out
    n = len(pd.read_csv(committed / "results.csv"))
    assert f"{n} numbers: {n} bit-identical." in out
    assert "The precision is not recorded (committed fp32, rerun unknown)" in out
    assert (pd.read_csv(tmp_path / "comparison.csv")["verdict"] == "bit-identical").all()


def test_a_rerun_in_another_precision_is_said_so(tmp_path):
    for root, bf16 in (("a", False), ("b", True)):
        run = runs.Run(runs.stage_dir(tmp_path / root, "finetune", "SST-2", 1), {"task": "SST-2", "bf16": bf16})
        run.finish({"dev_score": 0.5})
    assert compare.precision_note(tmp_path / "a", tmp_path / "b").startswith(
        "The precision differs (committed fp32, rerun bf16): bit-identical numbers are not expected")
    assert compare.precision_note(tmp_path / "a", tmp_path / "a") == "Both runs in fp32."


def test_a_committed_run_made_by_older_code_is_said_so(tmp_path):
    preset = pipeline.load_preset("smoke", {"outputs_root": str(tmp_path / "smoke")})
    jobs = pipeline.grid_jobs(preset)
    for job in jobs:
        folder = runs.stage_dir(preset["outputs_root"], *job)
        folder.mkdir(parents=True)
        (folder / pipeline.SIGNATURE_FILE).write_text(pipeline.job_signature(preset, *job))
    assert compare.stale_jobs(preset) == []
    (runs.stage_dir(preset["outputs_root"], *jobs[0]) / pipeline.SIGNATURE_FILE).write_text("older code")
    assert compare.stale_jobs(preset) == [jobs[0]]
    assert compare.stale_note(tmp_path / "smoke") is None           # not the preset's own folder (outputs/smoke)
    assert compare.stale_note(tmp_path / "elsewhere") is None       # not a preset's folder at all


@pytest.mark.slow
def test_make_demo_reruns_the_whole_demo_into_a_git_ignored_folder_and_compares(tmp_path):
    """`make -n demo` runs the grid with outputs_root=outputs/local/demo and then the comparison; Snakemake's dry
    run there, on a fresh copy (no outputs/local), plans every job of the grid: nothing is taken from the
    committed run."""
    plan = subprocess.run(["make", "--no-print-directory", "-n", "demo"], cwd=ROOT, capture_output=True, text=True,
                          timeout=60).stdout  # under `make test` too: no "Leaving directory" line after the plan
    assert "lottery run demo " in plan and "--config outputs_root=outputs/local/demo" in plan
    assert plan.strip().endswith("lottery compare outputs/demo outputs/local/demo")
    ignored = subprocess.run(["git", "check-ignore", "-q", "outputs/local/demo/results.csv"], cwd=ROOT)
    assert ignored.returncode == 0
    out = tmp_path / "local" / "demo"
    dry = subprocess.run([sys.executable, "-m", "snakemake", "-s", "workflow/Snakefile", "-n", "--cores", "2",
                          "--config", "preset=demo", f"outputs_root={out}"],
                         cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert dry.returncode == 0, dry.stderr
    preset = pipeline.load_preset("demo", {"outputs_root": str(out)})
    jobs = len(pipeline.grid_jobs(preset)) + 2  # and the results table and `all`
    totals = [line.split() for line in dry.stdout.splitlines() if line.startswith("total ")]
    assert totals[0] == ["total", str(jobs)]
