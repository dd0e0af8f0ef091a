"""Fitting emulators to CTM runs: closed form for the linear and polynomial emulators, optax for the neural
ones (learning-rate schedule, early stopping on a held-out split, resumable atomic checkpoints, an optional
Sobolev term on adjoint sensitivities).

**Run sets** are `xarray.Dataset`s with a `run` dimension:

- source level (as `ctm_interface.collect_runs` writes them): inputs `scale[run, source, species]` (or
  `emissions[...]`), outputs `pm25[run, receptor, component]`;
- gridded: inputs `emissions[run, species, level, row, col]`, outputs `conc[run, component, row, col]`;
- optional adjoint sensitivities for a linear cost $J = \\sum w \\odot y$: `sensitivity` (dims of the inputs,
  NaN for runs without an adjoint) and `cost_weights` (dims of the outputs; with `run` first when the runs'
  adjoints are of different costs, e.g. one receptor each).
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import os
from pathlib import Path

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import optax

from ctm_interface._atomic import write_bytes_atomic
from ctm_interface._progress import tqdm

from ._abstract import AbstractEmulator, EmulatorLabels, Envelope, envelope_from_design, with_envelope
from ._ensemble import Ensemble, _member
from ._gridded import GriddedEmulator
from ._linear import LinearEmulator
from ._mlp import MLPEmulator
from ._polynomial import PolynomialEmulator
from ._structured import StructuredEmulator

_INPUT_NAMES = ("scale", "emissions")
_OUTPUT_NAMES = ("pm25", "conc")


def _io_names(runs, inputs: str | None, outputs: str | None) -> tuple[str, str]:
    if not hasattr(runs, "data_vars"):
        raise TypeError(f"`runs` must be an xarray.Dataset of CTM runs, got {type(runs).__name__}")
    if inputs is None:
        inputs = next((n for n in _INPUT_NAMES if n in runs.data_vars), None)
    if outputs is None:
        outputs = next((n for n in _OUTPUT_NAMES if n in runs.data_vars), None)
    for what, name, default in (("inputs", inputs, _INPUT_NAMES), ("outputs", outputs, _OUTPUT_NAMES)):
        if name is None or name not in runs.data_vars:
            raise ValueError(
                f"the run set has no {what} variable (looked for {name or default}; it has "
                f"{list(runs.data_vars)}): pass {what}='<variable name>'"
            )
        if "run" not in runs[name].dims:
            raise ValueError(f"variable {name!r} has dims {runs[name].dims}: it needs a 'run' dimension")
    return inputs, outputs


def _check_coords(da, dims, coords, name):
    for d, c in zip(dims, coords, strict=True):
        have = tuple(str(v) for v in (da[d].values if d in da.coords else range(da.sizes[d])))
        if have != tuple(c):
            raise ValueError(
                f"{name}: labels along {d!r} are {have[:8]}{'...' if len(have) > 8 else ''} but the emulator "
                f"expects {tuple(c)[:8]}{'...' if len(c) > 8 else ''}: the run set and the emulator must "
                "describe the same inputs/outputs"
            )


def run_arrays(runs, labels: EmulatorLabels, inputs: str | None = None, outputs: str | None = None) -> dict:
    """Arrays of a run set in the emulator's layout.

    **Returns** a dict with `x[run, *input_shape]`, `y[run, *output_shape]`, and, when the run set has
    adjoint sensitivities, `g[run, *input_shape]` (NaN where a run has none) and `w[*output_shape]`.
    """
    xname, yname = _io_names(runs, inputs, outputs)
    x, y = runs[xname], runs[yname]
    for da, dims, name in ((x, labels.input_dims, xname), (y, labels.output_dims, yname)):
        missing = set(dims) - set(da.dims)
        if missing or set(da.dims) - {"run"} != set(dims):
            raise ValueError(
                f"variable {name!r} has dims {da.dims} but the emulator expects ('run', *{dims}); "
                "rename or transpose the run set"
            )
    _check_coords(x, labels.input_dims, labels.input_coords, xname)
    _check_coords(y, labels.output_dims, labels.output_coords, yname)
    out = {
        "x": np.asarray(x.transpose("run", *labels.input_dims).values, dtype=np.float64),
        "y": np.asarray(y.transpose("run", *labels.output_dims).values, dtype=np.float64),
    }
    if "sensitivity" in runs.data_vars:
        if "cost_weights" not in runs.data_vars:
            raise ValueError(
                "the run set has `sensitivity` but no `cost_weights`: add the weights w[component, receptor...] "
                "of the linear cost J = sum(w * y) the adjoint was run for"
            )
        out["g"] = np.asarray(
            runs["sensitivity"].transpose("run", *labels.input_dims).values, dtype=np.float64
        )
        cw = runs["cost_weights"]
        if set(cw.dims) - {"run"} != set(labels.output_dims):
            raise ValueError(
                f"`cost_weights` has dims {cw.dims}; expected the output dims {labels.output_dims}, optionally "
                "with 'run' first when runs' adjoints are of different costs"
            )
        w = np.asarray(cw.transpose(*(("run",) if "run" in cw.dims else ()), *labels.output_dims).values,
                       dtype=np.float64)
        out["w"] = np.broadcast_to(w, (out["g"].shape[0], *labels.output_shape))
    if not np.all(np.isfinite(out["x"])) or not np.all(np.isfinite(out["y"])):
        raise ValueError(
            f"the run set has non-finite values in {xname!r} or {yname!r}: drop or repair those runs"
        )
    return out


# ---------------------------------------------------------------------------------------------------------
# closed form


def ridge_loo(
    phi: np.ndarray, y: np.ndarray, alphas=None, n_unpenalised: int = 0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    r"""Ridge regression $y = b + \Phi c$ on standardised features, penalty chosen per output by exact
    leave-one-out (LOO) cross-validation; the first `n_unpenalised` features (and the intercept) are not
    penalised.

    The unpenalised block $A = [1, \Phi_{:k}]$ is partialled out (Frisch-Waugh-Lovell): with
    $M = I - A A^+$, $Z = M\Phi_{k:}$ (standardised) $= U S V^T$ and $y_c = M y$, the penalised coefficients
    are $c = V \mathrm{diag}(s/(s^2+\alpha)) U^T y_c$ and the hat matrix is
    $H = A A^+ + U \mathrm{diag}(s^2/(s^2+\alpha)) U^T$, so the LOO residuals are $e_i/(1 - H_{ii})$
    (Hastie, Tibshirani & Friedman, *Elements of Statistical Learning*, eq. 7.52).

    **Arguments**: `phi[n, p]`, `y[n, q]`, `alphas` (relative to $s_{max}^2$; default
    `logspace(-10, 1, 45)`), `n_unpenalised`.

    **Returns** `(coef[q, p], intercept[q], alpha[q])` on the original feature scale.
    """
    n = phi.shape[0]
    k = int(n_unpenalised)
    a = np.concatenate([np.ones((n, 1)), phi[:, :k]], axis=1)
    a_pinv = np.linalg.pinv(a)
    h_a = np.einsum("ij,ji->i", a, a_pinv)

    def resid(v):
        return v - a @ (a_pinv @ v)

    q = phi[:, k:]
    sd = np.where(q.std(0) > 0, q.std(0), 1.0)
    z = resid(q / sd)
    yc = resid(y)
    u, s, vt = np.linalg.svd(z, full_matrices=False)
    keep = s > 1e-10 * (s[0] if s.size else 1.0)
    u, s, vt = u[:, keep], s[keep], vt[keep]
    uty = u.T @ yc
    smax2 = s[0] ** 2 if s.size else 1.0
    alphas = np.logspace(-10, 1, 45) if alphas is None else np.asarray(alphas, dtype=np.float64)
    best_err = np.full(y.shape[1], np.inf)
    best_alpha = np.zeros(y.shape[1])
    for alpha in alphas * smax2:
        f = s**2 / (s**2 + alpha)
        fitted = u @ (f[:, None] * uty)
        h = np.einsum("ik,k,ik->i", u, f, u) + h_a
        loo = (yc - fitted) / np.maximum(1.0 - h, 1e-12)[:, None]
        err = np.mean(loo**2, axis=0)
        better = err < best_err
        best_err = np.where(better, err, best_err)
        best_alpha = np.where(better, alpha, best_alpha)
    cq = np.zeros((y.shape[1], q.shape[1]))
    for alpha in np.unique(best_alpha):
        cols = best_alpha == alpha
        cq[cols] = ((vt.T @ ((s / (s**2 + alpha))[:, None] * uty[:, cols])) / sd[:, None]).T
    # unpenalised block: least squares of what the penalised terms leave
    ca = a_pinv @ (y - q @ cq.T)
    coef = np.concatenate([ca[1:].T, cq], axis=1)
    return coef, ca[0], best_alpha / smax2


def _fit_linear(model: LinearEmulator, data: dict, ridge: float) -> LinearEmulator:
    n = data["x"].shape[0]
    d = (data["x"] - np.asarray(model.x_ref)).reshape(n, -1)
    y = data["y"].reshape(n, -1)
    a = np.concatenate([np.ones((n, 1)), d], axis=1)
    if ridge > 0:
        reg = ridge * np.eye(a.shape[1])
        reg[0, 0] = 0.0
        sol = np.linalg.solve(a.T @ a + reg, a.T @ y)
    else:
        sol = np.linalg.lstsq(a, y, rcond=None)[0]  # minimum-norm when under-determined
    model = eqx.tree_at(lambda m: m.jacobian, model, jnp.asarray(sol[1:].T))
    return eqx.tree_at(lambda m: m.base, model, jnp.asarray(sol[0].reshape(model.base.shape)))


def _fit_polynomial(model: PolynomialEmulator, data: dict, alphas) -> PolynomialEmulator:
    n = data["x"].shape[0]
    phi = np.asarray(jax.vmap(model.features)(jnp.asarray(data["x"])))
    # linear terms unpenalised (the source-receptor matrix), interactions ridge-penalised
    n_linear = int(np.prod(model.labels.input_shape))
    coef, intercept, _ = ridge_loo(phi, data["y"].reshape(n, -1), alphas, n_unpenalised=n_linear)
    model = eqx.tree_at(lambda m: m.coef, model, jnp.asarray(coef))
    return eqx.tree_at(lambda m: m.base, model, jnp.asarray(intercept.reshape(model.base.shape)))


# ---------------------------------------------------------------------------------------------------------
# gradient training


def _trainable(model) -> object:
    spec = jax.tree.map(eqx.is_inexact_array, model)
    frozen = [lambda m: m.x_ref, lambda m: m.envelope]
    if isinstance(model, MLPEmulator):
        frozen += [lambda m: m.input_scale]
    if isinstance(model, GriddedEmulator):
        frozen += [
            lambda m: m.base,
            lambda m: m.static_channels,
            lambda m: m.input_scale,
            lambda m: m.output_scale,
        ]
    if isinstance(model, StructuredEmulator):
        frozen += list(model.frozen)
    for where in frozen:
        spec = eqx.tree_at(where, spec, replace_fn=lambda node: jax.tree.map(lambda _: False, node))
    return spec


def _error_scale(base: np.ndarray) -> np.ndarray:
    """Per-output error scale: |base|, floored at 5% of the component's mean |base| (clean cells do not
    dominate the loss)."""
    a = np.abs(base)
    floor = 0.05 * a.reshape(a.shape[0], -1).mean(axis=1)
    floor = np.maximum(floor, 1e-12).reshape((-1,) + (1,) * (a.ndim - 1))
    return np.maximum(a, floor)


def _init_mlp(model: MLPEmulator, data: dict, base) -> MLPEmulator:
    """Base case, input scale and the linear part of the MLP emulator from closed-form fits."""
    x, y = data["x"], data["y"]
    n = x.shape[0]
    x_ref = np.asarray(model.x_ref)
    if base is None:
        at_ref = np.all(np.isclose(x, x_ref[None], rtol=1e-9, atol=1e-12).reshape(n, -1), axis=1)
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
    lin = np.linalg.lstsq(d, rel, rcond=None)[0].T
    model = eqx.tree_at(lambda m: m.base, model, jnp.asarray(base))
    model = eqx.tree_at(lambda m: m.input_scale, model, jnp.asarray(scale))
    return eqx.tree_at(lambda m: m.linear, model, jnp.asarray(lin))


CHECKPOINT_MAGIC = b"DIFFMRIO-CHECKPOINT 2\n"


def _sha256_arrays(*arrays) -> str:
    """sha256 over the dtype, shape and float64/native bytes of each array, in order."""
    h = hashlib.sha256()
    for a in arrays:
        a = np.ascontiguousarray(a)
        h.update(f"{a.dtype.str}{a.shape}|".encode())
        h.update(a.tobytes())
    return h.hexdigest()


def _weights_digest(model) -> str:
    """Content hash of an emulator's arrays: every leaf's path in the tree (its structure), dtype, shape and
    bytes."""
    h = hashlib.sha256(type(model).__name__.encode())
    for path, leaf in jax.tree_util.tree_flatten_with_path(eqx.filter(model, eqx.is_array))[0]:
        if jnp.issubdtype(leaf.dtype, jax.dtypes.prng_key):
            leaf = jr.key_data(leaf)
        h.update(jax.tree_util.keystr(path).encode())
        h.update(_sha256_arrays(np.asarray(leaf)).encode())
    return h.hexdigest()


def _fingerprint(model, data, cfg, with_sensitivities: bool) -> dict:
    """What determines a training's result: the data (inputs and outputs in run order, and the adjoint
    sensitivities when they are used), the model (structure, labels and initial weights) and every
    training setting. Stored in the checkpoint and compared on resume."""
    fp = {
        "model": {"class": type(model).__name__, "hyperparameters": model.hyperparameters,
                  "labels_sha256": hashlib.sha256(json.dumps(model.labels.to_json()).encode()).hexdigest(),
                  "weights_sha256": _weights_digest(model)},
        "data": {"n_runs": int(data["x"].shape[0]), "inputs_sha256": _sha256_arrays(data["x"]),
                 "outputs_sha256": _sha256_arrays(data["y"]),
                 "sensitivities_sha256": _sha256_arrays(data["g"], data["w"]) if with_sensitivities else None},
        "settings": cfg,
    }
    return json.loads(json.dumps(fp, sort_keys=True))  # tuples -> lists, as read back


_WHAT = {
    ("model", "class"): "model: the emulator class differs",
    ("model", "hyperparameters"): "model: the emulator hyperparameters differ",
    ("model", "labels_sha256"): "model: the input/output labels differ",
    ("model", "weights_sha256"): "model: the initial weights or structure differ (another init key, base case "
                                 "or code version)",
    ("data", "n_runs"): "data: the number of runs differs",
    ("data", "inputs_sha256"): "data: the run inputs differ (values or run order)",
    ("data", "outputs_sha256"): "data: the run outputs differ (values or run order)",
    ("data", "sensitivities_sha256"): "data: the adjoint sensitivities or cost weights differ",
}


def _fingerprint_diff(stored: dict, now: dict) -> list[str]:
    out = []
    for part in ("model", "data", "settings"):
        a, b = stored.get(part, {}), now[part]
        for k in sorted(set(a) | set(b)):
            if a.get(k) != b.get(k):
                if part == "settings":
                    out.append(f"hyperparameter {k}: checkpoint has {a.get(k)!r}, this call {b.get(k)!r}")
                elif (part, k) in _WHAT:
                    msg = _WHAT[(part, k)]
                    if k in ("n_runs", "hyperparameters", "class"):
                        msg += f" (checkpoint {a.get(k)!r}, now {b.get(k)!r})"
                    out.append(msg)
                else:
                    out.append(f"{part}: {k} differs")
    return out


def _corrupt(path, why: str) -> ValueError:
    return ValueError(
        f"checkpoint {path} is corrupt or not a training checkpoint ({why}), e.g. from an interrupted copy or "
        "a full disk: delete it (training restarts from the beginning) or pass a fresh `checkpoint=` path"
    )


def _read_checkpoint(path: Path, fingerprint: dict, state):
    """The state stored in checkpoint `path`, after checking its integrity and that it was written by the
    same training (`fingerprint`)."""
    raw = path.read_bytes()
    if not raw:
        raise _corrupt(path, "the file is empty")
    if not raw.startswith(CHECKPOINT_MAGIC):
        if raw.startswith(b"{"):
            raise ValueError(
                f"checkpoint {path} was written by an older version of surrogate.fit without content "
                "fingerprints: delete it (training restarts) or pass a fresh `checkpoint=` path"
            )
        raise _corrupt(path, f"it does not start with {CHECKPOINT_MAGIC.decode().strip()!r}")
    end = raw.find(b"\n", len(CHECKPOINT_MAGIC))
    try:
        header = json.loads(raw[len(CHECKPOINT_MAGIC) : end].decode())
        body_sha, body_len, stored = header["body_sha256"], int(header["body_bytes"]), header["fingerprint"]
    except (ValueError, KeyError, TypeError, UnicodeDecodeError) as err:
        raise _corrupt(path, f"unreadable header: {err}") from None
    body = raw[end + 1 :] if end >= 0 else b""
    if len(body) != body_len or hashlib.sha256(body).hexdigest() != body_sha:
        raise _corrupt(path, f"its weights are {len(body)} bytes with a different checksum than the "
                             f"{body_len} bytes written (truncated or overwritten)")
    diffs = _fingerprint_diff(stored, fingerprint)
    if diffs:
        raise ValueError(
            f"checkpoint {path} was written by a different training, so resuming from it would not reproduce "
            f"this one: {'; '.join(diffs)}. Delete it (training restarts) or pass another `checkpoint=` path"
        )
    try:
        return eqx.tree_deserialise_leaves(io.BytesIO(body), state)
    except Exception as err:  # noqa: BLE001 - a stored tree of another shape
        raise _corrupt(path, f"its stored state does not fit this model: {err}") from None


def _write_checkpoint(path: Path, fingerprint: dict, state) -> None:
    buf = io.BytesIO()
    eqx.tree_serialise_leaves(buf, state)
    body = buf.getvalue()
    header = {"fingerprint": fingerprint, "body_sha256": hashlib.sha256(body).hexdigest(), "body_bytes": len(body)}

    def writer(f):
        f.write(CHECKPOINT_MAGIC)
        f.write(json.dumps(header, sort_keys=True).encode() + b"\n")
        f.write(body)

    write_bytes_atomic(path, writer)


def _all_finite(tree) -> bool:
    return all(bool(jnp.all(jnp.isfinite(leaf))) for leaf in jax.tree.leaves(eqx.filter(tree, eqx.is_inexact_array)))


def _diverged(step: int, learning_rate: float) -> FloatingPointError:
    return FloatingPointError(
        f"training diverged: the loss or the weights became non-finite (NaN/inf) by step {step}; lower "
        f"`learning_rate` (now {learning_rate:g}) or check the run set for extreme values"
    )


def _train(
    model,
    data: dict,
    *,
    key,
    steps: int,
    max_steps: int | None,
    learning_rate: float,
    weight_decay: float,
    batch_size: int | None,
    validation_fraction: float,
    eval_every: int,
    patience: int | None,
    sobolev_weight: float,
    checkpoint,
    checkpoint_every: int,
    progress: bool,
    train_base: bool,
):
    x_all, y_all = data["x"], data["y"]
    n = x_all.shape[0]
    split_key, train_key = jr.split(key)
    perm = np.asarray(jr.permutation(split_key, n))
    n_val = int(round(validation_fraction * n)) if validation_fraction > 0 else 0
    if n_val >= n:
        raise ValueError(f"`validation_fraction` {validation_fraction} leaves no training runs out of {n}")
    val_idx, tr_idx = perm[:n_val], perm[n_val:]
    has_g = sobolev_weight > 0
    if has_g and "g" not in data:
        raise ValueError(
            "`sobolev_weight` > 0 needs adjoint sensitivities: add `sensitivity` and `cost_weights` to the run set"
        )
    err_scale = jnp.asarray(_error_scale(np.asarray(model.base)))
    xs, ys = jnp.asarray(x_all), jnp.asarray(y_all)
    if has_g:
        g_all = data["g"]
        g_mask = jnp.asarray(np.all(np.isfinite(g_all).reshape(n, -1), axis=1))
        gs = jnp.asarray(np.nan_to_num(g_all))
        ws = jnp.asarray(data["w"])  # per-run cost weights [run, *output]
        finite = np.isfinite(g_all).reshape(n, -1).all(axis=1)
        g_norm = float(np.mean(g_all[finite] ** 2)) if finite.any() else 1.0
    spec = _trainable(model)
    if not train_base and isinstance(model, MLPEmulator):
        spec = eqx.tree_at(lambda m: m.base, spec, False)
    params, static = eqx.partition(model, spec)

    warmup = max(1, min(100, steps // 10))
    schedule = optax.warmup_cosine_decay_schedule(
        0.0,
        learning_rate,
        warmup_steps=warmup,
        decay_steps=max(steps, warmup + 1),
        end_value=learning_rate * 0.01,
    )
    opt = optax.chain(optax.clip_by_global_norm(1.0), optax.adamw(schedule, weight_decay=weight_decay))
    opt_state = opt.init(params)

    def loss_fn(p, idx):
        m = eqx.combine(p, static)
        x, y = xs[idx], ys[idx]
        pred = jax.vmap(m._predict)(x)
        loss = jnp.mean(((pred - y) / err_scale) ** 2)
        if has_g:
            gp = jax.vmap(jax.grad(lambda xi, wi: jnp.sum(wi * m._predict(xi))))(x, ws[idx])
            mask = g_mask[idx].astype(gp.dtype)
            per_run = jnp.mean(((gp - gs[idx]) ** 2).reshape(idx.shape[0], -1), axis=1) / g_norm
            loss = loss + sobolev_weight * jnp.sum(mask * per_run) / jnp.maximum(jnp.sum(mask), 1.0)
        return loss

    @eqx.filter_jit
    def step_fn(p, o, idx):
        loss, grads = eqx.filter_value_and_grad(loss_fn)(p, idx)
        updates, o = opt.update(grads, o, eqx.filter(p, eqx.is_array))
        return eqx.apply_updates(p, updates), o, loss

    eval_fn = eqx.filter_jit(loss_fn)
    tr_idx_j = jnp.asarray(tr_idx)
    val_idx_j = jnp.asarray(val_idx if n_val else tr_idx)
    bs = len(tr_idx) if batch_size is None else min(int(batch_size), len(tr_idx))

    state = {
        "params": params,
        "opt_state": opt_state,
        "best": params,
        "best_val": jnp.asarray(jnp.inf),
        "step": jnp.asarray(0),
        "bad": jnp.asarray(0),
    }
    cfg = {
        "steps": steps,
        "learning_rate": learning_rate,
        "weight_decay": weight_decay,
        "batch_size": bs,
        "validation_fraction": validation_fraction,
        "eval_every": eval_every,
        "sobolev_weight": sobolev_weight,
        "patience": patience,
        "train_base": bool(train_base),
        "key": np.asarray(
            jr.key_data(key) if jnp.issubdtype(key.dtype, jax.dtypes.prng_key) else key
        ).tolist(),
    }
    fingerprint = _fingerprint(model, data, cfg, has_g)
    ckpt = Path(checkpoint) if checkpoint is not None else None
    if ckpt is not None and ckpt.exists():
        if not ckpt.is_file():
            raise ValueError(f"checkpoint {ckpt} is not a file: pass a file path as `checkpoint=`")
        state = _read_checkpoint(ckpt, fingerprint, state)

    def save_ckpt():
        if ckpt is None:
            return
        if not _all_finite((state["params"], state["best"])):
            raise _diverged(int(state["step"]), learning_rate)
        _write_checkpoint(ckpt, fingerprint, state)

    start = int(state["step"])
    stop_at = steps if max_steps is None else min(steps, int(max_steps))
    history = {"step": [], "train_loss": [], "val_loss": []}
    bar = tqdm(
        total=steps, initial=start, disable=not progress, desc=f"fit {type(model).__name__}", leave=False
    )
    p, o = state["params"], state["opt_state"]
    stopped = False
    for step in range(start, stop_at):
        if patience is not None and int(state["bad"]) * eval_every >= patience:
            stopped = True
            break
        if bs < len(tr_idx):
            sel = jr.choice(jr.fold_in(train_key, step), len(tr_idx), (bs,), replace=False)
            idx = tr_idx_j[sel]
        else:
            idx = tr_idx_j
        p, o, loss = step_fn(p, o, idx)
        state["params"], state["opt_state"], state["step"] = p, o, jnp.asarray(step + 1)
        if (step + 1) % eval_every == 0 or step + 1 == steps:
            val = eval_fn(p, val_idx_j)
            history["step"].append(step + 1)
            history["train_loss"].append(float(loss))
            history["val_loss"].append(float(val))
            if not (math.isfinite(float(loss)) and math.isfinite(float(val))):
                raise _diverged(step + 1, learning_rate)
            if float(val) < float(state["best_val"]):
                state["best_val"], state["best"], state["bad"] = val, p, jnp.asarray(0)
            else:
                state["bad"] = state["bad"] + 1
            bar.set_postfix(loss=f"{float(loss):.3g}", val=f"{float(val):.3g}")
        if (step + 1) % checkpoint_every == 0:
            save_ckpt()
        bar.update(1)
    bar.close()
    save_ckpt()
    best = state["best"] if np.isfinite(float(state["best_val"])) else state["params"]
    if not _all_finite(best):
        raise _diverged(int(state["step"]), learning_rate)
    history["best_val_loss"] = float(state["best_val"])
    history["stopped_early"] = stopped
    history["steps_done"] = int(state["step"])
    return eqx.combine(best, static), history


def _check_training_args(*, steps, max_steps, learning_rate, weight_decay, batch_size, validation_fraction,
                         eval_every, patience, sobolev_weight, ridge, checkpoint_every) -> None:
    """Refuse settings that would fail obscurely (a division by zero) or silently (a NaN model)."""

    def number(name, v, *, low=None, low_ok=True, high=None, high_ok=False):
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

    def integer(name, v, low, optional=False):
        if optional and v is None:
            return
        whole = isinstance(v, int | np.integer) or (isinstance(v, float | np.floating) and float(v).is_integer())
        if isinstance(v, bool) or not whole or v < low:
            raise ValueError(f"`{name}` must be an integer >= {low}{' or None' if optional else ''}, got {v!r}")

    integer("steps", steps, 1)
    integer("max_steps", max_steps, 0, optional=True)
    integer("batch_size", batch_size, 1, optional=True)
    integer("eval_every", eval_every, 1)
    integer("checkpoint_every", checkpoint_every, 1)
    integer("patience", patience, 0, optional=True)
    number("learning_rate", learning_rate, low=0, low_ok=False)
    number("weight_decay", weight_decay, low=0)
    number("validation_fraction", validation_fraction, low=0, high=1)
    number("sobolev_weight", sobolev_weight, low=0)
    number("ridge", ridge, low=0)


def fit(
    model: AbstractEmulator,
    runs,
    *,
    key=None,
    inputs: str | None = None,
    outputs: str | None = None,
    base=None,
    envelope: tuple | Envelope | None = None,
    on_out_of_envelope: str | None = None,
    steps: int = 3000,
    max_steps: int | None = None,
    learning_rate: float = 3e-3,
    weight_decay: float = 1e-6,
    batch_size: int | None = None,
    validation_fraction: float = 0.15,
    eval_every: int = 25,
    patience: int | None = 1000,
    sobolev_weight: float = 0.0,
    ridge: float = 0.0,
    ridge_alphas=None,
    checkpoint: str | os.PathLike | None = None,
    checkpoint_every: int = 200,
    progress: bool = True,
    return_history: bool = False,
):
    """Fit an emulator to CTM runs.

    - `LinearEmulator`: least squares $\\min \\sum_r \\|y_r - y_0 - J(x_r - x_0)\\|^2$ (closed form;
      minimum-norm when under-determined; optional `ridge`).
    - `PolynomialEmulator`: ridge regression with per-output leave-one-out penalty (closed form, `ridge_loo`).
    - `MLPEmulator`, `GriddedEmulator`: optax AdamW with warmup-cosine learning-rate schedule and gradient
      clipping, on the relative squared error $\\frac1N\\sum ((\\hat y - y)/s)^2$ ($s$ = |base case|, floored);
      early stopping on a held-out split (the parameters with the best validation loss are returned); with
      `sobolev_weight` $\\lambda > 0$ the loss adds
      $\\lambda\\, \\overline{\\|\\nabla_x (w\\cdot\\hat y) - g\\|^2} / \\overline{g^2}$ over runs that carry adjoint
      sensitivities $g$ (Czarnecki et al. 2017, "Sobolev training for neural networks"); $w$ is one cost for all
      runs, or one per run (`cost_weights` with a `run` dim) when adjoints of several costs are available.
    - `Ensemble`: each member fitted in turn with `jr.fold_in(key, member)` (its checkpoint gets the suffix
      `.member<i>`).

    The training envelope is `envelope` (`(lower, upper)` arrays or an `Envelope`) if given; else the design
    box when the inputs carry `low`/`high` coordinates (as `ctm_interface.latin_hypercube_design` writes);
    else the box around the training inputs widened by one Latin-hypercube stratum (`envelope_from_design`).

    **Arguments**

    - `model`: the emulator to fit (its labels must match the run set).
    - `runs`: `xarray.Dataset` of runs (see the module docstring); `inputs`/`outputs` name its variables.
    - `key`: keyword-only PRNG key (required for neural emulators: validation split, mini-batches).
    - `base`: base-case outputs for the MLP emulator (default: the run at `x_ref` if the set has one, else a
      fitted intercept, then refined in training).
    - `steps`: planned optimisation steps (the schedule's length); `max_steps`: stop after this many steps
      in total (an interruption: with `checkpoint`, a later call resumes and reproduces the uninterrupted
      result exactly).
    - `learning_rate`, `weight_decay`, `batch_size` (default full batch), `validation_fraction`,
      `eval_every`, `patience` (steps without validation improvement before stopping; `None` = never).
    - `checkpoint`: path of a resumable checkpoint (written atomically every `checkpoint_every` steps and at
      the end); `progress`: tqdm bar.

    **Returns** the fitted emulator (and a history dict with `return_history=True`).
    """
    _check_training_args(
        steps=steps, max_steps=max_steps, learning_rate=learning_rate, weight_decay=weight_decay,
        batch_size=batch_size, validation_fraction=validation_fraction, eval_every=eval_every, patience=patience,
        sobolev_weight=sobolev_weight, ridge=ridge, checkpoint_every=checkpoint_every,
    )  # fmt: skip
    if isinstance(model, Ensemble):
        if key is None and not isinstance(_member(model.members, 0), LinearEmulator | PolynomialEmulator):
            raise ValueError("fitting a neural ensemble needs `key=` (keyword-only PRNG key)")
        fitted, hist = [], []
        for i in range(model.n_members):
            mk = None if key is None else jr.fold_in(key, i)
            ck = None if checkpoint is None else f"{os.fspath(checkpoint)}.member{i}"
            m, h = fit(
                model.member(i), runs, key=mk, inputs=inputs, outputs=outputs, base=base, envelope=envelope,
                on_out_of_envelope=on_out_of_envelope, steps=steps, max_steps=max_steps,
                learning_rate=learning_rate, weight_decay=weight_decay, batch_size=batch_size,
                validation_fraction=validation_fraction, eval_every=eval_every, patience=patience,
                sobolev_weight=sobolev_weight, ridge=ridge, ridge_alphas=ridge_alphas, checkpoint=ck,
                checkpoint_every=checkpoint_every, progress=progress, return_history=True,
            )  # fmt: skip
            fitted.append(m)
            hist.append(h)
        out = Ensemble(fitted)
        return (out, {"members": hist}) if return_history else out
    if not isinstance(model, AbstractEmulator):
        raise TypeError(f"`model` must be a surrogate emulator, got {type(model).__name__}")
    data = run_arrays(runs, model.labels, inputs, outputs)
    policy = on_out_of_envelope or model.envelope.policy
    xvar = runs[_io_names(runs, inputs, outputs)[0]]
    if envelope is None and {"low", "high"} <= set(xvar.coords):
        # the design box written by ctm_interface's design functions
        envelope = (
            np.asarray(xvar["low"].transpose(*model.labels.input_dims).values, np.float64),
            np.asarray(xvar["high"].transpose(*model.labels.input_dims).values, np.float64),
        )
    if envelope is None:
        env = envelope_from_design(data["x"], policy)
    elif isinstance(envelope, Envelope):
        env = Envelope(envelope.lower, envelope.upper, policy)
    else:
        lo, hi = envelope
        shape = model.labels.input_shape
        env = Envelope(
            jnp.broadcast_to(jnp.asarray(lo, dtype=jnp.float64), shape),
            jnp.broadcast_to(jnp.asarray(hi, dtype=jnp.float64), shape),
            policy,
        )
    history: dict = {}
    if isinstance(model, LinearEmulator):
        model = _fit_linear(model, data, ridge)
    elif isinstance(model, PolynomialEmulator):
        model = _fit_polynomial(model, data, ridge_alphas)
    elif isinstance(model, MLPEmulator | GriddedEmulator | StructuredEmulator):
        if key is None:
            raise ValueError(f"fitting a {type(model).__name__} needs `key=` (keyword-only PRNG key)")
        train_base = False
        if isinstance(model, StructuredEmulator):  # closed-form start (the primary components are final)
            model = model.initialise(data["x"], data["y"])
        if isinstance(model, MLPEmulator):
            had_base_run = base is not None
            model = _init_mlp(model, data, base)
            train_base = not had_base_run and not np.any(
                np.all(
                    np.isclose(data["x"], np.asarray(model.x_ref)[None]).reshape(len(data["x"]), -1), axis=1
                )
            )
        model, history = _train(
            model, data, key=key, steps=int(steps), max_steps=max_steps, learning_rate=float(learning_rate),
            weight_decay=float(weight_decay), batch_size=batch_size,
            validation_fraction=float(validation_fraction), eval_every=int(eval_every), patience=patience,
            sobolev_weight=float(sobolev_weight), checkpoint=checkpoint, checkpoint_every=int(checkpoint_every),
            progress=progress, train_base=train_base,
        )  # fmt: skip
    else:
        raise TypeError(f"no fitting procedure for {type(model).__name__}")
    model = with_envelope(model, env)
    return (model, history) if return_history else model
