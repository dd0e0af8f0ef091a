"""The reference CTM's outputs as CMAQ-shaped I/O API files (a CONC-like file and an `ADJ_LGRID_EM`-like file).

So the readers are exercised on the same path a real CTM's files take: the concentrations are written with
CMAQ's ELMO/AELMO PM2.5 diagnostic names (`PM25_SO4`, `PM25_NO3`, `PM25_NH4`, `PM25_EC`, `PM25_OC`, plus
`PM25_OTHER` and `PM25_TOT`), the adjoint sensitivities with one variable per emitted species and one layer per
release height, as CMAQ-adjoint writes `ADJ_LGRID_EM` (sensitivity of the cost to the emission rate of each
species in each cell and layer).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import xarray as xr

from .._ioapi import write_ioapi
from ._domain import COMPONENTS, LEVELS, PM25_WEIGHTS, SEASONS, SPECIES, CTMGrid

#: I/O API variable names of the CONC-like file, per component (plus `PM25_TOT`).
CONC_VARIABLES: dict[str, str] = {
    "SO4": "PM25_SO4",
    "NO3": "PM25_NO3",
    "NH4": "PM25_NH4",
    "BC": "PM25_EC",
    "OC": "PM25_OC",
    "PM_other": "PM25_OTHER",
}
#: I/O API variable names of the `ADJ_LGRID_EM`-like file, per emitted species (CMAQ emission names).
ADJOINT_VARIABLES: dict[str, str] = {
    "SO2": "SO2",
    "NOx": "NOX",
    "NH3": "NH3",
    "VOC": "VOC",
    "BC": "PEC",
    "OC": "POC",
    "PM_other": "PMOTHR",
}
# The seasons are written as four records 91 days apart starting 15 January (I/O API TSTEP = HHMMSS with
# hours > 24 allowed): 15 Jan, 16 Apr, 16 Jul, 15 Oct -- mid-month days of the four simulated months.
_SEASON_TSTEP = 91 * 24 * 10000
_DESC = "Reference CTM (diffmrio): a synthetic two-layer stand-in for CMAQ, not a validated air quality model"


def _base_attrs(grid: CTMGrid, nlays: int) -> dict:
    attrs = grid.ioapi_attrs()
    attrs.update(
        FTYPE=np.int32(1),  # GRDDED3
        VGTYP=np.int32(7),  # VGWRFEM (sigma-pressure), as CMAQ's WRF-driven runs
        VGTOP=np.float32(5000.0),
        VGLVLS=np.linspace(1.0, 1.0 - 0.05 * nlays, nlays + 1, dtype=np.float32),
    )
    return attrs


def _check_year(year: int) -> int:
    if not isinstance(year, int | np.integer) or not 1 <= year <= 9999:
        raise ValueError(f"`year` must be an integer year (e.g. 2017), got {year!r}")
    return int(year)


def conc_dataset(C, grid: CTMGrid, *, year: int = 2017) -> xr.Dataset:
    """A CONC-like I/O API Dataset of surface PM2.5 components and `PM25_TOT` (ug m-3).

    **Arguments**

    - `C`: `(component=6, row, col)` annual mean (written as one time-independent record, `TSTEP = 0`) or
      `(season=4, component=6, row, col)` per season (four records, 15 Jan / 16 Apr / 16 Jul / 15 Oct of
      `year`, `TSTEP` = 2184 h).
    - `grid`: the model's `CTMGrid` (its I/O API attributes are attached).
    - `year`: the nominal year of the seasonal records.

    **Returns**: an `xarray.Dataset` with variables `PM25_SO4, PM25_NO3, PM25_NH4, PM25_EC, PM25_OC,
    PM25_OTHER, PM25_TOT` of dims `(TSTEP, LAY=1, ROW, COL)` and the I/O API attributes, ready for
    `ctm_interface.write_ioapi`.
    """
    C = np.asarray(C, dtype=np.float64)
    year = _check_year(year)
    if C.ndim == 3:
        C = C[None]
        time_attrs = dict(SDATE=np.int32(year * 1000 + 1), STIME=np.int32(0), TSTEP=np.int32(0))
    elif C.ndim == 4 and C.shape[0] == len(SEASONS):
        time_attrs = dict(SDATE=np.int32(year * 1000 + 15), STIME=np.int32(0), TSTEP=np.int32(_SEASON_TSTEP))
    else:
        raise ValueError(
            f"conc_dataset: `C` must be (component=6, row, col) or (season=4, component=6, row, col), got {C.shape}"
        )
    if C.shape[1:] != (len(COMPONENTS), *grid.shape):
        raise ValueError(
            f"conc_dataset: `C` has components x grid {C.shape[1:]}, expected {(len(COMPONENTS), *grid.shape)}"
        )
    dims = ("TSTEP", "LAY", "ROW", "COL")
    data = {}
    for i, comp in enumerate(COMPONENTS):
        data[CONC_VARIABLES[comp]] = xr.Variable(
            dims,
            C[:, i][:, None],
            attrs={
                "units": "ug m-3",
                "long_name": CONC_VARIABLES[comp],
                "var_desc": f"PM2.5 {comp} (surface layer)",
            },
        )
    tot = np.einsum("tcyx,c->tyx", C, np.asarray(PM25_WEIGHTS))
    data["PM25_TOT"] = xr.Variable(
        dims,
        tot[:, None],
        attrs={"units": "ug m-3", "long_name": "PM25_TOT", "var_desc": "PM2.5 = SO4+NO3+NH4+EC+1.4 OC+OTHER"},
    )
    attrs = _base_attrs(grid, 1)
    attrs.update(time_attrs)
    return xr.Dataset(data, attrs=attrs)


def adjoint_dataset(dcost_dE, grid: CTMGrid, *, cost_units: str = "1", year: int = 2017) -> xr.Dataset:
    """An `ADJ_LGRID_EM`-like I/O API Dataset: sensitivity of the cost to each species' emission rate.

    One variable per emitted species (`SO2, NOX, NH3, VOC, PEC, POC, PMOTHR`), layer 1 = ground-level and
    layer 2 = elevated sources, one time-independent record; units `<cost_units>/(kt/yr)`, i.e. the change
    of the cost per kt/yr emitted in that cell.

    **Arguments**: `dcost_dE` `(species=7, level=2, row, col)` (as `ReferenceCTM.adjoint` returns);
    `grid` the model's `CTMGrid`; `cost_units` a short unit string of the cost (e.g. `"ug m-3"`, `"deaths"`);
    `year` the nominal year.

    **Returns**: an `xarray.Dataset` ready for `ctm_interface.write_ioapi`.
    """
    S = np.asarray(dcost_dE, dtype=np.float64)
    year = _check_year(year)
    if S.shape != (len(SPECIES), len(LEVELS), *grid.shape):
        raise ValueError(
            f"adjoint_dataset: `dcost_dE` must be (species=7, level=2, row, col) = "
            f"{(len(SPECIES), len(LEVELS), *grid.shape)}, got {S.shape}"
        )
    units = f"{cost_units}/(kt/yr)"
    if len(units) > 16:
        raise ValueError(
            f"adjoint_dataset: units {units!r} exceed 16 characters: pass a shorter `cost_units`"
        )
    dims = ("TSTEP", "LAY", "ROW", "COL")
    data = {
        ADJOINT_VARIABLES[sp]: xr.Variable(
            dims,
            S[i][None],
            attrs={
                "units": units,
                "long_name": ADJOINT_VARIABLES[sp],
                "var_desc": f"d cost / d emission of {sp} (LAY 1 ground, LAY 2 elevated)",
            },
        )
        for i, sp in enumerate(SPECIES)
    }
    attrs = _base_attrs(grid, len(LEVELS))
    attrs.update(SDATE=np.int32(year * 1000 + 1), STIME=np.int32(0), TSTEP=np.int32(0))
    return xr.Dataset(data, attrs=attrs)


def write_conc(C, grid: CTMGrid, path: str | os.PathLike, *, year: int = 2017, dtype="float32") -> Path:
    """Write `conc_dataset(C, grid)` as an I/O API file (atomically); returns the path. See `conc_dataset`."""
    return write_ioapi(conc_dataset(C, grid, year=year), path, dtype=dtype, filedesc=_DESC + " (CONC-like)")


def write_adjoint(
    dcost_dE,
    grid: CTMGrid,
    path: str | os.PathLike,
    *,
    cost_units: str = "1",
    year: int = 2017,
    dtype="float32",
) -> Path:
    """Write `adjoint_dataset(dcost_dE, grid)` as an `ADJ_LGRID_EM`-like I/O API file (atomically)."""
    ds = adjoint_dataset(dcost_dE, grid, cost_units=cost_units, year=year)
    return write_ioapi(ds, path, dtype=dtype, filedesc=_DESC + " (ADJ_LGRID_EM-like)")
