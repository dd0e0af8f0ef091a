"""GEOS-Chem netCDF output (history collections, restarts) and CF lat-lon fields.

GEOS-Chem (COARDS) files have dims `(time, lev, lat, lon)`; `lev` is the hybrid sigma-pressure coordinate
at layer mid-points, `positive = "up"`, level index 0 (level 1 in Fortran) at the surface, with
`lev = hyam / P0 + hybm` and interface pressures `p = hyai + hybi * PS` (hPa). Species are
`SpeciesConcVV_<X>` (mol mol-1 dry air) in the `SpeciesConc` collection, `SpeciesRst_<X>` in restarts,
and the `AerosolMass` collection carries `PM25` (ug m-3).

Reference: GEOS-Chem history diagnostics,
<https://geos-chem.readthedocs.io/en/latest/output/history.html>.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path

import numpy as np
import xarray as xr

from ._errors import CTMFileError
from ._ioapi import _check_netcdf_file

#: Prefixes of GEOS-Chem species variables, most specific first.
GEOSCHEM_PREFIXES = ("SpeciesConcVV_", "SpeciesConcMND_", "SpeciesConc_", "SpeciesRst_", "SPC_")
_GEOSCHEM_EXTRA = ("PM25", "PM10", "AerMassSO4", "AerMassNH4", "AerMassNIT", "AerMassBC", "TotalOC")


def _open(path: Path, chunks, decode_times: bool = True) -> xr.Dataset:
    _check_netcdf_file(path)
    try:
        return xr.open_dataset(path, chunks=chunks, decode_times=decode_times)
    except (OSError, RuntimeError, ValueError, KeyError) as e:
        raise CTMFileError(path, f"cannot open as netCDF, the file is truncated or corrupt ({e})") from e


def _species_name(var: str) -> str:
    for p in GEOSCHEM_PREFIXES:
        if var.startswith(p):
            return var[len(p) :]
    return var


def read_geoschem(
    path: str | os.PathLike,
    species: str | Iterable[str] | None = None,
    *,
    surface: bool = False,
    strip_prefix: bool = True,
    chunks: Mapping[str, int] | str | None = None,
) -> xr.Dataset:
    """Read a GEOS-Chem history collection or restart file.

    **Arguments**

    - `path`: the netCDF file.
    - `species`: names to keep, with or without the collection prefix (`"SO4"` finds
      `SpeciesConcVV_SO4`; `"PM25"` finds AerosolMass `PM25`). Default: every species-like variable (a
      known prefix, or dims including `lat` and `lon`).
    - `surface`: return only the lowest model level (largest `lev`, i.e. `lev` index 0 in GEOS-Chem's
      `positive = "up"` order), without the `lev` dim.
    - `strip_prefix`: rename `SpeciesConcVV_SO4` -> `SO4` (the full name is kept in attrs `gc_name`).
    - `chunks`: passed to `xarray.open_dataset` for lazy dask arrays.

    **Returns** a Dataset with dims `(time, lev, lat, lon)` (no `lev` when `surface=True`), `units` kept
    (`mol mol-1 dry`, `ug m-3`), the hybrid coefficients `hyam, hybm, hyai, hybi, P0` as coordinates when
    present, and `lev` ordered surface first. Raises `CTMFileError` for unreadable files, files without
    GEOS-Chem variables, and species that are not there.
    """
    path = Path(path)
    ds = _open(path, chunks)
    if "lat" not in ds.dims or "lon" not in ds.dims:
        raise CTMFileError(path, f"not a GEOS-Chem lat-lon file: dims {dict(ds.sizes)} lack 'lat' and 'lon'")
    candidates = [
        str(v)
        for v in ds.data_vars
        if any(str(v).startswith(p) for p in GEOSCHEM_PREFIXES)
        or (str(v) in _GEOSCHEM_EXTRA)
        or ({"lat", "lon"} <= set(ds[v].dims) and str(v) not in ("AREA",) and ds[v].ndim >= 3)
    ]
    if not candidates:
        raise CTMFileError(path, f"no GEOS-Chem species variables found; variables are {list(ds.data_vars)}")
    if species is not None:
        wanted = [species] if isinstance(species, str) else list(species)
        chosen, not_there = [], []
        by_short = {}
        for c in candidates:
            by_short.setdefault(_species_name(c), c)
        for s in wanted:
            if s in candidates:
                chosen.append(s)
            elif s in by_short:
                chosen.append(by_short[s])
            else:
                not_there.append(s)
        if not_there:
            raise CTMFileError(
                path, f"species {not_there} not in the file; it has {sorted(by_short)} (prefixes stripped)"
            )
        candidates = chosen
    coord_vars = [c for c in ("hyam", "hybm", "hyai", "hybi", "P0", "AREA") if c in ds.variables]
    out = ds[candidates].assign_coords({c: ds[c] for c in coord_vars})
    out.attrs = dict(ds.attrs)
    out.attrs["source_file"] = str(path)

    if "lev" in out.dims and out.sizes["lev"] > 1:
        lev = np.asarray(out["lev"].values, float)
        positive = str(out["lev"].attrs.get("positive", "up")).lower()
        # Surface first: sigma-like lev values decrease upward. A file written top-first (lev increasing,
        # or positive="down" with lev index 0 at the top) is flipped so that index 0 is the surface.
        top_first = lev[0] < lev[-1] if np.all(lev <= 1.0 + 1e-9) else positive == "down"
        if top_first:
            out = out.isel(lev=slice(None, None, -1))
            if "ilev" in out.dims:
                out = out.isel(ilev=slice(None, None, -1))
    if surface and "lev" in out.dims:
        out = out.isel(lev=0, drop=False)
        out = out.drop_vars([c for c in ("hyam", "hybm", "lev") if c in out.coords])
    if strip_prefix:
        renames = {c: _species_name(c) for c in candidates if _species_name(c) != c}
        clash = set(renames.values()) & (set(candidates) - set(renames))
        if len(set(renames.values())) == len(renames) and not clash:
            for full, short in renames.items():
                out[full].attrs["gc_name"] = full
            out = out.rename(renames)
    return out


def hybrid_pressure(ds: xr.Dataset, ps: xr.DataArray, *, interfaces: bool = False) -> xr.DataArray:
    """Pressure (hPa) at GEOS-Chem layer mid-points or interfaces.

    $p_k = A_k + B_k \\, p_s$ with `hyam`/`hybm` (mid-points) or `hyai`/`hybi` (interfaces), `A` in hPa.

    **Arguments**: `ds` with the hybrid coefficients (from `read_geoschem`), `ps` surface pressure (hPa),
    dims e.g. `(time, lat, lon)`; `interfaces` chooses the level set.

    **Returns** pressures with dims `(lev or ilev, *ps.dims)`.
    """
    a, b = ("hyai", "hybi") if interfaces else ("hyam", "hybm")
    if a not in ds.variables or b not in ds.variables:
        raise ValueError(f"ds has no {a}/{b}: read it with read_geoschem from a file that carries them")
    return ds[a] + ds[b] * ps


def read_cf_latlon(
    path: str | os.PathLike,
    variables: str | Iterable[str] | None = None,
    *,
    ascending: bool = True,
    chunks: Mapping[str, int] | str | None = None,
) -> xr.Dataset:
    """Read CF lat-lon fields (e.g. annual-mean surface PM2.5 on a 0.5 deg grid).

    **Arguments**

    - `path`: a CF/COARDS netCDF file with 1-D latitude and longitude coordinates (found by name `lat`,
      `latitude`, `lon`, `longitude`, by `standard_name`, or by `units` degrees_north/degrees_east).
    - `variables`: names to keep (default: all data variables on the lat-lon grid).
    - `ascending`: sort latitude and longitude ascending (files are often north-to-south).
    - `chunks`: for lazy dask arrays.

    **Returns** a Dataset with dims renamed to `lat`, `lon` (plus e.g. `time`), CF time decoded, units kept.
    """
    path = Path(path)
    ds = _open(path, chunks)

    def find(kind: str) -> str:
        names = {"lat": ("lat", "latitude", "y"), "lon": ("lon", "longitude", "x")}[kind]
        units = {"lat": "degrees_north", "lon": "degrees_east"}[kind]
        std = {"lat": "latitude", "lon": "longitude"}[kind]
        for v in ds.coords:
            a = ds[v].attrs
            if ds[v].ndim == 1 and (a.get("standard_name") == std or a.get("units") == units):
                return str(v)
        for n in names:
            if n in ds.coords and ds[n].ndim == 1:
                return n
        raise CTMFileError(
            path, f"no 1-D {kind} coordinate found (coords: {list(ds.coords)}); is this a lat-lon file?"
        )

    lat, lon = find("lat"), find("lon")
    ds = ds.rename({k: v for k, v in ((lat, "lat"), (lon, "lon")) if k != v})
    on_grid = [str(v) for v in ds.data_vars if {"lat", "lon"} <= set(ds[v].dims)]
    if variables is not None:
        wanted = [variables] if isinstance(variables, str) else list(variables)
        not_there = [v for v in wanted if v not in on_grid]
        if not_there:
            raise CTMFileError(
                path, f"variables {not_there} not in the file; lat-lon variables are {on_grid}"
            )
        on_grid = wanted
    if not on_grid:
        raise CTMFileError(path, "no variables on the lat-lon grid")
    out = ds[on_grid]
    if ascending:
        out = out.sortby(["lat", "lon"])
    out.attrs = dict(ds.attrs)
    out.attrs["source_file"] = str(path)
    return out
