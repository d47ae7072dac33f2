"""The steps the notebooks share: load a task's data, build and fine-tune a (masked) model, checkpoints."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from .data import Encoded, GlueSplit, encode, load_split, subsample
from .gates import Gates
from .models import load_classifier, quiet_loading
from .physical import prune_physically
from .tasks import Task, get_task
from .training import TrainConfig, default_device, fine_tune, set_seed

DATA_SEED = 0  # subsamples are the same for every run seed, so seeds differ only in init and data order


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
                   dev_split: str = "dev") -> TaskData:
    """Load, subsample (seeded, 0 = all) and tokenise a task's train and dev splits."""
    t = get_task(task)
    train = subsample(load_split(t, "train", glue_dir or None), max_train_examples, DATA_SEED) if with_train else None
    dev = subsample(load_split(t, dev_split, glue_dir or None), max_dev_examples, DATA_SEED)
    return TaskData(t, train, dev, encode(train, tokenizer, max_seq_len) if train else None,
                    encode(dev, tokenizer, max_seq_len))


def build_model(model: str, task: Task, seed: int, random_init: bool = False,
                device: torch.device | None = None) -> torch.nn.Module:
    """Seed, then build the classifier: its head's initialisation is a function of the seed."""
    set_seed(seed)
    return load_classifier(model, task, random_init=random_init).to(device or default_device())


def finetune_model(model: str, task: Task, train: Encoded, cfg: TrainConfig, seed: int,
                   head_mask=None, mlp_mask=None, weight_masks: dict | None = None, compat: str = "paper",
                   random_init: bool = False, progress: bool = True, desc: str = "fine-tune",
                   physical: bool = False) -> tuple[torch.nn.Module, Gates | None, list[float]]:
    """Fine-tune from the pre-trained weights (or random ones) with masks held fixed during training.

    Head/MLP masks act through `Gates` (gated elements get no gradient); weight masks through
    `torch.nn.utils.prune` (masked weights stay exactly zero). Returns the model, its gates and the losses.

    `physical=True` trains the physically pruned model instead (`physical.prune_physically`, 0/1 masks, no
    weight masks; the gates returned are None): gated heads and MLPs get no gradient and AdamW leaves a
    parameter with zero gradients unchanged, so it computes the gated run's result with fewer FLOPs. Exactly
    so without dropout (tests/test_physical.py); with dropout the fewer heads draw other dropout masks, so the
    two runs agree in distribution, as two dropout seeds do.
    """
    net = build_model(model, task, seed, random_init=random_init)
    if physical:
        if weight_masks is not None:
            raise ValueError("finetune_model: physical=True removes heads and MLPs; weight masks need physical=False.")
        net = prune_physically(net, head_mask, mlp_mask)
        return net, None, fine_tune(net, task, train, cfg, seed, progress=progress, desc=desc)
    gates = Gates(net, head_mask, mlp_mask)
    if weight_masks is not None:
        from .magnitude import apply_weight_masks

        apply_weight_masks(net, weight_masks, compat=compat)
    losses = fine_tune(net, task, train, cfg, seed, progress=progress, desc=desc)
    return net, gates, losses


def save_checkpoint(model: torch.nn.Module, tokenizer, folder: str | Path) -> Path:
    """save_pretrained of model and tokenizer (safetensors)."""
    folder = Path(folder)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def load_checkpoint(folder: str | Path, device: torch.device | None = None):
    """A fine-tuned checkpoint and its tokenizer; a clear error if the fine-tuning stage has not run."""
    folder = Path(folder)
    if not (folder / "config.json").is_file():
        raise FileNotFoundError(f"No checkpoint in {folder}: run the fine-tuning stage "
                                "(notebooks/01_finetune.ipynb) for this task and seed first.")
    with quiet_loading():
        net = AutoModelForSequenceClassification.from_pretrained(folder).to(device or default_device())
    return net.eval(), AutoTokenizer.from_pretrained(folder)

