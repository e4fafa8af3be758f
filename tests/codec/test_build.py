"""How the extension was built, checked on the built module itself, and its stubs.

Bit-exact output (the transcoder tests compare bytes) depends on compile flags: no FMA
contraction, no fast-math. setup.py records the flags it passed into the binary
(``build_info()``), so this checks the build that is actually imported, not a file that may
not have produced it. stubtest (mypy) checks hotline/codec/_codec.pyi against the module; it
skips when mypy is not installed (uvloop's tests/test_sourcecode.py style).
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

from hotline.codec import build_info

ROOT = Path(__file__).resolve().parents[2]


def test_built_without_fp_contraction_or_fast_math() -> None:
    args = build_info()["compile_args"]
    assert isinstance(args, list) and "-std=c11" in args
    contract = [a for a in args if a.startswith("-ffp-contract=")]
    assert contract and contract[-1] == "-ffp-contract=off"  # the last one is the one in force
    unsafe = ("-ffast-math", "-Ofast", "-funsafe-math-optimizations", "-fassociative-math")
    assert not [a for a in args if a in unsafe]


def test_stubs_match_the_module() -> None:
    if importlib.util.find_spec("mypy") is None:
        pytest.skip("mypy is not installed")
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "mypy.stubtest",
            "hotline.codec._codec",
            "--allowlist",
            str(Path(__file__).with_name("stubtest_allowlist.txt")),
            "--ignore-unused-allowlist",  # the entry is needed on 3.13 only
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
