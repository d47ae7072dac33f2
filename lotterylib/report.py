"""The report of one preset (`notebooks/00_report.ipynb`): the paper's tables and figures rebuilt from the
preset's results table (`lotterylib.results`), ours next to the paper's in terms that do not depend on the
model's scale, a checklist of the paper's claims with a verdict per task, and the report's opening and closing
paragraphs, generated from the preset and its numbers. Nothing here trains. docs/method.md ("The report")
states every rule below in words.

Verdicts. A claim about scores is a per-seed difference d_i that the claim says is positive (e.g. good minus
random, pruned). With n >= 2 seeds the 95% t-interval of the mean difference decides: entirely above 0 "holds",
entirely at or below 0 "does not hold", otherwise (and always with one seed) "cannot tell with n seeds".
Before that: degenerate seeds are left out and named (`degenerate_seeds`), a comparison of two subnetworks
that both sit at the majority floor on every seed is "at the floor: cannot tell", and a claim that the search's
own rule guarantees on the data it is scored on is labelled "holds by construction".
"""
from __future__ import annotations

import argparse
import io
import re
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats as scipy_stats

from . import baselines, lottery, lottery_stats, reference, results, runs, stability, tables
from .lottery import M, PRUNED, REFINETUNED, S
from .verdicts import FAILS, HOLDS, cannot_tell

VERDICT_COLUMNS = ["claim", "task", "verdict", "seeds", "numbers", "left out"]
BY_CONSTRUCTION = "holds by construction (masks chosen and scored on the same dev data)"
AT_FLOOR = "at the floor: cannot tell"
STABILITY_PREDATES = "cannot tell: stability stage predates the permutation test"
README_START, README_END = "<!-- results:start -->", "<!-- results:end -->"
SCORE = "score"
CI_PRESET = "smoke"  # rebuilt by `make test`, never committed: not in the README

# Defaults of the report's rules (the notebook's parameters; docs/method.md, "The report").
DEGENERATE_MARGIN = 0.05   # a full model less than this above the majority class (score units) is degenerate
FLOOR_MARGIN = 0.01        # a score at most this above the majority class sits at the floor
MIN_AGREEMENT = 0.8        # Figure 4 verdicts need the CNN and the rule labeller to agree on this share of maps
MIN_SHARE_DIFFERENCE = 0.05  # ... and two pattern shares to differ by at least this much


def interval(diffs: Sequence[float], confidence: float = 0.95) -> tuple[float, float, float]:
    """Mean of paired per-seed differences and its two-sided t-interval (NaN bounds for fewer than 2 values;
    a zero-width interval when all differences are equal)."""
    d = np.asarray(diffs, dtype=float)
    d = d[np.isfinite(d)]
    if len(d) < 2:
        return (float(d.mean()) if len(d) else np.nan), np.nan, np.nan
    half = scipy_stats.t.ppf(0.5 + confidence / 2, len(d) - 1) * d.std(ddof=1) / np.sqrt(len(d))
    return float(d.mean()), float(d.mean() - half), float(d.mean() + half)


def verdict(diffs: Sequence[float], confidence: float = 0.95) -> str:
    """"holds" / "does not hold" / "cannot tell with n seeds" for a claim that the differences are positive."""
    n = int(np.isfinite(np.asarray(diffs, dtype=float)).sum())
    _, low, high = interval(diffs, confidence)
    if n >= 2 and low > 0:
        return HOLDS
    if n >= 2 and high <= 0:
        return FAILS
    return cannot_tell(n)


def combine(verdicts: Sequence[str]) -> str:
    """A claim made of several parts: it holds if every part holds, fails if any part fails, else cannot tell."""
    if any(v == FAILS for v in verdicts):
        return FAILS
    if all(v == HOLDS for v in verdicts):
        return HOLDS
    return next(v for v in verdicts if v != HOLDS)


def tally(verdicts: pd.Series) -> dict[str, int]:
    """How many verdicts of each kind: every "cannot tell ..." (and "at the floor") counted as "cannot tell",
    "holds by construction (...)" as "holds by construction"."""
    kinds = verdicts.str.replace(r"^(cannot tell|at the floor).*", "cannot tell", regex=True)
    kinds = kinds.str.replace(r"^holds by construction.*", "holds by construction", regex=True)
    return kinds.value_counts().to_dict()


# --- the results table in the lottery module's shapes ------------------------------------------------------

def lottery_scores(res: pd.DataFrame, with_full: bool = False) -> pd.DataFrame:
    """The lottery stage's rows as `lottery.SCORE_COLUMNS` (one row per task, seed, method, subnetwork, setting),
    plus `score_search` and `score_unseen` where the run has them (`selection: split`). A split run's lottery
    stage also scores the whole fine-tuned model on both halves (method `lottery.FULL`): that row is kept only
    `with_full` (the held-out tables), never among the subnetworks."""
    part = res[(res.stage == "lottery") & res.seed.notna()]
    if not with_full:
        part = part[part.method != lottery.FULL]
    part = part.assign(metric=np.where(part.component == "", part.metric, part.component + "s_" + part.metric))
    keys = ["task", "seed", "method", "subnetwork", "setting"]
    wide = part.pivot_table(index=keys, columns="metric", values="value", sort=False).reset_index()
    wide["seed"] = wide["seed"].astype(int)
    extra = [c for c in ("score_search", "score_unseen") if c in wide]
    return wide.reindex(columns=[*lottery.SCORE_COLUMNS, *extra])


def finetune_scores(res: pd.DataFrame) -> pd.DataFrame:
    """task, seed, full (the fine-tuned model's score) and majority (the majority-class baseline)."""
    part = res[(res.stage == "finetune") & (res.metric == SCORE)]
    wide = part.pivot_table(index=["task", "seed"], columns="method", values="value", sort=False)
    wide = wide.rename(columns={results.FULL: "full", results.MAJORITY: "majority"}).reset_index()
    wide = wide.reindex(columns=["task", "seed", "full", "majority"])
    return wide.astype({"seed": int, "full": float, "majority": float})


def glue_baselines(outputs_root: str | Path) -> dict[str, dict[str, float]]:
    """The GLUE baseline rows of Table 2 (shipped data, `tables.load_baselines`), with the `baselines_csv` the
    bad_subnetworks stage recorded, if any: {model: {task: score}}."""
    params = runs.stage_dir(outputs_root, "bad_subnetworks") / "params.json"
    csv = runs.read_json(params)["params"].get("baselines_csv", "") if params.is_file() else ""
    return tables.load_baselines(csv)


def table2(res: pd.DataFrame, outputs_root: str | Path) -> pd.DataFrame:
    """Table 2 (majority, GLUE baselines, bad s/m re-fine-tuned, random init) from the results table."""
    scores = lottery_scores(res)
    refs = lottery_stats.reference_stats(finetune_scores(res))
    rows = {name: {t: v for t, v in row.items() if t in refs.index} for name, row in glue_baselines(outputs_root).items()}
    return tables.table2(lottery_stats.seed_stats(scores), refs, rows)


