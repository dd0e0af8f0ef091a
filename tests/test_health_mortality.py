"""Exposure and attributable deaths: the kernel against an independent numpy loop, identities (additivity over
causes and ages, zero below the counterfactual), population weighting, region aggregation, gradients against
central finite differences, the HealthModel (compressed cells, vmap over CRF draws) and the xarray wrapper."""

import equinox as eqx
import jax
import jax.numpy as jnp
import jaxtyping
import numpy as np
import pytest
import xarray as xr

from diffmrio.health import (
    GEMM,
    IER,
    HealthInputs,
    HealthModel,
    LogLinear,
    attributable_deaths,
    attributable_deaths_kernel,
    economic_value,
    population_weighted_concentration,
    sum_to_regions,
)

AGES = (0, 25, 50, 80)
NY, NX, NR = 5, 6, 3


def np_rr(crf, c):
    """Independent numpy relative risk for one concentration, [cause, age]."""
    if isinstance(crf, GEMM):
        z = max(0.0, c - 2.4)
        th, al, mu, nu = (np.asarray(x) for x in (crf.theta, crf.alpha, crf.mu, crf.nu))
        rr = np.exp(th * np.log(1 + z / al) / (1 + np.exp(-(z - mu) / nu)))
    else:
        z = np.maximum(0.0, c - np.asarray(crf.zcf))
        rr = 1 + np.asarray(crf.alpha) * (1 - np.exp(-np.asarray(crf.gamma) * z ** np.asarray(crf.delta)))
    return np.where(np.asarray(crf.applies), rr, 1.0)


def make_world(seed=0, n_causes=5):
    rng = np.random.default_rng(seed)
    C = rng.uniform(0.0, 120.0, size=(NY, NX))
    C[0, :3] = [0.0, 2.4, 4.0]  # cells at and below the counterfactuals
    pop = rng.uniform(0, 1e5, size=(NY, NX))
    pop[1, 1] = 0.0
    agef = rng.dirichlet(np.ones(len(AGES)), size=(NY, NX)).transpose(2, 0, 1)
    y0 = rng.uniform(1e-5, 5e-3, size=(n_causes, len(AGES), NY, NX))
    frac = rng.dirichlet(np.ones(NR + 1), size=(NY, NX))[..., :NR].transpose(2, 0, 1)  # some mass outside
    return C, pop, agef, y0, frac


CRFS = {
    "gemm": lambda: GEMM.burnett2018(ages=AGES),
    "gemm_ex_china": lambda: GEMM.burnett2018(ages=AGES, with_china=False),
    "ier": lambda: IER.central(ages=AGES),
}


@pytest.mark.parametrize("name", list(CRFS))
@pytest.mark.parametrize("seed", [0, 1])
def test_deaths_match_numpy_loop(name, seed):
    crf = CRFS[name]()
    C, pop, agef, y0, _ = make_world(seed)
    got = np.asarray(jax.jit(attributable_deaths_kernel, static_argnums=())(C, pop, agef, y0, crf))
    ref = np.zeros_like(got)
    for i in range(NY):
        for j in range(NX):
            rr = np_rr(crf, C[i, j])
            ref[:, :, i, j] = pop[i, j] * agef[:, i, j] * y0[:, :, i, j] * (1 - 1 / rr)
    np.testing.assert_allclose(got, ref, rtol=1e-11, atol=1e-12)


def test_deaths_broadcast_national_rates_and_age_shares():
    crf = IER.central(ages=AGES)
    C, pop, agef, y0, _ = make_world(3)
    f1, r1 = agef[:, 0, 0], y0[:, :, 0, 0]
    a = attributable_deaths_kernel(C, pop, f1, r1, crf)
    b = attributable_deaths_kernel(C, pop, np.broadcast_to(f1[:, None, None], agef.shape),
                            np.broadcast_to(r1[..., None, None], y0.shape), crf)
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-14)


def test_deaths_additive_over_causes_and_ages():
    C, pop, agef, y0, _ = make_world(4)
    full = np.asarray(attributable_deaths_kernel(C, pop, agef, y0, GEMM.burnett2018(ages=AGES)))
    for ci, cause in enumerate(GEMM.burnett2018(ages=AGES).causes):
        part = attributable_deaths_kernel(C, pop, agef, y0[ci : ci + 1], GEMM.burnett2018((cause,), ages=AGES))
        np.testing.assert_allclose(np.asarray(part)[0], full[ci], rtol=1e-13)
    for ai, age in enumerate(AGES):
        part = attributable_deaths_kernel(C, pop, agef[ai : ai + 1], y0[:, ai : ai + 1], GEMM.burnett2018(ages=(age,)))
        np.testing.assert_allclose(np.asarray(part)[:, 0], full[:, ai], rtol=1e-13)
    # totals: sum over causes and ages of the cells equals the regional sums of the parts
    assert np.isclose(full.sum(), sum(np.asarray(attributable_deaths_kernel(
        C, pop, agef, y0[ci : ci + 1], GEMM.burnett2018((c,), ages=AGES))).sum()
        for ci, c in enumerate(("IHD", "STROKE", "COPD", "LC", "LRI"))), rtol=1e-13)


