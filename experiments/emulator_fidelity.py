"""Emulator fidelity on two stand-in CTMs of different construction (issue 13).

Every emulator family -- linear source-receptor matrix, pf-ERSM-style polynomial (D=2), MLP ensemble,
physically structured emulator (single or an ensemble) -- on the reference CTM (`ctm_interface.reference`, 6
regions x 7 species) and on the spectral CTM (`ctm_interface.spectral`, 8 regions x 6 species, built
differently), at a budget of forward runs (base case + Latin hypercube over 0-2x) and adjoint runs of
population-weighted PM2.5 (at the first training states, for the Sobolev term of the neural and structured
emulators). Each CTM writes its runs as a run folder (`DIR/folder_<ctm>`, the layout users hand over) and the
experiment reads them through `ctm_interface.read_run_folder`, as a user does. Scored on held-out runs (an
independent Latin hypercube) and held-out adjoint states (training-design states that are not trained on):

- worst-receptor PM2.5 NME and MaxNE (max over receptors);
- per-species gradient R^2 (the smallest among species carrying >= 5 % of the adjoint's sum of squares), the
  range of their slopes, and the pooled R^2;
- spurious sensitivity (largest over the structural zeros, relative to the largest real sensitivity).
- where the PM2.5 MaxNE comes from (`worst_case`: the run, receptor and component errors).

Learning curve (`--curve-ctms`, spectral by default; it runs extra designs through the CTM's Python interface,
the same CTM as its folder; the reference CTM as its run folder describes it, `ReferenceCase`): held-out NME and per-species gradient R^2 against the number of forward runs, for a one-shot
Latin hypercube of each size against adaptive batches proposed by `surrogate.propose` from the disagreement of
a bootstrap committee of polynomial emulators (cheap, closed form). With `--curve-adjoints K`, each scored
design also carries K adjoint runs of population-weighted PM2.5 and is fitted with the Sobolev term
(`--curve-sobolev`): the adaptive design's at the states `propose` ranks for adjoints (its last batch first),
the one-shot design's at its first runs (base case first, as for the run folders' Sobolev states);
`--curve-adjoint-at first` puts the adaptive design's at its first runs too, `spread` at states spread over
the whole design (`spread_order`: greedy maximin). `--seed` changes the emulators' initialisation and
training key only (the run folders and the curve's designs stay the same).

Targets (issue 13): worst-receptor NME <= 2 %, MaxNE <= 10 %, per-species R^2 >= 0.9, slope 0.9-1.1,
spurious <= 2 %.

Usage: `python -m experiments.emulator_fidelity --out DIR [--ctms reference,spectral] [--n-train 150]
[--n-test 40] [--n-adj 30] [--n-adj-test 10] [--members 3] [--steps 1500] [--sobolev 0.05] [--families ...]
[--curve 50,100,150] [--curve-family polynomial] [--curve-adjoints 0] [--curve-sobolev W] [--curve-adjoint-at ranked]
[--curve-score SIZES] [--curve-designs lhs,adaptive] [--curve-ctms spectral]
[--seed 0]
[--spectral-days 6] [--reference-days 4]`. The run folders
are reused while the settings match (`DIR/folder_<ctm>/experiment.json`). From Python: `compute(out, ...)` (the
options as keywords) returns the scores as a dataset, `report(ds, out)` writes `report.md` and `results.json` from
it, `run` does both.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import xarray as xr

import surrogate as sg

from ._common import lhs_scales, write_netcdf_atomic, write_text_atomic

jax.config.update("jax_enable_x64", True)

FAMILIES = ("linear", "polynomial", "mlp", "structured")
TARGETS = {"nme": 0.02, "maxne": 0.10, "r2": 0.9, "slope": (0.9, 1.1), "spurious": 0.02}


class SpectralCase:
    """The spectral CTM at source level, for the learning curve's extra designs (the same CTM as its folder:
    `run(x[n, source, species]) -> y[n, component, receptor]`)."""

    name = "spectral"
    config = ""  # the CTM's settings besides n_days that the learning-curve cache must match (none)

    def __init__(self, n_days: float = 6.0):
        from ctm_interface.spectral import SpectralCTM, SpectralWorld

        self.n_days = float(n_days)
        self.world = SpectralWorld.default(SpectralCTM.default(n_days=n_days))
        self.regions, self.species, self.components = self.world.regions, self.world.species, self.world.components

    def run(self, x):
        return self.world.run(x)

    def cost_weights(self) -> np.ndarray:
        """`w[component, receptor]` of population-weighted PM2.5 (the cost of the curve's adjoint runs)."""
        return self.world.pwpm_weights()

    def adjoint(self, x, w):
        """Exact adjoints `dJ/dx[n, source, species]` of `J = sum(w * y)` at each state."""
        return self.world.adjoint(x, w)


def _linear_cost(C, a):
    """J = sum(a * C) (module level: the reference CTM's compiled adjoint is reused across states)."""
    return jnp.sum(a * C)


class ReferenceCase:
    """The reference CTM at source level, for the learning curve's extra designs: computed as its run folder
    (`runs.toml`) describes it -- the folder's base emissions scaled by its region masks (DESID), its grid and
    simulated days, its components, receptor means weighted by mask x population -- so `run` gives the
    folder's receptor means (to the float32 of its files) and `adjoint` its adjoints of the folder's cost."""

    name = "reference"

    def __init__(self, toml):
        import ctm_interface as ci
        from ctm_interface.reference import COMPONENTS, CONC_VARIABLES, CTMGrid, ReferenceCTM

        f = ci.read_run_folder(toml)
        if "reference_ctm" not in f.config.raw or f.adjoints is None:
            raise ValueError(f"{toml}: ReferenceCase needs a folder written by ctm_interface.reference.write_run_folder "
                             "with adjoints (its [reference_ctm] and [adjoints] tables)")  # fmt: skip
        ref, g = f.config.raw["reference_ctm"], f.config.raw["reference_ctm"]["grid"]
        self.config = json.dumps(ref, sort_keys=True)  # the learning-curve cache is reused only for the same CTM
        if ref.get("vocabulary") != "cmaq-elmo":
            raise ValueError(f"{toml}: ReferenceCase reads cmaq-elmo folders (this one is {ref.get('vocabulary')!r})")
        self.n_days = float(ref["n_days"])
        grid = CTMGrid(ncols=int(g["ncols"]), nrows=int(g["nrows"]), xcell=float(g["xcell"]), ycell=float(g["ycell"]),
                       gdnam=str(g.get("gdnam", "RUNS")))  # fmt: skip
        # the CTM `run_one` builds for this folder (an equal Module: its compiled run is reused)
        self.ctm = ReferenceCTM.default(grid=grid, n_days=self.n_days)
        runs = f.runs
        self.regions = tuple(str(s) for s in runs["source"].values)
        self.species = tuple(str(s) for s in runs["species"].values)
        self.components = tuple(str(c) for c in runs["component"].values)
        self.masks = f.masks.sel(region=list(self.regions))
        self.base = f.emissions.sel(species=list(self.species))
        # folder component c = sum_k M[c, k] * CTM component k (the folder's files are the CTM's, renamed)
        var_of = {v: COMPONENTS.index(k) for k, v in CONC_VARIABLES.items()}
        self.mix = np.zeros((len(self.components), len(COMPONENTS)))
        for i, c in enumerate(self.components):
            for v, w in f.components.terms[c]:
                self.mix[i, var_of[v]] += float(w)
        rec = runs["receptor"].values.tolist()
        w = f.masks.sel(region=rec).values * (1.0 if f.population is None else f.population.values[None])
        self.receptor_weights = w / w.sum(axis=(1, 2), keepdims=True)  # [receptor, ROW, COL]
        self._cost = np.asarray(f.adjoints["cost_weights"].sel(component=list(self.components), receptor=rec).values)

    def _emissions(self, x) -> np.ndarray:
        from ctm_interface import desid_emissions

        scale = xr.DataArray(np.asarray(x, np.float64), dims=("run", "source", "species"),
                             coords={"source": list(self.regions), "species": list(self.species)})  # fmt: skip
        return desid_emissions(self.base, self.masks, scale).values

    def run(self, x):
        C = np.asarray(self.ctm.run_ensemble(jnp.asarray(self._emissions(x)), batch_size=1, progress=False))
        return np.einsum("ck,nkyx,ryx->ncr", self.mix, C, self.receptor_weights)

    def cost_weights(self) -> np.ndarray:
        """`w[component, receptor]` of the folder's adjoint cost (population-weighted PM2.5)."""
        return self._cost

    def adjoint(self, x, w):
        """Exact adjoints `dJ/dx[n, source, species]` of `J = sum(w * y)` at each state (the CTM's adjoint,
        then summed over levels and cells by the region masks, as the folder's adjoints are read)."""
        a = jnp.asarray(np.einsum("cr,ck,ryx->kyx", np.asarray(w), self.mix, self.receptor_weights))
        cost = jax.tree_util.Partial(_linear_cost, a=a)
        E = self._emissions(x)
        m = self.masks.values
        out = []
        for e in E:
            _, dJdE = self.ctm.adjoint(cost, jnp.asarray(e))
            out.append(np.einsum("klyx,klyx,gyx->gk", np.asarray(dJdE), self.base.values, m))
        return np.stack(out)


def lhs(case, n: int, seed: int, include_base: bool) -> np.ndarray:
    return lhs_scales(n, case.regions, case.species, seed=seed, include_base=include_base)


def run_set(case, x, y) -> xr.Dataset:
    shape = (len(case.regions), len(case.species))
    return xr.Dataset(
        {"scale": (("run", "source", "species"), x, {"units": "1"}),
         "pm25": (("run", "receptor", "component"), np.transpose(y, (0, 2, 1)), {"units": "ug m-3"})},
        coords={"run": np.arange(len(x)), "source": list(case.regions), "species": list(case.species),
                "receptor": list(case.regions), "component": list(case.components)},
    ).assign_coords(low=(("source", "species"), np.zeros(shape)), high=(("source", "species"), np.full(shape, 2.0)))  # fmt: skip


def write_folder(name: str, out: Path, args) -> Path:
    """The CTM's run folder (the layout users hand over), written once and reused while the settings match:
    `n_train + n_adj_test` training runs (base case first) and `n_test` test runs, Latin hypercubes over 0-2x;
    adjoints of population-weighted PM2.5 at the first `n_adj + n_adj_test` training runs."""
    import shutil

    folder = out / f"folder_{name}"
    days = args.spectral_days if name == "spectral" else args.reference_days
    want = {"ctm": name, "n_train": args.n_train, "n_test": args.n_test, "n_adj": args.n_adj,
            "n_adj_test": args.n_adj_test, "n_days": days, "seed": 11}  # fmt: skip
    marker = folder / "experiment.json"  # written first (incomplete), completed last: a killed write is redone
    if marker.exists():
        got = json.loads(marker.read_text())
        if got.get("complete", True) and {k: v for k, v in got.items() if k in want} == want:
            return folder / "runs.toml"
    if folder.exists():
        if not marker.exists():
            raise FileExistsError(f"{folder} exists but was not written by this experiment (no experiment.json): "
                                  "pass another --out or move it away")  # fmt: skip
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    write_text_atomic(marker, json.dumps({**want, "complete": False}))
    kw = dict(n_train=args.n_train + args.n_adj_test, n_test=args.n_test, adjoint_states=args.n_adj + args.n_adj_test,
              adjoint_on_train=True, include_base=True, low=0.0, high=2.0, seed=11, n_days=days)  # fmt: skip
    t0 = time.time()
    if name == "reference":
        from ctm_interface.reference import write_run_folder

        toml = write_run_folder(folder, vocabulary="cmaq-elmo", **kw)
    else:
        from ctm_interface.spectral import write_run_folder

        toml = write_run_folder(folder, **kw)
    write_text_atomic(marker, json.dumps({**want, "complete": True, "write_seconds": time.time() - t0}))
    return toml


def read_folder(toml: Path, args):
    """Train, test and held-out adjoint sets, read through `ctm_interface.read_run_folder` (as a user does).
    The adjoint states at training runs `n_adj .. n_adj + n_adj_test - 1` are held out (those runs are not
    trained on); the first `n_adj` training runs carry the adjoints of the Sobolev term."""
    import ctm_interface as ci

    f = ci.read_run_folder(toml)
    tr = f.split("train")
    ids = tr["run"].values.tolist()
    held = ids[args.n_adj : args.n_adj + args.n_adj_test]
    train = tr.sel(run=[i for i in ids if i not in held])
    test = f.split("test").drop_vars(["sensitivity", "cost_weights"], errors="ignore")
    adj = f.adjoints.sel(run=held)
    return train, test, adj


def make_model(family: str, labels, key, members: int):
    if family == "linear":
        return sg.LinearEmulator(labels)
    if family == "polynomial":
        return sg.PolynomialEmulator(labels, degree=2)
    if family == "mlp":
        return sg.Ensemble(lambda k: sg.MLPEmulator(labels, width=32, depth=2, key=k), members, key=key)
    if family == "structured":
        return sg.StructuredEmulator(labels, key=key)
    if family == "structured_ensemble":
        return sg.Ensemble(lambda k: sg.StructuredEmulator(labels, key=k), members, key=key)
    raise ValueError(f"unknown family {family!r}; choose from {FAMILIES + ('structured_ensemble',)}")


def fit_key(key, seed: int):
    """The emulator's initialisation and training key for `--seed` (0: `key` itself, the key of every earlier
    row; another seed folds it into `key`). The designs do not depend on it."""
    return key if int(seed) == 0 else jr.fold_in(key, int(seed))


def fit_family(family, train, key, args, sobolev: float | None = None):
    labels = sg.EmulatorLabels.from_runs(train)
    model = make_model(family, labels, key, args.members)
    if family in ("linear", "polynomial"):
        return sg.fit(model, train.drop_vars(["sensitivity", "cost_weights"], errors="ignore"))
    sob = (args.sobolev if sobolev is None else sobolev) if "sensitivity" in train else 0.0
    method = sg.Adam(steps=args.steps, learning_rate=3e-3, validation_fraction=args.val_fraction, patience=None,
                     sobolev_weight=sob)
    return sg.fit(model, train, method, key=jr.fold_in(key, 1), progress=False)


def score(model, test: xr.Dataset, adj: xr.Dataset) -> dict:
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
        "species_r2": {str(s): float(v) for s, v in zip(adj["species"].values, ga["source_species_r2"].values,
                                                        strict=True)},
        "species_slope": {str(s): float(v) for s, v in zip(adj["species"].values,
                                                           ga["source_species_slope"].values, strict=True)},
        "species_share": {str(s): float(v) for s, v in zip(adj["species"].values, share, strict=True)},
        "worst_component_nme": {str(c): float(ev["NME"].sel(component=c).max()) for c in test["component"].values},
        "worst_case": worst_case(model, test),
    }


