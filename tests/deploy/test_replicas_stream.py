"""Replicas behind one public URL, with real processes: two ``hotline serve`` on one real
redis-server, Twilio's webhook answered by one and its media stream landing on the other
(directly, and through a real nginx routing plain HTTP and upgrades to different replicas);
and a replica killed mid-call, its caller brought back by the ``<Connect action>``."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from hotline.loopback import free_port
from hotline.sim.call_report import CallReport
from hotline.sim.caller import place_call
from hotline.sim.options import CallControl, CallOptions
from tests.deploy.proxy import NGINX, nginx_proxy
from tests.scale.conftest import RedisServer, redis_server
from tests.support.spawn import hotline_serve

pytestmark = pytest.mark.slow  # real processes in real time: `make test-all`, not `make test`

__all__ = ["redis_server"]  # the fixture, imported for these tests

TOKEN = "replicas-stream-twilio-token-0123456789"
ADMIN_TOKEN = "replicas-stream-admin-token-abcdef"
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
GREETING = (
    "Hello and welcome to the replica line. This greeting is long on purpose, so that a "
    "replica can die while it is still being spoken to the caller."
)
SCRIPT = f"""
greeting = "{GREETING}"
reconnect = "Sorry about that, I'm back."
invalid_digit = "That key does nothing."
goodbye = "Goodbye."
goodbye_digit = "0"

