"""A CMAQ run folder built on the header of a real CMAQ CONC file (openmethane, ../shared/fixtures/cmaq): 25 hourly
records, 32 layers, a Lambert conformal 10 x 10 grid, a netCDF-4 file written by NCO. The aerosol species a CONC
file of a PM2.5 run carries are added to that header; `read_run_folder` must read the folder with the `cmaq-conc`
vocabulary to the same numbers as an independent numpy reading, and refuse a truncated run naming it."""

from __future__ import annotations

import shutil

import numpy as np
import pandas as pd
import pytest
import xarray as xr

import ctm_interface as ci

pytestmark = pytest.mark.shared

AEROSOLS = ("ASO4I", "ASO4J", "ANO3I", "ANO3J", "ANH4I", "ANH4J", "AECI", "AECJ", "AOMIJ", "AOTHRI", "AOTHRJ")
REGIONS = ("North", "South", "Coast")
SPECIES = {"SO2": "SO2", "NOx": "NO", "NH3": "NH3", "BC": "PEC", "OC": "POC"}  # design species -> CMAQ emission names
RUN_IDS = ("jan_a1", "jan_a2", "jan_b7", "feb_c3", "feb_x9")  # labels, never positions
GRID_KEYS = ("GDTYP", "P_ALP", "P_BET", "P_GAM", "XCENT", "YCENT", "XORIG", "YORIG", "XCELL", "YCELL", "NCOLS",
             "NROWS", "NTHIK", "GDNAM", "VGTYP", "VGTOP")


@pytest.fixture(scope="module")
def real_conc(shared_dir):
    path = shared_dir / "fixtures" / "cmaq" / "openmethane" / "conc_template.nc"
    if not path.exists():
        pytest.skip(f"{path} is absent")
    with xr.open_dataset(path, decode_times=False, mask_and_scale=False) as ds:
        return ds.load()


def _with_variables(real: xr.Dataset, fields: dict[str, np.ndarray], units: str, *, n_records: int | None = None):
    """The real file's header (attributes, TFLAG, dims) carrying `fields` instead of CH4, as CMAQ writes them."""
    n_records = real.sizes["TSTEP"] if n_records is None else n_records
    names = list(fields)
    tflag = np.broadcast_to(real["TFLAG"].values[:n_records, :1, :], (n_records, len(names), 2)).copy()
    ds = xr.Dataset({"TFLAG": (("TSTEP", "VAR", "DATE-TIME"), tflag, dict(real["TFLAG"].attrs))})
    for v, a in fields.items():
        ds[v] = (("TSTEP", "LAY", "ROW", "COL"), a[:n_records].astype(np.float32),
                 {"long_name": f"{v:<16}", "units": f"{units:<16}", "var_desc": f"{v:<80}"})
    ds.attrs = dict(real.attrs)
    ds.attrs.update({"NVARS": np.int32(len(names)), "VAR-LIST": "".join(f"{v:<16}" for v in names)})
    if "NLAYS" in ds.attrs and next(iter(fields.values())).shape[1] != int(real.attrs["NLAYS"]):
        nl = next(iter(fields.values())).shape[1]
        ds.attrs.update({"NLAYS": np.int32(nl), "VGLVLS": np.asarray(real.attrs["VGLVLS"])[: nl + 1]})
    return ds


