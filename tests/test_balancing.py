"""RAS and GRAS: targets met, biproportional (minimum-information) form, the published GRAS example, and an
independent solution of the GRAS objective with scipy."""

import warnings

import numpy as np
import pytest
import scipy.optimize as so

from diffmrio.tables._balancing import BalanceReport, gras, ras


def _problem(seed, m, n, neg_frac=0.0, zero_frac=0.0):
    """A prior and targets reachable from it (targets of a perturbed matrix with the same sign pattern)."""
    rng = np.random.default_rng(seed)
    X0 = rng.uniform(0.1, 10.0, (m, n))
    X0[rng.random((m, n)) < zero_frac] = 0.0
    X0[rng.random((m, n)) < neg_frac] *= -0.3
    X_true = X0 * np.exp(rng.normal(0.0, 0.3, (m, n)))
    return X0, X_true.sum(1), X_true.sum(0)


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("shape", [(3, 4), (8, 8), (12, 5)])
def test_ras_meets_targets_and_is_biproportional(seed, shape):
    X0, u, v = _problem(seed, *shape, zero_frac=0.15)
    X, rep = ras(X0, u, v, tol=1e-10)
    assert isinstance(rep, BalanceReport) and rep.converged
    np.testing.assert_allclose(X.sum(1), u, rtol=1e-9)
    np.testing.assert_allclose(X.sum(0), v, rtol=1e-9)
    assert rep.max_row_error <= 1e-10 and rep.max_col_error <= 1e-10
    assert rep.history[-1] == max(rep.max_row_error, rep.max_col_error)
    # zeros stay zero
    assert np.all(X[X0 == 0] == 0)
    # biproportional form X = diag(r) X0 diag(s), checked from X alone: log(X / X0) on the support is
    # additive a_i + b_j, so a least-squares fit of a_i + b_j leaves no residual (log-linear / rank check).
    i, j = np.nonzero(X0)
    L = np.log(X[i, j] / X0[i, j])
    design = np.zeros((len(i), shape[0] + shape[1]))
    design[np.arange(len(i)), i] = 1.0
    design[np.arange(len(i)), shape[0] + j] = 1.0
    coef, *_ = np.linalg.lstsq(design, L, rcond=None)
    assert np.max(np.abs(design @ coef - L)) < 1e-8
    # and the reported multipliers reproduce X
    np.testing.assert_allclose(
        rep.row_multipliers[:, None] * X0 * rep.col_multipliers[None, :], X, rtol=1e-12
    )


def test_ras_is_minimum_information_solution():
    """RAS solves min sum x ln(x/x0) s.t. margins; compare with a direct scipy solution of that programme."""
    X0, u, v = _problem(7, 3, 4)
    X, _ = ras(X0, u, v, tol=1e-12)
    m, n = X0.shape

    def obj(x):
        x = np.maximum(x, 1e-300)
        return np.sum(x * np.log(x / X0.ravel()) - x)

    def grad(x):
        return np.log(np.maximum(x, 1e-300) / X0.ravel())

    # the last column constraint is implied by the others (equal grand totals); SLSQP needs them independent
    A = np.vstack([np.kron(np.eye(m), np.ones(n)), np.kron(np.ones(m), np.eye(n))])[:-1]
    b = np.concatenate([u, v])[:-1]
    cons = {"type": "eq", "fun": lambda x: A @ x - b, "jac": lambda x: A}
    res = so.minimize(
        obj,
        X0.ravel(),
        jac=grad,
        constraints=[cons],
        bounds=[(1e-9, None)] * (m * n),
        method="SLSQP",
        options={"ftol": 1e-14, "maxiter": 1000},
    )
    assert res.success, res.message
    np.testing.assert_allclose(X, res.x.reshape(m, n), rtol=1e-5, atol=1e-6)


def test_gras_published_example():
    """Junius & Oosterhaven (2003) example; solution as reported in Temurshoev et al. (2013) and reproduced
    by the test suite of the `riot` R package (O. Reiter), to the 9 digits given there."""
    A = np.array([[7.0, 3, 5, -3], [2, 9, 8, 0], [-2, 0, 2, 0]])
    u = np.array([15.0, 26, -1])
    v = np.array([9.0, 16, 17, -2])
    expected = np.array(
        [
            [8.424340881, 3.375237362, 5.200422021, -2.000000263],
            [3.000997078, 12.624763744, 10.374239178, 0.0],
            [-2.425339135, 0.0, 1.425339135, 0.0],
        ]
    )
    X, rep = gras(A, u, v, tol=1e-12)
    assert rep.converged
    # the published figures carry the reference implementation's own convergence error (~3e-7)
    np.testing.assert_allclose(X, expected, rtol=0, atol=1e-6)
    np.testing.assert_allclose(X.sum(1), u, rtol=1e-11)
    np.testing.assert_allclose(X.sum(0), v, rtol=1e-11)


@pytest.mark.parametrize("seed", [3, 4, 5])
def test_gras_matches_scipy_solution_of_lenzen_objective(seed):
    """GRAS minimises sum |a_ij| z_ij ln(z_ij / e) (Lenzen et al. 2007) s.t. margins of x = z a."""
    X0, u, v = _problem(seed, 4, 5, neg_frac=0.3)
    X, rep = gras(X0, u, v, tol=1e-12)
    assert rep.converged
    i, j = np.nonzero(X0)
    a = X0[i, j]
    m, n = X0.shape
    A = np.zeros((m + n, len(a)))
    A[i, np.arange(len(a))] = a
    A[m + j, np.arange(len(a))] = a
    b = np.concatenate([u, v])
    A, b = A[:-1], b[:-1]  # drop the redundant constraint (equal grand totals)

    def obj(z):
        return np.sum(np.abs(a) * z * (np.log(z) - 1.0))

    def grad(z):
        return np.abs(a) * np.log(z)

    res = so.minimize(
        obj,
        np.ones(len(a)),
        jac=grad,
        method="SLSQP",
        bounds=[(1e-8, None)] * len(a),
        constraints=[{"type": "eq", "fun": lambda z: A @ z - b, "jac": lambda z: A}],
        options={"ftol": 1e-13, "maxiter": 5000},
    )
    assert res.success, res.message
    X_ref = np.zeros_like(X0)
    X_ref[i, j] = res.x * a
    np.testing.assert_allclose(X, X_ref, atol=2e-5 * np.abs(X0).max())
    # signs preserved, zeros kept
    assert np.all(np.sign(X) == np.sign(X0))


