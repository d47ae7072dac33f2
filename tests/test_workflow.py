"""The smoke grid through Snakemake: interrupted, resumed, complete, and not redone.

The first two stages are enough for the mechanics (the whole smoke grid runs in `make test`)."""
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from lotterylib.core import files
from lotterylib.stages import runs
from lotterylib.workflow import pipeline
from lotterylib.workflow.summary import collect

pytestmark = pytest.mark.slow
SNAKEMAKE = [sys.executable, "-m", "snakemake", "-s", "workflow/Snakefile", "--nolock", "--rerun-incomplete"]


STAGES = "[finetune,s_pruning]"


def snakemake(outputs_root, *args, cores=2, **popen):
    cmd = [*SNAKEMAKE, "--cores", str(cores), "--config", "preset=smoke", f"stages={STAGES}",
           f"outputs_root={outputs_root}", *args]
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    if popen:
        return subprocess.Popen(cmd, cwd=files.PROJECT_ROOT, env=env, start_new_session=True, **popen)
    return subprocess.run(cmd, cwd=files.PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=1800)


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


def test_a_missing_checkpoint_is_rebuilt_by_the_stages_that_need_it(tmp_path, glue_dir):
    """A clone: the fine-tuning is done and current, its checkpoint (not committed) is gone. `lottery run` then
    runs s-pruning and m-pruning side by side; one rebuilds the checkpoint (the other waits and reuses it), the
    same model as before, and the fine-tuning's own files stay as they were. Then the m-pruning's weight masks
    (not committed either) go too: the lottery job rebuilds them, the same masks."""
    import safetensors.torch

    root = tmp_path / "smoke"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "LOTTERY_GLUE_DIR": str(glue_dir), "OMP_NUM_THREADS": "1"}
    grid = ["tasks=[SST-2]", "seeds=[1]", f"outputs_root={root}"]
    first = subprocess.run([*SNAKEMAKE, "--cores", "1", "--config", "preset=smoke", "stages=[finetune]", *grid],
                           cwd=files.PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=1800)
    assert first.returncode == 0, first.stderr[-3000:]
    finetune = root / "SST-2" / "seed_1" / "finetune"
    checkpoint = finetune / "checkpoint"
    original = safetensors.torch.load_file(checkpoint / "model.safetensors")
    committed = {p.name: p.read_bytes() for p in finetune.iterdir() if p.is_file() and p.name != files.LOCK_FILE}
    assert {"metrics.json", "params.json", pipeline.SIGNATURE_FILE, "01_finetune.ipynb"} <= set(committed)
    shutil.rmtree(checkpoint)

    out = subprocess.run([sys.executable, "-m", "lotterylib", "run", "smoke", "--cores", "2", "--config",
                          "stages=[finetune,s_pruning,m_pruning]", *grid, "--", "--nolock"],
                         cwd=files.PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=1800)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert "1/3 jobs done; 2 to run, about" in out.stdout and "3/3 jobs done; nothing left to run." in out.stdout
    assert "finetune" not in out.stderr.split("Job stats:")[-1].split("total")[0]   # not rerun by Snakemake
    for stage in ("s_pruning", "m_pruning"):
        assert runs.is_done(root / "SST-2" / "seed_1" / stage)

    rebuilt = safetensors.torch.load_file(checkpoint / "model.safetensors")
    assert rebuilt.keys() == original.keys() and all(rebuilt[k].equal(original[k]) for k in original)
    record = files.read_json(checkpoint / "rebuilt.json")
    assert record["check"] == "identical" and record["threads_recorded"] == 1
    assert {p.name: p.read_bytes() for p in finetune.iterdir() if p.is_file() and p.name != files.LOCK_FILE} == committed
    logs = [(root / "logs" / stage / "SST-2_1.log").read_text() for stage in ("s_pruning", "m_pruning")]
    assert sum("is missing (checkpoints are not committed): rebuilding it" in log for log in logs) == 1

    # a clone one stage further: the lottery job rebuilds the m-pruning masks (and the checkpoint they come from)
    m_pruning = root / "SST-2" / "seed_1" / "m_pruning"
    masks = m_pruning / "weight_masks.npz"
    with np.load(masks) as data:
        original_masks = {k: data[k] for k in data.files}
    masks.unlink()
    shutil.rmtree(checkpoint)
    out = subprocess.run([sys.executable, "-m", "lotterylib", "run", "smoke", "--cores", "1", "--config",
                          "stages=[finetune,s_pruning,m_pruning,lottery]", "extras=false",
                          "both_rules=false", *grid, "--", "--nolock"],  # the lottery's core runs only
                         cwd=files.PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=1800)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert "3/4 jobs done; 1 to run" in out.stdout and runs.is_done(root / "SST-2" / "seed_1" / "lottery")
    with np.load(masks) as data:
        assert data.files == list(original_masks) and all((data[k] == original_masks[k]).all() for k in data.files)
    log = (root / "logs" / "lottery" / "SST-2_1.log").read_text()
    assert "weight_masks.npz is missing (weight masks are not committed): rebuilding it" in log
    assert "surviving fractions identical" in log
