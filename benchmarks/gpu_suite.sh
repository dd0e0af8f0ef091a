#!/usr/bin/env bash
# The GPU benchmarks of issue 16 (item 7) in one script: the Monte Carlo (10,000 demo-chain draws; target < 2 s),
# the EXIOBASE-scale chain (one LU, the full gradient d deaths / d Y at n = 9,800; target < 1 s; draws with
# attribution) and the accounts against pymrio. Prints the device first, then each benchmark's JSON.
#
#     bash benchmarks/gpu_suite.sh [OUT_DIR]          (default OUT_DIR: gpu_results)
#
# Run from the repository root with the project's environment active (jax with CUDA installed). Each step has
# its own time limit (STEP_TIMEOUT seconds, default 540) so that one slow step cannot take the others' time;
# a step that fails or times out is reported and the next one runs. The demo chain is cached in
# $OUT_DIR/cache (the first run builds it: about a minute of reference-CTM runs and emulator training).
set -u -o pipefail
OUT=${1:-gpu_results}
STEP_TIMEOUT=${STEP_TIMEOUT:-540}
PY=${PYTHON:-python}
mkdir -p "$OUT"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
export XLA_PYTHON_CLIENT_PREALLOCATE=false  # so that the memory figures are the programs' own

"$PY" - <<'EOF' | tee "$OUT/device.txt"
import jax
print("jax", jax.__version__, "backend", jax.default_backend())
for d in jax.devices():
    print("device:", d.device_kind, d)
if jax.default_backend() != "gpu":
    raise SystemExit("no GPU visible to JAX: these are the GPU benchmarks (install jax[cuda12])")
EOF
[ $? -eq 0 ] || exit 1
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee -a "$OUT/device.txt"

step() {  # step NAME COMMAND...
    local name=$1; shift
    echo "== $name: $*"
    local t0=$SECONDS
    timeout "$STEP_TIMEOUT" "$@" >"$OUT/$name.json" 2>"$OUT/$name.log"
    local rc=$?
    echo "   exit $rc after $((SECONDS - t0)) s; output in $OUT/$name.json"
    cat "$OUT/$name.json"
}

step monte_carlo "$PY" benchmarks/monte_carlo_vs_numpy.py --draws 10000 --numpy-draws 50 --repeat 3 \
    --batch 4096 --cache "$OUT/cache"
step chain_exiobase "$PY" benchmarks/chain_exiobase_scale.py --draws 10000 --batch 1000 --scaling-regions 24 \
    --cache "$OUT/cache"
step accounts "$PY" benchmarks/accounts_vs_pymrio.py --repeat 3 --out "$OUT/accounts_results.json"
