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


__all__ = ["random_system", "labels", "make_mrio", "to_pymrio", "np"]
