"""Export-related emissions and their split into direct and indirect parts (EXPORT study, eqs. 10-12).

For foreign final-demand columns `Y^e` (one per foreign consumer `e`), the stressor emitted in province `r` because
of exports to `e` is

$$ EEE_{r,e} = S_r L Y^e = \\sum_{u} S_r L_{r u} Y^e_u , $$

where `u` runs over the exporting provinces (the region whose product `e` buys). The term `u = r` is province
`r`'s **direct** export-related emission (its own exports, with its own and every other province's supply chain
feeding back into `r`); the terms `u != r` are **indirect**: `r`'s output used, through the supply chain, for
other provinces' exports. The share of indirect export-related emissions is the EXPORT study's headline
(75.4% of China's export-related PM2.5 pollution).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import equinox as eqx
import jax.numpy as jnp
import numpy as np
import xarray as xr
from jaxtyping import Array, Float, Int

from .._economy import Economy, prepared
from .._labels import label
from .._units import stressor_units as _units
from ._layers import _region_aggregator, _stressor_indices, leontief_solve

__all__ = ["export_emissions", "export_emissions_kernel"]


@eqx.filter_jit
def export_emissions_kernel(
    A: Float[Array, "n n"], S: Float[Array, "p n"], Ye: Float[Array, "n e"], G: Float[Array, "R n"],
    factors: tuple[Float[Array, "n n"], Int[Array, " n"]] | None = None,
) -> Float[Array, "p R R e"]:
    """Export-related emissions by emitting region, exporting region and foreign consumer.

    $$ EEE_{q, r, u, e} = \\sum_{i \\in r} S_{q i} \\big(L \\, (Y^e \\circ 1_u)\\big)_i , $$

    with `1_u` the rows of exporting region `u`. Summed over `u` it is `S_r L Y^e` (EXPORT study, eq. 10);
    `u = r` is the direct part, `u != r` the indirect part (eqs. 11-12).

    **Arguments**

    - `A` `[n, n]`, `S` `[p, n]`; `Ye` `[n, e]` foreign final-demand columns; `G` `[R, n]` region aggregator
      (`G[r, i] = 1` when row `i` belongs to region `r`); `factors`: the LU factors of `I - A` to reuse (an
      [`Economy`][diffmrio.Economy]'s `factors`).

    **Returns**

    `[p, R (emitting), R (exporting), e]`. One Leontief solve with `R * e` right-hand sides.
    """
    n, E = Ye.shape
    R = G.shape[0]
    rhs = (G.T[:, :, None] * Ye[:, None, :]).reshape(n, R * E)  # exports of region u to e, per (u, e)
    X = leontief_solve(A, rhs, factors)  # [n, R*E]
    out = jnp.einsum("rn,pn,nc->prc", G, S, X)
    return out.reshape(S.shape[0], R, R, E)


def export_emissions(
    mrio: Any | Economy,
    stressor: str | Sequence[str] | None = None,
    *,
    export_category: str | None = "export",
    foreign: Sequence[str] | None = None,
) -> xr.Dataset:
    """Export-related emissions per province, split into direct and indirect parts (EXPORT study, eqs. 10-12).

    $$ EEE_{r,e} = S_r L Y^e, \\quad EEE^{dir}_{r,e} = S_r L_{r\\cdot} (Y^e \\circ 1_r), \\quad
       EEE^{ind}_{r,e} = EEE_{r,e} - EEE^{dir}_{r,e} . $$

    Two layouts of foreign demand are supported:

    - `export_category="export"` (the demo world and CEADs tables): each region's final demand has an export
      category; the column `(u, "export")` is region `u`'s exports abroad and is treated as one foreign consumer
      `e = u`. Exports of `u` are normally only of `u`'s own products, so the exporting region equals `e`.
    - `foreign=[...]` (a provincial table linked into a global one): the listed regions are foreign consumers;
      their final demand (all categories) is `Y^e`. Only domestic regions are emitters. The exporter is the
      province whose good (final or intermediate) crosses the border: with `D`/`F` the domestic/foreign rows
      and `x = L Y^e`, the identity `x_D = L_DD (Y^e_D + A_DF x_F)` (`L_DD = (I - A_DD)^{-1}`) splits the
      domestic output exactly by exporting province, so `direct + indirect = S_r L Y^e` still holds.

    **Arguments**

    - `mrio`: a `diffmrio.MRIO` (or a `diffmrio.Economy` prepared from one); `stressor`: name(s) (default all).
    - `export_category`, `foreign`: the layout above (`foreign`, when given, takes precedence).

    **Returns**

    `xr.Dataset` with `eee(stressor, region, exporter, consumer)`, `direct(stressor, region)`,
    `indirect(stressor, region)`, `total(stressor, region)` `= direct + indirect`, and
    `indirect_share(stressor)` (national indirect over national total, units `"1"`); the emissions in the
    stressor's units (`units` attribute; `"<unit>"` with the `unit` coordinate of `stressor` when they differ).
    The data variable `units(stressor)` repeats the `unit` coordinate and is deprecated (removed in the next
    release).
    """
    mrio, eco = prepared(mrio, "export_emissions")
    if foreign is None and export_category is None:
        raise ValueError("Give `export_category` (an export column per region) or `foreign` "
                         "(regions treated as foreign consumers).")
    idx, names = _stressor_indices(mrio, stressor, "export_emissions")
    A, S = eco.A, eco.S
    regions, cats = list(mrio.regions), list(mrio.categories)
    R, N, K = len(regions), len(mrio.sectors), len(cats)
    Y = np.asarray(mrio.Y).reshape(R * N, R, K)
    if foreign is None:
        if export_category not in cats:
            raise ValueError(f"`export_category`={export_category!r} is not a final-demand category of this MRIO "
                             f"({cats}); pass `foreign=[...]` for a table with foreign regions instead.")
        Ye = Y[:, :, cats.index(export_category)]
        domestic = regions
        consumers = regions
        dom_idx = list(range(R))
    else:
        bad = [f for f in foreign if f not in regions]
        if bad:
            raise ValueError(f"`foreign` regions {bad} are not in the MRIO; available: {regions}.")
        fset = set(foreign)
        dom_idx = [i for i, r in enumerate(regions) if r not in fset]
        if not dom_idx:
            raise ValueError("`foreign` lists every region; at least one domestic region is needed.")
        domestic = [regions[i] for i in dom_idx]
        consumers = list(foreign)
        Ye = Y[:, [regions.index(f) for f in foreign], :].sum(axis=2)
    Sq = S[jnp.asarray(idx)]
    if foreign is None:
        out = export_emissions_kernel(A, Sq, jnp.asarray(Ye), jnp.asarray(_region_aggregator(R, N)), eco.factors)
    else:
        # Border-crossing attribution: with D/F the domestic/foreign rows and x = L Y^e the global solution,
        # (I - A_DD) x_D = Y^e_D + A_DF x_F exactly, so the domestic output is L_DD times the exports that cross
        # the border (final products Y^e_D and intermediates A_DF x_F), attributed to the province shipping them.
        rows = np.arange(R * N).reshape(R, N)
        D = jnp.asarray(rows[dom_idx].ravel())
        Fr = jnp.asarray(np.setdiff1d(rows.ravel(), rows[dom_idx].ravel()))
        x = eco.solve(jnp.asarray(Ye))
        ex = jnp.asarray(Ye)[D] + A[D][:, Fr] @ x[Fr]
        G = jnp.asarray(_region_aggregator(len(dom_idx), N))
        out = export_emissions_kernel(A[D][:, D], Sq[:, D], ex, G)
    out = np.asarray(out)
    direct = np.einsum("prre->pr", out)
    total = out.sum(axis=(2, 3))
    indirect = total - direct
    national = total.sum(axis=1)
    share = np.divide(indirect.sum(axis=1), national, out=np.full(national.shape, np.nan), where=national != 0)
    c = {"stressor": names, "region": domestic, "exporter": domestic, "consumer": consumers}
    sr = ("stressor", "region")
    su = _units(mrio, idx)
    return xr.Dataset(
        {
            "eee": label(out, ("stressor", "region", "exporter", "consumer"), c, units=su),
            "direct": label(direct, sr, c, units=su),
            "indirect": label(indirect, sr, c, units=su),
            "total": label(total, sr, c, units=su),
            "indirect_share": label(share, ("stressor",), c, units="1"),
            "units": label(su, ("stressor",), c),  # deprecated: the `unit` coordinate holds these (changelog)
        },
        attrs={"description": "stressor emitted in `region` for exports of `exporter`'s products to `consumer`",
               "reference": "EXPORT study, eqs. 10-12"},
    )
