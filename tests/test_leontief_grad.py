"""Gradients of the Leontief solve and of footprints against central finite differences (float64),
vmap against a Python loop, and the custom VJP against JAX's own differentiation of a dense solve."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from _systems import random_system

import diffmrio


@pytest.fixture(params=[0, 1])
def system(request):
    Z, Y, F, F_Y = random_system(3, 3, 2, 2, seed=request.param)
    return jnp.asarray(Z), jnp.asarray(Y), jnp.asarray(F)


def _fd(f, x, idx, h):
    e = np.zeros(x.shape)
    e[idx] = h
    return (f(x + e) - f(x - e)) / (2 * h)


def _check_grad(f, x, n_checks=12, seed=0):
    g = np.asarray(jax.grad(f)(x))
    rng = np.random.default_rng(seed)
    flat = [tuple(int(v) for v in np.unravel_index(k, x.shape)) for k in rng.choice(x.size, n_checks, replace=False)]
    for idx in flat:
        h = 1e-6 * max(abs(float(x[idx])), 1.0)
        num = float(_fd(f, np.asarray(x), idx, h))
        assert abs(g[idx] - num) <= 1e-6 * max(abs(num), 1e-3 * np.abs(g).max()), (idx, g[idx], num)


def test_grad_wrt_Y(system):
    """Final demand changes with the table's coefficients held fixed (the usual scenario question)."""
    Z, Y, F = system
    x, A = diffmrio.coefficients(Z, Y)
    S = diffmrio.intensities(F, x)
    w = jnp.linspace(0.5, 1.5, Y.shape[1])
    _check_grad(lambda Yv: (S @ diffmrio.leontief_solve(A, jnp.asarray(Yv) @ w))[0], Y)


def test_grad_wrt_F(system):
    Z, Y, F = system
    _check_grad(lambda Fv: diffmrio.footprint(jnp.asarray(Fv), Z, Y)[1], F)


def test_grad_wrt_Z(system):
    Z, Y, F = system
    # footprint of one final-demand column; x, A and S all respond to Z
    _check_grad(lambda Zv: diffmrio.footprint(F, jnp.asarray(Zv), Y, y=Y[:, 0])[0], Z, n_checks=20)


def test_custom_vjp_matches_dense_autodiff(system):
    Z, Y, F = system
    x, A = diffmrio.coefficients(Z, Y)
    B = Y
    C = F / x

    def ours(A, B, C):
        X, W = diffmrio.leontief_solves(A, B, C)
        return jnp.sum(jnp.sin(X)) + jnp.sum(W**2)

    def dense(A, B, C):
        L = jnp.linalg.inv(jnp.eye(A.shape[0]) - A)
        return jnp.sum(jnp.sin(L @ B)) + jnp.sum((C @ L) ** 2)

    g1 = jax.grad(ours, argnums=(0, 1, 2))(A, B, C)
    g2 = jax.grad(dense, argnums=(0, 1, 2))(A, B, C)
    for a, b in zip(g1, g2):
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12)


def test_grad_through_jit_equals_eager(system):
    Z, Y, F = system
    f = lambda Zv: diffmrio.footprint(F, Zv, Y, y=Y[:, 1]).sum()  # noqa: E731
    np.testing.assert_allclose(jax.jit(jax.grad(f))(Z), jax.grad(f)(Z), rtol=1e-10, atol=1e-14)


def test_vmap_over_final_demand_equals_loop(system):
    Z, Y, F = system
    x, A = diffmrio.coefficients(Z, Y)
    S = diffmrio.intensities(F, x)
    ys = jnp.asarray(np.random.default_rng(0).random((5, Y.shape[0])))
    # both sides compiled (batched and one at a time): run eagerly, op by op, the accounts alone compile some
    # hundred small programs (~20 CPU-s); test_grad_through_jit_equals_eager covers the eager path
    f = jax.jit(lambda y: S @ diffmrio.leontief_solve(A, y))
    batched = jax.jit(jax.vmap(f))(ys)
    looped = jnp.stack([f(y) for y in ys])
    np.testing.assert_allclose(batched, looped, rtol=1e-13)
    # and vmap over whole accounts for a batch of Y
    Ys = jnp.stack([Y * (1 + 0.1 * k) for k in range(3)])
    d_cba = jax.jit(lambda Yb: diffmrio.account_arrays(Z, Yb, F, jnp.zeros((F.shape[0], Y.shape[1])), 3).D_cba_reg)
    acc_b = jax.jit(jax.vmap(d_cba))(Ys)
    for k in range(3):
        np.testing.assert_allclose(acc_b[k], d_cba(Ys[k]), rtol=1e-12)


def test_leontief_helpers_agree_with_numpy(system):
    Z, Y, F = system
    x, A = diffmrio.coefficients(Z, Y)
    L = np.linalg.inv(np.eye(A.shape[0]) - np.asarray(A))
    np.testing.assert_allclose(diffmrio.leontief_inverse(A), L, rtol=1e-12)
    np.testing.assert_allclose(diffmrio.leontief_solve(A, Y), L @ np.asarray(Y), rtol=1e-12)
    np.testing.assert_allclose(diffmrio.multipliers(F / x, A), np.asarray(F / x) @ L, rtol=1e-12)
    np.testing.assert_allclose(diffmrio.output(A, Y.sum(1)), x, rtol=1e-12)
