"""experiments.export_pollution: `compute`'s numbers against an independent numpy computation (the MRIO sections on
the demo world) and against the chain evaluated by hand (zero-out shares, Aumann-Shapley completeness, additivity
of the export routes); `report` writes its files from the dataset."""

from __future__ import annotations

import equinox as eqx
import numpy as np
import pytest
import xarray as xr

import diffmrio
from diffmrio.datasets import demo_world
from experiments import export_pollution as ep

T = 2


@pytest.fixture(scope="module")
def mrio():
    return demo_world(seed=0, geography=False).mrio


@pytest.fixture(scope="module")
def ds(mrio):
    return ep.compute(mrio, T=T, n_paths=4, synthetic=True)


def _numpy(mrio):
    Z, Y, F = (np.asarray(a, dtype=np.float64) for a in (mrio.Z, mrio.Y, mrio.F))
    R, N, K = mrio.n_regions, mrio.n_sectors, mrio.n_categories
    x = Z.sum(1) + Y.sum(1)
    A = Z / x[None, :]
    L = np.linalg.inv(np.eye(len(x)) - A)
    S = F / x[None, :]
    Ye = Y.reshape(R * N, R, K)[:, :, list(mrio.categories).index("export")]  # (n, exporting region)
    return A, L, S, Ye


def test_export_emissions_vs_numpy(ds, mrio):
    A, L, S, Ye = _numpy(mrio)
    R, N = mrio.n_regions, mrio.n_sectors
    for p in ep.POLLUTANTS:
        s = S[list(mrio.stressors).index(p)]
        total = (s * (L @ Ye.sum(1))).reshape(R, N).sum(1)
        direct = np.zeros(R)
        for r in range(R):
            y = np.zeros(R * N)
            y[r * N:(r + 1) * N] = Ye.sum(1)[r * N:(r + 1) * N]  # region r's own export products
            direct[r] = (s * (L @ y))[r * N:(r + 1) * N].sum()
        np.testing.assert_allclose(ds.total.sel(stressor=p).values, total, rtol=1e-10)
        np.testing.assert_allclose(ds.direct.sel(stressor=p).values, direct, rtol=1e-10)
        np.testing.assert_allclose(ds.indirect.sel(stressor=p).values, total - direct, rtol=1e-9)
        assert float(ds.indirect_share.sel(stressor=p)) == pytest.approx(1 - direct.sum() / total.sum(), rel=1e-10)
        # eee[region, exporter, consumer] sums to the total per emitter
        np.testing.assert_allclose(ds.eee.sel(stressor=p).sum(("exporter", "consumer")).values, total, rtol=1e-10)
    # pollutant equivalents: kt -> kg, divided by 0.95 kg (SO2, NOx) and 4 kg (PM2.5)
    w = {"SO2": 1e6 / 0.95, "NOx": 1e6 / 0.95, "PM2.5": 1e6 / 4.0}
    ape = sum(w[p] * ds.total.sel(stressor=p).values for p in w)
    np.testing.assert_allclose(ds.ape_total.values, ape, rtol=1e-10)
    ind = sum(w[p] * ds.indirect.sel(stressor=p).values.sum() for p in w)
    assert float(ds.indirect_share_ape) == pytest.approx(ind / ape.sum(), rel=1e-10)


def test_layers_flows_paths_vs_numpy(ds, mrio):
    A, L, S, Ye = _numpy(mrio)
    R, N = mrio.n_regions, mrio.n_sectors
    s = S[list(mrio.stressors).index("PM2.5")]
    y = Ye.sum(1)
    v = y.copy()
    for t in range(T + 1):
        np.testing.assert_allclose(ds.layers.sel(layer=t).values, (s * v).reshape(R, N), rtol=1e-10, atol=1e-12)
        if t < T:  # flow from layer t+1 (seller k) to layer t (buyer j): m_k A_kj (A^t y)_j with m = S L
            m = s @ L
            flow = (m[:, None] * A * v[None, :]).reshape(R, N, R, N).sum((1, 3))
            np.testing.assert_allclose(ds.flows.sel(flow_layer=t).values, flow, rtol=1e-10, atol=1e-12)
        v = A @ v
    np.testing.assert_allclose(ds.remainder.values, (s * (L @ v)).reshape(R, N), rtol=1e-9, atol=1e-12)
    assert float(ds.layers_total) == pytest.approx(float(s @ L @ y), rel=1e-12)
    # identity: everything embodied in export demand is in a layer or the remainder
    assert float(ds.layers.sum() + ds.remainder.sum()) == pytest.approx(float(ds.layers_total), rel=1e-10)
    # paths: sorted, shares of the total, and the top path's value computed by hand
    np.testing.assert_allclose(ds.path_share.values, ds.path_value.values / float(ds.layers_total), rtol=1e-10)
    assert (np.diff(ds.path_value.values) <= 1e-12).all()
    assert 0 < float(ds.path_coverage) <= 1
    assert all("units" in ds[v].attrs for v in ds.data_vars)
    assert ds.layers.attrs["units"] == "kt" and "share_deaths_exports" not in ds  # no chain given


