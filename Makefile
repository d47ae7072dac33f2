# The two set-up commands (README): `make setup`, `make test`. The main job: `make demo`.
PY      ?= python3
VENV    ?= .venv
BIN     := $(VENV)/bin
CORES   ?= 2
PRESET  ?= demo
export HF_HUB_OFFLINE ?= 1
export LOTTERY_GLUE_DIR ?= $(abspath ../shared/data/glue)

.PHONY: setup test test-fast golden demo grid

setup:
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	# torch first and alone: the CPU wheel, not a multi-GB CUDA build pulled in as a dependency.
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e '.[dev]'
	$(BIN)/python -m ipykernel install --sys-prefix --name python3 --display-name "Python 3 (bert-lottery)"

# Unit tests, then the smoke grid through Snakemake, then the golden notebooks (nbval re-runs each with its
# defaults, which read the smoke grid's outputs, and compares the cells marked NBVAL_CHECK_OUTPUT).
test:
	$(BIN)/pytest tests
	$(MAKE) grid PRESET=smoke
	$(BIN)/pytest --nbval-lax --nbval-current-env -p no:cacheprovider notebooks

# Re-execute the golden notebooks in place with their defaults (the smoke values) after changing one.
golden:
	$(MAKE) grid PRESET=smoke
	$(BIN)/jupyter nbconvert --to notebook --execute --inplace notebooks/*.ipynb

test-fast:
	$(BIN)/pytest tests -m "not slow"

demo:
	$(MAKE) grid PRESET=demo

grid:
	$(BIN)/python -m lotterylib.timing estimate --preset $(PRESET) --cores $(CORES)
	$(BIN)/snakemake --snakefile workflow/Snakefile --cores $(CORES) --config preset=$(PRESET) \
	    --rerun-incomplete --keep-going --printshellcmds
	$(BIN)/python -m lotterylib.summary outputs/$(PRESET)
	$(BIN)/python -m lotterylib.timing jobs outputs/$(PRESET)
