"""Concentration-response functions (CRFs): GEMM, IER and log-linear, as equinox Modules.

Every CRF holds its parameters as `[cause, age]` arrays (float64) with the cause and age-group labels as static
fields and a static `applies[cause, age]` mask (the cause-age pairs the function is applied to; elsewhere the
relative risk is exactly 1). `crf.log_relative_risk(C)` maps a concentration field `C[*cell]` (PM2.5, ug m-3) to
`log RR[cause, age, *cell]`; `crf.attributable_fraction(C)` is `1 - 1/RR`.

The threshold `z = max(0, C - cf)` and the power `z^delta` (IER, delta < 1) are written with the "double where"
pattern, so `jax.grad` is finite (zero) at and below the counterfactual instead of `0 * inf = nan`.
"""

import abc
import dataclasses
from collections.abc import Mapping, Sequence
from typing import ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from equinox import AbstractVar
from jaxtyping import Array, Float, PRNGKeyArray

from ._params import GEMM_AGE_LABELS, GEMM_BURNETT2018, GEMM_CF, IER_CENTRAL

#: The GBD 5-year age groups, by lower bound (0-4, 5-9, ..., 90-94, 95+).
GBD_AGES: tuple[int, ...] = tuple(range(0, 100, 5))

#: The five causes of the GEMM 5-COD model and of the IER (the COBENEFIT study's set).
FIVE_CAUSES: tuple[str, ...] = ("IHD", "STROKE", "COPD", "LC", "LRI")

_ALIASES = {"ALRI": "LRI", "STROKE": "STROKE", "NCD+LRI": "NCD+LRI", "NCDLRI": "NCD+LRI", "DM": "DM2"}


def canonical_cause(name: str) -> str:
    """The package's spelling of a cause name (`"Stroke"` -> `"STROKE"`, `"ALRI"` -> `"LRI"`)."""
    if not isinstance(name, str):
        raise TypeError(f"cause names must be strings, got {name!r}")
    key = name.strip().upper()
    return _ALIASES.get(key, key)


def _canonical_causes(causes: Sequence[str] | str) -> tuple[str, ...]:
    if isinstance(causes, str):
        causes = (causes,)
    out = tuple(canonical_cause(c) for c in causes)
    if len(set(out)) != len(out):
        raise ValueError(f"`causes` has duplicates after normalising names: {out}")
    if not out:
        raise ValueError("`causes` is empty: give at least one cause, e.g. ('IHD', 'STROKE', 'COPD', 'LC', 'LRI')")
    return out


def _as_ages(ages: Sequence[int]) -> tuple[int, ...]:
    out = tuple(int(a) for a in ages)
    if not out or list(out) != sorted(set(out)):
        raise ValueError(f"`ages` must be strictly increasing age-group lower bounds (e.g. 0, 5, ..., 95), got {ages}")
    return out


def _applies_mask(
    causes: tuple[str, ...],
    ages: tuple[int, ...],
    age_ranges: Mapping[str, tuple[int, int | None]] | None,
    default: tuple[int, int | None],
) -> tuple[tuple[bool, ...], ...]:
    """`applies[c][a]` for age groups whose lower bound lies in `[lo, hi)` of the cause's age range."""
    ranges = {canonical_cause(k): v for k, v in (age_ranges or {}).items()}
    unknown = set(ranges) - set(causes)
    if unknown:
        raise ValueError(f"`age_ranges` names causes {sorted(unknown)} that are not in `causes` {causes}")
    mask = []
    for c in causes:
        lo, hi = ranges.get(c, default)
        mask.append(tuple(bool(a >= lo and (hi is None or a < hi)) for a in ages))
    return tuple(mask)


