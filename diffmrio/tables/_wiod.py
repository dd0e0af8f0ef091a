"""Real tables: a documented cleaning helper for the rounding artefacts of published tables, and a reader for the
WIOD 2013-release world tables. The validation policy they use lives with the checks in `diffmrio._validate`."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import xarray as xr

from .._mrio import MRIO
from .._validate import MRIOError, _names


def clean_table(mrio, *, categories: Sequence[str] | None = None, tol: float = 0.0, validate: bool | str = "warn"):
    """Remove the rounding artefacts of a published table that make it fail validation, and say what changed.

    Two steps, both recorded:

    1. entries of `Z`, `Y`, `F`, `F_Y` with $|v| \\le$ `tol` are set to 0 (rounding noise; default 0: none);
    2. in every row whose gross output $x = Z 1 + Y 1$ is negative, the negative final-demand entries of
       `categories` (default: every category whose name looks like inventories, `INVEN`, `inventory`,
       `Changes in inventories`; else all categories) are set to 0, smallest first, only as far as
       needed to bring $x$ to 0 (the rest of each entry is kept).

    Value added or other satellite rows are not changed. Intermediate flows are never changed.

    **Returns** `(cleaned MRIO, report)`: the report is an `xarray.Dataset` over `change` with the
    `region`, `sector`, `column` (`"region/category"`), `before`, `after` of each changed final-demand cell, and
    attrs `n_tol_zeroed`, `rows_fixed`. The cleaned table is built with the policy `validate` (default
    `"warn"`: whatever else is wrong with it is listed in its `validation`).
    """
    regions, sectors, cats = mrio.regions, mrio.sectors, mrio.categories
    Z, Y = np.array(mrio.Z, dtype=np.float64), np.array(mrio.Y, dtype=np.float64)
    F, F_Y = np.array(mrio.F, dtype=np.float64), np.array(mrio.F_Y, dtype=np.float64)
    n_tol = 0
    if tol > 0:
        for a in (Z, Y, F, F_Y):
            small = (np.abs(a) <= tol) & (a != 0)
            n_tol += int(small.sum())
            a[small] = 0.0
    if categories is None:
        inv = [c for c in cats if "inven" in c.lower()]
        categories = inv or list(cats)
    unknown = [c for c in categories if c not in cats]
    if unknown:
        raise ValueError(f"categories {unknown} are not in the table's {list(cats)}")
    K = len(cats)
    cols = np.array([r * K + cats.index(c) for r in range(len(regions)) for c in categories])
    x = Z.sum(axis=1) + Y.sum(axis=1)
    rows = np.nonzero(x < 0)[0]
    rec = []
    for i in rows:
        deficit = -x[i]
        cand = [j for j in cols[np.argsort(Y[i, cols])] if Y[i, j] < 0]
        for j in cand:
            if deficit <= 0:
                break
            before = Y[i, j]
            Y[i, j] = min(0.0, before + deficit)
            deficit -= Y[i, j] - before
            rec.append((regions[i // len(sectors)], sectors[i % len(sectors)],
                        f"{regions[j // K]}/{cats[j % K]}", before, Y[i, j]))
        if deficit > 1e-9 * max(1.0, abs(x[i])):
            raise MRIOError(f"row {_names([i], regions, sectors)} has negative gross output {x[i]:.6g} that the "
                            f"negative entries of {list(categories)} cannot explain; fix the table by hand")
    report = xr.Dataset(
        {k: ("change", [r[n] for r in rec]) for n, k in enumerate(("region", "sector", "column", "before", "after"))},
        attrs={"n_tol_zeroed": n_tol, "rows_fixed": len(rows), "categories": ", ".join(categories)},
    )
    new = MRIO.from_arrays(Z, Y, F, F_Y, regions=regions, sectors=sectors, categories=cats,
                           stressors=mrio.stressors, units=mrio.units, name=mrio.name, validate=validate)
    return new, report


def read_wiod(path: str | Path, *, validate: bool | str = "raise", clean: bool = False):
    """Read a WIOD 2013-release world table in the netCDF layout of `../shared/data/wiod2013` (`Z[row, col]`,
    `Y[row, fd]` with `row_country/row_industry`, `fd_country/fd_category` labels, million USD).

    Value added is the one satellite row, `value_added = x - 1' Z` with $x = Z 1 + Y 1$ (so it includes taxes
    less subsidies and international transport margins, and the table balances exactly). With `clean=True`
    the negative inventory changes that make gross output negative (rounding in the published integers) are
    removed first by [`clean_table`][diffmrio.tables.clean_table] and value added is computed after; each changed cell
    is listed in `MRIO.validation` (`"cleaned: ..."` lines), and so in the attributes of its accounts.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file")
    with xr.open_dataset(path) as ds:
        missing = [v for v in ("Z", "Y", "row_country", "row_industry", "fd_country", "fd_category") if v not in ds.variables]
        if missing:
            raise MRIOError(f"{path}: not a WIOD netCDF table (missing {missing})")
        Z = ds["Z"].values.astype(np.float64)
        Y = ds["Y"].values.astype(np.float64)
        rc, ri = ds["row_country"].values.astype(str), ds["row_industry"].values.astype(str)
        fc, fcat = ds["fd_country"].values.astype(str), ds["fd_category"].values.astype(str)
        name = f"WIOD {ds.attrs.get('year', '')}".strip()
    regions = list(dict.fromkeys(rc))
    sectors = list(dict.fromkeys(ri))
    categories = list(dict.fromkeys(fcat))
    R, N, K = len(regions), len(sectors), len(categories)
    if list(rc) != [r for r in regions for _ in range(N)] or list(ri) != sectors * R:
        raise MRIOError(f"{path}: rows are not country-major (country, industry)")
    if list(fc) != [r for r in regions for _ in range(K)] or list(fcat) != categories * R:
        raise MRIOError(f"{path}: final-demand columns are not (country, category) in the row countries' order")
    notes: tuple[str, ...] = ()
    if clean:
        raw = MRIO.from_arrays(Z, Y, regions=regions, sectors=sectors, categories=categories, validate="off")
        cleaned, rep = clean_table(raw, validate="off")  # validated below, with value added
        Y = np.asarray(cleaned.Y)
        notes = tuple(f"cleaned: {rep.column.values[k]} final demand of {rep.region.values[k]}/{rep.sector.values[k]} "
                      f"{rep.before.values[k]:.6g} -> {rep.after.values[k]:.6g}" for k in range(rep.sizes["change"]))
    x = Z.sum(axis=1) + Y.sum(axis=1)
    va = x - Z.sum(axis=0)
    try:
        m = MRIO.from_arrays(Z, Y, va[None, :], regions=regions, sectors=sectors, categories=categories,
                             stressors=["value_added"], units=["million USD"], name=name, validate=validate)
    except MRIOError as err:
        if clean or not (x < 0).any():
            raise
        # negative gross output is what clean=True repairs: say so where the user meets the error
        raise MRIOError(
            f"{err} Or read it with `read_wiod({str(path)!r}, clean=True)`, which sets the negative inventory "
            "changes (final demand INVEN) of those rows to zero, only as far as needed to make gross output "
            "non-negative, and lists each changed cell in `MRIO.validation`."
        ) from err
    if notes:
        import dataclasses

        m = dataclasses.replace(m, validation=m.validation + notes)
    return m
