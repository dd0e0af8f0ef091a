"""Command-line plumbing shared by the study experiments.

Every experiment module exposes `run(out, *, mrio=None, quick=False, ...) -> dict` and a `main(argv)` that
parses `--out DIR` plus optional data paths, loads the table (the synthetic demo world when none is given) and
prints the report path. This module holds the generic parts:

- [`make_parser`][experiments._common.make_parser]: `--out`, `--mrio`, `--ceads`, `--emissions`, `--quick`;
- [`load_table`][experiments._common.load_table]: demo world, an MRIO netCDF (the layout of
  `diffmrio.MRIO.to_xarray`) or a CEADs workbook (`diffmrio.tables.read_ceads`), with stressor rows from a CSV;
- [`read_emissions_csv`][experiments._common.read_emissions_csv]: a long-format emission inventory as `F` rows;
- [`cli_main`][experiments._common.cli_main]: the `main()` pattern.
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

import diffmrio
from diffmrio import MRIO

__all__ = ["Table", "make_parser", "load_table", "read_emissions_csv", "cli_main", "footer"]


@dataclass(frozen=True)
class Table:
    """A loaded table: the MRIO, whether it is the synthetic demo world, and a one-line description of
    where it came from (for the report)."""

    mrio: MRIO
    synthetic: bool
    source: str


def make_parser(description: str) -> argparse.ArgumentParser:
    """An `ArgumentParser` with the options every experiment shares.

    `--out DIR` (required), `--mrio PATH` (netCDF in the layout of `MRIO.to_xarray`), `--ceads PATH` (CEADs
    workbook), `--emissions PATH` (long-format CSV `stressor,region,sector,value[,unit]` whose rows replace or
    add stressors of the table) and `--quick` (reduced configuration). Experiments add their own options.
    """
    ap = argparse.ArgumentParser(description=description)
    ap.add_argument("--out", required=True, type=Path, help="output folder (report.md, figures/, results/)")
    src = ap.add_mutually_exclusive_group()
    src.add_argument("--mrio", type=Path, default=None, help="MRIO netCDF (layout of diffmrio.MRIO.to_xarray)")
    src.add_argument("--ceads", type=Path, default=None, help="CEADs provincial MRIO workbook (.xlsx)")
    ap.add_argument(
        "--emissions", type=Path, default=None,
        help="CSV with columns stressor,region,sector,value[,unit]: emission inventory rows added to the table",
    )  # fmt: skip
    ap.add_argument("--quick", action="store_true", help="reduced configuration (fewer sensitivity runs)")
    return ap


def read_emissions_csv(path: str | Path, mrio: MRIO) -> MRIO:
    """Add (or replace) stressor rows of `mrio` from a long-format CSV inventory.

    **Arguments:**

    - `path`: CSV with columns `stressor, region, sector, value` and optionally `unit` (one unit per
      stressor). Region and sector labels must be those of the table; region-sectors that are absent count
      as zero emissions.
    - `mrio`: the table that receives the rows.

    **Returns:** a new MRIO whose `F` holds the table's stressors, with rows of the same name replaced by
    the CSV's, followed by the CSV's new stressors (`F_Y` zero for the new rows).

    **Raises:** `ValueError` naming unknown labels, missing columns or duplicated entries.
    """
    df = pd.read_csv(path)
    need = {"stressor", "region", "sector", "value"}
    if not need.issubset(df.columns):
        raise ValueError(f"{path}: emission CSV needs columns {sorted(need)} (optional 'unit'); found "
                         f"{list(df.columns)}")
    df["region"] = df["region"].astype(str).str.strip()
    df["sector"] = df["sector"].astype(str).str.strip()
    df["stressor"] = df["stressor"].astype(str).str.strip()
    for col, labels in (("region", mrio.regions), ("sector", mrio.sectors)):
        unknown = sorted(set(df[col]) - set(labels))
        if unknown:
            raise ValueError(f"{path}: {col} labels {unknown[:5]} are not in the table; the table's {col}s are "
                             f"{list(labels)[:8]}{'...' if len(labels) > 8 else ''}. Rename them in the CSV.")
    dup = df.duplicated(["stressor", "region", "sector"])
    if dup.any():
        raise ValueError(f"{path}: {int(dup.sum())} duplicated (stressor, region, sector) rows, e.g. "
                         f"{tuple(df.loc[dup].iloc[0][['stressor', 'region', 'sector']])}; sum them first.")
    vals = pd.to_numeric(df["value"], errors="coerce")
    if vals.isna().any() or not np.all(np.isfinite(vals)):
        raise ValueError(f"{path}: non-numeric or missing values in column 'value' (row "
                         f"{int(np.nonzero(vals.isna().to_numpy())[0][0]) + 2}).")
    N = mrio.n_sectors
    ridx = {r: k for k, r in enumerate(mrio.regions)}
    sidx = {s: k for k, s in enumerate(mrio.sectors)}
    F = {name: np.asarray(mrio.F[k]) for k, name in enumerate(mrio.stressors)}
    FY = {name: np.asarray(mrio.F_Y[k]) for k, name in enumerate(mrio.stressors)}
    units = dict(zip(mrio.stressors, mrio.units))
    for name, grp in df.assign(value=vals).groupby("stressor", sort=False):
        row = np.zeros(mrio.n)
        row[[ridx[r] * N + sidx[s] for r, s in zip(grp["region"], grp["sector"])]] = grp["value"].to_numpy()
        F[name] = row
        FY.setdefault(name, np.zeros(mrio.Y.shape[1]))
        if "unit" in grp:
            units[name] = str(grp["unit"].iloc[0])
        else:
            units.setdefault(name, "")
    names = list(F)
    return MRIO.from_arrays(
        mrio.Z, mrio.Y, np.vstack([F[k] for k in names]), np.vstack([FY[k] for k in names]),
        regions=mrio.regions, sectors=mrio.sectors, categories=mrio.categories, stressors=names,
        units=[units[k] for k in names], name=mrio.name,
    )  # fmt: skip


def load_table(
    *, mrio: str | Path | None = None, ceads: str | Path | None = None, emissions: str | Path | None = None
) -> Table:
    """Load the table an experiment runs on.

    **Arguments:** at most one of `mrio` (netCDF path) and `ceads` (workbook path); `emissions` (CSV, see
    [`read_emissions_csv`][experiments._common.read_emissions_csv]). With neither table path, the synthetic
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


def cli_main(
    name: str,
    run: Callable[..., dict],
    parser: argparse.ArgumentParser,
    argv: Sequence[str] | None = None,
    extra: Callable[[argparse.Namespace], dict] | None = None,
) -> dict:
    """The `main()` pattern: parse `argv`, load the table (demo world by default), call
    `run(args.out, mrio=..., quick=args.quick, synthetic=..., source=..., **extra(args))` and print the
    report path (`run` returns a dict with a `"report"` entry)."""
    args = parser.parse_args(argv)
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


def tag(synthetic: bool) -> str:
    """Suffix for figure titles and captions of results from the synthetic demo world."""
    return " (synthetic demo world)" if synthetic else ""
