"""Validation of MRIO tables: clear errors that name the problem, the place and the fix."""

from __future__ import annotations

import numpy as np


class MRIOError(ValueError):
    """A table that cannot be used as it is (wrong shapes, invalid values, an unsolvable system)."""


def _label(idx: int, regions, sectors) -> str:
    n_sec = len(sectors)
    return f"({regions[idx // n_sec]!r}, {sectors[idx % n_sec]!r})"


def _labels(idxs, regions, sectors, limit: int = 5) -> str:
    idxs = list(idxs)
    shown = ", ".join(_label(i, regions, sectors) for i in idxs[:limit])
    more = f" and {len(idxs) - limit} more" if len(idxs) > limit else ""
    return shown + more


def check_finite(name: str, arr: np.ndarray) -> None:
    bad = ~np.isfinite(arr)
    if bad.any():
        where = tuple(int(i[0]) for i in np.nonzero(bad))
        raise MRIOError(
            f"`{name}` contains {int(bad.sum())} NaN/inf entries (first at index {where}); "
            "fill missing values (e.g. with 0) before building the MRIO."
        )


def check_shapes(Z, Y, F, F_Y, n_regions: int, n_sectors: int, n_categories: int, n_stressors: int) -> None:
    n = n_regions * n_sectors
    if Z.ndim != 2 or Z.shape != (n, n):
        raise MRIOError(
            f"`Z` has shape {Z.shape} but {n_regions} regions x {n_sectors} sectors need ({n}, {n}): "
            "both axes of Z are indexed by region-sector, region-major."
        )
    if Y.ndim != 2 or Y.shape[0] != n:
        raise MRIOError(
            f"`Y` has {Y.shape[0] if Y.ndim else 0} rows but `Z` has {n}: both are indexed by region-sector."
        )
    if Y.shape[1] != n_regions * n_categories:
        raise MRIOError(
            f"`Y` has {Y.shape[1]} columns but {n_regions} regions x {n_categories} final-demand categories "
            f"need {n_regions * n_categories} (columns are (consuming region, category), region-major)."
        )
    if F.ndim != 2 or F.shape != (n_stressors, n):
        raise MRIOError(
            f"`F` has shape {F.shape} but {n_stressors} stressors x {n} region-sectors are expected "
            "(rows: stressors, columns: region-sector as in `Z`)."
        )
    if F_Y.ndim != 2 or F_Y.shape != (n_stressors, Y.shape[1]):
        raise MRIOError(
            f"`F_Y` has shape {F_Y.shape} but must be (stressors, final-demand columns) = "
            f"({n_stressors}, {Y.shape[1]}); pass zeros if final demand emits nothing directly."
        )


def check_table(Z: np.ndarray, Y: np.ndarray, regions, sectors, *, check_spectrum: bool = True) -> None:
    """Value checks on a numeric table (outside `jit`): negative flows or output, zero-output sectors with
    inputs, and a coefficient matrix whose spectral radius is not below one."""
    neg = np.argwhere(Z < 0)
    if len(neg):
        i, j = (int(v) for v in neg[0])
        raise MRIOError(
            f"`Z` has {len(neg)} negative intermediate flows, e.g. from {_label(i, regions, sectors)} to "
            f"{_label(j, regions, sectors)} = {Z[i, j]:.6g}; intermediate flows must be >= 0 "
            "(balance the table with GRAS, or move negative items such as subsidies to value added)."
        )
    x = Z.sum(axis=1) + Y.sum(axis=1)
    bad = np.nonzero(x < 0)[0]
    if len(bad):
        raise MRIOError(
            f"gross output x = Z 1 + Y 1 is negative for {_labels(bad, regions, sectors)}; "
            "check final demand (large negative inventory changes) or rebalance the table."
        )
    zero_out = np.nonzero((x == 0) & (np.abs(Z).sum(axis=0) > 0))[0]
    if len(zero_out):
        raise MRIOError(
            f"sectors with zero output but non-zero inputs: {_labels(zero_out, regions, sectors)}; "
            "a sector that produces nothing cannot buy inputs: remove those inputs or aggregate the sector."
        )
    if not check_spectrum:
        return
    xs = np.where(x > 0, x, 1.0)
    A = Z / xs[None, :]
    colsum = A.sum(axis=0)
    if colsum.max() < 1.0:  # rho(A) <= max column sum < 1 for A >= 0
        return
    rho, vec = _perron(A)
    if rho >= 1.0 - 1e-12:
        over = np.nonzero(colsum >= 1.0)[0]
        top = np.argsort(-vec)[:5]
        raise MRIOError(
            f"the technical-coefficient matrix A has spectral radius {rho:.6g} >= 1, so I - A is singular or "
            f"has no non-negative inverse. Columns whose inputs reach or exceed their output (sum_i A_ij >= 1): "
            f"{_labels(over, regions, sectors) if len(over) else 'none'}; the cycle is concentrated in "
            f"{_labels(top, regions, sectors)}. Check units and that gross output includes value added."
        )


def _perron(A: np.ndarray, iters: int = 2000, tol: float = 1e-13) -> tuple[float, np.ndarray]:
    """Perron root of a non-negative matrix with Collatz-Wielandt bounds (exact eigvals for small n)."""
    n = A.shape[0]
    if n <= 1500:
        w, v = np.linalg.eig(A)
        k = int(np.argmax(w.real))
        return float(w[k].real), np.abs(v[:, k].real)
    v = np.full(n, 1.0 / n)
    shift = A + 1e-3 * np.eye(n)  # primitive, same Perron vector
    hi = np.inf
    for _ in range(iters):
        w = shift @ v
        ratio = np.divide(w, v, out=np.full(n, np.inf), where=v > 0)
        lo_i, hi_i = ratio.min(), ratio.max()
        hi = hi_i - 1e-3
        v = w / w.sum()
        if hi_i - lo_i < tol * hi_i:
            break
        if hi < 1.0 - 1e-9:  # certified below one
            break
    return float(hi), v
