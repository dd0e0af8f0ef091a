"""Concordances, proportional splitting and aggregation: totals preserved to 1e-12, values against explicit
numpy constructions (Kronecker products, loops), and aggregation of an MRIO."""

import importlib.util

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from diffmrio.tables._concordance import (
    aggregate_arrays,
    aggregate_mrio,
    aggregation_matrix,
    apply_concordance,
    check_concordance,
    concordance_matrix,
    link_tables,
    split_concordance,
    split_sector,
)

RTOL = 1e-12


def test_concordance_matrix_binary_and_weighted():
    C = concordance_matrix(
        ["a", "b", "c", "d"], ["X", "Y", "Z"], {"a": "X", "b": "X", "c": {"Y": 1.0, "Z": 3.0}, "d": "Z"}
    )
    expected = np.array([[1, 0, 0], [1, 0, 0], [0, 0.25, 0.75], [0, 0, 1]])
    np.testing.assert_array_equal(C, expected)
    with pytest.raises(ValueError, match="no entry for source labels \\['d'\\]"):
        concordance_matrix(["a", "d"], ["X"], {"a": "X"})
    with pytest.raises(ValueError, match="not in `target_labels`"):
        concordance_matrix(["a"], ["X"], {"a": "Q"})


def test_check_concordance_rejects_bad_rows():
    with pytest.raises(ValueError, match=r"Rows \[1\] .* sum to \[0\.5\]"):
        check_concordance([[1.0, 0.0], [0.5, 0.0]])
    with pytest.raises(ValueError, match="binary"):
        check_concordance([[0.5, 0.5], [0.0, 1.0]], binary=True)
    with pytest.raises(ValueError, match="non-negative"):
        check_concordance([[1.5, -0.5]])
    check_concordance([[0.5, 0.5], [0.0, 1.0]])


def test_aggregation_matrix_dict_and_sequence():
    G, new = aggregation_matrix(["A", "B", "C"], {"A": "AB", "B": "AB"})
    assert new == ("AB", "C")
    np.testing.assert_array_equal(G, [[1, 0], [1, 0], [0, 1]])
    G2, new2 = aggregation_matrix(["A", "B", "C"], ["x", "y", "x"])
    assert new2 == ("x", "y")
    np.testing.assert_array_equal(G2, [[1, 0], [0, 1], [1, 0]])
    with pytest.raises(ValueError, match="not among"):
        aggregation_matrix(["A"], {"Q": "x"})


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_apply_concordance_preserves_totals(seed):
    rng = np.random.default_rng(seed)
    X = rng.lognormal(size=(7, 9)) * 1e6
    Cr = rng.random((7, 4))
    Cr /= Cr.sum(1, keepdims=True)
    Cc, _ = aggregation_matrix(list("abcdefghi"), list("xxyyzzxyz"))
    out = np.asarray(apply_concordance(X, Cr, Cc))
    assert out.shape == (4, 3)
    np.testing.assert_allclose(out.sum(), X.sum(), rtol=RTOL)
    np.testing.assert_allclose(out.sum(0), X.sum(0) @ Cc, rtol=RTOL)
    np.testing.assert_allclose(out, Cr.T @ X @ Cc, rtol=RTOL)
    v = rng.random(7)
    np.testing.assert_allclose(np.asarray(apply_concordance(v, Cr)).sum(), v.sum(), rtol=RTOL)
    with pytest.raises(ValueError, match="9 columns"):
        apply_concordance(X, None, Cr)


def test_split_sector_by_output_shares():
    rng = np.random.default_rng(3)
    n, idx = 5, 2
    Z = rng.random((n, n)) * 100
    out_sub = np.array([30.0, 50.0, 20.0])  # outputs O_s of the sub-sectors
    sh = out_sub / out_sub.sum()
    Zs = np.asarray(split_sector(Z, idx, out_sub))
    assert Zs.shape == (n + 2, n + 2)
    new_of_old = {0: [0], 1: [1], 2: [2, 3, 4], 3: [5], 4: [6]}  # positions after the split
    # explicit V_s = V * O_s / O_total, entry by entry
    for i in range(n):
        for j in range(n):
            for a, ia in enumerate(new_of_old[i]):
                for b, jb in enumerate(new_of_old[j]):
                    f = (sh[a] if i == idx else 1.0) * (sh[b] if j == idx else 1.0)
                    assert Zs[ia, jb] == pytest.approx(Z[i, j] * f, rel=1e-14)
    np.testing.assert_allclose(Zs.sum(), Z.sum(), rtol=RTOL)
    # aggregating the split sectors back recovers the original table exactly
    G, _ = aggregation_matrix(list("abcdefg"), ["a", "b", "c", "c", "c", "d", "e"])
    np.testing.assert_allclose(np.asarray(apply_concordance(Zs, G, G)), Z, rtol=RTOL)
    # rows only (final demand), columns only (satellite)
    Y = rng.random((n, 3))
    Ys = np.asarray(split_sector(Y, idx, out_sub, axes=(0,)))
    np.testing.assert_allclose(Ys[2:5], np.outer(sh, Y[2]), rtol=1e-14)
    np.testing.assert_allclose(Ys.sum(0), Y.sum(0), rtol=RTOL)
    F = rng.random((2, n))
    Fs = np.asarray(split_sector(F, idx, out_sub, axes=(1,)))
    np.testing.assert_allclose(Fs[:, 2:5], np.outer(F[:, 2], sh), rtol=1e-14)
    with pytest.raises(ValueError, match="positive sum"):
        split_concordance(3, 0, [0.0, 0.0])


