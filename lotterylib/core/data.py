"""GLUE data: a local folder in the classic tsv layout or the Hugging Face hub, subsampling, batching.

The source is chosen in this order: the `glue_dir` argument, the environment variable
`LOTTERY_GLUE_DIR`, then the hub (`nyu-mll/glue`). Parsing follows `PROVENANCE.md` of the shared copy:
no quoting (MRPC, QNLI and STS-B hold unbalanced quotes), a UTF-8 BOM on MRPC, no header on CoLA.
"""
from __future__ import annotations

import csv
import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .metrics import compute_metrics, min_eval_examples
from .tasks import HUB_SPLITS, Task, get_task

GLUE_DIR_ENV = "LOTTERY_GLUE_DIR"


class GlueDataError(RuntimeError):
    """No source could provide a GLUE split; the message says what was tried and how to fix it."""


@dataclass
class GlueSplit:
    """One split of one task: texts (one or two columns) and labels (int ids, or floats for STS-B)."""

    task: Task
    split: str
    texts: list[tuple[str, ...]]
    labels: np.ndarray
    source: str

    def __len__(self) -> int:
        return len(self.labels)

    def subset(self, indices: np.ndarray) -> GlueSplit:
        return GlueSplit(self.task, self.split, [self.texts[i] for i in indices], self.labels[indices], self.source)


def _label_id(task: Task, raw: str, where: str) -> float | int:
    if task.is_regression:
        try:
            score = float(raw)
        except ValueError:
            score = math.nan
        if not math.isfinite(score):
            raise GlueDataError(f"{where}: {task.name} score {raw!r} is not a finite number. "
                                "Fix: re-download the file.")
        return score
    try:
        return task.labels.index(raw)
    except ValueError:
        raise GlueDataError(f"{where}: unknown {task.name} label {raw!r}; expected one of {task.labels}.") from None


def read_tsv(task: Task | str, path: str | Path, split: str = "dev") -> GlueSplit:
    """Parse one classic GLUE tsv file (no quoting, BOM tolerated); malformed rows raise with the line number."""
    task = get_task(task) if isinstance(task, str) else task
    path = Path(path)
    with open(path, encoding="utf-8-sig", newline="") as f:
        rows = list(csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE))
    if len(rows) <= task.has_header:
        raise GlueDataError(f"{path} holds no examples{' (only a header)' if rows else ' (it is empty)'}. Fix: "
                            "re-download it, or point `glue_dir` at a complete copy in the classic GLUE layout.")
    if task.has_header:
        header, rows, first_line = rows[0], rows[1:], 2
        missing = [c for c in (*task.text_columns, task.label_column) if c not in header]
        if missing:
            raise GlueDataError(f"{path}: header {header} lacks the columns {missing} of {task.name}. "
                                f"Is this the classic GLUE layout (download_glue_data.py)?")
        text_idx = [header.index(c) for c in task.text_columns]
        label_idx, width = header.index(task.label_column), len(header)
    else:
        text_idx, label_idx, first_line = [int(c) for c in task.text_columns], int(task.label_column), 1
        width = len(rows[0]) if rows else 0
    texts, labels = [], []
    for n, row in enumerate(rows, start=first_line):
        if len(row) != width:
            raise GlueDataError(f"{path}, line {n}: {len(row)} tab-separated fields, expected {width}. "
                                f"The file is malformed or was read with quoting; re-download it.")
        texts.append(tuple(row[i] for i in text_idx))
        labels.append(_label_id(task, row[label_idx], f"{path}, line {n}"))
    dtype = np.float32 if task.is_regression else np.int64
    return GlueSplit(task, split, texts, np.asarray(labels, dtype=dtype), str(path))


def _from_hub(task: Task, split: str) -> GlueSplit:
    import datasets  # imported lazily: slow, and only needed on this path

    hub_split = "validation_matched" if (task.name == "MNLI" and split == "dev") else HUB_SPLITS[split]
    ds = datasets.load_dataset("nyu-mll/glue", task.hub_config, split=hub_split)
    cols = {"cola": ("sentence",), "sst2": ("sentence",), "mrpc": ("sentence1", "sentence2"),
            "stsb": ("sentence1", "sentence2"), "qqp": ("question1", "question2"),
            "mnli": ("premise", "hypothesis"), "qnli": ("question", "sentence"),
            "rte": ("sentence1", "sentence2"), "wnli": ("sentence1", "sentence2")}[task.hub_config]
    texts = list(zip(*(ds[c] for c in cols)))
    dtype = np.float32 if task.is_regression else np.int64
    return GlueSplit(task, split, texts, np.asarray(ds["label"], dtype=dtype), f"hub:nyu-mll/glue/{task.hub_config}")


