"""Jobs stop with the workflow (`pipeline.run_stage` runs each notebook in a runner process, issue 19).

A stand-in for Snakemake runs one job as Snakemake runs a `run:` rule: `run_stage` in a worker thread, the
main thread waiting for it (and, interrupted, waiting for it again, as Snakemake's executor does). The job's
notebook writes its kernel's pid, then would sleep two minutes and write metrics.json. The workflow is
interrupted (SIGINT to it alone) or killed (SIGKILL): the kernel must be gone and nothing marked done. Bounded
waits only: the kernel's start (up to 240 s on a busy machine) and its end (up to 60 s)."""
import contextlib
import os
import signal
import subprocess
import sys
import time

import nbformat
import pytest

from lotterylib.core import files

SNAKEFILE = """
from pathlib import Path
from lotterylib.workflow import pipeline
pipeline.forward_interrupts()  # as workflow/Snakefile does

rule job:
    output: "run/metrics.json"
    run: pipeline.run_stage(str(Path("job.ipynb").resolve()), output[0], "job.log", {}, "sig")
"""
STAND_IN = """
import sys, threading
from lotterylib.workflow import pipeline
pipeline.forward_interrupts()  # as the Snakefile does
from pathlib import Path
job = threading.Thread(target=pipeline.run_stage,
                       args=(str(Path("job.ipynb").resolve()), "run/metrics.json", "job.log", {}, "sig"))
job.start()
try:
    while job.is_alive():
        job.join(0.2)
except KeyboardInterrupt:
    job.join()  # Snakemake waits for its running jobs
    sys.exit(130)
"""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _wait_until(condition, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out after {timeout:.0f} s waiting for {what}"
        time.sleep(0.2)


@pytest.mark.slow
@pytest.mark.parametrize("workflow, stop", [("snakemake", signal.SIGINT), ("stand-in", signal.SIGINT),
                                            ("stand-in", signal.SIGKILL)],
                         ids=["snakemake-sigint", "stand_in-sigint", "stand_in-kill_9"])
def test_a_stopped_workflow_stops_its_jobs_kernel_and_nothing_is_marked_done(tmp_path, workflow, stop):
    pid_file, metrics = tmp_path / "kernel.pid", tmp_path / "run" / "metrics.json"
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(
        f"import os, time\nfrom pathlib import Path\nPath({str(pid_file)!r}).write_text(str(os.getpid()))\n"
        f"time.sleep(120)\nPath({str(metrics)!r}).write_text('{{}}')")])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, tmp_path / "job.ipynb")
    (tmp_path / "Snakefile").write_text(SNAKEFILE)
    command = ([sys.executable, "-m", "snakemake", "-s", "Snakefile", "--cores", "1"] if workflow == "snakemake"
               else [sys.executable, "-c", STAND_IN])
    proc = subprocess.Popen(command, cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(files.PROJECT_ROOT)},
                            start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _wait_until(lambda: proc.poll() is not None or (pid_file.is_file() and pid_file.read_text()), 240,
                    "the job's kernel to start")
        assert proc.poll() is None, "the workflow ended before its job started"
        kernel = int(pid_file.read_text())
        os.kill(proc.pid, stop)
        assert proc.wait(timeout=90) != 0
        _wait_until(lambda: not _alive(kernel), 60, f"the kernel {kernel} to stop")
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)  # whatever is left of this test's processes
    assert not metrics.exists() and not (tmp_path / "run" / "signature.txt").exists()
