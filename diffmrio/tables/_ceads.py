r"""Reader for CEADs provincial MRIO workbooks (China, 31 provinces x 42 sectors; 2012/2015/2017).

The published layout (Mi et al. 2018, *Sci. Data* 5:180155, Table 5; Zheng et al. 2021, *Sci. Data*
8:244) is one sheet: header rows with the province (row `header_rows - 2`) and sector or category
(row `header_rows - 1`) of each column, two label columns (province, sector) on each row, then

- the `n x n` intermediate block (rows and columns in the same province-major order),
- final use per province: rural household consumption, urban household consumption, government
  consumption, gross fixed capital formation, changes in inventories,
- an export column, optionally "other"/"error" columns, and total output;

followed by rows for imports (optional), value-added components (compensation of employees, net taxes
on production, depreciation of fixed capital, operating surplus), total value added and total input.

The reader checks the layout against this description and fails loudly (naming the row or column) when
a workbook does not match: order of labels, totals that do not add up, missing blocks. Exports (and
other single columns) become categories of the producing province, so they stay in the table as final
demand; the value-added components and imports become satellite rows.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from .._io import atomic_path
from .._mrio import MRIO
from .._validate import MRIOError

FD_CATEGORIES = (
    "rural_household", "urban_household", "government", "capital_formation", "inventory",
)  # fmt: skip
_FD_KEYS = (("rural",), ("urban",), ("government",), ("capital",), ("inventor",))
_VA_KEYS = {
    "compensation_of_employees": "compensation",
    "net_taxes_on_production": "tax",
    "depreciation_of_fixed_capital": "depreciation",
    "operating_surplus": "surplus",
}


@dataclass(frozen=True)
class CEADSLayout:
    """Where the blocks of a CEADs workbook are. Defaults follow the published tables."""

    header_rows: int = 2
    label_cols: int = 2
    sheet: int | str = 0
    fd_keys: tuple[tuple[str, ...], ...] = _FD_KEYS
    fd_names: tuple[str, ...] = FD_CATEGORIES
    export_key: str = "export"
    total_output_key: str = "total output"
    total_input_key: str = "total input"
    import_key: str = "import"
    va_keys: dict = field(default_factory=lambda: dict(_VA_KEYS))
    rtol: float = 1e-6
    unit: str = "10k CNY"


def _norm(v) -> str:
    return " ".join(str(v).strip().lower().replace("_", " ").split()) if v is not None else ""


def read_ceads(path: str | Path, layout: CEADSLayout = CEADSLayout(), *, name: str | None = None) -> MRIO:
    """Read a CEADs-layout provincial MRIO workbook into an [`MRIO`][diffmrio.MRIO].

    **Arguments:**

    - `path`: the `.xlsx` workbook.
    - `layout`: a [`CEADSLayout`][diffmrio.tables.CEADSLayout] when a file deviates from the published one.

    **Returns:** an MRIO with categories `rural_household, urban_household, government,
    capital_formation, inventory, export` (plus `other` when the workbook has other/error columns)
    and satellite rows for the value-added components (and imports, when present).

    **Raises:** [`MRIOError`][diffmrio.MRIOError] naming the row/column where the workbook departs from
    the layout or where totals do not add up (relative tolerance `layout.rtol`).
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such workbook")
    try:
        raw = pd.read_excel(path, sheet_name=layout.sheet, header=None, dtype=object)
    except Exception as exc:  # openpyxl raises several types for corrupt files
        raise MRIOError(f"{path}: cannot be read as an Excel workbook ({exc})") from None
    h, c = layout.header_rows, layout.label_cols
    prov_hdr = [_norm(v) for v in raw.iloc[h - 2, :]] if h >= 2 else None
    col_hdr = [_norm(v) for v in raw.iloc[h - 1, :]]
    body = raw.iloc[h:, :]
    row_prov = [str(v).strip() if pd.notna(v) else "" for v in body.iloc[:, 0]]
    row_sec = [str(v).strip() if pd.notna(v) else "" for v in body.iloc[:, c - 1]]
    # the intermediate block: rows until the first row whose label is a total/value-added/import row
    stop_words = (layout.import_key, "value added", "total", *layout.va_keys.values())
    n = 0
    while n < len(row_sec) and row_sec[n] and not any(w in _norm(row_sec[n]) or w in _norm(row_prov[n])
                                                      for w in stop_words):
        n += 1
    if n == 0:
        raise MRIOError(f"{path}: no intermediate rows found below {h} header rows")
    provinces = list(dict.fromkeys(row_prov[:n]))
    sectors = list(dict.fromkeys(row_sec[:n]))
    R, N = len(provinces), len(sectors)
    if R * N != n:
        raise MRIOError(f"{path}: {n} intermediate rows are not {R} provinces x {N} sectors; check for "
                        "missing or extra rows in the intermediate block")
    expect = [(p, s) for p in provinces for s in sectors]
    for k, (p, s) in enumerate(zip(row_prov[:n], row_sec[:n])):
        if (p, s) != expect[k]:
            raise MRIOError(f"{path}: row {h + k + 1} is ({p}, {s}) but ({expect[k][0]}, {expect[k][1]}) was "
                            "expected: rows must be province-major with the same sector order in every province")
    # intermediate columns must repeat the row order
    for k in range(n):
        col = c + k
        p_ok = prov_hdr is None or _norm(prov_hdr[col]) in ("", _norm(expect[k][0]))
        if _norm(col_hdr[col]) != _norm(expect[k][1]) or not p_ok:
            raise MRIOError(f"{path}: column {col + 1} header is ({prov_hdr[col] if prov_hdr else ''}, "
                            f"{col_hdr[col]}) but the intermediate columns must follow the row order; expected "
                            f"({expect[k][0]}, {expect[k][1]})")
    K0 = len(layout.fd_names)
    fd_start = c + n
    for r in range(R):
        for k, keys in enumerate(layout.fd_keys):
            col = fd_start + r * K0 + k
            if col >= len(col_hdr) or not any(key in col_hdr[col] for key in keys):
                raise MRIOError(f"{path}: column {col + 1} should be final demand '{layout.fd_names[k]}' of "
                                f"{provinces[r]} but its header is {col_hdr[col] if col < len(col_hdr) else 'missing'!r}")
    rest = list(range(fd_start + R * K0, len(col_hdr)))
    exp_cols = [j for j in rest if layout.export_key in col_hdr[j]]
    tot_cols = [j for j in rest if layout.total_output_key in col_hdr[j]]
    if len(exp_cols) != 1:
        raise MRIOError(f"{path}: expected one export column after final demand, found {len(exp_cols)}")
    if len(tot_cols) != 1:
        raise MRIOError(f"{path}: expected one '{layout.total_output_key}' column, found {len(tot_cols)}")
    other_cols = [j for j in rest if j not in exp_cols + tot_cols and j < tot_cols[0] and col_hdr[j]]

    def num(block) -> np.ndarray:
        arr = pd.DataFrame(block).apply(pd.to_numeric, errors="coerce").to_numpy(dtype=np.float64)
        return arr

    vals = num(body.iloc[:n, :])
    if np.isnan(vals[:, c: tot_cols[0] + 1]).any():
        i, j = np.argwhere(np.isnan(vals[:, c: tot_cols[0] + 1]))[0]
        raise MRIOError(f"{path}: non-numeric or empty cell at row {h + i + 1}, column {c + j + 1}")
    Z = vals[:, c: c + n]
    fd = vals[:, fd_start: fd_start + R * K0].reshape(n, R, K0)
    exports = vals[:, exp_cols[0]]
    other = vals[:, other_cols].sum(axis=1) if other_cols else None
    x_file = vals[:, tot_cols[0]]
    cats = list(layout.fd_names) + ["export"] + (["other"] if other is not None else [])
    K = len(cats)
    Y = np.zeros((n, R, K))
    Y[:, :, :K0] = fd
    region_of = np.repeat(np.arange(R), N)
    Y[np.arange(n), region_of, K0] = exports
    if other is not None:
        Y[np.arange(n), region_of, K0 + 1] = other
    x = Z.sum(axis=1) + Y.sum(axis=(1, 2))
    bad = np.nonzero(np.abs(x - x_file) > layout.rtol * np.maximum(np.abs(x_file), 1.0))[0]
    if len(bad):
        k = bad[0]
        raise MRIOError(f"{path}: row {h + k + 1} ({expect[k][0]}, {expect[k][1]}): intermediate plus final use "
                        f"= {x[k]:.6g} but total output = {x_file[k]:.6g}; the workbook is not balanced or the "
                        "layout differs (pass a CEADSLayout)")
    # rows below the intermediate block
    below_labels = [(_norm(p) + " " + _norm(s)).strip() for p, s in zip(row_prov[n:], row_sec[n:])]
    below = num(body.iloc[n:, c: c + n])
    F_rows, F_names = [], []
    for i, lab in enumerate(below_labels):
        if layout.import_key in lab and "total" not in lab:
            F_rows.append(below[i]); F_names.append("imports")  # noqa: E702
    for nm, key in layout.va_keys.items():
        hits = [i for i, lab in enumerate(below_labels) if key in lab and "total" not in lab]
        if len(hits) != 1:
            raise MRIOError(f"{path}: expected one value-added row containing '{key}' below the intermediate "
                            f"block, found {len(hits)}")
        F_rows.append(below[hits[0]]); F_names.append(nm)  # noqa: E702
    tin = [i for i, lab in enumerate(below_labels) if layout.total_input_key in lab]
    if tin:
        total_input = below[tin[0]]
        col_total = Z.sum(axis=0) + np.sum([r for r in F_rows], axis=0)
        badc = np.nonzero(np.abs(col_total - total_input) > layout.rtol * np.maximum(np.abs(total_input), 1.0))[0]
        if len(badc):
            k = badc[0]
            raise MRIOError(f"{path}: column ({expect[k][0]}, {expect[k][1]}): inputs plus value added = "
                            f"{col_total[k]:.6g} but total input = {total_input[k]:.6g}")
    F = np.vstack(F_rows)
    return MRIO.from_arrays(
        Z, Y.reshape(n, R * K), F, np.zeros((len(F_names), R * K)),
        regions=provinces, sectors=sectors, categories=cats, stressors=F_names,
        units=[layout.unit] * len(F_names), name=name or path.stem,
    )  # fmt: skip