def table2_notes(tasks: Sequence[str], train_examples: Mapping[str, int] | None = None) -> list[str]:
    """What a reader of Table 2 must know about the rows shown for `tasks`: the corrected misprints of the
    paper's values, that the GLUE baselines are full-data models, and how the STS-B "majority" differs."""
    notes = []
    for (row, task), (printed, used) in baselines.TABLE2_MISPRINTS.items():
        if task in tasks:
            notes.append(f"{row}, {task}: the paper prints {printed}, a misprint; the value used is {used} "
                         "(docs/method.md, \"Table 2: two misprints corrected\").")
    sizes = ", ".join(f"{t} {n}" for t, n in (train_examples or {}).items() if n)
    notes.append("The GLUE baselines (CBOW, BiLSTM+GloVe, BiLSTM+ELMo) are the GLUE paper's models trained on the "
                 "full training sets" + (f"; ours trained on {sizes} examples." if sizes else "."))
    if "STS-B" in tasks:
        paper = reference.paper_value("freq_baseline", "STS-B")
        paper_text = f" ({paper[0]:.3f})" if paper else ""
        notes.append("STS-B \"majority\": ours is a constant prediction (the training mean), whose Pearson "
                     "correlation is 0; the paper's is random normal predictions" + paper_text + ".")
    return notes


def stability_table(res: pd.DataFrame, setting: str = results.ACROSS_SEEDS) -> pd.DataFrame:
    """Per task: the stability stage's numbers under stability.csv's column names (head_kappa, head_Q, ...);
    `setting` `results.AUTHORS_MASKS` gives those of the authors' own masks, where the stage computed them."""
    part = res[(res.stage == "stability") & (res.setting == setting)]
    part = part.assign(metric=[results.stability_name(c, m) for c, m in zip(part.component, part.metric)])
    return part.pivot_table(index="task", columns="metric", values="value", sort=False)


def pattern_shares(res: pd.DataFrame) -> pd.DataFrame:
    """Figure 4's input (`plots.pattern_distribution`): task, map_kind, group, model, class, count, share,
    counts summed over seeds where the table has several."""
    part = res[(res.stage == "attention_patterns") & (res.metric == "count")]
    out = part.assign(map_kind=part.method, group=part.subnetwork, model=part.setting, **{"class": part.pattern})
    keys = ["task", "map_kind", "group", "model"]
    out = out.groupby([*keys, "class"], sort=False)["value"].sum().rename("count").reset_index()
    out["share"] = out["count"] / out.groupby(keys)["count"].transform("sum")
    return out


# --- degenerate seeds --------------------------------------------------------------------------------------

def degenerate_seeds(res: pd.DataFrame, margin: float = DEGENERATE_MARGIN) -> pd.DataFrame:
    """The (task, seed)s left out of the verdicts, with why: a full model less than `margin` above the majority
    class (it learned next to nothing, so every subnetwork of it sits at the floor), or a search that pruned
    nothing (s-pruning kept every head and MLP, or m-pruning reached sparsity 0: there is no subnetwork)."""
    why: dict[tuple[str, int], list[str]] = {}
    for r in finetune_scores(res).itertuples():
        if r.full - r.majority < margin:
            why.setdefault((r.task, r.seed), []).append(
                f"full {r.full:.3f}, less than {margin} above the majority class {r.majority:.3f}")
    s = res[(res.stage == "s_pruning") & res.component.isin([results.HEAD, results.MLP]) & res.seed.notna()]
    s = s.pivot_table(index=["task", "seed"], columns=["component", "metric"], values="value")
    if {(results.HEAD, "total"), (results.MLP, "total")} <= set(s.columns):
        for (task, seed), r in s.iterrows():
            if r[(results.HEAD, "kept")] == r[(results.HEAD, "total")] and r[(results.MLP, "kept")] == r[(results.MLP, "total")]:
                why.setdefault((task, int(seed)), []).append("s-pruning kept every head and MLP")
    m = res[(res.stage == "m_pruning") & (res.metric == "sparsity") & res.seed.notna()]
    for r in m[m.value == 0].itertuples():
        why.setdefault((r.task, int(r.seed)), []).append("m-pruning pruned nothing")
    rows = [{"task": t, "seed": s_, "reason": "; ".join(v)} for (t, s_), v in sorted(why.items())]
    return pd.DataFrame(rows, columns=["task", "seed", "reason"])


def _left_out(degenerate: pd.DataFrame, task: str) -> str:
    part = degenerate[degenerate.task == task]
    return "; ".join(f"seed {r.seed} ({r.reason})" for r in part.itertuples())


# --- ours next to the paper's, like for like ---------------------------------------------------------------

# Why a row is not like for like (`lottery_stats.like_for_like`): the published number used the authors' rule.
AUTHORS_RULES = {(S, "random"): "the paper's random s-masks are Bernoulli draws (the authors' rule)",
                 (M, "bad"): "the paper's bad m-masks keep the smallest weights (the authors' rule)"}
REFERENCE_EXPERIMENTS = {results.FULL: "no_mask", results.MAJORITY: "freq_baseline"}


def gap_shares(res: pd.DataFrame, margin: float = DEGENERATE_MARGIN) -> pd.DataFrame:
    """Per task, seed, method, subnetwork and setting: the subnetwork's share of the full-minus-majority gap,
    (score - majority) / (full - majority), with that seed's full model and majority class. 1 is the full
    model, 0 the majority class. NaN for a seed whose gap is under `margin` (a degenerate full model: dividing
    by a gap near 0 gives meaningless shares)."""
    scores = lottery_scores(res)[["task", "seed", "method", "subnetwork", "setting", SCORE]]
    out = scores.merge(finetune_scores(res), on=["task", "seed"])
    gap = (out.full - out.majority).where(out.full - out.majority >= margin)
    return out.assign(gap_share=(out[SCORE] - out.majority) / gap)


def _paper_gap_share(experiment: str, task: str, path: str | Path | None) -> float:
    value, full, majority = (reference.paper_value(e, task, path) for e in (experiment, "no_mask", "freq_baseline"))
    if value is None or full is None or majority is None or full[0] <= majority[0]:
        return np.nan
    return (value[0] - majority[0]) / (full[0] - majority[0])


