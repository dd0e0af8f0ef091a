"""The chain from final demand to deaths (`Chain`: economy -> source map -> emulator -> downscaler -> health),
gradient queries and attribution, uncertainty specification and Monte Carlo (sharded over devices and hosts)."""

from ._chain import (
    Chain as Chain,
    ChainInputs as ChainInputs,
    ChainOutputs as ChainOutputs,
    Downscaler as Downscaler,
    SourceMap as SourceMap,
)
from ._attribution import attribute as attribute, group_masks as group_masks, sensitivity as sensitivity
from ._fastdraw import ChainDraw as ChainDraw, GroupIndex as GroupIndex, group_index as group_index
from ._groups import custom_group_index as custom_group_index
from ._targets import Target as Target, resolve_target as resolve_target
from ._uncertainty import (
    DEFAULT_SPECIES_CV as DEFAULT_SPECIES_CV,
    UncertaintySpec as UncertaintySpec,
    envelope_species_bounds as envelope_species_bounds,
    monte_carlo as monte_carlo,
    sample_inputs as sample_inputs,
)
from ._montecarlo import (
    AUTO_MEMORY_FRACTION as AUTO_MEMORY_FRACTION,
    MAX_CHUNK_SIZE as MAX_CHUNK_SIZE,
    QUANTILES as QUANTILES,
    ChunkPlan as ChunkPlan,
    available_memory as available_memory,
    plan_chunks as plan_chunks,
    run_draws as run_draws,
    summarise as summarise,
)
from ._satellite import deaths_satellite as deaths_satellite, with_deaths_row as with_deaths_row
