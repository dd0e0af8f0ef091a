"""Command-line interface: `diffmrio demo --out DIR`; run folders: `diffmrio runs|emulator|ctm` (`_cli_runs`)."""

from __future__ import annotations

import argparse
import sys
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
    from ._cli_runs import add_commands, run_command

    add_commands(sub)
    args = parser.parse_args(argv)
    if args.command == "demo":
        from ._demo_job import run_demo

        path = run_demo(args.out, quiet=args.quiet, quick=args.quick, n_draws=args.draws, cache_dir=args.cache,
                        economy_only=args.economy_only)
        print(path.resolve())
        return 0
    rc = run_command(args)
    return 1 if rc is None else rc


if __name__ == "__main__":
    sys.exit(main())
