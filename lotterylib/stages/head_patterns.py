"""Figure 4's inputs (docs/method.md section 7): every head's attention maps of dev examples, of the fine-tuned model
of every seed and of the pre-trained model, labelled by the CNN and by the rule labeller (`patterns`).

The pre-trained model's maps do not depend on the seed (only its random classifier layer does, which the
attention never sees), so it is classified once per task, with `seed` left empty in the tables.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.metrics import confusion_matrix

from ..analysis import attention_maps, plots
from ..analysis.patterns.cnn import row_normalize
from ..analysis.patterns.heads import LabelledMaps, MapClassifier, label_model
from ..analysis.patterns.layout import CLASSES, layout
from ..analysis.patterns.rules import rule_label
from ..analysis.patterns.shares import first_of_each_class, head_class_counts
from ..core.rules import PAPER_RULES, Rules
from ..pruning import subnetworks
from ..pruning.masks import stack_seeds
from . import runs
from . import checkpoints
from ..core import finetuning
from . import inputs

FINE_TUNED, PRE_TRAINED = "fine-tuned", "pre-trained"
AGREEMENT_TARGET = 0.8   # issue 18: the CNN should agree with the rule labeller on at least this share of real maps


@dataclass
class HeadLabels:
    """What `classify_heads` returns.

    counts: `head_class_counts` rows with leading columns task, seed, model, map;
    agreement: one row per (task, seed, model, map): maps labelled and the share where CNN = rule;
    confusion: rule label x CNN label counts over every real map, per map kind: rows (map, rule, cnn, count),
    every pair of classes present;
    gallery: per map kind, one real map of each class the CNN found (first task, first seed, fine-tuned),
    as (maps, titles)."""

    counts: pd.DataFrame
    agreement: pd.DataFrame
    confusion: pd.DataFrame
    gallery: dict[str, tuple[list[np.ndarray], list[str]]] = field(default_factory=dict)

    def rule_vs_cnn(self, kind: str | None = None) -> np.ndarray:
        """The (5, 5) confusion (rows: rule labeller, columns: CNN) of one map kind, or of all maps (None)."""
        rows = self.confusion if kind is None else self.confusion[self.confusion["map"] == kind]
        table = rows.pivot_table(index="rule", columns="cnn", values="count", aggfunc="sum", fill_value=0)
        return table.reindex(index=CLASSES, columns=CLASSES, fill_value=0).to_numpy()

    @property
    def rule_agreement(self) -> float:
        """Share of all real maps on which the CNN and the rule labeller agree."""
        return _share(self.rule_vs_cnn())


def _gallery(maps: list[np.ndarray], cnn: np.ndarray) -> tuple[list[np.ndarray], list[str]]:
    picks = first_of_each_class(cnn)
    return ([maps[e][layer, head] for e, layer, head in picks.values()],
            [f"L{layer + 1} H{head + 1}: {name}" for name, (e, layer, head) in picks.items()])


def classify_heads(outputs_root: str, tasks: Sequence[str], seeds: Sequence[int], model: str, tokenizer,
                   classifiers: dict[str, MapClassifier], glue_dir: str = "", examples_per_task: int = 100,
                   max_seq_len: int = 128, rules: Rules = PAPER_RULES) -> HeadLabels:
    """Label every head's raw and norm-weighted maps of `examples_per_task` seeded dev examples per task, for
    the fine-tuned model of every seed (`<outputs_root>/<task>/seed_<seed>/finetune/checkpoint`) and the
    pre-trained `model`; super-survivors: the heads kept by s-pruning in every seed of the task."""
    masks = inputs.load_stability_masks(outputs_root, tasks, seeds)
    counts, agreement, gallery = [], [], {}
    confusion = {kind: np.zeros((5, 5), dtype=int) for kind in classifiers}
    for task in tasks:
        td = finetuning.load_task_data(task, tokenizer, glue_dir, max_dev_examples=examples_per_task,
                                       max_seq_len=max_seq_len, with_train=False)
        tokens = [tokenizer.convert_ids_to_tokens(ids) for ids in td.dev_enc.input_ids]
        super_heads, _ = subnetworks.super_survivors(*stack_seeds(masks[task]))
        runs_to_label = [(FINE_TUNED, s) for s in seeds] + [(PRE_TRAINED, None)]
        for model_name, seed in runs_to_label:
            if model_name == FINE_TUNED:
                net, _ = checkpoints.load_checkpoint(runs.stage_dir(outputs_root, "finetune", task, seed) / "checkpoint")
            else:
                net = finetuning.build_model(model, td.task, seeds[0])
            for kind, (maps, cnn, rule) in label_model(net, td.dev_enc, tokens, classifiers, rules).items():
                keys = dict(task=td.task.name, seed=seed, model=model_name, map=kind)
                counts.append(head_class_counts(cnn, super_heads, **keys))
                agreement.append({**keys, "maps": cnn.size, "CNN = rule": float((cnn == rule).mean())})
                confusion[kind] += confusion_matrix(rule.ravel(), cnn.ravel(), labels=range(5))
                if kind not in gallery and model_name == FINE_TUNED:
                    gallery[kind] = _gallery(maps, cnn)
            del net
    counts, agreement = pd.concat(counts, ignore_index=True), pd.DataFrame(agreement)
    for table in (counts, agreement):
        table["seed"] = table["seed"].astype("Int64")      # empty for the pre-trained model
    return HeadLabels(counts, agreement, _tidy(confusion), gallery)


def _tidy(confusion: dict[str, np.ndarray]) -> pd.DataFrame:
    """Rows (map, rule, cnn, count) of (5, 5) confusion matrices per map kind (rows: rule, columns: CNN)."""
    return pd.DataFrame([{"map": kind, "rule": rule, "cnn": cnn, "count": int(matrix[i, j])}
                         for kind, matrix in confusion.items()
                         for i, rule in enumerate(CLASSES) for j, cnn in enumerate(CLASSES)])


def pretrained_maps(model: str, task: str, tokenizer, glue_dir: str = "", examples: int = 8, max_seq_len: int = 128,
                    rules: Rules = PAPER_RULES) -> tuple[list[np.ndarray], np.ndarray]:
    """Every head's raw and norm-weighted map of `examples` seeded dev examples of `task` under the pre-trained
    `model`, row-normalised (as the rule labeller and a CNN trained on generated maps see them), with their
    rule labels (indices into CLASSES): real maps to probe a classifier with."""
    td = finetuning.load_task_data(task, tokenizer, glue_dir, max_dev_examples=examples, max_seq_len=max_seq_len,
                                   with_train=False)
    net = finetuning.build_model(model, td.task, 0)
    maps, labels = [], []
    for ids, m_raw, m_normed in zip(td.dev_enc.input_ids, *(attention_maps.example_maps(net, td.dev_enc, normed, rules)
                                                            for normed in (False, True))):
        lay = layout(tokenizer.convert_ids_to_tokens(ids))
        for m in (*m_raw.reshape(-1, *m_raw.shape[-2:]), *m_normed.reshape(-1, *m_normed.shape[-2:])):
            maps.append(row_normalize(m))
            labels.append(CLASSES.index(rule_label(maps[-1], lay.special, lay.segments)))
    return maps, np.asarray(labels, dtype=np.int64)


def describe_agreement(labels: HeadLabels, thread_difference: float, member_spread: float,
                       target: float = AGREEMENT_TARGET) -> str:
    """A Markdown paragraph, generated from the numbers: agreement of the CNN with the rule labeller (all maps and
    per map kind) against `target`, the largest disagreements, and how stable the CNN's class shares are."""
    total = labels.rule_vs_cnn()
    per_kind = ", ".join(f"{kind} {_share(labels.rule_vs_cnn(kind)):.0%}" for kind in labels.confusion["map"].unique())
    verdict = "meets" if labels.rule_agreement >= target else "falls short of"
    off = [(total[i, j], rule, cnn) for i, rule in enumerate(CLASSES)
           for j, cnn in enumerate(CLASSES) if i != j and total[i, j] > 0]
    worst = "; ".join(f"the rule says {rule} and the CNN {cnn} on {n / total.sum():.0%} of the maps"
                      for n, rule, cnn in sorted(off, reverse=True)[:3])
    return (f"**Agreement.** The CNN and the rule labeller give the same class to {labels.rule_agreement:.0%} of the "
            f"{total.sum():,} real maps ({per_kind}), which {verdict} the target of {target:.0%}."
            + (f" The largest disagreements: {worst}." if worst else "")
            + f"\n\n**Stability.** Trained twice with the caller at different torch thread counts, the CNN's class "
            f"shares on the same real maps differ by at most {thread_difference:.1%} (the target: within 2 points). "
            f"A single CNN of the ensemble is up to {member_spread:.1%} away from the ensemble's vote in a class "
            "share: the variation between seeds that the vote averages out.")


