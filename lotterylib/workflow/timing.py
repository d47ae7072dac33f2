"""Time you can see: a grid's estimated time before it runs, its measured job times after.

    python -m lotterylib.workflow.timing estimate --preset demo [--cores 2]
    python -m lotterylib.workflow.timing jobs outputs/demo

`estimate` calibrates on this machine (fp32 matmul GFLOP/s on one thread, and a few training steps of the
preset's model at its batch size and its tasks' mean padded length, in the precision `bf16` resolves to),
counts the grid's jobs and prices each from the tokens it processes, padding included (`padded_epoch_tokens`;
the work each stage declares, `registry.Work`). `jobs` reads the
Snakemake `benchmark:` files (`<outputs>/benchmarks/<stage>/....tsv`) and prints every job's time.
"""
from __future__ import annotations

import argparse
import csv
import math
import re
import shutil
import statistics
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import numpy as np
import torch

from ..analysis.patterns.layout import CLASSES
from ..stages.registry import STAGES
from . import pipeline

ATTENTION_SECONDS_PER_MAP = 0.0025  # attention patterns: CNN training per generated map and epoch (fp32) ...
ATTENTION_FIT_GFLOPS = 111.9        # ... on the AVX2-limited EPYC it was fitted on (its fp32 matmul per core)
JOB_OVERHEAD_S = 20.0          # papermill kernel start, imports, model and data loading
REFERENCE_GFLOPS = 34.5        # fp32 matmul per core of issue 13's AVX2 EPYC (2 cores, no AVX-512, no AMX)


@dataclass(frozen=True)
class Calibration:
    """What one core of this machine does: fp32 matmul GFLOP/s and seconds per training step of `batch_size`
    x `seq_len` tokens, of which `fixed_seconds` do not grow with the length (the optimizer step over every
    weight, the embeddings' 12M included, and the per-batch overhead); `masked_seconds`: what a step under
    weight masks (m-pruning's subnetworks) takes more."""

    gflops: float
    step_seconds: float
    batch_size: int
    seq_len: int
    bf16: bool
    fixed_seconds: float = 0.0
    masked_seconds: float = 0.0

    @property
    def tokens_per_second(self) -> float:
        """Tokens a second, the length-independent part of a step left out."""
        return self.batch_size * self.seq_len / (self.step_seconds - self.fixed_seconds)


