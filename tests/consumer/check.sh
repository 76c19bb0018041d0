#!/usr/bin/env bash
# Builds and runs tests/consumer both ways: against `cmake --install` output with find_package,
# and with add_subdirectory of the source tree. Usage: check.sh <optimi build dir> <optimi source dir>
set -euo pipefail
build=$(cd "$1" && pwd)
src=$(cd "$2" && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cmake --install "$build" --prefix "$work/prefix" >/dev/null
cmake -S "$src/tests/consumer" -B "$work/installed" -DCMAKE_PREFIX_PATH="$work/prefix" -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$work/installed" -j2 >/dev/null
"$work/installed/consumer"
cmake -S "$src/tests/consumer" -B "$work/subdir" -DOPTIMI_SOURCE_DIR="$src" -DOPTIMI_CUDA=OFF -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$work/subdir" -j2 >/dev/null
"$work/subdir/consumer"
