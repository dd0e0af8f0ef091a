"""Labelled outputs (issue 17, item 3): `monte_carlo` attribution by any grouping and of any target against a
plain `Chain` loop over draws with hand-built masks; custom groupings; the labelled edges `Chain.evaluate` and
`HealthModel.evaluate` against the array kernels."""

import equinox as eqx
import jax
import numpy as np
import pandas as pd
import pytest
import xarray as xr
from _chains import small_chain

import diffmrio
from diffmrio.chain import GroupIndex, Target, custom_group_index, monte_carlo, sample_inputs


@pytest.fixture(scope="module")
def chain():
    return small_chain("linear", ny=4, nx=6, causes=("IHD", "LC"))


@eqx.filter_jit
def _run(ch, inp):
    """The plain chain, jitted once per chain (the loops below call it with new inputs of the same shapes)."""
    return ch(inp)


def _row_masks(m, label_of_row, labels):
    """Dense masks `[group, n, fd]` from a label per (region, sector) row, built by hand."""
    out = np.zeros((len(labels), m.n, m.n_regions * m.n_categories))
    for k, (r, s) in enumerate((r, s) for r in m.regions for s in m.sectors):
        lab = label_of_row(r, s)
        if lab is not None:
            out[labels.index(lab), k, :] = 1.0
    return out


def _col_masks(m, label_of_col, labels):
    out = np.zeros((len(labels), m.n, m.n_regions * m.n_categories))
    for k, (r, c) in enumerate((r, c) for r in m.regions for c in m.categories):
        lab = label_of_col(r, c)
        if lab is not None:
            out[labels.index(lab), :, k] = 1.0
    return out


def _check_against_loop(ch, spec, ds, key, n_draws, J, masks, draws=(0, 3), groups=None):
    """`target[draw]` and `attribution[draw, group]` against `J(chain, inputs)` of the plain chain, per draw."""
    keys = jax.random.split(key, n_draws)
    base = ch.base_inputs()
    groups = range(masks.shape[0]) if groups is None else groups
    for i in draws:
        inp = sample_inputs(ch, spec, base, keys[i])
        j0 = J(ch, inp)
        np.testing.assert_allclose(float(ds.target.isel(draw=i)), j0, rtol=1e-9)
        for g in groups:
            without = J(ch, eqx.tree_at(lambda t: t.Y, inp, inp.Y * (1.0 - masks[g])))
            np.testing.assert_allclose(float(ds.attribution.isel(draw=i, group=g)), j0 - without, rtol=1e-8, atol=1e-9)


@pytest.mark.slow  # 72 zero-out scenarios per draw, each with its own LU of the perturbed I - A
def test_region_sector_attribution_of_one_regions_deaths_perturbed_economy(chain):
    ch, m = chain, chain.mrio
    region = ch.health.inputs.regions[2]
    spec = diffmrio.chain.UncertaintySpec.default(ch, mrio_cv=0.05)  # each draw solves its own I - A
    key = jax.random.key(11)
    ds = monte_carlo(ch, spec, 6, key=key, by="region_sector", target=("deaths", {"region": region}),
                     chunk_size=3, progress=False)
    labels = [f"{r}/{s}" for r in m.regions for s in m.sectors]
    assert list(ds.group.values) == labels and ds.target.attrs["units"] == "deaths yr-1"
    assert region in ds.target.attrs["long_name"]
    masks = _row_masks(m, lambda r, s: f"{r}/{s}", labels)

    def J(c, inp):
        return float(np.asarray(_run(c, inp).deaths).sum(axis=(0, 1))[list(c.health.inputs.regions).index(region)])

    _check_against_loop(ch, spec, ds, key, 6, J, masks, groups=(0, 13, 40, 71))
    # the region's deaths are part of the total
    assert np.all(ds.target.values < ds.total_deaths.values)


