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
