"""Datasets: the synthetic demo world (a small MRIO table with geography and air-pollutant satellites, its regions'
positions on the demo map: `demo_positions`) and seeded random MRIO tables for tests and benchmarks
(`random_mrio`)."""

from ctm_interface._deprecated import moved_names as _moved_names
from ._demo import (
    AIR_POLLUTANTS as AIR_POLLUTANTS,
    CATEGORIES as CATEGORIES,
    ELEVATED_SECTORS as ELEVATED_SECTORS,
    REGIONS as REGIONS,
    SECTORS as SECTORS,
    STRESSORS as STRESSORS,
    UNITS as UNITS,
    DemoWorld as DemoWorld,
    demo_positions as demo_positions,
    demo_world as demo_world,
)
from ._random import random_mrio as random_mrio

# the demo pipeline (CTM ensemble, emulator training, health inputs) moved to diffmrio.demo in 0.2
__getattr__ = _moved_names("diffmrio.datasets", dict.fromkeys(
    ("ADULT_AGES", "DEMO_FULL", "DEMO_QUICK", "DemoChain", "base_emissions", "ctm_runs", "demo_chain", "demo_config",
     "demo_ctm", "demo_health_inputs"), "diffmrio.demo"))
