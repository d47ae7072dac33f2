"""The Snakefile's rerun rules and dependencies, by dry-runs on a copy of the project with faked results.

Reruns follow code and parameters, not file times or Snakemake's records; a fresh clone takes committed
results as done; a changed parameter or a stale run folder reruns exactly what it changes; a lottery
job without extras waits only for its own seed's s-pruning; every job has a log and a benchmark file."""
import os
import random
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pytest

from lotterylib.core import files
from lotterylib.workflow import pipeline

STAGE_NOTEBOOK = {name: Path(stage.notebook) for name, stage in pipeline.STAGES.items()}


@pytest.fixture
def project(tmp_path) -> Path:
    """A copy of the project's code, notebooks and presets, whose smoke grid has finished: each run folder has
    a (faked) metrics.json, report files and the signature `run_stage` records."""
    copy = tmp_path / "project"
    for part in ("lotterylib", "workflow", "notebooks", "params"):
        shutil.copytree(files.PROJECT_ROOT / part, copy / part, ignore=shutil.ignore_patterns("__pycache__"))
    preset = pipeline.load_preset("smoke")
    for job in pipeline.grid_jobs(preset):
        folder = (copy / pipeline.metrics_path(preset, *job)).parent
        folder.mkdir(parents=True)
        (folder / "metrics.json").write_text("{}")
        for name in pipeline.STAGES[job[0]].report_files:   # the files the rule marks for Snakemake's report
            (folder / name).write_text("")
        (folder / pipeline.SIGNATURE_FILE).write_text(pipeline.job_signature(preset, *job))
    (copy / preset["outputs_root"] / "results.csv").write_text("task\n")
    return copy