def _share(confusion: np.ndarray) -> float:
    total = confusion.sum()
    return float(np.trace(confusion) / total) if total else float("nan")


# --- notebook 7's figures and records ----------------------------------------------------------------------

def shown_sets(sets: Mapping[str, LabelledMaps], by_kind: bool) -> dict[str, LabelledMaps]:
    """The training sets notebook 7 shows: each map kind's (`by_kind`, the authors' archive) or the one generated
    set that serves both kinds, as "all"."""
    return dict(sets) if by_kind else {"all": sets["raw"]}


def training_galleries(sets: Mapping[str, LabelledMaps], by_kind: bool, save_dir: str | Path) -> str:
    """One map of each class of every shown training set (`shown_sets`), drawn and saved as
    training_examples_<kind>; returns a line per set: its size, source and maps per class."""
    lines = []
    for kind, data in shown_sets(sets, by_kind).items():
        shown = {name: data.maps[idx[0]] for name, idx in first_of_each_class(data.labels).items()}
        lines.append(f"{kind}: {len(data.maps)} maps from {data.source}, per class "
                     f"{np.bincount(data.labels, minlength=len(CLASSES)).tolist()}")
        plots.map_gallery(list(shown.values()), list(shown), title=f"training maps ({data.source})",
                          save=Path(save_dir) / f"training_examples_{kind}")
    return "\n".join(lines)


