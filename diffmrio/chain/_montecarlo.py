r"""Monte Carlo engine: one draw is a pure function of a PRNG key; draws are `vmap`ped, processed in
chunks sized to device memory, sharded over all local devices, saved per chunk (atomically) so an
interrupted run resumes, and summarised as mean, standard deviation and quantiles.

Determinism: draw `i` always uses `jax.random.split(key, n_draws)[i]`, so results do not depend on the
chunk size, the number of devices or on resuming (tested).

Several processes or hosts: call `jax.distributed.initialize()` in every process first; `jax.devices()`
then lists the devices of all processes and the same code shards the draws over all of them (each process
must run the same program; every chunk is built from process-local keys and its results are gathered to
every process, so all processes return the same arrays). Resuming is keyed by content fingerprints
(`diffmrio._provenance`): chunks of a different computation are refused, never reused.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import xarray as xr
from jax.experimental import multihost_utils
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from ctm_interface._atomic import write_bytes_atomic

from .._io import write_text_atomic
from .._provenance import fingerprint


def _key_fingerprint(keys) -> str:
    data = np.asarray(jax.random.key_data(keys))
    return hashlib.sha256(data.tobytes()).hexdigest()[:16]


def _available_bytes(device) -> int:
    try:
        stats = device.memory_stats()
    except Exception:  # CPU backends may not implement memory_stats
        stats = None
    if stats and "bytes_limit" in stats:
        return int(stats["bytes_limit"] - stats.get("bytes_in_use", 0))
    try:
        return int(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError):  # pragma: no cover
        return 4 * 2**30


def auto_chunk_size(batched: Callable, keys, n_devices: int, probe: int = 64, fraction: float = 0.3) -> int:
    """Largest chunk (a multiple of `n_devices`) whose compiled working set fits in `fraction` of the free
    device memory, from XLA's memory analysis of a probe chunk."""
    probe = max(n_devices, probe - probe % n_devices)
    try:
        compiled = batched.lower(keys[:probe]).compile()
        ma = compiled.memory_analysis()
        per_draw = (ma.temp_size_in_bytes + ma.output_size_in_bytes) / probe
    except Exception:  # memory analysis is not available on every backend
        return max(n_devices, 1024 - 1024 % n_devices)
    avail = _available_bytes(jax.local_devices()[0]) * n_devices
    size = int(fraction * avail / max(per_draw, 1.0))
    size = max(n_devices, min(size, 65536))
    return size - size % n_devices


_FORMAT = "diffmrio.chain.run_draws/2"
_RESERVED = ("__run__", "__draws__")


@eqx.filter_jit
def _draw_chunk(draw, key_data, impl):
    """One chunk of draws: `key_data` are raw key words (wrapped into typed keys with `impl`, or used as they are
    when `impl` is None)."""
    keys = key_data if impl is None else jax.random.wrap_key_data(key_data, impl=impl)
    return eqx.filter_vmap(draw)(keys)


