"""Leontief solves that know when they are wrong (issue 18): rounding cannot slip a singular table through the
spectral check, every solve reports a condition estimate, ill-conditioned tables are warned about or refused
with the sectors at fault, and vmapped draws carry a per-draw result flag."""

import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from _systems import make_mrio, random_system

import diffmrio
from diffmrio import RESULTS, MRIOError, MRIOWarning, host_leontief_solves, leontief_solves_checked

REG, SEC = ["a", "b"], ["s0", "s1", "s2"]


def _mrio(Z, Y, validate=True):
    n = Z.shape[0]
    return diffmrio.MRIO.from_arrays(Z, Y, np.ones((1, n)), regions=REG, sectors=SEC, categories=["c"],
                                     stressors=["co2"], validate=validate)


def _near_singular(gap, seed=1):
    """A 2 x 3 table with A = (1 - gap) P, P column-stochastic (rho(P) = 1), so rho(A) = 1 - gap, and
    positive final demand (x is the Perron vector of P)."""
    rng = np.random.default_rng(seed)
    P = rng.random((6, 6))
    P /= P.sum(axis=0)
    w, v = np.linalg.eig(P)
    x = np.abs(v[:, np.argmax(w.real)].real)
    x *= 100.0 / x.sum()
    A = (1.0 - gap) * P
    Z = A * x[None, :]
    y = x - Z.sum(axis=1)
    assert (y > 0).all()
    return Z, np.stack([y / 2, y / 2], axis=1)


def _i_minus_a(m):
    x = np.asarray(m.Z).sum(1) + np.asarray(m.Y).sum(1)
    return np.eye(m.n) - np.asarray(m.Z) / x[None, :]


# ------------------------------------------------------------------------------------------- the spectral check


def test_closed_economy_refused_although_column_sums_round_below_one():
    Z = np.ones((6, 6))
    assert (Z / 6.0).sum(axis=0).max() < 1.0  # the rounding that used to skip the spectral test
    with pytest.raises(MRIOError, match="closed set") as exc:
        _mrio(Z, np.zeros((6, 2)))
    for r in REG:
        for s in SEC:
            assert repr((r, s)) in str(exc.value)


@pytest.mark.parametrize("backend", ["jax", "host"])
def test_closed_economy_refused_by_accounts_when_validation_is_skipped(backend):
    m = _mrio(np.ones((6, 6)), np.zeros((6, 2)), validate=False)
    with pytest.raises(MRIOError, match=r"singular or too ill-conditioned.*closed set"):
        diffmrio.accounts(m, backend=backend)


def test_closed_subset_named_among_productive_sectors():
    """Sectors ('a','s1') and ('b','s1') sell only to each other and have no value added: exactly those two."""
    rng = np.random.default_rng(0)
    Z = rng.random((6, 6))
    closed = [1, 4]
    Z[:, closed] = 0.0
    Z[np.ix_(closed, range(6))] = 0.0
    Z[1, 4] = Z[4, 1] = 5.0  # each buys its whole output from the other and sells only to it
    Y = np.full((6, 2), 3.0)
    Y[closed] = 0.0
    with pytest.raises(MRIOError) as exc:
        _mrio(Z, Y)
    msg = str(exc.value)
    assert "closed set without value added: ('a', 's1'), ('b', 's1')." in msg


def test_one_zero_value_added_sector_among_productive_ones_is_warned_and_solved_exactly():
    rng = np.random.default_rng(3)
    x = np.full(6, 100.0)
    A = rng.random((6, 6)) * 0.1
    A[:, 2] /= A[:, 2].sum()  # column 2 (('a', 's2')) buys inputs worth exactly its output: no value added
    Z = A * x[None, :]
    y = x - Z.sum(axis=1)
    assert (y > 0).all()
    with pytest.warns(MRIOWarning, match=r"no or negative value added\): \('a', 's2'\)\."):
        m = _mrio(Z, np.stack([y / 2, y / 2], axis=1))
    with warnings.catch_warnings():
        warnings.simplefilter("error", MRIOWarning)  # well conditioned: no warning from the solve
        acc = diffmrio.accounts(m, backend="jax")
    IA = _i_minus_a(m)
    M_ref = np.linalg.solve(IA.T, (np.ones(6) / x)[:, None]).T
    np.testing.assert_allclose(acc["M"].values.reshape(1, 6), M_ref, rtol=1e-12)
    np.testing.assert_allclose(acc.attrs["cond_1_estimate"], np.linalg.cond(IA, 1), rtol=1e-10)


@pytest.mark.parametrize("backend", ["jax", "host"])
def test_rho_one_minus_1e_10_warns_with_a_condition_estimate_near_numpy(backend):
    m = _mrio(*_near_singular(1e-10))  # accepted: rho(A) is below 1 by more than the rounding margin
    with pytest.warns(MRIOWarning, match="ill-conditioned") as rec:
        acc = diffmrio.accounts(m, backend=backend)
    est = acc.attrs["cond_1_estimate"]
    ref = np.linalg.cond(_i_minus_a(m))
    assert ref / 10 < est < ref * 10
    assert f"{est:.3g}" in str(rec[0].message)
    assert acc.attrs["solve_backward_error"] < 1e-14


@pytest.mark.parametrize("backend", ["jax", "host"])
def test_rho_one_minus_1e_13_refused_by_accounts(backend):
    m = _mrio(*_near_singular(1e-13), validate=False)
    with pytest.raises(MRIOError, match=r"cond_1\(I - A\) = "):
        diffmrio.accounts(m, backend=backend)


