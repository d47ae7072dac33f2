"""The claims checklist: one row per claim of the paper and task, with a verdict (docs/method.md, "The report").

A claim about scores is a per-seed difference d_i that the claim says is positive (e.g. good minus random,
pruned); `verdicts.verdict` decides it from the 95% t-interval. Before that: degenerate seeds are left out and
named (`frames.degenerate_seeds`), a comparison of two subnetworks that both sit at the majority floor on every
seed is "at the floor: cannot tell", and a claim that the search's own rule guarantees on the data it is scored
on is labelled "holds by construction".
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from ...analysis import lottery, stability
from ...analysis.lottery import M_PRUNING, PRUNED, REFINETUNED, S_PRUNING
from ...analysis.verdicts import FAILS, HOLDS, combine, interval, verdict
from .frames import (DEGENERATE_MARGIN, SCORE, by_task, degenerate_seeds, finetune_scores, headroom,
                     lottery_scores, pattern_agreement, pattern_shares, seeds_left_out, stability_table,
                     unseen_full, unseen_scores)

VERDICT_COLUMNS = ["claim", "task", "verdict", "seeds", "numbers", "left out"]
BY_CONSTRUCTION = "holds by construction (masks chosen and scored on the same dev data)"
AT_FLOOR = "at the floor: cannot tell"
STABILITY_PREDATES = "cannot tell: stability stage predates the permutation test"
FLOOR_MARGIN = 0.01        # a score at most this above the majority class sits at the floor
MIN_AGREEMENT = 0.8        # Figure 4 verdicts need the CNN and the rule labeller to agree on this share of maps
MIN_SHARE_DIFFERENCE = 0.05  # ... and two pattern shares to differ by at least this much


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
        left_out, drop = seeds_left_out(degenerate, task), degenerate.seed[degenerate.task == task]
        w = _per_seed(scores, fine, task).drop(index=drop, errors="ignore")
        share = _per_seed(scores, fine, task, "sparsity").drop(index=drop, errors="ignore")
        full, maj = w["full"], w["majority"]
        for method in (S_PRUNING, M_PRUNING):
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
        s_sp, m_sp = _col(share, S_PRUNING, "good", PRUNED), _col(share, M_PRUNING, "good", PRUNED)
        rows.append(_row("m-pruning compresses more than s-pruning (sparsity)", task, [(m_sp - s_sp, False)],
                         f"m {_fmt(m_sp)} vs s {_fmt(s_sp)}", left_out))
        for method in (S_PRUNING, M_PRUNING):
            g, r, b = (_col(w, method, n, PRUNED) for n in lottery.SUBNETWORKS)
            rows.append(_row(f"{method[0]} pruned: good > random > bad", task,
                             [(g - r, _at_floor(g, maj, floor_margin) and _at_floor(r, maj, floor_margin)),
                              (r - b, _at_floor(r, maj, floor_margin) and _at_floor(b, maj, floor_margin))],
                             f"good {_fmt(g)}, random {_fmt(r)}, bad {_fmt(b)}, majority {_fmt(maj)}", left_out))
        g, r = _col(w, S_PRUNING, "good", REFINETUNED), _col(w, S_PRUNING, "random", REFINETUNED)
        rows.append(_row(f"s re-fine-tuned: random close to good (within {close_share:.0%} of full, or better)",
                         task, [(r - (g - close_share * full), _at_floor(g, maj, floor_margin) and _at_floor(r, maj, floor_margin))],
                         f"good {_fmt(g)}, random {_fmt(r)}", left_out))
        bad = _col(w, S_PRUNING, "bad", REFINETUNED)
        rows.append(_row(f"s: bad re-fine-tuned well above majority (closes >= {majority_margin:.0%} of the gap "
                         "to full)", task, [(bad - (maj + majority_margin * (full - maj)), False)],
                         f"bad {_fmt(bad)}, majority {_fmt(maj)}, full {_fmt(full)}", left_out))
    return pd.DataFrame(rows, columns=VERDICT_COLUMNS)


def heldout_claims(split: pd.DataFrame, selection: str, good_share: float = 0.9,
                   degenerate_margin: float = DEGENERATE_MARGIN) -> pd.DataFrame:
    """"good pruned keeps >= 90% of full" where it is not by construction: scored on the half of dev the
    searches did not see (`unseen_scores` of a split run, with its full model on that half)."""
    scores, fine = unseen_scores(split, selection), unseen_full(split, finetune_scores(split))
    degenerate = degenerate_seeds(split, degenerate_margin)
    rows = []
    for task in dict.fromkeys(scores.task):
        w = _per_seed(scores, fine, task).drop(index=degenerate.seed[degenerate.task == task], errors="ignore")
        for method in (S_PRUNING, M_PRUNING):
            good = _col(w, method, "good", PRUNED)
            rows.append(_row(f"{method[0]}: good pruned keeps >= {good_share:.0%} of full, on the unseen half of dev",
                             task, [(good - good_share * w["full"], False)],
                             f"good {_fmt(good)} vs full {_fmt(w['full'])}", seeds_left_out(degenerate, task)))
    return pd.DataFrame(rows, columns=VERDICT_COLUMNS)


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
            named = seeds_left_out(degenerate, task)
            rows.append({"claim": f"{kind}s: the good subnetworks are not stable across seeds", "task": task,
                         "verdict": v, "seeds": int(row.get("n_seeds", 0)), "numbers": numbers,
                         "left out": f"not left out (computed by the stability stage): {named}" if named else ""})
    return pd.DataFrame(rows, columns=VERDICT_COLUMNS)


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
    return by_task(pd.concat(parts, ignore_index=True).astype({"seeds": "Int64"}))

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

