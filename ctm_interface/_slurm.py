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
import tomllib
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from ._errors import CTMFileError

STATUS_DIR = "slurm_status"
_LABEL = re.compile(r"^[A-Za-z0-9._:+=@,-]+$")
_TIME_DIMS = ("TSTEP", "time", "Time", "t")


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
def _read_toml(runs_toml: Path) -> dict:
    try:
        return tomllib.loads(runs_toml.read_text())
    except FileNotFoundError:
        raise CTMFileError(runs_toml, "runs.toml does not exist") from None
    except (OSError, tomllib.TOMLDecodeError) as e:
        raise CTMFileError(runs_toml, f"not a readable TOML file ({e})") from e


def _key(doc: dict, runs_toml: Path, table: str, key: str):
    try:
        return doc[table][key]
    except (KeyError, TypeError):
        raise CTMFileError(runs_toml, f"[{table}] {key} is missing: add it (see the run-folder format)") from None


def run_folder_run_ids(runs_toml: str | os.PathLike) -> list[str]:
    """The run ids (labels, as strings) of a run folder's design table, in first-appearance order."""
    runs_toml = Path(runs_toml)
    doc = _read_toml(runs_toml)
    design = runs_toml.parent / _key(doc, runs_toml, "design", "file")
    col = doc.get("design", {}).get("run", "run")
    try:
        table = pd.read_csv(design, dtype={col: str})
    except FileNotFoundError:
        raise CTMFileError(design, f"design table named by [design] file in {runs_toml} does not exist") from None
    if col not in table.columns:
        raise CTMFileError(design, f"no run-id column {col!r} (columns: {list(table.columns)}); set [design] run")
    ids = table[col]
    if ids.isna().any():
        raise CTMFileError(design, f"empty run ids in column {col!r} (rows {list(np.flatnonzero(ids.isna()))})")
    return list(dict.fromkeys(str(v) for v in ids))


def _format_pattern(pattern: str, run_id: str) -> str:
    try:
        return pattern.format(run=run_id)
    except (ValueError, TypeError):  # a numeric format such as {run:03d} needs an integer label
        if re.fullmatch(r"-?\d+", run_id):
            return pattern.format(run=int(run_id))
        raise


def run_output_paths(runs_toml: str | os.PathLike, run_ids: Iterable[str] | None = None) -> dict[str, Path]:
    """Output file of each run id, from the `[outputs] pattern` of `runs.toml` (relative to its folder)."""
    runs_toml = Path(runs_toml)
    doc = _read_toml(runs_toml)
    pattern = _key(doc, runs_toml, "outputs", "pattern")
    if "{run" not in pattern:
        raise CTMFileError(runs_toml, f"[outputs] pattern {pattern!r} must contain {{run}}")
    ids = run_folder_run_ids(runs_toml) if run_ids is None else [str(r) for r in run_ids]
    out = {}
    for r in ids:
        try:
            out[r] = runs_toml.parent / _format_pattern(pattern, r)
        except (ValueError, TypeError, KeyError) as e:
            raise CTMFileError(runs_toml, f"[outputs] pattern {pattern!r} cannot name run {r!r} ({e})") from e
    return out


# ------------------------------------------------------------------------------------ evidence
def read_status(path: str | os.PathLike) -> dict[str, str]:
    """A status file written by the array job: `key=value` lines as a dict ({} when it does not exist)."""
    try:
        text = Path(path).read_text()
    except FileNotFoundError:
        return {}
    return dict(ln.split("=", 1) for ln in text.splitlines() if "=" in ln)


def _inspect_output(path: Path) -> tuple[str | None, int | None]:
    """(problem or None, number of time records) of one run's output file."""
    if not path.exists():
        return "no output file", None
    if path.stat().st_size == 0:
        return "empty output file", None
    try:
        with xr.open_dataset(path, chunks={}, decode_times=False, mask_and_scale=False) as ds:
            floats = [v for v in ds.data_vars if np.issubdtype(ds[v].dtype, np.floating)]
            if not floats:
                return "no floating-point variables", None
            for v in floats:
                bad = int((~np.isfinite(ds[v])).sum().compute())
                if bad:
                    return f"{bad} NaN/inf values in {v}", None
                if float(ds[v].min().compute()) < 0:
                    return f"negative values in {v}", None
            tdim = next((d for d in _TIME_DIMS if d in ds.dims), None)
            return None, (int(ds.sizes[tdim]) if tdim else 1)
    except Exception as e:  # truncated or foreign files fail in netCDF/HDF5 with many error types
        return f"unreadable output file ({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''})", None


def check_run_outputs(
    runs_toml: str | os.PathLike,
    *,
    status_dir: str | os.PathLike | None = None,
    run_ids: Sequence[str] | None = None,
) -> pd.DataFrame:
    """Say for every run id of a run folder whether its run is usable, from the files alone (no `sacct`).

    Evidence per run: the status file the array job wrote (`<status_dir>/<run_id>.status`, see
    `write_slurm_script`) and the output file at the `[outputs] pattern` path, which must open, hold
    floating-point data without NaN/inf or negative values, and have as many time records as most runs.

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
      has NaN/inf or negative values, or fewer time records than most runs.
    """
    runs_toml = Path(runs_toml)
    status_dir = default_status_dir(runs_toml) if status_dir is None else Path(status_dir)
    paths = run_output_paths(runs_toml, run_ids)
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
        problem, n_rec = _inspect_output(p)
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
        usual = Counter(records.values()).most_common(1)[0][0]
        rows = [
            (r, "invalid", c, p, f"{records[r]} time records where most runs have {usual}")
            if s == "ok" and records[r] < usual
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
