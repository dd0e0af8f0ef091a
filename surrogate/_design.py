r"""Adaptive design: where the next CTM runs (and adjoint runs) pay most.

From the emulator fitted to the runs so far, `propose` scores a large Latin-hypercube candidate set in the
design box and picks a batch greedily:

- **disagreement** (for an `Ensemble`): the spread of the members' PM2.5 predictions at the receptors,
  relative to the ensemble mean, $d(x) = \sqrt{\overline{(\sigma_r(x) / \bar y_r(x))^2}}$ (the members agree
  where the runs constrain them, and disagree where another run would teach them most; Lakshminarayanan et al.
  2017, and the query-by-committee rule of Seung et al. 1992);
- **distance** (any emulator): the normalised distance to the nearest run, a space-filling criterion.

Greedy batch selection: each pick maximises $d(x)\,(1 - e^{-(\rho(x)/\ell)^2})$, where $\rho$ is the distance
(in box-normalised coordinates) to the nearest existing or already picked run and $\ell$ the median
nearest-neighbour spacing of the existing runs, so a batch spreads out instead of piling up where the
disagreement peaks, and no proposal repeats a run.

Adjoint runs: at each proposed state, the spread of the members' gradients of the cost (population-weighted
PM2.5 by default) relative to their mean norm; the states where the members disagree most about the gradient
are where an adjoint run (a Sobolev-term target) pays most.
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import xarray as xr
from scipy.stats import qmc

from ._abstract import AbstractEmulator, with_envelope_policy
from ._ensemble import Ensemble
from ._runs import _io_names, align


def _as_inputs(model: AbstractEmulator, runs) -> tuple[np.ndarray, str, object]:
    """Existing inputs x[run, *input_shape], the input variable name, and the xarray variable (or None)."""
    if hasattr(runs, "data_vars"):
        xname = _io_names(runs, None, None)[0] if any(n in runs for n in ("pm25", "conc")) else None
        xname = xname or next((n for n in ("scale", "emissions") if n in runs.data_vars), None)
        if xname is None:
            raise ValueError("`runs` has no input variable (`scale` or `emissions`)")
        dims = model.labels.input_dims
        var = runs[xname]
        if set(var.dims) != {"run", *dims}:
            raise ValueError(f"`runs`: {xname!r} has dims {var.dims} but the emulator's inputs are ('run', *{dims}): "
                             "pass the run set the emulator was fitted on (or one with the same inputs)")
        var = align(var, dims, model.labels.input_coords, xname)  # by label: another order is read right
        return np.asarray(var.transpose("run", *dims).values, np.float64), xname, var
    x = np.asarray(runs, np.float64)
    if x.shape[1:] != model.labels.input_shape:
        raise ValueError(f"`runs` must be a run set or an array [run, *{model.labels.input_shape}], got {x.shape}")
    return x, "scale" if model.labels.input_kind == "scale" else "emissions", None


def _box(model, var, box):
    shape = model.labels.input_shape
    if box is None and var is not None and {"low", "high"} <= set(var.coords):
        box = (var["low"].transpose(*model.labels.input_dims).values, var["high"].transpose(*model.labels.input_dims).values)
    if box is None:
        box = (np.asarray(model.envelope.lower), np.asarray(model.envelope.upper))
    lo = np.broadcast_to(np.asarray(box[0], np.float64), shape)
    hi = np.broadcast_to(np.asarray(box[1], np.float64), shape)
    if not (np.all(np.isfinite(lo)) and np.all(np.isfinite(hi)) and np.all(hi > lo)):
        raise ValueError(
            "the design box must be finite with high > low everywhere: pass box=(low, high) (the model's envelope "
            "is unbounded or empty)"
        )
    return lo, hi


def _disagreement(model: Ensemble, x: np.ndarray, batch: int = 512) -> np.ndarray:
    w = jnp.asarray(model.labels.component_weights())

    @eqx.filter_jit
    def score(m, xs):
        def one(xi):
            pm = jnp.tensordot(w, eqx.filter_vmap(lambda mm: mm._predict(xi))(m.members), axes=([0], [1]))
            rel = jnp.std(pm, axis=0) / jnp.maximum(jnp.abs(jnp.mean(pm, axis=0)), 1e-12)
            return jnp.sqrt(jnp.mean(rel**2))

        return jax.vmap(one)(xs)

    return np.concatenate([np.asarray(score(model, jnp.asarray(x[i : i + batch]))) for i in range(0, len(x), batch)])


def _gradient_disagreement(model: Ensemble, x: np.ndarray, cost_weights) -> np.ndarray:
    w = jnp.asarray(cost_weights)

    @eqx.filter_jit
    def score(m, xs):
        def one(xi):
            g = eqx.filter_vmap(lambda mm: jax.grad(lambda z: jnp.sum(w * mm._predict(z)))(xi))(m.members)
            g = g.reshape(g.shape[0], -1)
            return jnp.sqrt(jnp.sum(jnp.var(g, axis=0))) / jnp.maximum(jnp.linalg.norm(jnp.mean(g, axis=0)), 1e-12)

        return jax.vmap(one)(xs)

    return np.asarray(score(model, jnp.asarray(x)))


def _nearest(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Distance from each row of a[n, d] to the nearest row of b[m, d] (inf when b is empty)."""
    if len(b) == 0:
        return np.full(len(a), np.inf)
    d2 = (a**2).sum(1)[:, None] + (b**2).sum(1)[None] - 2 * a @ b.T
    return np.sqrt(np.maximum(d2.min(axis=1), 0.0))


