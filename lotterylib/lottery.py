"""Lottery-ticket tests (METHOD.md sections 4 and 5): good / random / bad subnetworks, pruned and re-fine-tuned,
the Table 2 comparison with baselines, super-survivors (Appendix E) and longer re-fine-tuning (Appendix D).

Per (task, seed) (`notebooks/04_lottery_tests.ipynb`) every evaluation becomes one row of a tidy table
(`SCORE_COLUMNS`); across tasks and seeds (`notebooks/05_bad_subnetworks.ipynb`) those tables are collected
and summarised. Scores are the paper's metric per task (`metrics["score"]`), on a 0-1 scale.
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch
from matplotlib.figure import Figure

from . import baselines, magnitude, plots, reference, runs, structured, subnetworks
from .data import Encoded
from .experiment import finetune_model
from .gates import Gates
from .tasks import Task, get_task
from .training import TrainConfig, evaluate

# weight_share: s-masks, the kept heads' and MLPs' share of the encoder weight matrices
# (`subnetworks.weight_share`); m-masks, the kept share of the prunable set. sparsity = 1 - weight_share.
SCORE_COLUMNS = ["task", "seed", "method", "subnetwork", "setting", "epochs", "heads_kept", "mlps_kept",
                 "weight_share", "sparsity", "score"]
PRUNED, REFINETUNED, REFINETUNED_2X = "pruned", "re-fine-tuned", "re-fine-tuned 2x epochs"
S, M, SUPER, RANDOM_INIT = "s-pruning", "m-pruning", "super-survivors", "random-init"
SUBNETWORKS = ("good", "random", "bad")

# (method, subnetwork, setting) -> experiment name in the paper's `paper_numbers.csv`.
PAPER_EXPERIMENTS: dict[tuple[str, str, str], str] = {
    **{(S, n, s): f"head_mlp{x}{'_retrained' if s == REFINETUNED else ''}"
       for n, x in (("good", ""), ("random", "_random"), ("bad", "_bad_1")) for s in (PRUNED, REFINETUNED)},
    **{(M, n, s): f"global_{x}{'_retrained' if s == REFINETUNED else ''}"
       for n, x in (("good", "magnitude"), ("random", "random"), ("bad", "bad")) for s in (PRUNED, REFINETUNED)},
    **{(SUPER, n, s): f"head_mlp_super{x}{'_retrained' if s == REFINETUNED else ''}"
       for n, x in (("super", ""), ("bad", "_bizzaro"), ("random", "_midling")) for s in (PRUNED, REFINETUNED)},
}

# Table 2: our rows -> (method, subnetwork, setting) in the tidy table, and the paper's experiment name.
TABLE2_ROWS: dict[str, tuple[tuple[str, str, str], str | None]] = {
    "bad s-pruned (re-fine-tuned)": ((S, "bad", REFINETUNED), "head_mlp_bad_1_retrained"),
    "bad m-pruned (re-fine-tuned)": ((M, "bad", REFINETUNED), "global_bad_retrained"),
    "random init + random s-pruning": ((RANDOM_INIT, "random", REFINETUNED), None),
}
MAJORITY = "majority class"
GLUE_ROWS = tuple(baselines.GLUE_BASELINES)


# --- per (task, seed): drawing, evaluating, re-fine-tuning -----------------------------------------------

def task_s_masks(outputs_root: str | Path, task: str) -> dict[int, subnetworks.SMasks]:
    """`{seed: (head_mask, mlp_mask)}` of every seed of `task` whose s-pruning stage has written its masks."""
    tree = structured.load_masks_tree(runs.resolve(outputs_root), subdir="s_pruning")
    if get_task(task).name not in tree:
        raise FileNotFoundError(f"No s-pruning masks for {task} under {outputs_root}: run the s_pruning stage "
                                "(notebooks/02_structured_pruning.ipynb) first.")
    return tree[get_task(task).name]


def draw_subnetworks(seed: int, head_mask: np.ndarray, mlp_mask: np.ndarray, weight_masks: subnetworks.MMasks,
                     all_head_masks: np.ndarray, all_mlp_masks: np.ndarray, compat: str = "paper",
                     weights: subnetworks.MMasks | None = None) -> dict[str, dict]:
    """`{"s": ..., "m": ..., "super": ...}` subnetworks, drawn from one `np.random.default_rng(seed)` in
    that order (so they are a function of the seed alone). `weights`: the fine-tuned dense values, needed
    for `compat="authors"` bad m-masks; `all_*_masks`: every seed's s-masks stacked, for super-survivors."""
    rng = np.random.default_rng(seed)
    return {"s": subnetworks.s_subnetworks(head_mask, mlp_mask, rng, compat),
            "m": subnetworks.m_subnetworks(weight_masks, rng, compat, weights),
            "super": subnetworks.super_subnetworks(all_head_masks, all_mlp_masks, rng)}


