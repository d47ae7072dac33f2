"""Bad inputs and faults as a new user meets them (issue 11): notebook parameters, presets and Snakemake's
--config, broken GLUE files, incomplete checkpoints, someone else's masks, diverging training.

Each case asserts two things: one clear error naming the parameter (or file), the bad value and the fix,
and no artifact marked done (no run folder for an invalid parameter, no `metrics.json` after a failure).
The notebooks run in this process as papermill runs them (parameters cell, injected values, code cells);
the few tests through papermill's and Snakemake's command lines are slow."""
import itertools
import json
import subprocess
import sys
from pathlib import Path

import matplotlib
import nbformat
import numpy as np
import pytest
import yaml

from conftest import tiny_config, tiny_model
from lotterylib.core import files, training
from lotterylib.core.data import GlueDataError
from lotterylib.core.errors import ParameterError
from lotterylib.core.gates import Gates
from lotterylib.core.tasks import get_task
from lotterylib.pruning.masks import save_head_masks
from lotterylib.stages import checkpoints, runs
from lotterylib.workflow import pipeline

matplotlib.use("Agg")
ROOT = files.PROJECT_ROOT


def run_notebook(stage: str, values: dict, cells: int | None = None) -> dict:
    """A stage's notebook as papermill runs it, in this process (no kernel start): the parameters cell, the
    injected `values`, then the code cells in order (all, or the first `cells`). Returns its globals."""
    import matplotlib.pyplot as plt

    nb = nbformat.read(ROOT / pipeline.STAGES[stage].notebook, 4)
    index = next(i for i, c in enumerate(nb.cells) if "parameters" in c.metadata.get("tags", []))
    namespace: dict = {"display": lambda *args, **kwargs: None}
    exec(nb.cells[index].source, namespace)
    namespace.update(values)
    try:
        for source in [c.source for c in nb.cells[index + 1:] if c.cell_type == "code"][:cells]:
            exec(source, namespace)
    finally:
        plt.close("all")
    return namespace


def nothing_done(root: Path) -> bool:
    """No metrics.json (the done-marker) anywhere under `root`."""
    return not list(root.rglob("metrics.json"))


# --- notebook parameters: checked before anything is written -------------------------------------------

BAD_PARAMETERS = [  # (stage, parameter, value, what the message shows, what it allows)
    ("finetune", "seed", -1, "seed = -1", "an integer >= 0"),
    ("finetune", "seed", 1.5, "seed = 1.5", "an integer >= 0"),
    ("finetune", "epochs", "abc", "epochs = 'abc'", "a number > 0"),
    ("finetune", "batch_size", 0, "batch_size = 0", "an integer >= 1"),
    ("finetune", "max_train_examples", -5, "max_train_examples = -5", "an integer >= 0"),
    ("finetune", "max_seq_len", 0, "max_seq_len = 0", "an integer >= 8 and <= 512"),
    ("finetune", "max_seq_len", 1, "max_seq_len = 1", "an integer >= 8 and <= 512"),
    ("finetune", "task", "FOO", "task = 'FOO': unknown GLUE task", "one of CoLA, SST-2, MRPC, STS-B"),
    ("finetune", "learning_rate", 1e10, "learning_rate = 10000000000.0", "a number > 0 and <= 1"),
    ("finetune", "bf16", "maybe", "bf16 = 'maybe'", "one of auto, true, false"),
    ("s_pruning", "selection", "x", "selection = 'x'", "one of dev, split"),
    ("s_pruning", "threshold", 0, "threshold = 0.0", "a number > 0 and <= 1"),
    ("s_pruning", "prune_mode", "both", "prune_mode = 'both'", "one of joint, heads, mlps"),
    ("m_pruning", "max_steps", -1, "max_steps = -1", "an integer >= 0"),
    ("lottery", "compat", "bogus", "compat = 'bogus'", "one of paper, authors"),
    ("bad_subnetworks", "seeds", [1, -2], "seeds = [1, -2]: its item -2 is not allowed",
     "a non-empty list of integers >= 0"),
    ("stability", "alpha", 2, "alpha = 2.0", "a number > 0 and < 1"),
    ("attention_patterns", "tasks", ["SST-2", "nope"], "tasks = ['SST-2', 'nope']", "a non-empty list of CoLA, SST-2"),
    ("attention_patterns", "cnn_epochs", 0, "cnn_epochs = 0", "an integer >= 1"),
    ("report", "close_share", 0, "close_share = 0.0", "a number > 0 and <= 1"),
]


