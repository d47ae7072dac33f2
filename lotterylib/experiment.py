"""The steps the notebooks share: load a task's data, build and fine-tune a (masked) model, checkpoints.

`selection` (docs/method.md, "Masks chosen on held-out data"): with "dev" (the paper's way) the pruning
searches choose masks on the dev set and every score is reported on that same dev set; with "split" the
searches see only a seeded half of dev, the "selection" half (`dev_half(selection, "selection")`), and every
reported score, the full model's included, comes from the other, "report" half (`dev_half(selection, "report")`).

Checkpoints are not committed: a finished fine-tuning whose checkpoint is missing (a clone, a lost work tree)
is rebuilt by the first stage that loads it (`load_checkpoint`, `rebuild_checkpoint`)."""
from __future__ import annotations

import contextlib
import os
import random
import shutil
import socket
import time
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Iterator

import numpy as np
import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from .data import Encoded, GlueSplit, check_halves, dev_halves, encode, load_split, subsample
from .gates import Gates
from .models import load_classifier, load_tokenizer, quiet_loading
from .physical import prune_physically
from .progress import duration, step_line
from .rules import PAPER_RULES, Rules
from .runs import (display_path, is_done, missing_stage_error, read_json, read_params, temporary_sibling,
                   waiting_lock, write_json_atomic)
from .tasks import Task, get_task
from .training import TrainConfig, default_device, evaluate, fine_tune, set_seed

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


