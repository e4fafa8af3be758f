#!/usr/bin/env bash
# `make ci-newest`: hotline/server/media_ws.py reaches into uvicorn's and websockets' private
# internals (the protocol's receive queue, the parser's buffer and state, the size limits, the
# flow-control flags), so a new release of either can break the direct media path without any
# API change. This installs every declared dependency in a separate venv, then the NEWEST
# uvicorn and websockets on the index, whatever pyproject's caps say, and runs the tests that
# take the direct path against them (the tree's own build, on PYTHONPATH). A release past a cap
# that passes here is one whose cap can be raised; one that fails is caught before a deploy
# that lifted the cap would take it.
set -euo pipefail
cd "$(dirname "$0")/.."
py=${NEWEST_PYTHON:-.venv/bin/python}   # the build's interpreter: the in-place extension fits it
venv=${NEWEST_VENV:-.venv-newest}
tests=${NEWEST_TESTS:-tests/server/test_media_ws.py tests/codec/test_ws_frames.py \
  tests/server/test_calls.py tests/server/test_session.py tests/e2e tests/faults/test_twilio_side.py}
start=$(date +%s)
rm -rf "$venv"
"$py" -m venv "$venv"
"$venv/bin/python" -m pip install -q --upgrade pip
# Every runtime and test dependency as declared, except the two under test.
"$py" - > "$venv/deps.txt" <<'PY'
import re
import tomllib

project = tomllib.load(open("pyproject.toml", "rb"))["project"]
for dep in project["dependencies"] + project["optional-dependencies"]["test"]:
    if re.match(r"\s*(uvicorn|websockets)\b", dep) is None:
        print(dep)
PY
"$venv/bin/python" -m pip install -q -r "$venv/deps.txt"
"$venv/bin/python" -m pip install -q --upgrade "uvicorn[standard]" websockets
"$venv/bin/python" - <<'PY'
import re
import tomllib
from importlib.metadata import version

from pip._vendor.packaging.requirements import Requirement

caps = {}
for dep in tomllib.load(open("pyproject.toml", "rb"))["project"]["dependencies"]:
    req = Requirement(dep)
    if req.name in ("uvicorn", "websockets"):
        caps[req.name] = req.specifier
for name, spec in caps.items():
    got = version(name)
    where = "within" if spec.contains(got) else "ABOVE"
    print(f"ci-newest: {name} {got} (newest on the index; {where} pyproject's {name}{spec})")
PY
PYTHONPATH=$PWD "$venv/bin/python" -c \
  'import hotline.server.media_ws as m, os; assert os.path.realpath(m.__file__).startswith(os.getcwd()), m.__file__'
# shellcheck disable=SC2086
PYTHONPATH=$PWD "$venv/bin/python" -m pytest -q -p no:cacheprovider -m "not slow" \
  -n "${PYTEST_WORKERS:-2}" --dist loadgroup $tests
echo "ci-newest: passed in $(( $(date +%s) - start )) s"