def paper_comparison(res: pd.DataFrame, compat: str = "paper", path: str | Path | None = None) -> pd.DataFrame:
    """Per task and row the paper has (full model, majority class, each subnetwork and setting): our mean and
    std over seeds next to the paper's (bert-base, full data, 5 seeds), absolute, and each side's share of its
    own full-minus-majority gap (ours: mean and std over seeds of the per-seed share; the paper's: from its
    means, no per-seed scores exist). No difference across the two models is computed: they differ by design.
    `like for like` is false where the paper's number came from the authors' rule and this run's row from the
    paper's text (`compat`). Empty without `paper_numbers.csv`."""
    if reference.paper_numbers(path) is None:
        return pd.DataFrame()
    fine = finetune_scores(res).rename(columns={"full": results.FULL, "majority": results.MAJORITY})
    refs = fine.melt(id_vars=["task", "seed"], var_name="method", value_name=SCORE).assign(subnetwork="", setting="")
    side = lottery_stats.with_paper(lottery_stats.seed_stats(pd.concat([refs, lottery_scores(res)], ignore_index=True)),
                                    path, compat)
    for method, experiment in REFERENCE_EXPERIMENTS.items():
        rows = side.method == method
        values = [reference.paper_value(experiment, t, path) or (np.nan, np.nan) for t in side.task[rows]]
        side.loc[rows, ["paper_mean", "paper_std"]] = values
    side = side[side.paper_mean.notna()].reset_index(drop=True)
    keys = ["task", "method", "subnetwork", "setting"]
    ours = gap_shares(res).groupby(keys, sort=False)["gap_share"].agg(**{"ours gap share": "mean",
                                                                       "ours gap share std": "std"})
    side = side.merge(ours.reset_index(), on=keys, how="left")
    side.loc[side.method == results.FULL, "ours gap share"] = 1.0
    side.loc[side.method == results.MAJORITY, "ours gap share"] = 0.0
    side["paper gap share"] = [
        1.0 if m == results.FULL else 0.0 if m == results.MAJORITY else
        _paper_gap_share(lottery_stats.PAPER_EXPERIMENTS[(m, lottery.split_rule(n)[0], s)], t, path)
        for t, m, n, s in side[keys].itertuples(index=False)]
    side = side.rename(columns={"mean": "ours mean", "std": "ours std", "paper_mean": "paper mean",
                                "paper_std": "paper std", "like_for_like": "like for like"})
    side["note"] = ["" if ok else AUTHORS_RULES[(m, lottery.split_rule(n, compat)[0])]
                    for m, n, ok in zip(side.method, side.subnetwork, side["like for like"])]
    return _by_task(side[[*keys, "seeds", "ours mean", "ours std", "paper mean", "paper std", "ours gap share",
                          "ours gap share std", "paper gap share", "like for like", "note"]])


def _by_task(table: pd.DataFrame) -> pd.DataFrame:
    """Rows grouped by task in order of first appearance, the order within a task kept."""
    order = {t: i for i, t in enumerate(dict.fromkeys(table.task))}
    return table.sort_values("task", key=lambda t: t.map(order), kind="stable").reset_index(drop=True)


def _mean_std(mean: float, std: float, fmt: str = ".3f") -> str:
    if pd.isna(mean):
        return ""
    return f"{mean:{fmt}}" if pd.isna(std) else f"{mean:{fmt}} ± {std:{fmt}}"


def comparison_view(comparison: pd.DataFrame) -> pd.DataFrame:
    """`paper_comparison` for reading: per task and row, ours and the paper's as "mean ± std", each side's share
    of its full-minus-majority gap, and whether the row is like for like."""
    keys = ["task", "method", "subnetwork", "setting"]
    c = comparison
    return c[keys].assign(
        seeds=c.seeds,
        ours=[_mean_std(m, s) for m, s in zip(c["ours mean"], c["ours std"])],
        paper=[_mean_std(m, s) for m, s in zip(c["paper mean"], c["paper std"])],
        **{"ours: share of gap": [_mean_std(m, s, ".2f") for m, s in zip(c["ours gap share"], c["ours gap share std"])],
           "paper: share of gap": [_mean_std(m, np.nan, ".2f") for m in c["paper gap share"]],
           "like for like": c["like for like"].map({True: "yes", False: "no"})}).set_index(keys)


def comparison_notes(res: pd.DataFrame, comparison: pd.DataFrame, good_share: float = 0.9) -> list[str]:
    """Sentences under the comparison: which rows are not like for like and whether this run has the
    authors'-rule row to compare instead; where the majority class leaves the 90% bar little headroom."""
    notes = []
    subnetworks = set(lottery_scores(res).subnetwork)
    for note, rows in comparison[~comparison["like for like"]].groupby("note", sort=False):
        base = lottery.split_rule(rows.subnetwork.iloc[0])[0]
        other = next((n for n in subnetworks if lottery.split_rule(n)[0] == base and n != rows.subnetwork.iloc[0]), None)
        notes.append(f"Not like for like ({rows.method.iloc[0]} {base}): {note}; "
                     + (f"compare the `{other}` row." if other else
                        "this run drew the paper's rule only (`both_rules` off), so no row here is like for like."))
    for task, row in headroom(res, good_share).iterrows():
        if row.bar_share < 0.5:
            notes.append(f"{task}: little headroom. {good_share:.0%} of full ({row.bar:.3f}) is only "
                         f"{row.bar_share:.0%} of the gap above the majority class ({row.majority:.3f}): a mask "
                         "that passes the search's bar may have lost most of what fine-tuning added.")
    return notes


def headroom(res: pd.DataFrame, good_share: float = 0.9) -> pd.DataFrame:
    """Per task (means over seeds): full, majority, the search's bar `good_share` x full, and the bar's place in
    the full-minus-majority gap, (bar - majority) / (full - majority)."""
    ref = finetune_scores(res).groupby("task", sort=False)[["full", "majority"]].mean()
    ref["bar"] = good_share * ref.full
    ref["bar_share"] = (ref.bar - ref.majority) / (ref.full - ref.majority).where(ref.full > ref.majority)
    return ref


def _order(values: Mapping[str, float]) -> str:
    """"good > random > bad" style: the subnetworks by decreasing value ("=" for equal values)."""
    items = sorted(values.items(), key=lambda kv: -kv[1])
    text = items[0][0]
    for (_, a), (name, b) in zip(items, items[1:]):
        text += f" {'=' if np.isclose(a, b) else '>'} {name}"
    return text


def orderings(res: pd.DataFrame, path: str | Path | None = None) -> pd.DataFrame:
    """Per task, method (s, m) and setting: the order of good, random and bad by our means and by the paper's,
    and in how many of our seeds the order is the paper's claim "good > random > bad"."""
    scores = lottery_scores(res)
    scores = scores[scores.method.isin((S, M)) & scores.subnetwork.isin(lottery.SUBNETWORKS)]
    rows = []
    for (task, method, setting), part in scores.groupby(["task", "method", "setting"], sort=False):
        wide = part.pivot_table(index="seed", columns="subnetwork", values=SCORE)
        if set(wide.columns) != set(lottery.SUBNETWORKS):
            continue
        ordered = ((wide.good > wide.random) & (wide.random > wide.bad)).sum()
        paper = {n: reference.paper_value(lottery_stats.PAPER_EXPERIMENTS[(method, n, setting)], task, path)
                 for n in lottery.SUBNETWORKS}
        rows.append({"task": task, "method": method, "setting": setting, "ours": _order(wide.mean().to_dict()),
                     "seeds good > random > bad": f"{ordered}/{len(wide)}",
                     "paper": _order({n: v[0] for n, v in paper.items()}) if all(paper.values()) else ""})
    return pd.DataFrame(rows, columns=["task", "method", "setting", "ours", "seeds good > random > bad", "paper"])


