"""CTM ensembles over emission scaling factors: designs, manifests, per-run inputs, SLURM scripts, ingestion.

An ensemble varies multiplicative emission scaling factors $s_{g,k[,l]}$ per source region $g$, species $k$
(and optionally emission level $l$) over ranges such as $[0, 2]$; run $n$ of a CTM uses emissions
$E^{(n)}_{k,l,ij} = \\sum_g s^{(n)}_{g,k,l}\\, E_{g,k,l,ij}$. Space-filling designs (Latin hypercube, scrambled
Sobol', via `scipy.stats.qmc`) spread the runs over the factor box for emulator training; the base case
(all ones) and one-at-a-time perturbations can be added for checks and local sensitivities.

References: McKay, Beckman & Conover (1979), Technometrics 21:239 (Latin hypercube); Sobol' (1967) and
Owen (1998) scrambling, as implemented in SciPy's `scipy.stats.qmc`.
"""

from __future__ import annotations

import json
import os
import shlex
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from ._atomic import atomic_path, write_text_atomic
from ._errors import CTMFileError
from ._grids import GridDefinition, grid_from_ioapi_attrs
from ._ioapi import read_ioapi
from ._regions import aggregate_to_regions, region_kernel
from ._runfolder import as_field2d, as_region_masks
from ._slurm import check_run_label, default_status_dir, run_folder_run_ids
from ._vocabulary import default_components

MANIFEST_VERSION = 1


# ---------------------------------------------------------------------------------------------- designs
def _factor_coords(sources, species, levels) -> tuple[list[str], dict[str, list[str]], tuple[int, ...]]:
    dims = ["source", "species"] + (["level"] if levels is not None else [])
    coords = {"source": [str(s) for s in sources], "species": [str(s) for s in species]}
    if levels is not None:
        coords["level"] = [str(s) for s in levels]
    for d, c in coords.items():
        if len(c) == 0 or len(set(c)) != len(c):
            raise ValueError(f"{d} labels must be non-empty and unique, got {c}")
    return dims, coords, tuple(len(coords[d]) for d in dims)


def _bounds(low, high, dims, coords, shape) -> tuple[np.ndarray, np.ndarray]:
    def expand(v, what):
        if isinstance(v, Mapping):  # per species
            missing = [s for s in coords["species"] if s not in v]
            if missing:
                raise ValueError(f"{what} mapping lacks species {missing}")
            arr = np.array([float(v[s]) for s in coords["species"]])
            arr = arr.reshape((1, -1) + (1,) * (len(dims) - 2))
        elif isinstance(v, xr.DataArray):
            arr = (
                v.broadcast_like(xr.DataArray(np.zeros(shape), dims=dims, coords=coords))
                .transpose(*dims)
                .values
            )
        else:
            arr = np.asarray(v, float)
        return np.broadcast_to(arr, shape).astype(float)

    lo, hi = expand(low, "low"), expand(high, "high")
    if np.any(~np.isfinite(lo)) or np.any(~np.isfinite(hi)) or np.any(hi <= lo) or np.any(lo < 0):
        raise ValueError("ranges need 0 <= low < high (finite) for every factor")
    return lo, hi


def _design(
    method: str,
    unit: np.ndarray | None,
    n: int,
    sources,
    species,
    levels,
    low,
    high,
    seed,
    include_base,
    include_oat,
    oat_values,
) -> xr.DataArray:
    dims, coords, shape = _factor_coords(sources, species, levels)
    lo, hi = _bounds(low, high, dims, coords, shape)
    d = int(np.prod(shape))
    blocks, kinds = [], []
    if include_base:
        blocks.append(np.ones((1, d)))
        kinds.append("base")
    if include_oat:
        vals = ("low", "high") if oat_values is None else tuple(oat_values)
        for j in range(d):
            for v in vals:
                row = np.ones((1, d))
                row[0, j] = lo.ravel()[j] if v == "low" else hi.ravel()[j] if v == "high" else float(v)
                blocks.append(row)
                kinds.append("oat")
    if unit is not None:
        blocks.append(lo.ravel() + unit * (hi - lo).ravel())
        kinds += [method] * n
    x = np.concatenate(blocks, axis=0) if blocks else np.zeros((0, d))
    nrun = x.shape[0]
    return xr.DataArray(
        x.reshape((nrun, *shape)),
        dims=("run", *dims),
        coords={
            "run": np.arange(nrun),
            "run_id": ("run", [f"run{i:04d}" for i in range(nrun)]),
            "run_kind": ("run", kinds),
            **coords,
            "low": (dims, lo),
            "high": (dims, hi),
        },
        name="scale",
        attrs={
            "method": method,
            "seed": -1 if seed is None else int(seed),
            "long_name": "emission scaling factor",
            "units": "1",
        },
    )


