"""The stand-in's one name: ``hotline.tts_standin`` and ``hotline tts-standin`` (the old
``hotline.voice`` package and ``hotline voice`` command are gone)."""

from __future__ import annotations

import subprocess
import sys


def _hotline(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "hotline", *args], capture_output=True, text=True, timeout=60
    )


def test_cli_name() -> None:
    new = _hotline("tts-standin", "--help")
    assert new.returncode == 0 and "--fault" in new.stdout and new.stderr == ""
    top = _hotline("--help")
    assert "tts-standin" in top.stdout and "voice" not in top.stdout
    old = _hotline("voice", "--help")
    assert old.returncode == 2 and "invalid choice: 'voice'" in old.stderr
