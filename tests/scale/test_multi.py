"""The per-call multi-stream-input socket against the real local voice."""

from __future__ import annotations

import asyncio
from typing import Any, TypeVar

import pytest

from hotline.core.events import TTSAudio, TTSEvent, TTSFinal
from hotline.errors import ElevenLabsProtocolError
from hotline.server.elevenlabs_client import TTSConfig, TTSFailed
from hotline.server.tts_multi import MultiTTS
from hotline.tts_standin.server import StandInConfig, TTSStandIn
from tests.support.aio import arun

T = TypeVar("T")
FAST = StandInConfig(first_chunk_delay=0.02, realtime_factor=20.0)


def config(voice: TTSStandIn, **kw: Any) -> TTSConfig:
    return TTSConfig(
        base_url=voice.url,
        voice_id="voice1",
        model_id="eleven_flash_v2_5",
        output_format="ulaw_8000",
        timeout=3.0,
        **kw,
    )


class Collect:
    def __init__(self) -> None:
        self.audio = bytearray()
        self.events: list[TTSEvent] = []
        self.stop_after: int | None = None

    async def __call__(self, event: TTSEvent) -> bool:
        self.events.append(event)
        if isinstance(event, TTSAudio):
            self.audio += event.data
        return True


def bad(exc: ElevenLabsProtocolError) -> None:
    raise AssertionError(f"malformed message: {exc}")


async def settle(voice: TTSStandIn) -> None:
    for _ in range(200):
        if voice.stats.open_connections == 0:
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the voice still has connections open")


def test_one_socket_one_context_per_utterance_then_close_socket() -> None:
    async def main() -> None:
        async with TTSStandIn(FAST) as voice:
            tts = MultiTTS(config(voice), label="CA1")
            outs = []
            for text in ("First line of the call.", "Second line.", "Third one."):
                out = Collect()
                await tts.synthesize(text, out, bad)
                assert isinstance(out.events[-1], TTSFinal) and len(out.audio) > 2000
                outs.append(out)
            assert voice.stats.connections == 1 and tts.stats.contexts_opened == 3
            await tts.aclose()
            await settle(voice)
            rec = voice.records[-1]
            assert rec.kind == "multi-stream-input" and rec.closed_by == "server"
            assert rec.query["inactivity_timeout"] == "20"
            msgs = rec.messages
            assert [m.get("context_id") for m in msgs[:3]] == ["u1"] * 3
            assert msgs[0]["text"] == " " and msgs[1] == {
                "text": "First line of the call. ",
                "context_id": "u1",
                "flush": True,
            }
            assert msgs[2] == {"context_id": "u1", "close_context": True, "flush": True}
            assert {m.get("context_id") for m in msgs[3:9]} == {"u2", "u3"}
            assert msgs[-1] == {"close_socket": True}
            assert tts.stats.socket_closed_cleanly

    arun(main)


def test_cancel_closes_the_context_and_the_next_utterance_uses_a_new_one() -> None:
    async def main() -> None:
        slow = StandInConfig(first_chunk_delay=0.3, realtime_factor=2.0)
        async with TTSStandIn(slow) as voice:
            tts = MultiTTS(config(voice), label="CA2")
            first = Collect()
            long_text = "This long line is cut off by a caller who starts talking over it. " * 3
            task = asyncio.create_task(tts.synthesize(long_text, first, bad))
            for _ in range(300):  # cut it off mid-stream, after some audio
                if first.audio:
                    break
                await asyncio.sleep(0.01)
            assert first.audio
            task.cancel()  # what CancelTTS does on barge-in
            await asyncio.gather(task, return_exceptions=True)
            heard_at_cancel = len(first.audio)
            second = Collect()
            await tts.synthesize("After the interruption.", second, bad)
            await asyncio.sleep(0.2)
            assert len(first.audio) == heard_at_cancel  # nothing of the old context after it
            assert isinstance(second.events[-1], TTSFinal) and second.audio
            assert voice.stats.connections == 1  # no reconnect
            assert tts.stats.contexts_cancelled == 1
            msgs = voice.records[-1].messages
            assert {"context_id": "u1", "close_context": True} in msgs
            cut = msgs.index({"context_id": "u1", "close_context": True})
            assert msgs[cut + 1]["context_id"] == "u2"
            assert all(m.get("context_id") != "u1" for m in msgs[cut + 1 :])
            await tts.aclose()
            await settle(voice)

    arun(main)


def test_reconnects_with_backoff_when_the_voice_drops_the_socket() -> None:
    async def main() -> None:
        voice = TTSStandIn(FAST)
        await voice.start()
        port = voice.port
        tts = MultiTTS(config(voice), label="CA3", backoff=(0.05, 0.2))
        await tts.synthesize("Before the drop.", Collect(), bad)
        await voice.stop()  # the voice goes away: the socket drops
        with pytest.raises(TTSFailed):
            await tts.synthesize("Nobody is there.", Collect(), bad)
        voice2 = TTSStandIn(FAST)
        await voice2.start(port=port)
        try:
            out = Collect()
            for _ in range(50):  # the next utterance once the socket is back
                if await tts.wait_connected(0.2):
                    break
            await tts.synthesize("After the drop.", out, bad)
            assert isinstance(out.events[-1], TTSFinal) and out.audio
            assert tts.stats.reconnects == 1 and tts.stats.connect_failures >= 1
            assert voice2.stats.connections == 1
        finally:
            await tts.aclose()
            await voice2.stop()

    arun(main)