def latin_hypercube_design(
    n: int,
    sources: Sequence[str],
    species: Sequence[str],
    levels: Sequence[str] | None = None,
    *,
    low: float | Mapping[str, float] | xr.DataArray = 0.0,
    high: float | Mapping[str, float] | xr.DataArray = 2.0,
    seed: int = 0,
    include_base: bool = False,
    include_oat: bool = False,
    oat_values: Iterable[str | float] | None = None,
) -> xr.DataArray:
    """A Latin hypercube design over emission scaling factors.

    Each factor's range $[a, b]$ is cut into `n` equal strata and every stratum holds exactly one of the
    `n` sampled runs: $s = a + u (b - a)$ with `u` from `scipy.stats.qmc.LatinHypercube` (McKay et al. 1979).

    **Arguments**

    - `n`: number of sampled runs.
    - `sources`, `species`, `levels`: factor labels (e.g. regions, the 7 CTM species, `("ground",
      "elevated")`); `levels=None` drops the level dim.
    - `low`, `high`: range bounds: scalars, `{species: value}` mappings, or DataArrays broadcastable to the
      factor dims.
    - `seed`: random seed (recorded).
    - `include_base`: prepend the base case (all factors 1).
    - `include_oat`: add one-at-a-time runs (one factor at each of `oat_values`, default its `low` and
      `high`, all others 1).

    **Returns** `scale[run, source, species(, level)]` with coords `run_id`, `run_kind`
    (`"base"`, `"oat"`, `"lhs"`), `low`, `high` and attrs `method`, `seed`.
    """
    from scipy.stats import qmc

    _, _, shape = _factor_coords(sources, species, levels)
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    unit = (
        qmc.LatinHypercube(d=int(np.prod(shape)), seed=np.random.default_rng(seed)).random(n) if n else None
    )
    return _design(
        "lhs", unit, n, sources, species, levels, low, high, seed, include_base, include_oat, oat_values
    )


def sobol_design(
    n: int,
    sources: Sequence[str],
    species: Sequence[str],
    levels: Sequence[str] | None = None,
    *,
    low: float | Mapping[str, float] | xr.DataArray = 0.0,
    high: float | Mapping[str, float] | xr.DataArray = 2.0,
    seed: int = 0,
    include_base: bool = False,
    include_oat: bool = False,
    oat_values: Iterable[str | float] | None = None,
) -> xr.DataArray:
    """A scrambled Sobol' design over emission scaling factors (`scipy.stats.qmc.Sobol`, Owen scrambling).

    `n` should be a power of two: then every one-dimensional projection is stratified like a Latin
    hypercube and the design is a (t, m, s)-net; other `n` work but SciPy warns that balance is lost.
    Arguments and return as `latin_hypercube_design` (`run_kind` `"sobol"`).
    """
    from scipy.stats import qmc

    _, _, shape = _factor_coords(sources, species, levels)
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    unit = (
        qmc.Sobol(d=int(np.prod(shape)), scramble=True, seed=np.random.default_rng(seed)).random(n)
        if n
        else None
    )
    return _design(
        "sobol", unit, n, sources, species, levels, low, high, seed, include_base, include_oat, oat_values
    )


