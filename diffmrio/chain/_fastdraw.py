r"""Fast paths for evaluating the chain many times: groups of final demand as index arrays, the health stage
with each relative-risk curve evaluated once per cell, and a Monte Carlo draw with the work that does not
change between draws done once.

**Groups.** A grouping of final demand (consumers, final producers, sectors, foreign demand) is a
[`GroupIndex`][diffmrio.chain.GroupIndex]: one group number per row (`n`) or per column (`fd`) of `Y`. A zero-out
scenario only needs the row totals $Y 1$ (for $x = L\,Y 1$) and the column totals $1^T Y$ (for the direct
emissions of final demand), so the per-group totals ($G \times (n + fd)$ numbers) replace the dense 0/1 masks
`[group, n, fd]` that a broadcast over groups would need.

**Health.** Deaths per cause and region are

$$D_{c,r} = b_c \sum_{k \in c} \sum_g \Big(\sum_{a \in k} P_g f_{a,g} y_{0,c,a,g}\Big)\, w_{r,g}\,
  \mathrm{PAF}_k(C_g),$$

where the age groups `a` of a cause that share one concentration-response curve `k` (the GEMM's 80+ fit is
used for ages 80-95; COPD, lung cancer and LRI have one fit for all adults) are merged, the bracket and the
region weights are computed once, and cells without population or region are dropped. The curves are
evaluated for each kept cell once per curve instead of once per age group. For the GEMM,
$\log RR_k(z) = \theta_k\, g_k(z)$ with $g_k(z) = \log(1 + z/\alpha_k)\, \sigma((z - \mu_k)/\nu_k)$, and the
published fits share $(\alpha, \mu, \nu)$ between all age groups of a cause (only $\theta$ is age-specific, and
only $\theta$ is sampled), so $g$ is evaluated once per cell and *shape* (one per cause on the demo: 5 instead
of 27 curves, two transcendental evaluations each) and each curve adds one `expm1`. Everything is float64.

**Monte Carlo.** [`ChainDraw`][diffmrio.chain.ChainDraw] is one draw as a Module (so the jitted batch is cached
across calls). When the economy is not perturbed (`mrio_cv = 0`), the emissions of the base case and of every
zero-out scenario are computed once and each draw only scales them by its inventory factors; otherwise each
draw factors $I - A$ once and solves for the base case and every zero-out scenario with those factors.

**One n x n buffer.** [`LeontiefFactor`][diffmrio.chain._fastdraw.LeontiefFactor] factors $I - A$ on the host, in
place (LAPACK `dgetrf` through SciPy with `overwrite_a`), into one $n \times n$ float64 buffer that JAX then
reads without a copy. XLA's own LU (`jax.scipy.linalg.lu_factor` inside `jit`) holds its operand, a transposed
copy and the factors: three buffers at once even with a donated operand. The factors are stored transposed (the
factorisation is of $(I - A)^T$, which in row-major memory is $I - A$ in LAPACK's column-major order), so the
triangular solves read them in place too; both solves are differentiable in the right-hand side.
"""

from __future__ import annotations

import itertools
import warnings

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.scipy.linalg as jsl
import numpy as np
import scipy.linalg as sl
from jaxtyping import Array, ArrayLike, Float, Int, Key, UInt32

from .._leontief import leontief_solve
from ..health import GEMM
from ..health._crf import AbstractCRF
from ._chain import Chain, ChainInputs
from ._groups import (  # noqa: F401  (GROUPINGS, Grouping, group_index: their old home)
    GROUPINGS as GROUPINGS,
    GroupIndex as GroupIndex,
    Grouping as Grouping,
    group_index as group_index,
)
from ._sampling import _CRFSampler, sample_inputs

# ------------------------------------------------------------------------------------------ the economy


def aligned_empty(shape, align: int = 64) -> np.ndarray:
    """An uninitialised, writable, C-contiguous float64 array whose data start on an `align`-byte boundary: JAX
    on a CPU then wraps it without a copy (`jnp.asarray`), which it does not for numpy's usual 16-byte
    alignment."""
    size = int(np.prod(shape)) * 8
    raw = np.empty(size + align, dtype=np.uint8)
    off = (-raw.ctypes.data) % align
    return raw[off : off + size].view(np.float64).reshape(shape)


