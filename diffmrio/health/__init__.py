"""Health impacts of PM2.5: concentration-response functions, exposure, attributable deaths, valuation and
loaders for real inputs (gridded population, GBD baseline mortality and age structure).

The chain calls `deaths = HealthModel(inputs, crf)(C)` with `C[row, col]` PM2.5 (ug m-3) and gets
`deaths[cause, age, region]`, differentiable with respect to `C` and the CRF parameters.
"""

from ._crf import (
    FIVE_CAUSES as FIVE_CAUSES,
)
from ._crf import (
    GBD_AGES as GBD_AGES,
)
from ._crf import (
    GEMM as GEMM,
)
from ._crf import (
    IER as IER,
)
from ._crf import (
    AbstractCRF as AbstractCRF,
)
from ._crf import (
    IERDraws as IERDraws,
)
from ._crf import (
    LogLinear as LogLinear,
)
from ._crf import (
    canonical_cause as canonical_cause,
)
from ._exposure import (
    HealthInputs as HealthInputs,
)
from ._exposure import (
    HealthModel as HealthModel,
)
from ._exposure import (
    attributable_deaths as attributable_deaths,
)
from ._exposure import (
    attributable_deaths_kernel as attributable_deaths_kernel,
)
from ._exposure import (
    economic_value as economic_value,
)
from ._exposure import (
    population_weighted_concentration as population_weighted_concentration,
)
from ._exposure import (
    sum_to_regions as sum_to_regions,
)
from ._loaders import (
    build_health_inputs as build_health_inputs,
)
from ._loaders import (
    load_gbd_age_structure as load_gbd_age_structure,
)
from ._loaders import (
    load_gbd_baseline_mortality as load_gbd_baseline_mortality,
)
from ._loaders import (
    load_gbd_china_mortality as load_gbd_china_mortality,
)
from ._loaders import (
    load_gbd_china_population_by_age as load_gbd_china_population_by_age,
)
from ._loaders import (
    load_grid_regions as load_grid_regions,
)
from ._loaders import (
    load_gridded_field as load_gridded_field,
)
from ._loaders import (
    load_gridded_population as load_gridded_population,
)
from ._loaders import (
    load_ier_draws as load_ier_draws,
)
from ._loaders import (
    load_pm25_netcdf as load_pm25_netcdf,
)
from ._params import (
    GEMM_BURNETT2018 as GEMM_BURNETT2018,
)
from ._params import (
    GEMM_CF as GEMM_CF,
)
from ._params import (
    IER_CENTRAL as IER_CENTRAL,
)
from ctm_interface._deprecated import renamed_names as _renamed_names

# 0.2 renamed the labelled edge after the rule of docs/architecture.md (plain name labelled, `_kernel` on arrays),
# and the array sum into regions, which is not `ctm_interface.aggregate_to_regions` (labelled, sums or means)
__getattr__ = _renamed_names(__name__, {"attributable_deaths_xr": "attributable_deaths",
                                        "aggregate_to_regions": "sum_to_regions"})

__all__ = [
    "AbstractCRF",
    "FIVE_CAUSES",
    "GBD_AGES",
    "GEMM",
    "GEMM_BURNETT2018",
    "GEMM_CF",
    "HealthInputs",
    "HealthModel",
    "IER",
    "IERDraws",
    "IER_CENTRAL",
    "LogLinear",
    "attributable_deaths",
    "attributable_deaths_kernel",
    "build_health_inputs",
    "canonical_cause",
    "economic_value",
    "load_gbd_age_structure",
    "load_gbd_baseline_mortality",
    "load_gbd_china_mortality",
    "load_gbd_china_population_by_age",
    "load_grid_regions",
    "load_gridded_field",
    "load_gridded_population",
    "load_ier_draws",
    "load_pm25_netcdf",
    "population_weighted_concentration",
    "sum_to_regions",
]