def worst_case(model, test: xr.Dataset) -> dict:
    """Where the PM2.5 MaxNE comes from: the held-out run and receptor of the largest |p - o| / o, each
    component's error there (ug m-3) and the run's scaling factors of the receptor's own region (when the
    receptors are the source regions)."""
    x, y = (sg.run_arrays(test, model.labels, None, None)[k] for k in ("x", "y"))
    p = sg.predict(sg.with_envelope_policy(model, "ignore"), x)
    w = model.labels.component_weights()
    pm_p, pm_o = np.tensordot(p, w, axes=([1], [0])), np.tensordot(y, w, axes=([1], [0]))
    i, r = np.unravel_index(np.argmax(np.abs(pm_p - pm_o) / pm_o), pm_o.shape)
    rec = str(model.labels.output_coords[1][r])
    sources = [str(s) for s in model.labels.input_coords[0]]
    out = {"run": int(test["run"].values[i]), "receptor": rec, "pm25_ctm": float(pm_o[i, r]),
           "pm25_emulator": float(pm_p[i, r]),
           "error": {str(c): float(w[k] * (p[i, k, r] - y[i, k, r])) for k, c in enumerate(model.labels.components)}}  # fmt: skip
    if rec in sources:
        out["own_scale"] = {str(s): float(v) for s, v in zip(model.labels.input_coords[1], x[i, sources.index(rec)],
                                                             strict=True)}  # fmt: skip
    return out


