"""Validation metrics against independent numpy/scipy computations; gradient agreement statistics."""

import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest
import scipy.stats
import xarray as xr

import surrogate as sg

COMPONENTS = ("SO4", "OC")


def _runs(x, y):
    return xr.Dataset(
        {"scale": (("run", "source", "species"), x), "pm25": (("run", "receptor", "component"), y.transpose(0, 2, 1))},
        coords={"source": ["a", "b"], "species": ["SO2", "NOx"], "receptor": ["p", "q", "r"],
                "component": list(COMPONENTS)},
    )  # fmt: skip


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_error_metrics_against_loops(seed):
    rng = np.random.default_rng(seed)
    obs = rng.uniform(1, 10, (25, 4))
    pred = obs * rng.uniform(0.8, 1.25, obs.shape)
    m = sg.error_metrics(pred, obs)
    for j in range(4):
        p, o = pred[:, j], obs[:, j]
        assert m["NMB"][j] == pytest.approx(sum(p - o) / sum(o), rel=1e-12)
        assert m["NME"][j] == pytest.approx(sum(abs(p - o)) / sum(o), rel=1e-12)
        assert m["MaxNE"][j] == pytest.approx(max(abs(p - o) / o), rel=1e-12)
        assert m["R"][j] == pytest.approx(scipy.stats.pearsonr(p, o)[0], rel=1e-10)


def test_evaluate_on_linear_truth_and_perturbed_model():
    rng = np.random.default_rng(0)
    jac = rng.uniform(0, 1, (2, 3, 2, 2))
    y0 = rng.uniform(2, 4, (2, 3))

    def f(x):
        return y0 + np.einsum("crsk,nsk->ncr", jac, x - 1)

    x = rng.uniform(0, 2, (30, 2, 2))
    train = _runs(x, f(x))
    labels = sg.EmulatorLabels.from_runs(train)
    model = sg.fit(sg.LinearEmulator(labels), train)
    xt = rng.uniform(0.1, 1.9, (12, 2, 2))
    test = _runs(xt, f(xt))
    ev = sg.evaluate(model, test)
    assert ev["NME"].dims == ("component", "receptor")
    assert list(ev["component"].values) == ["SO4", "OC", "PM25"]
    np.testing.assert_allclose(ev["NME"], 0, atol=1e-10)
    np.testing.assert_allclose(ev["R"], 1, atol=1e-10)
    # a model biased by +5 % everywhere has NMB = NME = MaxNE = 5 % for every component and for PM2.5
    biased = model.__class__.__new__(model.__class__)
    import equinox as eqx

    biased = eqx.tree_at(lambda m: m.base, model, model.base * 1.05)
    biased = eqx.tree_at(lambda m: m.jacobian, biased, model.jacobian * 1.05)
    ev = sg.evaluate(biased, test)
    np.testing.assert_allclose(ev["NMB"], 0.05, rtol=1e-8)
    np.testing.assert_allclose(ev["NME"], 0.05, rtol=1e-8)
    np.testing.assert_allclose(ev["MaxNE"], 0.05, rtol=1e-8)
    # PM2.5 row uses 1.4 OC: check against a direct computation
    pm_o = np.einsum("ncr,c->nr", f(xt), [1.0, 1.4])
    pm_p = np.asarray(jnp.stack([biased.pm25(jnp.asarray(v)) for v in xt]))
    np.testing.assert_allclose(
        ev["NME"].sel(component="PM25"), np.abs(pm_p - pm_o).sum(0) / pm_o.sum(0), rtol=1e-10
    )


def test_agreement_stats_against_numpy():
    rng = np.random.default_rng(3)
    a = rng.normal(size=200)
    e = 1.1 * a + 0.05 * rng.normal(size=200)
    s = sg.agreement_stats(e, a)
    fit = np.polyfit(a, e, 1)
    assert s["slope"] == pytest.approx(fit[0], rel=1e-10)
    assert s["r"] == pytest.approx(np.corrcoef(a, e)[0, 1], rel=1e-12)
    assert s["r2"] == pytest.approx(1 - np.sum((e - a) ** 2) / np.sum((a - a.mean()) ** 2), rel=1e-12)
    assert s["nrmse"] == pytest.approx(np.sqrt(np.mean((e - a) ** 2)) / np.abs(a).max(), rel=1e-12)
    # R^2 about the 1:1 line penalises a biased slope even at perfect correlation
    assert sg.agreement_stats(2 * a, a)["r2"] < 0.5 and sg.agreement_stats(2 * a, a)["r"] == pytest.approx(
        1.0
    )