class LeontiefFactor(eqx.Module):
    r"""The LU factors of $I - A$ in one $n \times n$ float64 buffer (see the module notes).

    Build with [`from_flows`][diffmrio.chain._fastdraw.LeontiefFactor.from_flows] ($A = Z\,\mathrm{diag}(x)^{-1}$)
    or [`from_coefficients`][diffmrio.chain._fastdraw.LeontiefFactor.from_coefficients]; `overwrite=True`
    factors the given writable float64 array in place (it then holds the factors: do not use it as `Z` or `A`
    again), otherwise a copy is factored. `solve(B)` is $(I - A)^{-1} B$ and `solve_left(C)` is
    $C (I - A)^{-1}$; both are differentiable in `B` / `C` (the gradient is the other solve, with the same
    factors).

    **Fields:** `lu_t[n, n]`: the factors of $(I - A)^T$, transposed; `piv[n]`: LAPACK's pivots (0-based).
    """

    lu_t: Float[Array, "n n"]
    piv: Int[Array, " n"]

    @classmethod
    def from_coefficients(cls, A, *, overwrite: bool = False) -> LeontiefFactor:
        """Factors of $I - A$ for technical coefficients `A[n, n]`."""
        M = _work_buffer(A, overwrite, "A")
        np.negative(M, out=M)
        M.flat[:: M.shape[0] + 1] += 1.0
        return cls._factor(M)

    @classmethod
    def from_flows(cls, Z, x, *, overwrite: bool = False) -> LeontiefFactor:
        r"""Factors of $I - A$ with $A = Z\,\mathrm{diag}(x)^{-1}$ (zero columns where the gross output `x` is
        zero, as `diffmrio.coefficients`), formed in the same buffer."""
        M = _work_buffer(Z, overwrite, "Z")
        x = np.asarray(x, dtype=np.float64)
        if x.shape != (M.shape[0],):
            raise ValueError(f"gross output `x` must have shape ({M.shape[0]},) to match Z, got {x.shape}")
        neg_inv = np.divide(-1.0, x, out=np.zeros_like(x), where=x != 0)
        for s in range(0, M.shape[0], 1024):  # row blocks: no n x n temporary
            M[s : s + 1024] *= neg_inv[None, :]
        M.flat[:: M.shape[0] + 1] += 1.0
        return cls._factor(M)

    @classmethod
    def _factor(cls, M: np.ndarray) -> LeontiefFactor:
        if not np.all(np.isfinite(M.diagonal())):
            raise ValueError("I - A has non-finite entries on its diagonal: check Z, x or A for NaN / inf")
        # M is C-ordered, so M.T is Fortran-ordered: LAPACK factors (I - A)^T where it lies
        with warnings.catch_warnings():  # a singular factor is refused below, with its own message
            warnings.simplefilter("ignore", sl.LinAlgWarning)
            lu, piv = sl.lu_factor(M.T, overwrite_a=True, check_finite=False)
        if not np.shares_memory(lu, M):  # pragma: no cover - SciPy copies only non-Fortran input
            raise RuntimeError("the in-place LU of I - A made a copy")
        d = np.abs(lu.diagonal())
        if not np.all(np.isfinite(d)) or np.any(d == 0):
            raise ValueError("I - A is singular or not finite (a zero or non-finite pivot in its LU): the table is "
                             "not productive, or Z / A holds NaN or inf; check it with diffmrio.MRIO.from_arrays("
                             "..., validate=True)")
        # device_put wraps a 64-byte-aligned host buffer without a copy on a CPU (jnp.asarray would copy it)
        return cls(jax.device_put(lu.T), jnp.asarray(piv, dtype=jnp.int32))

    @property
    def n(self) -> int:
        return self.lu_t.shape[0]

    def solve(self, B: Float[ArrayLike, " n *k"]) -> Float[Array, " n *k"]:
        """$(I - A)^{-1} B$ for `B[n]` or `B[n, k]`."""
        return jsl.lu_solve((self.lu_t.T, self.piv), B, trans=1)

    def solve_left(self, C: Float[ArrayLike, "*m n"]) -> Float[Array, "*m n"]:
        """$C (I - A)^{-1}$ for `C[n]` or `C[m, n]`."""
        return jsl.lu_solve((self.lu_t.T, self.piv), C.T, trans=0).T


