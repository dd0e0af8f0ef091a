"""Training: resumable checkpoints reproduce uninterrupted training, early stopping, keys, the Sobolev
term, and input validation."""

import os

import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest
import xarray as xr

import surrogate as sg

SOURCES = ("a", "b")
SPECIES = ("NOx", "NH3")
COMPONENTS = ("NO3", "NH4", "OC")


def ctm(x):
    """Analytic nonlinear stand-in CTM: y[run, component, receptor] from x[run, source, species]."""
    nox = x[:, :, 0] @ np.array([1.0, 0.5])
    nh3 = x[:, :, 1] @ np.array([0.4, 1.0])
    no3 = nox * nh3 / (0.5 + nox + nh3)
    nh4 = 0.3 * nh3 + 0.2 * no3
    oc = 1.0 + 0.1 * x[:, 0, 0]
    y = np.stack([no3, nh4, oc], axis=1)  # [run, component]
    return np.stack([y, 1.3 * y], axis=2)  # two receptors


def grad_ctm(x, w):
    """Exact gradient of J = sum(w * y) w.r.t. x (by jax on the numpy formula translated to jnp)."""

    def f(xi):
        nox = xi[:, 0] @ jnp.array([1.0, 0.5])
        nh3 = xi[:, 1] @ jnp.array([0.4, 1.0])
        no3 = nox * nh3 / (0.5 + nox + nh3)
        y = jnp.stack([no3, 0.3 * nh3 + 0.2 * no3, 1.0 + 0.1 * xi[0, 0]])
        return jnp.sum(w * jnp.stack([y, 1.3 * y], axis=1))

    return np.array(jax.vmap(jax.grad(f))(jnp.asarray(x)))


def runs(n=40, seed=0, with_adjoint=False):
    x = np.random.default_rng(seed).uniform(0.05, 2.0, (n, 2, 2))
    y = ctm(x)
    ds = xr.Dataset(
        {"scale": (("run", "source", "species"), x), "pm25": (("run", "receptor", "component"), y.transpose(0, 2, 1))},
        coords={"source": list(SOURCES), "species": list(SPECIES), "receptor": ["p", "q"],
                "component": list(COMPONENTS)},
    )  # fmt: skip
    if with_adjoint:
        w = np.ones((3, 2)) * np.array([1.0, 1.0, 1.4])[:, None] / 2
        g = grad_ctm(x, w)
        g[n // 2 :] = np.nan  # only half of the runs have an adjoint
        ds["sensitivity"] = (("run", "source", "species"), g)
        ds["cost_weights"] = (("component", "receptor"), w)
    return ds


@pytest.fixture(scope="module")
def labels():
    return sg.EmulatorLabels.from_runs(runs(3))


def _mlp(labels):
    return sg.MLPEmulator(labels, width=12, depth=2, key=jr.PRNGKey(0))


def test_resume_equals_uninterrupted(labels, tmp_path):
    data = runs()
    kw = dict(key=jr.PRNGKey(7), steps=60, eval_every=10, batch_size=16, progress=False, patience=None)
    full, hist_full = sg.fit(_mlp(labels), data, return_history=True, **kw)
    ck = tmp_path / "ckpt.bin"
    part = sg.fit(_mlp(labels), data, checkpoint=ck, max_steps=25, checkpoint_every=10, **kw)
    assert ck.exists()
    assert [p.name for p in tmp_path.iterdir()] == ["ckpt.bin"]  # atomic: no temporary files left
    # the interrupted model differs from the finished one ...
    x = jnp.asarray(data["scale"].values[0])
    assert not np.allclose(part(x), full(x), rtol=1e-10)
    resumed, hist = sg.fit(_mlp(labels), data, checkpoint=ck, return_history=True, **kw)
    # ... and the resumed training reproduces the uninterrupted one
    assert hist["steps_done"] == hist_full["steps_done"] == 60
    leaves_a = jax.tree.leaves(resumed)
    leaves_b = jax.tree.leaves(full)
    for a, b in zip(leaves_a, leaves_b, strict=True):
        if hasattr(a, "shape"):
            np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-14)


