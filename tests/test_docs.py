"""The README, the Makefile and docs/method.md against the project: every command, target, path and
section they name exists."""
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from lotterylib.core import files

ROOT = files.PROJECT_ROOT
README = (ROOT / "README.md").read_text()
METHOD = (ROOT / "docs" / "method.md").read_text()
TOP = ("lotterylib", "notebooks", "workflow", "params", "docs", "benchmarks", "tests", ".ci")


def makefile_targets() -> set[str]:
    return set(re.findall(r"^([\w-]+):", (ROOT / "Makefile").read_text(), re.M))


@pytest.mark.parametrize("source", ["README.md", ".ci/run", "Makefile"])
def test_every_make_target_named_exists(source):
    named = set(re.findall(r"(?:^|`)make ([a-z][\w-]*)", (ROOT / source).read_text(), re.M))
    assert named and named <= makefile_targets(), named - makefile_targets()


def test_every_venv_command_in_the_readme_exists():
    commands = set(re.findall(r"\.venv/bin/([\w-]+)", README))
    assert {"snakemake", "papermill", "jupyter", "pip", "python"} <= commands
    missing = [c for c in commands if not (Path(sys.executable).parent / c).exists()]
    assert not missing, f"README names .venv/bin commands the environment lacks: {missing}"


def test_every_project_path_in_the_readme_exists():
    paths = {p.rstrip(".,:") for p in re.findall(r"[\w.]*(?:/[\w.-]+)+", README)
             if p.split("/")[0] in TOP and "<" not in p}
    assert "workflow/profiles/slurm/config.yaml" in paths and "docs/method.md" in paths
    missing = sorted(p for p in paths if not (ROOT / p).exists())
    assert not missing, f"README names files that do not exist: {missing}"


def test_every_python_module_in_the_readme_exists():
    for module in re.findall(r"python -m ([\w.]+)", README):
        path = ROOT / module.replace(".", "/")
        assert path.with_suffix(".py").is_file() or (path / "__main__.py").is_file(), module


def test_every_lottery_command_in_the_readme_and_makefile_exists():
    from lotterylib.workflow import cli

    named = set(re.findall(r"(?:^|`|/)lottery ([a-z]+)", README + (ROOT / "Makefile").read_text(), re.M))
    commands = set(cli.parser()._subparsers._group_actions[0].choices)
    assert {"run", "report", "notebook"} <= named and named <= commands, named - commands


def test_the_method_document_is_in_the_repository_and_every_cited_section_exists():
    sections = set(re.findall(r"^## (\d+)\.", METHOD, re.M))
    assert sections == {str(i) for i in range(8)}
    cited = []
    for path in [*ROOT.glob("lotterylib/*.py"), *ROOT.glob("notebooks/*.ipynb"), *ROOT.glob("params/*.yaml"),
                 ROOT / "README.md"]:
        text = path.read_text()
        assert "METHOD.md" not in text, f"{path.name} cites METHOD.md, which is outside the repository"
        cited += [(path.name, s) for group in re.findall(r"docs/method\.md sections? ([\d, and]+)", text)
                  for s in re.findall(r"\d+", group)]
    assert cited and all(s in sections for _, s in cited), [c for c in cited if c[1] not in sections]
    assert "`compat`" in METHOD and METHOD.count("**authors:**") >= 8


@pytest.mark.parametrize("local_copy", [True, False])
def test_the_makefile_goes_offline_only_with_a_local_glue_folder(tmp_path, local_copy):
    project = tmp_path / "clone"
    project.mkdir()
    shutil.copy(ROOT / "Makefile", project)
    if local_copy:
        (tmp_path / "shared" / "data" / "glue").mkdir(parents=True)
    env = {k: v for k, v in os.environ.items() if k not in ("LOTTERY_GLUE_DIR", "HF_HUB_OFFLINE", "MAKEFLAGS")}
    (project / "probe.mk").write_text("show-env:\n\t@echo LOTTERY_GLUE_DIR=$$LOTTERY_GLUE_DIR HF_HUB_OFFLINE=$$HF_HUB_OFFLINE\n")
    out = subprocess.run(["make", "-s", "-f", "Makefile", "-f", "probe.mk", "show-env"], cwd=project, env=env,
                         capture_output=True, text=True)
    shown = dict(line.split("=", 1) for line in out.stdout.split())
    expected = {"LOTTERY_GLUE_DIR": str(tmp_path / "shared" / "data" / "glue"), "HF_HUB_OFFLINE": "1"}
    assert shown == (expected if local_copy else {"LOTTERY_GLUE_DIR": "", "HF_HUB_OFFLINE": ""}), out.stderr
