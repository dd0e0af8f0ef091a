"""PM2.5-attributable deaths in every country in 2015, GEMM vs IER, checked against published estimates.

Inputs (real data, read from the shared folder; never copied into the project):
- `fixtures/geoschem/Annual_pm25_base2015.nc`: annual surface PM2.5, 0.5 deg (GEOS-Chem scaled by satellite ratios);
- `data/health_2015/`: gridded population, grid-cell countries, GBD 2015 baseline mortality and age structure;
- `reference/ier2015_draws.csv`: 1,000 joint GBD 2015 IER parameter draws (Monte Carlo).

`load_inputs(shared)` reads the files, `compute(inputs) -> xr.Dataset` holds every number (with `units`, and the
per-draw Monte Carlo totals), `report(ds, out)` writes the files; `run(out, shared)` does all three.
Run: `python -m experiments.global_health_2015 --out DIR [--shared PATH] [--draws N]`. Writes `report.md`,
`top15_gemm_vs_ier.png`, `deaths_by_country.nc` and `deaths_by_country.csv` into DIR, each atomically.
"""

from __future__ import annotations

import time
import warnings
from pathlib import Path

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
import xarray as xr

import diffmrio  # noqa: F401  (enables float64)
from diffmrio import health as H
from diffmrio.demo import subplots

from ._common import (
    atomic_path,
    experiment_parser,
    parse,
    save_figure_atomic,
    seed_or,
    shared_folder,
    write_netcdf_atomic,
    write_text_atomic,
)

# Published national totals for 2015 (deaths attributable to ambient PM2.5).
PUBLISHED = {
    "gbd2015": {
        "source": "GBD 2015, IER (Cohen et al. 2017, Lancet 389:1907-1918; HEI/IHME State of Global Air 2017)",
        "Global": 4.2e6,
        "China": 1.1e6,
        "India": 1.1e6,
    },
    "burnett2018": {
        "source": "Burnett et al. 2018, PNAS 115:9592 (abstract): GEMM NCD+LRI 8.9 M (95% CI 7.5-10.3), "
        "GEMM 5-COD 6.9 M (4.9-8.5), GBD IER 4.0 M (3.3-4.8) worldwide",
        "Global_NCDLRI": 8.9e6,
        "Global_5COD": 6.9e6,
        "Global_IER": 4.0e6,
    },
}


# ------------------------------------------------------------------------------------------------ compute


@eqx.filter_jit
def _country_totals(model: H.HealthModel, C):
    """deaths[cause, country] (summed over age groups) and population-weighted PM2.5 per country."""
    return model(C).sum(axis=1), model.population_weighted_concentration(C)


@eqx.filter_jit
def _mc_totals(model: H.HealthModel, draws, C):
    """deaths[draw, cause, country] for a stack of CRF draws (sequential map keeps memory to one draw)."""

    def one(crf):
        return eqx.tree_at(lambda m: m.crf, model, crf)(C).sum(axis=1)

    arrays, static = eqx.partition(draws, eqx.is_array)
    return jax.lax.map(lambda a: one(eqx.combine(a, static)), arrays)


def load_inputs(shared: str | Path) -> dict:
    """The real inputs from the shared folder: PM2.5 (`fixtures/geoschem/Annual_pm25_base2015.nc`, NaN cells
    filled from the nearest valid cell), gridded population, grid-cell countries, GBD 2015 baseline mortality
    and age structure (`data/health_2015/`), and the IER draw table path. **Returns:** a dict (`pm25`,
    `population`, `regions`, `mortality`, `ages`, `ier_draws` path, `pop_in_filled`, `n_filled_populated`,
    `pm_path`, `data`)."""
    shared = Path(shared)
    d = shared / "data" / "health_2015"
    pm_path = shared / "fixtures" / "geoschem" / "Annual_pm25_base2015.nc"
    pm = H.load_pm25_netcdf(pm_path, fill_nan="nearest")
    pop = H.load_gridded_population(d / "population_0p5deg.csv.gz", "base2015", like=pm)
    with xr.open_dataset(pm_path) as raw:
        raw_pm = raw["PM2.5"].isel(time=0).values
    return {
        "pm25": pm, "population": pop, "regions": H.load_grid_regions(d / "grid_info_0p5deg.csv.gz", "Country", like=pm),
        "mortality": H.load_gbd_baseline_mortality(d / "gbd_baseline_mortality_per100k.csv.gz", "base2015"),
        "ages": H.load_gbd_age_structure(d / "gbd_age_structure.csv.gz", "base2015"),
        "ier_draws": shared / "reference" / "ier2015_draws.csv",
        "pop_in_filled": float(pop.values[~np.isfinite(raw_pm)].sum()),
        "n_filled_populated": int(((pop.values > 0) & ~np.isfinite(raw_pm)).sum()),
        "pm_path": pm_path, "data": d,
    }  # fmt: skip


