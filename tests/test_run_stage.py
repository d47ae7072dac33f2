"""`pipeline.run_stage`: a job's log, its error message, and one GPU per job with $LOTTERY_GPUS (faked)."""
import os
import re
import subprocess
import sys
from datetime import datetime
from pathlib import Path

import nbformat
import pytest

from lotterylib.core import files, progress
from lotterylib.workflow import pipeline


def tiny_notebook(path: Path, body: str) -> str:
    """A notebook with a `metrics` parameter and one code cell."""
    parameters = nbformat.v4.new_code_cell('metrics: str = ""  # where to write metrics.json')
    parameters.metadata["tags"] = ["parameters"]
    nb = nbformat.v4.new_notebook(cells=[parameters, nbformat.v4.new_code_cell(body)])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, path)
    return str(path)


def test_a_failing_job_names_its_log_and_executed_notebook(tmp_path):
    notebook = tiny_notebook(tmp_path / "fails.ipynb", "print('loading the data')\nraise ValueError('bad value')")
    metrics, log = tmp_path / "run" / "metrics.json", tmp_path / "logs" / "job.log"
    with pytest.raises(RuntimeError) as failure:
        pipeline.run_stage(notebook, str(metrics), str(log), {"metrics": str(metrics)}, "abc")
    message = str(failure.value)
    assert "ValueError: bad value" in message and f"log: {log}" in message
    assert f"executed notebook: {tmp_path / 'run' / 'fails.ipynb'}" in message
    assert (tmp_path / "run" / "fails.ipynb").is_file()
    text = log.read_text()
    assert text.startswith("[start ") and "loading the data" in text and "bad value" in text
    assert not (tmp_path / "run" / pipeline.SIGNATURE_FILE).exists()


def test_a_finished_job_records_its_signature(tmp_path):
    notebook = tiny_notebook(tmp_path / "ok.ipynb", "from pathlib import Path\nPath(metrics).write_text('{}')")
    metrics, log = tmp_path / "run" / "metrics.json", tmp_path / "job.log"
    pipeline.run_stage(notebook, str(metrics), str(log), {"metrics": str(metrics)}, "abc")
    assert (tmp_path / "run" / pipeline.SIGNATURE_FILE).read_text() == f"abc\ncommit {pipeline.git_commit()}\n"
    assert pipeline.recorded_signature(tmp_path / "run") == ("abc", pipeline.git_commit())
    start, end = log.read_text().splitlines()[0], log.read_text().splitlines()[-1]
    assert re.fullmatch(r"\[start \d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3} UTC CUDA_VISIBLE_DEVICES=\] .*ok\.ipynb", start)
    assert re.fullmatch(r"\[end [-\d]+ [:\d.]+ UTC CUDA_VISIBLE_DEVICES=\] .*ok\.ipynb \((?:[\d.]+ s|\d+ min \d+ s)\)", end)


def test_the_commit_a_job_ran_at_is_the_checkout_s_head_or_unknown(tmp_path):
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=files.PROJECT_ROOT, capture_output=True, text=True)
    assert pipeline.git_commit() == head.stdout.strip() and re.fullmatch(r"[0-9a-f]{40}", pipeline.git_commit())
    assert pipeline.git_commit(tmp_path) == "unknown"                   # not a git checkout
    (tmp_path / pipeline.SIGNATURE_FILE).write_text("abc\n")           # recorded before commits were
    assert pipeline.recorded_signature(tmp_path) == ("abc", None)
    assert pipeline.recorded_signature(tmp_path / "none") == (None, None)


def test_the_kernel_talks_over_its_own_unix_sockets(tmp_path):
    """IPC transport with a socket prefix unique to each kernel: parallel jobs cannot be handed one TCP port."""
    body = ("import json\nfrom pathlib import Path\nfrom ipykernel.connect import get_connection_info\n"
            "info = json.loads(get_connection_info())\nprint('transport', info['transport'], info['ip'])\n"
            "Path(metrics).write_text('{}')")
    notebook = tiny_notebook(tmp_path / "ipc.ipynb", body)
    prefixes = []
    for i in range(2):
        metrics, log = tmp_path / f"run{i}" / "metrics.json", tmp_path / f"job{i}.log"
        pipeline.run_stage(notebook, str(metrics), str(log), {"metrics": str(metrics)}, "abc")
        prefixes += re.findall(r"transport ipc (\S*lottery-kernel-[0-9a-f]{32})", log.read_text())
    assert len(set(prefixes)) == 2
    assert not [p for p in Path(prefixes[0]).parent.glob(Path(prefixes[0]).name + "-*")]  # removed at the end


