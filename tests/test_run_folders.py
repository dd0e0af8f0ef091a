"""Run folders (docs/run_folders.md): the reference CTM writes them, `read_run_folder` reads them into run sets
that equal an independent numpy computation, labels are never positions, and every refusal names the run id
and the file."""

from __future__ import annotations

import json
import shutil
import warnings

import netCDF4
import numpy as np
import pandas as pd
import pytest
import xarray as xr

import ctm_interface as ci
import surrogate as sg
from ctm_interface import CTMFileError
from ctm_interface.reference import REGIONS, SPECIES, run_one, write_run_folder
from ctm_interface.reference._folder import FOLDER_GRID, _ctm
from ctm_interface.reference._model import PM25_WEIGHTS

ELMO_COMPS = {"SO4": [("PM25_SO4", 1.0)], "NO3": [("PM25_NO3", 1.0)], "NH4": [("PM25_NH4", 1.0)],
              "BC": [("PM25_EC", 1.0)], "OM": [("PM25_OC", 1.4)], "other": [("PM25_OTHER", 1.0)]}  # fmt: skip
GC_COMPS = {"SO4": [("SO4", 1.0)], "NO3": [("NIT", 1.0)], "NH4": [("NH4", 1.0)],
            "BC": [("BCPI", 1.0), ("BCPO", 1.0)], "OM": [("OCPI", 1.4), ("OCPO", 1.4)], "other": [("DST1", 1.0)]}  # fmt: skip
CMAQ_NAMES = {"SO2": "SO2", "NOx": "NOX", "NH3": "NH3", "VOC": "VOC", "BC": "PEC", "OC": "POC", "PM_other": "PMOTHR"}


@pytest.fixture(scope="module")
def elmo(tmp_path_factory):
    """CMAQ-named I/O API folder: 3 hourly records, adjoints (ADJ_LGRID_EM_SF) at their own states."""
    root = tmp_path_factory.mktemp("elmo")
    toml = write_run_folder(root, n_train=5, n_test=3, records=3, adjoint_states=2)
    return toml


@pytest.fixture(scope="module")
def geoschem(tmp_path_factory):
    """GEOS-Chem-named CF folder: adjoints of kind ADJ_LGRID_EM (dJ/dE) at the first training runs."""
    root = tmp_path_factory.mktemp("gc")
    return write_run_folder(root, n_train=4, n_test=2, vocabulary="geoschem", adjoint_states=2,
                            adjoint_on_train=True, adjoint_kind="emissions", seed=3)  # fmt: skip


# ------------------------------------------------------------------------------- independent numpy reading
def _var(path, name):
    with netCDF4.Dataset(path) as nc:
        nc.set_auto_mask(False)
        return np.asarray(nc.variables[name][:], np.float64)


def _masks_pop(root, fmt):
    if fmt == "ioapi":
        masks = np.stack([_var(root / "region_mask.nc", r)[0, 0] for r in REGIONS])
        pop = _var(root / "population.nc", "POP")[0, 0]
        base = np.stack([_var(root / "base_emissions.nc", CMAQ_NAMES[s])[0] for s in SPECIES])
    else:
        masks = _var(root / "region_mask.nc", "region_mask")
        pop = _var(root / "population.nc", "population")
        base = np.stack([_var(root / "base_emissions.nc", CMAQ_NAMES[s]) for s in SPECIES])
    return masks, pop, base


def _numpy_pm25(path, comps):
    """[receptor, component] population-weighted means, from the raw file variables."""
    fields = []
    for terms in comps.values():
        f = sum(w * _var(path, v)[:, 0].mean(axis=0) for v, w in terms)  # surface layer, mean over records
        fields.append(f)
    return np.stack(fields)


def _check_against_numpy(folder, comps, pattern, fmt):
    root = folder.config.root
    masks, pop, base = _masks_pop(root, fmt)
    w = masks * pop
    for r in folder.runs["run"].values:
        C = _numpy_pm25(root / pattern.format(run=r), comps)
        expect = np.einsum("cyx,gyx->gc", C, w) / w.sum(axis=(1, 2))[:, None]
        np.testing.assert_allclose(folder.runs["pm25"].sel(run=r).values, expect, rtol=1e-10, atol=0)
    return masks, pop, base


