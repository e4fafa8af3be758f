"""End to end over real sockets on 127.0.0.1: uvicorn serving ``create_app`` with the embedded
local voice (eSpeak NG over the ElevenLabs protocol), and the caller simulator as Twilio.

One call walks the whole script (greeting, a digit's line, ``say`` from outside, hang-up after
the goodbye); a second one talks over the greeting; at the end nothing is left running."""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
from fastapi import FastAPI

from hotline.sim.call_report import CallReport
from hotline.sim.caller import place_call
from hotline.sim.options import CallControl, CallOptions
from tests.support import marks
from tests.support.aio import arun, wait_until
from tests.support.server import running_server

# Windows on the caller simulator's wall clock (time to first audio, clear after barge-in).
pytestmark = marks.wall_clock

T = TypeVar("T")
TWILIO_TOKEN = "e2e-twilio-token-0123456789abcdef"
ADMIN_TOKEN = "e2e-admin-token"
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}

SCRIPT = """
greeting = "Hello, you have reached the test line. Press 1 for the news."
invalid_digit = "That key does nothing."
goodbye = "Thanks for calling, goodbye."
goodbye_digit = "0"

[menu]
1 = "Here is the news. Everything is fine today."
"""

LONG_GREETING = """
greeting = "Welcome to the test line. This greeting is long on purpose, so the caller has plenty of time to talk over it while it plays."
invalid_digit = "That key does nothing."
goodbye = "Goodbye."
goodbye_digit = "0"

[menu]
1 = "News."
"""


# The configuration users run (multi-context socket, phrase cache), and the per-utterance
# socket without a cache, whose barge-in closes the whole ElevenLabs connection.
TRANSPORTS = {"defaults": {}, "single": {"elevenlabs_transport": "single", "cache_bytes": 0}}


@pytest.fixture(params=list(TRANSPORTS))
def transport(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def sockets_open() -> int:
    n = 0
    for fd in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):
            if os.readlink(f"/proc/self/fd/{fd}").startswith("socket:"):
                n += 1
    return n


@dataclass
class Hotline:
    base: str
    app: FastAPI
    transport: str  # what the server runs: "multi" | "single"

    @property
    def voice(self) -> Any:
        return self.app.state.voice

    async def admin(self, method: str, path: str, **kw: Any) -> httpx.Response:
        async with httpx.AsyncClient(base_url=self.base, headers=ADMIN) as client:
            return await client.request(method, path, **kw)

    def paths(self, utterance_id: int) -> list[str]:
        """How each call's utterance ``utterance_id`` was spoken ("multi" | "single" | "cache")."""
        speech = self.app.state.hub.speech
        return [r.path for r in speech.records if r.utterance_id == utterance_id]

    def greeting_cut_at_the_voice(self) -> bool:
        """The interrupted greeting's synthesis was stopped at the voice without a flush: its
        socket closed by hotline (single) or its context closed on the call's socket (multi)."""
        if self.transport == "single":
            return self.voice.stats.closes_by_client > 0
        cut = {"context_id": "u1", "close_context": True}
        return any(cut in rec.messages for rec in self.voice.records)


@contextlib.asynccontextmanager
async def hotline(tmp_path: Path, script: str, transport: str) -> AsyncIterator[Hotline]:
    script_file = tmp_path / "script.toml"
    script_file.write_text(script)
    async with running_server(
        **TRANSPORTS[transport],
        twilio_auth_token=TWILIO_TOKEN,
        admin_token=ADMIN_TOKEN,
        script_path=str(script_file),
        local_voice_first_chunk_delay=0.25,
        elevenlabs_output_format="mp3_44100_128",
        tts_timeout=8.0,
    ) as srv:
        assert srv.app.state.voice is not None, "no ELEVENLABS_API_KEY: the local voice must run"
        speech = srv.hub.speech
        assert speech is not None
        yield Hotline(srv.base, srv.app, str(speech.transport))