[menu]
1 = "Option one."
"""


def _env(tmp_path: Path, redis_url: str, public_url: str, **extra: str) -> dict[str, str]:
    script = tmp_path / "script.toml"
    script.write_text(SCRIPT)
    return {
        "TWILIO_AUTH_TOKEN": TOKEN,
        "HOTLINE_PUBLIC_URL": public_url,
        "HOTLINE_ADMIN_TOKEN": ADMIN_TOKEN,
        "HOTLINE_SCRIPT": str(script),
        "HOTLINE_REDIS_URL": redis_url,
        "HOTLINE_REDIS_HEARTBEAT": "0.2",
        "HOTLINE_REDIS_CALL_EXPIRY": "3",
        "HOTLINE_LOCAL_VOICE_FIRST_CHUNK_DELAY": "0.05",
        **extra,
    }


def _metric(base: str, name: str) -> float:
    text = httpx.get(base + "/metrics", timeout=5).text
    found = re.search(rf"^{name}(?:_total)?(?:{{[^}}]*}})? ([0-9.e+-]+)$", text, re.M)
    return float(found.group(1)) if found else 0.0


def _greeting_heard(report: CallReport) -> Any:
    """The first utterance the caller heard, checked to be the whole greeting: it played to
    its mark, which was echoed (not cut by a clear or a hang-up)."""
    assert report.errors == [] and report.protocol_violations == 0, report.errors
    assert report.utterances, "nothing heard"
    first = report.utterances[0]
    assert first.mark is not None and not first.cleared, first
    assert first.mark in report.mark_names and report.marks_echoed >= 1
    return first


def _hangup_when_greeted(live: list[CallReport], control: CallControl) -> None:
    """The caller hangs up once it has heard the greeting to its mark."""

    async def watch() -> None:
        while not live or not any(u.mark for u in live[0].utterances):
            await asyncio.sleep(0.05)
        control.hang_up()

    asyncio.get_running_loop().create_task(watch())


async def _call_greeting(url: str, ws_url: str | None) -> CallReport:
    live: list[CallReport] = []
    control = CallControl()

    def started(report: CallReport) -> None:
        live.append(report)
        _hangup_when_greeted(live, control)

    opts = CallOptions(
        url=url,
        auth_token=TOKEN,
        ws_url=ws_url,
        max_seconds=30,
        control=control,
        on_started=started,
    )
    return await place_call(opts)


@pytest.fixture
def env_for(tmp_path: Path, redis_server: RedisServer) -> Iterator[Any]:
    """Environment of a replica on the shared redis-server behind ``public_url``."""

    def env(public_url: str, **extra: str) -> dict[str, str]:
        return _env(tmp_path, redis_server.url, public_url, **extra)

    yield env


def test_webhook_on_one_replica_stream_on_the_other(env_for: Any) -> None:
    port_a = free_port()
    env = env_for(f"http://127.0.0.1:{port_a}")
    with (
        hotline_serve("--insecure-dev", port=port_a, **env) as a,
        hotline_serve("--insecure-dev", **env) as b,
    ):
        report = asyncio.run(_call_greeting(a.base, f"ws://127.0.0.1:{b.port}/media-stream"))
        first = _greeting_heard(report)
        assert first.audio_ms > 3000  # the long greeting, not a fragment
        # The TTS socket was opened where the stream landed (B), none on A, none left over.
        assert _metric(a.base, "hotline_tts_socket_connects") == 0
        assert _metric(b.base, "hotline_tts_socket_connects") == 1
        assert _metric(b.base, "hotline_tts_stream_sockets_unused") == 0
    assert "stream started" in b.stderr and "stream started" not in a.stderr


@pytest.mark.skipif(NGINX is None, reason="nginx is not installed (apt-get install -y nginx)")
def test_through_nginx_webhook_to_one_replica_upgrade_to_the_other(env_for: Any) -> None:
    port_a, port_b, port_proxy = free_port(), free_port(), free_port()
    env = env_for(f"http://127.0.0.1:{port_proxy}", HOTLINE_TRUSTED_PROXIES="127.0.0.1")
    with (
        hotline_serve("--insecure-dev", port=port_a, **env) as a,
        hotline_serve("--insecure-dev", port=port_b, **env) as b,
        nginx_proxy(port_a, port_proxy, ws_upstream=port_b) as proxy,
    ):
        report = asyncio.run(_call_greeting(proxy, None))  # everything through nginx
        _greeting_heard(report)
        assert _metric(a.base, "hotline_tts_socket_connects") == 0
        assert _metric(b.base, "hotline_tts_socket_connects") == 1
    assert "webhook answered with a media stream" in a.stderr
    assert "stream started" in b.stderr and "stream started" not in a.stderr


def test_killed_replica_call_comes_back_on_the_other(env_for: Any) -> None:
    port_a = free_port()
    env = env_for(f"http://127.0.0.1:{port_a}")
    with (
        hotline_serve("--insecure-dev", port=port_a, **env) as a,
        hotline_serve("--insecure-dev", **env) as b,
    ):

        async def main() -> tuple[CallReport, float]:
            live: list[CallReport] = []
            opts = CallOptions(
                url=a.base,
                auth_token=TOKEN,
                ws_url=f"ws://127.0.0.1:{b.port}/media-stream",  # the call lives on B
                max_seconds=40,
                follow_action=True,  # as Twilio does
                on_started=live.append,
            )
            task = asyncio.create_task(place_call(opts))
            async with httpx.AsyncClient(headers=ADMIN, timeout=5) as client:
                while not live or live[0].media_frames < 25:  # B is half a second in
                    await asyncio.sleep(0.02)
                b.proc.kill()  # kill -9: no drain, no close frame, no goodbye
                killed_at = time.monotonic()
                while len(live) < 2:  # the simulator followed <Connect action> to A
                    assert not task.done(), task.result()
                    await asyncio.sleep(0.02)
                while len(live[0].utterances) < 2 or not live[0].utterances[-1].mark:
                    await asyncio.sleep(0.05)  # the reconnect line heard to its mark
                sid = opts.call_sid
                r = await client.post(f"{a.base}/calls/{sid}/say", json={"text": "Still here."})
                assert r.status_code == 202, r.text
                while len(live[0].utterances) < 3 or not live[0].utterances[-1].mark:
                    await asyncio.sleep(0.05)
                r = await client.post(f"{a.base}/calls/{sid}/hangup")
                assert r.status_code == 202, r.text
            return await task, killed_at

        report, _ = asyncio.run(main())
    assert report.errors == [] and report.protocol_violations == 0, report.errors
    assert len(report.streams) == 2 and report.actions == ["stream", "hangup"], (
        report.streams,
        report.actions,
    )
    dropped, resumed = report.streams
    assert dropped["ended_by"] == "server_hangup" and dropped["close_code"] != 1000
    gap_ms = resumed["first_audio_ms"] - dropped["ended_ms"]
    print(f"\nreconnect line heard {gap_ms:.0f} ms after the drop was seen")
    greeting, reconnect, said = report.utterances[:3]
    assert greeting.mark is None or greeting.audio_ms > 0  # cut by the kill
    assert reconnect.mark and not reconnect.cleared and said.mark and not said.cleared
    assert reconnect.audio_ms < 3000  # "Sorry about that, I'm back." (not the greeting again)
    assert report.ended_by == "server_hangup"  # the hang-up API; its action said <Hangup/>
    assert "stream lost (not ended by hotline; resume 1" in a.stderr
    assert "stream ended by hotline; hanging up" in a.stderr
    assert TOKEN not in a.stderr and "Traceback" not in a.stderr
