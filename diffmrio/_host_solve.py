r"""Leontief solves on the host (numpy/LAPACK) for large tables on a CPU.

[`accounts`][diffmrio.accounts] needs $X = (I - A)^{-1} B$ and $W = C (I - A)^{-1}$ for a few hundred
right-hand sides; the LU factorisation of the $n \times n$ matrix $I - A$ is almost all of the work. Two
ways to do it:

- `"double"`: one float64 LU, computed in place (LAPACK `dgetrf`).
- `"mixed"`: mixed-precision iterative refinement, as LAPACK's `dsgesv` does for one matrix. The LU is
  computed in float32 (half the flops' time and half the memory of a float64 LU), and each refinement step
  computes the residual in float64 from $Z$ itself, $R = B - X + Z (\mathrm{diag}(x)^{-1} X)$, and
  corrects $X$ with a float32 solve. If one float32 solve has relative error $\eta_1$, each step shrinks
  the error by about $\eta_1$ (Moler 1967; Higham, *Accuracy and Stability of Numerical Algorithms*,
  ch. 12), so after step $k$ the error is estimated as $\eta_k \eta_1$, with $\eta_k$ the relative size of
  step $k$'s correction. Steps continue until that estimate is at most `rtol`. For a productive table
  ($\rho(A) < 1$, $I - A$ well conditioned) one step reaches about $10^{-13}$. The float64 LU is used
  instead when refinement cannot converge or would not pay: an ill-conditioned $I - A$ ($\eta_1 > 10^{-2}$),
  a zero pivot in float32, corrections that stop shrinking, or a rate $\eta_1$ that would need more than
  `max_steps` steps.

$A = Z\,\mathrm{diag}(x)^{-1}$, with zero columns where $x = 0$, is never held in float64: the float32
matrix is built from $Z$ in row blocks, and the residuals use $Z$.

Every solve says how well it went: the 1-norm condition number of $I - A$ is estimated from the LU factors
that were used (LAPACK `gecon`, Hager's and Higham's estimator: $O(n^2)$ on top of the $O(n^3)$ factorisation),
and the normwise backward error of $X$ is computed from a float64 residual,
$\max_k \|B_k - (I - A) X_k\|_\infty / (\|I - A\|_\infty \|X_k\|_\infty + \|B_k\|_\infty)$.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

_ROW_BLOCK = 1024
_CACHE_ROWS = 32  # rows of Z per block when one pass both forms I - A and sums its norms (a few MB)
_ETA1_MAX = 1e-2  # a float32 solve worse than this: I - A too ill-conditioned for float32 refinement


@dataclass(frozen=True)
class SolveReport:
    """How the host solves were done: `precision` (`"mixed"` or `"double"`), the number of refinement
    `steps`, the estimated relative error `est_rel_error` (normwise, per right-hand side; `0.0` means a
    float64 LU, accurate to rounding) and, when mixed precision fell back to float64, the `fallback`
    reason; `cond` the 1-norm condition number of $I - A$ estimated by LAPACK `gecon` from the LU factors used
    (`inf` for a singular factor), and `residual` the normwise backward error of $X$ (see the module notes)."""

    precision: str
    steps: int = 0
    est_rel_error: float = 0.0
    fallback: str | None = None
    cond: float = float("nan")
    residual: float = float("nan")

    def __str__(self) -> str:
        if self.precision == "mixed":
            return (f"float32 LU of I - A with {self.steps} float64 refinement step(s), estimated relative "
                    f"error {self.est_rel_error:.1e}")
        note = f" (mixed precision fell back: {self.fallback})" if self.fallback else ""
        return f"float64 LU of I - A{note}"


def _inverse_output(x: np.ndarray) -> np.ndarray:
    """$1/x$, with 0 where $x = 0$ (those columns of $A$ are zero)."""
    d = np.zeros_like(x, dtype=np.float64)
    nz = x != 0
    d[nz] = 1.0 / x[nz]
    return d


def _i_minus_a(Z: np.ndarray, d: np.ndarray, dtype) -> np.ndarray:
    """$I - Z\\,\\mathrm{diag}(d)$ in `dtype`, filled in row blocks (no float64 $n \\times n$ temporary)."""
    n = Z.shape[0]
    M = np.empty((n, n), dtype=dtype)
    for i in range(0, n, _ROW_BLOCK):
        np.multiply(Z[i : i + _ROW_BLOCK], -d[None, :], out=M[i : i + _ROW_BLOCK], casting="same_kind")
    M.flat[:: n + 1] += 1.0
    return M


def _i_minus_a_norms(Z: np.ndarray, d: np.ndarray, dtype) -> tuple[np.ndarray, tuple[float, float]]:
    r"""$I - Z\,\mathrm{diag}(d)$ in `dtype` and its norms $(\|I - A\|_1, \|I - A\|_\infty)$ in one pass over $Z$:
    each block of rows is formed once in float64, in a cache-sized buffer, then cast into the matrix and summed
    for the norms (the matrix is `_i_minus_a`'s; the norms need no second pass over $Z$)."""
    n = Z.shape[0]
    M = np.empty((n, n), dtype=dtype)
    col = np.zeros(n)
    row = np.empty(n)
    step = max(1, min(n, _CACHE_ROWS))
    buf = np.empty((step, n))
    nd = -d
    for i in range(0, n, step):
        k = min(step, n - i)
        t = buf[:k]
        np.multiply(Z[i : i + k], nd[None, :], out=t)  # rows of -A, float64
        M[i : i + k] = t
        np.abs(t, out=t)
        col += t.sum(axis=0)
        row[i : i + k] = t.sum(axis=1)
    M.flat[:: n + 1] += 1.0
    diag = np.diagonal(Z) * d  # A_jj
    off = np.abs(diag)
    col += np.abs(1.0 - diag) - off
    row += np.abs(1.0 - diag) - off
    return M, (float(col.max(initial=0.0)), float(row.max(initial=0.0)))


class _Factors:
    """LU factors of $I - A$, computed in place, with the two solves the accounts need."""

    def __init__(self, M: np.ndarray):
        import scipy.linalg as sla

        self._sla = sla
        # LAPACK factors Fortran-ordered arrays in place; M (C order) viewed as M.T is (I - A)^T in Fortran
        # order, so factor that and swap the transposes in the solves -- no copy of the matrix.
        # a zero pivot is reported by `pivots_ok`/`cond` (and then refused or refined in float64), not as a warning
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", sla.LinAlgWarning)
            self.lu, self.piv = sla.lu_factor(M.T, overwrite_a=True, check_finite=False)
        self.dtype = M.dtype

    def cond(self, anorm: float) -> float:
        r"""1-norm condition number of $I - A$ from LAPACK `gecon` on the factors; `anorm` $= \|I - A\|_1$.
        The factors are those of $(I - A)^T$, whose infinity-norm condition number it is."""
        if not self.pivots_ok():
            return float("inf")
        (gecon,) = self._sla.get_lapack_funcs(("gecon",), (self.lu,))
        rcond, info = gecon(self.lu, anorm, norm="I")
        if info != 0 or not np.isfinite(rcond):
            return float("nan")
        return float("inf") if rcond == 0 else float(1.0 / rcond)

    def pivots_ok(self) -> bool:
        diag = np.abs(np.diagonal(self.lu))
        return bool(np.all(np.isfinite(diag)) and diag.min() > 0)

    def right(self, B: np.ndarray) -> np.ndarray:
        """$(I - A)^{-1} B$."""
        Bf = np.array(B, dtype=self.dtype, order="F")  # LAPACK's layout; ours, so it may be overwritten
        return self._sla.lu_solve((self.lu, self.piv), Bf, trans=1, overwrite_b=True, check_finite=False)

    def left(self, C: np.ndarray) -> np.ndarray:
        """$C (I - A)^{-1}$."""
        Ct = np.array(C.T, dtype=self.dtype, order="F")  # C (C order) transposed is Fortran order: no reshuffle
        return self._sla.lu_solve((self.lu, self.piv), Ct, trans=0, overwrite_b=True, check_finite=False).T


def _backward_error(Z, d, B, X, norm_inf: float) -> float:
    """Normwise backward error of $X$ in $(I - A) X = B$, largest over the columns, from a float64 residual."""
    if X.size == 0:
        return 0.0
    R = B - X
    R += Z @ (d[:, None] * X)
    den = norm_inf * np.abs(X).max(axis=0) + np.abs(B).max(axis=0)
    num = np.abs(R).max(axis=0)
    ok = den > 0
    if not np.all(np.isfinite(num)):
        return float("inf")
    return float(np.max(num[ok] / den[ok], initial=0.0))


def _relative_size(D: np.ndarray, X: np.ndarray, axis: int) -> float:
    """Largest over right-hand sides of $\\|D\\|_\\infty / \\|X\\|_\\infty$ (`axis` runs along one side)."""
    dn = np.abs(D).max(axis=axis)
    xn = np.abs(X).max(axis=axis)
    used = xn > 0
    if not np.any(used):
        return float(np.abs(D).max()) if D.size else 0.0
    return float(np.max(dn[used] / xn[used]))


def _double(Z, d, B, C, norms, M, fallback=None):
    """The float64 LU path; `M` is $I - A$ in float64, factored in place."""
    f = _Factors(M)
    X = f.right(B)
    return X, f.left(C), SolveReport("double", fallback=fallback, cond=f.cond(norms[0]),
                                     residual=_backward_error(Z, d, B, X, norms[1]))


def _mixed(Z, d, B, C, rtol, max_steps, M, norms):
    """The float32 LU path with float64 refinement (`M` is $I - A$ in float32, factored in place), or the reason
    to fall back to float64."""
    f = _Factors(M)
    if not f.pivots_ok():
        return "zero or non-finite pivot in the float32 LU"
    X = f.right(B).astype(np.float64)
    W = f.left(C).astype(np.float64)
    eta1, prev = None, np.inf
    for step in range(1, max_steps + 1):
        RX = B - X
        RX += Z @ (d[:, None] * X)  # B - (I - A) X, in float64
        RW = W @ Z
        RW *= d[None, :]
        RW += C
        RW -= W  # C - W (I - A)
        dX, dW = f.right(RX), f.left(RW)
        eta = max(_relative_size(dX, X, 0), _relative_size(dW, W, 1))
        if not np.isfinite(eta):
            return "non-finite correction"
        if eta1 is None and eta > _ETA1_MAX:
            return f"I - A too ill-conditioned for a float32 LU (first correction {eta:.1e} of the solution)"
        if eta > 0.5 * prev:
            return f"refinement stagnated at step {step} (correction {eta:.1e})"
        X += dX
        W += dW
        eta1 = eta if eta1 is None else eta1
        est = eta * eta1
        if est <= rtol:
            return X, W, SolveReport("mixed", steps=step, est_rel_error=est, cond=f.cond(norms[0]),
                                     residual=_backward_error(Z, d, B, X, norms[1]))
        # each further step multiplies the error by about eta1: stop now if max_steps cannot reach rtol
        more = int(np.ceil(np.log(rtol / est) / np.log(eta1))) if 0 < eta1 < 1 else max_steps + 1
        if step + more > max_steps:
            return (f"refinement would need {step + more} steps to reach rtol={rtol:g} (first correction "
                    f"{eta1:.1e} of the solution); more than max_steps={max_steps}")
        prev = eta
    return f"no convergence to rtol={rtol:g} in {max_steps} steps"


def host_leontief_solves(
    Z: np.ndarray,
    x: np.ndarray,
    B: np.ndarray,
    C: np.ndarray,
    *,
    precision: str = "mixed",
    rtol: float = 1e-12,
    max_steps: int = 2,
) -> tuple[np.ndarray, np.ndarray, SolveReport]:
    r"""$X = (I - A)^{-1} B$ and $W = C (I - A)^{-1}$ with $A = Z\,\mathrm{diag}(x)^{-1}$, on the host.

    **Arguments:**

    - `Z` `(n, n)`, `x` `(n,)`: intermediate flows and gross output (float64).
    - `B` `(n, k)`, `C` `(m, n)`: right-hand sides.
    - `precision`: `"mixed"` (float32 LU with float64 iterative refinement; falls back to float64 when
      refinement cannot converge) or `"double"` (float64 LU).
    - `rtol`: the estimated relative error (normwise, per right-hand side) at which refinement stops.
    - `max_steps`: the most refinement steps; when the convergence rate seen in the first step says more would
      be needed, the float64 LU is used at once. Each step costs a float64 matrix product and a float32 solve
      with all right-hand sides, so on a CPU more than two steps cost more than the float64 LU saves.

    **Returns:** `(X, W, report)`, float64 arrays and a [`SolveReport`][diffmrio.SolveReport].
    """
    if precision not in ("mixed", "double"):
        raise ValueError(f"precision must be 'mixed' or 'double', got {precision!r}")
    Z = np.asarray(Z, dtype=np.float64)
    x = np.asarray(x, dtype=np.float64)
    B = np.asarray(B, dtype=np.float64)
    C = np.asarray(C, dtype=np.float64)
    n = Z.shape[0] if Z.ndim == 2 else -1
    if Z.shape != (n, n) or x.shape != (n,) or B.ndim != 2 or B.shape[0] != n or C.ndim != 2 or C.shape[1] != n:
        raise ValueError(
            f"host_leontief_solves needs Z (n, n), x (n,), B (n, k) and C (m, n); got Z {Z.shape}, x {x.shape}, "
            f"B {B.shape}, C {C.shape}: transpose or reshape the right-hand sides to match Z"
        )
    d = _inverse_output(x)
    M, norms = _i_minus_a_norms(Z, d, np.float64 if precision == "double" else np.float32)
    if precision == "double":
        return _double(Z, d, B, C, norms, M)
    out = _mixed(Z, d, B, C, rtol, max_steps, M, norms)
    del M  # the float32 factors (M, factored in place) are released before the float64 LU is allocated
    if isinstance(out, str):
        return _double(Z, d, B, C, norms, _i_minus_a(Z, d, np.float64), fallback=out)
    return out
