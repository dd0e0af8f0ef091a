"""Deep ensembles: several emulators of one kind stacked along a leading axis and evaluated with
`eqx.filter_vmap` (Lakshminarayanan et al. 2017, "Simple and scalable predictive uncertainty estimation using
deep ensembles", NeurIPS).

The ensemble prediction is the member mean, $\\bar y = \\frac1M \\sum_m y_m$, and its spread the member
standard deviation, $\\sigma = \\sqrt{\\frac1M \\sum_m (y_m - \\bar y)^2}$.
"""

from __future__ import annotations

from collections.abc import Callable

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
from jaxtyping import Array, Float, PRNGKeyArray, Real

from ._abstract import AbstractEmulator, EmulatorLabels, Envelope


def _stack(models: list) -> AbstractEmulator:
    arrays = [eqx.filter(m, eqx.is_array) for m in models]
    static = eqx.filter(models[0], eqx.is_array, inverse=True)
    stacked = jax.tree.map(lambda *xs: jnp.stack(xs), *arrays)
    return eqx.combine(stacked, static)


def _member(stacked: AbstractEmulator, i: int) -> AbstractEmulator:
    arrays, static = eqx.partition(stacked, eqx.is_array)
    return eqx.combine(jax.tree.map(lambda a: a[i], arrays), static)


class Ensemble(AbstractEmulator):
    """A deep ensemble of emulators of one class (stacked; evaluated with `eqx.filter_vmap`).

    **Arguments** (constructor)

    - `make`: `key -> emulator` (e.g. `lambda k: MLPEmulator(labels, key=k)`), or a list of emulators of
      one class (e.g. separately fitted) to stack.
    - `n_members`: ensemble size (with `make`).
    - `key`: keyword-only PRNG key (with `make`); member `m` is built from `jr.split(key, n_members)[m]`.

    **Methods**: `__call__(x)` the member mean; `spread(x)` the member standard deviation;
    `member_predictions(x) -> [member, component, receptor...]`; `member(i)` one member as an emulator.
    """

    members: AbstractEmulator
    envelope: Envelope
    labels: EmulatorLabels = eqx.field(static=True)

    def __init__(
        self,
        make: Callable[[PRNGKeyArray], AbstractEmulator] | list[AbstractEmulator],
        n_members: int | None = None,
        *,
        key: PRNGKeyArray | None = None,
    ):
        if callable(make):
            if n_members is None or int(n_members) < 1 or key is None:
                raise ValueError("building an ensemble from `make` needs `n_members` >= 1 and `key=`")
            keys = jr.split(key, int(n_members))
            members = eqx.filter_vmap(make)(keys)
            if not isinstance(members, AbstractEmulator):
                raise TypeError("`make` must return an emulator (an AbstractEmulator)")
            first = _member(members, 0)
        else:
            models = list(make)
            if not models:
                raise ValueError("the list of ensemble members is empty")
            if len({type(m) for m in models}) != 1 or len({m.labels for m in models}) != 1:
                raise ValueError("ensemble members must be of one class with identical labels")
            if isinstance(models[0], Ensemble):
                raise TypeError("ensembles of ensembles are not supported: pass the members")
            members, first = _stack(models), models[0]
        self.members = members
        self.labels = first.labels
        self.envelope = first.envelope

    @property
    def n_members(self) -> int:
        """Number of members (the leading axis of the stacked members' arrays)."""
        return int(jax.tree.leaves(eqx.filter(self.members, eqx.is_array))[0].shape[0])

    def default_fit_method(self):
        return _member(self.members, 0).default_fit_method()

    @property
    def base(self) -> Float[Array, " component *receptor"]:
        # vmapped over members, so members whose `base` is computed (a property) work too
        return jnp.mean(eqx.filter_vmap(lambda m: m.base)(self.members), axis=0)

    @property
    def x_ref(self) -> Float[Array, "*shape"]:
        return self.members.x_ref[0]

    @property
    def hyperparameters(self) -> dict:
        member = _member(self.members, 0)
        return {
            "n_members": self.n_members,
            "member_class": type(member).__name__,
            "member": member.hyperparameters,
        }

    def member(self, i: int) -> AbstractEmulator:
        return _member(self.members, i)

    def member_predictions(self, x: Real[Array | np.ndarray, "*shape"]) -> Float[Array, " member component *receptor"]:
        x = self.envelope.check(self._check_input(x))
        return eqx.filter_vmap(lambda m: m._predict(x))(self.members)

    def _predict(self, x):
        return jnp.mean(eqx.filter_vmap(lambda m: m._predict(x))(self.members), axis=0)

    def spread(self, x: Real[Array | np.ndarray, "*shape"]) -> Float[Array, " component *receptor"]:
        return jnp.std(self.member_predictions(x), axis=0)
