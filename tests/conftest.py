"""Test configuration: several CPU devices (so sharding is exercised without a GPU) and float64."""

import atexit
import fcntl
import importlib.util
import os
import shutil
import tempfile
from pathlib import Path

# Must be set before JAX initialises its backends. Backend optimisation level 0: the tests' arrays are small,
# so XLA's compile time, not the run time, is most of the suite's time; without LLVM's optimisation passes a
# compile takes about half the CPU time (tests/test_reference_ctm.py: 53 -> 37 CPU-s for three adjoint and
# ensemble tests on a 2-core box) with the same results to rounding. And XLA's older CPU code generator for
# fusions instead of its "fusion emitters" (on by default since jax 0.9.1; openxla/xla#41173 reports their compile
# cost): compiles take about half the CPU time again (tests/test_attribution_memory.py 81 -> 48 CPU-s,
# tests/test_reference_ctm.py 93 -> 54 CPU-s, both with -n 0 on the loaded 2-core box), the same tests pass.
# Subprocesses that the tests start inherit these flags.
os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=4 --xla_backend_optimization_level=0 "
                      "--xla_cpu_use_fusion_emitters=false")

# One persistent XLA compilation cache for the whole test session, shared with the subprocesses the tests
# start (CLI commands, kill -9 and Ctrl-C fault injection, multi-process Monte Carlo, SLURM array tasks) and,
# under pytest-xdist, with every worker: the controller loads this file first and the workers inherit its
# environment. So a function compiled once is not compiled again in every process. Removed at the end of the
# session (by the process that made it). A size limit turns on JAX's file lock around every cache read and
# write, so one process never reads an entry another is still writing (a torn read would only warn, but a
# warning fails tests that turn warnings into errors); that lock needs the `filelock` package (test extra).
if "JAX_COMPILATION_CACHE_DIR" not in os.environ:
    _JAX_CACHE = tempfile.mkdtemp(prefix="diffmrio-test-xla-cache-")
    os.environ["JAX_COMPILATION_CACHE_DIR"] = _JAX_CACHE
    os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0.2")
    if importlib.util.find_spec("filelock") is not None:
        os.environ.setdefault("JAX_COMPILATION_CACHE_MAX_SIZE", str(16 * 2**30))
    atexit.register(shutil.rmtree, _JAX_CACHE, ignore_errors=True)

import jax  # noqa: E402
import pytest  # noqa: E402

jax.config.update("jax_enable_x64", True)

# ../shared next to the repository, or where DIFFMRIO_SHARED points (worktrees that are not next to it)
SHARED = Path(os.environ.get("DIFFMRIO_SHARED") or Path(__file__).resolve().parents[1].parent / "shared")


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    """Path to ../shared; tests that need it are skipped (with the reason) when it is absent."""
    if not SHARED.is_dir():
        pytest.skip(f"../shared not found at {SHARED}: real-data fixtures are only on developer/CI machines")
    return SHARED


def _session_dir(tmp_path_factory, name: str) -> Path:
    """A folder for the whole test session: under pytest-xdist shared by all workers (the session's base
    folder, one above each worker's own), otherwise in this process's base folder."""
    base = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        base = base.parent
    folder = base / name
    folder.mkdir(exist_ok=True)
    return folder


