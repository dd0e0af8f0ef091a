"""The prepared economy (issue 11, item 3): `x`, `A`, `S` and the solves against numpy, gradients against finite
differences, one factorisation shared by accounts, layers, SPA and the value chain; the one unlabel step (aligning
by label, clear errors for missing or extra labels and wrong units)."""

import jax
import jax.numpy as jnp
import jax.scipy.linalg as jsl
import numpy as np
import pytest
import xarray as xr

import diffmrio
from diffmrio import Economy, datasets
from diffmrio._labels import label, unlabel
from diffmrio.scenarios import intensity_convergence
from diffmrio.supply_chain import (
    export_emissions,
    production_layers,
    structural_path_analysis,
    value_chain_decomposition,
)


def table(seed=0, R=3, N=4):
    return datasets.random_mrio(R, N, 2, 2, seed=seed, structure="uniform", fd_density=0.8, stressor_density=0.8,
                                categories=("household", "export"), units=["kt"] * 2)  # fmt: skip


def numpy_economy(Z, Y, F):
    Z, Y, F = (np.asarray(a, dtype=np.float64) for a in (Z, Y, F))
    x = Z.sum(axis=1) + Y.sum(axis=1)
    inv = np.divide(1.0, x, out=np.zeros_like(x), where=x != 0)
    return x, Z * inv[None, :], F * inv[None, :]


def test_economy_arrays_match_numpy():
    m = table(0)
    eco = Economy.from_mrio(m)
    x, A, S = numpy_economy(m.Z, m.Y, m.F)
    np.testing.assert_allclose(eco.x, x, rtol=1e-14)
    np.testing.assert_allclose(eco.A, A, rtol=1e-13, atol=1e-16)
    np.testing.assert_allclose(eco.S, S, rtol=1e-13, atol=1e-16)
    assert eco.A.dtype == jnp.float64 and eco.mrio is m
    # the factors are those of I - A: P L U = I - A
    P, L, U = jsl.lu(jnp.eye(A.shape[0]) - A)
    np.testing.assert_allclose(np.triu(eco.lu), U, rtol=1e-12, atol=1e-14)


def test_economy_of_a_table_with_an_idle_sector():
    rng = np.random.default_rng(3)
    Z = rng.uniform(0, 1, (5, 5))
    Y = rng.uniform(0, 1, (5, 2))
    F = rng.uniform(0, 1, (2, 5))
    Z[2, :] = Z[:, 2] = 0.0  # sector 2 neither buys nor sells: x = 0
    Y[2] = 0.0
    F[:, 2] = 0.0
    eco = Economy.from_arrays(Z, Y, F)
    x, A, S = numpy_economy(Z, Y, F)
    assert eco.x[2] == 0 and np.all(np.asarray(eco.A)[:, 2] == 0) and np.all(np.asarray(eco.S)[:, 2] == 0)
    np.testing.assert_allclose(eco.A, A, rtol=1e-13)
    np.testing.assert_allclose(eco.S, S, rtol=1e-13)


def test_solve_and_solve_left_match_numpy():
    m = table(1)
    eco = Economy.from_mrio(m)
    _, A, S = numpy_economy(m.Z, m.Y, m.F)
    IA = np.eye(A.shape[0]) - A
    rng = np.random.default_rng(0)
    y = rng.uniform(-1, 1, A.shape[0])
    B = rng.uniform(-1, 1, (A.shape[0], 3))
    np.testing.assert_allclose(eco.solve(jnp.asarray(y)), np.linalg.solve(IA, y), rtol=1e-11)
    np.testing.assert_allclose(eco.solve(jnp.asarray(B)), np.linalg.solve(IA, B), rtol=1e-11)
    np.testing.assert_allclose(eco.solve_left(jnp.asarray(S)), np.linalg.solve(IA.T, S.T).T, rtol=1e-11)
    np.testing.assert_allclose(eco.solve_left(jnp.asarray(y)), np.linalg.solve(IA.T, y), rtol=1e-11)
    X, W = eco.solves(jnp.asarray(B), jnp.asarray(S))
    np.testing.assert_allclose(X, np.linalg.solve(IA, B), rtol=1e-11)
    np.testing.assert_allclose(W, np.linalg.solve(IA.T, S.T).T, rtol=1e-11)


