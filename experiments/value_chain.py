r"""VALUECHAIN study (2024 preprint: social income and employment vs PM2.5 damage along domestic value chains).

1. Value-chain decomposition (eqs. 3-7) of every region's value added ("social income"), employment and
   health damage into intra-regional production, production embodied in imported products, final exports
   and intermediate exports absorbed elsewhere ([`value_chain_decomposition`][diffmrio.supply_chain.value_chain_decomposition]).
   **Health damage per unit output** comes from the chain's first-order (adjoint-weighted) attribution per
   producing region-sector: `F_deaths[(r,i)] = sum_p S_p,(r,i) dJ/dS_p,(r,i)` = deaths caused anywhere by
   the emissions of (r,i) - the emulator and GEMM decide where the emissions' PM2.5 lands and whom it harms,
   rather than a regional split by emission shares. It is additive (the deaths rows sum to
   `grad J . E`), so the decomposition's identities hold for deaths as for value added.
2. Inequality: population-weighted Gini and coefficient of variation of per-capita income (value added
   produced in the region) vs per-capita damage borne (deaths occurring in the region, from the chain), and
   vs per-capita damage caused (the deaths row).
3. Bilateral local vs upstream impacts of the flows from s to r: `EX_sr` (impacts in s) and `FE_sr` (in regions
   upstream of s).

`chain_inputs(chain)` gives the table with its deaths row, the population and the deaths borne per region;
`compute(mrio, population, deaths_borne) -> xr.Dataset` holds every number (with `units`); `report(ds, out)`
writes `out/report.md`, `out/figures/*.png` and `out/results/value_chain.nc`; `run(out, ...)` does all three.
Run: `python -m experiments.value_chain --out DIR [--quick] [--cache DIR]` (or `diffmrio experiment value_chain
...`). On the demo world every number is **synthetic**.
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
from diffmrio.chain import deaths_satellite, with_deaths_row
from diffmrio.demo import Report, subplots

from ._common import (
    demo_source,
    footer,
    load_demo,
    make_parser,
    parse,
    show_progress,
    tag,
    write_netcdf_atomic,
)

NAME = "value_chain"
STRESSORS = ("value_added", "employment", "deaths")
PART_LABELS = {"intra_regional": "intra-regional", "returning_imports": "embodied in imported products",
               "final_exports": "final exports", "intermediate_exports": "intermediate exports"}
#: the quantities whose inequality is compared (`amount[quantity, region]` in the dataset)
QUANTITIES = ("income (value added)", "employment", "damage borne (deaths)", "damage caused (deaths)")


def chain_inputs(chain, inputs=None) -> tuple[MRIO, np.ndarray, np.ndarray]:
    """What [`compute`][experiments.value_chain.compute] needs from a chain: the table with the first-order
    deaths row ([`deaths_satellite`][diffmrio.chain.deaths_satellite]), the population per region and the
    deaths borne (occurring) per region, `chain(inputs).deaths` summed over causes and ages."""
    inp = chain.base_inputs() if inputs is None else inputs
    hi = chain.health.inputs
    if tuple(hi.regions) != tuple(chain.mrio.regions):
        raise ValueError(f"health regions {hi.regions} differ from the table's regions {chain.mrio.regions}")
    Fd, FYd = deaths_satellite(chain, inp)
    pop = np.asarray(hi.to_regions(hi.population), dtype=np.float64)
    borne = np.asarray(chain(inp).deaths.sum(axis=(0, 1)), dtype=np.float64)
    return with_deaths_row(chain.mrio, Fd, FYd), pop, borne


def compute(mrio: MRIO, population, deaths_borne, *, synthetic: bool = False, source: str | None = None) -> xr.Dataset:
    """Every number of the VALUECHAIN experiment, no figures.

    **Arguments:** `mrio` with stressor rows `value_added`, `employment` and `deaths` (see
    [`chain_inputs`][experiments.value_chain.chain_inputs]); `population[region]` (persons) and
    `deaths_borne[region]` (deaths yr-1 occurring in each region); `synthetic`, `source` for the report.

    **Returns:** an `xarray.Dataset`, every variable with `units`: the decomposition `parts[stressor, region,
    part]` and `total[stressor, region]`; bilateral `EX`, `FE[stressor, exporter, importer]` (summed over
    sectors) and `upstream_share[stressor, exporter]` = FE / (EX + FE) over importers; `population`,
    `deaths_borne[region]`; per quantity (income, employment, damage borne, damage caused) `amount[quantity,
    region]`, `gini[quantity]` and `cv[quantity]` (population-weighted); the first-order deaths
    `deaths_first_order_industry` and `_households`.
    """
    missing = [s for s in STRESSORS if s not in mrio.stressors]
    if missing:
        raise ValueError(f"the table has no stressor rows {missing}; build the deaths row with "
                         "experiments.value_chain.chain_inputs(chain) or diffmrio.chain.with_deaths_row")
    regions = list(mrio.regions)
    pop = np.asarray(population, dtype=np.float64)
    borne = np.asarray(deaths_borne, dtype=np.float64)
    for name, v in (("population", pop), ("deaths_borne", borne)):
        if v.shape != (len(regions),):
            raise ValueError(f"{name} has shape {v.shape}; give one value per region of the table ({len(regions)})")
    if (pop <= 0).any():
        raise ValueError(f"population must be positive in every region, got {pop}")
    units = dict(zip(mrio.stressors, mrio.units))
    vc = diffmrio.supply_chain.value_chain_decomposition(mrio, list(STRESSORS))
    amount = np.stack([vc.total.sel(stressor="value_added").values, vc.total.sel(stressor="employment").values,
                       borne, vc.total.sel(stressor="deaths").values])
    ex, fe = vc.EX.sum("sector"), vc.FE.sum("sector")
    up = fe.sum("importer") / (ex.sum("importer") + fe.sum("importer"))
    st_units = [units[s] for s in STRESSORS]
    per_stressor = ", ".join(f"{s}: {u}" for s, u in zip(STRESSORS, st_units))  # one unit per stressor row
    d = mrio.stressor_index("deaths")
    return xr.Dataset(
        {
            "parts": (vc.parts.dims, vc.parts.values, {"units": per_stressor, "long_name": "value-chain parts of each region's production-based total"}),
            "total": (vc.total.dims, vc.total.values, {"units": per_stressor}),
            "stressor_units": (("stressor",), np.array(st_units, dtype=object), {"units": ""}),
            "EX": (ex.dims, ex.values, {"units": per_stressor, "long_name": "impacts in exporter s of the flows s -> r"}),
            "FE": (fe.dims, fe.values, {"units": per_stressor, "long_name": "impacts upstream of s of the flows s -> r"}),
            "upstream_share": (up.dims, up.values, {"units": "1"}),
            "population": (("region",), pop, {"units": "persons"}),
            "deaths_borne": (("region",), borne, {"units": "deaths yr-1"}),
            "amount": (("quantity", "region"), amount, {"units": f"{units['value_added']}, {units['employment']}, deaths yr-1, deaths yr-1"}),
            "gini": (("quantity",), [float(diffmrio.scenarios.gini(a, pop)) for a in amount], {"units": "1"}),
            "cv": (("quantity",), [float(diffmrio.scenarios.coefficient_of_variation(a, pop)) for a in amount], {"units": "1"}),
            "deaths_first_order_industry": ((), float(np.asarray(mrio.F)[d].sum()), {"units": "deaths yr-1"}),
            "deaths_first_order_households": ((), float(np.asarray(mrio.F_Y)[d].sum()), {"units": "deaths yr-1"}),
        },
        coords={"stressor": list(STRESSORS), "region": regions, "part": vc.part.values, "exporter": regions,
                "importer": regions, "quantity": list(QUANTITIES)},
        attrs={"synthetic": int(bool(synthetic)), "source": source or f"table `{mrio.name}`",
               "deaths_row": "first-order attribution per producing region-sector: sum_p S dJ/dS"},
    )  # fmt: skip


# ------------------------------------------------------------------------------------------ figures


def _fig_parts(regions, parts, units, synthetic):
    fig, axes = subplots(1, 3, figsize=(15, 4.2), gridspec_kw={"wspace": 0.3})
    xs = np.arange(len(regions))
    cols = ("#4c72b0", "#dd8452", "#55a868", "#c44e52")
    for ax, st in zip(axes, STRESSORS):
        v = parts.sel(stressor=st).values  # (region, part)
        share = 100 * v / v.sum(1, keepdims=True)
        bottom = np.zeros(len(regions))
        for k, p in enumerate(parts.part.values):
            ax.bar(xs, share[:, k], 0.65, bottom=bottom, color=cols[k], label=PART_LABELS.get(str(p), str(p)))
            bottom += share[:, k]
        ax.set_xticks(xs, regions, rotation=30)
        ax.set_ylabel("% of the region's production-based total")
        ax.set_title(f"{st} ({units[st]})", fontsize=10)
    h, lab = axes[0].get_legend_handles_labels()
    fig.legend(h, lab, loc="lower center", ncol=4, frameon=False, fontsize=8, bbox_to_anchor=(0.5, -0.08))
    fig.suptitle(f"Value-chain decomposition of income, jobs and health damage{tag(synthetic)}", fontsize=11)
    return fig


def _fig_lorenz(curves, ginis, synthetic):
    fig, ax = subplots(figsize=(5.8, 5.2))
    ax.plot([0, 1], [0, 1], "k--", lw=0.8)
    for name, (P, Q) in curves.items():
        ax.plot(P, Q, "o-", label=f"{name} (Gini {ginis[name]:.3f})")
    ax.set_xlabel("cumulative population share")
    ax.set_ylabel("cumulative share")
    ax.legend(frameon=False, fontsize=8)
    ax.set_title(f"Lorenz curves across regions{tag(synthetic)}", fontsize=10)
    return fig


def _fig_bilateral(regions, ex, fe, st, unit, synthetic):
    fig, axes = subplots(1, 2, figsize=(12, 4.6), gridspec_kw={"wspace": 0.35})
    vmax = max(ex.max(), fe.max())
    for ax, m, lab in ((axes[0], ex, "EX: local (in exporter s)"), (axes[1], fe, "FE: upstream of s")):
        im = ax.imshow(m, cmap="Oranges", vmin=0, vmax=vmax)
        ax.set_xticks(np.arange(len(regions)), regions, rotation=30)
        ax.set_yticks(np.arange(len(regions)), regions)
        ax.set_xlabel("importer r")
        ax.set_ylabel("exporter s")
        ax.set_title(lab, fontsize=10)
    fig.colorbar(im, ax=axes, label=f"{st} ({unit})", shrink=0.85)
    fig.suptitle(f"Bilateral {st} of the flows s -> r: local vs upstream{tag(synthetic)}", fontsize=11)
    return fig


# ------------------------------------------------------------------------------------------ report


def report(ds: xr.Dataset, out: str | Path, *, seconds: float | None = None) -> Path:
    """Write `out/report.md`, `out/figures/*.png` and `out/results/value_chain.nc` from the dataset of
    [`compute`][experiments.value_chain.compute]; **returns** the report's path."""
    t0 = time.perf_counter()
    out = Path(out)
    synthetic = bool(ds.attrs["synthetic"])
    regions = list(ds.region.values)
    units = dict(zip(ds.stressor.values, ds.stressor_units.values))
    pop = ds.population.values
    (out / "results").mkdir(parents=True, exist_ok=True)
    write_netcdf_atomic(ds.assign(stressor_units=ds.stressor_units.astype(str)), out / "results" / "value_chain.nc")
    ginis = dict(zip(QUANTITIES, ds.gini.values.tolist()))
    cvs = dict(zip(QUANTITIES, ds.cv.values.tolist()))
    qty = {q: ds.amount.sel(quantity=q).values for q in QUANTITIES}

    rep = Report(out, "VALUECHAIN study reproduction: income, jobs and health damage along value chains" + tag(synthetic))
    rep.add(
        f"Data: {ds.attrs['source']}."
        + (" **All numbers and figures are synthetic**: the demo world illustrates the method and is not data "
           "about any real place." if synthetic else "")
        + "\n\nThe VALUECHAIN study (2024 preprint) decomposed provinces' social income (value added), employment and "
        "PM2.5 health damage (pf-ERSM emulator of CMAQ) along China's domestic value chains and compared their "
        "inequality (Gini, CV): income gains concentrate in developed provinces while the damage is spread to "
        "the suppliers. This report repeats the analysis. All numbers are in `results/value_chain.nc`."
    )
    rep.add(
        "## 1. Value-chain decomposition\n\n"
        "`f_s = F_s L_ss y_ss + F_s L_ss sum_{r!=s} A_sr sum_t B_rt y_ts + F_s sum_{r!=s} B_ss y_sr + "
        "F_s sum_{t!=s} B_st sum_{r!=s} y_tr`: intra-regional; embodied in imported products (returning); final "
        "exports; intermediate exports absorbed elsewhere. **Health damage per unit output** (choice): the "
        "chain's first-order attribution per producing region-sector, `F_deaths = sum_p S o dJ/dS` - deaths "
        "caused anywhere by that region-sector's emissions, with the emulator deciding where its PM2.5 goes. "
        "(The simpler alternative, splitting each region's deaths over its sectors by their share of "
        "PM2.5-weighted emissions, would keep deaths in the emitting region and ignore transport.) "
        f"First-order deaths {float(ds.deaths_first_order_industry):,.0f} from industry + "
        f"{float(ds.deaths_first_order_households):,.0f} from households vs {float(ds.deaths_borne.sum()):,.0f} "
        "deaths in the chain (nonlinear)."
    )
    for st in STRESSORS:
        v = ds.parts.sel(stressor=st).to_pandas()
        v.columns = [PART_LABELS[c] for c in v.columns]
        v["total"] = ds.total.sel(stressor=st).values
        v.index.name = "region"
        rep.table(v, f"{st} ({units[st]}) by value-chain part")
    rep.figure(_fig_parts(regions, ds.parts, units, synthetic), "parts",
               f"Shares of each region's income, jobs and caused deaths by value-chain part{tag(synthetic)}.")

    rep.add(
        "## 2. Inequality of income vs damage\n\n"
        "Population-weighted Gini (`sum P_i Y_i + 2 sum P_i (1 - T_i) - 1`, regions sorted by per-capita value) "
        "and coefficient of variation of per-capita values across regions. *Damage borne* = deaths occurring "
        "in the region (chain output); *damage caused* = deaths caused by the region's production (deaths row)."
    )
    # display units (Gini and CV are scale-free): CNY per person, jobs per 1,000 people, deaths per 100,000
    shown = {"income (value added)": (1e9, "CNY/person"), "employment": (1e6, "jobs/1,000 people"),
             "damage borne (deaths)": (1e5, "per 100,000"), "damage caused (deaths)": (1e5, "per 100,000")}
    dfi = pd.DataFrame({"unit": [shown[k][1] for k in qty],
                        "per capita (" + ", ".join(regions) + ")": [", ".join(f"{x * shown[k][0]:,.0f}" for x in v / pop)
                                                                      for k, v in qty.items()],
                        "Gini": list(ginis.values()), "CV": list(cvs.values())}, index=pd.Index(list(qty), name="quantity"))
    rep.table(dfi, "Inequality across regions", floatfmt="{:.3f}")
    gi, gd = ginis["income (value added)"], ginis["damage borne (deaths)"]
    rep.add(
        f"- **Gini of per-capita income {gi:.3f} vs Gini of per-capita damage borne {gd:.3f}** (damage caused "
        f"{ginis['damage caused (deaths)']:.3f}); CV {cvs['income (value added)']:.3f} vs "
        f"{cvs['damage borne (deaths)']:.3f}. Income is {'more' if gi > gd else 'less'} unequally distributed "
        "across regions than the health damage borne."
    )
    curves = {k: diffmrio.scenarios.lorenz_curve(v, pop) for k, v in qty.items() if k != "employment"}
    rep.figure(_fig_lorenz(curves, ginis, synthetic), "lorenz", f"Lorenz curves of income and damage{tag(synthetic)}.")

    rep.add(
        "## 3. Local vs upstream impacts of bilateral flows\n\n"
        "`EX_sr = (F_s B_ss)^T o Y_sr + (F_s L_ss)^T o (A_sr sum_t sum_{u!=s} B_rt Y_tu)` (in the exporter s) and "
        "`FE_sr = sum_{t!=s} (F_t B_ts)^T o Y_sr + sum_{t!=s} (F_t B_ts)^T o (A_sr L_rr Y_rr)` (upstream of s), "
        "summed over sectors. *Upstream share*: FE / (EX + FE) of everything s ships to other regions."
    )
    dfb = pd.DataFrame({f"{st} upstream share %": 100 * ds.upstream_share.sel(stressor=st).values for st in STRESSORS},
                       index=pd.Index(regions, name="exporter"))
    rep.table(dfb, "Share of the impacts of each exporter's flows that occurs upstream of it")
    rep.figure(_fig_bilateral(regions, ds.EX.sel(stressor="deaths").values, ds.FE.sel(stressor="deaths").values,
                              "deaths", units["deaths"], synthetic), "bilateral_deaths",
               f"Deaths embodied in the flows from s to r: local (EX) vs upstream (FE){tag(synthetic)}.")
    rep.add(footer(NAME, (seconds or 0.0) + time.perf_counter() - t0))
    return rep.write()