def load_split(task: Task | str, split: str = "train", glue_dir: str | Path | None = None) -> GlueSplit:
    """Load `train`, `dev` (MNLI: matched) or `dev_mm` (MNLI mismatched) from a local folder or the hub."""
    task = get_task(task) if isinstance(task, str) else task
    if split not in ("train", *task.dev_files):
        raise ValueError(f"{task.name} has no split {split!r}; choose from train, {', '.join(task.dev_files)}.")
    glue_dir = glue_dir or os.environ.get(GLUE_DIR_ENV) or None
    tried = []
    if glue_dir:
        path = Path(glue_dir).expanduser() / task.name / ("train.tsv" if split == "train" else task.dev_files[split])
        if path.is_file():
            return read_tsv(task, path, split)
        tried.append(f"local file {path} (missing)")
    try:
        return _from_hub(task, split)
    except Exception as err:  # offline, no cache, no network: all end here
        tried.append(f"the Hugging Face hub nyu-mll/glue/{task.hub_config} ({type(err).__name__}: {err})")
    raise GlueDataError(
        f"Cannot load GLUE {task.name} {split}. Tried: " + "; ".join(tried) + ". Fix: point the `glue_dir` "
        f"parameter or ${GLUE_DIR_ENV} at a folder with {task.name}/"
        f"{'train.tsv' if split == 'train' else task.dev_files[split]} in the classic GLUE layout "
        "(download_glue_data.py), or go online (unset HF_HUB_OFFLINE) so the hub can be used.")


def subsample(data: GlueSplit, n: int | None, seed: int) -> GlueSplit:
    """A seeded random subset of `n` examples in the original order (`n` falsy or >= len: all of them)."""
    if not n or n >= len(data):
        return data
    idx = np.sort(np.random.default_rng(seed).choice(len(data), size=n, replace=False))
    return data.subset(idx)


def dev_halves(data: GlueSplit, seed: int) -> tuple[GlueSplit, GlueSplit]:
    """(selection half, report half): a seeded random split of a dev set into two disjoint parts that cover
    it, each in the original order; the selection half has len // 2 examples (`selection: split`)."""
    order = np.random.default_rng(seed).permutation(len(data))
    half = len(data) // 2
    return data.subset(np.sort(order[:half])), data.subset(np.sort(order[half:]))


def check_halves(data: GlueSplit, halves: tuple[GlueSplit, GlueSplit]) -> None:
    """Raise unless each half of dev (`dev_halves`) holds enough examples to score on, naming the half."""
    need = min_eval_examples(data.task)
    small = [f"the {name} half has {len(half)}" for name, half in zip(("selection", "report"), halves)
             if len(half) < need]
    if small:
        raise ValueError(f"selection: split halves {data.task.name}'s {len(data)} dev examples, and "
                         f"{' and '.join(small)}; a {data.task.metric} score needs at least {need}. Fix: raise "
                         f"max_dev_examples (0: all of dev) to at least {2 * need}, or use selection: dev.")


def majority_labels(data: GlueSplit) -> np.ndarray:
    """The majority-class baseline's predictions (the dev-set majority; STS-B: the mean score)."""
    if data.task.is_regression:
        return np.full(len(data), float(data.labels.mean()), dtype=np.float32)
    return np.full(len(data), np.bincount(data.labels).argmax())


def majority_baseline(data: GlueSplit) -> float:
    """The paper metric of the majority-class baseline on this split."""
    return compute_metrics(data.task, majority_labels(data), data.labels)["score"]


@dataclass
class Encoded:
    """Token ids of a split, unpadded, with the labels and the tokenizer's padding id."""

    input_ids: list[list[int]]
    token_type_ids: list[list[int]]
    labels: np.ndarray
    pad_id: int = 0

    def __len__(self) -> int:
        return len(self.labels)


def encode(data: GlueSplit, tokenizer, max_seq_len: int = 128) -> Encoded:
    """Tokenise once (lower-casing is the tokenizer's), truncated to `max_seq_len`, without padding."""
    cols = list(zip(*data.texts))
    enc = tokenizer(*cols, truncation=True, max_length=max_seq_len, padding=False)
    tt = enc.get("token_type_ids") or [[0] * len(ids) for ids in enc["input_ids"]]
    if tokenizer.pad_token_id is None:
        raise ValueError(f"The tokenizer {type(tokenizer).__name__} has no padding token; set one "
                         "(tokenizer.pad_token = ...) before encoding.")
    return Encoded(enc["input_ids"], tt, data.labels, tokenizer.pad_token_id)


