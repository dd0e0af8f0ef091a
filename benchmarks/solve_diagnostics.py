"""Cost of the solve diagnostics of the host path (issue 18): the LAPACK `gecon` condition estimate, the norms of
I - A and the float64 backward error of X, against the LU solve they describe.

    PYTHONPATH=$PWD python benchmarks/solve_diagnostics.py [n_regions n_sectors]

Prints the wall time of `host_leontief_solves(precision="double")` and of each diagnostic on its own (best of 3).
"""

from __future__ import annotations

import sys
import time

import numpy as np
from _random_mrio import random_system

from diffmrio._host_solve import (
    _backward_error,
    _Factors,
    _i_minus_a,
    _i_minus_a_norms,
    _inverse_output,
    host_leontief_solves,
)


def best(f, reps=3):
    out = []
    for _ in range(reps):
        t = time.perf_counter()
        f()
        out.append(time.perf_counter() - t)
    return min(out)


def main(R=20, N=100):
    Z, Y, F, _ = random_system(R, N, 5, 4, seed=0)
    x = Z.sum(1) + Y.sum(1)
    d = _inverse_output(x)
    B = np.concatenate([Y.reshape(R * N, R, 4).sum(2)] * 2, axis=1)  # 2 R right-hand sides, as in accounts
    C = np.repeat(F / x[None, :], R, axis=0)  # p R left-hand sides
    n = R * N
    t_all = best(lambda: host_leontief_solves(Z, x, B, C, precision="double"))
    # the norms are summed in the same pass over Z that forms I - A: their cost is what that pass takes extra
    t_norms = max(best(lambda: _i_minus_a_norms(Z, d, np.float64)) - best(lambda: _i_minus_a(Z, d, np.float64)), 0.0)
    M, (anorm, _) = _i_minus_a_norms(Z, d, np.float64)
    f = _Factors(M)
    t_gecon = best(lambda: f.cond(anorm))
    X = f.right(B)
    t_be = best(lambda: _backward_error(Z, d, B, X, 1.0))
    print(f"n = {n} ({R} regions x {N} sectors), {B.shape[1]} + {C.shape[0]} right-hand sides")
    print(f"host_leontief_solves(precision='double'), diagnostics included: {t_all:.3f} s")
    print(f"  norms of I - A (extra time of the pass forming it): {t_norms:.3f} s; gecon: {t_gecon:.3f} s; "
          f"backward error of X: {t_be:.3f} s ({(t_norms + t_gecon + t_be) / t_all:.1%} of the total)")


if __name__ == "__main__":
    main(*(int(a) for a in sys.argv[1:3]))
