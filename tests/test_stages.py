"""The stage registry: each parameter declared once, and the schema, the notebooks' parameters cells, the
presets' validation, the workflow's inputs and the time estimate all follow from it."""
import shutil

import nbformat
import pytest
import yaml

from lotterylib import stages
from lotterylib.core import files
from lotterylib.core.errors import ParameterError
from lotterylib.stages import config, registry
from lotterylib.workflow import pipeline, timing

ROOT = files.PROJECT_ROOT
JSON_TYPES = {int: "integer", float: "number", bool: "boolean", str: "string", list: "array"}


@pytest.mark.parametrize("name", sorted(registry.PARAMS))
def test_every_parameter_has_a_valid_default_of_its_declared_type(name):
    param = registry.PARAMS[name]
    spec, per_task = config._scalar_spec(name)
    assert spec.get("type", "boolean" if True in spec.get("enum", ()) else None) == JSON_TYPES[param.kind]
    assert per_task == param.per_task and param.help
    assert config.validate_params({name: param.default}) == {name: param.default}


def test_every_stage_takes_declared_parameters_and_reads_declared_stages():
    for spec in registry.STAGES.values():
        assert set(spec.params) <= set(registry.PARAMS) and len(set(spec.params)) == len(spec.params)
        assert not any(registry.PARAMS[p].preset_only for p in spec.params)
        assert set(spec.needs) | set(spec.every_seed) <= set(registry.STAGES) - {spec.name}
        assert all(registry.PARAMS[flag].kind is bool for flag in spec.every_seed.values())
        assert (ROOT / spec.notebook).is_file()


@pytest.mark.parametrize("stage", sorted(registry.STAGES))
def test_each_notebooks_parameters_cell_is_the_generated_one(stage):
    """Name, annotation, default and help of every parameter, as papermill --help-notebook shows them."""
    import papermill

    declared = papermill.inspect_notebook(str(ROOT / registry.STAGES[stage].notebook))
    assert list(declared) == list(registry.STAGES[stage].params)
    for name, shown in declared.items():
        param = registry.PARAMS[name]
        assert eval(shown["default"]) == param.default and shown["help"] == param.help
        assert shown["inferred_type_name"] == param.annotation
    assert not registry.stale_parameters_cells()


def test_a_notebook_value_outside_the_registry_is_named_with_the_nearest_parameter(tmp_path):
    namespace = {**{p: registry.PARAMS[p].default for p in registry.STAGES["finetune"].params},
                 "outputs_root": str(tmp_path), "learning_rat": 5e-5}
    with pytest.raises(ParameterError, match="Unknown parameter `learning_rat` \\(did you mean `learning_rate`\\?\\)"):
        stages.open("finetune", namespace)


def test_a_preset_key_that_is_not_declared_is_an_error_naming_the_nearest_parameter(tmp_path):
    preset = tmp_path / "typo.yaml"
    preset.write_text(yaml.safe_dump({"tasks": ["RTE"], "seeds": [1], "stages": ["finetune"], "treshold": 0.8}))
    with pytest.raises(ParameterError, match="Unknown parameter `treshold` \\(did you mean `threshold`\\?\\)"):
        pipeline.load_preset(str(preset))


@pytest.fixture
def new_parameter(monkeypatch):
    """A parameter added the documented way: one `Param`, its name in the stages that take it."""
    param = registry.Param("dropout", float, 0.1, "classifier dropout (paper: 0.1)", registry.FRACTION, per_task=True)
    monkeypatch.setitem(registry.PARAMS, "dropout", param)
    for name in ("finetune", "lottery"):
        spec = registry.STAGES[name]
        monkeypatch.setitem(registry.STAGES, name, registry.Stage(**{**spec.__dict__, "params": (*spec.params, "dropout")}))
    config.schema.cache_clear()
    yield param
    config.schema.cache_clear()


