"""One process of the multi-process Monte Carlo test (tests/test_multiprocess.py), also usable by hand:

    python tests/_mp_worker.py PROCESS_ID NUM_PROCESSES PORT OUT_DIR CHECKPOINT_DIR

Joins a `jax.distributed` job on 127.0.0.1:PORT with gloo CPU collectives, runs `run_draws` on a small draw
function and `monte_carlo` on the small test chain with CHECKPOINT_DIR (resumed when it holds chunks), then
two runs that must be refused on every process, and saves what this process got (and the error messages) to
OUT_DIR/process_<id>.npz."""

import os
import sys
from pathlib import Path

os.environ.setdefault("JAX_PLATFORMS", "cpu")
sys.path.insert(0, str(Path(__file__).resolve().parent))  # tests/_chains.py
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository, before an installed copy

if os.environ.get("DIFFMRIO_TEST_JAXTYPING_PACKAGES"):  # instrumented as the test process is (tests/conftest.py)
    from jaxtyping import install_import_hook

    *_packages, _checker = [p.strip() for p in os.environ["DIFFMRIO_TEST_JAXTYPING_PACKAGES"].split(",")]
    install_import_hook(_packages, _checker)

import jax  # noqa: E402

jax.config.update("jax_enable_x64", True)
jax.config.update("jax_cpu_collectives_implementation", "gloo")


def simple_draw(k):
    a = jax.random.normal(k, (3,))
    return {"a": a, "b": (a**2).sum()}


def main(pid: int, n: int, port: int, out: Path, checkpoint_dir: Path) -> None:
    jax.distributed.initialize(coordinator_address=f"127.0.0.1:{port}", num_processes=n, process_id=pid,
                               initialization_timeout=60)
    import numpy as np
    from _chains import small_chain

    import diffmrio

    assert jax.process_count() == n and len(jax.devices()) == n * len(jax.local_devices())
    got = {f"draws_{k}": v for k, v in
           diffmrio.chain.run_draws(simple_draw, 37, key=jax.random.key(3), chunk_size=8, progress=False).items()}
    chain = small_chain("linear", ny=4, nx=6, causes=("IHD", "LC"))
    ds = diffmrio.chain.monte_carlo(chain, None, 8, key=jax.random.key(7), chunk_size=4, progress=False,
                              by=None, checkpoint_dir=checkpoint_dir)
    got.update({f"mc_{v}": ds[v].values for v in ("deaths", "pwpm", "in_envelope")})
    # refusals reach every process (no process is left waiting in a collective)
    try:
        diffmrio.chain.monte_carlo(chain, diffmrio.chain.UncertaintySpec.default(chain, baseline_cv=0.5), 8, key=jax.random.key(7),
                             chunk_size=4, progress=False, by=None, checkpoint_dir=checkpoint_dir)
    except ValueError as e:
        got["refused_spec"] = np.array(str(e))
    try:  # each process with its own key: not one computation
        diffmrio.chain.run_draws(simple_draw, 8, key=jax.random.key(pid), chunk_size=8, progress=False)
    except ValueError as e:
        got["refused_key"] = np.array(str(e))
    np.savez(out / f"process_{pid}.npz", n_devices=len(jax.devices()), **got)
    jax.distributed.shutdown()


if __name__ == "__main__":
    main(int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), Path(sys.argv[4]), Path(sys.argv[5]))
