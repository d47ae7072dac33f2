"""Grid time estimates from a calibration, and job times from Snakemake benchmark files."""
from __future__ import annotations

import numpy as np
import pytest

from lotterylib.workflow import pipeline, timing
from lotterylib.workflow.timing import Calibration, TaskSize

CAL = Calibration(gflops=34.5, step_seconds=1.0, batch_size=10, seq_len=10, bf16=False)   # 100 tokens/s


def test_estimate_prices_each_job_from_its_tokens(monkeypatch):
    preset = pipeline.load_preset("smoke", {"tasks": ["SST-2"], "seeds": [1, 2], "epochs": 2, "extras": False,
                                            "stages": ["finetune", "s_pruning", "m_pruning", "lottery"]})
    monkeypatch.setattr(timing, "task_sizes", lambda p: [TaskSize("SST-2", train_tokens=1000, dev_tokens=300)])
    est = timing.estimate(preset, cores=2, cal=CAL)
    over = timing.JOB_OVERHEAD_S
    by_hand = {"finetune": over + (2 * 1000 + 300 / 3) / 100,          # 2 epochs + one forward pass over dev
               "s_pruning": over + 12 * 2 / 3 * 300 / 100,            # 12 importance passes
               "m_pruning": over + 10 / 3 * 300 / 100,                # 10 forward passes
               "lottery": over + (8 * 2 * 1000 + 16 / 3 * 300) / 100}  # 6 + 2 re-fine-tunings, 12 + 4 evals
    assert preset["both_rules"]                                         # (both rules: the 2 and 4 of those)
    assert est.jobs == {s: 2 for s in by_hand}
    assert est.stage_seconds == pytest.approx({s: 2 * v for s, v in by_hand.items()})
    chain = by_hand["finetune"] + by_hand["s_pruning"] + by_hand["lottery"]
    assert est.chain_seconds == pytest.approx(chain)
    assert est.wall_seconds == pytest.approx(max(sum(by_hand.values()), chain))   # 2 seeds' work on 2 cores
    with_extras = timing.estimate({**preset, "extras": True}, cores=2, cal=CAL)
    # extras: 6 more runs of 2 epochs and 8 more evaluations, for each of the 2 seeds
    assert with_extras.stage_seconds["lottery"] - est.stage_seconds["lottery"] == \
        pytest.approx(2 * (6 * 2 * 1000 + 8 / 3 * 300) / 100)
    one_rule = timing.estimate({**preset, "both_rules": False}, cores=2, cal=CAL)
    assert est.stage_seconds["lottery"] - one_rule.stage_seconds["lottery"] == \
        pytest.approx(2 * (2 * 2 * 1000 + 4 / 3 * 300) / 100)
    text = timing.format_estimate("smoke", est)
    assert "8 jobs" in text and "34.5 GFLOP/s" in text


def test_a_training_epoch_is_priced_with_its_padding():
    """Each batch is padded to its longest example, so an epoch costs more tokens than the examples hold."""
    same = np.full(50, 7)
    assert timing.padded_epoch_tokens(same, 100, 32, group_by_length=True) == 100 * 7          # nothing to pad
    two = np.array([1, 9])
    assert timing.padded_epoch_tokens(two, 32, 32, group_by_length=False) == 32 * 9           # one batch, max 9
    # sorted chunks pad less than random batches once the train set is large enough for chunks of many batches
    lengths = np.arange(1, 65)
    grouped, plain = (timing.padded_epoch_tokens(lengths, 32_000, 32, g) for g in (True, False))
    assert 32_000 * lengths.mean() < grouped < 0.6 * plain


