"""The physically structured emulator: structural zeros by differentiation (exact zeros), non-negativity,
gradients against finite differences, fit / save / load, and use in a Chain-like composition."""

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest
import xarray as xr

import surrogate as sg

SPECIES = ("SO2", "NOx", "NH3", "VOC", "BC", "OC", "PM_other")
COMPONENTS = ("SO4", "NO3", "NH4", "BC", "OC", "PM_other")
SOURCES = ("a", "b", "c")
RECEPTORS = ("p", "q")


def _truth(x):
    """A small toy 'CTM' with the structure: primary linear, sulfate from SO2 with oxidants, SNA partitioning."""
    x = np.asarray(x)
    t = np.array([[0.6, 0.3, 0.1], [0.2, 0.5, 0.3]])  # transport [receptor, source]
    seen = np.einsum("rg,ngk->nrk", t, x)  # [n, receptor, species]
    so2, nox, nh3, voc = (seen[..., i] for i in range(4))
    ox = 1.0 / (1.0 + (nox / (1.5 * (voc + 0.5))) ** 1.5)
    so4 = 2.0 * so2 * (0.6 + 0.4 * ox)
    tn, ta = 0.03 * nox * ox, 0.06 * nh3
    s2 = 2 * so4 / 96.06
    bound = np.minimum(ta, s2) * 0.98
    free = ta - bound
    n = free * tn / (free + tn + 0.005)
    prim = np.stack([0.3 * seen[..., 4], 0.5 * seen[..., 5] + 0.1, 0.8 * seen[..., 6]], axis=1)
    return np.concatenate([np.stack([so4, 62 * n, 18 * (bound + n)], axis=1), prim], axis=1)  # [n, comp, rec]


def _runs(x):
    y = _truth(x)
    return xr.Dataset(
        {"scale": (("run", "source", "species"), x), "pm25": (("run", "receptor", "component"), y.transpose(0, 2, 1))},
        coords={"source": list(SOURCES), "species": list(SPECIES), "receptor": list(RECEPTORS),
                "component": list(COMPONENTS)},
    )  # fmt: skip


@pytest.fixture(scope="module")
def fitted():
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 2, (60, len(SOURCES), len(SPECIES)))
    x[0] = 1.0
    runs = _runs(x)
    m = sg.StructuredEmulator(sg.EmulatorLabels.from_runs(runs), width=8, key=jr.PRNGKey(0))
    return sg.fit(m, runs, key=jr.PRNGKey(1), steps=200, progress=False), runs


@pytest.fixture(scope="module")
def random_model():
    """An unfitted structured emulator with every parameter random (the MLPs' last layers too), so that the
    structure, not a fit, is what the tests see."""
    lab = sg.EmulatorLabels.from_runs(_runs(np.ones((1, len(SOURCES), len(SPECIES)))))
    m = sg.with_envelope_policy(sg.StructuredEmulator(lab, width=8, key=jr.PRNGKey(0)), "ignore")
    params, static = eqx.partition(m, eqx.is_inexact_array)
    leaves, tree = jax.tree.flatten(params)
    keys = jr.split(jr.PRNGKey(5), len(leaves))
    leaves = [p + 0.5 * jr.normal(k, p.shape) for p, k in zip(leaves, keys, strict=True)]
    m = eqx.combine(jax.tree.unflatten(tree, leaves), static)
    return eqx.tree_at(lambda q: q.x_ref, m, jnp.ones(lab.input_shape))


def test_structural_zeros_exact_by_differentiation(random_model):
    m = random_model
    zero = sg.structural_zeros(SPECIES, COMPONENTS)
    rng = np.random.default_rng(1)
    jacfwd, jacrev = jax.jit(jax.jacfwd(m._predict)), jax.jit(jax.jacrev(m._predict))
    x0 = jnp.ones(m.labels.input_shape)
    j0 = np.asarray(jacfwd(x0))
    for x in rng.uniform(0.05, 2, (3, len(SOURCES), len(SPECIES))):
        jac = np.asarray(jacfwd(jnp.asarray(x)))  # [comp, rec, source, species]
        rev = np.asarray(jacrev(jnp.asarray(x)))
        peak = np.abs(jac).max(axis=(1, 2))  # [comp, species]
        assert np.all(peak[zero] == 0.0)  # exactly zero, not small
        assert np.all(np.abs(rev).max(axis=(1, 2))[zero] == 0.0)
        # and the allowed dependencies are real (nonzero) for the precursors of nitrate and ammonium
        for c in ("NO3", "NH4"):
            for s in ("SO2", "NOx", "NH3"):
                assert peak[COMPONENTS.index(c), SPECIES.index(s)] > 0
        # primary: affine, no cross terms (the Jacobian is the same at every state)
        for c in ("BC", "OC", "PM_other"):
            np.testing.assert_allclose(jac[COMPONENTS.index(c)], j0[COMPONENTS.index(c)], rtol=0, atol=0)
    sp = sg.spurious_sensitivity(m, rng.uniform(0, 2, (5, len(SOURCES), len(SPECIES))))
    assert float(sp["spurious_max"]) == 0.0


def test_nonnegative_and_gradients_match_finite_differences(random_model):
    m = random_model
    rng = np.random.default_rng(2)
    xs = rng.uniform(0, 2, (50, len(SOURCES), len(SPECIES)))
    xs[:5] = 0.0  # all emissions off
    xs[5:10, :, :4] *= 1e-3
    y = np.asarray(jax.vmap(m._predict)(jnp.asarray(xs)))
    assert np.all(y >= 0) and np.all(np.isfinite(y))
    w = jnp.asarray(rng.uniform(0, 1, (len(COMPONENTS), len(RECEPTORS))))

    @jax.jit
    def cost(x):
        return jnp.sum(w * m._predict(x))

    x0 = jnp.asarray(rng.uniform(0.3, 1.7, (len(SOURCES), len(SPECIES))))
    g = np.asarray(jax.grad(cost)(x0))
    h = 1e-6
    fd = np.zeros_like(g)
    for i in range(len(SOURCES)):
        for k in range(len(SPECIES)):
            e = np.zeros(g.shape)
            e[i, k] = h
            fd[i, k] = (float(cost(x0 + e)) - float(cost(x0 - e))) / (2 * h)
    np.testing.assert_allclose(g, fd, rtol=1e-6, atol=1e-9 * np.abs(g).max())


