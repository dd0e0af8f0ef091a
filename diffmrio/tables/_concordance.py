"""Sector/region concordances, proportional splitting of an aggregated sector, aggregation of MRIO arrays.

A concordance is a matrix $C$ of shape `[n_source, n_target]` whose row $i$ says how source item $i$ is
distributed over target items. Every row sums to 1 (binary for a pure aggregation, weighted for a split), so
mapping preserves totals: a vector maps as $C^T x$, a matrix as $C_r^T X C_c$.

Building a concordance from labels is data-dependent and runs in numpy; applying one is a linear map in JAX,
so it can sit inside a differentiable program.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import jax.numpy as jnp
import numpy as np
import xarray as xr

from .._mrio import MRIO
from ._balancing import gras, ras

__all__ = [
    "concordance_matrix",
    "aggregation_matrix",
    "check_concordance",
    "apply_concordance",
    "split_concordance",
    "split_sector",
    "link_tables",
    "aggregate_arrays",
    "aggregate_mrio",
    "aggregate_flows",
]


# ----------------------------------------------------------------------------------------------------------
# building and checking concordances


def check_concordance(C, *, binary: bool = False, atol: float = 1e-12, name: str = "C") -> np.ndarray:
    """Check that a concordance matrix maps totals one to one.

    **Arguments**

    - `C`: concordance, shape `[n_source, n_target]`.
    - `binary`: also require every entry to be 0 or 1 (a pure aggregation).
    - `atol`: tolerance on the row sums.
    - `name`: the argument name used in error messages.

    **Returns**

    `C` as a float64 numpy array.

    **Raises**

    `ValueError` if `C` is not 2-D, has negative or non-finite entries, a row that does not sum to 1 (a
    source item lost or counted twice), or (with `binary=True`) a weight other than 0/1.
    """
    C = np.asarray(C, dtype=np.float64)
    if C.ndim != 2:
        raise ValueError(f"`{name}` must be a 2-D [source, target] matrix, got shape {C.shape}.")
    if not np.all(np.isfinite(C)) or (C < 0).any():
        raise ValueError(f"`{name}` must have finite, non-negative weights.")
    rs = C.sum(1)
    bad = np.nonzero(np.abs(rs - 1.0) > atol)[0]
    if bad.size:
        raise ValueError(
            f"Rows {bad[:5].tolist()}{' ...' if bad.size > 5 else ''} of `{name}` sum to "
            f"{rs[bad[:5]].round(12).tolist()} instead of 1: every source item must be allocated exactly "
            "once, or totals change. Normalise the rows (C / C.sum(1, keepdims=True)) or fix the mapping."
        )
    if binary and not np.all((C == 0) | (C == 1)):
        raise ValueError(f"`{name}` must be binary (0/1) for an aggregation; use a weighted map to split.")
    return C


def concordance_matrix(
    source_labels: Sequence[str],
    target_labels: Sequence[str],
    mapping: Mapping[str, str | Mapping[str, float]],
) -> np.ndarray:
    """Build a concordance matrix from a label mapping.

    **Arguments**

    - `source_labels`: the `n_source` labels, in the order of the data's axis.
    - `target_labels`: the `n_target` labels, in the order wanted on output.
    - `mapping`: for every source label either one target label (aggregation) or a dict
      `{target: weight}` (a split; the weights are normalised to sum to 1, so output shares
      $O_s / O_{total}$ or raw outputs $O_s$ can be given).

    **Returns**

    `C`, shape `[n_source, n_target]`, rows summing to 1.

    !!! example
        ```python
        C = concordance_matrix(["a", "b", "c"], ["X", "Y"], {"a": "X", "b": "X", "c": {"X": 1, "Y": 3}})
        ```
    """
    src = list(source_labels)
    tgt = list(target_labels)
    tidx = {t: j for j, t in enumerate(tgt)}
    if len(tidx) != len(tgt):
        raise ValueError("`target_labels` contains duplicates.")
    missing = [s for s in src if s not in mapping]
    if missing:
        raise ValueError(
            f"`mapping` has no entry for source labels {missing[:5]}{' ...' if len(missing) > 5 else ''}: "
            "every source item must be mapped (map it to itself to keep it)."
        )
    C = np.zeros((len(src), len(tgt)))
    for i, s in enumerate(src):
        dest = mapping[s]
        items = {dest: 1.0} if isinstance(dest, str) else dict(dest)
        unknown = [t for t in items if t not in tidx]
        if unknown:
            raise ValueError(f"`mapping[{s!r}]` names targets {unknown} that are not in `target_labels`.")
        w = np.array([float(items[t]) for t in items])
        if (w < 0).any() or w.sum() <= 0:
            raise ValueError(f"`mapping[{s!r}]` needs non-negative weights with a positive sum, got {items}.")
        for t, wt in zip(items, w / w.sum()):
            C[i, tidx[t]] += wt
    return check_concordance(C)


def aggregation_matrix(labels: Sequence[str], mapping) -> tuple[np.ndarray, tuple[str, ...]]:
    """Binary aggregation matrix from an old-label -> new-label map.

    **Arguments**

    - `labels`: the old labels, length `n_old`.
    - `mapping`: a dict `{old: new}` (old labels absent from it keep their own label) or a sequence of new
      labels aligned with `labels`.

    **Returns**

    `(G, new_labels)`: `G` of shape `[n_old, n_new]` with one 1 per row, and the new labels in order of first
    appearance.
    """
    labels = list(labels)
    if isinstance(mapping, Mapping):
        unknown = [k for k in mapping if k not in labels]
        if unknown:
            raise ValueError(f"The aggregation map names labels {unknown} that are not among {labels}.")
        new = [str(mapping.get(lab, lab)) for lab in labels]
    else:
        new = [str(x) for x in mapping]
        if len(new) != len(labels):
            raise ValueError(
                f"The aggregation map has {len(new)} entries but there are {len(labels)} labels: give one new "
                "label per old label (or a dict)."
            )
    new_labels = tuple(dict.fromkeys(new))
    idx = {lab: j for j, lab in enumerate(new_labels)}
    G = np.zeros((len(labels), len(new_labels)))
    G[np.arange(len(labels)), [idx[x] for x in new]] = 1.0
    return G, new_labels


# ----------------------------------------------------------------------------------------------------------
# applying concordances


def apply_concordance(X, row_concordance=None, col_concordance=None):
    """Map a vector or matrix through concordances, preserving totals.

    $x' = C^T x$ for a vector; $X' = C_r^T X C_c$ for a matrix (either side may be left unmapped).

    **Arguments**

    - `X`: vector `[n_source]` or matrix `[n_rows, n_cols]`.
    - `row_concordance`: $C_r$, shape `[n_rows, n_rows']` (or `[n_source, n_target]` for a vector).
    - `col_concordance`: $C_c$, shape `[n_cols, n_cols']` (matrices only).

    **Returns**

    The mapped array (a JAX array; the map is linear and differentiable).
    """
    X = jnp.asarray(X)
    if X.ndim not in (1, 2):
        raise ValueError(f"`X` must be a vector or a matrix, got shape {X.shape}.")
    if X.ndim == 1 and col_concordance is not None:
        raise ValueError("A vector has no columns: pass its concordance as `row_concordance`.")
    out = X
    if row_concordance is not None:
        Cr = jnp.asarray(check_concordance(row_concordance, name="row_concordance"))
        if Cr.shape[0] != X.shape[0]:
            raise ValueError(
                f"`row_concordance` has {Cr.shape[0]} source rows but `X` has {X.shape[0]} rows."
            )
        out = jnp.tensordot(Cr, out, axes=(0, 0))
    if col_concordance is not None:
        Cc = jnp.asarray(check_concordance(col_concordance, name="col_concordance"))
        if Cc.shape[0] != X.shape[1]:
            raise ValueError(
                f"`col_concordance` has {Cc.shape[0]} source rows but `X` has {X.shape[1]} columns."
            )
        out = out @ Cc
    return out


def split_concordance(n: int, index: int, shares) -> np.ndarray:
    """Concordance that splits item `index` of `n` into `k = len(shares)` items by output shares.

    The split item's row holds $O_s / O_{total}$; the new items take its place (positions `index ...
    index + k - 1`), the other items keep their order.

    **Arguments**

    - `n`: number of items before the split.
    - `index`: position of the aggregated item.
    - `shares`: outputs $O_s$ (or shares) of the `k` sub-items; normalised to sum to 1.

    **Returns**

    `D`, shape `[n, n + k - 1]`.
    """
    shares = np.asarray(shares, dtype=np.float64).ravel()
    if not 0 <= index < n:
        raise ValueError(f"`index`={index} is outside 0..{n - 1}.")
    if shares.size < 1 or (shares < 0).any() or not np.isfinite(shares).all() or shares.sum() <= 0:
        raise ValueError(
            "`shares` must be finite, non-negative and have a positive sum (the sub-sector outputs)."
        )
    k = shares.size
    D = np.zeros((n, n + k - 1))
    for i in range(n):
        if i < index:
            D[i, i] = 1.0
        elif i > index:
            D[i, i + k - 1] = 1.0
    D[index, index : index + k] = shares / shares.sum()
    return D


def split_sector(X, index: int, shares, *, axes=None):
    """Split an aggregated sector proportionally to output shares, $V_s = V \\cdot O_s / O_{total}$.

    Every entry in the aggregated sector's row (and/or column) is divided among the sub-sectors in
    proportion to their outputs (EXPORT study, linking a global and a provincial table); the block where
    the row and column of the split sector meet is divided by the outer product of the shares. Totals are
    preserved exactly.

    **Arguments**

    - `X`: vector `[n]` or matrix `[n_rows, n_cols]`.
    - `index`: position of the aggregated sector on the split axes.
    - `shares`: outputs (or shares) of the sub-sectors, length `k`.
    - `axes`: the axes to split: default `(0,)` for a vector and `(0, 1)` for a matrix (a square
      inter-industry block); use `(0,)` for a final-demand block (rows only) or `(1,)` for a satellite
      account (columns only).

    **Returns**

    The split array, with `k - 1` more entries along each split axis.
    """
    X = jnp.asarray(X)
    axes = tuple(range(X.ndim)) if axes is None else tuple(axes)
    if X.ndim not in (1, 2) or any(a not in range(X.ndim) for a in axes):
        raise ValueError(f"`axes`={axes} does not fit an array of shape {X.shape}.")
    rc = split_concordance(X.shape[0], index, shares) if 0 in axes else None
    cc = split_concordance(X.shape[1], index, shares) if 1 in axes else None
    return apply_concordance(X, rc, cc)


def link_tables(
    X,
    row_targets,
    col_targets,
    *,
    row_concordance=None,
    col_concordance=None,
    method: str = "ras",
    **kwargs,
):
    """Map a table onto another classification and rebalance it to the other table's margins.

    The EXPORT study's linking recipe: split/map sectors with concordances (totals preserved), then
    rebalance the mapped table with RAS (or GRAS, if it has negative entries) to the target margins taken
    from the table being linked to.

    **Arguments**

    - `X`: table `[m, n]` in the source classification.
    - `row_targets`, `col_targets`: margins in the target classification, shapes `[m']`, `[n']`.
    - `row_concordance`, `col_concordance`: `[m, m']`, `[n, n']`, or `None` for an axis already in the
      target classification.
    - `method`: `"ras"` or `"gras"`.
    - `**kwargs`: passed to the balancer (`tol`, `max_iter`, ...).

    **Returns**

    `(X_linked, report)` as returned by [`ras`][diffmrio.tables.ras] / [`gras`][diffmrio.tables.gras].
    """
    balancers = {"ras": ras, "gras": gras}
    if method not in balancers:
        raise ValueError(f"`method` must be 'ras' or 'gras', got {method!r}.")
    mapped = np.asarray(apply_concordance(X, row_concordance, col_concordance))
    return balancers[method](mapped, row_targets, col_targets, **kwargs)


# ----------------------------------------------------------------------------------------------------------
# aggregation of MRIO arrays (n = R*N, region-major)


def aggregate_arrays(Z, Y, F, F_Y, *, n_regions: int, n_sectors: int, region_matrix=None, sector_matrix=None):
    """Aggregate the arrays of an MRIO table over regions and/or sectors.

    With $G_R$ `[R, R']` and $G_S$ `[N, N']` concordances and $K = G_R \\otimes G_S$ (region-major), the
    aggregated table is $Z' = K^T Z K$, $Y' = K^T Y (G_R \\otimes I_{K})$, $F' = F K$,
    $F_Y' = F_Y (G_R \\otimes I_{K})$. Computed by reshaping rather than forming $K$. Gross output,
    emission and final-demand totals are preserved.

    **Arguments**

    - `Z` `[n, n]`, `Y` `[n, R*K]`, `F` `[p, n]`, `F_Y` `[p, R*K]` with `n = R*N` region-major.
    - `n_regions`, `n_sectors`: `R`, `N`.
    - `region_matrix`: $G_R$ or `None` (regions kept); `sector_matrix`: $G_S$ or `None`.

    **Returns**

    `(Z', Y', F', F_Y')` as JAX arrays.
    """
    R, N = n_regions, n_sectors
    Z, Y, F, F_Y = (jnp.asarray(a) for a in (Z, Y, F, F_Y))
    n = R * N
    if (
        Z.shape != (n, n)
        or Y.shape[0] != n
        or F.shape[1] != n
        or Y.shape[1] % R
        or F_Y.shape[1] != Y.shape[1]
    ):
        raise ValueError(
            f"Shapes Z{Z.shape}, Y{Y.shape}, F{F.shape}, F_Y{F_Y.shape} do not fit {R} regions x {N} sectors "
            "(Z [n, n], Y [n, R*K], F [p, n], F_Y [p, R*K], n = R*N region-major)."
        )
    K = Y.shape[1] // R
    GR = (
        jnp.eye(R)
        if region_matrix is None
        else jnp.asarray(check_concordance(region_matrix, name="region_matrix"))
    )
    GS = (
        jnp.eye(N)
        if sector_matrix is None
        else jnp.asarray(check_concordance(sector_matrix, name="sector_matrix"))
    )
    if GR.shape[0] != R or GS.shape[0] != N:
        raise ValueError(
            f"`region_matrix` must have {R} rows (has {GR.shape[0]}) and `sector_matrix` {N} rows "
            f"(has {GS.shape[0]})."
        )
    R2, N2 = GR.shape[1], GS.shape[1]
    p = F.shape[0]
    Z2 = jnp.einsum("risj,ra,ib,sc,jd->abcd", Z.reshape(R, N, R, N), GR, GS, GR, GS).reshape(R2 * N2, R2 * N2)
    Y2 = jnp.einsum("risk,ra,ib,sc->abck", Y.reshape(R, N, R, K), GR, GS, GR).reshape(R2 * N2, R2 * K)
    F2 = jnp.einsum("qri,ra,ib->qab", F.reshape(p, R, N), GR, GS).reshape(p, R2 * N2)
    FY2 = jnp.einsum("qrk,ra->qak", F_Y.reshape(p, R, K), GR).reshape(p, R2 * K)
    return Z2, Y2, F2, FY2


def aggregate_mrio(mrio, region_map=None, sector_map=None):
    """Aggregate an [`MRIO`][diffmrio.MRIO] table over regions and/or sectors.

    **Arguments**

    - `mrio`: the table (uses its fields `Z, Y, F, F_Y, regions, sectors, categories, stressors, units`).
    - `region_map`, `sector_map`: `{old: new}` dicts (labels not named keep their own label) or sequences of
      new labels aligned with the old ones; `None` keeps that axis. New labels are ordered by first
      appearance.

    **Returns**

    A new `MRIO` built with `MRIO.from_arrays`, whose totals (gross output, final demand, stressors) equal
    those of `mrio`.

    !!! example
        ```python
        coarse = aggregate_mrio(mrio, region_map={"Capital": "Coast", "Harbor": "Coast"})
        ```
    """
    regions, sectors = tuple(mrio.regions), tuple(mrio.sectors)
    GR, new_regions = (None, regions) if region_map is None else aggregation_matrix(regions, region_map)
    GS, new_sectors = (None, sectors) if sector_map is None else aggregation_matrix(sectors, sector_map)
    Z2, Y2, F2, FY2 = aggregate_arrays(
        mrio.Z,
        mrio.Y,
        mrio.F,
        mrio.F_Y,
        n_regions=len(regions),
        n_sectors=len(sectors),
        region_matrix=GR,
        sector_matrix=GS,
    )
    return MRIO.from_arrays(
        Z=Z2,
        Y=Y2,
        F=F2,
        F_Y=FY2,
        regions=new_regions,
        sectors=new_sectors,
        categories=tuple(mrio.categories),
        stressors=tuple(mrio.stressors),
        units=tuple(mrio.units) if mrio.units is not None else None,
        extensions=tuple(getattr(mrio, "extensions", ())),
        population=_aggregate_population(getattr(mrio, "population", None), GR),
        population_unit=getattr(mrio, "population_unit", "person"),
    )


def aggregate_flows(flows: xr.DataArray, region_map=None, sector_map=None) -> xr.DataArray:
    """Aggregate a labelled flow matrix over regions and/or sectors, on both the supplying and the buying side.

    For sector-pair flows $\\Phi$ (docs/science.md, "Sector-pair flows"; e.g. from
    [`sector_flows`][diffmrio.sector_flows]) with $K = G_R \\otimes G_S$ the aggregation is
    $\\Phi' = K^T \\Phi K$, the same map as for `Z` in [`aggregate_arrays`][diffmrio.tables.aggregate_arrays]: a
    block's flow is the sum of its members' flows, and the total is kept.

    **Arguments**

    - `flows`: an `xarray.DataArray` with dims `(region, sector, to_region, to_sector)` (any order; the result
      has this order).
    - `region_map`, `sector_map`: `{old: new}` dicts (labels not named keep their own) or sequences of new labels
      aligned with the old ones (see [`aggregation_matrix`][diffmrio.tables.aggregation_matrix]); `None` keeps
      that axis. New labels are ordered by first appearance.

    **Returns**

    The aggregated `xarray.DataArray` (same dims, new labels, `flows`' name and attrs such as `units`).
    """
    dims = ("region", "sector", "to_region", "to_sector")
    if not isinstance(flows, xr.DataArray) or set(flows.dims) != set(dims):
        got = flows.dims if isinstance(flows, xr.DataArray) else type(flows).__name__
        raise ValueError(f"`aggregate_flows`: `flows` must be an xarray.DataArray with dims {dims}, got {got}; "
                         "label an (n, n) array with diffmrio.sector_flows or reshape it to (R, N, R, N).")
    flows = flows.transpose(*dims)
    regions, sectors = [str(v) for v in flows["region"].values], [str(v) for v in flows["sector"].values]
    for side in ("region", "sector"):
        if [str(v) for v in flows[f"to_{side}"].values] != [str(v) for v in flows[side].values]:
            raise ValueError(f"`aggregate_flows`: `to_{side}` labels differ from the `{side}` labels; a flow matrix "
                             "has the same items on both sides (reorder with flows.sel).")
    GR, new_r = (np.eye(len(regions)), tuple(regions)) if region_map is None else aggregation_matrix(regions, region_map)
    GS, new_s = (np.eye(len(sectors)), tuple(sectors)) if sector_map is None else aggregation_matrix(sectors, sector_map)
    agg = np.einsum("risj,ra,ib,sc,jd->abcd", np.asarray(flows.values, dtype=np.float64), GR, GS, GR, GS)
    coords = {"region": list(new_r), "sector": list(new_s), "to_region": list(new_r), "to_sector": list(new_s)}
    return xr.DataArray(agg, dims=dims, coords=coords, name=flows.name, attrs=dict(flows.attrs))


def _aggregate_population(population, region_matrix):
    """Population summed over the regions merged by `region_matrix` (None stays None)."""
    if population is None or region_matrix is None:
        return population
    return np.asarray(population) @ np.asarray(region_matrix)
