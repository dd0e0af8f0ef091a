"""Run folders: a CTM ensemble as users hand it over (design table, run outputs, masks, population, base
emissions, optional adjoints), described by a small `runs.toml` (the format: docs/run_folders.md), read into
the run sets `surrogate` fits on.

Run ids are **labels** (`17`, `"run017"`): an output pattern formats the label, never a position. Everything
that reading refuses is reported with the run id and the file.

Emission scaling follows CMAQ's DESID region masks: a run with factors $s_{g,k}$ uses, in every cell and
layer, $E_{k}(c) = E^{base}_{k}(c)\\,(1 + \\sum_g m_g(c)(s_{g,k} - 1))$ with $m_g$ the fractional region masks.
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import glob
import json
import math
import os
import re
import string
import tomllib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pandas as pd
import xarray as xr

from ._errors import CTMFileError
from ._geoschem import read_cf_latlon
from ._ioapi import _check_netcdf_file, read_ioapi
from ._regions import aggregate_to_regions, region_kernel, spread_to_grid
from ._vocabulary import CONC_UNITS, DEFAULT_OM_OC, VOCABULARIES, ComponentMap, resolve_components

_FORMATS = ("ioapi", "cf", "geoschem")
_TIME_DIMS = ("TSTEP", "time")
_LAYER_DIMS = ("LAY", "lev", "level")
_GRID_KEYS = ("GDTYP", "P_ALP", "P_BET", "P_GAM", "XCENT", "YCENT", "XORIG", "YORIG", "XCELL", "YCELL")


# ---------------------------------------------------------------------------------------------- design tables
def _label(v):
    if isinstance(v, (np.integer, int)) and not isinstance(v, bool):
        return int(v)
    return str(v)


def _run_labels(col: pd.Series):
    if pd.api.types.is_integer_dtype(col):
        return col.astype(np.int64)
    if pd.api.types.is_float_dtype(col) and np.all(np.isfinite(col)) and np.all(col == np.round(col)):
        return col.astype(np.int64)
    return col.astype(str).str.strip()


def read_design(
    source: str | os.PathLike | pd.DataFrame,
    *,
    run: str = "run",
    low: float | None = None,
    high: float | None = None,
) -> xr.DataArray:
    """A design table (CSV file or DataFrame) as `scale[run, source, species]`, run ids as labels.

    Two layouts are detected:

    - long: columns `run, region (or source), species, factor (or scale)` and optionally `split`;
    - wide: column `run` and one column per factor named `region:species` (or `region/species`), optionally
      `split`.

    **Arguments**: `source`; `run` the column holding the run ids; `low`, `high` the design box (added as
    `low`/`high` coordinates, which `surrogate.fit` uses as the training envelope).

    **Returns** `scale[run, source, species]` (float64, units `"1"`) with coords `run` (the labels: integers
    when every id is an integer, else strings), `run_id` (the labels as strings) and `split` when given.
    Raises `CTMFileError` naming the file and the run ids for duplicated ids, missing factors and non-finite
    or negative factors.
    """
    path = None
    if isinstance(source, pd.DataFrame):
        df = source.copy()
    else:
        path = Path(source)
        if not path.exists():
            raise CTMFileError(path, "design table does not exist")
        try:
            df = pd.read_csv(path, skipinitialspace=True)
        except (OSError, ValueError, pd.errors.ParserError) as e:
            raise CTMFileError(path, f"cannot read the design table as CSV ({e})") from e
    df.columns = [str(c).strip() for c in df.columns]
    if run not in df.columns:
        raise CTMFileError(path, f"design table has no run-id column {run!r} (columns: {list(df.columns)})")
    if df[run].isna().any():
        raise CTMFileError(path, f"design table has rows without a run id (rows {list(np.flatnonzero(df[run].isna()))})")
    df[run] = _run_labels(df[run])
    src_col = next((c for c in ("region", "source") if c in df.columns), None)
    val_col = next((c for c in ("factor", "scale") if c in df.columns), None)
    split = None
    if src_col and "species" in df.columns and val_col:  # long
        num = pd.to_numeric(df[val_col], errors="coerce")
        if num.isna().any():
            bad = list(dict.fromkeys(df.loc[num.isna(), run]))
            raise CTMFileError(path, f"run ids {bad} have factors that are not numbers in column {val_col!r}")
        df[val_col] = num.astype(np.float64)
        dup = df.duplicated([run, src_col, "species"], keep=False)
        if dup.any():
            ids = list(dict.fromkeys(df.loc[dup, run].tolist()))
            raise CTMFileError(path, f"run ids {ids} have duplicated (region, species) rows: one row each")
        runs = list(dict.fromkeys(df[run].tolist()))
        sources = [str(s) for s in dict.fromkeys(df[src_col].astype(str))]
        species = [str(s) for s in dict.fromkeys(df["species"].astype(str))]
        table = df.assign(**{src_col: df[src_col].astype(str), "species": df["species"].astype(str)})
        cube = table.pivot(index=run, columns=[src_col, "species"], values=val_col)
        cube = cube.reindex(index=runs, columns=pd.MultiIndex.from_product([sources, species]))
        holes = cube.isna().any(axis=1)
        if holes.any():
            # name the pairs: a relabelled region in one row shows up as a pair that most runs lack
            missing = {}
            for pair in cube.columns[cube.isna().any(axis=0)]:
                lacking = [_label(r) for r in cube.index[cube[pair].isna()]]
                missing[f"{pair[0]}:{pair[1]}"] = lacking if len(lacking) <= 5 else lacking[:5] + ["..."]
            shown = dict(list(missing.items())[:8])
            raise CTMFileError(
                path,
                f"run ids {[_label(r) for r in cube.index[holes]]} lack factors for some (region, species) pairs: "
                f"every run needs one row per pair (pair: runs lacking it) {shown}"
                + (f" and {len(missing) - len(shown)} more" if len(missing) > len(shown) else "")
                + "; a pair that most runs lack is usually a misspelt region or species in a few rows",
            )
        values = cube.to_numpy(np.float64).reshape(len(runs), len(sources), len(species))
        if "split" in df.columns:
            per = df.groupby(run, sort=False)["split"].nunique()
            bad = list(per.index[per > 1])
            if bad:
                raise CTMFileError(path, f"run ids {bad} have rows in more than one split")
            split = df.groupby(run, sort=False)["split"].first().reindex(runs).astype(str).tolist()
    else:  # wide
        dup = df[run].duplicated(keep=False)
        if dup.any():
            raise CTMFileError(
                path, f"run ids {list(dict.fromkeys(df.loc[dup, run]))} appear in more than one row: ids are labels and must be unique"
            )
        fcols = [c for c in df.columns if c not in (run, "split", "run_kind")]
        pairs = [re.split(r"[:/]", c, maxsplit=1) for c in fcols]
        if not fcols or any(len(p) != 2 for p in pairs):
            raise CTMFileError(
                path,
                "design table is neither long (columns run, region, species, factor) nor wide (run plus "
                f"'region:species' columns); columns are {list(df.columns)}",
            )
        sources = list(dict.fromkeys(p[0] for p in pairs))
        species = list(dict.fromkeys(p[1] for p in pairs))
        want = [f"{g}\0{s}" for g in sources for s in species]
        have = {f"{p[0]}\0{p[1]}": c for p, c in zip(pairs, fcols, strict=True)}
        lack = [w.replace("\0", ":") for w in want if w not in have]
        if lack:
            raise CTMFileError(path, f"wide design table lacks the factor columns {lack}")
        runs = df[run].tolist()
        values = df[[have[w] for w in want]].to_numpy(np.float64).reshape(len(runs), len(sources), len(species))
        if "split" in df.columns:
            split = df["split"].astype(str).tolist()
    bad = [runs[i] for i in np.flatnonzero(~np.all(np.isfinite(values) & (values >= 0), axis=(1, 2)))]
    if bad:
        raise CTMFileError(path, f"run ids {bad} have non-finite or negative factors")
    coords: dict[str, Any] = {
        "run": np.asarray(runs) if not all(isinstance(r, (int, np.integer)) for r in runs) else np.asarray(runs, np.int64),
        "run_id": ("run", [str(r) for r in runs]),
        "source": sources,
        "species": species,
    }
    if split is not None:
        coords["split"] = ("run", split)
    if (low is None) != (high is None):
        raise ValueError("give both `low` and `high` for the design box, or neither")
    if low is not None and not (np.isfinite(float(low)) and np.isfinite(float(high)) and 0 <= float(low) < float(high)):
        raise CTMFileError(path, f"design box low = {low}, high = {high}: need 0 <= low < high")
    if low is not None:
        outside = np.nonzero(((values < float(low)) | (values > float(high))).any(axis=(1, 2)))[0]
        if len(outside):
            worst = [f"{runs[i]!r} ({values[i].min():g}..{values[i].max():g})" for i in outside[:5]]
            raise CTMFileError(path, f"{len(outside)} run(s) have factors outside the design box [{low}, {high}] "
                                     f"given in runs.toml [design] low/high: {', '.join(worst)}"
                                     f"{' and more' if len(outside) > 5 else ''}. The box is the emulator's training "
                                     "envelope, so it must contain every run: widen low/high, or take these runs out "
                                     "of the design")
        coords["low"] = (("source", "species"), np.full(values.shape[1:], float(low)))
        coords["high"] = (("source", "species"), np.full(values.shape[1:], float(high)))
    return xr.DataArray(
        values,
        dims=("run", "source", "species"),
        coords=coords,
        name="scale",
        attrs={"long_name": "emission scaling factor", "units": "1", "design_file": "" if path is None else str(path)},
    )


# ---------------------------------------------------------------------------------------------- gridded files
def _squeeze_singletons(da: xr.DataArray, path, what: str) -> xr.DataArray:
    for d in _TIME_DIMS + _LAYER_DIMS:
        if d in da.dims:
            if da.sizes[d] != 1:
                raise CTMFileError(path, f"{what} {da.name!r} has {da.sizes[d]} entries along {d}; expected one")
            da = da.isel({d: 0}, drop=True)
    return da.drop_vars([c for c in da.coords if c not in da.dims and c != "region"])


def _open_gridded(path: Path, fmt: str) -> xr.Dataset:
    """Open a gridded file with spatial dims renamed to (ROW, COL) (CF: lat -> ROW, lon -> COL)."""
    if fmt == "ioapi":
        return read_ioapi(path, coords=False)
    if fmt in ("cf", "geoschem"):
        ds = read_cf_latlon(path)
        return ds.rename({"lat": "ROW", "lon": "COL"})
    raise ValueError(f"format must be one of {_FORMATS}, got {fmt!r}")


def _format_hint(path: Path, fmt: str) -> str:
    """A hint when a file that could not be read is I/O API but runs.toml says CF (or the reverse)."""
    try:
        found = _detect_format(path)
    except (CTMFileError, ValueError, OSError):
        return ""
    if (found == "ioapi") != (fmt == "ioapi"):
        return f" (the file looks like {'I/O API' if found == 'ioapi' else 'CF netCDF'}: set [outputs] format = " \
               f"{found if found == 'ioapi' else 'cf'!r} in runs.toml?)"
    return ""


def _detect_format(path: Path) -> str:
    _check_netcdf_file(path)
    try:
        with xr.open_dataset(path, decode_cf=False, decode_times=False) as ds:
            return "ioapi" if "VAR-LIST" in ds.attrs else "cf"
    except (OSError, RuntimeError, ValueError) as e:
        raise CTMFileError(path, f"cannot open as netCDF ({e})") from e


def _grid_of(ds: xr.Dataset) -> dict:
    """What identifies a file's grid: I/O API grid attributes, or the CF lat/lon values."""
    if "VAR-LIST" in ds.attrs:
        return {"kind": "ioapi", **{k: float(np.asarray(ds.attrs[k]).ravel()[0]) for k in _GRID_KEYS},
                "shape": (ds.sizes.get("ROW"), ds.sizes.get("COL"))}  # fmt: skip
    return {"kind": "cf", "lat": np.asarray(ds["ROW"].values, np.float64) if "ROW" in ds.coords else None,
            "lon": np.asarray(ds["COL"].values, np.float64) if "COL" in ds.coords else None,
            "shape": (ds.sizes.get("ROW"), ds.sizes.get("COL"))}  # fmt: skip


