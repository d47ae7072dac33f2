"""A finished fine-tuning whose checkpoint is missing (checkpoints are not committed) is rebuilt by the stage
that loads it: the same model, checked against the committed dev score, under a lock, the run folder's own
files untouched (`checkpoints.rebuild_checkpoint`); so are a finished m-pruning's weight masks
(`checkpoints.rebuild_weight_masks`). The workflow's version: test_workflow.py."""
import json
import shutil
import threading
import time

import numpy as np
import pytest
import torch

from conftest import tiny_model
from lotterylib import stages
from lotterylib.core import data, files, finetuning, models
from lotterylib.core.training import evaluate
from lotterylib.pruning import magnitude
from lotterylib.pruning.masks import WEIGHT_MASKS_FILE, save_weight_masks
from lotterylib.stages import checkpoints, inputs, runs
from test_checkpoints import tiny_tokenizer

COMMITTED = ("metrics.json", "params.json")  # (signature.txt and the executed notebook: test_workflow.py)


@pytest.fixture
def finished(tmp_path, glue_dir):
    """A tiny fine-tuning run done as notebooks/01_finetune.ipynb does it: its run folder and dev score."""
    model_dir = tmp_path / "tiny-bert"
    tiny_model().save_pretrained(model_dir)
    tiny_tokenizer(model_dir).save_pretrained(model_dir)
    ns = {"task": "RTE", "seed": 3, "model": str(model_dir), "glue_dir": str(glue_dir),
          "outputs_root": str(tmp_path / "out"), "max_train_examples": 16, "max_dev_examples": 16, "max_seq_len": 32,
          "learning_rate": 1e-3, "batch_size": 8, "epochs": 1.0, "warmup_ratio": 0.0, "bf16": False,
          "group_by_length": True, "progress": False, "selection": "dev"}
    job = stages.open("finetune", ns)   # the notebook's cells, in miniature
    run, cfg = job.run, job.train_config()
    tokenizer = models.load_tokenizer(ns["model"])
    td = finetuning.load_task_data("RTE", tokenizer, ns["glue_dir"], 16, 16, 32, dev_half=finetuning.dev_half("dev", "report"))
    net, gates, losses = finetuning.finetune_model(ns["model"], td.task, td.train_enc, cfg, 3, progress=False)
    gates.remove()
    result = evaluate(net, td.task, td.dev_enc, cfg.eval_batch_size, bf16=False, progress=False)
    checkpoints.save_checkpoint(net, tokenizer, run.path("checkpoint"))
    run.finish({"dev_score": result.metrics["score"], "final_train_loss": losses[-1],
                "majority_baseline": data.majority_baseline(td.dev), **job.precision.record()})
    return run.dir, result.metrics["score"], td


def _committed(folder):
    return {name: (folder / name).read_bytes() for name in COMMITTED}


def test_a_missing_checkpoint_is_rebuilt_with_the_same_score_by_the_loader(finished, capsys):
    folder, score, td = finished
    before = _committed(folder)
    original = checkpoints.load_checkpoint(folder / "checkpoint", torch.device("cpu"))[0].state_dict()
    shutil.rmtree(folder / "checkpoint")
    rng = torch.get_rng_state()

    net, tokenizer = checkpoints.load_checkpoint(folder / "checkpoint", torch.device("cpu"))

    assert all(torch.equal(a, b) for a, b in zip(net.state_dict().values(), original.values()))
    assert evaluate(net, td.task, td.dev_enc, progress=False).metrics["score"] == score
    record = json.loads((folder / "checkpoint" / checkpoints.REBUILD_RECORD).read_text())
    assert record["check"] == "identical" and record["rebuilt_dev_score"] == record["committed_dev_score"] == score
    assert record["threads_recorded"] == record["threads_used"] == 1
    assert _committed(folder) == before                        # the run folder's own files are not rewritten
    assert torch.equal(torch.get_rng_state(), rng)             # the stage goes on as if it had been there
    out = capsys.readouterr().out
    assert "is missing (checkpoints are not committed): rebuilding it" in out and "identical" in out


def test_a_rebuild_beyond_the_tolerance_is_an_error_naming_both_numbers(finished, monkeypatch, capsys):
    folder, score, _ = finished
    shutil.rmtree(folder / "checkpoint")
    metrics = json.loads((folder / "metrics.json").read_text())
    (folder / "metrics.json").write_text(json.dumps({**metrics, "dev_score": score + 0.25}))
    with pytest.raises(RuntimeError, match=rf"scores {score!r} on dev, the committed metrics.json "
                                           rf"{score + 0.25!r}.*more than the tolerance 0.005"):
        checkpoints.load_checkpoint(folder / "checkpoint")
    assert not (folder / "checkpoint").exists()                # nothing saved

    (folder / "metrics.json").write_text(json.dumps({**metrics, "dev_score": score + 0.001}))
    checkpoints.load_checkpoint(folder / "checkpoint")
    record = json.loads((folder / "checkpoint" / checkpoints.REBUILD_RECORD).read_text())
    assert record["check"] == "within tolerance 0.005"
    assert "not bit-identical on the recorded thread count" in capsys.readouterr().out


