"""The adjoint-replication experiment: the reference CTM's adjoints (of J and of national deaths) against finite
differences of the forward model, the downscaled chain against them, and `compute` at a tiny size (every emulator
family's numbers against numpy, the Sobolev training sets) and `report` (its tables against the dataset)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import xarray as xr

from experiments.adjoint_replication import World, deaths_adjoints

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def world():
    return World(n_days=0.5)  # a short spin-up (6 steps a season): the identities hold for any length


def test_deaths_adjoint_matches_central_differences(world):
    rng = np.random.default_rng(0)
    x = rng.uniform(0.5, 1.5, size=(6, 7))
    _, g = world.adjoint(x[None], world.deaths)
    h = 1e-4

    def deaths(s):
        return float(world.deaths(jnp.asarray(world.run(s[None], progress=False)[0])))

    for r, k in ((1, 0), (3, 2), (0, 5)):  # SO2, NOx and primary PM in three regions
        e = np.zeros_like(x)
        e[r, k] = h
        fd = (deaths(x + e) - deaths(x - e)) / (2 * h)
        np.testing.assert_allclose(g[0, r, k], fd, rtol=1e-5, atol=1e-6 * np.abs(g).max())


def test_downscaled_chain_tracks_the_deaths_adjoint(world, tmp_path):
    """A perfect receptor-level emulator fed through the downscaler gives nearly the CTM's deaths gradient; the
    result is cached and reused."""
    ones = np.ones((1, 6, 7))
    c0 = world.run(ones, progress=False)
    rng = np.random.default_rng(1)
    runs = xr.Dataset({
        "x_adj": (("adj", "source", "species"), rng.uniform(0.3, 1.7, size=(1, 6, 7))),
        "x_fadj": (("fadj", "source", "species"), rng.uniform(0.3, 1.7, size=(1, 6, 7))),
        "c_train": (("train", "component", "row", "col"), c0),
    })  # fmt: skip
    ds = deaths_adjoints(world, tmp_path, runs)
    for k in ("adj", "fadj"):
        a, d = ds[f"g_deaths_{k}"].values.ravel(), ds[f"g_down_{k}"].values.ravel()
        assert 1 - np.sum((d - a) ** 2) / np.sum((a - a.mean()) ** 2) > 0.98
        assert not np.allclose(a, d, rtol=1e-6)  # the downscaler is an approximation, not the CTM itself
    base = float(world.deaths(jnp.asarray(c0[0])))
    assert ds.attrs["base_deaths"] == pytest.approx(base, rel=1e-12) and base > 0
    cache = tmp_path / "ctm_deaths_adjoints.nc"
    stamp = cache.stat().st_mtime_ns
    again = deaths_adjoints(world, tmp_path, runs)  # same states: read from the cache, not recomputed
    assert cache.stat().st_mtime_ns == stamp
    xr.testing.assert_identical(again, ds)
    runs["x_adj"] = runs["x_adj"] * 0.9  # other states: recomputed
    assert not np.allclose(deaths_adjoints(world, tmp_path, runs)["g_deaths_adj"], ds["g_deaths_adj"])


def test_receptor_adjoints_sum_to_the_population_weighted_adjoint(world, tmp_path):
    """J = sum_r share_r PM_r: the six one-receptor adjoints at one state, weighted by population share, give
    the adjoint of J; each run's cost weights pick its receptor."""
    from experiments.adjoint_replication import receptor_adjoints

    x = np.random.default_rng(2).uniform(0.5, 1.5, size=(6, 7))
    x_train = np.concatenate([np.ones((1, 6, 7)), np.repeat(x[None], 6, axis=0)])  # base + the state six times
    runs = xr.Dataset({"x_train": (("train", "source", "species"), x_train),
                       "gt_src": (("train_adj", "source", "species"), np.zeros((0, 6, 7)))})  # fmt: skip
    ds = receptor_adjoints(world, tmp_path, runs, 6)
    np.testing.assert_array_equal(ds["train_index"].values, np.arange(1, 7))
    combined = np.einsum("r,rgs->gs", world.pop_share, ds["sensitivity"].values)
    np.testing.assert_allclose(combined, world.adjoint(x[None])[1][0], rtol=1e-9)
    w = ds["cost_weights"].values  # [state, component, receptor]
    np.testing.assert_array_equal(np.argmax(w.sum(axis=1), axis=1), np.arange(6))
    with pytest.raises(ValueError, match="training states are left"):
        receptor_adjoints(world, tmp_path, runs, 7)


