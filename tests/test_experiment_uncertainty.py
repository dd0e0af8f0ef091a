"""experiments.uncertainty: `compute`'s statistics against numpy on the same draws (prefix means and percentiles,
variances, interval widths, variance shares), Monte Carlo identities, and `report` written from the dataset."""

from __future__ import annotations

import equinox as eqx
import numpy as np
import pytest
import xarray as xr

from experiments import uncertainty as un

SIZES = (8, 16, 32)
N_ONE = 16
#: each one-at-a-time run compiles the chain once (~15 s here): two inputs and "all" cover the code paths
INPUTS = ("CRF", "baseline mortality")


@pytest.fixture(scope="module")
def ds(quick_demo_chain):
    return un.compute(quick_demo_chain.chain, sizes=SIZES, n_one=N_ONE, inputs=INPUTS, chunk_size=16, progress=False,
                      source="quick demo chain")


def test_prefix_statistics_vs_numpy(ds):
    tot, attr = ds.total_deaths.values, ds.attribution.values
    for n in SIZES:
        s = ds.total_stats.sel(size=n).values
        np.testing.assert_allclose(s, [tot[:n].mean(), np.percentile(tot[:n], 2.5), np.percentile(tot[:n], 97.5)],
                                   rtol=1e-12)
        a = ds.attribution_stats.sel(size=n).values  # (statistic, consumer)
        np.testing.assert_allclose(a[1], np.percentile(attr[:n], 2.5, axis=0), rtol=1e-12)
        ref = np.stack([attr.mean(0), np.percentile(attr, 2.5, axis=0), np.percentile(attr, 97.5, axis=0)])
        np.testing.assert_allclose(ds.attribution_max_rel_change.sel(size=n).values,
                                   np.abs(np.stack([attr[:n].mean(0), np.percentile(attr[:n], 2.5, axis=0),
                                                    np.percentile(attr[:n], 97.5, axis=0)]) / ref - 1).max(1),
                                   rtol=1e-9, atol=1e-15)
        assert float(ds.mc_se_mean.sel(size=n)) == pytest.approx(tot.std(ddof=1) / np.sqrt(n), rel=1e-12)
    # changes vs the largest run vanish at the largest run; percentiles are ordered
    np.testing.assert_array_equal(ds.total_rel_change.sel(size=SIZES[-1]).values, 0.0)
    st = ds.attribution_stats.values
    assert (st[:, 1] <= st[:, 0]).all() and (st[:, 0] <= st[:, 2]).all()
    assert all("units" in ds[v].attrs for v in ds.data_vars)


def test_mean_converges_within_mc_error(ds):
    """Nested prefixes: mean_n - mean_N has sd = sigma sqrt(1/n - 1/N); allow 4 of them."""
    tot = ds.total_deaths.values
    N = SIZES[-1]
    sigma = tot.std(ddof=1)
    for n in SIZES[:-1]:
        assert abs(tot[:n].mean() - tot.mean()) <= 4 * sigma * np.sqrt(1 / n - 1 / N)


def test_one_at_a_time_vs_numpy(ds, quick_demo_chain):
    chain = quick_demo_chain.chain
    one = ds.one_at_a_time.values  # (input, draw)
    var = one.var(axis=1, ddof=1)
    np.testing.assert_allclose(ds.variance.values, var, rtol=1e-12)
    np.testing.assert_allclose(ds.width_pct.values, 100 * (np.percentile(one, 97.5, 1) - np.percentile(one, 2.5, 1))
                               / one.mean(1), rtol=1e-12)
    assert list(ds.input.values) == [*INPUTS, "all"]
    np.testing.assert_allclose(ds.variance_share_pct.values[:-1], 100 * var[:-1] / var[:-1].sum(), rtol=1e-12)
    assert float(ds.variance_share_pct.sum()) == pytest.approx(100.0)  # NaN for "all" is skipped
    assert np.isnan(float(ds.variance_share_pct.sel(input="all")))
    central = float(eqx.filter_jit(lambda c, i: c.target(i, "deaths"))(chain, chain.base_inputs()))
    base_only = ds.one_at_a_time.sel(input="baseline mortality").values
    # deaths are linear in the mean-one baseline factors: the draws scatter around the central value
    assert abs(base_only.mean() - central) <= 4 * base_only.std(ddof=1) / np.sqrt(base_only.size)
    for name in (*INPUTS, "all"):  # every input varies the deaths
        assert ds.one_at_a_time.sel(input=name).std() > 0
    h = un.headline(ds)
    assert sum(h["variance_share"].values()) == pytest.approx(100.0)
    assert h["total_interval"][0] < h["total_mean"] < h["total_interval"][1]


def test_report_from_dataset(ds, tmp_path):
    text = un.report(ds, tmp_path / "out").read_text()
    m = float(ds.total_stats.sel(size=SIZES[-1], statistic="mean"))
    assert f"| {SIZES[-1]} | {m:,.1f} |" in text and "synthetic" in text.lower() and "draws/s" in text
    top = max(INPUTS, key=lambda k: float(ds.variance_share_pct.sel(input=k)))
    assert f"**{top} dominates** ({float(ds.variance_share_pct.sel(input=top)):.0f}% of the variance)" in text
    back = xr.load_dataset(tmp_path / "out" / "results" / "uncertainty.nc")
    xr.testing.assert_allclose(back.total_stats, ds.total_stats)


def test_bad_sizes(quick_demo_chain):
    with pytest.raises(ValueError, match="sizes"):
        un.compute(quick_demo_chain.chain, sizes=(100,), progress=False)
    with pytest.raises(ValueError, match="n_one"):
        un.compute(quick_demo_chain.chain, sizes=(4, 8), n_one=1, progress=False)
    with pytest.raises(ValueError, match="inputs"):
        un.compute(quick_demo_chain.chain, sizes=(4, 8), inputs=("emulator",), progress=False)


def test_first_stable():
    sizes = (10, 30, 100, 300)
    assert un.first_stable(sizes, [0.05, 0.005, -0.002, 0.0], 0.01) == 30
    assert un.first_stable(sizes, [0.005, 0.05, 0.002, 0.0], 0.01) == 100  # a later excursion resets it
    assert un.first_stable(sizes, [0.05, 0.05, 0.02, 0.0], 0.01) is None
