"""The Monte Carlo engine: determinism across chunking, devices and resumption; summaries; the chain
Monte Carlo against a plain loop over the same draws."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import xarray as xr
from _chains import small_chain

import diffmrio
from diffmrio.chain._montecarlo import lognormal_factor, run_draws


def _draw(k):
    a = jax.random.normal(k, (3,))
    return {"a": a, "b": jnp.sum(a**2)}


def test_identical_on_one_and_several_devices_and_chunkings():
    assert len(jax.devices()) >= 2, "conftest asks for several CPU devices"
    key = jax.random.key(3)
    ref = run_draws(_draw, 37, key=key, chunk_size=37, devices=jax.devices()[:1], progress=False)
    for chunk in (4, 8, 16):
        got = run_draws(_draw, 37, key=key, chunk_size=chunk, progress=False)
        for k in ref:
            np.testing.assert_array_equal(got[k], ref[k])
    # and equal to evaluating each draw on its own
    keys = jax.random.split(key, 37)
    np.testing.assert_allclose(ref["b"][5], float(_draw(keys[5])["b"]), rtol=1e-15)


def test_resume_from_checkpoints(tmp_path):
    key = jax.random.key(0)
    full = run_draws(_draw, 40, key=key, chunk_size=8, checkpoint_dir=tmp_path, progress=False)
    chunks = sorted(tmp_path.glob("chunk_*.npz"))
    assert len(chunks) == 5
    chunks[-1].unlink()  # as if interrupted before the last chunk
    chunks[1].unlink()
    again = run_draws(_draw, 40, key=key, chunk_size=8, checkpoint_dir=tmp_path, progress=False)
    for k in full:
        np.testing.assert_array_equal(again[k], full[k])
    assert not list(tmp_path.glob(".*")), "temporary files left behind"
    with pytest.raises(ValueError, match="different computation"):
        run_draws(_draw, 40, key=jax.random.key(1), chunk_size=8, checkpoint_dir=tmp_path, progress=False)


def test_lognormal_factor_is_mean_one_with_given_cv():
    x = np.asarray(lognormal_factor(jax.random.key(0), 0.5, (200_000,)))
    assert abs(x.mean() - 1) < 0.01 and abs(x.std() / x.mean() - 0.5) < 0.01


def test_summaries_against_numpy():
    rng = np.random.default_rng(0)
    da = xr.DataArray(rng.normal(size=(1000, 3)), dims=("draw", "region"), name="deaths", attrs={"units": "deaths yr-1"})
    s = diffmrio.chain.summarise(da)
    np.testing.assert_allclose(s.deaths_mean, da.values.mean(0))
    np.testing.assert_allclose(s.deaths_std, da.values.std(0, ddof=1))
    for q in (0.025, 0.05, 0.5, 0.975):
        np.testing.assert_allclose(s.sel(quantile=q).deaths_quantile, np.percentile(da.values, 100 * q, axis=0))
    assert all(v.attrs["units"] == "deaths yr-1" for v in s.data_vars.values())
    s2 = diffmrio.chain.summarise(da.to_dataset(), q=[0.1, 0.9])
    np.testing.assert_allclose(s2.deaths_quantile.sel(quantile=0.9), np.percentile(da.values, 90, axis=0))
    with pytest.raises(ValueError, match="give 0.05, not 5"):
        diffmrio.chain.summarise(da, q=[5])


def test_chain_monte_carlo_equals_loop_over_draws():
    ch = small_chain("linear", ny=4, nx=6, causes=("IHD", "LC"))
    spec = diffmrio.chain.UncertaintySpec.default(ch, mrio_cv=0.05)
    key = jax.random.key(7)
    ds = diffmrio.chain.monte_carlo(ch, spec, 12, key=key, chunk_size=4, progress=False)
    base = ch.base_inputs()
    keys = jax.random.split(key, 12)
    for i in (0, 5, 11):
        inp = diffmrio.chain.sample_inputs(ch, spec, base, keys[i])
        out = ch(inp)
        np.testing.assert_allclose(ds.deaths.isel(draw=i), out.deaths.sum(axis=1), rtol=1e-10)
        # zero-out attribution of one consumer region, by hand
        masks, _ = diffmrio.chain.group_masks(ch, "consumer")
        without = ch.target(eqx.tree_at(lambda i: i.Y, inp, inp.Y * (1 - masks[2])), "deaths")
        np.testing.assert_allclose(ds.attribution.isel(draw=i, group=2), float(out.deaths.sum() - without), rtol=1e-9)
    # draws differ and the interval brackets the mean
    s = ds.total_deaths_quantile
    assert float(s.sel(quantile=0.025)) < float(ds.total_deaths_mean) < float(s.sel(quantile=0.975))
