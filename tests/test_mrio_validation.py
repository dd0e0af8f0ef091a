"""Bad input raises errors that name the problem and the fix; constructors round-trip."""

import numpy as np
import pandas as pd
import pytest
from _systems import labels, random_system

import diffmrio
from diffmrio import MRIO, MRIOError

R, N, K, P = 3, 4, 2, 2


@pytest.fixture
def arrays():
    return random_system(R, N, P, K, seed=3)


def build(Z, Y, F, F_Y, **kw):
    return MRIO.from_arrays(Z, Y, F, F_Y, **{**labels(R, N, K, P), **kw})


def test_wrong_shapes(arrays):
    Z, Y, F, F_Y = arrays
    with pytest.raises(MRIOError, match="`Y` has 11 rows but `Z` has 12"):
        build(Z, Y[:-1], F, F_Y)
    with pytest.raises(MRIOError, match="`Z` has shape"):
        build(Z[:, :-1], Y, F, F_Y)
    with pytest.raises(MRIOError, match="final-demand categories"):
        build(Z, Y[:, :-1], F, F_Y)
    with pytest.raises(MRIOError, match="`F` has shape"):
        build(Z, Y, F[:, :-1], F_Y)
    with pytest.raises(MRIOError, match="units"):
        build(Z, Y, F, F_Y, units=["kg"])
    with pytest.raises(MRIOError, match="unique"):
        build(Z, Y, F, F_Y, sectors=["a", "a", "b", "c"])


def test_nan_and_negative(arrays):
    Z, Y, F, F_Y = arrays
    Zn = Z.copy()
    Zn[2, 5] = np.nan
    with pytest.raises(MRIOError, match="NaN/inf"):
        build(Zn, Y, F, F_Y)
    Zneg = Z.copy()
    Zneg[1, 6] = -3.0
    with pytest.raises(MRIOError, match=r"negative intermediate flows, e.g. from \('r0', 's1'\) to \('r1', 's2'\)"):
        build(Zneg, Y, F, F_Y)
    Yneg = Y.copy()
    Yneg[4, :] = -1e6
    with pytest.raises(MRIOError, match=r"gross output .* negative for \('r1', 's0'\)"):
        build(Z, Yneg, F, F_Y)


def test_zero_output_with_inputs(arrays):
    Z, Y, F, F_Y = arrays
    Z = Z.copy()
    Y = Y.copy()
    Z[7, :] = 0.0
    Y[7, :] = 0.0  # sector (r1, s3) sells nothing ...
    Z[0, 7] = 1.0  # ... but buys an input
    with pytest.raises(MRIOError, match=r"zero output but non-zero inputs: \('r1', 's3'\)"):
        build(Z, Y, F, F_Y)


def test_spectral_radius_at_least_one(arrays):
    Z, Y, F, F_Y = arrays
    Z = Z.copy()
    # sector (r2, s1) buys more inputs than it produces: a column sum of A above one
    j = 2 * N + 1
    x = Z.sum(1) + Y.sum(1)
    Z[j, j] = 0.0
    Z[:, j] *= 0
    Z[j, j] = 1.5 * x[j]  # self-input 1.5 x output -> A_jj = 1.5/(1.5+...) ...
    Y[j, :] = 0.0
    # make A_jj exactly > 1 is impossible (x includes Z row), so craft a 2-cycle with coefficients 1
    Z2 = np.zeros_like(Z)
    Y2 = np.full_like(Y, 1.0)
    Z2[0, 1] = 10.0
    Z2[1, 0] = 10.0
    Y2[0, :] = 0.0
    Y2[1, :] = 0.0
    with pytest.raises(MRIOError, match=r"spectral radius .* >= 1.*\('r0', 's[01]'\)"):
        build(Z2, Y2, np.ones((P, R * N)), np.zeros((P, R * K)))


def test_dataframes_wrong_order_is_refused(arrays):
    Z, Y, F, F_Y = arrays
    m = build(Z, Y, F, F_Y)
    d = m.to_dataframes()
    ok = MRIO.from_dataframes(d["Z"], d["Y"], d["F"], d["F_Y"])
    np.testing.assert_allclose(ok.Z, m.Z)
    perm = d["Z"].index[::-1]
    with pytest.raises(MRIOError, match="not in the same order"):
        MRIO.from_dataframes(d["Z"].reindex(columns=perm), d["Y"], d["F"], d["F_Y"])
    with pytest.raises(MRIOError, match="`Y`'s rows are not in the order"):
        MRIO.from_dataframes(d["Z"], d["Y"].iloc[::-1], d["F"], d["F_Y"])
    with pytest.raises(MRIOError, match="`F`'s columns"):
        MRIO.from_dataframes(d["Z"], d["Y"], d["F"].iloc[:, ::-1], d["F_Y"])
    # rows labelled (region, sector) but ordered sector-major: refused, not silently transposed
    sm = pd.MultiIndex.from_tuples([(r, s) for s in m.sectors for r in m.regions], names=["region", "sector"])
    Zs = d["Z"].reindex(index=sm, columns=sm)
    with pytest.raises(MRIOError, match="region-major"):
        MRIO.from_dataframes(Zs, d["Y"].reindex(index=sm), d["F"].reindex(columns=sm), d["F_Y"])


