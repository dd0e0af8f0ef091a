r"""EXPORT study (Nature Communications 2025: export-driven PM2.5 in Chinese provinces) as an experiment.

1. Export-related emissions per province and foreign consumer, $EEE_{r,e} = S_r L Y^e$, split into the direct
   part (province r's own exports) and the indirect part (r's output used for other provinces' exports)
   with [`export_emissions`][diffmrio.supply_chain.export_emissions]; aggregated to atmospheric pollutant equivalents
   $APE = \sum_i E_i / R_i$ (eq. 13).
2. PM2.5 (population-weighted) and deaths due to exports through the chain
   (MRIO -> emissions -> emulator -> PM2.5 -> GEMM): zero-out $J(Y) - J(Y - Y^{exp})$ (the study's GEOS-Chem
   design) and path-integrated (Aumann-Shapley) attribution, by `"foreign"` (exports vs domestic demand)
   and per foreign consumer (each region's export column).
3. Production layers $S A^t y^{exp}$ ($t = 0..4$ + remainder) and the flows between adjacent layers aggregated
   by region ([`layer_flows`][diffmrio.supply_chain.layer_flows]); top supply-chain paths by structural path analysis.

`compute(mrio=..., chain=...) -> xr.Dataset` holds every number (with `units`), `report(ds, out)` writes
`out/report.md`, `out/figures/*.png` and `out/results/export_pollution.nc`; `run(out, ...)` does both.
Run: `python -m experiments.export_pollution --out DIR [--quick] [--cache DIR] [--mrio NC | --ceads XLSX
--emissions CSV]` (or `diffmrio experiment export_pollution ...`). On the default demo world everything is
**synthetic**; with a user table only the MRIO sections (1 and 3) run, since the chain needs an emulator and
health inputs for that table.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path

import jax.numpy as jnp
import numpy as np
import pandas as pd
import xarray as xr

import diffmrio
from diffmrio.demo import Report, subplots

from ._common import (
    demo_source,
    footer,
    load_demo,
    load_table,
    make_parser,
    parse,
    show_progress,
    tag,
    write_netcdf_atomic,
)

NAME = "export_pollution"
POLLUTANTS = ("SO2", "NOx", "NH3", "VOC", "PM2.5")
#: kg per pollutant equivalent (China's Environmental Protection Tax schedule: SO2, NOx 0.95 kg); primary PM2.5
#: is counted as "general dust" (4 kg) - a choice, stated in the report.
APE_KG = {"SO2": 0.95, "NOx": 0.95, "PM2.5": 4.0}
METHODS = ("zero_out", "path")
TARGETS = {"deaths": "deaths yr-1", "pwpm": "ug m-3"}


def export_groups(mrio, export_category: str = "export") -> diffmrio.chain.GroupIndex:
    """The export routes as a [`GroupIndex`][diffmrio.chain.GroupIndex] over the columns of `Y` (group ids, memory
    O(fd), never dense `[group, n, fd]` masks): one group per region's export column (a foreign consumer), labelled
    `"exports of <region>"`, and one, `"domestic"`, for every other final-demand column."""
    R, K = mrio.n_regions, mrio.n_categories
    if export_category not in mrio.categories:
        raise ValueError(f"no final-demand category {export_category!r} in {list(mrio.categories)}")
    k = mrio.categories.index(export_category)
    ids = np.full(R * K, R, dtype=np.int32)  # column e*K + c of Y: region e's category c
    ids[np.arange(R) * K + k] = np.arange(R)
    labels = tuple(f"exports of {r}" for r in mrio.regions) + ("domestic",)
    return diffmrio.chain.GroupIndex(jnp.asarray(ids), "col", labels)


# ------------------------------------------------------------------------------------------ compute


def _units_of(mrio, names: Sequence[str]) -> str:
    units = dict(zip(mrio.stressors, mrio.units))
    found = {units[p] for p in names}
    return found.pop() if len(found) == 1 else ", ".join(f"{p}: {units[p]}" for p in names)


def _export_emissions(mrio, pollutants: list[str]) -> xr.Dataset:
    """Section 1: export-related emissions, direct/indirect, pollutant equivalents."""
    ee = diffmrio.supply_chain.export_emissions(mrio, pollutants, export_category="export")
    unit = _units_of(mrio, pollutants)
    ape_sp = [p for p in pollutants if p in APE_KG]
    R_ape = diffmrio.scenarios.pollutant_equivalent_coefficients(ape_sp, APE_KG)
    mass_kg = 1e6  # the inventory's kt
    ape_total = np.asarray(diffmrio.scenarios.pollutant_equivalents(ee.total.sel(stressor=ape_sp).values, R_ape, mass_unit_kg=mass_kg))
    ape_direct = np.asarray(diffmrio.scenarios.pollutant_equivalents(ee.direct.sel(stressor=ape_sp).values, R_ape, mass_unit_kg=mass_kg))
    ds = xr.Dataset(
        {
            "eee": (ee.eee.dims, ee.eee.values, {"units": unit, "long_name": "emitted in region for exports of exporter's products bought by consumer"}),
            "direct": (ee.direct.dims, ee.direct.values, {"units": unit, "long_name": "emitted for the region's own exports"}),
            "indirect": (ee.indirect.dims, ee.indirect.values, {"units": unit, "long_name": "emitted for other regions' exports"}),
            "total": (ee.total.dims, ee.total.values, {"units": unit, "long_name": "export-related emissions S_r L Y^exp"}),
            "indirect_share": (("stressor",), ee.indirect_share.values, {"units": "1"}),
            "ape_total": (("region",), ape_total, {"units": "pollutant equivalents", "long_name": "sum_i E_i / R_i"}),
            "ape_direct": (("region",), ape_direct, {"units": "pollutant equivalents"}),
            "indirect_share_ape": ((), 1.0 - ape_direct.sum() / ape_total.sum(), {"units": "1"}),
        },
        coords={c: ee[c].values for c in ("stressor", "region", "exporter", "consumer")},
    )  # fmt: skip
    ds.attrs["ape_kg_per_equivalent"] = str({k: APE_KG[k] for k in ape_sp})
    return ds


def _through_chain(chain, n_nodes: int, n_intervals: int, targets: Sequence[str]) -> xr.Dataset:
    """Section 2: deaths and population-weighted PM2.5 due to exports, zero-out and path-integrated."""
    mrio = chain.mrio
    inp = chain.base_inputs()
    groupings = {"foreign": "foreign", "route": export_groups(mrio)}
    data, coords = {}, {"attribution": list(METHODS), "receptor": list(mrio.regions)}
    for target in targets:
        unit = TARGETS[target]
        for name, by in groupings.items():
            per = []
            for method in METHODS:
                q = dict(n_nodes=n_nodes, n_intervals=n_intervals) if method == "path" else {}
                per.append(diffmrio.chain.attribute(chain, inp, method=method, target=target, by=by, **q))
            coords[name] = [str(g) for g in per[0].group.values]
            data[f"{target}_by_{name}"] = (("attribution", name, "receptor"), np.stack([a.values for a in per]),
                                           {"units": unit})
    o = chain(inp)
    pop = np.asarray(chain.health.inputs.to_regions(chain.health.inputs.population))
    ds = xr.Dataset(
        data | {
            "deaths": (("receptor",), np.asarray(o.deaths.sum(axis=(0, 1))), {"units": "deaths yr-1"}),
            "pwpm": (("receptor",), np.asarray(o.pwpm), {"units": "ug m-3", "long_name": "population-weighted PM2.5"}),
            "population": (("receptor",), pop, {"units": "persons"}),
        },
        coords=coords,
    )  # fmt: skip
    pw_nat = float((ds.pwpm * ds.population).sum() / ds.population.sum())
    exp = ds.drop_vars("foreign").isel(foreign=list(coords["foreign"]).index("foreign"))
    if "deaths" in targets:
        ds["share_deaths_exports"] = (("attribution",), (exp.deaths_by_foreign.sum("receptor") / ds.deaths.sum()).values,
                                      {"units": "1"})
    if "pwpm" in targets:
        ds["share_pwpm_exports"] = (("attribution",), ((exp.pwpm_by_foreign * ds.population).sum("receptor")
                                                  / ds.population.sum() / pw_nat).values, {"units": "1"})
    ds.attrs.update(n_nodes=n_nodes, n_intervals=n_intervals)
    return ds


def _layers_and_paths(mrio, stressor: str, T: int, n_paths: int) -> xr.Dataset:
    """Section 3: production layers of export demand, flows between layers by region, top paths."""
    unit = _units_of(mrio, [stressor])
    pl = diffmrio.supply_chain.production_layers(mrio, T=T, stressor=stressor, categories="export").sel(stressor=stressor)
    lf = diffmrio.supply_chain.layer_flows(mrio, T=T - 1, stressor=stressor, categories="export", by="consumer")
    flows = lf.sel(stressor=stressor).sum("driver").rename(layer="flow_layer", from_region="seller", to_region="buyer")
    spa = diffmrio.supply_chain.structural_path_analysis(mrio, stressor, k=n_paths, categories="export")
    return xr.Dataset(
        {
            "layers": (("layer", "region", "sector"), pl.layers.transpose("layer", "region", "sector").values,
                       {"units": unit, "long_name": f"export-driven {stressor} S A^t y^exp per production layer"}),
            "remainder": (("region", "sector"), pl.remainder.values, {"units": unit, "long_name": f"layers beyond PL{T}"}),
            "layers_total": ((), float(pl.total), {"units": unit}),
            "flows": (flows.dims, flows.values, {"units": unit, "long_name": "m_k A_kj (A^t y)_j from seller (layer t+1) to buyer (layer t)"}),
            "path_label": (("path",), spa.label.values.astype(str), {"units": ""}),
            "path_value": (("path",), spa.value.values, {"units": unit}),
            "path_share": (("path",), spa.share.values, {"units": "1"}),
            "path_coverage": ((), float(spa.attrs["coverage"]), {"units": "1"}),
        },
        coords={"layer": pl.layer.values, "sector": pl.sector.values, "flow_layer": flows.flow_layer.values,
                "seller": flows.seller.values, "buyer": flows.buyer.values, "path": spa.path.values},
    )  # fmt: skip


def compute(
    mrio=None,
    *,
    chain=None,
    stressor: str = "PM2.5",
    T: int = 4,
    n_paths: int = 10,
    n_nodes: int = 8,
    n_intervals: int = 8,
    targets: Sequence[str] = tuple(TARGETS),
    synthetic: bool = False,
    source: str | None = None,
) -> xr.Dataset:
    """Every number of the EXPORT experiment, no figures.

    **Arguments:**

    - `mrio`: the table (needs an `export` final-demand category and the pollutants); default `chain.mrio`.
    - `chain`: a `diffmrio.chain.Chain` on that table (emulator and health inputs); without it the chain section
      (PM2.5 and deaths due to exports) is left out.
    - `stressor`: the pollutant of the layers and paths; `T`: last explicit production layer; `n_paths`: top
      structural paths; `n_nodes`, `n_intervals`: Gauss-Legendre quadrature of the path-integrated attribution;
      `targets`: what the chain section attributes, `"deaths"` and/or `"pwpm"` (the report needs both).
    - `synthetic`, `source`: recorded in the attributes for the report.

    **Returns:** an `xarray.Dataset`; every variable has `units`:

    - export-related emissions: `eee[stressor, region, exporter, consumer]`, `direct`, `indirect`,
      `total[stressor, region]`, `indirect_share[stressor]`, pollutant equivalents `ape_total[region]`,
      `ape_direct[region]`, `indirect_share_ape`;
    - with a chain: `deaths`, `pwpm`, `population[receptor]`; attributions
      `{deaths,pwpm}_by_foreign[attribution, foreign, receptor]` (exports vs domestic demand) and
      `{deaths,pwpm}_by_route[attribution, route, receptor]` (each region's exports, and domestic demand),
      `attribution` being `zero_out` or `path` (not named `method`: that is a keyword of `xarray`'s `sel`);
      `share_deaths_exports[attribution]`, `share_pwpm_exports[attribution]` (national,
      population-weighted);
    - `layers[layer, region, sector]`, `remainder[region, sector]`, `layers_total` of `stressor`;
      `flows[flow_layer, seller, buyer]`; `path_label`, `path_value`, `path_share[path]`, `path_coverage`.
    """
    if mrio is None:
        if chain is None:
            raise ValueError("give `mrio` (the table) or `chain` (a diffmrio.chain.Chain on it)")
        mrio = chain.mrio
    elif chain is not None and chain.mrio is not mrio:
        raise ValueError("`mrio` and `chain.mrio` differ; pass only `chain` to use its table")
    if stressor not in mrio.stressors:
        raise ValueError(f"stressor {stressor!r} is not in the table ({list(mrio.stressors)}); pass stressor=...")
    if T < 1:
        raise ValueError(f"T={T}: the last explicit production layer must be at least 1")
    pollutants = [p for p in POLLUTANTS if p in mrio.stressors]
    if not pollutants:
        raise ValueError(f"the table has none of the pollutants {POLLUTANTS} (stressors: {list(mrio.stressors)})")
    if chain is not None and (not targets or any(t not in TARGETS for t in targets)):
        raise ValueError(f"targets={list(targets)}: give some of {list(TARGETS)}")
    parts = [_export_emissions(mrio, pollutants), _layers_and_paths(mrio, stressor, T, n_paths)]
    if chain is not None:
        parts.append(_through_chain(chain, n_nodes, n_intervals, list(targets)))
    ds = xr.merge(parts, combine_attrs="drop_conflicts")
    ds.attrs.update(synthetic=int(bool(synthetic)), source=source or f"table `{mrio.name}`", stressor=stressor, T=T,
                    chain=int(chain is not None))
    return ds


# ------------------------------------------------------------------------------------------ figures


def _fig_export_emissions(ds, stressor, synthetic):
    regions = list(ds.region.values)
    direct, indirect = ds.direct.sel(stressor=stressor).values, ds.indirect.sel(stressor=stressor).values
    by_consumer = ds.eee.sel(stressor=stressor).sum("exporter").values  # (region, consumer)
    unit = ds.total.attrs["units"]
    fig, axes = subplots(1, 2, figsize=(12, 4.2), gridspec_kw={"wspace": 0.35})
    xs = np.arange(len(regions))
    ax = axes[0]
    ax.bar(xs, direct, 0.6, label="direct (own exports)", color="#4c72b0")
    ax.bar(xs, indirect, 0.6, bottom=direct, label="indirect (for other provinces' exports)", color="#dd8452")
    ax.set_xticks(xs, regions, rotation=30)
    ax.set_ylabel(f"export-related {stressor} ({unit})")
    ax.set_title("Export-related emissions by emitting province", fontsize=10)
    ax.set_ylim(0, 1.25 * float(np.max(direct + indirect)))
    ax.legend(frameon=False, fontsize=8, loc="upper left")
    ax = axes[1]
    im = ax.imshow(by_consumer, cmap="Reds")
    ax.set_xticks(xs, regions, rotation=30)
    ax.set_yticks(xs, regions)
    ax.set_xlabel("foreign consumer (exports of region)")
    ax.set_ylabel("emitting province")
    fig.colorbar(im, ax=ax, label=f"{stressor} ({unit})")
    ax.set_title("Export-related emissions: emitter x export route", fontsize=10)
    fig.suptitle(f"Export-related {stressor}{tag(synthetic)}", fontsize=11)
    return fig


def _fig_health(ds, synthetic):
    regions = list(ds.receptor.values)
    fig, axes = subplots(1, 2, figsize=(12, 4.2), gridspec_kw={"wspace": 0.3})
    xs = np.arange(len(regions))
    for ax, target in zip(axes, TARGETS):
        a = ds[f"{target}_by_foreign"].sel(foreign="foreign")
        ax.bar(xs - 0.2, a.sel(attribution="zero_out").values, 0.4, label="zero-out", color="#4c72b0")
        ax.bar(xs + 0.2, a.sel(attribution="path").values, 0.4, label="path-integrated", color="#55a868")
        ax.set_xticks(xs, regions, rotation=30)
        ax.set_ylabel(TARGETS[target])
        ax.legend(frameon=False, fontsize=8)
    axes[0].set_title("Deaths due to exports, by receptor region", fontsize=10)
    axes[1].set_title("Population-weighted PM2.5 due to exports", fontsize=10)
    fig.suptitle(f"Health burden of exports through the chain{tag(synthetic)}", fontsize=11)
    return fig


def _fig_layers(ds, stressor, synthetic):
    import matplotlib

    regions = list(ds.region.values)
    layers_by_region = ds.layers.sum("sector").values  # (layer, region)
    remainder = ds.remainder.sum("sector").values
    unit = ds.layers.attrs["units"]
    fig, axes = subplots(1, 2, figsize=(12, 4.2), gridspec_kw={"wspace": 0.35})
    T1 = layers_by_region.shape[0]
    ax = axes[0]
    bottom = np.zeros(T1 + 1)
    cols = matplotlib.colormaps["tab10"](np.arange(len(regions)))
    for k, r in enumerate(regions):
        v = np.append(layers_by_region[:, k], remainder[k])
        ax.bar(np.arange(T1 + 1), v, 0.7, bottom=bottom, color=cols[k], label=r)
        bottom += v
    ax.set_xticks(np.arange(T1 + 1), [f"PL{t}" for t in range(T1)] + [f">PL{T1 - 1}"])
    ax.set_ylabel(f"{stressor} ({unit})")
    ax.set_title("Export-driven emissions per production layer, by emitter", fontsize=10)
    ax.legend(frameon=False, fontsize=7, ncol=2)
    ax = axes[1]
    im = ax.imshow(ds.flows.sel(flow_layer=0).values, cmap="Purples")
    ax.set_xticks(np.arange(len(regions)), regions, rotation=30)
    ax.set_yticks(np.arange(len(regions)), regions)
    ax.set_xlabel("buying region (layer 0)")
    ax.set_ylabel("selling region (layer 1)")
    fig.colorbar(im, ax=ax, label=f"embodied {stressor} ({unit})")
    ax.set_title("Embodied flows PL1 -> PL0 (all exports)", fontsize=10)
    fig.suptitle(f"Production layers of export-related {stressor}{tag(synthetic)}", fontsize=11)
    return fig


# ------------------------------------------------------------------------------------------ report


def report(ds: xr.Dataset, out: str | Path, *, seconds: float | None = None) -> Path:
    """Write `out/report.md`, `out/figures/*.png` and `out/results/export_pollution.nc` from the dataset of
    [`compute`][experiments.export_pollution.compute]; **returns** the report's path. `seconds` (the compute
    time) goes into the footer."""
    t0 = time.perf_counter()
    out = Path(out)
    synthetic = bool(ds.attrs["synthetic"])
    stressor = ds.attrs["stressor"]
    T = int(ds.attrs["T"])
    regions = list(ds.region.values)
    pollutants = list(ds.stressor.values)
    (out / "results").mkdir(parents=True, exist_ok=True)
    write_netcdf_atomic(ds, out / "results" / "export_pollution.nc")
    rep = Report(out, "EXPORT study reproduction: export-driven air pollution and health" + tag(synthetic))
    rep.add(
        f"Data: {ds.attrs['source']}."
        + (" **All numbers and figures are synthetic**: the demo world illustrates the method and is not data "
           "about any real place. The demo's `export` final-demand category plays the role of foreign "
           "consumers (exports of each region)." if synthetic else "")
        + "\n\nThe EXPORT study (Nature Communications 2025) linked a global (GTAP) and a provincial (31 x 42) "
        "MRIO for 2017 with GEOS-Chem zero-out runs and found that exports cause **9.9% of China's PM2.5** and "
        "that **75.4% of export-related pollution is driven by indirect exports** (provinces supplying other "
        "provinces' exporters). This report repeats the analysis. All numbers are in "
        "`results/export_pollution.nc`."
    )

    # 1. export-related emissions
    unit = ds.total.attrs["units"]
    df = pd.DataFrame({f"{p} total": ds.total.sel(stressor=p).values for p in pollutants},
                      index=pd.Index(regions, name="province"))
    for p in pollutants:
        df[f"{p} indirect %"] = 100 * ds.indirect.sel(stressor=p).values / np.maximum(ds.total.sel(stressor=p).values, 1e-300)
    df["APE (1e6 eq.)"] = ds.ape_total.values / 1e6
    rep.add(
        "## 1. Export-related emissions\n\n"
        "`EEE_{r,e} = S_r L Y^e` for every foreign consumer e (here: the export column of each region), split "
        "into the **direct** part (province r's own exports: `S_r L_r. (Y^e o 1_r)`) and the **indirect** part "
        "(r's output that other provinces export). Pollutant equivalents `APE = sum_i E_i / R_i` with R = 0.95 "
        "kg for SO2 and NOx (China's Environmental Protection Tax schedule) and primary PM2.5 counted as general "
        "dust (4 kg; a choice, the schedule has no PM2.5 entry)."
    )
    rep.table(df, f"Export-related emissions by emitting province ({unit}; indirect share in %)")
    rep.add(
        f"- **Share of export-related emissions that is indirect: {100 * float(ds.indirect_share_ape):.1f}%** "
        "(pollutant equivalents; study: 75.4%). By pollutant: "
        + ", ".join(f"{p} {100 * float(ds.indirect_share.sel(stressor=p)):.1f}%" for p in pollutants) + ".\n"
        "- Direct + indirect equals the total `S_r L Y^e` by construction (checked in the tests)."
    )
    rep.figure(_fig_export_emissions(ds, stressor, synthetic), "export_emissions",
               f"Export-related {stressor}: direct vs indirect by province, and by foreign consumer{tag(synthetic)}.")

    # 2. through the chain
    if ds.attrs.get("chain") and all(f"{t}_by_foreign" in ds for t in TARGETS):
        f = ds.sel(foreign="foreign")
        dfa = pd.DataFrame({
            "deaths": ds.deaths.values, "due to exports (zero-out)": f.deaths_by_foreign.sel(attribution="zero_out").values,
            "due to exports (path)": f.deaths_by_foreign.sel(attribution="path").values,
            "PM2.5 pw (ug m-3)": ds.pwpm.values, "PM2.5 from exports (zero-out)": f.pwpm_by_foreign.sel(attribution="zero_out").values,
            "PM2.5 from exports (path)": f.pwpm_by_foreign.sel(attribution="path").values,
        }, index=pd.Index(list(ds.receptor.values), name="receptor"))  # fmt: skip
        routes = ds.deaths_by_route.sum("receptor")
        dfc = pd.DataFrame({"deaths (zero-out)": routes.sel(attribution="zero_out").values,
                            "deaths (path)": routes.sel(attribution="path").values},
                           index=pd.Index(list(ds.route.values), name="final demand"))
        d_zo = float(f.deaths_by_foreign.sel(attribution="zero_out").sum())
        zo_sum_routes = float(routes.sel(attribution="zero_out").values[: len(regions)].sum())
        sd, sp = ds.share_deaths_exports, ds.share_pwpm_exports
        rep.add(
            "## 2. PM2.5 and deaths due to exports (through the chain)\n\n"
            "Final demand -> output -> emissions -> emulator -> gridded PM2.5 -> GEMM deaths (five causes, adults "
            "25+). **Zero-out**: `J(Y) - J(Y without exports)`, the study's design (one sensitivity run with "
            "export-related emissions removed). **Path-integrated** (Aumann-Shapley): "
            "`int_0^1 dJ/dY(a Y) . Y_g da`; additive, its groups sum exactly to `J(Y) - J(0)` (`J(0)` is the "
            "background PM2.5 the emulator predicts without anthropogenic emissions), so it splits the "
            "nonlinear chemistry and concentration-response interactions between exports and domestic demand "
            f"instead of leaving them unassigned (quadrature: {ds.attrs['n_intervals']} x {ds.attrs['n_nodes']} "
            "Gauss-Legendre nodes)."
        )
        rep.table(dfa, "Deaths (yr-1) and population-weighted PM2.5 (ug m-3) due to exports, by receptor region")
        rep.table(dfc, "Deaths (yr-1) attributed to each region's exports (foreign consumers) and to domestic demand")
        rep.add(
            f"- **Share of population-weighted PM2.5 due to exports: {100 * float(sp.sel(attribution='zero_out')):.1f}% "
            f"(zero-out), {100 * float(sp.sel(attribution='path')):.1f}% (path-integrated)** (study: 9.9% of China's "
            f"PM2.5).\n- **Share of deaths due to exports: {100 * float(sd.sel(attribution='zero_out')):.1f}% (zero-out), "
            f"{100 * float(sd.sel(attribution='path')):.1f}% (path-integrated)** of {float(ds.deaths.sum()):,.0f} deaths "
            f"yr-1.\n- Zero-out is not additive: removing each region's exports separately gives "
            f"{zo_sum_routes:,.0f} deaths in total vs {d_zo:,.0f} for all exports at once; the "
            "path-integrated contributions of the export routes sum to the all-exports value exactly."
        )
        rep.figure(_fig_health(ds, synthetic), "health_exports",
                   "Deaths and population-weighted PM2.5 due to exports per receptor region, zero-out vs "
                   f"path-integrated{tag(synthetic)}.")
    elif ds.attrs.get("chain"):
        rep.add("## 2. PM2.5 and deaths due to exports\n\nNot reported: the dataset was computed with "
                f"`targets` other than {list(TARGETS)}; see `results/export_pollution.nc` for its numbers.")
    else:
        rep.add("## 2. PM2.5 and deaths due to exports\n\nSkipped: the chain (emulator and health inputs) exists "
                "only for the demo world; run on the demo or build a `diffmrio.chain.Chain` for this table.")

    # 3. layers, flows, paths
    layers_by_region = ds.layers.sum("sector").values
    layer_share = np.append(layers_by_region.sum(1), float(ds.remainder.sum())) / float(ds.layers_total)
    unit = ds.layers.attrs["units"]
    dfl = pd.DataFrame(np.column_stack([layers_by_region, layers_by_region.sum(1)]),
                       index=pd.Index([f"PL{t}" for t in range(T + 1)], name="layer"), columns=regions + ["all"])
    flows0 = ds.flows.sel(flow_layer=0).values
    rep.add(
        "## 3. Production layers, flows between layers and supply-chain paths\n\n"
        f"`S A^t y^exp` is the {stressor} emitted at production layer t (PL0: the exporting sector itself; PL1: "
        "its direct suppliers; ...), with the exact remainder `S A^(T+1) L y^exp`. The flow from layer t+1 to "
        "layer t is `m_k A_kj (A^t y)_j` with total intensities `m = S L`, aggregated by selling and buying "
        "region: which provinces' supply chains carry the emissions to the exporters."
    )
    rep.table(dfl, f"Export-related {stressor} ({unit}) per layer and emitting region")
    rep.add(
        "- Layer shares: " + ", ".join(f"PL{t} {100 * v:.1f}%" for t, v in enumerate(layer_share[:-1]))
        + f", beyond PL{T} {100 * layer_share[-1]:.1f}%.\n"
        f"- Flows PL1 -> PL0 between different regions carry {100 * (1 - np.trace(flows0) / flows0.sum()):.1f}% "
        "of the embodied emissions crossing that layer boundary."
    )
    dfs = pd.DataFrame({"path (final producer <- ... <- emitter)": ds.path_label.values,
                        f"{stressor} ({unit})": ds.path_value.values, "share %": 100 * ds.path_share.values},
                       index=pd.Index(np.arange(1, ds.sizes["path"] + 1), name="rank"))
    rep.table(dfs, f"Top {ds.sizes['path']} structural paths of export-related {stressor} (coverage "
                   f"{100 * float(ds.path_coverage):.1f}%)", floatfmt="{:,.3f}")
    rep.figure(_fig_layers(ds, stressor, synthetic), "layers",
               f"Export-driven {stressor} by production layer and the embodied flows between the first two "
               f"layers{tag(synthetic)}.")
    rep.add(footer(NAME, (seconds or 0.0) + time.perf_counter() - t0))
    return rep.write()


# ------------------------------------------------------------------------------------------ run


def run(
    out: str | Path,
    *,
    demo=None,
    mrio=None,
    quick: bool = False,
    cache_dir: str | Path | None = None,
    synthetic: bool | None = None,
    source: str | None = None,
    progress: bool = True,
    **kw,
) -> dict:
    """`compute` + `report`: on `mrio` (MRIO sections only) or, by default, on the demo chain (`demo`, or built /
    loaded from `cache_dir`, full or `quick`). `kw` go to [`compute`][experiments.export_pollution.compute].
    **Returns** `{"dataset": ds, "report": path}`."""
    t0 = time.perf_counter()
    chain = None
    if mrio is None:
        if demo is None:
            demo = load_demo(quick, cache_dir, progress)
        chain = demo.chain
        synthetic = True if synthetic is None else synthetic
        source = source or demo_source(demo, quick)
    ds = compute(mrio, chain=chain, synthetic=bool(synthetic), source=source, **kw)
    return {"dataset": ds, "report": report(ds, out, seconds=time.perf_counter() - t0)}


def main(argv: Sequence[str] | None = None) -> dict:
    ap = make_parser(__doc__.splitlines()[0])
    ap.add_argument("--cache", type=Path, default=None, help="demo-chain cache folder (default $DIFFMRIO_CACHE "
                    "or ~/.cache/diffmrio)")
    ap.add_argument("--stressor", default="PM2.5", help="pollutant for layers and paths (default PM2.5)")
    args = parse(ap, argv, NAME)
    t0 = time.perf_counter()
    kw = dict(quick=args.quick, cache_dir=args.cache, stressor=args.stressor, progress=show_progress(args))
    if args.mrio is not None or args.ceads is not None:
        try:
            table = load_table(mrio=args.mrio, ceads=args.ceads, emissions=args.emissions)
        except (ValueError, FileNotFoundError) as exc:
            ap.error(str(exc))
        kw.update(mrio=table.mrio, synthetic=table.synthetic, source=table.source)
    res = run(args.out, **kw)
    print(f"[{NAME}] report written in {time.perf_counter() - t0:.1f} s: {Path(res['report']).resolve()}")
    return res


if __name__ == "__main__":
    main()