def snakemake(project: Path, *args: str) -> str:
    """A dry-run (or `--touch`) of the smoke grid in `project`; its whole output."""
    cmd = [sys.executable, "-m", "snakemake", "-s", "workflow/Snakefile", "--cores", "2", "--nolock",
           "--config", "preset=smoke", *args]
    out = subprocess.run(cmd, cwd=project, env={**os.environ, "PYTHONPATH": str(project)}, capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    return out.stdout + out.stderr


def jobs_to_run(output: str) -> dict[str, int]:
    """`{rule: count}` of a dry-run's job table (empty when there is nothing to do)."""
    if "Nothing to be done" in output:
        return {}
    table = output.split("Job stats:")[1].split("total")[0]
    return {m[1]: int(m[2]) for m in re.finditer(r"^(\w+)\s+(\d+)$", table, re.M) if m[1] not in ("all", "stale")}


def shuffle_times(project: Path, seed: int) -> None:
    """Give every file of the project a random time within the last hour, as a checkout in any order might."""
    rng, now = random.Random(seed), time.time()
    for path in project.rglob("*"):
        if path.is_file():
            stamp = now - rng.uniform(0, 3600)
            os.utime(path, (stamp, stamp))


PER_PRESET = {"bad_subnetworks": 1, "stability": 1, "attention_patterns": 1, "results": 1, "report": 1}


@pytest.mark.parametrize("history", [False, pytest.param(True, marks=pytest.mark.slow)], ids=["fresh", "history"])
def test_a_change_reruns_exactly_the_jobs_it_changes_whatever_the_times_and_records(project, history):
    if history:
        snakemake(project, "--touch", "--forceall")  # Snakemake's records of a previous run
    shuffle_times(project, seed=int(history))
    assert jobs_to_run(snakemake(project, "--dry-run")) == {}

    # a fine-tuning parameter: every per-seed stage and everything over them
    fine_tuning = snakemake(project, "--dry-run", "--config", "preset=smoke", "learning_rate=2e-5")
    assert jobs_to_run(fine_tuning) == {"finetune": 4, "s_pruning": 4, "m_pruning": 4, "lottery": 4, **PER_PRESET}
    # a lottery-only parameter: the lottery and what reads it
    lottery_only = snakemake(project, "--dry-run", "--config", "preset=smoke", "both_rules=False")
    assert jobs_to_run(lottery_only) == {"lottery": 4, "bad_subnetworks": 1, "results": 1, "report": 1}

    # one seed's fine-tuning recorded under other code: that seed, and the lottery of both seeds (extras)
    (project / "outputs/smoke/SST-2/seed_1/finetune" / pipeline.SIGNATURE_FILE).write_text("0123456789abcdef\n")
    shuffle_times(project, seed=2)
    stale = snakemake(project, "--dry-run")
    assert jobs_to_run(stale) == {"finetune": 1, "s_pruning": 1, "m_pruning": 1, "lottery": 2, **PER_PRESET}
    assert set(re.findall(r"output: outputs/smoke/(\S+)/lottery/metrics.json", stale)) == {"SST-2/seed_1",
                                                                                            "SST-2/seed_2"}


def edit_notebook(path: Path, edit) -> None:
    nb = nbformat.read(path, as_version=4)
    edit(nb.cells)
    nbformat.write(nb, path)


def test_a_fresh_clone_takes_committed_results_as_done(project):
    # checkout order gives no guarantee: make notebooks and upstream results newer than what reads them
    later = time.time() + 60
    for path in [*project.glob("notebooks/*.ipynb"), *project.glob("outputs/smoke/*/seed_*/finetune/metrics.json")]:
        os.utime(path, (later, later))
    assert jobs_to_run(snakemake(project, "--dry-run")) == {}


@pytest.mark.slow
def test_reruns_follow_code_and_parameters_not_notebook_outputs(project):
    snakemake(project, "--touch", "--forceall")  # record every job as done in Snakemake's metadata
    s_pruning = project / STAGE_NOTEBOOK["s_pruning"]

    def outputs_and_markdown(cells):
        cells[0].source += "\n\nA new sentence."
        for cell in cells:
            if cell.cell_type == "code":
                cell.outputs, cell.execution_count = [], None
    edit_notebook(s_pruning, outputs_and_markdown)
    assert jobs_to_run(snakemake(project, "--dry-run")) == {}

    def code(cells):
        cell = next(c for c in cells if c.cell_type == "code" and "parameters" not in c.metadata.get("tags", []))
        cell.source += "\nprint('changed')"
    edit_notebook(s_pruning, code)
    downstream = {"s_pruning": 4, "lottery": 4, "bad_subnetworks": 1, "stability": 1, "attention_patterns": 1,
                  "results": 1, "report": 1}
    assert jobs_to_run(snakemake(project, "--dry-run")) == downstream

    # a parameter only notebook 1 reads reruns fine-tuning and everything after it
    changed = snakemake(project, "--dry-run", "--config", "preset=smoke", "max_seq_len=32")
    assert jobs_to_run(changed) == {**downstream, "finetune": 4, "m_pruning": 4}


def lottery_inputs(output: str) -> dict[str, set[str]]:
    """`{"<task>/seed_<seed>": {its s_pruning inputs}}` for the lottery jobs of a dry-run."""
    inputs = {}
    for block in output.split("rule lottery:")[1:]:
        block = block.split("\n[")[0].split("Job stats")[0]
        folder = re.search(r"output: .*/([^/]+/seed_\d+)/lottery/metrics.json", block)[1]
        inputs[folder] = set(re.findall(r"([^/ ,]+/seed_\d+)/s_pruning/metrics.json", block))
    return inputs


def test_a_lottery_job_without_extras_waits_only_for_its_own_seed_and_every_job_logs(project):
    for target in project.glob("outputs/smoke/**/metrics.json"):
        target.unlink()
    with_extras = snakemake(project, "--dry-run")
    without = lottery_inputs(snakemake(project, "--dry-run", "--config", "preset=smoke", "extras=False"))
    assert lottery_inputs(with_extras)["SST-2/seed_1"] == {"SST-2/seed_1", "SST-2/seed_2"}
    assert without == {job: {job} for job in lottery_inputs(with_extras)} and len(without) == 4

    logs = set(re.findall(r"log: outputs/smoke/(\S+)", with_extras))
    benchmarks = set(re.findall(r"benchmark: outputs/smoke/(\S+)", with_extras))
    assert "logs/finetune/SST-2_1.log" in logs and "logs/stability/all_tasks.log" in logs
    assert "benchmarks/lottery/STS-B_2.tsv" in benchmarks
    assert len(logs) == len(benchmarks) == sum(jobs_to_run(with_extras).values()) == 21


def test_the_html_report_holds_every_stage_s_figures_with_their_captions(project, tmp_path):
    snakemake(project, "--report", str(tmp_path / "report.html"))
    html = (tmp_path / "report.html").read_text()
    for stage, names in ((s.name, s.report_files) for s in pipeline.STAGES.values()):
        assert all(name in html for name in names), stage
        caption = (files.PROJECT_ROOT / "workflow" / "report" / f"{stage}.rst").read_text().split("(notebook")[0]
        assert caption.strip() in html, stage
    assert "results.csv" in html and "4. lottery" in html


def test_snakemake_lint_is_clean(project):
    assert "Congratulations, your workflow is in a good condition!" in snakemake(project, "--lint")
