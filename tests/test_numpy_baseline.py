"""The NumPy-loop peer of the Monte Carlo benchmark computes the same numbers as the JAX chain, draw by
draw (so the benchmark compares like with like)."""

import sys
from pathlib import Path

import equinox as eqx
import jax
import numpy as np
import pytest

import diffmrio

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from _numpy_chain import numpy_monte_carlo  # noqa: E402


@pytest.mark.slow
def test_numpy_loop_equals_jax_engine(quick_demo_chain):
    ch = quick_demo_chain.chain
    spec = diffmrio.chain.UncertaintySpec.default(ch, sample_member=False)
    key = jax.random.key(5)
    mc = diffmrio.chain.monte_carlo(ch, spec, 6, key=key, by=None, chunk_size=4, progress=False)
    base = ch.base_inputs()
    keys = jax.random.split(key, 6)
    inp = eqx.filter_vmap(lambda k: diffmrio.chain.sample_inputs(ch, spec, base, k))(keys)
    d_np = numpy_monte_carlo(ch, np.asarray(inp.species_factor), np.asarray(inp.crf.theta),
                             np.asarray(inp.baseline_factor))
    np.testing.assert_allclose(d_np, mc.deaths.values, rtol=1e-9)