def test_gradients_through_the_prepared_economy_match_finite_differences():
    m = table(2, R=2, N=3)
    Z, Y, F = (np.asarray(a) for a in (m.Z, m.Y, m.F))
    y = Y.sum(axis=1)

    def f(Z, Y, F):
        eco = Economy.from_arrays(Z, Y, F)
        return eco.S[0] @ eco.solve(jnp.asarray(y)) + eco.solve_left(eco.S)[1].sum()

    def f_np(Z, Y, F):
        _, A, S = numpy_economy(Z, Y, F)
        IA = np.eye(A.shape[0]) - A
        return S[0] @ np.linalg.solve(IA, y) + np.linalg.solve(IA.T, S[1]).sum()

    gZ, gY, gF = jax.grad(f, argnums=(0, 1, 2))(jnp.asarray(Z), jnp.asarray(Y), jnp.asarray(F))
    np.testing.assert_allclose(f(jnp.asarray(Z), jnp.asarray(Y), jnp.asarray(F)), f_np(Z, Y, F), rtol=1e-12)
    h = 1e-6
    for arr, g, k in ((Z, gZ, 0), (Y, gY, 1), (F, gF, 2)):
        for idx in [(0, 0), (1, 2), (arr.shape[0] - 1, arr.shape[1] - 1)]:
            args_p = [Z.copy(), Y.copy(), F.copy()]
            args_m = [Z.copy(), Y.copy(), F.copy()]
            args_p[k][idx] += h
            args_m[k][idx] -= h
            fd = (f_np(*args_p) - f_np(*args_m)) / (2 * h)
            np.testing.assert_allclose(g[idx], fd, rtol=1e-6, atol=1e-9)


def _count_lu(monkeypatch):
    calls = []
    real = jsl.lu_factor

    def counting(a, *args, **kw):
        calls.append(a.shape)
        return real(a, *args, **kw)

    monkeypatch.setattr(jsl, "lu_factor", counting)
    return calls


@pytest.mark.slow  # eager (jit disabled): about a minute on a loaded 2-core box
def test_one_factorisation_serves_accounts_layers_spa_and_value_chain(monkeypatch):
    """Run eagerly (jit disabled) so every factorisation that actually happens calls `lu_factor`: with a prepared
    economy there is one, however many analyses follow; with the table each analysis factors again."""
    m = table(4)

    def analyses(t):
        return (diffmrio.accounts(t, backend="jax"), production_layers(t, T=2),
                structural_path_analysis(t, "q0", k=20), value_chain_decomposition(t), export_emissions(t))

    plain = analyses(m)  # jitted, with the table
    calls = _count_lu(monkeypatch)
    with jax.disable_jit():
        production_layers(m, T=2)
        structural_path_analysis(m, "q0", k=20)
        assert len(calls) == 2  # the test can fail: without the economy every analysis factors I - A
        calls.clear()
        eco = Economy.from_mrio(m)
        assert len(calls) == 1
        prepared = analyses(eco)
    assert len(calls) == 1, calls
    for a, b in zip(plain, prepared, strict=True):
        xr.testing.assert_allclose(a, b, rtol=1e-12)


def test_labelled_functions_need_a_labelled_economy():
    m = table(0)
    bare = Economy.from_arrays(m.Z, m.Y, m.F)
    with pytest.raises(TypeError, match="Economy.from_mrio"):
        production_layers(bare)
    with pytest.raises(ValueError, match="host"):
        diffmrio.accounts(Economy.from_mrio(m), backend="host")


# ------------------------------------------------------------------------------------------------ unlabel / label