def compute(inputs: dict, *, n_draws: int = 100, seed: int = 0, mc_gemm5: bool = False) -> xr.Dataset:
    """Deaths per country for GEMM 5-COD (with and without the Chinese cohort), GEMM NCD+LRI, IER (2014 central)
    and the mean over GBD 2015 IER draws, with Monte Carlo totals over CRF draws.

    **Arguments:** `inputs` from [`load_inputs`][experiments.global_health_2015.load_inputs]; `n_draws` CRF draws
    per Monte Carlo model (IER GBD 2015 draws, GEMM NCD+LRI, and with `mc_gemm5` GEMM 5-COD); `seed`.

    **Returns:** an `xarray.Dataset`: `deaths[model, cause, country]` (NaN where a model has no such cause),
    `population`, `pm25_popweighted[country]`, `mc_total[mc, draw, country]` (deaths summed over causes per
    draw) and per Monte Carlo model `total_{lo,hi,mean}_<model>[country]` (2.5th/97.5th percentile and mean
    over draws); the data provenance in the attributes.
    """
    pm, pop, regions = inputs["pm25"], inputs["population"], inputs["regions"]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        in5 = H.build_health_inputs(regions, pop, inputs["ages"], inputs["mortality"], causes=H.FIVE_CAUSES,
                                    on_missing="drop")
        inN = H.build_health_inputs(regions, pop, inputs["ages"], inputs["mortality"], causes=("NCD+LRI",),
                                    on_missing="drop")
    lab = regions.values
    dropped_pop = float(pop.values[(lab != "") & ~np.isin(lab, list(in5.regions))].sum())
    C = jnp.asarray(pm.values)
    ages_ = in5.ages
    models = {
        "GEMM 5-COD": (in5, H.GEMM.burnett2018(H.FIVE_CAUSES, ages=ages_, with_china=True)),
        "GEMM 5-COD (ex-China cohort)": (in5, H.GEMM.burnett2018(H.FIVE_CAUSES, ages=ages_, with_china=False)),
        "GEMM NCD+LRI": (inN, H.GEMM.burnett2018("NCD+LRI", ages=ages_, with_china=True)),
        "IER (Burnett 2014 central)": (in5, H.IER.central(H.FIVE_CAUSES, ages=ages_)),
    }
    countries = list(in5.regions)
    all_causes = list(H.FIVE_CAUSES) + ["NCD+LRI"]
    central = np.full((len(models) + 1, len(all_causes), len(countries)), np.nan)
    pwc = None
    for k, (inp, crf) in enumerate(models.values()):
        D, pw = _country_totals(H.HealthModel(inp, crf), C)
        for ci, c in enumerate(crf.causes):
            central[k, all_causes.index(c)] = np.asarray(D[ci])
        pwc = np.asarray(pw)

    # Monte Carlo: GBD 2015 IER whole draws (age-specific IHD/stroke) and GEMM theta ~ N(theta, SE).
    key_ier, key_g5, key_gn = jax.random.split(jax.random.key(seed), 3)
    # GBD 2015 applied LRI at every age and the other causes to adults 25+ (Cohen et al. 2017).
    ier_draws = H.load_ier_draws(inputs["ier_draws"], H.FIVE_CAUSES, ages=ages_, age_ranges={"LRI": (0, None)})
    mc = {
        "IER (GBD 2015 draws)": (in5, ier_draws.sample(key=key_ier, n=n_draws)),
        "GEMM NCD+LRI": (inN, models["GEMM NCD+LRI"][1].sample(key=key_gn, n=n_draws)),
    }
    if mc_gemm5:
        mc["GEMM 5-COD"] = (in5, models["GEMM 5-COD"][1].sample(key=key_g5, n=n_draws))
    mc_tot = []
    for name, (inp, draws) in mc.items():
        template = H.HealthModel(inp, jax.tree.map(lambda x: x[0] if eqx.is_array(x) else x, draws))
        by_cause = np.asarray(_mc_totals(template, draws, C))  # [draw, cause, country]
        mc_tot.append(by_cause.sum(axis=1))
        if name.startswith("IER"):
            central[-1, : len(H.FIVE_CAUSES)] = by_cause.mean(axis=0)

    d = "deaths yr-1"
    ds = xr.Dataset(
        {
            "deaths": (("model", "cause", "country"), central,
                       {"units": d, "long_name": "PM2.5-attributable deaths, 2015"}),
            "population": (("country",), np.asarray(in5.to_regions(in5.population)), {"units": "persons"}),
            "pm25_popweighted": (("country",), pwc, {"units": "ug m-3"}),
            "mc_total": (("mc", "draw", "country"), np.stack(mc_tot),
                         {"units": d, "long_name": "deaths summed over causes, per CRF draw"}),
        },
        coords={"model": list(models) + ["IER (GBD 2015 draws, mean)"], "cause": all_causes, "country": countries,
                "mc": list(mc), "draw": np.arange(n_draws)},
        attrs={"title": "PM2.5-attributable deaths by country, 2015 (diffmrio experiment global_health_2015)",
               "pm25": str(inputs["pm_path"]), "health_data": str(inputs["data"]), "mc_draws": n_draws,
               "n_filled": int(pm.attrs["n_filled"]), "n_filled_populated": inputs["n_filled_populated"],
               "pop_in_filled": inputs["pop_in_filled"], "total_pop": float(pop.sum()), "dropped_pop": dropped_pop,
               "dropped": str(caught[0].message) if caught else "none"},
    )  # fmt: skip
    for name, tot in zip(mc, mc_tot):
        tag = name.split(" (")[0].replace(" ", "_").replace("+", "").replace("-", "")
        lo, hi = np.percentile(tot, [2.5, 97.5], axis=0)
        ds[f"total_lo_{tag}"] = (("country",), lo, {"units": d, "long_name": f"{name}: 2.5th percentile over draws"})
        ds[f"total_hi_{tag}"] = (("country",), hi, {"units": d, "long_name": f"{name}: 97.5th percentile over draws"})
        ds[f"total_mean_{tag}"] = (("country",), tot.mean(axis=0), {"units": d, "long_name": f"{name}: mean over draws"})
    return ds