def test_source_patterns_and_cost_weights_against_numpy(world):
    """The per-source emission patterns and the cost weights, against direct numpy formulas: patterns times the
    scaling factors give the gridded emissions, and J = sum(cell_w * C) is the population-share-weighted mean of
    the regions' population-weighted PM2.5."""
    rng = np.random.default_rng(3)
    e_reg, alloc = world.e_reg, np.asarray(world.dom.allocation)  # [species, region, level], [region, level, y, x]
    np.testing.assert_array_equal(world.patterns, np.einsum("sgl,glyx->gslyx", e_reg, alloc))
    x = rng.uniform(0.0, 2.0, size=(6, 7))
    e = np.einsum("gs,sgl,glyx->slyx", x, e_reg, alloc)
    np.testing.assert_allclose(world.emissions(x), e, rtol=1e-12)
    frac, pop = np.asarray(world.dom.region_fraction), np.asarray(world.dom.population)
    c = rng.uniform(0.0, 30.0, size=(len(world.components), *pop.shape))
    pm = np.einsum("c,cyx->yx", world.m, c)
    pw = np.array([(pm * f * pop).sum() / (f * pop).sum() for f in frac])  # each region's pop-weighted PM2.5
    share = np.array([(f * pop).sum() for f in frac]) / (frac * pop).sum()
    np.testing.assert_allclose(world.pop_share, share, rtol=1e-12)
    np.testing.assert_allclose(np.sum(world.cell_w * c), share @ pw, rtol=1e-12)
    np.testing.assert_allclose(np.einsum("cr,rc->", world.receptor_cost_w, world.receptors(c)), share @ pw, rtol=1e-12)


def test_compute_refuses_sizes_without_room_for_the_training_adjoints(tmp_path):
    """The adjoint training states are taken from the training runs: too few runs is an error before any CTM run."""
    from experiments.adjoint_replication import compute

    with pytest.raises(ValueError, match="n_train=20 training runs leave no room for 15 training adjoints and 10"):
        compute(tmp_path, n_train=20, train_adjoints=15, n_receptor_adjoints=10)
    assert not list(tmp_path.iterdir())  # nothing computed, nothing written


@pytest.fixture(scope="module")
def computed(world, tmp_path_factory):
    """`compute` at a tiny size (5 training runs, 2 + 2 test runs, 2 + 2 adjoint states, briefly trained
    emulators, the degree-2 polynomial, the gridded emulator with its Sobolev term on the one training adjoint):
    every path of the full experiment but the ablation (the MLP fit again without a Sobolev term), each number
    checked below against an independent computation."""
    from experiments.adjoint_replication import compute

    out = tmp_path_factory.mktemp("adjoint_replication")
    ds = compute(out, world=world, members=1, steps=10, train_adjoints=1, gridded_steps=2, n_receptor_adjoints=1,
                 ablation=False, progress=False, n_train=4, n_test=2, n_adj=2, degrees=(2,), gridded_sobolev=1.0)  # fmt: skip
    return ds, out


