#!/usr/bin/env bash
# The whole GPU check in one command, for a machine with an NVIDIA GPU and the CUDA toolkit:
#   1. configure and build with the CUDA backend (build dir: $1, default build-gpu),
#   2. the CUDA suite (CTest label `cuda`: every [cuda] test against the CPU results),
#   3. compute-sanitizer memcheck over the same tests,
#   4. the MiniLM sample for a few steps with --device cuda, float32 and bfloat16,
#   5. the benchmarks with --device cuda (figures into $build/gpu-check/*.json), and PyTorch eager
#      on the same GPU for the MiniLM comparison (bench/minilm_torch_device.py) when python3 has it.
# Exits non-zero when a step fails, or when no device is found (a GPU check without a GPU).
set -euo pipefail
src=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$src/build-gpu}
jobs=${JOBS:-$(nproc)}
out=$build/gpu-check
step() { printf '\n==== %s\n' "$*"; }

step "configure and build with CUDA ($build)"
cmake -S "$src" -B "$build" -DOPTIMI_CUDA=ON -DCMAKE_BUILD_TYPE=Release
cmake --build "$build" -j "$jobs"
mkdir -p "$out"

step "device"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv || true
if ! "$build/tests/optimi_cuda_suite" /bin/true; then
  echo "gpu-check: no usable CUDA device; nothing was checked" >&2
  exit 1
fi

step "CUDA suite (ctest -L cuda)"
ctest --test-dir "$build" -L cuda --output-on-failure

step "compute-sanitizer memcheck on the CUDA suite"
sanitizer=$(command -v compute-sanitizer || echo /usr/local/cuda/bin/compute-sanitizer)
# API errors are not reported: one test provokes a failed cudaMalloc on purpose. Leaks are not
# checked: the caching allocator keeps its blocks until the process ends, by design.
"$sanitizer" --tool memcheck --report-api-errors no --error-exitcode 1 \
  "$build/tests/optimi_tests" "[cuda]"

step "MiniLM sample on the GPU"
for dtype in float32 bfloat16; do
  "$build/samples/minilm/minilm" --device cuda --dtype "$dtype" --steps 50 --eval-every 25 \
    --metrics-json "$out/minilm_sample_$dtype.json"
done

step "benchmarks with --device cuda"
status=0
run_bench() {  # name, binary, args...
  local name=$1 bin=$2
  shift 2
  "$bin" --device cuda "$@" --json "$out/bench_$name.json" || status=1
}
run_bench optimizers "$build/bench/optimizers"
# PyTorch eager on the same GPU (benchmarks.md: `small` tokens/s at least PyTorch's), when the
# machine's python3 has torch; its AdamW runs both ways, per tensor and multi-tensor (foreach).
torch_twin=""
if python3 -c "import torch; assert torch.cuda.is_available()" 2>/dev/null; then
  torch_twin="python3 $src/bench/minilm_torch_device.py --reference $src/../shared/reference/minilm_torch.py"
fi
for dtype in float32 bfloat16; do
  run_bench "minilm_small_$dtype" "$build/bench/minilm" --d 256 --layers 4 --heads 4 --seq 128 \
    --batch 16 --dtype "$dtype" --steps 50
  if [ -n "$torch_twin" ]; then
    $torch_twin --dtype "$dtype" --steps 50 || status=1
    $torch_twin --dtype "$dtype" --steps 50 --foreach || status=1
  fi
done
echo
echo "gpu-check: done; figures in $out"
exit $status
