"""Speed of the structural path analysis (diffmrio.supply_chain.structural_paths) on synthetic tables of real sizes.

Two cases (run once each; numbers depend on the machine, so say which one when you quote them):

1. a CEADs-sized provincial table, 31 regions x 42 sectors = 1,302 (dense input, multipliers by the LU-based
   Leontief solve): the top 1,000 paths (target: under 10 s);
2. an EXIOBASE-sized table, 49 regions x 200 products = 9,800 (sparse input, multipliers by the Neumann
   series): every path above 1e-5, 1e-6 and 1e-7 of the footprint, and the top 1,000 (target: under 2 minutes).

The tables are random but shaped like real ones: each column buys from a random subset of domestic sectors
(most of its inputs) and of foreign region-sectors, with heavy-tailed (log-normal) coefficients, column sums
between 0.45 and 0.75 (spectral radius about 0.6), heavy-tailed intensities and final demand.

Usage: `python benchmarks/spa_speed.py [--skip-large]`.
"""

from __future__ import annotations

import argparse
import platform
import time

import numpy as np
import scipy.sparse as sp

import diffmrio  # noqa: F401  (enables float64)
from diffmrio.supply_chain._spa import _multipliers, structural_paths


def make_table(R: int, N: int, dom: int, foreign: int, seed: int = 0):
    """A sparse `A` (CSC, `dom` domestic and `foreign` imported inputs per column, column sums 0.45-0.75), intensities
    `s` and final demand `y`. Not `diffmrio.datasets.random_mrio`, the generator of the other benchmarks and the
    tests: that one draws a dense table, 0.8 GB at 9,800 region-sectors, and SPA needs only the sparse `A`."""
    rng = np.random.default_rng(seed)
    n = R * N
    cols = np.arange(n)
    region = cols // N
    rows_d = region[:, None] * N + rng.integers(0, N, (n, dom))
    rows_f = rng.integers(0, n, (n, foreign))
    vals_d = rng.lognormal(0.0, 1.5, (n, dom))
    vals_f = rng.lognormal(0.0, 1.5, (n, foreign))
    colsum = rng.uniform(0.45, 0.75, n)
    vals_d *= (0.75 * colsum / vals_d.sum(1))[:, None]
    vals_f *= (0.25 * colsum / vals_f.sum(1))[:, None]
    rows = np.concatenate([rows_d, rows_f], axis=1).ravel()
    vals = np.concatenate([vals_d, vals_f], axis=1).ravel()
    A = sp.csc_matrix((vals, (rows, np.repeat(cols, dom + foreign))), shape=(n, n))
    A.sum_duplicates()
    s = rng.lognormal(0.0, 2.0, n) * (rng.random(n) < 0.9)
    y = rng.lognormal(0.0, 1.5, n)
    return A, s, y


def spectral_radius(A, iters: int = 200) -> float:
    v = np.ones(A.shape[0])
    lam = 0.0
    for _ in range(iters):
        w = A @ v
        lam = np.linalg.norm(w) / np.linalg.norm(v)
        v = w / np.linalg.norm(w)
    return float(lam)


def report(name, res, t_m, t_spa):
    cov = res.values.sum() / res.total
    print(f"{name}: {res.values.size} paths, coverage {cov:.1%} of the footprint, deepest path "
          f"{int(res.depth.max())} steps, nodes kept per depth {list(res.nodes_per_depth)}")
    print(f"    multipliers {t_m:.2f} s, search {t_spa:.2f} s, total {t_m + t_spa:.2f} s")


def main(skip_large: bool = False) -> None:
    print(f"machine: {platform.processor() or platform.machine()}, numpy {np.__version__}")
    # --- case 1: 31 x 42 -------------------------------------------------------------------------------
    A, s, y = make_table(31, 42, dom=30, foreign=200, seed=1)
    print(f"\n[1] 31 x 42 = {A.shape[0]} region-sectors, {A.nnz / A.shape[0] ** 2:.0%} non-zero, "
          f"rho(A) = {spectral_radius(A):.3f}")
    Ad = A.toarray()
    t0 = time.perf_counter()
    M = _multipliers(Ad, s)
    t1 = time.perf_counter()
    res = structural_paths(Ad, s, y, k=1000, M=M)
    t2 = time.perf_counter()
    report("    top 1,000", res, t1 - t0, t2 - t1)
    if skip_large:
        return
    # --- case 2: 49 x 200 ------------------------------------------------------------------------------
    A, s, y = make_table(49, 200, dom=100, foreign=900, seed=2)
    print(f"\n[2] 49 x 200 = {A.shape[0]} region-sectors, {A.nnz / A.shape[0] ** 2:.1%} non-zero "
          f"({A.nnz:,} coefficients), rho(A) = {spectral_radius(A):.3f}")
    t0 = time.perf_counter()
    M = _multipliers(A, s)
    t1 = time.perf_counter()
    res = structural_paths(A, s, y, k=None, tol=1e-5, M=M)
    t2 = time.perf_counter()
    report("    all paths > 1e-5 of the total", res, t1 - t0, t2 - t1)
    t1 = time.perf_counter()
    res = structural_paths(A, s, y, k=None, tol=1e-6, M=M)
    t2 = time.perf_counter()
    report("    all paths > 1e-6 of the total", res, 0.0, t2 - t1)
    t1 = time.perf_counter()
    res = structural_paths(A, s, y, k=None, tol=1e-7, M=M)
    t2 = time.perf_counter()
    report("    all paths > 1e-7 of the total", res, 0.0, t2 - t1)
    t1 = time.perf_counter()
    res = structural_paths(A, s, y, k=1000, M=M)
    t2 = time.perf_counter()
    report("    top 1,000", res, 0.0, t2 - t1)


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--skip-large", action="store_true", help="only the 1,302-sector case")
    main(**vars(ap.parse_args()))
