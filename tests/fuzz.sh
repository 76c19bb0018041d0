#!/usr/bin/env bash
# Builds the libFuzzer targets of tests/fuzz/ with clang (ASan + UBSan + coverage) and runs each
# for a fixed time, one after the other.
#
#   tests/fuzz.sh [SECONDS_PER_TARGET (default 60)] [TARGET...]   (default: every target)
#
# Each target keeps its growing corpus in $OPTIMI_FUZZ_BUILD/corpus/<target> (seeded from
# tests/fuzz/corpus/<target>) and writes crashing inputs to $OPTIMI_FUZZ_BUILD/artifacts/<target>/.
# Once a finding is fixed, copy its input to tests/fuzz/regressions/<target>/: CTest replays it.
# Exits non-zero when any target found something.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=${1:-60}
shift || true
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then targets=(safetensors optimizer_load minilm_checkpoint); fi
build=${OPTIMI_FUZZ_BUILD:-build-fuzz}

# Coverage instrumentation for the library too (fuzzer-no-link); the drivers add -fsanitize=fuzzer.
# The instrumentation keeps clang from vectorizing the kernels' `omp simd` loops, which it reports
# as a (here harmless) warning; the kernels also silence GCC-only warnings by name.
CC=clang CXX=clang++ cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  "-DCMAKE_CXX_FLAGS=-fsanitize=fuzzer-no-link -Wno-pass-failed -Wno-unknown-warning-option" \
  -DOPTIMI_SANITIZE=address,undefined \
  -DOPTIMI_CUDA=OFF -DOPTIMI_BUILD_FUZZERS=ON -DOPTIMI_BUILD_BENCH=OFF \
  >/dev/null
cmake --build "$build" -j2 --target "${targets[@]/#/fuzz_}"

# The tensors are tiny: threads would only add noise.
export OMP_NUM_THREADS=1
export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
status=0
for target in "${targets[@]}"; do
  corpus="$build/corpus/$target"
  artifacts="$build/artifacts/$target"
  mkdir -p "$corpus" "$artifacts"
  echo "== fuzz_$target for ${seconds}s"
  if ! "$build/tests/fuzz/fuzz_$target" -max_total_time="$seconds" -timeout=10 \
    -rss_limit_mb=2048 -print_final_stats=1 -dict=tests/fuzz/checkpoint.dict \
    -artifact_prefix="$artifacts/" "$corpus" "tests/fuzz/corpus/$target"; then
    echo "== fuzz_$target FOUND A CRASH: see $artifacts/"
    status=1
  fi
done
exit $status
