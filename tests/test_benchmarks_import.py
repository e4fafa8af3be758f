"""Every benchmark module imports: `make bench` collects them all, and a name moved in hotline
must not leave a benchmark that fails at collection (two did: `_free_port`)."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"
MODULES = sorted(p.stem for p in BENCHMARKS.glob("*.py") if p.stem != "__init__")


@pytest.mark.parametrize("name", MODULES)
def test_the_benchmark_module_imports(name: str) -> None:
    if name == "rival_pipecat":
        pytest.skip("runs in the rival's own venv (pipecat), never imported here")
    importlib.import_module(f"benchmarks.{name}")
