"""Ensemble designs (stratification, ranges, base/OAT runs), manifests, per-run inputs, SLURM scripts and
lazy ingestion of finished runs with missing / truncated / mismatched files."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import warnings

import dask.array as da
import numpy as np
import pandas as pd
import pytest
import xarray as xr

from ctm_interface import (
    CTMFileError,
    GridDefinition,
    collect_runs,
    latin_hypercube_design,
    read_manifest,
    sobol_design,
    write_ioapi,
    write_manifest,
    write_run_inputs,
    write_slurm_script,
)

REGIONS = ("Capital", "Harbor", "Central", "Basin", "Northeast", "Steppe")
SPECIES = ("SO2", "NOx", "NH3", "VOC", "BC", "OC", "PM_other")
LEVELS = ("ground", "elevated")
COMPONENTS = ("SO4", "NO3", "NH4", "BC", "OC", "PM_other")
GRID = GridDefinition(
    2, 25.0, 40.0, 110.0, 110.0, 34.0, -300_000.0, -200_000.0, 50_000.0, 50_000.0, 8, 6, "TEST"
)


def _strata_ok(design, n):
    """Every factor's n sampled values hit each of its n equal strata exactly once."""
    x = design.where(design.run_kind != "base", drop=True)
    u = ((x - x["low"]) / (x["high"] - x["low"])).values.reshape(n, -1)
    strata = np.floor(u * n).astype(int)
    return all(sorted(strata[:, j]) == list(range(n)) for j in range(strata.shape[1]))


@pytest.mark.parametrize("seed", [0, 7])
def test_latin_hypercube_stratified_and_in_range(seed):
    d = latin_hypercube_design(
        20,
        REGIONS,
        SPECIES,
        LEVELS,
        low=0.0,
        high={s: 2.0 if s != "NH3" else 1.5 for s in SPECIES},
        seed=seed,
    )
    assert d.dims == ("run", "source", "species", "level") and d.shape == (20, 6, 7, 2)
    assert _strata_ok(d, 20)
    assert float(d.sel(species="NH3").max()) <= 1.5 and float(d.max()) <= 2.0 and float(d.min()) >= 0.0
    again = latin_hypercube_design(
        20,
        REGIONS,
        SPECIES,
        LEVELS,
        low=0.0,
        high={s: 2.0 if s != "NH3" else 1.5 for s in SPECIES},
        seed=seed,
    )
    np.testing.assert_array_equal(d.values, again.values)
    other = latin_hypercube_design(20, REGIONS, SPECIES, LEVELS, seed=seed + 1)
    assert not np.allclose(d.values, other.values)


def test_sobol_power_of_two_is_stratified():
    d = sobol_design(32, REGIONS, SPECIES, low=0.5, high=1.5, seed=3)
    assert d.dims == ("run", "source", "species") and d.attrs["method"] == "sobol"
    assert _strata_ok(d, 32)


def test_base_and_one_at_a_time_runs():
    d = latin_hypercube_design(
        4, ["A", "B"], ["SO2", "NOx"], low=0.2, high=1.8, include_base=True, include_oat=True
    )
    kinds = list(d.run_kind.values)
    assert kinds == ["base"] + ["oat"] * 8 + ["lhs"] * 4
    np.testing.assert_array_equal(d.isel(run=0).values, 1.0)
    oat = d.values[1:9].reshape(8, 4)
    for j in range(4):  # factor j at its low then high value, all others 1
        for k, v in enumerate((0.2, 1.8)):
            row = oat[2 * j + k]
            assert row[j] == pytest.approx(v) and np.all(np.delete(row, j) == 1.0)
    assert list(d.run_id.values[:2]) == ["run0000", "run0001"]


def test_design_rejects_bad_ranges():
    with pytest.raises(ValueError, match="low < high"):
        latin_hypercube_design(4, REGIONS, SPECIES, low=1.0, high=1.0)
    with pytest.raises(ValueError, match="lacks species"):
        latin_hypercube_design(4, REGIONS, SPECIES, high={"SO2": 2.0})
    with pytest.raises(ValueError, match="unique"):
        sobol_design(4, ["A", "A"], SPECIES)


def test_manifest_roundtrip(tmp_path):
    d = latin_hypercube_design(6, REGIONS, SPECIES, LEVELS, seed=11, include_base=True)
    p = write_manifest(
        tmp_path / "ens" / "manifest.json", d, metadata={"ctm": "CMAQ 5.4", "base_emissions": "/data/emis"}
    )
    doc = json.loads(p.read_text())
    assert doc["seed"] == 11 and doc["method"] == "lhs" and doc["n_runs"] == 7
    assert doc["labels"]["source"] == list(REGIONS) and doc["labels"]["level"] == list(LEVELS)
    assert not [f for f in os.listdir(p.parent) if f.startswith(".")]  # no temporary files left
    back = read_manifest(p)
    np.testing.assert_array_equal(back.values, d.values)
    for c in ("run_id", "run_kind", "low", "high", "source", "species", "level"):
        np.testing.assert_array_equal(back[c].values, d[c].values)
    assert back.attrs["seed"] == 11 and json.loads(back.attrs["metadata"])["ctm"] == "CMAQ 5.4"
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(CTMFileError, match=r"bad\.json: not a readable JSON manifest"):
        read_manifest(tmp_path / "bad.json")


