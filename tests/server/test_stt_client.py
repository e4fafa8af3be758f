"""SttStream against the real local ear over real sockets: Scribe (local) and Deepgram paths,
every fixed phrase recognised, and the faults: refused, dropped mid-stream, garbage, nothing
listening. Nothing may raise into the caller."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import TypeVar

import pytest

from hotline.core.stt import SttCommitted, SttEvent, SttFailure, SttSessionStarted
from hotline.ear.config import EarConfig
from hotline.ear.phrases import PHRASES, phrase_ulaw
from hotline.ear.recognizer import normalise
from hotline.ear.server import LocalEar
from hotline.errors import ConfigError
from hotline.loopback import free_port
from hotline.server.stt_client import SttConfig, SttProvider, SttStatus, SttStream
from tests.support.aio import arun

T = TypeVar("T")
SILENCE_1S = b"\xff" * 8000


class Recorder:
    def __init__(self) -> None:
        self.events: list[SttEvent] = []
        self.changed = asyncio.Event()

    async def __call__(self, ev: SttEvent) -> None:
        self.events.append(ev)
        self.changed.set()

    def of(self, kind: type) -> list[SttEvent]:
        return [e for e in self.events if isinstance(e, kind)]

    def texts(self) -> list[str]:
        return [e.text for e in self.events if isinstance(e, SttCommitted)]

    async def wait(self, pred: Callable[[], bool], timeout: float = 30.0) -> None:
        async def loop() -> None:
            while not pred():  # status changes come without an event: poll too
                self.changed.clear()
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(self.changed.wait(), 0.05)

        await asyncio.wait_for(loop(), timeout)


async def speak(stream: SttStream, audio: bytes, *, pace: float = 0.0) -> None:
    """Feed like Twilio: 20 ms frames (faster than real time unless ``pace``)."""
    for i in range(0, len(audio), 160):
        stream.feed(audio[i : i + 160])
        await asyncio.sleep(pace)


def _words(text: str) -> str:
    return " ".join(normalise(text))


@pytest.mark.parametrize("provider", [SttProvider.LOCAL, SttProvider.DEEPGRAM])
def test_every_phrase_recognised(provider: SttProvider) -> None:
    async def main() -> None:
        async with LocalEar(EarConfig(api_key="k")) as ear:
            rec = Recorder()
            cfg = SttConfig(
                provider=provider, url=ear.url, api_key="k", keyterms=PHRASES, silence_ms=500
            )
            stream = SttStream(cfg, rec)
            stream.start()
            for phrase in PHRASES:
                n = len(rec.texts())
                await speak(stream, SILENCE_1S[:2400] + phrase_ulaw(phrase) + SILENCE_1S)
                await rec.wait(lambda n=n: len(rec.texts()) > n)  # type: ignore[misc]
            assert rec.texts() == [_words(p) for p in PHRASES]
            assert stream.status is SttStatus.LIVE
            assert isinstance(rec.events[0], SttSessionStarted)
            assert not rec.of(SttFailure)
            assert stream.stats.commits == len(PHRASES)
            assert stream.stats.audio_bytes_dropped == 0
            # The tail (less than one 100 ms message) goes once no whole message has filled.
            stats = stream.stats
            await rec.wait(lambda: stats.audio_bytes_sent == stats.audio_bytes_in, timeout=2.0)
            await stream.aclose()
            assert stream.status is SttStatus.CLOSED

    arun(main)


def test_manual_commit_local() -> None:
    async def main() -> None:
        async with LocalEar() as ear:
            rec = Recorder()
            cfg = SttConfig(url=ear.url, keyterms=PHRASES, silence_ms=3000)
            stream = SttStream(cfg, rec)
            stream.start()
            await speak(stream, phrase_ulaw("Can you repeat that?") + SILENCE_1S[:800])
            stream.commit()
            await rec.wait(lambda: bool(rec.texts()))
            assert rec.texts() == ["can you repeat that"]
            await stream.aclose()

    arun(main)


def test_deepgram_keepalive_holds_an_idle_stream_open() -> None:
    async def main() -> None:
        async with LocalEar(EarConfig(idle_close_s=0.6)) as ear:
            rec = Recorder()
            cfg = SttConfig(
                provider=SttProvider.DEEPGRAM, url=ear.url, keyterms=PHRASES, keepalive_s=0.2
            )
            stream = SttStream(cfg, rec)
            stream.start()
            await asyncio.sleep(2.0)  # > idle_close_s without audio
            assert stream.stats.keepalives >= 3
            assert stream.stats.drops == 0 and not rec.of(SttFailure)
            await speak(stream, phrase_ulaw("Goodbye") + SILENCE_1S)
            await rec.wait(lambda: bool(rec.texts()))
            assert rec.texts() == ["goodbye"]
            await stream.aclose()

    arun(main)


def test_refused_at_connect_scribe_auth_error() -> None:
    async def main() -> None:
        async with LocalEar(EarConfig(api_key="right")) as ear:
            rec = Recorder()
            stream = SttStream(SttConfig(url=ear.url, api_key="wrong", keyterms=PHRASES), rec)
            stream.start()
            stream.feed(b"\xff" * 800)
            await rec.wait(lambda: stream.status is SttStatus.FAILED)
            errors = rec.of(SttFailure)
            assert errors[0] == SttFailure(
                "auth_error", "You must be authenticated.", True, permanent=True
            )
            stream.feed(b"\xff" * 800)  # after failure: dropped, counted, no raise
            stream.commit()
            assert stream.stats.audio_bytes_dropped == 1600
            await stream.aclose()

    arun(main)


def test_refused_at_connect_deepgram_http_401() -> None:
    async def main() -> None:
        async with LocalEar(EarConfig(fault="refuse")) as ear:
            rec = Recorder()
            cfg = SttConfig(provider=SttProvider.DEEPGRAM, url=ear.url, api_key="k")
            stream = SttStream(cfg, rec)
            stream.start()
            await rec.wait(lambda: stream.status is SttStatus.FAILED)
            assert rec.of(SttFailure) == [
                SttFailure("refused", "handshake refused: HTTP 401", True, permanent=True)
            ]
            assert stream.stats.connect_failures == 1
            await stream.aclose()

    arun(main)


def test_nothing_listening_buffers_bounded_then_connects(caplog: pytest.LogCaptureFixture) -> None:
    async def main() -> None:
        port = free_port()
        rec = Recorder()
        cfg = SttConfig(
            url=f"ws://127.0.0.1:{port}",
            keyterms=PHRASES,
            buffer_ms=3000,
            backoff_s=0.05,
            backoff_max_s=0.2,
            silence_ms=500,
        )
        stream = SttStream(cfg, rec)
        stream.start()
        await speak(stream, b"\xff" * 8000 * 5)  # 5 s of audio into a 3 s buffer
        assert stream.buffered_bytes == 24_000
        assert stream.stats.audio_bytes_dropped == 16_000
        await rec.wait(lambda: len(rec.of(SttFailure)) >= 3)
        assert {e.kind for e in rec.of(SttFailure)} == {"connect_failed"}
        assert stream.status in (SttStatus.RECONNECTING, SttStatus.CONNECTING)
        ear = LocalEar()
        await ear.start(port=port)
        try:
            await rec.wait(lambda: stream.status is SttStatus.LIVE)
            await speak(stream, phrase_ulaw("Goodbye") + SILENCE_1S)
            await rec.wait(lambda: "goodbye" in rec.texts())
        finally:
            await stream.aclose()
            await ear.stop()

    with caplog.at_level(logging.WARNING, logger="hotline.stt"):
        arun(main)
    failures = [r for r in caplog.records if "connect failed" in r.getMessage()]
    assert len(failures) == 1  # logged once per failure kind


def test_dropped_mid_stream_reconnects_and_hears_again() -> None:
    async def main() -> None:
        async with LocalEar(EarConfig(fault="drop", drop_after_chunks=4)) as ear:
            rec = Recorder()
            cfg = SttConfig(url=ear.url, keyterms=PHRASES, backoff_s=0.05, chunk_ms=100)
            stream = SttStream(cfg, rec)
            stream.start()
            await speak(stream, SILENCE_1S * 3, pace=0.001)
            await rec.wait(lambda: stream.stats.drops >= 2)
            assert stream.stats.connects >= 2
            assert {e.kind for e in rec.of(SttFailure)} <= {"dropped", "connect_failed"}
            assert stream.buffered_bytes <= 24_000
        await stream.aclose()

    arun(main)


def test_drop_then_recover_on_a_healthy_server() -> None:
    async def main() -> None:
        ear = LocalEar(EarConfig())
        await ear.start()
        port = ear.port
        rec = Recorder()
        cfg = SttConfig(url=ear.url, keyterms=PHRASES, backoff_s=0.05, silence_ms=500)
        stream = SttStream(cfg, rec)
        stream.start()
        await rec.wait(lambda: stream.status is SttStatus.LIVE)
        await ear.stop()  # the server goes away mid-call
        await rec.wait(lambda: stream.stats.drops == 1)
        await speak(stream, SILENCE_1S[:2400] + phrase_ulaw("Where can I buy merch?") + SILENCE_1S)
        ear2 = LocalEar()
        await ear2.start(port=port)
        try:
            await rec.wait(lambda: "where can i buy merch" in rec.texts())
            assert rec.of(SttFailure)[0].kind == "dropped"
        finally:
            await stream.aclose()
            await ear2.stop()

    arun(main)


def test_garbage_from_server_is_counted_not_raised() -> None:
    async def main() -> None:
        async with LocalEar(EarConfig(fault="garbage")) as ear:
            for provider in (SttProvider.LOCAL, SttProvider.DEEPGRAM):
                rec = Recorder()
                cfg = SttConfig(provider=provider, url=ear.url, keyterms=PHRASES, silence_ms=500)
                stream = SttStream(cfg, rec)
                stream.start()
                await speak(stream, phrase_ulaw("Goodbye") + SILENCE_1S)
                await rec.wait(lambda r=rec: "goodbye" in r.texts())  # type: ignore[misc]
                assert stream.stats.protocol_errors == 3
                assert [e.kind for e in rec.of(SttFailure)] == ["protocol_error"] * 3
                await stream.aclose()

    arun(main)


def test_callback_errors_do_not_break_the_stream() -> None:
    async def main() -> None:
        async with LocalEar() as ear:
            seen: list[SttEvent] = []

            async def bad(ev: SttEvent) -> None:
                seen.append(ev)
                raise RuntimeError("caller bug")

            stream = SttStream(SttConfig(url=ear.url, keyterms=PHRASES, silence_ms=500), bad)
            stream.start()
            await speak(stream, phrase_ulaw("Goodbye") + SILENCE_1S)
            for _ in range(300):
                if any(isinstance(e, SttCommitted) for e in seen):
                    break
                await asyncio.sleep(0.05)
            assert any(isinstance(e, SttCommitted) and e.text == "goodbye" for e in seen)
            assert stream.stats.callback_errors >= 2
            await stream.aclose()

    arun(main)


def test_off_provider_and_config_validation() -> None:
    async def main() -> None:
        rec = Recorder()
        stream = SttStream(SttConfig(provider=SttProvider.OFF), rec)
        stream.start()
        stream.feed(b"\xff" * 160)
        stream.commit()
        await stream.aclose()
        assert stream.status is SttStatus.OFF and rec.events == []

    arun(main)
    with pytest.raises(ConfigError):
        SttConfig(provider=SttProvider.LOCAL, url="")
    with pytest.raises(ConfigError):
        SttConfig(url="ws://x", silence_ms=10)
    with pytest.raises(ConfigError):
        SttConfig(url="ws://x", buffer_ms=0)