def _to_mask(applies, shape: tuple[int, int]) -> tuple[tuple[bool, ...], ...]:
    if applies is None:
        return tuple(tuple(True for _ in range(shape[1])) for _ in range(shape[0]))
    arr = np.asarray(applies, dtype=bool)
    if arr.shape != shape:
        raise ValueError(
            f"`applies` has shape {arr.shape}, expected [cause, age] = {shape}: give None (applies everywhere) or "
            "one row of booleans per cause with one entry per age group"
        )
    return tuple(tuple(bool(v) for v in row) for row in arr)


def _f64(x) -> Array:
    return jnp.asarray(x, dtype=jnp.float64)


def _expand(p: Array, ndim: int) -> Array:
    """`p[cause, age]` -> `p[cause, age, 1, ..., 1]` to broadcast against `C[*cell]`."""
    return p.reshape(p.shape + (1,) * ndim)


def _excess(C: Array, cf: Array) -> tuple[Array, Array]:
    """`z = max(0, C - cf)` as `[cause, age, *cell]` with a gradient of exactly 0 for `C <= cf`."""
    C = jnp.asarray(C)
    d = C[None, None] - _expand(cf, C.ndim)
    pos = d > 0
    return jnp.where(pos, d, 0.0), pos


def _safe_pow(z: Array, pos: Array, delta: Array) -> Array:
    """`z**delta` for `z >= 0` whose gradient stays finite at `z = 0` (double-where; `delta < 1` is singular)."""
    z_safe = jnp.where(pos, z, 1.0)
    return jnp.where(pos, z_safe**delta, 0.0)


