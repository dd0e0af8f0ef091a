r"""Neural emulator for source-level inputs, with the structure of the chemistry it emulates.

For inputs $x[s, k]$ (source $s$, species $k$; trailing input dimensions such as level are folded into $k$)
and outputs $y[c, r]$ (component $c$, receptor $r$):

$$ \delta = (x - x_0)/h, \qquad z_{r,k} = \sum_s F_{r,k,s}\, \delta_{s,k}, $$
$$ \rho_{c,r}(x) = 1 + (L\,\delta)_{c,r} + m_c(z_r, e_r) - m_c(0, e_r), \qquad
   y_{c,r} = y^0_{c,r}\, \sigma_k(\rho_{c,r}) / \sigma_k(1), \qquad \sigma_k(\rho) = \log(1+e^{k\rho})/k $$

- $L$: the first-order (source-receptor) response, initialised from the least-squares linear fit;
- $z_{r,k}$: a learned "footprint" $F$ per receptor and species: how much of species $k$ reaches receptor
  $r$ from all sources (transport is linear in emissions, so the chemistry at a receptor sees such sums);
- $m$: one MLP shared by all receptors (with a learned receptor embedding $e_r$) acting on the species
  totals $z_r$: the nonlinear chemistry (sulfate-nitrate-ammonium partitioning, oxidant limitation) in a few
  inputs instead of all source x species factors, which is what lets it learn from ~150 runs; smooth (SiLU)
  activations so gradients, compared with adjoint sensitivities, are smooth;
- $\sigma_k$: a sharp softplus: outputs are non-negative and $y(x_0) = y^0$ exactly (the base case);
- $h$: the input scale (largest deviation from $x_0$ in the training design).

Outputs are relative to the base case, so receptors and components of very different magnitude share one
network.
"""

from __future__ import annotations

import warnings

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, PRNGKeyArray

from ctm_interface._callers import user_stacklevel

from ._abstract import AbstractEmulator, EmulatorLabels, Envelope, default_envelope
from ._linear import _reference_input


def _sharp_softplus(r, k):
    return jnp.logaddexp(0.0, k * r) / k


