"""Time and peak memory of `diffmrio.accounts` against pymrio's `calc_all()` on the same EXIOBASE-sized
random system (49 regions x 200 sectors = 9,800; 10 stressors; 7 final-demand categories per region).

Four runs, each in its own subprocess so that peak memory (VmHWM) is its own: pymrio; `diffmrio.accounts`
as a user calls it (on a CPU: the host path, float32 LU refined in float64); the same with
`precision="double"` (float64 LU); and the jitted JAX kernel `account_arrays` (float64, as on a GPU).
Results are compared with pymrio's elementwise. Usage:

    python benchmarks/accounts_vs_pymrio.py [--regions 49 --sectors 200] [--repeat 5] [--out results.json]

With `--repeat N` (N > 1), pymrio and the default `diffmrio.accounts` are run N times more, interleaved
(pymrio, diffmrio, pymrio, diffmrio, ...), so that a load change on a shared machine hits both, and the
min / median / max of the per-pair time ratio are printed beside the first pass's table.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
LIBS = ("pymrio", "diffmrio", "diffmrio-double", "diffmrio-jax")
KEYS = ["D_cba", "D_pba", "D_imp", "D_exp", "D_cba_reg", "D_pba_reg", "D_imp_reg", "D_exp_reg", "M"]


def _labels(R, N, K, p):
    regions = [f"reg{r}" for r in range(R)]
    sectors = [f"sec{i}" for i in range(N)]
    cats = [f"cat{k}" for k in range(K)]
    stress = [f"str{q}" for q in range(p)]
    return regions, sectors, cats, stress


def _peak_rss_kb() -> int:
    """Peak resident memory of this process (VmHWM). Unlike `ru_maxrss`, it is not inherited across `exec`
    from the parent that launched the child (which built the random system and was larger)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:  # not Linux
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def run_child(lib: str, folder: Path, R: int, N: int, K: int, p: int) -> None:
    Z = np.load(folder / "Z.npy")
    Y = np.load(folder / "Y.npy")
    F = np.load(folder / "F.npy")
    F_Y = np.load(folder / "F_Y.npy")
    regions, sectors, cats, stress = _labels(R, N, K, p)
    rss_loaded = _peak_rss_kb()
    out = {}
    if lib == "pymrio":
        import pandas as pd
        import pymrio

        rs = pd.MultiIndex.from_product([regions, sectors], names=["region", "sector"])
        rc = pd.MultiIndex.from_product([regions, cats], names=["region", "category"])
        st = pd.Index(stress, name="stressor")
        io = pymrio.IOSystem(Z=pd.DataFrame(Z, index=rs, columns=rs), Y=pd.DataFrame(Y, index=rs, columns=rc))
        io.ext = pymrio.Extension(name="ext", F=pd.DataFrame(F, index=st, columns=rs),
                                  F_Y=pd.DataFrame(F_Y, index=st, columns=rc),
                                  unit=pd.DataFrame({"unit": ["kg"] * p}, index=st))
        del Z, Y, F, F_Y
        t0 = time.perf_counter()
        io.calc_all()
        elapsed = time.perf_counter() - t0
        for k in KEYS:
            df = getattr(io.ext, k)
            arr = df.to_numpy()
            out[k] = arr  # pymrio keeps (stressor, region) for the _reg accounts
    else:
        import jax

        import diffmrio

        m = diffmrio.MRIO.from_arrays(Z, Y, F, F_Y, regions=regions, sectors=sectors, categories=cats,
                                      stressors=stress, validate=False)
        del Z, Y, F, F_Y
        if lib in ("diffmrio", "diffmrio-double"):  # the public, labelled entry point (host path on a CPU)
            precision = "double" if lib == "diffmrio-double" else "mixed"
            t0 = time.perf_counter()
            ds = diffmrio.accounts(m, precision=precision)
            elapsed = time.perf_counter() - t0
            out = {k: ds[k].values.reshape(p, -1) for k in KEYS}
            out["compile_s"] = np.array(0.0)
            out["solver"] = np.array(ds.attrs["solver"])
        else:  # the jitted JAX kernel, as used inside grad/vmap and on GPUs
            fn = jax.jit(diffmrio.account_arrays, static_argnums=4)
            t0 = time.perf_counter()
            fn.lower(m.Z, m.Y, m.F, m.F_Y, R).compile()
            compile_s = time.perf_counter() - t0
            t0 = time.perf_counter()
            acc = jax.block_until_ready(fn(m.Z, m.Y, m.F, m.F_Y, R))
            elapsed = time.perf_counter() - t0
            out = {k: np.asarray(getattr(acc, k)) for k in KEYS}
            out["compile_s"] = np.array(compile_s)
    peak = _peak_rss_kb()
    np.savez(folder / f"{lib}.npz", elapsed=elapsed, peak_kb=peak, loaded_kb=rss_loaded, **out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--regions", type=int, default=49)
    ap.add_argument("--sectors", type=int, default=200)
    ap.add_argument("--stressors", type=int, default=10)
    ap.add_argument("--categories", type=int, default=7)
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--repeat", type=int, default=1, help="interleaved pymrio/diffmrio pairs after the first pass")
    ap.add_argument("--child", choices=["pymrio", "diffmrio", "diffmrio-double", "diffmrio-jax"], default=None)
    ap.add_argument("--folder", type=Path, default=None)
    a = ap.parse_args()
    R, N, K, p = a.regions, a.sectors, a.categories, a.stressors
    if a.child:
        run_child(a.child, a.folder, R, N, K, p)
        return
    sys.path.insert(0, str(HERE))
    from _random_mrio import random_system

    load0 = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        Z, Y, F, F_Y = random_system(R, N, p, K, seed=0)
        for nm, arr in (("Z", Z), ("Y", Y), ("F", F), ("F_Y", F_Y)):
            np.save(folder / f"{nm}.npy", arr)
        del Z, Y, F, F_Y
        res = {}

        def child(lib):
            cmd = [sys.executable, __file__, "--child", lib, "--folder", str(folder), "--regions", str(R),
                   "--sectors", str(N), "--stressors", str(p), "--categories", str(K)]
            subprocess.run(cmd, check=True, env={**os.environ})
            return dict(np.load(folder / f"{lib}.npz"))

        for lib in LIBS:
            res[lib] = child(lib)
        pairs = [(float(res["pymrio"]["elapsed"]), float(res["diffmrio"]["elapsed"]))]
        pair_load = [round(os.getloadavg()[0], 1)]
        for _ in range(max(a.repeat, 1) - 1):
            tp = float(child("pymrio")["elapsed"])
            td = float(child("diffmrio")["elapsed"])
            pairs.append((tp, td))
            pair_load.append(round(os.getloadavg()[0], 1))
            print(f"pair {len(pairs)}: pymrio {tp:.2f} s, diffmrio {td:.2f} s, ratio {td / tp:.3f}, load average "
                  f"(1 min) {pair_load[-1]}", flush=True)  # partial results of a long run
        worst = {}
        for lib in LIBS[1:]:
            worst[lib] = 0.0
            for k in KEYS:
                ref, got = res["pymrio"][k], res[lib][k].reshape(res["pymrio"][k].shape)
                scale = np.maximum(np.abs(ref), 1e-12 * np.abs(ref).max())
                worst[lib] = max(worst[lib], float(np.max(np.abs(got - ref) / scale)))
    t_p, t_d = float(res["pymrio"]["elapsed"]), float(res["diffmrio"]["elapsed"])
    t_j = float(res["diffmrio-jax"]["elapsed"])
    t_dd = float(res["diffmrio-double"]["elapsed"])
    m_p, m_d = float(res["pymrio"]["peak_kb"]) / 2**20, float(res["diffmrio"]["peak_kb"]) / 2**20
    m_j = float(res["diffmrio-jax"]["peak_kb"]) / 2**20
    import jax

    ratios = np.asarray([td / tp for tp, td in pairs])
    summary = {
        "system": f"{R} regions x {N} sectors = {R * N}, {p} stressors, {K} categories",
        "machine": f"{platform.machine()} {os.cpu_count()} cores, {platform.python_version()}, jax backend "
                   f"{jax.default_backend()}",
        "pymrio_calc_all_s": round(t_p, 2),
        "diffmrio_accounts_s": round(t_d, 2),
        "time_ratio_diffmrio_over_pymrio": round(t_d / t_p, 3),
        "inputs_loaded_GiB": round(float(res["pymrio"]["loaded_kb"]) / 2**20, 2),
        "pymrio_peak_GiB": round(m_p, 2),
        "diffmrio_peak_GiB": round(m_d, 2),
        "memory_ratio": round(m_d / m_p, 3),
        "max_rel_diff": worst["diffmrio"],
        "repeated_pairs": len(pairs),
        "pymrio_s_all": [round(tp, 2) for tp, _ in pairs],
        "diffmrio_s_all": [round(td, 2) for _, td in pairs],
        "time_ratio_all": [round(float(r), 3) for r in ratios],
        "time_ratio_min_median_max": [round(float(f(ratios)), 3) for f in (np.min, np.median, np.max)],
        "load_average_1_min_after_each_pair": pair_load,
        "load_average_1_5_15_min_at_start": [round(v, 2) for v in load0],
        "load_average_1_5_15_min_at_end": [round(v, 2) for v in os.getloadavg()],
        "solver": str(res["diffmrio"]["solver"]),
        "float64_host_s": round(t_dd, 2),
        "float64_host_time_ratio": round(t_dd / t_p, 3),
        "float64_host_peak_GiB": round(float(res["diffmrio-double"]["peak_kb"]) / 2**20, 2),
        "float64_host_max_rel_diff": worst["diffmrio-double"],
        "mixed_speedup_over_float64_host": round(t_dd / t_d, 2),
        "jax_kernel_s": round(t_j, 2),
        "jax_kernel_compile_s": round(float(res["diffmrio-jax"]["compile_s"]), 2),
        "jax_kernel_time_ratio": round(t_j / t_p, 3),
        "jax_kernel_peak_GiB": round(m_j, 2),
        "jax_kernel_memory_ratio": round(m_j / m_p, 3),
        "jax_kernel_max_rel_diff": worst["diffmrio-jax"],
    }
    print(json.dumps(summary, indent=2))
    if a.out:
        tmpf = a.out.with_suffix(".tmp")
        tmpf.write_text(json.dumps(summary, indent=2))
        os.replace(tmpf, a.out)


if __name__ == "__main__":
    main()
