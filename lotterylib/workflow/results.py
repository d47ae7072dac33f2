"""Every result of a preset as one tidy long-format table, `outputs/<preset>/results.csv` (and `.parquet`).

One row per number: task, seed, stage, method, subnetwork, setting, component, pattern, metric, value
(`COLUMNS`). It is built from the finished run folders only (`metrics.json` present), so it can be rebuilt at
any time (`python -m lotterylib.workflow.results outputs/<preset>`), and it is what the report notebook and the README's
results section read. Conventions:
- `seed` holds integers; it is empty for numbers over seeds (stability, attention patterns) and `task` is
  empty for numbers over tasks (the pattern CNN's held-out accuracy). Plain pandas reads an integer column
  with empty cells as float: read with `results.read`, or `pd.read_csv(path, dtype={"seed": "Int64"})`;
- variables have their own columns, never a metric's name: `component` is "head" or "mlp" where a number is
  about one of them (kept, total, the stability statistics), `pattern` the attention-pattern class
  (vertical, diagonal, ...) of a share or count; both are "" elsewhere;
- `metric` names are snake_case: "score" is the task's paper metric on a 0-1 scale (acc, mcc, pearson...);
  `score_search` / `score_unseen` the same on the two halves of dev (`selection: split`); the others keep the
  name of the artifact they come from (kept, sparsity, kappa, cochran_q, share, count, ...);
- the literature baselines of Table 2 (CBOW, BiLSTM+ELMo...) are shipped data (`lotterylib.analysis.baselines`), not
  results of a stage, and are not in the table;
- the one road to the tables: notebook 5 and the report (notebook 0) both read this table, through
  `report.frames`. Notebook 5 runs before results.csv is written (stages: lottery -> bad_subnetworks -> ... ->
  results -> report), so it calls `collect` itself on exactly its input run folders (`stages`, `tasks`,
  `seeds`) rather than read the file: the same function gives the same rows, the grid's order stays (a
  results stage before notebook 5 would make Table 2 wait for the stability and attention stages, and the
  rows of stages notebook 5 does not depend on would change with the order jobs finish in);
- the same number may appear under two stages (the good subnetwork's pruned score is written by its
  pruning stage and re-evaluated by the lottery stage): filter on `stage` before aggregating.
"""
from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path

import pandas as pd

from ..analysis.lottery import FINETUNED, FULL
from ..stages import runs
from ..core import files

COLUMNS = ["task", "seed", "stage", "method", "subnetwork", "setting", "component", "pattern", "metric", "value"]
CSV_NAME, PARQUET_NAME = "results.csv", "results.parquet"
TEXT_COLUMNS = ["task", "stage", "method", "subnetwork", "setting", "component", "pattern", "metric"]

MAJORITY, ACROSS_SEEDS, AUTHORS_MASKS = "majority class", "across seeds", "authors' masks"
HEAD, MLP = "head", "mlp"
# The lottery stage's scores.csv columns -> (component, metric); score_search / score_unseen only with
# `selection: split` (absent, or NaN, otherwise).
LOTTERY_METRICS: dict[str, tuple[str, str]] = {
    "score": ("", "score"), "score_search": ("", "score_search"), "score_unseen": ("", "score_unseen"),
    "heads_kept": (HEAD, "kept"), "mlps_kept": (MLP, "kept"), "weight_share": ("", "weight_share"),
    "sparsity": ("", "sparsity"), "epochs": ("", "epochs")}
# Stability statistics whose artifact name is not snake_case.
STABILITY_RENAMES = {"Q": "cochran_q", "p": "cochran_p"}


def _row(task: str, seed: int | None, stage: str, method: str, subnetwork: str, setting: str, metric: str,
         value: float, component: str = "", pattern: str = "") -> dict:
    return dict(zip(COLUMNS, (task, seed, stage, method, subnetwork, setting, component, pattern, metric, value)))


def _finetune(folder: Path, task: str, seed: int | None) -> Iterator[dict]:
    m = files.read_json(folder / "metrics.json")
    yield _row(task, seed, "finetune", FULL, "", FINETUNED, "score", m["dev_score"])
    yield _row(task, seed, "finetune", MAJORITY, "", "", "score", m["majority_baseline"])
    for name in ("final_train_loss", "train_examples", "dev_examples"):
        yield _row(task, seed, "finetune", FULL, "", FINETUNED, name, m[name])


