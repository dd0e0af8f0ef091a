"""The emulator interface: labels and units, the training envelope, and `AbstractEmulator`.

An emulator maps emissions to PM2.5 components, `y = f(x)`:

- source-level inputs `x[source, species]` (emission scaling factors relative to the base case, or emissions
  per source region and species; an extra trailing dimension such as `level` or a sector group is allowed),
  outputs `y[component, receptor]` (population-weighted annual means per receptor region);
- gridded inputs `x[species, level, row, col]` (kt/yr per cell), outputs `y[component, row, col]`.

PM2.5 is the weighted sum of the components, `PM2.5 = SO4 + NO3 + NH4 + BC + 1.4 OC + PM_other` (the 1.4
organic-matter/organic-carbon ratio used by the pf-ERSM studies; Xing et al. 2018, ACP 18, 7799).
"""

import abc
import dataclasses
import warnings

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from equinox import AbstractVar
from jaxtyping import Array, Bool, Float, Real

from ctm_interface._vocabulary import (
    DEFAULT_OM_OC as OM_OC_RATIO,
    ORGANIC_CARBON_NAMES as ORGANIC_CARBON_NAMES,
    TOTALS as PM25_TOTAL_NAMES,  # PM2.5 totals: never outputs with their parts
    pm25_weights,
)

from ._methods import AbstractFitMethod, Adam, ClosedForm
from ._runs import _io_names

ENVELOPE_POLICIES = ("warn", "raise", "ignore")


class OutOfEnvelopeWarning(UserWarning):
    """An emulator was evaluated at inputs outside the design it was trained on (its predictions there are
    extrapolations and are not validated)."""


@dataclasses.dataclass(frozen=True)
class EmulatorLabels:
    """Labels and units of an emulator's inputs and outputs (hashable, so it is a static field).

    **Fields**

    - `input_dims`, `input_coords`: names of the input dimensions, e.g. `("source", "species")`, and the
      labels along each (tuples of strings; grid dimensions are labelled `"0", "1", ...`).
    - `input_units`: e.g. `"1"` for scaling factors, `"kt/yr"` for emissions.
    - `output_dims`, `output_coords`: e.g. `("component", "receptor")`; the first output dimension is always
      `component`.
    - `output_units`: e.g. `"ug m-3"`.
    - `input_kind`: `"scale"` (scaling factors, reference input = 1) or `"emission"` (absolute emissions,
      reference input = the base-case emissions).
    """

    input_dims: tuple[str, ...]
    input_coords: tuple[tuple[str, ...], ...]
    input_units: str
    output_dims: tuple[str, ...]
    output_coords: tuple[tuple[str, ...], ...]
    output_units: str
    input_kind: str = "scale"

    def __post_init__(self):
        if len(self.input_dims) != len(self.input_coords):
            raise ValueError(
                f"`input_dims` {self.input_dims} and `input_coords` have different lengths "
                f"({len(self.input_dims)} vs {len(self.input_coords)}): give one label tuple per dimension"
            )
        if len(self.output_dims) != len(self.output_coords):
            raise ValueError(
                f"`output_dims` {self.output_dims} and `output_coords` have different lengths: give one label "
                "tuple per dimension"
            )
        if not self.output_dims or self.output_dims[0] != "component":
            raise ValueError(
                f"`output_dims` {self.output_dims} must start with 'component' (outputs are "
                "y[component, receptor...]); transpose the outputs so that component comes first"
            )
        totals = [c for c in self.output_coords[0] if c in PM25_TOTAL_NAMES]
        if totals and len(self.output_coords[0]) > 1:
            raise ValueError(
                f"output components {self.output_coords[0]} include the PM2.5 total(s) {totals} together with "
                "other components: PM2.5 (the weighted sum of the components) would count them twice; drop "
                "the total from the run set's components"
            )
        if self.input_kind not in ("scale", "emission"):
            raise ValueError(f"`input_kind` must be 'scale' or 'emission', got {self.input_kind!r}")

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(len(c) for c in self.input_coords)

    @property
    def output_shape(self) -> tuple[int, ...]:
        return tuple(len(c) for c in self.output_coords)

    @property
    def components(self) -> tuple[str, ...]:
        return self.output_coords[0]

    def component_weights(self) -> np.ndarray:
        """PM2.5 weights of the components: 1.4 (OM/OC) for organic carbon (`OC`, CMAQ `PM25_OC`, GEOS-Chem
        `OCPI`/`OCPO`, ...), 1 otherwise (`OM`, organic matter, already includes the factor)."""
        return pm25_weights(self.components, om_oc=OM_OC_RATIO)

    def to_json(self) -> dict:
        return {
            "input_dims": list(self.input_dims),
            "input_coords": [list(c) for c in self.input_coords],
            "input_units": self.input_units,
            "output_dims": list(self.output_dims),
            "output_coords": [list(c) for c in self.output_coords],
            "output_units": self.output_units,
            "input_kind": self.input_kind,
        }

    @classmethod
    def from_json(cls, d: dict) -> "EmulatorLabels":
        return cls(
            input_dims=tuple(d["input_dims"]),
            input_coords=tuple(tuple(c) for c in d["input_coords"]),
            input_units=d["input_units"],
            output_dims=tuple(d["output_dims"]),
            output_coords=tuple(tuple(c) for c in d["output_coords"]),
            output_units=d["output_units"],
            input_kind=d.get("input_kind", "scale"),
        )

    @classmethod
    def from_runs(cls, runs, inputs: str | None = None, outputs: str | None = None) -> "EmulatorLabels":
        """Labels of a run set (an `xarray.Dataset` with a `run` dimension).

        **Arguments**

        - `runs`: source-level runs with `scale[run, source, species]` (or `emissions[run, source, species]`)
          and `pm25[run, receptor, component]`, as `ctm_interface.collect_runs` writes them; or gridded runs
          with `emissions[run, species, level, row, col]` and `conc[run, component, row, col]`.
        - `inputs`, `outputs`: names of the input and output variables when they differ from the above.

        **Returns** the `EmulatorLabels`; input and output dimension order follow the variables, except
        that `component` is moved to the front of the outputs.
        """
        xname, yname = _io_names(runs, inputs, outputs)
        x, y = runs[xname], runs[yname]
        if "component" not in y.dims:
            raise ValueError(f"output variable {yname!r} has dims {y.dims}: it needs a 'component' dimension")
        xdims = tuple(d for d in x.dims if d != "run")
        ydims = ("component",) + tuple(d for d in y.dims if d not in ("run", "component"))

        def coords(da, dims):
            return tuple(
                tuple(str(v) for v in (da[d].values if d in da.coords else range(da.sizes[d]))) for d in dims
            )

        units_x = str(x.attrs.get("units", "1"))
        kind = "scale" if (xname == "scale" or units_x in ("1", "", "dimensionless")) else "emission"
        return cls(
            input_dims=xdims,
            input_coords=coords(x, xdims),
            input_units=units_x,
            output_dims=ydims,
            output_coords=coords(y, ydims),
            output_units=str(y.attrs.get("units", "ug m-3")),
            input_kind=kind,
        )


