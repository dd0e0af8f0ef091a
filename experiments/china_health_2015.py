"""PM2.5-attributable deaths by Chinese province in 2015 (GEMM and IER), checked against published estimates.

Inputs (real data, read from the shared folder; never copied into the project), all under `data/china_0p1deg/`:
- `pm25_0p1deg.csv.gz` (annual surface PM2.5, column `2015`) and `population_0p1deg.csv.gz` (column `2015`);
- `grid_info_0p1deg.csv.gz` (province of every cell, Chinese names), joined to `reference/china_provinces.csv`
  (English names, CEADs order);
- `gbd_china_mortality_per100k_2000-2019.csv` (GBD national baseline mortality by cause and 5-year age group) and
  `gbd_china_population_by_age_2000-2017.csv` (national age structure), both for 2015.

Models: GEMM 5-COD (Burnett et al. 2018, fits with the Chinese cohort, age-specific IHD/stroke, adults 25+),
GEMM NCD+LRI, and IER (Burnett et al. 2014 central fits; IHD, stroke, COPD, LC for adults 25+ and LRI for children
under five, the COBENEFIT convention). Relative risks per 0.1-degree cell, never on provincial means.

`load_inputs(shared)` reads the files, `compute(inputs) -> xr.Dataset` holds every number (with `units`),
`report(ds, out)` writes the files; `run(out, shared)` does all three.
Run: `python -m experiments.china_health_2015 --out DIR [--shared PATH]`. Without the shared data it says which
folder it looked for and exits with a usage error (status 2). Writes `report.md`, `figures/deaths_by_province.png`,
`results/deaths_by_province.nc` and `results/deaths_by_province.csv` atomically and prints the report path.
"""

from __future__ import annotations

import time
from pathlib import Path

import equinox as eqx
import jax.numpy as jnp
import numpy as np
import pandas as pd
import xarray as xr

import diffmrio  # noqa: F401  (enables float64)
from diffmrio import health as H
from diffmrio.demo import Report, subplots

from ._common import experiment_parser, footer, parse, shared_folder, write_netcdf_atomic, write_text_atomic
from .global_health_2015 import PUBLISHED

NAME = "china_health_2015"
YEAR = 2015
DATA = Path("data") / "china_0p1deg"


def required_files(shared: Path) -> list[Path]:
    d = Path(shared) / DATA
    return [d / "pm25_0p1deg.csv.gz", d / "population_0p1deg.csv.gz", d / "grid_info_0p1deg.csv.gz",
            d / "gbd_china_mortality_per100k_2000-2019.csv", d / "gbd_china_population_by_age_2000-2017.csv",
            Path(shared) / "reference" / "china_provinces.csv"]


def province_names(path: Path) -> pd.DataFrame:
    """`reference/china_provinces.csv` (comment lines skipped): order, name, abbr, name_zh, outsource_region."""
    df = pd.read_csv(path, comment="#")
    need = {"name", "abbr", "name_zh"}
    if not need.issubset(df.columns):
        raise ValueError(f"{path}: needs columns {sorted(need)}, found {list(df.columns)}")
    return df


def load_inputs(shared: Path, year: int = YEAR) -> dict:
    """Gridded PM2.5, population and English province labels on one grid, and the GBD national tables.

    **Returns:** dict with `pm25`, `population` (`DataArray[lat, lon]`), `province` (labels, `""` outside the
    31 provinces), `mortality[endpoint, age]`, `age_fraction[age]`, `provinces` (the reference table) and
    `unmapped` ({Chinese label: population} of labels not among the 31, e.g. Hong Kong).
    """
    d = Path(shared) / DATA
    pm = H.load_gridded_field(d / "pm25_0p1deg.csv.gz", str(year), name="pm25")
    pop = H.load_gridded_population(d / "population_0p1deg.csv.gz", str(year), like=pm)
    zh = H.load_grid_regions(d / "grid_info_0p1deg.csv.gz", "Province", like=pm)
    prov = province_names(Path(shared) / "reference" / "china_provinces.csv")
    to_en = dict(zip(prov["name_zh"].astype(str).str.strip(), prov["name"]))
    lab = np.asarray(zh.values, dtype=object)
    en = np.array([to_en.get(v, "") for v in lab.ravel()], dtype=object).reshape(lab.shape)
    popv = np.nan_to_num(pop.values)
    unmapped = {}
    for v in sorted(set(lab.ravel()) - set(to_en) - {""}):
        unmapped[v] = float(popv[lab == v].sum())
    pmv = pm.values
    populated = (popv > 0) & (en != "")
    missing_pm = populated & ~np.isfinite(pmv)
    if missing_pm.any():
        raise ValueError(f"{int(missing_pm.sum())} populated province cells have no PM2.5 for {year}")
    pm = pm.fillna(0.0)
    return {
        "pm25": pm, "population": pop, "province": xr.DataArray(en, dims=pm.dims, coords=pm.coords, name="province"),
        "mortality": H.load_gbd_china_mortality(d / "gbd_china_mortality_per100k_2000-2019.csv", year),
        "age_fraction": H.load_gbd_china_population_by_age(d / "gbd_china_population_by_age_2000-2017.csv", year),
        "provinces": prov, "unmapped": unmapped,
    }


