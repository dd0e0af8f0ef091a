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

import jax
import jax.numpy as jnp
import jax.scipy.linalg as jsl

from ._custom_types import Array, Float


def _factor(A):
    n = A.shape[-1]
    return jsl.lu_factor(jnp.eye(n, dtype=A.dtype) - A)


def _solve(lu_piv, B, trans: int):
    if B.shape[-1] == 0:
        return B
    return jsl.lu_solve(lu_piv, B, trans=trans)


@jax.custom_vjp
def leontief_solves(
    A: Float[Array, "n n"], B: Float[Array, "n k"], C: Float[Array, "m n"]
) -> tuple[Float[Array, "n k"], Float[Array, "m n"]]:
    r"""Both Leontief solves from one factorisation.

    **Arguments:**

    - `A`: technical coefficients, shape `(n, n)`.
    - `B`: right-hand sides, shape `(n, k)` (e.g. final demand columns).
    - `C`: left-hand sides, shape `(m, n)` (e.g. intensities `S`).

    **Returns:** `(X, W)` with $X = (I - A)^{-1} B$ of shape `(n, k)` and
    $W = C (I - A)^{-1}$ of shape `(m, n)`.
    """
    lu_piv = _factor(A)
    return _solve(lu_piv, B, 0), _solve(lu_piv, C.T, 1).T


def _fwd(A, B, C):
    lu_piv = _factor(A)
    X = _solve(lu_piv, B, 0)
    W = _solve(lu_piv, C.T, 1).T
    return (X, W), (lu_piv, X, W)


def _bwd(res, cts):
    lu_piv, X, W = res
    Xbar, Wbar = cts
    Bbar = _solve(lu_piv, Xbar, 1)  # (I-A)^{-T} Xbar
    Cbar = _solve(lu_piv, Wbar.T, 0).T  # Wbar (I-A)^{-T}
    Abar = Bbar @ X.T + W.T @ Cbar
    return Abar, Bbar, Cbar


leontief_solves.defvjp(_fwd, _bwd)


def leontief_solve(A: Float[Array, "n n"], B: Float[Array, "n ..."]) -> Float[Array, "n ..."]:
    r"""$X = (I - A)^{-1} B$ without forming the Leontief inverse. `B` may be a vector or a matrix."""
    vec = B.ndim == 1
    B2 = B[:, None] if vec else B
    X, _ = leontief_solves(A, B2, jnp.zeros((0, A.shape[0]), A.dtype))
    return X[:, 0] if vec else X


def leontief_solve_left(A: Float[Array, "n n"], C: Float[Array, "... n"]) -> Float[Array, "... n"]:
    r"""$W = C (I - A)^{-1}$ (a transposed solve), e.g. multipliers $M = S L$."""
    vec = C.ndim == 1
    C2 = C[None, :] if vec else C
    _, W = leontief_solves(A, jnp.zeros((A.shape[0], 0), A.dtype), C2)
    return W[0] if vec else W


def leontief_inverse(A: Float[Array, "n n"]) -> Float[Array, "n n"]:
    r"""$L = (I - A)^{-1}$, formed explicitly. Only for users who ask for `L`: accounts never need it."""
    return leontief_solve(A, jnp.eye(A.shape[0], dtype=A.dtype))
