"""diffmrio: differentiable multi-regional input-output analysis, health impacts and the
end-to-end chain from final demand to PM2.5-attributable deaths, in JAX."""

import jax as _jax

# Accounting and gradients are float64 throughout (ARCHITECTURE.md, cross-cutting rules).
_jax.config.update("jax_enable_x64", True)

from ._accounts import (  # noqa: E402
    AccountArrays as AccountArrays,
    account_arrays as account_arrays,
    accounts as accounts,
    coefficients as coefficients,
    footprint as footprint,
    ghosh_arrays as ghosh_arrays,
    intensities as intensities,
    multipliers as multipliers,
    output as output,
)
from ._leontief import (  # noqa: E402
    leontief_inverse as leontief_inverse,
    leontief_solve as leontief_solve,
    leontief_solve_left as leontief_solve_left,
    leontief_solves as leontief_solves,
)
from ._mrio import MRIO as MRIO  # noqa: E402
from ._validate import MRIOError as MRIOError  # noqa: E402


from . import datasets as datasets  # noqa: E402
from ._ceads import CEADSLayout as CEADSLayout, read_ceads as read_ceads  # noqa: E402
from ._trade import (  # noqa: E402
    eebt as eebt,
    eebt_arrays as eebt_arrays,
    sector_flow_arrays as sector_flow_arrays,
    sector_flows as sector_flows,
)

__version__ = "0.1.0"
