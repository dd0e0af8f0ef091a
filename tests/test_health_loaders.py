"""Loaders for real health inputs: small files written in tmp_path in the shared-data layouts (values, grids,
errors naming the file and the fix), then the real files under ../shared."""

import gzip

import jax.numpy as jnp
import numpy as np
import pandas as pd
import pytest
import xarray as xr

from diffmrio.health import (
    FIVE_CAUSES,
    GEMM,
    HealthModel,
    build_health_inputs,
    load_gbd_age_structure,
    load_gbd_baseline_mortality,
    load_gbd_china_mortality,
    load_gbd_china_population_by_age,
    load_grid_regions,
    load_gridded_field,
    load_gridded_population,
    load_ier_draws,
    load_pm25_netcdf,
)

AGES = [0, 25, 60]


def write_world(tmp_path, gz=True):
    """A 3 x 4 grid at 0.5 deg (one cell missing from the population file), two countries and an unassigned cell."""
    xs, ys = [100.25, 100.75, 101.25, 101.75], [30.25, 30.75, 31.25]
    cells = [(x, y) for y in ys for x in xs]
    rng = np.random.default_rng(0)
    pop = {c: float(rng.integers(100, 10000)) for c in cells}
    country = {c: ("Aland" if c[0] < 101 else "Bland") for c in cells}
    country[(101.75, 31.25)] = None
    popdf = pd.DataFrame([(x, y, pop[(x, y)], 2 * pop[(x, y)]) for (x, y) in cells if (x, y) != (100.25, 30.25)],
                         columns=["x", "y", "base2015", "SSP1-Baseline_2030"])
    grid = pd.DataFrame([(x, y, country[(x, y)]) for (x, y) in cells if country[(x, y)]], columns=["x", "y", "Country"])
    rates = []
    for ci, cname in enumerate(["Aland", "Bland"]):
        for ei, e in enumerate(["IHD", "STROKE", "LRI", "NCD+LRI"]):
            for a in AGES:
                if e == "IHD" and a == 0:
                    continue  # structural absence (like COPD under 15 in GBD)
                rates.append((cname, e, a, 10.0 * (ci + 1) * (ei + 1) + a, 0.0))
    mort = pd.DataFrame(rates, columns=["Country", "endpoint", "agegroup", "base2015", "SSP1-Baseline_2030"])
    ages = pd.DataFrame([(c, a, s, s) for c, sh in (("Aland", [0.2, 0.5, 0.3]), ("Bland", [0.1, 0.6, 0.3]))
                         for a, s in zip(AGES, sh)], columns=["Country", "agegroup", "base2015", "SSP1-Baseline_2030"])
    ext = ".csv.gz" if gz else ".csv"
    paths = {}
    for name, df in (("population", popdf), ("grid", grid), ("mort", mort), ("ages", ages)):
        p = tmp_path / f"{name}{ext}"
        if gz:
            with gzip.open(p, "wt") as f:
                df.to_csv(f, index=False)
        else:
            df.to_csv(p, index=False)
        paths[name] = p
    return paths, pop, country, mort, ages


def test_gridded_loaders_place_cells(tmp_path):
    paths, pop, country, _, _ = write_world(tmp_path)
    P = load_gridded_population(paths["population"])
    assert P.dims == ("lat", "lon") and P.shape == (3, 4)
    assert P["lat"].values[0] > P["lat"].values[-1]  # north first
    for (x, y), v in pop.items():
        expect = 0.0 if (x, y) == (100.25, 30.25) else v
        assert float(P.sel(lat=y, lon=x)) == expect
    R = load_grid_regions(paths["grid"], like=P)
    assert R.sel(lat=31.25, lon=101.75).item() == ""
    assert R.sel(lat=30.75, lon=100.75).item() == "Aland"
    F = load_gridded_field(paths["population"], "SSP1-Baseline_2030", like=P)
    np.testing.assert_allclose(F.values[P.values > 0], 2 * P.values[P.values > 0])
    assert np.isnan(F.sel(lat=30.25, lon=100.25))


def test_gbd_tables(tmp_path):
    paths, _, _, mort, ages = write_world(tmp_path, gz=False)
    M = load_gbd_baseline_mortality(paths["mort"])
    assert M.dims == ("country", "endpoint", "age")
    row = mort[(mort.Country == "Bland") & (mort.endpoint == "LRI") & (mort.agegroup == 25)].base2015.item()
    assert float(M.sel(country="Bland", endpoint="LRI", age=25)) == pytest.approx(row * 1e-5)
    assert float(M.sel(country="Aland", endpoint="IHD", age=0)) == 0.0  # structural absence -> 0
    A = load_gbd_age_structure(paths["ages"])
    np.testing.assert_allclose(A.sel(country="Bland").values, [0.1, 0.6, 0.3])


