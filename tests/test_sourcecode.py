"""Gates as tests (uvloop's tests/test_sourcecode.py style): ruff and mypy over hotline/.

Each test skips when its tool is not installed (e.g. when testing an installed wheel). mypy
runs once per session with the configuration in pyproject.toml (``disallow_untyped_defs``).
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


@pytest.fixture(scope="session")
def mypy_result() -> subprocess.CompletedProcess[str]:
    return _run("mypy", "--config-file", "pyproject.toml", timeout=600)


def test_mypy(mypy_result: subprocess.CompletedProcess[str]) -> None:
    assert mypy_result.returncode == 0, mypy_result.stdout + mypy_result.stderr
