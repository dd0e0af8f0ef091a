r"""BTH study (Beijing-Tianjin-Hebei city-level MRIO, 2022) as an experiment.

1. Update a table to a later year's margins with ANAIS (Tarancon & del Rio 2005): minimise the largest
   relative change of any cell, then the weighted sum of relative changes, subject to the new row and column
   totals and to ranges on the input-structure coefficients.
2. The consumption-driven NOx network: sector-pair embodied flows $\Phi = \hat s L Z$ (BTH eq. 15) on the
   updated table, its strongest region-sector links, and a heat map aggregated to regions x sector groups.
3. Efficient vs inefficient supply chains: a link supplier -> buyer is inefficient when the supplier's direct
   NOx intensity exceeds the buyer's; the share of embodied NOx travelling down inefficient links, overall
   and per region.

`compute(mrio, margins=...) -> xr.Dataset` holds every number (with `units`) and the updated table;
`report(ds, out)` writes `out/report.md`, `out/figures/*.png`, `out/results/city_network.nc` and
`out/results/updated_mrio.nc` (the updated table, readable with `MRIO.from_xarray`); `run(out, ...)` does both.
Run: `python -m experiments.city_network --out DIR [--mrio NC | --ceads XLSX --emissions CSV] [--margins CSV]
[--stressor NOx] [--quick]` (or `diffmrio experiment city_network ...`). Without `--margins` the new-year margins are a synthetic scenario; on the default demo
world every number is **synthetic**.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from pathlib import Path

import matplotlib
import numpy as np
import pandas as pd
import xarray as xr
from matplotlib.patches import FancyArrowPatch, Wedge
from matplotlib.path import Path as MplPath

import diffmrio
from diffmrio import MRIO
from diffmrio.demo import Report, subplots
from diffmrio.tables import read_margins_csv  # public since issue 11 item 5; kept importable from here

from ._common import cli_main, footer, make_parser, seed_or, table_or_demo, tag, write_netcdf_atomic

NAME = "city_network"
# Sector groups for the aggregated heat map (demo world sector names).
DEMO_SECTOR_GROUPS = {
    "primary": ("agriculture", "mining"),
    "power": ("power",),
    "heavy industry": ("metals", "nonmetal", "chemicals", "heavy_mfg"),
    "light & construction": ("light_mfg", "construction"),
    "services": ("transport", "trade", "services"),
}


# ------------------------------------------------------------------------------------------ margins


def scenario_margins(mrio: MRIO, *, seed: int = 7, trend=(-0.02, 0.05), spread: float = 0.04,
                     input_spread: float = 0.02) -> dict[str, np.ndarray]:
    r"""Synthetic new-year margins: gross output, intermediate input and final-demand totals.

    Output grows by a regional trend (uniform in `trend`) plus a sector deviation (uniform +/- `spread`):
    $x'_{(r,i)} = x_{(r,i)}(1 + g_r + \epsilon_{ri})$. Intermediate inputs of each column follow output with an
    input-share change of +/- `input_spread`: $v'_j = (Z^T 1)_j (1 + g_j)(1 + \delta_j)$. Final-demand column
    totals move with their region's trend plus noise, then are scaled by one common factor so that the grand
    totals agree ($\sum x' = \sum v' + \sum f'$).

    **Returns:** dict with `output` `(n,)` (row targets of $[Z\ Y]$), `inputs` `(n,)` and `final_demand`
    `(R K,)` (column targets), and `growth` `(n,)`.
    """
    rng = np.random.default_rng(seed)
    R, N, K = mrio.n_regions, mrio.n_sectors, mrio.n_categories
    Z, Y = np.asarray(mrio.Z), np.asarray(mrio.Y)
    x = Z.sum(1) + Y.sum(1)
    g_reg = rng.uniform(*trend, R)
    g = np.repeat(g_reg, N) + rng.uniform(-spread, spread, R * N)
    u = x * (1 + g)
    vz = Z.sum(0) * (1 + g) * (1 + rng.uniform(-input_spread, input_spread, R * N))
    fy = Y.sum(0) * (1 + np.repeat(g_reg, K) + rng.uniform(-spread, spread, R * K))
    fy = fy * (u.sum() - vz.sum()) / fy.sum()
    return {"output": u, "inputs": vz, "final_demand": fy, "growth": g}


def anais_update(mrio: MRIO, margins: dict[str, np.ndarray], *, coef_range: float = 0.3):
    """[`diffmrio.tables.anais_update`][diffmrio.tables.anais_update] on the scenario's `margins` (`output`,
    `inputs`, `final_demand`), with the prior and updated `[Z Y]` for the report.

    **Returns:** `(updated MRIO, AnaisReport, X0, X, (u, v))` with `v` the concatenated column targets.
    """
    u, vz, fy = (np.asarray(margins[k], dtype=np.float64) for k in ("output", "inputs", "final_demand"))
    updated, rep = diffmrio.tables.anais_update(mrio, u, vz, fy, coef_range=coef_range)
    X0 = np.hstack([np.asarray(mrio.Z), np.asarray(mrio.Y)])
    X = np.hstack([np.asarray(updated.Z), np.asarray(updated.Y)])
    return updated, rep, X0, X, (u, np.concatenate([vz, fy]))


# ------------------------------------------------------------------------------------------ network


def _link_labels(top: xr.Dataset, side: str) -> np.ndarray:
    """'region/sector' labels of the suppliers (`side=""`) or buyers (`"to_"`) of `diffmrio.supply_chain.top_flows`."""
    return np.array([f"{r}/{s}" for r, s in zip(top[f"{side}region"].values, top[f"{side}sector"].values, strict=True)])


def _groups_for(sectors: Sequence[str], groups: dict | None) -> dict[str, tuple[str, ...]]:
    if groups is None:
        if set(sectors) == set(diffmrio.datasets.SECTORS):
            groups = DEMO_SECTOR_GROUPS
        elif len(sectors) <= 8:
            groups = {s: (s,) for s in sectors}
        else:
            groups = {"all sectors": tuple(sectors)}
    missing = set(sectors) - {s for v in groups.values() for s in v}
    if missing:
        raise ValueError(f"sector groups leave out sectors {sorted(missing)[:5]}; map every sector to a group")
    return {g: tuple(v) for g, v in groups.items()}


# ------------------------------------------------------------------------------------------ figures


def _fig_anais(ds, synthetic):
    fig, axes = subplots(1, 2, figsize=(12, 4.2), gridspec_kw={"wspace": 0.3})
    t = float(ds.anais_max_rel_change)
    ax = axes[0]
    ax.hist(100 * ds.cell_rel_change.values, bins=60, color="#4c72b0")
    ax.axvline(100 * t, color="#c44e52", ls="--", label=f"t* = {100 * t:.2f}%")
    ax.axvline(-100 * t, color="#c44e52", ls="--")
    ax.set_xlabel("relative change of a cell (%)")
    ax.set_ylabel("cells")
    ax.set_title("ANAIS: relative changes of the non-zero cells", fontsize=10)
    ax.legend(frameon=False)
    ax = axes[1]
    growth = ds.growth.values.ravel()
    ax.scatter(100 * growth, 100 * ds.row_growth.values.ravel(), s=12, color="#4c72b0")
    lim = 100 * np.abs(growth).max() * 1.1
    ax.plot([-lim, lim], [-lim, lim], "k--", lw=0.8)
    ax.set_xlabel("target output growth (%)")
    ax.set_ylabel("row-sum growth of the updated table (%)")
    ax.set_title(f"Margins met (max abs. row error {float(ds.anais_max_row_error):.1e}, column "
                 f"{float(ds.anais_max_col_error):.1e})", fontsize=10)
    fig.suptitle(f"ANAIS update of [Z Y] to new margins{tag(synthetic)}", fontsize=11)
    return fig


def _fig_heatmap(agg, labels, regions, n_groups, stressor, unit, synthetic):
    fig, ax = subplots(figsize=(10, 8.6))
    A = np.where(agg > 0, agg, np.nan)
    im = ax.imshow(A, cmap="magma_r", norm=matplotlib.colors.LogNorm(vmin=max(np.nanmax(A) * 1e-4, np.nanmin(A)),
                                                                      vmax=np.nanmax(A)))
    ticks = np.arange(len(labels))
    short = [lab.split(" | ")[1] for lab in labels]
    ax.set_xticks(ticks, short, rotation=90, fontsize=7)
    ax.set_yticks(ticks, short, fontsize=7)
    for k in range(1, len(regions)):
        ax.axhline(k * n_groups - 0.5, color="k", lw=0.8)
        ax.axvline(k * n_groups - 0.5, color="k", lw=0.8)
    for k, r in enumerate(regions):
        ax.text(-0.2, k * n_groups + n_groups / 2 - 0.5, r, rotation=90, ha="center", va="center",
                fontsize=9, fontweight="bold", transform=ax.get_yaxis_transform())
        ax.text(k * n_groups + n_groups / 2 - 0.5, -0.21, r, ha="center", va="center",
                fontsize=9, fontweight="bold", transform=ax.get_xaxis_transform())
    ax.set_xlabel("buyer (region | sector group)", labelpad=30)
    ax.set_ylabel(f"supplier, where {stressor} is emitted (region | sector group)", labelpad=30)
    fig.colorbar(im, ax=ax, shrink=0.7, label=f"embodied {stressor} ({unit}, log scale)")
    ax.set_title(f"Sector-pair embodied {stressor} flows Phi = diag(s) L Z, aggregated{tag(synthetic)}", fontsize=10)
    return fig


def _fig_chord(Phi, regions, sectors, top: pd.DataFrame, stressor, unit, synthetic):
    """Chord-like diagram: region-sector nodes on a circle (grouped by region), strongest links as curves."""
    R, N = len(regions), len(sectors)
    n = R * N
    gap = 0.25  # radians between regions
    span = (2 * np.pi - R * gap) / n
    ang = np.array([r * gap + (r * N + i + 0.5) * span for r in range(R) for i in range(N)])
    pos = np.c_[np.cos(ang), np.sin(ang)]
    fig, ax = subplots(figsize=(8.5, 8.5))
    cmap = matplotlib.colormaps["tab10"]
    for r in range(R):
        a0 = np.degrees(r * gap + r * N * span)
        a1 = np.degrees(r * gap + (r + 1) * N * span)
        ax.add_patch(Wedge((0, 0), 1.08, a0, a1, width=0.06, color=cmap(r % 10), alpha=0.85))
        mid = np.radians(0.5 * (a0 + a1))
        ax.text(1.45 * np.cos(mid), 1.45 * np.sin(mid), regions[r], ha="center", va="center", fontsize=10,
                fontweight="bold", color=cmap(r % 10))
    label_of = {f"{r}/{s}": k for k, (r, s) in enumerate((r, s) for r in regions for s in sectors)}
    vmax = top["flow"].max()
    used = set()
    for _, row in top.iloc[::-1].iterrows():
        a, b = label_of[row["supplier"]], label_of[row["buyer"]]
        used.update((a, b))
        verts = [pos[a], 0.15 * (pos[a] + pos[b]), pos[b]]
        path = MplPath(verts, [MplPath.MOVETO, MplPath.CURVE3, MplPath.CURVE3])
        ax.add_patch(FancyArrowPatch(path=path, arrowstyle="-|>,head_width=3,head_length=6",
                                     lw=0.8 + 6 * row["flow"] / vmax, color=cmap((a // N) % 10), alpha=0.7))
    for k in used:
        r, i = divmod(k, N)
        ax.plot(*pos[k], "o", color=cmap(r % 10), ms=5)
        rot = np.degrees(ang[k])
        flip = 90 < rot % 360 < 270
        ax.text(*(1.12 * pos[k]), sectors[i], rotation=rot + (180 if flip else 0), fontsize=7,
                ha="right" if flip else "left", va="center", rotation_mode="anchor")
    ax.set_xlim(-1.62, 1.62)
    ax.set_ylim(-1.62, 1.62)
    ax.set_aspect("equal")
    ax.axis("off")
    ax.set_title(f"The {len(top)} strongest embodied {stressor} links between region-sectors (self-supply "
                 f"excluded);\nline from supplier (coloured by its region) to buyer, width ~ flow{tag(synthetic)}",
                 fontsize=10)
    return fig


def _fig_efficiency(eff_sup, eff_buy, overall, s, Phi, regions, stressor, synthetic):
    fig, axes = subplots(1, 2, figsize=(13, 4.6), gridspec_kw={"wspace": 0.28})
    ax = axes[0]
    xs = np.arange(len(regions))
    ax.bar(xs - 0.2, 100 * eff_sup, 0.4, label="by supplier region", color="#c44e52")
    ax.bar(xs + 0.2, 100 * eff_buy, 0.4, label="by buyer region", color="#dd8452")
    ax.axhline(100 * overall, color="k", ls="--", lw=0.9, label=f"overall {100 * overall:.1f}%")
    ax.set_xticks(xs, regions, rotation=30)
    ax.set_ylabel(f"inefficient share of embodied {stressor} (%)")
    ax.set_ylim(0, 100)
    ax.legend(frameon=True, fontsize=8, loc="lower center")
    ax.set_title("Share of embodied flows from a more to a less intensive producer", fontsize=10)
    ax = axes[1]
    n = len(s)
    off = ~np.eye(n, dtype=bool)
    a, b = np.nonzero(off & (Phi > 0))
    w = Phi[a, b]
    keep = np.argsort(-w)[:600]  # the strongest links carry almost all the flow
    a, b, w = a[keep], b[keep], w[keep]
    ineff = s[a] > s[b]
    size = 2 + 200 * w / w.max()
    ax.scatter(s[b][~ineff], s[a][~ineff], s=size[~ineff], c="#4c72b0", alpha=0.5, label="efficient (s_sup <= s_buy)")
    ax.scatter(s[b][ineff], s[a][ineff], s=size[ineff], c="#c44e52", alpha=0.5, label="inefficient (s_sup > s_buy)")
    lo, hi = s[s > 0].min() * 0.7, s.max() * 1.4
    ax.plot([lo, hi], [lo, hi], "k--", lw=0.8)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel(f"buyer's direct {stressor} intensity")
    ax.set_ylabel(f"supplier's direct {stressor} intensity")
    ax.legend(frameon=False, fontsize=8, loc="lower right")
    ax.set_title(f"The {len(w)} strongest links ({100 * w.sum() / Phi[off].sum():.0f}% of the flow), "
                 "marker size ~ embodied flow", fontsize=10)
    fig.suptitle(f"Efficient vs inefficient supply chains{tag(synthetic)}", fontsize=11)
    return fig


# ------------------------------------------------------------------------------------------ compute


def compute(
    mrio: MRIO | None = None,
    *,
    margins: dict[str, np.ndarray] | None = None,
    stressor: str = "NOx",
    seed: int = 7,
    coef_range: float = 0.3,
    sector_groups: dict[str, Sequence[str]] | None = None,
    k_links: int = 10,
    synthetic: bool | None = None,
    source: str | None = None,
) -> xr.Dataset:
    """Every number of the BTH experiment, no figures.

    **Arguments:**

    - `mrio`: the prior table (default: the synthetic demo world); needs a `stressor` row.
    - `margins`: new-year margins (`output`, `inputs`, `final_demand`; see
      [`diffmrio.tables.read_margins_csv`][diffmrio.tables.read_margins_csv]); default: the synthetic
      [`scenario_margins`][experiments.city_network.scenario_margins] with `seed`.
    - `stressor`: the pollutant of the network (NOx in the study); `coef_range`: relative range allowed for each
      input-structure coefficient in ANAIS; `sector_groups`: group name -> sectors for the aggregated heat map;
      `k_links`: number of top links.
    - `synthetic`, `source`: labelling (default: synthetic when the table's name says so).

    **Returns:** an `xarray.Dataset`, every variable with `units`:

    - the updated table `Z`, `Y`, `F`, `F_Y` (layout of `MRIO.to_xarray`); ANAIS targets `output_target`,
      `input_target`, `final_demand_target`, `growth`; achieved `row_growth`; `cell_rel_change[cell]` of the
      non-zero cells; `anais_max_rel_change` (t*), `anais_achieved_max_rel_change`, `anais_weighted_change`,
      `anais_max_row_error`, `anais_max_col_error` (relative), `anais_max_coef_change`, `anais_seconds`;
    - `Phi[region, sector, to_region, to_sector]` = diag(s) L Z on the updated table, `intensity[region, sector]`,
      `total_embodied`, `self_supply_share`, top links `link_supplier`, `link_buyer`, `link_flow[link]`,
      `top_links_share`, aggregated `group_flows[block, to_block]`;
    - `inefficient[...]` (1 where s_supplier > s_buyer), `inefficient_share`, `inefficient_share_by_supplier`,
      `inefficient_share_by_buyer[region]`, `inefficient_flow`, `classified_flow`.
    """
    mrio, synthetic, source = table_or_demo(mrio, synthetic, source)
    if stressor not in mrio.stressors:
        raise ValueError(f"stressor {stressor!r} is not in the table ({list(mrio.stressors)}); add it with "
                         "--emissions or pass stressor=...")
    if k_links < 1 or k_links > mrio.n * (mrio.n - 1):
        raise ValueError(f"k_links={k_links}: give 1 to {mrio.n * (mrio.n - 1)} (the off-diagonal links)")
    margins_given = margins is not None
    if margins is None:
        margins = scenario_margins(mrio, seed=seed)
    sectors = list(mrio.sectors)
    R, N, n = mrio.n_regions, mrio.n_sectors, mrio.n
    unit = mrio.units[mrio.stressor_index(stressor)]
    groups = _groups_for(sectors, sector_groups)

    # 1. ANAIS
    t_anais = time.perf_counter()
    updated, arep, X0, X, (u, v) = anais_update(mrio, margins, coef_range=coef_range)
    t_anais = time.perf_counter() - t_anais
    nz = X0 != 0
    cell = (X[nz] - X0[nz]) / np.abs(X0[nz])
    share_new = X[:, :n] / np.where(X[:, :n].sum(0) > 0, X[:, :n].sum(0), 1)
    share_old = X0[:, :n] / np.where(X0[:, :n].sum(0) > 0, X0[:, :n].sum(0), 1)
    pos = X0[:, :n] > 0
    ds = updated.to_xarray()
    for k in ("Z", "Y", "F", "F_Y"):
        ds[k].attrs["units"] = "per stressor: see `unit`" if k.startswith("F") else "monetary unit of the table"
    rs, fd = ("region", "sector"), ("fd_region", "category")
    one = {"units": "1"}
    ds = ds.assign({
        "output_target": (rs, u.reshape(R, N), {"units": "monetary unit of the table"}),
        "input_target": (("to_region", "to_sector"), v[:n].reshape(R, N), {"units": "monetary unit of the table"}),
        "final_demand_target": (fd, v[n:].reshape(R, -1), {"units": "monetary unit of the table"}),
        "growth": (rs, np.asarray(margins["growth"]).reshape(R, N), {"units": "1", "long_name": "target output growth"}),
        "row_growth": (rs, (X.sum(1) / X0.sum(1) - 1).reshape(R, N), {"units": "1", "long_name": "achieved"}),
        "cell_rel_change": (("cell",), cell, {"units": "1", "long_name": "relative change of the non-zero cells"}),
        "anais_max_rel_change": ((), float(arep.max_rel_change), {"units": "1", "long_name": "t*"}),
        "anais_achieved_max_rel_change": ((), float(np.abs(cell).max()), one),
        "anais_weighted_change": ((), float(arep.weighted_abs_rel_change), one),
        "anais_max_row_error": ((), float(np.max(np.abs(X.sum(1) - u) / np.abs(u))), one),
        "anais_max_col_error": ((), float(np.max(np.abs(X.sum(0) - v) / np.where(v != 0, np.abs(v), 1))), one),
        "anais_max_coef_change": ((), float(np.max(np.abs(share_new - share_old)[pos] / share_old[pos])), one),
        "anais_seconds": ((), t_anais, {"units": "s"}),
    })  # fmt: skip

    # 2. network
    eco = diffmrio.Economy.from_mrio(updated)  # x, A, S and the factors of I - A, once for the flows and intensities
    phi = diffmrio.sector_flows(eco, stressor)  # in the stressor's units
    Phi4 = np.asarray(phi.values)
    Phi = Phi4.reshape(n, n)
    total = float(Phi.sum())
    top = diffmrio.supply_chain.top_flows(phi, k_links)
    agg = diffmrio.tables.aggregate_flows(phi, sector_map={s: g for g, members in groups.items() for s in members})
    agg = agg.sel(sector=list(groups), to_sector=list(groups))  # the groups' order
    agg_labels = [f"{r} | {g}" for r in agg["region"].values for g in agg["sector"].values]
    agg = agg.values.reshape(len(agg_labels), len(agg_labels))
    # intensities as the library defines them (divided wherever x != 0, negative outputs included)
    s = np.asarray(eco.S)[mrio.stressor_index(stressor)]
    flows = ("region", "sector", "to_region", "to_sector")

    # 3. efficiency
    eff = diffmrio.scenarios.supply_chain_efficiency(Phi, s, n_regions=R, by="supplier")
    eff_b = diffmrio.scenarios.supply_chain_efficiency(Phi, s, n_regions=R, by="buyer")
    ds = ds.assign({
        "Phi": (flows, Phi4, {"units": unit, "long_name": f"{stressor} of (region, sector) embodied in the purchases of (to_region, to_sector)"}),
        "intensity": (rs, s.reshape(R, N), {"units": f"{unit} per monetary unit"}),
        "total_embodied": ((), total, {"units": unit}),
        "self_supply_share": ((), float(np.trace(Phi) / total), one),
        "link_supplier": (("link",), _link_labels(top, ""), {"units": ""}),
        "link_buyer": (("link",), _link_labels(top, "to_"), {"units": ""}),
        "link_flow": (("link",), top["flow"].values, {"units": unit}),
        "top_links_share": ((), float(top["share"].sum()), one),
        "group_flows": (("block", "to_block"), agg, {"units": unit}),
        "inefficient": (flows, np.asarray(eff.inefficient).reshape(R, N, R, N).astype("i1"), {"units": "1"}),
        "inefficient_share": ((), float(eff.inefficient_share), one),
        "inefficient_share_by_supplier": (("region",), np.asarray(eff.inefficient_share_by_region), one),
        "inefficient_share_by_buyer": (("region",), np.asarray(eff_b.inefficient_share_by_region), one),
        "inefficient_flow": ((), float(eff.inefficient_flow), {"units": unit}),
        "classified_flow": ((), float(eff.total_flow), {"units": unit}),
    }).assign_coords(link=np.arange(1, k_links + 1), block=agg_labels, to_block=agg_labels)  # fmt: skip
    ds.attrs.update(stressor=stressor, unit=unit, synthetic=int(bool(synthetic)), source=source or f"table `{mrio.name}`",
                    margins_given=int(margins_given), seed=seed, coef_range=coef_range, groups=json.dumps(groups),
                    table_name=mrio.name, n_nonzero=int(nz.sum()))
    return ds


def updated_table(ds: xr.Dataset) -> MRIO:
    """The ANAIS-updated table held in a [`compute`][experiments.city_network.compute] dataset."""
    tab = ds[["Z", "Y", "F", "F_Y"]].assign_attrs(name=f"{ds.attrs['table_name']} updated by ANAIS")
    return MRIO.from_xarray(tab)


# ------------------------------------------------------------------------------------------ report


def report(ds: xr.Dataset, out: str | Path, *, seconds: float | None = None, quick: bool = False) -> Path:
    """Write `out/report.md`, `out/figures/*.png`, `out/results/city_network.nc` and `out/results/updated_mrio.nc`
    from the dataset of [`compute`][experiments.city_network.compute]; `quick` draws fewer links. **Returns** the
    report's path."""
    t0 = time.perf_counter()
    out = Path(out)
    synthetic = bool(ds.attrs["synthetic"])
    stressor, unit, coef_range = ds.attrs["stressor"], ds.attrs["unit"], float(ds.attrs["coef_range"])
    regions, sectors = list(ds.region.values), list(ds.sector.values)
    R, N = len(regions), len(sectors)
    groups = json.loads(ds.attrs["groups"])
    results = out / "results"
    results.mkdir(parents=True, exist_ok=True)
    write_netcdf_atomic(ds, results / "city_network.nc")
    write_netcdf_atomic(updated_table(ds).to_xarray(), results / "updated_mrio.nc")
    growth = ds.growth.values
    rep = Report(out, f"BTH study reproduction: ANAIS update, {stressor} supply-chain network and inefficient chains"
                 + tag(synthetic))
    rep.add(
        f"Data: {ds.attrs['source']}; new-year margins: "
        + ("given by the user" if ds.attrs["margins_given"] else
           f"a synthetic scenario (`scenario_margins(seed={ds.attrs['seed']})`)") + "."
        + (" **All numbers and figures are synthetic**: the demo world illustrates the method and is not data about"
           " any real place." if synthetic else "")
        + "\n\nThe BTH study (Beijing-Tianjin-Hebei, 2022) updated a city-level MRIO to a later year with ANAIS, "
        "mapped the consumption-driven NOx network as sector-pair embodied flows `Phi = diag(s) L Z` (its eq. 15), "
        "and classified supply chains as efficient or inefficient by comparing the emission intensity of supplier "
        "and buyer. This report runs the same three steps; every number is in `results/city_network.nc`, the "
        "updated table in `results/updated_mrio.nc`."
    )
    rep.add(
        "## 1. Updating the table with ANAIS\n\n"
        "The prior is the base table `[Z Y]`; rows must sum to the new gross output, `Z` columns to the new "
        "intermediate inputs and `Y` columns to the new final-demand totals. ANAIS (Tarancon & del Rio 2005) "
        "minimises the largest relative change `t* = min max |x_ij - x0_ij| / |x0_ij|`, then, with `t*` fixed, the "
        "share-weighted sum of relative changes; zeros stay zero and every input-structure coefficient stays within "
        f"+/-{100 * coef_range:.0f}% of the prior's.\n\n"
        f"- Targets: output growth from {100 * growth.min():+.1f}% to {100 * growth.max():+.1f}% by region-sector.\n"
        f"- **Largest relative change of any cell: {100 * float(ds.anais_max_rel_change):.2f}%** (achieved "
        f"{100 * float(ds.anais_achieved_max_rel_change):.2f}%); share-weighted mean change "
        f"{100 * float(ds.anais_weighted_change):.2f}%.\n"
        f"- **Margins met**: largest relative row error {float(ds.anais_max_row_error):.1e}, column error "
        f"{float(ds.anais_max_col_error):.1e}.\n"
        f"- Largest relative change of an input-structure coefficient: {100 * float(ds.anais_max_coef_change):.1f}% "
        f"(bound {100 * coef_range:.0f}%).\n"
        f"- {ds.attrs['n_nonzero']} non-zero cells, solved by HiGHS in {float(ds.anais_seconds):.1f} s. As a linear "
        "programme, ANAIS puts most cells at a vertex: unchanged or changed by exactly +/-t* (figure), unlike RAS, "
        "which spreads changes proportionally over rows and columns."
    )
    rep.figure(_fig_anais(ds, synthetic), "anais_update",
               f"ANAIS update: distribution of relative cell changes and margins met{tag(synthetic)}.")

    Phi4 = ds.Phi.values
    Phi = Phi4.reshape(R * N, R * N)
    k_links = ds.sizes["link"]
    top = pd.DataFrame({"supplier": ds.link_supplier.values, "buyer": ds.link_buyer.values,
                        "flow": ds.link_flow.values, "share of total %": 100 * ds.link_flow.values / float(ds.total_embodied)},
                       index=pd.RangeIndex(1, k_links + 1, name="rank"))
    rep.add(
        f"## 2. The consumption-driven {stressor} network\n\n"
        f"`Phi[a, b] = s_a (L Z)[a, b]`: {stressor} emitted by region-sector a that is embodied in the intermediate "
        f"purchases of region-sector b (computed on the updated table with one Leontief solve). Row sums "
        f"`Phi 1 = diag(s)(L x - x)`: all of a's upstream-driven emissions. Total embodied in intermediate "
        f"purchases: {float(ds.total_embodied):,.1f} {unit}; self-supply (a = b) carries "
        f"{100 * float(ds.self_supply_share):.1f}% of it and is left out of the link ranking.\n\n"
        f"- **The top {k_links} links carry {100 * float(ds.top_links_share):.1f}% of the total.**"
    )
    rep.table(top, f"Top {k_links} supplier -> buyer links of embodied {stressor} ({unit})", floatfmt="{:,.2f}")
    rf = pd.DataFrame(Phi4.sum(axis=(1, 3)), index=pd.Index(regions, name="supplier \\ buyer"), columns=regions)
    rep.table(rf, f"Embodied {stressor} flows aggregated to regions ({unit})")
    k_draw = 10 if quick else 20
    top_draw = diffmrio.supply_chain.top_flows(ds.Phi, k_draw)
    top_draw = pd.DataFrame({"supplier": _link_labels(top_draw, ""), "buyer": _link_labels(top_draw, "to_"),
                             "flow": top_draw["flow"].values})
    rep.figure(_fig_chord(Phi, regions, sectors, top_draw, stressor, unit, synthetic),
               "network_links", f"The {k_draw} strongest region-sector links of embodied {stressor}{tag(synthetic)}.")
    rep.figure(_fig_heatmap(ds.group_flows.values, list(ds.block.values), regions, len(groups), stressor, unit, synthetic),
               "network_heatmap", f"Embodied {stressor} flows aggregated to regions x sector groups "
               f"({'; '.join(f'{g}: ' + ', '.join(m) for g, m in groups.items()) if len(groups) < len(sectors) else 'sectors'})"
               f"{tag(synthetic)}.")

    ineff = ds.inefficient.values.reshape(R * N, R * N).astype(bool)
    ineff_by_sector = np.where(ineff, Phi, 0.0).sum(1).reshape(R, N).sum(0)
    top_ineff = [sectors[k] for k in np.argsort(-ineff_by_sector)[:3]]
    top_ineff_share = float(np.sort(ineff_by_sector)[-3:].sum() / ineff_by_sector.sum())
    overall = float(ds.inefficient_share)
    rep.add(
        "## 3. Efficient vs inefficient supply chains\n\n"
        f"A link supplier a -> buyer b is *inefficient* when `s_a > s_b` (the supplier's direct {stressor} "
        "intensity exceeds the buyer's: production has moved up the chain to a dirtier producer), efficient "
        "otherwise; self-supply is not classified. Share = inefficient embodied flow / classified embodied flow.\n\n"
        f"- **Inefficient share overall: {100 * overall:.1f}%** ({float(ds.inefficient_flow):,.1f} of "
        f"{float(ds.classified_flow):,.1f} {unit}); {100 * top_ineff_share:.0f}% of the inefficient flow is supplied "
        f"by {', '.join(top_ineff)}. By count, every pair of region-sectors trading "
        "both ways has exactly one inefficient direction, so the flow-weighted share is the informative number."
    )
    by_sup, by_buy = ds.inefficient_share_by_supplier.values, ds.inefficient_share_by_buyer.values
    dfe = pd.DataFrame({"inefficient share by supplier %": 100 * by_sup, "inefficient share by buyer %": 100 * by_buy,
                        f"embodied {stressor} supplied ({unit})": Phi.sum(1).reshape(R, N).sum(1)},
                       index=pd.Index(regions, name="region"))
    rep.table(dfe, "Inefficient supply chains per region")
    rep.figure(_fig_efficiency(by_sup, by_buy, overall, ds.intensity.values.ravel(), Phi, regions, stressor, synthetic),
               "efficiency", f"Inefficient share of embodied {stressor} per region, and links by supplier vs buyer "
               f"intensity{tag(synthetic)}.")
    rep.add(footer(NAME, (seconds or 0.0) + time.perf_counter() - t0))
    return rep.write()


# ------------------------------------------------------------------------------------------ run


def run(out: str | Path, *, mrio: MRIO | None = None, quick: bool = False, **kw) -> dict:
    """`compute` + `report`; `kw` go to [`compute`][experiments.city_network.compute]. **Returns**
    `{"dataset": ds, "report": path}`."""
    t0 = time.perf_counter()
    ds = compute(mrio, **kw)
    return {"dataset": ds, "report": report(ds, out, seconds=time.perf_counter() - t0, quick=quick)}


def main(argv: Sequence[str] | None = None) -> dict:
    ap = make_parser(__doc__.splitlines()[0])
    ap.add_argument("--stressor", default="NOx", help="pollutant of the network (default NOx)")
    ap.add_argument("--margins", type=Path, default=None,
                    help="CSV kind,region,label,value with the new output/inputs/final_demand margins")
    ap.add_argument("--coef-range", type=float, default=0.3, help="relative range of input coefficients in ANAIS")

    def extra(args) -> dict:
        return {"stressor": args.stressor, "seed": seed_or(args, 7), "coef_range": args.coef_range,
                "margins_path": args.margins}

    return cli_main(NAME, _run_cli, ap, argv, extra)


def _run_cli(out, *, mrio, margins_path=None, **kw) -> dict:
    margins = read_margins_csv(margins_path, mrio) if margins_path is not None else None
    return run(out, mrio=mrio, margins=margins, **kw)


if __name__ == "__main__":
    main()
