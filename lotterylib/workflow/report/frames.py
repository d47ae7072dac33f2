"""The results table (`lotterylib.workflow.results`) in the shapes the analysis modules take: the lottery scores per
seed, the fine-tuning's full model and majority class, the stability and pattern-share tables, the degenerate
seeds, each subnetwork's share of the full-minus-majority gap, the held-out halves. Notebook 5 and the report
(notebook 0) both read their tables through these functions.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from ...analysis import lottery
from .. import results

SCORE = "score"
# Defaults of the report's rules (the notebook's parameters; docs/method.md, "The report").
DEGENERATE_MARGIN = 0.05   # a full model less than this above the majority class (score units) is degenerate


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
    wide = wide.rename(columns={lottery.FULL: "full", results.MAJORITY: "majority"}).reset_index()
    wide = wide.reindex(columns=["task", "seed", "full", "majority"])
    return wide.astype({"seed": int, "full": float, "majority": float})


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


def pattern_agreement(res: pd.DataFrame) -> pd.Series:
    """Per task: the mean share of maps where the pattern CNN gives the rule labeller's class."""
    part = res[(res.stage == "attention_patterns") & (res.metric == "cnn_rule_agreement")]
    return part.groupby("task", sort=False)["value"].mean()


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


def seeds_left_out(degenerate: pd.DataFrame, task: str) -> str:
    part = degenerate[degenerate.task == task]
    return "; ".join(f"seed {r.seed} ({r.reason})" for r in part.itertuples())


def gap_shares(res: pd.DataFrame, margin: float = DEGENERATE_MARGIN) -> pd.DataFrame:
    """Per task, seed, method, subnetwork and setting: the subnetwork's share of the full-minus-majority gap,
    (score - majority) / (full - majority), with that seed's full model and majority class. 1 is the full
    model, 0 the majority class. NaN for a seed whose gap is under `margin` (a degenerate full model: dividing
    by a gap near 0 gives meaningless shares)."""
    scores = lottery_scores(res)[["task", "seed", "method", "subnetwork", "setting", SCORE]]
    out = scores.merge(finetune_scores(res), on=["task", "seed"])
    gap = (out.full - out.majority).where(out.full - out.majority >= margin)
    return out.assign(gap_share=(out[SCORE] - out.majority) / gap)


def headroom(res: pd.DataFrame, good_share: float = 0.9) -> pd.DataFrame:
    """Per task (means over seeds): full, majority, the search's bar `good_share` x full, and the bar's place in
    the full-minus-majority gap, (bar - majority) / (full - majority)."""
    ref = finetune_scores(res).groupby("task", sort=False)[["full", "majority"]].mean()
    ref["bar"] = good_share * ref.full
    ref["bar_share"] = (ref.bar - ref.majority) / (ref.full - ref.majority).where(ref.full > ref.majority)
    return ref


def unseen_scores(split: pd.DataFrame, selection: str) -> pd.DataFrame:
    """The lottery scores of a run on the half of dev the searches did not see: `score_unseen` where the run has
    it; elsewhere, in a `selection: split` run, its `score`, which is on that half too (older split runs, and
    the rows without the two per-half scores). Empty for a `selection: dev` run without `score_unseen`."""
    scores = lottery_scores(split)
    unseen = scores.score_unseen if "score_unseen" in scores else pd.Series(np.nan, index=scores.index)
    if selection == "split":
        return scores.assign(score=unseen.fillna(scores[SCORE]))
    return scores.assign(score=unseen).dropna(subset=[SCORE])


def unseen_full(split: pd.DataFrame, fine: pd.DataFrame) -> pd.DataFrame:
    """`finetune_scores` with `full` replaced by the full model's score on the unseen half where the lottery stage
    measured it (a split run's `lottery.FULL` row), so that the 90% share compares like with like."""
    full = lottery_scores(split, with_full=True)
    full = full[full.method == lottery.FULL]
    if "score_unseen" not in full or full.empty:
        return fine
    unseen = full.set_index(["task", "seed"]).score_unseen
    key = pd.MultiIndex.from_frame(fine[["task", "seed"]])
    return fine.assign(full=unseen.reindex(key).fillna(fine.set_index(["task", "seed"])["full"]).to_numpy())


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


def by_task(table: pd.DataFrame) -> pd.DataFrame:
    """Rows grouped by task in order of first appearance, the order within a task kept."""
    order = {t: i for i, t in enumerate(dict.fromkeys(table.task))}
    return table.sort_values("task", key=lambda t: t.map(order), kind="stable").reset_index(drop=True)

