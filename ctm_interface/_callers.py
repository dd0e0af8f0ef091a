"""Where a warning should point: the first stack frame that is the user's code.

A fixed `stacklevel` counts frames, and the number of frames between a user's call and the function that
warns changes with the way the call arrives: `surrogate.fit`'s own helpers, equinox's module wrappers,
`jax.jit`, and the runtime type checks of jaxtyping (with beartype) that the test run puts around functions.
`user_stacklevel` walks the stack instead (Python 3.11 has no `skip_file_prefixes`; 3.12's does the same).
"""

from __future__ import annotations

import os
import sys

#: libraries whose frames sit between a caller and the code it calls (wrappers, tracing, type checks)
WRAPPERS = ("jax", "jaxlib", "equinox", "jaxtyping", "beartype", "typeguard")
# functions generated at run time by beartype (the type checker of the test run) have these file names
_GENERATED = ("<@beartype(",)


def _prefixes(packages) -> tuple[str, ...]:
    out = []
    for name in packages:
        module = sys.modules.get(name)
        path = getattr(module, "__file__", None)
        if path:  # a package's folder, a module's file; not imported: none of its frames can be on the stack
            path = os.path.abspath(path)
            out.append(os.path.dirname(path) + os.sep if path.endswith("__init__.py") else path)
    return tuple(out)


def _bootstrap(filename: str) -> bool:
    """Frames that `warnings` skips without counting them (its `_is_internal_frame`)."""
    return "importlib" in filename and "_bootstrap" in filename


def user_stacklevel(*packages: str) -> int:
    """The `stacklevel` for a `warnings.warn` call made by the function that calls this one, so that the
    warning names the first frame outside `packages` (import names, e.g. `"surrogate"`) and the wrapper
    libraries in `WRAPPERS`: the line of the user's code that led to the warning."""
    skip = _prefixes((*packages, *WRAPPERS))
    frame = sys._getframe(1)  # the function that warns: stacklevel 1
    level = 1
    while frame.f_back is not None:
        name = frame.f_code.co_filename
        name = name if name.startswith("<") else os.path.abspath(name)
        if not (name.startswith(skip) or name.startswith(_GENERATED) or _bootstrap(name)):
            break
        frame = frame.f_back
        if not _bootstrap(frame.f_code.co_filename):
            level += 1
    return level
