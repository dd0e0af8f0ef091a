"""Command-line interface for CTM run folders (docs/run_folders.md): `diffmrio runs check|collect`,
`diffmrio emulator fit|evaluate` and `diffmrio ctm run`."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def add_commands(sub: argparse._SubParsersAction) -> None:
    """Register the `runs`, `emulator` and `ctm` subcommands on the main parser's subparsers."""
    runs = sub.add_parser("runs", help="check or collect a CTM run folder described by runs.toml")
    rsub = runs.add_subparsers(dest="runs_command", required=True)
    chk = rsub.add_parser("check", help="what the folder holds, the envelope, components, and what is missing or suspect")
    chk.add_argument("runs_toml", type=Path)
    chk.add_argument("--json", type=Path, default=None, help="also write the report as JSON")
    chk.add_argument("--force", action="store_true", help="replace --json if it exists")
    col = rsub.add_parser("collect", help="read the folder into one run set (netCDF)")
    col.add_argument("runs_toml", type=Path)
    col.add_argument("--out", type=Path, required=True, help="output netCDF (e.g. runs.nc)")
    col.add_argument("--force", action="store_true", help="replace --out if it exists")

    emu = sub.add_parser("emulator", help="fit or evaluate an emulator on a run folder")
    esub = emu.add_subparsers(dest="emulator_command", required=True)
    fit = esub.add_parser("fit", help="fit an emulator on the train split (adjoints used when present)")
    fit.add_argument("runs_toml", type=Path)
    fit.add_argument("--out", type=Path, required=True, help="emulator file (e.g. model.eqx)")
    fit.add_argument("--family", choices=("linear", "polynomial", "mlp", "ensemble", "structured"), default="linear",
                     help="linear source-receptor matrix (default), polynomial (pf-ERSM style, degree 2), mlp, "
                     "ensemble (3 MLPs: `propose` scores their disagreement), structured")
    fit.add_argument("--split", default="train", help="split to train on (default train)")
    fit.add_argument("--steps", type=int, default=2000,
                     help="optimisation steps (mlp, ensemble, structured; default 2000)")
    fit.add_argument("--seed", type=int, default=0,
                     help="seed of the initial weights and the validation split (default 0)")
    fit.add_argument("--force", action="store_true", help="replace --out if it exists")
    ev = esub.add_parser("evaluate", help="errors on a split (and gradient agreement with the adjoints)",
                         description="Print (as JSON) the emulator's errors on a split of the folder: NMB, NME, R "
                         "and MaxNE of PM25 per receptor, as fractions (0.02 = 2%), and with adjoints the "
                         "agreement of its gradients with them.")
    ev.add_argument("model", type=Path, help="emulator file written by `diffmrio emulator fit`")
    ev.add_argument("runs_toml", type=Path)
    ev.add_argument("--split", default="test", help="split to evaluate on (default test)")
    ev.add_argument("--json", type=Path, default=None, help="write the metrics as JSON")
    ev.add_argument("--force", action="store_true", help="replace --json if it exists")

    prop = esub.add_parser("propose", help="propose the next batch of runs (design CSV for the next array job)")
    prop.add_argument("model", type=Path, help="emulator fitted to the runs so far (an ensemble for disagreement)")
    prop.add_argument("runs_toml", type=Path, help="runs.toml of the folder the model was fitted on")
    prop.add_argument("--n", type=int, default=20, help="number of runs to propose")
    prop.add_argument("--out", type=Path, default=Path("design_next.csv"), help="wide design CSV to write (new file)")
    prop.add_argument("--seed", type=int, default=0, help="seed of the candidate design (default 0)")
    prop.add_argument("--candidates", type=int, default=None,
                      help="Latin-hypercube candidates scored (default max(2000, 50 n))")

    ctm = sub.add_parser("ctm", help="the reference CTM")
    csub = ctm.add_subparsers(dest="ctm_command", required=True)
    run = csub.add_parser("run", help="compute one run id of a reference-CTM run folder (written atomically)")
    run.add_argument("runs_toml", type=Path)
    run.add_argument("--run", required=True, dest="run_id", help="the run id (a label from the design table)")
    run.add_argument("--adjoint", action="store_true", help="compute the adjoint state with this id instead")


def _refuse_existing(path: Path | None, force: bool) -> None:
    if path is not None and path.is_dir():  # --force must not try to replace a folder by a file
        raise FileExistsError(f"{path} is a folder: give a file name inside it, e.g. {path / 'out.nc'}")
    if path is not None and path.exists() and not force:
        raise FileExistsError(f"{path} exists: choose another path or pass --force to replace it")


