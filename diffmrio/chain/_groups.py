"""A user's own grouping of final demand as a [`GroupIndex`][diffmrio.chain.GroupIndex] (index arrays, never
dense masks), for [`attribute`][diffmrio.chain.attribute] and [`monte_carlo`][diffmrio.chain.monte_carlo]."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
import xarray as xr
from jaxtyping import Array, ArrayLike, Float, Int, Shaped

from ._chain import Chain

GROUPINGS = ("consumer", "final_producer", "sector", "region_sector", "foreign")


class GroupIndex(eqx.Module):
    """A partition of the entries of final demand `Y[n, fd]` into groups, by rows or by columns.

    **Fields:** `ids` (int): the group of each row (`axis="row"`, length `n`) or column (`axis="col"`, length
    `fd`), -1 for none; static `axis` and `labels`.
    """

    ids: Int[Array | np.ndarray, " entry"]
    axis: str = eqx.field(static=True)
    labels: tuple[str, ...] = eqx.field(static=True)

    def __check_init__(self):
        if self.axis not in ("row", "col"):
            raise ValueError(f"GroupIndex axis must be 'row' or 'col', got {self.axis!r}")

    @property
    def n_groups(self) -> int:
        return len(self.labels)

    def _onehot(self, dtype) -> Shaped[Array, "group entry"]:
        return (self.ids[None, :] == jnp.arange(self.n_groups)[:, None]).astype(dtype)  # [G, n or fd]

    def totals(self, Y: Float[ArrayLike, "n fd"]) -> tuple[Float[Array, "group n"], Float[Array, "group fd"]]:
        """Per-group row totals `[G, n]` and column totals `[G, fd]` of `Y` (O(G (n + fd)) memory)."""
        G = self.n_groups
        ids = jnp.where(self.ids < 0, G, self.ids)
        if self.axis == "col":
            cG = self._onehot(Y.dtype) * Y.sum(axis=0)[None, :]
            yG = jax.ops.segment_sum(Y.T, ids, num_segments=G + 1)[:G]
        else:
            yG = self._onehot(Y.dtype) * Y.sum(axis=1)[None, :]
            cG = jax.ops.segment_sum(Y, ids, num_segments=G + 1)[:G]
        return yG, cG

    def without(self, Y: Float[Array, "n fd"], g: int | Int[Array, ""]) -> Float[Array, "n fd"]:
        """`Y` with the entries of group `g` (an int, possibly traced) set to zero (O(n fd))."""
        keep = self.ids != g
        return Y * (keep[None, :] if self.axis == "col" else keep[:, None]).astype(Y.dtype)

    def contract(self, T: Float[Array, "*batch n fd"]) -> Float[Array, "*batch group"]:
        """`sum over the entries (i, j) of group g of T[..., i, j]` -> `[..., G]` (a segment sum, no masks)."""
        G = self.n_groups
        ids = jnp.where(self.ids < 0, G, self.ids)
        s = T.sum(axis=-2) if self.axis == "col" else T.sum(axis=-1)  # [..., fd] or [..., n]
        out = jax.ops.segment_sum(jnp.moveaxis(s, -1, 0), ids, num_segments=G + 1)[:G]
        return jnp.moveaxis(out, 0, -1)

    def dense_masks(self, n: int, fd: int) -> Float[np.ndarray, "group n fd"]:
        """The 0/1 masks `[group, n, fd]` (dense: O(G n fd) memory; for small tables and tests)."""
        ids = np.asarray(self.ids)
        hit = ids[None, :] == np.arange(self.n_groups)[:, None]
        shape = (self.n_groups, n, fd)
        m = hit[:, None, :] if self.axis == "col" else hit[:, :, None]
        return np.broadcast_to(m, shape).astype(np.float64)


#: A grouping of final demand: a standard one by name (`GROUPINGS`) or a user's own grouping of the rows or
#: columns of `Y` (see [`custom_group_index`][diffmrio.chain.custom_group_index]).
Grouping = str | GroupIndex | xr.DataArray | pd.Series | Mapping | Sequence | np.ndarray


def group_index(chain: Chain, by: Grouping, foreign_categories=("export",)) -> GroupIndex:
    """The [`GroupIndex`][diffmrio.chain.GroupIndex] of a standard grouping of final demand.

    - `consumer`: the columns of each consuming region (all categories);
    - `final_producer`: the rows of each producing region (final products sold by the region);
    - `sector`: the rows of each sector, all regions;
    - `region_sector`: the rows of each (region, sector), labelled `"region/sector"`;
    - `foreign`: foreign demand (`foreign_categories`, e.g. exports) vs domestic demand;
    - a user's own grouping of the rows or columns: see [`custom_group_index`][diffmrio.chain.custom_group_index].
    """
    if not isinstance(by, str):
        return custom_group_index(chain, by)
    m = chain.mrio
    R, N, K = m.n_regions, m.n_sectors, m.n_categories
    if by == "consumer":
        return GroupIndex(jnp.asarray(np.repeat(np.arange(R), K), jnp.int32), "col", tuple(m.regions))
    if by == "final_producer":
        return GroupIndex(jnp.asarray(np.repeat(np.arange(R), N), jnp.int32), "row", tuple(m.regions))
    if by == "sector":
        return GroupIndex(jnp.asarray(np.tile(np.arange(N), R), jnp.int32), "row", tuple(m.sectors))
    if by == "region_sector":
        labels = tuple(f"{r}/{s}" for r in m.regions for s in m.sectors)
        return GroupIndex(jnp.arange(R * N, dtype=jnp.int32), "row", labels)
    if by == "foreign":
        missing = [c for c in foreign_categories if c not in m.categories]
        if missing:
            raise ValueError(f"foreign categories {missing} not in the MRIO's categories {list(m.categories)}")
        is_f = np.tile(np.isin(m.categories, foreign_categories), R)
        return GroupIndex(jnp.asarray(np.where(is_f, 0, 1), jnp.int32), "col", ("foreign", "domestic"))
    raise ValueError(f"`by` must be one of {GROUPINGS}, got {by!r}")


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
