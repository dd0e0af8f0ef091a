"""diffmrio: differentiable multi-regional input-output analysis, health impacts and the
end-to-end chain from final demand to PM2.5-attributable deaths, in JAX."""

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
from ._extensions import select_extension as select_extension  # noqa: E402
from ._host_solve import SolveReport as SolveReport, host_leontief_solves as host_leontief_solves  # noqa: E402
from ._leontief import (  # noqa: E402
    RESULTS as RESULTS,
    LeontiefInfo as LeontiefInfo,
    leontief_inverse as leontief_inverse,
    leontief_solve as leontief_solve,
    leontief_solve_left as leontief_solve_left,
    leontief_solves as leontief_solves,
    leontief_solves_checked as leontief_solves_checked,
)
from ._mrio import MRIO as MRIO  # noqa: E402
from ._validate import MRIOError as MRIOError, MRIOWarning as MRIOWarning  # noqa: E402


from . import datasets as datasets  # noqa: E402
from . import health as health  # noqa: E402
from ._anais import AnaisInfeasibleError as AnaisInfeasibleError, AnaisReport as AnaisReport, anais as anais  # noqa: E402
from ._balancing import BalanceReport as BalanceReport, gras as gras, ras as ras  # noqa: E402
from ._concordance import (  # noqa: E402
    aggregate_arrays as aggregate_arrays,
    aggregate_mrio as aggregate_mrio,
    aggregation_matrix as aggregation_matrix,
    apply_concordance as apply_concordance,
    check_concordance as check_concordance,
    concordance_matrix as concordance_matrix,
    link_tables as link_tables,
    split_concordance as split_concordance,
    split_sector as split_sector,
)
from ._export import export_emissions as export_emissions, export_emissions_kernel as export_emissions_kernel  # noqa: E402
from ._layers import (  # noqa: E402
    layer_flows as layer_flows,
    layer_flows_kernel as layer_flows_kernel,
    production_layers as production_layers,
    production_layers_kernel as production_layers_kernel,
)
from ._scenarios import (  # noqa: E402
    convergence_kernel as convergence_kernel,
    footprint_gradients as footprint_gradients,
    intensity_convergence as intensity_convergence,
    optimal_intensity_cuts as optimal_intensity_cuts,
    optimise_intensity_cuts as optimise_intensity_cuts,
    project_budget as project_budget,
)
from ._spa import SPAResult as SPAResult, structural_path_analysis as structural_path_analysis, structural_paths as structural_paths  # noqa: E402
from ._valuechain import (  # noqa: E402
    VALUE_CHAIN_PARTS as VALUE_CHAIN_PARTS,
    value_chain_decomposition as value_chain_decomposition,
    value_chain_kernel as value_chain_kernel,
)
from ._indices import (  # noqa: E402
    CHINA_POLLUTANT_EQUIVALENT_KG as CHINA_POLLUTANT_EQUIVALENT_KG,
    SupplyChainEfficiency as SupplyChainEfficiency,
    coefficient_of_variation as coefficient_of_variation,
    disparity_index as disparity_index,
    disparity_index_from_matrix as disparity_index_from_matrix,
    embodied_trade as embodied_trade,
    gini as gini,
    pollutant_equivalent_coefficients as pollutant_equivalent_coefficients,
    pollutant_equivalents as pollutant_equivalents,
    supply_chain_efficiency as supply_chain_efficiency,
)
from ._ceads import CEADSLayout as CEADSLayout, read_ceads as read_ceads  # noqa: E402
from ._tables import TableWarning as TableWarning, clean_table as clean_table, read_wiod as read_wiod  # noqa: E402
from ._trade import (  # noqa: E402
    eebt as eebt,
    eebt_arrays as eebt_arrays,
    sector_flow_arrays as sector_flow_arrays,
    sector_flows as sector_flows,
)

__version__ = "0.1.0"
from ._attribution import attribute as attribute, group_masks as group_masks, sensitivity as sensitivity  # noqa: E402
from ._chain import (  # noqa: E402
    Chain as Chain,
    ChainInputs as ChainInputs,
    ChainOutputs as ChainOutputs,
    Downscaler as Downscaler,
    SourceMap as SourceMap,
)
from ._fastdraw import ChainDraw as ChainDraw, GroupIndex as GroupIndex, group_index as group_index  # noqa: E402
from ._montecarlo import run_draws as run_draws, summarise as summarise  # noqa: E402
from ._uncertainty import (  # noqa: E402
    DEFAULT_SPECIES_CV as DEFAULT_SPECIES_CV,
    UncertaintySpec as UncertaintySpec,
    envelope_species_bounds as envelope_species_bounds,
    monte_carlo as monte_carlo,
    sample_inputs as sample_inputs,
)
