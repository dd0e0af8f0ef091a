"""Tests of the reference CTM (ctm_interface.reference): numerics, chemistry regimes, adjoint, I/O, demo domain.

Most tests use a coarse version of the demo domain (16 x 12 cells of 108 km: the same physical domain at a third
of the resolution) and a short spin-up, since the properties tested do not depend on resolution.
"""

from __future__ import annotations

import dataclasses

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.optimize

from ctm_interface.reference import (
    COMPONENTS,
    LEVELS,
    REGIONS,
    SEASONS,
    SPECIES,
    TRACERS,
    CTMGrid,
    ReferenceCTM,
    demo_base_emissions,
    demo_domain,
    partition_inorganic,
    pm25_from_components,
    population_weighted_pm25,
)
from ctm_interface.reference._chemistry import smooth_pair
from ctm_interface.reference._model import SECONDS_PER_YEAR
from ctm_interface.reference._transport import advect_diffuse

COARSE = CTMGrid(ncols=16, nrows=12, xcell=108000.0, ycell=108000.0)


@pytest.fixture(scope="module")
def coarse():
    domain = demo_domain(grid=COARSE)
    ctm = ReferenceCTM.default(grid=COARSE, n_days=4)
    E = domain.gridded_emissions(demo_base_emissions(domain))
    return ctm, domain, E


@pytest.fixture(scope="module")
def cost(coarse):
    """Population-weighted PM2.5, one function object so compiled adjoints are reused across tests."""
    population = coarse[1].population

    def cost(C):
        return population_weighted_pm25(C, population)

    return cost


# ----------------------------------------------------------------------------- demo domain and emissions
def test_demo_domain_layout_and_weights():
    d = demo_domain()
    assert d.grid.shape == (36, 48) and d.region_fraction.shape == (6, 36, 48)
    assert d.allocation.shape == (6, 2, 36, 48) and d.population.shape == (36, 48)
    frac = np.asarray(d.region_fraction)
    assert frac.min() >= 0 and frac.sum(0).max() <= 1 + 1e-12
    # Sea cells (east) belong to no region; fractional cells exist along boundaries.
    assert (frac.sum(0) == 0).sum() > 50 and ((frac > 0) & (frac < 1)).sum() > 50
    np.testing.assert_allclose(np.asarray(d.allocation).sum(axis=(2, 3)), 1.0, rtol=1e-12)
    assert np.asarray(d.allocation).min() >= 0
    # Allocation only where the region is.
    assert np.all((np.asarray(d.allocation) > 0) <= (frac[:, None] > 0))
    # Elevated sources at a few stack cells, ground sources spread out.
    n_elev = (np.asarray(d.allocation)[:, 1] > 0).sum(axis=(1, 2))
    assert np.all((n_elev >= 3) & (n_elev <= 6))
    assert np.all((np.asarray(d.allocation)[:, 0] > 0).sum(axis=(1, 2)) > 40)
    # Geography: hubs east, Steppe west and largest, densest population in the hubs.
    cols = np.arange(48)
    centroid = (frac.sum(1) * cols).sum(1) / frac.sum(axis=(1, 2))
    i = {r: REGIONS.index(r) for r in REGIONS}
    assert centroid[i["Capital"]] > 34 and centroid[i["Harbor"]] > 34 and centroid[i["Steppe"]] < 14
    area = frac.sum(axis=(1, 2))
    assert area.argmax() == i["Steppe"]
    density = (frac * np.asarray(d.population)).sum(axis=(1, 2)) / area
    assert set(np.argsort(density)[-2:]) == {i["Capital"], i["Harbor"]} and density.argmin() == i["Steppe"]
    # Lambert grid around 110E 34N: cell spacing ~36 km on the sphere (haversine, independent of pyproj).
    lon, lat = np.radians(np.asarray(d.lon)), np.radians(np.asarray(d.lat))
    dlon, dlat = lon[:, 1:] - lon[:, :-1], lat[:, 1:] - lat[:, :-1]
    h = np.sin(dlat / 2) ** 2 + np.cos(lat[:, 1:]) * np.cos(lat[:, :-1]) * np.sin(dlon / 2) ** 2
    dist = 2 * 6370.0 * np.arcsin(np.sqrt(h))
    assert 34.0 < dist.min() and dist.max() < 38.0  # Lambert scale factor within ~5 % between the parallels
    assert 100 < np.degrees(lon).min() and np.degrees(lon).max() < 121 and 27 < np.degrees(lat).min()
    attrs = d.grid.ioapi_attrs()
    assert attrs["GDTYP"] == 2 and attrs["XORIG"] == -24 * 36000.0 and attrs["YORIG"] == -18 * 36000.0