def test_elmo_folder_equals_numpy(elmo):
    folder = ci.read_run_folder(elmo)
    runs = folder.runs
    assert runs["pm25"].dims == ("run", "receptor", "component")
    assert list(runs["component"].values) == ["SO4", "NO3", "NH4", "BC", "OM", "other"]
    assert runs["run"].values.tolist() == list(range(8))
    assert runs["split"].values.tolist() == ["train"] * 5 + ["test"] * 3
    assert runs.attrs["components_vocabulary"] == "cmaq-elmo" and runs.attrs["n_records"] == 3
    assert json.loads(runs.attrs["component_definitions"])["OM"] == "1.4*PM25_OC"
    design = pd.read_csv(elmo.parent / "design.csv")
    for r in (0, 6):
        rows = design[design.run == r].set_index(["region", "species"])["factor"]
        np.testing.assert_array_equal(runs["scale"].sel(run=r).values,
                                      rows.unstack().loc[list(REGIONS), list(SPECIES)].values)  # fmt: skip
    np.testing.assert_array_equal(runs["scale"].sel(run=0).values, 1.0)  # the base run
    masks, pop, _ = _check_against_numpy(folder, ELMO_COMPS, "runs/CCTM_ELMO_run{run:03d}.nc", "ioapi")
    # the components add up to the file's PM25_TOT (OM = 1.4 OC): nothing double counted, nothing lost
    tot = _var(elmo.parent / "runs/CCTM_ELMO_run003.nc", "PM25_TOT")[:, 0].mean(0)
    w = masks * pop
    np.testing.assert_allclose(runs["pm25"].sel(run=3).sum("component").values,
                               (w * tot).sum((1, 2)) / w.sum((1, 2)), rtol=1e-6)  # fmt: skip
    # adjoints: mask-summed ADJ_LGRID_EM_SF fields
    adj = folder.adjoints
    assert adj["run"].values.tolist() == [0, 1] and adj.attrs["adjoint_kind"] == "scaling_factor"
    for st in (0, 1):
        path = elmo.parent / f"adjoint/ADJ_LGRID_EM_SF_state{st:02d}.nc"
        sf = np.stack([_var(path, CMAQ_NAMES[s])[0] for s in SPECIES])  # species, layer, row, col
        expect = np.einsum("slyx,gyx->gs", sf, masks)
        np.testing.assert_allclose(adj["sensitivity"].sel(run=st).values, expect, rtol=1e-10)
    wsum = (masks * pop).sum((1, 2))
    np.testing.assert_allclose(adj["cost_weights"].values, np.broadcast_to(wsum / wsum.sum(), (6, 6)), rtol=1e-12)
    # no forward run at the adjoint states' factors: the train split carries no sensitivity
    assert "sensitivity" not in folder.split("train")


def test_geoschem_folder_equals_numpy(geoschem):
    folder = ci.read_run_folder(geoschem)
    assert folder.runs.attrs["components_vocabulary"] == "geoschem"
    assert json.loads(folder.runs.attrs["component_definitions"])["BC"] == "BCPI + BCPO"
    masks, pop, base = _check_against_numpy(folder, GC_COMPS, "runs/GEOSChem.AerosolMass.run{run:03d}.nc4", "cf")
    adj = folder.adjoints
    for st in (0, 1):
        path = geoschem.parent / f"adjoint/ADJ_LGRID_EM_state{st:02d}.nc"
        dJdE = np.stack([_var(path, CMAQ_NAMES[s])[0] for s in SPECIES])
        expect = np.einsum("slyx,slyx,gyx->gs", dJdE, base, masks)  # ADJ_LGRID_EM x base emissions
        np.testing.assert_allclose(adj["sensitivity"].sel(run=st).values, expect, rtol=1e-10)
    # states 0, 1 are training runs: the train split carries their sensitivities, NaN for the others
    train = folder.split("train")
    g = train["sensitivity"].values
    assert np.isfinite(g[:2]).all() and np.isnan(g[2:]).all()
    # the stated cost is linear in the outputs: J = sum w * pm25 = population(x masks)-weighted PM2.5
    for st in (0, 1):
        C = _numpy_pm25(geoschem.parent / f"runs/GEOSChem.AerosolMass.run{st:03d}.nc4", GC_COMPS).sum(0)
        m = masks.sum(0) * pop
        J = (C * m).sum() / m.sum()
        np.testing.assert_allclose(float((adj["cost_weights"] * train["pm25"].sel(run=st)).sum()), J, rtol=1e-10)