def _grid_mismatch(ref: dict, other: dict) -> str | None:
    if ref["shape"] != other["shape"]:
        return f"ROW x COL = {other['shape'][0]} x {other['shape'][1]}, masks {ref['shape'][0]} x {ref['shape'][1]}"
    if ref["kind"] != other["kind"]:
        return None  # only the sizes can be compared across formats
    if ref["kind"] == "ioapi":
        diff = [f"{k} {other[k]} vs {ref[k]}" for k in _GRID_KEYS if not math.isclose(other[k], ref[k], rel_tol=1e-6, abs_tol=1e-4)]
        return "; ".join(diff) or None
    for k in ("lat", "lon"):
        if ref[k] is not None and other[k] is not None and not np.allclose(ref[k], other[k], atol=1e-6):
            return f"{k} values differ from the masks' ({other[k][:3]}... vs {ref[k][:3]}...)"
    return None


def read_region_masks(
    path: str | os.PathLike, *, variables: Sequence[str] | None = None, format: str | None = None
) -> xr.DataArray:
    """Region masks as `mask[region, ROW, COL]` fractions from a CMAQ DESID-style I/O API file (one variable per
    region, singleton `TSTEP`/`LAY` squeezed) or a CF file (a variable with a `region` dim, or one lat-lon
    variable per region; `lat`/`lon` become `ROW`/`COL`).

    Raises `CTMFileError` naming the file when fractions are outside [0, 1] or not finite.
    """
    path = Path(path)
    fmt = format or _detect_format(path)
    ds = _open_gridded(path, fmt)
    with_region = [v for v in ds.data_vars if "region" in ds[v].dims]
    if with_region and variables is None:
        da = ds[with_region[0]]
        da = _squeeze_singletons(da, path, "mask")
        da = da.assign_coords(region=[str(r) for r in da["region"].values]) if "region" in da.coords else da
    else:
        names = list(variables) if variables is not None else [str(v) for v in ds.data_vars if v != "TFLAG"]
        missing = [n for n in names if n not in ds.data_vars]
        if missing:
            raise CTMFileError(path, f"mask variables {missing} not in the file (it has {list(ds.data_vars)})")
        if not names:
            raise CTMFileError(path, "no mask variables in the file")
        parts = [_squeeze_singletons(ds[n], path, "mask") for n in names]
        da = xr.concat([p.drop_vars([c for c in p.coords if c not in ("ROW", "COL")]) for p in parts], dim="region")
        da = da.assign_coords(region=names)
    da = da.transpose("region", "ROW", "COL").astype(np.float64).load()
    v = da.values
    if not np.all(np.isfinite(v)) or v.min() < 0 or v.max() > 1 + 1e-6:
        raise CTMFileError(path, f"mask fractions must be finite and in [0, 1] (found {np.nanmin(v):g} .. {np.nanmax(v):g})")
    da.name = "mask"
    da.attrs = {"units": "1", "source_file": str(path), "format": fmt}
    da.attrs["_grid"] = _grid_attr(ds)
    return da


