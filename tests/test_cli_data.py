"""The data commands of the `diffmrio` CLI (accounts, spa, health), `--version` and `-v/-q`, run on pymrio's
test system, a CEADs-layout workbook, the demo world and small health files; values against pymrio or numpy."""

import logging
import shutil

import jax.numpy as jnp
import numpy as np
import pytest
import xarray as xr
from _systems import ceads_arrays
from test_health_loaders import AGES, write_world

from diffmrio.cli import main

pymrio = pytest.importorskip("pymrio")


@pytest.fixture(scope="module")
def pymrio_folder(tmp_path_factory):
    io = pymrio.load_test()
    io.calc_all()
    folder = tmp_path_factory.mktemp("pymrio") / "testsys"
    io.save_all(folder)
    return folder, io


def test_version(capsys):
    with pytest.raises(SystemExit) as e:
        main(["--version"])
    assert e.value.code == 0
    out = capsys.readouterr().out.strip()
    assert out.startswith("diffmrio ") and len(out) > len("diffmrio ")


def test_accounts_from_pymrio_folder_and_zip_equal_pymrio(pymrio_folder, tmp_path, capsys):
    folder, io = pymrio_folder
    archive = shutil.make_archive(str(tmp_path / "testsys"), "zip", folder)
    for i, src in enumerate((folder, archive)):
        out = tmp_path / f"acc{i}.nc"
        assert main(["accounts", str(src), "--out", str(out), "--precision", "double"]) == 0
        assert capsys.readouterr().out.strip() == str(out)
        acc = xr.load_dataset(out)
        ref = io.emissions.D_cba_reg  # pymrio: stressor rows, region columns
        for (comp, comp_type) in ref.index:
            got = acc.D_cba_reg.sel(stressor=f"{comp}/{comp_type}").to_series()
            np.testing.assert_allclose(got[list(ref.columns)].values, ref.loc[(comp, comp_type)].values, rtol=1e-10)
        np.testing.assert_allclose(acc.x.values.ravel(), io.x.values.ravel(), rtol=1e-12)
        assert acc.attrs["source"] == str(src)


def test_accounts_refuses_to_overwrite_and_names_bad_input(pymrio_folder, tmp_path, caplog):
    folder, _ = pymrio_folder
    out = tmp_path / "mine.nc"
    out.write_text("the user's file")
    assert main(["accounts", str(folder), "--out", str(out)]) == 2
    assert out.read_text() == "the user's file"
    assert "exists" in caplog.text and str(out) in caplog.text
    assert main(["accounts", str(tmp_path / "nothere.nc"), "--out", str(tmp_path / "a.nc")]) == 2
    assert "no such file" in caplog.text
    odd = tmp_path / "table.dat"
    odd.write_text("x")
    assert main(["accounts", str(odd), "--out", str(tmp_path / "b.nc")]) == 2
    assert "--format" in caplog.text
    assert not (tmp_path / "a.nc").exists() and not (tmp_path / "b.nc").exists()


def test_accounts_from_netcdf_table_and_ceads_workbook(tmp_path):
    from diffmrio.datasets import demo_world
    from diffmrio.tables._ceads import write_ceads_like

    m = demo_world(geography=False).mrio
    table = tmp_path / "table.nc"
    m.to_xarray().to_netcdf(table)
    assert main(["accounts", str(table), "--out", str(tmp_path / "acc.nc"), "-q"]) == 0
    assert logging.getLogger("diffmrio").level == logging.ERROR  # -q: errors only
    acc = xr.load_dataset(tmp_path / "acc.nc")
    # independent: x = (I - A)^-1 y and the CO2 footprint of each region's final demand, by numpy
    Z, Y, F = np.asarray(m.Z), np.asarray(m.Y), np.asarray(m.F)
    x = Z.sum(1) + Y.sum(1)
    L = np.linalg.inv(np.eye(len(x)) - Z / x)
    co2 = m.stressor_index("CO2")
    Yreg = Y.reshape(len(x), m.n_regions, -1).sum(2)
    fp = (F[co2] / x) @ L @ Yreg + np.asarray(m.F_Y)[co2].reshape(m.n_regions, -1).sum(1)
    np.testing.assert_allclose(acc.x.values.ravel(), x, rtol=1e-10)
    np.testing.assert_allclose(acc.D_cba_reg.sel(stressor="CO2").values, fp, rtol=1e-8)

    Zc, fd, ex, _, imp, va, xc = ceads_arrays(2, 3, seed=0)
    wb = write_ceads_like(tmp_path / "prov.xlsx", Zc, fd, ex, va, ["P1", "P2"], ["a", "b", "c"], imports=imp)
    assert main(["accounts", str(wb), "--out", str(tmp_path / "prov.nc")]) == 0
    np.testing.assert_allclose(xr.load_dataset(tmp_path / "prov.nc").x.values.ravel(), xc, rtol=1e-10)