def country_table(ds: xr.Dataset) -> pd.DataFrame:
    """Totals per country (rows, sorted by GEMM 5-COD) and model, with population, PM2.5 and the 95% Monte
    Carlo interval per Monte Carlo model (the CSV written by the report)."""
    table = ds["deaths"].sum("cause", skipna=True).to_pandas().T  # country x model
    table.insert(0, "population", ds.population.values)
    table.insert(1, "pm25_popweighted", ds.pm25_popweighted.values)
    for name in ds.mc.values:
        lo, hi = np.percentile(ds.mc_total.sel(mc=name).values, [2.5, 97.5], axis=0)
        table[f"{name} MC 2.5%"] = lo
        table[f"{name} MC 97.5%"] = hi
    return table.sort_values("GEMM 5-COD", ascending=False)


def report(ds: xr.Dataset, out: str | Path, *, seconds: float | None = None) -> dict:
    """Write `out/report.md`, `out/top15_gemm_vs_ier.png`, `out/deaths_by_country.{nc,csv}` from
    [`compute`][experiments.global_health_2015.compute]'s dataset. **Returns:** the national and global totals
    per model (`China`, `India`, `Global`)."""
    t0 = time.perf_counter()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    table = country_table(ds)
    mc_tot = {str(m): ds.mc_total.sel(mc=m).values for m in ds.mc.values}
    countries = list(ds.country.values)
    write_netcdf_atomic(ds, out / "deaths_by_country.nc")
    with atomic_path(out / "deaths_by_country.csv") as tmp:
        table.to_csv(tmp, float_format="%.6g", index_label="country")
    _figure(table, mc_tot, countries, out / "top15_gemm_vs_ier.png")
    info = dict(ds.attrs) | {"runtime": (seconds or 0.0) + time.perf_counter() - t0}
    return _report(out / "report.md", ds, table, mc_tot, countries, info)