# ---------------------------------------------------------------------------------------------- manifests
def write_manifest(
    path: str | os.PathLike, design: xr.DataArray, *, metadata: Mapping[str, Any] | None = None
) -> Path:
    """Write an ensemble manifest (JSON, atomically) recording the design, seed, ranges and labels.

    **Arguments**: `path`; `design` from `latin_hypercube_design`/`sobol_design`; `metadata` (JSON-able),
    e.g. the CTM version, base emissions file, run command.

    **Returns** the path. `read_manifest` gives back the same design.
    """
    if not isinstance(design, xr.DataArray) or design.dims[0] != "run":
        raise ValueError(
            "design must be a DataArray with leading dim 'run' (from latin_hypercube_design or sobol_design)"
        )
    factor_dims = list(design.dims[1:])
    doc = {
        "manifest_version": MANIFEST_VERSION,
        "kind": "diffmrio.ctm_interface ensemble",
        "method": design.attrs.get("method", "unknown"),
        "seed": int(design.attrs.get("seed", -1)),
        "n_runs": int(design.sizes["run"]),
        "factor_dims": factor_dims,
        "labels": {d: [str(v) for v in design[d].values] for d in factor_dims},
        "ranges": {
            "low": design["low"].values.tolist() if "low" in design.coords else None,
            "high": design["high"].values.tolist() if "high" in design.coords else None,
        },
        "runs": [
            {
                "index": int(i),
                "id": str(design["run_id"].values[i]) if "run_id" in design.coords else f"run{i:04d}",
                "kind": str(design["run_kind"].values[i]) if "run_kind" in design.coords else "",
                "scale": design.values[i].tolist(),
            }
            for i in range(design.sizes["run"])
        ],
        "metadata": dict(metadata or {}),
    }
    return write_text_atomic(Path(path), json.dumps(doc, indent=1))


def read_manifest(path: str | os.PathLike) -> xr.DataArray:
    """Read a manifest written by `write_manifest`; returns the design DataArray (attrs add `metadata`
    as a JSON string and `manifest` = the path)."""
    path = Path(path)
    try:
        doc = json.loads(path.read_text())
    except FileNotFoundError:
        raise CTMFileError(path, "manifest does not exist") from None
    except (OSError, json.JSONDecodeError) as e:
        raise CTMFileError(path, f"not a readable JSON manifest ({e})") from e
    try:
        dims = list(doc["factor_dims"])
        labels = doc["labels"]
        runs = doc["runs"]
        shape = tuple(len(labels[d]) for d in dims)
        values = np.array([r["scale"] for r in runs], float).reshape((len(runs), *shape))
        coords: dict[str, Any] = {
            "run": [int(r["index"]) for r in runs],
            "run_id": ("run", [r["id"] for r in runs]),
            "run_kind": ("run", [r["kind"] for r in runs]),
            **{d: labels[d] for d in dims},
        }
        if doc["ranges"]["low"] is not None:
            coords["low"] = (dims, np.array(doc["ranges"]["low"], float))
            coords["high"] = (dims, np.array(doc["ranges"]["high"], float))
    except (KeyError, TypeError, ValueError) as e:
        raise CTMFileError(
            path, f"malformed manifest ({type(e).__name__}: {e}); rewrite it with write_manifest"
        ) from e
    return xr.DataArray(
        values,
        dims=("run", *dims),
        coords=coords,
        name="scale",
        attrs={
            "method": doc.get("method", "unknown"),
            "seed": int(doc.get("seed", -1)),
            "metadata": json.dumps(doc.get("metadata", {})),
            "manifest": str(path),
            "long_name": "emission scaling factor",
            "units": "1",
        },
    )


def _as_design(manifest: str | os.PathLike | xr.DataArray) -> xr.DataArray:
    return manifest if isinstance(manifest, xr.DataArray) else read_manifest(manifest)


# ---------------------------------------------------------------------------------------------- run inputs
def write_run_inputs(
    manifest: str | os.PathLike | xr.DataArray,
    directory: str | os.PathLike,
    *,
    fmt: str = "csv",
    name: str = "{run_id}_scale",
) -> list[Path]:
    """Write one small file of scaling factors per run (atomically), for a real CTM's emission step.

    - `fmt="csv"`: columns `source, species[, level], scale` (one row per factor).
    - `fmt="netcdf"`: a Dataset with `scale[source, species(, level)]` and attrs `run`, `run_id`.

    **Arguments**: `manifest` (path or design), output `directory`, `fmt`, file-name template `name`
    (`{run}`, `{run_id}`).

    **Returns** the paths, in run order.
    """
    design = _as_design(manifest)
    if fmt not in ("csv", "netcdf"):
        raise ValueError(f"fmt must be 'csv' or 'netcdf', got {fmt!r}")
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(design.sizes["run"]):
        one = design.isel(run=i)
        run_id = str(one["run_id"].values) if "run_id" in one.coords else f"run{i:04d}"
        base = name.format(run=i, run_id=run_id)
        if fmt == "csv":
            p = directory / f"{base}.csv"
            df = (
                one.drop_vars([c for c in one.coords if c not in one.dims])
                .to_dataframe(name="scale")
                .reset_index()
            )
            write_text_atomic(p, df.to_csv(index=False))
        else:
            p = directory / f"{base}.nc"
            ds = one.drop_vars([c for c in one.coords if c not in one.dims]).to_dataset(name="scale")
            ds.attrs.update({"run": i, "run_id": run_id, "method": str(design.attrs.get("method", ""))})
            with atomic_path(p) as tmp:
                ds.to_netcdf(tmp)
        paths.append(p)
    return paths


