import json

import numpy as np
import pytest

from lotterylib import runs


def test_params_hash_is_stable_and_order_free():
    a = runs.params_hash({"lr": 2e-5, "task": "RTE", "seeds": [1, 2]})
    assert a == runs.params_hash({"seeds": [1, 2], "task": "RTE", "lr": 2e-5})
    assert a != runs.params_hash({"lr": 1e-4, "task": "RTE", "seeds": [1, 2]})
    assert len(a) == 12


def test_stage_dir_layout(tmp_path):
    assert runs.stage_dir(tmp_path, "finetune", "RTE", 42) == tmp_path / "RTE" / "seed_42" / "finetune"
    assert runs.stage_dir(tmp_path, "super", "RTE") == tmp_path / "RTE" / "all_seeds" / "super"
    assert runs.stage_dir(tmp_path, "stability") == tmp_path / "all_tasks" / "stability"
    assert runs.stage_dir("outputs/x", "f", "RTE", 1) == runs.PROJECT_ROOT / "outputs/x/RTE/seed_1/f"


def test_run_is_done_only_after_finish_with_the_same_params(tmp_path):
    run = runs.Run(tmp_path / "r", {"a": 1})
    assert not run.is_done()
    assert json.loads(run.path("params.json").read_text()) == {"hash": run.hash, "params": {"a": 1}}
    run.finish({"score": 0.5})
    assert runs.Run(tmp_path / "r", {"a": 1}).is_done()
    assert runs.load_metrics(tmp_path / "r")["score"] == 0.5
    changed = runs.Run(tmp_path / "r", {"a": 2})  # new parameters: the old result no longer counts
    assert not changed.is_done() and not run.path("metrics.json").exists()


def test_atomic_write_leaves_no_partial_file(tmp_path):
    target = tmp_path / "metrics.json"
    runs.write_json_atomic(target, {"x": 1})

    class Boom:
        pass

    with pytest.raises(TypeError):
        runs.write_json_atomic(target, {"x": Boom()})
    assert json.loads(target.read_text()) == {"x": 1}  # the old content survives a failed write
    assert [p.name for p in tmp_path.iterdir()] == ["metrics.json"]


def test_missing_stage_error_says_what_to_run(tmp_path):
    with pytest.raises(FileNotFoundError, match="has not finished"):
        runs.load_metrics(tmp_path)


def test_metrics_are_strict_json_with_nan_as_null(tmp_path):
    runs.write_json_atomic(tmp_path / "m.json", {"kappa": float("nan"), "q": np.float64(np.inf), "p": np.float32(0.5)})
    text = (tmp_path / "m.json").read_text()
    assert json.loads(text, parse_constant=lambda c: pytest.fail(f"non-standard constant {c}")) == \
        {"kappa": None, "q": None, "p": 0.5}