def test_permuted_final_demand_is_aligned_by_label():
    m = table(5)
    regions, sectors = list(m.regions), list(m.sectors)
    rng = np.random.default_rng(1)
    yv = rng.uniform(0, 1, (len(regions), len(sectors)))
    ordered = xr.DataArray(yv, dims=("region", "sector"), coords={"region": regions, "sector": sectors})
    permuted = ordered.isel(region=[2, 0, 1], sector=[3, 1, 0, 2]).transpose("sector", "region")
    a = production_layers(m, T=2, y=ordered)
    b = production_layers(m, T=2, y=permuted)
    c = production_layers(m, T=2, y=yv.reshape(-1))
    xr.testing.assert_allclose(a, b, rtol=1e-13)
    xr.testing.assert_allclose(a, c, rtol=1e-13)
    # positional reading of the permuted values would be a different (wrong) answer
    wrong = production_layers(m, T=2, y=permuted.transpose("region", "sector").values.reshape(-1))
    assert not np.allclose(wrong.total, a.total)
    spa_a = structural_path_analysis(m, "q0", k=10, y=ordered)
    spa_b = structural_path_analysis(m, "q0", k=10, y=permuted)
    np.testing.assert_allclose(spa_a.value, spa_b.value, rtol=1e-13)


def test_missing_or_extra_labels_are_named():
    m = table(5)
    regions, sectors = list(m.regions), list(m.sectors)
    y = xr.DataArray(np.ones((len(regions), len(sectors))), dims=("region", "sector"),
                     coords={"region": regions, "sector": sectors})
    with pytest.raises(ValueError, match=rf"`y`.*missing \['{regions[1]}'\]"):
        production_layers(m, y=y.drop_sel(region=regions[1]))
    extra = xr.concat([y, y.isel(region=[0]).assign_coords(region=["Atlantis"])], dim="region")
    with pytest.raises(ValueError, match=r"not in the table \['Atlantis'\]"):
        production_layers(m, y=extra)
    with pytest.raises(ValueError, match="must have dims"):
        production_layers(m, y=y.rename(region="province"))
    w = xr.DataArray(np.ones((len(sectors), len(regions))), dims=("sector", "region"),
                     coords={"sector": sectors, "region": regions[::-1]})
    with pytest.raises(ValueError, match=r"`intensity`.*missing"):
        intensity_convergence(m, "q0", sectors=sectors[:1], intensity=w.drop_sel(sector=sectors[0]))


def test_intensity_convergence_aligns_permuted_regions():
    m = table(6)
    regions, sectors = list(m.regions), list(m.sectors)
    rng = np.random.default_rng(2)
    w = xr.DataArray(rng.uniform(0.1, 1, (len(regions), len(sectors))), dims=("region", "sector"),
                     coords={"region": regions, "sector": sectors})
    a = intensity_convergence(m, "q0", sectors=sectors[:2], intensity=w)
    b = intensity_convergence(m, "q0", sectors=sectors[:2], intensity=w.isel(region=[1, 2, 0]))
    xr.testing.assert_allclose(a, b, rtol=1e-13)


def test_unlabel_checks_units_and_shapes_and_label_carries_units():
    coords = {"region": ["a", "b"], "sector": ["x", "y", "z"]}
    da = xr.DataArray(np.arange(6.0).reshape(2, 3), dims=("region", "sector"), coords=coords,
                      attrs={"units": "kt"})
    np.testing.assert_array_equal(unlabel(da, ("region", "sector"), coords, name="e", fn="f", units="kt"),
                                  np.arange(6.0).reshape(2, 3))
    with pytest.raises(ValueError, match=r"`e` is in 'kt' but 'Mt' is expected"):
        unlabel(da, ("region", "sector"), coords, name="e", fn="f", units="Mt")
    with pytest.raises(ValueError, match=r"`f`: `e` must have shape \(2, 3\)"):
        unlabel(np.ones((3, 2)), ("region", "sector"), coords, name="e", fn="f")
    with pytest.raises(ValueError, match="repeats"):
        unlabel(da.assign_coords(sector=["x", "x", "z"]), ("region", "sector"), coords, name="e", fn="f")
    out = label(np.ones((2, 3)), ("region", "sector"), coords, units="kt", name="e")
    assert out.attrs["units"] == "kt" and list(out.region.values) == ["a", "b"] and out.name == "e"
