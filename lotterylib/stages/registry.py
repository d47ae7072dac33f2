"""The stage registry: every parameter declared once, and one contract per stage.

`PARAMS` declares each parameter once: its name, Python type, default (the smoke value the notebooks run
with), the values it allows (a JSON-schema fragment) and a one-line help text. `STAGES` says, per stage, its
notebook, the level it runs at, the parameters it takes, the stages it reads, the files it shows in
Snakemake's HTML report, how the workflow schedules it and the work it does (`Work`, priced by `timing`).
From these come, generated rather than kept in step by hand:
- the JSON schema of the presets and the notebooks' values (`json_schema`, read by `config`),
- each notebook's `parameters` cell (`parameters_cell`; `lottery notebook-params` writes them, a test checks
  them), so `papermill --help-notebook` documents every parameter with its type, default and help,
- the workflow's rules (workflow/Snakefile loops over `STAGES`).

A stage notebook opens with `job = stages.open("<stage>", globals())` after its imports: the one check of
its values (`lotterylib.stages.open`, the wing's front door). Adding a parameter is one `Param` here, its name in the stages that take it, and a
value in the presets that change it (`lottery notebook-params` then rewrites the notebooks' cells).
"""
from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..core.rules import SETTINGS
from ..core.tasks import TASKS

SEED_MAX = 4294967295

# value kinds, as JSON-schema fragments
COUNT = {"type": "integer", "minimum": 0}
POSITIVE = {"type": "integer", "minimum": 1}
SEED = {"type": "integer", "minimum": 0, "maximum": SEED_MAX}
TASK = {"type": "string", "enum": list(TASKS)}
FRACTION = {"type": "number", "exclusiveMinimum": 0, "maximum": 1}
TEXT = {"type": "string"}
NONEMPTY = {"type": "string", "minLength": 1}
BOOL = {"type": "boolean"}


@dataclass(frozen=True)
class Param:
    """One parameter: `kind` is the notebook's annotation, `default` the smoke value, `spec` the JSON schema
    of one value; `per_task`: a preset may give a mapping {task: value}; `preset_only`: set in a preset or on
    the command line, never a notebook's parameter."""

    name: str
    kind: type
    default: Any
    help: str
    spec: dict[str, Any]
    per_task: bool = False
    preset_only: bool = False

    @property
    def annotation(self) -> str:
        """The annotation in the notebook's cell. bf16 takes true, false or "auto": `bool or str` (papermill
        parses no `|` there, and Python evaluates the annotation of a module-level name)."""
        return "bool or str" if True in self.spec.get("enum", ()) and "auto" in self.spec["enum"] else self.kind.__name__


def _p(name: str, kind: type, default: Any, help: str, spec: dict[str, Any], **kw: Any) -> Param:
    return Param(name, kind, default, help, spec, **kw)


GRID_KEYS = ("tasks", "seeds", "stages")   # a preset's grid: every preset sets them
DISPLAY_ONLY = ("progress",)   # change what a job prints, not what it computes: not recorded, no rerun
WHERE = ("outputs_root",)      # where a run goes, not what it computes: not recorded in its params


@dataclass(frozen=True)
class Work:
    """What one job computes, in the units `timing` prices: training runs of `epochs` over the task's train set
    at the full model's price (`runs`), of them the ones trained under weight masks (`masked`: each step also
    re-applies a mask to every weight), and passes over dev in units of training the same tokens (`dev`);
    `when`: the work a boolean parameter adds when true; `seconds`: a per-preset stage's fixed time."""

    runs: float = 0.0
    masked: float = 0.0
    dev: float = 0.0
    when: dict[str, Work] = field(default_factory=dict)
    seconds: float = 0.0

    def total(self, values: dict[str, Any]) -> Work:
        """The work of a job with these parameter values (a parameter not given takes its default)."""
        runs, masked, dev = self.runs, self.masked, self.dev
        for name, more in self.when.items():
            if values.get(name, PARAMS[name].default):
                runs, masked, dev = runs + more.runs, masked + more.masked, dev + more.dev
        return Work(runs, masked, dev, seconds=self.seconds)


