"""Production layers and the flows between adjacent layers (EXPORT study, eqs. 15-17).

The Leontief series `L = I + A + A^2 + ...` splits the footprint of a final demand `y` into production layers:
layer `t` holds what is emitted by the suppliers `t` steps upstream of the final producer,

$$ E = \\underbrace{S y}_{PL^0} + \\underbrace{S A y}_{PL^1} + \\dots + \\underbrace{S A^T y}_{PL^T}
      + \\underbrace{S A^{T+1} L y}_{\\text{remainder}} = S L y . $$

The remainder is computed exactly with one Leontief solve, so the layers and the remainder add up to the
footprint to rounding error. Flows between adjacent layers use the total intensities `m = 1^T diag(s) L`
(row `s` of `M = S L`): the stressor embodied in the output of sector `k` at layer `t+1` that is bought by sector
`j` at layer `t` is `m_k A_{kj} (A^t y)_j`. Their aggregates by producing and consuming region are the EXPORT
study's maps of which provinces' demand drives which provinces' emissions, layer by layer.

This module also holds the small private helpers the supply-chain modules share (stressor and final-demand
selection); the table's `x`, `A`, `S` and factorisation come from one [`Economy`][diffmrio.Economy].
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import xarray as xr
from jaxtyping import Array, Float, Int

from .._economy import Economy, prepared
from .._labels import label, unlabel
from .._leontief import leontief_solve, leontief_solve_left
from .._units import stressor_units as _units

__all__ = ["production_layers", "production_layers_kernel", "layer_flows", "layer_flows_kernel"]


# ----------------------------------------------------------------------------------------------------------
# shared private helpers (used by _spa, _export, _valuechain, _scenarios)
# ----------------------------------------------------------------------------------------------------------


def _stressor_indices(mrio: Any, stressor: str | Sequence[str] | None, fn: str) -> tuple[list[int], list[str]]:
    """Row indices and names of the requested stressors (all of them when `stressor` is None)."""
    names = list(mrio.stressors)
    if stressor is None:
        return list(range(len(names))), names
    wanted = [stressor] if isinstance(stressor, str) else list(stressor)
    missing = [s for s in wanted if s not in names]
    if missing:
        raise ValueError(f"`{fn}`: stressor(s) {missing} are not in the MRIO; available: {names}.")
    return [names.index(s) for s in wanted], wanted


def _region_aggregator(n_regions: int, n_sectors: int) -> Float[np.ndarray, "R n"]:
    """`G[R, n]` with `G[r, (r, i)] = 1`: sums region-major vectors over sectors."""
    return np.kron(np.eye(n_regions), np.ones((1, n_sectors)))


def _fd_mask(
    mrio: Any,
    consumers: str | Sequence[str] | None,
    categories: str | Sequence[str] | None,
    fn: str,
) -> Float[np.ndarray, " fd"]:
    """`[R*K]` 0/1 selector of the final-demand columns of the chosen consuming regions and categories."""
    regions, cats = list(mrio.regions), list(mrio.categories)
    R, K = len(regions), len(cats)
    if np.shape(mrio.Y)[1] != R * K:
        raise ValueError(
            f"`{fn}`: Y has {np.shape(mrio.Y)[1]} columns but the MRIO has {R} regions x {K} categories = "
            f"{R * K}; Y's columns must be (consuming region, category), region-major."
        )
    sel_r = regions if consumers is None else ([consumers] if isinstance(consumers, str) else list(consumers))
    sel_c = cats if categories is None else ([categories] if isinstance(categories, str) else list(categories))
    for name, sel, avail in (("consumers", sel_r, regions), ("categories", sel_c, cats)):
        bad = [s for s in sel if s not in avail]
        if bad:
            raise ValueError(f"`{fn}`: {name} {bad} not found; available: {avail}.")
    mask = np.zeros((R, K))
    for r in sel_r:
        for c in sel_c:
            mask[regions.index(r), cats.index(c)] = 1.0
    return mask.reshape(R * K)


def _final_demand(
    mrio: Any,
    consumers: str | Sequence[str] | None,
    categories: str | Sequence[str] | None,
    fn: str,
) -> Float[Array, " n"]:
    """Sum of the final-demand columns of the chosen consuming regions and categories, shape `[n]`."""
    return jnp.asarray(mrio.Y) @ jnp.asarray(_fd_mask(mrio, consumers, categories, fn))


# ----------------------------------------------------------------------------------------------------------
# production layers
# ----------------------------------------------------------------------------------------------------------


def _powers_applied(A: Float[Array, "n n"], y: Float[Array, " n *c"], T: int) -> Float[Array, "layer n *c"]:
    """`[A^0 y, A^1 y, ..., A^T y]` stacked on a new leading axis (matrix-vector products only)."""

    def step(v, _):
        return A @ v, v

    _, vs = jax.lax.scan(step, y, None, length=T + 1)
    return vs


@eqx.filter_jit
def production_layers_kernel(
    A: Float[Array, "n n"], S: Float[Array, "p n"], y: Float[Array, " n"], T: int,
    factors: tuple[Float[Array, "n n"], Int[Array, " n"]] | None = None,
) -> tuple[Float[Array, "layer p n"], Float[Array, "p n"]]:
    """Stressors emitted at production layers `0..T` and the exact remainder, per emitting region-sector.

    $$ PL^t_{q,j} = S_{qj} (A^t y)_j, \\qquad \\mathrm{rem}_{q,j} = S_{qj} (L A^{T+1} y)_j , $$

    so that `sum_t PL^t + rem = S o (L y)` (EXPORT study, eqs. 15-17). `L` is never formed: the powers are
    matrix-vector products and the remainder one Leontief solve.

    **Arguments**

    - `A`: technical coefficients `[n, n]`.
    - `S`: intensities `[p, n]`.
    - `y`: final demand `[n]`.
    - `T`: last layer (static).
    - `factors`: the LU factors of `I - A` to reuse (an [`Economy`][diffmrio.Economy]'s `factors`).

    **Returns**

    `(layers[T+1, p, n], remainder[p, n])`.
    """
    vs = _powers_applied(A, y, T)  # [T+1, n]
    rest = leontief_solve(A, A @ vs[-1], factors)
    return S[None, :, :] * vs[:, None, :], S * rest[None, :]


def production_layers(
    mrio: Any | Economy,
    T: int | np.integer = 4,
    *,
    stressor: str | Sequence[str] | None = None,
    consumers: str | Sequence[str] | None = None,
    categories: str | Sequence[str] | None = None,
    y: xr.DataArray | np.ndarray | None = None,
) -> xr.Dataset:
    """Production-layer decomposition of a footprint (EXPORT study, eqs. 15-17).

    $$ S L y = \\sum_{t=0}^{T} S A^t y + S A^{T+1} L y . $$

    **Arguments**

    - `mrio`: a `diffmrio.MRIO`, or a `diffmrio.Economy` prepared from one (its factorisation is reused).
    - `T`: last explicit layer (layers `0..T`; the rest is the exact remainder).
    - `stressor`: one name or a list (default: all stressors).
    - `consumers`, `categories`: which final-demand columns to sum into `y` (default: all). E.g.
      `categories="export"` gives the export-driven layers of the EXPORT study.
    - `y`: an explicit final demand (overrides `consumers`/`categories`): an `xarray.DataArray` over
      `(region, sector)`, aligned by label, or an array `[n]` in the table's region-major order.

    **Returns**

    `xr.Dataset` with `layers(layer, stressor, region, sector)` (by emitting region-sector),
    `remainder(stressor, region, sector)` (layers `> T`), and `total(stressor)` `= S L y` (industries only:
    the stressors emitted directly by final demand, `F_Y`, belong to no production layer); each in the
    stressor's units (`units` attribute; `"<unit>"` with the `unit` coordinate of `stressor` when they differ).
    The data variable `units(stressor)` repeats the `unit` coordinate and is deprecated (removed in the next
    release).

    !!! example
        ```python
        ds = production_layers(mrio, T=4, stressor="CO2", categories="export")
        ds.layers.sum(("region", "sector"))  # CO2 per layer
        ```
    """
    mrio, eco = prepared(mrio, "production_layers")
    if not isinstance(T, int | np.integer) or T < 0:
        raise ValueError(f"`T` must be a non-negative integer (the last explicit layer); got {T!r}.")
    idx, names = _stressor_indices(mrio, stressor, "production_layers")
    yv = _demand_vector(mrio, y, consumers, categories, "production_layers")
    layers, rem = production_layers_kernel(eco.A, eco.S[jnp.asarray(idx)], yv, int(T), eco.factors)
    R, N = len(mrio.regions), len(mrio.sectors)
    p = len(idx)
    layers = np.asarray(layers).reshape(T + 1, p, R, N)
    rem = np.asarray(rem).reshape(p, R, N)
    coords = {"layer": np.arange(T + 1), "stressor": names, "region": list(mrio.regions), "sector": list(mrio.sectors)}
    su = _units(mrio, idx)
    ds = xr.Dataset(
        {
            "layers": label(layers, ("layer", "stressor", "region", "sector"), coords, units=su),
            "remainder": label(rem, ("stressor", "region", "sector"), coords, units=su),
            "total": label(layers.sum(axis=(0, 2, 3)) + rem.sum(axis=(1, 2)), ("stressor",), coords, units=su),
        },
        attrs={"description": "S A^t y per production layer t and emitting region-sector; remainder S A^(T+1) L y",
               "reference": "EXPORT study, eqs. 15-17"},
    )
    ds["units"] = label(su, ("stressor",), coords)  # deprecated: the `unit` coordinate holds these (changelog)
    return ds


def _demand_vector(mrio, y, consumers, categories, fn) -> Float[Array, " n"]:
    """Final demand `[n]`: the chosen columns of `Y`, or the explicit `y` aligned to the table by label."""
    if y is None:
        return _final_demand(mrio, consumers, categories, fn)
    regions, sectors = list(mrio.regions), list(mrio.sectors)
    yv = unlabel(y, ("region", "sector"), {"region": regions, "sector": sectors}, name="y", fn=fn,
                 shape=(len(regions) * len(sectors),))
    return jnp.asarray(yv.reshape(-1))


# ----------------------------------------------------------------------------------------------------------
# flows between adjacent layers
# ----------------------------------------------------------------------------------------------------------


@eqx.filter_jit
def layer_flows_kernel(
    A: Float[Array, "n n"],
    S: Float[Array, "p n"],
    Yd: Float[Array, "n c"],
    G_from: Float[Array, "g n"],
    G_to: Float[Array, "h n"],
    T: int,
    factors: tuple[Float[Array, "n n"], Int[Array, " n"]] | None = None,
) -> Float[Array, "layer p g h c"]:
    """Flows between adjacent production layers, aggregated by producer and buyer groups.

    $$ \\Phi^t_{q,k j,c} = m_{qk} A_{kj} (A^t y^{(c)})_j , \\qquad m = 1^T \\mathrm{diag}(s_q) L = M_{q\\cdot}, $$

    the stressor `q` embodied in sector `k`'s output at layer `t+1` that sector `j` buys at layer `t` to serve
    the final demand `y^{(c)}` (EXPORT study, eq. 17). Returned aggregated,
    `out[t, q, a, b, c] = sum_{k in a, j in b} Phi^t_{q,kj,c}` with `G_from[a, k]`, `G_to[b, j]` grouping
    matrices (e.g. regions). Identity: `sum_{a,b} out[t, q, a, b, c] = (S A^{t+1} L y^{(c)})` summed over
    emitters, i.e. everything emitted at layers `> t`.

    **Arguments**

    - `A` `[n, n]`, `S` `[p, n]`; `Yd` `[n, c]`: one column per driving final demand (e.g. per region's exports).
    - `G_from` `[g, n]`, `G_to` `[h, n]`: aggregation of the producing (upstream) and buying side.
    - `T`: last layer `t` (flows from layer `t+1` into layer `t`, `t = 0..T`).
    - `factors`: the LU factors of `I - A` to reuse (an [`Economy`][diffmrio.Economy]'s `factors`).

    **Returns**

    `[T+1, p, g, h, c]`.
    """
    M = leontief_solve_left(A, S, factors)  # [p, n], one transposed solve
    W = jnp.einsum("an,pn,nj->paj", G_from, M, A)  # [p, g, n]: m_k A_kj summed over k in group a
    V = _powers_applied(A, Yd, T)  # [T+1, n, c]
    return jnp.einsum("paj,bj,tjc->tpabc", W, G_to, V)


def layer_flows(
    mrio: Any | Economy,
    T: int | np.integer = 3,
    *,
    stressor: str | Sequence[str] | None = None,
    categories: str | Sequence[str] | None = None,
    by: str = "consumer",
) -> xr.DataArray:
    """Flows between adjacent production layers aggregated by producing and buying region (EXPORT study).

    $$ \\Phi^t_{a b}(c) = \\sum_{k \\in a} \\sum_{j \\in b} m_k A_{kj} (A^t y^{(c)})_j $$

    with `m = S L` the total intensities: the stressor embodied in the sales of region `a`'s sectors at layer
    `t+1` to region `b`'s sectors at layer `t` (emitted in `a` or anywhere upstream of it), driven by the final
    demand `y^{(c)}`. Summed over `a` and `b` it is everything emitted at layers `> t`.

    **Arguments**

    - `mrio`: a `diffmrio.MRIO` (or a `diffmrio.Economy` prepared from one); `T`: last layer (flows `t+1 -> t` for `t = 0..T`).
    - `stressor`: name(s) (default all). `categories`: final-demand categories to include (default all;
      `"export"` for the EXPORT study's export-driven flows).
    - `by`: how the driving demand is split: `"consumer"` (one column per consuming region's final demand,
      i.e. per region's exports when `categories="export"`) or `"producer"` (per region whose sectors sell
      the final product).

    **Returns**

    `xr.DataArray` `(layer, stressor, from_region, to_region, driver)` in the stressor's units (the `unit`
    coordinate of `stressor`); `layer = t` labels the flow from layer `t+1` to layer `t`.
    """
    mrio, eco = prepared(mrio, "layer_flows")
    if by not in ("consumer", "producer"):
        raise ValueError(f"`by` must be 'consumer' or 'producer'; got {by!r}.")
    if not isinstance(T, int | np.integer) or T < 0:
        raise ValueError(f"`T` must be a non-negative integer; got {T!r}.")
    idx, names = _stressor_indices(mrio, stressor, "layer_flows")
    regions = list(mrio.regions)
    R, N = len(regions), len(mrio.sectors)
    G = jnp.asarray(_region_aggregator(R, N))
    if by == "consumer":
        Yd = jnp.stack([_final_demand(mrio, r, categories, "layer_flows") for r in regions], axis=1)
    else:
        y = _final_demand(mrio, None, categories, "layer_flows")
        Yd = G.T * y[:, None]
    out = layer_flows_kernel(eco.A, eco.S[jnp.asarray(idx)], Yd, G, G, int(T), eco.factors)
    return label(
        out,
        ("layer", "stressor", "from_region", "to_region", "driver"),
        {"layer": np.arange(T + 1), "stressor": names, "from_region": regions, "to_region": regions,
         "driver": regions},
        units=_units(mrio, idx),
        name="layer_flows",
        attrs={"description": "m_k A_kj (A^t y)_j aggregated by producing (layer t+1) and buying (layer t) "
                              f"region, driven by final demand per {by} region",
               "reference": "EXPORT study, eqs. 15-17"},
    )
