r"""COBENEFIT study (2025 preprint: CO2 and PM2.5 deaths along interprovincial supply chains) as an experiment.

1. CO2 and deaths in the consumer view (burden `E[r, s]`: emitted in r for final demand of s) and the
   final-producer view (`E^fp[r, t]`: emitted in r for the final products sold by t). Deaths enter the MRIO
   as a satellite row from the chain's first-order (adjoint-weighted) attribution: with $J$ the deaths,
   `F_deaths[(r,i)]` $= \sum_p S_{p,(r,i)}\,\partial J/\partial S_{p,(r,i)} = x_{(r,i)}\,\partial J/\partial x_{(r,i)}$
   (deaths caused by the emissions of region-sector (r,i), additive, the study's CMAQ-adjoint method) and
   `F_Y_deaths` the same for households' own emissions. The region totals agree with
   `attribute(chain, by="consumer" | "final_producer", method="first_order")`.
2. Trade disparity indices per region, `TCI = (EEI - EEE)/(EEI + EEE)` from the CO2 burden matrix and `THI`
   the same from the deaths matrix, with the four zones of the TCI-THI plane.
3. Intensity convergence (eqs. 3-5) of power, metals and nonmetal at 100/75/50%: a supplier r serving buyer s
   adopts `w' = max(w_s, q)` when `w_s < w_r`. The new intensity is pair-specific; in the chain it becomes the
   output-weighted mean ratio of each supplier-sector,
   $\rho_{l,(r,m)} = \sum_s (w'_{l,r,s,m}/w_{r,m})\, X^{fp}_{(r,m),s} / x_{(r,m)}$ with $X^{fp}_{\cdot,s} = L y^{fp}_s$,
   applied to **every** emission row (SO2, NOx, NH3, VOC, PM2.5, BC, OC and CO2) of that region-sector: the
   technology change scales all combustion emissions alike. CO2 avoided is then exactly the study's
   `sum dE^{r,s}`; deaths avoided are evaluated through the chain (nonlinear chemistry and CRF), with 95%
   intervals from Monte Carlo draws paired across scenarios (the same draw of inventories, CRF and baseline
   mortality for the base case and every scenario).

`compute(chain) -> xr.Dataset` holds every number (labelled, every variable with `units`), `report(ds, out)` writes
the report, figures and results; `run(out, ...)` does both on the demo chain.
Run: `python -m experiments.cobenefits --out DIR [--quick] [--draws N] [--cache DIR]`. On the demo world every
number is **synthetic**. Writes `DIR/report.md`, `DIR/figures/*.png`, `DIR/results/*.nc` atomically.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path

import equinox as eqx
import jax
import jax.numpy as jnp
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
    seed_or,
    show_progress,
    tag,
    write_netcdf_atomic,
)

NAME = "cobenefits"
SECTORS = ("power", "metals", "nonmetal")
LEVELS = (1.0, 0.75, 0.5)
EMISSION_ROWS = ("SO2", "NOx", "NH3", "VOC", "PM2.5", "BC", "OC", "CO2")
ZONES = {(1, 1): "outsources CO2 and deaths", (1, -1): "outsources CO2, receives deaths",
         (-1, 1): "receives CO2, outsources deaths", (-1, -1): "receives CO2 and deaths"}
VIEWS = ("where emitted", "final producer", "consumer")


# ------------------------------------------------------------------------------------------ figures


def _fig_views(regions, co2_c, co2_fp, co2_p, d_c, d_fp, d_p, synthetic):
    fig, axes = subplots(1, 2, figsize=(12, 4.2), gridspec_kw={"wspace": 0.3})
    xs = np.arange(len(regions))
    for ax, vals, lab in ((axes[0], (co2_p, co2_fp, co2_c), "CO2 (Mt)"), (axes[1], (d_p, d_fp, d_c), "deaths yr-1")):
        for k, (v, name) in enumerate(zip(vals, ("where emitted", "final producer", "consumer"))):
            ax.bar(xs + (k - 1) * 0.27, v, 0.27, label=name)
        ax.set_xticks(xs, regions, rotation=30)
        ax.set_ylabel(lab)
        ax.legend(frameon=False, fontsize=8)
    axes[0].set_title("CO2 by region in three views", fontsize=10)
    axes[1].set_title("PM2.5 deaths (first-order) by region in three views", fontsize=10)
    fig.suptitle(f"CO2 and deaths along supply chains{tag(synthetic)}", fontsize=11)
    return fig


def _fig_zones(regions, tci, thi, synthetic):
    fig, ax = subplots(figsize=(6, 5.4))
    ax.axhline(0, color="k", lw=0.7)
    ax.axvline(0, color="k", lw=0.7)
    ax.scatter(tci, thi, s=60, color="#c44e52", zorder=3)
    for r, a, b in zip(regions, tci, thi):
        ax.annotate(r, (a, b), textcoords="offset points", xytext=(5, 4), fontsize=9)
    for (sx, sy), lab in ZONES.items():
        ax.text(0.55 * sx, 0.93 * sy, lab, ha="center", va="center", fontsize=7.5, color="#555")
    ax.set_xlim(-1.05, 1.05)
    ax.set_ylim(-1.05, 1.05)
    ax.set_xlabel("TCI (CO2): (EEI - EEE)/(EEI + EEE)")
    ax.set_ylabel("THI (deaths): (MEI - MEE)/(MEI + MEE)")
    ax.set_title(f"Trade disparity zones{tag(synthetic)}", fontsize=10)
    return fig


def _fig_convergence(levels, co2_rel, d_lin, d_mean, d_lo, d_hi, synthetic):
    fig, ax = subplots(figsize=(7, 4.2))
    xs = np.arange(len(levels))
    ax.bar(xs - 0.27, 100 * co2_rel, 0.27, label="CO2 avoided", color="#4c72b0")
    ax.bar(xs, 100 * d_lin, 0.27, label="deaths avoided (first-order, study method)", color="#dd8452")
    ax.bar(xs + 0.27, 100 * d_mean, 0.27, yerr=[100 * (d_mean - d_lo), 100 * (d_hi - d_mean)], capsize=4,
           label="deaths avoided (through the chain, 95% MC interval)", color="#55a868")
    ax.set_xticks(xs, [f"{100 * lv:.0f}% convergence" for lv in levels])
    ax.set_ylabel("% of trade-related CO2 / deaths")
    ax.legend(frameon=False, fontsize=8)
    ax.set_title(f"Co-benefits of intensity convergence (power, metals, nonmetal){tag(synthetic)}", fontsize=10)
    return fig


# ------------------------------------------------------------------------------------------ compute


@eqx.filter_jit
def _deaths(chain, inp):
    """Total deaths of the chain at `inp` (jitted: the chain op by op is slow)."""
    return chain.target(inp, "deaths")


def _accounts(chain, inp) -> tuple[xr.Dataset, MRIO]:
    """Sections 1 and 2: deaths as a satellite row, the three views, disparity indices."""
    mrio0 = chain.mrio
    regions = list(mrio0.regions)
    R, N = mrio0.n_regions, mrio0.n_sectors
    Fd, FYd = deaths_satellite(chain, inp)
    mrio = with_deaths_row(mrio0, Fd, FYd)
    acc = diffmrio.accounts(mrio).sel(stressor=["CO2", "deaths"])
    att_c = diffmrio.chain.attribute(chain, inp, by="consumer", method="first_order")
    att_fp = diffmrio.chain.attribute(chain, inp, by="final_producer", method="first_order")
    # households' own emissions follow their purchases to the producing region (as in attribute's masks)
    Yn = np.asarray(mrio.Y)
    h = FYd / np.where(Yn.sum(0) != 0, Yn.sum(0), 1.0)
    fp = acc.final_producer.sum("region").values  # (stressor, producer)
    fp[1] += (Yn @ h).reshape(R, N).sum(1)
    views = np.stack([acc.D_pba_reg.values, fp, acc.D_cba_reg.values], axis=1)  # (stressor, view, region)
    burden = acc.burden.values
    tci, thi = (np.asarray(diffmrio.scenarios.disparity_index_from_matrix(burden[k])) for k in (0, 1))
    zones = [ZONES[(1 if a >= 0 else -1, 1 if b >= 0 else -1)] for a, b in zip(tci, thi)]
    units = {"CO2": mrio.units[mrio.stressor_index("CO2")], "deaths": "deaths yr-1"}
    ds = xr.Dataset({
        "burden": acc.burden, "final_producer": acc.final_producer, "D_pba_reg": acc.D_pba_reg,
        "D_cba_reg": acc.D_cba_reg,
        "co2_views": (("view", "region"), views[0], {"units": units["CO2"]}),
        "deaths_views": (("view", "region"), views[1], {"units": "deaths yr-1", "long_name": "first-order deaths"}),
        "deaths_by_consumer_first_order": att_c.rename(group="consumer").drop_attrs().assign_attrs(units="deaths yr-1"),
        "deaths_by_final_producer_first_order": att_fp.rename(group="producer_group").drop_attrs()
            .assign_attrs(units="deaths yr-1"),
        "deaths_per_output": ("n", Fd / np.maximum(np.asarray(chain.output(inp)), 1e-300),
                              {"units": "deaths yr-1 per unit output"}),
        "deaths_row": ("n", Fd, {"units": "deaths yr-1", "long_name": "first-order: sum_p S dJ/dS"}),
        "deaths_households": ("fd", FYd, {"units": "deaths yr-1"}),
        "total_deaths": ((), float(_deaths(chain, inp)), {"units": "deaths yr-1"}),
        "tci": (("region",), tci, {"units": "1", "long_name": "(EEI - EEE)/(EEI + EEE) of CO2"}),
        "thi": (("region",), thi, {"units": "1", "long_name": "(MEI - MEE)/(MEI + MEE) of deaths"}),
        "zone": (("region",), np.array(zones, dtype=str), {"units": ""}),
    }, coords={"view": list(VIEWS), "region": regions},
        attrs={"deaths_row": "first-order: sum_p S dJ/dS per region-sector"})  # fmt: skip
    for v in ("burden", "final_producer", "D_pba_reg", "D_cba_reg"):
        ds[v].attrs["units"] = ", ".join(f"{k}: {u}" for k, u in units.items())
    return ds, mrio


def _convergence(chain, inp, mrio, Fd, sectors, levels, n_draws, seed, chunk_size, progress) -> xr.Dataset:
    """Section 3: intensity-convergence scenarios, CO2 exactly, deaths through the chain with paired draws."""
    mrio0 = chain.mrio
    regions = list(mrio0.regions)
    R, N = mrio0.n_regions, mrio0.n_sectors
    lv = np.asarray(levels, dtype=np.float64)
    conv = diffmrio.scenarios.intensity_convergence(mrio, "CO2", sectors=sectors, levels=lv)
    X = diffmrio.scenarios.final_producer_output(mrio)
    dimp = (Fd / np.maximum(X.sum(1), 1e-300))[:, None] * X  # (n, s): first-order deaths per supplier-sector, buyer
    W = xr.DataArray(np.asarray(mrio.F[mrio.stressor_index("CO2")]).reshape(R, N) / np.maximum(X.sum(1), 1e-300).reshape(R, N),
                     dims=("region", "sector"), coords={"region": regions, "sector": list(mrio.sectors)})
    conv_d = diffmrio.scenarios.intensity_convergence(mrio, "CO2", sectors=sectors, levels=lv, intensity=W,
                                                      impact=dimp.reshape(R, N, R))
    rho = diffmrio.scenarios.convergence_ratios(mrio, conv).values.reshape(lv.size, R * N)  # (level, n)
    rows = np.array([s in EMISSION_ROWS for s in mrio0.stressors])
    S0 = np.asarray(inp.S)
    S_scen = np.where(rows[None, :, None], S0[None] * rho[:, None, :], S0[None])  # (level, p, n)
    x0 = np.asarray(chain.output(inp))
    co2_row = mrio0.stressor_index("CO2")
    co2_avoided = ((S0[co2_row] - S_scen[:, co2_row]) * x0).sum(1)

    mc_chain = chain.with_envelope_policy("ignore")
    spec = diffmrio.chain.UncertaintySpec.default(mc_chain)
    S_scen_j = jnp.asarray(S_scen)
    Xj, offdiag = jnp.asarray(X), jnp.asarray(1.0 - np.eye(R))
    Gr = jnp.asarray(np.repeat(np.eye(R), N, axis=0))  # (n, R)

    def deaths(d_inp, S):
        return mc_chain(eqx.tree_at(lambda i: i.S, d_inp, S)).deaths.sum()

    def draw(k):
        d_inp = diffmrio.chain.sample_inputs(mc_chain, spec, inp, k)
        base = mc_chain(d_inp).deaths.sum()
        scen = jax.vmap(lambda S: deaths(d_inp, S))(S_scen_j)
        Fdd = (d_inp.S * jax.grad(lambda S: deaths(d_inp, S))(d_inp.S)).sum(0)
        per = (Fdd / jnp.maximum(Xj.sum(1), 1e-300))[:, None] * Xj  # (n, s)
        return {"base": base, "avoided": base - scen, "trade_deaths": jnp.einsum("ns,nr,rs->", per, Gr, offdiag)}

    t_mc = time.perf_counter()
    draws = diffmrio.chain.run_draws(draw, n_draws, key=jax.random.key(seed), chunk_size=chunk_size,
                                     progress=progress, name="co-benefit draws")
    t_mc = time.perf_counter() - t_mc
    central_avoided = float(_deaths(chain, inp)) - np.array(
        [float(_deaths(chain, eqx.tree_at(lambda i: i.S, inp, jnp.asarray(S)))) for S in S_scen])
    rel = draws["avoided"] / draws["trade_deaths"][:, None]  # (draw, level)
    d, co2u = "deaths yr-1", mrio.units[mrio.stressor_index("CO2")]
    return xr.Dataset(
        {
            "co2_avoided": ("level", co2_avoided, {"units": co2u}),
            "co2_relative": ("level", co2_avoided / float(conv.trade_total),
                             {"units": "1", "long_name": "of trade-related CO2"}),
            "co2_reduction": conv.reduction.assign_attrs(units=co2u),
            "intensity_new": conv.intensity_new.assign_attrs(units=f"{co2u} per unit output"),
            "deaths_avoided_first_order": ("level", conv_d.reduction.sum(("supplier", "buyer", "sector")).values,
                                           {"units": d}),
            "deaths_relative_first_order": ("level", conv_d.relative.values, {"units": "1"}),
            "deaths_avoided_central": ("level", central_avoided, {"units": d}),
            "deaths_relative_mean": ("level", rel.mean(0), {"units": "1", "long_name": "MC mean of avoided / "
                                                            "first-order trade-related deaths, per draw"}),
            "deaths_relative_lo": ("level", np.percentile(rel, 2.5, axis=0), {"units": "1"}),
            "deaths_relative_hi": ("level", np.percentile(rel, 97.5, axis=0), {"units": "1"}),
            "deaths_avoided_lo": ("level", np.percentile(draws["avoided"], 2.5, axis=0), {"units": d}),
            "deaths_avoided_hi": ("level", np.percentile(draws["avoided"], 97.5, axis=0), {"units": d}),
            "intensity_ratio": (("level", "region", "sector"), rho.reshape(-1, R, N), {"units": "1"}),
            "draw_deaths_avoided": (("draw", "level"), draws["avoided"], {"units": d}),
            "draw_trade_deaths": (("draw",), draws["trade_deaths"], {"units": d}),
            "draw_base_deaths": (("draw",), draws["base"], {"units": d}),
        },
        coords={"level": lv, "draw": np.arange(n_draws), "region": regions, "sector": list(mrio.sectors)},
        attrs={"co2_trade_total": float(conv.trade_total), "deaths_trade_first_order": float(conv_d.trade_total),
               "sectors": ",".join(sectors), "n_draws": n_draws, "seed": seed, "mc_seconds": t_mc,
               "scaling": "rho[level, region, sector] multiplies every emission row (air pollutants and CO2)"},
    )  # fmt: skip


def compute(
    chain,
    *,
    n_draws: int = 10_000,
    seed: int = 0,
    sectors: Sequence[str] = SECTORS,
    levels: Sequence[float] = LEVELS,
    chunk_size: int | str = "auto",
    progress: bool = True,
    synthetic: bool = True,
    source: str | None = None,
) -> xr.Dataset:
    """Every number of the COBENEFIT experiment, no figures.

    **Arguments:** `chain`: a `diffmrio.chain.Chain` whose table has a `CO2` row; `n_draws`: Monte Carlo draws
    (>= 2); `seed`; `sectors`, `levels`: the convergence scenarios; `chunk_size`: draws per vmapped chunk;
    `synthetic`, `source`: recorded in the attributes for the report.

    **Returns:** one dataset, every variable with `units`: sections 1-2 (the accounts of the MRIO with the deaths
    row: `burden`, `final_producer`, `D_pba_reg`, `D_cba_reg` over `stressor` CO2 and deaths; the three `view`s
    `co2_views`, `deaths_views`; the first-order attribution by consumer and final producer; the deaths row
    `deaths_row`, `deaths_households`, `total_deaths`; `tci`, `thi`, `zone` per region) and section 3 (the
    convergence scenarios per `level`: CO2 and deaths avoided, `intensity_ratio[level, region, sector]`, the Monte
    Carlo summaries and every `draw`).
    """
    n_draws = int(n_draws)
    if n_draws < 2:
        raise ValueError(f"n_draws must be >= 2 for an interval, got {n_draws}")
    if "CO2" not in chain.mrio.stressors:
        raise ValueError(f"the chain's table has no CO2 row (stressors: {list(chain.mrio.stressors)})")
    inp = chain.base_inputs()
    acc, mrio = _accounts(chain, inp)
    conv = _convergence(chain, inp, mrio, acc.deaths_row.values, list(sectors), levels, n_draws, seed, chunk_size,
                        progress)
    attrs = {"synthetic": int(bool(synthetic)), "source": source or f"chain on `{chain.mrio.name}`"}
    return xr.merge([acc, conv], join="exact", combine_attrs="no_conflicts").assign_attrs(attrs)


# ------------------------------------------------------------------------------------------ report


def report(ds: xr.Dataset, out: str | Path, *, seconds: float | None = None) -> Path:
    """Write `out/report.md`, `out/figures/*.png` and `out/results/cobenefits.nc` (the dataset) from
    [`compute`][experiments.cobenefits.compute]'s dataset. **Returns** the report path."""
    t0 = time.perf_counter()
    out = Path(out)
    synthetic = bool(ds.attrs["synthetic"])
    results = out / "results"
    results.mkdir(parents=True, exist_ok=True)
    write_netcdf_atomic(ds, results / "cobenefits.nc")
    regions = list(ds.region.values)
    co2_p, co2_fp, co2_c = ds.co2_views.values
    d_p, d_fp, d_c = ds.deaths_views.values
    rep = Report(out, "COBENEFIT study reproduction: CO2 and PM2.5 deaths along supply chains" + tag(synthetic))
    rep.add(
        f"Data: {ds.attrs['source']}."
        + (" **All numbers and figures are synthetic**: the demo world illustrates the method and is not data "
           "about any real place." if synthetic else "") + "\n\n"
        "The COBENEFIT study (2025 preprint) traced CO2 and PM2.5-related deaths (CMAQ adjoint, CEADs 2017 MRIO, "
        "31 x 42) along interprovincial supply chains, classified provinces by their trade disparity indices "
        "(TCI for CO2, THI for health) and found that if suppliers of power, metals and nonmetal products "
        "converged to their buyers' intensities, **trade-related CO2 would fall by 17% and the associated deaths "
        "by 19%** (10,000-draw Monte Carlo)."
    )
    dfv = pd.DataFrame({"CO2 where emitted": co2_p, "CO2 final producer": co2_fp, "CO2 consumer": co2_c,
                        "deaths where emitted": d_p, "deaths final producer": d_fp, "deaths consumer": d_c,
                        "deaths consumer (attribute)": ds.deaths_by_consumer_first_order.sum("receptor").values,
                        "deaths final producer (attribute)":
                            ds.deaths_by_final_producer_first_order.sum("receptor").values},
                       index=pd.Index(regions, name="region"))  # fmt: skip
    first_order = float(ds.deaths_row.sum() + ds.deaths_households.sum())
    rep.add(
        "## 1. CO2 and deaths in the consumer and final-producer views\n\n"
        "Deaths are a satellite row of the MRIO: the first-order (adjoint-weighted) deaths caused by each "
        "region-sector's emissions, `F_deaths = sum_p S o dJ/dS = x o dJ/dx`, plus households' own emissions. "
        "*Where emitted* = deaths caused by the region's emissions (wherever they occur); *consumer* = caused "
        "anywhere by the region's final demand; *final producer* = caused anywhere along the chains that end in "
        "the region's final products. The last two columns are `attribute(chain, by=..., method='first_order')` "
        f"summed over receptors; they equal the MRIO views (identity). Total deaths {float(ds.total_deaths):,.0f} "
        f"yr-1; first-order total {first_order:,.0f} (the chain is nonlinear, so the first-order sum differs)."
    )
    rep.table(dfv, "CO2 (Mt) and deaths (yr-1) by region in three views")
    rep.figure(_fig_views(regions, co2_c, co2_fp, co2_p, d_c, d_fp, d_p, synthetic), "views",
               f"CO2 and deaths per region where emitted, by final producer and by consumer{tag(synthetic)}.")
    tci, thi = ds.tci.values, ds.thi.values
    rep.add(
        "## 2. Trade disparity indices\n\n"
        "`TCI_r = (EEI_r - EEE_r)/(EEI_r + EEE_r)` from the CO2 burden matrix (EEI: emitted elsewhere for r's "
        "demand; EEE: emitted in r for others' demand) and `THI_r` the same with the deaths matrix (deaths caused "
        "by emissions elsewhere for r's demand vs by r's emissions for others'). Positive = net outsourcer."
    )
    rep.table(pd.DataFrame({"TCI": tci, "THI": thi, "zone": ds.zone.values}, index=pd.Index(regions, name="region")),
              "Trade disparity indices", floatfmt="{:.3f}")
    rep.figure(_fig_zones(regions, tci, thi, synthetic), "zones", f"TCI-THI zone scatter{tag(synthetic)}.")

    lv = ds.level.values
    sectors = ds.attrs["sectors"].split(",")
    n_draws = int(ds.attrs["n_draws"])
    co2_rel, d_lin = ds.co2_relative.values, ds.deaths_relative_first_order.values
    d_mean, d_lo, d_hi = ds.deaths_relative_mean.values, ds.deaths_relative_lo.values, ds.deaths_relative_hi.values
    dfc = pd.DataFrame({
        "CO2 avoided (Mt)": ds.co2_avoided.values, "CO2 avoided %": 100 * co2_rel,
        "deaths avoided, first-order %": 100 * d_lin,
        "deaths avoided, chain (central)": ds.deaths_avoided_central.values,
        "deaths avoided, chain % (MC mean)": 100 * d_mean,
        "95% interval %": [f"{100 * a:.1f}-{100 * b:.1f}" for a, b in zip(d_lo, d_hi)],
        "deaths avoided 95% interval": [f"{a:,.0f}-{b:,.0f}" for a, b in
                                        zip(ds.deaths_avoided_lo.values, ds.deaths_avoided_hi.values)],
    }, index=pd.Index([f"{100 * v:.0f}%" for v in lv], name="convergence"))  # fmt: skip
    i1 = int(np.argmax(lv))
    rep.add(
        "## 3. Intensity-convergence co-benefits\n\n"
        f"Sectors {', '.join(sectors)}. The converging intensity `w` is the CO2 intensity (CO2 per unit output; "
        "the study uses energy per unit output, which the demo table does not have). A supplier r serving buyer s "
        "with `w_s < w_r` adopts `w' = max(w_s, q)` (q: the minimum, q25 or q50 of `w` over regions for 100/75/50%). "
        "**How the pair-specific intensities enter the chain:** the chain has one intensity per region-sector, "
        "so each supplier-sector gets the output-weighted mean ratio `rho = sum_s (w'_rs / w_r) X^fp_rs / x_r`, "
        "which multiplies *all* its emission rows (SO2, NOx, NH3, VOC, PM2.5, BC, OC and CO2) - cleaner "
        "technology cuts every combustion emission in proportion. CO2 avoided is then exactly the study's "
        "`sum dE^rs`. Deaths avoided: *first-order* = the study's method (`dM = sum E^D_rs (1 - w'/w)` with the "
        "adjoint-weighted deaths matrix); *chain* = `J(S) - J(S')` through emulator and GEMM, relative to the "
        f"first-order trade-related deaths of the same draw. Monte Carlo: {n_draws:,} draws of inventories, GEMM "
        "theta and baseline mortality, paired across scenarios (each draw evaluates the base case and all "
        f"scenarios), {float(ds.attrs['mc_seconds']):.1f} s. CO2 percentages carry no interval: a CO2 inventory "
        "factor cancels in the ratio, and the table itself is not sampled here."
    )
    rep.table(dfc, "Avoided CO2 and deaths by convergence level (% of trade-related CO2 / deaths)")
    rep.add(
        f"- **Full convergence avoids {100 * co2_rel[i1]:.1f}% of trade-related CO2 and {100 * d_mean[i1]:.1f}% "
        f"(95% interval {100 * d_lo[i1]:.1f}-{100 * d_hi[i1]:.1f}%) of the associated deaths** (first-order "
        f"{100 * d_lin[i1]:.1f}%). The study reports 17% and 19% for China's 2017 supply "
        "chains; the synthetic demo is not expected to match, only to show the same pipeline. Here deaths fall by "
        f"a {'smaller' if d_mean[i1] < co2_rel[i1] else 'larger'} share than CO2: the converging sectors' share of "
        "trade-related deaths differs from their share of trade-related CO2 (deaths also come from NH3, VOC and "
        "primary PM of the other sectors, which do not converge)."
    )
    rep.figure(_fig_convergence(lv, co2_rel, d_lin, d_mean, d_lo, d_hi, synthetic), "convergence",
               f"CO2 and deaths avoided by intensity convergence, with 95% Monte Carlo intervals{tag(synthetic)}.")
    rep.add(footer(NAME, (seconds or 0.0) + time.perf_counter() - t0))
    return rep.write()