DEV_FORWARD = 1 / 3   # a forward pass costs a third of a training step


@dataclass(frozen=True)
class Stage:
    """A stage: its notebook, the level it runs at (per (task, seed), per task across seeds, or per preset),
    the parameters its notebook takes (its `parameters` cell, in this order), the stages whose results it
    reads (`needs`; `every_seed`: a need read for every seed of the task when the named boolean parameter is
    true; `needs_all`: every other stage of the grid), the files it shows in Snakemake's report, and how the
    workflow runs it (`threads`, `gpu`, `reads_results`: also results.csv)."""

    name: str
    notebook: str
    level: str  # "seed" | "task" | "preset"
    params: tuple[str, ...]
    needs: tuple[str, ...] = ()
    report_files: tuple[str, ...] = ()
    work: Work = Work()
    every_seed: dict[str, str] = field(default_factory=dict)
    needs_all: bool = False
    threads: int = 1
    gpu: bool = False
    reads_results: bool = False


_JOB = ("task", "seed", "model", "glue_dir", "outputs_root")
_DATA = ("max_train_examples", "max_dev_examples", "max_seq_len")
_TRAIN = ("learning_rate", "batch_size", "epochs", "warmup_ratio", "bf16", "group_by_length", "progress")
_SEARCH = ("max_dev_examples", "max_seq_len", "bf16", "progress", "compat")

# Work (checked against the cpu study's CoLA jobs, bf16 on an AMD EPYC with avx512_bf16: the fine-tuning within
# 5%, the lottery within 10%): s-pruning ~12 importance passes (forward + backward to the gates, ~2/3 of a
# training step); m-pruning ~10 forward passes; lottery: the good/random/bad re-fine-tunings of s and of m (the
# m ones under weight masks), a dozen dev evaluations; `both_rules` adds the random s and the bad m under the
# other rule, `extras` six runs (bad s for twice the epochs, random init + random s, three super-survivors).
# An s-subnetwork trains physically pruned yet is priced as the full model: on CoLA the good masks keep 57-69
# of 72 heads, and at short sentences the per-step part that does not shrink with the model dominates (CoLA's
# s re-fine-tunings took as long as its fine-tuning); a degenerate task whose masks keep nothing (WNLI) costs
# less than priced. Per-preset stages: tables and plots only (attention patterns: `timing` prices its CNN
# training from the maps).
STAGES: dict[str, Stage] = {s.name: s for s in [
    Stage("finetune", "notebooks/01_finetune.ipynb", "seed", (*_JOB, *_DATA, *_TRAIN, "selection"),
          report_files=("loss.png",), work=Work(runs=1, dev=DEV_FORWARD), gpu=True),
    Stage("s_pruning", "notebooks/02_structured_pruning.ipynb", "seed",
          (*_JOB, *_SEARCH, "prune_mode", "threshold", "selection"), ("finetune",),
          ("trajectory.png", "good_mask.png"), Work(dev=12 * 2 / 3), gpu=True),
    Stage("m_pruning", "notebooks/03_magnitude_pruning.ipynb", "seed",
          (*_JOB, *_SEARCH, "threshold", "max_steps", "selection"), ("finetune",),
          ("trajectory.png", "survival.png"), Work(dev=10 * DEV_FORWARD), gpu=True),
    Stage("lottery", "notebooks/04_lottery_tests.ipynb", "seed",
          (*_JOB, *_DATA, *_TRAIN, "compat", "extras", "both_rules", "selection"), ("m_pruning", "s_pruning"),
          ("lottery_bars.png",),
          Work(6, 3, 12 * DEV_FORWARD, {"both_rules": Work(2, 1, 4 * DEV_FORWARD), "extras": Work(6, 0, 8 * DEV_FORWARD)}),
          every_seed={"s_pruning": "extras"}, gpu=True),
    Stage("bad_subnetworks", "notebooks/05_bad_subnetworks.ipynb", "preset",
          ("tasks", "seeds", "model", "outputs_root", "compat", "extras", "baselines_csv", "majority_margin",
           "selection"), ("lottery",), ("figure2.png", "table2.csv"), Work(seconds=30.0)),
    Stage("stability", "notebooks/06_stability.ipynb", "preset",
          ("tasks", "seeds", "outputs_root", "masks_dir", "out_dir", "importance_step", "alpha", "n_draws",
           "null_seed", "allow_missing_seeds"), ("s_pruning", "m_pruning"), ("overlap_seeds.png",),
          Work(seconds=30.0)),
    Stage("attention_patterns", "notebooks/07_attention_patterns.ipynb", "preset",
          ("tasks", "seeds", "model", "glue_dir", "outputs_root", "max_seq_len", "examples_per_task", "compat",
           "n_maps_per_class", "cnn_epochs", "cnn_input_size", "cnn_seed", "cnn_ensemble", "authors_archive",
           "progress"), ("s_pruning",), ("rule_vs_cnn.png",), threads=2, gpu=True),
    # last: results.csv and every other stage of the grid; the executed report notebook first in its files
    Stage("report", "notebooks/00_report.ipynb", "preset",
          ("outputs_root", "heldout_root", "good_share", "majority_margin", "close_share", "alpha",
           "degenerate_margin", "floor_margin", "min_agreement", "min_share_difference"),
          report_files=("00_report.ipynb", "figure2.png", "claims.csv"), work=Work(seconds=20.0), needs_all=True,
          reads_results=True),
]}


