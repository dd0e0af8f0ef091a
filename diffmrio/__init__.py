"""diffmrio: differentiable multi-regional input-output analysis, health impacts and the end-to-end chain from
final demand to PM2.5-attributable deaths, in JAX.

The top level holds the core: the table (`MRIO`), Leontief solves, accounts and trade-embodied flows. The rest
lives in subpackages that follow the API's sections: `diffmrio.tables` (balancing, ANAIS, concordances, readers),
`diffmrio.supply_chain` (layers, SPA, export and value-chain decompositions), `diffmrio.scenarios` (scenario
optimisation and indices), `diffmrio.chain` (the chain, attribution, uncertainty, Monte Carlo), `diffmrio.health`,
`diffmrio.datasets` and `diffmrio.demo` (the demo pipeline and reports; the only part that draws figures)."""

import jax as _jax

# Accounting and gradients are float64 throughout (docs/architecture.md, cross-cutting rules).
_jax.config.update("jax_enable_x64", True)

from ._accounts import (  # noqa: E402
    AccountArrays as AccountArrays,
    account_arrays as account_arrays,
    account_arrays_host as account_arrays_host,
    accounts as accounts,
    coefficients as coefficients,
    footprint as footprint,
    ghosh_arrays as ghosh_arrays,
    intensities as intensities,
    multipliers as multipliers,
    output as output,
)
from ._economy import Economy as Economy  # noqa: E402
from ._extensions import select_extension as select_extension
from ._host_solve import SolveReport as SolveReport, host_leontief_solves as host_leontief_solves
from ._leontief import (
    RESULTS as RESULTS,
    LeontiefInfo as LeontiefInfo,
    leontief_inverse as leontief_inverse,
    leontief_solve as leontief_solve,
    leontief_solve_left as leontief_solve_left,
    leontief_solves as leontief_solves,
    leontief_solves_checked as leontief_solves_checked,
)
from ._mrio import MRIO as MRIO
from ._trade import (
    eebt as eebt,
    eebt_arrays as eebt_arrays,
    sector_flow_arrays as sector_flow_arrays,
    sector_flows as sector_flows,
)
from ._validate import MRIOError as MRIOError, MRIOWarning as MRIOWarning, TableWarning as TableWarning

from . import chain as chain
from . import datasets as datasets
from . import health as health
from . import scenarios as scenarios
from . import supply_chain as supply_chain
from . import tables as tables
from ctm_interface._deprecated import moved_names as _moved_names

__version__ = "0.2.0"

# names that moved into subpackages in 0.2 resolve here with a DeprecationWarning until 0.3
__getattr__ = _moved_names("diffmrio", {
    # diffmrio.tables
    "AnaisInfeasibleError": "diffmrio.tables",
    "AnaisReport": "diffmrio.tables",
    "anais": "diffmrio.tables",
    "BalanceReport": "diffmrio.tables",
    "gras": "diffmrio.tables",
    "ras": "diffmrio.tables",
    "aggregate_arrays": "diffmrio.tables",
    "aggregate_mrio": "diffmrio.tables",
    "aggregation_matrix": "diffmrio.tables",
    "apply_concordance": "diffmrio.tables",
    "check_concordance": "diffmrio.tables",
    "concordance_matrix": "diffmrio.tables",
    "link_tables": "diffmrio.tables",
    "split_concordance": "diffmrio.tables",
    "split_sector": "diffmrio.tables",
    "CEADSLayout": "diffmrio.tables",
    "read_ceads": "diffmrio.tables",
    "clean_table": "diffmrio.tables",
    "read_wiod": "diffmrio.tables",
    # diffmrio.supply_chain
    "export_emissions": "diffmrio.supply_chain",
    "export_emissions_kernel": "diffmrio.supply_chain",
    "layer_flows": "diffmrio.supply_chain",
    "layer_flows_kernel": "diffmrio.supply_chain",
    "production_layers": "diffmrio.supply_chain",
    "production_layers_kernel": "diffmrio.supply_chain",
    "SPAResult": "diffmrio.supply_chain",
    "structural_path_analysis": "diffmrio.supply_chain",
    "structural_paths": "diffmrio.supply_chain",
    "VALUE_CHAIN_PARTS": "diffmrio.supply_chain",
    "value_chain_decomposition": "diffmrio.supply_chain",
    "value_chain_kernel": "diffmrio.supply_chain",
    # diffmrio.scenarios
    "convergence_kernel": "diffmrio.scenarios",
    "footprint_gradients": "diffmrio.scenarios",
    "intensity_convergence": "diffmrio.scenarios",
    "optimal_intensity_cuts": "diffmrio.scenarios",
    "optimise_intensity_cuts": "diffmrio.scenarios",
    "project_budget": "diffmrio.scenarios",
    "CHINA_POLLUTANT_EQUIVALENT_KG": "diffmrio.scenarios",
    "SupplyChainEfficiency": "diffmrio.scenarios",
    "coefficient_of_variation": "diffmrio.scenarios",
    "disparity_index": "diffmrio.scenarios",
    "disparity_index_from_matrix": "diffmrio.scenarios",
    "embodied_trade": "diffmrio.scenarios",
    "gini": "diffmrio.scenarios",
    "pollutant_equivalent_coefficients": "diffmrio.scenarios",
    "pollutant_equivalents": "diffmrio.scenarios",
    "supply_chain_efficiency": "diffmrio.scenarios",
    # diffmrio.chain
    "attribute": "diffmrio.chain",
    "group_masks": "diffmrio.chain",
    "sensitivity": "diffmrio.chain",
    "Chain": "diffmrio.chain",
    "ChainInputs": "diffmrio.chain",
    "ChainOutputs": "diffmrio.chain",
    "Downscaler": "diffmrio.chain",
    "SourceMap": "diffmrio.chain",
    "ChainDraw": "diffmrio.chain",
    "GroupIndex": "diffmrio.chain",
    "group_index": "diffmrio.chain",
    "run_draws": "diffmrio.chain",
    "summarise": "diffmrio.chain",
    "DEFAULT_SPECIES_CV": "diffmrio.chain",
    "UncertaintySpec": "diffmrio.chain",
    "envelope_species_bounds": "diffmrio.chain",
    "monte_carlo": "diffmrio.chain",
    "sample_inputs": "diffmrio.chain",
})
