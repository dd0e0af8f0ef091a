"""Time `diffmrio.tables.read_wiod` on the real WIOD 2011 table (1,435 country-industries), with the cheap
spectral-radius bound of the validation (`_validate._rho_upper_bound`, a few matrix-vector products) and with the
former path, which ran a full `np.linalg.eig` of `A` whenever a column of `A` sums to one or more (forced here by
making the bound give up). Both must accept the table with the same warnings and `MRIO.validation`.

The table has negative gross output from rounded inventory changes, so it is read with `clean=True`.
Usage: `python benchmarks/read_wiod_speed.py [path]` (default `../shared/data/wiod2013/wiot_2011.nc`, or under
`$DIFFMRIO_SHARED`). Numbers
depend on the machine and its load: quote them with the machine line printed first.
"""

from __future__ import annotations

import os
import platform
import sys
import time
import warnings
from pathlib import Path

import numpy as np

import diffmrio._validate as V
from diffmrio.tables import read_wiod

ROOT = Path(__file__).resolve().parents[1]


def timed(path):
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        t0 = time.perf_counter()
        m = read_wiod(path, clean=True)
        dt = time.perf_counter() - t0
    return dt, m, [str(w.message) for w in rec]


def main():
    shared = Path(os.environ.get("DIFFMRIO_SHARED") or ROOT.parent / "shared")  # as tests/conftest.py
    path = Path(sys.argv[1]) if len(sys.argv) > 1 else shared / "data" / "wiod2013" / "wiot_2011.nc"
    print(f"machine: {platform.machine()} {os.cpu_count()} cores, {platform.python_version()}, numpy {np.__version__}, "
          f"load average {os.getloadavg()[0]:.2f}")
    print(f"table: {path}")
    timed(path)  # warm-up (file cache, imports)
    t_new, m_new, w_new = timed(path)
    bound = V._rho_upper_bound
    V._rho_upper_bound = lambda A, target, iters=60: np.inf  # the former path: always the eigensolve
    try:
        t_old, m_old, w_old = timed(path)
    finally:
        V._rho_upper_bound = bound
    print(f"read_wiod(clean=True), cheap bound first: {t_new:.2f} s")
    print(f"read_wiod(clean=True), full eig (former): {t_old:.2f} s")
    print(f"speed-up: {t_old / t_new:.1f}x")
    same = m_new.validation == m_old.validation and len(w_new) == len(w_old)
    print(f"same validation and number of warnings: {same}")
    for a, b in zip(w_new, w_old):
        if a != b:
            print(f"  warning now:    ...{a[-160:]}\n  warning before: ...{b[-160:]}")


if __name__ == "__main__":
    main()