def test_keepalive_within_the_inactivity_timeout() -> None:
    async def main() -> None:
        async with TTSStandIn(FAST) as voice:
            tts = MultiTTS(config(voice), label="CA4", inactivity_timeout=1)
            await tts.synthesize("Hello.", Collect(), bad)
            await asyncio.sleep(2.2)  # idle for twice the inactivity timeout
            await tts.synthesize("Still here.", Collect(), bad)
            assert voice.stats.connections == 1 and voice.stats.timeouts == 0
            assert tts.stats.keepalives >= 3 and tts.stats.reconnects == 0
            await tts.aclose()
            await settle(voice)
            assert {"text": ""} in voice.records[-1].messages

    arun(main)


def test_a_sixth_utterance_waits_for_a_slot_instead_of_a_1008() -> None:
    async def main() -> None:
        async with TTSStandIn(StandInConfig(first_chunk_delay=0.5)) as voice:
            tts = MultiTTS(config(voice), label="CA5")
            tasks = [
                asyncio.create_task(tts.synthesize(f"Line number {n}.", Collect(), bad))
                for n in range(5)
            ]
            for _ in range(200):
                if tts.stats.contexts_opened == 5:
                    break
                await asyncio.sleep(0.01)
            sixth = Collect()
            await asyncio.wait_for(tts.synthesize("A sixth at once.", sixth, bad), 10)
            assert sixth.audio and any(isinstance(e, TTSFinal) for e in sixth.events)
            assert tts.stats.slot_waits == 1  # it waited for one of the five to finish
            await asyncio.gather(*tasks)
            assert voice.stats.errors_sent == 0 and voice.stats.connections == 1
            # Barge-in on all five: their flushed text goes on generating (and counting)
            # after close_context; the next utterance waits for their finals, no 1008.
            tasks = [
                asyncio.create_task(tts.synthesize(f"Line number {n} again.", Collect(), bad))
                for n in range(5)
            ]
            for _ in range(200):
                if tts.stats.contexts_opened == 11:
                    break
                await asyncio.sleep(0.01)
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            assert tts.stats.contexts_cancelled == 5
            out = Collect()
            await asyncio.wait_for(tts.synthesize("Room again.", out, bad), 10)
            assert out.audio and voice.stats.errors_sent == 0 and voice.stats.connections == 1
            await tts.aclose()
            await settle(voice)

    arun(main)


def test_language_sockets_are_lent_one_call_at_a_time_reused_and_bounded() -> None:
    # SocketPool: one socket per language_code URL, the borrowing call's alone until given
    # back; kept open for the next call in that language (no new handshake), at most per_url a
    # URL and total in all, closed once idle too long or at shutdown.
    from hotline.server.tts_multi import SocketPool

    async def main() -> None:
        async with TTSStandIn(FAST) as voice:
            base = config(voice)
            pool = SocketPool(lambda c: MultiTTS(c, label="x"), per_url=1, total=2, idle=0.5)
            es1 = pool.borrow(base.in_language("es"), "CA1")
            es2 = pool.borrow(base.in_language("es"), "CA2")  # CA1 still has its own
            assert es1 is not es2 and es1.label == "CA1"
            out = Collect()
            await es1.synthesize("Hola, gracias por llamar.", out, bad)
            assert isinstance(out.events[-1], TTSFinal) and out.audio
            pool.give_back(es1)
            pool.give_back(es2)  # a second idle Spanish socket: beyond per_url, the older goes
            assert pool.idle_sockets == 1 and pool.stats.closed == 1
            again = pool.borrow(base.in_language("es"), "CA3")
            assert again is es2 and pool.stats.lent_idle == 1  # reused: no handshake
            out = Collect()
            await again.synthesize("Otra vez.", out, bad)
            assert isinstance(out.events[-1], TTSFinal)
            es_connections = [r for r in voice.records if r.query.get("language_code") == "es"]
            assert len(es_connections) == 2  # es1, and es2 (used by two calls)
            assert {r.espeak_voice for r in es_connections} == {"es"}
            pool.give_back(again)
            for code in ("fr", "de"):  # three idle in all: beyond total, the oldest goes
                pool.give_back(pool.borrow(base.in_language(code), "CA4"))
            assert pool.idle_sockets == 2 and pool.stats.closed == 2
            await asyncio.sleep(0.8)  # idle too long: closed
            assert pool.idle_sockets == 0 and pool.stats.closed == 4
            pool.give_back(pool.borrow(base.in_language("it"), "CA5"))
            await pool.aclose()
            assert pool.idle_sockets == 0 and pool.stats.closed == 5
            await settle(voice)

    arun(main, 30)
