r"""Environmentally extended accounts with pymrio's names and meanings (docs/science.md, section 1).

All kernels take arrays and are pure, so they run under `jit`, `grad` and `vmap`. The Leontief
inverse is never formed: one LU factorisation of $I - A$ serves a forward solve for the output driven
by each region's final demand ($X = L Y_{reg}$, `R` right-hand sides) and a transposed solve for the
region-masked multipliers ($W_s = S^{(s)} L$, `p R` right-hand sides) from which $M = \sum_s W_s$ and the
domestic part of every footprint follow.
"""

from __future__ import annotations

from collections.abc import Sequence

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import xarray as xr
from jaxtyping import ArrayLike

from ._custom_types import Array, Float
from ._economy import Economy, _safe_div, coefficients, intensities, prepared
from ._extensions import add_per_capita
from ._host_solve import SolveReport, host_leontief_solves
from ._leontief import LeontiefInfo, leontief_inverse, leontief_solve, leontief_solve_left
from ._mrio import MRIO
from ._units import add_account_units
from ._validate import check_conditioning


def final_demand_intensities(
    F_Y: Float[ArrayLike, "p fd"], Y: Float[ArrayLike, "n fd"], xp=jnp
) -> Float[ArrayLike, "p fd"]:
    r"""Direct stressors of final demand per unit of final demand, $S_Y = F_Y\,\mathrm{diag}(1^T Y)^{-1}$ (pymrio's
    `S_Y`; zero for empty columns)."""
    return _safe_div(F_Y, Y.sum(axis=0)[None, :], xp)


def region_sum_fd(Y: Float[ArrayLike, "n fd"], n_regions: int) -> Float[ArrayLike, "n R"]:
    r"""Final demand summed over categories per consuming region: $Y_{reg}$, shape `(n, R)`."""
    n = Y.shape[0]
    return Y.reshape(n, n_regions, -1).sum(axis=2)


def multipliers(S: Float[ArrayLike, "p n"], A: Float[ArrayLike, "n n"]) -> Float[Array, "p n"]:
    r"""Total (multiplier) intensities $M = S L$, by one transposed solve."""
    return leontief_solve_left(A, S)


def output(A: Float[ArrayLike, "n n"], y: Float[ArrayLike, "n ..."]) -> Float[Array, "n ..."]:
    r"""Output required by final demand, $x = L y$, by a forward solve."""
    return leontief_solve(A, y)


def footprint(
    F: Float[ArrayLike, "p n"], Z: Float[ArrayLike, "n n"], Y: Float[ArrayLike, "n fd"],
    y: Float[ArrayLike, " n"] | None = None,
) -> Float[Array, " p"]:
    r"""Total stressors embodied in a final-demand vector: $F\,\mathrm{diag}(x)^{-1} L y$ (default $y = Y 1$).
    A convenient scalar-per-stressor target for `jax.grad` with respect to `Z`, `Y`, `F`."""
    x, A = coefficients(Z, Y)
    S = intensities(F, x)
    y = Y.sum(axis=1) if y is None else y
    return S @ leontief_solve(A, y)


class AccountArrays(eqx.Module):
    """The accounts as arrays (what [`accounts`][diffmrio.accounts] labels). Shapes use `p` stressors,
    `R` regions, `N` sectors, `n = R N`, `fd` final-demand columns; numpy arrays from the host backend."""

    x: Float[ArrayLike, " n"]
    S: Float[ArrayLike, "p n"]
    M: Float[ArrayLike, "p n"]
    D_cba: Float[ArrayLike, "p n"]
    D_pba: Float[ArrayLike, "p n"]
    D_imp: Float[ArrayLike, "p n"]
    D_exp: Float[ArrayLike, "p n"]
    D_cba_reg: Float[ArrayLike, "p R"]
    D_pba_reg: Float[ArrayLike, "p R"]
    D_imp_reg: Float[ArrayLike, "p R"]
    D_exp_reg: Float[ArrayLike, "p R"]
    S_Y: Float[ArrayLike, "p fd"]
    burden: Float[ArrayLike, "p R R"]
    final_producer: Float[ArrayLike, "p R R"]


