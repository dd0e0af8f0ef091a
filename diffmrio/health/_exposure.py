r"""Exposure and attributable mortality: pure array kernels, the `HealthInputs`/`HealthModel` Modules and a
labelled xarray wrapper.

Relative risk is applied per grid cell, never to a regional mean (RR is nonlinear; docs/science.md, section 5):

$$D_{c,a,g} = P_g\, f_{a,g}\, y_{0,c,a,g}\,\left(1 - 1/RR_{c,a}(C_g)\right),$$

then summed over cells into regions with a region-fraction array `[region, *cell]` or a region index per cell.
"""

import warnings
from collections.abc import Sequence

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import xarray as xr
from jax.typing import ArrayLike
from jaxtyping import Array, Float, Int

from ctm_interface._regions import region_kernel

from ._crf import AbstractCRF, _canonical_causes

DEATHS_UNITS = "deaths yr-1"
PM_UNITS = "ug m-3"

# Shape aliases as assignments (a two-name shape string in an annotation reads as an expression to linters).
AgeCellArray = Float[Array, "age *cell"]
RegionCellArray = Float[Array, "region *cell"]
#: the same for arguments, which may be numpy arrays or anything `jnp.asarray` takes (the kernels convert)
AgeCellLike = Float[ArrayLike, "age *cell"]
RegionCellLike = Float[ArrayLike, "region *cell"]

__all__ = [
    "attributable_deaths_kernel",
    "sum_to_regions",
    "population_weighted_concentration",
    "economic_value",
    "HealthInputs",
    "HealthModel",
    "attributable_deaths",
    "health_dataset",
]


def check_rate_units(rate, name: str = "baseline_rate") -> None:
    """Refuse mortality rates above 1 death per person-year (concrete arrays only; traced values pass): such a
    rate is impossible and almost always a table per 100,000 (or per 1,000) that was not divided."""
    if isinstance(rate, jax.core.Tracer):
        return
    r = np.asarray(rate)
    if r.size and np.nanmax(r) > 1.0:
        raise ValueError(
            f"`{name}` has rates up to {np.nanmax(r):.6g} deaths per person-year ({int((r > 1).sum())} above 1): "
            "rates must be per person-year, and above 1 they are impossible. GBD tables are per 100,000: divide by "
            "1e5 (the `load_gbd_*_mortality` loaders do)."
        )


def _broadcast_lead(x: ArrayLike, lead: tuple[int, ...], cell_shape: tuple[int, ...], name: str) -> Array:
    """Accept `x[*lead]` or `x[*lead, *cell]` and return it shaped to broadcast against `[*lead, *cell]`."""
    x = jnp.asarray(x, dtype=jnp.float64)
    if x.shape == lead:
        return x.reshape(lead + (1,) * len(cell_shape))
    if x.shape == lead + cell_shape:
        return x
    raise ValueError(
        f"`{name}` has shape {x.shape}; expected {lead} (same for every cell) or {lead + cell_shape} "
        f"(per cell), where the leading axes follow the CRF's causes/ages and the cell axes follow `C`"
    )


def attributable_deaths_kernel(
    C: Float[ArrayLike, "*cell"],
    population: Float[ArrayLike, "*cell"],
    age_fraction: AgeCellLike | Float[ArrayLike, " age"],
    baseline_rate: Float[ArrayLike, "cause age *cell"] | Float[ArrayLike, "cause age"],
    crf: AbstractCRF,
) -> Float[Array, "cause age *cell"]:
    r"""PM2.5-attributable deaths per cause, age group and cell (pure kernel: jit/grad/vmap-safe); the
    labelled edge is [`attributable_deaths`][diffmrio.health.attributable_deaths].

    $$D_{c,a,g} = P_g\, f_{a,g}\, y_{0,c,a,g}\,\left(1 - 1/RR_{c,a}(C_g)\right)$$

    **Arguments:**
    - `C[*cell]`: annual-mean PM2.5 (ug m-3) on any cell layout (`[row, col]`, `[cell]`, ...).
    - `population[*cell]`: persons per cell.
    - `age_fraction[age]` or `[age, *cell]`: population share of each age group (order `crf.ages`).
    - `baseline_rate[cause, age]` or `[cause, age, *cell]`: baseline cause-specific mortality in deaths per
      person-year (GBD tables are per 100,000: divide by 1e5; the loaders do), order `crf.causes`, `crf.ages`.
    - `crf`: a concentration-response function (`GEMM`, `IER`, `LogLinear`).

    **Returns:** `deaths[cause, age, *cell]` (deaths per year). With a `LogLinear` CRF and `C` the concentration
    change, this is the morbidity formula `dE = y0 Pop (1 - exp(-beta dC))`.

    Reference: Burnett et al. (2018) PNAS 115:9592; Cohen et al. (2017) Lancet 389:1907.
    """
    C = jnp.asarray(C, dtype=jnp.float64)
    cell = C.shape
    pop = jnp.asarray(population, dtype=jnp.float64)
    if pop.shape != cell:
        raise ValueError(f"`population` has shape {pop.shape} but `C` has shape {cell}: both are per cell")
    n_c, n_a = len(crf.causes), len(crf.ages)
    f = _broadcast_lead(age_fraction, (n_a,), cell, "age_fraction")
    y0 = _broadcast_lead(baseline_rate, (n_c, n_a), cell, "baseline_rate")
    af = crf.attributable_fraction(C)
    return pop[None, None] * f[None] * y0 * af


