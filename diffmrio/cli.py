"""Command-line interface: `diffmrio demo --out DIR`."""

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
    args = parser.parse_args(argv)
    if args.command == "demo":
        from ._demo_job import run_demo

        path = run_demo(args.out, quiet=args.quiet)
        print(path.resolve())
        return 0
    return 1  # pragma: no cover


if __name__ == "__main__":
    sys.exit(main())
