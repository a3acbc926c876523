#!/usr/bin/env bash
# GPU check of the cuda backend on one GPU, offline: agreement tests,
# `exodiff validate --quick --backend cuda` and the rates of cuda (each
# precision) and numba, in under 8 minutes, ending with one table.  It
# installs and downloads nothing: exodiff and CuPy must already be importable
# by $PYTHON (default python3).  Options go to bench/gpu_check.py (--help,
# --dry-run).  Exit status: 0 all passed, 1 a check failed, 2 no usable GPU.
#   bash bench/gpu_check.sh --json gpu_check.json
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
if ! "$PYTHON" -c "import exodiff" 2>/dev/null; then
    echo "gpu_check: '$PYTHON' cannot import exodiff; install it first (pip install -e '.[test,gpu-cuda13]', or gpu-cuda12 for CUDA 12 drivers) or set PYTHON" >&2
    exit 2
fi
case " $* " in
    *" --dry-run "*|*" --help "*|*" -h "*) ;;   # need no CuPy
    *)
        if ! "$PYTHON" -c "import cupy" 2>/dev/null; then
            echo "gpu_check: '$PYTHON' cannot import CuPy, and this check installs nothing; install exodiff[gpu-cuda13] (or gpu-cuda12) first or set PYTHON" >&2
            exit 2
        fi ;;
esac
exec "$PYTHON" bench/gpu_check.py "$@"