def test_a_second_job_waits_for_the_rebuild_and_reuses_it(finished, monkeypatch, capsys):
    folder, _, _ = finished
    checkpoint = folder / "checkpoint"
    saved = folder.parent / "saved"
    checkpoint.rename(saved)
    monkeypatch.setattr(checkpoints, "_finetune_again", lambda params: pytest.fail("the checkpoint was rebuilt twice"))
    loaded = []
    with files.waiting_lock(folder):                            # the first job, rebuilding
        second = threading.Thread(target=lambda: loaded.append(checkpoints.load_checkpoint(checkpoint)))
        second.start()
        time.sleep(1.0)
        assert second.is_alive() and not loaded                # waits for the lock
        saved.rename(checkpoint)                               # the first job's rebuilt checkpoint
    second.join(60)
    assert loaded
    out = capsys.readouterr().out
    assert f"waiting for {files.display_path(checkpoint)}: pid" in out and "rebuilt by another job meanwhile" in out


def test_a_folder_that_is_no_finished_fine_tuning_is_still_the_missing_stage_error(tmp_path):
    folder = runs.stage_dir(tmp_path, "finetune", "RTE", 1)
    folder.mkdir(parents=True)
    with pytest.raises(FileNotFoundError, match=r"run the finetune stage \(notebooks/01_finetune.ipynb\) for RTE"):
        checkpoints.load_checkpoint(folder / "checkpoint")
    assert not (folder / files.LOCK_FILE).exists()


# --- the weight masks of a finished m-pruning (not committed either) ---------------------------------------

@pytest.fixture
def m_pruned(finished):
    """A tiny m-pruning run done as notebooks/03_magnitude_pruning.ipynb does it, on the fine-tuning above:
    its run folder and masks (three steps kept)."""
    finetune, _, td = finished
    ns = {"task": "RTE", "seed": 3, "model": files.read_json(finetune / "params.json")["params"]["model"],
          "glue_dir": "", "outputs_root": str(finetune.parents[2]), "max_dev_examples": 16, "max_seq_len": 32,
          "bf16": False, "progress": False, "compat": "paper", "threshold": 0.01, "max_steps": 3, "selection": "dev"}
    run = stages.open("m_pruning", ns).run
    net, _ = checkpoints.load_checkpoint(finetune / "checkpoint", torch.device("cpu"))
    scorer = magnitude.make_scorer(net, td.task, td.dev_enc)
    result = magnitude.magnitude_search(net, scorer, scorer().score, threshold=0.01, max_steps=3, progress=False)
    save_weight_masks(run.path(WEIGHT_MASKS_FILE), result.masks)
    head, mlp = magnitude.survival_fractions(result.masks, *models.shape_of(net))
    np.savez(run.path("survival.npz"), head=head, mlp=mlp)
    run.finish({"sparsity": result.sparsity, "kept_steps": result.kept_steps})
    assert result.kept_steps == 3
    return run.dir, result.masks


def _same_masks(a, b):
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("checkpoint_too", [False, True])
def test_missing_weight_masks_are_rebuilt_the_same_by_the_loader(m_pruned, checkpoint_too, capsys):
    folder, original = m_pruned
    before = {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file() and p.name != WEIGHT_MASKS_FILE}
    (folder / WEIGHT_MASKS_FILE).unlink()
    if checkpoint_too:                                         # a clone: neither is committed
        shutil.rmtree(folder.parent / "finetune" / "checkpoint")

    assert _same_masks(checkpoints.load_m_pruning_masks(folder), original)
    assert {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file() and p.name != WEIGHT_MASKS_FILE} == before
    out = capsys.readouterr().out
    assert "is missing (weight masks are not committed): rebuilding it, 3 magnitude step(s)" in out
    assert "surviving fractions identical" in out
    assert ("is missing (checkpoints are not committed)" in out) == checkpoint_too


def test_weight_masks_unlike_the_recorded_run_are_an_error_and_not_saved(m_pruned):
    folder, _ = m_pruned
    (folder / WEIGHT_MASKS_FILE).unlink()
    with np.load(folder / "survival.npz") as data:
        head, mlp = data["head"], data["mlp"]
    np.savez(folder / "survival.npz", head=head, mlp=mlp + 0.01)      # cut from another checkpoint
    with pytest.raises(RuntimeError, match=r"up to 0.0100 away from its survival.npz"):
        checkpoints.load_m_pruning_masks(folder)
    assert not (folder / WEIGHT_MASKS_FILE).exists()

    metrics = files.read_json(folder / "metrics.json")
    (folder / "metrics.json").write_text(json.dumps({**metrics, "kept_steps": 2}))   # another step count
    with pytest.raises(RuntimeError, match=rf"have sparsity 0\.18\d+, its metrics.json {metrics['sparsity']!r}"):
        checkpoints.load_m_pruning_masks(folder)
    assert not (folder / WEIGHT_MASKS_FILE).exists() and not list(folder.glob(".*.tmp"))


def test_missing_masks_of_a_stage_that_has_not_run_name_its_notebook(tmp_path):
    m_folder = runs.stage_dir(tmp_path, "m_pruning", "RTE", 1)
    m_folder.mkdir(parents=True)
    with pytest.raises(FileNotFoundError, match=r"run the m_pruning stage \(notebooks/03_magnitude_pruning.ipynb\) "
                                                r"for RTE, seed 1 first"):
        checkpoints.load_m_pruning_masks(m_folder)
    s_folder = runs.stage_dir(tmp_path, "s_pruning", "RTE", 1)
    note = r"run the s_pruning stage \(notebooks/02_structured_pruning.ipynb\) for RTE, seed 1 first"
    with pytest.raises(FileNotFoundError, match=note):
        inputs.s_pruning_masks(s_folder)
    with pytest.raises(FileNotFoundError, match=note):
        inputs.load_histories(tmp_path, {"RTE": {1: None}})