def run(out: Path, shared: Path, n_draws: int = 100, seed: int = 0, mc_gemm5: bool = False) -> dict:
    """`load_inputs`, `compute` and `report`. **Returns** the report's summary (national and global totals)."""
    t0 = time.perf_counter()
    inputs = load_inputs(shared)
    t_load = time.perf_counter() - t0
    ds = compute(inputs, n_draws=n_draws, seed=seed, mc_gemm5=mc_gemm5)
    ds.attrs.update(t_load=t_load, t_compute=time.perf_counter() - t0 - t_load)
    return report(ds, out, seconds=time.perf_counter() - t0)


# ------------------------------------------------------------------------------------------------ outputs


def _figure(table: pd.DataFrame, mc_tot, countries, path: Path) -> None:
    top = table.head(15)
    idx = [countries.index(c) for c in top.index]
    cols = [("GEMM NCD+LRI", "#7b3294"), ("GEMM 5-COD", "#c2a5cf"), ("IER (Burnett 2014 central)", "#a6dba0"),
            ("IER (GBD 2015 draws, mean)", "#008837")]
    mc_for = {"GEMM NCD+LRI": "GEMM NCD+LRI", "GEMM 5-COD": "GEMM 5-COD", "IER (GBD 2015 draws, mean)":
              "IER (GBD 2015 draws)"}
    mc_for = {k: v for k, v in mc_for.items() if v in mc_tot}
    fig, ax = subplots(figsize=(12, 5.5))
    w = 0.2
    x = np.arange(len(top))
    for k, (name, colour) in enumerate(cols):
        vals = top[name].to_numpy() / 1e3
        err = None
        if name in mc_for:
            lo, hi = np.percentile(mc_tot[mc_for[name]][:, idx], [2.5, 97.5], axis=0) / 1e3
            err = np.vstack([np.maximum(vals - lo, 0), np.maximum(hi - vals, 0)])
        ax.bar(x + (k - 1.5) * w, vals, w, label=name, color=colour, yerr=err, capsize=2, error_kw={"lw": 0.8})
    ax.set_xticks(x, top.index, rotation=40, ha="right")
    ax.set_yscale("log")
    ax.set_ylabel("PM2.5-attributable deaths in 2015 (thousands, log scale)")
    ax.set_title("Top 15 countries: GEMM (Burnett et al. 2018) vs IER (GBD); bars = 95% interval over CRF draws")
    ax.legend(frameon=False, fontsize=9)
    ax.grid(axis="y", alpha=0.3, which="both")
    fig.tight_layout()
    save_figure_atomic(fig, path, dpi=130, format="png")


def _fmt(v: float) -> str:
    return f"{v / 1e6:.2f} M" if v >= 1e6 else f"{v / 1e3:.0f} k"


