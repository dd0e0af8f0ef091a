"""Indices built on embodied flows: TCI/THI disparity, population-weighted Gini and CV, pollutant
equivalents (APE), and the efficient/inefficient supply-chain test of the BTH study.

All functions are pure JAX and differentiable where the index is (the Gini and CV in the values and
populations, TCI in the flows, APE in the emissions, the supply-chain shares in the flows).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import NamedTuple, no_type_check

import jax.numpy as jnp
import numpy as np
import xarray as xr
from jaxtyping import Array, Float

from .._labels import unlabel

__all__ = [
    "embodied_trade",
    "disparity_index",
    "disparity_index_from_matrix",
    "gini",
    "lorenz_curve",
    "coefficient_of_variation",
    "CHINA_POLLUTANT_EQUIVALENT_KG",
    "pollutant_equivalent_coefficients",
    "pollutant_equivalents",
    "SupplyChainEfficiency",
    "supply_chain_efficiency",
]


def _safe_ratio(num, den, fill):
    """num/den with `fill` where den == 0, and finite gradients everywhere (double-where)."""
    ok = den != 0
    return jnp.where(ok, num / jnp.where(ok, den, 1.0), fill)


# ----------------------------------------------------------------------------------------------------------
# TCI / THI


def embodied_trade(
    E: Float[Array | np.ndarray, "R R"] | xr.DataArray,
) -> tuple[Float[Array, " R"], Float[Array, " R"]]:
    """Embodied imports and exports of every region from a region x region burden matrix.

    $E_{rs}$ is the burden emitted (or deaths caused) in region $r$ because of final demand in region $s$
    (rows: where emitted; columns: who consumes), e.g. the MRIO burden matrix or its final-producer view.

    $\\mathrm{EEI}_r = \\sum_{s} E_{sr} - E_{rr}$ (emitted elsewhere for $r$'s demand),
    $\\mathrm{EEE}_r = \\sum_{s} E_{rs} - E_{rr}$ (emitted in $r$ for others' demand).

    **Arguments**

    - `E`: burden matrix, shape `[R, R]`; a `DataArray` whose two dimensions are labelled (e.g. `burden(region,
      consumer)` of [`accounts`][diffmrio.accounts]) has its columns aligned to its rows by label, so the diagonal
      is each region's own burden whatever the order.

    **Returns**

    `(EEI, EEE)`, each of shape `[R]` (in the row order).
    """
    E = jnp.asarray(_square_by_label(E, "embodied_trade"))
    if E.ndim != 2 or E.shape[0] != E.shape[1]:
        raise ValueError(f"`E` must be a square region x region matrix, got shape {E.shape}.")
    d = jnp.diagonal(E)
    return E.sum(0) - d, E.sum(1) - d


def _square_by_label(E, fn: str):
    """A region x region DataArray with labelled dimensions as an array whose columns follow its rows' labels;
    anything else unchanged (taken positionally)."""
    if not (isinstance(E, xr.DataArray) and E.ndim == 2 and all(d in E.coords for d in E.dims)):
        return getattr(E, "values", E)
    rows, cols = (list(E[d].values) for d in E.dims)
    if sorted(map(str, rows)) != sorted(map(str, cols)) or len(set(rows)) != len(rows):
        raise ValueError(f"`{fn}`: the burden matrix's {E.dims[0]!r} and {E.dims[1]!r} labels must be the same "
                         f"regions (got {rows} and {cols}); select the same regions on both dimensions.")
    return E.transpose(*E.dims).values[:, [cols.index(r) for r in rows]]


def disparity_index(eei, eee, *, fill_value: float = float("nan")):
    """Trade disparity index (COBENEFIT study): TCI for CO2, THI for health burden.

    $\\mathrm{TCI}_r = (\\mathrm{EEI}_r - \\mathrm{EEE}_r) / (\\mathrm{EEI}_r + \\mathrm{EEE}_r)$,
    from $-1$ (region $r$ bears others' burden: net receiver) to $1$ (its burden is borne elsewhere: net
    outsourcer). THI is the same with embodied mortality $\\mathrm{MEI}/\\mathrm{MEE}$.

    **Arguments**

    - `eei`: burden embodied in each region's imports, shape `[R]` (or any shape).
    - `eee`: burden embodied in its exports, same shape.
    - `fill_value`: returned where `eei + eee == 0` (a region without trade); gradients stay finite.

    **Returns**

    The index, same shape as `eei`.
    """
    eei, eee = jnp.asarray(eei), jnp.asarray(eee)
    if eei.shape != eee.shape:
        raise ValueError(f"`eei` has shape {eei.shape} but `eee` has {eee.shape}: pass one value per region.")
    return _safe_ratio(eei - eee, eei + eee, fill_value)


def disparity_index_from_matrix(
    E: Float[Array | np.ndarray, "R R"] | xr.DataArray, *, fill_value: float = float("nan")
) -> Float[Array, " R"]:
    """TCI/THI of every region from a region x region burden matrix (see
    [`embodied_trade`][diffmrio.scenarios.embodied_trade] and [`disparity_index`][diffmrio.scenarios.disparity_index]).

    **Arguments**

    - `E`: burden matrix `[R, R]` (rows: emitting region, columns: consuming region).
    - `fill_value`: value for regions without trade.

    **Returns**

    The index, shape `[R]`.
    """
    eei, eee = embodied_trade(E)
    return disparity_index(eei, eee, fill_value=fill_value)


# ----------------------------------------------------------------------------------------------------------
# inequality


def _labelled(a) -> bool:
    return isinstance(a, xr.DataArray) and a.ndim == 1 and a.dims[0] in a.coords


def _values_and_weights(quantity, population, fn: str):
    # labelled inputs are aligned by label (a population in another region order gives the same index); a
    # labelled one beside an unlabelled one is refused, as the order of the unlabelled one cannot be checked
    if _labelled(quantity) and _labelled(population):
        dim = quantity.dims[0]
        labels = {dim: [v.item() for v in quantity[dim].values]}
        quantity = unlabel(quantity, (dim,), labels, name="quantity", fn=fn)
        population = unlabel(population, (dim,), labels, name="population", fn=fn)
    elif (_labelled(quantity) and population is not None) or _labelled(population):
        raise ValueError(f"`{fn}`: pass `quantity` and `population` both as labelled DataArrays (aligned by label) "
                         "or both unlabelled in the same region order, not one of each")
    elif isinstance(quantity, xr.DataArray) or isinstance(population, xr.DataArray):
        quantity = getattr(quantity, "values", quantity)
        population = getattr(population, "values", population)
    q = jnp.asarray(quantity)
    if q.ndim != 1:
        raise ValueError(f"`quantity` must be a vector (one value per region), got shape {q.shape}.")
    if population is None:
        return q, jnp.ones_like(q)
    p = jnp.asarray(population)
    if p.shape != q.shape:
        raise ValueError(f"`population` has shape {p.shape} but `quantity` has {q.shape}: one per region.")
    return q, p


def gini(
    quantity: Float[Array | np.ndarray, " R"] | xr.DataArray,
    population: Float[Array | np.ndarray, " R"] | xr.DataArray | None = None,
) -> Float[Array, ""]:
    """Population-weighted Gini coefficient (VALUECHAIN study, eq. 11).

    $$\\mathrm{Gini} = \\sum_i P_i Y_i + 2 \\sum_i P_i (1 - T_i) - 1,$$
    with regions sorted by **ascending** per-capita value $q_i / p_i$, $P_i$ the population share, $Y_i$
    the share of the quantity and $T_i = \\sum_{k \\le i} Y_k$ its cumulative share. This equals
    $1 - \\sum_i P_i (T_{i-1} + T_i)$, i.e. one minus twice the area under the Lorenz curve (trapezoids
    between regions), so the formula as written needs no correction *provided* the sort is ascending: with
    a descending sort the same expression returns $-\\mathrm{Gini}$. (The between-region Gini is a lower
    bound on the Gini across people, since within-region inequality is ignored.)

    **Arguments**

    - `quantity`: regional totals $q_i$ (income, value added, deaths...), shape `[R]`, non-negative.
    - `population`: $p_i$, shape `[R]`, positive; `None` gives every region equal weight (then `quantity`
      holds the values themselves). Labelled `DataArray`s (both, or neither) are aligned by label; an
      unlabelled one is taken positionally.

    **Returns**

    The Gini coefficient (scalar), in $[0, 1)$. Differentiable in both arguments (the sort is piecewise
    constant and the index continuous across ties).
    """
    q, p = _values_and_weights(quantity, population, "gini")
    order = jnp.argsort(q / p)
    q, p = q[order], p[order]
    P = p / p.sum()
    Y = q / q.sum()
    T = jnp.cumsum(Y)
    return jnp.sum(P * Y) + 2.0 * jnp.sum(P * (1.0 - T)) - 1.0


# not checked by the test run's jaxtyping hook: a labelled `DataArray` input binds no `R` for the `R+1` of the
# result, and a `population` of the wrong length gets the ValueError naming it (which the hook would pre-empt)
@no_type_check
def lorenz_curve(
    quantity: Float[Array | np.ndarray, " R"] | xr.DataArray,
    population: Float[Array | np.ndarray, " R"] | xr.DataArray | None = None,
) -> tuple[Float[Array, " R+1"], Float[Array, " R+1"]]:
    """Lorenz curve of a quantity over regions (VALUECHAIN study; docs/science.md, "Indices").

    Regions sorted by **ascending** per-capita value $q_i / p_i$ (the order [`gini`][diffmrio.scenarios.gini]
    uses); the points are the cumulative population shares $C_k = \\sum_{i \\le k} P_i$ and cumulative quantity
    shares $T_k = \\sum_{i \\le k} Y_i$, starting at $(0, 0)$ and ending at $(1, 1)$. The Gini coefficient is one
    minus twice the area under this curve (trapezoids), $1 - \\sum_k P_k (T_{k-1} + T_k)$.

    **Arguments**

    - `quantity`: regional totals $q_i$ `[R]`.
    - `population`: $p_i$ `[R]`, positive, or `None` for equal weights. Labelled `DataArray`s (both, or
      neither) are aligned by label; an unlabelled one is taken positionally.

    **Returns**

    `(population_share, quantity_share)`, each of shape `[R + 1]`, non-decreasing from 0 to 1.
    """
    q, p = _values_and_weights(quantity, population, "lorenz_curve")
    order = jnp.argsort(q / p)
    zero = jnp.zeros(1, dtype=q.dtype)
    return (jnp.concatenate([zero, jnp.cumsum(p[order]) / p.sum()]),
            jnp.concatenate([zero, jnp.cumsum(q[order]) / q.sum()]))  # fmt: skip


def coefficient_of_variation(
    quantity: Float[Array | np.ndarray, " R"] | xr.DataArray,
    population: Float[Array | np.ndarray, " R"] | xr.DataArray | None = None,
    *,
    weighted: bool = True,
    ddof: int = 0,
) -> Float[Array, ""]:
    """Coefficient of variation (sd / mean) of per-capita values across regions (VALUECHAIN study).

    With $y_i = q_i / p_i$ and weights $w_i$ ($w_i = p_i / \\sum p$ when `weighted`, else $1/R$):
    $\\bar y = \\sum_i w_i y_i$, $\\mathrm{sd} = \\sqrt{\\sum_i w_i (y_i - \\bar y)^2 \\cdot c}$ with
    $c = R / (R - \\text{ddof})$, and $\\mathrm{CV} = \\mathrm{sd} / \\bar y$.

    **Arguments**

    - `quantity`: regional totals $q_i$ `[R]`, or the values themselves when `population` is `None`.
    - `population`: $p_i$ `[R]` or `None` (values taken as given, equal weights). Labelled `DataArray`s
      (both, or neither) are aligned by label; an unlabelled one is taken positionally.
    - `weighted`: population-weighted mean and variance (only with `population`).
    - `ddof`: delta degrees of freedom (0: population sd; 1: sample sd, unweighted case).

    **Returns**

    The CV (scalar).
    """
    q, p = _values_and_weights(quantity, population, "coefficient_of_variation")
    y = q / p if population is not None else q
    R = y.shape[0]
    w = p / p.sum() if (weighted and population is not None) else jnp.full_like(y, 1.0 / R)
    mean = jnp.sum(w * y)
    var = jnp.sum(w * (y - mean) ** 2) * (R / (R - ddof))
    return jnp.sqrt(var) / mean


# ----------------------------------------------------------------------------------------------------------
# pollutant equivalents

CHINA_POLLUTANT_EQUIVALENT_KG: Mapping[str, float] = {
    "SO2": 0.95,
    "NOx": 0.95,
    "CO": 16.7,
    "general_dust": 4.0,
}
"""Pollutant-equivalent values $R_i$ (kg of pollutant per pollutant equivalent) for air pollutants.

From the air-pollutant table of the *Taxable Pollutants and Equivalent Values* schedule of the Environmental
Protection Tax Law of the People's Republic of China (2016, in force 1 January 2018), which carries over
the values of the 2003 pollutant-discharge-fee schedule (Table 5 of the *Standards for Collection of Pollutant
Discharge Fees*): SO2 0.95 kg, NOx 0.95 kg, CO 16.7 kg, general dust (一般性粉尘) 4 kg. Only the values
checked against the schedule are included; add others (e.g. soot / 烟尘, ammonia) from the schedule as
needed, and decide how inventory species map onto its categories (e.g. primary PM2.5 onto dust or soot).
"""


def pollutant_equivalent_coefficients(
    species: Sequence[str], table: Mapping[str, float] | None = None
) -> np.ndarray:
    """Coefficients $R_i$ in the order of `species`.

    **Arguments**

    - `species`: pollutant names, length `S`.
    - `table`: `{species: kg per equivalent}`; default
      [`CHINA_POLLUTANT_EQUIVALENT_KG`][diffmrio.scenarios.CHINA_POLLUTANT_EQUIVALENT_KG].

    **Returns**

    Array `[S]`.
    """
    table = CHINA_POLLUTANT_EQUIVALENT_KG if table is None else table
    missing = [s for s in species if s not in table]
    if missing:
        raise ValueError(
            f"No pollutant-equivalent value for {missing}; the table has {sorted(table)}. Pass a `table` "
            "that covers every species (kg of pollutant per pollutant equivalent)."
        )
    R = np.array([float(table[s]) for s in species])
    if (R <= 0).any():
        raise ValueError("Pollutant-equivalent values must be positive (kg per equivalent).")
    return R


def pollutant_equivalents(emissions, coefficients, *, axis: int = 0, mass_unit_kg: float = 1.0):
    """Atmospheric pollutant equivalents (EXPORT study, eq. 13): $\\mathrm{APE} = \\sum_i E_i / R_i$.

    **Arguments**

    - `emissions`: $E$ with the species on `axis`, any other shape (e.g. `[S, n]` from a satellite
      account, or `[S, R]` per region).
    - `coefficients`: $R_i$ in kg per equivalent, shape `[S]` (see
      [`pollutant_equivalent_coefficients`][diffmrio.scenarios.pollutant_equivalent_coefficients]).
    - `axis`: the species axis of `emissions`.
    - `mass_unit_kg`: kilograms per unit of `emissions` (1e6 for kt).

    **Returns**

    The number of pollutant equivalents, `emissions` with `axis` summed out. Linear, so differentiable.
    """
    E = jnp.asarray(emissions)
    R = jnp.asarray(coefficients)
    axis = axis % E.ndim
    if R.ndim != 1 or R.shape[0] != E.shape[axis]:
        raise ValueError(
            f"`coefficients` has shape {R.shape} but `emissions` has {E.shape[axis]} species on axis {axis}."
        )
    shape = [1] * E.ndim
    shape[axis] = -1
    return jnp.sum(E * (mass_unit_kg / R).reshape(shape), axis=axis)


# ----------------------------------------------------------------------------------------------------------
# efficient / inefficient supply chains (BTH study)


class SupplyChainEfficiency(NamedTuple):
    """Result of [`supply_chain_efficiency`][diffmrio.scenarios.supply_chain_efficiency].

    - `inefficient_share`: scalar, share of the classified embodied flow that is inefficient.
    - `inefficient_share_by_region`: `[R]`, the same per region (grouped by supplier or buyer region; NaN
      for a region without classified flow).
    - `inefficient_flow`, `total_flow`: scalars, the inefficient and the classified embodied flow.
    - `inefficient`: `[n, n]` boolean mask of inefficient supplier -> buyer pairs.
    """

    inefficient_share: Array
    inefficient_share_by_region: Array
    inefficient_flow: Array
    total_flow: Array
    inefficient: Array


# not checked by the test run's jaxtyping hook: it checks `intensity`'s length against `Phi` and `n_regions` itself with errors naming the
# argument, which the hook's generic check would pre-empt
@no_type_check
def supply_chain_efficiency(
    Phi: Float[Array | np.ndarray, "n n"],
    intensity: Float[Array | np.ndarray, " n"],
    *,
    n_regions: int,
    by: str = "supplier",
    include_self: bool = False,
) -> SupplyChainEfficiency:
    """Efficient vs inefficient supply chains (BTH study) on a sector-pair embodied-flow network.

    $\\Phi_{ij}$ is the stressor emitted by region-sector $i$ (the supplier) embodied in its intermediate
    sales to region-sector $j$ (the buyer), e.g. $\\Phi = \\hat S L Z$ (docs/science.md, section 1). With
    direct emission intensities $s$, a supplier -> buyer link is **inefficient** when the supplier is more
    emission-intensive than the buyer, $s_i > s_j$: the buyer's production has been moved up the chain to
    a dirtier producer. Links with $s_i \\le s_j$ are efficient (ties count as efficient). Self-supply
    ($i = j$) cannot be classified and is left out unless `include_self` (then it counts as efficient).

    $$\\text{share} = \\frac{\\sum_{ij} \\Phi_{ij} [s_i > s_j]}{\\sum_{ij} \\Phi_{ij}}$$
    over classified links, overall and per region (the supplier's region by default, so the share says how
    much of the burden emitted in a region travels down inefficient links).

    **Arguments**

    - `Phi`: embodied flows `[n, n]` (supplier rows, buyer columns), non-negative, `n = R*N` region-major.
    - `intensity`: $s$ `[n]` (e.g. kt per unit output).
    - `n_regions`: `R`.
    - `by`: `"supplier"` or `"buyer"`: which region a link belongs to for the per-region shares.
    - `include_self`: classify diagonal self-supply too (as efficient).

    **Returns**

    A [`SupplyChainEfficiency`][diffmrio.scenarios.SupplyChainEfficiency]. Differentiable in `Phi`; the
    classification is piecewise constant in `intensity` (zero gradient almost everywhere).
    """
    Phi = jnp.asarray(Phi)
    s = jnp.asarray(intensity)
    n = Phi.shape[0]
    if Phi.ndim != 2 or Phi.shape != (n, n):
        raise ValueError(f"`Phi` must be square [n, n], got shape {Phi.shape}.")
    if s.shape != (n,):
        raise ValueError(f"`intensity` has shape {s.shape} but `Phi` is indexed by {n} region-sectors.")
    if n % n_regions:
        raise ValueError(f"{n} region-sectors cannot be split into n_regions={n_regions} equal blocks.")
    if by not in ("supplier", "buyer"):
        raise ValueError(f"`by` must be 'supplier' or 'buyer', got {by!r}.")
    classified = jnp.ones((n, n), bool) if include_self else ~jnp.eye(n, dtype=bool)
    ineff = (s[:, None] > s[None, :]) & classified
    flow_c = jnp.where(classified, Phi, 0.0)
    flow_i = jnp.where(ineff, Phi, 0.0)
    ax = 1 if by == "supplier" else 0  # sum over the other party
    reg_i = flow_i.sum(ax).reshape(n_regions, -1).sum(1)
    reg_c = flow_c.sum(ax).reshape(n_regions, -1).sum(1)
    total_i, total_c = flow_i.sum(), flow_c.sum()
    return SupplyChainEfficiency(
        inefficient_share=_safe_ratio(total_i, total_c, jnp.nan),
        inefficient_share_by_region=_safe_ratio(reg_i, reg_c, jnp.nan),
        inefficient_flow=total_i,
        total_flow=total_c,
        inefficient=ineff,
    )
