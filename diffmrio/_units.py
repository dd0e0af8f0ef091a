"""`units` attributes for the labelled outputs a user sees (CF-style strings; `"1"` for dimensionless).

A table's stressors may carry different units (the `unit` coordinate of the `stressor` dimension); a variable
over several stressors then has `units` with `<unit>` standing for that coordinate, e.g. `"<unit> / M.EUR"`.
An [`MRIO`][diffmrio.MRIO] does not record its monetary unit, so monetary flows say `MONEY` (read the table's
documentation for the currency and price basis).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import xarray as xr

#: The units of a table's monetary flows when the table does not name them.
MONEY = "monetary unit of the table"

#: The `units_note` of a variable whose `units` say `<unit>`.
UNIT_NOTE = "<unit> is the stressor's `unit` coordinate"


def common_unit(units: Sequence[str]) -> str:
    """The stressors' unit when they share one, else `"<unit>"` (read the `unit` coordinate)."""
    distinct = sorted({str(u) for u in units})
    return distinct[0] if len(distinct) == 1 and distinct[0] else "<unit>"


def stressor_units(mrio, idx: Iterable[int]) -> list[str]:
    """The units of the stressors `idx` of a table (`""` each when the table records none)."""
    units = getattr(mrio, "units", None)
    return ["" if units is None else str(units[i]) for i in idx]


def per(a: str, b: str) -> str:
    """`a / b`, bracketing `b` when it is a compound unit."""
    return f"{a} / ({b})" if (" " in b and not b.startswith("(")) else f"{a} / {b}"


def account_units(mrio) -> dict[str, str]:
    """`units` of each variable of [`accounts`][diffmrio.accounts] and [`MRIO.to_xarray`][diffmrio.MRIO.to_xarray]
    for this table."""
    u, m = common_unit(mrio.units), MONEY
    out = {"Z": m, "Y": m, "F": u, "F_Y": u, "x": m, "A": "1", "B": "1", "G": "1", "L": "1", "S": per(u, m), "M": per(u, m), "M_down": per(u, m),
           "S_Y": per(u, m), "burden": u, "final_producer": u}
    for k in ("D_cba", "D_pba", "D_imp", "D_exp"):
        out[k] = out[f"{k}_reg"] = u
    return out


def add_account_units(ds: xr.Dataset, mrio) -> xr.Dataset:
    """Set `units` on every variable of an accounts or table Dataset that has none (and say what `<unit>` means)."""
    table = account_units(mrio)
    for name, da in ds.data_vars.items():
        if "units" in da.attrs or name not in table:
            continue
        da.attrs["units"] = table[name]
        if "<unit>" in table[name]:
            da.attrs.setdefault("units_note", UNIT_NOTE)
    return ds


def missing_units(ds: xr.Dataset | xr.DataArray) -> list[str]:
    """Names of the numeric data variables without a non-empty `units` attribute (for checks and tests).

    Variables of text (labels such as a structural path's regions) are quantities of no unit and are skipped."""
    if isinstance(ds, xr.DataArray):
        return [] if ds.attrs.get("units") or _is_text(ds) else [str(ds.name)]
    return [str(k) for k, v in ds.data_vars.items() if not v.attrs.get("units") and not _is_text(v)]


def _is_text(da: xr.DataArray) -> bool:
    return da.dtype.kind in "USO"