def _pruning(method: str, metrics: Mapping[str, tuple[str, str]]) -> Callable[[Path, str, int | None], Iterator[dict]]:
    def extract(folder: Path, task: str, seed: int | None) -> Iterator[dict]:
        m = files.read_json(folder / "metrics.json")
        stage = folder.name
        yield _row(task, seed, stage, method, "good", "pruned", "score", m["good_score"])
        for name, (component, metric) in metrics.items():
            if name in m:
                yield _row(task, seed, stage, method, "good", "pruned", metric, m[name], component)
    return extract


def _lottery(folder: Path, task: str, seed: int | None) -> Iterator[dict]:
    scores = pd.read_csv(folder / "scores.csv")
    for r in scores.to_dict(orient="records"):
        for name, (component, metric) in LOTTERY_METRICS.items():
            if name in r:
                yield _row(task, seed, "lottery", r["method"], r["subnetwork"], r["setting"], metric, r[name],
                           component)


def stability_key(name: str) -> tuple[str, str]:
    """A column of stability.csv as (component, metric): "head_Q" -> ("head", "cochran_q"), "n_seeds" -> ("", ...)."""
    component, _, rest = name.partition("_")
    if component in (HEAD, MLP) and rest:
        return component, STABILITY_RENAMES.get(rest, rest)
    return "", name


def stability_name(component: str, metric: str) -> str:
    """The inverse of `stability_key`: the stability.csv column name."""
    if not component:
        return metric
    return f"{component}_{ {v: k for k, v in STABILITY_RENAMES.items()}.get(metric, metric)}"


def _stability(folder: Path, task: str, seed: int | None) -> Iterator[dict]:
    """Our masks' statistics (stability.csv) and, where the stage wrote them, the authors' masks'
    (authors_stability.csv, same columns)."""
    for file, setting in (("stability.csv", ACROSS_SEEDS), ("authors_stability.csv", AUTHORS_MASKS)):
        if not (folder / file).is_file():
            continue
        for r in pd.read_csv(folder / file).to_dict(orient="records"):
            for name, value in r.items():
                if name != "task":
                    yield _row(r["task"], None, "stability", "s-pruning", "good", setting,
                               stability_key(name)[1], value, stability_key(name)[0])


AGREEMENT_KEYS = ("rule_agreement", "CNN = rule")  # the share of maps where the CNN's label is the rule's


def _attention_patterns(folder: Path, task: str, seed: int | None) -> Iterator[dict]:
    """Pattern shares and counts per map kind (method), head group (subnetwork), model (setting) and class
    (pattern), the CNN's agreement with the rule labeller, and its held-out accuracy on generated maps."""
    stage = "attention_patterns"
    shares = pd.read_csv(folder / "pattern_shares.csv")
    for r in shares.to_dict(orient="records"):
        for name in ("share", "count"):
            yield _row(r["task"], r.get("seed"), stage, r["map_kind"], r["group"], r["model"], name, r[name],
                       pattern=r["class"])
    m = files.read_json(folder / "metrics.json")
    for r in m.get("agreement", []):
        value = next((r[k] for k in AGREEMENT_KEYS if k in r), None)
        if value is not None:
            yield _row(r["task"], r.get("seed"), stage, r["map"], "all heads", r["model"], "cnn_rule_agreement", value)
    for kind, value in m.get("cnn_held_out_accuracy", {}).items():
        yield _row("", None, stage, kind, "generated maps", "held out", "cnn_accuracy", value)
    if isinstance(m.get("thread_stability"), (int, float)):
        yield _row("", None, stage, "", "all heads", "", "thread_stability", m["thread_stability"])


EXTRACTORS: dict[str, Callable[[Path, str, int | None], Iterator[dict]]] = {
    "finetune": _finetune,
    "s_pruning": _pruning("s-pruning", {"heads_kept": (HEAD, "kept"), "heads_total": (HEAD, "total"),
                                        "mlps_kept": (MLP, "kept"), "mlps_total": (MLP, "total"),
                                        "steps": ("", "steps")}),
    "m_pruning": _pruning("m-pruning", {"sparsity": ("", "sparsity"), "steps": ("", "steps")}),
    "lottery": _lottery,
    "stability": _stability,
    "attention_patterns": _attention_patterns,
}


def _place(folder: Path) -> tuple[str, int | None]:
    """(task, seed) of a run folder from its path: `<task>/seed_<n>/<stage>`, `<task>/all_seeds/<stage>`
    (seed None) or `all_tasks/<stage>` (task "")."""
    level, task = folder.parent.name, folder.parent.parent.name
    if level == files.ALL_TASKS:
        return "", None
    return task, int(level.removeprefix("seed_")) if level.startswith("seed_") else None


