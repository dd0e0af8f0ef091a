"""The reference CTM writes run folders in the shape CMAQ and GEOS-Chem users hand over (docs/run_folders.md):
`design.csv` (long, with a split), one output file per run id, a DESID-style region mask file, population,
base emissions, optional adjoints at their own states with their own design file, and `runs.toml`.

Runs use DESID-style region scaling: $E(c) = E^{base}(c)(1 + \\sum_g m_g(c)(s_{g,k} - 1))$ (see
`ctm_interface._runfolder.desid_emissions`), so the emulator inputs are exactly what the folder says.

The `geoschem` variant writes CF netCDF files with GEOS-Chem species names on the reference CTM's grid,
labelled with regular latitude/longitude values: a format test, not a real lat-lon model grid.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import xarray as xr

from .._atomic import atomic_path, write_text_atomic
from .._ioapi import write_ioapi
from .._runfolder import (
    desid_emissions,
    format_run_path,
    read_design,
    read_emissions,
    read_population,
    read_region_masks,
    read_runs_toml,
)
from .._vocabulary import DEFAULT_OM_OC
from ._domain import LEVELS, REGIONS, SPECIES, CTMGrid, demo_base_emissions, demo_domain
from ._io import ADJOINT_VARIABLES, _base_attrs
from ._model import COMPONENTS, PM25_WEIGHTS, ReferenceCTM

#: Default grid of reference run folders: 12 x 9 cells of 144 km (fast: a run takes ~0.1 s once compiled).
FOLDER_GRID = CTMGrid(ncols=12, nrows=9, xcell=144000.0, ycell=144000.0, gdnam="RUNS_144KM")
_GC_NAMES = {"SO4": (("SO4", 1.0),), "NO3": (("NIT", 1.0),), "NH4": (("NH4", 1.0),),
             "BC": (("BCPI", 0.8), ("BCPO", 0.2)), "OC": (("OCPI", 0.5), ("OCPO", 0.5)), "PM_other": (("DST1", 1.0),)}  # fmt: skip
_ELMO = {"SO4": "PM25_SO4", "NO3": "PM25_NO3", "NH4": "PM25_NH4", "BC": "PM25_EC", "OC": "PM25_OC",
         "PM_other": "PM25_OTHER"}  # fmt: skip
_YEAR = 2017


def _linear_cost(C, weights):
    """J = sum_c w_c sum_cell p_cell C_c,cell (a module-level function: compiled adjoints are reused)."""
    return jnp.einsum("cyx,c,yx->", C, jnp.asarray(PM25_WEIGHTS, C.dtype), weights)


def _lhs(n: int, seed: int, low: float, high: float, regions: Sequence[str] = REGIONS,
         species: Sequence[str] = SPECIES) -> np.ndarray:
    """A Latin hypercube of `n` runs over `low..high` for every (region, species) factor (shared by the
    reference and the spectral CTM's folder writers)."""
    from scipy.stats import qmc

    if n == 0:
        return np.zeros((0, len(regions), len(species)))
    u = qmc.LatinHypercube(d=len(regions) * len(species), seed=np.random.default_rng(seed)).random(n)
    return (low + u * (high - low)).reshape(n, len(regions), len(species))


def _design_csv(labels: Sequence, values: np.ndarray, split: Sequence[str] | None, regions: Sequence[str] = REGIONS,
                species: Sequence[str] = SPECIES) -> str:
    """The long design table (`run, region, species, factor[, split]`) of `values[run, region, species]`."""
    lines = ["run,region,species,factor" + (",split" if split is not None else "")]
    for i, r in enumerate(labels):
        for g, region in enumerate(regions):
            for k, sp in enumerate(species):
                row = f"{r},{region},{sp},{float(values[i, g, k])!r}"
                lines.append(row + (f",{split[i]}" if split is not None else ""))
    return "\n".join(lines) + "\n"


def _fake_latlon(grid: CTMGrid) -> tuple[np.ndarray, np.ndarray]:
    return 20.0 + (np.arange(grid.nrows) + 0.5) * 1.25, 95.0 + (np.arange(grid.ncols) + 0.5) * 1.25


def _write_cf(ds: xr.Dataset, path: Path) -> Path:
    with atomic_path(path) as tmp:
        ds.to_netcdf(tmp, format="NETCDF4_CLASSIC")
    return path


def _gridded_file(fields: dict[str, np.ndarray], units: str, grid: CTMGrid, path: Path, fmt: str, *,
                  records_tstep: int = 0, desc: str = "", layer_dim: str = "lev") -> Path:
    """Write `{name: (TSTEP, LAY, ROW, COL)}` fields as an I/O API file or a CF lat-lon file."""
    if fmt == "ioapi":
        nlay = next(iter(fields.values())).shape[1]
        attrs = _base_attrs(grid, nlay)
        attrs.update(SDATE=np.int32(_YEAR * 1000 + 1), STIME=np.int32(0), TSTEP=np.int32(records_tstep))
        ds = xr.Dataset({n: (("TSTEP", "LAY", "ROW", "COL"), v, {"units": units, "long_name": n})
                         for n, v in fields.items()}, attrs=attrs)  # fmt: skip
        return write_ioapi(ds, path, dtype="float32", filedesc=desc)
    lat, lon = _fake_latlon(grid)
    nt = next(iter(fields.values())).shape[0]
    data = {}
    for n, v in fields.items():
        data[n] = (("time", layer_dim, "lat", "lon"), v.astype(np.float32), {"units": units, "long_name": n})
    coords = {"lat": ("lat", lat, {"units": "degrees_north", "standard_name": "latitude"}),
              "lon": ("lon", lon, {"units": "degrees_east", "standard_name": "longitude"}),
              "time": ("time", np.arange(nt, dtype=np.float64), {"units": f"hours since {_YEAR}-01-01 00:00:00"})}  # fmt: skip
    ds = xr.Dataset(data, coords=coords, attrs={"Conventions": "COARDS", "title": desc})
    return _write_cf(ds, path)


def _profile(records: int) -> np.ndarray:
    """Diurnal factors with mean exactly 1 over the records (hourly records of an annual-mean field)."""
    if records <= 1:
        return np.ones(1)
    h = np.arange(records)
    p = 1.0 + 0.3 * np.sin(2 * np.pi * h / 24.0) + 0.1 * np.cos(2 * np.pi * h / 7.3)
    return p / p.mean()


def _write_output(C: np.ndarray, grid: CTMGrid, path: Path, vocabulary: str, records: int) -> Path:
    """One run's output: ELMO-named I/O API file (`cmaq-elmo`) or GEOS-Chem-named CF file (`geoschem`)."""
    prof = _profile(records)
    C = np.asarray(C, np.float64)
    tot = np.einsum("cyx,c->yx", C, np.asarray(PM25_WEIGHTS))
    fields: dict[str, np.ndarray] = {}
    if vocabulary == "cmaq-elmo":
        for i, comp in enumerate(COMPONENTS):
            fields[_ELMO[comp]] = C[i]
        fields["PM25_TOT"] = tot
    else:
        for i, comp in enumerate(COMPONENTS):
            for name, share in _GC_NAMES[comp]:
                fields[name] = share * C[i]
        fields["PM25"] = tot
    series = {n: (prof[:, None, None, None] * v[None, None]) for n, v in fields.items()}
    fmt = "ioapi" if vocabulary == "cmaq-elmo" else "cf"
    return _gridded_file(series, "ug m-3", grid, path, fmt, records_tstep=10000 if records > 1 else 0,
                         desc="Reference CTM (diffmrio) run output: synthetic, not a validated air quality model")  # fmt: skip


def _toml_value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, dict):
        return "{ " + ", ".join(f"{k} = {_toml_value(x)}" for k, x in v.items()) + " }"
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    return '"' + str(v).replace("\\", "\\\\").replace('"', '\\"') + '"'