class AbstractCRF(eqx.Module):
    """A concentration-response function over `(cause, age)` pairs. Abstract; the implementations (GEMM, IER,
    LogLinear) are final (equinox's abstract/final pattern: subclass `AbstractCRF` directly).

    **What an implementation must provide** (a class missing one cannot be instantiated, and the error names it):

    - `causes: tuple[str, ...]`, `ages: tuple[int, ...]` and `applies: tuple[tuple[bool, ...], ...]`
      (`[cause][age]`: where the function applies; elsewhere RR is exactly 1), declared as static fields
      (`eqx.field(static=True)`);
    - its parameters as array fields of shape `[cause, age]` (e.g. `beta: Float[Array, "cause age"]`), in the
      order of `causes` and `ages`;
    - `_log_rr(C) -> log RR[cause, age, *cell]` before the `applies` mask, for `C[*cell]` of any shape: expand
      each parameter to `p[cause, age, 1, ..., 1]` (`p.reshape(p.shape + (1,) * C.ndim)`) so that it broadcasts
      against `C[None, None]`, i.e. parameters broadcast as `[cause, age, *cell]`.

    **What the base class checks and normalises** (after the subclass's own `__init__`/`__post_init__`, so
    every construction path gets it): `causes` to the package's spelling (`canonical_cause`: `"ihd"` ->
    `"IHD"`, `"ALRI"` -> `"LRI"`) as a tuple; `ages` to a tuple of strictly increasing ints; `applies=None` to
    "applies everywhere", lists to tuples (static fields must be hashable), any other shape than `[cause, age]`
    refused; and every array field must be `[cause, age]` - a class with other array fields (e.g. spline
    knots) names its `[cause, age]` parameters in the class variable `param_fields`. A wrong shape is refused
    at construction with the class and field named, not at the first evaluation.

    **What it gets by default:** `log_relative_risk`, `relative_risk`, `attributable_fraction`; and `sample(*,
    key, n=None)`, which refuses (a CRF without a parameter distribution) unless the implementation overrides it
    (GEMM draws `theta`); `has_sample` says whether it does (`UncertaintySpec.default` checks it).

    !!! example
        ```python
        class LogLinearAbove(AbstractCRF):
            beta: Float[Array, "cause age"]
            causes: tuple[str, ...] = eqx.field(static=True)
            ages: tuple[int, ...] = eqx.field(static=True)
            applies: tuple[tuple[bool, ...], ...] | None = eqx.field(static=True, default=None)

            def _log_rr(self, C):
                return self.beta.reshape(self.beta.shape + (1,) * C.ndim) * C


        crf = LogLinearAbove(jnp.full((1, 2), 0.01), ("ihd",), (25, 30))
        crf.causes, crf.applies  # ('IHD',), ((True, True),)
        ```
    """

    # AbstractVars are not fields here, so the implementations' array fields still come first in their
    # constructors (the field order is the concrete class's).
    causes: AbstractVar[tuple[str, ...]]
    ages: AbstractVar[tuple[int, ...]]
    applies: AbstractVar[tuple[tuple[bool, ...], ...]]

    #: The names of the `[cause, age]` parameter fields; `None`: every array field.
    param_fields: ClassVar[tuple[str, ...] | None] = None

    def __check_init__(self):
        # Runs for every subclass after its own __init__ (equinox calls each class's __check_init__ along the
        # MRO). Normalising here uses object.__setattr__, as equinox itself does for field converters, because
        # the module is frozen by now; the built-in CRFs already hold the normalised values, so nothing changes
        # for them.
        name = type(self).__name__
        try:
            normal = {"causes": _canonical_causes(self.causes), "ages": _as_ages(self.ages)}
            normal["applies"] = _to_mask(self.applies, (len(normal["causes"]), len(normal["ages"])))
        except (TypeError, ValueError) as err:
            raise type(err)(
                f"{name}: {err}. An AbstractCRF subclass needs `causes` (cause names), `ages` (age-group lower "
                "bounds) and `applies` (None, or [cause][age] booleans)"
            ) from err
        for field, value in normal.items():
            old = getattr(self, field)
            if not (isinstance(old, tuple) and old == value):
                object.__setattr__(self, field, value)
        names = self.param_fields
        if names is None:
            names = tuple(
                f.name for f in dataclasses.fields(self)
                if not f.metadata.get("static", False) and eqx.is_array(getattr(self, f.name))
            )
        _check_param_shapes(self, names)

    @abc.abstractmethod
    def _log_rr(self, C: Array) -> Array:
        raise NotImplementedError

    def sample(self, *, key: PRNGKeyArray, n: int | None = None) -> "AbstractCRF":
        """A draw of the CRF's parameters (with `n`: `n` draws stacked along a leading axis of every array
        field, for `eqx.filter_vmap`). The default refuses: this CRF has no parameter distribution."""
        raise NotImplementedError(
            f"{type(self).__name__} has no parameter distribution to sample from: keep its parameters fixed "
            "(UncertaintySpec.default(..., sample_crf=False)) or give a crf_sampler (e.g. IERDraws.sample)"
        )

    @property
    def has_sample(self) -> bool:
        """Whether `sample` draws parameters (the class overrides the refusing default)."""
        return type(self).sample is not AbstractCRF.sample

    def log_relative_risk(self, C: Float[Array, "*cell"]) -> Float[Array, "cause age *cell"]:
        """`log RR(C)` per cause and age group; 0 where the CRF does not apply.

        **Arguments:** `C[*cell]`: PM2.5 (ug m-3), any shape.

        **Returns:** `log RR[cause, age, *cell]`.
        """
        C = jnp.asarray(C, dtype=jnp.float64)
        mask = jnp.asarray(np.asarray(self.applies, dtype=bool).reshape((len(self.causes), len(self.ages))))
        return jnp.where(_expand(mask, C.ndim), self._log_rr(C), 0.0)

    def relative_risk(self, C: Float[Array, "*cell"]) -> Float[Array, "cause age *cell"]:
        """`RR(C)[cause, age, *cell]` (1 where the CRF does not apply)."""
        return jnp.exp(self.log_relative_risk(C))

    def attributable_fraction(self, C: Float[Array, "*cell"]) -> Float[Array, "cause age *cell"]:
        """Population attributable fraction `1 - 1/RR(C) = -expm1(-log RR)`, shape `[cause, age, *cell]`."""
        return -jnp.expm1(-self.log_relative_risk(C))


