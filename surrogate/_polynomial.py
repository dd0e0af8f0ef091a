"""Polynomial response surface in emission ratios, in the style of the pf-ERSM family.

pf-ERSM (polynomial-function extended response surface model; Xing et al. 2018, ACP 18, 7799-7814; Ding et
al. 2019) writes the response of annual PM2.5 at a receptor as a sum over source regions of polynomials in
that region's emission-change ratios, with interaction terms among the species of the same source, fitted to
a few hundred CTM runs from a Latin-hypercube design. This implementation, per output element
(component x receptor):

$$ y = y_0 + \\sum_s P_s(d_{s,\\cdot}) + Q(t), \\qquad d = x - x_0, \\qquad
   t_k = \\sum_s w_{s,k}\\, d_{s,k} $$

- $P_s$: every monomial of degree $1..D$ in the species of source $s$ (all within-source interactions);
- $Q$: monomials of degree $2..D$ in the emission-weighted domain-total changes $t_k$ per species (the
  "total-contribution" structure: how the regional chemical regime, e.g. NH3 availability, modulates the
  response to every source; degree 1 is already in the $P_s$);
- $w_{s,k}$: each source's share of the base-case emission of species $k$ (uniform `1/S` by default).

Fitted in closed form by ridge regression on standardised features, with the ridge penalty chosen per output
by exact leave-one-out cross-validation (`surrogate.fit`).
"""

from __future__ import annotations

import itertools
import warnings

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float

from ctm_interface._callers import user_stacklevel

from ._abstract import AbstractEmulator, EmulatorLabels, Envelope, default_envelope
from ._linear import _closed_form_only, _reference_input
from ._methods import ClosedForm
from ._ridge import ridge_loo


def _monomials(k: int, degrees) -> tuple[tuple[int, ...], ...]:
    out = []
    for deg in degrees:
        out.extend(itertools.combinations_with_replacement(range(k), deg))
    return tuple(out)


class PolynomialEmulator(AbstractEmulator):
    """pf-ERSM-style polynomial response surface (see the module docstring for the equation).

    **Arguments** (constructor)

    - `labels`: `EmulatorLabels`; the first input dimension is the source; the remaining input dimensions
      (species, and optionally level/sector group) are flattened into the within-source variables.
    - `degree`: polynomial degree $D$ (default 2; 3 is the largest pf-ERSM uses).
    - `total_terms`: include the domain-total interaction polynomial $Q$ (default `True`).
    - `source_weights`: `w[source, ...]`, shares of each source in the base emissions per species (columns
      summing to 1); default uniform.
    - `x_ref`, `on_out_of_envelope`: as for `LinearEmulator`.

    **Fields**: `coef[n_out, n_features]`, `source_weights`, `base`, `x_ref`, `envelope`, `labels`, and the
    static `degree`, `total_terms`.
    """

    # the fields every emulator has come first (the leaf order of files saved by earlier versions)
    base: Float[Array, " component *receptor"]
    x_ref: Float[Array, "*shape"]
    envelope: Envelope
    labels: EmulatorLabels = eqx.field(static=True)
    coef: Float[Array, "n_out n_feat"]
    source_weights: Float[Array, "source k"]
    degree: int = eqx.field(static=True)
    total_terms: bool = eqx.field(static=True)

    def __init__(
        self,
        labels: EmulatorLabels,
        *,
        degree: int = 2,
        total_terms: bool = True,
        source_weights=None,
        x_ref=None,
        on_out_of_envelope: str = "warn",
    ):
        if int(degree) < 1:
            raise ValueError(f"`degree` must be >= 1, got {degree}")
        if len(labels.input_dims) < 2:
            raise ValueError(
                f"PolynomialEmulator needs inputs [source, species...], got dims {labels.input_dims}"
            )
        self.labels = labels
        self.degree = int(degree)
        self.total_terms = bool(total_terms)
        self.x_ref = _reference_input(labels, x_ref)
        n_src = labels.input_shape[0]
        k = int(np.prod(labels.input_shape[1:]))
        if source_weights is None:
            w = jnp.full((n_src, k), 1.0 / n_src)
        else:
            w = jnp.asarray(source_weights, dtype=jnp.float64).reshape(n_src, -1)
            if w.shape != (n_src, k):
                raise ValueError(
                    f"`source_weights` must have shape {labels.input_shape}; got {jnp.shape(source_weights)}"
                )
        self.source_weights = w
        n_out = int(np.prod(labels.output_shape))
        self.coef = jnp.zeros((n_out, self.n_features))
        self.base = jnp.zeros(labels.output_shape)
        self.envelope = default_envelope(labels, on_out_of_envelope)

    @property
    def hyperparameters(self) -> dict:
        return {"degree": self.degree, "total_terms": self.total_terms}

    @property
    def _k(self) -> int:
        return int(np.prod(self.labels.input_shape[1:]))

    @property
    def n_features(self) -> int:
        n_src = self.labels.input_shape[0]
        n = n_src * len(_monomials(self._k, range(1, self.degree + 1)))
        if self.total_terms:
            n += len(_monomials(self._k, range(2, self.degree + 1)))
        return n

    def features(self, x: Float[Array, "*shape"]) -> Float[Array, " n_feat"]:
        """The feature vector $\\phi(x)$ (zero at `x_ref`), so that $y = y_0 + C\\,\\phi(x)$."""
        n_src = self.labels.input_shape[0]
        d = (x - self.x_ref).reshape(n_src, self._k)
        parts = []
        for deg in range(1, self.degree + 1):
            idx = np.array(list(itertools.combinations_with_replacement(range(self._k), deg)))
            parts.append(jnp.prod(d[:, idx], axis=-1).reshape(-1))
        if self.total_terms and self.degree >= 2:
            t = jnp.sum(self.source_weights * d, axis=0)
            for deg in range(2, self.degree + 1):
                idx = np.array(list(itertools.combinations_with_replacement(range(self._k), deg)))
                parts.append(jnp.prod(t[idx], axis=-1))
        # order: degree-1 terms of every source, then degree-2, ...; then the total terms
        return jnp.concatenate(parts)

    def _predict(self, x):
        return self.base + (self.coef @ self.features(x)).reshape(self.base.shape)

    def default_fit_method(self) -> ClosedForm:
        return ClosedForm()

    def _fit_closed_form(self, x: np.ndarray, y: np.ndarray, method: ClosedForm) -> PolynomialEmulator:
        """Ridge regression on the features, penalty per output by leave-one-out over `method.ridge_alphas`:
        the linear terms (the source-receptor matrix) unpenalised, the interactions penalised."""
        n = x.shape[0]
        phi = np.asarray(jax.vmap(self.features)(jnp.asarray(x)))
        n_linear = int(np.prod(self.labels.input_shape))
        _warn_few_runs(self, phi[:, :n_linear], n_linear)
        coef, intercept, _ = ridge_loo(phi, y.reshape(n, -1), method.ridge_alphas, n_unpenalised=n_linear)
        model = eqx.tree_at(lambda m: m.coef, self, jnp.asarray(coef))
        return eqx.tree_at(lambda m: m.base, model, jnp.asarray(intercept.reshape(self.base.shape)))

    def _training_start(self, x, y, base):
        raise TypeError(_closed_form_only(self))


