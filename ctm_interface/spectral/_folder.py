"""The spectral CTM writes run folders in the layout users hand over (docs/run_folders.md, like
`ctm_interface.reference.write_run_folder`): `design.csv` (long, with a split), one CF netCDF output per run id,
a region mask file, population, base emissions, optional adjoints (`ADJ_LGRID_EM_SF`-like: dJ/d per-cell factor
on the base emissions) with their own design file, and `runs.toml`.

Runs use DESID-style region scaling, $E(c) = E^{base}(c)(1 + \\sum_g m_g(c)(s_{g,k} - 1))$, read back from the
files just written, so the folder computes exactly what it describes. The spectral CTM's regions do not
overlap (masks are 0 or 1), so this equals `SpectralWorld.emissions` of the same factors. Every field is
written in float64, so what `ctm_interface.read_run_folder` reads equals the CTM's own outputs to rounding.

Files are CF netCDF on the CTM's grid labelled with regular latitude/longitude values (a format, not a real
lat-lon model grid); components keep the CTM's names (`SO4, NO3, NH4, EC, OM, SOA`: a `components` table in
`runs.toml`, OM being organic matter).
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
from .._regions import spread_to_grid
from .._runfolder import (
    desid_emissions,
    format_run_path,
    read_design,
    read_emissions,
    read_population,
    read_region_masks,
    read_runs_toml,
)
from ..reference._folder import _design_csv as _reference_design_csv, _lhs as _reference_lhs, _toml_value
from ._model import COMPONENTS, REGIONS, SPECIES, SpectralCTM, SpectralWorld

_OUT_PATTERN = "runs/SPECTRAL_run{run:03d}.nc"
_ADJ_PATTERN = "adjoint/ADJ_LGRID_EM_SF_state{run:03d}.nc"


def _lhs(n: int, seed: int, low: float, high: float) -> np.ndarray:
    return _reference_lhs(n, seed, low, high, REGIONS, SPECIES)


def _design_csv(labels: Sequence, values: np.ndarray, split: Sequence[str] | None) -> str:
    return _reference_design_csv(labels, values, split, REGIONS, SPECIES)


def _latlon(shape: tuple[int, int]) -> dict:
    ny, nx = shape
    lat = 10.0 + (np.arange(ny) + 0.5) * 0.45
    lon = 60.0 + (np.arange(nx) + 0.5) * 0.45
    return {"lat": ("lat", lat, {"units": "degrees_north", "standard_name": "latitude"}),
            "lon": ("lon", lon, {"units": "degrees_east", "standard_name": "longitude"})}  # fmt: skip


def _write_cf(fields: dict[str, tuple], shape, path: Path, title: str, extra_coords: dict | None = None) -> Path:
    """`{name: (dims, float64 values, units)}` as a CF netCDF file (float64 kept), written atomically."""
    data = {n: (dims, np.asarray(v, np.float64), {"units": u, "long_name": n}) for n, (dims, v, u) in fields.items()}
    ds = xr.Dataset(data, coords={**_latlon(shape), **(extra_coords or {})},
                    attrs={"Conventions": "CF-1.8", "title": title})  # fmt: skip
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        ds.to_netcdf(tmp, format="NETCDF4")
    return path


def _toml(tables: dict[str, dict]) -> str:
    out = ["# A CTM run folder written by ctm_interface.spectral.write_run_folder (see docs/run_folders.md)."]
    for name, t in tables.items():
        out.append(f"\n[{name}]")
        out += [f"{k} = {_toml_value(v)}" for k, v in t.items()]
    return "\n".join(out) + "\n"


def _masks(world: SpectralWorld) -> np.ndarray:
    return (np.asarray(world.receptor_weights) > 0).astype(np.float64)


def write_run_folder(
    folder: str | os.PathLike,
    *,
    n_train: int = 12,
    n_test: int = 6,
    adjoint_states: int = 0,
    adjoint_on_train: bool = False,
    include_base: bool = True,
    low: float = 0.5,
    high: float = 1.5,
    seed: int = 0,
    n_days: float = 6.0,
    dt: float = 10800.0,
    batch: int = 16,
    overwrite: bool = False,
) -> Path:
    """Write a complete run folder from the spectral CTM; returns the path of its `runs.toml`.

    **Arguments**

    - `folder`: where to write (created; refuses a folder that already has a `runs.toml` unless `overwrite`).
    - `n_train`, `n_test`: runs of each split, ids `0..n_train-1` and `n_train..n_train+n_test-1` (Latin
      hypercubes over `[low, high]` per region x species factor, seeds `seed` and `seed + 1`; with
      `include_base` the first training run is the base case, all factors 1).
    - `adjoint_states`: number of adjoint states (0 = none), of population-weighted PM2.5 over the receptor
      regions. `adjoint_on_train`: the states are the first training runs (same ids and factors); else they
      have ids `0..` and their own design (seed `seed + 2`, no forward runs).
    - `n_days`, `dt`: the CTM's simulated days per season and time step (`SpectralCTM.default`); `batch`: runs
      computed together.
    """
    for name, v in (("n_train", n_train), ("n_test", n_test), ("adjoint_states", adjoint_states)):
        if not (isinstance(v, int) and v >= 0):
            raise ValueError(f"{name} must be a non-negative integer, got {v!r}")
    if n_train + n_test == 0:
        raise ValueError("n_train + n_test must be positive: a run folder needs at least one run")
    if not high > low >= 0:
        raise ValueError(f"need 0 <= low < high for the design box, got low={low!r}, high={high!r}")
    folder = Path(folder)
    toml_path = folder / "runs.toml"
    if toml_path.exists() and not overwrite:
        raise FileExistsError(f"{toml_path} exists: write to a new folder or pass overwrite=True")
    world = SpectralWorld.default(SpectralCTM.default(n_days=n_days, dt=dt))
    shape = world.ctm.shape
    xtr = _lhs(n_train, seed, low, high)
    if include_base and n_train:
        xtr[0] = 1.0
    xte = _lhs(n_test, seed + 1, low, high)
    ids = list(range(n_train + n_test))
    split = ["train"] * n_train + ["test"] * n_test
    if adjoint_states and adjoint_on_train:
        if adjoint_states > n_train:
            raise ValueError(f"adjoint_on_train: only {n_train} training runs for {adjoint_states} states")
        aid, XA = ids[:adjoint_states], xtr[:adjoint_states]
    else:
        aid, XA = list(range(adjoint_states)), _lhs(adjoint_states, seed + 2, low, high)

    folder.mkdir(parents=True, exist_ok=True)
    write_text_atomic(folder / "design.csv", _design_csv(ids, np.concatenate([xtr, xte]), split))
    masks = _masks(world)
    base = spread_to_grid(world.base_emissions.T, world.allocation)  # kt/yr per cell
    _write_cf({"region_mask": (("region", "lat", "lon"), masks, "1")}, shape, folder / "region_mask.nc",
              "spectral CTM source/receptor regions", {"region": list(REGIONS)})  # fmt: skip
    _write_cf({"population": (("lat", "lon"), world.population, "persons")}, shape, folder / "population.nc",
              "population per cell (synthetic)")
    _write_cf({s: (("lat", "lon"), base[k], "kt/yr") for k, s in enumerate(SPECIES)}, shape,
              folder / "base_emissions.nc", "base emissions per cell (synthetic)")  # fmt: skip
    tables: dict[str, dict] = {
        "design": {"file": "design.csv", "run": "run", "low": float(low), "high": float(high)},
        "outputs": {"pattern": _OUT_PATTERN, "format": "cf", "components": {c: c for c in COMPONENTS}},
        "emissions": {"file": "base_emissions.nc", "species": {s: s for s in SPECIES}},
        "regions": {"masks": "region_mask.nc"},
        "population": {"file": "population.nc", "variable": "population"},
    }
    if adjoint_states:
        write_text_atomic(folder / "design_adjoint.csv", _design_csv(aid, XA, None))
        tables["adjoints"] = {"design": "design_adjoint.csv", "pattern": _ADJ_PATTERN, "kind": "scaling_factor",
                              "cost": "population_weighted_pm25", "format": "cf"}  # fmt: skip
    tables["spectral_ctm"] = {"n_days": float(n_days), "dt": float(dt), "seed": int(seed)}
    write_text_atomic(toml_path, _toml(tables))
    _compute(toml_path, world, batch)
    return toml_path


def _compute(toml_path: Path, world: SpectralWorld, batch: int) -> None:
    """Compute every run (and adjoint state) of the folder from its own files and write the outputs."""
    cfg = read_runs_toml(toml_path)
    smap = cfg.get("emissions", "species")
    base = read_emissions(cfg.file("emissions"), smap)
    masks = read_region_masks(cfg.file("regions", "masks"))
    shape = world.ctm.shape
    run_c = jax.jit(jax.vmap(world.ctm.run))

    def fields(design):
        E = desid_emissions(base, masks, design)
        return E.sel(species=list(SPECIES)).isel(level=0).transpose("run", "species", "ROW", "COL").values

    def batched(f, *arrays):
        n = len(arrays[0])
        size = max(1, min(batch, n))  # a small folder is not padded up to a full batch (one shape, one compile)
        out = []
        for i in range(0, n, size):
            chunk = [a[i : i + size] for a in arrays]
            m = len(chunk[0])
            pad = [np.concatenate([c, np.repeat(c[-1:], size - m, axis=0)]) if m < size else c for c in chunk]
            out.append(np.asarray(f(*(jnp.asarray(p) for p in pad)))[:m])
        return np.concatenate(out)

    design = read_design(cfg.file("design"), run=cfg.get("design", "run", "run"))
    labels = design["run"].values.tolist()
    C = batched(run_c, fields(design))
    title = "Spectral stand-in CTM (diffmrio) run output: synthetic, not a validated air quality model"
    for lab, c in zip(labels, C, strict=True):
        path = format_run_path(cfg.root, cfg.raw["outputs"]["pattern"], lab, config=cfg.path)
        _write_cf({n: (("lat", "lon"), c[i], "ug m-3") for i, n in enumerate(COMPONENTS)}, shape, path, title)
    if "adjoints" not in cfg.raw:
        return
    adesign = read_design(cfg.file("adjoints", "design"), run=cfg.get("adjoints", "run", "run"))
    pop = read_population(cfg.file("population"), variable=cfg.get("population", "variable")).values
    m = masks.values.sum(0)
    cell_w = jnp.asarray(pop * m / np.sum(pop * m))  # J = sum_cells w sum_c C_c (population-weighted PM2.5)
    grad = jax.jit(jax.vmap(jax.grad(lambda E: jnp.sum(cell_w[None] * world.ctm.run(E)))))
    E = fields(adesign)
    G = batched(grad, E) * base.sel(species=list(SPECIES)).isel(level=0).values[None]  # dJ/d per-cell factor
    for lab, g in zip(adesign["run"].values.tolist(), G, strict=True):
        path = format_run_path(cfg.root, cfg.raw["adjoints"]["pattern"], lab, config=cfg.path, table="adjoints")
        _write_cf({s: (("lat", "lon"), g[k], "ug m-3") for k, s in enumerate(SPECIES)}, shape, path,
                  "Spectral CTM adjoint (ADJ_LGRID_EM_SF-like): dJ/d per-cell factor on the base emissions")
