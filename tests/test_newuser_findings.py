"""Defects a new user met following docs/run_folders.md and docs/accounts.md: each test is a user mistake that
used to pass silently (a wrong number) or end in a traceback, and now gives a clear error or a correct result."""

from __future__ import annotations

import re

import pytest

import ctm_interface as ci
from ctm_interface import CTMFileError
from ctm_interface.reference import write_run_folder
from diffmrio.cli import main


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """One small reference-CTM folder; tests write edited copies of its runs.toml next to it."""
    return write_run_folder(tmp_path_factory.mktemp("nu"), n_train=4, n_test=2, records=1)


def _variant(toml, name, old, new):
    text = toml.read_text()
    assert old in text, old
    out = toml.parent / name
    out.write_text(text.replace(old, new, 1))
    return out


def _refused(toml, *needles):
    with pytest.raises(CTMFileError) as e:
        ci.check_run_folder(toml)
    for n in needles:
        assert n in str(e.value), (n, str(e.value))
    return str(e.value)


# ------------------------------------------------------------------------------------------------ runs.toml
def test_pattern_without_run_field_is_refused(folder):
    """Every run used to read the same file (run003) and `runs check` said 'no problems found'."""
    bad = _variant(folder, "norun.toml", "run{run:03d}.nc", "run003.nc")
    _refused(bad, "norun.toml", "[outputs] pattern", "no {run} field", "{run:03d}")


def test_pattern_with_unknown_field_is_refused_not_a_traceback(folder, capsys):
    bad = _variant(folder, "foo.toml", "run{run:03d}.nc", "run{run:03d}_{foo}.nc")
    _refused(bad, "foo.toml", "['foo']", "only {run}")
    assert main(["runs", "check", str(bad)]) == 2  # a user error: message and status 2, not a KeyError
    assert "foo.toml" in capsys.readouterr().err


def test_typo_in_key_is_refused_with_suggestion(folder):
    """`om_to_oc = 1.8` used to be ignored and OM formed with the default 1.4."""
    bad = _variant(folder, "typo.toml", "om_oc = 1.4", "om_to_oc = 1.8")
    _refused(bad, "typo.toml", "'om_to_oc'", "[outputs]", "did you mean 'om_oc'")


def test_typo_in_table_name_is_refused(folder):
    """A misspelt [population] table used to drop population weighting silently (area-weighted means)."""
    bad = _variant(folder, "pop.toml", "[population]", "[populaton]")
    _refused(bad, "pop.toml", "[populaton]", "did you mean 'population'")


def test_unknown_vocabulary_is_one_error_naming_the_key(folder):
    bad = _variant(folder, "voc.toml", 'components = "cmaq-elmo"', 'components = "cmaq_elmo"')
    msg = _refused(bad, "voc.toml", "[outputs] components", "did you mean 'cmaq-elmo'")
    assert msg.count("cmaq_elmo") == 1  # once, not once per run


def test_valid_folder_still_reads(folder):
    rep = ci.check_run_folder(folder)
    assert rep["problems"] == [] and rep["n_runs_read"] == 6


@pytest.mark.parametrize(("old", "new", "needle"), [
    ("high = 1.5", "high = 0.4", "0 <= low < high"),
    ("high = 1.5\n", "\n", "only one of low/high"),
    ("low = 0.5", 'low = "0.5"', "needs numbers"),
])  # fmt: skip
def test_bad_design_box_is_refused(folder, old, new, needle):
    """An inverted box (high < low) used to be accepted, and so the training envelope of every emulator."""
    bad = _variant(folder, "box.toml", old, new)
    _refused(bad, "box.toml", "[design]", needle)