def _work_buffer(M, overwrite: bool, name: str) -> np.ndarray:
    if overwrite:
        if not (isinstance(M, np.ndarray) and M.dtype == np.float64 and M.flags.c_contiguous and M.flags.writeable):
            raise ValueError(f"overwrite=True needs `{name}` as a writable C-contiguous float64 numpy array (it is "
                             "factored in place); pass overwrite=False to factor a copy")
        out = M
    else:
        src = np.asarray(M, dtype=np.float64)
        out = aligned_empty(src.shape)
        out[...] = src
    if out.ndim != 2 or out.shape[0] != out.shape[1]:
        raise ValueError(f"`{name}` must be a square n x n matrix, got shape {out.shape}")
    return out


@eqx.filter_jit
def factored_gradient(chain: Chain, inp: ChainInputs, factor: LeontiefFactor, target: str = "deaths",
                      receptor: str | None = None) -> Float[Array, "n fd"]:
    r"""$\partial J / \partial Y$ over all entries of final demand, as `diffmrio.chain.sensitivity(...,
    wrt="final_demand")` computes it, but with the economy's factors given (`inp.A` is not read, so it may be a
    placeholder): one forward solve and one transposed solve with `factor`, no $n \times n$ temporary."""

    def J(Y):
        x = factor.solve(Y.sum(axis=1))
        E = chain.emissions_from_totals(inp, x, Y.sum(axis=0))
        return chain.target_from_pm25(chain.pm25(chain.concentration(E, inp.member_weights)), inp, target, receptor)

    return jax.grad(J)(inp.Y)


# ------------------------------------------------------------------------------------------------ health


def _param_leaves(module, n_c: int, n_a: int) -> list[np.ndarray]:
    """Host copies of the array leaves of `module` whose trailing axes are `(cause, age)`."""
    out = []
    for leaf in jax.tree.leaves(eqx.filter(module, eqx.is_array)):
        a = np.asarray(leaf)
        if a.ndim >= 2 and a.shape[-2:] == (n_c, n_a):
            out.append(a)
    return out


def shared_curves(crf, structure=None) -> list[tuple[int, list[int]]]:
    """Curves `(cause, [ages])`: the applicable age groups of each cause whose CRF parameters are identical in
    `structure` (a CRF, or a draw table such as `IERDraws`, whose `[..., cause, age]` leaves are compared over
    every leading index; `None`: one curve per applicable (cause, age))."""
    n_c, n_a = len(crf.causes), len(crf.ages)
    applies = np.asarray(crf.applies, dtype=bool).reshape(n_c, n_a)
    leaves = None if structure is None else _param_leaves(structure, n_c, n_a)
    curves = []
    for c in range(n_c):
        seen: dict[bytes, int] = {}
        for a in range(n_a):
            if not applies[c, a]:
                continue
            if leaves is None:
                curves.append((c, [a]))
                continue
            sig = b"".join(np.ascontiguousarray(p[..., c, a]).tobytes() for p in leaves)
            if sig in seen:
                curves[seen[sig]][1].append(a)
            else:
                seen[sig] = len(curves)
                curves.append((c, [a]))
    return curves


def gemm_shapes(crf, structure, curves) -> tuple[np.ndarray | None, np.ndarray | None]:
    """`(shape_of[curve], shape_curve[shape])`: the curves whose GEMM `(alpha, mu, nu)` are equal in `structure`
    share a shape function (`(None, None)` unless `crf` and `structure` are GEMMs with `[cause, age]` fields)."""
    if not (isinstance(crf, GEMM) and isinstance(structure, GEMM)):
        return None, None
    params = [np.asarray(getattr(structure, k)) for k in ("alpha", "mu", "nu")]
    if any(p.shape != (len(crf.causes), len(crf.ages)) for p in params) or structure.cf != crf.cf:
        return None, None
    seen: dict[bytes, int] = {}
    shape_of, shape_curve = [], []
    for k, (c, ages) in enumerate(curves):
        sig = b"".join(np.ascontiguousarray(p[c, ages[0]]).tobytes() for p in params)
        if sig not in seen:
            seen[sig] = len(shape_curve)
            shape_curve.append(k)
        shape_of.append(seen[sig])
    return np.asarray(shape_of), np.asarray(shape_curve)