@pytest.fixture(scope="session")
def quick_demo_chain(tmp_path_factory):
    """The demo chain on the coarse grid (60 CTM runs, a briefly trained emulator), built once per session
    and cached on disk; shared by the chain, demo and experiment tests. Under pytest-xdist the first worker
    to need it builds it while holding a lock; the others wait and load it from the cache."""
    from diffmrio.demo import demo_chain, demo_config

    cache = _session_dir(tmp_path_factory, "demo_chain_cache")
    with open(cache.parent / "demo_chain_cache.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file is closed
        return demo_chain(**demo_config(quick=True), cache_dir=cache, progress=False)


@pytest.fixture(scope="session")
def demo_chain_cache(quick_demo_chain, tmp_path_factory) -> Path:
    """The filled cache folder of `quick_demo_chain`: pass it as `cache_dir` (or `diffmrio demo --cache`)
    to reuse that build instead of running the CTM ensemble and the training again."""
    return _session_dir(tmp_path_factory, "demo_chain_cache")


@pytest.fixture(scope="session")
def slurm_cluster():
    """A real single-node SLURM cluster (munged, slurmctld, slurmd on this host; see tests/_slurm.py), started
    once per session and stopped, with its temporary folder removed, at the end. Skipped, with the reason,
    only where the slurm-wlm/munge packages (or root) are missing; a cluster that does not come up fails."""
    from _slurm import SlurmUnavailable, start_cluster

    try:
        cluster = start_cluster()
    except SlurmUnavailable as e:
        pytest.skip(str(e))
    try:
        yield cluster
    finally:
        cluster.stop()


# ------------------------------------------------------------------------------------------- pytest-xdist
# `pyproject.toml` runs the suite with `-n auto --dist loadgroup`: tests are handed to the workers one by one,
# except that every test marked `xdist_group(NAME)` runs on the same worker as the others of that name. The
# hook below puts the tests of a module that use a module- (or class-, package-) scoped fixture in one group
# per module, so an expensive module fixture (an experiment run, a trained emulator) is computed once, not
# once per worker; the tests that use a session fixture which must exist only once (`ONE_WORKER`: the SLURM
# cluster's daemons) are one group too. Other session fixtures are per worker, or shared through a locked
# folder (`quick_demo_chain`). Under xdist the groups with slow tests are handed out first, so no long test starts last.
ONE_WORKER = ("slurm_cluster",)
MAX_WORKERS = 4  # `-n auto`: one worker per core, at most this many (each worker holds its own JAX state)


@pytest.hookimpl(optionalhook=True)  # a hook of pytest-xdist: unknown under `-p no:xdist`
def pytest_configure(config):
    """Subprocesses that import the library and compare a fingerprint with this process (the multi-process Monte
    Carlo workers) must import it instrumented the same way: the jaxtyping hook wraps the functions of the listed
    modules, which changes the code a checkpoint's fingerprint hashes. `tests/_mp_worker.py` reads this."""
    value = config.getoption("jaxtyping_packages", default=None)
    if value:
        os.environ["DIFFMRIO_TEST_JAXTYPING_PACKAGES"] = value


def pytest_xdist_auto_num_workers(config):
    env = os.environ.get("PYTEST_XDIST_AUTO_NUM_WORKERS")
    if env:
        return int(env)
    return max(1, min(MAX_WORKERS, len(os.sched_getaffinity(0))))


def _shares_a_fixture(item) -> bool:
    info = getattr(item, "_fixtureinfo", None)
    if info is None:
        return False
    return any(d.scope in ("module", "class", "package") for defs in info.name2fixturedefs.values() for d in defs)


@pytest.hookimpl(tryfirst=True)  # before xdist reads the marks
def pytest_collection_modifyitems(config, items):
    if not os.environ.get("PYTEST_XDIST_WORKER"):
        return
    for item in items:
        if item.get_closest_marker("xdist_group") is not None:
            continue
        once = [name for name in ONE_WORKER if name in getattr(item, "fixturenames", ())]
        if once:
            item.add_marker(pytest.mark.xdist_group(once[0]))
        elif _shares_a_fixture(item):
            item.add_marker(pytest.mark.xdist_group(item.nodeid.split("::")[0]))

    def group(item):
        mark = item.get_closest_marker("xdist_group")
        return (mark.args[0] if mark.args else mark.kwargs.get("name", "default")) if mark else item.nodeid

    slow = {group(item) for item in items if item.get_closest_marker("slow")}
    items.sort(key=lambda item: group(item) not in slow)  # stable: otherwise the collection order
    if config.getvalue("loadgroup"):
        for item in items:
            if item.get_closest_marker("xdist_group") is not None:
                _group_suffix(item, group(item))


def _group_suffix(item, name: str) -> None:
    """Append `@name` to the test's id, which is how `--dist loadgroup` finds a test's group. pytest-xdist
    (3.8) does this by setting `item._nodeid`, which pytest 9 no longer reads (a node's id is the `NodeId` in
    `item._id`): without this, every test was its own group, so a module's tests were spread over the
    workers and each worker computed that module's fixtures again. If xdist's own suffix takes effect again,
    the id ends `@name@name` and still names the group `name` (xdist splits at the last `@`)."""
    new = f"{item.nodeid}@{name}"
    node_id = getattr(item, "_id", None)
    if node_id is not None and hasattr(type(node_id), "parse"):
        item._id = type(node_id).parse(new)
    else:  # pytest before 9: the id is a string
        item._nodeid = new