@eqx.filter_jit
def _totals(model, C):
    return model(C).sum(axis=1), model.population_weighted_concentration(C)


def compute(inputs: dict, *, source: str | None = None) -> xr.Dataset:
    """Deaths `[model, cause, province]` and population-weighted PM2.5 per province for GEMM 5-COD, GEMM
    NCD+LRI and IER (see the module docstring), from [`load_inputs`][experiments.china_health_2015.load_inputs].

    **Returns:** an `xarray.Dataset` with `deaths[model, cause, province]` (NaN where a model has no such cause),
    `population`, `pm25_popweighted`, `abbr[province]` and `unmapped_population[unmapped]` (people in cells
    labelled outside the 31 provinces); `source` is recorded in the attributes for the report.
    """
    five = H.build_health_inputs(inputs["province"], inputs["population"], inputs["age_fraction"],
                                 inputs["mortality"], causes=H.FIVE_CAUSES)
    ncd = H.build_health_inputs(inputs["province"], inputs["population"], inputs["age_fraction"],
                                inputs["mortality"], causes=("NCD+LRI",))
    ages = five.ages
    models = {
        "GEMM 5-COD": (five, H.GEMM.burnett2018(H.FIVE_CAUSES, ages=ages, with_china=True)),
        "GEMM NCD+LRI": (ncd, H.GEMM.burnett2018("NCD+LRI", ages=ages, with_china=True)),
        "IER (Burnett 2014)": (five, H.IER.central(H.FIVE_CAUSES, ages=ages)),
    }
    causes = list(H.FIVE_CAUSES) + ["NCD+LRI"]
    regions = list(five.regions)
    out = np.full((len(models), len(causes), len(regions)), np.nan)
    C = jnp.asarray(inputs["pm25"].values)
    pw = None
    for k, (inp, crf) in enumerate(models.values()):
        D, p = _totals(H.HealthModel(inp, crf), C)
        for ci, c in enumerate(crf.causes):
            out[k, causes.index(c)] = np.asarray(D[ci])
        pw = np.asarray(p)
    pop = np.asarray(five.to_regions(five.population))
    abbr = dict(zip(inputs["provinces"]["name"], inputs["provinces"]["abbr"]))
    unmapped = inputs.get("unmapped", {})
    return xr.Dataset(
        {
            "deaths": (("model", "cause", "province"), out, {"units": "deaths yr-1"}),
            "population": (("province",), pop, {"units": "persons"}),
            "pm25_popweighted": (("province",), pw, {"units": "ug m-3"}),
            "abbr": (("province",), np.array([str(abbr.get(p, "")) for p in regions], dtype=str), {"units": ""}),
            "unmapped_population": (("unmapped",), np.array(list(unmapped.values()), dtype=np.float64),
                                    {"units": "persons", "long_name": "people in cells outside the 31 provinces"}),
        },
        coords={"model": list(models), "cause": causes, "province": regions,
                "unmapped": np.array(list(unmapped), dtype=str)},
        attrs={"title": f"PM2.5-attributable deaths by Chinese province, {YEAR}", "year": YEAR,
               "source": source or "the shared 0.1-degree China data"},
    )


