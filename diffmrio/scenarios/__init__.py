"""Scenarios and indices: footprint gradients, intensity convergence and intensity-cut optimisation; inequality
and efficiency indices (Gini and the Lorenz curve, disparity, supply-chain efficiency, pollutant equivalents, embodied trade)."""

from ._scenarios import (
    convergence_kernel as convergence_kernel,
    convergence_ratios as convergence_ratios,
    convergence_ratios_kernel as convergence_ratios_kernel,
    final_producer_output as final_producer_output,
    footprint_gradients as footprint_gradients,
    intensity_convergence as intensity_convergence,
    optimal_intensity_cuts as optimal_intensity_cuts,
    optimise_intensity_cuts as optimise_intensity_cuts,
    project_budget as project_budget,
)
from ._indices import (
    CHINA_POLLUTANT_EQUIVALENT_KG as CHINA_POLLUTANT_EQUIVALENT_KG,
    SupplyChainEfficiency as SupplyChainEfficiency,
    coefficient_of_variation as coefficient_of_variation,
    disparity_index as disparity_index,
    disparity_index_from_matrix as disparity_index_from_matrix,
    embodied_trade as embodied_trade,
    gini as gini,
    lorenz_curve as lorenz_curve,
    pollutant_equivalent_coefficients as pollutant_equivalent_coefficients,
    pollutant_equivalents as pollutant_equivalents,
    supply_chain_efficiency as supply_chain_efficiency,
)
