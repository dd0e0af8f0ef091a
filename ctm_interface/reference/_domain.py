"""The reference CTM's grid and the synthetic demo geography on it (`demo_domain`).

Everything here is synthetic: a plausible East-Asia-like domain (36 km Lambert conformal grid centred near
110E, 34N, the projection CMAQ's China domains use), six demo regions laid out as the demo world describes
them (coastal consumer hubs Capital and Harbor in the east, inland manufacturing provinces Central, Basin and
Northeast, and a large, sparsely populated energy exporter Steppe in the west/north-west), a population grid
with dense cities in the hubs, and spatial allocation weights that map region-level emissions to the grid.
"""

from __future__ import annotations

import equinox as eqx
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Float

from .._regions import allocate_to_grid, region_kernel
from .._vocabulary import (
    CTM_COMPONENTS,
    DEMO_REGIONS as REGIONS,  # demo regions, in the order used by every region axis
    EMISSION_LEVELS as LEVELS,  # emission release heights
    EMISSION_SPECIES as SPECIES,  # emitted species, in the order of every species axis
    pm25_weights,
)

#: The four simulated months (averaged to the annual mean, as the studies do).
SEASONS: tuple[str, ...] = ("Jan", "Apr", "Jul", "Oct")
#: PM2.5 components the model outputs (ug m-3), in the order of every component axis.
COMPONENTS: tuple[str, ...] = CTM_COMPONENTS
#: Weights of the components in PM2.5 = SO4 + NO3 + NH4 + BC + 1.4 OC + PM_other.
PM25_WEIGHTS: tuple[float, ...] = tuple(float(w) for w in pm25_weights(COMPONENTS))

#: Earth radius (m) of the sphere CMAQ/MCIP/WRF use for their projections.
EARTH_RADIUS_M = 6370000.0


