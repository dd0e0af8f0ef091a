"""Smoke test of experiments.cobenefits on the quick demo chain, with headlines recomputed independently."""

from __future__ import annotations

import equinox as eqx
import jax.numpy as jnp
import numpy as np
import pytest
import xarray as xr

from experiments import cobenefits as cb


@pytest.fixture(scope="module")
def result(quick_demo_chain, tmp_path_factory):
    out = tmp_path_factory.mktemp("cobenefits")
    return out, cb.run(out, demo=quick_demo_chain, n_draws=48, chunk_size=16, progress=False)


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
    out, res = result
    mrio = quick_demo_chain.chain.mrio
    for level in cb.LEVELS:
        avoided, trade, _ = _convergence_by_hand(mrio, level)
        assert res["co2_avoided"][level] == pytest.approx(avoided, rel=1e-9)
        assert res["co2_avoided_pct"][level] == pytest.approx(100 * avoided / trade, rel=1e-9)
    assert res["co2_avoided_pct"][1.0] >= res["co2_avoided_pct"][0.75] >= res["co2_avoided_pct"][0.5] > 0


def test_chain_deaths_avoided_by_hand(result, quick_demo_chain):
    """Apply the hand-built intensity ratios to every emission row of S and rerun the chain."""
    out, res = result
    chain = quick_demo_chain.chain
    inp = chain.base_inputs()
    _, _, ratio = _convergence_by_hand(chain.mrio, 1.0)
    rows = np.array([s in cb.EMISSION_ROWS for s in chain.mrio.stressors])
    S = np.asarray(inp.S).copy()
    S[rows] *= ratio[None, :]
    d0 = float(chain(inp).deaths.sum())
    d1 = float(chain(eqx.tree_at(lambda i: i.S, inp, jnp.asarray(S))).deaths.sum())
    assert res["deaths_avoided_central"][1.0] == pytest.approx(d0 - d1, rel=1e-8)
    assert d0 - d1 > 0
    ds = xr.load_dataset(out / "results" / "convergence.nc")
    lo, hi = res["deaths_avoided_pct_100_interval"]
    assert lo < res["deaths_avoided_pct_100"] < hi
    # paired draws: the base case is the same draw for every scenario, so avoided deaths are positive in every draw
    assert (ds.draw_deaths_avoided.sel(level=1.0) > 0).all()


def test_views_identity_and_tci(result, quick_demo_chain):
    out, res = result
    mrio = quick_demo_chain.chain.mrio
    ds = xr.load_dataset(out / "results" / "accounts.nc")
    # consumer view of the deaths row == first-order attribution by consumer (sum over receptors)
    np.testing.assert_allclose(ds.D_cba_reg.sel(stressor="deaths").values,
                               ds.deaths_by_consumer_first_order.sum("receptor").values, rtol=1e-8)
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
    text = (out / "report.md").read_text()
    assert "synthetic" in text.lower() and "17%" in text and "19%" in text
    for f in ("views.png", "zones.png", "convergence.png"):
        assert (out / "figures" / f).stat().st_size > 1000


def test_rejects_too_few_draws(tmp_path, quick_demo_chain):
    with pytest.raises(ValueError, match="n_draws"):
        cb.run(tmp_path, demo=quick_demo_chain, n_draws=1, progress=False)