def matmul_gflops(n: int = 1024, repeats: int = 5) -> float:
    """fp32 matrix multiplication GFLOP/s on one thread (best of `repeats`, in CPU time: other processes on a
    shared machine do not lower it)."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b
    best = math.inf
    for _ in range(repeats):
        start = time.process_time()
        a @ b
        best = min(best, time.process_time() - start)
    return 2 * n**3 / best / 1e9


def train_step_seconds(model: str, batch_size: int, seq_len: int, bf16: bool, steps: int = 5,
                       masked: bool = False) -> float:
    """Median CPU seconds of an AdamW step of `model`'s classifier on random tokens (after one warm-up step),
    with its head and MLP gates as every unpruned run trains (`core.finetuning.finetune_model`); on one thread,
    the wall time of an unloaded core. `masked`: also under weight masks that keep half of m-pruning's
    prunable set."""
    from ..core.gates import Gates
    from ..core.models import load_classifier
    from ..core.training import _forward
    from ..pruning.magnitude import apply_weight_masks, full_masks

    torch.manual_seed(0)
    net = load_classifier(model, "SST-2").train()
    Gates(net)
    if masked:
        apply_weight_masks(net, {name: torch.rand(m.shape) < 0.5 for name, m in full_masks(net).items()})
    opt = torch.optim.AdamW(net.parameters(), lr=1e-5)
    batch = {"input_ids": torch.randint(1000, net.config.vocab_size, (batch_size, seq_len)),
             "attention_mask": torch.ones(batch_size, seq_len, dtype=torch.long)}
    labels = torch.zeros(batch_size, dtype=torch.long)
    times = []
    for _ in range(steps + 1):
        start = time.process_time()
        loss = torch.nn.functional.cross_entropy(_forward(net, batch, bf16).float(), labels)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        times.append(time.process_time() - start)
    return statistics.median(times[1:])


def fixed_step_seconds(long: float, short: float, seq_len: int, short_len: int) -> float:
    """The part of a training step that does not grow with the length: the line through the step times at
    two lengths, at length 0 (never below 0 or above the shorter step)."""
    per_token = (long - short) / (seq_len - short_len)
    return min(max(long - per_token * seq_len, 0.0), short)


def calibrate(model: str, batch_size: int, seq_len: int, bf16: bool, steps: int = 5) -> Calibration:
    """Matmul GFLOP/s and training-step time, on one thread (a grid job's share), at `seq_len` and at a
    quarter of it (the length-independent part of a step), there also under weight masks (what they add).
    CPU time: the calibration measures the machine, not how busy it is now."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        step = train_step_seconds(model, batch_size, seq_len, bf16, steps)
        short_len = max(seq_len // 4, 1)
        short = train_step_seconds(model, batch_size, short_len, bf16, steps)
        fixed = fixed_step_seconds(step, short, seq_len, short_len) if short_len >= 4 else 0.0
        masked = max(train_step_seconds(model, batch_size, short_len, bf16, steps, masked=True) - short, 0.0)
        return Calibration(matmul_gflops(), step, batch_size, seq_len, bf16, fixed, masked)
    finally:
        torch.set_num_threads(threads)


def sample_lengths(preset: dict, task: str, split: str, tokenizer, sample: int = 1000) -> np.ndarray:
    """Tokenised lengths of a seeded sample of a task's split, truncated at `max_seq_len`."""
    from ..core.data import encode, load_split, subsample

    rows = subsample(load_split(task, split, preset.get("glue_dir") or None), sample, 0)
    return np.array([len(x) for x in encode(rows, tokenizer, preset["max_seq_len"]).input_ids])


def padded_epoch_tokens(lengths: np.ndarray, n: int, batch_size: int, group_by_length: bool, seed: int = 0) -> float:
    """Tokens one training epoch over `n` examples feeds the model, padding included: `n` lengths drawn from
    `lengths` (a sample), batched as training batches them (`data.batch_indices`: random, or length-grouped in
    chunks that shrink with the train set), each batch padded to its longest example."""
    from ..core.data import Encoded, batch_indices

    drawn = np.random.default_rng(seed).choice(lengths, size=n)
    enc = Encoded([[0] * int(k) for k in drawn], [], np.zeros(n))
    return float(sum(len(b) * drawn[b].max() for b in batch_indices(enc, batch_size, True, seed, group_by_length)))


@dataclass(frozen=True)
class TaskSize:
    """Tokens a task's jobs process: one pass over the (subsampled) train set and over dev; the training
    batches of one epoch."""

    task: str
    train_tokens: float
    dev_tokens: float
    train_batches: int = 0


def task_sizes(preset: dict) -> list[TaskSize]:
    from ..core.models import load_tokenizer
    from ..core.tasks import get_task

    tokenizer = load_tokenizer(preset["model"])
    sizes = []
    for task in preset["tasks"]:
        n_dev = get_task(task).official_rows["dev"]
        n_dev = min(preset["max_dev_examples"], n_dev) if preset["max_dev_examples"] else n_dev
        n_train = pipeline.train_examples(preset, task)
        train = padded_epoch_tokens(sample_lengths(preset, task, "train", tokenizer), n_train, preset["batch_size"],
                                    preset["group_by_length"])
        # evaluation batches are sorted by length: about no padding
        sizes.append(TaskSize(task, train, n_dev * float(np.mean(sample_lengths(preset, task, "dev", tokenizer))),
                              math.ceil(n_train / preset["batch_size"])))
    return sizes


def job_seconds(preset: dict, stage: str, size: TaskSize, cal: Calibration) -> float:
    """Estimated seconds of one per-seed job of `stage` on one core: its tokens (training and evaluation) at
    the calibrated rate, the length-independent part of each training step, and what weight masks add to a
    step of a masked run."""
    work = STAGES[stage].work.total(preset)
    tokens = work.runs * preset["epochs"] * size.train_tokens + work.dev * size.dev_tokens
    steps = preset["epochs"] * size.train_batches
    return (JOB_OVERHEAD_S + tokens / cal.tokens_per_second + work.runs * steps * cal.fixed_seconds
            + work.masked * steps * cal.masked_seconds)


def preset_stage_seconds(preset: dict, stage: str, cal: Calibration) -> float:
    """Estimated seconds of a job that runs across tasks and seeds: the CNNs of the attention patterns
    (fp32, scaled by this machine's fp32 matmul speed against the one the cost was fitted on), else the
    stage's declared seconds."""
    if stage == "attention_patterns":
        maps = preset["n_maps_per_class"] * len(CLASSES)
        per_map = ATTENTION_SECONDS_PER_MAP * ATTENTION_FIT_GFLOPS / cal.gflops
        return JOB_OVERHEAD_S + per_map * maps * preset["cnn_epochs"] * preset["cnn_ensemble"]
    return STAGES[stage].work.seconds


@dataclass(frozen=True)
class Estimate:
    """Estimated core-seconds per stage, job counts, the longest chain of dependent jobs, and the core time
    left idle in the last round of the longest per-seed stage."""

    stage_seconds: dict[str, float]
    jobs: dict[str, int]
    cores: int
    calibration: Calibration
    chain_seconds: float
    idle_seconds: float = 0.0

    @property
    def core_seconds(self) -> float:
        return sum(self.stage_seconds.values())

    @property
    def wall_seconds(self) -> float:
        """Core-seconds (and the idle cores of the last round) spread over the cores, but never less than one
        seed's chain of jobs (the dependencies: fine-tuning, then the pruning searches, then the lottery,
        then the preset stages)."""
        return max((self.core_seconds + self.idle_seconds) / self.cores, self.chain_seconds)


def idle_core_seconds(job_seconds: float, n_jobs: int, cores: int) -> float:
    """Core time left idle when `n_jobs` equal jobs that nothing else can run beside (the grid's last
    per-seed stage) run on `cores`: the empty slots of the last round, each as long as a job. 3 lottery jobs
    on 2 cores: one core idles for one job's time (the demo measured 31 minutes where the core time alone
    gives 26)."""
    return (-n_jobs % cores) * job_seconds


def estimate(preset: dict, cores: int, cal: Calibration | None = None,
             todo: list[pipeline.Job] | None = None) -> Estimate:
    """Price every job of the preset's grid from a calibration (run here when not given); with `todo`, only
    those jobs (`grid_progress`: the ones still to run)."""
    sizes = task_sizes(preset)
    if cal is None:
        cal = calibrate_for(preset, sizes)
    left = None if todo is None else set(todo)
    seconds, jobs, idle = {}, {}, 0.0
    chain = {(s.task, seed): 0.0 for s in sizes for seed in preset["seeds"]}   # per seed's jobs, one after the other
    for stage in preset["stages"]:
        if STAGES[stage].level == "seed":
            per_job = {s.task: job_seconds(preset, stage, s, cal) for s in sizes}
            mine = [(t, seed) for t, seed in chain if left is None or (stage, t, seed) in left]
            jobs[stage], seconds[stage] = len(mine), sum(per_job[t] for t, _ in mine)
            if mine:
                idle = idle_core_seconds(seconds[stage] / jobs[stage], jobs[stage], cores)   # the last one counts
            for t, seed in mine:   # m-pruning runs beside s-pruning: in a seed's chain only when that one is done
                if stage != "m_pruning" or (left is not None and ("s_pruning", t, seed) not in left):
                    chain[t, seed] += per_job[t]
        else:
            runs = left is None or (stage, None, None) in left
            jobs[stage], seconds[stage] = int(runs), preset_stage_seconds(preset, stage, cal) if runs else 0.0
    preset_level = sum(v for k, v in seconds.items() if STAGES[k].level != "seed")
    return Estimate(seconds, jobs, cores, cal, max(chain.values(), default=0.0) + preset_level, idle)


def calibrate_for(preset: dict, sizes: list[TaskSize] | None = None) -> Calibration:
    """A calibration at the preset's batch size, its tasks' mean padded train length and its bf16 on this CPU."""
    from ..core.hardware import bf16_enabled

    sizes = sizes or task_sizes(preset)
    seq_len = min(preset["max_seq_len"], round(np.mean([s.train_tokens / pipeline.train_examples(preset, s.task)
                                                         for s in sizes])))
    return calibrate(preset["model"], preset["batch_size"], max(8, seq_len), bf16_enabled(preset["bf16"], "cpu"))


def grid_progress(preset: dict) -> tuple[list[pipeline.Job], list[pipeline.Job]]:
    """The grid's jobs already done (`pipeline.settled`: finished and current, and so is everything they read,
    so Snakemake will not redo them) and those still to run."""
    done: list[pipeline.Job] = []
    todo: list[pipeline.Job] = []
    for job in pipeline.grid_jobs(preset):
        (done if pipeline.settled(preset, *job) else todo).append(job)
    return done, todo


def progress_line(name: str, preset: dict, cores: int, cal: Calibration | None) -> str:
    """`The demo grid: 4/14 jobs done; 10 to run, about 1h02 on 2 cores (estimate).`: the jobs done (of a grid
    run in parts) and the estimated time of the ones left (none without a calibration)."""
    done, todo = grid_progress(preset)
    line = f"The {name} grid ({pipeline.display_path(pipeline.resolve(preset['outputs_root']))}): " \
           f"{len(done)}/{len(done) + len(todo)} jobs done"
    if not todo:
        return f"{line}; nothing left to run."
    if cal is None:
        return f"{line}; {len(todo)} to run."
    est = estimate(preset, cores, cal, todo)
    return f"{line}; {len(todo)} to run, about {_hms(est.wall_seconds)} on {cores} cores (estimate)."


def _hms(seconds: float) -> str:
    minutes = round(seconds / 60)
    return f"{minutes // 60}h{minutes % 60:02d}" if minutes >= 60 else f"{minutes} min"


def format_estimate(name: str, est: Estimate, done: int = 0) -> str:
    """The estimate in lines; `done`: the grid's jobs already done, left out of `est` (`estimate(todo=...)`)."""
    cal = est.calibration
    what = f"the {sum(est.jobs.values())} jobs left of the {name} grid ({done} done)" if done else \
        f"the {name} grid"
    lines = [f"Estimated time of {what} on this machine: {sum(est.jobs.values())} jobs, about "
             f"{_hms(est.wall_seconds)} on {est.cores} cores ({_hms(est.core_seconds)} of one core).",
             f"  calibration (1 thread): fp32 matmul {cal.gflops:.1f} GFLOP/s; a training step (batch "
             f"{cal.batch_size} x {cal.seq_len} tokens, {'bf16' if cal.bf16 else 'fp32'}) {cal.step_seconds:.2f} s, "
             f"{cal.fixed_seconds:.2f} s of it whatever the length, {cal.masked_seconds:.2f} s more under weight masks",
             (f"  scaled by fp32 matmul speed to issue 13's AVX2 EPYC ({REFERENCE_GFLOPS} GFLOP/s per core): about "
              f"{_hms(est.wall_seconds * cal.gflops / REFERENCE_GFLOPS)}" if not cal.bf16 else
              "  (bf16 is on here; `--bf16 false` calibrates fp32 and scales the estimate to an AVX2 machine)")]
    lines += [f"  {stage:<20} {est.jobs[stage]:>3} jobs  {_hms(sec):>8} of one core" for stage, sec in est.stage_seconds.items()]
    return "\n".join(lines)


def read_benchmarks(outputs: str | Path) -> list[dict]:
    """One row per Snakemake benchmark file under `<outputs>/benchmarks`: stage, job, seconds, max RSS (MB),
    CPU seconds."""
    root = Path(outputs) / "benchmarks"
    rows = []
    for path in sorted(root.rglob("*.tsv")):
        with open(path) as f:
            records = list(csv.DictReader(f, delimiter="\t"))
        if not records:
            continue
        last = records[-1]   # a job benchmarked with repeats: the last run
        rel = path.relative_to(root).with_suffix("")
        rows.append({"stage": rel.parts[0], "job": "/".join(rel.parts[1:]) or "-", "seconds": float(last["s"]),
                     "max_rss_mb": _number(last.get("max_rss")), "cpu_seconds": _number(last.get("cpu_time"))})
    return rows


def _number(value: str | None) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return float("nan")   # Snakemake writes "-" where it could not measure


SNAKEMAKE_LOG = "logs/snakemake.log"   # the last grid's Snakemake log, kept by `make grid`
SNAKEMAKE_RUNS = "logs/snakemake_runs"   # every run's log that ran jobs (the parts of a grid run in parts)
_STAMP = re.compile(r"\[\w{3} \w{3} +\d{1,2} \d\d:\d\d:\d\d \d{4}\]")


def grid_wall_seconds(log: str | Path) -> float | None:
    """Seconds from the first to the last timestamp of a Snakemake log (`[Sun Nov 29 20:57:42 2026]` lines:
    the first job's start, the last job's end); None without two of them."""
    stamps = [datetime.strptime(line.strip()[1:-1], "%a %b %d %H:%M:%S %Y")
              for line in Path(log).read_text().splitlines() if _STAMP.fullmatch(line.strip())]
    return (stamps[-1] - stamps[0]).total_seconds() if len(stamps) > 1 else None


def format_jobs(rows: list[dict]) -> str:
    if not rows:
        return "No benchmark files yet (Snakemake writes them under <outputs>/benchmarks/ as jobs finish)."
    lines = [f"{'stage':<20} {'job':<28} {'time':>9} {'max RSS (MB)':>13} {'CPU (s)':>9}"]
    lines += [f"{r['stage']:<20} {r['job']:<28} {r['seconds']:>8.0f}s {r['max_rss_mb']:>13.0f} {r['cpu_seconds']:>9.0f}"
              for r in rows]
    total = sum(r["seconds"] for r in rows)
    lines.append(f"{len(rows)} jobs, {_hms(total)} of job time in all (wall time is less with several cores).")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    est = sub.add_parser("estimate", help="calibrate here and estimate a preset's grid time")
    est.add_argument("--preset", default="demo")
    est.add_argument("--cores", type=int, default=2)
    est.add_argument("--bf16", help="override the preset's bf16 (auto, true, false)")
    jobs = sub.add_parser("jobs", help="measured job times from the Snakemake benchmark files")
    jobs.add_argument("outputs", help="a preset's outputs folder, e.g. outputs/demo")
    jobs.add_argument("--keep-log", metavar="LOG", help="a Snakemake log (.snakemake/log/...): kept as "
                      f"<outputs>/{SNAKEMAKE_LOG} when it ran jobs, for the grid's wall time")
    args = parser.parse_args(argv)
    if args.command == "estimate":
        preset = pipeline.load_preset(args.preset, {"bf16": args.bf16} if args.bf16 else None)
        try:
            est = estimate(preset, args.cores)
            print(format_estimate(preset["name"], est), flush=True)
            print(progress_line(preset["name"], preset, args.cores, est.calibration), flush=True)  # run in parts
        except (OSError, RuntimeError) as err:  # no data or model here yet: the grid itself will say more
            print(f"No time estimate for the {preset['name']} grid: {err}")
    else:
        outputs = pipeline.resolve(args.outputs)
        print(format_jobs(read_benchmarks(outputs)))
        log = outputs / SNAKEMAKE_LOG
        if args.keep_log and Path(args.keep_log).is_file() and grid_wall_seconds(args.keep_log) is not None:
            for kept in (log, outputs / SNAKEMAKE_RUNS / Path(args.keep_log).name):
                kept.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(args.keep_log, kept)   # a run that did nothing keeps the last one that did
        wall = grid_wall_seconds(log) if log.is_file() else None
        if wall is not None:
            print(f"The grid's last run: {_hms(wall)} ({wall:.0f} s) from its first job's start to its last job's "
                  f"end ({pipeline.display_path(log)}).")
        if parts := format_parts(outputs):
            print(parts)


def format_parts(outputs: Path) -> str:
    """The wall time of each run kept under `<outputs>/logs/snakemake_runs` (a grid run in parts) and their
    sum; empty with fewer than two."""
    runs = sorted((outputs / SNAKEMAKE_RUNS).glob("*.log"))
    walls = [(path.name.split(".")[0], grid_wall_seconds(path)) for path in runs]
    walls = [(name, wall) for name, wall in walls if wall is not None]
    if len(walls) < 2:
        return ""
    parts = "; ".join(f"{name}: {_hms(wall)}" for name, wall in walls)
    return f"The grid ran in {len(walls)} parts ({parts}), {_hms(sum(w for _, w in walls))} of wall time in all."


if __name__ == "__main__":
    main()
