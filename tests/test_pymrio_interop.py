"""pymrio interop that keeps what pymrio has: extensions apart with their units, the population, and
pymrio's per-capita accounts (D_*_cap), checked against pymrio 0.7 on its own test system."""

import numpy as np
import pandas as pd
import pytest
from _systems import labels, random_system, to_pymrio

import diffmrio
from diffmrio import MRIO, MRIOError, MRIOWarning, select_extension

pymrio = pytest.importorskip("pymrio")

# The host backend (numpy/LAPACK, no compilation) keeps these tests fast; both backends are compared with pymrio in
# test_per_capita_accounts_equal_pymrio, and with each other in test_accounts_pymrio.py.

CAP_KEYS = ["D_cba_cap", "D_pba_cap", "D_imp_cap", "D_exp_cap"]


def _flat(row) -> str:
    return "/".join(row) if isinstance(row, tuple) else str(row)


@pytest.fixture(scope="module")
def test_io():
    io = pymrio.load_test()
    io.calc_all()
    return io


@pytest.fixture(scope="module")
def test_mrio():
    return MRIO.from_pymrio(pymrio.load_test())


def test_extensions_and_units_preserved(test_io, test_mrio):
    m = test_mrio
    assert set(m.extension_names) == {"emissions", "factor_inputs"} == set(test_io.get_extensions())
    acc = diffmrio.accounts(m, backend="host")
    for ename in test_io.get_extensions():
        ext = getattr(test_io, ename)
        rows = [_flat(r) for r in ext.F.index]
        units = [str(ext.unit.loc[r].iloc[0]) for r in ext.F.index]
        assert m.extension_stressors(ename) == tuple(rows)
        assert [m.units[m.stressor_index(s)] for s in rows] == units
        sub = select_extension(acc, ename)
        assert list(sub.stressor.values) == rows and list(sub.unit.values) == units
        assert set(sub.extension.values) == {ename} and sub.attrs["extension"] == ename
        # the extension's accounts are pymrio's io.<extension>.<account>
        for key in ("S", "M", "D_cba", "D_imp", "D_cba_reg", "D_exp_reg"):
            want = getattr(ext, key).to_numpy()
            got = sub[key].values.reshape(len(rows), -1)
            np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-14 * np.abs(want).max(), err_msg=key)
    assert list(acc.extension.values) == list(m.extensions)
    # the MRIO's own Dataset carries the same coordinates; existing code on the stressor axis is unchanged
    ds = m.to_xarray()
    assert list(ds.extension.values) == list(m.extensions) and list(ds.unit.values) == list(m.units)
    assert acc.D_cba_reg.sel(stressor="emission_type1/air").dims == ("region",)
    with pytest.raises(KeyError, match="available"):
        select_extension(acc, "emission")
    with pytest.raises(KeyError, match="available"):
        m.extension_stressors("emission")


@pytest.mark.parametrize("backend", ["jax", "host"])
def test_per_capita_accounts_equal_pymrio(test_io, test_mrio, backend):
    acc = diffmrio.accounts(test_mrio, backend=backend)
    regions = list(test_mrio.regions)
    np.testing.assert_array_equal(acc.population.values, test_io.population.loc["Population", regions].to_numpy())
    assert acc.population.attrs["units"] == "person"
    for ename in test_io.get_extensions():
        ext = getattr(test_io, ename)
        sub = select_extension(acc, ename)
        unit = str(ext.unit.iloc[0, 0])
        for key in CAP_KEYS:
            ref = getattr(ext, key)
            assert ref is not None, f"pymrio computed no {ename}.{key}"
            want = ref.loc[:, regions].to_numpy()
            got = sub[key].transpose("stressor", "region").values
            np.testing.assert_allclose(got, want, rtol=1e-10, atol=0, err_msg=f"{ename}.{key}")
            assert sub[key].attrs["units"] == f"{unit} / person"
    # the full Dataset mixes kg and Mill USD: the attribute points at the unit coordinate
    assert acc.D_cba_cap.attrs["units"] == "<unit> / person" and "`unit` coordinate" in acc.D_cba_cap.attrs["description"]
    # pymrio's identity holds per capita too
    np.testing.assert_allclose(acc.D_cba_cap, acc.D_pba_cap + acc.D_imp_cap - acc.D_exp_cap, rtol=1e-12)