def describe_states(x, g, species: int, low: float = 0.2) -> dict:
    """How extreme a set of adjoint states is, and how concentrated its adjoints are, for one input species
    (index `species` of `x[state, source, species]`, `g` the adjoints at those states): the share of (state,
    source) factors of that species below `low`, the mean |factor - 1| over all factors, the share of the
    species' adjoint sum of squares carried by the three largest states, and the species' share of the whole
    adjoint sum of squares."""
    x, g = np.asarray(x, np.float64), np.asarray(g, np.float64)
    per_state = np.sort((g[:, :, species] ** 2).sum(axis=1))[::-1]
    return {"below": float(np.mean(x[:, :, species] < low)), "mean_abs_dev": float(np.abs(x - 1.0).mean()),
            "top3_share": float(per_state[:3].sum() / per_state.sum()),
            "species_share": float((g[:, :, species] ** 2).sum() / (g**2).sum())}  # fmt: skip


#: what proposes the adaptive batches; a learning-curve cache reuses its adaptive batches only if it was written
#: under the same tag. Bump it whenever the committee's fits change: session 8's `ridge_loo` fix changed every
#: first batch (a bootstrap resample of 50 runs holds ~32 distinct runs, fewer than the polynomial's unpenalised
#: terms, whose interaction terms were rounding noise before), and caches from before it carry no tag.
COMMITTEE = "polynomial D=2, 5 bootstrap members, ridge_loo rank relative to the raw features (2026-12-01)"


