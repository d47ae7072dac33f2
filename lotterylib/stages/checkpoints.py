"""Fine-tuned checkpoints and m-pruning weight masks: saved atomically, loaded with a check, rebuilt when missing.

Neither is committed (about 90 MB and 2 MB per run for MiniLM-L6): a finished fine-tuning whose checkpoint is
missing (a clone, a lost work tree) is rebuilt by the first stage that loads it (`load_checkpoint`,
`rebuild_checkpoint`), and so are a finished m-pruning's weight masks (`load_m_pruning_masks`,
`rebuild_weight_masks`), each from what its run folder records and checked against it."""
from __future__ import annotations

import contextlib
import os
import random
import shutil
import socket
import time
from dataclasses import fields
from pathlib import Path
from typing import Iterator

import numpy as np
import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from ..core.files import display_path, read_json, temporary_sibling, waiting_lock, write_json_atomic
from ..core.finetuning import dev_half, finetune_model, load_task_data
from ..core.models import load_tokenizer, quiet_loading
from ..core.progress import duration, step_line
from ..core.rules import Rules
from ..core.training import TrainConfig, default_device, evaluate
from ..pruning.magnitude import full_masks, magnitude_step, survival_fractions
from ..pruning.masks import WEIGHT_MASKS_FILE, WeightMasks, load_weight_masks, save_weight_masks, sparsity
from .runs import is_done, missing_run_error, read_params


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


# --- a missing checkpoint of a finished fine-tuning, rebuilt ---------------------------------------------

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

    The rebuild holds the run folder's lock (`files.waiting_lock`): a second job that needs the same
    checkpoint waits, then reuses it. Each step is printed (the job's log). Any other folder without a
    checkpoint raises the "run the finetune stage first" error."""
    folder = Path(folder)
    run_dir = folder.parent
    if folder.name != "checkpoint" or run_dir.name != "finetune" or not is_done(run_dir):
        raise missing_run_error(folder / "model.safetensors", "finetune")

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


# --- the missing weight masks of a finished m-pruning, rebuilt --------------------------------------------

SURVIVAL_TOLERANCE = 1e-3  # |rebuilt - recorded| surviving fraction of a head or MLP, for a rebuilt checkpoint


def load_m_pruning_masks(run_dir: str | Path) -> WeightMasks:
    """The weight masks of the m-pruning run folder `run_dir` (`<run>/m_pruning/weight_masks.npz`, not
    committed), rebuilt first where a finished run lacks them (`rebuild_weight_masks`)."""
    path = Path(run_dir) / WEIGHT_MASKS_FILE
    if not path.is_file():
        rebuild_weight_masks(run_dir)
    return load_weight_masks(path)


def rebuild_weight_masks(run_dir: str | Path) -> Path:
    """Rebuild the missing weight masks of a finished m-pruning run (metrics.json, params.json intact). No search
    is needed: the search prunes the fine-tuned weights without training them, so its masks are `kept_steps`
    (metrics.json) global magnitude steps from the dense fine-tuned model (`magnitude_step`, the rules of the
    recorded `compat`), whose checkpoint is itself rebuilt if it is missing. They are checked against what the
    run recorded: the same sparsity, exactly, and the same surviving fraction of each head and MLP
    (survival.npz) within `SURVIVAL_TOLERANCE` (identical when the checkpoint is); beyond that a RuntimeError
    names the difference and nothing is saved. Under the run folder's lock; its own files are not touched. Any
    other folder without masks raises the "run the m_pruning stage first" error."""
    run_dir = Path(run_dir)
    path = run_dir / WEIGHT_MASKS_FILE
    if run_dir.name != "m_pruning" or not is_done(run_dir):
        raise missing_run_error(path, "m_pruning")

    def waiting(holder: str) -> None:
        step_line(f"waiting for {display_path(path)}: {holder} holds {display_path(run_dir)} (rebuilding it)")

    with waiting_lock(run_dir, waiting):
        if path.is_file():
            step_line(f"{display_path(path)} was rebuilt by another job meanwhile: using it")
            return path
        params, recorded = read_params(run_dir), read_json(run_dir / "metrics.json")
        step_line(f"{display_path(path)} is missing (weight masks are not committed): rebuilding it, "
                  f"{recorded['kept_steps']} magnitude step(s) from the fine-tuned {params['task']} seed {params['seed']}")
        started = time.time()
        rules = Rules.from_setting(params["compat"])
        net, _ = load_checkpoint(run_dir.parent / "finetune" / "checkpoint", torch.device("cpu"))
        masks = full_masks(net, rules)
        for _ in range(recorded["kept_steps"]):
            masks = magnitude_step(net, rules)
        difference = _check_weight_masks(run_dir, masks, recorded["sparsity"])
        save_weight_masks(path, masks)
        step_line(f"rebuilt {display_path(path)} in {duration(time.time() - started)}: sparsity "
                  f"{recorded['sparsity']:.4f} as recorded, surviving fractions "
                  f"{'identical' if difference == 0 else f'within {difference:.2g}'}")
    return path


def _check_weight_masks(run_dir: Path, masks: WeightMasks, recorded_sparsity: float) -> float:
    """The largest difference of the masks' per-head and per-MLP surviving fractions from the run's survival.npz
    (0.0: identical); a RuntimeError when the sparsity differs or a fraction differs beyond the tolerance."""
    rebuilt = sparsity(masks)
    if rebuilt != recorded_sparsity:
        raise RuntimeError(f"The rebuilt weight masks of {display_path(run_dir)} have sparsity {rebuilt!r}, its "
                           f"metrics.json {recorded_sparsity!r}. Nothing was saved. Fix: rerun the m-pruning stage "
                           "for this task and seed (`lottery run PRESET -- --forcerun m_pruning`).")
    survival = run_dir / "survival.npz"
    if not survival.is_file():
        return 0.0
    with np.load(survival) as data:
        head, mlp = data["head"], data["mlp"]
    new_head, new_mlp = survival_fractions(masks, *head.shape)
    difference = float(max(np.abs(new_head - head).max(), np.abs(new_mlp - mlp).max()))
    if difference > SURVIVAL_TOLERANCE:
        raise RuntimeError(f"The rebuilt weight masks of {display_path(run_dir)} keep fractions of a head or MLP "
                           f"up to {difference:.4f} away from its survival.npz (tolerance {SURVIVAL_TOLERANCE}): "
                           "the fine-tuned checkpoint they were cut from is not the one the run pruned. Nothing "
                           "was saved. Fix: rerun the m-pruning stage for this task and seed.")
    return difference
