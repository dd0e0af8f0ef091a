"""`diffmrio experiment NAME [OPTIONS]`: run one of the study experiments shipped in the `experiments` package
(the same as `python -m experiments.NAME [OPTIONS]`; every experiment takes the shared flags `--out`, `--quick`,
`-q/--quiet`, `--seed`, `--force`, see `experiments._common.shared_flags`)."""

from __future__ import annotations

import argparse
import importlib
import pkgutil


def names() -> list[str]:
    """The experiments installed with the package (the public modules of `experiments`)."""
    try:
        pkg = importlib.import_module("experiments")
    except ImportError:  # an install without the experiments package
        return []
    return sorted(m.name for m in pkgutil.iter_modules(pkg.__path__) if not m.name.startswith("_"))


def add_commands(sub) -> None:
    """Register `experiment` on the `diffmrio` subparsers."""
    p = sub.add_parser("experiment", help="run a study experiment (diffmrio experiment NAME --help)",
                       description=__doc__.split("\n\n")[0], add_help=True)
    p.add_argument("name", choices=names(), metavar="NAME", help="one of: " + ", ".join(names()))
    p.add_argument("args", nargs=argparse.REMAINDER, help="the experiment's options (see NAME --help)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Import `experiments.NAME` and call its `main(args)`; argparse errors exit with status 2 as usual."""
    common = importlib.import_module("experiments._common")
    mod = importlib.import_module(f"experiments.{args.name}")
    common.PROG = f"diffmrio experiment {args.name}"
    argv = list(args.args)
    if getattr(args, "quiet_level", 0) and "-q" not in argv and "--quiet" not in argv:
        argv.append("--quiet")  # `diffmrio -q experiment NAME ...`
    try:
        mod.main(argv)
    finally:
        common.PROG = None
    return 0
