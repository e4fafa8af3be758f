"""The webhook answered by one replica, the media stream landing on another: with the signed
per-call token any replica sharing the key accepts the stream, with no shared state (no Redis).
Two real ``hotline serve`` processes; the caller simulator does Twilio's part."""

from __future__ import annotations

import asyncio

import pytest

from hotline.loopback import free_port
from hotline.sim.call_report import CallReport
from hotline.sim.caller import place_call
from hotline.sim.options import CallOptions
from tests.support.spawn import hotline_serve

pytestmark = pytest.mark.slow  # real processes in real time: `make test-all`, not `make test`

TOKEN = "replicas-twilio-token-0123456789abcdef"


def _call(webhook: str, stream_port: int) -> CallReport:
    return asyncio.run(
        place_call(
            CallOptions(
                url=webhook,
                auth_token=TOKEN,
                ws_url=f"ws://127.0.0.1:{stream_port}/media-stream",  # another replica
                hangup_after_s=1.5,
                max_seconds=10,
            )
        )
    )


def test_stream_on_another_replica_is_accepted_and_a_foreign_key_refused() -> None:
    port_a = free_port()
    env = {
        "TWILIO_AUTH_TOKEN": TOKEN,
        "HOTLINE_PUBLIC_URL": f"http://127.0.0.1:{port_a}",  # one public URL for all replicas
        "HOTLINE_LOCAL_VOICE_FIRST_CHUNK_DELAY": "0.05",
    }
    with (
        hotline_serve("--insecure-dev", port=port_a, **env) as a,
        hotline_serve("--insecure-dev", **env) as b,
        hotline_serve("--insecure-dev", HOTLINE_TOKEN_SECRET="another-key-42", **env) as c,
    ):
        report = _call(a.base, b.port)
        assert report.webhook_status == 200 and report.errors == [], report.errors
        assert report.media_frames > 0  # B accepted A's token and played the greeting
        refused = _call(a.base, c.port)  # C keys its tokens differently: refused, not bridged
        assert refused.media_frames == 0
    assert "stream started" in b.stderr and "stream started" not in c.stderr
    assert "per-call token refused: forged, or issued for another call" in c.stderr
    for served in (a, b, c):
        assert "Traceback" not in served.stderr and TOKEN not in served.stderr
