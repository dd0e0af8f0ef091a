"""What an ensemble's fidelity scores leave out (issue 13, the MLP-ensemble rows of docs/emulators.md).

For the saved ensembles in output folders of `experiments.emulator_fidelity`, it prints each member's own
worst-receptor PM2.5 NME next to the ensemble's, and the component x species pairs behind the spurious
sensitivity (the largest ratios over the structural zeros, at the held-out adjoint states, as the experiment
scores them).

Usage: `python -m experiments.ensemble_breakdown DIR [DIR ...] [--top 4] [--n-adj 30] [--n-adj-test 10]`. Each
`DIR/<ctm>_<family>.eqx` that holds an `Ensemble` is read with the held-out runs and adjoint states of its run
folder `DIR/folder_<ctm>` (split as the experiment splits it: pass the `--n-adj`/`--n-adj-test` it ran with).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import jax
import numpy as np
import xarray as xr

import surrogate as sg

jax.config.update("jax_enable_x64", True)


def _worst_nme(model, test: xr.Dataset) -> float:
    return float(sg.evaluate(model, test)["NME"].sel(component="PM25").max())


def breakdown(model: sg.Ensemble, test: xr.Dataset, adj: xr.Dataset, top: int = 4) -> dict:
    """The ensemble's and each member's worst-receptor PM2.5 NME on `test`, and the `top` largest spurious
    sensitivities of the ensemble (its member mean, the emulator that is scored) at the states of `adj`, as
    `[(component, species, ratio), ...]`, largest first."""
    if not isinstance(model, sg.Ensemble):
        raise TypeError(f"breakdown needs a surrogate.Ensemble, got {type(model).__name__}")
    sp = sg.gradient_agreement(model, adj)["spurious"]
    flat = sp.values.ravel()
    order = np.argsort(-flat, kind="stable")[:top]
    comps, species = sp["component"].values, sp["species"].values
    n_s = len(species)
    return {
        "nme": _worst_nme(model, test),
        "member_nme": [_worst_nme(model.member(i), test) for i in range(model.n_members)],
        "spurious_top": [(str(comps[k // n_s]), str(species[k % n_s]), float(flat[k])) for k in order],
    }


def main(argv=None) -> dict:
    from experiments.emulator_fidelity import read_folder

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("dirs", nargs="+", type=Path)
    ap.add_argument("--top", type=int, default=4)
    ap.add_argument("--n-adj", type=int, default=30)
    ap.add_argument("--n-adj-test", type=int, default=10)
    args = ap.parse_args(argv)
    out = {}
    for d in args.dirs:
        for path in sorted(d.glob("*.eqx")):
            model = sg.load(path)
            if not isinstance(model, sg.Ensemble):
                continue
            ctm = path.stem.split("_")[0]
            toml = d / f"folder_{ctm}" / "runs.toml"
            if not toml.exists():
                raise FileNotFoundError(
                    f"{path}: no run folder {toml} next to it (the experiment's --out DIR)"
                )
            _, test, adj = read_folder(toml, args)
            r = breakdown(model, test, adj, args.top)
            out[str(path)] = r
            print(f"{path}: worst-receptor NME {100 * r['nme']:.2f} % (members "
                  f"{', '.join(f'{100 * v:.2f}' for v in r['member_nme'])} %); largest spurious "
                  f"{json.dumps([(c, s, round(100 * v, 2)) for c, s, v in r['spurious_top']])} (%)", flush=True)  # fmt: skip
    return out


if __name__ == "__main__":
    main()
