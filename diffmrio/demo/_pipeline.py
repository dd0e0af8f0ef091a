r"""The whole demo chain on the synthetic world: economy -> reference-CTM ensemble -> trained emulator ->
health, assembled into a [`Chain`][diffmrio.chain.Chain].

Steps (each labelled synthetic):

1. `demo_world()` with its geography (the reference CTM's demo domain);
2. base emissions per (CTM species, region, level) from the MRIO through the default
   [`SourceMap`][diffmrio.chain.SourceMap], allocated to the grid;
3. a Latin-hypercube ensemble of reference-CTM runs over 0-2x scaling factors for every (region, species)
   (plus the base case), and an independent held-out ensemble. The demo's Monte Carlo samples the inventory
   factors truncated to this box (`UncertaintySpec.default(chain, within_envelope=True)`), so that its draws
   stay inside the emulator's training envelope; the report states the share outside it;
4. a source-level emulator of the population-weighted PM2.5 components per receptor region (the pf-ERSM
   set-up: 42 region-species scaling factors in, 6 regions x 6 components out) trained on the ensemble
   (`surrogate.fit`) and scored on the held-out runs (`surrogate.evaluate`); the chain maps its regional
   outputs to the grid with a [`Downscaler`][diffmrio.chain.Downscaler] (the base-case CTM field scaled by each
   region's emulated change), so that relative risk is still applied per cell;
5. GEMM (Burnett et al. 2018, five causes, adults 25+) with synthetic baseline mortality rates and
   age structure on the population grid.

The trained emulator and the run sets are cached (`cache_dir`), keyed by the configuration, so the demo,
the experiments and the benchmarks share one training.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import time
import warnings
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import xarray as xr

import surrogate
from ctm_interface import latin_hypercube_design
from ctm_interface._regions import allocate_to_grid, region_kernel, spread_to_grid
from ctm_interface.reference import COMPONENTS, CTMGrid, ReferenceCTM, demo_domain

from .._io import load_netcdf, write_netcdf_atomic
from ..chain._chain import Chain, Downscaler, SourceMap
from ..datasets._demo import REGIONS, DemoWorld, demo_world
from ..health import GEMM, HealthInputs, HealthModel

# Synthetic baseline mortality (deaths per 100,000 per year) at age 25 and its growth per 5-year group, per
# cause: shaped like the age gradients of GBD rates for an East-Asian population, but not data.
_RATE_25 = {"IHD": 4.0, "STROKE": 5.0, "COPD": 1.0, "LC": 1.5, "LRI": 1.0}
_GROWTH = {"IHD": 1.62, "STROKE": 1.62, "COPD": 1.75, "LC": 1.45, "LRI": 1.6}
_LC_CAP = 350.0
_REGION_RATE = {"Capital": 0.8, "Harbor": 0.85, "Central": 1.1, "Basin": 1.15, "Northeast": 1.1, "Steppe": 1.2}
#: The demo's adult age groups (lower bounds of 5-year groups, 25 to 95), the ages of its GEMM.
ADULT_AGES = tuple(range(25, 100, 5))


def demo_health_inputs(domain, *, causes=("IHD", "STROKE", "COPD", "LC", "LRI"), ages=ADULT_AGES):
    """Synthetic health inputs on the demo domain: the gridded population, an age structure (share of the
    population in each adult 5-year group) and baseline rates per cause and age, 10-20% higher in the
    inland regions. **Returns:** a `diffmrio.health.HealthInputs` over the demo regions."""
    ages = tuple(int(a) for a in ages)
    # an ageing, East-Asian-like pyramid for ages 25+ (share of the whole population; the rest is under 25)
    a = np.asarray(ages, dtype=float)
    share = np.exp(-0.5 * ((a - 47.0) / 17.0) ** 2) * np.where(a >= 80, 0.55 ** ((a - 75) / 5), 1.0)
    age_fraction = 0.70 * share / share.sum()
    rates = np.array([[min(_RATE_25[c] * _GROWTH[c] ** ((x - 25) / 5), _LC_CAP if c == "LC" else np.inf)
                       for x in ages] for c in causes]) / 1e5
    frac = np.asarray(domain.region_fraction)
    mult = spread_to_grid(np.array([_REGION_RATE[r] for r in domain.regions]), frac)
    land = frac.sum(axis=0)
    mult = mult + (1.0 - land)  # sea cells: multiplier 1 (no population there anyway)
    rate = rates[:, :, None, None] * mult[None, None]
    return HealthInputs(np.asarray(domain.population), age_fraction, rate, causes=causes, ages=ages,
                        regions=domain.regions, region_fraction=frac)


#: The configurations of `demo_chain` that the demo, the experiments, the benchmarks and the tests share:
#: the full demo (48 x 36 grid) and the quick one (coarse grid, fewer runs and training steps).
DEMO_FULL = {"n_train": 150, "n_test": 50, "steps": 2000}
DEMO_QUICK = {"n_train": 60, "n_test": 20, "quick": True, "steps": 300}


def demo_config(quick: bool = False) -> dict:
    """A copy of `DEMO_QUICK` or `DEMO_FULL` (keyword arguments of [`demo_chain`][diffmrio.demo.demo_chain])."""
    return dict(DEMO_QUICK if quick else DEMO_FULL)


@dataclasses.dataclass
class DemoChain:
    """What [`demo_chain`][diffmrio.demo.demo_chain] builds: the `chain`, its parts and the evidence
    behind the emulator (`runs`, `test_runs`, held-out `scores`, `timings` in seconds)."""

    chain: Chain
    world: DemoWorld
    ctm: object
    runs: xr.Dataset
    test_runs: xr.Dataset
    scores: xr.Dataset
    timings: dict
    config: dict


def _config_key(cfg: dict) -> str:
    return hashlib.sha256(json.dumps(cfg, sort_keys=True).encode()).hexdigest()[:12]


def demo_ctm(quick: bool = False):
    """The reference CTM and demo domain used by the demo chain (`quick`: a 24 x 18 grid of 72 km and
    fewer simulated days, for tests)."""
    if quick:
        grid = CTMGrid(ncols=24, nrows=18, xcell=72000.0, ycell=72000.0)
        return ReferenceCTM.default(grid, n_days=6.0, dt=7200.0), demo_domain(seed=0, grid=grid)
    return ReferenceCTM.default(), demo_domain(seed=0)


def base_emissions(world: DemoWorld, source_map: SourceMap) -> jax.Array:
    """Emissions `[species, region, level]` (kt/yr) of the demo world's base year through `source_map`."""
    probe = Chain(world.mrio, source_map, None, jnp.ones((len(source_map.species), world.mrio.n_regions, 2)), None)
    return probe.emissions(probe.base_inputs())


