"""Whole calls over real sockets on 127.0.0.1: uvicorn serving the app, the embedded local voice
(eSpeak NG behind the ElevenLabs protocol) and a minimal Twilio side playing in real time."""

from __future__ import annotations

import asyncio
import inspect
import json
import re
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from hotline.codec import ulaw_frame_stats
from hotline.sim.speech import caller_speech_frames
from tests.support.aio import wait_until

from .harness import ADMIN, FakeTwilio, FaultSwitch, Running, running_server, sign

SCRIPT = """
greeting = "Hello, thanks for calling."
invalid_digit = "That key does nothing."
goodbye = "Goodbye now."
goodbye_digit = "0"
[menu]
1 = "Tour dates are on the website."
"""

LONG_GREETING = """
greeting = "Welcome to the hotline. This greeting is long on purpose, so that the caller has plenty of time to talk over it while it plays, and it keeps going."
invalid_digit = "That key does nothing."
goodbye = "Goodbye now."
goodbye_digit = "0"
"""


# The configuration users run, and the per-utterance socket without a cache (its barge-in
# closes the ElevenLabs connection instead of a context on the call's socket).
TRANSPORTS: dict[str, dict[str, Any]] = {
    "defaults": {},
    "single": {"elevenlabs_transport": "single", "cache_bytes": 0},
}


def call_test(
    script: str = SCRIPT, *, both_transports: bool = False, **overrides: Any
) -> Callable[..., Callable[..., None]]:
    """Run an async test with a fresh server (short script) on the production defaults; with
    ``both_transports`` also on the per-utterance socket without a cache."""

    def wrap(test: Callable[..., Awaitable[None]]) -> Callable[..., None]:
        def run(tmp_path: Path, *args: Any, transport: str = "defaults", **kwargs: Any) -> None:
            path = tmp_path / "script.toml"
            path.write_text(script)
            settings = {**TRANSPORTS[transport], **overrides}

            async def main() -> None:
                async with running_server(script_path=str(path), **settings) as server:
                    baseline = set(asyncio.all_tasks())
                    await test(server, baseline, *args, **kwargs)

            asyncio.run(asyncio.wait_for(main(), 50))

        run.__name__ = test.__name__
        params = list(inspect.signature(test).parameters.values())[2:]
        extra = []
        if both_transports:
            extra = [inspect.Parameter("transport", inspect.Parameter.POSITIONAL_OR_KEYWORD)]
        run.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
            [
                inspect.Parameter("tmp_path", inspect.Parameter.POSITIONAL_OR_KEYWORD),
                *extra,
                *params,
            ]
        )
        if both_transports:
            return pytest.mark.parametrize("transport", list(TRANSPORTS))(run)
        return run

    return wrap


def speech_ms(audio: bytes) -> int:
    """Milliseconds of 20 ms windows that carry speech (not silence)."""
    n = 0
    for i in range(0, len(audio) - 159, 160):
        if ulaw_frame_stats(audio[i : i + 160])[0] > -45.0:
            n += 20
    return n


def frames_between(tw: FakeTwilio, start_ms: int, end_ms: int) -> bytes:
    return b"".join(f for _, ts, f in tw.heard.frames if start_ms <= ts < end_ms)


async def no_leftovers(server: Running, baseline: set[asyncio.Task[Any]]) -> None:
    """Every task and socket of finished calls is gone."""
    for _ in range(200):
        leftover = set(asyncio.all_tasks()) - baseline - {asyncio.current_task()}
        voice = server.app.state.voice
        if (
            not leftover
            and not server.hub.calls
            and not server.hub.sessions
            and voice.stats.open_connections == 0
        ):
            return
        await asyncio.sleep(0.02)
    raise AssertionError(
        f"left behind: tasks={leftover} calls={server.hub.calls} sessions={server.hub.sessions} "
        f"voice connections={voice.stats.open_connections}"
    )


