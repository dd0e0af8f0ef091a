"""Metrics that cannot hide a failure: per-species and per-region gradient agreement, spurious sensitivities
and the structural-zero table, checked against independent numpy computations."""

import equinox as eqx
import jax.numpy as jnp
import numpy as np
import pytest
import xarray as xr

import surrogate as sg

SPECIES = ("SO2", "NOx", "NH3", "VOC", "BC", "OC", "PM_other")
COMPONENTS = ("SO4", "NO3", "NH4", "BC", "OC", "PM_other")
SOURCES = ("a", "b", "c")
RECEPTORS = ("p", "q")


def _labels():
    return sg.EmulatorLabels(
        ("source", "species"), (SOURCES, SPECIES), "1",
        ("component", "receptor"), (COMPONENTS, RECEPTORS), "ug m-3",
    )  # fmt: skip


def _linear(jac, base=None):
    """A linear emulator with the Jacobian jac[component, receptor, source, species]."""
    lab = _labels()
    m = sg.with_envelope_policy(sg.LinearEmulator(lab), "ignore")
    m = eqx.tree_at(lambda q: q.jacobian, m, jnp.asarray(jac.reshape(len(COMPONENTS) * len(RECEPTORS), -1)))
    b = np.full(lab.output_shape, 3.0) if base is None else base
    return eqx.tree_at(lambda q: q.base, m, jnp.asarray(b))


def test_default_structural_zeros_follow_the_chemistry():
    z = sg.structural_zeros(SPECIES, COMPONENTS)
    zz = {(c, s): bool(z[i, j]) for i, c in enumerate(COMPONENTS) for j, s in enumerate(SPECIES)}
    # primary species only into their own component
    for sp in ("BC", "OC", "PM_other"):
        assert [c for c in COMPONENTS if not zz[(c, sp)]] == [sp]
    # precursors never into the primary components other than organic matter
    for sp in ("SO2", "NOx", "NH3", "VOC"):
        assert zz[("BC", sp)] and zz[("PM_other", sp)]
    assert zz[("OC", "SO2")] and zz[("OC", "NH3")] and not zz[("OC", "VOC")]
    assert zz[("SO4", "NH3")]  # ammonia does not make sulfate
    for c in ("SO4", "NO3", "NH4"):
        assert not zz[(c, "SO2")] and not zz[(c, "NOx")] and not zz[(c, "VOC")]
    assert not zz[("NO3", "NH3")] and not zz[("NH4", "NH3")]
    # other spellings of the same species/components
    z2 = sg.structural_zeros(("so2", "EC", "OM", "PMOTHR"), ("ASO4", "EC", "OM", "SOA"))
    np.testing.assert_array_equal(
        z2, [[False, True, True, True], [True, False, True, True], [True, True, False, True], [True, True, True, True]]
    )
    # an unknown species or component gets no structural zeros
    z3 = sg.structural_zeros(("DUST", "BC"), ("SO4", "SEASALT"))
    np.testing.assert_array_equal(z3, [[False, True], [False, False]])


def test_structural_zero_table_is_configurable():
    # a CTM with pH-dependent aqueous sulfate: NH3 can affect SO4
    z = sg.structural_zeros(SPECIES, COMPONENTS, {"NH3": ["SO4", "NO3", "NH4"]})
    assert not z[COMPONENTS.index("SO4"), SPECIES.index("NH3")]
    assert z[COMPONENTS.index("BC"), SPECIES.index("NH3")]
    with pytest.raises(TypeError, match="list of names"):
        sg.structural_zeros(SPECIES, COMPONENTS, {"NH3": "SO4"})


def _spurious_numpy(jac, zero):
    """Independent computation: loops over components and species of |jac[c, r, g, k]|."""
    nc, ns = zero.shape
    out = np.zeros((nc, ns))
    for c in range(nc):
        real = max(np.abs(jac[c, :, :, k]).max() for k in range(ns) if not zero[c, k])
        for k in range(ns):
            if zero[c, k]:
                out[c, k] = np.abs(jac[c, :, :, k]).max() / real
    return out