def headline(ds: xr.Dataset) -> dict:
    """National totals per model (`national`), population-weighted PM2.5, population and deaths per province
    (`by_province[model][province]`) of [`compute`][experiments.china_health_2015.compute]'s dataset."""
    totals = ds.deaths.sum("cause", skipna=True)  # (model, province)
    pop_all = float(ds.population.sum())
    return {"national": {str(m): float(totals.sel(model=m).sum()) for m in ds.model.values},
            "pm25_popweighted": float((ds.pm25_popweighted * ds.population).sum() / pop_all), "population": pop_all,
            "by_province": {str(m): dict(zip(map(str, ds.province.values), totals.sel(model=m).values.tolist()))
                            for m in ds.model.values},
            "unmapped": dict(zip(map(str, ds.unmapped.values), ds.unmapped_population.values.tolist()))}


def _figure(table: pd.DataFrame):
    fig, ax = subplots(figsize=(13, 4.6))
    xs = np.arange(len(table))
    for k, (col, c) in enumerate((("GEMM NCD+LRI", "#7b3294"), ("GEMM 5-COD", "#c2a5cf"), ("IER (Burnett 2014)", "#008837"))):
        ax.bar(xs + (k - 1) * 0.28, table[col] / 1e3, 0.28, label=col, color=c)
    ax.set_xticks(xs, table.index, rotation=60, fontsize=8)
    ax.set_ylabel("deaths yr-1 (thousands)")
    ax2 = ax.twinx()
    ax2.plot(xs, table["PM2.5 pw"], "k.", label="population-weighted PM2.5")
    ax2.set_ylabel("population-weighted PM2.5 (ug m-3)")
    ax.legend(frameon=False, fontsize=8, loc="upper right")
    ax.set_title(f"PM2.5-attributable deaths by province, China {YEAR} (GEMM vs IER; dots: PM2.5)", fontsize=10)
    return fig


def report(ds: xr.Dataset, out: str | Path, *, seconds: float | None = None) -> Path:
    """Write `out/report.md`, `out/figures/deaths_by_province.png` and `out/results/deaths_by_province.{nc,csv}`
    from [`compute`][experiments.china_health_2015.compute]'s dataset. **Returns** the report path."""
    t0 = time.perf_counter()
    out = Path(out)
    h = headline(ds)
    nat, pop_all, pw_nat = h["national"], h["population"], h["pm25_popweighted"]
    table = ds.deaths.sum("cause", skipna=True).to_pandas().T
    table["population (M)"] = ds.population.values / 1e6
    table["PM2.5 pw"] = ds.pm25_popweighted.values
    table = table.sort_values("GEMM 5-COD", ascending=False)
    table.index.name = "province"
    results = out / "results"
    results.mkdir(parents=True, exist_ok=True)
    write_netcdf_atomic(ds, results / "deaths_by_province.nc")
    write_text_atomic(results / "deaths_by_province.csv", table.to_csv(float_format="%.6g"))
    gbd = PUBLISHED["gbd2015"]["China"]
    rep = Report(out, f"PM2.5-attributable deaths by Chinese province, {YEAR} (real data)")
    rep.add(
        f"Data (real): annual PM2.5 and population on the 0.1-degree grid of `{ds.attrs['source']}` ({YEAR} columns), "
        "province of every cell joined to `reference/china_provinces.csv`, GBD national baseline mortality and age "
        f"structure for {YEAR} (the same national rates applied in every province: the folder has no provincial "
        f"rates). {ds.sizes['province']} provinces, {pop_all / 1e9:.3f} billion people, population-weighted PM2.5 "
        f"{pw_nat:.1f} ug m-3."
        + (" Cells labelled outside the 31 mainland provinces are left out: "
           + ", ".join(f"{k} ({v / 1e6:.1f} M people)" for k, v in h["unmapped"].items()) + "."
           if h["unmapped"] else "")
    )
    rep.add(
        "## National totals vs published estimates\n\n"
        "| model | deaths yr-1 (this run) | published |\n|---|---|---|\n"
        f"| GEMM NCD+LRI (with China cohort) | {nat['GEMM NCD+LRI'] / 1e6:.2f} M | - |\n"
        f"| GEMM 5-COD (with China cohort) | {nat['GEMM 5-COD'] / 1e6:.2f} M | - |\n"
        f"| IER (Burnett 2014 central) | {nat['IER (Burnett 2014)'] / 1e6:.2f} M | GBD 2015 (IER): ~{gbd / 1e6:.1f} M |\n\n"
        f"Published figures (as verified for the global experiment, `experiments/global_health_2015.py`): "
        f"{PUBLISHED['gbd2015']['source']} - about 1.1 million PM2.5 deaths in China in 2015. "
        f"{PUBLISHED['burnett2018']['source']}; GEMM gives about twice the IER burden worldwide (8.9 / 4.0 = 2.2); "
        f"Burnett et al. give country totals only in their supplement, which was not checked here.\n\n"
        f"- IER here / GBD 2015: {nat['IER (Burnett 2014)'] / gbd:.2f}. GEMM NCD+LRI / IER here: "
        f"{nat['GEMM NCD+LRI'] / nat['IER (Burnett 2014)']:.2f} (Burnett et al. worldwide: 2.2).\n"
        "- Differences to GBD come from the exposure field (this PM2.5 product vs GBD's fused exposure), the "
        "IER version (2014 central fits vs GBD 2015 draws) and LRI (under-fives here, all ages in GBD 2015)."
    )
    t = table.copy()
    t.insert(0, "abbr", ds.abbr.to_pandas().reindex(t.index).values)
    rep.table(t[["abbr", "population (M)", "PM2.5 pw", "GEMM NCD+LRI", "GEMM 5-COD", "IER (Burnett 2014)"]],
              f"Deaths yr-1 by province, {YEAR}, sorted by GEMM 5-COD", floatfmt="{:,.1f}")
    rep.figure(_figure(table), "deaths_by_province", f"PM2.5-attributable deaths by province, {YEAR}: GEMM vs IER.")
    timing = (f"Load {ds.attrs['load_seconds']:.1f} s, compute {ds.attrs['compute_seconds']:.1f} s.\n\n"
              if "load_seconds" in ds.attrs else "")
    rep.add(timing + footer(NAME, (seconds or 0.0) + time.perf_counter() - t0))
    return rep.write()


