"""A small end-to-end chain for tests: the demo economy, a linear or neural emulator on a small grid, and
GEMM health inputs with synthetic rates."""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

import surrogate
from ctm_interface import CTM_COMPONENTS as COMPONENTS
from diffmrio.chain import Chain, SourceMap
from diffmrio.datasets import demo_world
from diffmrio.health import GEMM, HealthInputs, HealthModel


def small_chain(kind: str = "linear", ny: int = 6, nx: int = 8, seed: int = 0, causes=("IHD", "STROKE", "COPD", "LC", "LRI")):
    world = demo_world(seed=0, geography=False)
    m = world.mrio
    sm = SourceMap.for_mrio(m)
    rng = np.random.default_rng(seed)
    R = m.n_regions
    labels = surrogate.EmulatorLabels(
        input_dims=("source", "species"), input_coords=(m.regions, sm.species), input_units="1",
        output_dims=("component", "row", "col"),
        output_coords=(COMPONENTS, tuple(str(i) for i in range(ny)), tuple(str(i) for i in range(nx))),
        output_units="ug m-3", input_kind="scale",
    )  # fmt: skip
    base = jnp.asarray(rng.uniform(2.0, 12.0, size=(6, ny, nx)))
    jac = jnp.asarray(rng.uniform(0.0, 1.0, size=(6 * ny * nx, R * 7)) * 0.6)
    if kind == "linear":
        emu = surrogate.LinearEmulator(labels, on_out_of_envelope="ignore")
        emu = eqx.tree_at(lambda e: (e.base, e.jacobian), emu, (base, jac))
    else:
        emu = surrogate.MLPEmulator(labels, width=16, depth=1, on_out_of_envelope="ignore", key=jax.random.key(seed))
        emu = eqx.tree_at(lambda e: (e.base, e.linear), emu, (base, jac / base.reshape(-1, 1)))
        last = emu.mlp.layers[-1]
        emu = eqx.tree_at(lambda e: e.mlp.layers[-1].weight, emu, last.weight * 300.0)
    # regions: vertical stripes of the grid, with a shared boundary column
    frac = np.zeros((R, ny, nx))
    for c in range(nx):
        r = min(R - 1, c * R // nx)
        frac[r, :, c] = 1.0
    pop = rng.uniform(1e5, 1e6, size=(ny, nx))
    crf = GEMM.burnett2018(causes, ages=(25, 50, 75))
    rate = rng.uniform(1e-4, 2e-3, size=(len(causes), 3))
    inputs = HealthInputs(pop, np.array([0.5, 0.3, 0.2]), rate, causes=causes, ages=(25, 50, 75),
                          regions=m.regions, region_fraction=frac)
    health = HealthModel(inputs, crf)
    x_dummy = Chain(m, sm, emu, jnp.ones((7, R, 2)), health)
    E_ref = x_dummy.emissions(x_dummy.base_inputs())
    return Chain(m, sm, emu, E_ref, health)
