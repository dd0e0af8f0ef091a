"""The runtime type checker behind jaxtyping's pytest hook (`--jaxtyping-packages` in pyproject's addopts):
beartype with PEP 484's implicit numeric tower, so an `int` passes where a signature says `float`."""

from beartype import BeartypeConf, beartype

typechecker = beartype(conf=BeartypeConf(is_pep484_tower=True))