@pytest.mark.parametrize("seed", [0, 1])
def test_gras_reduces_to_ras_without_negatives(seed):
    X0, u, v = _problem(seed, 6, 7, zero_frac=0.2)
    X1, r1 = ras(X0, u, v, tol=1e-11)
    X2, r2 = gras(X0, u, v, tol=1e-11)
    np.testing.assert_allclose(X2, X1, rtol=1e-12, atol=1e-12)
    assert r1.iterations == r2.iterations


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_gras_meets_targets_with_negatives_and_zero_target(seed):
    X0, u, v = _problem(seed, 7, 6, neg_frac=0.25, zero_frac=0.1)
    # a mixed-sign row may be balanced to zero
    row = np.nonzero((X0 > 0).any(1) & (X0 < 0).any(1))[0][0]
    shift = u[row]
    u = u.copy()
    u[row] = 0.0
    v = v - shift * np.abs(X0[row]) / np.abs(X0[row]).sum()  # keep the grand totals equal
    X, rep = gras(X0, u, v, tol=1e-9, max_iter=50_000)
    assert rep.converged
    np.testing.assert_allclose(X.sum(1), u, atol=1e-8 * np.abs(u).max())
    np.testing.assert_allclose(X.sum(0), v, rtol=1e-8)
    assert np.all(X[X0 == 0] == 0)
    assert np.all(np.sign(X[X0 != 0]) == np.sign(X0[X0 != 0]))


def test_ras_zero_target_rows_become_zero():
    X0, u, v = _problem(11, 5, 5)
    v = v - X0[2] / X0[2].sum() * u[2]
    u = u.copy()
    u[2] = 0.0
    X, rep = ras(X0, u, v)
    assert rep.converged
    assert np.all(X[2] == 0)
    np.testing.assert_allclose(X.sum(0), v, rtol=1e-8)


def test_grand_totals_must_match():
    X0, u, v = _problem(0, 3, 3)
    with pytest.raises(ValueError, match="grand totals equal"):
        ras(X0, u, v * 1.01)
    with pytest.raises(ValueError, match="grand totals equal"):
        gras(X0, u * 1.01, v)


def test_zero_row_with_positive_target_raises():
    X0, u, v = _problem(0, 4, 4)
    X0[1] = 0.0
    with pytest.raises(ValueError, match=r"Rows 1 .*no entry that can be scaled"):
        ras(X0, u, v)
    with pytest.raises(ValueError, match=r"Rows 1 "):
        gras(X0, u, v)
    X0, u, v = _problem(0, 4, 4)
    X0[:, 2] = 0.0
    with pytest.raises(ValueError, match=r"Columns 2 "):
        ras(X0, u, v)


def test_row_reachable_only_through_zero_target_column_raises():
    X0 = np.array([[1.0, 0.0], [1.0, 1.0]])
    u = np.array([1.0, 1.0])
    v = np.array([0.0, 2.0])
    with pytest.raises(ValueError, match="Rows 0"):
        ras(X0, u, v)


def test_sign_infeasible_targets_raise_in_gras():
    X0 = np.array([[1.0, 2.0], [-1.0, 3.0]])
    with pytest.raises(ValueError, match="only non-negative entries but a negative target"):
        gras(X0, np.array([-1.0, 3.0]), np.array([0.0, 2.0]))
    X0 = np.array([[-1.0, -2.0], [1.0, 3.0]])
    with pytest.raises(ValueError, match="only non-positive entries but a positive target"):
        gras(X0, np.array([1.0, 3.0]), np.array([1.0, 3.0]))


def test_ras_rejects_negative_prior_and_targets():
    with pytest.raises(ValueError, match="Use `gras`"):
        ras(np.array([[1.0, -1.0], [1.0, 1.0]]), [1.0, 1.0], [1.0, 1.0])
    with pytest.raises(ValueError, match="must be non-negative"):
        ras(np.ones((2, 2)), [3.0, -1.0], [1.0, 1.0])
    with pytest.raises(ValueError, match="one target per row"):
        ras(np.ones((2, 2)), [1.0, 1.0, 0.0], [1.0, 1.0])


def test_iteration_cap_reports_non_convergence():
    X0, u, v = _problem(2, 6, 6)
    with pytest.warns(RuntimeWarning, match="stopped after 2 sweeps"):
        _, rep = ras(X0, u, v, max_iter=2)
    assert not rep.converged and rep.iterations == 2 and len(rep.history) == 2
    assert rep.max_row_error > 1e-8 or rep.max_col_error > 1e-8
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _, rep = gras(X0, u, v, max_iter=2, warn=False)
    assert not rep.converged


def test_history_decreases_to_tolerance():
    X0, u, v = _problem(9, 10, 10, zero_frac=0.3)
    _, rep = ras(X0, u, v, tol=1e-12)
    h = np.array(rep.history)
    assert rep.converged and h[-1] <= 1e-12 and h[0] > h[-1]
