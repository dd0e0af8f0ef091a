"""Typed seams (issue 11, step 2): what the chain needs of an emulator and a CRF is declared on
`surrogate.AbstractEmulator` and `diffmrio.health.AbstractCRF` (equinox's abstract/final pattern) and used
without `hasattr`; a user-defined emulator works in the chain; training settings are method objects
(`ClosedForm`, `Adam`, `Checkpoint`) that give the same models as the old keywords; no import circles."""

import ast
import dataclasses
import warnings
from pathlib import Path

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest
from _chains import small_chain
from test_surrogate_fit import runs

import surrogate as sg
from diffmrio.chain import Chain, UncertaintySpec, monte_carlo
from diffmrio.health import GEMM, IER, AbstractCRF

ROOT = Path(__file__).resolve().parents[1]


# ------------------------------------------------------------------------------------- declared members


class _Linear(sg.AbstractEmulator):
    """A user's emulator: y = base + J (x - x_ref), written independently of `surrogate.LinearEmulator`."""

    J: jax.Array
    base: jax.Array
    x_ref: jax.Array
    envelope: sg.Envelope
    labels: sg.EmulatorLabels = eqx.field(static=True)

    def _predict(self, x):
        return self.base + jnp.einsum("cyxsk,sk->cyx", self.J, x - self.x_ref)


def test_an_emulator_missing_a_declared_member_cannot_be_built():
    class NoEnvelope(sg.AbstractEmulator):
        base: jax.Array
        x_ref: jax.Array
        labels: sg.EmulatorLabels = eqx.field(static=True)

        def _predict(self, x):
            return self.base

    lab = sg.EmulatorLabels.from_runs(runs(3))
    with pytest.raises(TypeError, match="envelope"):
        NoEnvelope(jnp.ones((3, 2)), jnp.ones((2, 2)), lab)

    class NoPredict(sg.AbstractEmulator):
        base: jax.Array
        x_ref: jax.Array
        envelope: sg.Envelope
        labels: sg.EmulatorLabels = eqx.field(static=True)

    with pytest.raises(TypeError, match="_predict"):
        NoPredict(jnp.ones((3, 2)), jnp.ones((2, 2)), sg.default_envelope(lab), lab)


def test_a_crf_missing_a_declared_member_cannot_be_built():
    class NoApplies(AbstractCRF):
        beta: jax.Array
        causes: tuple = eqx.field(static=True)
        ages: tuple = eqx.field(static=True)

        def _log_rr(self, C):
            return self.beta[..., None] * C

    with pytest.raises(TypeError, match="applies"):
        NoApplies(jnp.ones((1, 1)), ("IHD",), (25,))


def test_single_model_defaults_and_ensemble_members():
    lab = sg.EmulatorLabels.from_runs(runs(3))
    lin = sg.fit(sg.LinearEmulator(lab), runs(20))
    x = jnp.full(lab.input_shape, 1.1)
    assert lin.n_members == 1
    np.testing.assert_array_equal(lin.member_predictions(x), lin(x)[None])
    lin2 = sg.fit(sg.LinearEmulator(lab), runs(20, seed=1))
    ens = sg.Ensemble([lin, lin2])
    assert ens.n_members == 2
    np.testing.assert_allclose(ens.member_predictions(x), np.stack([lin(x), lin2(x)]), rtol=1e-13)
    # one place replaces the policy; the box is kept
    quiet = lin.with_envelope_policy("raise")
    assert quiet.envelope.policy == "raise" and lin.envelope.policy == "warn"
    np.testing.assert_array_equal(quiet.envelope.lower, lin.envelope.lower)
    assert sg.with_envelope_policy(lin, "ignore").envelope.policy == "ignore"


def test_crf_sample_is_declared_with_a_refusing_default():
    assert GEMM.burnett2018(("IHD",), ages=(25,)).has_sample
    ier = IER.central(("IHD",), ages=(25,))
    assert not ier.has_sample
    with pytest.raises(NotImplementedError, match="no parameter distribution"):
        ier.sample(key=jr.key(0))


# ---------------------------------------------------------------------------------------- the chain


