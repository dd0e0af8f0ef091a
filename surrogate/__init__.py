"""surrogate: emulators of GEOS-Chem/CMAQ trained on their runs, whose gradients replicate
adjoint sensitivities."""

import jax as _jax

_jax.config.update("jax_enable_x64", True)
