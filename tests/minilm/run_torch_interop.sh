#!/bin/sh
# Runs test_torch_interop.py under a Python that has torch. Debian's python3-torch installs into
# /usr/bin/python3, which need not be the python3 first on PATH. Exit 77 tells CTest "skipped".
for py in python3 /usr/bin/python3; do
  if command -v "$py" >/dev/null 2>&1 && "$py" -c "import torch" >/dev/null 2>&1; then
    exec "$py" "$(dirname "$0")/test_torch_interop.py" "$@"
  fi
done
echo "SKIP: no python3 with torch found (apt-get install python3-torch libopenblas0-openmp)"
exit 77