def test_a_training_step_has_a_part_that_does_not_grow_with_the_length():
    """0.85 s at 48 tokens and 0.30 s at 12: 0.55 / 36 s a token, so 0.85 - 48 x 0.55 / 36 = 0.1167 s at
    length 0; a line that falls below 0 there gives 0."""
    assert timing.fixed_step_seconds(0.85, 0.30, 48, 12) == pytest.approx(0.85 - 48 * 0.55 / 36)
    assert timing.fixed_step_seconds(0.85, 0.10, 48, 12) == 0.0
    cal = Calibration(gflops=1.0, step_seconds=2.0, batch_size=10, seq_len=10, bf16=False, fixed_seconds=1.0)
    assert cal.tokens_per_second == 100.0                       # 100 tokens in the 1 s that grows with them
    size = TaskSize("CoLA", train_tokens=1000, dev_tokens=0.0, train_batches=10)
    # fine-tuning, one epoch: 1000 tokens at 100 a second, and 10 steps of 1 s whatever their length
    assert timing.job_seconds({"epochs": 1}, "finetune", size, cal) == pytest.approx(timing.JOB_OVERHEAD_S + 20.0)
    # the lottery without extras or the authors' rule: 6 such runs, 3 of them under weight masks at 0.5 s more a
    # step; 12 evaluations of no dev tokens
    masked = Calibration(gflops=1.0, step_seconds=2.0, batch_size=10, seq_len=10, bf16=False, fixed_seconds=1.0,
                         masked_seconds=0.5)
    lottery = {"epochs": 1, "both_rules": False, "extras": False}
    assert timing.job_seconds(lottery, "lottery", size, masked) == pytest.approx(
        timing.JOB_OVERHEAD_S + 6 * 20.0 + 3 * 10 * 0.5)


def test_the_attention_cnns_are_priced_at_this_machines_matmul_speed():
    """5 classes x 300 maps x 25 epochs x 3 CNNs at 0.0025 s a map and epoch on the machine the cost was
    fitted on (111.9 GFLOP/s): 281.25 s; on a machine half as fast, twice that."""
    preset = {"n_maps_per_class": 300, "cnn_epochs": 25, "cnn_ensemble": 3}
    fitted = timing.Calibration(gflops=111.9, step_seconds=1.0, batch_size=1, seq_len=1, bf16=False)
    half = timing.Calibration(gflops=55.95, step_seconds=1.0, batch_size=1, seq_len=1, bf16=False)
    assert timing.preset_stage_seconds(preset, "attention_patterns", fitted) == pytest.approx(
        timing.JOB_OVERHEAD_S + 281.25)
    assert timing.preset_stage_seconds(preset, "attention_patterns", half) == pytest.approx(
        timing.JOB_OVERHEAD_S + 562.5)


def test_jobs_table_reads_snakemake_benchmark_files(tmp_path):
    folder = tmp_path / "benchmarks" / "finetune"
    folder.mkdir(parents=True)
    header = "s\th:m:s\tmax_rss\tmax_vms\tmax_uss\tmax_pss\tio_in\tio_out\tmean_load\tcpu_time\n"
    (folder / "SST-2_seed_1.tsv").write_text(header + "125.5\t0:02:05\t812.4\t2000\t700\t710\t1\t2\t95.1\t119.3\n")
    (folder / "SST-2_seed_2.tsv").write_text(header + "60.0\t0:01:00\t-\t-\t-\t-\t-\t-\t-\t-\n")
    rows = timing.read_benchmarks(tmp_path)
    assert [(r["job"], r["seconds"]) for r in rows] == [("SST-2_seed_1", 125.5), ("SST-2_seed_2", 60.0)]
    assert rows[0]["max_rss_mb"] == 812.4 and rows[0]["cpu_seconds"] == 119.3
    text = timing.format_jobs(rows)
    assert "2 jobs, 3 min" in text and "finetune" in text
    assert "No benchmark files" in timing.format_jobs(timing.read_benchmarks(tmp_path / "nothing"))


def test_idle_cores_of_the_last_round():
    assert timing.idle_core_seconds(600, n_jobs=3, cores=2) == 600   # the demo: the third lottery job runs alone
    assert timing.idle_core_seconds(600, n_jobs=4, cores=2) == 0
    assert timing.idle_core_seconds(600, n_jobs=4, cores=3) == 1200  # two of three cores idle in round two
    est = timing.Estimate({"lottery": 1800.0}, {"lottery": 3}, 2, CAL, chain_seconds=0.0, idle_seconds=600.0)
    assert est.wall_seconds == 1200    # (1800 + 600) / 2: two rounds of 600 s


