"""The CEADs workbook reader on small workbooks written in the published layout."""

import numpy as np
import pandas as pd
import pytest
from _systems import ceads_arrays

from diffmrio import MRIOError
from diffmrio.tables import read_ceads
from diffmrio.tables._ceads import write_ceads_like

PROV = ["Beijing", "Tianjin", "Hebei"]
SECT = ["Agriculture", "Coal mining", "Electricity", "Services"]


def _table(seed=0, other=False):
    return ceads_arrays(len(PROV), len(SECT), seed, other=other)


def test_reads_published_layout(tmp_path):
    Z, fd, ex, _, imp, va, x = _table()
    path = write_ceads_like(tmp_path / "mrio.xlsx", Z, fd, ex, va, PROV, SECT, imports=imp)
    m = read_ceads(path)
    assert m.regions == tuple(PROV) and m.sectors == tuple(SECT)
    assert m.categories[-1] == "export" and m.categories[0] == "rural_household"
    np.testing.assert_allclose(m.Z, Z, rtol=1e-12)
    Y = np.asarray(m.Y).reshape(12, 3, 6)
    np.testing.assert_allclose(Y[:, :, :5], fd, rtol=1e-12)
    # exports sit in the producing province's export column
    np.testing.assert_allclose(Y[:, :, 5].sum(axis=1), ex, rtol=1e-12)
    assert np.all(Y[:4, 1:, 5] == 0)
    np.testing.assert_allclose(np.asarray(m.Z).sum(1) + np.asarray(m.Y).sum(1), x, rtol=1e-12)
    i = m.stressor_index("operating_surplus")
    np.testing.assert_allclose(m.F[i], va[3], rtol=1e-12)
    np.testing.assert_allclose(m.F[m.stressor_index("imports")], imp, rtol=1e-12)


def test_other_column_becomes_category(tmp_path):
    Z, fd, ex, oth, imp, va, x = _table(seed=1, other=True)
    path = write_ceads_like(tmp_path / "m.xlsx", Z, fd, ex, va, PROV, SECT, imports=imp, other=oth)
    m = read_ceads(path)
    assert m.categories[-1] == "other"
    np.testing.assert_allclose(np.asarray(m.Z).sum(1) + np.asarray(m.Y).sum(1), x, rtol=1e-12)


def test_unbalanced_total_output_is_named(tmp_path):
    Z, fd, ex, _, imp, va, x = _table()
    path = write_ceads_like(tmp_path / "m.xlsx", Z, fd, ex, va, PROV, SECT, imports=imp)
    raw = pd.read_excel(path, header=None)
    raw.iloc[2 + 5, raw.shape[1] - 1] += 10.0  # total output of (Tianjin, Coal mining)
    raw.to_excel(path, header=False, index=False)
    with pytest.raises(MRIOError, match=r"row 8 \(Tianjin, Coal mining\).*total output"):
        read_ceads(path)


def test_permuted_columns_are_refused(tmp_path):
    Z, fd, ex, _, imp, va, x = _table()
    path = write_ceads_like(tmp_path / "m.xlsx", Z, fd, ex, va, PROV, SECT, imports=imp)
    raw = pd.read_excel(path, header=None)
    cols = list(raw.columns)
    cols[2], cols[3] = cols[3], cols[2]  # swap two intermediate columns (with their headers)
    raw = raw[cols]
    raw.to_excel(path, header=False, index=False)
    with pytest.raises(MRIOError, match="intermediate columns must follow the row order"):
        read_ceads(path)


def test_missing_value_added_row_and_bad_file(tmp_path):
    Z, fd, ex, _, imp, va, x = _table()
    path = write_ceads_like(tmp_path / "m.xlsx", Z, fd, ex, va, PROV, SECT, imports=imp)
    raw = pd.read_excel(path, header=None)
    raw = raw[~raw[0].astype(str).str.contains("Operating surplus")]
    raw.to_excel(path, header=False, index=False)
    with pytest.raises(MRIOError, match="surplus"):
        read_ceads(path)
    bad = tmp_path / "bad.xlsx"
    bad.write_text("not a workbook")
    with pytest.raises(MRIOError, match="cannot be read as an Excel workbook"):
        read_ceads(bad)
