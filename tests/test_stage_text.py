"""The stage notebooks' generated paragraphs: numbers from the run's files, no word about another preset."""
import json

import pandas as pd

from lotterylib.analysis.lottery import M_PRUNING, PRUNED, REFINETUNED, S_PRUNING
from lotterylib.stages import runs
from lotterylib.workflow import stage_text


def test_stage_description_reads_the_finetuning_and_names_the_preset(tmp_path):
    ft = tmp_path / "demo" / "SST-2" / "seed_42" / "finetune"
    ft.mkdir(parents=True)
    params = {"learning_rate": 1e-4, "batch_size": 32, "epochs": 3, "model": "minilm-l6"}
    (ft / "params.json").write_text(json.dumps({"params": params, "hash": runs.params_hash(params)}))
    (ft / "metrics.json").write_text(json.dumps({"train_examples": 1500, "dev_examples": 872}))
    text = stage_text.stage_description(tmp_path / "demo", "SST-2", 42,
                                        {"bf16": False, "selection": "dev", "threshold": 0.9})
    assert "`demo`" in text and "SST-2 1500 / 872" in text and "1e-4" in text and "fp32" in text
    assert "smoke" not in text and "Seed 42 (this notebook runs one" in text


def test_finetune_reading_flags_a_seed_at_the_majority_class():
    ok = stage_text.finetune_reading({"dev_score": 0.80, "majority_baseline": 0.51, "train_examples": 1500,
                                      "dev_examples": 872}, "acc")
    assert "0.800" in ok and "clears the majority class by 0.290" in ok
    floor = stage_text.finetune_reading({"dev_score": 0.031, "majority_baseline": 0.0, "train_examples": 10,
                                         "dev_examples": 10}, "mcc")
    assert "degenerate seed" in floor


def test_s_pruning_reading_counts_and_shares():
    text = stage_text.s_pruning_reading({"full_score": 0.8, "good_score": 0.76, "heads_kept": 36, "heads_total": 72,
                                         "mlps_kept": 5, "mlps_total": 6, "steps": 4}, 0.9)
    assert "36 of 72 heads (50%)" in text and "5 of 6 MLPs" in text and "(95% of it)" in text
    nothing = stage_text.s_pruning_reading({"full_score": 0.8, "good_score": 0.8, "heads_kept": 72,
                                            "heads_total": 72, "mlps_kept": 6, "mlps_total": 6, "steps": 0}, 0.9)
    assert "pruned nothing" in nothing


def test_m_pruning_reading():
    text = stage_text.m_pruning_reading({"full_score": 0.8, "good_score": 0.75, "sparsity": 1 - 0.9 ** 5,
                                         "kept_steps": 5}, 0.9)
    assert "41.0%" in text and "(94% of it)" in text


def test_lottery_reading_orders_and_shares_of_the_gap():
    rows = [(m, n, s, v) for m in (S_PRUNING, M_PRUNING) for s, vals in ((PRUNED, (0.8, 0.6, 0.5)), (REFINETUNED, (0.9, 0.7, 0.8)))
            for n, v in zip(("good", "random", "bad"), vals)]
    scores = pd.DataFrame(rows, columns=["method", "subnetwork", "setting", "score"])
    text = stage_text.lottery_reading(scores, full=0.9, majority=0.5)
    assert f"- {S_PRUNING}, {PRUNED}: good / random / bad 0.800 / 0.600 / 0.500 (good > random > bad)" in text
    # re-fine-tuned: (0.9 - 0.5) / 0.4 = 100%, (0.7 - 0.5) / 0.4 = 50%, (0.8 - 0.5) / 0.4 = 75%
    assert "good 100%, random 50%, bad 75%" in text and "(good > random, bad)" in text
