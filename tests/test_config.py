"""The parameter schema and its validation: one clear error before anything is written, and equal settings
normalised to equal values, for the notebooks, the presets and Snakemake's --config alike."""
import subprocess
import sys

import pytest
import yaml

from lotterylib.core import files, rules, tasks
from lotterylib.core.errors import ParameterError
from lotterylib.stages import config
from lotterylib.workflow import pipeline

ROOT = files.PROJECT_ROOT
PRESETS = sorted(p.stem for p in (ROOT / "params").glob("*.yaml"))


def test_the_schema_matches_the_registries():
    defs = config.schema()["$defs"]
    assert defs["task"]["enum"] == list(tasks.TASKS)
    assert config.schema()["properties"]["stages"]["items"]["enum"] == list(pipeline.STAGES)
    assert config.schema()["properties"]["compat"]["enum"] == list(rules.SETTINGS) == ["paper", "authors"]


@pytest.mark.parametrize("name", PRESETS)
def test_every_preset_validates_also_with_snakemake(name, tmp_path):
    """The generated schema is a JSON schema that Snakemake's validator takes too, and it agrees."""
    from snakemake.utils import validate

    preset = pipeline.load_preset(name)
    schema = tmp_path / "schema.yaml"
    schema.write_text(yaml.safe_dump(config.schema()))
    validate(dict(preset), str(schema), set_default=False)
    assert preset["name"] == name


@pytest.mark.parametrize("key, value, says", [
    ("seed", -1, "an integer >= 0"),
    ("seed", 1.5, "not of type 'integer'"),
    ("seed", True, "not of type 'integer'"),
    ("epochs", "abc", "not of type 'number'"),
    ("epochs", float("nan"), "not a finite number"),
    ("batch_size", 0, "an integer >= 1"),
    ("max_train_examples", -5, "an integer >= 0"),
    ("max_seq_len", 0, "an integer >= 8 and <= 512"),
    ("max_seq_len", 1, "an integer >= 8 and <= 512"),
    ("learning_rate", 1e10, "<= 1"),
    ("task", "FOO", "one of CoLA, SST-2"),
    ("tasks", ["SST-2", "RTX"], "its item 'RTX' is not allowed"),
    ("seeds", "[1, -2]", "its item -2 is not allowed"),
    ("compat", "author", "one of paper, authors"),
    ("bf16", "maybe", "one of auto, true, false"),
    ("prune_mode", "all", "one of joint, heads, mlps"),
    ("threshold", 1.5, "<= 1"),
    ("alpha", 0, "> 0"),
])
def test_a_bad_value_names_the_parameter_the_value_what_is_allowed_and_the_fix(key, value, says):
    with pytest.raises(ParameterError) as err:
        config.validate_params({key: value})
    message = str(err.value)
    assert message.startswith(f"Invalid parameter {key} = ") and says in message
    assert f"Fix: set `{key}` to an allowed value (papermill `-p {key} VALUE`" in message


def test_values_are_normalised_to_their_declared_type():
    assert config.validate_params({"task": "sst2", "tasks": "[sts-b, cola]", "seed": 3.0, "seeds": "[1, 2]",
                                   "epochs": 1, "learning_rate": "2e-5", "bf16": "false", "extras": "True",
                                   "progress": "no", "compat": "authors"}) == {
        "task": "SST-2", "tasks": ["STS-B", "CoLA"], "seed": 3, "seeds": [1, 2], "epochs": 1.0,
        "learning_rate": 2e-5, "bf16": False, "extras": True, "progress": False, "compat": "authors"}
    assert config.validate_params({"bf16": "auto"})["bf16"] == "auto"
    assert type(config.validate_params({"epochs": 1})["epochs"]) is float
    assert rules.Rules.from_setting("paper") == rules.Rules()
    with pytest.raises(ParameterError, match="compat = 'Paper'"):
        rules.Rules.from_setting("Paper")


