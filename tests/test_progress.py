"""Progress bars only on a terminal: the one `tqdm` of `ctm_interface._progress` that diffmrio, surrogate and
ctm_interface use is silent when stderr is a file or a pipe, and everywhere after `diffmrio -q`."""

import fcntl
import io
import os
import pty
import struct
import subprocess
import sys
import termios
from pathlib import Path

import pytest

from ctm_interface import _progress

ROOT = Path(__file__).resolve().parents[1]


class _Terminal(io.StringIO):
    def isatty(self):
        return True


@pytest.fixture(autouse=True)
def _not_quiet():
    _progress.set_quiet(False)
    yield
    _progress.set_quiet(False)


def test_bar_drawn_on_a_terminal_silent_on_a_file_and_when_quiet():
    for stream, drawn in ((_Terminal(), True), (io.StringIO(), False)):
        for _ in _progress.tqdm(range(3), file=stream, desc="work"):
            pass
        assert ("work" in stream.getvalue()) is drawn
    # the caller's own switch still wins on a terminal
    t = _Terminal()
    for _ in _progress.tqdm(range(3), file=t, desc="work", disable=True):
        pass
    assert t.getvalue() == ""
    _progress.set_quiet(True)
    t = _Terminal()
    for _ in _progress.tqdm(range(3), file=t, desc="work"):
        pass
    assert t.getvalue() == "" and not _progress.bars_allowed(_Terminal())


def test_cli_quiet_flag_switches_bars_off():
    import argparse

    from diffmrio._cli import data

    assert _progress.bars_allowed(_Terminal())
    data.setup(argparse.Namespace(verbose=0, quiet_level=1))
    assert not _progress.bars_allowed(_Terminal())
    data.setup(argparse.Namespace(verbose=0, quiet_level=0))
    assert _progress.bars_allowed(_Terminal())


# run_draws (Monte Carlo), surrogate.fit and the reference CTM's run_ensemble, each with progress=True
_SCRIPT = """
import jax, jax.numpy as jnp, numpy as np, xarray as xr
jax.config.update("jax_enable_x64", True)
from diffmrio.chain import run_draws
run_draws(lambda k: {"x": jax.random.normal(k)}, 8, key=jax.random.key(0), progress=True, name="mcbar")
import surrogate as sg
rng = np.random.default_rng(0)
s = xr.DataArray(rng.uniform(0.5, 1.5, (12, 2, 2)), dims=("run", "source", "species"),
                 coords={"source": ["a", "b"], "species": ["SO2", "NOx"]})
y = xr.DataArray(rng.uniform(size=(12, 2, 1)), dims=("run", "receptor", "component"),
                 coords={"receptor": ["a", "b"], "component": ["PM25"]}, attrs={"units": "ug m-3"})
runs = xr.Dataset({"scale": s, "pm25": y})
m = sg.MLPEmulator(sg.EmulatorLabels.from_runs(runs), width=4, depth=1, key=jax.random.key(0))
sg.fit(m, runs, key=jax.random.key(1), steps=5, progress=True)
print("done")
"""


def _run(stderr_fd) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(ROOT), JAX_PLATFORMS="cpu")
    return subprocess.run([sys.executable, "-c", _SCRIPT], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                          stderr=stderr_fd, text=True, timeout=300)


@pytest.mark.slow  # two Python processes that import JAX and compile (~15 s CPU each)
def test_no_bar_output_when_stderr_is_a_file_but_bars_on_a_terminal(tmp_path):
    log = tmp_path / "stderr.log"
    with open(log, "w") as fh:
        p = _run(fh)
    assert p.returncode == 0 and "done" in p.stdout, log.read_text()
    text = log.read_text()
    assert "mcbar" not in text and "fit MLPEmulator" not in text and "\r" not in text, text
    # the same program on a pseudo-terminal draws both bars (so the check above could fail)
    main, sub = pty.openpty()
    fcntl.ioctl(sub, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 120, 0, 0))  # a 0-column pty draws empty bars
    try:
        p = _run(sub)
        os.close(sub)
        chunks = []
        while True:
            try:
                b = os.read(main, 65536)
            except OSError:  # EIO once the writer side is closed and drained
                break
            if not b:
                break
            chunks.append(b)
    finally:
        os.close(main)
    tty_text = b"".join(chunks).decode(errors="replace")
    assert p.returncode == 0
    assert "mcbar" in tty_text and "fit MLPEmulator" in tty_text, tty_text[-2000:]
