"""Structural path analysis vs brute-force enumeration, and the pruning claim."""

import itertools

import numpy as np
import pytest
import scipy.sparse as sp

from diffmrio.datasets import random_mrio
from diffmrio.supply_chain._spa import structural_path_analysis, structural_paths


def brute_force(A, s, y, max_depth):
    """Every path i0 <- ... <- iT with T <= max_depth, by enumeration: [(value, path)]."""
    n = s.size
    out = []
    for d in range(max_depth + 1):
        for p in itertools.product(range(n), repeat=d + 1):
            v = y[p[0]]
            for a, b in zip(p[:-1], p[1:]):
                v *= A[b, a]
            out.append((v * s[p[-1]], p))
    out.sort(key=lambda t: -abs(t[0]))
    return out


def small_system(seed, n=5, neg=False):
    rng = np.random.default_rng(seed)
    A = rng.uniform(0, 1, (n, n)) * (rng.random((n, n)) < 0.7)
    A *= 0.6 / np.abs(np.linalg.eigvals(A)).max()
    s = rng.uniform(0, 1, n) * (rng.random(n) < 0.8)
    y = rng.uniform(0, 1, n)
    if neg:
        y[0] = -0.5  # e.g. inventory drawdown
    return A, s, y


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
@pytest.mark.parametrize("neg", [False, True])
def test_top_k_matches_brute_force(seed, neg):
    A, s, y = small_system(seed, neg=neg)
    bf = brute_force(A, s, y, 4)
    k = 25
    res = structural_paths(A, s, y, k=k, max_depth=4)
    assert res.values.size == k
    np.testing.assert_allclose(res.values, [v for v, _ in bf[:k]], rtol=1e-12)
    for i in range(k):
        got = tuple(int(v) for v in res.paths[i, : res.depth[i] + 1])
        tied = [p for v, p in bf if np.isclose(abs(v), abs(res.values[i]), rtol=1e-12)]
        assert got in tied
    L = np.linalg.inv(np.eye(5) - A)
    np.testing.assert_allclose(res.total, s @ L @ y, rtol=1e-12)
    np.testing.assert_allclose(res.total_abs, np.abs(s) @ L @ np.abs(y), rtol=1e-12)


@pytest.mark.parametrize("seed", [4, 5])
def test_tol_mode_finds_every_path_above_threshold(seed):
    A, s, y = small_system(seed)
    L = np.linalg.inv(np.eye(5) - A)
    tol = 2e-3
    thr = tol * (s @ L @ y)
    bf = {p: v for v, p in brute_force(A, s, y, 4) if abs(v) > thr}
    res = structural_paths(A, s, y, k=None, tol=tol, max_depth=4)
    got = {tuple(int(v) for v in res.paths[i, : res.depth[i] + 1]): res.values[i] for i in range(res.values.size)}
    assert set(got) == set(bf)
    for p in bf:
        np.testing.assert_allclose(got[p], bf[p], rtol=1e-12)
    # without a depth limit the search stops by itself and still contains the depth-limited set
    res_all = structural_paths(A, s, y, k=None, tol=tol)
    assert res_all.values.size >= res.values.size
    assert np.all(np.abs(res_all.values) > thr)


def node_value_search(A, s, y, thr, max_depth):
    """The WRONG pruning rule: expand a node only if its own direct value exceeds the threshold."""
    found, frontier = [], [((i,), y[i]) for i in range(s.size)]
    for _ in range(max_depth + 1):
        nxt = []
        for path, pre in frontier:
            val = s[path[-1]] * pre
            if abs(val) <= thr:
                continue  # pruned on the node's own value
            found.append((val, path))
            nxt += [(path + (k,), pre * A[k, path[-1]]) for k in range(s.size) if A[k, path[-1]] > 0]
        frontier = nxt
    return found


def test_clean_intermediary_is_not_pruned():
    # final demand only for sector 0 (clean: trade), which buys from sector 1 (clean: services), which buys
    # almost all of its input from sector 2 (a power plant with a large intensity).
    A = np.array([[0.0, 0.0, 0.0, 0.0], [0.5, 0.0, 0.0, 0.0], [0.0, 0.6, 0.0, 0.0], [0.05, 0.05, 0.05, 0.0]])
    s = np.array([0.0, 0.0, 10.0, 0.1])
    y = np.array([1.0, 0.0, 0.0, 0.0])
    total = s @ np.linalg.inv(np.eye(4) - A) @ y
    big = (3.0, (0, 1, 2))  # 10 * 0.6 * 0.5 * 1
    assert np.isclose(big[0] / total, 3.0 / total) and big[0] / total > 0.9
    naive = node_value_search(A, s, y, thr=0.01 * total, max_depth=4)
    assert big[1] not in [p for _, p in naive]  # node-value pruning loses the dominant path
    res = structural_paths(A, s, y, k=3, tol=0.01)
    assert tuple(res.paths[0, : res.depth[0] + 1]) == big[1]
    np.testing.assert_allclose(res.values[0], big[0], rtol=1e-13)


