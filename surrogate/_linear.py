"""Linear source-receptor matrix: the reduced-complexity baseline.

$y = y_0 + J\\,(x - x_0)$, with $J$ the source-receptor (Jacobian) matrix fitted by least squares over the
training runs (`surrogate.fit`, closed form). Reduced-complexity models such as InMAP/ISRM and the
source-receptor matrices of TM5-FASST are of this form.
"""

from __future__ import annotations

import warnings

import equinox as eqx
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float

from ctm_interface._callers import user_stacklevel

from ._abstract import AbstractEmulator, EmulatorLabels, Envelope, default_envelope
from ._methods import ClosedForm


def _reference_input(labels: EmulatorLabels, x_ref) -> Array:
    if x_ref is not None:
        x_ref = jnp.asarray(x_ref, dtype=jnp.float64)
        if x_ref.shape != labels.input_shape:
            raise ValueError(
                f"`x_ref` has shape {x_ref.shape}; expected the input shape {labels.input_shape}"
            )
        return x_ref
    if labels.input_kind != "scale":
        raise ValueError(
            "emission inputs need the base-case emissions as `x_ref` (the reference input); pass x_ref=..."
        )
    return jnp.ones(labels.input_shape)


class LinearEmulator(AbstractEmulator):
    """$y = y_0 + J (x - x_0)$: a linear source-receptor matrix.

    **Arguments** (constructor)

    - `labels`: `EmulatorLabels` (e.g. `EmulatorLabels.from_runs(runs)`).
    - `x_ref`: reference input (defaults to ones for scaling-factor inputs).
    - `on_out_of_envelope`: `"warn" | "raise" | "ignore"`.

    **Fields**: `jacobian[n_out, n_in]` (outputs and inputs flattened in C order), `base`, `x_ref`,
    `envelope`, `labels`. Parameters are zero until `surrogate.fit` is called.
    """

    # the fields every emulator has come first (the leaf order of files saved by earlier versions)
    base: Float[Array, " component *receptor"]
    x_ref: Float[Array, "*shape"]
    envelope: Envelope
    labels: EmulatorLabels = eqx.field(static=True)
    jacobian: Float[Array, "n_out n_in"]

    def __init__(self, labels: EmulatorLabels, *, x_ref=None, on_out_of_envelope: str = "warn"):
        self.labels = labels
        self.x_ref = _reference_input(labels, x_ref)
        n_in = int(np.prod(labels.input_shape))
        n_out = int(np.prod(labels.output_shape))
        self.jacobian = jnp.zeros((n_out, n_in))
        self.base = jnp.zeros(labels.output_shape)
        self.envelope = default_envelope(labels, on_out_of_envelope)

    @property
    def hyperparameters(self) -> dict:
        return {}

    def _predict(self, x):
        d = (x - self.x_ref).reshape(-1)
        return self.base + (self.jacobian @ d).reshape(self.base.shape)

    def default_fit_method(self) -> ClosedForm:
        return ClosedForm()

    def _fit_closed_form(self, x: np.ndarray, y: np.ndarray, method: ClosedForm) -> LinearEmulator:
        """Least squares of `[1, x - x_ref]` on the outputs (minimum-norm when under-determined; with
        `method.ridge` > 0, ridge-penalised except the intercept)."""
        n = x.shape[0]
        d = (x - np.asarray(self.x_ref)).reshape(n, -1)
        a = np.concatenate([np.ones((n, 1)), d], axis=1)
        yf = y.reshape(n, -1)
        if method.ridge > 0:
            reg = method.ridge * np.eye(a.shape[1])
            reg[0, 0] = 0.0
            sol = np.linalg.solve(a.T @ a + reg, a.T @ yf)
        else:
            sol, _, rank, _ = np.linalg.lstsq(a, yf, rcond=None)  # minimum-norm when under-determined
            if rank < a.shape[1]:
                warnings.warn(
                    f"LinearEmulator: the {n} training runs determine only {rank} of the {a.shape[1]} parameters "
                    f"(intercept and {d.shape[1]} sensitivities; rank of [1, x - x_ref] is {rank}): the fitted "
                    "sensitivities are the minimum-norm least-squares solution, which spreads each response "
                    "over inputs the design cannot tell apart, so per-source or per-species sensitivities are not "
                    "identified. Add runs that vary the inputs independently (at least inputs + 1 runs, e.g. "
                    "ctm_interface.latin_hypercube_design), or pass method=surrogate.ClosedForm(ridge=...)",
                    UserWarning, stacklevel=user_stacklevel("surrogate"))
        model = eqx.tree_at(lambda m: m.jacobian, self, jnp.asarray(sol[1:].T))
        return eqx.tree_at(lambda m: m.base, model, jnp.asarray(sol[0].reshape(self.base.shape)))

    def _training_start(self, x, y, base):
        raise TypeError(_closed_form_only(self))


def _closed_form_only(model) -> str:
    return (
        f"{type(model).__name__} is fitted in closed form (its output is linear in its parameters): pass "
        "method=surrogate.ClosedForm(...) (or no method)"
    )
