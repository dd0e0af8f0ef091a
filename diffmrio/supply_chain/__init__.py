"""Supply-chain analytics: production layers and layer flows, structural path analysis, export-embodied
emissions (direct versus indirect exports), the value-chain decomposition and the largest flows of a flow matrix."""

from ._layers import (
    layer_flows as layer_flows,
    layer_flows_kernel as layer_flows_kernel,
    production_layers as production_layers,
    production_layers_kernel as production_layers_kernel,
)
from ._spa import (
    SPAResult as SPAResult,
    structural_path_analysis as structural_path_analysis,
    structural_paths as structural_paths,
)
from ._flows import top_flows as top_flows
from ._export import export_emissions as export_emissions, export_emissions_kernel as export_emissions_kernel
from ._valuechain import (
    VALUE_CHAIN_PARTS as VALUE_CHAIN_PARTS,
    value_chain_decomposition as value_chain_decomposition,
    value_chain_kernel as value_chain_kernel,
)
