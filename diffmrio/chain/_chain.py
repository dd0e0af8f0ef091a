r"""The end-to-end chain: final demand -> output -> emissions -> CTM sources -> emulator -> PM2.5 ->
deaths, as one pure JAX function of a pytree of inputs (docs/architecture.md, "The data
path").

$$x = (I - A)^{-1} Y 1,\quad E^{ind} = S \circ x,\quad E^{fd} = S_Y \circ (1^T Y),\quad
  E^{src} = \mathrm{SourceMap}(E^{ind}, E^{fd}),\quad C = \mathrm{emulator}(E^{src}),\quad
  D = \sum_{g} P_g f_a y_{0,c,a} (1 - 1/RR_{c,a}(C_g)).$$

Every step is differentiable, so `jax.grad` gives the sensitivity of deaths to every final-demand entry,
every emission intensity or every CTM source in one reverse pass, and `jax.vmap` evaluates thousands of
Monte Carlo draws at once.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import equinox as eqx
import jax.numpy as jnp
import numpy as np
import xarray as xr
from jaxtyping import ArrayLike

from ctm_interface._regions import allocate_to_grid, spread_to_grid
from ctm_interface._vocabulary import EMISSION_LEVELS as LEVELS

from .._accounts import final_demand_intensities
from .._custom_types import Array, Float
from .._economy import economy_kernel
from .._leontief import leontief_solve
from .._mrio import MRIO
from .._units import MONEY, common_unit
from ..health._crf import AbstractCRF
from ..health._exposure import HealthModel, health_dataset

if TYPE_CHECKING:
    from surrogate import AbstractEmulator

DEFAULT_ELEVATED = ("power", "metals", "nonmetal", "chemicals")


class SourceMap(eqx.Module):
    r"""Allocates region-sector emissions of the MRIO's pollutant rows to the CTM's sources.

    $$E^{src}[k, o, l] = \sum_{q} W_{kq} \Big(\sum_{r,i} R_{ro}\, H_{il}\, E^{ind}[q, (r, i)]
      + \sum_{r} R_{ro}\, h_l\, E^{fd}[q, r]\Big)$$

    with `W` mapping MRIO stressors to CTM species (e.g. `PM_other = PM2.5 - BC - OC`), `R` the share of
    region r's emissions that belongs to CTM source region o (identity when sources are the MRIO's
    regions; a many-to-many allocation for provinces split over several source regions), `H` the share of
    sector i's emissions at each source level (stack height or sector group) and `h` that of final demand
    (households emit at ground level).

    **Fields:** `species_weights[species, stressor]`, `region_source[region, source]`,
    `sector_level[sector, level]`, `fd_level[level]`; static `stressor_rows` (rows of the MRIO's `F` used),
    `species`, `sources`, `levels`.
    """

    species_weights: Float[Array, "species stressor"]
    region_source: Float[Array, "region source"]
    sector_level: Float[Array, "sector level"]
    fd_level: Float[Array, " level"]
    stressor_rows: tuple[int, ...] = eqx.field(static=True)
    species: tuple[str, ...] = eqx.field(static=True)
    sources: tuple[str, ...] = eqx.field(static=True)
    levels: tuple[str, ...] = eqx.field(static=True)

    def __check_init__(self):
        k, q = self.species_weights.shape
        if k != len(self.species) or q != len(self.stressor_rows):
            raise ValueError(
                f"`species_weights` has shape {self.species_weights.shape}; expected ({len(self.species)} "
                f"species, {len(self.stressor_rows)} stressor rows)"
            )
        if self.region_source.shape[1] != len(self.sources):
            raise ValueError(f"`region_source` has {self.region_source.shape[1]} columns for {len(self.sources)} sources")
        if self.sector_level.shape[1] != len(self.levels) or self.fd_level.shape != (len(self.levels),):
            raise ValueError("`sector_level` and `fd_level` need one column/entry per level")

    @classmethod
    def for_mrio(
        cls,
        mrio: MRIO,
        *,
        elevated_sectors: Sequence[str] = DEFAULT_ELEVATED,
        elevated_share: float = 1.0,
        species_from: dict[str, dict[str, float]] | None = None,
        sources: Sequence[str] | None = None,
        region_source=None,
    ) -> SourceMap:
        """The default map for an MRIO whose stressors include SO2, NOx, NH3, VOC, PM2.5, BC and OC:
        CTM species `SO2, NOx, NH3, VOC, BC, OC, PM_other (= PM2.5 - BC - OC)`, one source per region
        (unless `sources`/`region_source` say otherwise), and `elevated_share` of the emissions of
        `elevated_sectors` at the elevated level."""
        species_from = species_from or {
            "SO2": {"SO2": 1.0}, "NOx": {"NOx": 1.0}, "NH3": {"NH3": 1.0}, "VOC": {"VOC": 1.0},
            "BC": {"BC": 1.0}, "OC": {"OC": 1.0}, "PM_other": {"PM2.5": 1.0, "BC": -1.0, "OC": -1.0},
        }  # fmt: skip
        names = sorted({s for d in species_from.values() for s in d}, key=mrio.stressor_index)
        rows = tuple(mrio.stressor_index(s) for s in names)
        W = np.zeros((len(species_from), len(rows)))
        for k, (sp, d) in enumerate(species_from.items()):
            for st, w in d.items():
                W[k, names.index(st)] = w
        unknown = [s for s in elevated_sectors if s not in mrio.sectors]
        if unknown:
            raise ValueError(f"elevated sectors {unknown} are not sectors of this MRIO: {list(mrio.sectors)}")
        H = np.zeros((mrio.n_sectors, 2))
        H[:, 0] = 1.0
        for s in elevated_sectors:
            i = mrio.sectors.index(s)
            H[i] = (1 - elevated_share, elevated_share)
        sources = tuple(sources) if sources is not None else mrio.regions
        Rm = np.eye(mrio.n_regions) if region_source is None else np.asarray(region_source, dtype=np.float64)
        if Rm.shape != (mrio.n_regions, len(sources)):
            raise ValueError(f"`region_source` must be (regions, sources) = ({mrio.n_regions}, {len(sources)})")
        if not np.allclose(Rm.sum(axis=1), 1.0):
            raise ValueError("each row of `region_source` must sum to 1 (a region's emissions are all allocated)")
        return cls(
            jnp.asarray(W), jnp.asarray(Rm), jnp.asarray(H), jnp.asarray([1.0, 0.0]),
            rows, tuple(species_from), sources, LEVELS,
        )  # fmt: skip

    def __call__(
        self, E_ind: Float[ArrayLike, "p n"], E_fd: Float[ArrayLike, "p region"]
    ) -> Float[Array, "species source level"]:
        R = self.region_source.shape[0]
        rows = jnp.asarray(self.stressor_rows)
        Ei = E_ind[rows].reshape(len(self.stressor_rows), R, -1)  # (q, r, i)
        Ef = E_fd[rows]  # (q, r)
        by_level = jnp.einsum("qri,il->qrl", Ei, self.sector_level) + Ef[:, :, None] * self.fd_level
        return jnp.einsum("kq,qrl,ro->kol", self.species_weights, by_level, self.region_source)


class Downscaler(eqx.Module):
    r"""Maps an emulator's receptor-region outputs to the grid by the ratio to the base case:
    $C_g = C^{base}_g \left(1 + \sum_a \phi_{ag} (y_a / y^{base}_a - 1)\right)$ per component, with
    $\phi_{ag}$ the fraction of cell g in receptor region a. Cells outside every receptor keep their base
    value. Used when an emulator predicts region means (the pf-ERSM style) and deaths must be computed per
    cell."""

    base_grid: Float[Array, "component row col"]
    receptor_fraction: Float[Array, "receptor row col"]

    def __call__(
        self, y: Float[Array, "component receptor"], y_base: Float[Array, "component receptor"]
    ) -> Float[Array, "component row col"]:
        ratio = jnp.where(y_base != 0, y / jnp.where(y_base != 0, y_base, 1.0), 1.0) - 1.0
        return self.base_grid * (1.0 + spread_to_grid(ratio, self.receptor_fraction))


class ChainInputs(eqx.Module):
    """The inputs a user perturbs or differentiates (a pytree).

    - `Y[n, fd]`: final demand; `S[p, n]`: emission intensities of industries; `S_Y[p, fd]`: direct
      emissions of final demand per unit of final demand; `A[n, n]`: technical coefficients.
    - `species_factor[species]`: multiplies CTM-species emissions (inventory uncertainty).
    - `baseline_factor[cause]`: multiplies baseline mortality rates.
    - `crf`: the concentration-response function (a Module; `None` in a chain without a health model).
    - `member_weights[member]`: weights over emulator ensemble members (one-hot picks a member; `None` for a
      single emulator).

    Arrays may be numpy (`Chain.base_inputs` passes the table's `Y` as it is) or JAX (inside `jit`, `grad`, `vmap`).
    """

    Y: Float[Array | np.ndarray, "n fd"]
    S: Float[Array | np.ndarray, "p n"]
    S_Y: Float[Array | np.ndarray, "p fd"]
    A: Float[Array | np.ndarray, "n n"]
    species_factor: Float[Array | np.ndarray, " species"]
    baseline_factor: Float[Array | np.ndarray, " cause"]
    crf: AbstractCRF | None
    member_weights: Float[Array | np.ndarray, " member"] | None = None


class ChainOutputs(eqx.Module):
    x: Float[Array, " n"]
    emissions: Float[Array, "species source level"]
    concentration: Float[Array, "component row col"]
    pm25: Float[Array, "row col"]
    deaths: Float[Array, "cause age region"]
    pwpm: Float[Array, " region"]


class Chain(eqx.Module):
    """final demand -> output -> emissions -> CTM sources -> emulator -> PM2.5 -> deaths.

    **Fields:**

    - `mrio`: the base table (labels, and base `Y`, `S`, `S_Y`, `A` for [`Chain.base_inputs`][diffmrio.chain.Chain.base_inputs]).
    - `source_map`: a [`SourceMap`][diffmrio.chain.SourceMap].
    - `emulator`: a `surrogate` emulator, a subclass of `surrogate.AbstractEmulator` (a model of your own
      subclasses it too: docs/emulators.md, "Your own emulator"); `None` for an economy-to-emissions chain;
      inputs either scaling factors `[source, species]` relative to `emissions_ref` or gridded emissions
      `[species, level, row, col]` (then `allocation` is needed).
    - `emissions_ref[species, source, level]`: the emissions the emulator's scaling factors refer to.
    - `allocation[source, level, row, col]`: spatial allocation of source emissions (gridded emulators).
    - `downscaler`: maps receptor-region outputs to the grid (source-level emulators); `None` if the
      emulator already predicts on the grid.
    - `health`: a `diffmrio.health.HealthModel` (its CRF is replaced by `ChainInputs.crf`); `None` for a chain
      that stops at emissions or concentrations.
    """

    # The test run's jaxtyping hook checks the stages' shapes but not the constructor's arguments:
    # `__check_init__` refuses a wrong emulator or health model with a message naming the fix, which the
    # hook's type check would pre-empt (and `AbstractEmulator` is imported for type checkers only).
    __no_type_check__ = True

    mrio: MRIO
    source_map: SourceMap
    emulator: AbstractEmulator | None
    emissions_ref: Float[Array, "species source level"]
    health: HealthModel | None
    allocation: Float[Array, "source level row col"] | None = None
    downscaler: Downscaler | None = None

    def __check_init__(self):
        if self.emulator is not None:
            from surrogate import AbstractEmulator  # the user built one, so surrogate is already imported

            if not isinstance(self.emulator, AbstractEmulator):
                raise TypeError(
                    f"Chain.emulator must be a surrogate emulator (a subclass of surrogate.AbstractEmulator, e.g. "
                    f"surrogate.LinearEmulator, a fitted MLPEmulator or an Ensemble), got {type(self.emulator).__name__}; "
                    "wrap a model of your own in a subclass of surrogate.AbstractEmulator (docs/emulators.md), or "
                    "pass None for a chain that stops at emissions"
                )
        if self.health is not None and not isinstance(self.health, HealthModel):
            raise TypeError(
                f"Chain.health must be a diffmrio.health.HealthModel (inputs and a CRF), got "
                f"{type(self.health).__name__}; build one with diffmrio.health.HealthModel(inputs, crf), or pass "
                "None for a chain that stops at concentrations"
            )

    def with_envelope_policy(self, policy: str) -> Chain:
        """A copy whose emulator flags inputs outside its training envelope by `policy` (`"warn"`, `"raise"`
        or `"ignore"`; see `surrogate.Envelope`); the chain itself when it has no emulator."""
        if self.emulator is None:
            return self
        return eqx.tree_at(lambda c: c.emulator, self, self.emulator.with_envelope_policy(policy))

    # ------------------------------------------------------------------ inputs
    def base_inputs(self, crf=None) -> ChainInputs:
        """The inputs of the base case: `Y`, `S`, `S_Y`, `A` of `mrio`, unit factors, the health model's CRF
        (or `crf`), and equal weights over ensemble members. Without a health model (an economy-to-emissions
        chain) the baseline factor is a single 1 and the CRF is `crf`."""
        m = self.mrio
        _, A, S = economy_kernel(m.Z, m.Y, m.F)
        S_Y = final_demand_intensities(m.F_Y, m.Y)
        n_causes = 1 if self.health is None else len(self.health.inputs.causes)
        if crf is None and self.health is not None:
            crf = self.health.crf
        mw = None
        if self.emulator is not None and self.emulator.n_members > 1:
            k = int(self.emulator.n_members)
            mw = jnp.full((k,), 1.0 / k)
        return ChainInputs(
            Y=m.Y, S=S, S_Y=S_Y, A=A,
            species_factor=jnp.ones(len(self.source_map.species)),
            baseline_factor=jnp.ones(n_causes), crf=crf,
            member_weights=mw,
        )  # fmt: skip

    # ----------------------------------------------------------------- stages
    def output(self, inp: ChainInputs) -> Float[Array, " n"]:
        return leontief_solve(inp.A, inp.Y.sum(axis=1))

    def emissions(
        self, inp: ChainInputs, x: Float[ArrayLike, " n"] | None = None
    ) -> Float[Array, "species source level"]:
        x = self.output(inp) if x is None else x
        return self.emissions_from_totals(inp, x, inp.Y.sum(axis=0))

    def emissions_from_totals(
        self, inp: ChainInputs, x: Float[ArrayLike, " n"], fd_total: Float[ArrayLike, " fd"]
    ) -> Float[Array, "species source level"]:
        """Emissions from output `x` and the column totals of final demand `fd_total = 1^T Y` (all the
        chain needs of `Y` besides `x`; used to evaluate zero-out scenarios from group totals)."""
        E_ind = inp.S * x[None, :]
        R = self.mrio.n_regions
        E_fd = (inp.S_Y * fd_total[None, :]).reshape(inp.S_Y.shape[0], R, -1).sum(axis=2)
        return self.source_map(E_ind, E_fd) * inp.species_factor[:, None, None]

    def emulator_input(self, E: Float[Array, "species source level"]) -> Float[Array, "*input"]:
        lab = self.emulator.labels
        if lab.input_kind == "scale":
            tot = E.sum(axis=2)  # (species, source)
            ref = self.emissions_ref.sum(axis=2)
            scale = jnp.where(ref != 0, tot / jnp.where(ref != 0, ref, 1.0), 1.0)
            dims = lab.input_dims
            if dims[:2] == ("source", "species"):
                return scale.T
            if dims[:2] == ("species", "source"):
                return scale
            raise ValueError(f"scaling-factor emulator with input dims {dims}: expected (source, species)")
        if self.allocation is None:
            raise ValueError("a gridded emulator needs `allocation[source, level, row, col]` in the Chain")
        return allocate_to_grid(E, self.allocation)

    def concentration(
        self, E: Float[Array, "species source level"], member_weights: Float[Array, " member"] | None = None
    ) -> Float[Array, "component row col"]:
        xin = self.emulator_input(E)
        if member_weights is not None:
            y = jnp.tensordot(member_weights, self.emulator.member_predictions(xin), axes=1)
        else:
            y = self.emulator(xin)
        if self.downscaler is not None:
            return self.downscaler(y, self.emulator.base)
        return y

    def pm25(self, C: Float[Array, "component row col"]) -> Float[Array, "row col"]:
        w = jnp.asarray(self.emulator.labels.component_weights(), dtype=C.dtype)
        return jnp.tensordot(w, C, axes=1)

    def deaths(self, pm: Float[Array, "row col"], inp: ChainInputs) -> Float[Array, "cause age region"]:
        h = self.health
        hi = h.inputs
        rate = hi.baseline_rate * inp.baseline_factor.reshape((-1,) + (1,) * (hi.baseline_rate.ndim - 1))
        model = eqx.tree_at(lambda m: (m.crf, m.inputs.baseline_rate), h, (inp.crf, rate))
        return model(pm)

    def __call__(self, inp: ChainInputs) -> ChainOutputs:
        x = self.output(inp)
        E = self.emissions(inp, x)
        C = self.concentration(E, inp.member_weights)
        pm = self.pm25(C)
        d = self.deaths(pm, inp)
        pw = self.health.population_weighted_concentration(pm)
        return ChainOutputs(x=x, emissions=E, concentration=C, pm25=pm, deaths=d, pwpm=pw)

    # ------------------------------------------------------------ labelled edge
    def evaluate(self, inputs: ChainInputs | None = None) -> xr.Dataset:
        """The chain's outputs for `inputs` (default [`Chain.base_inputs`][diffmrio.chain.Chain.base_inputs]) as a
        labelled `xarray.Dataset`, every variable with `units`: `x(region, sector)` (gross output),
        `emissions(species, source, level)`, `concentration(component, <grid>)`, `pm25(<grid>)`,
        `deaths(cause, age, receptor)`, `total_deaths`, `pwpm(receptor)` (population-weighted PM2.5) and
        `population(receptor)`, with `region` the MRIO's regions and `receptor` the health regions (as in
        [`attribute`][diffmrio.chain.attribute]).

        The computation is the jitted array function `chain(inputs)` (use that, or the stages, inside `jit`,
        `grad` or `vmap`); this method only labels its result ([`Chain.label`][diffmrio.chain.Chain.label])."""
        inp = self.base_inputs() if inputs is None else inputs
        return self.label(_call(self, inp))

    def label(self, out: ChainOutputs) -> xr.Dataset:
        """Label the arrays of one [`ChainOutputs`][diffmrio.chain.ChainOutputs] (see
        [`Chain.evaluate`][diffmrio.chain.Chain.evaluate])."""
        m, sm, lab = self.mrio, self.source_map, self.emulator.labels
        C = np.asarray(out.concentration)
        if self.downscaler is None and len(lab.output_dims) == C.ndim:
            grid = tuple(lab.output_dims[1:])
            gcoords = {d: list(c) for d, c in zip(lab.output_dims[1:], lab.output_coords[1:])}
        else:
            grid = ("row", "col")
            gcoords = {"row": np.arange(C.shape[1]), "col": np.arange(C.shape[2])}
        eu = common_unit([m.units[i] for i in sm.stressor_rows])
        cu = lab.output_units
        ds = xr.Dataset(
            {
                "x": (("region", "sector"), np.asarray(out.x).reshape(m.n_regions, m.n_sectors),
                      {"units": MONEY, "long_name": "gross output"}),
                "emissions": (("species", "source", "level"), np.asarray(out.emissions),
                              {"units": eu, "long_name": "emissions of the CTM's sources"}),
                "concentration": (("component",) + grid, C, {"units": cu, "long_name": "PM2.5 components"}),
                "pm25": (grid, np.asarray(out.pm25), {"units": cu, "long_name": "PM2.5"}),
            },
            coords={"region": list(m.regions), "sector": list(m.sectors), "species": list(sm.species),
                    "source": list(sm.sources), "level": list(sm.levels), "component": list(lab.components),
                    **gcoords},
        )  # fmt: skip
        if eu == "<unit>":
            ds["emissions"].attrs["units_note"] = "<unit>: the units of the MRIO stressors the source map combines"
        hi = self.health.inputs
        pop = np.asarray(hi.to_regions(hi.population))
        h = health_dataset(hi, np.asarray(out.deaths), np.asarray(out.pwpm), pop).rename(region="receptor")
        return xr.merge([ds, h], combine_attrs="override")

    # ---------------------------------------------------------------- targets
    def target(
        self, inp: ChainInputs, name: str = "deaths", receptor: str | None = None
    ) -> Float[Array, ""] | Float[Array, " region"]:
        """Scalar (or per-region vector with `receptor="all"`) target: `"deaths"` or `"pwpm"`
        (population-weighted PM2.5)."""
        E = self.emissions(inp)
        return self.target_from_pm25(self.pm25(self.concentration(E, inp.member_weights)), inp, name, receptor)

    def target_from_pm25(
        self, pm: Float[Array, "row col"], inp: ChainInputs, name: str = "deaths", receptor: str | None = None
    ) -> Float[Array, ""] | Float[Array, " region"]:
        """The target of [`Chain.target`][diffmrio.chain.Chain.target] from a PM2.5 field: deaths summed over causes
        and ages, or population-weighted PM2.5; per health region (`receptor="all"`), for one region, or for
        the whole domain (`None`)."""
        if name == "deaths":
            v = self.deaths(pm, inp).sum(axis=(0, 1))
        elif name == "pwpm":
            v = self.health.population_weighted_concentration(pm)
        else:
            raise ValueError(f"target must be 'deaths' or 'pwpm', got {name!r}")
        if receptor == "all":
            return v
        if receptor is None:
            if name == "pwpm":
                pop = self.health.inputs.to_regions(self.health.inputs.population)
                return jnp.sum(v * pop) / jnp.sum(pop)
            return v.sum()
        regions = self.health.inputs.regions
        if receptor not in regions:
            raise ValueError(f"receptor {receptor!r} is not a health region; available: {list(regions)}")
        return v[regions.index(receptor)]


@eqx.filter_jit
def _call(chain: Chain, inp: ChainInputs) -> ChainOutputs:
    return chain(inp)
