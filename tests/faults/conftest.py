"""One hotline server per TTS transport for the whole fault matrix (see harness.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from .harness import ADMIN_TOKEN, AUTH_TOKEN, SCRIPT, TTS_TIMEOUT, ServerThread


class Servers:
    """The package's servers by ``ELEVENLABS_TRANSPORT``, each started on first use."""

    def __init__(self, script_path: str) -> None:
        self.script_path = script_path
        self.started: dict[str, ServerThread] = {}

    def __getitem__(self, transport: str) -> ServerThread:
        srv = self.started.get(transport)
        if srv is None:
            srv = ServerThread(
                {
                    "twilio_auth_token": AUTH_TOKEN,
                    "admin_token": ADMIN_TOKEN,
                    "local_voice_first_chunk_delay": 0.05,
                    "tts_timeout": TTS_TIMEOUT,
                    "script_path": self.script_path,
                    "elevenlabs_transport": transport,
                }
            )
            self.started[transport] = srv
            srv.start()
        return srv


@pytest.fixture(scope="package")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Servers]:
    script = tmp_path_factory.mktemp("faults") / "script.toml"
    script.write_text(SCRIPT)
    all_servers = Servers(str(script))
    try:
        yield all_servers
    finally:
        dead = {}
        for transport, srv in all_servers.started.items():
            if not srv.alive:
                dead[transport] = srv.error
            srv.stop()
    assert not dead, f"a server died during the fault matrix: {dead!r}"


@pytest.fixture
def server(request: pytest.FixtureRequest, servers: Servers) -> ServerThread:
    """The server a test runs on. The Twilio-side faults run on the defaults users run
    (``multi``); the ElevenLabs-side faults are injected per utterance (a query parameter on
    the TTS connection), so that module runs on the per-utterance socket (``single``) unless
    the test is parametrised with a ``transport`` of its own."""
    default = "single" if request.module.__name__.endswith("test_elevenlabs_side") else "multi"
    callspec = getattr(request.node, "callspec", None)
    transport = callspec.params.get("transport", default) if callspec is not None else default
    return servers[transport]
