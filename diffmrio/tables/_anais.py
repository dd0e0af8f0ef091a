"""ANAIS: updating a table to new margins by linear programming with bounded relative changes.

The BTH study updates city-level tables with ANAIS (Tarancon & del Rio 2005). The update is a two-stage linear
programme solved with HiGHS (`scipy.optimize.linprog(method="highs")`); like RAS it is data-dependent and stays
outside `jit`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import scipy.optimize as so
import scipy.sparse as sp

from ._balancing import _as_problem

__all__ = ["AnaisReport", "AnaisInfeasibleError", "anais"]


class AnaisInfeasibleError(ValueError):
    """The ANAIS constraints cannot all be met; `family` names the constraint family at fault."""

    def __init__(self, message: str, family: str):
        super().__init__(message)
        self.family = family


@dataclass(frozen=True)
class AnaisReport:
    """Result report of [`anais`][diffmrio.tables.anais].

    **Fields**

    - `max_rel_change`: optimum of stage 1, $t^* = \\min \\max_{ij} |x_{ij} - x^0_{ij}| / |x^0_{ij}|$.
    - `weighted_abs_rel_change`: optimum of stage 2, $\\sum_{ij} w_{ij} |x_{ij} - x^0_{ij}| / |x^0_{ij}|$.
    - `achieved_max_rel_change`: the largest relative change in the returned table ($\\le t^*$ plus the
      stage-2 slack).
    - `max_row_error`, `max_col_error`: largest absolute margin residuals of the returned table.
    - `messages`: the HiGHS status messages of the two stages.
    """

    max_rel_change: float
    weighted_abs_rel_change: float
    achieved_max_rel_change: float
    max_row_error: float
    max_col_error: float
    messages: tuple[str, str] = field(repr=False)


def _bounds_from_coefficients(coef_lower, coef_upper, X0, v, cells):
    """Variable bounds a^-_ij w_j <= x_ij <= a^+_ij w_j for the free cells (NaN = no bound)."""
    m, n = X0.shape
    lo = np.full(len(cells[0]), -np.inf)
    hi = np.full(len(cells[0]), np.inf)
    for name, a, side in (("coef_lower", coef_lower, "lo"), ("coef_upper", coef_upper, "hi")):
        if a is None:
            continue
        a = np.broadcast_to(np.asarray(a, dtype=np.float64), (m, n))
        ac = a[cells]
        given = ~np.isnan(ac)
        bad_cols = np.unique(cells[1][given & (v[cells[1]] <= 0)])
        if bad_cols.size:
            raise ValueError(
                f"`{name}` bounds coefficients x_ij / w_j of columns {bad_cols.tolist()} whose new totals "
                "w_j are not positive: coefficient ranges are only defined for positive column totals. "
                "Set those entries to NaN."
            )
        bound = ac * v[cells[1]]
        if side == "lo":
            lo = np.where(given, bound, lo)
        else:
            hi = np.where(given, bound, hi)
    return lo, hi


def _solve(c, A_ub, b_ub, A_eq, b_eq, bounds):
    return so.linprog(c, A_ub=A_ub, b_ub=b_ub, A_eq=A_eq, b_eq=b_eq, bounds=bounds, method="highs")


def anais(
    X0,
    row_targets,
    col_targets,
    *,
    coef_lower=None,
    coef_upper=None,
    weights="share",
    slack: float = 1e-9,
    total_rtol: float = 1e-10,
) -> tuple[np.ndarray, AnaisReport]:
    """Update a table to new margins by ANAIS, a two-stage linear programme on relative cell changes.

    Following Tarancon & del Rio (2005, *Economic Systems Research* 17(1):1-23), as used by the BTH study,
    with $d_{ij} = (x_{ij} - x^0_{ij}) / |x^0_{ij}|$ the relative change of a non-zero prior cell:

    1. minimise the largest relative change $t^* = \\min \\max_{ij} |d_{ij}|$;
    2. with $|d_{ij}| \\le t^*(1 + \\text{slack}) + \\text{slack}$ fixed, minimise the weighted sum
       $\\sum_{ij} w_{ij} |d_{ij}|$ (this picks, among the minimax solutions, the one that changes least
       overall);

    both subject to

    - consistency: $\\sum_j x_{ij} = u_i$, $\\sum_i x_{ij} = v_j$ (the new margins, $v_j = w_j$ the new
      column totals);
    - structure: $x_{ij} = 0$ where $x^0_{ij} = 0$, and $x_{ij} / x^0_{ij} \\ge 0$ (signs preserved);
    - coefficient ranges: $a^-_{ij} \\le x_{ij} / w_j \\le a^+_{ij}$ (optional, per cell, NaN = no bound).

    **Arguments**

    - `X0`: prior table, shape `[m, n]` (any signs; zeros stay zero).
    - `row_targets`: new row totals $u$, shape `[m]`; `col_targets`: new column totals $w$, shape `[n]`,
      $\\sum u = \\sum w$.
    - `coef_lower`, `coef_upper`: $a^-$, $a^+$, broadcastable to `[m, n]`, or `None`. Only columns with
      $w_j > 0$ may be bounded.
    - `weights`: stage-2 weights $w_{ij}$: `"share"` ($|x^0_{ij}| / \\sum |x^0|$, so the objective is the
      total absolute change as a share of the table), `"uniform"` (1 for each cell), or an array `[m, n]`.
    - `slack`: relative and absolute slack on $t^*$ in stage 2 (keeps stage 2 feasible despite solver
      round-off).
    - `total_rtol`: tolerance of the grand-total check.

    **Returns**

    `(X, report)`: the updated table `[m, n]` and an [`AnaisReport`][diffmrio.tables.AnaisReport].

    **Raises**

    `AnaisInfeasibleError` (a `ValueError`) naming the constraint family that cannot be met: `"margins"`
    (the new margins are unreachable with the prior's zero/sign pattern) or `"coefficient_ranges"` (the
    margins are reachable but not within the coefficient ranges). `ValueError` for bad inputs.
    """
    X0, u, v = _as_problem(X0, row_targets, col_targets, total_rtol)
    m, n = X0.shape
    cells = np.nonzero(X0)
    k = len(cells[0])
    if k == 0:
        raise ValueError(
            "`X0` has no non-zero entry: ANAIS keeps zeros at zero, so there is nothing to update."
        )
    x0 = X0[cells]
    a0 = np.abs(x0)

    if isinstance(weights, str):
        if weights == "share":
            wts = a0 / a0.sum()
        elif weights == "uniform":
            wts = np.ones(k)
        else:
            raise ValueError(f"`weights` must be 'share', 'uniform' or an array, got {weights!r}.")
    else:
        W = np.broadcast_to(np.asarray(weights, dtype=np.float64), (m, n))
        wts = W[cells]
        if (wts < 0).any() or not np.all(np.isfinite(wts)):
            raise ValueError("`weights` must be finite and non-negative.")

    # Margins: sparse incidence of the free cells.
    rows_inc = sp.csr_array((np.ones(k), (cells[0], np.arange(k))), shape=(m, k))
    cols_inc = sp.csr_array((np.ones(k), (cells[1], np.arange(k))), shape=(n, k))
    A_marg = sp.vstack([rows_inc, cols_inc]).tocsr()
    b_marg = np.concatenate([u, v])

    # Structure: sign preservation as variable bounds.
    sign_lo = np.where(x0 > 0, 0.0, -np.inf)
    sign_hi = np.where(x0 < 0, 0.0, np.inf)
    coef_lo, coef_hi = _bounds_from_coefficients(coef_lower, coef_upper, X0, v, cells)
    lo = np.maximum(sign_lo, coef_lo)
    hi = np.minimum(sign_hi, coef_hi)
    has_coef = coef_lower is not None or coef_upper is not None

    def diagnose(lo_, hi_, stage: str):
        # Re-solve feasibility without the coefficient ranges to tell the families apart.
        feas = _solve(np.zeros(k), None, None, A_marg, b_marg, list(zip(sign_lo, sign_hi)))
        if feas.status == 0 and has_coef:
            inverted = np.nonzero(lo_ > hi_)[0]
            detail = (
                f" The ranges are empty for {len(inverted)} cells, e.g. {list(zip(cells[0][inverted[:5]].tolist(), cells[1][inverted[:5]].tolist()))}"
                " (a^- above a^+, or a range of the wrong sign for the prior entry)."
                if inverted.size
                else ""
            )
            raise AnaisInfeasibleError(
                f"ANAIS {stage}: the new margins can be met with the prior's zero/sign pattern, but not within "
                f"the coefficient ranges a^- <= x_ij / w_j <= a^+.{detail} Widen `coef_lower`/`coef_upper` or "
                "check them against the new column totals.",
                "coefficient_ranges",
            )
        raise AnaisInfeasibleError(
            f"ANAIS {stage}: the new margins cannot be met by any table with the prior's zero/sign pattern "
            f"(HiGHS: {feas.message}). Check that zero rows/columns of the prior have zero targets and that "
            "the targets' signs match the signs the prior allows, or seed the prior with the missing cells.",
            "margins",
        )

    # Stage 1: variables (x, t); minimise t s.t. |x - x0| <= t |x0|.
    eye = sp.eye_array(k, format="csr")
    col_a0 = sp.csr_array(a0[:, None])
    A_ub1 = sp.vstack([sp.hstack([eye, -col_a0]), sp.hstack([-eye, -col_a0])]).tocsr()
    b_ub1 = np.concatenate([x0, -x0])
    A_eq1 = sp.hstack([A_marg, sp.csr_array((m + n, 1))]).tocsr()
    c1 = np.zeros(k + 1)
    c1[-1] = 1.0
    bounds1 = list(zip(lo, hi)) + [(0.0, None)]
    if (lo > hi).any():
        diagnose(lo, hi, "coefficient ranges")
    res1 = _solve(c1, A_ub1, b_ub1, A_eq1, b_marg, bounds1)
    if res1.status == 2:
        diagnose(lo, hi, "stage 1")
    if res1.status != 0:
        raise RuntimeError(f"ANAIS stage 1 failed: HiGHS status {res1.status}: {res1.message}")
    t_star = float(res1.x[-1])

    # Stage 2: variables (x, y), y_ij >= |x_ij - x0_ij| / |x0_ij|; bound on t as variable bounds on x.
    T = t_star * (1.0 + slack) + slack
    lo2 = np.maximum(lo, x0 - T * a0)
    hi2 = np.minimum(hi, x0 + T * a0)
    inv_a0 = sp.diags_array(1.0 / a0, format="csr")
    A_ub2 = sp.vstack([sp.hstack([inv_a0, -eye]), sp.hstack([-inv_a0, -eye])]).tocsr()
    b_ub2 = np.concatenate([x0 / a0, -x0 / a0])
    A_eq2 = sp.hstack([A_marg, sp.csr_array((m + n, k))]).tocsr()
    c2 = np.concatenate([np.zeros(k), wts])
    bounds2 = list(zip(lo2, hi2)) + [(0.0, None)] * k
    res2 = _solve(c2, A_ub2, b_ub2, A_eq2, b_marg, bounds2)
    if res2.status != 0:
        raise RuntimeError(
            f"ANAIS stage 2 failed with the stage-1 bound t* = {t_star:.6g} fixed (HiGHS status {res2.status}: "
            f"{res2.message}); increase `slack`."
        )

    X = np.zeros_like(X0)
    X[cells] = res2.x[:k]
    d = np.abs(X[cells] - x0) / a0
    report = AnaisReport(
        max_rel_change=t_star,
        weighted_abs_rel_change=float(wts @ d),
        achieved_max_rel_change=float(d.max()),
        max_row_error=float(np.abs(X.sum(1) - u).max()),
        max_col_error=float(np.abs(X.sum(0) - v).max()),
        messages=(str(res1.message), str(res2.message)),
    )
    return X, report