def _grid_attr(ds: xr.Dataset) -> str:
    """`_grid_of(ds)` as a JSON attribute (decoded by `_decode_grid`)."""
    return json.dumps({k: (list(map(float, g)) if isinstance(g, np.ndarray) else g) for k, g in _grid_of(ds).items()})


def as_region_masks(masks: xr.DataArray | xr.Dataset) -> xr.DataArray:
    """`mask[region, ROW, COL]` from what readers return: a Dataset with one variable per region (as
    `read_ioapi` reads a DESID region file; singleton `TSTEP`/`LAY` squeezed) or a DataArray with a `region`
    (or `receptor`) dim, possibly with singleton `TSTEP`/`LAY`."""
    src = masks.attrs.get("source_file")
    if isinstance(masks, xr.Dataset):
        names = [str(v) for v in masks.data_vars if v != "TFLAG"]
        if not names:
            raise CTMFileError(src, "the mask Dataset has no variables")
        parts = [_squeeze_singletons(masks[n], src, "mask") for n in names]
        da = xr.concat([p.drop_vars([c for c in p.coords if c not in ("ROW", "COL")]) for p in parts], dim="region")
        return da.assign_coords(region=names).astype(np.float64)
    return _squeeze_singletons(masks, src, "mask").astype(np.float64)


def as_field2d(field: xr.DataArray | np.ndarray, what: str = "weights") -> xr.DataArray | np.ndarray:
    """A `(ROW, COL)` field with singleton `TSTEP`/`LAY` squeezed (e.g. population read with `read_ioapi`)."""
    if isinstance(field, xr.Dataset):
        names = [str(v) for v in field.data_vars if v != "TFLAG"]
        if len(names) != 1:
            raise ValueError(f"{what}: the Dataset has variables {names}; pass the one variable (ds[name])")
        field = field[names[0]]
    if isinstance(field, xr.DataArray):
        return _squeeze_singletons(field, field.attrs.get("source_file"), what).astype(np.float64)
    return field


def _decode_grid(attr: str) -> dict:
    g = json.loads(attr)
    g["shape"] = tuple(g["shape"])
    for k in ("lat", "lon"):
        if g.get(k) is not None:
            g[k] = np.asarray(g[k])
    return g


def read_population(path: str | os.PathLike, *, variable: str | None = None, format: str | None = None) -> xr.DataArray:
    """Gridded population `pop[ROW, COL]` (persons) from an I/O API or CF file (singleton `TSTEP`/`LAY`
    squeezed). Raises `CTMFileError` naming the file for negative or non-finite values."""
    path = Path(path)
    fmt = format or _detect_format(path)
    ds = _open_gridded(path, fmt)
    names = [str(v) for v in ds.data_vars if v != "TFLAG"]
    if variable is None:
        if len(names) != 1:
            raise CTMFileError(path, f"the file has variables {names}: name the population one ([population] variable)")
        variable = names[0]
    if variable not in ds.data_vars:
        raise CTMFileError(path, f"population variable {variable!r} not in the file (it has {names})")
    da = _squeeze_singletons(ds[variable], path, "population")
    da = da.drop_vars([c for c in da.coords]).transpose("ROW", "COL").astype(np.float64).load()
    if not np.all(np.isfinite(da.values)) or da.values.min() < 0:
        raise CTMFileError(path, "population must be finite and >= 0")
    da.name = "population"
    da.attrs = {"units": ds[variable].attrs.get("units", "persons"), "source_file": str(path), "_grid": _grid_attr(ds)}
    return da


def read_emissions(
    path: str | os.PathLike, species: Mapping[str, str] | Sequence[str], *, format: str | None = None,
    levels: Sequence[str] | None = None,
) -> xr.DataArray:
    """Base emissions `E[species, level, ROW, COL]` from an I/O API (layers = emission levels) or CF file
    (`lev`/`level` dim); `species` maps the design's species to file variables (or lists names used for
    both). Records are averaged."""
    path = Path(path)
    fmt = format or _detect_format(path)
    ds = _open_gridded(path, fmt)
    smap = dict(species) if isinstance(species, Mapping) else {s: s for s in species}
    missing = [v for v in smap.values() if v not in ds.data_vars]
    if missing:
        raise CTMFileError(path, f"emission variables {missing} not in the file (it has {list(ds.data_vars)}); "
                                 "map the design's species to file variables in [emissions] species")
    fields = []
    for s, v in smap.items():
        da = ds[v]
        for d in _TIME_DIMS:
            if d in da.dims:
                da = da.mean(d)
        lay = next((d for d in _LAYER_DIMS if d in da.dims), None)
        da = da.expand_dims(level=[0]) if lay is None else da.rename({lay: "level"})
        fields.append(da.drop_vars(list(da.coords)).transpose("level", "ROW", "COL"))
    E = xr.concat(fields, dim="species").astype(np.float64).load()
    nl = E.sizes["level"]
    lev = list(levels) if levels is not None else [str(i + 1) for i in range(nl)]
    if len(lev) != nl:
        raise CTMFileError(path, f"{nl} emission levels in the file but levels = {lev}")
    E = E.assign_coords(species=list(smap), level=lev)
    if not np.all(np.isfinite(E.values)) or E.values.min() < 0:
        raise CTMFileError(path, "base emissions must be finite and >= 0")
    E.name = "emissions"
    E.attrs = {"units": str(ds[next(iter(smap.values()))].attrs.get("units", "")), "source_file": str(path)}
    return E


