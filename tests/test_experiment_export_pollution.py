"""Smoke test of experiments.export_pollution on the quick demo chain, with headlines recomputed independently."""

from __future__ import annotations

import equinox as eqx
import numpy as np
import pytest
import xarray as xr

from experiments import export_pollution as ep


@pytest.fixture(scope="module")
def result(quick_demo_chain, tmp_path_factory):
    out = tmp_path_factory.mktemp("export_pollution")
    return out, ep.run(out, demo=quick_demo_chain, n_nodes=2, n_intervals=2, n_paths=5, progress=False)


def _numpy_accounts(mrio):
    Z, Y, F = (np.asarray(a, dtype=np.float64) for a in (mrio.Z, mrio.Y, mrio.F))
    x = Z.sum(1) + Y.sum(1)
    A = Z / x[None, :]
    L = np.linalg.inv(np.eye(len(x)) - A)
    S = F / x[None, :]
    return A, L, S


def test_export_emissions_direct_indirect_vs_numpy(result, quick_demo_chain):
    out, res = result
    mrio = quick_demo_chain.chain.mrio
    R, N, K = mrio.n_regions, mrio.n_sectors, mrio.n_categories
    _, L, S = _numpy_accounts(mrio)
    k = list(mrio.categories).index("export")
    Ye = np.asarray(mrio.Y).reshape(R * N, R, K)[:, :, k]  # (n, exporting region)
    ds = xr.load_dataset(out / "results" / "export_emissions.nc")
    for p in ("SO2", "PM2.5"):
        s = S[list(mrio.stressors).index(p)]
        total = (s * (L @ Ye.sum(1))).reshape(R, N).sum(1)
        direct = np.zeros(R)
        for r in range(R):
            y = np.zeros(R * N)
            y[r * N:(r + 1) * N] = Ye.sum(1)[r * N:(r + 1) * N]  # region r's own export products
            direct[r] = (s * (L @ y))[r * N:(r + 1) * N].sum()
        np.testing.assert_allclose(ds.total.sel(stressor=p).values, total, rtol=1e-10)
        np.testing.assert_allclose(ds.direct.sel(stressor=p).values, direct, rtol=1e-10)
        np.testing.assert_allclose(ds.direct.sel(stressor=p) + ds.indirect.sel(stressor=p), total, rtol=1e-10)
        assert res["indirect_share"][p] == pytest.approx(1 - direct.sum() / total.sum(), rel=1e-10)
    # APE: 0.95 kg SO2 / NOx, 4 kg PM2.5 per equivalent
    w = {"SO2": 1 / 0.95, "NOx": 1 / 0.95, "PM2.5": 1 / 4.0}
    tot = sum(w[p] * float(ds.total.sel(stressor=p).sum()) for p in w)
    ind = sum(w[p] * float(ds.indirect.sel(stressor=p).sum()) for p in w)
    assert res["indirect_share_ape"] == pytest.approx(ind / tot, rel=1e-10)


def test_export_share_of_deaths_by_hand(result, quick_demo_chain):
    _, res = result
    chain = quick_demo_chain.chain
    mrio = chain.mrio
    inp = chain.base_inputs()
    R, N, K = mrio.n_regions, mrio.n_sectors, mrio.n_categories
    keep = np.ones((R * N, R, K))
    keep[:, :, list(mrio.categories).index("export")] = 0.0
    Y0 = inp.Y * keep.reshape(R * N, R * K)
    base = chain(inp)
    no_exp = chain(eqx.tree_at(lambda i: i.Y, inp, Y0))
    d_base, d_no = float(base.deaths.sum()), float(no_exp.deaths.sum())
    assert res["deaths_total"] == pytest.approx(d_base, rel=1e-9)
    assert res["share_deaths_exports_zero_out"] == pytest.approx((d_base - d_no) / d_base, rel=1e-6)
    pop = np.asarray(chain.health.inputs.to_regions(chain.health.inputs.population))
    pw0 = float(np.sum(np.asarray(base.pwpm) * pop) / pop.sum())
    pw1 = float(np.sum(np.asarray(no_exp.pwpm) * pop) / pop.sum())
    assert res["share_pwpm_exports_zero_out"] == pytest.approx((pw0 - pw1) / pw0, rel=1e-6)
    assert 0 < res["share_deaths_exports_zero_out"] < 1


def test_path_attribution_is_complete_and_additive(result, quick_demo_chain):
    out, res = result
    chain = quick_demo_chain.chain
    inp = chain.base_inputs()
    ds = xr.load_dataset(out / "results" / "attribution.nc")
    d_full = float(chain.target(inp, "deaths"))
    d_zero = float(chain.target(eqx.tree_at(lambda i: i.Y, inp, inp.Y * 0.0), "deaths"))
    # foreign + domestic = J(Y) - J(0) (Aumann-Shapley completeness)
    assert float(ds.deaths_path_foreign.sum()) == pytest.approx(d_full - d_zero, rel=1e-8)
    # the six export routes add up to all exports
    routes = sum(res["deaths_by_export_route_path"][f"exports of {r}"] for r in chain.mrio.regions)
    assert routes == pytest.approx(res["deaths_exports_path"], rel=1e-8)


def test_layers_and_outputs(result):
    out, res = result
    assert sum(res["layer_share"]) == pytest.approx(1.0, rel=1e-10)
    assert 0 < res["top_path_share"] < 1
    text = (out / "report.md").read_text()
    assert "synthetic" in text.lower() and "75.4%" in text
    for f in ("export_emissions.png", "health_exports.png", "layers.png"):
        assert (out / "figures" / f).stat().st_size > 1000
    ds = xr.load_dataset(out / "results" / "layers.nc")
    np.testing.assert_allclose(ds.layers.sum(("layer", "region", "sector")) + ds.remainder.sum(("region", "sector")),
                               ds.total, rtol=1e-10)


def test_bad_stressor(tmp_path, quick_demo_chain):
    with pytest.raises(ValueError, match="stressor"):
        ep.run(tmp_path, demo=quick_demo_chain, stressor="CO3", progress=False)
