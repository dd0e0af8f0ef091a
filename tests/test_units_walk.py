"""Every user-facing Dataset the library returns has a `units` attribute on every data variable (issue 17:
"every variable of a user-facing Dataset has `units`, a test walks them"): the table and its accounts, the
chain's sensitivities, attributions, Monte Carlo draws and summaries, the labelled chain and health outputs,
and the files of the CLI's `accounts` and `health` commands."""

import jax
import numpy as np
import pytest
import xarray as xr
from _chains import small_chain

import diffmrio
from diffmrio._units import missing_units


@pytest.fixture(scope="module")
def chain():
    return small_chain("linear", ny=4, nx=6, causes=("IHD", "LC"))


def _walk(outputs: dict) -> dict[str, list[str]]:
    """`{output: [variables without units]}` over Datasets and DataArrays (nested dicts walked too)."""
    bad = {}
    for name, obj in outputs.items():
        if isinstance(obj, dict):
            bad.update({f"{name}.{k}": v for k, v in _walk(obj).items()})
            continue
        assert isinstance(obj, (xr.Dataset, xr.DataArray)), f"{name} is a {type(obj).__name__}, not labelled"
        if isinstance(obj, xr.Dataset):
            assert obj.data_vars, f"{name} has no variables"
        missing = missing_units(obj)
        if missing:
            bad[name] = missing
    return bad


def test_the_walk_finds_a_variable_without_units():
    ds = xr.Dataset({"a": ("x", [1.0], {"units": "kt"}), "b": ("x", [2.0])})
    assert _walk({"ds": ds, "da": xr.DataArray([1.0], dims="x", name="c"), "nested": {"ds": ds}}) == {
        "ds": ["b"], "da": ["c"], "nested.ds": ["b"]}


def test_table_and_accounts(tmp_path):
    from diffmrio.cli import main

    world = diffmrio.datasets.demo_world(seed=0, geography=False)
    m = world.mrio
    acc = diffmrio.accounts(m, ghosh=True, leontief=True)
    outputs = {"MRIO.to_xarray": m.to_xarray(), "accounts": acc}
    path = tmp_path / "table.nc"
    m.to_xarray().to_netcdf(path)
    assert main(["accounts", str(path), "--out", str(tmp_path / "acc.nc")]) == 0
    outputs["cli accounts"] = xr.load_dataset(tmp_path / "acc.nc")
    assert _walk(outputs) == {}
    assert acc.D_cba.attrs["units"] == acc.D_cba_reg.attrs["units"] == acc.burden.attrs["units"]
    assert acc.A.attrs["units"] == "1"
    # one unit for every stressor: it is written out; several: `<unit>` points at the `unit` coordinate
    units = set(m.units)
    if len(units) == 1:
        assert acc.D_cba.attrs["units"] == units.pop()
    else:
        assert "<unit>" in acc.D_cba.attrs["units"] and "unit" in acc.coords


def test_pymrio_table_with_population():
    pymrio = pytest.importorskip("pymrio")
    io = pymrio.load_test()
    acc = diffmrio.accounts(diffmrio.MRIO.from_pymrio(io))
    assert "D_cba_cap" in acc
    assert _walk({"accounts (pymrio test system)": acc}) == {}


def test_chain_outputs(chain):
    ch = chain
    from diffmrio.chain import attribute, monte_carlo, sensitivity, summarise

    mc = monte_carlo(ch, None, 4, key=jax.random.key(0), by="consumer", progress=False)
    pm = ch.evaluate().pm25
    outputs = {
        "sensitivity": {w: sensitivity(ch, wrt=w) for w in ("final_demand", "intensity", "emissions")},
        "attribute": attribute(ch, by="consumer", method="first_order"),
        "attribute pwpm": attribute(ch, by="sector", method="zero_out", target="pwpm"),
        "monte_carlo": mc,
        "summarise": summarise(mc[["deaths", "total_deaths"]]),
        "Chain.evaluate": ch.evaluate(),
        "HealthModel.evaluate": ch.health.evaluate(pm),
        "attributable_deaths": _deaths_xr(ch, pm),
    }
    assert _walk(outputs) == {}
    assert mc.sel(quantile=0.975).attribution_quantile.attrs["units"] == "deaths yr-1"


def _deaths_xr(ch, pm):
    from diffmrio.health import attributable_deaths

    hi = ch.health.inputs
    pop = xr.DataArray(np.asarray(hi.population), dims=pm.dims, coords=pm.coords)
    af = xr.DataArray(np.asarray(hi.age_fraction), dims="age", coords={"age": list(hi.ages)})
    rate = xr.DataArray(np.asarray(hi.baseline_rate), dims=("cause", "age"),
                        coords={"cause": list(hi.causes), "age": list(hi.ages)})
    return attributable_deaths(pm, pop, af, rate, ch.health.crf)


