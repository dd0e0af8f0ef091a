"""Test configuration: several CPU devices (so sharding is exercised without a GPU) and float64."""

import atexit
import os
import shutil
import tempfile
from pathlib import Path

# Must be set before JAX initialises its backends.
os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=4")

# One persistent XLA compilation cache for the whole test session, shared with the subprocesses the tests
# start (CLI commands, kill -9 and Ctrl-C fault injection, multi-process Monte Carlo, SLURM array tasks), so
# a function compiled once is not compiled again in every process. Removed at the end of the session.
if "JAX_COMPILATION_CACHE_DIR" not in os.environ:
    _JAX_CACHE = tempfile.mkdtemp(prefix="diffmrio-test-xla-cache-")
    os.environ["JAX_COMPILATION_CACHE_DIR"] = _JAX_CACHE
    os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0.2")
    atexit.register(shutil.rmtree, _JAX_CACHE, ignore_errors=True)

import jax  # noqa: E402
import pytest  # noqa: E402

jax.config.update("jax_enable_x64", True)

# ../shared next to the repository, or where DIFFMRIO_SHARED points (worktrees that are not next to it)
SHARED = Path(os.environ.get("DIFFMRIO_SHARED") or Path(__file__).resolve().parents[1].parent / "shared")


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    """Path to ../shared; tests that need it are skipped (with the reason) when it is absent."""
    if not SHARED.is_dir():
        pytest.skip(f"../shared not found at {SHARED}: real-data fixtures are only on developer/CI machines")
    return SHARED


@pytest.fixture(scope="session")
def quick_demo_chain(tmp_path_factory):
    """The demo chain on the coarse grid (60 CTM runs, a briefly trained emulator), built once per session
    and cached on disk; shared by the chain, demo and experiment tests."""
    from diffmrio.demo import demo_chain, demo_config

    cache = tmp_path_factory.getbasetemp() / "demo_chain_cache"
    return demo_chain(**demo_config(quick=True), cache_dir=cache, progress=False)


@pytest.fixture(scope="session")
def slurm_cluster():
    """A real single-node SLURM cluster (munged, slurmctld, slurmd on this host; see tests/_slurm.py), started
    once per session and stopped, with its temporary folder removed, at the end. Skipped, with the reason,
    only where the slurm-wlm/munge packages (or root) are missing; a cluster that does not come up fails."""
    from _slurm import SlurmUnavailable, start_cluster

    try:
        cluster = start_cluster()
    except SlurmUnavailable as e:
        pytest.skip(str(e))
    try:
        yield cluster
    finally:
        cluster.stop()