def test_user_row_grouping_and_pwpm_target(chain):
    ch, m = chain, chain.mrio
    heavy = {"power", "metals", "nonmetal", "chemicals"}

    def lab(r, s):
        return None if r == m.regions[0] else ("heavy" if s in heavy else "light")

    grid = xr.DataArray([[lab(r, s) or "" for s in m.sectors] for r in m.regions], dims=("region", "sector"),
                        coords={"region": list(m.regions), "sector": list(m.sectors)})
    spec = diffmrio.chain.UncertaintySpec.default(ch)  # economy fixed: emissions of every scenario precomputed
    key = jax.random.key(5)
    ds = monte_carlo(ch, spec, 5, key=key, by=grid.transpose("sector", "region"), target="pwpm", progress=False)
    labels = list(ds.group.values)
    assert sorted(labels) == ["heavy", "light"] and ds.target.attrs["units"] == "ug m-3"
    masks = _row_masks(m, lab, labels)
    hi = ch.health.inputs
    pop = np.asarray(hi.population)
    frac = np.asarray(hi.region_fraction).sum(axis=0)

    def J(c, inp):  # the domain's population-weighted PM2.5, in numpy from the grid
        pm = np.asarray(_run(c, inp).pm25)
        return float((pm * pop * frac).sum() / (pop * frac).sum())

    _check_against_loop(ch, spec, ds, key, 5, J, masks)


def test_user_column_mapping_and_custom_target(chain):
    ch, m = chain, chain.mrio
    east = set(m.regions[3:])
    mapping = {(r, c): ("east" if r in east else "west") for r in m.regions for c in m.categories if c != "export"}
    i_lc, i_r = list(ch.health.inputs.causes).index("LC"), 1
    tgt = Target.custom(lambda d, pw: d[i_lc].sum() + 100.0 * pw[i_r], units="mixed", name="LC deaths + 100 pwpm")
    spec = diffmrio.chain.UncertaintySpec.default(ch)
    key = jax.random.key(8)
    ds = monte_carlo(ch, spec, 4, key=key, by=pd.Series(mapping), target=tgt, progress=False)
    labels = list(ds.group.values)
    assert labels == ["west", "east"] and ds.target.attrs == {"units": "mixed", "long_name": "LC deaths + 100 pwpm"}
    masks = _col_masks(m, lambda r, c: mapping.get((r, c)), labels)

    def J(c, inp):
        out = _run(c, inp)
        return float(np.asarray(out.deaths)[i_lc].sum() + 100.0 * np.asarray(out.pwpm)[i_r])

    _check_against_loop(ch, spec, ds, key, 4, J, masks, draws=(1,))


def test_cause_and_region_selection_sequence_grouping_and_quantile_summaries(chain):
    ch, m = chain, chain.mrio
    regions = list(ch.health.inputs.regions[:2])
    seq = [s for _ in m.regions for s in m.sectors]  # one label per row: by sector, as the named grouping
    gi, named = custom_group_index(ch, seq), diffmrio.chain.group_index(ch, "sector")
    assert gi.labels == named.labels and gi.axis == named.axis
    np.testing.assert_array_equal(np.asarray(gi.ids), np.asarray(named.ids))
    ds = monte_carlo(ch, None, 24, key=jax.random.key(2), by=seq,
                     target=("deaths", {"cause": "IHD", "region": regions}), progress=False)
    ref = ds.deaths.sel(cause="IHD", region=regions).sum("region")
    np.testing.assert_allclose(ds.target.values, ref.values, rtol=1e-12)
    # summaries on xarray's quantile dim, against numpy
    q = ds.sel(quantile=0.05)
    np.testing.assert_allclose(float(q.total_deaths_quantile), np.percentile(ds.total_deaths.values, 5))
    np.testing.assert_allclose(q.attribution_quantile.values, np.percentile(ds.attribution.values, 5, axis=0))
    np.testing.assert_allclose(ds.target_mean.values, ds.target.values.mean())
    np.testing.assert_allclose(ds.attribution_std.values, ds.attribution.values.std(axis=0, ddof=1))
    assert ds.attribution_quantile.attrs["units"] == "deaths yr-1"
    assert "in_envelope_mean" not in ds  # flags are not summarised


