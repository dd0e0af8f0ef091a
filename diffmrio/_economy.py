r"""The prepared economy: $x$, $A$, $S$ and the LU factors of $I - A$, built once per table.

Every account and decomposition starts from the same three arrays (docs/science.md, section 1),

$$ x = Z 1 + Y 1, \qquad A = Z \, \mathrm{diag}(x)^{-1}, \qquad S = F \, \mathrm{diag}(x)^{-1}, $$

and needs solves with $I - A$. An [`Economy`][diffmrio.Economy] holds them and the factorisation, so the accounts,
production layers, SPA, export and value-chain decompositions and the scenarios of one table share one
factorisation ($n^3/3$ flops) instead of each factoring again. Its solves differentiate through `A` exactly as
[`leontief_solves`][diffmrio.leontief_solves] does (the factors themselves are never differentiated).
"""

from __future__ import annotations

from typing import Any

import equinox as eqx
import jax.numpy as jnp
from jaxtyping import ArrayLike, Int

from ._custom_types import Array, Float
from ._leontief import LeontiefInfo, factor, leontief_solves, leontief_solves_checked
from ._mrio import MRIO


def _safe_div(num, den, xp=jnp):
    """`num / den`, with 0 where `den == 0` (and no NaN in gradients); `xp` is `jax.numpy` or `numpy`."""
    ok = den != 0
    return xp.where(ok, num / xp.where(ok, den, 1.0), 0.0)


def coefficients(
    Z: Float[ArrayLike, "n n"], Y: Float[ArrayLike, "n fd"]
) -> tuple[Float[ArrayLike, " n"], Float[Array, "n n"]]:
    r"""Gross output $x = Z 1 + Y 1$ and technical coefficients $A = Z\,\mathrm{diag}(x)^{-1}$
    (columns with $x = 0$ get zero coefficients, as in pymrio)."""
    x = Z.sum(axis=1) + Y.sum(axis=1)
    return x, _safe_div(Z, x[None, :])


def intensities(F: Float[ArrayLike, "p n"], x: Float[ArrayLike, " n"]) -> Float[Array, "p n"]:
    r"""Direct intensities $S = F\,\mathrm{diag}(x)^{-1}$ (zero where $x = 0$)."""
    return _safe_div(F, x[None, :])


def economy_kernel(
    Z: Float[ArrayLike, "n n"], Y: Float[ArrayLike, "n fd"], F: Float[ArrayLike, "p n"]
) -> tuple[Float[ArrayLike, " n"], Float[Array, "n n"], Float[Array, "p n"]]:
    r"""`(x, A, S)` of a table's arrays: $x = Z 1 + Y 1$, $A = Z\,\mathrm{diag}(x)^{-1}$,
    $S = F\,\mathrm{diag}(x)^{-1}$ (zero columns where $x = 0$, as in pymrio)."""
    x, A = coefficients(Z, Y)
    return x, A, intensities(F, x)


