#!/usr/bin/env bash
# GPU check of the cuda backend: GPU tests, `exodiff validate --quick` on the
# GPU (where it exists) and the benchmark, in under 5 minutes; prints a
# summary.  Options go to bench/gpu_check.py (--help).  Exit status: 0 all
# passed, 1 a GPU step failed, 2 no usable GPU (CuPy missing or no device).
#   bash bench/gpu_check.sh --json gpu_check.json
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
if ! "$PYTHON" -c "import exodiff" 2>/dev/null; then
    echo "gpu_check: '$PYTHON' cannot import exodiff; install it (pip install -e '.[gpu,test]') or set PYTHON" >&2
    exit 2
fi
exec "$PYTHON" bench/gpu_check.py "$@"