def test_custom_group_index_forms_agree_and_bad_groupings_are_refused(chain):
    ch, m = chain, chain.mrio
    labels = [f"g{k % 3}" for k in range(m.n)]
    from_seq = custom_group_index(ch, labels)
    keyed = {(r, s): labels[k] for k, (r, s) in enumerate((r, s) for r in m.regions for s in m.sectors)}
    from_map = custom_group_index(ch, keyed)
    assert from_seq.axis == from_map.axis == "row" and from_seq.labels == from_map.labels == ("g0", "g1", "g2")
    np.testing.assert_array_equal(np.asarray(from_seq.ids), np.asarray(from_map.ids))
    gi = GroupIndex(from_seq.ids, "row", from_seq.labels)
    assert custom_group_index(ch, gi) is gi
    # the attribution with the index equals the attribution with dense masks built by hand
    masks = _row_masks(m, lambda r, s: keyed[(r, s)], ["g0", "g1", "g2"])
    a = diffmrio.chain.attribute(ch, by=labels, method="first_order")
    b = diffmrio.chain.attribute(ch, masks=masks, labels=["g0", "g1", "g2"], method="first_order")
    np.testing.assert_allclose(a.values, b.values, rtol=1e-10)
    assert a.attrs["grouping"] == "custom" and a.attrs["units"] == "deaths yr-1"
    with pytest.raises(ValueError, match="not in the table"):
        custom_group_index(ch, xr.DataArray([["a"]], dims=("region", "sector"),
                                            coords={"region": ["Atlantis"], "sector": [m.sectors[0]]}))
    with pytest.raises(ValueError, match=r"dims \('consumer',\)"):
        custom_group_index(ch, xr.DataArray(["a"], dims="consumer"))
    with pytest.raises(ValueError, match="rows or all"):
        custom_group_index(ch, {("Atlantis", "power"): "a"})
    with pytest.raises(ValueError, match="3 group labels"):
        custom_group_index(ch, ["a", "b", "c"])
    with pytest.raises(ValueError, match="no entry"):
        custom_group_index(ch, [None] * m.n)
    with pytest.raises(TypeError, match="cannot group"):
        custom_group_index(ch, 3)


def test_bad_targets_are_refused(chain):
    from diffmrio.chain import resolve_target

    with pytest.raises(ValueError, match=r"region \['Atlantis'\]"):
        resolve_target(chain, ("deaths", {"region": "Atlantis"}))
    with pytest.raises(ValueError, match="selects by"):
        resolve_target(chain, ("pwpm", {"cause": "IHD"}))
    with pytest.raises(ValueError, match="'deaths' or 'pwpm'"):
        resolve_target(chain, "mortality")
    with pytest.raises(TypeError, match="Target.custom"):
        resolve_target(chain, lambda d, p: d.sum())
    with pytest.raises(TypeError, match="not both"):
        monte_carlo(chain, None, 2, key=jax.random.key(0), by="sector", attribution_by="consumer")


def test_chain_evaluate_labels_the_array_outputs(chain):
    ch = chain
    inp = ch.base_inputs()
    out = ch(inp)
    ev = ch.evaluate(inp)
    m, hi = ch.mrio, ch.health.inputs
    np.testing.assert_allclose(ev.x.values.reshape(-1), np.asarray(out.x), rtol=1e-13)  # jitted: rounding differs
    np.testing.assert_allclose(ev.deaths.values, np.asarray(out.deaths), rtol=1e-12)
    np.testing.assert_allclose(ev.pm25.values, np.asarray(out.pm25), rtol=1e-12)
    np.testing.assert_allclose(ev.emissions.sel(species="SO2").values, np.asarray(out.emissions)[0], rtol=1e-12)
    assert float(ev.total_deaths) == pytest.approx(float(ch.target(inp)), rel=1e-12)
    assert ev.x.sel(region=m.regions[1], sector=m.sectors[2]).item() == pytest.approx(float(out.x[m.n_sectors + 2]))
    assert list(ev.receptor.values) == list(hi.regions) and list(ev.cause.values) == list(hi.causes)
    assert ev.deaths.dims == ("cause", "age", "receptor") and ev.pm25.dims == ("row", "col")
    assert ev.pm25.attrs["units"] == "ug m-3" and ev.deaths.attrs["units"] == "deaths yr-1"
    # HealthModel's labelled edge: the same deaths from the PM2.5 field, as an array or a DataArray
    h = ch.health.evaluate(ev.pm25)
    np.testing.assert_allclose(h.deaths.values, ev.deaths.values, rtol=1e-12)
    np.testing.assert_allclose(h.pwpm.values, np.asarray(ch.health.population_weighted_concentration(out.pm25)))
    pop, frac = np.asarray(hi.population), np.asarray(hi.region_fraction)
    np.testing.assert_allclose(h.population.values, (frac * pop).sum(axis=(1, 2)), rtol=1e-12)
