"""The `lottery` command (also `python -m lotterylib`): the workflow, its summaries and one notebook at a time.

    lottery run demo --cores 2           the demo grid through Snakemake (jobs done and time left first, summary after)
    lottery estimate paper --cores 8     calibrate on this machine and estimate a preset's grid time
    lottery summary outputs/demo         the finished stages' headline numbers (or --table results)
    lottery jobs outputs/demo            measured job times from Snakemake's benchmark files
    lottery report demo                  Snakemake's HTML report: figures, results table, report notebook
    lottery readme                       regenerate the README's results section
    lottery notebook finetune --preset smoke --task SST-2 --seed 1 -p epochs 2
    lottery kernel --user                register this environment's Jupyter kernel (bert-lottery)
    lottery notebook-params [--check]    write the notebooks' parameters cells from lotterylib.stages.registry

`run`, `report` and `notebook` need the workflow extra (`pip install 'lotterylib[workflow]'`); `run`, `report`
and `notebook STAGE` also the project's checkout (workflow/, notebooks/, params/). The others need the library.
"""
from __future__ import annotations

import argparse
import importlib
import importlib.util
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from ..core.files import PROJECT_ROOT, display_path
from . import pipeline

SNAKEFILE = PROJECT_ROOT / "workflow" / "Snakefile"
KERNEL = "bert-lottery"  # the Jupyter kernel name `lottery kernel` registers: unique to the project


def _need_workflow(what: str, checkout: bool = True) -> None:
    """Raise with the fix when the workflow extra or (with `checkout`) the project's checkout is missing."""
    missing = [m for m in ("snakemake", "papermill", "ipykernel") if importlib.util.find_spec(m) is None]
    if missing:
        raise SystemExit(f"lottery {what}: needs {', '.join(missing)}. Fix: pip install 'lotterylib[workflow]'.")
    if checkout and not SNAKEFILE.is_file():
        raise SystemExit(f"lottery {what}: needs the project's checkout (no {SNAKEFILE}). Fix: run it inside "
                         "a clone of the project.")


def _snakemake(*args: str) -> int:
    cmd = [sys.executable, "-m", "snakemake", "--snakefile", display_path(SNAKEFILE), *args]
    print("+", " ".join(cmd), flush=True)
    return subprocess.run(cmd, cwd=PROJECT_ROOT).returncode


def _latest_snakemake_log() -> str | None:
    logs = sorted((PROJECT_ROOT / ".snakemake" / "log").glob("*.log"), key=lambda p: p.stat().st_mtime)
    return str(logs[-1]) if logs else None


def run(args: argparse.Namespace) -> int:
    """Estimate, run the grid through Snakemake, then print the summary and the measured job times."""
    _need_workflow("run")
    from . import summary, timing

    _overrides(args.config)  # KEY=VALUE pairs, or the error that says so
    from snakemake.cli import parse_config

    # the grid as the Snakefile will run it: the values typed as Snakemake types them (the folder may follow them)
    preset = pipeline.grid_preset({"preset": args.preset, **parse_config(args.config)})
    cal = None if args.dry_run else _estimate(args.preset, preset, args.cores)
    print(timing.progress_line(args.preset, preset, args.cores, cal), flush=True)
    config = [f"preset={args.preset}", *args.config]
    # --keep-incomplete: a failed job's executed notebook stays for reading (the report stage declares its own)
    code = _snakemake("--cores", str(args.cores), "--config", *config, "--rerun-incomplete", "--keep-going",
                      "--keep-incomplete", "--printshellcmds", *(["--dry-run"] if args.dry_run else []), *args.snakemake)
    if args.dry_run:
        return code
    root = display_path(pipeline.resolve(preset["outputs_root"]))
    summary.main([root])
    log = _latest_snakemake_log()
    timing.main(["jobs", root, *(["--keep-log", log] if log else [])])
    print(timing.progress_line(args.preset, preset, args.cores, cal), flush=True)
    return code