@pytest.fixture(scope="module")
def fitted(world, computed):
    """The emulators behind `compute`'s dataset: the MLP ensemble and the gridded emulator as `compute` saved them
    in `out`, and the linear and polynomial emulators fitted again (closed form, so the same fit) to the cached
    training runs, the polynomial with the dataset's source weights."""
    import surrogate as sg
    from experiments.adjoint_replication import source_runs

    ds, out = computed
    runs = xr.load_dataset(out / "ctm_runs.nc")
    train = source_runs(world, runs["x_train"].values, runs["c_train"].values)
    labels = sg.EmulatorLabels.from_runs(train)
    with pytest.warns(UserWarning, match="minimum-norm"):  # 5 runs for 42 inputs (the fixture's tiny design)
        linear = sg.fit(sg.LinearEmulator(labels), train)
    with pytest.warns(UserWarning, match="minimum-norm"):
        poly = sg.fit(sg.PolynomialEmulator(labels, degree=2, source_weights=ds["polynomial_source_weights"].values),
                      train)  # fmt: skip
    return {"linear": linear, "polynomial (pf-ERSM, D=2)": poly, "neural (MLP ensemble)": sg.load(out / "mlp_ensemble.eqx"),
            "gridded (FNO)": sg.load(out / "gridded_fno.eqx")}  # fmt: skip


def test_compute_ctm_numbers_against_numpy_and_finite_differences(world, computed):
    """The CTM side of the dataset: test-run PM2.5 per receptor against a numpy population-weighted mean of the
    cached runs, the exact adjoint of J against central differences of the forward CTM, and the cell-level
    adjoint chained through the allocation giving the source-level one."""
    ds, out = computed
    runs = xr.load_dataset(out / "ctm_runs.nc")
    frac, pop = np.asarray(world.dom.region_fraction), np.asarray(world.dom.population)
    pm = np.einsum("c,ncyx->nyx", world.m, runs["c_test"].values)
    want = np.einsum("nyx,ryx->nr", pm, frac * pop) / np.einsum("ryx->r", frac * pop)
    np.testing.assert_allclose(ds["pm25_ctm"].values, want, rtol=1e-10)
    # the cell-level adjoint dJ/dE chained through the per-source patterns is the source-level dJ/dscale
    chained = np.einsum("nslyx,gslyx->ngs", ds["cell_grad_adjoint"].values, world.patterns)
    np.testing.assert_allclose(chained, ds["grad_adjoint"].values, rtol=1e-9, atol=1e-12 * np.abs(chained).max())
    # dJ/dscale at the adjoint state against central differences of J = sum(cell_w * C) of the forward CTM
    x = runs["x_adj"].values[0]
    g = ds["grad_adjoint"].values[0]
    h = 1e-4

    def J(s):
        return float(np.sum(world.cell_w * world.run(s[None], progress=False)[0]))

    for r, k in ((0, 0), (4, 5)):
        e = np.zeros_like(x)
        e[r, k] = h
        np.testing.assert_allclose(g[r, k], (J(x + e) - J(x - e)) / (2 * h), rtol=1e-5, atol=1e-6 * np.abs(g).max())


