"""Production layers and flows between layers vs explicit numpy (powers of A, explicit Leontief inverse)."""

import jax.numpy as jnp
import numpy as np
import pytest

from diffmrio import datasets
from diffmrio.supply_chain._layers import (
    layer_flows,
    layer_flows_kernel,
    production_layers,
    production_layers_kernel,
)


def random_mrio(seed, R=3, N=4, K=2, p=2, categories=None):
    return datasets.random_mrio(R, N, K, p, seed=seed, structure="uniform", fd_density=0.8, stressor_density=0.8,
                                categories=categories, units=["kt"] * p)  # fmt: skip


def np_arrays(m):
    Z, Y, F = (np.asarray(a) for a in (m.Z, m.Y, m.F))
    x = Z.sum(1) + Y.sum(1)
    return x, Z / x, F / x, np.linalg.inv(np.eye(x.size) - Z / x)


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("T", [0, 3, 9])
def test_layers_match_powers_and_sum_to_footprint(seed, T):
    rng = np.random.default_rng(seed)
    n, p = 15, 3
    A = rng.uniform(0, 1, (n, n))
    A *= 0.8 / np.abs(np.linalg.eigvals(A)).max()  # a slowly converging series: the remainder matters
    S = rng.uniform(0, 2, (p, n))
    y = rng.uniform(-0.2, 1, n)
    layers, rem = production_layers_kernel(jnp.asarray(A), jnp.asarray(S), jnp.asarray(y), T)
    L = np.linalg.inv(np.eye(n) - A)
    for t in range(T + 1):
        np.testing.assert_allclose(layers[t], S * (np.linalg.matrix_power(A, t) @ y), rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(rem, S * (L @ np.linalg.matrix_power(A, T + 1) @ y), rtol=1e-9, atol=1e-12)
    total = S @ L @ y
    got = np.asarray(layers).sum(axis=(0, 2)) + np.asarray(rem).sum(axis=1)
    assert np.max(np.abs(got - total) / np.abs(total)) < 1e-10


def test_production_layers_wrapper_export_demand():
    m = random_mrio(4, categories=("household", "export"))
    x, A, S, L = np_arrays(m)
    R, N, K = 3, 4, 2
    y = np.asarray(m.Y).reshape(R * N, R, K)[:, :, 1].sum(axis=1)
    ds = production_layers(m, T=3, stressor="q1", categories="export")
    assert ds.layers.dims == ("layer", "stressor", "region", "sector")
    np.testing.assert_allclose(ds.total.values, [S[1] @ L @ y], rtol=1e-12)
    np.testing.assert_allclose(
        ds.layers.sel(stressor="q1", layer=2).values.reshape(-1), S[1] * (A @ A @ y), rtol=1e-12
    )
    np.testing.assert_allclose(ds.remainder.sel(stressor="q1").values.reshape(-1),
                               S[1] * (L @ np.linalg.matrix_power(A, 4) @ y), rtol=1e-10)
    # consumers selection: one region's household demand only
    ds2 = production_layers(m, T=1, consumers="r2", categories="household")
    y2 = np.asarray(m.Y)[:, 2 * K + 0]
    np.testing.assert_allclose(ds2.total.values, S @ L @ y2, rtol=1e-12)


def explicit_flows(A, S, Y, G, T):
    """Per sector pair, then aggregated: m_k A_kj (A^t y)_j by explicit loops."""
    n = A.shape[0]
    M = S @ np.linalg.inv(np.eye(n) - A)
    out = np.zeros((T + 1, S.shape[0], G.shape[0], G.shape[0], Y.shape[1]))
    for t in range(T + 1):
        V = np.linalg.matrix_power(A, t) @ Y
        for q in range(S.shape[0]):
            for c in range(Y.shape[1]):
                phi = M[q][:, None] * A * V[:, c][None, :]  # [k, j]
                out[t, q, :, :, c] = G @ phi @ G.T
    return out


@pytest.mark.parametrize("seed", [0, 5])
def test_layer_flows_kernel_vs_explicit(seed):
    rng = np.random.default_rng(seed)
    R, N, p, c, T = 3, 3, 2, 4, 3
    n = R * N
    A = rng.uniform(0, 1, (n, n)) * (rng.random((n, n)) < 0.6)
    A *= 0.6 / A.sum(axis=0).max()
    S = rng.uniform(0, 1, (p, n))
    Yd = rng.uniform(0, 1, (n, c))
    G = np.kron(np.eye(R), np.ones((1, N)))
    got = np.asarray(layer_flows_kernel(*(jnp.asarray(v) for v in (A, S, Yd, G, G)), T))
    np.testing.assert_allclose(got, explicit_flows(A, S, Yd, G, T), rtol=1e-11, atol=1e-14)
    # identity: the flows out of layer t+1 carry everything emitted at layers > t
    L = np.linalg.inv(np.eye(n) - A)
    for t in range(T + 1):
        np.testing.assert_allclose(got[t].sum(axis=(1, 2)), S @ L @ np.linalg.matrix_power(A, t + 1) @ Yd,
                                   rtol=1e-11)


def test_layer_flows_wrapper_drivers():
    m = random_mrio(7, categories=("household", "export"))
    fc = layer_flows(m, T=2, categories="export", by="consumer")
    fp = layer_flows(m, T=2, categories="export", by="producer")
    assert fc.dims == ("layer", "stressor", "from_region", "to_region", "driver")
    # both splits of the same demand add up to the same flows
    np.testing.assert_allclose(fc.sum("driver"), fp.sum("driver"), rtol=1e-12)
    x, A, S, L = np_arrays(m)
    y = np.asarray(m.Y).reshape(12, 3, 2)[:, :, 1]  # per consuming region's exports
    G = np.kron(np.eye(3), np.ones((1, 4)))
    np.testing.assert_allclose(fc.values, explicit_flows(A, S, y, G, 2), rtol=1e-11, atol=1e-13)


def test_errors_name_the_problem():
    m = random_mrio(0)
    with pytest.raises(ValueError, match="T"):
        production_layers(m, T=-1)
    with pytest.raises(ValueError, match="stressor"):
        production_layers(m, stressor="CO3")
    with pytest.raises(ValueError, match="categories"):
        production_layers(m, categories="exports")
    with pytest.raises(ValueError, match="entries"):
        production_layers(m, y=np.ones(5))
    with pytest.raises(ValueError, match="by"):
        layer_flows(m, by="sector")
    with pytest.raises(TypeError, match="MRIO"):
        production_layers(np.eye(3))


def test_layers_are_differentiable():
    # d(total over layers + remainder)/dy = S L (the multipliers), through the jitted kernel
    import jax

    rng = np.random.default_rng(11)
    n = 8
    A = rng.uniform(0, 1, (n, n))
    A *= 0.5 / A.sum(axis=0).max()
    s = rng.uniform(0, 1, n)

    def total(y):
        layers, rem = production_layers_kernel(jnp.asarray(A), jnp.asarray(s[None, :]), y, 2)
        return layers.sum() + rem.sum()

    g = jax.grad(total)(jnp.asarray(rng.uniform(0, 1, n)))
    np.testing.assert_allclose(g, s @ np.linalg.inv(np.eye(n) - A), rtol=1e-11)


def test_demo_world_export_layers():
    from diffmrio.datasets import demo_world

    m = demo_world(geography=False).mrio
    ds = production_layers(m, T=4, stressor="CO2", categories="export")
    x = np.asarray(m.Z).sum(1) + np.asarray(m.Y).sum(1)
    A = np.asarray(m.Z) / x
    y = np.asarray(m.Y).reshape(m.n, m.n_regions, m.n_categories)[:, :, m.categories.index("export")].sum(1)
    s = np.asarray(m.F)[m.stressors.index("CO2")] / x
    total = s @ np.linalg.solve(np.eye(m.n) - A, y)
    got = float(ds.layers.sum() + ds.remainder.sum())
    assert abs(got - total) / total < 1e-10
    per_layer = ds.layers.sum(("stressor", "region", "sector")).values
    assert per_layer[0] > 0 and per_layer[-1] < per_layer[1]  # deep layers fade
