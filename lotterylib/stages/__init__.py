"""The stages wing: what runs a stage, for a notebook and for the workflow.

- `registry`: every parameter declared once and one contract per stage (`PARAMS`, `STAGES`);
- `config`: the checks of parameter values against the registry's schema;
- `runs`: the run folders (params.json, metrics.json as the done-marker, the lock);
- `inputs`: what a stage reads from the stages before it, in one call;
- `checkpoints`: the fine-tuned checkpoints (saved, loaded, rebuilt when missing);
- `head_patterns`: Figure 4's inputs, from a preset's checkpoints and masks.

A stage notebook opens with `job = stages.open("<stage>", globals())` (`open`, below): the one check of its
values, at the edge, before anything is written. Its imports are made when a notebook opens a job: importing
the registry (the workflow does, in Snakemake's process) runs this file first, and must not import torch.
"""
from __future__ import annotations

from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any, MutableMapping

if TYPE_CHECKING:
    from .registry import Stage
    from ..core.training import TrainConfig


@dataclass
class Job:
    """A stage notebook's job, from `open`: its validated `values`, the `params` its run folder records, the
    bf16 `precision` decided on this machine (None where the stage takes no `bf16`) and its `run` folder."""

    stage: str
    values: dict[str, Any]
    params: dict[str, Any]
    precision: Any
    run: Any  # runs.Run

    def train_config(self) -> TrainConfig:
        """The `TrainConfig` of the stage's training parameters (bf16 as decided on this machine)."""
        from ..core.training import TrainConfig

        names = {f.name for f in fields(TrainConfig)}
        return TrainConfig(**{k: v for k, v in self.values.items() if k in names})


def open(stage: str, namespace: MutableMapping[str, Any]) -> Job:  # noqa: A001 (stages.open reads as intended)
    """Open a stage notebook's job: the one check of its values, at the edge, before anything is written.

    Validates and normalises the notebook's parameters (`config.validate_globals`: unknown names, types,
    ranges, the model's family, a value the stage does not take), decides bf16 on this machine
    (`hardware.decide_bf16`), checks that the stages it reads for its own task and seed are done, and returns the `Job` with the values its run
    folder records (every parameter but `outputs_root` and display-only ones, bf16 as decided, the
    decision's reason) and its run folder (made at first use). The notebook's globals are normalised in
    place and keep their names (`bf16` becomes the decision): the notebooks tell their story with the
    parameters' own names, as `papermill --help-notebook` lists them, rather than through `job.`; `job`
    carries what the opening adds (`run`, `params`, `precision`, `train_config()`)."""
    from .config import validate_globals
    from ..core.hardware import decide_bf16
    from .registry import DISPLAY_ONLY, STAGES, WHERE
    from .runs import Run, stage_dir

    spec = STAGES[stage]
    values = validate_globals(namespace, spec.params, stage)
    precision = None
    recorded = {k: v for k, v in values.items() if k not in DISPLAY_ONLY + WHERE}
    if "bf16" in values:
        precision = decide_bf16(values["bf16"])
        values["bf16"] = namespace["bf16"] = precision.enabled
        recorded |= precision.record()
    _check_upstream(spec, values)
    folder = stage_dir(values["outputs_root"], stage, values.get("task"), values.get("seed"))
    return Job(stage, values, recorded, precision, Run(folder, recorded))


def _check_upstream(spec: Stage, values: dict[str, Any]) -> None:
    """A per-seed stage's needs, for its task and seed, are done (per-preset stages check their inputs as
    they read them: some take other folders, or allow missing seeds)."""
    from .runs import is_done, missing_run_error, stage_dir

    if spec.level != "seed":
        return
    for need in spec.needs:
        folder = stage_dir(values["outputs_root"], need, values["task"], values["seed"])
        if not is_done(folder):
            raise missing_run_error(folder / "metrics.json", need)
