"""Test configuration: several CPU devices (so sharding is exercised without a GPU) and float64."""

import os
from pathlib import Path

# Must be set before JAX initialises its backends.
os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=4")

import jax  # noqa: E402
import pytest  # noqa: E402

jax.config.update("jax_enable_x64", True)

SHARED = Path(__file__).resolve().parents[1].parent / "shared"


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    """Path to ../shared; tests that need it are skipped (with the reason) when it is absent."""
    if not SHARED.is_dir():
        pytest.skip(f"../shared not found at {SHARED}: real-data fixtures are only on developer/CI machines")
    return SHARED
