r"""What one Monte Carlo draw of the chain perturbs and how it is sampled (docs/science.md, section 6).

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

[`UncertaintySpec`][diffmrio.chain.UncertaintySpec] says which of these a draw samples and how widely, and
[`sample_inputs`][diffmrio.chain.sample_inputs] draws them. A leaf of the chain package: the fast draws
(`_fastdraw`) and [`monte_carlo`][diffmrio.chain.monte_carlo] (`_uncertainty`) import it.
"""

from __future__ import annotations

from collections.abc import Callable

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.special import ndtr, ndtri
from jaxtyping import Array, ArrayLike, Float, Real
from scipy.stats import norm

from ..health._crf import AbstractCRF
from ._chain import Chain, ChainInputs
from ._montecarlo import lognormal_factor

#: Coefficients of variation of emission inventories per CTM species. SO2, NOx, VOC and primary PM2.5
#: (applied to BC, OC and other primary PM) are the MEIC figures quoted by the EXPORT study; NH3 has no
#: figure there and gets a round 50% (set your own).
DEFAULT_SPECIES_CV = {"SO2": 0.12, "NOx": 0.31, "NH3": 0.50, "VOC": 0.68, "BC": 1.07, "OC": 1.07, "PM_other": 1.07}


class UncertaintySpec(eqx.Module):
    """What a Monte Carlo draw perturbs: emission inventories, CRF parameters, baseline mortality and optionally
    the MRIO coefficients and the ensemble member (see [`monte_carlo`][diffmrio.chain.monte_carlo]).

    **Fields:** `species_cv[species]`, `baseline_cv` (scalar), `mrio_cv` (scalar, 0 = off),
    `crf_sampler` (a callable `key -> crf` or `None` for fixed CRF parameters; static),
    `sample_member` (static bool), `species_bounds[species, 2]` (`None`: untruncated; else the inventory
    factors are drawn from the lognormal truncated to `[lower, upper]`, see
    [`envelope_species_bounds`][diffmrio.chain.envelope_species_bounds]).
    """

    species_cv: Float[Array, " species"]
    baseline_cv: float
    mrio_cv: float
    crf_sampler: Callable | None = None
    sample_member: bool = eqx.field(static=True, default=True)
    species_bounds: Float[Array, "species 2"] | None = None

    @classmethod
    def default(cls, chain: Chain, *, baseline_cv: float = 0.1, mrio_cv: float = 0.0, species_cv=None,
                sample_crf: bool = True, sample_member: bool = True,
                within_envelope: bool = False) -> UncertaintySpec:
        """Defaults: the inventory CVs above, 10% on baseline mortality, no MRIO perturbation, the CRF's
        own `sample` (GEMM/IER draws) and one ensemble member per draw when the emulator is an ensemble.

        `within_envelope=True` truncates the inventory factors to the emulator's training envelope
        ([`envelope_species_bounds`][diffmrio.chain.envelope_species_bounds]): every draw's emulator input then lies
        inside the design the emulator was trained on (when the economy is not perturbed, `mrio_cv=0`), at the
        price of sampling the inventory distribution conditioned on that range (its mean falls below one when
        the upper bound cuts the lognormal's right tail)."""
        cv = dict(DEFAULT_SPECIES_CV, **(species_cv or {}))
        missing = [s for s in chain.source_map.species if s not in cv]
        if missing:
            raise ValueError(f"no coefficient of variation for CTM species {missing}; pass species_cv={{...}}")
        crf = chain.health.crf
        sampler = None
        if sample_crf:
            if not crf.has_sample:
                raise ValueError(f"{type(crf).__name__} has no parameter distribution to `sample` from; pass "
                                 "sample_crf=False or a crf_sampler")
            sampler = _CRFSampler(crf)
        bounds = jnp.asarray(envelope_species_bounds(chain)) if within_envelope else None
        return cls(jnp.asarray([cv[s] for s in chain.source_map.species]), float(baseline_cv), float(mrio_cv),
                   sampler, bool(sample_member), bounds)