class HealthKernel(eqx.Module):
    """Deaths per cause and region and population-weighted PM2.5 from PM2.5 at the kept cells, with each
    shared relative-risk curve evaluated once per cell (see the module docstring).

    **Fields:** `weight[curve, cell]` ($\\sum_{a \\in k} P f_a y_{0,c,a}$), `region_weight[cell, region]`,
    `pop_region[cell, region]`, `pop_total[region]`, `cells[cell]` (flat indices of the kept cells among the
    health inputs' cells), `cause[curve]`, `age[curve]` (the representative age group); static `n_causes`.
    """

    weight: Float[Array, "curve cell"]
    region_weight: Float[Array, "cell region"]
    pop_region: Float[Array, "cell region"]
    pop_total: Float[Array, " region"]
    cells: Int[Array, " cell"]
    cause: Int[Array, " curve"]
    age: Int[Array, " curve"]
    shape_curve: Int[Array, " shape"] | None  # [shape] a curve of each GEMM shape (alpha, mu, nu); None: generic CRF path
    n_causes: int = eqx.field(static=True)
    # runs of consecutive curves with the same shape, (shape, length): g is broadcast, not gathered, per curve
    shape_runs: tuple[tuple[int, int], ...] | None = eqx.field(static=True, default=None)

    @classmethod
    def build(cls, health, structure=None) -> HealthKernel:
        """From a `HealthModel`; `structure`: what decides which age groups share a curve (see
        [`shared_curves`][diffmrio.chain._fastdraw.shared_curves]; `None`: no sharing). When the CRF and `structure`
        are GEMMs, curves whose `(alpha, mu, nu)` are equal in `structure` share one shape function."""
        hi = health.inputs
        crf = health.crf
        n_c, n_a = len(crf.causes), len(crf.ages)
        pop = np.asarray(hi.population, dtype=np.float64).reshape(-1)
        n_cells = pop.size
        if hi.region_fraction is not None:
            rw = np.asarray(hi.region_fraction, dtype=np.float64).reshape(len(hi.regions), -1).T  # [cell, region]
        else:
            idx = np.asarray(hi.region_index).reshape(-1)
            rw = np.zeros((n_cells, len(hi.regions)))
            ok = idx >= 0
            rw[np.nonzero(ok)[0], idx[ok]] = 1.0
        keep = np.nonzero((pop != 0) & np.any(rw != 0, axis=1))[0]
        af = np.asarray(hi.age_fraction, dtype=np.float64)
        af = np.broadcast_to(af.reshape(n_a, -1), (n_a, n_cells))
        y0 = np.asarray(hi.baseline_rate, dtype=np.float64)
        y0 = np.broadcast_to(y0.reshape(n_c, n_a, -1), (n_c, n_a, n_cells))
        curves = shared_curves(crf, structure)
        W = np.zeros((len(curves), keep.size))
        for k, (c, ages) in enumerate(curves):
            for a in ages:
                W[k] += pop[keep] * af[a, keep] * y0[c, a, keep]
        rwk = rw[keep]
        shape_of, shape_curve = gemm_shapes(crf, structure, curves)
        return cls(
            jnp.asarray(W), jnp.asarray(rwk), jnp.asarray(rwk * pop[keep, None]), jnp.asarray((rw * pop[:, None]).sum(0)),
            jnp.asarray(keep, jnp.int32), jnp.asarray([c for c, _ in curves], jnp.int32),
            jnp.asarray([a[0] for _, a in curves], jnp.int32),
            None if shape_curve is None else jnp.asarray(shape_curve, jnp.int32), n_c,
            None if shape_of is None else tuple((int(k), len(list(r))) for k, r in itertools.groupby(shape_of)),
        )  # fmt: skip

    def _curve_crf(self, crf):
        n_c, n_a = len(crf.causes), len(crf.ages)

        def pick(p):
            if eqx.is_array(p) and p.ndim == 2 and p.shape == (n_c, n_a):
                return p[self.cause, self.age][None, :]
            return p

        return jax.tree.map(pick, crf)

    def curve_deaths(self, pm: Float[Array, " cell"], crf: AbstractCRF) -> Float[Array, "curve cell"]:
        """`weight * PAF` per curve and kept cell, `[curve, cell]` (baseline factor not applied)."""
        if self.shape_runs is not None and isinstance(crf, GEMM):
            logrr = self._gemm_log_rr(pm, crf)
        else:
            logrr = self._curve_crf(crf)._log_rr(pm)[0]  # [curve, cell]
        return self.weight * -jnp.expm1(-logrr)

    def _gemm_log_rr(self, pm: Float[Array, " cell"], crf: GEMM) -> Float[Array, "curve cell"]:
        """GEMM `log RR` per curve and cell, with `g = log1p(z / alpha) * sigmoid((z - mu) / nu)` evaluated
        once per shape (the same formula and excess `z` as `GEMM._log_rr`)."""
        d = pm - crf.cf
        pos = d > 0
        z = jnp.where(pos, d, 0.0)[None, :]  # [1, cell]; zero gradient below the counterfactual
        sc = self.shape_curve
        c, a = self.cause[sc], self.age[sc]
        alpha, mu, nu = (p[c, a][:, None] for p in (crf.alpha, crf.mu, crf.nu))
        g = jnp.log1p(z / alpha) / (1.0 + jnp.exp(-(z - mu) / nu))  # [shape, cell]
        # static slices and broadcasts (a gather by shape index would be fused into the per-curve loop and
        # recompute g for every curve)
        gk = jnp.concatenate([jnp.broadcast_to(g[k : k + 1], (m, g.shape[1])) for k, m in self.shape_runs])
        theta = crf.theta[self.cause, self.age][:, None]  # [curve, 1]
        return theta * gk

    def deaths(
        self, pm: Float[Array, " cell"], crf: AbstractCRF, baseline_factor: Float[Array, " cause"]
    ) -> Float[Array, "cause region"]:
        """Deaths `[cause, region]` from PM2.5 at the kept cells."""
        d = self.curve_deaths(pm, crf) @ self.region_weight  # [curve, region]
        return jax.ops.segment_sum(d, self.cause, num_segments=self.n_causes) * baseline_factor[:, None]

    def total(
        self, pm: Float[Array, " cell"], crf: AbstractCRF, baseline_factor: Float[Array, " cause"]
    ) -> Float[Array, ""]:
        """Deaths summed over causes, ages and regions (weights summed over regions first: no matrix product
        per scenario)."""
        w = self.region_weight.sum(axis=1)[None, :] * baseline_factor[self.cause][:, None]  # [curve, cell]
        return jnp.sum(self.curve_deaths(pm, crf) * w)

    def pwpm(self, pm: Float[Array, " cell"]) -> Float[Array, " region"]:
        """Population-weighted PM2.5 per region (`nan` where a region has no population)."""
        num = pm @ self.pop_region
        ok = self.pop_total > 0
        return jnp.where(ok, num / jnp.where(ok, self.pop_total, 1.0), jnp.nan)