PARAMS: dict[str, Param] = {p.name: p for p in [
    # --- the preset and its grid
    _p("name", str, "smoke", "the preset's name: its results go to outputs/<name>",
       {"type": "string", "pattern": "^[A-Za-z0-9][A-Za-z0-9_.-]*$"}, preset_only=True),
    _p("preset", str, "smoke", "which preset to start from: a name in params/ or a YAML path (command line only)",
       NONEMPTY, preset_only=True),
    _p("tasks", list, ["SST-2", "STS-B"], "the GLUE tasks of the grid",
       {"type": "array", "minItems": 1, "items": TASK}),
    _p("seeds", list, [1, 2], "the random seeds of the grid (non-negative integers)",
       {"type": "array", "minItems": 1, "items": SEED}),
    _p("stages", list, list(STAGES), "the stages of the grid",
       {"type": "array", "minItems": 1, "items": {"type": "string", "enum": list(STAGES)}}, preset_only=True),
    # --- one job
    _p("task", str, "SST-2", "GLUE task: CoLA, SST-2, MRPC, STS-B, QQP, MNLI, QNLI, RTE or WNLI", TASK),
    _p("seed", int, 1, "random seed: classifier initialisation, data order, the masks and draws of its runs", SEED),
    _p("model", str, "minilm-l6", "hub id (bert-base-uncased), a local model directory, or the offline alias "
       "minilm-l6; an encoder of a supported family: BERT, RoBERTa, XLM-RoBERTa, ELECTRA, DistilBERT or "
       "DeBERTa-v2/v3", NONEMPTY),
    _p("glue_dir", str, "", "folder in the classic GLUE tsv layout; empty: $LOTTERY_GLUE_DIR, else the Hugging "
       "Face hub", TEXT),
    _p("outputs_root", str, "outputs/smoke", "the preset's output root (relative to the project root): run "
       "folders <outputs_root>/<task>/seed_<seed>/<stage>, <outputs_root>/all_tasks/<stage>", NONEMPTY),
    # --- data and training
    _p("max_train_examples", int, 48, "seeded subsample of the train split; 0 for all of it", COUNT, per_task=True),
    _p("max_dev_examples", int, 48, "seeded subsample of the dev split; 0 for all of it", COUNT, per_task=True),
    _p("max_seq_len", int, 64, "tokens per example, longer ones truncated: 8 to 512",
       {"type": "integer", "minimum": 8, "maximum": 512}, per_task=True),
    _p("learning_rate", float, 1e-4, "AdamW learning rate (paper: 2e-5)",
       {"type": "number", "exclusiveMinimum": 0, "maximum": 1}, per_task=True),
    _p("batch_size", int, 16, "training batch size (paper: 32)", POSITIVE, per_task=True),
    _p("epochs", float, 1.0, "training epochs, may be fractional (paper: 3; Appendix D doubles them for the bad "
       "s-subnetwork)", {"type": "number", "exclusiveMinimum": 0}, per_task=True),
    _p("warmup_ratio", float, 0.0, "share of the training steps over which the learning rate rises linearly from 0 "
       "before its linear decay (paper: 0, no warm-up)", {"type": "number", "minimum": 0, "exclusiveMaximum": 1},
       per_task=True),
    _p("bf16", bool, False, "bfloat16 autocast: auto (where the hardware runs it natively and faster), true or false",
       {"enum": ["auto", True, False]}),
    _p("group_by_length", bool, True, "length-grouped random training batches (less padding); false in the paper "
       "preset", BOOL),
    _p("selection", str, "dev", "how pruning masks are chosen: dev (on the dev set, the paper) or split (searches "
       "on one seeded half of dev, scores on the other)", {"type": "string", "enum": ["dev", "split"]}),
    _p("progress", bool, True, "progress in the log: bars (a line every 30 s without a terminal) and a line per "
       "search step; changes no result, reruns nothing", BOOL),
    _p("compat", str, "paper", "paper, or authors: the quirks of the authors' code (docs/method.md)",
       {"type": "string", "enum": list(SETTINGS)}),
    # --- pruning
    _p("prune_mode", str, "joint", "s-pruning: joint (the paper), heads or mlps (Appendix B)",
       {"type": "string", "enum": ["joint", "heads", "mlps"]}),
    _p("threshold", float, 0.9, "keep pruning while the dev score is at least this fraction of the full model's",
       FRACTION, per_task=True),
    _p("max_steps", int, 5, "m-pruning: at most this many steps; 0 for no cap (the paper)", COUNT, per_task=True),
    # --- lottery tests and across tasks
    _p("extras", bool, True, "lottery: also Appendix D (2x epochs), random-init BERT (Table 2) and the "
       "super-survivors (Appendix E)", BOOL),
    _p("both_rules", bool, True, "lottery: also draw and re-fine-tune random s and bad m under the other rule (the "
       "authors' with compat paper), the rows the paper's numbers compare to", BOOL),
    _p("baselines_csv", str, "", "optional CSV with columns model, task, score (0 to 1) for the GLUE baseline "
       "rows; empty: none", TEXT),
    _p("majority_margin", float, 0.5, "re-fine-tuned bad is well above majority when it closes this share of the "
       "gap to full", FRACTION),
    # --- the report
    _p("heldout_root", str, "", "report: output root of the same preset run with selection split (masks chosen "
       "on half of dev); empty: none", TEXT),
    _p("good_share", float, 0.9, "report: the good subnetwork pruned keeps at least this share of the full score",
       FRACTION),
    _p("close_share", float, 0.05, "report: random re-fine-tuned is close to good when at most this share of the "
       "full score below it", FRACTION),
    _p("degenerate_margin", float, 0.05, "report: verdicts leave out a seed whose full model is less than this "
       "above the majority class (score units)", FRACTION),
    _p("floor_margin", float, 0.01, "report: two subnetworks both at most this above the majority class on every "
       "seed are at the floor: cannot tell", FRACTION),
    _p("min_agreement", float, 0.8, "report: Figure 4 verdicts need the pattern CNN and the rule labeller to agree "
       "on this share of maps", FRACTION),
    _p("min_share_difference", float, 0.05, "report: Figure 4 verdicts need two pattern shares to differ by at "
       "least this", FRACTION),
    # --- stability
    _p("masks_dir", str, "", "empty: our own s-pruning masks; else a folder in the authors' layout "
       "<task>/seed_<seed>/head_mask.npy (needs out_dir)", TEXT),
    _p("out_dir", str, "", "where the stability tables, figures and metrics.json go; empty: the run folder", TEXT),
    _p("allow_missing_seeds", bool, False, "stability: analyse a task with the seeds it has (with a warning) "
       "instead of failing", BOOL),
    _p("importance_step", int, 0, "pruning step shown in Figure 3 (0: the unpruned model; clipped to the last "
       "step every seed has)", COUNT),
    _p("alpha", float, 0.05, "significance level of the pairwise Cochran's Q tests (a pair is similar when p is "
       "at least alpha) and of the agreement test against random masks",
       {"type": "number", "exclusiveMinimum": 0, "exclusiveMaximum": 1}),
    _p("n_draws", int, 10000, "stability: random masks of the seeds' sizes drawn per task and kind for the "
       "permutation test of agreement", {"type": "integer", "minimum": 100}),
    _p("null_seed", int, 0, "stability: seed of the permutation test's random masks (same seed, same p-values)", SEED),
    # --- attention patterns
    _p("examples_per_task", int, 8, "dev examples whose attention maps are classified, per task (paper: 100)",
       POSITIVE),
    _p("n_maps_per_class", int, 20, "generated training maps per class for the CNN (ignored with authors_archive)",
       POSITIVE),
    _p("cnn_epochs", int, 4, "CNN training epochs; the best held-out epoch is kept (authors: up to 200)", POSITIVE),
    _p("cnn_input_size", int, 64, "maps are centre-zero-padded, or cropped, to this size for the CNN",
       {"type": "integer", "minimum": 8}),
    _p("cnn_seed", int, 0, "seed of the generated maps, the 80/20 split and the CNN initialisation", SEED),
    _p("cnn_ensemble", int, 2, "CNNs (seeds cnn_seed, cnn_seed + 1, ...) whose soft vote classifies a map", POSITIVE),
    _p("authors_archive", str, "", "optional folder of the authors' labelled maps (raw/labels.txt, "
       "normed/attention_norm_annotated.tsv); empty: generated maps", TEXT),
]}


