"""The benchmarks' random MRIO systems: `diffmrio.datasets.random_mrio` (structure "blocks") as arrays, in the
argument order the benchmark scripts use."""

from __future__ import annotations

from diffmrio.datasets import random_mrio


def random_system(n_regions: int, n_sectors: int, n_stressors: int, n_categories: int, seed: int = 0, **options):
    """`(Z, Y, F, F_Y)` float64 arrays of a productive table with dense domestic and thinner trade blocks;
    `options` (`domestic_share`, `input_share`, `trade_density`) as in `diffmrio.datasets.random_mrio`."""
    return random_mrio(n_regions, n_sectors, n_categories, n_stressors, seed=seed, labelled=False, **options)