class Envelope(eqx.Module):
    """The training envelope: a box `lower <= x <= upper` (per input element) around the training design.

    Inputs outside the box are flagged according to `policy`: `"warn"` (an `OutOfEnvelopeWarning`, also
    under `jit` and `vmap`, via a host callback that runs only when an input is outside), `"raise"` (`eqx.error_if`: a runtime error under `jit` and
    `vmap`) or `"ignore"`. The predictions are never silently clipped or extrapolated without notice.
    (Under `jit(grad(...))` of an emulator whose gradient does not depend on the input, e.g. the linear one,
    XLA drops the unused forward value and with it the check: nothing is extrapolated there.)

    **Fields**

    - `lower`, `upper`: arrays shaped like one input.
    - `policy`: `"warn" | "raise" | "ignore"` (static).
    """

    lower: Float[Array, "*shape"]
    upper: Float[Array, "*shape"]
    policy: str = eqx.field(static=True, default="warn")

    def __check_init__(self):
        if self.policy not in ENVELOPE_POLICIES:
            raise ValueError(f"`on_out_of_envelope` must be one of {ENVELOPE_POLICIES}, got {self.policy!r}")

    def with_policy(self, policy: str) -> "Envelope":
        """The same box with another out-of-envelope policy (the one place a policy is replaced)."""
        return Envelope(self.lower, self.upper, policy)

    def contains(self, x: Float[Array, "*shape"]) -> Bool[Array, ""]:
        """`True` when every element of `x` lies inside the box (one input, no batch dimension)."""
        return jnp.all((x >= self.lower) & (x <= self.upper))

    def check(self, x: Float[Array, "*shape"]) -> Float[Array, "*shape"]:
        """Apply the policy to one input `x`; returns `x` (tied to the check under `raise`)."""
        if self.policy == "ignore":
            return x
        outside = jnp.logical_not(self.contains(x))
        if self.policy == "raise":
            return eqx.error_if(
                x,
                outside,
                "emulator input outside the training envelope (the design the emulator was fitted on); "
                "predictions there are extrapolations. Retrain on a design covering these inputs, or set "
                "on_out_of_envelope='warn' or 'ignore'",
            )
        n_low = jnp.sum(x < self.lower)
        n_high = jnp.sum(x > self.upper)
        # The host callback sits in the taken branch of a lax.cond, so inside the envelope nothing leaves the
        # device, and it is a pure_callback (no side-effect token), which keeps jit's fast dispatch path; its
        # (always False) result is tied into x so it is not dead-code eliminated. Under vmap the cond becomes a
        # select and the callback runs once for the whole batch ("broadcast_all"): one warning per batch.
        flag = jax.lax.cond(
            outside,
            lambda: jax.pure_callback(
                _warn_outside,
                jax.ShapeDtypeStruct((), jnp.bool_),
                outside,
                n_low,
                n_high,
                vmap_method="broadcast_all",
            ),
            lambda: jnp.zeros((), jnp.bool_),
        )
        return x + jnp.zeros((), x.dtype) * flag.astype(x.dtype)


