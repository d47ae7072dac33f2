"""`lottery resign`: the bit-for-bit comparison of two output folders and the re-stamping of run folders, on
tiny fake run folders (the real proof runs two smoke grids: `make resign`)."""
import json

import numpy as np
import pandas as pd
import pytest

from lotterylib.core import files
from lotterylib.stages import runs
from lotterylib.workflow import pipeline, resign


def fake_outputs(root, *, loss=0.25, seconds=3.0, mask_bit=1, only=False):
    """A run folder's compared files (metrics.json, a csv, an .npy and an .npz mask) and a log that is not."""
    folder = root / "SST-2" / "seed_1" / "s_pruning"
    folder.mkdir(parents=True)
    (folder / "metrics.json").write_text(json.dumps({"dev_score": 0.8, "steps": [{"loss": loss}], "note": str(root),
                                                     "cnn_train_seconds": seconds, "minutes": seconds / 60}))
    pd.DataFrame({"step": [0, 1], "score": [0.5, loss], "phase": ["a", "b"]}).to_csv(folder / "steps.csv", index=False)
    np.save(folder / "head_mask.npy", np.array([[1, 0], [1, mask_bit]], dtype=np.float32))
    np.savez(folder / "importance.npz", head=np.arange(4.0), mlp=np.array([mask_bit, 1], dtype=np.int64))
    (root / "logs").mkdir()
    (root / "logs" / "job.log").write_text(f"took {seconds} s\n")
    if only:
        (folder / "extra.csv").write_text("x\n1\n")
    return folder


def test_two_runs_differ_where_a_number_or_a_mask_bit_does_and_nowhere_else(tmp_path):
    fake_outputs(tmp_path / "base")
    fake_outputs(tmp_path / "same", seconds=9.0)                        # timings and text differ: still neutral
    assert resign.differences(tmp_path / "base", tmp_path / "same") == []

    fake_outputs(tmp_path / "ulp", loss=float(np.nextafter(0.25, 1)))  # one ulp, in metrics.json and the csv
    assert resign.differences(tmp_path / "base", tmp_path / "ulp") == [
        "SST-2/seed_1/s_pruning/metrics.json: steps[0].loss: 0.25 != 0.25000000000000006",
        "SST-2/seed_1/s_pruning/steps.csv: score[1]: 0.25 != 0.25000000000000006"]
    fake_outputs(tmp_path / "mask", mask_bit=0, only=True)
    found = resign.differences(tmp_path / "base", tmp_path / "mask")
    assert [line.split(": ")[:2] for line in found] == [
        ["SST-2/seed_1/s_pruning/extra.csv", "only in " + str(tmp_path / "mask")],
        ["SST-2/seed_1/s_pruning/head_mask.npy", "array"], ["SST-2/seed_1/s_pruning/importance.npz", "mlp"]]


def test_an_array_of_another_dtype_is_not_the_same():
    assert resign._same(np.zeros(2, np.float32), np.zeros(2, np.float32))
    assert not resign._same(np.zeros(2, np.float32), np.zeros(2, np.float64))
    assert not resign._same(1, 1.0) and resign._same(float("nan"), float("nan"))


def smoke_runs(tmp_path, commit="a" * 40):
    """The smoke grid's run folders, finished, each recording a base signature ("base-<n>") and `commit`."""
    preset = pipeline.load_preset("smoke", {"outputs_root": str(tmp_path / "smoke")})
    base = {}
    for n, job in enumerate(pipeline.grid_jobs(preset)):
        folder = runs.stage_dir(preset["outputs_root"], *job)
        folder.mkdir(parents=True)
        (folder / "metrics.json").write_text("{}")
        base[job] = f"base-{n}"
        pipeline.record_signature(folder, base[job], commit)
    return preset, base


def test_runs_current_at_the_base_are_re_stamped_with_the_current_signature_and_the_proof(tmp_path):
    preset, base = smoke_runs(tmp_path)
    assert resign.signed_at([preset]) == "a" * 40
    jobs = pipeline.grid_jobs(preset)
    assert resign.not_current_at_base(preset, base) == []
    assert resign.not_current_at_base(preset, {**base, jobs[3]: "other"}) == [
        files.display_path(runs.stage_dir(preset["outputs_root"], *jobs[3]))]
    assert not any(pipeline.is_current(preset, *job) for job in jobs)

    assert resign.restamp(preset, "a" * 40, "b" * 40) == len(jobs)
    assert all(pipeline.is_current(preset, *job) for job in jobs)
    assert {pipeline.recorded_signature(runs.stage_dir(preset["outputs_root"], *job))[1] for job in jobs} == {"b" * 40}
    record = files.read_json(tmp_path / "smoke" / resign.RECORD)
    assert record["base"] == "a" * 40 and record["proof"] == "b" * 40 and record["runs"] == len(jobs)
    assert record["date"].endswith("+00:00")


def test_the_base_is_the_one_commit_the_runs_record(tmp_path):
    preset, _ = smoke_runs(tmp_path)
    folder = runs.stage_dir(preset["outputs_root"], *pipeline.grid_jobs(preset)[0])
    pipeline.record_signature(folder, "x", "c" * 40)
    with pytest.raises(resign.ResignError, match="no single commit .*found: a{40}, c{40}.*--base"):
        resign.signed_at([preset])
    (folder / pipeline.SIGNATURE_FILE).write_text("x\n")  # signed before commits were recorded
    with pytest.raises(resign.ResignError, match="found: None, a{40}"):
        resign.signed_at([preset])


def test_a_committed_folder_names_its_preset_and_overrides():
    assert resign.overrides_of("demo") == {"preset": "demo"}
    assert resign.overrides_of("outputs/demo-split") == {"preset": "demo", "selection": "split"}
    with pytest.raises(resign.ResignError, match="no preset writes this folder"):
        resign.overrides_of("nothing-split")


def test_the_signatures_of_a_checkout_are_its_own_code_s():
    preset = pipeline.load_preset("smoke")
    assert resign.signatures_at(files.PROJECT_ROOT, {"preset": "smoke"}) == {
        job: pipeline.job_signature(preset, *job) for job in pipeline.grid_jobs(preset)}
