"""Emulator speed against the reference CTM (issue 5 targets: scenario evaluation >= 1000x faster than a
reference-CTM run; a gradient <= 5x a forward evaluation).

Timings are medians of repeated jitted calls after compilation (`block_until_ready`), on whatever machine
runs the script; emulator weights do not change the cost, so freshly initialised emulators are timed.
The envelope check is included (policy "warn", the default, uses a host callback; "ignore" is timed too).

Usage: `python benchmarks/emulator_speed.py [--ctm-repeats 3]`; prints a markdown table.
"""

from __future__ import annotations

import argparse
import statistics
import time

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np

import surrogate as sg

jax.config.update("jax_enable_x64", True)


def _time(fn, *args, repeats: int = 200) -> float:
    jax.block_until_ready(fn(*args))  # compile
    ts = []
    for _ in range(repeats):
        t = time.perf_counter()
        jax.block_until_ready(fn(*args))
        ts.append(time.perf_counter() - t)
    return statistics.median(ts)


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--ctm-repeats", type=int, default=3)
    args = ap.parse_args(argv)
    from ctm_interface import allocate_to_grid
    from ctm_interface.reference import (
        COMPONENTS,
        REGIONS,
        SPECIES,
        ReferenceCTM,
        demo_base_emissions,
        demo_domain,
    )

    ctm = ReferenceCTM.default()
    dom = demo_domain()
    e_reg = np.asarray(demo_base_emissions(dom))
    # each source region's base emissions alone on the grid (one-hot over sources), [source, species, level, y, x]
    one_hot = np.einsum("go,sol->gsol", np.eye(e_reg.shape[1]), e_reg)
    patterns = jnp.asarray(allocate_to_grid(one_hot, np.asarray(dom.allocation)))
    e0 = jnp.einsum("gslyx->slyx", patterns)
    t_ctm = _time(ctm.run, e0, repeats=args.ctm_repeats)

    def cost(c):
        return jnp.sum(c)

    t_ctm_grad = _time(lambda e: ctm.adjoint(cost, e), e0, repeats=args.ctm_repeats)

    labels = sg.EmulatorLabels(
        ("source", "species"), (tuple(REGIONS), tuple(SPECIES)), "1",
        ("component", "receptor"), (tuple(COMPONENTS), tuple(REGIONS)), "ug m-3",
    )  # fmt: skip
    w = jnp.ones((6, 6)) / 36
    x = jnp.ones((6, 7)) * 1.1
    key = jr.PRNGKey(0)
    models = {
        "linear": sg.LinearEmulator(labels),
        "polynomial D=2": sg.PolynomialEmulator(labels, degree=2),
        "polynomial D=3": sg.PolynomialEmulator(labels, degree=3),
        "MLP (32x2)": sg.MLPEmulator(labels, key=key),
        "MLP ensemble (5, as in the experiment)": sg.Ensemble(
            lambda k: sg.MLPEmulator(labels, key=k), 5, key=key
        ),
    }
    glabels = sg.EmulatorLabels(
        ("species", "level", "row", "col"),
        (tuple(SPECIES), ("ground", "elevated"), *(tuple(map(str, range(n))) for n in e0.shape[2:])), "kt/yr",
        ("component", "row", "col"), (tuple(COMPONENTS), *(tuple(map(str, range(n))) for n in e0.shape[2:])),
        "ug m-3", input_kind="emission",
    )  # fmt: skip
    c0 = ctm.run(e0)
    gridded = sg.GriddedEmulator(glabels, x_ref=e0, base=c0, width=16, n_layers=2, modes=(10, 10), key=key)
    rows = {}
    for policy in ("warn", "ignore"):
        for name, m in models.items():
            m = sg.with_envelope_policy(m, policy)
            fwd = eqx.filter_jit(lambda m, x: m.pm25(x))
            grd = eqx.filter_jit(lambda m, x: jax.grad(lambda z: jnp.sum(w * m(z)))(x))
            batch = eqx.filter_jit(lambda m, xs: jax.vmap(m.pm25)(xs))
            xs = jnp.broadcast_to(x, (1000, 6, 7))
            t_f, t_g = _time(fwd, m, x), _time(grd, m, x)
            t_b = _time(batch, m, xs, repeats=20) / 1000
            rows[f"{name} [{policy}]"] = (t_f, t_g, t_b)
        gm = sg.with_envelope_policy(gridded, policy)
        ex = e0 * 1.1
        fwd = eqx.filter_jit(lambda m, x: m(x))
        grd = eqx.filter_jit(lambda m, x: jax.grad(lambda z: jnp.sum(m(z)))(x))
        rows[f"gridded FNO [{policy}]"] = (
            _time(fwd, gm, ex, repeats=30),
            _time(grd, gm, ex, repeats=30),
            float("nan"),
        )
    print(
        f"reference CTM run: {t_ctm * 1e3:.1f} ms; CTM adjoint (cost + gradient): {t_ctm_grad * 1e3:.1f} ms\n"
    )
    print("| emulator [envelope policy] | forward (us) | gradient (us) | grad/forward | CTM run / forward | "
          "forward in a 1000-batch (us/scenario) | CTM run / batched |")  # fmt: skip
    print("|---|---|---|---|---|---|---|")
    for name, (t_f, t_g, t_b) in rows.items():
        print(
            f"| {name} | {t_f * 1e6:.1f} | {t_g * 1e6:.1f} | {t_g / t_f:.2f} | {t_ctm / t_f:,.0f} | "
            f"{t_b * 1e6:.2f} | {t_ctm / t_b:,.0f} |"
        )
    return {"ctm_s": t_ctm, "ctm_adjoint_s": t_ctm_grad, "rows": rows}


if __name__ == "__main__":
    main()