def write_ceads_like(path: str | Path, Z, fd, exports, va, provinces, sectors, *, imports=None, other=None) -> Path:
    """Write a workbook in the CEADs layout (used by tests and for exchanging small tables).

    `fd` has shape `(n, R, 5)` (the five provincial final-use columns), `va` `(4, n)`
    (compensation, taxes, depreciation, surplus). Written atomically.
    """
    path = Path(path)
    labels = [(p, s) for p in provinces for s in sectors]
    fd_titles = ("Rural household consumption", "Urban household consumption", "Government consumption",
                 "Gross fixed capital formation", "Changes in inventories")
    head0 = ["", ""] + [p for p, _ in labels] + [p for p in provinces for _ in fd_titles] + [""] * (2 + (other is not None))
    head1 = ["Province", "Sector"] + [s for _, s in labels] + [t for _ in provinces for t in fd_titles] + \
        ["Export"] + (["Other"] if other is not None else []) + ["Total output"]
    x = Z.sum(axis=1) + fd.sum(axis=(1, 2)) + exports + (other if other is not None else 0)
    head0 = head0 + [""] * (len(head1) - len(head0))
    rows = [head0, head1]
    for k, (p, s) in enumerate(labels):
        rows.append([p, s, *Z[k], *fd[k].reshape(-1), exports[k], *([other[k]] if other is not None else []), x[k]])
    if imports is not None:
        rows.append(["Imports", "", *imports])
    names = ("Compensation of employees", "Net taxes on production", "Depreciation of fixed capital",
             "Operating surplus")
    for nm, row in zip(names, va):
        rows.append([nm, "", *row])
    rows.append(["Total value added", "", *va.sum(axis=0)])
    tin = Z.sum(axis=0) + va.sum(axis=0) + (imports if imports is not None else 0)
    rows.append(["Total input", "", *tin])
    width = max(len(r) for r in rows)
    df = pd.DataFrame([list(r) + [None] * (width - len(r)) for r in rows])
    with atomic_path(path) as tmp:
        df.to_excel(tmp, header=False, index=False)
    return path