def collate(enc: Encoded, idx: list[int] | np.ndarray) -> dict[str, torch.Tensor]:
    """Pad one batch dynamically to its longest sequence, with the tokenizer's padding id."""
    width = max(len(enc.input_ids[i]) for i in idx)
    ids = torch.full((len(idx), width), enc.pad_id, dtype=torch.long)
    tts = torch.zeros((len(idx), width), dtype=torch.long)
    att = torch.zeros((len(idx), width), dtype=torch.long)
    for row, i in enumerate(idx):
        n = len(enc.input_ids[i])
        ids[row, :n] = torch.tensor(enc.input_ids[i])
        tts[row, :n] = torch.tensor(enc.token_type_ids[i])
        att[row, :n] = 1
    labels = torch.as_tensor(enc.labels[np.asarray(idx)])
    return {"input_ids": ids, "token_type_ids": tts, "attention_mask": att, "labels": labels}


# Length grouping: each epoch's seeded permutation is cut into chunks that are sorted by length, batched, and
# the batches shuffled again. A chunk holds at most 50 batches (the Hugging Face mega-batch) and at most
# 1/16 of the train set, so that batch mates of one epoch rarely meet again in the next (`pair_repeat_rate`).
GROUP_CHUNK_BATCHES = 50
GROUP_MIN_CHUNKS = 16


def group_chunk_size(n: int, batch_size: int, min_chunks: int = GROUP_MIN_CHUNKS) -> int:
    """Examples per length-sorted chunk of `n` training examples: min(50 x batch, n // min_chunks), but at
    least one batch (a chunk of one batch leaves the random batches as they are)."""
    if batch_size < 1 or min_chunks < 1:
        raise ValueError(f"batch_size and min_chunks must be >= 1, not {batch_size} and {min_chunks}")
    return max(batch_size, min(GROUP_CHUNK_BATCHES * batch_size, n // min_chunks))


def batch_indices(enc: Encoded, batch_size: int, shuffle: bool, seed: int = 0,
                  group_by_length: bool = True, min_chunks: int = GROUP_MIN_CHUNKS) -> list[np.ndarray]:
    """Index batches for one epoch.

    Evaluation (`shuffle=False`): sorted by length, so padding is minimal (the order does not change scores).
    Training: a seeded permutation; with `group_by_length`, chunks of `group_chunk_size` examples are sorted
    by length and the batches shuffled again (the Hugging Face `LengthGroupedSampler` idea: less padding, still
    random). `min_chunks=1` is the former rule, one sorted chunk per epoch below 50 batches of examples.
    """
    lengths = np.array([len(x) for x in enc.input_ids])
    if not shuffle:
        order = np.argsort(-lengths, kind="stable")
        return [order[i:i + batch_size] for i in range(0, len(order), batch_size)]
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(lengths))
    if group_by_length:
        chunk = group_chunk_size(len(lengths), batch_size, min_chunks)
        order = np.concatenate([c[np.argsort(-lengths[c], kind="stable")]
                                for c in (order[i:i + chunk] for i in range(0, len(order), chunk))])
    batches = [order[i:i + batch_size] for i in range(0, len(order), batch_size)]
    if group_by_length:
        batches = [batches[i] for i in rng.permutation(len(batches))]
    return batches


def pair_repeat_rate(first: list[np.ndarray], second: list[np.ndarray]) -> float:
    """The share of the example pairs that share a batch in `first` (one epoch's batches) that share one again
    in `second` (the next epoch's, over the same examples). Random batches of size B over n examples give
    (B - 1) / (n - 1) in expectation."""
    where = np.full(1 + max(int(np.max(b)) for b in (*first, *second)), -1)
    for j, b in enumerate(second):
        where[b] = j
    pairs = again = 0
    for b in first:
        if np.any(where[b] < 0):
            raise ValueError("pair_repeat_rate: the two epochs must batch the same examples; "
                             f"{sorted(set(b[where[b] < 0].tolist()))[:5]} are missing from the second")
        pairs += len(b) * (len(b) - 1) // 2
        counts = np.bincount(where[b])
        again += int((counts * (counts - 1) // 2).sum())
    if pairs == 0:
        raise ValueError("pair_repeat_rate: the first epoch's batches hold no pair (every batch has one example)")
    return again / pairs
