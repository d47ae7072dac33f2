"""`pytest notebooks` runs the golden notebooks with nbval as `make test` does, without the Makefile: the
nbval options it passes, and the local GLUE copy (`../shared/data/glue` beside the project, offline) unless
$LOTTERY_GLUE_DIR says otherwise. The notebooks read the smoke grid's outputs: `make grid PRESET=smoke` first."""
import os
from pathlib import Path

GLUE_LOCAL = Path(__file__).resolve().parents[2] / "shared" / "data" / "glue"


def pytest_configure(config):
    config.option.nbval_lax = True          # compare only the cells marked NBVAL_CHECK_OUTPUT
    config.option.nbval_current_env = True  # the kernel is this Python: the project's venv
    if GLUE_LOCAL.is_dir() and "LOTTERY_GLUE_DIR" not in os.environ:
        os.environ["LOTTERY_GLUE_DIR"] = str(GLUE_LOCAL)
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