def _region_sum(
    x: ArrayLike,
    n_cell_dims: int,
    region_fraction: ArrayLike | None,
    region_index: ArrayLike | None,
    n_regions: int | None,
) -> Array:
    cell = x.shape[x.ndim - n_cell_dims :]
    lead = x.shape[: x.ndim - n_cell_dims]
    if (region_fraction is None) == (region_index is None):
        raise ValueError("give exactly one of `region_fraction` [region, *cell] or `region_index` [*cell]")
    if region_fraction is not None:
        rf = jnp.asarray(region_fraction, dtype=jnp.float64)
        if rf.shape[1:] != cell:
            raise ValueError(
                f"`region_fraction` has shape {rf.shape}; expected [region, *cell] with cell shape {cell}"
            )
        return region_kernel(x, rf)
    idx = jnp.asarray(region_index)
    if idx.shape != cell:
        raise ValueError(f"`region_index` has shape {idx.shape}; expected the cell shape {cell}")
    if not jnp.issubdtype(idx.dtype, jnp.integer):
        raise TypeError(f"`region_index` must be an integer array (region number, -1 = none), got {idx.dtype}")
    if n_regions is None:
        raise ValueError("`n_regions` is required with `region_index` (the number of regions, a static int)")
    idx = idx.reshape(-1)
    # Cells outside every region (index < 0) go to an extra bucket that is dropped.
    idx = jnp.where(idx < 0, n_regions, idx)
    xf = jnp.moveaxis(x.reshape(lead + (-1,)), -1, 0)
    out = jax.ops.segment_sum(xf, idx, num_segments=n_regions + 1)[:n_regions]
    return jnp.moveaxis(out, 0, -1)


def sum_to_regions(
    x: Float[ArrayLike, "..."],
    *,
    n_cell_dims: int,
    region_fraction: RegionCellLike | None = None,
    region_index: Int[ArrayLike, "*cell"] | None = None,
    n_regions: int | None = None,
) -> Float[Array, "*lead region"]:
    r"""Sum a per-cell quantity into regions: $X_{\dots r} = \sum_g x_{\dots g}\, w_{r g}$ (arrays; JAX).

    With `region_fraction` this is [`ctm_interface.region_kernel`][ctm_interface.region_kernel] (`how="sum"`);
    `region_index` (one region per cell) sums by segment, without a `[region, *cell]` array. The labelled way
    to aggregate a gridded `DataArray` (sums or weighted means) is
    [`ctm_interface.aggregate_to_regions`][ctm_interface.aggregate_to_regions]. Named
    `diffmrio.health.aggregate_to_regions` before 0.2 (that name warns until 0.3).

    **Arguments:** `x[*lead, *cell]`; `n_cell_dims`: how many trailing axes of `x` are cell axes; exactly one of
    `region_fraction[region, *cell]` (fraction of each cell in each region) or `region_index[*cell]` (integer
    region per cell, -1 for none) with `n_regions`.

    **Returns:** `X[*lead, region]`.
    """
    return _region_sum(jnp.asarray(x, dtype=jnp.float64), n_cell_dims, region_fraction, region_index, n_regions)


