"""Value-chain decomposition of a region's production-based account (VALUECHAIN study, eqs. 3-7).

With `B = L` the global Leontief inverse (blocks `B_st`), `L_ss = (I - A_ss)^{-1}` region `s`'s local inverse,
`y_ts` the final demand of region `s` for the products of region `t` and `F_s` region `s`'s direct intensities
(a row of `S` restricted to `s`'s sectors), the stressor generated in `s` splits into four parts:

$$ f_s = \\underbrace{F_s L_{ss} y_{ss}}_{\\text{(1) intra-regional}}
  + \\underbrace{F_s L_{ss} \\sum_{r \\ne s} A_{sr} \\sum_t B_{rt} y_{ts}}_{\\text{(2) returning in imports}}
  + \\underbrace{F_s \\sum_{r \\ne s} B_{ss} y_{sr}}_{\\text{(3) final-product exports}}
  + \\underbrace{F_s \\sum_{t \\ne s} B_{st} \\sum_{r \\ne s} y_{tr}}_{\\text{(4) intermediate exports}} . $$

**Identity.** The four parts add up to `F_s x_s`, the production-based account of `s` *without* the
stressors of final demand (`F_Y`): parts (3)+(4) are `F_s sum_{r != s} sum_t B_st y_tr`, and (1)+(2) equal
`F_s sum_t B_st y_ts` because the block-inverse identities `B_ss = L_ss + L_ss sum_{r!=s} A_sr B_rs` and
`B_st = L_ss sum_{r!=s} A_sr B_rt` (t != s) hold exactly. The tests assert it.

Bilateral flows from `s` to `r != s` (per product of `s`), split into what is emitted locally in `s` and
upstream of `s` in other regions:

$$ EX_{sr} = (F_s B_{ss})^T \\circ Y_{sr} + (F_s L_{ss})^T \\circ \\Big(A_{sr} \\sum_t \\sum_{u \\ne s} B_{rt} Y_{tu}\\Big), $$
$$ FE_{sr} = \\sum_{t \\ne s} (F_t B_{ts})^T \\circ Y_{sr} + \\sum_{t \\ne s} (F_t B_{ts})^T \\circ (A_{sr} L_{rr} Y_{rr}) . $$

The same decomposition applies to any satellite row: emissions, value added ("social income"), employment.
`L` is never formed: the kernel needs `L Y_reg` (R forward solves), the region-masked multipliers `S^{(s)} L`
(`p R` transposed solves, from which `F_s B_ss` and `sum_t F_t B_ts` are read) and the `R` local `N x N` solves.
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

from .._accounts import region_sum_fd
from .._economy import Economy, prepared
from .._labels import label
from .._leontief import leontief_solves
from .._units import stressor_units as _units
from ._layers import _stressor_indices

__all__ = ["value_chain_decomposition", "value_chain_kernel", "VALUE_CHAIN_PARTS"]

VALUE_CHAIN_PARTS = ("intra_regional", "returning_imports", "final_exports", "intermediate_exports")


@eqx.filter_jit
def value_chain_kernel(
    A: Float[Array, "n n"], S: Float[Array, "p n"], Yreg: Float[Array, "n R"],
    factors: tuple[Float[Array, "n n"], Int[Array, " n"]] | None = None,
) -> tuple[Float[Array, "p R 4"], Float[Array, "p R R N"], Float[Array, "p R R N"]]:
    """The four-part decomposition and the bilateral local/upstream flows (VALUECHAIN study, eqs. 3-7).

    **Arguments**

    - `A` `[n, n]` technical coefficients, `S` `[p, n]` intensities (any satellite rows),
    - `Yreg` `[n, R]`: final demand summed over categories per consuming region (`Yreg[(t,i), s] = y_ts`),
    - `factors`: the LU factors of `I - A` to reuse (an [`Economy`][diffmrio.Economy]'s `factors`).

    **Returns**

    `(parts[p, R, 4], EX[p, s, r, N], FE[p, s, r, N])`: parts in the order of `VALUE_CHAIN_PARTS`, and the
    bilateral flows per product of the exporting region `s` (zero on the diagonal `r = s`).
    """
    n, R = Yreg.shape
    N = n // R
    p = S.shape[0]
    Ab = A.reshape(R, N, R, N)
    eye = jnp.eye(R, dtype=A.dtype)
    # region-masked intensities S^{(s)}: S on s's columns, zero elsewhere -> W[s] = S^{(s)} L
    Smask = (eye[:, None, :, None] * S.reshape(1, p, R, N)).reshape(R * p, n)
    X, W = leontief_solves(A, Yreg, Smask, factors)  # X = L Yreg [n, R]; W [R*p, n]
    W = W.reshape(R, p, R, N)
    M = W.sum(axis=0)  # [p, R, N] = S L
    FB = jnp.einsum("spsj->psj", W)  # F_s B_ss  [p, R(s), N]
    up = M - FB  # sum_{t != s} F_t B_ts  [p, R(s), N]
    Xb = X.reshape(R, N, R)  # Xb[r, :, s] = sum_t B_rt y_ts (output in r for s's final demand)
    xtot = Xb.sum(axis=2)  # [R, N]
    Yb = Yreg.reshape(R, N, R)  # Yb[t, :, s] = y_ts
    Ss = S.reshape(p, R, N)
    Ass = jnp.einsum("rirj->rij", Ab)  # local blocks [R, N, N]
    ident = jnp.eye(N, dtype=A.dtype)
    # F_s L_ss: transposed local solves
    FL = jax.vmap(lambda a, f: jnp.linalg.solve((ident - a).T, f.T).T, in_axes=(0, 1), out_axes=1)(Ass, Ss)
    # L_rr Y_rr: local forward solves
    yrr = jnp.einsum("rir->ri", Yb)
    LrrYrr = jax.vmap(lambda a, v: jnp.linalg.solve(ident - a, v))(Ass, yrr)  # [R, N]

    # (1) intra-regional
    p1 = jnp.einsum("psi,si->ps", FL, yrr)
    # (2) s's intermediate exports returning in s's imports: sum_{r != s} A_sr x^{(s)}_r
    offd = 1.0 - eye  # [s, r]
    ret = jnp.einsum("sirj,rjs,sr->si", Ab, Xb, offd)
    p2 = jnp.einsum("psi,si->ps", FL, ret)
    # (3) final-product exports: F_s B_ss sum_{r != s} y_sr
    y_exp = jnp.einsum("sir,sr->si", Yb, offd)
    p3 = jnp.einsum("psi,si->ps", FB, y_exp)
    # (4) intermediate exports: F_s (x^{(-s)}_s - B_ss y_{s,-s}) with x^{(-s)} = L sum_{r != s} y_.r
    x_notsame = jnp.einsum("sir,sr->si", Xb, offd)  # sum_{r != s} sum_t B_st y_tr
    p4 = jnp.einsum("psi,si->ps", Ss, x_notsame) - p3
    parts = jnp.stack([p1, p2, p3, p4], axis=-1)

    # bilateral flows s -> r
    Ysr = jnp.einsum("sir,sr->sri", Yb, offd)  # [s, r, N]
    # sum_t sum_{u != s} B_rt Y_tu = x_r - x^{(s)}_r
    x_other = xtot[None, :, :] - jnp.transpose(Xb, (2, 0, 1))  # [s, r, N]
    inter_ex = jnp.einsum("sirj,srj->sri", Ab, x_other) * offd[:, :, None]
    EX = FB[:, :, None, :] * Ysr[None] + FL[:, :, None, :] * inter_ex[None]
    inter_fe = jnp.einsum("sirj,rj->sri", Ab, LrrYrr) * offd[:, :, None]
    FE = up[:, :, None, :] * Ysr[None] + up[:, :, None, :] * inter_fe[None]
    return parts, EX, FE


def value_chain_decomposition(mrio: Any | Economy, stressor: str | Sequence[str] | None = None) -> xr.Dataset:
    """Value-chain decomposition of every region's production-based account (VALUECHAIN study, eqs. 3-7).

    $$ F_s x_s = F_s L_{ss} y_{ss} + F_s L_{ss} \\sum_{r \\ne s} A_{sr} \\sum_t B_{rt} y_{ts}
       + F_s \\sum_{r \\ne s} B_{ss} y_{sr} + F_s \\sum_{t \\ne s} B_{st} \\sum_{r \\ne s} y_{tr} $$

    (see the module docstring for the bilateral `EX_sr`, `FE_sr`). Works for any satellite row: emissions,
    `value_added` ("social income"), `employment`.

    **Arguments**

    - `mrio`: a `diffmrio.MRIO` (or a `diffmrio.Economy` prepared from one); `stressor`: name(s) (default all).

    **Returns**

    `xr.Dataset` with `parts(stressor, region, part)` (`part` in `VALUE_CHAIN_PARTS`), `total(stressor,
    region)` `= F_s x_s` (production-based, excluding `F_Y`; equal to the sum of the parts),
    `EX(stressor, exporter, importer, sector)` (local impacts in the exporter of its flows to the importer) and
    `FE(stressor, exporter, importer, sector)` (impacts upstream of the exporter, in other regions); each in
    the stressor's units (`units` attribute; `"<unit>"` with the `unit` coordinate of `stressor` when they
    differ). The data variable `units(stressor)` repeats the `unit` coordinate and is deprecated (removed in the
    next release).
    """
    mrio, eco = prepared(mrio, "value_chain_decomposition")
    idx, names = _stressor_indices(mrio, stressor, "value_chain_decomposition")
    x, A, S = eco.x, eco.A, eco.S
    regions, sectors = list(mrio.regions), list(mrio.sectors)
    R, N = len(regions), len(sectors)
    Yreg = region_sum_fd(jnp.asarray(mrio.Y), R)
    Sq = S[jnp.asarray(idx)]
    parts, EX, FE = value_chain_kernel(A, Sq, Yreg, eco.factors)
    total = np.asarray((Sq * x[None, :]).reshape(len(idx), R, N).sum(axis=2))
    c = {"stressor": names, "region": regions, "part": VALUE_CHAIN_PARTS, "exporter": regions, "importer": regions,
         "sector": sectors}
    flows = ("stressor", "exporter", "importer", "sector")
    su = _units(mrio, idx)
    return xr.Dataset(
        {
            "parts": label(parts, ("stressor", "region", "part"), c, units=su),
            "total": label(total, ("stressor", "region"), c, units=su),
            "EX": label(EX, flows, c, units=su),
            "FE": label(FE, flows, c, units=su),
            "units": label(su, ("stressor",), c),  # deprecated: the `unit` coordinate holds these (changelog)
        },
        attrs={"reference": "VALUECHAIN study, eqs. 3-7"},
    )
