"""Chemistry kernels of the reference CTM: oxidant availability and the inorganic aerosol partitioning.

All functions are pure, elementwise and smooth (C-infinity for positive arguments), so `jax.grad` of the
model exists everywhere and the adjoint is exact.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jaxtyping import Array, ArrayLike, Float

#: Gas constant (J mol-1 K-1).
R_GAS = 8.314462618


def smooth_pair(
    a: Float[ArrayLike, "*#shape"], b: Float[ArrayLike, "*#shape"], k: Float[ArrayLike, "*#shape"]
) -> Float[Array, "*#shape"]:
    """Amount `x` of a 1:1 product formed from amounts `a` and `b` at equilibrium `(a - x)(b - x) = k x`.

    $x = \\frac{(a + b + k) - \\sqrt{(a + b + k)^2 - 4ab}}{2} = \\frac{2ab}{(a + b + k) + \\sqrt{(a - b)^2 + k^2 + 2k(a + b)}}$

    The second (cancellation-free) form is what is computed. For `a, b >= 0` and `k > 0`: `0 <= x <= min(a, b)`,
    `x` is smooth, and as `k -> 0` it tends to `min(a, b)` (complete reaction of the limiting reagent). The
    regimes: if `a << b`, `x ~ a b / (b + k)` (limited by `a`, `dx/da ~ 1` when `k << b`); if `a >> b`,
    `x ~ b a / (a + k)` (limited by `b`, `dx/da ~ 0`).

    **Arguments**: `a`, `b` >= 0 (same units), `k` > 0 (same units): broadcastable arrays.

    **Returns**: `x`, the broadcast shape.
    """
    s = a + b + k
    disc = (a - b) ** 2 + k * k + 2.0 * k * (a + b)
    return 2.0 * a * b / (s + jnp.sqrt(disc))


def nitrate_dissociation_ppb2(temperature: Float[ArrayLike, "*shape"]) -> Float[Array, "*shape"]:
    """Dissociation constant of solid ammonium nitrate, `Kp = [NH3][HNO3]` in ppb^2 (Mozurkewich 1993).

    $\\ln K_p = 84.6 - 24220 / T - 6.1 \\ln(T / 298)$

    Reference: Mozurkewich, M. (1993), Atmos. Environ. 27A, 261-270 (as used in Seinfeld and Pandis, ch. 10).

    **Arguments**: `temperature` in K. **Returns**: `Kp` in ppb^2 (about 0.03 at 273 K, 28 at 298 K).
    """
    return jnp.exp(84.6 - 24220.0 / temperature - 6.1 * jnp.log(temperature / 298.0))


def air_umol_per_ppb(
    temperature: Float[ArrayLike, "*#shape"], pressure: Float[ArrayLike, "*#shape"]
) -> Float[Array, "*#shape"]:
    """Micromoles per m3 of a gas at 1 ppb mixing ratio: $n_{air} \\cdot 10^{-9} \\cdot 10^6 = p / (R T) \\cdot 10^{-3}$."""
    return pressure / (R_GAS * temperature) * 1e-3


def partition_inorganic(
    sulfate: Float[ArrayLike, "*#shape"],
    total_ammonia: Float[ArrayLike, "*#shape"],
    total_nitrate: Float[ArrayLike, "*#shape"],
    k_sulfate: Float[ArrayLike, "*#shape"],
    k_nitrate: Float[ArrayLike, "*#shape"],
) -> tuple[Float[Array, "*#shape"], Float[Array, "*#shape"]]:
    """Smooth sulfate-nitrate-ammonium partitioning (all amounts in the same molar units, e.g. umol m-3).

    Sulfate takes ammonia first, up to two moles per mole (ammonium sulfate, a very strong affinity `k_sulfate`):
    $A_s = x(T_A, 2S; k_s)$; the free ammonia $F = T_A - A_s$ then forms ammonium nitrate with the total
    nitrate $T_N$ (HNO3 + NO3-) at the temperature-dependent equilibrium $(F - n)(T_N - n) = k_n n$:
    $n = x(F, T_N; k_n)$, where $x(a, b; k)$ is `smooth_pair`. Particulate ammonium is $A_s + n$, particulate
    nitrate $n$; gas-phase NH3 is $F - n$ and HNO3 $T_N - n$.

    The regimes (Seinfeld and Pandis, ch. 10; the reason PM2.5 is nonlinear in its precursors):
    - NH3-poor (sulfate-rich, $T_A < 2S$): $F \\approx 0$, nitrate ~ 0, $dn/dT_A \\approx 0$ (added ammonia
      neutralises sulfate first);
    - NH3-rich, nitrate-excess ($2S < T_A < 2S + T_N$): $dn/dT_A \\approx 1$, $dn/dT_N \\approx 0$;
    - NH3-rich, nitrate-limited ($T_A > 2S + T_N$): $dn/dT_N \\approx 1$, $dn/dT_A \\approx 0$.

    **Arguments**: `sulfate` S, `total_ammonia` T_A, `total_nitrate` T_N (>= 0), `k_sulfate`, `k_nitrate` (> 0).

    **Returns**: `(ammonium, nitrate)` in particles, each the broadcast shape.
    """
    bound = smooth_pair(total_ammonia, 2.0 * sulfate, k_sulfate)
    free = total_ammonia - bound
    nitrate = smooth_pair(free, total_nitrate, k_nitrate)
    return bound + nitrate, nitrate


def safe_power(q: Float[ArrayLike, "*shape"], p: float) -> Float[Array, "*shape"]:
    """$q^p$ for $q \\ge 0$ and a static exponent `p > 1`, with a finite gradient at $q = 0$.

    Integer and half-integer exponents avoid `exp`/`log` (the chemistry is evaluated at every cell and step, and
    float64 transcendentals dominate its cost): $q^{n/2} = (\\sqrt{q + \\epsilon})^n$ with $\\epsilon = 10^{-30}$.
    """
    p = float(p)
    if not p > 1.0:
        raise ValueError(f"safe_power: the exponent must be > 1 (a static float), got {p!r}")
    if p == int(p):
        return jax.lax.integer_pow(q, int(p))
    if 2 * p == int(2 * p):
        return jax.lax.integer_pow(jnp.sqrt(q + 1e-30), int(2 * p))
    return jnp.exp(p * jnp.log(q + 1e-30))


def oxidant_factor(
    nox: Float[ArrayLike, "*#shape"],
    voc: Float[ArrayLike, "*#shape"],
    ratio_half: Float[ArrayLike, "*#shape"],
    exponent: float,
) -> Float[Array, "*#shape"]:
    """Oxidant (OH) availability in [0, 1] as a function of the NOx/VOC ratio: titration at high NOx.

    $f = 1 / (1 + q^p)$, $q = [NOx] / (r_{1/2} [VOC])$

    so NOx oxidation, $P = k [NOx] f$, is linear in NOx where NOx is scarce (NOx-limited, $q \\ll 1$) and
    saturates, then falls ($p > 1$), where NOx is abundant (VOC-limited, $q \\gg 1$), where it grows with VOC
    as $VOC^p$. A smooth caricature of the ozone/OH isopleths (Seinfeld and Pandis, ch. 6; Sillman 1999).

    **Arguments**: `nox`, `voc` mass concentrations (ug m-3, NOx as NO2; `voc` > 0 including biogenic VOC),
    `ratio_half` the NOx/VOC mass ratio at which `f = 1/2`, `exponent` p (a static float > 1).

    **Returns**: `f`, the broadcast shape.
    """
    q = nox / (ratio_half * voc)
    return 1.0 / (1.0 + safe_power(q, exponent))