def test_report_from_dataset(ds, tmp_path):
    path = ep.report(ds, tmp_path / "out")
    text = path.read_text()
    assert f"{100 * float(ds.indirect_share_ape):.1f}%" in text and "75.4%" in text and "synthetic" in text.lower()
    assert "Skipped: the chain" in text  # no chain given
    for f in ("export_emissions.png", "layers.png"):
        assert (tmp_path / "out" / "figures" / f).is_file()
    back = xr.load_dataset(tmp_path / "out" / "results" / "export_pollution.nc")
    xr.testing.assert_allclose(back.total, ds.total)


def test_report_chain_section_from_dataset(ds, tmp_path):
    # the chain section of the report reads the right numbers (a dataset with known chain variables, no chain)
    regions = list(ds.region.values)
    R = len(regions)
    rng = np.random.default_rng(0)
    routes = [f"exports of {r}" for r in regions] + ["domestic"]
    chain = xr.Dataset(
        {
            "deaths_by_foreign": (("attribution", "foreign", "receptor"), rng.uniform(1, 10, (2, 2, R)), {"units": "deaths yr-1"}),
            "deaths_by_route": (("attribution", "route", "receptor"), rng.uniform(1, 10, (2, R + 1, R)), {"units": "deaths yr-1"}),
            "pwpm_by_foreign": (("attribution", "foreign", "receptor"), rng.uniform(0, 3, (2, 2, R)), {"units": "ug m-3"}),
            "pwpm_by_route": (("attribution", "route", "receptor"), rng.uniform(0, 3, (2, R + 1, R)), {"units": "ug m-3"}),
            "deaths": (("receptor",), rng.uniform(100, 1000, R), {"units": "deaths yr-1"}),
            "pwpm": (("receptor",), rng.uniform(5, 50, R), {"units": "ug m-3"}),
            "population": (("receptor",), rng.uniform(1e6, 1e7, R), {"units": "persons"}),
            "share_deaths_exports": (("attribution",), [0.123, 0.234], {"units": "1"}),
            "share_pwpm_exports": (("attribution",), [0.0456, 0.0567], {"units": "1"}),
        },
        coords={"attribution": ["zero_out", "path"], "foreign": ["foreign", "domestic"], "route": routes,
                "receptor": regions},
    )  # fmt: skip
    full = xr.merge([ds, chain]).assign_attrs(ds.attrs | {"chain": 1, "n_nodes": 2, "n_intervals": 1})
    text = ep.report(full, tmp_path / "out").read_text()
    assert "12.3% (zero-out), 23.4% (path-integrated)" in text and "4.6% (zero-out), 5.7% (path-integrated)" in text
    zo_routes = float(chain.deaths_by_route.sel(attribution="zero_out").values[:R].sum())
    zo_all = float(chain.deaths_by_foreign.sel(attribution="zero_out", foreign="foreign").sum())
    assert f"gives {zo_routes:,.0f} deaths in total vs {zo_all:,.0f} for all exports" in text
    assert (tmp_path / "out" / "figures" / "health_exports.png").is_file()


def test_bad_arguments(mrio):
    with pytest.raises(ValueError, match="stressor 'CO3'"):
        ep.compute(mrio, stressor="CO3")
    with pytest.raises(ValueError, match="give `mrio`"):
        ep.compute()
    with pytest.raises(ValueError, match="T=0"):
        ep.compute(mrio, T=0)