def _check_param_shapes(obj, names: Sequence[str]) -> None:
    shape = (len(obj.causes), len(obj.ages))
    for n in names:
        s = tuple(jnp.shape(getattr(obj, n)))
        if s != shape:
            hint = " (transposed? give it as [cause, age])" if s == shape[::-1] else ""
            raise ValueError(
                f"{type(obj).__name__}.{n} has shape {s} but causes x ages is {shape}: parameters are [cause, age]"
                f"{hint}; build it with shape (len(causes), len(ages)) = {shape}, e.g. "
                f"jnp.broadcast_to(value, {shape})"
            )
    if len(obj.applies) != shape[0] or any(len(r) != shape[1] for r in obj.applies):
        raise ValueError(f"{type(obj).__name__}.applies must be [cause, age] = {shape}")


def _stack(module: eqx.Module, n: int) -> eqx.Module:
    """Broadcast every array leaf to a leading axis of length `n` (for `eqx.filter_vmap`)."""
    return jax.tree.map(lambda x: jnp.broadcast_to(x, (n,) + x.shape) if eqx.is_array(x) else x, module)


class GEMM(AbstractCRF):
    r"""Global Exposure Mortality Model (Burnett et al. 2018, PNAS 115:9592).

    $$RR(z) = \exp\left(\frac{\theta\log(1 + z/\alpha)}{1 + \exp(-(z-\mu)/\nu)}\right),\qquad
    z = \max(0, C - 2.4).$$

    Fields `theta, se_theta, alpha, mu, nu` are `[cause, age]` arrays. Use `GEMM.burnett2018(...)` for the
    published fits (5 causes, age-specific IHD and stroke, or NCD+LRI; with or without the Chinese cohort).

    !!! example
        ```python
        crf = GEMM.burnett2018(("NCD+LRI",), age_specific=False, ages=(25,))
        crf.relative_risk(jnp.array(35.0))  # [[1.3086]]
        ```
    """

    theta: Float[Array, "cause age"] = eqx.field(converter=_f64)
    se_theta: Float[Array, "cause age"] = eqx.field(converter=_f64)
    alpha: Float[Array, "cause age"] = eqx.field(converter=_f64)
    mu: Float[Array, "cause age"] = eqx.field(converter=_f64)
    nu: Float[Array, "cause age"] = eqx.field(converter=_f64)
    causes: tuple[str, ...] = eqx.field(static=True, converter=_canonical_causes)
    ages: tuple[int, ...] = eqx.field(static=True, converter=_as_ages)
    applies: tuple[tuple[bool, ...], ...] = eqx.field(static=True, default=None)
    cf: float = eqx.field(static=True, default=GEMM_CF)

    def __post_init__(self):
        self.applies = _to_mask(self.applies, (len(self.causes), len(self.ages)))

    def __check_init__(self):
        _check_param_shapes(self, ("theta", "se_theta", "alpha", "mu", "nu"))

    @classmethod
    def burnett2018(
        cls,
        causes: Sequence[str] | str = FIVE_CAUSES,
        *,
        ages: Sequence[int] = GBD_AGES,
        with_china: bool = True,
        age_specific: bool = True,
        age_ranges: Mapping[str, tuple[int, int | None]] | None = None,
    ) -> "GEMM":
        """The published GEMM fits (Burnett et al. 2018), as cited constants.

        **Arguments:**
        - `causes`: any of `"NCD+LRI", "IHD", "STROKE", "COPD", "LC", "LRI"` (default: the 5-COD set).
        - `ages`: age-group lower bounds the model is evaluated for (default GBD 0, 5, ..., 95).
        - `with_china`: the fit including the Chinese male cohort (`True`) or without it.
        - `age_specific`: use the 5-year fits (25-29 ... 80+; 80+ for every group from 80) instead of the 25+ fit.
          Only IHD, stroke and NCD+LRI differ by age.
        - `age_ranges`: per-cause `(lo, hi)` of age-group lower bounds where the CRF applies (`hi` exclusive,
          `None` open); default adults 25+ for every cause, as in Burnett et al. (2018).

        **Returns:** a `GEMM` with `[cause, age]` parameters.
        """
        causes = _canonical_causes(causes)
        ages = _as_ages(ages)
        table = GEMM_BURNETT2018["inc_China" if with_china else "ex_China"]
        unknown = [c for c in causes if c not in table]
        if unknown:
            raise ValueError(f"GEMM has no fit for {unknown}; available causes: {sorted(table)}")
        bounds = sorted(GEMM_AGE_LABELS.items(), key=lambda kv: kv[1])
        rows = []
        for c in causes:
            row = []
            for a in ages:
                label = "25+"
                if age_specific and a >= bounds[0][1]:
                    label = [lab for lab, lo in bounds if lo <= a][-1]
                row.append(table[c][label])
            rows.append(row)
        p = np.asarray(rows, dtype=np.float64)  # [cause, age, 5]
        applies = _applies_mask(causes, ages, age_ranges, (25, None))
        return cls(p[..., 0], p[..., 1], p[..., 2], p[..., 3], p[..., 4], causes, ages, applies, GEMM_CF)

    def _log_rr(self, C: Array) -> Array:
        z, _ = _excess(C, jnp.full(self.theta.shape, self.cf))
        n = C.ndim
        theta, alpha, mu, nu = (_expand(p, n) for p in (self.theta, self.alpha, self.mu, self.nu))
        return theta * jnp.log1p(z / alpha) * jax.nn.sigmoid((z - mu) / nu)

    def sample(self, *, key: PRNGKeyArray, n: int | None = None) -> "GEMM":
        r"""Draw `theta ~ Normal(theta, SE)`, one standard normal per cause shared across age groups.

        docs/science.md, section 6: SE/theta is constant within a cause, so one normal per cause keeps the age
        pattern. **Returns:** a `GEMM` (or, with `n`, one whose array fields carry a leading draw axis of
        length `n`, to be used with `eqx.filter_vmap`).
        """
        shape = (len(self.causes), 1) if n is None else (n, len(self.causes), 1)
        eps = jax.random.normal(key, shape, dtype=jnp.float64)
        base = self if n is None else _stack(self, n)
        return eqx.tree_at(lambda m: m.theta, base, base.theta + eps * base.se_theta)