def population_weighted_concentration(
    C: Float[ArrayLike, "*cell"],
    population: Float[ArrayLike, "*cell"],
    *,
    region_fraction: RegionCellLike | None = None,
    region_index: Int[ArrayLike, "*cell"] | None = None,
    n_regions: int | None = None,
) -> Float[Array, " region"]:
    r"""Population-weighted concentration per region (EXPORT study, eq. 14): $C_r = \sum_g c_g p_g w_{rg} / P_r$.

    **Returns:** `C_r[region]` (ug m-3); `nan` for regions with no population (gradient-safe).
    """
    C = jnp.asarray(C, dtype=jnp.float64)
    pop = jnp.asarray(population, dtype=jnp.float64)
    if pop.shape != C.shape:
        raise ValueError(f"`population` has shape {pop.shape} but `C` has shape {C.shape}")
    both = jnp.stack([C * pop, pop])
    num, den = _region_sum(both, C.ndim, region_fraction, region_index, n_regions)
    ok = den > 0
    return jnp.where(ok, num / jnp.where(ok, den, 1.0), jnp.nan)


def economic_value(deaths: Float[ArrayLike, "..."], vsl: float | Float[ArrayLike, "..."]) -> Float[Array, "..."]:
    """Monetised mortality: `deaths * VSL` (value of a statistical life, user-supplied; broadcast on the last
    axes, e.g. a VSL per region against `deaths[cause, age, region]`). China studies use ~CNY 1.5-5.5 million."""
    vsl = jnp.asarray(vsl, dtype=jnp.float64)
    return jnp.asarray(deaths, dtype=jnp.float64) * vsl


class HealthInputs(eqx.Module):
    """Population, age structure, baseline rates and regions on a grid: everything but the CRF and `C`.

    Fields (float64 unless noted; `*cell` is the grid `[row, col]`, or `[cell]` when `cell_index` is set):
    - `population[*cell]` persons; `age_fraction[age, *cell]` (or `[age]`); `baseline_rate[cause, age, *cell]`
      (or `[cause, age]`) in deaths per person-year;
    - `region_fraction[region, *cell]` or `region_index[*cell]` (int, -1 = no region);
    - `cell_index[cell]` (int, optional): flat indices into the `[row, col]` grid `grid_shape` of the cells kept
      (e.g. populated land), so a global grid costs memory only for the cells that matter;
    - static labels `causes`, `ages`, `regions`, and `grid_shape`;
    - `grid_coords` (static, optional): `((dim, values), (dim, values))` of the `[row, col]` grid (e.g. `lat`,
      `lon`; set by `build_health_inputs`), so that `HealthModel.evaluate` can check a labelled `C` against it.
    """

    population: Float[Array, "*cell"]
    age_fraction: AgeCellArray
    baseline_rate: Float[Array, "cause age *cell"]
    region_fraction: RegionCellArray | None
    region_index: Int[Array, "*cell"] | None
    cell_index: Int[Array, " cell"] | None
    causes: tuple[str, ...] = eqx.field(static=True)
    ages: tuple[int, ...] = eqx.field(static=True)
    regions: tuple[str, ...] = eqx.field(static=True)
    grid_shape: tuple[int, ...] | None = eqx.field(static=True, default=None)
    grid_coords: tuple[tuple[str, tuple[float, ...]], ...] | None = eqx.field(static=True, default=None)

    def __init__(
        self,
        population,
        age_fraction,
        baseline_rate,
        *,
        causes: Sequence[str],
        ages: Sequence[int],
        regions: Sequence[str],
        region_fraction=None,
        region_index=None,
        cell_index=None,
        grid_shape: tuple[int, ...] | None = None,
        grid_coords=None,
    ):
        self.population = jnp.asarray(population, dtype=jnp.float64)
        self.age_fraction = jnp.asarray(age_fraction, dtype=jnp.float64)
        check_rate_units(baseline_rate)
        self.baseline_rate = jnp.asarray(baseline_rate, dtype=jnp.float64)
        self.region_fraction = None if region_fraction is None else jnp.asarray(region_fraction, jnp.float64)
        self.region_index = None if region_index is None else jnp.asarray(region_index, dtype=jnp.int32)
        self.cell_index = None if cell_index is None else jnp.asarray(cell_index, dtype=jnp.int32)
        self.causes = _canonical_causes(causes)
        self.ages = tuple(int(a) for a in ages)
        self.regions = tuple(str(r) for r in regions)
        self.grid_shape = None if grid_shape is None else tuple(int(s) for s in grid_shape)
        self.grid_coords = (None if grid_coords is None else
                            tuple((str(d), tuple(float(v) for v in np.asarray(vals))) for d, vals in grid_coords))

    def __check_init__(self):
        cell = self.population.shape
        n_c, n_a, n_r = len(self.causes), len(self.ages), len(self.regions)
        if self.age_fraction.shape not in ((n_a,), (n_a,) + cell):
            raise ValueError(f"`age_fraction` has shape {self.age_fraction.shape}; expected ({n_a},) or "
                             f"{(n_a,) + cell} for {n_a} ages and cells {cell}")
        if self.baseline_rate.shape not in ((n_c, n_a), (n_c, n_a) + cell):
            raise ValueError(f"`baseline_rate` has shape {self.baseline_rate.shape}; expected {(n_c, n_a)} or "
                             f"{(n_c, n_a) + cell} for causes {self.causes} and {n_a} ages")
        if (self.region_fraction is None) == (self.region_index is None):
            raise ValueError("give exactly one of `region_fraction` [region, *cell] or `region_index` [*cell]")
        if self.region_fraction is not None and self.region_fraction.shape != (n_r,) + cell:
            raise ValueError(f"`region_fraction` has shape {self.region_fraction.shape}; expected "
                             f"{(n_r,) + cell} for regions {self.regions[:5]}... and cells {cell}")
        if self.region_index is not None and self.region_index.shape != cell:
            raise ValueError(f"`region_index` has shape {self.region_index.shape}; expected the cell shape {cell}")
        if self.cell_index is not None:
            if self.grid_shape is None:
                raise ValueError("`cell_index` needs `grid_shape` (the [row, col] shape of the full grid)")
            if self.cell_index.shape != cell or len(cell) != 1:
                raise ValueError(f"`cell_index` must be [cell] like `population` {cell}, got "
                                 f"{self.cell_index.shape}")

    @property
    def n_cell_dims(self) -> int:
        return self.population.ndim

    def cells(self, C: Float[ArrayLike, "row col"]) -> Float[Array, "*cell"]:
        """`C` on the grid -> `C` on this object's cells (a gather when `cell_index` is set)."""
        C = jnp.asarray(C, dtype=jnp.float64)
        if self.cell_index is None:
            if C.shape != self.population.shape:
                raise ValueError(f"`C` has shape {C.shape} but the population grid is {self.population.shape}")
            return C
        if C.shape != self.grid_shape:
            raise ValueError(f"`C` has shape {C.shape} but these inputs are on a grid of shape {self.grid_shape}")
        return C.reshape(-1)[self.cell_index]

    def to_regions(self, x: Float[ArrayLike, "..."]) -> Float[Array, "*lead region"]:
        """Sum a per-cell array into `regions`."""
        return _region_sum(x, self.n_cell_dims, self.region_fraction, self.region_index, len(self.regions))


