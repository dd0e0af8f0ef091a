"""The restructured Monte Carlo draw (`ChainDraw`: hoisted economy, shared relative-risk curves and GEMM shape
functions, fused downscaler) against the reference chain (`Chain`) evaluated on the same sampled inputs."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from _chains import COMPONENTS, small_chain

import diffmrio
import surrogate
from diffmrio.chain._chain import Downscaler
from diffmrio.chain._fastdraw import ChainDraw, HealthKernel, crf_structure
from diffmrio.health import GEMM, IER, HealthModel


def _with_downscaler(ch, n_rec: int = 3, seed: int = 1):
    """`ch` with a receptor-level linear emulator (`[component, receptor]`) and a `Downscaler` to its grid."""
    rng = np.random.default_rng(seed)
    ny, nx = np.asarray(ch.health.inputs.population).shape
    m, sm = ch.mrio, ch.source_map
    labels = surrogate.EmulatorLabels(
        input_dims=("source", "species"), input_coords=(m.regions, sm.species), input_units="1",
        output_dims=("component", "receptor"), output_coords=(COMPONENTS, tuple(f"r{i}" for i in range(n_rec))),
        output_units="ug m-3", input_kind="scale",
    )  # fmt: skip
    emu = surrogate.LinearEmulator(labels, on_out_of_envelope="ignore")
    base = jnp.asarray(rng.uniform(2.0, 12.0, size=(6, n_rec)))
    jac = jnp.asarray(rng.uniform(0.0, 1.0, size=(6 * n_rec, m.n_regions * 7)) * 0.6)
    emu = eqx.tree_at(lambda e: (e.base, e.jacobian), emu, (base, jac))
    frac = np.zeros((n_rec, ny, nx))
    frac[rng.integers(0, n_rec, size=(ny, nx)), np.arange(ny)[:, None], np.arange(nx)[None, :]] = 1.0
    frac[:, 0, 0] = 0.0  # a cell outside every receptor keeps its base value
    down = Downscaler(jnp.asarray(rng.uniform(1.0, 20.0, size=(6, ny, nx))), jnp.asarray(frac))
    return eqx.tree_at(lambda c: (c.emulator, c.downscaler), ch, (emu, down), is_leaf=lambda x: x is None)


@eqx.filter_jit
def _reference(ch, spec, key, masks):
    """Deaths `[cause, region]`, pwpm and zero-out attribution (one per mask) from `Chain` on the sampled inputs."""
    inp = diffmrio.chain.sample_inputs(ch, spec, ch.base_inputs(), key)
    out = ch(inp)
    res = {"deaths": out.deaths.sum(axis=1), "pwpm": out.pwpm}
    if masks is not None:
        without = jax.vmap(lambda mk: ch.target(eqx.tree_at(lambda i: i.Y, inp, inp.Y * (1 - mk)), "deaths"))(masks)
        res["attribution"] = out.deaths.sum() - without
    return res


def _check(ch, spec, by="consumer", n=2, rtol=1e-12):
    groups = None if by is None else diffmrio.chain.group_index(ch, by)
    masks = None if groups is None else jnp.asarray(groups.dense_masks(*ch.mrio.Y.shape))
    draw = ChainDraw.build(ch, spec, groups)
    run = eqx.filter_jit(draw)
    for key in jax.random.split(jax.random.key(5), n):
        got = run(key)
        ref = _reference(ch, spec, key, masks)
        for k, v in ref.items():
            v = np.asarray(v)
            scale = np.max(np.abs(v))
            assert scale > 0, k
            np.testing.assert_allclose(np.asarray(got[k]), v, rtol=0, atol=rtol * scale, err_msg=k)
    return draw


def test_draw_equals_chain_with_shared_gemm_shapes():
    ch = small_chain("mlp", ny=4, nx=6)
    spec = diffmrio.chain.UncertaintySpec.default(ch)
    draw = _check(ch, spec)
    k = draw.health
    # 5 causes; IHD and stroke are age-specific (3 curves each, one shape), COPD, LC, LRI one curve each
    assert k.weight.shape[0] == 9
    assert k.shape_curve is not None and k.shape_curve.shape == (5,)
    np.testing.assert_array_equal(np.asarray(k.cause)[np.asarray(k.shape_curve)], np.arange(5))


def test_draw_equals_chain_with_downscaler_and_perturbed_economy():
    ch = _with_downscaler(small_chain("linear", ny=4, nx=6, causes=("IHD", "LC")))
    assert ch.downscaler is not None
    spec = diffmrio.chain.UncertaintySpec.default(ch, mrio_cv=0.05)
    _check(ch, spec, by="final_producer", rtol=1e-11)
    spec0 = diffmrio.chain.UncertaintySpec.default(ch)
    draw = _check(ch, spec0, by="foreign")
    assert draw.E0 is not None and draw.pm.B is not None  # hoisted economy, fused downscaler


def test_generic_crf_paths_equal_chain():
    """No GEMM shape sharing where it would not hold: a user sampler (any parameter may vary per age) and IER."""
    ch = small_chain("linear", ny=4, nx=6, causes=("IHD", "STROKE"))
    base = ch.health.crf

    def sampler(key):  # alpha varies with age in every draw: the shapes must not be shared
        eps = jax.random.normal(key, base.alpha.shape)
        return eqx.tree_at(lambda c: (c.theta, c.alpha), base, (base.theta * (1 + 0.1 * eps), base.alpha * (1 + 0.2 * eps)))

    spec = eqx.tree_at(lambda s: s.crf_sampler, diffmrio.chain.UncertaintySpec.default(ch), sampler)
    assert crf_structure(spec, base) is None
    draw = _check(ch, spec)
    assert draw.health.shape_runs is None and draw.health.weight.shape[0] == 6

    ier = IER.central(("IHD", "STROKE"), ages=(25, 50, 75))
    ch_ier = eqx.tree_at(lambda c: c.health, ch, HealthModel(ch.health.inputs, ier))
    draw = _check(ch_ier, diffmrio.chain.UncertaintySpec.default(ch_ier, sample_crf=False))
    assert draw.health.shape_runs is None


def test_gemm_shape_sharing_matches_per_curve_evaluation():
    """The shared shape function gives the same relative risks as `GEMM._log_rr` per curve, here with the
    full GBD age set (IHD and stroke age-specific: 12 curves each, one shape)."""
    crf = GEMM.burnett2018()
    ch = small_chain("linear", ny=4, nx=6)
    ages = crf.ages
    hi = ch.health.inputs
    n_a = len(ages)
    inputs = type(hi)(np.asarray(hi.population), np.full(n_a, 1.0 / n_a), np.full((5, n_a), 1e-3),
                      causes=hi.causes, ages=ages, regions=hi.regions, region_fraction=hi.region_fraction)
    model = HealthModel(inputs, crf)
    k = HealthKernel.build(model, crf)
    assert k.weight.shape[0] == 27 and k.shape_curve.shape == (5,)
    assert [m for _, m in k.shape_runs] == [12, 12, 1, 1, 1]  # 25-29 ... 75-79 and 80+
    generic = HealthKernel(k.weight, k.region_weight, k.pop_region, k.pop_total, k.cells, k.cause, k.age, None,
                           k.n_causes)  # the same curves, each evaluating its own GEMM shape
    pm = jnp.linspace(0.0, 150.0, k.weight.shape[1])
    theta = crf.sample(key=jax.random.key(0))
    np.testing.assert_allclose(k.curve_deaths(pm, theta), generic.curve_deaths(pm, theta), rtol=1e-13, atol=0)
    bf = jnp.asarray([0.9, 1.1, 1.0, 0.8, 1.2])
    np.testing.assert_allclose(k.total(pm, theta, bf), generic.deaths(pm, theta, bf).sum(), rtol=1e-13)
    # and against the health model itself (every cause-age pair on the grid)
    rate = inputs.baseline_rate * bf[:, None]
    ref = eqx.tree_at(lambda mdl: (mdl.crf, mdl.inputs.baseline_rate), model, (theta, rate))(pm.reshape(4, 6))
    np.testing.assert_allclose(k.deaths(pm, theta, bf), ref.sum(axis=1), rtol=1e-12)