def test_spurious_sensitivity_against_numpy():
    rng = np.random.default_rng(0)
    zero = sg.structural_zeros(SPECIES, COMPONENTS)
    jac = rng.uniform(0.1, 1.0, (len(COMPONENTS), len(RECEPTORS), len(SOURCES), len(SPECIES)))
    jac[np.broadcast_to(zero[:, None, None, :], jac.shape)] = 0.0
    m = _linear(jac)
    x = rng.uniform(0, 2, (4, len(SOURCES), len(SPECIES)))
    sp = sg.spurious_sensitivity(m, x)
    np.testing.assert_array_equal(sp["spurious"], 0.0)  # a model with the structural zeros has none
    # leak: nitrate depends on BC, ammonium on OC (negative), sulfate on NH3
    leaky = jac.copy()
    leaky[1, 0, 2, SPECIES.index("BC")] = 0.07
    leaky[2, 1, 0, SPECIES.index("OC")] = -0.13
    leaky[0, 1, 1, SPECIES.index("NH3")] = 0.02
    sp = sg.spurious_sensitivity(_linear(leaky), x)
    expected = _spurious_numpy(leaky, zero)
    np.testing.assert_allclose(sp["spurious"].values, expected, rtol=1e-12)
    assert float(sp["spurious_max"]) == pytest.approx(expected.max(), rel=1e-12)
    assert float(sp["spurious"].sel(component="NO3", species="BC")) > 0.07  # over the largest real one (< 1)
    # evaluate reports it too (the PM25 row has none)
    runs = xr.Dataset(
        {"scale": (("run", "source", "species"), x),
         "pm25": (("run", "receptor", "component"), np.stack([np.asarray(_linear(leaky)(xi)).T for xi in x]))},
        coords={"source": list(SOURCES), "species": list(SPECIES), "receptor": list(RECEPTORS),
                "component": list(COMPONENTS)},
    )  # fmt: skip
    ev = sg.evaluate(_linear(leaky), runs)
    np.testing.assert_allclose(ev["spurious"].sel(component=list(COMPONENTS)).values, expected, rtol=1e-12)
    assert np.isnan(ev["spurious"].sel(component="PM25")).all()
    assert float(ev["spurious_max"]) == pytest.approx(expected.max(), rel=1e-12)


def _r2_slope_numpy(e, a):
    e, a = np.ravel(e), np.ravel(a)
    r2 = 1 - np.sum((e - a) ** 2) / np.sum((a - a.mean()) ** 2)
    slope = np.polyfit(a, e, 1)[0]
    return r2, slope


def test_per_species_and_per_region_gradient_agreement_against_numpy():
    rng = np.random.default_rng(1)
    jac = rng.normal(size=(len(COMPONENTS), len(RECEPTORS), len(SOURCES), len(SPECIES)))
    m = _linear(jac)
    w = rng.uniform(0, 1, (len(COMPONENTS), len(RECEPTORS)))
    states = rng.uniform(0.2, 1.8, (5, len(SOURCES), len(SPECIES)))
    exact = np.einsum("cr,crgk->gk", w, jac)
    # the "adjoint": right for most species, 40 % low for NOx, noisy for BC, so the pooled R^2 stays high
    adj = np.broadcast_to(exact, states.shape).copy()
    adj[..., SPECIES.index("NOx")] /= 0.6
    adj[..., SPECIES.index("BC")] += rng.normal(scale=0.5, size=adj.shape[:-1])
    ds = xr.Dataset(
        {"scale": (("run", "source", "species"), states), "sensitivity": (("run", "source", "species"), adj),
         "cost_weights": (("component", "receptor"), w)},
    )  # fmt: skip
    ga = sg.gradient_agreement(m, ds)
    e = np.broadcast_to(exact, states.shape)
    for k, sp in enumerate(SPECIES):
        r2, slope = _r2_slope_numpy(e[..., k], adj[..., k])
        assert float(ga["source_species_r2"].sel(species=sp)) == pytest.approx(r2, rel=1e-10, abs=1e-12)
        assert float(ga["source_species_slope"].sel(species=sp)) == pytest.approx(slope, rel=1e-10)
        assert float(ga["source_species_share"].sel(species=sp)) == pytest.approx(
            np.sum(adj[..., k] ** 2) / np.sum(adj**2), rel=1e-12
        )
    for g, src in enumerate(SOURCES):
        r2, slope = _r2_slope_numpy(e[:, g], adj[:, g])
        assert float(ga["source_region_r2"].sel(source=src)) == pytest.approx(r2, rel=1e-10, abs=1e-12)
        assert float(ga["source_region_slope"].sel(source=src)) == pytest.approx(slope, rel=1e-10)
    assert float(ga["source_species_slope"].sel(species="NOx")) == pytest.approx(0.6, rel=1e-10)
    assert float(ga["source_species_r2"].sel(species="SO2")) == pytest.approx(1.0, abs=1e-12)
    share = ga["source_species_share"].values
    major = share >= 0.05
    assert float(ga["source_species_r2_min_major"]) == pytest.approx(
        ga["source_species_r2"].values[major].min(), rel=1e-12
    )
    assert float(ga["source_species_r2_min_major"]) < 0.9  # the per-species view exposes the failure
    assert "spurious_max" in ga


