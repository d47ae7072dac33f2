"""The report's generated prose: what a run is (`run_description`, also the opening of notebooks 1 to 5), the
notes under Table 2, and the closing "what this run shows"."""
from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from ...analysis import baselines, reference
from ...analysis.lottery import M_PRUNING, PRUNED, REFINETUNED, S_PRUNING
from ...analysis.verdicts import tally
from .claims import CANNOT_TELL_READING, task_reading
from .frames import finetune_scores, gap_shares

CI_PRESET = "smoke"  # rebuilt by `make test`, never committed: not in the README


def bullets(lines: Sequence[str]) -> str:
    """Markdown bullet list of `lines`."""
    return "\n".join(f"- {line}" for line in lines)


def table2_notes(tasks: Sequence[str], examples: Mapping[str, tuple[int, int]] | None = None) -> list[str]:
    """What a reader of Table 2 must know about the rows shown for `tasks`: the corrected misprints of the
    paper's values, that the GLUE baselines are full-data models (against ours, trained on `examples`
    {task: (train, dev)}, e.g. `folders.preset_settings(...)["examples"]`), and how the STS-B "majority" differs."""
    notes = []
    for (row, task), (printed, used) in baselines.TABLE2_MISPRINTS.items():
        if task in tasks:
            notes.append(f"{row}, {task}: the paper prints {printed}, a misprint; the value used is {used} "
                         "(docs/method.md, \"Table 2: two misprints corrected\").")
    sizes = ", ".join(f"{t} {n}" for t, (n, _) in (examples or {}).items() if n)
    notes.append("The GLUE baselines (CBOW, BiLSTM+GloVe, BiLSTM+ELMo) are the GLUE paper's models trained on the "
                 "full training sets" + (f"; ours trained on {sizes} examples." if sizes else "."))
    if "STS-B" in tasks:
        paper = reference.paper_value("freq_baseline", "STS-B")
        paper_text = f" ({paper[0]:.3f})" if paper else ""
        notes.append("STS-B \"majority\": ours is a constant prediction (the training mean), whose Pearson "
                     "correlation is 0; the paper's is random normal predictions" + paper_text + ".")
    return notes


MODEL_NOTES = {
    "minilm-l6": "all-MiniLM-L6-v2 (6 layers x 12 heads, hidden size 384), the CPU stand-in for the paper's "
                 "bert-base-uncased. It is a sentence-embedding model: MiniLM, contrastively trained on about a "
                 "billion sentence pairs, including NLI, QQP and paraphrase data; not a plain masked-LM BERT. "
                 "It has seen paraphrase and similarity supervision, which may lift MRPC and STS-B (and QQP) above "
                 "what a masked-LM of its size would reach, and its \"pre-trained\" attention maps are those of "
                 "an already sentence-tuned model",
    "bert-base-uncased": "bert-base-uncased, the paper's model (12 layers x 12 heads, hidden size 768)",
}
PAPER_LEARNING_RATE = 2e-5


def _epochs(n: float | None) -> str:
    return "? epochs" if n is None else f"{n:g} epoch{'' if n == 1 else 's'}"


def _sci(x: float) -> str:
    """1e-4, 2e-5 (not 0.0001, 2e-05)."""
    mantissa, exponent = f"{x:.0e}".split("e")
    return f"{mantissa}e{int(exponent)}"