class CTMGrid(eqx.Module):
    """A regular horizontal grid in I/O API terms (all fields static, so the grid is hashable).

    Rows run south to north (row 0 is the southern edge, as in I/O API files), columns west to east.

    **Fields** (I/O API names in brackets): `ncols` [NCOLS], `nrows` [NROWS], `xcell`, `ycell` [XCELL, YCELL]
    in m, `xorig`, `yorig` [XORIG, YORIG] (projected coordinates of the south-west corner, m), `gdtyp`
    [GDTYP] (2 = Lambert conformal), `p_alp`, `p_bet`, `p_gam` [P_ALP, P_BET, P_GAM] (standard parallels and
    central meridian, deg), `xcent`, `ycent` [XCENT, YCENT] (projection origin, deg), `gdnam` [GDNAM].
    """

    ncols: int = eqx.field(static=True, default=48)
    nrows: int = eqx.field(static=True, default=36)
    xcell: float = eqx.field(static=True, default=36000.0)
    ycell: float = eqx.field(static=True, default=36000.0)
    xorig: float | None = eqx.field(static=True, default=None)
    yorig: float | None = eqx.field(static=True, default=None)
    gdtyp: int = eqx.field(static=True, default=2)
    p_alp: float = eqx.field(static=True, default=25.0)
    p_bet: float = eqx.field(static=True, default=40.0)
    p_gam: float = eqx.field(static=True, default=110.0)
    xcent: float = eqx.field(static=True, default=110.0)
    ycent: float = eqx.field(static=True, default=34.0)
    gdnam: str = eqx.field(static=True, default="DEMO_36KM")

    def __check_init__(self):
        for name in ("ncols", "nrows"):
            value = getattr(self, name)
            if not isinstance(value, int | np.integer) or value < 3:
                raise ValueError(f"CTMGrid: `{name}` must be an integer >= 3, got {value!r}")
        for name in ("xcell", "ycell"):
            if not float(getattr(self, name)) > 0:
                raise ValueError(
                    f"CTMGrid: `{name}` must be a positive cell size in m, got {getattr(self, name)!r}"
                )

    @property
    def x0(self) -> float:
        """`XORIG` (m); by default the grid is centred on the projection origin."""
        return -0.5 * self.ncols * self.xcell if self.xorig is None else float(self.xorig)

    @property
    def y0(self) -> float:
        """`YORIG` (m); by default the grid is centred on the projection origin."""
        return -0.5 * self.nrows * self.ycell if self.yorig is None else float(self.yorig)

    @property
    def shape(self) -> tuple[int, int]:
        """`(nrows, ncols)`."""
        return (self.nrows, self.ncols)

    @property
    def cell_area(self) -> float:
        """Cell area in m2 (projected)."""
        return float(self.xcell) * float(self.ycell)

    def ioapi_attrs(self) -> dict:
        """The I/O API horizontal-grid global attributes of this grid (names as the I/O API spells them)."""
        return {
            "GDTYP": np.int32(self.gdtyp),
            "P_ALP": np.float64(self.p_alp),
            "P_BET": np.float64(self.p_bet),
            "P_GAM": np.float64(self.p_gam),
            "XCENT": np.float64(self.xcent),
            "YCENT": np.float64(self.ycent),
            "XORIG": np.float64(self.x0),
            "YORIG": np.float64(self.y0),
            "XCELL": np.float64(self.xcell),
            "YCELL": np.float64(self.ycell),
            "GDNAM": self.gdnam,
        }

    def proj4(self) -> str:
        """PROJ string of the grid's Lambert conformal projection on the CMAQ sphere."""
        if self.gdtyp != 2:
            raise ValueError(
                f"CTMGrid.proj4: only GDTYP=2 (Lambert conformal) is supported, got {self.gdtyp}"
            )
        return (
            f"+proj=lcc +lat_1={self.p_alp} +lat_2={self.p_bet} +lat_0={self.ycent} +lon_0={self.p_gam} "
            f"+x_0=0 +y_0=0 +R={EARTH_RADIUS_M} +units=m +no_defs"
        )

    def cell_centres_lonlat(self) -> tuple[np.ndarray, np.ndarray]:
        """Longitude and latitude (deg) of the cell centres, each `(nrows, ncols)` (numpy)."""
        import pyproj

        x = self.x0 + (np.arange(self.ncols) + 0.5) * self.xcell
        y = self.y0 + (np.arange(self.nrows) + 0.5) * self.ycell
        xx, yy = np.meshgrid(x, y)
        # The projection origin sits at (XCENT, YCENT) when P_GAM == XCENT (true for the demo grid).
        proj = pyproj.Proj(self.proj4())
        lon, lat = proj(xx, yy, inverse=True)
        return np.asarray(lon, dtype=np.float64), np.asarray(lat, dtype=np.float64)


class DemoDomain(eqx.Module):
    """The synthetic demo geography on the reference CTM grid (see `demo_domain`).

    **Fields**

    - `grid`: the `CTMGrid`.
    - `lon`, `lat`: `(row, col)` cell-centre longitude/latitude (deg).
    - `region_fraction`: `(region=6, row, col)`, fraction of each cell in each region (sea cells belong to
      none, so the fractions of a cell sum to 1 on land and 0 at sea).
    - `population`: `(row, col)` persons.
    - `allocation`: `(region=6, level=2, row, col)`, spatial allocation weights; each `(region, level)` slice
      sums to 1 over the cells. Ground-level sources follow population and land area, elevated sources sit
      at a few stack cells per region.
    - `regions`, `levels`: labels (static).
    """

    grid: CTMGrid
    lon: Float[Array, "row col"]
    lat: Float[Array, "row col"]
    region_fraction: Float[Array, "region row col"]
    population: Float[Array, "row col"]
    allocation: Float[Array, "region level row col"]
    regions: tuple[str, ...] = eqx.field(static=True, default=REGIONS)
    levels: tuple[str, ...] = eqx.field(static=True, default=LEVELS)

    def gridded_emissions(
        self, E_reg: Float[ArrayLike, "species region level"]
    ) -> Float[Array, "species level row col"]:
        """Map region-level emissions to the grid.

        $E[s, l, y, x] = \\sum_g E_{reg}[s, g, l] \\, a[g, l, y, x]$ with `a = allocation`.

        **Arguments**: `E_reg` `(species, region=6, level=2)` in kt/yr.

        **Returns**: `E` `(species, level=2, row, col)` in kt/yr per cell (totals are preserved).
        """
        E_reg = jnp.asarray(E_reg, dtype=jnp.float64)
        if E_reg.ndim != 3 or E_reg.shape[1:] != (len(self.regions), len(self.levels)):
            raise ValueError(
                f"gridded_emissions: `E_reg` must have shape (species, {len(self.regions)}, {len(self.levels)}) "
                f"(species, region, level), got {E_reg.shape}"
            )
        return allocate_to_grid(E_reg, self.allocation)

    def region_mean(
        self, field: Float[ArrayLike, "*batch row col"], weights: str = "population"
    ) -> Float[Array, "*batch region"]:
        """Region means of a gridded field (population-weighted by default, else area-weighted).

        $\\bar c_r = \\sum_g c_g w_g f_{r,g} / \\sum_g w_g f_{r,g}$ with `f = region_fraction` and `w` the
        population (`weights="population"`) or 1 (`weights="area"`).

        **Arguments**: `field` `(..., row, col)`; `weights` `"population"` or `"area"`.

        **Returns**: `(..., region=6)`.
        """
        if weights not in ("population", "area"):
            raise ValueError(f"region_mean: `weights` must be 'population' or 'area', got {weights!r}")
        w = self.population if weights == "population" else None
        field = jnp.asarray(field, dtype=jnp.float64)
        return region_kernel(field, self.region_fraction, w, how="mean")


