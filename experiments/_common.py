"""Command-line plumbing shared by the study experiments.

Every experiment module exposes `run(out, *, mrio=None, quick=False, ...) -> dict` and a `main(argv)` that
parses `--out DIR` plus optional data paths, loads the table (the synthetic demo world when none is given) and
prints the report path. This module holds the generic parts:

- [`experiment_parser`][experiments._common.experiment_parser]: the flags every experiment shares (`--out`,
  `--quick`, `-q/--quiet` (alias `--no-progress`), `--seed`, `--force`), and with `table=True` (or
  [`make_parser`][experiments._common.make_parser]) the table options `--mrio`, `--ceads`, `--emissions`;
- [`prepare_out`][experiments._common.prepare_out]: the output folder, refusing to write into a folder of
  someone else's files without `--force`; [`shared_folder`][experiments._common.shared_folder]: a data folder
  under `../shared` given by a flag, with a clear error when it is absent;
- [`load_table`][experiments._common.load_table]: demo world, an MRIO netCDF (the layout of
  `diffmrio.MRIO.to_xarray`) or a CEADs workbook (`diffmrio.tables.read_ceads`), with stressor rows from a CSV;
- `read_emissions_csv`: [`diffmrio.tables.read_emissions_csv`][diffmrio.tables.read_emissions_csv] (a long-format
  emission inventory as `F` rows), re-exported;
- [`cli_main`][experiments._common.cli_main]: the `main()` pattern.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import diffmrio
from diffmrio import MRIO
from diffmrio._io import (  # noqa: F401  the atomic writers, for every experiment (one private import)
    atomic_path,
    save_figure_atomic,
    write_netcdf_atomic,
    write_text_atomic,
)
from diffmrio.tables import read_emissions_csv  # public since issue 11 item 5; kept importable from here

__all__ = ["Table", "lhs_scales", "experiment_parser", "make_parser", "show_progress", "seed_or", "parse", "prepare_out", "shared_folder", "load_table",
           "read_emissions_csv", "cli_main", "footer"]

#: marker file an experiment leaves in its output folder (`prepare_out`): a later run of the same experiment may
#: overwrite the folder, anything else needs `--force`
MARKER = "diffmrio-experiment.txt"
#: the program name in usage lines; `diffmrio experiment NAME` sets it (default: argparse's, from sys.argv)
PROG: str | None = None


@dataclass(frozen=True)
class Table:
    """A loaded table: the MRIO, whether it is the synthetic demo world, and a one-line description of
    where it came from (for the report)."""

    mrio: MRIO
    synthetic: bool
    source: str


def shared_flags() -> argparse.ArgumentParser:
    """The flags every experiment shares, as an argparse parent (`parents=[shared_flags()]`):

    - `--out DIR` (required): output folder (`report.md`, `figures/`, `results/`);
    - `--quick`: the reduced configuration (a fast check; the numbers are not the documented ones);
    - `-q/--quiet` (alias `--no-progress`): no progress bars or progress lines (bars are also off when
      stderr is not a terminal, see [`show_progress`][experiments._common.show_progress]);
    - `--seed N`: the random seed (default: the experiment's documented seed);
    - `--force`: write into `--out` even when it holds files that this experiment did not write.
    """
    p = argparse.ArgumentParser(add_help=False)
    g = p.add_argument_group("shared experiment options")
    g.add_argument("--out", required=True, type=Path, help="output folder (report.md, figures/, results/)")
    g.add_argument("--quick", action="store_true", help="reduced configuration (a fast check)")
    g.add_argument("-q", "--quiet", "--no-progress", dest="quiet", action="store_true",
                   help="no progress output (progress bars are shown only on a terminal anyway)")
    g.add_argument("--seed", type=int, default=None, help="random seed (default: the experiment's own)")
    g.add_argument("--force", action="store_true",
                   help="write into --out even if it holds files that this experiment did not write")
    return p


def experiment_parser(description: str, *, table: bool = False, prog: str | None = None) -> argparse.ArgumentParser:
    """An `ArgumentParser` with the [shared flags][experiments._common.shared_flags]; with `table=True` also
    `--mrio PATH` (netCDF in the layout of `MRIO.to_xarray`), `--ceads PATH` (CEADs workbook) and
    `--emissions PATH` (long-format CSV `stressor,region,sector,value[,unit]` whose rows replace or add
    stressors of the table). Experiments add their own options."""
    ap = argparse.ArgumentParser(description=description, prog=prog or PROG, parents=[shared_flags()])
    if table:
        g = ap.add_argument_group("table (default: the synthetic demo world)")
        src = g.add_mutually_exclusive_group()
        src.add_argument("--mrio", type=Path, default=None, help="MRIO netCDF (layout of diffmrio.MRIO.to_xarray)")
        src.add_argument("--ceads", type=Path, default=None, help="CEADs provincial MRIO workbook (.xlsx)")
        g.add_argument(
            "--emissions", type=Path, default=None,
            help="CSV with columns stressor,region,sector,value[,unit]: emission inventory rows added to the table",
        )  # fmt: skip
    return ap


def make_parser(description: str) -> argparse.ArgumentParser:
    """`experiment_parser(description, table=True)`: the shared flags plus the table options."""
    return experiment_parser(description, table=True)


def show_progress(args: argparse.Namespace) -> bool:
    """Whether to show progress bars: not `--quiet`, and stderr is a terminal (no bars flooding a log)."""
    return not getattr(args, "quiet", False) and sys.stderr.isatty()


def seed_or(args: argparse.Namespace, default: int) -> int:
    """`--seed`, or the experiment's `default` when not given."""
    return default if getattr(args, "seed", None) is None else int(args.seed)


def prepare_out(out: str | Path, name: str, force: bool = False) -> Path:
    """Create the output folder `out` for experiment `name` and mark it as its own.

    A folder that does not exist, is empty, or was written by an earlier run of the same experiment is fine;
    a folder with other files (a user's, another experiment's) is refused unless `force`, so that nothing a
    user wrote is overwritten by accident.

    **Raises:** `FileExistsError` naming the folder and the fix.
    """
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise FileExistsError(f"--out {out} is a file, not a folder; pass a folder")
    marker = out / MARKER
    if out.is_dir() and any(out.iterdir()) and not force:
        owner = marker.read_text().strip() if marker.is_file() else None
        if owner != name:
            what = f"the output of experiment {owner!r}" if owner else "files that this experiment did not write"
            raise FileExistsError(f"--out {out} holds {what}; pass an empty or new folder, or --force to write "
                                  "into it anyway (files of the same names are replaced)")
    out.mkdir(parents=True, exist_ok=True)
    marker.write_text(name + "\n")
    return out


def shared_folder(path: str | Path | None, sub: str, flag: str, *, root: bool = False) -> Path:
    """The data folder `sub` of the shared data: `path` when given (the value of `flag`; with `root=True` the
    flag names the shared folder itself and the result is `path/sub`), else `$DIFFMRIO_SHARED/sub`, else
    `../shared/sub` next to a source checkout.

    **Raises:** `FileNotFoundError` naming the folder tried and the flag to pass.
    """
    if path is not None:
        folder = Path(path) / sub if root else Path(path)
    elif os.environ.get("DIFFMRIO_SHARED"):
        folder = Path(os.environ["DIFFMRIO_SHARED"]) / sub
    else:
        folder = Path(__file__).resolve().parents[1].parent / "shared" / sub
    if not folder.is_dir():
        raise FileNotFoundError(f"data folder {folder} not found; pass {flag} DIR (or set DIFFMRIO_SHARED to the "
                                f"shared data folder that holds {sub})")
    return folder


def load_table(
    *, mrio: str | Path | None = None, ceads: str | Path | None = None, emissions: str | Path | None = None
) -> Table:
    """Load the table an experiment runs on.

    **Arguments:** at most one of `mrio` (netCDF path) and `ceads` (workbook path); `emissions` (CSV, see
    [`read_emissions_csv`][diffmrio.tables.read_emissions_csv]). With neither table path, the synthetic
    demo world `diffmrio.datasets.demo_world(seed=0)` (emissions must then not be given).

    **Returns:** a [`Table`][experiments._common.Table].
    """
    if mrio is not None and ceads is not None:
        raise ValueError("give either `mrio` (netCDF) or `ceads` (workbook), not both")
    if mrio is None and ceads is None:
        if emissions is not None:
            raise ValueError("`emissions` adds stressors to a table given with --mrio or --ceads; the demo world "
                             "already has its (synthetic) emissions")
        world = diffmrio.datasets.demo_world(seed=0, geography=False)
        return Table(world.mrio, True, "synthetic demo world (`diffmrio.datasets.demo_world(seed=0)`)")
    if mrio is not None:
        import xarray as xr

        with xr.open_dataset(mrio) as ds:
            table = MRIO.from_xarray(ds.load())
        source = f"MRIO netCDF `{Path(mrio).name}`"
    else:
        table = diffmrio.tables.read_ceads(ceads)
        source = f"CEADs workbook `{Path(ceads).name}`"
    if emissions is not None:
        table = read_emissions_csv(emissions, table)
        source += f" with emissions from `{Path(emissions).name}`"
    return Table(table, False, source)


def footer(name: str, seconds: float) -> str:
    """The provenance line that closes every experiment report."""
    return (f"---\nGenerated by `python -m experiments.{name}` in {seconds:.1f} s on {platform.machine()} "
            f"({platform.system()}), Python {platform.python_version()}, diffmrio {diffmrio.__version__}.")


def parse(parser: argparse.ArgumentParser, argv: Sequence[str] | None, name: str) -> argparse.Namespace:
    """Parse `argv` and prepare `--out` for experiment `name` (argparse's usage error when it is refused)."""
    args = parser.parse_args(argv)
    try:
        prepare_out(args.out, name, args.force)
    except (FileExistsError, OSError) as exc:
        parser.error(str(exc))
    return args


def cli_main(
    name: str,
    run: Callable[..., dict],
    parser: argparse.ArgumentParser,
    argv: Sequence[str] | None = None,
    extra: Callable[[argparse.Namespace], dict] | None = None,
) -> dict:
    """The `main()` pattern: parse `argv`, prepare `--out` ([`prepare_out`][experiments._common.prepare_out]),
    load the table (demo world by default), call `run(args.out, mrio=..., quick=args.quick, synthetic=...,
    source=..., **extra(args))` and print the report path (`run` returns a dict with a `"report"` entry)."""
    args = parse(parser, argv, name)
    t0 = time.perf_counter()
    try:
        table = load_table(mrio=args.mrio, ceads=args.ceads, emissions=args.emissions)
    except (ValueError, FileNotFoundError) as exc:
        parser.error(str(exc))
    kwargs = extra(args) if extra is not None else {}
    res = run(args.out, mrio=table.mrio, quick=args.quick, synthetic=table.synthetic, source=table.source, **kwargs)
    print(f"[{name}] report written in {time.perf_counter() - t0:.1f} s: {Path(res['report']).resolve()}")
    return res


def default_cache() -> Path:
    """Where the demo chain (CTM ensemble + trained emulator) is cached: `$DIFFMRIO_CACHE` or
    `~/.cache/diffmrio`, shared by all experiments so the emulator is trained once."""
    return Path(os.environ.get("DIFFMRIO_CACHE", Path.home() / ".cache" / "diffmrio"))


def load_demo(quick: bool = False, cache_dir: str | Path | None = None, progress: bool = True):
    """The demo chain of the experiments: `demo_chain(**demo_config(quick))`.
    **Returns:** a `diffmrio.demo.DemoChain`."""
    from diffmrio.demo import demo_chain, demo_config

    return demo_chain(**demo_config(quick), cache_dir=Path(cache_dir) if cache_dir else default_cache(), progress=progress)


def demo_source(demo, quick: bool = False) -> str:
    """One line naming the demo chain's configuration, for reports."""
    from diffmrio.demo import demo_config

    cfg = getattr(demo, "config", None) or demo_config(quick)
    keys = ("n_train", "n_test", "quick", "steps")
    return "synthetic demo chain (`demo_chain(" + ", ".join(f"{k}={cfg[k]}" for k in keys if k in cfg) + ")`)"


def table_or_demo(mrio: MRIO | None, synthetic: bool | None, source: str | None) -> tuple[MRIO, bool, str | None]:
    """`(mrio, synthetic, source)` of an experiment's table argument: the synthetic demo world when `mrio` is None
    (then synthetic unless said otherwise); otherwise `synthetic` as given, or from the table's name."""
    if mrio is None:
        from diffmrio.datasets import demo_world

        mrio = demo_world(seed=0, geography=False).mrio
        synthetic = True if synthetic is None else synthetic
        source = source or "synthetic demo world (`diffmrio.datasets.demo_world(seed=0)`)"
    if synthetic is None:
        synthetic = "synthetic" in mrio.name.lower()
    return mrio, synthetic, source


def lhs_scales(n: int, sources: Sequence[str], species: Sequence[str], *, seed: int, include_base: bool):
    """`scale[run, source, species]` (numpy) of a Latin hypercube over 0-2x (`ctm_interface.latin_hypercube_design`;
    `include_base` adds the all-ones base case as the first run): the designs of the emulator experiments."""
    import numpy as np

    from ctm_interface import latin_hypercube_design

    d = latin_hypercube_design(n, sources, species, low=0.0, high=2.0, seed=seed, include_base=include_base)
    return np.asarray(d.transpose("run", "source", "species").values)


def tag(synthetic: bool) -> str:
    """Suffix for figure titles and captions of results from the synthetic demo world."""
    return " (synthetic demo world)" if synthetic else ""
