r"""Updating a whole MRIO to new margins by ANAIS, keeping its input structure within bounds and its direct
intensities (BTH study; docs/table_building.md)."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .._economy import _safe_div
from .._labels import unlabel
from .._mrio import MRIO
from .._units import MONEY
from ._anais import AnaisReport, anais

__all__ = ["anais_update", "read_margins_csv"]


def anais_update(
    mrio: MRIO,
    output: Any,
    inputs: Any,
    final_demand: Any,
    *,
    coef_range: float | None = 0.3,
    weights: Any = "share",
    total_rtol: float = 1e-9,
    validate: bool | str = True,
) -> tuple[MRIO, AnaisReport]:
    r"""Update `[Z Y]` of `mrio` to new margins by [`anais`][diffmrio.tables.anais] and rebuild the MRIO.

    Rows of `[Z Y]` sum to the new gross output $x'$, the columns of `Z` to the new intermediate-input totals $v'$
    and the columns of `Y` to the new final-demand totals. With `coef_range` $= c$, each buyer's input structure
    stays within $\pm c$ (relative) of the prior's:
    $(1 - c)\, z^0_{ij} / v^0_j \le z_{ij} / v'_j \le (1 + c)\, z^0_{ij} / v^0_j$. Direct intensities are kept:
    $F' = S\,\mathrm{diag}(x')$ with $S = F\,\mathrm{diag}(x^0)^{-1}$ wherever $x^0 \ne 0$ (0 where $x^0 = 0$: the
    intensities `S` of [`Economy`][diffmrio.Economy], negative outputs included), and each column of `F_Y` scales with its
    final-demand column total (wherever that total is non-zero).

    **Arguments:**

    - `mrio`: the prior table.
    - `output` $x'$ `(region, sector)`, `inputs` $v'$ `(region, sector)` (the intermediate inputs bought by each
      region-sector: column totals of `Z`), `final_demand` `(fd_region, category)` (column totals of `Y`): labelled
      `xarray.DataArray`s (aligned by label; a `units` attribute must be the table's
      `"monetary unit of the table"`) or arrays in the table's order (flat `(n,)` and `(R K,)` also accepted).
      The grand totals must agree: $\sum x' = \sum v' + \sum$ final demand.
    - `coef_range`: $c$ in `[0, 1)`, or `None` for no bound on the input structure.
    - `weights`, `total_rtol`: passed to [`anais`][diffmrio.tables.anais]; `validate`: the policy of
      [`MRIO.from_arrays`][diffmrio.MRIO.from_arrays] for the updated table.

    **Returns:** `(updated MRIO, AnaisReport)`; the updated table keeps the labels, units, extensions and
    population, and is named `"<name> updated by ANAIS"`.

    **Warns:** `UserWarning` naming the region-sectors whose gross output changes sign (a negative prior output,
    e.g. from inventory changes, given a positive target): their emissions change sign with it.

    **Raises:** `ValueError` naming the argument for a wrong shape or labels, a non-finite target or a negative one
    where the prior's total is non-negative (negative targets are allowed where the prior's is negative), a
    `coef_range` outside `[0, 1)`, or grand totals that disagree; [`AnaisInfeasibleError`][diffmrio.tables.AnaisInfeasibleError]
    when no table meets the margins and bounds (widen `coef_range`).
    """
    fn = "anais_update"
    R, N, n = mrio.n_regions, mrio.n_sectors, mrio.n
    rs = {"region": list(mrio.regions), "sector": list(mrio.sectors)}
    fdc = {"fd_region": list(mrio.regions), "category": list(mrio.categories)}
    fd_dims = ("fd_region", "category")
    Z, Y = np.asarray(mrio.Z, dtype=np.float64), np.asarray(mrio.Y, dtype=np.float64)
    x_old, fd_old = Z.sum(axis=1) + Y.sum(axis=1), Y.sum(axis=0)  # the prior's totals
    u = _target(output, ("region", "sector"), rs, "output", fn, (R, N), n, x_old)
    vz = _target(inputs, ("region", "sector"), rs, "inputs", fn, (R, N), n, Z.sum(axis=0))
    vy = _target(final_demand, fd_dims, fdc, "final_demand", fn, (R, mrio.n_categories), R * mrio.n_categories,
                 fd_old)
    v = np.concatenate([vz, vy])
    gap = abs(u.sum() - v.sum())
    if gap > total_rtol * max(abs(u.sum()), abs(v.sum()), 1e-300):
        raise ValueError(f"`{fn}`: the grand totals disagree: sum(output) = {u.sum():.10g} but sum(inputs) + "
                         f"sum(final_demand) = {vz.sum():.10g} + {vy.sum():.10g} = {v.sum():.10g}; every unit of output "
                         "is bought as an intermediate input or by final demand, so make them equal.")
    X0 = np.hstack([Z, Y])
    lo = hi = None
    if coef_range is not None:
        c = float(coef_range)
        if not 0.0 <= c < 1.0:
            raise ValueError(f"`{fn}`: coef_range={coef_range!r}; give a relative range in [0, 1) (e.g. 0.3 keeps each "
                             "input coefficient within +/-30% of the prior's), or None for no bound.")
        colsum = Z.sum(axis=0)
        share0 = np.divide(Z, colsum, out=np.zeros_like(Z), where=colsum > 0)
        lo = np.full(X0.shape, np.nan)
        hi = np.full(X0.shape, np.nan)
        lo[:, :n] = (1.0 - c) * share0
        hi[:, :n] = (1.0 + c) * share0
        lo[:, :n][:, vz <= 0] = np.nan  # anais bounds only columns with a positive target
        hi[:, :n][:, vz <= 0] = np.nan
    X, rep = anais(X0, u, v, coef_lower=lo, coef_upper=hi, weights=weights, total_rtol=total_rtol)
    # the LP solver's round-off around zero (a non-negative prior cell may come back as -1e-17)
    X = np.where((X0 >= 0) & (X < 0) & (np.abs(X) < 1e-12 * np.abs(X0).max()), 0.0, X)
    x_new = X.sum(axis=1)
    F = np.asarray(mrio.F, dtype=np.float64)
    # intensities as the rest of the library defines them (`diffmrio.Economy.S`, docs/science.md): divided wherever
    # x != 0, so a region-sector with negative gross output (inventory drawdown larger than its sales) keeps its
    # emissions instead of losing them
    S = _safe_div(F, x_old[None, :], xp=np)
    fd_ratio = np.divide(X[:, n:].sum(axis=0), fd_old, out=np.ones_like(fd_old), where=fd_old != 0)
    flips = np.nonzero((np.sign(x_old) * np.sign(x_new) < 0) & (np.abs(F).sum(axis=0) > 0))[0]
    if len(flips):
        where = [f"{mrio.regions[k // N]}/{mrio.sectors[k % N]}" for k in flips[:5]]
        warnings.warn(f"`{fn}`: gross output changes sign at {len(flips)} region-sector(s) ({', '.join(where)}"
                      f"{' ...' if len(flips) > 5 else ''}); their direct intensities S = F / x are kept, so their "
                      "emissions F' = S x' change sign too. Check the prior's negative outputs (inventory changes) "
                      "and the `output` targets there.", UserWarning, stacklevel=2)
    updated = MRIO.from_arrays(
        X[:, :n], X[:, n:], S * x_new[None, :], np.asarray(mrio.F_Y, dtype=np.float64) * fd_ratio[None, :],
        regions=mrio.regions, sectors=mrio.sectors, categories=mrio.categories, stressors=mrio.stressors,
        units=mrio.units, name=f"{mrio.name} updated by ANAIS", validate=validate,
        extensions=mrio.extensions or None, population=mrio.population, population_unit=mrio.population_unit,
    )  # fmt: skip
    return updated, rep


def _target(value, dims, coords, name: str, fn: str, shape: tuple[int, int], flat: int, prior) -> np.ndarray:
    """The target as a flat array in the table's order; negative only where the prior's total is negative too
    (e.g. an output or a final-demand column pulled below zero by inventory changes: ANAIS keeps each cell's
    sign, so a negative total is reachable only there)."""
    if not hasattr(value, "dims") and np.ndim(value) == 1:
        out = unlabel(value, dims, coords, name=name, fn=fn, shape=(flat,))
    else:
        out = unlabel(value, dims, coords, name=name, fn=fn, units=MONEY).reshape(-1)
    ok = np.isfinite(out) & ((out >= 0) | (prior < 0))
    if not ok.all():
        k = int(np.nonzero(~ok)[0][0])
        raise ValueError(f"`{fn}`: `{name}` has the value {float(out[k])!r} at entry {k} (of {flat}, in the table's order); "
                         "targets must be finite, and non-negative where the prior's total is non-negative.")
    return out


def read_margins_csv(path: str | Path, mrio: MRIO) -> dict[str, np.ndarray]:
    """New-year margins for [`anais_update`][diffmrio.tables.anais_update] from a long-format CSV with columns
    `kind, region, label, value`, rows in any order.

    `kind` is `output` (label = sector: new gross output), `inputs` (label = sector: new total intermediate
    input of that column) or `final_demand` (label = category: new final-demand column total). Every
    region-sector needs an `output` and an `inputs` row, every region-category a `final_demand` row; the grand
    totals must agree (sum of output = sum of inputs + sum of final demand; `anais_update` checks them).

    **Returns** `{"output": (n,), "inputs": (n,), "final_demand": (R K,), "growth": (n,)}` float64 arrays in the
    table's region-major order, `growth` the output's relative change from the table's gross output.

    **Raises** `ValueError` naming the file and the missing columns, a duplicated row or a missing entry.
    """
    df = pd.read_csv(path)
    need = {"kind", "region", "label", "value"}
    if not need.issubset(df.columns):
        raise ValueError(f"{path}: margins CSV needs columns {sorted(need)}, found {list(df.columns)}")
    df = df.assign(kind=df["kind"].astype(str).str.strip(), region=df["region"].astype(str).str.strip(),
                   label=df["label"].astype(str).str.strip())
    out = {}
    for kind, labels in (("output", mrio.sectors), ("inputs", mrio.sectors), ("final_demand", mrio.categories)):
        sub = df[df["kind"] == kind].set_index(["region", "label"])["value"]
        if sub.index.duplicated().any():
            raise ValueError(f"{path}: duplicated {kind} rows, e.g. {sub.index[sub.index.duplicated()][0]}")
        want = pd.MultiIndex.from_product([mrio.regions, labels])
        missing = want.difference(sub.index)
        if len(missing):
            raise ValueError(f"{path}: {len(missing)} {kind} entries missing, e.g. {tuple(missing[0])}; give one "
                             f"row per (region, {'sector' if kind != 'final_demand' else 'category'})")
        out[kind] = pd.to_numeric(sub.reindex(want)).to_numpy(dtype=np.float64)
    x = np.asarray(mrio.Z).sum(1) + np.asarray(mrio.Y).sum(1)
    out["growth"] = out["output"] / np.where(x > 0, x, 1.0) - 1.0
    return out
