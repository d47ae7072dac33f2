"""The `lottery` command: every subcommand's --help, its values, errors that name the fix, one notebook."""
import json
import subprocess
import sys

import nbformat
import pytest

from lotterylib.core import files
from lotterylib.workflow import cli

COMMANDS = ("run", "estimate", "summary", "jobs", "report", "readme", "notebook", "kernel", "resign")


def test_python_m_lotterylib_lists_every_command():
    out = subprocess.run([sys.executable, "-m", "lotterylib", "--help"], capture_output=True, text=True,
                         cwd=files.PROJECT_ROOT, timeout=120)
    assert out.returncode == 0 and all(f"    {c}" in out.stdout for c in COMMANDS), out.stdout + out.stderr


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_help(command, capsys):
    with pytest.raises(SystemExit) as done:
        cli.main([command, "--help"])
    assert done.value.code == 0 and "usage:" in capsys.readouterr().out


def test_parameter_values_are_typed_as_papermill_types_them():
    assert [cli._value(v) for v in ("2", "-1", "1e-4", "0.5", "true", "SST-2")] == [2, -1, 1e-4, 0.5, "true", "SST-2"]


def test_errors_name_the_fix(tmp_path, capsys):
    with pytest.raises(SystemExit, match="expected KEY=VALUE"):
        cli.main(["report", "smoke", "--config", "epochs"])
    with pytest.raises(SystemExit, match="no stage or notebook 'nosuch'. Stages: finetune, s_pruning"):
        cli.main(["notebook", "nosuch"])
    with pytest.raises(SystemExit, match="takes no options after --"):
        cli.main(["kernel", "--", "--user"])
    assert cli.main(["summary", str(tmp_path / "none")]) == 1 and "no such folder" in capsys.readouterr().err


def test_notebook_runs_one_notebook_with_typed_parameters(tmp_path):
    parameters = nbformat.v4.new_code_cell("n = 1\nname = 'x'")
    parameters.metadata["tags"] = ["parameters"]
    body = nbformat.v4.new_code_cell("import json\nprint(json.dumps([n, name]))")
    nb = nbformat.v4.new_notebook(cells=[parameters, body])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, tmp_path / "nb.ipynb")
    assert cli.main(["notebook", str(tmp_path / "nb.ipynb"), "-p", "n", "3", "-p", "name", "RTE",
                     "-o", str(tmp_path / "out.ipynb")]) == 0
    printed = nbformat.read(tmp_path / "out.ipynb", as_version=4).cells[-1].outputs[0]["text"]
    assert json.loads(printed) == [3, "RTE"]


@pytest.mark.slow
def test_run_dry_run_lists_the_smoke_grid(tmp_path):
    out = subprocess.run([sys.executable, "-m", "lotterylib", "run", "smoke", "--dry-run", "--config",
                          f"outputs_root={tmp_path / 'smoke'}", "--", "--nolock"], capture_output=True, text=True,
                         cwd=files.PROJECT_ROOT, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "snakemake --snakefile workflow/Snakefile --cores 2 --config preset=smoke" in out.stdout
    assert "finetune" in out.stdout + out.stderr and "report" in out.stdout + out.stderr
