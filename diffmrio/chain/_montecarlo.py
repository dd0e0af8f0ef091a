r"""Monte Carlo engine: one draw is a pure function of a PRNG key; draws are `vmap`ped, processed in
chunks sized from a memory budget (XLA's memory analysis of the compiled chunk), sharded over all devices, saved per chunk (atomically) so an
interrupted run resumes, and summarised as mean, standard deviation and quantiles.

Determinism: draw `i` always uses `jax.random.split(key, n_draws)[i]`, so results do not depend on the
chunk size, the number of devices or on resuming (tested), and a checkpoint folder resumes under any chunk size.

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
from dataclasses import dataclass
from pathlib import Path
from typing import Any, no_type_check

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import xarray as xr
from jax.experimental import multihost_utils
from jax.sharding import Mesh, NamedSharding, PartitionSpec
from jaxtyping import Array, ArrayLike, Float, Real

from ctm_interface._atomic import write_bytes_atomic
from ctm_interface._progress import tqdm

from .._io import write_text_atomic
from .._provenance import fingerprint


def _key_fingerprint(keys) -> str:
    data = np.asarray(jax.random.key_data(keys))
    return hashlib.sha256(data.tobytes()).hexdigest()[:16]


#: Share of the available memory (per device) that `memory_budget="auto"` lets one chunk of draws use (rounded
#: down to a power of two bytes, so between half this and this).
AUTO_MEMORY_FRACTION = 0.3
#: The most draws per chunk that a memory budget alone chooses (an integer `chunk_size` caps it lower).
MAX_CHUNK_SIZE = 65536


def _host_available_bytes() -> int | None:
    """The host's available memory: `MemAvailable` of /proc/meminfo, else the free physical pages
    (`os.sysconf`), else None."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return int(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
    except (AttributeError, ValueError, OSError):
        return None


