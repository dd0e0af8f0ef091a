"""The one vocabulary and the one region-aggregation / source-to-grid kernels in ctm_interface, the GEMM table
keyed once, and the one random-MRIO generator, each against an independent numpy computation."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import ctm_interface as ci
from ctm_interface.reference import COMPONENTS, LEVELS, REGIONS, SPECIES, demo_domain
from ctm_interface.reference._model import PM25_WEIGHTS
from diffmrio.datasets import REGIONS as WORLD_REGIONS, random_mrio
from diffmrio.health import GEMM_BURNETT2018
from diffmrio.health._params import GEMM_AGE_LABELS, _expand_gemm


def loops_region(x, frac, w, how):
    """x[lead..., cells...], frac[region, cells...] with explicit loops over regions and flat cells."""
    R = frac.shape[0]
    lead = x.shape[: x.ndim - (frac.ndim - 1)]
    xf = x.reshape(lead + (-1,))
    ff = frac.reshape(R, -1)
    wf = np.ones(ff.shape[1]) if w is None else w.reshape(-1)
    out = np.zeros(lead + (R,))
    for r in range(R):
        num = np.zeros(lead)
        den = 0.0
        for g in range(ff.shape[1]):
            num = num + xf[..., g] * ff[r, g] * wf[g]
            den += ff[r, g] * wf[g]
        out[..., r] = num if how == "sum" else (num / den if den > 0 else np.nan)
    return out


@pytest.mark.parametrize("cell_shape", [(5,), (4, 6)])
@pytest.mark.parametrize("how", ["sum", "mean"])
@pytest.mark.parametrize("weighted", [False, True])
def test_region_kernel_matches_loops_numpy_and_jax(cell_shape, how, weighted):
    rng = np.random.default_rng(1)
    x = rng.normal(size=(2, 3, *cell_shape))
    frac = rng.random((4, *cell_shape))
    frac[3] = 0.0  # a region with no cells: NaN mean, zero sum
    w = rng.gamma(0.5, 100.0, cell_shape) if weighted else None
    ref = loops_region(x, frac, w, how)
    got_np = ci.region_kernel(x, frac, w, how=how)
    assert isinstance(got_np, np.ndarray)
    np.testing.assert_allclose(got_np, ref, rtol=1e-13, atol=1e-13)
    wj = None if w is None else jnp.asarray(w)
    got_jax = jax.jit(lambda a, f, ww: ci.region_kernel(a, f, ww, how=how))(jnp.asarray(x), jnp.asarray(frac), wj)
    np.testing.assert_allclose(np.asarray(got_jax), ref, rtol=1e-13, atol=1e-13)
    assert np.isnan(ref[..., 3]).all() == (how == "mean")


def test_region_mean_gradient_matches_finite_differences_and_is_nan_free():
    rng = np.random.default_rng(2)
    x, frac, w = rng.random((3, 5, 6)), rng.random((4, 5, 6)), rng.random((5, 6))
    frac[2] = 0.0  # its NaN mean must not poison the gradient of the other regions
    v = rng.normal(size=(3, 4))
    v[:, 2] = 0.0

    def f(a):
        return jnp.nansum(ci.region_kernel(a, jnp.asarray(frac), jnp.asarray(w), how="mean") * v)

    g = np.asarray(jax.grad(f)(jnp.asarray(x)))
    assert np.isfinite(g).all()
    d = rng.normal(size=x.shape)
    h = 1e-6
    fd = (f(jnp.asarray(x + h * d)) - f(jnp.asarray(x - h * d))) / (2 * h)
    np.testing.assert_allclose(np.sum(g * d), fd, rtol=1e-7)


def test_spread_is_the_transpose_of_the_region_sum_and_allocation_matches_loops():
    rng = np.random.default_rng(3)
    frac, x, v = rng.random((4, 5, 6)), rng.random((2, 5, 6)), rng.random((2, 4))
    spread = ci.spread_to_grid(v, frac)
    np.testing.assert_allclose(spread, np.tensordot(v, frac, axes=1), rtol=1e-14)
    # <spread(v), x> == <v, region_sum(x)>
    np.testing.assert_allclose(np.sum(spread * x), np.sum(v * ci.region_kernel(x, frac)), rtol=1e-13)
    E, alloc = rng.random((3, 4, 2)), rng.random((4, 2, 5, 6))
    ref = np.zeros((3, 2, 5, 6))
    for s in range(3):
        for o in range(4):
            for level in range(2):
                ref[s, level] += E[s, o, level] * alloc[o, level]
    np.testing.assert_allclose(ci.allocate_to_grid(E, alloc), ref, rtol=1e-14)
    np.testing.assert_allclose(np.asarray(ci.allocate_to_grid(jnp.asarray(E), jnp.asarray(alloc))), ref, rtol=1e-14)
    with pytest.raises((ValueError, TypeError), match="allocat"):  # TypeError: jaxtyping's check in the test run
        ci.allocate_to_grid(E[:, :3], alloc)
    with pytest.raises(ValueError, match="cell axes"):
        ci.region_kernel(x[..., :5], frac)
    with pytest.raises(ValueError, match="how"):
        ci.region_kernel(x, frac, how="median")


def test_demo_domain_call_sites_equal_numpy():
    """The reference domain's region means and gridded emissions (now calls to the kernels) equal numpy."""
    dom = demo_domain()
    rng = np.random.default_rng(4)
    C = rng.random((2, *dom.grid.shape))
    f, p = np.asarray(dom.region_fraction), np.asarray(dom.population)
    ref = np.einsum("cyx,ryx->cr", C, f * p) / np.einsum("ryx->r", f * p)
    np.testing.assert_allclose(np.asarray(dom.region_mean(jnp.asarray(C))), ref, rtol=1e-12)
    ref_area = np.einsum("cyx,ryx->cr", C, f) / f.sum(axis=(1, 2))
    np.testing.assert_allclose(np.asarray(dom.region_mean(jnp.asarray(C), weights="area")), ref_area, rtol=1e-12)
    E = rng.random((len(SPECIES), len(REGIONS), len(LEVELS)))
    ref_E = np.einsum("sgl,glyx->slyx", E, np.asarray(dom.allocation))
    np.testing.assert_allclose(np.asarray(dom.gridded_emissions(jnp.asarray(E))), ref_E, rtol=1e-12)