async def tts_cut(server: Running, uid: int) -> None:
    """Utterance ``uid``'s synthesis is stopped at the voice without a flush: its socket closed
    (single) or its context closed on the call's socket (multi)."""
    speech = server.hub.speech
    assert speech is not None
    voice = server.app.state.voice
    if speech.transport == "single":
        await wait_until(lambda: voice.stats.open_connections == 0, 2, "the TTS socket to close")
        return
    cut = {"context_id": f"u{uid}", "close_context": True}
    await wait_until(
        lambda: any(cut in rec.messages for rec in voice.records), 2, "the TTS context to close"
    )


async def admin(server: Running, method: str, path: str, **kw: Any) -> httpx.Response:
    async with httpx.AsyncClient(base_url=server.base, headers=ADMIN) as client:
        return await client.request(method, path, **kw)


# ------------------------------------------------------------------------------- a call


@call_test()
async def test_greeting_digit_say_goodbye(
    server: Running, baseline: set[asyncio.Task[Any]]
) -> None:
    tw = FakeTwilio(server)
    await tw.start()
    await tw.wait_for(lambda: tw.mark_echoed("u1-end"))
    first_ms = tw.heard.frames[0][1]
    assert first_ms <= 1500  # greeting heard within 1.5 s of `start` (media clock)
    greeting = frames_between(tw, 0, 10**9)
    assert speech_ms(greeting) >= 500  # speech, not silence
    assert tw.heard.underrun_ms == 0
    calls = (await admin(server, "GET", "/calls")).json()["calls"]
    assert [c["call_sid"] for c in calls] == [tw.call_sid]
    assert calls[0]["caller"] == "+1555***0123"

    # A digit plays its line.
    mark = len(tw.heard.frames)
    await tw.dtmf("1")
    await tw.wait_for(lambda: tw.mark_echoed("u2-end"))
    line = b"".join(f for _, _, f in tw.heard.frames[mark:])
    assert speech_ms(line) >= 800

    # `say` answers 202 at once and speaks into the call.
    r = await admin(
        server, "POST", f"/calls/{tw.call_sid}/say", json={"text": "This was said by the API."}
    )
    assert r.status_code == 202 and r.json()["utterance_id"] == 3
    await tw.wait_for(lambda: tw.mark_echoed("u3-end"))

    # Goodbye: the server hangs up only after the goodbye has played (its mark echoed).
    await tw.dtmf("0")
    await tw.wait_for(lambda: tw.stopped.is_set())
    assert tw.mark_echoed("u4-end")
    assert tw.heard.close_code == 1000
    end_ts = next(ts for name, ts in tw.heard.marks if name == "u4-end")
    assert tw.heard.closed_at is not None and tw.heard.closed_at >= end_ts
    assert tw.heard.underrun_ms == 0
    assert tw.heard.bad == [] and tw.heard.clears == []
    await tw.close()
    await no_leftovers(server, baseline)
    metrics = (await admin(server, "GET", "/metrics")).text
    assert 'hotline_utterances_total{outcome="played",source="script"} 3.0' in metrics
    assert 'hotline_utterances_total{outcome="played",source="say"} 1.0' in metrics
    assert "hotline_active_calls 0.0" in metrics
    assert "hotline_bridge_overhead_seconds_count 4.0" in metrics
    logs = (await admin(server, "GET", "/logs")).text
    assert "5555550123" not in logs


