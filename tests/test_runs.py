import json
import os
import stat

import numpy as np
import pytest
import torch

from lotterylib.core import errors, files
from lotterylib.stages import config, registry, runs


def test_params_hash_is_stable_and_order_free():
    a = runs.params_hash({"lr": 2e-5, "task": "RTE", "seeds": [1, 2]})
    assert a == runs.params_hash({"seeds": [1, 2], "task": "RTE", "lr": 2e-5})
    assert a != runs.params_hash({"lr": 1e-4, "task": "RTE", "seeds": [1, 2]})
    assert len(a) == 12


def test_stage_dir_layout(tmp_path):
    assert runs.stage_dir(tmp_path, "finetune", "RTE", 42) == tmp_path / "RTE" / "seed_42" / "finetune"
    assert runs.stage_dir(tmp_path, "super", "RTE") == tmp_path / "RTE" / "all_seeds" / "super"
    assert runs.stage_dir(tmp_path, "stability") == tmp_path / "all_tasks" / "stability"
    assert runs.stage_dir("outputs/x", "f", "RTE", 1) == files.PROJECT_ROOT / "outputs/x/RTE/seed_1/f"


def test_run_is_done_only_after_finish(tmp_path):
    run = runs.Run(tmp_path / "r", {"a": 1})
    assert not runs.is_done(run.dir)
    assert json.loads(run.path("params.json").read_text()) == {"hash": run.hash, "params": {"a": 1},
                                                               "threads": torch.get_num_threads()}
    run.finish({"score": 0.5})
    assert runs.is_done(tmp_path / "r") and runs.load_metrics(tmp_path / "r") == {"score": 0.5}


def test_a_rerun_removes_the_done_marker_signature_and_partial_files_first(tmp_path):
    """A run by hand into a grid job's folder (a notebook, nbval) removes the job's signature: the workflow no
    longer takes the folder for that job's current result."""
    run = runs.Run(tmp_path / "r", {"a": 1})
    run.finish({"score": 0.5})
    (run.dir / runs.SIGNATURE_FILE).write_text("abc\ncommit 0123\n")  # what the workflow records after its job
    (run.dir / ".checkpoint.1234abcd.tmp").mkdir()          # what a killed save leaves
    (run.dir / ".metrics.json.1234abcd.tmp").write_text("{")
    rerun = runs.Run(tmp_path / "r", {"a": 1})              # the same parameters: still redone from scratch
    assert sorted(p.name for p in rerun.dir.iterdir()) == [".lock", "params.json"] and not runs.is_done(rerun.dir)


def test_the_hash_is_of_typed_normalised_values():
    """A hand run with `-p epochs 1 -p task sst2` is the grid's run with epochs 1.0 and task SST-2."""
    grid = dict(task="SST-2", seed=1, epochs=1.0, learning_rate=1e-4, bf16=False, batch_size=16, other="x")
    hand = dict(task="sst2", seed=1.0, epochs=1, learning_rate="1e-4", bf16="false", batch_size=16.0, other="x")
    assert runs.params_hash(config.validate_params(grid, unknown="ignore")) == \
        runs.params_hash(config.validate_params(hand, unknown="ignore"))


def test_the_run_folder_hash_ignores_spelling(tmp_path):
    """Spelling is normalised once, where a notebook opens its job (`stages.open`)."""
    from lotterylib import stages

    defaults = {p: registry.PARAMS[p].default for p in registry.STAGES["finetune"].params}
    a = stages.open("finetune", {**defaults, "outputs_root": str(tmp_path), "task": "sst-2", "epochs": 1}).run
    b = stages.open("finetune", {**defaults, "outputs_root": str(tmp_path), "task": "SST-2", "epochs": 1.0}).run
    assert a.dir == b.dir == tmp_path / "SST-2" / "seed_1" / "finetune" and a.hash == b.hash


@pytest.mark.parametrize("task, seed", [("FOO", 1), ("SST-2", -1), ("SST-2", 1.5)])
def test_a_bad_task_or_seed_names_itself_and_creates_no_folder(tmp_path, task, seed):
    with pytest.raises(errors.ParameterError, match="task|seed"):
        runs.Run(runs.stage_dir(tmp_path, "finetune", task, seed), {"task": task, "seed": seed})
    assert list(tmp_path.iterdir()) == []


def test_non_finite_metrics_never_mark_a_run_done(tmp_path):
    run = runs.Run(tmp_path / "r", {"a": 1})
    with pytest.raises(ValueError, match="final_train_loss is not finite"):
        run.finish({"dev_score": 0.5, "final_train_loss": float("nan")})
    with pytest.raises(ValueError, match="dev_score is not finite"):
        run.finish({"dev_score": np.float32(np.inf)})
    assert not run.path("metrics.json").exists()
    run.finish({"dev_score": 0.5, "table": [{"kappa": float("nan")}]})  # an undefined statistic in a table: null
    assert runs.load_metrics(run.dir)["table"] == [{"kappa": None}]


def test_atomic_writes_respect_the_umask(tmp_path):
    old = os.umask(0o022)
    try:
        files.write_json_atomic(tmp_path / "a.json", {"x": 1})
        os.umask(0o077)
        files.write_json_atomic(tmp_path / "b.json", {"x": 1})
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "a.json").stat().st_mode) == 0o644
    assert stat.S_IMODE((tmp_path / "b.json").stat().st_mode) == 0o600


def test_atomic_write_leaves_no_partial_file(tmp_path):
    target = tmp_path / "metrics.json"
    files.write_json_atomic(target, {"x": 1})

    class Boom:
        pass

    with pytest.raises(TypeError):
        files.write_json_atomic(target, {"x": Boom()})
    assert json.loads(target.read_text()) == {"x": 1}  # the old content survives a failed write
    assert [p.name for p in tmp_path.iterdir()] == ["metrics.json"]


def test_missing_stage_error_says_what_to_run(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"run the finetune stage \(notebooks/01_finetune.ipynb\) for RTE, "
                                                r"seed 3 first"):
        runs.load_metrics(runs.stage_dir(tmp_path, "finetune", "RTE", 3))


def test_metrics_are_strict_json_with_nan_as_null(tmp_path):
    files.write_json_atomic(tmp_path / "m.json", {"kappa": float("nan"), "q": np.float64(np.inf), "p": np.float32(0.5)})
    text = (tmp_path / "m.json").read_text()
    assert json.loads(text, parse_constant=lambda c: pytest.fail(f"non-standard constant {c}")) == \
        {"kappa": None, "q": None, "p": 0.5}