def test_demo_domain_is_deterministic_and_seeded():
    a, b, c = demo_domain(0), demo_domain(0), demo_domain(1)
    for name in ("region_fraction", "population", "allocation", "lon", "lat"):
        np.testing.assert_array_equal(np.asarray(getattr(a, name)), np.asarray(getattr(b, name)))
    assert not np.array_equal(np.asarray(a.allocation), np.asarray(c.allocation))
    np.testing.assert_array_equal(np.asarray(a.region_fraction), np.asarray(c.region_fraction))
    with pytest.raises(TypeError, match="seed"):
        demo_domain(seed=0.5)


def test_demo_base_emissions_and_gridding():
    d = demo_domain()
    E_reg = np.asarray(demo_base_emissions(d))
    assert E_reg.shape == (len(SPECIES), len(REGIONS), len(LEVELS)) and E_reg.min() >= 0
    assert E_reg[SPECIES.index("NH3"), :, 1].sum() == 0  # no stack ammonia
    assert 5e3 < E_reg[SPECIES.index("SO2")].sum() < 3e4  # kt/yr, China-like scaled to the domain
    E = np.asarray(d.gridded_emissions(E_reg))
    assert E.shape == (7, 2, 36, 48)
    np.testing.assert_allclose(E.sum(axis=(2, 3)), E_reg.sum(axis=1), rtol=1e-12)
    with pytest.raises(ValueError, match="E_reg"):
        d.gridded_emissions(E_reg[:, :5])


# ----------------------------------------------------------------------------- kernels
def test_smooth_pair_matches_root_of_equilibrium():
    rng = np.random.default_rng(0)
    a, b = rng.uniform(0, 3, 50), rng.uniform(0, 3, 50)
    k = 10.0 ** rng.uniform(-3, 1, 50)
    x = np.asarray(smooth_pair(jnp.asarray(a), jnp.asarray(b), jnp.asarray(k)))
    for ai, bi, ki, xi in zip(a, b, k, x, strict=True):
        root = scipy.optimize.brentq(lambda z: (ai - z) * (bi - z) - ki * z, 0.0, min(ai, bi))
        assert abs(xi - root) <= 1e-12 * max(1.0, root)
    assert np.all(x >= 0) and np.all(x <= np.minimum(a, b))
    # k -> 0: complete reaction of the limiting reagent.
    np.testing.assert_allclose(
        smooth_pair(jnp.asarray(a), jnp.asarray(b), 1e-12), np.minimum(a, b), atol=1e-6
    )
    # Smooth at zero: finite gradients.
    g = jax.grad(lambda z: smooth_pair(z, 0.0, 0.1))(0.0)
    assert np.isfinite(g)


@pytest.mark.parametrize(
    ("S", "TA", "TN", "regime"),
    [
        (1.0, 1.2, 1.0, "NH3-poor"),  # TA < 2S: no free ammonia
        (0.2, 1.0, 2.0, "nitrate-excess"),  # 2S < TA < 2S + TN
        (0.2, 3.0, 0.5, "NH3-rich"),  # TA > 2S + TN: nitrate limited by HNO3
    ],
)
def test_partition_regimes(S, TA, TN, regime):
    """The three regimes of the sulfate-nitrate-ammonium system (molar units, small equilibrium constants)."""

    def f(S, TA, TN):
        return partition_inorganic(S, TA, TN, 1e-4, 1e-2)

    nh4, no3 = f(S, TA, TN)
    dno3 = jax.grad(lambda *a: f(*a)[1], argnums=(1, 2))(S, TA, TN)
    dnh4_dta = jax.grad(lambda *a: f(*a)[0], argnums=1)(S, TA, TN)
    assert 0 <= no3 <= min(TN, TA) and nh4 <= TA
    if regime == "NH3-poor":
        assert no3 < 0.02 * TN and dno3[0] < 0.02 and dnh4_dta > 0.98  # added NH3 neutralises sulfate first
    elif regime == "nitrate-excess":
        assert dno3[0] > 0.95 and dno3[1] < 0.05  # nitrate follows free ammonia
        np.testing.assert_allclose(no3, TA - 2 * S, rtol=0.03)
    else:
        assert dno3[1] > 0.95 and dno3[0] < 0.05  # nitrate follows HNO3 (NOx)
        np.testing.assert_allclose(no3, TN, rtol=0.03)