def mask_sizes(res: pd.DataFrame) -> pd.DataFrame:
    """Per task, the good masks' sizes (mean ± std over seeds): heads and MLPs kept by s-pruning as shares of
    all heads and MLPs, the weight share each method keeps, and Fleiss' kappa of the heads across seeds; and,
    where the stability stage computed them, the authors' masks' (bert-base, 5 seeds) mean shares of heads and
    MLPs kept (their `survival`) and head kappa. The paper's weight shares are not in the shipped data."""
    s = res[(res.stage == "s_pruning") & res.component.isin([results.HEAD, results.MLP])]
    s = s.pivot_table(index=["task", "seed"], columns=["component", "metric"], values="value")
    lot = lottery_scores(res)
    good = lot[(lot.subnetwork == "good") & (lot.setting == PRUNED)]
    weight = good.pivot_table(index=["task", "seed"], columns="method", values="weight_share")
    ours, authors = stability_table(res), stability_table(res, results.AUTHORS_MASKS)
    rows = []
    for task in dict.fromkeys(lot.task):
        row = {"task": task}
        for kind, name in ((results.HEAD, "heads kept"), (results.MLP, "MLPs kept")):
            if (kind, "total") in s.columns and task in s.index.get_level_values(0):
                share = s.loc[task, (kind, "kept")] / s.loc[task, (kind, "total")]
                row[name] = _mean_std(share.mean(), share.std(), ".2f")
        for method in (S, M):
            if method in weight.columns and task in weight.index.get_level_values(0):
                row[f"{method[0]}: weights kept"] = _mean_std(weight.loc[task, method].mean(),
                                                              weight.loc[task, method].std(), ".2f")
        for name, column in (("heads kept, authors' masks", "head_survival"), ("MLPs kept, authors' masks", "mlp_survival"),
                             ("head kappa, ours", "head_kappa"), ("head kappa, authors' masks", "head_kappa")):
            table = authors if "authors" in name else ours
            row[name] = f"{table.loc[task, column]:.2f}" if column in table and task in table.index else ""
        rows.append(row)
    return pd.DataFrame(rows).fillna("")


# --- the claims checklist ----------------------------------------------------------------------------------

def _per_seed(scores: pd.DataFrame, fine: pd.DataFrame, task: str, metric: str = SCORE) -> pd.DataFrame:
    """One task: `metric` per seed (rows) for every (method, subnetwork, setting) (columns), plus full and majority."""
    part = scores[scores.task == task]
    wide = part.pivot_table(index="seed", columns=["method", "subnetwork", "setting"], values=metric)
    ref = fine[fine.task == task].set_index("seed")[["full", "majority"]]
    wide.columns = [" ".join(c) for c in wide.columns]
    return wide.join(ref, how="inner")


def _col(wide: pd.DataFrame, method: str, sub: str, setting: str) -> pd.Series:
    name = f"{method} {sub} {setting}"
    return wide[name] if name in wide else pd.Series(np.nan, index=wide.index)


def _fmt(values: pd.Series) -> str:
    return "/".join(f"{v:.3f}" for v in values)


def _at_floor(values: pd.Series, majority: pd.Series, floor_margin: float) -> bool:
    ok = values.notna()
    return bool(ok.any() and (values[ok] <= majority[ok] + floor_margin).all())


def _row(claim: str, task: str, parts: Sequence[tuple[pd.Series, bool]], numbers: str, left_out: str = "") -> dict:
    """A checklist row from its parts: (per-seed differences, whether both sides sit at the floor)."""
    v = combine([AT_FLOOR if floor else verdict(d) for d, floor in parts])
    n = min(int(d.notna().sum()) for d, _ in parts)
    intervals = "; ".join("mean diff {:+.3f} [{:+.3f}, {:+.3f}]".format(*interval(d.dropna())) for d, _ in parts)
    return {"claim": claim, "task": task, "verdict": v, "seeds": n, "numbers": f"{numbers}; {intervals}",
            "left out": left_out}


def score_claims(res: pd.DataFrame, good_share: float = 0.9, majority_margin: float = 0.5,
                 close_share: float = 0.05, selection: str = "dev", degenerate_margin: float = DEGENERATE_MARGIN,
                 floor_margin: float = FLOOR_MARGIN) -> pd.DataFrame:
    """The checklist rows of the lottery claims per task (`VERDICT_COLUMNS`); per-seed numbers as a/b/c.
    Degenerate seeds (`degenerate_seeds`) are left out and named. "good pruned keeps >= 90% of full" holds by
    construction where the masks were chosen on the data they are scored on (`selection` "dev"); with
    `selection` "split" the scores are on the half the searches did not see (`unseen_scores`), and it is tested."""
    scores = unseen_scores(res, selection) if selection == "split" else lottery_scores(res)
    fine, degenerate = finetune_scores(res), degenerate_seeds(res, degenerate_margin)
    rooms = headroom(res, good_share).bar_share
    rows = []
    for task in dict.fromkeys(scores.task):
        left_out, drop = _left_out(degenerate, task), degenerate.seed[degenerate.task == task]
        w = _per_seed(scores, fine, task).drop(index=drop, errors="ignore")
        share = _per_seed(scores, fine, task, "sparsity").drop(index=drop, errors="ignore")
        full, maj = w["full"], w["majority"]
        for method in (S, M):
            good = _col(w, method, "good", PRUNED)
            numbers = f"good {_fmt(good)} vs full {_fmt(full)}"
            if rooms[task] < 0.5:
                numbers += (f"; little headroom: {good_share:.0%} of full is only {rooms[task]:.0%} of the gap "
                            "above the majority class")
            row = _row(f"{method[0]}: good pruned keeps >= {good_share:.0%} of full", task,
                       [(good - good_share * full, False)], numbers, left_out)
            if selection == "dev":
                row["verdict"] = BY_CONSTRUCTION
            rows.append(row)
        s_sp, m_sp = _col(share, S, "good", PRUNED), _col(share, M, "good", PRUNED)
        rows.append(_row("m-pruning compresses more than s-pruning (sparsity)", task, [(m_sp - s_sp, False)],
                         f"m {_fmt(m_sp)} vs s {_fmt(s_sp)}", left_out))
        for method in (S, M):
            g, r, b = (_col(w, method, n, PRUNED) for n in lottery.SUBNETWORKS)
            rows.append(_row(f"{method[0]} pruned: good > random > bad", task,
                             [(g - r, _at_floor(g, maj, floor_margin) and _at_floor(r, maj, floor_margin)),
                              (r - b, _at_floor(r, maj, floor_margin) and _at_floor(b, maj, floor_margin))],
                             f"good {_fmt(g)}, random {_fmt(r)}, bad {_fmt(b)}, majority {_fmt(maj)}", left_out))
        g, r = _col(w, S, "good", REFINETUNED), _col(w, S, "random", REFINETUNED)
        rows.append(_row(f"s re-fine-tuned: random close to good (within {close_share:.0%} of full, or better)",
                         task, [(r - (g - close_share * full), _at_floor(g, maj, floor_margin) and _at_floor(r, maj, floor_margin))],
                         f"good {_fmt(g)}, random {_fmt(r)}", left_out))
        bad = _col(w, S, "bad", REFINETUNED)
        rows.append(_row(f"s: bad re-fine-tuned well above majority (closes >= {majority_margin:.0%} of the gap "
                         "to full)", task, [(bad - (maj + majority_margin * (full - maj)), False)],
                         f"bad {_fmt(bad)}, majority {_fmt(maj)}, full {_fmt(full)}", left_out))
    return pd.DataFrame(rows, columns=VERDICT_COLUMNS)


