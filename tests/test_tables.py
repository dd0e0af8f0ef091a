"""Real tables: the validation policy, the cleaning helper, and the WIOD 2013 world tables (../shared) read,
cleaned and accounted exactly as pymrio accounts them."""

import warnings

import numpy as np
import pytest

import diffmrio
from diffmrio import MRIO, MRIOError, TableWarning
from diffmrio.tables import clean_table

REG, SEC, CAT = ["A", "B"], ["s1", "s2"], ["hh", "INVEN"]


def _table():
    """2 x 2 with a rounding artefact: (B, s2) sells nothing but has a -1 inventory change, so x = -1."""
    Z = np.array([[5.0, 2.0, 1.0, 0.0], [1.0, 4.0, 0.0, 0.0], [2.0, 0.0, 6.0, 0.0], [0.0, 0.0, 0.0, 0.0]])
    Y = np.array([[20.0, 1.0, 3.0, 0.0], [10.0, -2.0, 1.0, 0.0], [2.0, 0.0, 25.0, 0.5], [0.0, 0.0, 0.0, -1.0]])
    F = (Z.sum(1) + Y.sum(1) - Z.sum(0))[None]
    return Z, Y, F


def test_policy_raise_warn_off():
    Z, Y, F = _table()
    kw = dict(regions=REG, sectors=SEC, categories=CAT, stressors=["va"])
    for v in (True, "raise"):
        with pytest.raises(MRIOError, match=r"negative for \('B', 's2'\)"):
            MRIO.from_arrays(Z, Y, F, **kw, validate=v)
    with pytest.warns(TableWarning, match=r"\('B','s2'\) \(x = -1\)"):
        m = MRIO.from_arrays(Z, Y, F, **kw, validate="warn")
    assert len(m.validation) == 1 and "('B','s2')" in m.validation[0]
    acc = diffmrio.accounts(m, precision="double")
    assert "('B','s2')" in acc.attrs["validation"]
    for v in (False, "off"):
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            assert MRIO.from_arrays(Z, Y, F, **kw, validate=v).validation == ()
    with pytest.raises(ValueError, match="'raise', 'warn' or 'off'"):
        MRIO.from_arrays(Z, Y, F, **kw, validate="maybe")
    bad = Y.copy()
    bad[0, 0] = np.nan
    with pytest.raises(MRIOError, match="NaN|finite"):  # never warned through
        MRIO.from_arrays(Z, bad, F, **kw, validate="warn")
    good = MRIO.from_arrays(Z[:3, :3], np.abs(Y[:3, :3]), F[:, :3], regions=["A"], sectors=["a", "b", "c"],
                            categories=["x", "y", "z"], stressors=["va"], validate="warn")
    assert good.validation == ()


def test_clean_table_fixes_only_what_it_must():
    Z, Y, F = _table()
    Y2 = Y.copy()
    Y2[3, 1] = -0.5  # a second negative inventory entry in the same row (x = -1.5)
    Y2[0, 2] = 1e-9  # rounding noise
    m = MRIO.from_arrays(Z, Y2, F, regions=REG, sectors=SEC, categories=CAT, stressors=["va"], validate="off")
    c, rep = clean_table(m, tol=1e-6)
    Yc = np.asarray(c.Y)
    x = np.asarray(c.Z).sum(1) + Yc.sum(1)
    assert (x >= 0).all() and x[3] == 0.0 and c.validation == ()
    # the most negative entry goes first, and only as far as needed: -1 -> 0, then -0.5 stays -0.5 + 0 ... x = -0.5
    # is still negative after the first, so the second moves to 0 too
    assert list(rep.column.values) == ["B/INVEN", "A/INVEN"] and list(rep.before.values) == [-1.0, -0.5]
    assert list(rep.after.values) == [0.0, 0.0] and rep.attrs["n_tol_zeroed"] == 1 and rep.attrs["rows_fixed"] == 1
    changed = np.argwhere(Yc != Y2)
    assert {tuple(v) for v in changed} == {(3, 1), (3, 3), (0, 2)}
    np.testing.assert_array_equal(np.asarray(c.Z), Z)
    np.testing.assert_array_equal(np.asarray(c.F), F)
    # only part of an entry when that is enough
    Y3 = Y.copy()
    Y3[3, 3] = -3.0
    Y3[3, 0] = 2.5
    m3 = MRIO.from_arrays(Z, Y3, F, regions=REG, sectors=SEC, categories=CAT, stressors=["va"], validate="off")
    c3, rep3 = clean_table(m3)
    assert float(rep3.after.values[0]) == -2.5 and np.asarray(c3.Y)[3].sum() == 0.0
    with pytest.raises(ValueError, match="not in the table"):
        clean_table(m3, categories=["stocks"])


