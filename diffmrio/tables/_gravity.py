r"""Building an interregional table from single-region tables: distances, a gravity prior, RAS and proportional
sourcing (docs/science.md, section 3, "Regionalising trade"; OUTSOURCE study, Feng et al. 2013).

When only single-region (provincial) tables exist, each region's table says how much of every product its
industries and final users use, how much it produces and exports abroad, and (in the Chinese provincial tables)
how much it sends to and receives from the other regions in total, but not from or to which region. Per product
`i`, a gravity prior (Leontief and Strout 1963)

$$ T^{i,0}_{rs} = \frac{O^i_r\, I^i_s}{d_{rs}^{\beta}} \quad (r \ne s) $$

balanced by [`ras`][diffmrio.tables.ras] to the outflows $O^i$ (rows) and inflows $I^i$ (columns) gives the
interregional flows, and every user in `s` buys product `i` from `r` in the same proportion
$t^i_{rs} = T^i_{rs} / D^i_s$ (Chenery 1953; Moses 1955). The functions here take and give labelled xarray
objects (with `units`) and an [`MRIO`][diffmrio.MRIO]; inside they work on numpy arrays. RAS is a data-dependent
iteration, so this runs in numpy outside `jit`, like the rest of the table building.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from .._labels import label, unlabel
from .._mrio import MRIO
from .._units import MONEY
from ._balancing import ras

__all__ = ["distance_matrix", "read_distances_csv", "gravity_prior", "regional_totals", "gravity_ras_rebuild"]

DIMS = ("region", "to_region")


# ----------------------------------------------------------------------------------------------------------
# distances


def _check_distances(d: np.ndarray, where: str, *, symmetric_rtol: float = 1e-6) -> np.ndarray:
    """`d` as a float64 `(R, R)` distance matrix, or an error naming `where` and the fix."""
    if d.ndim != 2 or d.shape[0] != d.shape[1]:
        raise ValueError(f"{where}: a distance matrix must be square (R, R); got shape {d.shape}. Give one row and "
                         "one column per region.")
    if not np.all(np.isfinite(d)):
        bad = np.argwhere(~np.isfinite(d))[:3].tolist()
        raise ValueError(f"{where}: distances contain NaN or inf (at positions {bad}); fill every pair of regions.")
    off = ~np.eye(d.shape[0], dtype=bool)
    if (d[off] <= 0).any():
        bad = np.argwhere(off & (d <= 0))[:3].tolist()
        raise ValueError(f"{where}: distances between different regions must be positive; got {d[off].min():g} "
                         f"(at positions {bad}). Two regions at distance zero would attract infinite trade: give "
                         "them distinct positions or merge them.")
    if (np.diag(d) < 0).any():
        raise ValueError(f"{where}: the diagonal (a region's distance to itself) must not be negative; it is not "
                         "used (the internal distance is half the nearest neighbour's), so set it to 0.")
    gap = np.abs(d - d.T)[off]
    scale = np.maximum(np.abs(d), np.abs(d.T))[off]
    if (gap > symmetric_rtol * scale).any():
        k = int(np.argmax(gap / scale))
        r, s = np.argwhere(off)[k]
        raise ValueError(f"{where}: distances are not symmetric: d[{r}, {s}] = {d[r, s]:g} but d[{s}, {r}] = "
                         f"{d[s, r]:g}. A gravity model needs one distance per pair of regions: symmetrise it "
                         "((d + d.T) / 2) or correct the entry.")
    return d


def distance_matrix(
    positions: Mapping[str, Sequence[float]], regions: Sequence[str], *, units: str = "1"
) -> xr.DataArray:
    """Euclidean distances between region positions (e.g. projected coordinates of the regions' centroids).

    **Arguments:** `positions`: `{region: (x, y, ...)}`, one position per region (extra regions are ignored);
    `regions`: the table's regions, which give the order; `units`: the positions' length unit, recorded on the
    result (the gravity prior does not depend on it: a constant factor cancels in RAS).

    **Returns:** `xr.DataArray` `d(region, to_region)` with a `units` attribute; zero diagonal.
    """
    regions = [str(r) for r in regions]
    missing = [r for r in regions if r not in positions]
    if missing:
        raise ValueError(f"`positions` has no position for regions {missing}; give one (x, y) per region of the "
                         "table.")
    P = [np.asarray(positions[r], dtype=np.float64).reshape(-1) for r in regions]
    if len({p.shape for p in P}) != 1:
        raise ValueError("`positions` mixes coordinates of different lengths; give every region the same number "
                         "of coordinates (x, y).")
    P = np.stack(P)
    d = np.sqrt(((P[:, None, :] - P[None, :, :]) ** 2).sum(-1))
    _check_distances(d, "`positions`")
    return label(d, DIMS, {"region": regions, "to_region": regions}, units=units, name="distance")


def read_distances_csv(path: str | Path, regions: Sequence[str], *, units: str = "1") -> xr.DataArray:
    """A distance matrix from a CSV file: region labels in the first column and in the header row, in any order.

    **Arguments:** `path`; `regions`: the table's regions (the result is in this order; other rows and columns of
    the file are ignored); `units`: the file's length unit, recorded on the result.

    **Returns:** `xr.DataArray` `d(region, to_region)`. A region missing from the rows or the columns, a repeated
    label, a non-numeric, missing, zero or negative distance between two regions, or an asymmetric matrix is an
    error that names the file and the regions.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"distance file {path} does not exist; write a CSV with region labels as first "
                                "column and header")
    df = pd.read_csv(path, index_col=0)
    df.index = df.index.astype(str).str.strip()
    df.columns = df.columns.astype(str).str.strip()
    regions = [str(r) for r in regions]
    for what, labels in (("rows", df.index), ("columns", df.columns)):
        dup = sorted(set(labels[labels.duplicated()]))
        if dup:
            raise ValueError(f"{path}: the {what} repeat the region label(s) {dup}; give each region once.")
        missing = [r for r in regions if r not in set(labels)]
        if missing:
            raise ValueError(f"{path}: no {what} for regions {missing[:5]}{' ...' if len(missing) > 5 else ''}; "
                             f"rows and columns must carry the table's region labels (the file has {list(labels)[:5]}"
                             f"{' ...' if len(labels) > 5 else ''}).")
    sub = df.loc[regions, regions]
    d = sub.apply(pd.to_numeric, errors="coerce").to_numpy(dtype=np.float64)
    bad = np.argwhere(np.isnan(d) & ~pd.isna(sub).to_numpy())
    if len(bad):
        r, s = bad[0]
        raise ValueError(f"{path}: the distance from {regions[r]} to {regions[s]} is {sub.iloc[r, s]!r}, not a "
                         "number.")
    _check_distances(d, str(path))
    return label(d, DIMS, {"region": regions, "to_region": regions}, units=units, name="distance")


