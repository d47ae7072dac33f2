"""Every result of a preset as one tidy long-format table, `outputs/<preset>/results.csv` (and `.parquet`).

One row per number: task, seed, stage, method, subnetwork, setting, metric, value (`COLUMNS`). It is built
from the finished run folders only (`metrics.json` present), so it can be rebuilt at any time, and it is
what the report notebook and the README's results section read. Conventions:
- `seed` is empty for numbers over seeds (stability, attention patterns, the GLUE baselines) and `task`
  is empty for numbers over tasks (the pattern CNN's held-out accuracy);
- `metric` "score" is the task's paper metric on a 0-1 scale (acc, mcc, pearson...); other metrics
  keep the name of the artifact they come from (heads_kept, sparsity, head_kappa, share vertical...);
- the same number may appear under two stages (the good subnetwork's pruned score is written by its
  pruning stage and re-evaluated by the lottery stage): filter on `stage` before aggregating.
"""
from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pandas as pd

from . import runs

COLUMNS = ["task", "seed", "stage", "method", "subnetwork", "setting", "metric", "value"]
CSV_NAME, PARQUET_NAME = "results.csv", "results.parquet"
TEXT_COLUMNS = ["task", "stage", "method", "subnetwork", "setting", "metric"]

FULL, MAJORITY = "full model", "majority class"
FINETUNED, ACROSS_SEEDS = "fine-tuned", "across seeds"
GLUE_BASELINE = "GLUE baseline"
LOTTERY_METRICS = ["score", "heads_kept", "mlps_kept", "weight_share", "sparsity", "epochs"]


def _row(task: str, seed: int | None, stage: str, method: str, subnetwork: str, setting: str, metric: str,
         value: float) -> dict:
    return dict(zip(COLUMNS, (task, seed, stage, method, subnetwork, setting, metric, value)))


def _finetune(folder: Path, task: str, seed: int | None) -> Iterator[dict]:
    m = runs.read_json(folder / "metrics.json")
    yield _row(task, seed, "finetune", FULL, "", FINETUNED, "score", m["dev_score"])
    yield _row(task, seed, "finetune", MAJORITY, "", "", "score", m["majority_baseline"])
    for name in ("final_train_loss", "train_examples", "dev_examples"):
        yield _row(task, seed, "finetune", FULL, "", FINETUNED, name, m[name])


def _pruning(method: str, metrics: tuple[str, ...]) -> Callable[[Path, str, int | None], Iterator[dict]]:
    def extract(folder: Path, task: str, seed: int | None) -> Iterator[dict]:
        m = runs.read_json(folder / "metrics.json")
        stage = folder.name
        yield _row(task, seed, stage, method, "good", "pruned", "score", m["good_score"])
        for name in metrics:
            yield _row(task, seed, stage, method, "good", "pruned", name, m[name])
    return extract


def _lottery(folder: Path, task: str, seed: int | None) -> Iterator[dict]:
    scores = pd.read_csv(folder / "scores.csv")
    for r in scores.to_dict(orient="records"):
        for name in LOTTERY_METRICS:
            yield _row(task, seed, "lottery", r["method"], r["subnetwork"], r["setting"], name, r[name])


def _bad_subnetworks(folder: Path, task: str, seed: int | None) -> Iterator[dict]:
    """The GLUE baseline rows of Table 2 (the other rows are means of the lottery stage's numbers)."""
    from .tables import MAJORITY as T2_MAJORITY, TABLE2_ROWS

    table = pd.read_csv(folder / "table2.csv", index_col=0)
    for name, row in table.drop(index=[T2_MAJORITY, *TABLE2_ROWS], errors="ignore").iterrows():
        for t, value in row.drop("average", errors="ignore").items():
            yield _row(t, None, "bad_subnetworks", GLUE_BASELINE, str(name), "", "score", value)


def _stability(folder: Path, task: str, seed: int | None) -> Iterator[dict]:
    table = pd.read_csv(folder / "stability.csv")
    for r in table.to_dict(orient="records"):
        for name, value in r.items():
            if name != "task":
                yield _row(r["task"], None, "stability", "s-pruning", "good", ACROSS_SEEDS, name, value)


