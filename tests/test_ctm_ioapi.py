"""CMAQ I/O API reader/writer, GRIDDESC and grid projections: round trips, the I/O API layout read back
with plain netCDF4, closed-form projection formulas (Snyder 1987), real CMAQ files (openmethane), bad input."""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path

import netCDF4
import numpy as np
import pytest
import xarray as xr

from ctm_interface import (
    IOAPI_GLOBAL_ATTRS,
    CTMFileError,
    GridDefinition,
    cell_centres_lonlat,
    check_same_grid,
    cmaq_pm25,
    grid_from_ioapi_attrs,
    read_griddesc,
    read_ioapi,
    write_griddesc,
    write_ioapi,
)

R = 6370000.0
OM = "fixtures/cmaq/openmethane"
IOAPI_FILES = [
    "conc_template.nc",
    "force_template.nc",
    "sense_conc_template.nc",
    "sense_emis_template.nc",
    "template_icon_profile_CH4only_d01.nc",
    "template_bcon_profile_CH4only_d01.nc",
    "GRIDCRO2D_au-test_v1",
    "METCRO2D_au-test_v1",
]

LCC = GridDefinition(
    2, 25.0, 40.0, 110.0, 110.0, 34.0, -1_200_000.0, -900_000.0, 36_000.0, 36_000.0, 12, 9, "CN36"
)
POLAR = GridDefinition(
    6, 1.0, 60.0, -98.0, -98.0, 90.0, -2_000_000.0, -3_000_000.0, 50_000.0, 50_000.0, 7, 8, "PS"
)
MERC = GridDefinition(
    7, 20.0, 0.0, 100.0, 100.0, 0.0, -500_000.0, 1_000_000.0, 27_000.0, 27_000.0, 6, 5, "MERC"
)
LATLON = GridDefinition.latlon(100.0, 20.0, 0.5, 0.25, 8, 6, "LL")


