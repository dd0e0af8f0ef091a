"""Monte Carlo chunks sized from a memory budget (issue 16): the chosen chunk's compiled program fits the budget
(checked against an independent compilation) and a chunk twice as large would not; the results are the same for
every chunk size and budget; a budget too small for one draw is refused with the bytes needed; a checkpoint
folder resumes under another chunk size without recomputing its chunks; repeated calls compile nothing new."""

import json
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from _chains import small_chain

import diffmrio
from diffmrio.chain import _montecarlo
from diffmrio.chain._montecarlo import plan_chunks, run_draws

ONE = jax.devices()[:1]

COMPILES: list[str] = []
jax.monitoring.register_event_duration_secs_listener(
    lambda event, duration, **kw: COMPILES.append(event) if event.endswith("backend_compile_duration") else None)


def _draw(k):
    a = jax.random.normal(k, (200,))
    return {"a": a[:3], "b": jnp.sum(jnp.sin(a) ** 2), "c": jnp.cumsum(a)}


def _bytes(n_draws: int) -> int:
    """XLA's memory analysis of a plain `jit(vmap(_draw))` over `n_draws` keys on one device (independent of
    the library's own lowering)."""
    keys = jax.random.split(jax.random.key(0), n_draws)
    ma = jax.jit(jax.vmap(_draw)).lower(keys).compile().memory_analysis()
    return ma.argument_size_in_bytes + ma.output_size_in_bytes + ma.temp_size_in_bytes - ma.alias_size_in_bytes


