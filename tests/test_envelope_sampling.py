"""Monte Carlo inventory factors truncated to the emulator's training envelope: the bounds follow from the
envelope exactly, the truncated lognormal has the right distribution, and no draw leaves the envelope."""

import sys
from pathlib import Path

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.stats import norm

import diffmrio
from diffmrio.chain._uncertainty import truncated_lognormal_factor
from surrogate._abstract import Envelope, with_envelope

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _chains import small_chain  # noqa: E402


def _with_box(ch, lower, upper):
    shape = ch.emulator.labels.input_shape
    env = Envelope(jnp.broadcast_to(jnp.asarray(lower, jnp.float64), shape),
                   jnp.broadcast_to(jnp.asarray(upper, jnp.float64), shape), "ignore")
    return eqx.tree_at(lambda c: c.emulator, ch, with_envelope(ch.emulator, env))


def test_truncated_lognormal_against_the_analytic_mean():
    cv, lo, hi = 1.07, 0.0, 2.0
    f = np.asarray(truncated_lognormal_factor(jax.random.key(0), jnp.full((200_000,), cv), lo, hi))
    assert f.min() >= lo and f.max() <= hi
    s = np.sqrt(np.log1p(cv**2))
    mu = -0.5 * s**2
    a, b = -np.inf, (np.log(hi) - mu) / s
    mean = np.exp(mu + s**2 / 2) * (norm.cdf(b - s) - norm.cdf(a - s)) / (norm.cdf(b) - norm.cdf(a))
    assert abs(f.mean() - mean) < 4 * f.std() / np.sqrt(f.size)
    # share below 1 against the CDF of the truncated normal
    p1 = (norm.cdf((0 - mu) / s) - norm.cdf(a)) / (norm.cdf(b) - norm.cdf(a))
    assert abs(np.mean(f < 1.0) - p1) < 4 * np.sqrt(p1 * (1 - p1) / f.size)
    # untruncated bounds give the mean-one lognormal; cv = 0 gives exactly 1
    g = np.asarray(truncated_lognormal_factor(jax.random.key(1), jnp.full((200_000,), 0.5), 0.0, jnp.inf))
    assert abs(g.mean() - 1.0) < 4 * g.std() / np.sqrt(g.size)
    assert np.all(np.asarray(truncated_lognormal_factor(jax.random.key(2), jnp.zeros(3), 0.5, 2.0)) == 1.0)


def test_bounds_follow_the_envelope_and_draws_stay_inside():
    ch = small_chain("linear", ny=3, nx=4, causes=("IHD", "LC"))
    R = ch.mrio.n_regions
    upper = np.full((R, 7), 2.0)
    upper[3, 2] = 1.6  # one source caps species 2 lower
    ch = _with_box(ch, 0.25, upper)
    b = diffmrio.chain.envelope_species_bounds(ch)
    np.testing.assert_allclose(b[:, 0], 0.25, rtol=1e-12)
    expect = np.full(7, 2.0)
    expect[2] = 1.6
    np.testing.assert_allclose(b[:, 1], expect, rtol=1e-12)
    spec = diffmrio.chain.UncertaintySpec.default(ch, within_envelope=True)
    mc = diffmrio.chain.monte_carlo(ch, spec, 64, key=jax.random.key(3), by=None, progress=False)
    assert mc.attrs["fraction_outside_envelope"] == 0.0
    assert "truncated" in mc.attrs["species_sampling"]
    # without truncation the same spec leaves the envelope (CVs of ~1 reach past 2x)
    free = diffmrio.chain.monte_carlo(ch, diffmrio.chain.UncertaintySpec.default(ch), 64, key=jax.random.key(3),
                                by=None, progress=False)
    assert free.attrs["fraction_outside_envelope"] > 0.1
    # the sampled factors lie in the bounds
    base = ch.base_inputs()
    keys = jax.random.split(jax.random.key(4), 256)
    sf = np.asarray(jax.vmap(lambda k: diffmrio.chain.sample_inputs(ch, spec, base, k).species_factor)(keys))
    assert np.all(sf >= b[:, 0] - 1e-12) and np.all(sf <= b[:, 1] + 1e-12)


def test_base_case_outside_the_envelope_is_refused():
    ch = _with_box(small_chain("linear", ny=3, nx=4, causes=("IHD",)), 1.2, 2.0)
    with pytest.raises(ValueError, match="outside the emulator's training envelope"):
        diffmrio.chain.UncertaintySpec.default(ch, within_envelope=True)


def test_truncated_lognormal_mean_equals_the_sample_mean():
    """The analytic mean the demo report quotes equals the mean of the factors actually drawn."""
    from diffmrio.chain._uncertainty import truncated_lognormal_mean

    cv = np.array([0.12, 0.31, 0.68, 1.07, 0.0])
    lo = np.array([0.0, 0.25, 0.0, 0.0, 0.5])
    hi = np.array([2.0, 2.0, 1.5, 2.0, 2.0])
    f = np.asarray(truncated_lognormal_factor(jax.random.key(3), jnp.broadcast_to(cv, (100_000, 5)), lo, hi))
    m = truncated_lognormal_mean(cv, lo, hi)
    se = f.std(axis=0) / np.sqrt(f.shape[0])
    assert np.all(np.abs(f.mean(axis=0) - m) <= 4 * se + 1e-15), (f.mean(axis=0), m)
    assert m[-1] == 1.0 and m[3] < 0.9  # cv 0 -> exactly 1; 107% CV truncated at 2x loses mass above 2
    np.testing.assert_allclose(truncated_lognormal_mean(0.5, 0.0, np.inf), 1.0, rtol=1e-12)
