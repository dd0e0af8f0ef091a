"""Stressor rows from a user's emission inventory: a long-format CSV (`stressor, region, sector, value[, unit]`)
read onto a table's `F`, aligned by the table's region and sector labels (docs/table_building.md)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pandas as pd

from .._mrio import MRIO, _frozen
from .._validate import check_lost_stressors

__all__ = ["read_emissions_csv"]

COLUMNS = ("stressor", "region", "sector", "value")


def read_emissions_csv(path: str | Path, mrio: MRIO, *, extension: str = "inventory") -> MRIO:
    """Add (or replace) stressor rows of `mrio` from a long-format CSV inventory.

    **Arguments:**

    - `path`: CSV with columns `stressor, region, sector, value` and optionally `unit` (one unit per stressor).
      Labels are read as text (a sector code `01` stays `"01"`) with surrounding spaces removed; region and sector
      labels must be those of the table, in any order. Region-sectors a stressor does not list count as zero.
    - `mrio`: the table that receives the rows.
    - `extension`: the extension name of the new stressors when the table groups its stressors into extensions
      ([`MRIO.extensions`][diffmrio.MRIO]; unused otherwise). Replaced stressors keep theirs.

    **Returns:** a new MRIO (population, extensions and the rest of the table unchanged) whose `F` holds the
    table's stressors, with rows of the same name replaced by the CSV's, followed by the CSV's new stressors.
    `F_Y` (direct emissions of final demand) is kept for a replaced stressor and zero for a new one. The unit of
    a replaced stressor is the table's (the CSV's when the table records none); a new stressor takes the CSV's
    `unit` (empty without the column).

    **Raises:** `FileNotFoundError` for a missing file; `ValueError` naming the file and the problem for missing
    columns, unknown region or sector labels, duplicated `(stressor, region, sector)` entries, non-numeric,
    missing or infinite values, several units for one stressor, or a `unit` that differs from the table's unit of
    the stressor it replaces (convert the values and the unit in the CSV, or rename the stressor). Emissions booked
    to a sector with zero gross output give the table's
    [`MRIOWarning`][diffmrio.MRIOWarning] (they would be in no account).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"emission inventory {path} does not exist; write a CSV with columns "
                                f"{', '.join(COLUMNS)} (and optionally unit), one row per stressor and region-sector.")
    try:
        df = pd.read_csv(path, dtype={"stressor": str, "region": str, "sector": str, "unit": str})
    except pd.errors.EmptyDataError:
        raise ValueError(f"{path}: the emission CSV is empty; it needs a header {', '.join(COLUMNS)} "
                         "(optional unit) and one row per entry.") from None
    missing = [c for c in COLUMNS if c not in df.columns]
    if missing:
        raise ValueError(f"{path}: emission CSV needs columns {list(COLUMNS)} (optional 'unit'); missing {missing}, "
                         f"found {list(df.columns)}")
    for col in ("stressor", "region", "sector"):
        if df[col].isna().any():
            raise ValueError(f"{path}: empty {col} label in row {int(np.nonzero(df[col].isna().to_numpy())[0][0]) + 2}; "
                             f"give every row its {col}.")
        df[col] = df[col].str.strip()
    for col, labels in (("region", mrio.regions), ("sector", mrio.sectors)):
        unknown = sorted(set(df[col]) - set(labels))
        if unknown:
            raise ValueError(f"{path}: {col} labels {unknown[:5]} are not in the table; the table's {col}s are "
                             f"{list(labels)[:8]}{'...' if len(labels) > 8 else ''}. Rename them in the CSV.")
    dup = df.duplicated(["stressor", "region", "sector"])
    if dup.any():
        raise ValueError(f"{path}: {int(dup.sum())} duplicated (stressor, region, sector) rows, e.g. "
                         f"{tuple(df.loc[dup].iloc[0][['stressor', 'region', 'sector']])}; sum them first.")
    vals = pd.to_numeric(df["value"], errors="coerce").to_numpy(dtype=np.float64)
    bad = ~np.isfinite(vals)
    if bad.any():
        k = int(np.nonzero(bad)[0][0])
        raise ValueError(f"{path}: non-numeric, missing or infinite value {df['value'].iloc[k]!r} in column 'value' "
                         f"(row {k + 2}: {df['stressor'].iloc[k]}, {df['region'].iloc[k]}, {df['sector'].iloc[k]}); "
                         "give a number for every entry (0 for none).")
    df["value"] = vals
    if "unit" in df.columns:
        df["unit"] = df["unit"].fillna("").str.strip()

    N = mrio.n_sectors
    ridx = {r: k for k, r in enumerate(mrio.regions)}
    sidx = {s: k for k, s in enumerate(mrio.sectors)}
    F = {name: np.asarray(mrio.F[k], dtype=np.float64) for k, name in enumerate(mrio.stressors)}
    FY = {name: np.asarray(mrio.F_Y[k], dtype=np.float64) for k, name in enumerate(mrio.stressors)}
    units = dict(zip(mrio.stressors, mrio.units))
    exts = dict(zip(mrio.stressors, mrio.extensions)) if mrio.extensions else {}
    changed = []
    for name, grp in df.groupby("stressor", sort=False):
        if "unit" in grp:
            given = sorted(set(grp["unit"]))
            if len(given) > 1:
                raise ValueError(f"{path}: stressor {name!r} has several units {given}; give one unit per stressor "
                                 "(convert the values to one unit).")
            unit = given[0]
            if name in units and unit and units[name] and unit != units[name]:
                raise ValueError(f"{path}: stressor {name!r} is in {unit!r} in the CSV but in {units[name]!r} in the "
                                 f"table it replaces; convert the CSV's values to {units[name]!r} (and its unit "
                                 "column), or give the stressor a new name to add it as a new row.")
            if name not in units or not units[name]:
                units[name] = unit
        else:
            units.setdefault(name, "")
        row = np.zeros(mrio.n)
        row[[ridx[r] * N + sidx[s] for r, s in zip(grp["region"], grp["sector"])]] = grp["value"].to_numpy()
        F[name] = row
        FY.setdefault(name, np.zeros(mrio.Y.shape[1]))
        if mrio.extensions:
            exts.setdefault(name, str(extension))
        changed.append(name)

    names = list(F)
    F_new = np.vstack([F[k] for k in names])
    idx = [names.index(k) for k in changed]
    x = np.asarray(mrio.Z).sum(axis=1) + np.asarray(mrio.Y).sum(axis=1)
    check_lost_stressors(F_new[idx], x, mrio.regions, mrio.sectors, changed, [units[k] for k in changed])
    return dataclasses.replace(
        mrio, F=_frozen(F_new), F_Y=_frozen(np.vstack([FY[k] for k in names])), stressors=tuple(names),
        units=tuple(units[k] for k in names), extensions=tuple(exts[k] for k in names) if mrio.extensions else (),
    )  # fmt: skip
