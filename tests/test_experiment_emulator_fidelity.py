"""The emulator-fidelity experiment, tiny: the spectral CTM with a handful of runs, written as a run folder and
read back through `ctm_interface.read_run_folder`; the reported scores are recomputed from the saved emulators
and the folder."""

import argparse
import json
import shlex

import numpy as np
import pytest
import xarray as xr

import ctm_interface as ci
import surrogate as sg


@pytest.mark.slow
def test_emulator_fidelity_tiny(tmp_path, capsys):
    from experiments import emulator_fidelity as ef

    argv = ["--out", str(tmp_path), "--ctms", "spectral", "--families", "linear,structured", "--n-train", "10",
            "--n-test", "3", "--n-adj", "2", "--n-adj-test", "2", "--steps", "10", "--sobolev", "0",
            "--curve", "6,8", "--spectral-days", "1"]  # fmt: skip
    res = ef.main(argv)
    r = res["results"]["spectral"]
    assert set(r) == {"linear", "structured"}
    assert r["structured"]["spurious"] == 0.0  # structural zeros by construction
    # the splits the experiment used, read again through the user's path
    toml = tmp_path / "folder_spectral" / "runs.toml"
    train, test, adj = ef.read_folder(toml, argparse.Namespace(n_adj=2, n_adj_test=2))
    assert train.sizes["run"] == 10 and test.sizes["run"] == 3
    assert adj["run"].values.tolist() == [2, 3]  # held-out adjoint states: not trained on
    assert not set(adj["run"].values.tolist()) & set(train["run"].values.tolist())
    sens = train["sensitivity"].values
    assert np.isfinite(sens[:2]).all() and np.isnan(sens[2:]).all()  # the Sobolev states: the first two runs
    # recompute the structured emulator's worst-receptor NME from the saved model and the folder
    ev = sg.evaluate(sg.load(tmp_path / "spectral_structured.eqx"), test)
    assert r["structured"]["nme"] == pytest.approx(float(ev["NME"].sel(component="PM25").max()), rel=1e-12)
    # held-out CTM outputs in the folder are the CTM's own (not the emulator's)
    case = ef.SpectralCase(1.0)
    x = test["scale"].transpose("run", "source", "species").values[:1]
    y = test["pm25"].transpose("run", "component", "receptor").values[:1]
    np.testing.assert_allclose(case.run(x), y, rtol=1e-10)
    curve = res["curves"]["spectral"]
    assert [(c["design"], c["n"]) for c in curve] == [("one-shot LHS", 6), ("one-shot LHS", 8), ("adaptive", 6),
                                                       ("adaptive", 8)]  # fmt: skip
    saved = json.loads((tmp_path / "results.json").read_text())
    assert saved["results"]["spectral"]["linear"]["nme"] == pytest.approx(r["linear"]["nme"])
    assert (tmp_path / "report.md").read_text().startswith("# Emulator fidelity")
    # a second call reuses the folder (same settings), a folder it did not write is refused
    stamp = (toml.parent / "experiment.json").stat().st_mtime_ns
    assert ef.write_folder("spectral", tmp_path, _args()) == toml
    assert (toml.parent / "experiment.json").stat().st_mtime_ns == stamp
    (tmp_path / "other" / "folder_spectral").mkdir(parents=True)
    with pytest.raises(FileExistsError, match="not written by this experiment"):
        ef.write_folder("spectral", tmp_path / "other", _args())
    assert ci.read_run_folder(toml).runs.sizes["run"] == 15
    _check_dataset_and_report(res, tmp_path, capsys.readouterr().out)


def _pct(v):
    return f"{100 * v:.2f} %"