def save_s_subnetworks(path: str | Path, subnets: dict[str, subnetworks.SMasks]) -> Path:
    """One npz with `<name>_head` (layers x heads) and `<name>_mlp` (layers) per subnetwork, 1 = kept."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, **{f"{n}_{k}": np.asarray(m, dtype=np.float32)
                      for n, (h, p) in subnets.items() for k, m in (("head", h), ("mlp", p))})
    return path


def load_s_subnetworks(path: str | Path) -> dict[str, subnetworks.SMasks]:
    """The subnetworks written by `save_s_subnetworks`, as float64 arrays."""
    with np.load(Path(path)) as data:
        names = [k.removesuffix("_head") for k in data.files if k.endswith("_head")]
        return {n: (data[f"{n}_head"].astype(np.float64), data[f"{n}_mlp"].astype(np.float64)) for n in names}


@dataclass
class LotterySetup:
    """What every evaluation of one (task, seed) shares; `cache` keeps s re-fine-tuning scores so that an
    identical s-subnetwork (e.g. the super-survivors of a single seed = the good set) is trained once."""

    model: str
    task: Task
    train: Encoded
    dev: Encoded
    cfg: TrainConfig
    seed: int
    compat: str = "paper"
    progress: bool = True
    cache: dict = field(default_factory=dict)

    def score(self, net: torch.nn.Module, gates: Gates | None = None, desc: str = "evaluate",
              key: str = "score") -> float:
        """The paper metric of `net` on dev (`key="stop_score"`: what the pruning searches compared)."""
        return evaluate(net, self.task, self.dev, self.cfg.eval_batch_size, gates=gates, compat=self.compat,
                        bf16=self.cfg.bf16, progress=self.progress, desc=desc).metrics[key]


def pruned_s_score(setup: LotterySetup, net: torch.nn.Module, head_mask: np.ndarray, mlp_mask: np.ndarray,
                   desc: str = "evaluate", key: str = "score") -> float:
    """Dev score of the fine-tuned `net` with heads/MLPs gated by the masks; the gates are removed after."""
    with Gates(net, head_mask, mlp_mask) as gates:
        return setup.score(net, gates, desc, key)


def pruned_m_score(setup: LotterySetup, net: torch.nn.Module, masks: subnetworks.MMasks,
                   desc: str = "evaluate", key: str = "score") -> float:
    """Dev score of the fine-tuned `net` with the weight masks; its dense weights are restored after."""
    magnitude.apply_weight_masks(net, masks, setup.compat)
    try:
        return setup.score(net, desc=desc, key=key)
    finally:
        magnitude.remove_weight_masks(net, permanent=False)


def refinetuned_s_score(setup: LotterySetup, head_mask: np.ndarray, mlp_mask: np.ndarray,
                        epochs_factor: float = 1.0, random_init: bool = False, desc: str = "re-fine-tune") -> float:
    """Fine-tune from the pre-trained (or random) weights with the s-masks held, then score with them on.

    The s-subnetwork is trained physically pruned (`finetune_model(physical=True)`): what the gated model
    computes, with fewer FLOPs."""
    key = ((np.asarray(head_mask) != 0).tobytes(), (np.asarray(mlp_mask) != 0).tobytes(), epochs_factor, random_init)
    if key not in setup.cache:
        cfg = replace(setup.cfg, epochs=setup.cfg.epochs * epochs_factor)
        net, _, _ = finetune_model(setup.model, setup.task, setup.train, cfg, setup.seed, head_mask=head_mask,
                                   mlp_mask=mlp_mask, compat=setup.compat, random_init=random_init,
                                   progress=setup.progress, desc=desc, physical=True)
        setup.cache[key] = setup.score(net)
        del net
    return setup.cache[key]


def refinetuned_m_score(setup: LotterySetup, masks: subnetworks.MMasks, desc: str = "re-fine-tune") -> float:
    """Fine-tune from the pre-trained weights with the weight masks held (masked weights stay zero), then score."""
    net, gates, _ = finetune_model(setup.model, setup.task, setup.train, setup.cfg, setup.seed,
                                   weight_masks=masks, compat=setup.compat, progress=setup.progress, desc=desc)
    gates.remove()
    return setup.score(net)


def s_row(task: str, seed: int, method: str, subnetwork: str, setting: str, epochs: float,
          head_mask: np.ndarray, mlp_mask: np.ndarray, config, score: float) -> dict:
    """A tidy row for an s-mask: heads/MLPs kept, their share of the encoder weight matrices."""
    heads, mlps = subnetworks.subnetwork_size(head_mask, mlp_mask)
    share = subnetworks.weight_share(head_mask, mlp_mask, config)
    return dict(task=task, seed=seed, method=method, subnetwork=subnetwork, setting=setting, epochs=epochs,
                heads_kept=heads, mlps_kept=mlps, weight_share=share, sparsity=1 - share, score=score)


def m_row(task: str, seed: int, subnetwork: str, setting: str, epochs: float, masks: subnetworks.MMasks,
          score: float) -> dict:
    """A tidy row for a weight mask: share of the prunable weights kept, and the sparsity."""
    sparsity = magnitude.sparsity(masks)
    return dict(task=task, seed=seed, method=M, subnetwork=subnetwork, setting=setting, epochs=epochs,
                heads_kept=np.nan, mlps_kept=np.nan, weight_share=1 - sparsity, sparsity=sparsity, score=score)


def s_lottery_rows(setup: LotterySetup, net: torch.nn.Module, subnets: dict[str, subnetworks.SMasks],
                   method: str = S) -> list[dict]:
    """Each s-subnetwork pruned (on the fine-tuned `net`) and re-fine-tuned: two rows per subnetwork."""
    rows, epochs = [], setup.cfg.epochs
    for name, (head, mlp) in subnets.items():
        pruned = pruned_s_score(setup, net, head, mlp, desc=f"{method} {name} pruned")
        retrained = refinetuned_s_score(setup, head, mlp, desc=f"{method} {name} re-fine-tune")
        rows += [s_row(setup.task.name, setup.seed, method, name, PRUNED, epochs, head, mlp, net.config, pruned),
                 s_row(setup.task.name, setup.seed, method, name, REFINETUNED, epochs, head, mlp, net.config,
                       retrained)]
    return rows


def m_lottery_rows(setup: LotterySetup, net: torch.nn.Module, subnets: dict[str, subnetworks.MMasks]) -> list[dict]:
    """Each weight-mask subnetwork pruned (on the fine-tuned `net`) and re-fine-tuned: two rows each."""
    rows, epochs = [], setup.cfg.epochs
    for name, masks in subnets.items():
        pruned = pruned_m_score(setup, net, masks, desc=f"{M} {name} pruned")
        retrained = refinetuned_m_score(setup, masks, desc=f"{M} {name} re-fine-tune")
        rows += [m_row(setup.task.name, setup.seed, name, PRUNED, epochs, masks, pruned),
                 m_row(setup.task.name, setup.seed, name, REFINETUNED, epochs, masks, retrained)]
    return rows


def extra_rows(setup: LotterySetup, net: torch.nn.Module, s_subnets: dict[str, subnetworks.SMasks],
               super_subnets: dict[str, subnetworks.SMasks]) -> list[dict]:
    """The extras: the bad s-subnetwork re-fine-tuned for twice the epochs (Appendix D); random weights with
    the random s-mask (the good = bad size) fine-tuned (Table 2); super / bad / random sets (Appendix E)."""
    t, seed, epochs = setup.task.name, setup.seed, setup.cfg.epochs
    bad, rand = s_subnets["bad"], s_subnets["random"]
    long = refinetuned_s_score(setup, *bad, epochs_factor=2.0, desc="bad s re-fine-tune 2x")
    rand_init = refinetuned_s_score(setup, *rand, random_init=True, desc="random init + random s")
    return [s_row(t, seed, S, "bad", REFINETUNED_2X, 2 * epochs, *bad, net.config, long),
            s_row(t, seed, RANDOM_INIT, "random", REFINETUNED, epochs, *rand, net.config, rand_init),
            *s_lottery_rows(setup, net, super_subnets, method=SUPER)]


def tidy(rows: Iterable[dict]) -> pd.DataFrame:
    """The rows as a table with the `SCORE_COLUMNS`, in that order."""
    return pd.DataFrame(list(rows), columns=SCORE_COLUMNS)


def seed_table(scores: pd.DataFrame) -> pd.DataFrame:
    """One (task, seed): score per method and subnetwork (rows) and setting (columns)."""
    table = scores.pivot_table(index=["method", "subnetwork"], columns="setting", values="score")
    rows = list(dict.fromkeys(zip(scores.method, scores.subnetwork)))
    return table.reindex(index=pd.MultiIndex.from_tuples(rows, names=table.index.names),
                         columns=list(dict.fromkeys(scores.setting)))


def seed_summary(scores: pd.DataFrame) -> dict[str, float]:
    """Headline numbers of one (task, seed): the s-subnetworks and the bad m-subnetwork, re-fine-tuned."""
    rft = scores[scores.setting == REFINETUNED].set_index(["method", "subnetwork"])["score"]
    out = {f"s {n} re-fine-tuned": float(rft[(S, n)]) for n in SUBNETWORKS if (S, n) in rft.index}
    if (M, "bad") in rft.index:
        out["m bad re-fine-tuned"] = float(rft[(M, "bad")])
    return out


# --- across tasks and seeds ------------------------------------------------------------------------------

def _missing_error(what: str, missing: list) -> FileNotFoundError:
    return FileNotFoundError(f"{what} missing for (task, seed) {missing}: run those stages first "
                             "(the notebooks, or `make grid PRESET=...`).")


def collect_scores(outputs_root: str | Path, tasks: Sequence[str], seeds: Sequence[int]) -> pd.DataFrame:
    """Every (task, seed)'s `lottery/scores.csv`, concatenated; a clear error names any missing one."""
    frames, missing = [], []
    for t in tasks:
        for s in seeds:
            path = runs.stage_dir(outputs_root, "lottery", get_task(t).name, s) / "scores.csv"
            if path.is_file():
                frames.append(pd.read_csv(path))
            else:
                missing.append((t, s))
    if missing:
        raise _missing_error("lottery scores (lottery/scores.csv)", missing)
    return pd.concat(frames, ignore_index=True)[SCORE_COLUMNS]