def _held_out(m, rng, n=6):
    """Held-out runs and adjoint states of `m` with labelled coordinates (emulator order)."""
    x = rng.uniform(0.2, 1.8, (n, len(SOURCES), len(SPECIES)))
    y = np.stack([np.asarray(m(xi)) for xi in x]) * rng.uniform(0.9, 1.1, (n, len(COMPONENTS), len(RECEPTORS)))
    w = rng.uniform(0, 1, (len(COMPONENTS), len(RECEPTORS)))
    adj = rng.normal(size=x.shape)
    coords = {"run": np.arange(n), "source": list(SOURCES), "species": list(SPECIES),
              "receptor": list(RECEPTORS), "component": list(COMPONENTS)}  # fmt: skip
    runs = xr.Dataset(
        {"scale": (("run", "source", "species"), x), "pm25": (("run", "component", "receptor"), y)}, coords=coords
    )
    adjoint = xr.Dataset(
        {"scale": (("run", "source", "species"), x), "sensitivity": (("run", "source", "species"), adj),
         "cost_weights": (("component", "receptor"), w)}, coords={k: v for k, v in coords.items() if k != "run"},
    )  # fmt: skip
    return runs, adjoint


def test_held_out_runs_are_aligned_by_label_not_position():
    rng = np.random.default_rng(3)
    m = _linear(rng.normal(size=(len(COMPONENTS), len(RECEPTORS), len(SOURCES), len(SPECIES))))
    runs, adjoint = _held_out(m, rng)
    order = {"species": list(SPECIES[::-1]), "source": ["c", "a", "b"], "component": list(COMPONENTS[2:] + COMPONENTS[:2]),
             "receptor": ["q", "p"]}  # fmt: skip
    shuffled = runs.reindex(order).transpose("run", "species", "receptor", "source", "component")
    assert list(shuffled["species"].values) != list(SPECIES)  # really another order
    ev, ev2 = sg.evaluate(m, runs), sg.evaluate(m, shuffled)
    for k in ("NMB", "NME", "R", "MaxNE"):
        np.testing.assert_array_equal(ev[k].values, ev2[k].values)
    # the same against numpy, in the emulator's order
    pred = np.stack([np.asarray(m(xi)) for xi in runs["scale"].values])
    obs = runs["pm25"].values
    np.testing.assert_allclose(ev["NME"].sel(component=list(COMPONENTS)).values,
                               np.abs(pred - obs).sum(0) / obs.sum(0), rtol=1e-12)  # fmt: skip
    ga = sg.gradient_agreement(m, adjoint)
    ga2 = sg.gradient_agreement(m, adjoint.reindex(order))
    for k in ("source_species_r2", "source_species_slope", "source_region_r2", "source_r2_pooled"):
        np.testing.assert_array_equal(ga[k].values, ga2[k].values)
    np.testing.assert_array_equal(ga["adjoint"].values, adjoint["sensitivity"].values)
    # fitting reads the run set by label too: the same closed-form emulator either way
    f1 = sg.fit(sg.LinearEmulator(_labels()), runs)
    f2 = sg.fit(sg.LinearEmulator(_labels()), shuffled)
    np.testing.assert_allclose(np.asarray(f1.jacobian), np.asarray(f2.jacobian), rtol=1e-10, atol=1e-12)


def test_held_out_runs_with_other_labels_are_refused_by_name():
    rng = np.random.default_rng(4)
    m = _linear(rng.normal(size=(len(COMPONENTS), len(RECEPTORS), len(SOURCES), len(SPECIES))))
    runs, adjoint = _held_out(m, rng)
    bad = runs.assign_coords(species=["SO2", "NOx", "NH3", "VOC", "EC", "OC", "PM_other"])
    with pytest.raises(ValueError, match=r"labels along 'species'.*missing \['BC'\], unexpected \['EC'\]"):
        sg.evaluate(m, bad)
    bad = adjoint.assign_coords(receptor=["p", "z"])
    with pytest.raises(ValueError, match=r"cost_weights: labels along 'receptor'.*missing \['q'\], unexpected \['z'\]"):
        sg.gradient_agreement(m, bad)
    bad = runs.assign_coords(source=["a", "a", "b"])
    with pytest.raises(ValueError, match=r"missing \['c'\].*repeated \['a'\]"):
        sg.evaluate(m, bad)
    with pytest.raises(ValueError, match="expected"):
        sg.gradient_agreement(m, adjoint.assign(cost_weights=adjoint["cost_weights"].isel(receptor=0)))
