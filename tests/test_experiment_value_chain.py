"""Smoke test of experiments.value_chain on the quick demo chain, with headlines recomputed independently."""

from __future__ import annotations

import jax
import numpy as np
import pytest
import xarray as xr

from experiments import value_chain as vcx


@pytest.fixture(scope="module")
def result(quick_demo_chain, tmp_path_factory):
    out = tmp_path_factory.mktemp("value_chain")
    return out, vcx.run(out, demo=quick_demo_chain, progress=False)


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


def test_gini_and_cv_vs_independent(result, quick_demo_chain):
    out, res = result
    chain = quick_demo_chain.chain
    hi = chain.health.inputs
    pop = np.asarray(hi.to_regions(hi.population))
    borne = np.asarray(chain(chain.base_inputs()).deaths.sum(axis=(0, 1)))
    ds = xr.load_dataset(out / "results" / "value_chain.nc")
    income = ds.total.sel(stressor="value_added").values
    # value added produced in each region, straight from the table's F row
    va = np.asarray(chain.mrio.F[list(chain.mrio.stressors).index("value_added")]).reshape(chain.mrio.n_regions, -1).sum(1)
    np.testing.assert_allclose(income, va, rtol=1e-10)
    assert res["gini_income"] == pytest.approx(_gini_lorenz_loop(list(income), list(pop)), abs=1e-12)
    assert res["gini_damage"] == pytest.approx(_gini_lorenz_loop(list(borne), list(pop)), abs=1e-12)
    y = borne / pop
    w = pop / pop.sum()
    m = (w * y).sum()
    assert res["cv_damage"] == pytest.approx(np.sqrt((w * (y - m) ** 2).sum()) / m, rel=1e-10)
    assert 0 <= res["gini_damage"] < 1 and 0 <= res["gini_income"] < 1


def test_deaths_row_and_decomposition_identities(result, quick_demo_chain):
    out, _ = result
    chain = quick_demo_chain.chain
    inp = chain.base_inputs()
    ds = xr.load_dataset(out / "results" / "value_chain.nc")
    # parts sum to the production-based total for every stressor
    np.testing.assert_allclose(ds.parts.sum("part"), ds.total, rtol=1e-9)
    # the deaths row is the emission-weighted gradient: sum over regions = grad_E J . E_industry
    E_ind_src = chain.source_map(inp.S * chain.output(inp)[None, :], inp.S_Y[:, :chain.mrio.n_regions] * 0.0)

    def J(E):
        return chain.deaths(chain.pm25(chain.concentration(E)), inp).sum()

    E_all = chain.emissions(inp)
    g = jax.grad(J)(E_all)
    expected = float((g * E_ind_src * inp.species_factor[:, None, None]).sum())
    assert float(ds.total.sel(stressor="deaths").sum()) == pytest.approx(expected, rel=1e-8)
    # upstream shares are shares
    assert ((ds.upstream_share >= 0) & (ds.upstream_share <= 1)).all()


def test_outputs(result):
    out, res = result
    text = (out / "report.md").read_text()
    assert "synthetic" in text.lower() and f"{res['gini_income']:.3f}" in text
    for f in ("parts.png", "lorenz.png", "bilateral_deaths.png"):
        assert (out / "figures" / f).stat().st_size > 1000
