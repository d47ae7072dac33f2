"""Table 2 (bad subnetworks vs baselines; docs/method.md section 5) and the appendix tables (D: longer
re-fine-tuning, E: super-survivors), from the statistics of `lottery_stats`; notebook 5 and the report
(notebook 0) both build them from the results table (`report.frames`)."""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from . import baselines, reference
from .lottery import M_PRUNING, PRUNED, RANDOM_INIT, REFINETUNED, REFINETUNED_2X, SUPER_SURVIVORS, S_PRUNING

# Table 2: our rows -> (method, subnetwork, setting) in the tidy table, and the paper's experiment name.
TABLE2_ROWS: dict[str, tuple[tuple[str, str, str], str | None]] = {
    "bad s-pruned (re-fine-tuned)": ((S_PRUNING, "bad", REFINETUNED), "head_mlp_bad_1_retrained"),
    "bad m-pruned (re-fine-tuned)": ((M_PRUNING, "bad", REFINETUNED), "global_bad_retrained"),
    "bad m-pruned, authors' rule (re-fine-tuned)": ((M_PRUNING, "bad (authors)", REFINETUNED), None),
    "random init + random s-pruning": ((RANDOM_INIT, "random", REFINETUNED), None),
}
MAJORITY = "majority class"
BAD_ROWS = tuple(r for r in TABLE2_ROWS if r.startswith("bad"))
GLUE_ROWS = tuple(baselines.GLUE_BASELINES)


def table2(stats: pd.DataFrame, refs: pd.DataFrame, baseline_rows: dict[str, dict[str, float]]) -> pd.DataFrame:
    """Table 2: majority class, the GLUE baselines given, bad s- / m-pruned re-fine-tuned and random init +
    random s-pruning (means over seeds), tasks as columns, plus `average` = the macro average over the
    tasks present (NaN for a row that lacks one of them). `stats`: `lottery_stats.seed_stats`, `refs`:
    `lottery_stats.reference_stats`, both of the results table (`report.frames`); `baseline_rows`:
    {model: {task: score}} (`report.folders.load_baselines`). Rows without any number for these tasks are left
    out."""
    tasks = list(refs.index)
    mean = stats.set_index(["method", "subnetwork", "setting", "task"])["mean"]
    rows = {MAJORITY: refs["majority"].to_dict(),
            **{name: {t: v for t, v in row.items() if t in tasks} for name, row in baseline_rows.items()}}
    for name, (key, _) in TABLE2_ROWS.items():
        rows[name] = {t: mean[(*key, t)] for t in tasks if (*key, t) in mean.index}
    table = pd.DataFrame.from_dict({k: v for k, v in rows.items() if v}, orient="index").reindex(columns=tasks)
    table["average"] = macro_average(table)
    return table


def macro_average(table: pd.DataFrame) -> pd.Series:
    """Unweighted mean over the task columns of each row; NaN where a task is missing."""
    return table.mean(axis=1, skipna=False)


def mark_best(table: pd.DataFrame, groups: dict[str, Sequence[str]], fmt: str = ".3f") -> pd.DataFrame:
    """`table` as strings, each group's best value per column marked with the group's symbol (a key of
    `groups`, e.g. {"*": bad rows, "†": baseline rows}); ties are all marked."""
    out = table.map(lambda v: "" if pd.isna(v) else f"{v:{fmt}}")
    for symbol, names in groups.items():
        part = table.loc[[n for n in names if n in table.index]]
        for col in table.columns:
            best = part[col].max()
            if part.empty or pd.isna(best):
                continue
            for name in part.index[part[col] == best]:
                out.loc[name, col] += f" {symbol}"
    return out


def mark_table2(table: pd.DataFrame, baseline_rows: Sequence[str]) -> pd.DataFrame:
    """Table 2 for reading (`mark_best`): the best bad subnetwork per task marked "*", the best of the majority
    class and the baselines `baseline_rows` marked "†"."""
    return mark_best(table, {"*": BAD_ROWS, "†": [MAJORITY, *baseline_rows]})


def table2_paper(tasks: Sequence[str], path: str | Path | None = None) -> pd.DataFrame:
    """The paper's values (bert-base, mean of 5 seeds) for the Table 2 rows `paper_numbers.csv` has:
    majority (`freq_baseline`), bad s- and m-pruned re-fine-tuned. Empty when the file is missing."""
    names = {MAJORITY: "freq_baseline", **{k: e for k, (_, e) in TABLE2_ROWS.items() if e}}
    rows = {}
    for row, exp in names.items():
        values = {t: reference.paper_value(exp, t, path) for t in tasks}
        if any(v is not None for v in values.values()):
            rows[f"{row} (paper)"] = {t: v[0] for t, v in values.items() if v is not None}
    return pd.DataFrame.from_dict(rows, orient="index").reindex(columns=list(tasks))


def appendix_d(stats: pd.DataFrame) -> pd.DataFrame:
    """Bad s-subnetworks re-fine-tuned for the usual and for twice the epochs: mean, std and the gain."""
    part = stats[(stats.method == S_PRUNING) & (stats.subnetwork == "bad")
                 & stats.setting.isin((REFINETUNED, REFINETUNED_2X))]
    if part.setting.nunique() < 2:
        return pd.DataFrame()
    wide = part.pivot_table(index="task", columns="setting", values=["mean", "std"], sort=False, dropna=False)
    wide.columns = [f"{s} {v}" for v, s in wide.columns]
    wide["gain"] = wide[f"{REFINETUNED_2X} mean"] - wide[f"{REFINETUNED} mean"]
    return wide[[f"{REFINETUNED} mean", f"{REFINETUNED} std", f"{REFINETUNED_2X} mean", f"{REFINETUNED_2X} std",
                 "gain"]]


def appendix_e(scores: pd.DataFrame) -> pd.DataFrame:
    """Super-survivors vs bad vs random (Appendix E): mean and std of the score pruned and re-fine-tuned,
    and the mean heads / MLPs kept and weight share, per task and set."""
    part = scores[scores.method == SUPER_SURVIVORS]
    if part.empty:
        return pd.DataFrame()
    score = part.pivot_table(index=["task", "subnetwork"], columns="setting", values="score",
                             aggfunc=["mean", "std"], sort=False, dropna=False)
    score.columns = [f"{s} {a}" for a, s in score.columns]
    size = part.groupby(["task", "subnetwork"], sort=False)[["heads_kept", "mlps_kept", "weight_share"]].mean()
    return size.join(score[[f"{s} {a}" for s in (PRUNED, REFINETUNED) for a in ("mean", "std")]])


def as_record(table: pd.DataFrame) -> dict[str, dict[str, float | None]]:
    """A table as {row: {column: value}} for metrics.json: floats, None where missing."""
    return {str(r): {str(c): (None if pd.isna(v) else float(v)) for c, v in row.items()} for r, row in table.iterrows()}
