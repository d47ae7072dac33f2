"""The smoke grid through Snakemake: interrupted, resumed, complete, and not redone.

The first two stages are enough for the mechanics (the whole smoke grid runs in `make test`)."""
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from lotterylib import pipeline, runs
from lotterylib.summary import collect

pytestmark = pytest.mark.slow
SNAKEMAKE = [sys.executable, "-m", "snakemake", "-s", "workflow/Snakefile", "--nolock", "--rerun-incomplete"]


STAGES = "[finetune,s_pruning]"


def snakemake(outputs_root, *args, cores=2, **popen):
    cmd = [*SNAKEMAKE, "--cores", str(cores), "--config", "preset=smoke", f"stages={STAGES}",
           f"outputs_root={outputs_root}", *args]
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    if popen:
        return subprocess.Popen(cmd, cwd=runs.PROJECT_ROOT, env=env, start_new_session=True, **popen)
    return subprocess.run(cmd, cwd=runs.PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=1800)


def test_smoke_grid_survives_a_kill_and_resumes_without_redoing_work(tmp_path, glue_dir, monkeypatch):
    monkeypatch.setenv("LOTTERY_GLUE_DIR", str(glue_dir))
    root = tmp_path / "smoke"
    preset = pipeline.load_preset("smoke", {"outputs_root": str(root), "stages": ["finetune", "s_pruning"]})
    targets = [Path(t) for t in pipeline.targets(preset)]

    # 1. start the grid on one core; kill the whole process group once a job has finished and the next began
    proc = snakemake(root, cores=1, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 900

    def started():
        return len(list(root.glob("**/params.json")))

    while (started() < 2 or not any(t.exists() for t in targets)) and time.time() < deadline and proc.poll() is None:
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    finished = {t: t.stat().st_mtime_ns for t in targets if t.exists()}
    assert 0 < len(finished) < len(targets), "the kill should land mid-grid"

    # 2. rerun: only the unfinished jobs run, and the grid completes
    out = snakemake(root)
    assert out.returncode == 0, out.stderr[-3000:]
    assert all(t.exists() for t in targets)
    assert {t: t.stat().st_mtime_ns for t in finished} == finished, "finished jobs were redone"
    steps = len(targets) - len(finished) + 2  # the unfinished jobs, then results.csv and the `all` rule
    assert f"{steps} of {steps} steps" in out.stderr

    # 3. the produced files: executed notebook, current signature with the commit the job ran at
    for job, t in zip(pipeline.grid_jobs(preset), targets):
        folder = t.parent
        assert pipeline.is_current(preset, *job)
        assert pipeline.recorded_signature(folder)[1] == pipeline.git_commit()
        assert (folder / f"{Path(pipeline.STAGES[folder.name].notebook).name}").is_file()
        if folder.name == "finetune":
            assert (folder / "checkpoint" / "model.safetensors").is_file() and (folder / "loss.png").is_file()
    table = collect(root)
    assert len(table) == len(targets) and table.result.str.len().gt(0).all()

    # 4. nothing left to do; a changed parameter reruns exactly the jobs it affects
    again = snakemake(root, "--dry-run")
    assert "Nothing to be done" in again.stdout + again.stderr
    changed = snakemake(root, "--dry-run", "--config", "preset=smoke", f"stages={STAGES}", f"outputs_root={root}",
                        "threshold=0.8")
    assert "s_pruning" in changed.stdout and "finetune" not in changed.stdout.split("Job stats")[-1]