@pytest.mark.parametrize("name", list(CRFS))
def test_deaths_zero_at_or_below_counterfactual(name):
    crf = CRFS[name]()
    _, pop, agef, y0, _ = make_world(5)
    cf = 2.4 if isinstance(crf, GEMM) else float(np.min(np.asarray(crf.zcf)))
    for c in (cf, cf - 1e-9, 0.5 * cf, 0.0):
        d = attributable_deaths_kernel(np.full((NY, NX), c), pop, agef, y0, crf)
        assert float(jnp.max(jnp.abs(d))) == 0.0
    d = attributable_deaths_kernel(np.full((NY, NX), cf + 10.0), pop, agef, y0, crf)
    assert float(jnp.sum(d)) > 0


def test_region_fraction_and_region_index_agree_and_match_numpy():
    rng = np.random.default_rng(6)
    x = rng.uniform(size=(2, 3, NY, NX))
    idx = rng.integers(-1, NR, size=(NY, NX))
    onehot = np.stack([(idx == r).astype(float) for r in range(NR)])
    a = sum_to_regions(x, n_cell_dims=2, region_index=idx, n_regions=NR)
    b = sum_to_regions(x, n_cell_dims=2, region_fraction=onehot)
    ref = np.stack([x[..., idx == r].sum(-1) for r in range(NR)], axis=-1)
    np.testing.assert_allclose(np.asarray(a), ref, rtol=1e-13)
    np.testing.assert_allclose(np.asarray(b), ref, rtol=1e-13)


def test_sum_to_regions_is_the_region_kernel_and_its_old_name_warns():
    """The health array sum was also called `aggregate_to_regions`, a different function from the labelled
    `ctm_interface.aggregate_to_regions` (issue 11 trial): it is `sum_to_regions` now, its fraction path is
    `ctm_interface.region_kernel`'s sum, and the old name still resolves, warning, until 0.3."""
    import diffmrio.health
    from ctm_interface import region_kernel

    rng = np.random.default_rng(9)
    x = rng.uniform(size=(3, NY, NX))
    frac = rng.dirichlet(np.ones(NR), size=(NY, NX)).transpose(2, 0, 1)
    np.testing.assert_allclose(np.asarray(sum_to_regions(x, n_cell_dims=2, region_fraction=frac)),
                               np.asarray(region_kernel(x, frac, how="sum")), rtol=1e-14)
    assert "aggregate_to_regions" not in diffmrio.health.__all__ and "sum_to_regions" in diffmrio.health.__all__
    with pytest.warns(DeprecationWarning, match=r"aggregate_to_regions is now diffmrio\.health\.sum_to_regions"):
        assert diffmrio.health.aggregate_to_regions is sum_to_regions


def test_population_weighted_concentration_vs_numpy():
    C, pop, _, _, frac = make_world(7)
    got = np.asarray(population_weighted_concentration(C, pop, region_fraction=frac))
    ref = [(C * pop * frac[r]).sum() / (pop * frac[r]).sum() for r in range(NR)]
    np.testing.assert_allclose(got, ref, rtol=1e-13)
    idx = np.full((NY, NX), -1)
    idx[:2] = 0
    idx[2:, :3] = 2  # region 1 has no cells
    got = np.asarray(population_weighted_concentration(C, pop, region_index=idx, n_regions=NR))
    assert np.isclose(got[0], (C[:2] * pop[:2]).sum() / pop[:2].sum())
    assert np.isnan(got[1])
    g = jax.grad(lambda c: jnp.nansum(population_weighted_concentration(c, pop, region_index=idx, n_regions=NR)))(
        jnp.asarray(C))
    assert np.isfinite(np.asarray(g)).all()


