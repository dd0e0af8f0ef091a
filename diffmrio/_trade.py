r"""Trade-embodied flows: bilateral emissions embodied in trade (EEBT) and the BTH study's
sector-pair embodied-flow network.

The region-to-region burden matrix and the final-producer view come with
[`accounts`][diffmrio.accounts] (`burden`, `final_producer`).
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import xarray as xr

from ._custom_types import Array, Float
from ._economy import Economy, economy_kernel, prepared
from ._labels import label
from ._leontief import leontief_solve
from ._mrio import MRIO
from ._units import stressor_units


def eebt_arrays(
    Z: Float[Array | np.ndarray, "n n"],
    Y: Float[Array | np.ndarray, "n fd"],
    F: Float[Array | np.ndarray, "p n"],
    n_regions: int,
) -> Float[Array, "p R R"]:
    r"""Emissions embodied in bilateral trade (Peters 2008, *Ecol. Econ.* 65:13).

    With the local (domestic) Leontief inverse $L^{loc}_{rr} = (I - A_{rr})^{-1}$ and the gross export
    vector from r to s, $e_{rs} = Z_{rs} 1 + Y_{rs} 1$ (intermediate plus final):

    $$EEBT[:, r, s] = S_r L^{loc}_{rr} e_{rs} \quad (r \ne s), \qquad
      EEBT[:, r, r] = S_r L^{loc}_{rr} y_{rr}.$$

    Identity: $\sum_s EEBT[:, r, s] = F_r 1$ (all of r's emissions, since
    $x_r = L^{loc}_{rr}(y_{rr} + \sum_{s \ne r} e_{rs})$). EEBT counts gross trade, so unlike the MRIO
    burden matrix it attributes emissions to the first importer, not the final consumer.

    **Returns:** `(p, R, R)` array; rows: exporting (emitting) region, columns: importing region.
    """
    Z, Y = jnp.asarray(Z), jnp.asarray(Y)
    _, A, S = economy_kernel(Z, Y, jnp.asarray(F))
    return _eebt(A, S, Z, Y, n_regions)


def _eebt(A, S, Z, Y, R: int):
    """EEBT from the coefficients `A`, intensities `S` and the flows (shared by the kernel and `eebt`)."""
    n = Z.shape[0]
    N = n // R
    p = S.shape[0]
    S = S.reshape(p, R, N)
    Zb = Z.reshape(R, N, R, N).sum(axis=3)  # (r, i, s)
    Yb = Y.reshape(R, N, R, -1).sum(axis=3)  # (r, i, s)
    e = Zb + Yb  # gross flows r -> s by product i
    eye = jnp.eye(R, dtype=bool)
    # domestic block: only final demand (intermediate use at home is inside L_loc)
    e = jnp.where(eye[:, None, :], Yb, e)
    A4 = A.reshape(R, N, R, N)
    Arr = A4[jnp.arange(R), :, jnp.arange(R), :]  # (R, N, N)

    def one(A_rr, e_r):
        return leontief_solve(A_rr, e_r)  # (N, R)

    xloc = jax.vmap(one)(Arr, e)  # (r, i, s)
    return jnp.einsum("pri,ris->prs", S, xloc)


def sector_flow_arrays(
    Z: Float[Array | np.ndarray, "n n"], Y: Float[Array | np.ndarray, "n fd"], F: Float[Array | np.ndarray, "p n"]
) -> Float[Array, "p n n"]:
    r"""Sector-pair embodied flows (BTH study, eq. 15): $\Phi = \mathrm{diag}(s) L Z$ per stressor.

    $\Phi[q, a, b]$ is stressor q emitted by region-sector a that is embodied in the intermediate
    purchase of sector b. One forward solve with `n` right-hand sides ($L Z$), shared by all stressors.
    Row sums: $\Phi 1 = \mathrm{diag}(s) L Z 1 = \mathrm{diag}(s)(L x - x)$ (since $Z 1 = x - y$ and
    $L y = x$).
    """
    Z = jnp.asarray(Z)
    eco = Economy.from_arrays(Z, Y, F)
    return _sector_flows(eco.S, eco.solve(Z))


def _sector_flows(S, LZ):
    return S[:, :, None] * LZ[None, :, :]


@eqx.filter_jit
def _eebt_of(eco: Economy, Z, Y, R: int):
    return _eebt(eco.A, eco.S, Z, Y, R)


@eqx.filter_jit
def _sector_flows_of(eco: Economy, Z, q: int):
    return _sector_flows(eco.S[q : q + 1], eco.solve(Z))[0]


def eebt(mrio: MRIO | Economy) -> xr.DataArray:
    """Labelled [`eebt_arrays`][diffmrio.eebt_arrays]: `EEBT(stressor, region, to_region)`, with the stressors'
    units (the `unit` coordinate; `units` names it, or is the unit itself when all stressors share one).

    `mrio`: a [`MRIO`][diffmrio.MRIO], or an [`Economy`][diffmrio.Economy] prepared from one (its `A` and `S` are
    reused; EEBT needs each region's *local* inverse, so the global factors are not)."""
    mrio, eco = prepared(mrio, "eebt")
    Z, Y = jnp.asarray(mrio.Z), jnp.asarray(mrio.Y)
    arr = _eebt_of(eco, Z, Y, mrio.n_regions)
    return label(np.asarray(arr), ("stressor", "region", "to_region"),
                 {"stressor": mrio.stressors, "region": mrio.regions, "to_region": mrio.regions},
                 units=stressor_units(mrio, range(len(mrio.stressors))), name="EEBT",
                 attrs={"description": "emissions embodied in bilateral gross trade (Peters 2008)"})


def sector_flows(mrio: MRIO | Economy, stressor: str) -> xr.DataArray:
    """Labelled sector-pair embodied flows for one stressor: `Phi(region, sector, to_region, to_sector)`, in the
    stressor's units.

    `mrio`: a [`MRIO`][diffmrio.MRIO], or an [`Economy`][diffmrio.Economy] prepared from one (its factors are
    reused: one solve with `n` right-hand sides, no new factorisation)."""
    mrio, eco = prepared(mrio, "sector_flows")
    if not isinstance(stressor, str):
        raise TypeError(f"`sector_flows` takes one stressor name (the flows of several are n x n each); got "
                        f"{stressor!r}. Call it once per stressor, or use `diffmrio.sector_flow_arrays(Z, Y, F)` "
                        "for every stressor's unlabelled flows at once.")
    q = mrio.stressor_index(stressor)
    arr = _sector_flows_of(eco, jnp.asarray(mrio.Z), q)
    R, N = mrio.n_regions, mrio.n_sectors
    c = mrio.coords()
    (unit,) = stressor_units(mrio, [q])
    return label(np.asarray(arr).reshape(R, N, R, N), ("region", "sector", "to_region", "to_sector"), c, units=unit,
                 name="Phi", attrs={"stressor": stressor, "description": "diag(s) L Z: stressor of (region, sector) "
                                    "embodied in intermediate purchases of (to_region, to_sector) (BTH study eq. 15)"})
