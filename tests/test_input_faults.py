"""Bad table inputs (issue 14): each case gives either the correct result or an error that names the problem,
the argument and the fix -- never a silently wrong number or an obscure traceback."""

import time
import warnings

import numpy as np
import pandas as pd
import pytest
from _systems import labels, make_mrio, random_system

import diffmrio
from diffmrio import MRIO, MRIOError, MRIOWarning
from diffmrio.supply_chain._spa import structural_path_analysis, structural_paths
from diffmrio.tables import gras, ras

R, N, K, P = 2, 3, 2, 2


def _arrays(seed=0):
    return random_system(R, N, P, K, seed=seed)


def _build(Z, Y, F=None, F_Y=None, **kw):
    return MRIO.from_arrays(Z, Y, F, F_Y, **labels(R, N, K, P), units=["kg", "t"], **kw)


# ------------------------------------------------------------------------------------------------------ tables


def test_zero_output_sector_with_emissions_warns_with_sector_and_amount():
    Z, Y, F, F_Y = _arrays()
    j = 4  # ('r1', 's1')
    Z[j, :] = Z[:, j] = 0.0
    Y[j, :] = 0.0
    F[:, j] = [1e6, 2.5]
    with pytest.warns(MRIOWarning, match=r"zero gross output.*\('r1', 's1'\).*lost: q0 1e\+06 kg, q1 2\.5 t"):
        m = _build(Z, Y, F, F_Y)
    acc = diffmrio.accounts(m)
    # the warning is true: the production-based account misses exactly F[:, j]
    np.testing.assert_allclose(acc["D_pba_reg"].sum("region").values - np.asarray(m.F_Y).sum(1),
                               F.sum(1) - F[:, j], rtol=1e-10)


def test_gross_output_overflowing_to_inf_is_refused():
    Z, Y, F, F_Y = _arrays()
    Z[0, :3] = 1e308  # each entry finite, the row sum is not
    with pytest.raises(MRIOError, match=r"overflows to inf for \('r0', 's0'\).*rescale"):
        _build(Z, Y, F, F_Y)


def test_empty_table_is_refused_with_a_message():
    with pytest.raises(MRIOError, match="the table is empty: no regions and no sectors"):
        MRIO.from_arrays(np.zeros((0, 0)), np.zeros((0, 0)), regions=[], sectors=[], categories=["c"])


def test_string_in_a_table_names_argument_and_entry():
    Z, Y, F, F_Y = _arrays()
    Zs = Z.astype(object)
    Zs[1, 2] = "12,5"
    with pytest.raises(MRIOError, match=r"`Z` has a non-numeric entry '12,5' at index \(1, 2\).*pd.to_numeric"):
        _build(Zs, Y, F, F_Y)
    m = _build(Z, Y, F, F_Y)
    d = m.to_dataframes()
    Yd = d["Y"].astype(object)
    Yd.iloc[3, 1] = "n/a"
    with pytest.raises(MRIOError, match=r"`Y` has a non-numeric entry 'n/a' at index \(3, 1\)"):
        MRIO.from_dataframes(d["Z"], Yd, d["F"], d["F_Y"])


def test_single_category_string_is_one_category():
    m = make_mrio()
    one = diffmrio.accounts(m, categories="c0", backend="jax")
    ref = diffmrio.accounts(m, categories=("c0",), backend="jax")
    np.testing.assert_array_equal(one["D_cba"].values, ref["D_cba"].values)
    assert not np.allclose(one["D_cba"].values, diffmrio.accounts(m, backend="jax")["D_cba"].values)
    with pytest.raises(KeyError, match=r"category 'c9' not in this MRIO; available: \['c0', 'c1'\]"):
        diffmrio.accounts(m, categories="c9")