def classifier_figures(classifiers: Mapping[str, MapClassifier], by_kind: bool, epochs: int,
                       save_dir: str | Path) -> dict[str, float]:
    """The confusion on held-out generated maps of each shown classifier (every map kind's with the authors'
    archive, else the one of generated maps, as "all"), saved as cnn_confusion_<kind>, with a line each;
    returns the held-out accuracy per kind."""
    shown = dict(classifiers) if by_kind else {"all": classifiers["raw"]}
    for kind, clf in shown.items():
        t = clf.trained
        print(f"{kind}: held-out accuracy {t.accuracy:.3f} of the vote of {len(t.best_epochs)} CNNs (best epochs "
              f"{list(t.best_epochs)} of {epochs}, {t.confusion.sum()} held-out maps)")
        plots.confusion_heatmap(t.confusion, CLASSES, title=f"CNN on held-out maps ({clf.source})",
                                save=Path(save_dir) / f"cnn_confusion_{kind}")
    return {kind: clf.trained.accuracy for kind, clf in shown.items()}


def real_map_galleries(labels: HeadLabels, task: str, seed: int, save_dir: str | Path) -> None:
    """Per map kind, one real map of each class the CNN found (`HeadLabels.gallery`), saved as real_examples_<kind>."""
    for kind, (shown, titles) in labels.gallery.items():
        plots.map_gallery(shown, titles, title=f"{task}, fine-tuned (seed {seed}), {kind} maps, as the CNN labels them",
                          save=Path(save_dir) / f"real_examples_{kind}")


def classifier_record(classifiers: Mapping[str, MapClassifier]) -> dict[str, dict]:
    """What metrics.json keeps of the classifiers: each kind's best epochs and training source."""
    return {"cnn_best_epoch": {k: list(c.trained.best_epochs) for k, c in classifiers.items()},
            "training_source": {k: c.source for k, c in classifiers.items()}}


def super_survivor_heads(counts: pd.DataFrame) -> dict[str, int]:
    """Per task: how many heads are super-survivors (`head_class_counts` rows)."""
    heads = counts[counts.super_survivor][["task", "layer", "head"]].drop_duplicates()
    return {task: int((heads.task == task).sum()) for task in dict.fromkeys(counts.task)}


def stage_summary(held_out: Mapping[str, float], rule_agreement: float, thread_difference: float) -> dict[str, float]:
    """Notebook 7's headline numbers: the CNN's held-out accuracy per kind, its agreement with the rule labeller on
    real maps, and the thread check's largest share difference."""
    return {**{f"cnn held-out accuracy ({k})": v for k, v in held_out.items()}, "cnn-rule agreement": rule_agreement,
            "thread stability (max share difference)": thread_difference}