def test_compute_emulator_numbers_against_numpy(world, computed, fitted):
    """The emulator side: the scores against numpy formulas on the stored PM2.5, the pooled gradient statistics
    against R^2 and slope computed here, and the chain's deaths gradient against central differences of the
    chain (emulator -> downscaler -> GEMM) run forward."""
    import json

    import surrogate as sg

    ds, out = computed
    models = fitted
    summary = json.loads(ds.attrs["summary"])
    names = list(ds.attrs["models"])
    assert names == ["linear", "polynomial (pf-ERSM, D=2)", "neural (MLP ensemble)",
                     "neural, Sobolev term + receptor adjoints"]  # fmt: skip
    o = ds["pm25_ctm"].values
    a = ds["grad_adjoint"].values.ravel()
    for i, name in enumerate(names):
        p = ds[f"pm25_emulator_{i}"].values
        np.testing.assert_allclose(ds[f"NME_{i}"].sel(component="PM25").values,
                                   np.abs(p - o).sum(0) / o.sum(0), rtol=1e-6)  # fmt: skip
        np.testing.assert_allclose(ds[f"NMB_{i}"].sel(component="PM25").values, (p - o).sum(0) / o.sum(0),
                                   rtol=1e-6, atol=1e-9)  # fmt: skip
        assert summary[name]["nme_max"] == pytest.approx(float(np.max(np.abs(p - o).sum(0) / o.sum(0))), rel=1e-6)
        e = ds[f"grad_emulator_{i}"].values.ravel()
        r2 = 1 - np.sum((e - a) ** 2) / np.sum((a - a.mean()) ** 2)
        slope = np.polyfit(a, e, 1)[0]
        assert summary[name]["grad_r2"] == pytest.approx(r2, rel=1e-9, abs=1e-12)
        assert summary[name]["grad_slope"] == pytest.approx(slope, rel=1e-7)
    # the emulators behind the dataset: the saved MLP ensemble and the refitted linear emulator give its PM2.5
    x_test = jnp.asarray(xr.load_dataset(out / "ctm_runs.nc")["x_test"].values)
    for name in ("linear", "neural (MLP ensemble)"):
        np.testing.assert_allclose(np.asarray(jax.vmap(models[name].pm25)(x_test)),
                                   ds[f"pm25_emulator_{names.index(name)}"].values, rtol=1e-10)  # fmt: skip
    # the linear emulator's gradient of the linear cost is its (constant) weighted matrix: the same at every state
    lin = models["linear"]
    x_adj = xr.load_dataset(out / "ctm_runs.nc")["x_adj"].values
    w = jnp.asarray(world.receptor_cost_w)  # [component, receptor], the emulator's output order

    def J_lin(s):
        return jnp.sum(w * sg.with_envelope_policy(lin, "ignore")(s))

    for s in (x_adj[0], 0.5 * x_adj[0] + 0.3):
        np.testing.assert_allclose(np.asarray(jax.grad(J_lin)(jnp.asarray(s))), ds["grad_emulator_0"].values[0],
                                   rtol=1e-9)  # fmt: skip
    # deaths through the MLP chain: d(deaths)/dscale against central differences of the chain run forward
    k = names.index("neural (MLP ensemble)")
    q = sg.with_envelope_policy(models["neural (MLP ensemble)"], "ignore")
    c0 = xr.load_dataset(out / "ctm_runs.nc")["c_train"].values[0]
    down, y0 = world.downscaler(c0), q(jnp.ones((6, 7)))
    dg = ds[f"deaths_grad_emulator_{k}"].values[0]
    h = 1e-4
    for r, s in ((1, 0), (3, 2), (5, 6)):
        e = np.zeros((6, 7))
        e[r, s] = h
        fd = (float(world.deaths_downscaled(down, q(jnp.asarray(x_adj[0] + e)), y0))
              - float(world.deaths_downscaled(down, q(jnp.asarray(x_adj[0] - e)), y0))) / (2 * h)  # fmt: skip
        np.testing.assert_allclose(dg[r, s], fd, rtol=1e-5, atol=1e-7 * np.abs(dg).max())
    # the deaths statistics in the summary from the stored gradients
    ad = ds["deaths_grad_adjoint"].values.ravel()
    for key, emu in (("neural (MLP ensemble)", ds[f"deaths_grad_emulator_{k}"].values.ravel()),
                     ("downscaler only", ds["deaths_grad_downscaled_ctm"].values.ravel())):  # fmt: skip
        assert summary[key]["deaths_r2"] == pytest.approx(1 - np.sum((emu - ad) ** 2) / np.sum((ad - ad.mean()) ** 2),
                                                          rel=1e-9, abs=1e-12)  # fmt: skip
    assert ds.attrs["n_train_runs"] == 5 and ds.attrs["n_test_runs"] == 2 and ds.attrs["n_adjoint_states"] == 2


def _r2_slope(e, a):
    """R^2 about the 1:1 line and the least-squares slope of e on a (the report's definitions), in numpy."""
    e, a = np.ravel(e), np.ravel(a)
    return 1 - np.sum((e - a) ** 2) / np.sum((a - a.mean()) ** 2), np.polyfit(a, e, 1)[0]


