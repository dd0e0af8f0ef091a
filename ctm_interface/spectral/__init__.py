"""A second stand-in CTM, different in construction from the reference CTM (spectral transport on a periodic
domain with ventilation, oxidant-limited aqueous sulfate, NOx-dependent SOA, another partitioning kernel, 8
regions x 6 species): for judging emulators on a model they were not developed against. `write_run_folder`
writes its runs in the run-folder layout that `ctm_interface.read_run_folder` reads."""

import jax as _jax

_jax.config.update("jax_enable_x64", True)

from ._model import COMPONENTS as COMPONENTS  # noqa: E402
from ._model import REGIONS as REGIONS  # noqa: E402
from ._model import SEASONS as SEASONS  # noqa: E402
from ._model import SPECIES as SPECIES  # noqa: E402
from ._model import SpectralCTM as SpectralCTM  # noqa: E402
from ._model import SpectralWorld as SpectralWorld  # noqa: E402
from ._folder import write_run_folder as write_run_folder  # noqa: E402