def test_grid_wall_time_from_the_snakemake_log(tmp_path):
    log = tmp_path / "snakemake.log"
    log.write_text("Assuming unrestricted shared filesystem usage.\n[Sun Nov 29 20:57:42 2026]\nlocalrule finetune:\n"
                   "    wildcards: task=SST-2, seed=1\n[Sun Nov 29 21:28:49 2026]\nFinished jobid: 1\n"
                   "[Mon Nov 30 00:01:02 2026]\nComplete log(s): x\n")
    assert timing.grid_wall_seconds(log) == 3 * 3600 + 3 * 60 + 20       # 20:57:42 to 00:01:02 the next day
    timing.main(["jobs", str(tmp_path / "out"), "--keep-log", str(log)])          # kept: it ran jobs
    kept = tmp_path / "out" / timing.SNAKEMAKE_LOG
    assert kept.read_text() == log.read_text()
    log.write_text("[Sun Nov 29 20:57:42 2026]\nNothing to be done.\n")
    assert timing.grid_wall_seconds(log) is None
    timing.main(["jobs", str(tmp_path / "out"), "--keep-log", str(log)])          # a rerun that did nothing
    assert "00:01:02" in kept.read_text()


def test_each_part_of_a_grid_keeps_its_log_and_the_parts_add_up(tmp_path, capsys):
    out = tmp_path / "out"
    for name, (start, end) in {"2026-12-07T030000.1.snakemake.log": ("03:00:00", "04:30:00"),
                               "2026-12-08T100000.2.snakemake.log": ("10:00:00", "10:20:30")}.items():
        (tmp_path / name).write_text(f"[Mon Dec 07 {start} 2026]\nlocalrule finetune:\n[Mon Dec 07 {end} 2026]\n")
        timing.main(["jobs", str(out), "--keep-log", str(tmp_path / name)])
    assert sorted(p.name for p in (out / timing.SNAKEMAKE_RUNS).iterdir()) == [
        "2026-12-07T030000.1.snakemake.log", "2026-12-08T100000.2.snakemake.log"]
    assert "20:30" in (out / timing.SNAKEMAKE_LOG).read_text()   # the last part
    assert capsys.readouterr().out.strip().endswith(
        "The grid ran in 2 parts (2026-12-07T030000: 1h30; 2026-12-08T100000: 20 min), 1h50 of wall time in all.")


def finish(preset, job, signature=None):
    """A faked finished job: its run folder's metrics.json and the signature `run_stage` records."""
    folder = pipeline.stage_dir(preset["outputs_root"], *job)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "metrics.json").write_text("{}")
    (folder / pipeline.SIGNATURE_FILE).write_text(signature or pipeline.job_signature(preset, *job))


def test_progress_counts_the_jobs_done_and_prices_only_those_left(tmp_path, monkeypatch):
    preset = pipeline.load_preset("smoke", {"outputs_root": str(tmp_path / "smoke")})
    jobs = pipeline.grid_jobs(preset)   # 4 per-seed stages x 2 tasks x 2 seeds, 4 per-preset stages
    monkeypatch.setattr(timing, "task_sizes", lambda p: [TaskSize(t, 1000, 300) for t in p["tasks"]])
    full = timing.estimate(preset, cores=2, cal=CAL)
    assert timing.grid_progress(preset) == ([], jobs)

    for job in jobs:
        if job[0] == "finetune" or job[0] == "s_pruning" and job[2] == 1:
            finish(preset, job)
    finish(preset, ("m_pruning", "SST-2", 2), signature="0123456789abcdef")   # made by other code: redone
    finish(preset, ("lottery", "STS-B", 2))   # its s-pruning and m-pruning are not done: redone too
    done, todo = timing.grid_progress(preset)
    assert sorted(done) == sorted(j for j in jobs if j[0] == "finetune" or j[0] == "s_pruning" and j[2] == 1)
    assert len(jobs) == 20 and len(todo) == 14

    left = timing.estimate(preset, cores=2, cal=CAL, todo=todo)
    assert left.jobs == {"finetune": 0, "s_pruning": 2, "m_pruning": 4, "lottery": 4, "bad_subnetworks": 1,
                         "stability": 1, "attention_patterns": 1, "report": 1}
    assert left.stage_seconds["finetune"] == 0
    assert left.stage_seconds["s_pruning"] == pytest.approx(full.stage_seconds["s_pruning"] / 2)
    assert left.stage_seconds["lottery"] == pytest.approx(full.stage_seconds["lottery"])
    per_job = {s: full.stage_seconds[s] / 4 for s in ("finetune", "s_pruning", "m_pruning", "lottery")}
    preset_level = sum(v for s, v in full.stage_seconds.items() if s not in per_job)
    assert full.chain_seconds == pytest.approx(per_job["finetune"] + per_job["s_pruning"] + per_job["lottery"] + preset_level)
    # seed 2: s-pruning (m-pruning beside it), then the lottery; seed 1: m-pruning alone, then the lottery
    assert left.chain_seconds == pytest.approx(per_job["s_pruning"] + per_job["lottery"] + preset_level)
    assert "the 14 jobs left of the smoke grid (6 done)" in timing.format_estimate("smoke", left, done=len(done))

    line = timing.progress_line("smoke", preset, 2, CAL)
    assert line.startswith(f"The smoke grid ({tmp_path / 'smoke'}): 6/20 jobs done; 14 to run, about ")
    assert line.endswith(f"{timing._hms(left.wall_seconds)} on 2 cores (estimate).")
    assert timing.progress_line("smoke", preset, 2, None).endswith("6/20 jobs done; 14 to run.")
    for job in todo:
        finish(preset, job)
    assert timing.progress_line("smoke", preset, 2, CAL).endswith("20/20 jobs done; nothing left to run.")


