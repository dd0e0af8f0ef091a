"""Fitting emulators to CTM runs: `fit(model, runs, method)` with a method object (`_methods`):
`ClosedForm` for the linear and polynomial emulators (their `_fit_closed_form`), `Adam` for the neural ones
(optax; learning-rate schedule, early stopping on a held-out split, resumable atomic checkpoints, an optional
Sobolev term on adjoint sensitivities), dispatched on the method's type.

**Run sets** are `xarray.Dataset`s with a `run` dimension:

- source level (as `ctm_interface.collect_runs` writes them): inputs `scale[run, source, species]` (or
  `emissions[...]`), outputs `pm25[run, receptor, component]`;
- gridded: inputs `emissions[run, species, level, row, col]`, outputs `conc[run, component, row, col]`;
- optional adjoint sensitivities for a linear cost $J = \\sum w \\odot y$: `sensitivity` (dims of the inputs,
  NaN for runs without an adjoint) and `cost_weights` (dims of the outputs; with `run` first when the runs'
  adjoints are of different costs, e.g. one receptor each).
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import math
import os
import warnings
from pathlib import Path

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import optax

from ctm_interface._atomic import write_bytes_atomic
from ctm_interface._callers import user_stacklevel
from ctm_interface._progress import tqdm

from ._abstract import AbstractEmulator, Envelope, envelope_from_design, with_envelope
from ._ensemble import Ensemble
from ._methods import AbstractFitMethod, Adam, Checkpoint, ClosedForm, _integer
from ._ridge import ridge_loo as ridge_loo
from ._runs import (
    _INPUT_NAMES as _INPUT_NAMES,
    _OUTPUT_NAMES as _OUTPUT_NAMES,
    _io_names as _io_names,
    run_arrays as run_arrays,
)

# ---------------------------------------------------------------------------------------------------------
# gradient training


def _trainable(model, train_base: bool) -> object:
    """The filter spec of the arrays gradient training updates: every inexact array except `x_ref`, the
    envelope, the fields the family keeps fixed (`model._frozen()`) and, unless `train_base`, a `base` field."""
    spec = jax.tree.map(eqx.is_inexact_array, model)
    frozen = [lambda m: m.x_ref, lambda m: m.envelope, *model._frozen()]
    if not train_base and "base" in {f.name for f in dataclasses.fields(model)}:
        frozen.append(lambda m: m.base)
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
    method: Adam,
    *,
    key,
    checkpoint: Checkpoint | None,
    progress: bool,
    train_base: bool,
):
    steps, max_steps, learning_rate = method.steps, method.max_steps, method.learning_rate
    weight_decay, batch_size, eval_every = method.weight_decay, method.batch_size, method.eval_every
    validation_fraction, patience, sobolev_weight = method.validation_fraction, method.patience, method.sobolev_weight
    checkpoint_every = 200 if checkpoint is None else checkpoint.every
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
    spec = _trainable(model, train_base)
    params, static = eqx.partition(model, spec)
    frozen, static = eqx.partition(static, eqx.is_array)  # arrays not trained (base case, closed-form parts)

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

    # The training data and the scalars computed from it are arguments of the compiled step, not constants
    # baked into it: the step's XLA program is then the same for every fit of the same model structure and
    # settings (the members of an ensemble, a refit, another run set of the same shape), so the persistent
    # compilation cache serves it instead of compiling again.
    arrays = {"x": xs, "y": ys, "err_scale": err_scale, "frozen": frozen}
    if has_g:
        arrays.update(g=gs, w=ws, g_mask=g_mask, g_norm=jnp.asarray(g_norm), sobolev=jnp.asarray(sobolev_weight))

    def loss_fn(p, idx, d):
        m = eqx.combine(p, d["frozen"], static)
        x, y = d["x"][idx], d["y"][idx]
        pred = jax.vmap(m._predict)(x)
        loss = jnp.mean(((pred - y) / d["err_scale"]) ** 2)
        if has_g:
            gp = jax.vmap(jax.grad(lambda xi, wi: jnp.sum(wi * m._predict(xi))))(x, d["w"][idx])
            mask = d["g_mask"][idx].astype(gp.dtype)
            per_run = jnp.mean(((gp - d["g"][idx]) ** 2).reshape(idx.shape[0], -1), axis=1) / d["g_norm"]
            loss = loss + d["sobolev"] * jnp.sum(mask * per_run) / jnp.maximum(jnp.sum(mask), 1.0)
        return loss

    @eqx.filter_jit
    def step_fn(p, o, idx, d):
        loss, grads = eqx.filter_value_and_grad(loss_fn)(p, idx, d)
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
    # every setting of the method that changes the result (all but `max_steps`), the batch size as used,
    # whether the base case is trained, and the key
    cfg = {k: v for k, v in method.settings().items() if k not in Adam.NOT_IN_FINGERPRINT}
    cfg.update({
        "batch_size": bs,
        "train_base": bool(train_base),
        "key": np.asarray(
            jr.key_data(key) if jnp.issubdtype(key.dtype, jax.dtypes.prng_key) else key
        ).tolist(),
    })  # fmt: skip
    fingerprint = _fingerprint(model, data, cfg, has_g)
    ckpt = Path(checkpoint.path) if checkpoint is not None else None
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
        p, o, loss = step_fn(p, o, idx, arrays)
        state["params"], state["opt_state"], state["step"] = p, o, jnp.asarray(step + 1)
        if (step + 1) % eval_every == 0 or step + 1 == steps:
            val = eval_fn(p, val_idx_j, arrays)
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
    return eqx.combine(best, frozen, static), history


#: the keyword arguments `fit` took before the method objects, and where each now lives
_ADAM_KEYWORDS = ("steps", "max_steps", "learning_rate", "weight_decay", "batch_size", "validation_fraction",
                  "eval_every", "patience", "sobolev_weight")
_CLOSED_FORM_KEYWORDS = ("ridge", "ridge_alphas")


def _method_from_keywords(model, legacy: dict) -> tuple[AbstractFitMethod, int | None]:
    """The method the pre-0.2 keyword form of `fit` asked for: every keyword is checked as before, and the
    model's default kind of method is built from those that apply to it (the others were ignored then too)."""
    unknown = sorted(set(legacy) - set(_ADAM_KEYWORDS) - set(_CLOSED_FORM_KEYWORDS) - {"checkpoint_every"})
    if unknown:
        raise TypeError(f"fit() got unexpected keyword argument(s) {unknown}")
    every = legacy.get("checkpoint_every")
    if every is not None:
        every = _integer("checkpoint_every", every, 1)
        warnings.warn(
            "surrogate.fit's `checkpoint_every=` is deprecated and will be removed in 0.3: pass "
            "checkpoint=surrogate.Checkpoint(path, every=...)",
            DeprecationWarning,
            stacklevel=user_stacklevel("surrogate"),
        )
    adam = Adam(**{k: legacy[k] for k in _ADAM_KEYWORDS if k in legacy})
    closed = ClosedForm(**{k: legacy[k] for k in _CLOSED_FORM_KEYWORDS if k in legacy})
    given = sorted(set(legacy) - {"checkpoint_every"})
    if given:
        kind = "ClosedForm" if isinstance(model.default_fit_method(), ClosedForm) else "Adam"
        warnings.warn(
            f"surrogate.fit's training keywords {given} are deprecated and will be removed in 0.3: pass "
            f"method=surrogate.{kind}(...) with the same settings (surrogate.ClosedForm(ridge=, ridge_alphas=) "
            "or surrogate.Adam(steps=, learning_rate=, ...))",
            DeprecationWarning,
            stacklevel=user_stacklevel("surrogate"),
        )
    method = closed if isinstance(model.default_fit_method(), ClosedForm) else adam
    return method, every


