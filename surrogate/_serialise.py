"""Saving and loading emulators: weights via `eqx.tree_serialise_leaves` plus JSON metadata, in one file,
written atomically. No pickle: loading never executes code from the file.

File layout: a magic line `DIFFMRIO-SURROGATE 2`, a line `sha256:<hex>`, one line of JSON metadata (class,
hyperparameters, labels and units, training envelope, provenance, validation scores, leaf shapes), then the
serialised leaves. The sha256 is over everything after its own line (metadata line and weights), so an
edited label or hyperparameter, changed weights, a truncated file or trailing bytes are refused on load.
"""

from __future__ import annotations

import datetime
import hashlib
import io
import json
from pathlib import Path

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np

from ctm_interface._atomic import write_bytes_atomic

from ._abstract import AbstractEmulator, EmulatorLabels, with_envelope_policy
from ._ensemble import Ensemble
from ._gridded import GriddedEmulator
from ._linear import LinearEmulator
from ._mlp import MLPEmulator
from ._polynomial import PolynomialEmulator
from ._structured import StructuredEmulator

MAGIC = b"DIFFMRIO-SURROGATE 2\n"
_OLD_MAGIC = b"DIFFMRIO-SURROGATE 1\n"
_CLASSES = {
    c.__name__: c
    for c in (LinearEmulator, PolynomialEmulator, MLPEmulator, GriddedEmulator, Ensemble, StructuredEmulator)
}


def _jsonable(obj):
    if obj is None or isinstance(obj, str | bool | int | float):
        return obj
    if hasattr(obj, "to_dict") and hasattr(obj, "data_vars"):  # xarray.Dataset (e.g. evaluate's output)
        return _jsonable(obj.to_dict(data="list"))
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.generic | np.ndarray | jax.Array):
        return np.asarray(obj).tolist()
    if isinstance(obj, datetime.datetime | datetime.date):
        return obj.isoformat()
    raise TypeError(
        f"cannot store {type(obj).__name__} in the JSON metadata: convert it to numbers/strings/lists"
    )


def _leaf_shapes(model) -> list:
    return [list(np.shape(x)) for x in jax.tree.leaves(eqx.filter(model, eqx.is_array))]


def _describe(model: AbstractEmulator) -> dict:
    return {
        "class": type(model).__name__,
        "hyperparameters": model.hyperparameters,
        "labels": model.labels.to_json(),
        "leaf_shapes": _leaf_shapes(model),
    }


def metadata(model: AbstractEmulator) -> dict:
    """The JSON metadata `save` writes for `model` (without provenance and scores)."""
    env = model.envelope
    lo, hi = np.asarray(env.lower), np.asarray(env.upper)
    meta = _describe(model)
    meta["envelope"] = {
        "policy": env.policy,
        "lower_min": float(lo.min()),
        "upper_max": float(hi.max()),
        **({"lower": lo.tolist(), "upper": hi.tolist()} if lo.size <= 4096 else {}),
    }
    meta["input_units"] = model.labels.input_units
    meta["output_units"] = model.labels.output_units
    return meta


def save(path, model: AbstractEmulator, *, provenance: dict | None = None, scores=None) -> Path:
    """Write `model` to `path` (atomically: a temporary file in the same folder, then `os.replace`).

    **Arguments**

    - `path`: file to write (conventionally `*.eqx`).
    - `model`: any surrogate emulator.
    - `provenance`: JSON-able description of the training set (CTM, version, design, run ids, ...).
    - `scores`: validation scores (a dict, or `evaluate`'s `xarray.Dataset`).

    **Returns** the path.
    """
    if not isinstance(model, AbstractEmulator):
        raise TypeError(f"`model` must be a surrogate emulator, got {type(model).__name__}")
    meta = metadata(model)
    meta["provenance"] = _jsonable(provenance or {})
    meta["scores"] = _jsonable(scores or {})
    meta["saved_at"] = datetime.datetime.now(datetime.UTC).isoformat()
    meta["versions"] = {"jax": jax.__version__, "equinox": eqx.__version__}
    line = json.dumps(meta, sort_keys=True).encode() + b"\n"
    buf = io.BytesIO()
    eqx.tree_serialise_leaves(buf, model)
    weights = buf.getvalue()
    digest = hashlib.sha256(line + weights).hexdigest()
    path = Path(path)

    def writer(f):
        f.write(MAGIC)
        f.write(f"sha256:{digest}\n".encode())
        f.write(line)
        f.write(weights)

    write_bytes_atomic(path, writer)
    return path


def load_metadata(path) -> dict:
    """The JSON metadata of a saved emulator (after checking the file's content hash)."""
    return _read_verified(Path(path))[0]