def test_checkpoint_from_other_training_is_refused(labels, tmp_path):
    data = runs()
    ck = tmp_path / "ckpt.bin"
    sg.fit(_mlp(labels), data, key=jr.PRNGKey(0), steps=10, checkpoint=ck, progress=False)
    with pytest.raises(ValueError, match="different training"):
        sg.fit(_mlp(labels), data, key=jr.PRNGKey(1), steps=10, checkpoint=ck, progress=False)


def test_same_key_same_result_different_key_differs(labels):
    data = runs()
    kw = dict(steps=20, progress=False)
    a = sg.fit(_mlp(labels), data, key=jr.PRNGKey(3), **kw)
    b = sg.fit(_mlp(labels), data, key=jr.PRNGKey(3), **kw)
    c = sg.fit(_mlp(labels), data, key=jr.PRNGKey(4), **kw)
    x = jnp.asarray(data["scale"].values[1])
    np.testing.assert_array_equal(a(x), b(x))
    assert not np.array_equal(a(x), c(x))


def test_training_reduces_heldout_error_below_linear(labels):
    data, test = runs(80, seed=0), runs(30, seed=1)
    lin = sg.fit(sg.LinearEmulator(labels), data)
    mlp = sg.fit(_mlp(labels), data, key=jr.PRNGKey(0), steps=1500, learning_rate=1e-2, progress=False)
    e_lin = float(sg.evaluate(lin, test)["NME"].sel(component="PM25").mean())
    e_mlp = float(sg.evaluate(mlp, test)["NME"].sel(component="PM25").mean())
    assert e_mlp < 0.5 * e_lin


def test_early_stopping_returns_best_validation_model(labels):
    data = runs(30)
    model, hist = sg.fit(
        _mlp(labels), data, key=jr.PRNGKey(0), steps=400, learning_rate=3e-2, eval_every=5, patience=50,
        progress=False, return_history=True,
    )  # fmt: skip
    best = int(np.argmin(hist["val_loss"]))
    assert hist["best_val_loss"] == pytest.approx(min(hist["val_loss"]))
    if hist["stopped_early"]:
        # stopped `patience` steps after the best evaluation
        assert hist["steps_done"] - hist["step"][best] <= 50 + 5
    assert hist["steps_done"] <= 400


def test_sobolev_term_improves_gradients(labels):
    data = runs(24, with_adjoint=True)
    probe = runs(20, seed=5, with_adjoint=True)
    probe["sensitivity"] = (
        ("run", "source", "species"),
        grad_ctm(probe["scale"].values, probe["cost_weights"].values),
    )
    kw = dict(key=jr.PRNGKey(0), steps=600, learning_rate=1e-2, progress=False, patience=None)
    plain = sg.fit(_mlp(labels), data, **kw)
    sob = sg.fit(_mlp(labels), data, sobolev_weight=1.0, **kw)
    r_plain = sg.gradient_agreement(plain, probe)["source_nrmse_pooled"]
    r_sob = sg.gradient_agreement(sob, probe)["source_nrmse_pooled"]
    assert float(r_sob) < float(r_plain)


def test_fit_input_errors(labels):
    data = runs(10)
    with pytest.raises(ValueError, match="key="):
        sg.fit(_mlp(labels), data)
    with pytest.raises(ValueError, match="sensitivities"):
        sg.fit(_mlp(labels), data, key=jr.PRNGKey(0), sobolev_weight=1.0, progress=False)
    with pytest.raises(ValueError, match="no inputs variable"):
        sg.fit(sg.LinearEmulator(labels), data.rename(scale="s"))
    bad = data.assign_coords(species=["SO2", "NH3"])
    with pytest.raises(ValueError, match="labels along 'species'"):
        sg.fit(sg.LinearEmulator(labels), bad)
    with pytest.raises(TypeError, match="xarray.Dataset"):
        sg.fit(sg.LinearEmulator(labels), {"scale": 1})