def run_draws(
    draw: Callable,
    n_draws: int,
    *,
    key,
    chunk_size: int | str = "auto",
    devices: Sequence | None = None,
    checkpoint_dir: str | Path | None = None,
    progress: bool = True,
    name: str = "draws",
    provenance: Mapping[str, Any] | None = None,
) -> dict[str, np.ndarray]:
    """Evaluate `draw(key) -> dict of arrays` for `n_draws` keys and stack the results.

    **Arguments:**

    - `draw`: a pure function of one PRNG key returning a dict of arrays (one Monte Carlo draw).
    - `n_draws`: number of draws.
    - `key`: the PRNG key (keyword-only); draw i uses `jax.random.split(key, n_draws)[i]`.
    - `chunk_size`: draws per chunk, or `"auto"`: 1,024 on a CPU; on accelerators the largest chunk that fits
      in 30% of free device memory according to XLA's memory analysis of a probe chunk.
    - `devices`: devices to shard each chunk over (default: all of `jax.devices()`, which after
      `jax.distributed.initialize()` are the devices of all processes).
    - `checkpoint_dir`: if given, each finished chunk is saved there (atomically) and a rerun of the same
      computation loads finished chunks instead of recomputing them. The folder's `manifest.json` records
      content fingerprints (see `diffmrio._provenance`) of the draw function (its code and everything it
      closes over), of each entry of `provenance`, of the key, `n_draws` and the chunk size; each chunk carries
      the fingerprint of the whole and its draw range. A different computation, chunks without a manifest,
      a chunk with the wrong number of draws and unreadable files are refused with an error naming the
      file; nothing is ever reused silently.
    - `progress`: show a tqdm progress bar (on process 0 only).
    - `name`: a label for the progress bar and the manifest.
    - `provenance`: named objects that determine the result besides `draw` (e.g. the chain and the
      uncertainty specification); each is fingerprinted on its own so that an error can say which differs.

    Several processes (`jax.distributed.initialize()`): every process must call `run_draws` with the same
    arguments. Each chunk is assembled from the keys of each process's own devices
    (`jax.make_array_from_callback`), the results are gathered to every process
    (`multihost_utils.process_allgather`), so every process returns the same arrays, equal to the
    single-process result. Only process 0 reads and writes `checkpoint_dir` (it may be on a disk of
    process 0 alone); it shares the chunks it resumes from with the others.

    **Returns:** dict of numpy arrays with a leading `draw` axis of length `n_draws`.
    """
    from ctm_interface._progress import tqdm

    if n_draws < 1:
        raise ValueError(f"n_draws must be >= 1, got {n_draws}")
    n_proc, lead = jax.process_count(), jax.process_index() == 0
    devices = list(devices) if devices is not None else jax.devices()
    nd = len(devices)
    keys = jax.random.split(key, n_draws)
    typed = jax.dtypes.issubdtype(keys.dtype, jax.dtypes.prng_key)
    impl = jax.random.key_impl(keys) if typed else None
    key_data = np.asarray(jax.random.key_data(keys) if typed else keys)
    mesh = Mesh(np.array(devices), ("draws",))
    sharding = NamedSharding(mesh, PartitionSpec("draws"))

    # `draw` is an argument of a module-level filter_jit, not captured in a closure: a Module `draw`'s arrays are
    # then traced leaves, so a new draw of the same structure reuses the compiled batch instead of recompiling
    def batched(kd):
        return _draw_chunk(draw, kd, impl)

    if chunk_size == "auto":
        if jax.default_backend() == "cpu":
            # host memory is plentiful relative to a draw; avoid compiling a probe just to size chunks
            chunk_size = 1024
        else:
            chunk_size = auto_chunk_size(jax.jit(jax.vmap(draw)), keys, nd)
            if n_proc > 1:  # every process must cut the same chunks
                chunk_size = int(np.min(multihost_utils.process_allgather(np.int64(chunk_size))))
    chunk_size = int(chunk_size)
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
    chunk_size = min(chunk_size, n_draws)
    chunk_size += (-chunk_size) % nd  # a multiple of the device count
    starts = list(range(0, n_draws, chunk_size))
    ck = Path(checkpoint_dir) if checkpoint_dir is not None else None
    loaded: dict[int, dict[str, np.ndarray]] = {}
    if ck is not None or n_proc > 1:
        record = _record(draw, provenance, keys, n_draws, chunk_size, name)
        if n_proc > 1:
            _check_same_computation(record["run"])
    if ck is not None:
        shapes = jax.eval_shape(jax.vmap(draw), keys[:1])
        bad = [k for k in shapes if k in _RESERVED]
        if bad:
            raise ValueError(f"draw outputs named {bad} are reserved for checkpoint bookkeeping; rename them")
        record["outputs"] = {k: {"dtype": np.dtype(v.dtype).str, "shape": list(v.shape[1:])}
                             for k, v in sorted(shapes.items())}
        error = None
        if lead:
            try:
                loaded = _open_checkpoint(ck, record, starts, n_draws)
            except ValueError as e:
                error = e
        if n_proc > 1:
            loaded = _share_loaded(loaded, error, ck, record, starts, n_draws)
        elif error is not None:
            raise error
    parts: list[dict[str, np.ndarray]] = []
    bar = tqdm(total=n_draws, desc=name, unit="draw", disable=not (progress and lead))
    for c, start in enumerate(starts):
        stop = min(start + chunk_size, n_draws)
        if c in loaded:
            parts.append(loaded[c])
            bar.update(stop - start)
            continue
        kd = key_data[start:stop]
        pad = (-(stop - start)) % nd
        if pad:
            kd = np.concatenate([kd, np.broadcast_to(kd[-1:], (pad,) + kd.shape[1:])])
        # each process fills the shards of its own devices from its (identical) copy of the keys
        k = jax.make_array_from_callback(kd.shape, sharding, lambda idx, kd=kd: kd[idx])
        out = batched(k)
        if all(v.is_fully_addressable for v in out.values()):
            out = {n: np.asarray(v) for n, v in out.items()}
        else:
            out = multihost_utils.process_allgather(out, tiled=True)
        out = {n: np.asarray(v)[: stop - start] for n, v in out.items()}
        if ck is not None and lead:
            extra = {"__run__": np.array(record["run"]), "__draws__": np.array([start, stop], dtype=np.int64)}
            write_bytes_atomic(ck / _chunk_name(c), lambda fh, out=out, extra=extra: np.savez(fh, **out, **extra))
        parts.append(out)
        bar.update(stop - start)
    bar.close()
    if ck is not None and n_proc > 1:
        multihost_utils.sync_global_devices(f"diffmrio.chain.run_draws {ck}")  # the checkpoint is complete
    return {k: np.concatenate([p[k] for p in parts], axis=0) for k in parts[0]}