class HealthModel(eqx.Module):
    """`deaths = model(C)`: `C[row, col]` PM2.5 (ug m-3) -> `deaths[cause, age, region]`, differentiable.

    **Fields:** `inputs: HealthInputs`, `crf: AbstractCRF` (its causes and ages must equal the inputs').
    Swap the CRF for a Monte Carlo draw with `eqx.tree_at(lambda m: m.crf, model, draw)`.
    """

    inputs: HealthInputs
    crf: AbstractCRF

    def __check_init__(self):
        if tuple(self.crf.causes) != tuple(self.inputs.causes):
            raise ValueError(f"CRF causes {self.crf.causes} differ from the inputs' {self.inputs.causes}: build "
                             f"both with the same `causes` (same order)")
        if tuple(self.crf.ages) != tuple(self.inputs.ages):
            raise ValueError(f"CRF ages {self.crf.ages} differ from the inputs' {self.inputs.ages}: build the CRF "
                             f"with `ages=inputs.ages`")

    def deaths_per_cell(self, C: Float[ArrayLike, "row col"]) -> Float[Array, "cause age *cell"]:
        """Attributable deaths per cause, age and cell of `inputs`."""
        i = self.inputs
        return attributable_deaths_kernel(i.cells(C), i.population, i.age_fraction, i.baseline_rate, self.crf)

    def __call__(self, C: Float[ArrayLike, "row col"]) -> Float[Array, "cause age region"]:
        """Attributable deaths per year, `[cause, age, region]`."""
        return self.inputs.to_regions(self.deaths_per_cell(C))

    def evaluate(self, C) -> xr.Dataset:
        """The labelled edge of `model(C)`: `deaths(cause, age, region)`, `total_deaths`, `pwpm(region)` and
        `population(region)` as an `xarray.Dataset`, every variable with `units`. `C`: PM2.5 (ug m-3) as an array
        on the inputs' grid or a DataArray with those dims. The computation is the jitted array kernel (use
        `model(C)` inside `jit`/`grad`/`vmap`)."""
        if isinstance(C, xr.DataArray):
            C = _on_grid(C, self.inputs.grid_coords)
        C = jnp.asarray(C, dtype=jnp.float64)
        d, pw, pop = _deaths_and_pwpm(self, C)
        return health_dataset(self.inputs, np.asarray(d), np.asarray(pw), np.asarray(pop))

    def population_weighted_concentration(self, C: Float[ArrayLike, "row col"]) -> Float[Array, " region"]:
        """Population-weighted PM2.5 per region (ug m-3)."""
        i = self.inputs
        return population_weighted_concentration(
            i.cells(C), i.population, region_fraction=i.region_fraction, region_index=i.region_index,
            n_regions=len(i.regions),
        )


