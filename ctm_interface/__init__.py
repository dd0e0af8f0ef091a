"""ctm_interface: chemical transport model files in and out (CMAQ I/O API, GEOS-Chem netCDF),
grids and region masks, ensemble design and ingestion, and a reference CTM with an exact adjoint."""

import jax as _jax

_jax.config.update("jax_enable_x64", True)