def ctm_runs(ctm, domain, E_base, scale: xr.DataArray, *, progress: bool = True, batch_size: int | None = None) -> xr.Dataset:
    """Run the reference CTM for every row of a design `scale[run, source, species]` applied to the base
    emissions `E_base[species, source, level]`; **returns** a run set with `scale` and
    `conc[run, component, row, col]` (ug m-3)."""
    s = jnp.asarray(scale.transpose("run", "source", "species").values)  # (run, source, species)
    alloc = jnp.asarray(domain.allocation)  # (source, level, row, col)
    E_runs = allocate_to_grid(jnp.einsum("ros,sol->rsol", s, jnp.asarray(E_base)), alloc)
    kw = {} if batch_size is None else {"batch_size": batch_size}
    C = np.asarray(ctm.run_ensemble(E_runs, progress=progress, **kw))
    ny, nx = C.shape[-2:]
    ds = xr.Dataset(
        {"scale": scale, "conc": (("run", "component", "row", "col"), C)},
        coords={"component": list(COMPONENTS), "row": [str(i) for i in range(ny)], "col": [str(i) for i in range(nx)]},
    )
    ds["conc"].attrs["units"] = "ug m-3"
    ds["scale"].attrs["units"] = "1"
    # population-weighted annual means per receptor region (what the source-level emulator learns)
    pw = region_kernel(C, np.asarray(domain.region_fraction), np.asarray(domain.population), how="mean")
    pw = np.swapaxes(pw, -1, -2)  # [run, component, receptor] -> [run, receptor, component]
    ds["pm25"] = xr.DataArray(pw, dims=("run", "receptor", "component"),
                              coords={"receptor": list(domain.regions)}, attrs={"units": "ug m-3"})
    return ds


