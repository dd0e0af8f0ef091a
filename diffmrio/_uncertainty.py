r"""Monte Carlo uncertainty through the whole chain (SCIENCE.md section 6).

Sampled per draw:

- emission inventories: one mean-one lognormal factor per CTM species (coefficient of variation
  `species_cv`; the EXPORT study quotes MEIC uncertainties of 12% SO2, 31% NOx, 68% NMVOC and 107% primary
  PM2.5);
- concentration-response parameters: `crf_sampler(key)` (GEMM: theta ~ Normal(theta, SE) with one standard
  normal per cause; IER: whole parameter draws from the draw table);
- baseline mortality: a mean-one lognormal factor per cause (`baseline_cv`);
- optionally the MRIO coefficients: $A \circ \epsilon$ with mean-one lognormal $\epsilon$ (`mrio_cv`);
- optionally the emulator: one member of a deep ensemble per draw (`sample_member`), so that emulator
  error is part of the interval.

[`monte_carlo`][diffmrio.monte_carlo] evaluates the chain for each draw with the engine of
`diffmrio._montecarlo` (vmap, chunks, sharding over devices, resumable) and returns draws and summaries.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import xarray as xr

from ._attribution import group_masks
from ._chain import Chain, ChainInputs
from ._montecarlo import lognormal_factor, run_draws, summarise

#: Coefficients of variation of emission inventories per CTM species. SO2, NOx, VOC and primary PM2.5
#: (applied to BC, OC and other primary PM) are the MEIC figures quoted by the EXPORT study; NH3 has no
#: figure there and gets a round 50% (set your own).
DEFAULT_SPECIES_CV = {"SO2": 0.12, "NOx": 0.31, "NH3": 0.50, "VOC": 0.68, "BC": 1.07, "OC": 1.07, "PM_other": 1.07}


class UncertaintySpec(eqx.Module):
    """What a Monte Carlo draw perturbs (see the module docstring).

    **Fields:** `species_cv[species]`, `baseline_cv` (scalar), `mrio_cv` (scalar, 0 = off),
    `crf_sampler` (a callable `key -> crf` or `None` for fixed CRF parameters; static),
    `sample_member` (static bool).
    """

    species_cv: jax.Array
    baseline_cv: float
    mrio_cv: float
    crf_sampler: Callable | None = None
    sample_member: bool = eqx.field(static=True, default=True)

    @classmethod
    def default(cls, chain: Chain, *, baseline_cv: float = 0.1, mrio_cv: float = 0.0, species_cv=None,
                sample_crf: bool = True, sample_member: bool = True) -> UncertaintySpec:
        """Defaults: the inventory CVs above, 10% on baseline mortality, no MRIO perturbation, the CRF's
        own `sample` (GEMM/IER draws) and one ensemble member per draw when the emulator is an ensemble."""
        cv = dict(DEFAULT_SPECIES_CV, **(species_cv or {}))
        missing = [s for s in chain.source_map.species if s not in cv]
        if missing:
            raise ValueError(f"no coefficient of variation for CTM species {missing}; pass species_cv={{...}}")
        crf = chain.health.crf
        sampler = None
        if sample_crf:
            if not hasattr(crf, "sample"):
                raise ValueError(f"{type(crf).__name__} has no `sample`; pass sample_crf=False or a crf_sampler")
            sampler = _CRFSampler(crf)
        return cls(jnp.asarray([cv[s] for s in chain.source_map.species]), float(baseline_cv), float(mrio_cv),
                   sampler, bool(sample_member))


class _CRFSampler(eqx.Module):
    source: eqx.Module

    def __call__(self, key):
        return self.source.sample(key=key)


def sample_inputs(chain: Chain, spec: UncertaintySpec, base: ChainInputs, key) -> ChainInputs:
    """One Monte Carlo draw of the chain's inputs."""
    k_sp, k_crf, k_bl, k_a, k_m = jax.random.split(key, 5)
    inp = eqx.tree_at(lambda i: i.species_factor, base, base.species_factor * lognormal_factor(k_sp, spec.species_cv))
    n_c = base.baseline_factor.shape[0]
    bl = lognormal_factor(k_bl, jnp.full((n_c,), spec.baseline_cv))
    inp = eqx.tree_at(lambda i: i.baseline_factor, inp, base.baseline_factor * bl)
    if spec.crf_sampler is not None:
        inp = eqx.tree_at(lambda i: i.crf, inp, spec.crf_sampler(k_crf))
    if spec.mrio_cv > 0:
        inp = eqx.tree_at(lambda i: i.A, inp, base.A * lognormal_factor(k_a, spec.mrio_cv, base.A.shape))
    if spec.sample_member and base.member_weights is not None:
        k = base.member_weights.shape[0]
        onehot = jax.nn.one_hot(jax.random.randint(k_m, (), 0, k), k, dtype=base.member_weights.dtype)
        inp = eqx.tree_at(lambda i: i.member_weights, inp, onehot)
    return inp