def _model(crf, seed=0, compress=False):
    C, pop, agef, y0, frac = make_world(seed, n_causes=len(crf.causes))
    if not compress:
        inputs = HealthInputs(pop, agef, y0, causes=crf.causes, ages=AGES, regions=("a", "b", "c"),
                              region_fraction=frac)
        return HealthModel(inputs, crf), C, frac
    idx = np.argmax(frac, axis=0)
    keep = np.flatnonzero(pop.ravel() > 0)
    inputs = HealthInputs(pop.ravel()[keep], agef.reshape(len(AGES), -1)[:, keep],
                          y0.reshape(y0.shape[:2] + (-1,))[..., keep], causes=crf.causes, ages=AGES,
                          regions=("a", "b", "c"), region_index=idx.ravel()[keep], cell_index=keep,
                          grid_shape=(NY, NX))
    return HealthModel(inputs, crf), C, idx


def test_health_model_matches_kernel_and_compressed_cells():
    crf = GEMM.burnett2018(ages=AGES)
    model, C, frac = _model(crf)
    _, pop, agef, y0, _ = make_world(0)
    D = eqx.filter_jit(lambda m, c: m(c))(model, C)
    assert D.shape == (5, len(AGES), NR)
    ref = np.einsum("caij,rij->car", np.asarray(attributable_deaths_kernel(C, pop, agef, y0, crf)), frac)
    np.testing.assert_allclose(np.asarray(D), ref, rtol=1e-12)
    cmodel, C2, idx = _model(crf, compress=True)
    onehot = np.stack([(idx == r) for r in range(NR)]).astype(float)
    ref = np.einsum("caij,rij->car", np.asarray(attributable_deaths_kernel(C, pop, agef, y0, crf)), onehot)
    np.testing.assert_allclose(np.asarray(cmodel(C2)), ref, rtol=1e-12)


@pytest.mark.parametrize("compress", [False, True])
@pytest.mark.parametrize("name", ["gemm", "ier"])
def test_grad_of_deaths_wrt_C_vs_central_differences(name, compress):
    crf = CRFS[name]()
    model, C, _ = _model(crf, seed=2, compress=compress)
    w = jnp.asarray(np.random.default_rng(9).uniform(size=(len(crf.causes), len(AGES), NR)))
    f = eqx.filter_jit(lambda m, c: jnp.sum(w * m(c)))
    g = np.asarray(eqx.filter_jit(eqx.filter_grad(lambda c, m: jnp.sum(w * m(c))))(jnp.asarray(C), model))
    assert np.isfinite(g).all()
    h = 1e-5 * 100
    cells = [(0, 0), (0, 1), (2, 3), (4, 5), (1, 1), (3, 2)]  # includes C=0, C=2.4 and a zero-population cell
    for i, j in cells:
        if C[i, j] <= 2.4 + h:  # kink at the threshold: one-sided below it the slope is exactly 0
            assert g[i, j] == 0.0
            continue
        up, dn = C.copy(), C.copy()
        up[i, j] += h
        dn[i, j] -= h
        fd = (float(f(model, up)) - float(f(model, dn))) / (2 * h)
        np.testing.assert_allclose(g[i, j], fd, rtol=1e-6, atol=1e-9)


def test_vmap_over_crf_draws_equals_loop():
    crf = GEMM.burnett2018(ages=AGES)
    model, C, _ = _model(crf, seed=1)
    draws = crf.sample(key=jax.random.key(0), n=6)
    run = eqx.filter_jit(lambda m, d: eqx.tree_at(lambda mm: mm.crf, m, d)(C))
    vm = eqx.filter_vmap(run, in_axes=(None, eqx.if_array(0)))(model, draws)
    loop = [run(model, jax.tree.map(lambda x: x[k] if eqx.is_array(x) else x, draws)) for k in range(6)]
    np.testing.assert_allclose(np.asarray(vm), np.asarray(jnp.stack(loop)), rtol=1e-13)
    assert float(jnp.std(vm.sum((1, 2, 3)))) > 0


def test_loglinear_morbidity_formula():
    crf = LogLinear.from_rr_per_10({"resp_hosp": 1.008, "cardio_hosp": 1.0091})
    rng = np.random.default_rng(11)
    dC = rng.uniform(0, 60, size=(4, 4))
    pop = rng.uniform(1e3, 1e5, size=(4, 4))
    y0 = np.array([[0.012], [0.009]])
    got = np.asarray(attributable_deaths_kernel(dC, pop, np.ones(1), y0, crf))
    beta = np.log([1.008, 1.0091]) / 10
    ref = y0[:, :, None, None] * pop * (1 - np.exp(-beta[:, None, None, None] * dC))
    np.testing.assert_allclose(got, ref, rtol=1e-12)