def _check_dataset_and_report(res, out, printed):
    """`compute`'s dataset holds the numbers printed during the fits; `report(ds)` writes them: report.md's
    table parsed back matches the dataset to printed precision, results.json equals the dataset's values, and
    `report` on the dataset alone rewrites main's two files byte for byte."""
    import re

    from experiments import emulator_fidelity as ef

    ds = res["dataset"]
    assert ds["ctm"].values.tolist() == ["spectral"] and ds["family"].values.tolist() == ["linear", "structured"]
    lines = printed.splitlines()
    for fam in ("linear", "structured"):
        d = ds.sel(ctm="spectral", family=fam)
        i = next(k for k, line in enumerate(lines) if line.startswith(f"[spectral] {fam}:"))
        want = (f"[spectral] {fam}: NME {_pct(float(d['nme']))}, MaxNE {_pct(float(d['maxne']))}, species R^2 min "
                f"{float(d['r2_species_min']):.3f}, slopes {float(d['slope_min']):.2f}-{float(d['slope_max']):.2f}, "
                f"pooled R^2 {float(d['r2_pooled']):.3f}, spurious {_pct(float(d['spurious']))}, "
                f"fit {float(d['fit_seconds']):.0f} s")  # fmt: skip
        assert lines[i] == want
        own = [s for s in ds["species"].values.tolist() if int(ds["species_index"].sel(ctm="spectral", species=s)) >= 0]
        r2 = json.loads(re.search(r"per-species R\^2 (\{.*?\}), slope", lines[i + 1]).group(1))
        assert list(r2) == own
        assert r2 == {s: round(float(d["species_r2"].sel(species=s)), 3) for s in own}
        wc = json.loads(lines[i + 2].removeprefix("    MaxNE at "))
        assert wc == json.loads(str(d["worst_case"].values))
    # report.md's table, parsed back
    text = (out / "report.md").read_text()
    rows = [r.split(" | ") for r in text.splitlines() if r.startswith("| spectral |")]
    assert [r[1] for r in rows] == ["linear", "structured"]
    for r in rows:
        d = ds.sel(ctm="spectral", family=r[1])
        assert float(r[2].removesuffix(" %")) == pytest.approx(100 * float(d["nme"]), abs=0.005 + 1e-12)
        assert float(r[3].removesuffix(" %")) == pytest.approx(100 * float(d["maxne"]), abs=0.005 + 1e-12)
        assert float(r[4]) == pytest.approx(float(d["r2_species_min"]), abs=5e-4 + 1e-12, nan_ok=True)
        lo, hi = (float(v) for v in re.fullmatch(r"(-?[\d.]+|nan)-(-?[\d.]+|nan)", r[5]).groups())
        assert lo == pytest.approx(float(d["slope_min"]), abs=5e-3, nan_ok=True)
        assert hi == pytest.approx(float(d["slope_max"]), abs=5e-3, nan_ok=True)
        assert float(r[6]) == pytest.approx(float(d["r2_pooled"]), abs=5e-4 + 1e-12, nan_ok=True)
        assert float(r[7].removesuffix(" %")) == pytest.approx(100 * float(d["spurious"]), abs=0.005 + 1e-12)
    curve_rows = [r.split(" | ") for r in text.splitlines() if r.startswith(("| one-shot LHS |", "| adaptive |"))]
    assert len(curve_rows) == int(ds["curve_rows"].sel(ctm="spectral")) == 4
    for j, r in enumerate(curve_rows):
        c = ds.sel(ctm="spectral", curve_row=j)
        assert r[0] == "| " + str(c["curve_design"].values) and int(r[1]) == int(c["curve_n"])
        assert float(r[2].removesuffix(" %")) == pytest.approx(100 * float(c["curve_nme"]), abs=0.005 + 1e-12)
        assert float(r[4]) == pytest.approx(float(c["curve_r2_species_min"]), abs=5e-4 + 1e-12, nan_ok=True)
    # results.json: the dataset's values, exactly
    saved = json.loads((out / "results.json").read_text())
    assert list(saved) == ["results", "curves", "ctm"]
    for fam, r in saved["results"]["spectral"].items():
        d = ds.sel(ctm="spectral", family=fam)
        assert list(r) == [*ef.SCORES, *ef._PER_SPECIES, "worst_component_nme", "worst_case", "fit_seconds"]
        for k in (*ef.SCORES, "fit_seconds"):
            np.testing.assert_equal(r[k], float(d[k]))
        for k in ef._PER_SPECIES:
            np.testing.assert_equal(r[k], {s: float(d[k].sel(species=s)) for s in r[k]})
        np.testing.assert_equal(r["worst_component_nme"],
                                {c: float(d["worst_component_nme"].sel(component=c)) for c in r["worst_component_nme"]})  # fmt: skip
    for j, row in enumerate(saved["curves"]["spectral"]):
        c = ds.sel(ctm="spectral", curve_row=j)
        assert (row["design"], row["n"], row["adjoints"]) == (str(c["curve_design"].values), int(c["curve_n"]), 0)
        for k in ef.SCORES:
            np.testing.assert_equal(row[k], float(c[f"curve_{k}"]))
    assert saved["ctm"]["spectral"] == json.loads((out / "folder_spectral" / "experiment.json").read_text())
    assert saved["results"] == json.loads(json.dumps(res["results"]))  # what main returned
    # report(ds) alone writes the same two files
    again = ef.report(ds, out / "again")
    assert again.read_text() == text and text in printed
    assert (out / "again" / "results.json").read_text() == (out / "results.json").read_text()