def run_description(params: Mapping) -> str:
    """One paragraph on what a run is, from its recorded parameters (`preset_settings`, or a stage's params
    plus `tasks`, `seeds`, and optionally `examples` {task: (train, dev)}): the model and what it is, data
    sizes, learning rate against the paper's, precision, length-grouped batches, seeds, selection, the
    lottery's `both_rules` and `extras`. Missing values are left out."""
    parts = []
    name = params.get("preset")
    model = params.get("model", "")
    parts.append((f"**This run** (`{name}`): " if name else "**This run**: ")
                 + f"the model is {MODEL_NOTES.get(model, f'`{model}`')}.")
    examples = params.get("examples") or {}
    if examples:
        parts.append("Tasks, with the train / dev examples used: "
                     + ", ".join(f"{t} {tr} / {dv}" for t, (tr, dv) in examples.items()) + ".")
    elif params.get("tasks"):
        parts.append(f"Tasks: {', '.join(map(str, params['tasks']))}.")
    if params.get("seeds"):
        seeds = list(params["seeds"])
        parts.append(f"Seed {seeds[0]} (this notebook runs one; the paper: 5 seeds)." if len(seeds) == 1 else
                     f"Seeds: {', '.join(map(str, seeds))} ({len(seeds)}; the paper: 5).")
    if "learning_rate" in params:
        lr = float(params["learning_rate"])
        why = ("" if lr == PAPER_LEARNING_RATE else " The small model on a few thousand examples needs the larger "
               "rate: at 2e-5 it stays near the majority class (params/demo.yaml gives the measurements).")
        parts.append(f"Fine-tuning: learning rate {_sci(lr)} (the paper: {_sci(PAPER_LEARNING_RATE)}), batch "
                     f"{params.get('batch_size', '?')}, {_epochs(params.get('epochs'))}.{why}")
    if "bf16" in params:
        parts.append(f"Precision: {'bf16 autocast' if params['bf16'] else 'fp32'}"
                     + (f" ({params['bf16_reason']})" if params.get("bf16_reason") else "") + "; the paper: fp32.")
    if "group_by_length" in params:
        parts.append("Batches grouped by length (a CPU speed option)." if params["group_by_length"]
                     else "Random batches, as the paper.")
    if "selection" in params:
        parts.append("Masks chosen and scored on the same dev set, as the paper." if params["selection"] == "dev"
                     else "Masks chosen on one half of dev and every score on the other half (`selection: split`).")
    if "both_rules" in params:
        parts.append("Random s- and bad m-subnetworks drawn by both the paper's and the authors' rule."
                     if params["both_rules"] else "Random s- and bad m-subnetworks by the paper's rule only "
                     "(`both_rules` off): the paper's numbers for those two rows came from the authors' rule.")
    if "extras" in params:
        parts.append("Extras (Appendix D, super-survivors, random-init BERT) on." if params["extras"]
                     else "Extras (Appendix D, super-survivors, random-init BERT) off.")
    if name == CI_PRESET:
        parts.append("This is the CI preset: its models are barely trained and its numbers only check that the "
                     "chain runs; read the committed runs' reports under `outputs/<preset>/`.")
    return " ".join(parts)


def conclusions(settings: Mapping, res: pd.DataFrame, checklist: pd.DataFrame, degenerate: pd.DataFrame) -> str:
    """The report's closing "what this run shows", generated from the run's numbers: per task the reading
    (`task_reading`) with the pruned and re-fine-tuned shares of the full-minus-majority gap, the degenerate
    seeds left out, and the checklist's tally."""
    name = settings.get("preset", "this run")
    shares = gap_shares(res)
    left_out = shares.set_index(["task", "seed"]).index.isin(list(degenerate[["task", "seed"]].itertuples(index=False)))
    mean = shares[~left_out].groupby(["task", "method", "subnetwork", "setting"])["gap_share"].mean()
    readings = task_reading(checklist).set_index("task")
    out = [f"On `{name}` ({len(settings.get('seeds', []))} seeds), each subnetwork's score is given as its share "
           "of the gap from the majority class (0) to the full model (1), mean over seeds."]
    for task in dict.fromkeys(finetune_scores(res).task):
        def g(method: str, sub: str, setting: str) -> str:
            v = mean.get((task, method, sub, setting), np.nan)
            return "n/a" if pd.isna(v) else f"{v:.2f}"
        reading = readings.reading.get(task, CANNOT_TELL_READING)
        s, m = S_PRUNING, M_PRUNING
        out.append(f"{task}: {reading}. Pruned, good / random / bad keep {g(s, 'good', PRUNED)} / "
                   f"{g(s, 'random', PRUNED)} / {g(s, 'bad', PRUNED)} (s) and {g(m, 'good', PRUNED)} / "
                   f"{g(m, 'random', PRUNED)} / {g(m, 'bad', PRUNED)} (m); re-fine-tuned, {g(s, 'good', REFINETUNED)} / "
                   f"{g(s, 'random', REFINETUNED)} / {g(s, 'bad', REFINETUNED)} (s).")
    if not degenerate.empty:
        out.append("Left out of the verdicts as degenerate: "
                   + "; ".join(f"{r.task} seed {r.seed} ({r.reason})" for r in degenerate.itertuples()) + ".")
    counts = tally(checklist.verdict)
    out.append("The claims checklist: " + ", ".join(f"{k} {v}" for k, v in counts.items())
               + f" (of {len(checklist)}).")
    return " ".join(out)