def headline(ds: xr.Dataset) -> dict:
    """The headline numbers of [`compute`][experiments.cobenefits.compute]'s dataset as a plain dict (fractions
    in percent where the key says `pct`)."""
    lv = ds.level.values.tolist()
    i1 = int(np.argmax(lv))
    regions = [str(r) for r in ds.region.values]

    def per_level(v):
        return dict(zip(lv, np.asarray(v).tolist()))

    return {
        "co2_avoided_pct_100": float(100 * ds.co2_relative[i1]),
        "deaths_avoided_pct_100": float(100 * ds.deaths_relative_mean[i1]),
        "deaths_avoided_pct_100_interval": (float(100 * ds.deaths_relative_lo[i1]),
                                            float(100 * ds.deaths_relative_hi[i1])),
        "deaths_avoided_pct_first_order": per_level(100 * ds.deaths_relative_first_order.values),
        "co2_avoided_pct": per_level(100 * ds.co2_relative.values), "co2_avoided": per_level(ds.co2_avoided.values),
        "deaths_avoided_central": per_level(ds.deaths_avoided_central.values),
        "tci": dict(zip(regions, ds.tci.values.tolist())), "thi": dict(zip(regions, ds.thi.values.tolist())),
        "zones": dict(zip(regions, map(str, ds.zone.values))), "n_draws": int(ds.attrs["n_draws"]),
        "mc_seconds": float(ds.attrs["mc_seconds"]),
    }  # fmt: skip


