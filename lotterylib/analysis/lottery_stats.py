"""Lottery-ticket results across tasks and seeds (`notebooks/05_bad_subnetworks.ipynb`, and the report): means and
stds over seeds of the lottery scores (`report.frames.lottery_scores` of the results table), the full model's,
the paper's numbers side by side with a `like_for_like` flag (docs/method.md, "Like for like with the paper"),
and notebook 5's closing paragraph. The claims and their verdicts are the report's (`report.claims`)."""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from ..core.rules import PAPER_RULES, Rules
from . import reference
from .baselines import GLUE_BASELINES
from .lottery import M_PRUNING, PRUNED, REFINETUNED, SUBNETWORKS, SUPER_SURVIVORS, S_PRUNING, split_rule

# (method, subnetwork, setting) -> experiment name in the paper's `paper_numbers.csv`.
PAPER_EXPERIMENTS: dict[tuple[str, str, str], str] = {
    **{(S_PRUNING, n, s): f"head_mlp{x}{'_retrained' if s == REFINETUNED else ''}"
       for n, x in (("good", ""), ("random", "_random"), ("bad", "_bad_1")) for s in (PRUNED, REFINETUNED)},
    **{(M_PRUNING, n, s): f"global_{x}{'_retrained' if s == REFINETUNED else ''}"
       for n, x in (("good", "magnitude"), ("random", "random"), ("bad", "bad")) for s in (PRUNED, REFINETUNED)},
    **{(SUPER_SURVIVORS, n, s): f"head_mlp_super{x}{'_retrained' if s == REFINETUNED else ''}"
       for n, x in (("super", ""), ("bad", "_bizzaro"), ("random", "_midling")) for s in (PRUNED, REFINETUNED)},
}

# The rows whose published numbers were drawn by the authors' rules, not the paper's text (docs/method.md section 4),
# and the `Rules` field that draws them so: random s-subnetworks (Bernoulli) and bad m-subnetworks (smallest magnitude).
AUTHORS_RULE_ROWS = {(S_PRUNING, "random"): "bernoulli_random_s", (M_PRUNING, "bad"): "smallest_magnitude_bad_m"}


def seed_stats(scores: pd.DataFrame) -> pd.DataFrame:
    """Mean, std (ddof 1; NaN for one seed) and number of seeds per task, method, subnetwork and setting."""
    keys = ["task", "method", "subnetwork", "setting"]
    return scores.groupby(keys, sort=False)["score"].agg(mean="mean", std="std", seeds="count").reset_index()


def reference_stats(finetune: pd.DataFrame) -> pd.DataFrame:
    """Per task: mean and std of the full model over seeds, and the mean majority baseline."""
    return finetune.groupby("task", sort=False).agg(full_mean=("full", "mean"), full_std=("full", "std"),
                                                    majority=("majority", "mean"))


def lottery_means(stats: pd.DataFrame, refs: pd.DataFrame,
                  methods: Sequence[str] = (M_PRUNING, S_PRUNING)) -> pd.DataFrame:
    """Per method and task: mean over seeds of good / random / bad, pruned and re-fine-tuned, next to the
    full model and the majority baseline."""
    part = stats[stats.method.isin(methods) & stats.subnetwork.isin(SUBNETWORKS)
                 & stats.setting.isin((PRUNED, REFINETUNED))]
    wide = part.pivot_table(index=["method", "task"], columns=["setting", "subnetwork"], values="mean", sort=False)
    wide.columns = [f"{n} {s}" for s, n in wide.columns]
    order = [f"{n} {s}" for s in (PRUNED, REFINETUNED) for n in SUBNETWORKS if f"{n} {s}" in wide.columns]
    wide = wide[order]
    idx = wide.index.get_level_values("task")
    wide["full"] = refs.loc[idx, "full_mean"].to_numpy()
    wide["majority"] = refs.loc[idx, "majority"].to_numpy()
    return wide


def like_for_like(method: str, subnetwork: str, rules: Rules = PAPER_RULES) -> bool:
    """Whether a row was drawn by the rule behind the paper's number: the published random-s and bad-m
    numbers come from the authors' rules (`AUTHORS_RULE_ROWS`), every other row from the paper's. A row named
    with its rule ("bad (authors)") was drawn by that setting's rules, a plain one by the run's `rules`."""
    base, rule = split_rule(subnetwork)
    quirk = AUTHORS_RULE_ROWS.get((method, base))
    return quirk is None or getattr(Rules.from_setting(rule) if rule else rules, quirk)


