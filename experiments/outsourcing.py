r"""OUTSOURCE study (Feng et al. 2013, PNAS 110:11654, "Outsourcing CO2 within China") as an experiment.

1. Production- vs consumption-based CO2 per region, the region-to-region burden matrix
   $E[r, s] = \sum_t S_r L_{rt} y_{ts}$ (emitted in r for final demand of s), net transfers
   $N = E - E^T$ and their split by final-demand category (household, government, capital formation, export).
2. How an interregional table is *built* when only single-region tables exist: per product, a gravity prior
   $T^i_{rs} \propto O^i_r I^i_s / d_{rs}^{\beta}$ balanced by RAS to the regional outflow and inflow totals,
   turned into an MRIO by the proportional-sourcing assumption; its consumption-based CO2 is compared with the
   true table's, region by region.

`compute(mrio) -> xr.Dataset` holds every number (labelled, with `units`; the rebuilt table as its `rebuilt_*`
variables, read back with `rebuilt_table(ds)`), `report(ds, out)` writes the files; `run(out, ...)` does both.
Run: `python -m experiments.outsourcing --out DIR [--mrio NC | --ceads XLSX --emissions CSV] [--hubs A,B]
[--distances CSV] [--beta 1.0] [--quick]`. Writes `DIR/report.md`, `DIR/figures/*.png` and `DIR/results/*.nc`
(all atomically) and prints the report path. On the default demo world every number is **synthetic**.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

import diffmrio
from diffmrio import MRIO
from diffmrio.datasets import REGIONS as DEMO_REGIONS, demo_positions
from diffmrio.demo import Report, subplots
from diffmrio.tables import distance_matrix, gravity_ras_rebuild, read_distances_csv

from ._common import cli_main, footer, make_parser, table_or_demo, tag, write_netcdf_atomic

NAME = "outsourcing"
DEMO_HUBS = ("Capital", "Harbor")
# Final-demand category groups of the study, matched by substring of the table's category names
# (CEADs: rural_household + urban_household -> household; capital_formation + inventory -> capital formation).
CATEGORY_GROUPS = {
    "household": ("household",),
    "government": ("government",),
    "capital_formation": ("capital", "inventor"),
    "export": ("export",),
}
DEFAULT_BETAS = (0.0, 0.5, 1.0, 1.5, 2.0, 3.0)


# ------------------------------------------------------------------------------------------ accounts


def category_groups(categories: Sequence[str]) -> dict[str, tuple[str, ...]]:
    """Group the table's final-demand categories into the study's categories (household, government,
    capital formation, export; anything else -> `other`). Empty groups are left out."""
    groups: dict[str, list[str]] = {g: [] for g in CATEGORY_GROUPS}
    groups["other"] = []
    for c in categories:
        low = c.lower()
        for g, keys in CATEGORY_GROUPS.items():
            if any(k in low for k in keys):
                groups[g].append(c)
                break
        else:
            groups["other"].append(c)
    return {g: tuple(v) for g, v in groups.items() if v}


def _stressor_accounts(mrio: MRIO, stressor: str, categories=None) -> dict[str, np.ndarray]:
    acc = diffmrio.accounts(mrio, categories=categories).sel(stressor=stressor)
    return {k: np.asarray(acc[k].values) for k in ("D_pba_reg", "D_cba_reg", "D_imp_reg", "D_exp_reg", "burden")}


# ------------------------------------------------------------------------------------------ reconstruction


def _reconstruction_errors(true: dict, rebuilt: dict) -> dict[str, np.ndarray]:
    cba_err = (rebuilt["D_cba_reg"] - true["D_cba_reg"]) / true["D_cba_reg"]
    imp_err = (rebuilt["D_imp_reg"] - true["D_imp_reg"]) / np.where(true["D_imp_reg"] > 0, true["D_imp_reg"], 1)
    Et, Er = true["burden"], rebuilt["burden"]
    off = ~np.eye(Et.shape[0], dtype=bool)
    misallocated = 0.5 * np.abs(Er - Et)[off].sum() / Et[off].sum()
    return {"cba": cba_err, "imp": imp_err, "misallocated": misallocated}


# ------------------------------------------------------------------------------------------ compute


def _accounts(mrio, stressor, hubs, top_k) -> xr.Dataset:
    """Sections 1 and 2: PBA/CBA, burden and net transfers, split by final-demand category, hub shares."""
    regions = list(mrio.regions)
    R = len(regions)
    is_demo_regions = tuple(regions) == DEMO_REGIONS
    unit = mrio.units[mrio.stressor_index(stressor)]
    groups = category_groups(mrio.categories)
    domestic = tuple(c for g, cs in groups.items() if g != "export" for c in cs)
    tot = _stressor_accounts(mrio, stressor)
    by_group = {g: _stressor_accounts(mrio, stressor, cs) for g, cs in groups.items()}
    pba, cba, E = tot["D_pba_reg"], tot["D_cba_reg"], tot["burden"]
    net = E - E.T
    hubs_auto = hubs is None and not is_demo_regions
    if hubs is None:
        hubs = DEMO_HUBS if is_demo_regions else tuple(
            regions[k] for k in np.argsort(-cba / np.maximum(pba, 1e-300))[: max(1, int(np.ceil(R / 4)))])
    bad = [h for h in hubs if h not in regions]
    if bad:
        raise ValueError(f"hubs {bad} are not regions of the table; regions: {regions}")
    H = np.array([regions.index(h) for h in hubs])
    notH = np.setdiff1d(np.arange(R), H)
    base = _stressor_accounts(mrio, stressor, domestic) if domestic else tot
    Ed = base["burden"]
    FY_dom = float(base["D_cba_reg"].sum() - Ed.sum())  # direct emissions of domestic final demand
    order = np.dstack(np.unravel_index(np.argsort(-net, axis=None), net.shape))[0]
    top = [(int(r), int(s)) for r, s in order if net[r, s] > 0][:top_k]
    net_by_group = [a["burden"].sum(0) - a["burden"].sum(1) for a in by_group.values()]  # EEI - EEE
    return xr.Dataset(
        {
            "pba": ("region", pba, {"units": unit}), "cba": ("region", cba, {"units": unit}),
            "imports": ("region", tot["D_imp_reg"], {"units": unit}),
            "exports": ("region", tot["D_exp_reg"], {"units": unit}),
            "burden": (("region", "consumer"), E, {"units": unit}),
            "net_transfer": (("region", "consumer"), net, {"units": unit}),
            "cba_by_category": (("category_group", "region"), np.array([a["D_cba_reg"] for a in by_group.values()]),
                                {"units": unit}),
            "burden_by_category": (("category_group", "region", "consumer"),
                                   np.array([a["burden"] for a in by_group.values()]), {"units": unit}),
            "net_import_by_category": (("category_group", "region"), np.array(net_by_group), {"units": unit}),
            "hub_share_emitted_elsewhere": ((), float(Ed[np.ix_(notH, H)].sum() / base["D_cba_reg"][H].sum()),
                                            {"units": "1", "long_name": "of the hubs' domestic CBA"}),
            "hub_share_emitted_outside": (("hub",), base["D_imp_reg"][H] / base["D_cba_reg"][H], {"units": "1"}),
            "share_consumed_outside_producing_region": ((), float(1.0 - (np.trace(Ed) + FY_dom) / pba.sum()),
                                                        {"units": "1"}),
            "top_emitter": (("top",), np.array([regions[r] for r, _ in top], dtype=str), {"units": ""}),
            "top_consumer": (("top",), np.array([regions[s] for _, s in top], dtype=str), {"units": ""}),
            "top_value": (("top",), np.array([net[r, s] for r, s in top]), {"units": unit}),
        },
        coords={"region": regions, "consumer": regions, "category_group": list(by_group),
                "hub": np.array(hubs, dtype=str), "top": np.arange(len(top))},
        attrs={"stressor": stressor, "unit": unit, "hubs_auto": int(hubs_auto), "domestic": ",".join(domestic),
               "description": "burden[r, s]: emitted in r for final demand of s; net_transfer = burden - burden^T"},
    )  # fmt: skip


def _reconstruction(mrio, stressor, distances, beta, sweep_betas) -> tuple[xr.Dataset, MRIO]:
    """Section 3: gravity + RAS rebuilds (two variants, a beta sweep) against the true table."""
    regions = list(mrio.regions)
    unit = mrio.units[mrio.stressor_index(stressor)]
    tot = _stressor_accounts(mrio, stressor)
    variants = {"outflows/inflows known": True, "totals only": False}
    errs, sweep, burden_reb = {}, {v: [] for v in variants}, {}
    rebuilt_main = info_main = None
    for lab, known in variants.items():
        for b in sweep_betas:
            reb, info = gravity_ras_rebuild(mrio, distances, beta=b, known_flows=known)
            acc_r = _stressor_accounts(reb, stressor)
            e = _reconstruction_errors(tot, acc_r)
            sweep[lab].append(float(np.abs(e["cba"]).max()))
            if b == beta:
                errs[lab], burden_reb[lab] = e, acc_r["burden"]
                if known:
                    rebuilt_main, info_main = reb, info
    x_true = np.asarray(diffmrio.accounts(mrio)["x"].values).ravel()
    x_reb = np.asarray(rebuilt_main.Z).sum(1) + np.asarray(rebuilt_main.Y).sum(1)
    v = list(variants)
    rec = xr.Dataset(
        {
            "cba_true": ("region", tot["D_cba_reg"], {"units": unit}),
            "cba_rebuilt": (("variant", "region"), np.array([tot["D_cba_reg"] * (1 + errs[k]["cba"]) for k in v]),
                            {"units": unit}),
            "cba_rel_error": (("variant", "region"), np.array([errs[k]["cba"] for k in v]), {"units": "1"}),
            "imports_rel_error": (("variant", "region"), np.array([errs[k]["imp"] for k in v]), {"units": "1"}),
            "misallocated_share": (("variant",), np.array([errs[k]["misallocated"] for k in v]), {"units": "1"}),
            "max_abs_cba_error": (("variant", "beta"), np.array([sweep[k] for k in v]), {"units": "1"}),
            "burden_true": (("region", "to_region"), tot["burden"], {"units": unit}),
            "burden_rebuilt": (("variant", "region", "to_region"), np.array([burden_reb[k] for k in v]),
                               {"units": unit}),
            "trade_true": (("sector", "region", "to_region"), info_main["trade_true"].values,
                           info_main["trade_true"].attrs),
            "trade_rebuilt": (("sector", "region", "to_region"), info_main["trade"].values, info_main["trade"].attrs),
            "distance": (("region", "to_region"), info_main["distance"].values, info_main["distance"].attrs),
            "output_max_rel_gap": ((), float(np.max(np.abs(x_reb - x_true) / x_true)), {"units": "1"}),
        },
        coords={"variant": v, "region": regions, "to_region": regions, "beta": list(sweep_betas),
                "sector": list(mrio.sectors)},
        attrs={"stressor": stressor, "unit": unit, "gravity_beta": beta,
               "description": "gravity prior O_r I_s / d^beta balanced by RAS per product; proportional sourcing"},
    )  # fmt: skip
    return rec, rebuilt_main


def compute(
    mrio: MRIO,
    *,
    stressor: str = "CO2",
    hubs: Sequence[str] | None = None,
    positions: dict[str, Sequence[float]] | None = None,
    distances: xr.DataArray | np.ndarray | None = None,
    beta: float = 1.0,
    betas: Sequence[float] | None = DEFAULT_BETAS,
    top_k: int = 8,
    reconstruct: bool = True,
    synthetic: bool = False,
    source: str | None = None,
) -> xr.Dataset:
    """Every number of the OUTSOURCE experiment, no figures.

    **Arguments:** `mrio` (needs a `stressor` row and two regions or more); `hubs` (default: Capital, Harbor on
    the demo world, else the quarter of regions with the highest CBA/PBA ratio); `positions` (x, y per region) or
    `distances` (`(region, to_region)` DataArray aligned by label, e.g. from `diffmrio.tables.read_distances_csv`,
    or an `(R, R)` array) for the gravity model (default: the demo map when the regions are the demo's; without
    either the reconstruction is left out); `beta`: distance exponent; `betas`: the sensitivity sweep (`None` or
    empty: `beta` only); `top_k`: the largest net transfers kept; `reconstruct=False` leaves the reconstruction
    out even with distances (sections 1-2 only); `synthetic`, `source`: recorded for the report.

    **Returns:** one dataset, every variable with `units`: sections 1-2 (`pba`, `cba`, `imports`, `exports`,
    `burden[region, consumer]`, `net_transfer`, the split by `category_group`, the hub shares, the `top` net
    transfers, `position` when the regions have positions) and, when there are distances, section 3 (`cba_true`,
    `cba_rebuilt[variant, region]`, `cba_rel_error`, `imports_rel_error`, `misallocated_share`,
    `max_abs_cba_error[variant, beta]`, `burden_true`/`burden_rebuilt[.., region, to_region]`, the true and
    rebuilt trade per `sector`, `distance`, `output_max_rel_gap`) with the rebuilt table at `beta` as
    `rebuilt_Z`, `rebuilt_Y`, `rebuilt_F`, `rebuilt_F_Y` ([`rebuilt_table`][experiments.outsourcing.rebuilt_table]
    reads it back as an `MRIO`).
    """
    if stressor not in mrio.stressors:
        raise ValueError(f"stressor {stressor!r} is not in the table ({list(mrio.stressors)}); add it with "
                         "--emissions or pass stressor=...")
    regions = list(mrio.regions)
    if len(regions) < 2:
        raise ValueError(f"the table has {len(regions)} region: outsourcing between regions needs at least two")
    demo_map = positions is None and distances is None and tuple(regions) == DEMO_REGIONS
    if demo_map:
        positions = demo_positions()
    if distances is None and positions is not None:
        distances = distance_matrix(positions, regions)
    acc = _accounts(mrio, stressor, hubs, top_k)
    if positions is not None:
        acc["position"] = (("region", "axis"), np.array([positions[r] for r in regions], dtype=np.float64),
                           {"units": "of the map"})
    attrs = {"synthetic": int(bool(synthetic)), "source": source or f"table `{mrio.name}`",
             "distances_from": "the demo map" if demo_map else "the given positions/distances"}
    acc.attrs.update(attrs)
    if distances is None or not reconstruct:
        return acc
    sweep = tuple(sorted(set(betas or ()) | {beta}))
    rec, rebuilt = _reconstruction(mrio, stressor, distances, beta, sweep)
    tab = rebuilt.to_xarray()
    for k in ("Z", "Y", "F", "F_Y"):
        if k in tab:
            tab[k].attrs["units"] = "per stressor: see `unit`" if k.startswith("F") else "monetary unit of the table"
    tab = tab.rename({k: f"rebuilt_{k}" for k in tab.data_vars}).drop_attrs(deep=False)  # name: attrs["rebuilt_name"]
    ds = xr.merge([acc, rec, tab], combine_attrs="drop_conflicts", join="exact")
    return ds.assign_attrs(acc.attrs | rec.attrs | {
        "description": f"{acc.attrs['description']}; reconstruction: {rec.attrs['description']}",
        "rebuilt_name": rebuilt.name})


def rebuilt_table(ds: xr.Dataset) -> MRIO:
    """The gravity + RAS table (at the dataset's `gravity_beta`, outflows and inflows known) held in a
    [`compute`][experiments.outsourcing.compute] dataset as its `rebuilt_*` variables."""
    if "rebuilt_Z" not in ds:
        raise ValueError("the dataset holds no rebuilt table: compute leaves the reconstruction out without region "
                         "positions or distances (pass positions=... or distances=...)")
    names = [v for v in ds.data_vars if v.startswith("rebuilt_")]
    tab = ds[names].rename({v: v.removeprefix("rebuilt_") for v in names})
    return MRIO.from_xarray(tab.assign_attrs(name=ds.attrs["rebuilt_name"]))


def _has_reconstruction(ds: xr.Dataset) -> bool:
    return "cba_rel_error" in ds


def headline(ds: xr.Dataset) -> dict:
    """The headline numbers of [`compute`][experiments.outsourcing.compute]'s dataset as a plain dict (fractions
    as fractions, flows in the stressor's unit)."""
    regions = [str(r) for r in ds.region.values]
    out = {
        "stressor": ds.attrs["stressor"], "unit": ds.attrs["unit"], "synthetic": bool(ds.attrs["synthetic"]),
        "hubs": tuple(map(str, ds.hub.values)),
        "hub_share_emitted_elsewhere": float(ds.hub_share_emitted_elsewhere),
        "hub_share_emitted_outside_each_hub": dict(zip(map(str, ds.hub.values),
                                                       ds.hub_share_emitted_outside.values.tolist())),
        "share_consumed_outside_producing_region": float(ds.share_consumed_outside_producing_region),
        "largest_net_transfer": {"from_consumer": str(ds.top_consumer[0].values),
                                 "to_emitter": str(ds.top_emitter[0].values), "value": float(ds.top_value[0])},
        "pba": dict(zip(regions, ds.pba.values.tolist())), "cba": dict(zip(regions, ds.cba.values.tolist())),
    }  # fmt: skip
    if _has_reconstruction(ds):
        known, only = "outflows/inflows known", "totals only"
        e = ds.cba_rel_error.sel(variant=known).values
        out.update({
            "reconstruction_error": float(np.abs(e).max()),
            "reconstruction_error_by_region": dict(zip(regions, e.tolist())),
            "reconstruction_error_totals_only": float(np.abs(ds.cba_rel_error.sel(variant=only)).max()),
            "imports_error_by_region": dict(zip(regions, ds.imports_rel_error.sel(variant=known).values.tolist())),
            "misallocated_share": float(ds.misallocated_share.sel(variant=known)),
            "beta": float(ds.attrs["gravity_beta"]),
            "beta_sweep": dict(zip(ds.beta.values.tolist(), ds.max_abs_cba_error.sel(variant=known).values.tolist())),
        })  # fmt: skip
    return out


# ------------------------------------------------------------------------------------------ figures


def _fig_pba_cba(regions, pba, cba_by_group, unit, stressor, synthetic):
    fig, ax = subplots(figsize=(9, 4))
    xs = np.arange(len(regions))
    ax.bar(xs - 0.2, pba, 0.4, color="#4c72b0", label="production-based")
    bottom = np.zeros(len(regions))
    colors = {"household": "#dd8452", "government": "#c44e52", "capital_formation": "#8172b3",
              "export": "#937860", "other": "#999999"}
    for g, v in cba_by_group.items():
        ax.bar(xs + 0.2, v, 0.4, bottom=bottom, color=colors.get(g, "#777"), label=f"consumption: {g}")
        bottom += v
    ax.set_xticks(xs, regions, rotation=30 if len(regions) <= 12 else 90)
    ax.set_ylabel(f"{stressor} ({unit})")
    ax.legend(frameon=False, fontsize=8, ncol=2)
    ax.set_title(f"Production- vs consumption-based {stressor}, consumption split by final demand{tag(synthetic)}",
                 fontsize=10)
    return fig


def _layout(regions, positions):
    if positions is not None:
        return np.array([positions[r] for r in regions], dtype=np.float64)
    ang = 2 * np.pi * np.arange(len(regions)) / len(regions)
    return np.c_[0.5 + 0.4 * np.cos(ang), 0.5 + 0.4 * np.sin(ang)]


def _fig_map(regions, positions, pba, cba, net, top, unit, stressor, synthetic):
    P = _layout(regions, positions)
    fig, ax = subplots(figsize=(8.5, 5.8))
    vmax = max(v for *_, v in top) if top else 1.0
    rad = -0.25  # arcs bend to the left of the direction of travel
    for r, s, v in top:  # embodied flow from emitter r to consumer s
        ax.annotate("", xy=P[s], xytext=P[r], arrowprops=dict(
            arrowstyle="-|>,head_width=0.5,head_length=0.9", lw=1 + 7 * v / vmax, color="#c44e52", alpha=0.75,
            shrinkA=14, shrinkB=14, connectionstyle=f"arc3,rad={rad}"), zorder=2)
        dx, dy = P[s] - P[r]
        mid = 0.5 * (P[r] + P[s]) + 0.5 * rad * np.array([dy, -dx])  # midpoint of the arc3 Bezier curve
        ax.text(*mid, f"{v:,.0f}", fontsize=8, color="#7a1f1f", ha="center", va="center", zorder=6,
                bbox=dict(boxstyle="round,pad=0.15", fc="white", ec="none", alpha=0.85))
    size = 300 + 1500 * pba / pba.max()
    col = np.where(cba > pba, "#dd8452", "#4c72b0")
    ax.scatter(P[:, 0], P[:, 1], s=size, c=col, alpha=0.85, edgecolors="k", zorder=3)
    centre = P.mean(axis=0)
    for k, r in enumerate(regions):
        right = P[k, 0] >= centre[0]
        off = (np.sqrt(size[k]) / 2 + 4) * (1 if right else -1)  # scatter size is the area in pt^2
        ax.annotate(f"{r}\nPBA {pba[k]:,.0f}\nCBA {cba[k]:,.0f}", P[k], xytext=(off, 0), textcoords="offset points",
                    ha="left" if right else "right", va="center", fontsize=8, zorder=5,
                    bbox=dict(boxstyle="round,pad=0.1", fc="white", ec="none", alpha=0.7))
    ax.set_xlim(-0.25, 1.25)
    ax.set_ylim(0.0, 1.0)
    ax.set_aspect("equal")
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(f"Largest net transfers of embodied {stressor} ({unit}): arrow from emitting to consuming region\n"
                 f"orange = net importer (CBA > PBA), blue = net exporter; circle size ~ PBA{tag(synthetic)}",
                 fontsize=9)
    return fig


def _fig_net(regions, net, net_by_group, unit, stressor, synthetic):
    fig, axes = subplots(1, 2, figsize=(13, 4.8), gridspec_kw={"wspace": 0.35, "width_ratios": [1, 1.1]})
    ax = axes[0]
    lim = np.abs(net).max()
    im = ax.imshow(net, cmap="RdBu_r", vmin=-lim, vmax=lim)
    xs = np.arange(len(regions))
    ax.set_xticks(xs, regions, rotation=35)
    ax.set_yticks(xs, regions)
    ax.set_xlabel("consumer s")
    ax.set_ylabel("emitter r")
    if len(regions) <= 10:
        for i in range(len(regions)):
            for j in range(len(regions)):
                ax.text(j, i, f"{np.round(net[i, j]) + 0.0:.0f}", ha="center", va="center", fontsize=7)
    fig.colorbar(im, ax=ax, shrink=0.8, label=f"E[r,s] - E[s,r] ({unit})")
    ax.set_title("Net transfer matrix", fontsize=10)
    ax = axes[1]
    bottom_p = np.zeros(len(regions))
    bottom_n = np.zeros(len(regions))
    colors = {"household": "#dd8452", "government": "#c44e52", "capital_formation": "#8172b3",
              "export": "#937860", "other": "#999999"}
    for g, v in net_by_group.items():
        b = np.where(v >= 0, bottom_p, bottom_n)
        ax.bar(xs, v, 0.6, bottom=b, color=colors.get(g, "#777"), label=g)
        bottom_p += np.maximum(v, 0)
        bottom_n += np.minimum(v, 0)
    ax.axhline(0, color="k", lw=0.8)
    ax.set_xticks(xs, regions, rotation=30)
    ax.set_ylabel(f"net embodied import of {stressor} ({unit})")
    ax.legend(frameon=False, fontsize=8)
    ax.set_title("Net embodied imports (EEI - EEE) by final-demand category", fontsize=10)
    fig.suptitle(f"Net interregional transfers of {stressor}{tag(synthetic)}", fontsize=11)
    return fig


def _fig_reconstruction(regions, errs, sweep, betas, beta, Et, Er, stressor, synthetic):
    fig, axes = subplots(1, 3, figsize=(15, 4.3), gridspec_kw={"wspace": 0.3})
    xs = np.arange(len(regions))
    ax = axes[0]
    for k, (lab, e) in enumerate(errs.items()):
        ax.bar(xs + (k - 0.5) * 0.38, 100 * e["cba"], 0.38, label=lab)
    ax.axhline(0, color="k", lw=0.8)
    ax.set_xticks(xs, regions, rotation=30)
    ax.set_ylabel("CBA error of rebuilt table (%)")
    ax.set_title(f"Consumption-based {stressor}: rebuilt vs true (beta = {beta:g})", fontsize=10)
    ax.legend(frameon=False, fontsize=8)
    ax = axes[1]
    for lab, vals in sweep.items():
        ax.plot(betas, 100 * np.asarray(vals), "o-", label=lab)
    ax.axvline(beta, color="k", lw=0.6, ls=":")
    ax.set_xlabel("distance exponent beta")
    ax.set_ylabel("max |CBA error| over regions (%)")
    ax.set_title("Sensitivity to the gravity exponent", fontsize=10)
    ax.legend(frameon=False, fontsize=8)
    ax = axes[2]
    off = ~np.eye(len(regions), dtype=bool)
    ax.loglog(Et[off], Er[off], "o", color="#4c72b0", alpha=0.8)
    lo, hi = Et[off].min() * 0.5, Et[off].max() * 2
    ax.plot([lo, hi], [lo, hi], "k--", lw=0.8)
    ax.set_xlabel(f"true interregional burden E[r,s] ({stressor})")
    ax.set_ylabel("rebuilt E[r,s]")
    ax.set_title("Interregional burden, r != s (outflows known)", fontsize=10)
    fig.suptitle(f"Gravity + RAS reconstruction of the interregional table{tag(synthetic)}", fontsize=11)
    return fig


def report(ds: xr.Dataset, out: str | Path, *, seconds: float | None = None) -> Path:
    """Write `out/report.md`, `out/figures/*.png`, `out/results/outsourcing.nc` (the dataset) and, with the
    reconstruction, `out/results/rebuilt_mrio.nc` (the rebuilt table, readable with `MRIO.from_xarray`) from
    [`compute`][experiments.outsourcing.compute]'s dataset. **Returns** the report path."""
    t0 = time.perf_counter()
    out = Path(out)
    h = headline(ds)
    synthetic, stressor, unit = h["synthetic"], h["stressor"], h["unit"]
    regions = [str(r) for r in ds.region.values]
    results = out / "results"
    results.mkdir(parents=True, exist_ok=True)
    write_netcdf_atomic(ds, results / "outsourcing.nc")
    pba, cba, E, net = ds.pba.values, ds.cba.values, ds.burden.values, ds.net_transfer.values
    groups = [str(g) for g in ds.category_group.values]
    cba_by_group = dict(zip(groups, ds.cba_by_category.values))
    net_by_group = dict(zip(groups, ds.net_import_by_category.values))
    positions = (dict(zip(regions, map(tuple, ds.position.values))) if "position" in ds else None)
    demo_map = ds.attrs["distances_from"] == "the demo map"
    top = [(regions.index(str(r)), regions.index(str(s)), float(v))
           for r, s, v in zip(ds.top_emitter.values, ds.top_consumer.values, ds.top_value.values)]
    r0, s0, v0 = top[0]

    rep = Report(out, f"OUTSOURCE study reproduction: outsourcing {stressor} between regions" + tag(synthetic))
    rep.add(
        f"Data: {ds.attrs['source']}."
        + (" **All numbers and figures are synthetic**: the demo world illustrates the method and is not data about"
           " any real place." if synthetic else "")
        + "\n\nFeng et al. (2013, *PNAS* 110:11654) tracked CO2 embodied in trade among China's 30 provinces with "
        "the 2007 interprovincial MRIO (built from provincial tables with a gravity model and RAS) and found that "
        "57% of China's emissions are related to goods consumed outside the province where they are produced, and "
        "that up to 80% of the emissions related to goods consumed in the developed coastal provinces are emitted "
        "in less developed central and western provinces. This report repeats the analysis on the table above."
    )
    rep.add(
        "## 1. Production- vs consumption-based accounts\n\n"
        "`D_pba_reg` is emitted in the region (incl. households' direct emissions); `D_cba_reg` is emitted anywhere "
        "for the region's final demand, `S L y_s + F_Y[s]`. The export category of a region counts as that "
        "region's final demand (pymrio convention); the hub shares below use domestic final demand only "
        f"({', '.join(ds.attrs['domestic'].split(','))})."
    )
    df = pd.DataFrame({"PBA": pba, "CBA": cba, "embodied imports": ds.imports.values,
                       "embodied exports": ds.exports.values, "CBA - PBA": cba - pba},
                      index=pd.Index(regions, name="region"))
    for g, v in cba_by_group.items():
        df[f"CBA {g}"] = v
    rep.table(df, f"{stressor} ({unit}) by region")
    rep.figure(_fig_pba_cba(regions, pba, cba_by_group, unit, stressor, synthetic), "pba_vs_cba",
               f"Production- vs consumption-based {stressor} per region, consumption split by final-demand "
               f"category{tag(synthetic)}.")
    hubs = h["hubs"]
    rep.add(
        "## 2. Net transfers\n\n"
        "Burden matrix `E[r, s] = sum_t S_r L_rt y_ts` (emitted in r for final demand of s) and net transfers "
        "`N[r, s] = E[r, s] - E[s, r]`: N[r, s] > 0 means s's demand causes more emissions in r than r's demand "
        "causes in s (s outsources to r).\n\n"
        + ("Hubs chosen automatically as the quarter of regions with the highest CBA/PBA ratio (pass `--hubs` "
           "to choose them).\n\n" if ds.attrs["hubs_auto"] else "")
        + f"- **Share of {stressor} consumed in the hubs ({', '.join(hubs)}) that is emitted outside the hubs: "
        f"{100 * h['hub_share_emitted_elsewhere']:.1f}%** (domestic final demand).\n"
        + "".join(f"- {k}: {100 * v:.1f}% of its consumption-based {stressor} is emitted in other regions.\n"
                  for k, v in h["hub_share_emitted_outside_each_hub"].items())
        + f"- Share of all {stressor} related to goods consumed outside the producing region (other regions or "
        f"abroad): {100 * h['share_consumed_outside_producing_region']:.1f}% (study: 57% for China 2007).\n"
        f"- **Largest net transfer: {v0:,.1f} {unit} emitted in {regions[r0]} for {regions[s0]}'s final demand, net** "
        f"({regions[s0]}'s demand emits {E[r0, s0]:,.1f} in {regions[r0]}; {regions[r0]}'s demand emits "
        f"{E[s0, r0]:,.1f} in {regions[s0]})."
    )
    rep.figure(_fig_map(regions, positions, pba, cba, net, top, unit, stressor, synthetic), "net_transfers_map",
               f"The {len(top)} largest net transfers of embodied {stressor}, from emitting to consuming region"
               f"{' (region positions of the demo map)' if positions is not None and demo_map else ''}"
               f"{tag(synthetic)}.")
    nt = pd.DataFrame(net_by_group, index=pd.Index(regions, name="region"))
    nt["total"] = nt.sum(axis=1)
    rep.table(nt, f"Net embodied imports (EEI - EEE, {unit}) by final-demand category")
    rep.figure(_fig_net(regions, net, net_by_group, unit, stressor, synthetic), "net_transfers",
               f"Net transfer matrix and net embodied imports by final-demand category{tag(synthetic)}.")

    if not _has_reconstruction(ds):
        rep.add("## 3. Gravity + RAS reconstruction\n\nSkipped: no region positions or distances (pass "
                "`--distances CSV`).")
    else:
        write_netcdf_atomic(rebuilt_table(ds).to_xarray(), results / "rebuilt_mrio.nc")
        beta = h["beta"]
        known, only = "outflows/inflows known", "totals only"
        e_cba, e_imp = ds.cba_rel_error.sel(variant=known).values, ds.imports_rel_error.sel(variant=known).values
        sweep_betas = ds.beta.values.tolist()
        rep.add(
            "## 3. Building the interregional table: gravity model + RAS\n\n"
            "The study's MRIO was compiled from single-region (provincial) tables. Here we pretend only those are "
            "known: per region, intermediate use by product and sector `U_s`, domestic final use `Y_d,s`, output "
            "`x_s`, foreign exports `e_s` and the domestic outflow `O_s` and inflow `I_s` per product. For each "
            f"product i a gravity prior `T0[r, s] = O_r I_s / d_rs^beta` (r != s, beta = {beta:g}, distances from "
            f"{ds.attrs['distances_from']}) "
            "is balanced by RAS to the outflows (rows) and inflows (columns); each user in s then buys product i "
            "from r in the proportion `T[r, s] / D_s` (Chenery-Moses). The variant *totals only* also estimates "
            "the local flows (prior `(x_r - e_r) D_s / d_rs^beta` with internal distance half the nearest-"
            "neighbour distance, RAS to supply and use).\n\n"
            f"The rebuilt table reproduces every regional total: output matches to {float(ds.output_max_rel_gap):.1e} "
            f"(relative), so production-based {stressor} is unchanged; only the interregional allocation differs."
        )
        dfr = pd.DataFrame({
            "CBA true": ds.cba_true.values, "CBA rebuilt": ds.cba_rebuilt.sel(variant=known).values,
            "CBA error %": 100 * e_cba, "embodied imports error %": 100 * e_imp,
            "CBA error % (totals only)": 100 * ds.cba_rel_error.sel(variant=only).values,
        }, index=pd.Index(regions, name="region"))  # fmt: skip
        rep.table(dfr, f"Consumption-based {stressor} ({unit}): true table vs gravity + RAS rebuild")
        sweep = {str(k): ds.max_abs_cba_error.sel(variant=k).values for k in ds.variant.values}
        rep.add(
            f"- **Largest regional CBA error: {100 * np.abs(e_cba).max():.1f}%** "
            f"({regions[int(np.argmax(np.abs(e_cba)))]}); mean absolute error {100 * np.abs(e_cba).mean():.1f}%.\n"
            f"- Embodied imports are distorted more: largest error {100 * np.abs(e_imp).max():.1f}%.\n"
            f"- Share of interregional burden allocated to the wrong region pair: "
            f"{100 * float(ds.misallocated_share.sel(variant=known)):.1f}% (outflows known) vs "
            f"{100 * float(ds.misallocated_share.sel(variant=only)):.1f}% (totals only).\n"
            + ("- Beta sweep (max |CBA error|, outflows known): "
               + ", ".join(f"beta={b:g}: {100 * v:.1f}%" for b, v in zip(sweep_betas, sweep[known]))
               + "." if len(sweep_betas) > 1 else "")
        )
        errs = {str(k): {"cba": ds.cba_rel_error.sel(variant=k).values} for k in ds.variant.values}
        rep.figure(_fig_reconstruction(regions, errs, sweep, sweep_betas, beta, ds.burden_true.values,
                                       ds.burden_rebuilt.sel(variant=known).values, stressor, synthetic),
                   "reconstruction",
                   f"Gravity + RAS reconstruction: regional CBA error, sensitivity to beta, and true vs rebuilt "
                   f"interregional burden{tag(synthetic)}.")
    rep.add(footer(NAME, (seconds or 0.0) + time.perf_counter() - t0))
    return rep.write()


# ------------------------------------------------------------------------------------------ run


def run(
    out: str | Path,
    *,
    mrio: MRIO | None = None,
    quick: bool = False,
    synthetic: bool | None = None,
    source: str | None = None,
    stressor: str = "CO2",
    hubs: Sequence[str] | None = None,
    positions: dict[str, Sequence[float]] | None = None,
    distances: xr.DataArray | np.ndarray | None = None,
    beta: float = 1.0,
    betas: Sequence[float] | None = None,
    top_k: int = 8,
) -> dict:
    """`compute` + `report` on `mrio` (default: the synthetic demo world; `synthetic` default: when the table's
    name says so). `quick`: no beta sweep and five arrows on the map. Other arguments go to
    [`compute`][experiments.outsourcing.compute] (`betas` default `DEFAULT_BETAS`).

    **Returns:** the [headline][experiments.outsourcing.headline] numbers, `result` (the dataset) and `report`.
    """
    t0 = time.perf_counter()
    mrio, synthetic, source = table_or_demo(mrio, synthetic, source)
    res = compute(mrio, stressor=stressor, hubs=hubs, positions=positions, distances=distances, beta=beta,
                  betas=() if quick else (betas or DEFAULT_BETAS), top_k=5 if quick else top_k,
                  synthetic=synthetic, source=source)
    return headline(res) | {"result": res, "report": report(res, out, seconds=time.perf_counter() - t0)}


def main(argv: Sequence[str] | None = None) -> dict:
    ap = make_parser(__doc__.splitlines()[0])
    ap.add_argument("--stressor", default="CO2", help="stressor to analyse (default CO2)")
    ap.add_argument("--hubs", default=None, help="comma-separated consumer hubs (default: Capital,Harbor on the demo)")
    ap.add_argument("--distances", type=Path, default=None, help="CSV distance matrix with region labels")
    ap.add_argument("--beta", type=float, default=1.0, help="distance exponent of the gravity model (default 1)")

    def extra(args) -> dict:
        kw = {"stressor": args.stressor, "beta": args.beta}
        if args.hubs:
            kw["hubs"] = tuple(h.strip() for h in args.hubs.split(",") if h.strip())
        if args.distances is not None:
            kw["distances"] = _DistancesFromCSV(args.distances)
        return kw

    return cli_main(NAME, _run_cli, ap, argv, extra)


class _DistancesFromCSV:
    """Deferred CSV distances: read once the table's region order is known."""

    def __init__(self, path: Path):
        self.path = path


def _run_cli(out, *, mrio, distances=None, **kw) -> dict:
    if isinstance(distances, _DistancesFromCSV):
        distances = read_distances_csv(distances.path, mrio.regions)
    return run(out, mrio=mrio, distances=distances, **kw)


if __name__ == "__main__":
    main()
