"""The built wheel works on its own: installed in a fresh virtual environment outside the checkout, the
library validates parameters against its shipped schema, fine-tunes and s-prunes on tiny data, and saves
a run folder under the current directory."""
import os
import shutil
import subprocess
import sys
import sysconfig
import textwrap
import venv
from pathlib import Path

import pytest

from lotterylib.core import files

SCRIPT = textwrap.dedent('''
    import sys
    from pathlib import Path

    import lotterylib
    from lotterylib.core import files, finetuning, gates, models
    from lotterylib.core.training import TrainConfig
    from lotterylib.pruning import structured
    from lotterylib.stages import config, runs

    checkout = Path(sys.argv[1])
    assert not Path(lotterylib.__file__).resolve().is_relative_to(checkout), lotterylib.__file__
    assert files.PROJECT_ROOT == Path.cwd()
    params = config.validate_params({"task": "sst-2", "epochs": 1})   # the schema ships as package data
    assert params == {"task": "SST-2", "epochs": 1.0}
    tokenizer = models.load_tokenizer("minilm-l6")
    td = finetuning.load_task_data("SST-2", tokenizer, sys.argv[2], 16, 16, 32)
    cfg = TrainConfig(learning_rate=1e-4, batch_size=8, epochs=1)
    net, g, losses = finetuning.finetune_model("minilm-l6", td.task, td.train_enc, cfg, seed=1, progress=False)
    g.remove()
    layers, heads = models.shape_of(net)
    scorer = structured.make_scorer(net, td.task, td.dev_enc, gates.Gates(net), batch_size=16)
    result = structured.structured_search(scorer, None, layers, heads, threshold=0.5, progress=False)
    run = runs.Run(runs.stage_dir("outputs/wheel", "s_pruning", "SST-2", 1), params)
    structured.save_search(run.dir, result)
    run.finish({"good_score": result.score, "steps": len(result.steps) - 1})
    assert (Path.cwd() / "outputs/wheel/SST-2/seed_1/s_pruning/metrics.json").is_file()
    workflow = {"snakemake", "papermill", "nbclient", "ipykernel", "jupyter_client"} & set(sys.modules)
    assert not workflow, f"the library imported the workflow stack: {workflow}"
    print("ok", len(losses), "losses;", len(result.steps) - 1, "search steps; kept", int(result.masks.head.sum()), "heads")
''')


def tiny_sst2(folder: Path) -> Path:
    """A GLUE folder with 16 SST-2 sentences in train and dev (classic tsv layout)."""
    rows = [("a fine , moving film", 1), ("dull and lifeless", 0), ("a joy to watch", 1), ("tedious mess", 0)] * 4
    (folder / "SST-2").mkdir(parents=True)
    for split in ("train", "dev"):
        lines = ["sentence\tlabel", *(f"{text}\t{label}" for text, label in rows)]
        (folder / "SST-2" / f"{split}.tsv").write_text("\n".join(lines) + "\n")
    return folder


@pytest.mark.slow
def test_the_wheel_fine_tunes_and_s_prunes_outside_the_checkout(tmp_path):
    source, wheels = tmp_path / "source", tmp_path / "wheels"   # built from a copy: no build/ in the checkout
    shutil.copytree(files.PROJECT_ROOT / "lotterylib", source / "lotterylib", ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy(files.PROJECT_ROOT / name, source / name)
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--quiet",
                    "--wheel-dir", str(wheels), str(source)], check=True, cwd=tmp_path)
    (wheel,) = wheels.glob("lotterylib-*.whl")
    env_dir = tmp_path / "env"
    venv.create(env_dir, with_pip=False)
    python = env_dir / "bin" / "python"
    site = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          capture_output=True, text=True, check=True).stdout.strip()
    # The dependencies from this environment's site-packages, as a plain path: a .pth line adds the folder
    # without processing the .pth files in it, so the checkout's editable install stays out.
    (Path(site) / "deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--quiet", "--target", site, str(wheel)],
                   check=True, cwd=tmp_path)  # into the new environment only, whatever this one holds
    work = tmp_path / "work"
    work.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "LOTTERY_GLUE_DIR")}
    out = subprocess.run([str(python), "-c", SCRIPT, str(files.PROJECT_ROOT), str(tiny_sst2(tmp_path / "glue"))],
                         cwd=work, env={**env, "HF_HUB_OFFLINE": "1"}, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    *log, last = out.stdout.splitlines()
    assert last.startswith("ok 2 losses;") and log[0].startswith("fine-tune: epoch 1/1 step 2/2 loss")
