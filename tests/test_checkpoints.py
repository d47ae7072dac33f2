"""A run is done only if it is valid and complete: diverged training, partial and corrupt checkpoints,
kill -9 while saving a checkpoint or writing metrics.json, and bit-identical reruns."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from transformers import BertTokenizerFast

from conftest import tiny_config, tiny_encoded, tiny_model
from lotterylib.core import files
from lotterylib.core.tasks import get_task
from lotterylib.core.training import TrainConfig, fine_tune
from lotterylib.stages import checkpoints, runs

TESTS = Path(__file__).resolve().parent


def tiny_tokenizer(folder: Path) -> BertTokenizerFast:
    """A tokenizer whose vocabulary fills the tiny model's 100 embedding rows (`load_checkpoint` checks it)."""
    folder.mkdir(parents=True, exist_ok=True)
    words = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + [f"w{i}" for i in range(tiny_config().vocab_size - 5)]
    return BertTokenizerFast(vocab={word: i for i, word in enumerate(words)})


def test_diverging_fine_tuning_stops_with_the_step_loss_and_learning_rate():
    data = tiny_encoded(16, num_labels=1)
    data.labels[:] = float("inf")  # the loss of the first batch is infinite
    with pytest.raises(FloatingPointError, match=r"the loss is inf at step 1 of 4 \(learning rate 0\.001\)\. "
                                                 r"Fix: lower learning_rate"):
        fine_tune(tiny_model(num_labels=1), get_task("STS-B"), data, TrainConfig(1e-3, 8, 2.0), seed=0, progress=False)


def test_a_checkpoint_round_trips_and_replaces_the_old_one_whole(tmp_path):
    tok = tiny_tokenizer(tmp_path / "tok")
    folder = runs.stage_dir(tmp_path, "finetune", "RTE", 1) / "checkpoint"
    checkpoints.save_checkpoint(tiny_model(seed=0), tok, folder)
    (folder / "stale.txt").write_text("from the old checkpoint")
    new = tiny_model(seed=1)
    checkpoints.save_checkpoint(new, tok, folder)
    assert not (folder / "stale.txt").exists() and not list(folder.parent.glob(".*"))
    loaded, _ = checkpoints.load_checkpoint(folder, torch.device("cpu"))
    assert all(torch.equal(a, b) for a, b in zip(loaded.state_dict().values(), new.state_dict().values()))


def test_an_incomplete_or_corrupt_checkpoint_is_a_clear_error(tmp_path):
    folder = runs.stage_dir(tmp_path, "finetune", "RTE", 1) / "checkpoint"
    checkpoints.save_checkpoint(tiny_model(), tiny_tokenizer(tmp_path / "tok"), folder)
    (folder / "model.safetensors").write_bytes(b"\x00" * 100)  # e.g. a disk filled up while it was written
    with pytest.raises(RuntimeError, match=r"checkpoint in .* does not load .*Fix: rerun the fine-tuning stage"):
        checkpoints.load_checkpoint(folder)
    (folder / "model.safetensors").unlink()                   # config.json without weights
    with pytest.raises(FileNotFoundError, match=r"model.safetensors does not exist: run the finetune stage "
                                                r"\(notebooks/01_finetune.ipynb\) for RTE, seed 1 first"):
        checkpoints.load_checkpoint(folder)


def job(folder: Path, hang: str = "") -> None:
    """One fine-tuning job in miniature: open the run, save a checkpoint, write metrics.json. With `hang`
    ("checkpoint" or "metrics") it stops in the middle of that write, after part of it, to be killed."""
    def wait_for_kill(*args, **kwargs):
        (folder.parent / "hanging").touch()
        time.sleep(300)

    run = runs.Run(folder, {"task": "RTE", "seed": 1})
    tok = tiny_tokenizer(folder.parent / "tok")
    if hang == "checkpoint":
        tok.save_pretrained = wait_for_kill                    # the weights are written, the tokenizer not yet
    checkpoints.save_checkpoint(tiny_model(), tok, run.path("checkpoint"))
    if hang == "metrics":
        def partial_dump(obj, f, **kwargs):
            f.write(json.dumps(obj)[:10])
            f.flush()
            wait_for_kill()
        runs.json.dump = partial_dump
    run.finish({"dev_score": 0.5})


def _kill_mid_write(folder: Path, hang: str) -> None:
    code = (f"import sys; from pathlib import Path; sys.path.insert(0, {str(TESTS)!r}); "
            f"from test_checkpoints import job; job(Path(sys.argv[1]), {hang!r})")
    env = {**os.environ, "PYTHONPATH": f"{files.PROJECT_ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    proc = subprocess.Popen([sys.executable, "-c", code, str(folder)], env=env)
    deadline = time.time() + 120
    while not (folder.parent / "hanging").exists():
        assert proc.poll() is None and time.time() < deadline, "the job ended before reaching the point of the kill"
        time.sleep(0.1)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    (folder.parent / "hanging").unlink()


@pytest.mark.slow
@pytest.mark.parametrize("hang", ["checkpoint", "metrics"])
def test_kill_9_mid_write_leaves_nothing_marked_done_and_the_rerun_redoes_that_job_only(tmp_path, hang):
    folder, other = (runs.stage_dir(tmp_path, "finetune", "RTE", seed) for seed in (1, 2))
    job(other)                                                 # another job of the grid, finished
    other_state = (other / "metrics.json").stat().st_mtime_ns
    job(folder)                                                # this job, finished once; its rerun is killed
    _kill_mid_write(folder, hang)

    assert not (folder / "metrics.json").exists()              # not done: Snakemake and the notebooks redo it
    partial = [p.name for p in folder.iterdir() if p.name.endswith(files.TMP_SUFFIX)]
    assert partial and all(p.startswith("." + ("checkpoint" if hang == "checkpoint" else "metrics.json")) for p in partial)
    checkpoints.load_checkpoint(folder / "checkpoint")          # the last complete checkpoint, never a partial one

    job(folder)                                                # the rerun of this job alone
    assert runs.is_done(folder) and not [p for p in folder.iterdir() if p.name.endswith(files.TMP_SUFFIX)]
    checkpoints.load_checkpoint(folder / "checkpoint")
    assert (other / "metrics.json").stat().st_mtime_ns == other_state   # the other job was not touched


@pytest.mark.slow
def test_two_smoke_fine_tunes_at_one_thread_are_bit_identical(tmp_path, glue_dir):
    """notebooks/01_finetune.ipynb twice with the smoke values, one thread each: the same weights and metrics."""
    from lotterylib.workflow import kernel

    env_threads = os.environ.get("OMP_NUM_THREADS")
    os.environ["OMP_NUM_THREADS"] = "1"   # inherited by the kernels
    try:
        for copy in ("a", "b"):
            kernel.execute(files.PROJECT_ROOT / "notebooks" / "01_finetune.ipynb", tmp_path / f"{copy}.ipynb",
                           {"outputs_root": str(tmp_path / copy), "glue_dir": str(glue_dir), "progress": False},
                           files.PROJECT_ROOT)
    finally:
        os.environ.pop("OMP_NUM_THREADS") if env_threads is None else os.environ.update(OMP_NUM_THREADS=env_threads)
    a, b = (runs.stage_dir(tmp_path / c, "finetune", "SST-2", 1) for c in "ab")
    assert files.read_json(a / "params.json")["threads"] == files.read_json(b / "params.json")["threads"] == 1
    assert (a / "checkpoint" / "model.safetensors").read_bytes() == (b / "checkpoint" / "model.safetensors").read_bytes()
    assert (a / "metrics.json").read_text() == (b / "metrics.json").read_text()
