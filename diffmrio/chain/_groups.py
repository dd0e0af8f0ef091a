"""A user's own grouping of final demand as a [`GroupIndex`][diffmrio.chain.GroupIndex] (index arrays, never
dense masks), for [`attribute`][diffmrio.chain.attribute] and [`monte_carlo`][diffmrio.chain.monte_carlo]."""

from __future__ import annotations

from collections.abc import Mapping

import jax.numpy as jnp
import numpy as np
import pandas as pd
import xarray as xr

from ._fastdraw import GroupIndex

_HOW = (
    "Give an xarray.DataArray of group labels with dims ('region', 'sector') (rows of Y: final products) or "
    "('fd_region', 'category') (columns of Y: final demand), a mapping {(region, sector): label} or "
    "{(region, category): label} (a pandas Series with that MultiIndex works too), a sequence of one label per "
    "row or per column of Y, or a GroupIndex; entries without a label (missing, None, '') belong to no group."
)


def _none(v) -> bool:
    return v is None or (isinstance(v, float) and np.isnan(v)) or (isinstance(v, str) and v == "")


def _index(values, axis: str) -> GroupIndex:
    """Group numbers in order of first appearance of each label (-1: no group)."""
    labels: dict[str, int] = {}
    ids = np.full(len(values), -1, dtype=np.int32)
    for k, v in enumerate(values):
        if _none(v):
            continue
        ids[k] = labels.setdefault(str(v), len(labels))
    if not labels:
        raise ValueError("the grouping gives no entry of final demand a group label. " + _HOW)
    return GroupIndex(jnp.asarray(ids), axis, tuple(labels))


def custom_group_index(chain, by) -> GroupIndex:
    """A [`GroupIndex`][diffmrio.chain.GroupIndex] from a user's grouping of the rows or columns of final demand
    `Y[(region, sector), (fd_region, category)]`:

    - an `xarray.DataArray` of labels with dims `("region", "sector")` (rows: group final products by where and
      what they are made) or `("fd_region", "category")` (columns: group final demand by who buys it), labelled
      with the table's regions, sectors and categories (any order; missing entries belong to no group);
    - a mapping (or pandas Series) `{(region, sector): label}` (rows) or `{(region, category): label}` (columns);
    - a sequence of one label per row (length n) or per column (length fd) of `Y`, in the table's order;
    - a `GroupIndex` (returned as is).

    Entries without a label (missing, `None`, `""`) belong to no group: zero-out attribution leaves them in.
    Labels are numbered in order of first appearance.
    """
    if isinstance(by, GroupIndex):
        return by
    m = chain.mrio
    rows = [(r, s) for r in m.regions for s in m.sectors]
    cols = [(r, c) for r in m.regions for c in m.categories]
    if isinstance(by, xr.DataArray):
        dims = set(by.dims)
        if dims == {"region", "sector"}:
            order, axis, keys = ("region", "sector"), "row", rows
        elif dims == {"fd_region", "category"}:
            order, axis, keys = ("fd_region", "category"), "col", cols
        else:
            raise ValueError(f"a grouping DataArray has dims {by.dims}. " + _HOW)
        for d, want in zip(order, (m.regions, m.sectors if axis == "row" else m.categories)):
            if d not in by.coords:
                raise ValueError(f"the grouping DataArray needs a `{d}` coordinate labelled like the table: {list(want)}")
            unknown = [v for v in by[d].values.tolist() if v not in want]
            if unknown:
                raise ValueError(f"the grouping DataArray's `{d}` labels {unknown} are not in the table: {list(want)}")
        s = by.transpose(*order).to_series()
        by = dict(s.items())
        return _index([by.get(k) for k in keys], axis)
    if isinstance(by, pd.Series):
        by = dict(by.items())
    if isinstance(by, Mapping):
        keys = [tuple(k) if isinstance(k, (tuple, list)) else k for k in by]
        in_rows, in_cols = set(rows), set(cols)
        if keys and all(k in in_rows for k in keys):
            axis, order = "row", rows
        elif keys and all(k in in_cols for k in keys):
            axis, order = "col", cols
        else:
            bad = [k for k in keys if k not in in_rows and k not in in_cols][:5]
            raise ValueError(
                "the grouping mapping's keys must all be (region, sector) rows or all (region, category) columns of "
                f"the table; {bad or 'a mix of both'} are not. " + _HOW
            )
        lookup = {(tuple(k) if isinstance(k, (tuple, list)) else k): v for k, v in by.items()}
        return _index([lookup.get(k) for k in order], axis)
    if isinstance(by, (list, tuple, np.ndarray)):
        values = list(np.asarray(by, dtype=object).reshape(-1)) if isinstance(by, np.ndarray) else list(by)
        n, fd = len(rows), len(cols)
        if len(values) == n and n == fd:
            raise ValueError(
                f"a sequence of {n} labels is ambiguous: Y has {n} rows and {fd} columns. Use "
                "GroupIndex(ids, 'row' or 'col', labels), a mapping or a DataArray instead."
            )
        if len(values) == n:
            return _index(values, "row")
        if len(values) == fd:
            return _index(values, "col")
        raise ValueError(f"a sequence of {len(values)} group labels; Y has {n} rows and {fd} columns. " + _HOW)
    raise TypeError(f"cannot group final demand by a {type(by).__name__}. " + _HOW)
