"""ctm_interface: chemical transport model files in and out (CMAQ I/O API, GEOS-Chem netCDF),
grids and region masks, ensemble design and ingestion; the reference CTM with an exact adjoint and its demo domain
are in `ctm_interface.reference`, the spectral stand-in CTM in `ctm_interface.spectral`."""

import jax as _jax

_jax.config.update("jax_enable_x64", True)

from ._ensemble import collect_runs as collect_runs  # noqa: E402
from ._ensemble import design_table as design_table  # noqa: E402
from ._ensemble import latin_hypercube_design as latin_hypercube_design  # noqa: E402
from ._ensemble import read_manifest as read_manifest  # noqa: E402
from ._ensemble import sobol_design as sobol_design  # noqa: E402
from ._ensemble import write_manifest as write_manifest  # noqa: E402
from ._ensemble import write_run_inputs as write_run_inputs  # noqa: E402
from ._ensemble import write_slurm_script as write_slurm_script  # noqa: E402
from ._errors import CTMFileError as CTMFileError  # noqa: E402
from ._slurm import check_run_outputs as check_run_outputs  # noqa: E402
from ._slurm import failed_runs as failed_runs  # noqa: E402
from ._slurm import slurm_array_indices as slurm_array_indices  # noqa: E402
from ._geoschem import hybrid_pressure as hybrid_pressure  # noqa: E402
from ._geoschem import read_cf_latlon as read_cf_latlon  # noqa: E402
from ._geoschem import read_geoschem as read_geoschem  # noqa: E402
from ._griddesc import read_griddesc as read_griddesc  # noqa: E402
from ._griddesc import write_griddesc as write_griddesc  # noqa: E402
from ._grids import EARTH_RADIUS_M as EARTH_RADIUS_M  # noqa: E402
from ._grids import GridDefinition as GridDefinition  # noqa: E402
from ._grids import cell_centres_lonlat as cell_centres_lonlat  # noqa: E402
from ._grids import grid_from_ioapi_attrs as grid_from_ioapi_attrs  # noqa: E402
from ._ioapi import IOAPI_GLOBAL_ATTRS as IOAPI_GLOBAL_ATTRS  # noqa: E402
from ._ioapi import check_same_grid as check_same_grid  # noqa: E402
from ._ioapi import cmaq_pm25 as cmaq_pm25  # noqa: E402
from ._ioapi import ioapi_datetime as ioapi_datetime  # noqa: E402
from ._ioapi import ioapi_grid as ioapi_grid  # noqa: E402
from ._ioapi import read_ioapi as read_ioapi  # noqa: E402
from ._ioapi import write_ioapi as write_ioapi  # noqa: E402
from ._runfolder import RunFolder as RunFolder  # noqa: E402
from ._runfolder import base_case as base_case  # noqa: E402
from ._runfolder import check_run_folder as check_run_folder  # noqa: E402
from ._runfolder import desid_emissions as desid_emissions  # noqa: E402
from ._runfolder import read_design as read_design  # noqa: E402
from ._runfolder import read_emissions as read_emissions  # noqa: E402
from ._runfolder import read_population as read_population  # noqa: E402
from ._runfolder import read_region_masks as read_region_masks  # noqa: E402
from ._runfolder import read_run_folder as read_run_folder  # noqa: E402
from ._runfolder import read_runs_toml as read_runs_toml  # noqa: E402
from ._vocabulary import FRAMEWORK_COMPONENTS as FRAMEWORK_COMPONENTS  # noqa: E402
from ._vocabulary import VOCABULARIES as VOCABULARIES  # noqa: E402
from ._vocabulary import CTM_COMPONENTS as CTM_COMPONENTS  # noqa: E402
from ._vocabulary import DEMO_REGIONS as DEMO_REGIONS  # noqa: E402
from ._vocabulary import EMISSION_LEVELS as EMISSION_LEVELS  # noqa: E402
from ._vocabulary import EMISSION_SPECIES as EMISSION_SPECIES  # noqa: E402
from ._vocabulary import pm25_weights as pm25_weights  # noqa: E402
from ._vocabulary import resolve_components as resolve_components  # noqa: E402
from ._regions import aggregate_to_regions as aggregate_to_regions  # noqa: E402
from ._regions import allocate_to_grid as allocate_to_grid  # noqa: E402
from ._regions import region_kernel as region_kernel  # noqa: E402
from ._regions import spread_to_grid as spread_to_grid  # noqa: E402
from ._regions import region_fractions_from_points as region_fractions_from_points  # noqa: E402
from ._regions import region_fractions_from_polygons as region_fractions_from_polygons  # noqa: E402
from ._regions import regrid_population as regrid_population  # noqa: E402

from . import reference as reference  # noqa: E402
from ._deprecated import moved_names as _moved_names  # noqa: E402

# the reference CTM and its demo domain moved to ctm_interface.reference in 0.2; the old names warn until 0.3
__getattr__ = _moved_names("ctm_interface", dict.fromkeys(
    ("ADJOINT_VARIABLES", "COMPONENTS", "CONC_VARIABLES", "LEVELS", "REGIONS", "SEASONS", "SPECIES", "CTMBudget",
     "CTMGrid", "CTMResult", "DemoDomain", "ReferenceCTM", "demo_base_emissions", "demo_domain",
     "pm25_from_components", "population_weighted_pm25"), "ctm_interface.reference"))
