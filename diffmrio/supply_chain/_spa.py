"""Structural path analysis (SPA): the largest individual supply-chain paths of a footprint.

Expanding `L = I + A + A^2 + ...` element by element writes the footprint `s L y` of one stressor row `s` as a sum
over paths `i_0 <- i_1 <- ... <- i_T` (final producer `i_0`, emitter `i_T`) with value

$$ v(i_0, \\dots, i_T) = s_{i_T} A_{i_T i_{T-1}} \\cdots A_{i_1 i_0} y_{i_0} . $$

The standard search (Lenzen 2003; Peters & Hertwich 2006; EXPORT study eqs. 15-17) walks this tree from the
final producers upstream and expands a node only while the most its whole subtree can still hold,

$$ b(i_0, \\dots, i_d) = |y_{i_0}| \\, A_{i_d i_{d-1}} \\cdots A_{i_1 i_0} \\, \\bar m_{i_d},
   \\qquad \\bar m = |s| L , $$

exceeds the current threshold. `b` is the exact sum of the absolute values of every path in the subtree, so
pruning on it loses nothing above the threshold. Pruning on a node's own direct value `s_{i_d} (...)` instead
is wrong: a clean intermediary (`s = 0`, a trading or services sector) hides every large path upstream of it.

Implementation (data-dependent shapes, so outside `jit`, like jax-md's neighbour lists):

- `\\bar m` (and the signed `m = s L`) come from one transposed Leontief solve.
- For every column `j` the non-zero coefficients are pre-sorted by the bound factor `A_{kj} \\bar m_k`, so the
  children of a node that survive a threshold are a prefix of that list; a vectorised binary search over all
  frontier nodes of a depth finds them at once and the work is proportional to the surviving children, not `n`.
- Top-k: the threshold is `max(tol * total, k-th largest |path| found so far)`; it only rises, so every path
  above the final threshold has all its ancestors expanded and the returned top-k is exact (up to ties and
  `max_depth`).
- The sum of the bounds over the nodes of one depth is at most `|s| L |y|`, so a threshold `theta` keeps at
  most `|s| L |y| / theta` nodes per depth: `tol = 1e-5` means at most 100,000 nodes per depth.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple, no_type_check

import jax.numpy as jnp
import numpy as np
import scipy.sparse as sp
import xarray as xr
from jaxtyping import ArrayLike, Float, Int, Real

from .._economy import Economy, prepared
from .._labels import label
from .._units import stressor_units as _units
from ._layers import _demand_vector, _stressor_indices, leontief_solve_left

__all__ = ["structural_path_analysis", "structural_paths", "SPAResult"]


class SPAResult(NamedTuple):
    """Array result of [`structural_paths`][diffmrio.supply_chain.structural_paths].

    - `paths`: `[k, max_depth+1]` int64, node indices from the final producer (position 0) to the emitter,
      padded with `-1`.
    - `depth`: `[k]` number of `A` factors of each path (its emitter is at position `depth`).
    - `values`: `[k]` signed path values, sorted by decreasing absolute value.
    - `total`: the footprint `s L y`. `total_abs`: `|s| L |y|` (the sum of all |path values|).
    - `threshold`: the final pruning threshold (every path with `|v| >` it, up to `max_depth`, was found).
    - `nodes_per_depth`: how many tree nodes were kept at each depth.
    """

    paths: Int[np.ndarray, "path position"]
    depth: Int[np.ndarray, " path"]
    values: Float[np.ndarray, " path"]
    total: float
    total_abs: float
    threshold: float
    nodes_per_depth: tuple[int, ...]


def _multipliers(A: Any, s: Float[np.ndarray, " n"]) -> tuple[Float[np.ndarray, " n"], Float[np.ndarray, " n"]]:
    """`(s L, |s| L)` by one transposed Leontief solve (two right-hand sides)."""
    C = np.stack([s, np.abs(s)])
    if sp.issparse(A):
        # A sparse table: the Neumann series M <- C + M A converges geometrically (rho(A) < 1 for a valid table)
        # and costs one sparse product per term; a sparse LU of a random sparsity pattern fills in badly.
        At = sp.csr_matrix(A).T.tocsr()
        M, term = C.copy(), C.copy()
        for _ in range(100_000):
            term = (At @ term.T).T
            M += term
            if np.abs(term).sum() <= 1e-15 * np.abs(M).sum():
                break
        else:  # pragma: no cover - only for rho(A) extremely close to 1
            raise ValueError("`A`: the Leontief series did not converge; check that rho(A) < 1.")
        return M[0], M[1]
    M = np.asarray(leontief_solve_left(jnp.asarray(A, dtype=jnp.float64), jnp.asarray(C)))
    return M[0], M[1]


class _TopK:
    """The k largest |values| seen so far, with their (depth, position) handles."""

    def __init__(self, k: int):
        self.k = k
        self.absv = np.empty(0)
        self.depth = np.empty(0, dtype=np.int64)
        self.pos = np.empty(0, dtype=np.int64)

    def add(self, absv: Float[np.ndarray, " m"], depth: int, pos: Int[np.ndarray, " m"], floor: float) -> None:
        keep = absv > floor
        if not keep.any():
            return
        self.absv = np.concatenate([self.absv, absv[keep]])
        self.depth = np.concatenate([self.depth, np.full(int(keep.sum()), depth, dtype=np.int64)])
        self.pos = np.concatenate([self.pos, pos[keep]])
        if self.absv.size > self.k:
            sel = np.argpartition(-self.absv, self.k - 1)[: self.k]
            self.absv, self.depth, self.pos = self.absv[sel], self.depth[sel], self.pos[sel]

    def kth(self) -> float:
        return float(self.absv.min()) if self.absv.size >= self.k else 0.0


# not checked by the test run's jaxtyping hook: the function checks its arguments itself (shapes, NaN, `k`, which
# may be a numpy integer) with errors naming the argument, and the hook's generic check would pre-empt them
@no_type_check
def structural_paths(
    A: Any,
    s: Real[ArrayLike, " n"],
    y: Real[ArrayLike, " n"],
    *,
    k: int | np.integer | None = 1000,
    tol: float = 0.0,
    max_depth: int | None = None,
    M: tuple[Real[ArrayLike, " n"], Real[ArrayLike, " n"]] | None = None,
    max_nodes: int = 50_000_000,
    batch: int = 2_000_000,
) -> SPAResult:
    """Top-k structural paths of the footprint `s L y` by a bound-pruned tree search (array kernel, numpy).

    Path value $v = s_{i_T} A_{i_T i_{T-1}} \\cdots A_{i_1 i_0} y_{i_0}$; a node is expanded while
    $|y_{i_0}| \\prod A \\cdot (|s| L)_{i_d}$ exceeds `max(tol * |s| L |y|, k-th largest |v| so far)`
    (Lenzen 2003, Econ. Syst. Res. 15, 313; Peters & Hertwich 2006, Econ. Syst. Res. 18, 155).

    **Arguments**

    - `A`: technical coefficients `[n, n]`, dense numpy/JAX or `scipy.sparse`, `A >= 0`.
    - `s`: one stressor's intensities `[n]`. `y`: final demand `[n]` (may have negative entries).
    - `k`: how many paths to return (`None`: every path above `tol`).
    - `tol`: threshold relative to `|s| L |y|` (the footprint when `s, y >= 0`); `k=None` needs `tol > 0`.
    - `max_depth`: deepest path (number of `A` factors); `None` = until the bounds fall below the threshold.
    - `M`: precomputed `(s L, |s| L)` to skip the solve (e.g. reused across several `y`).
    - `max_nodes`: refuse to keep more tree nodes than this (memory guard). `batch`: children per vectorised
      step.

    **Returns**

    [`SPAResult`][diffmrio.supply_chain.SPAResult], paths sorted by decreasing `|value|`.
    """
    s = np.asarray(s, dtype=np.float64).reshape(-1)
    y = np.asarray(y, dtype=np.float64).reshape(-1)
    n = s.size
    if sp.issparse(A):
        if A.shape != (n, n):
            raise ValueError(f"`A` has shape {A.shape} but `s` has {n} entries: both are indexed by region-sector.")
        Acsc = sp.csc_matrix(A, dtype=np.float64)
    else:
        A = np.asarray(A, dtype=np.float64)
        if A.shape != (n, n):
            raise ValueError(f"`A` has shape {A.shape} but `s` has {n} entries: both are indexed by region-sector.")
        Acsc = sp.csc_matrix(A)
    if y.size != n:
        raise ValueError(f"`y` has {y.size} entries but `s` has {n}: both are indexed by region-sector.")
    if Acsc.nnz and Acsc.data.min() < 0:
        raise ValueError("`A` has negative coefficients; SPA bounds need A >= 0 (check the table's validity).")
    if k is None and not tol > 0:
        raise ValueError("Give `k` (top-k paths) or a positive `tol` (all paths above tol * total), or both.")
    if k is not None and (isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1):
        raise ValueError(f"`k` (how many paths) must be a positive integer or None; got {k!r}. Pass e.g. "
                         f"k={max(1, int(k)) if isinstance(k, (int, float)) and np.isfinite(k) else 100}.")
    for name, arr in (("s", s), ("y", y)):
        bad = ~np.isfinite(arr)
        if bad.any():
            raise ValueError(f"`{name}` has {int(bad.sum())} NaN/inf entries (first at index {int(np.argmax(bad))}): "
                             "the path values and the total would be NaN. Fill or drop them first.")
    if not np.all(np.isfinite(Acsc.data)):
        raise ValueError("`A` has NaN/inf coefficients; check the table (e.g. sectors with zero output).")
    if not tol >= 0:
        raise ValueError(f"`tol` must be a number >= 0; got {tol!r}.")

    m, mabs = (np.asarray(M[0], dtype=np.float64), np.asarray(M[1], dtype=np.float64)) if M is not None \
        else _multipliers(Acsc if sp.issparse(A) else A, s)
    total = float(m @ y)
    yabs = np.abs(y)
    total_abs = float(mabs @ yabs)
    floor = tol * total_abs
    kk = int(k) if k is not None else int(np.iinfo(np.int64).max)
    top = _TopK(kk)

    # Column-wise children lists sorted by the bound factor A_kj * mbar_k (descending). Entries that cannot pass
    # the static floor for any prefix are dropped: a node's bound never exceeds the largest root bound, so a
    # child of j survives only if A_kj mbar_k > floor * mbar_j / max_root_bound.
    indptr, rows, a = Acsc.indptr, Acsc.indices, Acsc.data
    cols = np.repeat(np.arange(n), np.diff(indptr))
    bfac = a * mabs[rows]
    root_bound = yabs * mabs
    bmax = float(root_bound.max()) if n else 0.0
    # for top-k the final threshold is at least the k-th largest depth-0 path, a valid static floor as well
    static = floor
    if k is not None and k <= n:
        static = max(static, float(np.partition(np.abs(s * y), n - k)[n - k]))
    keep = bfac > 0
    if static > 0 and bmax > 0:
        keep &= bfac > static * mabs[cols] / bmax
    cols, rows, a, bfac = cols[keep], rows[keep], a[keep], bfac[keep]
    # sort by bound factor, then (stable radix sort on the integer column) group by column: much faster than
    # np.lexsort on millions of coefficients
    order = np.argsort(-bfac, kind="stable")
    order = order[np.argsort(cols[order], kind="stable")]
    rows, a, bfac = rows[order], a[order], bfac[order]
    ptr = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(np.bincount(cols, minlength=n), out=ptr[1:])

    # depth 0: the final producers
    thr = floor
    roots = np.nonzero(root_bound > thr)[0]
    levels_parent = [np.full(roots.size, -1, dtype=np.int64)]
    levels_node = [roots.astype(np.int64)]
    levels_prefix = [y[roots]]
    top.add(np.abs(s[roots] * y[roots]), 0, np.arange(roots.size), thr)
    thr = max(floor, top.kth())
    n_kept = roots.size

    depth = 0
    while max_depth is None or depth < max_depth:
        node, prefix = levels_node[depth], levels_prefix[depth]
        alive = np.nonzero(np.abs(prefix) * mabs[node] > thr)[0]
        if alive.size == 0:
            break
        par_out, node_out, pre_out = [], [], []
        n_out = 0
        # split the parents into batches whose children (counted at the current threshold) fit in `batch`
        cum = np.cumsum(_surviving_counts(ptr, bfac, node[alive], np.abs(prefix[alive]), thr))
        start = 0
        while start < alive.size:
            base = cum[start - 1] if start else 0
            stop = max(start + 1, int(np.searchsorted(cum, base + batch, side="right")))
            sel = alive[start:stop]
            start = stop
            # recount at the (possibly risen) threshold
            cnt = _surviving_counts(ptr, bfac, node[sel], np.abs(prefix[sel]), thr)
            tot = int(cnt.sum())
            if tot == 0:
                continue
            offs = np.arange(tot) - np.repeat(np.cumsum(cnt) - cnt, cnt) + np.repeat(ptr[node[sel]], cnt)
            child = rows[offs].astype(np.int64)
            cpre = np.repeat(prefix[sel], cnt) * a[offs]
            cpar = np.repeat(sel, cnt)
            top.add(np.abs(s[child] * cpre), depth + 1, n_out + np.arange(child.size), thr)
            thr = max(floor, top.kth())
            par_out.append(cpar)
            node_out.append(child)
            pre_out.append(cpre)
            n_out += child.size
            n_kept += child.size
            if n_kept > max_nodes:
                raise ValueError(
                    f"structural path search kept more than max_nodes={max_nodes} tree nodes (depth {depth + 1}); "
                    "raise `tol`, lower `k` or set `max_depth`, or raise `max_nodes` if memory allows."
                )
        if n_out == 0:
            break
        levels_parent.append(np.concatenate(par_out))
        levels_node.append(np.concatenate(node_out))
        levels_prefix.append(np.concatenate(pre_out))
        depth += 1

    # path reconstruction from the parent pointers
    d_sel, p_sel = top.depth, top.pos
    vals = np.empty(d_sel.size)
    for d in np.unique(d_sel):
        at = d_sel == d
        vals[at] = s[levels_node[d][p_sel[at]]] * levels_prefix[d][p_sel[at]]
    order = np.argsort(-np.abs(vals), kind="stable")
    d_sel, p_sel, vals = d_sel[order], p_sel[order], vals[order]
    dmax = int(d_sel.max()) if d_sel.size else 0
    paths = np.full((d_sel.size, dmax + 1), -1, dtype=np.int64)
    cur = p_sel.copy()
    for d in range(dmax, -1, -1):
        at = d_sel >= d
        # rows whose emitter is deeper than d have already walked up to depth d
        paths[at, d] = levels_node[d][cur[at]]
        cur[at] = levels_parent[d][cur[at]]
    return SPAResult(
        paths=paths, depth=d_sel, values=vals, total=total, total_abs=total_abs, threshold=float(thr),
        nodes_per_depth=tuple(int(v.size) for v in levels_node),
    )


def _surviving_counts(
    ptr: Int[np.ndarray, " n_plus_1"], bfac: Float[np.ndarray, " nnz"], nodes: Int[np.ndarray, " m"],
    pabs: Float[np.ndarray, " m"], thr: float,
) -> Int[np.ndarray, " m"]:
    """Per parent: how many of its sorted children have `pabs * bfac > thr` (vectorised binary search)."""
    lo = ptr[nodes].copy()
    hi = ptr[nodes + 1].copy()
    start = lo.copy()
    crit = np.where(pabs > 0, thr / np.where(pabs > 0, pabs, 1.0), np.inf)
    active = lo < hi
    while active.any():
        mid = (lo + hi) // 2
        go = np.zeros(lo.shape, dtype=bool)
        go[active] = bfac[mid[active]] > crit[active]
        lo = np.where(active & go, mid + 1, lo)
        hi = np.where(active & ~go, mid, hi)
        active = lo < hi
    return lo - start


def structural_path_analysis(
    mrio: Any | Economy,
    stressor: str,
    *,
    k: int | np.integer | None = 100,
    tol: float = 0.0,
    max_depth: int | None = None,
    consumers: str | Sequence[str] | None = None,
    categories: str | Sequence[str] | None = None,
    y: xr.DataArray | np.ndarray | None = None,
) -> xr.Dataset:
    """Top-k structural paths of a footprint with region and sector labels (EXPORT study; Lenzen 2003).

    Path value $v = S_{i_T} A_{i_T i_{T-1}} \\cdots A_{i_1 i_0} y_{i_0}$, found by the bound-pruned tree search of
    [`structural_paths`][diffmrio.supply_chain.structural_paths].

    **Arguments**

    - `mrio`: a `diffmrio.MRIO` (or a `diffmrio.Economy` prepared from one: its factors give the multipliers);
      `stressor`: one stressor name.
    - `k`, `tol`, `max_depth`: see [`structural_paths`][diffmrio.supply_chain.structural_paths].
    - `consumers`, `categories`: which final-demand columns make `y` (default all); or an explicit `y`: a
      `(region, sector)` DataArray aligned by label, or an array `[n]` in the table's order.

    **Returns**

    `xr.Dataset` over `path` (sorted by |value|) and `position` (0 = final producer, `depth` = emitter):
    `value(path)` (in the stressor's `units`), `share(path)` (of the footprint, `"1"`), `depth(path)` (`"1"`),
    `region(path, position)`,
    `sector(path, position)` (`""` past the path's end), `label(path)` (e.g.
    `"Capital/construction <- Basin/nonmetal"`); attrs `total`, `coverage` (sum of the returned values over
    the total), `threshold`, `nodes_per_depth`.
    """
    mrio, eco = prepared(mrio, "structural_path_analysis")
    if not isinstance(stressor, str):
        raise TypeError("`stressor` must be one stressor name (SPA decomposes one footprint at a time).")
    idx, _ = _stressor_indices(mrio, stressor, "structural_path_analysis")
    yv = np.asarray(_demand_vector(mrio, y, consumers, categories, "structural_path_analysis"))
    s = eco.S[idx[0]]
    M = np.asarray(eco.solve_left(jnp.stack([s, jnp.abs(s)])))  # (s L, |s| L) from the economy's factors
    res = structural_paths(np.asarray(eco.A), np.asarray(s), yv, k=k, tol=tol, max_depth=max_depth, M=(M[0], M[1]))
    regions, sectors = np.asarray(mrio.regions, dtype=object), np.asarray(mrio.sectors, dtype=object)
    N = len(sectors)
    valid = res.paths >= 0
    reg = np.where(valid, regions[np.where(valid, res.paths // N, 0)], "")
    sec = np.where(valid, sectors[np.where(valid, res.paths % N, 0)], "")
    labels = [" <- ".join(f"{r}/{c}" for r, c in zip(reg[i, : d + 1], sec[i, : d + 1]))
              for i, d in enumerate(res.depth)]
    share = res.values / res.total if res.total != 0 else np.full(res.values.shape, np.nan)
    c = {"path": np.arange(res.values.size), "position": np.arange(res.paths.shape[1])}
    pp = ("path", "position")
    unit = _units(mrio, idx)[0]
    unit_attrs = {} if unit else {"units_note": f"<unit>: the table records no unit for {stressor!r}"}
    return xr.Dataset(
        {
            "value": label(res.values, ("path",), c, units=unit or "<unit>", attrs=unit_attrs),
            "share": label(share, ("path",), c, units="1"),
            "depth": label(res.depth, ("path",), c, units="1"),
            "region": label(reg.astype(str), pp, c),
            "sector": label(sec.astype(str), pp, c),
            "label": label(np.asarray(labels, dtype=str), ("path",), c),
        },
        attrs={
            "stressor": stressor,
            "units": _units(mrio, idx)[0],
            "total": res.total,
            "coverage": float(res.values.sum() / res.total) if res.total != 0 else float("nan"),
            "threshold": res.threshold,
            "nodes_per_depth": list(res.nodes_per_depth),
            "reference": "Lenzen (2003) Econ. Syst. Res. 15:313; Peters & Hertwich (2006) Econ. Syst. Res. 18:155",
        },
    )
