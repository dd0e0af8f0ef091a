"""Interregional trade from single-region tables (diffmrio.tables: distances, gravity prior, regional totals,
gravity + RAS rebuild), against independent numpy computations: pairwise distances by loops, the prior by its
formula, the totals by explicit sums, RAS by a hand-written loop and the Chenery-Moses table by explicit
products."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import diffmrio
from diffmrio.datasets import random_mrio
from diffmrio.tables import (
    distance_matrix,
    gravity_prior,
    gravity_ras_rebuild,
    read_distances_csv,
    regional_totals,
)

R, N = 4, 3
CATS = ("household", "government", "export")


@pytest.fixture(scope="module")
def table():
    return random_mrio(R, N, len(CATS), 2, seed=3, structure="uniform", density=1.0, categories=CATS,
                       stressors=("CO2", "SO2"))  # fmt: skip


@pytest.fixture(scope="module")
def positions():
    rng = np.random.default_rng(7)
    return {f"r{k}": tuple(rng.uniform(0, 10, 2)) for k in range(R)}


@pytest.fixture(scope="module")
def dist(table, positions):
    return distance_matrix(positions, table.regions, units="km")


def _np_distances(positions, regions):
    d = np.zeros((len(regions), len(regions)))
    for a, ra in enumerate(regions):
        for b, rb in enumerate(regions):
            d[a, b] = np.hypot(positions[ra][0] - positions[rb][0], positions[ra][1] - positions[rb][1])
    return d


def _hand_ras(P, u, v, iters=100000):
    X = P.copy()
    for _ in range(iters):
        X *= (v / np.where(X.sum(0) > 0, X.sum(0), 1))[None, :]
        X *= (u / np.where(X.sum(1) > 0, X.sum(1), 1))[:, None]
        if np.abs(X.sum(0) - v).max() <= 1e-15 * v.sum():
            return X
    raise AssertionError("hand RAS did not converge")


def _np_totals(m):
    """Regional totals by explicit loops over the flat table (independent of the reshapes in the library)."""
    Z, Y = np.asarray(m.Z), np.asarray(m.Y)
    K = m.n_categories
    dom = [k for k, c in enumerate(m.categories) if c != "export"]
    T = np.zeros((N, R, R))  # product, from, to
    U = np.zeros((R, N, N))
    for r in range(R):
        for i in range(N):
            for s in range(R):
                T[i, r, s] = Z[r * N + i, s * N:(s + 1) * N].sum() + sum(Y[r * N + i, s * K + k] for k in dom)
                U[s, i] += Z[r * N + i, s * N:(s + 1) * N]
    x = (Z.sum(1) + Y.sum(1)).reshape(R, N)
    exports = np.array([[Y[r * N + i, [s * K + 2 for s in range(R)]].sum() for i in range(N)] for r in range(R)])
    D = T.sum(1).T  # (s, i): domestic use of i in s
    local = np.einsum("irr->ri", T)
    return {"T": T, "U": U, "x": x, "exports": exports, "D": D, "O": (x - exports) - local, "I": D - local}


# ------------------------------------------------------------------------------------------ distances


def test_distance_matrix_matches_loops(table, positions, dist):
    np.testing.assert_allclose(dist.values, _np_distances(positions, table.regions), rtol=1e-14)
    assert dist.dims == ("region", "to_region") and dist.attrs["units"] == "km"
    assert list(dist.region.values) == list(table.regions)
    with pytest.raises(ValueError, match=r"`positions` has no position for regions \['r3'\]"):
        distance_matrix({k: v for k, v in positions.items() if k != "r3"}, table.regions)
    with pytest.raises(ValueError, match="positive"):
        distance_matrix({**positions, "r1": positions["r0"]}, table.regions)  # two regions at one place


def test_read_distances_csv_aligns_by_label(tmp_path, table, dist):
    order = ["r2", "extra", "r0", "r3", "r1"]  # permuted, with a region the table does not have
    d = np.ones((5, 5))
    sub = [order.index(r) for r in table.regions]
    d[np.ix_(sub, sub)] = dist.values
    pd.DataFrame(d, index=order, columns=order).to_csv(tmp_path / "d.csv")
    got = read_distances_csv(tmp_path / "d.csv", table.regions, units="km")
    np.testing.assert_array_equal(got.values, dist.values)
    assert got.attrs["units"] == "km" and list(got.to_region.values) == list(table.regions)


@pytest.mark.parametrize(
    "edit, match",
    [
        (lambda df: df.drop(index="r1"), r"d\.csv: no rows for regions \['r1'\]"),
        (lambda df: df.drop(columns="r2"), r"d\.csv: no columns for regions \['r2'\]"),
        (lambda df: df.rename(index={"r1": "r0"}), r"repeat the region label\(s\) \['r0'\]"),
        (lambda df: df.assign(r1=df["r1"].astype(object).where(df.index != "r0", "far")), "'far', not a number"),
        (lambda df: df.assign(r1=df["r1"].where(df.index != "r0", np.nan)), "NaN or inf"),
        (lambda df: df.assign(r1=df["r1"].where(df.index != "r0", -1.0)), "must be positive"),
        (lambda df: df.assign(r1=df["r1"].where(df.index != "r0", 0.0)), "must be positive"),
        (lambda df: df.assign(r1=df["r1"].where(df.index != "r0", 99.0)), "not symmetric: d\\[0, 1\\] = 99"),
    ],
)
def test_read_distances_csv_errors_name_the_file_and_the_fix(tmp_path, table, dist, edit, match):
    df = pd.DataFrame(dist.values, index=list(table.regions), columns=list(table.regions))
    edit(df).to_csv(tmp_path / "d.csv")
    with pytest.raises(ValueError, match=match):
        read_distances_csv(tmp_path / "d.csv", table.regions)


def test_read_distances_csv_missing_file(tmp_path, table):
    with pytest.raises(FileNotFoundError, match="nothere.csv does not exist"):
        read_distances_csv(tmp_path / "nothere.csv", table.regions)


# ------------------------------------------------------------------------------------------ prior


@pytest.mark.parametrize("beta", [0.0, 1.0, 2.5])
def test_gravity_prior_is_masses_over_distance_power(dist, beta):
    rng = np.random.default_rng(0)
    m, n = rng.uniform(0, 5, R), rng.uniform(0, 5, R)
    d = dist.values
    P = gravity_prior(m, n, d, beta=beta)
    for r in range(R):
        for s in range(R):
            want = 0.0 if r == s else m[r] * n[s] / d[r, s] ** beta
            assert P[r, s] == pytest.approx(want, rel=1e-13, abs=0.0)
    Pi = gravity_prior(m, n, d, beta=beta, internal=True)
    np.testing.assert_array_equal(Pi[~np.eye(R, dtype=bool)], P[~np.eye(R, dtype=bool)])
    for r in range(R):
        internal = 0.5 * min(d[r, s] for s in range(R) if s != r)
        assert Pi[r, r] == pytest.approx(m[r] * n[r] / internal**beta, rel=1e-13)


def test_gravity_prior_errors(dist):
    d = dist.values
    with pytest.raises(ValueError, match="`beta` must be finite and >= 0"):
        gravity_prior(np.ones(R), np.ones(R), d, beta=-0.5)
    with pytest.raises(ValueError, match=r"`origin` has shape \(3,\)"):
        gravity_prior(np.ones(3), np.ones(R), d)
    with pytest.raises(ValueError, match="`destination` must be finite and non-negative"):
        gravity_prior(np.ones(R), -np.ones(R), d)
    with pytest.raises(ValueError, match="must be square"):
        gravity_prior(np.ones(R), np.ones(R), d[:, :3])


# ------------------------------------------------------------------------------------------ totals


def test_regional_totals_match_explicit_sums(table):
    ds = regional_totals(table)
    ref = _np_totals(table)
    np.testing.assert_allclose(ds["trade"].values, ref["T"], rtol=1e-13)
    np.testing.assert_allclose(ds["use"].values, ref["U"], rtol=1e-13)
    np.testing.assert_allclose(ds["output"].values, ref["x"], rtol=1e-13)
    np.testing.assert_allclose(ds["exports"].sum("export_category").values, ref["exports"], rtol=1e-13)
    np.testing.assert_allclose(ds["domestic_use"].values, ref["D"], rtol=1e-13)
    np.testing.assert_allclose(ds["outflow"].values, ref["O"], rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(ds["inflow"].values, ref["I"], rtol=1e-12, atol=1e-12)
    # identities: what leaves the regions arrives in the others; local supply closes both balances
    np.testing.assert_allclose(ds["outflow"].sum("region"), ds["inflow"].sum("region"), rtol=1e-12)
    local = np.einsum("irr->ri", ds["trade"].values)
    np.testing.assert_allclose(local, ds["domestic_use"] - ds["inflow"], rtol=1e-12)
    np.testing.assert_allclose(local, ds["supply"] - ds["outflow"], rtol=1e-12)
    assert list(ds["category"].values) == ["household", "government"]
    assert all("units" in ds[v].attrs for v in ds.data_vars)
    with pytest.raises(ValueError, match=r"`export_categories` \['exports'\] are not final-demand categories"):
        regional_totals(table, export_categories=["exports"])
    with pytest.raises(ValueError, match="at least one domestic category"):
        regional_totals(table, export_categories=list(CATS))


# ------------------------------------------------------------------------------------------ rebuild


@pytest.mark.parametrize("beta", [0.0, 1.0, 2.0])
def test_rebuild_against_numpy(table, dist, beta):
    """Outflows known: per product, hand RAS of O_r I_s / d^beta (margins to 1e-10), local flows D - I, and the
    rebuilt Z and Y by the Chenery-Moses proportions, all from explicit numpy."""
    reb, info = gravity_ras_rebuild(table, dist, beta=beta, tol=1e-13)
    ref = _np_totals(table)
    d = dist.values
    off = ~np.eye(R, dtype=bool)
    T = np.zeros((N, R, R))
    for i in range(N):
        out, inn = ref["O"][:, i], ref["I"][:, i]
        prior = np.array([[0.0 if r == s else out[r] * inn[s] / d[r, s] ** beta for s in range(R)] for r in range(R)])
        T[i] = _hand_ras(prior, out, inn)
        got = info["trade"].values[i]
        np.testing.assert_allclose(got.sum(1) - np.diag(got), out, rtol=1e-10)  # RAS margins
        np.testing.assert_allclose(got.sum(0) - np.diag(got), inn, rtol=1e-10)
        T[i][~off] = ref["D"][:, i] - inn
    np.testing.assert_allclose(info["trade"].values, T, rtol=1e-9)
    np.testing.assert_allclose(info["trade_true"].values, ref["T"], rtol=1e-13)
    assert (info["ras_iterations"].values > 0).all()
    # proportional sourcing, entry by entry
    Z, Y = np.asarray(table.Z), np.asarray(table.Y)
    Zr, Yr = np.asarray(reb.Z), np.asarray(reb.Y)
    K = table.n_categories
    for r, i, s in np.ndindex(R, N, R):
        t = T[i, r, s] / ref["D"][s, i]
        np.testing.assert_allclose(Zr[r * N + i, s * N:(s + 1) * N], t * ref["U"][s, i], rtol=1e-9, atol=1e-12)
        exp = sum(Y[r * N + i, q * K + 2] for q in range(R)) if r == s else 0.0  # exports stay with the maker
        np.testing.assert_allclose(Yr[r * N + i, s * K:(s + 1) * K], [t * sum(Y[q * N + i, s * K] for q in range(R)),
                                                                      t * sum(Y[q * N + i, s * K + 1] for q in range(R)),
                                                                      exp], rtol=1e-9, atol=1e-12)
    # output, satellite accounts and labels are kept: the production-based account is exact
    np.testing.assert_allclose(Zr.sum(1) + Yr.sum(1), Z.sum(1) + Y.sum(1), rtol=1e-9)
    np.testing.assert_array_equal(np.asarray(reb.F), np.asarray(table.F))
    assert reb.units == table.units and reb.regions == table.regions
    assert all("units" in info[v].attrs for v in info.data_vars) and info["distance"].attrs["units"] == "km"


def test_rebuild_totals_only_against_numpy(table, dist):
    reb, info = gravity_ras_rebuild(table, dist.values, beta=1.5, known_flows=False, tol=1e-13)
    ref = _np_totals(table)
    d = dist.values.copy()
    for r in range(R):
        d[r, r] = 0.5 * np.min(np.delete(d[r], r))
    for i in range(N):
        sup, dem = ref["x"][:, i] - ref["exports"][:, i], ref["D"][:, i]
        want = _hand_ras(np.outer(sup, dem) / d**1.5, sup, dem)
        np.testing.assert_allclose(info["trade"].values[i], want, rtol=1e-9)
        np.testing.assert_allclose(info["trade"].values[i].sum(1), sup, rtol=1e-10)
        np.testing.assert_allclose(info["trade"].values[i].sum(0), dem, rtol=1e-10)
    x = np.asarray(table.Z).sum(1) + np.asarray(table.Y).sum(1)
    np.testing.assert_allclose(np.asarray(reb.Z).sum(1) + np.asarray(reb.Y).sum(1), x, rtol=1e-9)


def test_rebuild_aligns_distances_by_label_and_is_idempotent(table, dist):
    a, _ = gravity_ras_rebuild(table, dist)
    b, _ = gravity_ras_rebuild(table, dist.isel(region=[2, 0, 3, 1], to_region=[1, 3, 0, 2]))
    np.testing.assert_array_equal(np.asarray(a.Z), np.asarray(b.Z))
    twice, _ = gravity_ras_rebuild(a, dist)  # a table that already is gravity + RAS is rebuilt as itself
    np.testing.assert_allclose(np.asarray(twice.Z), np.asarray(a.Z), rtol=1e-7, atol=1e-9)
    np.testing.assert_allclose(np.asarray(twice.Y), np.asarray(a.Y), rtol=1e-7, atol=1e-9)


def test_rebuild_keeps_a_product_that_is_not_traded(table, dist):
    """A product used only where it is made keeps its local flows (no trade to estimate, nothing to drop)."""
    Z, Y = np.asarray(table.Z).copy(), np.asarray(table.Y).copy()
    K = table.n_categories
    for r in range(R):  # product 0's sales to other regions become foreign exports: output is unchanged
        for s in range(R):
            if r != s:
                Y[r * N, r * K + 2] += Z[r * N, s * N:(s + 1) * N].sum() + Y[r * N, s * K:(s + 1) * K - 1].sum()
                Z[r * N, s * N:(s + 1) * N] = 0.0
                Y[r * N, s * K:(s + 1) * K - 1] = 0.0
    m = diffmrio.MRIO.from_arrays(Z, Y, table.F, table.F_Y, regions=table.regions, sectors=table.sectors,
                                  categories=table.categories, stressors=table.stressors, units=table.units)
    reb, info = gravity_ras_rebuild(m, dist)
    assert info["ras_iterations"].values[0] == 0
    rows = [r * N for r in range(R)]
    np.testing.assert_allclose(np.asarray(reb.Z)[rows], Z[rows], rtol=1e-12, atol=1e-12)
    dom = np.tile([c != "export" for c in CATS], R)
    np.testing.assert_allclose(np.asarray(reb.Y)[rows][:, dom], Y[rows][:, dom], rtol=1e-12, atol=1e-12)
    # foreign exports stay with their maker, booked in its own export column
    np.testing.assert_allclose(np.asarray(reb.Y)[rows][:, ~dom], np.diag(Y[rows][:, ~dom].sum(1)), rtol=1e-12)


def test_rebuild_bad_inputs(table, dist):
    with pytest.raises(ValueError, match="`beta` must be finite and >= 0"):
        gravity_ras_rebuild(table, dist, beta=-1.0)
    with pytest.raises(ValueError, match="`beta` must be finite"):
        gravity_ras_rebuild(table, dist, beta=float("nan"))
    with pytest.raises(ValueError, match=r"`distance` must have shape \(4, 4\)"):
        gravity_ras_rebuild(table, dist.values[:3, :3])
    with pytest.raises(ValueError, match=r"`distance`'s region labels do not match the table's: missing \['r3'\]"):
        gravity_ras_rebuild(table, dist.isel(region=[0, 1, 2], to_region=[0, 1, 2]))
    asym = dist.values.copy()
    asym[0, 1] *= 2
    with pytest.raises(ValueError, match="`gravity_ras_rebuild`: `distance`: distances are not symmetric"):
        gravity_ras_rebuild(table, asym)
    zero = dist.values.copy()
    zero[2, 3] = zero[3, 2] = 0.0
    with pytest.raises(ValueError, match=r"must be positive; got 0 \(at positions \[\[2, 3\], \[3, 2\]\]\)"):
        gravity_ras_rebuild(table, zero)
    neg_diag = dist.values.copy()
    neg_diag[1, 1] = -1.0
    with pytest.raises(ValueError, match="diagonal .* must not be negative"):
        gravity_ras_rebuild(table, neg_diag)
    with pytest.raises(ValueError, match="`export_categories`"):
        gravity_ras_rebuild(table, dist, export_categories=["foreign"])
    one = random_mrio(1, N, len(CATS), 1, seed=0, categories=CATS)
    with pytest.raises(ValueError, match="needs at least two"):
        gravity_ras_rebuild(one, np.zeros((1, 1)))