def write_slurm_script(
    path: str | os.PathLike,
    n_runs: int | str | os.PathLike | xr.DataArray,
    command: str,
    *,
    run_ids: Sequence[str | int] | None = None,
    status_dir: str | os.PathLike | None = None,
    job_name: str = "ctm-ensemble",
    time: str = "24:00:00",
    partition: str | None = None,
    account: str | None = None,
    nodes: int = 1,
    ntasks: int = 1,
    cpus_per_task: int | None = None,
    mem: str | None = None,
    max_concurrent: int | None = None,
    log_dir: str = "logs",
    setup: Sequence[str] = (),
    extra_sbatch: Sequence[str] = (),
    run_id_format: str = "run%04d",
) -> Path:
    """Write a SLURM array job script that runs one ensemble member per array task.

    Two ways to name the members:

    - **By position** (`n_runs` an int or a manifest/design, no `run_ids`): array task `i` runs member `i`;
      the script sets `RUN=i` and `RUN_ID` from `run_id_format` (e.g. `run0007`).
    - **By run-id label** (`n_runs` a run folder's `runs.toml`, or `run_ids` given): the labels are written
      one per line to a list file next to the script (`submit.sh` -> `submit.run_ids`) and array task `i`
      runs the label on line `i + 1`; `RUN` and `RUN_ID` are both the label, `TASK` the array index. With a
      `runs.toml` and no `run_ids`, the labels are the run ids of its design table. Resubmit some of them
      with `sbatch --array=<their line indices> submit.sh` (`ctm_interface.slurm_array_indices`) or write
      a new script with `run_ids=` those labels.

    `command` is a template in which `{run}` and `{run_id}` become `${RUN}` and `${RUN_ID}`, e.g.
    `"./run_cmaq.sh --scale inputs/{run_id}_scale.csv"` or `"diffmrio ctm run runs.toml --run {run_id}"`.
    The command runs under `set -e` in a subshell; the script exits with its exit status.

    **Per-run status files.** With `status_dir` (default for a `runs.toml`: `slurm_status/` next to it) each
    task writes `<status_dir>/<RUN_ID>.status` (atomically): `state=running` when it starts, then
    `state=finished` and `exit=<code>` when the command ends. `ctm_interface.check_run_outputs` reads them,
    so failed runs are named by run id without the scheduler's accounting database (`sacct`). A task the
    scheduler kills (time or memory limit, node failure) stays `state=running`.

    **Arguments**

    - `path`: the script to write (atomically, made executable).
    - `n_runs`: the number of runs, a manifest path/design to take it from, or a `runs.toml`.
    - `command`: the run command template.
    - `run_ids`: run-id labels to run (e.g. the failed ones), in this order; with a manifest they must be
      among its `run_id`s, with a `runs.toml` among its design's run ids.
    - `status_dir`: folder for the per-run status files (`None` without a `runs.toml`: none are written).
    - `job_name`, `time`, `partition`, `account`, `nodes`, `ntasks`, `cpus_per_task`, `mem`: `#SBATCH` options.
    - `max_concurrent`: limit of simultaneously running tasks (`--array=0-(n-1)%k`).
    - `log_dir`: where `%x_%A_%a.out/err` logs go, relative to the directory `sbatch` is run from. SLURM
      opens the log files before the script starts, so create it before submitting (`mkdir -p logs`).
    - `setup`: shell lines before the command (module loads, environment).
    - `extra_sbatch`: further `#SBATCH` option strings, e.g. `"--qos=long"`.
    - `run_id_format`: `printf` format of `RUN_ID` when members are named by position.

    The run-id list and the status folder are written into the script as absolute paths, so `sbatch` can be
    run from any directory.

    **Returns** the path. Submit with `sbatch path`.
    """
    path = Path(path)
    runs_toml = None
    if isinstance(n_runs, (str, os.PathLike)) and Path(n_runs).suffix == ".toml":
        runs_toml = Path(n_runs)
        all_ids = run_folder_run_ids(runs_toml)
        labels = all_ids if run_ids is None else [str(r) for r in run_ids]
        unknown = sorted(set(labels) - set(all_ids))
        if unknown:
            raise ValueError(f"run_ids {unknown} are not run ids of the design table of {runs_toml}")
        if status_dir is None:
            status_dir = default_status_dir(runs_toml)
    elif run_ids is not None:
        labels = [str(r) for r in run_ids]
        if not isinstance(n_runs, int):
            design = _as_design(n_runs)
            known = (
                [str(v) for v in design["run_id"].values]
                if "run_id" in design.coords
                else [run_id_format % i for i in range(design.sizes["run"])]
            )
            unknown = sorted(set(labels) - set(known))
            if unknown:
                raise ValueError(f"run_ids {unknown} are not run ids of the manifest (first ones: {known[:5]})")
    else:
        labels = None
        if not isinstance(n_runs, int):
            n_runs = int(_as_design(n_runs).sizes["run"])
    if labels is not None:
        if len(labels) == 0:
            raise ValueError("run_ids is empty: there is nothing to run")
        if len(set(labels)) != len(labels):
            dup = sorted({r for r in labels if labels.count(r) > 1})
            raise ValueError(f"run_ids lists {dup} more than once")
        for r in labels:
            check_run_label(r)
        n_runs = len(labels)
    if n_runs < 1:
        raise ValueError(f"n_runs must be >= 1, got {n_runs}")
    if "{run" not in command:
        warnings.warn(
            "the command template uses neither {run} nor {run_id}: every task would run the same thing",
            stacklevel=2,
        )
    array = f"0-{n_runs - 1}" + (f"%{int(max_concurrent)}" if max_concurrent else "")
    sb = [
        f"--job-name={job_name}",
        f"--array={array}",
        f"--time={time}",
        f"--nodes={nodes}",
        f"--ntasks={ntasks}",
        f"--output={log_dir}/%x_%A_%a.out",
        f"--error={log_dir}/%x_%A_%a.err",
    ]
    if partition:
        sb.append(f"--partition={partition}")
    if account:
        sb.append(f"--account={account}")
    if cpus_per_task:
        sb.append(f"--cpus-per-task={cpus_per_task}")
    if mem:
        sb.append(f"--mem={mem}")
    sb += [s if s.startswith("--") else f"--{s}" for s in extra_sbatch]
    cmd = command.replace("{run_id}", "${RUN_ID}").replace("{run}", "${RUN}")
    q = shlex.quote
    head = [
        'if [ -z "${SLURM_ARRAY_TASK_ID:-}" ]; then echo "SLURM_ARRAY_TASK_ID is not set: submit with sbatch" >&2; exit 2; fi',
        "TASK=${SLURM_ARRAY_TASK_ID}",
        f"N_RUNS={n_runs}",
        'if [ "${TASK}" -ge "${N_RUNS}" ]; then echo "array index ${TASK} outside 0-$((N_RUNS - 1))" >&2; exit 2; fi',
    ]
    if labels is None:
        head += ["RUN=${TASK}", f'RUN_ID=$(printf "{run_id_format}" "${{RUN}}")']
    else:
        list_file = path.with_suffix(".run_ids").resolve()
        if list_file == path.resolve():
            raise ValueError(f"the script {path} must not end in .run_ids (its run-id list is written there)")
        head += [
            f"RUN_LIST={q(str(list_file))}",
            'if [ "$(grep -c . "${RUN_LIST}")" -ne "${N_RUNS}" ]; then',
            '    echo "${RUN_LIST} does not hold ${N_RUNS} run ids: rewrite it with write_slurm_script" >&2; exit 2',
            "fi",
            'RUN_ID=$(sed -n "$((TASK + 1))p" "${RUN_LIST}")',
            "RUN=${RUN_ID}",
        ]
    head.append("export TASK RUN RUN_ID")
    if status_dir is None:
        body = [cmd]
    else:
        status = Path(status_dir).resolve()
        body = [
            f"STATUS_DIR={q(str(status))}",
            'mkdir -p "${STATUS_DIR}"',
            "write_status() {  # atomically replace ${STATUS_DIR}/${RUN_ID}.status with the given lines",
            '    local tmp="${STATUS_DIR}/.${RUN_ID}.status.$$"',
            '    printf "%s\\n" "run_id=${RUN_ID}" "job=${SLURM_ARRAY_JOB_ID:-}_${TASK}" "host=$(hostname)" "$@" > "${tmp}"',
            '    mv -f "${tmp}" "${STATUS_DIR}/${RUN_ID}.status"',
            "}",
            'write_status "state=running" "start=$(date -u +%FT%TZ)"',
            "set +e",
            "(",
            "set -e",
            cmd,
            ")",
            "RC=$?",
            "set -e",
            'write_status "state=finished" "exit=${RC}" "end=$(date -u +%FT%TZ)"',
        ]
    tail = (
        ['echo "[$(date -u +%FT%TZ)] done ${RUN_ID}"']
        if status_dir is None
        else ['echo "[$(date -u +%FT%TZ)] ${RUN_ID} exited ${RC}"', "exit ${RC}"]
    )
    lines = (
        ["#!/bin/bash"]
        + [f"#SBATCH {s}" for s in sb]
        + [
            "# Written by diffmrio.ctm_interface.write_slurm_script: one CTM ensemble member per array task.",
            "set -euo pipefail",
            f"mkdir -p {q(log_dir)}",
            *head,
            *setup,
            'echo "[$(date -u +%FT%TZ)] start ${RUN_ID}"',
            *body,
            *tail,
        ]
    )
    if labels is not None:
        write_text_atomic(list_file, "\n".join(labels) + "\n")
    p = write_text_atomic(path, "\n".join(lines) + "\n")
    os.chmod(p, 0o755)
    return p