# ------------------------------------------------------------------------------------------ run


def run(
    out: str | Path,
    *,
    demo=None,
    quick: bool = False,
    cache_dir: str | Path | None = None,
    progress: bool = True,
) -> dict:
    """`chain_inputs` + `compute` + `report` on the demo chain (`demo`, or built / loaded from `cache_dir`, full
    or `quick`). **Returns** `{"dataset": ds, "report": path}`."""
    t0 = time.perf_counter()
    if demo is None:
        demo = load_demo(quick, cache_dir, progress)
    mrio, pop, borne = chain_inputs(demo.chain)
    ds = compute(mrio, pop, borne, synthetic=True, source=demo_source(demo, quick))
    return {"dataset": ds, "report": report(ds, out, seconds=time.perf_counter() - t0)}


def main(argv: Sequence[str] | None = None) -> dict:
    ap = make_parser(__doc__.splitlines()[0])
    ap.add_argument("--cache", type=Path, default=None, help="demo-chain cache folder")
    args = parse(ap, argv, NAME)
    if args.mrio is not None or args.ceads is not None:
        ap.error("the health-damage rows need the whole chain (emulator and health inputs), which exists only for "
                 "the demo world; for a user table use diffmrio.supply_chain.value_chain_decomposition(mrio, ['value_added', "
                 "'employment']) directly")
    t0 = time.perf_counter()
    res = run(args.out, quick=args.quick, cache_dir=args.cache, progress=show_progress(args))
    print(f"[{NAME}] report written in {time.perf_counter() - t0:.1f} s: {Path(res['report']).resolve()}")
    return res


if __name__ == "__main__":
    main()
