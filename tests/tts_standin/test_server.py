"""TTSStandIn against a plain websockets client: ElevenLabs protocol conformance, real eSpeak +
encoders + the codec on the audio, every fault mode, auth, and a clean stop."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import random
import signal
import subprocess
import sys
from typing import Any, TypeVar

import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, ConnectionClosedError, InvalidStatus

from hotline.codec import Transcoder, ulaw_frame_stats
from hotline.tts_standin.server import FAULT_MODES, StandInConfig, TTSStandIn
from hotline.tts_standin.textbuf import TextBuffer, bytes_per_second, chunk_alignments, cut_chunks
from tests.support import marks
from tests.support.aio import arun

T = TypeVar("T")
FAST = StandInConfig(first_chunk_delay=0.05, realtime_factor=50.0)
TEXT = "Hello there, this is the local voice. It speaks in short sentences. "
AUDIO_KEYS = {"audio", "isFinal", "normalizedAlignment", "alignment"}


def speech_frames(ulaw: bytes) -> int:
    return sum(
        1 for i in range(0, len(ulaw) - 159, 160) if ulaw_frame_stats(ulaw[i : i + 160])[0] > -40.0
    )


def path(voice_id: str = "voice1", kind: str = "stream-input", **query: str) -> str:
    q = {"model_id": "eleven_flash_v2_5", "output_format": "mp3_44100_128", **query}
    return f"/v1/text-to-speech/{voice_id}/{kind}?" + "&".join(f"{k}={v}" for k, v in q.items())


async def collect(ws: ClientConnection, limit: float = 20.0) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []

    async def loop() -> None:
        try:
            async for raw in ws:
                assert isinstance(raw, str), "ElevenLabs sends text frames only"
                out.append(json.loads(raw))
        except ConnectionClosed:
            pass

    await asyncio.wait_for(loop(), limit)
    return out


async def speak(
    voice: TTSStandIn, text: str = TEXT, *, voice_id: str = "voice1", **query: str
) -> tuple[list[dict[str, Any]], ClientConnection]:
    async with connect(voice.url + path(voice_id, **query)) as ws:
        await ws.send(
            json.dumps({"text": " ", "voice_settings": {"stability": 0.5, "similarity_boost": 0.8}})
        )
        await ws.send(json.dumps({"text": text}))
        await ws.send(json.dumps({"text": ""}))
        msgs = await collect(ws)
    return msgs, ws


async def settle(voice: TTSStandIn) -> None:
    """Wait until the server side of every connection has finished (it ends just after the client sees the close)."""
    for _ in range(250):
        if voice.stats.open_connections == 0:
            return
        await asyncio.sleep(0.02)
    raise AssertionError("server connections did not finish")


def audio_of(msgs: list[dict[str, Any]]) -> bytes:
    return b"".join(base64.b64decode(m["audio"]) for m in msgs if m.get("audio"))


# -- pure helpers ----------------------------------------------------------------------------------


def test_text_buffer_follows_schedule_and_cuts_at_sentences() -> None:
    buf = TextBuffer((50, 80))
    assert buf.add("Short words only ") == []
    segs = buf.add("and then a full stop. After that more words keep coming in here ")
    assert len(segs) == 1 and segs[0].endswith("stop. ")
    assert buf.pending.startswith("After")
    assert buf.flush().startswith("After") and buf.pending == ""
    assert buf.flush() == ""  # nothing speakable left


def test_text_buffer_never_splits_a_word_and_try_trigger() -> None:
    buf = TextBuffer((60,))
    segs = buf.add("a" * 10 + " " + "b" * 70)
    assert segs == [] or all(not s.endswith("b") or s.endswith(" ") for s in segs[:-1])
    buf2 = TextBuffer((300,))
    assert buf2.add("word " * 11, try_trigger=True) != []  # >= 50 chars
    assert TextBuffer((300,)).add("word " * 5, try_trigger=True) == []


def test_cut_chunks_and_alignment() -> None:
    data = bytes(range(256)) * 100
    chunks = cut_chunks(data, random.Random(1), 1000, 3000)
    assert b"".join(chunks) == data and len({len(c) for c in chunks}) > 3
    al = chunk_alignments("hello world", 1000.0, [300.0, 300.0, 400.0])
    assert all(a is not None for a in al)
    assert sum(len(a.chars) for a in al if a) == len("hello world")
    assert bytes_per_second("mp3_44100_128") == 16000 and bytes_per_second("pcm_16000") == 32000


# -- protocol conformance --------------------------------------------------------------------------


def test_stream_input_speaks_then_final_then_close() -> None:
    async def main() -> None:
        async with TTSStandIn(FAST) as voice:
            msgs, ws = await speak(voice)
            assert ws.close_code == 1000
            audio_msgs = [m for m in msgs if m.get("audio")]
            assert len(audio_msgs) >= 3
            for m in audio_msgs:
                assert set(m) == AUDIO_KEYS and m["isFinal"] is False
                al = m["alignment"]
                if al is not None:
                    assert set(al) == {"chars", "charStartTimesMs", "charDurationsMs"}
                    assert (
                        len(al["chars"])
                        == len(al["charStartTimesMs"])
                        == len(al["charDurationsMs"])
                    )
            assert msgs[-1]["isFinal"] is True and msgs[-1]["audio"] is None
            assert sum(1 for m in msgs if m.get("isFinal")) == 1
            sizes = [len(base64.b64decode(m["audio"])) for m in audio_msgs]
            assert len(set(sizes)) > 2  # random sizes
            # not cut at MP3 frame starts (a frame header starts 0xFF 0xFB for MPEG-1 layer III)
            assert (
                sum(1 for m in audio_msgs[1:] if base64.b64decode(m["audio"])[:2] == b"\xff\xfb")
                < len(audio_msgs) - 1
            )
            ulaw = Transcoder("mp3_44100_128").feed(audio_of(msgs))
            assert len(ulaw) > 8000 * 1.5 and speech_frames(ulaw) > 40
            await settle(voice)
            assert voice.stats.finals_sent == 1 and voice.stats.utterances == 1
            rec = voice.records[-1]
            assert rec.closed_by == "server" and rec.model_id == "eleven_flash_v2_5"
            assert rec.messages[0]["text"] == " "

    arun(main)


@pytest.mark.parametrize(
    "fmt", ["ulaw_8000", "alaw_8000", "pcm_16000", "pcm_22050", "mp3_22050_32"]
)
def test_every_format_decodes_to_speech(fmt: str) -> None:
    async def main() -> None:
        async with TTSStandIn(FAST) as voice:
            msgs, _ = await speak(voice, "Testing one two three. ", output_format=fmt)
            t = Transcoder(fmt)
            ulaw = t.feed(audio_of(msgs)) + t.flush()
            assert speech_frames(ulaw) > 20, fmt

    arun(main)


def test_first_chunk_delay_and_schedule_generation_before_eos() -> None:
    async def main() -> None:
        cfg = StandInConfig(first_chunk_delay=0.4, realtime_factor=50.0)
        async with TTSStandIn(cfg) as voice, connect(voice.url + path()) as ws:
            await ws.send(
                json.dumps({"text": " ", "generation_config": {"chunk_length_schedule": [50]}})
            )
            loop = asyncio.get_running_loop()
            t0 = loop.time()
            await ws.send(
                json.dumps(
                    {"text": "This sentence is long enough to pass fifty characters. And more "}
                )
            )
            first = json.loads(
                await asyncio.wait_for(ws.recv(), 10)
            )  # no flush, no EOS: the schedule fired
            assert first.get("audio") and loop.time() - t0 >= 0.38
            await ws.send(json.dumps({"text": ""}))
            rest = await collect(ws)
            assert rest[-1]["isFinal"] is True

    arun(main)


def test_flush_generates_and_keeps_socket_open() -> None:
    async def main() -> None:
        async with TTSStandIn(FAST) as voice, connect(voice.url + path()) as ws:
            await ws.send(json.dumps({"text": " "}))
            await ws.send(json.dumps({"text": "Hi. ", "flush": True}))
            first = json.loads(await asyncio.wait_for(ws.recv(), 10))
            assert first.get("audio") and first["isFinal"] is False
            await ws.send(json.dumps({"text": " "}))  # keep-alive
            await ws.send(json.dumps({"text": "Bye. "}))
            await ws.send(json.dumps({"text": ""}))
            rest = await collect(ws)
            assert rest[-1]["isFinal"] is True and ws.close_code == 1000

    arun(main)


def test_inactivity_timeout_is_elevenlabs_error_then_1008() -> None:
    async def main() -> None:
        async with (
            TTSStandIn(FAST) as voice,
            connect(voice.url + path(inactivity_timeout="1")) as ws,
        ):
            await ws.send(json.dumps({"text": " "}))
            msgs = await collect(ws, 5)
            assert msgs == [
                {
                    "message": "Have not received a new text input within the timeout of 1.0 seconds. "
                    "Streaming input terminated. Please make sure to send a text message at least every 1.0 seconds.",
                    "error": "input_timeout_exceeded",
                    "code": 1008,
                }
            ]
            await settle(voice)
            assert ws.close_code == 1008 and voice.stats.timeouts == 1

    arun(main)


@pytest.mark.parametrize(
    "messages",
    [
        ["not json"],
        [b"\x00\x01binary"],
        ['{"text": "Hello "}'],  # first message must be the " " initialisation
        [
            '{"text": " "}',
            '{"text": "Hi ", "voice_settings": {"stability": 0.5}}',
        ],  # first-only field
        ['{"text": " "}', '{"text": 5}'],
        ['{"text": " "}', '["a list"]'],
        ['{"text": " ", "generation_config": {"chunk_length_schedule": [5]}}'],
    ],
)
def test_invalid_message_is_invalid_input_message_then_1008(messages: list[str | bytes]) -> None:
    async def main() -> None:
        async with TTSStandIn(FAST) as voice, connect(voice.url + path()) as ws:
            for m in messages:
                await ws.send(m)
            msgs = await collect(ws, 5)
            assert len(msgs) == 1 and set(msgs[0]) == {"message", "error", "code"}
            assert msgs[0]["error"] == "invalid_input_message" and msgs[0]["code"] == 1008
            await settle(voice)
            assert ws.close_code == 1008 and voice.stats.invalid_messages == 1

    arun(main)


def test_unsupported_output_format_is_an_error() -> None:
    async def main() -> None:
        async with (
            TTSStandIn(FAST) as voice,
            connect(voice.url + path(output_format="flac_44100")) as ws,
        ):
            msgs = await collect(ws, 5)
            assert msgs[0]["code"] == 1008 and "output_format" in msgs[0]["message"]
            assert ws.close_code == 1008

    arun(main)


def test_language_code_picks_that_language_voice() -> None:
    # ElevenLabs' language_code query parameter (a [relay] ttsLanguage): eSpeak NG's voice of
    # that language speaks; English keeps en-us; one eSpeak lacks is refused like a bad format.
    text = "Hola, gracias por llamar. Los conciertos son en abril. "

    async def main() -> tuple[bytes, bytes, list[dict[str, Any]]]:
        async with TTSStandIn(FAST) as voice:
            spanish, _ = await speak(voice, text, language_code="es")
            english, _ = await speak(voice, text, language_code="en")
            async with connect(voice.url + path(language_code="xq")) as ws:
                refused = await collect(ws, 5)
        return audio_of(spanish), audio_of(english), refused

    spanish, english, refused = arun(main)
    assert spanish and english and spanish != english
    assert refused[0]["code"] == 1008 and "language_code" in refused[0]["message"]


def test_language_code_is_refused_by_models_without_language_enforcement() -> None:
    # ElevenLabs: "Currently only Turbo v2.5 and Flash v2.5 support language enforcement. For
    # other models, an error will be returned if language code is provided." The record says
    # which eSpeak voice spoke on each connection.
    async def main() -> None:
        async with TTSStandIn(FAST) as voice:
            for model in ("eleven_multilingual_v2", "eleven_flash_v2"):
                url = voice.url + path(model_id=model, language_code="es")
                async with connect(url) as ws:
                    refused = await collect(ws, 5)
                assert refused[0]["code"] == 1008, refused
                assert "language" in refused[0]["message"] and model in refused[0]["message"]
            for model in ("eleven_turbo_v2_5", "eleven_flash_v2_5"):
                await speak(voice, "Bonjour. ", model_id=model, language_code="fr")
            async with connect(voice.url + path(model_id="eleven_multilingual_v2")) as ws:
                await ws.close()  # without language_code: any model
            await settle(voice)
            voices = [
                (r.query.get("model_id"), r.espeak_voice, r.error_sent) for r in voice.records
            ]
            assert voices[2:] == [
                ("eleven_turbo_v2_5", "fr", None),
                ("eleven_flash_v2_5", "fr", None),
                ("eleven_multilingual_v2", "en-us", None),
            ]

    arun(main)


def test_api_key_and_paths() -> None:
    async def main() -> None:
        async with TTSStandIn(
            StandInConfig(api_key="sekrit", first_chunk_delay=0.01, realtime_factor=50)
        ) as voice:
            for headers in ({}, {"xi-api-key": "wrong"}):
                with pytest.raises(InvalidStatus) as info:
                    async with connect(voice.url + path(), additional_headers=headers):
                        pass
                assert info.value.response.status_code == 401
            with pytest.raises(InvalidStatus) as info:
                async with connect(
                    voice.url + "/v1/other", additional_headers={"xi-api-key": "sekrit"}
                ):
                    pass
            assert info.value.response.status_code == 404
            async with connect(
                voice.url + path(), additional_headers={"xi-api-key": "sekrit"}
            ) as ws:
                await ws.send(json.dumps({"text": " "}))
                await ws.send(json.dumps({"text": "Okay. "}))
                await ws.send(json.dumps({"text": ""}))
                assert (await collect(ws))[-1]["isFinal"] is True
            assert voice.stats.rejected_handshakes == 3

    arun(main)


# -- multi-stream-input ----------------------------------------------------------------------------


def test_multi_stream_input_contexts() -> None:
    async def main() -> None:
        async with (
            TTSStandIn(FAST) as voice,
            connect(voice.url + path(kind="multi-stream-input")) as ws,
        ):
            await ws.send(
                json.dumps({"text": " ", "context_id": "a", "voice_settings": {"speed": 1.0}})
            )
            await ws.send(json.dumps({"text": " ", "context_id": "b"}))
            await ws.send(json.dumps({"text": "", "context_id": "a"}))  # keep-alive, not a close
            await ws.send(
                json.dumps({"text": "First context speaks. ", "context_id": "a", "flush": True})
            )
            got: list[dict[str, Any]] = []
            while not got or "a" not in {m.get("contextId") for m in got}:
                got.append(json.loads(await asyncio.wait_for(ws.recv(), 10)))
            await ws.send(
                json.dumps({"text": "Second context would say a lot. ", "context_id": "b"})
            )
            await ws.send(
                json.dumps({"context_id": "b", "close_context": True})
            )  # no flush: nothing
            await ws.send(json.dumps({"context_id": "a", "close_context": True, "flush": True}))
            await ws.send(json.dumps({"close_socket": True, "flush": True}))
            got += await collect(ws)
            assert ws.close_code == 1000
            assert all("contextId" in m for m in got)
            b_msgs = [m for m in got if m["contextId"] == "b"]
            assert b_msgs == [{"isFinal": True, "contextId": "b"}]
            a_msgs = [m for m in got if m["contextId"] == "a"]
            assert a_msgs[-1] == {"isFinal": True, "contextId": "a"}
            audio = audio_of(a_msgs)
            assert speech_frames(Transcoder("mp3_44100_128").feed(audio)) > 20
            await settle(voice)
            assert voice.stats.contexts_closed == 2

    arun(main)


def test_multi_stream_input_context_limit() -> None:
    async def main() -> None:
        async with (
            TTSStandIn(FAST) as voice,
            connect(voice.url + path(kind="multi-stream-input")) as ws,
        ):
            for i in range(6):
                await ws.send(json.dumps({"text": " ", "context_id": f"c{i}"}))
            msgs = await collect(ws, 5)
            assert msgs[-1]["code"] == 1008 and ws.close_code == 1008

    arun(main)


# -- faults ----------------------------------------------------------------------------------------


async def _fault_run(
    mode: str, how: str
) -> tuple[list[dict[str, Any]], ClientConnection | None, TTSStandIn, float]:
    cfg = StandInConfig(
        first_chunk_delay=0.05,
        realtime_factor=50.0,
        slow_first_chunk_s=1.0,
        idle_close_s=0.5,
        fault=mode if how == "config" else None,
    )
    voice_id = f"fault-{mode}" if how == "voice_id" else "voice1"
    query = {"hotline_fault": mode} if how == "query" else {}
    voice = TTSStandIn(cfg)
    await voice.start()
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    msgs: list[dict[str, Any]] = []
    try:
        async with connect(voice.url + path(voice_id, **query)) as ws:
            await ws.send(json.dumps({"text": " "}))
            if mode == "idle_close":
                msgs = await collect(ws, 5)
                return msgs, ws, voice, loop.time() - t0
            await ws.send(json.dumps({"text": TEXT + "And a third sentence for more chunks. "}))
            await ws.send(json.dumps({"text": ""}))
            if mode == "no_final":
                with pytest.raises(asyncio.TimeoutError):
                    await collect(ws, 2.5)
                return msgs, ws, voice, loop.time() - t0
            try:
                async for raw in ws:
                    msgs.append(json.loads(raw))
            except ConnectionClosedError:
                if ws.protocol.close_rcvd is None:  # no close frame: the TCP connection was dropped
                    msgs.append({"_reset": True})
            return msgs, ws, voice, loop.time() - t0
    finally:
        await voice.stop()


@pytest.mark.parametrize("how", ["config", "voice_id", "query"])
def test_fault_error_1008(how: str) -> None:
    msgs, ws, voice, _ = arun(lambda: _fault_run("error_1008", how))
    assert ws is not None and ws.close_code == 1008
    assert sum(1 for m in msgs if m.get("audio")) == 2  # fault_after_chunks
    assert msgs[-1]["code"] == 1008 and "error" in msgs[-1] and "audio" not in msgs[-1]
    assert not any(m.get("isFinal") for m in msgs)
    assert voice.stats.faults_injected == 1


def test_fault_reset_mid_chunk() -> None:
    msgs, ws, _voice, _ = arun(lambda: _fault_run("reset_mid_chunk", "voice_id"))
    assert msgs[-1] == {"_reset": True} and sum(1 for m in msgs if m.get("audio")) == 2
    assert ws is not None and ws.close_code == 1006  # no close frame: the TCP connection was reset


def test_fault_corrupt_audio() -> None:
    clean, _, _, _ = arun(lambda: _fault_run("no_such", "none"))
    bad, ws, voice, _ = arun(lambda: _fault_run("corrupt_audio", "query"))
    assert ws is not None and ws.close_code == 1000 and bad[-1]["isFinal"] is True
    a, b = audio_of(clean), audio_of(bad)
    assert len(a) == len(b) and a != b and voice.stats.faults_injected >= 1


def test_fault_no_final() -> None:
    _msgs, ws, voice, _ = arun(lambda: _fault_run("no_final", "voice_id"))
    assert ws is not None and voice.stats.finals_sent == 0 and voice.stats.audio_messages > 0


def test_fault_slow_first_chunk() -> None:
    msgs, _, _, elapsed = arun(lambda: _fault_run("slow_first_chunk", "query"))
    assert msgs[-1]["isFinal"] is True and elapsed >= 1.0


@marks.wall_clock  # closes within 3 s of wall time
def test_fault_idle_close() -> None:
    msgs, ws, _, elapsed = arun(lambda: _fault_run("idle_close", "config"))
    assert ws is not None and ws.close_code == 1008
    assert msgs[0]["error"] == "input_timeout_exceeded" and elapsed < 3.0


def test_fault_refuse_handshake_and_unknown_fault() -> None:
    async def main() -> None:
        async with TTSStandIn(FAST) as voice:
            for p, status in (
                (path("fault-refuse_handshake"), 401),
                (path(hotline_fault="bogus"), 400),
            ):
                with pytest.raises(InvalidStatus) as info:
                    async with connect(voice.url + p):
                        pass
                assert info.value.response.status_code == status

    arun(main)
    assert set(FAULT_MODES) == {
        "error_1008",
        "reset_mid_chunk",
        "corrupt_audio",
        "no_final",
        "slow_first_chunk",
        "idle_close",
        "refuse_handshake",
    }


# -- lifecycle -------------------------------------------------------------------------------------


def test_client_close_is_counted_and_stop_leaves_nothing() -> None:
    async def main() -> None:
        before = asyncio.all_tasks()
        voice = TTSStandIn(StandInConfig(first_chunk_delay=0.05, realtime_factor=1.0))
        await voice.start()
        port = voice.port
        async with connect(voice.url + path()) as ws:  # barge-in: the client closes mid-utterance
            await ws.send(json.dumps({"text": " "}))
            await ws.send(json.dumps({"text": TEXT}))
            await ws.send(json.dumps({"text": ""}))
            await asyncio.wait_for(ws.recv(), 10)
        await settle(voice)
        assert voice.stats.closes_by_client == 1 and voice.records[-1].closed_by == "client"
        ws2 = await connect(voice.url + path())  # left open mid-utterance at stop()
        await ws2.send(json.dumps({"text": " "}))
        await ws2.send(json.dumps({"text": TEXT}))
        await ws2.send(json.dumps({"text": ""}))
        await asyncio.wait_for(ws2.recv(), 10)
        await voice.stop()
        with pytest.raises(ConnectionClosed):
            while True:
                await asyncio.wait_for(ws2.recv(), 5)
        assert ws2.close_code == 1001
        assert voice.stats.open_connections == 0
        assert {t for t in asyncio.all_tasks() if not t.done()} == before
        with pytest.raises(OSError):
            await asyncio.open_connection("127.0.0.1", port)

    arun(main)


def test_cli_serves_and_stops_on_sigint() -> None:
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "hotline",
            "tts-standin",
            "--port",
            "0",
            "--first-chunk-delay",
            "0.01",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert "ws://127.0.0.1:" in line
        url = line.split()[3].split("/v1/")[0]

        async def main() -> None:
            async with connect(url + path()) as ws:
                await ws.send(json.dumps({"text": " "}))
                await ws.send(json.dumps({"text": "Yes. "}))
                await ws.send(json.dumps({"text": ""}))
                assert (await collect(ws))[-1]["isFinal"] is True

        arun(main)
        proc.send_signal(signal.SIGINT)
        assert proc.wait(10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate()


def test_multi_stream_input_context_and_socket_inactivity() -> None:
    async def main() -> None:
        async with TTSStandIn(FAST) as voice:
            url = voice.url + path(kind="multi-stream-input", inactivity_timeout="1")
            async with connect(url) as ws:
                await ws.send(json.dumps({"text": " ", "context_id": "a"}))
                first = json.loads(await asyncio.wait_for(ws.recv(), 5))
                assert first["error"] == "input_timeout_exceeded" and first["contextId"] == "a"
                rest = await collect(ws, 5)  # then, with no context left, the socket times out
                assert rest[-1]["error"] == "input_timeout_exceeded" and "contextId" not in rest[-1]
                assert ws.close_code == 1008
            await settle(voice)
            assert voice.stats.timeouts == 2

    arun(main)


@pytest.mark.parametrize("fmt", ["mp3_44100_128", "pcm_16000"])
def test_synth_cache_is_byte_identical_to_one_continuous_encoder(fmt: str) -> None:
    from hotline.tts_standin.encode import Encoder
    from hotline.tts_standin.synth import StreamSynth, clear_caches, speech_pcm

    clear_caches()
    s1 = StreamSynth(fmt)
    a1 = s1.generate("First part of it. ", end=False).audio
    s1.generate("Second part. ", end=True)
    s2 = StreamSynth(fmt)
    a2 = s2.generate("First part of it. ", end=False).audio  # a cache hit
    c2 = s2.generate(
        "A different ending. ", end=True
    ).audio  # a miss: the encoder is rebuilt by replay
    assert a2 == a1
    pa, pc = (
        speech_pcm("First part of it. ", "en-us", 175),
        speech_pcm("A different ending. ", "en-us", 175),
    )
    enc = Encoder(fmt, pa.sample_rate)
    ref_a = enc.feed(pa.samples)
    ref_c = enc.feed(pc.samples) + enc.flush()
    assert (a2, c2) == (ref_a, ref_c)
    s3 = StreamSynth(fmt, cache=False)  # the cache off: same shape of output
    assert s3.generate("Third. ", end=True).audio