@call_test(LONG_GREETING, both_transports=True)
async def test_barge_in_clears_within_300ms(
    server: Running, baseline: set[asyncio.Task[Any]]
) -> None:
    tw = FakeTwilio(server)
    await tw.start()
    await tw.wait_for(lambda: tw.heard.received_ms() > 800)  # the greeting is playing
    onset = tw.speak(list(caller_speech_frames("Wait, hello?")))
    await tw.wait_for(lambda: tw.heard.clears)
    latency = tw.heard.clears[0] - onset
    assert 0 < latency <= 300, latency  # media clock: speech onset -> clear received
    # The greeting's ElevenLabs stream is closed, and nothing more of it arrives.
    await tts_cut(server, 1)
    frames_at_clear = len(tw.heard.frames)
    await asyncio.sleep(0.5)
    assert len(tw.heard.frames) == frames_at_clear
    # After the caller stops, the call goes on normally.
    await tw.wait_for(lambda: not tw._speech, 5)
    await asyncio.sleep(0.4)
    r = await admin(server, "POST", f"/calls/{tw.call_sid}/say", json={"text": "Yes, go ahead."})
    assert r.status_code == 202
    uid = r.json()["utterance_id"]
    await tw.wait_for(lambda: tw.mark_echoed(f"u{uid}-end"))
    metrics = (await admin(server, "GET", "/metrics")).text
    assert "hotline_barge_ins_total 1.0" in metrics
    logs = (await admin(server, "GET", "/logs/streaming")).json()["records"]
    assert any("barge-in" in rec["message"] for rec in logs)
    await tw.stop()
    await tw.wait_for(lambda: tw.stopped.is_set())
    await tw.close()
    await no_leftovers(server, baseline)


@call_test()
async def test_say_interrupt_replaces_what_plays(
    server: Running, baseline: set[asyncio.Task[Any]]
) -> None:
    tw = FakeTwilio(server)
    await tw.start()
    await tw.wait_for(lambda: tw.heard.frames)
    r = await admin(
        server,
        "POST",
        f"/calls/{tw.call_sid}/say",
        json={"text": "Urgent news.", "interrupt": True},
    )
    assert r.status_code == 202
    await tw.wait_for(lambda: tw.mark_echoed("u2-end"))
    assert len(tw.heard.clears) == 1
    r = await admin(server, "POST", f"/calls/{tw.call_sid}/hangup")
    assert r.status_code == 202
    await tw.wait_for(lambda: tw.stopped.is_set())
    assert tw.heard.close_code == 1000
    await tw.close()
    await no_leftovers(server, baseline)
    assert (
        await admin(server, "POST", f"/calls/{tw.call_sid}/say", json={"text": "x"})
    ).status_code == 404


@pytest.mark.parametrize("how", ["stop", "drop"])
@call_test(LONG_GREETING)
async def test_stop_or_drop_leaves_nothing_behind(
    server: Running, baseline: set[asyncio.Task[Any]], how: str
) -> None:
    tw = FakeTwilio(server)
    await tw.start()
    await tw.wait_for(lambda: tw.heard.received_ms() > 100)
    assert server.hub.calls
    if how == "stop":
        await tw.stop()
        await tw.wait_for(lambda: tw.stopped.is_set())
        await tw.close()
    else:
        assert tw.ws is not None
        for task in tw._tasks:
            task.cancel()
        tw.ws.transport.abort()  # no stop, no close frame
    await no_leftovers(server, baseline)


@call_test()
async def test_debug_websocket_voice(server: Running, baseline: set[asyncio.Task[Any]]) -> None:
    tw = FakeTwilio(server)
    await tw.start("/debug-websocket-voice")
    await tw.wait_for(lambda: tw.stopped.is_set())
    assert tw.mark_echoed("u1-end") and tw.heard.close_code == 1000
    assert speech_ms(bytes(tw.heard.played)) >= 1500  # the whole sentence, then the hang-up
    await tw.close()
    await no_leftovers(server, baseline)


# ---------------------------------------------------------------------------- the upgrade