def unseen_scores(split: pd.DataFrame, selection: str) -> pd.DataFrame:
    """The lottery scores of a run on the half of dev the searches did not see: `score_unseen` where the run has
    it; elsewhere, in a `selection: split` run, its `score`, which is on that half too (older split runs, and
    the rows without the two per-half scores). Empty for a `selection: dev` run without `score_unseen`."""
    scores = lottery_scores(split)
    unseen = scores.score_unseen if "score_unseen" in scores else pd.Series(np.nan, index=scores.index)
    if selection == "split":
        return scores.assign(score=unseen.fillna(scores[SCORE]))
    return scores.assign(score=unseen).dropna(subset=[SCORE])


def _unseen_full(split: pd.DataFrame, fine: pd.DataFrame) -> pd.DataFrame:
    """`finetune_scores` with `full` replaced by the full model's score on the unseen half where the lottery stage
    measured it (a split run's `lottery.FULL` row), so that the 90% share compares like with like."""
    full = lottery_scores(split, with_full=True)
    full = full[full.method == lottery.FULL]
    if "score_unseen" not in full or full.empty:
        return fine
    unseen = full.set_index(["task", "seed"]).score_unseen
    key = pd.MultiIndex.from_frame(fine[["task", "seed"]])
    return fine.assign(full=unseen.reindex(key).fillna(fine.set_index(["task", "seed"])["full"]).to_numpy())


def heldout_claims(split: pd.DataFrame, selection: str, good_share: float = 0.9,
                   degenerate_margin: float = DEGENERATE_MARGIN) -> pd.DataFrame:
    """"good pruned keeps >= 90% of full" where it is not by construction: scored on the half of dev the
    searches did not see (`unseen_scores` of a split run, with its full model on that half)."""
    scores, fine = unseen_scores(split, selection), _unseen_full(split, finetune_scores(split))
    degenerate = degenerate_seeds(split, degenerate_margin)
    rows = []
    for task in dict.fromkeys(scores.task):
        w = _per_seed(scores, fine, task).drop(index=degenerate.seed[degenerate.task == task], errors="ignore")
        for method in (S, M):
            good = _col(w, method, "good", PRUNED)
            rows.append(_row(f"{method[0]}: good pruned keeps >= {good_share:.0%} of full, on the unseen half of dev",
                             task, [(good - good_share * w["full"], False)],
                             f"good {_fmt(good)} vs full {_fmt(w['full'])}", _left_out(degenerate, task)))
    return pd.DataFrame(rows, columns=VERDICT_COLUMNS)


def leak(split: pd.DataFrame) -> pd.DataFrame:
    """Per task, method, pruned subnetwork (and the full model) and seed: the score on the half of dev the masks
    were chosen on minus the score on the other half (`lottery.leaks`), positive where selecting on the data
    flattered the mask; the full model's own difference is the halves' difference in difficulty. Empty for runs
    without the two columns."""
    return lottery.leaks(lottery_scores(split, with_full=True))


def leak_summary(split: pd.DataFrame) -> pd.DataFrame:
    """`lottery.leak_table` of a split run's results: per task, method and subnetwork, the mean scores on each
    half, the leak's mean and std over seeds, each seed's leak, and the shares of the full model on each half."""
    return lottery.leak_table(lottery_scores(split, with_full=True)).set_index(["task", "method", "subnetwork"])


def stability_claims(res: pd.DataFrame, alpha: float = 0.05, degenerate_margin: float = DEGENERATE_MARGIN) -> pd.DataFrame:
    """"The good subnetworks are not stable across seeds" per task (and over all tasks), heads and MLPs,
    decided by `stability.stability_verdict` on the stability stage's agreement test; runs whose stage predates
    that test say so. The stage computes on every seed: a degenerate seed is named, not left out."""
    table = stability_table(res)
    degenerate = degenerate_seeds(res, degenerate_margin)
    rows = []
    for task, r in table.iterrows():
        row = {k: v for k, v in r.items() if pd.notna(v)}
        for kind in ("head", "mlp"):
            if f"{kind}_p_more" not in row:
                v, numbers = STABILITY_PREDATES, f"kappa {row.get(f'{kind}_kappa', np.nan):.3f}"
            else:
                v, numbers = stability.stability_verdict(row, kind=kind, alpha=alpha)
            named = _left_out(degenerate, task)
            rows.append({"claim": f"{kind}s: the good subnetworks are not stable across seeds", "task": task,
                         "verdict": v, "seeds": int(row.get("n_seeds", 0)), "numbers": numbers,
                         "left out": f"not left out (computed by the stability stage): {named}" if named else ""})
    return pd.DataFrame(rows, columns=VERDICT_COLUMNS)


def pattern_agreement(res: pd.DataFrame) -> pd.Series:
    """Per task: the mean share of maps where the pattern CNN gives the rule labeller's class."""
    part = res[(res.stage == "attention_patterns") & (res.metric == "cnn_rule_agreement")]
    return part.groupby("task", sort=False)["value"].mean()