def _complete(folder: Path) -> bool:
    """A checkpoint folder with its config and weights."""
    weights = [folder / name for name in ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin")]
    return (folder / "config.json").is_file() and any(w.is_file() for w in weights)


def load_checkpoint(folder: str | Path, device: torch.device | None = None):
    """A fine-tuned checkpoint and its tokenizer; a clear error if the fine-tuning stage has not run or its
    checkpoint does not load. The missing or incomplete checkpoint of a finished fine-tuning run folder
    (`<run>/finetune/checkpoint`; checkpoints are not committed) is rebuilt first (`rebuild_checkpoint`)."""
    folder = Path(folder)
    if not _complete(folder):
        rebuild_checkpoint(folder)
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


# --- a missing checkpoint of a finished fine-tuning, rebuilt ----------------------------------------------

REBUILD_TOLERANCE = 0.005  # |rebuilt - committed| dev score (0-1 scale) a rebuild that is not bit-identical may differ
TOLERANCE_ENV = "LOTTERY_REBUILD_TOLERANCE"  # overrides REBUILD_TOLERANCE
REBUILD_RECORD = "rebuilt.json"  # in a rebuilt checkpoint folder: the check of its dev score, threads, time


def rebuild_checkpoint(folder: str | Path) -> Path:
    """Rebuild the missing checkpoint of a finished fine-tuning run (`<run>/finetune/checkpoint`, its run folder
    done: metrics.json, params.json intact): fine-tune again with the parameters its params.json records, on
    the thread count it records (torch's threads and random states are restored after), evaluate on dev as
    notebook 1 does, and check the dev score against the committed metrics.json: bit-identical is expected
    on the same machine and thread count; otherwise it may differ by `REBUILD_TOLERANCE` (or
    $LOTTERY_REBUILD_TOLERANCE), and beyond that a RuntimeError names both numbers and nothing is saved. The
    checkpoint is then saved (`save_checkpoint`) with `rebuilt.json` (the check and its numbers) inside; the
    run folder's own files (metrics.json, params.json, signature.txt, the executed notebook) are not touched.

    The rebuild holds the run folder's lock (`runs.waiting_lock`): a second job that needs the same
    checkpoint waits, then reuses it. Each step is printed (the job's log). Any other folder without a
    checkpoint raises the "run the finetune stage first" error."""
    folder = Path(folder)
    run_dir = folder.parent
    if folder.name != "checkpoint" or run_dir.name != "finetune" or not is_done(run_dir):
        raise missing_stage_error(folder / "model.safetensors", "finetune")

    def waiting(holder: str) -> None:
        step_line(f"waiting for {display_path(folder)}: {holder} holds {display_path(run_dir)} (rebuilding it)")

    with waiting_lock(run_dir, waiting):
        if _complete(folder):
            step_line(f"{display_path(folder)} was rebuilt by another job meanwhile: using it")
            return folder
        record = read_json(run_dir / "params.json")
        params, threads = read_params(run_dir), record.get("threads")
        committed = read_json(run_dir / "metrics.json")
        step_line(f"{display_path(folder)} is missing (checkpoints are not committed): rebuilding it, fine-tuning "
                  f"{params['task']} seed {params['seed']} again with the parameters of its params.json"
                  f"{f' on {threads} thread(s) as recorded' if threads else ''}")
        started = time.time()
        with _threads_and_random_state(threads):
            net, tokenizer, score, losses = _finetune_again(params)
        check = _check_rebuild(run_dir, committed["dev_score"], score, threads)
        save_checkpoint(net, tokenizer, folder)
        seconds = time.time() - started
        write_json_atomic(folder / REBUILD_RECORD, {
            **check, "committed_final_train_loss": committed.get("final_train_loss"),
            "rebuilt_final_train_loss": losses[-1] if losses else None, "seconds": round(seconds, 1),
            "device": str(next(net.parameters()).device), "when": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
            "by": f"pid {os.getpid()} on {socket.gethostname()}"})
        step_line(f"rebuilt {display_path(folder)} in {duration(seconds)}: dev score {score!r}, committed "
                  f"{committed['dev_score']!r}: {check['check']}")
    return folder


def _finetune_again(params: dict) -> tuple[torch.nn.Module, object, float, list[float]]:
    """Notebook 1's fine-tuning from the values its run recorded: the model (gates removed), its tokenizer, the
    dev score and the training losses."""
    tokenizer = load_tokenizer(params["model"])
    td = load_task_data(params["task"], tokenizer, params.get("glue_dir", ""), params["max_train_examples"],
                        params["max_dev_examples"], params["max_seq_len"],
                        dev_half=dev_half(params.get("selection", "dev"), "report"))
    cfg = TrainConfig(**{f.name: params[f.name] for f in fields(TrainConfig) if f.name in params})
    net, gates, losses = finetune_model(params["model"], td.task, td.train_enc, cfg, params["seed"],
                                        desc="rebuild fine-tune")
    gates.remove()
    result = evaluate(net, td.task, td.dev_enc, cfg.eval_batch_size, bf16=cfg.bf16, progress=False)
    return net, tokenizer, result.metrics["score"], losses


def _check_rebuild(run_dir: Path, committed: float, rebuilt: float, threads: int | None) -> dict:
    """The rebuilt dev score against the committed one: identical, or within the tolerance (a warning line
    when the rebuild ran on the recorded thread count, `threads`: another CPU or library version); a
    RuntimeError beyond it."""
    tolerance = float(os.environ.get(TOLERANCE_ENV) or REBUILD_TOLERANCE)
    same_threads = threads is not None  # the rebuild ran on them (`_threads_and_random_state`)
    found = {"committed_dev_score": committed, "rebuilt_dev_score": rebuilt, "tolerance": tolerance,
             "threads_recorded": threads, "threads_used": torch.get_num_threads() if threads is None else threads}
    if rebuilt == committed:
        return {"check": "identical", **found}
    if abs(rebuilt - committed) > tolerance:
        raise RuntimeError(f"The rebuilt checkpoint of {display_path(run_dir)} scores {rebuilt!r} on dev, the "
                           f"committed metrics.json {committed!r}: they differ by {abs(rebuilt - committed):.4g}, more "
                           f"than the tolerance {tolerance} (${TOLERANCE_ENV}). Nothing was saved. Fix: rerun the "
                           "fine-tuning stage on this machine (`lottery run PRESET -- --forcerun finetune`, which "
                           "redoes everything after it), or run where the committed run ran.")
    if same_threads:
        step_line(f"the rebuild is not bit-identical on the recorded thread count ({threads}): another CPU or "
                  "library version than the committed run's; within the tolerance")
    return {"check": f"within tolerance {tolerance}", **found}


@contextlib.contextmanager
def _threads_and_random_state(threads: int | None) -> Iterator[None]:
    """Within: torch on `threads` CPU threads (None: as it is); after: the threads and the random states of
    python, numpy and torch as they were, so that the stage goes on as if the checkpoint had been there."""
    saved = (torch.get_num_threads(), random.getstate(), np.random.get_state(), torch.get_rng_state(),
             torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None)
    if threads:
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(saved[0])
        random.setstate(saved[1])
        np.random.set_state(saved[2])
        torch.set_rng_state(saved[3])
        if saved[4] is not None:
            torch.cuda.set_rng_state_all(saved[4])
