"""Atomic file writing for all three packages: write to a temporary file in the target's folder, flush it to
disk, then rename it onto the target (and flush the folder), so an interrupted run never leaves a
half-written file behind, and a crash right after a write does not lose it.

Temporary files are hidden and recognisable: `.<target name>.diffmrio-tmp-<pid>-<host>-<random><suffix>`.
A process killed with `SIGKILL` (or a power cut) cannot remove its temporary; the next write of the same
target removes the temporaries of processes that are no longer running on this host (or that are older than
a day), and `clean_stale_temporaries(folder)` does so for a whole folder. Files of any other name are never
touched.

An optional *write guard* (`write_guard(guard)`) is consulted before every write and told after it: the
`diffmrio demo` command uses it to refuse overwriting files it did not write.
"""

from __future__ import annotations

import contextlib
import contextvars
import hashlib
import os
import re
import socket
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO, Protocol, runtime_checkable

TMP_TAG = ".diffmrio-tmp-"
STALE_AFTER_S = 24 * 3600.0
_TMP_RE = re.compile(r"^\.(?P<name>.+)" + re.escape(TMP_TAG) + r"(?P<pid>\d+)-(?P<host>[0-9a-f]{8})-")


def _host_tag() -> str:
    return hashlib.sha256(socket.gethostname().encode()).hexdigest()[:8]


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    except OSError:
        return True
    return True


def _stale(entry: Path, now: float, host: str) -> bool:
    m = _TMP_RE.match(entry.name)
    if m is None:
        return False
    try:
        age = now - entry.lstat().st_mtime
    except FileNotFoundError:
        return False
    if age > STALE_AFTER_S:
        return True
    return m["host"] == host and not _pid_alive(int(m["pid"]))


def clean_stale_temporaries(folder: str | os.PathLike, name: str | None = None, *, recursive: bool = False) -> list[Path]:
    """Remove temporaries left in `folder` by killed writers (only those of `name` when given): files named
    `.<name>.diffmrio-tmp-<pid>-<host>-...` whose process is no longer running on this host, or that are older
    than a day. Returns the removed paths; never removes anything else."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    pattern = f".{name}{TMP_TAG}*" if name is not None else f".*{TMP_TAG}*"
    entries = folder.rglob(pattern) if recursive else folder.glob(pattern)
    now, host, removed = time.time(), _host_tag(), []
    for entry in entries:
        if entry.is_file() and not entry.is_symlink() and _stale(entry, now, host):
            with contextlib.suppress(FileNotFoundError):
                entry.unlink()
                removed.append(entry)
    return removed


def _fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # e.g. Windows cannot open folders
        return
    try:
        with contextlib.suppress(OSError):
            os.fsync(fd)
    finally:
        os.close(fd)


@runtime_checkable
class WriteGuard(Protocol):
    def before_write(self, path: Path) -> None: ...

    def before_replace(self, tmp: Path, path: Path) -> None: ...

    def after_write(self, path: Path) -> None: ...


_GUARD: contextvars.ContextVar[WriteGuard | None] = contextvars.ContextVar("diffmrio_write_guard", default=None)


@contextlib.contextmanager
def write_guard(guard: WriteGuard) -> Iterator[WriteGuard]:
    """Within the block, every atomic write calls `guard.before_write(path)` (which may raise to refuse it)
    before it starts, `guard.before_replace(tmp, path)` when the complete temporary is about to replace
    `path`, and `guard.after_write(path)` once the file is in place."""
    token = _GUARD.set(guard)
    try:
        yield guard
    finally:
        _GUARD.reset(token)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path next to `path` (with `path`'s suffix unless `suffix` is given, so writers
    that pick a format from the extension still do); when the block succeeds it is flushed to disk and
    replaces `path` with ordinary permissions, when it fails it is removed."""
    path = Path(path)
    guard = _GUARD.get()
    if guard is not None:
        guard.before_write(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    clean_stale_temporaries(path.parent, path.name)
    fd, tmp = tempfile.mkstemp(
        prefix=f".{path.name}{TMP_TAG}{os.getpid()}-{_host_tag()}-",
        suffix=path.suffix if suffix is None else suffix,
        dir=path.parent,
    )
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.chmod(tmp_path, 0o666 & ~_umask())  # mkstemp creates 0600
        _fsync_file(tmp_path)
        if guard is not None:
            guard.before_replace(tmp_path, path)
        os.replace(tmp_path, path)
        _fsync_dir(path.parent)
    except OSError as exc:
        if exc.filename is None or Path(exc.filename) != tmp_path:
            raise
        # the user asked for `path`: name it (a full disk or a lost permission would otherwise show the hidden
        # temporary's name, which no longer exists once this block has removed it)
        raise type(exc)(exc.errno, f"{exc.strerror or exc} while writing {path} (nothing was written there; "
                        f"its temporary {tmp_path.name} was removed)", str(path)) from exc
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp_path.unlink()
    if guard is not None:
        guard.after_write(path)


def write_text_atomic(path: str | os.PathLike, text: str) -> Path:
    """Write `text` (UTF-8) to `path` atomically; returns the path."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)


def write_bytes_atomic(path: str | os.PathLike, writer: Callable[[BinaryIO], None]) -> Path:
    """Call `writer(f)` on a binary file that becomes `path` atomically, flushed to disk first (checkpoints
    and saved models); returns the path."""
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            writer(f)
            f.flush()
            os.fsync(f.fileno())
    return Path(path)