def _polynomial_numpy(model, x):
    """The pf-ERSM polynomial of `surrogate.PolynomialEmulator`'s docstring written out in numpy loops from the
    fitted model's fields: y = y0 + C phi(d), d = x - x_ref; phi = every monomial of degree 1..D within each
    source (source by source), then those of degree 2..D in t_k = sum_s w_sk d_sk. x[n, source, species] ->
    y[n, component, receptor]."""
    from itertools import combinations_with_replacement as cwr

    coef, base, w = np.asarray(model.coef), np.asarray(model.base), np.asarray(model.source_weights)
    out = []
    for xi in x:
        d = xi - np.asarray(model.x_ref)
        n_src, k = d.shape
        phi = [np.prod(d[s, list(c)]) for deg in range(1, model.degree + 1) for s in range(n_src)
               for c in cwr(range(k), deg)]  # fmt: skip
        t = (w * d).sum(0)
        phi += [np.prod(t[list(c)]) for deg in range(2, model.degree + 1) for c in cwr(range(k), deg)]
        out.append(base + (coef @ np.array(phi)).reshape(base.shape))
    return np.stack(out)


def test_compute_polynomial_numbers_against_numpy(world, computed, fitted):
    """The polynomial emulator's rows: its source weights are each region's share of the base emissions per
    species, its PM2.5 on the test runs and its gradient of J at the adjoint states equal the polynomial
    evaluated in numpy from the fitted coefficients (the gradient by central differences, exact for a
    quadratic up to rounding), and so does its deaths gradient through the downscaler and GEMM."""
    ds, out = computed
    name = "polynomial (pf-ERSM, D=2)"
    i = list(ds.attrs["models"]).index(name)
    poly = fitted[name]
    assert poly.degree == 2 and poly.total_terms
    e = world.e_reg.sum(-1)  # [species, region]: base emissions summed over levels
    np.testing.assert_allclose(ds["polynomial_source_weights"].values, (e / e.sum(1, keepdims=True)).T, rtol=1e-12)
    np.testing.assert_array_equal(np.asarray(poly.x_ref), np.ones((6, 7)))  # d = x - 1: changes from the base case
    runs = xr.load_dataset(out / "ctm_runs.nc")
    y = _polynomial_numpy(poly, runs["x_test"].values)  # [n, component, receptor]
    np.testing.assert_allclose(ds[f"pm25_emulator_{i}"].values, np.einsum("c,ncr->nr", world.m, y), rtol=1e-10)
    # The fixture's 5 training runs leave nothing over for the interaction terms once the intercept and the 42
    # linear terms take them: those coefficients are exactly zero (not rounding noise fitted as signal) and the
    # polynomial's predictions are the linear emulator's minimum-norm fit.
    assert ds.attrs["models"][0].startswith("linear")
    np.testing.assert_array_equal(np.asarray(poly.coef)[:, 6 * 7 :], 0.0)
    assert np.abs(np.asarray(poly.coef)[:, : 6 * 7]).max() > 0
    np.testing.assert_allclose(ds[f"pm25_emulator_{i}"].values, ds["pm25_emulator_0"].values, rtol=1e-8)

    def J(s):
        return np.sum(world.receptor_cost_w * _polynomial_numpy(poly, s[None])[0])

    h = 0.05
    for n, x in enumerate(runs["x_adj"].values):
        fd = np.zeros((6, 7))
        for r in range(6):
            for k in range(7):
                step = np.zeros((6, 7))
                step[r, k] = h
                fd[r, k] = (J(x + step) - J(x - step)) / (2 * h)
        g = ds[f"grad_emulator_{i}"].values[n]
        np.testing.assert_allclose(g, fd, rtol=1e-7, atol=1e-9 * np.abs(fd).max())
    # national deaths through the polynomial -> downscaler (ratio to the base case) -> GEMM, by central differences
    down = world.downscaler(runs["c_train"].values[0])
    y0 = jnp.asarray(_polynomial_numpy(poly, np.ones((1, 6, 7)))[0])

    def deaths(s):
        return float(world.deaths_downscaled(down, jnp.asarray(_polynomial_numpy(poly, s[None])[0]), y0))

    x, dg, h = runs["x_adj"].values[1], ds[f"deaths_grad_emulator_{i}"].values[1], 1e-4
    for r, k in ((0, 1), (2, 2), (5, 4)):
        step = np.zeros((6, 7))
        step[r, k] = h
        fd = (deaths(x + step) - deaths(x - step)) / (2 * h)
        np.testing.assert_allclose(dg[r, k], fd, rtol=1e-5, atol=1e-7 * np.abs(dg).max())