def _estimate(name: str, preset: dict[str, Any], cores: int) -> Any:
    """Print the estimated time of the grid's jobs still to run (`timing`); its calibration, None without one."""
    from . import timing

    done, todo = timing.grid_progress(preset)
    if not todo:
        return None  # nothing to price
    try:
        cal = timing.calibrate_for(preset)
        print(timing.format_estimate(name, timing.estimate(preset, cores, cal, todo), len(done)), flush=True)
        return cal
    except (OSError, RuntimeError) as err:  # no data or model here yet: the grid itself will say more
        print(f"No time estimate for the {name} grid: {err}")
        return None


def _overrides(pairs: list[str]) -> dict[str, str]:
    bad = [p for p in pairs if "=" not in p]
    if bad:
        raise SystemExit(f"--config {bad[0]!r}: expected KEY=VALUE, e.g. --config epochs=2")
    return dict(p.split("=", 1) for p in pairs)


def report(args: argparse.Namespace) -> int:
    """Snakemake's self-contained HTML report of a finished grid (the outputs marked with report())."""
    _need_workflow("report")
    preset = pipeline.load_preset(args.preset, _overrides(args.config))
    out = args.output or display_path(pipeline.resolve(preset["outputs_root"]) / "report.html")
    return _snakemake("--cores", "1", "--config", f"preset={args.preset}", *args.config, "--report", out)


def _value(text: str) -> Any:
    """A `-p` value as papermill's command line reads it: an int, a float, else the string (booleans and
    lists are parsed by the notebook's parameter check)."""
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def notebook(args: argparse.Namespace) -> int:
    """Execute one stage's notebook (or any notebook path) with a preset's values for a task and seed, and
    `-p` overrides; on the project's kernel transport (`kernel.execute`)."""
    stage = pipeline.STAGES.get(args.name)
    _need_workflow("notebook", checkout=stage is not None)
    from . import kernel

    path = pipeline.resolve(stage.notebook if stage else args.name)
    if not path.is_file():
        raise SystemExit(f"lottery notebook: no stage or notebook {args.name!r}. Stages: "
                         f"{', '.join(pipeline.STAGES)}; or give a notebook's path.")
    params: dict[str, Any] = {}
    if args.preset:
        if stage is None:
            raise SystemExit("lottery notebook: --preset needs a stage name, not a path.")
        params = pipeline.stage_params(pipeline.load_preset(args.preset), args.name, args.task, args.seed)
    params.update({key: _value(value) for key, value in args.parameters})
    output = Path(args.output or Path(tempfile.mkdtemp(prefix="lottery-")) / path.name)
    print(f"executing {display_path(path)} -> {output}", flush=True)
    kernel.execute(path, output, params, PROJECT_ROOT, log_output=True)
    return 0


def install_kernel(args: argparse.Namespace) -> int:
    """Register this Python as the Jupyter kernel `bert-lottery`, for JupyterLab to offer."""
    from ipykernel.kernelspec import install

    where = install(user=args.user, prefix=None if args.user else sys.prefix, kernel_name=KERNEL,
                    display_name=f"Python 3 ({KERNEL})")
    print(f"kernel {KERNEL} -> {sys.executable} (spec in {where})")
    return 0


DELEGATED = {"summary": ("summary", []), "jobs": ("timing", ["jobs"]), "readme": ("report.readme", []),
             "compare": ("compare", []), "resign": ("resign", [])}
_DELEGATED_HELP = {"summary": "the finished stages of an output root", "jobs": "measured job times of an output root",
                   "readme": "regenerate the README's results section",
                   "compare": "every number of a rerun against the committed run's",
                   "resign": "prove a change neutral on the smoke grid, then re-stamp committed runs' signatures"}


