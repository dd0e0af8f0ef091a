"""The end-to-end chain: emissions against the MRIO accounts, gradients against finite differences,
the three attribution methods (agreement for a linear response, difference for a nonlinear one), vmap."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from _chains import small_chain

import diffmrio


@pytest.fixture(scope="module")
def linear_chain():
    return small_chain("linear")


@pytest.fixture(scope="module")
def mlp_chain():
    return small_chain("mlp")


def test_emissions_match_accounts(linear_chain):
    ch = linear_chain
    inp = ch.base_inputs()
    E = np.asarray(ch.emissions(inp))  # (species, source, level)
    acc = diffmrio.accounts(ch.mrio)
    pba = acc.D_pba_reg  # production-based incl. households, per region
    for k, sp in enumerate(("SO2", "NOx", "NH3", "VOC", "BC", "OC")):
        np.testing.assert_allclose(E[k].sum(axis=1), pba.sel(stressor=sp).values, rtol=1e-10)
    other = pba.sel(stressor="PM2.5") - pba.sel(stressor="BC") - pba.sel(stressor="OC")
    np.testing.assert_allclose(E[6].sum(axis=1), other.values, rtol=1e-10)
    # elevated level carries exactly the stack sectors' emissions
    so2 = acc.D_pba.sel(stressor="SO2", sector=["power", "metals", "nonmetal", "chemicals"]).sum("sector")
    np.testing.assert_allclose(E[0, :, 1], so2.values, rtol=1e-10)
    # the base inputs reproduce the emulator's base case (scaling factors of one)
    out = ch(inp)
    np.testing.assert_allclose(out.concentration, ch.emulator.base, rtol=1e-12)


def _fd_check(f, x, idxs, rel=1e-5):
    g = np.asarray(jax.grad(f)(x))
    for idx in idxs:
        h = 1e-5 * max(abs(float(x[idx])), 1e-3)
        e = jnp.zeros_like(x).at[idx].set(h)
        num = (float(f(x + e)) - float(f(x - e))) / (2 * h)
        assert abs(g[idx] - num) <= rel * max(abs(num), 1e-6 * np.abs(g).max()), (idx, g[idx], num)


@pytest.mark.parametrize("kind", ["linear", "mlp"])
def test_gradients_vs_finite_differences(kind, linear_chain, mlp_chain):
    ch = linear_chain if kind == "linear" else mlp_chain
    inp = ch.base_inputs()
    rng = np.random.default_rng(1)
    n, fd = inp.Y.shape
    idxY = [(int(rng.integers(n)), int(rng.integers(fd))) for _ in range(6)]
    # pick entries with non-zero demand so the step is meaningful
    idxY = [i for i in idxY if float(inp.Y[i]) > 0] or [(0, 0)]
    _fd_check(lambda Y: ch.target(eqx.tree_at(lambda i: i.Y, inp, Y), "deaths"), inp.Y, idxY)
    rows = ch.source_map.stressor_rows
    idxS = [(rows[int(rng.integers(len(rows)))], int(rng.integers(n))) for _ in range(6)]
    _fd_check(lambda S: ch.target(eqx.tree_at(lambda i: i.S, inp, S), "deaths", "Central"), inp.S, idxS)


def test_sensitivity_queries_are_labelled_and_consistent(linear_chain):
    ch = linear_chain
    gY = diffmrio.chain.sensitivity(ch, wrt="final_demand")
    assert gY.dims == ("region", "sector", "fd_region", "category")
    gS = diffmrio.chain.sensitivity(ch, wrt="intensity", receptor="Harbor")
    assert set(gS.stressor.values) == {"SO2", "NOx", "NH3", "VOC", "PM2.5", "BC", "OC"}
    gE = diffmrio.chain.sensitivity(ch, wrt="emissions")
    # chain rule (Euler): scaling every industry intensity by (1 + t) scales industry emissions by (1 + t), so
    # sum(dJ/dS * S) must equal sum(dJ/dE * E_industries)
    inp = ch.base_inputs()
    gS_all = diffmrio.chain.sensitivity(ch, wrt="intensity")
    rows = list(ch.source_map.stressor_rows)
    S = np.asarray(inp.S)[rows].reshape(gS_all.shape)
    lhs = float((gS_all.values * S).sum())
    inp_no_fd = eqx.tree_at(lambda i: i.S_Y, inp, jnp.zeros_like(inp.S_Y))
    E_ind_only = np.asarray(ch.emissions(inp_no_fd))
    rhs = float((gE.values * E_ind_only).sum())
    np.testing.assert_allclose(lhs, rhs, rtol=1e-9)


def test_three_methods_agree_for_linear_response(linear_chain):
    ch = linear_chain
    res = {m: diffmrio.chain.attribute(ch, by="consumer", method=m, target="pwpm") for m in ("zero_out", "first_order", "path")}
    np.testing.assert_allclose(res["zero_out"], res["first_order"], rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(res["path"], res["first_order"], rtol=1e-9, atol=1e-12)


def test_methods_differ_for_nonlinear_response_and_path_is_complete(mlp_chain):
    ch = mlp_chain
    res = {m: diffmrio.chain.attribute(ch, by="consumer", method=m, target="deaths") for m in ("zero_out", "first_order", "path")}
    path = res["path"]
    assert path.attrs["quadrature_gap"] < 1e-6
    # completeness: contributions sum to J(Y) - J(0)
    np.testing.assert_allclose(float(path.sum()), path.attrs["total_change"], rtol=1e-6)
    # zero-out and first-order are not complete, and they differ from each other for a nonlinear response
    total = path.attrs["total_change"]
    assert abs(float(res["zero_out"].sum()) - total) > 1e-4 * abs(total)
    assert np.max(np.abs(res["zero_out"].values - res["first_order"].values)) > 1e-4 * np.abs(path.values).max()


def test_groupings_partition_final_demand(linear_chain):
    for by in ("consumer", "final_producer", "sector", "foreign"):
        masks, labels = diffmrio.chain.group_masks(linear_chain, by)
        np.testing.assert_array_equal(masks.sum(axis=0), 1.0)
        assert len(labels) == masks.shape[0]


def test_vmap_over_inputs_equals_loop(mlp_chain):
    ch = mlp_chain
    inp = ch.base_inputs()
    scales = jnp.asarray([0.8, 1.0, 1.3])
    batched = jax.vmap(lambda s: ch.target(eqx.tree_at(lambda i: i.Y, inp, inp.Y * s), "deaths"))(scales)
    looped = [float(ch.target(eqx.tree_at(lambda i: i.Y, inp, inp.Y * s), "deaths")) for s in scales]
    np.testing.assert_allclose(batched, looped, rtol=1e-12)