def _kron_aggregate(Z, Y, F, FY, GR, GS, K):
    Kn = np.kron(GR, GS)
    Kc = np.kron(GR, np.eye(K))
    return Kn.T @ Z @ Kn, Kn.T @ Y @ Kc, F @ Kn, FY @ Kc


@pytest.mark.parametrize("seed", [0, 1])
def test_aggregate_arrays_matches_kronecker_form(seed):
    rng = np.random.default_rng(seed)
    R, N, K, p = 4, 5, 3, 2
    n = R * N
    Z, Y = rng.random((n, n)), rng.random((n, R * K))
    F, FY = rng.random((p, n)), rng.random((p, R * K))
    GR, _ = aggregation_matrix(list("ABCD"), ["A", "B", "A", "C"])
    GS, _ = aggregation_matrix(list("vwxyz"), ["v", "v", "x", "x", "x"])
    got = aggregate_arrays(Z, Y, F, FY, n_regions=R, n_sectors=N, region_matrix=GR, sector_matrix=GS)
    ref = _kron_aggregate(Z, Y, F, FY, GR, GS, K)
    for g, r in zip(got, ref):
        np.testing.assert_allclose(np.asarray(g), r, rtol=RTOL)
    Z2, Y2, F2, FY2 = (np.asarray(a) for a in got)
    x = Z.sum(1) + Y.sum(1)
    x2 = Z2.sum(1) + Y2.sum(1)
    np.testing.assert_allclose(x2, np.kron(GR, GS).T @ x, rtol=RTOL)
    np.testing.assert_allclose(F2.sum(1), F.sum(1), rtol=RTOL)
    np.testing.assert_allclose(FY2.sum(1), FY.sum(1), rtol=RTOL)
    np.testing.assert_allclose(Y2.sum(), Y.sum(), rtol=RTOL)
    # only one axis aggregated
    Zr = aggregate_arrays(Z, Y, F, FY, n_regions=R, n_sectors=N, region_matrix=GR)[0]
    np.testing.assert_allclose(np.asarray(Zr), _kron_aggregate(Z, Y, F, FY, GR, np.eye(N), K)[0], rtol=RTOL)
    with pytest.raises(ValueError, match="do not fit"):
        aggregate_arrays(Z, Y, F, FY, n_regions=3, n_sectors=N)


def test_aggregation_is_differentiable():
    rng = np.random.default_rng(4)
    R, N = 2, 3
    Z, Y, F, FY = rng.random((6, 6)), rng.random((6, 4)), rng.random((1, 6)), rng.random((1, 4))
    GS, _ = aggregation_matrix(list("abc"), ["a", "a", "c"])

    def total(Z):
        return aggregate_arrays(Z, Y, F, FY, n_regions=R, n_sectors=N, sector_matrix=GS)[0].sum()

    g = jax.grad(total)(jnp.asarray(Z))
    np.testing.assert_allclose(np.asarray(g), np.ones((6, 6)), rtol=1e-14)


def test_link_tables_maps_and_rebalances():
    rng = np.random.default_rng(5)
    X = rng.random((6, 6)) * 10
    # split sector 1 into two and aggregate sectors 4 and 5: target classification of size 6
    D = split_concordance(6, 1, [2.0, 1.0])
    G, _ = aggregation_matrix(list("abcdefg"), ["a", "b", "c", "d", "e", "f", "f"])
    C = D @ G
    target = np.asarray(apply_concordance(X, C, C)) * rng.uniform(0.8, 1.2, (6, 6))
    Xl, rep = link_tables(X, target.sum(1), target.sum(0), row_concordance=C, col_concordance=C)
    assert rep.converged
    np.testing.assert_allclose(Xl.sum(1), target.sum(1), rtol=1e-8)
    np.testing.assert_allclose(Xl.sum(0), target.sum(0), rtol=1e-8)
    with pytest.raises(ValueError, match="'ras' or 'gras'"):
        link_tables(X, X.sum(1), X.sum(0), method="ipf")


@pytest.mark.skipif(
    importlib.util.find_spec("diffmrio._mrio") is None, reason="diffmrio._mrio not written yet"
)
def test_aggregate_mrio():
    from diffmrio.datasets import random_mrio

    regions, sectors, cats = ("Capital", "Harbor", "Steppe"), ("agriculture", "power", "services"), ("h", "g")
    mrio = random_mrio(3, 3, 2, 2, seed=6, regions=regions, sectors=sectors, categories=cats, stressors=("SO2", "CO2"),
                       units=("kt", "Mt"))  # fmt: skip
    Z, Y, F, FY = (np.asarray(v) for v in (mrio.Z, mrio.Y, mrio.F, mrio.F_Y))
    assert np.abs(FY).sum() > 0  # the final-demand stressors are aggregated too
    agg = aggregate_mrio(
        mrio, region_map={"Capital": "Coast", "Harbor": "Coast"}, sector_map=["agri", "ind", "ind"]
    )
    assert agg.regions == ("Coast", "Steppe") and agg.sectors == ("agri", "ind")
    assert agg.categories == cats and agg.stressors == ("SO2", "CO2") and agg.units == ("kt", "Mt")
    GR, _ = aggregation_matrix(regions, ["c", "c", "s"])
    GS, _ = aggregation_matrix(sectors, ["a", "i", "i"])
    ref = _kron_aggregate(Z, Y, F, FY, GR, GS, 2)
    for got, r in zip((agg.Z, agg.Y, agg.F, agg.F_Y), ref):
        np.testing.assert_allclose(np.asarray(got), r, rtol=RTOL)
    np.testing.assert_allclose(float(agg.Z.sum() + agg.Y.sum()), Z.sum() + Y.sum(), rtol=RTOL)
    same = aggregate_mrio(mrio)
    np.testing.assert_array_equal(np.asarray(same.Z), Z)
