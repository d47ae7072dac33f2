"""Ours next to the paper's, like for like: means and shares of the full-minus-majority gap side by side, the
order of good, random and bad, the masks' sizes, and the report's headline table. No difference across the two
models is computed: they differ by design.
"""
from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd

from ...analysis import lottery, lottery_stats, reference
from ...analysis.lottery import M_PRUNING, PRUNED, REFINETUNED, S_PRUNING
from ...core.rules import PAPER_RULES, Rules
from .. import results
from .frames import SCORE, by_task, finetune_scores, gap_shares, headroom, lottery_scores, stability_table

# Why a row is not like for like (`lottery_stats.like_for_like`): the published number used the authors' rule.
AUTHORS_RULES = {(S_PRUNING, "random"): "the paper's random s-masks are Bernoulli draws (the authors' rule)",
                 (M_PRUNING, "bad"): "the paper's bad m-masks keep the smallest weights (the authors' rule)"}


REFERENCE_EXPERIMENTS = {lottery.FULL: "no_mask", results.MAJORITY: "freq_baseline"}


def _paper_gap_share(experiment: str, task: str, path: str | Path | None) -> float:
    value, full, majority = (reference.paper_value(e, task, path) for e in (experiment, "no_mask", "freq_baseline"))
    if value is None or full is None or majority is None or full[0] <= majority[0]:
        return np.nan
    return (value[0] - majority[0]) / (full[0] - majority[0])


def paper_comparison(res: pd.DataFrame, rules: Rules = PAPER_RULES, path: str | Path | None = None) -> pd.DataFrame:
    """Per task and row the paper has (full model, majority class, each subnetwork and setting): our mean and
    std over seeds next to the paper's (bert-base, full data, 5 seeds), absolute, and each side's share of its
    own full-minus-majority gap (ours: mean and std over seeds of the per-seed share; the paper's: from its
    means, no per-seed scores exist). No difference across the two models is computed: they differ by design.
    `like for like` is false where the paper's number came from the authors' rule and this run's row from the
    paper's text (`rules`, the run's: `Rules.from_setting` of its `compat`). Empty without `paper_numbers.csv`."""
    if reference.paper_numbers(path) is None:
        return pd.DataFrame()
    fine = finetune_scores(res).rename(columns={"full": lottery.FULL, "majority": results.MAJORITY})
    refs = fine.melt(id_vars=["task", "seed"], var_name="method", value_name=SCORE).assign(subnetwork="", setting="")
    side = lottery_stats.with_paper(lottery_stats.seed_stats(pd.concat([refs, lottery_scores(res)], ignore_index=True)),
                                    path, rules)
    for method, experiment in REFERENCE_EXPERIMENTS.items():
        rows = side.method == method
        values = [reference.paper_value(experiment, t, path) or (np.nan, np.nan) for t in side.task[rows]]
        side.loc[rows, ["paper_mean", "paper_std"]] = values
    side = side[side.paper_mean.notna()].reset_index(drop=True)
    keys = ["task", "method", "subnetwork", "setting"]
    ours = gap_shares(res).groupby(keys, sort=False)["gap_share"].agg(**{"ours gap share": "mean",
                                                                       "ours gap share std": "std"})
    side = side.merge(ours.reset_index(), on=keys, how="left")
    side.loc[side.method == lottery.FULL, "ours gap share"] = 1.0
    side.loc[side.method == results.MAJORITY, "ours gap share"] = 0.0
    side["paper gap share"] = [
        1.0 if m == lottery.FULL else 0.0 if m == results.MAJORITY else
        _paper_gap_share(lottery_stats.PAPER_EXPERIMENTS[(m, lottery.split_rule(n)[0], s)], t, path)
        for t, m, n, s in side[keys].itertuples(index=False)]
    side = side.rename(columns={"mean": "ours mean", "std": "ours std", "paper_mean": "paper mean",
                                "paper_std": "paper std", "like_for_like": "like for like"})
    side["note"] = ["" if ok else AUTHORS_RULES[(m, lottery.split_rule(n)[0])]
                    for m, n, ok in zip(side.method, side.subnetwork, side["like for like"])]
    return by_task(side[[*keys, "seeds", "ours mean", "ours std", "paper mean", "paper std", "ours gap share",
                          "ours gap share std", "paper gap share", "like for like", "note"]])


def mean_std(mean: float, std: float, fmt: str = ".3f") -> str:
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
        ours=[mean_std(m, s) for m, s in zip(c["ours mean"], c["ours std"])],
        paper=[mean_std(m, s) for m, s in zip(c["paper mean"], c["paper std"])],
        **{"ours: share of gap": [mean_std(m, s, ".2f") for m, s in zip(c["ours gap share"], c["ours gap share std"])],
           "paper: share of gap": [mean_std(m, np.nan, ".2f") for m in c["paper gap share"]],
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
    scores = scores[scores.method.isin((S_PRUNING, M_PRUNING)) & scores.subnetwork.isin(lottery.SUBNETWORKS)]
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
                row[name] = mean_std(share.mean(), share.std(), ".2f")
        for method in (S_PRUNING, M_PRUNING):
            if method in weight.columns and task in weight.index.get_level_values(0):
                row[f"{method[0]}: weights kept"] = mean_std(weight.loc[task, method].mean(),
                                                              weight.loc[task, method].std(), ".2f")
        for name, column in (("heads kept, authors' masks", "head_survival"), ("MLPs kept, authors' masks", "mlp_survival"),
                             ("head kappa, ours", "head_kappa"), ("head kappa, authors' masks", "head_kappa")):
            table = authors if "authors" in name else ours
            row[name] = f"{table.loc[task, column]:.2f}" if column in table and task in table.index else ""
        rows.append(row)
    return pd.DataFrame(rows).fillna("")


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
        for method in (S_PRUNING, M_PRUNING):
            for setting in (PRUNED, REFINETUNED):
                vals = [stats.get((task, method, setting, n), np.nan) for n in lottery.SUBNETWORKS]
                row[f"{method[0]} good / random / bad, {setting}"] = " / ".join(f"{v:.3f}" for v in vals)
        rows.append(row)
    return pd.DataFrame(rows).replace("nan", "")