# Region "seeds" in cell coordinates (col, row) and their size weights; cells go to the region with the
# smallest weighted distance |p - c| / s (a multiplicatively weighted Voronoi diagram), which makes Steppe
# large and the hubs compact.
_SEEDS = {
    "Capital": ((38.5, 21.5), 0.62),
    "Harbor": ((39.5, 8.5), 0.72),
    "Central": ((27.0, 21.0), 1.0),
    "Basin": ((24.0, 8.0), 1.05),
    "Northeast": ((39.0, 31.5), 0.85),
    "Steppe": ((4.0, 22.0), 1.9),
}
# Big cities: (region, (col, row), persons, radius in cells).
_CITIES = (
    ("Capital", (39.0, 21.0), 22e6, 1.3),
    ("Capital", (41.5, 18.0), 9e6, 1.0),
    ("Harbor", (41.0, 9.5), 20e6, 1.3),
    ("Harbor", (38.5, 5.5), 8e6, 1.0),
    ("Central", (28.0, 22.5), 9e6, 1.2),
    ("Central", (31.0, 17.0), 6e6, 1.0),
    ("Basin", (22.5, 9.0), 12e6, 1.3),
    ("Basin", (28.5, 5.0), 5e6, 1.0),
    ("Northeast", (37.5, 29.5), 7e6, 1.1),
    ("Northeast", (42.0, 33.0), 4e6, 1.0),
    ("Steppe", (10.0, 19.0), 2.5e6, 1.0),
)
# Rural population density (persons per km2 of land) per region.
_RURAL_DENSITY = {
    "Capital": 450.0,
    "Harbor": 420.0,
    "Central": 260.0,
    "Basin": 230.0,
    "Northeast": 110.0,
    "Steppe": 12.0,
}
# Number of stack (elevated source) cells per region.
_N_STACKS = {"Capital": 3, "Harbor": 3, "Central": 5, "Basin": 5, "Northeast": 4, "Steppe": 6}


def _coast_col(row: np.ndarray) -> np.ndarray:
    """Column (continuous) of the coastline at a given row: land west of it, sea east of it."""
    return 43.5 + 1.5 * np.sin(row / 5.0) - 2.5 * np.exp(-(((row - 14.0) / 3.0) ** 2)) + 0.06 * (row - 18.0)