@pytest.mark.parametrize("stage, key, value, shows, allows", BAD_PARAMETERS,
                         ids=[f"{s}-{k}={v}" for s, k, v, *_ in BAD_PARAMETERS])
def test_a_bad_notebook_parameter_is_named_with_its_fix_and_no_run_folder_is_made(tmp_path, stage, key, value,
                                                                                  shows, allows):
    with pytest.raises(ParameterError) as err:
        run_notebook(stage, {key: value, "outputs_root": str(tmp_path / "outputs")})
    message = str(err.value)
    assert f"Invalid parameter {shows}" in message and f"Allowed: {allows}" in message
    assert f"Fix: set `{key}` to an allowed value (papermill `-p {key} VALUE`" in message
    assert not (tmp_path / "outputs").exists()


def test_a_hand_run_with_the_grids_values_and_another_task_spelling_is_the_grids_run(tmp_path):
    """`-p task sst-2` and `-p epochs 1.0` (the grid passes the preset's `epochs: 1`) open the grid's run folder
    `SST-2/` with the grid's hash, so its finished result is recognised and later stages read it."""
    smoke = pipeline.load_preset("smoke", {"outputs_root": str(tmp_path)})
    grid_values = {**pipeline.stage_params(smoke, "finetune", "SST-2", 1), "epochs": 1}
    grid = run_notebook("finetune", grid_values, cells=1)["run"]
    hand = run_notebook("finetune", {"task": "sst-2", "seed": 1.0, "epochs": 1.0, "bf16": "false",
                                     "outputs_root": str(tmp_path), "progress": True}, cells=1)["run"]
    assert hand.dir == grid.dir == tmp_path / "SST-2" / "seed_1" / "finetune" and hand.hash == grid.hash
    assert [p.name for p in tmp_path.iterdir()] == ["SST-2"]
    params = files.read_json(hand.path("params.json"))["params"]
    assert params["task"] == "SST-2" and params["epochs"] == 1.0 and params["bf16"] is False


# --- data -----------------------------------------------------------------------------------------------

GLUE_FILES = {  # task -> (header, a good row)
    "SST-2": ("sentence\tlabel", "a fine film\t1"),
    "STS-B": ("sentence1\tsentence2\tscore", "a man plays\ta man is playing\t4.5"),
}
BROKEN_GLUE = [  # (task, file, its content, what the error says)
    ("SST-2", "dev.tsv", "{header}\n", "dev.tsv holds no examples (only a header). Fix: re-download it, or point "
                                       "`glue_dir` at a complete copy"),
    ("SST-2", "train.tsv", "{header}\n{row}\na film\t1\textra\n", "train.tsv, line 3: 3 tab-separated fields, "
                                                                  "expected 2. The file is malformed"),
    ("SST-2", "train.tsv", "{header}\n{row}\na film\tmaybe\n", "train.tsv, line 3: unknown SST-2 label 'maybe'"),
    ("STS-B", "train.tsv", "{header}\n{row}\na\tb\tnan\n", "train.tsv, line 3: STS-B score 'nan' is not a finite "
                                                           "number. Fix: re-download the file"),
    ("STS-B", "train.tsv", "{header}\n{row}\na\tb\tfour\n", "train.tsv, line 3: STS-B score 'four' is not a finite "
                                                            "number. Fix: re-download the file"),
]