def _toml(tables: dict[str, dict]) -> str:
    out = ["# A CTM run folder written by ctm_interface.reference.write_run_folder (see docs/run_folders.md)."]
    for name, t in tables.items():
        out.append(f"\n[{name}]")
        out += [f"{k} = {_toml_value(v)}" for k, v in t.items()]
    return "\n".join(out) + "\n"


def write_run_folder(
    folder: str | os.PathLike,
    *,
    n_train: int = 12,
    n_test: int = 6,
    train_ids: Sequence | None = None,
    test_ids: Sequence | None = None,
    vocabulary: str = "cmaq-elmo",
    records: int = 1,
    adjoint_states: int = 0,
    adjoint_on_train: bool = False,
    adjoint_kind: str = "scaling_factor",
    outputs: bool = True,
    include_base: bool = True,
    low: float = 0.5,
    high: float = 1.5,
    seed: int = 0,
    n_days: float = 2.0,
    grid: CTMGrid | None = None,
    overwrite: bool = False,
) -> Path:
    """Write a complete run folder from the reference CTM; returns the path of its `runs.toml`.

    **Arguments**

    - `folder`: where to write (created; refuses a folder that already has a `runs.toml` unless `overwrite`).
    - `n_train`, `n_test`: runs of each split (Latin hypercubes over `[low, high]` per region x species factor,
      independent seeds; with `include_base` the first training run is the base case, all factors 1).
    - `train_ids`, `test_ids`: run-id labels (default `0..n_train-1` and `n_train..n_train+n_test-1`).
    - `vocabulary`: `"cmaq-elmo"` (CMAQ ELMO names `PM25_SO4 ... PM25_TOT` in I/O API files) or `"geoschem"`
      (GEOS-Chem names `SO4, NIT, NH4, BCPI, BCPO, OCPI, OCPO, DST1, PM25` in CF files).
    - `records`: time records per output (hourly records whose mean is the run's annual mean; 1 = one
      time-independent record).
    - `adjoint_states`: number of adjoint states (0 = none). Cost: population-weighted PM2.5 over the receptor
      regions. `adjoint_on_train`: the states are the first training runs (same ids and factors, so they have
      forward runs); else they have ids `0..` and their own design (no forward runs).
    - `adjoint_kind`: `"scaling_factor"` (`ADJ_LGRID_EM_SF`: dJ/d factor on the base emissions of each cell and
      layer) or `"emissions"` (`ADJ_LGRID_EM`: dJ/dE per kt/yr).
    - `outputs`: write the run outputs (and adjoints); `False` writes only design, masks, population,
      emissions and `runs.toml`, for `run_one` / `diffmrio ctm run` to fill.
    - `seed`, `n_days` (simulated days per season), `grid` (default `FOLDER_GRID`, 12 x 9 cells of 144 km).
    """
    if vocabulary not in ("cmaq-elmo", "geoschem"):
        raise ValueError(f"vocabulary must be 'cmaq-elmo' or 'geoschem', got {vocabulary!r}")
    if adjoint_kind not in ("scaling_factor", "emissions"):
        raise ValueError(f"adjoint_kind must be 'scaling_factor' or 'emissions', got {adjoint_kind!r}")
    if not (isinstance(records, int) and records >= 1):
        raise ValueError(f"records must be a positive integer, got {records!r}")
    folder = Path(folder)
    toml_path = folder / "runs.toml"
    if toml_path.exists() and not overwrite:
        raise FileExistsError(f"{toml_path} exists: write to a new folder or pass overwrite=True")
    grid = FOLDER_GRID if grid is None else grid
    train_ids = list(range(n_train)) if train_ids is None else list(train_ids)
    test_ids = list(range(len(train_ids), len(train_ids) + n_test)) if test_ids is None else list(test_ids)
    ids = train_ids + test_ids
    if len({str(i) for i in ids}) != len(ids):
        raise ValueError(f"run ids must be unique, got {ids}")
    xtr = _lhs(len(train_ids), seed, low, high)
    if include_base and len(train_ids):
        xtr[0] = 1.0
    xte = _lhs(len(test_ids), seed + 1, low, high)
    X = np.concatenate([xtr, xte])
    split = ["train"] * len(train_ids) + ["test"] * len(test_ids)
    fmt = "ioapi" if vocabulary == "cmaq-elmo" else "cf"
    domain = demo_domain(seed=seed, grid=grid)
    masks = np.asarray(domain.region_fraction)
    pop = np.asarray(domain.population)
    base = np.asarray(domain.gridded_emissions(demo_base_emissions(domain)))  # (species, level, row, col)

    folder.mkdir(parents=True, exist_ok=True)
    write_text_atomic(folder / "design.csv", _design_csv(ids, X, split))
    spname = {s: ADJOINT_VARIABLES[s] for s in SPECIES}
    if fmt == "ioapi":
        _gridded_file({r: masks[g][None, None] for g, r in enumerate(REGIONS)}, "1", grid, folder / "region_mask.nc",
                      "ioapi", desc="DESID-style region fractions (reference CTM demo regions)")  # fmt: skip
        _gridded_file({"POP": pop[None, None]}, "persons", grid, folder / "population.nc", "ioapi",
                      desc="population per cell (synthetic)")
        _gridded_file({spname[s]: base[k][None] for k, s in enumerate(SPECIES)}, "kt/yr", grid,
                      folder / "base_emissions.nc", "ioapi", desc="base emissions per cell and level (synthetic)")
    else:
        lat, lon = _fake_latlon(grid)
        cf = {"lat": ("lat", lat, {"units": "degrees_north"}), "lon": ("lon", lon, {"units": "degrees_east"})}
        _write_cf(xr.Dataset({"region_mask": (("region", "lat", "lon"), masks, {"units": "1"})},
                             coords={**cf, "region": list(REGIONS)}), folder / "region_mask.nc")  # fmt: skip
        _write_cf(xr.Dataset({"population": (("lat", "lon"), pop, {"units": "persons"})}, coords=cf),
                  folder / "population.nc")
        _write_cf(xr.Dataset({spname[s]: (("lev", "lat", "lon"), base[k], {"units": "kt/yr"}) for k, s in enumerate(SPECIES)},
                             coords=cf), folder / "base_emissions.nc")  # fmt: skip
    pattern = "runs/CCTM_ELMO_run{run:03d}.nc" if fmt == "ioapi" else "runs/GEOSChem.AerosolMass.run{run:03d}.nc4"
    tables: dict[str, dict] = {
        "design": {"file": "design.csv", "run": "run", "low": float(low), "high": float(high)},
        "outputs": {"pattern": pattern, "format": fmt, "components": vocabulary, "om_oc": DEFAULT_OM_OC},
        "emissions": {"file": "base_emissions.nc", "species": spname, "levels": list(LEVELS)},
        "regions": {"masks": "region_mask.nc"},
        "population": {"file": "population.nc", "variable": "POP" if fmt == "ioapi" else "population"},
    }
    if any(isinstance(i, str) for i in ids):
        tables["outputs"]["pattern"] = pattern.replace("{run:03d}", "{run}")
    if adjoint_states:
        if adjoint_on_train:
            aid = train_ids[:adjoint_states]
            if len(aid) < adjoint_states:
                raise ValueError(f"adjoint_on_train: only {len(train_ids)} training runs for {adjoint_states} states")
            XA = xtr[:adjoint_states]
        else:
            aid = list(range(adjoint_states))
            XA = _lhs(adjoint_states, seed + 2, low, high)
        write_text_atomic(folder / "design_adjoint.csv", _design_csv(aid, XA, None))
        stem = "ADJ_LGRID_EM_SF" if adjoint_kind == "scaling_factor" else "ADJ_LGRID_EM"
        tables["adjoints"] = {
            "design": "design_adjoint.csv",
            "pattern": f"adjoint/{stem}_state{{run:02d}}.nc" if not any(isinstance(i, str) for i in aid) else f"adjoint/{stem}_state{{run}}.nc",
            "kind": adjoint_kind,
            "cost": "population_weighted_pm25",
            "format": fmt,
        }  # fmt: skip
    tables["reference_ctm"] = {"n_days": float(n_days), "seed": int(seed), "vocabulary": vocabulary, "records": records,
                               "grid": {"ncols": grid.ncols, "nrows": grid.nrows, "xcell": float(grid.xcell),
                                        "ycell": float(grid.ycell), "gdnam": grid.gdnam}}  # fmt: skip
    write_text_atomic(toml_path, _toml(tables))
    if outputs:
        for r in ids:
            run_one(toml_path, r)
        if adjoint_states:
            for r in aid:
                run_one(toml_path, r, adjoint=True)
    return toml_path


