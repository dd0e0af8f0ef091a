"""Indices: TCI/THI, Gini and CV against independent numpy computations (Lorenz-curve area, person-level
mean absolute difference), APE, and the BTH supply-chain test against explicit loops; gradients vs central
finite differences in float64."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

from diffmrio.scenarios._indices import (
    CHINA_POLLUTANT_EQUIVALENT_KG,
    coefficient_of_variation,
    disparity_index,
    disparity_index_from_matrix,
    embodied_trade,
    gini,
    lorenz_curve,
    pollutant_equivalent_coefficients,
    pollutant_equivalents,
    supply_chain_efficiency,
)


def _fd_grad(f, x, h=None):
    f = jax.jit(f)
    x = np.asarray(x, dtype=np.float64)
    g = np.zeros_like(x)
    for k in np.ndindex(x.shape):
        step = (h or np.sqrt(np.finfo(float).eps)) * max(1.0, abs(x[k]))
        xp, xm = x.copy(), x.copy()
        xp[k] += step
        xm[k] -= step
        g[k] = (float(f(xp)) - float(f(xm))) / (2 * step)
    return g


# ----------------------------------------------------------------------------------------------------------
# TCI / THI


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_tci_against_loops(seed):
    rng = np.random.default_rng(seed)
    R = 6
    E = rng.lognormal(size=(R, R))
    eei, eee = (np.asarray(a) for a in embodied_trade(E))
    for r in range(R):
        assert eei[r] == pytest.approx(sum(E[s, r] for s in range(R) if s != r), rel=1e-13)
        assert eee[r] == pytest.approx(sum(E[r, s] for s in range(R) if s != r), rel=1e-13)
    tci = np.asarray(disparity_index_from_matrix(E))
    np.testing.assert_allclose(tci, (eei - eee) / (eei + eee), rtol=1e-13)
    assert np.all(np.abs(tci) <= 1)
    # reversing every flow swaps imports and exports
    np.testing.assert_allclose(np.asarray(disparity_index_from_matrix(E.T)), -tci, rtol=1e-13)
    # the diagonal (local consumption) does not matter
    np.testing.assert_allclose(
        np.asarray(disparity_index_from_matrix(E + np.diag(rng.random(R)))), tci, rtol=1e-12
    )


def test_tci_extremes_fill_and_gradient():
    E = np.array([[1.0, 2.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 3.0]])
    tci = np.asarray(disparity_index_from_matrix(E))
    # region 0 only exports burden (net receiver: -1), region 1 only imports (net outsourcer: +1)
    assert tci[0] == -1.0 and tci[1] == 1.0 and np.isnan(tci[2])
    assert float(disparity_index_from_matrix(E, fill_value=0.0)[2]) == 0.0
    g = jax.grad(lambda e: jnp.sum(disparity_index_from_matrix(e, fill_value=0.0) * jnp.arange(3.0)))(
        jnp.asarray(E)
    )
    assert np.all(np.isfinite(np.asarray(g)))
    rng = np.random.default_rng(3)
    E = rng.lognormal(size=(4, 4))
    w = rng.normal(size=4)
    f = lambda e: jnp.sum(w * disparity_index_from_matrix(jnp.asarray(e)))  # noqa: E731
    np.testing.assert_allclose(np.asarray(jax.grad(f)(jnp.asarray(E))), _fd_grad(f, E), rtol=1e-6, atol=1e-9)
    with pytest.raises(ValueError, match="one value per region"):
        disparity_index(np.ones(3), np.ones(4))


# ----------------------------------------------------------------------------------------------------------
# Gini / CV


def _lorenz_gini(q, p):
    o = np.argsort(q / p)
    X = np.concatenate([[0.0], np.cumsum(p[o]) / p.sum()])
    L = np.concatenate([[0.0], np.cumsum(q[o]) / q.sum()])
    return 1.0 - 2.0 * np.trapezoid(L, X)


def _person_gini(q, p_int):
    """Gini over people (each person of region i holds q_i/p_i): sum_ij |y_i - y_j| / (2 n^2 mean)."""
    y = np.repeat(q / p_int, p_int)
    return np.abs(y[:, None] - y[None, :]).sum() / (2 * y.size**2 * y.mean())


@pytest.mark.parametrize("seed", range(5))
def test_gini_against_lorenz_area_and_people(seed):
    rng = np.random.default_rng(seed)
    R = 8
    p = rng.integers(1, 40, R).astype(float)
    q = rng.lognormal(size=R) * p
    g = float(gini(q, p))
    assert g == pytest.approx(_lorenz_gini(q, p), abs=1e-13)
    assert g == pytest.approx(_person_gini(q, p.astype(int)), abs=1e-12)
    # the formula as written is only right for an ascending sort: descending gives -Gini
    o = np.argsort(q / p)[::-1]
    P, Y = p[o] / p.sum(), q[o] / q.sum()
    assert np.sum(P * Y) + 2 * np.sum(P * (1 - np.cumsum(Y))) - 1 == pytest.approx(-g, abs=1e-13)


@pytest.mark.parametrize("seed", range(3))
def test_lorenz_curve_against_numpy_and_gini(seed):
    """The points against an explicit loop over regions sorted by per-capita value, and 1 - 2 x their trapezoid
    area is the Gini; labelled input is taken by its values."""
    import xarray as xr

    rng = np.random.default_rng(seed)
    R = 7
    p = rng.uniform(1, 40, R)
    q = rng.lognormal(size=R) * p
    P, Q = (np.asarray(a) for a in lorenz_curve(xr.DataArray(q, dims="region"), xr.DataArray(p, dims="region")))
    order = sorted(range(R), key=lambda i: q[i] / p[i])
    cp, cq, want_p, want_q = 0.0, 0.0, [0.0], [0.0]
    for i in order:
        cp, cq = cp + p[i], cq + q[i]
        want_p.append(cp / p.sum())
        want_q.append(cq / q.sum())
    np.testing.assert_allclose(P, want_p, rtol=1e-13, atol=1e-15)
    np.testing.assert_allclose(Q, want_q, rtol=1e-13, atol=1e-15)
    assert 1.0 - 2.0 * np.trapezoid(Q, P) == pytest.approx(float(gini(q, p)), abs=1e-13)
    Pu, Qu = (np.asarray(a) for a in lorenz_curve(q))  # equal weights: the values sorted
    np.testing.assert_allclose(Pu, np.arange(R + 1) / R, rtol=1e-14)
    np.testing.assert_allclose(Qu, np.concatenate([[0], np.cumsum(np.sort(q))]) / q.sum(), rtol=1e-13)
    with pytest.raises(ValueError, match="`population` has shape"):
        lorenz_curve(q, p[:-1])


def test_gini_limits_and_unweighted():
    assert float(gini(np.array([2.0, 4.0, 6.0]), np.array([1.0, 2.0, 3.0]))) == pytest.approx(0.0, abs=1e-15)
    # all in one of R equal-population regions: Gini = 1 - 1/R
    assert float(gini(np.array([0.0, 0.0, 0.0, 5.0]))) == pytest.approx(0.75, abs=1e-15)
    v = np.array([1.0, 3.0, 2.0, 7.0])
    assert float(gini(v)) == pytest.approx(_person_gini(v, np.ones(4, int)), abs=1e-14)


def test_gini_gradient():
    rng = np.random.default_rng(8)
    q = rng.lognormal(size=6)
    p = rng.uniform(1, 5, 6)
    check_grads(lambda q, p: gini(q, p), (jnp.asarray(q), jnp.asarray(p)), order=1, modes=["rev"], eps=1e-6)
    g = np.asarray(jax.grad(gini)(jnp.asarray(q), jnp.asarray(p)))
    np.testing.assert_allclose(g, _fd_grad(lambda x: gini(x, p), q), rtol=1e-6, atol=1e-10)


@pytest.mark.parametrize("seed", [0, 1])
def test_cv_against_numpy(seed):
    rng = np.random.default_rng(seed)
    v = rng.lognormal(size=9)
    assert float(coefficient_of_variation(v)) == pytest.approx(np.std(v) / np.mean(v), rel=1e-13)
    assert float(coefficient_of_variation(v, ddof=1)) == pytest.approx(
        np.std(v, ddof=1) / np.mean(v), rel=1e-13
    )
    p = rng.integers(1, 30, 9).astype(float)
    q = v * p
    # population-weighted CV = CV over people
    people = np.repeat(v, p.astype(int))
    assert float(coefficient_of_variation(q, p)) == pytest.approx(np.std(people) / np.mean(people), rel=1e-12)
    assert float(coefficient_of_variation(q, p, weighted=False)) == pytest.approx(
        np.std(v) / np.mean(v), rel=1e-13
    )
    f = lambda x: coefficient_of_variation(jnp.asarray(x), jnp.asarray(p))  # noqa: E731
    np.testing.assert_allclose(np.asarray(jax.grad(f)(jnp.asarray(q))), _fd_grad(f, q), rtol=1e-6, atol=1e-10)


# ----------------------------------------------------------------------------------------------------------
# APE


def test_pollutant_equivalents():
    R = pollutant_equivalent_coefficients(["SO2", "NOx"])
    np.testing.assert_array_equal(R, [0.95, 0.95])
    assert CHINA_POLLUTANT_EQUIVALENT_KG["CO"] == 16.7
    rng = np.random.default_rng(0)
    E = rng.random((3, 5))  # species x regions, kt
    coeffs = np.array([0.95, 0.95, 4.0])
    ape = np.asarray(pollutant_equivalents(E, coeffs, mass_unit_kg=1e6))
    for r in range(5):
        assert ape[r] == pytest.approx(sum(E[i, r] * 1e6 / coeffs[i] for i in range(3)), rel=1e-14)
    np.testing.assert_allclose(np.asarray(pollutant_equivalents(E.T, coeffs, axis=-1)), ape / 1e6, rtol=1e-14)
    g = jax.grad(lambda e: pollutant_equivalents(e, coeffs).sum())(jnp.asarray(E))
    np.testing.assert_allclose(np.asarray(g), np.broadcast_to((1 / coeffs)[:, None], E.shape), rtol=1e-14)
    with pytest.raises(ValueError, match="No pollutant-equivalent value for \\['VOC'\\]"):
        pollutant_equivalent_coefficients(["SO2", "VOC"])
    with pytest.raises(ValueError, match="3 species on axis 0"):
        pollutant_equivalents(E, np.ones(2))


# ----------------------------------------------------------------------------------------------------------
# BTH supply-chain test


def _loop_efficiency(Phi, s, R, by, include_self):
    n = len(s)
    N = n // R
    ineff = tot = 0.0
    reg_i, reg_t = np.zeros(R), np.zeros(R)
    for i in range(n):
        for j in range(n):
            if i == j and not include_self:
                continue
            r = i // N if by == "supplier" else j // N
            tot += Phi[i, j]
            reg_t[r] += Phi[i, j]
            if s[i] > s[j]:
                ineff += Phi[i, j]
                reg_i[r] += Phi[i, j]
    return ineff / tot, reg_i / reg_t, ineff, tot


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("by", ["supplier", "buyer"])
@pytest.mark.parametrize("include_self", [False, True])
def test_supply_chain_efficiency_against_loops(seed, by, include_self):
    rng = np.random.default_rng(seed)
    R, N = 3, 4
    n = R * N
    Phi = rng.lognormal(size=(n, n))
    s = rng.lognormal(size=n)
    s[5] = s[7]  # a tie counts as efficient
    res = supply_chain_efficiency(Phi, s, n_regions=R, by=by, include_self=include_self)
    share, by_reg, ineff, tot = _loop_efficiency(Phi, s, R, by, include_self)
    assert float(res.inefficient_share) == pytest.approx(share, rel=1e-13)
    np.testing.assert_allclose(np.asarray(res.inefficient_share_by_region), by_reg, rtol=1e-13)
    assert float(res.inefficient_flow) == pytest.approx(ineff, rel=1e-13)
    assert float(res.total_flow) == pytest.approx(tot, rel=1e-13)
    assert not bool(res.inefficient[5, 7]) and not bool(res.inefficient[7, 5])


def test_supply_chain_efficiency_gradient_and_errors():
    rng = np.random.default_rng(2)
    n = 6
    Phi = rng.lognormal(size=(n, n))
    s = rng.lognormal(size=n)
    f = lambda P: supply_chain_efficiency(jnp.asarray(P), s, n_regions=2).inefficient_share  # noqa: E731
    np.testing.assert_allclose(
        np.asarray(jax.grad(f)(jnp.asarray(Phi))), _fd_grad(f, Phi), rtol=1e-6, atol=1e-10
    )
    jitted = jax.jit(lambda P, s: supply_chain_efficiency(P, s, n_regions=2).inefficient_share)
    assert float(jitted(Phi, s)) == pytest.approx(float(f(Phi)), rel=1e-14)
    with pytest.raises(ValueError, match="n_regions=4"):
        supply_chain_efficiency(Phi, s, n_regions=4)
    with pytest.raises(ValueError, match="indexed by 6"):
        supply_chain_efficiency(Phi, s[:5], n_regions=2)


def test_indices_under_jit_and_vmap():
    rng = np.random.default_rng(12)
    q = rng.lognormal(size=(5, 7))
    p = rng.uniform(1, 10, (5, 7))
    batched = jax.jit(jax.vmap(gini))(jnp.asarray(q), jnp.asarray(p))
    looped = [_lorenz_gini(q[b], p[b]) for b in range(5)]
    np.testing.assert_allclose(np.asarray(batched), looped, atol=1e-13)
    E = rng.lognormal(size=(5, 4, 4))
    tci = jax.vmap(disparity_index_from_matrix)(jnp.asarray(E))
    np.testing.assert_allclose(np.asarray(tci[3]), np.asarray(disparity_index_from_matrix(E[3])), rtol=1e-14)


def test_labelled_inputs_align_by_label():
    """A labelled population in another region order gives the same index (it was read by position), and a
    labelled burden matrix whose columns are in another order than its rows gives the same TCI."""
    import xarray as xr

    r = ["a", "b", "c", "d"]
    q, p = np.array([900.0, 400.0, 150.0, 60.0]), np.array([20.0, 30.0, 25.0, 40.0])
    qd = xr.DataArray(q, dims="region", coords={"region": r})
    pd = xr.DataArray(p, dims="region", coords={"region": r}).isel(region=[3, 1, 0, 2])
    assert float(gini(qd, pd)) == pytest.approx(float(gini(q, p)), abs=1e-14)
    assert float(coefficient_of_variation(qd, pd)) == pytest.approx(float(coefficient_of_variation(q, p)), abs=1e-14)
    np.testing.assert_allclose(np.asarray(lorenz_curve(qd, pd)[1]), np.asarray(lorenz_curve(q, p)[1]), atol=1e-15)
    with pytest.raises(ValueError, match="population"):
        gini(qd, pd.assign_coords(region=["a", "b", "c", "x"]))
    with pytest.raises(ValueError, match="both as labelled"):
        gini(qd, p)
    rng = np.random.default_rng(3)
    E = rng.uniform(0, 10, (4, 4))
    want = np.asarray(disparity_index_from_matrix(E))
    Ed = xr.DataArray(E, dims=("region", "consumer"), coords={"region": r, "consumer": r})
    got = np.asarray(disparity_index_from_matrix(Ed.isel(consumer=[2, 0, 3, 1])))
    np.testing.assert_allclose(got, want, rtol=1e-13)
    with pytest.raises(ValueError, match="same regions"):
        embodied_trade(Ed.assign_coords(consumer=["a", "b", "c", "x"]))