def test_adjoint_matches_finite_differences(geoschem):
    """The folder's DESID scaling and the adjoint file convention agree: dJ/ds from the file equals a central
    difference of the reference CTM run through the same scaling."""
    folder = ci.read_run_folder(geoschem)
    cfg = folder.config.raw["reference_ctm"]
    ctm = _ctm(FOLDER_GRID, float(cfg["n_days"]))
    m = folder.masks.values.sum(0) * folder.population.values
    w = m / m.sum()
    scale0 = folder.adjoints["scale"].sel(run=1)
    g, k, h = 2, 0, 1e-3  # Central, SO2

    def J(s):
        E = ci.desid_emissions(folder.emissions, folder.masks, s).values
        C = np.asarray(ctm.run(E))
        return float(np.einsum("cyx,c,yx->", C, np.asarray(PM25_WEIGHTS), w))

    up, dn = scale0.copy(), scale0.copy()
    up[g, k] += h
    dn[g, k] -= h
    fd = (J(up) - J(dn)) / (2 * h)
    np.testing.assert_allclose(float(folder.adjoints["sensitivity"].sel(run=1)[g, k]), fd, rtol=2e-4)


# ------------------------------------------------------------------------------- labels, not positions
def test_test_split_labelled_150_reads_files_150(tmp_path):
    """Regression: a test split labelled 150-152 reads files 150-152, or fails; never files 000-002."""
    toml = write_run_folder(tmp_path / "f", train_ids=[0, 1, 2], test_ids=[150, 151, 152], outputs=False)
    for r in (0, 1, 2, 150, 151, 152):
        run_one(toml, r)
    folder = ci.read_run_folder(toml)
    test = folder.split("test")
    assert test["run"].values.tolist() == [150, 151, 152]
    _check_against_numpy(folder, ELMO_COMPS, "runs/CCTM_ELMO_run{run:03d}.nc", "ioapi")
    design = ci.read_design(tmp_path / "f" / "design.csv")
    np.testing.assert_array_equal(test["scale"].values, design.sel(run=[150, 151, 152]).values)
    # the trap: test outputs written at positions 3-5 instead of their labels
    runs = tmp_path / "f" / "runs"
    for i, r in enumerate((150, 151, 152)):
        (runs / f"CCTM_ELMO_run{r:03d}.nc").rename(runs / f"CCTM_ELMO_run{3 + i:03d}.nc")
    with pytest.raises(CTMFileError) as e:
        ci.read_run_folder(toml)
    msg = str(e.value)
    for r in (150, 151, 152):
        assert f"run {r} (" in msg and f"CCTM_ELMO_run{r:03d}.nc): no output file" in msg
    for i in (3, 4, 5):
        assert f"CCTM_ELMO_run{i:03d}.nc matches [outputs] pattern" in msg
    # collect_runs formats the label too
    masks = ci.read_region_masks(tmp_path / "f" / "region_mask.nc")
    d = design.sel(run=[150, 151, 152])
    with pytest.warns(UserWarning, match="3 of 3 runs unusable"), pytest.raises(CTMFileError, match="no run"):
        ci.collect_runs(d, str(runs / "CCTM_ELMO_run{run:03d}.nc"), receptor_masks=masks)
    for i, r in enumerate((150, 151, 152)):
        (runs / f"CCTM_ELMO_run{3 + i:03d}.nc").rename(runs / f"CCTM_ELMO_run{r:03d}.nc")
    # masks and population as read_ioapi returns them (variables per region, singleton TSTEP/LAY) are accepted
    got = ci.collect_runs(d, str(runs / "CCTM_ELMO_run{run:03d}.nc"),
                          receptor_masks=ci.read_ioapi(tmp_path / "f" / "region_mask.nc"),
                          weights=ci.read_ioapi(tmp_path / "f" / "population.nc")["POP"], on_missing="raise").load()  # fmt: skip
    assert got["receptor"].values.tolist() == list(REGIONS)
    assert got["run"].values.tolist() == [150, 151, 152]
    assert "PM25_TOT" not in got["component"].values  # the total is never a default component
    np.testing.assert_allclose(got["pm25"].sel(component="PM25_SO4").values,
                               folder.runs["pm25"].sel(run=[150, 151, 152], component="SO4").values, rtol=1e-12)  # fmt: skip