def test_ctm_interface_has_no_inline_copies_of_the_region_kernels():
    """Issue 11 item 4: the run-folder and ensemble readers and the spectral CTM aggregate to regions and spread
    to the grid through `ctm_interface._regions` (no `einsum` or `xr.dot` of their own)."""
    import ast
    from pathlib import Path

    root = Path(ci.__file__).parent
    found = []
    for name in ("_ensemble.py", "_runfolder.py", "spectral/_model.py", "spectral/_folder.py"):
        for node in ast.walk(ast.parse((root / name).read_text())):
            if isinstance(node, ast.Call):
                f = node.func
                called = f.attr if isinstance(f, ast.Attribute) else getattr(f, "id", "")
                if called in ("einsum", "dot", "tensordot", "matmul"):
                    found.append(f"{name}:{node.lineno} {called}")
    assert not found, found


def test_vocabulary_is_one_table():
    assert COMPONENTS == ci.CTM_COMPONENTS and SPECIES == ci.EMISSION_SPECIES and LEVELS == ci.EMISSION_LEVELS
    assert REGIONS == WORLD_REGIONS == ci.DEMO_REGIONS
    assert PM25_WEIGHTS == (1.0, 1.0, 1.0, 1.0, 1.4, 1.0)
    np.testing.assert_array_equal(ci.pm25_weights(["SO4", "PM25_OC", "OM", "OCPI"], om_oc=1.8), [1, 1.8, 1, 1.8])
    np.testing.assert_array_equal(ci.pm25_weights(["PM25_TOT"]), [1.0])
    with pytest.raises(ValueError, match="total"):
        ci.pm25_weights(["PM25_TOT", "SO4"])
    with pytest.raises(ValueError, match="om_oc"):
        ci.pm25_weights(["OC"], om_oc=0.0)


def test_gemm_table_expands_to_every_age_with_shared_shape():
    """Every cohort set and cause has the 25+ row and the twelve 5-year groups; the shape (alpha, mu, nu) is the
    same at every age; spot values from the GEMM sheet (Burnett et al. 2018)."""
    for cohort in ("inc_China", "ex_China"):
        for cause, rows in GEMM_BURNETT2018[cohort].items():
            assert list(rows) == ["25+", *GEMM_AGE_LABELS], (cohort, cause)
            assert len({r[2:] for r in rows.values()}) == 1
            if cause in ("COPD", "LC", "LRI"):
                assert len(set(rows.values())) == 1
    assert GEMM_BURNETT2018["inc_China"]["IHD"]["80+"] == (0.1536, 0.00745, 1.9, 12, 40.2)
    assert GEMM_BURNETT2018["ex_China"]["COPD"]["55-59"] == (0.2095, 0.06725, 7.2, 2, 14.7)
    assert GEMM_BURNETT2018["ex_China"]["STROKE"]["25+"] == (0.1873, 0.08431, 6.2, 14.5, 14.4)
    with pytest.raises(ValueError, match="25\\+"):
        _expand_gemm({"x": {"IHD": ((1.0, 2.0, 3.0), {"25-29": (0.1, 0.01)})}})