def pattern_claims(res: pd.DataFrame, model: str = "fine-tuned", min_agreement: float = MIN_AGREEMENT,
                   min_difference: float = MIN_SHARE_DIFFERENCE) -> pd.DataFrame:
    """Figure 4 (section 5.2), per task, on `model`'s maps, read as: (a) norm-weighted maps are less often
    vertical than raw maps (all heads); (b) the super-survivors are no richer in heterogeneous (potentially
    meaningful) maps than all heads, per map kind. A verdict needs the classifier to agree with itself: the CNN
    and the rule labeller agree on at least `min_agreement` of the maps; and the two shares to differ by at
    least `min_difference` (or the stage's `thread_stability`, the shares' spread between two trainings, if
    larger). Otherwise, or where a group has no maps, "cannot tell"."""
    shares = pattern_shares(res)
    shares = shares[shares.model == model].set_index(["task", "map_kind", "group", "class"])
    totals = shares.groupby(level=[0, 1, 2])["count"].sum()
    agreement = pattern_agreement(res)
    spread = res[(res.stage == "attention_patterns") & (res.metric == "thread_stability")].value
    threshold = max(min_difference, float(spread.max()) if len(spread) else 0.0)

    def share(*key: str) -> float:
        return float(shares["share"].get(key, 0.0)) if totals.get(key[:3], 0) > 0 else np.nan

    def row(claim: str, task: str, a: float, b: float, numbers: str) -> dict:
        """Claim: a < b (a <= b for "no more"): decided only past the thresholds."""
        agree = agreement.get(task, np.nan)
        if np.isnan(a) or np.isnan(b):
            v = "cannot tell (no maps)"
        elif not agree >= min_agreement:
            v = f"cannot tell: the CNN and the rule labeller agree on {agree:.0%} of maps (< {min_agreement:.0%})"
        elif abs(a - b) < threshold:
            v = f"cannot tell: the shares differ by {abs(a - b):.2f} (< {threshold:.2f})"
        else:
            v = HOLDS if a < b else FAILS
        return {"claim": claim, "task": task, "verdict": v, "seeds": np.nan,
                "numbers": f"{numbers}; CNN = rule on {agree:.0%} of maps", "left out": ""}

    rows = []
    for task in dict.fromkeys(shares.index.get_level_values("task")):
        raw, normed = share(task, "raw", "all heads", "vertical"), share(task, "normed", "all heads", "vertical")
        rows.append(row("patterns: norm-weighted maps less vertical than raw (all heads)", task, normed, raw,
                        f"vertical raw {raw:.2f}, normed {normed:.2f}"))
        for kind in dict.fromkeys(shares.loc[task].index.get_level_values("map_kind")):
            sup, every = share(task, kind, "super-survivors", "heterogeneous"), share(task, kind, "all heads", "heterogeneous")
            rows.append(row(f"patterns ({kind}): super-survivors no more heterogeneous than all heads", task,
                            sup, every, f"heterogeneous super {sup:.2f}, all {every:.2f}"))
    return pd.DataFrame(rows, columns=VERDICT_COLUMNS)


def claims(res: pd.DataFrame, good_share: float = 0.9, majority_margin: float = 0.5, close_share: float = 0.05,
           alpha: float = 0.05, selection: str = "dev", split: pd.DataFrame | None = None,
           degenerate_margin: float = DEGENERATE_MARGIN, floor_margin: float = FLOOR_MARGIN,
           min_agreement: float = MIN_AGREEMENT, min_difference: float = MIN_SHARE_DIFFERENCE) -> pd.DataFrame:
    """The whole checklist: one row per claim and task (`VERDICT_COLUMNS`), the claims of the stages present.
    `split`: the results of the same preset run with `selection: split`, for the 90% claim where it is not by
    construction (ignored when this run is that split run: its own 90% rows are then scored on unseen data)."""
    parts = []
    stages = set(res.stage)
    if {"finetune", "lottery"} <= stages:
        parts.append(score_claims(res, good_share, majority_margin, close_share, selection, degenerate_margin,
                                  floor_margin))
    if split is not None and selection != "split":   # a split run's own 90% rows are already on unseen data
        parts.append(heldout_claims(split, "split", good_share, degenerate_margin))
    if "stability" in stages:
        parts.append(stability_claims(res, alpha, degenerate_margin))
    if "attention_patterns" in stages:
        parts.append(pattern_claims(res, min_agreement=min_agreement, min_difference=min_difference))
    parts = [p for p in parts if not p.empty]
    if not parts:
        return pd.DataFrame(columns=VERDICT_COLUMNS)
    return _by_task(pd.concat(parts, ignore_index=True).astype({"seeds": "Int64"}))


# The claims that make "the paper's pattern" of a task: pruned, good beats random and bad; re-fine-tuned,
# even the bad s-subnetwork closes most of the gap to the full model.
PATTERN_CLAIMS = ("s pruned: good > random > bad", "m pruned: good > random > bad", "s: bad re-fine-tuned well above")
READINGS = {HOLDS: "the paper's pattern holds", FAILS: "the paper's pattern differs here"}
CANNOT_TELL_READING = "cannot tell whether the paper's pattern holds"


def task_reading(checklist: pd.DataFrame) -> pd.DataFrame:
    """Per task: "the paper's pattern holds / differs here / cannot tell", from the checklist rows of
    `PATTERN_CLAIMS`: differs if one of them does not hold, holds if all hold, else cannot tell; with the
    verdicts that decide it."""
    rows = []
    for task, part in checklist.groupby("task", sort=False):
        part = part[part.claim.str.startswith(PATTERN_CLAIMS)]
        if part.empty:
            continue
        v = combine(part.verdict.tolist())
        rows.append({"task": task, "reading": READINGS.get(v, CANNOT_TELL_READING),
                     "decided by": "; ".join(f"{c}: {x}" for c, x in zip(part.claim, part.verdict)),
                     "left out": part["left out"].iloc[0]})
    return pd.DataFrame(rows, columns=["task", "reading", "decided by", "left out"])


# --- held-out selection: which run has the unseen half -----------------------------------------------------

def split_results(outputs_root: str | Path, heldout_root: str | Path = "") -> tuple[pd.DataFrame | None, str]:
    """The results of the `selection: split` run that goes with this report, and a sentence on where they come
    from (or why there are none): this run's own if it is a split run, else `heldout_root`'s if it has run."""
    if run_settings(outputs_root, "lottery").get("selection") == "split":
        return results.read(outputs_root), "this run chose its masks on one half of dev and scores them on the other."
    if not heldout_root:
        return None, "heldout_root is empty: no run with masks chosen on one half of dev goes with this one."
    if not (runs.resolve(heldout_root) / results.CSV_NAME).is_file():
        return None, (f"No held-out run at {heldout_root} yet: run the same preset with `--config selection=split` "
                      "(its results go there), then this report again.")
    return results.read(heldout_root), f"from the held-out run {runs.display_path(runs.resolve(heldout_root))}."


# --- run settings, the report's generated text and the README section --------------------------------------

def run_settings(outputs_root: str | Path, stage: str = "lottery") -> dict:
    """The parameters one of the preset's `stage` runs recorded (params.json), e.g. compat, epochs, model."""
    for path in sorted(runs.resolve(outputs_root).glob(f"*/seed_*/{stage}/params.json")):
        return runs.read_params(path.parent)
    return {}


def preset_settings(outputs_root: str | Path) -> dict:
    """What `run_description` needs, from the run folders: the lottery stage's parameters (else the fine-tuning
    stage's), the preset's name, tasks, seeds and per task the train and dev examples the fine-tuning used."""
    root = runs.resolve(outputs_root)
    params = {**run_settings(root, "finetune"), **run_settings(root, "lottery")}
    sizes = {}
    for path in sorted(root.glob("*/seed_*/finetune/metrics.json")):
        m = runs.read_json(path)
        sizes[path.parent.parent.parent.name] = (int(m["train_examples"]), int(m["dev_examples"]))
    seeds = sorted({int(p.parent.name.removeprefix("seed_")) for p in root.glob("*/seed_*/finetune")})
    return {**params, "preset": root.name, "tasks": list(sizes), "seeds": seeds, "examples": sizes}


