"""Validation of emulators: errors on held-out CTM runs, and agreement of emulator gradients with adjoint
sensitivities.

Error statistics over $N$ held-out runs $r$ at each receptor and component, prediction $p_r$, CTM value
$o_r$ (the definitions of the pf-ERSM validation, Xing et al. 2018, ACP 18, 7799, and of Emery et al. 2017,
JAWMA 67, 582):

- normalised mean bias $\\mathrm{NMB} = \\sum_r (p_r - o_r) / \\sum_r o_r$;
- normalised mean error $\\mathrm{NME} = \\sum_r |p_r - o_r| / \\sum_r o_r$;
- Pearson correlation $R$ of $p$ and $o$ over the runs;
- maximum normalised error $\\mathrm{MaxNE} = \\max_r |p_r - o_r| / o_r$.
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import xarray as xr

from ._abstract import AbstractEmulator, with_envelope_policy
from ._fit import run_arrays


def error_metrics(pred: np.ndarray, obs: np.ndarray) -> dict[str, np.ndarray]:
    """NMB, NME, R and MaxNE over the leading (run) axis of `pred[run, ...]` and `obs[run, ...]`
    (definitions in the module docstring). **Returns** a dict of arrays shaped `pred.shape[1:]`."""
    pred, obs = np.asarray(pred, np.float64), np.asarray(obs, np.float64)
    if pred.shape != obs.shape:
        raise ValueError(f"`pred` {pred.shape} and `obs` {obs.shape} must have the same shape")
    diff = pred - obs
    total = obs.sum(axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        nmb = diff.sum(axis=0) / total
        nme = np.abs(diff).sum(axis=0) / total
        maxne = np.max(np.abs(diff) / obs, axis=0)
        pc, oc = pred - pred.mean(0), obs - obs.mean(0)
        r = (pc * oc).sum(0) / np.sqrt((pc**2).sum(0) * (oc**2).sum(0))
    return {"NMB": nmb, "NME": nme, "R": r, "MaxNE": maxne}


@eqx.filter_jit
def _batch_check(model, x):
    return jax.vmap(model.envelope.check)(x)


@eqx.filter_jit
def _batch_predict(model, x):
    return jax.vmap(model._predict)(x)


def predict(model: AbstractEmulator, x: np.ndarray, batch: int = 256) -> np.ndarray:
    """Predictions for a batch of inputs `x[n, *input_shape]` -> `[n, component, receptor...]` (envelope
    checked per the model's policy)."""
    x = jnp.asarray(x, dtype=jnp.float64)
    if x.ndim != len(model.labels.input_shape) + 1:
        raise ValueError(f"`x` must be [n, *{model.labels.input_shape}], got {x.shape}")
    if model.envelope.policy != "ignore":
        # one check over the batch: an OutOfEnvelopeWarning ("warn") or an error ("raise")
        jax.block_until_ready(_batch_check(model, x))
        jax.effects_barrier()
    out = [np.asarray(_batch_predict(model, x[i : i + batch])) for i in range(0, x.shape[0], batch)]
    return np.concatenate(out, axis=0)


def evaluate(
    model: AbstractEmulator, runs, *, inputs: str | None = None, outputs: str | None = None
) -> xr.Dataset:
    """Errors of `model` on (held-out) CTM runs, per receptor and component (and for PM2.5).

    **Arguments**: `model`; `runs`, an `xarray.Dataset` like the training set (see `surrogate.fit`).

    **Returns** an `xarray.Dataset` with `NMB`, `NME`, `R`, `MaxNE` (definitions in the module docstring) over
    dims `(component, receptor...)`, where `component` has an extra entry `"PM25"` (the weighted sum with
    1.4 OC), and `n_outside_envelope` (runs outside the training envelope; they are included in the errors).
    """
    data = run_arrays(runs, model.labels, inputs, outputs)
    x, y = data["x"], data["y"]
    quiet = with_envelope_policy(model, "ignore")
    pred = predict(quiet, x)
    n_out = int((~np.asarray(jax.vmap(model.envelope.contains)(jnp.asarray(x)))).sum())
    w = model.labels.component_weights()
    pm_p = np.tensordot(pred, w, axes=([1], [0]))[:, None]
    pm_o = np.tensordot(y, w, axes=([1], [0]))[:, None]
    stats = error_metrics(np.concatenate([pred, pm_p], 1), np.concatenate([y, pm_o], 1))
    dims = model.labels.output_dims
    coords = {d: list(c) for d, c in zip(dims, model.labels.output_coords, strict=True)}
    coords["component"] = list(model.labels.components) + ["PM25"]
    ds = xr.Dataset({k: (dims, v) for k, v in stats.items()}, coords=coords)
    ds["n_outside_envelope"] = n_out
    ds.attrs.update(n_runs=int(x.shape[0]), model=type(model).__name__)
    for k, desc in (
        ("NMB", "sum(p - o) / sum(o) over runs"),
        ("NME", "sum|p - o| / sum(o) over runs"),
        ("R", "Pearson correlation over runs"),
        ("MaxNE", "max over runs of |p - o| / o"),
    ):
        ds[k].attrs["definition"] = desc
    return ds


def agreement_stats(emulator: np.ndarray, adjoint: np.ndarray) -> dict[str, float]:
    """Agreement of emulator gradients with adjoint sensitivities (flattened arrays).

    - $R^2 = 1 - \\sum (e - a)^2 / \\sum (a - \\bar a)^2$ (coefficient of determination of the emulator
      as a predictor of the adjoint: the 1:1 line, not a fitted line);
    - `slope`: least-squares slope of the emulator on the adjoint sensitivities (with intercept);
    - `r`: Pearson correlation;
    - `nrmse` $= \\sqrt{\\overline{(e - a)^2}} / \\max|a|$ and `max_error` $= \\max|e - a| / \\max|a|$,
      errors normalised by the peak sensitivity (not element by element, which small sensitivities would
      dominate).
    """
    e, a = np.ravel(emulator).astype(np.float64), np.ravel(adjoint).astype(np.float64)
    peak = np.max(np.abs(a))
    ac = a - a.mean()
    r2 = 1.0 - np.sum((e - a) ** 2) / np.sum(ac**2)
    slope = np.sum(ac * (e - e.mean())) / np.sum(ac**2)
    r = np.corrcoef(e, a)[0, 1]
    return {
        "r2": float(r2),
        "slope": float(slope),
        "r": float(r),
        "nrmse": float(np.sqrt(np.mean((e - a) ** 2)) / peak),
        "max_error": float(np.max(np.abs(e - a)) / peak),
        "n": int(a.size),
    }


def top_mass_mask(sens: np.ndarray, fraction: float = 0.9) -> np.ndarray:
    """Mask of the largest-|s| elements that together carry `fraction` of $\\sum |s|$."""
    a = np.abs(np.ravel(sens))
    order = np.argsort(a)[::-1]
    csum = np.cumsum(a[order])
    k = int(np.searchsorted(csum, fraction * csum[-1]) + 1)
    mask = np.zeros(a.size, bool)
    mask[order[:k]] = True
    return mask.reshape(np.shape(sens))


def emulator_gradients(model: AbstractEmulator, x: np.ndarray, cost_weights: np.ndarray) -> np.ndarray:
    """$\\nabla_x J$ for $J = \\sum w \\odot y(x)$ at each of `x[n, ...]` -> `[n, *input_shape]`."""
    w = jnp.asarray(cost_weights, dtype=jnp.float64)
    if w.shape != model.labels.output_shape:
        raise ValueError(
            f"`cost_weights` has shape {w.shape}; expected the output shape {model.labels.output_shape}"
        )

    @eqx.filter_jit
    def grads(m, xs):
        return jax.vmap(jax.grad(lambda xi: jnp.sum(w * m._predict(xi))))(xs)

    return np.asarray(grads(model, jnp.asarray(x, dtype=jnp.float64)))


def gradient_agreement(
    model: AbstractEmulator,
    adjoint,
    *,
    inputs: str | None = None,
    top_fraction: float = 0.9,
    source_patterns=None,
) -> xr.Dataset:
    r"""Emulator gradients against adjoint sensitivities.

    **Arguments**

    - `model`: the emulator.
    - `adjoint`: `xarray.Dataset` with the base states as inputs (`scale[run, source, species]` or
      `emissions[run, species, level, row, col]`), `sensitivity` (same dims: $\\partial J/\\partial x$ from
      the CTM adjoint) and `cost_weights` (the linear cost $J = \\sum w \\odot y$ the adjoint was run for,
      dims of the outputs).
    - `top_fraction`: for gridded inputs, cell-level statistics use the cells carrying this fraction of
      $\\sum|\\partial J/\\partial E|$ (per base state, per species/level pooled).
    - `source_patterns`: for gridded inputs, $P_{g,s,l,y,x} = \partial E_{s,l,y,x}/\partial
      \mathrm{scale}_{g,s}$ shaped `[source, species, level, row, col]` (each source's base emissions
      spread on the grid by its allocation); with it, source-level statistics of $\\partial J/\\partial \\mathrm{scale}_{g,s} =
      \\sum_{l,y,x} \\partial J/\\partial E_{s,l,y,x}\\, P_{g,s,l,y,x}$ are added.

    **Returns** an `xarray.Dataset` with `r2`, `slope`, `r`, `nrmse`, `max_error` per base state (dim
    `run`) and pooled over all states (`*_pooled`), at level `"source"` (source-level inputs, or gridded with
    `source_patterns`) and `"cell"` (gridded inputs), plus the gradients themselves (`emulator`, `adjoint`).
    """
    if "sensitivity" not in adjoint.data_vars or "cost_weights" not in adjoint.data_vars:
        raise ValueError("`adjoint` needs `sensitivity` and `cost_weights` variables (see the docstring)")
    xname = inputs or next((n for n in ("scale", "emissions") if n in adjoint.data_vars), None)
    if xname is None:
        raise ValueError("`adjoint` has no input variable (`scale` or `emissions`): pass inputs='<name>'")
    labels = model.labels
    x = np.asarray(adjoint[xname].transpose("run", *labels.input_dims).values, np.float64)
    a = np.asarray(adjoint["sensitivity"].transpose("run", *labels.input_dims).values, np.float64)
    w = np.asarray(adjoint["cost_weights"].transpose(*labels.output_dims).values, np.float64)
    e = emulator_gradients(model, x, w)
    n = x.shape[0]
    levels = {}
    gridded = len(labels.input_dims) == 4 and labels.input_dims[-2:] == ("row", "col")
    if gridded:
        masks = np.stack([top_mass_mask(a[i], top_fraction) for i in range(n)])
        levels["cell"] = [(e[i][masks[i]], a[i][masks[i]]) for i in range(n)]
        if source_patterns is not None:
            p = np.asarray(source_patterns, np.float64)
            es = np.einsum("nslyx,gslyx->ngs", e, p)
            as_ = np.einsum("nslyx,gslyx->ngs", a, p)
            levels["source"] = [(es[i], as_[i]) for i in range(n)]
    else:
        levels["source"] = [(e[i], a[i]) for i in range(n)]
    ds = xr.Dataset(coords={"run": np.arange(n)})
    for lev, pairs in levels.items():
        per = [agreement_stats(ei, ai) for ei, ai in pairs]
        pooled = agreement_stats(
            np.concatenate([np.ravel(p[0]) for p in pairs]), np.concatenate([np.ravel(p[1]) for p in pairs])
        )
        for k in ("r2", "slope", "r", "nrmse", "max_error"):
            ds[f"{lev}_{k}"] = ("run", np.array([s[k] for s in per]))
            ds[f"{lev}_{k}_pooled"] = pooled[k]
    dims = ("run",) + labels.input_dims
    ds["emulator"] = (dims, e)
    ds["adjoint"] = (dims, a)
    ds.attrs["top_fraction"] = top_fraction
    return ds