def _on_grid(C: xr.DataArray, grid_coords) -> np.ndarray:
    """The values of a labelled `C` in the order of the inputs' grid: dims transposed and coordinates reordered by
    label (an ascending-latitude field on a descending-latitude grid would otherwise put every value in the wrong
    cell); a `C` with those dims on another grid is refused, one with other dims is taken in the grid's order."""
    dims = [d for d, _ in grid_coords or ()]
    if not dims or set(C.dims) != set(dims):
        return C.values  # nothing to match by (e.g. a chain's `pm25[row, col]`): taken in the grid's order
    for d, vals in grid_coords:
        if d not in C.coords:
            continue  # no labels to match: taken in the grid's order
        have = np.asarray(C[d].values, dtype=np.float64)
        want = np.asarray(vals)
        if have.shape != want.shape:
            raise ValueError(f"`C` has {len(have)} `{d}` values but the health inputs' grid has {len(want)}: regrid "
                             "the PM2.5 field onto the population grid first (or load both with the same `like`)")
        if np.allclose(have, want, rtol=0, atol=1e-6):
            continue
        order = np.argsort(have)
        pos = np.searchsorted(have[order], want)
        pos = np.clip(pos, 0, len(have) - 1)
        if not np.allclose(have[order][pos], want, rtol=0, atol=1e-6):
            raise ValueError(f"`C`'s `{d}` values ({have[:3]}...) are not the health inputs' grid ({want[:3]}...): "
                             "regrid the PM2.5 field onto the population grid first")
        C = C.isel({d: order[pos]})
    return C.transpose(*dims).values


def health_dataset(inputs: HealthInputs, deaths, pwpm, population) -> xr.Dataset:
    """Label deaths `[cause, age, region]`, population-weighted PM2.5 `[region]` and population `[region]` (numpy
    arrays) with the inputs' causes, ages and regions; every variable has `units`."""
    return xr.Dataset(
        {
            "deaths": (("cause", "age", "region"), np.asarray(deaths),
                       {"units": DEATHS_UNITS, "long_name": "PM2.5-attributable deaths"}),
            "total_deaths": ((), float(np.sum(deaths)),
                             {"units": DEATHS_UNITS, "long_name": "PM2.5-attributable deaths, all causes, ages and regions"}),
            "pwpm": (("region",), np.asarray(pwpm), {"units": PM_UNITS, "long_name": "population-weighted PM2.5"}),
            "population": (("region",), np.asarray(population), {"units": "persons"}),
        },
        coords={"cause": list(inputs.causes), "age": list(inputs.ages), "region": list(inputs.regions)},
    )  # fmt: skip


@eqx.filter_jit
def _deaths_and_pwpm(model: HealthModel, C):
    return model(C), model.population_weighted_concentration(C), model.inputs.to_regions(model.inputs.population)


