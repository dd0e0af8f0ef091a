"""Value added embodied in exports on the WIOD 2013-release world tables (2009 and 2011).

For every origin country r and destination e != r (EXPORT study, eqs. 10-12, with value added as the stressor):

- value added of r embodied in e's final demand, $VAX_{r,e} = v_r L Y^e$ ($v$ value added per unit output);
- split by the country u whose final product e buys: **direct** exports ($u = r$: r's final goods, with
  every country's supply chain feeding back into r) and **indirect** exports ($u \\ne r$: r's value added
  leaving as intermediates inside other countries' final products);
- by supply-chain layer: $\\sum_{i \\in r} v_i (A^t y^{(r)})_i$ for $t = 0..T$ with $y^{(r)}$ all foreign final
  demand, and the exact remainder;
- the top structural paths of one focus country's value added in foreign final demand;
- the change from 2009 to 2011.

`compute(tables) -> xr.Dataset` and `report(ds, out)`; `python -m experiments.wiod_exports --out DIR`
reads `../shared/data/wiod2013` (or `--wiod DIR`). The published tables have a rounding artefact (negative
gross output of two Luxembourg industries from a -1 inventory change); they are read with
`diffmrio.tables.read_wiod(..., clean=True)`, which removes it and says so in the report.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path

import equinox as eqx
import jax.numpy as jnp
import numpy as np
import xarray as xr

import diffmrio
from diffmrio import MRIO
from diffmrio.demo import subplots

from ._common import (
    experiment_parser,
    parse,
    save_figure_atomic,
    shared_folder,
    write_netcdf_atomic,
    write_text_atomic,
)

UNIT = "million USD"


def _parts(m: MRIO, T: int):
    """(vax[r, e], direct[r, e], indirect[r, e], layers[t, r], remainder[r]) for one table, value added row 0."""
    R, N = m.n_regions, m.n_sectors
    eco = diffmrio.Economy.from_mrio(m)  # x, A and the intensities S (zero where x = 0), as the library defines them
    A = eco.A
    v = np.asarray(eco.S)[m.stressor_index("value_added")]
    Ye = np.asarray(m.Y).reshape(R * N, R, -1).sum(axis=2)  # [n, e]: final demand of country e
    G = np.kron(np.eye(R), np.ones((1, N)))  # [R, n]
    eee = np.asarray(diffmrio.supply_chain.export_emissions_kernel(A, jnp.asarray(v[None]), jnp.asarray(Ye), jnp.asarray(G)))[0]
    # eee[r, u, e]: value added of r in e's final demand for u's products
    foreign = 1.0 - np.eye(R)
    vax = eee.sum(axis=1) * foreign
    direct = np.einsum("rre->re", eee) * foreign
    indirect = vax - direct
    layers = np.zeros((T + 1, R))
    V = jnp.asarray(Ye)
    for t in range(T + 1):
        contrib = G @ (v[:, None] * np.asarray(V))  # [r, e]
        layers[t] = (contrib * foreign).sum(axis=1)
        V = A @ V
    remainder = vax.sum(axis=1) - layers.sum(axis=0)
    return vax, direct, indirect, layers, remainder


def compute(tables: Mapping[int, MRIO], *, T: int = 4, k: int = 10, focus: str = "CHN",
            sector_names: Mapping[str, str] | None = None) -> xr.Dataset:
    """Value added embodied in exports for each year's table (`{year: MRIO}` with a `value_added` stressor and
    the same countries and industries; `sector_names` maps industry codes to names for the report). **Returns** an `xarray.Dataset` over `year`, `origin`, `destination`,
    `layer` and `path` (see the module docstring); every variable has `units`."""
    years = sorted(tables)
    first = tables[years[0]]
    regions = list(first.regions)
    if focus not in regions:
        raise ValueError(f"focus={focus!r} is not a country of the tables ({regions[:5]}...)")
    res = {y: _parts(tables[y], T) for y in years}
    stack = lambda i: np.stack([res[y][i] for y in years])  # noqa: E731
    vax, direct, indirect, layers, remainder = (stack(i) for i in range(5))
    labels, values, shares = [], [], []
    c = regions.index(focus)
    for y in years:
        m = tables[y]
        R, N = m.n_regions, m.n_sectors
        mask = np.zeros(R * N)
        mask[c * N:(c + 1) * N] = 1.0
        m_c = eqx.tree_at(lambda t: t.F, m, np.asarray(m.F) * mask[None, :])
        Ye = np.asarray(m.Y).reshape(R * N, R, -1).sum(axis=2)
        y_foreign = Ye.sum(axis=1) - Ye[:, c]
        sp = diffmrio.supply_chain.structural_path_analysis(m_c, "value_added", k=k, y=y_foreign)
        labels.append([str(s) for s in sp.label.values])
        values.append(sp.value.values)
        shares.append(sp.share.values)
    total = vax.sum(axis=2)
    ds = xr.Dataset(
        {
            "vax": (("year", "origin", "destination"), vax, {"units": UNIT, "long_name": "value added of origin in destination's final demand"}),
            "direct": (("year", "origin", "destination"), direct, {"units": UNIT, "long_name": "in the origin's own final-good exports"}),
            "indirect": (("year", "origin", "destination"), indirect, {"units": UNIT, "long_name": "in other countries' final products"}),
            "total": (("year", "origin"), total, {"units": UNIT}),
            "indirect_share": (("year", "origin"), indirect.sum(axis=2) / np.where(total != 0, total, 1.0), {"units": "1"}),
            "layers": (("year", "layer", "origin"), layers, {"units": UNIT, "long_name": "by production layer PL0..PLT"}),
            "remainder": (("year", "origin"), remainder, {"units": UNIT, "long_name": "layers beyond T"}),
            "path_label": (("year", "path"), np.array(labels, dtype=object), {"units": ""}),
            "path_value": (("year", "path"), np.array(values), {"units": UNIT}),
            "path_share": (("year", "path"), np.array(shares), {"units": "1", "long_name": f"share of {focus}'s VA exports"}),
        },
        coords={"year": years, "origin": regions, "destination": regions, "layer": list(range(T + 1)),
                "path": list(range(k))},
        attrs={"focus": focus, "T": T,
               "validation": "; ".join(f"{y}: {v}" for y in years for v in tables[y].validation)},
    )  # fmt: skip
    if sector_names:
        ds.attrs["sector_names"] = json.dumps({c: sector_names[c] for c in first.sectors if c in sector_names})
    return ds


def report(ds: xr.Dataset, out: str | Path) -> Path:
    """Write `report.md`, `figures/*.png` and `results/wiod_exports.nc` under `out`; **returns** the report."""
    out = Path(out)
    (out / "figures").mkdir(parents=True, exist_ok=True)
    (out / "results").mkdir(parents=True, exist_ok=True)
    y0, y1 = int(ds.year.values[0]), int(ds.year.values[-1])
    last = ds.sel(year=y1)
    top = last.total.to_series().nlargest(15).index.tolist()

    fig, ax = subplots(figsize=(9, 4))
    d = last.direct.sum("destination").sel(origin=top).values / 1e3
    i = last.indirect.sum("destination").sel(origin=top).values / 1e3
    ax.bar(top, d, label="direct (own final goods)")
    ax.bar(top, i, bottom=d, label="indirect (inside other countries' final products)")
    ax.set(ylabel="billion USD", title=f"Value added embodied in exports, {y1} (WIOD 2013 release)")
    ax.legend()
    save_figure_atomic(fig, out / "figures" / "vax_direct_indirect.png", dpi=110, bbox_inches="tight")

    fig, ax = subplots(figsize=(9, 4))
    parts = np.vstack([last.layers.sel(origin=top).values, last.remainder.sel(origin=top).values[None]])
    shares = parts / parts.sum(axis=0, keepdims=True)
    bottom = np.zeros(len(top))
    names = [f"PL{t}" for t in ds.layer.values] + [f"PL{int(ds.layer.values[-1]) + 1}+"]
    for row, name in zip(shares, names):
        ax.bar(top, row, bottom=bottom, label=name)
        bottom += row
    ax.set(ylabel="share of VA exports", title=f"Supply-chain layer of the value added exported, {y1}")
    ax.legend(ncol=len(names), fontsize=8)
    save_figure_atomic(fig, out / "figures" / "vax_layers.png", dpi=110, bbox_inches="tight")

    change = (ds.total.sel(year=y1) - ds.total.sel(year=y0)) / ds.total.sel(year=y0)
    fig, ax = subplots(figsize=(9, 4))
    ax.bar(top, 100 * change.sel(origin=top).values)
    ax.set(ylabel="%", title=f"Change in value added exported, {y0} -> {y1} (current USD)")
    save_figure_atomic(fig, out / "figures" / "vax_change.png", dpi=110, bbox_inches="tight")

    write_netcdf_atomic(ds.assign(path_label=ds.path_label.astype(str)), out / "results" / "wiod_exports.nc")
    lines = [f"# Value added embodied in exports: WIOD {y0} and {y1}", "",
             "Real data: WIOD 2013 release world input-output tables (Timmer et al. 2015), million USD, current prices.",
             f"Table notes: {ds.attrs['validation'] or 'none'}.", "",
             "| country | VA exports " + f"{y0} | VA exports {y1} | change | indirect share {y1} | PL0 share {y1} |",
             "|---|---|---|---|---|---|"]
    for r in top:
        t0, t1 = float(ds.total.sel(year=y0, origin=r)), float(ds.total.sel(year=y1, origin=r))
        pl0 = float(last.layers.sel(origin=r, layer=0)) / t1
        lines.append(f"| {r} | {t0:,.0f} | {t1:,.0f} | {100 * (t1 / t0 - 1):+.1f}% | "
                     f"{100 * float(last.indirect_share.sel(origin=r)):.1f}% | {100 * pl0:.1f}% |")
    lines += ["", f"Top structural paths of {ds.attrs['focus']}'s value added in foreign final demand, {y1}:", "",
              "| path (final producer <- ... <- origin of the value added) | million USD | share |", "|---|---|---|"]
    for lab, val, sh in zip(last.path_label.values, last.path_value.values, last.path_share.values):
        lines.append(f"| {lab} | {val:,.0f} | {100 * sh:.2f}% |")
    if "sector_names" in ds.attrs:
        used = {part.split("/")[1].strip() for lab in last.path_label.values for part in str(lab).split("<-")}
        names = json.loads(ds.attrs["sector_names"])
        lines += ["", "Industries: " + "; ".join(f"{c} {names[c]}" for c in sorted(used, key=lambda c: int(c[1:]))
                                                  if c in names) + "."]
    lines += ["", "![direct and indirect](figures/vax_direct_indirect.png)", "", "![layers](figures/vax_layers.png)",
              "", "![change](figures/vax_change.png)", ""]
    return write_text_atomic(out / "report.md", "\n".join(lines))


def load_wiod(folder: str | Path, years: Sequence[int] = (2009, 2011)) -> dict[int, MRIO]:
    """The WIOD tables of `years` from `folder`, cleaned (see `diffmrio.tables.read_wiod`)."""
    folder = Path(folder)
    return {y: diffmrio.tables.read_wiod(folder / f"wiot_{y}.nc", clean=True) for y in years}


def industry_names(folder: str | Path, year: int = 2011) -> dict[str, str]:
    """Industry code -> name from a WIOD netCDF file."""
    with xr.open_dataset(Path(folder) / f"wiot_{year}.nc") as ds:
        return dict(zip(ds["industry"].values.astype(str), ds["industry_name"].values.astype(str)))


def main(argv: Sequence[str] | None = None) -> Path:
    ap = experiment_parser(__doc__.splitlines()[0])
    ap.add_argument("--wiod", type=Path, default=None,
                    help="folder with wiot_2009.nc and wiot_2011.nc (default $DIFFMRIO_SHARED/data/wiod2013, or "
                         "../shared/data/wiod2013 next to a checkout)")
    ap.add_argument("--focus", default="CHN", help="country whose structural paths are listed (default CHN)")
    ap.add_argument("-T", type=int, default=4, help="last explicit production layer (default 4)")
    ap.add_argument("-k", type=int, default=10, help="number of structural paths (default 10)")
    args = parse(ap, argv, "wiod_exports")
    try:
        wiod = shared_folder(args.wiod, "data/wiod2013", "--wiod")
        tables = load_wiod(wiod)
    except FileNotFoundError as exc:
        ap.error(str(exc))
    ds = compute(tables, T=args.T, k=args.k, focus=args.focus, sector_names=industry_names(wiod))
    path = report(ds, args.out)
    print(path.resolve())
    return path


if __name__ == "__main__":
    main()
