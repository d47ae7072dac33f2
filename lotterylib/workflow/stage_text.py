"""The generated paragraphs of the stage notebooks (1 to 4): what a run is, and what its numbers show.

An executed notebook in a committed run speaks for that run: its opening paragraph comes from the recorded
parameters (`report.text.run_description`), its closing one from the numbers it wrote (metrics.json, scores.csv).
"""
from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import pandas as pd

from ..analysis.lottery import M_PRUNING, PRUNED, REFINETUNED, SUBNETWORKS, S_PRUNING
from ..stages import runs
from .report.frames import DEGENERATE_MARGIN
from .report.text import run_description
from ..core import files


def stage_description(outputs_root: str | Path, task: str, seed: int, params: Mapping,
                      examples: tuple[int, int] | None = None) -> str:
    """The opening paragraph of one (task, seed) stage: `report.text.run_description` of the stage's parameters,
    completed by the fine-tuning's (learning rate, batches, precision) where the stage does not train, with the
    preset's name (the outputs folder's) and the train / dev examples (given, else the fine-tuning's)."""
    root = files.resolve(outputs_root)
    finetune = runs.stage_dir(root, "finetune", task, seed)
    recorded = runs.read_params(finetune) if (finetune / "params.json").exists() else {}
    if examples is None and (finetune / "metrics.json").exists():
        m = files.read_json(finetune / "metrics.json")
        examples = (int(m["train_examples"]), int(m["dev_examples"]))
    settings = {**recorded, **params, "preset": root.name, "tasks": [task], "seeds": [seed]}
    if examples is not None:
        settings["examples"] = {task: examples}
    return run_description(settings)


def _share(score: float, full: float) -> str:
    return f"{score / full:.0%} of it" if full > 0 else "the full model is at or below 0"


def _floor(full: float, majority: float, margin: float = DEGENERATE_MARGIN) -> str:
    if full - majority < margin:
        return (f" The full model is less than {margin} above the majority class: a degenerate seed, which the "
                "report's verdicts leave out (and name).")
    return ""


def finetune_reading(metrics: Mapping, metric: str) -> str:
    """What a fine-tuning shows: its dev score against the majority class, and whether the seed is degenerate."""
    dev, majority = float(metrics["dev_score"]), float(metrics["majority_baseline"])
    text = (f"**This run:** fine-tuned on {metrics['train_examples']} examples, the model scores {dev:.3f} "
            f"({metric}) on {metrics['dev_examples']} dev examples, against {majority:.3f} for the majority class.")
    return text + (_floor(dev, majority) or f" It clears the majority class by {dev - majority:.3f}: the pruning "
                   "searches have room to work.")


def s_pruning_reading(metrics: Mapping, threshold: float) -> str:
    """What an s-pruning search shows: how much it kept, at what share of the full score, and degenerate ends."""
    full, good = float(metrics["full_score"]), float(metrics["good_score"])
    heads, mlps = int(metrics["heads_kept"]), int(metrics["mlps_kept"])
    n_heads, n_mlps = int(metrics["heads_total"]), int(metrics["mlps_total"])
    text = (f"**This run:** after {metrics['steps']} search steps the good s-subnetwork keeps {heads} of {n_heads} "
            f"heads ({heads / n_heads:.0%}) and {mlps} of {n_mlps} MLPs, and scores {good:.3f} against the full "
            f"model's {full:.3f} ({_share(good, full)}) on the data the search saw: at least {threshold:.0%} by the "
            "search's own rule. The paper's bert-base kept about half of its heads on most tasks.")
    if metrics.get("pruned_everything"):
        text += " The search pruned everything: every step kept the score above the threshold."
    elif heads == n_heads and mlps == n_mlps:
        text += (" The search pruned nothing (its first step already fell below the threshold): a degenerate "
                 "search, which the report's verdicts leave out.")
    return text


def m_pruning_reading(metrics: Mapping, threshold: float) -> str:
    """What an m-pruning search shows: the sparsity it reached and its score against the full model."""
    full, good = float(metrics["full_score"]), float(metrics["good_score"])
    text = (f"**This run:** global magnitude pruning removed {float(metrics['sparsity']):.1%} of the prunable "
            f"weights ({metrics['kept_steps']} accepted steps of 10%) and scores {good:.3f} against the full "
            f"model's {full:.3f} ({_share(good, full)}) on the data the search saw: at least {threshold:.0%} by "
            "the search's own rule.")
    if int(metrics["kept_steps"]) == 0:
        text += " No step was accepted: the good m-subnetwork is the full model."
    return text


def _ordering(row: pd.Series) -> str:
    good, rand, bad = (row.get(n) for n in SUBNETWORKS)
    if any(pd.isna(v) for v in (good, rand, bad)):
        return "incomplete"
    return "good > random > bad" if good > rand > bad else (
        "good > random, bad" if good > max(rand, bad) else "good is not above both")


def lottery_reading(scores: pd.DataFrame, full: float, majority: float) -> str:
    """What one seed's lottery shows: per method the good / random / bad scores pruned and re-fine-tuned, the
    ordering, and the re-fine-tuned subnetworks' share of the full-minus-majority gap."""
    main = scores[scores.method.isin([S_PRUNING, M_PRUNING]) & scores.subnetwork.isin(SUBNETWORKS)
                  & scores.setting.isin([PRUNED, REFINETUNED])]
    table = main.pivot_table(index=["method", "setting"], columns="subnetwork", values="score", aggfunc="first")
    lines = [f"**This seed** (full model {full:.3f}, majority class {majority:.3f}):"]
    for (method, setting), row in table.iterrows():
        values = " / ".join(f"{row[n]:.3f}" if n in row and not pd.isna(row[n]) else "-" for n in SUBNETWORKS)
        line = f"- {method}, {setting}: good / random / bad {values} ({_ordering(row)})"
        if setting == REFINETUNED and full - majority >= DEGENERATE_MARGIN:
            shares = ", ".join(f"{n} {(row[n] - majority) / (full - majority):.0%}" for n in SUBNETWORKS
                               if n in row and not pd.isna(row[n]))
            line += f"; share of the full-minus-majority gap: {shares}"
        lines.append(line + ".")
    lines.append("The paper's pattern: pruned, good clearly above random and bad; re-fine-tuned, all three close "
                 "to the full model. One seed cannot decide it: notebook 5 and the report take the seeds together."
                 + _floor(full, majority))
    return "\n".join(lines)
