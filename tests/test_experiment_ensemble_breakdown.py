"""experiments.ensemble_breakdown: an ensemble's members scored alone, and the pairs behind its spurious
sensitivity, against numpy computations on an ensemble of two leaky linear emulators."""

import equinox as eqx
import jax.numpy as jnp
import numpy as np
import pytest
import xarray as xr

import surrogate as sg
from experiments.ensemble_breakdown import breakdown

SPECIES = ("SO2", "NOx", "NH3", "VOC", "BC", "OC", "PM_other")
COMPONENTS = ("SO4", "NO3", "NH4", "BC", "OC", "PM_other")
SOURCES = ("a", "b", "c")
RECEPTORS = ("p", "q")
COORDS = {"source": list(SOURCES), "species": list(SPECIES), "receptor": list(RECEPTORS),
          "component": list(COMPONENTS)}  # fmt: skip


def _linear(jac):
    lab = sg.EmulatorLabels(("source", "species"), (SOURCES, SPECIES), "1",
                            ("component", "receptor"), (COMPONENTS, RECEPTORS), "ug m-3")  # fmt: skip
    m = sg.with_envelope_policy(sg.LinearEmulator(lab), "ignore")
    m = eqx.tree_at(lambda q: q.jacobian, m, jnp.asarray(jac.reshape(len(COMPONENTS) * len(RECEPTORS), -1)))
    return eqx.tree_at(lambda q: q.base, m, jnp.full(lab.output_shape, 3.0))


def _worst_nme_numpy(jac, x, y, w):
    """PM2.5 = sum_c w_c y_c; NME per receptor = sum_runs |p - o| / sum_runs o; the largest over receptors."""
    x0 = np.ones((len(SOURCES), len(SPECIES)))
    p = 3.0 + np.einsum("crgk,ngk->ncr", jac, x - x0)
    pm_p, pm_o = np.einsum("ncr,c->nr", p, w), np.einsum("ncr,c->nr", y, w)
    return (np.abs(pm_p - pm_o).sum(0) / pm_o.sum(0)).max()


def test_breakdown_against_numpy():
    rng = np.random.default_rng(3)
    zero = sg.structural_zeros(SPECIES, COMPONENTS)
    jacs = []
    for leak in (0.05, 0.21):  # two members that leak nitrate -> BC by different amounts
        j = rng.uniform(0.1, 1.0, (len(COMPONENTS), len(RECEPTORS), len(SOURCES), len(SPECIES)))
        j[np.broadcast_to(zero[:, None, None, :], j.shape)] = 0.0
        j[1, 0, 2, SPECIES.index("BC")] = leak
        jacs.append(j)
    jacs[1][0, 1, 1, SPECIES.index("NH3")] = -0.09  # sulfate <- ammonia in the second member only
    ens = sg.Ensemble([_linear(j) for j in jacs])
    x = rng.uniform(0.2, 1.8, (8, len(SOURCES), len(SPECIES)))
    mean_jac = (jacs[0] + jacs[1]) / 2
    y = (3.0 + np.einsum("crgk,ngk->ncr", mean_jac, x - 1.0)) * rng.uniform(0.9, 1.1, (8, len(COMPONENTS), 2))
    test = xr.Dataset({"scale": (("run", "source", "species"), x), "pm25": (("run", "component", "receptor"), y)},
                      coords={"run": np.arange(8), **COORDS})  # fmt: skip
    adj = xr.Dataset({"scale": (("run", "source", "species"), x[:4]),
                      "sensitivity": (("run", "source", "species"), rng.normal(size=x[:4].shape)),
                      "cost_weights": (("component", "receptor"), rng.uniform(0, 1, (len(COMPONENTS), 2)))},
                     coords={"run": np.arange(4), **COORDS})  # fmt: skip
    r = breakdown(ens, test, adj, top=2)
    w = np.asarray(ens.labels.component_weights())
    assert r["nme"] == pytest.approx(_worst_nme_numpy(mean_jac, x, y, w), rel=1e-10)
    assert r["member_nme"] == pytest.approx([_worst_nme_numpy(j, x, y, w) for j in jacs], rel=1e-10)
    assert r["member_nme"][0] != pytest.approx(r["member_nme"][1])  # each member scored, not the mean twice
    # the ensemble's (member-mean) spurious sensitivities, largest first: |leak| over the largest real one
    (c1, s1, v1), (c2, s2, v2) = r["spurious_top"]
    assert (c1, s1) == ("NO3", "BC") and (c2, s2) == ("SO4", "NH3")
    real = lambda c: max(np.abs(mean_jac[c, :, :, k]).max() for k in range(len(SPECIES)) if not zero[c, k])  # noqa: E731
    assert v1 == pytest.approx(0.13 / real(1), rel=1e-10)
    assert v2 == pytest.approx(0.045 / real(0), rel=1e-10)
    with pytest.raises(TypeError, match="Ensemble"):
        breakdown(_linear(jacs[0]), test, adj)
