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
from ._roles import structural_zeros
from ._runs import align

#: Species carrying at least this share of the adjoint's sum of squares are "major" (their per-species
#: gradient R^2 is what the targets are stated for).
MAJOR_SHARE = 0.05


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
    model: AbstractEmulator,
    runs,
    *,
    inputs: str | None = None,
    outputs: str | None = None,
    structural_zero_table: dict | None = None,
) -> xr.Dataset:
    """Errors of `model` on (held-out) CTM runs, per receptor and component (and for PM2.5).

    **Arguments**: `model`; `runs`, an `xarray.Dataset` like the training set (see `surrogate.fit`).

    **Returns** an `xarray.Dataset` with `NMB`, `NME`, `R`, `MaxNE` (definitions in the module docstring) over
    dims `(component, receptor...)`, where `component` has an extra entry `"PM25"` (the weighted sum with
    1.4 OC), and `n_outside_envelope` (runs outside the training envelope; they are included in the errors).
    For source-level emulators (inputs with a `species` dim) it adds the spurious sensitivity at the runs'
    inputs (`spurious[component, species]`, `spurious_max`, `structural_zero`; see `spurious_sensitivity`,
    whose `table` is `structural_zero_table`).
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
    if _has_species(model):
        sp = spurious_sensitivity(model, x, table=structural_zero_table)
        for k in ("spurious", "structural_zero"):
            ds[k] = sp[k].reindex(component=coords["component"])  # NaN / False for the PM25 row
        ds["spurious_max"] = sp["spurious_max"]
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


def per_group_agreement(emulator: np.ndarray, adjoint: np.ndarray, axis: int) -> dict[str, np.ndarray]:
    """`agreement_stats` for each index along `axis` (pooled over every other axis), plus `share`: that
    group's share of the adjoint's sum of squares $\\sum a^2$. **Returns** arrays over the groups."""
    e = np.moveaxis(np.asarray(emulator, np.float64), axis, 0)
    a = np.moveaxis(np.asarray(adjoint, np.float64), axis, 0)
    total = np.sum(a**2)
    out = {k: [] for k in ("r2", "slope", "r", "nrmse", "max_error", "share")}
    for ei, ai in zip(e, a, strict=True):
        if np.all(ai == ai.ravel()[0]):  # a constant adjoint (e.g. a structural zero): R^2 undefined
            st = {"r2": np.nan, "slope": np.nan, "r": np.nan, "nrmse": np.nan, "max_error": np.nan}
        else:
            st = agreement_stats(ei, ai)
        for k in ("r2", "slope", "r", "nrmse", "max_error"):
            out[k].append(st[k])
        out["share"].append(np.sum(ai**2) / total if total > 0 else np.nan)
    return {k: np.asarray(v, np.float64) for k, v in out.items()}


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

    return np.asarray(_cost_gradients(model, w, jnp.asarray(x, dtype=jnp.float64)))


# compiled once per model structure and shapes (defined at module level so that repeated calls reuse the program)
@eqx.filter_jit
def _cost_gradients(m, w, xs):
    return jax.vmap(jax.grad(lambda xi: jnp.sum(w * m._predict(xi))))(xs)


@eqx.filter_jit
def _jacobians(m, xs):
    return jax.vmap(jax.jacfwd(m._predict))(xs)


def gradient_agreement(
    model: AbstractEmulator,
    adjoint,
    *,
    inputs: str | None = None,
    top_fraction: float = 0.9,
    source_patterns=None,
    structural_zero_table: dict | None = None,
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

    - `structural_zero_table`: for the spurious sensitivities (see `spurious_sensitivity`).

    **Returns** an `xarray.Dataset` with `r2`, `slope`, `r`, `nrmse`, `max_error` per base state (dim
    `run`) and pooled over all states (`*_pooled`), at level `"source"` (source-level inputs, or gridded with
    `source_patterns`) and `"cell"` (gridded inputs), plus the gradients themselves (`emulator`, `adjoint`).

    A pooled $R^2$ is dominated by the largest sensitivities and hides species whose gradients are wrong, so
    at the source level the statistics are also given per input species and per source region, pooled over
    states (over sources, resp. species): `source_species_{r2,slope,nrmse}[species]`,
    `source_species_share[species]` (the species' share of $\sum a^2$, the adjoint's sum of squares),
    `source_species_r2_min_major` (the smallest per-species $R^2$ among species with a share >= 5 %), and
    `source_region_{r2,slope,nrmse}[source]`. For source-level emulators it adds the spurious sensitivity at
    the adjoint states (`spurious[component, species]`, `spurious_max`, `structural_zero`).
    """
    if "sensitivity" not in adjoint.data_vars or "cost_weights" not in adjoint.data_vars:
        raise ValueError("`adjoint` needs `sensitivity` and `cost_weights` variables (see the docstring)")
    xname = inputs or next((n for n in ("scale", "emissions") if n in adjoint.data_vars), None)
    if xname is None:
        raise ValueError("`adjoint` has no input variable (`scale` or `emissions`): pass inputs='<name>'")
    labels = model.labels
    for name, dims, want in ((xname, adjoint[xname].dims, ("run", *labels.input_dims)),
                             ("sensitivity", adjoint["sensitivity"].dims, ("run", *labels.input_dims)),
                             ("cost_weights", adjoint["cost_weights"].dims, labels.output_dims)):  # fmt: skip
        if set(dims) != set(want):
            raise ValueError(f"`adjoint[{name!r}]` has dims {dims}; expected {want}")
    # by label, not by position: an adjoint set whose labels come in another order is read right
    x_da = align(adjoint[xname], labels.input_dims, labels.input_coords, xname)
    a_da = align(adjoint["sensitivity"], labels.input_dims, labels.input_coords, "sensitivity")
    w_da = align(adjoint["cost_weights"], labels.output_dims, labels.output_coords, "cost_weights")
    x = np.asarray(x_da.transpose("run", *labels.input_dims).values, np.float64)
    a = np.asarray(a_da.transpose("run", *labels.input_dims).values, np.float64)
    w = np.asarray(w_da.transpose(*labels.output_dims).values, np.float64)
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
    if "source" in levels:
        es = np.stack([np.asarray(p[0]) for p in levels["source"]])  # [n, source, species(, ...)]
        as_ = np.stack([np.asarray(p[1]) for p in levels["source"]])
        if gridded:
            src_dims, src_coords = ("source", "species"), (None, labels.input_coords[0])
        else:
            src_dims, src_coords = labels.input_dims, labels.input_coords
        for dim, name in (("species", "species"), ("source", "region")):
            if dim not in src_dims:
                continue
            ax = 1 + src_dims.index(dim)
            per = per_group_agreement(es, as_, ax)
            coord = src_coords[src_dims.index(dim)]
            coord = list(coord) if coord is not None else list(range(es.shape[ax]))
            if dim not in ds.coords:
                ds = ds.assign_coords({dim: coord})
            for k in ("r2", "slope", "nrmse", "share"):
                ds[f"source_{name}_{k}"] = (dim, per[k])
            if dim == "species":
                major = per["share"] >= MAJOR_SHARE
                ds["source_species_r2_min_major"] = float(np.min(per["r2"][major])) if major.any() else np.nan
                ds["source_species_slope_major"] = (dim, np.where(major, per["slope"], np.nan))
        if _has_species(model):
            sp = spurious_sensitivity(model, x, table=structural_zero_table)
            ds = ds.assign_coords(component=list(labels.components))
            for k in ("spurious", "structural_zero", "spurious_max"):
                ds[k] = sp[k]
    dims = ("run",) + labels.input_dims
    ds["emulator"] = (dims, e)
    ds["adjoint"] = (dims, a)
    ds.attrs["top_fraction"] = top_fraction
    return ds


