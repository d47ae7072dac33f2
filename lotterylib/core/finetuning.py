"""The steps the stage notebooks share: load a task's data, build and fine-tune a (masked) model.

`selection` (docs/method.md, "Masks chosen on held-out data"): with "dev" (the paper's way) the pruning
searches choose masks on the dev set and every score is reported on that same dev set; with "split" the
searches see only a seeded half of dev, the "selection" half (`dev_half(selection, "selection")`), and every
reported score, the full model's included, comes from the other, "report" half (`dev_half(selection, "report")`).
The fine-tuned checkpoints are `stages.checkpoints`'."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from .data import Encoded, GlueSplit, check_halves, dev_halves, encode, load_split, subsample
from .gates import Gates
from .models import load_classifier
from .physical import prune_physically
from .tasks import Task, get_task
from .training import TrainConfig, default_device, fine_tune, set_seed

DATA_SEED = 0  # subsamples are the same for every run seed, so seeds differ only in init and data order
SELECTIONS = ("dev", "split")
DEV_HALVES = ("", "selection", "report")  # "": the whole dev set


def dev_half(selection: str, use: str) -> str:
    """The part of dev a stage uses: the whole set ("") with `selection="dev"`; with "split", the half `use`
    names: "selection" (the pruning searches) or "report" (reported scores)."""
    if selection not in SELECTIONS:
        raise ValueError(f"selection must be one of {SELECTIONS}, not {selection!r}")
    if use not in DEV_HALVES[1:]:
        raise ValueError(f"use must be one of {DEV_HALVES[1:]}, not {use!r}")
    return "" if selection == "dev" else use


def check_selection(metrics: dict, selection: str, where: str) -> None:
    """Raise if an earlier stage (its `metrics`) ran with another `selection` than this one."""
    ran = metrics.get("selection", "dev")
    if ran != selection:
        raise ValueError(f"{where} ran with selection={ran!r}, this stage with {selection!r}: rerun it with the "
                         "same selection, or use another outputs_root for each selection.")


@dataclass
class TaskData:
    """A task's (subsampled) splits, raw and tokenised."""

    task: Task
    train: GlueSplit | None
    dev: GlueSplit
    train_enc: Encoded | None
    dev_enc: Encoded


def load_task_data(task: str, tokenizer, glue_dir: str = "", max_train_examples: int = 0,
                   max_dev_examples: int = 0, max_seq_len: int = 128, with_train: bool = True,
                   dev_split: str = "dev", dev_half: str = "") -> TaskData:
    """Load, subsample (seeded, 0 = all) and tokenise a task's train and dev splits; `dev_half` "selection"
    or "report" keeps that half of the (subsampled) dev set (`data.dev_halves`, seeded with `DATA_SEED`)."""
    if dev_half not in DEV_HALVES:
        raise ValueError(f"dev_half must be one of {DEV_HALVES}, not {dev_half!r}")
    t = get_task(task)
    train = subsample(load_split(t, "train", glue_dir or None), max_train_examples, DATA_SEED) if with_train else None
    dev = subsample(load_split(t, dev_split, glue_dir or None), max_dev_examples, DATA_SEED)
    if dev_half:
        halves = dev_halves(dev, DATA_SEED)
        check_halves(dev, halves)
        dev = halves[DEV_HALVES.index(dev_half) - 1]
    return TaskData(t, train, dev, encode(train, tokenizer, max_seq_len) if train else None,
                    encode(dev, tokenizer, max_seq_len))


def build_model(model: str, task: Task, seed: int, random_init: bool = False,
                device: torch.device | None = None) -> torch.nn.Module:
    """Seed, then build the classifier: its head's initialisation is a function of the seed."""
    set_seed(seed)
    return load_classifier(model, task, random_init=random_init).to(device or default_device())


def finetune_model(model: str, task: Task, train: Encoded, cfg: TrainConfig, seed: int,
                   head_mask=None, mlp_mask=None, before_training: Callable[[torch.nn.Module], None] | None = None,
                   random_init: bool = False, progress: bool = True, desc: str = "fine-tune",
                   physical: bool = False) -> tuple[torch.nn.Module, Gates | None, list[float]]:
    """Fine-tune from the pre-trained weights (or random ones) with masks held fixed during training.

    Head/MLP masks act through `Gates` (gated elements get no gradient). `before_training(model)` runs on the
    gated model before the first step: the lottery stage holds weight masks there
    (`pruning.magnitude.apply_weight_masks`: masked weights stay exactly zero). Returns the model, its gates
    and the losses.

    `physical=True` trains the physically pruned model instead (`physical.prune_physically`, 0/1 masks, no
    weight masks; the gates returned are None): gated heads and MLPs get no gradient and AdamW leaves a
    parameter with zero gradients unchanged, so it computes the gated run's result with fewer FLOPs. Exactly
    so without dropout (tests/test_physical.py); with dropout the fewer heads draw other dropout masks, so the
    two runs agree in distribution, as two dropout seeds do.
    """
    net = build_model(model, task, seed, random_init=random_init)
    if physical:
        if before_training is not None:
            raise ValueError("finetune_model: physical=True removes heads and MLPs; before_training (weight masks) "
                             "needs physical=False.")
        net = prune_physically(net, head_mask, mlp_mask)
        return net, None, fine_tune(net, task, train, cfg, seed, progress=progress, desc=desc)
    gates = Gates(net, head_mask, mlp_mask)
    if before_training is not None:
        before_training(net)
    losses = fine_tune(net, task, train, cfg, seed, progress=progress, desc=desc)
    return net, gates, losses
