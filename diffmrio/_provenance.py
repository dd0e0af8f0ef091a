"""Content fingerprints of computations, so resumable work is keyed by what determines its result and not by
its name.

[`fingerprint`][diffmrio._provenance.fingerprint] hashes (SHA-256) any mix of arrays, pytrees (equinox
modules, dataclasses, dicts, tuples), scalars, strings and functions:

- arrays: dtype, shape and bytes (typed PRNG keys: their implementation and key data);
- equinox modules and dataclasses: the class (its qualified name and the byte code of the methods it
  defines), then every field by name, static fields included;
- functions: qualified name, byte code (instructions, constants and names, nested code included), default
  arguments, the values in their closure and the non-module globals they read (recursively for functions
  that are not part of JAX, NumPy or another library), so that a changed draw function or a changed array it
  closes over gives a new fingerprint.

Library code outside these (for instance an edited function of an installed package that the draw calls
through a module attribute) is not hashed. The hash never depends on memory addresses, so two processes
running the same program get the same fingerprint.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import types
from typing import Any

import jax
import numpy as np

#: Modules whose functions and classes are identified by name only (their code is not hashed).
_LIBRARIES = ("jax", "jaxlib", "numpy", "equinox", "optax", "xarray", "pandas", "scipy", "builtins", "functools",
              "typing", "collections", "abc", "math", "operator", "dataclasses", "lineax", "optimistix", "tqdm")


def _is_library(module: str | None) -> bool:
    return module is None or module.split(".")[0] in _LIBRARIES


def _code_names(code: types.CodeType) -> set[str]:
    names = set(code.co_names)
    for c in code.co_consts:
        if isinstance(c, types.CodeType):
            names |= _code_names(c)
    return names


class _Hasher:
    def __init__(self, cache: dict | None = None):
        self.h = hashlib.sha256()
        self.active: set[int] = set()  # objects on the current path (cycles)
        self.cache = {} if cache is None else cache  # id(array) -> digest, shared between fingerprints

    def tag(self, s: str) -> None:
        self.h.update(s.encode("utf-8", "surrogateescape") + b"\0")

    def array(self, x) -> None:
        key, orig = id(x), x
        if key not in self.cache:
            if isinstance(x, jax.Array) and jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key):
                prefix = f"key:{jax.random.key_impl(x)}"
                x = jax.random.key_data(x)
            else:
                prefix = "array"
            if isinstance(x, jax.Array) and not x.is_fully_addressable:
                # a global array of several processes: hash what this process holds, with its position
                h = hashlib.sha256(f"{prefix}:{x.dtype}:{x.shape}:global".encode())
                for shard in sorted(x.addressable_shards, key=lambda s: str(s.index)):
                    h.update(str(shard.index).encode())
                    h.update(np.ascontiguousarray(np.asarray(shard.data)).tobytes())
            else:
                a = np.asarray(x)
                h = hashlib.sha256(f"{prefix}:{a.dtype.str}:{a.shape}".encode())
                if a.dtype == object:
                    sub = _Hasher(self.cache)
                    for v in a.ravel():
                        sub.update(v)
                    h.update(sub.h.digest())
                else:
                    h.update(np.ascontiguousarray(a).tobytes())
            self.cache[key] = (h.hexdigest(), orig)  # keep it alive so its id is not reused
        self.tag(self.cache[key][0])

    def code(self, code: types.CodeType) -> None:
        self.tag(f"code:{code.co_name}:{code.co_argcount}:{code.co_kwonlyargcount}:{code.co_flags}")
        self.h.update(code.co_code)
        self.tag(repr(code.co_names) + repr(code.co_varnames) + repr(code.co_freevars))
        for c in code.co_consts:
            if isinstance(c, types.CodeType):
                self.code(c)
            else:
                self.update(c)

    def cls(self, t: type) -> None:
        self.tag(f"class:{t.__module__}.{t.__qualname__}")
        if _is_library(t.__module__):
            return
        for base in t.__mro__:
            if _is_library(base.__module__):
                continue
            for name, v in sorted(vars(base).items()):
                f = v.__func__ if isinstance(v, (staticmethod, classmethod)) else v
                f = f.fget if isinstance(f, property) else f
                if isinstance(f, types.FunctionType):
                    self.tag(name)
                    self.code(f.__code__)

    def function(self, f: types.FunctionType) -> None:
        self.tag(f"function:{f.__module__}.{f.__qualname__}")
        if _is_library(f.__module__):
            return
        self.code(f.__code__)
        self.update(f.__defaults__)
        self.update(f.__kwdefaults__)
        for cell in f.__closure__ or ():
            try:
                self.update(cell.cell_contents)
            except ValueError:  # an empty cell
                self.tag("empty cell")
        g = f.__globals__
        for name in sorted(_code_names(f.__code__)):
            if name in g:
                self.tag(f"global:{name}")
                self.update(g[name])

    def update(self, obj: Any) -> None:  # noqa: C901 (one branch per kind of object)
        if obj is None or isinstance(obj, (bool, int, float, complex, str, bytes)):
            self.tag(f"{type(obj).__name__}:{obj!r}")
            return
        if isinstance(obj, (np.ndarray, np.generic, jax.Array)):
            self.array(obj)
            return
        if isinstance(obj, types.ModuleType):
            self.tag(f"module:{obj.__name__}")
            return
        if isinstance(obj, type):
            self.cls(obj)
            return
        if id(obj) in self.active:
            self.tag("cycle")
            return
        self.active.add(id(obj))
        try:
            self._container(obj)
        finally:
            self.active.discard(id(obj))

    def _container(self, obj: Any) -> None:  # noqa: C901
        if isinstance(obj, (tuple, list)):
            self.tag(f"{type(obj).__name__}:{len(obj)}")
            for v in obj:
                self.update(v)
        elif isinstance(obj, dict):
            self.tag(f"dict:{len(obj)}")
            for k, v in sorted(obj.items(), key=lambda kv: repr(kv[0])):
                self.update(k)
                self.update(v)
        elif isinstance(obj, (set, frozenset)):
            self.tag(f"set:{len(obj)}")
            for d in sorted(fingerprint(v, cache=self.cache) for v in obj):
                self.tag(d)
        elif dataclasses.is_dataclass(obj):  # equinox modules are dataclasses
            self.cls(type(obj))
            for f in dataclasses.fields(obj):
                self.tag(f"field:{f.name}")
                self.update(getattr(obj, f.name, None))
        elif isinstance(obj, types.FunctionType):
            self.function(obj)
        elif isinstance(obj, types.MethodType):
            self.tag("method")
            self.update(obj.__func__)
            self.update(obj.__self__)
        elif isinstance(obj, functools.partial):
            self.tag("partial")
            self.update(obj.func)
            self.update(obj.args)
            self.update(obj.keywords)
        elif hasattr(obj, "__wrapped__"):  # jax.jit, custom_jvp, functools.wraps
            self.tag(f"wrapped:{type(obj).__qualname__}")
            self.update(obj.__wrapped__)
        elif _is_pandas(obj):
            import pandas as pd

            self.tag(f"pandas:{type(obj).__name__}:{obj.shape}")
            self.update(getattr(obj, "names", None) or getattr(obj, "name", None))
            self.array(np.asarray(pd.util.hash_pandas_object(obj, index=not isinstance(obj, pd.Index))))
            if isinstance(obj, pd.DataFrame):
                self.update(list(obj.columns))
        elif _is_xarray(obj):
            self.tag(f"xarray:{type(obj).__name__}")
            self.update(obj.to_dict(data="array"))
        elif callable(obj) and not hasattr(obj, "__dict__"):  # builtins, ufuncs, compiled functions
            self.tag(f"callable:{type(obj).__qualname__}:{getattr(obj, '__module__', '')}."
                     f"{getattr(obj, '__qualname__', getattr(obj, '__name__', ''))}")
        elif hasattr(obj, "__dict__"):
            self.cls(type(obj))
            self.update(dict(vars(obj)))
        else:
            r = repr(obj)
            self.tag(f"{type(obj).__module__}.{type(obj).__qualname__}" + ("" if " at 0x" in r else ":" + r))


def _is_pandas(obj) -> bool:
    return type(obj).__module__.startswith("pandas.") and hasattr(obj, "shape")


def _is_xarray(obj) -> bool:
    return type(obj).__module__.startswith("xarray.") and hasattr(obj, "to_dict")


def fingerprint(obj: Any, *, cache: dict | None = None) -> str:
    """SHA-256 (hex) of the content of `obj` (see the module docstring). `cache` (a dict) shares the hashes of
    array leaves between several fingerprints of objects holding the same arrays."""
    h = _Hasher(cache)
    h.update(obj)
    return h.h.hexdigest()
