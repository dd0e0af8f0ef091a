"""Labelled flow matrices: the largest flows (`diffmrio.supply_chain.top_flows`) and aggregation by region/sector
maps (`diffmrio.tables.aggregate_flows`), against explicit loops in numpy, on the flows of a random table."""

import numpy as np
import pytest
import xarray as xr
from _systems import make_mrio

import diffmrio
from diffmrio.supply_chain import top_flows
from diffmrio.tables import aggregate_flows

R, N = 3, 4


@pytest.fixture(scope="module")
def phi():
    m = make_mrio(R=R, N=N, K=2, p=2, seed=7)
    return diffmrio.sector_flows(m, "q1").assign_attrs(units="kt")


def _pairs(phi, include_self):
    """(flow, supplier (region, sector), buyer (region, sector)) of every eligible pair, by explicit loops."""
    out = []
    for a in range(R * N):
        for b in range(R * N):
            if a == b and not include_self:
                continue
            ra, sa, rb, sb = a // N, a % N, b // N, b % N
            out.append((float(phi.values[ra, sa, rb, sb]), a * R * N + b,
                        (str(phi.region.values[ra]), str(phi.sector.values[sa])),
                        (str(phi.region.values[rb]), str(phi.sector.values[sb]))))  # fmt: skip
    return sorted(out, key=lambda t: (-t[0], t[1]))  # largest first; ties in the matrix's order


@pytest.mark.parametrize("include_self", [False, True])
def test_top_flows_against_a_loop(phi, include_self):
    k = 7
    top = top_flows(phi.transpose("to_sector", "region", "to_region", "sector"), k, include_self=include_self)
    want = _pairs(phi, include_self)[:k]
    np.testing.assert_array_equal(top["rank"].values, np.arange(1, k + 1))
    np.testing.assert_allclose(top["flow"].values, [w[0] for w in want], rtol=1e-15)
    np.testing.assert_allclose(top["share"].values, [w[0] / phi.values.sum() for w in want], rtol=1e-13)
    got = list(zip(zip(top.region.values, top.sector.values), zip(top.to_region.values, top.to_sector.values)))
    assert got == [(w[2], w[3]) for w in want]
    assert top["flow"].attrs["units"] == "kt" and top["share"].attrs["units"] == "1"
    if not include_self:
        assert all(s != b for s, b in got)


def test_top_flows_region_matrix_and_bad_input(phi):
    E = phi.sum(("sector", "to_sector"))  # (region, to_region)
    top = top_flows(E, 2)
    off = E.values.copy()
    np.fill_diagonal(off, -np.inf)
    i, j = np.unravel_index(np.argmax(off), off.shape)
    assert (top.region.values[0], top.to_region.values[0]) == (E.region.values[i], E.to_region.values[j])
    with pytest.raises(ValueError, match=r"k=7; give 1 to 6"):
        top_flows(E, 7)
    with pytest.raises(ValueError, match="supplier/buyer pairs"):
        top_flows(E.rename(to_region="buyer"), 2)
    with pytest.raises(ValueError, match="labelled xarray.DataArray"):
        top_flows(E.values, 2)


def test_aggregate_flows_against_a_loop(phi):
    region_map = {str(phi.region.values[2]): str(phi.region.values[0])}  # merge the last region into the first
    groups = ["g1", "g0", "g1", "g0"]  # sectors 0, 2 -> g1; 1, 3 -> g0 (first appearance orders the labels)
    agg = aggregate_flows(phi.transpose("to_region", "to_sector", "region", "sector"), region_map, groups)
    assert agg.dims == ("region", "sector", "to_region", "to_sector")
    new_r = [str(phi.region.values[0]), str(phi.region.values[1])]
    assert list(agg.region.values) == new_r and list(agg.to_sector.values) == ["g1", "g0"]
    rmap = [0, 1, 0]
    want = np.zeros((2, 2, 2, 2))
    for r in range(R):
        for s in range(N):
            for t in range(R):
                for u in range(N):
                    want[rmap[r], ["g1", "g0"].index(groups[s]), rmap[t], ["g1", "g0"].index(groups[u])] += (
                        phi.values[r, s, t, u])
    np.testing.assert_allclose(agg.values, want, rtol=1e-13)
    assert float(agg.sum()) == pytest.approx(float(phi.sum()), rel=1e-13)
    assert agg.attrs["units"] == "kt"
    same = aggregate_flows(phi)  # no maps: unchanged
    xr.testing.assert_allclose(same, phi.transpose("region", "sector", "to_region", "to_sector"))
    with pytest.raises(ValueError, match="must be an xarray.DataArray with dims"):
        aggregate_flows(phi.sum("to_sector"))
    with pytest.raises(ValueError, match="names labels"):
        aggregate_flows(phi, sector_map={"nope": "x"})
