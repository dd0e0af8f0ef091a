"""CMAQ / Models-3 I/O API netCDF files: reader, writer and PM2.5 helper.

An I/O API file is a netCDF file whose structure is fixed by global attributes: the grid (`GDTYP`, `P_ALP`,
... `NCOLS`, `NROWS`), the layers (`NLAYS`, `VGTYP`, `VGTOP`, `VGLVLS`), the time axis (`SDATE` = YYYYDDD,
`STIME` = HHMMSS, `TSTEP` = HHMMSS, 0 for time-independent files) and the variables (`NVARS`, `VAR-LIST` of
16-character names). Every gridded variable has dims `(TSTEP, LAY, ROW, COL)` (boundary files:
`(TSTEP, LAY, PERIM)`), and `TFLAG(TSTEP, VAR, DATE-TIME)` holds the (YYYYDDD, HHMMSS) of every record.

References: the I/O API netCDF conventions,
<https://www.cmascenter.org/ioapi/documentation/all_versions/html/NETCDF.html>, and the file-description
structure `FDESC3.EXT` (attribute lengths: names 16, descriptions 80, `FILEDESC`/`HISTORY` 60 x 80 characters).
"""

from __future__ import annotations

import datetime as _dt
import os
import warnings
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import netCDF4
import numpy as np
import xarray as xr

from ._atomic import atomic_path
from ._errors import CTMFileError
from ._grids import _SUPPORTED, grid_coords, grid_from_ioapi_attrs

NAMLEN3 = 16  # variable names, units, long names, GDNAM, UPNAM
MXDLEN3 = 80  # var_desc, EXEC_ID, one line of FILEDESC/HISTORY
MXDESC3 = 60  # lines of FILEDESC/HISTORY
IMISS3 = -9999

#: Global attributes every I/O API file carries (the writer writes all of them, in this order).
IOAPI_GLOBAL_ATTRS = (
    "IOAPI_VERSION", "EXEC_ID", "FTYPE", "CDATE", "CTIME", "WDATE", "WTIME", "SDATE", "STIME", "TSTEP",
    "NTHIK", "NCOLS", "NROWS", "NLAYS", "NVARS", "GDTYP", "P_ALP", "P_BET", "P_GAM", "XCENT", "YCENT",
    "XORIG", "YORIG", "XCELL", "YCELL", "VGTYP", "VGTOP", "VGLVLS", "GDNAM", "UPNAM", "VAR-LIST",
    "FILEDESC", "HISTORY",
)  # fmt: skip

# What the reader needs to decode a file.
_REQUIRED_FOR_READ = (
    "SDATE", "STIME", "TSTEP", "NCOLS", "NROWS", "NLAYS", "NVARS", "GDTYP", "P_ALP", "P_BET", "P_GAM",
    "XCENT", "YCENT", "XORIG", "YORIG", "XCELL", "YCELL", "VAR-LIST",
)  # fmt: skip
# What the writer needs from ds.attrs.
_REQUIRED_FOR_WRITE = (
    "GDTYP",
    "P_ALP",
    "P_BET",
    "P_GAM",
    "XCENT",
    "YCENT",
    "XORIG",
    "YORIG",
    "XCELL",
    "YCELL",
)
_GRID_DIMS = ("TSTEP", "LAY", "ROW", "COL")
_NO_DATE = -635  # SDATE used by ICON/BCON-style time-independent files (I/O API "no date" flag)

_HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"


