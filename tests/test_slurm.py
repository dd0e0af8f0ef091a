"""CTM ensembles through SLURM: array scripts by run-id label, per-run status files, failed runs named by run
id, resubmission of only those; on a real single-node SLURM cluster (tests/_slurm.py) where it can start."""

import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from ctm_interface import (
    check_run_outputs,
    failed_runs,
    latin_hypercube_design,
    slurm_array_indices,
    write_manifest,
    write_slurm_script,
)

BASH = shutil.which("bash")
IDS = ["jan_a", "jan_b", "17", "run003", "x.4", "y-5"]


def _folder(tmp_path, ids=IDS, pattern="out/conc_{run}.nc"):
    """A minimal run folder: a long design table and a runs.toml naming the outputs."""
    rows = [(r, g, "SO2", 1.0 + 0.1 * i) for i, r in enumerate(ids) for g in ("R1", "R2")]
    pd.DataFrame(rows, columns=["run", "region", "species", "factor"]).to_csv(tmp_path / "design.csv", index=False)
    toml = tmp_path / "runs.toml"
    toml.write_text(
        f'[design]\nfile = "design.csv"\n\n[outputs]\npattern = "{pattern}"\nformat = "cf"\n'
        'components = {SO4 = "PM25_SO4"}\n'
    )
    return toml


def _output(field):
    """A stand-in CF run output: one component on (time, lat, lon)."""
    coords = {"lat": ("lat", [30.0, 31.0, 32.0], {"units": "degrees_north"}),
              "lon": ("lon", [100.0, 101.0, 102.0, 103.0], {"units": "degrees_east"})}  # fmt: skip
    return xr.Dataset({"PM25_SO4": (("time", "lat", "lon"), field, {"units": "ug m-3"})}, coords=coords)


def _write_output(path, run_id, n_records=4):
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    _output(np.full((n_records, 3, 4), 1.0 + len(run_id))).to_netcdf(path)


def _task(script, index, cwd, **env):
    e = {**os.environ, "SLURM_ARRAY_TASK_ID": str(index), "SLURM_ARRAY_JOB_ID": "99", **env}
    return subprocess.run([BASH, str(script)], cwd=cwd, env=e, capture_output=True, text=True)


# ------------------------------------------------------------------------------------------- scripts
def test_script_maps_array_index_to_run_id_label_and_writes_status(tmp_path):
    toml = _folder(tmp_path)
    script = write_slurm_script(
        tmp_path / "submit.sh",
        toml,
        'echo "member {run_id}"; test "{run_id}" != run003 || exit 7',
        max_concurrent=2,
    )
    text = script.read_text()
    assert "#SBATCH --array=0-5%2" in text
    assert (tmp_path / "submit.run_ids").read_text().split() == IDS
    subprocess.run([BASH, "-n", str(script)], check=True)
    status = tmp_path / "slurm_status"
    for i, r in enumerate(IDS):
        out = _task(script, i, tmp_path)
        assert f"member {r}" in out.stdout
        st = dict(ln.split("=", 1) for ln in (status / f"{r}.status").read_text().splitlines())
        assert st["state"] == "finished" and st["run_id"] == r and st["job"] == f"99_{i}"
        expect = 7 if r == "run003" else 0
        assert out.returncode == expect and st["exit"] == str(expect)
    assert not [p for p in status.iterdir() if p.name.startswith(".")]  # no temporary status files left
    # indices outside the list and a list that no longer matches the script are refused
    assert _task(script, 6, tmp_path).returncode == 2
    (tmp_path / "submit.run_ids").write_text("jan_a\n")
    bad = _task(script, 0, tmp_path)
    assert bad.returncode == 2 and "does not hold 6 run ids" in bad.stderr


def test_script_command_runs_under_set_e(tmp_path):
    """A failing first command of a compound template fails the task, even if a later one succeeds."""
    toml = _folder(tmp_path)
    script = write_slurm_script(tmp_path / "s.sh", toml, "false; echo {run_id} after")
    out = _task(script, 0, tmp_path)
    assert out.returncode == 1 and "after" not in out.stdout
    assert "exit=1" in (tmp_path / "slurm_status" / "jan_a.status").read_text()


