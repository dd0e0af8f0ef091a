"""`diffmrio emulator propose`: a design CSV for the next array job, inside the box, new runs, new run ids,
never overwriting a file."""

import numpy as np
import pandas as pd
import pytest

import ctm_interface as ci
from ctm_interface.reference import write_run_folder


def _cli(capsys, *argv):
    from diffmrio.cli import main

    rc = main([str(a) for a in argv])
    out = capsys.readouterr()
    return rc, out.out, out.err


@pytest.mark.slow
def test_cli_propose_writes_a_new_design(tmp_path, capsys):
    toml = write_run_folder(tmp_path / "runs", n_train=5, n_test=3, records=1)
    model = tmp_path / "model.eqx"
    rc, _, _ = _cli(capsys, "emulator", "fit", toml, "--out", model, "--family", "linear")
    assert rc == 0
    out_csv = tmp_path / "next.csv"
    rc, out, _ = _cli(capsys, "emulator", "propose", model, toml, "--n", "4", "--out", out_csv, "--candidates", "300")
    assert rc == 0 and "4 runs" in out
    d = pd.read_csv(out_csv)
    folder = ci.read_run_folder(toml)
    old_ids = [int(r) for r in folder.runs["run"].values]
    assert list(d["run"]) == list(range(max(old_ids) + 1, max(old_ids) + 5))
    x = d.drop(columns="run").to_numpy()
    old = folder.runs["scale"].transpose("run", "source", "species").values.reshape(len(old_ids), -1)
    cols = [f"{g}:{k}" for g in folder.runs["source"].values for k in folder.runs["species"].values]
    assert list(d.columns[1:]) == cols
    lo = folder.runs["scale"]["low"].values.ravel() if "low" in folder.runs["scale"].coords else old.min(0)
    hi = folder.runs["scale"]["high"].values.ravel() if "high" in folder.runs["scale"].coords else old.max(0)
    assert np.all(x >= lo - 1e-5) and np.all(x <= hi + 1e-5)
    assert np.sqrt(((x[:, None] - old[None]) ** 2).sum(-1)).min() > 1e-3
    # never overwrites
    rc, _, err = _cli(capsys, "emulator", "propose", model, toml, "--n", "2", "--out", out_csv)
    assert rc == 2 and "exists" in err
    # bad counts are named by their flags (the library's `n`/`n_candidates` mean nothing on the command line)
    for args, msg in ((("--n", "0"), "--n must be >= 1 (the number of runs to propose), got 0"),
                      (("--n", "5", "--candidates", "3"), "--candidates (3) must be at least --n (5)")):
        rc, _, err = _cli(capsys, "emulator", "propose", model, toml, *args, "--out", tmp_path / "bad.csv")
        assert rc == 2 and msg in err and not (tmp_path / "bad.csv").exists()
