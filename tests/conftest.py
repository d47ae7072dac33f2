"""Shared fixtures: the shared GLUE copy, tiny random BERTs and token data. No test touches the network."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch
from transformers import BertConfig, BertForSequenceClassification

from lotterylib.core.data import Encoded

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["HF_DATASETS_OFFLINE"] = "1"
torch.set_num_threads(1)

GLUE_DIR = Path(os.environ.get("LOTTERY_GLUE_DIR") or Path(__file__).resolve().parents[2] / "shared" / "data" / "glue")


@pytest.fixture
def glue_dir() -> Path:
    if not GLUE_DIR.is_dir():
        pytest.skip(f"shared GLUE copy not found at {GLUE_DIR}")
    return GLUE_DIR


def tiny_config(num_labels: int = 2, layers: int = 3, heads: int = 4) -> BertConfig:
    return BertConfig(vocab_size=100, hidden_size=8 * heads, num_hidden_layers=layers, num_attention_heads=heads,
                      intermediate_size=37, max_position_embeddings=64, num_labels=num_labels)


def tiny_model(num_labels: int = 2, seed: int = 0, **kw) -> BertForSequenceClassification:
    torch.manual_seed(seed)
    return BertForSequenceClassification(tiny_config(num_labels, **kw)).eval()


def tiny_encoded(n: int = 24, num_labels: int = 2, seed: int = 0) -> Encoded:
    """Random token sequences of varying lengths ([CLS]=1 ... [SEP]=2) with labels."""
    rng = np.random.default_rng(seed)
    ids = [[1, *rng.integers(5, 100, size=rng.integers(3, 15)).tolist(), 2] for _ in range(n)]
    labels = rng.normal(size=n).astype(np.float32) if num_labels == 1 else rng.integers(0, num_labels, n)
    return Encoded(ids, [[0] * len(x) for x in ids], labels)


def padded_batch(lengths: list[int], seq_len: int, seed: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    """Random token ids (len(lengths), seq_len) and an attention mask that pads each row after its length."""
    torch.manual_seed(seed)
    ids = torch.randint(5, 100, (len(lengths), seq_len))
    mask = (torch.arange(seq_len) < torch.tensor(lengths)[:, None]).long()
    return ids, mask
