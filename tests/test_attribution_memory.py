"""Memory at scale. Attribution by groups of final demand holds index arrays, not dense `[group, n, fd]` masks:
the compiled memory of zero-out and first-order attribution does not depend on the number of groups (XLA's
memory analysis of the compiled functions), while the dense-mask form grows with it; the index form gives the
same numbers as the masks. The economy's LU factors live in one n x n buffer, factored in place and read by JAX
without a copy, and a gradient through them needs no n x n temporary; a chunk of Monte Carlo draws stays within
its memory budget whatever the number of groups."""

import equinox as eqx
import jax.numpy as jnp
import numpy as np
import pytest

import diffmrio
import surrogate
from diffmrio.chain import _attribution
from diffmrio.datasets import random_mrio
from diffmrio.health import GEMM, HealthInputs, HealthModel

STRESSORS = ("SO2", "NOx", "NH3", "VOC", "PM2.5", "BC", "OC")


def big_chain(R=4, N=250, K=2, ny=3, nx=4):
    Z, Y, F, F_Y = random_mrio(R, N, K, len(STRESSORS), seed=3, labelled=False)
    sectors = [f"s{i}" for i in range(N)]
    m = diffmrio.MRIO.from_arrays(Z, Y, F, F_Y, regions=[f"r{r}" for r in range(R)], sectors=sectors,
                                  categories=["household", "export"][:K], stressors=list(STRESSORS), validate=False)
    sm = diffmrio.chain.SourceMap.for_mrio(m, elevated_sectors=sectors[:3])
    rng = np.random.default_rng(0)
    labels = surrogate.EmulatorLabels(
        input_dims=("source", "species"), input_coords=(m.regions, sm.species), input_units="1",
        output_dims=("component", "row", "col"),
        output_coords=(("SO4", "NO3", "NH4", "BC", "OC", "PM_other"), tuple(map(str, range(ny))),
                       tuple(map(str, range(nx)))),
        output_units="ug m-3", input_kind="scale",
    )  # fmt: skip
    emu = surrogate.LinearEmulator(labels, on_out_of_envelope="ignore")
    emu = eqx.tree_at(lambda e: (e.base, e.jacobian), emu,
                      (jnp.asarray(rng.uniform(5, 30, (6, ny, nx))), jnp.asarray(rng.uniform(0, 3, (6 * ny * nx, R * 7)))))
    frac = np.zeros((R, ny, nx))
    frac[np.arange(ny * nx) % R, np.arange(ny * nx) // nx, np.arange(ny * nx) % nx] = 1.0
    causes = ("IHD", "LC")
    inputs = HealthInputs(rng.uniform(1e5, 1e6, (ny, nx)), np.array([0.6, 0.4]), rng.uniform(1e-4, 1e-3, (2, 2)),
                          causes=causes, ages=(25, 60), regions=m.regions, region_fraction=frac)
    health = HealthModel(inputs, GEMM.burnett2018(causes, ages=(25, 60)))
    probe = diffmrio.chain.Chain(m, sm, emu, jnp.ones((7, R, 2)), health)
    return diffmrio.chain.Chain(m, sm, emu, probe.emissions(probe.base_inputs()), health)


def _bytes(jitted, *args) -> int:
    ma = jitted.lower(*args).compile().compiled.memory_analysis()
    return int(ma.temp_size_in_bytes + ma.argument_size_in_bytes + ma.output_size_in_bytes)


@pytest.fixture(scope="module")
def chain_1000():
    return big_chain()


def test_attribution_memory_is_independent_of_the_number_of_groups(chain_1000):
    ch = chain_1000
    inp = ch.base_inputs()
    n, fd = inp.Y.shape
    assert n == 1000
    few = diffmrio.chain.group_index(ch, "foreign")  # 2 groups (columns)
    many = diffmrio.chain.group_index(ch, "sector")  # 250 groups (rows)
    assert many.n_groups == 250 and few.n_groups == 2
    sizes = {}
    for fn, extra in ((_attribution._zero_out, ()), (_attribution._first_order, (None,))):
        b_few = _bytes(fn, ch, inp, "deaths", few, *extra)
        sizes[fn] = b_many = _bytes(fn, ch, inp, "deaths", many, *extra)
        # the outputs grow by (groups x receptors) numbers; everything else is the same
        assert abs(b_many - b_few) <= 8 * 6 * 250 + 2**16, (fn, b_few, b_many)
    # the dense masks the index arrays replace: 250 x n x fd float64 = 16 MB as an argument alone
    masks = jnp.asarray(many.dense_masks(n, fd))
    b_masks = _bytes(_attribution._zero_out_masks, ch, inp, "deaths", masks)
    assert b_masks - sizes[_attribution._zero_out] > 0.9 * 250 * n * fd * 8, (b_masks, sizes)


def test_leontief_factor_is_one_buffer_in_place(chain_1000):
    from diffmrio.chain._fastdraw import LeontiefFactor, aligned_empty, factored_gradient

    ch = chain_1000
    m = ch.mrio
    Z0 = np.asarray(m.Z)
    n = Z0.shape[0]
    x = Z0.sum(axis=1) + np.asarray(m.Y).sum(axis=1)
    A = Z0 / x[None, :]
    M = np.eye(n) - A
    Z = aligned_empty((n, n))
    Z[...] = Z0
    f = LeontiefFactor.from_flows(Z, x, overwrite=True)
    # factored where Z lay, and JAX reads that buffer: no second n x n array
    assert f.lu_t.unsafe_buffer_pointer() == Z.ctypes.data
    rng = np.random.default_rng(1)
    B, C = rng.uniform(0, 1, (n, 3)), rng.uniform(0, 1, (2, n))
    np.testing.assert_allclose(np.asarray(f.solve(jnp.asarray(B))), np.linalg.solve(M, B), rtol=1e-10)
    np.testing.assert_allclose(np.asarray(f.solve_left(jnp.asarray(C))), np.linalg.solve(M.T, C.T).T, rtol=1e-10)
    np.testing.assert_allclose(np.asarray(LeontiefFactor.from_coefficients(A).solve(B[:, 0])),
                               np.linalg.solve(M, B[:, 0]), rtol=1e-10)
    assert not np.shares_memory(np.asarray(m.Z), np.asarray(LeontiefFactor.from_flows(m.Z, x).lu_t))  # a copy
    # the gradient through the factors equals the chain's own sensitivity (which factors A itself) ...
    inp = ch.base_inputs()
    g = factored_gradient(ch, eqx.tree_at(lambda i: i.A, inp, jnp.zeros((0, 0))), f)
    ref = diffmrio.chain.sensitivity(ch, inp, wrt="final_demand")
    np.testing.assert_allclose(np.asarray(g).reshape(ref.shape), ref.values, rtol=1e-9,
                               atol=1e-12 * np.abs(ref.values).max())
    # ... and compiles without an n x n temporary (the factors are an argument, read in place)
    ma = factored_gradient.lower(ch, inp, f).compile().compiled.memory_analysis()
    assert ma.temp_size_in_bytes < 0.1 * n * n * 8, ma.temp_size_in_bytes
    with pytest.raises(ValueError, match="overwrite=True needs `Z`"):
        LeontiefFactor.from_flows(np.asarray(m.Z), x, overwrite=True)  # the MRIO's read-only Z
    with pytest.raises(ValueError, match="gross output `x` must have shape"):
        LeontiefFactor.from_flows(Z0, x[:-1])
    with pytest.raises(ValueError, match="singular"):
        LeontiefFactor.from_coefficients(np.eye(4))


def test_index_groups_equal_dense_masks():
    from _chains import small_chain

    ch = small_chain("mlp", ny=3, nx=4, causes=("IHD", "LC"))
    m = ch.mrio
    for by in ("consumer", "final_producer", "sector", "foreign"):
        masks, labels = diffmrio.chain.group_masks(ch, by)
        np.testing.assert_array_equal(masks.sum(axis=0), 1.0)
        for method in ("zero_out", "first_order"):
            a = diffmrio.chain.attribute(ch, by=by, method=method)
            b = diffmrio.chain.attribute(ch, by=by, method=method, masks=masks, labels=labels)
            np.testing.assert_allclose(a.values, b.values, rtol=1e-10, atol=1e-12 * np.abs(b.values).max())
        gi = diffmrio.chain.group_index(ch, by)
        yG, cG = gi.totals(ch.base_inputs().Y)
        Y = np.asarray(m.Y)
        np.testing.assert_allclose(yG, np.einsum("gnf,nf->gn", masks, Y), rtol=1e-13)
        np.testing.assert_allclose(cG, np.einsum("gnf,nf->gf", masks, Y), rtol=1e-13)
    with pytest.raises(ValueError, match="`by` must be one of"):
        diffmrio.chain.group_index(ch, "province")