class PM25Map(eqx.Module):
    """Emulator output -> PM2.5 at the health kernel's kept cells. With a downscaler, the downscaling and the
    component weights are fused into one matrix: $PM_g = PM^{base}_g + \\sum_{c,a} r_{ca} B_{ca,g}$ with
    $r = y / y^{base} - 1$ and $B_{ca,g} = w_c C^{base}_{c,g} \\phi_{a,g}$."""

    base_pm: Float[Array, " cell"] | None
    B: Float[Array, "component_receptor cell"] | None
    flat: Int[Array, " cell"]  # flat [row, col] grid index of each kept cell

    @classmethod
    def build(cls, chain: Chain, kernel: HealthKernel) -> PM25Map:
        hi = chain.health.inputs
        cells = np.asarray(kernel.cells)
        flat = cells if hi.cell_index is None else np.asarray(hi.cell_index)[cells]
        down = chain.downscaler
        if down is None:
            return cls(None, None, jnp.asarray(flat, jnp.int32))
        w = np.asarray(chain.emulator.labels.component_weights(), dtype=np.float64)
        base = np.asarray(down.base_grid, dtype=np.float64).reshape(down.base_grid.shape[0], -1)[:, flat]
        frac = np.asarray(down.receptor_fraction, dtype=np.float64).reshape(down.receptor_fraction.shape[0], -1)[:, flat]
        B = (w[:, None, None] * base[:, None, :] * frac[None, :, :]).reshape(-1, flat.size)
        return cls(jnp.asarray(w @ base), jnp.asarray(B), jnp.asarray(flat, jnp.int32))

    def __call__(
        self, chain: Chain, E: Float[Array, "species source level"], member_weights: Float[Array, " member"] | None
    ) -> Float[Array, " cell"]:
        xin = chain.emulator_input(E)
        emu = chain.emulator
        if member_weights is not None:
            y = jnp.tensordot(member_weights, emu.member_predictions(xin), axes=1)
        else:
            y = emu(xin)
        if self.B is not None:
            yb = emu.base
            ratio = jnp.where(yb != 0, y / jnp.where(yb != 0, yb, 1.0), 1.0) - 1.0
            return self.base_pm + ratio.reshape(-1) @ self.B
        return chain.pm25(y).reshape(-1)[self.flat]


# ----------------------------------------------------------------------------------------------- the draw


