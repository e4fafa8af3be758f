"""``hotline load --converse``: conversing calls against a spawned server (the local ear in its
own process over Deepgram's protocol, the local voice, the script brain), count-bounded."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

LOAD = [sys.executable, "-m", "hotline", "load"]


@pytest.mark.slow
def test_two_conversing_calls_report_voice_to_voice() -> None:
    proc = subprocess.run(
        [*LOAD, "--spawn-server", "--calls", "2", "--converse", "2", "--json"],
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert proc.returncode == 0, proc.stderr[-2000:] + proc.stdout[-2000:]
    result = json.loads(proc.stdout)
    assert result["calls"] == 2 and result["questions_per_call"] == 2
    assert result["questions"] == 4 and result["answered"] == 4
    assert result["errors"] == {"total": 0}
    caller = result["caller_v2v_ms"]
    assert caller["p50"] is not None and 0 < caller["p50"] <= caller["p95"] <= caller["max"]
    server = result["server_v2v"]
    # Every turn the callers took was observed by the server, split per stage.
    for stage in ("silence", "recogniser", "dispatch", "model", "to_tts", "voice", "playout"):
        assert server[stage]["turns"] == 4, stage
    assert server["hotline"]["turns"] == 4
    assert 0 < server["hotline"]["mean_ms"] < server["total"]["mean_ms"]


def test_converse_needs_a_question() -> None:
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "hotline",
            "load",
            "--url",
            "http://127.0.0.1:9",
            "--converse",
            "-1",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode != 0