def _expected_times(sdate: int, stime: int, tstep: int, n: int) -> list[dt.datetime]:
    """Independent date arithmetic: YYYYDDD + HHMMSS steps, with Python's datetime."""
    y, d = divmod(sdate, 1000)
    t0 = dt.datetime(y, 1, 1) + dt.timedelta(
        days=d - 1, hours=stime // 10000, minutes=stime // 100 % 100, seconds=stime % 100
    )
    step = dt.timedelta(hours=tstep // 10000, minutes=tstep // 100 % 100, seconds=tstep % 100)
    return [t0 + k * step for k in range(n)]


def _dataset(
    grid: GridDefinition, nt=3, nlay=2, seed=0, sdate=2015365, stime=230000, tstep=10000, names=("SO4", "NO3")
):
    rng = np.random.default_rng(seed)
    data = {
        n: xr.DataArray(
            rng.uniform(0, 50, (nt, nlay, grid.nrows, grid.ncols)).astype(np.float32),
            dims=("TSTEP", "LAY", "ROW", "COL"),
            attrs={"units": "ug m-3", "long_name": n, "var_desc": f"{n} aerosol, sum of I+J modes"},
        )
        for n in names
    }
    attrs = {k: v for k, v in grid.to_ioapi_attrs().items() if k not in ("NCOLS", "NROWS")}
    attrs.update(
        SDATE=sdate, STIME=stime, TSTEP=tstep, VGTYP=7, VGTOP=5000.0, VGLVLS=np.linspace(1.0, 0.9, nlay + 1)
    )
    return xr.Dataset(data, attrs=attrs)


# ------------------------------------------------------------------------------------------- round trips
@pytest.mark.parametrize("fmt", ["NETCDF3_64BIT_OFFSET", "NETCDF4_CLASSIC"])
@pytest.mark.parametrize("grid", [LCC, POLAR, MERC, LATLON], ids=lambda g: g.name)
def test_write_read_roundtrip(tmp_path, fmt, grid):
    ds = _dataset(grid)
    path = write_ioapi(ds, tmp_path / "out.nc", format=fmt)
    back = read_ioapi(path)
    for n in ("SO4", "NO3"):
        np.testing.assert_array_equal(back[n].values, ds[n].values)
        assert back[n].attrs == {
            "units": "ug m-3",
            "long_name": n,
            "var_desc": f"{n} aerosol, sum of I+J modes",
        }
        assert back[n].dims == ("TSTEP", "LAY", "ROW", "COL")
    # 2015-365 23:00 + 1 h steps crosses into 2016
    expect = np.array(_expected_times(2015365, 230000, 10000, 3), dtype="datetime64[ns]")
    np.testing.assert_array_equal(back["TSTEP"].values, expect)
    assert str(back["TSTEP"].values[1]).startswith("2016-01-01T00")
    assert grid_from_ioapi_attrs(back.attrs).mismatch(grid) == []
    lon, lat = cell_centres_lonlat(grid)
    np.testing.assert_allclose(back["lon"].values, lon, atol=1e-9)
    np.testing.assert_allclose(back["lat"].values, lat, atol=1e-9)
    np.testing.assert_allclose(back["sigma"].values, [0.975, 0.925])
    assert not list(tmp_path.glob(".*")), "temporary files left behind"


def test_written_file_follows_ioapi_layout(tmp_path):
    ds = _dataset(
        LCC, nt=4, nlay=3, sdate=2019032, stime=120000, tstep=3000, names=("SO2", "PM25_TOT", "NH3")
    )
    path = write_ioapi(ds, tmp_path / "CCTM_ACONC.nc", filedesc="test file", history="made in a test")
    with netCDF4.Dataset(path) as nc:
        assert nc.data_model == "NETCDF3_64BIT_OFFSET"
        assert list(nc.ncattrs()) == list(IOAPI_GLOBAL_ATTRS)
        assert list(nc.dimensions) == ["TSTEP", "DATE-TIME", "LAY", "VAR", "ROW", "COL"]
        assert nc.dimensions["TSTEP"].isunlimited()
        ints = ("FTYPE", "CDATE", "CTIME", "WDATE", "WTIME", "SDATE", "STIME", "TSTEP", "NTHIK",
                "NCOLS", "NROWS", "NLAYS", "NVARS", "GDTYP", "VGTYP")  # fmt: skip
        for k in ints:
            assert nc.getncattr(k).dtype == np.int32, k
        for k in ("P_ALP", "P_BET", "P_GAM", "XCENT", "YCENT", "XORIG", "YORIG", "XCELL", "YCELL"):
            assert nc.getncattr(k).dtype == np.float64, k
        assert nc.VGTOP.dtype == np.float32 and nc.VGLVLS.dtype == np.float32 and nc.VGLVLS.size == 4
        assert (nc.NCOLS, nc.NROWS, nc.NLAYS, nc.NVARS) == (12, 9, 3, 3)
        assert (nc.SDATE, nc.STIME, nc.TSTEP, nc.GDTYP) == (2019032, 120000, 3000, 2)
        assert nc.XORIG == LCC.xorig and nc.P_ALP == 25.0
        vl = nc.getncattr("VAR-LIST")
        assert len(vl) == 48 and [vl[i : i + 16] for i in range(0, 48, 16)] == [
            "SO2".ljust(16),
            "PM25_TOT".ljust(16),
            "NH3".ljust(16),
        ]
        assert len(nc.GDNAM) == 16 and nc.GDNAM.strip() == "CN36"
        assert len(nc.UPNAM) == 16 and len(nc.EXEC_ID) == 80
        assert len(nc.FILEDESC) == 60 * 80 and nc.FILEDESC.strip() == "test file"
        assert len(nc.HISTORY) == 60 * 80
        assert 1_000_000 < nc.CDATE < 9_999_366 and 0 <= nc.CTIME < 240000
        tf = nc["TFLAG"]
        assert tf.dtype == np.int32 and tf.dimensions == ("TSTEP", "VAR", "DATE-TIME")
        assert tf.units == "<YYYYDDD,HHMMSS>" and len(tf.var_desc) == 80 and len(tf.long_name) == 16
        # 2019-032 12:00 + 30 min steps
        expect = [[2019032, 120000], [2019032, 123000], [2019032, 130000], [2019032, 133000]]
        for v in range(3):
            np.testing.assert_array_equal(tf[:, v, :], expect)
        for n in ("SO2", "PM25_TOT", "NH3"):
            var = nc[n]
            assert var.dimensions == ("TSTEP", "LAY", "ROW", "COL") and var.dtype == np.float32
            assert len(var.long_name) == 16 and len(var.units) == 16 and len(var.var_desc) == 80
            assert var.units.strip() == "ug m-3" and var.long_name.strip() == n
            assert "_FillValue" not in var.ncattrs()


def test_float64_kept_when_asked(tmp_path):
    ds = _dataset(LATLON, nt=2)
    ds["SO4"] = ds["SO4"].astype(np.float64) + 1e-9
    back = read_ioapi(write_ioapi(ds, tmp_path / "d.nc", dtype=None))
    assert back["SO4"].dtype == np.float64
    np.testing.assert_array_equal(back["SO4"].values, ds["SO4"].values)


def test_time_independent_and_time_from_coordinate(tmp_path):
    ds = _dataset(LCC, nt=1)
    ds.attrs = {k: v for k, v in _dataset(LCC).attrs.items() if k not in ("SDATE", "STIME", "TSTEP")}
    p = write_ioapi(ds, tmp_path / "static.nc")
    with netCDF4.Dataset(p) as nc:
        assert nc.TSTEP == 0
        np.testing.assert_array_equal(nc["TFLAG"][:], 0)
    back = read_ioapi(p)
    assert "TSTEP" not in back.coords and back.sizes["TSTEP"] == 1
    # times from a datetime TSTEP coordinate (as read_ioapi returns) when the attrs are absent
    d3 = _dataset(LCC, nt=3)
    times = np.array(["2020-02-28T22", "2020-02-29T00", "2020-02-29T02"], dtype="datetime64[ns]")
    d3 = d3.assign_coords(TSTEP=times)
    d3.attrs = ds.attrs
    with netCDF4.Dataset(write_ioapi(d3, tmp_path / "t.nc")) as nc:
        assert (nc.SDATE, nc.STIME, nc.TSTEP) == (2020059, 220000, 20000)
        np.testing.assert_array_equal(
            nc["TFLAG"][:, 0, :], [[2020059, 220000], [2020060, 0], [2020060, 20000]]
        )


def test_writer_rejects_bad_input(tmp_path):
    good = _dataset(LCC)
    with pytest.raises(ValueError, match="dims"):
        write_ioapi(good.assign(X=good["SO4"].isel(LAY=0)), tmp_path / "a.nc")
    bad = good.copy()
    bad["SO4"].attrs = {}
    with pytest.raises(ValueError, match="units"):
        write_ioapi(bad, tmp_path / "a.nc")
    with pytest.raises(ValueError, match="16"):
        write_ioapi(good.rename(SO4="A_VERY_LONG_SPECIES_NAME"), tmp_path / "a.nc")
    nogrid = good.copy()
    nogrid.attrs = {k: v for k, v in good.attrs.items() if k != "XCELL"}
    with pytest.raises(ValueError, match="XCELL"):
        write_ioapi(nogrid, tmp_path / "a.nc")
    zero = good.copy()
    zero.attrs = dict(good.attrs, TSTEP=0)
    with pytest.raises(ValueError, match="time-independent"):
        write_ioapi(zero, tmp_path / "a.nc")
    assert not (tmp_path / "a.nc").exists()


# ------------------------------------------------------------------------------------------- projections
def _snyder_lcc(grid, lon, lat):
    """Spherical Lambert conformal conic, Snyder (1987) eqs. 15-1..15-4, 14-4."""
    f1, f2, f0 = np.deg2rad([grid.p_alp, grid.p_bet, grid.ycent])
    n = np.log(np.cos(f1) / np.cos(f2)) / np.log(np.tan(np.pi / 4 + f2 / 2) / np.tan(np.pi / 4 + f1 / 2))
    F = np.cos(f1) * np.tan(np.pi / 4 + f1 / 2) ** n / n
    rho = R * F / np.tan(np.pi / 4 + np.deg2rad(lat) / 2) ** n
    rho0 = R * F / np.tan(np.pi / 4 + f0 / 2) ** n
    theta = n * np.deg2rad(lon - grid.p_gam)
    return rho * np.sin(theta), rho0 - rho * np.cos(theta)


def _snyder_polar_north(grid, lon, lat):
    """Spherical polar stereographic (north), true scale at P_BET: Snyder eqs. 21-5..21-7."""
    k0 = (1 + np.sin(np.deg2rad(grid.p_bet))) / 2

    def fwd(lo, la):
        rho = 2 * R * k0 * np.tan(np.pi / 4 - np.deg2rad(la) / 2)
        return rho * np.sin(np.deg2rad(lo - grid.p_gam)), -rho * np.cos(np.deg2rad(lo - grid.p_gam))

    x, y = fwd(lon, lat)
    x0, y0 = fwd(grid.xcent, grid.ycent)
    return x - x0, y - y0


def _snyder_mercator(grid, lon, lat):
    """Spherical Mercator with true scale at P_ALP: Snyder eqs. 7-1, 7-2 scaled by cos(lat_ts)."""
    c = np.cos(np.deg2rad(grid.p_alp))

    def fwd(lo, la):
        return R * c * np.deg2rad(lo - grid.p_gam), R * c * np.log(np.tan(np.pi / 4 + np.deg2rad(la) / 2))

    x, y = fwd(lon, lat)
    x0, y0 = fwd(grid.xcent, grid.ycent)
    return x - x0, y - y0


@pytest.mark.parametrize(
    ("grid", "formula"),
    [(LCC, _snyder_lcc), (POLAR, _snyder_polar_north), (MERC, _snyder_mercator)],
    ids=["lcc", "polar", "merc"],
)
def test_cell_centres_match_closed_form_projection(grid, formula):
    lon, lat = cell_centres_lonlat(grid)
    x, y = formula(grid, lon, lat)
    xx, yy = np.meshgrid(grid.x, grid.y)
    np.testing.assert_allclose(x, xx, atol=1e-3)  # 1 mm
    np.testing.assert_allclose(y, yy, atol=1e-3)
    r, c, inside = grid.cell_index(lon, lat)
    assert inside.all()
    np.testing.assert_array_equal(r, np.arange(grid.nrows)[:, None].repeat(grid.ncols, 1))
    np.testing.assert_array_equal(c, np.arange(grid.ncols)[None, :].repeat(grid.nrows, 0))


def test_lcc_origin_off_central_meridian():
    """XCENT != P_GAM: the projected origin is at (XCENT, YCENT), as the I/O API defines."""
    g = GridDefinition(2, 30.0, 60.0, -97.0, -90.0, 40.0, -100e3, -100e3, 12e3, 12e3, 5, 5)
    x, y = g.lonlat_to_xy(-90.0, 40.0)
    assert abs(x) < 1e-6 and abs(y) < 1e-6
    x2, y2 = _snyder_lcc(
        GridDefinition(2, 30.0, 60.0, -97.0, -97.0, 40.0, 0, 0, 1, 1, 1, 1),
        np.array([-80.0, -90.0]),
        np.array([45.0, 40.0]),
    )
    xa, ya = g.lonlat_to_xy(-80.0, 45.0)
    np.testing.assert_allclose([xa, ya], [x2[0] - x2[1], y2[0] - y2[1]], atol=1e-3)


def test_latlon_cell_areas_sum_to_sphere():
    g = GridDefinition.latlon(-180, -90, 2.5, 2.0, 144, 90)
    np.testing.assert_allclose(g.cell_areas().sum(), 4 * np.pi * R**2, rtol=1e-12)


def test_griddesc_roundtrip(tmp_path):
    p = write_griddesc([LCC, POLAR, LATLON], tmp_path / "GRIDDESC")
    grids = read_griddesc(p)
    assert list(grids) == ["CN36", "PS", "LL"]
    for g in (LCC, POLAR, LATLON):
        assert grids[g.name] == g


def test_griddesc_errors(tmp_path):
    p = tmp_path / "GRIDDESC"
    p.write_text("' '\n'P'\n 2 30 60 -97 -97 40\n' '\n'G'\n'Q' 0 0 12000 12000 10 10 1\n' '\n")
    with pytest.raises(CTMFileError, match="unknown projection 'Q'"):
        read_griddesc(p)
    p.write_text("' '\n'P'\n 2 30 60 -97 -97 40\n' '\n'G'\n'P' 0 0 12000\n' '\n")
    with pytest.raises(CTMFileError, match="GRIDDESC|malformed"):
        read_griddesc(p)


# ------------------------------------------------------------------------------------------- PM2.5 helper
def test_cmaq_pm25_from_modes_and_passthrough(tmp_path):
    names = ("ATOTI", "ATOTJ", "ATOTK")
    aconc = read_ioapi(write_ioapi(_dataset(LCC, names=names, seed=1), tmp_path / "ACONC.nc"))
    fr = _dataset(LCC, names=("PM25AT", "PM25AC", "PM25CO"), seed=2)
    for n in fr.data_vars:
        fr[n] = (fr[n] / 50).astype(np.float32)
        fr[n].attrs["units"] = "1"
    apm = read_ioapi(write_ioapi(fr, tmp_path / "APMDIAG.nc"))
    pm = cmaq_pm25(aconc, apm)
    expect = sum(
        aconc[a].values.astype(np.float64) * apm[f].values
        for a, f in zip(names, ("PM25AT", "PM25AC", "PM25CO"), strict=True)
    )
    np.testing.assert_allclose(pm.values, expect, rtol=1e-6)
    assert pm.attrs["units"] == "ug m-3"
    elmo = read_ioapi(write_ioapi(_dataset(LCC, names=("PM25_TOT",), seed=3), tmp_path / "ELMO.nc"))
    np.testing.assert_array_equal(cmaq_pm25(elmo).values, elmo["PM25_TOT"].values)
    with pytest.raises(CTMFileError, match=r"ACONC.nc: .*PM25AT \(APMDIAG\)"):
        cmaq_pm25(aconc)
    other = _dataset(POLAR, names=("PM25AT", "PM25AC", "PM25CO"))
    for n in other.data_vars:
        other[n].attrs["units"] = "1"
    with pytest.raises(CTMFileError, match="grid does not match"):
        cmaq_pm25(aconc, read_ioapi(write_ioapi(other, tmp_path / "APM_other.nc")))


# ------------------------------------------------------------------------------------------- bad input
def test_bad_files_name_the_file_and_problem(tmp_path):
    good = write_ioapi(_dataset(LCC, nt=6), tmp_path / "good.nc")
    trunc = tmp_path / "truncated.nc"
    shutil.copy(good, trunc)
    with open(trunc, "r+b") as f:
        f.truncate(good.stat().st_size // 2)
    with pytest.raises(CTMFileError, match=r"truncated\.nc: truncated"):
        read_ioapi(trunc)
    text = tmp_path / "notes.txt"
    text.write_text("this is not netCDF\n")
    with pytest.raises(CTMFileError, match=r"notes\.txt: not a netCDF file"):
        read_ioapi(text)
    empty = tmp_path / "empty.nc"
    empty.write_bytes(b"")
    with pytest.raises(CTMFileError, match=r"empty\.nc: file is empty"):
        read_ioapi(empty)
    with pytest.raises(CTMFileError, match="does not exist"):
        read_ioapi(tmp_path / "nope.nc")
    noattr = tmp_path / "noattr.nc"
    shutil.copy(good, noattr)
    with netCDF4.Dataset(noattr, "a") as nc:
        nc.delncattr("SDATE")
    with pytest.raises(CTMFileError, match=r"noattr\.nc: missing I/O API global attribute\(s\) \['SDATE'\]"):
        read_ioapi(noattr)
    with pytest.raises(CTMFileError, match=r"good\.nc: species \['O3'\] not in the file"):
        read_ioapi(good, ["SO4", "O3"])
    assert list(read_ioapi(good, "NO3").data_vars) == ["NO3"]
    shifted = _dataset(LCC)
    shifted.attrs["XORIG"] = LCC.xorig + 36_000.0
    other = read_ioapi(write_ioapi(shifted, tmp_path / "shifted.nc"))
    with pytest.raises(CTMFileError, match=r"shifted\.nc: grid does not match that of .*good\.nc: XORIG"):
        check_same_grid(read_ioapi(good), other)


def test_truncated_netcdf4_fixture_copy(tmp_path, shared_dir):
    src = shared_dir / OM / "conc_template.nc"
    dst = tmp_path / "conc_truncated.nc"
    dst.write_bytes(src.read_bytes()[: src.stat().st_size * 2 // 3])
    with pytest.raises(
        CTMFileError, match=r"conc_truncated\.nc: cannot open as netCDF, the file is truncated"
    ):
        read_ioapi(dst)  # HDF5 checks its end-of-file address on open: no data need to be read


# ------------------------------------------------------------------------------------------- real CMAQ files
@pytest.mark.parametrize("name", IOAPI_FILES)
def test_read_every_openmethane_file(shared_dir, name):
    path = shared_dir / OM / name
    ds = read_ioapi(path)
    with netCDF4.Dataset(path) as nc:
        names = nc.getncattr("VAR-LIST")
        names = [names[i : i + 16].strip() for i in range(0, len(names), 16)]
        sdate, stime, tstep, nt = int(nc.SDATE), int(nc.STIME), int(nc.TSTEP), len(nc.dimensions["TSTEP"])
        assert list(ds.data_vars) == names
        for n in names:
            np.testing.assert_array_equal(ds[n].values, nc[n][:])
            assert ds[n].attrs["units"] == nc[n].units.strip() and not ds[n].attrs["units"].endswith(" ")
            assert ds[n].attrs["var_desc"] == nc[n].var_desc.strip()
        tflag = nc["TFLAG"][:]
    if tstep == 0 or sdate == -635:
        assert "TSTEP" not in ds.coords  # time-independent (incl. the SDATE = -635 convention)
    else:
        expect = np.array(_expected_times(sdate, stime, tstep, nt), dtype="datetime64[ns]")
        np.testing.assert_array_equal(ds["TSTEP"].values, expect)
        # and TFLAG (decoded independently here) says the same
        from_tflag = [
            dt.datetime.strptime(f"{d:07d}", "%Y%j") + dt.timedelta(hours=int(t) // 10000)
            for d, t in tflag[:, 0, :]
        ]
        np.testing.assert_array_equal(ds["TSTEP"].values, np.array(from_tflag, dtype="datetime64[ns]"))


def test_openmethane_time_conventions(shared_dir):
    icon = read_ioapi(shared_dir / OM / "template_icon_profile_CH4only_d01.nc")
    bcon = read_ioapi(shared_dir / OM / "template_bcon_profile_CH4only_d01.nc")
    assert icon.attrs["SDATE"] == -635 and bcon.attrs["SDATE"] == -635
    assert "TSTEP" not in icon.coords and "TSTEP" not in bcon.coords
    assert bcon["CH4"].dims == ("TSTEP", "LAY", "PERIM") and bcon.sizes["PERIM"] == 2 * (10 + 10) + 4
    conc = read_ioapi(shared_dir / OM / "conc_template.nc")
    assert conc.sizes["TSTEP"] == 25
    assert str(conc["TSTEP"].values[0]).startswith("2022-12-07T00") and str(
        conc["TSTEP"].values[-1]
    ).startswith("2022-12-08T00")
    adj = read_ioapi(shared_dir / OM / "sense_conc_template.nc")
    assert adj["CH4"].attrs["units"] == "CF/ppmV" and adj["RHOJ"].attrs["units"] == "CF/m*kg/m**3"
    emis_adj = read_ioapi(shared_dir / OM / "sense_emis_template.nc")
    assert emis_adj["CH4"].attrs["units"] == "CF/(ppmv/s)"


def test_conc_lonlat_matches_gridcro2d(shared_dir):
    """Projection check against MCIP: CONC cell centres vs GRIDCRO2D LAT/LON (float32 on file).

    Measured max |difference|: 3.8e-5 deg lon, 2.7e-5 deg lat (float32 rounding of the file values);
    MSFX2 vs pyproj areal scale: 6.2e-7 relative.
    """
    conc = read_ioapi(shared_dir / OM / "conc_template.nc")
    cro = read_ioapi(shared_dir / OM / "GRIDCRO2D_au-test_v1")
    dlon = np.abs(conc["lon"].values - cro["LON"].values[0, 0]).max()
    dlat = np.abs(conc["lat"].values - cro["LAT"].values[0, 0]).max()
    assert dlon < 1e-4 and dlat < 1e-4, (dlon, dlat)
    g = grid_from_ioapi_attrs(conc.attrs)
    np.testing.assert_allclose(g.map_scale_factor_squared(), cro["MSFX2"].values[0, 0], rtol=1e-5)
    check_same_grid(conc, cro)  # P_GAM 133.302 vs 133.302001953125: the same grid


def test_cf_emissions_file_on_same_grid(shared_dir):
    """prior-emissions.nc is CF (lat_0 = -23.27 with a false northing) on the CONC grid: its own CRS,
    its x/y and lat/lon agree with the I/O API description of the grid."""
    import pyproj

    em = xr.open_dataset(shared_dir / OM / "prior-emissions.nc")
    crs = pyproj.CRS.from_cf(em["lambert_conformal"].attrs)
    conc = read_ioapi(shared_dir / OM / "conc_template.nc")
    np.testing.assert_allclose(em["x"].values, conc["x"].values, atol=1e-6)
    np.testing.assert_allclose(em["y"].values, conc["y"].values, atol=1e-6)
    xx, yy = np.meshgrid(em["x"].values, em["y"].values)
    lon, lat = pyproj.Transformer.from_crs(crs, crs.geodetic_crs, always_xy=True).transform(xx, yy)
    np.testing.assert_allclose(lon, conc["lon"].values, atol=1e-6)
    np.testing.assert_allclose(lat, conc["lat"].values, atol=1e-6)
    np.testing.assert_allclose(em["lat"].values, conc["lat"].values, atol=1e-4)


def test_griddesc_fixture_matches_conc(shared_dir):
    grids = read_griddesc(shared_dir / OM / "GRIDDESC")
    conc = read_ioapi(shared_dir / OM / "conc_template.nc")
    assert list(grids) == ["au-test_v1"] and conc.attrs["GDNAM"] == "au-test_v1"
    assert grids["au-test_v1"].mismatch(grid_from_ioapi_attrs(conc.attrs)) == []
    assert grids["au-test_v1"] == grid_from_ioapi_attrs(conc.attrs)


def test_rewrite_real_conc_file(shared_dir, tmp_path):
    conc = read_ioapi(shared_dir / OM / "conc_template.nc")
    out = write_ioapi(conc, tmp_path / "conc_copy.nc")
    back = read_ioapi(out)
    np.testing.assert_array_equal(back["CH4"].values, conc["CH4"].values)
    np.testing.assert_array_equal(back["TSTEP"].values, conc["TSTEP"].values)
    for k in ("SDATE", "STIME", "TSTEP", "NLAYS", "GDNAM", "VGTYP"):
        assert back.attrs[k] == conc.attrs[k], k
    np.testing.assert_array_equal(back.attrs["VGLVLS"], conc.attrs["VGLVLS"])
    with netCDF4.Dataset(shared_dir / OM / "conc_template.nc") as a, netCDF4.Dataset(out) as b:
        np.testing.assert_array_equal(a["TFLAG"][:], b["TFLAG"][:])
        assert a["CH4"].units == b["CH4"].units and a["CH4"].long_name == b["CH4"].long_name


def test_rewrite_subset_of_real_conc_file(shared_dir, tmp_path):
    """After selecting time steps, the written SDATE/STIME follow the data, not the source attrs."""
    conc = read_ioapi(shared_dir / OM / "conc_template.nc").isel(TSTEP=slice(5, 11, 2), LAY=slice(0, 1))
    with netCDF4.Dataset(write_ioapi(conc, tmp_path / "sub.nc")) as nc:
        assert (nc.SDATE, nc.STIME, nc.TSTEP, nc.NLAYS) == (2022341, 50000, 20000, 1)
        np.testing.assert_array_equal(nc["TFLAG"][:, 0, 1], [50000, 70000, 90000])
        np.testing.assert_array_equal(nc["CH4"][:], conc["CH4"].values)
        np.testing.assert_array_equal(nc.VGLVLS, conc.attrs["VGLVLS"][:2])


def test_lazy_read(shared_dir):
    import dask.array as da

    conc = read_ioapi(shared_dir / OM / "conc_template.nc", chunks={})
    assert isinstance(conc["CH4"].data, da.Array)
    np.testing.assert_array_equal(conc["CH4"].mean("TSTEP").values, conc["CH4"].values.mean(0))
    assert isinstance(Path(conc.attrs["source_file"]), Path)