def envelope_species_bounds(chain: Chain) -> Float[np.ndarray, "species 2"]:
    """`[species, 2]`: the range of each CTM species' inventory factor (multiplying the base-case emissions of
    that species at every source) that keeps the emulator's input inside its training envelope.

    The emulator input is affine in each species' factor (scaling factors `E / E_ref`, or gridded emissions),
    and every input element depends on one species, so the range is exact: the intersection over that
    species' input elements of `lower <= x_const + f * slope <= upper`, and `f >= 0`.

    **Raises** `ValueError` if the emulator has no envelope or the base case itself lies outside it.
    """
    emu = chain.emulator
    if emu is None:
        raise ValueError("the chain has no emulator (Chain.emulator is None): within_envelope needs one")
    lo = np.asarray(emu.envelope.lower, dtype=np.float64)
    hi = np.asarray(emu.envelope.upper, dtype=np.float64)
    E0 = chain.emissions(chain.base_inputs())
    x_const = np.asarray(chain.emulator_input(jnp.zeros_like(E0)), dtype=np.float64)
    species = chain.source_map.species
    out = np.empty((len(species), 2))
    for k, name in enumerate(species):
        Ek = E0 * (jnp.arange(len(species)) == k)[:, None, None]
        slope = np.asarray(chain.emulator_input(Ek), dtype=np.float64) - x_const
        with np.errstate(divide="ignore", invalid="ignore"):
            a = np.where(slope != 0, (lo - x_const) / slope, -np.inf)
            b = np.where(slope != 0, (hi - x_const) / slope, np.inf)
        lower, upper = np.where(slope < 0, b, a), np.where(slope < 0, a, b)
        out[k] = max(0.0, float(np.max(lower))), float(np.min(upper))
        if not out[k, 0] <= 1.0 <= out[k, 1]:
            raise ValueError(
                f"the base case of species {name!r} lies outside the emulator's training envelope (its factor "
                f"must lie in [{out[k, 0]:.3g}, {out[k, 1]:.3g}]); retrain on a design covering the base case"
            )
    return out


def truncated_lognormal_factor(
    key, cv: Real[ArrayLike, "*#shape"], lower: Real[ArrayLike, "*#shape"], upper: Real[ArrayLike, "*#shape"]
) -> Float[Array, "*#shape"]:
    r"""Mean-one lognormal factors (coefficient of variation `cv`, as `lognormal_factor`) conditioned on
    `lower <= f <= upper`, by inverse-CDF sampling: $f = \exp(\mu + \sigma \Phi^{-1}(u))$ with `u` uniform
    on $[\Phi(a), \Phi(b)]$, $a = (\ln l - \mu)/\sigma$, $b = (\ln u - \mu)/\sigma$. A zero `cv` gives 1."""
    cv, lower, upper = (jnp.asarray(v, dtype=jnp.float64) for v in (cv, lower, upper))
    shape = jnp.broadcast_shapes(cv.shape, lower.shape, upper.shape)
    sigma = jnp.sqrt(jnp.log1p(cv**2))
    mu = -0.5 * sigma**2
    ok = sigma > 0
    ss = jnp.where(ok, sigma, 1.0)
    pa = ndtr((jnp.log(lower) - mu) / ss)
    pb = ndtr((jnp.log(upper) - mu) / ss)
    u = jax.random.uniform(key, shape, dtype=jnp.float64)
    z = ndtri(pa + u * (pb - pa))
    return jnp.where(ok, jnp.clip(jnp.exp(mu + ss * z), lower, upper), 1.0)


def truncated_lognormal_mean(
    cv: Real[ArrayLike, "*#shape"], lower: Real[ArrayLike, "*#shape"], upper: Real[ArrayLike, "*#shape"]
) -> Float[np.ndarray, "*#shape"]:
    r"""Mean of the factors `truncated_lognormal_factor` draws (host-side, numpy): for a mean-one lognormal with
    $\sigma^2 = \ln(1 + cv^2)$, $\mu = -\sigma^2/2$, truncated to $[l, u]$, the mean is
    $(\Phi(b - \sigma) - \Phi(a - \sigma)) / (\Phi(b) - \Phi(a))$ with $a = (\ln l - \mu)/\sigma$,
    $b = (\ln u - \mu)/\sigma$; 1 where `cv` is 0. Truncation to an envelope generally moves it off one."""
    cv, lower, upper = np.broadcast_arrays(*(np.asarray(v, dtype=np.float64) for v in (cv, lower, upper)))
    sigma = np.sqrt(np.log1p(cv**2))
    ss = np.where(sigma > 0, sigma, 1.0)
    mu = -0.5 * ss**2
    with np.errstate(divide="ignore"):
        a, b = (np.log(lower) - mu) / ss, (np.log(upper) - mu) / ss
    mean = (norm.cdf(b - ss) - norm.cdf(a - ss)) / (norm.cdf(b) - norm.cdf(a))
    return np.where(sigma > 0, mean, 1.0)


class _CRFSampler(eqx.Module):
    source: AbstractCRF

    def __call__(self, key):
        return self.source.sample(key=key)


def sample_inputs(chain: Chain, spec: UncertaintySpec, base: ChainInputs, key) -> ChainInputs:
    """One Monte Carlo draw of the chain's inputs."""
    k_sp, k_crf, k_bl, k_a, k_m = jax.random.split(key, 5)
    if spec.species_bounds is None:
        sf = lognormal_factor(k_sp, spec.species_cv)
    else:  # bounds on the total factor base * sf
        b = spec.species_bounds / base.species_factor[:, None]
        sf = truncated_lognormal_factor(k_sp, spec.species_cv, b[:, 0], b[:, 1])
    inp = eqx.tree_at(lambda i: i.species_factor, base, base.species_factor * sf)
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
