"""The committed outputs: which run-folder files git tracks, and the size budget of a committed preset."""
import shutil
import subprocess

import pytest

from lotterylib.core.files import PROJECT_ROOT

COMMITTED = ["outputs/README.md", "outputs/demo/results.csv", "outputs/demo/results.parquet",
             "outputs/demo/SST-2/seed_1/finetune/01_finetune.ipynb", "outputs/demo/SST-2/seed_1/finetune/metrics.json",
             "outputs/demo/SST-2/seed_1/finetune/params.json", "outputs/demo/SST-2/seed_1/finetune/loss.png",
             "outputs/demo/SST-2/seed_1/s_pruning/head_mask.npy", "outputs/demo/SST-2/seed_1/s_pruning/importance.npz",
             "outputs/demo/SST-2/seed_1/m_pruning/survival.npz", "outputs/demo/SST-2/seed_1/m_pruning/survival.pdf",
             "outputs/demo/SST-2/seed_1/lottery/s_subnetworks.npz", "outputs/demo/SST-2/seed_1/lottery/scores.csv",
             "outputs/demo/all_tasks/report/00_report.ipynb", "outputs/demo/logs/finetune/SST-2_1.log",
             "outputs/cpu/STS-B/seed_2/m_pruning/steps.csv"]
IGNORED = ["outputs/demo/SST-2/seed_1/finetune/checkpoint/model.safetensors",
           "outputs/demo/SST-2/seed_1/finetune/checkpoint/config.json",
           "outputs/demo/SST-2/seed_1/finetune/checkpoint/tokenizer.json",
           "outputs/demo/SST-2/seed_1/m_pruning/weight_masks.npz",
           "outputs/demo/SST-2/seed_1/lottery/m_subnetworks/bad.npz",
           "outputs/paper/MNLI/seed_42/finetune/pytorch_model.bin",
           "outputs/demo/.results.csv.tmp", "outputs/smoke/SST-2/seed_1/finetune/metrics.json"]
BUDGET_MB = 20


def check_ignore(paths):
    """The paths git would ignore (whether or not they exist or are tracked)."""
    out = subprocess.run(["git", "check-ignore", "--no-index", "--stdin"], cwd=PROJECT_ROOT, input="\n".join(paths),
                         capture_output=True, text=True)
    assert out.returncode in (0, 1), out.stderr
    return set(out.stdout.split())


needs_git = pytest.mark.skipif(shutil.which("git") is None or not (PROJECT_ROOT / ".git").exists(),
                               reason="not a git checkout")


@needs_git
def test_small_artifacts_are_tracked_and_large_binaries_ignored():
    ignored = check_ignore(COMMITTED + IGNORED)
    assert not ignored & set(COMMITTED), f"would not be committed: {sorted(ignored & set(COMMITTED))}"
    assert set(IGNORED) <= ignored, f"would be committed: {sorted(set(IGNORED) - ignored)}"


@needs_git
def test_each_committed_preset_fits_the_budget():
    tracked = subprocess.run(["git", "ls-files", "-z", "outputs"], cwd=PROJECT_ROOT, capture_output=True,
                             text=True, check=True).stdout.split("\0")
    sizes: dict[str, int] = {}
    for path in filter(None, tracked):
        parts = path.split("/")
        if len(parts) > 2 and (PROJECT_ROOT / path).is_file():
            sizes[parts[1]] = sizes.get(parts[1], 0) + (PROJECT_ROOT / path).stat().st_size
    too_big = {p: round(s / 1e6, 1) for p, s in sizes.items() if s > BUDGET_MB * 1e6}
    assert not too_big, f"committed presets over {BUDGET_MB} MB: {too_big}"