def test_collect_runs_refuses_duplicate_labels_and_globs(tmp_path):
    d = ci.latin_hypercube_design(3, ["a"], ["SO2"]).assign_coords(run=[5, 5, 6])
    masks = xr.DataArray(np.ones((1, 3, 3)), dims=("region", "ROW", "COL"))
    with pytest.raises(ValueError, match=r"repeats the run labels \['5'\]"):
        ci.collect_runs(d, str(tmp_path / "r{run}.nc"), receptor_masks=masks)
    with pytest.raises(ValueError, match="glob"):
        ci.collect_runs(d.assign_coords(run=[1, 2, 3]), str(tmp_path / "*/r{run}.nc"), receptor_masks=masks)


# ------------------------------------------------------------------------------- refusals
@pytest.fixture
def copy_of(elmo, tmp_path):
    def make():
        dst = tmp_path / "copy"
        shutil.copytree(elmo.parent, dst)
        return dst

    return make


def _refused(toml, *needles):
    with pytest.raises(CTMFileError) as e:
        ci.read_run_folder(toml)
    for n in needles:
        assert n in str(e.value), (n, str(e.value))
    return str(e.value)


def _edit(path, name, fn):
    with netCDF4.Dataset(path, "a") as nc:
        nc.set_auto_mask(False)
        v = nc.variables[name]
        v[:] = fn(np.asarray(v[:]))


def test_refuses_duplicated_ids(copy_of):
    root = copy_of()
    df = pd.read_csv(root / "design.csv")
    df = pd.concat([df, df[df.run == 4]])
    df.to_csv(root / "design.csv", index=False)
    _refused(root / "runs.toml", "design.csv", "run ids [4]", "duplicated")
    wide = pd.DataFrame({"run": [3, 3], "Capital:SO2": [1.0, 1.0]})
    with pytest.raises(CTMFileError, match=r"run ids \[3\] appear in more than one row"):
        ci.read_design(wide)


def test_refuses_missing_file(copy_of):
    root = copy_of()
    (root / "runs/CCTM_ELMO_run006.nc").unlink()
    _refused(root / "runs.toml", "run 6 (", "CCTM_ELMO_run006.nc): no output file")


def test_refuses_grid_mismatch(copy_of):
    root = copy_of()
    p = root / "runs/CCTM_ELMO_run002.nc"
    ds = ci.read_ioapi(p)
    ds.attrs["XORIG"] = float(ds.attrs["XORIG"]) + 144000.0
    ci.write_ioapi(ds.drop_vars(["x", "y", "lon", "lat"]), p)
    _refused(root / "runs.toml", "run 2 (", "CCTM_ELMO_run002.nc): grid does not match", "XORIG")


def test_refuses_population_on_another_grid_of_the_same_shape(copy_of):
    """A population file one cell off the masks' grid (same ROW x COL) was read by shape alone: every receptor
    mean was weighted with the neighbouring cells' people, without a word."""
    root = copy_of()
    p = root / "population.nc"
    ds = ci.read_ioapi(p)
    ds.attrs["XORIG"] = float(ds.attrs["XORIG"]) + float(ds.attrs["XCELL"])
    ci.write_ioapi(ds.drop_vars(["x", "y", "lon", "lat"]), p)
    _refused(root / "runs.toml", "population.nc: population grid does not match the masks' grid", "XORIG")


