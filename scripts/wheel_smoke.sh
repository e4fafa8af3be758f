#!/usr/bin/env bash
# Install the repaired manylinux wheel alone in a fresh venv (no Cython, no source tree on the
# path) and run the codec tests and stubtest against it. Run by `make wheel-check` and .ci/run.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
# PYTHON: the interpreter to test with; WHEEL: the wheel (default the one in wheelhouse/);
# TESTS: what to run against it (default the codec tests).
PY=${PYTHON:-python3}
whl=${WHEEL:-$(ls wheelhouse/hotline-*manylinux*.whl 2>/dev/null | head -n1 || true)}
[ -n "$whl" ] || { echo "wheel_smoke: no repaired wheel in wheelhouse/ (run make wheel)"; exit 1; }
echo "wheel_smoke: $whl"

# libmpg123 must be inside the wheel, not taken from the system.
"${AUDITWHEEL:-.venv/bin/auditwheel}" show "$whl" | tee /tmp/hotline-auditwheel.txt
unzip -l "$whl" | grep -q 'hotline\.libs/libmpg123' \
  || { echo "wheel_smoke: libmpg123 is not bundled in $whl"; exit 1; }

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
$PY -m venv "$work/venv"
"$work/venv/bin/python" -m pip install -q --upgrade pip
"$work/venv/bin/python" -m pip install -q "$whl[test]"
if "$work/venv/bin/python" -c "import Cython" 2>/dev/null; then
  echo "wheel_smoke: Cython leaked into the runtime venv"; exit 1
fi
cp -r tests pyproject.toml "$work/"
cd "$work"
"$work/venv/bin/python" - <<'PY'
import hotline.codec, hotline, os, sys
path = os.path.realpath(hotline.__file__)
assert "site-packages" in path, f"imported hotline from {path}, not the installed wheel"
print("installed hotline:", path, "| libmpg123", hotline.codec.mpg123_version())
PY
# shellcheck disable=SC2086
"$work/venv/bin/python" -m pytest -q -p no:cacheprovider ${TESTS:-tests/codec}
# The stubs against the wheel's own module (the allowlist is in the copied tests/).
bash "$root/scripts/stubtest.sh" "$work/venv/bin/python"