def collect_finetune(outputs_root: str | Path, tasks: Sequence[str], seeds: Sequence[int]) -> pd.DataFrame:
    """task, seed, full (the fine-tuned model's dev score) and majority (the majority-class baseline)."""
    rows = []
    for t in tasks:
        for s in seeds:
            m = runs.load_metrics(runs.stage_dir(outputs_root, "finetune", get_task(t).name, s))
            rows.append({"task": get_task(t).name, "seed": s, "full": m["dev_score"],
                         "majority": m["majority_baseline"]})
    return pd.DataFrame(rows)


def seed_stats(scores: pd.DataFrame) -> pd.DataFrame:
    """Mean, std (ddof 1; NaN for one seed) and number of seeds per task, method, subnetwork and setting."""
    keys = ["task", "method", "subnetwork", "setting"]
    return scores.groupby(keys, sort=False)["score"].agg(mean="mean", std="std", seeds="count").reset_index()


def reference_stats(finetune: pd.DataFrame) -> pd.DataFrame:
    """Per task: mean and std of the full model over seeds, and the mean majority baseline."""
    return finetune.groupby("task", sort=False).agg(full_mean=("full", "mean"), full_std=("full", "std"),
                                                    majority=("majority", "mean"))


def lottery_means(stats: pd.DataFrame, refs: pd.DataFrame, methods: Sequence[str] = (M, S)) -> pd.DataFrame:
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


