"""Small random MRIO systems for tests (shared by several test files)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from _random_mrio import random_system  # noqa: E402


def labels(R, N, K, p):
    return dict(
        regions=[f"r{i}" for i in range(R)], sectors=[f"s{i}" for i in range(N)],
        categories=[f"c{k}" for k in range(K)], stressors=[f"q{i}" for i in range(p)],
    )  # fmt: skip


def make_mrio(R=3, N=4, K=2, p=2, seed=0):
    import diffmrio

    Z, Y, F, F_Y = random_system(R, N, p, K, seed=seed)
    return diffmrio.MRIO.from_arrays(Z, Y, F, F_Y, **labels(R, N, K, p), units=["kg"] * p)


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