# ---------------------------------------------------------------------------------------------- time helpers
def _hhmmss_to_seconds(hhmmss: int) -> int:
    sign = -1 if hhmmss < 0 else 1
    v = abs(int(hhmmss))
    return sign * ((v // 10000) * 3600 + ((v // 100) % 100) * 60 + v % 100)


def ioapi_datetime(date: int, time: int) -> np.datetime64:
    """`(YYYYDDD, HHMMSS)` -> `numpy.datetime64[ns]` (UTC, proleptic Gregorian)."""
    date, time = int(date), int(time)
    year, doy = divmod(date, 1000)
    if year < 1 or not 1 <= doy <= 366:
        raise ValueError(f"{date} is not a YYYYDDD date")
    t = _dt.datetime(year, 1, 1) + _dt.timedelta(days=doy - 1, seconds=_hhmmss_to_seconds(time))
    return np.datetime64(t, "ns")


def to_ioapi_datetime(t: np.datetime64 | _dt.datetime | str) -> tuple[int, int]:
    """A time -> `(YYYYDDD, HHMMSS)` integers (seconds resolution)."""
    t = np.datetime64(t, "s").astype(_dt.datetime)
    return t.year * 1000 + t.timetuple().tm_yday, t.hour * 10000 + t.minute * 100 + t.second


def _seconds_to_hhmmss(seconds: int) -> int:
    sign = -1 if seconds < 0 else 1
    s = abs(int(seconds))
    return sign * ((s // 3600) * 10000 + ((s // 60) % 60) * 100 + s % 60)


def ioapi_times(sdate: int, stime: int, tstep: int, n: int) -> np.ndarray:
    """The `n` record times `SDATE:STIME + k * TSTEP` as `datetime64[ns]`."""
    t0 = ioapi_datetime(sdate, stime)
    return t0 + np.arange(n) * np.timedelta64(_hhmmss_to_seconds(tstep), "s")


# ---------------------------------------------------------------------------------------------- file helpers
def _check_netcdf_file(path: Path) -> str:
    """Raise `CTMFileError` unless `path` is a complete netCDF file; return 'classic' or 'hdf5'."""
    if not path.exists():
        raise CTMFileError(path, "file does not exist")
    if path.is_dir():
        raise CTMFileError(path, "is a directory, not a netCDF file")
    with open(path, "rb") as f:
        head = f.read(8)
    if head[:3] == b"CDF" and head[3:4] in (b"\x01", b"\x02", b"\x05"):
        if head[3:4] != b"\x05":
            _check_classic_size(path)
        return "classic"
    if head == _HDF5_MAGIC:
        return "hdf5"
    if len(head) == 0:
        raise CTMFileError(path, "file is empty (0 bytes): the run that wrote it probably failed")
    raise CTMFileError(
        path,
        f"not a netCDF file (it starts with {head[:8]!r}, not 'CDF' or the HDF5 signature): "
        "check the path or the program that wrote it",
    )


def _check_classic_size(path: Path) -> None:
    # netCDF-C opens a truncated classic file without complaint and returns zeros for the missing
    # records; scipy's header parser maps every variable and refuses buffers shorter than declared.
    from scipy.io import netcdf_file

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            f = netcdf_file(path, "r", mmap=True)
            f.variables.clear()
            f.close()
    except Exception as e:  # scipy raises TypeError/ValueError/IndexError on short files
        raise CTMFileError(
            path,
            f"truncated or corrupt netCDF classic file ({os.path.getsize(path)} bytes; {e}): "
            "the run that wrote it probably did not finish - rerun it",
        ) from None


def _strip(v: Any) -> Any:
    return v.strip() if isinstance(v, str) else v


def _var_list(path: Path | None, attrs: Mapping[str, Any]) -> list[str]:
    raw = str(attrs["VAR-LIST"])
    names = [raw[i : i + NAMLEN3].strip() for i in range(0, len(raw), NAMLEN3)]
    names = [n for n in names if n]
    nvars = int(np.asarray(attrs["NVARS"]).ravel()[0])
    if len(names) != nvars:
        raise CTMFileError(
            path, f"VAR-LIST holds {len(names)} names but NVARS = {nvars}: the header is inconsistent"
        )
    return names


# ---------------------------------------------------------------------------------------------- reader
def read_ioapi(
    path: str | os.PathLike,
    species: str | Iterable[str] | None = None,
    *,
    chunks: Mapping[str, int] | str | None = None,
    coords: bool = True,
    keep_tflag: bool = False,
) -> xr.Dataset:
    """Read an I/O API netCDF file (CMAQ CONC/ACONC/ELMO/AELMO/APMDIAG, emissions, MCIP, ICON/BCON,
    CMAQ-adjoint `ADJ_LGRID*`) into an `xarray.Dataset`.

    **Arguments**

    - `path`: the file.
    - `species`: one name or a list of names to keep (default: all of `VAR-LIST`).
    - `chunks`: passed to `xarray.open_dataset`; e.g. `{}` or `{"TSTEP": 1}` gives lazy dask arrays.
    - `coords`: add projected (`x`, `y`) and geographic (`lon`, `lat`) cell-centre coordinates.
    - `keep_tflag`: keep the raw `TFLAG` variable.

    **Returns** a Dataset whose variables keep the I/O API dims `(TSTEP, LAY, ROW, COL)` (or
    `(TSTEP, LAY, PERIM)` for boundary files) and their `units`, `long_name`, `var_desc` (padding stripped);
    coordinates:

    - `TSTEP`: the record times (`datetime64`), decoded from `TFLAG` (from `SDATE`/`STIME`/`TSTEP` where
      `TFLAG` is absent or zero). Time-independent files (`TSTEP = 0`, or `SDATE = -635`) have no time
      coordinate, only the length-1 `TSTEP` dim.
    - `LAY`: layer numbers 1..NLAYS (1 = surface) and `sigma` (layer mid-points of `VGLVLS`) where the
      file gives `NLAYS + 1` levels.
    - `x(COL)`, `y(ROW)`, `lon(ROW, COL)`, `lat(ROW, COL)`: cell centres on the CMAQ sphere (R = 6370 km).

    Global attributes are kept (strings stripped) and `source_file` is added.

    Raises `CTMFileError` (a `ValueError`) naming the file and the problem: missing, empty, truncated or
    non-netCDF files, missing I/O API attributes, species not in the file.
    """
    path = Path(path)
    _check_netcdf_file(path)
    try:
        ds = xr.open_dataset(path, engine="netcdf4", decode_times=False, decode_cf=False, chunks=chunks)
    except (OSError, RuntimeError, ValueError, KeyError) as e:
        raise CTMFileError(path, f"cannot open as netCDF, the file is truncated or corrupt ({e})") from e
    try:
        return _decode_ioapi(ds, path, species, coords=coords, keep_tflag=keep_tflag)
    except BaseException:
        ds.close()
        raise


def _decode_ioapi(ds: xr.Dataset, path: Path, species, *, coords: bool, keep_tflag: bool) -> xr.Dataset:
    attrs = {k: _strip(v) for k, v in ds.attrs.items()}
    missing = [k for k in _REQUIRED_FOR_READ if k not in attrs]
    if missing:
        raise CTMFileError(
            path,
            f"missing I/O API global attribute(s) {missing}: not an I/O API file, or a tool dropped the "
            "attributes; read CF files with read_cf_latlon or xarray.open_dataset",
        )
    names = _var_list(path, attrs)
    absent = [n for n in names if n not in ds.variables]
    if absent:
        raise CTMFileError(path, f"VAR-LIST names {absent} that are not variables in the file")
    if species is not None:
        wanted = [species] if isinstance(species, str) else list(species)
        not_there = [s for s in wanted if s not in names]
        if not_there:
            raise CTMFileError(path, f"species {not_there} not in the file; it has {names}")
        names = wanted

    # time axis
    sdate, stime, tstep = (int(np.asarray(attrs[k]).ravel()[0]) for k in ("SDATE", "STIME", "TSTEP"))
    time_independent = tstep == 0 or sdate == _NO_DATE
    times = None
    if not time_independent and "TSTEP" in ds.sizes:
        nt = ds.sizes["TSTEP"]
        times = ioapi_times(sdate, stime, tstep, nt)
        if "TFLAG" in ds.variables:
            tflag = np.asarray(ds["TFLAG"].values)
            if tflag.ndim == 3 and tflag.shape[0] == nt and tflag.shape[1] > 0:
                for k in range(nt):
                    d, t = int(tflag[k, 0, 0]), int(tflag[k, 0, 1])
                    if d > 0:
                        try:
                            times[k] = ioapi_datetime(d, t)
                        except ValueError as e:
                            raise CTMFileError(path, f"TFLAG record {k} holds an invalid date {d}:{t}") from e

    keep = list(names) + (["TFLAG"] if keep_tflag and "TFLAG" in ds.variables else [])
    out = ds[keep]
    for n in names:
        out[n].attrs = {k: _strip(v) for k, v in ds[n].attrs.items()}
    out.attrs = attrs
    out.attrs["source_file"] = str(path)
    if times is not None:
        out = out.assign_coords(
            TSTEP=("TSTEP", times, {"standard_name": "time", "long_name": "record time (UTC)"})
        )

    nlays = int(np.asarray(attrs["NLAYS"]).ravel()[0])
    if "LAY" in out.sizes:
        if out.sizes["LAY"] != nlays:
            raise CTMFileError(path, f"dim LAY has {out.sizes['LAY']} layers but NLAYS = {nlays}")
        out = out.assign_coords(
            LAY=("LAY", np.arange(1, nlays + 1), {"long_name": "layer number (1 = surface)"})
        )
        vgl = np.asarray(attrs.get("VGLVLS", []), dtype=float).ravel()
        if vgl.size == nlays + 1:
            out = out.assign_coords(
                sigma=(
                    "LAY",
                    0.5 * (vgl[:-1] + vgl[1:]),
                    {"long_name": "layer mid-point of VGLVLS", "VGTYP": attrs.get("VGTYP", IMISS3)},
                )
            )
    if "ROW" in out.sizes and "COL" in out.sizes:
        ncols, nrows = (int(np.asarray(attrs[k]).ravel()[0]) for k in ("NCOLS", "NROWS"))
        if (out.sizes["ROW"], out.sizes["COL"]) != (nrows, ncols):
            raise CTMFileError(
                path,
                f"dims ROW x COL = {out.sizes['ROW']} x {out.sizes['COL']} but NROWS x NCOLS = {nrows} x {ncols}",
            )
        if coords:
            if int(np.asarray(attrs["GDTYP"]).ravel()[0]) in _SUPPORTED:
                try:
                    grid = grid_from_ioapi_attrs(attrs)
                except ValueError as e:
                    raise CTMFileError(path, f"invalid grid attributes: {e}") from e
                out = out.assign_coords(grid_coords(grid))
            else:
                warnings.warn(
                    f"{path}: GDTYP={attrs['GDTYP']} is not supported for lon/lat coordinates; "
                    "returning the file without them",
                    stacklevel=3,
                )
    return out


def ioapi_grid(ds: xr.Dataset):
    """The `GridDefinition` of a Dataset from `read_ioapi` (or anything with I/O API grid attributes)."""
    try:
        return grid_from_ioapi_attrs(ds.attrs)
    except ValueError as e:
        raise CTMFileError(ds.attrs.get("source_file"), str(e)) from e


def check_same_grid(*datasets: xr.Dataset, rtol: float = 1e-6, atol: float = 1e-4) -> None:
    """Raise `CTMFileError` naming the file and the differing parameters unless all datasets share a grid.

    **Arguments**: two or more Datasets with I/O API grid attributes (e.g. from `read_ioapi`);
    `rtol` (lengths, relative) and `atol` (angles, degrees) are the tolerances of `GridDefinition.mismatch`.
    """
    if len(datasets) < 2:
        return
    ref = ioapi_grid(datasets[0])
    ref_name = datasets[0].attrs.get("source_file", "<dataset 0>")
    for i, ds in enumerate(datasets[1:], start=1):
        diff = ref.mismatch(ioapi_grid(ds), rtol=rtol, atol=atol)
        if diff:
            raise CTMFileError(
                ds.attrs.get("source_file", f"<dataset {i}>"),
                f"grid does not match that of {ref_name}: "
                + "; ".join(diff)
                + " - regrid one of them or use files from the same domain",
            )


# ---------------------------------------------------------------------------------------------- PM2.5
_PM25_MODES = (("ATOTI", "PM25AT"), ("ATOTJ", "PM25AC"), ("ATOTK", "PM25CO"))


def cmaq_pm25(ds: xr.Dataset, apmdiag: xr.Dataset | None = None) -> xr.DataArray:
    """Total PM2.5 (ug m-3) from CMAQ output.

    Returns `PM25_TOT` where the file has it (CMAQ >= 5.3 ELMO/AELMO, or a `combine` output); otherwise
    the sum of the Aitken, accumulation and coarse mode totals weighted by the fraction of each mode below
    2.5 um (from the `APMDIAG` file):

    $\\text{PM}_{2.5} = \\text{ATOTI}\\cdot\\text{PM25AT} + \\text{ATOTJ}\\cdot\\text{PM25AC}
    + \\text{ATOTK}\\cdot\\text{PM25CO}$

    as in CMAQ's `SpecDef` files for `combine` (CMAQ v5.0-5.2).

    **Arguments**

    - `ds`: an ACONC/CONC/ELMO Dataset (from `read_ioapi`), dims `(TSTEP, LAY, ROW, COL)`.
    - `apmdiag`: the matching APMDIAG Dataset holding `PM25AT`, `PM25AC`, `PM25CO`, when they are not in `ds`.

    **Returns** a DataArray shaped like the inputs, attrs `units = "ug m-3"`.
    """
    if "PM25_TOT" in ds.data_vars:
        return ds["PM25_TOT"]
    src = ds.attrs.get("source_file")
    totals_missing = [a for a, _ in _PM25_MODES if a not in ds.data_vars]
    fr_source = ds
    if apmdiag is not None:
        check_same_grid(ds, apmdiag)
        fr_source = apmdiag
    fr_missing = [f for _, f in _PM25_MODES if f not in fr_source.data_vars]
    if totals_missing or fr_missing:
        raise CTMFileError(
            src,
            "no PM25_TOT, and cannot compute it: missing "
            + ", ".join(totals_missing + [f"{f} (APMDIAG)" for f in fr_missing])
            + "; pass the ELMO/AELMO file, or ACONC with ATOTI/ATOTJ/ATOTK plus apmdiag= the APMDIAG file",
        )
    pm = sum(ds[a] * fr_source[f] for a, f in _PM25_MODES)
    pm.name = "PM25_TOT"
    pm.attrs = {
        "units": "ug m-3",
        "long_name": "PM25_TOT",
        "var_desc": "PM2.5 = sum of modes x fraction < 2.5 um",
    }
    return pm


# ---------------------------------------------------------------------------------------------- writer
def _pad(s: str, n: int) -> str:
    return str(s)[:n].ljust(n)


def _now_ioapi() -> tuple[int, int]:
    now = _dt.datetime.now(_dt.UTC).replace(tzinfo=None)
    return to_ioapi_datetime(np.datetime64(now, "s"))


def _scalar(attrs: Mapping[str, Any], key: str) -> Any:
    return np.asarray(attrs[key]).ravel()[0]


def write_ioapi(
    ds: xr.Dataset,
    path: str | os.PathLike,
    *,
    dtype: str | np.dtype | None = "float32",
    format: str = "NETCDF3_64BIT_OFFSET",
    filedesc: str | None = None,
    history: str | None = None,
    exec_id: str = "diffmrio.ctm_interface.write_ioapi",
    upnam: str | None = None,
) -> Path:
    """Write a Dataset as an I/O API netCDF file (atomically: temp file in the same folder, then rename).

    **Arguments**

    - `ds`: data variables with dims `("TSTEP", "LAY", "ROW", "COL")` and attrs `units` (at most 16
      characters; optional `long_name`, `var_desc`); names of at most 16 characters. `ds.attrs` carry the
      grid under I/O API names (`GDTYP, P_ALP, P_BET, P_GAM, XCENT, YCENT, XORIG, YORIG, XCELL, YCELL`) and
      optionally `GDNAM, VGTYP, VGTOP, VGLVLS, SDATE, STIME, TSTEP, FTYPE, NTHIK`. A regular `datetime64`
      `TSTEP` coordinate (as `read_ioapi` returns, also after selecting time steps) takes precedence over
      `SDATE/STIME/TSTEP`; without either, one record is written time-independent (`TSTEP = 0`).
    - `path`: output file.
    - `dtype`: variable type on file; `"float32"` (the I/O API `REAL` that CMAQ tools expect) by default,
      `None` keeps each variable's dtype (float64 = I/O API `DOUBLE`, int32 = `INT`).
    - `format`: netCDF format, `"NETCDF3_64BIT_OFFSET"` (the I/O API default) or `"NETCDF4_CLASSIC"`.
    - `filedesc`, `history`, `exec_id`, `upnam`: descriptive attributes.

    **Returns** the `Path` written. The writer fills `TFLAG(TSTEP, VAR, DATE-TIME)` (int32), `VAR-LIST`,
    `NVARS`, `NCOLS`, `NROWS`, `NLAYS` and the other required attributes (`IOAPI_GLOBAL_ATTRS`).
    Raises `ValueError` naming the variable or attribute and the fix.
    """
    if not isinstance(ds, xr.Dataset):
        raise TypeError(f"ds must be an xarray.Dataset, got {type(ds).__name__}")
    if format not in ("NETCDF3_64BIT_OFFSET", "NETCDF3_CLASSIC", "NETCDF4_CLASSIC"):
        raise ValueError(
            f"format={format!r}: use 'NETCDF3_64BIT_OFFSET' (I/O API default) or 'NETCDF4_CLASSIC'"
        )
    path = Path(path)
    names = [str(n) for n in ds.data_vars if n != "TFLAG"]
    if not names:
        raise ValueError("ds has no data variables to write")
    for n in names:
        v = ds[n]
        if tuple(v.dims) != _GRID_DIMS:
            raise ValueError(
                f"variable {n!r} has dims {tuple(v.dims)}; I/O API gridded variables need {_GRID_DIMS} "
                "(use .transpose(...) / .expand_dims(...) first)"
            )
        if not 1 <= len(n) <= NAMLEN3 or " " in n:
            raise ValueError(
                f"variable name {n!r} must have 1-{NAMLEN3} characters and no spaces (rename it)"
            )
        if "units" not in v.attrs:
            raise ValueError(
                f"variable {n!r} has no 'units' attribute: set ds[{n!r}].attrs['units'] (<= 16 chars)"
            )
        if len(str(v.attrs["units"])) > NAMLEN3:
            raise ValueError(
                f"units {v.attrs['units']!r} of {n!r} exceed {NAMLEN3} characters: abbreviate them"
            )
    sizes = {d: ds.sizes[d] for d in _GRID_DIMS}
    nt, nlay, nrow, ncol = (sizes[d] for d in _GRID_DIMS)
    attrs = dict(ds.attrs)
    missing = [k for k in _REQUIRED_FOR_WRITE if k not in attrs]
    if missing:
        raise ValueError(
            f"ds.attrs lacks the I/O API grid attribute(s) {missing}: copy them from a GridDefinition "
            "(grid.to_ioapi_attrs()) or from the file the data came from"
        )
    for k in ("NCOLS", "NROWS"):
        if k in attrs and int(_scalar(attrs, k)) != {"NCOLS": ncol, "NROWS": nrow}[k]:
            raise ValueError(
                f"ds.attrs[{k!r}] = {attrs[k]} disagrees with the data ({ncol} cols x {nrow} rows)"
            )

    # --- time axis: a datetime TSTEP coordinate (what read_ioapi returns) describes the data as they are,
    # also after .isel/.sel on TSTEP, so it wins over SDATE/STIME attrs copied from the source file.
    if "TSTEP" in ds.coords and np.issubdtype(ds["TSTEP"].dtype, np.datetime64):
        t = ds["TSTEP"].values
        sdate, stime = to_ioapi_datetime(t[0])
        if nt > 1:
            dts = np.diff(t).astype("timedelta64[s]").astype(np.int64)
            if np.any(dts != dts[0]) or dts[0] <= 0:
                raise ValueError(
                    "the TSTEP coordinate is not regularly spaced: I/O API files need a fixed time step"
                )
            tstep = _seconds_to_hhmmss(int(dts[0]))
        else:
            tstep = int(_scalar(attrs, "TSTEP")) if "TSTEP" in attrs else 10000
            tstep = tstep or 10000  # one record of a time-stepped file keeps a non-zero step
    elif all(k in attrs for k in ("SDATE", "STIME", "TSTEP")):
        sdate, stime, tstep = (int(_scalar(attrs, k)) for k in ("SDATE", "STIME", "TSTEP"))
    elif nt == 1:
        sdate, stime, tstep = 0, 0, 0
    else:
        raise ValueError(
            f"{nt} time steps but no SDATE/STIME/TSTEP in ds.attrs and no datetime TSTEP coordinate: "
            "set ds.attrs['SDATE'] (YYYYDDD), ['STIME'] (HHMMSS), ['TSTEP'] (HHMMSS)"
        )
    if tstep == 0 and nt != 1:
        raise ValueError(
            f"TSTEP = 0 (time-independent) but the data have {nt} time steps: set TSTEP or keep one"
        )
    if tstep != 0:
        tflag_dt = [to_ioapi_datetime(t) for t in ioapi_times(sdate, stime, tstep, nt)]
    else:
        tflag_dt = [(0, 0)]  # I/O API ignores the date of time-independent records (MCIP, ICON write 0)
    tflag = np.repeat(np.asarray(tflag_dt, np.int32)[:, None, :], len(names), axis=1)

    # --- vertical
    vgtyp = int(_scalar(attrs, "VGTYP")) if "VGTYP" in attrs else IMISS3
    vgtop = np.float32(_scalar(attrs, "VGTOP")) if "VGTOP" in attrs else np.float32(0.0)
    if "VGLVLS" in attrs:
        vglvls = np.asarray(attrs["VGLVLS"], np.float32).ravel()
        lay = np.asarray(ds["LAY"].values) if "LAY" in ds.coords else None
        if vglvls.size != nlay + 1 and lay is not None and np.issubdtype(lay.dtype, np.integer):
            # layers selected from a read file (LAY = 1..NLAYS): keep their bounding levels if contiguous
            if np.all(np.diff(lay) == 1) and lay[0] >= 1 and lay[-1] + 1 <= vglvls.size:
                vglvls = vglvls[lay[0] - 1 : lay[-1] + 1]
        if vglvls.size != nlay + 1:
            raise ValueError(f"VGLVLS has {vglvls.size} values but NLAYS + 1 = {nlay + 1} are needed")
    else:
        vglvls = np.zeros(nlay + 1, np.float32)

    cdate, ctime = _now_ioapi()
    gattrs: dict[str, Any] = {
        "IOAPI_VERSION": _pad("ioapi-3.2 conventions (written by diffmrio)", MXDLEN3),
        "EXEC_ID": _pad(exec_id, MXDLEN3),
        "FTYPE": np.int32(int(_scalar(attrs, "FTYPE")) if "FTYPE" in attrs else 1),  # 1 = GRDDED3
        "CDATE": np.int32(cdate),
        "CTIME": np.int32(ctime),
        "WDATE": np.int32(cdate),
        "WTIME": np.int32(ctime),
        "SDATE": np.int32(sdate),
        "STIME": np.int32(stime),
        "TSTEP": np.int32(tstep),
        "NTHIK": np.int32(int(_scalar(attrs, "NTHIK")) if "NTHIK" in attrs else 1),
        "NCOLS": np.int32(ncol),
        "NROWS": np.int32(nrow),
        "NLAYS": np.int32(nlay),
        "NVARS": np.int32(len(names)),
        "GDTYP": np.int32(int(_scalar(attrs, "GDTYP"))),
        **{k: np.float64(_scalar(attrs, k)) for k in _REQUIRED_FOR_WRITE[1:]},
        "VGTYP": np.int32(vgtyp),
        "VGTOP": vgtop,
        "VGLVLS": vglvls,
        "GDNAM": _pad(str(attrs.get("GDNAM", "")).strip(), NAMLEN3),
        "UPNAM": _pad(upnam if upnam is not None else "DIFFMRIO", NAMLEN3),
        "VAR-LIST": "".join(_pad(n, NAMLEN3) for n in names),
        "FILEDESC": _pad(
            filedesc if filedesc is not None else str(attrs.get("FILEDESC", "")).strip(), MXDESC3 * MXDLEN3
        ),
        "HISTORY": _pad(history if history is not None else "", MXDESC3 * MXDLEN3),
    }
    assert tuple(gattrs) == IOAPI_GLOBAL_ATTRS

    with atomic_path(path) as tmp:
        nc = netCDF4.Dataset(tmp, "w", format=format, clobber=True)
        try:
            nc.set_auto_mask(False)
            nc.createDimension("TSTEP", None)
            nc.createDimension("DATE-TIME", 2)
            nc.createDimension("LAY", nlay)
            nc.createDimension("VAR", len(names))
            nc.createDimension("ROW", nrow)
            nc.createDimension("COL", ncol)
            for k, v in gattrs.items():
                nc.setncattr(k, v)
            tv = nc.createVariable("TFLAG", "i4", ("TSTEP", "VAR", "DATE-TIME"), fill_value=False)
            tv.setncattr("units", "<YYYYDDD,HHMMSS>")
            tv.setncattr("long_name", _pad("TFLAG", NAMLEN3))
            tv.setncattr("var_desc", _pad("Timestep-valid flags:  (1) YYYYDDD or (2) HHMMSS", MXDLEN3))
            tv[:] = tflag
            for n in names:
                v = ds[n]
                out_dtype = np.dtype(dtype) if dtype is not None else np.dtype(v.dtype)
                if out_dtype not in (np.dtype("float32"), np.dtype("float64"), np.dtype("int32")):
                    raise ValueError(
                        f"variable {n!r}: dtype {out_dtype} is not an I/O API type (float32, float64, int32)"
                    )
                var = nc.createVariable(n, out_dtype, _GRID_DIMS, fill_value=False)
                var.setncattr("long_name", _pad(v.attrs.get("long_name", n), NAMLEN3))
                var.setncattr("units", _pad(v.attrs["units"], NAMLEN3))
                var.setncattr("var_desc", _pad(v.attrs.get("var_desc", f"Variable {n}"), MXDLEN3))
                for k in range(nt):  # one record at a time keeps dask-backed inputs out of memory
                    var[k] = np.asarray(v.isel(TSTEP=k).values, dtype=out_dtype)
        finally:
            nc.close()
    return path