def test_compute_gridded_numbers_against_numpy(world, computed, fitted):
    """The gridded emulator's rows: its dJ/dE at the adjoint states against central differences of J = sum(cell_w
    * emulator(E)), the cell-level statistics (cells carrying the top 90 % of sum |dJ/dE| per state), the
    source-level ones (cell gradients chained through the per-source patterns) and the median cell NME of PM2.5
    on the test runs, all recomputed in numpy from the dataset's arrays and the CTM runs."""
    import json

    import surrogate as sg

    ds, out = computed
    gm = sg.with_envelope_policy(fitted["gridded (FNO)"], "ignore")
    g = json.loads(ds.attrs["summary"])["gridded (FNO)"]
    runs = xr.load_dataset(out / "ctm_runs.nc")
    e, a = ds["cell_grad_emulator"].values, ds["cell_grad_adjoint"].values  # [state, species, level, row, col]
    np.testing.assert_array_equal(a, runs["g_cell"].values)
    # the emulator's cell gradient against central differences at the largest-|dJ/dE| cells of state 0
    E0 = world.emissions(runs["x_adj"].values[0])
    w = jnp.asarray(world.cell_w)

    def J(E):
        return float(jnp.sum(w * gm(jnp.asarray(E))))

    for flat in np.argsort(-np.abs(e[0]).ravel())[:3]:
        idx = np.unravel_index(flat, E0.shape)
        h = 1e-3 * max(abs(E0[idx]), 1e-3)
        step = np.zeros_like(E0)
        step[idx] = h
        np.testing.assert_allclose(e[0][idx], (J(E0 + step) - J(E0 - step)) / (2 * h), rtol=1e-5,
                                   atol=1e-6 * np.abs(e[0]).max())  # fmt: skip
    # top-90 % cells per state: sort |a| down, keep the shortest prefix whose sum reaches 90 % of the total
    masks = []
    for ai in a:
        v = np.abs(ai).ravel()
        order = np.argsort(-v)
        k = int(np.argmax(np.cumsum(v[order]) >= 0.9 * v.sum())) + 1
        m = np.zeros(v.size, bool)
        m[order[:k]] = True
        masks.append(m.reshape(ai.shape))
    per_state = [_r2_slope(ei[m], ai[m])[0] for ei, ai, m in zip(e, a, masks, strict=True)]
    r2, slope = _r2_slope(np.concatenate([ei[m] for ei, m in zip(e, masks, strict=True)]),
                          np.concatenate([ai[m] for ai, m in zip(a, masks, strict=True)]))  # fmt: skip
    assert g["cell_r2"] == pytest.approx(r2, rel=1e-9, abs=1e-12)
    assert g["cell_slope"] == pytest.approx(slope, rel=1e-7, abs=1e-12)
    assert g["cell_r2_min_state"] == pytest.approx(min(per_state), rel=1e-9, abs=1e-12)
    assert len(per_state) == 2 and per_state[0] != pytest.approx(per_state[1], rel=1e-6)  # the min is a real choice
    src_r2, src_slope = _r2_slope(np.einsum("nslyx,gslyx->ngs", e, world.patterns), ds["grad_adjoint"].values)
    assert g["src_r2"] == pytest.approx(src_r2, rel=1e-9, abs=1e-12)
    assert g["src_slope"] == pytest.approx(src_slope, rel=1e-7, abs=1e-12)
    # median over cells of NME = sum_n |p - o| / sum_n o of PM2.5 on the test runs
    p = np.stack([np.asarray(gm(jnp.asarray(world.emissions(x)))) for x in runs["x_test"].values])
    pm_p, pm_o = (np.einsum("c,ncyx->nyx", world.m, c) for c in (p, runs["c_test"].values))
    nme = np.abs(pm_p - pm_o).sum(0) / pm_o.sum(0)
    assert g["cell_nme_median"] == pytest.approx(float(np.median(nme)), rel=1e-9)


