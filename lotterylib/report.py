"""The report of one preset (`notebooks/00_report.ipynb`): the paper's tables and figures rebuilt from the
preset's results table (`lotterylib.results`), "paper vs this run" side by side, and a checklist of the paper's
claims with a verdict per task. Nothing here trains.

Verdicts. A claim about scores is a per-seed difference d_i that the claim says is positive (e.g. good minus
random, pruned). With n >= 2 seeds the 95% t-interval of the mean difference decides: entirely above 0 "holds",
entirely at or below 0 "does not hold", otherwise (and always with one seed) "cannot tell with n seeds".
"""
from __future__ import annotations

import argparse
import io
import re
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats as scipy_stats

from . import lottery, lottery_stats, reference, results, runs, tables
from .lottery import M, PRUNED, REFINETUNED, S

HOLDS, FAILS = "holds", "does not hold"
VERDICT_COLUMNS = ["claim", "task", "verdict", "seeds", "numbers"]
README_START, README_END = "<!-- results:start -->", "<!-- results:end -->"
SCORE = "score"


def cannot_tell(n: int) -> str:
    return f"cannot tell with {n} seed{'s' if n != 1 else ''}"


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


# --- the results table in the lottery module's shapes ------------------------------------------------------

def lottery_scores(res: pd.DataFrame) -> pd.DataFrame:
    """The lottery stage's rows as `lottery.SCORE_COLUMNS` (one row per task, seed, method, subnetwork, setting)."""
    part = res[(res.stage == "lottery") & res.seed.notna()]
    keys = ["task", "seed", "method", "subnetwork", "setting"]
    wide = part.pivot_table(index=keys, columns="metric", values="value", sort=False).reset_index()
    wide["seed"] = wide["seed"].astype(int)
    return wide.reindex(columns=lottery.SCORE_COLUMNS)


def finetune_scores(res: pd.DataFrame) -> pd.DataFrame:
    """task, seed, full (the fine-tuned model's score) and majority (the majority-class baseline)."""
    part = res[(res.stage == "finetune") & (res.metric == SCORE)]
    wide = part.pivot_table(index=["task", "seed"], columns="method", values="value", sort=False)
    wide = wide.rename(columns={results.FULL: "full", results.MAJORITY: "majority"}).reset_index()
    wide["seed"] = wide["seed"].astype(int)
    return wide[["task", "seed", "full", "majority"]]


def glue_baselines(res: pd.DataFrame) -> dict[str, dict[str, float]]:
    """The GLUE baseline rows of Table 2 that the bad_subnetworks stage used: {model: {task: score}}."""
    part = res[(res.stage == "bad_subnetworks") & (res.method == results.GLUE_BASELINE)]
    return {name: dict(zip(rows.task, rows.value)) for name, rows in part.groupby("subnetwork", sort=False)}


def table2(res: pd.DataFrame) -> pd.DataFrame:
    """Table 2 (majority, GLUE baselines, bad s/m re-fine-tuned, random init) from the results table."""
    scores = lottery_scores(res)
    return tables.table2(lottery_stats.seed_stats(scores), lottery_stats.reference_stats(finetune_scores(res)), glue_baselines(res))


def stability_table(res: pd.DataFrame) -> pd.DataFrame:
    """Per task: the stability stage's numbers (head/MLP kappa, Q, p, similar pairs, survival, n_seeds)."""
    part = res[res.stage == "stability"]
    return part.pivot_table(index="task", columns="metric", values="value", sort=False)


def pattern_shares(res: pd.DataFrame) -> pd.DataFrame:
    """Figure 4's input (`plots.pattern_distribution`): task, map_kind, group, model, class, count, share,
    counts summed over seeds where the table has several."""
    part = res[(res.stage == "attention_patterns") & res.metric.str.startswith("count ")]
    out = part.assign(map_kind=part.method, group=part.subnetwork, model=part.setting,
                      **{"class": part.metric.str.removeprefix("count ")})
    keys = ["task", "map_kind", "group", "model"]
    out = out.groupby([*keys, "class"], sort=False)["value"].sum().rename("count").reset_index()
    out["share"] = out["count"] / out.groupby(keys)["count"].transform("sum")
    return out