@call_test()
async def test_upgrade_signature_and_token(
    server: Running, baseline: set[asyncio.Task[Any]]
) -> None:
    url = server.ws_url
    for headers in (
        {},
        {"X-Twilio-Signature": sign(url, {}, "wrong-token")},
        {"X-Twilio-Signature": sign(url.replace("ws://", "http://"), {})},
        {"X-Twilio-Signature": sign(url + "?x=1", {})},
    ):
        with pytest.raises(InvalidStatus) as info:
            async with connect(url, additional_headers=headers):
                pass
        assert info.value.response.status_code == 403

    # A signed upgrade whose `start` lacks the per-call token is closed with 1008.
    async with connect(url, additional_headers={"X-Twilio-Signature": sign(url, {})}) as ws:
        tw = FakeTwilio(server, call_sid="CA" + "9" * 32)
        await ws.send(json.dumps({"event": "connected", "protocol": "Call", "version": "1.0.0"}))
        await ws.send(
            json.dumps(
                {
                    "event": "start",
                    "sequenceNumber": "1",
                    "streamSid": tw.stream_sid,
                    "start": {
                        "accountSid": "AC1",
                        "streamSid": tw.stream_sid,
                        "callSid": tw.call_sid,
                        "tracks": ["inbound"],
                        "customParameters": {"token": "forged"},
                        "mediaFormat": {
                            "encoding": "audio/x-mulaw",
                            "sampleRate": 8000,
                            "channels": 1,
                        },
                    },
                }
            )
        )
        await ws.wait_closed()
        assert ws.close_code == 1008
    # A real token is single-use: a second stream presenting it is refused.
    first = FakeTwilio(server)
    await first.start()
    second = FakeTwilio(server, call_sid=first.call_sid)
    second.params = first.params
    async with connect(url, additional_headers={"X-Twilio-Signature": sign(url, {})}) as ws:
        start = {
            "event": "start",
            "sequenceNumber": "1",
            "streamSid": second.stream_sid,
            "start": {
                "accountSid": "AC1",
                "streamSid": second.stream_sid,
                "callSid": second.call_sid,
                "tracks": ["inbound"],
                "customParameters": first.params,
                "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1},
            },
        }
        await ws.send(json.dumps(start))
        await ws.wait_closed()
        assert ws.close_code == 1008
    assert list(server.hub.calls) == [first.call_sid]
    await first.stop()
    await first.close()
    metrics = (await admin(server, "GET", "/metrics")).text
    assert 'hotline_signature_failures_total{endpoint="media-stream"} 4.0' in metrics
    assert 'hotline_signature_failures_total{endpoint="start-token"} 2.0' in metrics
    await no_leftovers(server, baseline)


@call_test()
async def test_malformed_twilio_messages_are_dropped(
    server: Running, baseline: set[asyncio.Task[Any]]
) -> None:
    tw = FakeTwilio(server)
    await tw.start()
    assert tw.ws is not None
    for _ in range(3):
        await tw.ws.send("{not json")
        await tw.ws.send(b"\x00\x01binary")
        await tw.ws.send(json.dumps({"event": "bogus", "streamSid": tw.stream_sid}))
    await tw.wait_for(lambda: tw.mark_echoed("u1-end"))
    records = server.hub.ring.snapshot(["hotline.call"])
    dropped = [r for r in records if "malformed" in r["message"]]
    assert len(dropped) == 3  # once per kind, not per message
    # The oversized-message cap closes the stream (uvicorn ws_max_size = 64 KiB).
    await tw.ws.send("x" * (70 * 1024))
    await tw.wait_for(lambda: tw.stopped.is_set())
    assert tw.heard.close_code == 1009
    await tw.close()
    await no_leftovers(server, baseline)


# ------------------------------------------------------------------ a misbehaving voice


# The faults are injected per utterance (a query parameter on the TTS connection): the
# per-utterance socket; the multi socket's faults are in tests/faults.
MISBEHAVING = FaultSwitch()