@pytest.mark.parametrize("task, name, content, says", BROKEN_GLUE,
                         ids=["header_only", "malformed_row", "unknown_label", "nan_score", "word_score"])
def test_a_broken_glue_file_is_named_with_its_line_and_nothing_is_marked_done(tmp_path, task, name, content, says):
    header, row = GLUE_FILES[task]
    folder = tmp_path / "glue" / task
    folder.mkdir(parents=True)
    for split in ("train.tsv", "dev.tsv"):
        (folder / split).write_text(f"{header}\n{row}\n{row}\n")
    (folder / name).write_text(content.format(header=header, row=row))
    with pytest.raises(GlueDataError) as err:
        run_notebook("finetune", {"task": task, "glue_dir": str(tmp_path / "glue"),
                                  "outputs_root": str(tmp_path / "out"), "progress": False})
    assert f"{folder / name}" in str(err.value) and says in str(err.value)
    assert nothing_done(tmp_path / "out")


def test_a_missing_glue_folder_names_glue_dir_and_the_variable(tmp_path):
    with pytest.raises(GlueDataError) as err:
        run_notebook("finetune", {"glue_dir": str(tmp_path / "no_glue"), "outputs_root": str(tmp_path / "out")})
    message = str(err.value)
    assert f"local file {tmp_path / 'no_glue' / 'SST-2' / 'train.tsv'} (missing)" in message
    assert "Fix: point the `glue_dir` parameter or $LOTTERY_GLUE_DIR at a folder with SST-2/train.tsv" in message
    assert nothing_done(tmp_path / "out")


# --- faults while running -------------------------------------------------------------------------------

def test_a_rerun_that_diverges_is_not_done_and_keeps_the_last_whole_checkpoint(tmp_path, glue_dir, monkeypatch):
    """The smoke fine-tune finished once; its rerun's loss turns NaN at step 2 (as a too high learning rate makes
    it). The rerun removed the done-marker first and stops there, naming the step, the loss and the learning
    rate; the old checkpoint is untouched (never half overwritten) and nothing is marked done."""
    values = {"glue_dir": str(glue_dir), "outputs_root": str(tmp_path), "progress": False}
    folder = runs.stage_dir(tmp_path, "finetune", "SST-2", 1)
    run_notebook("finetune", values)
    assert runs.is_done(folder)
    weights = (folder / "checkpoint" / "model.safetensors").read_bytes()
    real_loss, step = training.task_loss, itertools.count(1)
    monkeypatch.setattr(training, "task_loss",
                        lambda *args: real_loss(*args) * (float("nan") if next(step) == 2 else 1))
    with pytest.raises(FloatingPointError, match=r"Fine-tuning diverged: the loss is nan at step 2 of 3 \(learning "
                                                 r"rate [0-9.e-]+\)\. Fix: lower learning_rate; the run is not "
                                                 r"marked done"):
        run_notebook("finetune", values)
    assert nothing_done(tmp_path) and (folder / "checkpoint" / "model.safetensors").read_bytes() == weights


def test_a_checkpoint_without_weights_says_to_rerun_fine_tuning_and_pruning_is_not_done(tmp_path):
    """Disk full while saving left `checkpoint/config.json` without weights and no metrics.json: s-pruning's
    opening (`stages.open`) says what to rerun."""
    checkpoint = runs.stage_dir(tmp_path, "finetune", "SST-2", 1) / "checkpoint"
    tiny_config().save_pretrained(checkpoint)
    with pytest.raises(FileNotFoundError) as err:
        run_notebook("s_pruning", {"outputs_root": str(tmp_path)})
    assert str(err.value).startswith(f"{checkpoint.parent / 'metrics.json'} does not exist: run the finetune stage "
                                     "(notebooks/01_finetune.ipynb) for SST-2, seed 1 first")
    assert nothing_done(tmp_path)


# --- stability on someone else's masks ------------------------------------------------------------------

