"""`diffmrio chain CONFIG.toml` end to end on the quick demo world: the configuration of docs/cli.md run
verbatim on files written from the demo (table as netCDF, saved emulator, CTM base case, health CSVs), its
numbers against the Python API on a chain built in memory (no file read), identities between its outputs, and
the refusals of a bad configuration."""

import re
from pathlib import Path

import jax
import numpy as np
import pytest
import xarray as xr
from _chain_study import reference_chain, write_study

from diffmrio._cli.chain import METHODS, ChainConfigError, read_config, run_config
from diffmrio.cli import main

ROOT = Path(__file__).resolve().parents[1]


def doc_config() -> str:
    text = (ROOT / "docs" / "cli.md").read_text()
    return re.search(r"```toml\n(.*?)```", text, re.S).group(1)


@pytest.fixture(scope="module")
def files(quick_demo_chain, tmp_path_factory):
    folder = tmp_path_factory.mktemp("chain_study")
    paths = write_study(folder, quick_demo_chain)
    (folder / "study.toml").write_text(doc_config())
    return folder, paths


@pytest.fixture(scope="module")
def study(files):
    """The command run once (sensitivity, three attributions, Monte Carlo: ~3 min of compiling on a loaded
    2-core box, so the tests that read its output are marked slow)."""
    folder, paths = files
    assert main(["chain", str(folder / "study.toml"), "-q"]) == 0
    with xr.open_dataset(folder / "study.nc") as ds:
        return folder, paths, ds.load(), (folder / "study.md").read_text()


@pytest.mark.slow
def test_outputs_match_the_python_api(study, quick_demo_chain):
    from diffmrio.chain import UncertaintySpec, attribute, monte_carlo, sensitivity

    folder, _, ds, _ = study
    cfg = read_config(folder / "study.toml")
    a = cfg["analysis"]
    ref = reference_chain(quick_demo_chain)
    inp = ref.base_inputs()
    out = ref(inp)
    hr = list(ref.health.inputs.regions)  # labels, not positions: health regions are sorted, table regions not
    assert hr != list(ref.mrio.regions)
    np.testing.assert_allclose(ds["deaths"].sel(receptor=hr).transpose("receptor", "cause").values,
                               np.asarray(out.deaths).sum(axis=1).T, rtol=1e-10)
    np.testing.assert_allclose(ds["pwpm"].sel(receptor=hr).values, np.asarray(out.pwpm), rtol=1e-10)
    s = sensitivity(ref, inp)
    assert ds["sensitivity"].dims == s.dims
    np.testing.assert_allclose(ds["sensitivity"].values, s.values, rtol=1e-10, atol=1e-14 * float(np.abs(s).max()))
    for m in METHODS:
        at = attribute(ref, inp, by="consumer", method=m, n_nodes=a["n_nodes"], n_intervals=a["n_intervals"])
        got = ds["attribution"].sel(attribution_method=m).transpose("group", "receptor")
        assert list(got["group"].values) == list(at["group"].values)
        got = got.sel(group=at["group"].values, receptor=at["receptor"].values)
        np.testing.assert_allclose(got.values, at.values, rtol=1e-9, atol=1e-12 * float(np.abs(at).max()))
    spec = UncertaintySpec.default(ref, within_envelope=True)
    mc = monte_carlo(ref, spec, a["n_draws"], key=jax.random.key(a["seed"]), progress=False)
    td = mc["total_deaths"].values
    np.testing.assert_allclose(float(ds["mc_total_deaths_mean"]), td.mean(), rtol=1e-10)
    np.testing.assert_allclose(ds["mc_total_deaths_interval"].values, np.quantile(td, [0.025, 0.975]), rtol=1e-10)
    np.testing.assert_allclose(ds["mc_attribution_mean"].values, mc["attribution"].values.mean(axis=0), rtol=1e-10)
    by_region = mc["deaths"].sum("cause").mean("draw")  # health regions on mc's `region` dim
    np.testing.assert_allclose(ds["mc_deaths_by_region_mean"].sel(receptor=list(by_region["region"].values)).values,
                               by_region.values, rtol=1e-10)
    assert ds.attrs["fraction_outside_envelope"] == mc.attrs["fraction_outside_envelope"] == 0.0


