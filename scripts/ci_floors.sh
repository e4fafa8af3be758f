#!/usr/bin/env bash
# `make ci-floors`: install every runtime dependency at its DECLARED MINIMUM (pip has no lowest
# resolution, so scripts/floors.py turns pyproject's `name>=X` into a `name==X` constraints
# file) on the oldest declared Python, build the extension there, and run the fast server and
# codec suites. A floor that does not work fails here instead of in someone's deployment.
set -euo pipefail
cd "$(dirname "$0")/.."
FLOORS_PYTHON_VERSION=${FLOORS_PYTHON_VERSION:-3.10.13}
py=${FLOORS_PYTHON:-/root/.pyenv/versions/$FLOORS_PYTHON_VERSION/bin/python3}
if [ ! -x "$py" ]; then
  py=$(command -v "python${FLOORS_PYTHON_VERSION%.*}" || true)
fi
if [ -z "$py" ] || [ ! -x "$py" ]; then
  echo "################################################################################"
  echo "ci-floors: SKIPPED: no Python $FLOORS_PYTHON_VERSION on this machine"
  echo "           (looked for /root/.pyenv/versions/$FLOORS_PYTHON_VERSION and python${FLOORS_PYTHON_VERSION%.*})"
  echo "################################################################################"
  exit 0
fi
venv=${FLOORS_VENV:-.venv-floors}
start=$(date +%s)
rm -rf "$venv"
"$py" -m venv "$venv"
"$venv/bin/python" -m pip install -q --upgrade pip
"$venv/bin/python" -m pip install -q tomli packaging   # for scripts/floors.py on 3.10
"$venv/bin/python" scripts/floors.py > "$venv/floors.txt"
echo "ci-floors: $("$venv/bin/python" -V), constraints: $(tr '\n' ' ' < "$venv/floors.txt")"
"$venv/bin/python" -m pip install -q -c "$venv/floors.txt" "setuptools>=77" wheel "Cython>=3.0"
"$venv/bin/python" -m pip install -q -c "$venv/floors.txt" --no-build-isolation -e ".[test]"
"$venv/bin/python" setup.py -q build_ext --inplace -j 2
# What pip installed must be the floors themselves, not something newer.
"$venv/bin/python" - "$venv/floors.txt" <<'PY'
import sys
from importlib.metadata import version
bad = []
for line in open(sys.argv[1]).read().split():
    name, want = line.split("==")
    got = version(name)
    if [int(x) for x in got.split(".")] != [int(x) for x in want.split(".")] + [0] * (
        len(got.split(".")) - len(want.split("."))
    ):
        bad.append(f"{name} {got} (floor {want})")
if bad:
    sys.exit("ci-floors: not the floors: " + ", ".join(bad))
PY
"$venv/bin/python" -m pytest -q -p no:cacheprovider -x \
  tests/codec tests/core tests/server tests/deploy tests/scale/test_redis_backend.py
bash scripts/stubtest.sh "$venv/bin/python"
echo "ci-floors: passed in $(( $(date +%s) - start )) s"
