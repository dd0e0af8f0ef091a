"""The emulator-fidelity experiment, tiny: the spectral CTM with a handful of runs, written as a run folder and
read back through `ctm_interface.read_run_folder`; the reported scores are recomputed from the saved emulators
and the folder."""

import argparse
import json

import numpy as np
import pytest

import ctm_interface as ci
import surrogate as sg


@pytest.mark.slow
def test_emulator_fidelity_tiny(tmp_path):
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


def _args():
    return argparse.Namespace(n_train=10, n_test=3, n_adj=2, n_adj_test=2, spectral_days=1.0, reference_days=4.0)