def test_tied_backgrounds_vanish_with_their_precursor_and_leave_the_reference_state_alone(random_model):
    """Fully tied backgrounds (w = 1): no SO2 anywhere -> exactly no sulfate; no NH3 anywhere -> exactly no
    ammonium and no nitrate; untied (w = 0) the backgrounds stay. The tie never changes the reference state."""
    m = random_model
    full = eqx.tree_at(lambda q: q.background_tie, m, jnp.full(m.background_tie.shape, 50.0))  # sigmoid = 1.0
    free = eqx.tree_at(lambda q: q.background_tie, m, jnp.full(m.background_tie.shape, -50.0))
    rng = np.random.default_rng(4)
    x = rng.uniform(0.2, 2, (len(SOURCES), len(SPECIES)))
    no_so2, no_nh3 = x.copy(), x.copy()
    no_so2[:, SPECIES.index("SO2")] = 0.0
    no_nh3[:, SPECIES.index("NH3")] = 0.0
    c = {k: COMPONENTS.index(k) for k in ("SO4", "NO3", "NH4")}
    y = np.asarray(full._predict(jnp.asarray(no_so2)))
    assert np.all(y[c["SO4"]] == 0.0)
    y = np.asarray(full._predict(jnp.asarray(no_nh3)))
    assert np.all(y[c["NH4"]] == 0.0) and np.all(y[c["NO3"]] == 0.0)
    assert np.all(np.asarray(full._predict(jnp.asarray(x)))[[c["SO4"], c["NO3"], c["NH4"]]] > 0)
    assert np.all(np.asarray(free._predict(jnp.asarray(no_so2)))[c["SO4"]] > 0)
    assert np.all(np.asarray(free._predict(jnp.asarray(no_nh3)))[c["NH4"]] > 0)
    # at the reference state every seen precursor is 1: the tie leaves the outputs as they are
    for tie in (full, free, m):
        np.testing.assert_allclose(np.asarray(tie._predict(m.x_ref)), np.asarray(m._predict(m.x_ref)), rtol=1e-12)
    assert not np.allclose(np.asarray(full._predict(jnp.asarray(x))), np.asarray(free._predict(jnp.asarray(x))))


@pytest.mark.slow
def test_fit_accuracy_save_load_and_ensemble(fitted, tmp_path):
    m, runs = fitted
    rng = np.random.default_rng(3)
    test = _runs(rng.uniform(0.1, 1.9, (20, len(SOURCES), len(SPECIES))))
    ev = sg.evaluate(m, test)
    # primary components are exact (closed-form non-negative least squares on a linear truth)
    for c in ("BC", "OC", "PM_other"):
        assert float(ev["NME"].sel(component=c).max()) < 1e-6
    assert float(ev["NME"].sel(component="PM25").max()) < 0.05
    assert float(ev["spurious_max"]) == 0.0
    path = sg.save(tmp_path / "structured.eqx", m)
    back = sg.load(path)
    assert isinstance(back, sg.StructuredEmulator)
    x = jnp.asarray(test["scale"].values[0])
    np.testing.assert_array_equal(np.asarray(back(x)), np.asarray(m(x)))
    np.testing.assert_array_equal(np.asarray(sg.load(path, like=m).base), np.asarray(m.base))
    ens = sg.Ensemble([m, m])
    np.testing.assert_allclose(np.asarray(ens(x)), np.asarray(m(x)), rtol=1e-14)


def test_roles_and_clear_errors():
    lab = sg.EmulatorLabels(
        ("source", "species"), (SOURCES, ("S", "N", "A", "BC")), "1",
        ("component", "receptor"), (("SO4", "NO3", "NH4", "BC"), RECEPTORS), "ug m-3",
    )  # fmt: skip
    with pytest.raises(ValueError, match="no SO2"):
        sg.StructuredEmulator(lab, key=jr.PRNGKey(0))
    m = sg.StructuredEmulator(lab, species_roles={"S": "SO2", "N": "NOx", "A": "NH3"}, key=jr.PRNGKey(0))
    assert m.hyperparameters["species_roles"] == {"S": "SO2", "N": "NOX", "A": "NH3", "BC": "BC"}
    lab2 = sg.EmulatorLabels(
        ("source", "species"), (SOURCES, SPECIES), "1",
        ("component", "receptor"), (("SO4", "NO3", "NH4", "DUST"), RECEPTORS), "ug m-3",
    )  # fmt: skip
    with pytest.raises(ValueError, match="DUST"):
        sg.StructuredEmulator(lab2, key=jr.PRNGKey(0))


def test_works_in_the_chain_as_an_emulator(fitted):
    """What diffmrio.chain.Chain needs from an emulator: labels, x_ref, base, __call__, differentiable."""
    m, _ = fitted
    assert m.base.shape == m.labels.output_shape
    np.testing.assert_allclose(np.asarray(m.base), np.asarray(m(m.x_ref)), rtol=1e-14)
    g = jax.grad(lambda s: jnp.sum(m.pm25(s)))(m.x_ref)
    assert g.shape == m.labels.input_shape and np.all(np.isfinite(np.asarray(g)))
