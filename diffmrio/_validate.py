"""Validation of MRIO tables: clear errors that name the problem, the place and the fix."""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np

from ._leontief import EPS64, REFUSE_ERROR, WARN_ERROR


class MRIOError(ValueError):
    """A table that cannot be used as it is (wrong shapes, invalid values, an unsolvable system)."""


class MRIOWarning(UserWarning):
    """A table that can be used but whose numbers need care (ill-conditioned, sectors without value added,
    stressors of sectors without output)."""


_EPS = np.finfo(np.float64).eps


def spectral_margin(n: int) -> float:
    r"""How far below one the spectral radius of `A` must be to count as productive: the rounding error of the
    column sums of $A = Z\,\mathrm{diag}(x)^{-1}$ and of the computed Perron root, both of order $n\,\epsilon$
    (six entries of 1/6 sum to $1 - 1.1 \cdot 10^{-16}$), with a floor of $10^{-13}$."""
    return max(1e-13, 16.0 * n * _EPS)


def closed_sectors(Z: np.ndarray, x: np.ndarray, margin: float) -> np.ndarray:
    """Indices of the largest set of columns whose inputs reach their output (column sums of `A` at least
    `1 - margin`) using inputs from that set alone: such a closed set has no value added, `A` restricted to it
    has spectral radius one, and `I - A` is singular (to within `margin`)."""
    d = np.divide(1.0, x, out=np.zeros(len(x)), where=x != 0)
    S = np.nonzero(np.asarray(Z).sum(axis=0) * d >= 1.0 - margin)[0]
    while len(S):
        inner = np.asarray(Z)[np.ix_(S, S)].sum(axis=0) * d[S]
        keep = inner >= 1.0 - margin
        if keep.all():
            break
        S = S[keep]
    return S


def _singular_hint(Z, x, regions, sectors, margin: float) -> str:
    closed = closed_sectors(Z, x, margin)
    if len(closed):
        return (f"The columns whose inputs reach their output (to within {margin:.1e} of it) buying from each other "
                f"form a closed set without value added: {_labels(closed, regions, sectors, limit=8)}. Their output "
                "is not determined by final demand: give them value added (check gross output and the value-added "
                "rows), or aggregate them with the sectors they serve.")
    d = np.divide(1.0, x, out=np.zeros(len(x)), where=x != 0)
    colsum = np.asarray(Z).sum(axis=0) * d
    top = np.argsort(-colsum)[:5]
    shown = ", ".join(f"{_label(int(j), regions, sectors)} ({colsum[j]:.10g})" for j in top)
    return (f"Columns whose inputs come closest to their output (sum_i A_ij): {shown}. Check units, and that "
            "gross output includes value added.")


def check_conditioning(cond: float, residual: float, Z, x, regions, sectors, *, what: str = "accounts") -> None:
    """Refuse (`MRIOError`) or warn (`MRIOWarning`) from the condition number `cond` of `I - A`.

    The solution of a backward-stable solve has relative error up to about `cond * eps`: above `1e-4` (fewer
    than 4 reliable significant digits, or `I - A` singular) the result is refused with the columns at fault;
    above `1e-8` it is returned with a warning that gives the estimate."""
    err = cond * EPS64 if np.isfinite(cond) else np.inf
    res = f", backward error {residual:.1e}" if np.isfinite(residual) else ""
    if not err <= REFUSE_ERROR:  # also NaN
        margin = max(spectral_margin(len(x)), 1e-9)
        raise MRIOError(
            f"{what}: I - A is singular or too ill-conditioned to solve (condition number estimate "
            f"cond_1(I - A) = {cond:.3g}, so a float64 solution may have relative error {err:.1e} > "
            f"{REFUSE_ERROR:g}{res}). " + _singular_hint(Z, x, regions, sectors, margin)
        )
    if err > WARN_ERROR:
        warnings.warn(
            f"{what}: I - A is ill-conditioned (condition number estimate cond_1(I - A) = {cond:.3g}; results "
            f"may have relative errors up to {err:.1e}{res}). "
            + _singular_hint(Z, x, regions, sectors, max(spectral_margin(len(x)), min(1e-3, 1e3 / cond))),
            MRIOWarning,
            stacklevel=3,
        )


def _label(idx: int, regions, sectors) -> str:
    n_sec = len(sectors)
    return f"({regions[idx // n_sec]!r}, {sectors[idx % n_sec]!r})"


def _labels(idxs, regions, sectors, limit: int = 5) -> str:
    idxs = list(idxs)
    shown = ", ".join(_label(i, regions, sectors) for i in idxs[:limit])
    more = f" and {len(idxs) - limit} more" if len(idxs) > limit else ""
    return shown + more