def demo_domain(seed: int = 0, grid: CTMGrid | None = None) -> DemoDomain:
    """The synthetic demo geography on the reference CTM grid (deterministic for a given `seed`).

    Regions are laid out on a 4 x 4 sub-cell lattice (so boundary and coastal cells get fractional
    membership): a coastline near the eastern edge (sea beyond it belongs to no region), the coastal hubs
    Capital (north) and Harbor (south) along it, Northeast in the north-east, Central and Basin mid-domain,
    and Steppe, the largest, over the west and north-west. Population is a rural density per region plus
    Gaussian cities (dense ones in Capital and Harbor), about 4.4e8 persons in all. Ground-level emissions are
    allocated by 0.75 x population share + 0.25 x land-area share within the region; elevated emissions by a
    few stack cells per region, drawn (with `seed`) near the region's industrial centre, with unequal shares.
    The `seed` moves the stacks and adds a little noise to the rural population; the region layout is fixed.

    **Arguments**

    - `seed`: integer seed for the stack positions and population noise.
    - `grid`: a `CTMGrid` (default: 48 columns x 36 rows of 36 km, Lambert conformal, centred at 110E 34N).
      The layout is defined on the default 48 x 36 lattice and rescaled to other grid sizes.

    **Returns**: a `DemoDomain`.
    """
    if not isinstance(seed, int | np.integer):
        raise TypeError(f"demo_domain: `seed` must be an integer, got {type(seed).__name__}")
    grid = CTMGrid() if grid is None else grid
    if not isinstance(grid, CTMGrid):
        raise TypeError(f"demo_domain: `grid` must be a CTMGrid, got {type(grid).__name__}")
    ny, nx = grid.shape
    rng = np.random.default_rng(int(seed))
    sub = 4
    # Sub-cell centres in the coordinates of the default 48 x 36 layout.
    sx = (np.arange(nx * sub) + 0.5) / sub * (48.0 / nx)
    sy = (np.arange(ny * sub) + 0.5) / sub * (36.0 / ny)
    px, py = np.meshgrid(sx, sy)
    land = px < _coast_col(py)
    dist = np.stack([np.hypot(px - c[0], py - c[1]) / s for c, s in _SEEDS.values()])
    owner = np.argmin(dist, axis=0)
    onehot = (owner[None] == np.arange(len(REGIONS))[:, None, None]) & land[None]
    frac = onehot.reshape(len(REGIONS), ny, sub, nx, sub).mean(axis=(2, 4))

    # Population: rural density on land plus Gaussian cities.
    cell_km2 = grid.cell_area / 1e6
    cx = (np.arange(nx) + 0.5) * (48.0 / nx)
    cy = (np.arange(ny) + 0.5) * (36.0 / ny)
    gx, gy = np.meshgrid(cx, cy)
    rural = sum(_RURAL_DENSITY[r] * frac[i] for i, r in enumerate(REGIONS)) * cell_km2
    rural = rural * np.exp(0.25 * rng.standard_normal((ny, nx)))
    city = np.zeros((ny, nx))
    for region, (ccol, crow), persons, radius in _CITIES:
        g = np.exp(-0.5 * ((gx - ccol) ** 2 + (gy - crow) ** 2) / radius**2) * frac[REGIONS.index(region)]
        city += persons * g / g.sum()
    population = rural + city

    # Allocation weights.
    alloc = np.zeros((len(REGIONS), len(LEVELS), ny, nx))
    for i, region in enumerate(REGIONS):
        f = frac[i]
        pop_r = population * f
        alloc[i, 0] = 0.75 * pop_r / pop_r.sum() + 0.25 * f / f.sum()
        # Stacks: cells mostly inside the region, drawn near its centre of population-weighted mass.
        (scol, srow), _ = _SEEDS[region]
        candidates = np.flatnonzero((f > 0.75).ravel())
        d2 = (gx.ravel()[candidates] - scol) ** 2 + (gy.ravel()[candidates] - srow) ** 2
        p = np.exp(-d2 / (2 * 6.0**2))
        n = min(_N_STACKS[region], candidates.size)
        chosen = rng.choice(candidates, size=n, replace=False, p=p / p.sum())
        shares = rng.gamma(2.0, size=n)
        stacks = np.zeros(ny * nx)
        stacks[chosen] = shares / shares.sum()
        alloc[i, 1] = stacks.reshape(ny, nx)

    lon, lat = grid.cell_centres_lonlat()
    return DemoDomain(
        grid=grid,
        lon=jnp.asarray(lon),
        lat=jnp.asarray(lat),
        region_fraction=jnp.asarray(frac),
        population=jnp.asarray(population),
        allocation=jnp.asarray(alloc),
    )