# --- paper vs this run -------------------------------------------------------------------------------------

# Why a row is not like for like (`lottery_stats.like_for_like`): the published number used the authors' rule.
AUTHORS_RULES = {(S, "random"): "the paper's random s-masks are Bernoulli draws: compare the (authors) row",
                 (M, "bad"): "the paper's bad m-masks keep the smallest weights: compare the (authors) row"}


REFERENCE_EXPERIMENTS = {results.FULL: "no_mask", results.MAJORITY: "freq_baseline"}


def paper_comparison(res: pd.DataFrame, compat: str = "paper", path: str | Path | None = None) -> pd.DataFrame:
    """Per task and row the paper has (full model, majority class, each subnetwork and setting): our mean, std
    and seeds next to the paper's (bert-base, 5 seeds; `lottery_stats.with_paper`), the difference in units of the
    paper's std (NaN where that std is 0) and whether the row is like for like (`compat`: the rule the runs
    drew with; "authors" makes the authors'-rules rows comparable). Empty without `paper_numbers.csv`."""
    if reference.paper_numbers(path) is None:
        return pd.DataFrame()
    fine = finetune_scores(res).rename(columns={"full": results.FULL, "majority": results.MAJORITY})
    refs = fine.melt(id_vars=["task", "seed"], var_name="method", value_name="score").assign(subnetwork="", setting="")
    side = lottery_stats.with_paper(lottery_stats.seed_stats(pd.concat([refs, lottery_scores(res)], ignore_index=True)),
                                  path, compat)
    for method, experiment in REFERENCE_EXPERIMENTS.items():
        rows = side.method == method
        values = [reference.paper_value(experiment, t, path) or (np.nan, np.nan) for t in side.task[rows]]
        side.loc[rows, ["paper_mean", "paper_std"]] = values
    side = side[side.paper_mean.notna()].rename(columns={"mean": "ours mean", "std": "ours std",
                                                         "paper_mean": "paper mean", "paper_std": "paper std"})
    side["difference / paper std"] = (side["ours mean"] - side["paper mean"]) / side["paper std"].where(side["paper std"] > 0)
    side["like for like"] = side.pop("like_for_like")
    side["note"] = ["" if ok else AUTHORS_RULES[(m, lottery.split_rule(n, compat)[0])]
                    for m, n, ok in zip(side.method, side.subnetwork, side["like for like"])]
    return _by_task(side)


def _by_task(table: pd.DataFrame) -> pd.DataFrame:
    """Rows grouped by task in order of first appearance, the order within a task kept."""
    order = {t: i for i, t in enumerate(dict.fromkeys(table.task))}
    return table.sort_values("task", key=lambda t: t.map(order), kind="stable").reset_index(drop=True)


def _mean_std(mean: float, std: float) -> str:
    return f"{mean:.3f}" if np.isnan(std) else f"{mean:.3f} ± {std:.3f}"


def comparison_view(comparison: pd.DataFrame) -> pd.DataFrame:
    """`paper_comparison` for reading: per task and row, ours and the paper's as "mean ± std", the difference
    in paper stds (one decimal) and whether the row is like for like."""
    keys = ["task", "method", "subnetwork", "setting"]
    return comparison[keys].assign(
        seeds=comparison.seeds,
        ours=[_mean_std(m, s) for m, s in zip(comparison["ours mean"], comparison["ours std"])],
        paper=[_mean_std(m, s) for m, s in zip(comparison["paper mean"], comparison["paper std"])],
        **{"difference / paper std": comparison["difference / paper std"].round(1),
           "like for like": comparison["like for like"].map({True: "yes", False: "no"})}).set_index(keys)


# --- the claims checklist ----------------------------------------------------------------------------------