# ------------------------------------------------------------------------------------------------ design.csv
def test_misspelt_region_in_one_row_is_named(folder, tmp_path):
    """One row relabelled `Harbour` made every run 'lack factors' without saying which pair."""
    import pandas as pd

    df = pd.read_csv(folder.parent / "design.csv")
    first = df["run"].iloc[0]
    df.loc[(df["region"] == "Harbor") & (df["run"] == first) & (df["species"] == "SO2"), "region"] = "Harbour"
    df.to_csv(tmp_path / "design.csv", index=False)
    with pytest.raises(CTMFileError) as e:
        ci.read_design(tmp_path / "design.csv")
    msg = str(e.value)
    assert "design.csv" in msg and "Harbour:SO2" in msg and "Harbor:SO2" in msg, msg
    assert f"'Harbor:SO2': [{first}]" in msg, msg  # the one run that lacks the real pair


# ------------------------------------------------------------------------------------------------ MRIO input
def _table():
    import numpy as np

    Z = np.array([[10, 5, 2, 1], [3, 20, 1, 2], [2, 1, 15, 4], [1, 3, 2, 10]], float)
    Y = np.array([[30, 5], [20, 10], [5, 40], [10, 20]], float)
    return Z, Y, np.ones((1, 4))


@pytest.mark.parametrize("arg", ["regions", "sectors", "categories", "stressors"])
def test_a_string_is_not_taken_as_a_list_of_labels(arg):
    """`regions="r1"` used to become the regions ('r', '1') and pass (2 regions were needed)."""
    import diffmrio

    Z, Y, F = _table()
    labels = {"regions": ["r1", "r2"], "sectors": ["s1", "s2"], "categories": ["hh"], "stressors": ["co2"]}
    labels[arg] = "r1" if arg == "regions" else "ab"
    with pytest.raises(diffmrio.MRIOError, match=rf"`{arg}` is the string .*pass a list"):
        diffmrio.MRIO.from_arrays(Z, Y, F, **labels)


def test_complex_none_and_scalar_arrays_are_refused():
    """A complex Z used to lose its imaginary part with only a ComplexWarning; None ended in an IndexError."""
    import numpy as np

    import diffmrio

    Z, Y, F = _table()
    kw = {"regions": ["r1", "r2"], "sectors": ["s1", "s2"], "categories": ["hh"], "stressors": ["co2"]}
    with pytest.raises(diffmrio.MRIOError, match="`Z` is complex"):
        diffmrio.MRIO.from_arrays(Z + 1j, Y, F, **kw)
    with pytest.raises(diffmrio.MRIOError, match="`Z` is None"):
        diffmrio.MRIO.from_arrays(None, Y, F, **kw)
    with pytest.raises(diffmrio.MRIOError, match=r"`Z` must be a 2-D matrix.*\(\)"):
        diffmrio.MRIO.from_arrays(np.float64(3.0), Y, F, **kw)
    m = diffmrio.MRIO.from_arrays(Z, Y, F, **kw)  # the same table, real: accepted, x = Z 1 + Y 1
    np.testing.assert_array_equal(np.asarray(m.Z), Z)


def test_a_boolean_matrix_is_refused_not_read_as_flows_of_one():
    """A mask passed as Z used to become flows of 0 and 1 without a word."""
    import diffmrio

    Z, Y, F = _table()
    kw = {"regions": ["r1", "r2"], "sectors": ["s1", "s2"], "categories": ["hh"], "stressors": ["co2"]}
    with pytest.raises(diffmrio.MRIOError, match=r"`Z` is boolean.*astype\(float\)"):
        diffmrio.MRIO.from_arrays(Z > 0, Y, F, **kw)
    with pytest.raises(diffmrio.MRIOError, match="`F` is boolean"):
        diffmrio.MRIO.from_arrays(Z, Y, F > 0, **kw)


