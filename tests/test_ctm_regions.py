"""Region masks (points, polygons), aggregation to regions and conservative population regridding,
against independent numpy computations and, with ../shared, the China 0.1 deg tables."""

from __future__ import annotations

import dask.array as da
import numpy as np
import pandas as pd
import pytest
import xarray as xr

from ctm_interface import (
    GridDefinition,
    aggregate_to_regions,
    cell_centres_lonlat,
    region_fractions_from_points,
    region_fractions_from_polygons,
    regrid_population,
)

LCC = GridDefinition(
    2, 25.0, 40.0, 110.0, 110.0, 34.0, -1_200_000.0, -900_000.0, 100_000.0, 100_000.0, 12, 9, "CN100"
)
COARSE = GridDefinition.latlon(100.0, 20.0, 1.0, 1.0, 6, 4)  # 100-106 E, 20-24 N


def _fine_points(dlon=0.1, dlat=0.1, box=(100.0, 106.0, 20.0, 24.0)):
    lon = np.arange(box[0] + dlon / 2, box[1], dlon)
    lat = np.arange(box[2] + dlat / 2, box[3], dlat)
    LON, LAT = np.meshgrid(lon, lat)
    return LON, LAT


def _blocks(a, k=10):
    """Sum of k x k blocks (independent of the code under test)."""
    return a.reshape(a.shape[0] // k, k, a.shape[1] // k, k).sum(axis=(1, 3))


@pytest.mark.parametrize("seed", [0, 1])
def test_point_fractions_match_block_counts(seed):
    rng = np.random.default_rng(seed)
    LON, LAT = _fine_points()
    labels = np.where(LON + 0.7 * (LAT - 20) < 103.3, "West", "East").astype(object)
    labels[rng.random(labels.shape) < 0.1] = None  # points in no region
    w = rng.gamma(0.5, 100.0, LON.shape)
    fr = region_fractions_from_points(
        COARSE, LON.ravel(), LAT.ravel(), labels.ravel(), regions=["West", "East"]
    )
    assert fr.dims == ("region", "ROW", "COL") and list(fr.region.values) == ["West", "East"]
    for k, r in enumerate(["West", "East"]):
        np.testing.assert_allclose(fr.values[k], _blocks((labels == r).astype(float)) / 100.0, rtol=1e-12)
    frw = region_fractions_from_points(
        COARSE, LON.ravel(), LAT.ravel(), labels.ravel(), weights=w.ravel(), regions=["West", "East"]
    )
    for k, r in enumerate(["West", "East"]):
        np.testing.assert_allclose(frw.values[k], _blocks(w * (labels == r)) / _blocks(w), rtol=1e-12)
    assert np.all(fr.sum("region") <= 1 + 1e-12)


def test_point_fractions_lattice_denominator():
    LON, LAT = _fine_points()
    keep = LAT < 22.0 + 0.3 * (LON - 100)  # the table has only "land" points (the rest is "sea")
    fr = region_fractions_from_points(
        COARSE, LON[keep], LAT[keep], np.full(keep.sum(), "Land", object), spacing=(0.1, 0.1)
    )
    np.testing.assert_allclose(fr.values[0], _blocks(keep.astype(float)) / 100.0, rtol=1e-12)
    default = region_fractions_from_points(COARSE, LON[keep], LAT[keep], np.full(keep.sum(), "Land", object))
    assert set(np.unique(default.values)) <= {0.0, 1.0}  # share of table points: every occupied cell = 1


def test_polygon_fractions_exact_for_aligned_rectangle():
    # rectangle 101.25-103.5 E, 20.5-22.0 N: edges on sub-cell boundaries of a 4 x 4 supersampling
    rect = np.array([[101.25, 20.5], [103.5, 20.5], [103.5, 22.0], [101.25, 22.0]])
    fr = region_fractions_from_polygons(COARSE, {"R": rect}, supersample=4)
    xs = np.clip(
        np.minimum(COARSE.xorig + np.arange(1, 7), 103.5) - np.maximum(COARSE.xorig + np.arange(6), 101.25),
        0,
        None,
    )
    ys = np.clip(np.minimum(20 + np.arange(1, 5), 22.0) - np.maximum(20 + np.arange(4), 20.5), 0, None)
    np.testing.assert_allclose(fr.values[0], np.outer(ys, xs), atol=1e-12)
    # a two-part region: the fractions of the parts add up
    other = rect + [3.0, 1.5]  # 104.25-106.5 E (partly outside), 22-23.5 N: disjoint from rect
    multi = region_fractions_from_polygons(
        COARSE, {"A": rect, "B": other, "AB": [rect, other]}, supersample=4
    )
    np.testing.assert_allclose(
        multi.sel(region="AB").values, multi.sel(region="A").values + multi.sel(region="B").values
    )
    assert float(multi.sel(region="B").sum()) == pytest.approx(1.75 * 1.5)


@pytest.mark.parametrize("k", [10, 20])
def test_polygon_fractions_triangle_area(k):
    tri = np.array([[100.3, 20.2], [105.6, 20.9], [101.1, 23.7]])
    fr = region_fractions_from_polygons(COARSE, {"T": tri}, supersample=k)
    x, y = tri[:, 0], tri[:, 1]
    area = 0.5 * abs(x[0] * (y[1] - y[2]) + x[1] * (y[2] - y[0]) + x[2] * (y[0] - y[1]))
    # boundary error <= perimeter x half a sub-cell (in degrees) for 1-degree cells
    perim = sum(np.hypot(*(tri[i] - tri[i - 1])) for i in range(3))
    assert abs(float(fr.sel(region="T").sum()) - area) < perim / (2 * k)


def test_polygon_of_one_projected_cell():
    """A polygon tracing cell (4, 5) of a Lambert grid (edges densified in projected space) covers it."""
    row, col = 4, 5
    s = np.linspace(0, 1, 50)
    x0, y0 = LCC.xorig + col * LCC.xcell, LCC.yorig + row * LCC.ycell
    xs = np.concatenate(
        [x0 + s * LCC.xcell, np.full(50, x0 + LCC.xcell), x0 + (1 - s) * LCC.xcell, np.full(50, x0)]
    )
    ys = np.concatenate(
        [np.full(50, y0), y0 + s * LCC.ycell, np.full(50, y0 + LCC.ycell), y0 + (1 - s) * LCC.ycell]
    )
    lon, lat = LCC.xy_to_lonlat(xs, ys)
    fr = region_fractions_from_polygons(LCC, {"cell": np.column_stack([lon, lat])}, supersample=10).values[0]
    assert fr[row, col] == 1.0
    fr[row, col] = 0.0
    assert fr.max() == 0.0


def test_aggregate_matches_explicit_sums():
    rng = np.random.default_rng(3)
    frac = xr.DataArray(
        rng.random((3, 9, 12)), dims=("region", "ROW", "COL"), coords={"region": ["a", "b", "c"]}
    )
    field = xr.DataArray(
        rng.random((2, 9, 12)) * 40, dims=("component", "ROW", "COL"), coords={"component": ["SO4", "BC"]}
    )
    pop = rng.gamma(0.3, 1e4, (9, 12))
    mean = aggregate_to_regions(field, frac, weights=pop)
    for r in range(3):
        for c in range(2):
            expect = np.sum(frac.values[r] * pop * field.values[c]) / np.sum(frac.values[r] * pop)
            np.testing.assert_allclose(mean.values[c, r], expect, rtol=1e-12)
    total = aggregate_to_regions(field, frac, how="sum")
    np.testing.assert_allclose(total.values, np.einsum("ryx,cyx->cr", frac.values, field.values), rtol=1e-12)
    lazy = aggregate_to_regions(field.chunk({"component": 1}), frac, weights=pop)
    assert isinstance(lazy.data, da.Array)
    np.testing.assert_allclose(lazy.values, mean.values, rtol=1e-12)
    with pytest.raises(ValueError, match="grids do not match"):
        aggregate_to_regions(field.isel(COL=slice(0, 10)), frac)
    with pytest.raises(ValueError, match="how"):
        aggregate_to_regions(field, frac, how="median")
    # plain arrays (issue 11 trial: an AttributeError about `.dims`): a TypeError that says what to pass instead
    with pytest.raises(TypeError, match=r"`field` must be an xarray.DataArray or Dataset.*region_kernel"):
        aggregate_to_regions(field.values, frac)
    with pytest.raises(TypeError, match=r"`fractions` must be an xarray.DataArray with the grid's \(row, col\)"):
        aggregate_to_regions(field, frac.values, weights=pop)


def test_area_weighted_mean_on_latlon_grid():
    g = GridDefinition.latlon(0, -90, 10, 10, 36, 18)
    lon, lat = cell_centres_lonlat(g)
    field = xr.DataArray(np.sin(np.deg2rad(lat)) ** 2, dims=("ROW", "COL"))
    world = xr.DataArray(np.ones((1, 18, 36)), dims=("region", "ROW", "COL"), coords={"region": ["world"]})
    m = aggregate_to_regions(field, world, weights=g.cell_areas())
    # exact area mean of the cell averages of sin^2: int sin^2 phi cos phi dphi / int cos phi dphi = 1/3
    # (cell-centre sampling -> small quadrature error)
    assert abs(float(m.squeeze()) - 1 / 3) < 5e-3


@pytest.mark.parametrize("subdivisions", [1, 5])
def test_regrid_population_aligned_block_sums(subdivisions):
    rng = np.random.default_rng(4)
    LON, LAT = _fine_points()
    pop = rng.gamma(0.4, 500.0, LON.shape)
    da_pop = xr.DataArray(pop, dims=("lat", "lon"), coords={"lat": LAT[:, 0], "lon": LON[0]})
    out = regrid_population(da_pop, COARSE, subdivisions=subdivisions)
    np.testing.assert_allclose(out.values, _blocks(pop), rtol=1e-12)
    assert out.attrs["outside_domain"] == pytest.approx(0.0, abs=1e-6)
    np.testing.assert_allclose(out.values.sum(), pop.sum(), rtol=1e-10)


def test_regrid_population_to_lambert_conserves_totals():
    rng = np.random.default_rng(5)
    lon = np.arange(95.05, 125.0, 0.1)
    lat = np.arange(20.05, 45.0, 0.1)
    LON, LAT = np.meshgrid(lon, lat)
    pop = rng.gamma(0.4, 500.0, LON.shape)
    out = regrid_population(
        lon=LON.ravel(), lat=LAT.ravel(), values=pop.ravel(), spacing=(0.1, 0.1), grid=LCC
    )
    inside_total = out.values.sum()
    assert 0 < out.attrs["outside_domain"] < pop.sum()
    np.testing.assert_allclose(inside_total + out.attrs["outside_domain"], pop.sum(), rtol=1e-10)
    # a domain that contains all the points gets every person
    big = GridDefinition(
        2, 25.0, 40.0, 110.0, 110.0, 34.0, -2_500_000.0, -2_000_000.0, 250_000.0, 250_000.0, 20, 16
    )
    out2 = regrid_population(
        lon=LON.ravel(), lat=LAT.ravel(), values=pop.ravel(), spacing=(0.1, 0.1), grid=big
    )
    np.testing.assert_allclose(out2.values.sum(), pop.sum(), rtol=1e-10)
    assert out2.attrs["outside_domain"] == 0.0


def test_china_population_and_provinces(shared_dir):
    d = shared_dir / "data" / "china_0p1deg"
    pop = pd.read_csv(d / "population_0p1deg.csv.gz")
    info = pd.read_csv(d / "grid_info_0p1deg.csv.gz")
    df = pop.merge(info, on=["x", "y"], how="inner")
    assert len(df) == len(pop) == len(info)
    grid = GridDefinition.latlon(73.0, 18.0, 1.0, 1.0, 63, 36)  # 73-136 E, 18-54 N covers China
    out = regrid_population(lon=df.x, lat=df.y, values=df["2015"], spacing=(0.1, 0.1), grid=grid)
    total = float(df["2015"].sum())
    assert 1.2e9 < total < 1.5e9
    np.testing.assert_allclose(out.values.sum(), total, rtol=1e-10)
    assert out.attrs["outside_domain"] == 0.0
    # population-weighted province fractions: province totals come back through aggregation
    fr = region_fractions_from_points(grid, df.x, df.y, df.Province, weights=df["2015"])
    assert fr.sizes["region"] >= 31
    by_centre = regrid_population(
        lon=df.x, lat=df.y, values=df["2015"], spacing=(0.1, 0.1), grid=grid, subdivisions=1
    )
    prov = aggregate_to_regions(by_centre, fr, how="sum").to_series()
    expect = df.groupby("Province")["2015"].sum().reindex(prov.index)
    np.testing.assert_allclose(prov.values, expect.values, rtol=1e-9)
