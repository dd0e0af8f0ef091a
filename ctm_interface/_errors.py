"""Errors raised by the CTM file readers and writers."""

from __future__ import annotations

import os


class CTMFileError(ValueError):
    """A CTM file could not be used: it is unreadable, truncated, incomplete or does not match.

    The message always names the file and the problem, e.g.
    `conc.nc: missing I/O API global attribute(s) ['SDATE']: this is not an I/O API file, or it was
    post-processed by a tool that dropped the attributes; read it with xarray.open_dataset instead`.

    **Attributes**

    - `path`: the file (a `str`; `"<memory>"` for in-memory datasets).
    - `problem`: the problem, without the path.
    """

    def __init__(self, path: str | os.PathLike | None, problem: str):
        self.path = "<memory>" if path is None else os.fspath(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")
