"""GEOS-Chem history/restart files and CF lat-lon fields: level orientation, hybrid coefficients, units,
species selection, and the real restart / annual PM2.5 fixtures."""

from __future__ import annotations

import netCDF4
import numpy as np
import pytest
import xarray as xr

from ctm_interface import CTMFileError, hybrid_pressure, read_cf_latlon, read_geoschem

GC = "fixtures/geoschem"


def _history(nlev=5, top_first=False, seed=0) -> xr.Dataset:
    """A small GEOS-Chem-like SpeciesConc + AerosolMass file (4 x 5 deg, `nlev` hybrid levels)."""
    rng = np.random.default_rng(seed)
    hyai = np.linspace(0.0, 20.0, nlev + 1)
    hybi = np.linspace(1.0, 0.0, nlev + 1)
    hyai[0] = 0.0
    hyam, hybm = 0.5 * (hyai[:-1] + hyai[1:]), 0.5 * (hybi[:-1] + hybi[1:])
    lat, lon = np.arange(-88.0, 90.0, 4.0), np.arange(-180.0, 180.0, 5.0)
    shape = (2, nlev, lat.size, lon.size)
    so4 = rng.uniform(0, 1e-9, shape)
    pm = rng.uniform(0, 80, shape).astype(np.float32)
    lev = hyam / 1000.0 + hybm
    ds = xr.Dataset(
        {
            "SpeciesConcVV_SO4": (
                ("time", "lev", "lat", "lon"),
                so4,
                {"units": "mol mol-1 dry", "long_name": "Dry mixing ratio of species SO4"},
            ),
            "SpeciesConcVV_NH4": (("time", "lev", "lat", "lon"), so4 * 2, {"units": "mol mol-1 dry"}),
            "PM25": (
                ("time", "lev", "lat", "lon"),
                pm,
                {"units": "ug m-3", "long_name": "Particulate matter with radii < 2.5 um"},
            ),
            "hyam": (("lev",), hyam, {"units": "hPa"}),
            "hybm": (("lev",), hybm, {"units": "1"}),
            "hyai": (("ilev",), hyai, {"units": "hPa"}),
            "hybi": (("ilev",), hybi, {"units": "1"}),
            "P0": ((), 1000.0, {"units": "hPa"}),
        },
        coords={
            "time": np.array(["2015-01-01", "2015-02-01"], dtype="datetime64[ns]"),
            "lev": ("lev", lev, {"positive": "up", "units": "level"}),
            "ilev": ("ilev", hyai / 1000.0 + hybi, {"positive": "up"}),
            "lat": lat,
            "lon": lon,
        },
    )
    if top_first:
        ds = ds.isel(lev=slice(None, None, -1), ilev=slice(None, None, -1))
    return ds


@pytest.mark.parametrize("top_first", [False, True])
def test_history_collection_levels_and_units(tmp_path, top_first):
    src = _history(top_first=top_first)
    p = tmp_path / "GEOSChem.SpeciesConc.20150101_0000z.nc4"
    src.to_netcdf(p)
    ds = read_geoschem(p)
    assert set(ds.data_vars) == {"SO4", "NH4", "PM25"}
    assert ds["SO4"].attrs["units"] == "mol mol-1 dry" and ds["SO4"].attrs["gc_name"] == "SpeciesConcVV_SO4"
    assert ds["PM25"].attrs["units"] == "ug m-3"
    lev = ds["lev"].values
    assert np.all(np.diff(lev) < 0), "level index 0 must be the surface (largest sigma)"
    np.testing.assert_allclose(lev, ds["hyam"].values / 1000.0 + ds["hybm"].values, rtol=1e-12)
    truth = _history()  # surface-first reference
    np.testing.assert_array_equal(ds["SO4"].values, truth["SpeciesConcVV_SO4"].values)
    sfc = read_geoschem(p, ["PM25", "SpeciesConcVV_SO4"], surface=True)
    assert sfc["PM25"].dims == ("time", "lat", "lon")
    np.testing.assert_array_equal(sfc["PM25"].values, truth["PM25"].values[:, 0])
    np.testing.assert_array_equal(sfc["SO4"].values, truth["SpeciesConcVV_SO4"].values[:, 0])


def test_hybrid_pressure_brackets(tmp_path):
    p = tmp_path / "h.nc4"
    _history(nlev=6).to_netcdf(p)
    ds = read_geoschem(p)
    ps = xr.DataArray(np.full((ds.sizes["lat"], ds.sizes["lon"]), 1013.25), dims=("lat", "lon"))
    pm = hybrid_pressure(ds, ps)
    pi = hybrid_pressure(ds, ps, interfaces=True)
    np.testing.assert_allclose(pi.isel(ilev=0).values, 1013.25)
    np.testing.assert_allclose(pm.values, 0.5 * (pi.values[:-1] + pi.values[1:]), rtol=1e-12)
    assert np.all(pi.values[:-1] > pm.values) and np.all(pm.values > pi.values[1:])