def _delegate(module: str, argv: list[str]) -> int:
    """Hand the rest of the command line to a module's own `main` (its --help is the subcommand's)."""
    main = getattr(importlib.import_module(f".{module}", __package__), "main")  # a module of this wing
    return main(argv) or 0


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="lottery", description=__doc__.split("\n\n")[0],
                                epilog=__doc__.split("\n\n", 1)[1], formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    r = sub.add_parser("run", help="run a preset's grid through Snakemake")
    r.add_argument("preset", help="a preset in params/ (smoke, demo, paper, ...) or a YAML path")
    r.add_argument("--cores", type=int, default=2, help="jobs at once (default 2)")
    r.add_argument("--config", nargs="+", default=[], metavar="KEY=VALUE", help="override preset values")
    r.add_argument("--dry-run", action="store_true", help="show the jobs without running them")
    r.set_defaults(func=run, snakemake=[])
    r.epilog = "More Snakemake options after --, e.g. lottery run demo -- --forcerun lottery"

    e = sub.add_parser("estimate", help="estimate a preset's grid time on this machine (calibrates first)")
    e.add_argument("preset", help="a preset in params/ or a YAML path")
    e.add_argument("--cores", type=int, default=2, help="jobs at once (default 2)")
    e.add_argument("--bf16", help="override the preset's bf16 (auto, true, false)")
    e.set_defaults(func=lambda a: _delegate("timing", ["estimate", "--preset", a.preset, "--cores", str(a.cores),
                                                        *(["--bf16", a.bf16] if a.bf16 else [])]))
    for name, (module, _) in DELEGATED.items():  # listed here; `main` hands their arguments to the module
        sub.add_parser(name, help=f"{_DELEGATED_HELP[name]} (`lottery {name} --help`)", add_help=False)

    h = sub.add_parser("report", help="Snakemake's HTML report of a finished grid")
    h.add_argument("preset", help="the preset whose grid has run")
    h.add_argument("--config", nargs="+", default=[], metavar="KEY=VALUE", help="the overrides the grid ran with")
    h.add_argument("-o", "--output", help="the HTML file (default <outputs_root>/report.html)")
    h.set_defaults(func=report)

    n = sub.add_parser("notebook", help="execute one stage's notebook with papermill")
    n.add_argument("name", help=f"a stage ({', '.join(pipeline.STAGES)}) or a notebook's path")
    n.add_argument("-p", "--parameter", dest="parameters", nargs=2, action="append", default=[],
                   metavar=("KEY", "VALUE"), help="a parameter value (repeatable), as papermill's -p")
    n.add_argument("--preset", help="take the values from this preset (with --task and --seed)")
    n.add_argument("--task", help="the task, with --preset")
    n.add_argument("--seed", type=int, help="the seed, with --preset")
    n.add_argument("-o", "--output", help="the executed notebook (default: a new temporary folder)")
    n.set_defaults(func=notebook)

    c = sub.add_parser("notebook-params", help="write each stage notebook's parameters cell from the registry")
    c.add_argument("--check", action="store_true", help="only list the stale ones (exit 1 if any)")
    c.set_defaults(func=notebook_params)

    k = sub.add_parser("kernel", help=f"register this environment's Jupyter kernel as {KERNEL}")
    k.add_argument("--user", action="store_true", help="in your user's Jupyter folder (any JupyterLab sees it); "
                   "default: in this environment")
    k.set_defaults(func=install_kernel)
    return p


def notebook_params(args: argparse.Namespace) -> int:
    """`lottery notebook-params`: the stage notebooks' parameters cells as `registry.parameters_cell` makes them."""
    from ..stages.registry import stale_parameters_cells

    stale = stale_parameters_cells(write=not args.check)
    for path in stale:
        print(f"{'stale' if args.check else 'rewrote'}: {path}")
    return 1 if stale and args.check else 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv and argv[0] in DELEGATED:
        module, head = DELEGATED[argv[0]]
        return _delegate(module, [*head, *argv[1:]])
    extra: list[str] = []
    if "--" in argv:  # `lottery run PRESET -- SNAKEMAKE OPTIONS`
        cut = argv.index("--")
        argv, extra = argv[:cut], argv[cut + 1:]
    args = parser().parse_args(argv)
    if extra:
        if args.command != "run":
            raise SystemExit(f"lottery {args.command}: takes no options after --.")
        args.snakemake = extra
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