class Economy(eqx.Module):
    r"""A table prepared for solves: gross output `x[n]`, technical coefficients `A[n, n]`, intensities `S[p, n]`
    and the LU factors `(lu, piv)` of $I - A$, computed once.

    Build it with [`Economy.from_mrio`][diffmrio.Economy.from_mrio] (keeps the table, so the labelled functions
    accept the economy in place of the MRIO and reuse its factors: `diffmrio.accounts`,
    `diffmrio.supply_chain.*`, `diffmrio.scenarios.*`) or [`Economy.from_arrays`][diffmrio.Economy.from_arrays]
    (arrays only, e.g. inside `jit` or `grad`). It is a pytree: it passes through `jit` and `vmap`, and gradients
    of its solves reach `A`, hence `Z`, `Y` and `F` when it was built from them inside the differentiated function.

    !!! example
        ```python
        import diffmrio
        from diffmrio.supply_chain import production_layers
        eco = diffmrio.Economy.from_mrio(diffmrio.datasets.demo_world().mrio)
        acc = diffmrio.accounts(eco)             # no new factorisation
        layers = production_layers(eco, T=3)    # nor here
        x = eco.solve(eco.mrio.Y.sum(axis=1))    # (I - A)^{-1} y
        ```
    """

    x: Float[Array, " n"]
    A: Float[Array, "n n"]
    S: Float[Array, "p n"]
    lu: Float[Array, "n n"]
    piv: Int[Array, " n"]
    mrio: MRIO | None = None

    @classmethod
    def from_arrays(
        cls, Z: Float[ArrayLike, "n n"], Y: Float[ArrayLike, "n fd"], F: Float[ArrayLike, "p n"]
    ) -> Economy:
        """The economy of the arrays `Z[n, n]`, `Y[n, fd]`, `F[p, n]` (no labels)."""
        x, A, S = economy_kernel(jnp.asarray(Z), jnp.asarray(Y), jnp.asarray(F))
        lu, piv = factor(A)
        return cls(x=x, A=A, S=S, lu=lu, piv=piv)

    @classmethod
    def from_mrio(cls, mrio: MRIO) -> Economy:
        """The economy of a [`MRIO`][diffmrio.MRIO], which it keeps (labels, `Y`, `F_Y`, units) for the labelled
        functions that take it in place of the table."""
        if not isinstance(mrio, MRIO):
            raise TypeError(f"`Economy.from_mrio` expects a `diffmrio.MRIO`; got {type(mrio).__name__}. For bare "
                            "arrays use `Economy.from_arrays(Z, Y, F)`.")
        e = _prepare_jit(mrio.Z, mrio.Y, mrio.F)
        return cls(x=e.x, A=e.A, S=e.S, lu=e.lu, piv=e.piv, mrio=mrio)

    @property
    def factors(self) -> tuple[Float[Array, "n n"], Int[Array, " n"]]:
        """`(lu, piv)`, the LU factors of $I - A$, for the `factors=` argument of the solve functions."""
        return self.lu, self.piv

    @property
    def n(self) -> int:
        return self.A.shape[-1]

    def solves(
        self, B: Float[ArrayLike, "n k"], C: Float[ArrayLike, "m n"]
    ) -> tuple[Float[Array, "n k"], Float[Array, "m n"]]:
        r"""`(X, W)` with $X = (I - A)^{-1} B$ and $W = C (I - A)^{-1}$ from the stored factors."""
        return leontief_solves(self.A, B, C, self.factors)

    def solves_checked(
        self, B: Float[ArrayLike, "n k"], C: Float[ArrayLike, "m n"]
    ) -> tuple[Float[Array, "n k"], Float[Array, "m n"], LeontiefInfo]:
        """[`leontief_solves_checked`][diffmrio.leontief_solves_checked] from the stored factors."""
        return leontief_solves_checked(self.A, B, C, self.factors)

    def solve(self, B: Float[ArrayLike, "n ..."]) -> Float[Array, "n ..."]:
        r"""Forward Leontief solve $(I - A)^{-1} B$ (`B` a vector or a matrix), e.g. output for final demand."""
        vec = B.ndim == 1
        X, _ = self.solves(B[:, None] if vec else B, jnp.zeros((0, self.n), self.A.dtype))
        return X[:, 0] if vec else X

    def solve_left(self, C: Float[ArrayLike, "... n"]) -> Float[Array, "... n"]:
        r"""Adjoint (transposed) Leontief solve $C (I - A)^{-1}$ (`C` a vector or a matrix), e.g. multipliers
        $M = S L$."""
        vec = C.ndim == 1
        _, W = self.solves(jnp.zeros((self.n, 0), self.A.dtype), C[None, :] if vec else C)
        return W[0] if vec else W


@eqx.filter_jit
def _prepare_jit(Z, Y, F) -> Economy:
    return Economy.from_arrays(Z, Y, F)


def prepared(table: Any, fn: str) -> tuple[MRIO, Economy]:
    """`(mrio, economy)` of what a labelled function was given: an [`MRIO`][diffmrio.MRIO] (prepared here) or an
    [`Economy`][diffmrio.Economy] built by `Economy.from_mrio` (its factors reused)."""
    if isinstance(table, Economy):
        if table.mrio is None:
            raise TypeError(f"`{fn}` needs the table's labels, but this `Economy` was built from bare arrays; build "
                            "it with `diffmrio.Economy.from_mrio(mrio)` or pass the MRIO.")
        return table.mrio, table
    if not isinstance(table, MRIO):
        for field in ("Z", "Y", "F", "regions", "sectors", "categories", "stressors"):
            if not hasattr(table, field):
                raise TypeError(
                    f"`{fn}` expects a `diffmrio.MRIO` (with Z, Y, F and labels) or a `diffmrio.Economy`; got "
                    f"{type(table).__name__}, which has no `{field}`. Build one with `diffmrio.MRIO(...)` or its "
                    "constructors."
                )
        eco = _prepare_jit(table.Z, table.Y, table.F)
        return table, eco
    return table, Economy.from_mrio(table)
