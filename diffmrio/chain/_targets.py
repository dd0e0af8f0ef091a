r"""Scalar targets of the chain for Monte Carlo draws and their attribution
([`monte_carlo`][diffmrio.chain.monte_carlo]'s `target=`).

A [`Target`][diffmrio.chain.Target] maps the chain's deaths `[cause, region]` and PM2.5 to one number:

- deaths: $J = \sum_{c,r} w_{c,r} D_{c,r}$ with 0/1 weights selecting causes and receptor regions (all of
  them: total deaths);
- population-weighted PM2.5 over a set of regions $S$: $J = \sum_{r \in S} \sum_g C_g p_g w_{rg} /
  \sum_{r \in S} P_r$ (all regions: the domain's population-weighted PM2.5);
- a user's function `fn(deaths, pwpm) -> scalar` of the deaths `[cause, region]` and the population-weighted
  PM2.5 per region `[region]` (arrays: it is traced inside `jit`), with the units it returns.

Build one with [`resolve_target`][diffmrio.chain.resolve_target] from `"deaths"`, `"pwpm"`,
`("deaths", {"region": "Capital"})`, `("pwpm", {"region": ["A", "B"]})`, `("deaths", {"cause": "IHD"})`, or a
`Target` (e.g. `Target.custom(fn, units=..., name=...)`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import equinox as eqx
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float

from ..health._exposure import DEATHS_UNITS as DEATHS_UNITS, PM_UNITS as PM_UNITS


class Target(eqx.Module):
    """A scalar function of the chain's health outputs (see the module docstring).

    **Fields:** `weights` (deaths: `[cause, region]`; pwpm: `[region]`; 0/1 selections), static `kind`
    (`"total_deaths"`, `"deaths"`, `"pwpm"` or `"custom"`), `name` (a readable label), `units`, and `fn`
    (`kind="custom"`: `fn(deaths[cause, region], pwpm[region]) -> scalar`).
    """

    weights: Float[Array, "cause region"] | Float[Array, " region"] | None
    kind: str = eqx.field(static=True)
    name: str = eqx.field(static=True)
    units: str = eqx.field(static=True)
    fn: Callable | None = eqx.field(static=True, default=None)

    def __check_init__(self):
        if self.kind not in ("total_deaths", "deaths", "pwpm", "custom"):
            raise ValueError(f"Target kind must be 'total_deaths', 'deaths', 'pwpm' or 'custom', got {self.kind!r}")
        if (self.kind == "custom") != (self.fn is not None):
            raise ValueError("a Target has a function `fn` exactly when its kind is 'custom'")

    @classmethod
    def custom(cls, fn: Callable, *, units: str, name: str = "custom target") -> Target:
        """A target `fn(deaths, pwpm) -> scalar`: `deaths[cause, region]` (deaths per year, summed over ages, causes
        and regions in the order of the health inputs) and `pwpm[region]` (population-weighted PM2.5, ug m-3; NaN
        where a region has no population). `fn` is traced inside `jit`: use `jax.numpy`, no Python branching on
        values. `units`: what `fn` returns (e.g. `"deaths yr-1"`)."""
        if not callable(fn):
            raise TypeError(f"Target.custom needs a callable fn(deaths, pwpm), got {type(fn).__name__}")
        return cls(None, "custom", str(name), str(units), fn)

    def of_arrays(
        self, deaths: Float[Array, "cause region"] | None, pwpm_num: Float[Array, " region"],
        pop: Float[Array, " region"],
    ) -> Float[Array, ""]:
        """The target from deaths `[cause, region]` (`None` for a `"pwpm"` target, which does not need them), the
        population-weighted sums $\\sum_g C_g p_g w_{rg}$ `[region]` and the population per region `[region]`."""
        if self.kind in ("total_deaths", "deaths"):
            return jnp.sum(self.weights * deaths)
        if self.kind == "pwpm":
            return jnp.sum(self.weights * pwpm_num) / jnp.sum(self.weights * pop)
        ok = pop > 0
        return self.fn(deaths, jnp.where(ok, pwpm_num / jnp.where(ok, pop, 1.0), jnp.nan))

    def of_kernel(
        self, kernel, pm: Float[Array, " cell"], crf, baseline_factor: Float[Array, " cause"],
        deaths: Float[Array, "cause region"] | None = None,
    ) -> Float[Array, ""]:
        """The target from PM2.5 at the kept cells of a `HealthKernel` (the Monte Carlo fast path), reusing
        `deaths[cause, region]` when they are already known; total deaths skip the per-region sum."""
        if self.kind == "total_deaths":
            return kernel.total(pm, crf, baseline_factor) if deaths is None else jnp.sum(deaths)
        if deaths is None and self.kind != "pwpm":
            deaths = kernel.deaths(pm, crf, baseline_factor)
        return self.of_arrays(deaths, pm @ kernel.pop_region, kernel.pop_total)

    def of_outputs(self, chain, out) -> Float[Array, ""]:
        """The target from the [`ChainOutputs`][diffmrio.chain.ChainOutputs] of `chain(inputs)` (the plain path)."""
        hi = chain.health.inputs
        pop = hi.to_regions(hi.population)
        num = jnp.where(jnp.isnan(out.pwpm), 0.0, out.pwpm) * pop
        return self.of_arrays(out.deaths.sum(axis=1), num, pop)


def _pick(labels: tuple, sel, dim: str) -> Float[np.ndarray, " label"]:
    """0/1 weights over `labels` for a label or a list of labels."""
    want = [sel] if isinstance(sel, (str, int)) else list(sel)
    missing = [w for w in want if w not in labels]
    if missing:
        raise ValueError(f"target selects {dim} {missing}, which are not in the health inputs' {dim}s {list(labels)}")
    return np.isin(np.asarray(labels, dtype=object), np.asarray(want, dtype=object)).astype(np.float64)


def resolve_target(chain, target) -> Target:
    """A [`Target`][diffmrio.chain.Target] from `"deaths"` (total), `"pwpm"` (domain population-weighted PM2.5),
    a pair `(quantity, {dim: label or [labels]})` selecting receptor `region`s (and, for deaths, `cause`s), or a
    `Target` (returned as is)."""
    if isinstance(target, Target):
        return target
    hi = chain.health.inputs
    if isinstance(target, str):
        quantity, sel = target, {}
    elif isinstance(target, tuple) and len(target) == 2 and isinstance(target[1], Mapping):
        quantity, sel = target
    elif callable(target):
        raise TypeError("a function target needs its units: pass `Target.custom(fn, units=..., name=...)`")
    else:
        raise TypeError(
            f"target must be 'deaths', 'pwpm', a pair such as ('deaths', {{'region': 'Capital'}}) or a Target, "
            f"got {target!r}"
        )
    allowed = {"deaths": ("region", "cause"), "pwpm": ("region",)}
    if quantity not in allowed:
        raise ValueError(f"target quantity must be 'deaths' or 'pwpm', got {quantity!r}")
    extra = [k for k in sel if k not in allowed[quantity]]
    if extra:
        raise ValueError(f"a {quantity!r} target selects by {allowed[quantity]}, not {extra}")
    w_r = _pick(hi.regions, sel["region"], "region") if "region" in sel else np.ones(len(hi.regions))
    where = ", ".join(f"{k}={v}" for k, v in sel.items())
    if quantity == "pwpm":
        name = "population-weighted PM2.5" + (f" ({where})" if where else "")
        return Target(jnp.asarray(w_r), "pwpm", name, PM_UNITS)
    w_c = _pick(hi.causes, sel["cause"], "cause") if "cause" in sel else np.ones(len(hi.causes))
    if not sel:
        return Target(jnp.ones((len(hi.causes), len(hi.regions))), "total_deaths", "total deaths", DEATHS_UNITS)
    return Target(jnp.asarray(np.outer(w_c, w_r)), "deaths", f"deaths ({where})", DEATHS_UNITS)