def _masks(root: Path, shapes: dict[tuple[str, int], int]) -> Path:
    """Masks in the authors' layout: {(task, seed): layers}, 3 heads each."""
    rng = np.random.default_rng(0)
    for (task, seed), layers in shapes.items():
        save_head_masks(root / task / f"seed_{seed}", rng.integers(0, 2, (layers, 3)), rng.integers(0, 2, layers))
    return root


STABILITY_FAULTS = [  # (masks: {(task, seed): layers}, out_dir given, error, what it says)
    ({("RTE", 1): 2, ("RTE", 2): 4}, True, ValueError,
     "heads (2, 3) and MLPs (2,): RTE seed 1; heads (4, 3) and MLPs (4,): RTE seed 2). Stability compares masks of "
     "one model: keep only masks of the same model"),
    ({("RTE", 1): 2, ("RTE", 2): 2, ("MRPC", 1): 2}, True, FileNotFoundError,
     "MRPC has no masks for seeds [2]: it would be analysed with seeds [1] only, which changes its kappa and Q. "
     "Fix: add the missing masks, or set allow_missing_seeds: true"),
    ({("RTE", 1): 2, ("RTE", 2): 2}, False, ParameterError,
     "needs an out_dir: the analysis of other masks is written only there, never into a preset's run folders. "
     "Fix: set out_dir"),
]


@pytest.mark.parametrize("shapes, with_out_dir, error, says", STABILITY_FAULTS,
                         ids=["shapes", "missing_seed", "no_out_dir"])
def test_bad_masks_for_stability_name_tasks_and_seeds_and_write_nothing_done(tmp_path, shapes, with_out_dir, error,
                                                                             says):
    masks = _masks(tmp_path / "masks", shapes)
    with pytest.raises(error) as err:
        run_notebook("stability", {"masks_dir": str(masks), "out_dir": str(tmp_path / "mine") if with_out_dir else "",
                                   "outputs_root": str(tmp_path / "outputs")})
    assert says in str(err.value)
    assert not (tmp_path / "outputs").exists() and nothing_done(tmp_path)


def test_stability_with_allow_missing_seeds_warns_which_seeds_and_writes_only_to_out_dir(tmp_path):
    masks = _masks(tmp_path / "masks", {("RTE", 1): 2, ("RTE", 2): 2, ("RTE", 3): 2, ("MRPC", 1): 2, ("MRPC", 3): 2})
    with pytest.warns(UserWarning, match=r"MRPC has no masks for seeds \[2\]: it would be analysed with seeds \[1, 3\] "
                                         r"only \(allow_missing_seeds is true\)"):
        run_notebook("stability", {"masks_dir": str(masks), "out_dir": str(tmp_path / "mine"),
                                   "outputs_root": str(tmp_path / "outputs"), "allow_missing_seeds": True,
                                   "n_draws": 100})
    assert files.read_json(tmp_path / "mine" / "metrics.json")["seeds"] == {"MRPC": [1, 3], "RTE": [1, 2, 3]}
    assert not (tmp_path / "outputs").exists()


@pytest.mark.parametrize("seeds, message", [
    ([1, 1], r"seeds = \[1, 1\]: 1 is repeated; each item counts once"),     # the parameter check refuses it
    ([1], r"seeds = \[1\]: stability needs at least 2 distinct seeds, found \[1\]\. Fix: give two or more different seeds")])
def test_stability_with_fewer_than_two_distinct_seeds_is_an_error_before_anything_is_written(tmp_path, seeds, message):
    """It used to mark the stage done with every statistic null."""
    root = tmp_path / "outputs"
    for seed in seeds:
        save_head_masks(root / "RTE" / f"seed_{seed}" / "s_pruning", np.ones((2, 3)), np.ones(2))
    with pytest.raises(ParameterError, match=message):
        run_notebook("stability", {"tasks": ["RTE"], "seeds": seeds, "outputs_root": str(root)})
    assert not (root / "all_tasks").exists() and nothing_done(tmp_path)


