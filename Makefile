# The two set-up commands (README): `make setup`, `make test`. The main job: `make demo`.
PY      ?= python3
VENV    ?= .venv
BIN     := $(VENV)/bin
CORES   ?= 2
PRESET  ?= demo
export HF_HUB_OFFLINE ?= 1
export LOTTERY_GLUE_DIR ?= $(abspath ../shared/data/glue)

.PHONY: setup test test-fast demo grid summary clean-smoke

setup:
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	# torch first and alone: the CPU wheel, not a multi-GB CUDA build pulled in as a dependency.
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e '.[dev]'
	$(BIN)/python -m ipykernel install --sys-prefix --name python3 --display-name "Python 3 (bert-lottery)"

test:
	$(BIN)/pytest tests
	$(BIN)/pytest --nbval-lax --nbval-current-env -p no:cacheprovider notebooks

test-fast:
	$(BIN)/pytest tests -m "not slow"

demo:
	$(MAKE) grid PRESET=demo

grid:
	$(BIN)/snakemake --snakefile workflow/Snakefile --cores $(CORES) --config preset=$(PRESET) \
	    --rerun-incomplete --keep-going --printshellcmds
	$(BIN)/python -m lotterylib.summary outputs/$(PRESET)
