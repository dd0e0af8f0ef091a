"""What the test run's runtime shape checks cost: CPU seconds spent inside jaxtyping's and beartype's own code
while some test files run with the jaxtyping hook on (`--jaxtyping-packages` as in pyproject.toml).

A timing of the same files with the hook off and on is too noisy on a shared box (the checks cost seconds in
runs of minutes), so this profiles one run with the hook on and sums the self time of every function defined
in jaxtyping, beartype or beartype's generated checkers. cProfile inflates many small calls, so the number is
an upper bound on the checks' cost. It also counts the checked calls.

    PYTHONPATH=$PWD python benchmarks/typecheck_overhead.py tests/test_accounts_pymrio.py [...] [-- pytest options]
"""

from __future__ import annotations

import cProfile
import pstats
import sys
import time


def _is_checker(filename: str) -> bool:
    return "/jaxtyping/" in filename or "/beartype/" in filename or filename.startswith("<@beartype")


def main(argv: list[str]) -> None:
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