def test_stability_of_other_masks_with_a_task_of_one_seed_is_an_error_before_anything_is_written(tmp_path):
    masks = _masks(tmp_path / "masks", {("RTE", 1): 2, ("RTE", 2): 2, ("MRPC", 2): 2})
    with pytest.warns(UserWarning, match=r"MRPC has no masks for seeds \[1\]"), \
            pytest.raises(ValueError, match=r"at least 2 distinct seeds per task: MRPC has masks for seeds \[2\]"):
        run_notebook("stability", {"masks_dir": str(masks), "out_dir": str(tmp_path / "mine"),
                                   "outputs_root": str(tmp_path / "outputs"), "allow_missing_seeds": True})
    assert not (tmp_path / "mine").exists() and nothing_done(tmp_path)


# --- presets and Snakemake's --config -------------------------------------------------------------------

def test_a_per_task_value_missing_a_task_names_the_parameter_and_the_task(tmp_path):
    preset = {**yaml.safe_load((ROOT / "params" / "smoke.yaml").read_text()), "max_train_examples": {"SST-2": 10},
              "outputs_root": str(tmp_path / "outputs")}
    (tmp_path / "mine.yaml").write_text(yaml.safe_dump(preset))
    with pytest.raises(ParameterError, match=r"mine.yaml: `max_train_examples` is per task but has no value for "
                                             r"STS-B\. Fix: add them to its mapping"):
        pipeline.load_preset(str(tmp_path / "mine.yaml"))
    assert not (tmp_path / "outputs").exists()


def test_an_unknown_stage_names_the_stage_and_every_allowed_one(tmp_path):
    with pytest.raises(ParameterError, match=r"params/smoke.yaml: Invalid parameter stages = \['finetune', 'pruning'\]: "
                                             r"its item 'pruning' is not allowed\. Allowed: a non-empty list of "
                                             r"finetune, s_pruning, m_pruning, .*Fix: set `stages`"):
        pipeline.load_preset(overrides={"preset": "smoke", "stages": "[finetune, pruning]",
                                        "outputs_root": str(tmp_path / "outputs")})
    assert not (tmp_path / "outputs").exists()


