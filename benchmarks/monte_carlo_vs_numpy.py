"""Monte Carlo through the demo chain: the JAX engine (vmap, chunks, all local devices) against a plain
NumPy loop over the same draws.

    python benchmarks/monte_carlo_vs_numpy.py [--quick] [--draws 10000] [--numpy-draws 200] [--repeat 3]
                                              [--batch 1024] [--cache DIR]

Reports the wall time of `diffmrio.chain.monte_carlo` for `--draws` draws (first call, compilation included, and
later calls), the NumPy loop's time per draw (measured on `--numpy-draws` draws and extrapolated), the
throughput ratio, and the largest relative difference between the two on the draws both computed.

Then a roofline of one draw: each stage (sampling, economy, emulator, downscaler + PM2.5, health) is jitted
and vmapped over a batch of draws on its own; XLA's cost analysis of the compiled stage counts its floating-
point operations and transcendental evaluations, the stage is timed (median of repeats), and its rates are
compared with the machine's peak measured in the same run (all in CPU seconds of this process, so that
other work on a shared machine does not count) (a float64 matmul for flop/s; `exp` over a large
float64 array for transcendentals/s; both measured before and after the stages, the larger kept). The draw
before the restructuring (the whole chain per draw: Leontief solve, per-age relative risks on the full grid)
and the draw with one GEMM shape function per curve (no sharing of `g(z)` between a cause's age groups) are
timed the same way for comparison.

The JAX / NumPy ratio is measured `--repeat` times in interleaved pairs (a JAX call for all draws, then the
NumPy loop on `--numpy-draws`), so that a change of load hits both sides of each ratio; min / median / max
are printed with the load average.
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
    inp = eqx.filter_vmap(lambda k: diffmrio.chain.sample_inputs(chain, spec, base, k))(keys)
    return np.asarray(inp.species_factor), np.asarray(inp.crf.theta), np.asarray(inp.baseline_factor)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--draws", type=int, default=10_000)
    ap.add_argument("--numpy-draws", type=int, default=200)
    ap.add_argument("--repeat", type=int, default=3,
                    help="interleaved (JAX, NumPy) timing pairs after the first call; the ratio is reported per pair")
    ap.add_argument("--cache", default="demo_output/cache")
    ap.add_argument("--batch", type=int, default=1024, help="draws per batch in the per-stage roofline")
    ap.add_argument("--no-roofline", action="store_true")
    a = ap.parse_args()
    import diffmrio
    from diffmrio.demo import demo_chain, demo_config

    dc = demo_chain(**demo_config(a.quick), cache_dir=a.cache, progress=False)
    ch = dc.chain
    spec = diffmrio.chain.UncertaintySpec.default(ch, sample_member=False)
    key = jax.random.key(11)
    load0 = os.getloadavg()
    t0 = time.perf_counter()
    mc = diffmrio.chain.monte_carlo(ch, spec, a.draws, key=key, by=None, progress=False)
    t_first = time.perf_counter() - t0
    sf, theta, bf = per_draw_inputs(ch, spec, key, a.draws)
    k = min(a.numpy_draws, a.draws)
    d_np = numpy_monte_carlo(ch, sf[:k], theta[:k], bf[:k])  # also warms the NumPy path
    # interleaved pairs: a change of load hits both sides of each ratio
    pairs = []
    for _ in range(max(1, a.repeat)):
        t0, c0 = time.perf_counter(), time.process_time()
        diffmrio.chain.monte_carlo(ch, spec, a.draws, key=key, by=None, progress=False)
        t_jax, c_jax = time.perf_counter() - t0, time.process_time() - c0
        t0, c0 = time.perf_counter(), time.process_time()
        numpy_monte_carlo(ch, sf[:k], theta[:k], bf[:k])
        t_np, c_np = (time.perf_counter() - t0) / k, (time.process_time() - c0) / k
        pairs.append((t_jax, t_np, t_np * a.draws / t_jax, c_np * a.draws / c_jax))
    ratios = [p[2] for p in pairs]
    cpu_ratios = [p[3] for p in pairs]
    d_jax = mc.deaths.values[:k]
    res = {
        "machine": f"{platform.machine()} {os.cpu_count()} cores, jax {jax.__version__} on {jax.default_backend()}, "
                   f"{len(jax.devices())} device(s)",
        "load_average_at_start": [round(v, 1) for v in load0],
        "config": "quick" if a.quick else "demo",
        "draws": a.draws,
        "jax_first_call_s": round(t_first, 2),
        "pairs (jax_s for all draws, numpy_s_per_draw, wall ratio, cpu ratio)": [
            [round(p[0], 2), round(p[1], 5), round(p[2], 2), round(p[3], 2)] for p in pairs],
        "numpy_draws_per_pair": k,
        "throughput_ratio_jax_over_numpy_min_median_max": [round(min(ratios), 2), round(float(np.median(ratios)), 2),
                                                           round(max(ratios), 2)],
        "cpu_time_ratio_numpy_over_jax_min_median_max": [round(min(cpu_ratios), 2),
                                                         round(float(np.median(cpu_ratios)), 2), round(max(cpu_ratios), 2)],
        "throughput_ratio_first_call_vs_median_numpy": round(float(np.median([p[1] for p in pairs])) * a.draws / t_first, 2),
        "max_rel_diff_jax_vs_numpy": float(np.max(np.abs(d_jax - d_np)) / np.max(np.abs(d_np))),
        "fraction_outside_envelope": mc.attrs.get("fraction_outside_envelope"),
    }
    spec_t = diffmrio.chain.UncertaintySpec.default(ch, sample_member=False, within_envelope=True)
    mc_t = diffmrio.chain.monte_carlo(ch, spec_t, a.draws, key=key, by=None, progress=False)
    res["fraction_outside_envelope_truncated_sampling"] = mc_t.attrs.get("fraction_outside_envelope")
    res["species_factor_bounds"] = mc_t.attrs.get("species_factor_bounds")
    if not a.no_roofline:
        res["roofline"] = roofline(ch, spec, key, a.batch)
    res["load_average_at_end"] = [round(v, 1) for v in os.getloadavg()]
    print(json.dumps(res, indent=2))


def _timed(fn, *args, repeats=5):
    """Median CPU seconds (all threads of this process) of a call: on a machine shared with other work this
    counts the cycles the call used, not the time it waited for a core (`time.process_time`)."""
    jax.block_until_ready(fn(*args))
    ts = []
    for _ in range(repeats):
        t0 = time.process_time()
        jax.block_until_ready(fn(*args))
        ts.append(time.process_time() - t0)
    return float(np.median(ts))


def _cost(fn, *args):
    ca = fn.lower(*args).compile().cost_analysis()
    ca = ca[0] if isinstance(ca, list) else ca
    return float(ca.get("flops", 0.0)), float(ca.get("transcendentals", 0.0))


def peaks():
    """Machine peaks measured here: float64 matmul flop/s and float64 `exp` evaluations/s."""
    import jax.numpy as jnp

    n = 1536
    A = jax.random.normal(jax.random.key(0), (n, n), dtype=jnp.float64)
    mm = jax.jit(lambda a: a @ a)
    t_mm = _timed(mm, A)
    x = jax.random.uniform(jax.random.key(1), (4_000_000,), dtype=jnp.float64)
    ex = jax.jit(jnp.exp)
    t_ex = _timed(ex, x)
    return 2.0 * n**3 / t_mm, x.size / t_ex


def roofline(ch, spec, key, batch):
    """Per-stage flops, transcendentals, time and fraction of the measured peaks, per draw."""
    import jax.numpy as jnp

    import diffmrio
    from diffmrio.chain._fastdraw import ChainDraw

    d = ChainDraw.build(ch, spec, None)
    keys = jax.random.split(key, batch)
    base = d.base
    stages, times, counts = {}, {}, {}
    sample = jax.jit(jax.vmap(lambda k: diffmrio.chain.sample_inputs(ch, spec, base, k)))
    inps = sample(keys)
    emu_in = jax.jit(jax.vmap(lambda sf: d.E0[0] * sf[:, None, None]))
    E = emu_in(inps.species_factor)

    def emulate(e):
        xin = ch.emulator_input(e)
        return ch.emulator(xin)

    emu = jax.jit(jax.vmap(emulate))
    y = emu(E)

    def downscale(yy):
        yb = ch.emulator.base
        ratio = jnp.where(yb != 0, yy / jnp.where(yb != 0, yb, 1.0), 1.0) - 1.0
        return d.pm.base_pm + ratio.reshape(-1) @ d.pm.B

    down = jax.jit(jax.vmap(downscale))
    pm = down(y)
    health = jax.jit(jax.vmap(lambda p, crf, bf: (d.health.deaths(p, crf, bf), d.health.pwpm(p))))
    # the previous kernel: shared curves, but every curve evaluates its own GEMM shape function
    hk = d.health
    per_curve = eqx.tree_at(lambda dd: dd.health, d, type(hk)(
        hk.weight, hk.region_weight, hk.pop_region, hk.pop_total, hk.cells, hk.cause, hk.age, None, hk.n_causes))
    health_pc = jax.jit(jax.vmap(lambda p, crf, bf: (per_curve.health.deaths(p, crf, bf), per_curve.health.pwpm(p))))
    full_pc = jax.jit(jax.vmap(per_curve))
    econ_old = jax.jit(jax.vmap(lambda inp: ch.emissions(inp)))

    def health_old_fn(inp, yy):
        C = ch.downscaler(yy, ch.emulator.base) if ch.downscaler is not None else yy
        p = ch.pm25(C)
        return ch.deaths(p, inp).sum(axis=1), ch.health.population_weighted_concentration(p)

    health_old = jax.jit(jax.vmap(health_old_fn))
    full_new = jax.jit(jax.vmap(d))

    def old_draw(k):
        inp = diffmrio.chain.sample_inputs(ch, spec, base, k)
        out = ch(inp)
        return {"deaths": out.deaths.sum(axis=1), "pwpm": out.pwpm}

    full_old = jax.jit(jax.vmap(old_draw))
    plan = {
        "sampling": (sample, (keys,)),
        "economy (hoisted: base emissions x inventory factors)": (emu_in, (inps.species_factor,)),
        "economy before (Leontief solve + source map per draw)": (econ_old, (inps,)),
        "emulator": (emu, (E,)),
        "downscaler + PM2.5 (fused)": (down, (y,)),
        "health (shared curves and GEMM shapes, populated cells)": (health, (pm, inps.crf, inps.baseline_factor)),
        "health (shared curves, one GEMM shape per curve)": (health_pc, (pm, inps.crf, inps.baseline_factor)),
        "downscaler + health before (per age, whole grid)": (health_old, (inps, y)),
        "whole draw": (full_new, (keys,)),
        "whole draw, one GEMM shape per curve": (full_pc, (keys,)),
        "whole draw before": (full_old, (keys,)),
    }
    peak_flops, peak_tr = peaks()
    for name, (fn, args) in plan.items():
        jax.block_until_ready(fn(*args))  # compile all before the timings
    for name, (fn, args) in plan.items():
        fl, tr = _cost(fn, *args)
        t = _timed(fn, *args)
        times[name] = t
        counts[name] = (fl, tr)
    pf2, pt2 = peaks()  # the peaks again after the stages: the larger of the two is used (load changes)
    peak_flops, peak_tr = max(peak_flops, pf2), max(peak_tr, pt2)
    for name in plan:
        t, (fl, tr) = times[name], counts[name]
        stages[name] = {
            "cpu_us_per_draw": round(1e6 * t / batch, 2),
            "flops_per_draw": round(fl / batch),
            "transcendentals_per_draw": round(tr / batch),
            "fraction_of_peak_flops": round(fl / t / peak_flops, 4),
            "fraction_of_peak_transcendentals": round(tr / t / peak_tr, 4),
        }
    k = d.health
    return {
        "batch": batch,
        "timing": "CPU seconds of this process (time.process_time), median of 5 calls",
        "peak_matmul_gflop_per_cpu_s": round(peak_flops / 1e9, 2),
        "peak_exp_1e9_per_cpu_s": round(peak_tr / 1e9, 3),
        "health_curves": int(k.weight.shape[0]),
        "cause_age_pairs": int(len(ch.health.crf.causes) * len(ch.health.crf.ages)),
        "health_gemm_shapes": None if k.shape_curve is None else int(k.shape_curve.shape[0]),
        "health_cells_kept": int(k.weight.shape[1]),
        "grid_cells": int(np.prod(ch.health.inputs.population.shape)),
        "stages": stages,
        "speedup_whole_draw_vs_before": round(stages["whole draw before"]["cpu_us_per_draw"]
                                              / stages["whole draw"]["cpu_us_per_draw"], 2),
        "speedup_whole_draw_vs_one_shape_per_curve": round(
            stages["whole draw, one GEMM shape per curve"]["cpu_us_per_draw"] / stages["whole draw"]["cpu_us_per_draw"], 2),
        "roofline_fraction_whole_draw (binding resource)": max(stages["whole draw"]["fraction_of_peak_flops"],
                                                               stages["whole draw"]["fraction_of_peak_transcendentals"]),
    }


if __name__ == "__main__":
    main()