def _distances(distance: Any, regions: Sequence[str], fn: str) -> np.ndarray:
    d = unlabel(distance, DIMS, {"region": list(regions), "to_region": list(regions)}, name="distance", fn=fn)
    return _check_distances(d, f"`{fn}`: `distance`")


# ----------------------------------------------------------------------------------------------------------
# the gravity prior


def gravity_prior(origin: Any, destination: Any, distance: Any, *, beta: float = 1.0, internal: bool = False) -> np.ndarray:
    r"""The gravity model's prior flows $T^0_{rs} = m_r\, n_s / d_{rs}^{\beta}$ (Leontief and Strout 1963).

    **Arguments:** `origin` `m` `(R,)` and `destination` `n` `(R,)`: the masses (e.g. outflows and inflows of a
    product); `distance` `(R, R)`; `beta >= 0`: the distance exponent; `internal`: `False` for zero flows on the
    diagonal (trade between different regions only), `True` to include $r = s$ with the internal distance
    $d_{rr} = \tfrac12 \min_{s \ne r} d_{rs}$ (the diagonal of `distance` is never used).

    **Returns:** a float64 `(R, R)` array. Arrays in, array out (see
    [`gravity_ras_rebuild`][diffmrio.tables.gravity_ras_rebuild] for the labelled use).
    """
    m = np.asarray(origin, dtype=np.float64)
    n = np.asarray(destination, dtype=np.float64)
    d = _check_distances(np.asarray(distance, dtype=np.float64), "`gravity_prior`: `distance`")
    R = d.shape[0]
    for name, v in (("origin", m), ("destination", n)):
        if v.shape != (R,):
            raise ValueError(f"`gravity_prior`: `{name}` has shape {v.shape}; `distance` is {d.shape}: give one "
                             f"mass per region, shape ({R},).")
        if not np.all(np.isfinite(v)) or (v < 0).any():
            raise ValueError(f"`gravity_prior`: `{name}` must be finite and non-negative (masses are flows).")
    _check_beta(beta, "gravity_prior")
    off = ~np.eye(R, dtype=bool)
    if internal:
        if R < 2:
            raise ValueError("`gravity_prior`: the internal distance needs at least two regions.")
        dd = np.where(off, d, np.diag(0.5 * np.where(off, d, np.inf).min(axis=1)))
        return np.outer(m, n) / dd**beta
    return np.where(off, np.outer(m, n) / np.where(off, d, 1.0) ** beta, 0.0)