@pytest.mark.slow
def test_with_four_fake_gpus_no_two_jobs_share_one(tmp_path):
    """Six jobs at once on LOTTERY_GPUS=0,1,2,3 (no GPU needed): each sees one GPU, never one in use."""
    notebook = tiny_notebook(tmp_path / "gpu.ipynb", "import os, time\nfrom pathlib import Path\n"
                             "print('sees', os.environ['CUDA_VISIBLE_DEVICES'])\ntime.sleep(2)\n"
                             "Path(metrics).write_text('{}')")
    code = ("import sys; from lotterylib.workflow import pipeline; "
            "pipeline.run_stage(sys.argv[1], sys.argv[2], sys.argv[3], {'metrics': sys.argv[2]}, 'x')")
    env = {**os.environ, pipeline.GPU_ENV: "0,1,2,3", "PYTHONPATH": str(files.PROJECT_ROOT)}
    env.pop("CUDA_VISIBLE_DEVICES", None)
    logs = [tmp_path / f"job{i}.log" for i in range(6)]
    jobs = [subprocess.Popen([sys.executable, "-c", code, notebook, str(tmp_path / f"run{i}" / "metrics.json"),
                              str(log)], env=env) for i, log in enumerate(logs)]
    assert all(job.wait(timeout=300) == 0 for job in jobs)

    held = []  # (gpu, start, end) per job, from its log
    for log in logs:
        text = log.read_text()
        (start, gpu), (end, gpu_end) = re.findall(r"\[(?:start|end) (.+ UTC) CUDA_VISIBLE_DEVICES=(\d)\]", text)
        assert gpu == gpu_end and f"sees {gpu}" in text
        held.append((gpu, *(datetime.strptime(t, progress.CLOCK_FORMAT) for t in (start, end))))
    assert {gpu for gpu, _, _ in held} == {"0", "1", "2", "3"}
    for i, (gpu, start, end) in enumerate(held):
        for other, other_start, other_end in held[i + 1:]:
            assert gpu != other or end <= other_start or other_end <= start, f"GPU {gpu} held twice at once"


@pytest.mark.slow
def test_a_smoke_job_s_log_shows_its_progress(tmp_path, glue_dir):
    """Fine-tuning, s-pruning and m-pruning of one smoke job through `run_stage`: each log has human start and
    end times, whole-line bars (no carriage returns) and one line per search step with score and threshold."""
    preset = pipeline.load_preset("smoke", {"outputs_root": str(tmp_path / "out"), "glue_dir": str(glue_dir),
                                            "progress": True})
    logs = {}
    for stage in ("finetune", "s_pruning", "m_pruning"):
        metrics = pipeline.metrics_path(preset, stage, "SST-2", 1)
        logs[stage] = tmp_path / f"{stage}.log"
        pipeline.run_stage(pipeline.STAGES[stage].notebook, metrics, str(logs[stage]),
                           pipeline.stage_params(preset, stage, "SST-2", 1), "x")
    text = {stage: log.read_text() for stage, log in logs.items()}
    clock = r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3} UTC"
    for stage, log in text.items():
        lines = log.splitlines()
        assert re.match(rf"\[start {clock} ", lines[0]) and re.match(rf"\[end {clock} .*\(.+s\)$", lines[-1]), stage
        assert "\r" not in log, stage
    assert re.search(r"^fine-tune: 100%\|#+\| 3/3 ", text["finetune"], re.M)        # 48 examples / 16 per batch
    s_steps = re.findall(r"^\[\d\d:\d\d:\d\d\] s-pruning step \d+ \(\w+\): pruned .+; score [\d.]+ vs threshold "
                         r"[\d.]+: .+$", text["s_pruning"], re.M)
    s_metrics = files.read_json(Path(pipeline.metrics_path(preset, "s_pruning", "SST-2", 1)))
    assert len(s_steps) == s_metrics["steps"] and "s-pruning done" in text["s_pruning"]
    m_steps = re.findall(r"^\[\d\d:\d\d:\d\d\] m-pruning step \d+: pruned \d+ weights, sparsity [\d.]+%; score",
                         text["m_pruning"], re.M)
    assert m_steps and "m-pruning done" in text["m_pruning"]