def test_well_conditioned_accounts_record_estimates_without_warning():
    m = make_mrio()
    with warnings.catch_warnings():
        warnings.simplefilter("error", MRIOWarning)
        for backend in ("jax", "host"):
            acc = diffmrio.accounts(m, backend=backend)
            np.testing.assert_allclose(acc.attrs["cond_1_estimate"], np.linalg.cond(_i_minus_a(m), 1), rtol=1e-3)
            assert 0 <= acc.attrs["solve_backward_error"] < 1e-14


# --------------------------------------------------------------------------------------------- the host report


@pytest.mark.parametrize("precision", ["mixed", "double"])
def test_host_report_condition_estimate_and_backward_error(precision):
    Z, Y, F, _ = random_system(4, 5, 2, 2, seed=2)
    x = Z.sum(1) + Y.sum(1)
    B = np.random.default_rng(0).random((20, 3))
    X, W, rep = host_leontief_solves(Z, x, B, F, precision=precision)
    IA = np.eye(20) - Z / x[None, :]
    cond = np.linalg.cond(IA, 1)
    assert cond / 3 <= rep.cond <= cond * 1.0001  # gecon estimates from below, usually exactly
    R = B - IA @ X
    be = np.abs(R).max(0) / (np.abs(IA).sum(1).max() * np.abs(X).max(0) + np.abs(B).max(0))
    np.testing.assert_allclose(rep.residual, be.max(), rtol=0.1)  # rounding-level numbers, two computations
    assert rep.residual < (1e-15 if precision == "double" else 1e-12)


def test_host_zero_pivot_reports_infinite_condition():
    Z = np.ones((6, 6))
    x = Z.sum(1)
    _, _, rep = host_leontief_solves(Z, x, np.ones((6, 1)), np.ones((1, 6)), precision="double")
    assert rep.cond > 1e15


# ---------------------------------------------------------------------------------------- per-draw JAX flags


def test_vmapped_draw_that_becomes_singular_is_flagged_for_that_draw_only():
    Z, Y = _near_singular(0.2, seed=4)
    x = Z.sum(1) + Y.sum(1)
    A = jnp.asarray(Z / x[None, :])  # rho(A) = 0.8
    B = jnp.asarray(Y)
    C = jnp.ones((2, 6))
    scale = jnp.array([1.0, 1.1, 1.25, 0.9, 1.4])  # 1.25 * 0.8 = 1: singular; 1.4: rho > 1, not productive

    def draw(s):
        return leontief_solves_checked(A * s, B, C)

    X, W, info = jax.jit(jax.vmap(draw))(scale)
    ok = np.asarray(info.result == RESULTS.successful)
    assert ok.tolist() == [True, True, False, True, False]
    assert np.asarray((info.result == RESULTS.singular) | (info.result == RESULTS.ill_conditioned))[2]
    assert np.asarray(info.result == RESULTS.not_productive).tolist() == [False] * 4 + [True]
    for i in (0, 1, 3):  # good draws are exact, with the exact 1-norm condition number
        IA = np.eye(6) - np.asarray(A) * float(scale[i])
        np.testing.assert_allclose(X[i], np.linalg.solve(IA, np.asarray(B)), rtol=1e-12)
        np.testing.assert_allclose(info.cond[i], np.linalg.cond(IA, 1), rtol=1e-10)
    msg = RESULTS[jax.tree.map(lambda v: v[2], info.result)]  # the message of draw 2
    assert "singular" in msg or "ill-conditioned" in msg


def test_checked_solves_have_the_gradients_of_the_plain_solves():
    Z, Y = _near_singular(0.3, seed=5)
    x = Z.sum(1) + Y.sum(1)
    A = jnp.asarray(Z / x[None, :])
    B = jnp.asarray(Y)
    C = jnp.ones((1, 6))

    def f(checked):
        def loss(A):
            X, W = (leontief_solves_checked(A, B, C)[:2] if checked else diffmrio.leontief_solves(A, B, C))
            return (X**2).sum() + (W**3).sum()
        return loss

    np.testing.assert_allclose(jax.grad(f(True))(A), jax.grad(f(False))(A), rtol=1e-13)
    # and against a finite difference in one direction
    dA = jnp.asarray(np.random.default_rng(0).random((6, 6))) * 1e-3
    h = 1e-6
    fd = (f(True)(A + h * dA) - f(True)(A - h * dA)) / (2 * h)
    np.testing.assert_allclose((jax.grad(f(True))(A) * dA).sum(), fd, rtol=1e-6)


def test_account_arrays_return_info_under_vmap():
    m = make_mrio()
    Z, Y, F, F_Y = (jnp.asarray(a) for a in (m.Z, m.Y, m.F, m.F_Y))

    def draw(s):  # scale the intermediate flows so that every column of A sums to s times its value
        x = Z.sum(1) + Y.sum(1)
        A = Z / x[None, :]
        A = A / A.sum(0).max() * s  # rho(A) <= s with equality only for the closed case
        return diffmrio.account_arrays(A * x[None, :], Y, F, F_Y, m.n_regions, return_info=True)[1]

    info = jax.vmap(draw)(jnp.array([0.5, 0.9]))
    assert np.asarray(info.result == RESULTS.successful).all()
    assert info.cond.shape == (2,) and bool(info.cond[1] > info.cond[0])