def committee(train: xr.Dataset, n: int = 5, seed: int = 0) -> sg.Ensemble:
    """Bootstrap committee of polynomial emulators (the disagreement for `propose`)."""
    rng = np.random.default_rng(seed)
    labels = sg.EmulatorLabels.from_runs(train)
    ms = []
    for _ in range(n):
        idx = rng.choice(train.sizes["run"], train.sizes["run"], replace=True)
        ms.append(sg.fit(sg.PolynomialEmulator(labels, degree=2), train.isel(run=np.unique(idx))))
    return sg.Ensemble(ms)


def adjoint_order(n_start: int, batches: list[tuple[int, np.ndarray]]) -> np.ndarray:
    """Where a design's adjoint runs go, best first, as indices into the design (`n_start` initial runs, then
    each adaptive batch of `(size, adjoint_rank)` in order): the last batch's states by `surrogate.propose`'s
    `adjoint_rank` (0 = where an adjoint pays most), then the batch before it, ..., then the initial runs in
    their order (a one-shot design: its first runs, base case first, as for the run folder's Sobolev states)."""
    offsets = np.cumsum([n_start] + [len(r) for _, r in batches])
    order = [offsets[i] + np.argsort(np.asarray(r), kind="stable") for i, (_, r) in enumerate(batches)][::-1]
    return np.concatenate(order + [np.arange(n_start)]).astype(int)


def spread_order(x: np.ndarray) -> np.ndarray:
    """Where a design's adjoint runs go for `--curve-adjoint-at spread`, best first, as indices into the design
    `x[run, ...]`: greedy maximin (farthest-point) order over the design's own states, from its first run (the
    base case): each next state is the one farthest (Euclidean, in the factors) from every state chosen
    before, so the first K cover the design evenly (a 2-approximation of the K states that minimise the
    largest distance from any design state to its nearest adjoint state)."""
    z = np.asarray(x, np.float64).reshape(len(x), -1)
    order = [0]
    d = np.linalg.norm(z - z[0], axis=1)
    for _ in range(len(z) - 1):
        d[order[-1]] = -np.inf
        i = int(np.argmax(d))
        order.append(i)
        d = np.minimum(d, np.linalg.norm(z - z[i], axis=1))
    return np.asarray(order, dtype=int)


def with_adjoints(case, ds: xr.Dataset, states: np.ndarray, g: np.ndarray, w: np.ndarray) -> xr.Dataset:
    """The run set plus `sensitivity` (`g` at the runs `states`, NaN elsewhere) and `cost_weights`
    (`w[component, receptor]`), the layout `surrogate.fit` takes for its Sobolev term."""
    sens = np.full(ds["scale"].shape, np.nan)
    sens[states] = g
    return ds.assign(sensitivity=(("run", "source", "species"), sens),
                     cost_weights=(("component", "receptor"), np.asarray(w)))  # fmt: skip


