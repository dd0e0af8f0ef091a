"""Random, well-posed MRIO systems with a realistic block structure (dense domestic blocks, thinner
trade blocks), used by the benchmarks and tests."""

from __future__ import annotations

import numpy as np


def random_system(n_regions: int, n_sectors: int, n_stressors: int, n_categories: int, seed: int = 0,
                  domestic_share: float = 0.8, input_share: float = 0.55, trade_density: float = 0.2):
    """Return `(Z, Y, F, F_Y)` float64 arrays of a productive table.

    Columns of `A` sum to about `input_share` (so rho(A) < 1); domestic blocks carry `domestic_share`
    of each column's inputs; a fraction `trade_density` of trade coefficients is non-zero.
    """
    rng = np.random.default_rng(seed)
    R, N = n_regions, n_sectors
    n = R * N
    A = rng.random((n, n), dtype=np.float64)
    region = np.repeat(np.arange(R), N)
    dom = region[:, None] == region[None, :]
    A *= np.where(dom, 1.0, rng.random((n, n)) < trade_density)
    # scale domestic vs imported inputs per column
    dsum = np.where(dom, A, 0).sum(axis=0)
    tsum = np.where(dom, 0, A).sum(axis=0)
    share = input_share * rng.uniform(0.6, 1.2, size=n)
    A = np.where(dom, A * (domestic_share * share / np.maximum(dsum, 1e-300))[None, :],
                 A * ((1 - domestic_share) * share / np.maximum(tsum, 1e-300))[None, :])
    x = rng.lognormal(mean=3.0, sigma=1.0, size=n)
    Z = A * x[None, :]
    y = x - Z.sum(axis=1)  # final demand that balances the table (positive since row sums are < 1 on average)
    y = np.maximum(y, 0.05 * x)
    x = Z.sum(axis=1) + y  # rebalance rows: Z fixed, x from the identity
    K = n_categories
    w = rng.dirichlet(np.ones(R * K), size=n)  # split each row's final demand over (region, category)
    # most final demand stays at home
    home = (np.arange(R * K) // K)[None, :] == region[:, None]
    w = w * np.where(home, 20.0, 1.0)
    w /= w.sum(axis=1, keepdims=True)
    Y = y[:, None] * w
    F = rng.lognormal(size=(n_stressors, n)) * x[None, :] * rng.uniform(0.1, 1.0, size=(n_stressors, 1))
    F_Y = rng.lognormal(size=(n_stressors, R * K)) * 0.01 * Y.sum(axis=0)[None, :]
    return Z, Y, F, F_Y