@pytest.fixture(scope="module")
def folder(real_conc, tmp_path_factory):
    rng = np.random.default_rng(7)
    T, L, R, C = (real_conc.sizes[d] for d in ("TSTEP", "LAY", "ROW", "COL"))
    root = tmp_path_factory.mktemp("cmaq_real")
    (root / "runs").mkdir()
    one = lambda a: a[None, None]  # noqa: E731  (a time-independent, one-layer I/O API variable)
    # three overlapping fractional region masks and a population grid on the real grid
    rows, cols = np.meshgrid(np.arange(R), np.arange(C), indexing="ij")
    masks = {"North": (rows >= 5).astype(float), "South": (rows < 5) * (cols < 7) * 1.0,
             "Coast": np.clip((cols - 5) / 4, 0, 1) * (rows < 5)}
    hdr = real_conc.copy()
    hdr.attrs.update({"TSTEP": np.int32(0), "SDATE": np.int32(0), "STIME": np.int32(0)})
    _with_variables(hdr.isel(TSTEP=[0]), {k: one(v) for k, v in masks.items()}, "fraction").to_netcdf(root / "masks.nc")
    pop = rng.uniform(100, 5000, (R, C))
    _with_variables(hdr.isel(TSTEP=[0]), {"POP": one(pop)}, "persons").to_netcdf(root / "pop.nc")
    base = {v: rng.uniform(0.5, 2.0, (R, C)) for v in SPECIES.values()}
    _with_variables(hdr.isel(TSTEP=[0]), {k: one(v) for k, v in base.items()}, "moles/s").to_netcdf(root / "emis.nc")
    # design (long CSV): factors per run x region x species
    design = pd.DataFrame([(r, g, s, rng.uniform(0.2, 2.0), "test" if r.startswith("feb") else "train")
                           for r in RUN_IDS for g in REGIONS for s in SPECIES],
                          columns=["run", "region", "species", "factor", "split"])
    design.to_csv(root / "design.csv", index=False)
    fields = {}
    for i, run in enumerate(RUN_IDS):
        d = design[design.run == run]
        level = float(d.factor.mean())
        f = {}
        for k, v in enumerate(AEROSOLS):
            a = rng.uniform(0.0, 1.0, (T, L, R, C)) * (0.5 + 0.1 * k)
            a[:, 0] *= level * (1 + 0.2 * np.sin(np.arange(T)))[:, None, None]  # hourly surface values
            f[v] = a
        fields[run] = f
        _with_variables(real_conc, f, "ug m-3").to_netcdf(root / "runs" / f"CCTM_CONC_v532_{run}.nc")
    toml = root / "runs.toml"
    toml.write_text(
        '[design]\nfile = "design.csv"\n\n'
        '[outputs]\npattern = "runs/CCTM_CONC_v532_{run}.nc"\nformat = "ioapi"\ncomponents = "cmaq-conc"\n\n'
        '[emissions]\nfile = "emis.nc"\nspecies = { ' + ", ".join(f'{k} = "{v}"' for k, v in SPECIES.items()) + " }\n\n"
        '[regions]\nmasks = "masks.nc"\n\n[population]\nfile = "pop.nc"\nvariable = "POP"\n')
    return root, toml, fields, masks, pop, design


def test_the_fixture_keeps_the_real_header(folder, real_conc):
    root, *_ = folder
    with xr.open_dataset(root / "runs" / "CCTM_CONC_v532_jan_a1.nc", decode_times=False) as ds:
        assert ds.sizes["TSTEP"] == 25 and ds.sizes["LAY"] == 32
        for k in GRID_KEYS:
            assert str(ds.attrs[k]) == str(real_conc.attrs[k]), k


def test_a_truncated_run_is_refused_by_id_and_file(folder, real_conc, tmp_path):
    root, toml, fields, *_ = folder
    copy = tmp_path / "folder"
    shutil.copytree(root, copy)
    short = copy / "runs" / "CCTM_CONC_v532_jan_b7.nc"
    short.unlink()
    _with_variables(real_conc, fields["jan_b7"], "ug m-3", n_records=24).to_netcdf(short)  # a job killed at hour 24
    with pytest.raises(ci.CTMFileError, match=r"(?s)jan_b7.*CCTM_CONC_v532_jan_b7\.nc.*24"):
        ci.read_run_folder(copy / "runs.toml")


def test_cmaq_conc_folder_equals_numpy(folder):
    root, toml, fields, masks, pop, design = folder
    rf = ci.read_run_folder(toml)
    pm = rf.runs["pm25"]
    runs = list(RUN_IDS)
    assert [str(r) for r in pm["run"].values] == runs
    comps = {"SO4": ("ASO4I", "ASO4J"), "NO3": ("ANO3I", "ANO3J"), "NH4": ("ANH4I", "ANH4J"),
             "BC": ("AECI", "AECJ"), "OM": ("AOMIJ",), "other": ("AOTHRI", "AOTHRJ")}
    for run in runs:
        for comp, names in comps.items():
            # float32 on file, then the mean over 25 hours of the surface layer
            field = sum(fields[run][v].astype(np.float32).astype(np.float64)[:, 0].mean(0) for v in names)
            for g, m in masks.items():
                m, pop32 = m.astype(np.float32).astype(np.float64), pop.astype(np.float32).astype(np.float64)
                expect = (m * pop32 * field).sum() / (m * pop32).sum()
                got = float(pm.sel(run=run, receptor=g, component=comp))
                assert got == pytest.approx(expect, rel=1e-10), (run, comp, g)
    scale = rf.runs["scale"]
    row = design[(design.run == "feb_c3") & (design.region == "Coast") & (design.species == "NH3")].factor.item()
    assert float(scale.sel(run="feb_c3", source="Coast", species="NH3")) == pytest.approx(row, rel=1e-12)
    assert set(map(str, rf.split("test")["run"].values)) == {"feb_c3", "feb_x9"}