def demo_chain(
    *,
    n_train: int = 150,
    n_test: int = 50,
    quick: bool = False,
    emulator: str = "mlp",
    seed: int = 0,
    steps: int = 2000,
    cache_dir: str | Path | None = None,
    progress: bool = True,
) -> DemoChain:
    """Build (or load from `cache_dir`) the demo chain: world, CTM ensemble, trained emulator, health.

    **Arguments:** `n_train` Latin-hypercube runs (plus the base case) for training, `n_test` independent
    runs for validation; `quick`: coarse CTM grid for tests; `emulator`: `"mlp"`, `"polynomial"` or
    `"linear"`; `steps`: optimisation steps for the neural emulator; `cache_dir`: where runs and the
    trained emulator are cached.
    """

    cfg = {"n_train": n_train, "n_test": n_test, "quick": quick, "emulator": emulator, "seed": seed,
           "steps": steps, "version": 2}
    timings: dict = {}
    t0 = time.perf_counter()
    world = demo_world(seed=seed, geography=False)
    ctm, domain = demo_ctm(quick)
    world = _with_geo(world, domain)
    sm = SourceMap.for_mrio(world.mrio)
    E_base = base_emissions(world, sm)
    timings["world"] = time.perf_counter() - t0
    folder = Path(cache_dir) / f"demo_chain_{_config_key(cfg)}" if cache_dir is not None else None
    cached = _load_cache(folder, surrogate, emulator, seed)
    if cached is not None:
        runs, test_runs, emu = cached
        timings["ensemble"] = timings["training"] = 0.0
    else:
        t0 = time.perf_counter()
        design = latin_hypercube_design(n_train, REGIONS, sm.species, seed=seed, include_base=True)
        test_design = latin_hypercube_design(n_test, REGIONS, sm.species, seed=seed + 1000)
        runs = ctm_runs(ctm, domain, E_base, design, progress=progress)
        test_runs = ctm_runs(ctm, domain, E_base, test_design, progress=progress)
        timings["ensemble"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        labels = surrogate.EmulatorLabels.from_runs(runs, inputs="scale", outputs="pm25")
        model = _template(surrogate, emulator, labels, seed)
        method = surrogate.Adam(steps=steps) if emulator == "mlp" else None  # the others: closed form
        emu = surrogate.fit(model, runs, method, key=jax.random.key(seed), inputs="scale", outputs="pm25",
                            progress=progress)
        timings["training"] = time.perf_counter() - t0
        if folder is not None:
            folder.mkdir(parents=True, exist_ok=True)
            write_netcdf_atomic(runs, folder / "runs.nc")
            write_netcdf_atomic(test_runs, folder / "test_runs.nc")
            surrogate.save(folder / "emulator.eqx", emu, provenance={"ctm": "diffmrio reference CTM (synthetic)", **cfg})
    scores = surrogate.evaluate(emu, test_runs, inputs="scale", outputs="pm25")
    crf = GEMM.burnett2018(("IHD", "STROKE", "COPD", "LC", "LRI"), ages=ADULT_AGES)
    health = HealthModel(demo_health_inputs(domain), crf)
    base_run = int(np.argmax(np.asarray(runs["run_kind"].values == "base"))) if "run_kind" in runs.coords else 0
    down = Downscaler(jnp.asarray(runs.conc.isel(run=base_run).values), jnp.asarray(domain.region_fraction))
    chain = Chain(world.mrio, sm, emu, E_base, health, allocation=jnp.asarray(domain.allocation), downscaler=down)
    return DemoChain(chain, world, ctm, runs, test_runs, scores, timings, cfg)


def _load_cache(folder: Path | None, surrogate, emulator: str, seed: int):
    """(runs, test_runs, emulator) from a cache entry, or None when there is none; a corrupt entry (a file
    damaged on disk, an emulator from another version) is reported with a warning and rebuilt."""
    if folder is None or not (folder / "emulator.eqx").exists():
        return None
    try:
        fix = "the demo rebuilds its cache entry"
        runs = load_netcdf(folder / "runs.nc", fix=fix)
        test_runs = load_netcdf(folder / "test_runs.nc", fix=fix)
        labels = surrogate.EmulatorLabels.from_runs(runs, inputs="scale", outputs="pm25")
        emu = surrogate.load(folder / "emulator.eqx", _template(surrogate, emulator, labels, seed))
    except (ValueError, OSError) as err:  # NetCDFReadError is a ValueError
        warnings.warn(f"demo cache entry {folder} is unreadable and is rebuilt (minutes): {err}", stacklevel=3)
        return None
    return runs, test_runs, emu


def _with_geo(world, domain):
    import equinox as eqx

    return eqx.tree_at(lambda w: w.geography, world, domain, is_leaf=lambda x: x is None)


def _template(surrogate, kind: str, labels, seed: int):
    if kind == "mlp":
        return surrogate.MLPEmulator(labels, width=64, depth=2, key=jax.random.key(seed))
    if kind == "polynomial":
        return surrogate.PolynomialEmulator(labels)
    if kind == "linear":
        return surrogate.LinearEmulator(labels)
    raise ValueError(f"emulator must be 'mlp', 'polynomial' or 'linear', got {kind!r}")
