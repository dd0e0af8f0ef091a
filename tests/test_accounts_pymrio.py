"""Every account against pymrio 0.7 (the peer), on pymrio's test system and on random systems."""

import numpy as np
import pytest
from _systems import labels, random_system, to_pymrio

import diffmrio

pymrio = pytest.importorskip("pymrio")

SECTOR_KEYS = ["S", "M", "D_cba", "D_pba", "D_imp", "D_exp"]
REG_KEYS = ["D_cba_reg", "D_pba_reg", "D_imp_reg", "D_exp_reg"]


def _compare_extension(acc, ext, mrio, rtol=1e-9):
    for key in SECTOR_KEYS + REG_KEYS + (["M_down"] if "M_down" in acc else []):
        ref = getattr(ext, key)
        for row in ref.index:
            label = "/".join(row) if isinstance(row, tuple) else str(row)
            if label not in mrio.stressors:
                label = f"{ext.name}:{label}"
            got = acc[key].sel(stressor=label).values.reshape(-1)
            want = ref.loc[row].to_numpy().reshape(-1)
            np.testing.assert_allclose(got, want, rtol=rtol, atol=1e-12 * np.abs(want).max(), err_msg=key)


@pytest.mark.parametrize("backend", ["jax", "host"])
def test_pymrio_test_system_all_accounts(backend):
    io = pymrio.load_test()
    io.calc_all(include_ghosh=True)
    m = diffmrio.MRIO.from_pymrio(io)
    acc = diffmrio.accounts(m, ghosh=True, leontief=True, backend=backend)
    R, N = m.n_regions, m.n_sectors
    np.testing.assert_allclose(acc.x.values.reshape(-1), io.x.to_numpy().reshape(-1), rtol=1e-12)
    np.testing.assert_allclose(acc.A.values.reshape(R * N, -1), io.A.to_numpy(), rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(acc.L.values.reshape(R * N, -1), io.L.to_numpy(), rtol=1e-9)
    np.testing.assert_allclose(acc.G.values.reshape(R * N, -1), io.G.to_numpy(), rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(acc.B.values.reshape(R * N, -1), io.B.to_numpy(), rtol=1e-12, atol=1e-15)
    for ename in io.get_extensions():
        _compare_extension(acc, getattr(io, ename), m)


@pytest.mark.parametrize("backend,precision", [("jax", "mixed"), ("host", "mixed"), ("host", "double")])
@pytest.mark.parametrize("R,N,K,p,seed", [(2, 3, 1, 1, 0), (4, 5, 3, 2, 1), (7, 6, 4, 3, 2), (3, 11, 2, 4, 3)])
def test_random_systems_match_pymrio(R, N, K, p, seed, backend, precision):
    Z, Y, F, F_Y = random_system(R, N, p, K, seed=seed)
    io = to_pymrio(Z, Y, F, F_Y, R, N, K, p)
    io.calc_all(include_ghosh=True)
    m = diffmrio.MRIO.from_arrays(Z, Y, F, F_Y, **labels(R, N, K, p), units=["kg"] * p)
    acc = diffmrio.accounts(m, ghosh=True, backend=backend, precision=precision)
    _compare_extension(acc, io.ext, m)
    if backend == "host" and precision == "mixed":
        assert "float32 LU" in acc.attrs["solver"] and "refinement" in acc.attrs["solver"]


def test_identities_and_totals():
    Z, Y, F, F_Y = random_system(5, 4, 3, 3, seed=7)
    m = diffmrio.MRIO.from_arrays(Z, Y, F, F_Y, **labels(5, 4, 3, 3))
    acc = diffmrio.accounts(m)
    lhs = acc.D_cba_reg
    rhs = acc.D_pba_reg + acc.D_imp_reg - acc.D_exp_reg
    np.testing.assert_allclose(lhs, rhs, rtol=1e-12)
    np.testing.assert_allclose(acc.D_cba_reg.sum("region"), acc.D_pba_reg.sum("region"), rtol=1e-12)
    # production-based industry emissions are F itself (x from L y equals x from the table)
    np.testing.assert_allclose(acc.D_pba.values.reshape(3, -1), F, rtol=1e-10)
    # burden matrix: rows sum to industry emissions of the region, columns to its footprint without F_Y
    np.testing.assert_allclose(acc.burden.sum("consumer"), acc.D_pba.sum("sector"), rtol=1e-10)
    np.testing.assert_allclose(acc.burden.sum("region").values, acc.D_cba.sum("sector").values, rtol=1e-10)
    np.testing.assert_allclose(acc.final_producer.sum("producer"), acc.D_pba.sum("sector"), rtol=1e-10)


@pytest.mark.parametrize("backend", ["jax", "host"])
def test_category_subset_keeps_coefficients(backend):
    """Accounts for a subset of final demand (pymrio's Y_agg) keep x, A, S of the full table."""
    R, N, K, p = 3, 4, 3, 2
    Z, Y, F, F_Y = random_system(R, N, p, K, seed=4)
    m = diffmrio.MRIO.from_arrays(Z, Y, F, F_Y, **labels(R, N, K, p))
    full = diffmrio.accounts(m, backend=backend)
    sub = diffmrio.accounts(m, categories=("c0", "c2"), backend=backend)
    np.testing.assert_allclose(sub.S, full.S)
    # independent: S L y_sub with L formed by numpy
    x = Z.sum(1) + Y.sum(1)
    L = np.linalg.inv(np.eye(R * N) - Z / x)
    keep = np.array([k in (0, 2) for _ in range(R) for k in range(K)])
    ysub = Y[:, keep].sum(axis=1)
    want = (F / x) @ L @ ysub
    got = sub.D_cba.sum(("region", "sector")).values
    np.testing.assert_allclose(got, want, rtol=1e-10)


@pytest.mark.parametrize("backend", ["jax", "host"])
def test_table_without_stressors(backend):
    """An economy-only table (no satellite accounts) still gets x, A and empty stressor accounts."""
    Z, Y, _, _ = random_system(3, 4, 1, 2, seed=8)
    lab = labels(3, 4, 2, 1)
    lab["stressors"] = []
    m = diffmrio.MRIO.from_arrays(Z, Y, **lab)
    acc = diffmrio.accounts(m, backend=backend)
    np.testing.assert_allclose(acc.x.values.reshape(-1), Z.sum(1) + Y.sum(1), rtol=1e-14)
    assert acc.D_cba.shape == (0, 3, 4) and acc.S_Y.shape == (0, 3, 2) and acc.burden.shape == (0, 3, 3)
