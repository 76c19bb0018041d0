#!/usr/bin/env bash
# Times bench/minilm against ../shared/reference/minilm_torch.py (PyTorch eager, 2 threads) on
# the configurations of benchmarks.md section 2, in one run, and prints the ratios.
# Each side runs REPEATS times (default 3), alternating, and reports the median of its runs' median
# step times (a shared machine drifts) and its largest peak RSS.
# Usage: [REPEATS=N] bench/compare_torch.sh [build dir]   (needs python3-torch, libopenblas0-openmp)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$root/build}
ours=$build/bench/minilm
ref=$root/../shared/reference/minilm_torch.py
[ -x "$ours" ] || { echo "compare_torch: build bench/minilm first ($ours)"; exit 2; }
# Debian's python3-torch lives in the system interpreter, which a pyenv shim may hide.
python=""
for p in python3 /usr/bin/python3; do
  if "$p" -c "import torch" 2>/dev/null; then python=$p; break; fi
done
[ -n "$python" ] || { echo "compare_torch: python3-torch is missing (apt-get install python3-torch libopenblas0-openmp)"; exit 2; }
export OMP_NUM_THREADS=2

repeats=${REPEATS:-3}

# Prints "<median ms> <peak RSS MB>" for one run of a command that processes $tokens tokens a step.
# The step time comes from the tokens/s figure, which both sides print to more digits than ms.
measure() {
  local out rss
  out=$( { /usr/bin/time -f "RSS %M" "$@"; } 2>&1 )
  rss=$(echo "$out" | awk '/^RSS/ {print $2 / 1024}')
  echo "$(echo "$out" | sed -n 's/.*tokens\/s=\([0-9.]*\).*/\1/p' | awk -v t="$tokens" '{print 1000 * t / $1}') $rss"
}

# Lines "<ms> <MB>" on stdin -> "<median ms> <largest MB>".
summarize() {
  sort -n | awk '{ ms[NR] = $1; if ($2 > mb) mb = $2 }
    END { m = NR % 2 ? ms[(NR + 1) / 2] : (ms[NR / 2] + ms[NR / 2 + 1]) / 2; print m, mb }'
}

printf "%-6s %-9s %12s %12s %8s %12s %12s %8s\n" config dtype "ours ms" "torch ms" ratio "ours MB" "torch MB" "mem"
for config in "seed:--d 20 --layers 1 --heads 2 --seq 64 --batch 8" "small:--d 256 --layers 4 --heads 4 --seq 128 --batch 16"; do
  name=${config%%:*}
  flags=${config#*:}
  tokens=$(echo "$flags" | awk '{for (i = 1; i < NF; ++i) { if ($i == "--seq") s = $(i + 1); if ($i == "--batch") b = $(i + 1) } print s * b}')
  for dtype in float32 bfloat16; do
    ours_runs="" torch_runs=""
    for _ in $(seq "$repeats"); do
      ours_runs+="$(measure "$ours" $flags --dtype "$dtype")"$'\n'
      torch_runs+="$(measure "$python" "$ref" $flags --dtype "$dtype" --threads 2)"$'\n'
    done
    read -r ours_ms ours_mb < <(printf "%s" "$ours_runs" | summarize)
    read -r torch_ms torch_mb < <(printf "%s" "$torch_runs" | summarize)
    awk -v n="$name" -v d="$dtype" -v a="$ours_ms" -v b="$torch_ms" -v c="$ours_mb" -v e="$torch_mb" \
      'BEGIN { printf "%-6s %-9s %12.3f %12.3f %8.2f %12.1f %12.1f %8.2f\n", n, d, a, b, a / b, c, e, c / e }'
  done
done
