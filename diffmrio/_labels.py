"""The one label/unlabel step between xarray at the edges and arrays inside the kernels.

`unlabel` takes a user's input to a table's order: an `xarray.DataArray` is aligned **by label** (never by
position), so a permuted input gives the same result as an ordered one, and a missing or extra label is an error
that names it; a plain array is taken positionally and must have the expected shape. `label` wraps a kernel's
output with its dimensions, coordinates and `units` (the convention of [`accounts`][diffmrio.accounts]: a
variable over stressors of different units says `"<unit>"` and the `unit` coordinate of `stressor` holds each).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import xarray as xr

from ._units import UNIT_NOTE, common_unit


def unlabel(
    value: Any,
    dims: Sequence[str],
    coords: Mapping[str, Sequence[Any]],
    *,
    name: str,
    fn: str,
    units: str | None = None,
    shape: tuple[int, ...] | None = None,
) -> np.ndarray:
    """`value` as a float64 array over `dims` in the order of `coords`.

    **Arguments**

    - `value`: an `xarray.DataArray` with exactly the dimensions `dims`, each labelled with the table's labels in
      any order (aligned by label), or an array-like taken positionally.
    - `dims`, `coords`: the expected dimensions and, per dimension, the labels in the table's order.
    - `name`, `fn`: the argument and the function, for error messages.
    - `units`: when given and the DataArray has a `units` attribute, they must agree.
    - `shape`: the shape a positional (unlabelled) array must have; default the labelled shape.

    **Returns** a float64 numpy array of shape `(len(coords[d]) for d in dims)` (labelled input) or `shape`.
    """
    dims = tuple(dims)
    if not isinstance(value, xr.DataArray):
        out = np.asarray(value, dtype=np.float64)
        want = tuple(len(coords[d]) for d in dims) if shape is None else tuple(shape)
        if out.shape != want:
            order = ", ".join(dims) + (", flattened in this order" if len(want) != len(dims) else "")
            raise ValueError(f"`{fn}`: `{name}` must have shape {want} ({order}), {int(np.prod(want))} entries; got "
                             f"{out.shape}. Or pass an xarray.DataArray with dims {dims}, aligned by label.")
        return out
    if set(value.dims) != set(dims) or len(value.dims) != len(dims):
        raise ValueError(f"`{fn}`: `{name}` must have dims {dims}; it has {value.dims}. Rename or transpose it "
                         "(`.rename(...)`), or pass a plain array in the table's order.")
    sel = {}
    for d in dims:
        if d not in value.coords:
            raise ValueError(f"`{fn}`: `{name}` has no labels on its dimension {d!r}, so it cannot be aligned to "
                             f"the table; assign them (`.assign_coords({d}=...)`) or pass a plain array.")
        have = [v.item() if hasattr(v, "item") else v for v in value[d].values]
        want = list(coords[d])
        if len(set(have)) != len(have):
            dup = sorted({str(v) for v in have if have.count(v) > 1})
            raise ValueError(f"`{fn}`: `{name}` repeats the {d} label(s) {dup}; each label must appear once.")
        missing = [v for v in want if v not in set(have)]
        extra = [v for v in have if v not in set(want)]
        if missing or extra:
            raise ValueError(f"`{fn}`: `{name}`'s {d} labels do not match the table's: missing {missing}, not in "
                             f"the table {extra}. The table's {d} labels are {want}.")
        sel[d] = want
    got_units = value.attrs.get("units")
    if units is not None and got_units is not None and str(got_units) != str(units):
        raise ValueError(f"`{fn}`: `{name}` is in {got_units!r} but {units!r} is expected; convert it first.")
    return np.asarray(value.sel(sel).transpose(*dims).values, dtype=np.float64)


def label(
    array: Any,
    dims: Sequence[str],
    coords: Mapping[str, Sequence[Any]],
    *,
    units: str | Sequence[str] | None = None,
    name: str | None = None,
    attrs: Mapping[str, Any] | None = None,
) -> xr.DataArray:
    """A kernel's output as an `xarray.DataArray` over `dims` with `coords` and a `units` attribute (when given).

    `units` is one string, or one unit per stressor (a list, for a variable with a `stressor` dimension): then the
    `stressor` dimension gets a `unit` coordinate and `units` is their common unit, or `"<unit>"` (with a
    `units_note`) when they differ. A `units` containing `"<unit>"` always gets the note (unless `attrs` has one).
    """
    at = dict(attrs or {})
    c = {d: list(coords[d]) for d in dims if d in coords}
    if units is not None and not isinstance(units, str):
        per_stressor = [str(u) for u in units]
        if "stressor" not in dims or len(per_stressor) != len(c.get("stressor", [])):
            raise ValueError(f"`label`: one unit per stressor needs a `stressor` dimension with {len(per_stressor)} "
                             f"labels; the dims are {tuple(dims)}.")
        c["unit"] = ("stressor", per_stressor)
        units = common_unit(per_stressor)
    if units is not None:
        at["units"] = units
        if "<unit>" in units:
            at.setdefault("units_note", UNIT_NOTE)
    return xr.DataArray(np.asarray(array), dims=tuple(dims), coords=c, name=name, attrs=at)