def _check_beta(beta: float, fn: str) -> None:
    if not np.isfinite(beta) or beta < 0:
        raise ValueError(f"`{fn}`: `beta` must be finite and >= 0 (flows fall with distance), got {beta}.")


# ----------------------------------------------------------------------------------------------------------
# what single-region tables know


def _export_indices(mrio: MRIO, export_categories: Sequence[str] | None, fn: str) -> tuple[list[int], list[int]]:
    if export_categories is None:
        export_categories = [c for c in mrio.categories if "export" in c.lower()]
    bad = [c for c in export_categories if c not in mrio.categories]
    if bad:
        raise ValueError(f"`{fn}`: `export_categories` {bad} are not final-demand categories of the table; "
                         f"its categories are {list(mrio.categories)}.")
    exp = [mrio.category_index(c) for c in export_categories]
    dom = [k for k in range(mrio.n_categories) if k not in exp]
    if not dom:
        raise ValueError(f"`{fn}`: every final-demand category is an export category; at least one domestic "
                         "category (households, government, investment) is needed.")
    return dom, exp


def _totals(mrio: MRIO, dom: list[int], exp: list[int]) -> dict[str, np.ndarray]:
    """The arrays of [`regional_totals`][diffmrio.tables.regional_totals] (kernel: arrays in, arrays out)."""
    R, N, K = mrio.n_regions, mrio.n_sectors, mrio.n_categories
    Z4 = np.asarray(mrio.Z, dtype=np.float64).reshape(R, N, R, N)
    Y4 = np.asarray(mrio.Y, dtype=np.float64).reshape(R, N, R, K)
    U = Z4.sum(axis=0).transpose(1, 0, 2)  # (s, i, j): use regardless of origin
    Yd = Y4[:, :, :, dom].sum(axis=0).transpose(1, 0, 2)  # (s, i, k)
    e_cat = Y4[:, :, :, exp].sum(axis=2)  # (r, i, k_exp): foreign exports of the producer r
    T_true = (Z4.sum(axis=3) + Y4[:, :, :, dom].sum(axis=3)).transpose(1, 0, 2)  # (i, r, s)
    x = Z4.sum(axis=(2, 3)) + Y4.sum(axis=(2, 3))  # (r, i)
    D = U.sum(axis=2) + Yd.sum(axis=2)  # (s, i)
    supply = x - e_cat.sum(axis=2)
    diag = np.einsum("irr->ri", T_true)
    return {"U": U, "Yd": Yd, "e_cat": e_cat, "x": x, "D": D, "supply": supply, "O": supply - diag, "I": D - diag,
            "T_true": T_true}