def _warn_few_runs(model: PolynomialEmulator, linear: np.ndarray, n_linear: int) -> None:
    """Warn when the runs cannot determine the unpenalised terms (intercept and linear sensitivities), or
    determine them exactly with no run left over for the penalised interaction terms."""
    n = linear.shape[0]
    n_unpen = 1 + n_linear
    n_inter = model.n_features - n_linear
    rank = int(np.linalg.matrix_rank(np.concatenate([np.ones((n, 1)), linear], axis=1)))
    remedy = (
        f"Add runs that vary the inputs independently (pf-ERSM designs use a few hundred; at the very least "
        f"{n_unpen} for the linear terms" + (f" and more for the {n_inter} interaction terms" if n_inter else "")
        + ", e.g. ctm_interface.latin_hypercube_design), or fit a LinearEmulator with "
        "method=surrogate.ClosedForm(ridge=...)"
    )
    if rank < n_unpen:
        msg = (
            f"PolynomialEmulator: the {n} training runs determine only {rank} of its {n_unpen} unpenalised "
            f"parameters (intercept and {n_linear} linear sensitivities; rank of [1, x - x_ref] is {rank}): the "
            "linear terms are the minimum-norm least-squares solution, which spreads each response over inputs "
            "the design cannot tell apart, so per-source or per-species sensitivities are not identified"
            + (f", and no run is left over to fit the {n_inter} interaction terms (they are zero). " if n_inter
               and n <= rank else ". ")
        )
    elif n_inter and n <= rank:
        msg = (
            f"PolynomialEmulator: the {n} training runs only just determine its {n_unpen} unpenalised parameters "
            f"(intercept and {n_linear} linear sensitivities): no run is left over to fit the {n_inter} "
            "interaction terms, which are zero, so the fit is the linear interpolant of the runs. "
        )
    else:
        return
    warnings.warn(msg + remedy, UserWarning, stacklevel=user_stacklevel("surrogate"))