def test_sparse_input_and_precomputed_multipliers_agree():
    rng = np.random.default_rng(9)
    n = 40
    A = rng.uniform(0, 1, (n, n)) * (rng.random((n, n)) < 0.2)
    A *= 0.6 / A.sum(axis=0).max()
    s, y = rng.lognormal(size=n), rng.lognormal(size=n)
    dense = structural_paths(A, s, y, k=200)
    sparse = structural_paths(sp.csr_matrix(A), s, y, k=200)
    np.testing.assert_allclose(sparse.values, dense.values, rtol=1e-10)
    L = np.linalg.inv(np.eye(n) - A)
    pre = structural_paths(A, s, y, k=200, M=(s @ L, np.abs(s) @ L))
    np.testing.assert_array_equal(pre.paths, dense.paths)
    # every returned path's value recomputed from its node list
    for i in range(50):
        p = dense.paths[i, : dense.depth[i] + 1]
        v = y[p[0]] * np.prod([A[b, a] for a, b in zip(p[:-1], p[1:])]) * s[p[-1]]
        np.testing.assert_allclose(dense.values[i], v, rtol=1e-12)
    # top-k: nothing larger than the k-th value was left out (tol-mode at that threshold finds the same set)
    thr = abs(dense.values[-1]) * 0.999999 / dense.total_abs
    full = structural_paths(A, s, y, k=None, tol=thr)
    assert full.values.size == dense.values.size


def test_wrapper_labels_and_coverage():
    R, N, K = 3, 4, 2
    n = R * N
    m = random_mrio(R, N, K, 2, seed=3, structure="uniform", density=0.6, input_range=(0.5, 0.5), fd_range=(0.1, 1.0),
                    stressor_range=(0.0, 1.0), regions=["a", "b", "c"], sectors=list("wxyz"),
                    categories=["hh", "export"], stressors=["CO2", "SO2"], units=["Mt", "kt"])  # fmt: skip
    Z, Y, F = (np.asarray(v) for v in (m.Z, m.Y, m.F))
    x = Z.sum(1) + Y.sum(1)
    A = Z / x
    ds = structural_path_analysis(m, "SO2", k=30, categories="export")
    S = F / x
    y = Y.reshape(n, R, K)[:, :, 1].sum(1)
    total = S[1] @ np.linalg.inv(np.eye(n) - A) @ y
    np.testing.assert_allclose(ds.attrs["total"], total, rtol=1e-12)
    np.testing.assert_allclose(ds.attrs["coverage"], ds.value.sum() / total, rtol=1e-12)
    np.testing.assert_allclose(ds.share.values, ds.value.values / total, rtol=1e-12)
    regions, sectors = ["a", "b", "c"], list("wxyz")
    for i in range(30):
        d = int(ds.depth[i])
        nodes = [regions.index(str(ds.region.values[i, j])) * N + sectors.index(str(ds.sector.values[i, j]))
                 for j in range(d + 1)]
        v = y[nodes[0]] * np.prod([A[b, a] for a, b in zip(nodes[:-1], nodes[1:])]) * S[1, nodes[-1]]
        np.testing.assert_allclose(ds.value.values[i], v, rtol=1e-12)
        assert (ds.region.values[i, d + 1:] == "").all()
    assert ds.label.values[0].count("<-") == int(ds.depth[0])


def test_errors():
    A, s, y = small_system(0)
    with pytest.raises(ValueError, match="tol"):
        structural_paths(A, s, y, k=None)
    with pytest.raises(ValueError, match="negative"):
        structural_paths(-A, s, y)
    with pytest.raises(ValueError, match="region-sector"):
        structural_paths(A[:4, :4], s, y)
    with pytest.raises(ValueError, match="max_nodes"):
        structural_paths(A, s, y, k=10**6, max_nodes=100, max_depth=6)
