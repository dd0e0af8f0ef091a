"""experiments.china_health_2015 on the real shared data: provincial totals vs an explicit numpy computation
from the raw CSV files (GEMM 5-COD parameters read from reference/gemm_burnett2018.csv), and the national
totals vs the published GBD 2015 estimate for China."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from experiments import china_health_2015 as ch

SUBSET = ("Beijing", "Tianjin", "Ningxia", "Hainan")


@pytest.fixture(scope="module")
def result(shared_dir, tmp_path_factory):
    return ch.run(tmp_path_factory.mktemp("china"), shared_dir)


def _gemm_params(shared):
    g = pd.read_csv(shared / "reference" / "gemm_burnett2018.csv", comment="#")
    g = g[g["region"] == "inc_China"]
    return {(r.cause, r.age): (r.theta, r.alpha, r.mu, r.nu) for r in g.itertuples()}


def _age_label(cause, a):
    if cause not in ("IHD", "Stroke"):
        return "25+"
    if a >= 80:
        return "80+"
    return f"{a}-{a + 4}"


def test_provinces_vs_numpy(result, shared_dir):
    d = shared_dir / "data" / "china_0p1deg"
    grid = pd.read_csv(d / "grid_info_0p1deg.csv.gz")
    pm = pd.read_csv(d / "pm25_0p1deg.csv.gz")
    pop = pd.read_csv(d / "population_0p1deg.csv.gz")
    prov = pd.read_csv(shared_dir / "reference" / "china_provinces.csv", comment="#")
    cells = grid.merge(pm[["x", "y", "2015"]].rename(columns={"2015": "pm"}), on=["x", "y"]).merge(
        pop[["x", "y", "2015"]].rename(columns={"2015": "pop"}), on=["x", "y"])
    cells = cells.merge(prov[["name", "name_zh"]], left_on="Province", right_on="name_zh")
    mort = pd.read_csv(d / "gbd_china_mortality_per100k_2000-2019.csv")
    mort = mort[mort["year"] == 2015].set_index("endpoint")
    agep = pd.read_csv(d / "gbd_china_population_by_age_2000-2017.csv")
    agep = agep[agep["year"] == 2015].drop(columns="year").iloc[0]
    agef = agep / agep.sum()
    par = _gemm_params(shared_dir)
    for p in SUBSET:
        c = cells[(cells["name"] == p) & (cells["pop"] > 0)]
        z = np.maximum(0.0, c["pm"].to_numpy() - 2.4)
        P = c["pop"].to_numpy()
        total = 0.0
        for cause in ("IHD", "Stroke", "COPD", "LC", "LRI"):
            for a in range(25, 100, 5):
                th, al, mu, nu = par[(cause, _age_label(cause, a))]
                rr = np.exp(th * np.log1p(z / al) / (1 + np.exp(-(z - mu) / nu)))
                total += float(np.sum(P * agef[str(a)] * mort.loc[cause, str(a)] / 1e5 * (1 - 1 / rr)))
        assert result["by_province"]["GEMM 5-COD"][p] == pytest.approx(total, rel=1e-9), p


def test_national_totals_vs_published(result):
    nat = result["national"]
    gbd_china_2015 = 1.1e6  # GBD 2015 (Cohen et al. 2017): ~1.1 million PM2.5 deaths in China
    assert 0.67 < nat["IER (Burnett 2014)"] / gbd_china_2015 < 2.0
    # GEMM exceeds IER (Burnett et al. 2018: 8.9 M vs 4.0 M worldwide)
    assert nat["GEMM NCD+LRI"] > nat["GEMM 5-COD"] > nat["IER (Burnett 2014)"]
    assert len(result["by_province"]["GEMM 5-COD"]) == 31
    assert sum(result["by_province"]["GEMM 5-COD"].values()) == pytest.approx(nat["GEMM 5-COD"], rel=1e-12)
    assert 1.3e9 < result["population"] < 1.45e9


def test_dataset_identities_and_report(result, tmp_path):
    ds = result["dataset"]
    d = ds.deaths
    # each model has exactly its causes; the national total is the sum over causes and provinces
    assert np.isfinite(d.sel(model="GEMM 5-COD", cause=list(ch.H.FIVE_CAUSES))).all()
    assert np.isnan(d.sel(model="GEMM 5-COD", cause="NCD+LRI")).all()
    assert np.isnan(d.sel(model="GEMM NCD+LRI").drop_sel(cause="NCD+LRI")).all()
    for m, v in result["national"].items():
        assert float(np.nansum(d.sel(model=m).values)) == pytest.approx(v, rel=1e-12)
    assert float(ds.population.sum()) == pytest.approx(result["population"], rel=1e-12)
    assert all("units" in ds[v].attrs for v in ds.data_vars)
    # the report is written from the dataset alone
    text = ch.report(ds, tmp_path / "out").read_text()
    assert f"| IER (Burnett 2014 central) | {result['national']['IER (Burnett 2014)'] / 1e6:.2f} M |" in text
    back = xr.load_dataset(tmp_path / "out" / "results" / "deaths_by_province.nc")
    xr.testing.assert_allclose(back.deaths, ds.deaths)
    csv = pd.read_csv(tmp_path / "out" / "results" / "deaths_by_province.csv", index_col=0)
    assert csv.loc["Beijing", "GEMM 5-COD"] == pytest.approx(result["by_province"]["GEMM 5-COD"]["Beijing"], rel=1e-5)


def test_clear_error_without_shared(tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        ch.main(["--out", str(tmp_path / "o"), "--shared", str(tmp_path / "nothing")])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert str(tmp_path / "nothing" / "data" / "china_0p1deg") in err and "--shared DIR" in err
