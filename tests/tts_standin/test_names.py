"""The stand-in's one name (``hotline.tts_standin``, ``hotline tts-standin``) and the old ones
kept for now: the ``hotline.voice`` re-export shim and the deprecated ``hotline voice``."""

from __future__ import annotations

import subprocess
import sys

from hotline.tts_standin.config import StandInConfig
from hotline.tts_standin.server import TTSStandIn


def test_the_old_import_paths_are_the_new_objects() -> None:
    import hotline.tts_standin.synth
    import hotline.voice.synth
    from hotline.voice.server import LocalVoice, VoiceConfig

    assert LocalVoice is TTSStandIn and VoiceConfig is StandInConfig
    assert hotline.voice.synth is hotline.tts_standin.synth


def _hotline(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "hotline", *args], capture_output=True, text=True, timeout=60
    )


def test_cli_name_and_deprecated_alias() -> None:
    new = _hotline("tts-standin", "--help")
    assert new.returncode == 0 and "--fault" in new.stdout and new.stderr == ""
    old = _hotline("voice", "--help")
    assert old.returncode == 0 and old.stdout == new.stdout  # the same command
    assert "deprecated" in old.stderr and "hotline tts-standin" in old.stderr
    top = _hotline("--help")
    assert "tts-standin" in top.stdout
