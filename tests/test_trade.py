"""Trade-embodied flows against explicit numpy computations and their identities."""

import numpy as np
from _systems import make_mrio

import diffmrio


def test_eebt_identity_and_numpy_reference():
    m = make_mrio(R=4, N=3, K=2, p=2, seed=5)
    R, N = 4, 3
    Z, Y, F = (np.asarray(a) for a in (m.Z, m.Y, m.F))
    e = diffmrio.eebt(m).values
    # every region's emissions are fully allocated to its domestic final demand and its exports
    np.testing.assert_allclose(e.sum(axis=2), F.reshape(2, R, N).sum(axis=2), rtol=1e-10)
    x = Z.sum(1) + Y.sum(1)
    A = Z / x
    S = F / x
    for r in range(R):
        rr = slice(r * N, (r + 1) * N)
        Lloc = np.linalg.inv(np.eye(N) - A[rr, rr])
        for s in range(R):
            ss = slice(s * N, (s + 1) * N)
            fd = Y[rr, s * 2:(s + 1) * 2].sum(axis=1)
            ex = fd if r == s else Z[rr, ss].sum(axis=1) + fd
            np.testing.assert_allclose(e[:, r, s], S[:, rr] @ Lloc @ ex, rtol=1e-10)


def test_sector_flows_against_dense_formula():
    m = make_mrio(R=2, N=3, K=1, p=2, seed=6)
    Z, Y, F = (np.asarray(a) for a in (m.Z, m.Y, m.F))
    x = Z.sum(1) + Y.sum(1)
    L = np.linalg.inv(np.eye(6) - Z / x)
    want = np.diag(F[1] / x) @ L @ Z
    got = diffmrio.sector_flows(m, "q1").values.reshape(6, 6)
    np.testing.assert_allclose(got, want, rtol=1e-10)
    # row sums: Phi 1 = diag(s) L Z 1 = diag(s) L (x - y) = diag(s) (L x - x)
    np.testing.assert_allclose(got.sum(1), (F[1] / x) * (L @ x - x), rtol=1e-9)