def _resolve_envelope(model, runs, data, inputs, outputs, envelope, on_out_of_envelope) -> Envelope:
    """The training envelope (see `fit`), with the policy `on_out_of_envelope` or the model's."""
    policy = on_out_of_envelope or model.envelope.policy
    xvar = runs[_io_names(runs, inputs, outputs)[0]]
    if envelope is None and {"low", "high"} <= set(xvar.coords):
        # the design box written by ctm_interface's design functions
        envelope = (
            np.asarray(xvar["low"].transpose(*model.labels.input_dims).values, np.float64),
            np.asarray(xvar["high"].transpose(*model.labels.input_dims).values, np.float64),
        )
    if envelope is None:
        return envelope_from_design(data["x"], policy)
    if isinstance(envelope, Envelope):
        return envelope.with_policy(policy)
    lo, hi = envelope
    shape = model.labels.input_shape
    return Envelope(
        jnp.broadcast_to(jnp.asarray(lo, dtype=jnp.float64), shape),
        jnp.broadcast_to(jnp.asarray(hi, dtype=jnp.float64), shape),
        policy,
    )


def _run_closed_form(model, data, method: ClosedForm, *, key, base, checkpoint, progress):
    if base is not None:
        raise ValueError(f"`base=` is used by the MLP emulator only; {type(model).__name__} does not take it")
    return model._fit_closed_form(data["x"], data["y"], method), {}


def _run_adam(model, data, method: Adam, *, key, base, checkpoint, progress):
    if key is None:
        raise ValueError(f"fitting a {type(model).__name__} needs `key=` (keyword-only PRNG key)")
    model, train_base = model._training_start(data["x"], data["y"], base)
    return _train(model, data, method, key=key, checkpoint=checkpoint, progress=progress, train_base=train_base)


#: how each kind of method is run (`fit` dispatches on the method's type)
_RUNNERS = {ClosedForm: _run_closed_form, Adam: _run_adam}


