"""Token layout of a tokenised sentence (pair): where the special tokens, punctuation and the two segments
are, for any of the supported tokenizers; the pattern classes; real GLUE token lists to lay maps on.
"""
from __future__ import annotations

import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

CLASSES = ("vertical", "diagonal", "vertical+diagonal", "block", "heterogeneous")
MAP_KINDS = ("raw", "normed")
SPECIAL_TOKENS = ("[CLS]", "[SEP]", "<s>", "</s>")   # WordPiece / SentencePiece-DeBERTa, and RoBERTa / XLM-R
SEP_TOKENS = ("[SEP]", "</s>")
WORD_START = ("\u0120", "\u2581")   # the word-start marks of byte-level BPE (RoBERTa) and SentencePiece


@dataclass(frozen=True)
class Layout:
    """Where the special columns and the sentences of one tokenised input are."""

    cls_sep: np.ndarray       # positions of [CLS] and [SEP]
    punctuation: np.ndarray   # positions of punctuation tokens
    segments: np.ndarray      # sentence id per position; a [SEP] belongs to the sentence it closes

    @property
    def special(self) -> np.ndarray:
        return np.union1d(self.cls_sep, self.punctuation)

    def __len__(self) -> int:
        return len(self.segments)


def is_punctuation(token: str) -> bool:
    """A token of punctuation or symbols alone (a BPE or SentencePiece word-start mark ignored)."""
    token = token[1:] if token[:1] in WORD_START else token
    return bool(token) and all(unicodedata.category(c)[0] in "PS" for c in token)


def layout(tokens: Sequence[str]) -> Layout:
    """The layout of a token list (`tokenizer.convert_ids_to_tokens(ids)`) of WordPiece ([CLS] ... [SEP]), byte-level
    BPE or SentencePiece (<s> ... </s>, RoBERTa's pairs joined by </s></s>) tokenizers."""
    cls_sep = np.array([i for i, t in enumerate(tokens) if t in SPECIAL_TOKENS], dtype=int)
    punct = np.array([i for i, t in enumerate(tokens) if t not in SPECIAL_TOKENS and is_punctuation(t)], dtype=int)
    # a separator closes its sentence; RoBERTa's second </s> of a pair opens the next one
    is_sep = np.array([t in SEP_TOKENS and not (i and tokens[i - 1] in SEP_TOKENS) for i, t in enumerate(tokens)],
                      dtype=int)
    segments = np.concatenate([[0], np.cumsum(is_sep)[:-1]]) if len(tokens) else np.zeros(0, dtype=int)
    return Layout(cls_sep, punct, segments)


def glue_token_lists(tokenizer, tasks: Sequence[str] = ("SST-2", "MRPC", "RTE"), per_task: int = 100,
                     glue_dir: str | Path | None = None, max_len: int = 64, seed: int = 0) -> list[list[str]]:
    """Token lists of `per_task` seeded random dev examples of each task (single sentences and pairs)."""
    from ...core.data import encode, load_split, subsample

    tokens = []
    for task in tasks:
        enc = encode(subsample(load_split(task, "dev", glue_dir=glue_dir), per_task, seed), tokenizer, max_len)
        tokens += [tokenizer.convert_ids_to_tokens(ids) for ids in enc.input_ids]
    return tokens
