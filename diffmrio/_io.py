"""Atomic file writing (the helpers live in `ctm_interface._atomic`, shared by all three packages), plus the
figure and netCDF writers diffmrio's reports use."""

from __future__ import annotations

from pathlib import Path

from ctm_interface._atomic import atomic_path as atomic_path, write_text_atomic as write_text_atomic


def save_figure_atomic(fig, path: str | Path, **kwargs) -> Path:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, **kwargs)
    return Path(path)


def write_netcdf_atomic(ds, path: str | Path) -> Path:
    with atomic_path(path, suffix=".nc") as tmp:
        ds.to_netcdf(tmp)
    return Path(path)


class NetCDFReadError(ValueError):
    """A netCDF file that cannot be read (empty, not netCDF, truncated or corrupt); the message names it."""


_NETCDF_SIGNATURES = (b"CDF\x01", b"CDF\x02", b"CDF\x05", b"\x89HDF\r\n\x1a\n")


def load_netcdf(path: str | Path, *, fix: str = "replace it with an intact copy", variables=None, **kwargs):
    """Read a netCDF file fully into memory (`xarray.load_dataset`), turning the low-level errors of empty,
    foreign, truncated or overwritten files (xarray's "no IO backend", `NetCDF: HDF error`, ...) into a
    `NetCDFReadError` that names the file and says what to do (`fix`). `variables`: read only these."""
    import xarray as xr

    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"{p}: no such file; pass the path to an existing netCDF file")
    size = p.stat().st_size
    if size == 0:
        raise NetCDFReadError(f"{p}: the file is empty (0 bytes), not a netCDF file; {fix}")
    with open(p, "rb") as f:
        head = f.read(8)
    looks_netcdf = head.startswith(_NETCDF_SIGNATURES)
    try:
        with xr.open_dataset(p, **kwargs) as ds:
            if variables is not None:
                missing = [v for v in variables if v not in ds.variables]
                if missing:
                    raise NetCDFReadError(f"{p}: no variable(s) {missing}; it has {list(ds.data_vars)}")
                ds = ds[list(variables)]
            return ds.load()
    except NetCDFReadError:
        raise
    except (OSError, RuntimeError, ValueError, KeyError, IndexError) as err:
        what = ("it is truncated or corrupt (bytes overwritten, an interrupted copy)" if looks_netcdf else
                f"it is not a netCDF file (it starts with {head!r})")
        raise NetCDFReadError(f"{p}: could not read the netCDF file ({type(err).__name__}: {err}): {what}; {fix}") from err