class IER(AbstractCRF):
    r"""Integrated exposure-response function (Burnett et al. 2014, EHP 122:397; GBD).

    $$RR(z) = 1 + \alpha\left(1 - e^{-\gamma z^{\delta}}\right),\qquad z = \max(0, C - z_{cf}).$$

    Fields `alpha, gamma, delta, zcf` are `[cause, age]` arrays. `IER.central(...)` gives the published central
    fits; `load_ier_draws(path)` gives the GBD parameter draws for Monte Carlo.
    """

    alpha: Float[Array, "cause age"] = eqx.field(converter=_f64)
    gamma: Float[Array, "cause age"] = eqx.field(converter=_f64)
    delta: Float[Array, "cause age"] = eqx.field(converter=_f64)
    zcf: Float[Array, "cause age"] = eqx.field(converter=_f64)
    causes: tuple[str, ...] = eqx.field(static=True, converter=_canonical_causes)
    ages: tuple[int, ...] = eqx.field(static=True, converter=_as_ages)
    applies: tuple[tuple[bool, ...], ...] = eqx.field(static=True, default=None)

    def __post_init__(self):
        self.applies = _to_mask(self.applies, (len(self.causes), len(self.ages)))

    def __check_init__(self):
        _check_param_shapes(self, ("alpha", "gamma", "delta", "zcf"))

    @classmethod
    def central(
        cls,
        causes: Sequence[str] | str = FIVE_CAUSES,
        *,
        source: str = "burnett2014",
        ages: Sequence[int] = GBD_AGES,
        age_ranges: Mapping[str, tuple[int, int | None]] | None = None,
    ) -> "IER":
        """Published IER central fits (all-age), as cited constants.

        **Arguments:**
        - `causes`: subset of `"IHD", "STROKE", "COPD", "LC", "LRI"` (`"LRI"` is the IER's ALRI).
        - `source`: `"burnett2014"` (Burnett et al. 2014 central fits, TM5-FASST distribution; 5 causes) or
          `"gbd2016"` (GBD 2016 medium set, TMREL 4.18; no LRI).
        - `ages`, `age_ranges`: as in `GEMM.burnett2018`; the default applies LRI to children under five
          (age group 0) and the other causes to adults 25+ (the COBENEFIT study's convention).

        **Returns:** an `IER` with `[cause, age]` parameters.
        """
        if source not in IER_CENTRAL:
            raise ValueError(f"unknown IER source {source!r}; choose one of {sorted(IER_CENTRAL)}")
        causes = _canonical_causes(causes)
        ages = _as_ages(ages)
        table = IER_CENTRAL[source]
        unknown = [c for c in causes if c not in table]
        if unknown:
            raise ValueError(f"IER source {source!r} has no fit for {unknown}; it has {sorted(table)}")
        p = np.asarray([[table[c]] * len(ages) for c in causes], dtype=np.float64)
        applies = ier_default_applies(causes, ages, age_ranges)
        return cls(p[..., 0], p[..., 1], p[..., 2], p[..., 3], causes, ages, applies)

    def _log_rr(self, C: Array) -> Array:
        z, pos = _excess(C, self.zcf)
        n = C.ndim
        alpha, gamma, delta = (_expand(p, n) for p in (self.alpha, self.gamma, self.delta))
        zd = _safe_pow(z, pos, delta)
        return jnp.log1p(-alpha * jnp.expm1(-gamma * zd))


