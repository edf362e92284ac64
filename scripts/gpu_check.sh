#!/usr/bin/env bash
# The device check of the CUDA path, in one command, on a machine with only its own Python
# packages (torch, torchvision, numpy, opencv, scikit-image, pytest): no install step, the
# source tree on PYTHONPATH. Run from the repository root:
#
#   bash scripts/gpu_check.sh OUT_DIR             # on a CUDA machine: the `cuda` tests + bench_gpu --preset device
#   bash scripts/gpu_check.sh OUT_DIR --dry-run   # the same steps on the CPU (tests with YOLACT_TEST_DEVICE=cpu,
#                                                 # bench --preset tiny): proves the script before device time is spent
#
# Writes at most 6 files to OUT_DIR: env.txt, cuda_tests.txt, cuda_tests.xml, bench_gpu.txt,
# bench_gpu.json, summary.txt. Exits non-zero when a test fails or a step times out. Budget:
# under 8 minutes (each step has its own timeout). PYTHON overrides the interpreter.
set -uo pipefail

OUT=${1:?usage: bash scripts/gpu_check.sh OUT_DIR [--dry-run]}
MODE=${2:-}
PY=${PYTHON:-python3}
mkdir -p "$OUT"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONDONTWRITEBYTECODE=1
start=$(date +%s)
status=0

if [ "$MODE" = "--dry-run" ]; then
    export YOLACT_TEST_DEVICE=cpu
    bench_args=(--preset tiny --device cpu)
    test_timeout=600
elif [ -n "$MODE" ]; then
    echo "unknown option $MODE (expected --dry-run)" >&2
    exit 2
else
    bench_args=(--preset device --device cuda)
    test_timeout=240
fi

{
    echo "date: $(date -u +%FT%TZ)"
    echo "mode: ${MODE:-cuda}"
    echo "git: $(git rev-parse --short HEAD 2>/dev/null || echo 'not a git checkout')"
    "$PY" -c 'import sys, torch, torchvision; print("python", sys.version.split()[0]); print("torch", torch.__version__, "torchvision", torchvision.__version__); print("cuda available", torch.cuda.is_available(), "cuda", torch.version.cuda); [print("gpu", i, torch.cuda.get_device_name(i)) for i in range(torch.cuda.device_count())]'
    if command -v nvidia-smi >/dev/null; then
        nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv
    fi
} > "$OUT/env.txt" 2>&1 || status=1
if [ "$MODE" != "--dry-run" ] && ! "$PY" -c 'import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)'; then
    echo "no CUDA device: the cuda tests would only skip (use --dry-run on a CPU)" | tee -a "$OUT/env.txt" >&2
    status=1
fi

step() {  # name timeout command...
    local name=$1 limit=$2
    shift 2
    local t0
    t0=$(date +%s)
    timeout "$limit" "$@"
    local rc=$?
    echo "$name: exit $rc in $(( $(date +%s) - t0 )) s" >> "$OUT/summary.txt"
    [ $rc -eq 0 ] || status=1
}

: > "$OUT/summary.txt"
step cuda_tests "$test_timeout" "$PY" -m pytest -q -rs -p no:cacheprovider -m cuda test/test_cuda.py \
    --junitxml="$OUT/cuda_tests.xml" > "$OUT/cuda_tests.txt" 2>&1
step bench_gpu 300 "$PY" bench/bench_gpu.py "${bench_args[@]}" --json "$OUT/bench_gpu.json" \
    > "$OUT/bench_gpu.txt" 2>&1
# a run that skipped everything proves nothing
if grep -qE '(^| )[0-9]+ passed' "$OUT/cuda_tests.txt"; then :; else
    echo "cuda_tests: nothing passed" >> "$OUT/summary.txt"
    status=1
fi
echo "total: $(( $(date +%s) - start )) s, status $status" >> "$OUT/summary.txt"
cat "$OUT/summary.txt"
tail -n 3 "$OUT/cuda_tests.txt"
exit $status