def test_a_user_defined_emulator_works_in_the_chain():
    chain = small_chain("linear")
    emu = chain.emulator
    J = emu.jacobian.reshape(*emu.base.shape, *emu.labels.input_shape)
    mine = _Linear(J, emu.base, emu.x_ref, emu.envelope, emu.labels)
    ours = eqx.tree_at(lambda c: c.emulator, chain, mine)
    inp = chain.base_inputs()
    assert inp.member_weights is None and ours.base_inputs().member_weights is None
    inp = eqx.tree_at(lambda i: i.species_factor, inp, inp.species_factor * jnp.linspace(0.7, 1.3, 7))
    # compiled (the chain's forward pass and gradient eagerly, op by op, cost several times the CPU time)
    target = eqx.filter_jit(lambda c, i: c.target(i))
    grad_y = eqx.filter_jit(lambda c, i: jax.grad(lambda Y: c.target(eqx.tree_at(lambda j: j.Y, i, Y)))(i.Y))
    np.testing.assert_allclose(target(ours, inp), target(chain, inp), rtol=1e-12)
    g_ours, g_ref = grad_y(ours, inp), grad_y(chain, inp)
    np.testing.assert_allclose(g_ours, g_ref, rtol=1e-10, atol=1e-14 * float(jnp.abs(g_ref).max()))
    # a Chain built with it from scratch, and the Monte Carlo draw that flags the envelope per draw
    built = Chain(chain.mrio, chain.source_map, mine, chain.emissions_ref, chain.health)
    np.testing.assert_allclose(target(built, inp), target(chain, inp), rtol=1e-12)
    assert built.with_envelope_policy("ignore").emulator.envelope.policy == "ignore"
    spec = UncertaintySpec.default(built, baseline_cv=0.2)  # GEMM: theta drawn
    mc_ours = monte_carlo(built, spec, 6, key=jr.key(3), by=None, progress=False)
    mc_ref = monte_carlo(chain, spec, 6, key=jr.key(3), by=None, progress=False)
    np.testing.assert_allclose(mc_ours.total_deaths, mc_ref.total_deaths, rtol=1e-12)
    assert mc_ours.total_deaths.std() > 0 and bool(mc_ours.in_envelope.all())


def test_an_ensemble_gets_member_weights_and_a_member_draw_equals_that_member():
    chain = small_chain("linear")
    emu = chain.emulator
    other = eqx.tree_at(lambda e: e.jacobian, emu, 0.5 * emu.jacobian)
    ens = eqx.tree_at(lambda c: c.emulator, chain, sg.Ensemble([emu, other]))
    inp = ens.base_inputs()
    np.testing.assert_array_equal(inp.member_weights, [0.5, 0.5])
    pick = eqx.tree_at(lambda i: i.member_weights, inp, jnp.array([0.0, 1.0]))
    alone = eqx.tree_at(lambda c: c.emulator, chain, other)
    np.testing.assert_allclose(ens.target(pick), alone.target(alone.base_inputs()), rtol=1e-12)


def test_chain_fields_are_checked_by_type():
    chain = small_chain("linear")
    with pytest.raises(TypeError, match=r"Chain.emulator must be a surrogate emulator.*AbstractEmulator.*dict"):
        Chain(chain.mrio, chain.source_map, {"labels": None}, chain.emissions_ref, chain.health)
    with pytest.raises(TypeError, match=r"Chain.health must be a diffmrio.health.HealthModel.*GEMM"):
        Chain(chain.mrio, chain.source_map, chain.emulator, chain.emissions_ref, chain.health.crf)


def test_the_chain_does_not_probe_capabilities_with_hasattr():
    """The seams are types: no `hasattr(` on an emulator or a CRF in the chain or the health package."""
    offenders = []
    for path in [*sorted((ROOT / "diffmrio" / "chain").glob("*.py")), ROOT / "diffmrio" / "health" / "_crf.py"]:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "hasattr":
                offenders.append(f"{path.relative_to(ROOT)}:{node.lineno} {ast.unparse(node)}")
    assert offenders == []


# ---------------------------------------------------------------------------------- training methods


def _old(fn, *args, **kw):
    with pytest.warns(DeprecationWarning, match=r"training keywords .* deprecated.*method=surrogate\.") as record:
        out = fn(*args, **kw)
    # the deprecation points at the call (Python shows DeprecationWarnings by default only for __main__'s own calls)
    assert __file__ in [w.filename for w in record if w.category is DeprecationWarning]
    return out


def _leaves_close(a, b, rtol):
    for x, y in zip(jax.tree.leaves(eqx.filter(a, eqx.is_array)), jax.tree.leaves(eqx.filter(b, eqx.is_array)),
                    strict=True):
        np.testing.assert_allclose(np.asarray(x), np.asarray(y), rtol=rtol, atol=0)


def test_method_objects_give_the_models_of_the_old_keywords():
    train = runs(30)
    lab = sg.EmulatorLabels.from_runs(train)
    # closed forms
    new = sg.fit(sg.LinearEmulator(lab), train, sg.ClosedForm(ridge=0.3))
    old = _old(sg.fit, sg.LinearEmulator(lab), train, ridge=0.3)
    _leaves_close(new, old, 1e-12)
    assert not np.allclose(new.jacobian, sg.fit(sg.LinearEmulator(lab), train).jacobian)  # ridge acts
    alphas = [1e-6, 1e-3, 1e-1]
    new = sg.fit(sg.PolynomialEmulator(lab), train, sg.ClosedForm(ridge_alphas=alphas))
    old = _old(sg.fit, sg.PolynomialEmulator(lab), train, ridge_alphas=np.array(alphas))
    _leaves_close(new, old, 1e-12)
    # gradient training, with a checkpoint object against the old path + checkpoint_every
    mlp = sg.MLPEmulator(lab, width=8, depth=1, key=jr.PRNGKey(0))
    settings = dict(steps=30, learning_rate=5e-3, weight_decay=1e-5, batch_size=16, validation_fraction=0.2,
                    eval_every=5, patience=20, sobolev_weight=0.0)
    new, h_new = sg.fit(mlp, train, sg.Adam(**settings), key=jr.PRNGKey(1), progress=False, return_history=True)
    old, h_old = _old(sg.fit, mlp, train, key=jr.PRNGKey(1), progress=False, return_history=True, **settings)
    _leaves_close(new, old, 1e-12)
    assert h_new["val_loss"] == h_old["val_loss"] and h_new["steps_done"] == 30


