"""The whole chain at EXIOBASE scale: a 9,800-sector table (49 regions x 200 sectors, 7 final-demand
categories; random but well-posed, `_random_mrio.random_system`) chained to the demo emulator's six source
regions (each table region is allocated to one source) and the demo's GEMM health model.

    python benchmarks/chain_exiobase_scale.py [--regions 49 --sectors 200] [--draws 10000] [--quick]
                                              [--cache DIR] [--scaling-regions 24]

Reports, in a child process of its own (so that its peak memory is its own):

(a) one LU factorisation of I - A (jitted JAX, float64);
(b) the full gradient d deaths / d Y over all n x fd entries (`diffmrio.chain.sensitivity`, one reverse pass; the
    Leontief solve's VJP reuses the forward pass's LU factors), as a ratio to (a);
(c) `--draws` Monte Carlo draws (inventory factors per CTM species, GEMM theta, baseline mortality, and a
    lognormal factor with a CV of 10% on every final-demand column) with zero-out attribution to every
    consumer region. I - A is factored once for all draws and groups: the economy is linear, so the output
    and emissions caused by each final-demand column are solved for once with that LU (fd right-hand sides,
    O(fd n^2)), and a draw combines them with its column factors (O(fd) per draw, dropping one consumer's
    columns per group) before the emulator and the health model. The per-draw time is also measured on a
    table of `--scaling-regions` regions (the same sectors) to show that it does not grow like n^3 (nor n^2);
(d) the process's peak memory (VmHWM) against the table's own arrays (Z, Y, F, F_Y).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
STRESSORS = ("SO2", "NOx", "NH3", "VOC", "PM2.5", "BC", "OC")


def _peak_rss_gib(field: str = "VmHWM") -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 2**20
    return float("nan")


TRACE: list = []
LU_BUFFERS: list = []


def _mark(step: str) -> None:
    """Record the resident memory now and the peak so far (GiB) after `step` (printed as `d_memory_trace`)."""
    TRACE.append((step, round(_peak_rss_gib("VmRSS"), 3), round(_peak_rss_gib("VmHWM"), 3)))


def build_chain(folder: Path, R: int, N: int, K: int, quick: bool, cache: str):
    import equinox as eqx
    import jax.numpy as jnp

    import diffmrio
    from diffmrio.demo import demo_chain, demo_config

    demo = demo_chain(**demo_config(quick), cache_dir=cache, progress=False).chain
    _mark("demo chain loaded")
    Z, Y, F, F_Y = (np.load(folder / f"{k}.npy") for k in ("Z", "Y", "F", "F_Y"))
    _mark("table loaded")
    table_bytes = sum(a.nbytes for a in (Z, Y, F, F_Y))
    sectors = [f"sec{i}" for i in range(N)]
    m = diffmrio.MRIO.from_arrays(Z, Y, F, F_Y, regions=[f"reg{r}" for r in range(R)], sectors=sectors,
                                  categories=[f"cat{k}" for k in range(K)], stressors=list(STRESSORS),
                                  validate=False)
    del Z, Y, F, F_Y
    _mark("MRIO built")
    sources = demo.source_map.sources
    region_source = np.zeros((R, len(sources)))
    region_source[np.arange(R), np.arange(R) % len(sources)] = 1.0
    sm = diffmrio.chain.SourceMap.for_mrio(m, elevated_sectors=sectors[:4], sources=sources, region_source=region_source)
    chain = diffmrio.chain.Chain(m, sm, demo.emulator, jnp.ones((len(sm.species), len(sources), 2)), demo.health,
                           downscaler=demo.downscaler)
    # A in one jitted pass (eagerly, Z / x and the `where` would each hold an n x n temporary)
    inp = eqx.filter_jit(lambda c: c.base_inputs())(chain)
    _mark("base inputs (A)")
    # the emulator's reference emissions are the base case's: from the table's own gross output, which the
    # Leontief solve would reproduce (no LU needed here)
    x_table = jnp.asarray(m.Z.sum(axis=1) + m.Y.sum(axis=1))
    E_ref = eqx.filter_jit(chain.emissions_from_totals)(inp, x_table, inp.Y.sum(axis=0))
    # the chain needs A, not Z, from here on: drop Z (keeps the peak near the table's own size)
    chain = eqx.tree_at(lambda c: (c.emissions_ref, c.mrio.Z), chain, (E_ref, jnp.zeros((0, 0))))
    del m
    _mark("reference emissions, Z dropped")
    return chain, inp, table_bytes


def lu_time(A):
    import jax
    import jax.numpy as jnp
    import jax.scipy.linalg as jsl

    f = jax.jit(lambda a: jsl.lu_factor(jnp.eye(a.shape[0], dtype=a.dtype) - a))
    ma = f.lower(A).compile().memory_analysis()  # XLA's buffers besides the operand A, in n x n float64 units
    LU_BUFFERS.append(round((ma.temp_size_in_bytes + ma.output_size_in_bytes) / (A.shape[0] ** 2 * 8), 2))
    t0 = time.perf_counter()
    jax.block_until_ready(f(A))
    first = time.perf_counter() - t0
    t0 = time.perf_counter()
    jax.block_until_ready(f(A))
    return time.perf_counter() - t0, first


def mc_draws(chain, inp, n_draws: int, batch: int, fd_cv: float = 0.1):
    """Draws with attribution to consumer regions; one LU for all draws and groups. Returns (seconds for the
    draws after compilation, setup seconds for the column responses, attribution[draw, group], deaths[draw])."""
    import equinox as eqx
    import jax
    import jax.numpy as jnp
    import jax.scipy.linalg as jsl

    import diffmrio
    from diffmrio.chain._fastdraw import HealthKernel, PM25Map, crf_structure
    from diffmrio.chain._montecarlo import lognormal_factor

    emu = chain.emulator
    if hasattr(emu, "envelope"):
        from surrogate import with_envelope_policy

        chain = eqx.tree_at(lambda c: c.emulator, chain, with_envelope_policy(emu, "ignore"))
    spec = diffmrio.chain.UncertaintySpec.default(chain)
    groups = diffmrio.chain.group_index(chain, "consumer")
    kernel = HealthKernel.build(chain.health, crf_structure(spec, inp.crf))
    pmap = PM25Map.build(chain, kernel)
    n, fd = inp.Y.shape
    t0 = time.perf_counter()

    @jax.jit
    def column_emissions(A, Y):
        lu = jsl.lu_factor(jnp.eye(n, dtype=A.dtype) - A)  # the one factorisation
        X = jsl.lu_solve(lu, Y)  # output caused by each final-demand column, [n, fd]
        ones = eqx.tree_at(lambda i: i.species_factor, inp, jnp.ones_like(inp.species_factor))
        cols = jnp.eye(fd, dtype=A.dtype) * Y.sum(axis=0)[None, :]  # column totals of each single column
        return jax.lax.map(lambda j: chain.emissions_from_totals(ones, X[:, j], cols[j]), jnp.arange(fd))

    Ecol = jax.block_until_ready(column_emissions(inp.A, inp.Y))  # [fd, species, source, level]
    _mark("(c) setup: LU + fd solves")
    setup = time.perf_counter() - t0
    member = (jnp.arange(groups.n_groups)[:, None] == groups.ids[None, :]).astype(inp.Y.dtype)  # [G, fd]: small

    def draw(key):
        k1, k2 = jax.random.split(key)
        d = diffmrio.chain.sample_inputs(chain, spec, inp, k1)
        f = lognormal_factor(k2, fd_cv, (fd,))
        E = jnp.einsum("c,cklo->klo", f, Ecol)
        Eg = E[None] - jnp.einsum("gc,c,cklo->gklo", member, f, Ecol)  # without each consumer region
        Es = jnp.concatenate([E[None], Eg]) * d.species_factor[None, :, None, None]
        pm = jax.vmap(lambda e: pmap(chain, e, d.member_weights))(Es)
        deaths = kernel.deaths(pm[0], d.crf, d.baseline_factor)
        without = jax.vmap(lambda p: kernel.total(p, d.crf, d.baseline_factor))(pm[1:])
        return deaths.sum(), deaths.sum() - without

    run = jax.jit(jax.vmap(draw))
    keys = jax.random.split(jax.random.key(0), n_draws)
    jax.block_until_ready(run(keys[:batch]))  # compile
    t0 = time.perf_counter()
    tot, attr = [], []
    for s in range(0, n_draws, batch):
        k = keys[s:s + batch]
        if k.shape[0] < batch:
            k = jnp.concatenate([k, jnp.broadcast_to(k[-1:], (batch - k.shape[0],) + k.shape[1:])])
        a, b = run(k)
        tot.append(np.asarray(a))
        attr.append(np.asarray(b))
    t = time.perf_counter() - t0
    _mark("(c) draws")
    return t, setup, np.concatenate(attr)[:n_draws], np.concatenate(tot)[:n_draws]


def child(folder: Path, R: int, N: int, K: int, draws: int, batch: int, quick: bool, cache: str) -> None:
    import jax

    jax.config.update("jax_enable_x64", True)
    import diffmrio

    rss0 = _peak_rss_gib()
    chain, inp, table_bytes = build_chain(folder, R, N, K, quick, cache)
    out = {"n": R * N, "fd": R * K, "table_GiB": table_bytes / 2**30}
    out["lu_s"], out["lu_first_call_s"] = lu_time(inp.A)
    _mark("(a) LU timed")
    diffmrio.chain.sensitivity(chain, inp, wrt="final_demand")  # compile
    t0 = time.perf_counter()
    g = diffmrio.chain.sensitivity(chain, inp, wrt="final_demand")
    out["gradient_s"] = time.perf_counter() - t0
    _mark("(b) gradient")
    out["gradient_entries"] = int(g.size)
    out["gradient_finite"] = bool(np.all(np.isfinite(g.values)))
    if draws:
        t, setup, attr, tot = mc_draws(chain, inp, draws, batch)
        out.update(mc_draws=draws, mc_s=t, mc_ms_per_draw=1e3 * t / draws, mc_setup_s=setup,
                   mc_groups=int(attr.shape[1]), total_deaths_mean=float(tot.mean()),
                   attribution_mean_sum=float(attr.mean(0).sum()))
    out["peak_GiB"] = _peak_rss_gib()
    out["runtime_GiB_before_table"] = rss0
    out["memory_trace"] = TRACE
    out["lu_nxn_buffers"] = LU_BUFFERS[0]
    (folder / "result.json").write_text(json.dumps(out))


def run_size(R, N, K, a, draws):
    sys.path.insert(0, str(HERE))
    from _random_mrio import random_system

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        Z, Y, F, F_Y = random_system(R, N, len(STRESSORS), K, seed=0)
        for nm, arr in (("Z", Z), ("Y", Y), ("F", F), ("F_Y", F_Y)):
            np.save(folder / f"{nm}.npy", arr)
        del Z, Y, F, F_Y
        cmd = [sys.executable, __file__, "--child", str(folder), "--regions", str(R), "--sectors", str(N),
               "--categories", str(K), "--draws", str(draws), "--batch", str(a.batch), "--cache", a.cache]
        if a.quick:
            cmd.append("--quick")
        subprocess.run(cmd, check=True)
        return json.loads((folder / "result.json").read_text())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--regions", type=int, default=49)
    ap.add_argument("--sectors", type=int, default=200)
    ap.add_argument("--categories", type=int, default=7)
    ap.add_argument("--draws", type=int, default=10_000)
    ap.add_argument("--batch", type=int, default=250)
    ap.add_argument("--scaling-regions", type=int, default=24, help="a second, smaller table for the per-draw scaling")
    ap.add_argument("--quick", action="store_true", help="the quick demo chain's emulator and health grid")
    ap.add_argument("--cache", default="demo_output/cache")
    ap.add_argument("--child", type=Path, default=None)
    a = ap.parse_args()
    if a.child is not None:
        child(a.child, a.regions, a.sectors, a.categories, a.draws, a.batch, a.quick, a.cache)
        return
    big = run_size(a.regions, a.sectors, a.categories, a, a.draws)
    small = run_size(a.scaling_regions, a.sectors, a.categories, a, min(a.draws, 2 * a.batch)) if a.scaling_regions else None
    res = {
        "machine": f"{platform.machine()} {os.cpu_count()} cores, load average at the end "
                   f"{[round(v, 1) for v in os.getloadavg()]}",
        "table": f"{a.regions} regions x {a.sectors} sectors = {big['n']}, fd = {big['fd']}",
        "health": "quick demo grid" if a.quick else "full demo grid",
        "a_lu_s": round(big["lu_s"], 2),
        "b_gradient_s": round(big["gradient_s"], 2),
        "b_gradient_over_lu": round(big["gradient_s"] / big["lu_s"], 2),
        "b_gradient_entries": big["gradient_entries"],
        "d_table_GiB": round(big["table_GiB"], 3),
        "d_peak_GiB": round(big["peak_GiB"], 3),
        "d_peak_over_table": round(big["peak_GiB"] / big["table_GiB"], 2),
        "d_runtime_GiB_before_loading": round(big["runtime_GiB_before_table"], 3),
        "d_memory_trace (step, VmRSS GiB, VmHWM GiB)": big["memory_trace"],
        "d_lu_buffers_besides_A (n x n float64, XLA memory analysis of the jitted LU)": big["lu_nxn_buffers"],
    }
    if a.draws:
        res.update({
            "c_draws": big["mc_draws"], "c_groups": big["mc_groups"],
            "c_draws_s": round(big["mc_s"], 2),
            "c_ms_per_draw": round(big["mc_ms_per_draw"], 3),
            "c_setup_s (one LU + fd right-hand sides)": round(big["mc_setup_s"], 2),
            "c_extrapolated_10000_draws_s": round(big["mc_ms_per_draw"] * 10, 1),
        })
        if small is not None:
            res["c_scaling"] = {
                "n_small": small["n"], "ms_per_draw_small": round(small["mc_ms_per_draw"], 3),
                "n_large": big["n"], "ms_per_draw_large": round(big["mc_ms_per_draw"], 3),
                "per_draw_ratio": round(big["mc_ms_per_draw"] / small["mc_ms_per_draw"], 2),
                "n_ratio": round(big["n"] / small["n"], 2),
                "lu_ratio": round(big["lu_s"] / small["lu_s"], 2),
            }
    print(json.dumps(res, indent=2))


if __name__ == "__main__":
    main()
