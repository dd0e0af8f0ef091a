"""Adaptive design: proposals lie inside the design box, differ from the existing runs, follow the ensemble's
disagreement, and rank states for adjoint runs."""

import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest
import xarray as xr

import surrogate as sg

SOURCES, SPECIES = ("a", "b"), ("SO2", "NH3")


def _runs(x):
    y = np.stack([1.0 + x[:, :, 0].sum(1) + x[:, :, 1].prod(1), 2.0 + x[:, :, 1].sum(1)], axis=1)[..., None]
    return xr.Dataset(
        {"scale": (("run", "source", "species"), x), "pm25": (("run", "receptor", "component"), y.transpose(0, 2, 1))},
        coords={"source": list(SOURCES), "species": list(SPECIES), "receptor": ["r"], "component": ["SO4", "NH4"]},
    ).assign_coords(low=(("source", "species"), np.zeros((2, 2))), high=(("source", "species"), np.full((2, 2), 2.0)))  # fmt: skip


def _ensemble(runs):
    """Two linear members fitted to different halves: they agree near the runs each saw."""
    lab = sg.EmulatorLabels.from_runs(runs)
    half = runs.sizes["run"] // 2
    ms = [sg.fit(sg.LinearEmulator(lab), runs.isel(run=s)) for s in (slice(0, half), slice(half, None))]
    return sg.Ensemble(ms)


def test_proposals_inside_box_and_new():
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 2, (12, 2, 2))
    runs = _runs(x)
    ens = _ensemble(runs)
    p = sg.propose(ens, runs, 6, key=jr.PRNGKey(0), n_candidates=500)
    xs = p["scale"].values
    assert xs.shape == (6, 2, 2)
    assert np.all(xs >= 0) and np.all(xs <= 2)
    dist_old = np.sqrt(((xs.reshape(6, 1, -1) - x.reshape(1, 12, -1)) ** 2).sum(-1)).min(1)
    assert np.all(dist_old > 1e-3)
    np.testing.assert_allclose(p["min_distance"], dist_old / 2.0, rtol=1e-9)  # box-normalised (span 2)
    # distinct from each other too
    dd = np.sqrt(((xs[:, None] - xs[None]) ** 2).sum((-1, -2)))
    assert dd[~np.eye(6, dtype=bool)].min() > 1e-3
    # a tighter box is respected
    p2 = sg.propose(ens, runs, 3, box=(0.5, 1.0), key=jr.PRNGKey(1), n_candidates=300)
    assert np.all(p2["scale"].values >= 0.5) and np.all(p2["scale"].values <= 1.0)
    assert sorted(p["adjoint_rank"].values.tolist()) == list(range(6))
    # the first pick is where the members disagree most among candidates far enough from the runs
    pm = np.stack([np.asarray(ens.member_predictions(jnp.asarray(v))) for v in xs])  # [run, member, comp, rec]
    pm = np.einsum("nmcr,c->nmr", pm, ens.labels.component_weights())
    rel = np.sqrt(np.mean((pm.std(1) / np.abs(pm.mean(1))) ** 2, axis=-1))
    np.testing.assert_allclose(p["score"], rel, rtol=1e-9)


def test_distance_criterion_and_errors():
    rng = np.random.default_rng(1)
    x = rng.uniform(0, 2, (8, 2, 2))
    runs = _runs(x)
    lin = sg.fit(sg.LinearEmulator(sg.EmulatorLabels.from_runs(runs)), runs)
    p = sg.propose(lin, runs, 4, key=jr.PRNGKey(0), n_candidates=400)
    assert p.attrs["criterion"] == "distance" and "adjoint_rank" not in p
    assert np.all(p["min_distance"] > 0)
    with pytest.raises(ValueError, match="Ensemble"):
        sg.propose(lin, runs, 2, key=jr.PRNGKey(0), criterion="disagreement")
    with pytest.raises(ValueError, match="n_candidates"):
        sg.propose(lin, runs, 5, key=jr.PRNGKey(0), n_candidates=3)


def test_run_set_in_another_label_order_or_of_other_inputs():
    """The existing runs are matched to the emulator by label: the same run set with its sources and species
    listed in another order gives the same proposals (it was read by position, so the distances compared
    different inputs), and a run set of other inputs is refused naming the labels, not a broadcasting error."""
    rng = np.random.default_rng(2)
    x = rng.uniform(0, 2, (10, 2, 2))
    runs = _runs(x)
    ens = _ensemble(runs)
    x[:, 0, 1] = 1.9  # a run set whose columns are not interchangeable
    runs = _runs(x)
    p = sg.propose(ens, runs, 3, key=jr.PRNGKey(3), n_candidates=200)
    shuffled = runs.isel(source=[1, 0], species=[1, 0])
    q = sg.propose(ens, shuffled, 3, key=jr.PRNGKey(3), n_candidates=200)
    np.testing.assert_array_equal(q["scale"].values, p["scale"].values)
    np.testing.assert_array_equal(q["min_distance"].values, p["min_distance"].values)
    other = runs.assign_coords(source=["a", "c"])
    with pytest.raises(ValueError, match=r"labels along 'source' do not match the emulator's: missing \['b'\]"):
        sg.propose(ens, other, 3, key=jr.PRNGKey(3))
    with pytest.raises(ValueError, match=r"'scale' has dims \('run', 'source'\) but the emulator's inputs"):
        sg.propose(ens, runs.isel(species=0, drop=True), 3, key=jr.PRNGKey(3))
