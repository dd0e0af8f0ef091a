"""Host Leontief solves: mixed-precision refinement against float64 references, its stopping rule and its
fallback to a float64 LU."""

import numpy as np
import pytest
from _systems import make_mrio, random_system

import diffmrio
from diffmrio import host_leontief_solves


def _reference(Z, x, B, C):
    d = np.where(x != 0, 1.0 / np.where(x != 0, x, 1.0), 0.0)
    IA = np.eye(len(x)) - Z * d[None, :]
    return np.linalg.solve(IA, B), np.linalg.solve(IA.T, C.T).T


def _system(R=6, N=9, seed=0):
    Z, Y, F, _ = random_system(R, N, 3, 2, seed=seed)
    x = Z.sum(1) + Y.sum(1)
    rng = np.random.default_rng(seed)
    return Z, x, rng.random((R * N, 5)) * x.mean(), F / x[None, :]


@pytest.mark.parametrize("precision", ["mixed", "double"])
def test_solves_match_float64_reference_elementwise(precision):
    Z, x, B, C = _system()
    X, W, rep = host_leontief_solves(Z, x, B, C, precision=precision)
    Xr, Wr = _reference(Z, x, B, C)
    np.testing.assert_allclose(X, Xr, rtol=1e-11)
    np.testing.assert_allclose(W, Wr, rtol=1e-11)
    assert rep.precision == precision and rep.fallback is None
    if precision == "mixed":
        assert rep.steps >= 1 and 0 < rep.est_rel_error <= 1e-12


def test_tighter_rtol_takes_more_steps_and_gets_closer():
    Z, x, B, C = _system(seed=1)
    Xr, _ = _reference(Z, x, B, C)
    X1, _, loose = host_leontief_solves(Z, x, B, C, rtol=1e-6)
    X2, _, tight = host_leontief_solves(Z, x, B, C, rtol=1e-18)
    assert loose.steps == 1 and tight.steps > loose.steps
    err = [np.max(np.abs(X - Xr) / Xr) for X in (X1, X2)]
    assert err[1] < err[0]
    assert err[0] < 1e-9  # one step already squares the float32 error
    assert loose.est_rel_error > tight.est_rel_error


def test_zero_output_sector_has_zero_column():
    Z, x, B, C = _system(seed=2)
    Z[:, 4] = 0.0
    Z[4, :] = 0.0
    x = x.copy()
    x[4] = 0.0
    for precision in ("mixed", "double"):
        X, W, _ = host_leontief_solves(Z, x, B, C, precision=precision)
        Xr, Wr = _reference(Z, x, B, C)
        np.testing.assert_allclose(X, Xr, rtol=1e-11)
        np.testing.assert_allclose(W, Wr, rtol=1e-11, atol=1e-14)


def test_ill_conditioned_table_falls_back_to_float64():
    """rho(A) = 1 - 1e-9: cond(I - A) ~ 1e9 is beyond float32, so refinement cannot converge and the float64
    LU is used; its answer still matches the reference to what the conditioning allows."""
    rng = np.random.default_rng(3)
    n = 40
    A = rng.random((n, n))
    A *= (1 - 1e-9) / A.sum(axis=0)[None, :]  # column sums 1 - 1e-9: rho(A) = 1 - 1e-9
    x = rng.uniform(1.0, 2.0, n)
    Z = A * x[None, :]
    B = rng.random((n, 2))
    C = rng.random((3, n))
    X, W, rep = host_leontief_solves(Z, x, B, C)
    assert rep.precision == "double" and rep.fallback
    assert "fell back" in str(rep)
    Xr, Wr = _reference(Z, x, B, C)
    np.testing.assert_allclose(X, Xr, rtol=1e-4)
    np.testing.assert_allclose(W, Wr, rtol=1e-4)


def test_bad_precision_is_refused():
    Z, x, B, C = _system()
    with pytest.raises(ValueError, match="precision must be"):
        host_leontief_solves(Z, x, B, C, precision="single")
    with pytest.raises(ValueError, match=r"B \(n, k\)"):
        host_leontief_solves(Z, x, B.T, C)  # right-hand sides as rows
    with pytest.raises(ValueError, match="got Z"):
        host_leontief_solves(Z, x[:-1], B, C)
    with pytest.raises(ValueError, match="precision must be"):
        diffmrio.accounts(make_mrio(), precision="single")