def regional_totals(mrio: MRIO, export_categories: Sequence[str] | None = None) -> xr.Dataset:
    r"""What single-region tables know, derived from an interregional table as if nothing else were known.

    For region `s`, product `i`, using sector `j` and domestic final-demand category `k`:

    - `use[s, i, j]` $= U^i_{sj} = \sum_r Z_{(r,i),(s,j)}$: intermediate use regardless of origin;
    - `final_use[s, i, k]` $= \sum_r Y_{(r,i),(s,k)}$: domestic final use regardless of origin;
    - `exports[r, i, k]`: foreign exports (the export categories) of product `i` made in `r`;
    - `output[r, i]` $= x^i_r$; `domestic_use[s, i]` $= D^i_s = \sum_j U^i_{sj} + \sum_k Y^d$;
      `supply[r, i]` $= x^i_r - e^i_r$ (output not exported abroad);
    - `outflow[r, i]` $= O^i_r$ and `inflow[s, i]` $= I^i_s$: what goes to and comes from the other regions
      (the provincial tables' domestic outflow and inflow columns);
    - `trade[i, r, s]` $= T^i_{rs}$: the true interregional flows of the table (known only here, for comparison).

    Identities: $\sum_r O^i_r = \sum_s I^i_s$; $T^i_{ss} = D^i_s - I^i_s = x^i_s - e^i_s - O^i_s$.

    **Arguments:** `mrio`; `export_categories`: the final-demand categories that are foreign exports (default:
    the categories whose name contains "export"; none is allowed).

    **Returns:** `xr.Dataset` over `region`, `to_region`, `product` (the table's sectors as products), `sector`,
    `category` (domestic) and `export_category`, every variable in the table's monetary unit (`units`).
    """
    dom, exp = _export_indices(mrio, export_categories, "regional_totals")
    t = _totals(mrio, dom, exp)
    regions, sectors, cats = list(mrio.regions), list(mrio.sectors), list(mrio.categories)
    c = {"region": regions, "to_region": regions, "product": sectors, "sector": sectors,
         "category": [cats[k] for k in dom], "export_category": [cats[k] for k in exp]}

    def lab(a, dims, long_name):
        return label(a, dims, c, units=MONEY, attrs={"long_name": long_name})

    return xr.Dataset(
        {
            "use": lab(t["U"], ("region", "product", "sector"), "intermediate use, regardless of origin"),
            "final_use": lab(t["Yd"], ("region", "product", "category"), "domestic final use, regardless of origin"),
            "exports": lab(t["e_cat"], ("region", "product", "export_category"), "foreign exports of the producer"),
            "output": lab(t["x"], ("region", "product"), "gross output"),
            "domestic_use": lab(t["D"], ("region", "product"), "intermediate and domestic final use"),
            "supply": lab(t["supply"], ("region", "product"), "output not exported abroad"),
            "outflow": lab(t["O"], ("region", "product"), "sent to the other regions"),
            "inflow": lab(t["I"], ("region", "product"), "received from the other regions"),
            "trade": lab(t["T_true"], ("product", "region", "to_region"), "true interregional flows"),
        },
        attrs={"reference": "docs/science.md, section 3 (Regionalising trade)"},
    )


# ----------------------------------------------------------------------------------------------------------
# the rebuild