def _chunk_name(c: int) -> str:
    return f"chunk_{c:05d}.npz"


def _record(draw, provenance, keys, n_draws: int, chunk_size: int, name: str) -> dict:
    """What determines the draws: fingerprints of the draw function, of each provenance entry (plain
    strings and numbers verbatim) and of the keys, plus `n_draws` and the chunk size; `run` hashes them all."""
    cache: dict = {}
    prov = {}
    for k, v in (provenance or {}).items():
        plain = v is None or isinstance(v, (str, bool, int, float))
        prov[str(k)] = v if plain else "sha256:" + fingerprint(v, cache=cache)
    rec = {"format": _FORMAT, "n_draws": int(n_draws), "chunk_size": int(chunk_size),
           "key": "sha256:" + _key_fingerprint(keys), "draw": "sha256:" + fingerprint(draw, cache=cache),
           "provenance": prov}
    rec["run"] = hashlib.sha256(json.dumps(rec, sort_keys=True).encode()).hexdigest()
    rec["name"] = name
    return rec


def _short(v) -> str:
    return f"{v[:7 + 12]}..." if isinstance(v, str) and v.startswith("sha256:") else repr(v)


def _differences(old: dict, new: dict) -> list[str]:
    what = {"key": "the PRNG key", "n_draws": "n_draws", "chunk_size": "the chunk size",
            "draw": "the draw function (its code or the values it closes over)", "outputs": "the draw outputs"}
    out = []
    for k, label in what.items():
        if old.get(k) != new.get(k):
            a, b = old.get(k), new.get(k)
            out.append(f"{label} differs" if k == "outputs" else f"{label} differs ({_short(a)} -> {_short(b)})")
    po, pn = old.get("provenance") or {}, new.get("provenance") or {}
    for k in sorted(set(po) | set(pn)):
        if po.get(k, "(absent)") != pn.get(k, "(absent)"):
            out.append(f"{k} differs ({_short(po.get(k, '(absent)'))} -> {_short(pn.get(k, '(absent)'))})")
    return out