# ------------------------------------------------------------------------------------------ run


def run(
    out: str | Path,
    *,
    demo=None,
    quick: bool = False,
    cache_dir: str | Path | None = None,
    n_draws: int | None = None,
    seed: int = 0,
    sectors: Sequence[str] = SECTORS,
    levels: Sequence[float] = LEVELS,
    chunk_size: int | str = "auto",
    progress: bool = True,
) -> dict:
    """`compute` + `report` on the demo chain (`demo`, or built / loaded from `cache_dir`, full or `quick`);
    `n_draws` default 10,000 (500 with `quick`). **Returns:** the [headline][experiments.cobenefits.headline]
    numbers, `result` (`compute`'s dataset) and `report`."""
    t0 = time.perf_counter()
    if demo is None:
        demo = load_demo(quick, cache_dir, progress)
    ds = compute(demo.chain, n_draws=n_draws if n_draws is not None else (500 if quick else 10_000), seed=seed,
             sectors=sectors, levels=levels, chunk_size=chunk_size, progress=progress, synthetic=True,
             source=demo_source(demo, quick))
    return headline(ds) | {"result": ds, "report": report(ds, out, seconds=time.perf_counter() - t0)}


def main(argv: Sequence[str] | None = None) -> dict:
    ap = make_parser(__doc__.splitlines()[0])
    ap.add_argument("--cache", type=Path, default=None, help="demo-chain cache folder")
    ap.add_argument("--draws", type=int, default=None, help="Monte Carlo draws (default 10,000; 500 with --quick)")
    args = parse(ap, argv, NAME)
    if args.mrio is not None or args.ceads is not None:
        ap.error("the co-benefit scenarios need the whole chain (emulator and health inputs), which exists only for "
                 "the demo world; run without --mrio/--ceads (MRIO-only views: diffmrio.accounts, "
                 "intensity_convergence)")
    t0 = time.perf_counter()
    res = run(args.out, quick=args.quick, cache_dir=args.cache, n_draws=args.draws, seed=seed_or(args, 0),
              progress=show_progress(args))
    print(f"[{NAME}] report written in {time.perf_counter() - t0:.1f} s: {Path(res['report']).resolve()}")
    return res


if __name__ == "__main__":
    main()
