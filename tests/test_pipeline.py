"""Presets, notebooks' parameter cells, and the dependency list: consistency checks that catch typos."""
import json
import re
import subprocess
import tomllib

import nbformat
import pytest
import yaml

from lotterylib.core import files
from lotterylib.workflow import pipeline

ROOT = files.PROJECT_ROOT
PRESETS = sorted(p.stem for p in (ROOT / "params").glob("*.yaml"))
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))


def test_the_four_presets_exist():
    assert set(PRESETS) >= {"smoke", "demo", "cpu", "paper"}


@pytest.mark.parametrize("name", PRESETS)
def test_every_preset_value_is_a_parameter_of_some_stage(name):
    preset = pipeline.load_preset(name)
    declared = set().union(*(s.params for s in pipeline.STAGES.values()))
    unknown = set(preset) - declared - set(pipeline.GRID_KEYS) - {"outputs_root", "name"}
    assert not unknown, f"{name}.yaml sets values no stage takes: {unknown}"
    assert preset["name"] == name and preset["outputs_root"] == f"outputs/{name}"


def test_paper_preset_has_the_papers_setting():
    p = pipeline.load_preset("paper")
    assert p["model"] == "bert-base-uncased" and p["seeds"] == [1337, 42, 86, 71, 166]
    assert len(p["tasks"]) == 9 and p["learning_rate"] == 2e-5 and p["batch_size"] == 32 and p["epochs"] == 3
    assert p["bf16"] is False and p["max_seq_len"] == 128


def test_overrides_and_bad_presets(tmp_path):
    p = pipeline.load_preset("smoke", {"preset": "smoke", "learning_rate": 3e-5, "seeds": [9]})
    assert p["learning_rate"] == 3e-5 and p["seeds"] == [9]
    with pytest.raises(FileNotFoundError, match="Known presets: .*smoke"):
        pipeline.load_preset("nope")
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({"tasks": ["RTE"], "seeds": [1], "stages": ["finetune", "dance"]}))
    with pytest.raises(ValueError, match="stages = \\['finetune', 'dance'\\]: its item 'dance' is not allowed"):
        pipeline.load_preset(str(bad))
    bad.write_text(yaml.safe_dump({"tasks": ["RTX"], "seeds": [1], "stages": ["finetune"]}))
    with pytest.raises(ValueError, match="tasks = \\['RTX'\\]: its item 'RTX' is not allowed"):
        pipeline.load_preset(str(bad))


def test_targets_and_stage_params():
    p = pipeline.load_preset("smoke", {"stages": ["finetune"], "tasks": ["RTE"], "seeds": [1, 2]})
    assert pipeline.targets(p) == ["outputs/smoke/RTE/seed_1/finetune/metrics.json",
                                   "outputs/smoke/RTE/seed_2/finetune/metrics.json"]
    sp = pipeline.stage_params(p, "finetune", "RTE", 2)
    assert sp["task"] == "RTE" and sp["seed"] == 2 and sp["outputs_root"] == "outputs/smoke"
    assert "tasks" not in sp and "stages" not in sp


def test_per_task_values(tmp_path):
    p = pipeline.load_preset("smoke", {"tasks": ["SST-2", "MRPC"], "max_train_examples": {"sst2": 2000, "MRPC": 0}})
    assert p["max_train_examples"] == {"SST-2": 2000, "MRPC": 0}                # task names normalised
    assert pipeline.stage_params(p, "finetune", "SST-2", 1)["max_train_examples"] == 2000
    assert pipeline.stage_params(p, "lottery", "MRPC", 1)["max_train_examples"] == 0
    assert "max_train_examples" not in pipeline.stage_params(p, "bad_subnetworks")  # not one of its parameters
    with pytest.raises(ValueError, match="`max_seq_len` is per task, but the attention_patterns stage"):
        pipeline.stage_params({**p, "max_seq_len": {"SST-2": 64, "MRPC": 128}}, "attention_patterns")
    assert pipeline.train_examples(p, "SST-2") == 2000 and pipeline.train_examples(p, "MRPC") == 3668
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({"tasks": ["RTE", "MRPC"], "seeds": [1], "stages": ["finetune"],
                                   "max_train_examples": {"RTE": 100}}))
    with pytest.raises(ValueError, match="`max_train_examples` is per task but has no value for MRPC"):
        pipeline.load_preset(str(bad))