def test_build_health_inputs_and_deaths_vs_numpy(tmp_path):
    paths, pop, country, mort, ages = write_world(tmp_path)
    P = load_gridded_population(paths["population"])
    R = load_grid_regions(paths["grid"], like=P)
    M = load_gbd_baseline_mortality(paths["mort"])
    A = load_gbd_age_structure(paths["ages"])
    causes = ("IHD", "STROKE", "LRI")
    for compress in (True, False):
        inputs = build_health_inputs(R, P, A, M, causes=causes, compress=compress)
        assert inputs.regions == ("Aland", "Bland") and inputs.ages == tuple(AGES)
        crf = GEMM.burnett2018(causes, ages=inputs.ages)
        C = np.linspace(5, 80, 12).reshape(3, 4)
        D = np.asarray(HealthModel(inputs, crf)(jnp.asarray(C)))
        # independent: loop over the cells of the source tables
        ref = np.zeros((3, 3, 2))
        rr = np.asarray(crf.relative_risk(jnp.asarray(C)))
        for i, y in enumerate(P["lat"].values):
            for j, x in enumerate(P["lon"].values):
                c = country.get((x, y))
                if not c or (x, y) == (100.25, 30.25):
                    continue
                r = ["Aland", "Bland"].index(c)
                for k, e in enumerate(causes):
                    for a_i, a in enumerate(AGES):
                        sel = mort[(mort.Country == c) & (mort.endpoint == e) & (mort.agegroup == a)].base2015
                        y0 = sel.item() * 1e-5 if len(sel) else 0.0
                        share = ages[(ages.Country == c) & (ages.agegroup == a)].base2015.item()
                        ref[k, a_i, r] += pop[(x, y)] * share * y0 * (1 - 1 / rr[k, a_i, i, j])
        np.testing.assert_allclose(D, ref, rtol=1e-12)
        # the labelled edge aligns a field by its coordinates: latitude ascending (as `read_cf_latlon` and
        # `sortby` give it) and dims transposed give the same deaths; `.values` of such a field would not
        C_da = xr.DataArray(C, dims=("lat", "lon"), coords={"lat": P["lat"].values, "lon": P["lon"].values})
        model = HealthModel(inputs, crf)
        for field in (C_da.sortby("lat"), C_da.sortby("lon", ascending=False).transpose("lon", "lat"),
                      C_da.rename(lat="row", lon="col")):  # other dims (a chain's pm25): taken in the grid's order
            np.testing.assert_allclose(model.evaluate(field)["deaths"].values, ref, rtol=1e-12)
        with pytest.raises(ValueError, match="`lon` values .* are not the health inputs' grid"):
            model.evaluate(C_da.assign_coords(lon=C_da["lon"].values + 0.25))


def test_unknown_country_raise_or_drop(tmp_path):
    paths, *_ = write_world(tmp_path)
    P = load_gridded_population(paths["population"])
    R = load_grid_regions(paths["grid"], like=P)
    M = load_gbd_baseline_mortality(paths["mort"]).sel(country=["Aland"])
    A = load_gbd_age_structure(paths["ages"])
    with pytest.raises(ValueError, match=r"Bland.*on_missing='drop'"):
        build_health_inputs(R, P, A, M, causes=("STROKE",))
    with pytest.warns(UserWarning, match="Bland") as record:
        inputs = build_health_inputs(R, P, A, M, causes=("STROKE",), on_missing="drop")
    assert [w.filename for w in record] == [__file__]  # the user's call, not the type checker's wrapper
    assert inputs.regions == ("Aland",)
    with pytest.raises(ValueError, match="no endpoint"):
        build_health_inputs(R, P, A, M, causes=("COPD",))


