"""What the report reads from run folders besides results.csv: the parameters the stages recorded, the GLUE
baseline rows (with a user's CSV), the held-out run that goes with a preset, and the figures the stages saved."""
from __future__ import annotations

import base64
import io
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from ...analysis import baselines
from ...core.tasks import get_task
from ...stages import runs
from .. import results
from ...core import files


def load_baselines(csv: str | Path = "") -> dict[str, dict[str, float]]:
    """The GLUE baseline rows: `baselines.GLUE_BASELINES` (the GLUE paper's dev-set table), updated from a
    user-supplied CSV with columns model, task, score (0-1 scale). Rows without numbers are left out."""
    rows = {name: dict(v) for name, v in baselines.GLUE_BASELINES.items()}
    if csv:
        df = pd.read_csv(files.resolve(csv))
        missing = {"model", "task", "score"} - set(df.columns)
        if missing:
            raise ValueError(f"{csv}: missing columns {sorted(missing)}; expected model, task, score")
        for r in df.itertuples():
            rows.setdefault(str(r.model), {})[get_task(r.task).name] = float(r.score)
    return {name: v for name, v in rows.items() if v}


def glue_baselines(outputs_root: str | Path) -> dict[str, dict[str, float]]:
    """The GLUE baseline rows of Table 2 (shipped data, `load_baselines`), with the `baselines_csv` the
    bad_subnetworks stage recorded, if any: {model: {task: score}}."""
    params = runs.stage_dir(outputs_root, "bad_subnetworks") / "params.json"
    csv = files.read_json(params)["params"].get("baselines_csv", "") if params.is_file() else ""
    return load_baselines(csv)


def run_settings(outputs_root: str | Path, stage: str = "lottery") -> dict:
    """The parameters one of the preset's `stage` runs recorded (params.json), e.g. compat, epochs, model."""
    for path in sorted(files.resolve(outputs_root).glob(f"*/seed_*/{stage}/params.json")):
        return runs.read_params(path.parent)
    return {}


def preset_settings(outputs_root: str | Path) -> dict:
    """What `run_description` needs, from the run folders: the lottery stage's parameters (else the fine-tuning
    stage's), the preset's name, tasks, seeds and per task the train and dev examples the fine-tuning used."""
    root = files.resolve(outputs_root)
    params = {**run_settings(root, "finetune"), **run_settings(root, "lottery")}
    sizes = {}
    for path in sorted(root.glob("*/seed_*/finetune/metrics.json")):
        m = files.read_json(path)
        sizes[path.parent.parent.parent.name] = (int(m["train_examples"]), int(m["dev_examples"]))
    seeds = sorted({int(p.parent.name.removeprefix("seed_")) for p in root.glob("*/seed_*/finetune")})
    return {**params, "preset": root.name, "tasks": list(sizes), "seeds": seeds, "examples": sizes}


def split_results(outputs_root: str | Path, heldout_root: str | Path = "") -> tuple[pd.DataFrame | None, str]:
    """The results of the `selection: split` run that goes with this report, and a sentence on where they come
    from (or why there are none): this run's own if it is a split run, else `heldout_root`'s if it has run."""
    if run_settings(outputs_root, "lottery").get("selection") == "split":
        return results.read(outputs_root), "this run chose its masks on one half of dev and scores them on the other."
    if not heldout_root:
        return None, "heldout_root is empty: no run with masks chosen on one half of dev goes with this one."
    if not (files.resolve(heldout_root) / results.CSV_NAME).is_file():
        return None, (f"No held-out run at {heldout_root} yet: run the same preset with `--config selection=split` "
                      "(its results go there), then this report again.")
    return results.read(heldout_root), f"from the held-out run {files.display_path(files.resolve(heldout_root))}."


def report_split(outputs_root: str | Path) -> pd.DataFrame | None:
    """`split_results` for the `heldout_root` the preset's report recorded (its params.json)."""
    params = runs.stage_dir(outputs_root, "report") / "params.json"
    heldout = runs.read_params(params.parent).get("heldout_root", "") if params.is_file() else ""
    return split_results(outputs_root, heldout)[0]


def figure_files(outputs_root: str | Path, stage: str, pattern: str) -> list[Path]:
    """The PNG figures a preset-level stage saved whose names match `pattern` (e.g. "s_survival_*"), sorted."""
    return sorted(runs.stage_dir(outputs_root, stage).glob(f"{pattern}.png"))


def png_preview(path: str | Path, width: int = 800) -> bytes:
    """A saved PNG figure scaled down to at most `width` pixels wide, as PNG bytes (keeps the report small)."""
    from PIL import Image

    with Image.open(path) as image:
        if image.width > width:
            image = image.resize((width, round(image.height * width / image.width)), Image.Resampling.LANCZOS)
        buffer = io.BytesIO()
        image.save(buffer, format="PNG", optimize=True)
    return buffer.getvalue()



def figure_gallery(outputs_root: str | Path, stage: str, *patterns: str, width: int = 800) -> str:
    """Markdown showing the figures a preset-level stage saved whose names match `patterns` (`figure_files`), each
    under its file name, scaled down to `width` pixels (`png_preview`) and embedded; "" when there are none."""
    paths = [p for pattern in patterns for p in figure_files(outputs_root, stage, pattern)]
    return "\n\n".join(f"`{p.name}`\n\n![{p.stem}](data:image/png;base64,"
                       f"{base64.b64encode(png_preview(p, width)).decode()})" for p in paths)


def stage_settings(outputs_root: str | Path, stages: Sequence[str] = ("finetune", "lottery")) -> pd.DataFrame:
    """The parameters each of `stages` recorded (`run_settings`), one column per stage, one row per parameter."""
    return pd.DataFrame({stage: run_settings(outputs_root, stage) for stage in stages}).dropna(how="all")
