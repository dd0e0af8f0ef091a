"""The whole chain at EXIOBASE scale: a 9,800-sector table (49 regions x 200 sectors, 7 final-demand
categories; random but well-posed, `_random_mrio.random_system`) chained to the demo emulator's six source
regions (each table region is allocated to one source) and the demo's GEMM health model.

    python benchmarks/chain_exiobase_scale.py [--regions 49 --sectors 200] [--draws 10000] [--quick]
                                              [--batch 250] [--budget 0.25] [--cache DIR] [--scaling-regions 24]

Reports, in a child process of its own (so that its peak memory is its own):

(a) one float64 LU factorisation of I - A: `Z` is read into one buffer, which `LeontiefFactor.from_flows(...,
    overwrite=True)` turns into I - A and then into its LU factors in place (LAPACK dgetrf); JAX reads the
    factors without a copy, and `A` is never formed as an array of its own;
(b) the full gradient d deaths / d Y over all n x fd entries (`diffmrio.chain._fastdraw.factored_gradient`: the
    chain's own stages after the Leontief solve, which is one solve and, in the reverse pass, one transposed solve
    with the factors of (a); equal to `diffmrio.chain.sensitivity`, tests/test_attribution_memory.py), as a ratio
    to (a);
(c) `--draws` Monte Carlo draws (inventory factors per CTM species, GEMM theta, baseline mortality, and a
    lognormal factor with a CV of 10% on every final-demand column) with zero-out attribution to every
    consumer region. I - A is factored once for all draws and groups: the economy is linear, so the output
    and emissions caused by each final-demand column are solved for once with that LU (fd right-hand sides,
    O(fd n^2)), and a draw combines them with its column factors (O(fd) per draw, dropping one consumer's
    columns per group) before the emulator and the health model. The per-draw time is also measured on a
    table of `--scaling-regions` regions (the same sectors) to show that it does not grow like n^3 (nor n^2).
    The draws run in chunks of at most `--batch` draws, fewer when the compiled chunk (XLA's memory analysis:
    arguments, outputs and temporaries, above all the health stage's [draw, scenario, curve, cell] arrays)
    would exceed `--budget` times the table's arrays: `diffmrio.chain.run_draws(..., memory_budget=...)`
    sizes them (the library's `plan_chunks`);
(d) the process's peak memory (VmHWM of the child, which starts fresh: the parent's peak is not inherited)
    against the table's own arrays (Z, Y, F, F_Y), with a trace of the resident memory after each step.
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


def _mark(step: str) -> None:
    """Record the resident memory now and the peak so far (GiB) after `step` (printed as `d_memory_trace`)."""
    TRACE.append((step, round(_peak_rss_gib("VmRSS"), 3), round(_peak_rss_gib("VmHWM"), 3)))


def _load_aligned(path: Path) -> np.ndarray:
    """A float64 .npy file read straight into a 64-byte-aligned buffer (no second copy; JAX can then wrap the
    buffer without copying it)."""
    from diffmrio.chain._fastdraw import aligned_empty

    with open(path, "rb") as fh:
        version = np.lib.format.read_magic(fh)
        read = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        shape, fortran, dtype = read(fh)
        if fortran or dtype != np.float64:
            raise ValueError(f"{path}: expected a C-ordered float64 array")
        out = aligned_empty(shape)
        view, done = memoryview(out.reshape(-1)).cast("B"), 0
        while done < out.nbytes:  # readinto may return fewer bytes than asked for
            got = fh.readinto(view[done:])
            if not got:
                raise ValueError(f"{path}: the file ends after {done} of {out.nbytes} bytes")
            done += got
    return out


def build_chain(folder: Path, R: int, N: int, K: int, quick: bool, cache: str):
    """The chain, its base inputs without `A` (a 0 x 0 placeholder) and the LU factors of I - A, formed and
    factored in place in the buffer `Z` was read into: the only n x n array the process holds afterwards."""
    import equinox as eqx
    import jax.numpy as jnp

    import diffmrio
    from diffmrio._accounts import final_demand_intensities, intensities
    from diffmrio.chain import ChainInputs
    from diffmrio.chain._fastdraw import LeontiefFactor
    from diffmrio.demo import demo_chain, demo_config

    demo = demo_chain(**demo_config(quick), cache_dir=cache, progress=False).chain
    _mark("demo chain loaded")
    Z = _load_aligned(folder / "Z.npy")
    Y, F, F_Y = (np.load(folder / f"{k}.npy") for k in ("Y", "F", "F_Y"))
    _mark("table loaded")
    table_bytes = sum(a.nbytes for a in (Z, Y, F, F_Y))
    x = Z.sum(axis=1) + Y.sum(axis=1)
    sectors = [f"sec{i}" for i in range(N)]
    # the MRIO shares Z's buffer (numpy leaves, no copy)
    m = diffmrio.MRIO.from_arrays(Z, Y, F, F_Y, regions=[f"reg{r}" for r in range(R)], sectors=sectors,
                                  categories=[f"cat{k}" for k in range(K)], stressors=list(STRESSORS),
                                  validate=False)
    sources = demo.source_map.sources
    region_source = np.zeros((R, len(sources)))
    region_source[np.arange(R), np.arange(R) % len(sources)] = 1.0
    sm = diffmrio.chain.SourceMap.for_mrio(m, elevated_sectors=sectors[:4], sources=sources, region_source=region_source)
    chain = diffmrio.chain.Chain(m, sm, demo.emulator, jnp.ones((len(sm.species), len(sources), 2)), demo.health,
                                 downscaler=demo.downscaler)
    # Chain.base_inputs without A (it would form A = Z / x as a second n x n array)
    emu = chain.emulator
    k = int(emu.n_members)
    inp = ChainInputs(Y=jnp.asarray(Y), S=jnp.asarray(intensities(F, x)), S_Y=jnp.asarray(final_demand_intensities(F_Y, Y)),
                      A=jnp.zeros((0, 0)), species_factor=jnp.ones(len(sm.species)),
                      baseline_factor=jnp.ones(len(chain.health.inputs.causes)), crf=chain.health.crf,
                      member_weights=jnp.full((k,), 1.0 / k) if k > 1 else None)
    # the emulator's reference emissions are the base case's: from the table's own gross output, which the
    # Leontief solve reproduces
    E_ref = eqx.filter_jit(chain.emissions_from_totals)(inp, jnp.asarray(x), inp.Y.sum(axis=0))
    # from here on the chain needs the LU factors of I - A, not Z: the MRIO gives Z's buffer up
    chain = eqx.tree_at(lambda c: (c.emissions_ref, c.mrio.Z), chain, (E_ref, np.zeros((0, 0))))
    del m
    _mark("chain built (Z shared, no A)")
    Z.flags.writeable = True  # the MRIO that froze it is gone; this process owns the buffer
    t0 = time.perf_counter()
    factor = LeontiefFactor.from_flows(Z, x, overwrite=True)  # (a): I - A formed and LU-factored in Z's buffer
    lu_s = time.perf_counter() - t0
    zero_copy = factor.lu_t.unsafe_buffer_pointer() == Z.ctypes.data
    del Z
    _mark("(a) I - A factored in place")
    return chain, inp, factor, table_bytes, lu_s, zero_copy


def mc_draws(chain, inp, factor, n_draws: int, batch: int, budget_bytes: float, fd_cv: float = 0.1):
    """Draws with attribution to consumer regions; one LU for all draws and groups. The draws run in chunks
    of at most `batch`, fewer when the compiled chunk (XLA's memory analysis: its arguments, outputs and
    temporaries, above all the per-draw `[scenario, curve, cell]` health arrays) would exceed `budget_bytes`:
    the library's own sizing (`diffmrio.chain.plan_chunks`, as `run_draws(..., memory_budget=...)` does it).
    Returns (seconds for the draws after compilation, setup seconds for the column responses,
    attribution[draw, group], deaths[draw], the chunk size, the compiled chunk's memory in bytes)."""
    import equinox as eqx
    import jax
    import jax.numpy as jnp

    import diffmrio
    from diffmrio.chain import plan_chunks, run_draws
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
    def column_emissions(factor, Y):
        X = factor.solve(Y)  # output caused by each final-demand column, [n, fd]: fd solves with the one LU
        ones = eqx.tree_at(lambda i: i.species_factor, inp, jnp.ones_like(inp.species_factor))
        cols = jnp.eye(fd, dtype=Y.dtype) * Y.sum(axis=0)[None, :]  # column totals of each single column
        return jax.lax.map(lambda j: chain.emissions_from_totals(ones, X[:, j], cols[j]), jnp.arange(fd))

    Ecol = jax.block_until_ready(column_emissions(factor, inp.Y))  # [fd, species, source, level]
    _mark("(c) setup: fd solves with the LU")
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
        return {"total": deaths.sum(), "attribution": deaths.sum() - without}

    # the library sizes the chunks (XLA's memory analysis of the compiled chunk under the budget; compiles it)
    devices = jax.devices()[:1]
    plan = plan_chunks(draw, n_draws, key=jax.random.key(0), chunk_size=batch, memory_budget=int(budget_bytes),
                       devices=devices)
    _mark(f"(c) draws compiled, chunks of {plan.chunk_size}")
    t0 = time.perf_counter()
    out = run_draws(draw, n_draws, key=jax.random.key(0), chunk_size=plan.chunk_size, devices=devices,
                    progress=False)
    t = time.perf_counter() - t0
    _mark("(c) draws")
    return t, setup, out["attribution"], out["total"], plan.chunk_size, plan.chunk_bytes


def child(folder: Path, R: int, N: int, K: int, draws: int, batch: int, budget: float, quick: bool,
          cache: str) -> None:
    import jax

    jax.config.update("jax_enable_x64", True)
    from diffmrio.chain._fastdraw import factored_gradient

    rss0 = _peak_rss_gib()
    chain, inp, factor, table_bytes, lu_s, zero_copy = build_chain(folder, R, N, K, quick, cache)
    out = {"n": R * N, "fd": R * K, "table_GiB": table_bytes / 2**30, "lu_s": lu_s, "factor_zero_copy": zero_copy}
    jax.block_until_ready(factored_gradient(chain, inp, factor))  # compile
    t0 = time.perf_counter()
    g = jax.block_until_ready(factored_gradient(chain, inp, factor))
    out["gradient_s"] = time.perf_counter() - t0
    _mark("(b) gradient")
    out["gradient_entries"] = int(g.size)
    out["gradient_finite"] = bool(np.all(np.isfinite(np.asarray(g))))
    if draws:
        t, setup, attr, tot, chunk, chunk_bytes = mc_draws(chain, inp, factor, draws, batch, budget * table_bytes)
        out.update(mc_draws=draws, mc_s=t, mc_ms_per_draw=1e3 * t / draws, mc_setup_s=setup,
                   mc_groups=int(attr.shape[1]), total_deaths_mean=float(tot.mean()),
                   attribution_mean_sum=float(attr.mean(0).sum()), mc_chunk=chunk,
                   mc_chunk_GiB=chunk_bytes / 2**30)
    out["peak_GiB"] = _peak_rss_gib()
    out["runtime_GiB_before_table"] = rss0
    out["memory_trace"] = TRACE
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
               "--categories", str(K), "--draws", str(draws), "--batch", str(a.batch), "--budget", str(a.budget), "--cache", a.cache]
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
    ap.add_argument("--batch", type=int, default=250, help="the most draws per chunk")
    ap.add_argument("--budget", type=float, default=0.25,
                    help="a chunk's working set at most this fraction of the table's own arrays (sets the chunk size)")
    ap.add_argument("--scaling-regions", type=int, default=24, help="a second, smaller table for the per-draw scaling")
    ap.add_argument("--quick", action="store_true", help="the quick demo chain's emulator and health grid")
    ap.add_argument("--cache", default="demo_output/cache")
    ap.add_argument("--child", type=Path, default=None)
    a = ap.parse_args()
    if a.child is not None:
        child(a.child, a.regions, a.sectors, a.categories, a.draws, a.batch, a.budget, a.quick, a.cache)
        return
    big = run_size(a.regions, a.sectors, a.categories, a, a.draws)
    small = run_size(a.scaling_regions, a.sectors, a.categories, a, min(a.draws, 2 * a.batch)) if a.scaling_regions else None
    res = {
        "machine": f"{platform.machine()} {os.cpu_count()} cores, load average at the end "
                   f"{[round(v, 1) for v in os.getloadavg()]}",
        "table": f"{a.regions} regions x {a.sectors} sectors = {big['n']}, fd = {big['fd']}",
        "health": "quick demo grid" if a.quick else "full demo grid",
        "a_lu_s (I - A formed and factored in place, LAPACK dgetrf)": round(big["lu_s"], 2),
        "a_factor_read_by_jax_without_a_copy": big["factor_zero_copy"],
        "b_gradient_s (forward solve + transposed solve with the factors of (a))": round(big["gradient_s"], 2),
        "b_gradient_over_lu": round(big["gradient_s"] / big["lu_s"], 2),
        "b_gradient_entries": big["gradient_entries"],
        "d_table_GiB": round(big["table_GiB"], 3),
        "d_peak_GiB": round(big["peak_GiB"], 3),
        "d_peak_over_table": round(big["peak_GiB"] / big["table_GiB"], 2),
        "d_runtime_GiB_before_loading": round(big["runtime_GiB_before_table"], 3),
        "d_memory_trace (step, VmRSS GiB, VmHWM GiB)": big["memory_trace"],
        "d_budget_for_a_chunk_of_draws (fraction of the table's arrays)": a.budget,
    }
    if a.draws:
        res.update({
            "c_draws": big["mc_draws"], "c_groups": big["mc_groups"],
            "c_draws_s": round(big["mc_s"], 2),
            "c_ms_per_draw": round(big["mc_ms_per_draw"], 3),
            "c_setup_s (fd right-hand sides with the LU of (a))": round(big["mc_setup_s"], 2),
            "c_draws_per_chunk (from the budget)": big["mc_chunk"],
            "c_chunk_GiB (XLA memory analysis: arguments + outputs + temporaries)": round(big["mc_chunk_GiB"], 3),
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