def desid_emissions(base: xr.DataArray, masks: xr.DataArray, scale: xr.DataArray) -> xr.DataArray:
    """Emissions of runs scaled by region masks, as CMAQ's DESID applies region scaling factors:
    $E_{k,l}(c) = E^{base}_{k,l}(c)\\,(1 + \\sum_g m_g(c)(s_{g,k} - 1))$.

    **Arguments**: `base[species, level, ROW, COL]`, `masks[region, ROW, COL]`, `scale[(run,) source, species]`
    (sources = mask regions). **Returns** `E[(run,) species, level, ROW, COL]`.
    """
    m = masks.rename({"region": "source"}).drop_vars([c for c in masks.coords if c != "region"])
    lack = [str(s) for s in scale["source"].values if str(s) not in [str(r) for r in m["source"].values]]
    if lack:
        raise ValueError(f"design sources {lack} have no region mask (masks: {list(m['source'].values)})")
    m = m.sel(source=scale["source"].values)
    sp = [str(s) for s in scale["species"].values]
    # 1 + sum_g m_g (s_g - 1): the factors painted onto the cells by the masks (the one region-to-grid kernel)
    factor = 1.0 + xr.apply_ufunc(
        spread_to_grid, scale.drop_vars([c for c in scale.coords if c not in ("run", "source", "species")]) - 1.0,
        kwargs={"fraction": m.transpose("source", "ROW", "COL").values}, input_core_dims=[["source"]],
        output_core_dims=[["ROW", "COL"]])  # fmt: skip
    return (base.sel(species=sp) * factor).transpose(*(("run",) if "run" in scale.dims else ()), "species", "level", "ROW", "COL")


# ---------------------------------------------------------------------------------------------- runs.toml
@dataclasses.dataclass(frozen=True)
class RunFolderConfig:
    """A parsed `runs.toml` (paths resolved relative to the TOML file)."""

    path: Path
    raw: dict

    @property
    def root(self) -> Path:
        return self.path.parent

    def file(self, table: str, key: str = "file", required: bool = True) -> Path | None:
        t = self.raw.get(table)
        if t is None or key not in t:
            if required:
                raise CTMFileError(self.path, f"[{table}] {key} is missing: add the path of the file to runs.toml")
            return None
        p = Path(str(t[key]))
        p = p if p.is_absolute() else self.root / p
        if not p.exists():  # name the key as well as the file: the user fixes runs.toml, not the missing file
            raise CTMFileError(self.path, f"[{table}] {key} = {str(t[key])!r}: {p} does not exist; correct the path "
                                          f"(relative paths are relative to the folder of {self.path.name})")
        return p

    def get(self, table: str, key: str, default=None):
        return self.raw.get(table, {}).get(key, default)


def read_runs_toml(path: str | os.PathLike) -> RunFolderConfig:
    """Parse a `runs.toml` (see docs/run_folders.md)."""
    path = Path(path)
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CTMFileError(path, "runs.toml does not exist") from None
    except (OSError, tomllib.TOMLDecodeError) as e:
        raise CTMFileError(path, f"cannot parse as TOML ({e})") from e
    for table in ("design", "outputs"):
        if table not in raw:
            raise CTMFileError(path, f"[{table}] table is missing (see docs/run_folders.md for the layout)")
    if "pattern" not in raw["outputs"]:
        raise CTMFileError(path, "[outputs] pattern is missing, e.g. pattern = \"runs/CCTM_ELMO_run{run:03d}.nc\"")
    fmt = raw["outputs"].get("format", "ioapi")
    if fmt not in _FORMATS:
        raise CTMFileError(path, f"[outputs] format = {fmt!r}: use one of {_FORMATS}")
    _check_schema(path, raw)
    return RunFolderConfig(path=path, raw=raw)


# The tables and keys runs.toml may hold (docs/run_folders.md); `None`: any key (written by write_run_folder).
_SCHEMA: dict[str, tuple[str, ...] | None] = {
    "design": ("file", "run", "low", "high"),
    "outputs": ("pattern", "format", "components", "om_oc", "layer"),
    "emissions": ("file", "species", "levels"),
    "regions": ("masks", "variables", "receptors"),
    "population": ("file", "variable"),
    "adjoints": ("design", "pattern", "kind", "cost", "run", "format", "species"),
    "reference_ctm": None,
    "spectral_ctm": None,
}


def _did_you_mean(name: str, known) -> str:
    close = difflib.get_close_matches(name, list(known), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _check_schema(path: Path, raw: dict) -> None:
    """Refuse what runs.toml cannot mean: an unknown table or key (a typo would otherwise be ignored and its
    default used silently), a pattern without `{run}`, an unknown component vocabulary."""
    bad = []
    for table, body in raw.items():
        if table not in _SCHEMA:
            bad.append(f"unknown table [{table}]{_did_you_mean(table, _SCHEMA)}; the tables are {list(_SCHEMA)}")
            continue
        if not isinstance(body, dict):
            bad.append(f"{table} = ... must be a table [{table}]")
            continue
        keys = _SCHEMA[table]
        for key in body if keys is not None else ():
            if key not in keys:
                bad.append(f"unknown key {key!r} in [{table}]{_did_you_mean(key, keys)}; its keys are {list(keys)}")
    for table in ("outputs", "adjoints"):
        pattern = raw.get(table, {}).get("pattern") if isinstance(raw.get(table), dict) else None
        if pattern is None:
            continue
        try:
            fields = [f for _, f, _, _ in string.Formatter().parse(str(pattern)) if f is not None]
        except ValueError as e:
            bad.append(f"[{table}] pattern {pattern!r} is not a valid pattern ({e}): write braces only around run, "
                       "e.g. {run:03d}")
            continue
        unknown = [f for f in fields if f not in ("run", "run_id")]
        if unknown:
            bad.append(f"[{table}] pattern {pattern!r} has the fields {unknown}: only {{run}} (the run id, e.g. "
                       "{run:03d}) and {run_id} are known")
        elif not fields:
            bad.append(f"[{table}] pattern {pattern!r} has no {{run}} field, so every run would read the same file: "
                       "write the run id into it, e.g. \"runs/CCTM_ELMO_run{run:03d}.nc\"")
    d = raw.get("design", {})
    if ("low" in d) != ("high" in d):
        bad.append("[design] has only one of low/high: give both (the design box) or neither")
    elif "low" in d:
        lo, hi = d["low"], d["high"]
        if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (lo, hi)) or not 0 <= lo < hi:
            bad.append(f"[design] low = {lo!r}, high = {hi!r}: the design box needs numbers with 0 <= low < high")
    spec = raw.get("outputs", {}).get("components")
    if isinstance(spec, str) and spec not in VOCABULARIES:
        bad.append(f"[outputs] components = {spec!r} is not a known vocabulary{_did_you_mean(spec, VOCABULARIES)}: "
                   f"use one of {VOCABULARIES} or a table {{SO4 = \"PM25_SO4\", ...}}")
    if bad:
        raise CTMFileError(path, "; ".join(bad))


def format_run_path(root: Path, pattern: str, label, *, config: str | os.PathLike | None = None,
                    table: str = "outputs") -> Path:
    """The path of run `label` from a pattern (`{run}` is the label, formatted with the pattern's spec).

    A pattern that cannot format the label raises `ValueError`, or `CTMFileError` naming the `config` file and
    its `[table]` when `config` is given."""
    try:
        p = Path(pattern.format(run=label, run_id=str(label)))
    except (KeyError, IndexError) as e:
        msg = f"pattern {pattern!r} has the field {e}: only {{run}} and {{run_id}} are known"
    except (ValueError, TypeError) as e:
        msg = (f"pattern {pattern!r} cannot format run id {label!r} ({e}); ids that are not integers need a pattern "
               "without an integer format, e.g. {run} instead of {run:03d}")
    else:
        return p if p.is_absolute() else root / p
    if config is not None:
        raise CTMFileError(config, f"[{table}] {msg}")
    raise ValueError(msg)