# ---------------------------------------------------------------------------------------------- collection
def _run_paths(design: xr.DataArray, pattern_or_paths) -> list[Path | None]:
    n = design.sizes["run"]
    labels = [v.item() if hasattr(v, "item") else v for v in design["run"].values]
    ids = (
        [str(v) for v in design["run_id"].values]
        if "run_id" in design.coords
        else [f"run{i:04d}" for i in range(n)]
    )
    for what, vals in (("run", [str(v) for v in labels]), ("run_id", ids)):
        dup = sorted({v for v in vals if vals.count(v) > 1})
        if dup:
            raise ValueError(f"the design repeats the {what} labels {dup}: run ids are labels and must be unique")
    if isinstance(pattern_or_paths, (str, os.PathLike)):
        pat = os.fspath(pattern_or_paths)
        if "{run" not in pat:
            raise ValueError(
                f"pattern {pat!r} must contain {{run}} or {{run_id}} (e.g. 'out/{{run_id}}/CONC.nc')"
            )
        if any(ch in pat.replace("{run", "") for ch in "*?["):
            raise ValueError(
                f"pattern {pat!r} contains glob characters: patterns are not globs; use {{run}} (the design's "
                "run label) or {{run_id}} where each run's id goes, e.g. 'runs/{run_id}/CCTM_AELMO.nc'"
            )
        # {run} is the run's label in the design (its `run` coordinate), never its position
        return [Path(pat.format(run=labels[i], run_id=ids[i])) for i in range(n)]
    if isinstance(pattern_or_paths, Mapping):
        return [None if pattern_or_paths.get(labels[i]) is None else Path(pattern_or_paths[labels[i]])
                for i in range(n)]  # fmt: skip
    paths = list(pattern_or_paths)
    if len(paths) != n:
        raise ValueError(
            f"got {len(paths)} paths for {n} runs: pass one per run (None for a run without output)"
        )
    return [None if p is None else Path(p) for p in paths]