def test_chunk_from_budget_fits_and_is_the_largest_that_does():
    budget = 40 * _bytes(1)
    plan = plan_chunks(_draw, 1000, key=jax.random.key(0), memory_budget=budget, devices=ONE)
    size = plan.chunk_size
    assert 1 < size < 1000 and plan.memory_budget == budget
    assert plan.chunk_bytes <= budget
    # the library compiles raw key words, the reference typed keys: the same to a few bytes
    assert abs(plan.chunk_bytes - _bytes(size)) < 0.01 * budget
    assert _bytes(2 * size) > budget, "a chunk of half the size the budget allows"
    # balanced: 1000 draws cut into chunks of `size` waste less than one draw per chunk on padding
    n_chunks = -(-1000 // size)
    assert n_chunks * size - 1000 < n_chunks
    # an integer chunk_size caps the chunk; the number of draws caps it too
    assert plan_chunks(_draw, 1000, key=jax.random.key(0), memory_budget=budget, chunk_size=7,
                       devices=ONE).chunk_size == 7
    assert plan_chunks(_draw, 5, key=jax.random.key(0), memory_budget=budget, devices=ONE).chunk_size == 5
    # on several devices: a multiple of the device count, the budget per device
    nd = len(jax.devices())
    many = plan_chunks(_draw, 1000, key=jax.random.key(0), memory_budget=budget)
    assert many.chunk_size % nd == 0 and many.chunk_bytes <= budget


def test_same_results_for_every_chunk_size_and_budget():
    key = jax.random.key(3)
    ref = run_draws(_draw, 37, key=key, chunk_size=37, devices=ONE, progress=False)
    one = _bytes(1)
    runs = {"chunk 5": dict(chunk_size=5), "budget 3 draws": dict(memory_budget=3 * one, devices=ONE),
            "budget 11 draws, 4 devices": dict(memory_budget=11 * one), "auto": dict(memory_budget="auto"),
            "default": {}, "old 'auto'": dict(chunk_size="auto")}
    for label, kw in runs.items():
        got = run_draws(_draw, 37, key=key, progress=False, **kw)
        np.testing.assert_array_equal(got["a"], ref["a"], err_msg=label)  # the same random numbers, bitwise
        # XLA vectorises the reductions differently for other batch sizes: the same to the last bits or so
        for k in ("b", "c"):
            np.testing.assert_allclose(got[k], ref[k], rtol=1e-13, atol=0, err_msg=label)


def test_auto_budget_is_a_fraction_of_available_memory():
    avail = _montecarlo.available_memory(ONE)
    meminfo = {ln.split(":")[0]: int(ln.split()[1]) * 1024 for ln in open("/proc/meminfo") if ":" in ln}
    # CPU devices have no memory statistics: the host's available memory (it moves a little between reads)
    assert abs(avail - meminfo["MemAvailable"]) < 0.2 * meminfo["MemTotal"]
    four = _montecarlo.available_memory(jax.devices()[:4])
    assert abs(four - avail / 4) < 0.05 * meminfo["MemTotal"], "host memory is shared by the CPU devices"
    plan = plan_chunks(_draw, 10, key=jax.random.key(0), memory_budget="auto", devices=ONE)
    frac = _montecarlo.AUTO_MEMORY_FRACTION
    assert frac * avail / 2 * 0.8 <= plan.memory_budget <= frac * avail * 1.2
    assert plan.memory_budget & (plan.memory_budget - 1) == 0, "a power of two bytes"


def test_budget_too_small_for_one_draw_is_refused():
    with pytest.raises(ValueError, match=r"memory_budget=100 bytes is too small for one draw: .* need (\d+) bytes"
                                         r".*Pass memory_budget >= \1") as e:
        run_draws(_draw, 10, key=jax.random.key(0), memory_budget=100, devices=ONE, progress=False)
    need = int(re.search(r"need (\d+) bytes", str(e.value)).group(1))
    assert abs(need - _bytes(1)) < 64  # an independent compilation of one draw, to a few bytes
    # the advice works: that budget runs the draws one at a time
    plan = plan_chunks(_draw, 10, key=jax.random.key(0), memory_budget=need, devices=ONE)
    assert plan.chunk_size == 1 and plan.chunk_bytes == need
    for bad in ("lots", -5, 0, True, float("nan")):
        with pytest.raises(ValueError, match="memory_budget must be"):
            run_draws(_draw, 10, key=jax.random.key(0), memory_budget=bad, devices=ONE, progress=False)
    for bad in (0, -1, 2.5, "big"):
        with pytest.raises(ValueError, match="chunk_size must be"):
            run_draws(_draw, 10, key=jax.random.key(0), chunk_size=bad, devices=ONE, progress=False)


def test_checkpoint_resumes_under_another_chunk_size(tmp_path):
    key = jax.random.key(0)
    full = run_draws(_draw, 40, key=key, chunk_size=8, checkpoint_dir=tmp_path, progress=False)
    chunks = sorted(tmp_path.glob("chunk_*.npz"))
    assert len(chunks) == 5
    kept = {p.name: p.stat().st_mtime_ns for p in chunks if p not in (chunks[1], chunks[4])}
    chunks[1].unlink()
    chunks[4].unlink()
    # resumed with chunks of 3 draws (as a smaller memory budget would give): the folder keeps its own chunk
    # files, the missing ones are computed 3 draws at a time, and nothing finished is recomputed
    again = run_draws(_draw, 40, key=key, chunk_size=3, devices=ONE, checkpoint_dir=tmp_path, progress=False)
    for k in full:
        np.testing.assert_array_equal(again[k], full[k])
    assert sorted(p.name for p in tmp_path.glob("chunk_*.npz")) == [p.name for p in chunks]
    assert {n: (tmp_path / n).stat().st_mtime_ns for n in kept} == kept
    assert json.loads((tmp_path / "manifest.json").read_text())["chunk_size"] == 8
    with np.load(chunks[4]) as z:
        assert z["b"].shape == (8,) and z["__draws__"].tolist() == [32, 40]
    # and with a memory budget; a different computation is still refused
    chunks[2].unlink()
    again = run_draws(_draw, 40, key=key, memory_budget=5 * _bytes(1), devices=ONE, checkpoint_dir=tmp_path,
                      progress=False)
    np.testing.assert_array_equal(again["c"], full["c"])
    with pytest.raises(ValueError, match="different computation"):
        run_draws(_draw, 40, key=jax.random.key(1), chunk_size=3, checkpoint_dir=tmp_path, progress=False)


def test_chain_monte_carlo_same_for_a_budget_and_no_recompile_when_repeated():
    ch = small_chain("linear", ny=3, nx=4, causes=("IHD", "LC"))
    spec = diffmrio.chain.UncertaintySpec.default(ch, mrio_cv=0.05)

    def mc(key, **kw):  # on one device (the budget over several: test_same_results_for_every_chunk_size_and_budget)
        return diffmrio.chain.monte_carlo(ch, spec, 12, key=jax.random.key(key), progress=False, devices=ONE, **kw)

    ref = mc(0, chunk_size=4)
    got = mc(0, memory_budget=10**8, chunk_size=8)  # chunks of 8 draws: the second padded with 4 repeats
    assert plan_chunks(_draw, 12, key=jax.random.key(0), memory_budget=10**8, chunk_size=8).chunk_size == 8
    for name in ("deaths", "pwpm", "target", "attribution"):
        np.testing.assert_allclose(got[name].values, ref[name].values, rtol=1e-12, atol=0)
    # a second call with new values and the same budget compiles nothing (sizing included)
    before = len(COMPILES)
    again = mc(1, memory_budget=10**8, chunk_size=8)
    assert len(COMPILES) == before, "the repeated call compiled again"
    assert not np.allclose(again.deaths.values, got.deaths.values)