def test_transport_conserves_mass_and_matches_loop():
    rng = np.random.default_rng(3)
    ny, nx = 5, 7
    m = rng.uniform(0, 1, (ny, nx))
    u = rng.uniform(-0.3, 0.3, (ny, nx + 1))
    v = rng.uniform(-0.3, 0.3, (ny + 1, nx))
    d = 0.05
    new, out = advect_diffuse(
        jnp.asarray(m),
        jnp.maximum(u, 0),
        jnp.minimum(u, 0),
        jnp.maximum(v, 0),
        jnp.minimum(v, 0),
        jnp.asarray(d),
        jnp.asarray(d),
    )
    np.testing.assert_allclose(float(jnp.sum(new) + out), m.sum(), rtol=1e-14)
    # Independent loop: upwind face fluxes with zero exterior.
    pad = np.pad(m, 1)
    ref = m.copy()
    for j in range(ny):
        for k in range(nx + 1):  # x-face between cells k-1 and k of row j
            left, right = pad[j + 1, k], pad[j + 1, k + 1]
            flux = (u[j, k] * left if u[j, k] > 0 else u[j, k] * right) + d * (left - right)
            if k > 0:
                ref[j, k - 1] -= flux
            if k < nx:
                ref[j, k] += flux
    for j in range(ny + 1):
        for k in range(nx):
            low, high = pad[j, k + 1], pad[j + 1, k + 1]
            flux = (v[j, k] * low if v[j, k] > 0 else v[j, k] * high) + d * (low - high)
            if j > 0:
                ref[j - 1, k] -= flux
            if j < ny:
                ref[j, k] += flux
    np.testing.assert_allclose(np.asarray(new), ref, rtol=1e-13, atol=1e-15)


# ----------------------------------------------------------------------------- model properties
def test_mass_balance_per_family(coarse):
    """emitted = deposited + remaining + outflow per family (S as S, N as N), chemistry moving mass inside."""
    ctm, _, E = coarse
    res = ctm.run_seasons(E)
    b = res.budget
    # Emitted mass computed here, independently of the model's bookkeeping.
    steps = ctm.n_steps * ctm.dt / SECONDS_PER_YEAR
    tot = np.asarray(E).sum(axis=(1, 2, 3)) * steps
    want = {
        "S": tot[SPECIES.index("SO2")] * 32.06 / 64.066,
        "N": tot[SPECIES.index("NOx")] * 14.007 / 46.006 + tot[SPECIES.index("NH3")] * 14.007 / 17.031,
        "BC": tot[SPECIES.index("BC")],
    }
    fam = b.families()
    for f, emitted in want.items():
        np.testing.assert_allclose(np.asarray(fam[f]["emitted"]), emitted, rtol=1e-12)
        lhs = np.asarray(fam[f]["emitted"])
        rhs = np.asarray(
            fam[f]["deposited"] + fam[f]["remaining"] + fam[f]["outflow"] + fam[f]["converted_out"]
        )
        assert np.max(np.abs(lhs - rhs) / lhs) < 1e-9, f
        # Every term is a real share of the budget (no term silently zero).
        for term in ("deposited", "remaining", "outflow"):
            assert np.all(np.asarray(fam[f][term]) > 1e-3 * lhs), (f, term)
    # Per tracer, with the chemical conversions.
    rel = np.abs(np.asarray(b.tracer_residual())) / np.asarray(b.emitted).sum(axis=1, keepdims=True)
    assert rel.max() < 1e-9
    assert np.all(np.asarray(b.converted) > 0)
    # Sulfate and nitrate exist only through conversion.
    assert np.all(np.asarray(b.emitted)[:, TRACERS.index("SO4")] == 0)