def test_economic_value_and_errors():
    d = jnp.asarray(np.arange(6.0).reshape(1, 2, 3))
    np.testing.assert_allclose(np.asarray(economic_value(d, jnp.asarray([1.0, 2.0, 3.0]))),
                               np.arange(6.0).reshape(1, 2, 3) * [1.0, 2.0, 3.0])
    crf = IER.central(ages=AGES)
    C, pop, agef, y0, frac = make_world(0)
    # a per-cell shape mismatch: the kernel's own ValueError, or under the jaxtyping hook (pyproject addopts) the
    # signature's `*cell` check first; both name `population`
    with pytest.raises((ValueError, jaxtyping.TypeCheckError), match="population"):
        attributable_deaths_kernel(C, pop[:2], agef, y0, crf)
    with pytest.raises(ValueError, match="baseline_rate"):
        attributable_deaths_kernel(C, pop, agef, y0[:3], crf)
    with pytest.raises(ValueError, match="exactly one"):
        HealthInputs(pop, agef, y0, causes=crf.causes, ages=AGES, regions=("a", "b", "c"))
    inputs = HealthInputs(pop, agef, y0, causes=crf.causes, ages=AGES, regions=("a", "b", "c"), region_fraction=frac)
    with pytest.raises(ValueError, match="ages"):
        HealthModel(inputs, IER.central(ages=(0, 25)))
    with pytest.raises(ValueError, match="causes"):
        HealthModel(inputs, GEMM.burnett2018(("IHD", "STROKE", "COPD", "LRI", "LC"), ages=AGES))


def test_xarray_wrapper_labels_and_values():
    crf = IER.central(ages=AGES)
    C, pop, agef, y0, frac = make_world(8)
    sp = {"lat": np.arange(NY) * 1.0, "lon": np.arange(NX) * 1.0}
    Cda = xr.DataArray(C, dims=("lat", "lon"), coords=sp)
    popda = xr.DataArray(pop, dims=("lat", "lon"), coords=sp)
    # baseline given with other spellings and a shuffled cause order; age shares over (age, lat, lon)
    names = ["Stroke", "IHD", "ALRI", "LC", "COPD"]
    order = [crf.causes.index(n) for n in ("STROKE", "IHD", "LRI", "LC", "COPD")]
    y0da = xr.DataArray(y0[order], dims=("cause", "age", "lat", "lon"), coords={"cause": names, "age": list(AGES), **sp})
    agda = xr.DataArray(agef, dims=("age", "lat", "lon"), coords={"age": list(AGES), **sp})
    out = attributable_deaths(Cda, popda, agda, y0da, crf)
    assert out.dims == ("cause", "age", "lat", "lon") and list(out["cause"].values) == list(crf.causes)
    np.testing.assert_allclose(out.values, np.asarray(attributable_deaths_kernel(C, pop, agef, y0, crf)), rtol=1e-13)
    fda = xr.DataArray(frac, dims=("region", "lat", "lon"), coords={"region": ["a", "b", "c"], **sp})
    reg = attributable_deaths(Cda, popda.transpose("lon", "lat"), agda, y0da, crf, region_fraction=fda)
    assert reg.dims == ("cause", "age", "region") and reg.attrs["units"] == "deaths yr-1"
    np.testing.assert_allclose(reg.values, np.einsum("caij,rij->car", out.values, frac), rtol=1e-12)
    with pytest.raises(ValueError, match="lack causes"):
        attributable_deaths(Cda, popda, agda, y0da.isel(cause=[0, 1]), crf)


def test_old_names_of_the_labelled_edge_and_the_kernel_warn_for_one_release():
    """0.2 named the labelled edge `attributable_deaths` (was `attributable_deaths_xr`) and the array kernel
    `attributable_deaths_kernel` (was `attributable_deaths`): both old uses still give the old answers, warning."""
    import diffmrio.health

    crf = IER.central(ages=AGES)
    C, pop, agef, y0, _ = make_world(8)
    with pytest.warns(DeprecationWarning, match=r"attributable_deaths_xr is now diffmrio\.health\.attributable_deaths"):
        assert diffmrio.health.attributable_deaths_xr is attributable_deaths
    with pytest.warns(DeprecationWarning, match="for arrays call diffmrio.health.attributable_deaths_kernel"):
        old = attributable_deaths(C, pop, agef, y0, crf)
    assert not isinstance(old, xr.DataArray)
    np.testing.assert_array_equal(np.asarray(old), np.asarray(attributable_deaths_kernel(C, pop, agef, y0, crf)))
    Cda = xr.DataArray(C, dims=("lat", "lon"))
    with pytest.raises(TypeError, match="`population` must be an xarray.DataArray"):
        attributable_deaths(Cda, pop, agef, y0, crf)