def gravity_ras_rebuild(
    mrio: MRIO,
    distance: xr.DataArray | np.ndarray,
    *,
    beta: float = 1.0,
    known_flows: bool = True,
    export_categories: Sequence[str] | None = None,
    tol: float = 1e-11,
) -> tuple[MRIO, xr.Dataset]:
    r"""Rebuild an interregional table from regional totals by a gravity prior, RAS and proportional sourcing
    (docs/science.md, section 3; the OUTSOURCE study's interprovincial table was compiled this way).

    For every product `i`, with the totals of [`regional_totals`][diffmrio.tables.regional_totals]:

    - `known_flows=True` (the single-region tables report domestic outflows $O^i_r$ and inflows $I^i_s$):
      prior $T^{i,0}_{rs} = O^i_r I^i_s / d_{rs}^{\beta}$ for $r \ne s$, zero diagonal; RAS to rows $O^i$ and
      columns $I^i$; the local flow is $T^i_{ss} = D^i_s - I^i_s$.
    - `known_flows=False` (only output, exports and use are known): prior
      $T^{i,0}_{rs} = (x^i_r - e^i_r) D^i_s / d_{rs}^{\beta}$ including $r = s$ with the internal distance
      $d_{rr} = \tfrac12 \min_{s \ne r} d_{rs}$; RAS to rows $x^i - e^i$ and columns $D^i$.

    Then every user in `s` buys product `i` from `r` in the same proportion $t^i_{rs} = T^i_{rs} / D^i_s$
    (Chenery-Moses): $Z_{(r,i),(s,j)} = t^i_{rs} U^i_{sj}$, $Y_{(r,i),(s,k)} = t^i_{rs} Y^d_{s,ik}$, and
    foreign exports stay with their producer. Output, value added and direct emissions are unchanged (the rebuilt
    $x$ equals the true $x$ to the RAS tolerance), so the production-based account is exact and every difference
    in the consumption-based account comes from the estimated trade.

    **Arguments**

    - `mrio`: the table, used only through its regional totals.
    - `distance` `(region, to_region)`: an `xr.DataArray` (aligned to the table's regions by label; e.g. from
      [`distance_matrix`][diffmrio.tables.distance_matrix] or
      [`read_distances_csv`][diffmrio.tables.read_distances_csv]) or an `(R, R)` array in the table's order;
      symmetric, positive between different regions; its unit does not matter.
    - `beta >= 0`: the distance exponent (0: no distance decay).
    - `known_flows`: which totals are known (above).
    - `export_categories`: the foreign-export categories (default: names containing "export").
    - `tol`: the RAS tolerance on the largest relative margin error.

    **Returns** `(rebuilt, info)`: the rebuilt [`MRIO`][diffmrio.MRIO] (same labels, satellite accounts,
    population and extensions) and an `xr.Dataset` with `trade(product, region, to_region)` (the estimated flows
    $T^i_{rs}$), `trade_true` (the table's), `ras_iterations(product)` (0 where a product has no flows) and
    `distance`.
    """
    fn = "gravity_ras_rebuild"
    R, N, K = mrio.n_regions, mrio.n_sectors, mrio.n_categories
    if R < 2:
        raise ValueError(f"`{fn}`: the table has {R} region; interregional trade needs at least two.")
    d = _distances(distance, mrio.regions, fn)
    _check_beta(beta, fn)
    dom, exp = _export_indices(mrio, export_categories, fn)
    tot = _totals(mrio, dom, exp)
    T = np.zeros((N, R, R))
    iters = np.zeros(N, dtype=np.int64)
    for i, product in enumerate(mrio.sectors):
        if known_flows:
            rows, cols = tot["O"][:, i], tot["I"][:, i]
        else:
            rows, cols = tot["supply"][:, i], tot["D"][:, i]
        # margins that are differences of totals (O = x - e - T_rr) are zero only up to rounding
        eps = 1e-12 * (tot["x"][:, i].sum() + tot["D"][:, i].sum())
        rows, cols = np.where(np.abs(rows) <= eps, 0.0, rows), np.where(np.abs(cols) <= eps, 0.0, cols)
        if rows.sum() <= 0 and cols.sum() <= 0:
            if known_flows:
                T[i] = np.diag(tot["D"][:, i] - cols)
            continue
        if (rows < 0).any() or (cols < 0).any():
            what = "outflows/inflows" if known_flows else "supply (output - exports)/domestic use"
            raise ValueError(f"`{fn}`: product {product!r} has negative {what} in regions "
                             f"{[mrio.regions[k] for k in np.flatnonzero((rows < 0) | (cols < 0))]}; a gravity "
                             "prior needs non-negative margins (exports above output?). Clean the table first "
                             "(diffmrio.tables.clean_table) or use known_flows=True.")
        prior = gravity_prior(rows, cols, d, beta=beta, internal=not known_flows)
        try:
            Ti, rep = ras(prior, rows, cols, tol=tol, total_rtol=1e-9)
        except ValueError as e:
            raise ValueError(f"`{fn}`: RAS failed for product {product!r}: {e}") from None
        T[i] = Ti + np.diag(tot["D"][:, i] - cols) if known_flows else Ti
        iters[i] = rep.iterations
    D = tot["D"].T[:, None, :]  # (i, 1, s)
    t = np.divide(T, D, out=np.zeros_like(T), where=D > 0)  # (i, r, s)
    Z4 = np.einsum("irs,sij->risj", t, tot["U"])
    Y4 = np.zeros((R, N, R, K))
    Y4[:, :, :, dom] = np.einsum("irs,sik->risk", t, tot["Yd"])
    for r in range(R):
        Y4[r, :, r, exp] = tot["e_cat"][r].T
    rebuilt = MRIO.from_arrays(
        Z4.reshape(R * N, R * N), Y4.reshape(R * N, R * K), mrio.F, mrio.F_Y,
        regions=mrio.regions, sectors=mrio.sectors, categories=mrio.categories, stressors=mrio.stressors,
        units=mrio.units, extensions=mrio.extensions or None, population=mrio.population,
        population_unit=mrio.population_unit, name=f"{mrio.name} rebuilt by gravity (beta={beta:g}) + RAS",
    )  # fmt: skip
    c = {"product": list(mrio.sectors), "region": list(mrio.regions), "to_region": list(mrio.regions)}
    info = xr.Dataset(
        {
            "trade": label(T, ("product", "region", "to_region"), c, units=MONEY,
                           attrs={"long_name": "estimated interregional flows (gravity + RAS)"}),
            "trade_true": label(tot["T_true"], ("product", "region", "to_region"), c, units=MONEY,
                                attrs={"long_name": "the table's interregional flows"}),
            "ras_iterations": label(iters, ("product",), c, units="1"),
            "distance": label(d, DIMS, c, units=str(getattr(distance, "attrs", {}).get("units", "1"))),
        },
        attrs={"beta": float(beta), "known_flows": int(bool(known_flows)),
               "reference": "docs/science.md, section 3 (Regionalising trade)"},
    )  # fmt: skip
    return rebuilt, info