def _report(path: Path, ds, table, mc_tot, countries, info) -> dict:
    tot = ds["deaths"].sum("cause", skipna=True)
    glob = tot.sum("country")
    ci = {name: np.percentile(t.sum(axis=1), [2.5, 97.5]) for name, t in mc_tot.items()}
    summary = {}
    lines = [
        "# PM2.5-attributable deaths by country, 2015: GEMM vs IER",
        "",
        "Generated by `python -m experiments.global_health_2015` (diffmrio). Everything below is computed from",
        "the real inputs named in *Data*; nothing is synthetic.",
        "",
        "## Method",
        "",
        "- Relative risk applied per 0.5 deg grid cell (never to a country mean), deaths",
        "  `D = Pop * agefrac * y0 * (1 - 1/RR(C))` per cause and 5-year age group, summed into countries.",
        "- **GEMM** (Burnett et al. 2018, PNAS 115:9592), fits with the Chinese cohort unless noted: 5-COD = IHD,",
        "  stroke, COPD, lung cancer, LRI, adults 25+, age-specific IHD and stroke (80+ fit for 80-95+);",
        "  NCD+LRI = the non-communicable-disease + LRI model with its age-specific fits, adults 25+.",
        "- **IER** central = Burnett et al. (2014) all-age fits; IHD, stroke, COPD, LC for adults 25+ and LRI",
        "  for children under five (the COBENEFIT convention). **IER GBD 2015 draws** = mean over",
        f"  {info['mc_draws']} whole draws (alpha, gamma, delta, zcf together; age-specific IHD/stroke) of the GBD",
        "  2015 draw table, with LRI at all ages as in GBD 2015 (the like-for-like comparison with Cohen et al.).",
        "  GEMM intervals: theta ~ Normal(theta, SE), one normal per cause shared across ages.",
        "- Baseline rates and age structure: GBD 2015 per country (`base2015`).",
        "",
        "## China and India vs published estimates",
        "",
        "| country | GEMM NCD+LRI | GEMM 5-COD | IER central (2014) | IER GBD 2015 draws (95% int.) | published |",
        "|---|---|---|---|---|---|",
    ]
    for c in ("China", "India"):
        i = countries.index(c)
        vals = {m: float(tot.sel(model=m, country=c)) for m in tot["model"].values}
        lo, hi = np.percentile(mc_tot["IER (GBD 2015 draws)"][:, i], [2.5, 97.5])
        summary[c] = vals
        lines.append(
            f"| {c} | {_fmt(vals['GEMM NCD+LRI'])} | {_fmt(vals['GEMM 5-COD'])} | "
            f"{_fmt(vals['IER (Burnett 2014 central)'])} | {_fmt(vals['IER (GBD 2015 draws, mean)'])} "
            f"({_fmt(lo)}-{_fmt(hi)}) | GBD 2015 (IER): ~{_fmt(PUBLISHED['gbd2015'][c])} |")
    g = {m: float(glob.sel(model=m)) for m in glob["model"].values}
    summary["Global"] = g
    lines += [
        f"| World ({len(countries)} countries) | {_fmt(g['GEMM NCD+LRI'])} | {_fmt(g['GEMM 5-COD'])} | "
        f"{_fmt(g['IER (Burnett 2014 central)'])} | {_fmt(g['IER (GBD 2015 draws, mean)'])} | "
        "GBD 2015: 4.2 M; Burnett 2018: 8.9 M (NCD+LRI), 6.9 M (5-COD), 4.0 M (GBD IER) |",
        "",
        "Published figures: " + PUBLISHED["gbd2015"]["source"] + " - about 4.2 million deaths worldwide in 2015, of",
        "which China and India about 1.1 million each (2.2 million together); " + PUBLISHED["burnett2018"]["source"]
        + ". Burnett et al. give country totals only in their supplement, which was not checked here.",
        "",
        "Global 95% intervals over CRF draws: "
        + "; ".join(f"{k}: {_fmt(v[0])}-{_fmt(v[1])}" for k, v in ci.items()) + ".",
        "",
        "### Reading the comparison",
        "",
        f"- Population-weighted PM2.5 from this field: China {float(ds['pm25_popweighted'].sel(country='China')):.1f},"
        f" India {float(ds['pm25_popweighted'].sel(country='India')):.1f} ug m-3.",
        "- The ratio GEMM NCD+LRI / GBD-type IER is the robust check: Burnett et al. report 8.9 / 4.0 = 2.2 worldwide;",
        f"  here {g['GEMM NCD+LRI'] / g['IER (GBD 2015 draws, mean)']:.2f} (GBD 2015 draws) and "
        f"{g['GEMM NCD+LRI'] / g['IER (Burnett 2014 central)']:.2f} (2014 central IER).",
        "- Absolute totals depend on the exposure field (a GEOS-Chem run scaled by satellite ratios, not the GBD 2015",
        "  fused exposure) and on which age groups LRI is applied to (GBD 2015 applied LRI at all ages).",
        "",
        "## Top 15 countries (GEMM 5-COD order)",
        "",
        "| country | pop (M) | PM2.5 pw | GEMM NCD+LRI | GEMM 5-COD | IER central | IER GBD 2015 draws |",
        "|---|---|---|---|---|---|---|",
    ]
    for c, r in table.head(15).iterrows():
        lines.append(f"| {c} | {r['population'] / 1e6:.0f} | {r['pm25_popweighted']:.1f} | {_fmt(r['GEMM NCD+LRI'])} |"
                     f" {_fmt(r['GEMM 5-COD'])} | {_fmt(r['IER (Burnett 2014 central)'])} |"
                     f" {_fmt(r['IER (GBD 2015 draws, mean)'])} |")
    china = ds["deaths"].sel(country="China")
    lines += [
        "",
        "Deaths by cause in China (thousands): "
        + "; ".join(f"{m}: " + ", ".join(f"{c} {float(china.sel(model=m, cause=c)) / 1e3:.0f}"
                                         for c in ds["cause"].values if np.isfinite(float(china.sel(model=m, cause=c))))
                    for m in ("GEMM 5-COD", "IER (Burnett 2014 central)", "IER (GBD 2015 draws, mean)")) + ".",
        "",
        "![top 15](top15_gemm_vs_ier.png)",
        "",
        "## Data and caveats",
        "",
        f"- PM2.5: `{info['pm25']}` (annual mean 2015, 0.5 deg). {info['n_filled']} cells are NaN in the file",
        f"  (ocean and mostly-ocean coastal cells), {info['n_filled_populated']} of them populated; they take the"
        f" value of the nearest valid cell. {info['pop_in_filled'] / 1e6:.0f} million people live in such cells",
        "  (Mumbai, Chennai, Jakarta, ...), so leaving them out would bias totals low.",
        f"- Population, countries, GBD rates: `{info['health_data']}`; world population {info['total_pop'] / 1e9:.2f} billion.",
        f"- Grid territories without GBD rates are left out ({info['dropped_pop'] / 1e6:.1f} million people): "
        f"{info['dropped']}",
        "- Results: `deaths_by_country.nc` (deaths[model, cause, country], population, population-weighted PM2.5,",
        "  Monte Carlo intervals) and `deaths_by_country.csv` (totals per country).",
        "",
        f"Runtime: {info['runtime']:.1f} s (loading {info.get('t_load', float('nan')):.1f} s, deaths and Monte "
        f"Carlo {info.get('t_compute', float('nan')):.1f} s) on the machine that ran it.",
        "",
    ]
    write_text_atomic(path, "\n".join(lines))
    return summary


def main(argv=None) -> None:
    ap = experiment_parser(__doc__.splitlines()[0])
    ap.add_argument("--shared", type=Path, default=None,
                    help="shared data folder (default $DIFFMRIO_SHARED, or ../shared next to a checkout)")
    ap.add_argument("--draws", type=int, default=None, help="Monte Carlo draws of the CRF parameters (default 100; "
                    "20 with --quick)")
    ap.add_argument("--mc-gemm5", action="store_true", help="also run the GEMM 5-COD Monte Carlo (slower)")
    args = parse(ap, argv, "global_health_2015")
    try:
        shared = shared_folder(args.shared, "data/health_2015", "--shared", root=True).parents[1]
    except FileNotFoundError as exc:
        ap.error(str(exc))
    draws = args.draws if args.draws is not None else (20 if args.quick else 100)
    if draws < 1:
        ap.error("--draws must be >= 1")
    s = run(args.out, shared, n_draws=draws, seed=seed_or(args, 0), mc_gemm5=args.mc_gemm5)
    for c in ("China", "India", "Global"):
        print(c, {str(k): round(v) for k, v in s[c].items()})
    print(f"wrote {args.out}/report.md")


if __name__ == "__main__":
    main()