def test_dataset_round_trip_two_ctms():
    """`compute`'s dataset from two CTMs with different species and components (in different orders): NaN
    where a species is not the CTM's, and `report`'s reading gives back the same dicts, keys in the same order."""
    from experiments import emulator_fidelity as ef

    def scores(rng, species, comps):
        return {**{k: float(rng.uniform()) for k in ef.SCORES},
                **{k: {s: float(rng.uniform()) for s in species} for k in ef._PER_SPECIES},
                "worst_component_nme": {c: float(rng.uniform()) for c in comps},
                "worst_case": {"run": int(rng.integers(9)), "errors": [1.5, float("nan")]}, "fit_seconds": 2.0}  # fmt: skip

    rng = np.random.default_rng(0)
    results = {"reference": {f: scores(rng, ["NOX", "SO2", "NH3"], ["PM25", "NO3"]) for f in ("linear", "mlp")},
               "spectral": {f: scores(rng, ["SO2", "PEC"], ["NO3", "PM25", "SO4"]) for f in ("linear", "mlp")}}  # fmt: skip
    row = lambda n: {"design": "adaptive", "n": n, "adjoints": 3,  # noqa: E731
                     **{k: v for k, v in scores(rng, ["SO2", "PEC"], ["PM25"]).items() if k != "fit_seconds"}}
    curves = {"reference": [], "spectral": [row(6), row(8)]}
    meta = {"reference": {"n_train": 5}, "spectral": {"n_train": 6}}
    ds = ef._to_dataset(results, curves, meta, ["reference", "spectral"], {"command": "x"})
    assert ds["species"].values.tolist() == ["NOX", "SO2", "NH3", "PEC"]
    assert np.isnan(ds["species_r2"].sel(ctm="spectral", species="NOX")).all()
    assert float(ds["species_r2"].sel(ctm="spectral", family="mlp", species="PEC")) == results["spectral"]["mlp"]["species_r2"]["PEC"]
    assert ds["species_index"].sel(ctm="reference").values.tolist() == [0, 1, 2, -1]
    assert ds["curve_rows"].values.tolist() == [0, 2]
    got = ef._from_dataset(ds)
    assert json.dumps(got) == json.dumps((results, curves, meta))  # values and key order


def _args():
    return argparse.Namespace(n_train=10, n_test=3, n_adj=2, n_adj_test=2, spectral_days=1.0, reference_days=4.0)


def test_curve_adjoint_states_and_cache(tmp_path):
    """`--curve-adjoints`: where the adjoint runs go (the last adaptive batch by `propose`'s rank, then earlier
    ones, then the first runs), the run set's Sobolev layout, and a cache that reuses adjoints only at the same
    states and the same cost. A linear stand-in CTM (exact adjoints `w . M`), linear emulator: fast."""
    from ctm_interface.spectral import COMPONENTS, REGIONS, SPECIES
    from experiments import emulator_fidelity as ef

    order = ef.adjoint_order(3, [(5, np.array([1, 0])), (7, np.array([2, 0, 1]))])
    assert order.tolist() == [6, 7, 5, 4, 3, 0, 1, 2]  # design = 3 first runs, batch (3, 4), batch (5, 6, 7)

    class Linear:
        name, n_days = "spectral", 1.0
        regions, species, components = REGIONS, SPECIES, COMPONENTS

        def __init__(self, seed=0):
            shape = (len(COMPONENTS), len(REGIONS), len(REGIONS), len(SPECIES))
            self.m = np.random.default_rng(seed).uniform(0.1, 1.0, shape)
            self.w = np.full((len(COMPONENTS), len(REGIONS)), 1.0 / len(REGIONS))
            self.calls = 0

        def run(self, x):
            return np.einsum("crij,nij->ncr", self.m, x)

        def cost_weights(self):
            return self.w

        def adjoint(self, x, w):
            self.calls += len(x)
            return np.broadcast_to(np.einsum("cr,crij->ij", w, self.m), x.shape).copy()

    case = Linear()
    xt = ef.lhs(case, 6, 1, include_base=False)
    test = ef.run_set(case, xt, case.run(xt))
    adj = ef.with_adjoints(case, test, np.arange(6), case.adjoint(xt, case.w), case.w).drop_vars("pm25")
    sens = ef.with_adjoints(case, test, np.array([1, 4]), np.ones((2, 8, 6)), case.w)["sensitivity"].values
    assert np.isfinite(sens[[1, 4]]).all() and np.isnan(sens[[0, 2, 3, 5]]).all()

    def curve(k):
        case.calls = 0
        args = argparse.Namespace(curve_adjoints=k, curve_sobolev=0.05, sobolev=0.05, curve_score=[12], members=1)
        rows = ef.learning_curve(case, tmp_path, [8, 12], "linear", test, adj, args)
        assert [(r["design"], r["n"], r["adjoints"]) for r in rows] == [("one-shot LHS", 12, k), ("adaptive", 12, k)]
        return case.calls

    assert curve(5) == 10  # 5 per design
    case.w = case.w * 2.0  # another cost: nothing reused
    assert curve(5) == 10
    assert curve(4) == 8  # other states: recomputed
    assert curve(0) == 0 and curve(4) == 0  # a curve without adjoints keeps the cached ones and their cost
    c = xr.load_dataset(tmp_path / "curve_spectral.nc")
    np.testing.assert_array_equal(c["ia_lhs12"].values, np.arange(4))  # the one-shot design: its first runs
    np.testing.assert_array_equal(c["ia_ad12"].values, [8, 9, 10, 11])  # adaptive: its batch (after 8 LHS runs)
    assert sorted(c["ar_ad12"].values.tolist()) == [0, 1, 2, 3]  # propose's adjoint ranks of the batch, cached
    g = c["g_ad12"].values
    np.testing.assert_allclose(g[0], np.einsum("cr,crij->ij", case.w, case.m), rtol=1e-12)
    case.config = "another CTM configuration"  # (ReferenceCase: its folder's [reference_ctm] table)
    assert curve(4) == 8  # nothing reused
    # adaptive batches proposed by another committee (or cached before the tag): the one-shot design's adjoints
    # are reused, the adaptive design's batch and its adjoints are not
    assert c.attrs["committee"] == ef.COMMITTEE
    c = xr.load_dataset(tmp_path / "curve_spectral.nc")
    c.attrs["committee"] = "an older committee"
    c.to_netcdf(tmp_path / "curve_spectral.nc")
    assert curve(4) == 4
    assert xr.load_dataset(tmp_path / "curve_spectral.nc").attrs["committee"] == ef.COMMITTEE