@pytest.mark.slow
def test_identities_between_outputs(study, quick_demo_chain):
    _, _, ds, _ = study
    Y = np.asarray(quick_demo_chain.chain.mrio.Y).reshape(ds["sensitivity"].shape)
    g = ds["sensitivity"].values
    # first-order attribution to consumers = sum over each consumer's columns of gradient x final demand
    fo = ds["attribution"].sel(attribution_method="first_order").sum("receptor")
    np.testing.assert_allclose(fo.values, (g * Y).sum(axis=(0, 1, 3)), rtol=1e-8)
    # the path integral adds up to J(Y) - J(0); with J(0) >= 0 it is at most the base-case deaths
    path_total = float(ds["attribution"].sel(attribution_method="path").sum())
    assert 0 < path_total <= float(ds["deaths"].sum()) + 1e-9
    # sensitivity by product: today's purchase-weighted mean of the gradient
    w = Y.sum(axis=(2, 3))
    bought = w != 0
    assert (~bought).any()  # products without final demand (the power sector): the mean over buyers instead
    np.testing.assert_allclose(ds["sensitivity_by_product"].values[bought], (g * Y).sum(axis=(2, 3))[bought]
                               / w[bought], rtol=1e-12)
    np.testing.assert_allclose(ds["sensitivity_by_product"].values[~bought], g.mean(axis=(2, 3))[~bought], rtol=1e-12)
    lo, hi = ds["mc_total_deaths_interval"].values
    assert lo < float(ds["mc_total_deaths_mean"]) < hi


@pytest.mark.slow
def test_every_variable_has_units_and_the_report_ranks(study):
    _, _, ds, md = study
    missing = [v for v in ds.variables if "units" not in ds[v].attrs and ds[v].dtype.kind in "iuf"]
    assert not missing, missing
    assert ds["sensitivity"].attrs["units"] == "deaths yr-1 per billion CNY"
    s = ds["sensitivity_by_product"].stack(k=("region", "sector"))
    top = s["k"].values[int(np.argmax(s.values))]
    assert f"| 1 | {top[0]} | {top[1]} |" in md
    for g in ds["group"].values:
        assert f"| {g} |" in md


@pytest.mark.slow
def test_existing_outputs_are_refused_and_left_alone(study):
    folder, _, _, _ = study
    before = (folder / "study.md").read_bytes()
    with pytest.raises(FileExistsError, match="study.nc exists"):
        run_config(folder / "study.toml")
    assert main(["chain", str(folder / "study.toml"), "-q"]) == 2
    assert (folder / "study.md").read_bytes() == before


def _config(folder: Path, edit) -> Path:
    text = edit(doc_config())
    p = folder / "bad.toml"
    p.write_text(text.replace('"study.nc"', '"bad.nc"').replace('"study.md"', '"bad.md"'))
    return p


@pytest.mark.parametrize(
    "edit, match",
    [
        (lambda t: t.replace("seed = 0", "seeed = 0"), r"unknown key `seeed` in \[analysis\] \(did you mean 'seed'\?\)"),
        (lambda t: t + "\n[plots]\nx = 1\n", r"unknown table \[plots\]"),
        (lambda t: t.replace('file = "emulator.eqx"', 'file = "nowhere.eqx"'),
         r"\[emulator\] file: .*nowhere.eqx does not exist"),
        (lambda t: t.replace('units = "kt"', 'units = "t"'), r"\[satellite\] units: stressor 'SO2' is in 'kt'"),
        (lambda t: t.replace("VOC = { VOC = 1.0 }, ", ""),
         r"\[satellite\] species: the emulator .* takes the species \['SO2', 'NOx', 'NH3', 'VOC'"),
        (lambda t: t.replace('{ "PM2.5" = 1.0', '{ PM25 = 1.0'), r"\[satellite\] species: stressor\(s\) \['PM25'\]"),
        (lambda t: t.replace('regions = "regions.csv"', 'regions = "regions_renamed.csv"'),
         r"\[health\] regions: region label\(s\) \['Atlantis'\] .*`match_table_regions = false`"),
        (lambda t: t.replace('base = "ctm_base.nc"', ""), r"\[ctm\] needs exactly one of `base`"),
    ],
    ids=["unknown-key", "unknown-table", "missing-file", "units", "species", "stressor", "health-regions", "ctm"],
)
def test_bad_configurations_name_the_key_and_the_fix(files, edit, match):
    folder, paths = files
    text = paths["regions"].read_text()
    (folder / "regions_renamed.csv").write_text(text.replace("Steppe", "Atlantis"))
    cfg = _config(folder, edit)
    with pytest.raises((ChainConfigError, FileNotFoundError), match=match):
        run_config(cfg)
    assert not (folder / "bad.nc").exists() and not (folder / "bad.md").exists()