def propose(
    model: AbstractEmulator,
    runs,
    n: int,
    *,
    box=None,
    key,
    n_candidates: int | None = None,
    criterion: str = "auto",
    cost_weights=None,
) -> xr.Dataset:
    """Propose the next `n` CTM runs (and rank them for adjoint runs).

    **Arguments**

    - `model`: the emulator fitted to the runs so far; an `Ensemble` for the disagreement criterion.
    - `runs`: the existing runs (a run set, `xarray.Dataset`, or an array `x[run, *input_shape]`).
    - `n`: batch size.
    - `box`: `(low, high)` (scalars or arrays shaped like one input): the design box; default the run set's
      `low`/`high` coordinates, else the model's envelope.
    - `key`: keyword-only PRNG key (the candidate design).
    - `n_candidates`: size of the Latin-hypercube candidate set (default `max(2000, 50 n)`).
    - `criterion`: `"disagreement"` (ensembles), `"distance"` or `"auto"` (disagreement for an ensemble).
    - `cost_weights`: `w[component, receptor...]` of the cost whose adjoint would be run (default
      population-neutral PM2.5: the component weights, equal over receptors).

    **Returns** an `xarray.Dataset` over `run` (the proposals, best first) with the input variable
    (`scale[run, source, species]` or `emissions[...]`, with `low`/`high` coordinates), `score` (the
    criterion), `min_distance` (box-normalised distance to the nearest existing run), and for ensembles
    `adjoint_score` (member disagreement about the cost's gradient) and `adjoint_rank` (0 = where an adjoint
    run pays most).
    """
    n = int(n)
    if n < 1:
        raise ValueError(f"`n` must be >= 1, got {n}")
    if criterion not in ("auto", "disagreement", "distance"):
        raise ValueError(f"`criterion` must be 'auto', 'disagreement' or 'distance', got {criterion!r}")
    is_ens = isinstance(model, Ensemble)
    if criterion == "auto":
        criterion = "disagreement" if is_ens else "distance"
    if criterion == "disagreement" and not is_ens:
        raise ValueError("the disagreement criterion needs an `Ensemble`; use criterion='distance' for one model")
    x_old, xname, var = _as_inputs(model, runs)
    lo, hi = _box(model, var, box)
    shape = model.labels.input_shape
    d = int(np.prod(shape))
    n_cand = int(n_candidates) if n_candidates is not None else max(2000, 50 * n)
    if n_cand < n:
        raise ValueError(f"`n_candidates` ({n_cand}) must be at least `n` ({n})")
    seed = int(jax.random.randint(key, (), 0, 2**31 - 1))
    u = qmc.LatinHypercube(d=d, seed=seed).random(n_cand)
    span = (hi - lo).reshape(-1)
    cand = lo.reshape(-1) + u * span
    norm = lambda z: (np.asarray(z).reshape(len(z), -1) - lo.reshape(-1)) / span  # noqa: E731
    c_n, old_n = norm(cand), norm(x_old)
    if criterion == "disagreement":
        quiet = with_envelope_policy(model, "ignore")
        score = _disagreement(quiet, cand.reshape(n_cand, *shape))
    else:
        score = _nearest(c_n, old_n)
    if len(old_n) > 1:
        nn = np.sort(np.sqrt(np.maximum(((old_n[:, None] - old_n[None]) ** 2).sum(-1), 0)), axis=1)[:, 1]
        ell = float(np.median(nn))
    else:
        ell = float(np.sqrt(d) / max(n, 1))
    ell = max(ell, 1e-6)
    rho = _nearest(c_n, old_n)
    picked = []
    for _ in range(n):
        util = score * (1.0 - np.exp(-((rho / ell) ** 2)))
        util[picked] = -np.inf
        i = int(np.argmax(util))
        if not np.isfinite(util[i]) or rho[i] <= 0:
            raise ValueError("no candidate differs from the existing runs: raise `n_candidates`")
        picked.append(i)
        rho = np.minimum(rho, np.sqrt(((c_n - c_n[i]) ** 2).sum(1)))
    picked = np.asarray(picked)
    x_new = cand[picked].reshape(n, *shape)
    dims = model.labels.input_dims
    coords = {dim: list(c) for dim, c in zip(dims, model.labels.input_coords, strict=True)}
    ds = xr.Dataset(
        {
            xname: (("run", *dims), x_new, {"units": model.labels.input_units}),
            "score": ("run", score[picked]),
            "min_distance": ("run", _nearest(c_n[picked], old_n)),
        },
        coords={"run": np.arange(n), **coords},
    )
    ds = ds.assign_coords(low=(dims, lo), high=(dims, hi))
    if is_ens:
        if cost_weights is None:
            w = np.broadcast_to(
                model.labels.component_weights().reshape(-1, *([1] * (len(model.labels.output_shape) - 1))),
                model.labels.output_shape,
            )
            cost_weights = w / np.prod(model.labels.output_shape[1:])
        ag = _gradient_disagreement(with_envelope_policy(model, "ignore"), x_new, cost_weights)
        ds["adjoint_score"] = ("run", ag)
        rank = np.empty(n, int)
        rank[np.argsort(-ag)] = np.arange(n)
        ds["adjoint_rank"] = ("run", rank)
    ds.attrs.update(criterion=criterion, n_candidates=n_cand, spacing=ell, n_existing=len(x_old))
    return ds
