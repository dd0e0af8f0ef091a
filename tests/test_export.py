"""Export-related emissions (direct/indirect) vs explicit numpy with the Leontief inverse."""

import numpy as np
import pytest

from diffmrio import MRIO
from diffmrio.datasets import random_mrio
from diffmrio.supply_chain._export import export_emissions


def build(seed, regions, own_exports_only=True):
    """The coefficients A, S and final demand of a random table (`diffmrio.datasets.random_mrio`), with the export
    columns selling only the exporter's products if `own_exports_only`: the MRIO and A, S, L, Y[n, region, category]."""
    R, N, K = len(regions), 3, 2  # categories: household, export
    n = R * N
    Z0, Y, F0, _ = random_mrio(R, N, K, 2, seed=seed, structure="uniform", fd_range=(0.2, 2.0),
                               stressor_range=(0.0, 2.0), labelled=False)  # fmt: skip
    x0 = Z0.sum(1) + Y.sum(1)
    A, S = Z0 / x0, F0 / x0
    Y = Y.reshape(n, R, K)
    if own_exports_only:  # the export column of region u sells only u's products abroad
        Y[:, :, 1] *= np.kron(np.eye(R), np.ones((N, 1)))  # [n, R]
    Y = Y.reshape(n, R * K)
    x = np.linalg.solve(np.eye(n) - A, Y.sum(1))  # the same A and S, the new final demand
    m = MRIO.from_arrays(A * x, Y, S * x, regions=regions, sectors=["a", "b", "c"],
                         categories=["household", "export"], stressors=["CO2", "SO2"], units=["Mt", "kt"])  # fmt: skip
    return m, A, S, np.linalg.inv(np.eye(n) - A), Y.reshape(n, R, K)


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("own", [True, False])
def test_export_category_split(seed, own):
    regions = ["Capital", "Harbor", "Central", "Steppe"]
    m, A, S, L, Y = build(seed, regions, own)
    R, N = 4, 3
    ds = export_emissions(m)
    for q in range(2):
        for r in range(R):
            rs = slice(r * N, (r + 1) * N)
            # EEE_{r,e} = S_r L Y^e, per foreign consumer column e (= region e's export column)
            eee_re = np.array([S[q, rs] @ (L @ Y[:, e, 1])[rs] for e in range(R)])
            np.testing.assert_allclose(ds.eee.values[q, r].sum(axis=0), eee_re, rtol=1e-11)
            # direct: the exported products are r's own (rows of r), with the whole supply chain
            direct = sum(S[q, rs] @ L[rs, rs] @ Y[rs, e, 1] for e in range(R))
            indirect = sum(S[q, rs] @ L[rs, u * N:(u + 1) * N] @ Y[u * N:(u + 1) * N, e, 1]
                           for e in range(R) for u in range(R) if u != r)
            np.testing.assert_allclose(ds.direct.values[q, r], direct, rtol=1e-11)
            np.testing.assert_allclose(ds.indirect.values[q, r], indirect, rtol=1e-11, atol=1e-12)
    # shares and parts add up to the total
    np.testing.assert_allclose(ds.direct + ds.indirect, ds.total, rtol=1e-12)
    y_exp = Y[:, :, 1].sum(axis=1)
    np.testing.assert_allclose(ds.total.sum("region").values, S @ L @ y_exp, rtol=1e-11)
    np.testing.assert_allclose(ds.indirect_share.values, ds.indirect.sum("region") / ds.total.sum("region"),
                               rtol=1e-12)
    assert np.all((ds.indirect_share.values > 0) & (ds.indirect_share.values < 1))
    if own:  # exports of region e are e's products, so only exporter == consumer is non-zero
        off = ~np.eye(R, dtype=bool)
        assert np.abs(ds.eee.values[:, :, off]).max() == 0.0 or np.allclose(
            np.einsum("pruu->pru", ds.eee.values).sum(-1), ds.eee.values.sum((2, 3)))


def test_foreign_regions_layout():
    regions = ["P1", "P2", "P3", "ROW"]
    m, A, S, L, Y = build(3, regions, own_exports_only=False)
    N = 3
    ds = export_emissions(m, "SO2", foreign=["ROW"])
    assert list(ds.region.values) == ["P1", "P2", "P3"] and list(ds.consumer.values) == ["ROW"]
    ye = Y[:, 3, :].sum(axis=1)  # all final demand of the foreign consumer
    D, Fr = slice(0, 3 * N), slice(3 * N, 4 * N)
    x = L @ ye
    # border-crossing exports of the provinces: final products and intermediates sold to foreign industries
    ex = ye[D] + A[D, Fr] @ x[Fr]
    LDD = np.linalg.inv(np.eye(3 * N) - A[D, D])
    for r in range(3):
        rs = slice(r * N, (r + 1) * N)
        np.testing.assert_allclose(ds.total.values[0, r], S[1, rs] @ x[rs], rtol=1e-11)  # = S_r L Y^e
        np.testing.assert_allclose(ds.direct.values[0, r], S[1, rs] @ LDD[rs, rs] @ ex[rs], rtol=1e-11)
        for u in range(3):
            us = slice(u * N, (u + 1) * N)
            np.testing.assert_allclose(ds.eee.values[0, r, u, 0], S[1, rs] @ LDD[rs, us] @ ex[us], rtol=1e-11)
    np.testing.assert_allclose(ds.direct + ds.indirect, ds.total, rtol=1e-12)


def test_errors():
    m, *_ = build(0, ["a", "b"])
    with pytest.raises(ValueError, match="export_category"):
        export_emissions(m, export_category="exports")
    with pytest.raises(ValueError, match="foreign"):
        export_emissions(m, foreign=["c"])
    with pytest.raises(ValueError, match="every region"):
        export_emissions(m, foreign=["a", "b"])
    with pytest.raises(ValueError, match="stressor"):
        export_emissions(m, "NOx")


def test_demo_world_split():
    from diffmrio.datasets import demo_world

    m = demo_world(geography=False).mrio
    ds = export_emissions(m, ["CO2", "SO2"])
    np.testing.assert_allclose(ds.direct + ds.indirect, ds.total, rtol=1e-12)
    assert np.all((ds.indirect_share.values > 0) & (ds.indirect_share.values < 1))
    # national export-related emissions = S L y_export, over all provinces
    x = np.asarray(m.Z).sum(1) + np.asarray(m.Y).sum(1)
    S = np.asarray(m.F)[[m.stressors.index("CO2"), m.stressors.index("SO2")]] / x
    y = np.asarray(m.Y).reshape(m.n, m.n_regions, m.n_categories)[:, :, m.categories.index("export")].sum(1)
    A = np.asarray(m.Z) / x
    np.testing.assert_allclose(ds.total.sum("region").values, S @ np.linalg.solve(np.eye(m.n) - A, y), rtol=1e-10)