def _read_verified(path: Path) -> tuple[dict, bytes]:
    """(metadata, serialised weights) of an emulator file, after checking its magic line and content hash."""
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such emulator file")
    raw = path.read_bytes()
    if raw.startswith(_OLD_MAGIC):
        raise ValueError(
            f"{path}: emulator file of format 1 (without a content hash, so edits cannot be detected); "
            "re-fit and save it with this version, or delete it if it is a cache"
        )
    if not raw.startswith(MAGIC):
        raise ValueError(
            f"{path}: not a surrogate emulator file (missing the {MAGIC.decode().strip()!r} header)"
        )
    rest = raw[len(MAGIC):]
    hash_line, _, payload = rest.partition(b"\n")
    if not hash_line.startswith(b"sha256:") or len(hash_line) != 7 + 64:
        raise ValueError(f"{path}: corrupt emulator file (no content-hash line after the header)")
    if hashlib.sha256(payload).hexdigest() != hash_line[7:].decode(errors="replace"):
        raise ValueError(
            f"{path}: content hash mismatch: the metadata or weights were changed, truncated or extended after "
            "saving (an edited label or hyperparameter, trailing bytes, a partial copy). Restore the file from "
            "its source or save the emulator again"
        )
    line, _, weights = payload.partition(b"\n")
    try:
        meta = json.loads(line.decode())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"{path}: corrupt metadata line ({err})") from None
    return meta, weights


def _skeleton(meta: dict) -> AbstractEmulator:
    cls = _CLASSES.get(meta["class"])
    if cls is None:
        raise ValueError(f"unknown emulator class {meta['class']!r} (known: {sorted(_CLASSES)})")
    labels = EmulatorLabels.from_json(meta["labels"])
    hp = dict(meta["hyperparameters"])
    zeros_in = jnp.zeros(labels.input_shape)
    key = jr.PRNGKey(0)
    if cls is Ensemble:
        member_meta = {"class": hp["member_class"], "hyperparameters": hp["member"], "labels": meta["labels"]}
        m = _skeleton(member_meta)
        return Ensemble([m] * int(hp["n_members"]))
    if cls is LinearEmulator:
        return LinearEmulator(labels, x_ref=zeros_in)
    if cls is PolynomialEmulator:
        return PolynomialEmulator(labels, degree=hp["degree"], total_terms=hp["total_terms"], x_ref=zeros_in)
    if cls is StructuredEmulator:
        return StructuredEmulator(
            labels,
            species_roles=hp["species_roles"],
            component_roles=hp["component_roles"],
            width=hp["width"],
            depth=hp["depth"],
            embed_size=hp["embed_size"],
            x_ref=zeros_in,
            key=key,
        )
    if cls is MLPEmulator:
        return MLPEmulator(
            labels,
            width=hp["width"],
            depth=hp["depth"],
            embed_size=hp["embed_size"],
            sharpness=hp["sharpness"],
            x_ref=zeros_in,
            key=key,
        )
    return GriddedEmulator(
        labels,
        x_ref=jnp.ones(labels.input_shape),
        base=jnp.ones(labels.output_shape),
        width=hp["width"],
        n_layers=hp["n_layers"],
        modes=tuple(hp["modes"]),
        pad=hp["pad"],
        sharpness=hp["sharpness"],
        key=key,
    )


def load(path, like: AbstractEmulator | None = None) -> AbstractEmulator:
    """Read an emulator written by `save`.

    **Arguments**

    - `path`: the file.
    - `like`: optional emulator the file must match (class, hyperparameters, input/output labels and
      units, parameter shapes); a mismatch raises `ValueError` naming what differs. Without it, the model is
      rebuilt from the metadata.

    **Returns** the emulator, with the saved envelope policy.
    """
    path = Path(path)
    meta, weights = _read_verified(path)
    if like is not None:
        want = _describe(like)
        diffs = [k for k in ("class", "hyperparameters", "labels", "leaf_shapes") if meta.get(k) != want[k]]
        if diffs:
            detail = "; ".join(f"{k}: file has {meta.get(k)!r:.200}, model has {want[k]!r:.200}" for k in diffs)
            raise ValueError(
                f"{path}: the saved emulator does not match `like` ({detail}). Load without `like` to get "
                "the saved model, or build `like` with the same class, hyperparameters and labels"
            )
        template = like
    else:
        template = _skeleton(meta)
        if _leaf_shapes(template) != meta["leaf_shapes"]:
            raise ValueError(
                f"{path}: parameter shapes in the metadata do not match the rebuilt {meta['class']} (an Ensemble or "
                "StructuredEmulator saved before surrogate 0.2 also stored its computed `base`/`x_ref`, which are no "
                "longer leaves; a StructuredEmulator saved before its tied backgrounds lacks `background_tie`): "
                "re-fit and save it with this version"
            )
    buf = io.BytesIO(weights)
    try:
        model = eqx.tree_deserialise_leaves(buf, template)
    except Exception as err:  # noqa: BLE001 - inconsistent weights
        raise ValueError(f"{path}: could not read the weights ({err})") from None
    if buf.tell() != len(weights):
        raise ValueError(f"{path}: {len(weights) - buf.tell()} unexpected bytes after the weights")
    return with_envelope_policy(model, meta["envelope"]["policy"])