def _open_checkpoint(ck: Path, record: dict, starts: list[int], n_draws: int) -> dict[int, dict[str, np.ndarray]]:
    """Validate `ck` against `record` and load its finished chunks (writes the manifest of a new folder)."""
    fresh = "delete the folder or pass a new checkpoint_dir to start afresh"
    if ck.exists() and not ck.is_dir():
        raise ValueError(f"checkpoint_dir {ck} is a file, not a folder; pass a folder")
    ck.mkdir(parents=True, exist_ok=True)
    mf = ck / "manifest.json"
    chunks = sorted(ck.glob("chunk_*.npz"))
    if not mf.exists():
        if chunks:
            raise ValueError(
                f"checkpoint folder {ck} holds {len(chunks)} chunk file(s) but no manifest.json, so what they "
                f"were computed from is unknown and they cannot be reused: {fresh}"
            )
        write_text_atomic(mf, json.dumps(record, indent=2))
        return {}
    try:
        old = json.loads(mf.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ValueError(f"checkpoint manifest {mf} is unreadable ({type(e).__name__}: {e}): {fresh}") from e
    if not isinstance(old, dict) or old.get("format") != _FORMAT:
        raise ValueError(
            f"checkpoint manifest {mf} was not written by this version of run_draws (no content fingerprint of "
            f"what its chunks were computed from), so they cannot be reused: {fresh}"
        )
    diff = _differences(old, record)
    if diff:
        raise ValueError(
            f"checkpoint folder {ck} holds chunks of a different computation: " + "; ".join(diff)
            + f". Its chunks cannot be reused: {fresh}"
        )
    names = {_chunk_name(c) for c in range(len(starts))}
    stray = [p.name for p in chunks if p.name not in names]
    if stray:
        raise ValueError(f"checkpoint folder {ck} holds chunk files {stray} that this run of {len(starts)} chunks "
                         f"never writes: {fresh}")
    loaded = {}
    for c, start in enumerate(starts):
        path = ck / _chunk_name(c)
        if path.exists():
            loaded[c] = _load_chunk(path, record, start, _stop(starts, c, n_draws))
    return loaded


def _stop(starts: list[int], c: int, n_draws: int) -> int:
    return starts[c + 1] if c + 1 < len(starts) else n_draws


def _load_chunk(path: Path, record: dict, start: int, stop: int) -> dict[str, np.ndarray]:
    fix = (f"delete this file to recompute its draws (the manifest and the other chunks stay valid), or delete "
           f"the folder {path.parent} to start afresh")
    try:
        with np.load(path, allow_pickle=False) as z:
            data = {k: z[k] for k in z.files}
    except Exception as e:  # BadZipFile, EOFError, a bad CRC, zlib errors, ...: the file is damaged
        raise ValueError(f"checkpoint chunk {path} is unreadable ({type(e).__name__}: {e}): {fix}") from e
    run = data.pop("__run__", None)
    rng = data.pop("__draws__", None)
    if run is None or str(run) != record["run"]:
        raise ValueError(f"checkpoint chunk {path} was not written by the computation its folder's manifest "
                         f"describes (its fingerprint differs): {fix}")
    n = stop - start
    if rng is None or [int(v) for v in np.ravel(rng)] != [start, stop]:
        raise ValueError(f"checkpoint chunk {path} should hold draws {start} to {stop - 1} but records "
                         f"{None if rng is None else np.ravel(rng).tolist()}: {fix}")
    want = record["outputs"]
    if set(data) != set(want):
        raise ValueError(f"checkpoint chunk {path} holds outputs {sorted(data)}, expected {sorted(want)}: {fix}")
    for k, spec in want.items():
        v = data[k]
        shape = (n, *spec["shape"])
        if v.shape[:1] != (n,):
            raise ValueError(f"checkpoint chunk {path} holds {v.shape[0] if v.ndim else 0} draws of {k!r} but "
                             f"should hold {n} (draws {start} to {stop - 1}): {fix}")
        if v.shape != shape or v.dtype.str != spec["dtype"]:
            raise ValueError(f"checkpoint chunk {path}: {k!r} has shape {v.shape} and dtype {v.dtype}, expected "
                             f"{shape} and {np.dtype(spec['dtype'])}: {fix}")
    return data


def _check_same_computation(run: str) -> None:
    """Refuse (on every process) when the processes of a multi-process run compute different things."""
    mine = np.frombuffer(bytes.fromhex(run), dtype=np.uint8)
    every = np.asarray(multihost_utils.process_allgather(mine))
    differ = [i for i in range(every.shape[0]) if not np.array_equal(every[i], every[0])]
    if differ:
        raise ValueError(
            f"processes {differ} compute a different Monte Carlo than process 0 (the fingerprint of their draw "
            "function, provenance, key, n_draws or chunk size differs): every process must run the same program "
            "on the same inputs"
        )


def _share_loaded(loaded, error, ck: Path, record: dict, starts: list[int], n_draws: int):
    """Several processes: process 0 has validated and loaded the checkpoint; it tells the others whether the
    folder was refused and sends them the chunks it resumes from."""
    lead = jax.process_index() == 0
    flags = np.zeros(len(starts) + 1, dtype=np.int32)
    flags[0] = error is None
    for c in loaded:
        flags[c + 1] = 1
    flags = np.asarray(multihost_utils.broadcast_one_to_all(flags))
    if error is not None:
        raise error
    if not flags[0]:
        raise ValueError(f"process 0 refused the checkpoint folder {ck} (its error message says why)")
    out = {}
    for c in np.flatnonzero(flags[1:]).tolist():
        n = _stop(starts, c, n_draws) - starts[c]
        if lead:
            data = loaded[c]
        else:
            data = {k: np.zeros((n, *s["shape"]), dtype=np.dtype(s["dtype"])) for k, s in record["outputs"].items()}
        sent = {k: v.astype(np.uint8) if v.dtype == bool else v for k, v in data.items()}
        got = multihost_utils.broadcast_one_to_all(sent)
        out[c] = {k: np.asarray(got[k]).astype(bool) if data[k].dtype == bool else np.asarray(got[k]) for k in data}
    return out


#: Quantiles [`summarise`][diffmrio.chain.summarise] reports by default: the central 50%, 90% and 95% intervals and the median.
QUANTILES = (0.025, 0.05, 0.25, 0.5, 0.75, 0.95, 0.975)


def summarise(draws: xr.DataArray | xr.Dataset, dim: str = "draw", q=QUANTILES) -> xr.Dataset:
    """Mean, standard deviation and quantiles over `dim` (the draws) of every variable, as a Dataset.

    For each variable `v` of `draws` (a DataArray is treated as a Dataset of one variable named after it, or
    `value` when it has no name): `v_mean` and `v_std` (over `dim`, sample standard deviation with `ddof=1`) and
    `v_quantile` on xarray's `quantile` dimension (`q`, default 2.5, 5, 25, 50, 75, 95 and 97.5%, xarray's
    linear interpolation, as `numpy.percentile`). Each keeps the variable's attributes (its `units`), so
    `summarise(mc).sel(quantile=0.05)` is the 5th percentile of everything. Variables without `dim` and boolean
    flags are left out."""
    ds = draws.to_dataset(name=draws.name if draws.name is not None else "value") if isinstance(draws, xr.DataArray) else draws
    q = [float(v) for v in np.atleast_1d(q)]
    bad = [v for v in q if not 0.0 <= v <= 1.0]
    if bad:
        raise ValueError(f"quantiles must lie in [0, 1], got {bad} (give 0.05, not 5, for the 5th percentile)")
    out = {}
    for name, da in ds.data_vars.items():
        if dim not in da.dims or da.dtype == bool:
            continue
        attrs = dict(da.attrs)
        out[f"{name}_mean"] = da.mean(dim).assign_attrs(attrs, statistic=f"mean over {dim}")
        out[f"{name}_std"] = da.std(dim, ddof=1).assign_attrs(attrs, statistic=f"standard deviation over {dim}")
        out[f"{name}_quantile"] = da.quantile(q, dim=dim).assign_attrs(attrs, statistic=f"quantiles over {dim}")
    if not out:
        raise ValueError(f"no variable of `draws` has the dimension {dim!r} to summarise over (dims: {dict(ds.sizes)})")
    return xr.Dataset(out)


def lognormal_factor(key, cv, shape=()):
    r"""Mean-one lognormal factors with coefficient of variation `cv`:
    $\sigma^2 = \ln(1 + cv^2)$, $\mu = -\sigma^2/2$."""
    cv = jnp.asarray(cv, dtype=jnp.float64)
    sigma = jnp.sqrt(jnp.log1p(cv**2))
    z = jax.random.normal(key, jnp.broadcast_shapes(shape, cv.shape), dtype=jnp.float64)
    return jnp.exp(sigma * z - 0.5 * sigma**2)
