"""Gridded emulator: a Fourier neural operator from emission fields to concentration fields.

$E[\\text{species}, \\text{level}, \\text{row}, \\text{col}] \\mapsto C[\\text{component}, \\text{row}, \\text{col}]$.

Architecture (Li et al. 2021, "Fourier neural operator for parametric PDEs", ICLR), with physical structure:

- input channels: the emission change $\\delta = (E - E_0)/s$ per (species, level) ($s$ = the largest
  base-case cell emission of the channel, or of the species when the channel is empty), plus static channels: the base emissions $E_0/s$, the base-case
  concentrations $C_0/c$ and the cell coordinates, so the operator can be spatially inhomogeneous;
- lifting ($1\\times1$ convolution) to `width` channels, `n_layers` Fourier layers
  $h \\leftarrow \\mathrm{gelu}(\\mathcal{F}^{-1}(R\\,\\mathcal{F} h) + W h)$ on a zero-padded grid (so transport
  does not wrap around the domain), and a $1\\times1$ projection;
- a direct linear spectral path from $\\delta$ to the output (transport of a primary emission is linear);
- output $C = c\\,\\sigma_k(C_0/c + \\Delta)$ with a sharp softplus $\\sigma_k$: non-negative, and the network
  predicts the change from the base case ($c$ = mean base concentration per component).
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
from jaxtyping import Array, Float, PRNGKeyArray

from ._abstract import AbstractEmulator, EmulatorLabels, Envelope, default_envelope


def _spectral(h, wr, wi, m1: int, m2: int, shape: tuple[int, int]):
    """Truncated Fourier multiplier: h[c_in, R, C] -> [c_out, R, C] keeping `m1` x `m2` low modes."""
    H = jnp.fft.rfft2(h, s=shape)
    sel = jnp.concatenate([H[:, :m1, :m2], H[:, -m1:, :m2]], axis=1)
    out = jnp.einsum("ixy,ioxy->oxy", sel, wr + 1j * wi)
    full = jnp.zeros((out.shape[0], shape[0], shape[1] // 2 + 1), dtype=out.dtype)
    full = full.at[:, :m1, :m2].set(out[:, :m1]).at[:, -m1:, :m2].set(out[:, m1:])
    return jnp.fft.irfft2(full, s=shape)


class GriddedEmulator(AbstractEmulator):
    """Fourier-neural-operator emulator of gridded fields (see the module docstring).

    **Arguments** (constructor)

    - `labels`: `EmulatorLabels` with `input_dims = (species, level, row, col)` and
      `output_dims = (component, row, col)`.
    - `x_ref`: base-case emissions `E0[species, level, row, col]` (required).
    - `base`: base-case concentrations `C0[component, row, col]` (required: a static input channel).
    - `width`, `n_layers`, `modes`: channels, Fourier layers and retained modes per axis (defaults 24, 3,
      (12, 12)); `pad`: zero padding cells added to each axis (default 12).
    - `sharpness`, `on_out_of_envelope`; `key` (keyword-only).
    """

    # the fields every emulator has come first (the leaf order of files saved by earlier versions)
    base: Float[Array, "component row col"]
    x_ref: Float[Array, "species level row col"]
    envelope: Envelope
    labels: EmulatorLabels = eqx.field(static=True)
    lift: Float[Array, "width c_in"]
    lift_bias: Float[Array, " width"]
    spec_r: tuple
    spec_i: tuple
    point: tuple
    point_bias: tuple
    proj1: Float[Array, "width width"]
    proj1_bias: Float[Array, " width"]
    proj2: Float[Array, "component width"]
    direct_r: Float[Array, "n_in component m1 m2"]
    direct_i: Float[Array, "n_in component m1 m2"]
    direct_point: Float[Array, "component n_in"]
    static_channels: Float[Array, "n_static row col"]
    input_scale: Float[Array, "species level"]
    output_scale: Float[Array, " component"]
    width: int = eqx.field(static=True)
    n_layers: int = eqx.field(static=True)
    modes: tuple[int, int] = eqx.field(static=True)
    pad: int = eqx.field(static=True)
    sharpness: float = eqx.field(static=True)

    def __init__(
        self,
        labels: EmulatorLabels,
        *,
        x_ref,
        base,
        width: int = 24,
        n_layers: int = 3,
        modes=(12, 12),
        pad: int = 12,
        sharpness: float = 20.0,
        on_out_of_envelope: str = "warn",
        key: PRNGKeyArray,
    ):
        if len(labels.input_dims) != 4 or len(labels.output_dims) != 3:
            raise ValueError(
                "GriddedEmulator needs inputs E[species, level, row, col] and outputs C[component, row, col]; "
                f"got input dims {labels.input_dims} and output dims {labels.output_dims}"
            )
        ns, nl, ny, nx = labels.input_shape
        nc = labels.output_shape[0]
        if labels.output_shape[1:] != (ny, nx):
            raise ValueError(
                f"input grid {(ny, nx)} and output grid {labels.output_shape[1:]} differ: the gridded "
                "emulator maps fields on one grid"
            )
        x_ref = jnp.asarray(x_ref, dtype=jnp.float64)
        base = jnp.asarray(base, dtype=jnp.float64)
        if x_ref.shape != labels.input_shape:
            raise ValueError(f"`x_ref` has shape {x_ref.shape}; expected {labels.input_shape}")
        if base.shape != labels.output_shape:
            raise ValueError(f"`base` has shape {base.shape}; expected {labels.output_shape}")
        self.labels = labels
        self.width, self.n_layers, self.pad = int(width), int(n_layers), int(pad)
        self.modes = (int(modes[0]), int(modes[1]))
        self.sharpness = float(sharpness)
        shape = (ny + self.pad, nx + self.pad)
        m1, m2 = self.modes
        if 2 * m1 > shape[0] or m2 > shape[1] // 2 + 1:
            raise ValueError(f"`modes` {self.modes} too many for the padded grid {shape}")
        self.x_ref, self.base = x_ref, base
        # per (species, level): the largest base-case cell emission; a channel that is zero in the base case
        # (e.g. no elevated NH3) borrows its species' scale, so its gradient is not amplified by 1/0
        per_channel = jnp.max(x_ref, axis=(2, 3))
        per_species = jnp.max(per_channel, axis=1, keepdims=True)
        scale = jnp.where(per_channel > 0, per_channel, jnp.broadcast_to(per_species, per_channel.shape))
        self.input_scale = jnp.where(scale > 0, scale, 1.0)
        self.output_scale = jnp.maximum(jnp.mean(base, axis=(1, 2)), 1e-12)
        yy, xx = jnp.meshgrid(jnp.linspace(-1, 1, ny), jnp.linspace(-1, 1, nx), indexing="ij")
        self.static_channels = jnp.concatenate(
            [
                (x_ref / self.input_scale[:, :, None, None]).reshape(ns * nl, ny, nx),
                base / self.output_scale[:, None, None],
                yy[None],
                xx[None],
            ]
        )
        n_in = ns * nl
        c_in = n_in + self.static_channels.shape[0]
        w = self.width
        keys = jr.split(key, 6 + 3 * self.n_layers)

        def dense(k, o, i, scale=1.0):
            return scale * jr.normal(k, (o, i)) / np.sqrt(i)

        self.lift = dense(keys[0], w, c_in)
        self.lift_bias = jnp.zeros(w)
        sr, si, pt, pb = [], [], [], []
        for layer in range(self.n_layers):
            k1, k2, k3 = keys[6 + 3 * layer : 9 + 3 * layer]
            s = 1.0 / (w * w)
            sr.append(s * jr.uniform(k1, (w, w, 2 * m1, m2)))
            si.append(s * jr.uniform(k2, (w, w, 2 * m1, m2)))
            pt.append(dense(k3, w, w))
            pb.append(jnp.zeros(w))
        self.spec_r, self.spec_i, self.point, self.point_bias = tuple(sr), tuple(si), tuple(pt), tuple(pb)
        self.proj1 = dense(keys[1], w, w)
        self.proj1_bias = jnp.zeros(w)
        self.proj2 = dense(keys[2], nc, w, scale=0.01)
        self.direct_r = jnp.zeros((n_in, nc, 2 * m1, m2))
        self.direct_i = jnp.zeros((n_in, nc, 2 * m1, m2))
        self.direct_point = jnp.zeros((nc, n_in))
        self.envelope = default_envelope(labels, on_out_of_envelope)

    @property
    def hyperparameters(self) -> dict:
        return {
            "width": self.width,
            "n_layers": self.n_layers,
            "modes": list(self.modes),
            "pad": self.pad,
            "sharpness": self.sharpness,
        }

    def change(self, x: Float[Array, "species level row col"]) -> Float[Array, "component row col"]:
        """The network output $\\Delta$ (change from the base case, in units of `output_scale`)."""
        ns, nl, ny, nx = self.labels.input_shape
        shape = (ny + self.pad, nx + self.pad)
        m1, m2 = self.modes
        d = ((x - self.x_ref) / self.input_scale[:, :, None, None]).reshape(ns * nl, ny, nx)
        h = jnp.concatenate([d, self.static_channels])
        h = jnp.einsum("oi,iyx->oyx", self.lift, h) + self.lift_bias[:, None, None]
        h = jnp.pad(h, ((0, 0), (0, self.pad), (0, self.pad)))
        for wr, wi, p, pb in zip(self.spec_r, self.spec_i, self.point, self.point_bias, strict=True):
            h = jax.nn.gelu(
                _spectral(h, wr, wi, m1, m2, shape) + jnp.einsum("oi,iyx->oyx", p, h) + pb[:, None, None]
            )
        h = jax.nn.gelu(jnp.einsum("oi,iyx->oyx", self.proj1, h) + self.proj1_bias[:, None, None])
        out = jnp.einsum("oi,iyx->oyx", self.proj2, h)
        dpad = jnp.pad(d, ((0, 0), (0, self.pad), (0, self.pad)))
        out = out + _spectral(dpad, self.direct_r, self.direct_i, m1, m2, shape)
        out = out[:, :ny, :nx] + jnp.einsum("oi,iyx->oyx", self.direct_point, d)
        return out

    def _predict(self, x):
        c = self.output_scale[:, None, None]
        z = self.base / c + self.change(x)
        k = self.sharpness
        return c * jnp.logaddexp(0.0, k * z) / k

    def _frozen(self) -> tuple:
        return (
            lambda m: m.base,
            lambda m: m.static_channels,
            lambda m: m.input_scale,
            lambda m: m.output_scale,
        )