def test_unknown_keys_name_the_key_a_close_match_and_every_allowed_key():
    with pytest.raises(ParameterError, match=r"Unknown parameter `learning_rat` \(did you mean `learning_rate`\?\)\. "
                                             r"Allowed parameters: allow_missing_seeds, alpha, .*, threshold, warmup_ratio\."):
        config.validate_params({"learning_rat": 2e-5})
    assert config.validate_params({"lr": 1, "seed": 2.0}, unknown="ignore") == {"lr": 1, "seed": 2}


def test_per_task_values_only_where_the_schema_allows_them():
    assert config.validate_params({"max_train_examples": {"sst2": 2000.0, "MRPC": 3000}}, per_task=True) == \
        {"max_train_examples": {"SST-2": 2000, "MRPC": 3000}}
    with pytest.raises(ParameterError, match="one value is needed here"):  # a notebook takes one value
        config.validate_params({"max_train_examples": {"SST-2": 2000}})
    with pytest.raises(ParameterError, match="cannot vary by task"):
        config.validate_params({"compat": {"SST-2": "paper"}}, per_task=True)
    with pytest.raises(ParameterError, match=r"max_train_examples = -1"):
        config.validate_params({"max_train_examples": {"SST-2": -1}}, per_task=True)


def test_presets_from_the_command_line_are_checked_and_coerced(tmp_path):
    assert pipeline.load_preset(overrides={"preset": "smoke", "bf16": "false"})["bf16"] is False  # --config bf16=false
    assert pipeline.load_preset(overrides={"preset": "smoke", "epochs": 2})["epochs"] == 2.0
    with pytest.raises(ParameterError, match=r"params/smoke.yaml: Unknown parameter `learning_rat`"):
        pipeline.load_preset(overrides={"preset": "smoke", "learning_rat": 2e-5})
    with pytest.raises(ParameterError, match=r"`seed` is set for each job by the grid\. Fix: use `seeds`"):
        pipeline.load_preset("smoke", {"seed": 3})
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({"tasks": ["RTE"], "stages": ["finetune"]}))
    with pytest.raises(ParameterError, match="`seeds` is missing"):
        pipeline.load_preset(str(bad))


@pytest.mark.parametrize("name", PRESETS)
def test_a_configfile_is_the_same_as_its_preset(name):
    """`--configfile params/X.yaml` (Snakemake puts the file's values in `config`) = `--config preset=X`."""
    as_configfile = pipeline.load_preset(overrides=yaml.safe_load((ROOT / "params" / f"{name}.yaml").read_text()))
    assert as_configfile == pipeline.load_preset(overrides={"preset": name})
    assert as_configfile["outputs_root"] == f"outputs/{name}"


def test_a_whole_config_of_ones_own_and_a_renamed_preset(tmp_path):
    mine = {**yaml.safe_load((ROOT / "params" / "smoke.yaml").read_text()), "name": "mine"}
    assert pipeline.load_preset(overrides=mine)["outputs_root"] == "outputs/mine"
    assert pipeline.load_preset(overrides={"preset": "smoke", "name": "smoke_lr"})["outputs_root"] == "outputs/smoke_lr"


def _snakemake(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "snakemake", "-s", "workflow/Snakefile", "-n", "--cores", "1",
                           *args], cwd=ROOT, capture_output=True, text=True, timeout=120)


def test_snakemake_config_errors_and_configfile():
    typo = _snakemake("--config", "learning_rat=2e-5")
    assert typo.returncode != 0
    assert "Unknown parameter `learning_rat` (did you mean `learning_rate`?)" in typo.stdout + typo.stderr
    demo = _snakemake("--configfile", "params/demo.yaml", "--forceall")  # its committed results would be done
    assert demo.returncode == 0 and "outputs/demo/SST-2/seed_1337/finetune/metrics.json" in demo.stdout
    assert "outputs/smoke" not in demo.stdout
