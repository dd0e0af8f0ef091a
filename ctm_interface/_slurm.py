"""Which runs of a CTM ensemble failed on the cluster, by run id, without the scheduler's accounting database.

A SLURM array job written by `write_slurm_script` leaves two kinds of evidence per run: the run's output file
(at the path the run folder's `[outputs] pattern` gives) and a small status file `<status_dir>/<run_id>.status`
(`state=running` at start, `state=finished` + `exit=<code>` at the end). `check_run_outputs` reads both and
says, for every run id of the design table, whether the run is usable; `failed_runs` lists those that are
not, and `slurm_array_indices` turns them into the `sbatch --array=` list that resubmits only them.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Sequence
from pathlib import Path

import pandas as pd

from ._errors import CTMFileError
from ._runfolder import (
    _decode_grid,
    _grid_mismatch,
    _read_run_fields,
    format_run_path,
    read_design,
    read_region_masks,
    read_runs_toml,
)
from ._vocabulary import DEFAULT_OM_OC

STATUS_DIR = "slurm_status"
_LABEL = re.compile(r"^[A-Za-z0-9._:+=@,-]+$")


def check_run_label(run_id: str) -> str:
    """Refuse run-id labels that cannot travel through a shell script and a file name unchanged."""
    if not _LABEL.match(run_id) or run_id in (".", ".."):
        raise ValueError(
            f"run id {run_id!r} cannot be used as a SLURM array label: use letters, digits and . _ - : + = @ , "
            "only (no spaces, slashes, quotes or shell characters), e.g. 'run017'"
        )
    return run_id


def default_status_dir(runs_toml: str | os.PathLike) -> Path:
    """The status folder of a run folder's array jobs: `slurm_status/` next to its `runs.toml`."""
    return Path(runs_toml).parent / STATUS_DIR


# ------------------------------------------------------------------------------------ run folder basics
def _labels(cfg) -> list:
    """The design's run-id labels (ints when every id is an integer, as `read_design` gives them)."""
    d = cfg.raw["design"]
    return read_design(cfg.file("design"), run=d.get("run", "run"))["run"].values.tolist()


def run_folder_run_ids(runs_toml: str | os.PathLike) -> list[str]:
    """The run ids of a run folder's design table, as strings, in design order."""
    return [str(r) for r in _labels(read_runs_toml(runs_toml))]


def run_output_paths(runs_toml: str | os.PathLike, run_ids: Iterable[str] | None = None) -> dict[str, Path]:
    """Output file of each run id (all of the design by default), from the `[outputs] pattern` of `runs.toml`."""
    cfg = read_runs_toml(runs_toml)
    labels = {str(r): r for r in _labels(cfg)}
    ids = list(labels) if run_ids is None else [str(r) for r in run_ids]
    unknown = [r for r in ids if r not in labels]
    if unknown:
        raise ValueError(f"run ids {unknown} are not in the design {cfg.file('design')}")
    return {r: format_run_path(cfg.root, cfg.raw["outputs"]["pattern"], labels[r], config=cfg.path) for r in ids}


# ------------------------------------------------------------------------------------ evidence
def read_status(path: str | os.PathLike) -> dict[str, str]:
    """A status file written by the array job: `key=value` lines as a dict ({} when it does not exist)."""
    try:
        text = Path(path).read_text()
    except FileNotFoundError:
        return {}
    return dict(ln.split("=", 1) for ln in text.splitlines() if "=" in ln)


def _output_reader(cfg):
    """`path -> (problem or None, n_records)` with the checks `read_run_folder` applies to one run's file."""
    out = cfg.raw["outputs"]
    fmt = out.get("format", "ioapi")
    spec = out.get("components", {"ioapi": "cmaq-elmo"}.get(fmt, "geoschem"))
    om_oc, layer = float(out.get("om_oc", DEFAULT_OM_OC)), int(out.get("layer", 0))
    mgrid = None
    if cfg.file("regions", "masks", required=False) is not None:
        masks = read_region_masks(cfg.file("regions", "masks"), variables=cfg.get("regions", "variables"))
        mgrid = _decode_grid(masks.attrs["_grid"])

    def inspect(path: Path) -> tuple[str | None, int | None]:
        if not path.exists():
            return "no output file", None
        if path.stat().st_size == 0:
            return "empty output file", None
        try:
            _, n_rec, _, grid = _read_run_fields(path, fmt, spec, om_oc, layer)
        except CTMFileError as e:
            return e.problem, None
        except Exception as e:  # truncated files fail inside netCDF/HDF5 with many exception types
            first = str(e).splitlines()[0] if str(e) else ""
            return f"unreadable output file ({type(e).__name__}: {first})", None
        mis = None if mgrid is None else _grid_mismatch(mgrid, grid)
        return (f"grid does not match the region masks' grid: {mis}", None) if mis else (None, n_rec)

    return inspect