@pytest.mark.slow
def test_chain_section_by_hand(quick_demo_chain):
    # deaths only (the pwpm target runs the same code with target="pwpm"): 4 attributions instead of 8
    chain = quick_demo_chain.chain
    ds = ep.compute(chain=chain, T=1, n_paths=2, n_nodes=2, n_intervals=1, targets=("deaths",), synthetic=True)
    assert "pwpm_by_foreign" not in ds and "share_pwpm_exports" not in ds
    with pytest.raises(ValueError, match="targets=\\['PM'\\]"):
        ep.compute(chain=chain, targets=["PM"])
    mrio = chain.mrio
    inp = chain.base_inputs()
    R, N, K = mrio.n_regions, mrio.n_sectors, mrio.n_categories
    keep = np.ones((R * N, R, K))
    keep[:, :, list(mrio.categories).index("export")] = 0.0
    base = chain(inp)
    no_exp = chain(eqx.tree_at(lambda i: i.Y, inp, inp.Y * keep.reshape(R * N, R * K)))
    d_base, d_no = float(base.deaths.sum()), float(no_exp.deaths.sum())
    assert float(ds.deaths.sum()) == pytest.approx(d_base, rel=1e-9)
    assert float(ds.share_deaths_exports.sel(attribution="zero_out")) == pytest.approx((d_base - d_no) / d_base, rel=1e-6)
    # zero-out per receptor, by hand
    np.testing.assert_allclose(ds.deaths_by_foreign.sel(attribution="zero_out", foreign="foreign").values,
                               np.asarray(base.deaths.sum(axis=(0, 1))) - np.asarray(no_exp.deaths.sum(axis=(0, 1))),
                               rtol=1e-6)
    # path-integrated: foreign + domestic = J(Y) - J(0) (Aumann-Shapley completeness) ...
    d_zero = float(chain.target(eqx.tree_at(lambda i: i.Y, inp, inp.Y * 0.0), "deaths"))
    path = ds.sel(attribution="path")
    assert float(path.deaths_by_foreign.sum()) == pytest.approx(float(chain.target(inp, "deaths")) - d_zero, rel=1e-8)
    # ... and the export routes add up to all exports (one group per route, plus domestic demand)
    routes = path.deaths_by_route.sel(route=[f"exports of {r}" for r in mrio.regions]).sum()
    assert float(routes) == pytest.approx(float(path.deaths_by_foreign.sel(foreign="foreign").sum()), rel=1e-8)
    # ... and the experiment's index groups give the dense-mask attribution, both methods
    masks, labels = _dense_route_masks(mrio)
    for method in ep.METHODS:
        q = dict(n_nodes=2, n_intervals=1) if method == "path" else {}
        dense = diffmrio.chain.attribute(chain, inp, method=method, target="deaths", masks=masks, labels=labels, **q)
        np.testing.assert_allclose(ds.deaths_by_route.sel(attribution=method, route=labels).values, dense.values,
                                   rtol=1e-12, atol=1e-12 * float(np.abs(dense).max()))
    assert all("units" in ds[v].attrs for v in ds.data_vars)


def _dense_route_masks(mrio):
    """The export routes as dense masks [group, n, fd], built column by column (the reference)."""
    R, N, K = mrio.n_regions, mrio.n_sectors, mrio.n_categories
    masks = np.zeros((R + 1, R * N, R * K))
    for e in range(R):
        for c, cat in enumerate(mrio.categories):
            masks[e if cat == "export" else R, :, e * K + c] = 1.0  # region e's exports, or its domestic demand
    return masks, [f"exports of {r}" for r in mrio.regions] + ["domestic"]


def test_export_routes_are_index_groups_equal_to_dense_masks():
    """The route grouping is a GroupIndex over Y's columns (memory O(fd), no [group, n, fd] array) that partitions
    Y exactly like the dense masks, and attributes the same numbers (zero-out here; both methods through the
    experiment in the slow test below)."""
    from _chains import small_chain

    chain = small_chain(ny=3, nx=4)
    mrio = chain.mrio
    groups = ep.export_groups(mrio)
    masks, labels = _dense_route_masks(mrio)
    assert groups.axis == "col" and np.asarray(groups.ids).shape == (mrio.Y.shape[1],)
    assert list(groups.labels) == labels
    np.testing.assert_array_equal(masks.sum(axis=0), 1.0)  # the reference is a partition
    onehot = np.asarray(groups.ids)[None, :] == np.arange(len(labels))[:, None]  # [group, fd]
    np.testing.assert_array_equal(np.broadcast_to(onehot[:, None, :], masks.shape), masks == 1.0)
    inp = chain.base_inputs()
    got = diffmrio.chain.attribute(chain, inp, by=groups, method="zero_out", target="pwpm")
    dense = diffmrio.chain.attribute(chain, inp, masks=masks, labels=labels, method="zero_out", target="pwpm")
    assert list(got.group.values) == labels
    np.testing.assert_allclose(got.values, dense.values, rtol=1e-12, atol=1e-12 * float(np.abs(dense).max()))
    with pytest.raises(ValueError, match="no final-demand category 'exports'"):
        ep.export_groups(mrio, "exports")
