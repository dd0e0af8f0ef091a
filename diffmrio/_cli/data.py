"""Commands for real data on the `diffmrio` entry point: `accounts`, `spa`, `health`, plus `--version` and
`-v/-q` (logging levels). Registered from `diffmrio.cli` by one call to [`register`][]."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

log = logging.getLogger("diffmrio")


def version() -> str:
    from importlib.metadata import PackageNotFoundError, version as _v

    try:
        return _v("diffmrio")
    except PackageNotFoundError:  # pragma: no cover - a checkout that is not installed
        return "unknown (not installed)"


def _common() -> argparse.ArgumentParser:
    """`-v/-q` accepted after a command too (`diffmrio accounts ... -v`); SUPPRESS keeps the top-level value."""
    p = argparse.ArgumentParser(add_help=False)
    p.add_argument("-v", "--verbose", action="count", default=argparse.SUPPRESS,
                   help="more log output (-v: info, -vv: debug)")
    p.add_argument("-q", "--quiet", dest="quiet_level", action="count", default=argparse.SUPPRESS,
                   help="less output (errors only, no progress bars)")
    return p


def register(parser: argparse.ArgumentParser, sub) -> None:
    """Add `--version`, `-v/-q` and the data commands to the `diffmrio` parser and its subparsers."""
    parser.add_argument("--version", action="version", version=f"diffmrio {version()}")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more log output (-v: info, -vv: debug)")
    parser.add_argument("-q", "--quiet", dest="quiet_level", action="count", default=0,
                        help="less output (errors only, no progress bars)")
    common = _common()

    acc = sub.add_parser("accounts", parents=[common], help="MRIO table -> labelled accounts (netCDF)",
                         description="Read a table (a pymrio folder or zip saved with `save_all`, a CEADs .xlsx "
                         "workbook, or a netCDF table in the layout of MRIO.to_xarray) and write the accounts "
                         "(x, A, S, M, D_cba, D_pba, D_imp, D_exp and their _reg sums) as netCDF.")
    _table_args(acc)
    acc.add_argument("--out", type=Path, required=True, help="output netCDF file (refused if it exists)")
    acc.add_argument("--precision", choices=("mixed", "double"), default="mixed",
                     help="host solver precision for large tables (default mixed, refined to ~1e-13)")
    acc.set_defaults(func=_cmd_accounts)

    spa = sub.add_parser("spa", parents=[common], help="top structural paths of a footprint (CSV or netCDF)",
                         description="Top-k structural paths (Lenzen 2003) of one stressor's footprint.")
    _table_args(spa)
    spa.add_argument("--stressor", required=True, help="stressor name as in the table (e.g. CO2)")
    spa.add_argument("-k", type=int, default=20, help="number of paths (default 20)")
    spa.add_argument("--consumers", nargs="+", default=None, help="consuming regions (default all)")
    spa.add_argument("--categories", nargs="+", default=None, help="final-demand categories (default all)")
    spa.add_argument("--out", type=Path, required=True, help="output .csv or .nc (refused if it exists)")
    spa.set_defaults(func=_cmd_spa)

    h = sub.add_parser("health", parents=[common], help="PM2.5 field + population + GBD tables -> deaths",
                       description="Deaths attributable to PM2.5 by region and cause (GEMM, Burnett et al. "
                       "2018) from an annual-mean PM2.5 netCDF on a lat-lon grid, gridded population and "
                       "region labels (CSV: x, y, <column>) and GBD baseline mortality and age structure "
                       "(CSV, long format; see docs/health.md).")
    h.add_argument("pm25", type=Path, help="annual-mean PM2.5 netCDF (ug m-3) on a lat-lon grid")
    h.add_argument("--variable", default="PM2.5", help="PM2.5 variable in the file (default PM2.5)")
    h.add_argument("--fill-nan", choices=("raise", "nearest", "zero"), default="raise",
                   help="what to do with NaN cells (default: refuse)")
    h.add_argument("--population", type=Path, required=True, help="gridded population CSV (x, y, <column>)")
    h.add_argument("--population-column", default="base2015")
    h.add_argument("--regions", type=Path, required=True, help="grid region labels CSV (x, y, <column>)")
    h.add_argument("--region-column", default="Country")
    h.add_argument("--mortality", type=Path, required=True,
                   help="GBD baseline mortality CSV (Country, endpoint, agegroup, <column>; per 100,000)")
    h.add_argument("--mortality-column", default="base2015")
    h.add_argument("--ages", type=Path, required=True, help="GBD age structure CSV (Country, agegroup, <column>)")
    h.add_argument("--ages-column", default="base2015")
    h.add_argument("--causes", nargs="+", default=["IHD", "STROKE", "COPD", "LC", "LRI"],
                   help="causes of death (default the five GEMM causes)")
    h.add_argument("--on-missing", choices=("raise", "drop"), default="raise",
                   help="regions without GBD rates: refuse (default) or leave them out with a warning")
    h.add_argument("--out", type=Path, required=True, help="output netCDF (refused if it exists)")
    h.set_defaults(func=_cmd_health)


def setup(args: argparse.Namespace) -> bool:
    """Configure logging from `-v/-q`; **returns** whether progress bars should be shown (not quiet, and
    stderr is a terminal: bars written to a log file are noise)."""
    level = logging.WARNING - 10 * int(getattr(args, "verbose", 0)) + 10 * int(getattr(args, "quiet_level", 0))
    level = max(logging.DEBUG, min(level, logging.ERROR))
    for name in ("diffmrio", "surrogate", "ctm_interface"):
        logger = logging.getLogger(name)
        logger.setLevel(level)
        if not any(getattr(h, "_diffmrio_cli", False) for h in logger.handlers):
            h = logging.StreamHandler(sys.stderr)
            h.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
            h._diffmrio_cli = True
            logger.addHandler(h)
    from ctm_interface._progress import bars_allowed, set_quiet

    set_quiet(int(getattr(args, "quiet_level", 0)) > 0)  # -q silences every progress bar of the process
    return bars_allowed()


def _table_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("table", type=Path, help="a pymrio folder or .zip, a CEADs .xlsx workbook, or a netCDF table")
    p.add_argument("--format", choices=("auto", "pymrio", "ceads", "netcdf", "wiod"), default="auto",
                   help="input format (default: from the path; a WIOD 2013-release netCDF table is recognised)")
    p.add_argument("--extensions", nargs="+", default=None, help="pymrio extensions to read (default all)")


def read_table(path: Path, fmt: str = "auto", *, extensions=None):
    """Read a table for the CLI: pymrio folder/zip, CEADs workbook, netCDF (MRIO.to_xarray layout) or a WIOD netCDF
    table (recognised by its `row_country` labels)."""
    import xarray as xr

    from .._mrio import MRIO
    from ..tables._ceads import read_ceads

    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file or folder")
    if fmt == "auto":
        suffix = path.suffix.lower()
        if path.is_dir() or suffix == ".zip":
            fmt = "pymrio"
        elif suffix in (".xlsx", ".xlsm"):
            fmt = "ceads"
        elif suffix in (".nc", ".nc4", ".netcdf"):
            fmt = "netcdf"
        else:
            raise ValueError(f"{path}: cannot tell the format from the name; pass --format pymrio|ceads|netcdf|wiod")
    _check_format(path, fmt)
    if fmt == "pymrio":
        try:
            import pymrio
        except ImportError:  # pragma: no cover - pymrio is in the test extra
            raise ImportError("reading a pymrio folder needs pymrio: pip install pymrio") from None
        io = pymrio.load_all(path)
        return MRIO.from_pymrio(io, extensions)
    if fmt == "ceads":
        return read_ceads(path)
    if fmt == "wiod":
        return _read_wiod_cleaned(path)
    if fmt != "netcdf":
        raise ValueError(f"{path}: unknown table format {fmt!r}; give one of auto, pymrio, ceads, netcdf, wiod")
    with xr.open_dataset(path) as ds:
        wiod = "row_country" in ds.variables and "region" not in ds.variables
        if not wiod:
            return MRIO.from_xarray(ds.load())
    log.info("%s: a WIOD netCDF table (row_country/row_industry labels); reading it with read_wiod", path)
    return _read_wiod_cleaned(path)


#: what each --format reads, for the message when the path is something else
_FORMAT_EXPECTS = {
    "pymrio": "a folder or .zip archive written by pymrio's save_all (with a file_parameters.json)",
    "ceads": "a CEADs .xlsx workbook",
    "netcdf": "a netCDF table file in the layout of MRIO.to_xarray",
    "wiod": "a WIOD 2013-release netCDF table file",
}


def _what_it_is(path: Path) -> tuple[str, str | None]:
    """A description of `path` and the --format that reads such a path (None: no guess)."""
    import zipfile

    suffix = path.suffix.lower()
    if path.is_dir():
        if (path / "file_parameters.json").is_file():
            return "a pymrio save_all folder", "pymrio"
        inside = sorted(q.name for q in path.iterdir() if (q / "file_parameters.json").is_file())[:5]
        return "a folder without a file_parameters.json" + (f" (its subfolder(s) {inside} have one)" if inside
                                                           else ""), None
    if suffix in (".nc", ".nc4", ".netcdf"):
        return "a netCDF file", "netcdf (or wiod for a WIOD table; auto tells them apart)"
    if suffix in (".xlsx", ".xlsm"):
        return "an Excel workbook", "ceads"
    if zipfile.is_zipfile(path):
        return "a zip archive", "pymrio"
    return f"a {suffix or 'file without a suffix'} file", None


def _check_format(path: Path, fmt: str) -> None:
    """Refuse a path that --format cannot read, with what it is, what was expected and the format to use
    (instead of the reader's own message, e.g. pymrio's "file parameter file ... not found")."""
    if fmt not in _FORMAT_EXPECTS:
        return
    kind, fits = _what_it_is(path)
    ok = {"pymrio": fits == "pymrio", "ceads": path.is_file(), "netcdf": path.is_file(), "wiod": path.is_file()}
    if ok[fmt]:
        return
    fix = f"pass --format {fits} or leave out --format" if fits else "pass the path of such a table"
    raise ValueError(f"{path}: --format {fmt} reads {_FORMAT_EXPECTS[fmt]}, but this is {kind}; {fix}")


def _read_wiod_cleaned(path: Path):
    """A WIOD netCDF table, with the negative inventory changes that make gross output negative cleaned (each
    changed cell is logged and kept in `MRIO.validation`, hence in the accounts' `validation` attribute)."""
    from ..tables._wiod import read_wiod

    mrio = read_wiod(path, clean=True)
    for note in mrio.validation:
        log.warning("%s: %s", path, note)
    return mrio


def _refuse_existing(out: Path) -> None:
    if out.exists():
        raise FileExistsError(f"{out} exists; choose another --out or remove it first (nothing was overwritten)")


def _cmd_accounts(args) -> int:
    from .._accounts import accounts
    from .._io import write_netcdf_atomic

    _refuse_existing(args.out)
    mrio = read_table(args.table, args.format, extensions=args.extensions)
    log.info("read %s: %d regions x %d sectors, %d stressors", args.table, mrio.n_regions, mrio.n_sectors,
             mrio.n_stressors)
    acc = accounts(mrio, precision=args.precision)
    acc.attrs.update(source=str(args.table), created_by=f"diffmrio {version()} accounts")
    write_netcdf_atomic(_netcdf_safe(acc), args.out)
    log.info("wrote %s", args.out)
    print(args.out)
    return 0


def _cmd_spa(args) -> int:
    from .._io import write_netcdf_atomic
    from ..supply_chain._spa import structural_path_analysis

    suffix = args.out.suffix.lower()
    if suffix not in (".csv", ".nc"):
        raise ValueError(f"--out {args.out}: give a .csv or .nc file")
    _refuse_existing(args.out)
    mrio = read_table(args.table, args.format, extensions=args.extensions)
    if args.stressor not in mrio.stressors:
        raise ValueError(f"--stressor {args.stressor!r} is not in the table; it has {list(mrio.stressors)}")
    sp = structural_path_analysis(mrio, args.stressor, k=args.k, consumers=args.consumers,
                                  categories=args.categories)
    if suffix == ".nc":
        write_netcdf_atomic(_netcdf_safe(sp), args.out)
    else:
        from ctm_interface._atomic import atomic_path

        df = sp[["label", "value", "share", "depth"]].to_dataframe()
        with atomic_path(args.out) as tmp:
            df.to_csv(tmp)
    log.info("%d paths cover %.1f%% of the footprint of %s", sp.sizes["path"], 100 * float(sp.attrs["coverage"]),
             args.stressor)
    print(args.out)
    return 0


def health_deaths(pm25, *, population, regions, mortality, ages, causes, variable="PM2.5", fill_nan="raise",
                  population_column="base2015", region_column="Country", mortality_column="base2015",
                  ages_column="base2015", on_missing="raise"):
    """Deaths attributable to PM2.5 (GEMM) from files; **returns** an `xarray.Dataset` with
    `deaths(region, cause)`, `deaths_by_age(cause, age, region)`, `pwpm(region)` and `population(region)`."""
    import numpy as np
    import xarray as xr

    from .. import health as H
    from ..health._loaders import _warn_years_apart

    pm = H.load_pm25_netcdf(pm25, variable, fill_nan=fill_nan)
    pop = H.load_gridded_population(population, population_column, like=pm)
    _warn_years_apart(("PM2.5", pm), ("population", pop))  # population vs the GBD tables: build_health_inputs
    reg = H.load_grid_regions(regions, region_column, like=pm)
    rates = H.load_gbd_baseline_mortality(mortality, mortality_column)
    age = H.load_gbd_age_structure(ages, ages_column)
    inputs = H.build_health_inputs(reg, pop, age, rates, causes=causes, on_missing=on_missing)
    model = H.HealthModel(inputs, H.GEMM.burnett2018(inputs.causes, ages=inputs.ages))
    d = np.asarray(model(np.asarray(pm.values)))  # (cause, age, region)
    pw = np.asarray(model.population_weighted_concentration(np.asarray(pm.values)))
    people = np.asarray(inputs.to_regions(inputs.population))
    coords = {"cause": list(inputs.causes), "age": list(inputs.ages), "region": list(inputs.regions)}
    return xr.Dataset(
        {"deaths": (("region", "cause"), d.sum(axis=1).T, {"units": "deaths yr-1", "long_name": "deaths attributable to PM2.5"}),
         "deaths_by_age": (("cause", "age", "region"), d, {"units": "deaths yr-1"}),
         "pwpm": (("region",), pw, {"units": "ug m-3", "long_name": "population-weighted PM2.5"}),
         "population": (("region",), people, {"units": "persons"})},
        coords=coords,
        attrs={"crf": "GEMM (Burnett et al. 2018), central parameters of the fit with the Chinese cohort, "
                      "age-specific", "pm25": str(pm25)},
    )  # fmt: skip


def _cmd_health(args) -> int:
    from .._io import write_netcdf_atomic

    _refuse_existing(args.out)
    ds = health_deaths(args.pm25, population=args.population, regions=args.regions, mortality=args.mortality,
                       ages=args.ages, causes=args.causes, variable=args.variable, fill_nan=args.fill_nan,
                       population_column=args.population_column, region_column=args.region_column,
                       mortality_column=args.mortality_column, ages_column=args.ages_column,
                       on_missing=args.on_missing)
    write_netcdf_atomic(ds, args.out)
    log.info("%.4g deaths in %d regions", float(ds.deaths.sum()), ds.sizes["region"])
    print(args.out)
    return 0


def _netcdf_safe(ds):
    """Attributes netCDF can hold: dicts and other objects become strings, bools become ints."""
    import numpy as np

    def fix(attrs):
        out = {}
        for k, v in attrs.items():
            if isinstance(v, bool | np.bool_):
                out[k] = int(v)
            elif isinstance(v, str | int | float | np.integer | np.floating | np.ndarray | list | tuple):
                out[k] = v if not isinstance(v, list | tuple) or all(isinstance(e, int | float | str) for e in v) else str(v)
            else:
                out[k] = str(v)
        return out

    ds = ds.copy()
    ds.attrs = fix(ds.attrs)
    for name in ds.variables:
        ds[name].attrs = fix(ds[name].attrs)
    return ds


def run(args) -> int:
    """Dispatch a parsed command with a clean error for the expected failures (bad file, bad argument)."""
    from .._validate import MRIOError

    try:
        return int(args.func(args))
    except (FileNotFoundError, FileExistsError, ValueError, MRIOError, ImportError) as exc:
        log.error("%s", exc)
        return 2
    except KeyboardInterrupt:  # outputs are written whole at the end (atomically): nothing half-written is left
        log.error("interrupted: no output file was written or changed; run the command again to finish")
        return 130
