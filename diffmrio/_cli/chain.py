"""`diffmrio chain CONFIG.toml`: a table, its satellite accounts, a source map, a saved emulator and health
inputs -> the sensitivity of deaths to final demand, an attribution by three methods, a Monte Carlo interval,
written as one netCDF file (every variable with `units`) and a short markdown report.

The configuration (docs/cli.md has a commented example) has the tables `[table]`, `[satellite]`,
`[source_map]`, `[emulator]`, `[ctm]`, `[health]`, `[analysis]` and `[output]`. Relative paths are relative to
the configuration file. Unknown tables or keys, missing files and labels that do not line up (table regions
vs health regions, the emulator's species and sources vs the satellite rows and the source map) are refused
with a message naming the key or file and the fix. Nothing is overwritten: existing outputs are refused before
any work is done, and both files are written atomically.
"""

from __future__ import annotations

import argparse
import difflib
import logging
import tomllib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

log = logging.getLogger("diffmrio")

METHODS = ("first_order", "path", "zero_out")

#: Accepted keys per table: (default, type or tuple of types). `REQUIRED` marks keys without a default.
REQUIRED = object()
SCHEMA: dict[str, dict[str, tuple]] = {
    "table": {"path": (REQUIRED, str), "format": ("auto", str), "extensions": (None, list),
              "money_unit": ("monetary unit", str)},
    "satellite": {"species": (None, dict), "units": (None, (str, dict))},
    "source_map": {"elevated_sectors": (None, list), "elevated_share": (1.0, (int, float))},
    "emulator": {"file": (REQUIRED, str), "reference": ("table", str)},
    "ctm": {"base": (None, str), "run_folder": (None, str)},
    "health": {"population": (REQUIRED, str), "population_column": ("base2015", str),
               "regions": (REQUIRED, str), "region_column": ("Country", str),
               "mortality": (REQUIRED, str), "mortality_column": ("base2015", str),
               "ages": (REQUIRED, str), "ages_column": ("base2015", str),
               "causes": (["IHD", "STROKE", "COPD", "LC", "LRI"], list), "on_missing": ("raise", str),
               "match_table_regions": (True, bool)},
    "analysis": {"target": ("deaths", str), "receptor": ("", str), "attribution_by": ("consumer", str),
                 "n_nodes": (8, int), "n_intervals": (8, int), "n_draws": (1000, int), "seed": (0, int),
                 "baseline_cv": (0.1, (int, float)), "mrio_cv": (0.0, (int, float)),
                 "species_cv": (None, dict), "within_envelope": (False, bool), "top": (10, int)},
    "output": {"netcdf": (REQUIRED, str), "report": (REQUIRED, str)},
}  # fmt: skip
_OPTIONAL_TABLES = ("satellite", "source_map", "analysis")


class ChainConfigError(ValueError):
    """A bad `diffmrio chain` configuration; the message names the file, the key and the fix."""


@dataclass
class ChainConfig:
    """A checked configuration: `path` of the TOML file and one dict per table (defaults filled in, paths
    resolved against the file's folder)."""

    path: Path
    tables: dict[str, dict]

    def __getitem__(self, table: str) -> dict:
        return self.tables[table]

    def where(self, table: str, key: str) -> str:
        return f"{self.path}: [{table}] {key}"