def test_loader_errors_name_file_and_fix(tmp_path):
    p = tmp_path / "mort.csv"
    p.write_text("Country,endpoint,base2015\nA,IHD,1\n")
    with pytest.raises(ValueError, match=r"mort\.csv.*missing column.*agegroup"):
        load_gbd_baseline_mortality(p)
    p.write_text("Country,endpoint,agegroup,base2015\nA,IHD,25,1\nA,IHD,30,\n")
    with pytest.raises(ValueError, match=r"mort\.csv.*NaN"):
        load_gbd_baseline_mortality(p)
    p.write_text("Country,endpoint,agegroup,base2015\nA,IHD,25,1\nA,IHD,30,2\nB,IHD,25,1\n")
    with pytest.raises(ValueError, match=r"mort\.csv.*rows missing.*\('B', 'IHD', 30\)"):
        load_gbd_baseline_mortality(p)
    p.write_text("Country,endpoint,agegroup,base2015\nA,IHD,25,1\nA,IHD,25,2\n")
    with pytest.raises(ValueError, match="duplicated"):
        load_gbd_baseline_mortality(p)
    p.write_text("Country,endpoint,agegroup,base2015\nA,IHD,25-29,1\n")
    with pytest.raises(ValueError, match="integer lower bounds"):
        load_gbd_baseline_mortality(p)
    q = tmp_path / "ages.csv"
    q.write_text("Country,agegroup,base2015\nA,0,0.5\nA,5,0.4\n")
    with pytest.raises(ValueError, match=r"ages\.csv.*sum to"):
        load_gbd_age_structure(q)
    g = tmp_path / "pop.csv"
    g.write_text("x,y,base2015\n0.25,0.25,1\n0.75,0.25,-3\n")
    with pytest.raises(ValueError, match=r"pop\.csv.*negative"):
        load_gridded_population(g)
    g.write_text("x,y,base2015\n0.25,0.25,1\n0.75,0.25,2\n1.1,0.75,2\n")
    with pytest.raises(ValueError, match="regular grid"):
        load_gridded_population(g)
    with pytest.raises(FileNotFoundError, match="nope.csv"):
        load_gridded_population(tmp_path / "nope.csv")


def test_china_wide_tables(tmp_path):
    m = tmp_path / "cm.csv"
    m.write_text('\ufeff"year","endpoint","0","25","60"\n2015,"Stroke",1,20,300\n2015,"LRI",50,2,40\n'
                 '2014,"Stroke",9,9,9\n', encoding="utf-8")
    M = load_gbd_china_mortality(m, 2015)
    assert list(M["endpoint"].values) == ["STROKE", "LRI"] and list(M["age"].values) == AGES
    np.testing.assert_allclose(M.sel(endpoint="STROKE").values, np.array([1, 20, 300]) * 1e-5)
    with pytest.raises(ValueError, match="no rows for year 2000"):
        load_gbd_china_mortality(m, 2000)
    p = tmp_path / "cp.csv"
    p.write_text("year,0,25,60\n2015,100,300,600\n")
    A = load_gbd_china_population_by_age(p, 2015)
    np.testing.assert_allclose(A.values, [0.1, 0.3, 0.6])
    assert A.attrs["total_population"] == 1000


def test_pm25_netcdf_nan_fill(tmp_path):
    v = np.arange(12.0).reshape(3, 4)
    v[1, 1] = np.nan
    ds = xr.Dataset({"PM2.5": (("time", "lat", "lon"), v[None])},
                    coords={"time": [0], "lat": [1.0, 0.5, 0.0], "lon": [0.0, 0.5, 1.0, 1.5]})
    p = tmp_path / "pm.nc"
    ds.to_netcdf(p)
    with pytest.raises(ValueError, match="fill_nan"):
        load_pm25_netcdf(p)
    out = load_pm25_netcdf(p, fill_nan="nearest")
    assert out.dims == ("lat", "lon") and out.attrs["n_filled"] == 1
    assert out.values[1, 1] in (v[0, 1], v[1, 0], v[1, 2], v[2, 1])
    assert load_pm25_netcdf(p, fill_nan="zero").values[1, 1] == 0.0
    with pytest.raises(ValueError, match="no variable"):
        load_pm25_netcdf(p, "PM10")
    # CF files often name the axes latitude/longitude: read the same field, not "select one first"
    p2 = tmp_path / "pm_long_names.nc"
    ds.rename(lat="latitude", lon="longitude").to_netcdf(p2)
    out2 = load_pm25_netcdf(p2, fill_nan="zero")
    assert out2.dims == ("lat", "lon")
    np.testing.assert_array_equal(out2.values, load_pm25_netcdf(p, fill_nan="zero").values)


@pytest.mark.parametrize("units, accepted", [("kg m-3", False), ("mg m-3", False), ("ppbv", False),
                                              ("ug/m3", True), ("µg m-3", True), (None, True)])
