"""The caller simulator against a tiny scripted stand-in for hotline (real uvicorn, real sockets):
Twilio message shapes, signatures, the playback clock (marks after playback, clear), underrun
accounting, barge-in speech, DTMF, strict checks of what the app sends, the fault flags, WAV out."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import math
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import parse_qsl

import pytest
from fastapi import FastAPI, Request, Response, WebSocket
from starlette.websockets import WebSocketDisconnect
from twilio.request_validator import RequestValidator

from hotline.codec import ulaw_encode, ulaw_frame_stats
from hotline.sim.call_report import CallReport
from hotline.sim.caller import place_call
from hotline.sim.options import CallOptions
from hotline.sim.wav import read_wav
from hotline.sim.webhook import parse_twiml
from tests.support import marks
from tests.support.aio import arun
from tests.support.net import bind_ephemeral
from tests.support.server import serve_asgi

# The simulator's clock is the wall clock: onsets, underruns and durations asserted in windows.
pytestmark = marks.wall_clock

T = TypeVar("T")
TOKEN = "sim-test-token-123"
STREAM_SID = "MZ" + "1" * 32


def tone(ms: int, freq: float = 440.0) -> bytes:
    n = ms * 8
    pcm = b"".join(
        int(8000 * math.sin(2 * math.pi * freq * i / 8000)).to_bytes(2, "little", signed=True)
        for i in range(n)
    )
    return ulaw_encode(pcm)


@dataclass
class Stream:
    ws: WebSocket
    sid: str = ""
    got: list[tuple[float, Any]] = field(
        default_factory=list
    )  # (loop time, parsed JSON | raw str | bytes)
    events: asyncio.Queue[Any] = field(default_factory=asyncio.Queue)
    closed: asyncio.Event = field(default_factory=asyncio.Event)
    headers: dict[str, str] = field(default_factory=dict)

    async def media(self, audio: bytes, frame: int = 160) -> None:
        for i in range(0, len(audio), frame):
            payload = base64.b64encode(audio[i : i + frame]).decode()
            await self.ws.send_text(
                json.dumps({"event": "media", "streamSid": self.sid, "media": {"payload": payload}})
            )

    async def mark(self, name: str) -> None:
        await self.ws.send_text(
            json.dumps({"event": "mark", "streamSid": self.sid, "mark": {"name": name}})
        )

    async def clear(self) -> None:
        await self.ws.send_text(json.dumps({"event": "clear", "streamSid": self.sid}))

    async def wait_event(self, event: str, timeout: float = 10.0) -> dict[str, Any]:
        async def loop() -> dict[str, Any]:
            while True:
                msg = await self.events.get()
                if isinstance(msg, dict) and msg.get("event") == event:
                    return msg

        return await asyncio.wait_for(loop(), timeout)

    def of(self, event: str) -> list[tuple[float, dict[str, Any]]]:
        return [(t, m) for t, m in self.got if isinstance(m, dict) and m.get("event") == event]


Behaviour = Callable[[Stream], Awaitable[None]]


@dataclass
class Fake:
    base: str
    streams: list[Stream]
    webhooks: list[tuple[dict[str, str], bool]]  # (form, signature valid)


@contextlib.asynccontextmanager
async def fake_hotline(behaviour: Behaviour, *, max_size: int = 65536) -> AsyncIterator[Fake]:
    sock = bind_ephemeral()
    port = sock.getsockname()[1]
    base = f"http://127.0.0.1:{port}"
    validator = RequestValidator(TOKEN)
    fake = Fake(base, [], [])
    app = FastAPI()

    @app.post("/voice")
    async def voice(request: Request) -> Response:
        form = dict(parse_qsl((await request.body()).decode(), keep_blank_values=True))
        ok = validator.validate(
            base + "/voice", form, request.headers.get("x-twilio-signature", "")
        )
        fake.webhooks.append((form, ok))
        if not ok:
            return Response(status_code=403)
        twiml = (
            '<?xml version="1.0" encoding="UTF-8"?><Response><Connect>'
            f'<Stream url="wss://127.0.0.1:{port}/media-stream">'
            f'<Parameter name="CallSid" value="{form["CallSid"]}"/><Parameter name="token" value="tok-1"/>'
            "</Stream></Connect></Response>"
        )
        return Response(twiml, media_type="application/xml")

    @app.websocket("/media-stream")
    async def media(ws: WebSocket) -> None:
        sig = ws.headers.get("x-twilio-signature", "")
        if not validator.validate(f"wss://127.0.0.1:{port}/media-stream", {}, sig):
            await ws.close(1008)
            return
        await ws.accept()
        st = Stream(ws, headers=dict(ws.headers))
        fake.streams.append(st)
        loop = asyncio.get_running_loop()

        async def receive() -> None:
            try:
                while True:
                    msg = await ws.receive()
                    if msg["type"] == "websocket.disconnect":
                        st.got.append((loop.time(), {"_disconnect": msg.get("code")}))
                        return
                    item: Any = msg.get("bytes") if msg.get("text") is None else msg["text"]
                    if isinstance(item, str):
                        with contextlib.suppress(ValueError):
                            item = json.loads(item)
                    if isinstance(item, dict) and item.get("event") == "start":
                        st.sid = item["streamSid"]
                    st.got.append((loop.time(), item))
                    st.events.put_nowait(item)
            except (WebSocketDisconnect, RuntimeError):
                st.got.append((loop.time(), {"_disconnect": None}))
            finally:
                st.closed.set()

        rx = asyncio.create_task(receive())
        try:
            await st.wait_event("start")
            await behaviour(st)
        except (WebSocketDisconnect, RuntimeError, asyncio.TimeoutError):
            pass
        finally:
            await rx

    async with serve_asgi(app, sock, lifespan="off", ws_ping_interval=None, ws_max_size=max_size):
        yield fake


async def call(behaviour: Behaviour, **kw: Any) -> tuple[CallReport, Fake]:
    max_size = kw.pop("max_size", 65536)
    async with fake_hotline(behaviour, max_size=max_size) as fake:
        kw.setdefault("max_seconds", 10.0)
        report = await place_call(CallOptions(url=fake.base, auth_token=TOKEN, **kw))
        for st in fake.streams:
            await asyncio.wait_for(st.closed.wait(), 5)
    return report, fake


async def close_soon(st: Stream, delay: float = 0.2) -> None:
    await asyncio.sleep(delay)
    await st.ws.close(1000)


# -- tests ---------------------------------------------------------------------------------------------


def test_parse_twiml_rejects_what_twilio_rejects() -> None:
    url, params = parse_twiml(
        '<Response><Connect><Stream url="wss://h/m"><Parameter name="a" value="1"/></Stream></Connect></Response>'
    )
    assert url == "wss://h/m" and params == {"a": "1"}
    for bad in (
        "not xml",
        "<Response><Start><Stream url='wss://h/m'/></Start></Response>",
        "<Response><Connect><Stream url='wss://h/m?x=1'/></Connect></Response>",
        "<Response><Connect><Stream url='https://h/m'/></Connect></Response>",
    ):
        try:
            parse_twiml(bad)
        except Exception as exc:
            assert type(exc).__name__ == "CallError"
        else:
            raise AssertionError(bad)


@pytest.mark.parametrize("shared_clock", [False, True], ids=["own-clock", "shared-clock"])
def test_twilio_messages_signatures_and_marks_after_playback(shared_clock: bool) -> None:
    sent_at: dict[str, float] = {}

    async def behaviour(st: Stream) -> None:
        await st.media(tone(1000), frame=333)  # odd sizes: Twilio accepts any
        sent_at["a"] = asyncio.get_running_loop().time()
        await st.mark("a")
        await st.wait_event("mark")
        await st.mark("b")  # nothing buffered: echoed at once
        await st.wait_event("mark")
        await close_soon(st)

    report, fake = arun(lambda: call(behaviour, shared_clock=shared_clock))
    assert report.ended_by == "server_hangup" and report.errors == [] and report.ok
    assert fake.webhooks[0][1] is True
    form = fake.webhooks[0][0]
    assert (
        form["CallSid"] == report.call_sid
        and form["From"] == "+15555550123"
        and form["Direction"] == "inbound"
    )
    st = fake.streams[0]
    msgs = [m for _, m in st.got if isinstance(m, dict) and "event" in m]
    assert msgs[0] == {"event": "connected", "protocol": "Call", "version": "1.0.0"}
    start = msgs[1]
    assert (
        start["event"] == "start"
        and start["sequenceNumber"] == "1"
        and start["streamSid"] == start["start"]["streamSid"]
    )
    assert set(start["start"]) == {
        "accountSid",
        "streamSid",
        "callSid",
        "tracks",
        "customParameters",
        "mediaFormat",
    }
    assert start["start"]["customParameters"] == {"CallSid": report.call_sid, "token": "tok-1"}
    assert start["start"]["mediaFormat"] == {
        "encoding": "audio/x-mulaw",
        "sampleRate": 8000,
        "channels": 1,
    }
    media = [m for m in msgs if m["event"] == "media"]
    assert len(media) > 20
    m0 = media[0]
    assert set(m0) == {"event", "sequenceNumber", "media", "streamSid"} and set(m0["media"]) == {
        "track",
        "chunk",
        "timestamp",
        "payload",
    }
    assert (
        m0["media"]["chunk"] == "1"
        and m0["media"]["timestamp"] == "0"
        and m0["media"]["track"] == "inbound"
    )
    assert media[1]["media"]["chunk"] == "2" and media[1]["media"]["timestamp"] == "20"
    assert (
        len(base64.b64decode(m0["media"]["payload"])) == 160 and len(m0["media"]["payload"]) == 216
    )
    seqs = [int(m["sequenceNumber"]) for m in msgs[1:]]
    assert seqs == list(range(1, len(seqs) + 1)) and all(
        isinstance(m["sequenceNumber"], str) for m in msgs[1:]
    )
    marks = st.of("mark")
    assert [m["mark"]["name"] for _, m in marks] == ["a", "b"]
    assert marks[0][0] - sent_at["a"] >= 0.9  # echoed only once the second of audio had played
    assert set(marks[0][1]) == {"event", "sequenceNumber", "streamSid", "mark"}
    assert report.marks_received == 2 and report.marks_echoed == 2
    assert 950 <= report.audio_ms <= 1010 and report.underrun_ms == 0
    assert report.utterances[0].mark == "a" and not report.utterances[0].cleared
    assert report.time_to_first_audio_ms is not None and report.time_to_first_audio_ms < 1000
    assert report.speech_ms > 800


@pytest.mark.parametrize("shared_clock", [False, True], ids=["own-clock", "shared-clock"])
def test_clear_drops_audio_and_echoes_pending_marks(shared_clock: bool) -> None:
    cleared_at: list[float] = []

    async def behaviour(st: Stream) -> None:
        await st.media(tone(3000))
        await st.mark("long")
        await asyncio.sleep(0.5)
        cleared_at.append(asyncio.get_running_loop().time())
        await st.clear()
        await st.wait_event("mark", 1.0)
        await close_soon(st)

    report, fake = arun(lambda: call(behaviour, shared_clock=shared_clock))
    echo_at = fake.streams[0].of("mark")[0][0]
    assert echo_at - cleared_at[0] < 0.1  # the pending mark came back at once
    assert report.clears == 1 and report.marks_echoed == 1
    assert 400 <= report.audio_ms <= 700  # the rest was dropped
    assert report.utterances[-1].cleared and report.underrun_ms == 0


@pytest.mark.parametrize("shared_clock", [False, True], ids=["own-clock", "shared-clock"])
def test_underrun_counts_gaps_mid_utterance_only(shared_clock: bool) -> None:
    async def behaviour(st: Stream) -> None:
        await st.media(tone(400))
        await asyncio.sleep(0.7)  # starve playback for ~300 ms mid-utterance
        await st.media(tone(400))
        await st.mark("u1")
        await st.wait_event("mark")
        await asyncio.sleep(0.3)  # a pause between utterances is not an underrun
        await st.media(tone(200))
        await st.mark("u2")
        await st.wait_event("mark")
        await close_soon(st)

    report, _ = arun(lambda: call(behaviour, shared_clock=shared_clock))
    assert 200 <= report.underrun_ms <= 600 and report.underrun_events == 1
    assert [u.mark for u in report.utterances] == ["u1", "u2"]


def test_barge_in_speaks_and_measures_clear_latency() -> None:
    async def behaviour(st: Stream) -> None:
        await st.media(tone(4000))
        await st.mark("greeting")
        while True:  # clear as soon as the caller is heard
            msg = await st.wait_event("media")
            frame = base64.b64decode(msg["media"]["payload"])
            if ulaw_frame_stats(frame)[0] > -40:
                break
        await st.clear()
        await st.wait_event("mark")
        await close_soon(st, 0.1)

    report, _ = arun(lambda: call(behaviour, barge_in_at=0.5))
    assert report.barge_in_onset_ms is not None and 480 <= report.barge_in_onset_ms <= 700
    assert (
        report.first_clear_after_barge_in_ms is not None
        and 0 <= report.first_clear_after_barge_in_ms < 300
    )
    assert report.clears == 1 and report.audio_ms < 1000


def test_digits_after_each_finished_line() -> None:
    async def behaviour(st: Stream) -> None:
        await st.media(tone(300))
        await st.mark("greeting")
        d1 = await st.wait_event("dtmf")
        await st.media(tone(300))
        await st.mark("line-" + d1["dtmf"]["digit"])
        d2 = await st.wait_event("dtmf")
        await st.mark("line-" + d2["dtmf"]["digit"])
        await st.wait_event("mark")
        await close_soon(st)

    report, fake = arun(lambda: call(behaviour, digits="12"))
    dtmf = [m for _, m in fake.streams[0].of("dtmf")]
    assert [m["dtmf"]["digit"] for m in dtmf] == ["1", "2"]
    assert (
        set(dtmf[0]) == {"event", "streamSid", "sequenceNumber", "dtmf"}
        and dtmf[0]["dtmf"]["track"] == "inbound_track"
    )
    assert report.mark_names == ["greeting", "line-1", "line-2"] and report.dtmf_sent == 2


def test_caller_hangup_sends_stop_and_wav(tmp_path: Path) -> None:
    async def behaviour(st: Stream) -> None:
        await st.media(tone(500))
        await st.mark("m")
        await st.wait_event("stop")

    out = tmp_path / "heard.wav"
    report, fake = arun(lambda: call(behaviour, hangup_after_s=1.0, out=str(out)))
    assert report.ended_by == "caller_stop" and report.ok
    stop = fake.streams[0].of("stop")[0][1]
    assert set(stop) == {"event", "sequenceNumber", "stop", "streamSid"}
    assert stop["stop"] == {
        "accountSid": fake.webhooks[0][0]["AccountSid"],
        "callSid": report.call_sid,
    }
    pcm, rate = read_wav(out)
    assert rate == 8000 and 0.9 <= len(pcm) / 2 / 8000 <= 1.2
    assert report.out == str(out)


def test_app_protocol_violations_are_reported() -> None:
    async def behaviour(st: Stream) -> None:
        await st.ws.send_text(
            json.dumps(
                {
                    "event": "media",
                    "streamSid": st.sid,
                    "media": {"payload": "/w==", "track": "outbound"},
                }
            )
        )
        await st.ws.send_bytes(b"\xff" * 160)
        await st.ws.send_text(
            json.dumps({"event": "mark", "streamSid": "MZwrong", "mark": {"name": "x"}})
        )
        await st.ws.send_text(json.dumps({"event": "connected", "streamSid": st.sid}))
        await st.ws.send_text("{nope")
        await close_soon(st)

    report, _ = arun(lambda: call(behaviour))
    joined = " | ".join(report.errors)
    assert "31950" in joined and joined.count("31951") >= 4 and not report.ok
    assert report.protocol_violations == 5


def test_bad_signature_is_refused() -> None:
    async def behaviour(st: Stream) -> None:
        return None

    report, fake = arun(lambda: call(behaviour, bad_signature=True))
    assert (
        report.ended_by == "error"
        and "HTTP 403" in report.errors[0]
        and fake.webhooks[0][1] is False
    )


def test_fault_flags_reach_the_wire() -> None:
    async def behaviour(st: Stream) -> None:
        await st.media(tone(200))
        await st.mark("m")
        await st.wait_event("stop", 10)

    report, fake = arun(
        lambda: call(
            behaviour,
            hangup_after_s=1.2,
            unknown_events=True,
            malformed_json=True,
            binary_frames=True,
            never_echo_marks=True,
            dtmf_storm=30,
            media_speedup=3.0,
        )
    )
    got = [m for _, m in fake.streams[0].got]
    assert any(isinstance(m, dict) and m.get("event") == "hotline-unknown" for m in got)
    assert any(
        isinstance(m, str) and m.startswith('{"event":"media"') for m in got
    )  # truncated JSON
    assert any(isinstance(m, bytes) for m in got)
    assert not fake.streams[0].of("mark") and report.marks_echoed == 0
    assert len(fake.streams[0].of("dtmf")) == 30
    assert len(fake.streams[0].of("media")) >= 2.5 * 50 * 1.2 * 0.9  # ~3x the real-time rate


def test_huge_message_gets_the_socket_closed() -> None:
    async def behaviour(st: Stream) -> None:
        await st.closed.wait()

    report, _ = arun(lambda: call(behaviour, huge_message=True))
    assert report.ended_by == "server_hangup" and report.close_code == 1009


def test_stop_before_media_and_drop_without_stop() -> None:
    async def wait_end(st: Stream) -> None:
        await st.closed.wait()

    report, fake = arun(lambda: call(wait_end, stop_before_media=True))
    events = [
        m.get("event") for _, m in fake.streams[0].got if isinstance(m, dict) and "event" in m
    ]
    assert events == ["connected", "start", "stop"] and report.ended_by == "caller_stop"

    report, fake = arun(lambda: call(wait_end, drop_without_stop=True, hangup_after_s=0.5))
    got = fake.streams[0].got
    assert not fake.streams[0].of("stop") and report.close_code == 1006
    assert got[-1][1].get("_disconnect") in (1005, 1006, None)  # no close frame with a status


def test_duplicate_connection() -> None:
    async def behaviour(st: Stream) -> None:
        await asyncio.sleep(1.5 if st.sid == STREAM_SID else 0.3)
        await st.ws.close(1000)

    report, fake = arun(
        lambda: call(behaviour, duplicate_connection=True, stream_sid=STREAM_SID, max_seconds=3.0)
    )
    assert len(fake.streams) == 2
    starts = [st.of("start")[0][1]["start"] for st in fake.streams]
    assert (
        starts[0]["callSid"] == starts[1]["callSid"]
        and starts[0]["streamSid"] != starts[1]["streamSid"]
    )
    assert report.duplicate_result is not None and "closed by server" in report.duplicate_result


def test_cli_prints_summary() -> None:
    async def main() -> tuple[int, str]:
        async def behaviour(st: Stream) -> None:
            await st.media(tone(300))
            await st.mark("m")
            await st.wait_event("mark")
            await close_soon(st)

        async with fake_hotline(behaviour) as fake:
            proc = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "hotline",
                "call",
                "--url",
                fake.base,
                "--auth-token",
                TOKEN,
                "--max-seconds",
                "8",
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
            )
            out, err = await proc.communicate()
            assert proc.returncode is not None
            return proc.returncode, out.decode() + err.decode()

    code, text = arun(main)
    assert code == 0, text
    assert "time to first audio" in text and "marks                1 received, 1 echoed" in text


def test_control_and_barge_in_relative_to_the_answer() -> None:
    from hotline.sim.options import CallControl

    control = CallControl()

    async def behaviour(st: Stream) -> None:
        await st.media(tone(300))
        await st.mark("greeting")
        await st.wait_event("dtmf")
        await st.media(tone(3000))  # the answer
        await st.mark("answer")
        d = await st.wait_event("dtmf")  # pressed from outside
        assert d["dtmf"]["digit"] == "7"
        await st.wait_event("stop")

    async def main() -> tuple[CallReport, Fake]:
        async def steer() -> None:
            await asyncio.sleep(1.5)
            control.press("7")

        task = asyncio.create_task(steer())
        try:
            return await call(
                behaviour,
                digits="1",
                barge_in_after_answer_s=0.5,
                hangup_after_barge_in_s=0.6,
                control=control,
            )
        finally:
            await task

    report, _ = arun(main)
    assert report.ended_by == "caller_stop" and report.dtmf_sent == 2
    greeting, answer = report.utterances
    assert (
        greeting.mark == "greeting" and answer.mark is None and not answer.cleared
    )  # cut by the hang-up
    assert report.barge_in_onset_ms is not None
    assert 480 <= report.barge_in_onset_ms - answer.start_ms <= 700
    assert 1000 <= report.duration_ms <= 3000


def test_shared_clock_runs_many_calls_on_one_timer() -> None:
    """Five plain calls on the shared clock at once: each hears its second of audio after
    playback, its mark echoed after it, no underrun, and one clock task serves them all."""
    from hotline.sim.clock import SharedClock

    async def behaviour(st: Stream) -> None:
        # One message (as hotline sends an utterance's later audio): 50 frame-sized sends from
        # five fakes in this process could arrive more than a frame apart on a loaded machine,
        # which the callers rightly count as underruns; this test is about their clock.
        await st.media(tone(1000), frame=8000)
        await st.mark("a")
        await st.wait_event("mark")
        await close_soon(st)

    async def main() -> tuple[list[CallReport], int]:
        async with fake_hotline(behaviour) as fake:
            seen: list[int] = []

            async def watch() -> None:
                while True:
                    ticker = SharedClock._running.get(asyncio.get_running_loop())
                    seen.append(0 if ticker is None else len(ticker.calls))
                    await asyncio.sleep(0.05)

            w = asyncio.create_task(watch())
            reports = await asyncio.gather(
                *(
                    place_call(
                        CallOptions(
                            url=fake.base, auth_token=TOKEN, max_seconds=10.0, shared_clock=True
                        )
                    )
                    for _ in range(5)
                )
            )
            w.cancel()
            return list(reports), max(seen)

    reports, most = arun(main)
    assert most == 5
    for report in reports:
        assert report.ended_by == "server_hangup" and report.errors == []
        assert 950 <= report.audio_ms <= 1010 and report.underrun_ms == 0
        assert report.marks_echoed == 1 and report.utterances[0].mark == "a"
        assert report.inbound_frames >= 50