def _per_seed(scores: pd.DataFrame, fine: pd.DataFrame, task: str, metric: str = "score") -> pd.DataFrame:
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


def _row(claim: str, task: str, diffs: pd.Series | Sequence[pd.Series], numbers: str) -> dict:
    parts = [diffs] if isinstance(diffs, pd.Series) else list(diffs)
    v = combine([verdict(d) for d in parts])
    n = min(int(d.notna().sum()) for d in parts)
    intervals = "; ".join("mean diff {:+.3f} [{:+.3f}, {:+.3f}]".format(*interval(d.dropna())) for d in parts)
    return {"claim": claim, "task": task, "verdict": v, "seeds": n, "numbers": f"{numbers}; {intervals}"}


def score_claims(res: pd.DataFrame, good_share: float = 0.9, majority_margin: float = 0.5,
                 close_share: float = 0.05) -> pd.DataFrame:
    """The checklist rows of the lottery claims per task (`VERDICT_COLUMNS`); per-seed numbers as a/b/c."""
    scores, fine = lottery_scores(res), finetune_scores(res)
    rows = []
    for task in dict.fromkeys(scores.task):
        w, share = _per_seed(scores, fine, task), _per_seed(scores, fine, task, "sparsity")
        full, maj = w["full"], w["majority"]
        for method in (S, M):
            good = _col(w, method, "good", PRUNED)
            rows.append(_row(f"{method[0]}: good pruned keeps >= {good_share:.0%} of full", task,
                             good - good_share * full, f"good {_fmt(good)} vs full {_fmt(full)}"))
        s_sp, m_sp = _col(share, S, "good", PRUNED), _col(share, M, "good", PRUNED)
        rows.append(_row("m-pruning compresses more than s-pruning (sparsity)", task, m_sp - s_sp,
                         f"m {_fmt(m_sp)} vs s {_fmt(s_sp)}"))
        g, r, b = (_col(w, M, n, PRUNED) for n in ("good", "random", "bad"))
        rows.append(_row("m pruned: good > random > bad", task, [g - r, r - b],
                         f"good {_fmt(g)}, random {_fmt(r)}, bad {_fmt(b)}"))
        g, r = _col(w, S, "good", REFINETUNED), _col(w, S, "random", REFINETUNED)
        rows.append(_row(f"s re-fine-tuned: random close to good (within {close_share:.0%} of full, or better)",
                         task, r - (g - close_share * full), f"good {_fmt(g)}, random {_fmt(r)}"))
        bad = _col(w, S, "bad", REFINETUNED)
        rows.append(_row(f"s: bad re-fine-tuned well above majority (closes >= {majority_margin:.0%} of the gap "
                         "to full)", task, bad - (maj + majority_margin * (full - maj)),
                         f"bad {_fmt(bad)}, majority {_fmt(maj)}, full {_fmt(full)}"))
    return pd.DataFrame(rows, columns=VERDICT_COLUMNS)


def stability_claims(res: pd.DataFrame, alpha: float = 0.05, agreeing_kappa: float = 0.6) -> pd.DataFrame:
    """"Masks are unstable across seeds" per task, from the heads' Fleiss' kappa and Cochran's Q. Cochran's Q
    tests whether the seeds keep the heads at the same rates: p < `alpha` means the seeds' masks differ
    (the claim holds); Q = 0 (identical masks) or kappa >= `agreeing_kappa` (substantial agreement) with
    p >= alpha means they do not; anything else cannot be told with this many seeds."""
    table = stability_table(res)
    rows = []
    for task, r in table.iterrows():
        n = int(r.get("n_seeds", 0))
        kappa, q, p = r.get("head_kappa", np.nan), r.get("head_Q", np.nan), r.get("head_p", np.nan)
        if np.isfinite(p) and p < alpha:
            v = HOLDS
        elif np.isfinite(p) and (q == 0 or (np.isfinite(kappa) and kappa >= agreeing_kappa)):
            v = FAILS
        else:
            v = cannot_tell(n)
        rows.append({"claim": "masks unstable across seeds (heads: Cochran's p < alpha means the masks differ)",
                     "task": task, "verdict": v, "seeds": n,
                     "numbers": f"kappa {kappa:.3f}, Q {q:.3f}, p {p:.3g} (alpha {alpha})"})
    return pd.DataFrame(rows, columns=VERDICT_COLUMNS)