def ier_default_applies(
    causes: tuple[str, ...], ages: tuple[int, ...], age_ranges: Mapping[str, tuple[int, int | None]] | None = None
) -> tuple[tuple[bool, ...], ...]:
    """IER applicability: LRI for children under five, other causes adults 25+, unless `age_ranges` says else."""
    ranges = {"LRI": (0, 5)} if "LRI" in causes else {}
    ranges.update({canonical_cause(k): v for k, v in (age_ranges or {}).items()})
    return _applies_mask(causes, ages, ranges, (25, None))


class IERDraws(eqx.Module):
    """A table of joint IER parameter draws, `[draw, cause, age]` per parameter (build with `load_ier_draws`).

    A draw is a whole row of the source table - `(alpha, gamma, delta, zcf)` stay together - and one draw index
    is shared by every cause and age group (the GBD draw number), so age patterns stay coherent.
    """

    alpha: Float[Array, "draw cause age"] = eqx.field(converter=_f64)
    gamma: Float[Array, "draw cause age"] = eqx.field(converter=_f64)
    delta: Float[Array, "draw cause age"] = eqx.field(converter=_f64)
    zcf: Float[Array, "draw cause age"] = eqx.field(converter=_f64)
    causes: tuple[str, ...] = eqx.field(static=True, converter=_canonical_causes)
    ages: tuple[int, ...] = eqx.field(static=True, converter=_as_ages)
    applies: tuple[tuple[bool, ...], ...] = eqx.field(static=True, default=None)

    def __post_init__(self):
        self.applies = _to_mask(self.applies, (len(self.causes), len(self.ages)))

    def __check_init__(self):
        shape = self.alpha.shape
        if len(shape) != 3 or shape[1:] != (len(self.causes), len(self.ages)):
            raise ValueError(f"IERDraws arrays must be [draw, cause, age] with cause x age = "
                             f"({len(self.causes)}, {len(self.ages)}); got {shape}")
        for n in ("gamma", "delta", "zcf"):
            if getattr(self, n).shape != shape:
                raise ValueError(f"IERDraws.{n} has shape {getattr(self, n).shape}, expected {shape} like alpha")

    @property
    def n_draws(self) -> int:
        return int(self.alpha.shape[0])

    def draw(self, i) -> IER:
        """The `IER` of draw `i` (an int or a traced integer)."""
        take = lambda x: x[i]  # noqa: E731
        return IER(take(self.alpha), take(self.gamma), take(self.delta), take(self.zcf),
                   self.causes, self.ages, self.applies)

    def sample(self, *, key: PRNGKeyArray, n: int | None = None) -> IER:
        """Sample whole draws uniformly (with replacement).

        **Arguments:** `key` (keyword-only PRNG key); `n`: number of draws, or `None` for one.

        **Returns:** an `IER`; with `n`, its arrays carry a leading axis `[n, cause, age]` for `eqx.filter_vmap`.
        """
        idx = jax.random.randint(key, () if n is None else (n,), 0, self.n_draws)
        if n is None:
            return self.draw(idx)
        fields = [x[idx] for x in (self.alpha, self.gamma, self.delta, self.zcf)]
        template = self.draw(0)
        return eqx.tree_at(lambda m: (m.alpha, m.gamma, m.delta, m.zcf), template, tuple(fields))

    def median(self) -> IER:
        """Per-parameter median over draws (a convenience central estimate; not itself a joint draw)."""
        med = [jnp.median(x, axis=0) for x in (self.alpha, self.gamma, self.delta, self.zcf)]
        return IER(*med, self.causes, self.ages, self.applies)


