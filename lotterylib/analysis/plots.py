"""The paper's figures. Each function returns its Figure; `save=<path without suffix>` also writes PNG and PDF.

Figures are made with pyplot (so they show in notebooks); close them (`plt.close(fig)`) in loops.
"""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from ..core.tasks import get_task

METHODS = ("m-pruning", "s-pruning")
SETTINGS = ("pruned", "re-fine-tuned")
SUBNETWORK_COLOURS = {"good": "#4c9a2a", "random": "#3a78b5", "bad": "#c8372d"}


def save_figure(fig: Figure, path: str | Path, formats: Sequence[str] = ("png", "pdf"), dpi: int = 200) -> list[Path]:
    """Write `fig` to `<path>.<format>` for each format (parents created); returns the paths."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    written = [path.with_name(f"{path.name}.{fmt}") for fmt in formats]
    for out in written:
        fig.savefig(out, dpi=dpi, bbox_inches="tight")
    return written


def _finish(fig: Figure, save: str | Path | None) -> Figure:
    if save is not None:
        save_figure(fig, save)
    return fig


def _cell_labels(mean: np.ndarray, std: np.ndarray | None, fmt: str) -> np.ndarray:
    """"mean\\n±std" per cell ("mean" where std is NaN or absent, "" where mean is NaN)."""
    std = np.full(mean.shape, np.nan) if std is None else np.asarray(std, dtype=float)
    labels = [("" if np.isnan(m) else f"{m:{fmt}}" if np.isnan(s) else f"{m:{fmt}}\n±{s:{fmt}}")
              for m, s in zip(mean.ravel(), std.ravel())]
    return np.array(labels, dtype=object).reshape(mean.shape)


def survival_heatmap(mean: np.ndarray, std: np.ndarray | None, mlp_mean: np.ndarray, mlp_std: np.ndarray | None,
                     title: str = "", value_label: str = "", fmt: str = ".2f", vmin: float | None = None,
                     vmax: float | None = None, cmap: str = "OrRd", save: str | Path | None = None) -> Figure:
    """Figure 1 / Appendices A-B: a layers x heads heatmap annotated "mean\\n±std", a one-column strip
    of the per-layer MLPs next to it and a colour bar, all on one colour scale (default: the data's range).

    Used for s-pruning (fraction of seeds in which each head/MLP survived) and m-pruning (% of
    surviving weights, e.g. fmt=".0f"). Layer 1 is the top row."""
    mean, mlp_mean = np.asarray(mean, dtype=float), np.asarray(mlp_mean, dtype=float).reshape(-1, 1)
    layers, heads = mean.shape
    if mlp_mean.shape[0] != layers:
        raise ValueError(f"{layers} layers of heads but {mlp_mean.shape[0]} MLPs")
    both = np.concatenate([mean.ravel(), mlp_mean.ravel()])
    vmin = np.nanmin(both) if vmin is None else vmin
    vmax = np.nanmax(both) if vmax is None else vmax
    fig = plt.figure(figsize=(0.75 * heads + 2.6, 0.6 * layers + 1.4), layout="constrained")
    fig.get_layout_engine().set(wspace=0.03)
    grid = fig.add_gridspec(1, 3, width_ratios=[heads, 1.3, 0.4])
    ax_heads, ax_mlp, ax_bar = (fig.add_subplot(grid[0, i]) for i in range(3))
    style = {"vmin": vmin, "vmax": vmax, "cmap": cmap, "fmt": "", "linewidths": 0.5, "linecolor": "white",
             "annot_kws": {"fontsize": 8}}
    layer_labels = [str(i + 1) for i in range(layers)]
    sns.heatmap(mean, ax=ax_heads, annot=_cell_labels(mean, std, fmt), cbar=False,
                xticklabels=[str(i + 1) for i in range(heads)], yticklabels=layer_labels, **style)
    mlp_std = None if mlp_std is None else np.asarray(mlp_std, dtype=float).reshape(-1, 1)
    sns.heatmap(mlp_mean, ax=ax_mlp, annot=_cell_labels(mlp_mean, mlp_std, fmt), cbar_ax=ax_bar,
                cbar_kws={"label": value_label}, xticklabels=["MLP"], yticklabels=False, **style)
    ax_heads.set(xlabel="Head", ylabel="Layer")
    ax_heads.tick_params(axis="y", rotation=0)
    ax_mlp.set_xlabel("")
    fig.suptitle(title)
    return _finish(fig, save)


def _histogram(ax: Axes, scores: np.ndarray, bins: int, label: str) -> None:
    values = np.asarray(scores, dtype=float).ravel()
    values = values[np.isfinite(values)]
    sns.histplot(values, bins=bins, kde=len(values) > 1 and np.ptp(values) > 0, ax=ax)
    ax.set(xlabel="importance score", ylabel="count", title=f"{label} (n = {len(values)})")


def importance_distribution(head_scores: np.ndarray, mlp_scores: np.ndarray, title: str = "", bins: int = 20,
                            save: str | Path | None = None) -> Figure:
    """Figure 3: histograms (with KDE) of the head and MLP importance scores at one pruning iteration.

    Non-finite scores (e.g. NaN for already-pruned elements) are left out."""
    fig, (ax_heads, ax_mlps) = plt.subplots(1, 2, figsize=(9, 3.5))
    _histogram(ax_heads, head_scores, bins, "heads")
    _histogram(ax_mlps, mlp_scores, bins, "MLPs")
    fig.suptitle(title)
    fig.tight_layout()
    return _finish(fig, save)


def lottery_bars(df: pd.DataFrame, full_mean: float, full_std: float, majority: float | None = None,
                 title: str = "", metric: str = "score", ax: Axes | None = None, legend: bool = True,
                 save: str | Path | None = None) -> Figure:
    """Figure 2 for one task: bars of good / random / bad subnetworks, pruned and re-fine-tuned, for each
    method present; bar = mean over seeds, error bar = std (ddof 1). A dashed line marks the success
    criterion full_mean - full_std, an optional dotted one the majority baseline.

    `df` is tidy: method ("s-pruning"/"m-pruning"), subnetwork ("good"/"random"/"bad"),
    setting ("pruned"/"re-fine-tuned"), seed, score. Pass `ax` (and legend=False but once) to draw into
    a grid of tasks."""
    stats = df.groupby(["method", "setting", "subnetwork"])["score"].agg(["mean", "std"])
    groups = [(m, s) for m in METHODS for s in SETTINGS if (m, s) in stats.index.droplevel(2)]
    subnetworks = [n for n in SUBNETWORK_COLOURS if n in stats.index.get_level_values("subnetwork")]
    if ax is None:
        _, ax = plt.subplots(figsize=(1.1 * len(groups) + 1.5, 3.5))
    width = 0.8 / max(len(subnetworks), 1)
    for k, name in enumerate(subnetworks):
        rows = [stats.loc[(*g, name)] if (*g, name) in stats.index else None for g in groups]
        means = [np.nan if r is None else r["mean"] for r in rows]
        stds = [0.0 if r is None or np.isnan(r["std"]) else r["std"] for r in rows]
        x = np.arange(len(groups)) + (k - (len(subnetworks) - 1) / 2) * width
        ax.bar(x, means, width, yerr=stds, capsize=2, color=SUBNETWORK_COLOURS[name], label=name)
    ax.axhline(full_mean - full_std, color="black", linestyle="--", linewidth=1, label="full model - 1 std")
    if majority is not None:
        ax.axhline(majority, color="grey", linestyle=":", linewidth=1, label="majority baseline")
    ax.set_xticks(np.arange(len(groups)), [f"{m}\n{s}" for m, s in groups])
    ax.set(ylabel=metric, title=title)
    if legend:
        ax.legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.01, 1))
    return _finish(ax.figure, save)


def lottery_figure(scores: pd.DataFrame, refs: pd.DataFrame, save: str | Path | None = None) -> Figure:
    """Figure 2: one panel per task (`lottery_bars`): good / random / bad, pruned and re-fine-tuned, both
    methods, mean and std over seeds, the "full model minus one std" line and the majority baseline.
    `scores`: the tidy lottery table; `refs`: per task full_mean, full_std and majority
    (`lottery_stats.reference_stats`)."""
    part = scores[scores.method.isin(METHODS) & scores.subnetwork.isin(list(SUBNETWORK_COLOURS))
                  & scores.setting.isin(SETTINGS)]
    tasks = list(dict.fromkeys(part.task))
    fig, axes = plt.subplots(1, len(tasks), figsize=(5.2 * len(tasks) + 1.5, 3.6), squeeze=False)
    for k, (ax, t) in enumerate(zip(axes[0], tasks)):
        ref = refs.loc[t]
        full_std = 0.0 if np.isnan(ref.full_std) else ref.full_std
        lottery_bars(part[part.task == t], ref.full_mean, full_std, ref.majority,
                     title=t, metric=get_task(t).metric, ax=ax, legend=k == len(tasks) - 1)
    fig.tight_layout()
    return _finish(fig, save)


def pattern_figures(shares: pd.DataFrame, class_order: Sequence[str], save_dir: str | Path | None = None,
                    prefix: str = "patterns_") -> dict[str, Figure]:
    """Figure 4 per task (`pattern_distribution` of that task's rows of `shares`), saved as
    `<save_dir>/<prefix><task>` when `save_dir` is given."""
    return {task: pattern_distribution(shares[shares.task == task], class_order=class_order,
                                       title=f"{task}: attention patterns", ylabel="share of maps",
                                       save=Path(save_dir) / f"{prefix}{task}" if save_dir else None)
            for task in dict.fromkeys(shares.task)}


def pattern_distribution(df: pd.DataFrame, class_order: Sequence[str] | None = None, title: str = "",
                         ylabel: str = "share of heads", save: str | Path | None = None) -> Figure:
    """Figure 4: stacked bars of attention-pattern class shares, one panel per map kind (raw, normed),
    one bar per (group, model), e.g. super-survivors / all heads x fine-tuned / pre-trained.

    `df` columns: group, map_kind, model, class, share; repeated rows (e.g. seeds) are averaged.
    Classes are stacked in `class_order` (default: order of first appearance)."""
    shares = df.groupby(["map_kind", "group", "model", "class"], sort=False)["share"].mean()
    classes = list(class_order) if class_order is not None else list(dict.fromkeys(df["class"]))
    kinds = list(dict.fromkeys(df["map_kind"]))
    bars = list(dict.fromkeys(zip(df["group"], df["model"])))
    colours = dict(zip(classes, sns.color_palette("Set2", len(classes))))
    fig, axes = plt.subplots(1, len(kinds), figsize=(1.0 * len(bars) * len(kinds) + 2.5, 3.8), sharey=True,
                             squeeze=False)
    for ax, kind in zip(axes[0], kinds):
        bottom = np.zeros(len(bars))
        for name in classes:
            heights = np.array([shares.get((kind, g, m, name), 0.0) for g, m in bars])
            ax.bar(np.arange(len(bars)), heights, 0.7, bottom=bottom, color=colours[name], label=name)
            bottom += heights
        ax.set_xticks(np.arange(len(bars)), [f"{g}\n{m}" for g, m in bars], fontsize="small")
        ax.set_title(f"{kind} maps")
    axes[0, 0].set_ylabel(ylabel)
    axes[0, -1].legend(loc="upper left", bbox_to_anchor=(1.02, 1), fontsize="small")
    fig.suptitle(title)
    fig.tight_layout()
    return _finish(fig, save)


def refit_curves(curves: pd.DataFrame, constant_loss: float | None = None, window: int = 10, title: str = "",
                 save: str | Path | None = None) -> Figure:
    """The training loss of every re-fine-tuning (`lottery.curves_table`): one panel per method, one line
    per subnetwork and setting (rolling mean over `window` steps; colour by subnetwork, dashed for a second
    setting or rule), and a dotted line at `constant_loss`, the loss of the best constant prediction
    (`metrics.constant_loss`): a curve that stays on it has collapsed to predicting the mean or the priors."""
    methods = list(dict.fromkeys(curves["method"]))
    fig, axes = plt.subplots(1, max(len(methods), 1), figsize=(4.2 * max(len(methods), 1), 3.2), sharey=True,
                             squeeze=False)
    for ax, method in zip(axes[0], methods):
        part = curves[curves["method"] == method]
        for k, ((name, setting), run) in enumerate(part.groupby(["subnetwork", "setting"], sort=False)):
            base = name.partition(" (")[0]
            dashed = base != name or setting != "re-fine-tuned"
            ax.plot(run["step"], run["loss"].rolling(window, min_periods=1).mean(),
                    color=SUBNETWORK_COLOURS.get(base, f"C{k}"), linestyle="--" if dashed else "-",
                    label=name if setting == "re-fine-tuned" else f"{name}, {setting}")
        if constant_loss is not None:
            ax.axhline(constant_loss, color="black", linestyle=":", linewidth=1, label="constant prediction")
        ax.set(xlabel="step", title=method)
        ax.legend(fontsize="small")
    axes[0][0].set_ylabel(f"training loss (rolling mean of {window})")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return _finish(fig, save)


def score_trajectory(steps_df: pd.DataFrame, full_score: float, threshold: float = 0.9, x: str = "step",
                     y: str = "score", hue: str | None = "phase", title: str = "", ax: Axes | None = None,
                     save: str | Path | None = None) -> Figure:
    """The dev score after each pruning step, one line per `hue` value (default: the search phase, if
    that column exists), with the full model's score and the stopping threshold (threshold x full)."""
    if ax is None:
        _, ax = plt.subplots(figsize=(6, 3.5))
    groups = steps_df.groupby(hue, sort=False) if hue in steps_df.columns else [(None, steps_df)]
    for name, part in groups:
        ax.plot(part[x], part[y], marker="o", markersize=3, label=name)
    ax.axhline(full_score, color="black", linestyle=":", linewidth=1, label="full model")
    ax.axhline(threshold * full_score, color="black", linestyle="--", linewidth=1,
               label=f"{threshold:.0%} of full")
    ax.set(xlabel=x, ylabel=y, title=title)
    ax.legend(fontsize="small")
    return _finish(ax.figure, save)


def overlap_heatmaps(matrices: dict[str, pd.DataFrame], title: str = "", fmt: str = ".2f",
                     save: str | Path | None = None) -> Figure:
    """One annotated heatmap per square overlap matrix (e.g. Jaccard between seeds or tasks), scale 0 to 1."""
    sizes = [len(m) for m in matrices.values()]
    fig, axes = plt.subplots(1, len(matrices), squeeze=False,
                             figsize=(sum(0.6 * n + 1.6 for n in sizes) + 1.0, 0.5 * max(sizes) + 1.6))
    for ax, (name, matrix) in zip(axes[0], matrices.items()):
        sns.heatmap(matrix.astype(float), ax=ax, annot=True, fmt=fmt, vmin=0.0, vmax=1.0, cmap="Blues", cbar=False,
                    square=True, annot_kws={"fontsize": 8})
        ax.set_title(name, fontsize="medium")
        ax.tick_params(axis="y", rotation=0)
    fig.suptitle(title)
    fig.tight_layout()
    return _finish(fig, save)


def confusion_heatmap(confusion: np.ndarray, classes: Sequence[str], title: str = "", xlabel: str = "predicted",
                      ylabel: str = "true", save: str | Path | None = None) -> Figure:
    """A confusion matrix (rows: true class) annotated with counts, coloured by row share."""
    confusion = np.asarray(confusion)
    totals = confusion.sum(1, keepdims=True)
    shares = np.divide(confusion, totals, out=np.zeros(confusion.shape), where=totals > 0)
    fig, ax = plt.subplots(figsize=(0.9 * len(classes) + 2.2, 0.7 * len(classes) + 1.2))
    sns.heatmap(shares, ax=ax, annot=confusion, fmt="d", vmin=0.0, vmax=1.0, cmap="Blues", cbar=False,
                xticklabels=classes, yticklabels=classes)
    ax.set(xlabel=xlabel, ylabel=ylabel, title=title)
    ax.tick_params(axis="x", rotation=30)
    ax.tick_params(axis="y", rotation=0)
    fig.tight_layout()
    return _finish(fig, save)


def map_gallery(maps: Sequence[np.ndarray], titles: Sequence[str], ncols: int | None = None, title: str = "",
                save: str | Path | None = None) -> Figure:
    """Attention maps side by side (row i = attending token), one titled panel each, `ncols` (default up to 5)
    per row."""
    ncols = ncols or max(1, min(5, len(maps)))
    nrows = max(1, -(-len(maps) // ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=(2.2 * ncols, 2.3 * nrows), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for ax, m, name in zip(axes.ravel(), maps, titles):
        ax.imshow(m, cmap="viridis", interpolation="nearest")
        ax.set_title(name, fontsize="small")
    fig.suptitle(title)
    fig.tight_layout()
    return _finish(fig, save)
