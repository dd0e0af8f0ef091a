"""The national-deaths part of the adjoint-replication experiment: the reference CTM's adjoint of deaths against
finite differences of the forward model, and the downscaled chain against it."""

import jax.numpy as jnp
import numpy as np
import pytest
import xarray as xr

from experiments.adjoint_replication import World, deaths_adjoints

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def world():
    return World(n_days=2.0)  # a short spin-up: the identities hold for any length; seconds, not minutes


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
