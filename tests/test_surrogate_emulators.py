"""Emulator classes: shapes, labels, PM2.5 weighting, gradients vs finite differences, exact recovery of
linear/polynomial functions, the out-of-envelope policies, ensembles."""

import warnings

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest
import xarray as xr

import surrogate as sg

SOURCES = ("a", "b", "c")
SPECIES = ("SO2", "NOx", "NH3")
RECEPTORS = ("p", "q")
COMPONENTS = ("SO4", "NO3", "NH4", "BC", "OC", "PM_other")


def make_runs(fn, n=40, seed=0, low=0.0, high=2.0):
    """A run set from an analytic stand-in CTM `fn(x[run, source, species]) -> y[run, component, receptor]`."""
    x = np.random.default_rng(seed).uniform(low, high, (n, len(SOURCES), len(SPECIES)))
    y = fn(x)
    return xr.Dataset(
        {
            "scale": (("run", "source", "species"), x, {"units": "1"}),
            "pm25": (("run", "receptor", "component"), y.transpose(0, 2, 1), {"units": "ug m-3"}),
        },
        coords={"source": list(SOURCES), "species": list(SPECIES), "receptor": list(RECEPTORS),
                "component": list(COMPONENTS)},
    )  # fmt: skip


def nonlinear_ctm(x):
    """Smooth, positive, nonlinear stand-in: linear transport plus an NH3-limited nitrate-like term."""
    rng = np.random.default_rng(42)
    a = rng.uniform(0.2, 1.0, (len(COMPONENTS), len(RECEPTORS), len(SOURCES), len(SPECIES)))
    d = x - 1.0
    lin = np.einsum("crsk,nsk->ncr", a, d)
    nox, nh3 = x[:, :, 1].sum(1), x[:, :, 2].sum(1)
    nitrate = nox * nh3 / (nox + nh3)
    return 3.0 * (1.0 + 0.15 * lin) + 0.5 * nitrate[:, None, None]


@pytest.fixture(scope="module")
def labels():
    return sg.EmulatorLabels.from_runs(make_runs(nonlinear_ctm, n=3))


@pytest.fixture(scope="module")
def fitted(labels):
    runs = make_runs(nonlinear_ctm, n=30)
    return {
        k: sg.fit(m, runs, key=jr.PRNGKey(1), steps=30, progress=False) for k, m in _models(labels).items()
    }


def _models(labels, key=jr.PRNGKey(0)):
    return {
        "linear": sg.LinearEmulator(labels),
        "polynomial": sg.PolynomialEmulator(labels, degree=2),
        "mlp": sg.MLPEmulator(labels, width=16, depth=2, key=key),
    }


def test_labels_from_runs(labels):
    assert labels.input_dims == ("source", "species")
    assert labels.output_dims == ("component", "receptor")  # component moved to the front
    assert labels.input_shape == (3, 3) and labels.output_shape == (6, 2)
    assert labels.components == COMPONENTS
    assert labels.output_units == "ug m-3" and labels.input_kind == "scale"
    w = labels.component_weights()
    np.testing.assert_array_equal(w, [1, 1, 1, 1, 1.4, 1])
    assert sg.EmulatorLabels.from_json(labels.to_json()) == labels


def test_labels_reject_bad_layout():
    with pytest.raises(ValueError, match="component"):
        sg.EmulatorLabels(("source",), (("a",),), "1", ("receptor",), (("p",),), "ug m-3")


@pytest.mark.parametrize("kind", ["linear", "polynomial", "mlp"])
def test_shapes_and_pm25(fitted, kind):
    runs = make_runs(nonlinear_ctm, n=30)
    model = fitted[kind]
    x = jnp.asarray(runs["scale"].values[0])
    y = model(x)
    assert y.shape == (6, 2) and y.dtype == jnp.float64
    # PM2.5 = SO4 + NO3 + NH4 + BC + 1.4 OC + PM_other
    expected = y[0] + y[1] + y[2] + y[3] + 1.4 * y[4] + y[5]
    np.testing.assert_allclose(model.pm25(x), expected, rtol=1e-12)
    with pytest.raises(ValueError, match="jax.vmap"):
        model(jnp.ones((4, 3, 3)))
    batched = jax.vmap(model)(jnp.asarray(runs["scale"].values[:5]))
    loop = jnp.stack([model(jnp.asarray(v)) for v in runs["scale"].values[:5]])
    np.testing.assert_allclose(batched, loop, rtol=1e-12)


