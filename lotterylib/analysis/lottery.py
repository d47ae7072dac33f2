"""Lottery-ticket tests for one (task, seed) (docs/method.md section 4; `notebooks/04_lottery_tests.ipynb`): good /
random / bad subnetworks drawn, pruned and re-fine-tuned, the Appendix D, random-init and Appendix E extras.

Every evaluation becomes one row of a tidy table (`SCORE_COLUMNS`, then `SPREAD_COLUMNS`: how varied its dev
predictions are, to tell a collapsed model from a weak one), and every re-fine-tuning's per-step loss a curve
(`curves_table`). Across tasks and seeds those tables are
collected and summarised by `lottery_stats`, Table 2 and the appendix tables are built by `tables`, and
Figure 2 is drawn by `plots.lottery_figure`. Scores are the paper's metric per task (`metrics["score"]`),
on a 0-1 scale. With `selection: split` every `score` is on the report half of dev, which the searches never
saw; the pruned rows and the full model's row also carry `score_search` (on the half the masks were chosen
on) and `score_unseen` (on the report half, = `score`), whose difference `leak_table` shows.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from ..core.data import Encoded
from ..core.finetuning import dev_half, finetune_model, load_task_data
from ..core.gates import Gates
from ..core.rules import PAPER_RULES, Rules
from ..core.tasks import Task
from ..core.training import TrainConfig, evaluate, result_line
from ..pruning import magnitude, subnetworks
from ..pruning.masks import (HeadMasks, WeightMasks, head_masks_size, kept_count, save_head_mask_sets,
                             save_weight_masks, sparsity, stack_seeds)

# weight_share: s-masks, the kept heads' and MLPs' share of the encoder weight matrices
# (`subnetworks.weight_share`); m-masks, the kept share of the prunable set. sparsity = 1 - weight_share.
SCORE_COLUMNS = ["task", "seed", "method", "subnetwork", "setting", "epochs", "heads_kept", "mlps_kept",
                 "weight_share", "sparsity", "score"]
# selection "split": a pruned row's (and the full model's) score on the search half and on the unseen (report)
# half of dev; NaN on re-fine-tuned rows and in "dev" runs. scores.csv holds SCORE_COLUMNS + HELDOUT_COLUMNS.
HELDOUT_COLUMNS = ["score_search", "score_unseen"]
# pred_std (regression) or pred_major_share (classification), and whether the predictions are constant
# (`metrics.prediction_spread`); the other one of the first two is empty. CURVE_COLUMNS: `curves_table`.
SPREAD_COLUMNS = ["pred_std", "pred_major_share", "constant_predictions"]
CURVE_COLUMNS = ["method", "subnetwork", "setting", "step", "loss"]
# the rows of results.csv: methods and settings
FULL, FINETUNED = "full model", "fine-tuned"
PRUNED, REFINETUNED, REFINETUNED_2X = "pruned", "re-fine-tuned", "re-fine-tuned 2x epochs"
S_PRUNING, M_PRUNING, SUPER_SURVIVORS, RANDOM_INIT = "s-pruning", "m-pruning", "super-survivors", "random-init"
SUBNETWORKS = ("good", "random", "bad")


def split_rule(subnetwork: str) -> tuple[str, str]:
    """(base name, rule) of a subnetwork row: "bad (authors)" -> ("bad", "authors"); "bad" -> ("bad", "") (a
    plain row was drawn by the run's own rules)."""
    base, _, rule = subnetwork.partition(" (")
    return base, rule.removesuffix(")")


# --- per (task, seed): drawing, evaluating, re-fine-tuning -----------------------------------------------

def draw_subnetworks(seed: int, head_mask: np.ndarray, mlp_mask: np.ndarray, weight_masks: WeightMasks,
                     all_head_masks: np.ndarray, all_mlp_masks: np.ndarray, rules: Rules = PAPER_RULES,
                     weights: WeightMasks | None = None, both_rules: bool = True) -> dict[str, dict]:
    """`{"s": ..., "m": ..., "super": ...}` subnetworks, drawn from one `np.random.default_rng(seed)` in
    that order (so they are a function of the seed alone). `weights`: the fine-tuned dense values
    (`magnitude.prunable_weights`), needed for the authors' bad m-masks. With `both_rules` and `weights`,
    the random s- and bad m-subnetworks are also drawn under the other rules (`Rules.other`), last (so the
    draws before do not change; `"random (authors)"` in "s", `"bad (authors)"` in "m", or "(paper)").
    `all_*_masks`: every seed's s-masks stacked, for super-survivors."""
    rng = np.random.default_rng(seed)
    out = {"s": subnetworks.s_subnetworks(head_mask, mlp_mask, rng, rules),
           "m": subnetworks.m_subnetworks(weight_masks, rng, rules, weights),
           "super": subnetworks.super_subnetworks(all_head_masks, all_mlp_masks, rng)}
    if both_rules and weights is not None:
        s_other, m_other = subnetworks.other_rule_subnetworks(out["s"]["good"], out["m"]["good"], rng, rules, weights)
        out["s"].update(s_other)
        out["m"].update(m_other)
    return out


def draw_for_seed(seed: int, net: torch.nn.Module, s_masks: HeadMasks, weight_masks: WeightMasks,
                  all_seeds: dict[int, HeadMasks], rules: Rules = PAPER_RULES,
                  both_rules: bool = True) -> dict[str, dict]:
    """`draw_subnetworks` for one run: the good s-masks and weight masks of `seed`, the s-masks of every seed
    of the task (`inputs.task_s_masks`) for the super-survivors, and the fine-tuned `net`'s weights for the
    authors' bad m-masks (both rules are drawn with `both_rules`)."""
    if seed not in all_seeds:
        raise ValueError(f"seed {seed} is not among the seeds with s-pruning masks {sorted(all_seeds)}: "
                         "run its s_pruning stage first.")
    weights = magnitude.prunable_weights(net, rules)
    return draw_subnetworks(seed, *s_masks, weight_masks, *stack_seeds(all_seeds), rules=rules,
                            weights=weights, both_rules=both_rules)


def file_stem(subnetwork: str) -> str:
    """A subnetwork's name as a file name: "bad (authors)" -> "bad_authors"."""
    return "_".join(split_rule(subnetwork)).strip("_")


def save_subnetworks(folder: str | Path, subnets: dict[str, dict]) -> None:
    """`draw_subnetworks`'s sets into a run folder: `s_subnetworks.npz`, `super_subnetworks.npz` and
    `m_subnetworks/<file_stem>.npz`."""
    folder = Path(folder)
    save_head_mask_sets(folder / "s_subnetworks.npz", subnets["s"])
    save_head_mask_sets(folder / "super_subnetworks.npz", subnets["super"])
    for name, masks in subnets["m"].items():
        save_weight_masks(folder / "m_subnetworks" / f"{file_stem(name)}.npz", masks)


def subnetwork_sizes(subnets: dict[str, dict]) -> pd.DataFrame:
    """One row per drawn subnetwork: set ("s", "super", "m"), subnetwork, heads and MLPs kept (s-masks),
    weights kept and sparsity (m-masks)."""
    rows = [{"set": k, "subnetwork": n, "heads kept": int(np.count_nonzero(h)), "MLPs kept": int(np.count_nonzero(p))}
            for k in ("s", "super") for n, (h, p) in subnets[k].items()]
    rows += [{"set": "m", "subnetwork": n, "weights kept": kept_count(m), "sparsity": sparsity(m)}
             for n, m in subnets["m"].items()]
    return pd.DataFrame(rows)


@dataclass
class Outcome:
    """One evaluation: the dev score, the predictions' spread (`metrics.prediction_spread`) and, for a
    re-fine-tuning, its loss at every step."""

    score: float
    spread: dict
    losses: list[float] = field(default_factory=list)


@dataclass
class LotterySetup:
    """What every evaluation of one (task, seed) shares; `cache` keeps s re-fine-tunings' outcomes so that an
    identical s-subnetwork (e.g. the super-survivors of a single seed = the good set) is trained once.
    `search_dev` (selection "split", `with_search_half`): the half of dev the masks were chosen on; `dev`
    is then the other half."""

    model: str
    task: Task
    train: Encoded
    dev: Encoded
    cfg: TrainConfig
    seed: int
    rules: Rules = PAPER_RULES
    progress: bool = True
    cache: dict = field(default_factory=dict)
    search_dev: Encoded | None = None

    def evaluate(self, net: torch.nn.Module, gates: Gates | None = None, desc: str = "evaluate",
                 key: str = "score", dev: Encoded | None = None) -> Outcome:
        """The paper metric of `net` on `dev` (default: the setup's dev set; `key="stop_score"`: what the
        pruning searches compared), and the spread of its predictions."""
        result = evaluate(net, self.task, self.dev if dev is None else dev, self.cfg.eval_batch_size, gates=gates,
                          rules=self.rules, bf16=self.cfg.bf16, progress=self.progress, desc=desc)
        return Outcome(result.metrics[key], result.spread)


def with_search_half(setup: LotterySetup, tokenizer, glue_dir: str, max_dev_examples: int, max_seq_len: int,
                     selection: str) -> LotterySetup:
    """`setup` itself with `selection="dev"`; with "split", a copy that also holds the half of dev the pruning
    searches chose the masks on (`search_dev`), so that pruned rows are scored on both halves."""
    if selection == "dev":
        return setup
    part = load_task_data(setup.task.name, tokenizer, glue_dir, 0, max_dev_examples, max_seq_len, with_train=False,
                          dev_half=dev_half(selection, "selection"))
    return replace(setup, search_dev=part.dev_enc)


def search_setup(setup: LotterySetup) -> LotterySetup:
    """`setup` on the dev data the pruning searches saw (to check the good masks against the searches' scores):
    itself without a `search_dev`, else a copy that scores on it."""
    return setup if setup.search_dev is None else replace(setup, dev=setup.search_dev, search_dev=None)


def held_out(setup: LotterySetup, score: float, evaluate_on: Callable[[Encoded], float]) -> dict[str, float]:
    """`score_search` (`evaluate_on(setup.search_dev)`) and `score_unseen` (= `score`, on the report half) of a
    pruned row in a "split" setup; both NaN without a search half."""
    if setup.search_dev is None:
        return dict.fromkeys(HELDOUT_COLUMNS, np.nan)
    return {"score_search": evaluate_on(setup.search_dev), "score_unseen": score}


def pruned_s(setup: LotterySetup, net: torch.nn.Module, head_mask: np.ndarray, mlp_mask: np.ndarray,
             desc: str = "evaluate", key: str = "score", dev: Encoded | None = None) -> Outcome:
    """Dev score of the fine-tuned `net` with heads/MLPs gated by the masks; the gates are removed after."""
    with Gates(net, head_mask, mlp_mask) as gates:
        return setup.evaluate(net, gates, desc, key, dev)


def pruned_m(setup: LotterySetup, net: torch.nn.Module, masks: WeightMasks,
             desc: str = "evaluate", key: str = "score", dev: Encoded | None = None) -> Outcome:
    """Dev score of the fine-tuned `net` with the weight masks; its dense weights are restored after."""
    magnitude.apply_weight_masks(net, masks, setup.rules)
    try:
        return setup.evaluate(net, desc=desc, key=key, dev=dev)
    finally:
        magnitude.remove_weight_masks(net, permanent=False)


def _refit_outcome(setup: LotterySetup, net: torch.nn.Module, losses: list[float], desc: str) -> Outcome:
    """A re-fine-tuned `net` scored on dev, with its losses; prints its `training.result_line`."""
    outcome = replace(setup.evaluate(net), losses=losses)
    print(result_line(desc, setup.task, outcome.score, outcome.spread, losses), flush=True)
    return outcome


def refinetuned_s(setup: LotterySetup, head_mask: np.ndarray, mlp_mask: np.ndarray, epochs_factor: float = 1.0,
                  random_init: bool = False, desc: str = "re-fine-tune") -> Outcome:
    """Fine-tune from the pre-trained (or random) weights with the s-masks held, then score with them on.

    The s-subnetwork is trained physically pruned (`finetune_model(physical=True)`): what the gated model
    computes, with fewer FLOPs."""
    key = ((np.asarray(head_mask) != 0).tobytes(), (np.asarray(mlp_mask) != 0).tobytes(), epochs_factor, random_init)
    if key not in setup.cache:
        cfg = replace(setup.cfg, epochs=setup.cfg.epochs * epochs_factor)
        net, _, losses = finetune_model(setup.model, setup.task, setup.train, cfg, setup.seed, head_mask=head_mask,
                                        mlp_mask=mlp_mask, random_init=random_init,
                                        progress=setup.progress, desc=desc, physical=True)
        setup.cache[key] = _refit_outcome(setup, net, losses, desc)
        del net
    return setup.cache[key]


def refinetuned_m(setup: LotterySetup, masks: WeightMasks, desc: str = "re-fine-tune") -> Outcome:
    """Fine-tune from the pre-trained weights with the weight masks held (masked weights stay zero), then score."""
    net, gates, losses = finetune_model(setup.model, setup.task, setup.train, setup.cfg, setup.seed,
                                        before_training=lambda n: magnitude.apply_weight_masks(n, masks, setup.rules),
                                        progress=setup.progress, desc=desc)
    gates.remove()
    return _refit_outcome(setup, net, losses, desc)


def _outcome_fields(outcome: Outcome) -> dict:
    """A row's score, spread columns and (dropped by `tidy`, read by `curves_table`) losses."""
    return dict(score=outcome.score, **{c: outcome.spread.get(c, np.nan) for c in SPREAD_COLUMNS},
                losses=outcome.losses)


def s_row(task: str, seed: int, method: str, subnetwork: str, setting: str, epochs: float,
          head_mask: np.ndarray, mlp_mask: np.ndarray, config, outcome: Outcome) -> dict:
    """A tidy row for an s-mask: heads/MLPs kept, their share of the encoder weight matrices."""
    heads, mlps = head_masks_size(head_mask, mlp_mask)
    share = subnetworks.weight_share(head_mask, mlp_mask, config)
    return dict(task=task, seed=seed, method=method, subnetwork=subnetwork, setting=setting, epochs=epochs,
                heads_kept=heads, mlps_kept=mlps, weight_share=share, sparsity=1 - share, **_outcome_fields(outcome))


def m_row(task: str, seed: int, subnetwork: str, setting: str, epochs: float, masks: WeightMasks,
          outcome: Outcome) -> dict:
    """A tidy row for a weight mask: share of the prunable weights kept, and the sparsity."""
    pruned = sparsity(masks)
    return dict(task=task, seed=seed, method=M_PRUNING, subnetwork=subnetwork, setting=setting, epochs=epochs,
                heads_kept=np.nan, mlps_kept=np.nan, weight_share=1 - pruned, sparsity=pruned,
                **_outcome_fields(outcome))


def s_lottery_rows(setup: LotterySetup, net: torch.nn.Module, subnets: dict[str, HeadMasks],
                   method: str = S_PRUNING) -> list[dict]:
    """Each s-subnetwork pruned (on the fine-tuned `net`) and re-fine-tuned: two rows per subnetwork."""
    rows, epochs = [], setup.cfg.epochs
    for name, (head, mlp) in subnets.items():
        desc = f"{method} {name} pruned"
        pruned = pruned_s(setup, net, head, mlp, desc=desc)
        halves = held_out(setup, pruned.score,
                          lambda dev: pruned_s(setup, net, head, mlp, f"{desc}, search half", dev=dev).score)
        retrained = refinetuned_s(setup, head, mlp, desc=f"{method} {name} re-fine-tune")
        rows += [s_row(setup.task.name, setup.seed, method, name, PRUNED, epochs, head, mlp, net.config, pruned)
                 | halves,
                 s_row(setup.task.name, setup.seed, method, name, REFINETUNED, epochs, head, mlp, net.config,
                       retrained)]
    return rows


def m_lottery_rows(setup: LotterySetup, net: torch.nn.Module, subnets: dict[str, WeightMasks]) -> list[dict]:
    """Each weight-mask subnetwork pruned (on the fine-tuned `net`) and re-fine-tuned: two rows each."""
    rows, epochs = [], setup.cfg.epochs
    for name, masks in subnets.items():
        desc = f"{M_PRUNING} {name} pruned"
        pruned = pruned_m(setup, net, masks, desc=desc)
        halves = held_out(setup, pruned.score, lambda dev: pruned_m(setup, net, masks, f"{desc}, search half",
                                                                    dev=dev).score)
        retrained = refinetuned_m(setup, masks, desc=f"{M_PRUNING} {name} re-fine-tune")
        rows += [m_row(setup.task.name, setup.seed, name, PRUNED, epochs, masks, pruned) | halves,
                 m_row(setup.task.name, setup.seed, name, REFINETUNED, epochs, masks, retrained)]
    return rows


def full_rows(setup: LotterySetup, net: torch.nn.Module) -> list[dict]:
    """With a search half (selection "split"): one row for the fine-tuned `net`, nothing removed (method
    "full model", setting "fine-tuned"), scored on both halves like the pruned rows, so that each half has
    its own "share of the full model". No row in "dev" runs (notebook 1 has the full model's score)."""
    if setup.search_dev is None:
        return []
    layers, heads = net.config.num_hidden_layers, net.config.num_attention_heads
    outcome = setup.evaluate(net, desc="full model")
    halves = held_out(setup, outcome.score,
                      lambda dev: setup.evaluate(net, desc="full model, search half", dev=dev).score)
    return [s_row(setup.task.name, setup.seed, FULL, "", FINETUNED, setup.cfg.epochs, np.ones((layers, heads)),
                  np.ones(layers), net.config, outcome) | halves]


def extra_rows(setup: LotterySetup, net: torch.nn.Module, s_subnets: dict[str, HeadMasks],
               super_subnets: dict[str, HeadMasks]) -> list[dict]:
    """The extras: the bad s-subnetwork re-fine-tuned for twice the epochs (Appendix D); random weights with
    the random s-mask (the good = bad size) fine-tuned (Table 2); super / bad / random sets (Appendix E)."""
    t, seed, epochs = setup.task.name, setup.seed, setup.cfg.epochs
    bad, rand = s_subnets["bad"], s_subnets["random"]
    long = refinetuned_s(setup, *bad, epochs_factor=2.0, desc="bad s re-fine-tune 2x")
    rand_init = refinetuned_s(setup, *rand, random_init=True, desc="random init + random s")
    return [s_row(t, seed, S_PRUNING, "bad", REFINETUNED_2X, 2 * epochs, *bad, net.config, long),
            s_row(t, seed, RANDOM_INIT, "random", REFINETUNED, epochs, *rand, net.config, rand_init),
            *s_lottery_rows(setup, net, super_subnets, method=SUPER_SURVIVORS)]


def tidy(rows: Iterable[dict]) -> pd.DataFrame:
    """The rows as a table with the `SCORE_COLUMNS`, `HELDOUT_COLUMNS` and `SPREAD_COLUMNS`, in that order (NaN
    where a row has no held-out scores)."""
    return pd.DataFrame(list(rows), columns=SCORE_COLUMNS + HELDOUT_COLUMNS + SPREAD_COLUMNS)


def leaks(scores: pd.DataFrame) -> pd.DataFrame:
    """Per task, seed, method and subnetwork of a split run's rows with held-out scores (the pruned ones and the
    full model): `score_search`, `score_unseen`, `leak` = search - unseen, and each half's share of the full
    model's score on that half (`share_search`, `share_unseen`; NaN without the full model's row). Empty for
    tables without held-out scores ("dev" runs, or runs older than the columns)."""
    keys = ["task", "seed", "method", "subnetwork"]
    out_cols = [*keys, *HELDOUT_COLUMNS, "leak", "share_search", "share_unseen"]
    if not set(HELDOUT_COLUMNS) <= set(scores.columns):
        return pd.DataFrame(columns=out_cols)
    part = scores.dropna(subset=HELDOUT_COLUMNS)[[*keys, *HELDOUT_COLUMNS]].fillna({"subnetwork": ""})
    part = part.assign(leak=part.score_search - part.score_unseen)
    full = part[part.method == FULL].set_index(["task", "seed"])[HELDOUT_COLUMNS]
    ref = full.reindex(pd.MultiIndex.from_frame(part[["task", "seed"]])).to_numpy()
    part = part.assign(share_search=part.score_search.to_numpy() / ref[:, 0],
                       share_unseen=part.score_unseen.to_numpy() / ref[:, 1])
    return part[out_cols].reset_index(drop=True)


def leak_table(scores: pd.DataFrame) -> pd.DataFrame:
    """The held-out leak per task, method and subnetwork (`leaks`), over seeds: the mean scores on each half,
    the leak's mean and std (ddof 1; NaN for one seed), each seed's leak (`leak seed <s>`), the mean shares of
    the full model on each half, and the number of seeds. Empty without held-out scores."""
    per_seed = leaks(scores)
    keys = ["task", "method", "subnetwork"]
    stats = per_seed.groupby(keys, sort=False).agg(
        score_search=("score_search", "mean"), score_unseen=("score_unseen", "mean"), leak_mean=("leak", "mean"),
        leak_std=("leak", "std"), share_search=("share_search", "mean"), share_unseen=("share_unseen", "mean"),
        seeds=("leak", "count"))
    wide = per_seed.pivot_table(index=keys, columns="seed", values="leak", sort=False)
    wide.columns = [f"leak seed {s}" for s in wide.columns]
    return stats.join(wide).reset_index()


def curves_table(rows: Iterable[dict]) -> pd.DataFrame:
    """Every re-fine-tuning's loss per step (1-based), one row per step (`CURVE_COLUMNS`); pruned rows have none."""
    out = [dict(method=r["method"], subnetwork=r["subnetwork"], setting=r["setting"], step=i, loss=loss)
           for r in rows for i, loss in enumerate(r.get("losses", []), start=1)]
    return pd.DataFrame(out, columns=CURVE_COLUMNS)


def seed_table(scores: pd.DataFrame) -> pd.DataFrame:
    """One (task, seed): score per method and subnetwork (rows) and setting (columns); the full model's row of a
    split run is left out (the notebook adds the full model from notebook 1)."""
    scores = scores[scores.method != FULL]
    table = scores.pivot_table(index=["method", "subnetwork"], columns="setting", values="score")
    rows = list(dict.fromkeys(zip(scores.method, scores.subnetwork)))
    return table.reindex(index=pd.MultiIndex.from_tuples(rows, names=table.index.names),
                         columns=list(dict.fromkeys(scores.setting)))


def seed_summary(scores: pd.DataFrame) -> dict[str, float]:
    """Headline numbers of one (task, seed): the s-subnetworks and the bad m-subnetwork, re-fine-tuned."""
    rft = scores[scores.setting == REFINETUNED].set_index(["method", "subnetwork"])["score"]
    out = {f"s {n} re-fine-tuned": float(rft[(S_PRUNING, n)]) for n in SUBNETWORKS if (S_PRUNING, n) in rft.index}
    if (M_PRUNING, "bad") in rft.index:
        out["m bad re-fine-tuned"] = float(rft[(M_PRUNING, "bad")])
    return out