def test_gridded_training_runs_and_learns():
    ny, nx = 8, 8
    lab = sg.EmulatorLabels(
        ("species", "level", "row", "col"), (("SO2",), ("ground",), tuple(map(str, range(ny))), tuple(map(str, range(nx)))),
        "kt/yr", ("component", "row", "col"), (("SO4",), tuple(map(str, range(ny))), tuple(map(str, range(nx)))),
        "ug m-3", input_kind="emission",
    )  # fmt: skip
    rng = np.random.default_rng(0)
    e0 = rng.uniform(0.5, 1.0, (1, 1, ny, nx))
    kernel = np.exp(-0.5 * ((np.arange(ny)[:, None] - 4) ** 2 + (np.arange(nx)[None] - 4) ** 2))

    def transport(e):  # linear smoothing by FFT convolution plus a saturating chemistry
        f = np.real(np.fft.ifft2(np.fft.fft2(e[:, 0, 0]) * np.fft.fft2(np.fft.ifftshift(kernel))[None]))
        return (f / (1 + 0.05 * f))[:, None]

    e = e0[None] * rng.uniform(0, 2, (40, 1, 1, 1, 1)) * rng.uniform(0.8, 1.2, (40, 1, 1, ny, nx))
    c = transport(e)
    c0 = transport(e0[None])[0]
    ds = xr.Dataset(
        {
            "emissions": (("run", "species", "level", "row", "col"), e),
            "conc": (("run", "component", "row", "col"), c),
        },
        coords={"species": ["SO2"], "level": ["ground"], "component": ["SO4"]},
    )
    m = sg.GriddedEmulator(
        lab, x_ref=e0, base=c0, width=8, n_layers=1, modes=(3, 3), pad=4, key=jr.PRNGKey(0)
    )
    before = float(sg.evaluate(m, ds)["NME"].mean())
    m = sg.fit(m, ds, key=jr.PRNGKey(1), steps=300, learning_rate=1e-2, progress=False)
    after = float(sg.evaluate(m, ds)["NME"].mean())
    assert after < 0.3 * before
    assert not os.path.exists("ckpt.bin")


def test_per_run_cost_weights(labels):
    """`cost_weights` with a `run` dim: the same weights repeated per run fit exactly as shared weights do, and
    adjoints of a different cost per run (one receptor each) are used with their own weights."""
    data = runs(24, with_adjoint=True)
    kw = dict(key=jr.PRNGKey(0), steps=150, learning_rate=1e-2, progress=False, patience=None, sobolev_weight=1.0)
    shared = sg.fit(_mlp(labels), data, **kw)
    w = data["cost_weights"]
    per_run = data.assign(cost_weights=w.expand_dims(run=data.sizes["run"]).transpose("run", ...))
    same = sg.fit(_mlp(labels), per_run, **kw)
    np.testing.assert_allclose(same(jnp.ones((2, 2))), shared(jnp.ones((2, 2))), rtol=1e-12)
    # one receptor per run: the adjoint of J_r = sum_c w_c y[c, r], r alternating; the fit must use w per run
    wr = np.zeros((24, 3, 2))
    wr[np.arange(24), :, np.arange(24) % 2] = np.array([1.0, 1.0, 1.4])
    g = np.stack([grad_ctm(data["scale"].values[i : i + 1], wr[i])[0] for i in range(24)])
    mixed = data.assign(sensitivity=(("run", "source", "species"), g),
                        cost_weights=(("run", "component", "receptor"), wr))  # fmt: skip
    probe = runs(20, seed=5)
    pw = np.ones((3, 2)) * np.array([1.0, 1.0, 1.4])[:, None] / 2
    probe["sensitivity"] = (("run", "source", "species"), grad_ctm(probe["scale"].values, pw))
    probe["cost_weights"] = (("component", "receptor"), pw)
    kw["steps"] = 600
    plain = sg.fit(_mlp(labels), data.drop_vars(["sensitivity", "cost_weights"]), **{**kw, "sobolev_weight": 0.0})
    sob = sg.fit(_mlp(labels), mixed, **kw)
    nrmse = [float(sg.gradient_agreement(m, probe)["source_nrmse_pooled"]) for m in (plain, sob)]
    assert nrmse[1] < nrmse[0]
    with pytest.raises(ValueError, match="cost_weights"):
        sg.fit(_mlp(labels), data.assign(cost_weights=(("component", "x"), np.ones((3, 2)))), **kw)