def crf_structure(spec, base_crf):
    """What decides curve sharing under `spec`: the base CRF when it is not sampled, the sampled source
    (GEMM: one normal per cause, so equal (theta, SE) stay equal; IER draws: one draw index for all) with the
    default sampler, `None` (no sharing) for a user-supplied sampler."""

    s = spec.crf_sampler
    if s is None:
        return base_crf
    if isinstance(s, _CRFSampler):
        return s.source
    return None


class ChainDraw(eqx.Module):
    """One Monte Carlo draw of the chain, `key -> dict of arrays` (see `diffmrio.chain.monte_carlo`).

    Build with `ChainDraw.build(chain, spec, groups)`. Scenario 0 is the sampled case; scenarios
    `1..G` remove one group of final demand each (zero-out attribution).
    """

    chain: Chain
    spec: eqx.Module
    base: ChainInputs
    health: HealthKernel
    pm: PM25Map
    E0: Float[Array, "scenario species source level"] | None  # without the species factors (economy fixed)
    y_s: Float[Array, "scenario n"] | None  # row totals of final demand (economy perturbed)
    c_s: Float[Array, "scenario fd"] | None  # column totals
    n_groups: int = eqx.field(static=True)
    target: eqx.Module | None = None  # a `Target` (`None`: total deaths); `attribution` is its zero-out

    @classmethod
    def build(cls, chain: Chain, spec, groups: GroupIndex | None = None, target=None) -> ChainDraw:
        base = chain.base_inputs()
        kernel = HealthKernel.build(chain.health, crf_structure(spec, base.crf))
        pm = PM25Map.build(chain, kernel)
        y = base.Y.sum(axis=1)
        c = base.Y.sum(axis=0)
        if groups is not None:
            yG, cG = groups.totals(base.Y)
            y_s = jnp.concatenate([y[None], y[None] - yG])
            c_s = jnp.concatenate([c[None], c[None] - cG])
        else:
            y_s, c_s = y[None], c[None]
        G = 0 if groups is None else groups.n_groups
        if float(spec.mrio_cv) > 0:
            return cls(chain, spec, base, kernel, pm, None, y_s, c_s, G, target)
        ones = eqx.tree_at(lambda i: i.species_factor, base, jnp.ones_like(base.species_factor))
        if isinstance(base.A, jax.core.Tracer):  # built inside a transformation: XLA's LU
            X = leontief_solve(base.A, y_s.T)
        else:  # one LU, in place on one copy of A, for all scenarios
            X = LeontiefFactor.from_coefficients(base.A).solve(y_s.T)
        E0 = jax.vmap(lambda x, cc: chain.emissions_from_totals(ones, x, cc))(X.T, c_s)
        return cls(chain, spec, base, kernel, pm, E0, None, None, G, target)

    def __call__(self, key) -> dict:
        return _draw(self, key)


@eqx.debug.assert_max_traces(max_traces=None)  # counted by the no-recompilation tests
def _draw(d: ChainDraw, key: Key[Array, ""] | UInt32[Array, " 2"]) -> dict[str, Array]:
    ch = d.chain
    inp = sample_inputs(ch, d.spec, d.base, key)
    if d.E0 is not None:
        E = d.E0 * inp.species_factor[None, :, None, None]
    else:  # one factorisation of the sampled I - A, reused for every scenario
        X = leontief_solve(inp.A, d.y_s.T)
        E = jax.vmap(lambda x, c: ch.emissions_from_totals(inp, x, c))(X.T, d.c_s)
    pm = jax.vmap(lambda e: d.pm(ch, e, inp.member_weights))(E)  # [scenario, cell]
    deaths = d.health.deaths(pm[0], inp.crf, inp.baseline_factor)
    res = {"deaths": deaths, "pwpm": d.health.pwpm(pm[0])}
    if ch.emulator is not None:
        res["in_envelope"] = ch.emulator.in_envelope(ch.emulator_input(E[0]))
    if d.target is not None:
        def J(p):
            return d.target.of_kernel(d.health, p, inp.crf, inp.baseline_factor)

        res["target"] = d.target.of_kernel(d.health, pm[0], inp.crf, inp.baseline_factor, deaths)
        if d.n_groups:
            res["attribution"] = res["target"] - jax.vmap(J)(pm[1:])
    elif d.n_groups:
        without = jax.vmap(lambda p: d.health.total(p, inp.crf, inp.baseline_factor))(pm[1:])
        res["attribution"] = deaths.sum() - without
    return res