@pytest.mark.slow
def test_snakemake_with_a_misspelt_parameter_stops_before_any_job(tmp_path):
    """A real (not dry) run: the typo stops it before any job, so nothing is written."""
    out = subprocess.run([sys.executable, "-m", "snakemake", "-s", "workflow/Snakefile", "--cores", "1", "--config",
                          "preset=smoke", f"outputs_root={tmp_path / 'outputs'}", "learning_rat=2e-5"],
                         cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert out.returncode != 0
    assert "Unknown parameter `learning_rat` (did you mean `learning_rate`?)" in out.stdout + out.stderr
    assert not (tmp_path / "outputs").exists()


@pytest.mark.slow
def test_papermill_with_a_bad_seed_fails_naming_it_and_leaves_no_run_folder(tmp_path):
    """The command line a user types: papermill parses `-1` to an int, the notebook rejects it before writing."""
    out = subprocess.run([sys.executable, "-m", "papermill", "notebooks/01_finetune.ipynb", str(tmp_path / "out.ipynb"),
                          "-k", "python3", "--cwd", str(ROOT), "-p", "seed", "-1",
                          "-p", "outputs_root", str(tmp_path / "outputs")],
                         cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert out.returncode != 0
    assert "ParameterError: Invalid parameter seed = -1" in out.stderr and "Fix: set `seed`" in out.stderr
    assert not (tmp_path / "outputs").exists()


@pytest.mark.slow
def test_papermill_with_a_misspelt_parameter_fails_naming_the_near_miss(tmp_path):
    """papermill injects `-p learning_rat 5e-5` and only warns; the notebook's first check refuses it, in a real
    kernel (whose own globals, In, Out, get_ipython..., are not parameters)."""
    out = subprocess.run([sys.executable, "-m", "papermill", "notebooks/01_finetune.ipynb", str(tmp_path / "out.ipynb"),
                          "-k", "python3", "--cwd", str(ROOT), "-p", "learning_rat", "5e-5",
                          "-p", "outputs_root", str(tmp_path / "outputs")],
                         cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert out.returncode != 0
    assert "ParameterError: Unknown parameter `learning_rat` (did you mean `learning_rate`?)" in out.stderr
    assert not (tmp_path / "outputs").exists()


# --- library calls with masks or task names that do not fit -----------------------------------------------

def test_gates_of_the_wrong_shape_name_the_expected_one_and_leave_the_model_unhooked():
    model = tiny_model()
    with pytest.raises(ValueError, match=r"head mask has shape \(12, 12\), but the model has 3 layers x 4 heads: "
                                         r"pass a \(3, 4\) array"):
        Gates(model, head_mask=np.ones((12, 12)))
    assert not any(m._forward_hooks or m._forward_pre_hooks for m in model.modules())


def test_save_masks_of_the_wrong_shape_names_the_expected_one_and_writes_nothing(tmp_path):
    with pytest.raises(ValueError, match=r"save_head_masks: MLP mask has shape \(4,\); expected \(3,\) to match "
                                         r"the head mask's 3 layers"):
        save_head_masks(tmp_path / "masks", np.ones((3, 4)), np.ones(4))
    assert not (tmp_path / "masks").exists()


def test_an_unknown_task_names_every_known_one(tmp_path):
    with pytest.raises(ValueError, match=r"Unknown GLUE task 'FOO'\. Choose one of: CoLA, SST-2, MRPC, STS-B, QQP, "
                                         r"MNLI, QNLI, RTE, WNLI"):
        get_task("FOO")
    with pytest.raises(ParameterError, match="task = 'FOO': unknown GLUE task"):
        runs.Run(runs.stage_dir(tmp_path, "finetune", "FOO", 1), {"task": "FOO"})
    assert not list(tmp_path.iterdir())


# --- issue 19: no wrong result marked done; errors that name the file; locked run folders -----------------

def _checkpoint_with_tokenizer(folder: Path) -> Path:
    """A fine-tuned checkpoint (tiny model) saved with MiniLM's tokenizer, whose vocabulary fills its embeddings."""
    from transformers import BertForSequenceClassification

    from lotterylib.core import models

    tokenizer = models.load_tokenizer("minilm-l6")
    config = tiny_config()
    config.vocab_size = len(tokenizer)
    return checkpoints.save_checkpoint(BertForSequenceClassification(config), tokenizer, folder)


def test_a_checkpoint_without_its_tokenizer_files_is_refused_naming_the_folder(tmp_path):
    """Without tokenizer.json transformers builds a tokenizer of the 5 special tokens (every word [UNK]):
    loading checks its vocabulary against the model's embeddings instead of pruning on [UNK]s."""

    checkpoint = _checkpoint_with_tokenizer(runs.stage_dir(tmp_path, "finetune", "SST-2", 1) / "checkpoint")
    checkpoints.load_checkpoint(checkpoint)  # whole: it loads
    for name in checkpoint.glob("*"):
        if name.name not in ("config.json", "model.safetensors"):
            name.unlink()
    with pytest.raises(RuntimeError, match=r"The tokenizer in .*checkpoint has 5 tokens, but the model's embeddings "
                                           r"have 30522 rows: its tokenizer files .* are missing"):
        checkpoints.load_checkpoint(checkpoint)


def test_an_unknown_injected_parameter_is_an_error_with_the_near_miss_and_no_run_folder(tmp_path):
    """`papermill -p learning_rat 5e-5`: papermill only warns and injects the global `learning_rat`."""
    with pytest.raises(ParameterError, match=r"Unknown parameter `learning_rat` \(did you mean `learning_rate`\?\)"):
        run_notebook("finetune", {"learning_rat": 5e-5, "outputs_root": str(tmp_path / "outputs")})
    assert not (tmp_path / "outputs").exists()


@pytest.mark.parametrize("key, value, repeated", [("seeds", "[1, 1]", "1 is repeated"),
                                                  ("tasks", "[SST-2, sst-2]", "'SST-2' is repeated")])
def test_a_repeated_seed_or_task_in_a_preset_is_refused_naming_it(tmp_path, key, value, repeated):
    with pytest.raises(ParameterError, match=f"Invalid parameter {key} = .*: {repeated}; each item counts once"):
        pipeline.load_preset(overrides={"preset": "smoke", key: value, "outputs_root": str(tmp_path / "outputs")})
    assert not (tmp_path / "outputs").exists()


def _glue(root: Path, task: str, dev_rows: int) -> Path:
    header, row = GLUE_FILES[task]
    folder = root / task
    folder.mkdir(parents=True)
    (folder / "train.tsv").write_text(f"{header}\n{row}\n{row}\n")
    (folder / "dev.tsv").write_text(f"{header}\n" + "".join(f"{row}\n" for _ in range(dev_rows)))
    return root


@pytest.mark.parametrize("task, dev_rows, says", [
    ("STS-B", 2, "STS-B's 2 dev examples, and the selection half has 1 and the report half has 1; a pearson score "
                 "needs at least 3"),
    ("SST-2", 1, "SST-2's 1 dev examples, and the selection half has 0; a acc score needs at least 1"),
], ids=["stsb_two_examples", "one_example"])
def test_selection_split_on_too_few_dev_examples_names_the_half_and_writes_nothing(tmp_path, task, dev_rows, says):
    glue = _glue(tmp_path / "glue", task, dev_rows)
    with pytest.raises(ValueError) as err:
        run_notebook("finetune", {"task": task, "glue_dir": str(glue), "selection": "split", "max_dev_examples": 0,
                                  "outputs_root": str(tmp_path / "out"), "progress": False})
    assert says in str(err.value) and "Fix: raise max_dev_examples" in str(err.value)
    assert not (tmp_path / "out").exists()  # the run folder is made only once the inputs have loaded


def test_a_correlation_on_two_examples_is_not_a_score():
    from lotterylib.core.metrics import compute_metrics

    with pytest.raises(ValueError, match=r"A STS-B pearson score on 2 example\(s\) is not a measurement"):
        compute_metrics("STS-B", np.array([1.0, 2.0]), np.array([2.0, 1.0]))


def test_a_hand_edited_params_json_is_not_done_and_is_named(tmp_path):
    from lotterylib.workflow.report.folders import run_settings

    preset = pipeline.load_preset("smoke", {"outputs_root": str(tmp_path), "stages": "[finetune]"})
    folder = runs.stage_dir(tmp_path, "finetune", "SST-2", 1)
    run = runs.Run(folder, {"task": "SST-2", "seed": 1, "epochs": 1.0})
    run.finish({"dev_score": 0.5})
    pipeline.record_signature(folder, pipeline.job_signature(preset, "finetune", "SST-2", 1))
    assert runs.is_done(folder) and pipeline.is_current(preset, "finetune", "SST-2", 1)
    stored = files.read_json(folder / "params.json")
    stored["params"]["epochs"] = 3.0
    (folder / "params.json").write_text(json.dumps(stored))
    with pytest.warns(UserWarning, match=r"params.json was changed after its run"):
        assert not runs.is_done(folder)
    with pytest.warns(UserWarning, match="params.json was changed after its run"):
        assert not pipeline.is_current(preset, "finetune", "SST-2", 1)  # Snakemake reruns it
    with pytest.raises(ValueError, match=r"seed_1/finetune/params.json was changed after its run: its parameters "
                                         r"give hash \w+, not the stored \w+"):
        run_settings(tmp_path, "finetune")


def test_a_malformed_preset_names_its_file_and_line(tmp_path):
    (tmp_path / "mine.yaml").write_text("name: mine\ntasks: [SST-2\nseeds: [1]\n")
    with pytest.raises(ParameterError, match=r"mine.yaml, line 3, column 6: not valid YAML \(expected ',' or ']'"):
        pipeline.load_preset(str(tmp_path / "mine.yaml"))


def test_a_truncated_mask_names_its_file(tmp_path):
    save_head_masks(tmp_path, np.ones((3, 4)), np.ones(3))
    (tmp_path / "head_mask.npy").write_bytes((tmp_path / "head_mask.npy").read_bytes()[:100])
    from lotterylib.pruning.masks import load_head_masks

    with pytest.raises(ValueError, match=f"{tmp_path / 'head_mask.npy'} is not a readable .npy file .*truncated"):
        load_head_masks(tmp_path)


def test_disk_full_while_saving_a_checkpoint_names_the_folder_and_leaves_nothing(tmp_path, monkeypatch):
    import errno

    from test_checkpoints import tiny_tokenizer

    model = tiny_model()

    def full(folder, **kwargs):
        Path(folder).mkdir(parents=True)
        (Path(folder) / "model.safetensors").write_bytes(b"partial")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(model, "save_pretrained", full)
    target = tmp_path / "run" / "checkpoint"
    with pytest.raises(OSError, match=r"Saving the fine-tuned checkpoint \(model weights and tokenizer, about 0 MB\) "
                                      f"into {target} failed: No space left on device. Nothing is marked done"):
        checkpoints.save_checkpoint(model, tiny_tokenizer(tmp_path / "tok"), target)
    assert not (tmp_path / "run").exists() or not list((tmp_path / "run").iterdir())


def test_a_failing_input_leaves_no_run_folder_of_the_stage(tmp_path):
    """s-pruning without its checkpoint: the error, and no s_pruning folder with a params.json behind."""
    with pytest.raises(FileNotFoundError):
        run_notebook("s_pruning", {"outputs_root": str(tmp_path)})
    assert not runs.stage_dir(tmp_path, "s_pruning", "SST-2", 1).exists()


def test_checkpoint_files_follow_the_umask(tmp_path):
    """safetensors writes model.safetensors with mode 0600; the group of a shared file system must read it."""
    import os

    from test_checkpoints import tiny_tokenizer

    old = os.umask(0o027)
    try:
        folder = checkpoints.save_checkpoint(tiny_model(), tiny_tokenizer(tmp_path / "tok"), tmp_path / "checkpoint")
    finally:
        os.umask(old)
    modes = {p.name: p.stat().st_mode & 0o777 for p in folder.iterdir()}
    assert modes["model.safetensors"] == 0o640 and set(modes.values()) == {0o640}


def test_a_second_writer_of_a_run_folder_is_refused_naming_the_holder(tmp_path):
    """A job (another process) holds the folder's lock while it writes; a second opening fails naming its pid;
    once the holder dies (however: here SIGKILL) the OS releases the lock and the rerun proceeds."""
    folder = tmp_path / "RTE" / "seed_1" / "finetune"
    code = ("import sys, time; from lotterylib.stages import runs; run = runs.Run(sys.argv[1], {'task': 'RTE'}); "
            "run.dir; print('ready', flush=True); time.sleep(600)")
    holder = subprocess.Popen([sys.executable, "-c", code, str(folder)], stdout=subprocess.PIPE, text=True,
                              env={**__import__("os").environ, "PYTHONPATH": str(ROOT)})
    try:
        assert holder.stdout.readline().strip() == "ready"
        with pytest.raises(files.RunLockedError, match=f"finetune is being written by pid {holder.pid} on .*Fix: wait"):
            runs.Run(folder, {"task": "RTE"}).dir
    finally:
        holder.kill()
        holder.wait(timeout=60)
    run = runs.Run(folder, {"task": "RTE"})
    run.finish({"dev_score": 0.5})
    assert runs.is_done(folder)