def test_the_estimate_of_a_grid_run_in_parts_says_how_much_is_done(tmp_path, monkeypatch, capsys):
    root = tmp_path / "smoke"
    preset_file = tmp_path / "smoke.yaml"
    preset_file.write_text((pipeline.PROJECT_ROOT / "params" / "smoke.yaml").read_text() + f"\noutputs_root: {root}\n")
    preset = pipeline.load_preset(str(preset_file))
    for job in pipeline.grid_jobs(preset)[:4]:   # the fine-tunings: done in an earlier part
        finish(preset, job)
    monkeypatch.setattr(timing, "task_sizes", lambda p: [TaskSize(t, 1000, 300) for t in p["tasks"]])
    monkeypatch.setattr(timing, "calibrate_for", lambda p, sizes=None: CAL)
    timing.main(["estimate", "--preset", str(preset_file)])
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("Estimated time of the smoke grid on this machine: 20 jobs")   # the whole grid
    assert lines[-1].startswith(f"The smoke grid ({root}): 4/20 jobs done; 16 to run, about ")


def test_lottery_run_prints_the_jobs_done_and_the_time_left_before_and_after(tmp_path, monkeypatch, capsys):
    from lotterylib.workflow import cli

    root = tmp_path / "smoke"
    preset = pipeline.load_preset("smoke", {"outputs_root": str(root)})
    for job in pipeline.grid_jobs(preset)[:4]:   # the fine-tunings: done in an earlier part
        finish(preset, job)
    monkeypatch.setattr(timing, "task_sizes", lambda p: [TaskSize(t, 1000, 300) for t in p["tasks"]])
    monkeypatch.setattr(timing, "calibrate_for", lambda p, sizes=None: CAL)

    printed = []

    def snakemake(*args):   # this part runs the s-prunings
        assert f"outputs_root={root}" in args
        printed.append(capsys.readouterr().out)   # what `run` printed before the grid
        for job in pipeline.grid_jobs(preset)[4:8]:
            finish(preset, job)
        return 0
    monkeypatch.setattr(cli, "_snakemake", snakemake)
    assert cli.main(["run", "smoke", "--config", f"outputs_root={root}"]) == 0
    before, after = printed[0], capsys.readouterr().out
    assert "Estimated time of the 16 jobs left of the smoke grid (4 done)" in before
    assert f"The smoke grid ({root}): 4/20 jobs done; 16 to run, about " in before
    assert f"The smoke grid ({root}): 8/20 jobs done; 12 to run, about " in after.splitlines()[-1]


def test_the_calibration_times_a_plain_and_a_masked_step_of_the_model():
    cal = timing.calibrate("minilm-l6", batch_size=2, seq_len=16, bf16=False, steps=1)
    assert (cal.batch_size, cal.seq_len, cal.bf16) == (2, 16, False)
    assert 0.0 <= cal.fixed_seconds < cal.step_seconds and cal.masked_seconds >= 0.0 and cal.gflops > 0
