# The two set-up commands (README): `make setup`, `make test`. The main job: `make demo`.
PY      ?= python3
VENV    ?= .venv
BIN     := $(VENV)/bin
CORES   ?= 2
PRESET  ?= demo
# GLUE: a local copy in the classic tsv layout beside the project, offline, when there is one; otherwise
# the Hugging Face hub (downloads on first use). Either can be set in the environment instead.
GLUE_LOCAL := $(abspath ../shared/data/glue)
ifneq ($(wildcard $(GLUE_LOCAL)),)
export LOTTERY_GLUE_DIR ?= $(GLUE_LOCAL)
export HF_HUB_OFFLINE ?= 1
endif

.PHONY: setup test test-fast test-slurm golden demo grid readme-results

setup:
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	# torch first and alone, pinned. Which build pip picks is pip's configuration: on Linux the default
	# index gives the CUDA build (GBs of CUDA libraries); for the CPU build point pip at PyTorch's CPU index
	# (PIP_EXTRA_INDEX_URL=https://download.pytorch.org/whl/cpu) before `make setup`.
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e '.[dev]'
	$(BIN)/python -m ipykernel install --sys-prefix --name python3 --display-name "Python 3 (bert-lottery)"

# Unit tests, then the smoke grid through Snakemake, then the golden notebooks (nbval re-runs each with its
# defaults, which read the smoke grid's outputs, and compares the cells marked NBVAL_CHECK_OUTPUT).
test:
	$(BIN)/pytest tests -m "not slurm"
	$(MAKE) grid PRESET=smoke
	$(BIN)/pytest --nbval-lax --nbval-current-env -p no:cacheprovider notebooks

# The workflow on a one-node SLURM cluster on this machine (root: installs slurm-wlm and munge with apt-get,
# the SLURM executor plugin into the venv; starts the daemons and stops them again).
test-slurm:
	$(BIN)/pip install --quiet -e '.[slurm]'
	tests/slurm/cluster.sh install
	$(BIN)/pytest tests -m slurm

# Re-execute the golden notebooks in place with their defaults (the smoke values) after changing one.
golden:
	$(MAKE) grid PRESET=smoke
	$(BIN)/jupyter nbconvert --to notebook --execute --inplace notebooks/*.ipynb

test-fast:
	$(BIN)/pytest tests -m "not slow"

# The main job: reproduce the demo into outputs/local/demo (git-ignored), then compare each number with the
# committed outputs/demo (bit-identical, within seed noise, or different: lotterylib/compare.py).
demo:
	$(MAKE) grid PRESET=demo OUT=outputs/local/demo
	$(BIN)/python -m lotterylib.compare outputs/demo outputs/local/demo

# OUT: the output folder (default outputs/<preset>, the committed run's).
grid:
	$(BIN)/python -m lotterylib.timing estimate --preset $(PRESET) --cores $(CORES)
	$(BIN)/snakemake --snakefile workflow/Snakefile --cores $(CORES) --config preset=$(PRESET) \
	    $(if $(OUT),outputs_root=$(OUT)) --rerun-incomplete --keep-going --printshellcmds
	$(BIN)/python -m lotterylib.summary $(or $(OUT),outputs/$(PRESET))
	$(BIN)/python -m lotterylib.timing jobs $(or $(OUT),outputs/$(PRESET)) --keep-log "$$(ls -t .snakemake/log/*.log | head -1)"

# The README's results section, generated from every committed preset's outputs/<preset>/results.csv.
readme-results:
	$(BIN)/python -m lotterylib.report --readme README.md