def test_adding_a_parameter_is_one_declaration_and_a_preset_value(new_parameter, tmp_path):
    preset = yaml.safe_load((ROOT / "params" / "smoke.yaml").read_text()) | {"dropout": {"SST-2": 0.2, "STS-B": 0.05}}
    path = tmp_path / "with_dropout.yaml"
    path.write_text(yaml.safe_dump(preset))
    p = pipeline.load_preset(str(path))                       # the schema knows it, per task too
    assert pipeline.stage_params(p, "finetune", "SST-2", 1)["dropout"] == 0.2
    assert pipeline.stage_params(p, "lottery", "STS-B", 2)["dropout"] == 0.05
    assert "dropout" not in pipeline.stage_params(p, "s_pruning", "SST-2", 1)
    with pytest.raises(ParameterError, match="Invalid parameter dropout = 1.5"):
        config.validate_params({"dropout": 1.5})
    # the notebooks' cells are then generated: `lottery notebook-params` writes them
    (tmp_path / "notebooks").mkdir()
    for spec in registry.STAGES.values():
        shutil.copy(ROOT / spec.notebook, tmp_path / spec.notebook)
    assert registry.stale_parameters_cells(tmp_path, write=True) == [registry.STAGES[s].notebook for s in ("finetune", "lottery")]
    cell = next(c for c in nbformat.read(tmp_path / registry.STAGES["lottery"].notebook, 4).cells
                if "parameters" in c.metadata.get("tags", []))
    assert cell.source.endswith("\ndropout: float = 0.1  # classifier dropout (paper: 0.1)")
    assert not registry.stale_parameters_cells(tmp_path)


def test_open_validates_once_decides_precision_and_records_the_stage_values(tmp_path):
    namespace = {**{p: registry.PARAMS[p].default for p in registry.STAGES["finetune"].params},
                 "outputs_root": str(tmp_path), "task": "sst2", "epochs": 2, "bf16": "false", "pd": object()}
    job = stages.open("finetune", namespace)
    assert namespace["task"] == "SST-2" and namespace["epochs"] == 2.0 and namespace["bf16"] is False
    assert job.run.dir == tmp_path / "SST-2" / "seed_1" / "finetune"
    assert set(job.params) == set(registry.STAGES["finetune"].params) - {"outputs_root", "progress"} | {
        "bf16_setting", "bf16_reason"}
    assert job.params["bf16"] is False and job.params["bf16_setting"] is False
    cfg = job.train_config()
    assert (cfg.learning_rate, cfg.batch_size, cfg.epochs, cfg.bf16) == (1e-4, 16, 2.0, False)


def test_open_checks_the_stages_a_per_seed_stage_reads(tmp_path):
    namespace = {**{p: registry.PARAMS[p].default for p in registry.STAGES["s_pruning"].params},
                 "outputs_root": str(tmp_path), "seed": 3}
    with pytest.raises(FileNotFoundError, match="finetune/metrics.json does not exist: run the finetune stage "
                                                ".*for SST-2, seed 3 first"):
        stages.open("s_pruning", namespace)
    assert not (tmp_path / "SST-2" / "seed_3" / "s_pruning").exists()


def test_the_lottery_reads_every_seeds_s_masks_when_its_flag_is_on():
    p = pipeline.load_preset("smoke")
    assert ("s_pruning", "SST-2", 2) in pipeline.upstream_jobs({**p, "extras": True}, "lottery", "SST-2", 1)
    assert ("s_pruning", "SST-2", 2) not in pipeline.upstream_jobs({**p, "extras": False}, "lottery", "SST-2", 1)
    no_flag = {k: v for k, v in p.items() if k != "extras"}   # the declared default: true
    assert ("s_pruning", "SST-2", 2) in pipeline.upstream_jobs(no_flag, "lottery", "SST-2", 1)


def test_timing_prices_the_work_a_stage_declares():
    """The lottery's work: 6 re-fine-tunings (3 of m, under weight masks) and 12 evaluations (a third of a
    training pass each); both_rules adds 2 runs (1 masked) and 4 evaluations, extras 6 runs (bad s for twice the
    epochs, random init, 3 super-survivors) and 8 evaluations (hand count, notebooks/04_lottery_tests.ipynb)."""
    work = registry.STAGES["lottery"].work
    total = work.total({"both_rules": False, "extras": False})
    assert (total.runs, total.masked, total.dev) == (6, 3, pytest.approx(4.0))
    total = work.total({"both_rules": True, "extras": False})
    assert (total.runs, total.masked, total.dev) == (8, 4, pytest.approx(16 / 3))
    total = work.total({"both_rules": True, "extras": True})
    assert (total.runs, total.masked, total.dev) == (14, 4, pytest.approx(8.0))
    cal = timing.Calibration(gflops=1.0, step_seconds=1.0, batch_size=1, seq_len=1, bf16=False)
    size = timing.TaskSize("SST-2", train_tokens=cal.tokens_per_second, dev_tokens=0.0)  # one second per pass
    preset = {"epochs": 2.0, "both_rules": False, "extras": False}
    assert timing.job_seconds(preset, "lottery", size, cal) == pytest.approx(timing.JOB_OVERHEAD_S + 12.0)
    assert timing.preset_stage_seconds(preset, "stability", cal) == 30.0
