"""Trade-embodied flows against explicit numpy computations and their identities."""

import dataclasses

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


def test_prepared_economy_and_units():
    """`eebt`/`sector_flows` take a prepared `Economy` (same numbers, no new factorisation for the flows) and say
    their units; the array kernels take numpy arrays."""
    m = make_mrio(R=3, N=2, K=2, p=2, seed=7)
    m = dataclasses.replace(m, units=("kt", "Mt"))
    eco = diffmrio.Economy.from_mrio(m)
    e_m, e_e = diffmrio.eebt(m), diffmrio.eebt(eco)
    np.testing.assert_allclose(e_e.values, e_m.values, rtol=1e-12)
    assert list(e_m.unit.values) == ["kt", "Mt"] and e_m.attrs["units"] == "<unit>"
    np.testing.assert_allclose(e_m.values, diffmrio.eebt_arrays(*(np.asarray(a) for a in (m.Z, m.Y, m.F)), 3),
                               rtol=1e-12)  # fmt: skip
    phi_m, phi_e = diffmrio.sector_flows(m, "q1"), diffmrio.sector_flows(eco, "q1")
    np.testing.assert_allclose(phi_e.values, phi_m.values, rtol=1e-12)
    assert phi_m.attrs["units"] == "Mt" and diffmrio.sector_flows(m, "q0").attrs["units"] == "kt"
    np.testing.assert_allclose(
        phi_m.values.reshape(6, 6), diffmrio.sector_flow_arrays(np.asarray(m.Z), np.asarray(m.Y), np.asarray(m.F))[1],
        rtol=1e-12,
    )
    one_unit = dataclasses.replace(m, units=("kt", "kt"))
    assert diffmrio.eebt(one_unit).attrs["units"] == "kt"


def test_sector_flows_refuses_a_list_of_stressors():
    """A list of stressors gets an error saying the function takes one and where the several-stressor kernel is (it
    was a KeyError saying the list is not in the MRIO)."""
    import pytest

    m = make_mrio(R=2, N=2, K=1, p=2, seed=8)
    f = getattr(diffmrio.sector_flows, "__wrapped__", diffmrio.sector_flows)  # past the test run's shape checker
    with pytest.raises(TypeError, match="one stressor name.*sector_flow_arrays"):
        f(m, ["q0", "q1"])