def _pattern_glob(root: Path, pattern: str) -> str:
    """A glob matching every path the pattern can produce (each `{run}`/`{run_id}` field becomes `*`)."""
    parts = []
    for literal, field, _, _ in string.Formatter().parse(pattern):
        parts.append(glob.escape(literal))
        if field is not None:
            if field not in ("run", "run_id"):
                raise ValueError(f"pattern {pattern!r} has the field {{{field}}}: only {{run}} and {{run_id}} are known")
            parts.append("*")
    g = "".join(parts)
    return g if Path(g).is_absolute() else os.path.join(glob.escape(str(root)), g)


def _unclaimed_files(root: Path, pattern: str, expected: Sequence[Path]) -> list[str]:
    g = _pattern_glob(root, pattern)
    want = {os.path.normpath(str(p)) for p in expected}
    found = sorted(os.path.normpath(p) for p in glob.glob(g) if not os.path.basename(p).startswith("."))
    return [p for p in found if p not in want]


def _check_ids(design: xr.DataArray, where) -> None:
    ids = [str(r) for r in design["run"].values]
    dup = sorted({i for i in ids if ids.count(i) > 1})
    if dup:
        raise CTMFileError(where, f"run ids {dup} appear more than once: ids are labels and must be unique")


# ---------------------------------------------------------------------------------------------- outputs
@dataclasses.dataclass
class _Problems:
    """Problems found while reading, in order. The same problem in many runs (a vocabulary that does not fit the
    files, a whole array job lost) is listed for the first `SHOW_SAME` runs with their files, then once with the
    ids of the others, instead of once per run."""

    SHOW_SAME: ClassVar[int] = 3
    per_run: dict[str, list[tuple[Any, Path]]] = dataclasses.field(default_factory=dict)
    order: list[tuple[str, str | None]] = dataclasses.field(default_factory=list)

    def add(self, run, path, msg: str) -> None:
        if msg not in self.per_run:
            self.per_run[msg] = []
            self.order.append(("run", msg))
        self.per_run[msg].append((run, path))

    def note(self, msg: str) -> None:
        """A problem that belongs to no run (e.g. a file no run id claims)."""
        self.order.append(("general", msg))

    @property
    def items(self) -> list[str]:
        out = []
        for kind, msg in self.order:
            if kind == "general":
                out.append(msg)
                continue
            runs = self.per_run[msg]
            out += [f"run {r} ({p}): {msg}" for r, p in runs[: self.SHOW_SAME]]
            rest = runs[self.SHOW_SAME:]
            if rest:
                ids = ", ".join(str(r) for r, _ in rest[:20]) + (f" and {len(rest) - 20} more" if len(rest) > 20 else "")
                out.append(f"the same in {len(rest)} more run(s): {ids}")
        return out


def _surface_mean(da: xr.DataArray, layer: int = 0) -> tuple[xr.DataArray, int]:
    n = 1
    for d in _TIME_DIMS:
        if d in da.dims:
            n = da.sizes[d]
            da = da.mean(d)
    for d in _LAYER_DIMS:
        if d in da.dims:
            da = da.isel({d: layer})
    return da, n




def _read_checked(labels, paths, read, fmt: str, mgrid: dict, masks: xr.DataArray, problems, missing: str):
    """Yield `(run id, path, read(path))` for every run whose file exists, reads and lies on the masks' grid (the
    grid is the last item `read` returns); every other run goes into `problems` with its id and file."""
    for r, p in zip(labels, paths, strict=True):
        if not p.exists():
            problems.add(r, p, missing)
            continue
        try:
            res = read(p)
        except (CTMFileError, ValueError, OSError, KeyError) as e:
            problems.add(r, p, str(e.problem if isinstance(e, CTMFileError) else e) + _format_hint(p, fmt))
            continue
        mis = _grid_mismatch(mgrid, res[-1])
        if mis:
            problems.add(r, p, f"grid does not match the masks' grid ({masks.attrs['source_file']}): {mis}")
            continue
        yield r, p, res


def _read_run_fields(path: Path, fmt: str, cmap_spec, om_oc: float, layer: int):
    """Read one run: (fields[component, ROW, COL], n_records, ComponentMap, grid)."""
    ds = _open_gridded(path, fmt)
    cmap = resolve_components(cmap_spec, [str(v) for v in ds.data_vars], om_oc=om_oc)
    for v in cmap.variables:
        u = str(ds[v].attrs.get("units", "")).strip()
        if u and u not in CONC_UNITS:
            raise CTMFileError(path, f"variable {v} has units {u!r}, not ug m-3: convert it (GEOS-Chem: use the "
                                     "AerosolMass collection or convert SpeciesConc mixing ratios) first")
    raw, n_rec = {}, None
    for v in cmap.variables:
        a = ds[v].load()
        vals = a.values
        if not np.all(np.isfinite(vals)):
            raise CTMFileError(path, f"variable {v} has {int((~np.isfinite(vals)).sum())} NaN/inf values (of "
                                     f"{vals.size}): fill them in the file first (products scaled by satellite "
                                     "data are often NaN over the sea); the reader does not guess a value, which "
                                     "would change the receptor means")
        if vals.min() < 0:
            raise CTMFileError(path, f"variable {v} has negative concentrations (min {vals.min():g})")
        m, n = _surface_mean(a.astype(np.float64), layer)
        if set(m.dims) != {"ROW", "COL"}:
            raise CTMFileError(path, f"variable {v} has dims {a.dims}: expected (time, layer, ROW, COL)")
        raw[v] = m.transpose("ROW", "COL").drop_vars(list(m.coords))
        n_rec = n if n_rec is None else min(n_rec, n)
    fields = xr.concat([sum(w * raw[v] for v, w in cmap.terms[c]) for c in cmap.components], dim="component")
    fields = fields.assign_coords(component=list(cmap.components))
    return fields, int(n_rec or 1), cmap, _grid_of(ds)


def _read_adjoint(path: Path, fmt: str, smap: Mapping[str, str]) -> tuple[xr.DataArray, dict]:
    ds = _open_gridded(path, fmt)
    missing = [v for v in smap.values() if v not in ds.data_vars]
    if missing:
        raise CTMFileError(path, f"adjoint variables {missing} not in the file (it has {list(ds.data_vars)})")
    fields = []
    for s, v in smap.items():
        a = ds[v].load().astype(np.float64)
        if not np.all(np.isfinite(a.values)):
            raise CTMFileError(path, f"adjoint variable {v} has NaN/inf values")
        for d in _TIME_DIMS:  # a factor constant in time: sensitivities of the records add up
            if d in a.dims:
                a = a.sum(d)
        lay = next((d for d in _LAYER_DIMS if d in a.dims), None)
        a = a.expand_dims(level=[0]) if lay is None else a.rename({lay: "level"})
        fields.append(a.drop_vars(list(a.coords)).transpose("level", "ROW", "COL"))
    return xr.concat(fields, dim="species").assign_coords(species=list(smap)), _grid_of(ds)


