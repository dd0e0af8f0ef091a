"""experiments.global_health_2015 on the real shared data: identities of `compute`'s dataset (the IER draw mean is
the mean of the per-draw totals, country populations add up to the grid's, each model has its causes), Monte Carlo
summaries against numpy on the same draws, national totals against the published estimates, and `report` written
from the dataset."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from diffmrio import health as H
from experiments import global_health_2015 as gh

N_DRAWS = 4
#: loading the 0.5-degree world grid and compiling four CRF models takes ~20 s of CPU
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def inputs(shared_dir):
    return gh.load_inputs(shared_dir)


@pytest.fixture(scope="module")
def ds(inputs):
    return gh.compute(inputs, n_draws=N_DRAWS, seed=0)


def test_identities(ds, inputs):
    d = ds.deaths
    five = list(H.FIVE_CAUSES)
    assert np.isfinite(d.sel(model="GEMM 5-COD", cause=five)).all()
    assert np.isnan(d.sel(model="GEMM 5-COD", cause="NCD+LRI")).all()
    assert np.isfinite(d.sel(model="GEMM NCD+LRI", cause="NCD+LRI")).all()
    assert np.isnan(d.sel(model="GEMM NCD+LRI", cause=five)).all()
    # the IER draw-mean row is the mean over the per-draw totals (summed over causes)
    np.testing.assert_allclose(d.sel(model="IER (GBD 2015 draws, mean)").sum("cause", skipna=True).values,
                               ds.mc_total.sel(mc="IER (GBD 2015 draws)").mean("draw").values, rtol=1e-10)
    # every labelled person is in a country of the dataset or counted as dropped (no GBD rates)
    lab = inputs["regions"].values
    pop = np.nan_to_num(inputs["population"].values)
    assert float(ds.population.sum()) + ds.attrs["dropped_pop"] == pytest.approx(float(pop[lab != ""].sum()), rel=1e-9)
    # Monte Carlo summaries are numpy's on the same draws
    tot = ds.mc_total.sel(mc="GEMM NCD+LRI").values
    np.testing.assert_allclose(ds.total_lo_GEMM_NCDLRI.values, np.percentile(tot, 2.5, axis=0), rtol=1e-12)
    np.testing.assert_allclose(ds.total_mean_GEMM_NCDLRI.values, tot.mean(0), rtol=1e-12)
    assert all("units" in ds[v].attrs for v in ds.data_vars)


def test_totals_vs_published(ds):
    tot = ds.deaths.sum("cause", skipna=True)
    for c in ("China", "India"):  # GBD 2015 (Cohen et al. 2017): ~1.1 million each
        assert 0.5 < float(tot.sel(model="IER (GBD 2015 draws, mean)", country=c)) / 1.1e6 < 2.0
    g = tot.sum("country")
    # Burnett et al. 2018: GEMM NCD+LRI 8.9 M vs GBD IER 4.0 M worldwide; GEMM exceeds IER
    assert 1.3 < float(g.sel(model="GEMM NCD+LRI") / g.sel(model="IER (GBD 2015 draws, mean)")) < 3.5
    assert float(g.sel(model="GEMM NCD+LRI")) > float(g.sel(model="GEMM 5-COD"))


def test_report_from_dataset(ds, tmp_path):
    summary = gh.report(ds, tmp_path / "out")
    china = float(ds.deaths.sel(country="China", model="GEMM 5-COD").sum(skipna=True))
    assert summary["China"]["GEMM 5-COD"] == pytest.approx(china, rel=1e-12)
    text = (tmp_path / "out" / "report.md").read_text()
    assert f"| China | {gh._fmt(summary['China']['GEMM NCD+LRI'])} | {gh._fmt(china)} |" in text
    csv = pd.read_csv(tmp_path / "out" / "deaths_by_country.csv", index_col=0)
    assert csv.index[0] == gh.country_table(ds).index[0]
    back = xr.load_dataset(tmp_path / "out" / "deaths_by_country.nc")
    xr.testing.assert_allclose(back.deaths, ds.deaths)
    assert (tmp_path / "out" / "top15_gemm_vs_ier.png").is_file()