def monte_carlo(
    chain: Chain,
    spec: UncertaintySpec | None = None,
    n_draws: int = 1000,
    *,
    key,
    attribution_by: str | None = "consumer",
    chunk_size: int | str = "auto",
    checkpoint_dir: str | Path | None = None,
    devices=None,
    progress: bool = True,
) -> xr.Dataset:
    """Monte Carlo uncertainty of deaths (and their zero-out attribution) through the chain.

    **Arguments:**

    - `chain`: a [`Chain`][diffmrio.Chain]; `spec`: an [`UncertaintySpec`][diffmrio.UncertaintySpec]
      (default `UncertaintySpec.default(chain)`).
    - `n_draws`, `key` (keyword-only PRNG key): draw i uses `jax.random.split(key, n_draws)[i]`, so the result
      is the same for any chunking, device count or resumption.
    - `attribution_by`: also attribute deaths per draw by zero-out to `"consumer"`, `"final_producer"`,
      `"sector"` or `"foreign"` groups (`None`: skip).
    - `chunk_size`, `checkpoint_dir`, `devices`, `progress`: see `diffmrio._montecarlo.run_draws`.

    Emulator inputs outside the training envelope are not extrapolated silently: each draw carries an
    `in_envelope` flag and `attrs["fraction_outside_envelope"]` reports their share.

    **Returns:** an `xarray.Dataset` with the draws (`deaths[draw, cause, region]`,
    `total_deaths[draw]`, `pwpm[draw, region]`, `attribution[draw, group]`) and their summaries
    (`*_summary` with a `statistic` dimension: mean, p2.5, p97.5).
    """
    spec = UncertaintySpec.default(chain) if spec is None else spec
    emu = chain.emulator
    if hasattr(emu, "envelope"):
        # draws are flagged per draw (`in_envelope`) instead of warning once per draw inside the loop
        from surrogate import with_envelope_policy

        chain = eqx.tree_at(lambda c: c.emulator, chain, with_envelope_policy(emu, "ignore"))
    base = chain.base_inputs()
    masks = None
    labels = None
    if attribution_by is not None:
        masks, labels = group_masks(chain, attribution_by)
        masks = jnp.asarray(masks)

    def draw(k):
        inp = sample_inputs(chain, spec, base, k)
        out = chain(inp)
        res = {"deaths": out.deaths.sum(axis=1), "pwpm": out.pwpm}
        if hasattr(chain.emulator, "in_envelope"):
            res["in_envelope"] = chain.emulator.in_envelope(chain.emulator_input(out.emissions))
        if masks is not None:
            tot = out.deaths.sum()

            def without(mask):
                return chain.target(eqx.tree_at(lambda i: i.Y, inp, inp.Y * (1.0 - mask)), "deaths")

            res["attribution"] = tot - jax.lax.map(without, masks)
        return res

    # what a checkpoint folder must match to be resumed (the draw function's closure is fingerprinted too)
    provenance = {"chain": chain, "spec": spec, "attribution_by": attribution_by, "groups": labels}
    arrays = run_draws(draw, n_draws, key=key, chunk_size=chunk_size, devices=devices,
                       checkpoint_dir=checkpoint_dir, progress=progress, name="monte carlo", provenance=provenance)
    hi = chain.health.inputs
    ds = xr.Dataset(
        {
            "deaths": (("draw", "cause", "region"), arrays["deaths"]),
            "pwpm": (("draw", "region"), arrays["pwpm"]),
        },
        coords={"draw": np.arange(n_draws), "cause": list(hi.causes), "region": list(hi.regions)},
        attrs={"n_draws": n_draws, "units_deaths": "deaths per year", "units_pwpm": "ug m-3"},
    )
    ds["total_deaths"] = ds.deaths.sum(("cause", "region"))
    if "in_envelope" in arrays:
        ds["in_envelope"] = ("draw", arrays["in_envelope"].astype(bool))
        ds.attrs["fraction_outside_envelope"] = float(1.0 - arrays["in_envelope"].mean())
    if masks is not None:
        ds["attribution"] = (("draw", "group"), arrays["attribution"])
        ds = ds.assign_coords(group=labels)
        ds.attrs["attribution"] = f"zero-out by {attribution_by}"
    for v in list(ds.data_vars):
        if v != "in_envelope":
            ds[f"{v}_summary"] = summarise(ds[v])
    return ds
