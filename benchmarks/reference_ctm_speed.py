"""Speed of the reference CTM on the default 48 x 36 grid (four seasons), and how nonlinear it is.

Run once: `.venv/bin/python benchmarks/reference_ctm_speed.py [--runs 200] [--batch N]`. Prints a table:

- forward: one annual run (four seasons) after compilation (best of `--repeat`);
- adjoint: value and gradient of population-weighted PM2.5 w.r.t. all emissions, and its ratio to a forward run;
- ensemble: `--runs` runs with per-(region, species) scaling factors in 0-2x (Latin hypercube), batched with
  `jax.vmap`, with a tqdm progress bar (runs per second);
- linear source-receptor check: a linear model in the 42 scaling factors fitted (least squares) on the first
  150 runs and scored on the rest, on population-weighted annual PM2.5 per demo region: NME and the maximum
  normalised error. The reference CTM is meant to be nonlinear enough that this fails NME <= 2 % / max <= 10 %.

Wall-clock times and the process CPU time are both reported: on a shared machine the wall time includes waiting
for the CPU.
"""

from __future__ import annotations

import argparse
import os
import platform
import time

import jax
import jax.numpy as jnp
import numpy as np

from ctm_interface.reference import (
    REGIONS,
    SPECIES,
    ReferenceCTM,
    demo_base_emissions,
    demo_domain,
    pm25_from_components,
    population_weighted_pm25,
)


def _timed(fn, repeat: int) -> tuple[float, float]:
    """Best wall time and the CPU time of that call (s)."""
    best = (np.inf, np.inf)
    for _ in range(repeat):
        w, c = time.perf_counter(), time.process_time()
        jax.block_until_ready(fn())
        best = min(best, (time.perf_counter() - w, time.process_time() - c))
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--batch", type=int, default=None, help="runs per vmapped call (default: 1 on CPU)")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--train", type=int, default=150)
    args = parser.parse_args()

    domain = demo_domain()
    ctm = ReferenceCTM.default()
    E_reg = np.asarray(demo_base_emissions(domain))
    E = domain.gridded_emissions(E_reg)

    def cost(C):
        return population_weighted_pm25(C, domain.population)

    rows = []
    t0 = time.perf_counter()
    jax.block_until_ready(ctm.run(E))
    rows.append(("forward: compile + first run", time.perf_counter() - t0, np.nan))
    fwd = _timed(lambda: ctm.run(E), args.repeat)
    rows.append(("forward: annual run (4 seasons)", *fwd))
    t0 = time.perf_counter()
    jax.block_until_ready(ctm.adjoint(cost, E))
    rows.append(("adjoint: compile + first run", time.perf_counter() - t0, np.nan))
    adj = _timed(lambda: ctm.adjoint(cost, E), args.repeat)
    rows.append(("adjoint: cost + dcost/dE", *adj))

    # Ensemble over per-(region, species) scaling factors in 0-2x (both release heights scaled together).
    from scipy.stats import qmc

    n = args.runs
    factors = qmc.LatinHypercube(d=len(SPECIES) * len(REGIONS), seed=1).random(n) * 2.0
    E_batch = jax.vmap(domain.gridded_emissions)(
        jnp.asarray(E_reg[None] * factors.reshape(n, len(SPECIES), len(REGIONS))[..., None])
    )
    batch = args.batch or (1 if jax.default_backend() == "cpu" else 32)
    jax.block_until_ready(ctm.run_ensemble(E_batch[:batch], batch_size=batch, progress=False))
    w, c = time.perf_counter(), time.process_time()
    C = np.asarray(ctm.run_ensemble(E_batch, batch_size=batch, progress=True))
    ens = (time.perf_counter() - w, time.process_time() - c)
    rows.append((f"ensemble: {n} runs (vmap, batch {batch})", *ens))

    print()
    print(f"reference CTM speed: {ctm.grid.ncols} x {ctm.grid.nrows} grid, {ctm.n_steps} steps x 4 seasons, "
          f"dt = {ctm.dt:.0f} s; jax {jax.__version__} ({jax.default_backend()}) on {platform.machine()}, "
          f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}")  # fmt: skip
    print(f"| {'what':40s} | {'wall (s)':>9s} | {'CPU (s)':>8s} |")
    print(f"|{'-' * 42}|{'-' * 11}|{'-' * 10}|")
    for name, wall, cpu in rows:
        print(f"| {name:40s} | {wall:9.3f} | {cpu:8.3f} |")
    print(f"adjoint / forward (wall): {adj[0] / fwd[0]:.2f}x; ensemble: {n / ens[0]:.2f} runs/s "
          f"({ens[0] / n:.3f} s per run)")  # fmt: skip

    # Linear source-receptor model in the scaling factors: fitted on the first runs, scored on the rest.
    pm = np.asarray(domain.region_mean(pm25_from_components(C)))  # (run, region), population-weighted
    X = np.c_[np.ones(n), factors]
    k = min(args.train, n - 1)
    coef, *_ = np.linalg.lstsq(X[:k], pm[:k], rcond=None)
    err = X[k:] @ coef - pm[k:]
    nme = np.abs(err).sum(0) / np.abs(pm[k:]).sum(0)
    mne = (np.abs(err) / pm[k:]).max(0)
    print(f"\nlinear source-receptor model (least squares on {k} runs, scored on {n - k}): annual population-weighted "
          "PM2.5 per region")  # fmt: skip
    print(f"| {'region':10s} | {'base PM2.5':>10s} | {'NME %':>6s} | {'max norm. err %':>15s} |")
    print(f"|{'-' * 12}|{'-' * 12}|{'-' * 8}|{'-' * 17}|")
    base = np.asarray(domain.region_mean(pm25_from_components(ctm.run(E))))
    for r, name in enumerate(REGIONS):
        print(f"| {name:10s} | {base[r]:10.1f} | {100 * nme[r]:6.2f} | {100 * mne[r]:15.1f} |")


if __name__ == "__main__":
    main()