def test_cli_health_output(tmp_path):
    from test_health_loaders import write_world

    from diffmrio.cli import main

    paths, *_ = write_world(tmp_path)
    C = np.linspace(5, 80, 12).reshape(3, 4)
    xr.Dataset({"PM2.5": (("lat", "lon"), C)},
               coords={"lat": [31.25, 30.75, 30.25], "lon": [100.25, 100.75, 101.25, 101.75]}).to_netcdf(tmp_path / "pm.nc")
    out = tmp_path / "deaths.nc"
    assert main(["health", str(tmp_path / "pm.nc"), "--population", str(paths["population"]), "--regions",
                 str(paths["grid"]), "--mortality", str(paths["mort"]), "--ages", str(paths["ages"]), "--out", str(out),
                 "--causes", "IHD", "STROKE", "LRI"]) == 0
    assert _walk({"cli health": xr.load_dataset(out)}) == {}


@pytest.mark.parametrize("units", [("kt", "Mt"), ("kt", "kt"), ("", "")], ids=["different", "same", "none"])
def test_supply_chain_outputs(units):
    """The supply-chain outputs follow the accounts' convention (issue 11 trial): `units` on every numeric
    variable, `<unit>` plus the `unit` coordinate of `stressor` when the stressors' units differ."""
    import dataclasses

    from diffmrio import supply_chain as sc

    m = dataclasses.replace(diffmrio.datasets.random_mrio(3, 4, 2, 2, seed=1, categories=("household", "export")),
                            units=units)
    first = m.stressors[0]
    outputs = {
        "production_layers": sc.production_layers(m, T=2),
        "layer_flows": sc.layer_flows(m, T=1),
        "export_emissions": sc.export_emissions(m),
        "export_emissions foreign": sc.export_emissions(m, foreign=[m.regions[-1]]),
        "value_chain_decomposition": sc.value_chain_decomposition(m),
        "structural_path_analysis": sc.structural_path_analysis(m, first, k=5),
    }
    assert _walk(outputs) == {}
    want = units[0] if len(set(units)) == 1 and units[0] else "<unit>"
    emission_like = {"production_layers": ("layers", "remainder", "total"), "layer_flows": (None,),
                     "export_emissions": ("eee", "direct", "indirect", "total"),
                     "export_emissions foreign": ("eee", "direct", "indirect", "total"),
                     "value_chain_decomposition": ("parts", "total", "EX", "FE")}
    for name, variables in emission_like.items():
        ds = outputs[name]
        assert list(ds["unit"].values) == list(units), name  # the coordinate, as in `accounts`
        assert ds["unit"].dims == ("stressor",)
        for v in variables:
            da = ds if v is None else ds[v]
            assert da.attrs["units"] == want, (name, v)
            assert ("units_note" in da.attrs) == (want == "<unit>"), (name, v)
            # one stressor selected: the coordinate still says which unit that is
            assert str(da.sel(stressor=first)["unit"].values) == units[0]
        if v is not None:  # the deprecated per-stressor variable stays for one release (docs/changelog.md)
            assert list(ds["units"].values) == list(units)
    assert outputs["export_emissions"].indirect_share.attrs["units"] == "1"
    spa = outputs["structural_path_analysis"]
    assert spa.value.attrs["units"] == (units[0] or "<unit>") and spa.attrs["units"] == units[0]
    assert spa.share.attrs["units"] == spa.depth.attrs["units"] == "1"
    # the numbers are the same whatever the units: all layers of all final demand give S x = F 1
    np.testing.assert_allclose(outputs["production_layers"].total.values, np.asarray(m.F).sum(axis=1), rtol=1e-10)


def test_missing_units_skips_text_but_not_numbers():
    ds = xr.Dataset({"label": ("x", np.array(["a", "b"])), "n": ("x", [1, 2]), "ok": ("x", [1.0, 2.0], {"units": "1"})})
    assert missing_units(ds) == ["n"]
    assert missing_units(ds["label"]) == [] and missing_units(ds["n"].rename("n")) == ["n"]


def test_label_per_stressor_units():
    from diffmrio._labels import label

    c = {"stressor": ["a", "b"], "x": [0, 1, 2]}
    da = label(np.ones((2, 3)), ("stressor", "x"), c, units=["kt", "Mt"])
    assert da.attrs["units"] == "<unit>" and "unit" in da.attrs["units_note"]
    assert list(da["unit"].values) == ["kt", "Mt"]
    assert label(np.ones((2, 3)), ("stressor", "x"), c, units=["kt", "kt"]).attrs == {"units": "kt"}
    with pytest.raises(ValueError, match="one unit per stressor"):
        label(np.ones(3), ("x",), c, units=["kt", "kt"])