@pytest.mark.parametrize("bad,needle", [(np.nan, "NaN/inf"), (np.inf, "NaN/inf"), (-1.0, "negative concentrations")])
def test_refuses_nonfinite_and_negative(copy_of, bad, needle):
    root = copy_of()

    def poke(a):
        a = a.copy()
        a[1, 0, 2, 3] = bad
        return a

    _edit(root / "runs/CCTM_ELMO_run005.nc", "PM25_NO3", poke)
    _refused(root / "runs.toml", "run 5 (", "CCTM_ELMO_run005.nc): variable PM25_NO3", needle)


def test_refuses_a_receptor_without_people(copy_of):
    """A receptor whose cells hold nobody has no population-weighted mean: refused, naming the masks file."""
    root = copy_of()
    mask = _var(root / "region_mask.nc", REGIONS[0])[0, 0]
    _edit(root / "population.nc", "POP", lambda a: np.where(mask > 0, 0.0, a))
    _refused(root / "runs.toml", "region_mask.nc",
             f"receptors ['{REGIONS[0]}'] have zero total mask (x population) weight")  # fmt: skip


def test_receptor_means_and_adjoint_sums_go_through_the_one_region_kernel(elmo, monkeypatch):
    """Issue 11 item 4: `read_run_folder` aggregates with `ctm_interface.region_kernel` (means of the forward
    runs, sums of the adjoint fields), not with an inline copy of it."""
    import ctm_interface._regions as regions

    real, calls = regions.region_kernel, []

    def spy(x, fraction, weights=None, *, how="sum"):
        calls.append((how, weights is not None))
        return real(x, fraction, weights, how=how)

    monkeypatch.setattr(regions, "region_kernel", spy)
    folder = ci.read_run_folder(elmo)
    assert ("mean", True) in calls  # population-weighted receptor means
    assert ("sum", False) in calls  # mask sums of the adjoint fields
    assert folder.runs["pm25"].notnull().all()


def test_refuses_fewer_records(copy_of):
    root = copy_of()
    p = root / "runs/CCTM_ELMO_run007.nc"
    ds = ci.read_ioapi(p)
    ci.write_ioapi(ds.isel(TSTEP=slice(0, 2)).drop_vars(["x", "y", "lon", "lat"]), p)
    _refused(root / "runs.toml", "run 7 (", "CCTM_ELMO_run007.nc): has 2 time records, the other runs up to 3")


def test_refuses_adjoint_state_without_factors(copy_of):
    root = copy_of()
    shutil.copy(root / "adjoint/ADJ_LGRID_EM_SF_state01.nc", root / "adjoint/ADJ_LGRID_EM_SF_state07.nc")
    _refused(root / "runs.toml", "ADJ_LGRID_EM_SF_state07.nc matches [adjoints] pattern", "design_adjoint.csv")
    (root / "adjoint/ADJ_LGRID_EM_SF_state07.nc").unlink()
    (root / "adjoint/ADJ_LGRID_EM_SF_state01.nc").unlink()
    _refused(root / "runs.toml", "run 1 (", "ADJ_LGRID_EM_SF_state01.nc): no adjoint file")


def test_refuses_total_with_parts(copy_of):
    root = copy_of()
    text = (root / "runs.toml").read_text().replace(
        'components = "cmaq-elmo"', 'components = { SO4 = "PM25_SO4", PM25 = "PM25_TOT" }')
    (root / "runs.toml").write_text(text)
    msg = _refused(root / "runs.toml", "run 0 (", "CCTM_ELMO_run000.nc)", "PM25_TOT", "counted twice")
    # the same problem in every run is listed for three runs with their files, then once with the other ids
    assert msg.count("counted twice") == 3 and "run 2 (" in msg and "run 3 (" not in msg
    assert "the same in 5 more run(s): 3, 4, 5, 6, 7" in msg
    with pytest.raises(ValueError, match="counted twice"):
        ci.resolve_components({"OM": "om_oc*PM25_OC + PM25_TOT"}, ["PM25_OC", "PM25_TOT"])
    with pytest.raises(ValueError, match="count them twice"):
        sg.EmulatorLabels(("source",), (("a",),), "1", ("component", "receptor"), (("SO4", "PM25_TOT"), ("r",)), "ug m-3")


