"""Cost of a full gradient of deaths through the chain, against one forward evaluation and against
central finite differences over the same entries.

    python benchmarks/chain_gradients.py [--quick] [--cache DIR]

Reports: forward time, gradient time (d deaths / d Y for every final-demand entry, one reverse pass) and
their ratio (target <= 5); the time finite differences would need for the same entries (2 forward
evaluations per entry, measured on a sample and extrapolated) and its ratio to the gradient (target >= 500);
and the agreement of the gradient with finite differences on the sampled entries.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np


def _time(f, *args, repeats=5):
    jax.block_until_ready(f(*args))  # compile
    best = np.inf
    for _ in range(repeats):
        t0 = time.perf_counter()
        jax.block_until_ready(f(*args))
        best = min(best, time.perf_counter() - t0)
    return best


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--cache", default="demo_output/cache")
    ap.add_argument("--fd-sample", type=int, default=20)
    a = ap.parse_args()
    from diffmrio.demo import demo_chain, demo_config

    dc = demo_chain(**demo_config(a.quick), cache_dir=a.cache, progress=False)
    ch = dc.chain
    import surrogate

    ch = eqx.tree_at(lambda c: c.emulator, ch, surrogate.with_envelope_policy(ch.emulator, "ignore"))
    inp = ch.base_inputs()

    @eqx.filter_jit
    def forward(Y):
        return ch.target(eqx.tree_at(lambda i: i.Y, inp, Y), "deaths")

    grad = eqx.filter_jit(jax.grad(lambda Y: forward(Y)))
    t_f = _time(forward, inp.Y)
    t_g = _time(grad, inp.Y)
    g = np.asarray(grad(inp.Y))
    n_entries = int(np.count_nonzero(np.asarray(inp.Y)))
    rng = np.random.default_rng(0)
    nz = np.argwhere(np.asarray(inp.Y) > 0)
    sample = nz[rng.choice(len(nz), size=min(a.fd_sample, len(nz)), replace=False)]
    t0 = time.perf_counter()
    errs = []
    for i, j in sample:
        h = 1e-4 * float(inp.Y[i, j])
        e = jnp.zeros_like(inp.Y).at[i, j].set(h)
        fd = (float(forward(inp.Y + e)) - float(forward(inp.Y - e))) / (2 * h)
        errs.append(abs(fd - g[i, j]) / max(abs(g).max(), 1e-300))
    t_fd_sample = time.perf_counter() - t0
    # conservative: two compiled forward evaluations per entry, no Python overhead counted
    t_fd_all = 2 * n_entries * t_f
    t_fd_loop = t_fd_sample / len(sample) * n_entries
    res = {
        "machine": f"{platform.machine()} {os.cpu_count()} cores, jax {jax.__version__} on {jax.default_backend()}",
        "config": "quick" if a.quick else "demo",
        "final_demand_entries": n_entries,
        "forward_s": round(t_f, 5),
        "gradient_s": round(t_g, 5),
        "gradient_over_forward": round(t_g / t_f, 2),
        "finite_differences_all_entries_s": round(t_fd_all, 2),
        "fd_over_gradient": round(t_fd_all / t_g, 0),
        "fd_python_loop_all_entries_s": round(t_fd_loop, 1),
        "max_fd_error_over_peak_gradient": float(max(errs)),
    }
    print(json.dumps(res, indent=2))


if __name__ == "__main__":
    main()