def test_population_unit_and_category_subset(test_io):
    m = MRIO.from_pymrio(pymrio.load_test(), population_unit="1000 persons")
    acc = diffmrio.accounts(m, categories=[m.categories[0]], backend="host")
    em = select_extension(acc, "emissions")
    assert em.D_imp_cap.attrs["units"] == "kg / 1000 persons" and em.population.attrs["units"] == "1000 persons"
    # per capita of the restricted demand: D_*_reg of the subset divided by the population (independent numpy)
    pop = test_io.population.loc["Population", list(m.regions)].to_numpy()
    np.testing.assert_allclose(em.D_cba_cap.values, em.D_cba_reg.values / pop[None, :], rtol=1e-15)


def test_label_round_trips(test_io, test_mrio, tmp_path):
    m = test_mrio
    # MRIO -> pymrio -> MRIO keeps labels, extensions, units, population and values
    io2 = m.to_pymrio()
    assert sorted(io2.get_extensions()) == sorted(test_io.get_extensions())
    assert list(io2.emissions.F.index) == ["emission_type1/air", "emission_type2/water"]
    back = MRIO.from_pymrio(io2)
    for field in ("stressors", "extensions", "units", "regions", "sectors", "categories"):
        a, b = getattr(back, field), getattr(m, field)
        if field in ("stressors", "extensions", "units"):  # pymrio may list extensions in another order
            a, b = sorted(zip(back.stressors, a)), sorted(zip(m.stressors, b))
        assert a == b, field
    np.testing.assert_array_equal(back.population, m.population)
    for s in m.stressors:
        np.testing.assert_array_equal(back.F[back.stressor_index(s)], m.F[m.stressor_index(s)])
    # the pymrio system we write gives pymrio's own per-capita accounts
    io2.calc_all()
    np.testing.assert_allclose(io2.emissions.D_cba_cap.to_numpy(), test_io.emissions.D_cba_cap.to_numpy(), rtol=1e-10)
    # netCDF round trip through to_xarray / from_xarray
    path = tmp_path / "table.nc"
    m.to_xarray().to_netcdf(path)
    import xarray as xr

    with xr.open_dataset(path) as ds:
        again = MRIO.from_xarray(ds.load())
    assert again.extensions == m.extensions and again.units == m.units and again.stressors == m.stressors
    np.testing.assert_array_equal(again.population, m.population)
    assert again.population_unit == m.population_unit
    # dataframes carry pymrio's population layout and the extension of each stressor
    d = m.to_dataframes()
    assert list(d["population"].columns) == list(m.regions) and list(d["extension"]["extension"]) == list(m.extensions)
    assert MRIO.from_dataframes(d["Z"], d["Y"], d["F"], d["F_Y"], units=m.units, extensions=m.extensions,
                                population=d["population"]).population.tolist() == list(m.population)


def test_shared_labels_are_prefixed_and_restored():
    R, N, K, p = 3, 4, 2, 2
    Z, Y, F, F_Y = random_system(R, N, p, K, seed=3)
    io = to_pymrio(Z, Y, F, F_Y, R, N, K, p)  # extension "ext" with rows q0, q1 in kg
    io.other = pymrio.Extension(name="other", F=io.ext.F * 2.0, F_Y=io.ext.F_Y * 2.0,
                                unit=pd.DataFrame({"unit": ["t", "t"]}, index=io.ext.F.index))
    io.population = pd.DataFrame([[3.0, 1.0, 2.0]], index=["Population"], columns=["r2", "r0", "r1"])
    m = MRIO.from_pymrio(io)
    assert m.stressors == ("ext:q0", "ext:q1", "other:q0", "other:q1")
    assert m.extensions == ("ext", "ext", "other", "other") and m.units == ("kg", "kg", "t", "t")
    np.testing.assert_array_equal(m.population, [1.0, 2.0, 3.0])  # matched to the regions by label
    acc = diffmrio.accounts(m, backend="host")
    other = select_extension(acc, "other")
    assert list(other.stressor.values) == ["q0", "q1"] and other.D_pba_cap.attrs["units"] == "t / person"
    np.testing.assert_allclose(other.D_cba_cap.values, 2.0 * select_extension(acc, "ext").D_cba_cap.values, rtol=1e-12)
    io.calc_all()
    np.testing.assert_allclose(other.D_exp_cap.values, io.other.D_exp_cap.loc[:, list(m.regions)].to_numpy(), rtol=1e-10)
    io2 = m.to_pymrio()
    assert list(io2.other.F.index) == ["q0", "q1"] and list(io2.other.unit["unit"]) == ["t", "t"]
    # one extension only
    only = MRIO.from_pymrio(io, extensions=["other"])
    assert only.stressors == ("q0", "q1") and only.extension_names == ("other",)
    with pytest.raises(MRIOError, match="not in the pymrio system"):
        MRIO.from_pymrio(io, extensions=["others"])