# ------------------------------------------------------------------------------- pieces
def test_vocabularies():
    conc = ["ASO4I", "ASO4J", "ANO3I", "ANO3J", "ANH4I", "ANH4J", "AECI", "AECJ", "APOCI", "APOCJ", "APNCOMI",
            "APNCOMJ", "AOTHRI", "AOTHRJ", "ATOTI", "ATOTJ"]
    cm = ci.resolve_components("cmaq-conc", conc, om_oc=1.8)
    assert cm.terms["SO4"] == (("ASO4I", 1.0), ("ASO4J", 1.0))
    assert cm.terms["OM"] == (("APOCI", 1.8), ("APOCJ", 1.8), ("APNCOMI", 1.0), ("APNCOMJ", 1.0))
    assert "ATOTI" not in cm.variables
    gc = ci.resolve_components("geoschem", ["SO4", "NIT", "NH4", "BCPI", "BCPO", "OCPI", "OCPO", "SOAS", "DST1",
                                            "DST2", "SALA", "PM25"])  # fmt: skip
    assert gc.terms["OM"] == (("OCPI", 1.4), ("OCPO", 1.4), ("SOAS", 1.0))
    assert gc.terms["other"] == (("DST1", 1.0), ("DST2", 0.38), ("SALA", 1.0))
    with pytest.raises(ValueError, match="component OM needs PM25_OM or PM25_OC"):
        ci.resolve_components("cmaq-elmo", ["PM25_SO4", "PM25_NO3", "PM25_NH4", "PM25_EC", "PM25_OTHER"])
    labels = sg.EmulatorLabels(("source",), (("a",),), "1", ("component",), (("OC", "PM25_OC", "OM", "SO4"),), "ug m-3")
    np.testing.assert_array_equal(labels.component_weights(), [1.4, 1.4, 1.0, 1.0])


def test_design_wide_equals_long(tmp_path):
    long = pd.DataFrame({"run": ["a", "a", "b", "b"], "region": ["R1", "R2"] * 2, "species": ["SO2"] * 4,
                         "factor": [0.5, 1.5, 1.0, 2.0], "split": ["train", "train", "test", "test"]})  # fmt: skip
    wide = pd.DataFrame({"run": ["a", "b"], "R1:SO2": [0.5, 1.0], "R2:SO2": [1.5, 2.0], "split": ["train", "test"]})
    d1, d2 = ci.read_design(long), ci.read_design(wide)
    xr.testing.assert_identical(d1, d2)
    assert d1["run"].values.tolist() == ["a", "b"] and d1["split"].values.tolist() == ["train", "test"]
    with pytest.raises(CTMFileError, match=r"run ids \['b'\] lack factors"):
        ci.read_design(long.iloc[:3])


def test_aggregate_to_regions_on_a_dataset():
    rng = np.random.default_rng(0)
    f = xr.Dataset({"a": (("ROW", "COL"), rng.random((3, 4))), "b": (("t", "ROW", "COL"), rng.random((2, 3, 4)))})
    m = xr.DataArray(rng.random((2, 3, 4)), dims=("region", "ROW", "COL"))
    w = rng.random((3, 4))
    out = ci.aggregate_to_regions(f, m, weights=w)
    np.testing.assert_allclose(out["a"].values, np.einsum("yx,ryx->r", f["a"].values, m.values * w)
                               / (m.values * w).sum((1, 2)), rtol=1e-12)  # fmt: skip
    xr.testing.assert_allclose(out["b"], ci.aggregate_to_regions(f["b"], m, weights=w))