# ---------------------------------------------------------------------------------------------- the folder
@dataclasses.dataclass
class RunFolder:
    """A read run folder (from `read_run_folder`).

    **Fields**

    - `runs`: the source-level run set, `scale[run, source, species]` (run-id labels, `split` coord, design box
      as `low`/`high` when `runs.toml` gives it) and `pm25[run, receptor, component]` (ug m-3,
      population-weighted receptor means when population is given); attrs record the vocabulary, OM/OC
      factor, component definitions and the files.
    - `adjoints`: `None`, or the adjoint states: `scale[run, source, species]`, `sensitivity[run, source,
      species]` ($\\partial J/\\partial s$) and `cost_weights[component, receptor]` (the linear cost
      $J = \\sum w \\odot y$ the adjoints were run for), as `surrogate.gradient_agreement` takes them.
    - `config`: the parsed `runs.toml`; `masks`, `population`, `emissions` (base, `[species, level, ROW, COL]`,
      `None` when the folder has none); `fields`: per-run component fields `[run, component, ROW, COL]`.
    """

    runs: xr.Dataset
    adjoints: xr.Dataset | None
    config: RunFolderConfig
    masks: xr.DataArray
    population: xr.DataArray | None
    emissions: xr.DataArray | None
    fields: xr.DataArray
    components: ComponentMap

    def split(self, name: str) -> xr.Dataset:
        """The runs of one split (`"train"`, `"test"`, ...), with adjoint sensitivities attached to the runs
        that are also adjoint states (same id and same factors; NaN for the others) so `surrogate.fit` can use
        them."""
        if "split" not in self.runs.coords:
            raise ValueError(f"{self.config.path}: the design table {self.runs.attrs.get('design_file', '')} has no "
                             f"split column, so there is no split {name!r}: add a column `split` (e.g. train/test) "
                             "to it, a value per run")
        names = sorted(set(self.runs["split"].values.tolist()))
        if name not in names:
            raise ValueError(f"{self.config.path}: no runs in split {name!r} (splits: {names})")
        out = self.runs.isel(run=np.flatnonzero(self.runs["split"].values == name))
        return self._with_sensitivity(out)

    def _with_sensitivity(self, out: xr.Dataset) -> xr.Dataset:
        if self.adjoints is None:
            return out
        states = set(self.adjoints["run"].values.tolist())
        # a state is the adjoint of a forward run when it has the run's id AND the run's factors
        common = [r for r in out["run"].values.tolist() if r in states and np.allclose(
            self.adjoints["scale"].sel(run=r).values, out["scale"].sel(run=r).values, rtol=0, atol=1e-12)]
        if not common:
            return out
        sens = self.adjoints["sensitivity"].sel(run=common).reindex(run=out["run"].values)
        out = out.assign(sensitivity=sens.drop_vars([c for c in sens.coords if c not in ("run", "source", "species")]),
                         cost_weights=self.adjoints["cost_weights"])  # fmt: skip
        return out

    def gridded(self, split: str | None = None) -> xr.Dataset:
        """The gridded run set for `surrogate.GriddedEmulator`: `emissions[run, species, level, row, col]`
        (the base emissions scaled by the design through the region masks, as DESID applies them) and
        `conc[run, component, row, col]` (surface, time-mean), plus `base_emissions[species, level, row, col]`
        and `base_conc[component, row, col]` (the base run, or an estimate when the folder has no base run:
        see `base_case`)."""
        if self.emissions is None:
            raise ValueError(f"{self.config.path}: gridded run sets need base emissions ([emissions] file)")
        runs = self.runs if split is None else self.split(split)
        scale = runs["scale"]
        E = desid_emissions(self.emissions, self.masks, scale)
        conc = self.fields.sel(run=runs["run"].values)
        ds = xr.Dataset(
            {"emissions": E.rename(ROW="row", COL="col"), "conc": conc.rename(ROW="row", COL="col")},
        )
        ds = ds.assign_coords(run=runs["run"].values)
        ds["emissions"].attrs = {"units": self.emissions.attrs.get("units", ""), "long_name": "gridded emissions"}
        ds["conc"].attrs = {"units": "ug m-3", "long_name": "surface time-mean PM2.5 components"}
        x_ref, base, how = base_case(self.runs["scale"], self.fields)
        ds["base_emissions"] = self.emissions.rename(ROW="row", COL="col").drop_vars(["species", "level"]).assign_coords(
            species=E["species"].values, level=E["level"].values)  # fmt: skip
        ds["base_conc"] = base.rename(ROW="row", COL="col")
        ds.attrs = {**self.runs.attrs, "base_case": how}
        return ds


def base_case(scale: xr.DataArray, fields: xr.DataArray) -> tuple[xr.DataArray, xr.DataArray, str]:
    """The base case (all factors 1): the run at it when the design has one (`how = "run <id>"`); else the
    intercept-plus-slope least-squares (minimum-norm) fit per cell of the fields on the factors, evaluated at 1
    (`how = "estimated ..."`). **Returns** `(x_ref, base_fields, how)` with `x_ref` the all-ones factors."""
    ones = xr.ones_like(scale.isel(run=0, drop=True))
    x = scale.values.reshape(scale.sizes["run"], -1)
    hit = np.flatnonzero(np.all(np.isclose(x, 1.0, rtol=0, atol=1e-12), axis=1))
    f = fields.sel(run=scale["run"].values)
    if hit.size:
        return ones, f.isel(run=int(hit[0]), drop=True), f"run {scale['run'].values[hit[0]]}"
    X = np.concatenate([np.ones((x.shape[0], 1)), x - 1.0], axis=1)
    coef, *_ = np.linalg.lstsq(X, f.values.reshape(x.shape[0], -1), rcond=None)
    est = np.maximum(coef[0], 0.0).reshape(f.shape[1:])
    return ones, xr.DataArray(est, dims=f.dims[1:], coords={k: v for k, v in f.coords.items() if k != "run" and set(f[k].dims) <= set(f.dims[1:])}), (
        f"estimated: no run at all factors 1; least-squares fit over {x.shape[0]} runs evaluated at 1")


def _cost_weights(cost, cfg: RunFolderConfig, components, receptors, mw_sum: np.ndarray) -> xr.DataArray:
    shape = (len(components), len(receptors))
    coords = {"component": list(components), "receptor": list(receptors)}
    if isinstance(cost, str) and cost == "population_weighted_pm25":
        w = np.broadcast_to(mw_sum / mw_sum.sum(), shape).copy()
        desc = "population-weighted PM2.5 over the receptor regions: J = sum(m p PM) / sum(m p), m = sum of masks"
    elif isinstance(cost, str) and cost.startswith("regional:"):
        r = cost.split(":", 1)[1]
        if r not in receptors:
            raise CTMFileError(cfg.path, f"[adjoints] cost = {cost!r}: no receptor {r!r} (receptors: {list(receptors)})")
        w = np.zeros(shape)
        w[:, list(receptors).index(r)] = 1.0
        desc = f"population-weighted PM2.5 of receptor {r}"
    elif isinstance(cost, str):
        p = Path(cost) if Path(cost).is_absolute() else cfg.root / cost
        if not p.exists():
            raise CTMFileError(cfg.path, f"[adjoints] cost = {cost!r}: not 'population_weighted_pm25', "
                                         "'regional:<receptor>' or an existing cost-weights netCDF file")
        with xr.open_dataset(p) as ds:
            if "cost_weights" not in ds:
                raise CTMFileError(p, "no variable cost_weights[component, receptor]")
            cw = ds["cost_weights"].load()
        try:
            return cw.sel(component=list(components), receptor=list(receptors)).transpose("component", "receptor")
        except KeyError as e:
            raise CTMFileError(p, f"cost_weights lacks components/receptors of the run set ({e})") from e
    else:
        raise CTMFileError(cfg.path, f"[adjoints] cost must be a string, got {cost!r}")
    return xr.DataArray(w, dims=("component", "receptor"), coords=coords, name="cost_weights",
                        attrs={"units": "1", "cost": str(cost), "description": desc})


