r"""The Leontief solve: factor $I - A$ once, solve for every right-hand side needed.

Accounts need $X = (I - A)^{-1} B$ (output driven by final demand) and $W = C (I - A)^{-1}$
(multipliers such as $M = S L$). Neither needs $L = (I - A)^{-1}$ itself, which costs three
times the factorisation and $n^2$ memory more. Gradients are exact and reuse the LU factors
(implicit differentiation of $(I - A) X = B$):

$$\bar B = (I - A)^{-T} \bar X, \qquad \bar C = \bar W (I - A)^{-T}, \qquad
  \bar A = \bar B X^T + W^T \bar C .$$

Reference: Miller & Blair (2009), *Input-Output Analysis*, ch. 2; the VJP is the standard
adjoint of a linear solve (e.g. Giles 2008, "Collected matrix derivative results").
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.scipy.linalg as jsl
from jaxtyping import ArrayLike, Int

from ._custom_types import Array, Float


def factor(A: Float[ArrayLike, "n n"]) -> tuple[Float[Array, "n n"], Int[Array, " n"]]:
    r"""The LU factors `(lu, piv)` of $I - A$ (`jax.scipy.linalg.lu_factor`), the one factorisation every solve
    reuses. Not differentiated itself: the solves' VJP differentiates through `A` (module docstring), so no
    derivative of the factorisation is ever formed."""
    n = A.shape[-1]
    return jsl.lu_factor(jax.lax.stop_gradient(jnp.eye(n, dtype=A.dtype) - A))


def _solve(lu_piv, B, trans: int):
    if B.shape[-1] == 0:
        return B
    return jsl.lu_solve(lu_piv, B, trans=trans)


@jax.custom_vjp
def _factored_solves(A, lu, piv, B, C):
    """`((I - A)^{-1} B, C (I - A)^{-1})` from the factors `(lu, piv)` of `I - A`; the VJP goes to `A`, `B`, `C`."""
    return _solve((lu, piv), B, 0), _solve((lu, piv), C.T, 1).T


def _fwd(A, lu, piv, B, C):
    X, W = _factored_solves(A, lu, piv, B, C)
    return (X, W), (lu, piv, X, W)


def _bwd(res, cts):
    lu, piv, X, W = res
    Xbar, Wbar = cts
    Bbar = _solve((lu, piv), Xbar, 1)  # (I-A)^{-T} Xbar
    Cbar = _solve((lu, piv), Wbar.T, 0).T  # Wbar (I-A)^{-T}
    Abar = Bbar @ X.T + W.T @ Cbar
    return Abar, None, None, Bbar, Cbar


_factored_solves.defvjp(_fwd, _bwd)


def leontief_solves(
    A: Float[ArrayLike, "n n"], B: Float[ArrayLike, "n k"], C: Float[ArrayLike, "m n"],
    factors: tuple[Float[Array, "n n"], Int[Array, " n"]] | None = None,
) -> tuple[Float[Array, "n k"], Float[Array, "m n"]]:
    r"""Both Leontief solves from one factorisation.

    **Arguments:**

    - `A`: technical coefficients, shape `(n, n)`.
    - `B`: right-hand sides, shape `(n, k)` (e.g. final demand columns).
    - `C`: left-hand sides, shape `(m, n)` (e.g. intensities `S`).
    - `factors`: the LU factors `(lu, piv)` of $I - A$ (e.g. an
      [`Economy`][diffmrio.Economy]'s), to reuse them instead of factoring again.

    **Returns:** `(X, W)` with $X = (I - A)^{-1} B$ of shape `(n, k)` and
    $W = C (I - A)^{-1}$ of shape `(m, n)`.
    """
    lu, piv = factor(A) if factors is None else factors
    return _factored_solves(A, lu, piv, B, C)


def leontief_solve(
    A: Float[ArrayLike, "n n"], B: Float[ArrayLike, "n ..."],
    factors: tuple[Float[Array, "n n"], Int[Array, " n"]] | None = None,
) -> Float[Array, "n ..."]:
    r"""$X = (I - A)^{-1} B$ without forming the Leontief inverse. `B` may be a vector or a matrix; `factors`
    as in [`leontief_solves`][diffmrio.leontief_solves]."""
    vec = B.ndim == 1
    B2 = B[:, None] if vec else B
    X, _ = leontief_solves(A, B2, jnp.zeros((0, A.shape[0]), A.dtype), factors)
    return X[:, 0] if vec else X


def leontief_solve_left(
    A: Float[ArrayLike, "n n"], C: Float[ArrayLike, "... n"],
    factors: tuple[Float[Array, "n n"], Int[Array, " n"]] | None = None,
) -> Float[Array, "... n"]:
    r"""$W = C (I - A)^{-1}$ (a transposed solve), e.g. multipliers $M = S L$; `factors` as in
    [`leontief_solves`][diffmrio.leontief_solves]."""
    vec = C.ndim == 1
    C2 = C[None, :] if vec else C
    _, W = leontief_solves(A, jnp.zeros((A.shape[0], 0), A.dtype), C2, factors)
    return W[0] if vec else W


def leontief_inverse(A: Float[ArrayLike, "n n"]) -> Float[Array, "n n"]:
    r"""$L = (I - A)^{-1}$, formed explicitly. Only for users who ask for `L`: accounts never need it."""
    return leontief_solve(A, jnp.eye(A.shape[0], dtype=A.dtype))


# ------------------------------------------------------------------------------------------------- checked solves
# Relative error bounds that decide what is reported: the solution of a float64 LU is accurate to about
# cond_1(I - A) * eps (Higham 2002, ch. 9). Above _WARN_ERROR fewer than 8 significant digits are reliable and the
# accounts warn; above _REFUSE_ERROR fewer than 4 are, and the accounts are refused.
EPS64 = 2.0**-52
WARN_ERROR = 1e-8
REFUSE_ERROR = 1e-4


class RESULTS(eqx.Enumeration):
    """How a Leontief solve went, per call (lineax's `RESULTS` pattern): an array of codes under `vmap`, so every
    Monte Carlo draw carries its own. Compare with `==`, read the message with `RESULTS[result]`."""

    successful = ""
    singular = (
        "I - A is singular to working precision (non-finite solution, or cond_1(I - A) * eps >= 1): typically a "
        "closed set of sectors whose inputs reach their output"
    )
    not_productive = (
        "A >= 0 but (I - A)^{-1} has negative column sums: the spectral radius of A is >= 1 (the table is not "
        "productive), so the solution has no economic meaning"
    )
    ill_conditioned = (
        "I - A is so ill-conditioned that the solution has fewer than 4 reliable significant digits "
        "(cond_1(I - A) * eps > 1e-4)"
    )


class LeontiefInfo(eqx.Module):
    r"""Diagnostics of one [`leontief_solves_checked`][diffmrio.leontief_solves_checked] call (arrays, so they
    batch under `vmap`).

    - `result`: a [`RESULTS`][diffmrio.RESULTS] code.
    - `cond`: $\|I - A\|_1 \, \|\mathbf 1^T (I - A)^{-1}\|_\infty$, the 1-norm condition number of $I - A$. It is
      exact when $A \ge 0$ and $\rho(A) < 1$ (then $(I - A)^{-1} \ge 0$) and a lower bound otherwise.
    - `residual`: normwise backward error of $X$,
      $\max_k \|B_k - (I - A) X_k\|_\infty / (\|I - A\|_\infty \|X_k\|_\infty + \|B_k\|_\infty)$ (about `eps` for a
      stable solve).
    """

    result: RESULTS
    cond: Array
    residual: Array


def leontief_solves_checked(
    A: Float[ArrayLike, "n n"], B: Float[ArrayLike, "n k"], C: Float[ArrayLike, "m n"],
    factors: tuple[Float[Array, "n n"], Int[Array, " n"]] | None = None,
) -> tuple[Float[Array, "n k"], Float[Array, "m n"], LeontiefInfo]:
    r"""[`leontief_solves`][diffmrio.leontief_solves] that also says whether the solves can be trusted, inside
    `jit` and per draw under `vmap`: `(X, W, info)` with a [`LeontiefInfo`][diffmrio.LeontiefInfo].

    One extra transposed right-hand side, $\mathbf 1^T (I - A)^{-1}$, from the same LU factors gives the column
    sums of the Leontief inverse: for $A \ge 0$ and $\rho(A) < 1$ they are all $\ge 1$, their maximum is
    $\|(I - A)^{-1}\|_1$, and a negative one proves $\rho(A) \ge 1$. Gradients are those of `leontief_solves`
    (the diagnostics are not differentiated). Raise on a bad result outside `vmap` with
    `eqx.error_if(X, info.result != RESULTS.successful, ...)`, or count bad draws with
    `info.result == RESULTS.successful`. `factors` as in [`leontief_solves`][diffmrio.leontief_solves].
    """
    n = A.shape[-1]
    ones = jnp.ones((1, n), A.dtype)
    X, Wx = leontief_solves(A, B, jnp.concatenate([C, ones], axis=0), factors)
    W = Wx[:-1]
    A0, X0, W0, B0, colsum_l = jax.lax.stop_gradient((A, X, W, B, Wx[-1]))  # diagnostics are not differentiated
    abs_ia = jnp.abs(jnp.eye(n, dtype=A.dtype) - A0)
    norm1 = abs_ia.sum(axis=0).max()
    norm_inf = abs_ia.sum(axis=1).max()
    cond = norm1 * jnp.abs(colsum_l).max()
    R = B0 - X0 + A0 @ X0
    den = norm_inf * jnp.abs(X0).max(axis=0, initial=0.0) + jnp.abs(B0).max(axis=0, initial=0.0)
    residual = jnp.max(jnp.where(den > 0, jnp.abs(R).max(axis=0, initial=0.0) / jnp.where(den > 0, den, 1.0), 0.0),
                       initial=0.0)
    finite = jnp.all(jnp.isfinite(colsum_l)) & jnp.all(jnp.isfinite(X0)) & jnp.all(jnp.isfinite(W0)) & jnp.isfinite(cond)
    cond = jnp.where(finite, cond, jnp.inf)
    result = RESULTS.where(jnp.all(A0 >= 0) & (colsum_l.min(initial=jnp.inf) < 0.5), RESULTS.not_productive,
                           RESULTS.successful)
    result = RESULTS.where(cond * EPS64 > REFUSE_ERROR, RESULTS.ill_conditioned, result)
    result = RESULTS.where(cond * EPS64 >= 1.0, RESULTS.singular, result)  # numerically singular
    return X, W, LeontiefInfo(result, cond, residual)