def test_gridded_run_set(elmo):
    folder = ci.read_run_folder(elmo)
    g = folder.gridded("train")
    assert g["emissions"].dims == ("run", "species", "level", "row", "col")
    assert g["conc"].dims == ("run", "component", "row", "col")
    assert g.attrs["base_case"] == "run 0"
    masks, _, base = _masks_pop(elmo.parent, "ioapi")
    s = folder.runs["scale"].sel(run=3).values
    expect = base * (1 + np.einsum("gyx,gs->syx", masks, s - 1))[:, None]
    np.testing.assert_allclose(g["emissions"].sel(run=3).values, expect, rtol=1e-12)
    np.testing.assert_allclose(g["base_conc"].values, g["conc"].sel(run=0).values)
    labels = sg.EmulatorLabels.from_runs(g[["emissions", "conc"]])
    assert labels.input_dims == ("species", "level", "row", "col") and labels.output_shape == (6, 9, 12)
    # without a base run the base case is estimated from the runs
    test_only = folder.runs["scale"].sel(run=[5, 6, 7])
    _, est, how = ci.base_case(test_only, folder.fields)
    assert how.startswith("estimated") and est.shape == (6, 9, 12) and np.all(est.values >= 0)


def test_outputs_false_then_run_one(tmp_path):
    toml = write_run_folder(tmp_path / "g", n_train=2, n_test=1, outputs=False)
    assert not (tmp_path / "g" / "runs").exists()
    rep = ci.check_run_folder(toml)
    assert rep["n_runs_read"] == 0 and len(rep["problems"]) == 3 and "run 2 (" in rep["problems"][2]
    with pytest.raises(FileExistsError):
        write_run_folder(tmp_path / "g", outputs=False)
    with pytest.raises(ValueError, match="run id '9' is not in the design"):
        run_one(toml, "9")
    p = run_one(toml, "1")
    assert p == tmp_path / "g" / "runs" / "CCTM_ELMO_run001.nc" and not list(p.parent.glob(".*"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert ci.read_ioapi(p)["PM25_SO4"].sizes["TSTEP"] == 1


# ------------------------------------------------------------------------------- CLI
def _cli(capsys, *argv):
    from diffmrio.cli import main

    rc = main([str(a) for a in argv])
    out = capsys.readouterr()
    return rc, out.out, out.err


def test_cli_check_collect_fit_evaluate(elmo, tmp_path, capsys):
    rc, out, _ = _cli(capsys, "runs", "check", elmo, "--json", tmp_path / "check.json")
    assert rc == 0 and "8 of 8 read" in out and "'OM': '1.4*PM25_OC'" in out and "no problems found" in out
    assert json.loads((tmp_path / "check.json").read_text())["splits"] == {"train": 5, "test": 3}
    rc, out, _ = _cli(capsys, "runs", "collect", elmo, "--out", tmp_path / "runs.nc")
    assert rc == 0
    folder = ci.read_run_folder(elmo)
    with xr.open_dataset(tmp_path / "runs.nc") as ds:
        np.testing.assert_array_equal(ds["pm25"].values, folder.runs["pm25"].values)
        np.testing.assert_array_equal(ds["state_sensitivity"].values, folder.adjoints["sensitivity"].values)
        assert ds.attrs["components_vocabulary"] == "cmaq-elmo"
    rc, _, err = _cli(capsys, "runs", "collect", elmo, "--out", tmp_path / "runs.nc")
    assert rc == 2 and "exists" in err and "--force" in err  # nothing the user wrote is replaced silently
    assert _cli(capsys, "runs", "collect", elmo, "--out", tmp_path / "runs.nc", "--force")[0] == 0
    model = tmp_path / "model.eqx"
    rc, out, _ = _cli(capsys, "emulator", "fit", elmo, "--out", model, "--family", "linear")
    assert rc == 0 and model.exists()
    meta = sg.load_metadata(model)
    assert meta["provenance"]["components_vocabulary"] == "cmaq-elmo"
    assert meta["provenance"]["run_ids"] == ["0", "1", "2", "3", "4"]
    assert json.loads(meta["provenance"]["component_definitions"])["OM"] == "1.4*PM25_OC"
    rc, out, _ = _cli(capsys, "emulator", "evaluate", model, elmo, "--split", "test", "--json", tmp_path / "m.json")
    assert rc == 0
    metrics = json.loads((tmp_path / "m.json").read_text())
    assert metrics["n_runs"] == 3 and set(metrics["pm25"]["NME"]) == set(REGIONS)
    # the same numbers as the Python API
    ev = sg.evaluate(sg.load(model), folder.split("test"))
    assert metrics["pm25"]["NME"]["Capital"] == pytest.approx(float(ev["NME"].sel(component="PM25", receptor="Capital")))
    ga = sg.gradient_agreement(sg.load(model), folder.adjoints)
    assert metrics["gradient_agreement"]["r"] == pytest.approx(float(ga["source_r_pooled"]))
    # the adjoint states here have their own design: ids 0 and 1 are also training runs' ids, with other factors
    assert (metrics["adjoint_states"], metrics["adjoint_states_in_training_runs"]) == (2, 0)


def test_cli_evaluate_says_when_the_gradient_check_is_on_training_runs(geoschem, tmp_path, capsys):
    """The gradient agreement is computed at the adjoint states whatever --split says; at the first training runs
    (this folder) it is an in-sample check, and the JSON says how many states the model was trained on."""
    model = tmp_path / "model.eqx"
    assert _cli(capsys, "emulator", "fit", geoschem, "--out", model)[0] == 0
    rc, out, err = _cli(capsys, "emulator", "evaluate", model, geoschem, "--split", "test")
    metrics = json.loads(out)
    assert rc == 0 and (metrics["adjoint_states"], metrics["adjoint_states_in_training_runs"]) == (2, 2)
    assert "in-sample" not in err
    # evaluating on the training split itself is allowed, with a word that the errors are in-sample
    rc, out, err = _cli(capsys, "emulator", "evaluate", model, geoschem, "--split", "train")
    assert rc == 0 and json.loads(out)["n_runs"] == 4
    assert (f"diffmrio emulator: warning: 4 of the 4 runs of split 'train' are runs {model} was trained on (split "
            "'train' of this folder): their errors are in-sample") in err


def test_cli_check_reports_problems_and_ctm_run(copy_of, capsys):
    root = copy_of()
    (root / "runs/CCTM_ELMO_run004.nc").unlink()
    rc, out, _ = _cli(capsys, "runs", "check", root / "runs.toml")
    assert rc == 1 and "7 of 8 read" in out and "run 4 (" in out and "CCTM_ELMO_run004.nc): no output file" in out
    rc, out, err = _cli(capsys, "runs", "collect", root / "runs.toml", "--out", root / "x.nc")
    assert rc == 2 and "run 4 (" in err and not (root / "x.nc").exists()
    rc, out, _ = _cli(capsys, "ctm", "run", root / "runs.toml", "--run", "4")
    assert rc == 0 and out.strip().endswith("CCTM_ELMO_run004.nc")
    rc, out, err = _cli(capsys, "ctm", "run", root / "runs.toml", "--run", "44")
    assert rc == 2 and "run id '44' is not in the design" in err
    rc, out, _ = _cli(capsys, "runs", "check", root / "runs.toml")
    assert rc == 0 and "8 of 8 read" in out


@pytest.mark.slow
def test_cli_fit_mlp_uses_adjoints(geoschem, tmp_path, capsys):
    model = tmp_path / "mlp.eqx"
    rc, _, _ = _cli(capsys, "emulator", "fit", geoschem, "--out", model, "--family", "mlp", "--steps", "30")
    assert rc == 0
    meta = sg.load_metadata(model)
    assert meta["provenance"]["adjoints_used"] is True and meta["provenance"]["components_vocabulary"] == "geoschem"
    assert meta["class"] == "MLPEmulator"