def _has_species(model: AbstractEmulator) -> bool:
    dims = model.labels.input_dims
    return "species" in dims and not (len(dims) == 4 and dims[-2:] == ("row", "col"))


def jacobians(model: AbstractEmulator, x: np.ndarray) -> np.ndarray:
    """Full Jacobians $\\partial y/\\partial x$ of `model` (no envelope check) at each of `x[n, *input_shape]`
    -> `[n, *output_shape, *input_shape]` (forward mode; for source-level emulators)."""
    n_in = int(np.prod(model.labels.input_shape))
    n_out = int(np.prod(model.labels.output_shape))
    if n_in * n_out > 5_000_000:
        raise ValueError(
            f"the Jacobian of this emulator has {n_in} x {n_out} entries per state: too large; spurious "
            "sensitivities are computed for source-level emulators"
        )

    return np.asarray(_jacobians(model, jnp.asarray(x, dtype=jnp.float64)))


def spurious_sensitivity(model: AbstractEmulator, x: np.ndarray, *, table: dict | None = None) -> xr.Dataset:
    r"""The emulator's sensitivity of a component to species that cannot affect it, relative to its largest
    real sensitivity.

    With $S_{n,c,r,g,k} = \partial y_{c,r}/\partial x_{g,k}\; x^{ref}_{g,k}$ at states $n$ (the Jacobian per
    unit relative change of the input: for scaling-factor inputs $x^{ref} = 1$), receptors $r$, sources $g$
    and species $k$, and $Z_{c,k}$ the structural zeros (`surrogate.structural_zeros`):

    $$ \mathrm{spurious}_{c,k} = \frac{\max_{n,r,g} |S_{n,c,r,g,k}|}{\max_{n,r,g,k':\,\lnot Z_{c,k'}}
       |S_{n,c,r,g,k'}|} \quad\text{for } Z_{c,k}, $$

    zero where $Z_{c,k}$ is false (the sensitivity there is real); `spurious_max` is the largest over the
    structural zeros (the target is <= 2 %).

    **Arguments**: `model` (source-level: inputs with a `species` dim); `x[n, *input_shape]` the states;
    `table`: the structural-zero table (`{species: [components it can affect]}`, default from atmospheric
    chemistry: see `surrogate.structural_zeros`).

    **Returns** an `xarray.Dataset` with `spurious[component, species]`, `structural_zero[component,
    species]` (bool), `spurious_max` and `max_real[component]` (the denominators).
    """
    labels = model.labels
    if "species" not in labels.input_dims:
        raise ValueError(f"spurious sensitivities need an input dim 'species'; the emulator has {labels.input_dims}")
    x = np.asarray(x, np.float64)
    if x.ndim != len(labels.input_shape) + 1:
        raise ValueError(f"`x` must be [n, *{labels.input_shape}], got {x.shape}")
    k_axis = labels.input_dims.index("species")
    species = labels.input_coords[k_axis]
    comps = labels.components
    zero = structural_zeros(species, comps, table)
    jac = jacobians(model, x) * np.asarray(model.x_ref)[(None,) * (1 + len(labels.output_shape))]
    n_out_dims = len(labels.output_shape)
    # [n, component, out..., in...] -> [component, species, everything else]
    a = np.abs(jac)
    a = np.moveaxis(a, (1, 1 + n_out_dims + k_axis), (0, 1))
    peak = a.reshape(a.shape[0], a.shape[1], -1).max(axis=2)  # [component, species]
    real = np.where(zero, 0.0, peak).max(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(zero, peak / real[:, None], 0.0)
    sp_max = float(ratio[zero].max()) if zero.any() else float("nan")
    ds = xr.Dataset(
        {
            "spurious": (("component", "species"), ratio),
            "structural_zero": (("component", "species"), zero),
            "max_real": ("component", real),
        },
        coords={"component": list(comps), "species": list(species)},
    )
    ds["spurious_max"] = sp_max
    ds["spurious"].attrs["definition"] = (
        "max |dy_c/dx_k * x_ref| over states, receptors, sources for a species k that cannot affect component c, "
        "over the largest such sensitivity to a species that can"
    )
    return ds