def claims(means: pd.DataFrame, good_share: float = 0.9, margin: float = 0.5) -> pd.DataFrame:
    """The paper's claims per method and task, as booleans, from `lottery_means`:
    good pruned >= `good_share` x full; random and bad pruned below good pruned; bad re-fine-tuned "well
    above" the majority baseline, i.e. >= majority + `margin` x (full - majority)."""
    g, r, b = (means[f"{n} {PRUNED}"] for n in SUBNETWORKS)
    bad_rft, full, majority = means[f"bad {REFINETUNED}"], means["full"], means["majority"]
    return pd.DataFrame({
        f"good pruned >= {good_share:.0%} of full": g >= good_share * full,
        "random pruned < good pruned": r < g,
        "bad pruned < good pruned": b < g,
        "bad re-fine-tuned well above majority": bad_rft >= majority + margin * (full - majority),
    })


def lottery_figure(scores: pd.DataFrame, refs: pd.DataFrame, save: str | Path | None = None) -> Figure:
    """Figure 2: one panel per task (`plots.lottery_bars`): good / random / bad, pruned and re-fine-tuned,
    both methods, mean and std over seeds, the "full model minus one std" line and the majority baseline."""
    part = scores[scores.method.isin((M, S)) & scores.subnetwork.isin(SUBNETWORKS)
                  & scores.setting.isin((PRUNED, REFINETUNED))]
    tasks = list(dict.fromkeys(part.task))
    fig, axes = plt.subplots(1, len(tasks), figsize=(5.2 * len(tasks) + 1.5, 3.6), squeeze=False)
    for k, (ax, t) in enumerate(zip(axes[0], tasks)):
        ref = refs.loc[t]
        full_std = 0.0 if np.isnan(ref.full_std) else ref.full_std
        plots.lottery_bars(part[part.task == t], ref.full_mean, full_std, ref.majority,
                           title=t, metric=get_task(t).metric, ax=ax, legend=k == len(tasks) - 1)
    fig.tight_layout()
    if save is not None:
        plots.save_figure(fig, save)
    return fig


