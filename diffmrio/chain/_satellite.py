r"""Deaths as a satellite account of the MRIO: the chain's first-order (adjoint-weighted) deaths per
region-sector and per final-demand column, and the table with that row added, so that every MRIO account
(consumer, final-producer and bilateral views, value-chain decompositions) applies to deaths."""

from __future__ import annotations

import equinox as eqx
import jax
import numpy as np
from jaxtyping import Float

from .._mrio import MRIO
from ._chain import Chain, ChainInputs


def deaths_satellite(
    chain: Chain, inputs: ChainInputs | None = None
) -> tuple[Float[np.ndarray, " n"], Float[np.ndarray, " fd"]]:
    r"""First-order deaths caused by each region-sector's and each final-demand column's direct emissions.

    $$F^{D}_{(r,i)} = \sum_p S_{p,(r,i)}\,\frac{\partial J}{\partial S_{p,(r,i)}}, \qquad
      F^{D}_{Y,k} = \sum_p S_{Y,p,k}\,\frac{\partial J}{\partial S_{Y,p,k}}$$

    with $J$ the chain's total deaths (one reverse pass). $F^D_{(r,i)}$ counts the deaths caused anywhere by
    the emissions of $(r,i)$: the emulator and the health model decide where its PM2.5 goes and whom it harms.
    The row is additive (Euler: it sums to the emission-weighted gradient $\nabla_E J \cdot E$), so MRIO
    identities hold for it as for any stressor; the chain itself is nonlinear, so the sum differs from $J$.

    **Arguments:** `chain`; `inputs` (default `chain.base_inputs()`).

    **Returns:** `(F_deaths[n], F_Y_deaths[fd])` in deaths per year (numpy float64).
    """
    inp = chain.base_inputs() if inputs is None else inputs

    def total_deaths(S, S_Y):
        return chain(eqx.tree_at(lambda i: (i.S, i.S_Y), inp, (S, S_Y))).deaths.sum()

    gS, gSY = eqx.filter_jit(jax.grad(total_deaths, argnums=(0, 1)))(inp.S, inp.S_Y)
    return (np.asarray((inp.S * gS).sum(0), dtype=np.float64), np.asarray((inp.S_Y * gSY).sum(0), dtype=np.float64))


def with_deaths_row(mrio: MRIO, F_deaths, F_Y_deaths, name: str = "deaths", unit: str = "deaths yr-1") -> MRIO:
    """`mrio` with one more satellite row `name` (`F_deaths[n]`, `F_Y_deaths[fd]`, in `unit`), e.g. from
    [`deaths_satellite`][diffmrio.chain.deaths_satellite]. Extensions (the new row in extension `"health"`) and
    population are kept. **Raises** `ValueError` when `name` is already a stressor or a shape is wrong."""
    if name in mrio.stressors:
        raise ValueError(f"the table already has a stressor {name!r}; pass another `name`")
    F_d, FY_d = np.asarray(F_deaths, dtype=np.float64), np.asarray(F_Y_deaths, dtype=np.float64)
    if F_d.shape != (mrio.n,) or FY_d.shape != (np.shape(mrio.Y)[1],):
        raise ValueError(f"F_deaths has shape {F_d.shape} and F_Y_deaths {FY_d.shape}; the table needs "
                         f"({mrio.n},) and ({np.shape(mrio.Y)[1]},)")
    return MRIO.from_arrays(
        mrio.Z, mrio.Y, np.vstack([np.asarray(mrio.F), F_d[None]]), np.vstack([np.asarray(mrio.F_Y), FY_d[None]]),
        regions=mrio.regions, sectors=mrio.sectors, categories=mrio.categories,
        stressors=tuple(mrio.stressors) + (name,), units=tuple(mrio.units) + (unit,), name=mrio.name,
        extensions=tuple(mrio.extensions) + ("health",) if mrio.extensions else None,
        population=mrio.population, population_unit=mrio.population_unit,
        validate="warn" if mrio.validation else True,
    )  # fmt: skip