def learning_curve(case: SpectralCase | ReferenceCase, out: Path, sizes, family: str, test, adj, args) -> list[dict]:
    """Held-out scores against the number of forward runs, one-shot LHS against adaptive batches. With
    `args.curve_adjoints` = k > 0, each scored design also carries k adjoint runs of population-weighted PM2.5
    (`adjoint_order`: the adaptive design's at the states `propose` ranks, or at its first runs with
    `args.curve_adjoint_at == "first"`; the one-shot design's at its first runs) and is fitted with the Sobolev term (`args.curve_sobolev`). Only the sizes in `args.curve_score`
    (default all) are fitted and scored; the others only grow the adaptive design."""
    cache = out / f"curve_{case.name}.nc"
    ctm_config = getattr(case, "config", "")  # the CTM's settings the cache must match besides n_days
    n_adj = int(getattr(args, "curve_adjoints", 0) or 0)
    sob = float(getattr(args, "curve_sobolev", args.sobolev))
    scored = set(getattr(args, "curve_score", None) or sizes)
    designs = set(getattr(args, "curve_designs", ("lhs", "adaptive")))
    w = case.cost_weights() if n_adj else None
    rows = []
    xs, ys, extra, w_cached = {}, {}, {}, None
    if cache.exists():
        c = xr.load_dataset(cache)
        # the one-shot designs depend on their size only; the adaptive batches (and their adjoint ranks) on the
        # whole sequence of sizes; adjoints are reused only at the same states of the same design and the same cost
        same = ([int(v) for v in np.atleast_1d(c.attrs.get("sizes", []))] == list(sizes)
                and c.attrs.get("committee", "") == COMMITTEE)  # the batches depend on what proposed them
        if float(c.attrs.get("n_days", np.nan)) != case.n_days or c.attrs.get("config", "") != ctm_config:
            # another CTM configuration: nothing is reusable
            c = xr.Dataset()
        ok = lambda k: k.split("_")[1].startswith("lhs") or (same and k.split("_")[1].startswith("ad"))  # noqa: E731
        xs = {k: c[k].values for k in c.data_vars if k.startswith("x_") and ok(k)}
        ys = {k: c[k].values for k in c.data_vars if k.startswith("y_") and ok(k)}
        extra = {k: c[k].values for k in c.data_vars if k.split("_")[0] in ("g", "ia", "ar") and ok(k)}
        cw = c["cost_weights"].values if "cost_weights" in c else None
        if cw is None or (w is not None and (cw.shape != w.shape or not np.array_equal(cw, w))):
            extra = {k: v for k, v in extra.items() if not k.startswith(("g_", "ia_"))}
        w_cached = cw

    def design_set(tag, x, y, order):
        ds = run_set(case, x, y)
        if not n_adj:
            return ds
        if n_adj > len(x):
            raise ValueError(f"--curve-adjoints {n_adj}: more than the {len(x)} runs of the design")
        states = np.sort(order[:n_adj])
        gk, ik = f"g_{tag}", f"ia_{tag}"
        if ik not in extra or not np.array_equal(extra[ik], states):
            extra[ik], extra[gk] = states, case.adjoint(x[states], w)
        return with_adjoints(case, ds, states, extra[gk], w)

    key = jr.PRNGKey(7)  # the adaptive batches' key (the designs); the fits' key also follows --seed
    fkey = fit_key(key, getattr(args, "seed", 0))
    for n in sizes:  # one-shot Latin hypercubes of each size
        if n not in scored and n != sizes[0]:
            continue
        k = f"x_lhs{n}"
        if k not in xs:
            xs[k] = lhs(case, n - 1, 100 + n, include_base=True)
            ys[f"y_lhs{n}"] = case.run(xs[k])
        if n in scored and "lhs" in designs:
            ds = design_set(f"lhs{n}", xs[k], ys[f"y_lhs{n}"], adjoint_order(n, []))
            m = fit_family(family, ds, fkey, args, sobolev=sob)
            rows.append({"design": "one-shot LHS", "n": n, "adjoints": n_adj, **score(m, test, adj)})
    x_ad, y_ad = xs[f"x_lhs{sizes[0]}"], ys[f"y_lhs{sizes[0]}"]
    if sizes[0] in scored and "lhs" in designs and "adaptive" in designs:
        rows.append({**rows[0], "design": "adaptive"})
    batches = []
    for step, n in enumerate(sizes[1:]):
        k = f"x_ad{n}"
        if k not in xs or f"ar_ad{n}" not in extra:
            com = committee(run_set(case, x_ad, y_ad))
            prop = sg.propose(com, run_set(case, x_ad, y_ad), n - len(x_ad), key=jr.fold_in(key, step),
                              cost_weights=case.cost_weights())  # fmt: skip
            if k in xs and not np.array_equal(xs[k], prop["scale"].values):
                raise RuntimeError(f"{cache}: the cached batch {k} is not what propose gives now: move the file away")
            if k not in xs:
                xs[k] = prop["scale"].values
                ys[f"y_ad{n}"] = case.run(xs[k])
            extra[f"ar_ad{n}"] = prop["adjoint_rank"].values
        batches.append((n, extra[f"ar_ad{n}"]))
        x_ad = np.concatenate([x_ad, xs[k]])
        y_ad = np.concatenate([y_ad, ys[f"y_ad{n}"]])
        assert len(x_ad) == n, (len(x_ad), n)
        if n in scored and "adaptive" in designs:
            at = getattr(args, "curve_adjoint_at", "ranked")
            order = {"first": lambda: adjoint_order(n, []),  # ablation: the one-shot placement
                     "spread": lambda: spread_order(x_ad),
                     "ranked": lambda: adjoint_order(sizes[0], batches)}[at]()  # fmt: skip
            ds = design_set(f"ad{n}", x_ad, y_ad, order)
            m = fit_family(family, ds, fkey, args, sobolev=sob)
            rows.append({"design": "adaptive", "n": n, "adjoints": n_adj, **score(m, test, adj)})
    dims = {"x": ("run", "source", "species"), "y": ("run", "component", "receptor"), "g": ("state", "source", "species"),
            "ia": ("state",), "ar": ("run",)}  # fmt: skip
    dv = {k: (tuple(f"{k}_{d}" for d in dims[k.split("_")[0]]), v) for k, v in {**xs, **ys, **extra}.items()}
    cw = w if w is not None else w_cached  # the cost of the cached adjoints (kept by a curve without adjoints)
    if cw is not None:
        dv["cost_weights"] = (("cw_component", "cw_receptor"), cw)
    write_netcdf_atomic(xr.Dataset(dv, attrs={"sizes": list(sizes), "n_days": case.n_days, "config": ctm_config,
                                              "committee": COMMITTEE}),
                        cache)  # fmt: skip
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


SCORES = ("nme", "maxne", "r2_pooled", "r2_species_min", "slope_min", "slope_max", "spurious")
_PER_SPECIES = ("species_r2", "species_slope", "species_share")


def _union(lists) -> list[str]:
    """The labels of every list, in first-seen order."""
    seen = {}
    for labels in lists:
        seen.update(dict.fromkeys(labels))
    return list(seen)