def _attention_patterns(folder: Path, task: str, seed: int | None) -> Iterator[dict]:
    """Pattern shares and counts per map kind (method), head group (subnetwork) and model (setting), the CNN's
    agreement with the rule labeller, and its held-out accuracy on generated maps."""
    stage = "attention_patterns"
    shares = pd.read_csv(folder / "pattern_shares.csv")
    for r in shares.to_dict(orient="records"):
        s = r.get("seed")
        for name in ("share", "count"):
            yield _row(r["task"], s, stage, r["map_kind"], r["group"], r["model"], f"{name} {r['class']}", r[name])
    m = runs.read_json(folder / "metrics.json")
    for r in m.get("agreement", []):
        yield _row(r["task"], r.get("seed"), stage, r["map"], "all heads", r["model"], "cnn_rule_agreement",
                   r["CNN = rule"])
    for kind, value in m.get("cnn_held_out_accuracy", {}).items():
        yield _row("", None, stage, kind, "generated maps", "held out", "cnn_accuracy", value)


EXTRACTORS: dict[str, Callable[[Path, str, int | None], Iterator[dict]]] = {
    "finetune": _finetune,
    "s_pruning": _pruning("s-pruning", ("heads_kept", "mlps_kept", "steps")),
    "m_pruning": _pruning("m-pruning", ("sparsity", "steps")),
    "lottery": _lottery,
    "bad_subnetworks": _bad_subnetworks,
    "stability": _stability,
    "attention_patterns": _attention_patterns,
}


def _place(folder: Path) -> tuple[str, int | None]:
    """(task, seed) of a run folder from its path: `<task>/seed_<n>/<stage>`, `<task>/all_seeds/<stage>`
    (seed None) or `all_tasks/<stage>` (task "")."""
    level, task = folder.parent.name, folder.parent.parent.name
    if level == runs.ALL_TASKS:
        return "", None
    return task, int(level.removeprefix("seed_")) if level.startswith("seed_") else None


def collect(outputs_root: str | Path) -> pd.DataFrame:
    """The tidy table of every finished stage under `outputs_root` (stages without numbers, e.g. the report,
    add none). Missing values (NaN statistics) are left out."""
    rows = []
    for metrics in sorted(runs.resolve(outputs_root).glob("**/metrics.json")):
        extract = EXTRACTORS.get(metrics.parent.name)
        if extract is not None:
            rows.extend(extract(metrics.parent, *_place(metrics.parent)))
    return _typed(pd.DataFrame(rows, columns=COLUMNS))


def _typed(table: pd.DataFrame) -> pd.DataFrame:
    table = table.astype({"seed": "Int64", "value": float})
    table[TEXT_COLUMNS] = table[TEXT_COLUMNS].fillna("").astype(str)
    return table[table["value"].notna()].reset_index(drop=True)


def write(outputs_root: str | Path, table: pd.DataFrame | None = None, parquet: bool = True) -> Path:
    """Write `results.csv` (and `results.parquet`) into `outputs_root`, each through a temporary file and a
    rename; `table` defaults to `collect(outputs_root)`. Returns the CSV's path."""
    root = runs.resolve(outputs_root)
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
    path = runs.resolve(path)
    if path.is_dir():
        path = path / CSV_NAME
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist: write it with `python -m lotterylib.summary "
                                f"{runs.display_path(path.parent)} --table results -o {path}` or run the workflow.")
    if path.suffix == ".parquet":
        return _typed(pd.read_parquet(path))
    return _typed(pd.read_csv(path, keep_default_na=False, na_values={"seed": [""], "value": ["", "NaN", "nan"]}))


def seed_table(results: pd.DataFrame, stage: str, metric: str = "score") -> pd.DataFrame:
    """One stage's `metric` per seed: index task, method, subnetwork, setting; one column per seed."""
    part = results[(results.stage == stage) & (results.metric == metric) & results.seed.notna()]
    keys = ["task", "method", "subnetwork", "setting"]
    return part.pivot_table(index=keys, columns="seed", values="value", sort=False)


def markdown(table: pd.DataFrame, floatfmt: str = ".3f") -> str:
    """A pipe table (GitHub markdown) of a flat table; floats formatted with `floatfmt`, missing values empty."""
    def cell(v: object) -> str:
        if v is None or v is pd.NA or (isinstance(v, float) and np.isnan(v)):
            return ""
        text = f"{v:{floatfmt}}" if isinstance(v, (float, np.floating)) else str(v)
        return text.replace("|", "\\|").replace("\n", " ")
    header = [str(c) for c in table.columns]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in table.itertuples(index=False)]
    return "\n".join(lines) + "\n"