def account_arrays(
    Z: Float[ArrayLike, "n n"],
    Y: Float[ArrayLike, "n fd"],
    F: Float[ArrayLike, "p n"],
    F_Y: Float[ArrayLike, "p fd"],
    n_regions: int,
    fd_weights: Float[ArrayLike, " fd"] | None = None,
    *,
    return_info: bool = False,
) -> AccountArrays | tuple[AccountArrays, LeontiefInfo]:
    r"""All pymrio accounts plus the region-to-region views from one factorisation.

    With $X = L Y_{reg}$ (column $s$: output for region $s$'s final demand) and $W_s = S^{(s)} L$
    ($S$ restricted to region $s$'s columns), for consuming region $s$ and product $j$:

    - $D_{cba}[:, (s,j)] = \sum_r M[:, (r,j)]\, Y_{reg}[(r,j), s]$ (pymrio's `S L diag-blocks(Y)`),
    - $D_{imp}[:, (s,j)] = D_{cba}[:, (s,j)] - \sum_r W_s[:, (r,j)]\, Y_{reg}[(r,j), s]$,
    - $D_{pba} = S\,\mathrm{diag}(X 1)$, $D_{exp} = S\,\mathrm{diag}(X 1 - X_{dom})$ with
      $X_{dom}[(r,i)] = X[(r,i), r]$,
    - `_reg` variants sum over sectors; `D_cba_reg` and `D_pba_reg` add `F_Y` of the region,
    - `burden[:, r, s]` $= \sum_i S_{(r,i)} X[(r,i), s]$: emitted in r for final demand of s,
    - `final_producer[:, r, t]` $= S_r (L\, y^{(t)})_r$ with $y^{(t)}$ the final sales of region t's sectors
      (COBENEFIT study's final-producer view).

    Identity: `D_cba_reg = D_pba_reg + D_imp_reg - D_exp_reg`.

    `fd_weights` (0/1 per final-demand column) restricts the demand that accounts are computed for
    (pymrio's `Y_agg`), while `x`, `A` and `S` stay those of the full table.

    With `return_info=True` returns `(arrays, info)`, `info` the [`LeontiefInfo`][diffmrio.LeontiefInfo] of the
    solves ([`leontief_solves_checked`][diffmrio.leontief_solves_checked]): under `vmap` every draw carries its
    own `info.result` code and condition number.
    """
    eco = Economy.from_arrays(Z, Y, F)
    arr, info = _economy_accounts(eco, Y, F_Y, n_regions, fd_weights)
    return (arr, info) if return_info else arr


def _economy_accounts(
    eco: Economy, Y: Float[ArrayLike, "n fd"], F_Y: Float[ArrayLike, "p fd"], n_regions: int,
    fd_weights: Float[ArrayLike, " fd"] | None = None,
) -> tuple[AccountArrays, LeontiefInfo]:
    """`(AccountArrays, LeontiefInfo)` of a prepared economy: the solves reuse its factors."""
    infos = []

    def solves(B, C):
        X, W, info = eco.solves_checked(B, C)
        infos.append(info)
        return X, W

    return _accounts_kernel(jnp, eco.x, eco.S, Y, F_Y, n_regions, fd_weights, solves), infos[0]