def test_f_y_without_f_is_kept():
    Z, Y, F, F_Y = _arrays()
    m = _build(Z, Y, F, F_Y)
    d = m.to_dataframes()
    only = MRIO.from_dataframes(d["Z"], d["Y"], None, d["F_Y"])
    assert only.stressors == m.stressors
    np.testing.assert_array_equal(only.F_Y, m.F_Y)
    np.testing.assert_array_equal(only.F, 0.0)
    acc = diffmrio.accounts(only)
    # consumption-based totals are then F_Y of each region
    np.testing.assert_allclose(acc["D_cba_reg"].values, F_Y.reshape(P, R, K).sum(2), rtol=1e-12)
    ds = m.to_xarray().drop_vars("F")
    only_x = MRIO.from_xarray(ds)
    np.testing.assert_array_equal(only_x.F_Y, m.F_Y)
    np.testing.assert_array_equal(only_x.F, 0.0)


def test_from_pymrio_label_typo_in_final_demand_is_refused():
    pymrio = pytest.importorskip("pymrio")
    io = pymrio.load_test()
    io.calc_system()
    ref = MRIO.from_pymrio(io)
    Y = io.Y.copy()
    idx = list(Y.index)
    typo = idx[3][1] + "x"
    idx[3] = ("reg1", typo)  # a typo in one sector label of Y's rows
    Y.index = pd.MultiIndex.from_tuples(idx, names=Y.index.names)
    io.Y = Y
    with pytest.raises(MRIOError, match=r"Y rows have 1 label\(s\) that match no .*\('reg1', '" + typo + r"'\)"):
        MRIO.from_pymrio(io)
    assert ref.n == 48


# ------------------------------------------------------------------------------------------------------ RAS


def test_ras_infeasible_margins_name_the_rows_and_columns():
    X0 = np.array([[1.0, 1.0, 0.0], [0.0, 1.0, 0.0], [0.0, 1.0, 1.0]])
    # row 1 can only sell to column 1, whose target is smaller than row 1's
    u = np.array([2.0, 3.0, 2.0])
    v = np.array([2.5, 2.0, 2.5])
    t = time.perf_counter()
    for f in (ras, gras):
        with pytest.raises(ValueError, match=r"cannot meet the margins.*(rows 1 have targets totalling 3|columns 0, 2)"):
            f(X0, u, v)
    assert time.perf_counter() - t < 5


def test_ras_zero_row_and_unequal_totals_are_named():
    X0 = np.array([[1.0, 1.0], [0.0, 0.0]])
    with pytest.raises(ValueError, match="Rows 1 of `X0` have no entry"):
        ras(X0, [1.0, 1.0], [1.0, 1.0])
    with pytest.raises(ValueError, match=r"row targets sum to 2 but the column targets sum to 3"):
        ras(np.ones((2, 2)), [1.0, 1.0], [1.0, 2.0])


def test_ras_stall_is_detected_within_a_few_sweeps():
    """Feasible only with an entry of the prior at zero: the error falls like 1/k, so tol is out of reach."""
    X0 = np.array([[1.0, 1.0], [1.0, 0.0]])
    with pytest.warns(RuntimeWarning, match="stalled after"):
        X, rep = ras(X0, [1.0, 1.0], [1.0, 1.0])
    # the error falls like 1/k: stopped once its rate cannot reach tol within max_iter (10,000) sweeps
    assert not rep.converged and rep.iterations < 1_000
    np.testing.assert_allclose(X, [[0.0, 1.0], [1.0, 0.0]], atol=1e-2)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _, rep = ras(X0, [1.0, 1.0], [1.0, 1.0], warn=False)
    assert not rep.converged


def test_ras_still_converges_when_it_can():
    rng = np.random.default_rng(0)
    X0 = rng.random((30, 20))
    Xt = X0 * rng.uniform(0.5, 2.0, (30, 1)) * rng.uniform(0.5, 2.0, (1, 20))
    X, rep = ras(X0, Xt.sum(1), Xt.sum(0), tol=1e-13)
    assert rep.converged
    np.testing.assert_allclose(X, Xt, rtol=1e-10)


