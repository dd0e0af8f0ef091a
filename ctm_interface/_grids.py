"""Horizontal CTM grids: the I/O API grid description, its map projection (pyproj) and cell geometry.

The I/O API describes a horizontal grid by a map projection (`GDTYP`, `P_ALP`, `P_BET`, `P_GAM`, `XCENT`,
`YCENT`) and a regular lattice in projected coordinates (`XORIG`, `YORIG` = south-west corner of the
south-west cell, `XCELL`, `YCELL` = cell sizes, `NCOLS`, `NROWS`). CMAQ and MCIP work on a sphere of radius
6,370,000 m, so the projections here use that sphere (`+R=6370000`) and latitudes are spherical latitudes.

Reference: the I/O API grid conventions, <https://www.cmascenter.org/ioapi/documentation/all_versions/html/GRIDS.html>.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import numpy as np
import pyproj
import xarray as xr

#: Earth radius (m) of the sphere CMAQ, MCIP and WRF use.
EARTH_RADIUS_M = 6370000.0

# I/O API map projection types (GDTYP) supported here.
LATGRD3 = 1  # lat-lon: XORIG/YORIG/XCELL/YCELL in degrees
LAMGRD3 = 2  # Lambert conformal conic: P_ALP, P_BET = standard parallels, P_GAM = central meridian
POLGRD3 = (
    6  # polar stereographic: P_ALP = +1/-1 (N/S pole), P_BET = true-scale latitude, P_GAM = central meridian
)
EQMGRD3 = 7  # equatorial Mercator: P_ALP = true-scale latitude, P_GAM = central meridian
_SUPPORTED = {
    LATGRD3: "lat-lon",
    LAMGRD3: "Lambert conformal conic",
    POLGRD3: "polar stereographic",
    EQMGRD3: "equatorial Mercator",
}

_GRID_KEYS = ("GDTYP", "P_ALP", "P_BET", "P_GAM", "XCENT", "YCENT", "XORIG", "YORIG", "XCELL", "YCELL")


@dataclasses.dataclass(frozen=True)
class GridDefinition:
    """A horizontal CTM grid in I/O API terms (immutable, hashable).

    **Arguments** (I/O API names in brackets)

    - `gdtyp` [GDTYP]: projection type, 1 lat-lon, 2 Lambert conformal, 6 polar stereographic,
      7 equatorial Mercator.
    - `p_alp`, `p_bet`, `p_gam` [P_ALP, P_BET, P_GAM]: projection parameters (see the module docstring).
    - `xcent`, `ycent` [XCENT, YCENT]: longitude/latitude (deg) of the projected coordinate origin (x = y = 0).
    - `xorig`, `yorig` [XORIG, YORIG]: projected coordinates of the grid's south-west corner (m, or deg
      for lat-lon grids).
    - `xcell`, `ycell` [XCELL, YCELL]: cell size (m, or deg for lat-lon grids).
    - `ncols`, `nrows` [NCOLS, NROWS]: grid size.
    - `name` [GDNAM]: grid name (at most 16 characters in I/O API files).
    - `earth_radius`: sphere radius (m), 6,370,000 as in CMAQ.

    Cell `(row, col)` (0-based) has its centre at
    $x = x_\\text{orig} + (\\text{col} + 1/2)\\,\\Delta x$, $y = y_\\text{orig} + (\\text{row} + 1/2)\\,\\Delta y$.
    """

    gdtyp: int
    p_alp: float
    p_bet: float
    p_gam: float
    xcent: float
    ycent: float
    xorig: float
    yorig: float
    xcell: float
    ycell: float
    ncols: int
    nrows: int
    name: str = ""
    earth_radius: float = EARTH_RADIUS_M

    def __post_init__(self):
        if int(self.gdtyp) not in _SUPPORTED:
            raise ValueError(
                f"GDTYP={self.gdtyp} is not supported: use one of "
                + ", ".join(f"{k} ({v})" for k, v in _SUPPORTED.items())
            )
        if self.ncols < 1 or self.nrows < 1:
            raise ValueError(f"grid size must be positive, got NCOLS={self.ncols}, NROWS={self.nrows}")
        if not (self.xcell > 0 and self.ycell > 0):
            raise ValueError(f"cell sizes must be positive, got XCELL={self.xcell}, YCELL={self.ycell}")
        for f in ("gdtyp", "ncols", "nrows"):
            object.__setattr__(self, f, int(getattr(self, f)))
        for f in ("p_alp", "p_bet", "p_gam", "xcent", "ycent", "xorig", "yorig", "xcell", "ycell"):
            object.__setattr__(self, f, float(getattr(self, f)))

    # ------------------------------------------------------------------ constructors
    @classmethod
    def latlon(
        cls, lon_min: float, lat_min: float, dlon: float, dlat: float, nlon: int, nlat: int, name: str = ""
    ) -> GridDefinition:
        """A regular lat-lon grid whose south-west corner is `(lon_min, lat_min)` (deg), `nlon x nlat` cells."""
        return cls(LATGRD3, 0.0, 0.0, 0.0, 0.0, 0.0, lon_min, lat_min, dlon, dlat, nlon, nlat, name)

    @classmethod
    def from_latlon_centres(cls, lon: np.ndarray, lat: np.ndarray, name: str = "") -> GridDefinition:
        """A lat-lon grid from 1-D, regularly spaced cell-centre longitudes and latitudes (any order)."""
        lon = np.sort(np.asarray(lon, float))
        lat = np.sort(np.asarray(lat, float))
        if lon.size < 2 or lat.size < 2:
            raise ValueError("need at least two longitudes and two latitudes to infer the spacing")
        dlon, dlat = np.diff(lon), np.diff(lat)
        if np.ptp(dlon) > 1e-6 * abs(dlon[0]) or np.ptp(dlat) > 1e-6 * abs(dlat[0]):
            raise ValueError("lon/lat centres are not regularly spaced: regrid to a regular grid first")
        return cls.latlon(
            lon[0] - dlon[0] / 2, lat[0] - dlat[0] / 2, dlon[0], dlat[0], lon.size, lat.size, name
        )

    @classmethod
    def from_ioapi_attrs(
        cls, attrs: Mapping[str, Any], ncols: int | None = None, nrows: int | None = None
    ) -> GridDefinition:
        """The grid described by I/O API global attributes (`NCOLS`/`NROWS` may be given separately)."""
        return grid_from_ioapi_attrs(attrs, ncols=ncols, nrows=nrows)

    # ------------------------------------------------------------------ projection
    @property
    def is_latlon(self) -> bool:
        return self.gdtyp == LATGRD3

    @property
    def proj4(self) -> str:
        """PROJ string of the projection on the CMAQ sphere, with false easting/northing so that
        `(XCENT, YCENT)` maps to `x = y = 0` as the I/O API defines."""
        r = f"+R={self.earth_radius:.1f} +units=m +no_defs"
        if self.gdtyp == LATGRD3:
            return f"+proj=longlat {r}"
        if self.gdtyp == LAMGRD3:
            base = f"+proj=lcc +lat_1={self.p_alp!r} +lat_2={self.p_bet!r} +lat_0={self.ycent!r} +lon_0={self.p_gam!r}"
        elif self.gdtyp == POLGRD3:
            pole = 90.0 if self.p_alp > 0 else -90.0
            base = f"+proj=stere +lat_0={pole!r} +lat_ts={self.p_bet!r} +lon_0={self.p_gam!r}"
        else:  # EQMGRD3
            base = f"+proj=merc +lat_ts={self.p_alp!r} +lon_0={self.p_gam!r}"
        # The I/O API origin is (XCENT, YCENT); PROJ's is (lon_0, lat_0) or the pole/equator. Shift by the
        # projected coordinates of (XCENT, YCENT) so that both agree even when XCENT != P_GAM.
        x0, y0 = pyproj.Transformer.from_crs(
            pyproj.CRS.from_proj4(f"+proj=longlat {r}"), pyproj.CRS.from_proj4(f"{base} {r}"), always_xy=True
        ).transform(self.xcent, self.ycent)
        return f"{base} +x_0={-x0!r} +y_0={-y0!r} {r}"

    @property
    def crs(self) -> pyproj.CRS:
        """The grid's coordinate reference system (pyproj)."""
        return pyproj.CRS.from_proj4(self.proj4)

    @property
    def geographic_crs(self) -> pyproj.CRS:
        """Longitude/latitude on the CMAQ sphere."""
        return pyproj.CRS.from_proj4(f"+proj=longlat +R={self.earth_radius:.1f} +no_defs")

    def xy_to_lonlat(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Projected coordinates (m; deg for lat-lon grids) -> (lon, lat) in degrees."""
        x, y = np.asarray(x, float), np.asarray(y, float)
        if self.is_latlon:
            return x.copy(), y.copy()
        t = pyproj.Transformer.from_crs(self.crs, self.geographic_crs, always_xy=True)
        return t.transform(x, y)

    def lonlat_to_xy(self, lon: np.ndarray, lat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(lon, lat) in degrees -> projected coordinates (m; deg for lat-lon grids)."""
        lon, lat = np.asarray(lon, float), np.asarray(lat, float)
        if self.is_latlon:
            # wrap longitudes into [xorig, xorig + 360)
            return (lon - self.xorig) % 360.0 + self.xorig, lat.copy()
        t = pyproj.Transformer.from_crs(self.geographic_crs, self.crs, always_xy=True)
        return t.transform(lon, lat)

    # ------------------------------------------------------------------ lattice
    @property
    def shape(self) -> tuple[int, int]:
        """`(nrows, ncols)`."""
        return (self.nrows, self.ncols)

    @property
    def x(self) -> np.ndarray:
        """Projected x of the cell centres, shape `(ncols,)`."""
        return self.xorig + (np.arange(self.ncols) + 0.5) * self.xcell

    @property
    def y(self) -> np.ndarray:
        """Projected y of the cell centres, shape `(nrows,)`."""
        return self.yorig + (np.arange(self.nrows) + 0.5) * self.ycell

    def cell_index(self, lon: np.ndarray, lat: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The cell containing each point.

        **Returns** `(row, col, inside)`: integer arrays shaped like `lon` and a boolean mask of the points
        inside the grid (row/col are meaningless where `inside` is false).
        """
        x, y = self.lonlat_to_xy(lon, lat)
        col = np.floor((x - self.xorig) / self.xcell)
        row = np.floor((y - self.yorig) / self.ycell)
        inside = (
            np.isfinite(col)
            & np.isfinite(row)
            & (col >= 0)
            & (col < self.ncols)
            & (row >= 0)
            & (row < self.nrows)
        )
        return np.where(inside, row, 0).astype(np.int64), np.where(inside, col, 0).astype(np.int64), inside

    def cell_areas(self) -> np.ndarray:
        """True (spherical) area of each cell in m^2, shape `(nrows, ncols)`.

        Lat-lon: $A = R^2 \\Delta\\lambda (\\sin\\varphi_2 - \\sin\\varphi_1)$. Conformal projections:
        $A = \\Delta x \\Delta y / m^2$ with the map scale factor $m$ at the cell centre (pyproj's
        `areal_scale`), the same approximation MCIP's `MSFX2` encodes.
        """
        if self.is_latlon:
            lat_edges = np.deg2rad(self.yorig + np.arange(self.nrows + 1) * self.ycell)
            band = np.diff(np.sin(lat_edges))
            return np.broadcast_to(
                (self.earth_radius**2 * np.deg2rad(self.xcell) * band)[:, None], self.shape
            ).copy()
        return self.xcell * self.ycell / self.map_scale_factor_squared()

    def map_scale_factor_squared(self) -> np.ndarray:
        """Squared map scale factor at the cell centres, `(nrows, ncols)` (MCIP's `MSFX2`)."""
        if self.is_latlon:
            raise ValueError("a lat-lon grid has no single map scale factor; use cell_areas() instead")
        lon, lat = cell_centres_lonlat(self)
        factors = pyproj.Proj(self.crs).get_factors(lon, lat)
        return np.asarray(factors.areal_scale)

    # ------------------------------------------------------------------ attributes and comparison
    def to_ioapi_attrs(self) -> dict[str, Any]:
        """I/O API global attributes for this grid (`GDTYP` ... `YCELL`, `NCOLS`, `NROWS`, `GDNAM`)."""
        return {
            "GDTYP": np.int32(self.gdtyp),
            "P_ALP": self.p_alp,
            "P_BET": self.p_bet,
            "P_GAM": self.p_gam,
            "XCENT": self.xcent,
            "YCENT": self.ycent,
            "XORIG": self.xorig,
            "YORIG": self.yorig,
            "XCELL": self.xcell,
            "YCELL": self.ycell,
            "NCOLS": np.int32(self.ncols),
            "NROWS": np.int32(self.nrows),
            "GDNAM": self.name,
        }

    def mismatch(self, other: GridDefinition, rtol: float = 1e-6, atol: float = 1e-4) -> list[str]:
        """The grid parameters that differ (names and both values); empty when the grids agree.

        Angles are compared to `atol` degrees (files store them as float32 or float64, e.g. P_GAM 133.302
        and 133.302001953125 for the same grid), lengths to `rtol` relative to the larger of the values
        and the cell size. The name is not compared.
        """
        out = []
        if self.gdtyp != other.gdtyp:
            out.append(f"GDTYP {self.gdtyp} != {other.gdtyp}")
        if self.shape != other.shape:
            out.append(f"NROWS x NCOLS {self.shape} != {other.shape}")
        angles = ("p_alp", "p_bet", "p_gam", "xcent", "ycent")
        lengths = ("xorig", "yorig", "xcell", "ycell")
        if self.is_latlon:
            angles, lengths = (), ("xorig", "yorig", "xcell", "ycell")
        for f in angles:
            a, b = getattr(self, f), getattr(other, f)
            if abs(a - b) > atol:
                out.append(f"{f.upper()} {a} != {b}")
        for f in lengths:
            a, b = getattr(self, f), getattr(other, f)
            scale = max(abs(self.xcell), abs(self.ycell))
            if abs(a - b) > rtol * max(abs(a), abs(b), scale):
                out.append(f"{f.upper()} {a} != {b}")
        return out

    def same_as(self, other: GridDefinition, rtol: float = 1e-6, atol: float = 1e-4) -> bool:
        """Whether `other` describes the same grid (see `mismatch`)."""
        return not self.mismatch(other, rtol=rtol, atol=atol)


def grid_from_ioapi_attrs(
    attrs: Mapping[str, Any], ncols: int | None = None, nrows: int | None = None, name: str | None = None
) -> GridDefinition:
    """The `GridDefinition` described by I/O API global attributes.

    **Arguments**

    - `attrs`: a mapping with `GDTYP, P_ALP, P_BET, P_GAM, XCENT, YCENT, XORIG, YORIG, XCELL, YCELL` and
      (unless given as arguments) `NCOLS, NROWS`; e.g. `ds.attrs` of `read_ioapi`.
    - `ncols`, `nrows`, `name`: override or supply the size and name.

    **Returns** a `GridDefinition`. Raises `ValueError` naming missing attributes.
    """
    need = list(_GRID_KEYS) + [k for k, v in (("NCOLS", ncols), ("NROWS", nrows)) if v is None]
    missing = [k for k in need if k not in attrs]
    if missing:
        raise ValueError(f"I/O API grid attributes missing: {missing}; pass a mapping with all of {need}")

    def num(k):
        v = np.asarray(attrs[k]).ravel()
        return float(v[0])

    gdnam = name if name is not None else str(attrs.get("GDNAM", "")).strip()
    return GridDefinition(
        gdtyp=int(num("GDTYP")),
        p_alp=num("P_ALP"),
        p_bet=num("P_BET"),
        p_gam=num("P_GAM"),
        xcent=num("XCENT"),
        ycent=num("YCENT"),
        xorig=num("XORIG"),
        yorig=num("YORIG"),
        xcell=num("XCELL"),
        ycell=num("YCELL"),
        ncols=int(ncols if ncols is not None else num("NCOLS")),
        nrows=int(nrows if nrows is not None else num("NROWS")),
        name=gdnam,
    )


def cell_centres_lonlat(grid: GridDefinition) -> tuple[np.ndarray, np.ndarray]:
    """Longitude and latitude (deg, on the CMAQ sphere) of the cell centres.

    **Arguments**: `grid`, a `GridDefinition`.

    **Returns** `(lon, lat)`, each of shape `(nrows, ncols)`.
    """
    xx, yy = np.meshgrid(grid.x, grid.y)
    lon, lat = grid.xy_to_lonlat(xx, yy)
    return np.asarray(lon, float), np.asarray(lat, float)


def grid_coords(grid: GridDefinition, row_dim: str = "ROW", col_dim: str = "COL") -> dict[str, xr.DataArray]:
    """xarray coordinates for a grid: `x` (col), `y` (row) of the cell centres, and 2-D `lon`, `lat`."""
    lon, lat = cell_centres_lonlat(grid)
    unit = "degrees" if grid.is_latlon else "m"
    return {
        "x": xr.DataArray(
            grid.x, dims=(col_dim,), attrs={"units": unit, "long_name": "projected x of cell centre"}
        ),
        "y": xr.DataArray(
            grid.y, dims=(row_dim,), attrs={"units": unit, "long_name": "projected y of cell centre"}
        ),
        "lon": xr.DataArray(
            lon, dims=(row_dim, col_dim), attrs={"units": "degrees_east", "standard_name": "longitude"}
        ),
        "lat": xr.DataArray(
            lat, dims=(row_dim, col_dim), attrs={"units": "degrees_north", "standard_name": "latitude"}
        ),
    }