def test_xarray_and_pymrio_round_trip(arrays):
    Z, Y, F, F_Y = arrays
    m = build(Z, Y, F, F_Y, units=["kg", "t"])
    ds = m.to_xarray()
    back = MRIO.from_xarray(ds)
    for a in ("Z", "Y", "F", "F_Y"):
        np.testing.assert_array_equal(getattr(back, a), getattr(m, a))
    assert back.units == ("kg", "t") and back.regions == m.regions
    # a reordered dataset gives the same table (aligned by labels)
    shuffled = ds.isel(to_region=[2, 0, 1], fd_region=[1, 2, 0]).transpose("sector", "region", "to_sector", "to_region", ...)
    back2 = MRIO.from_xarray(shuffled)
    np.testing.assert_array_equal(back2.Z, m.Z)
    np.testing.assert_array_equal(back2.Y, m.Y)
    pm = pytest.importorskip("pymrio")
    io = m.to_pymrio()
    assert isinstance(io, pm.IOSystem)
    again = MRIO.from_pymrio(io)
    np.testing.assert_allclose(again.Z, m.Z)
    np.testing.assert_allclose(again.F_Y, m.F_Y)
    assert again.stressors == m.stressors and again.units == m.units


def test_missing_labels_and_lookup(arrays):
    Z, Y, F, F_Y = arrays
    m = build(Z, Y, F, F_Y)
    with pytest.raises(KeyError, match="available"):
        m.stressor_index("nope")
    with pytest.raises(KeyError, match="available"):
        diffmrio.accounts(m, categories=("nope",))
    assert isinstance(pd.DataFrame(m.to_dataframes()["Z"]), pd.DataFrame)


def _table_with_rho(n, rho, seed, *, closed_pair=False):
    """Z, Y with A = Z diag(x)^-1 of spectral radius `rho` and one column of A summing to more than one; with
    `closed_pair`, sectors 0 and 1 buy only from each other, all their output (rho = 1, reducible A)."""
    rng = np.random.default_rng(seed)
    B = rng.random((n, n)) * (rng.random((n, n)) < 0.3)
    B[:, 2] *= 25.0  # a column buying far more than the others: column sum of A > 1 whatever rho is
    A = B * (rho / np.max(np.abs(np.linalg.eigvals(B))))
    assert A[:, 2].sum() > 1.0
    x = rng.uniform(1.0, 10.0, n)
    if closed_pair:
        A[:2, :], A[:, :2] = 0.0, 0.0
        A[0, 1] = A[1, 0] = 1.0
        x[1] = x[0]
    Z = A * x[None, :]
    Y = np.zeros((n, 2))
    Y[:, 0] = x - Z.sum(1)  # gross output is x (rows with negative final demand are fine while x > 0)
    return Z, Y


@pytest.mark.parametrize("seed", [0, 1])
def test_cheap_spectral_bound_gives_the_eigensolve_verdicts(monkeypatch, seed):
    """check_table proves rho(A) < 1 by a Collatz-Wielandt bound first and runs the full eigensolve only when the
    bound fails: the verdicts (refused, accepted with the MRIOWarning) are those of the eigensolve path and of
    numpy's eigenvalues, for productive tables whose column sums exceed one and non-productive ones."""
    from diffmrio import MRIOWarning, _validate as V

    n, regions, sectors = 30, ["r0", "r1", "r2"], [f"s{k}" for k in range(10)]
    margin = V.spectral_margin(n)
    cases = [_table_with_rho(n, rho, seed) for rho in (0.3, 0.9, 0.99, 1.0 + 1e-6, 1.01, 1.5)]
    cases.append(_table_with_rho(n, 0.6, seed, closed_pair=True))  # reducible, rho = 1

    def verdict(Z, Y):
        import warnings

        with warnings.catch_warnings(record=True) as rec:
            warnings.simplefilter("always")
            try:
                V.check_table(Z, Y, regions, sectors)
            except MRIOError as exc:
                assert "spectral radius" in str(exc)
                return "refused"
        assert any(issubclass(w.category, MRIOWarning) and "no or negative value added" in str(w.message) for w in rec)
        return "accepted"

    x = [Z.sum(1) + Y.sum(1) for Z, Y in cases]
    rho = [np.max(np.abs(np.linalg.eigvals(Z / xi[None, :]))) for (Z, _), xi in zip(cases, x)]
    expect = ["refused" if r >= 1.0 - margin else "accepted" for r in rho]
    assert expect.count("refused") == 4 and expect.count("accepted") == 3
    new = [verdict(Z, Y) for Z, Y in cases]
    calls = []
    perron, bound = V._perron, V._rho_upper_bound
    monkeypatch.setattr(V, "_perron", lambda A: calls.append(1) or perron(A))
    assert [verdict(Z, Y) for Z, Y in cases] == new == expect
    assert len(calls) == 4  # the eigensolve ran for the non-productive tables only
    monkeypatch.setattr(V, "_rho_upper_bound", lambda A, target, iters=60: np.inf)  # the former path: always eig
    assert [verdict(Z, Y) for Z, Y in cases] == expect
    # the bound is a bound: never below numpy's spectral radius
    for (Z, Y), xi, r in zip(cases, x, rho):
        assert r * (1 - 1e-12) <= bound(Z / xi[None, :], -1.0, iters=5) < np.inf
