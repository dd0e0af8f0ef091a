"""Value-chain decomposition (VALUECHAIN study, eqs. 3-7) vs a literal numpy computation with L blocks."""

import jax.numpy as jnp
import numpy as np
import pytest

from diffmrio import MRIO
from diffmrio.datasets import random_mrio
from diffmrio.supply_chain._valuechain import VALUE_CHAIN_PARTS, value_chain_decomposition, value_chain_kernel


def random_system(seed, R=3, N=4, K=3, p=3):
    rng = np.random.default_rng(seed)
    n = R * N
    Z, Y, F, _ = random_mrio(R, N, K, p, seed=rng, structure="uniform", labelled=False, fd_range=(0.0, 2.0),
                             fd_density=0.8, stressor_range=(0, 2))  # fmt: skip
    x = Z.sum(axis=1) + Y.sum(axis=1)
    A = Z / x
    F[2] = rng.uniform(0.2, 0.5, n) * x  # "value_added"-like row
    F_Y = rng.uniform(0, 1, (p, R * K))  # must NOT enter the identity
    m = MRIO.from_arrays(Z, Y, F, F_Y, regions=["east", "mid", "west"],
                         sectors=[f"s{i}" for i in range(N)], categories=[f"c{k}" for k in range(K)],
                         stressors=["CO2", "SO2", "value_added"][:p], units=["Mt", "kt", "bn"][:p])
    return m, A, F / x, Y.reshape(n, R, K).sum(axis=2), x


def literal(A, S, Yreg, R, N):
    """Equations 3-7 written block by block with the explicit Leontief inverse B and local inverses L_ss."""
    n = R * N
    B = np.linalg.inv(np.eye(n) - A)
    blk = lambda M, a, b: M[a * N:(a + 1) * N, b * N:(b + 1) * N]  # noqa: E731
    y = lambda t, s: Yreg[t * N:(t + 1) * N, s]  # noqa: E731  y_ts: s's final demand for t's products
    p = S.shape[0]
    parts = np.zeros((p, R, 4))
    EX = np.zeros((p, R, R, N))
    FE = np.zeros((p, R, R, N))
    Lloc = [np.linalg.inv(np.eye(N) - blk(A, s, s)) for s in range(R)]
    for q in range(p):
        Fs = [S[q, s * N:(s + 1) * N] for s in range(R)]
        for s in range(R):
            Lss = Lloc[s]
            parts[q, s, 0] = Fs[s] @ Lss @ y(s, s)
            parts[q, s, 1] = Fs[s] @ Lss @ sum(blk(A, s, r) @ sum(blk(B, r, t) @ y(t, s) for t in range(R))
                                             for r in range(R) if r != s)
            parts[q, s, 2] = Fs[s] @ sum(blk(B, s, s) @ y(s, r) for r in range(R) if r != s)
            parts[q, s, 3] = Fs[s] @ sum(blk(B, s, t) @ sum(y(t, r) for r in range(R) if r != s)
                                         for t in range(R) if t != s)
            for r in range(R):
                if r == s:
                    continue
                dn = sum(blk(B, r, t) @ y(t, u) for t in range(R) for u in range(R) if u != s)
                EX[q, s, r] = (Fs[s] @ blk(B, s, s)) * y(s, r) + (Fs[s] @ Lss) * (blk(A, s, r) @ dn)
                up = sum(Fs[t] @ blk(B, t, s) for t in range(R) if t != s)
                FE[q, s, r] = up * y(s, r) + up * (blk(A, s, r) @ Lloc[r] @ y(r, r))
    return parts, EX, FE


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_kernel_matches_literal_equations(seed):
    m, A, S, Yreg, x = random_system(seed)
    parts, EX, FE = value_chain_kernel(jnp.asarray(A), jnp.asarray(S), jnp.asarray(Yreg))
    p_ref, ex_ref, fe_ref = literal(A, S, Yreg, 3, 4)
    np.testing.assert_allclose(parts, p_ref, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(EX, ex_ref, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(FE, fe_ref, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("seed", [3, 4])
def test_four_parts_sum_to_production_based_total(seed):
    # identity: the four parts add up to F_s x_s, region s's production-based account without F_Y
    m, A, S, Yreg, x = random_system(seed)
    ds = value_chain_decomposition(m)
    assert list(ds.part.values) == list(VALUE_CHAIN_PARTS)
    F = np.asarray(m.F)
    pba = F.reshape(3, 3, 4).sum(axis=2)  # [stressor, region]
    np.testing.assert_allclose(ds.total.values, pba, rtol=1e-12)
    np.testing.assert_allclose(ds.parts.sum("part").values, pba, rtol=1e-10)
    assert (ds.parts.values >= -1e-12).all()
    # bilateral flows are defined for s != r only
    assert np.all(ds.EX.values[:, [0, 1, 2], [0, 1, 2], :] == 0)
    assert np.all(ds.FE.values[:, [0, 1, 2], [0, 1, 2], :] == 0)
    # applied to a value-added row, the national parts sum to world value added (= GDP of the final demand)
    va = ds.parts.sel(stressor="value_added").sum()
    np.testing.assert_allclose(va, F[2].sum(), rtol=1e-10)


def test_stressor_selection_and_errors():
    m, *_ = random_system(5)
    ds = value_chain_decomposition(m, "value_added")
    assert ds.parts.shape == (1, 3, 4) and str(ds.units.values[0]) == "bn"
    with pytest.raises(ValueError, match="stressor"):
        value_chain_decomposition(m, "jobs")


def test_kernel_gradients_vs_finite_differences():
    from jax.test_util import check_grads

    m, A, S, Yreg, x = random_system(6)
    A, S, Yreg = jnp.asarray(A), jnp.asarray(S[:1]), jnp.asarray(Yreg)

    def f(A_, Y_):
        parts, EX, FE = value_chain_kernel(A_, S, Y_)
        return parts[0, :, 1].sum() + EX[0, 0, 1].sum() + FE[0, 2, 0].sum()

    check_grads(f, (A, Yreg), order=1, modes=("rev",), eps=1e-6, atol=1e-6, rtol=1e-6)