def test_seed_changes_the_fits_only(tmp_path, monkeypatch):
    """`--seed`: seed 0 keeps the key of the earlier rows; another seed changes every fit's key of the learning
    curve, and nothing of its designs (the cached runs and adjoint states are the same)."""
    import jax.random as jr

    from ctm_interface.spectral import COMPONENTS, REGIONS, SPECIES
    from experiments import emulator_fidelity as ef

    key = jr.PRNGKey(2026)
    assert ef.fit_key(key, 0) is key
    assert not np.array_equal(jr.key_data(ef.fit_key(key, 1)), jr.key_data(key))
    assert not np.array_equal(jr.key_data(ef.fit_key(key, 1)), jr.key_data(ef.fit_key(key, 2)))
    m = np.random.default_rng(0).uniform(0.1, 1.0, (len(COMPONENTS), len(REGIONS), len(REGIONS), len(SPECIES)))

    class Linear:
        name, n_days = "spectral", 1.0
        regions, species, components = REGIONS, SPECIES, COMPONENTS

        def run(self, x):
            return np.einsum("crij,nij->ncr", m, x)

        def cost_weights(self):
            return np.full((len(COMPONENTS), len(REGIONS)), 1.0 / len(REGIONS))

        def adjoint(self, x, w):
            return np.broadcast_to(np.einsum("cr,crij->ij", w, m), x.shape).copy()

    case = Linear()
    xt = ef.lhs(case, 4, 1, include_base=False)
    test = ef.run_set(case, xt, case.run(xt))
    adj = ef.with_adjoints(case, test, np.arange(4), case.adjoint(xt, case.cost_weights()), case.cost_weights())
    keys, fit = [], ef.fit_family
    monkeypatch.setattr(ef, "fit_family", lambda fam, ds, k, a, sobolev=None: keys.append(k) or fit(fam, ds, k, a, sobolev))

    def curve(seed, out):
        args = argparse.Namespace(curve_adjoints=3, curve_sobolev=0.05, sobolev=0.05, curve_score=[12], members=1,
                                  seed=seed, curve_adjoint_at="spread")  # fmt: skip
        ef.learning_curve(case, out, [8, 12], "linear", test, adj.drop_vars("pm25"), args)
        return xr.load_dataset(out / "curve_spectral.nc")

    c0, c5 = curve(0, tmp_path / "a"), curve(5, tmp_path / "b")
    assert [jr.key_data(k).tolist() for k in keys] == [jr.key_data(jr.PRNGKey(7)).tolist()] * 2 + [
        jr.key_data(jr.fold_in(jr.PRNGKey(7), 5)).tolist()] * 2  # fmt: skip
    for v in c0.data_vars:  # the designs, their adjoint states and adjoints: the same for both seeds
        np.testing.assert_array_equal(c0[v].values, c5[v].values)
    # --curve-adjoint-at spread: the first 3 states of the maximin order over the adaptive design
    x_ad = np.concatenate([c0["x_lhs8"].values, c0["x_ad12"].values])
    np.testing.assert_array_equal(c0["ia_ad12"].values, np.sort(ef.spread_order(x_ad)[:3]))