@pytest.mark.parametrize("structure", ["blocks", "uniform"])
def test_random_mrio_is_seeded_productive_and_labelled(structure):
    m = random_mrio(3, 4, 2, 3, seed=5, structure=structure)
    again = random_mrio(3, 4, 2, 3, seed=5, structure=structure, labelled=False)
    other = random_mrio(3, 4, 2, 3, seed=6, structure=structure, labelled=False)
    Z, Y, F = (np.asarray(a) for a in (m.Z, m.Y, m.F))
    np.testing.assert_array_equal(Z, again[0])
    np.testing.assert_array_equal(F, again[2])
    assert not np.array_equal(Z, other[0])
    assert Z.shape == (12, 12) and Y.shape == (12, 6) and F.shape == (3, 12)
    x = Z.sum(axis=1) + Y.sum(axis=1)
    A = Z / x
    assert np.abs(np.linalg.eigvals(A)).max() < 1 and (A >= 0).all() and (Y >= 0).all()
    assert m.regions == ("r0", "r1", "r2") and m.stressors == ("q0", "q1", "q2")
    # a generator seed continues the same stream
    rng = np.random.default_rng(5)
    np.testing.assert_array_equal(random_mrio(3, 4, 2, 3, seed=rng, structure=structure, labelled=False)[0], Z)
    with pytest.raises(ValueError, match="structure"):
        random_mrio(structure="dense")
    with pytest.raises(ValueError, match="regions"):
        random_mrio(2, regions=["a"])


def test_jaxtyping_checks_are_on_in_the_test_run(request):
    """pyproject's addopts instrument the kernels' modules: a shape that contradicts the signature of
    `allocate_to_grid` (`emissions[*lead, source, level]` against `allocation[source, level, row, col]`) is a
    jaxtyping TypeCheckError before the function body runs."""
    import jaxtyping

    packages = request.config.getoption("jaxtyping_packages") or ""
    if "ctm_interface._regions" not in packages:
        pytest.skip("run without --jaxtyping-packages (pyproject's addopts were overridden)")
    with pytest.raises(jaxtyping.TypeCheckError, match="allocate_to_grid"):
        ci.allocate_to_grid(np.ones((3, 4, 2)), np.ones((5, 2, 3, 3)))
    with pytest.raises(jaxtyping.TypeCheckError):
        ci.allocate_to_grid(np.ones((3, 4, 2)), np.ones((4, 2, 3)))  # allocation without a grid axis


# modules whose shape annotations the test run leaves unchecked, each with the reason (pyproject's comment says more)
UNCHECKED = {
    "diffmrio._custom_types": "defines the annotation aliases; no functions",
}


def test_every_annotated_module_is_shape_checked():
    """Every module of the three packages whose signatures carry jaxtyping shapes (`Float[...]`, `Int[...]`, ...)
    is listed in pyproject's `--jaxtyping-packages` (or in UNCHECKED with a reason), so no shape annotation is
    silently untrue."""
    import re
    import tomllib
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    addopts = tomllib.loads((root / "pyproject.toml").read_text())["tool"]["pytest"]["ini_options"]["addopts"]
    (opt,) = [a for a in addopts if a.startswith("--jaxtyping-packages=")]
    listed = opt.split("=", 1)[1].split(",")
    missing = []
    for pkg in ("diffmrio", "surrogate", "ctm_interface"):
        for path in sorted((root / pkg).rglob("*.py")):
            if not re.search(r"\b(Float|Int|Shaped|Bool|Real|Num|Key|UInt|Complex|Inexact)\[", path.read_text()):
                continue
            mod = ".".join(path.relative_to(root).with_suffix("").parts).removesuffix(".__init__")
            if mod not in UNCHECKED and not any(mod == m or mod.startswith(m + ".") for m in listed):
                missing.append(mod)
    assert not missing, (f"annotated but not shape-checked in the test run: {missing}; add them to pyproject's "
                         "--jaxtyping-packages (or to UNCHECKED here with the reason)")
