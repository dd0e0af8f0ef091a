"""Transport kernels of the reference CTM: flux-form upwind advection, diffusion, two-layer exchange.

Amounts (not concentrations) are transported: in a layer of uniform depth the flux of amount through a cell
face is the Courant number times the upwind cell's amount, so the scheme conserves mass exactly (each face flux
leaves one cell and enters its neighbour) and the flux through the domain edge is the outflow. The boundaries
are open with clean inflow (zero background), so inflow faces carry nothing in and diffusion across the edge
only carries mass out.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Float


def face_fluxes(
    m: Float[Array, "*batch row col"], c_pos, c_neg, d, axis: int
) -> Float[Array, "*batch row col+1"] | Float[Array, "*batch row+1 col"]:
    """Fluxes of amount through the `n + 1` faces along `axis` (positive towards increasing index).

    $F_{k-1/2} = c^+_{k-1/2} m_{k-1} + c^-_{k-1/2} m_k + d (m_{k-1} - m_k)$, with $m = 0$ outside the domain,
    $c^\\pm$ the positive/negative parts of the face Courant number $u \\Delta t / \\Delta x$ and
    $d = K \\Delta t / \\Delta x^2$.

    **Arguments**: `m` amounts `(..., row, col)`; `c_pos`, `c_neg`, `d` broadcastable to the face shape (`axis`
    has n + 1 entries); `axis` -1 (x-faces, `(..., row, col + 1)`) or -2 (y-faces, `(..., row + 1, col)`).

    **Returns**: the face fluxes (amount per step).
    """
    pad = [(0, 0)] * m.ndim
    pad[axis] = (1, 1)
    mp = jnp.pad(m, pad)
    n = m.shape[axis]
    left = jax.lax.slice_in_dim(mp, 0, n + 1, axis=axis)
    right = jax.lax.slice_in_dim(mp, 1, n + 2, axis=axis)
    return c_pos * left + c_neg * right + d * (left - right)


def advect_diffuse(
    m: Float[Array, "*batch row col"],
    cx_pos: Float[Array, "*#batch row col+1"],
    cx_neg: Float[Array, "*#batch row col+1"],
    cy_pos: Float[Array, "*#batch row+1 col"],
    cy_neg: Float[Array, "*#batch row+1 col"],
    dx: Float[Array, ""],
    dy: Float[Array, ""],
) -> tuple[Float[Array, "*batch row col"], Float[Array, "*batch"]]:
    """One unsplit, flux-form upwind advection + diffusion step on the last two axes (row, col).

    $m^{n+1}_{j,i} = m^n_{j,i} + F^x_{j,i-1/2} - F^x_{j,i+1/2} + F^y_{j-1/2,i} - F^y_{j+1/2,i}$

    Positive (and stable) while every cell's outgoing fraction
    $c^+_{i+1/2} - c^-_{i-1/2} + c^+_{j+1/2} - c^-_{j-1/2} + 2 d_x + 2 d_y \\le 1$ (checked by the model).

    **Arguments**: `m` amounts `(..., row, col)`; Courant numbers on x-faces `(..., row, col + 1)` and
    y-faces `(..., row + 1, col)` split into positive and negative parts; `dx`, `dy` the diffusion numbers
    $K \\Delta t / \\Delta x^2$.

    **Returns**: `(m_new, outflow)` with `outflow` `(...)` the amount that left the domain in the step.
    """
    fx = face_fluxes(m, cx_pos, cx_neg, dx, axis=-1)
    fy = face_fluxes(m, cy_pos, cy_neg, dy, axis=-2)
    m_new = m + (fx[..., :, :-1] - fx[..., :, 1:]) + (fy[..., :-1, :] - fy[..., 1:, :])
    outflow = (
        jnp.sum(fx[..., :, -1], axis=-1)
        - jnp.sum(fx[..., :, 0], axis=-1)
        + jnp.sum(fy[..., -1, :], axis=-1)
        - jnp.sum(fy[..., 0, :], axis=-1)
    )
    return m_new, outflow


def max_outgoing_fraction(
    u: Float[ArrayLike, "*batch row colp1"], v: Float[ArrayLike, "*batch rowp1 col"], kh: Float[ArrayLike, "*#batch"],
    dt: float, dx: float, dy: float,
) -> float:
    """Largest fraction of a cell's amount that the transport step moves out of it (must be <= 1).

    **Arguments**: face winds `u` `(..., row, col + 1)` and `v` `(..., row + 1, col)` in m/s, diffusivity
    `kh` (m2/s, scalar or broadcastable to `(...)`), time step `dt` (s), cell sizes `dx`, `dy` (m).
    """
    u = np.asarray(u, dtype=np.float64)
    v = np.asarray(v, dtype=np.float64)
    kh = np.asarray(kh, dtype=np.float64)
    cx, cy = u * dt / dx, v * dt / dy
    out = (
        np.maximum(cx[..., :, 1:], 0.0)
        - np.minimum(cx[..., :, :-1], 0.0)
        + np.maximum(cy[..., 1:, :], 0.0)
        - np.minimum(cy[..., :-1, :], 0.0)
    )
    diff = 2.0 * kh * dt / dx**2 + 2.0 * kh * dt / dy**2
    diff = np.reshape(diff, diff.shape + (1,) * (out.ndim - diff.ndim))
    return float(np.max(out + diff))


def exchange_layers(
    m: Float[Array, "*batch layer row col"], h: Float[Array, " 2"], w, dt
) -> Float[Array, "*batch layer row col"]:
    """Exact (exponential) exchange between a lower and an upper well-mixed layer of each column.

    The entrainment flux $w (c_{up} - c_{low})$ (per unit area, $c = m / (A h)$) integrated over a step:
    $T = (c_{up} - c_{low}) A \\, (1 - e^{-\\lambda \\Delta t}) / (1/h_{low} + 1/h_{up})$,
    $\\lambda = w (1/h_{low} + 1/h_{up})$; mass-conserving and positive for any step.

    **Arguments**: amounts `m` with a layer axis of length 2 (lower, upper) third from last, layer depths
    `h` `(2,)` (m), exchange velocity `w` (m/s), `dt` (s).

    **Returns**: the amounts after exchange, shaped like `m`.
    """
    inv = 1.0 / h[0] + 1.0 / h[1]
    frac = -jnp.expm1(-w * inv * dt)
    low, up = jnp.split(m, 2, axis=-3)
    transfer = (up / h[1] - low / h[0]) * (frac / inv)
    return jnp.concatenate([low + transfer, up - transfer], axis=-3)


def streamfunction_winds(psi: np.ndarray, dx: float, dy: float) -> tuple[np.ndarray, np.ndarray]:
    """Face winds from a streamfunction on cell corners `(row + 1, col + 1)`: exactly non-divergent.

    $u_{j,k} = -(\\psi_{j+1,k} - \\psi_{j,k}) / \\Delta y$ on x-faces, $v_{j,k} = (\\psi_{j,k+1} - \\psi_{j,k}) / \\Delta x$
    on y-faces, so the discrete divergence of every cell vanishes.

    **Returns**: `u` `(row, col + 1)`, `v` `(row + 1, col)` in m/s (psi in m2/s).
    """
    u = -(psi[1:, :] - psi[:-1, :]) / dy
    v = (psi[:, 1:] - psi[:, :-1]) / dx
    return u, v
