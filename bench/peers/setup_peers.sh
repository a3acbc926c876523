#!/usr/bin/env bash
# Virtual environments for the peer tools, outside the work tree.
#   bench/peers/setup_peers.sh [DIR]      (default: /tmp/exodiff-peers)
# Smoldyn's wheel (pip install smoldyn) carries a CPython 3.10 extension only,
# so its environment is made with a Python 3.10 (pyenv's when present).
# ReaDDy ships pip wheels for CPython 3.11 on Linux (2.0.14); no conda needed.
set -euo pipefail
DIR=${1:-/tmp/exodiff-peers}
mkdir -p "$DIR"
# first candidate that runs and is the right version (pyenv shims may exist but fail)
find_python() {
  local want=$1 c
  for c in "python$want" ~/.pyenv/versions/$want*/bin/python /usr/bin/python$want; do
    if "$c" -c "import sys; assert sys.version.startswith('$want')" >/dev/null 2>&1; then
      command -v "$c" || echo "$c"; return
    fi
  done
}
PY310=${PY310:-$(find_python 3.10)}
PY311=${PY311:-$(find_python 3.11)}
if [ -n "$PY310" ]; then
  "$PY310" -m venv "$DIR/smoldyn" && "$DIR/smoldyn/bin/pip" install --quiet smoldyn numpy \
    && echo "smoldyn: $DIR/smoldyn/bin/python" || echo "smoldyn: install failed"
else
  echo "smoldyn: no Python 3.10 found (set PY310=/path/to/python3.10)"
fi
if [ -n "$PY311" ]; then
  "$PY311" -m venv "$DIR/readdy" && "$DIR/readdy/bin/pip" install --quiet readdy numpy \
    && echo "readdy: $DIR/readdy/bin/python" || echo "readdy: install failed"
else
  echo "readdy: no Python 3.11 found (set PY311=/path/to/python3.11)"
fi
