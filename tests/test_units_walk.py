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