def test_sobolev_training_sets_pair_each_adjoint_with_its_state(world, computed):
    """The training sets of the Sobolev terms (source level for the MLP, cell level for the gridded emulator):
    the sensitivity given at a run is the CTM's exact adjoint of its cost at that run's own state, recomputed
    here, the other runs carry none (NaN), and both costs are J, the population-share-weighted mean of the
    regions' population-weighted PM2.5 computed in numpy from the run's concentrations."""
    from experiments.adjoint_replication import sobolev_runs

    _, out = computed
    runs = xr.load_dataset(out / "ctm_runs.nc")
    src, grid = sobolev_runs(world, runs), sobolev_runs(world, runs, gridded=True)
    for ds, name in ((src, "scale"), (grid, "emissions")):
        have = ~np.isnan(ds["sensitivity"].values).reshape(ds.sizes["run"], -1)
        np.testing.assert_array_equal(have.all(1), np.arange(ds.sizes["run"]) == 1)  # run 1 only; run 0 is the base
        np.testing.assert_array_equal(have.any(1), have.all(1))
    x1 = runs["x_train"].values[1]
    np.testing.assert_allclose(grid["emissions"].values[1], world.emissions(x1), rtol=1e-14)
    g_cell, g_src = world.adjoint(x1[None])
    np.testing.assert_allclose(src["sensitivity"].values[1], g_src[0], rtol=1e-10)
    np.testing.assert_allclose(grid["sensitivity"].values[1], g_cell[0], rtol=1e-10, atol=1e-12 * np.abs(g_cell).max())
    frac, pop = np.asarray(world.dom.region_fraction), np.asarray(world.dom.population)
    c = runs["c_train"].values[1]
    pm = np.einsum("c,cyx->yx", world.m, c)
    pw = np.array([(pm * f * pop).sum() / (f * pop).sum() for f in frac])
    share = np.array([(f * pop).sum() for f in frac]) / (frac * pop).sum()
    J = share @ pw
    np.testing.assert_allclose(float((grid["cost_weights"] * grid["conc"].isel(run=1)).sum()), J, rtol=1e-12)
    np.testing.assert_allclose(float((src["cost_weights"] * src["pm25"].isel(run=1)).sum()), J, rtol=1e-12)