def test_text_run_ids_with_an_integer_pattern_name_runs_toml(folder):
    """Run ids relabelled `run000`, ... with the pattern's {run:03d}: the error now names runs.toml and [outputs]."""
    import pandas as pd

    df = pd.read_csv(folder.parent / "design.csv")
    df["run"] = [f"run{r:03d}" for r in df["run"]]
    df.to_csv(folder.parent / "design_text_ids.csv", index=False)
    bad = _variant(folder, "textids.toml", 'file = "design.csv"', 'file = "design_text_ids.csv"')
    _refused(bad, "textids.toml", "[outputs] pattern", "'run000'", "{run} instead of {run:03d}")
    good = _variant(bad, "textids_ok.toml", "run{run:03d}.nc", "{run}.nc")  # the fix the message gives
    assert ci.check_run_folder(good)["n_runs_read"] == 6
    # the SLURM side (which files a resubmission waits for) names runs.toml too, not a bare ValueError
    from ctm_interface._slurm import run_output_paths

    with pytest.raises(ci.CTMFileError, match=r"(?s)textids\.toml.*\[outputs\].*\{run\} instead of \{run:03d\}"):
        run_output_paths(bad)
    assert run_output_paths(good, ["run002"])["run002"].name.endswith("run002.nc")


def test_runs_outside_the_declared_design_box_are_refused(folder):
    """`[design] low/high` is the emulator's training envelope; a design with factors outside it used to be read
    silently (the saved emulator then claimed an envelope its own runs leave)."""
    import re

    import pandas as pd

    df = pd.read_csv(folder.parent / "design.csv")
    hi = float(df["factor"].max())
    assert ci.check_run_folder(folder)["envelope"]["high"] >= hi  # the writer's box holds every run: accepted
    text = re.sub(r"(?m)^high = .*$", f"high = {hi / 2}", folder.read_text(), count=1)
    assert text != folder.read_text()
    tight = folder.parent / "tight.toml"
    tight.write_text(text)
    msg = _refused(tight, "outside the design box", "widen low/high")
    assert repr(df.loc[df["factor"].idxmax(), "run"].item()) in msg


# ------------------------------------------------------------------------------------------------ CLI
def test_cli_out_that_is_a_folder_is_refused_even_with_force(folder, tmp_path, capsys):
    """`--out some_folder --force` ended in an IsADirectoryError traceback (after the whole folder was read)."""
    (tmp_path / "keep.txt").write_text("mine")
    assert main(["runs", "check", str(folder), "--json", str(tmp_path), "--force"]) == 2
    err = capsys.readouterr().err
    assert str(tmp_path) in err and "is a folder" in err, err
    assert (tmp_path / "keep.txt").read_text() == "mine" and sorted(p.name for p in tmp_path.iterdir()) == ["keep.txt"]


def test_ras_on_an_empty_matrix_warns_nothing():
    """An empty table balanced to empty margins used to emit four numpy RuntimeWarnings (mean of empty slice)."""
    import warnings

    import numpy as np

    import diffmrio

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        X, rep = diffmrio.tables.ras(np.zeros((0, 0)), np.zeros(0), np.zeros(0))
    assert X.shape == (0, 0) and rep.converged


def test_evaluate_accepts_the_same_components_in_another_order(folder, tmp_path):
    """The same component table written in another order was refused as 'different definitions'; now the run
    set is put in the emulator's label order and gives the same metrics."""
    import json

    model = tmp_path / "lin.eqx"
    assert main(["emulator", "fit", str(folder), "--out", str(model)]) == 0
    table = ('components = { OM = "1.4*PM25_OC", other = "PM25_OTHER", SO4 = "PM25_SO4", NO3 = "PM25_NO3", '
             'NH4 = "PM25_NH4", BC = "PM25_EC" }')
    reord = _variant(folder, "reord.toml", 'components = "cmaq-elmo"', table)
    assert ci.read_run_folder(reord).runs["component"].values.tolist()[0] == "OM"  # really another order
    for toml, js in ((folder, "a.json"), (reord, "b.json")):
        assert main(["emulator", "evaluate", str(model), str(toml), "--split", "test", "--json", str(tmp_path / js)]) == 0
    a, b = (json.loads((tmp_path / js).read_text()) for js in ("a.json", "b.json"))
    assert a["pm25"]["NME"].keys() == b["pm25"]["NME"].keys()
    for r in a["pm25"]["NME"]:
        assert b["pm25"]["NME"][r] == pytest.approx(a["pm25"]["NME"][r], rel=1e-12)
    changed = _variant(folder, "om18.toml", "om_oc = 1.4", "om_oc = 1.8")  # a real difference is still refused
    assert main(["emulator", "evaluate", str(model), str(changed), "--split", "test"]) == 2