class LogLinear(AbstractCRF):
    r"""Log-linear concentration-response, for morbidity endpoints.

    $$RR = e^{\beta\,\Delta C},\quad \Delta C = \max(0, C - c_f),\quad \beta = \ln(RR_{10})/10,$$

    so that `attributable_deaths_kernel` with this CRF gives cases `dE = y0 Pop (1 - exp(-beta dC))`.
    """

    beta: Float[Array, "cause age"] = eqx.field(converter=_f64)
    cf: Float[Array, "cause age"] = eqx.field(converter=_f64)
    causes: tuple[str, ...] = eqx.field(static=True, converter=_canonical_causes)
    ages: tuple[int, ...] = eqx.field(static=True, converter=_as_ages)
    applies: tuple[tuple[bool, ...], ...] = eqx.field(static=True, default=None)

    def __post_init__(self):
        self.applies = _to_mask(self.applies, (len(self.causes), len(self.ages)))

    def __check_init__(self):
        _check_param_shapes(self, ("beta", "cf"))

    @classmethod
    def from_rr_per_10(
        cls,
        rr_per_10: Mapping[str, float],
        *,
        ages: Sequence[int] = (0,),
        cf: float = 0.0,
        age_ranges: Mapping[str, tuple[int, int | None]] | None = None,
    ) -> "LogLinear":
        """Build from relative risks per 10 ug m-3, `{endpoint: RR10}`; `beta = ln(RR10)/10`.

        **Arguments:** `rr_per_10` (each > 0), `ages` (default one all-age group `(0,)`), `cf` threshold
        (default 0: `C` is the concentration change), `age_ranges` (default: every age).
        """
        if not rr_per_10:
            raise ValueError("`rr_per_10` is empty: give {endpoint: relative risk per 10 ug m-3}")
        bad = {k: v for k, v in rr_per_10.items() if not (np.isfinite(v) and v > 0)}
        if bad:
            raise ValueError(f"relative risks must be finite and > 0, got {bad}")
        causes = tuple(rr_per_10)
        ages = _as_ages(ages)
        beta = np.log(np.asarray([rr_per_10[c] for c in causes], dtype=np.float64)) / 10.0
        beta = np.repeat(beta[:, None], len(ages), axis=1)
        applies = _applies_mask(_canonical_causes(causes), ages, age_ranges, (0, None))
        return cls(beta, np.full(beta.shape, float(cf)), causes, ages, applies)

    def _log_rr(self, C: Array) -> Array:
        z, _ = _excess(C, self.cf)
        return _expand(self.beta, C.ndim) * z