def available_memory(devices: Sequence | None = None) -> int:
    """Bytes free on each of `devices` (default: this process's devices): the smallest `bytes_limit -
    bytes_in_use` of the devices' memory statistics (GPUs, TPUs); where a device has none (CPUs), the host's
    available memory (/proc/meminfo's `MemAvailable`, else `os.sysconf`) shared by the host's devices in
    `devices`."""
    devices = [d for d in (devices if devices is not None else jax.local_devices())
               if d.process_index == jax.process_index()] or jax.local_devices()
    free, shared = [], 0
    for d in devices:
        try:
            stats = d.memory_stats()
        except Exception:  # CPU backends may not implement memory_stats
            stats = None
        if stats and "bytes_limit" in stats:
            free.append(int(stats["bytes_limit"] - stats.get("bytes_in_use", 0)))
        else:
            shared += 1
    if shared:
        host = _host_available_bytes()
        if host is None:
            raise ValueError("memory_budget='auto' cannot find the available memory of this machine (no device "
                             "memory statistics, no /proc/meminfo, no os.sysconf): pass memory_budget in bytes "
                             "or an integer chunk_size")
        free.append(host // shared)
    return min(free)


def _memory(compiled) -> tuple[int, int]:
    """Memory of a compiled program (a `jax.stages.Compiled` or equinox's wrapper of one) on each device by XLA's
    memory analysis: its arguments, outputs and temporaries less what they alias; and its arguments alone."""
    ma = getattr(compiled, "compiled", compiled).memory_analysis()
    if ma is None:
        raise ValueError("XLA gives no memory analysis of the compiled draws on this backend, so a memory_budget "
                         "cannot size the chunks: pass an integer chunk_size instead")
    total = ma.argument_size_in_bytes + ma.output_size_in_bytes + ma.temp_size_in_bytes - ma.alias_size_in_bytes
    return int(total), int(ma.argument_size_in_bytes)


@dataclass(frozen=True)
class ChunkPlan:
    """How [`run_draws`][diffmrio.chain.run_draws] cuts the draws: `chunk_size` draws per chunk (a multiple of
    the device count); `chunk_bytes`, the compiled chunk's memory on each device (XLA's memory analysis;
    None when the chunk size was given rather than sized from a budget); `memory_budget` in bytes (None
    when not sized from one); `bytes_fixed` + `bytes_per_draw` x draws, the straight line through the draw's
    own arrays and the trial chunk that the size was interpolated along."""

    chunk_size: int
    chunk_bytes: int | None = None
    memory_budget: int | None = None
    bytes_fixed: float | None = None
    bytes_per_draw: float | None = None


def _budget_bytes(memory_budget, devices) -> int:
    if isinstance(memory_budget, str):
        if memory_budget != "auto":
            raise ValueError(f"memory_budget must be a number of bytes or 'auto', got {memory_budget!r}")
        # rounded down to a power of two: small changes in free memory then leave the chunk size (and with it
        # the compiled program) unchanged between calls
        return 1 << (int(AUTO_MEMORY_FRACTION * available_memory(devices)).bit_length() - 1)
    if isinstance(memory_budget, bool) or not isinstance(memory_budget, (int, float, np.integer, np.floating)):
        raise ValueError(f"memory_budget must be a number of bytes or 'auto', got {memory_budget!r}")
    if not np.isfinite(memory_budget) or memory_budget <= 0:
        raise ValueError(f"memory_budget must be a positive number of bytes, got {memory_budget!r}")
    return int(memory_budget)


def _balanced(size: int, n_draws: int, nd: int) -> int:
    """The chunk size <= `size` that cuts `n_draws` into as few chunks as `size` does with the least padding."""
    n_chunks = -(-n_draws // size)
    per = -(-n_draws // n_chunks)
    return min(size, per + (-per) % nd)


def _size_from_budget(measure: Callable[[int], tuple[int, int]], budget: int, cap: int, nd: int,
                      n_draws: int) -> ChunkPlan:
    """The largest chunk (a multiple of `nd`, at most `cap`) whose compiled memory fits in `budget`.
    `measure(size)` compiles a chunk of `size` draws and returns its memory per device and the part of it that
    does not grow with the chunk (the draw's own arrays among the arguments). The trial chunk is the largest
    allowed, `cap` draws: when it fits (the common case) it is the answer, after one compilation. Otherwise the
    size is interpolated along the straight line through the fixed part and the trial, balanced over the draws,
    then compiled and checked; a chunk over the budget is shrunk along the line through its own measurement
    until one fits."""
    seen: dict[int, tuple[int, int]] = {}

    def m(size: int) -> int:
        if size not in seen:
            seen[size] = measure(size)
        return seen[size][0]

    at_cap = m(cap)
    fixed = seen[cap][1]
    slope = max((at_cap - fixed) / cap, 1.0)

    def fitting(per_draw: float, below: int) -> int:
        size = int(min(below, max(nd, (budget - fixed) // per_draw)))
        size = max(nd, size - size % nd)
        return _balanced(size, n_draws, nd)

    size = fitting(slope, cap)
    while m(size) > budget:
        if size == nd:
            per = "one draw" if nd == 1 else f"one draw on each of the {nd} devices"
            raise ValueError(
                f"memory_budget={budget} bytes is too small for {per}: the compiled draws need {m(nd)} bytes per "
                f"device (XLA's memory analysis: arguments, outputs and temporaries). Pass memory_budget >= "
                f"{m(nd)} (or 'auto' for {AUTO_MEMORY_FRACTION:.0%} of the available memory), or an integer "
                "chunk_size without a memory_budget")
        # the memory is not quite linear in the chunk size: along the line through this measurement
        size = fitting(max((m(size) - fixed) / size, slope), size - nd)
    return ChunkPlan(size, m(size), budget, float(fixed), float(slope))


_FORMAT = "diffmrio.chain.run_draws/2"
_RESERVED = ("__run__", "__draws__")


@eqx.filter_jit
def _draw_chunk(draw, key_data, impl):
    """One chunk of draws: `key_data` are raw key words (wrapped into typed keys with `impl`, or used as they are
    when `impl` is None)."""
    keys = key_data if impl is None else jax.random.wrap_key_data(key_data, impl=impl)
    return eqx.filter_vmap(draw)(keys)


class _Draws:
    """The keys of `n_draws` draws and how a chunk of them is laid out over `devices`."""

    def __init__(self, draw: Callable, n_draws: int, key, devices: Sequence | None):
        if n_draws < 1:
            raise ValueError(f"n_draws must be >= 1, got {n_draws}")
        self.draw, self.n_draws = draw, n_draws
        self.devices = list(devices) if devices is not None else jax.devices()
        self.nd = len(self.devices)
        self.keys = jax.random.split(key, n_draws)
        typed = jax.dtypes.issubdtype(self.keys.dtype, jax.dtypes.prng_key)
        self.impl = jax.random.key_impl(self.keys) if typed else None
        self.key_data = np.asarray(jax.random.key_data(self.keys) if typed else self.keys)
        self.sharding = NamedSharding(Mesh(np.array(self.devices), ("draws",)), PartitionSpec("draws"))

    def chunk(self, start: int, stop: int, size: int):
        """Keys of draws `start` to `stop - 1`, padded to `size` with copies of the last: every chunk has the same
        shape, so one compiled program serves them all. Each process fills the shards of its own devices from
        its (identical) copy of the keys."""
        kd = self.key_data[start:stop]
        pad = size - (stop - start)
        if pad:
            kd = np.concatenate([kd, np.broadcast_to(kd[-1:], (pad,) + kd.shape[1:])])
        return jax.make_array_from_callback(kd.shape, self.sharding, lambda idx, kd=kd: kd[idx])

    def run(self, start: int, stop: int, size: int) -> dict[str, np.ndarray]:
        # `draw` is an argument of a module-level filter_jit, not captured in a closure: a Module `draw`'s arrays
        # are then traced leaves, so a new draw of the same structure reuses the compiled batch
        out = _draw_chunk(self.draw, self.chunk(start, stop, size), self.impl)
        if all(v.is_fully_addressable for v in out.values()):
            out = {n: np.asarray(v) for n, v in out.items()}
        else:
            out = multihost_utils.process_allgather(out, tiled=True)
        return {n: np.asarray(v)[: stop - start] for n, v in out.items()}

    def chunk_bytes(self, size: int) -> tuple[int, int]:
        """Compiled memory per device of a chunk of `size` draws, and the part of it that does not grow with the
        chunk (the arguments less the keys). This compiles the program `run` executes: JAX keeps it, so running
        that chunk later does not compile it again."""
        keys = self.chunk(0, min(size, self.n_draws), size)
        total, arguments = _memory(_draw_chunk.lower(self.draw, keys, self.impl).compile())
        return total, max(0, arguments - keys.addressable_shards[0].data.nbytes)

    def plan(self, chunk_size, memory_budget) -> ChunkPlan:
        nd, n = self.nd, self.n_draws
        if isinstance(chunk_size, str) and chunk_size != "auto":
            raise ValueError(f"chunk_size must be a positive integer, 'auto' or None, got {chunk_size!r}")
        explicit = chunk_size is not None and not isinstance(chunk_size, str)
        if explicit:
            if isinstance(chunk_size, bool) or int(chunk_size) != chunk_size or chunk_size < 1:
                raise ValueError(f"chunk_size must be a positive integer, 'auto' or None, got {chunk_size!r}")
            chunk_size = int(chunk_size)
        if memory_budget is None and explicit:
            size = min(chunk_size, n)
            return ChunkPlan(size + (-size) % nd)
        budget = _budget_bytes("auto" if memory_budget is None else memory_budget, self.devices)
        cap = chunk_size if explicit else MAX_CHUNK_SIZE
        cap = min(max(nd, cap - cap % nd), n + (-n) % nd)
        plan = _size_from_budget(self.chunk_bytes, budget, cap, nd, n)
        if jax.process_count() > 1:  # every process must cut the same chunks: the smallest
            size = int(np.min(multihost_utils.process_allgather(np.int64(plan.chunk_size))))
            if size != plan.chunk_size:
                plan = ChunkPlan(size, self.chunk_bytes(size)[0], budget, plan.bytes_fixed, plan.bytes_per_draw)
        return plan


@no_type_check  # not checked by the test run's jaxtyping hook: chunk_size and memory_budget are validated here
def plan_chunks(
    draw: Callable,
    n_draws: int,
    *,
    key,
    chunk_size: int | str | None = None,
    memory_budget: int | float | str | None = None,
    devices: Sequence | None = None,
) -> ChunkPlan:
    """The chunks [`run_draws`][diffmrio.chain.run_draws] cuts the draws into with these arguments (see there),
    without running them: a [`ChunkPlan`][diffmrio.chain.ChunkPlan] with the draws per chunk and, when sized
    from a memory budget, the compiled chunk's memory per device. The programs compiled to size the chunks are
    kept by JAX, so a `run_draws` with the same arguments does not compile them again."""
    return _Draws(draw, n_draws, key, devices).plan(chunk_size, memory_budget)


@no_type_check  # not checked by the test run's jaxtyping hook: chunk_size and memory_budget are validated here
def run_draws(
    draw: Callable,
    n_draws: int,
    *,
    key,
    chunk_size: int | str | None = None,
    memory_budget: int | float | str | None = None,
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
    - `chunk_size`, `memory_budget`: how many draws are evaluated at once (`vmap`ped, sharded over `devices`).
      The chunk size is always a multiple of the number of devices and at most `n_draws` (rounded up to that
      multiple); every chunk has the same shape (the last is padded with repeats of its last draw), so one
      compiled program serves the run.
        - `chunk_size=k` (an integer) without a `memory_budget`: chunks of `k` draws, as given.
        - `memory_budget=b` bytes: the largest chunk whose compiled program fits in `b` bytes on each device, by
          XLA's memory analysis (`jax.jit(...).lower(...).compile().memory_analysis()`: arguments, i.e. the
          draw's arrays and the keys, plus outputs plus temporaries). The largest allowed chunk is compiled
          first; if it is over the budget, the size is interpolated along the straight line through the draw's
          own arrays (the part that does not grow with the chunk) and that trial, balanced so that the chunks
          are as even as the same number of chunks allows, compiled and checked (and shrunk if over). An
          integer `chunk_size` is then the most draws per chunk (otherwise
          [`MAX_CHUNK_SIZE`][diffmrio.chain.MAX_CHUNK_SIZE]). A budget too small for one draw per device is a
          `ValueError` giving the bytes needed.
        - `memory_budget="auto"`, and the default (`chunk_size` and `memory_budget` both None, or
          `chunk_size="auto"`): the budget is [`AUTO_MEMORY_FRACTION`][diffmrio.chain.AUTO_MEMORY_FRACTION]
          (30%) of the memory available on each device now, rounded down to a power of two bytes (so that small
          changes in free memory do not change the chunk size and recompile): `bytes_limit - bytes_in_use` of the device's memory
          statistics on GPUs and TPUs; on CPUs the host's available memory (/proc/meminfo's `MemAvailable`, else
          `os.sysconf`) divided among the CPU devices used.
      Sizing compiles one chunk when the largest allowed fits, else that trial and the chosen chunk (JAX keeps
      them: a later call with the same shapes compiles nothing). [`plan_chunks`][diffmrio.chain.plan_chunks] gives the chunk size a call will use.
      The draws, and so the results, do not depend on the chunk size (nor on the number of devices).
    - `devices`: devices to shard each chunk over (default: all of `jax.devices()`, which after
      `jax.distributed.initialize()` are the devices of all processes).
    - `checkpoint_dir`: if given, each finished chunk is saved there (atomically) and a rerun of the same
      computation loads finished chunks instead of recomputing them. The folder's `manifest.json` records
      content fingerprints (see `diffmrio._provenance`) of the draw function (its code and everything it
      closes over), of each entry of `provenance`, of the key, `n_draws` and how the folder cuts the draws
      into chunk files; each chunk carries the fingerprint of the whole and its draw range. A different
      computation, chunks without a manifest, a chunk with the wrong number of draws and unreadable files are
      refused with an error naming the file; nothing is ever reused silently. The chunk size is not part of
      what is computed: a folder resumed with another `chunk_size` or `memory_budget` (e.g. `"auto"` when less
      memory is free) keeps its own chunk files, and their missing draws are computed in chunks of the new
      size.
    - `progress`: show a tqdm progress bar (on process 0 only).
    - `name`: a label for the progress bar and the manifest.
    - `provenance`: named objects that determine the result besides `draw` (e.g. the chain and the
      uncertainty specification); each is fingerprinted on its own so that an error can say which differs.

    Several processes (`jax.distributed.initialize()`): every process must call `run_draws` with the same
    arguments. Each chunk is assembled from the keys of each process's own devices
    (`jax.make_array_from_callback`), the results are gathered to every process
    (`multihost_utils.process_allgather`), so every process returns the same arrays, equal to the
    single-process result. A chunk size from a memory budget is the smallest over the processes. Only process 0
    reads and writes `checkpoint_dir` (it may be on a disk of process 0 alone); it shares the chunks it resumes
    from with the others.

    **Returns:** dict of numpy arrays with a leading `draw` axis of length `n_draws`.
    """
    n_proc, lead = jax.process_count(), jax.process_index() == 0
    d = _Draws(draw, n_draws, key, devices)
    size = d.plan(chunk_size, memory_budget).chunk_size
    ck = Path(checkpoint_dir) if checkpoint_dir is not None else None
    # the chunk files: of the folder being resumed, else one per chunk of `size` draws
    per_file = _folder_chunk_size(ck) if ck is not None and lead else None
    if ck is not None and n_proc > 1:
        per_file = int(multihost_utils.broadcast_one_to_all(np.int64(per_file or 0))) or None
    per_file = per_file or size
    starts = list(range(0, n_draws, per_file))
    loaded: dict[int, dict[str, np.ndarray]] = {}
    if ck is not None or n_proc > 1:
        record = _record(draw, provenance, d.keys, n_draws, per_file, name)
        if n_proc > 1:
            _check_same_computation(record["run"])
    if ck is not None:
        shapes = jax.eval_shape(jax.vmap(draw), d.keys[:1])
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
        stop = min(start + per_file, n_draws)
        if c in loaded:
            parts.append(loaded[c])
            bar.update(stop - start)
            continue
        pieces = []
        for s in range(start, stop, size):  # one piece unless a resumed folder's files are cut otherwise
            pieces.append(d.run(s, min(s + size, stop), size))
            bar.update(min(s + size, stop) - s)
        out = pieces[0] if len(pieces) == 1 else {k: np.concatenate([p[k] for p in pieces]) for k in pieces[0]}
        if ck is not None and lead:
            extra = {"__run__": np.array(record["run"]), "__draws__": np.array([start, stop], dtype=np.int64)}
            write_bytes_atomic(ck / _chunk_name(c), lambda fh, out=out, extra=extra: np.savez(fh, **out, **extra))
        parts.append(out)
    bar.close()
    if ck is not None and n_proc > 1:
        multihost_utils.sync_global_devices(f"diffmrio.chain.run_draws {ck}")  # the checkpoint is complete
    return {k: np.concatenate([p[k] for p in parts], axis=0) for k in parts[0]}


def _folder_chunk_size(ck: Path) -> int | None:
    """The draws per chunk file of an existing checkpoint folder of this format (None when there is none or it
    cannot be read: `_open_checkpoint` then says what is wrong)."""
    try:
        old = json.loads((ck / "manifest.json").read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    if not isinstance(old, dict) or old.get("format") != _FORMAT:
        return None
    size = old.get("chunk_size")
    return size if isinstance(size, int) and not isinstance(size, bool) and size >= 1 else None


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


def lognormal_factor(key, cv: Real[ArrayLike, "*cv"], shape: tuple[int, ...] = ()) -> Float[Array, "*out"]:
    r"""Mean-one lognormal factors with coefficient of variation `cv`:
    $\sigma^2 = \ln(1 + cv^2)$, $\mu = -\sigma^2/2$."""
    cv = jnp.asarray(cv, dtype=jnp.float64)
    sigma = jnp.sqrt(jnp.log1p(cv**2))
    z = jax.random.normal(key, jnp.broadcast_shapes(shape, cv.shape), dtype=jnp.float64)
    return jnp.exp(sigma * z - 0.5 * sigma**2)