def test_script_subset_of_run_ids_and_array_indices(tmp_path):
    toml = _folder(tmp_path)
    write_slurm_script(tmp_path / "submit.sh", toml, "echo {run_id}")
    assert slurm_array_indices(tmp_path / "submit.sh", ["17", "y-5"]) == "2,5"
    with pytest.raises(ValueError, match=r"\['nope'\] are not in"):
        slurm_array_indices(tmp_path / "submit.sh", ["nope"])
    again = write_slurm_script(tmp_path / "again.sh", toml, "echo {run_id}", run_ids=["y-5", "17"])
    assert "#SBATCH --array=0-1\n" in again.read_text()
    assert (tmp_path / "again.run_ids").read_text() == "y-5\n17\n"
    assert _task(again, 1, tmp_path).stdout.count("17") >= 1
    with pytest.raises(ValueError, match="not run ids of the design table"):
        write_slurm_script(tmp_path / "x.sh", toml, "echo {run_id}", run_ids=["17", "zz"])
    with pytest.raises(ValueError, match="more than once"):
        write_slurm_script(tmp_path / "x.sh", toml, "echo {run_id}", run_ids=["17", "17"])


def test_script_refuses_labels_a_shell_would_mangle(tmp_path):
    toml = _folder(tmp_path, ids=["ok1", "two words"])
    with pytest.raises(ValueError, match="'two words' cannot be used as a SLURM array label"):
        write_slurm_script(tmp_path / "s.sh", toml, "echo {run_id}")
    assert not (tmp_path / "s.sh").exists() and not (tmp_path / "s.run_ids").exists()


def test_manifest_with_run_ids_runs_those_members(tmp_path):
    m = write_manifest(tmp_path / "m.json", latin_hypercube_design(5, ["A", "B"], ["SO2"], seed=0))
    script = write_slurm_script(
        tmp_path / "s.sh", m, "echo member {run_id}", run_ids=["run0003"], status_dir=tmp_path / "st"
    )
    out = _task(script, 0, tmp_path)
    assert out.returncode == 0 and "member run0003" in out.stdout
    assert "state=finished" in (tmp_path / "st" / "run0003.status").read_text()
    with pytest.raises(ValueError, match="not run ids of the manifest"):
        write_slurm_script(tmp_path / "s.sh", m, "echo {run_id}", run_ids=["run0009"])


