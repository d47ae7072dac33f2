"""The workflow on a real (one-node, local) SLURM cluster through snakemake-executor-plugin-slurm and the
project's profile. Needs root and Debian's slurm-wlm and munge: `make test-slurm` installs them and runs it."""
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from lotterylib.core import files
from lotterylib.workflow import pipeline

pytestmark = [pytest.mark.slow, pytest.mark.slurm]
CLUSTER = files.PROJECT_ROOT / "tests" / "slurm" / "cluster.sh"
DAEMONS = ("munged", "slurmctld", "slurmd")


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.fixture
def cluster(tmp_path):
    if shutil.which("slurmctld") is None or os.geteuid() != 0:
        pytest.skip("needs root and slurm-wlm + munge: run `make test-slurm`")
    folder = tmp_path / "cluster"
    subprocess.run([CLUSTER, "start", folder], check=True, timeout=120)
    pids = {d: int((folder / f"{d}.pids").read_text()) for d in DAEMONS}
    try:
        yield folder
    finally:
        subprocess.run([CLUSTER, "stop", folder], check=True, timeout=120)
    assert not [d for d, pid in pids.items() if alive(pid)], "a daemon outlived `cluster.sh stop`"
    assert not Path("/etc/slurm/slurm.conf").is_symlink()


def test_smoke_grid_runs_on_slurm_with_the_projects_profile(cluster, tmp_path, glue_dir):
    root = tmp_path / "smoke"
    grid = ["stages=[finetune,s_pruning]", "tasks=[SST-2]", "seeds=[1]"]
    cmd = [sys.executable, "-m", "snakemake", "-s", "workflow/Snakefile", "--profile", "workflow/profiles/slurm",
           "--slurm-status-command", "squeue", "--slurm-init-seconds-before-status-checks", "1",
           "--slurm-no-account", "--slurm-logdir", str(tmp_path / "slurm_logs"), "--slurm-keep-successful-logs",
           "--set-resources", "finetune:gpu=0", "s_pruning:gpu=0",  # the test cluster has no GPU
           "--config", "preset=smoke", f"outputs_root={root}", *grid]
    env = {**os.environ, "LOTTERY_GLUE_DIR": str(glue_dir), "HF_HUB_OFFLINE": "1",
           "PYTHONPATH": str(files.PROJECT_ROOT)}
    out = subprocess.run(cmd, cwd=files.PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=1200)
    assert out.returncode == 0, out.stderr[-3000:]

    preset = pipeline.load_preset("smoke", {"outputs_root": str(root), "stages": ["finetune", "s_pruning"],
                                            "tasks": ["SST-2"], "seeds": [1]})
    for job in pipeline.grid_jobs(preset):
        assert pipeline.is_current(preset, *job), job
        assert pipeline.recorded_signature(Path(pipeline.metrics_path(preset, *job)).parent)[1] == pipeline.git_commit()
        assert "[end " in Path(pipeline.job_file(preset, "logs", job[0], ".log", *job[1:])).read_text()
        assert Path(pipeline.job_file(preset, "benchmarks", job[0], ".tsv", *job[1:])).read_text().startswith("s\t")
    # both jobs went through SLURM: its queue (MinJobAge keeps them listed) and the executor's job logs
    queue = subprocess.run(["squeue", "-h", "-t", "all", "-o", "%T"], capture_output=True, text=True, check=True)
    assert queue.stdout.split() == ["COMPLETED", "COMPLETED"]
    assert len(list((tmp_path / "slurm_logs").glob("rule_*/*/*.log"))) == 2