def test_tables_without_population_or_extensions_still_work():
    io = pymrio.load_test()
    io.population = None
    m = MRIO.from_pymrio(io)
    assert m.population is None and m.extension_names
    acc = diffmrio.accounts(m, backend="host")
    assert not any(k in acc for k in CAP_KEYS + ["population"])
    assert "population" not in m.to_xarray() and "population" not in m.to_dataframes()
    assert m.to_pymrio().population is None
    # a table from arrays has neither extensions nor population; select_extension says why it cannot work
    R, N, K, p = 2, 3, 1, 2
    Z, Y, F, F_Y = random_system(R, N, p, K, seed=0)
    plain = MRIO.from_arrays(Z, Y, F, F_Y, **labels(R, N, K, p), units=["kg"] * p)
    assert plain.extensions == () and plain.population is None
    acc = diffmrio.accounts(plain, backend="host")
    assert "extension" not in acc.coords and "D_cba_cap" not in acc
    with pytest.raises(KeyError, match="no `extension` coordinate"):
        select_extension(acc, "satellite")
    assert list(plain.to_pymrio().get_extensions()) == ["satellite"]


def test_bad_population_is_refused():
    R, N, K, p = 3, 2, 1, 1
    Z, Y, F, F_Y = random_system(R, N, p, K, seed=1)
    kw = dict(**labels(R, N, K, p), units=["kg"])
    with pytest.raises(MRIOError, match="one value per region"):
        MRIO.from_arrays(Z, Y, F, F_Y, population=[1.0, 2.0], **kw)
    with pytest.raises(MRIOError, match=r"'r1', -5\.0"):
        MRIO.from_arrays(Z, Y, F, F_Y, population=[1.0, -5.0, 2.0], **kw)
    with pytest.raises(MRIOError, match="finite"):
        MRIO.from_arrays(Z, Y, F, F_Y, population=[1.0, np.nan, 2.0], **kw)
    with pytest.raises(MRIOError, match="one extension name per stressor"):
        MRIO.from_arrays(Z, Y, F, F_Y, extensions=["a", "b"], **kw)
    io = to_pymrio(Z, Y, F, F_Y, R, N, K, p)
    io.population = pd.DataFrame([[1.0, 2.0, 3.0]], index=["Population"], columns=["r0", "r1", "rX"])
    with pytest.raises(MRIOError, match=r"missing \['r2'\], unknown \['rX'\]"):
        MRIO.from_pymrio(io)
    io.population = pd.DataFrame([[1.0, 2.0, 3.0]] * 2, columns=["r0", "r1", "r2"])
    with pytest.raises(MRIOError, match="has 2 rows"):
        MRIO.from_pymrio(io)
    # zero population: the MRIO is fine, its per-capita accounts are NaN there, with a warning naming it
    m = MRIO.from_arrays(Z, Y, F, F_Y, population=[1.0, 0.0, 2.0], **kw)
    with pytest.warns(MRIOWarning, match=r"population is 0 for \['r1'\]"):
        acc = diffmrio.accounts(m, backend="host")
    assert np.isnan(acc.D_cba_cap.sel(region="r1")).all() and np.isfinite(acc.D_cba_cap.sel(region="r0")).all()


def test_aggregation_sums_population_and_keeps_extensions(test_mrio):
    m = test_mrio
    merged = diffmrio.tables.aggregate_mrio(m, region_map={"reg1": "reg12", "reg2": "reg12"})
    assert merged.extensions == m.extensions and merged.units == m.units
    pop = dict(zip(m.regions, np.asarray(m.population)))
    want = [pop["reg1"] + pop["reg2"]] + [pop[r] for r in m.regions[2:]]
    np.testing.assert_allclose(merged.population, want, rtol=1e-15)
    acc, fine = diffmrio.accounts(merged, backend="host"), diffmrio.accounts(m, backend="host")
    np.testing.assert_allclose(acc.D_pba_cap.sel(region="reg12"),
                               fine.D_pba_reg.sel(region=["reg1", "reg2"]).sum("region") / want[0], rtol=1e-10)
