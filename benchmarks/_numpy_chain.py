"""The demo chain written as a plain NumPy loop over Monte Carlo draws: the way such studies are usually
scripted. Used as the peer in `monte_carlo_vs_numpy.py`, and checked against the JAX engine draw by draw
in the tests (same draws, same numbers)."""

from __future__ import annotations

import numpy as np


def _silu(v):
    return v / (1.0 + np.exp(-v))


def _sharp_softplus(r, k):
    return np.logaddexp(0.0, k * r) / k


def emulator_numpy(emu):
    """A NumPy function `scale[source, species] -> y[component, ...]` for a Linear or MLP emulator."""
    name = type(emu).__name__
    base = np.asarray(emu.base)
    x_ref = np.asarray(emu.x_ref)
    if name == "LinearEmulator":
        J = np.asarray(emu.jacobian)
        return lambda x: base + (J @ (x - x_ref).reshape(-1)).reshape(base.shape)
    if name == "MLPEmulator":
        lin = np.asarray(emu.linear)
        scale = np.asarray(emu.input_scale)
        foot = np.asarray(emu.footprint)  # receptor, species, source
        emb = np.asarray(emu.embedding)  # receptor, e
        Ws = [np.asarray(layer.weight) for layer in emu.mlp.layers]
        bs = [np.asarray(layer.bias) for layer in emu.mlp.layers]
        k = float(emu.sharpness)
        n_src = x_ref.shape[0]

        def mlp(h):  # h: (receptor, features)
            for i, (W, b) in enumerate(zip(Ws, bs)):
                h = h @ W.T + b
                if i < len(Ws) - 1:
                    h = _silu(h)
            return h

        h0 = mlp(np.concatenate([np.zeros((emb.shape[0], foot.shape[1])), emb], axis=1))

        def f(x):
            d = ((x - x_ref) / scale).reshape(n_src, -1)
            z = np.einsum("rks,sk->rk", foot, d)
            h = mlp(np.concatenate([z, emb], axis=1)) - h0  # receptor, component
            r = 1.0 + lin @ d.reshape(-1) + h.T.reshape(-1)
            return base * (_sharp_softplus(r, k) / _sharp_softplus(1.0, k)).reshape(base.shape)

        return f
    raise NotImplementedError(f"no NumPy version of {name}")


def numpy_monte_carlo(chain, species_factor, theta, baseline_factor):
    """Deaths per draw `[draw, cause, region]` for given per-draw inputs (NumPy loop, one draw at a time).

    `species_factor[draw, species]`, `theta[draw, cause, age]` (GEMM), `baseline_factor[draw, cause]`.
    """
    m = chain.mrio
    Z, Y, F, FY = (np.asarray(a) for a in (m.Z, m.Y, m.F, m.F_Y))
    x_tab = Z.sum(1) + Y.sum(1)
    A = Z / np.where(x_tab == 0, 1, x_tab)
    S = F / np.where(x_tab == 0, 1, x_tab)
    yfd = Y.sum(0)
    SY = FY / np.where(yfd == 0, 1, yfd)
    sm = chain.source_map
    rows = list(sm.stressor_rows)
    W, Rm, H, h = (np.asarray(a) for a in (sm.species_weights, sm.region_source, sm.sector_level, sm.fd_level))
    E_ref = np.asarray(chain.emissions_ref).sum(axis=2)  # species, source
    emu = emulator_numpy(chain.emulator)
    down = chain.downscaler
    if down is not None:
        down_base, down_frac = np.asarray(down.base_grid), np.asarray(down.receptor_fraction)
    w = np.asarray(chain.emulator.labels.component_weights())
    hi = chain.health.inputs
    pop = np.asarray(hi.population)
    af = np.asarray(hi.age_fraction)
    af = af[None, :, None, None] if af.ndim == 1 else af[None]
    rate = np.asarray(hi.baseline_rate)
    rate = rate if rate.ndim == 4 else rate[:, :, None, None]
    frac = np.asarray(hi.region_fraction)
    crf = chain.health.crf
    alpha, mu, nu = (np.asarray(getattr(crf, k)) for k in ("alpha", "mu", "nu"))
    applies = np.asarray(crf.applies, dtype=bool)
    cf = float(crf.cf)
    R = m.n_regions
    out = np.empty((len(theta), rate.shape[0], len(hi.regions)))
    for d in range(len(theta)):
        x = np.linalg.solve(np.eye(len(x_tab)) - A, Y.sum(1))
        E_ind = S[rows] * x
        E_fd = (SY[rows] * Y.sum(0)).reshape(len(rows), R, -1).sum(2)
        by_level = np.einsum("qri,il->qrl", E_ind.reshape(len(rows), R, -1), H) + E_fd[:, :, None] * h
        E = np.einsum("kq,qrl,ro->kol", W, by_level, Rm) * species_factor[d][:, None, None]
        scale = np.where(E_ref != 0, E.sum(2) / np.where(E_ref != 0, E_ref, 1), 1.0).T
        C = emu(scale)
        if down is not None:
            ybase = np.asarray(chain.emulator.base)
            ratio = np.where(ybase != 0, C / np.where(ybase != 0, ybase, 1.0), 1.0) - 1.0
            C = down_base * (1.0 + np.einsum("ca,ayx->cyx", ratio, down_frac))
        pm = np.tensordot(w, C, axes=1)
        z = np.maximum(pm - cf, 0.0)[None, None]
        logrr = theta[d][:, :, None, None] * np.log1p(z / alpha[:, :, None, None]) / (
            1 + np.exp(-(z - mu[:, :, None, None]) / nu[:, :, None, None]))
        logrr = np.where(applies[:, :, None, None], logrr, 0.0)
        paf = -np.expm1(-logrr)
        y0 = rate * baseline_factor[d][:, None, None, None]
        deaths = pop[None, None] * af * y0 * paf  # cause, age, row, col
        out[d] = np.einsum("cayx,ryx->cr", deaths, frac)
    return out