def collect(outputs_root: str | Path, stages: Sequence[str] | None = None, tasks: Sequence[str] = (),
            seeds: Sequence[int] = ()) -> pd.DataFrame:
    """The tidy table of the finished stages under `outputs_root` (stages without numbers, e.g. the report,
    add none). Missing values (NaN statistics) are left out. Without `stages`: every finished run folder (what
    results.csv holds). With `stages` (per-seed stages), `tasks` and `seeds`: exactly those run folders, each
    required (a clear error names the first missing one): what a stage that runs before results.csv reads
    (notebook 5)."""
    root = files.resolve(outputs_root)
    if stages is None:
        folders = [m.parent for m in sorted(root.glob("**/metrics.json"))]
    else:
        folders = [runs.stage_dir(root, stage, task, seed) for task in tasks for seed in seeds for stage in stages]
        missing = [f for f in folders if not (f / "metrics.json").is_file()]
        if missing:
            raise runs.missing_run_error(missing[0] / "metrics.json", missing[0].name,
                                           hint=f"{len(missing)} run folder(s) lack it.")
    rows = []
    for folder in folders:
        extract = EXTRACTORS.get(folder.name)
        if extract is not None:
            rows.extend(extract(folder, *_place(folder)))
    return _typed(pd.DataFrame(rows, columns=COLUMNS))


def _typed(table: pd.DataFrame) -> pd.DataFrame:
    table = table.astype({"seed": "Int64", "value": float})
    table[TEXT_COLUMNS] = table[TEXT_COLUMNS].fillna("").astype(str)
    return table[table["value"].notna()].reset_index(drop=True)


def write(outputs_root: str | Path, table: pd.DataFrame | None = None, parquet: bool = True) -> Path:
    """Write `results.csv` (and `results.parquet`) into `outputs_root`, each through a temporary file and a
    rename; `table` defaults to `collect(outputs_root)`. Returns the CSV's path."""
    root = files.resolve(outputs_root)
    table = collect(root) if table is None else table
    root.mkdir(parents=True, exist_ok=True)
    writers = {CSV_NAME: lambda p: table.to_csv(p, index=False)}
    if parquet:
        writers[PARQUET_NAME] = lambda p: table.to_parquet(p, index=False)
    for name, writer in writers.items():
        tmp = root / f".{name}.tmp"
        writer(tmp)
        os.replace(tmp, root / name)
    return root / CSV_NAME


def read(path: str | Path) -> pd.DataFrame:
    """A results table written by `write` (CSV or Parquet; a folder means its results.csv), typed as `collect`
    returns it: seed Int64 (NA over seeds), text columns "" where not applicable."""
    path = files.resolve(path)
    if path.is_dir():
        path = path / CSV_NAME
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist: write it with `python -m lotterylib.workflow.results "
                                f"{files.display_path(path.parent)}` or run the workflow.")
    if path.suffix == ".parquet":
        table = pd.read_parquet(path)
    else:
        table = pd.read_csv(path, keep_default_na=False, na_values={"seed": [""], "value": ["", "NaN", "nan"]})
    missing = [c for c in COLUMNS if c not in table.columns]
    if missing:
        raise ValueError(f"{files.display_path(path)} lacks the columns {missing} (written before they existed): "
                         f"rebuild it from its run folders with `python -m lotterylib.workflow.results "
                         f"{files.display_path(path.parent)}`.")
    return _typed(table)


def seed_table(results: pd.DataFrame, stage: str, metric: str = "score") -> pd.DataFrame:
    """One stage's `metric` per seed: index task, method, subnetwork, setting; one column per seed."""
    part = results[(results.stage == stage) & (results.metric == metric) & results.seed.notna()]
    keys = ["task", "method", "subnetwork", "setting"]
    return part.pivot_table(index=keys, columns="seed", values="value", sort=False)


def markdown(table: pd.DataFrame, floatfmt: str = ".3f") -> str:
    """A pipe table (GitHub markdown, `DataFrame.to_markdown`) of a flat table; floats formatted with
    `floatfmt`, missing values empty, "|" in a cell escaped."""
    text = table.map(lambda v: v.replace("|", "\\|").replace("\n", " ") if isinstance(v, str) else v)
    text = text.astype(object).where(text.notna(), None)
    return text.to_markdown(index=False, floatfmt=floatfmt, missingval="") + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m lotterylib.workflow.results",
                                description="Rebuild a preset's results.csv and results.parquet from its run folders.")
    p.add_argument("outputs_root", help="a preset's output root, e.g. outputs/demo (read only when --to is given)")
    p.add_argument("--to", metavar="FOLDER", help="write the tables into FOLDER instead of outputs_root")
    args = p.parse_args(argv)
    path = write(args.to or args.outputs_root, collect(args.outputs_root))
    print(f"wrote {files.display_path(path)} and {PARQUET_NAME}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