def collect_runs(
    manifest: str | os.PathLike | xr.DataArray,
    pattern_or_paths: str
    | os.PathLike
    | Sequence[str | os.PathLike | None]
    | Mapping[int, str | os.PathLike],
    *,
    receptor_masks: xr.DataArray | xr.Dataset,
    reader: Callable[[Path], xr.Dataset] | None = None,
    components: Sequence[str] | None = None,
    weights: xr.DataArray | np.ndarray | None = None,
    layer: int = 0,
    grid: GridDefinition | None = None,
    on_missing: str = "warn",
) -> xr.Dataset:
    """Ingest finished CTM runs into one training dataset (lazily, with dask).

    For each run of the manifest, the output file is opened (with dask chunks), the components are taken
    at model layer `layer` (0 = surface), averaged over all time steps, and aggregated to receptors:
    $\\text{pm25}_{n,r,c} = \\sum_{ij} m_{r,ij} w_{ij} \\bar C^{(n)}_{c,ij} / \\sum_{ij} m_{r,ij} w_{ij}$.
    Nothing is computed until the result is (`.compute()`/`.load()`): the runs stay on disk.

    **Arguments**

    - `manifest`: manifest path or design DataArray.
    - `pattern_or_paths`: a template with `{run}`/`{run_id}` (e.g. `"out/{run_id}/ACONC.nc"`; `{run}` is the
      run's label, the design's `run` coordinate, never its position), a list with one path per run
      (`None` = no output), or a mapping run label -> path.
    - `receptor_masks`: `[receptor or region, ROW, COL]` fractions (e.g. from `region_fractions_from_points`);
      a `region` dim is renamed `receptor`. A Dataset with one variable per region (a DESID region file read
      with `read_ioapi`) and singleton `TSTEP`/`LAY` dims are accepted.
    - `reader`: `path -> Dataset` with the components on `(TSTEP?, LAY?, ROW, COL)`; default
      `read_ioapi(path, chunks={})`. For GEOS-Chem use e.g. a reader that renames `lat`/`lon` to `ROW`/`COL`.
    - `components`: variable names to collect (default: the data variables of the first readable run except
      PM2.5 totals such as `PM25_TOT`, which would double-count PM2.5 when summed with the components).
    - `weights`: `(ROW, COL)` weights (population, cell area; singleton `TSTEP`/`LAY` are squeezed);
      `None` = equal weights.
    - `layer`: index along `LAY` (or `lev`) to use.
    - `grid`: the receptor masks' `GridDefinition`; runs whose I/O API grid attributes differ from it
      (projection, origin, cell size) fail. Without it only the `ROW x COL` sizes are compared.
    - `on_missing`: `"warn"` (default; missing and failed runs are listed in attrs and a `UserWarning`),
      `"raise"` (`CTMFileError` listing them) or `"ignore"` (listed in attrs only).

    **Returns** a Dataset with `scale[run, source, species(, level)]` (inputs) and
    `pm25[run, receptor, component]` (outputs, dask-backed), for the runs that could be read; attrs
    `missing_runs` (run ids without a file), `failed_runs` (`"run_id: reason"`), `n_runs_manifest`.
    """
    if on_missing not in ("warn", "raise", "ignore"):
        raise ValueError(f"on_missing must be 'warn', 'raise' or 'ignore', got {on_missing!r}")
    design = _as_design(manifest)
    paths = _run_paths(design, pattern_or_paths)
    reader = reader or partial(read_ioapi, chunks={})

    receptor_masks = as_region_masks(receptor_masks)
    if weights is not None:
        weights = as_field2d(weights)
    masks = (
        receptor_masks.rename({"region": "receptor"}) if "region" in receptor_masks.dims else receptor_masks
    )
    if "receptor" not in masks.dims or not {"ROW", "COL"} <= set(masks.dims):
        raise ValueError(f"receptor_masks needs dims (receptor or region, ROW, COL), got {masks.dims}")
    masks = masks.drop_vars([c for c in masks.coords if c != "receptor"])
    fractions = masks.rename(receptor="region").transpose("region", "ROW", "COL")
    if weights is not None and not isinstance(weights, xr.DataArray):
        weights = xr.DataArray(np.asarray(weights, float), dims=("ROW", "COL"))
    # each receptor's total mask x weight, the denominator of its mean
    norm = region_kernel(np.ones(fractions.shape[1:]), fractions.values,
                         None if weights is None else weights.transpose("ROW", "COL").values)  # fmt: skip
    if np.any(norm <= 0):
        empty = [str(r) for r, v in zip(masks["receptor"].values, norm, strict=True) if v <= 0]
        raise ValueError(f"receptors {empty} have zero total mask weight: drop them or fix the masks/weights")
    ids = (
        [str(v) for v in design["run_id"].values]
        if "run_id" in design.coords
        else [f"run{i:04d}" for i in range(len(paths))]
    )

    missing, failed, good, outs = [], [], [], []
    comps = list(components) if components is not None else None
    for i, p in enumerate(paths):
        if p is None or not p.exists():
            missing.append(ids[i])
            continue
        try:
            ds = reader(p)
            if comps is None:
                comps = default_components([str(v) for v in ds.data_vars if v != "TFLAG"])
            absent = [c for c in comps if c not in ds.data_vars]
            if absent:
                raise CTMFileError(p, f"components {absent} not in the file (it has {list(ds.data_vars)})")
            if (ds.sizes.get("ROW"), ds.sizes.get("COL")) != (masks.sizes["ROW"], masks.sizes["COL"]):
                raise CTMFileError(
                    p,
                    f"grid does not match the receptor masks: ROW x COL = {ds.sizes.get('ROW')} x "
                    f"{ds.sizes.get('COL')}, masks {masks.sizes['ROW']} x {masks.sizes['COL']}",
                )
            if grid is not None and "XORIG" in ds.attrs:
                diff = grid.mismatch(
                    grid_from_ioapi_attrs(ds.attrs, ncols=ds.sizes["COL"], nrows=ds.sizes["ROW"])
                )
                if diff:
                    raise CTMFileError(p, "grid does not match the receptor masks' grid: " + "; ".join(diff))
            fields = []
            for c in comps:
                da = ds[c].astype(np.float64)  # average float32 files in float64
                for zdim in ("LAY", "lev"):
                    if zdim in da.dims:
                        da = da.isel({zdim: layer})
                for tdim in ("TSTEP", "time"):
                    if tdim in da.dims:
                        da = da.mean(tdim)
                extra = [d for d in da.dims if d not in ("ROW", "COL")]
                if extra:
                    raise CTMFileError(
                        p, f"component {c} has unexpected dims {extra} after layer/time reduction"
                    )
                fields.append(da.drop_vars(list(da.coords)).astype(np.float64))
            stacked = xr.concat(fields, dim="component").assign_coords(component=comps)
            means = aggregate_to_regions(stacked, fractions, weights=weights, how="mean")
            outs.append(means.rename(region="receptor"))
            good.append(i)
        except (CTMFileError, OSError, ValueError, KeyError, RuntimeError) as e:
            failed.append(f"{ids[i]}: {e}")
    problems = len(missing) + len(failed)
    if problems:
        msg = f"{problems} of {len(paths)} runs unusable - missing: {missing or 'none'}; failed: " + (
            "; ".join(failed) if failed else "none"
        )
        if on_missing == "raise":
            raise CTMFileError(design.attrs.get("manifest"), msg)
        if on_missing == "warn":
            warnings.warn(msg, UserWarning, stacklevel=2)
    if not outs:
        raise CTMFileError(
            design.attrs.get("manifest"), f"no run could be read ({problems} missing or failed)"
        )
    pm25 = xr.concat(outs, dim="run").assign_coords(run=design["run"].values[good])
    pm25.attrs = {"long_name": "receptor-mean surface concentration", "aggregation": "mask x weight mean"}
    scale = design.isel(run=good)
    out = xr.Dataset({"scale": scale, "pm25": pm25.transpose("run", "receptor", "component")})
    out.attrs = {
        "missing_runs": list(missing),
        "failed_runs": list(failed),
        "n_runs_manifest": int(len(paths)),
        "method": str(design.attrs.get("method", "")),
        "seed": int(design.attrs.get("seed", -1)),
    }
    return out


def design_table(design: xr.DataArray) -> pd.DataFrame:
    """The design as a wide table: one row per run, one column per factor (`source/species[/level]`)."""
    flat = design.values.reshape(design.sizes["run"], -1)
    labels = [
        "/".join(t)
        for t in np.array(np.meshgrid(*[design[d].values for d in design.dims[1:]], indexing="ij"))
        .reshape(len(design.dims) - 1, -1)
        .T
    ]
    df = pd.DataFrame(flat, columns=labels)
    df.index = design["run_id"].values if "run_id" in design.coords else design["run"].values
    return df
