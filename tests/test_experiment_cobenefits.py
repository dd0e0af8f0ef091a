"""experiments.cobenefits on the quick demo chain: `compute`'s numbers against explicit numpy loops (convergence,
TCI), the chain rerun by hand (deaths avoided), identities (MRIO views = first-order attribution) and numpy
percentiles of the same draws; `report` written from the result."""

from __future__ import annotations

import equinox as eqx
import jax.numpy as jnp
import numpy as np
import pytest
import xarray as xr

from experiments import cobenefits as cb

N_DRAWS = 8


@pytest.fixture(scope="module")
def res(quick_demo_chain):
    return cb.compute(quick_demo_chain.chain, n_draws=N_DRAWS, chunk_size=N_DRAWS, progress=False)


@pytest.fixture(scope="module")
def result(res):
    return res, cb.headline(res)


def _numpy_mrio(mrio):
    Z, Y, F = (np.asarray(a, dtype=np.float64) for a in (mrio.Z, mrio.Y, mrio.F))
    x = Z.sum(1) + Y.sum(1)
    L = np.linalg.inv(np.eye(len(x)) - Z / x[None, :])
    return Y, F / x[None, :], L, x


def _convergence_by_hand(mrio, level):
    """CO2 avoided and the per-region-sector intensity ratio, by explicit loops over (r, s, m)."""
    R, N = mrio.n_regions, mrio.n_sectors
    Y, S, L, x = _numpy_mrio(mrio)
    y = Y.sum(1)
    X = np.zeros((R * N, R))  # output for the final products of region t
    for t in range(R):
        yt = np.zeros(R * N)
        yt[t * N:(t + 1) * N] = y[t * N:(t + 1) * N]
        X[:, t] = L @ yt
    s = S[list(mrio.stressors).index("CO2")]
    E = s[:, None] * X
    w = s.reshape(R, N)
    avoided, trade = 0.0, 0.0
    ratio = np.ones(R * N)
    for r in range(R):
        for t in range(R):
            if r != t:
                trade += E[r * N:(r + 1) * N, t].sum()
    for m in cb.SECTORS:
        i = list(mrio.sectors).index(m)
        q = np.quantile(w[:, i], 1.0 - level)
        for r in range(R):
            n = r * N + i
            acc = 0.0
            for t in range(R):
                wn = min(w[r, i], max(w[t, i], q)) if w[t, i] < w[r, i] else w[r, i]
                avoided += E[n, t] * (1 - wn / w[r, i])
                acc += wn / w[r, i] * X[n, t]
            ratio[n] = acc / x[n]
    return avoided, trade, ratio


def test_co2_avoided_vs_numpy(result, quick_demo_chain):
    _, res = result
    mrio = quick_demo_chain.chain.mrio
    for level in cb.LEVELS:
        avoided, trade, _ = _convergence_by_hand(mrio, level)
        assert res["co2_avoided"][level] == pytest.approx(avoided, rel=1e-9)
        assert res["co2_avoided_pct"][level] == pytest.approx(100 * avoided / trade, rel=1e-9)
    assert res["co2_avoided_pct"][1.0] >= res["co2_avoided_pct"][0.75] >= res["co2_avoided_pct"][0.5] > 0


def test_chain_deaths_avoided_by_hand(result, quick_demo_chain):
    """Apply the hand-built intensity ratios to every emission row of S and rerun the chain."""
    ds, res = result
    chain = quick_demo_chain.chain
    inp = chain.base_inputs()
    _, _, ratio = _convergence_by_hand(chain.mrio, 1.0)
    np.testing.assert_allclose(ds.intensity_ratio.sel(level=1.0).values.ravel(), ratio, rtol=1e-9)
    rows = np.array([s in cb.EMISSION_ROWS for s in chain.mrio.stressors])
    S = np.asarray(inp.S).copy()
    S[rows] *= ratio[None, :]
    deaths = eqx.filter_jit(lambda c, S: c.target(eqx.tree_at(lambda i: i.S, inp, S), "deaths"))
    d0, d1 = float(deaths(chain, inp.S)), float(deaths(chain, jnp.asarray(S)))
    assert res["deaths_avoided_central"][1.0] == pytest.approx(d0 - d1, rel=1e-8)
    assert d0 - d1 > 0
    lo, hi = res["deaths_avoided_pct_100_interval"]
    assert lo < res["deaths_avoided_pct_100"] < hi
    # the Monte Carlo summaries are numpy's on the same draws
    rel = ds.draw_deaths_avoided.values / ds.draw_trade_deaths.values[:, None]
    np.testing.assert_allclose(ds.deaths_relative_mean.values, rel.mean(0), rtol=1e-12)
    np.testing.assert_allclose(ds.deaths_relative_lo.values, np.percentile(rel, 2.5, axis=0), rtol=1e-12)
    np.testing.assert_allclose(ds.deaths_avoided_hi.values, np.percentile(ds.draw_deaths_avoided.values, 97.5, axis=0),
                               rtol=1e-12)
    # paired draws: the base case is the same draw for every scenario, so avoided deaths are positive in every draw
    assert (ds.draw_deaths_avoided.sel(level=1.0) > 0).all()
    assert all("units" in ds[v].attrs for v in ds.data_vars)


def test_views_identity_and_tci(result, quick_demo_chain):
    ds, res = result
    mrio = quick_demo_chain.chain.mrio
    # consumer and final-producer views of the deaths row == first-order attribution (sum over receptors)
    np.testing.assert_allclose(ds.deaths_views.sel(view="consumer").values,
                               ds.deaths_by_consumer_first_order.sum("receptor").values, rtol=1e-8)
    np.testing.assert_allclose(ds.deaths_views.sel(view="final producer").values,
                               ds.deaths_by_final_producer_first_order.sum("receptor").values, rtol=1e-8)
    # every view distributes the same first-order total
    first_order = float(ds.deaths_row.sum() + ds.deaths_households.sum())
    np.testing.assert_allclose(ds.deaths_views.sum("region").values, first_order, rtol=1e-9)
    # TCI from a numpy burden matrix
    R, N = mrio.n_regions, mrio.n_sectors
    Y, S, L, _ = _numpy_mrio(mrio)
    s = S[list(mrio.stressors).index("CO2")]
    K = mrio.n_categories
    E = np.array([[(s * (L @ Y[:, c * K:(c + 1) * K].sum(1)))[r * N:(r + 1) * N].sum() for c in range(R)]
                  for r in range(R)])
    eei = E.sum(0) - np.diag(E)
    eee = E.sum(1) - np.diag(E)
    np.testing.assert_allclose([res["tci"][r] for r in mrio.regions], (eei - eee) / (eei + eee), rtol=1e-9)


def test_report_from_result(result, tmp_path):
    full, res = result
    text = cb.report(full, tmp_path / "out").read_text()
    assert "synthetic" in text.lower() and "17%" in text and "19%" in text
    lo, hi = res["deaths_avoided_pct_100_interval"]
    assert (f"Full convergence avoids {res['co2_avoided_pct_100']:.1f}% of trade-related CO2 and "
            f"{res['deaths_avoided_pct_100']:.1f}% (95% interval {lo:.1f}-{hi:.1f}%)") in text
    back = xr.load_dataset(tmp_path / "out" / "results" / "cobenefits.nc")
    xr.testing.assert_allclose(back.co2_avoided, full.co2_avoided)
    assert (tmp_path / "out" / "figures" / "zones.png").is_file()


def test_rejects_too_few_draws(quick_demo_chain):
    with pytest.raises(ValueError, match="n_draws"):
        cb.compute(quick_demo_chain.chain, n_draws=1, progress=False)