def run_command(args: argparse.Namespace) -> int | None:
    """Run a command registered by `add_commands`; `None` when `args.command` is not one of them."""
    from ctm_interface import CTMFileError

    handlers = {"runs": _runs, "emulator": _emulator, "ctm": _ctm}
    if args.command not in handlers:
        return None
    try:
        for attr in ("out", "json"):
            _refuse_existing(getattr(args, attr, None), getattr(args, "force", False))
        return handlers[args.command](args)
    except (CTMFileError, ValueError, OSError) as e:  # OSError: a missing, read-only or full destination
        print(f"diffmrio {args.command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # every output is written whole (atomically) at the end
        print(f"diffmrio {args.command}: interrupted; no output file was written or changed", file=sys.stderr)
        return 130


def _ctm(args) -> int:
    from ctm_interface.reference import run_one

    path = run_one(args.runs_toml, args.run_id, adjoint=args.adjoint)
    print(path)
    return 0


def _runs(args) -> int:
    import ctm_interface as ci

    if args.runs_command == "check":
        rep = ci.check_run_folder(args.runs_toml)
        print(_format_check(rep))
        if args.json:
            from ctm_interface._atomic import write_text_atomic

            write_text_atomic(args.json, _json_text(rep))
        return 1 if rep["problems"] else 0
    folder = ci.read_run_folder(args.runs_toml)
    ds = folder.runs
    if folder.adjoints is not None:
        adj = folder.adjoints.rename(run="state", run_id="state_id", scale="state_scale",
                                     sensitivity="state_sensitivity")  # fmt: skip
        ds = ds.assign({k: adj[k] for k in adj.data_vars})
        ds.attrs.update({f"adjoint_{k}" if not k.startswith("adjoint") else k: v for k, v in adj.attrs.items()})
    from ctm_interface._atomic import atomic_path

    with atomic_path(args.out) as tmp:
        ds.to_netcdf(tmp)
    print(args.out)
    return 0


def _format_check(rep: dict) -> str:
    lines = [
        f"run folder {rep['runs_toml']}",
        f"  runs: {rep['n_runs_read']} of {rep['n_runs_design']} read; splits {rep['splits']}",
        f"  factors: {len(rep['sources'])} regions x {len(rep['species'])} species; design range "
        f"[{rep['envelope']['min']:.4g}, {rep['envelope']['max']:.4g}]"
        + (f", box [{rep['envelope']['low']}, {rep['envelope']['high']}]" if rep["envelope"]["low"] is not None else ", no box given"),
        f"  components ({rep['vocabulary']}): {rep['components']}",
        f"  time records per run: {rep['records']}; population weighting: {'yes' if rep['population'] else 'no'}",
        f"  adjoint states: {rep['adjoint_states']}",
    ]
    if rep["problems"]:
        lines.append(f"  PROBLEMS ({len(rep['problems'])}):")
        lines += [f"    - {p}" for p in rep["problems"]]
    else:
        lines.append("  no problems found")
    return "\n".join(lines)


def _emulator(args) -> int:
    if args.emulator_command == "fit":
        return _fit(args)
    if args.emulator_command == "propose":
        return _propose(args)
    return _evaluate(args)


def _propose(args) -> int:
    """`diffmrio emulator propose MODEL RUNS_TOML --n N --out CSV`: a wide design table (`run` + one column per
    `region:species`, plus `adjoint_rank` for ensembles: 0 = where an adjoint run pays most) with run ids
    continuing after the folder's numeric ids; never overwrites a file."""
    import jax.random as jr
    import numpy as np

    import ctm_interface as ci
    import surrogate as sg
    from ctm_interface._atomic import write_text_atomic

    if args.out.exists():
        raise FileExistsError(f"{args.out} exists: pass another --out (proposals never overwrite a file)")
    if args.n < 1:
        raise ValueError(f"--n must be >= 1 (the number of runs to propose), got {args.n}")
    if args.candidates is not None and args.candidates < args.n:
        raise ValueError(f"--candidates ({args.candidates}) must be at least --n ({args.n}): the proposals are "
                         "picked from the candidates")
    model = sg.load(args.model)
    folder = ci.read_run_folder(args.runs_toml)
    prop = sg.propose(model, folder.runs, args.n, key=jr.PRNGKey(args.seed), n_candidates=args.candidates)
    ids = [str(r) for r in folder.runs["run"].values]
    numeric = [int(r) for r in ids if r.lstrip("-").isdigit()]
    start = max(numeric) + 1 if numeric else len(ids)
    x = prop["scale"].transpose("run", "source", "species").values
    cols = [f"{g}:{k}" for g in prop["source"].values for k in prop["species"].values]
    lines = [",".join(["run", *cols] + (["adjoint_rank"] if "adjoint_rank" in prop else []))]
    for i in range(args.n):
        row = [str(start + i), *(f"{v:.6g}" for v in np.ravel(x[i]))]
        if "adjoint_rank" in prop:
            row.append(str(int(prop["adjoint_rank"].values[i])))
        lines.append(",".join(row))
    write_text_atomic(args.out, "\n".join(lines) + "\n")
    lo, hi = prop["low"].values, prop["high"].values
    box = (f"[design] low/high of {args.runs_toml}" if "low" in folder.runs["scale"].coords else
           f"the emulator's envelope, the training runs' range widened by the fit, as {args.runs_toml} has "
           "no [design] low/high; set them to fix the box")  # fmt: skip
    print(f"{args.out}: {args.n} runs ({prop.attrs['criterion']}), ids {start}-{start + args.n - 1}, factors in "
          f"[{lo.min():.4g}, {hi.max():.4g}] ({box})")
    return 0


def _fit(args) -> int:
    import jax.random as jr
    import numpy as np

    import ctm_interface as ci
    import surrogate as sg

    folder = ci.read_run_folder(args.runs_toml)
    train = folder.split(args.split)
    labels = sg.EmulatorLabels.from_runs(train)
    key = jr.PRNGKey(args.seed)
    has_g = "sensitivity" in train and bool(np.isfinite(train["sensitivity"].values).any())
    kw: dict = {"progress": False}
    if args.family == "linear":
        model = sg.LinearEmulator(labels)
    elif args.family == "polynomial":
        model = sg.PolynomialEmulator(labels, degree=2)
    elif args.family == "mlp":
        model = sg.MLPEmulator(labels, key=key)
        kw.update(key=key, method=sg.Adam(steps=args.steps, sobolev_weight=0.1 if has_g else 0.0))
    elif args.family == "structured":
        model = sg.StructuredEmulator(labels, key=key)
        kw.update(key=key, method=sg.Adam(steps=args.steps, sobolev_weight=0.1 if has_g else 0.0))
    else:
        model = sg.Ensemble(lambda k: sg.MLPEmulator(labels, key=k), 3, key=key)
        kw.update(key=key, method=sg.Adam(steps=args.steps, sobolev_weight=0.1 if has_g else 0.0))
    model = sg.fit(model, train, **kw)
    provenance = {
        "runs_toml": str(Path(args.runs_toml).resolve()),
        "split": args.split,
        "n_runs": int(train.sizes["run"]),
        "run_ids": [str(r) for r in train["run"].values],
        "family": args.family,
        "adjoints_used": bool(has_g and args.family in ("mlp", "ensemble", "structured")),
        **{k: (v if isinstance(v, (int, float, str)) else str(v)) for k, v in folder.runs.attrs.items()},
    }
    sg.save(args.out, model, provenance=provenance)
    print(args.out)
    return 0


def _evaluate(args) -> int:
    import numpy as np

    import ctm_interface as ci
    import surrogate as sg

    model = sg.load(args.model)
    meta = sg.load_metadata(args.model)
    folder = ci.read_run_folder(args.runs_toml)
    prov = meta.get("provenance") or {}
    voc = folder.runs.attrs.get("component_definitions")
    trained = prov.get("component_definitions")
    if trained is not None and _definitions(trained) != _definitions(voc):  # the same table in another order is fine
        raise ValueError(f"{args.model} was trained on components {trained} but "
                         f"{args.runs_toml} defines {voc}: evaluate on runs with the same component definitions")
    runs = _in_label_order(folder.split(args.split), model.labels)
    _warn_in_sample(args, prov, runs)
    ev = sg.evaluate(model, runs)
    out = {
        "model": str(args.model),
        "runs_toml": str(args.runs_toml),
        "split": args.split,
        "n_runs": int(runs.sizes["run"]),
        "n_outside_envelope": int(ev["n_outside_envelope"]),
        "pm25": {k: {str(r): float(v) for r, v in zip(ev["receptor"].values, ev[k].sel(component="PM25").values, strict=True)}
                 for k in ("NMB", "NME", "R", "MaxNE")},
        "mean_abs_NMB": float(np.nanmean(np.abs(ev["NMB"].values))),
        "mean_NME": float(np.nanmean(ev["NME"].values)),
    }  # fmt: skip
    if folder.adjoints is not None and "cost_weights" in folder.adjoints:
        ga = sg.gradient_agreement(model, _in_label_order(folder.adjoints, model.labels))
        out["gradient_agreement"] = {k: float(ga[f"source_{k}_pooled"]) for k in ("r2", "slope", "r", "nrmse")}
        # the agreement is at the adjoint states, whatever --split says: how many of them the model was trained on
        # (same run id and factors as a training run) tells a held-out check from an in-sample one
        out["adjoint_states"] = int(folder.adjoints.sizes["run"])
        out["adjoint_states_in_training_runs"] = _states_in_training(folder, prov.get("run_ids"))
        out["gradient_agreement_per_species"] = {
            k: {str(sp): float(v) for sp, v in zip(ga["species"].values, ga[f"source_species_{k}"].values, strict=True)}
            for k in ("r2", "slope", "share")
        }
    if "spurious_max" in ev:
        out["spurious_max"] = float(ev["spurious_max"])
    text = _json_text(out)
    print(text)
    if args.json:
        from ctm_interface._atomic import write_text_atomic

        write_text_atomic(args.json, text)
    return 0


def _warn_in_sample(args, prov: dict, runs) -> None:
    """Warn when the evaluated runs are runs of the same folder the emulator was trained on (errors in-sample)."""
    import warnings

    trained = {str(r) for r in prov.get("run_ids") or ()}
    same_folder = prov.get("runs_toml") == str(Path(args.runs_toml).resolve())
    seen = [str(r) for r in runs["run"].values if str(r) in trained]
    if same_folder and seen:
        warnings.warn(
            f"{len(seen)} of the {runs.sizes['run']} runs of split {args.split!r} are runs {args.model} was trained on "
            f"(split {prov.get('split')!r} of this folder): their errors are in-sample, not a validation; evaluate "
            "on runs it has not seen (e.g. --split test)", UserWarning, stacklevel=2)


def _states_in_training(folder, run_ids) -> int | None:
    """How many adjoint states are training runs of the model (run id in its provenance's `run_ids` and the same
    factors in the folder's design); None when the model file does not list its training runs."""
    import numpy as np

    if run_ids is None:
        return None
    runs = folder.runs["scale"]
    position = {str(r): i for i, r in enumerate(runs["run"].values)}
    adj = folder.adjoints["scale"].transpose("run", *runs.dims[1:])
    adj = adj.sel({d: runs[d].values for d in runs.dims[1:]})
    trained = {str(r) for r in run_ids}
    return sum(
        1 for i, sid in enumerate(str(r) for r in adj["run"].values)
        if sid in trained and sid in position
        and np.allclose(adj.values[i], runs.values[position[sid]], rtol=1e-9, atol=0)
    )


def _json_text(obj) -> str:
    """Strict JSON (what jq, JavaScript and pandas read): a NaN or infinite metric (undefined for this folder,
    e.g. `spurious_max` without structural zeros) is written as null, not as the non-standard `NaN`."""
    import math

    def clean(v):
        if isinstance(v, dict):
            return {k: clean(e) for k, e in v.items()}
        if isinstance(v, list | tuple):
            return [clean(e) for e in v]
        if isinstance(v, float) and not math.isfinite(v):
            return None
        return v

    return json.dumps(clean(obj), indent=1, allow_nan=False)


def _definitions(text):
    """Component definitions (a JSON object) as a dict, so that their order does not matter."""
    try:
        return json.loads(text) if isinstance(text, str) else text
    except ValueError:
        return text


def _in_label_order(ds, labels):
    """`ds` with each labelled dimension in the emulator's order, when it holds the same labels in another order
    (a wide design table or a components table written in another order); other differences are left for
    `surrogate` to refuse."""
    for dims, coords in ((labels.input_dims, labels.input_coords), (labels.output_dims, labels.output_coords)):
        for dim, want in zip(dims, coords, strict=True):
            if dim not in ds.dims or dim == "run":
                continue
            have = [str(v) for v in ds[dim].values]
            want = [str(v) for v in want]
            if have != want and sorted(have) == sorted(want):
                ds = ds.isel({dim: [have.index(w) for w in want]})
    return ds
