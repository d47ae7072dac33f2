"""Figures: structure (axes, bars, annotations, lines) and saving; rendered off-screen with Agg."""
from __future__ import annotations

import itertools

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
from matplotlib.container import BarContainer  # noqa: E402

from lotterylib.analysis import plots


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def test_survival_heatmap_annotations_and_shared_scale():
    mean, std = np.full((3, 4), 0.5), np.full((3, 4), 0.1)
    fig = plots.survival_heatmap(mean, std, np.array([0.2, 0.4, 1.0]), None, title="t", value_label="v")
    ax_heads, ax_mlp, ax_bar = fig.axes
    assert len(fig.axes) == 3
    assert [t.get_text() for t in ax_heads.texts] == ["0.50\n±0.10"] * 12
    assert [t.get_text() for t in ax_mlp.texts] == ["0.20", "0.40", "1.00"]     # no std: mean only
    assert ax_heads.collections[0].get_clim() == ax_mlp.collections[0].get_clim() == (0.2, 1.0)
    assert ax_bar.get_ylabel() == "v"
    with pytest.raises(ValueError):
        plots.survival_heatmap(mean, std, np.ones(2), np.ones(2))


def test_importance_distribution_drops_non_finite():
    heads = np.linspace(0, 1, 144).reshape(12, 12)
    heads[0, 0] = np.nan
    fig = plots.importance_distribution(heads, np.linspace(0, 1, 12), bins=10)
    assert len(fig.axes) == 2
    assert fig.axes[0].get_title() == "heads (n = 143)"
    assert all(len(ax.patches) == 10 for ax in fig.axes)


def _lottery_df(seeds=(1, 2, 3)) -> pd.DataFrame:
    combos = itertools.product(plots.METHODS, plots.SUBNETWORK_COLOURS, plots.SETTINGS, seeds)
    return pd.DataFrame([{"method": m, "subnetwork": n, "setting": s, "seed": seed,
                          "score": {"good": 0.8, "random": 0.6, "bad": 0.5}[n] + 0.01 * seed}
                         for m, n, s, seed in combos])


def _bar_containers(ax) -> list[BarContainer]:
    return [c for c in ax.containers if isinstance(c, BarContainer)]


def test_lottery_bars():
    fig = plots.lottery_bars(_lottery_df(), full_mean=0.85, full_std=0.02, majority=0.5)
    ax = fig.axes[0]
    bars = _bar_containers(ax)
    assert [len(c) for c in bars] == [4, 4, 4]                        # good/random/bad x 2 methods x 2 settings
    assert [b.get_height() for b in bars[0]] == pytest.approx([0.82] * 4)   # good: mean over seeds
    hlines = [line.get_ydata()[0] for line in ax.get_lines() if not line.get_label().startswith("_")]
    assert sorted(hlines) == pytest.approx([0.5, 0.83])               # majority, full - 1 std
    one_method = _lottery_df(seeds=(1,)).query("method == 's-pruning'")   # one seed: no std, no crash
    ax2 = plots.lottery_bars(one_method, 0.85, 0.02, legend=False).axes[0]
    assert [len(c) for c in _bar_containers(ax2)] == [2, 2, 2] and ax2.get_legend() is None


def test_pattern_distribution_stacks_to_one():
    classes = ["vertical", "diagonal", "block"]
    rows = [{"group": g, "map_kind": k, "model": m, "class": c, "share": 1 / 3}
            for g, k, m, c in itertools.product(["super-survivors", "all heads"], ["raw", "normed"],
                                                ["fine-tuned", "pre-trained"], classes)]
    fig = plots.pattern_distribution(pd.DataFrame(rows), title="RTE")
    assert len(fig.axes) == 2 and fig._suptitle.get_text() == "RTE"
    for ax in fig.axes:
        assert len(ax.containers) == 3 and all(len(c) == 4 for c in ax.containers)
        tops = [bar.get_y() + bar.get_height() for bar in ax.containers[-1]]
        assert tops == pytest.approx([1.0] * 4)