@pytest.fixture(scope="module")
def wiod(shared_dir):
    d = shared_dir / "data" / "wiod2013"
    if not (d / "wiot_2011.nc").exists():
        pytest.skip(f"WIOD tables not found in {d}")
    return d


@pytest.mark.shared
def test_wiod_policy_and_cleaning(wiod):
    with pytest.raises(MRIOError, match=r"\('LUX', 'c5'\), \('LUX', 'c8'\).*wiot_2009\.nc', clean=True\)`"):
        diffmrio.tables.read_wiod(wiod / "wiot_2009.nc")  # the same rounding artefact in both years
    with pytest.warns(TableWarning):
        m = diffmrio.tables.read_wiod(wiod / "wiot_2011.nc", validate="warn")
    assert "('LUX','c5'), ('LUX','c8')" in m.validation[0]
    c = diffmrio.tables.read_wiod(wiod / "wiot_2011.nc", clean=True)
    assert c.n_regions == 41 and c.n_sectors == 35 and c.n_categories == 5
    assert all(v.startswith("cleaned: LUX/INVEN") for v in c.validation) and len(c.validation) == 2
    # only the two inventory cells changed
    diff = np.argwhere(np.asarray(c.Y) != np.asarray(m.Y))
    assert len(diff) == 2 and {c.regions[i // 35] + "/" + c.sectors[i % 35] for i, _ in diff} == {"LUX/c5", "LUX/c8"}


@pytest.mark.shared
@pytest.mark.slow
def test_wiod_accounts_equal_pymrio(wiod):
    pymrio = pytest.importorskip("pymrio")
    import pandas as pd

    m = diffmrio.tables.read_wiod(wiod / "wiot_2011.nc", clean=True)
    rows = pd.MultiIndex.from_product([m.regions, m.sectors], names=["region", "sector"])
    cols = pd.MultiIndex.from_product([m.regions, m.categories], names=["region", "category"])
    va = pd.DataFrame(np.asarray(m.F), index=["value_added"], columns=rows)
    io = pymrio.IOSystem(Z=pd.DataFrame(np.asarray(m.Z), index=rows, columns=rows),
                         Y=pd.DataFrame(np.asarray(m.Y), index=rows, columns=cols),
                         va={"name": "va", "F": va, "unit": pd.DataFrame({"unit": ["million USD"]}, index=["value_added"])})
    io.calc_all()
    acc = diffmrio.accounts(m, precision="double")
    np.testing.assert_allclose(acc.x.values.ravel(), io.x.values.ravel(), rtol=1e-12)
    for name in ("D_cba_reg", "D_pba_reg", "D_imp_reg", "D_exp_reg"):
        ref = getattr(io.va, name).loc["value_added", list(m.regions)].values
        got = acc[name].sel(stressor="value_added").values
        np.testing.assert_allclose(got, ref, rtol=1e-9, atol=1e-9 * np.abs(ref).max(), err_msg=name)
    ref_M = io.va.M.loc["value_added"].values
    np.testing.assert_allclose(acc.M.sel(stressor="value_added").values.ravel(), ref_M, rtol=1e-9, atol=1e-12)
    # value added embodied in final demand adds up to world final demand (the table balances exactly)
    assert float(acc.D_cba_reg.sum()) == pytest.approx(float(np.asarray(m.Y).sum()), rel=1e-12)
