r"""Monte Carlo uncertainty through the whole chain (docs/science.md, section 6).

What a draw samples (the [`UncertaintySpec`][diffmrio.chain.UncertaintySpec]) is in the leaf module
`diffmrio.chain._sampling`, which the fast draws import too.

[`monte_carlo`][diffmrio.chain.monte_carlo] evaluates the chain for each draw with the engine of
`diffmrio.chain._montecarlo` (vmap, chunks, sharding over devices, resumable) and returns draws and summaries.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import xarray as xr

from ._chain import Chain
from ._fastdraw import ChainDraw, Grouping, group_index
from ._montecarlo import run_draws, summarise
from ._sampling import (  # noqa: F401  (re-exported: their home before the sampling leaf module)
    DEFAULT_SPECIES_CV as DEFAULT_SPECIES_CV,
    UncertaintySpec as UncertaintySpec,
    _CRFSampler as _CRFSampler,
    envelope_species_bounds as envelope_species_bounds,
    sample_inputs as sample_inputs,
    truncated_lognormal_factor as truncated_lognormal_factor,
    truncated_lognormal_mean as truncated_lognormal_mean,
)
from ._targets import DEATHS_UNITS, PM_UNITS, resolve_target

_UNSET = object()


def monte_carlo(
    chain: Chain,
    spec: UncertaintySpec | None = None,
    n_draws: int = 1000,
    *,
    key,
    by: Grouping | None = "consumer",
    target="deaths",
    chunk_size: int | str | None = None,
    memory_budget: int | float | str | None = None,
    checkpoint_dir: str | Path | None = None,
    devices=None,
    progress: bool = True,
    attribution_by=_UNSET,
) -> xr.Dataset:
    """Monte Carlo uncertainty of deaths, population-weighted PM2.5 and a target (with its zero-out attribution)
    through the chain.

    **Arguments:**

    - `chain`: a [`Chain`][diffmrio.chain.Chain]; `spec`: an [`UncertaintySpec`][diffmrio.chain.UncertaintySpec]
      (default `UncertaintySpec.default(chain)`).
    - `n_draws`, `key` (keyword-only PRNG key): draw i uses `jax.random.split(key, n_draws)[i]`, so the result
      is the same for any chunking, device count or resumption.
    - `by`: also attribute the target per draw by zero-out, $J(Y) - J(Y - Y_g)$, to groups of final demand:
      `"consumer"`, `"final_producer"`, `"sector"`, `"region_sector"`, `"foreign"`, or a user's own grouping of
      the rows or columns of `Y` (an `xarray.DataArray` of labels over `(region, sector)` or `(fd_region,
      category)`, a mapping, a sequence of labels or a [`GroupIndex`][diffmrio.chain.GroupIndex]: see
      [`custom_group_index`][diffmrio.chain.custom_group_index]); `None` skips the attribution.
      (`attribution_by` is the old name of `by`.)
    - `target`: what is attributed and reported as `target[draw]`: `"deaths"` (total), `"pwpm"` (population-weighted
      PM2.5 over the domain), a selection such as `("deaths", {"region": "Capital"})`,
      `("deaths", {"cause": "IHD", "region": ["A", "B"]})` or `("pwpm", {"region": "Capital"})`, or a
      [`Target`][diffmrio.chain.Target] (e.g. `Target.custom(fn, units=...)` for any function of the deaths per
      cause and region and the population-weighted PM2.5 per region).
    - `chunk_size`, `memory_budget`: draws per chunk. By default the chunk is the largest whose compiled program
      (XLA's memory analysis: the draw's arrays, the keys, outputs and temporaries) fits in 30% of the memory
      available on each device (rounded down to a power of two bytes); `memory_budget=b` fits it in `b` bytes instead (a `ValueError` gives the bytes
      one draw needs when `b` is smaller); an integer `chunk_size` alone fixes it (with a budget, it is the most
      draws per chunk). The results do not depend on the chunk size, and a checkpoint folder resumes under any.
      Details: [`run_draws`][diffmrio.chain.run_draws]; [`plan_chunks`][diffmrio.chain.plan_chunks] gives
      the chunk size of a call without running it.
    - `checkpoint_dir`, `devices`, `progress`: see [`run_draws`][diffmrio.chain.run_draws].

    Emulator inputs outside the training envelope are not extrapolated silently: each draw carries an
    `in_envelope` flag and `attrs["fraction_outside_envelope"]` reports their share (zero with
    `UncertaintySpec.default(chain, within_envelope=True)` and an unperturbed economy).

    Each draw is a [`ChainDraw`][diffmrio.chain.ChainDraw]: work that does not change between draws (the Leontief
    solve and the emissions of the base case and of every zero-out group when `mrio_cv = 0`; population x
    age share x baseline rate per cell) is done once, groups are index arrays, and each shared
    relative-risk curve is evaluated once per populated cell. The compiled batch is reused by later calls
    with the same shapes.

    **Returns:** an `xarray.Dataset` with the draws (`deaths[draw, cause, region]`, `total_deaths[draw]`,
    `pwpm[draw, region]`, `target[draw]`, `attribution[draw, group]`, `in_envelope[draw]`), every variable with
    `units`, and their summaries by [`summarise`][diffmrio.chain.summarise]: `<name>_mean`, `<name>_std` and
    `<name>_quantile` on xarray's `quantile` dimension, so `ds.attribution_quantile.sel(quantile=0.05)` is the
    5th percentile of each group's share.
    """
    if attribution_by is not _UNSET:
        if by != "consumer":
            raise TypeError("give `by` (the grouping) or its old name `attribution_by`, not both")
        by = attribution_by
    spec = UncertaintySpec.default(chain) if spec is None else spec
    # draws are flagged per draw (`in_envelope`) instead of warning once per draw inside the loop
    chain = chain.with_envelope_policy("ignore")
    groups = None if by is None else group_index(chain, by)
    tgt = resolve_target(chain, target)
    draw = ChainDraw.build(chain, spec, groups, tgt)
    # what a checkpoint folder must match to be resumed (the draw Module is fingerprinted too)
    by_name = by if by is None or isinstance(by, str) else "custom"
    provenance = {"chain": chain, "spec": spec, "grouping": by_name, "groups": groups, "target": tgt.name}
    arrays = run_draws(draw, n_draws, key=key, chunk_size=chunk_size, memory_budget=memory_budget, devices=devices,
                       checkpoint_dir=checkpoint_dir, progress=progress, name="monte carlo", provenance=provenance)
    hi = chain.health.inputs
    deaths_attrs = {"units": DEATHS_UNITS, "long_name": "PM2.5-attributable deaths"}
    ds = xr.Dataset(
        {
            "deaths": (("draw", "cause", "region"), arrays["deaths"], deaths_attrs),
            "pwpm": (("draw", "region"), arrays["pwpm"], {"units": PM_UNITS, "long_name": "population-weighted PM2.5"}),
            "target": ("draw", arrays["target"], {"units": tgt.units, "long_name": tgt.name}),
        },
        coords={"draw": np.arange(n_draws), "cause": list(hi.causes), "region": list(hi.regions)},
        attrs={"n_draws": n_draws, "target": tgt.name},
    )
    ds["total_deaths"] = ds.deaths.sum(("cause", "region")).assign_attrs(
        units=DEATHS_UNITS, long_name="PM2.5-attributable deaths, all causes and regions")
    if "in_envelope" in arrays:
        ds["in_envelope"] = ("draw", arrays["in_envelope"].astype(bool),
                             {"units": "1", "long_name": "emulator input inside the training envelope"})
        ds.attrs["fraction_outside_envelope"] = float(1.0 - arrays["in_envelope"].mean())
    if spec.species_bounds is not None:
        b = np.asarray(spec.species_bounds)
        ds.attrs["species_factor_bounds"] = "; ".join(
            f"{name} [{lo_:.3g}, {hi_:.3g}]" for name, (lo_, hi_) in zip(chain.source_map.species, b))
        ds.attrs["species_sampling"] = "lognormal truncated to the emulator's training envelope"
    if groups is not None:
        ds["attribution"] = (("draw", "group"), arrays["attribution"],
                             {"units": tgt.units, "long_name": f"zero-out attribution of {tgt.name}",
                              "description": "J(Y) - J(Y - Y_g): the target minus its value without group g"})
        ds = ds.assign_coords(group=list(groups.labels))
        ds.attrs["attribution"] = f"zero-out of {tgt.name} by {by_name}"
    return xr.merge([ds, summarise(ds)], combine_attrs="override")