@pytest.mark.parametrize("fmt", ["csv", "netcdf"])
def test_run_inputs(tmp_path, fmt):
    d = sobol_design(4, REGIONS, SPECIES, LEVELS, seed=2)
    paths = write_run_inputs(d, tmp_path / "inputs", fmt=fmt)
    assert [p.name.split("_")[0] for p in paths] == ["run0000", "run0001", "run0002", "run0003"]
    for i, p in enumerate(paths):
        if fmt == "csv":
            df = pd.read_csv(p)
            assert list(df.columns) == ["source", "species", "level", "scale"] and len(df) == 6 * 7 * 2
            for _, r in df.sample(10, random_state=0).iterrows():
                assert r.scale == pytest.approx(
                    float(d.isel(run=i).sel(source=r.source, species=r.species, level=r.level)), rel=1e-15
                )
        else:
            ds = xr.open_dataset(p)
            np.testing.assert_array_equal(ds["scale"].values, d.isel(run=i).values)
            assert ds.attrs["run_id"] == f"run{i:04d}"


def test_slurm_script_runs_the_indexed_member(tmp_path):
    d = latin_hypercube_design(12, REGIONS, SPECIES, seed=0)
    m = write_manifest(tmp_path / "manifest.json", d)
    script = write_slurm_script(
        tmp_path / "submit.sh",
        m,
        "echo member {run} uses inputs/{run_id}_scale.csv",
        partition="compute",
        mem="8G",
        max_concurrent=4,
        setup=["export OMP_NUM_THREADS=1"],
    )
    text = script.read_text()
    assert (
        "#SBATCH --array=0-11%4" in text
        and "#SBATCH --partition=compute" in text
        and "#SBATCH --mem=8G" in text
    )
    assert text.startswith("#!/bin/bash\n") and os.access(script, os.X_OK)
    bash = shutil.which("bash")
    subprocess.run([bash, "-n", str(script)], check=True)
    env = {**os.environ, "SLURM_ARRAY_TASK_ID": "7"}
    out = subprocess.run(
        [bash, str(script)], cwd=tmp_path, env=env, capture_output=True, text=True, check=True
    )
    assert "member 7 uses inputs/run0007_scale.csv" in out.stdout
    env.pop("SLURM_ARRAY_TASK_ID")
    bad = subprocess.run([bash, str(script)], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert bad.returncode == 2 and "SLURM_ARRAY_TASK_ID" in bad.stderr
    env["SLURM_ARRAY_TASK_ID"] = "12"
    assert subprocess.run([bash, str(script)], cwd=tmp_path, env=env, capture_output=True).returncode == 2


# ------------------------------------------------------------------------------------------- collect_runs
def _fields(scale: np.ndarray, rng_seed=0) -> np.ndarray:
    """Synthetic 'CTM': components (6, 3 time steps, row, col) linear in the region-level scale factors."""
    rng = np.random.default_rng(rng_seed)
    foot = rng.random((len(COMPONENTS), len(REGIONS), len(SPECIES), GRID.nrows, GRID.ncols))
    hourly = rng.uniform(0.5, 1.5, 3)
    mean = 1.0 + np.einsum("gk,cgkyx->cyx", scale, foot)
    return mean[:, None] * hourly[None, :, None, None] / hourly.mean()


def _write_run(path, scale, grid=GRID):
    f = _fields(scale)
    attrs = {k: v for k, v in grid.to_ioapi_attrs().items() if k not in ("NCOLS", "NROWS")}
    attrs.update(SDATE=2015001, STIME=0, TSTEP=80000)
    ds = xr.Dataset(
        {
            c: (
                ("TSTEP", "LAY", "ROW", "COL"),
                np.concatenate([f[k][:, None], 2 * f[k][:, None]], axis=1),
                {"units": "ug m-3"},
            )
            for k, c in enumerate(COMPONENTS)
        },
        attrs=attrs,
    )
    if grid.ncols != GRID.ncols:
        ds = xr.Dataset({c: ds[c].isel(COL=slice(0, grid.ncols)) for c in COMPONENTS}, attrs=ds.attrs)
    write_ioapi(ds, path, dtype=None)


def test_collect_runs_lazy_with_missing_truncated_and_mismatched(tmp_path):
    d = latin_hypercube_design(6, REGIONS, SPECIES, seed=5, include_base=True)  # 7 runs
    manifest = write_manifest(tmp_path / "manifest.json", d)
    out = tmp_path / "out"
    for i in range(7):
        if i == 2:
            continue  # never ran
        (out / f"run{i:04d}").mkdir(parents=True)
        p = out / f"run{i:04d}" / "ACONC.nc"
        if i == 5:
            _write_run(p, d.values[i], grid=GridDefinition(**{**GRID.__dict__, "ncols": 7}))
        elif i == 6:  # same shape, shifted by one cell: only caught when the grid is given
            _write_run(p, d.values[i], grid=GridDefinition(**{**GRID.__dict__, "xorig": GRID.xorig + 50e3}))
        else:
            _write_run(p, d.values[i])
        if i == 4:  # crashed while writing
            os.truncate(p, p.stat().st_size // 2)
    rng = np.random.default_rng(9)
    masks = xr.DataArray(
        rng.random((3, GRID.nrows, GRID.ncols)),
        dims=("region", "ROW", "COL"),
        coords={"region": ["r1", "r2", "r3"]},
    )
    pop = rng.gamma(0.5, 1e4, GRID.shape)
    with pytest.warns(UserWarning, match="4 of 7 runs unusable"):
        res = collect_runs(
            manifest, str(out / "{run_id}" / "ACONC.nc"), receptor_masks=masks, weights=pop, grid=GRID
        )
    assert isinstance(res["pm25"].data, da.Array)  # nothing computed yet
    assert res.attrs["missing_runs"] == ["run0002"]
    assert [f.split(":")[0] for f in res.attrs["failed_runs"]] == ["run0004", "run0005", "run0006"]
    assert "truncated" in res.attrs["failed_runs"][0] and "grid does not match" in res.attrs["failed_runs"][1]
    assert "XORIG" in res.attrs["failed_runs"][2]
    good = [0, 1, 3]
    np.testing.assert_array_equal(res["run"].values, good)
    np.testing.assert_array_equal(res["scale"].values, d.values[good])
    assert res["pm25"].dims == ("run", "receptor", "component") and list(res.component.values) == list(
        COMPONENTS
    )
    vals = res["pm25"].values
    for j, i in enumerate(good):
        f = _fields(d.values[i]).mean(axis=1)  # time mean of the surface layer, in float64
        for r in range(3):
            w = masks.values[r] * pop
            np.testing.assert_allclose(vals[j, r], (f * w).sum(axis=(1, 2)) / w.sum(), rtol=1e-12)
    with pytest.raises(CTMFileError, match="run0002"):
        collect_runs(manifest, str(out / "{run_id}" / "ACONC.nc"), receptor_masks=masks, on_missing="raise")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        quiet = collect_runs(
            d,
            str(out / "{run_id}" / "ACONC.nc"),
            receptor_masks=masks,
            on_missing="ignore",
            components=["SO4"],
        )
    assert quiet.sizes["component"] == 1 and quiet.attrs["missing_runs"] == ["run0002"]
    np.testing.assert_array_equal(quiet["run"].values, [0, 1, 3, 6])  # no grid given: run 6 passes


def test_collect_runs_argument_errors(tmp_path):
    d = latin_hypercube_design(2, REGIONS, SPECIES)
    masks = xr.DataArray(np.ones((1, GRID.nrows, GRID.ncols)), dims=("region", "ROW", "COL"))
    with pytest.raises(ValueError, match=r"\{run\}"):
        collect_runs(d, str(tmp_path / "ACONC.nc"), receptor_masks=masks)
    with pytest.raises(ValueError, match="one per run"):
        collect_runs(d, [tmp_path / "a.nc"], receptor_masks=masks)
    with pytest.raises(CTMFileError, match="no run could be read"):
        collect_runs(d, [None, None], receptor_masks=masks, on_missing="ignore")
    # a receptor of zero total mask x weight has no mean: refused before any run is read
    two = xr.DataArray(np.stack([np.ones(GRID.shape), np.zeros(GRID.shape)]), dims=("region", "ROW", "COL"),
                       coords={"region": ["r1", "r2"]})  # fmt: skip
    with pytest.raises(ValueError, match=r"receptors \['r2'\] have zero total mask weight"):
        collect_runs(d, str(tmp_path / "{run_id}.nc"), receptor_masks=two)
    pop = np.ones(GRID.shape)
    pop[:, :3] = 0.0  # nobody lives in r2, the three western columns
    west = np.broadcast_to(np.arange(GRID.ncols) < 3, GRID.shape).astype(float)
    half = two.copy(data=np.stack([np.ones(GRID.shape), west]))
    with pytest.raises(ValueError, match=r"receptors \['r2'\] have zero total mask weight"):
        collect_runs(d, str(tmp_path / "{run_id}.nc"), receptor_masks=half, weights=pop)
