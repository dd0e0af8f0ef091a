"""A reference-CTM ensemble as a SLURM array job on a single-node test cluster, with one damaged output found
by run id and resubmitted: prints the transcript shown in docs/cluster.md (commands, their output, times).

Needs root and Debian's `slurm-wlm` and `munge` packages: it starts munged, slurmctld and slurmd with
tests/_slurm.py (temporary folder, free localhost ports) and stops them at the end.

    python benchmarks/slurm_ctm_array.py [--runs 8] [--keep DIR]
"""

from __future__ import annotations

import argparse
import os
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(REPO))

from _slurm import missing_requirements, start_cluster  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=8, help="runs in the folder (train + 2 test)")
    ap.add_argument("--keep", type=Path, default=None, help="work folder to keep (default: a temporary one)")
    args = ap.parse_args()
    why = missing_requirements()
    if why:
        print(f"cannot start a test cluster: {why}")
        return 2
    work = args.keep or Path(tempfile.mkdtemp(prefix="slurm-ctm-array-"))
    work.mkdir(parents=True, exist_ok=True)
    from ctm_interface.reference import CTMGrid, write_run_folder

    write_run_folder(work / "folder", n_train=args.runs - 2, n_test=2, n_days=1.0, seed=3, outputs=False,
                     grid=CTMGrid(ncols=8, nrows=6, xcell=216000.0, ycell=216000.0, gdnam="TINY"))  # fmt: skip
    cluster = start_cluster()
    # `diffmrio` is the console script; here it is this checkout's `python -m diffmrio.cli`
    env = {**cluster.env, "PYTHONPATH": str(REPO), "PS4": ""}
    prelude = f'diffmrio() {{ {shlex.quote(sys.executable)} -m diffmrio.cli "$@"; }}\n'

    def sh(cmd: str, quiet: bool = False) -> str:
        t = time.perf_counter()
        out = subprocess.run(["bash", "-c", prelude + cmd], cwd=work, env=env, capture_output=True, text=True,
                             timeout=900)  # fmt: skip
        if not quiet:
            print(f"$ {cmd}")
            text = (out.stdout + out.stderr).rstrip()
            if text:
                print(text.replace(str(work) + "/", "").replace(sys.executable, "python"))
            print(f"# exit {out.returncode}, {time.perf_counter() - t:.1f} s")
        return out.stdout

    def wait() -> float:
        t = time.perf_counter()
        while sh("squeue -h", quiet=True).strip():
            time.sleep(1)
        return time.perf_counter() - t

    try:
        print(f"# single-node test cluster: node {cluster.node}, {cluster.cpus} CPUs (tests/_slurm.py)")
        sh("sinfo")
        sh("diffmrio slurm script folder/runs.toml --out submit.sh --cpus-per-task 1 --time 00:20:00")
        sh("mkdir -p logs && sbatch submit.sh")
        time.sleep(2)
        sh("squeue")
        print(f"# all tasks left the queue after {wait():.0f} s")
        sh("diffmrio slurm check folder/runs.toml")
        bad = f"folder/runs/CCTM_ELMO_run{args.runs // 2:03d}.nc"
        print("# inject a damaged output: cut one run's file short")
        sh(f"truncate -s 3000 {bad}")
        sh("diffmrio slurm check folder/runs.toml")
        sh("diffmrio slurm resubmit folder/runs.toml --script submit.sh --dry-run")
        sh("diffmrio slurm resubmit folder/runs.toml --script submit.sh")
        sh("squeue")
        print(f"# the resubmitted task left the queue after {wait():.0f} s")
        sh("diffmrio slurm check folder/runs.toml")
        sh("diffmrio runs check folder/runs.toml")
        sh("diffmrio emulator fit folder/runs.toml --out model.eqx --family linear")
        sh("diffmrio emulator evaluate model.eqx folder/runs.toml --split test | grep -E 'n_runs|mean_'")
    finally:
        cluster.stop()
    if args.keep is None:
        subprocess.run(["rm", "-rf", str(work)], check=False)
    return 0


if __name__ == "__main__":
    os.environ.setdefault("JAX_PLATFORMS", "cpu")
    sys.exit(main())