@pytest.mark.parametrize("kind", ["linear", "polynomial", "mlp"])
@pytest.mark.parametrize("seed", [0, 1])
def test_gradient_matches_central_differences(fitted, kind, seed):
    model = sg.with_envelope_policy(fitted[kind], "ignore")
    w = jnp.asarray(np.random.default_rng(seed).uniform(0, 1, (6, 2)))
    x0 = jnp.asarray(np.random.default_rng(seed + 10).uniform(0.2, 1.8, (3, 3)))

    def cost(x):
        return jnp.sum(w * model(x))

    g = jax.grad(cost)(x0)
    h = 1e-6
    fd = np.zeros((3, 3))
    for i in range(3):
        for j in range(3):
            e = jnp.zeros((3, 3)).at[i, j].set(h)
            fd[i, j] = (cost(x0 + e) - cost(x0 - e)) / (2 * h)
    np.testing.assert_allclose(g, fd, rtol=1e-6, atol=1e-8 * float(jnp.max(jnp.abs(g))))


def test_linear_fit_recovers_known_matrix(labels):
    rng = np.random.default_rng(3)
    jac = rng.normal(size=(6, 2, 3, 3))
    y0 = rng.uniform(1, 5, (6, 2))
    runs = make_runs(lambda x: y0 + np.einsum("crsk,nsk->ncr", jac, x - 1.0), n=25)
    model = sg.fit(sg.LinearEmulator(labels), runs)
    np.testing.assert_allclose(np.asarray(model.jacobian), jac.reshape(12, 9), rtol=1e-9, atol=1e-10)
    np.testing.assert_allclose(model.base, y0, rtol=1e-10)
    # the gradient of the linear emulator is the source-receptor matrix itself
    g = jax.jacfwd(model)(jnp.ones((3, 3)))
    np.testing.assert_allclose(g, jac, rtol=1e-9, atol=1e-10)


def test_polynomial_fit_recovers_known_polynomial(labels):
    truth = sg.PolynomialEmulator(labels, degree=2)
    rng = np.random.default_rng(4)
    truth = eqx.tree_at(lambda m: m.coef, truth, jnp.asarray(rng.normal(size=truth.coef.shape)))
    truth = eqx.tree_at(lambda m: m.base, truth, jnp.asarray(rng.uniform(2, 4, (6, 2))))
    truth = sg.with_envelope_policy(truth, "ignore")
    n = 2 * truth.n_features

    def fn(x):
        return np.asarray(jax.vmap(truth)(jnp.asarray(x)))

    runs = make_runs(fn, n=n)
    model = sg.fit(sg.PolynomialEmulator(labels, degree=2), runs, ridge_alphas=[0.0])
    np.testing.assert_allclose(model.coef, truth.coef, rtol=1e-7, atol=1e-7)
    np.testing.assert_allclose(model.base, truth.base, rtol=1e-9)
    # feature count: 3 sources x (3 linear + 6 quadratic) + 6 quadratic domain-total terms
    assert truth.n_features == 3 * 9 + 6


def test_polynomial_features_against_explicit_formula(labels):
    model = sg.PolynomialEmulator(labels, degree=2, source_weights=np.full((3, 3), 1 / 3))
    x = np.random.default_rng(5).uniform(0, 2, (3, 3))
    d = x - 1
    expected = list(d.ravel())  # degree 1, source-major
    for s in range(3):
        expected += [d[s, i] * d[s, j] for i in range(3) for j in range(i, 3)]
    t = d.mean(axis=0)
    expected += [t[i] * t[j] for i in range(3) for j in range(i, 3)]
    np.testing.assert_allclose(model.features(jnp.asarray(x)), expected, rtol=1e-13)


def test_ridge_loo_matches_brute_force():
    rng = np.random.default_rng(6)
    phi = rng.normal(size=(20, 5))
    y = phi @ rng.normal(size=(5, 2)) + 0.3 * rng.normal(size=(20, 2))
    coef, icpt, alpha = sg.ridge_loo(phi, y, alphas=[1e-3, 1e-1, 10.0])
    # brute-force leave-one-out with the same standardisation, for the chosen alpha of output 0
    mu, sd = phi.mean(0), phi.std(0)
    z = (phi - mu) / sd
    s0 = np.linalg.svd(z, compute_uv=False)[0]
    errs = []
    for a in [1e-3, 1e-1, 10.0]:
        e = 0.0
        for i in range(20):
            keep = np.arange(20) != i
            zk, yk = z[keep], y[keep, 0]
            # exact LOO of the full-data standardisation: centre with the held-in mean
            zc, ym = zk - zk.mean(0), yk.mean()
            c = np.linalg.solve(zc.T @ zc + a * s0**2 * np.eye(5), zc.T @ (yk - ym))
            e += (y[i, 0] - ym - (z[i] - zk.mean(0)) @ c) ** 2
        errs.append(e)
    assert alpha[0] == [1e-3, 1e-1, 10.0][int(np.argmin(errs))]
    pred = icpt + phi @ coef.T
    assert pred.shape == y.shape