def pattern_claims(res: pd.DataFrame, model: str = "fine-tuned") -> pd.DataFrame:
    """Figure 4 (section 5.2), per task, on `model`'s maps, read as: (a) norm-weighted maps are less often
    vertical than raw maps (all heads); (b) the super-survivors are no richer in heterogeneous (potentially
    meaningful) maps than all heads, per map kind. Shares are compared as they are (the maps of one head are
    not independent, so no test); "cannot tell" where a group has no maps."""
    shares = pattern_shares(res)
    shares = shares[shares.model == model].set_index(["task", "map_kind", "group", "class"])
    totals = shares.groupby(level=[0, 1, 2])["count"].sum()
    def share(*key: str) -> float:
        return float(shares["share"].get(key, 0.0)) if totals.get(key[:3], 0) > 0 else np.nan
    rows = []
    for task in dict.fromkeys(shares.index.get_level_values("task")):
        raw, normed = share(task, "raw", "all heads", "vertical"), share(task, "normed", "all heads", "vertical")
        rows.append(_point_row("patterns: norm-weighted maps less vertical than raw (all heads)", task,
                               normed < raw, raw, normed, f"vertical raw {raw:.2f}, normed {normed:.2f}"))
        for kind in dict.fromkeys(shares.loc[task].index.get_level_values("map_kind")):
            sup, every = share(task, kind, "super-survivors", "heterogeneous"), share(task, kind, "all heads", "heterogeneous")
            rows.append(_point_row(f"patterns ({kind}): super-survivors no more heterogeneous than all heads",
                                   task, sup <= every, sup, every, f"heterogeneous super {sup:.2f}, all {every:.2f}"))
    return pd.DataFrame(rows, columns=VERDICT_COLUMNS)


def _point_row(claim: str, task: str, holds: bool, a: float, b: float, numbers: str) -> dict:
    """A claim decided by comparing two shares `a`, `b` as they are; "cannot tell" if either is missing."""
    v = "cannot tell (no maps)" if np.isnan(a) or np.isnan(b) else HOLDS if holds else FAILS
    return {"claim": claim, "task": task, "verdict": v, "seeds": np.nan, "numbers": numbers}


def claims(res: pd.DataFrame, good_share: float = 0.9, majority_margin: float = 0.5, close_share: float = 0.05,
           alpha: float = 0.05) -> pd.DataFrame:
    """The whole checklist: one row per claim and task (`VERDICT_COLUMNS`), the claims of the stages present."""
    parts = []
    stages = set(res.stage)
    if {"finetune", "lottery"} <= stages:
        parts.append(score_claims(res, good_share, majority_margin, close_share))
    if "stability" in stages:
        parts.append(stability_claims(res, alpha))
    if "attention_patterns" in stages:
        parts.append(pattern_claims(res))
    if not parts:
        return pd.DataFrame(columns=VERDICT_COLUMNS)
    return _by_task(pd.concat(parts, ignore_index=True).astype({"seeds": "Int64"}))


# --- masks chosen on held-out data (`selection: split`) ---------------------------------------------------

def heldout_gaps(dev: pd.DataFrame, split: pd.DataFrame) -> pd.DataFrame:
    """Side by side, per method and task: the pruned good-minus-random and good-minus-bad gaps (means over seeds)
    when the masks are chosen and scored on the same dev set (`dev`, the paper's way) and when they are scored
    on the half of dev the search did not see (`split`), and the share of each gap that survives."""
    def gaps(res: pd.DataFrame) -> pd.DataFrame:
        mean = lottery_stats.seed_stats(lottery_scores(res)).set_index(["method", "task", "subnetwork", "setting"])["mean"]
        pruned = mean.xs(PRUNED, level="setting").unstack("subnetwork")
        pruned = pruned[pruned.index.get_level_values("method").isin((S, M))]
        return pd.DataFrame({"good": pruned["good"], "good - random": pruned["good"] - pruned["random"],
                             "good - bad": pruned["good"] - pruned["bad"]})
    both = gaps(dev).add_suffix(" (dev)").join(gaps(split).add_suffix(" (split)"), how="inner")
    for name in ("good - random", "good - bad"):
        both[f"{name} kept"] = both[f"{name} (split)"] / both[f"{name} (dev)"]
    return both


