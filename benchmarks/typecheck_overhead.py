"""What the test run's runtime shape checks cost: CPU seconds spent inside jaxtyping's and beartype's own code
while some test files run with the jaxtyping hook on (`--jaxtyping-packages` as in pyproject.toml).

A timing of the same files with the hook off and on is too noisy on a shared box (the checks cost seconds in
runs of minutes), so this profiles one run with the hook on and sums the self time of every function defined
in jaxtyping, beartype or beartype's generated checkers. cProfile inflates many small calls, so the number is
an upper bound on the checks' cost. It also counts the checked calls.

    PYTHONPATH=$PWD python benchmarks/typecheck_overhead.py tests/test_accounts_pymrio.py [...] [-- pytest options]

`--compare` instead runs the files back to back in fresh processes with the hook off, then on (`--repeat N`
pairs), and prints each run's wall time and CPU seconds (the pytest process and its children), unprofiled:

    PYTHONPATH=$PWD python benchmarks/typecheck_overhead.py --compare [--repeat 2] tests/test_layers.py [...]
"""

from __future__ import annotations

import cProfile
import os
import pstats
import resource
import subprocess
import sys
import time


def _is_checker(filename: str) -> bool:
    return "/jaxtyping/" in filename or "/beartype/" in filename or filename.startswith("<@beartype")


def _timed(cmd: list[str]) -> tuple[int, float, float]:
    """Exit code, wall seconds and CPU seconds (user + system) of `cmd` run as a child process."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    rc = subprocess.run(cmd, stdout=subprocess.DEVNULL, env=os.environ.copy()).returncode
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return rc, wall, cpu


def compare(argv: list[str]) -> None:
    """The files with the hook off and on, back to back (see the module docstring)."""
    repeat = 1
    if argv[:1] == ["--repeat"]:
        repeat, argv = int(argv[1]), argv[2:]
    files, extra = (argv[: argv.index("--")], argv[argv.index("--") + 1 :]) if "--" in argv else (argv, [])
    base = [sys.executable, "-m", "pytest", *files, "-q", "-n", "0", "-p", "no:cacheprovider", *extra]
    # off: the jaxtyping plugin disabled and pyproject's addopts (which name its option) replaced
    modes = {"off": [*base, "-p", "no:jaxtyping", "-o", "addopts=-ra --strict-markers"], "on": base}
    totals: dict[str, list[float]] = {"off": [], "on": []}
    for i in range(repeat):
        for mode, cmd in modes.items():
            rc, wall, cpu = _timed(cmd)
            totals[mode].append(cpu)
            print(f"pair {i + 1}, hook {mode:>3}: pytest exit code {rc}; {wall:.1f} s wall, {cpu:.1f} CPU-s", flush=True)
    for mode, cpus in totals.items():
        print(f"hook {mode:>3}: mean {sum(cpus) / len(cpus):.1f} CPU-s over {len(cpus)} run(s)")


def main(argv: list[str]) -> None:
    if argv[:1] == ["--compare"]:
        compare(argv[1:])
        return
    import pytest

    files, extra = (argv[: argv.index("--")], argv[argv.index("--") + 1 :]) if "--" in argv else (argv, [])
    prof = cProfile.Profile()
    t0, c0 = time.perf_counter(), time.process_time()
    prof.enable()
    rc = pytest.main([*files, "-q", "-n", "0", "-p", "no:cacheprovider", *extra])
    prof.disable()
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    stats = pstats.Stats(prof).stats  # {(file, line, name): (primitive calls, calls, tottime, cumtime, callers)}
    checker = sum(v[2] for (f, _, _), v in stats.items() if _is_checker(f))
    checked_calls = sum(v[1] for (f, _, n), v in stats.items() if "/jaxtyping/" in f and n == "wrapped_fn_impl")
    total = sum(v[2] for v in stats.values())
    print(f"pytest exit code {rc}; {wall:.1f} s wall, {cpu:.1f} s CPU of this process (profiled)")
    print(f"checked calls (jaxtyping wrapped_fn_impl): {checked_calls}")
    print(f"self time in jaxtyping/beartype code: {checker:.2f} s of {total:.1f} s profiled ({100 * checker / total:.1f} %)")


if __name__ == "__main__":
    main(sys.argv[1:])
