"""Small random MRIO systems for tests (shared by several test files)."""

from __future__ import annotations

import numpy as np

from diffmrio.datasets import random_mrio


def random_system(R, N, p, K, seed=0):
    """`(Z, Y, F, F_Y)` of `random_mrio(R, N, K, p, seed=seed)` (structure "blocks") as arrays."""
    return random_mrio(R, N, K, p, seed=seed, labelled=False)


def labels(R, N, K, p):
    return dict(
        regions=[f"r{i}" for i in range(R)], sectors=[f"s{i}" for i in range(N)],
        categories=[f"c{k}" for k in range(K)], stressors=[f"q{i}" for i in range(p)],
    )  # fmt: skip


def make_mrio(R=3, N=4, K=2, p=2, seed=0):
    return random_mrio(R, N, K, p, seed=seed)


def ceads_arrays(R, N, seed=0, *, other=False, imports=0.05):
    """The arrays of a CEADs-layout workbook (`diffmrio.tables._ceads.write_ceads_like`) from
    `random_mrio(R, N, 6, 0, seed=seed)`: its first five final-demand categories are the domestic ones, the sixth,
    summed over buyers, the producer's exports; with `other` a small signed "other" column. **Returns**
    `(Z, fd[n, R, 5], exports[n], other[n] or None, imports[n], va[4, n], x)`, `x` the row totals, imports a share
    `imports` of them and value added the rest of each column in four fixed parts."""
    n = R * N
    Z, Y, _, _ = random_mrio(R, N, 6, 0, seed=seed, labelled=False)
    Y = Y.reshape(n, R, 6)
    fd, ex = Y[:, :, :5], Y[:, :, 5].sum(1)
    oth = np.random.default_rng(seed).normal(0, 0.05, n) if other else None
    x = Z.sum(1) + fd.sum((1, 2)) + ex + (oth if other else 0)
    imp = imports * x
    va = np.array([0.5, 0.1, 0.15, 0.25])[:, None] * (x - Z.sum(0) - imp)[None, :]
    return Z, fd, ex, oth, imp, va, x


def to_pymrio(Z, Y, F, F_Y, R, N, K, p):
    import pandas as pd
    import pymrio

    lab = labels(R, N, K, p)
    rs = pd.MultiIndex.from_product([lab["regions"], lab["sectors"]], names=["region", "sector"])
    rc = pd.MultiIndex.from_product([lab["regions"], lab["categories"]], names=["region", "category"])
    st = pd.Index(lab["stressors"], name="stressor")
    io = pymrio.IOSystem(Z=pd.DataFrame(Z, index=rs, columns=rs), Y=pd.DataFrame(Y, index=rs, columns=rc))
    io.ext = pymrio.Extension(
        name="ext", F=pd.DataFrame(F, index=st, columns=rs), F_Y=pd.DataFrame(F_Y, index=st, columns=rc),
        unit=pd.DataFrame({"unit": ["kg"] * p}, index=st),
    )  # fmt: skip
    return io


__all__ = ["random_system", "labels", "make_mrio", "ceads_arrays", "to_pymrio", "np"]