def test_whole_call_greeting_digit_say_hangup_then_barge_in(tmp_path: Path, transport: str) -> None:
    async def main() -> None:
        tasks_before = asyncio.all_tasks()
        sockets_before = sockets_open()
        async with hotline(tmp_path, SCRIPT, transport) as hl:
            # -- call 1: greeting, digit 1, say, digit 0 = goodbye and hang-up ------------
            live: list[CallReport] = []
            control = CallControl()
            opts = CallOptions(
                url=hl.base,
                auth_token=TWILIO_TOKEN,
                digits="1",
                max_seconds=40.0,
                on_started=live.append,
                control=control,
            )
            call = asyncio.create_task(place_call(opts))
            await wait_until(lambda: bool(live), 5, "the call to start")
            rep = live[0]
            calls = (await hl.admin("GET", "/calls")).json()["calls"]
            assert len(calls) == 1
            await wait_until(lambda: rep.marks_echoed >= 2, 25, "greeting and line 1 to play")
            r = await hl.admin(
                "POST",
                f"/calls/{opts.call_sid}/say",
                json={"text": "An operator says hello to you now."},
            )
            assert r.status_code == 202, r.text
            await wait_until(lambda: rep.marks_echoed >= 3, 15, "the said text to play")
            control.press("0")
            report = await asyncio.wait_for(call, 20)
            print(report.summary())
            assert report.errors == [] and report.protocol_violations == 0
            # greeting heard (speech, not silence) within 1.5 s of `start`
            assert (
                report.time_to_first_audio_ms is not None and report.time_to_first_audio_ms <= 1500
            )
            assert len(report.utterances) == 4, report.summary()
            greeting, line, said, goodbye = report.utterances
            assert greeting.start_ms <= 1500 and greeting.speech_ms >= 1500
            # the digit played its line; `say` spoke; the goodbye played to its end
            assert line.speech_ms >= 1000 and said.speech_ms >= 1000 and goodbye.speech_ms >= 500
            assert not any(u.cleared for u in report.utterances)
            # no underrun mid-utterance; every mark echoed
            assert report.underrun_ms == 0, report.underrun_ms
            assert report.marks_received == report.marks_echoed == 4
            # the server hung up after the goodbye had played (its mark echoed, nothing queued)
            assert report.ended_by == "server_hangup" and report.unplayed_ms_at_end == 0
            assert report.close_code == 1000 and report.dtmf_sent == 2

            # -- call 2: hang-up from outside ends the call at once ------------------------
            live.clear()
            opts2 = CallOptions(
                url=hl.base, auth_token=TWILIO_TOKEN, max_seconds=20.0, on_started=live.append
            )
            call = asyncio.create_task(place_call(opts2))
            await wait_until(
                lambda: bool(live) and live[0].media_frames > 0, 5, "the greeting to start"
            )
            r = await hl.admin("POST", f"/calls/{opts2.call_sid}/hangup")
            assert r.status_code == 202, r.text
            report2 = await asyncio.wait_for(call, 10)
            assert report2.ended_by == "server_hangup" and report2.duration_ms < 5000

            # -- call 3: talk over the greeting ------------------------------------------
            barge = await place_call(
                CallOptions(
                    url=hl.base, auth_token=TWILIO_TOKEN, barge_in_at=0.8, hangup_after_s=2.5
                )
            )
            print(barge.summary())
            assert barge.errors == [] and barge.ended_by == "caller_stop"
            assert barge.clears >= 1
            assert barge.first_clear_after_barge_in_ms is not None
            assert barge.first_clear_after_barge_in_ms <= 300
            assert barge.utterances and barge.utterances[0].cleared
            if hl.app.state.hub.speech.store is not None:
                # with the cache, calls 2 and 3 heard the greeting call 1 recorded: the
                # interrupted greeting had no synthesis to stop
                assert hl.paths(1) == [hl.transport, "cache", "cache"]
            else:
                assert hl.paths(1) == ["single"] * 3
                # the ElevenLabs stream of the interrupted greeting was closed by hotline
                await wait_until(hl.greeting_cut_at_the_voice, 3, "the TTS stream to close")

            # -- nothing left of either call -------------------------------------------------
            await wait_until(
                lambda: hl.voice.stats.open_connections == 0, 5, "TTS sockets to close"
            )
            for _ in range(100):
                if not (await hl.admin("GET", "/calls")).json()["calls"]:
                    break
                await asyncio.sleep(0.05)
            assert (await hl.admin("GET", "/calls")).json()["calls"] == []
        await wait_until(
            lambda: {t for t in asyncio.all_tasks() if not t.done()} <= tasks_before,
            5,
            "every task to end",
        )
        assert sockets_open() <= sockets_before

    arun(main, 60)


def test_talking_over_a_long_greeting_clears_fast(tmp_path: Path, transport: str) -> None:
    async def main() -> None:
        async with hotline(tmp_path, LONG_GREETING, transport) as hl:
            report = await place_call(
                CallOptions(
                    url=hl.base, auth_token=TWILIO_TOKEN, barge_in_at=0.8, hangup_after_s=3.0
                )
            )
            assert report.errors == [] and report.first_clear_after_barge_in_ms is not None
            assert report.first_clear_after_barge_in_ms <= 300
            await wait_until(
                lambda: hl.voice.stats.open_connections == 0, 5, "TTS sockets to close"
            )
            assert hl.paths(1) == [hl.transport]  # a fresh server: nothing cached yet
            assert hl.greeting_cut_at_the_voice()
            if hl.transport == "single":  # the socket closed before its final
                assert not any(rec.final_sent for rec in hl.voice.records)
            # On the multi socket a context already flushed goes on generating after
            # close_context, as ElevenLabs does; its final follows and hotline drops the tail.

    arun(main, 60)