def test_geoschem_errors(tmp_path):
    p = tmp_path / "h.nc4"
    _history().to_netcdf(p)
    with pytest.raises(CTMFileError, match=r"h\.nc4: species \['O3'\] not in the file"):
        read_geoschem(p, ["SO4", "O3"])
    q = tmp_path / "not_gc.nc"
    xr.Dataset({"a": ("x", np.arange(3.0))}).to_netcdf(q)
    with pytest.raises(CTMFileError, match=r"not_gc\.nc: not a GEOS-Chem lat-lon file"):
        read_geoschem(q)
    t = tmp_path / "trunc.nc4"
    t.write_bytes(p.read_bytes()[:2000])
    with pytest.raises(CTMFileError, match=r"trunc\.nc4"):
        read_geoschem(t)
    with pytest.raises(CTMFileError, match=r"no 1-D lat coordinate"):
        read_cf_latlon(q)


def test_real_restart(shared_dir):
    path = shared_dir / GC / "GEOSChem.Restart.20180401_0000z.nc4"
    ds = read_geoschem(path)
    assert set(ds.data_vars) == {"CH4", "CLOCK"}
    assert ds["CH4"].attrs["units"] == "mol mol-1 dry"
    assert ds.sizes["lev"] == 47 and ds.sizes["lat"] == 91 and ds.sizes["lon"] == 144
    lev, P0 = ds["lev"].values, float(ds["P0"])
    np.testing.assert_allclose(lev, ds["hyam"].values / P0 + ds["hybm"].values, rtol=1e-5)
    assert lev[0] > 0.99 and np.all(np.diff(lev) < 0)  # positive up, level 1 = surface
    hyai, hybi = ds["hyai"].values, ds["hybi"].values
    assert hybi[0] == 1.0 and hyai[0] == 0.0 and hybi[-1] == 0.0
    # mid-point coefficients are the means of the interface ones (GEOS-Chem's definition)
    np.testing.assert_allclose(ds["hyam"].values, 0.5 * (hyai[:-1] + hyai[1:]), rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(ds["hybm"].values, 0.5 * (hybi[:-1] + hybi[1:]), rtol=1e-4, atol=1e-6)
    # Earth's area: the AREA coordinate sums to 4 pi R^2 (GEOS-Chem's R = 6.375e6 m in older versions,
    # 6.371e6 m in newer ones)
    assert 4 * np.pi * 6.370e6**2 < float(ds["AREA"].sum()) < 4 * np.pi * 6.376e6**2
    sfc = read_geoschem(path, "CH4", surface=True)
    with netCDF4.Dataset(path) as nc:
        np.testing.assert_array_equal(sfc["CH4"].values, nc["SpeciesRst_CH4"][:, 0])
    ch4_ppb = float(sfc["CH4"].mean()) * 1e9
    assert 1700 < ch4_ppb < 2000, ch4_ppb  # 2018 surface CH4 ~ 1850 ppb


def test_real_annual_pm25(shared_dir):
    path = shared_dir / GC / "Annual_pm25_base2015.nc"
    ds = read_cf_latlon(path, "PM2.5")
    assert ds.sizes == {"time": 1, "lat": 296, "lon": 720}
    lat = ds["lat"].values
    assert np.all(np.diff(lat) == 0.5) and lat[0] == -63.75 and lat[-1] == 83.75
    with netCDF4.Dataset(path) as nc:
        raw_lat = nc["lat"][:]
        raw = nc["PM2.5"][0]
    assert raw_lat[0] > raw_lat[-1]  # stored north to south; read_cf_latlon sorts ascending
    np.testing.assert_array_equal(ds["PM2.5"].values[0], np.asarray(raw)[::-1])
    beijing = float(ds["PM2.5"].sel(lat=39.75, lon=116.25).squeeze())
    assert 40 < beijing < 150, beijing  # 2015 annual mean in Beijing ~ 80 ug m-3
    ssp = read_cf_latlon(shared_dir / GC / "Annual_pm25_SSP1-Baseline_2030.nc")
    np.testing.assert_array_equal(ssp["lat"].values, lat)
    with pytest.raises(CTMFileError, match=r"variables \['PM25'\] not in the file"):
        read_cf_latlon(path, "PM25")
