"""One hotline server for the whole fault matrix (see harness.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from .harness import ADMIN_TOKEN, AUTH_TOKEN, SCRIPT, TTS_TIMEOUT, ServerThread


@pytest.fixture(scope="package")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerThread]:
    script = tmp_path_factory.mktemp("faults") / "script.toml"
    script.write_text(SCRIPT)
    srv = ServerThread(
        {
            "twilio_auth_token": AUTH_TOKEN,
            "admin_token": ADMIN_TOKEN,
            "local_voice_first_chunk_delay": 0.05,
            "tts_timeout": TTS_TIMEOUT,
            "script_path": str(script),
        }
    )
    srv.start()
    try:
        yield srv
    finally:
        alive = srv.alive
        srv.stop()
    assert alive, f"the server died during the fault matrix: {srv.error!r}"


@pytest.fixture(autouse=True, scope="module")
def _transport(request: pytest.FixtureRequest, server: ServerThread) -> Iterator[None]:
    """The ElevenLabs-side faults are injected per utterance (a query parameter on the TTS
    connection), so that module runs on the per-utterance socket unless a test picks the
    transport itself; the Twilio-side faults run on the defaults users run."""
    if not request.module.__name__.endswith("test_elevenlabs_side"):
        yield
        return
    old = server.set_transport("single")
    try:
        yield
    finally:
        server.set_transport(old)