def pruning_rows(stats: pd.DataFrame) -> pd.DataFrame:
    """The rows of the two pruning methods (s and m), the ones the paper has numbers for (`with_paper`)."""
    return stats[stats.method.isin([S_PRUNING, M_PRUNING])]


def with_paper(stats: pd.DataFrame, path: str | Path | None = None, rules: Rules = PAPER_RULES) -> pd.DataFrame:
    """`stats` with the paper's mean and std (bert-base, 5 seeds) where `paper_numbers.csv` has them, and
    `like_for_like` (see `like_for_like`; `rules`: the run's, which drew the plain "random" / "bad" rows)."""
    def value(row, i):
        exp = PAPER_EXPERIMENTS.get((row.method, split_rule(row.subnetwork)[0], row.setting))
        v = reference.paper_value(exp, row.task, path) if exp else None
        return np.nan if v is None else v[i]
    out = stats.copy()
    out["paper_mean"] = [value(r, 0) for r in stats.itertuples()]
    out["paper_std"] = [value(r, 1) for r in stats.itertuples()]
    out["like_for_like"] = [like_for_like(r.method, r.subnetwork, rules) for r in stats.itertuples()]
    return out


def conclusions(means: pd.DataFrame, table2: pd.DataFrame, preset: str, seeds: Sequence[int],
                margin: float = 0.5, min_gap: float = 0.05) -> str:
    """Notebook 5's closing "what this run shows", generated from its numbers (means over seeds, `lottery_means`
    and `tables.table2`): per method, the tasks where good beats random and bad pruned; the tasks where the bad
    s-subnetwork re-fine-tuned closes at least `margin` of the gap from the majority class to the full model;
    and the tasks where it beats every GLUE baseline shown. A task whose full model is less than `min_gap` above
    the majority class has no such share ("n/a")."""
    tasks = list(dict.fromkeys(means.index.get_level_values("task")))
    out = [f"On `{preset}` ({', '.join(tasks)}; {len(seeds)} seed{'s' if len(seeds) != 1 else ''}), from the means "
           "over seeds (the verdicts, with their intervals and the seeds left out, are in the report, notebook 0):"]
    for method in (S_PRUNING, M_PRUNING):
        if method not in means.index.get_level_values("method"):
            continue
        m = means.loc[method]
        wins = [t for t in m.index if m.loc[t, f"good {PRUNED}"] > max(m.loc[t, f"random {PRUNED}"], m.loc[t, f"bad {PRUNED}"])]
        out.append(f"pruned, the good {method} subnetwork beats random and bad on {len(wins)} of {len(m)} tasks"
                   + (f" ({', '.join(wins)})" if wins else "") + ";")
    if S_PRUNING in means.index.get_level_values("method") and f"bad {REFINETUNED}" in means:
        m = means.loc[S_PRUNING]
        share = (m[f"bad {REFINETUNED}"] - m.majority) / (m.full - m.majority).where(m.full - m.majority >= min_gap)
        out.append(f"re-fine-tuned, the bad s-subnetwork's share of the gap from the majority class to the full model "
                   f"is {', '.join(f'{t} ' + ('n/a' if pd.isna(v) else f'{v:.2f}') for t, v in share.items())} "
                   f"(the paper's \"well above majority\": "
                   f"at least {margin:.2f});")
    glue = [r for r in table2.index if r in GLUE_BASELINES]
    bad = "bad s-pruned (re-fine-tuned)"
    if glue and bad in table2.index:
        above = [t for t in tasks if t in table2 and table2.loc[bad, t] > table2.loc[glue, t].max()]
        out.append(f"in Table 2 it beats every GLUE baseline on {len(above)} of {len(tasks)} tasks"
                   + (f" ({', '.join(above)})" if above else "") + " (those baselines trained on the full data).")
    return " ".join(out)


def summary(means: pd.DataFrame, verdict_counts: Mapping[str, int]) -> dict[str, str | float]:
    """Notebook 5's headline numbers: the claims checklist's tally (`verdicts.tally`) and, per method and task,
    the bad subnetwork's mean score re-fine-tuned (`lottery_means`)."""
    bad = means[f"bad {REFINETUNED}"]
    return {"claims": ", ".join(f"{k} {v}" for k, v in verdict_counts.items()),
            **{f"{t} bad {m[0]} re-fine-tuned": float(v) for (m, t), v in bad.items()}}
