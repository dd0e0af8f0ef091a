"""The I/O API `GRIDDESC` file: named map projections and named grids.

Format (Fortran list-directed text): a header line, then pairs of lines `'COORD_NAME'` /
`GDTYP P_ALP P_BET P_GAM XCENT YCENT` ended by a blank-name line (`' '`), then pairs of lines `'GRID_NAME'` /
`'COORD_NAME' XORIG YORIG XCELL YCELL NCOLS NROWS NTHIK` ended by another blank-name line.

Reference: <https://www.cmascenter.org/ioapi/documentation/all_versions/html/GRIDDESC.html>.
"""

from __future__ import annotations

import os
import shlex
from pathlib import Path

from ._atomic import write_text_atomic
from ._errors import CTMFileError
from ._grids import GridDefinition


def _tokens(line: str) -> list[str]:
    lex = shlex.shlex(line.replace(",", " "), posix=True)
    lex.whitespace_split = True
    lex.quotes = "'\""
    lex.commenters = "!"
    return list(lex)


def _is_blank_name(line: str) -> bool:
    t = line.strip()
    return t == "" or t.strip("'\" ") == ""


def read_griddesc(path: str | os.PathLike) -> dict[str, GridDefinition]:
    """Parse a `GRIDDESC` file.

    **Arguments**: `path` to the file.

    **Returns** a dict from grid name to `GridDefinition` (with `name` set), in file order. Raises
    `CTMFileError` naming the file and line for malformed entries or grids that refer to an unknown
    projection.
    """
    path = Path(path)
    try:
        lines = path.read_text().splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise CTMFileError(path, f"cannot read GRIDDESC text file ({e})") from e
    if not lines:
        raise CTMFileError(path, "empty GRIDDESC file")
    i = 1  # the first line is a header (usually ' ')
    coords: dict[str, tuple[float, ...]] = {}
    grids: dict[str, GridDefinition] = {}
    section = "coords"
    while i < len(lines):
        line = lines[i]
        if _is_blank_name(line):
            if section == "coords":
                section = "grids"
                i += 1
                continue
            break
        try:
            name = _tokens(line)[0]
            values = _tokens(lines[i + 1])
        except (IndexError, ValueError) as e:
            raise CTMFileError(path, f"line {i + 1}: incomplete {section[:-1]} entry {line.strip()!r}") from e
        try:
            if section == "coords":
                gdtyp = int(float(values[0]))
                coords[name] = (gdtyp, *(float(v) for v in values[1:6]))
                if len(values) < 6:
                    raise ValueError("need GDTYP P_ALP P_BET P_GAM XCENT YCENT")
            else:
                cname = values[0]
                if cname not in coords:
                    raise CTMFileError(
                        path,
                        f"line {i + 2}: grid {name!r} refers to unknown projection {cname!r} "
                        f"(known: {sorted(coords)})",
                    )
                gdtyp, p_alp, p_bet, p_gam, xcent, ycent = coords[cname]
                xorig, yorig, xcell, ycell = (float(v) for v in values[1:5])
                ncols, nrows = int(float(values[5])), int(float(values[6]))
                grids[name] = GridDefinition(
                    int(gdtyp),
                    p_alp,
                    p_bet,
                    p_gam,
                    xcent,
                    ycent,
                    xorig,
                    yorig,
                    xcell,
                    ycell,
                    ncols,
                    nrows,
                    name,
                )
        except CTMFileError:
            raise
        except (IndexError, ValueError) as e:
            raise CTMFileError(
                path, f"line {i + 2}: malformed {section[:-1]} values {lines[i + 1].strip()!r} ({e})"
            ) from e
        i += 2
    if not grids:
        raise CTMFileError(path, "no grid definitions found (expected a second section of grid entries)")
    return grids


def write_griddesc(grids: dict[str, GridDefinition] | list[GridDefinition], path: str | os.PathLike) -> Path:
    """Write grids to a `GRIDDESC` file (atomically); projections are named `<grid>_PROJ`.

    **Returns** the path written.
    """
    if not isinstance(grids, dict):
        grids = {g.name: g for g in grids}
    out = ["' '"]
    for name, g in grids.items():
        out.append(f"'{name}_PROJ'")
        out.append(f"  {g.gdtyp} {g.p_alp!r} {g.p_bet!r} {g.p_gam!r} {g.xcent!r} {g.ycent!r}")
    out.append("' '")
    for name, g in grids.items():
        out.append(f"'{name}'")
        out.append(f"'{name}_PROJ' {g.xorig!r} {g.yorig!r} {g.xcell!r} {g.ycell!r} {g.ncols} {g.nrows} 1")
    out.append("' '")
    path = Path(path)
    return write_text_atomic(path, "\n".join(out) + "\n")