def test_pattern_figures_one_per_task(tmp_path):
    rows = [{"task": t, "group": "all heads", "map_kind": "raw", "model": "fine-tuned", "class": c, "share": 0.5}
            for t in ("RTE", "MRPC") for c in ("vertical", "block")]
    figures = plots.pattern_figures(pd.DataFrame(rows), ["block", "vertical"], save_dir=tmp_path, prefix="figure4_")
    assert list(figures) == ["RTE", "MRPC"] and figures["MRPC"]._suptitle.get_text() == "MRPC: attention patterns"
    assert sorted(p.name for p in tmp_path.glob("*.png")) == ["figure4_MRPC.png", "figure4_RTE.png"]
    assert list(plots.pattern_figures(pd.DataFrame(rows[:2]), ["vertical", "block"])) == ["RTE"]   # nothing saved


def test_score_trajectory():
    steps = pd.DataFrame({"step": range(6), "score": np.linspace(0.9, 0.7, 6),
                          "phase": ["joint"] * 3 + ["heads"] * 2 + ["mlps"]})
    ax = plots.score_trajectory(steps, full_score=0.9).axes[0]
    lines = ax.get_lines()
    assert len(lines) == 5                                            # 3 phases + full + threshold
    assert lines[-1].get_ydata()[0] == pytest.approx(0.81)
    assert len(plots.score_trajectory(steps.drop(columns="phase"), 0.9).axes[-1].get_lines()) == 3


def test_save_figure_writes_png_and_pdf(tmp_path):
    fig, _ = plt.subplots()
    written = plots.save_figure(fig, tmp_path / "sub" / "fig")
    assert [p.name for p in written] == ["fig.png", "fig.pdf"]
    assert all(p.stat().st_size > 0 for p in written)
    plots.score_trajectory(pd.DataFrame({"step": [0], "score": [1.0]}), 1.0, save=tmp_path / "traj")
    assert (tmp_path / "traj.png").exists() and (tmp_path / "traj.pdf").exists()


def test_overlap_heatmaps_confusion_and_gallery():
    m = pd.DataFrame([[1.0, 0.25], [0.25, 1.0]], index=[1, 2], columns=[1, 2])
    fig = plots.overlap_heatmaps({"RTE": m, "tasks": m.iloc[:1, :1]}, title="Jaccard")
    assert len(fig.axes) == 2 and fig.axes[0].get_title() == "RTE"
    assert [t.get_text() for t in fig.axes[0].texts] == ["1.00", "0.25", "0.25", "1.00"]
    conf = plots.confusion_heatmap(np.array([[3, 1], [0, 0]]), ["a", "b"]).axes[0]
    assert [t.get_text() for t in conf.texts] == ["3", "1", "0", "0"]          # counts; an empty row stays 0
    assert conf.collections[0].get_array().reshape(2, 2).tolist() == [[0.75, 0.25], [0.0, 0.0]]
    gallery = plots.map_gallery([np.eye(3)] * 3, ["x", "y", "z"], ncols=2)
    assert len(gallery.axes) == 4 and [ax.get_title() for ax in gallery.axes] == ["x", "y", "z", ""]


def test_refit_curves_one_panel_per_method_and_the_constant_loss_line():
    steps = np.arange(1, 21)
    rows = [pd.DataFrame({"method": m, "subnetwork": n, "setting": st, "step": steps, "loss": np.linspace(2, 1, 20)})
            for m, n, st in [("s-pruning", "good", "re-fine-tuned"), ("s-pruning", "bad", "re-fine-tuned 2x epochs"),
                             ("m-pruning", "bad (authors)", "re-fine-tuned")]]
    fig = plots.refit_curves(pd.concat(rows), constant_loss=1.5, window=1)
    ax_s, ax_m = fig.axes
    assert [ax_s.get_title(), ax_m.get_title()] == ["s-pruning", "m-pruning"]
    good, bad, const = ax_s.get_lines()
    assert np.allclose(good.get_ydata(), np.linspace(2, 1, 20))          # window 1: the losses themselves
    assert good.get_color() == plots.SUBNETWORK_COLOURS["good"] and good.get_linestyle() == "-"
    assert bad.get_linestyle() == "--" and bad.get_label() == "bad, re-fine-tuned 2x epochs"
    assert list(const.get_ydata()) == [1.5, 1.5]
    assert ax_m.get_lines()[0].get_linestyle() == "--"                  # the authors' rule: dashed
