"""Ridge regression with the penalty chosen by exact leave-one-out cross-validation (the closed-form fit of
the polynomial emulator); numpy only."""

from __future__ import annotations

import numpy as np


def ridge_loo(
    phi: np.ndarray, y: np.ndarray, alphas=None, n_unpenalised: int = 0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    r"""Ridge regression $y = b + \Phi c$ on standardised features, penalty chosen per output by exact
    leave-one-out (LOO) cross-validation; the first `n_unpenalised` features (and the intercept) are not
    penalised.

    The unpenalised block $A = [1, \Phi_{:k}]$ is partialled out (Frisch-Waugh-Lovell): with
    $M = I - A A^+$, $Z = M\Phi_{k:}$ (standardised) $= U S V^T$ and $y_c = M y$, the penalised coefficients
    are $c = V \mathrm{diag}(s/(s^2+\alpha)) U^T y_c$ and the hat matrix is
    $H = A A^+ + U \mathrm{diag}(s^2/(s^2+\alpha)) U^T$, so the LOO residuals are $e_i/(1 - H_{ii})$
    (Hastie, Tibshirani & Friedman, *Elements of Statistical Learning*, eq. 7.52).

    **Arguments**: `phi[n, p]`, `y[n, q]`, `alphas` (relative to $s_{max}^2$; default
    `logspace(-10, 1, 45)`), `n_unpenalised`.

    **Returns** `(coef[q, p], intercept[q], alpha[q])` on the original feature scale.
    """
    n = phi.shape[0]
    k = int(n_unpenalised)
    a = np.concatenate([np.ones((n, 1)), phi[:, :k]], axis=1)
    a_pinv = np.linalg.pinv(a)
    h_a = np.einsum("ij,ji->i", a, a_pinv)

    def resid(v):
        return v - a @ (a_pinv @ v)

    q = phi[:, k:]
    sd = np.where(q.std(0) > 0, q.std(0), 1.0)
    z = resid(q / sd)
    yc = resid(y)
    u, s, vt = np.linalg.svd(z, full_matrices=False)
    # numerical rank relative to the standardised features before the unpenalised block is partialled out:
    # when that block already fits every run (n <= its rank), z is rounding noise, and a threshold relative to
    # z's own largest singular value kept that noise and turned it into O(1) interaction coefficients
    keep = s > 1e-10 * max(np.linalg.norm(q / sd), 1e-300)
    u, s, vt = u[:, keep], s[keep], vt[keep]
    uty = u.T @ yc
    smax2 = s[0] ** 2 if s.size else 1.0
    alphas = np.logspace(-10, 1, 45) if alphas is None else np.asarray(alphas, dtype=np.float64)
    best_err = np.full(y.shape[1], np.inf)
    best_alpha = np.zeros(y.shape[1])
    for alpha in alphas * smax2:
        f = s**2 / (s**2 + alpha)
        fitted = u @ (f[:, None] * uty)
        h = np.einsum("ik,k,ik->i", u, f, u) + h_a
        loo = (yc - fitted) / np.maximum(1.0 - h, 1e-12)[:, None]
        err = np.mean(loo**2, axis=0)
        better = err < best_err
        best_err = np.where(better, err, best_err)
        best_alpha = np.where(better, alpha, best_alpha)
    cq = np.zeros((y.shape[1], q.shape[1]))
    for alpha in np.unique(best_alpha):
        cols = best_alpha == alpha
        cq[cols] = ((vt.T @ ((s / (s**2 + alpha))[:, None] * uty[:, cols])) / sd[:, None]).T
    # unpenalised block: least squares of what the penalised terms leave
    ca = a_pinv @ (y - q @ cq.T)
    coef = np.concatenate([ca[1:].T, cq], axis=1)
    return coef, ca[0], best_alpha / smax2