class MLPEmulator(AbstractEmulator):
    """Source-level neural emulator (equations in the module docstring).

    **Arguments** (constructor)

    - `labels`: `EmulatorLabels` with inputs `[source, species...]` and outputs `[component, receptor...]`.
    - `width`, `depth`: hidden width and number of hidden layers of the chemistry MLP (defaults 32, 2).
    - `embed_size`: size of the receptor embedding (default 4).
    - `sharpness`: softplus sharpness $k$ (default 20).
    - `x_ref`, `on_out_of_envelope`: as for `LinearEmulator`.
    - `key`: keyword-only PRNG key for the initial weights.

    **Fields**: `linear[n_out, n_in]`, `footprint[receptor, species, source]`, `embedding[receptor, e]`,
    `mlp` (`eqx.nn.MLP`), `input_scale`, `base`, `x_ref`, `envelope`, `labels`; static `width`, `depth`,
    `embed_size`, `sharpness`.
    """

    # the fields every emulator has come first (the leaf order of files saved by earlier versions)
    base: Float[Array, " component *receptor"]
    x_ref: Float[Array, "*shape"]
    envelope: Envelope
    labels: EmulatorLabels = eqx.field(static=True)
    linear: Float[Array, "n_out n_in"]
    footprint: Float[Array, "receptor species source"]
    embedding: Float[Array, "receptor e"]
    mlp: eqx.nn.MLP
    input_scale: Float[Array, "*shape"]
    width: int = eqx.field(static=True)
    depth: int = eqx.field(static=True)
    embed_size: int = eqx.field(static=True)
    sharpness: float = eqx.field(static=True)

    def __init__(
        self,
        labels: EmulatorLabels,
        *,
        width: int = 32,
        depth: int = 2,
        embed_size: int = 4,
        sharpness: float = 20.0,
        x_ref=None,
        on_out_of_envelope: str = "warn",
        key: PRNGKeyArray,
    ):
        if len(labels.input_dims) < 2:
            raise ValueError(f"MLPEmulator needs inputs [source, species...], got dims {labels.input_dims}")
        self.labels = labels
        self.width, self.depth, self.sharpness = int(width), int(depth), float(sharpness)
        self.embed_size = int(embed_size)
        self.x_ref = _reference_input(labels, x_ref)
        n_src = labels.input_shape[0]
        n_sp = int(np.prod(labels.input_shape[1:]))
        n_comp = labels.output_shape[0]
        n_rec = int(np.prod(labels.output_shape[1:]))
        n_in = n_src * n_sp
        n_out = n_comp * n_rec
        k1, k2, k3 = jax.random.split(key, 3)
        mlp = eqx.nn.MLP(
            n_sp + self.embed_size, n_comp, self.width, self.depth, activation=jax.nn.silu, key=k3
        )
        self.mlp = mlp
        self.footprint = jnp.ones((n_rec, n_sp, n_src)) / n_src
        self.embedding = 0.1 * jax.random.normal(k2, (n_rec, self.embed_size))
        self.linear = jnp.zeros((n_out, n_in))
        self.input_scale = jnp.ones(labels.input_shape)
        self.base = jnp.ones(labels.output_shape)
        self.envelope = default_envelope(labels, on_out_of_envelope)

    @property
    def hyperparameters(self) -> dict:
        return {
            "width": self.width,
            "depth": self.depth,
            "embed_size": self.embed_size,
            "sharpness": self.sharpness,
        }

    def relative_response(self, x: Float[Array, "*shape"]) -> Float[Array, " n_out"]:
        """$\rho(x)$, the response relative to the base case before the softplus (flattened outputs)."""
        n_src = self.labels.input_shape[0]
        d = ((x - self.x_ref) / self.input_scale).reshape(n_src, -1)
        z = jnp.einsum("rks,sk->rk", self.footprint, d)

        def chem(zr, er):
            return self.mlp(jnp.concatenate([zr, er]))

        h = jax.vmap(chem)(z, self.embedding) - jax.vmap(chem)(
            jnp.zeros_like(z), self.embedding
        )  # [rec, comp]
        return 1.0 + self.linear @ d.reshape(-1) + h.T.reshape(-1)

    def _predict(self, x):
        r = self.relative_response(x)
        k = self.sharpness
        ratio = _sharp_softplus(r, k) / _sharp_softplus(1.0, k)
        return self.base * ratio.reshape(self.base.shape)

    def _frozen(self) -> tuple:
        return (lambda m: m.input_scale,)

    def _training_start(self, x: np.ndarray, y: np.ndarray, base) -> tuple[MLPEmulator, bool]:
        """Base case, input scale and the linear part from closed-form fits. The base case is `base` if
        given, else the mean output of the runs at `x_ref`, else the intercept of a fit with linear and squared
        terms, which training then refines (`train_base`)."""
        n = x.shape[0]
        x_ref = np.asarray(self.x_ref)
        at_ref = np.all(np.isclose(x, x_ref[None], rtol=1e-9, atol=1e-12).reshape(n, -1), axis=1)
        train_base = base is None and not np.any(np.all(np.isclose(x, x_ref[None]).reshape(n, -1), axis=1))
        if base is None:
            if at_ref.any():
                base = y[at_ref].mean(axis=0)
            else:  # intercept of a fit with linear and squared terms (curvature-aware)
                d = (x - x_ref).reshape(n, -1)
                a = np.concatenate([np.ones((n, 1)), d, d**2], axis=1)
                base = np.linalg.lstsq(a, y.reshape(n, -1), rcond=None)[0][0].reshape(y.shape[1:])
        base = np.asarray(base, dtype=np.float64)
        if base.shape != y.shape[1:]:
            raise ValueError(f"`base` has shape {base.shape}; expected the output shape {y.shape[1:]}")
        if np.any(base <= 0):
            raise ValueError(
                "the MLP emulator predicts relative to the base case: every base-case output must be > 0"
            )
        scale = np.maximum(np.abs(x - x_ref).max(axis=0), 1e-12)
        d = ((x - x_ref) / scale).reshape(n, -1)
        rel = (y / base - 1.0).reshape(n, -1)
        lin, _, rank, _ = np.linalg.lstsq(d, rel, rcond=None)
        lin = lin.T
        if rank < d.shape[1]:
            warnings.warn(
                f"MLPEmulator: the {n} training runs span only {rank} of the {d.shape[1]} input directions "
                f"(rank of x - x_ref is {rank}): they do not determine the response along the other "
                f"{d.shape[1] - rank}, so per-source or per-species sensitivities are not identified; the "
                "fitted response along those directions comes from the initial weights (the linear part starts "
                "from the minimum-norm least-squares fit, the footprints from an even split over sources) and the "
                "training path, not from the runs. Add runs that vary the inputs independently (at least "
                f"{d.shape[1] + 1} with the base case; the MLP is meant for ~150, e.g. "
                "ctm_interface.latin_hypercube_design), or fit a LinearEmulator with "
                "method=surrogate.ClosedForm(ridge=...)",
                UserWarning, stacklevel=user_stacklevel("surrogate"))
        model = eqx.tree_at(lambda m: m.base, self, jnp.asarray(base))
        model = eqx.tree_at(lambda m: m.input_scale, model, jnp.asarray(scale))
        return eqx.tree_at(lambda m: m.linear, model, jnp.asarray(lin)), train_base
