"""The steps the notebooks share: load a task's data, build and fine-tune a (masked) model, checkpoints.

`selection` (docs/method.md, "Masks chosen on held-out data"): with "dev" (the paper's way) the pruning
searches choose masks on the dev set and every score is reported on that same dev set; with "split" the
searches see only a seeded half of dev, the "selection" half (`dev_half(selection, "selection")`), and every reported score, the full
model's included, comes from the other, "report" half (`dev_half(selection, "report")`)."""
from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from .data import Encoded, GlueSplit, check_halves, dev_halves, encode, load_split, subsample
from .gates import Gates
from .models import load_classifier, quiet_loading
from .physical import prune_physically
from .rules import PAPER_RULES, Rules
from .runs import display_path, missing_stage_error, temporary_sibling
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
                   head_mask=None, mlp_mask=None, weight_masks: dict | None = None, rules: Rules = PAPER_RULES,
                   random_init: bool = False, progress: bool = True, desc: str = "fine-tune",
                   physical: bool = False) -> tuple[torch.nn.Module, Gates | None, list[float]]:
    """Fine-tune from the pre-trained weights (or random ones) with masks held fixed during training.

    Head/MLP masks act through `Gates` (gated elements get no gradient); weight masks through
    `torch.nn.utils.prune` (masked weights stay exactly zero), over the prunable set of `rules`. Returns the
    model, its gates and the losses.

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

        apply_weight_masks(net, weight_masks, rules=rules)
    losses = fine_tune(net, task, train, cfg, seed, progress=progress, desc=desc)
    return net, gates, losses


def save_checkpoint(model: torch.nn.Module, tokenizer, folder: str | Path) -> Path:
    """save_pretrained of model and tokenizer (safetensors), into a temporary folder renamed into place: an
    interrupted save leaves the old checkpoint or none, never a partial one (the run removes leftovers)."""
    folder = Path(folder)
    tmp = temporary_sibling(folder)
    try:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
    except OSError as e:  # disk full, quota, permissions: say where and what
        shutil.rmtree(tmp, ignore_errors=True)
        raise OSError(e.errno, f"Saving the fine-tuned checkpoint (model weights and tokenizer, about "
                               f"{_size_mb(model):.0f} MB) into {display_path(folder)} failed: {e.strerror or e}. "
                               "Nothing is marked done. Fix: free space there (or point outputs_root at a "
                               "larger disk) and rerun the stage.") from e
    share_like_umask(tmp)
    if folder.exists():
        shutil.rmtree(folder)
    os.replace(tmp, folder)
    return folder


def _size_mb(model: torch.nn.Module) -> float:
    return sum(p.numel() * p.element_size() for p in model.parameters()) / 2**20


def share_like_umask(folder: Path) -> None:
    """Give the files of `folder` the permissions of any other file (0666 less the umask): safetensors
    writes its file with mode 0600, which the group of a shared cluster file system cannot read."""
    umask = os.umask(0)
    os.umask(umask)
    for path in folder.rglob("*"):
        if path.is_file():
            path.chmod(0o666 & ~umask)


def load_checkpoint(folder: str | Path, device: torch.device | None = None):
    """A fine-tuned checkpoint and its tokenizer; a clear error if the fine-tuning stage has not run or its
    checkpoint is incomplete."""
    folder = Path(folder)
    weights = [folder / name for name in ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin")]
    if not (folder / "config.json").is_file() or not any(w.is_file() for w in weights):
        raise missing_stage_error(folder / "model.safetensors", "finetune")
    try:
        with quiet_loading():
            net = AutoModelForSequenceClassification.from_pretrained(folder).to(device or default_device())
            tokenizer = AutoTokenizer.from_pretrained(folder)
    except Exception as e:  # safetensors, torch and json each raise their own kind for a corrupt file
        raise RuntimeError(f"The checkpoint in {display_path(folder)} does not load ({type(e).__name__}: {e}). "
                           "Fix: rerun the fine-tuning stage for this task and seed.") from e
    check_vocabulary(tokenizer, net, folder)
    return net.eval(), tokenizer


VOCAB_PADDING = 128  # embedding rows (at most 1% of them) a model may have beyond its tokenizer's vocabulary


def check_vocabulary(tokenizer, net: torch.nn.Module, folder: str | Path) -> None:
    """Raise unless the tokenizer's vocabulary fits the model's token embeddings: no id beyond them, and at
    most `VOCAB_PADDING` rows, and at most 1% of them, unused (padding). A checkpoint without its tokenizer files loads a tokenizer of only
    the special tokens (every word `[UNK]`), which this catches."""
    rows, size = net.get_input_embeddings().num_embeddings, len(tokenizer)
    if not rows - min(VOCAB_PADDING, rows // 100) <= size <= rows:
        raise RuntimeError(f"The tokenizer in {display_path(folder)} has {size} tokens, but the model's embeddings "
                           f"have {rows} rows: its tokenizer files (tokenizer.json, vocab.txt, ...) are missing "
                           "or belong to another model. Fix: rerun the fine-tuning stage for this task and seed, "
                           "or copy the pre-trained model's tokenizer files into that folder.")