MODEL_NOTES = {
    "minilm-l6": "all-MiniLM-L6-v2 (6 layers x 12 heads, hidden size 384), the CPU stand-in for the paper's "
                 "bert-base-uncased. It is a sentence-embedding model: MiniLM, contrastively trained on about a "
                 "billion sentence pairs, including NLI, QQP and paraphrase data; not a plain masked-LM BERT. "
                 "It has seen paraphrase and similarity supervision, which may lift MRPC and STS-B (and QQP) above "
                 "what a masked-LM of its size would reach, and its \"pre-trained\" attention maps are those of "
                 "an already sentence-tuned model",
    "bert-base-uncased": "bert-base-uncased, the paper's model (12 layers x 12 heads, hidden size 768)",
}
PAPER_LEARNING_RATE = 2e-5


def _epochs(n: float | None) -> str:
    return "? epochs" if n is None else f"{n:g} epoch{'' if n == 1 else 's'}"


def _sci(x: float) -> str:
    """1e-4, 2e-5 (not 0.0001, 2e-05)."""
    mantissa, exponent = f"{x:.0e}".split("e")
    return f"{mantissa}e{int(exponent)}"


def run_description(params: Mapping) -> str:
    """One paragraph on what a run is, from its recorded parameters (`preset_settings`, or a stage's params
    plus `tasks`, `seeds`, and optionally `examples` {task: (train, dev)}): the model and what it is, data
    sizes, learning rate against the paper's, precision, length-grouped batches, seeds, selection, the
    lottery's `both_rules` and `extras`. Missing values are left out."""
    parts = []
    name = params.get("preset")
    model = params.get("model", "")
    parts.append((f"**This run** (`{name}`): " if name else "**This run**: ")
                 + f"the model is {MODEL_NOTES.get(model, f'`{model}`')}.")
    examples = params.get("examples") or {}
    if examples:
        parts.append("Tasks, with the train / dev examples used: "
                     + ", ".join(f"{t} {tr} / {dv}" for t, (tr, dv) in examples.items()) + ".")
    elif params.get("tasks"):
        parts.append(f"Tasks: {', '.join(map(str, params['tasks']))}.")
    if params.get("seeds"):
        seeds = list(params["seeds"])
        parts.append(f"Seed {seeds[0]} (this notebook runs one; the paper: 5 seeds)." if len(seeds) == 1 else
                     f"Seeds: {', '.join(map(str, seeds))} ({len(seeds)}; the paper: 5).")
    if "learning_rate" in params:
        lr = float(params["learning_rate"])
        why = ("" if lr == PAPER_LEARNING_RATE else " The small model on a few thousand examples needs the larger "
               "rate: at 2e-5 it stays near the majority class (params/demo.yaml gives the measurements).")
        parts.append(f"Fine-tuning: learning rate {_sci(lr)} (the paper: {_sci(PAPER_LEARNING_RATE)}), batch "
                     f"{params.get('batch_size', '?')}, {_epochs(params.get('epochs'))}.{why}")
    if "bf16" in params:
        parts.append(f"Precision: {'bf16 autocast' if params['bf16'] else 'fp32'}"
                     + (f" ({params['bf16_reason']})" if params.get("bf16_reason") else "") + "; the paper: fp32.")
    if "group_by_length" in params:
        parts.append("Batches grouped by length (a CPU speed option)." if params["group_by_length"]
                     else "Random batches, as the paper.")
    if "selection" in params:
        parts.append("Masks chosen and scored on the same dev set, as the paper." if params["selection"] == "dev"
                     else "Masks chosen on one half of dev and every score on the other half (`selection: split`).")
    if "both_rules" in params:
        parts.append("Random s- and bad m-subnetworks drawn by both the paper's and the authors' rule."
                     if params["both_rules"] else "Random s- and bad m-subnetworks by the paper's rule only "
                     "(`both_rules` off): the paper's numbers for those two rows came from the authors' rule.")
    if "extras" in params:
        parts.append("Extras (Appendix D, super-survivors, random-init BERT) on." if params["extras"]
                     else "Extras (Appendix D, super-survivors, random-init BERT) off.")
    if name == CI_PRESET:
        parts.append("This is the CI preset: its models are barely trained and its numbers only check that the "
                     "chain runs; read the committed runs' reports under `outputs/<preset>/`.")
    return " ".join(parts)


def conclusions(settings: Mapping, res: pd.DataFrame, checklist: pd.DataFrame, degenerate: pd.DataFrame) -> str:
    """The report's closing "what this run shows", generated from the run's numbers: per task the reading
    (`task_reading`) with the pruned and re-fine-tuned shares of the full-minus-majority gap, the degenerate
    seeds left out, and the checklist's tally."""
    name = settings.get("preset", "this run")
    shares = gap_shares(res)
    left_out = shares.set_index(["task", "seed"]).index.isin(list(degenerate[["task", "seed"]].itertuples(index=False)))
    mean = shares[~left_out].groupby(["task", "method", "subnetwork", "setting"])["gap_share"].mean()
    readings = task_reading(checklist).set_index("task")
    out = [f"On `{name}` ({len(settings.get('seeds', []))} seeds), each subnetwork's score is given as its share "
           "of the gap from the majority class (0) to the full model (1), mean over seeds."]
    for task in dict.fromkeys(finetune_scores(res).task):
        def g(method: str, sub: str, setting: str) -> str:
            v = mean.get((task, method, sub, setting), np.nan)
            return "n/a" if pd.isna(v) else f"{v:.2f}"
        reading = readings.reading.get(task, CANNOT_TELL_READING)
        out.append(f"{task}: {reading}. Pruned, good / random / bad keep {g(S, 'good', PRUNED)} / "
                   f"{g(S, 'random', PRUNED)} / {g(S, 'bad', PRUNED)} (s) and {g(M, 'good', PRUNED)} / "
                   f"{g(M, 'random', PRUNED)} / {g(M, 'bad', PRUNED)} (m); re-fine-tuned, {g(S, 'good', REFINETUNED)} / "
                   f"{g(S, 'random', REFINETUNED)} / {g(S, 'bad', REFINETUNED)} (s).")
    if not degenerate.empty:
        out.append("Left out of the verdicts as degenerate: "
                   + "; ".join(f"{r.task} seed {r.seed} ({r.reason})" for r in degenerate.itertuples()) + ".")
    counts = tally(checklist.verdict)
    out.append("The claims checklist: " + ", ".join(f"{k} {v}" for k, v in counts.items())
               + f" (of {len(checklist)}).")
    return " ".join(out)