@call_test(tts_timeout=1.0, elevenlabs_transport="single", tts_factory=MISBEHAVING)
async def test_misbehaving_elevenlabs(server: Running, baseline: set[asyncio.Task[Any]]) -> None:
    tw = FakeTwilio(server)
    await tw.start()
    await tw.wait_for(lambda: tw.mark_echoed("u1-end"))
    uid = 2
    for fault in ("error_1008", "corrupt_audio", "no_final"):
        MISBEHAVING.arm(fault)
        r = await admin(
            server,
            "POST",
            f"/calls/{tw.call_sid}/say",
            json={"text": f"This one meets a fault midway through, number {uid}."},
        )
        assert r.json()["utterance_id"] == uid
        MISBEHAVING.disarm()
        r = await admin(
            server, "POST", f"/calls/{tw.call_sid}/say", json={"text": "And this one works."}
        )
        assert r.json()["utterance_id"] == uid + 1
        start = len(tw.heard.frames)
        nxt = f"u{uid + 1}-end"
        await tw.wait_for(lambda n=nxt: tw.mark_echoed(n), 15)  # type: ignore[misc]
        assert speech_ms(b"".join(f for _, _, f in tw.heard.frames[start:])) >= 800
        mentions = [
            r
            for r in server.hub.ring.snapshot(["hotline.call"])
            if r["level"] == "WARNING" and re.search(rf"utterance {uid}\b", r["message"])
        ]
        assert len(mentions) == 1, (fault, mentions)
        uid += 2
    assert server.hub.calls  # the call survived all three
    metrics = (await admin(server, "GET", "/metrics")).text
    for kind in ("error", "timeout"):
        assert f'hotline_elevenlabs_errors_total{{kind="{kind}"}} 1.0' in metrics, kind
    await tw.stop()
    await tw.wait_for(lambda: tw.stopped.is_set())
    await tw.close()
    await no_leftovers(server, baseline)


def test_health_streaming_reports_local_voice(tmp_path: Path) -> None:
    async def main() -> None:
        async with running_server() as server, httpx.AsyncClient(base_url=server.base) as c:
            body = (await c.get("/health/streaming")).json()
            assert body["voice"] == "local" and body["elevenlabs_configured"] is False
            assert body["websocket_url"] == server.ws_url
            assert body["status"] == "ok" and body["streaming_enabled"] is True

    asyncio.run(main())


@call_test()
async def test_with_the_caller_simulator(server: Running, baseline: set[asyncio.Task[Any]]) -> None:
    """The same path driven by ``hotline call``'s machinery (hotline.sim.caller)."""
    from hotline.sim.caller import place_call
    from hotline.sim.options import CallOptions

    from .harness import AUTH_TOKEN

    report = await place_call(
        CallOptions(url=server.base, auth_token=AUTH_TOKEN, digits="10", max_seconds=30)
    )
    assert report.errors == [], report.summary()
    assert report.ended_by == "server_hangup", report.summary()
    assert report.time_to_first_audio_ms is not None and report.time_to_first_audio_ms < 1500
    assert report.underrun_ms == 0 and report.clears == 0
    assert report.marks_received == report.marks_echoed == 3  # greeting, line 1, goodbye
    assert report.speech_ms > 3000
    await no_leftovers(server, baseline)


@call_test(LONG_GREETING)
async def test_barge_in_with_the_caller_simulator(
    server: Running, baseline: set[asyncio.Task[Any]]
) -> None:
    from hotline.sim.caller import place_call
    from hotline.sim.options import CallOptions

    from .harness import AUTH_TOKEN

    report = await place_call(
        CallOptions(url=server.base, auth_token=AUTH_TOKEN, barge_in_at=1.5, hangup_after_s=4.0)
    )
    assert report.errors == [], report.summary()
    assert report.clears == 1, report.summary()
    assert report.first_clear_after_barge_in_ms is not None
    assert report.first_clear_after_barge_in_ms <= 300, report.summary()
    await no_leftovers(server, baseline)


@call_test()
async def test_stream_without_start_is_closed(
    server: Running, baseline: set[asyncio.Task[Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    from hotline.server import session

    monkeypatch.setattr(session, "START_TIMEOUT", 0.3)
    url = server.ws_url
    async with connect(url, additional_headers={"X-Twilio-Signature": sign(url, {})}) as ws:
        await ws.send(json.dumps({"event": "connected", "protocol": "Call", "version": "1.0.0"}))
        await asyncio.wait_for(ws.wait_closed(), 5)
        assert ws.close_code == 1008
    await no_leftovers(server, baseline)
