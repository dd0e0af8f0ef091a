"""Old import paths kept for one release (0.2): names that moved into subpackages in the 0.2 layout resolve with a
`DeprecationWarning` naming the new path (docs/changelog.md).

It lives in `ctm_interface`, the bottom of the import order (ctm_interface -> surrogate -> diffmrio), so that every
package of the distribution can use it; the release named in the warning is the distribution's (`diffmrio`)."""

from __future__ import annotations

import importlib
import sys
import warnings
from collections.abc import Callable, Mapping

_REMOVAL = "the old path will be removed in diffmrio 0.3"


def _old_names(package: str, table: Mapping[str, str], resolve, message) -> Callable[[str], object]:
    """A module `__getattr__` for `package` that resolves the old names in `table` (`resolve(old, entry)`) with a
    `DeprecationWarning` (`message(old, entry)`)."""

    def __getattr__(name: str):
        entry = table.get(name)
        if entry is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        # `from package import name` looks the name up twice: `hasattr` in importlib's `_handle_fromlist`, then
        # the import statement itself. Warn only for the second (stacklevel=2 is then the user's line), so that
        # one old import gives one warning, also under simplefilter("always").
        if not sys._getframe(1).f_code.co_filename.startswith("<frozen importlib"):
            warnings.warn(message(name, entry), DeprecationWarning, stacklevel=2)
        return resolve(name, entry)

    return __getattr__


def moved_names(package: str, moves: Mapping[str, str]) -> Callable[[str], object]:
    """A module `__getattr__` for `package`: `moves[name]` is the module that now holds `name`."""
    return _old_names(package, moves, lambda name, target: getattr(importlib.import_module(target), name),
                      lambda name, target: f"{package}.{name} moved to {target}.{name}; {_REMOVAL}")


def renamed_names(package: str, renames: Mapping[str, str]) -> Callable[[str], object]:
    """A module `__getattr__` for `package`: `renames[old]` is the new name of `old` in the same package."""
    return _old_names(package, renames, lambda old, new: getattr(importlib.import_module(package), new),
                      lambda old, new: f"{package}.{old} is now {package}.{new}; {_REMOVAL}")