def with_paper(stats: pd.DataFrame, path: str | Path | None = None) -> pd.DataFrame:
    """`stats` with the paper's mean and std (bert-base, 5 seeds) where `paper_numbers.csv` has them."""
    def value(row, i):
        exp = PAPER_EXPERIMENTS.get((row.method, row.subnetwork, row.setting))
        v = reference.paper_value(exp, row.task, path) if exp else None
        return np.nan if v is None else v[i]
    out = stats.copy()
    out["paper_mean"] = [value(r, 0) for r in stats.itertuples()]
    out["paper_std"] = [value(r, 1) for r in stats.itertuples()]
    return out


def load_baselines(csv: str | Path = "") -> dict[str, dict[str, float]]:
    """The GLUE baseline rows: `baselines.GLUE_BASELINES` (the GLUE paper's dev-set table), updated from a
    user-supplied CSV with columns model, task, score (0-1 scale). Rows without numbers are left out."""
    rows = {name: dict(v) for name, v in baselines.GLUE_BASELINES.items()}
    if csv:
        df = pd.read_csv(runs.resolve(csv))
        missing = {"model", "task", "score"} - set(df.columns)
        if missing:
            raise ValueError(f"{csv}: missing columns {sorted(missing)}; expected model, task, score")
        for r in df.itertuples():
            rows.setdefault(str(r.model), {})[get_task(r.task).name] = float(r.score)
    return {name: v for name, v in rows.items() if v}


def table2(stats: pd.DataFrame, refs: pd.DataFrame, baseline_rows: dict[str, dict[str, float]]) -> pd.DataFrame:
    """Table 2: majority class, the GLUE baselines given, bad s- / m-pruned re-fine-tuned and random init +
    random s-pruning (means over seeds), tasks as columns, plus `average` = the macro average over the
    tasks present (NaN for a row that lacks one of them). Rows without any number are left out."""
    tasks = list(refs.index)
    mean = stats.set_index(["method", "subnetwork", "setting", "task"])["mean"]
    rows = {MAJORITY: refs["majority"].to_dict(), **baseline_rows}
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
    part = stats[(stats.method == S) & (stats.subnetwork == "bad")
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
    part = scores[scores.method == SUPER]
    if part.empty:
        return pd.DataFrame()
    score = part.pivot_table(index=["task", "subnetwork"], columns="setting", values="score",
                             aggfunc=["mean", "std"], sort=False, dropna=False)
    score.columns = [f"{s} {a}" for a, s in score.columns]
    size = part.groupby(["task", "subnetwork"], sort=False)[["heads_kept", "mlps_kept", "weight_share"]].mean()
    return size.join(score[[f"{s} {a}" for s in (PRUNED, REFINETUNED) for a in ("mean", "std")]])