@pytest.mark.parametrize("seed", [0, 1])
def test_non_negative_and_pm25_identity(coarse, seed):
    ctm, _, E = coarse
    rng = np.random.default_rng(seed)
    # Random scaling with some species switched off entirely (zeros stress the smooth chemistry).
    scale = rng.uniform(0, 2, (7, 1, *COARSE.shape))
    scale[rng.integers(0, 7)] = 0.0
    res = ctm.run_seasons(E * scale)
    C = np.asarray(res.C)
    assert np.all(np.isfinite(C)) and C.min() >= 0
    assert np.asarray(res.budget.remaining).min() >= 0 and np.asarray(res.budget.deposited).min() >= 0
    annual = np.asarray(ctm.run(E * scale))
    np.testing.assert_allclose(annual, C.mean(axis=0), rtol=1e-12, atol=1e-14)
    pm = np.asarray(pm25_from_components(annual))
    np.testing.assert_allclose(pm, annual[:4].sum(0) + 1.4 * annual[4] + annual[5], rtol=1e-14)


def test_primary_pm_is_linear_and_secondary_is_not(coarse):
    """BC responds exactly linearly to its emissions (linear transport and removal); PM2.5 does not."""
    ctm, _, E = coarse
    a = np.asarray(ctm.run(E))
    b = np.asarray(ctm.run(E.at[SPECIES.index("BC")].multiply(2.0)))
    np.testing.assert_allclose(b[COMPONENTS.index("BC")], 2 * a[COMPONENTS.index("BC")], rtol=1e-12)
    np.testing.assert_allclose(b[COMPONENTS.index("NO3")], a[COMPONENTS.index("NO3")], rtol=1e-12)
    # Halving and doubling NH3: the response is far from linear.
    nh3 = SPECIES.index("NH3")
    lo, hi = (np.asarray(pm25_from_components(ctm.run(E.at[nh3].multiply(f)))).mean() for f in (0.5, 1.5))
    mid = np.asarray(pm25_from_components(a)).mean()
    curvature = (hi - 2 * mid + lo) / (hi - lo)
    assert curvature < -0.1  # concave: diminishing returns as the domain turns NH3-rich


def test_nitrate_regime_switch_in_the_model(coarse):
    """What this shows, on population-weighted annual nitrate (sensitivities to emission scaling factors):

    1. NOx forms nitrate only where free ammonia exists: d(NO3)/d(f_NOx) at NH3 x 0.1 is < 10 % of its value at
       NH3 x 2 (NH3-poor vs NH3-rich).
    2. In an NH3-rich setting nitrate is limited by HNO3: d(NO3)/d(f_NH3) at NH3 x 2 is < 50 % of its value at
       NH3 x 0.5.
    3. Oxidant titration: d(NO3)/d(f_NOx) at NOx x 2 is < 30 % of its value at NOx x 0.5 (NOx oxidation
       saturates, VOC-limited).
    """
    ctm, d, E = coarse

    def no3(f_nh3, f_nox):
        s = jnp.ones(7).at[SPECIES.index("NH3")].set(f_nh3).at[SPECIES.index("NOx")].set(f_nox)
        C = ctm.run(E * s[:, None, None, None])
        return jnp.sum(C[COMPONENTS.index("NO3")] * d.population) / jnp.sum(d.population)

    grad = jax.jit(jax.grad(no3, argnums=(0, 1)))
    g_poor = grad(0.1, 1.0)
    g_half = grad(0.5, 1.0)
    g_rich = grad(2.0, 1.0)
    assert float(g_poor[1]) < 0.1 * float(g_rich[1])
    assert float(g_rich[0]) < 0.5 * float(g_half[0])
    g_lo_nox, g_hi_nox = grad(1.0, 0.5), grad(1.0, 2.0)
    assert float(g_hi_nox[1]) < 0.3 * float(g_lo_nox[1])
    assert all(float(x) > 0 for x in (*g_poor, *g_half, *g_rich))


def test_vmap_equals_loop(coarse):
    """`run_ensemble` (jax.vmap over batches of 8, the last one padded) equals a Python loop over `run`."""
    ctm, _, E = coarse
    rng = np.random.default_rng(7)
    batch = E[None] * jnp.asarray(rng.uniform(0, 2, (11, 7, 1, 1, 1)))
    ens = np.asarray(ctm.run_ensemble(batch, batch_size=8, progress=False))
    loop = np.stack([np.asarray(ctm.run(e)) for e in batch[:3]] + [np.asarray(ctm.run(batch[-1]))])
    np.testing.assert_allclose(ens[[0, 1, 2, -1]], loop, rtol=1e-12, atol=1e-15)
    assert ens.shape == (11, len(COMPONENTS), *COARSE.shape)