def test_pm25_netcdf_units(tmp_path, units, accepted):
    """A field in kg m-3 (1e-9 of the ug m-3 number) or a mixing ratio read as ug m-3 gives ~zero deaths without a
    word: any `units` other than a spelling of ug m-3 is refused, naming the file, the variable and the unit."""
    attrs = {} if units is None else {"units": units}
    ds = xr.Dataset({"PM25": (("lat", "lon"), np.full((2, 3), 35.0), attrs)},
                    coords={"lat": [0.25, 0.75], "lon": [0.25, 0.75, 1.25]})
    p = tmp_path / "pm.nc"
    ds.to_netcdf(p)
    if accepted:
        out = load_pm25_netcdf(p, "PM25")
        assert out.attrs["units"] == "ug m-3" and float(out.mean()) == 35.0
    else:
        with pytest.raises(ValueError, match=f"pm.nc: 'PM25' has units '{units}', not ug m-3: convert"):
            load_pm25_netcdf(p, "PM25")


def test_ier_draws_loader_errors(tmp_path):
    p = tmp_path / "d.csv"
    p.write_text("sim,cause,age,alpha,delta,zcf\n1,IHD,All Age,1,0.5,5\n")
    with pytest.raises(ValueError, match="beta"):
        load_ier_draws(p, ("IHD",))
    p.write_text("sim,cause,age,alpha,beta,delta,zcf\n1,IHD,All Age,1,0.1,0.5,5\n1,IHD,25,1,0.1,0.5,5\n"
                 "2,IHD,25,1,0.1,0.5,5\n")
    with pytest.raises(ValueError, match="same"):
        load_ier_draws(p, ("IHD",))
    with pytest.raises(ValueError, match="no draws for cause"):
        load_ier_draws(p, ("COPD",))


# -------------------------------------------------------------------------------------------- real files


def test_real_health_2015_files(shared_dir):
    d = shared_dir / "data" / "health_2015"
    pm = load_pm25_netcdf(shared_dir / "fixtures" / "geoschem" / "Annual_pm25_base2015.nc", fill_nan="nearest")
    P = load_gridded_population(d / "population_0p5deg.csv.gz", like=pm)
    assert P.shape == pm.shape == (296, 720)
    raw = pd.read_csv(d / "population_0p5deg.csv.gz")
    assert float(P.sum()) == pytest.approx(raw["base2015"].sum(), rel=1e-12)
    # the SSP1 2030 run keeps the meteorological year 2015 in `time`: its scenario year is in the file name
    assert (pm.attrs["year"], P.attrs["year"]) == (2015, 2015)
    pm30 = load_pm25_netcdf(shared_dir / "fixtures" / "geoschem" / "Annual_pm25_SSP1-Baseline_2030.nc", fill_nan="zero")
    assert (pm30.attrs["year"], pm30.attrs["year_from"]) == (2030, "file name")
    R = load_grid_regions(d / "grid_info_0p5deg.csv.gz", like=pm)
    M = load_gbd_baseline_mortality(d / "gbd_baseline_mortality_per100k.csv.gz")
    A = load_gbd_age_structure(d / "gbd_age_structure.csv.gz")
    assert M.sizes["country"] == 200 and set(FIVE_CAUSES) <= set(M["endpoint"].values)
    with pytest.raises(ValueError, match="Hong Kong"):
        build_health_inputs(R, P, A, M, causes=FIVE_CAUSES)
    with pytest.warns(UserWarning):
        inputs = build_health_inputs(R, P, A, M, causes=("NCD+LRI",), on_missing="drop")
    china = inputs.regions.index("China")
    pop_china = float(np.asarray(inputs.population)[np.asarray(inputs.region_index) == china].sum())
    assert pop_china == pytest.approx(float(P.where(R == "China").sum()), rel=1e-12)
    assert 1.3e9 < pop_china < 1.45e9


def test_real_china_and_draw_files(shared_dir):
    c = shared_dir / "data" / "china_0p1deg"
    M = load_gbd_china_mortality(c / "gbd_china_mortality_per100k_2000-2019.csv", 2015)
    assert {"IHD", "STROKE", "COPD", "LC", "LRI", "NCD+LRI"} <= set(M["endpoint"].values)
    A = load_gbd_china_population_by_age(c / "gbd_china_population_by_age_2000-2017.csv", 2015)
    assert A.sizes["age"] == 20 and abs(float(A.sum()) - 1) < 1e-12 and 1.3e9 < A.attrs["total_population"] < 1.5e9
    P = load_gridded_population(c / "population_0p1deg.csv.gz", "2015")
    R = load_grid_regions(c / "grid_info_0p1deg.csv.gz", "Province", like=P)
    pm = load_gridded_field(c / "pm25_0p1deg.csv.gz", "2015", like=P)
    inputs = build_health_inputs(R, P, A, M, causes=FIVE_CAUSES)
    assert len(inputs.regions) >= 31
    D = HealthModel(inputs, GEMM.burnett2018(ages=inputs.ages))(jnp.asarray(np.nan_to_num(pm.values)))
    assert D.shape == (5, 20, len(inputs.regions)) and float(D.sum()) > 1e5
    draws = load_ier_draws(shared_dir / "reference" / "ier2015_draws.csv")
    assert draws.alpha.shape == (1000, 5, 20)


