"""The GLUE task registry: label sets, metrics, file layouts and official sizes (docs/method.md section 0)."""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Task:
    """Everything the project needs to know about one GLUE task."""

    name: str
    hub_config: str                 # config name of `nyu-mll/glue` on the Hugging Face hub
    metric: str                     # the paper's metric (Table 1)
    labels: tuple[str, ...] | None  # label strings in hub id order; None = regression
    text_columns: tuple[str, ...]   # tsv header names (CoLA: column indices as strings)
    label_column: str
    has_header: bool = True
    dev_files: dict[str, str] = field(default_factory=lambda: {"dev": "dev.tsv"})
    official_rows: dict[str, int] = field(default_factory=dict)

    @property
    def is_regression(self) -> bool:
        return self.labels is None

    @property
    def num_labels(self) -> int:
        return 1 if self.labels is None else len(self.labels)


TASKS: dict[str, Task] = {
    t.name: t
    for t in [
        Task("CoLA", "cola", "mcc", ("0", "1"), ("3",), "1", has_header=False,
             official_rows={"train": 8551, "dev": 1043}),
        Task("SST-2", "sst2", "acc", ("0", "1"), ("sentence",), "label",
             official_rows={"train": 67349, "dev": 872}),
        Task("MRPC", "mrpc", "acc", ("0", "1"), ("#1 String", "#2 String"), "Quality",
             official_rows={"train": 3668, "dev": 408}),
        Task("STS-B", "stsb", "pearson", None, ("sentence1", "sentence2"), "score",
             official_rows={"train": 5749, "dev": 1500}),
        Task("QQP", "qqp", "acc", ("0", "1"), ("question1", "question2"), "is_duplicate",
             official_rows={"train": 363846, "dev": 40430}),
        Task("MNLI", "mnli", "acc", ("entailment", "neutral", "contradiction"),
             ("sentence1", "sentence2"), "gold_label",
             dev_files={"dev": "dev_matched.tsv", "dev_mm": "dev_mismatched.tsv"},
             official_rows={"train": 392702, "dev": 9815, "dev_mm": 9832}),
        Task("QNLI", "qnli", "acc", ("entailment", "not_entailment"), ("question", "sentence"), "label",
             official_rows={"train": 104743, "dev": 5463}),
        Task("RTE", "rte", "acc", ("entailment", "not_entailment"), ("sentence1", "sentence2"), "label",
             official_rows={"train": 2490, "dev": 277}),
        Task("WNLI", "wnli", "acc", ("0", "1"), ("sentence1", "sentence2"), "label",
             official_rows={"train": 635, "dev": 71}),
    ]
}

# Hub split names for our split names.
HUB_SPLITS = {"train": "train", "dev": "validation", "dev_mm": "validation_mismatched"}


def get_task(name: str) -> Task:
    """Look a task up by name (case-insensitive, `STSB`/`SST2` accepted); a clear error otherwise."""
    key = {k.lower().replace("-", ""): k for k in TASKS}.get(name.lower().replace("-", ""))
    if key is None:
        raise ValueError(f"Unknown GLUE task {name!r}. Choose one of: {', '.join(TASKS)}.")
    return TASKS[key]
