"""Test configuration: several CPU devices (so sharding is exercised without a GPU) and float64."""

import os
from pathlib import Path

# Must be set before JAX initialises its backends.
os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=4")

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
    from diffmrio.datasets import demo_chain, demo_config

    cache = tmp_path_factory.getbasetemp() / "demo_chain_cache"
    return demo_chain(**demo_config(quick=True), cache_dir=cache, progress=False)