def heldout_note(outputs_root: str | Path, heldout_root: str | Path) -> str | None:
    """Why the report shows no held-out comparison, or None when `heldout_root` holds a finished split run.
    A preset names its split twin (`heldout_root`); in the twin's own report the two roots are the same."""
    if not heldout_root:
        return "heldout_root is empty: no held-out comparison in this report."
    if runs.resolve(heldout_root) == runs.resolve(outputs_root):
        return ("This is the held-out run (selection: split) itself: the comparison is in the report of the same "
                "preset with selection: dev.")
    if not (runs.resolve(heldout_root) / results.CSV_NAME).is_file():
        return (f"No held-out run at {heldout_root} yet: run the same preset with `--config selection=split` "
                "(its results go there), then this report again.")
    return None


# --- run settings and the README section -------------------------------------------------------------------

def run_settings(outputs_root: str | Path, stage: str = "lottery") -> dict:
    """The parameters one of the preset's `stage` runs recorded (params.json), e.g. compat, epochs, model."""
    for path in sorted(runs.resolve(outputs_root).glob(f"*/seed_*/{stage}/params.json")):
        return runs.read_params(path.parent)
    return {}


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


def heldout_line(outputs_root: str | Path, res: pd.DataFrame) -> str | None:
    """One README line: each pruned gap (mean over seeds) when the masks are scored on the dev data they were
    chosen on, and on the half of dev they were not chosen on (`heldout_gaps` against the report's
    `heldout_root`); None when there is no such run."""
    params = runs.stage_dir(outputs_root, "report") / "params.json"
    heldout = runs.read_params(params.parent).get("heldout_root", "") if params.is_file() else ""
    if not heldout or heldout_note(outputs_root, heldout) is not None:
        return None
    split = runs.resolve(heldout)
    gaps = heldout_gaps(res, results.read(split))
    parts = [f"{task}, {method[0]}: good − random {row['good - random (dev)']:.3f} → {row['good - random (split)']:.3f}, "
             f"good − bad {row['good - bad (dev)']:.3f} → {row['good - bad (split)']:.3f}" for (method, task), row in gaps.iterrows()]
    return (f"Held-out selection (against [`{split.name}`]({runs.display_path(split)}), "
            "masks chosen on one half of dev, scored on the other): each pruned gap, scored on the dev data the "
            "masks were chosen on → on data they were not chosen on; " + "; ".join(parts) + ".")


def readme_section(outputs_root: str | Path) -> str:
    """The README's markdown for one preset: headline table, precision, the held-out comparison where its
    split twin has run, and the claims tally, from its results.csv and run folders."""
    root = runs.resolve(outputs_root)
    res = results.read(root)
    name = root.name
    settings = run_settings(root)
    precision = run_settings(root, "finetune").get("bf16")
    heldout = heldout_line(root, res)
    checklist = claims(res)
    tally = checklist.verdict.str.replace(r"cannot tell.*", "cannot tell", regex=True).value_counts()
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
             "Claims checklist: " + ", ".join(f"{k} {v}" for k, v in tally.items()) + f" (of {len(checklist)}).", ""]
    return "\n".join(lines)


NO_RUNS = ("No committed runs yet: the results appear here once a preset's run is committed under `outputs/` "
           "and `make readme-results` regenerates this section.\n")
CI_PRESET = "smoke"  # rebuilt by `make test`, never committed: not in the README


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