def _to_dataset(results: dict, curves: dict, meta: dict, ctms: list[str], attrs: dict) -> xr.Dataset:
    """`compute`'s dataset from the per-(CTM, family) score dicts and the learning-curve rows (`report` reads
    them back from it: `_from_dataset`)."""
    fams = _union(list(r) for r in results.values())
    species = _union(list(r["species_r2"]) for fr in results.values() for r in fr.values())
    comps = _union(list(r["worst_component_nme"]) for fr in results.values() for r in fr.values())
    nc, nf = len(ctms), len(fams)
    scal = {k: np.full((nc, nf), np.nan) for k in (*SCORES, "fit_seconds")}
    per_sp = {k: np.full((nc, nf, len(species)), np.nan) for k in _PER_SPECIES}
    comp_nme = np.full((nc, nf, len(comps)), np.nan)
    sp_index = np.full((nc, len(species)), -1)  # position in the CTM's own species list (-1: not a species of it)
    comp_index = np.full((nc, len(comps)), -1)
    worst = np.full((nc, nf), "", dtype=object)
    for i, c in enumerate(ctms):
        for j, f in enumerate(fams):
            if f not in results.get(c, {}):
                continue
            r = results[c][f]
            for k in scal:
                scal[k][i, j] = r[k]
            for k in _PER_SPECIES:
                for p, (s, v) in enumerate(r[k].items()):
                    per_sp[k][i, j, species.index(s)] = v
                    sp_index[i, species.index(s)] = p
            for p, (s, v) in enumerate(r["worst_component_nme"].items()):
                comp_nme[i, j, comps.index(s)] = v
                comp_index[i, comps.index(s)] = p
            worst[i, j] = json.dumps(r["worst_case"])
    n_rows = max([len(v) for v in curves.values()], default=0)
    cur = {k: np.full((nc, n_rows), np.nan) for k in SCORES}
    cur_int = {k: np.zeros((nc, n_rows), dtype=np.int64) for k in ("n", "adjoints")}
    cur_str = {k: np.full((nc, n_rows), "", dtype=object) for k in ("design", "detail")}
    rows_of = np.full(nc, -1)  # -1: no learning curve for this CTM
    for i, c in enumerate(ctms):
        if c not in curves:
            continue
        rows_of[i] = len(curves[c])
        for j, row in enumerate(curves[c]):
            for k in SCORES:
                cur[k][i, j] = row[k]
            for k in cur_int:
                cur_int[k][i, j] = row[k]
            cur_str["design"][i, j] = row["design"]
            cur_str["detail"][i, j] = json.dumps({k: v for k, v in row.items() if k not in (*SCORES, *cur_int, "design")})
    cf, cfs, cfc, cr = ("ctm", "family"), ("ctm", "family", "species"), ("ctm", "family", "component"), ("ctm", "curve_row")
    units = {"fit_seconds": "s"}
    dv = {k: (cf, v, {"units": units.get(k, "1")}) for k, v in scal.items()}
    dv |= {k: (cfs, v, {"units": "1"}) for k, v in per_sp.items()}
    dv |= {"worst_component_nme": (cfc, comp_nme, {"units": "1"}), "worst_case": (cf, worst),
           "species_index": (("ctm", "species"), sp_index), "component_index": (("ctm", "component"), comp_index),
           "folder": (("ctm",), np.array([json.dumps(meta.get(c, {})) for c in ctms], dtype=object)),
           "curve_rows": (("ctm",), rows_of)}  # fmt: skip
    dv |= {f"curve_{k}": (cr, v, {"units": "1"}) for k, v in cur.items()}
    dv |= {f"curve_{k}": (cr, v) for k, v in {**cur_int, **cur_str}.items()}
    return xr.Dataset(dv, coords={"ctm": list(ctms), "family": fams, "species": species, "component": comps,
                                  "curve_row": np.arange(n_rows)}, attrs=attrs)  # fmt: skip


def _from_dataset(ds: xr.Dataset) -> tuple[dict, dict, dict]:
    """`results`, `curves` and the run folders' settings (`results.json`'s) from `compute`'s dataset."""
    results, curves, meta = {}, {}, {}
    for i, c in enumerate(ds["ctm"].values.tolist()):
        meta[c] = json.loads(str(ds["folder"].values[i]))
        sp = sorted((int(p), s) for s, p in zip(ds["species"].values.tolist(), ds["species_index"].values[i]) if p >= 0)
        co = sorted((int(p), s) for s, p in zip(ds["component"].values.tolist(), ds["component_index"].values[i]) if p >= 0)  # fmt: skip
        results[c] = {}
        for j, f in enumerate(ds["family"].values.tolist()):
            if not str(ds["worst_case"].values[i, j]):
                continue
            at = lambda v, labels, dim: {s: float(ds[v].values[i, j, ds[dim].values.tolist().index(s)]) for _, s in labels}  # noqa: E731
            results[c][f] = {**{k: float(ds[k].values[i, j]) for k in SCORES},
                             **{k: at(k, sp, "species") for k in _PER_SPECIES},
                             "worst_component_nme": at("worst_component_nme", co, "component"),
                             "worst_case": json.loads(str(ds["worst_case"].values[i, j])),
                             "fit_seconds": float(ds["fit_seconds"].values[i, j])}  # fmt: skip
        if int(ds["curve_rows"].values[i]) >= 0:
            curves[c] = [{"design": str(ds["curve_design"].values[i, j]), "n": int(ds["curve_n"].values[i, j]),
                          "adjoints": int(ds["curve_adjoints"].values[i, j]),
                          **{k: float(ds[f"curve_{k}"].values[i, j]) for k in SCORES},
                          **json.loads(str(ds["curve_detail"].values[i, j]))}
                         for j in range(int(ds["curve_rows"].values[i]))]  # fmt: skip
    return results, curves, meta


