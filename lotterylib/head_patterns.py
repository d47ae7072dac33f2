"""Figure 4's inputs (docs/method.md section 7): every head's attention maps of dev examples, of the fine-tuned model
of every seed and of the pre-trained model, labelled by the CNN and by the rule labeller (`patterns`).

The pre-trained model's maps do not depend on the seed (only its random classifier layer does, which the
attention never sees), so it is classified once per task, with `seed` left empty in the tables.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from sklearn.metrics import confusion_matrix

from . import experiment, patterns, runs, stability, subnetworks

FINE_TUNED, PRE_TRAINED = "fine-tuned", "pre-trained"


@dataclass
class HeadLabels:
    """What `classify_heads` returns.

    counts: `patterns.head_class_counts` rows with leading columns task, seed, model, map;
    agreement: one row per (task, seed, model, map): maps labelled and the share where CNN = rule;
    rule_vs_cnn: the (5, 5) confusion over every real map (rows: rule labeller, columns: CNN);
    gallery: per map kind, one real map of each class the CNN found (first task, first seed, fine-tuned),
    as (maps, titles)."""

    counts: pd.DataFrame
    agreement: pd.DataFrame
    rule_vs_cnn: np.ndarray
    gallery: dict[str, tuple[list[np.ndarray], list[str]]] = field(default_factory=dict)

    @property
    def rule_agreement(self) -> float:
        """Share of all real maps on which the CNN and the rule labeller agree."""
        total = self.rule_vs_cnn.sum()
        return float(np.trace(self.rule_vs_cnn) / total) if total else float("nan")


def _gallery(maps: list[np.ndarray], cnn: np.ndarray) -> tuple[list[np.ndarray], list[str]]:
    picks = patterns.first_of_each_class(cnn)
    return ([maps[e][layer, head] for e, layer, head in picks.values()],
            [f"L{layer + 1} H{head + 1}: {name}" for name, (e, layer, head) in picks.items()])


def classify_heads(outputs_root: str, tasks: Sequence[str], seeds: Sequence[int], model: str, tokenizer,
                   classifiers: dict[str, patterns.MapClassifier], glue_dir: str = "", examples_per_task: int = 100,
                   max_seq_len: int = 128, compat: str = "paper") -> HeadLabels:
    """Label every head's raw and norm-weighted maps of `examples_per_task` seeded dev examples per task, for
    the fine-tuned model of every seed (`<outputs_root>/<task>/seed_<seed>/finetune/checkpoint`) and the
    pre-trained `model`; super-survivors: the heads kept by s-pruning in every seed of the task."""
    masks = stability.load_stability_masks(outputs_root, tasks, seeds)
    counts, agreement, rule_vs_cnn, gallery = [], [], np.zeros((5, 5), dtype=int), {}
    for task in tasks:
        td = experiment.load_task_data(task, tokenizer, glue_dir, max_dev_examples=examples_per_task,
                                       max_seq_len=max_seq_len, with_train=False)
        tokens = [tokenizer.convert_ids_to_tokens(ids) for ids in td.dev_enc.input_ids]
        super_heads, _ = subnetworks.super_survivors(*stability.stack_masks(masks[task]))
        runs_to_label = [(FINE_TUNED, s) for s in seeds] + [(PRE_TRAINED, None)]
        for model_name, seed in runs_to_label:
            if model_name == FINE_TUNED:
                net, _ = experiment.load_checkpoint(runs.stage_dir(outputs_root, "finetune", task, seed) / "checkpoint")
            else:
                net = experiment.build_model(model, td.task, seeds[0])
            for kind, (maps, cnn, rule) in patterns.label_model(net, td.dev_enc, tokens, classifiers, compat).items():
                keys = dict(task=td.task.name, seed=seed, model=model_name, map=kind)
                counts.append(patterns.head_class_counts(cnn, super_heads, **keys))
                agreement.append({**keys, "maps": cnn.size, "CNN = rule": float((cnn == rule).mean())})
                rule_vs_cnn += confusion_matrix(rule.ravel(), cnn.ravel(), labels=range(5))
                if kind not in gallery and model_name == FINE_TUNED:
                    gallery[kind] = _gallery(maps, cnn)
            del net
    counts, agreement = pd.concat(counts, ignore_index=True), pd.DataFrame(agreement)
    for table in (counts, agreement):
        table["seed"] = table["seed"].astype("Int64")      # empty for the pre-trained model
    return HeadLabels(counts, agreement, rule_vs_cnn, gallery)