def as_numeric(name: str, arr) -> np.ndarray:
    """`arr` as a float64 array, or an `MRIOError` naming the argument and the first entry that is not a number
    (instead of numpy's "could not convert string to float")."""
    if hasattr(arr, "to_numpy"):  # pandas
        arr = arr.to_numpy()
    if arr is None:
        raise MRIOError(f"`{name}` is None: pass an array")
    if np.iscomplexobj(arr):  # numpy would drop the imaginary part with only a ComplexWarning
        raise MRIOError(f"`{name}` is complex: flows and stressors must be real numbers (take `.real` if the "
                        "imaginary parts are rounding noise from an eigen- or FFT computation)")
    if np.asarray(arr).dtype == np.bool_:  # a mask passed by mistake: numpy would read it as flows of 0 and 1
        raise MRIOError(f"`{name}` is boolean (True/False): flows and stressors must be numbers. If it is a mask, "
                        f"multiply the values by it (`values * mask`); if 0/1 flows are meant, pass "
                        f"`{name}.astype(float)`")
    try:
        return np.asarray(arr, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        obj = np.asarray(arr, dtype=object)
        for idx, v in np.ndenumerate(obj):
            try:
                float(v)
            except (TypeError, ValueError):
                raise MRIOError(
                    f"`{name}` has a non-numeric entry {v!r} at index {tuple(int(i) for i in idx)}: every entry must "
                    "be a number. Convert text columns with `pd.to_numeric(..., errors='coerce')` and fill what "
                    "becomes NaN (e.g. with 0) before building the MRIO."
                ) from None
        raise MRIOError(f"`{name}` could not be read as a float64 array ({exc}); pass a numeric array.") from None


def check_lost_stressors(F, x, regions, sectors, stressors, units) -> None:
    """Warn when sectors with zero gross output have stressors: `S = F / x` is zero there (pymrio's
    convention), so those stressors are in no account."""
    lost = (x == 0) & (np.abs(F) > 0).any(axis=0)
    if not lost.any():
        return
    cols = np.nonzero(lost)[0]
    tot = F[:, cols].sum(axis=1)
    amounts = ", ".join(f"{stressors[k]} {tot[k]:.6g}{(' ' + units[k]) if units[k] else ''}"
                        for k in np.nonzero(tot != 0)[0][:5])
    warnings.warn(
        f"sectors with zero gross output but non-zero stressors: {_labels(cols, regions, sectors)}. Their "
        f"intensities S = F / x are set to 0 (as in pymrio), so these stressors are in no account; lost: "
        f"{amounts or 'amounts that cancel'}. Give those sectors an output, or book the stressors to final demand "
        "(`F_Y`) or to the sectors that really emit them.",
        MRIOWarning,
        stacklevel=3,
    )


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
    if Z.shape[0] == 0:
        raise MRIOError("the table is empty (no region-sectors): give at least one region and one sector.")
    with np.errstate(over="ignore", invalid="ignore"):
        x = Z.sum(axis=1) + Y.sum(axis=1)
    bad = np.nonzero(~np.isfinite(x))[0]
    if len(bad):
        raise MRIOError(
            f"gross output x = Z 1 + Y 1 overflows to inf for {_labels(bad, regions, sectors)} (entries up to "
            f"{max(np.abs(Z).max(), np.abs(Y).max(initial=0.0)):.3g}): rescale the table to larger units (e.g. "
            "million instead of units of currency)."
        )
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
    margin = spectral_margin(len(x))
    if colsum.max(initial=0.0) < 1.0 - margin:  # rho(A) <= max column sum < 1 for A >= 0, beyond rounding
        return
    bound = _rho_upper_bound(A, 1.0 - margin)
    if bound < 1.0 - margin:  # certified productive by a cheap bound: the eigensolve is not needed
        rho_text = f"at most {bound:.10g}"
    else:
        rho, _ = _perron(A)
        if rho >= 1.0 - margin:
            raise MRIOError(
                f"the technical-coefficient matrix A has spectral radius {rho:.16g} >= 1 - {margin:.1e} (one, less "
                "a rounding margin), so I - A is singular or has no non-negative inverse. "
                + _singular_hint(Z, x, regions, sectors, margin)
            )
        rho_text = f"{rho:.10g}"
    over = np.nonzero(colsum >= 1.0 - margin)[0]
    if len(over):
        warnings.warn(
            f"sectors whose inputs reach or exceed their output (no or negative value added): {_labels(over, regions, sectors)}. The table "
            f"is accepted because they buy from sectors that have value added (spectral radius of A {rho_text} < 1), "
            "but a published table rounded to integers can have such sectors by accident: check their value added.",
            MRIOWarning,
            stacklevel=3,
        )


def _collatz_wielandt(M: np.ndarray, iters: int, shift: float = 1e-3):
    """Shifted power iteration on a non-negative `M`: yields, per step, the Collatz-Wielandt bounds
    `(lo, hi)` with `lo <= rho(M) <= hi` (`min_i`/`max_i (M v)_i / v_i`, `v > 0`) and the current `v`.

    The step `v <- M v + shift v` (normalised) keeps `v` positive and converges to the Perron vector even for a
    periodic `M`, which has the same Perron vector as `M + shift I`."""
    n = M.shape[0]
    v = np.full(n, 1.0 / n)
    for _ in range(iters):
        w = M @ v
        ratio = np.divide(w, v, out=np.full(n, np.inf), where=v > 0)
        yield ratio.min(initial=np.inf), ratio.max(initial=0.0), v
        v = w + shift * v
        v /= v.sum()


def _rho_upper_bound(A: np.ndarray, target: float, iters: int = 60) -> float:
    """An upper bound on the spectral radius of a non-negative `A`, cheap (a few matrix-vector products).

    The Collatz-Wielandt bounds of a short power iteration, on `A'` (its first bound is the largest column sum)
    and then on `A` (same spectrum). Stops as soon as the bound is below `target`; otherwise returns the best
    bound found, which may then still be far above `rho` (a reducible or slowly mixing `A`): the caller falls
    back to the eigensolve of `_perron`."""
    best = np.inf
    for M in (A.T, A):
        for _, hi, _ in _collatz_wielandt(M, iters):
            best = min(best, float(hi))
            if best < target:
                return best
    return best


def _perron(A: np.ndarray, iters: int = 2000, tol: float = 1e-13) -> tuple[float, np.ndarray]:
    """Perron root of a non-negative matrix with Collatz-Wielandt bounds (exact eigvals for small n)."""
    n = A.shape[0]
    if n <= 1500:
        w, v = np.linalg.eig(A)
        k = int(np.argmax(w.real))
        return float(w[k].real), np.abs(v[:, k].real)
    hi, v = np.inf, np.full(n, 1.0 / n)
    for lo, hi, v in _collatz_wielandt(A, iters):
        if hi - lo < tol * hi or hi < 1.0 - 1e-9:  # converged, or certified below one
            break
    return float(hi), v


# ---------------------------------------------------------------------------------------------------------
# the validation policy of real tables (validate="raise" | "warn" | "off")

POLICIES = ("raise", "warn", "off")


class TableWarning(UserWarning):
    """A table was accepted with `validate="warn"` although it fails a check (listed in `MRIO.validation`)."""


def validation_policy(validate: bool | str) -> str:
    """`True` -> `"raise"`, `False` -> `"off"`; a policy string is checked."""
    if validate is True:
        return "raise"
    if validate is False:
        return "off"
    if validate not in POLICIES:
        raise ValueError(f"validate must be True, False, 'raise', 'warn' or 'off', got {validate!r}")
    return validate


def _names(idx, regions, sectors, limit: int = 10) -> str:
    S = len(sectors)
    out = ", ".join(f"('{regions[int(i) // S]}','{sectors[int(i) % S]}')" for i in idx[:limit])
    return out + (f" and {len(idx) - limit} more" if len(idx) > limit else "")


def table_issues(Z: np.ndarray, Y: np.ndarray, regions, sectors) -> tuple[str, ...]:
    """Every value problem of a table that `validate="raise"` refuses, as one line each naming the
    country-industries at fault (empty when the table passes): negative intermediate flows, negative gross
    output $x = Z 1 + Y 1$, zero output with non-zero inputs; when none of these, whatever else
    `validate="raise"` refuses (e.g. a spectral radius of $A$ at or above one). Non-finite values are not in
    the list: they are always refused."""
    issues = []
    x = Z.sum(axis=1) + Y.sum(axis=1)
    negz = np.argwhere(Z < 0)
    if len(negz):
        issues.append(f"{len(negz)} negative intermediate flows, in the rows of "
                      f"{_names(np.unique(negz[:, 0]), regions, sectors)}")
    bad = np.nonzero(x < 0)[0]
    if len(bad):
        vals = ", ".join(f"{x[i]:.6g}" for i in bad[:10])
        issues.append(f"gross output x = Z 1 + Y 1 is negative for {_names(bad, regions, sectors)} (x = {vals})")
    zero = np.nonzero((x == 0) & (np.abs(Z).sum(axis=0) > 0))[0]
    if len(zero):
        issues.append(f"zero output but non-zero inputs for {_names(zero, regions, sectors)}")
    if not issues:  # the remaining checks of validate="raise" (spectral radius of A, ...), with their message
        try:
            check_table(Z, Y, regions, sectors)
        except MRIOError as exc:
            issues.append(str(exc))
    return tuple(issues)


def warn_issues(issues: Sequence[str], name: str) -> None:
    if issues:
        warnings.warn(f"table {name!r} accepted with validate='warn' despite: " + "; ".join(issues) +
                      ". The offending country-industries are listed in `MRIO.validation` and in the attributes "
                      "of its accounts; `diffmrio.tables.clean_table` removes rounding artefacts.", TableWarning, stacklevel=3)
