"""Emulator fidelity on two stand-in CTMs of different construction (issue 13).

Every emulator family -- linear source-receptor matrix, pf-ERSM-style polynomial (D=2), MLP ensemble,
physically structured emulator -- on the reference CTM (`ctm_interface.reference`, 6 regions x 7 species) and
on the spectral CTM (`ctm_interface.spectral`, 8 regions x 6 species, built differently), at a budget of
forward runs (base case + Latin hypercube over 0-2x) and adjoint runs of population-weighted PM2.5 (at the
first training states, for the Sobolev term of the neural and structured emulators). Scored on held-out runs
(an independent Latin hypercube) and held-out adjoint states:

- worst-receptor PM2.5 NME and MaxNE (max over receptors);
- per-species gradient R^2 (the smallest among species carrying >= 5 % of the adjoint's sum of squares), the
  range of their slopes, and the pooled R^2;
- spurious sensitivity (largest over the structural zeros, relative to the largest real sensitivity).

Learning curve: held-out NME and per-species gradient R^2 against the number of forward runs, for a
one-shot Latin hypercube of each size against adaptive batches proposed by `surrogate.propose` from the
disagreement of a bootstrap committee of polynomial emulators (cheap, closed form).

Targets (issue 13): worst-receptor NME <= 2 %, MaxNE <= 10 %, per-species R^2 >= 0.9, slope 0.9-1.1,
spurious <= 2 %.

Usage: `python -m experiments.emulator_fidelity --out DIR [--ctms reference,spectral] [--n-train 150]
[--n-test 40] [--n-adj 30] [--n-adj-test 10] [--members 3] [--steps 1500] [--families ...]
[--curve 50,100,150] [--curve-family polynomial] [--curve-ctms spectral]`. CTM runs are cached in DIR.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import jax
import jax.random as jr
import numpy as np
import xarray as xr

import surrogate as sg
from diffmrio._io import write_netcdf_atomic, write_text_atomic

jax.config.update("jax_enable_x64", True)

FAMILIES = ("linear", "polynomial", "mlp", "structured")
TARGETS = {"nme": 0.02, "maxne": 0.10, "r2": 0.9, "slope": (0.9, 1.1), "spurious": 0.02}


class Case:
    """A CTM at source level: `run(x[n, source, species]) -> y[n, component, receptor]`, `adjoint(x, w)`."""

    name: str
    regions: tuple
    species: tuple
    components: tuple
    cost_w: np.ndarray  # [component, receptor]: population-weighted PM2.5
    config: str = ""  # what the cached runs depend on besides the design

    def run(self, x):
        raise NotImplementedError

    def adjoint(self, x):
        raise NotImplementedError


class ReferenceCase(Case):
    name = "reference"

    def __init__(self):
        from experiments.adjoint_replication import World

        self.world = World()
        self.regions, self.species, self.components = self.world.regions, self.world.species, self.world.components
        self.cost_w = self.world.receptor_cost_w

    def run(self, x):
        return np.transpose(self.world.receptors(self.world.run(x, progress=False)), (0, 2, 1))

    def adjoint(self, x):
        return self.world.adjoint(x)[1]


class SpectralCase(Case):
    name = "spectral"

    def __init__(self, n_days: float = 6.0):
        from ctm_interface.spectral import SpectralCTM, SpectralWorld

        self.world = SpectralWorld.default(SpectralCTM.default(n_days=n_days))
        self.regions, self.species, self.components = self.world.regions, self.world.species, self.world.components
        self.config = f"spectral n_days={n_days}"
        self.cost_w = self.world.pwpm_weights() * sg.EmulatorLabels(
            ("source", "species"), (self.regions, self.species), "1",
            ("component", "receptor"), (self.components, self.regions), "ug m-3",
        ).component_weights()[:, None]  # fmt: skip

    def run(self, x):
        return self.world.run(x)

    def adjoint(self, x):
        return self.world.adjoint(x, self.cost_w)


def lhs(case: Case, n: int, seed: int, include_base: bool) -> np.ndarray:
    from ctm_interface import latin_hypercube_design

    d = latin_hypercube_design(n, case.regions, case.species, low=0.0, high=2.0, seed=seed, include_base=include_base)
    return np.asarray(d.transpose("run", "source", "species").values)


def run_set(case: Case, x, y, g=None) -> xr.Dataset:
    shape = (len(case.regions), len(case.species))
    ds = xr.Dataset(
        {"scale": (("run", "source", "species"), x, {"units": "1"}),
         "pm25": (("run", "receptor", "component"), np.transpose(y, (0, 2, 1)), {"units": "ug m-3"})},
        coords={"run": np.arange(len(x)), "source": list(case.regions), "species": list(case.species),
                "receptor": list(case.regions), "component": list(case.components)},
    ).assign_coords(low=(("source", "species"), np.zeros(shape)), high=(("source", "species"), np.full(shape, 2.0)))  # fmt: skip
    if g is not None:
        ds["sensitivity"] = (("run", "source", "species"), g)
        ds["cost_weights"] = (("component", "receptor"), case.cost_w)
    return ds


def ctm_data(case: Case, out: Path, n_train: int, n_test: int, n_adj: int, n_adj_test: int) -> xr.Dataset:
    cache = out / f"ctm_{case.name}.nc"
    x_train = lhs(case, n_train - 1, 11, include_base=True)
    if cache.exists():
        ds = xr.load_dataset(cache)
        if (ds.sizes.get("train") == n_train and ds.sizes.get("test") == n_test and ds.sizes.get("adj") == n_adj
                and ds.sizes.get("adj_test") == n_adj_test and np.allclose(ds["x_train"].values, x_train)
                and ds.attrs.get("config", "") == case.config):  # fmt: skip
            return ds
    x_test = lhs(case, n_test, 22, include_base=False)
    x_adj_test = lhs(case, n_adj_test, 33, include_base=False)
    t0 = time.time()
    y_train, y_test = case.run(x_train), case.run(x_test)
    t1 = time.time()
    g_train = case.adjoint(x_train[1 : 1 + n_adj])
    g_test = case.adjoint(x_adj_test)
    t2 = time.time()
    ds = xr.Dataset(
        {"x_train": (("train", "source", "species"), x_train), "y_train": (("train", "component", "receptor"), y_train),
         "x_test": (("test", "source", "species"), x_test), "y_test": (("test", "component", "receptor"), y_test),
         "g_train": (("adj", "source", "species"), g_train),
         "x_adj_test": (("adj_test", "source", "species"), x_adj_test),
         "g_test": (("adj_test", "source", "species"), g_test)},
        attrs={"config": case.config, "forward_seconds_per_run": (t1 - t0) / (n_train + n_test),
               "adjoint_seconds_per_run": (t2 - t1) / max(n_adj + n_adj_test, 1)},
    )  # fmt: skip
    write_netcdf_atomic(ds, cache)
    return ds


def make_model(family: str, labels, key, members: int):
    if family == "linear":
        return sg.LinearEmulator(labels)
    if family == "polynomial":
        return sg.PolynomialEmulator(labels, degree=2)
    if family == "mlp":
        return sg.Ensemble(lambda k: sg.MLPEmulator(labels, width=32, depth=2, key=k), members, key=key)
    if family == "structured":
        return sg.StructuredEmulator(labels, key=key)
    raise ValueError(f"unknown family {family!r}; choose from {FAMILIES}")


def fit_family(family, train, key, args):
    labels = sg.EmulatorLabels.from_runs(train)
    model = make_model(family, labels, key, args.members)
    if family in ("linear", "polynomial"):
        return sg.fit(model, train.drop_vars(["sensitivity", "cost_weights"], errors="ignore"))
    sob = args.sobolev if "sensitivity" in train else 0.0
    method = sg.Adam(steps=args.steps, learning_rate=3e-3, validation_fraction=0.1, patience=1500, sobolev_weight=sob)
    return sg.fit(model, train, method, key=jr.fold_in(key, 1), progress=False)


def score(model, case: Case, test: xr.Dataset, adj: xr.Dataset) -> dict:
    ev = sg.evaluate(model, test)
    ga = sg.gradient_agreement(model, adj)
    share = ga["source_species_share"].values
    major = share >= 0.05
    slopes = ga["source_species_slope"].values[major]
    return {
        "nme": float(ev["NME"].sel(component="PM25").max()),
        "maxne": float(ev["MaxNE"].sel(component="PM25").max()),
        "r2_pooled": float(ga["source_r2_pooled"]),
        "r2_species_min": float(ga["source_species_r2_min_major"]),
        "slope_min": float(slopes.min()),
        "slope_max": float(slopes.max()),
        "spurious": float(ga["spurious_max"]),
        "species_r2": {s: float(v) for s, v in zip(case.species, ga["source_species_r2"].values, strict=True)},
        "species_share": {s: float(v) for s, v in zip(case.species, share, strict=True)},
        "worst_component_nme": {c: float(ev["NME"].sel(component=c).max()) for c in case.components},
    }


def committee(train: xr.Dataset, n: int = 5, seed: int = 0) -> sg.Ensemble:
    """Bootstrap committee of polynomial emulators (the disagreement for `propose`)."""
    rng = np.random.default_rng(seed)
    labels = sg.EmulatorLabels.from_runs(train)
    ms = []
    for _ in range(n):
        idx = rng.choice(train.sizes["run"], train.sizes["run"], replace=True)
        ms.append(sg.fit(sg.PolynomialEmulator(labels, degree=2), train.isel(run=np.unique(idx))))
    return sg.Ensemble(ms)


def learning_curve(case: Case, out: Path, sizes, family: str, test, adj, args) -> list[dict]:
    cache = out / f"curve_{case.name}.nc"
    rows = []
    xs, ys = {}, {}
    if cache.exists():
        c = xr.load_dataset(cache)
        xs = {k: c[k].values for k in c.data_vars if k.startswith("x_")}
        ys = {k: c[k].values for k in c.data_vars if k.startswith("y_")}
    key = jr.PRNGKey(7)
    for n in sizes:  # one-shot Latin hypercubes of each size
        k = f"x_lhs{n}"
        if k not in xs:
            xs[k] = lhs(case, n - 1, 100 + n, include_base=True)
            ys[f"y_lhs{n}"] = case.run(xs[k])
        m = fit_family(family, run_set(case, xs[k], ys[f"y_lhs{n}"]), key, args)
        rows.append({"design": "one-shot LHS", "n": n, **score(m, case, test, adj)})
    x_ad, y_ad = xs[f"x_lhs{sizes[0]}"], ys[f"y_lhs{sizes[0]}"]
    rows.append({**rows[0], "design": "adaptive"})
    for step, n in enumerate(sizes[1:]):
        k = f"x_ad{n}"
        if k not in xs:
            com = committee(run_set(case, x_ad, y_ad))
            prop = sg.propose(com, run_set(case, x_ad, y_ad), n - len(x_ad), key=jr.fold_in(key, step))
            xs[k] = prop["scale"].values
            ys[f"y_ad{n}"] = case.run(xs[k])
        x_ad = np.concatenate([x_ad, xs[k]])
        y_ad = np.concatenate([y_ad, ys[f"y_ad{n}"]])
        m = fit_family(family, run_set(case, x_ad, y_ad), key, args)
        rows.append({"design": "adaptive", "n": n, **score(m, case, test, adj)})
    dv = {k: (tuple(f"{k}_{d}" for d in ("run", "source", "species")), v) for k, v in xs.items()}
    dv.update({k: (tuple(f"{k}_{d}" for d in ("run", "component", "receptor")), v) for k, v in ys.items()})
    write_netcdf_atomic(xr.Dataset(dv), cache)
    return rows


def _pct(v):
    return f"{100 * v:.2f} %"


def table(results: dict) -> str:
    lines = ["| CTM | emulator | worst-receptor NME | MaxNE | per-species grad R^2 (min, major species) | "
             "slopes (major species) | pooled R^2 | spurious | fit s |", "|---|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for ctm, fams in results.items():
        for fam, r in fams.items():
            lines.append(
                f"| {ctm} | {fam} | {_pct(r['nme'])} | {_pct(r['maxne'])} | {r['r2_species_min']:.3f} | "
                f"{r['slope_min']:.2f}-{r['slope_max']:.2f} | {r['r2_pooled']:.3f} | {_pct(r['spurious'])} | "
                f"{r['fit_seconds']:.0f} |"
            )
    return "\n".join(lines)


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", required=True, type=Path)
    ap.add_argument("--ctms", default="reference,spectral")
    ap.add_argument("--families", default=",".join(FAMILIES))
    ap.add_argument("--n-train", type=int, default=150, help="forward runs (base case + LHS)")
    ap.add_argument("--n-test", type=int, default=40)
    ap.add_argument("--n-adj", type=int, default=30, help="adjoint runs at training states (Sobolev term)")
    ap.add_argument("--n-adj-test", type=int, default=10)
    ap.add_argument("--members", type=int, default=3)
    ap.add_argument("--steps", type=int, default=1500)
    ap.add_argument("--sobolev", type=float, default=0.01)
    ap.add_argument("--curve", default="50,100,150", help="learning-curve sizes ('' = none)")
    ap.add_argument("--curve-family", default="polynomial")
    ap.add_argument("--curve-ctms", default="spectral")
    ap.add_argument("--spectral-days", type=float, default=6.0, help="days simulated per season (spectral CTM)")
    args = ap.parse_args(argv)
    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    cases = {"reference": ReferenceCase, "spectral": SpectralCase}
    results, curves, meta = {}, {}, {}
    for name in [c for c in args.ctms.split(",") if c]:
        case = cases[name](args.spectral_days) if name == "spectral" else cases[name]()
        data = ctm_data(case, out, args.n_train, args.n_test, args.n_adj, args.n_adj_test)
        meta[name] = dict(data.attrs)
        g = np.full(data["x_train"].shape, np.nan)
        g[1 : 1 + args.n_adj] = data["g_train"].values
        train = run_set(case, data["x_train"].values, data["y_train"].values, g)
        test = run_set(case, data["x_test"].values, data["y_test"].values)
        adj = run_set(case, data["x_adj_test"].values, np.zeros((args.n_adj_test, len(case.components),
                      len(case.regions))), data["g_test"].values).drop_vars("pm25")  # fmt: skip
        results[name] = {}
        for fam in [f for f in args.families.split(",") if f]:
            t = time.time()
            model = fit_family(fam, train, jr.PRNGKey(2026), args)
            sec = time.time() - t
            sg.save(out / f"{name}_{fam}.eqx", model, provenance={"ctm": name, "n_train": args.n_train})
            r = score(model, case, test, adj)
            r["fit_seconds"] = sec
            results[name][fam] = r
            print(f"[{name}] {fam}: NME {_pct(r['nme'])}, MaxNE {_pct(r['maxne'])}, species R^2 min "
                  f"{r['r2_species_min']:.3f}, slopes {r['slope_min']:.2f}-{r['slope_max']:.2f}, pooled R^2 "
                  f"{r['r2_pooled']:.3f}, spurious {_pct(r['spurious'])}, fit {sec:.0f} s", flush=True)  # fmt: skip
            print(f"    per-species R^2 {json.dumps({k: round(v, 3) for k, v in r['species_r2'].items()})}")
            print(f"    worst-receptor NME per component "
                  f"{json.dumps({k: round(100 * v, 2) for k, v in r['worst_component_nme'].items()})}")  # fmt: skip
        sizes = [int(s) for s in args.curve.split(",") if s]
        if sizes and name in args.curve_ctms.split(","):
            curves[name] = learning_curve(case, out, sizes, args.curve_family, test, adj, args)
            for row in curves[name]:
                print(f"[{name}] curve {args.curve_family} {row['design']} n={row['n']}: NME {_pct(row['nme'])}, "
                      f"species R^2 min {row['r2_species_min']:.3f}", flush=True)  # fmt: skip
    report = [
        "# Emulator fidelity on two stand-in CTMs", "",
        f"`python -m experiments.emulator_fidelity {' '.join(argv or [])}`", "",
        f"Budget: {args.n_train} forward runs, {args.n_adj} adjoint runs; held out: {args.n_test} runs, "
        f"{args.n_adj_test} adjoint states. MLP ensemble: {args.members} members; neural steps {args.steps}.", "",
        table(results), "",
    ]  # fmt: skip
    for name, rows in curves.items():
        report += [f"Learning curve ({name}, {args.curve_family}):", "", "| design | runs | worst NME | species R^2 min |",
                   "|---|---|---|---|"]  # fmt: skip
        report += [f"| {r['design']} | {r['n']} | {_pct(r['nme'])} | {r['r2_species_min']:.3f} |" for r in rows]
        report.append("")
    write_text_atomic(out / "report.md", "\n".join(report))
    write_text_atomic(out / "results.json", json.dumps({"results": results, "curves": curves, "ctm": meta}, indent=1))
    print("\n".join(report))
    return {"results": results, "curves": curves}


if __name__ == "__main__":
    main()
