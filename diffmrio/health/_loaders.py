"""Loaders for real health inputs given as paths, returning the package's own types.

File layouts (those of the project's shared data folder, `health_2015/` and `china_0p1deg/`):
- gridded tables: CSV (optionally .gz) with cell-centre columns `x` (lon) and `y` (lat) plus value columns
  (population `base2015`, ...; PM2.5 `2015`, ...; labels `Country`, `Province`, ...);
- GBD baseline mortality, long: `Country, endpoint, agegroup, <scenario column>` (rate per 100,000);
- GBD age structure, long: `Country, agegroup, <scenario column>` (population share, sums to 1 per country);
- GBD China tables, wide: `year, endpoint, 0, 5, ..., 95` (per 100,000) and `year, 0, 5, ..., 95` (persons);
- IER draws: `sim, cause, age, alpha, beta (= gamma), delta, zcf` (`age` "All Age"/"AllAge" or a lower bound);
- annual PM2.5 netCDF with `lat`, `lon` (and a length-1 `time`).

All errors name the file and say what to fix. File parsing happens outside `jit`.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr
from jaxtyping import Float, Float64, Int

from ctm_interface._callers import user_stacklevel
from ctm_interface._vocabulary import CONC_UNITS

from .._io import load_netcdf
from ._crf import (
    FIVE_CAUSES,
    GBD_AGES,
    IERDraws,
    _as_ages,
    _canonical_causes,
    canonical_cause,
    ier_default_applies,
)
from ._exposure import HealthInputs

__all__ = [
    "load_gridded_field",
    "load_gridded_population",
    "load_grid_regions",
    "load_gbd_baseline_mortality",
    "load_gbd_age_structure",
    "load_gbd_china_mortality",
    "load_gbd_china_population_by_age",
    "load_ier_draws",
    "load_pm25_netcdf",
    "build_health_inputs",
]

PER_100K = 1e-5

#: inputs of one health calculation whose years differ by more than this many years get a warning
YEAR_TOLERANCE = 2

# a year 1800-2199 that is not part of a longer number (`base2015`, `SSP1-Baseline_2030`, `pm25_2015.nc`)
_YEAR = re.compile(r"(?<!\d)(1[89]\d\d|2[01]\d\d)(?!\d)")


def _year_in(text) -> int | None:
    """The one year written in `text` (a column or file name); None if there is none or several."""
    years = {int(y) for y in _YEAR.findall(str(text))}
    return years.pop() if len(years) == 1 else None


def _mark_year(da: xr.DataArray, p: Path, column: str | None = None) -> xr.DataArray:
    """Record in `da.attrs` the year of the data (`year`) and where it was read (`year_from`): the value
    column's name, else the file's name; nothing when neither names one year."""
    for text, where in ((column, f"column {column!r}"), (p.name, "file name")):
        year = _year_in(text) if text is not None else None
        if year is not None:
            da.attrs.update({"year": year, "year_from": where})
            break
    return da


def _described_year(name: str, da: xr.DataArray) -> str:
    return f"{name} {da.attrs['year']} ({Path(str(da.attrs.get('source', '?'))).name}, {da.attrs['year_from']})"


def _warn_years_apart(reference: tuple[str, xr.DataArray], *others: tuple[str, xr.DataArray],
                      tolerance: int = YEAR_TOLERANCE) -> None:
    """Warn (naming the files, years and where each year was read) when an input of a health calculation is
    for a year more than `tolerance` years from the `reference` input's; inputs without a known year
    (`attrs["year"]`, set by the loaders) are not compared."""
    name, ref = reference
    if "year" not in ref.attrs:
        return
    apart = [(n, da) for n, da in others if "year" in da.attrs
             and abs(int(da.attrs["year"]) - int(ref.attrs["year"])) > tolerance]
    if apart:
        warnings.warn(
            f"the health inputs are for different years: {_described_year(name, ref)} but "
            + ", ".join(_described_year(n, da) for n, da in apart)
            + f" (more than {tolerance} years apart): the deaths would combine one year's population, PM2.5 "
            "or rates with another's. Pass the columns or files of one year (`diffmrio health "
            "--population-column/--mortality-column/--ages-column`), or ignore this warning if the mix is "
            "intended (e.g. a future scenario's PM2.5 on today's population)",
            UserWarning, stacklevel=user_stacklevel("diffmrio"))


def _path(path) -> Path:
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"{p}: no such file; pass the path to an existing file")
    return p


def _read_csv(path, required: Sequence[str], layout: str) -> pd.DataFrame:
    p = _path(path)
    try:
        df = pd.read_csv(p, encoding="utf-8-sig")
    except Exception as e:  # noqa: BLE001 - re-raised with the file named
        raise ValueError(f"{p}: could not be read as CSV ({e}); expected layout: {layout}") from e
    df.columns = [str(c).strip() for c in df.columns]
    missing = [c for c in required if c not in df.columns]
    if missing:
        raise ValueError(
            f"{p}: missing column(s) {missing}; it has {list(df.columns)}. Expected layout: {layout}"
        )
    return df


def _check_values(
    p, df: pd.DataFrame, column: str, keys: Sequence[str], *, nonneg: bool = True
) -> Float64[np.ndarray, " row"]:
    v = pd.to_numeric(df[column], errors="coerce").to_numpy(dtype=np.float64)
    bad = ~np.isfinite(v)
    if bad.any():
        rows = df.loc[bad, list(keys)].head(5).to_dict("records")
        raise ValueError(f"{p}: column {column!r} has {int(bad.sum())} missing/NaN/non-numeric value(s), e.g. at "
                         f"{rows}; fill or remove those rows")
    if nonneg and (v < 0).any():
        rows = df.loc[v < 0, list(keys)].head(5).to_dict("records")
        raise ValueError(f"{p}: column {column!r} has negative values, e.g. at {rows}; they must be >= 0")
    dup = df.duplicated(list(keys))
    if dup.any():
        raise ValueError(f"{p}: duplicated {list(keys)} rows, e.g. {df.loc[dup, list(keys)].head(3).to_dict('records')};"
                         f" keep one row per key")
    return v


# ----------------------------------------------------------------------------------------------------- grids


def _axis(values: Float64[np.ndarray, " cell"], p, name: str) -> tuple[float, float, int]:
    u = np.unique(values)
    if len(u) == 1:
        raise ValueError(f"{p}: all cells share one {name} value; cannot infer the grid spacing")
    step = float(np.min(np.diff(u)))
    k = (u - u[0]) / step
    if np.max(np.abs(k - np.round(k))) > 1e-3:
        raise ValueError(f"{p}: {name} values are not on a regular grid of spacing {step:g}; regrid the table first")
    return float(u[0]), step, int(np.round(k[-1])) + 1


def _grid_indices(
    df: pd.DataFrame, p, like: xr.DataArray | None
) -> tuple[
    Float64[np.ndarray, " lat"], Float64[np.ndarray, " lon"], Int[np.ndarray, " cell"], Int[np.ndarray, " cell"]
]:
    x = df["x"].to_numpy(dtype=np.float64)
    y = df["y"].to_numpy(dtype=np.float64)
    if not (np.isfinite(x).all() and np.isfinite(y).all()):
        raise ValueError(f"{p}: NaN in the `x`/`y` cell-centre columns; remove those rows")
    if like is None:
        x0, dx, nx = _axis(x, p, "x (lon)")
        y0, dy, ny = _axis(y, p, "y (lat)")
        lon = x0 + dx * np.arange(nx)
        lat = (y0 + dy * np.arange(ny))[::-1]  # north first, as in the GEOS-Chem files
    else:
        if "lat" not in like.coords or "lon" not in like.coords:
            raise ValueError("`like` must have `lat` and `lon` coordinates")
        lat = like["lat"].values.astype(np.float64)
        lon = like["lon"].values.astype(np.float64)
    ix = _nearest(lon, x, p, "x (lon)")
    iy = _nearest(lat, y, p, "y (lat)")
    flat = iy * len(lon) + ix
    if len(np.unique(flat)) != len(flat):
        raise ValueError(f"{p}: several rows fall on the same grid cell; keep one row per (x, y)")
    return lat, lon, iy, ix


def _nearest(
    axis: Float64[np.ndarray, " grid"], v: Float64[np.ndarray, " cell"], p, name: str
) -> Int[np.ndarray, " cell"]:
    order = np.argsort(axis)
    a = axis[order]
    pos = np.clip(np.searchsorted(a, v), 1, len(a) - 1)
    left, right = a[pos - 1], a[pos]
    pick = np.where(np.abs(v - left) <= np.abs(v - right), pos - 1, pos)
    step = np.min(np.diff(a)) if len(a) > 1 else 1.0
    off = np.abs(a[pick] - v) > 0.25 * step
    if off.any():
        raise ValueError(f"{p}: {int(off.sum())} cell centre(s) with {name} like {v[off][:3]} are not on the target "
                         f"grid; pass a `like` grid that contains them (or none, to infer the grid)")
    return order[pick]


def load_gridded_field(
    path,
    column: str,
    *,
    like: xr.DataArray | None = None,
    fill_value: float = np.nan,
    name: str | None = None,
    nonneg: bool = True,
) -> xr.DataArray:
    """A numeric column of a gridded CSV table (`x`, `y`, columns...) as a `(lat, lon)` DataArray.

    **Arguments:** `path`; `column` (e.g. `"base2015"`, `"2015"`); `like`: a DataArray whose `lat`/`lon` define
    the target grid (default: the regular grid inferred from the points, latitude north first);
    `fill_value` for cells absent from the table; `nonneg`: reject negative values.

    **Returns:** `DataArray[lat, lon]` (float64).
    """
    df = _read_csv(path, ["x", "y", column], "x (lon), y (lat), value columns, one row per cell")
    p = _path(path)
    v = _check_values(p, df, column, ["x", "y"], nonneg=nonneg)
    lat, lon, iy, ix = _grid_indices(df, p, like)
    out = np.full((len(lat), len(lon)), fill_value, dtype=np.float64)
    out[iy, ix] = v
    da = xr.DataArray(out, dims=("lat", "lon"), coords={"lat": lat, "lon": lon}, name=name or column,
                      attrs={"source": str(p), "column": column})
    return _mark_year(da, p, column)


def load_gridded_population(path, column: str = "base2015", *, like: xr.DataArray | None = None) -> xr.DataArray:
    """Gridded population (persons per cell) as `DataArray[lat, lon]`; cells absent from the file are 0.

    Layout: `x, y, <column>` (e.g. `population_0p5deg.csv.gz`, column `base2015`; `population_0p1deg.csv.gz`,
    column `2015`).
    """
    da = load_gridded_field(path, column, like=like, fill_value=0.0, name="population")
    da.attrs["units"] = "persons"
    return da


def load_grid_regions(path, column: str = "Country", *, like: xr.DataArray | None = None) -> xr.DataArray:
    """Region label per cell (`Country`, `Province`, ...) as a string `DataArray[lat, lon]`, `""` where none.

    Layout: `x, y, Country[, Region, Province]` (e.g. `grid_info_0p5deg.csv.gz`).
    """
    df = _read_csv(path, ["x", "y", column], "x (lon), y (lat), label columns such as Country, one row per cell")
    p = _path(path)
    lat, lon, iy, ix = _grid_indices(df, p, like)
    labels = df[column].astype(object).where(df[column].notna(), "").astype(str).str.strip().to_numpy(dtype=object)
    out = np.full((len(lat), len(lon)), "", dtype=object)
    out[iy, ix] = labels
    return xr.DataArray(out, dims=("lat", "lon"), coords={"lat": lat, "lon": lon}, name=column,
                        attrs={"source": str(p)})


def load_pm25_netcdf(path, variable: str = "PM2.5", *, fill_nan: str = "raise") -> xr.DataArray:
    """Annual-mean surface PM2.5 (ug m-3) from a netCDF file as `DataArray[lat, lon]` (a length-1 `time` is
    dropped; `latitude`/`longitude` dims are renamed `lat`/`lon`). A `units` attribute other than ug m-3 (e.g. `kg m-3`, `ppbv`) is refused; a variable without one is
    taken to be in ug m-3.

    **Arguments:** `path`; `variable` (default `"PM2.5"`); `fill_nan`: what to do with NaN cells - `"raise"`
    (default), `"nearest"` (take the value of the nearest valid cell in index space; satellite-scaled products
    are NaN over mostly-ocean coastal cells, where many people live), or `"zero"`.

    **Returns:** `DataArray[lat, lon]` (float64); `attrs["n_filled"]` counts the filled cells.
    """
    if fill_nan not in ("raise", "nearest", "zero"):
        raise ValueError(f"`fill_nan` must be 'raise', 'nearest' or 'zero', got {fill_nan!r}")
    p = _path(path)
    ds = load_netcdf(p, fix="pass the path of an intact annual PM2.5 netCDF file (re-download or re-export it)")
    if variable not in ds:
        raise ValueError(f"{p}: no variable {variable!r}; it has {list(ds.data_vars)}. Pass `variable=`")
    da = ds[variable]
    units = str(da.attrs.get("units", "")).strip()
    if units and units not in CONC_UNITS:
        raise ValueError(f"{p}: {variable!r} has units {units!r}, not ug m-3: convert it to ug m-3 (and set its "
                         "`units` attribute) first; concentration-response functions take ug m-3")
    da = da.rename({d: n for d, n in (("latitude", "lat"), ("longitude", "lon")) if d in da.dims})
    year = _netcdf_year(p, ds, da)
    for d in list(da.dims):
        if d not in ("lat", "lon"):
            if da.sizes[d] != 1:
                raise ValueError(f"{p}: {variable!r} has dim {d!r} of length {da.sizes[d]}; select one first")
            da = da.isel({d: 0}, drop=True)
    if set(da.dims) != {"lat", "lon"}:
        raise ValueError(f"{p}: {variable!r} must have dims (lat, lon), has {da.dims}")
    da = da.transpose("lat", "lon").astype(np.float64)
    da = da.drop_vars([c for c in da.coords if c not in ("lat", "lon")])
    v = da.values.copy()
    bad = ~np.isfinite(v)
    if bad.any():
        if fill_nan == "raise":
            raise ValueError(f"{p}: {variable!r} has {int(bad.sum())} NaN/inf cells; pass fill_nan='nearest' "
                             "(or 'zero'; `diffmrio health --fill-nan nearest`) to fill them")
        if bad.all():
            raise ValueError(f"{p}: {variable!r} has no valid cells")
        if fill_nan == "zero":
            v[bad] = 0.0
        else:
            from scipy.ndimage import distance_transform_edt

            _, (iy, ix) = distance_transform_edt(bad, return_indices=True)
            v = v[iy, ix]
    if (v < 0).any():
        raise ValueError(f"{p}: {variable!r} has negative concentrations; check the file")
    out = da.copy(data=v)
    out.attrs.update({"units": "ug m-3", "source": str(p), "n_filled": int(bad.sum()),
                      "fill_nan": fill_nan})
    for key in ("year", "year_from"):
        out.attrs.pop(key, None)
    if year is not None:
        out.attrs.update({"year": year[0], "year_from": year[1]})
    return out


def _netcdf_year(p: Path, ds: xr.Dataset, da: xr.DataArray) -> tuple[int, str] | None:
    """The year of an annual field and where it was read: a `year` attribute of the variable or the file,
    else the one year in the file name (a scenario's year: GEOS-Chem runs of a future scenario often keep
    the meteorological year in `time`), else a length-1 `time` coordinate."""
    for attrs, where in ((da.attrs, "variable attribute 'year'"), (ds.attrs, "file attribute 'year'")):
        try:
            return int(attrs["year"]), where
        except (KeyError, TypeError, ValueError):
            pass
    year = _year_in(p.name)
    if year is not None:
        return year, "file name"
    time = da.coords.get("time")
    if time is not None and time.size == 1 and np.issubdtype(time.dtype, np.datetime64):
        return int(pd.Timestamp(time.values.reshape(-1)[0]).year), "time coordinate"
    return None


# ------------------------------------------------------------------------------------------------ GBD tables


def _long_table(df, p, index: Sequence[str], column: str) -> xr.DataArray:
    v = _check_values(p, df, column, index)
    idx = pd.MultiIndex.from_frame(df[list(index)])
    s = pd.Series(v, index=idx)
    return xr.DataArray.from_series(s)


def load_gbd_baseline_mortality(path, column: str = "base2015") -> xr.DataArray:
    """GBD baseline cause-specific mortality as `DataArray[country, endpoint, age]` in deaths per person-year.

    Layout: `Country, endpoint, agegroup, <column>` with rates per 100,000 (`gbd_baseline_mortality_per100k.csv.gz`).
    Endpoint names are normalised (`Stroke` -> `STROKE`, `ALRI` -> `LRI`). Age groups an endpoint has for no
    country (e.g. COPD under 15) are 0; a country lacking a row that other countries have is an error.
    """
    layout = "Country, endpoint, agegroup, <value column> (deaths per 100,000, long format)"
    df = _read_csv(path, ["Country", "endpoint", "agegroup", column], layout)
    p = _path(path)
    df = df.assign(endpoint=df["endpoint"].astype(str).map(canonical_cause),
                   Country=df["Country"].astype(str).str.strip())
    df["agegroup"] = _int_ages(df["agegroup"], p)
    da = _long_table(df, p, ["Country", "endpoint", "agegroup"], column) * PER_100K
    _check_per_100k(p, column, da.values)
    da = da.rename({"Country": "country", "agegroup": "age"})
    # NaN after unstacking = a (country, endpoint, age) row that is absent.
    present_any = da.notnull().any("country")
    gap = da.isnull() & present_any
    if bool(gap.any()):
        g = gap.where(gap, drop=True).stack(k=("country", "endpoint", "age"))
        g = g[g.fillna(False).astype(bool)]
        ex = [tuple(k) for k in g["k"].values[:5]]
        raise ValueError(f"{p}: rows missing for (country, endpoint, age) {ex} although other countries have them; "
                         f"add the rows (rate 0 if none)")
    da = da.fillna(0.0)
    da.name = "baseline_mortality"
    da.attrs.update({"units": "deaths person-1 yr-1", "source": str(p), "column": column})
    return _mark_year(da, p, column)


def _check_per_100k(p, what: str, rate: Float[np.ndarray, "*shape"]) -> None:
    """Rates read per 100,000 that exceed 1 death per person-year are impossible: the file is in other units."""
    if rate.size and np.nanmax(rate) > 1.0:
        raise ValueError(f"{p}: {what} has rates up to {np.nanmax(rate) / PER_100K:.6g} per 100,000 ("
                         f"{np.nanmax(rate):.6g} deaths per person-year, {int((rate > 1).sum())} value(s) above "
                         "1): the file must give deaths per 100,000 person-years; check its units (counts of "
                         "deaths, or rates per person already?).")


def _int_ages(s: pd.Series, p) -> pd.Series:
    a = pd.to_numeric(s, errors="coerce")
    if a.isna().any() or (a % 1 != 0).any():
        bad = s[a.isna() | (a % 1 != 0)].unique()[:5]
        raise ValueError(f"{p}: agegroup values must be integer lower bounds (0, 5, ..., 95), got {list(bad)}")
    return a.astype(int)


def load_gbd_age_structure(path, column: str = "base2015", *, atol: float = 1e-3) -> xr.DataArray:
    """GBD population share per age group as `DataArray[country, age]` (each country sums to 1 within `atol`).

    Layout: `Country, agegroup, <column>` (`gbd_age_structure.csv.gz`).
    """
    df = _read_csv(path, ["Country", "agegroup", column], "Country, agegroup, <value column> (population share)")
    p = _path(path)
    df = df.assign(Country=df["Country"].astype(str).str.strip())
    df["agegroup"] = _int_ages(df["agegroup"], p)
    da = _long_table(df, p, ["Country", "agegroup"], column).rename({"Country": "country", "agegroup": "age"})
    if bool(da.isnull().any()):
        c = da["country"].values[da.isnull().any("age").values][:5]
        raise ValueError(f"{p}: countries {list(c)} lack some age groups; give every country every age group")
    tot = da.sum("age")
    off = np.abs(tot.values - 1.0) > atol
    if off.any():
        raise ValueError(f"{p}: age shares of {list(da['country'].values[off][:5])} sum to "
                         f"{tot.values[off][:5]} instead of 1; normalise them (or raise `atol`)")
    da.name = "age_fraction"
    da.attrs.update({"units": "1", "source": str(p), "column": column})
    return _mark_year(da, p, column)


def _wide_ages(df: pd.DataFrame, p) -> list[str]:
    cols = [c for c in df.columns if c.strip().isdigit()]
    if not cols:
        raise ValueError(f"{p}: no age-group columns (0, 5, ..., 95) found; columns are {list(df.columns)}")
    return cols


def load_gbd_china_mortality(path, year: int) -> xr.DataArray:
    """GBD China mortality for one `year` as `DataArray[endpoint, age]` in deaths per person-year.

    Layout: `year, endpoint, 0, 5, ..., 95` (per 100,000; `gbd_china_mortality_per100k_2000-2019.csv`).
    """
    df = _read_csv(path, ["year", "endpoint"], "year, endpoint, 0, 5, ..., 95 (per 100,000, wide)")
    p = _path(path)
    cols = _wide_ages(df, p)
    sel = df[pd.to_numeric(df["year"], errors="coerce") == int(year)]
    if sel.empty:
        raise ValueError(f"{p}: no rows for year {year}; years present: {sorted(df['year'].unique().tolist())}")
    sel = sel.assign(endpoint=sel["endpoint"].astype(str).map(canonical_cause))
    if sel["endpoint"].duplicated().any():
        raise ValueError(f"{p}: duplicated endpoints for {year}: {sel['endpoint'][sel['endpoint'].duplicated()].tolist()}")
    v = sel[cols].apply(pd.to_numeric, errors="coerce").to_numpy(dtype=np.float64)
    if not np.isfinite(v).all() or (v < 0).any():
        raise ValueError(f"{p}: NaN/negative rates for year {year}; fix the table")
    _check_per_100k(p, f"year {year}", v * PER_100K)
    return xr.DataArray(v * PER_100K, dims=("endpoint", "age"),
                        coords={"endpoint": sel["endpoint"].tolist(), "age": [int(c) for c in cols]},
                        name="baseline_mortality",
                        attrs={"units": "deaths person-1 yr-1", "source": str(p), "year": int(year),
                               "year_from": "argument `year`"})


def load_gbd_china_population_by_age(path, year: int, *, normalize: bool = True) -> xr.DataArray:
    """GBD China population by age group for one `year` as `DataArray[age]`: shares (default) or persons.

    Layout: `year, 0, 5, ..., 95` (persons; `gbd_china_population_by_age_2000-2017.csv`).
    """
    df = _read_csv(path, ["year"], "year, 0, 5, ..., 95 (persons, wide)")
    p = _path(path)
    cols = _wide_ages(df, p)
    sel = df[pd.to_numeric(df["year"], errors="coerce") == int(year)]
    if len(sel) != 1:
        raise ValueError(f"{p}: expected one row for year {year}, found {len(sel)}; years present: "
                         f"{sorted(df['year'].unique().tolist())}")
    v = sel[cols].apply(pd.to_numeric, errors="coerce").to_numpy(dtype=np.float64)[0]
    if not np.isfinite(v).all() or (v < 0).any() or v.sum() <= 0:
        raise ValueError(f"{p}: NaN/negative/zero population for year {year}; fix the table")
    total = float(v.sum())
    da = xr.DataArray(v / total if normalize else v, dims=("age",), coords={"age": [int(c) for c in cols]},
                      name="age_fraction" if normalize else "population",
                      attrs={"units": "1" if normalize else "persons", "total_population": total,
                             "source": str(p), "year": int(year), "year_from": "argument `year`"})
    return da


# ------------------------------------------------------------------------------------------------ IER draws


def load_ier_draws(
    path,
    causes: Sequence[str] | str = FIVE_CAUSES,
    *,
    ages: Sequence[int] = GBD_AGES,
    age_specific: bool = True,
    age_ranges: Mapping[str, tuple[int, int | None]] | None = None,
) -> IERDraws:
    """Load a table of joint IER parameter draws (GBD 2015 layout) as an `IERDraws` Module.

    Layout: `sim, cause, age, alpha, beta, delta, zcf` (`beta` is gamma; a `gamma` column is also accepted);
    `age` is `All Age`/`AllAge` or an age-group lower bound (IHD and stroke: 25, 30, ..., 80 where 80 = 80+).

    For each cause and age group the age-specific rows are used when `age_specific` and the cause has them
    (the largest lower bound <= the age), else the all-age rows. Draws are ordered by `sim`, so draw `k` is
    the same GBD simulation for every age group. The default applicability is that of `IER.central`
    (LRI under five, other causes 25+).

    **Returns:** `IERDraws` with `[draw, cause, age]` arrays.
    """
    layout = "sim, cause, age, alpha, beta (=gamma), delta, zcf; age 'All Age' or a lower bound"
    df = _read_csv(path, ["cause", "age", "alpha", "delta", "zcf"], layout)
    p = _path(path)
    gcol = "beta" if "beta" in df.columns else "gamma" if "gamma" in df.columns else None
    if gcol is None:
        raise ValueError(f"{p}: missing column 'beta' (or 'gamma'); it has {list(df.columns)}. Layout: {layout}")
    causes = _canonical_causes(causes)
    ages = _as_ages(ages)
    df = df.assign(cause=df["cause"].astype(str).map(canonical_cause))
    agestr = df["age"].astype(str).str.replace(" ", "").str.lower()
    df = df.assign(age_lo=np.where(agestr == "allage", -1, pd.to_numeric(agestr, errors="coerce")))
    if df["age_lo"].isna().any():
        raise ValueError(f"{p}: unrecognised age labels {df.loc[df['age_lo'].isna(), 'age'].unique()[:5].tolist()};"
                         f" use 'All Age' or an integer lower bound")
    if "sim" not in df.columns:
        df["sim"] = df.groupby(["cause", "age_lo"]).cumcount()
    for c in ("alpha", gcol, "delta", "zcf"):
        _check_values(p, df, c, ["cause", "age", "sim"], nonneg=(c != "zcf"))
    unknown = [c for c in causes if c not in set(df["cause"])]
    if unknown:
        raise ValueError(f"{p}: no draws for cause(s) {unknown}; the file has {sorted(set(df['cause']))}")
    groups = {}
    for key, g in df[df["cause"].isin(causes)].groupby(["cause", "age_lo"]):
        g = g.sort_values("sim")
        groups[(key[0], int(key[1]))] = g[["alpha", gcol, "delta", "zcf"]].to_numpy(dtype=np.float64)
    sizes = {k: len(v) for k, v in groups.items()}
    if len(set(sizes.values())) != 1:
        raise ValueError(f"{p}: groups have different numbers of draws {sizes}; every (cause, age) needs the same")
    applies = ier_default_applies(causes, ages, age_ranges)
    n = next(iter(sizes.values()))
    out = np.empty((n, len(causes), len(ages), 4))
    for ci, c in enumerate(causes):
        specific = sorted(lo for (cc, lo) in groups if cc == c and lo >= 0)
        for ai, a in enumerate(ages):
            lo = -1
            if age_specific and specific and a >= specific[0]:
                lo = [s for s in specific if s <= a][-1]
            if (c, lo) not in groups:
                if (c, -1) in groups:
                    lo = -1
                elif applies[ci][ai]:
                    raise ValueError(f"{p}: cause {c} has no all-age rows and no age-specific rows for age {a}")
                else:
                    lo = specific[0]
            out[:, ci, ai, :] = groups[(c, lo)]
    return IERDraws(out[..., 0], out[..., 1], out[..., 2], out[..., 3], causes, ages, applies)


# ---------------------------------------------------------------------------------------------- assembling


def build_health_inputs(
    regions: xr.DataArray,
    population: xr.DataArray,
    age_structure: xr.DataArray,
    baseline_mortality: xr.DataArray,
    *,
    causes: Sequence[str],
    ages: Sequence[int] | None = None,
    on_missing: str = "raise",
    compress: bool = True,
) -> HealthInputs:
    """Assemble a `HealthInputs` from labelled grids and GBD tables.

    **Arguments:**
    - `regions`: region label per cell, `DataArray[lat, lon]` (`load_grid_regions`; `""` = none).
    - `population`: persons per cell on the same grid (`load_gridded_population`).
    - `age_structure`: `[country, age]` shares (`load_gbd_age_structure`) or `[age]` for all regions.
    - `baseline_mortality`: `[country, endpoint, age]` (per person-year) or `[endpoint, age]` for all regions.
    - `causes`: endpoints to use, in CRF order (e.g. `FIVE_CAUSES` or `("NCD+LRI",)`).
    - `ages`: age groups (default: those of the mortality table).
    - `on_missing`: `"raise"` (default) if a populated region has no rates/age structure, or `"drop"` (warn and
      leave its cells out).
    - `compress`: keep only populated cells of known regions (`cell_index` into the grid), saving memory.

    **Returns:** `HealthInputs` with `regions` = the sorted labels of populated cells, `region_index` per cell.
    """
    if on_missing not in ("raise", "drop"):
        raise ValueError(f"`on_missing` must be 'raise' or 'drop', got {on_missing!r}")
    _warn_years_apart(("population", population), ("baseline mortality", baseline_mortality),
                      ("age structure", age_structure))
    for name, da in (("regions", regions), ("population", population)):
        if not isinstance(da, xr.DataArray) or set(da.dims) != {"lat", "lon"}:
            raise TypeError(f"`{name}` must be a DataArray with dims (lat, lon)")
    population = population.transpose(*regions.dims)
    for d in regions.dims:
        if not np.allclose(regions[d].values, population[d].values):
            raise ValueError(f"`regions` and `population` are on different `{d}` grids; load both with the same `like`")
    causes = _canonical_causes(causes)
    bm = baseline_mortality.assign_coords(endpoint=[canonical_cause(str(e)) for e in
                                                    baseline_mortality["endpoint"].values])
    missing = [c for c in causes if c not in list(bm["endpoint"].values)]
    if missing:
        raise ValueError(f"`baseline_mortality` has no endpoint(s) {missing}; it has {list(bm['endpoint'].values)}")
    ages = tuple(int(a) for a in (bm["age"].values if ages is None else ages))
    for name, da in (("baseline_mortality", bm), ("age_structure", age_structure)):
        lacking = [a for a in ages if a not in set(int(x) for x in da["age"].values)]
        if lacking:
            raise ValueError(f"`{name}` lacks age groups {lacking}")
    bm = bm.sel(endpoint=list(causes), age=list(ages))
    agef = age_structure.sel(age=list(ages))

    lab = np.asarray(regions.values, dtype=object)
    pop = np.asarray(population.values, dtype=np.float64)
    if not np.isfinite(pop).all() or (pop < 0).any():
        raise ValueError("`population` has NaN or negative cells; fill them with 0")
    populated = (pop > 0) & (lab != "")
    names = sorted(set(lab[populated].tolist()))
    per_region = [d for d in ("country",) if d in bm.dims or d in agef.dims]
    if per_region:
        known = set(bm["country"].values.tolist()) if "country" in bm.dims else set(names)
        if "country" in agef.dims:
            known &= set(agef["country"].values.tolist())
        unknown = [n for n in names if n not in known]
        if unknown:
            upop = {n: float(pop[populated & (lab == n)].sum()) for n in unknown}
            if on_missing == "raise":
                raise ValueError(f"{len(unknown)} populated region(s) have no baseline mortality/age structure: "
                                 f"{dict(list(upop.items())[:10])}; add them to the tables or pass "
                                 "on_missing='drop' (`diffmrio health --on-missing drop`) to leave them out")
            warnings.warn(f"leaving out {len(unknown)} region(s) without GBD rates ({sum(upop.values()):.3g} "
                          f"persons): {unknown[:10]}", stacklevel=user_stacklevel("diffmrio"))
            names = [n for n in names if n in known]
    code = {n: i for i, n in enumerate(names)}
    idx = np.array([code.get(v, -1) for v in lab.ravel()], dtype=np.int64).reshape(lab.shape)

    keep = (idx >= 0) & (pop > 0)
    if compress:
        cell_index = np.flatnonzero(keep.ravel())
        cidx = idx.ravel()[cell_index]
        cpop = pop.ravel()[cell_index]
        grid_shape = pop.shape
    else:
        cell_index, grid_shape = None, None
        cidx, cpop = idx, pop

    def per_cell(da: xr.DataArray, lead: tuple[str, ...]) -> np.ndarray:
        da = da.transpose(*lead, *[d for d in da.dims if d not in lead])
        if "country" not in da.dims:
            return da.values.astype(np.float64)  # same for every cell; broadcast by the kernel
        table = da.sel(country=names).values.astype(np.float64)  # [*lead, region]
        safe = np.where(cidx >= 0, cidx, 0)
        vals = table[..., safe]
        return np.where(cidx >= 0, vals, 0.0)

    y0 = per_cell(bm, ("endpoint", "age"))
    f = per_cell(agef, ("age",))
    return HealthInputs(cpop, f, y0, causes=causes, ages=ages, regions=names, region_index=cidx,
                        cell_index=cell_index, grid_shape=grid_shape,
                        grid_coords=[(d, regions[d].values) for d in regions.dims])
