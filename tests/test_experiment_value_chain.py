"""experiments.value_chain: `compute`'s numbers against independent numpy computations on the demo world with a
known deaths row (fast, no chain), `chain_inputs` against the chain, and `report` from the dataset."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

import diffmrio
from diffmrio.chain import with_deaths_row
from diffmrio.datasets import demo_world
from experiments import value_chain as vcx


@pytest.fixture(scope="module")
def inputs():
    m = demo_world(seed=0, geography=False).mrio
    rng = np.random.default_rng(1)
    mrio = with_deaths_row(m, rng.uniform(0, 20, m.n), rng.uniform(0, 5, np.shape(m.Y)[1]))
    pop = rng.uniform(5e6, 9e7, m.n_regions)
    borne = rng.uniform(1e3, 5e4, m.n_regions)
    return mrio, pop, borne


@pytest.fixture(scope="module")
def ds(inputs):
    return vcx.compute(*inputs, synthetic=True)


def _gini_lorenz_loop(q, p):
    """1 - 2 x (area under the Lorenz curve), trapezoids, by an explicit loop over regions sorted by q/p."""
    order = sorted(range(len(q)), key=lambda i: q[i] / p[i])
    P, Q = sum(p), sum(q)
    area, cum_q = 0.0, 0.0
    for i in order:
        prev = cum_q
        cum_q += q[i] / Q
        area += (p[i] / P) * (prev + cum_q) / 2.0
    return 1.0 - 2.0 * area


def test_totals_and_parts_vs_numpy(ds, inputs):
    mrio, _, _ = inputs
    F = np.asarray(mrio.F)
    R = mrio.n_regions
    for st in vcx.STRESSORS:  # production-based: the table's own row summed by region
        np.testing.assert_allclose(ds.total.sel(stressor=st).values,
                                   F[list(mrio.stressors).index(st)].reshape(R, -1).sum(1), rtol=1e-10)
    np.testing.assert_allclose(ds.parts.sum("part"), ds.total, rtol=1e-9)
    # intra-regional part by hand: F_s (I - A_ss)^-1 y_ss, one region at a time
    Z, Y = np.asarray(mrio.Z), np.asarray(mrio.Y)
    x = Z.sum(1) + Y.sum(1)
    A = Z / x[None, :]
    N, K = mrio.n_sectors, mrio.n_categories
    s_va = F[list(mrio.stressors).index("value_added")] / x
    for r in range(R):
        rows = slice(r * N, (r + 1) * N)
        y_rr = Y[rows, r * K:(r + 1) * K].sum(1)
        intra = s_va[rows] @ np.linalg.solve(np.eye(N) - A[rows, rows], y_rr)
        assert float(ds.parts.sel(stressor="value_added", part="intra_regional").values[r]) == pytest.approx(intra, rel=1e-9)
    up = ds.FE.sum("importer") / (ds.EX.sum("importer") + ds.FE.sum("importer"))
    np.testing.assert_allclose(ds.upstream_share.values, up.values, rtol=1e-12)
    assert ((ds.upstream_share >= 0) & (ds.upstream_share <= 1)).all()
    assert float(ds.deaths_first_order_industry) == pytest.approx(F[-1].sum(), rel=1e-12)
    assert all("units" in ds[v].attrs for v in ds.data_vars)


def test_inequality_vs_independent(ds, inputs):
    _, pop, borne = inputs
    income = ds.total.sel(stressor="value_added").values
    for q, v in (("income (value added)", income), ("damage borne (deaths)", borne),
                 ("damage caused (deaths)", ds.total.sel(stressor="deaths").values)):
        assert float(ds.gini.sel(quantity=q)) == pytest.approx(_gini_lorenz_loop(list(v), list(pop)), abs=1e-12)
        y = v / pop
        w = pop / pop.sum()
        m = (w * y).sum()
        assert float(ds.cv.sel(quantity=q)) == pytest.approx(np.sqrt((w * (y - m) ** 2).sum()) / m, rel=1e-10)
    P, Q = (np.asarray(a) for a in diffmrio.scenarios.lorenz_curve(borne, pop))
    assert P[0] == Q[0] == 0 and P[-1] == pytest.approx(1) and Q[-1] == pytest.approx(1)
    assert (np.diff(Q) / np.diff(P) >= np.diff(Q)[0] / np.diff(P)[0] - 1e-12).all()  # convex: sorted per capita


def test_report_and_errors(ds, inputs, tmp_path):
    path = vcx.report(ds, tmp_path / "out")
    text = path.read_text()
    assert f"{float(ds.gini.sel(quantity='income (value added)')):.3f}" in text and "synthetic" in text.lower()
    for f in ("parts.png", "lorenz.png", "bilateral_deaths.png"):
        assert (tmp_path / "out" / "figures" / f).is_file()
    back = xr.load_dataset(tmp_path / "out" / "results" / "value_chain.nc")
    np.testing.assert_allclose(back.gini.values, ds.gini.values)
    mrio, pop, borne = inputs
    with pytest.raises(ValueError, match="population has shape"):
        vcx.compute(mrio, pop[:2], borne)
    with pytest.raises(ValueError, match=r"no stressor rows \['deaths'\]"):
        vcx.compute(demo_world(seed=0, geography=False).mrio, pop, borne)


@pytest.mark.slow
def test_chain_inputs(quick_demo_chain):
    chain = quick_demo_chain.chain
    mrio, pop, borne = vcx.chain_inputs(chain)
    hi = chain.health.inputs
    np.testing.assert_allclose(pop, np.asarray(hi.to_regions(hi.population)), rtol=1e-12)
    np.testing.assert_allclose(borne, np.asarray(chain(chain.base_inputs()).deaths.sum(axis=(0, 1))), rtol=1e-12)
    assert mrio.stressors[-1] == "deaths" and mrio.n == chain.mrio.n