def test_adjoint_matches_central_differences(coarse, cost):
    """dJ/dE by reverse mode vs central differences on ~20 entries among those carrying the top 90 % of the
    emission-weighted sensitivity |E dJ/dE| (all emitting cells), errors normalised by the peak |dJ/dE| there."""
    ctm, d, E = coarse
    J, g = ctm.adjoint(cost, E)
    np.testing.assert_allclose(float(J), float(cost(ctm.run(E))), rtol=1e-13)
    g = np.asarray(g)
    assert g.shape == E.shape and np.all(np.isfinite(g))
    weighted = np.abs(g * np.asarray(E)).ravel()
    order = np.argsort(weighted)[::-1]
    top = order[: np.searchsorted(np.cumsum(weighted[order]), 0.9 * weighted.sum()) + 1]
    rng = np.random.default_rng(0)
    picks = rng.choice(top, size=min(20, top.size), replace=False)
    # Always include the largest entry and the largest elevated-source entry.
    elevated = [i for i in top if np.unravel_index(i, g.shape)[1] == 1]
    picks = np.unique(np.r_[picks, order[0], elevated[:1]])
    assert len(elevated) > 0 and {np.unravel_index(i, g.shape)[0] for i in picks} >= {0, 1, 2}
    h = 1e-3 * np.asarray(E).ravel()[picks]
    basis = np.zeros((picks.size, E.size))
    basis[np.arange(picks.size), picks] = h
    basis = jnp.asarray(basis.reshape(picks.size, *E.shape))
    runs = ctm.run_ensemble(jnp.concatenate([E + basis, E - basis]), batch_size=8, progress=False)
    J_pm = np.asarray(jax.vmap(cost)(runs))
    fd = (J_pm[: picks.size] - J_pm[picks.size :]) / (2 * h)
    flat = np.abs(g).ravel()[top]
    err = np.abs(fd - g.ravel()[picks]) / flat.max()
    assert err.max() < 1e-6, err
    # The sensitivities carry the chemistry: NH3 and NOx matter, and primary PM sensitivities are positive.
    assert g[SPECIES.index("NH3")].sum() > 0 and g[SPECIES.index("BC")].min() >= 0


def test_gradient_wrt_parameters(coarse, cost):
    """Every rate is a differentiable field: d cost / d (parameter) by reverse mode matches central differences."""
    ctm, _, E = coarse
    grads = eqx.filter_grad(lambda model: cost(model.run(E)))(ctm)
    for name, idx in (("k_so2", 0), ("nitrate_k_factor", ()), ("v_dry", 3)):
        value = getattr(ctm, name)
        h = 1e-4 * float(value[idx])
        plus = eqx.tree_at(lambda m: getattr(m, name), ctm, value.at[idx].add(h))
        minus = eqx.tree_at(lambda m: getattr(m, name), ctm, value.at[idx].add(-h))
        fd = (float(cost(plus.run(E))) - float(cost(minus.run(E)))) / (2 * h)
        ad = float(getattr(grads, name)[idx])
        assert abs(ad - fd) <= 1e-6 * abs(fd) + 1e-12, (name, ad, fd)
    # More nitrate partitioning constant (warmer) -> less nitrate -> lower PM2.5.
    assert float(grads.nitrate_k_factor) < 0


@pytest.mark.slow
def test_two_level_checkpointing_gives_the_same_adjoint(coarse, cost):
    ctm, _, E = coarse
    _, g1 = ctm.adjoint(cost, E)
    _, g2 = dataclasses.replace(ctm, checkpoint_every=5).adjoint(cost, E)
    np.testing.assert_allclose(
        np.asarray(g2), np.asarray(g1), rtol=1e-10, atol=1e-14 * float(jnp.abs(g1).max())
    )


