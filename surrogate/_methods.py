"""Training configuration as objects: how `surrogate.fit` trains an emulator.

`fit(model, runs, method=ClosedForm(...))` or `fit(model, runs, method=Adam(...), key=key)`, with an optional
`checkpoint=Checkpoint(path, every=...)`. A method is a small immutable `eqx.Module` holding its settings (like
optax's gradient transformations or diffrax's `SaveAt`); `fit` dispatches on the method's type, and the
emulator family says whether it can be trained that way (a method it cannot use is refused with the method to
use instead). This module imports nothing else from `surrogate`, so the emulator families and `fit` can both
import it.
"""

from __future__ import annotations

import dataclasses
import math
import os

import equinox as eqx
import numpy as np


def _number(name: str, v, *, low=None, low_ok=True, high=None, high_ok=False) -> float:
    if isinstance(v, bool) or not isinstance(v, int | float | np.integer | np.floating):
        raise TypeError(f"`{name}` must be a number, got {v!r}")
    ok = math.isfinite(v)
    if ok and low is not None:
        ok = v >= low if low_ok else v > low
    if ok and high is not None:
        ok = v <= high if high_ok else v < high
    if not ok:
        rng = (f"{'>=' if low_ok else '>'} {low}" if low is not None else "") + (
            f"{' and ' if low is not None else ''}{'<=' if high_ok else '<'} {high}" if high is not None else ""
        )
        raise ValueError(f"`{name}` must be a finite number {rng}, got {v!r}")
    return float(v)


def _integer(name: str, v, low: int, optional: bool = False) -> int | None:
    if optional and v is None:
        return None
    whole = isinstance(v, int | np.integer) or (isinstance(v, float | np.floating) and float(v).is_integer())
    if isinstance(v, bool) or not whole or v < low:
        raise ValueError(f"`{name}` must be an integer >= {low}{' or None' if optional else ''}, got {v!r}")
    return int(v)


class AbstractFitMethod(eqx.Module):
    """How `surrogate.fit` trains an emulator. Implementations: `ClosedForm`, `Adam`."""

    def settings(self) -> dict:
        """The method's settings as a JSON-ready dict (stored in checkpoints and provenance)."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}


class ClosedForm(AbstractFitMethod):
    """Closed-form least squares, for the emulators that are linear in their parameters.

    - `LinearEmulator`: $\\min \\sum_r \\|y_r - y_0 - J(x_r - x_0)\\|^2 + \\text{ridge}\\,\\|J\\|^2$
      (minimum-norm least squares when `ridge = 0` and the system is under-determined).
    - `PolynomialEmulator`: ridge regression on standardised features with the penalty chosen per output by
      exact leave-one-out cross-validation over `ridge_alphas` (relative to the largest squared singular value;
      default `logspace(-10, 1, 45)`), see `surrogate.ridge_loo`.

    **Fields**: `ridge` (>= 0, the linear emulator's penalty), `ridge_alphas` (a tuple of candidate penalties,
    or `None`).
    """

    ridge: float = 0.0
    ridge_alphas: tuple[float, ...] | None = None

    def __init__(self, ridge: float = 0.0, ridge_alphas=None):
        self.ridge = _number("ridge", ridge, low=0)
        if ridge_alphas is not None:
            a = np.asarray(ridge_alphas, dtype=np.float64).reshape(-1)
            if a.size == 0 or not np.all(np.isfinite(a)) or np.any(a < 0):
                raise ValueError(f"`ridge_alphas` must be a non-empty list of finite penalties >= 0, got {ridge_alphas!r}")
            ridge_alphas = tuple(float(v) for v in a)
        self.ridge_alphas = ridge_alphas


class Adam(AbstractFitMethod):
    """Gradient training with optax AdamW, for the neural emulators (`MLPEmulator`, `GriddedEmulator`,
    `StructuredEmulator`, and user-defined ones).

    The loss is the relative squared error $\\frac1N\\sum ((\\hat y - y)/s)^2$ ($s$ = |base case|, floored at 5%
    of the component mean); the learning rate follows a warmup-cosine schedule (warmup `min(100, steps/10)`
    steps, decay to 1% of `learning_rate`), gradients are clipped to global norm 1, and training stops early
    when the loss on a held-out split of `validation_fraction` of the runs has not improved for `patience`
    steps (the parameters with the best validation loss are returned). With `sobolev_weight` $\\lambda > 0$ the
    loss adds $\\lambda\\, \\overline{\\|\\nabla_x (w\\cdot\\hat y) - g\\|^2} / \\overline{g^2}$ over runs that carry
    adjoint sensitivities $g$ (Czarnecki et al. 2017, "Sobolev training for neural networks").

    **Fields**

    - `steps`: planned optimisation steps (the schedule's length; default 3000).
    - `learning_rate` (default 3e-3), `weight_decay` (default 1e-6).
    - `batch_size`: runs per step (`None`: full batch).
    - `validation_fraction` (default 0.15), `eval_every` (steps between validation losses, default 25),
      `patience` (steps without improvement before stopping; `None`: never; default 1000).
    - `sobolev_weight` (default 0).
    - `max_steps`: stop after this many steps in total (an interruption: with a checkpoint, a later call
      resumes and reproduces the uninterrupted result exactly). It does not change the trained result, so it
      is not part of a checkpoint's fingerprint.
    """

    steps: int = 3000
    learning_rate: float = 3e-3
    weight_decay: float = 1e-6
    batch_size: int | None = None
    validation_fraction: float = 0.15
    eval_every: int = 25
    patience: int | None = 1000
    sobolev_weight: float = 0.0
    max_steps: int | None = None

    def __init__(
        self,
        steps: int = 3000,
        learning_rate: float = 3e-3,
        weight_decay: float = 1e-6,
        batch_size: int | None = None,
        validation_fraction: float = 0.15,
        eval_every: int = 25,
        patience: int | None = 1000,
        sobolev_weight: float = 0.0,
        max_steps: int | None = None,
    ):
        self.steps = _integer("steps", steps, 1)
        self.learning_rate = _number("learning_rate", learning_rate, low=0, low_ok=False)
        self.weight_decay = _number("weight_decay", weight_decay, low=0)
        self.batch_size = _integer("batch_size", batch_size, 1, optional=True)
        self.validation_fraction = _number("validation_fraction", validation_fraction, low=0, high=1)
        self.eval_every = _integer("eval_every", eval_every, 1)
        self.patience = _integer("patience", patience, 0, optional=True)
        self.sobolev_weight = _number("sobolev_weight", sobolev_weight, low=0)
        self.max_steps = _integer("max_steps", max_steps, 0, optional=True)

    #: fields that do not change the trained result (left out of checkpoint fingerprints)
    NOT_IN_FINGERPRINT = ("max_steps",)


class Checkpoint(eqx.Module):
    """A resumable training checkpoint for `surrogate.fit` (gradient training): the file `path`, written
    atomically every `every` steps and at the end. A later `fit` with the same data, model and method resumes
    from it; one written by a different training is refused (content fingerprints). An `Ensemble` member `i`
    uses `path` + `.member<i>`."""

    path: str
    every: int = 200

    def __init__(self, path: str | os.PathLike, every: int = 200):
        if not isinstance(path, str | os.PathLike):
            raise TypeError(f"`Checkpoint.path` must be a file path, got {type(path).__name__}")
        self.path = os.fspath(path)
        self.every = _integer("checkpoint every", every, 1)