def fit(
    model: AbstractEmulator,
    runs,
    method=None,  # AbstractFitMethod | None: checked below, with a message that names the method classes
    *,
    key=None,
    inputs: str | None = None,
    outputs: str | None = None,
    base=None,
    envelope: tuple | Envelope | None = None,
    on_out_of_envelope: str | None = None,
    checkpoint: Checkpoint | str | os.PathLike | None = None,
    progress: bool = True,
    return_history: bool = False,
    **deprecated,
):
    """Fit an emulator to CTM runs, with a training method object.

    ```python
    model = surrogate.fit(surrogate.PolynomialEmulator(labels), runs)  # ClosedForm()
    model = surrogate.fit(mlp, runs, surrogate.Adam(steps=2000, learning_rate=3e-3), key=key,
                          checkpoint=surrogate.Checkpoint("mlp.ckpt", every=200))
    ```

    - `surrogate.ClosedForm(ridge=, ridge_alphas=)`: `LinearEmulator` (least squares
      $\\min \\sum_r \\|y_r - y_0 - J(x_r - x_0)\\|^2$, minimum-norm when under-determined, optional `ridge`) and
      `PolynomialEmulator` (ridge regression with per-output leave-one-out penalty, `ridge_loo`); their default.
    - `surrogate.Adam(steps=, learning_rate=, ...)`: `MLPEmulator`, `GriddedEmulator`, `StructuredEmulator` and
      user-defined emulators (optax AdamW, warmup-cosine schedule, early stopping on a held-out split, an
      optional Sobolev term on adjoint sensitivities; see `surrogate.Adam`); their default.
    - `Ensemble`: each member fitted in turn with `jr.fold_in(key, member)` (its checkpoint gets the suffix
      `.member<i>`).

    A method the model cannot be trained with is refused (a `TypeError` naming the method to use).

    The training envelope is `envelope` (`(lower, upper)` arrays or an `Envelope`) if given; else the design
    box when the inputs carry `low`/`high` coordinates (as `ctm_interface.latin_hypercube_design` writes);
    else the box around the training inputs widened by one Latin-hypercube stratum (`envelope_from_design`).

    **Arguments**

    - `model`: the emulator to fit (its labels must match the run set).
    - `runs`: `xarray.Dataset` of runs (see the module docstring); `inputs`/`outputs` name its variables.
    - `method`: a `ClosedForm` or `Adam` (default: `model.default_fit_method()`).
    - `key`: keyword-only PRNG key (required for `Adam`: validation split, mini-batches).
    - `base`: base-case outputs for the MLP emulator (default: the run at `x_ref` if the set has one, else a
      fitted intercept, then refined in training).
    - `envelope`, `on_out_of_envelope` (`"warn" | "raise" | "ignore"`; default the model's policy).
    - `checkpoint`: a `Checkpoint(path, every=200)` (or a path) for resumable gradient training;
      `progress`: tqdm bar.
    - The pre-0.2 training keywords (`steps=`, `learning_rate=`, ..., `ridge=`, `ridge_alphas=`,
      `checkpoint_every=`) still work for one release, with a `DeprecationWarning`.

    **Returns** the fitted emulator (and a history dict with `return_history=True`).
    """
    if method is not None and not isinstance(method, AbstractFitMethod):
        raise TypeError(
            f"`method` must be a training method such as surrogate.ClosedForm(...) or surrogate.Adam(...), got "
            f"{type(method).__name__}"
        )
    if not isinstance(model, AbstractEmulator):
        raise TypeError(f"`model` must be a surrogate emulator, got {type(model).__name__}")
    legacy_every = None
    if deprecated:
        if method is not None and set(deprecated) - {"checkpoint_every"}:
            raise TypeError(
                f"pass the training settings either as `method=` or as the deprecated keywords "
                f"{sorted(deprecated)}, not both"
            )
        legacy_method, legacy_every = _method_from_keywords(model, deprecated)
        method = legacy_method if method is None else method
    if checkpoint is not None and not isinstance(checkpoint, Checkpoint):
        checkpoint = Checkpoint(checkpoint) if legacy_every is None else Checkpoint(checkpoint, legacy_every)
    method = model.default_fit_method() if method is None else method
    runner = _RUNNERS.get(type(method))
    if runner is None:
        raise TypeError(f"no training procedure for {type(method).__name__}: use one of "
                        f"{[c.__name__ for c in _RUNNERS]}")
    if isinstance(model, Ensemble):  # the composite: its members are fitted one by one
        fitted, hist = [], []
        for i in range(model.n_members):
            mk = None if key is None else jr.fold_in(key, i)
            ck = None if checkpoint is None else Checkpoint(f"{checkpoint.path}.member{i}", checkpoint.every)
            m, h = fit(
                model.member(i), runs, method, key=mk, inputs=inputs, outputs=outputs, base=base,
                envelope=envelope, on_out_of_envelope=on_out_of_envelope, checkpoint=ck, progress=progress,
                return_history=True,
            )  # fmt: skip
            fitted.append(m)
            hist.append(h)
        out = Ensemble(fitted)
        return (out, {"members": hist}) if return_history else out
    data = run_arrays(runs, model.labels, inputs, outputs)
    env = _resolve_envelope(model, runs, data, inputs, outputs, envelope, on_out_of_envelope)
    model, history = runner(model, data, method, key=key, base=base, checkpoint=checkpoint, progress=progress)
    model = with_envelope(model, env)
    return (model, history) if return_history else model