# Demo base emissions, kt/yr: (domain total, share elevated) per species, and the regional split.
# The totals are roughly China's early-2010s emissions (MEIC/REAS order of magnitude: SO2 ~25, NOx ~27,
# NH3 ~10, NMVOC ~25, BC ~1.8, OC ~3, other primary PM2.5 ~7 Mt/yr) scaled by ~0.5 for a domain that covers
# about a quarter of China's area but much of its industrial east.
_BASE_TOTALS = {
    "SO2": (12500.0, 0.70),
    "NOx": (13500.0, 0.50),
    "NH3": (5500.0, 0.0),
    "VOC": (13000.0, 0.20),
    "BC": (1000.0, 0.15),
    "OC": (1700.0, 0.05),
    "PM_other": (3800.0, 0.45),
}
# Regional shares (Capital, Harbor, Central, Basin, Northeast, Steppe): ground-level and elevated sources.
_REGION_SHARES = {
    "SO2": ((0.10, 0.10, 0.25, 0.25, 0.15, 0.15), (0.07, 0.07, 0.24, 0.22, 0.15, 0.25)),
    "NOx": ((0.24, 0.22, 0.18, 0.16, 0.10, 0.10), (0.10, 0.10, 0.22, 0.20, 0.13, 0.25)),
    "NH3": ((0.07, 0.08, 0.28, 0.30, 0.15, 0.12), (1, 1, 1, 1, 1, 1)),
    "VOC": ((0.22, 0.22, 0.18, 0.17, 0.11, 0.10), (0.12, 0.14, 0.26, 0.22, 0.12, 0.14)),
    "BC": ((0.09, 0.09, 0.27, 0.27, 0.16, 0.12), (0.08, 0.08, 0.26, 0.24, 0.14, 0.20)),
    "OC": ((0.08, 0.08, 0.28, 0.29, 0.16, 0.11), (0.10, 0.10, 0.25, 0.25, 0.15, 0.15)),
    "PM_other": ((0.10, 0.10, 0.26, 0.26, 0.15, 0.13), (0.07, 0.07, 0.25, 0.24, 0.15, 0.22)),
}


def demo_base_emissions(domain: DemoDomain | None = None) -> Float[Array, "species region level"]:
    """Plausible base emissions for the demo domain, `E_reg[species(7), region(6), level(2)]` in kt/yr.

    Synthetic: domain totals of roughly China's early-2010s inventories scaled by ~0.5 (SO2 12.5, NOx 13.5,
    NH3 5.5, VOC 13.0, BC 1.0, OC 1.7, other primary PM2.5 3.8 Mt/yr), split between ground level and stacks
    (70 % of SO2 and 50 % of NOx elevated, no elevated NH3) and between regions (inland provinces and Steppe
    carry the stack sources, the hubs much of the traffic NOx and VOC, Central and Basin the agricultural NH3).
    Used as the default in the reference CTM's standalone tests and benchmarks; the demo world derives its
    own emissions from the MRIO.

    **Arguments**: `domain`, a `DemoDomain` (only its region and level labels are checked; optional).

    **Returns**: `(7, 6, 2)` float64 array, ordered as `SPECIES`, `REGIONS`, `LEVELS`.
    """
    if domain is not None and (tuple(domain.regions) != REGIONS or tuple(domain.levels) != LEVELS):
        raise ValueError(
            f"demo_base_emissions: the domain's regions/levels {domain.regions}/{domain.levels} are not the demo "
            f"world's {REGIONS}/{LEVELS}; build the domain with demo_domain()"
        )
    E = np.zeros((len(SPECIES), len(REGIONS), len(LEVELS)))
    for s, name in enumerate(SPECIES):
        total, elevated = _BASE_TOTALS[name]
        ground_sh, elev_sh = (np.asarray(x, dtype=np.float64) for x in _REGION_SHARES[name])
        E[s, :, 0] = total * (1.0 - elevated) * ground_sh / ground_sh.sum()
        E[s, :, 1] = total * elevated * elev_sh / elev_sh.sum()
    return jnp.asarray(E)
