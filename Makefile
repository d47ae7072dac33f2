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

.PHONY: setup lock test test-fast test-slurm golden demo grid report readme-results resign

# The environment CI tested, from requirements.lock (every package, transitive ones too, pinned: `make lock`),
# then the project itself without dependencies. Which torch build pip picks is pip's configuration: on Linux
# the default index gives the CUDA build (GBs of CUDA libraries); for the CPU build point pip at PyTorch's
# CPU index (PIP_EXTRA_INDEX_URL=https://download.pytorch.org/whl/cpu) before `make setup`.
setup:
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip==26.3
	$(BIN)/pip install --quiet -r requirements.lock
	$(BIN)/pip install --quiet --no-deps -e .
	$(BIN)/python -m ipykernel install --sys-prefix --name python3 --display-name "Python 3 (bert-lottery)"
	$(BIN)/lottery kernel

# Re-pin requirements.lock from this venv after changing pyproject.toml's dependencies (`pip install -e '.[dev]'`
# first, test, then lock). torch is pinned without its local build tag (+cpu, +cu128): pip's configuration picks it.
lock:
	{ echo "# pip freeze of the tested environment (make lock): pyproject.toml's [dev] and [workflow] extras"; \
	  $(BIN)/pip freeze --exclude-editable | grep -v '^#' | sed -E 's/^(torch==[^+]*)\+.*/\1/'; } > requirements.lock

# Unit tests, then the smoke grid through Snakemake, then the golden notebooks (nbval re-runs each with its
# defaults, which read the smoke grid's outputs, and compares the cells marked NBVAL_CHECK_OUTPUT).
test:
	$(BIN)/pytest tests -m "not slurm"
	$(MAKE) grid PRESET=smoke
	$(BIN)/pytest -p no:cacheprovider notebooks  # nbval options and GLUE folder: notebooks/conftest.py

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
# committed outputs/demo (bit-identical, within seed noise, or different: lotterylib/workflow/compare.py).
demo:
	$(MAKE) grid PRESET=demo OUT=outputs/local/demo
	$(BIN)/lottery compare outputs/demo outputs/local/demo

# After a behaviour-neutral commit: prove it neutral on the smoke grid (at the commit the committed runs were
# signed at and now, bit for bit), then re-stamp their signatures instead of rerunning them (lotterylib/workflow/resign.py).
# BASE=COMMIT for runs signed before signature.txt recorded its commit.
RESIGN ?= demo demo-split demo_more
resign:
	$(BIN)/lottery resign $(RESIGN) --cores $(CORES) $(if $(BASE),--base $(BASE))

# OUT: the output folder (default outputs/<preset>, the committed run's).
grid:
	$(BIN)/lottery run $(PRESET) --cores $(CORES) $(if $(OUT),--config outputs_root=$(OUT))

# Snakemake's HTML report of a finished grid: the figures, the results table and the report notebook,
# by stage and task (outputs/<preset>/report.html).
report:
	$(BIN)/lottery report $(PRESET)

# The README's results section, generated from every committed preset's outputs/<preset>/results.csv.
readme-results:
	$(BIN)/lottery readme --readme README.md
