"""Gates as tests (uvloop's tests/test_sourcecode.py style): ruff over hotline/.

It skips when ruff is not installed (e.g. when testing an installed wheel). mypy and stubtest
are the slow gates: they run in ``make lint`` (which CI runs), not in the suite.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _run(module: str, *args: str, timeout: float) -> subprocess.CompletedProcess[str]:
    if importlib.util.find_spec(module) is None:
        pytest.skip(f"{module} is not installed")
    return subprocess.run(
        [sys.executable, "-m", module, *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def test_ruff() -> None:
    result = _run("ruff", "check", "--no-cache", "hotline", timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