def test_spa_csv_and_netcdf_against_numpy(tmp_path, caplog):
    import pandas as pd

    from diffmrio.datasets import demo_world

    m = demo_world(geography=False).mrio
    table = tmp_path / "table.nc"
    m.to_xarray().to_netcdf(table)
    out = tmp_path / "paths.csv"
    with caplog.at_level(logging.INFO):
        assert main(["spa", str(table), "--stressor", "SO2", "-k", "15", "--out", str(out), "-v"]) == 0
    assert "paths cover" in caplog.text
    df = pd.read_csv(out)
    assert len(df) == 15 and (np.diff(np.abs(df.value.values)) <= 1e-12).all()
    # independent: each path's value is S_{i_T} A ... A y_{i_0}, recomputed from its labels by numpy
    Z, Y, F = np.asarray(m.Z), np.asarray(m.Y), np.asarray(m.F)
    x = Z.sum(1) + Y.sum(1)
    A, s, y = Z / x, F[m.stressor_index("SO2")] / x, Y.sum(1)
    idx = {f"{r}/{k}": i for i, (r, k) in enumerate((r, k) for r in m.regions for k in m.sectors)}
    total = s @ np.linalg.solve(np.eye(len(x)) - A, y)
    for label, value, share in zip(df.label, df.value, df.share):
        nodes = [idx[v.strip()] for v in label.split("<-")]  # final producer first, emitter last
        v = y[nodes[0]]
        for a, b in zip(nodes[:-1], nodes[1:]):
            v = A[b, a] * v
        v *= s[nodes[-1]]
        assert value == pytest.approx(v, rel=1e-10)
        assert share == pytest.approx(v / total, rel=1e-10)
    assert main(["spa", str(table), "--stressor", "SO2", "-k", "5", "--out", str(tmp_path / "p.nc")]) == 0
    np.testing.assert_allclose(xr.load_dataset(tmp_path / "p.nc").value.values, df.value.values[:5], rtol=1e-12)
    assert main(["spa", str(table), "--stressor", "CO3", "--out", str(tmp_path / "q.csv")]) == 2
    assert "CO3" in caplog.text and "CO2" in caplog.text


def test_health_command_against_a_cell_loop(tmp_path):
    from diffmrio.health import GEMM

    paths, pop, country, mort, ages = write_world(tmp_path)
    lat, lon = [31.25, 30.75, 30.25], [100.25, 100.75, 101.25, 101.75]
    C = np.linspace(5, 80, 12).reshape(3, 4)
    xr.Dataset({"PM2.5": (("lat", "lon"), C)}, coords={"lat": lat, "lon": lon}).to_netcdf(tmp_path / "pm.nc")
    out = tmp_path / "deaths.nc"
    causes = ["IHD", "STROKE", "LRI"]
    argv = ["health", str(tmp_path / "pm.nc"), "--population", str(paths["population"]), "--regions",
            str(paths["grid"]), "--mortality", str(paths["mort"]), "--ages", str(paths["ages"]), "--out", str(out)]
    assert main([*argv, "--causes", *causes]) == 0
    ds = xr.load_dataset(out)
    assert ds.deaths.dims == ("region", "cause") and list(ds.region.values) == ["Aland", "Bland"]
    assert all("units" in ds[v].attrs for v in ds.data_vars)
    assert "with the Chinese cohort" in ds.attrs["crf"]  # the reference below is GEMM.burnett2018's default fit
    crf = GEMM.burnett2018(causes, ages=tuple(AGES))
    rr = np.asarray(crf.relative_risk(jnp.asarray(C)))
    ref = np.zeros((2, 3))
    for i, y in enumerate(lat):
        for j, x in enumerate(lon):
            c = country.get((x, y))
            if not c or (x, y) == (100.25, 30.25):
                continue
            r = ["Aland", "Bland"].index(c)
            for k, e in enumerate(causes):
                for a_i, a in enumerate(AGES):
                    sel = mort[(mort.Country == c) & (mort.endpoint == e) & (mort.agegroup == a)].base2015
                    y0 = sel.item() * 1e-5 if len(sel) else 0.0
                    share = ages[(ages.Country == c) & (ages.agegroup == a)].base2015.item()
                    ref[r, k] += pop[(x, y)] * share * y0 * (1 - 1 / rr[k, a_i, i, j])
    np.testing.assert_allclose(ds.deaths.values, ref, rtol=1e-12)
    # the default causes include COPD and LC, which these GBD tables lack: refused with the cause named
    assert main([*argv[:-1], str(tmp_path / "d2.nc")]) == 2
    assert not (tmp_path / "d2.nc").exists()


