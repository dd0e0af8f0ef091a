"""Command-line interface (`diffmrio --help`): `demo`; real data: `accounts`, `spa`, `health` (`_cli.data`); CTM run
folders: `runs`, `emulator`, `ctm` (`_cli.runs`); SLURM array jobs: `slurm` (`_cli.slurm`); the study experiments: `experiment NAME` (`_cli.experiment`)."""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="diffmrio", description="Differentiable MRIO -> CTM -> health chain")
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="run the main job on the synthetic demo world and write a report")
    demo.add_argument("--out", type=Path, default=Path("demo_output"), help="output folder (default: demo_output)")
    demo.add_argument("--quiet", action="store_true", help="no progress output")
    demo.add_argument("--quick", action="store_true", help="coarse CTM grid, fewer runs and draws (for a fast check)")
    demo.add_argument("--draws", type=int, default=None, help="Monte Carlo draws (default 10000; 200 with --quick)")
    demo.add_argument("--cache", type=Path, default=None, help="cache for the CTM ensemble and emulator (default OUT/cache)")
    demo.add_argument("--economy-only", action="store_true", help="only the MRIO sections (no CTM, emulator, health)")
    demo.add_argument("--force", action="store_true", help="overwrite files in OUT that the demo did not write")
    from ._cli import chain, data, experiment, runs, slurm

    data.register(parser, sub)
    chain.register(sub, data._common())
    runs.add_commands(sub)
    slurm.add_commands(sub)
    experiment.add_commands(sub)
    args = parser.parse_args(argv)
    data.setup(args)
    with warnings.catch_warnings():  # restores the caller's warning display on return
        warnings.showwarning = _warning_printer(args.command)
        return _dispatch(args)


def _warning_printer(command: str):
    """A `warnings.showwarning` for the command line: `diffmrio COMMAND: warning: MESSAGE` on stderr, each
    message once (an ensemble's members or a loop would repeat it), without the file and line of the code that
    warned (the message says what to change; the Python source line means nothing to a command-line user)."""
    seen: set[str] = set()

    def show(message, category, filename, lineno, file=None, line=None):
        text = str(message)
        if text in seen:
            return
        seen.add(text)
        kind = "" if category is UserWarning else f" ({category.__name__})"
        print(f"diffmrio {command}: warning{kind}: {text}", file=sys.stderr if file is None else file)

    return show


def _dispatch(args) -> int:
    from ._cli import data, runs

    if hasattr(args, "func"):
        return data.run(args)
    if args.command == "demo":
        from .demo._job import DemoOutputError, run_demo

        try:
            path = run_demo(args.out, quiet=args.quiet or args.quiet_level > 0, quick=args.quick, n_draws=args.draws,
                            cache_dir=args.cache, economy_only=args.economy_only, force=args.force)
        except DemoOutputError as err:
            print(f"diffmrio demo: error: {err}", file=sys.stderr)
            return 2
        except OSError as err:  # e.g. a read-only subfolder, a full disk: no traceback, the path is in the message
            print(f"diffmrio demo: error: {err}; pass a writable --out folder (or free disk space)", file=sys.stderr)
            return 1
        except KeyboardInterrupt:
            print("diffmrio demo: interrupted; the files written so far are complete (see "
                  f"{args.out / 'diffmrio-demo-manifest.json'}); run the command again to finish", file=sys.stderr)
            return 130
        print(path.resolve())
        return 0
    rc = runs.run_command(args)
    return 1 if rc is None else rc


if __name__ == "__main__":
    sys.exit(main())