def test_misspelt_species_names_both_files_in_plain_words(folder, tmp_path):
    """`NOX` for `NOx` in the design was reported as `[np.str_('NOX')]`, without the design file or the fix."""
    import pandas as pd

    df = pd.read_csv(folder.parent / "design.csv")
    df.loc[df["species"] == "NOx", "species"] = "NOX"
    df.to_csv(folder.parent / "design_nox.csv", index=False)
    bad = _variant(folder, "nox.toml", 'file = "design.csv"', 'file = "design_nox.csv"')
    msg = _refused(bad, "nox.toml", "design species ['NOX']", "design_nox.csv", "'NOx'")
    assert "np.str_" not in msg


def test_fit_without_split_column_says_how_to_add_one(folder, tmp_path, capsys):
    import pandas as pd

    pd.read_csv(folder.parent / "design.csv").drop(columns="split").to_csv(folder.parent / "design_nosplit.csv", index=False)
    bad = _variant(folder, "nosplit.toml", 'file = "design.csv"', 'file = "design_nosplit.csv"')
    assert main(["emulator", "fit", str(bad), "--out", str(tmp_path / "m.eqx")]) == 2
    err = capsys.readouterr().err
    assert "design_nosplit.csv" in err and "no split column" in err and "add a column `split`" in err, err
    assert not (tmp_path / "m.eqx").exists()


def test_wrong_format_points_at_the_format_key(folder):
    """`format = "cf"` for CMAQ I/O API outputs gave 'no 1-D lat coordinate found ... is this a lat-lon file?'."""
    bad = _variant(folder, "fmt.toml", 'format = "ioapi"', 'format = "cf"')
    rep = ci.check_run_folder(bad)
    assert rep["n_runs_read"] == 0 and len(rep["problems"]) == 4  # 3 runs named with their files, then the rest
    assert all("looks like I/O API: set [outputs] format = 'ioapi'" in p for p in rep["problems"][:3]), rep["problems"][0]
    assert rep["problems"][3].startswith("the same in 3 more run(s): ")


# ------------------------------------------------------------------------------------------ session 6 findings
def _wiod_like(path, *, inventory=-1.0):
    """A 2-country x 2-industry table in the WIOD netCDF layout of ../shared/data/wiod2013 (integers, one
    negative inventory change that makes a gross output negative, as in the published LUX rows)."""
    import numpy as np
    import xarray as xr

    Z = np.array([[10, 4, 2, 0], [3, 8, 1, 0], [2, 1, 12, 0], [0, 0, 0, 0]])
    Y = np.array([[30, 2, 5, 0], [20, 1, 4, 1], [6, 0, 40, 3], [0, 0, 0, inventory]])
    ds = xr.Dataset(
        {"Z": (("row", "col"), Z), "Y": (("row", "fd"), Y), "x": ("row", Z.sum(1) + Y.sum(1))},
        coords={"row_country": ("row", ["AAA", "AAA", "BBB", "BBB"]), "row_industry": ("row", ["c1", "c2"] * 2),
                "col_country": ("col", ["AAA", "AAA", "BBB", "BBB"]), "col_industry": ("col", ["c1", "c2"] * 2),
                "fd_country": ("fd", ["AAA", "AAA", "BBB", "BBB"]), "fd_category": ("fd", ["CONS_h", "INVEN"] * 2),
                "category": ["CONS_h", "INVEN"]},
    )  # fmt: skip
    ds.to_netcdf(path)
    return Z.astype(float), Y.astype(float)


