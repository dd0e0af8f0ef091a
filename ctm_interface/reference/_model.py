"""The reference CTM: a small two-layer Eulerian model with an exact adjoint (see docs/reference_ctm.md).

A stand-in for CMAQ/GEOS-Chem, honest about being one: it has the features that make emulation hard
(transport by seasonal winds, deposition, oxidant-limited NOx oxidation, the sulfate-nitrate-ammonium regime
switch, elevated sources), with parameters of plausible magnitude, but it is not a validated air-quality model.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jax.ad_checkpoint import checkpoint_name
from jaxtyping import Array, ArrayLike, Float

from .._progress import tqdm
from ._chemistry import air_umol_per_ppb, nitrate_dissociation_ppb2, oxidant_factor, partition_inorganic
from ._domain import COMPONENTS, LEVELS, PM25_WEIGHTS, SEASONS, SPECIES, CTMGrid
from ._io import write_adjoint, write_conc
from ._transport import advect_diffuse, exchange_layers, max_outgoing_fraction, streamfunction_winds

#: Transported tracers; SO2/SO4 are carried as kt S, NOx/TNO3/TNH3 as kt N, the others as kt of themselves.
#: TNO3 = HNO3(g) + NO3-(p), TNH3 = NH3(g) + NH4+(p): the partitioning is diagnosed every step.
TRACERS: tuple[str, ...] = ("SO2", "SO4", "NOx", "TNO3", "TNH3", "VOC", "BC", "OC", "PM_other")
#: Element or species each tracer is accounted in (the mass-balance families).
TRACER_FAMILY: tuple[str, ...] = ("S", "S", "N", "N", "N", "VOC", "BC", "OC", "PM_other")
#: Physical species with their own deposition parameters (gas and particle phase of the partitioned tracers).
DEPOSITING: tuple[str, ...] = (
    "SO2",
    "SO4",
    "NOx",
    "HNO3",
    "NO3",
    "NH3",
    "NH4",
    "VOC",
    "BC",
    "OC",
    "PM_other",
)
#: Chemical conversions tracked in the budget.
CONVERSIONS: tuple[str, ...] = ("SO2->SO4", "NOx->HNO3", "VOC oxidised")

SECONDS_PER_YEAR = 365.0 * 86400.0
# A forward run steps the transport and chemistry hundreds of times: its time is run time, not compile time. So
# `run_ensemble` compiles with XLA's full backend optimisation even where XLA_FLAGS lowers it to save compile
# time (the test suite does): a run on the quick demo grid then takes 0.06 instead of 1.1 CPU-s, for about 1 CPU-s
# more compiling, once. (`run` keeps the process's setting: JAX allows compiler options only on a top-level jit,
# and `run` is also traced inside other functions, the adjoint's among them.)
_RUN_COMPILER_OPTIONS = {"xla_backend_optimization_level": 3}
_M = {
    "S": 32.06,
    "N": 14.007,
    "SO2": 64.066,
    "NO2": 46.006,
    "NH3": 17.031,
    "SO4": 96.06,
    "NO3": 62.005,
    "NH4": 18.039,
}
# kt of emitted species -> kt of tracer (SO2 -> S, NOx as NO2 -> N, NH3 -> N, others 1:1).
_EMIT = np.zeros((len(TRACERS), len(SPECIES)))
for _s, _t, _f in (
    ("SO2", "SO2", _M["S"] / _M["SO2"]),
    ("NOx", "NOx", _M["N"] / _M["NO2"]),
    ("NH3", "TNH3", _M["N"] / _M["NH3"]),
    ("VOC", "VOC", 1.0),
    ("BC", "BC", 1.0),
    ("OC", "OC", 1.0),
    ("PM_other", "PM_other", 1.0),
):
    _EMIT[TRACERS.index(_t), SPECIES.index(_s)] = _f
_I = {name: i for i, name in enumerate(TRACERS)}
_D = {name: i for i, name in enumerate(DEPOSITING)}


def pm25_from_components(C: Float[ArrayLike, "*batch component row col"]) -> Float[Array, "*batch row col"]:
    """PM2.5 (ug m-3) from its components: $PM_{2.5} = SO_4 + NO_3 + NH_4 + BC + 1.4\\,OC + PM_{other}$.

    **Arguments**: `C` `(..., component=6, row, col)` ordered as `COMPONENTS`.

    **Returns**: `(..., row, col)`.
    """
    C = jnp.asarray(C)
    if C.ndim < 3 or C.shape[-3] != len(COMPONENTS):
        raise ValueError(
            f"pm25_from_components: `C` must have shape (..., {len(COMPONENTS)}, row, col) with components "
            f"{COMPONENTS}, got {C.shape}"
        )
    return jnp.einsum("...cyx,c->...yx", C, jnp.asarray(PM25_WEIGHTS, dtype=C.dtype))


def population_weighted_pm25(
    C: Float[ArrayLike, "*batch component row col"] | Float[ArrayLike, "row col"],
    population: Float[ArrayLike, "_row _col"],  # `_`: not checked here; the grids' agreement is checked below
) -> Float[Array, "*batch"]:
    """Population-weighted mean PM2.5, the standard cost of the adjoint: $J = \\sum_g c_g p_g / \\sum_g p_g$.

    (EXPORT study eq. 14 over the whole domain.)

    **Arguments**: `C`, either components `(..., component=6, row, col)` (PM2.5 is formed from them) or
    PM2.5 itself `(row, col)`; `population` `(row, col)` persons (>= 0, not all zero).

    **Returns**: the population-weighted PM2.5 in ug m-3, shape `(...)` (a scalar for one field).
    """
    C = jnp.asarray(C)
    population = jnp.asarray(population, dtype=C.dtype)
    if population.ndim != 2:
        raise ValueError(
            f"population_weighted_pm25: `population` must be (row, col), got shape {population.shape}"
        )
    pm = pm25_from_components(C) if C.ndim >= 3 else C
    if pm.shape[-2:] != population.shape:
        raise ValueError(
            f"population_weighted_pm25: `C` is on a {pm.shape[-2:]} grid but `population` is {population.shape}"
        )
    return jnp.einsum("...yx,yx->...", pm, population) / jnp.sum(population)


class CTMBudget(eqx.Module):
    """Per-season mass budget of a run, in kt of each tracer's accounting unit (see `TRACERS`).

    **Fields** (all `(season=4, tracer=9)` unless noted): `emitted`, `deposited` (dry + wet), `outflow`
    (through the domain edges), `remaining` (in the two layers at the end of the season's integration),
    `converted` `(season, conversion=3)` as in `CONVERSIONS` (kt S of SO2 -> SO4, kt N of NOx -> HNO3, kt VOC
    oxidised).
    """

    emitted: Float[Array, "season tracer"]
    deposited: Float[Array, "season tracer"]
    outflow: Float[Array, "season tracer"]
    remaining: Float[Array, "season tracer"]
    converted: Float[Array, "season conversion"]

    def chemical_net(self) -> Float[Array, "season tracer"]:
        """Net chemical production per tracer (negative for the reactants)."""
        s, n, v = (self.converted[..., i] for i in range(3))
        z = jnp.zeros_like(s)
        return jnp.stack([-s, s, -n, n, z, -v, z, z, z], axis=-1)

    def tracer_residual(self) -> Float[Array, "season tracer"]:
        """`emitted + chemical_net - deposited - outflow - remaining` (zero up to rounding)."""
        return self.emitted + self.chemical_net() - self.deposited - self.outflow - self.remaining

    def families(self) -> dict[str, dict[str, Float[Array, " season"]]]:
        """Budget per family (S as kt S, N as kt N, VOC incl. the oxidised amount as a sink, BC, OC,
        PM_other): `{family: {"emitted", "deposited", "outflow", "remaining", "converted_out"}}`, each
        `(season,)`. Within a family, chemistry only moves mass between tracers, except VOC oxidation.
        """
        out = {}
        fam = np.asarray(TRACER_FAMILY)
        for f in dict.fromkeys(TRACER_FAMILY):
            idx = np.flatnonzero(fam == f)
            out[f] = {
                "emitted": self.emitted[:, idx].sum(-1),
                "deposited": self.deposited[:, idx].sum(-1),
                "outflow": self.outflow[:, idx].sum(-1),
                "remaining": self.remaining[:, idx].sum(-1),
                "converted_out": self.converted[:, 2] if f == "VOC" else jnp.zeros_like(self.emitted[:, 0]),
            }
        return out


class CTMResult(eqx.Module):
    """Per-season output of `ReferenceCTM.run_seasons`.

    **Fields**: `C` `(season=4, component=6, row, col)` surface (boundary-layer) concentrations in ug m-3 at the
    end of each season's integration (approximately steady state); `budget` a `CTMBudget`;
    `tendency` `(season=4,)`, the relative change of domain-mean surface PM2.5 over the last simulated day
    (a steady-state diagnostic: small when spin-up is complete).
    """

    C: Float[Array, "season component row col"]
    budget: CTMBudget
    tendency: Float[Array, " season"]

    @property
    def annual(self) -> Float[Array, "component row col"]:
        """Annual mean, the mean of the four seasons (ug m-3)."""
        return jnp.mean(self.C, axis=0)


def _implicit_fraction(k_dt):
    """Fraction converted in a step by backward Euler for a first-order loss: $k\\Delta t / (1 + k\\Delta t)$."""
    return k_dt / (1.0 + k_dt)


def _checkpointed_scan(step: Callable, carry, n: int, chunk: int | None):
    """`n` applications of `step` (a `lax.scan`) with `jax.checkpoint` on the step, so reverse mode stores per
    step only the carry and the state after transport (named `"transported"`: the transport is linear, so its
    reverse pass needs nothing else), not the step's intermediates, and recomputes the chemistry on the way back.

    With `chunk`, a second level: chunks of `chunk` steps are checkpointed too, so reverse mode stores
    `n / chunk + chunk` carries at the price of one more forward pass. `prevent_cse=False` is safe inside
    `scan` and lets XLA optimise the recomputation (JAX docs of `jax.checkpoint`).
    """
    step = jax.checkpoint(
        step, prevent_cse=False, policy=jax.checkpoint_policies.save_only_these_names("transported")
    )

    def inner(c, _):
        return step(c), None

    if chunk is None or chunk >= n:
        return jax.lax.scan(inner, carry, None, length=n)[0]

    @functools.partial(jax.checkpoint, prevent_cse=False)
    def outer(c, _):
        c, _ = jax.lax.scan(inner, c, None, length=chunk)
        return c, None

    n_outer, rem = divmod(n, chunk)
    carry, _ = jax.lax.scan(outer, carry, None, length=n_outer)
    if rem:
        carry, _ = jax.lax.scan(inner, carry, None, length=rem)
    return carry


class ReferenceCTM(eqx.Module):
    """The reference CTM (a synthetic stand-in for CMAQ/GEOS-Chem with an exact adjoint).

    Two well-mixed layers per column (a boundary layer of seasonal depth and a free-troposphere layer above
    it) on a regular grid, four seasons (Jan/Apr/Jul/Oct) of prescribed non-divergent winds, each integrated
    from clean air for `n_steps` steps of `dt` (by default 12 days of 2 h steps with 1 h transport sub-steps:
    near steady state) and averaged to the annual mean. Per step: emissions (ground level into the boundary layer; elevated sources a fraction
    `elevated_bl_fraction` into it and the rest into the layer above), flux-form upwind advection with
    horizontal diffusion and open boundaries, entrainment between layers, chemistry (SO2 -> sulfate and
    NOx -> HNO3 at seasonal rates scaled by oxidant availability, a function of the NOx/VOC ratio; backward
    Euler), smooth sulfate-nitrate-ammonium partitioning, and dry (boundary layer) and wet deposition of each
    phase (exact exponential losses). See docs/reference_ctm.md for the equations.

    Construct with `ReferenceCTM.default(...)`; every rate is a field, so `eqx.tree_at` changes any of them.

    **Fields** (season-dependent ones have a leading `season=4` axis)

    - `u` `(season, layer=2, row, col + 1)`, `v` `(season, layer=2, row + 1, col)`: face winds (m/s).
    - `kh` `(season,)`: horizontal diffusivity (m2/s).
    - `h_bl` `(season,)`: boundary-layer depth (m); `h_ft`: depth of the layer above (m).
    - `w_exchange` `(season,)`: entrainment velocity between the layers (m/s).
    - `temperature` `(season, row, col)`: boundary-layer temperature (K); the upper layer is
      `ft_temperature_offset` (K) colder. `p_bl`, `p_ft`: layer pressures (Pa).
    - `wet_rate` `(season, row, col)`: wet scavenging rate of aerosol in the boundary layer (1/s); other
      species scale it by `wet_efficiency`, the upper layer by `ft_wet_factor`.
    - `v_dry` `(11,)`, `wet_efficiency` `(11,)`: per `DEPOSITING` species, dry deposition velocity (m/s,
      boundary layer only) and relative wet scavenging efficiency.
    - `k_so2`, `k_nox`, `k_voc` `(season,)`: first-order oxidation rates with full oxidant (1/s);
      `so2_oxidant_independent`: fraction of the SO2 rate independent of the oxidant factor.
    - `bvoc` `(season,)`: background (biogenic) VOC (ug m-3) in the boundary layer (`ft_bvoc_factor` x above).
    - `voc_nox_half`, `titration_exponent` (static float p > 1): oxidant factor $1/(1 + (NOx/(r\\,VOC))^p)$.
    - `k_sulfate_ppb`: equilibrium constant of the sulfate-ammonia pairing (ppb; small = strong affinity).
    - `nitrate_k_factor`: the nitrate equilibrium constant is `nitrate_k_factor * sqrt(Kp(T))` ppb with Kp
      from Mozurkewich (1993).
    - `elevated_bl_fraction`: fraction of elevated emissions released into the boundary layer.
    - `grid` (static `CTMGrid`), `dt` (static, s), `n_steps` (static, steps per season),
      `transport_substeps` (static, advection-diffusion sub-steps per step), `checkpoint_every` (static, `None`
      or steps per checkpointed chunk in reverse mode).

    Methods: `run` (annual mean), `run_seasons` (per season, mass budget), `adjoint`, `run_ensemble`,
    `write_conc`, `write_adjoint`, `pm25`. Reverse mode (`jax.grad`, `eqx.filter_grad`) and forward mode
    work through every method; `jax.vmap` over emissions too.
    """

    u: Float[Array, "season layer row colp1"]
    v: Float[Array, "season layer rowp1 col"]
    kh: Float[Array, " season"]
    h_bl: Float[Array, " season"]
    h_ft: Float[Array, ""]
    w_exchange: Float[Array, " season"]
    temperature: Float[Array, "season row col"]
    ft_temperature_offset: Float[Array, ""]
    p_bl: Float[Array, ""]
    p_ft: Float[Array, ""]
    wet_rate: Float[Array, "season row col"]
    ft_wet_factor: Float[Array, ""]
    v_dry: Float[Array, " depositing"]
    wet_efficiency: Float[Array, " depositing"]
    k_so2: Float[Array, " season"]
    k_nox: Float[Array, " season"]
    k_voc: Float[Array, " season"]
    so2_oxidant_independent: Float[Array, ""]
    bvoc: Float[Array, " season"]
    ft_bvoc_factor: Float[Array, ""]
    voc_nox_half: Float[Array, ""]
    k_sulfate_ppb: Float[Array, ""]
    nitrate_k_factor: Float[Array, ""]
    elevated_bl_fraction: Float[Array, ""]
    grid: CTMGrid = eqx.field(static=True)
    dt: float = eqx.field(static=True, default=7200.0)
    n_steps: int = eqx.field(static=True, default=144)
    checkpoint_every: int | None = eqx.field(static=True, default=None)
    titration_exponent: float = eqx.field(static=True, default=1.5)
    transport_substeps: int = eqx.field(static=True, default=2)
    # Not a field: tells jaxtyping's checker (the test run's import hook) to leave `__init__` alone, because
    # `__check_init__` checks every array field against the grid and names the wrong one (a generic check of
    # the annotations above would blame whichever later field disagrees with it). The methods are still checked.
    __no_type_check__ = True

    def __check_init__(self):
        ny, nx = self.grid.shape
        ns = len(SEASONS)
        expected = {
            "u": (ns, 2, ny, nx + 1),
            "v": (ns, 2, ny + 1, nx),
            "kh": (ns,),
            "h_bl": (ns,),
            "w_exchange": (ns,),
            "temperature": (ns, ny, nx),
            "wet_rate": (ns, ny, nx),
            "v_dry": (len(DEPOSITING),),
            "wet_efficiency": (len(DEPOSITING),),
            "k_so2": (ns,),
            "k_nox": (ns,),
            "k_voc": (ns,),
            "bvoc": (ns,),
        }
        for name, shape in expected.items():
            got = jnp.shape(getattr(self, name))
            if got != shape:
                raise ValueError(
                    f"ReferenceCTM: `{name}` must have shape {shape} for a {ny} x {nx} grid, got {got}"
                )
        if not (isinstance(self.n_steps, int) and self.n_steps >= 1):
            raise ValueError(f"ReferenceCTM: `n_steps` must be a positive integer, got {self.n_steps!r}")
        if self.checkpoint_every is not None and not (
            isinstance(self.checkpoint_every, int) and self.checkpoint_every >= 1
        ):
            raise ValueError(
                f"ReferenceCTM: `checkpoint_every` must be a positive integer or None, got {self.checkpoint_every!r}"
            )
        if not (isinstance(self.transport_substeps, int) and self.transport_substeps >= 1):
            raise ValueError(
                f"ReferenceCTM: `transport_substeps` must be a positive integer, got {self.transport_substeps!r}"
            )
        if not float(self.dt) > 0:
            raise ValueError(f"ReferenceCTM: `dt` must be positive (s), got {self.dt!r}")
        # The transport stability/positivity condition, checked whenever the winds are concrete.
        if not isinstance(self.u, jax.core.Tracer) and not isinstance(self.kh, jax.core.Tracer):
            frac = max_outgoing_fraction(
                np.asarray(self.u),
                np.asarray(self.v),
                np.asarray(self.kh)[:, None],
                self.dt / self.transport_substeps,
                self.grid.xcell,
                self.grid.ycell,
            )
            if frac > 1.0:
                raise ValueError(
                    f"ReferenceCTM: the transport step would move {frac:.2f} (> 1) of a cell's mass out in one step "
                    f"(CFL violated): reduce `dt` (now {self.dt} s) or raise `transport_substeps` (now "
                    f"{self.transport_substeps}), or reduce the winds/diffusivity"
                )

    # ------------------------------------------------------------------ construction
    @classmethod
    def default(
        cls,
        grid: CTMGrid | None = None,
        *,
        n_days: float = 12.0,
        dt: float = 7200.0,
        transport_substeps: int = 2,
        checkpoint_every: int | None = None,
    ) -> ReferenceCTM:
        """The default reference CTM for a plausible East-Asia-like domain (synthetic parameters).

        Winds: a uniform seasonal flow plus one anticyclonic/cyclonic gyre, from a streamfunction (exactly
        non-divergent): January north-westerly winter monsoon under a Siberian-high-like anticyclone, April
        westerly, July southerly summer monsoon on the flank of a subtropical high in the south-east, October
        weak north-westerly; the upper layer flows 1.2 x faster plus 1 m/s of westerly. Boundary-layer depth
        400/800/1000/600 m, temperatures 270/288/299/287 K at 34N falling northward, wet scavenging strongest
        in July and in the wetter south-east. See docs/reference_ctm.md for every default.

        **Arguments**

        - `grid`: the `CTMGrid` (default 48 x 36 cells of 36 km). Wind patterns scale with the domain size.
        - `n_days`: simulated days per season (spin-up from clean air to near steady state).
        - `dt`: time step (s) of emissions, chemistry, exchange and deposition.
        - `transport_substeps`: advection-diffusion sub-steps per step; `dt / transport_substeps` must satisfy
          the transport CFL condition (checked).
        - `checkpoint_every`: `None` (default) checkpoints every step (reverse mode stores one state per step,
          about 0.5 MB x `n_steps` on the default grid); an integer adds a second level of checkpointing over
          chunks of that many steps (less memory, one more forward pass).

        **Returns**: a `ReferenceCTM`.
        """
        grid = CTMGrid() if grid is None else grid
        if not isinstance(grid, CTMGrid):
            raise TypeError(f"ReferenceCTM.default: `grid` must be a CTMGrid, got {type(grid).__name__}")
        if not float(n_days) > 0:
            raise ValueError(f"ReferenceCTM.default: `n_days` must be positive, got {n_days!r}")
        n_steps = max(1, int(round(float(n_days) * 86400.0 / float(dt))))
        ny, nx = grid.shape
        dx, dy = float(grid.xcell), float(grid.ycell)
        lx, ly = nx * dx, ny * dy
        # Corner coordinates relative to the domain centre (m).
        xc = (np.arange(nx + 1) - nx / 2) * dx
        yc = (np.arange(ny + 1) - ny / 2) * dy
        X, Y = np.meshgrid(xc, yc)
        # (U, V) mean flow in m/s, gyre amplitude (m2/s; > 0 clockwise = anticyclonic) and centre (fractions).
        seasons = {
            "Jan": (2.0, -1.5, 1.0e6, (-0.30, 0.35)),
            "Apr": (1.8, 0.2, -0.7e6, (0.10, 0.20)),
            "Jul": (-0.6, 1.5, 0.8e6, (0.45, -0.30)),
            "Oct": (1.5, -0.8, 0.7e6, (-0.10, 0.30)),
        }
        sigma = 0.25 * np.hypot(lx, ly)
        u = np.zeros((4, 2, ny, nx + 1))
        v = np.zeros((4, 2, ny + 1, nx))
        for s, name in enumerate(SEASONS):
            U, V, A, (fx, fy) = seasons[name]
            for layer, (fac, du, fa) in enumerate(((1.0, 0.0, 1.0), (1.2, 1.0, 1.2))):
                gyre = np.exp(-((X - fx * lx) ** 2 + (Y - fy * ly) ** 2) / (2 * sigma**2))
                psi = -(fac * U + du) * Y + fac * V * X + fa * A * gyre
                u[s, layer], v[s, layer] = streamfunction_winds(psi, dx, dy)

        lon, lat = grid.cell_centres_lonlat()
        t34 = np.array([270.0, 288.0, 299.0, 287.0])
        dtdlat = np.array([-0.9, -0.7, -0.4, -0.7])
        temperature = (
            t34[:, None, None] + dtdlat[:, None, None] * (lat - 34.0)[None] - 0.05 * (110.0 - lon)[None]
        )
        # Wetter towards the south-east (coast), drier towards the north-west (Steppe); mean 1.
        cx = (np.arange(nx) + 0.5) / nx * 2 - 1
        cy = (np.arange(ny) + 0.5) / ny * 2 - 1
        gx, gy = np.meshgrid(cx, cy)
        pf = np.exp(0.8 * gx - 0.6 * gy)
        pf = pf / pf.mean()
        wet = np.array([1.0e-6, 3.0e-6, 6.0e-6, 2.5e-6])[:, None, None] * pf[None]

        dep = {  # name: (dry deposition velocity m/s, relative wet scavenging efficiency)
            "SO2": (0.004, 0.3),
            "SO4": (0.0015, 1.0),
            "NOx": (0.001, 0.0),
            "HNO3": (0.02, 1.5),
            "NO3": (0.0015, 1.0),
            "NH3": (0.008, 0.8),
            "NH4": (0.0015, 1.0),
            "VOC": (0.001, 0.0),
            "BC": (0.001, 0.6),
            "OC": (0.0015, 0.8),
            "PM_other": (0.003, 0.9),
        }
        f64 = lambda x: jnp.asarray(x, dtype=jnp.float64)  # noqa: E731
        return cls(
            u=f64(u),
            v=f64(v),
            kh=f64([1.5e4, 1.5e4, 1.2e4, 1.5e4]),
            h_bl=f64([400.0, 800.0, 1000.0, 600.0]),
            h_ft=f64(2500.0),
            w_exchange=f64([0.006, 0.012, 0.015, 0.009]),
            temperature=f64(temperature),
            ft_temperature_offset=f64(10.0),
            p_bl=f64(98000.0),
            p_ft=f64(80000.0),
            wet_rate=f64(wet),
            ft_wet_factor=f64(0.6),
            v_dry=f64([dep[k][0] for k in DEPOSITING]),
            wet_efficiency=f64([dep[k][1] for k in DEPOSITING]),
            k_so2=f64([2.5e-6, 3.5e-6, 6.0e-6, 3.0e-6]),
            k_nox=f64([1.0e-5, 1.6e-5, 2.5e-5, 1.2e-5]),
            k_voc=f64([5.0e-6, 1.0e-5, 2.0e-5, 8.0e-6]),
            so2_oxidant_independent=f64(0.6),
            bvoc=f64([1.0, 4.0, 12.0, 3.0]),
            ft_bvoc_factor=f64(0.3),
            voc_nox_half=f64(1.0),
            k_sulfate_ppb=f64(0.01),
            nitrate_k_factor=f64(2.0),
            elevated_bl_fraction=f64(0.3),
            grid=grid,
            dt=float(dt),
            n_steps=n_steps,
            checkpoint_every=checkpoint_every,
            transport_substeps=int(transport_substeps),
        )

    # ------------------------------------------------------------------ kernels
    def _check_emissions(self, E) -> Float[Array, "species level row col"]:
        if not hasattr(E, "shape"):
            raise TypeError(
                f"ReferenceCTM: `E` must be an array (species, level, row, col), got {type(E).__name__}"
            )
        E = jnp.asarray(E)
        want = (len(SPECIES), len(LEVELS), *self.grid.shape)
        if E.shape != want:
            raise ValueError(
                f"ReferenceCTM: `E` must have shape {want} = (species {SPECIES}, level {LEVELS}, row, col) in kt/yr "
                f"per cell, got {E.shape}; map region totals to the grid with DemoDomain.gridded_emissions"
            )
        E = E.astype(jnp.float64)
        return eqx.error_if(
            E,
            jnp.any(E < 0) | ~jnp.all(jnp.isfinite(E)),
            "ReferenceCTM: emissions `E` must be finite and >= 0",
        )

    def _season_operators(self) -> dict:
        """Everything of a season's step that does not depend on the state (leading season axis)."""
        dt, dx, dy = self.dt, self.grid.xcell, self.grid.ycell
        dtt = dt / self.transport_substeps
        cx, cy = self.u * (dtt / dx), self.v * (dtt / dy)
        ns = len(SEASONS)
        h = jnp.stack([self.h_bl, jnp.broadcast_to(self.h_ft, (ns,))], axis=1)  # (season, layer)
        volume = h * self.grid.cell_area
        t = jnp.stack(
            [self.temperature, self.temperature - self.ft_temperature_offset], axis=1
        )  # (s, l, y, x)
        p = jnp.stack([self.p_bl, self.p_ft])[None, :, None, None]
        per_ppb = air_umol_per_ppb(t, p)
        k_nitrate = self.nitrate_k_factor * jnp.sqrt(nitrate_dissociation_ppb2(t)) * per_ppb
        k_sulfate = self.k_sulfate_ppb * per_ppb
        # Deposition loss fractions per step: (season, depositing, layer, row, col).
        dry = (
            self.v_dry[None, :, None, None] / self.h_bl[:, None, None, None]
        )  # (s, d, y, x) boundary layer only
        wet = self.wet_efficiency[None, :, None, None] * self.wet_rate[:, None]  # (s, d, y, x)
        rate = jnp.stack([dry + wet, self.ft_wet_factor * wet], axis=2)
        loss = -jnp.expm1(-rate * dt)  # (season, depositing, layer, row, col)
        base = [_D[name] for name in ("SO2", "SO4", "NOx", "HNO3", "NH3", "VOC", "BC", "OC", "PM_other")]
        bvoc = jnp.stack([self.bvoc, self.ft_bvoc_factor * self.bvoc], axis=1)  # (s, l)
        return dict(
            cx_pos=jnp.maximum(cx, 0.0),
            cx_neg=jnp.minimum(cx, 0.0),
            cy_pos=jnp.maximum(cy, 0.0),
            cy_neg=jnp.minimum(cy, 0.0),
            d=self.kh * (dtt / dx**2),
            dy=self.kh * (dtt / dy**2),
            h=h,
            volume=volume,
            k_nitrate=k_nitrate,
            k_sulfate=k_sulfate,
            loss=loss[:, base],
            dloss_no3=loss[:, _D["NO3"]] - loss[:, _D["HNO3"]],
            dloss_nh4=loss[:, _D["NH4"]] - loss[:, _D["NH3"]],
            bvoc=bvoc,
            k_so2=self.k_so2,
            k_nox=self.k_nox,
            k_voc=self.k_voc,
            w=self.w_exchange,
        )

    def _emission_step(
        self, E: Float[Array, "species level row col"]
    ) -> Float[Array, "tracer layer row col"]:
        """Emitted amount per step (kt of tracer), split over the two layers."""
        Et = jnp.einsum("ts,slyx->tlyx", jnp.asarray(_EMIT), E) * (self.dt / SECONDS_PER_YEAR)
        f = self.elevated_bl_fraction
        low = Et[:, 0] + f * Et[:, 1]
        up = (1.0 - f) * Et[:, 1]
        return jnp.stack([low, up], axis=1)

    def _partition(self, so4_kt, tnh3_kt, tno3_kt, op):
        """Sulfate, particle NH4+ and NO3- (umol m-3) from the amounts (kt S, kt N, kt N) of each layer
        (arrays `(..., layer, row, col)`); also returns the umol m-3 per (kt / (g/mol)) factor."""
        to_umol = 1e15 / op["volume"][:, None, None]  # (layer, 1, 1)
        so4 = so4_kt * to_umol / _M["S"]
        ta = tnh3_kt * to_umol / _M["N"]
        tn = tno3_kt * to_umol / _M["N"]
        nh4, no3 = partition_inorganic(so4, ta, tn, op["k_sulfate"], op["k_nitrate"])
        return so4, nh4, no3, to_umol

    def _step(self, op: dict, e_step, m, budget: bool):
        """One time step of one season: `m` (tracer, layer, row, col) in kt -> new `m` (and budget terms).

        The tracers are split once and re-joined once (rather than indexed one by one), which keeps the
        reverse pass a few fused kernels instead of a scatter per tracer access.
        """
        dt = self.dt
        m = m + e_step
        # Transport (both layers, all tracers at once) in `transport_substeps` sub-steps.
        out = 0.0
        for _ in range(self.transport_substeps):
            m, o = advect_diffuse(
                m,
                op["cx_pos"][None],
                op["cx_neg"][None],
                op["cy_pos"][None],
                op["cy_neg"][None],
                op["d"],
                op["dy"],
            )
            out = out + o
        m = exchange_layers(m, op["h"], op["w"], dt)
        # Saved in reverse mode (see `_checkpointed_scan`): the linear transport then needs no recomputation.
        m = checkpoint_name(m, "transported")
        so2, so4, nox, tno3, tnh3, voc, bc, oc, pmo = jnp.split(
            m, len(TRACERS), axis=0
        )  # each (1, layer, y, x)
        # Chemistry with oxidant availability from the NOx/VOC ratio.
        to_ug = 1e15 / op["volume"][:, None, None]  # ug m-3 per kt, (layer, 1, 1)
        nox_ug = nox * to_ug * (_M["NO2"] / _M["N"])
        voc_ug = voc * to_ug + op["bvoc"][:, None, None]
        f_ox = oxidant_factor(nox_ug, voc_ug, self.voc_nox_half, self.titration_exponent)
        a = self.so2_oxidant_independent
        # Backward (implicit) Euler for the first-order losses: m_new = m / (1 + k dt), positive for any step.
        conv_s = _implicit_fraction(op["k_so2"] * (a + (1.0 - a) * f_ox) * dt) * so2
        conv_n = _implicit_fraction(op["k_nox"] * f_ox * dt) * nox
        conv_v = _implicit_fraction(op["k_voc"] * f_ox * dt) * voc
        so2, so4 = so2 - conv_s, so4 + conv_s
        nox, tno3 = nox - conv_n, tno3 + conv_n
        voc = voc - conv_v
        # Deposition; the partitioned tracers deposit gas and particle phase at their own rates:
        # dep(TNO3) = TNO3 * L_HNO3 + NO3(p) * (L_NO3 - L_HNO3), likewise for TNH3 with NH3 and NH4.
        _, nh4, no3, to_umol = self._partition(so4, tnh3, tno3, op)
        loss = op["loss"]  # (tracer, layer, y, x), gas-phase loss for TNO3/TNH3
        tr = (so2, so4, nox, tno3, tnh3, voc, bc, oc, pmo)
        dep = [x * loss[i : i + 1] for i, x in enumerate(tr)]
        dep[_I["TNO3"]] = dep[_I["TNO3"]] + no3 * (_M["N"] / to_umol) * op["dloss_no3"]
        dep[_I["TNH3"]] = dep[_I["TNH3"]] + nh4 * (_M["N"] / to_umol) * op["dloss_nh4"]
        m = jnp.concatenate([x - d for x, d in zip(tr, dep, strict=True)], axis=0)
        if not budget:
            return m, None
        total = lambda x: jnp.sum(x)  # noqa: E731
        terms = (
            jnp.sum(out, axis=-1),
            jnp.stack([total(d) for d in dep]),
            jnp.stack([total(conv_s), total(conv_n), total(conv_v)]),
        )
        return m, terms

    def _surface_components(self, m, op) -> Float[Array, "component row col"]:
        """Boundary-layer PM2.5 components (ug m-3) from the tracer amounts of one season."""
        so4, nh4, no3, _ = self._partition(m[_I["SO4"]], m[_I["TNH3"]], m[_I["TNO3"]], op)
        to_ug = 1e15 / op["volume"][0]
        C = jnp.stack(
            [
                so4[0] * _M["SO4"],
                no3[0] * _M["NO3"],
                nh4[0] * _M["NH4"],
                m[_I["BC"], 0] * to_ug,
                m[_I["OC"], 0] * to_ug,
                m[_I["PM_other"], 0] * to_ug,
            ]
        )
        return C

    def _integrate(self, E, budget: bool, n_steps: int | None = None, m0=None):
        """Integrate the four seasons (vmapped) from `m0` (default clean air); returns the final amounts and,
        with `budget`, the accumulated (outflow, deposited, converted) per season."""
        ops = self._season_operators()
        e_step = self._emission_step(E)
        ny, nx = self.grid.shape
        ns = len(SEASONS)
        if m0 is None:
            m0 = jnp.zeros((ns, len(TRACERS), 2, ny, nx), dtype=jnp.float64)
        n = self.n_steps if n_steps is None else n_steps
        vstep = jax.vmap(lambda op, m: self._step(op, e_step, m, budget))
        if budget:
            acc0 = (
                jnp.zeros((ns, len(TRACERS))),
                jnp.zeros((ns, len(TRACERS))),
                jnp.zeros((ns, len(CONVERSIONS))),
            )

            def step(carry):
                m, acc = carry
                m, terms = vstep(ops, m)
                return m, jax.tree_util.tree_map(jnp.add, acc, terms)

            return _checkpointed_scan(step, (m0, acc0), n, self.checkpoint_every), ops, e_step

        def step(m):
            return vstep(ops, m)[0]

        return (_checkpointed_scan(step, m0, n, self.checkpoint_every), None), ops, e_step

    # ------------------------------------------------------------------ public API
    @eqx.filter_jit
    def run(self, E: Float[ArrayLike, "species level row col"]) -> Float[Array, "component row col"]:
        """Annual-mean surface PM2.5 components from gridded emissions.

        **Arguments**: `E` `(species=7, level=2, row, col)` in kt/yr per cell, ordered as `SPECIES` and
        `LEVELS` (finite, >= 0).

        **Returns**: `C` `(component=6, row, col)` in ug m-3, ordered as `COMPONENTS`: the mean of the four
        seasons' (near steady-state) boundary-layer concentrations.

        Pure, jit-compiled, differentiable and `jax.vmap`-able over `E`.
        """
        E = self._check_emissions(E)
        (m, _), ops, _ = self._integrate(E, budget=False)
        C = jax.vmap(self._surface_components)(m, ops)
        return jnp.mean(C, axis=0)

    @eqx.filter_jit
    def run_seasons(self, E: Float[ArrayLike, "species level row col"]) -> CTMResult:
        """Per-season concentrations, the mass budget and a steady-state diagnostic (see `CTMResult`).

        **Arguments**: `E` `(species=7, level=2, row, col)` in kt/yr per cell.

        **Returns**: a `CTMResult` (`C` `(season=4, component=6, row, col)`, `budget`, `tendency`).
        """
        E = self._check_emissions(E)
        steps_per_day = max(1, int(round(86400.0 / self.dt)))
        n_last = min(steps_per_day, self.n_steps - 1)
        ops = self._season_operators()
        ns = len(SEASONS)
        (m1, acc1), _, e_step = self._integrate(E, budget=True, n_steps=self.n_steps - n_last)
        pm1 = jnp.mean(pm25_from_components(jax.vmap(self._surface_components)(m1, ops)), axis=(-2, -1))
        if n_last > 0:
            (m, acc2), _, _ = self._integrate(E, budget=True, n_steps=n_last, m0=m1)
        else:
            m, acc2 = m1, jax.tree_util.tree_map(jnp.zeros_like, acc1)
        acc = jax.tree_util.tree_map(jnp.add, acc1, acc2)
        C = jax.vmap(self._surface_components)(m, ops)
        pm = jnp.mean(pm25_from_components(C), axis=(-2, -1))
        emitted = jnp.broadcast_to(jnp.sum(e_step, axis=(-3, -2, -1)) * self.n_steps, (ns, len(TRACERS)))
        budget = CTMBudget(
            emitted=emitted,
            deposited=acc[1],
            outflow=acc[0],
            remaining=jnp.sum(m, axis=(-3, -2, -1)),
            converted=acc[2],
        )
        return CTMResult(C=C, budget=budget, tendency=(pm - pm1) / pm)

    @eqx.filter_jit
    def adjoint(
        self,
        cost_fn: Callable[[Float[Array, "component row col"]], Float[Array, ""]],
        E: Float[ArrayLike, "species level row col"],
    ) -> tuple[Float[Array, ""], Float[Array, "species level row col"]]:
        """Cost and its exact gradient with respect to every emission: one reverse-mode pass through the model.

        $J = \\mathrm{cost\\_fn}(\\mathrm{run}(E))$, returns $(J, \\partial J / \\partial E)$ (the CMAQ-adjoint
        `ADJ_LGRID_EM` analogue: sensitivity per emitted species, level and cell, in cost units per kt/yr).
        Memory is bounded by two-level checkpointing of the time loop.

        **Arguments**: `cost_fn` mapping `C` `(component=6, row, col)` to a scalar (e.g.
        `lambda C: population_weighted_pm25(C, population)`); `E` `(species=7, level=2, row, col)` kt/yr.

        **Returns**: `(cost, dcost_dE)`, a scalar and an array shaped like `E`.
        """
        E = self._check_emissions(E)

        def f(E):
            J = jnp.asarray(cost_fn(self.run(E)))
            if J.shape != ():
                raise ValueError(f"ReferenceCTM.adjoint: `cost_fn` must return a scalar, got shape {J.shape}")
            return J

        return jax.value_and_grad(f)(E)

    def run_ensemble(
        self,
        E_batch: Float[ArrayLike, "run species level row col"],
        *,
        batch_size: int | None = None,
        progress: bool = True,
    ) -> Float[Array, "run component row col"]:
        """`run` over an ensemble of emission fields, `jax.vmap`ped in batches, with a tqdm progress bar.

        The last batch is padded (with copies of the last run) so every batch reuses one compiled program.

        **Arguments**: `E_batch` `(run, species=7, level=2, row, col)` kt/yr per cell; `batch_size` runs per
        vmapped call (default: 1 on CPU, where larger batches fall out of cache and run slower per run, 32 on
        accelerators); `progress` shows a progress bar (set False to silence it).

        **Returns**: `C` `(run, component=6, row, col)` annual means in ug m-3 (a numpy-backed jax array).
        """
        E_batch = jnp.asarray(E_batch, dtype=jnp.float64)
        want = (len(SPECIES), len(LEVELS), *self.grid.shape)
        if E_batch.ndim != 5 or E_batch.shape[1:] != want:
            raise ValueError(f"run_ensemble: `E_batch` must have shape (run, *{want}), got {E_batch.shape}")
        if batch_size is None:
            batch_size = 1 if jax.default_backend() == "cpu" else 32
        if not (isinstance(batch_size, int) and batch_size >= 1):
            raise ValueError(f"run_ensemble: `batch_size` must be a positive integer, got {batch_size!r}")
        n = E_batch.shape[0]
        out = []
        with tqdm(total=n, desc="reference CTM runs", unit="run", disable=not progress) as bar:
            for start in range(0, n, batch_size):
                chunk = E_batch[start : start + batch_size]
                k = chunk.shape[0]
                if k < batch_size:
                    chunk = jnp.concatenate([chunk, jnp.broadcast_to(chunk[-1:], (batch_size - k, *want))])
                out.append(np.asarray(_run_batch(self, chunk))[:k])
                bar.update(k)
        return jnp.asarray(np.concatenate(out, axis=0))

    def write_conc(self, path, C, *, year: int = 2017, dtype="float32"):
        """Write concentrations as a CONC-like I/O API file on this model's grid (atomically).

        **Arguments**: `path`; `C` `(component=6, row, col)` (annual mean, one time-independent record) or
        `(season=4, component=6, row, col)` (e.g. `run_seasons(E).C`, four records); `year`; `dtype` on file.

        **Returns**: the `pathlib.Path` written. Variables and attributes: see `conc_dataset`.
        """
        return write_conc(C, self.grid, path, year=year, dtype=dtype)

    def write_adjoint(self, path, dcost_dE, *, cost_units: str = "1", year: int = 2017, dtype="float32"):
        """Write adjoint sensitivities (`adjoint(...)[1]`) as an `ADJ_LGRID_EM`-like I/O API file (atomically).

        **Arguments**: `path`; `dcost_dE` `(species=7, level=2, row, col)`; `cost_units` (short string);
        `year`; `dtype` on file.

        **Returns**: the `pathlib.Path` written. Variables and attributes: see `adjoint_dataset`.
        """
        return write_adjoint(dcost_dE, self.grid, path, cost_units=cost_units, year=year, dtype=dtype)

    def pm25(self, C: Float[ArrayLike, "*batch component row col"]) -> Float[Array, "*batch row col"]:
        """PM2.5 (ug m-3) from components; see `pm25_from_components`."""
        return pm25_from_components(C)

    pm25_from_components = staticmethod(pm25_from_components)

    def with_steps(self, n_days: float) -> ReferenceCTM:
        """A copy integrating `n_days` per season (e.g. a shorter spin-up for quick tests)."""
        n = max(1, int(round(float(n_days) * 86400.0 / self.dt)))
        return dataclasses.replace(self, n_steps=n)


@eqx.filter_jit(compiler_options=_RUN_COMPILER_OPTIONS)
def _run_batch(ctm: ReferenceCTM, E_batch):
    """`ReferenceCTM.run` vmapped over a batch of emissions (compiled once per model structure and batch size)."""
    return jax.vmap(ctm.run)(E_batch)