@pytest.mark.shared
def test_wiod_2009_to_2011_stall_finishes_in_seconds(shared_dir):
    xr = pytest.importorskip("xarray")
    d = shared_dir / "data" / "wiod2013"
    with xr.open_dataset(d / "wiot_2009.nc") as a, xr.open_dataset(d / "wiot_2011.nc") as b:
        Z0 = a["Z"].values.astype(np.float64)
        Z1 = b["Z"].values.astype(np.float64)
    u, v = Z1.sum(1), Z1.sum(0)
    with pytest.raises(ValueError, match=r"Rows 914 of `X0` have no entry"):
        ras(Z0, u, v)
    Z0[914] = 1.0  # seed the empty row: every column of row 914 gets a prior of 1
    t = time.perf_counter()
    with pytest.warns(RuntimeWarning, match="stalled after"):
        _, rep = ras(Z0, u, v)
    assert time.perf_counter() - t < 30  # about 5 s on a loaded 2-core box; the full max_iter took 105 s
    assert not rep.converged and rep.iterations < 100 and rep.history[-1] > 1e-8


# ------------------------------------------------------------------------------------------------------ SPA


def _spa_system():
    rng = np.random.default_rng(0)
    A = rng.random((5, 5)) * 0.15
    return A, rng.random(5), rng.random(5)


def test_spa_nan_in_y_is_refused():
    A, s, y = _spa_system()
    y[2] = np.nan
    with pytest.raises(ValueError, match=r"`y` has 1 NaN/inf entries \(first at index 2\)"):
        structural_paths(A, s, y, k=10)
    m = make_mrio()
    with pytest.raises(ValueError, match="`y` has 1 NaN"):
        structural_path_analysis(m, "q0", y=np.where(np.arange(m.n) == 0, np.nan, 1.0))


@pytest.mark.parametrize("k", [2.5, 0, True, "10"])
def test_spa_non_integer_k_is_refused(k):
    A, s, y = _spa_system()
    with pytest.raises(ValueError, match="`k` \\(how many paths\\) must be a positive integer"):
        structural_paths(A, s, y, k=k)
    res = structural_paths(A, s, y, k=np.int64(3))
    assert len(res.values) == 3


# ------------------------------------------------------------------------------------------------------ health


def test_mortality_rates_above_one_per_person_are_refused(tmp_path):
    from diffmrio.health import HealthInputs, load_gbd_baseline_mortality

    pop = np.full((2, 2), 1000.0)
    ok = np.array([[1e-3, 2e-3]])
    HealthInputs(pop, [0.5, 0.5], ok, causes=["IHD"], ages=[25, 60], regions=["a"],
                 region_index=np.zeros((2, 2), int))
    with pytest.raises(ValueError, match=r"`baseline_rate` has rates up to 250 deaths per person-year.*divide by 1e5"):
        HealthInputs(pop, [0.5, 0.5], ok * 1e5 * 1.25, causes=["IHD"], ages=[25, 60], regions=["a"],
                     region_index=np.zeros((2, 2), int))
    rows = [("Aland", "IHD", a, v) for a, v in ((25, 50.0), (60, 150_000.0))]
    p = tmp_path / "mort.csv"
    pd.DataFrame(rows, columns=["Country", "endpoint", "agegroup", "base2015"]).to_csv(p, index=False)
    with pytest.raises(ValueError, match=r"mort.csv: base2015 has rates up to 150000 per 100,000"):
        load_gbd_baseline_mortality(p)


def test_accounts_with_no_categories_is_refused_not_zero():
    """`categories=[]` used to give all-zero footprints without a word (found by the new-user trial)."""
    import diffmrio

    Z = np.array([[1.0, 2.0], [0.5, 1.0]])
    Y = np.array([[5.0], [4.0]])
    m = diffmrio.MRIO.from_arrays(Z, Y, regions=["r"], sectors=["a", "b"], categories=["hh"],
                                  F=np.array([[1.0, 2.0]]), stressors=["co2"])
    with pytest.raises(ValueError, match="categories.*empty"):
        diffmrio.accounts(m, categories=[])
    assert float(diffmrio.accounts(m, categories=["hh"])["D_cba_reg"].sum()) > 0