@pytest.mark.parametrize("nb", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_parameters_cell_parses_fully_and_uses_python3(nb):
    content = json.loads(nb.read_text())
    assert content["metadata"]["kernelspec"]["name"] == "python3"
    cells = [c for c in content["cells"] if "parameters" in c["metadata"].get("tags", [])]
    assert len(cells) == 1, "exactly one cell tagged 'parameters'"
    source = "".join(cells[0]["source"])
    names = re.findall(r"^(\w+)\s*:", source, flags=re.M)
    import papermill

    parsed = papermill.inspect_notebook(str(nb))
    assert list(parsed) == names, "papermill could not parse some lines (an '=' inside a comment?)"
    for name in names:
        assert re.search(rf"^{name}\s*:\s*[\w ]+\s*=.*#\s*\S", source, flags=re.M), f"{name} needs a type and a comment"


def test_stage_registry_points_at_existing_notebooks():
    for stage in pipeline.STAGES.values():
        assert (ROOT / stage.notebook).is_file() and stage.level in ("seed", "task", "preset")


def test_environment_yml_installs_the_lock_then_the_project():
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    deps = env["dependencies"]
    assert "pip" in deps and any(str(d).startswith("python=3.11") for d in deps)
    assert project["requires-python"] == ">=3.11,<3.12"
    assert next(d["pip"] for d in deps if isinstance(d, dict)) == ["-r requirements.lock", "-e ."]


def lock() -> dict[str, str]:
    """requirements.lock as {normalised name: version}."""
    lines = [line for line in (ROOT / "requirements.lock").read_text().splitlines() if not line.startswith("#")]
    pins = [re.fullmatch(r"([A-Za-z0-9_.\-]+)==([\w.]+)", line) for line in lines]
    assert all(pins), [line for line, pin in zip(lines, pins) if not pin]
    return {re.sub(r"[-_.]+", "-", pin[1]).lower(): pin[2] for pin in pins}


def test_every_dependency_is_pinned_and_the_lock_holds_the_same_versions():
    """pyproject pins the direct dependencies; requirements.lock (`make setup` installs it) every package of the
    tested environment, transitive ones too, at the same versions (`make lock` after changing a pin)."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    deps = project["dependencies"] + [d for ds in project["optional-dependencies"].values() for d in ds
                                      if not d.startswith("lotterylib[")]
    assert all(re.fullmatch(r"[A-Za-z0-9_.\-]+==[\w.]+", d) for d in deps), deps
    locked = lock()
    slurm = set(project["optional-dependencies"]["slurm"])   # `make test-slurm` installs it on top
    for dep in set(deps) - slurm:
        name, version = dep.split("==")
        assert locked.get(re.sub(r"[-_.]+", "-", name).lower()) == version, f"{dep}: run `make lock`"
    assert "lotterylib" not in locked and "pip install --quiet -r requirements.lock" in (ROOT / "Makefile").read_text()


@pytest.mark.parametrize("stage", sorted(pipeline.STAGES))
def test_notebook_defaults_are_the_smoke_preset(stage):
    """The golden notebooks (executed with their defaults) show what the smoke grid computes."""
    import papermill

    smoke = pipeline.load_preset("smoke")
    expected = {**smoke, "task": smoke["tasks"][0], "seed": smoke["seeds"][0]}
    declared = papermill.inspect_notebook(str(ROOT / pipeline.STAGES[stage].notebook))
    for name, spec in declared.items():
        if name in expected and name != "progress":
            assert eval(spec["default"]) == expected[name], f"{stage}: default of {name} differs from smoke.yaml"


def test_job_priority_runs_prerequisites_then_the_longest_lottery_jobs_first():
    demo = pipeline.load_preset("demo2")                                    # SST-2: 2000, MRPC: 3000 examples
    prio = {(stage, t): pipeline.job_priority(demo, stage, t) for stage in pipeline.STAGES for t in demo["tasks"]}
    assert prio[("lottery", "MRPC")] > prio[("lottery", "SST-2")]
    assert min(prio[(s, t)] for s in ("finetune", "s_pruning", "m_pruning") for t in demo["tasks"]) \
        > prio[("lottery", "MRPC")]
    full = {**demo, "max_train_examples": 0}                                # SST-2 67349, MRPC 3668
    assert pipeline.job_priority(full, "lottery", "SST-2") > pipeline.job_priority(full, "lottery", "MRPC")


def test_code_hash_follows_code_cells_only(tmp_path):
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("# Title"), nbformat.v4.new_code_cell("x = 1")])
    path = tmp_path / "a.ipynb"
    nbformat.write(nb, path)
    before = pipeline.code_hash(str(path))
    nb.cells[0].source = "# Another title"
    nb.cells[1].outputs = [nbformat.v4.new_output("stream", text="1\n")]
    nbformat.write(nb, tmp_path / "b.ipynb")
    nb.cells[1].source = "x = 2"
    nbformat.write(nb, tmp_path / "c.ipynb")
    assert pipeline.code_hash(str(tmp_path / "b.ipynb")) == before != pipeline.code_hash(str(tmp_path / "c.ipynb"))


def test_progress_changes_what_a_job_prints_not_its_signature():
    p = pipeline.load_preset("smoke")
    q = {**p, "progress": not p["progress"]}
    assert pipeline.stage_params(q, "finetune", "SST-2", 1)["progress"] != pipeline.stage_params(p, "finetune", "SST-2", 1)["progress"]
    assert [pipeline.job_signature(q, *job) for job in pipeline.grid_jobs(p)] == \
        [pipeline.job_signature(p, *job) for job in pipeline.grid_jobs(p)]


def test_a_job_signature_follows_its_upstream_jobs():
    p = pipeline.load_preset("smoke")
    lottery = pipeline.job_signature(p, "lottery", "SST-2", 1)
    assert pipeline.job_signature(p, "lottery", "SST-2", 1) == lottery != pipeline.job_signature(p, "lottery", "SST-2", 2)
    # `threshold` is an s-pruning value: it changes every stage that reads s-pruning, not fine-tuning
    q = {**p, "threshold": 0.5}
    assert pipeline.job_signature(q, "lottery", "SST-2", 1) != lottery
    assert pipeline.job_signature(q, "stability") != pipeline.job_signature(p, "stability")
    assert pipeline.job_signature(q, "finetune", "SST-2", 1) == pipeline.job_signature(p, "finetune", "SST-2", 1)
    assert pipeline.upstream_jobs(p, "lottery", "SST-2", 1) == [("m_pruning", "SST-2", 1), ("s_pruning", "SST-2", 1),
                                                                ("s_pruning", "SST-2", 2)]
    assert pipeline.upstream_jobs({**p, "extras": False}, "lottery", "SST-2", 1)[1:] == [("s_pruning", "SST-2", 1)]


def test_an_override_that_changes_a_committed_preset_s_results_writes_elsewhere(capsys):
    assert pipeline.tracked("outputs/demo") and not pipeline.tracked("outputs/smoke")
    assert pipeline.grid_preset({"preset": "demo"})["outputs_root"] == "outputs/demo"
    assert pipeline.grid_preset({"preset": "demo", "progress": False})["outputs_root"] == "outputs/demo"  # display only
    assert pipeline.grid_preset({"preset": "demo", "selection": "split"})["outputs_root"] == "outputs/demo-split"
    capsys.readouterr()
    changed = pipeline.grid_preset({"preset": "demo", "seeds": "[1337]", "learning_rate": 2e-5})["outputs_root"]
    assert re.fullmatch(r"outputs/local/demo-[0-9a-f]{8}", changed)
    assert f"writing to {changed} instead" in capsys.readouterr().err
    assert pipeline.grid_preset({"learning_rate": 2e-5, "seeds": "[1337]", "preset": "demo"})["outputs_root"] == changed
    assert pipeline.grid_preset({"preset": "demo", "threshold": 0.8})["outputs_root"] not in (changed, "outputs/demo")
    split = pipeline.grid_preset({"preset": "demo", "selection": "split", "threshold": 0.8})["outputs_root"]
    assert split.startswith("outputs/local/demo-split-")
    explicit = {"preset": "demo", "learning_rate": 2e-5, "outputs_root": "outputs/demo"}
    assert pipeline.grid_preset(explicit)["outputs_root"] == "outputs/demo"         # asked for: respected
    assert pipeline.grid_preset({"preset": "smoke", "learning_rate": 2e-5})["outputs_root"] == "outputs/smoke"
    ignored = subprocess.run(["git", "check-ignore", "-q", f"{changed}/SST-2/seed_1337/finetune/metrics.json"],
                             cwd=files.PROJECT_ROOT)
    assert ignored.returncode == 0


def test_a_job_signature_follows_the_library_code_its_notebook_runs(tmp_path, monkeypatch):
    """Editing a module that only notebook 07 imports changes its job's signature and the report's (which
    reads it), no other; a package data file changes the signatures of the stages whose modules name it."""
    import shutil

    p = pipeline.load_preset("smoke")
    before = {job: pipeline.job_signature(p, *job) for job in pipeline.grid_jobs(p)}
    copy = tmp_path / "lotterylib"
    shutil.copytree(pipeline.LIBRARY, copy, ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setattr(pipeline, "LIBRARY", copy)
    assert {job: pipeline.job_signature(p, *job) for job in pipeline.grid_jobs(p)} == before  # the same code

    def changed() -> set[str]:
        return {job[0] for job in pipeline.grid_jobs(p) if pipeline.job_signature(p, *job) != before[job]}

    notebook = pipeline.STAGES["attention_patterns"].notebook
    assert copy / "stages" / "head_patterns.py" in pipeline.library_files(notebook, copy)
    with open(copy / "stages" / "head_patterns.py", "a") as module:
        module.write("\nTHRESHOLD = 0.5\n")
    pipeline._library_hash.cache_clear()
    assert changed() == {"attention_patterns", "report"}
    with open(copy / "analysis" / "data_files" / "paper_numbers.csv", "a") as data:
        data.write("\n")
    pipeline._library_hash.cache_clear()
    readers = {s for s, stage in pipeline.STAGES.items()
               if copy / "analysis" / "data_files" / "paper_numbers.csv" in pipeline.library_files(stage.notebook, copy)}
    assert "finetune" in readers and changed() == readers | {"attention_patterns", "report"}
    pipeline._library_hash.cache_clear()