def test_accounts_reads_a_wiod_table_and_footprints_match_numpy(tmp_path, caplog):
    """`diffmrio accounts wiot_2011.nc` (the shared WIOD table) ended in `KeyError: 'region'`: the netCDF
    reader only knew the MRIO.to_xarray layout. A WIOD-layout file is now recognised and read with read_wiod
    (negative inventory cleaned, each cell logged); the value-added footprints are checked against numpy."""
    import numpy as np
    import xarray as xr

    Z, Y = _wiod_like(tmp_path / "wiot.nc")
    out = tmp_path / "acc.nc"
    with caplog.at_level("WARNING", logger="diffmrio"):
        assert main(["accounts", str(tmp_path / "wiot.nc"), "--out", str(out)]) == 0
    assert "INVEN final demand of BBB/c2 -1 -> 0" in caplog.text  # the cleaning is said, not silent
    acc = xr.load_dataset(out)
    Y[3, 3] = 0.0  # what clean_table does: the -1 inventory change moved to 0
    x = Z.sum(1) + Y.sum(1)
    va = x - Z.sum(0)
    A = np.divide(Z, x, out=np.zeros_like(Z), where=x > 0)
    s = np.divide(va, x, out=np.zeros_like(va), where=x > 0)
    cba = s @ np.linalg.inv(np.eye(4) - A) @ Y.reshape(4, 2, 2).sum(2)
    got = acc["D_cba_reg"].sel(stressor="value_added").transpose("region").values
    np.testing.assert_allclose(got, cba, rtol=1e-12)
    # consumption- and production-based totals agree, and value added sums to final demand
    np.testing.assert_allclose(got.sum(), acc["D_pba_reg"].sel(stressor="value_added").sum(), rtol=1e-12)
    np.testing.assert_allclose(got.sum(), Y.sum(), rtol=1e-12)


def test_read_wiod_negative_output_error_names_clean_true(tmp_path):
    """Issue 11 trial: `read_wiod` of the shared WIOD file stopped at "gross output ... negative ...; check final
    demand ... or rebalance the table" without naming `clean=True`, which was only in docs/table_building.md. The
    error now says it, with the path, and following it reads the table."""
    import numpy as np

    import diffmrio
    from diffmrio.tables import read_wiod

    path = tmp_path / "wiot.nc"
    _wiod_like(path)
    with pytest.raises(diffmrio.MRIOError, match=r"negative for \('BBB', 'c2'\).*rebalance the table\. Or read it "
                       rf"with `read_wiod\('{re.escape(str(path))}', clean=True\)`, which sets the negative inventory"):
        read_wiod(path)
    m = read_wiod(path, clean=True)  # the advice works
    assert m.validation == ("cleaned: BBB/INVEN final demand of BBB/c2 -1 -> 0",)
    assert float(np.asarray(m.Y)[3, 3]) == 0.0
    # an error clean=True cannot repair does not advertise it: no negative output, but AAA's two industries buy
    # all their output from each other (no value added)
    import xarray as xr

    _wiod_like(path, inventory=1.0)
    ds = xr.load_dataset(path)
    ds["Z"][:, :2] = 0
    ds["Z"][0, :], ds["Z"][1, :] = [0, 10, 0, 0], [10, 0, 0, 0]
    ds["Y"][:2, :] = 0
    ds.to_netcdf(path)
    with pytest.raises(diffmrio.MRIOError, match="spectral radius") as exc:
        read_wiod(path)
    assert "clean=True" not in str(exc.value)


