"""Multi-process Monte Carlo with `jax.distributed` (issue 15): two local processes with gloo CPU collectives
on 127.0.0.1, with one and with two CPU devices each, return the single-process result on every process
(`run_draws` of a small draw bitwise; the chain to 1e-12 relative: XLA may round the last bit differently when
a device evaluates a different number of draws at once); a checkpoint folder written by one process resumes in
two, and one written by two resumes in one; a refused checkpoint folder and processes computing different
things are refused on every process."""

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import jax
import numpy as np
import pytest
from _chains import small_chain
from _mp_worker import simple_draw

import diffmrio

WORKER = Path(__file__).with_name("_mp_worker.py")
TIMEOUT_S = 420  # a hung collective can never block CI longer than this (a normal run takes far less)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _launch(n_proc: int, devices_each: int, out: Path, checkpoint_dir: Path) -> list[subprocess.Popen]:
    out.mkdir(parents=True, exist_ok=True)
    # the session's other XLA flags (conftest) too: the processes must compile as the reference here does
    flags = [f for f in os.environ.get("XLA_FLAGS", "").split() if "xla_force_host_platform_device_count" not in f]
    env = dict(os.environ, JAX_PLATFORMS="cpu",
               XLA_FLAGS=" ".join([f"--xla_force_host_platform_device_count={devices_each}", *flags]))
    port = _free_port()
    procs = []
    for i in range(n_proc):
        log = open(out / f"log_{i}.txt", "w")  # noqa: SIM115 (closed with the process below)
        procs.append(subprocess.Popen([sys.executable, str(WORKER), str(i), str(n_proc), str(port), str(out),
                                       str(checkpoint_dir)], env=env, stdout=log, stderr=subprocess.STDOUT))
        procs[-1].log = log
    return procs


def _wait(procs: list[subprocess.Popen], deadline: float) -> None:
    try:
        for p in procs:
            p.wait(timeout=max(1.0, deadline - time.monotonic()))
    except subprocess.TimeoutExpired:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    finally:
        for p in procs:
            p.log.close()


def _tail(out: Path) -> str:
    return "\n".join(f"--- {f.name}:\n" + "\n".join(f.read_text().splitlines()[-15:]) for f in sorted(out.glob("log_*")))


@pytest.mark.slow
def test_two_processes_return_the_single_process_result(tmp_path):
    chain = small_chain("linear", ny=4, nx=6, causes=("IHD", "LC"))

    def mc(folder):
        return diffmrio.chain.monte_carlo(chain, None, 8, key=jax.random.key(7), chunk_size=4, progress=False,
                                    by=None, checkpoint_dir=folder)

    # single process (the 4 CPU devices of conftest), leaving a half-finished checkpoint for two processes
    ref_draws = diffmrio.chain.run_draws(simple_draw, 37, key=jax.random.key(3), chunk_size=8, progress=False)
    ref = mc(tmp_path / "one")
    (tmp_path / "one" / "chunk_00001.npz").unlink()
    # 2 processes x 1 device resume it; 2 processes x 2 devices start a fresh folder
    runs = {"2x1": (1, tmp_path / "one"), "2x2": (2, tmp_path / "two")}
    procs = {name: _launch(2, dev, tmp_path / name, ck) for name, (dev, ck) in runs.items()}
    deadline = time.monotonic() + TIMEOUT_S
    for name in runs:
        _wait(procs[name], deadline)
    for name, (dev, _) in runs.items():
        codes = [p.returncode for p in procs[name]]
        assert codes == [0, 0], f"{name}: exit codes {codes} (negative: killed after {TIMEOUT_S} s)\n" + _tail(
            tmp_path / name)
        for i in range(2):
            with np.load(tmp_path / name / f"process_{i}.npz") as z:
                assert int(z["n_devices"]) == 2 * dev
                for k in ref_draws:
                    np.testing.assert_array_equal(z[f"draws_{k}"], ref_draws[k], err_msg=f"{name} process {i}")
                np.testing.assert_array_equal(z["mc_in_envelope"], ref.in_envelope.values)
                for v in ("deaths", "pwpm"):
                    rel = np.abs(z[f"mc_{v}"] / ref[v].values - 1)
                    print(f"{name} process {i} {v}: {int((rel > 0).sum())} of {rel.size} differ from one process, "
                          f"by at most {rel.max():.1e} relative")
                    np.testing.assert_allclose(z[f"mc_{v}"], ref[v].values, rtol=1e-12, atol=0,
                                               err_msg=f"{name} process {i} {v}")
            with np.load(tmp_path / name / "process_1.npz") as z1, np.load(tmp_path / name / "process_0.npz") as z0:
                # a checkpoint of another computation is refused on process 0, which tells the other
                assert "spec differs" in str(z0["refused_spec"]) and str(runs[name][1]) in str(z0["refused_spec"])
                assert "process 0 refused the checkpoint folder" in str(z1["refused_spec"])
                # processes that compute different things (here: different keys) are refused on all of them
                for z in (z0, z1):
                    assert "processes [1] compute a different Monte Carlo" in str(z["refused_key"])
                for k in set(z0.files) - {"refused_spec"}:  # every process returns the same arrays
                    np.testing.assert_array_equal(z1[k], z0[k], err_msg=f"{name}: processes 0 and 1 differ in {k}")
    # the chunks written by process 0 resume in one process, without recomputing
    for folder in (tmp_path / "one", tmp_path / "two"):
        assert len(list(folder.glob("chunk_*.npz"))) == 2
        np.testing.assert_allclose(mc(folder).deaths.values, ref.deaths.values, rtol=1e-12, atol=0)