def test_a_format_that_does_not_fit_the_path_says_what_it_expected(pymrio_folder, tmp_path, caplog):
    """`--format pymrio` on a netCDF table used to end in pymrio's "File parameter file ... not found": the
    error names the file, what the format reads, what the path is, and the --format that reads it. No output."""
    from diffmrio.datasets import demo_world

    folder, _ = pymrio_folder
    table = tmp_path / "table.nc"
    demo_world(geography=False).mrio.to_xarray().to_netcdf(table)
    out = tmp_path / "acc.nc"
    cases = [
        ((table, "pymrio"), f"{table}: --format pymrio reads a folder or .zip archive written by pymrio's save_all "
                            "(with a file_parameters.json), but this is a netCDF file; pass --format netcdf"),
        ((folder, "netcdf"), f"{folder}: --format netcdf reads a netCDF table file in the layout of MRIO.to_xarray, "
                             "but this is a pymrio save_all folder; pass --format pymrio or leave out --format"),
        ((folder.parent, "pymrio"), f"but this is a folder without a file_parameters.json (its subfolder(s) "
                                    f"['{folder.name}'] have one)"),
    ]
    for (src, fmt), message in cases:
        caplog.clear()
        assert main(["accounts", str(src), "--format", fmt, "--out", str(out)]) == 2
        assert message in caplog.text
        assert "file_parameters.json not found" not in caplog.text
    assert not out.exists()
    assert main(["accounts", str(table), "--format", "netcdf", "--out", str(out), "-q"]) == 0  # the right one reads


def test_cli_warnings_are_one_line_each_once_without_a_source_path(tmp_path, capsys):
    """A warning on the command line reads `diffmrio COMMAND: warning: ...` once, not Python's `/path/x.py:209:
    UserWarning: ...` plus a source line (and not once per ensemble member): here a 2030 scenario field with the
    default 2015 population. The caller's own warning display is back afterwards."""
    import warnings

    from diffmrio.cli import _warning_printer

    paths, *_ = write_world(tmp_path)
    xr.Dataset({"PM2.5": (("lat", "lon"), np.full((3, 4), 20.0))},
               coords={"lat": [31.25, 30.75, 30.25], "lon": [100.25, 100.75, 101.25, 101.75]}
               ).to_netcdf(tmp_path / "pm25_ssp_2030.nc")
    before = warnings.showwarning
    argv = ["health", str(tmp_path / "pm25_ssp_2030.nc"), "--population", str(paths["population"]), "--regions",
            str(paths["grid"]), "--mortality", str(paths["mort"]), "--ages", str(paths["ages"]),
            "--causes", "IHD", "--out", str(tmp_path / "d.nc")]
    assert main(argv) == 0
    err = capsys.readouterr().err
    lines = [ln for ln in err.splitlines() if "warning" in ln]
    assert len(lines) == 1 and lines[0].startswith("diffmrio health: warning: the health inputs are for different "
                                                   "years: PM2.5 2030 (pm25_ssp_2030.nc, file name)")
    assert ".py:" not in err and "UserWarning" not in err
    assert warnings.showwarning is before
    show = _warning_printer("emulator")
    for _ in range(3):  # e.g. each member of an ensemble
        show(UserWarning("the same advice"), UserWarning, "x.py", 1)
    show(RuntimeWarning("other"), RuntimeWarning, "x.py", 2)
    assert capsys.readouterr().err.splitlines() == ["diffmrio emulator: warning: the same advice",
                                                    "diffmrio emulator: warning (RuntimeWarning): other"]