def _accounts_kernel(
    xp, x: Float[ArrayLike, " n"], S: Float[ArrayLike, "p n"], Y: Float[ArrayLike, "n fd"],
    F_Y: Float[ArrayLike, "p fd"], R: int, fd_weights: Float[ArrayLike, " fd"] | None, solves,
) -> AccountArrays:
    """The accounts from `x`, `S` and a `solves(B, C) -> (L B, C L)` closure; `xp` is `jax.numpy` (the
    differentiable path) or `numpy` (the host path of [`accounts`][diffmrio.accounts])."""
    n = x.shape[0]
    N = n // R
    p = S.shape[0]
    S_Y = final_demand_intensities(F_Y, Y, xp)
    if fd_weights is not None:
        Y = Y * fd_weights[None, :]
        F_Y = F_Y * fd_weights[None, :]
    Yreg = region_sum_fd(Y, R)  # (n, R)
    # final sales of each producing region's sectors, as R right-hand sides
    y_tot = Y.sum(axis=1)
    region_of = xp.repeat(xp.arange(R), N)
    Yprod = xp.where(region_of[:, None] == xp.arange(R)[None, :], y_tot[:, None], 0.0)  # (n, R)
    mask = (region_of[None, :] == xp.arange(R)[:, None]).astype(S.dtype)  # (R, n)
    Smasked = (mask[:, None, :] * S[None, :, :]).reshape(R * p, n)  # rows (s, stressor)
    X_all, W = solves(xp.concatenate([Yreg, Yprod], axis=1), Smasked)
    X, Xp = X_all[:, :R], X_all[:, R:]
    W = W.reshape(R, p, R, N)  # (s, p, r, j)
    M = W.sum(axis=0).reshape(p, n)
    Y3 = Yreg.reshape(R, N, R)  # (r, j, s)
    D_cba = xp.einsum("prj,rjs->psj", M.reshape(p, R, N), Y3).reshape(p, n)
    D_dom = xp.einsum("sprj,rjs->psj", W, Y3).reshape(p, n)
    D_imp = D_cba - D_dom
    x_tot = X.sum(axis=1)
    X_dom = X.reshape(R, N, R)[xp.arange(R), :, xp.arange(R)].reshape(n)
    D_pba = S * x_tot[None, :]
    D_exp = S * (x_tot - X_dom)[None, :]
    FY_reg = F_Y.reshape(p, R, F_Y.shape[1] // R).sum(axis=2)

    def by_reg(D):
        return D.reshape(p, R, N).sum(axis=2)

    burden = xp.einsum("prn,rns->prs", S.reshape(p, R, N), X.reshape(R, N, R))
    final_producer = xp.einsum("prn,rnt->prt", S.reshape(p, R, N), Xp.reshape(R, N, R))
    return AccountArrays(
        x=x, S=S, M=M, D_cba=D_cba, D_pba=D_pba, D_imp=D_imp, D_exp=D_exp,
        D_cba_reg=by_reg(D_cba) + FY_reg, D_pba_reg=by_reg(D_pba) + FY_reg,
        D_imp_reg=by_reg(D_imp), D_exp_reg=by_reg(D_exp),
        S_Y=S_Y, burden=burden, final_producer=final_producer,
    )  # fmt: skip


def account_arrays_host(
    Z: Float[ArrayLike, "n n"], Y: Float[ArrayLike, "n fd"], F: Float[ArrayLike, "p n"],
    F_Y: Float[ArrayLike, "p fd"], n_regions: int, fd_weights: Float[ArrayLike, " fd"] | None = None, *,
    precision: str = "mixed", rtol: float = 1e-12, return_report: bool = False,
) -> AccountArrays | tuple[AccountArrays, SolveReport]:
    r"""The same accounts as [`account_arrays`][diffmrio.account_arrays], computed on the host with
    numpy/LAPACK ([`host_leontief_solves`][diffmrio.host_leontief_solves]).

    With `precision="mixed"` (the default) $I - A$ is factored in float32 and the solutions are refined
    in float64 to an estimated relative error of `rtol`; `"double"` factors it in float64, in place. Either
    way only one $n \times n$ buffer is held besides $Z$ (float32 for `"mixed"`: half the size), which
    matters for EXIOBASE-sized tables; there is nothing to differentiate here, so
    [`accounts`][diffmrio.accounts] uses it on CPU for large tables.

    Returns the [`AccountArrays`][diffmrio.AccountArrays], and with `return_report=True` also the
    [`SolveReport`][diffmrio.SolveReport] saying how the solves were done.
    """
    Z = np.asarray(Z)
    Y = np.asarray(Y)
    F = np.asarray(F)
    F_Y = np.asarray(F_Y)
    x = Z.sum(axis=1) + Y.sum(axis=1)
    S = _safe_div(F, x[None, :], np)
    report = []

    def solves(B, C):
        X, W, rep = host_leontief_solves(Z, x, B, C, precision=precision, rtol=rtol)
        report.append(rep)
        return X, W

    w = None if fd_weights is None else np.asarray(fd_weights)
    arr = _accounts_kernel(np, x, S, Y, F_Y, n_regions, w, solves)
    return (arr, report[0]) if return_report else arr


_economy_accounts_jit = eqx.filter_jit(_economy_accounts)
_HOST_MIN_N = 2000


def ghosh_arrays(
    Z: Float[ArrayLike, "n n"], Y: Float[ArrayLike, "n fd"], F: Float[ArrayLike, "p n"]
) -> dict[str, Float[Array, "n n"] | Float[Array, "p n"]]:
    r"""Ghosh supply-side quantities: $B = \mathrm{diag}(x)^{-1} Z$, $G = (I - B)^{-1}$ and downstream
    multipliers $M_{down} = S (G^T - I)$ (pymrio's code convention). $G^T$ is never formed for
    `M_down`: $S G^T = (L F^T)^T \mathrm{diag}(x)^{-1}$ is one forward solve with `p` right-hand sides."""
    return _ghosh_kernel(Economy.from_arrays(Z, Y, F), Z, F)


@eqx.filter_jit
def _ghosh_kernel(eco: Economy, Z: Float[ArrayLike, "n n"], F: Float[ArrayLike, "p n"]) -> dict[str, Float[Array, "n n"] | Float[Array, "p n"]]:
    """[`ghosh_arrays`][diffmrio.ghosh_arrays] of a prepared economy (its factors serve `M_down`)."""
    B = _safe_div(Z, eco.x[:, None])
    G = leontief_inverse(B)
    M_down = _safe_div(eco.solve(F.T).T, eco.x[None, :]) - eco.S
    return {"B": B, "G": G, "M_down": M_down}


def accounts(
    mrio: MRIO | Economy,
    *,
    ghosh: bool = False,
    leontief: bool = False,
    categories: str | Sequence[str] | None = None,
    backend: str = "auto",
    precision: str = "mixed",
) -> xr.Dataset:
    r"""pymrio-compatible accounts of an MRIO as a labelled Dataset.

    **Arguments:**

    - `mrio`: the table, or an [`Economy`][diffmrio.Economy] prepared from it (then its LU factors are reused
      and the JAX backend is used).
    - `ghosh`: also return Ghosh `B`, `G` and downstream multipliers `M_down`.
    - `leontief`: also return the Leontief inverse `L` (formed explicitly; accounts never need it).
    - `categories`: restrict final demand (and `F_Y`) to these categories, e.g. everything but
      `"export"` for a domestic consumption-based account. Every account then follows that demand only:
      `D_pba` is the production-based burden *caused by* those categories, not the table's `F` (pymrio's
      `D_pba = F` holds only with every category), and `D_cba`, `D_pba` still have the same total.
    - `backend`: `"jax"` (jitted, on the default device), `"host"` (numpy/LAPACK with an in-place LU,
      one $n \times n$ buffer less) or `"auto"`: host on a CPU for tables of 2,000 region-sectors or
      more, JAX otherwise (GPU). Both give the same numbers (tested); for gradients use the array
      functions ([`account_arrays`][diffmrio.account_arrays], [`footprint`][diffmrio.footprint]).
    - `precision` (host backend): `"mixed"` factors $I - A$ in float32 and refines the solutions in
      float64 to an estimated relative error of $10^{-12}$ (falling back to float64 when $I - A$ is too
      ill-conditioned for that), faster on a CPU (see the benchmarks page); `"double"` factors it in float64. The
      Dataset's `solver` attribute says which was used and how many refinement steps it took.

    Every solve is checked (docs: accounts, "When the Leontief solve is wrong"): the attributes
    `cond_1_estimate` (1-norm condition number of $I - A$, LAPACK `gecon` on the host, exact column sums of
    $(I - A)^{-1}$ with JAX) and `solve_backward_error` (normwise backward error of the output solve) say how
    well; an `I - A` so ill-conditioned that fewer than 4 significant digits are reliable ($\mathrm{cond} \cdot
    \epsilon > 10^{-4}$) raises [`MRIOError`][diffmrio.MRIOError] naming the closed set of sectors at fault,
    and one with fewer than 8 ($\mathrm{cond} \cdot \epsilon > 10^{-8}$) gives an
    [`MRIOWarning`][diffmrio.MRIOWarning] with the estimate.

    **Returns:** an `xarray.Dataset` with `x(region, sector)`, `A(region, sector, to_region, to_sector)`,
    `S, M, D_cba, D_pba, D_imp, D_exp (stressor, region, sector)`, their `_reg` variants
    `(stressor, region)`, `S_Y(stressor, fd_region, category)`, the region-to-region burden matrix
    `burden(stressor, region, consumer)` (emitted in `region` for final demand of `consumer`) and the
    final-producer view `final_producer(stressor, region, producer)`. Stressors carry their `unit` and, for
    tables from pymrio, their `extension` as coordinates (one extension:
    [`select_extension`][diffmrio.select_extension]); with a population (`MRIO.population`) the Dataset also
    has `population(region)` and pymrio's per-capita accounts `D_cba_cap, D_pba_cap, D_imp_cap, D_exp_cap
    (stressor, region)` (`D_*_reg / population`). Every variable has a `units` attribute (`<unit>` stands for the
    stressor's `unit` coordinate when the stressors' units differ; see `diffmrio._units`).

    Same meaning as pymrio's `calc_all()`: `D_cba[:, (s, j)]` is what region s's final demand for
    product j causes anywhere; `D_imp` the part emitted outside s; `D_exp[:, (r, i)]` what sector
    (r, i) emits for other regions' final demand. Identity: `D_cba_reg = D_pba_reg + D_imp_reg - D_exp_reg`.

    !!! example
        ```python
        import diffmrio
        world = diffmrio.datasets.demo_world()
        acc = diffmrio.accounts(world.mrio)
        acc["D_cba_reg"].sel(stressor="SO2")
        ```
    """
    eco = mrio if isinstance(mrio, Economy) else None
    m = prepared(mrio, "accounts")[0] if eco is not None else mrio
    w = None if categories is None else jnp.asarray(category_mask(m, categories))
    if precision not in ("mixed", "double"):
        raise ValueError(f"precision must be 'mixed' or 'double', got {precision!r}")
    if backend == "auto":
        backend = "host" if eco is None and jax.default_backend() == "cpu" and m.n >= _HOST_MIN_N else "jax"
    if backend == "host" and eco is not None:
        raise ValueError("accounts(economy, backend='host'): a prepared `Economy` holds JAX factors, which the host "
                         "backend cannot use; pass the MRIO for the host backend, or use backend='jax' or 'auto'.")
    if backend == "jax" and eco is None:
        eco = Economy.from_mrio(m)
    if backend == "host":
        arr, report = account_arrays_host(m.Z, m.Y, m.F, m.F_Y, m.n_regions, w, precision=precision,
                                          return_report=True)
        solver, cond, residual = f"host: {report}", report.cond, report.residual
    elif backend == "jax":
        arr, info = _economy_accounts_jit(eco, m.Y, m.F_Y, m.n_regions, w)
        solver = f"jax ({jax.default_backend()}): float64 LU of I - A"
        cond, residual = float(info.cond), float(info.residual)
    else:
        raise ValueError(f"backend must be 'auto', 'jax' or 'host', got {backend!r}")
    x = np.asarray(arr.x)
    check_conditioning(cond, residual, m.Z, x, m.regions, m.sectors, what="accounts")
    R, N, p = m.n_regions, m.n_sectors, m.n_stressors
    rs = ("region", "sector")
    prs = ("stressor", "region", "sector")
    data = {
        "x": (rs, x.reshape(R, N)),
        "A": (rs + ("to_region", "to_sector"), _coefficient_array(m.Z, x).reshape(R, N, R, N)),
    }
    for k in ("S", "M", "D_cba", "D_pba", "D_imp", "D_exp"):
        data[k] = (prs, np.asarray(getattr(arr, k)).reshape(p, R, N))
    for k in ("D_cba_reg", "D_pba_reg", "D_imp_reg", "D_exp_reg"):
        data[k] = (("stressor", "region"), np.asarray(getattr(arr, k)))
    data["S_Y"] = (("stressor", "fd_region", "category"), np.asarray(arr.S_Y).reshape(p, R, m.n_categories))
    data["burden"] = (("stressor", "region", "consumer"), np.asarray(arr.burden))
    data["final_producer"] = (("stressor", "region", "producer"), np.asarray(arr.final_producer))
    if ghosh:
        g = _ghosh_kernel(Economy.from_mrio(m) if eco is None else eco, m.Z, m.F)
        data["B"] = (rs + ("to_region", "to_sector"), np.asarray(g["B"]).reshape(R, N, R, N))
        data["G"] = (rs + ("to_region", "to_sector"), np.asarray(g["G"]).reshape(R, N, R, N))
        data["M_down"] = (prs, np.asarray(g["M_down"]).reshape(p, R, N))
    if leontief:
        L = _leontief_of_table(m.Z, m.Y) if eco is None else _leontief_of_economy(eco)
        data["L"] = (rs + ("to_region", "to_sector"), np.asarray(L).reshape(R, N, R, N))
    coords = m.coords()
    coords["consumer"] = list(m.regions)
    coords["producer"] = list(m.regions)
    ds = xr.Dataset(data, coords=coords, attrs={"name": m.name, "source": "diffmrio.accounts",
                                                  "solver": solver, "cond_1_estimate": cond,
                                                  "solve_backward_error": residual})
    ds["burden"].attrs["description"] = "E[r, s] = sum_t S_r L_rt y_ts: emitted in region r for final demand of s"
    ds["final_producer"].attrs["description"] = "E[r, t] = S_r L_rt sum_s y_ts: emitted in r for final sales of t"
    if getattr(m, "validation", ()):  # problems the table was accepted with (validate="warn")
        ds.attrs["validation"] = "; ".join(m.validation)
    return add_account_units(add_per_capita(ds, m), m)


@eqx.filter_jit
def _leontief_of_table(Z: Float[ArrayLike, "n n"], Y: Float[ArrayLike, "n fd"]) -> Float[Array, "n n"]:
    """`L = (I - A)^{-1}` of a table (module-level, so repeated `accounts(..., leontief=True)` calls reuse it)."""
    return leontief_inverse(coefficients(Z, Y)[1])


@eqx.filter_jit
def _leontief_of_economy(eco: Economy) -> Float[Array, "n n"]:
    """`L = (I - A)^{-1}` from a prepared economy's factors."""
    return eco.solve(jnp.eye(eco.n, dtype=eco.A.dtype))


def _coefficient_array(Z, x):
    """`A` for the Dataset: eager for small tables, a lazy dask array of row blocks for large ones (so the
    accounts hold no third n x n buffer until someone reads `A`). The blocks read `Z` in place:
    `dask.array.from_array` would copy and hash all of it."""
    xs = np.where(x == 0, 1.0, x)
    Zh = np.asarray(Z)
    n = Zh.shape[0]
    if n < _HOST_MIN_N:
        return _coefficient_rows(Zh, x, xs, 0, n)
    import uuid

    import dask
    import dask.array as da

    step = min(2048, n)
    token = uuid.uuid4().hex
    blocks = [
        da.from_delayed(
            dask.delayed(_coefficient_rows)(Zh, x, xs, i, min(i + step, n), dask_key_name=f"A-rows-{i}-{token}"),
            shape=(min(i + step, n) - i, n), dtype=np.float64,
        )
        for i in range(0, n, step)
    ]  # fmt: skip
    return da.concatenate(blocks, axis=0)


def _coefficient_rows(
    Z: Float[np.ndarray, "n n"], x: Float[np.ndarray, " n"], xs: Float[np.ndarray, " n"], i0: int, i1: int
) -> Float[np.ndarray, "rows n"]:
    return np.where(x[None, :] == 0, 0.0, Z[i0:i1] / xs[None, :])


def category_mask(mrio: MRIO, categories: str | Sequence[str]) -> Float[np.ndarray, " fd"]:
    """0/1 weights over final-demand columns keeping `categories` (a name or a sequence of names) of every
    region."""
    if isinstance(categories, str):
        categories = (categories,)
    categories = tuple(categories)
    if not categories:
        raise ValueError("`categories` is empty, so every footprint would be zero; pass the final-demand "
                         f"categories to keep (this table has {list(mrio.categories)}), or None for all of them")
    keep = {mrio.category_index(c) for c in categories}
    return np.array([1.0 if k in keep else 0.0 for _ in mrio.regions for k in range(mrio.n_categories)])