def _md_rows(text: str, header: str) -> dict[str, list[str]]:
    """The rows of the markdown table whose header line starts with `header`: first cell -> the other cells."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(header))
    rows = {}
    for line in lines[start + 2:]:
        if not line.startswith("|"):
            break
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        rows[cells[0]] = cells[1:]
    return rows


def _pct(cell: str) -> float:
    assert cell.endswith("%"), cell
    return float(cell[:-1]) / 100


def test_report_tables_equal_the_dataset(world, computed, tmp_path):
    """report.md's tables, parsed back, against numbers recomputed in numpy from the dataset's arrays (to the
    printed precision); the same report again from results.nc alone; a dataset without the summary rows the
    report needs is refused before anything is written."""
    import json

    from experiments.adjoint_replication import report

    ds, out = computed
    summary = json.loads(ds.attrs["summary"])
    models = list(ds.attrs["models"])
    path = report(ds, tmp_path / "a")
    text = path.read_text()
    assert path == tmp_path / "a" / "report.md"
    o, ga = ds["pm25_ctm"].values, ds["grad_adjoint"].values
    held = _md_rows(text, "| emulator | NME max | NME mean |")
    assert list(held) == models
    for i, name in enumerate(models):
        p, ge = ds[f"pm25_emulator_{i}"].values, ds[f"grad_emulator_{i}"].values
        nme = np.abs(p - o).sum(0) / o.sum(0)
        r2, slope = _r2_slope(ge, ga)
        cells = held[name]
        want = [nme.max(), nme.mean(), np.max(np.abs(p - o) / o), np.max(np.abs((p - o).sum(0) / o.sum(0)))]
        np.testing.assert_allclose([_pct(c) for c in cells[:4]], want, atol=5e-5 + 1e-12)
        np.testing.assert_allclose(float(cells[5]), r2, atol=5e-5 + 1e-12)
        np.testing.assert_allclose(float(cells[6]), slope, atol=5e-4 + 1e-12)
        np.testing.assert_allclose(float(cells[7]), min(_r2_slope(ge[n], ga[n])[0] for n in range(len(ga))),
                                   atol=5e-5 + 1e-12)  # fmt: skip
        nrmse = np.sqrt(np.mean((ge - ga) ** 2)) / np.abs(ga).max()
        np.testing.assert_allclose(float(cells[8]), nrmse, atol=5e-4 + 1e-12)
        fresh = _md_rows(text, "| emulator | NME max | MaxNE | grad R^2 | grad slope |")[name]
        np.testing.assert_allclose([_pct(fresh[0]), _pct(fresh[1]), float(fresh[2]), float(fresh[3])],
                                   [summary[name][k] for k in ("fresh_nme_max", "fresh_maxne", "fresh_grad_r2",
                                                               "fresh_grad_slope")], atol=5e-4)  # fmt: skip
    # the chain's deaths gradient: the MLP row and the downscaler-only row from the stored gradients
    deaths = _md_rows(text, "| chain | deaths grad R^2 |")
    assert list(deaths) == [*models, "downscaler only"]
    ad = ds["deaths_grad_adjoint"].values
    for name, emu in [*((m, ds[f"deaths_grad_emulator_{i}"].values) for i, m in enumerate(models)),
                      ("downscaler only", ds["deaths_grad_downscaled_ctm"].values)]:  # fmt: skip
        r2, slope = _r2_slope(emu, ad)
        np.testing.assert_allclose([float(deaths[name][0].split()[0]), float(deaths[name][1].split()[0])],
                                   [r2, slope], atol=5e-4)  # fmt: skip
    base = xr.load_dataset(out / "ctm_deaths_adjoints.nc").attrs["base_deaths"]
    assert f"{base:,.0f} at the base case" in text
    a, e = ds["cell_grad_adjoint"].values, ds["cell_grad_emulator"].values
    line = next(s for s in text.splitlines() if s.startswith("- gridded emulator cell-level R^2"))
    assert f"{summary['gridded (FNO)']['cell_r2']:.4f} [" in line
    assert f"(slope {summary['gridded (FNO)']['cell_slope']:.3f}," in line
    assert e.shape == a.shape  # (the cell statistics themselves: test_compute_gridded_numbers_against_numpy)
    assert f"Training budget: {ds.attrs['n_train_runs']} CTM runs" in text
    for f in ("scatter_pm25", "scatter_gradients", "scatter_gradients_deaths", "map_source_sensitivity",
              "map_cell_sensitivity"):  # fmt: skip
        assert (tmp_path / "a" / f"{f}.png").stat().st_size > 0 and f"{f}.png" in text
    # results.nc holds the dataset; the report from it alone is the same text
    saved = xr.load_dataset(tmp_path / "a" / "results.nc")
    for v in ds.data_vars:
        np.testing.assert_array_equal(saved[v].values, ds[v].values)
    assert report(saved, tmp_path / "b").read_text() == text
    bad = ds.assign_attrs(summary=json.dumps({k: v for k, v in summary.items() if k != "gridded (FNO)"}))
    with pytest.raises(ValueError, match=r"summary has no rows \['gridded \(FNO\)'\]"):
        report(bad, tmp_path / "c")
    assert not (tmp_path / "c").exists()


def test_main_refuses_a_folder_of_someone_elses_files(tmp_path, capsys):
    """`python -m experiments.adjoint_replication --out DIR` into a folder holding a user's files stops before any
    CTM run and leaves the folder as it was."""
    from experiments.adjoint_replication import main

    (tmp_path / "notes.md").write_text("mine")
    with pytest.raises(SystemExit):
        main(["--out", str(tmp_path), "--quick"])
    assert "--force" in capsys.readouterr().err
    assert [p.name for p in tmp_path.iterdir()] == ["notes.md"] and (tmp_path / "notes.md").read_text() == "mine"
