"""diffmrio: differentiable multi-regional input-output analysis, health impacts and the
end-to-end chain from final demand to PM2.5-attributable deaths, in JAX."""

import jax as _jax

# Accounting and gradients are float64 throughout (ARCHITECTURE.md, cross-cutting rules).
_jax.config.update("jax_enable_x64", True)

__version__ = "0.1.0"