# ------------------------------------------------------------------------------------------- checking
def test_check_run_outputs_names_each_kind_of_failure_by_run_id(tmp_path):
    toml = _folder(tmp_path)
    out, st = tmp_path / "out", tmp_path / "slurm_status"
    st.mkdir()

    def status(r, **kv):
        (st / f"{r}.status").write_text("".join(f"{k}={v}\n" for k, v in {"run_id": r, **kv}.items()))

    _write_output(out / "conc_jan_a.nc", "jan_a")  # ok, with a status file
    status("jan_a", state="finished", exit=0)
    _write_output(out / "conc_jan_b.nc", "jan_b")  # ok, computed outside SLURM (no status file)
    _write_output(out / "conc_17.nc", "17")  # exited 3 after writing a file: not trusted
    status("17", state="finished", exit=3, job="5_2")
    status("run003", state="running", job="5_3", host="n1", start="T")  # killed by the scheduler
    _write_output(out / "conc_x.4.nc", "x.4")  # exit 0, then truncated
    status("x.4", state="finished", exit=0)
    data = (out / "conc_x.4.nc").read_bytes()
    (out / "conc_x.4.nc").write_bytes(data[: len(data) // 2])
    # y-5: never ran (no status, no file)
    rep = check_run_outputs(toml)
    assert list(rep.index) == IDS
    assert rep["status"].to_dict() == {
        "jan_a": "ok",
        "jan_b": "ok",
        "17": "failed",
        "run003": "unfinished",
        "x.4": "invalid",
        "y-5": "missing",
    }
    assert rep.loc["17", "exit_code"] == 3 and "exited with status 3" in rep.loc["17", "reason"]
    assert "5_3 on n1" in rep.loc["run003", "reason"]
    assert "truncated" in rep.loc["x.4", "reason"]
    assert pd.isna(rep.loc["y-5", "exit_code"]) and rep.loc["jan_a", "exit_code"] == 0
    assert rep.loc["jan_a", "path"] == out / "conc_jan_a.nc"
    assert failed_runs(toml) == ["17", "run003", "x.4", "y-5"]


def test_check_run_outputs_flags_bad_values_and_short_runs(tmp_path):
    toml = _folder(tmp_path, ids=["1", "2", "3", "4", "5"], pattern="runs/r{run:03d}.nc")
    runs = tmp_path / "runs"
    for r in ["1", "2", "3"]:
        _write_output(runs / f"r{int(r):03d}.nc", r)
    _write_output(runs / "r004.nc", "4", n_records=3)  # one record short
    grid = np.ones((4, 3, 4))
    grid[1, 2, 3] = np.nan
    _output(grid).to_netcdf(runs / "r005.nc")
    rep = check_run_outputs(toml)
    assert rep.loc["4", "status"] == "invalid" and "3 time records, other runs up to 4" in rep.loc["4", "reason"]
    assert rep.loc["5", "status"] == "invalid" and "PM25_SO4 has 1 NaN/inf values" in rep.loc["5", "reason"]
    assert failed_runs(toml) == ["4", "5"]
    grid[1, 2, 3] = -0.5
    _output(grid).to_netcdf(runs / "r005.nc")
    assert "negative concentrations" in check_run_outputs(toml).loc["5", "reason"]


def test_check_run_outputs_exit_zero_without_file(tmp_path):
    toml = _folder(tmp_path, ids=["a"])
    (tmp_path / "slurm_status").mkdir()
    (tmp_path / "slurm_status" / "a.status").write_text("state=finished\nexit=0\n")
    rep = check_run_outputs(toml)
    assert rep.loc["a", "status"] == "invalid" and "wrote no output file" in rep.loc["a", "reason"]


def test_check_run_outputs_bad_folder_errors_name_the_problem(tmp_path):
    from ctm_interface import CTMFileError

    with pytest.raises(CTMFileError, match="runs.toml does not exist"):
        check_run_outputs(tmp_path / "runs.toml")
    (tmp_path / "runs.toml").write_text('[design]\nfile = "design.csv"\n[outputs]\nformat = "cf"\n')
    with pytest.raises(CTMFileError, match=r"\[outputs\] pattern is missing"):
        check_run_outputs(tmp_path / "runs.toml")


def test_cli_script_check_and_resubmit_dry_run(tmp_path, monkeypatch, capsys):
    from diffmrio.cli import main

    toml = _folder(tmp_path)
    monkeypatch.chdir(tmp_path)
    assert main(["slurm", "script", str(toml), "--out", "submit.sh", "--run", "17", "--run", "jan_b"]) == 0
    assert "submit.sh: 2 runs" in capsys.readouterr().out
    assert (tmp_path / "submit.run_ids").read_text() == "17\njan_b\n"
    text = (tmp_path / "submit.sh").read_text()
    assert f"-m diffmrio.cli ctm run {toml.resolve()} --run ${{RUN_ID}}" in text  # the default command
    assert main(["slurm", "script", str(toml), "--out", "submit.sh"]) == 0
    for r in IDS[:4]:
        _write_output(tmp_path / "out" / f"conc_{r}.nc", r)
    capsys.readouterr()
    assert main(["slurm", "check", str(toml), "--all"]) == 1
    captured = capsys.readouterr()
    assert [ln.split("\t")[1] for ln in captured.out.splitlines()] == ["ok"] * 4 + ["missing"] * 2
    assert "4 of 6 runs ok" in captured.err
    assert main(["slurm", "resubmit", str(toml), "--script", "submit.sh", "--dry-run"]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == "sbatch --parsable --array=4,5 submit.sh"
    # a task that started and never finished is only rerun on request
    (tmp_path / "slurm_status").mkdir()
    (tmp_path / "slurm_status" / "y-5.status").write_text("state=running\njob=3_5\n")
    assert main(["slurm", "resubmit", str(toml), "--script", "submit.sh", "--dry-run"]) == 0
    out = capsys.readouterr()
    assert out.out.splitlines()[-1] == "sbatch --parsable --array=4 submit.sh" and "['y-5']" in out.err
    assert main(["slurm", "resubmit", str(toml), "--script", "submit.sh", "--dry-run", "--include-unfinished"]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == "sbatch --parsable --array=4,5 submit.sh"


def test_cluster_fixture_says_why_it_cannot_start(monkeypatch):
    import _slurm

    monkeypatch.setattr(_slurm.shutil, "which", lambda b: None if b in ("slurmd", "munged") else "/usr/bin/" + b)
    why = _slurm.missing_requirements()
    assert "munged, slurmd" in why and "apt-get install" in why
    with pytest.raises(_slurm.SlurmUnavailable, match="munged, slurmd"):
        _slurm.start_cluster()


# ------------------------------------------------------------------------------------------- a real cluster
def test_array_job_on_slurm_failure_caught_and_resubmitted(slurm_cluster, tmp_path):
    """sbatch an array over run-id labels (a stand-in CTM that copies a template output); one task exits
    non-zero and one output is truncated afterwards; both are named by run id and resubmitting only their
    array indices completes the set without touching the other runs."""
    toml = _folder(tmp_path)
    _write_output(tmp_path / "template.nc", "template")
    (tmp_path / "logs").mkdir()
    cmd = (
        'if [ "{run_id}" = 17 ] && [ ! -e attempt_17 ]; then touch attempt_17; echo injected >&2; exit 3; fi; '
        "mkdir -p out; cp template.nc out/conc_{run_id}.nc"
    )
    script = write_slurm_script(tmp_path / "submit.sh", toml, cmd, job_name="standin", time="00:05:00")
    job = slurm_cluster.sbatch(str(script), cwd=tmp_path)
    slurm_cluster.wait(job, timeout=120)
    assert failed_runs(toml) == ["17"]
    assert (tmp_path / "logs" / f"standin_{job}_2.err").read_text().strip() == "injected"
    rep = check_run_outputs(toml)
    assert rep.loc["17", "status"] == "failed" and rep.loc["17", "exit_code"] == 3
    assert (tmp_path / "slurm_status" / "17.status").read_text().count(f"job={job}_2") == 1
    truncated = tmp_path / "out" / "conc_x.4.nc"
    truncated.write_bytes(truncated.read_bytes()[:100])
    failed = failed_runs(toml)
    assert failed == ["17", "x.4"]
    before = {r: (tmp_path / "out" / f"conc_{r}.nc").stat().st_mtime_ns for r in IDS if r not in failed}
    array = slurm_array_indices(script, failed)
    assert array == "2,4"
    job2 = slurm_cluster.sbatch(f"--array={array}", str(script), cwd=tmp_path)
    slurm_cluster.wait(job2, timeout=120)
    rep = check_run_outputs(toml)
    assert (rep["status"] == "ok").all(), rep
    assert {r: (tmp_path / "out" / f"conc_{r}.nc").stat().st_mtime_ns for r in before} == before
    assert sorted(p.name for p in (tmp_path / "logs").glob(f"standin_{job2}_*.out")) == [
        f"standin_{job2}_2.out",
        f"standin_{job2}_4.out",
    ]


@pytest.mark.slow
def test_reference_ctm_array_on_slurm_resubmit_collect_and_train(slurm_cluster, tmp_path, monkeypatch, capsys):
    """End to end on a real SLURM: an array of 8 reference-CTM runs (`diffmrio ctm run RUNS_TOML --run ID`),
    one task exits non-zero and one leaves a truncated output; `diffmrio slurm check` names both by run id,
    `diffmrio slurm resubmit` reruns only them, then `read_run_folder` ingests the set (the same numbers as
    the reference CTM computes in this process) and a linear emulator trains on it."""
    import surrogate as sg
    from ctm_interface import read_ioapi, read_run_folder
    from ctm_interface.reference import CTMGrid, run_one, write_run_folder
    from diffmrio.cli import main

    folder_kw = dict(n_train=6, n_test=2, n_days=1.0, seed=3,
                     grid=CTMGrid(ncols=8, nrows=6, xcell=216000.0, ycell=216000.0, gdnam="TINY"))  # fmt: skip
    toml = write_run_folder(tmp_path / "folder", outputs=False, **folder_kw)
    out = {r: tmp_path / "folder" / "runs" / f"CCTM_ELMO_run{r:03d}.nc" for r in range(8)}
    wrapper = tmp_path / "ctm_or_fail.sh"
    wrapper.write_text(
        "#!/bin/bash\nset -e\n"
        '# injected failures, once each: run 2 dies before writing, run 5 leaves a truncated file\n'
        'if [ "$1" = 2 ] && [ ! -e injected_2 ]; then touch injected_2; echo "injected failure" >&2; exit 9; fi\n'
        f'{shlex.quote(sys.executable)} -m diffmrio.cli ctm run {shlex.quote(str(toml))} --run "$1"\n'
        f'if [ "$1" = 5 ] && [ ! -e injected_5 ]; then touch injected_5; truncate -s 3000 {shlex.quote(str(out[5]))}; fi\n'
    )
    repo = Path(__file__).resolve().parents[1]
    submit = tmp_path / "submit.sh"
    assert main(["slurm", "script", str(toml), "--out", str(submit), "--command", f"bash {wrapper} {{run_id}}",
                 "--time", "00:20:00", "--cpus-per-task", "1", "--job-name", "refctm",
                 "--setup", f"export PYTHONPATH={shlex.quote(str(repo))}"]) == 0  # fmt: skip
    assert f"8 runs; submit with: mkdir -p logs && sbatch {submit}" in capsys.readouterr().out
    (tmp_path / "logs").mkdir()
    job = slurm_cluster.sbatch(str(submit), cwd=tmp_path)
    assert slurm_cluster.queued(job), "the array job should be pending or running right after sbatch"
    slurm_cluster.wait(job, timeout=900)

    # both injected failures, and only those, are named by run id
    monkeypatch.setenv("SLURM_CONF", slurm_cluster.env["SLURM_CONF"])
    monkeypatch.chdir(tmp_path)
    rep = check_run_outputs(toml)
    assert failed_runs(toml) == ["2", "5"], rep
    assert rep.loc["2", "status"] == "failed" and rep.loc["2", "exit_code"] == 9
    assert rep.loc["5", "status"] == "invalid" and rep.loc["5", "exit_code"] == 0
    assert (tmp_path / "logs" / f"refctm_{job}_2.err").read_text().strip().endswith("injected failure")
    assert main(["slurm", "check", str(toml)]) == 1
    printed = capsys.readouterr()
    assert [ln.split("\t")[:2] for ln in printed.out.splitlines()] == [["2", "failed"], ["5", "invalid"]]
    assert "6 of 8 runs ok" in printed.err
    kept = {r: out[r].stat().st_mtime_ns for r in (0, 1, 3, 4, 6, 7)}

    assert main(["slurm", "resubmit", str(toml), "--script", str(submit)]) == 0
    line = capsys.readouterr().out.splitlines()[-1]
    assert line.startswith("resubmitted 2 run(s) ['2', '5'] as job ")
    job2 = line.rsplit(" ", 1)[1]
    slurm_cluster.wait(job2, timeout=600)
    assert failed_runs(toml) == []
    assert {r: out[r].stat().st_mtime_ns for r in kept} == kept  # only the failed runs were rerun
    assert main(["slurm", "resubmit", str(toml), "--script", str(submit)]) == 0
    assert "all 8 runs ok: nothing to resubmit" in capsys.readouterr().out

    # the cluster's outputs equal the reference CTM run here, for the resubmitted runs and one other
    local = write_run_folder(tmp_path / "local", outputs=False, **folder_kw)
    for r in (0, 2, 5):
        a, b = read_ioapi(out[r]), read_ioapi(run_one(local, r))
        for v in ("PM25_SO4", "PM25_NO3", "PM25_OC", "PM25_TOT"):
            np.testing.assert_allclose(a[v].values, b[v].values, rtol=1e-12, atol=0)

    folder = read_run_folder(toml)
    assert sorted(folder.runs["run"].values.tolist()) == list(range(8))
    train, test = folder.split("train"), folder.split("test")
    model = sg.fit(sg.LinearEmulator(sg.EmulatorLabels.from_runs(train)), train, progress=False)
    # minimum-norm least squares through 6 runs with 42 factors: it reproduces the training runs
    pred = sg.predict(model, train["scale"].values)
    np.testing.assert_allclose(pred, train["pm25"].transpose("run", "component", "receptor").values, rtol=1e-6)
    ev = sg.evaluate(model, test)
    assert np.all(np.isfinite(ev["NME"].values))