def test_spread_order_is_greedy_maximin():
    """`spread_order` against a brute-force greedy maximin: from run 0, each next state maximises its smallest
    distance to the states chosen before; a permutation of the design."""
    from experiments import emulator_fidelity as ef

    x = np.random.default_rng(3).uniform(0, 2, (25, 4, 3))
    order = ef.spread_order(x)
    assert sorted(order.tolist()) == list(range(25)) and order[0] == 0
    z = x.reshape(25, -1)
    chosen = [0]
    for i in order[1:]:
        rest = [j for j in range(25) if j not in chosen]
        gap = {j: min(np.sqrt(((z[j] - z[c]) ** 2).sum()) for c in chosen) for j in rest}
        assert gap[i] == pytest.approx(max(gap.values()), rel=1e-12)
        chosen.append(int(i))


@pytest.mark.slow
def test_reference_case_reproduces_its_folder(tmp_path):
    """`ReferenceCase` (the reference CTM's learning curve) computes what its run folder holds: the receptor
    means of the folder's runs and the adjoints of its states, from the folder's emissions, masks,
    population and component names (a tiny grid: fast)."""
    from ctm_interface.reference import CTMGrid, write_run_folder
    from experiments import emulator_fidelity as ef

    toml = write_run_folder(tmp_path / "f", n_train=3, n_test=0, adjoint_states=2, adjoint_on_train=True,
                            low=0.0, high=2.0, n_days=0.5, seed=4,
                            grid=CTMGrid(ncols=8, nrows=6, xcell=216000.0, ycell=216000.0, gdnam="TINY"))  # fmt: skip
    f = ci.read_run_folder(toml)
    case = ef.ReferenceCase(toml)
    assert case.n_days == 0.5 and case.regions == tuple(f.runs["source"].values.tolist())
    assert json.loads(case.config)["seed"] == 4  # the learning-curve cache is tied to this CTM configuration
    x = f.runs["scale"].transpose("run", "source", "species").values
    y = f.runs["pm25"].transpose("run", "component", "receptor").values
    np.testing.assert_allclose(case.run(x), y, rtol=1e-6)  # the files are float32
    a = f.adjoints
    g = case.adjoint(a["scale"].transpose("run", "source", "species").values, case.cost_weights())
    s = a["sensitivity"].transpose("run", "source", "species").values
    np.testing.assert_allclose(g, s, rtol=1e-5, atol=1e-6 * np.abs(s).max())


def test_describe_states_by_hand():
    """`describe_states` on two states of two sources and two species, each number computed by hand."""
    from experiments import emulator_fidelity as ef

    x = np.array([[[0.1, 1.0], [1.5, 0.5]], [[1.0, 1.0], [0.05, 2.0]]])
    g = np.array([[[3.0, 1.0], [4.0, 0.0]], [[0.0, 2.0], [1.0, 0.0]]])
    d = ef.describe_states(x, g, species=0)
    assert d["below"] == 0.5  # 0.1 and 0.05 of the four species-0 factors
    assert d["mean_abs_dev"] == pytest.approx((0.9 + 0 + 0.5 + 0.5 + 0 + 0 + 0.95 + 1.0) / 8)
    assert d["top3_share"] == 1.0  # only two states
    assert d["species_share"] == pytest.approx((9 + 16 + 0 + 1) / (9 + 1 + 16 + 0 + 0 + 4 + 1 + 0))


def test_report_names_the_command_as_run(tmp_path, monkeypatch):
    """Run as `python -m` (argv None), the report names the command line, quoted so it can be pasted back
    (it printed an empty command before)."""
    from experiments import emulator_fidelity as ef

    monkeypatch.setattr("sys.argv", ["emulator_fidelity.py", "--out", str(tmp_path), "--ctms", "", "--curve", ""])
    ef.main()  # no CTM, no curve: only the report
    line = (tmp_path / "report.md").read_text().splitlines()[2]
    assert line == f"`python -m experiments.emulator_fidelity --out {shlex.quote(str(tmp_path))} --ctms '' --curve ''`"