def _scan(config: str | os.PathLike | RunFolderConfig):
    """Read a folder, collecting every problem instead of stopping at the first."""
    cfg = config if isinstance(config, RunFolderConfig) else read_runs_toml(config)
    problems = _Problems()
    d = cfg.raw["design"]
    design = read_design(cfg.file("design"), run=d.get("run", "run"), low=d.get("low"), high=d.get("high"))
    _check_ids(design, cfg.file("design"))
    out_t = cfg.raw["outputs"]
    fmt = out_t.get("format", "ioapi")
    spec = out_t.get("components", {"ioapi": "cmaq-elmo"}.get(fmt, "geoschem"))
    om_oc = float(out_t.get("om_oc", DEFAULT_OM_OC))
    layer = int(out_t.get("layer", 0))
    reg = cfg.raw.get("regions", {})
    masks = read_region_masks(cfg.file("regions", "masks"), variables=reg.get("variables"))
    mgrid = _decode_grid(masks.attrs["_grid"])
    lack = [str(s) for s in design["source"].values if s not in masks["region"].values]
    if lack:
        raise CTMFileError(cfg.file("regions", "masks"), f"design regions {lack} have no mask variable "
                                                           f"(masks: {list(masks['region'].values)})")
    receptors = list(reg.get("receptors", masks["region"].values.tolist()))
    rmask = masks.sel(region=receptors).rename(region="receptor")
    pop = None
    if "population" in cfg.raw:
        pop = read_population(cfg.file("population"), variable=cfg.get("population", "variable"))
        if pop.shape != masks.shape[1:]:
            raise CTMFileError(pop.attrs["source_file"], f"population grid {pop.shape} differs from the masks' {masks.shape[1:]}")
        mis = _grid_mismatch(mgrid, _decode_grid(pop.attrs["_grid"]))
        if mis:  # same shape on another grid (shifted, other projection): the weights would land in other cells
            raise CTMFileError(pop.attrs["source_file"], f"population grid does not match the masks' grid "
                                                         f"({masks.attrs['source_file']}): {mis}")
    emis = None
    smap = cfg.get("emissions", "species") or {s: s for s in design["species"].values}
    if "emissions" in cfg.raw:
        emis = read_emissions(cfg.file("emissions"), smap, levels=cfg.get("emissions", "levels"))
        if emis.shape[2:] != masks.shape[1:]:
            raise CTMFileError(emis.attrs["source_file"], f"emission grid {emis.shape[2:]} differs from the masks' {masks.shape[1:]}")
        lack = [str(s) for s in design["species"].values if s not in emis["species"].values]
        if lack:
            raise CTMFileError(cfg.path, f"design species {lack} (in {cfg.file('design')}) are not in [emissions] "
                                         f"species {list(map(str, emis['species'].values))}: fix the species name in "
                                         "the design, or map it to a file variable in [emissions] species")

    # forward runs
    pattern = out_t["pattern"]
    labels = design["run"].values.tolist()
    paths = [format_run_path(cfg.root, pattern, r, config=cfg.path) for r in labels]
    for p in _unclaimed_files(cfg.root, pattern, paths):
        problems.note(f"file {p} matches [outputs] pattern {pattern!r} but no run id of the design "
                              f"{cfg.file('design')}: add its row to the design or move the file away")
    fields, nrec, good, cmap = {}, {}, [], None
    read = functools.partial(_read_run_fields, fmt=fmt, cmap_spec=spec, om_oc=om_oc, layer=layer)
    for r, p, (f, n, cm, _) in _read_checked(labels, paths, read, fmt, mgrid, masks, problems,
                                             "no output file for this design run id"):
        if cmap is not None and cm.describe() != cmap.describe():
            problems.add(r, p, f"components resolve differently from the first run ({cm.describe()} vs {cmap.describe()})")
            continue
        cmap = cmap or cm
        fields[r], nrec[r] = f, n
        good.append(r)
    if nrec:
        most = max(nrec.values())
        for r in good:
            if nrec[r] < most:
                problems.add(r, paths[labels.index(r)], f"has {nrec[r]} time records, the other runs up to {most}: "
                                                        "the run probably stopped early; rerun it")
    # aggregation: receptor means of mask fraction x weight (population, or cell area) by the one region kernel
    fractions = rmask.rename(receptor="region").transpose("region", "ROW", "COL")
    weights = pop
    weighting = "population" if pop is not None else "area (mask fractions)"
    if pop is None and mgrid["kind"] == "cf" and mgrid.get("lat") is not None:
        # cells of a regular lat-lon grid shrink towards the poles: area weights are cos(latitude), not 1 each
        coslat = np.cos(np.deg2rad(np.asarray(mgrid["lat"], np.float64)))
        weights = xr.DataArray(np.broadcast_to(coslat[:, None], fractions.shape[1:]), dims=("ROW", "COL"))
        weighting = "area (mask fractions x cos(latitude))"
    norm = region_kernel(np.ones(fractions.shape[1:]), fractions.values,
                         None if weights is None else weights.transpose("ROW", "COL").values)  # fmt: skip
    empty = [str(r) for r, v in zip(receptors, norm, strict=True) if not v > 0]
    if empty:
        raise CTMFileError(masks.attrs["source_file"], f"receptors {empty} have zero total mask (x population) weight")
    result = {"config": cfg, "design": design, "masks": masks, "population": pop, "weighting": weighting,
              "emissions": emis, "components": cmap, "n_records": nrec, "paths": dict(zip(labels, paths, strict=True))}  # fmt: skip
    if good:
        stack = xr.concat([fields[r] for r in good], dim="run").assign_coords(run=design.sel(run=good)["run"].values)
        pm25 = aggregate_to_regions(stack, fractions, weights=weights, how="mean").rename(region="receptor")
        pm25 = pm25.transpose("run", "receptor", "component")
        pm25.attrs = {"units": "ug m-3", "long_name": "receptor-mean surface PM2.5 component",
                      "aggregation": "mask x population weighted mean" if pop is not None else f"mask-weighted mean, {weighting}"}
        result.update(stack=stack, pm25=pm25, good=good)
    # adjoints
    if "adjoints" in cfg.raw:
        result.update(_scan_adjoints(cfg, masks, mgrid, emis, smap, receptors, norm, cmap, problems))
    result["problems"] = problems.items
    return result