def _did_you_mean(name: str, known) -> str:
    close = difflib.get_close_matches(name, list(known), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def read_config(path: str | Path) -> ChainConfig:
    """Parse and check a `diffmrio chain` configuration (no data is read). **Raises** `ChainConfigError`."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such configuration file; write one (see docs/cli.md for an example)")
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise ChainConfigError(f"{path}: not valid TOML ({e}); fix the syntax") from e
    tables: dict[str, dict] = {}
    for name, body in raw.items():
        if name not in SCHEMA:
            raise ChainConfigError(f"{path}: unknown table [{name}]{_did_you_mean(name, SCHEMA)}; the tables are "
                                   f"{', '.join(f'[{t}]' for t in SCHEMA)}")
        if not isinstance(body, dict):
            raise ChainConfigError(f"{path}: `{name}` must be a table ([{name}] with keys), not a value")
    for name, keys in SCHEMA.items():
        body = raw.get(name)
        if body is None and name not in _OPTIONAL_TABLES:
            raise ChainConfigError(f"{path}: the table [{name}] is missing; add it (keys: {', '.join(keys)})")
        body = dict(body or {})
        for k in body:
            if k not in keys:
                raise ChainConfigError(f"{path}: unknown key `{k}` in [{name}]{_did_you_mean(k, keys)}; the keys "
                                       f"of [{name}] are {', '.join(keys)}")
        out = {}
        for k, (default, typ) in keys.items():
            if k not in body:
                if default is REQUIRED:
                    raise ChainConfigError(f"{path}: [{name}] needs `{k}`; add `{k} = ...` to the [{name}] table")
                out[k] = default
                continue
            v = body[k]
            types = typ if isinstance(typ, tuple) else (typ,)
            if not isinstance(v, types) or (isinstance(v, bool) and bool not in types):
                want = " or ".join(t.__name__ for t in types)
                raise ChainConfigError(f"{path}: [{name}] {k} = {v!r} must be a {want}")
            out[k] = v
        tables[name] = out
    root = path.parent
    ctm = tables["ctm"]
    if (ctm["base"] is None) == (ctm["run_folder"] is None):
        raise ChainConfigError(f"{path}: [ctm] needs exactly one of `base` (a netCDF of the base-case fields and "
                               "receptor fractions) and `run_folder` (a runs.toml); see docs/cli.md")
    ctm_key = "base" if ctm["base"] is not None else "run_folder"
    for table, key in (("table", "path"), ("emulator", "file"), ("ctm", ctm_key), ("health", "population"),
                       ("health", "regions"), ("health", "mortality"), ("health", "ages"),
                       ("output", "netcdf"), ("output", "report")):  # fmt: skip
        tables[table][key] = root / Path(tables[table][key]).expanduser()
    if tables["emulator"]["reference"] != "table":
        tables["emulator"]["reference"] = root / Path(tables["emulator"]["reference"]).expanduser()
    cfg = ChainConfig(path, tables)
    for table, key in (("table", "path"), ("emulator", "file"), ("ctm", ctm_key), ("health", "population"),
                       ("health", "regions"), ("health", "mortality"), ("health", "ages")):  # fmt: skip
        if not tables[table][key].exists():
            raise ChainConfigError(f"{cfg.where(table, key)}: {tables[table][key]} does not exist; give the path of "
                                   "an existing file (relative paths are relative to the configuration file)")
    a = tables["analysis"]
    if a["target"] not in ("deaths", "pwpm"):
        raise ChainConfigError(f"{cfg.where('analysis', 'target')} = {a['target']!r}: use 'deaths' or 'pwpm'")
    if a["attribution_by"] not in ("consumer", "final_producer", "sector", "foreign"):
        raise ChainConfigError(f"{cfg.where('analysis', 'attribution_by')} = {a['attribution_by']!r}: use "
                               "'consumer', 'final_producer', 'sector' or 'foreign'")
    for k in ("n_nodes", "n_intervals", "n_draws", "top"):
        if a[k] < 1:
            raise ChainConfigError(f"{cfg.where('analysis', k)} = {a[k]}: must be at least 1")
    if tables["health"]["on_missing"] not in ("raise", "drop"):
        raise ChainConfigError(f"{cfg.where('health', 'on_missing')}: use 'raise' or 'drop'")
    return cfg


# ------------------------------------------------------------------------------------------ building the chain
def _source_map(cfg: ChainConfig, mrio):
    from ..chain import SourceMap
    from ..chain._chain import DEFAULT_ELEVATED

    sat, sm = cfg["satellite"], cfg["source_map"]
    species = sat["species"]
    if species is not None:
        for sp, d in species.items():
            if not isinstance(d, dict) or not all(isinstance(w, int | float) for w in d.values()):
                raise ChainConfigError(f"{cfg.where('satellite', 'species')}: {sp} = {d!r} must map stressor names "
                                       'to weights, e.g. PM_other = {"PM2.5" = 1.0, BC = -1.0, OC = -1.0}')
        used = list(dict.fromkeys(s for d in species.values() for s in d))
    else:
        used = ["SO2", "NOx", "NH3", "VOC", "PM2.5", "BC", "OC"]
    missing = [s for s in used if s not in mrio.stressors]
    if missing:
        key = "species" if species is not None else "species (not given: the default SO2, NOx, NH3, VOC, PM2.5, BC, OC)"
        raise ChainConfigError(f"{cfg.where('satellite', key)}: stressor(s) {missing} are not rows of the table "
                               f"{cfg['table']['path']}, whose stressors are {list(mrio.stressors)}; map the CTM "
                               "species to the table's own stressor names")
    units = sat["units"]
    if units is not None:
        want = units if isinstance(units, dict) else {s: units for s in used}
        for s in used:
            have = mrio.units[mrio.stressor_index(s)]
            if s in want and have and str(want[s]) != have:
                raise ChainConfigError(f"{cfg.where('satellite', 'units')}: stressor {s!r} is in {have!r} in the table "
                                       f"but the configuration says {want[s]!r}; convert the table's rows or correct "
                                       "the units")
    elevated = sm["elevated_sectors"]
    if elevated is None:
        elevated = [s for s in DEFAULT_ELEVATED if s in mrio.sectors]
    bad = [s for s in elevated if s not in mrio.sectors]
    if bad:
        raise ChainConfigError(f"{cfg.where('source_map', 'elevated_sectors')}: {bad} are not sectors of the table; "
                               f"its sectors are {list(mrio.sectors)}")
    return SourceMap.for_mrio(mrio, elevated_sectors=elevated, elevated_share=float(sm["elevated_share"]),
                              species_from=species)


def _ctm_base(cfg: ChainConfig):
    """The base-case fields `conc[component, lat, lon]` and receptor fractions `receptor_fraction[receptor, lat,
    lon]`: from the `[ctm] base` netCDF file, or from a run folder (its base run, or the estimate of
    `ctm_interface.base_case`, and its region masks; the grid's `ROW`/`COL` coordinates serve as `lat`/`lon`, so
    the health files' `x, y` are the run folder's cell-centre coordinates)."""
    from .._io import load_netcdf

    if cfg["ctm"]["run_folder"] is not None:
        import ctm_interface as ci

        folder = ci.read_run_folder(cfg["ctm"]["run_folder"])
        _, base, how = ci.base_case(folder.runs["scale"], folder.fields)
        log.info("base case of %s: %s", cfg["ctm"]["run_folder"], how)
        ren = {"ROW": "lat", "COL": "lon"}
        conc = base.rename(ren).transpose("component", "lat", "lon")
        masks = folder.masks.rename({**ren, "region": "receptor"}).transpose("receptor", "lat", "lon")
        # CF folders' masks carry cell-centre latitudes/longitudes; I/O API ones only cell numbers (0, 1, ...)
        grid = {d: masks[d].values if d in masks.coords else np.arange(masks.sizes[d], dtype=np.float64)
                for d in ("lat", "lon")}
        conc = conc.drop_vars(["lat", "lon"], errors="ignore").assign_coords(grid)
        return conc, masks.drop_vars(["lat", "lon"], errors="ignore").assign_coords(grid)
    p = cfg["ctm"]["base"]
    ds = load_netcdf(p, fix="write it again (see docs/cli.md for its layout)")
    need = {"conc": ("component", "lat", "lon"), "receptor_fraction": ("receptor", "lat", "lon")}
    for v, dims in need.items():
        if v not in ds or set(ds[v].dims) != set(dims):
            raise ChainConfigError(f"{cfg.where('ctm', 'base')}: {p} needs a variable `{v}` with dims {dims} "
                                   f"(it has {[(k, ds[k].dims) for k in ds.data_vars]}); see docs/cli.md")
    return ds["conc"].transpose("component", "lat", "lon"), ds["receptor_fraction"].transpose("receptor", "lat", "lon")


def _health(cfg: ChainConfig, like, mrio):
    from .. import health as H

    h = cfg["health"]
    pop = H.load_gridded_population(h["population"], h["population_column"], like=like)
    reg = H.load_grid_regions(h["regions"], h["region_column"], like=like)
    if h["match_table_regions"]:  # before the GBD tables: their rows follow the labels of this file
        labels = np.asarray(reg.values, dtype=object)[(np.asarray(pop.values) > 0) & (np.asarray(reg.values) != "")]
        foreign = sorted({str(r) for r in labels} - set(mrio.regions))
        if foreign:
            raise ChainConfigError(
                f"{cfg.where('health', 'regions')}: region label(s) {foreign} (column {h['region_column']!r} of "
                f"{h['regions']}) are not regions of the table {cfg['table']['path']} ({list(mrio.regions)}); rename "
                "them in the file, or set `match_table_regions = false` in [health] if the health regions are other "
                "units than the table's")
    rates = H.load_gbd_baseline_mortality(h["mortality"], h["mortality_column"])
    ages = H.load_gbd_age_structure(h["ages"], h["ages_column"])
    inputs = H.build_health_inputs(reg, pop, ages, rates, causes=h["causes"], on_missing=h["on_missing"])
    return H.HealthModel(inputs, H.GEMM.burnett2018(inputs.causes, ages=inputs.ages))


def _check_labels(cfg: ChainConfig, emu, sm) -> None:
    lab = emu.labels
    if lab.input_kind != "scale" or tuple(lab.input_dims[:2]) not in (("source", "species"), ("species", "source")):
        raise ChainConfigError(f"{cfg.where('emulator', 'file')}: {cfg['emulator']['file']} takes inputs "
                               f"{lab.input_dims} ({lab.input_kind}); `diffmrio chain` needs a source-level emulator "
                               "of scaling factors [source, species] (e.g. from `diffmrio emulator fit`); gridded "
                               "emulators are supported by the Python API (diffmrio.chain.Chain with `allocation`)")
    coords = dict(zip(lab.input_dims, lab.input_coords, strict=True))
    if tuple(coords["species"]) != tuple(sm.species):
        key = "species" if cfg["satellite"]["species"] is not None else "species (not given: the default 7 species)"
        raise ChainConfigError(f"{cfg.where('satellite', key)}: the emulator {cfg['emulator']['file']} takes the "
                               f"species {list(coords['species'])} (in this order) but the satellite rows give "
                               f"{list(sm.species)}; list the emulator's species, in its order, in [satellite] species")
    if tuple(coords["source"]) != tuple(sm.sources):
        raise ChainConfigError(f"{cfg.where('emulator', 'file')}: the emulator's sources {list(coords['source'])} "
                               f"differ from the table's regions {list(sm.sources)} (one CTM source per region, in "
                               "the table's order); fit the emulator on a design whose regions are the table's")


def _receptor_fraction(cfg: ChainConfig, emu, frac):
    lab = emu.labels
    out = dict(zip(lab.output_dims, lab.output_coords, strict=True))
    if "receptor" not in out:
        raise ChainConfigError(f"{cfg.where('emulator', 'file')}: the emulator's outputs {lab.output_dims} have no "
                               "receptor dimension; `diffmrio chain` needs receptor-region outputs")
    have = [str(r) for r in frac["receptor"].values]
    lacking = [r for r in out["receptor"] if r not in have]
    if lacking:
        raise ChainConfigError(f"{cfg.where('ctm', 'base')}: receptor_fraction lacks the emulator's receptor(s) "
                               f"{lacking} (it has {have}); give a fraction map for every receptor of the emulator")
    return frac.sel(receptor=list(out["receptor"]))


def _base_conc(cfg: ChainConfig, emu, conc):
    comps = list(emu.labels.output_coords[0])
    have = [str(c) for c in conc["component"].values]
    lacking = [c for c in comps if c not in have]
    if lacking:
        raise ChainConfigError(f"{cfg.where('ctm', 'base')}: `conc` lacks the emulator's component(s) {lacking} "
                               f"(it has {have}); write the base case of every component the emulator predicts")
    return conc.sel(component=comps)


def build_chain(cfg: ChainConfig):
    """The [`Chain`][diffmrio.chain.Chain] a configuration describes (and the table it read)."""
    import jax.numpy as jnp

    import surrogate as sg

    from ..chain import Chain, Downscaler
    from .data import read_table

    t = cfg["table"]
    mrio = read_table(t["path"], t["format"], extensions=t["extensions"])
    log.info("read %s: %d regions x %d sectors", t["path"], mrio.n_regions, mrio.n_sectors)
    sm = _source_map(cfg, mrio)
    emu = sg.load(cfg["emulator"]["file"])
    _check_labels(cfg, emu, sm)
    conc, frac = _ctm_base(cfg)
    frac = _receptor_fraction(cfg, emu, frac)
    conc = _base_conc(cfg, emu, conc)
    health = _health(cfg, conc.isel(component=0, drop=True), mrio)
    ref = cfg["emulator"]["reference"]
    if ref == "table":  # the emulator's factors scale the table's own emissions (as diffmrio.demo.base_emissions)
        probe = Chain(mrio, sm, None, jnp.ones((len(sm.species), len(sm.sources), len(sm.levels))), None)
        E_ref = probe.emissions(probe.base_inputs())
    else:
        E_ref = _reference_emissions(cfg, ref, sm)
    down = Downscaler(jnp.asarray(conc.values), jnp.asarray(frac.values))
    return Chain(mrio, sm, emu, E_ref, health, downscaler=down), mrio


def _reference_emissions(cfg: ChainConfig, path: Path, sm):
    import jax.numpy as jnp

    from .._io import load_netcdf

    ds = load_netcdf(path)
    if "emissions" not in ds or set(ds["emissions"].dims) != {"species", "source", "level"}:
        raise ChainConfigError(f"{cfg.where('emulator', 'reference')}: {path} needs a variable `emissions` with dims "
                               "(species, source, level): the emissions the emulator's factors scale")
    e = ds["emissions"].transpose("species", "source", "level")
    try:
        e = e.sel(species=list(sm.species), source=list(sm.sources), level=list(sm.levels))
    except KeyError as err:
        raise ChainConfigError(f"{cfg.where('emulator', 'reference')}: {path} lacks labels {err}; it needs species "
                               f"{list(sm.species)}, sources {list(sm.sources)}, levels {list(sm.levels)}") from None
    return jnp.asarray(e.values)


# ---------------------------------------------------------------------------------------------- the analyses
def analyse(cfg: ChainConfig, chain, *, progress: bool = False):
    """Sensitivity, attribution by three methods and Monte Carlo for a built chain; **returns** the output
    Dataset (every variable with `units`)."""
    import jax

    from ..chain import UncertaintySpec, attribute, monte_carlo, sensitivity

    a = cfg["analysis"]
    target, receptor = a["target"], a["receptor"] or None
    inp = chain.base_inputs()
    out = chain(inp)
    sens = sensitivity(chain, inp, wrt="final_demand", target=target, receptor=receptor)
    attr = {m: attribute(chain, inp, by=a["attribution_by"], method=m, target=target, n_nodes=a["n_nodes"],
                         n_intervals=a["n_intervals"]) for m in METHODS}
    spec = UncertaintySpec.default(chain, baseline_cv=a["baseline_cv"], mrio_cv=a["mrio_cv"],
                                   species_cv=a["species_cv"], within_envelope=a["within_envelope"])
    mc = monte_carlo(chain, spec, a["n_draws"], key=jax.random.key(a["seed"]), by=a["attribution_by"],
                     progress=progress)
    return _to_dataset(cfg, chain, out, sens, attr, mc)


def _to_dataset(cfg, chain, out, sens, attr, mc):
    """The library's results -> the command's labelled output. The only place that knows the layout of the
    library's outputs (so a change there, e.g. summaries on a `quantile` dim, is absorbed here)."""
    import xarray as xr

    a = cfg["analysis"]
    money = cfg["table"]["money_unit"]
    tunit = "deaths yr-1" if a["target"] == "deaths" else "ug m-3"
    hi = chain.health.inputs
    Y = np.asarray(chain.mrio.Y).reshape(sens.shape)
    g = np.asarray(sens.values, dtype=np.float64)
    # per product: d target / d (final demand of the product), in the proportions it is bought now
    fd = Y.sum(axis=(2, 3))
    by_product = np.where(fd != 0, (g * Y).sum(axis=(2, 3)) / np.where(fd != 0, fd, 1.0), g.mean(axis=(2, 3)))
    deaths = np.asarray(out.deaths).sum(axis=1).T  # (health region, cause)
    # health regions are `receptor` (their own labels and order), table regions `region`/`fd_region`
    ds = xr.Dataset(
        {
            "deaths": (("receptor", "cause"), deaths, {"units": "deaths yr-1", "long_name": "deaths attributable "
                       "to PM2.5 in the base case, by health region"}),
            "pwpm": (("receptor",), np.asarray(out.pwpm), {"units": "ug m-3",
                     "long_name": "population-weighted PM2.5 by health region"}),
            "sensitivity": (sens.dims, g, {"units": f"{tunit} per {money}", "long_name": f"d {a['target']} / d final "
                            "demand Y[region, sector, fd_region, category]", "receptor": a["receptor"] or "all"}),
            "sensitivity_by_product": (("region", "sector"), by_product, {
                "units": f"{tunit} per {money}", "long_name": f"d {a['target']} / d final demand of the product of "
                "each region-sector, bought in today's proportions (sum_j g_ij Y_ij / sum_j Y_ij; the plain mean over buyers "
                "for products without final demand)"}),
        },
        coords={**{d: sens[d].values for d in sens.dims}, "cause": list(hi.causes), "receptor": list(hi.regions)},
    )  # fmt: skip
    A = xr.concat([attr[m] for m in METHODS], dim=xr.DataArray(list(METHODS), dims="attribution_method", name="attribution_method"))
    ds["attribution"] = A.rename(group="group", receptor="receptor").drop_attrs().assign_attrs(
        units=tunit, long_name=f"{a['target']} per receptor region attributed to final-demand groups "
        f"({a['attribution_by']}) by three methods", grouping=a["attribution_by"])
    ds["attribution"].attrs["path_quadrature_gap"] = float(attr["path"].attrs.get("quadrature_gap", np.nan))
    q = [0.025, 0.975]
    for name, v, unit in (("total_deaths", mc["total_deaths"], "deaths yr-1"),
                          ("deaths_by_region", mc["deaths"].sum("cause").rename(region="receptor"), "deaths yr-1"),
                          ("pwpm", mc["pwpm"].rename(region="receptor"), "ug m-3"),
                          ("attribution", mc["attribution"] if "attribution" in mc else None, "deaths yr-1")):
        if v is None:
            continue
        ds[f"mc_{name}_mean"] = v.mean("draw").assign_attrs(units=unit, long_name=f"Monte Carlo mean of {name}")
        ds[f"mc_{name}_interval"] = v.quantile(q, dim="draw").assign_attrs(
            units=unit, long_name=f"Monte Carlo 95% interval of {name} (2.5 and 97.5 percentiles)")
    ds["quantile"].attrs["units"] = "1"
    ds.attrs.update({
        "title": "diffmrio chain: sensitivity, attribution and Monte Carlo",
        "config": str(cfg.path), "table": str(cfg["table"]["path"]), "emulator": str(cfg["emulator"]["file"]),
        "target": a["target"], "receptor": a["receptor"] or "all", "n_draws": int(mc.sizes["draw"]),
        "seed": int(a["seed"]), "monte_carlo_attribution": f"zero-out by {a['attribution_by']}",
        "fraction_outside_envelope": float(mc.attrs.get("fraction_outside_envelope", np.nan)),
    })  # fmt: skip
    if "species_factor_bounds" in mc.attrs:
        ds.attrs["species_factor_bounds"] = mc.attrs["species_factor_bounds"]
    for name in ds.variables:
        if name in ds.dims and "units" not in ds[name].attrs and ds[name].dtype.kind in "iuf":
            ds[name].attrs["units"] = "1"
    return ds


def report(ds, cfg: ChainConfig) -> str:
    """A short markdown report of the output Dataset."""
    a = cfg["analysis"]
    unit = ds["sensitivity"].attrs["units"]
    tot = float(ds["deaths"].sum())
    lo, hi = (float(v) for v in ds["mc_total_deaths_interval"].values)
    lines = [
        "# diffmrio chain report", "",
        f"Configuration `{cfg.path}`; table `{cfg['table']['path']}`; emulator `{cfg['emulator']['file']}`.", "",
        f"Deaths attributable to PM2.5 in the base case: **{tot:,.1f}** per year; Monte Carlo mean "
        f"{float(ds['mc_total_deaths_mean']):,.1f}, 95% interval [{lo:,.1f}, {hi:,.1f}] ({ds.attrs['n_draws']} "
        f"draws, seed {ds.attrs['seed']}; {100 * ds.attrs['fraction_outside_envelope']:.1f}% of the draws put the "
        "emulator outside its training envelope).", "",
        *([f"The inventory factors are drawn from lognormals truncated to the emulator's training envelope "
           f"({ds.attrs['species_factor_bounds']}), whose means lie below one, and deaths are concave in "
           "concentration: both pull the Monte Carlo mean below the base case.", ""]
          if "species_factor_bounds" in ds.attrs else []),
        f"## Sensitivity ranking (top {a['top']})", "",
        f"d {a['target']} (receptor: {ds.attrs['receptor']}) per unit of final demand for each region-sector's "
        f"product, bought in today's proportions ({unit}).", "",
        "| rank | region | sector | sensitivity |", "|---:|---|---|---:|",
    ]  # fmt: skip
    s = ds["sensitivity_by_product"].stack(k=("region", "sector"))
    order = np.argsort(-s.values)[: a["top"]]
    for rank, i in enumerate(order, 1):
        r, sec = s["k"].values[i]
        lines.append(f"| {rank} | {r} | {sec} | {float(s.values[i]):.4g} |")
    A = ds["attribution"].sum("receptor")
    lines += ["", f"## Attribution by {a['attribution_by']} ({ds['attribution'].attrs['units']}, all receptors)", "",
              "First-order (adjoint-weighted), path-integrated (Aumann-Shapley) and zero-out, and the Monte Carlo mean "
              "and 95% interval of the zero-out attribution.", "",
              "| group | first-order | path | zero-out | MC mean | MC 2.5% | MC 97.5% |",
              "|---|---:|---:|---:|---:|---:|---:|"]  # fmt: skip
    for gname in A["group"].values:
        row = [float(A.sel(attribution_method=m, group=gname)) for m in METHODS]
        mean = float(ds["mc_attribution_mean"].sel(group=gname))
        qlo, qhi = (float(v) for v in ds["mc_attribution_interval"].sel(group=gname).values)
        lines.append(f"| {gname} | " + " | ".join(f"{v:,.2f}" for v in [*row, mean, qlo, qhi]) + " |")
    lines += ["", f"The three methods agree only where the chain is linear in final demand; the path integral adds "
              f"up to J(Y) - J(0) (relative quadrature correction {ds['attribution'].attrs['path_quadrature_gap']:.2g})."
              " All numbers are in the netCDF file next to this report.", ""]
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------------ command
def register(sub, common: argparse.ArgumentParser) -> None:
    """Add `diffmrio chain CONFIG.toml` to the `diffmrio` subparsers."""
    p = sub.add_parser("chain", parents=[common], help="table + emulator + health -> sensitivities, attribution, "
                       "Monte Carlo (netCDF + report)",
                       description="Run the chain a TOML configuration describes (docs/cli.md): sensitivity of "
                       "deaths to final demand, attribution by three methods, a Monte Carlo interval; written as "
                       "netCDF plus a markdown report (both refused if they exist).")  # fmt: skip
    p.add_argument("config", type=Path, help="the TOML configuration")
    p.add_argument("--out", type=Path, default=None, help="output netCDF (default: [output] netcdf)")
    p.add_argument("--report", type=Path, default=None, help="markdown report (default: [output] report)")
    p.set_defaults(func=_cmd_chain)


def run_config(config: str | Path, *, out: Path | None = None, report_path: Path | None = None,
               progress: bool = False) -> tuple[Path, Path]:
    """Everything `diffmrio chain` does; **returns** the paths of the netCDF file and the report."""
    from .._io import write_netcdf_atomic, write_text_atomic
    from .data import _netcdf_safe

    cfg = read_config(config)
    nc = Path(out) if out is not None else cfg["output"]["netcdf"]
    md = Path(report_path) if report_path is not None else cfg["output"]["report"]
    for p, flag in ((nc, "--out / [output] netcdf"), (md, "--report / [output] report")):
        if p.exists():
            raise FileExistsError(f"{p} exists; choose another {flag} or remove it first (nothing was overwritten)")
        if not p.parent.is_dir():
            raise FileNotFoundError(f"{p.parent}: no such folder for {flag}; create it first")
    chain, _ = build_chain(cfg)
    ds = analyse(cfg, chain, progress=progress)
    text = report(ds, cfg)  # before either file is written: a failure here must not leave the netCDF alone
    write_netcdf_atomic(_netcdf_safe(ds), nc)
    write_text_atomic(md, text)
    return nc, md


def _cmd_chain(args) -> int:
    from ctm_interface._progress import bars_allowed

    nc, md = run_config(args.config, out=args.out, report_path=args.report, progress=bars_allowed())
    log.info("wrote %s and %s", nc, md)
    print(nc)
    print(md)
    return 0
