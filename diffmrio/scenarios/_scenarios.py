"""Scenarios on the table: intensity convergence (COBENEFIT study, eqs. 3-5) and gradient-based questions.

**Intensity convergence.** For the sectors `m` (default nonmetal, metals, power), a supplier province `r` that
serves a buyer province `s` with a cleaner technology (`w_{s,m} < w_{r,m}`) adopts an intensity `w'`:

- 100%: `w' = w_{s,m}`;  75%: `w' = max(w_{s,m}, q25_m)`;  50%: `w' = max(w_{s,m}, q50_m)`;
- otherwise (`w_{s,m} >= w_{r,m}`) `w' = w_{r,m}`,

with `q25_m`, `q50_m` quantiles of `w_{., m}` over provinces. The impact avoided on the `r -> s` supply chain is

$$ \\Delta E^{r,s} = \\sum_m E_m^{r,s} \\Big(1 - \\frac{w'_{r,m}}{w_{r,m}}\\Big), $$

with `E_m^{r,s}` the stressor (CO2, or deaths for `dM^{r,s}`) emitted in `r` by sector `m` for the final
products of `s` (final-producer view). The levels generalise to `w' = max(w_s, quantile_{1-level}(w))`
(level 1 uses the minimum, which never binds), and `w'` is capped at `w_r` so that a benchmark above a
supplier's own intensity never makes it dirtier.

**Gradients and optimisation.** Every account is a differentiable function of the table, so the gradient of a
footprint with respect to every intensity and every final-demand entry is one reverse pass
([`footprint_gradients`][diffmrio.scenarios.footprint_gradients]), and an optimiser can search for the intensity cuts
that reduce a footprint (or, through the chain, deaths) most under a budget
([`optimise_intensity_cuts`][diffmrio.scenarios.optimise_intensity_cuts]).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, no_type_check

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
import xarray as xr
from jaxtyping import Array, Float

from .._economy import Economy, prepared
from .._labels import unlabel
from .._leontief import leontief_solve
from .._units import stressor_units as _units
from ..supply_chain._layers import _fd_mask, _final_demand, _region_aggregator, _stressor_indices

__all__ = [
    "intensity_convergence",
    "convergence_ratios",
    "final_producer_output",
    "convergence_kernel",
    "footprint_gradients",
    "optimise_intensity_cuts",
    "optimal_intensity_cuts",
    "project_budget",
]

DEFAULT_SECTORS = ("nonmetal", "metals", "power")


# ----------------------------------------------------------------------------------------------------------
# intensity convergence
# ----------------------------------------------------------------------------------------------------------


@eqx.filter_jit
@eqx.debug.assert_max_traces(max_traces=None)  # the no-recompilation tests count its traces
def convergence_kernel(
    impact: Float[Array, "R m R"], w: Float[Array, "R m"], levels: Float[Array, " l"]
) -> tuple[Float[Array, "l R R m"], Float[Array, "l R R m"]]:
    """Impact avoided when suppliers converge to their buyers' intensities (COBENEFIT study, eqs. 3-5).

    $$ \\Delta E_{l,r,s,m} = E_{r,m,s} \\big(1 - w'_{l,r,s,m} / w_{r,m}\\big), \\qquad
       w' = \\begin{cases} \\min\\{w_{r,m}, \\max(w_{s,m}, Q_{1-l}(w_{\\cdot,m}))\\} & w_{s,m} < w_{r,m} \\\\
       w_{r,m} & \\text{otherwise} \\end{cases} $$

    with `Q_q` the `q`-quantile over regions (linear interpolation).

    **Arguments**

    - `impact` `[R (supplier), m (sector), R (buyer)]`: the stressor (or deaths) emitted by supplier `r`'s sector
      `m` for buyer `s`'s final products.
    - `w` `[R, m]`: intensities of the converging sectors (e.g. energy per unit output).
    - `levels` `[l]`: convergence levels in `(0, 1]` (1, 0.75, 0.5 in the study).

    **Returns**

    `(reduction[l, r, s, m], w_new[l, r, s, m])`.
    """
    q = jnp.quantile(w, 1.0 - levels, axis=0)  # [l, m]
    wr = w[None, :, None, :]  # [1, r, 1, m]
    ws = w[None, None, :, :]  # [1, 1, s, m]
    target = jnp.minimum(wr, jnp.maximum(ws, q[:, None, None, :]))
    w_new = jnp.where(ws < wr, target, jnp.broadcast_to(wr, target.shape))
    ok = wr > 0
    # (w_r - w') / w_r rather than 1 - w'/w_r: exactly zero where nothing converges (XLA may divide by
    # multiplying with a reciprocal, so w/w need not round to 1)
    frac = jnp.where(ok, (wr - w_new) / jnp.where(ok, wr, 1.0), 0.0)
    imp = jnp.transpose(impact, (0, 2, 1))[None]  # [1, r, s, m]
    return imp * frac, w_new


def final_producer_output(mrio: Any) -> np.ndarray:
    """`X[n, R]`: output of every region-sector for the final products sold by region t, `X[:, t] = L y^fp_t`
    (`y^fp_t`: the final sales of region t's sectors, zero elsewhere). Rows sum to the output `x`.

    `mrio` may be a [`MRIO`][diffmrio.MRIO] or a prepared [`Economy`][diffmrio.Economy] (its factors reused).

    **Returns:** a float64 `numpy` array, rows in the table's (region, sector) order, columns its regions.
    """
    mrio, eco = prepared(mrio, "final_producer_output")
    return np.asarray(_final_producer_output(mrio, eco))


def _final_producer_output(mrio: Any, eco: Economy) -> Array:
    R, N = len(mrio.regions), len(mrio.sectors)
    y = jnp.asarray(mrio.Y).sum(axis=1)
    Yfp = jnp.asarray(_region_aggregator(R, N)).T * y[:, None]  # [n, R]: final products of region s
    return eco.solve(Yfp)


def _final_producer_impact(mrio: Any, eco: Economy, q: int) -> np.ndarray:
    """`E[r, i, s] = S_q,(r,i) (L y^{fp}_s)_(r,i)`: emitted in (r, i) for the final products of region s."""
    R, N = len(mrio.regions), len(mrio.sectors)
    X = _final_producer_output(mrio, eco)
    return np.asarray((eco.S[q][:, None] * X).reshape(R, N, R))


def intensity_convergence(
    mrio: Any | Economy,
    stressor: str = "CO2",
    *,
    sectors: Sequence[str] = DEFAULT_SECTORS,
    levels: Sequence[float] | Float[np.ndarray, " l"] = (1.0, 0.75, 0.5),
    intensity: xr.DataArray | np.ndarray | None = None,
    impact: xr.DataArray | np.ndarray | None = None,
) -> xr.Dataset:
    """Intensity-convergence scenarios along interprovincial supply chains (COBENEFIT study, eqs. 3-5).

    $$ \\Delta E^{r,s} = \\sum_m E_m^{r,s} \\big(1 - w'_{r,m} / w_{r,m}\\big) $$

    (rules in the module docstring; the study's headline: full convergence cuts trade-related CO2 by 17% and
    the associated deaths by 19%).

    **Arguments**

    - `mrio`: a `diffmrio.MRIO` (or a `diffmrio.Economy` prepared from one).
    - `stressor`: satellite row used for the default `impact` and `intensity`.
    - `sectors`: converging sectors (default nonmetal, metals, power).
    - `levels`: convergence levels (1.0 = full, 0.75 and 0.5 use the q25 and q50 benchmarks).
    - `intensity`: `(region, sector)` intensities that converge (the study uses energy per unit output);
      default the stressor's direct intensity `S`. A DataArray is aligned to the table by label.
    - `impact`: `(supplier, sector, buyer)` impact matrix (e.g. deaths caused by each supplier-sector's emissions
      for each buyer's final products); default the stressor in the final-producer view,
      `E[r, i, s] = S_{(r,i)} (L y^{fp}_s)_{(r,i)}`.

    **Returns**

    `xr.Dataset` with `reduction(level, supplier, buyer, sector)`, `intensity_new(level, supplier, buyer,
    sector)`, `intensity(supplier, sector)` (the intensities `w` that converge), `trade_total` (`sum_{r != s}` of the impact over all sectors in `impact`) and
    `relative(level)` (total reduction over `trade_total`).
    """
    mrio, eco = prepared(mrio, "intensity_convergence")
    regions, all_sectors = list(mrio.regions), list(mrio.sectors)
    R, N = len(regions), len(all_sectors)
    bad = [m for m in sectors if m not in all_sectors]
    if bad:
        raise ValueError(f"`sectors` {bad} are not sectors of this MRIO; available: {all_sectors}.")
    lv = np.asarray(levels, dtype=np.float64).reshape(-1)
    if lv.size == 0 or np.any(lv <= 0) or np.any(lv > 1):
        raise ValueError(f"`levels` must lie in (0, 1] (1 = full convergence); got {list(levels)}.")
    sidx = [all_sectors.index(m) for m in sectors]
    (q,), _ = _stressor_indices(mrio, stressor, "intensity_convergence")
    fn = "intensity_convergence"
    if impact is None:
        E = _final_producer_impact(mrio, eco, q)
        impact_units = _units(mrio, [q])[0]
    else:
        E = unlabel(impact, ("supplier", "sector", "buyer"),
                    {"supplier": regions, "sector": all_sectors, "buyer": regions}, name="impact", fn=fn)
        impact_units = str(getattr(impact, "attrs", {}).get("units", ""))
    if intensity is None:
        W = np.asarray(eco.S[q]).reshape(R, N)
    else:
        W = unlabel(intensity, ("region", "sector"), {"region": regions, "sector": all_sectors}, name="intensity",
                    fn=fn)
    red, w_new = convergence_kernel(jnp.asarray(E[:, sidx, :]), jnp.asarray(W[:, sidx]), jnp.asarray(lv))
    red, w_new = np.asarray(red), np.asarray(w_new)
    off = 1.0 - np.eye(R)
    trade_total = float(np.einsum("ris,rs->", E, off))
    # the diagonal r = s never converges (w_s < w_r is false), so the reductions are all trade-related
    rel = red.sum(axis=(1, 2, 3)) / trade_total if trade_total != 0 else np.full(lv.size, np.nan)
    return xr.Dataset(
        {
            "reduction": (("level", "supplier", "buyer", "sector"), red),
            "intensity_new": (("level", "supplier", "buyer", "sector"), w_new),
            "intensity": (("supplier", "sector"), W[:, sidx]),
            "trade_total": ((), trade_total),
            "relative": (("level",), rel),
        },
        coords={"level": lv, "supplier": regions, "buyer": regions, "sector": list(sectors)},
        attrs={"stressor": stressor, "units": impact_units, "reference": "COBENEFIT study, eqs. 3-5"},
    )


def convergence_ratios_kernel(w_new: np.ndarray, w: np.ndarray, X: np.ndarray) -> np.ndarray:
    """`rho[l, r, m]` from `w_new[l, r, s, m]`, `w[r, m]` and `X[r, m, s]` (output of supplier-sector `(r, m)`
    for buyer `s`'s final products); see [`convergence_ratios`][diffmrio.scenarios.convergence_ratios]. A zero
    intensity or a zero output gives 1 (nothing to scale)."""
    w_new, w, X = (np.asarray(a, dtype=np.float64) for a in (w_new, w, X))
    frac = np.where(w[None, :, None, :] > 0, w_new / np.where(w > 0, w, 1.0)[None, :, None, :], 1.0)
    x = X.sum(2)  # [r, m]
    num = np.einsum("lrsm,rms->lrm", frac, X)
    return np.where(x[None] > 0, num / np.where(x > 0, x, 1.0)[None], 1.0)


def convergence_ratios(mrio: Any | Economy, convergence: xr.Dataset) -> xr.DataArray:
    r"""The intensity multiplier of every region-sector under each convergence level, for use where one
    intensity per region-sector is needed (e.g. scaling a chain's emission rows).

    The converged intensity $w'_{l,r,s,m}$ of [`intensity_convergence`][diffmrio.scenarios.intensity_convergence]
    is specific to the supplier-buyer pair; averaged over buyers with the supplier's output for each buyer's final
    products as weights (docs/science.md, section 3),

    $$ \rho_{l,(r,m)} = \sum_s \frac{w'_{l,r,s,m}}{w_{r,m}} \frac{X^{fp}_{(r,m),s}}{x_{(r,m)}}, \qquad
       X^{fp}_{\cdot,s} = L\, y^{fp}_s, $$

    so that $(1 - \rho_{l,(r,m)})\, w_{r,m}\, x_{(r,m)} = \sum_s \Delta E_{l,r,s,m}$: scaling the intensity of
    region-sector $(r, m)$ by $\rho$ removes exactly the convergence's reduction when `impact` was the stressor in
    the final-producer view and `intensity` its direct intensity (the defaults). Sectors that do not converge, and
    region-sectors with zero intensity or zero output, get $\rho = 1$.

    **Arguments**

    - `mrio`: the table the convergence was computed on (a `diffmrio.MRIO` or an `Economy` prepared from one).
    - `convergence`: the Dataset [`intensity_convergence`][diffmrio.scenarios.intensity_convergence] returned for
      this table (its `intensity_new`, `intensity` and labels).

    **Returns** `xr.DataArray` `rho(level, region, sector)` over all the table's regions and sectors, `units` `"1"`.
    """
    fn = "convergence_ratios"
    mrio, eco = prepared(mrio, fn)
    regions, sectors = list(mrio.regions), list(mrio.sectors)
    R, N = len(regions), len(sectors)
    need = [v for v in ("intensity_new", "intensity") if v not in convergence]
    if need:
        raise ValueError(f"`{fn}`: `convergence` has no {need}; pass the Dataset `intensity_convergence` returned "
                         "(recompute it with this version of diffmrio if it was saved by an older one).")
    conv_sectors = [str(m) for m in convergence["sector"].values]
    bad = [m for m in conv_sectors if m not in sectors]
    if bad:
        raise ValueError(f"`{fn}`: `convergence` is over sectors {bad} that are not in this table; pass the table "
                         "the convergence was computed on.")
    sidx = [sectors.index(m) for m in conv_sectors]
    w_new = unlabel(convergence["intensity_new"], ("level", "supplier", "buyer", "sector"),
                    {"level": list(convergence["level"].values), "supplier": regions, "buyer": regions,
                     "sector": conv_sectors}, name="convergence.intensity_new", fn=fn)  # fmt: skip
    w = unlabel(convergence["intensity"], ("supplier", "sector"), {"supplier": regions, "sector": conv_sectors},
                name="convergence.intensity", fn=fn)
    X = np.asarray(_final_producer_output(mrio, eco)).reshape(R, N, R)
    levels = np.asarray(convergence["level"].values, dtype=np.float64)
    rho = np.ones((levels.size, R, N))
    rho[:, :, sidx] = convergence_ratios_kernel(w_new, w, X[:, sidx, :])
    return xr.DataArray(rho, dims=("level", "region", "sector"),
                        coords={"level": levels, "region": regions, "sector": sectors},
                        name="intensity_ratio", attrs={"units": "1", "reference": "COBENEFIT study, eqs. 3-5"})


# ----------------------------------------------------------------------------------------------------------
# gradients of a footprint
# ----------------------------------------------------------------------------------------------------------


def _footprint_kernel(S_row: Array, Y: Array, A: Array, mask: Array, factors: tuple[Array, Array]) -> Array:
    """`s L (Y mask)`: the footprint of the selected final-demand columns (one scalar)."""
    return S_row @ leontief_solve(A, Y @ mask, factors)


_footprint_grads = eqx.filter_jit(
    eqx.debug.assert_max_traces(jax.grad(_footprint_kernel, argnums=(0, 1)), max_traces=None)
)


def footprint_gradients(
    mrio: Any | Economy,
    stressor: str = "CO2",
    *,
    consumers: str | Sequence[str] | None = None,
    categories: str | Sequence[str] | None = None,
) -> xr.Dataset:
    """Gradients of a footprint with respect to every intensity and every final-demand entry (`jax.grad`).

    For `f = s L Y c` (`c` selects consuming regions/categories): `df/ds = (L Y c)^T` (output serving the
    footprint) and `df/dY_{i,col} = (s L)_i c_col` (the total intensities), both from one reverse pass
    through the Leontief solve's implicit VJP (no `L` formed).

    **Arguments**

    - `mrio`: a `diffmrio.MRIO` (or a `diffmrio.Economy` prepared from one); `stressor`: one name.
    - `consumers`, `categories`: the footprint's final-demand columns (default all: the world total).

    **Returns**

    `xr.Dataset` with `value` (the footprint), `d_intensity(region, sector)` and
    `d_final_demand(region, sector, consumer, category)`.
    """
    mrio, eco = prepared(mrio, "footprint_gradients")
    (q,), _ = _stressor_indices(mrio, stressor, "footprint_gradients")
    A, S = eco.A, eco.S
    regions, sectors, cats = list(mrio.regions), list(mrio.sectors), list(mrio.categories)
    R, N, K = len(regions), len(sectors), len(cats)
    n = R * N
    mask = jnp.asarray(_fd_mask(mrio, consumers, categories, "footprint_gradients"))
    Y = jnp.asarray(mrio.Y)
    value = _footprint_kernel(S[q], Y, A, mask, eco.factors)
    gS, gY = _footprint_grads(S[q], Y, A, mask, eco.factors)
    return xr.Dataset(
        {
            "value": ((), float(value)),
            "d_intensity": (("region", "sector"), np.asarray(gS).reshape(R, N)),
            "d_final_demand": (("region", "sector", "consumer", "category"), np.asarray(gY).reshape(R, N, R, K)),
        },
        coords={"region": regions, "sector": sectors, "consumer": regions, "category": cats},
        attrs={"stressor": stressor, "units": _units(mrio, [q])[0], "n": n},
    )


# ----------------------------------------------------------------------------------------------------------
# optimisation of intensity cuts under a budget
# ----------------------------------------------------------------------------------------------------------


def project_budget(
    v: Float[Array, " n"], cost: Float[Array, " n"], budget: float | Array, u_max: Float[Array, " n"]
) -> Float[Array, " n"]:
    """Euclidean projection onto `{u : 0 <= u <= u_max, cost . u <= budget}` (`cost >= 0`).

    $$ P(v) = \\mathrm{clip}(v - \\lambda c, 0, u_{max}), $$

    with `lambda = 0` when the clipped `v` is within budget, otherwise the `lambda > 0` where the budget binds
    (KKT conditions of the projection; found by bisection, 100 halvings, so it runs under `jit`).
    """
    cost = jnp.asarray(cost)
    clip0 = jnp.clip(v, 0.0, u_max)

    def spend(lam):
        return cost @ jnp.clip(v - lam * cost, 0.0, u_max)

    cmin = jnp.min(jnp.where(cost > 0, cost, jnp.inf))
    hi0 = jnp.max(jnp.abs(v)) / jnp.where(jnp.isfinite(cmin), cmin, 1.0) + 1.0

    def body(_, lohi):
        lo, hi = lohi
        mid = 0.5 * (lo + hi)
        over = spend(mid) > budget
        return jnp.where(over, mid, lo), jnp.where(over, hi, mid)

    _, hi = jax.lax.fori_loop(0, 100, body, (jnp.zeros(()), hi0))
    return jnp.where(cost @ clip0 <= budget, clip0, jnp.clip(v - hi * cost, 0.0, u_max))


#: The default optimiser: plain SGD with a unit step; the step size is passed as an array (`lr` of `_pgd`, which
#: scales the gradient), so that a new step size does not recompile the optimisation.
_UNIT_SGD = optax.sgd(1.0)


@eqx.filter_jit
@eqx.debug.assert_max_traces(max_traces=None)  # the no-recompilation tests count its traces
def _initial_gradient(objective, S0, scale):
    return jax.grad(lambda u: objective(S0 * (1.0 - u)) * scale)(jnp.zeros(S0.shape[-1], S0.dtype))


@eqx.filter_jit
@eqx.debug.assert_max_traces(max_traces=None)
def _pgd(objective, S0, cost, budget, u_max, optimizer, steps, scale, lr):
    def loss(u):
        return objective(S0 * (1.0 - u)) * scale

    u0 = jnp.zeros_like(cost)
    state0 = optimizer.init(u0)

    def step(carry, _):
        u, state = carry
        val, g = jax.value_and_grad(loss)(u)
        upd, state = optimizer.update(g * lr, state, u)
        u = project_budget(optax.apply_updates(u, upd), cost, budget, u_max)
        return (u, state), val

    (u, _), hist = jax.lax.scan(step, (u0, state0), None, length=steps)
    return u, hist / scale


# not checked by the test run's jaxtyping hook: the function checks `cost`'s shape and sign and `u_max` itself with
# errors naming the argument, which the hook's generic check would pre-empt (its helpers are checked)
@no_type_check
def optimise_intensity_cuts(
    objective: Callable[[Array], Array],
    S0: Float[Array, "... n"],
    cost: Float[Array, " n"],
    budget: float,
    *,
    u_max: float | Float[Array, " n"] = 0.5,
    steps: int = 300,
    learning_rate: float = 0.2,
    optimizer: optax.GradientTransformation | None = None,
) -> tuple[Float[Array, " n"], Float[Array, " steps"]]:
    """Relative intensity cuts `u` that minimise `objective(S0 * (1 - u))` under a budget (projected gradient).

    $$ \\min_u \\; f\\big(S_0 \\circ (1 - u)\\big) \\quad \\text{s.t.} \\quad 0 \\le u \\le u_{max}, \\;
       c^T u \\le B , $$

    solved by projected gradient descent with an optax optimiser: each step applies the optimiser's update and
    projects onto the feasible set ([`project_budget`][diffmrio.scenarios.project_budget]). `objective` can be any
    differentiable function of the intensities: a footprint, or deaths through the full chain.

    **Arguments**

    - `objective`: `S -> scalar`, JAX-differentiable.
    - `S0` `[..., n]`: baseline intensities (rows of `S`; `u` scales every row of region-sector `j` alike).
    - `cost` `[n]`: cost of cutting region-sector `j`'s intensity by 100% (so `c_j u_j` for a cut `u_j`);
      `budget`: the most that may be spent.
    - `u_max`: largest feasible relative cut (scalar or `[n]`), below 1.
    - `steps`, `learning_rate`: the default optimiser is `optax.sgd` with step `learning_rate * u_max`
      relative to the largest initial gradient entry (scale-free); or pass any `optimizer`.

    **Returns**

    `(u[n], objective value per step[steps])`.
    """
    S0 = jnp.asarray(S0)
    cost = jnp.asarray(cost, dtype=S0.dtype)
    n = S0.shape[-1]
    if cost.shape != (n,):
        raise ValueError(f"`cost` must have one entry per region-sector ({n}); got shape {cost.shape}.")
    if bool(jnp.any(cost < 0)):
        raise ValueError("`cost` must be non-negative (a cut never earns money).")
    if not budget >= 0:
        raise ValueError(f"`budget` must be >= 0; got {budget}.")
    um = jnp.broadcast_to(jnp.asarray(u_max, dtype=S0.dtype), (n,))
    if bool(jnp.any(um < 0)) or bool(jnp.any(um > 1)):
        raise ValueError("`u_max` must lie in [0, 1] (a relative cut).")
    f0 = objective(S0)
    scale = 1.0 / jnp.where(f0 != 0, jnp.abs(f0), 1.0)
    lr = 1.0
    if optimizer is None:
        g0 = _initial_gradient(objective, S0, scale)
        gmax = float(jnp.max(jnp.abs(g0)))
        lr = learning_rate * float(jnp.max(um)) / (gmax if gmax > 0 else 1.0)
        optimizer = _UNIT_SGD
    return _pgd(objective, S0, cost, jnp.asarray(budget, S0.dtype), um, optimizer, int(steps), scale,
                jnp.asarray(lr, S0.dtype))


def _dot(xy, s):
    return s @ xy


def optimal_intensity_cuts(
    mrio: Any | Economy,
    stressor: str,
    budget: float,
    *,
    cost: xr.DataArray | np.ndarray | None = None,
    consumers: str | Sequence[str] | None = None,
    categories: str | Sequence[str] | None = None,
    u_max: float = 0.5,
    steps: int = 300,
) -> xr.Dataset:
    """Example: where to cut intensities so that a footprint falls most, for a given budget (optax).

    Minimises the footprint `s (1 - u) L y` over relative cuts `u` with `c^T u <= budget`, `0 <= u <= u_max`,
    and compares with the uniform cut that spends the same budget.

    **Arguments**

    - `mrio`: a `diffmrio.MRIO` (or a `diffmrio.Economy` prepared from one); `stressor`: one name; `budget`:
      the most that may be spent.
    - `cost`: `(region, sector)` cost of a 100% cut (a DataArray is aligned by label); default the gross output `x` (a cut costs in proportion
      to the activity it touches).
    - `consumers`, `categories`: the footprint's final demand (default all); `u_max`, `steps`: see
      [`optimise_intensity_cuts`][diffmrio.scenarios.optimise_intensity_cuts].

    **Returns**

    `xr.Dataset` with `cut(region, sector)`, scalars `baseline`, `optimised`, `uniform` (footprints) and
    `uniform_cut`, and `history(step)`.
    """
    mrio, eco = prepared(mrio, "optimal_intensity_cuts")
    (q,), _ = _stressor_indices(mrio, stressor, "optimal_intensity_cuts")
    S = eco.S
    regions, sectors = list(mrio.regions), list(mrio.sectors)
    R, N = len(regions), len(sectors)
    c = np.asarray(eco.x) if cost is None else unlabel(cost, ("region", "sector"), {"region": regions,
                                                                                     "sector": sectors},
                                                         name="cost", fn="optimal_intensity_cuts")
    c = jnp.asarray(c.reshape(-1))
    y = _final_demand(mrio, consumers, categories, "optimal_intensity_cuts")
    xy = eco.solve(y)
    # a Partial (its array is a traced leaf, its function a module-level one): repeated calls reuse the compiled
    # optimisation instead of recompiling for a new closure
    objective = jax.tree_util.Partial(_dot, xy)

    u, hist = optimise_intensity_cuts(objective, S[q], c, budget, u_max=u_max, steps=steps)
    u_unif = min(u_max, float(budget) / float(c.sum())) if float(c.sum()) > 0 else 0.0
    return xr.Dataset(
        {
            "cut": (("region", "sector"), np.asarray(u).reshape(R, N)),
            "baseline": ((), float(objective(S[q]))),
            "optimised": ((), float(objective(S[q] * (1 - u)))),
            "uniform": ((), float(objective(S[q] * (1 - u_unif)))),
            "uniform_cut": ((), u_unif),
            "history": (("step",), np.asarray(hist)),
        },
        coords={"region": regions, "sector": sectors, "step": np.arange(int(steps))},
        attrs={"stressor": stressor, "units": _units(mrio, [q])[0], "budget": float(budget)},
    )