def test_inputs_for_years_far_apart_warn_naming_files_and_years(tmp_path):
    """Population, GBD tables and PM2.5 read for different years (a 2030 scenario field with the default 2015
    population, 2030 rates with 2015 people) give deaths for no year: a warning names each file, its year and
    where the year was read (column, file name, `time`). Within the tolerance (2 years), or without a year to
    read, nothing is said."""
    import warnings

    from diffmrio._cli.data import health_deaths

    paths, *_ = write_world(tmp_path)
    P = load_gridded_population(paths["population"], "base2015")
    assert (P.attrs["year"], P.attrs["year_from"]) == (2015, "column 'base2015'")
    R = load_grid_regions(paths["grid"], like=P)
    A = load_gbd_age_structure(paths["ages"], "base2015")
    M30 = load_gbd_baseline_mortality(paths["mort"], "SSP1-Baseline_2030")
    with pytest.warns(UserWarning, match=r"population 2015 \(population.csv.gz, column 'base2015'\) but baseline "
                      r"mortality 2030 \(mort.csv.gz, column 'SSP1-Baseline_2030'\)") as record:
        build_health_inputs(R, P, A, M30, causes=["IHD"])
    assert [w.filename for w in record] == [__file__]  # the user's call, and one warning (the ages agree)
    mort = pd.read_csv(paths["mort"])
    mort.rename(columns={"base2015": "gbd2017"}).to_csv(tmp_path / "rates.csv", index=False)
    mort.rename(columns={"base2015": "rate"}).to_csv(tmp_path / "rates_2018.csv", index=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        build_health_inputs(R, P, A, load_gbd_baseline_mortality(tmp_path / "rates.csv", "gbd2017"), causes=["IHD"])
        unknown = P.copy()
        unknown.attrs = {}
        build_health_inputs(R, unknown, A, M30, causes=["IHD"])  # a population without a year: nothing to compare
    M18 = load_gbd_baseline_mortality(tmp_path / "rates_2018.csv", "rate")
    assert (M18.attrs["year"], M18.attrs["year_from"]) == (2018, "file name")
    with pytest.warns(UserWarning, match=r"baseline mortality 2018 \(rates_2018.csv, file name\)"):
        build_health_inputs(R, P, A, M18, causes=["IHD"])

    # PM2.5: a `year` attribute, else the year in the file name, else a one-record datetime `time`
    field = np.full((1, 3, 4), 30.0)
    ds = xr.Dataset({"PM2.5": (("time", "lat", "lon"), field)},
                    coords={"time": pd.to_datetime(["2015-06-16"]), "lat": [31.25, 30.75, 30.25],
                            "lon": [100.25, 100.75, 101.25, 101.75]})
    ds.to_netcdf(tmp_path / "pm.nc")
    ds.to_netcdf(tmp_path / "pm25_ssp_2030.nc")
    ds["PM2.5"].attrs["year"] = 2016
    ds.to_netcdf(tmp_path / "pm_attr_2030.nc")
    years = [(load_pm25_netcdf(tmp_path / f).attrs["year"], load_pm25_netcdf(tmp_path / f).attrs["year_from"])
             for f in ("pm.nc", "pm25_ssp_2030.nc", "pm_attr_2030.nc")]
    assert years == [(2015, "time coordinate"), (2030, "file name"), (2016, "variable attribute 'year'")]
    kw = dict(population=paths["population"], regions=paths["grid"], mortality=paths["mort"], ages=paths["ages"],
              causes=["IHD", "STROKE", "LRI"])
    with pytest.warns(UserWarning, match=r"PM2.5 2030 \(pm25_ssp_2030.nc, file name\) but population 2015"):
        scenario = health_deaths(tmp_path / "pm25_ssp_2030.nc", **kw)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        base = health_deaths(tmp_path / "pm.nc", **kw)
    xr.testing.assert_identical(scenario.deaths, base.deaths)  # a warning, not a change of result