def test_a_netcdf_in_another_layout_is_a_clear_error_not_a_keyerror(tmp_path, caplog):
    import xarray as xr

    xr.Dataset({"Z": (("a", "b"), [[1.0]]), "Y": (("a", "c"), [[1.0]])}).to_netcdf(tmp_path / "t.nc")
    assert main(["accounts", str(tmp_path / "t.nc"), "--out", str(tmp_path / "acc.nc")]) == 2
    assert "lacks ['region', 'sector', 'category']" in caplog.text and "MRIO.to_xarray" in caplog.text
    assert not (tmp_path / "acc.nc").exists()


def test_evaluate_json_is_strict_json(folder, tmp_path, monkeypatch):
    """`emulator evaluate --json` on a one-component folder (real CMAQ CONC files, `components = {other =
    "CH4"}`) wrote `"spurious_max": NaN`, which jq, JavaScript and strict parsers refuse; undefined metrics
    are now null. The NaN is injected here so that the small reference folder shows the same case."""
    import json

    import numpy as np

    import surrogate as sg

    model = tmp_path / "m.eqx"
    assert main(["emulator", "fit", str(folder), "--out", str(model), "--family", "linear"]) == 0
    real = sg.evaluate
    monkeypatch.setattr(sg, "evaluate", lambda *a, **k: real(*a, **k).assign(spurious_max=np.nan))
    assert main(["emulator", "evaluate", str(model), str(folder), "--json", str(tmp_path / "m.json")]) == 0

    def strict(c):
        raise ValueError(f"non-standard JSON constant {c}")

    out = json.loads((tmp_path / "m.json").read_text(), parse_constant=strict)
    assert out["spurious_max"] is None and np.isfinite(out["mean_NME"])


