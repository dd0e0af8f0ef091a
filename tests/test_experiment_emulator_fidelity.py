"""The emulator-fidelity experiment, tiny: the spectral CTM with a handful of runs; the reported scores are
recomputed from the saved emulators and the cached CTM runs."""

import json

import numpy as np
import pytest
import xarray as xr

import surrogate as sg


@pytest.mark.slow
def test_emulator_fidelity_tiny(tmp_path):
    from experiments import emulator_fidelity as ef

    argv = ["--out", str(tmp_path), "--ctms", "spectral", "--families", "linear,structured", "--n-train", "12",
            "--n-test", "4", "--n-adj", "3", "--n-adj-test", "2", "--steps", "20", "--curve", "8,12",
            "--spectral-days", "1"]  # fmt: skip
    res = ef.main(argv)
    r = res["results"]["spectral"]
    assert set(r) == {"linear", "structured"}
    assert r["structured"]["spurious"] == 0.0  # structural zeros by construction
    # recompute the structured emulator's worst-receptor NME from the saved model and the cached runs
    data = xr.load_dataset(tmp_path / "ctm_spectral.nc")
    case = ef.SpectralCase(1.0)
    test = ef.run_set(case, data["x_test"].values, data["y_test"].values)
    ev = sg.evaluate(sg.load(tmp_path / "spectral_structured.eqx"), test)
    assert r["structured"]["nme"] == pytest.approx(float(ev["NME"].sel(component="PM25").max()), rel=1e-12)
    # held-out CTM outputs are the CTM's (not the emulator's)
    np.testing.assert_allclose(case.run(data["x_test"].values[:1]), data["y_test"].values[:1], rtol=1e-12)
    curve = res["curves"]["spectral"]
    assert [(c["design"], c["n"]) for c in curve] == [("one-shot LHS", 8), ("one-shot LHS", 12), ("adaptive", 8),
                                                       ("adaptive", 12)]  # fmt: skip
    saved = json.loads((tmp_path / "results.json").read_text())
    assert saved["results"]["spectral"]["linear"]["nme"] == pytest.approx(r["linear"]["nme"])
    assert (tmp_path / "report.md").read_text().startswith("# Emulator fidelity")