def test_bad_inputs(coarse):
    ctm, _, E = coarse
    with pytest.raises(ValueError, match="species"):
        ctm.run(E[:6])
    with pytest.raises(TypeError, match="array"):
        ctm.run([[1.0]])
    with pytest.raises(Exception, match="finite and >= 0"):
        ctm.run(E.at[0, 0, 0, 0].set(-1.0))
    with pytest.raises(ValueError, match="CFL"):
        ReferenceCTM.default(grid=COARSE, dt=12 * 3600.0, transport_substeps=1)
    with pytest.raises(ValueError, match="u"):
        ReferenceCTM.default(grid=COARSE).__class__(
            **{**{f: getattr(ctm, f) for f in ctm.__dataclass_fields__}, "u": ctm.u[:, :, :-1]}
        )
    with pytest.raises(ValueError, match="population"):
        population_weighted_pm25(jnp.zeros((6, 12, 16)), jnp.ones((12, 15)))


def test_spin_up_reaches_steady_state():
    """The default 12-day spin-up ends near steady state (domain-mean PM2.5 changes < 0.1 % over the last day)."""
    ctm = ReferenceCTM.default(grid=COARSE)
    d = demo_domain(grid=COARSE)
    res = ctm.run_seasons(d.gridded_emissions(demo_base_emissions(d)))
    assert np.max(np.abs(np.asarray(res.tendency))) < 1e-3
    assert res.C.shape == (len(SEASONS), len(COMPONENTS), *COARSE.shape)
    # Cold seasons favour nitrate: January nitrate/sulfate ratio exceeds July's.
    C = np.asarray(res.C).mean(axis=(2, 3))
    ratio = C[:, COMPONENTS.index("NO3")] / C[:, COMPONENTS.index("SO4")]
    assert ratio[SEASONS.index("Jan")] > 2 * ratio[SEASONS.index("Jul")]


# ----------------------------------------------------------------------------- I/O API files
def test_write_conc_and_adjoint_round_trip(coarse, cost, tmp_path):
    ioapi = pytest.importorskip(
        "ctm_interface._ioapi", reason="ctm_interface._ioapi (the I/O API writer) missing"
    )
    ctm, d, E = coarse
    res = ctm.run_seasons(E)
    path = ctm.write_conc(tmp_path / "CONC.nc", res.C, dtype=None)
    ds = ioapi.read_ioapi(path)
    assert (
        ds.attrs["GDTYP"] == 2 and float(ds.attrs["XCELL"]) == COARSE.xcell and int(ds.attrs["NCOLS"]) == 16
    )
    assert ds.sizes["TSTEP"] == 4 and ds.sizes["LAY"] == 1
    assert [str(t)[:10] for t in ds["TSTEP"].values] == [
        "2017-01-15",
        "2017-04-16",
        "2017-07-16",
        "2017-10-15",
    ]
    C = np.asarray(res.C)
    for i, name in enumerate(("PM25_SO4", "PM25_NO3", "PM25_NH4", "PM25_EC", "PM25_OC", "PM25_OTHER")):
        np.testing.assert_array_equal(ds[name].values[:, 0], C[:, i])
        assert ds[name].attrs["units"] == "ug m-3"
    np.testing.assert_allclose(
        ds["PM25_TOT"].values[:, 0], np.asarray(pm25_from_components(res.C)), rtol=1e-14
    )
    # Annual mean, float32 on file (CMAQ's REAL).
    path = ctm.write_conc(tmp_path / "CONC_annual.nc", res.annual)
    ds = ioapi.read_ioapi(path)
    assert ds.sizes.get("TSTEP", 1) == 1
    np.testing.assert_allclose(ds["PM25_NO3"].values.squeeze(), C.mean(0)[1], rtol=1e-6)
    # Adjoint sensitivities: one variable per species, LAY 1 ground, LAY 2 elevated.
    _, g = ctm.adjoint(cost, E)
    path = ctm.write_adjoint(tmp_path / "ADJ_LGRID_EM.nc", g, cost_units="ug m-3", dtype=None)
    ds = ioapi.read_ioapi(path)
    assert ds.sizes["LAY"] == 2
    for i, name in enumerate(("SO2", "NOX", "NH3", "VOC", "PEC", "POC", "PMOTHR")):
        np.testing.assert_array_equal(ds[name].values[0], np.asarray(g)[i])
        assert ds[name].attrs["units"] == "ug m-3/(kt/yr)"