def test_a_method_the_model_cannot_use_is_refused():
    train = runs(12)
    lab = sg.EmulatorLabels.from_runs(train)
    with pytest.raises(TypeError, match=r"LinearEmulator is fitted in closed form.*ClosedForm"):
        sg.fit(sg.LinearEmulator(lab), train, sg.Adam(steps=5), key=jr.PRNGKey(0))
    with pytest.raises(TypeError, match=r"MLPEmulator has no closed-form fit.*Adam"):
        sg.fit(sg.MLPEmulator(lab, width=4, key=jr.PRNGKey(0)), train, sg.ClosedForm())
    with pytest.raises(TypeError, match="either as `method=` or as the deprecated keywords"):
        sg.fit(sg.LinearEmulator(lab), train, sg.ClosedForm(), ridge=1.0)
    with pytest.raises(TypeError, match="training method such as surrogate.ClosedForm"):
        sg.fit(sg.LinearEmulator(lab), train, "adam")
    with pytest.raises(ValueError, match="`learning_rate` must be a finite number > 0"):
        sg.Adam(learning_rate=0.0)
    with pytest.raises(ValueError, match="`ridge_alphas` must be"):
        sg.ClosedForm(ridge_alphas=[])
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the method form does not warn
        sg.fit(sg.LinearEmulator(lab), train, sg.ClosedForm())


def test_every_adam_setting_that_changes_the_result_is_in_the_checkpoint_fingerprint(tmp_path):
    train = runs(20, with_adjoint=True)
    lab = sg.EmulatorLabels.from_runs(train)
    mlp = sg.MLPEmulator(lab, width=4, depth=1, key=jr.PRNGKey(0))
    base = sg.Adam(steps=6, learning_rate=1e-3, batch_size=8, eval_every=2, patience=10)
    ck = sg.Checkpoint(tmp_path / "m.ckpt", every=3)
    sg.fit(mlp, train, base, key=jr.PRNGKey(1), checkpoint=ck, progress=False)
    changed = {"steps": 7, "learning_rate": 2e-3, "weight_decay": 1e-4, "batch_size": 9,
               "validation_fraction": 0.3, "eval_every": 3, "patience": 11, "sobolev_weight": 0.1}
    fields = {f.name for f in dataclasses.fields(sg.Adam)} - set(sg.Adam.NOT_IN_FINGERPRINT)
    assert set(changed) == fields  # a new setting must be added here
    for name, value in changed.items():
        other = dataclasses.replace(base, **{name: value})
        with pytest.raises(ValueError, match=rf"different training.*hyperparameter {name}:"):
            sg.fit(mlp, train, other, key=jr.PRNGKey(1), checkpoint=ck, progress=False)
    # max_steps does not change the result: the finished checkpoint is resumed
    sg.fit(mlp, train, dataclasses.replace(base, max_steps=4), key=jr.PRNGKey(1), checkpoint=ck, progress=False)


# ------------------------------------------------------------------------------------- import circles


def _intra_package_imports(pkg: Path, name: str) -> dict[str, set[str]]:
    """module -> modules of the same package it imports at run time, at the top or inside functions (lazily)."""
    graph = {}
    for path in pkg.glob("*.py"):
        mod = path.stem
        deps = set()
        tree = ast.parse(path.read_text())
        type_only = {id(n) for node in ast.walk(tree) if isinstance(node, ast.If)
                     and getattr(node.test, "id", None) == "TYPE_CHECKING" for n in ast.walk(node)}
        for node in ast.walk(tree):
            if id(node) in type_only:  # `if TYPE_CHECKING:` imports never run
                continue
            if isinstance(node, ast.ImportFrom):
                if node.level == 1 and node.module:
                    deps.add(node.module.split(".")[0])
                elif node.level == 1:
                    deps.update(a.name for a in node.names)
                elif node.level == 0 and node.module and node.module.startswith(name + "."):
                    deps.add(node.module[len(name) + 1:].split(".")[0])
        graph[mod] = deps - {mod}
    return graph


@pytest.mark.parametrize(("folder", "name"), [("surrogate", "surrogate"),
                                              ("ctm_interface/reference", "ctm_interface.reference")])
def test_no_import_circles(folder, name):
    graph = _intra_package_imports(ROOT / folder, name)
    graph.pop("__init__", None)
    state: dict[str, int] = {}

    def visit(m, stack):
        if state.get(m) == 1:
            raise AssertionError(f"import circle in {name}: {' -> '.join([*stack[stack.index(m):], m])}")
        if state.get(m) == 2:
            return
        state[m] = 1
        for d in sorted(graph.get(m, ())):
            if d in graph:
                visit(d, [*stack, m])
        state[m] = 2

    for m in sorted(graph):
        visit(m, [])
    assert graph  # the scan found the package's modules
