"""Ranking the largest bilateral flows of a labelled flow matrix (BTH study; docs/science.md, "Sector-pair
flows")."""

from __future__ import annotations

import numpy as np
import xarray as xr

__all__ = ["top_flows"]


def top_flows(flows: xr.DataArray, k: int = 10, *, include_self: bool = False) -> xr.Dataset:
    """The `k` largest supplier -> buyer flows of a labelled flow matrix, with their share of its total.

    For sector-pair flows $\\Phi = \\mathrm{diag}(S) L Z$ ([`sector_flows`][diffmrio.sector_flows]) these are the
    strongest links of the embodied-emission network; any matrix whose dims come in pairs `d` / `to_d` works
    (e.g. `(region, to_region)` or `(region, sector, to_region, to_sector)`).

    **Arguments**

    - `flows`: an `xarray.DataArray` whose dims are supplier dims `d...` and buyer dims `to_d...` (any order).
    - `k`: the number of flows, 1 to the number of eligible pairs.
    - `include_self`: also rank self-supply (supplier == buyer on every dim); left out by default.

    **Returns**

    An `xarray.Dataset` over `rank` (1 = largest; ties in the matrix's order) with `flow` (the `units` of
    `flows`), `share` (of the total of `flows`, self-supply included, units `"1"`) and one coordinate per dim of
    `flows` naming the supplier and buyer labels of each flow.
    """
    if not isinstance(flows, xr.DataArray):
        raise ValueError(f"`top_flows`: `flows` must be a labelled xarray.DataArray, got {type(flows).__name__}; "
                         "label the matrix, e.g. with diffmrio.sector_flows.")
    src = [d for d in flows.dims if not str(d).startswith("to_")]
    dst = [f"to_{d}" for d in src]
    if sorted(map(str, flows.dims)) != sorted(src + dst) or not src:
        raise ValueError(f"`top_flows`: the dims of `flows` {flows.dims} do not come in supplier/buyer pairs "
                         "(d, to_d), e.g. (region, sector, to_region, to_sector).")
    for d in src:
        if [str(v) for v in flows[d].values] != [str(v) for v in flows[f"to_{d}"].values]:
            raise ValueError(f"`top_flows`: `{d}` and `to_{d}` have different labels; a flow matrix has the same "
                             "items on both sides (reorder with flows.sel).")
    F = flows.transpose(*src, *dst)
    shape = F.shape[: len(src)]
    n = int(np.prod(shape))
    P = np.array(F.values, dtype=np.float64).reshape(n, n)
    eligible = n * n if include_self else n * (n - 1)
    if not 1 <= k <= eligible:
        raise ValueError(f"`top_flows`: k={k}; give 1 to {eligible} (the number of "
                         f"{'' if include_self else 'off-diagonal '}supplier -> buyer pairs).")
    total = float(P.sum())
    ranked = P.copy()
    if not include_self:
        np.fill_diagonal(ranked, -np.inf)
    flat = np.argsort(-ranked, axis=None, kind="stable")[:k]
    a, b = np.unravel_index(flat, P.shape)
    coords = {"rank": np.arange(1, k + 1)}
    for idx, dims in ((a, src), (b, dst)):
        for d, pos in zip(dims, np.unravel_index(idx, shape), strict=True):
            coords[d] = ("rank", F[d].values[pos])
    units = {"units": flows.attrs["units"]} if "units" in flows.attrs else {}
    return xr.Dataset(
        {"flow": ("rank", P[a, b], units), "share": ("rank", P[a, b] / total, {"units": "1"})},
        coords=coords, attrs={k_: v for k_, v in flows.attrs.items() if k_ != "units"},
    )  # fmt: skip