def check_run_outputs(
    runs_toml: str | os.PathLike,
    *,
    status_dir: str | os.PathLike | None = None,
    run_ids: Sequence[str] | None = None,
) -> pd.DataFrame:
    """Say for every run id of a run folder whether its run is usable, from the files alone (no `sacct`).

    Evidence per run: the status file the array job wrote (`<status_dir>/<run_id>.status`, see
    `write_slurm_script`) and the output file at the `[outputs] pattern` path, which must open, hold
    be read as `read_run_folder` reads it (components resolved, units, no NaN/inf or negative values, the
    region masks' grid) and have as many time records as the other runs.

    **Arguments**: `runs_toml`; `status_dir` (default `slurm_status/` next to it; runs without a status file,
    e.g. computed outside SLURM, are judged by their output alone); `run_ids` (default all of the design).

    **Returns** a DataFrame indexed by `run` (the run ids) with columns `status`, `exit_code` (`<NA>` when no
    task finished), `path` and `reason`. `status` is one of

    - `"ok"`: usable;
    - `"failed"`: the task finished with a non-zero exit status (its output, if any, is not trusted);
    - `"unfinished"`: the task started but never finished (still running, or killed by the scheduler:
      time or memory limit, node failure; see its log);
    - `"missing"`: no output file (never run);
    - `"invalid"`: the task succeeded (or left no status) but its output file is truncated, unreadable,
      has NaN/inf or negative values, another grid, or fewer time records than the other runs.
    """
    runs_toml = Path(runs_toml)
    status_dir = default_status_dir(runs_toml) if status_dir is None else Path(status_dir)
    paths = run_output_paths(runs_toml, run_ids)
    inspect = _output_reader(read_runs_toml(runs_toml))
    rows, records = [], {}
    for r, p in paths.items():
        st = read_status(status_dir / f"{r}.status")
        code = st.get("exit")
        code = int(code) if code is not None and re.fullmatch(r"-?\d+", code) else None
        if st.get("state") == "running":
            rows.append((r, "unfinished", code, p, f"task {st.get('job', '?')} on {st.get('host', '?')} started at "
                         f"{st.get('start', '?')} and never finished (still running, or killed: see its log)"))
            continue
        if st.get("state") == "finished" and code != 0:
            rows.append((r, "failed", code, p, f"task {st.get('job', '?')} exited with status {code}"))
            continue
        problem, n_rec = inspect(p)
        if problem == "no output file":
            status = "invalid" if code == 0 else "missing"
            why = "exited 0 but wrote no output file" if code == 0 else "no output file and no finished task"
            rows.append((r, status, code, p, why))
        elif problem:
            rows.append((r, "invalid", code, p, problem))
        else:
            records[r] = n_rec
            rows.append((r, "ok", code, p, ""))
    if records:
        most = max(records.values())
        rows = [
            (r, "invalid", c, p, f"{records[r]} time records, other runs up to {most}: it probably stopped early")
            if s == "ok" and records[r] < most
            else (r, s, c, p, why)
            for r, s, c, p, why in rows
        ]
    df = pd.DataFrame(rows, columns=["run", "status", "exit_code", "path", "reason"]).set_index("run")
    df["exit_code"] = df["exit_code"].astype("Int64")
    return df


def failed_runs(
    runs_toml: str | os.PathLike,
    *,
    status_dir: str | os.PathLike | None = None,
    run_ids: Sequence[str] | None = None,
) -> list[str]:
    """Run ids whose run is not usable (`check_run_outputs` status other than `"ok"`), in design order."""
    report = check_run_outputs(runs_toml, status_dir=status_dir, run_ids=run_ids)
    return list(report.index[report["status"] != "ok"])


def slurm_array_indices(script: str | os.PathLike, run_ids: Iterable[str]) -> str:
    """The `sbatch --array=` list that reruns `run_ids` with a script written by `write_slurm_script` in
    run-id mode (their line indices in the script's `.run_ids` list), e.g. `"3,7"`."""
    script = Path(script)
    list_file = script.with_suffix(".run_ids")
    try:
        labels = [ln for ln in list_file.read_text().splitlines() if ln]
    except FileNotFoundError:
        raise CTMFileError(
            list_file, f"no run-id list next to {script}: write the script with a runs.toml or run_ids"
        ) from None
    where = {r: i for i, r in enumerate(labels)}
    ids = [str(r) for r in run_ids]
    unknown = [r for r in ids if r not in where]
    if unknown:
        raise ValueError(f"run ids {unknown} are not in {list_file}: write a new script with run_ids={unknown}")
    if not ids:
        raise ValueError("no run ids to resubmit")
    return ",".join(str(where[r]) for r in ids)