def test_linear_underdetermined_design_warns():
    """Two runs that scale every input together (a base case and a scenario, as a user with two real CTM runs has)
    cannot tell the sources apart: the minimum-norm fit splits the response evenly and must say so. A full-rank
    design fits silently and equals an independent numpy least-squares fit."""
    ds = runs(2)
    ds["scale"] = ds["scale"].copy(data=np.stack([np.ones((2, 2)), np.full((2, 2), 0.7)]))
    ds["pm25"] = ds["pm25"].copy(data=ctm(ds["scale"].values).transpose(0, 2, 1))
    with pytest.warns(UserWarning, match="determine only 2 of the 5 parameters") as record:
        m = sg.fit(sg.LinearEmulator(sg.EmulatorLabels.from_runs(ds)), ds)
    # the warning points at the user's call (this file), whatever wraps surrogate's functions (here the test
    # run's jaxtyping/beartype checks, which a fixed stacklevel miscounted)
    assert [w.filename for w in record] == [__file__]
    jac = np.asarray(m.jacobian)  # [output, source x species]
    np.testing.assert_allclose(jac, jac[:, :1] * np.ones(4), rtol=1e-12)  # the even split the warning names
    full = runs(12)
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        mf = sg.fit(sg.LinearEmulator(sg.EmulatorLabels.from_runs(full)), full)
    x = full["scale"].values.reshape(12, -1) - np.asarray(mf.x_ref).reshape(-1)
    a = np.concatenate([np.ones((12, 1)), x], axis=1)
    labels = sg.EmulatorLabels.from_runs(full)
    y = full["pm25"].transpose("run", *labels.output_dims).values.reshape(12, -1)  # the emulator's output order
    ref = np.linalg.lstsq(a, y, rcond=None)[0]
    np.testing.assert_allclose(np.asarray(mf.jacobian), ref[1:].T, rtol=1e-8, atol=1e-12)


def test_polynomial_on_too_few_runs_warns_and_is_the_linear_interpolant():
    """2 sources x 2 species: 5 unpenalised parameters (intercept + 4 linear terms). Five runs determine them
    exactly and leave nothing for the interactions, which must then be zero (rounding noise in the partialled-
    out features used to become O(1) interaction coefficients): the fit equals numpy's interpolating linear
    least squares, and says so. Three runs cannot even determine the linear terms. Twelve fit silently."""
    import warnings

    ds = runs(5, seed=3)
    labels = sg.EmulatorLabels.from_runs(ds)
    with pytest.warns(UserWarning, match="only just determine its 5 unpenalised parameters") as record:
        m = sg.fit(sg.PolynomialEmulator(labels), ds)
    assert [w.filename for w in record] == [__file__]
    assert "interaction terms, which are zero" in str(record[0].message)
    np.testing.assert_array_equal(np.asarray(m.coef)[:, 4:], 0.0)
    # off the training runs, the prediction is the plane through the five runs (independent numpy solve)
    x = ds["scale"].values.reshape(5, -1) - 1.0
    y = ds["pm25"].transpose("run", *labels.output_dims).values.reshape(5, -1)
    plane = np.linalg.solve(np.concatenate([np.ones((5, 1)), x], axis=1), y)
    probe = np.full((2, 2), 0.9)
    expect = plane[0] + (probe.reshape(-1) - 1.0) @ plane[1:]
    got = np.asarray(m.with_envelope_policy("ignore")(probe)).reshape(-1)
    np.testing.assert_allclose(got, expect, rtol=1e-8, atol=1e-10)

    few = runs(3, seed=4)
    with pytest.warns(UserWarning, match="determine only 3 of its 5 unpenalised parameters") as record:
        sg.fit(sg.PolynomialEmulator(labels), few)
    assert "Add runs" in str(record[0].message) and record[0].filename == __file__
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        sg.fit(sg.PolynomialEmulator(labels), runs(12))


def test_mlp_on_fewer_runs_than_inputs_warns(labels):
    """Three runs for 4 inputs span at most 3 input directions: the MLP's sensitivities along the fourth are
    not identified by the runs, and fit says so (pointing at this file). A full-rank design does not warn."""
    import warnings

    kw = {"method": sg.Adam(steps=5, eval_every=5), "key": jr.PRNGKey(1), "progress": False}
    with pytest.warns(UserWarning, match="span only 3 of the 4 input directions") as record:
        sg.fit(_mlp(labels), runs(3, seed=5), **kw)
    assert [w.filename for w in record] == [__file__]
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        sg.fit(_mlp(labels), runs(12, seed=5), **kw)