def _outside(model):
    return jnp.full(model.labels.input_shape, 2.5)


def test_envelope_warn_raise_ignore(labels, fitted):
    runs = make_runs(nonlinear_ctm, n=30)
    model = sg.fit(sg.LinearEmulator(labels), runs)
    inside = jnp.asarray(runs["scale"].values[3])
    assert bool(model.in_envelope(inside)) and not bool(model.in_envelope(_outside(model)))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no warning inside the envelope
        model(inside)
        jax.effects_barrier()
    with pytest.warns(sg.OutOfEnvelopeWarning):
        model(_outside(model))
        jax.effects_barrier()
    with pytest.warns(sg.OutOfEnvelopeWarning):
        eqx.filter_jit(lambda m, x: m.pm25(x))(model, _outside(model))
        jax.effects_barrier()
    # under jit(grad): the nonlinear MLP needs the primal value, so the check runs and warns
    mlp = fitted["mlp"]
    with pytest.warns(sg.OutOfEnvelopeWarning):
        jax.jit(jax.grad(lambda x: mlp.pm25(x).sum()))(_outside(mlp))
        jax.effects_barrier()
    strict = sg.with_envelope_policy(model, "raise")
    strict(inside)
    with pytest.raises(Exception, match="training envelope"):
        eqx.filter_jit(lambda m, x: m(x))(strict, _outside(model))
    with pytest.raises(Exception, match="training envelope"):
        jax.vmap(strict)(jnp.stack([inside, _outside(model)]))
    quiet = sg.with_envelope_policy(model, "ignore")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        np.testing.assert_allclose(quiet(_outside(model)), model._predict(_outside(model)))
        jax.effects_barrier()
    with pytest.raises(ValueError, match="on_out_of_envelope"):
        sg.with_envelope_policy(model, "clip")


def test_envelope_from_design_covers_lhs_holdout():
    # a held-out run from the same LHS design must not be flagged; one beyond the design is
    from scipy.stats import qmc

    u = qmc.LatinHypercube(d=9, seed=0).random(60) * 2.0
    env = sg.envelope_from_design(u.reshape(60, 3, 3))
    assert np.all(np.asarray(env.lower) <= 2.0 / 60 + 1e-12) and np.all(
        np.asarray(env.upper) >= 2.0 - 2.0 / 60
    )
    assert not bool(env.contains(jnp.full((3, 3), 2.2)))


def test_design_box_from_coords_sets_envelope(labels):
    runs = make_runs(nonlinear_ctm, n=30, low=0.5, high=1.5)
    runs = runs.assign_coords(low=(("source", "species"), np.full((3, 3), 0.0)),
                              high=(("source", "species"), np.full((3, 3), 2.0)))  # fmt: skip
    model = sg.fit(sg.LinearEmulator(labels), runs)
    np.testing.assert_array_equal(model.envelope.lower, 0.0)
    np.testing.assert_array_equal(model.envelope.upper, 2.0)


def test_ensemble_mean_and_spread(labels):
    runs = make_runs(nonlinear_ctm, n=30)
    ens = sg.Ensemble(lambda k: sg.MLPEmulator(labels, width=8, key=k), 3, key=jr.PRNGKey(0))
    ens = sg.fit(ens, runs, key=jr.PRNGKey(1), steps=40, progress=False)
    x = jnp.asarray(runs["scale"].values[2])
    members = np.stack([np.asarray(ens.member(i)(x)) for i in range(3)])
    np.testing.assert_allclose(ens(x), members.mean(0), rtol=1e-12)
    np.testing.assert_allclose(ens.spread(x), members.std(0), rtol=1e-10)
    np.testing.assert_allclose(ens.member_predictions(x), members, rtol=1e-12)
    assert float(jnp.max(ens.spread(x))) > 0  # members differ (different keys)
    assert ens.hyperparameters["n_members"] == 3
    # gradients flow through the vmapped ensemble
    g = jax.grad(lambda z: ens.pm25(z).sum())(x)
    gm = np.mean(
        [np.asarray(jax.grad(lambda z, i=i: ens.member(i).pm25(z).sum())(x)) for i in range(3)], axis=0
    )
    np.testing.assert_allclose(g, gm, rtol=1e-10)