def run(out: str | Path, shared: str | Path) -> dict:
    """[`load_inputs`][experiments.china_health_2015.load_inputs], `compute` and `report`. **Returns:** the
    [headline][experiments.china_health_2015.headline] numbers, `dataset` and `report`."""
    t0 = time.perf_counter()
    shared = Path(shared)
    missing = [str(p) for p in required_files(shared) if not p.exists()]
    if missing:
        raise FileNotFoundError(f"shared data missing: {missing}; pass --shared PATH to the shared data folder")
    inputs = load_inputs(shared)
    t_load = time.perf_counter() - t0
    ds = compute(inputs, source=str(shared / DATA))
    ds.attrs.update(load_seconds=t_load, compute_seconds=time.perf_counter() - t0 - t_load)
    return headline(ds) | {"dataset": ds, "report": report(ds, out, seconds=time.perf_counter() - t0)}


def main(argv=None) -> dict | None:
    ap = experiment_parser(__doc__.splitlines()[0])
    ap.add_argument("--shared", type=Path, default=None,
                    help="shared data folder (default $DIFFMRIO_SHARED, or ../shared next to a checkout)")
    args = parse(ap, argv, NAME)
    try:
        shared = shared_folder(args.shared, "data/china_0p1deg", "--shared", root=True).parents[1]
    except FileNotFoundError as exc:
        ap.error(str(exc))
    missing = [str(p) for p in required_files(shared) if not p.exists()]
    if missing:
        ap.error(f"shared data incomplete: {missing[0]}{' ...' if len(missing) > 1 else ''} not found; pass "
                 "--shared DIR with the full shared data folder")
    t0 = time.perf_counter()
    res = run(args.out, shared)
    print(f"[{NAME}] national deaths: " + ", ".join(f"{k} {v / 1e6:.2f} M" for k, v in res["national"].items()))
    print(f"[{NAME}] report written in {time.perf_counter() - t0:.1f} s: {Path(res['report']).resolve()}")
    return res


if __name__ == "__main__":
    main()
