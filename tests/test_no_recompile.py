"""Repeated gradient queries, attributions, scenario optimisations and Monte Carlo runs with new values of the
same shapes reuse their compiled code: the number of traces of each jitted function does not grow on the
second call (counted with `eqx.debug.assert_max_traces`)."""

import sys
from pathlib import Path

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

import diffmrio
from diffmrio.chain import _attribution, _fastdraw
from diffmrio.scenarios import _scenarios

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _chains import small_chain  # noqa: E402
from test_scenarios import random_mrio  # noqa: E402


def traces(fn) -> int:
    return eqx.debug.get_num_traces(fn)


def _twice(fn, call_a, call_b):
    """Trace counts after a first and a second call (with other values of the same shapes)."""
    call_a()
    n1 = traces(fn)
    call_b()
    return n1, traces(fn)


def _scaled(chain, f):
    inp = chain.base_inputs()
    return eqx.tree_at(lambda i: i.Y, inp, inp.Y * f)


def test_sensitivity_compiles_once_per_shape():
    ch = small_chain("linear", ny=3, nx=4, causes=("IHD", "LC"))
    for wrt in ("final_demand", "intensity", "emissions"):
        n1, n2 = _twice(_attribution._grad_wrt,
                        lambda: diffmrio.chain.sensitivity(ch, _scaled(ch, 1.0), wrt=wrt),
                        lambda: diffmrio.chain.sensitivity(ch, _scaled(ch, 0.9), wrt=wrt))
        assert n1 >= 1 and n2 == n1, (wrt, n1, n2)
    # and the values still follow the inputs (not a stale cache)
    g1 = diffmrio.chain.sensitivity(ch, _scaled(ch, 1.0)).values
    g2 = diffmrio.chain.sensitivity(ch, _scaled(ch, 0.5)).values
    assert not np.allclose(g1, g2)


def test_attribute_compiles_once_per_shape():
    ch = small_chain("mlp", ny=3, nx=4, causes=("IHD", "LC"))
    fns = {"zero_out": _attribution._zero_out, "first_order": _attribution._first_order,
           "path": _attribution._path_run}
    for method, fn in fns.items():
        kw = {"n_nodes": 2, "n_intervals": 2} if method == "path" else {}
        a = {}
        n1, n2 = _twice(fn, lambda: a.update(x=diffmrio.chain.attribute(ch, _scaled(ch, 1.0), method=method, **kw)),
                        lambda: a.update(y=diffmrio.chain.attribute(ch, _scaled(ch, 0.8), method=method, **kw)))
        assert n1 >= 1 and n2 == n1, (method, n1, n2)
        assert not np.allclose(a["x"].values, a["y"].values)


def _weighted(w, s):
    return w @ s


def test_footprint_gradients_and_optimisers_compile_once():
    m1, *_ = random_mrio(0)
    m2, *_ = random_mrio(1)
    n1, n2 = _twice(_scenarios._footprint_grads, lambda: diffmrio.scenarios.footprint_gradients(m1, "CO2"),
                    lambda: diffmrio.scenarios.footprint_gradients(m2, "CO2"))
    assert n1 >= 1 and n2 == n1
    n1, n2 = _twice(_scenarios.convergence_kernel, lambda: diffmrio.scenarios.intensity_convergence(m1, "CO2"),
                    lambda: diffmrio.scenarios.intensity_convergence(m2, "CO2"))
    assert n1 >= 1 and n2 == n1
    out = {}
    for fn in (_scenarios._pgd, _scenarios._initial_gradient):
        n1, n2 = _twice(fn, lambda: out.update(a=diffmrio.scenarios.optimal_intensity_cuts(m1, "CO2", 1.0, steps=20)),
                        lambda: out.update(b=diffmrio.scenarios.optimal_intensity_cuts(m2, "CO2", 2.0, steps=20)))
        assert n1 >= 1 and n2 == n1, fn
    assert not np.allclose(out["a"].cut.values, out["b"].cut.values)
    # a user objective passed as a Partial is reused too
    S0 = jnp.asarray(np.random.default_rng(0).uniform(0.5, 1.5, 6))
    cost = jnp.ones(6)

    def run(w):
        return diffmrio.scenarios.optimise_intensity_cuts(jax.tree_util.Partial(_weighted, w), S0, cost, 1.0,
                                                steps=10)

    n1, n2 = _twice(_scenarios._pgd, lambda: run(jnp.arange(6.0)), lambda: run(jnp.arange(6.0)[::-1]))
    assert n2 == n1


def test_monte_carlo_draw_compiles_once():
    ch = small_chain("linear", ny=3, nx=4, causes=("IHD", "LC"))
    spec = diffmrio.chain.UncertaintySpec.default(ch)
    res = {}
    n1, n2 = _twice(
        _fastdraw._draw,
        lambda: res.update(a=diffmrio.chain.monte_carlo(ch, spec, 8, key=jax.random.key(0), chunk_size=4, progress=False)),
        lambda: res.update(b=diffmrio.chain.monte_carlo(ch, spec, 8, key=jax.random.key(1), chunk_size=4, progress=False)),
    )
    assert n1 >= 1 and n2 == n1
    assert not np.allclose(res["a"].deaths.values, res["b"].deaths.values)
