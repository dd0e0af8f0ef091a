"""jaxtyping aliases used in public signatures, so every signature says its shapes."""

from jaxtyping import Array, Float

Matrix = Float[Array, "n n"]
Vector = Float[Array, " n"]
FinalDemand = Float[Array, "n fd"]
Satellite = Float[Array, "stressor n"]
SatelliteFD = Float[Array, "stressor fd"]

__all__ = ["Matrix", "Vector", "FinalDemand", "Satellite", "SatelliteFD", "Array", "Float"]