def _scan_adjoints(cfg, masks, mgrid, emis, smap, receptors, mw_sum, cmap, problems) -> dict:
    """The adjoint states; `mw_sum[receptor]` is each receptor's total mask x weight (the forward means')."""
    a = cfg.raw["adjoints"]
    for key in ("design", "pattern"):
        if key not in a:
            raise CTMFileError(cfg.path, f"[adjoints] {key} is missing")
    kind = a.get("kind", "scaling_factor")
    if kind not in ("scaling_factor", "emissions"):
        raise CTMFileError(cfg.path, f"[adjoints] kind = {kind!r}: use 'scaling_factor' (ADJ_LGRID_EM_SF) or 'emissions' (ADJ_LGRID_EM)")
    if kind == "emissions" and emis is None:
        raise CTMFileError(cfg.path, "[adjoints] kind = 'emissions' needs the base emissions ([emissions] file)")
    if "cost" not in a:
        raise CTMFileError(cfg.path, "[adjoints] cost is missing: state the cost J the adjoints were run for")
    dfile = cfg.file("adjoints", "design")
    adesign = read_design(dfile, run=a.get("run", cfg.raw["design"].get("run", "run")))
    _check_ids(adesign, dfile)
    fmt = a.get("format", cfg.raw["outputs"].get("format", "ioapi"))
    asmap = a.get("species", smap)
    labels = adesign["run"].values.tolist()
    paths = [format_run_path(cfg.root, a["pattern"], r, config=cfg.path, table="adjoints") for r in labels]
    for p in _unclaimed_files(cfg.root, a["pattern"], paths):
        problems.note(f"adjoint file {p} matches [adjoints] pattern {a['pattern']!r} but its state has no "
                              f"factors in the adjoint design {dfile}: add the state's rows or move the file away")
    m = masks.sel(region=[str(s) for s in adesign["source"].values])
    sens, good = [], []
    read = functools.partial(_read_adjoint, fmt=fmt, smap={s: asmap[s] for s in adesign["species"].values})
    for r, p, (f, _) in _read_checked(labels, paths, read, fmt, mgrid, masks, problems,
                                      f"no adjoint file for this state of {dfile.name}"):
        if kind == "emissions":
            if f.sizes["level"] != emis.sizes["level"]:
                problems.add(r, p, f"{f.sizes['level']} layers, base emissions {emis.sizes['level']}")
                continue
            f = f * emis.sel(species=f["species"].values).values
        s = aggregate_to_regions(f.sum("level"), m, how="sum")
        sens.append(s.rename(region="source").transpose("source", "species"))
        good.append(r)
    out: dict = {"adjoint_design": adesign}
    if not good:
        return out
    comps = list(cmap.components) if cmap is not None else None
    ds = xr.Dataset({"scale": adesign.sel(run=good)})
    ds["sensitivity"] = xr.concat(sens, dim="run").assign_coords(run=ds["run"].values, source=ds["source"].values,
                                                                species=ds["species"].values)  # fmt: skip
    ds["sensitivity"].attrs = {"units": "cost units", "kind": kind,
                               "long_name": "dJ/d scale: adjoint fields summed over layers and cells by the masks"}
    if comps is not None:
        ds["cost_weights"] = _cost_weights(a["cost"], cfg, comps, receptors, mw_sum)
    ds.attrs = {"cost": str(a["cost"]), "adjoint_kind": kind, "adjoint_design": str(dfile), "adjoint_pattern": str(a["pattern"])}
    out["adjoints"] = ds
    return out


def _raise_problems(cfg: RunFolderConfig, problems: list[str]) -> None:
    if problems:
        head = f"{len(problems)} problem(s) reading the run folder:\n  - "
        raise CTMFileError(cfg.path, head + "\n  - ".join(problems))


def read_run_folder(path: str | os.PathLike) -> RunFolder:
    """Read a run folder described by `runs.toml` into the run sets `surrogate` fits on.

    **Arguments**: `path`, the `runs.toml` (relative paths in it are relative to its folder).

    **Returns** a `RunFolder`: `.runs` (`scale[run, source, species]`, `pm25[run, receptor, component]`),
    `.split("train")`, `.adjoints` (`scale`, `sensitivity`, `cost_weights`), `.gridded()`.

    Raises `CTMFileError` listing every problem, each with the run id and the file: duplicated run ids, a
    design run id without its file, files matching the pattern but no design id, grids differing from the
    masks', NaN/inf values, negative concentrations, runs with fewer time records than the others, adjoint
    files whose states have no factors in the adjoint design.
    """
    res = _scan(path)
    cfg = res["config"]
    _raise_problems(cfg, res["problems"])
    if "pm25" not in res:
        raise CTMFileError(cfg.path, "no run could be read")
    design, cmap = res["design"], res["components"]
    ds = xr.Dataset({"scale": design, "pm25": res["pm25"]})
    ds.attrs = {
        **cmap.attrs(),
        "runs_toml": str(cfg.path),
        "design_file": str(cfg.file("design")),
        "output_pattern": str(cfg.raw["outputs"]["pattern"]),
        "output_format": str(cfg.raw["outputs"].get("format", "ioapi")),
        "weighting": res["weighting"],
        "n_records": int(max(res["n_records"].values())),
        "design_box": "runs.toml [design] low/high" if "low" in design.coords else "none given (surrogate.fit uses the "
                      "training design's range)",
    }  # fmt: skip
    return RunFolder(runs=ds, adjoints=res.get("adjoints"), config=cfg, masks=res["masks"], population=res["population"],
                     emissions=res["emissions"], fields=res["stack"], components=cmap)  # fmt: skip


def check_run_folder(path: str | os.PathLike) -> dict:
    """What `diffmrio runs check` reports: counts per split, the design envelope, components, records, the
    adjoint states, and every problem (each with run id and file). Never raises for problems in the runs
    (a broken `runs.toml`, design or mask file still raises)."""
    res = _scan(path)
    design = res["design"]
    splits = (pd.Series(design["split"].values).value_counts().to_dict() if "split" in design.coords else {"(none)": design.sizes["run"]})
    rep = {
        "runs_toml": str(res["config"].path),
        "n_runs_design": int(design.sizes["run"]),
        "n_runs_read": len(res.get("good", [])),
        "splits": {str(k): int(v) for k, v in splits.items()},
        "sources": [str(s) for s in design["source"].values],
        "species": [str(s) for s in design["species"].values],
        "envelope": {"min": float(design.min()), "max": float(design.max()),
                     "low": float(design["low"].min()) if "low" in design.coords else None,
                     "high": float(design["high"].max()) if "high" in design.coords else None},
        "components": res["components"].describe() if res["components"] is not None else None,
        "vocabulary": res["components"].name if res["components"] is not None else None,
        "records": sorted(set(res["n_records"].values())),
        "population": res["population"] is not None,
        "adjoint_states": int(res["adjoints"].sizes["run"]) if res.get("adjoints") is not None else 0,
        "problems": list(res["problems"]),
    }  # fmt: skip
    return rep
