"""Smoke test of experiments.uncertainty on the quick demo chain."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

from experiments import uncertainty as un

SIZES = (16, 32, 64)


@pytest.fixture(scope="module")
def result(quick_demo_chain, tmp_path_factory):
    out = tmp_path_factory.mktemp("uncertainty")
    return out, un.run(out, demo=quick_demo_chain, sizes=SIZES, n_one=32, chunk_size=32, progress=False)


def test_prefix_statistics_vs_numpy(result):
    out, res = result
    ds = xr.load_dataset(out / "results" / "uncertainty.nc")
    tot = ds.total_deaths.values
    for n in SIZES:
        s = ds.total_stats.sel(size=n).values
        assert s[0] == pytest.approx(tot[:n].mean(), rel=1e-12)
        assert s[1] == pytest.approx(np.percentile(tot[:n], 2.5), rel=1e-12)
        assert s[2] == pytest.approx(np.percentile(tot[:n], 97.5), rel=1e-12)
    # changes vs the largest run vanish at the largest run; percentiles are ordered
    np.testing.assert_array_equal(ds.total_rel_change.sel(size=SIZES[-1]).values, 0.0)
    st = ds.attribution_stats.values
    assert (st[:, 1] <= st[:, 0]).all() and (st[:, 0] <= st[:, 2]).all()
    assert res["total_interval"][0] < res["total_mean"] < res["total_interval"][1]


def test_mean_converges_within_mc_error(result):
    """Nested prefixes: mean_n - mean_N has sd = sigma sqrt(1/n - 1/N); allow 4 of them."""
    out, _ = result
    ds = xr.load_dataset(out / "results" / "uncertainty.nc")
    tot = ds.total_deaths.values
    N = SIZES[-1]
    sigma = tot.std(ddof=1)
    for n in SIZES[:-1]:
        assert abs(tot[:n].mean() - tot.mean()) <= 4 * sigma * np.sqrt(1 / n - 1 / N)


def test_one_at_a_time_samples_only_that_input(result, quick_demo_chain):
    out, res = result
    chain = quick_demo_chain.chain
    ds = xr.load_dataset(out / "results" / "uncertainty.nc")
    central = float(chain(chain.base_inputs()).deaths.sum())
    base_only = ds.one_at_a_time.sel(input="baseline mortality").values
    # deaths are linear in the mean-one baseline factors: the draws scatter around the central value
    assert abs(base_only.mean() - central) <= 4 * base_only.std(ddof=1) / np.sqrt(base_only.size)
    # CRF-only and baseline-only draws never equal each other (different inputs sampled), and all vary
    for name in ("inventories", "CRF", "baseline mortality", "all"):
        assert ds.one_at_a_time.sel(input=name).std() > 0
    assert sum(res["variance_share"].values()) == pytest.approx(100.0)


def test_outputs_and_bad_sizes(result, tmp_path, quick_demo_chain):
    out, _ = result
    text = (out / "report.md").read_text()
    assert "synthetic" in text.lower() and "draws/s" in text
    for f in ("convergence.png", "contributions.png"):
        assert (out / "figures" / f).stat().st_size > 1000
    with pytest.raises(ValueError, match="sizes"):
        un.run(tmp_path, demo=quick_demo_chain, sizes=(100,), progress=False)


def test_first_stable():
    sizes = (10, 30, 100, 300)
    assert un.first_stable(sizes, [0.05, 0.005, -0.002, 0.0], 0.01) == 30
    assert un.first_stable(sizes, [0.005, 0.05, 0.002, 0.0], 0.01) == 100  # a later excursion resets it
    assert un.first_stable(sizes, [0.05, 0.05, 0.02, 0.0], 0.01) is None