def test_top_mass_mask():
    s = np.array([5.0, -3.0, 1.0, 0.5, 0.5])
    m = sg.top_mass_mask(s, 0.8)  # |s| total 10: 5 + 3 = 8 reaches 80 %
    np.testing.assert_array_equal(m, [True, True, False, False, False])
    assert sg.top_mass_mask(s, 1.0).all()


def test_gradient_agreement_exact_for_linear_model():
    rng = np.random.default_rng(1)
    jac = rng.normal(size=(2, 3, 2, 2))

    def f(x):
        return 5 + np.einsum("crsk,nsk->ncr", jac, x - 1)

    x = rng.uniform(0, 2, (20, 2, 2))
    model = sg.fit(sg.LinearEmulator(sg.EmulatorLabels.from_runs(_runs(x, f(x)))), _runs(x, f(x)))
    w = rng.uniform(0, 1, (2, 3))
    states = rng.uniform(0.2, 1.8, (4, 2, 2))
    exact = np.broadcast_to(np.einsum("cr,crsk->sk", w, jac), states.shape)
    adj = xr.Dataset(
        {"scale": (("run", "source", "species"), states), "sensitivity": (("run", "source", "species"), exact),
         "cost_weights": (("component", "receptor"), w)},
    )  # fmt: skip
    ga = sg.gradient_agreement(model, adj)
    assert float(ga["source_r2_pooled"]) == pytest.approx(1.0, abs=1e-10)
    assert float(ga["source_slope_pooled"]) == pytest.approx(1.0, abs=1e-10)
    np.testing.assert_allclose(ga["emulator"], exact, rtol=1e-9, atol=1e-12)
    with pytest.raises(ValueError, match="sensitivity"):
        sg.gradient_agreement(model, adj.drop_vars("sensitivity"))


def test_gradient_agreement_cell_level_and_source_chain():
    ny, nx = 6, 5
    lab = sg.EmulatorLabels(
        ("species", "level", "row", "col"), (("SO2",), ("ground",), tuple(map(str, range(ny))), tuple(map(str, range(nx)))),
        "kt/yr", ("component", "row", "col"), (("SO4",), tuple(map(str, range(ny))), tuple(map(str, range(nx)))),
        "ug m-3", input_kind="emission",
    )  # fmt: skip
    rng = np.random.default_rng(0)
    e0 = rng.uniform(0.5, 1, (1, 1, ny, nx))
    m = sg.GriddedEmulator(lab, x_ref=e0, base=np.ones((1, ny, nx)), width=4, n_layers=1, modes=(2, 2), pad=2,
                           key=jr.PRNGKey(0))  # fmt: skip
    m = sg.with_envelope_policy(m, "ignore")
    w = rng.uniform(0, 1, (1, ny, nx))
    states = e0[None] * rng.uniform(0.5, 1.5, (3, 1, 1, 1, 1))
    g = sg.emulator_gradients(m, states, w)
    adj = xr.Dataset(
        {"emissions": (("run", "species", "level", "row", "col"), states),
         "sensitivity": (("run", "species", "level", "row", "col"), g * 1.0),
         "cost_weights": (("component", "row", "col"), w)},
    )  # fmt: skip
    patterns = rng.uniform(0, 1, (2, 1, 1, ny, nx))  # two "sources"
    ga = sg.gradient_agreement(m, adj, source_patterns=patterns)
    assert float(ga["cell_r2_pooled"]) == pytest.approx(1.0, abs=1e-12)
    assert float(ga["source_r2_pooled"]) == pytest.approx(1.0, abs=1e-12)
    # halving the adjoint: slope of emulator on adjoint = 2
    adj["sensitivity"] = adj["sensitivity"] * 0.5
    ga = sg.gradient_agreement(m, adj, source_patterns=patterns)
    assert float(ga["cell_slope_pooled"]) == pytest.approx(2.0, rel=1e-9)
