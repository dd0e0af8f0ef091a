"""Intensity convergence (COBENEFIT eqs. 3-5), footprint gradients and the budgeted optimiser."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from scipy.optimize import linprog, minimize

from diffmrio import datasets
from diffmrio.scenarios._scenarios import (
    convergence_kernel,
    final_producer_output,
    footprint_gradients,
    intensity_convergence,
    optimal_intensity_cuts,
    optimise_intensity_cuts,
    project_budget,
)

SECTORS = ("agriculture", "power", "metals", "nonmetal", "services")


def random_mrio(seed, R=5, K=2):
    m = datasets.random_mrio(
        R, len(SECTORS), K, 2, seed=seed, structure="uniform", fd_range=(0.2, 2.0), stressor_dist="lognormal",
        regions=[f"P{r}" for r in range(R)], sectors=SECTORS, categories=["household", "export"][:K],
        stressors=["CO2", "deaths"], units=["Mt", "1"],
    )  # fmt: skip
    Z, Y, F = (np.asarray(a) for a in (m.Z, m.Y, m.F))
    x = Z.sum(axis=1) + Y.sum(axis=1)
    return m, Z / x, F / x, Y, x


def literal_convergence(E, w, level):
    """COBENEFIT eqs. 3-5 with loops; level 1 -> w_s, 0.75 -> max(w_s, q25), 0.5 -> max(w_s, q50)."""
    R, m, _ = E.shape
    out = np.zeros((R, R, m))
    for k in range(m):
        q = {1.0: -np.inf, 0.75: np.quantile(w[:, k], 0.25), 0.5: np.quantile(w[:, k], 0.5)}[level]
        for r in range(R):
            for s in range(R):
                if w[s, k] < w[r, k]:
                    wn = min(w[r, k], max(w[s, k], q))
                    out[r, s, k] = E[r, k, s] * (1 - wn / w[r, k])
    return out


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_convergence_kernel_vs_loops(seed):
    rng = np.random.default_rng(seed)
    R, m = 7, 3
    E = rng.uniform(0, 5, (R, m, R))
    w = rng.lognormal(0, 0.7, (R, m))
    red, w_new = convergence_kernel(jnp.asarray(E), jnp.asarray(w), jnp.asarray([1.0, 0.75, 0.5]))
    for i, lv in enumerate([1.0, 0.75, 0.5]):
        np.testing.assert_allclose(red[i], literal_convergence(E, w, lv), rtol=1e-12, atol=1e-14)
    red = np.asarray(red)
    assert (red >= 0).all()
    assert np.all(red[:, np.arange(R), np.arange(R)] == 0)  # no convergence within a province
    # weaker convergence never saves more
    assert (red[0] >= red[1] - 1e-14).all() and (red[1] >= red[2] - 1e-14).all()


def test_intensity_convergence_wrapper_default_impact():
    m, A, S, Y, x = random_mrio(3)
    R, N = 5, len(SECTORS)
    ds = intensity_convergence(m, "CO2")
    assert list(ds.sector.values) == ["nonmetal", "metals", "power"]
    # final-producer view: E[r, i, s] = S_(r,i) (L y_fp^s)_(r,i), y_fp^s = all final demand for s's products
    L = np.linalg.inv(np.eye(R * N) - A)
    y = Y.sum(1)
    E = np.stack([S[0] * (L @ (y * (np.arange(R * N) // N == s))) for s in range(R)], axis=1).reshape(R, N, R)
    sidx = [SECTORS.index(k) for k in ("nonmetal", "metals", "power")]
    w = S[0].reshape(R, N)[:, sidx]
    np.testing.assert_allclose(ds.reduction.sel(level=1.0).values, literal_convergence(E[:, sidx], w, 1.0),
                               rtol=1e-10, atol=1e-13)
    off = ~np.eye(R, dtype=bool)
    trade = E.transpose(0, 2, 1)[off].sum()
    np.testing.assert_allclose(float(ds.trade_total), trade, rtol=1e-11)
    np.testing.assert_allclose(ds.relative.values, ds.reduction.sum(("supplier", "buyer", "sector")) / trade)
    assert 0 < ds.relative.sel(level=1.0) < 1


def test_final_producer_output_vs_numpy():
    m, A, S, Y, x = random_mrio(3)
    R, N = 5, len(SECTORS)
    L = np.linalg.inv(np.eye(R * N) - A)
    y = Y.sum(1)
    X = np.stack([L @ (y * (np.arange(R * N) // N == t)) for t in range(R)], axis=1)
    got = final_producer_output(m)
    np.testing.assert_allclose(got, X, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(got.sum(1), x, rtol=1e-10)  # every unit of output serves some region's final sales


def test_intensity_convergence_custom_impact_and_intensity():
    import xarray as xr

    m, *_ = random_mrio(4)
    rng = np.random.default_rng(0)
    regions = list(m.regions)
    deaths = xr.DataArray(rng.uniform(0, 1, (5, 5, 5)), dims=("supplier", "sector", "buyer"),
                          coords={"supplier": regions, "sector": list(SECTORS), "buyer": regions})
    energy = xr.DataArray(rng.lognormal(0, 1, (5, 5)), dims=("sector", "region"),  # transposed on purpose
                          coords={"sector": list(SECTORS), "region": regions})
    ds = intensity_convergence(m, intensity=energy, impact=deaths, sectors=("power",), levels=(0.5,))
    E = deaths.transpose("supplier", "sector", "buyer").values[:, [1], :]
    w = energy.transpose("region", "sector").values[:, [1]]
    np.testing.assert_allclose(ds.reduction.values[0], literal_convergence(E, w, 0.5), rtol=1e-12)
    with pytest.raises(ValueError, match="sectors"):
        intensity_convergence(m, sectors=("steel",))
    with pytest.raises(ValueError, match="levels"):
        intensity_convergence(m, levels=(1.5,))
    with pytest.raises(ValueError, match="impact"):
        intensity_convergence(m, impact=np.ones((5, 5)))


def test_footprint_gradients_vs_finite_differences_and_analytic():
    m, A, S, Y, x = random_mrio(5, R=3)
    ds = footprint_gradients(m, "CO2", consumers="P1")
    n, K = 15, 2
    L = np.linalg.inv(np.eye(n) - A)
    mask = np.zeros(3 * K)
    mask[K:2 * K] = 1
    np.testing.assert_allclose(float(ds.value), S[0] @ L @ Y @ mask, rtol=1e-12)
    # analytic: d/ds = L y, d/dY = (s L) mask
    np.testing.assert_allclose(ds.d_intensity.values.reshape(-1), L @ Y @ mask, rtol=1e-10)
    np.testing.assert_allclose(ds.d_final_demand.values.reshape(n, 3 * K), np.outer(S[0] @ L, mask), rtol=1e-10,
                               atol=1e-14)

    def f(s, Ymat):
        return s @ np.linalg.solve(np.eye(n) - A, Ymat @ mask)

    rng = np.random.default_rng(0)
    for j in rng.choice(n, 4, replace=False):
        h = 1e-6 * max(abs(S[0, j]), 1e-3)
        sp_, sm = S[0].copy(), S[0].copy()
        sp_[j] += h
        sm[j] -= h
        np.testing.assert_allclose(ds.d_intensity.values.reshape(-1)[j], (f(sp_, Y) - f(sm, Y)) / (2 * h), rtol=1e-7)
        c = 2 + j % 2  # a column of consumer P1
        h = 1e-6 * Y[j, c]
        Yp, Ym = Y.copy(), Y.copy()
        Yp[j, c] += h
        Ym[j, c] -= h
        np.testing.assert_allclose(ds.d_final_demand.values.reshape(n, -1)[j, c], (f(S[0], Yp) - f(S[0], Ym)) / (2 * h),
                                   rtol=1e-7)


@pytest.mark.parametrize("seed", [0, 1])
def test_project_budget_is_the_euclidean_projection(seed):
    rng = np.random.default_rng(seed)
    n = 6
    v = rng.normal(0.3, 0.5, n)
    c = rng.uniform(0.5, 2, n)
    umax = rng.uniform(0.2, 0.8, n)
    B = 0.4
    got = np.asarray(project_budget(jnp.asarray(v), jnp.asarray(c), B, jnp.asarray(umax)))
    ref = minimize(lambda u: 0.5 * np.sum((u - v) ** 2), np.zeros(n), jac=lambda u: u - v,
                   bounds=list(zip(np.zeros(n), umax)), constraints=[{"type": "ineq", "fun": lambda u: B - c @ u}],
                   method="SLSQP", options={"ftol": 1e-14, "maxiter": 500}).x
    np.testing.assert_allclose(got, ref, atol=1e-6)
    assert c @ got <= B + 1e-9 and (got >= 0).all() and (got <= umax + 1e-15).all()


def test_optimiser_reaches_the_lp_optimum_and_beats_uniform():
    m, A, S, Y, x = random_mrio(6, R=4)
    n = 20
    y = Y.sum(1)
    xy = np.linalg.solve(np.eye(n) - A, y)
    budget = 0.1 * x.sum()
    ds = optimal_intensity_cuts(m, "CO2", budget, u_max=0.5, steps=400)
    u = ds.cut.values.reshape(-1)
    assert x @ u <= budget * (1 + 1e-9) and (u >= -1e-12).all() and (u <= 0.5 + 1e-12).all()
    # the footprint is linear in u: the optimum is the LP max sum_j (s_j xy_j) u_j s.t. x.u <= B, 0 <= u <= 0.5
    lp = linprog(-(S[0] * xy), A_ub=x[None, :], b_ub=[budget], bounds=[(0, 0.5)] * n, method="highs")
    best = S[0] @ xy + lp.fun
    np.testing.assert_allclose(float(ds.optimised), best, rtol=2e-3)
    np.testing.assert_allclose(float(ds.baseline), S[0] @ xy, rtol=1e-12)
    uu = budget / x.sum()
    np.testing.assert_allclose(float(ds.uniform), S[0] @ xy * (1 - uu), rtol=1e-12)
    assert float(ds.optimised) < float(ds.uniform) * (1 - 1e-3)


def test_optimiser_nonlinear_objective():
    # a convex, nonlinear objective (sum of squared regional footprints): projected gradient reaches the
    # constrained optimum of a generic solver (SLSQP) and beats the uniform cut
    m, A, S, Y, x = random_mrio(7, R=3)
    n = 15
    Xr = np.linalg.solve(np.eye(n) - A, Y.reshape(n, 3, 2).sum(2))  # output per consuming region

    def objective(s):
        return jnp.sum((s @ jnp.asarray(Xr)) ** 2)

    cost = jnp.asarray(x)
    budget = 0.05 * x.sum()
    u, hist = optimise_intensity_cuts(objective, jnp.asarray(S[0]), cost, budget, u_max=0.6, steps=300)
    u = np.asarray(u)
    assert x @ u <= budget * (1 + 1e-9)
    uniform = objective(jnp.asarray(S[0]) * (1 - budget / x.sum()))
    assert float(objective(jnp.asarray(S[0]) * (1 - u))) < float(uniform)
    assert hist[-1] <= hist[0]
    # KKT check against a generic solver
    ref = minimize(lambda v: float(objective(jnp.asarray(S[0] * (1 - v)))), np.zeros(n),
                   jac=lambda v: np.asarray(jax.grad(lambda w: objective(jnp.asarray(S[0]) * (1 - w)))(jnp.asarray(v))),
                   bounds=[(0, 0.6)] * n, constraints=[{"type": "ineq", "fun": lambda v: budget - x @ v}],
                   method="SLSQP", options={"ftol": 1e-12, "maxiter": 500}).x
    np.testing.assert_allclose(float(objective(jnp.asarray(S[0] * (1 - u)))),
                               float(objective(jnp.asarray(S[0] * (1 - ref)))), rtol=1e-3)


def test_optimiser_errors():
    s = jnp.ones(3)
    with pytest.raises(ValueError, match="cost"):
        optimise_intensity_cuts(jnp.sum, s, jnp.ones(4), 1.0)
    with pytest.raises(ValueError, match="non-negative"):
        optimise_intensity_cuts(jnp.sum, s, -jnp.ones(3), 1.0)
    with pytest.raises(ValueError, match="u_max"):
        optimise_intensity_cuts(jnp.sum, s, jnp.ones(3), 1.0, u_max=1.5)


def test_optimiser_accepts_an_optax_transformation():
    # a linear objective with equal costs: the budget goes to the largest-gradient entries first
    s = jnp.asarray([1.0, 3.0, 2.0, 0.5])
    u, _ = optimise_intensity_cuts(jnp.sum, s, jnp.ones(4), 0.7, u_max=0.5, steps=200,
                                   optimizer=optax.sgd(0.05, momentum=0.5))
    np.testing.assert_allclose(np.asarray(u), [0.0, 0.5, 0.2, 0.0], atol=1e-6)


def test_convergence_ratios_vs_loops_and_identity():
    """rho[l, r, m] = sum_s (w'/w) X_fp[(r,m), s] / x[(r,m)] by loops; (1 - rho) w x equals the reduction summed
    over buyers; non-converging sectors are 1; an Economy gives the same."""
    import xarray as xr

    from diffmrio import Economy
    from diffmrio.scenarios import convergence_ratios

    m, A, S, Y, x = random_mrio(6)
    R, N = 5, len(SECTORS)
    levels = (1.0, 0.75, 0.5)
    conv = intensity_convergence(m, "CO2", levels=levels)
    rho = convergence_ratios(m, conv)
    assert rho.dims == ("level", "region", "sector") and rho.attrs["units"] == "1"
    L = np.linalg.inv(np.eye(R * N) - A)
    y = Y.sum(1)
    X = np.stack([L @ (y * (np.arange(R * N) // N == t)) for t in range(R)], axis=1)  # (n, R)
    w = S[0].reshape(R, N)
    for li, level in enumerate(levels):
        for r in range(R):
            for i, sec in enumerate(SECTORS):
                if sec not in conv.sector.values:
                    assert rho.values[li, r, i] == 1.0
                    continue
                q = {1.0: -np.inf, 0.75: np.quantile(w[:, i], 0.25), 0.5: np.quantile(w[:, i], 0.5)}[level]
                acc = 0.0
                for t in range(R):
                    wn = min(w[r, i], max(w[t, i], q)) if w[t, i] < w[r, i] else w[r, i]
                    acc += wn / w[r, i] * X[r * N + i, t]
                assert rho.values[li, r, i] == pytest.approx(acc / x[r * N + i], rel=1e-10)
        red = conv.reduction.isel(level=li).sum("buyer")  # (supplier, sector)
        for sec in conv.sector.values:
            i = SECTORS.index(sec)
            np.testing.assert_allclose((1 - rho.values[li, :, i]) * w[:, i] * x.reshape(R, N)[:, i],
                                       red.sel(sector=sec).values, rtol=1e-9, atol=1e-12)
    assert (rho.values <= 1 + 1e-12).all() and (rho.sel(level=1.0) <= rho.sel(level=0.5) + 1e-12).all()
    xr.testing.assert_allclose(convergence_ratios(Economy.from_mrio(m), conv), rho, rtol=1e-12)
    with pytest.raises(ValueError, match=r"`convergence` has no \['intensity'\]"):
        convergence_ratios(m, conv.drop_vars("intensity"))
    with pytest.raises(ValueError, match="not in this table"):
        convergence_ratios(m, conv.assign_coords(sector=["steel", "metals", "power"]))
