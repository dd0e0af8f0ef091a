r"""Gradient queries and attribution of deaths through the chain.

**Sensitivity queries** are one reverse pass each: $\partial J / \partial Y$, $\partial J / \partial S$
or $\partial J / \partial E^{src}$ for a scalar target $J$ (deaths anywhere or in one receptor region, or
population-weighted PM2.5).

**Attribution** of a target vector $J$ (deaths per receptor region) to groups of final demand $E_i$
(consumers, final producers, sectors, foreign demand; each a mask over the entries of $Y$, together a
partition of $Y$), by three methods (docs/science.md, section 4):

- zero-out: $J(Y) - J(Y - Y_i)$ (EXPORT/VALUECHAIN studies); not additive when the response is nonlinear;
- first-order (adjoint-weighted): $\nabla J(Y) \cdot Y_i$ (COBENEFIT study); additive, exact only if linear;
- path-integrated (Aumann-Shapley): $\int_0^1 \nabla J(\alpha Y) \cdot Y_i \, d\alpha$, by composite
  Gauss-Legendre quadrature; the contributions sum to $J(Y) - J(0)$.

The concentration-response functions have a kink at the counterfactual concentration
($z = \max(0, C - C_{cf})$), so along the path the integrand jumps wherever a cell crosses it and plain
quadrature converges only slowly. On each sub-interval $[\alpha_k, \alpha_{k+1}]$ the Gauss-Legendre
estimates of the group contributions are therefore scaled to add up to the exact increment
$J(\alpha_{k+1} Y) - J(\alpha_k Y)$ (computed by two forward evaluations). Where the integrand is smooth
the scaling is $1 + O(\text{quadrature error})$; the result sums to $J(Y) - J(0)$ to rounding, and the
size of the correction is reported as `raw_quadrature_gap`.

All three agree when $J$ is linear in $Y$ (a linear emulator and a linear target); they differ where
chemistry or the concentration-response function is nonlinear (tested).
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import xarray as xr
from jaxtyping import Array, Float, Shaped

from .._labels import label
from .._units import MONEY, common_unit, per
from ._chain import Chain, ChainInputs
from ._fastdraw import (
    GROUPINGS as GROUPINGS,  # noqa: F401  (re-exported)
    GroupIndex,
    Grouping,
    group_index,
)
from ._targets import DEATHS_UNITS, PM_UNITS

METHOD_LONG = {"zero_out": "zero-out", "first_order": "first-order (adjoint-weighted)",
               "path": "path-integrated (Aumann-Shapley)"}


def _target_units(target: str) -> str:
    if target == "deaths":
        return DEATHS_UNITS
    if target == "pwpm":
        return PM_UNITS
    raise ValueError(f"target must be 'deaths' or 'pwpm', got {target!r}")


def group_masks(
    chain: Chain, by: Grouping, foreign_categories=("export",)
) -> tuple[Float[np.ndarray, "group n fd"], list[str]]:
    """Dense 0/1 masks `[group, n, fd]` over final-demand entries that partition `Y` (O(groups x n x fd)
    memory: for small tables and checks; the attribution and Monte Carlo use
    [`group_index`][diffmrio.chain.group_index] instead).

    - `consumer`: the columns of each consuming region (all categories);
    - `final_producer`: the rows of each producing region (final products sold by the region);
    - `sector`: the rows of each sector, all regions;
    - `foreign`: foreign demand (`foreign_categories`, e.g. exports) vs domestic demand.
    """
    gi = group_index(chain, by, foreign_categories)
    m = chain.mrio
    return gi.dense_masks(m.n_regions * m.n_sectors, m.n_regions * m.n_categories), list(gi.labels)


def _target_fn(chain: Chain, inp: ChainInputs, target: str, receptor):
    def f(Y):
        return chain.target(eqx.tree_at(lambda i: i.Y, inp, Y), target, receptor)

    return f


# The jitted functions below are module-level and take the chain and inputs as arguments (their arrays are
# traced leaves), so repeated calls with new values of the same shapes reuse the compiled code. Each is
# wrapped in `assert_max_traces(max_traces=None)` so that the tests can count its traces.


def _jacobian(
    chain: Chain, inp: ChainInputs, target: str, Y: Float[Array, "n fd"] | None = None
) -> Float[Array, "receptor n fd"]:
    """Jacobian of the per-region target w.r.t. Y (at `Y`, default `inp.Y`): one reverse pass per receptor."""
    f = _target_fn(chain, inp, target, "all")
    return jax.jacrev(f)(inp.Y if Y is None else Y)  # (receptor, n, fd)


@eqx.filter_jit
@eqx.debug.assert_max_traces(max_traces=None)
def _grad_wrt(
    chain: Chain, inp: ChainInputs, wrt: str, target: str, receptor: str | None
) -> Float[Array, "n fd"] | Float[Array, "p n"] | Float[Array, "species source level"]:
    """Gradient of the scalar target w.r.t. `Y` (`final_demand`), `S` (`intensity`) or the CTM sources'
    emissions (`emissions`)."""
    if wrt == "final_demand":
        return jax.grad(_target_fn(chain, inp, target, receptor))(inp.Y)
    if wrt == "intensity":
        return jax.grad(lambda S: chain.target(eqx.tree_at(lambda i: i.S, inp, S), target, receptor))(inp.S)

    def fe(E):
        return chain.target_from_pm25(chain.pm25(chain.concentration(E, inp.member_weights)), inp, target, receptor)

    return jax.grad(fe)(chain.emissions(inp))


@eqx.filter_jit
@eqx.debug.assert_max_traces(max_traces=None)
def _zero_out(chain: Chain, inp: ChainInputs, target: str, groups: GroupIndex) -> Float[Array, "group receptor"]:
    """`J(Y) - J(Y - Y_g)` per group, one group at a time (O(n fd) memory whatever the number of groups)."""
    f_all = _target_fn(chain, inp, target, "all")
    base = f_all(inp.Y)
    return jax.lax.map(lambda g: base - f_all(groups.without(inp.Y, g)), jnp.arange(groups.n_groups))


@eqx.filter_jit
@eqx.debug.assert_max_traces(max_traces=None)
def _zero_out_masks(
    chain: Chain, inp: ChainInputs, target: str, masks: Shaped[Array, "group n fd"]
) -> Float[Array, "group receptor"]:
    f_all = _target_fn(chain, inp, target, "all")
    base = f_all(inp.Y)
    return jax.lax.map(lambda mk: base - f_all(inp.Y * (1.0 - mk)), masks)


def _contract(
    Jac: Float[Array, "receptor n fd"], Y: Float[Array, "n fd"], groups: GroupIndex | None,
    masks: Shaped[Array, "group n fd"] | None,
) -> Float[Array, "group receptor"]:
    """`sum_{(i,j) in g} Jac[a, i, j] Y[i, j]` per group: a segment sum over an index array, or (user masks)
    a contraction with the dense masks."""
    if groups is not None:
        return groups.contract(Jac * Y[None]).T  # (group, receptor)
    return jnp.einsum("anf,gnf->ga", Jac, masks * Y[None])


@eqx.filter_jit
@eqx.debug.assert_max_traces(max_traces=None)
def _first_order(
    chain: Chain, inp: ChainInputs, target: str, groups: GroupIndex | None, masks: Shaped[Array, "group n fd"] | None
) -> Float[Array, "group receptor"]:
    return _contract(_jacobian(chain, inp, target), inp.Y, groups, masks)


@eqx.filter_jit
@eqx.debug.assert_max_traces(max_traces=None)
def _path_run(
    chain: Chain, inp: ChainInputs, target: str, groups: GroupIndex | None, masks: Shaped[Array, "group n fd"] | None,
    alphas: Float[Array, " node"], wts: Float[Array, " node"], edges: Float[Array, " edge"], n_intervals: int,
    n_nodes: int,
) -> tuple[Float[Array, "interval group receptor"], Float[Array, "interval receptor"], Float[Array, " receptor"]]:
    """Gauss-Legendre estimates per interval and group, and the exact increments of the target."""
    f_all = _target_fn(chain, inp, target, "all")
    Y = inp.Y

    def grad_contrib(alpha):
        return _contract(_jacobian(chain, inp, target, alpha * Y), Y, groups, masks)  # (group, receptor)

    g = jax.lax.map(grad_contrib, alphas)  # (node, group, receptor)
    g = g.reshape(n_intervals, n_nodes, *g.shape[1:])
    w = wts.reshape(n_intervals, n_nodes)
    per_interval = jnp.einsum("kn,knga->kga", w, g)
    Js = jax.vmap(lambda a: f_all(a * Y))(edges)  # (edge, receptor)
    return per_interval, jnp.diff(Js, axis=0), Js[-1] - Js[0]


def attribute(
    chain: Chain,
    inputs: ChainInputs | None = None,
    *,
    by: Grouping = "consumer",
    method: str = "path",
    target: str = "deaths",
    n_nodes: int = 8,
    n_intervals: int = 8,
    masks=None,
    labels=None,
) -> xr.DataArray:
    r"""Attribute the target (per receptor region) to groups of final demand.

    **Arguments:**

    - `chain`, `inputs` (default `chain.base_inputs()`).
    - `by`: `"consumer"`, `"final_producer"`, `"sector"`, `"region_sector"` or `"foreign"`, or a user's own
      grouping of the rows or columns of `Y` (a labelled DataArray, a mapping, a sequence of labels or a
      [`GroupIndex`][diffmrio.chain.GroupIndex]; see [`custom_group_index`][diffmrio.chain.custom_group_index]):
      groups as index arrays, memory O(n fd) whatever their number; or give dense `masks[group, n, fd]` and
      `labels` (O(groups x n x fd) memory).
    - `method`: `"zero_out"`, `"first_order"` or `"path"` (Aumann-Shapley, `n_nodes` Gauss-Legendre nodes).
    - `target`: `"deaths"` or `"pwpm"`.

    **Returns:** `DataArray(group, receptor)` with `units` (deaths yr-1, or ug m-3 for `"pwpm"`). For `"path"`, `attrs["total_change"]` holds $J(Y) - J(0)$
    summed over receptors and `attrs["quadrature_gap"]` the relative difference between it and the sum of
    the contributions.
    """
    inp = chain.base_inputs() if inputs is None else inputs
    groups = None
    if masks is None:
        groups = group_index(chain, by)
        labels = list(groups.labels)
    else:
        masks = jnp.asarray(masks)
    regions = list(chain.health.inputs.regions)
    attrs = {"method": method, "target": target, "grouping": by if isinstance(by, str) else "custom",
             "units": _target_units(target), "long_name": f"{METHOD_LONG.get(method, method)} attribution of {target}"}
    if method == "zero_out":
        contrib = _zero_out(chain, inp, target, groups) if groups is not None else _zero_out_masks(chain, inp, target, masks)
    elif method == "first_order":
        contrib = _first_order(chain, inp, target, groups, masks)
    elif method == "path":
        contrib, raw_gap, total = _path_integral(chain, inp, target, groups, masks, n_intervals, n_nodes)
        attrs["total_change"] = total
        attrs["quadrature_gap"] = float(abs(float(np.sum(contrib)) - total) / max(abs(total), 1e-300))
        attrs["raw_quadrature_gap"] = raw_gap
    else:
        raise ValueError(f"method must be 'zero_out', 'first_order' or 'path', got {method!r}")
    return label(contrib, ("group", "receptor"), {"group": labels, "receptor": regions}, name=f"attribution_{method}",
                 attrs=attrs)


def _path_integral(
    chain: Chain, inp: ChainInputs, target: str, groups: GroupIndex | None, masks: Shaped[Array, "group n fd"] | None,
    n_intervals: int, n_nodes: int,
) -> tuple[Float[np.ndarray, "group receptor"], float, float]:
    """Composite Gauss-Legendre Aumann-Shapley integral with exact per-interval increments."""
    nodes, weights = np.polynomial.legendre.leggauss(n_nodes)
    edges = np.linspace(0.0, 1.0, n_intervals + 1)
    alphas = np.concatenate([lo + (hi - lo) * 0.5 * (nodes + 1.0) for lo, hi in zip(edges[:-1], edges[1:])])
    wts = np.concatenate([(hi - lo) * 0.5 * weights for lo, hi in zip(edges[:-1], edges[1:])])
    per_interval, increments, total_vec = _path_run(
        chain, inp, target, groups, masks, jnp.asarray(alphas), jnp.asarray(wts), jnp.asarray(edges),
        int(n_intervals), int(n_nodes),
    )  # fmt: skip
    raw = np.asarray(per_interval.sum(axis=1))  # (interval, receptor): quadrature of the total
    inc = np.asarray(increments)
    scale = np.where(np.abs(raw) > 0, inc / np.where(np.abs(raw) > 0, raw, 1.0), 1.0)
    contrib = np.einsum("kga,ka->ga", np.asarray(per_interval), scale)
    total = float(np.sum(total_vec))
    raw_gap = float(abs(float(np.sum(raw)) - total) / max(abs(total), 1e-300))
    return contrib, raw_gap, total


def sensitivity(
    chain: Chain,
    inputs: ChainInputs | None = None,
    *,
    wrt: str = "final_demand",
    target: str = "deaths",
    receptor: str | None = None,
) -> xr.DataArray:
    r"""Gradient of a scalar target with respect to every entry of one input, labelled.

    **Arguments:**

    - `wrt`: `"final_demand"` ($\partial J/\partial Y$, dims region, sector, fd_region, category),
      `"intensity"` ($\partial J/\partial S$ for the stressors the source map uses: stressor, region,
      sector) or `"emissions"` ($\partial J/\partial E^{src}$: species, source, level).
    - `target`: `"deaths"` (summed over causes and ages) or `"pwpm"`; `receptor`: a health region, or
      `None` for the whole domain.

    **Returns:** an `xarray.DataArray` of the gradient with `units` (target per unit of the input: the table's
    monetary unit for final demand, the stressors' unit for emissions).
    """
    inp = chain.base_inputs() if inputs is None else inputs
    m = chain.mrio
    tu = _target_units(target)
    rows = list(chain.source_map.stressor_rows)
    eu = common_unit([m.units[i] for i in rows])
    R, N, K = m.n_regions, m.n_sectors, m.n_categories
    if wrt == "final_demand":
        g = _grad_wrt(chain, inp, wrt, target, receptor)
        return label(np.asarray(g).reshape(R, N, R, K), ("region", "sector", "fd_region", "category"),
                     {"region": m.regions, "sector": m.sectors, "fd_region": m.regions, "category": m.categories},
                     units=per(tu, MONEY), name=f"d{target}_dY", attrs={"receptor": receptor or "all"})
    if wrt == "intensity":
        g = np.asarray(_grad_wrt(chain, inp, wrt, target, receptor))
        su = per(eu, MONEY)
        out = label(g[rows].reshape(len(rows), R, N), ("stressor", "region", "sector"),
                    {"stressor": [m.stressors[i] for i in rows], "region": m.regions, "sector": m.sectors},
                    units=per(tu, f"({su})"), name=f"d{target}_dS", attrs={"receptor": receptor or "all"})
        return out.assign_coords(unit=("stressor", [m.units[i] for i in rows]))  # each stressor's own unit
    if wrt == "emissions":
        g = _grad_wrt(chain, inp, wrt, target, receptor)
        sm = chain.source_map
        return label(g, ("species", "source", "level"), {"species": sm.species, "source": sm.sources, "level": sm.levels},
                     units=per(tu, eu), name=f"d{target}_dE", attrs={"receptor": receptor or "all"})
    raise ValueError(f"wrt must be 'final_demand', 'intensity' or 'emissions', got {wrt!r}")
