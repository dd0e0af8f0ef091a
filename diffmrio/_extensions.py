"""pymrio's extensions and per-capita accounts on labelled outputs.

An [`MRIO`][diffmrio.MRIO] built from pymrio keeps which extension each stressor belongs to
(`MRIO.extensions`, the `extension` coordinate of [`accounts`][diffmrio.accounts]) and the population per
region (`MRIO.population`); [`select_extension`][diffmrio.select_extension] gives back one extension's
variables as pymrio has them (`io.emissions.D_cba`), and [`accounts`][diffmrio.accounts] adds pymrio's
per-capita accounts `D_*_cap = D_*_reg / population`.
"""

from __future__ import annotations

import warnings

import numpy as np
import xarray as xr

from ._mrio import _strip_extension
from ._validate import MRIOWarning

PER_CAPITA = ("D_cba_cap", "D_pba_cap", "D_imp_cap", "D_exp_cap")


def per_capita_units(units, population_unit: str) -> str:
    """The `units` attribute of a per-capita account: `"<unit> / <population unit>"` when its stressors share
    one unit, otherwise `"<unit> / <population unit>"` with `<unit>` standing for the `unit` coordinate."""
    distinct = sorted({str(u) for u in units})
    unit = distinct[0] if len(distinct) == 1 and distinct[0] else "<unit>"
    return f"{unit} / {population_unit}"


def add_per_capita(ds: xr.Dataset, mrio) -> xr.Dataset:
    """Add `population(region)` and pymrio's per-capita accounts `D_cba_cap`, `D_pba_cap`, `D_imp_cap`,
    `D_exp_cap` `(stressor, region)` (each `D_*_reg / population`, as pymrio's `calc_system`) to an accounts
    Dataset; nothing when the table has no population. A region with zero population gets NaN per-capita
    accounts and an [`MRIOWarning`][diffmrio.MRIOWarning] naming it."""
    if mrio.population is None:
        return ds
    pop = np.asarray(mrio.population, dtype=np.float64)
    zero = pop == 0
    if zero.any():
        names = [mrio.regions[i] for i in np.flatnonzero(zero)]
        warnings.warn(
            f"population is 0 for {names[:10]}: their per-capita accounts (D_*_cap) are NaN. Give their population "
            "or aggregate them with a populated region (`aggregate_mrio`).",
            MRIOWarning,
            stacklevel=3,
        )
    den = np.where(zero, np.nan, pop)
    ds["population"] = xr.DataArray(
        pop, dims="region", attrs={"units": mrio.population_unit, "description": "population per region"}
    )
    for key in PER_CAPITA:
        reg = key.replace("_cap", "_reg")
        ds[key] = xr.DataArray(np.asarray(ds[reg].values) / den[None, :], dims=("stressor", "region"),
                               attrs=_per_capita_attrs(key, mrio.units, mrio.population_unit))
    return ds


def _per_capita_attrs(key: str, units, population_unit: str) -> dict:
    u = per_capita_units(units, population_unit)
    note = "; <unit> is the stressor's `unit` coordinate" if u.startswith("<unit>") else ""
    return {"units": u, "description": f"{key.replace('_cap', '_reg')} / population (pymrio's {key}){note}"}


def select_extension(ds: xr.Dataset, extension: str) -> xr.Dataset:
    """One pymrio extension of a labelled Dataset ([`accounts`][diffmrio.accounts] or
    [`MRIO.to_xarray`][diffmrio.MRIO.to_xarray]): its stressors only, labelled as in pymrio (the
    `"extension:"` prefix that [`MRIO.from_pymrio`][diffmrio.MRIO.from_pymrio] adds to labels shared by two
    extensions removed), the `stressor` dimension kept even when the extension has one row.

    `select_extension(acc, "emissions")["D_cba_cap"]` is pymrio's `io.emissions.D_cba_cap`, with stressors as
    rows and regions as columns.

    !!! example
        ```python
        import diffmrio, pymrio
        io = pymrio.load_test()
        acc = diffmrio.accounts(diffmrio.MRIO.from_pymrio(io))
        em = diffmrio.select_extension(acc, "emissions")
        em["D_cba_cap"].to_pandas()
        ```
    """
    if "extension" not in ds.coords:
        raise KeyError(
            "this Dataset has no `extension` coordinate: its table was not built with extensions (build it with "
            "`MRIO.from_pymrio`, or pass `extensions=` to `MRIO.from_arrays`)"
        )
    ext = np.asarray(ds["extension"].values).astype(str)
    keep = np.flatnonzero(ext == extension)
    if keep.size == 0:
        raise KeyError(f"extension {extension!r} not in this Dataset; available: {list(dict.fromkeys(ext))}")
    out = ds.isel(stressor=keep)
    labels = _strip_extension([str(v) for v in out["stressor"].values], extension)
    out = out.assign_coords(stressor=labels)
    if "population" in out:
        pop_unit = str(out["population"].attrs.get("units", "person"))
        for key in PER_CAPITA:
            if key in out:
                out[key].attrs.update(_per_capita_attrs(key, out["unit"].values, pop_unit))
    out.attrs["extension"] = extension
    return out