def attributable_deaths(
    C: xr.DataArray | ArrayLike,  # ArrayLike only for 0.2's deprecated array call (below)
    population: xr.DataArray | ArrayLike,
    age_fraction: xr.DataArray | ArrayLike,
    baseline_rate: xr.DataArray | ArrayLike,
    crf: AbstractCRF,
    *,
    region_fraction: xr.DataArray | None = None,
) -> xr.DataArray | Float[Array, "cause age *cell"]:
    """PM2.5-attributable deaths from labelled inputs: the labelled edge of
    [`attributable_deaths_kernel`][diffmrio.health.attributable_deaths_kernel] (was `attributable_deaths_xr`, which
    still resolves, with a `DeprecationWarning`, until 0.3).

    Until 0.3 a call with plain arrays (no DataArray at all, e.g. inside `jit`) still runs the array kernel, as
    `attributable_deaths` did before 0.2, with a `DeprecationWarning`: call `attributable_deaths_kernel` for arrays.

    **Arguments:**
    - `C`: PM2.5 (ug m-3) with spatial dims (any names, e.g. `("lat", "lon")` or `("cell",)`).
    - `population`: same spatial dims and coordinates as `C`.
    - `age_fraction`: dims `("age",)` or `("age", *spatial)`; its `age` coordinate must contain `crf.ages`.
    - `baseline_rate`: dims `("cause", "age")` or `("cause", "age", *spatial)`, deaths per person-year; the `cause`
      coordinate must contain `crf.causes` (any spelling `canonical_cause` understands).
    - `region_fraction`: optional `("region", *spatial)`; when given the result is summed into regions.

    **Returns:** `deaths` with dims `("cause", "age", *spatial)` or `("cause", "age", "region")`, attrs units.
    """
    args = (("C", C), ("population", population), ("age_fraction", age_fraction), ("baseline_rate", baseline_rate))
    if region_fraction is None and not any(isinstance(da, xr.DataArray) for _, da in args):
        warnings.warn("diffmrio.health.attributable_deaths takes labelled inputs since 0.2; for arrays call "
                      "diffmrio.health.attributable_deaths_kernel (the old path will be removed in diffmrio 0.3)",
                      DeprecationWarning, stacklevel=2)
        return attributable_deaths_kernel(C, population, age_fraction, baseline_rate, crf)
    for name, da in args:
        if not isinstance(da, xr.DataArray):
            raise TypeError(f"`{name}` must be an xarray.DataArray, got {type(da).__name__}")
    spatial = tuple(C.dims)
    if set(population.dims) != set(spatial):
        raise ValueError(f"`population` dims {population.dims} differ from `C` dims {spatial}")
    population = population.transpose(*spatial)
    for d in spatial:
        if d in C.coords and d in population.coords and not np.array_equal(C[d].values, population[d].values):
            raise ValueError(f"`population` and `C` have different `{d}` coordinates: regrid one onto the other")
    if "cause" not in baseline_rate.dims or "age" not in baseline_rate.dims:
        raise ValueError(f"`baseline_rate` needs dims ('cause', 'age'[, *spatial]), has {baseline_rate.dims}")
    check_rate_units(baseline_rate.values)
    if "age" not in age_fraction.dims:
        raise ValueError(f"`age_fraction` needs an 'age' dim, has {age_fraction.dims}")
    br = baseline_rate.assign_coords(cause=list(_canonical_causes([str(c) for c in baseline_rate["cause"].values])))
    missing_c = [c for c in crf.causes if c not in list(br["cause"].values)]
    missing_a = [a for a in crf.ages if a not in list(br["age"].values) or a not in list(age_fraction["age"].values)]
    if missing_c or missing_a:
        raise ValueError(f"`baseline_rate`/`age_fraction` lack causes {missing_c} / ages {missing_a} used by the CRF")
    br = br.sel(cause=list(crf.causes), age=list(crf.ages))
    af = age_fraction.sel(age=list(crf.ages))
    br = br.transpose("cause", "age", *[d for d in spatial if d in br.dims])
    af = af.transpose("age", *[d for d in spatial if d in af.dims])
    deaths = attributable_deaths_kernel(C.values, population.values, af.values, br.values, crf)
    coords = {"cause": list(crf.causes), "age": list(crf.ages)}
    if region_fraction is not None:
        if "region" not in region_fraction.dims or set(region_fraction.dims) - {"region"} != set(spatial):
            raise ValueError(f"`region_fraction` needs dims ('region', *{spatial}), has {region_fraction.dims}")
        rf = region_fraction.transpose("region", *spatial)
        out = sum_to_regions(deaths, n_cell_dims=len(spatial), region_fraction=rf.values)
        coords["region"] = rf["region"].values
        dims = ("cause", "age", "region")
    else:
        out = deaths
        dims = ("cause", "age", *spatial)
        coords.update({d: C[d].values for d in spatial if d in C.coords})
    return xr.DataArray(np.asarray(out), dims=dims, coords=coords, name="deaths",
                        attrs={"units": DEATHS_UNITS, "long_name": "PM2.5-attributable deaths"})