def test_gridded_emulator_shapes_and_gradient():
    ns, nl, ny, nx = 2, 2, 10, 8
    lab = sg.EmulatorLabels(
        ("species", "level", "row", "col"),
        (("SO2", "NH3"), ("ground", "elevated"), tuple(map(str, range(ny))), tuple(map(str, range(nx)))),
        "kt/yr", ("component", "row", "col"),
        (("SO4", "NH4"), tuple(map(str, range(ny))), tuple(map(str, range(nx)))), "ug m-3", input_kind="emission",
    )  # fmt: skip
    rng = np.random.default_rng(0)
    e0 = rng.uniform(0.1, 1, (ns, nl, ny, nx))
    c0 = rng.uniform(1, 2, (2, ny, nx))
    m = sg.GriddedEmulator(
        lab, x_ref=e0, base=c0, width=6, n_layers=1, modes=(3, 3), pad=4, key=jr.PRNGKey(0)
    )
    m = sg.with_envelope_policy(m, "ignore")
    y = jax.jit(lambda x: m(x))(jnp.asarray(e0))
    assert y.shape == (2, ny, nx) and bool(jnp.all(y >= 0))
    x0 = jnp.asarray(e0 * 1.1)
    w = jnp.asarray(rng.uniform(0, 1, (2, ny, nx)))

    @jax.jit  # compiled once: eagerly, op by op, the FFT layers cost ~3x the CPU time
    def cost(x):
        return jnp.sum(w * m(x))

    g = jax.jit(jax.grad(cost))(x0)
    for idx in [(0, 0, 3, 4), (1, 1, 9, 0), (0, 1, 5, 7)]:
        e = jnp.zeros_like(x0).at[idx].set(1e-5)
        fd = (cost(x0 + e) - cost(x0 - e)) / 2e-5
        np.testing.assert_allclose(g[idx], fd, rtol=1e-5, atol=1e-5 * float(jnp.max(jnp.abs(g))))
    with pytest.raises(ValueError, match="GriddedEmulator needs"):
        sg.GriddedEmulator(sg.EmulatorLabels.from_runs(make_runs(nonlinear_ctm, n=3)), x_ref=e0, base=c0,
                           key=jr.PRNGKey(0))  # fmt: skip


def test_mlp_is_exact_at_base_and_nonnegative(fitted):
    model = fitted["mlp"]
    np.testing.assert_allclose(model(jnp.ones((3, 3))), model.base, rtol=1e-12)
    quiet = sg.with_envelope_policy(model, "ignore")
    far = jax.vmap(quiet)(jnp.asarray(np.random.default_rng(0).uniform(-20, 20, (50, 3, 3))))
    assert bool(jnp.all(far >= 0))


def test_ridge_loo_unpenalised_block():
    rng = np.random.default_rng(7)
    phi = rng.normal(size=(40, 6))
    y = 1.0 + phi @ rng.normal(size=(6, 2)) + 0.1 * rng.normal(size=(40, 2))
    # a huge penalty removes the penalised block; the unpenalised block is then ordinary least squares
    coef, icpt, _ = sg.ridge_loo(phi, y, alphas=[1e12], n_unpenalised=2)
    a = np.concatenate([np.ones((40, 1)), phi[:, :2]], axis=1)
    ols = np.linalg.lstsq(a, y, rcond=None)[0]
    np.testing.assert_allclose(coef[:, 2:], 0, atol=1e-9)
    np.testing.assert_allclose(coef[:, :2], ols[1:].T, rtol=1e-8)
    np.testing.assert_allclose(icpt, ols[0], rtol=1e-8)
    # no penalty: ordinary least squares on all features
    coef0, icpt0, _ = sg.ridge_loo(phi, y, alphas=[0.0], n_unpenalised=2)
    full = np.linalg.lstsq(np.concatenate([np.ones((40, 1)), phi], axis=1), y, rcond=None)[0]
    np.testing.assert_allclose(coef0, full[1:].T, rtol=1e-8)
    np.testing.assert_allclose(icpt0, full[0], rtol=1e-8)


def test_vmap_warns_once_per_batch(fitted):
    model = fitted["linear"]
    xs = jnp.full((7, 3, 3), 2.5)
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        jax.vmap(model)(xs)
        jax.effects_barrier()
    hits = [w for w in rec if issubclass(w.category, sg.OutOfEnvelopeWarning)]
    assert len(hits) == 1 and "0 element(s) below and 63 above" in str(hits[0].message)