def compute(
    out: str | Path,
    *,
    ctms=("reference", "spectral"),
    families=FAMILIES,
    n_train: int = 150,
    n_test: int = 40,
    n_adj: int = 30,
    n_adj_test: int = 10,
    members: int = 3,
    steps: int = 1500,
    sobolev: float = 0.05,
    seed: int = 0,
    val_fraction: float = 0.1,
    curve=(50, 100, 150),
    curve_family: str = "polynomial",
    curve_adjoints: int = 0,
    curve_sobolev: float | None = None,
    curve_adjoint_at: str = "ranked",
    curve_score=(),
    curve_designs=("lhs", "adaptive"),
    curve_ctms=("spectral",),
    spectral_days: float = 6.0,
    reference_days: float = 4.0,
    command: str = "",
) -> xr.Dataset:
    """Write (or reuse) each CTM's run folder under `out`, fit every family (saved as `out/<ctm>_<family>.eqx`),
    score them and run the learning curves (cached as `out/curve_<ctm>.nc`); the settings are `main`'s options.
    **Returns** a dataset: the scores (`SCORES`, `fit_seconds`) over (ctm, family); per-species gradient R^2,
    slope and share over (ctm, family, species) and the worst-receptor NME per component over (ctm, family,
    component), NaN where the species or component is not the CTM's (`species_index`, `component_index`: its
    position in the CTM's own list, -1 if not); `worst_case` (JSON text); the learning-curve rows over (ctm,
    curve_row) (`curve_rows`: the CTM's number of rows, -1 without a curve; `curve_detail`: the row's per-species
    numbers and worst case as JSON text); `folder`: each run folder's settings (JSON text); the settings and
    `command` in attrs."""
    args = argparse.Namespace(
        n_train=n_train, n_test=n_test, n_adj=n_adj, n_adj_test=n_adj_test, members=members, steps=steps,
        sobolev=sobolev, seed=seed, val_fraction=val_fraction, curve_family=curve_family,
        curve_adjoints=curve_adjoints, curve_sobolev=sobolev if curve_sobolev is None else curve_sobolev,
        curve_adjoint_at=curve_adjoint_at, curve_score=[int(v) for v in curve_score],
        curve_designs=tuple(curve_designs), spectral_days=spectral_days, reference_days=reference_days,
    )  # fmt: skip
    ctms, families, sizes, curve_ctms = list(ctms), list(families), [int(s) for s in curve], list(curve_ctms)
    if not args.curve_designs or set(args.curve_designs) - {"lhs", "adaptive"}:
        raise ValueError(f"--curve-designs {','.join(args.curve_designs)!r}: choose lhs, adaptive or lhs,adaptive")
    if args.curve_adjoints < 0:
        raise ValueError(f"--curve-adjoints must be >= 0, got {args.curve_adjoints}")
    if set(args.curve_score) - set(sizes):
        raise ValueError(f"--curve-score {args.curve_score}: every size must be one of --curve {','.join(map(str, sizes))!r}")  # fmt: skip
    if set(curve_ctms) - {"spectral", "reference", ""}:
        raise ValueError(f"--curve-ctms {','.join(curve_ctms)!r}: the learning curve runs on the CTMs spectral, reference")  # fmt: skip
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    results, curves, meta = {}, {}, {}
    for name in ctms:
        if name not in ("reference", "spectral"):
            raise ValueError(f"--ctms: unknown CTM {name!r} (reference, spectral)")
        toml = write_folder(name, out, args)
        meta[name] = json.loads((toml.parent / "experiment.json").read_text())
        train, test, adj = read_folder(toml, args)
        results[name] = {}
        for fam in families:
            t = time.time()
            model = fit_family(fam, train, fit_key(jr.PRNGKey(2026), args.seed), args)
            sec = time.time() - t
            sg.save(out / f"{name}_{fam}.eqx", model, provenance={"ctm": name, "n_train": args.n_train})
            r = score(model, test, adj)
            r["fit_seconds"] = sec
            results[name][fam] = r
            print(f"[{name}] {fam}: NME {_pct(r['nme'])}, MaxNE {_pct(r['maxne'])}, species R^2 min "
                  f"{r['r2_species_min']:.3f}, slopes {r['slope_min']:.2f}-{r['slope_max']:.2f}, pooled R^2 "
                  f"{r['r2_pooled']:.3f}, spurious {_pct(r['spurious'])}, fit {sec:.0f} s", flush=True)  # fmt: skip
            print(f"    per-species R^2 {json.dumps({k: round(v, 3) for k, v in r['species_r2'].items()})}, "
                  f"slope {json.dumps({k: round(v, 3) for k, v in r['species_slope'].items()})}, share "
                  f"{json.dumps({k: round(v, 3) for k, v in r['species_share'].items()})}")  # fmt: skip
            print(f"    MaxNE at {json.dumps(r['worst_case'])}")
            print(f"    worst-receptor NME per component "
                  f"{json.dumps({k: round(100 * v, 2) for k, v in r['worst_component_nme'].items()})}")  # fmt: skip
        if sizes and name in curve_ctms:
            case = SpectralCase(args.spectral_days) if name == "spectral" else ReferenceCase(toml)
            curves[name] = learning_curve(case, out, sizes, args.curve_family, test, adj, args)
            for row in curves[name]:
                print(f"[{name}] curve {args.curve_family} {row['design']} n={row['n']} adjoints={row['adjoints']} "
                      f"(Sobolev {args.curve_sobolev}): NME {_pct(row['nme'])}, "
                      f"MaxNE {_pct(row['maxne'])}, species R^2 min {row['r2_species_min']:.3f}, slopes "
                      f"{row['slope_min']:.2f}-{row['slope_max']:.2f}, pooled R^2 {row['r2_pooled']:.3f}", flush=True)  # fmt: skip
                print(f"    MaxNE at {json.dumps(row['worst_case'])}")
    attrs = {"command": command, "n_train": n_train, "n_test": n_test, "n_adj": n_adj, "n_adj_test": n_adj_test,
             "members": members, "steps": steps, "sobolev": sobolev, "seed": seed, "val_fraction": val_fraction,
             "curve": ",".join(map(str, sizes)), "curve_family": curve_family, "curve_adjoints": curve_adjoints,
             "curve_sobolev": args.curve_sobolev, "curve_adjoint_at": curve_adjoint_at,
             "curve_designs": ",".join(args.curve_designs), "curve_ctms": ",".join(curve_ctms),
             "spectral_days": spectral_days, "reference_days": reference_days}  # fmt: skip
    return _to_dataset(results, curves, meta, ctms, attrs)