def figure_files(outputs_root: str | Path, stage: str, pattern: str) -> list[Path]:
    """The PNG figures a preset-level stage saved whose names match `pattern` (e.g. "s_survival_*"), sorted."""
    return sorted(runs.stage_dir(outputs_root, stage).glob(f"{pattern}.png"))


def png_preview(path: str | Path, width: int = 800) -> bytes:
    """A saved PNG figure scaled down to at most `width` pixels wide, as PNG bytes (keeps the report small)."""
    from PIL import Image

    with Image.open(path) as image:
        if image.width > width:
            image = image.resize((width, round(image.height * width / image.width)), Image.Resampling.LANCZOS)
        buffer = io.BytesIO()
        image.save(buffer, format="PNG", optimize=True)
    return buffer.getvalue()


def headline_table(res: pd.DataFrame) -> pd.DataFrame:
    """Per task: full model and majority (mean ± std over seeds) and the good / random / bad means of both
    methods, pruned and re-fine-tuned, as strings "good / random / bad"."""
    fine = finetune_scores(res).groupby("task", sort=False)
    stats = lottery_stats.seed_stats(lottery_scores(res)).set_index(["task", "method", "setting", "subnetwork"])["mean"]
    sizes = res[res.metric.isin(["train_examples", "dev_examples"])].groupby(["task", "metric"])["value"].max()
    rows = []
    for task, g in fine:
        row = {"task": task, "train / dev examples": "/".join(f"{sizes.get((task, m), np.nan):.0f}"
                                                             for m in ("train_examples", "dev_examples")),
               "seeds": len(g), "full model": f"{g.full.mean():.3f} ± {g.full.std(ddof=1):.3f}",
               "majority": f"{g.majority.mean():.3f}"}
        for method in (S, M):
            for setting in (PRUNED, REFINETUNED):
                vals = [stats.get((task, method, setting, n), np.nan) for n in lottery.SUBNETWORKS]
                row[f"{method[0]} good / random / bad, {setting}"] = " / ".join(f"{v:.3f}" for v in vals)
        rows.append(row)
    return pd.DataFrame(rows).replace("nan", "")


def report_split(outputs_root: str | Path) -> pd.DataFrame | None:
    """`split_results` for the `heldout_root` the preset's report recorded (its params.json)."""
    params = runs.stage_dir(outputs_root, "report") / "params.json"
    heldout = runs.read_params(params.parent).get("heldout_root", "") if params.is_file() else ""
    return split_results(outputs_root, heldout)[0]


def heldout_line(split: pd.DataFrame | None) -> str | None:
    """One README line: the leak of the pruned good subnetworks (score on the half of dev the masks were chosen
    on minus on the other half, mean ± std over seeds) of a split run's results; None where there are none."""
    summary = leak_summary(split) if split is not None else pd.DataFrame()
    if summary.empty:
        return None
    good = summary.xs("good", level="subnetwork")
    parts = [f"{task}, {method[0]}: {_mean_std(r['leak_mean'], r['leak_std'])}" for (task, method), r in good.iterrows()]
    return ("Held-out selection (masks chosen on one half of dev): the good subnetwork's pruned score on that half "
            "minus on the other half, mean ± std over seeds: " + "; ".join(parts) + ".")


def readme_section(outputs_root: str | Path) -> str:
    """The README's markdown for one preset: headline table, precision, the held-out leak where a split run
    has it, the degenerate seeds and the claims tally, from its results.csv and run folders."""
    root = runs.resolve(outputs_root)
    res = results.read(root)
    name = root.name
    settings = run_settings(root)
    precision = run_settings(root, "finetune").get("bf16")
    split = report_split(root)
    heldout = heldout_line(split)
    checklist = claims(res, selection=settings.get("selection", "dev"), split=split)
    degenerate = degenerate_seeds(res)
    report = root / "all_tasks" / "report" / "00_report.ipynb"
    lines = [f"### `{name}`", "",
             f"Means ± std over seeds, dev sets, {settings.get('model', '?')}"
             f" (compat `{settings.get('compat', '?')}`"
             + ("" if precision is None else f", {'bf16' if precision else 'fp32'}")
             + f"). Every number: [`results.csv`]({runs.display_path(root)}/"
             f"{results.CSV_NAME}); the report: [`00_report.ipynb`]({runs.display_path(report)}).", "",
             results.markdown(headline_table(res)),
             *([heldout, ""] if heldout else []),
             *([f"![Figure 2, {name}]({runs.display_path(report.parent / 'figure2.png')})", ""]
               if (report.parent / "figure2.png").is_file() else []),
             *(["Degenerate seeds, left out of the verdicts: " + "; ".join(
                 f"{r.task} seed {r.seed} ({r.reason})" for r in degenerate.itertuples()) + ".", ""]
               if not degenerate.empty else []),
             "Claims checklist: " + ", ".join(f"{k} {v}" for k, v in tally(checklist.verdict).items())
             + f" (of {len(checklist)}).", ""]
    return "\n".join(lines)


NO_RUNS = ("No committed runs yet: the results appear here once a preset's run is committed under `outputs/` "
           "and `make readme-results` regenerates this section.\n")


def committed_roots(outputs: str | Path = "outputs") -> list[Path]:
    """The output roots under `outputs` that hold a results.csv, but the CI's, sorted by name."""
    return sorted(p.parent for p in runs.resolve(outputs).glob(f"*/{results.CSV_NAME}") if p.parent.name != CI_PRESET)


def render_readme(text: str, outputs_roots: Sequence[str | Path]) -> str:
    """`text` with the part between the results markers replaced by the sections of `outputs_roots`."""
    pattern = re.compile(re.escape(README_START) + ".*?" + re.escape(README_END), re.S)
    if not pattern.search(text):
        raise ValueError(f"no {README_START} ... {README_END} markers in the README: add them where the results go.")
    body = "\n".join(readme_section(r) for r in outputs_roots) if outputs_roots else NO_RUNS
    return pattern.sub(lambda _: f"{README_START}\n<!-- generated by `make readme-results`: do not edit -->\n\n"
                       f"{body}\n{README_END}", text)


def update_readme(readme: str | Path = "README.md", outputs_roots: Sequence[str | Path] | None = None) -> str:
    """Rewrite the README's results section from `outputs_roots` (default: `committed_roots()`); returns the text."""
    path = runs.resolve(readme)
    text = render_readme(path.read_text(), committed_roots() if outputs_roots is None else outputs_roots)
    path.write_text(text)
    return text


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m lotterylib.report",
                                description="Regenerate the README's results section from the presets' results.csv.")
    p.add_argument("outputs_roots", nargs="*", help="output roots with a results.csv, e.g. outputs/demo "
                   "(default: every committed preset under outputs/, the CI's smoke preset left out)")
    p.add_argument("--readme", default="README.md", help="the README to update (default README.md)")
    args = p.parse_args(argv)
    update_readme(args.readme, args.outputs_roots or None)
    return 0


if __name__ == "__main__":
    sys.exit(main())
