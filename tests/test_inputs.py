"""`stages.inputs`: the lottery stage's inputs from the stages before it, loaded in one call."""
import json

import numpy as np
import pytest
import torch

from conftest import GLUE_DIR, tiny_model
from lotterylib.core import finetuning
from lotterylib.pruning import magnitude
from lotterylib.pruning.masks import save_head_masks, save_weight_masks
from lotterylib.stages import checkpoints, inputs, runs
from test_checkpoints import tiny_tokenizer


def write_metrics(folder, **metrics):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "metrics.json").write_text(json.dumps(metrics))


@pytest.fixture
def outputs(tmp_path):
    """A tiny outputs tree for RTE: seed 1 with all three upstream stages, seed 2 with its s-masks only."""
    stage = lambda name, seed=1: runs.stage_dir(tmp_path, name, "RTE", seed)  # noqa: E731
    checkpoints.save_checkpoint(tiny_model(), tiny_tokenizer(tmp_path / "tok"), stage("finetune") / "checkpoint")
    write_metrics(stage("finetune"), dev_score=0.6, majority_baseline=0.5, selection="dev")
    head, mlp = np.ones((3, 4)), np.array([1.0, 0.0, 1.0])
    head[1, 2] = 0
    for seed in (1, 2):
        save_head_masks(stage("s_pruning", seed), head * (seed == 1), mlp)
    write_metrics(stage("s_pruning"), good_score=0.55, selection="dev")
    weights = magnitude.full_masks(tiny_model())
    save_weight_masks(stage("m_pruning") / "weight_masks.npz", weights)
    write_metrics(stage("m_pruning"), good_score=0.52, selection="dev")
    return tmp_path, head, mlp, weights


def test_lottery_inputs_load_what_the_notebook_loaded(outputs):
    if not GLUE_DIR.is_dir():
        pytest.skip(f"shared GLUE copy not found at {GLUE_DIR}")
    root, head, mlp, weights = outputs
    loaded = inputs.lottery_inputs(root, "rte", 1, str(GLUE_DIR), 8, 10, 32, "dev", extras=True)
    assert loaded.finetune == loaded.metrics["finetune"] == {"dev_score": 0.6, "majority_baseline": 0.5,
                                                             "selection": "dev"}
    assert loaded.metrics["s_pruning"]["good_score"] == 0.55 and loaded.metrics["m_pruning"]["good_score"] == 0.52
    assert np.array_equal(loaded.head_mask, head) and np.array_equal(loaded.mlp_mask, mlp)
    assert list(loaded.weight_masks) == list(weights)
    assert all(torch.equal(loaded.weight_masks[n], w) for n, w in weights.items())
    assert sorted(loaded.all_seeds) == [1, 2] and not loaded.all_seeds[2][0].any()
    td = finetuning.load_task_data("RTE", loaded.tokenizer, str(GLUE_DIR), 8, 10, 32)
    assert loaded.data.dev_enc.input_ids == td.dev_enc.input_ids and len(loaded.data.train) == 8
    assert isinstance(loaded.net, torch.nn.Module) and not loaded.net.training
    alone = inputs.lottery_inputs(root, "RTE", 1, str(GLUE_DIR), 8, 10, 32, "dev", extras=False)
    assert list(alone.all_seeds) == [1] and np.array_equal(alone.all_seeds[1][0], head)


def test_lottery_inputs_check_the_upstream_selection_and_stages(outputs):
    root = outputs[0]
    with pytest.raises(ValueError, match="finetune ran with selection='dev'"):
        inputs.lottery_inputs(root, "RTE", 1, str(GLUE_DIR), 8, 10, 32, "split")
    with pytest.raises(FileNotFoundError, match="finetune"):
        inputs.lottery_inputs(root, "RTE", 2, str(GLUE_DIR), 8, 10, 32, "dev")


def test_task_s_masks(tmp_path):
    head, mlp = np.ones((2, 3)), np.ones(2)
    for seed in (1, 7):
        save_head_masks(runs.stage_dir(tmp_path, "s_pruning", "RTE", seed), head * (seed == 1), mlp)
    masks = inputs.task_s_masks(tmp_path, "rte")
    assert sorted(masks) == [1, 7] and np.array_equal(masks[1][0], head) and not masks[7][0].any()
    with pytest.raises(FileNotFoundError, match="s_pruning"):
        inputs.task_s_masks(tmp_path, "SST-2")