def _report(ds: xr.Dataset, results: dict, curves: dict) -> str:
    a = ds.attrs
    report = [
        "# Emulator fidelity on two stand-in CTMs", "",
        f"`{a['command']}`", "",
        f"Budget: {a['n_train']} forward runs, {a['n_adj']} adjoint runs; held out: {a['n_test']} runs, "
        f"{a['n_adj_test']} adjoint states. MLP ensemble: {a['members']} members; neural steps {a['steps']}.", "",
        table(results), "",
    ]  # fmt: skip
    sobolev_fit = a["curve_family"] not in ("linear", "polynomial")  # closed-form fits take no Sobolev term
    for name, rows in curves.items():
        report += [f"Learning curve ({name}, {a['curve_family']}; {a['curve_adjoints']} adjoint runs per design, "
                   f"Sobolev {a['curve_sobolev'] if a['curve_adjoints'] and sobolev_fit else 0}):", "",
                   "| design | runs | worst NME | MaxNE | species R^2 min | slopes | pooled R^2 |", "|---|---|---|---|---|---|---|"]  # fmt: skip
        report += [f"| {r['design']} | {r['n']} | {_pct(r['nme'])} | {_pct(r['maxne'])} | {r['r2_species_min']:.3f} | "
                   f"{r['slope_min']:.2f}-{r['slope_max']:.2f} | {r['r2_pooled']:.3f} |" for r in rows]  # fmt: skip
        report.append("")
    return "\n".join(report)


def report(ds: xr.Dataset, out: str | Path) -> Path:
    """Write `out/report.md` (the scores' table and the learning curves) and `out/results.json` (`{"results":
    {ctm: {family: scores}}, "curves": {ctm: [rows]}, "ctm": {ctm: run folder settings}}`) from `compute`'s
    dataset; the text is composed before anything is written, each file whole or not at all.
    **Returns** the report's path."""
    out = Path(out)
    results, curves, meta = _from_dataset(ds)
    text = _report(ds, results, curves)
    saved = json.dumps({"results": results, "curves": curves, "ctm": meta}, indent=1)
    write_text_atomic(out / "report.md", text)
    write_text_atomic(out / "results.json", saved)
    return out / "report.md"


def run(out: str | Path, **kw) -> dict:
    """`compute` + `report`. `kw` go to [`compute`][experiments.emulator_fidelity.compute].
    **Returns** `{"results", "curves", "dataset", "report"}` (`results.json`'s numbers, the dataset and the
    report's path)."""
    ds = compute(out, **kw)
    path = report(ds, out)
    results, curves, _ = _from_dataset(ds)
    return {"results": results, "curves": curves, "dataset": ds, "report": path}


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
    ap.add_argument("--sobolev", type=float, default=0.05)
    ap.add_argument("--seed", type=int, default=0,
                    help="the emulators' initialisation and training key (0: the key of the earlier rows); the "
                         "run folders and the learning curve's designs do not change with it")  # fmt: skip
    ap.add_argument("--val-fraction", type=float, default=0.1, help="training runs held for early stopping")
    ap.add_argument("--curve", default="50,100,150", help="learning-curve sizes ('' = none)")
    ap.add_argument("--curve-family", default="polynomial")
    ap.add_argument("--curve-adjoints", type=int, default=0,
                    help="adjoint runs per learning-curve design (adaptive: at the states propose ranks; LHS: its "
                         "first runs), fitted with the Sobolev term")  # fmt: skip
    ap.add_argument("--curve-sobolev", type=float, default=None, help="Sobolev weight of the curve (default --sobolev)")
    ap.add_argument("--curve-adjoint-at", choices=("ranked", "first", "spread"), default="ranked",
                    help="adaptive design's adjoint states: ranked by propose (default), its first runs, or spread "
                         "over the design (greedy maximin from the base case)")  # fmt: skip
    ap.add_argument("--curve-score", default="", help="learning-curve sizes to fit and score (default all)")
    ap.add_argument("--curve-designs", default="lhs,adaptive",
                    help="learning-curve designs to fit and score: lhs (one-shot), adaptive, or both")
    ap.add_argument("--curve-ctms", default="spectral",
                    help="CTMs of the learning curve (spectral, reference: each runs its extra designs through the "
                         "CTM, the reference CTM as its run folder describes it)")  # fmt: skip
    ap.add_argument("--spectral-days", type=float, default=6.0, help="days simulated per season (spectral CTM)")
    ap.add_argument("--reference-days", type=float, default=4.0, help="days simulated per season (reference CTM)")
    argv = sys.argv[1:] if argv is None else list(argv)  # the report names the command as run
    args = ap.parse_args(argv)
    split = lambda s: [v for v in s.split(",") if v]  # noqa: E731
    res = run(
        args.out, ctms=split(args.ctms), families=split(args.families), n_train=args.n_train, n_test=args.n_test,
        n_adj=args.n_adj, n_adj_test=args.n_adj_test, members=args.members, steps=args.steps, sobolev=args.sobolev,
        seed=args.seed, val_fraction=args.val_fraction, curve=[int(s) for s in split(args.curve)],
        curve_family=args.curve_family, curve_adjoints=args.curve_adjoints, curve_sobolev=args.curve_sobolev,
        curve_adjoint_at=args.curve_adjoint_at, curve_score=[int(v) for v in split(args.curve_score)],
        curve_designs=split(args.curve_designs), curve_ctms=args.curve_ctms.split(","),
        spectral_days=args.spectral_days, reference_days=args.reference_days,
        command=f"python -m experiments.emulator_fidelity {shlex.join(argv)}",
    )  # fmt: skip
    print(res["report"].read_text())
    return res


if __name__ == "__main__":
    main()