def _warn_outside(outside, n_low, n_high):
    outside = np.asarray(outside)
    if bool(np.any(outside)):
        warnings.warn(
            f"emulator input outside the training envelope ({int(np.sum(n_low))} element(s) below and "
            f"{int(np.sum(n_high))} above the training design): the prediction is an extrapolation",
            OutOfEnvelopeWarning,
            stacklevel=2,
        )
    return np.zeros(outside.shape, dtype=np.bool_)


def default_envelope(labels: EmulatorLabels, policy: str = "warn") -> Envelope:
    """An unbounded envelope (before fitting: nothing is flagged)."""
    shape = labels.input_shape
    return Envelope(jnp.full(shape, -jnp.inf), jnp.full(shape, jnp.inf), policy)


def envelope_from_design(x: np.ndarray, policy: str = "warn", margin: float | None = None) -> Envelope:
    """The box around training inputs `x[run, ...]`, widened by `margin` x range on each side.

    The default margin is one Latin-hypercube stratum, `1 / n_runs`: an `n`-run LHS over `[a, b]` leaves up to
    `(b - a)/n` uncovered at each end, and a held-out run from the same design must not be flagged.
    """
    x = np.asarray(x, dtype=np.float64)
    n = x.shape[0]
    margin = 1.0 / max(n, 1) if margin is None else float(margin)
    lo, hi = x.min(axis=0), x.max(axis=0)
    span = hi - lo
    # a constant input (all runs equal) gets a small relative tolerance instead of a zero-width box
    pad = np.where(span > 0, margin * span, 1e-9 * np.maximum(np.abs(hi), 1.0))
    return Envelope(jnp.asarray(lo - pad), jnp.asarray(hi + pad), policy)