# --- generated: the schema and the parameters cells ------------------------------------------------------

def json_schema() -> dict[str, Any]:
    """The JSON schema (draft 2020-12) of a preset and of a notebook's values, from `PARAMS`."""
    per_task = {"description": "a per-task value: {task: value}, with a value for every task of the grid",
                "type": "object", "minProperties": 1, "propertyNames": {"$ref": "#/$defs/task"}}

    def prop(p: Param) -> dict[str, Any]:
        if p.per_task:
            return {"description": p.help, "anyOf": [p.spec, {"$ref": "#/$defs/per_task", "additionalProperties": p.spec}]}
        return {"description": p.help, **p.spec}

    return {"$schema": "https://json-schema.org/draft/2020-12/schema", "title": "lotterylib parameters",
            "description": "generated from lotterylib.stages.registry.PARAMS", "type": "object",
            "additionalProperties": False, "$defs": {"task": TASK, "per_task": per_task},
            "properties": {name: prop(p) for name, p in PARAMS.items()}}


def _literal(value: Any) -> str:
    return repr(value).replace("'", '"')


def parameters_cell(stage: str) -> str:
    """A stage notebook's `parameters` cell: `name: type = default  # help`, one line per parameter."""
    return "\n".join(f"{p.name}: {p.annotation} = {_literal(p.default)}  # {p.help}"
                     for p in (PARAMS[n] for n in STAGES[stage].params))


def nearest_parameter(name: str) -> str:
    """` (did you mean `x`?)` for the declared parameter nearest `name`, or nothing."""
    close = difflib.get_close_matches(name, list(PARAMS), n=1)
    return f" (did you mean `{close[0]}`?)" if close else ""


# --- the notebooks' parameters cells, kept generated --------------------------------------------------------

def stale_parameters_cells(root: Path | None = None, write: bool = False) -> list[str]:
    """The stage notebooks whose `parameters` cell is not `parameters_cell`'s (with `write`, rewritten, their
    other cells and outputs kept); `root`: the project checkout (default: this one)."""
    import nbformat

    from ..core.files import PROJECT_ROOT

    stale = []
    for name, spec in STAGES.items():
        path = (root or PROJECT_ROOT) / spec.notebook
        nb = nbformat.read(path, as_version=4)
        cell = next(c for c in nb.cells if "parameters" in c.metadata.get("tags", []))
        if cell.source != parameters_cell(name):
            stale.append(spec.notebook)
            if write:
                cell.source = parameters_cell(name)
                nbformat.write(nb, path)
    return stale