# ---------------------------------------------------------------------------------------------- one run
_CTM_CACHE: dict = {}


def _ctm(grid: CTMGrid, n_days: float) -> ReferenceCTM:
    key = (grid, float(n_days))
    if key not in _CTM_CACHE:
        _CTM_CACHE[key] = ReferenceCTM.default(grid=grid, n_days=n_days)
    return _CTM_CACHE[key]


def _find_label(labels: Sequence, run_id) -> object:
    for lab in labels:
        if str(lab) == str(run_id):
            return lab
    raise KeyError(run_id)


def run_one(runs_toml: str | os.PathLike, run_id, *, adjoint: bool = False) -> Path:
    """Compute one run id of a reference run folder and write its output (atomically) at the path the
    `[outputs] pattern` gives (with `adjoint=True`: the adjoint state of that id, at `[adjoints] pattern`).

    The run reads the folder's own design, base emissions and masks (DESID-style scaling), so it computes
    exactly what the folder describes. **Returns** the path written. Raises `KeyError`-free `ValueError`s
    naming the run id and the design file when the id is not in the design.
    """
    cfg = read_runs_toml(runs_toml)
    ref = cfg.raw.get("reference_ctm")
    if ref is None:
        raise ValueError(f"{cfg.path}: no [reference_ctm] table: only folders written by write_run_folder can be "
                         "recomputed by the reference CTM")
    g = ref["grid"]
    grid = CTMGrid(ncols=int(g["ncols"]), nrows=int(g["nrows"]), xcell=float(g["xcell"]), ycell=float(g["ycell"]),
                   gdnam=str(g.get("gdnam", "RUNS")))  # fmt: skip
    table = "adjoints" if adjoint else "design"
    if adjoint and "adjoints" not in cfg.raw:
        raise ValueError(f"{cfg.path}: the folder has no [adjoints] table")
    dfile = cfg.file("adjoints", "design") if adjoint else cfg.file("design")
    design = read_design(dfile, run=cfg.get(table, "run", "run"))
    try:
        label = _find_label(design["run"].values.tolist(), run_id)
    except KeyError:
        raise ValueError(f"run id {run_id!r} is not in the design {dfile} (ids: {design['run'].values.tolist()[:10]}"
                         f"{'...' if design.sizes['run'] > 10 else ''})") from None  # fmt: skip
    smap = cfg.get("emissions", "species")
    base = read_emissions(cfg.file("emissions"), smap, levels=cfg.get("emissions", "levels"))
    masks = read_region_masks(cfg.file("regions", "masks"))
    scale = design.sel(run=label)
    E = desid_emissions(base, masks, scale).sel(species=list(SPECIES)).values
    ctm = _ctm(grid, float(ref["n_days"]))
    vocabulary = ref["vocabulary"]
    if not adjoint:
        C = np.asarray(ctm.run_ensemble(jnp.asarray(E)[None], batch_size=1, progress=False)[0])  # compiled for run time
        path = format_run_path(cfg.root, cfg.raw["outputs"]["pattern"], label, config=cfg.path)
        return _write_output(C, grid, path, vocabulary, int(ref.get("records", 1)))
    a = cfg.raw["adjoints"]
    if a.get("cost") != "population_weighted_pm25":
        raise ValueError(f"{cfg.path}: the reference CTM computes adjoints of cost 'population_weighted_pm25' only")

    pop = read_population(cfg.file("population"), variable=cfg.get("population", "variable")).values
    m = masks.values.sum(0)
    weights = jnp.asarray(pop * m / np.sum(pop * m))
    _, dJdE = ctm.adjoint(jax.tree_util.Partial(_linear_cost, weights=weights), jnp.asarray(E))
    dJdE = np.asarray(dJdE)
    if a.get("kind", "scaling_factor") == "scaling_factor":
        field = dJdE * base.sel(species=list(SPECIES)).values  # dJ/d f with E = f x E_base per cell and level
        units = "ug m-3"
    else:
        field = dJdE
        units = "ug m-3/(kt/yr)"
    path = format_run_path(cfg.root, a["pattern"], label, config=cfg.path, table="adjoints")
    fmt = a.get("format", cfg.raw["outputs"].get("format", "ioapi"))
    data = {smap[s]: field[k][None] for k, s in enumerate(SPECIES)}
    return _gridded_file(data, units, grid, path, "ioapi" if fmt == "ioapi" else "cf",
                         desc="Reference CTM adjoint (ADJ_LGRID_EM_SF-like): dJ/d per-cell factor on base emissions")  # fmt: skip