class AbstractEmulator(eqx.Module):
    """Emissions -> PM2.5 components. Abstract; the implementations are final (equinox's abstract/final
    pattern: subclass `AbstractEmulator` directly, never a concrete emulator).

    **What an implementation must provide** (`eqx.AbstractVar`s, fields or properties, and one method; a
    class missing one cannot be instantiated, and the error names it):

    - `base`: the base-case output `y[component, receptor...]` (the prediction at `x_ref`).
    - `x_ref`: the reference input (ones for scaling factors; the base-case emissions otherwise).
    - `envelope`: the training `Envelope` (with the `on_out_of_envelope` policy); a model without a training
      design can use `default_envelope(labels)` (unbounded: nothing is flagged).
    - `labels`: `EmulatorLabels` (static): input/output dimension names, labels and units.
    - `_predict(x) -> y[component, receptor...]`: the function itself, without the envelope check.

    **What it gets by default** (override where the default does not fit)

    - `__call__(x) -> y[component, receptor...]`: one input, no batch dimension (use `jax.vmap` for many);
      the input is checked against the envelope first.
    - `pm25(x) -> [receptor...]`: $\\mathrm{PM_{2.5}} = \\sum_c w_c y_c$ with $w_{OC} = 1.4$, else 1.
    - `in_envelope(x) -> bool`: the envelope test on its own (a result flag, for use under `vmap`).
    - `n_members` (1) and `member_predictions(x) -> [member, component, receptor...]` (`self(x)[None]`): an
      ensemble overrides both; `diffmrio.chain.Chain` weights the members with `ChainInputs.member_weights`
      when `n_members > 1`.
    - `with_envelope_policy(policy)`: a copy with another out-of-envelope policy.
    - `hyperparameters` (`{}`): settings that define the architecture (stored with saved models and in
      training checkpoints).
    - training hooks used by `surrogate.fit`: `default_fit_method()` (`Adam()`), `_fit_closed_form(x, y,
      method)` (refused: no closed form), `_training_start(x, y, base) -> (model, train_base)` (the model as
      is) and `_frozen()` (field selectors gradient training keeps fixed besides `x_ref` and `envelope`).
    """

    base: AbstractVar[Float[Array, " component *receptor"]]
    x_ref: AbstractVar[Float[Array, "*shape"]]
    envelope: AbstractVar[Envelope]
    labels: AbstractVar[EmulatorLabels]

    @abc.abstractmethod
    def _predict(self, x: Float[Array, "*shape"]) -> Float[Array, " component *receptor"]:
        """The emulator's function without the envelope check."""

    def _check_input(self, x) -> Float[Array, "*shape"]:
        x = jnp.asarray(x)
        expected = self.labels.input_shape
        if x.shape != expected:
            hint = " (one input at a time: use jax.vmap over a batch)" if x.shape[1:] == expected else ""
            raise ValueError(
                f"emulator input has shape {x.shape} but the emulator expects {expected} = "
                f"{self.labels.input_dims}{hint}"
            )
        if not jnp.issubdtype(x.dtype, jnp.floating):
            x = x.astype(self.x_ref.dtype)
        return x

    def __call__(self, x: Real[Array | np.ndarray, "*shape"]) -> Float[Array, " component *receptor"]:
        x = self._check_input(x)
        x = self.envelope.check(x)
        return self._predict(x)

    def pm25(self, x: Real[Array | np.ndarray, "*shape"]) -> Float[Array, "*receptor"]:
        y = self(x)
        w = jnp.asarray(self.labels.component_weights(), dtype=y.dtype)
        return jnp.tensordot(w, y, axes=1)

    def in_envelope(self, x: Real[Array | np.ndarray, "*shape"]) -> Bool[Array, ""]:
        return self.envelope.contains(self._check_input(x))

    # ----------------------------------------------------------------- members (one for a single model)
    @property
    def n_members(self) -> int:
        """Number of ensemble members (1 for a single model)."""
        return 1

    def member_predictions(self, x: Real[Array | np.ndarray, "*shape"]) -> Float[Array, " member component *receptor"]:
        """Each member's prediction, `[member, component, receptor...]` (a single model: `self(x)[None]`)."""
        return self(x)[None]

    # ---------------------------------------------------------------------------------------- envelope
    def with_envelope_policy(self, policy: str) -> "AbstractEmulator":
        """A copy whose out-of-envelope policy is `policy` (`"warn" | "raise" | "ignore"`)."""
        return eqx.tree_at(lambda m: m.envelope, self, self.envelope.with_policy(policy))

    @property
    def hyperparameters(self) -> dict:
        return {}

    # ------------------------------------------------------------------------------- training hooks
    def default_fit_method(self) -> AbstractFitMethod:
        """The method `surrogate.fit` uses when none is given."""
        return Adam()

    def _fit_closed_form(self, x: np.ndarray, y: np.ndarray, method: ClosedForm) -> "AbstractEmulator":
        """The closed-form fit to inputs `x[run, ...]` and outputs `y[run, ...]` (float64 numpy)."""
        raise TypeError(
            f"{type(self).__name__} has no closed-form fit (its output is not linear in its parameters): "
            "train it with method=surrogate.Adam(...) and key=..."
        )

    def _training_start(self, x: np.ndarray, y: np.ndarray, base) -> "tuple[AbstractEmulator, bool]":
        """The model gradient training starts from, and whether training updates `base` (default: as is)."""
        if base is not None:
            raise ValueError(f"`base=` is used by the MLP emulator only; {type(self).__name__} does not take it")
        return self, False

    def _frozen(self) -> tuple:
        """Selectors (`lambda m: m.field`) of the fields gradient training keeps fixed, besides `x_ref` and
        `envelope` (default: none)."""
        return ()


def with_envelope_policy(
    model: AbstractEmulator, on_out_of_envelope: str
) -> AbstractEmulator:
    """A copy of `model` whose out-of-envelope policy is `on_out_of_envelope` (`"warn"|"raise"|"ignore"`);
    the same as `model.with_envelope_policy(on_out_of_envelope)`."""
    return model.with_envelope_policy(on_out_of_envelope)


def with_envelope(model: AbstractEmulator, envelope: Envelope) -> AbstractEmulator:
    return eqx.tree_at(lambda m: m.envelope, model, envelope)
