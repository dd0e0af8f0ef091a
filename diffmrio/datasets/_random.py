"""Seeded random MRIO tables for tests and benchmarks (`random_mrio`), productive by construction.

Two structures:

- `"blocks"`: a realistic block structure (dense domestic blocks, thinner trade blocks): columns of `A` sum to
  about `input_share` (times a factor in [0.6, 1.2]), domestic blocks carry `domestic_share` of each column's
  inputs, a fraction `trade_density` of trade coefficients is non-zero; gross output is lognormal, final demand
  balances the rows and mostly stays at home; stressors and final-demand stressors are lognormal.
- `"uniform"`: a small dense-ish table: `A` uniform on [0, 1] with a share `density` of non-zero entries, each
  column scaled to sum to a value drawn from `input_range`; `Y` uniform on `fd_range` (a share `fd_density`
  non-zero); `x = (I - A)^{-1} Y 1`; stressors `F = s x` with intensities `s` uniform on `stressor_range` (or
  lognormal) and a share `stressor_density` non-zero; no final-demand stressors.

A column sum of `A` below one in every column makes the spectral radius below one, so every table is productive.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .._mrio import MRIO


def _labels(prefix: str, n: int, given: Sequence[str] | None, name: str) -> list[str]:
    if given is None:
        return [f"{prefix}{i}" for i in range(n)]
    given = [str(g) for g in given]
    if len(given) != n:
        raise ValueError(f"random_mrio: {name} has {len(given)} labels but n_{name}={n}; give one label each")
    return given


def _blocks(rng, R, N, K, p, *, domestic_share, input_share, trade_density):
    n = R * N
    A = rng.random((n, n), dtype=np.float64)
    region = np.repeat(np.arange(R), N)
    dom = region[:, None] == region[None, :]
    A *= np.where(dom, 1.0, rng.random((n, n)) < trade_density)
    # scale domestic vs imported inputs per column
    dsum = np.where(dom, A, 0).sum(axis=0)
    tsum = np.where(dom, 0, A).sum(axis=0)
    share = input_share * rng.uniform(0.6, 1.2, size=n)
    A = np.where(dom, A * (domestic_share * share / np.maximum(dsum, 1e-300))[None, :],
                 A * ((1 - domestic_share) * share / np.maximum(tsum, 1e-300))[None, :])  # fmt: skip
    x = rng.lognormal(mean=3.0, sigma=1.0, size=n)
    Z = A * x[None, :]
    y = x - Z.sum(axis=1)  # final demand that balances the table
    y = np.maximum(y, 0.05 * x)
    w = rng.dirichlet(np.ones(R * K), size=n)  # split each row's final demand over (region, category)
    home = (np.arange(R * K) // K)[None, :] == region[:, None]  # most final demand stays at home
    w = w * np.where(home, 20.0, 1.0)
    w /= w.sum(axis=1, keepdims=True)
    Y = y[:, None] * w
    x = Z.sum(axis=1) + y  # rebalance rows: Z fixed, x from the identity
    F = rng.lognormal(size=(p, n)) * x[None, :] * rng.uniform(0.1, 1.0, size=(p, 1))
    F_Y = rng.lognormal(size=(p, R * K)) * 0.01 * Y.sum(axis=0)[None, :]
    return Z, Y, F, F_Y


def _masked(rng, values: np.ndarray, density: float) -> np.ndarray:
    return values * (rng.random(values.shape) < density) if density < 1.0 else values


def _uniform(rng, R, N, K, p, *, density, input_range, fd_range, fd_density, stressor_range, stressor_density,
             stressor_dist):  # fmt: skip
    n = R * N
    A = _masked(rng, rng.uniform(0, 1, (n, n)), density)
    A *= rng.uniform(*input_range, n) / A.sum(axis=0)
    Y = _masked(rng, rng.uniform(*fd_range, (n, R * K)), fd_density)
    x = np.linalg.solve(np.eye(n) - A, Y.sum(axis=1))
    s = rng.lognormal(0, 1, (p, n)) if stressor_dist == "lognormal" else rng.uniform(*stressor_range, (p, n))
    F = _masked(rng, s * x, stressor_density)
    return A * x, Y, F, np.zeros((p, R * K))


def random_mrio(
    n_regions: int = 3,
    n_sectors: int = 4,
    n_categories: int = 2,
    n_stressors: int = 2,
    *,
    seed: int | np.random.Generator = 0,
    structure: str = "blocks",
    labelled: bool = True,
    regions: Sequence[str] | None = None,
    sectors: Sequence[str] | None = None,
    categories: Sequence[str] | None = None,
    stressors: Sequence[str] | None = None,
    units: Sequence[str] | None = None,
    validate: bool | str = True,
    domestic_share: float = 0.8,
    input_share: float = 0.55,
    trade_density: float = 0.2,
    density: float = 0.7,
    input_range: tuple[float, float] = (0.3, 0.7),
    fd_range: tuple[float, float] = (0.5, 2.0),
    fd_density: float = 1.0,
    stressor_range: tuple[float, float] = (0.0, 3.0),
    stressor_density: float = 1.0,
    stressor_dist: str = "uniform",
) -> MRIO | tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """A seeded random MRIO table, productive by construction (the one generator for tests and benchmarks).

    **Arguments**

    - `n_regions`, `n_sectors`, `n_categories`, `n_stressors`: the size (`n = R N` region-sectors, region-major).
    - `seed`: an integer seed, or a `numpy.random.Generator` to draw from (and go on drawing from afterwards).
    - `structure`: `"blocks"` (domestic and trade blocks; options `domestic_share`, `input_share`,
      `trade_density`) or `"uniform"` (options `density`, `input_range`, `fd_range`, `fd_density`,
      `stressor_range`, `stressor_density`, `stressor_dist` = `"uniform"` or `"lognormal"`); see the module
      docstring. A `*_density` of 1 draws no mask.
    - `labelled`: return an `MRIO` (default) or the float64 arrays `(Z, Y, F, F_Y)`.
    - `regions`, `sectors`, `categories`, `stressors`, `units`: labels (default `r0.., s0.., c0.., q0..` and
      `"kg"`); `validate`: passed to `MRIO.from_arrays`.

    **Returns** an `MRIO`, or `(Z[n, n], Y[n, R K], F[p, n], F_Y[p, R K])`. The same arguments give the same
    table on every machine (numpy's `default_rng`).
    """
    R, N, K, p = (int(v) for v in (n_regions, n_sectors, n_categories, n_stressors))
    if min(R, N, K) < 1 or p < 0:
        raise ValueError(
            f"random_mrio: need n_regions, n_sectors, n_categories >= 1 and n_stressors >= 0, got {(R, N, K, p)}"
        )
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    if structure == "blocks":
        if not (0.0 < input_share * 1.2 < 1.0 and 0.0 <= domestic_share <= 1.0):
            raise ValueError(
                f"random_mrio: input_share={input_share} must keep column sums of A below 1 (input_share < 0.83) "
                f"and domestic_share={domestic_share} must lie in [0, 1]"
            )
        Z, Y, F, F_Y = _blocks(rng, R, N, K, p, domestic_share=domestic_share, input_share=input_share,
                               trade_density=trade_density)  # fmt: skip
    elif structure == "uniform":
        if not (0.0 <= input_range[0] <= input_range[1] < 1.0):
            raise ValueError(f"random_mrio: input_range={input_range} must lie in [0, 1) for a productive table")
        if stressor_dist not in ("uniform", "lognormal"):
            raise ValueError(f"random_mrio: stressor_dist must be 'uniform' or 'lognormal', got {stressor_dist!r}")
        Z, Y, F, F_Y = _uniform(rng, R, N, K, p, density=density, input_range=input_range, fd_range=fd_range,
                                fd_density=fd_density, stressor_range=stressor_range,
                                stressor_density=stressor_density, stressor_dist=stressor_dist)  # fmt: skip
    else:
        raise ValueError(f"random_mrio: structure must be 'blocks' or 'uniform', got {structure!r}")
    if not labelled:
        return Z, Y, F, F_Y
    return MRIO.from_arrays(
        Z, Y, F, F_Y,
        regions=_labels("r", R, regions, "regions"), sectors=_labels("s", N, sectors, "sectors"),
        categories=_labels("c", K, categories, "categories"), stressors=_labels("q", p, stressors, "stressors"),
        units=list(units) if units is not None else ["kg"] * p, validate=validate,
    )  # fmt: skip
