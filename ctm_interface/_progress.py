"""Progress bars only where someone watches them: one `tqdm` for diffmrio, surrogate and ctm_interface.

A bar is drawn when the caller asked for one (`disable=False`, the `progress=True` of the library functions),
progress output is not switched off ([`set_quiet`][]; `diffmrio -q` does this) and stderr is a terminal or
the code runs in a Jupyter kernel (where `tqdm.auto` draws a widget). Redirected to a file or a pipe (a batch
job's log), the bars are silent: carriage-return redraws make such logs unreadable.
"""

from __future__ import annotations

import sys

_quiet = False


def set_quiet(quiet: bool = True) -> None:
    """Switch every progress bar off (`True`) or back to the terminal rule (`False`) for this process."""
    global _quiet
    _quiet = bool(quiet)


def bars_allowed(stream=None) -> bool:
    """Whether a progress bar may be drawn now: not quiet, and `stream` (default `sys.stderr`) is a terminal
    or this is a Jupyter kernel."""
    if _quiet:
        return False
    if "ipykernel" in sys.modules:
        return True
    stream = sys.stderr if stream is None else stream
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # no isatty, or a closed stream
        return False


def tqdm(*args, disable: bool = False, **kwargs):
    """`tqdm.auto.tqdm`, disabled unless [`bars_allowed`][] (and the caller's `disable` is false)."""
    from tqdm.auto import tqdm as _tqdm

    return _tqdm(*args, disable=bool(disable) or not bars_allowed(kwargs.get("file")), **kwargs)
