"""Monte Carlo through the demo chain: the JAX engine (vmap, chunks, all local devices) against a plain
NumPy loop over the same draws.

    python benchmarks/monte_carlo_vs_numpy.py [--quick] [--draws 10000] [--numpy-draws 200] [--cache DIR]

Reports the wall time of `diffmrio.monte_carlo` for `--draws` draws (first call, compilation included, and
a second call), the NumPy loop's time per draw (measured on `--numpy-draws` draws and extrapolated), the
throughput ratio, and the largest relative difference between the two on the draws both computed.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import equinox as eqx
import jax
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _numpy_chain import numpy_monte_carlo  # noqa: E402


def per_draw_inputs(chain, spec, key, n):
    import diffmrio

    base = chain.base_inputs()
    keys = jax.random.split(key, n)
    inp = eqx.filter_vmap(lambda k: diffmrio.sample_inputs(chain, spec, base, k))(keys)
    return np.asarray(inp.species_factor), np.asarray(inp.crf.theta), np.asarray(inp.baseline_factor)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--draws", type=int, default=10_000)
    ap.add_argument("--numpy-draws", type=int, default=200)
    ap.add_argument("--cache", default="demo_output/cache")
    a = ap.parse_args()
    import diffmrio
    from diffmrio.datasets import demo_chain, demo_config

    dc = demo_chain(**demo_config(a.quick), cache_dir=a.cache, progress=False)
    ch = dc.chain
    spec = diffmrio.UncertaintySpec.default(ch, sample_member=False)
    key = jax.random.key(11)
    t0 = time.perf_counter()
    mc = diffmrio.monte_carlo(ch, spec, a.draws, key=key, attribution_by=None, progress=False)
    t_first = time.perf_counter() - t0
    t0 = time.perf_counter()
    diffmrio.monte_carlo(ch, spec, a.draws, key=key, attribution_by=None, progress=False)
    t_second = time.perf_counter() - t0
    sf, theta, bf = per_draw_inputs(ch, spec, key, a.draws)
    k = min(a.numpy_draws, a.draws)
    t0 = time.perf_counter()
    d_np = numpy_monte_carlo(ch, sf[:k], theta[:k], bf[:k])
    t_np = (time.perf_counter() - t0) / k
    d_jax = mc.deaths.values[:k]
    res = {
        "machine": f"{platform.machine()} {os.cpu_count()} cores, jax {jax.__version__} on {jax.default_backend()}, "
                   f"{len(jax.devices())} device(s)",
        "config": "quick" if a.quick else "demo",
        "draws": a.draws,
        "jax_first_call_s": round(t_first, 2),
        "jax_second_call_s": round(t_second, 2),
        "numpy_s_per_draw": round(t_np, 5),
        "numpy_extrapolated_s": round(t_np * a.draws, 1),
        "throughput_ratio_first_call": round(t_np * a.draws / t_first, 1),
        "throughput_ratio_second_call": round(t_np * a.draws / t_second, 1),
        "max_rel_diff_jax_vs_numpy": float(np.max(np.abs(d_jax - d_np)) / np.max(np.abs(d_np))),
        "fraction_outside_envelope": mc.attrs.get("fraction_outside_envelope"),
    }
    print(json.dumps(res, indent=2))


if __name__ == "__main__":
    main()