def test_ctrl_c_is_a_message_and_leaves_no_file(tmp_path, monkeypatch, capsys, caplog):
    """Ctrl-C during `diffmrio accounts` printed a KeyboardInterrupt traceback; now a one-line message,
    status 130, and no output (or temporary) file."""
    import diffmrio
    from diffmrio.datasets import demo_world

    demo_world(geography=False).mrio.to_xarray().to_netcdf(tmp_path / "world.nc")

    def interrupted(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(diffmrio._accounts, "accounts", interrupted)
    assert main(["accounts", str(tmp_path / "world.nc"), "--out", str(tmp_path / "acc.nc")]) == 130
    assert "interrupted" in caplog.text
    assert sorted(p.name for p in tmp_path.iterdir()) == ["world.nc"]


def test_missing_design_file_names_runs_toml_and_the_key(folder):
    """A misspelt `[design] file` said only `desgn.csv: design table does not exist`, without runs.toml or the
    key to correct."""
    bad = _variant(folder, "nodesign.toml", 'file = "design.csv"', 'file = "desgn.csv"')
    _refused(bad, "nodesign.toml", "[design] file = 'desgn.csv'", "does not exist", "correct the path")


def test_demo_report_claims_about_household_emissions_hold():
    """The demo report's 'consumer view' of CO2 and its production-layer bars are below D_cba_reg / D_pba_reg of
    the same report; the report now says they exclude the households' direct emissions F_Y. Check that claim."""
    import numpy as np

    import diffmrio
    from diffmrio.datasets import demo_world
    from diffmrio.supply_chain import production_layers

    m = demo_world(geography=False).mrio
    acc = diffmrio.accounts(m)
    k = list(m.stressors).index("CO2")
    fy = np.asarray(m.F_Y).reshape(m.n_stressors, m.n_regions, -1).sum(2)
    cons = acc.burden.sel(stressor="CO2").sum("region").values
    np.testing.assert_allclose(cons, acc.D_cba_reg.sel(stressor="CO2").values - fy[k], rtol=1e-10)
    assert (fy[k] > 0).all()  # the difference is real in the demo world
    ds = production_layers(m, T=4, stressor="SO2")
    bars = (ds.layers.sel(stressor="SO2").sum(("sector", "layer")) + ds.remainder.sel(stressor="SO2").sum("sector"))
    s = list(m.stressors).index("SO2")
    np.testing.assert_allclose(bars.values, acc.D_pba_reg.sel(stressor="SO2").values - fy[s], rtol=1e-10)


def test_lat_lon_receptor_means_weight_cells_by_area(tmp_path):
    """A GEOS-Chem/CF run folder without population: receptor means were plain cell means over the mask while
    the run set said `weighting: area`; on a 0.5-degree global grid (the shared GEOS-Chem PM2.5 field) that
    was 7.57 instead of 9.34 ug m-3 for the northern hemisphere. Cells now weigh cos(latitude)."""
    import numpy as np
    import pandas as pd
    import xarray as xr

    lat, lon = np.arange(80.0, -81.0, -20.0), np.arange(-170.0, 180.0, 40.0)  # decreasing, as in that file
    rng = np.random.default_rng(0)
    north = np.repeat((lat > 0)[:, None], lon.size, axis=1).astype(float)
    (tmp_path / "runs").mkdir()
    rows, fields = [], []
    for k in range(2):
        field = rng.uniform(1.0, 30.0, (lat.size, lon.size))
        xr.Dataset({"PM25X": (("lat", "lon"), field, {"units": "ug m-3"})}, coords={"lat": lat, "lon": lon}
                   ).to_netcdf(tmp_path / "runs" / f"r{k}.nc")  # fmt: skip
        rows += [(k, "N", "SO2", 1.0 + 0.1 * k), (k, "S", "SO2", 1.0)]
        fields.append(field)
    pd.DataFrame(rows, columns=["run", "region", "species", "factor"]).to_csv(tmp_path / "design.csv", index=False)
    xr.Dataset({"mask": (("region", "lat", "lon"), np.stack([north, 1 - north]))},
               coords={"region": ["N", "S"], "lat": lat, "lon": lon}).to_netcdf(tmp_path / "masks.nc")  # fmt: skip
    toml = tmp_path / "runs.toml"
    toml.write_text('[design]\nfile = "design.csv"\n[outputs]\npattern = "runs/r{run}.nc"\nformat = "cf"\n'
                    'components = { other = "PM25X" }\n[regions]\nmasks = "masks.nc"\n')
    runs = ci.read_run_folder(toml).runs
    area = np.cos(np.deg2rad(lat))[:, None] * np.ones(lon.size)
    for k, field in enumerate(fields):
        for g, m in (("N", north), ("S", 1 - north)):
            want = (field * m * area).sum() / (m * area).sum()
            got = float(runs["pm25"].sel(run=k, receptor=g, component="other"))
            np.testing.assert_allclose(got, want, rtol=1e-12)
    assert "cos(latitude)" in runs.attrs["weighting"]


def test_propose_says_which_box_it_used(folder, tmp_path, capsys):
    """Without [design] low/high, `emulator propose` proposed factors outside every run's range (the model's
    envelope is the training range widened) and did not say so; it now prints the box and where it came from."""
    import numpy as np
    import pandas as pd

    text = folder.read_text()
    nobox = folder.parent / "nobox.toml"
    nobox.write_text("\n".join(ln for ln in text.splitlines() if not ln.startswith(("low =", "high ="))) + "\n")
    assert "low =" not in nobox.read_text()
    model, out = tmp_path / "m.eqx", tmp_path / "next.csv"
    assert main(["emulator", "fit", str(nobox), "--out", str(model), "--family", "linear"]) == 0
    capsys.readouterr()
    assert main(["emulator", "propose", str(model), str(nobox), "--n", "3", "--out", str(out),
                 "--candidates", "200"]) == 0  # fmt: skip
    msg = capsys.readouterr().out
    assert "emulator's envelope" in msg and "no [design] low/high" in msg
    lo, hi = (float(v) for v in msg.split("factors in [")[1].split("]")[0].split(","))
    x = pd.read_csv(out).drop(columns="run").to_numpy()
    assert np.all(x >= lo - 1e-3) and np.all(x <= hi + 1e-3)
