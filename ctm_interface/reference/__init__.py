"""The reference CTM: a small, differentiable JAX chemical transport model that stands in for CMAQ/GEOS-Chem.

Synthetic and honest about it (see docs/reference_ctm.md): two well-mixed layers on a 36 km grid, four seasons
of prescribed winds, deposition, oxidant-limited NOx oxidation and smooth sulfate-nitrate-ammonium
partitioning, with an exact adjoint (`jax.grad` through the model) and CMAQ-shaped I/O API outputs.
"""

import jax as _jax

_jax.config.update("jax_enable_x64", True)

from ._chemistry import oxidant_factor as oxidant_factor  # noqa: E402
from ._chemistry import partition_inorganic as partition_inorganic  # noqa: E402
from ._domain import LEVELS as LEVELS  # noqa: E402
from ._domain import REGIONS as REGIONS  # noqa: E402
from ._domain import SPECIES as SPECIES  # noqa: E402
from ._domain import CTMGrid as CTMGrid  # noqa: E402
from ._domain import DemoDomain as DemoDomain  # noqa: E402
from ._domain import demo_base_emissions as demo_base_emissions  # noqa: E402
from ._domain import demo_domain as demo_domain  # noqa: E402
from ._folder import FOLDER_GRID as FOLDER_GRID  # noqa: E402
from ._folder import run_one as run_one  # noqa: E402
from ._folder import write_run_folder as write_run_folder  # noqa: E402
from ._io import ADJOINT_VARIABLES as ADJOINT_VARIABLES  # noqa: E402
from ._io import CONC_VARIABLES as CONC_VARIABLES  # noqa: E402
from ._io import adjoint_dataset as adjoint_dataset  # noqa: E402
from ._io import conc_dataset as conc_dataset  # noqa: E402
from ._model import COMPONENTS as COMPONENTS  # noqa: E402
from ._model import SEASONS as SEASONS  # noqa: E402
from ._model import TRACERS as TRACERS  # noqa: E402
from ._model import CTMBudget as CTMBudget  # noqa: E402
from ._model import CTMResult as CTMResult  # noqa: E402
from ._model import ReferenceCTM as ReferenceCTM  # noqa: E402
from ._model import pm25_from_components as pm25_from_components  # noqa: E402
from ._model import population_weighted_pm25 as population_weighted_pm25  # noqa: E402

__all__ = [
    "ADJOINT_VARIABLES",
    "COMPONENTS",
    "CONC_VARIABLES",
    "CTMBudget",
    "CTMGrid",
    "CTMResult",
    "DemoDomain",
    "FOLDER_GRID",
    "LEVELS",
    "REGIONS",
    "ReferenceCTM",
    "SEASONS",
    "SPECIES",
    "TRACERS",
    "adjoint_dataset",
    "conc_dataset",
    "demo_base_emissions",
    "demo_domain",
    "oxidant_factor",
    "partition_inorganic",
    "pm25_from_components",
    "population_weighted_pm25",
    "run_one",
    "write_run_folder",
]
