"""The national-deaths part of the adjoint-replication experiment: the reference CTM's adjoint of deaths against
finite differences of the forward model, and the downscaled chain against it."""

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
    """`compute` at a tiny size (5 training runs, 2 + 2 test runs, 1 + 1 adjoint states, briefly trained
    emulators, no polynomial, the gridded emulator without its Sobolev term, whose compilation is the costliest):
    the numbers of the full experiment, each checked below against an independent computation."""
    from experiments.adjoint_replication import compute

    out = tmp_path_factory.mktemp("adjoint_replication")
    res = compute(out, world=world, members=1, steps=10, train_adjoints=1, gridded_steps=2, n_receptor_adjoints=1,
                  ablation=False, progress=False, n_train=4, n_test=2, n_adj=1, degrees=(), gridded_sobolev=0.0)  # fmt: skip
    return res, out


def test_compute_ctm_numbers_against_numpy_and_finite_differences(world, computed):
    """The CTM side of the dataset: test-run PM2.5 per receptor against a numpy population-weighted mean of the
    cached runs, the exact adjoint of J against central differences of the forward CTM, and the cell-level
    adjoint chained through the allocation giving the source-level one."""
    res, out = computed
    ds = res["dataset"]
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


def test_compute_emulator_numbers_against_numpy(world, computed):
    """The emulator side: the scores against numpy formulas on the stored PM2.5, the pooled gradient statistics
    against R^2 and slope computed here, and the chain's deaths gradient against central differences of the
    chain (emulator -> downscaler -> GEMM) run forward."""
    import json

    import surrogate as sg

    res, out = computed
    ds, models = res["dataset"], res["models"]
    summary = json.loads(ds.attrs["summary"])
    names = list(ds.attrs["models"])
    assert names == ["linear", "neural (MLP ensemble)", "neural, Sobolev term + receptor adjoints"]
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
    assert ds.attrs["n_train_runs"] == 5 and ds.attrs["n_test_runs"] == 2 and ds.attrs["n_adjoint_states"] == 1
