"""`diffmrio slurm ...`: CTM ensembles of a run folder as SLURM array jobs.

- `diffmrio slurm script RUNS_TOML --out submit.sh`: an array job with one task per run id of the folder's
  design table; each task runs the reference CTM (`diffmrio ctm run RUNS_TOML --run ID`) or `--command`.
- `diffmrio slurm check RUNS_TOML`: every run id with its status (ok, failed, unfinished, missing, invalid),
  from the output files and the status files the tasks wrote; exits 1 when any run is not ok.
- `diffmrio slurm resubmit RUNS_TOML --script submit.sh`: `sbatch --array=<indices of the failed run ids>`
  (or `--dry-run` to print that command).
"""

from __future__ import annotations

import argparse
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

SBATCH_TIMEOUT_S = 120


def add_commands(sub: argparse._SubParsersAction) -> None:
    """Register `slurm script|check|resubmit` on the top-level subparsers."""
    p = sub.add_parser("slurm", help="run a run folder's CTM ensemble as a SLURM array job; find and resubmit failed runs")
    cmds = p.add_subparsers(dest="slurm_command", required=True)

    s = cmds.add_parser("script", help="write the array job script (one task per run id)")
    s.add_argument("runs_toml", type=Path)
    s.add_argument("--out", type=Path, required=True, help="script to write, e.g. submit.sh (its run-id list goes next to it)")
    s.add_argument("--command", default=None,
                   help="command template with {run_id} (default: this Python running `diffmrio ctm run RUNS_TOML --run {run_id}`)")
    s.add_argument("--run", action="append", dest="run_ids", default=None, metavar="RUN_ID",
                   help="only these run ids (repeat the option); default all of the design table")
    s.add_argument("--job-name", default="ctm-ensemble")
    s.add_argument("--time", default="24:00:00")
    s.add_argument("--partition", default=None)
    s.add_argument("--account", default=None)
    s.add_argument("--cpus-per-task", type=int, default=None)
    s.add_argument("--mem", default=None)
    s.add_argument("--max-concurrent", type=int, default=None)
    s.add_argument("--log-dir", default="logs")
    s.add_argument("--setup", action="append", default=[], metavar="LINE",
                   help="shell line to run before the command, e.g. 'module load netcdf' (repeatable)")
    s.set_defaults(func=_script)

    c = cmds.add_parser("check", help="list every run id with its status; exit 1 if any is not ok")
    c.add_argument("runs_toml", type=Path)
    c.add_argument("--status-dir", type=Path, default=None, help="default: slurm_status/ next to RUNS_TOML")
    c.add_argument("--all", action="store_true", help="also list the runs that are ok")
    c.set_defaults(func=_check)

    r = cmds.add_parser("resubmit", help="sbatch the array indices of the failed run ids only")
    r.add_argument("runs_toml", type=Path)
    r.add_argument("--script", type=Path, required=True, help="the script `diffmrio slurm script` wrote")
    r.add_argument("--status-dir", type=Path, default=None)
    r.add_argument("--include-unfinished", action="store_true",
                   help="also rerun tasks that started but never finished (check with squeue that they are gone)")
    r.add_argument("--dry-run", action="store_true", help="print the sbatch command instead of running it")
    r.set_defaults(func=_resubmit)


def _default_command(runs_toml: Path) -> str:
    return (f"{shlex.quote(sys.executable)} -m diffmrio.cli ctm run "
            f"{shlex.quote(str(runs_toml.resolve()))} --run {{run_id}}")


def _script(args) -> int:
    from ctm_interface import write_slurm_script

    path = write_slurm_script(
        args.out, args.runs_toml, args.command or _default_command(args.runs_toml), run_ids=args.run_ids,
        job_name=args.job_name, time=args.time, partition=args.partition, account=args.account,
        cpus_per_task=args.cpus_per_task, mem=args.mem, max_concurrent=args.max_concurrent,
        log_dir=args.log_dir, setup=args.setup,
    )
    n = len(path.with_suffix(".run_ids").read_text().split())
    print(f"{path}: {n} runs; submit with: mkdir -p {shlex.quote(args.log_dir)} && sbatch {shlex.quote(str(path))}")
    return 0


def _report(args):
    from ctm_interface import check_run_outputs

    return check_run_outputs(args.runs_toml, status_dir=args.status_dir)


def _print_bad(rep) -> None:
    for run, row in rep[rep["status"] != "ok"].iterrows():
        print(f"{run}\t{row['status']}\t{row['reason']}")


def _check(args) -> int:
    rep = _report(args)
    bad = rep[rep["status"] != "ok"]
    if args.all:
        for run, row in rep.iterrows():
            print(f"{run}\t{row['status']}\t{row['reason']}")
    else:
        _print_bad(rep)
    print(f"{len(rep) - len(bad)} of {len(rep)} runs ok", file=sys.stderr)
    return 1 if len(bad) else 0


def _resubmit(args) -> int:
    from ctm_interface import slurm_array_indices

    rep = _report(args)
    bad = rep[rep["status"] != "ok"]
    if bad.empty:
        print(f"all {len(rep)} runs ok: nothing to resubmit")
        return 0
    unfinished = list(bad.index[bad["status"] == "unfinished"])
    if unfinished and not args.include_unfinished:
        print(f"not resubmitting {unfinished}: they started but never finished; if squeue no longer lists "
              "them (killed: time or memory limit), rerun with --include-unfinished", file=sys.stderr)
        bad = bad[bad["status"] != "unfinished"]
        if bad.empty:
            return 1
    for run, row in bad.iterrows():
        print(f"{run}\t{row['status']}\t{row['reason']}")
    cmd = ["sbatch", "--parsable", f"--array={slurm_array_indices(args.script, list(bad.index))}", str(args.script)]
    if args.dry_run:
        print(shlex.join(cmd))
        return 0
    if shutil.which("sbatch") is None:
        print("error: sbatch not found on PATH: run this on a SLURM login node, or use --dry-run", file=sys.stderr)
        return 2
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=SBATCH_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        print(f"error: sbatch did not answer within {SBATCH_TIMEOUT_S} s (is slurmctld up?)", file=sys.stderr)
        return 2
    if out.returncode != 0:
        print(f"error: {shlex.join(cmd)} failed ({out.returncode}): {out.stderr.strip()}", file=sys.stderr)
        return 2
    job = out.stdout.strip().split(";")[0]
    print(f"resubmitted {len(bad)} run(s) {list(bad.index)} as job {job}")
    return 0
