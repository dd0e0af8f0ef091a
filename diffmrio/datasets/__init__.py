"""Datasets: the synthetic demo world and loaders for real tables."""

from ._demo import (
    AIR_POLLUTANTS as AIR_POLLUTANTS,
    CATEGORIES as CATEGORIES,
    ELEVATED_SECTORS as ELEVATED_SECTORS,
    REGIONS as REGIONS,
    SECTORS as SECTORS,
    STRESSORS as STRESSORS,
    UNITS as UNITS,
    DemoWorld as DemoWorld,
    demo_world as demo_world,
)
from ._demo_chain import (
    ADULT_AGES as ADULT_AGES,
    DEMO_FULL as DEMO_FULL,
    DEMO_QUICK as DEMO_QUICK,
    DemoChain as DemoChain,
    base_emissions as base_emissions,
    ctm_runs as ctm_runs,
    demo_chain as demo_chain,
    demo_config as demo_config,
    demo_ctm as demo_ctm,
    demo_health_inputs as demo_health_inputs,
)
