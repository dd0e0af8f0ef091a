"""Files of a `diffmrio chain` study on the quick demo world (tests/test_cli_chain.py): the table as netCDF, the
saved emulator, the CTM base case with receptor fractions, and health CSVs in the layout `diffmrio health` reads;
plus the same health inputs built in memory (the independent reference)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

CAUSES = ("IHD", "STROKE", "COPD", "LC", "LRI")
ALL_AGES = tuple(range(0, 100, 5))
ADULT = tuple(range(25, 100, 5))


def grid_coords(shape):
    ny, nx = shape
    return 20.0 + 0.5 * np.arange(ny), 100.0 + 0.5 * np.arange(nx)


def health_tables(domain):
    """(region label per cell, population per cell, age shares [country, age], rates per 100,000
    [country, endpoint, age]) for the demo domain: each cell labelled with its largest region."""
    frac = np.asarray(domain.region_fraction)
    regions = list(domain.regions)
    label = np.where(frac.sum(axis=0) > 0.5, np.asarray(regions, dtype=object)[frac.argmax(axis=0)], "")
    pop = np.asarray(domain.population, dtype=np.float64)
    a = np.asarray(ALL_AGES, dtype=float)
    shares = {}
    for i, r in enumerate(regions):
        s = np.exp(-0.5 * ((a - 35.0 - 2 * i) / 22.0) ** 2)
        shares[r] = s / s.sum()
    rates = {(r, c, age): min((2.0 + k) * 1.55 ** ((age - 25) / 5) * (1 + 0.05 * i), 5000.0)
             for i, r in enumerate(regions) for k, c in enumerate(CAUSES) for age in ADULT}
    return label, pop, shares, rates


def write_study(folder: Path, dc) -> dict[str, Path]:
    """Write the input files of a chain study of the quick demo chain `dc` into `folder`."""
    import surrogate as sg
    from diffmrio._io import write_netcdf_atomic

    chain, domain = dc.chain, dc.world.geography
    folder.mkdir(parents=True, exist_ok=True)
    paths = {k: folder / v for k, v in (("table", "world.nc"), ("emulator", "emulator.eqx"), ("ctm", "ctm_base.nc"),
                                        ("population", "population.csv"), ("regions", "regions.csv"),
                                        ("mortality", "mortality.csv"), ("ages", "ages.csv"))}  # fmt: skip
    write_netcdf_atomic(chain.mrio.to_xarray(), paths["table"])
    sg.save(paths["emulator"], chain.emulator)
    base = np.asarray(chain.downscaler.base_grid)
    lat, lon = grid_coords(base.shape[1:])
    comps = list(chain.emulator.labels.output_coords[0])
    ds = xr.Dataset(
        {"conc": (("component", "lat", "lon"), base, {"units": "ug m-3"}),
         "receptor_fraction": (("receptor", "lat", "lon"), np.asarray(domain.region_fraction), {"units": "1"})},
        coords={"component": comps, "receptor": list(domain.regions), "lat": lat, "lon": lon},
    )  # fmt: skip
    write_netcdf_atomic(ds, paths["ctm"])
    label, pop, shares, rates = health_tables(domain)
    yy, xx = np.meshgrid(lat, lon, indexing="ij")
    pd.DataFrame({"x": xx.ravel(), "y": yy.ravel(), "base2015": pop.ravel()}).to_csv(paths["population"], index=False)
    keep = label.ravel() != ""
    pd.DataFrame({"x": xx.ravel()[keep], "y": yy.ravel()[keep], "Country": label.ravel()[keep]}).to_csv(
        paths["regions"], index=False)
    pd.DataFrame([(r, c, a, v) for (r, c, a), v in rates.items()],
                 columns=["Country", "endpoint", "agegroup", "base2015"]).to_csv(paths["mortality"], index=False)
    pd.DataFrame([(r, a, s) for r, sh in shares.items() for a, s in zip(ALL_AGES, sh)],
                 columns=["Country", "agegroup", "base2015"]).to_csv(paths["ages"], index=False)
    return paths


def reference_chain(dc):
    """The chain the study files describe, built in memory with the Python API (no file is read)."""
    import jax.numpy as jnp

    from diffmrio.chain import Chain, Downscaler, SourceMap
    from diffmrio.health import GEMM, HealthModel, build_health_inputs

    chain, domain = dc.chain, dc.world.geography
    label, pop, shares, rates = health_tables(domain)
    lat, lon = grid_coords(pop.shape)
    regions = list(domain.regions)
    reg = xr.DataArray(label, dims=("lat", "lon"), coords={"lat": lat, "lon": lon})
    popd = xr.DataArray(pop, dims=("lat", "lon"), coords={"lat": lat, "lon": lon})
    age = xr.DataArray(np.array([shares[r] for r in regions]), dims=("country", "age"),
                       coords={"country": regions, "age": list(ALL_AGES)})
    rate = xr.DataArray(np.array([[[rates[(r, c, a)] / 1e5 for a in ADULT] for c in CAUSES] for r in regions]),
                        dims=("country", "endpoint", "age"),
                        coords={"country": regions, "endpoint": list(CAUSES), "age": list(ADULT)})
    inputs = build_health_inputs(reg, popd, age, rate, causes=CAUSES)
    health = HealthModel(inputs, GEMM.burnett2018(inputs.causes, ages=inputs.ages))
    sm = SourceMap.for_mrio(chain.mrio)
    down = Downscaler(chain.downscaler.base_grid, jnp.asarray(domain.region_fraction))
    return Chain(chain.mrio, sm, chain.emulator, chain.emissions_ref, health, downscaler=down)
