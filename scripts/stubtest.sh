#!/usr/bin/env bash
# stubtest: hotline/codec/_codec.pyi against the compiled module the given Python imports (the
# build tree's, an installed wheel's, the floors venv's). Run by `make lint`, wheel_smoke.sh and
# ci_floors.sh, from a directory holding tests/codec/stubtest_allowlist.txt.
# Usage: scripts/stubtest.sh PYTHON
set -euo pipefail
py=${1:?usage: stubtest.sh PYTHON}
"$py" -m mypy.stubtest hotline.codec._codec \
  --allowlist tests/codec/stubtest_allowlist.txt \
  --ignore-unused-allowlist   # the allowlist's entry is needed on 3.13 only
echo "stubtest: hotline.codec._codec matches its stubs ($("$py" -V))"
