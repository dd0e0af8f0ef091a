"""Biproportional balancing of matrices: RAS and GRAS (negative entries allowed).

Both are data-dependent iterative algorithms (the number of sweeps depends on the data), so they run in
numpy outside `jit`, the way jax-md keeps neighbour-list construction outside. The result is an ordinary
array that can then be turned into a differentiable table.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np

__all__ = ["BalanceReport", "ras", "gras"]


@dataclass(frozen=True)
class BalanceReport:
    """Convergence report of [`ras`][diffmrio.tables.ras] / [`gras`][diffmrio.tables.gras].

    **Fields**

    - `converged`: whether both the maximum relative row error and the maximum relative column error fell to
      `tol` or below.
    - `iterations`: number of full sweeps (one column update followed by one row update) performed.
    - `max_row_error`, `max_col_error`: final maximum relative errors
      $\\max_i |\\sum_j x_{ij} - u_i| / d_i$ (rows) and the same over columns, where $d_i = |u_i|$, or the
      mean absolute target where $u_i = 0$.
    - `history`: `max(max_row_error, max_col_error)` after every sweep.
    - `row_multipliers` (`r`, shape `[m]`) and `col_multipliers` (`s`, shape `[n]`): the scaling factors,
      $X = \\hat r X_0 \\hat s$ for RAS; for GRAS
      $X = \\hat r P \\hat s - \\hat r^{-1} N \\hat s^{-1}$.
    """

    converged: bool
    iterations: int
    max_row_error: float
    max_col_error: float
    history: tuple[float, ...] = field(repr=False)
    row_multipliers: np.ndarray = field(repr=False)
    col_multipliers: np.ndarray = field(repr=False)


# ----------------------------------------------------------------------------------------------------------
# input checks shared by RAS and GRAS


def _as_problem(X0, row_targets, col_targets, total_rtol: float):
    X0 = np.asarray(X0, dtype=np.float64)
    u = np.asarray(row_targets, dtype=np.float64)
    v = np.asarray(col_targets, dtype=np.float64)
    if X0.ndim != 2:
        raise ValueError(f"`X0` must be a 2-D matrix, got shape {X0.shape}.")
    m, n = X0.shape
    if u.shape != (m,):
        raise ValueError(
            f"`row_targets` has shape {u.shape} but `X0` has {m} rows: pass one target per row (shape ({m},))."
        )
    if v.shape != (n,):
        raise ValueError(
            f"`col_targets` has shape {v.shape} but `X0` has {n} columns: pass one target per column "
            f"(shape ({n},))."
        )
    for name, arr in (("X0", X0), ("row_targets", u), ("col_targets", v)):
        if not np.all(np.isfinite(arr)):
            raise ValueError(f"`{name}` contains NaN or inf; fill missing values before balancing.")
    su, sv = u.sum(), v.sum()
    scale = max(np.abs(u).sum(), np.abs(v).sum(), np.finfo(np.float64).tiny)
    if abs(su - sv) > total_rtol * scale:
        raise ValueError(
            f"The row targets sum to {su:.12g} but the column targets sum to {sv:.12g} (relative difference "
            f"{abs(su - sv) / scale:.3g} > total_rtol={total_rtol:g}): no matrix can meet both. Make the two "
            "grand totals equal (e.g. rescale one set of targets, or put the discrepancy in a residual row "
            "or column) before balancing."
        )
    return X0, u, v


def _fmt_idx(idx, limit: int = 5) -> str:
    idx = [int(i) for i in idx]
    s = ", ".join(map(str, idx[:limit]))
    return s + (f" and {len(idx) - limit} more" if len(idx) > limit else "")


def _check_support(pos: np.ndarray, neg: np.ndarray, target: np.ndarray, axis_name: str) -> None:
    """`pos`/`neg`: whether each line (row or column) has a positive / negative entry that can be scaled."""
    zero_line = ~pos & ~neg & (target != 0)
    if zero_line.any():
        raise ValueError(
            f"{axis_name.capitalize()}s {_fmt_idx(np.nonzero(zero_line)[0])} of `X0` have no entry that can be "
            f"scaled (all zero, or only in lines whose target is 0) but a non-zero target: scaling cannot "
            f"create entries. Seed those {axis_name}s with a prior value (or set their targets to 0)."
        )
    pos_only = pos & ~neg & (target < 0)
    if pos_only.any():
        raise ValueError(
            f"{axis_name.capitalize()}s {_fmt_idx(np.nonzero(pos_only)[0])} of `X0` have only non-negative "
            f"entries but a negative target: sign-preserving scaling cannot reach it. Check the signs of "
            "those targets or of the prior."
        )
    neg_only = neg & ~pos & (target > 0)
    if neg_only.any():
        raise ValueError(
            f"{axis_name.capitalize()}s {_fmt_idx(np.nonzero(neg_only)[0])} of `X0` have only non-positive "
            f"entries but a positive target: sign-preserving scaling cannot reach it. Check the signs of "
            "those targets or of the prior."
        )


def _rel_errors(X: np.ndarray, u: np.ndarray, v: np.ndarray) -> tuple[float, float]:
    tiny = np.finfo(np.float64).tiny  # (an empty margin has no mean: numpy would warn "Mean of empty slice")
    du = np.where(u != 0, np.abs(u), max(np.abs(u).mean() if u.size else tiny, tiny))
    dv = np.where(v != 0, np.abs(v), max(np.abs(v).mean() if v.size else tiny, tiny))
    return float(np.max(np.abs(X.sum(1) - u) / du, initial=0.0)), float(
        np.max(np.abs(X.sum(0) - v) / dv, initial=0.0)
    )


def _finish(method, converged, it, err_r, err_c, history, r, s, warn, tol, max_iter) -> BalanceReport:
    report = BalanceReport(
        converged=bool(converged),
        iterations=int(it),
        max_row_error=err_r,
        max_col_error=err_c,
        history=tuple(history),
        row_multipliers=r,
        col_multipliers=s,
    )
    if not converged and warn:
        warnings.warn(
            f"{method} stopped after {max_iter} sweeps with max relative row error {err_r:.3g} and column "
            f"error {err_c:.3g} (tol={tol:g}). The targets may be unreachable with the zero pattern of the "
            "prior; inspect `report.history`, or raise `max_iter`.",
            RuntimeWarning,
            stacklevel=3,
        )
    return report


_STALL_WINDOW = 10


def _stalled(history: list[float], it: int, tol: float, max_iter: int) -> bool:
    """Whether the error has stopped falling fast enough: at the rate of the last `_STALL_WINDOW` sweeps it would
    not reach `tol` within `max_iter` sweeps (or it did not fall at all). Checked from sweep `2 * _STALL_WINDOW`."""
    w = _STALL_WINDOW
    if it < 2 * w:
        return False
    new, old = history[-1], history[-1 - w]
    if not (np.isfinite(new) and np.isfinite(old)) or new >= old:
        return True
    if new <= tol:
        return False
    rate = (new / old) ** (1.0 / w)
    needed = np.log(tol / new) / np.log(rate) if rate > 0 else 0.0
    return bool(it + needed > max_iter)


def _deficit_set(X, S, u, v, du, dv):
    """A set of lines whose targets exceed the targets of every crossing line they can reach (Hall's condition
    on the zero pattern `S` fails: no non-negative matrix with that pattern meets the margins). Returns a message
    or `None`. Candidate sets: the rows (columns) whose sums fall short of their targets by more than a fraction
    of the largest shortfall."""
    for axis, (t, d, t_other, name, other) in enumerate(
        ((u, du, v, "row", "column"), (v, dv, u, "column", "row"))
    ):
        short = (t - X.sum(axis=1 - axis)) / d
        top = short.max(initial=0.0)
        if top <= 0:
            continue
        for frac in (0.5, 0.1, 1e-2, 1e-3, 1e-6):
            lines = np.nonzero(short > frac * top)[0]
            reach = (S[lines].any(axis=0) if axis == 0 else S[:, lines].any(axis=1))
            need, have = t[lines].sum(), t_other[reach].sum()
            if need > have * (1 + 1e-9) + 1e-300:
                return (f"{name}s {_fmt_idx(lines)} have targets totalling {need:.10g}, but the {other}s they have "
                        f"entries in ({_fmt_idx(np.nonzero(reach)[0])}) have targets totalling only {have:.10g}: no "
                        f"matrix with the zero pattern of `X0` meets both margins. Correct those targets, or seed "
                        f"the prior with entries linking those {name}s to other {other}s.")
    return None


def _gaps(X, u, v, du, dv, tol) -> str:
    er = np.abs(X.sum(1) - u) / du
    ec = np.abs(X.sum(0) - v) / dv
    rows = [f"row {i} (sum {X[i].sum():.6g}, target {u[i]:.6g})" for i in np.argsort(-er)[:3] if er[i] > tol]
    cols = [f"column {j} (sum {X[:, j].sum():.6g}, target {v[j]:.6g})" for j in np.argsort(-ec)[:3] if ec[j] > tol]
    return "largest gaps: " + ", ".join(rows + cols)


def _stop(method, X, S, u, v, it, err, tol, warn):
    """What to do when the sweeps stall: an error when the margins are proven infeasible (or the scaling broke
    down), a warning (with `warn`) otherwise."""
    tiny = np.finfo(np.float64).tiny  # (an empty margin has no mean: numpy would warn "Mean of empty slice")
    du = np.where(u != 0, np.abs(u), max(np.abs(u).mean() if u.size else tiny, tiny))
    dv = np.where(v != 0, np.abs(v), max(np.abs(v).mean() if v.size else tiny, tiny))
    if not np.all(np.isfinite(X)):
        rows = np.nonzero(~np.isfinite(X).all(1))[0]
        cols = np.nonzero(~np.isfinite(X).all(0))[0]
        raise ValueError(
            f"{method} broke down after {it} sweeps: the scaling factors of rows {_fmt_idx(rows)} and columns "
            f"{_fmt_idx(cols)} over- or underflowed, which happens when the margins cannot be met with the zero "
            "pattern of `X0`. Check those rows' and columns' targets against the entries they have."
        )
    hall = _deficit_set(X, S, u, v, du, dv) if S is not None else None
    if hall is not None:
        raise ValueError(f"{method} cannot meet the margins (the error stalled at {err:.3g} after {it} sweeps): "
                         + hall)
    if warn:
        warnings.warn(
            f"{method} stalled after {it} sweeps at max relative error {err:.3g} > tol={tol:g}: at its current rate "
            f"it would not reach tol within max_iter sweeps ({_gaps(X, u, v, du, dv, tol)}). Near tol this is the "
            "floating-point floor of the margins (raise `tol`); far above it the zero pattern of `X0` leaves the "
            "margins barely reachable (check those targets). The result is returned with `converged=False`.",
            RuntimeWarning,
            stacklevel=3,
        )


def _safe_div(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    out = np.zeros(np.broadcast_shapes(a.shape, b.shape))
    np.divide(a, b, out=out, where=b != 0)
    return out


# ----------------------------------------------------------------------------------------------------------
# RAS


def ras(
    X0,
    row_targets,
    col_targets,
    *,
    tol: float = 1e-8,
    max_iter: int = 10_000,
    total_rtol: float = 1e-10,
    warn: bool = True,
) -> tuple[np.ndarray, BalanceReport]:
    """Balance a non-negative matrix to row and column targets by RAS (biproportional scaling).

    Finds $X = \\hat r X_0 \\hat s$ with $X \\mathbf 1 = u$ and $X^T \\mathbf 1 = v$. The RAS solution is the
    minimum-information adjustment of the prior,
    $\\min_X \\sum_{ij} x_{ij} \\ln(x_{ij}/x^0_{ij})$ subject to the margins (Bacharach 1970; Miller & Blair
    2009, ch. 7), and keeps every zero of $X_0$ at zero. Each sweep sets
    $s_j = v_j / \\sum_i r_i x^0_{ij}$ then $r_i = u_i / \\sum_j x^0_{ij} s_j$.

    **Arguments**

    - `X0`: prior matrix, shape `[m, n]`, entries $\\ge 0$ (use [`gras`][diffmrio.tables.gras] for negatives).
    - `row_targets`: $u$, shape `[m]`, $\\ge 0$.
    - `col_targets`: $v$, shape `[n]`, $\\ge 0$, with $\\sum v = \\sum u$.
    - `tol`: stop when the maximum relative row error and column error are both $\\le$ `tol`.
    - `max_iter`: cap on the number of sweeps.
    - `total_rtol`: tolerance of the grand-total check $|\\sum u - \\sum v| \\le$ `total_rtol` $\\cdot \\max(\\sum|u|, \\sum|v|)$.
    - `warn`: emit a `RuntimeWarning` when the cap is reached, or the sweeps stall, without convergence.

    The sweeps stop early when they stall: from sweep 20 on, when the error of the last 10 sweeps falls at a
    rate that would not reach `tol` within `max_iter` sweeps (a floating-point floor, or margins that the zero
    pattern of `X0` makes barely reachable). The result is then returned with `converged=False` and a warning
    naming the rows and columns with the largest gaps, unless the margins are proven infeasible (below).

    **Returns**

    `(X, report)`: the balanced matrix, shape `[m, n]`, and a [`BalanceReport`][diffmrio.tables.BalanceReport].

    **Raises**

    `ValueError` when the grand totals of the targets differ, when `X0` or a target is negative, when a
    row/column of `X0` has nothing to scale but a positive target, and, once the sweeps stall, when a set of
    rows (columns) falling short of their targets needs more than the targets of all the columns (rows) they
    have entries in allow (Hall's condition on the zero pattern; the message names both sets), or when the
    scaling factors overflow.

    !!! example
        ```python
        X, rep = diffmrio.tables.ras(X0, u, v)
        assert rep.converged
        ```
    """
    X0, u, v = _as_problem(X0, row_targets, col_targets, total_rtol)
    if (X0 < 0).any():
        i, j = (int(k[0]) for k in np.nonzero(X0 < 0))
        raise ValueError(
            f"`X0` has {int((X0 < 0).sum())} negative entries (first at [{i}, {j}]): RAS needs a non-negative "
            "prior. Use `gras` for matrices with negative entries (e.g. inventory changes, subsidies)."
        )
    for name, t in (("row_targets", u), ("col_targets", v)):
        if (t < 0).any():
            raise ValueError(
                f"`{name}` has negative entries at {_fmt_idx(np.nonzero(t < 0)[0])}: RAS targets must be "
                "non-negative. Use `gras` when margins can be negative."
            )
    # Entries in a line with target 0 are forced to 0, so they cannot serve the crossing line.
    live = X0 * (u > 0)[:, None] * (v > 0)[None, :]
    _check_support((live > 0).any(1), np.zeros(len(u), bool), u, "row")
    _check_support((live > 0).any(0), np.zeros(len(v), bool), v, "column")

    m, n = X0.shape
    r = np.ones(m)
    s = np.ones(n)
    history: list[float] = []
    converged = False
    err_r = err_c = np.inf
    it = 0
    for it in range(1, max_iter + 1):
        s = _safe_div(v, X0.T @ r)
        r = _safe_div(u, X0 @ s)
        X = r[:, None] * X0 * s[None, :]
        err_r, err_c = _rel_errors(X, u, v)
        history.append(max(err_r, err_c))
        if err_r <= tol and err_c <= tol:
            converged = True
            break
        if not np.isfinite(history[-1]) or _stalled(history, it, tol, max_iter):
            _stop("RAS", X, live > 0, u, v, it, history[-1], tol, warn)
            return X, _finish("RAS", False, it, err_r, err_c, history, r, s, False, tol, max_iter)
    X = r[:, None] * X0 * s[None, :]
    return X, _finish("RAS", converged, it, err_r, err_c, history, r, s, warn, tol, max_iter)


# ----------------------------------------------------------------------------------------------------------
# GRAS


def _gras_factor(target: np.ndarray, p: np.ndarray, nn: np.ndarray) -> np.ndarray:
    """Temurshoev et al. (2013) eq. for one set of multipliers given the other side.

    $z = (t + \\sqrt{t^2 + 4 p n}) / (2 p)$ if $p > 0$, $z = -n/t$ if $p = 0 < n$ (then $t < 0$), and 1
    for an all-zero line (its value is irrelevant).
    """
    z = np.ones_like(target)
    has_p = p > 0
    # For t < 0 the numerator t + sqrt(t^2 + 4pn) cancels; use the equal rationalised form
    # (t + sqrt(t^2 + 4pn)) / (2p) = 2n / (sqrt(t^2 + 4pn) - t).
    root = np.sqrt(target**2 + 4.0 * p * nn)
    direct = _safe_div(target + root, 2.0 * p)
    rational = _safe_div(2.0 * nn, root - target)
    z = np.where(has_p & (target >= 0), direct, z)
    z = np.where(has_p & (target < 0), rational, z)
    only_n = ~has_p & (nn > 0)
    z = np.where(only_n, _safe_div(-nn, target), z)
    return z


def gras(
    X0,
    row_targets,
    col_targets,
    *,
    tol: float = 1e-8,
    max_iter: int = 10_000,
    total_rtol: float = 1e-10,
    warn: bool = True,
) -> tuple[np.ndarray, BalanceReport]:
    """Balance a matrix with positive and negative entries to row and column targets by GRAS.

    GRAS (Junius & Oosterhaven 2003, with the objective corrected by Lenzen, Wood & Gallego 2007) solves
    $$\\min_{z} \\sum_{ij} |x^0_{ij}|\\, z_{ij} \\ln(z_{ij}/e) \\quad\\text{s.t.}\\quad
    \\sum_j x^0_{ij} z_{ij} = u_i,\\ \\sum_i x^0_{ij} z_{ij} = v_j,$$
    $x_{ij} = z_{ij} x^0_{ij}$, so every entry keeps its sign and every zero stays zero. Split
    $X_0 = P - N$ into its positive and negative parts; the solution is
    $X = \\hat r P \\hat s - \\hat r^{-1} N \\hat s^{-1}$, computed with the algorithm of Temurshoev, Miller &
    Bouwmeester (2013, *Economic Systems Research* 25:361-367), which alternates
    $$s_j = \\frac{v_j + \\sqrt{v_j^2 + 4 p_j(r) n_j(r)}}{2 p_j(r)},\\quad
    p_j(r) = \\sum_i r_i p_{ij},\\ n_j(r) = \\sum_i n_{ij}/r_i$$
    (and $s_j = -n_j(r)/v_j$ when $p_j(r) = 0$), then the same for $r_i$ with $p_i(s) = \\sum_j p_{ij} s_j$,
    $n_i(s) = \\sum_j n_{ij}/s_j$. Without negative entries this is exactly RAS.

    **Arguments**

    - `X0`: prior matrix, shape `[m, n]`, any signs.
    - `row_targets`: $u$, shape `[m]`; `col_targets`: $v$, shape `[n]`, with $\\sum u = \\sum v$.
    - `tol`, `max_iter`, `total_rtol`, `warn`: as in [`ras`][diffmrio.tables.ras].

    **Returns**

    `(X, report)`: the balanced matrix `[m, n]` and a [`BalanceReport`][diffmrio.tables.BalanceReport] whose
    multipliers are the $r$, $s$ above.

    **Raises**

    `ValueError` when the grand totals differ, or a row/column cannot reach its target with sign-preserving
    scaling (all zero with a non-zero target; only non-negative entries with a negative target; only
    non-positive entries with a positive target); without negative entries, also in the stalled cases of
    [`ras`][diffmrio.tables.ras] (the stall rule is the same).
    """
    X0, u, v = _as_problem(X0, row_targets, col_targets, total_rtol)
    P = np.where(X0 > 0, X0, 0.0)
    N = np.where(X0 < 0, -X0, 0.0)
    _check_support((P > 0).any(1), (N > 0).any(1), u, "row")
    _check_support((P > 0).any(0), (N > 0).any(0), v, "column")

    m, n = X0.shape
    r = np.ones(m)
    s = np.ones(n)
    history: list[float] = []
    converged = False
    err_r = err_c = np.inf
    it = 0

    def assemble(r, s):
        # r_i or s_j can be exactly 0 only on lines without negative entries, so 1/r there multiplies zeros.
        return (
            r[:, None] * P * s[None, :]
            - _safe_div(np.ones_like(r), r)[:, None] * N * _safe_div(np.ones_like(s), s)[None, :]
        )

    for it in range(1, max_iter + 1):
        inv_r = _safe_div(np.ones_like(r), r)
        s = _gras_factor(v, P.T @ r, N.T @ inv_r)
        inv_s = _safe_div(np.ones_like(s), s)
        r = _gras_factor(u, P @ s, N @ inv_s)
        X = assemble(r, s)
        err_r, err_c = _rel_errors(X, u, v)
        history.append(max(err_r, err_c))
        if err_r <= tol and err_c <= tol:
            converged = True
            break
        if not np.isfinite(history[-1]) or _stalled(history, it, tol, max_iter):
            _stop("GRAS", X, None if (N > 0).any() else P > 0, u, v, it, history[-1], tol, warn)
            return X, _finish("GRAS", False, it, err_r, err_c, history, r, s, False, tol, max_iter)
    X = assemble(r, s)
    return X, _finish("GRAS", converged, it, err_r, err_c, history, r, s, warn, tol, max_iter)