def test_auto_backend_for_large_tables_matches_jax_kernel(monkeypatch):
    """Above the size threshold `accounts` takes the host path with mixed precision and a lazy `A`; every
    account equals the float64 JAX kernel's, and `A` read from the lazy blocks equals Z diag(x)^-1."""
    import dask.array as da

    import diffmrio._accounts as acc_mod

    m = make_mrio(R=5, N=7, K=2, p=3, seed=5)
    monkeypatch.setattr(acc_mod, "_HOST_MIN_N", 10)
    monkeypatch.setattr(acc_mod.jax, "default_backend", lambda: "cpu")
    host = diffmrio.accounts(m)
    ref = diffmrio.accounts(m, backend="jax")
    assert host.attrs["solver"].startswith("host: float32 LU") and ref.attrs["solver"].startswith("jax")
    assert isinstance(host.A.data, da.Array)
    x = m.Z.sum(1) + m.Y.sum(1)
    np.testing.assert_allclose(host.A.values.reshape(m.n, m.n), m.Z / x[None, :], rtol=1e-15)
    for key in ("M", "D_cba", "D_pba", "D_imp", "D_exp", "D_cba_reg", "D_imp_reg", "burden", "final_producer"):
        np.testing.assert_allclose(host[key], ref[key], rtol=1e-10, atol=1e-13 * float(abs(ref[key]).max()))


def test_slow_refinement_falls_back_early_unless_allowed():
    """rho(A) = 1 - 1e-5: float32 solves are good to ~4e-4 here, so reaching 1e-12 takes three steps. With the
    default `max_steps=2` the float64 LU is used straight after the first step (it is cheaper); with more steps
    allowed the refinement converges to the same answer."""
    rng = np.random.default_rng(5)
    A = rng.random((60, 60))
    A *= (1 - 1e-5) / A.sum(axis=0)[None, :]
    x = rng.uniform(1.0, 2.0, 60)
    Z, B, C = A * x[None, :], rng.random((60, 2)), rng.random((3, 60))
    X, W, rep = host_leontief_solves(Z, x, B, C)
    assert rep.precision == "double" and "would need" in rep.fallback
    X4, W4, rep4 = host_leontief_solves(Z, x, B, C, max_steps=10)
    assert rep4.precision == "mixed" and rep4.steps > 2
    Xr, Wr = _reference(Z, x, B, C)
    for got in (X, X4):
        np.testing.assert_allclose(got, Xr, rtol=1e-9)
    for got in (W, W4):
        np.testing.assert_allclose(got, Wr, rtol=1e-9)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_one_pass_i_minus_a_and_norms_match_numpy(dtype):
    """`I - A` and its 1- and infinity-norms from the one pass over Z (row blocks that do not divide n, a
    zero-output column, negative flows) equal numpy's from an explicit float64 I - A."""
    from diffmrio._host_solve import _CACHE_ROWS, _i_minus_a, _i_minus_a_norms, _inverse_output

    n = 3 * _CACHE_ROWS + 5
    rng = np.random.default_rng(3)
    Z = rng.random((n, n)) * 0.01
    Z[4, 7] = -0.5
    x = Z.sum(1) + rng.random(n)
    x[11] = 0.0
    Z[:, 11] = 0.0
    d = _inverse_output(x)
    IA = np.eye(n) - Z * d[None, :]
    M, (n1, ninf) = _i_minus_a_norms(Z, d, dtype)
    assert M.dtype == dtype and M.flags.c_contiguous
    np.testing.assert_array_equal(M, _i_minus_a(Z, d, dtype))  # the same matrix as the separate row-block build
    np.testing.assert_allclose(M, IA, rtol=0, atol=1e-7 if dtype == np.float32 else 1e-16)
    np.testing.assert_allclose(n1, np.linalg.norm(IA, 1), rtol=1e-14)
    np.testing.assert_allclose(ninf, np.linalg.norm(IA, np.inf), rtol=1e-14)
