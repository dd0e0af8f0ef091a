r"""Monte Carlo engine: one draw is a pure function of a PRNG key; draws are `vmap`ped, processed in
chunks sized to device memory, sharded over all local devices, saved per chunk (atomically) so an
interrupted run resumes, and summarised as mean and 2.5/97.5 percentiles.

Determinism: draw `i` always uses `jax.random.split(key, n_draws)[i]`, so results do not depend on the
chunk size, the number of devices or on resuming (tested).

Several hosts: call `jax.distributed.initialize()` on every host first; `jax.devices()` then lists
the devices of all hosts and the same code shards the draws over all of them (each host must run the
same program; results are gathered to every host).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Sequence
from pathlib import Path

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import xarray as xr
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from ._io import atomic_path, write_text_atomic


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
    avail = _available_bytes(jax.devices()[0]) * n_devices
    size = int(fraction * avail / max(per_draw, 1.0))
    size = max(n_devices, min(size, 65536))
    return size - size % n_devices


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
) -> dict[str, np.ndarray]:
    """Evaluate `draw(key) -> dict of arrays` for `n_draws` keys and stack the results.

    **Arguments:**

    - `draw`: a pure function of one PRNG key returning a dict of arrays (one Monte Carlo draw).
    - `n_draws`: number of draws.
    - `key`: the PRNG key (keyword-only); draw i uses `jax.random.split(key, n_draws)[i]`.
    - `chunk_size`: draws per chunk, or `"auto"`: 1,024 on a CPU; on accelerators the largest chunk that fits
      in 30% of free device memory according to XLA's memory analysis of a probe chunk.
    - `devices`: devices to shard each chunk over (default: all of `jax.devices()`).
    - `checkpoint_dir`: if given, each finished chunk is saved there (atomically) and a rerun with the
      same key and `n_draws` loads finished chunks instead of recomputing them.
    - `progress`: show a tqdm progress bar.

    **Returns:** dict of numpy arrays with a leading `draw` axis of length `n_draws`.
    """
    from tqdm.auto import tqdm

    if n_draws < 1:
        raise ValueError(f"n_draws must be >= 1, got {n_draws}")
    devices = list(devices) if devices is not None else jax.devices()
    nd = len(devices)
    keys = jax.random.split(key, n_draws)
    mesh = Mesh(np.array(devices), ("draws",))
    sharding = NamedSharding(mesh, PartitionSpec("draws"))
    # filter_vmap keeps a Module `draw`'s arrays as traced leaves, so a new draw of the same structure reuses the
    # compiled batch instead of recompiling (a plain closure is hashed by identity and recompiles every call)
    batched = eqx.filter_jit(eqx.filter_vmap(draw))
    if chunk_size == "auto":
        if jax.default_backend() == "cpu":
            # host memory is plentiful relative to a draw; avoid compiling a probe just to size chunks
            chunk_size = 1024
        else:
            chunk_size = auto_chunk_size(jax.jit(jax.vmap(draw)), keys, nd)
    chunk_size = int(chunk_size)
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
    chunk_size = min(chunk_size, n_draws)
    chunk_size += (-chunk_size) % nd  # a multiple of the device count
    fp = _key_fingerprint(keys)
    ck = Path(checkpoint_dir) if checkpoint_dir is not None else None
    if ck is not None:
        ck.mkdir(parents=True, exist_ok=True)
        meta = {"name": name, "n_draws": n_draws, "chunk_size": chunk_size, "keys": fp}
        mf = ck / "manifest.json"
        if mf.exists():
            old = json.loads(mf.read_text())
            if {k: old.get(k) for k in meta} != meta:
                raise ValueError(
                    f"{ck} holds chunks of a different run ({old}); use another checkpoint_dir or delete it"
                )
        else:
            write_text_atomic(mf, json.dumps(meta, indent=2))
    starts = list(range(0, n_draws, chunk_size))
    parts: list[dict[str, np.ndarray]] = []
    bar = tqdm(total=n_draws, desc=name, unit="draw", disable=not progress)
    for c, start in enumerate(starts):
        stop = min(start + chunk_size, n_draws)
        path = ck / f"chunk_{c:05d}.npz" if ck is not None else None
        if path is not None and path.exists():
            with np.load(path) as z:
                parts.append({k: z[k] for k in z.files})
            bar.update(stop - start)
            continue
        k = keys[start:stop]
        pad = (-(stop - start)) % nd
        if pad:
            k = jnp.concatenate([k, jnp.broadcast_to(k[-1:], (pad,) + k.shape[1:])])
        k = jax.device_put(k, sharding)
        out = batched(k)
        out = {name_: np.asarray(v)[: stop - start] for name_, v in out.items()}
        if path is not None:
            with atomic_path(path, suffix=".npz") as tmp:
                with open(tmp, "wb") as fh:
                    np.savez(fh, **out)
        parts.append(out)
        bar.update(stop - start)
    bar.close()
    return {k: np.concatenate([p[k] for p in parts], axis=0) for k in parts[0]}


def summarise(draws: xr.DataArray | xr.Dataset, dim: str = "draw", q: tuple[float, float] = (0.025, 0.975)):
    """Mean and the central 95% interval (2.5/97.5 percentiles) over `dim`, as in the COBENEFIT study."""
    lo = draws.quantile(q[0], dim=dim).drop_vars("quantile")
    hi = draws.quantile(q[1], dim=dim).drop_vars("quantile")
    mean = draws.mean(dim)
    return xr.concat([mean, lo, hi], dim=xr.DataArray(["mean", "p2.5", "p97.5"], dims="statistic", name="statistic"))


def lognormal_factor(key, cv, shape=()):
    r"""Mean-one lognormal factors with coefficient of variation `cv`:
    $\sigma^2 = \ln(1 + cv^2)$, $\mu = -\sigma^2/2$."""
    cv = jnp.asarray(cv, dtype=jnp.float64)
    sigma = jnp.sqrt(jnp.log1p(cv**2))
    z = jax.random.normal(key, jnp.broadcast_shapes(shape, cv.shape), dtype=jnp.float64)
    return jnp.exp(sigma * z - 0.5 * sigma**2)
