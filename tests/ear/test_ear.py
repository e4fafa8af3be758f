"""LocalEar against a plain websockets client: Scribe and Deepgram protocol conformance,
recognition of eSpeak caller phrases, bad input, auth, fault modes, and the CLI."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import signal
import subprocess
import sys
from typing import Any, TypeVar

import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from hotline.core.deepgram import DeepgramLive
from hotline.core.scribe import ScribeRealtime
from hotline.ear.config import EarConfig
from hotline.ear.phrases import PHRASES, phrase_ulaw
from hotline.ear.recognizer import Recognizer, RecognizerConfig, normalise
from hotline.ear.server import LocalEar, start_local_ear
from tests.support.aio import arun, wait_until

T = TypeVar("T")
SILENCE_1S = b"\xff" * 8000


def scribe_url(ear: LocalEar, **kw: Any) -> str:
    fault = kw.pop("fault", None)
    url = ScribeRealtime(**kw).url(ear.url)
    return url + (f"&hotline_fault={fault}" if fault else "")


async def recv_json(ws: ClientConnection, timeout: float = 10.0) -> dict[str, Any]:
    frame = await asyncio.wait_for(ws.recv(), timeout)
    assert isinstance(frame, str)
    msg = json.loads(frame)
    assert isinstance(msg, dict)
    return msg


async def until(ws: ClientConnection, kind: str, key: str = "message_type") -> dict[str, Any]:
    while True:
        msg = await recv_json(ws)
        if msg.get(key) == kind:
            return msg


async def drain(ws: ClientConnection, proto: ScribeRealtime | DeepgramLive) -> None:
    """Send what ``proto`` queued."""
    for message in proto.data_to_send():
        await ws.send(message)


def scribe_chunk(audio: bytes, commit: bool = False) -> str:
    """A Scribe ``input_audio_chunk`` message of 8 kHz µ-law."""
    return json.dumps(
        {
            "message_type": "input_audio_chunk",
            "audio_base_64": base64.b64encode(audio).decode(),
            "commit": commit,
            "sample_rate": 8000,
        }
    )


def chunks(data: bytes, n: int = 160) -> list[bytes]:
    return [data[i : i + n] for i in range(0, len(data), n)]


def words(text: str) -> str:
    return " ".join(normalise(text))


# -------------------------------------------------------------------------- recogniser


def test_recognizer_each_phrase_in_one_stream() -> None:
    rec = Recognizer(RecognizerConfig(keyterms=PHRASES))
    got = []
    for phrase in PHRASES:
        audio = SILENCE_1S[:4000] + phrase_ulaw(phrase) + SILENCE_1S
        for chunk in chunks(audio, 333):  # odd chunking: frames are cut internally
            got += [r.text for r in rec.feed(chunk) if type(r).__name__ == "Final"]
    assert got == [words(p) for p in PHRASES]
    assert rec.segments == len(PHRASES)
    assert rec.speech_seconds < rec.audio_seconds  # silence is not decoded


def test_recognizer_silence_decodes_nothing_and_manual_commit() -> None:
    rec = Recognizer(RecognizerConfig(keyterms=("goodbye",), vad=False))
    assert rec.feed(SILENCE_1S * 2) == []
    assert rec.speech_seconds == 0.0
    assert rec.commit().text == ""
    rec.feed(phrase_ulaw("Goodbye") + SILENCE_1S * 2)  # no VAD commit
    assert rec.in_segment
    assert rec.commit().text == "goodbye"


def test_recognizer_rejects_unspellable_keyterms() -> None:
    with pytest.raises(ValueError):
        Recognizer(RecognizerConfig(keyterms=("zzqxv",)))
    rec = Recognizer(RecognizerConfig(keyterms=("zzqxv", "merch")))
    assert rec.unknown_terms == 1 and rec.phrases == ("merch",)


def _finals(rec: Recognizer, ulaw: bytes) -> list[Any]:
    out = [r for r in rec.feed(ulaw) if type(r).__name__ == "Final"]
    return [*out, rec.commit()]


def test_the_grammar_ear_rates_only_finals_that_could_end_the_call() -> None:
    # The server passes its script's ending phrases: a final's rating is two more passes over
    # its audio on the turn's critical path, and only goodbye and handoff turns read it.
    rec = Recognizer(RecognizerConfig(keyterms=PHRASES, rate_phrases=("goodbye", "hang up")))
    finals = [
        f for f in _finals(rec, phrase_ulaw("What are the tour dates?") + SILENCE_1S) if f.text
    ]
    assert [f.text for f in finals] == ["what are the tour dates"]
    assert finals[0].confidence is None
    finals = [f for f in _finals(rec, phrase_ulaw("Goodbye") + SILENCE_1S) if f.text]
    assert [f.text for f in finals] == ["goodbye"]
    assert finals[0].confidence is not None and 0.0 <= finals[0].confidence <= 1.0
    # unset (an ear started on its own): every final is rated
    every = Recognizer(RecognizerConfig(keyterms=PHRASES))
    finals = [
        f for f in _finals(every, phrase_ulaw("What are the tour dates?") + SILENCE_1S) if f.text
    ]
    assert finals and finals[0].confidence is not None


# ------------------------------------------------------------------------------ Scribe


def test_scribe_session_recognises_and_timestamps() -> None:
    async def main() -> None:
        async with LocalEar() as ear:
            url = scribe_url(
                ear, keyterms=PHRASES, include_timestamps=True, vad_silence_threshold_secs=0.5
            )
            async with connect(url) as ws:
                started = await recv_json(ws)
                assert started["message_type"] == "session_started"
                assert started["config"]["audio_format"] == "ulaw_8000"
                assert started["config"]["vad_commit_strategy"] is True
                proto = ScribeRealtime(previous_text="hello")
                for c in chunks(phrase_ulaw("What are the tour dates?") + SILENCE_1S, 1600):
                    proto.send_audio(c)
                    await drain(ws, proto)
                committed = await until(ws, "committed_transcript")
                assert committed["text"] == "what are the tour dates"
                timed = await recv_json(ws)
                assert timed["message_type"] == "committed_transcript_with_timestamps"
                texts = [w["text"] for w in timed["words"] if w["type"] == "word"]
                assert texts == ["what", "are", "the", "tour", "dates"]
                # Scribe's words[].logprob: the final's confidence (an all-phone loop's ratio)
                rated = [w["logprob"] for w in timed["words"] if w["type"] == "word"]
                assert len(set(rated)) == 1 and -1.0 < rated[0] <= 0, rated
                assert ear.stats.commits == 1

    arun(main)


def test_scribe_manual_commit_and_partials() -> None:
    async def main() -> None:
        async with LocalEar() as ear:
            url = scribe_url(ear, keyterms=PHRASES, commit_strategy=_manual())
            async with connect(url) as ws:
                await until(ws, "session_started")
                proto = ScribeRealtime()
                for c in chunks(phrase_ulaw("Tell me about the new album") + SILENCE_1S * 2, 800):
                    proto.send_audio(c)
                    await drain(ws, proto)
                partial = await until(ws, "partial_transcript")
                # a partial is the best path so far: key-term words (mid-phrase it may still
                # be on another phrase of the grammar, e.g. "can" of "can you repeat that")
                vocabulary = {w for p in PHRASES for w in normalise(p)}
                assert partial["text"] and set(partial["text"].split()) <= vocabulary
                proto.commit()
                await drain(ws, proto)
                committed = await until(ws, "committed_transcript")
                assert committed["text"] == "tell me about the new album"

    arun(main)


def _manual() -> Any:
    from hotline.core.scribe import CommitStrategy

    return CommitStrategy.MANUAL


def test_scribe_bad_input_errors_do_not_end_the_session() -> None:
    async def main() -> None:
        async with LocalEar(EarConfig(max_chunk_bytes=1000)) as ear:
            async with connect(scribe_url(ear, keyterms=("goodbye",))) as ws:
                await until(ws, "session_started")
                bad: list[str | bytes] = [
                    "not json",
                    json.dumps({"message_type": "nope"}),
                    json.dumps({"message_type": "input_audio_chunk", "audio_base_64": 5}),
                    json.dumps({"message_type": "input_audio_chunk", "audio_base_64": "!!!"}),
                    json.dumps(
                        {"message_type": "input_audio_chunk", "audio_base_64": "", "sample_rate": 1}
                    ),
                    b"\x00binary",
                ]
                for frame in bad:
                    await ws.send(frame)
                    assert (await recv_json(ws))["message_type"] == "input_error"
                big = base64.b64encode(b"\xff" * 1001).decode()
                await ws.send(
                    json.dumps({"message_type": "input_audio_chunk", "audio_base_64": big})
                )
                assert (await recv_json(ws))["message_type"] == "chunk_size_exceeded"
                ok = base64.b64encode(b"\xff" * 160).decode()
                first = {"message_type": "input_audio_chunk", "audio_base_64": ok}
                await ws.send(json.dumps({**first, "previous_text": "context"}))
                await ws.send(json.dumps({**first, "previous_text": "again"}))
                err = await recv_json(ws)
                assert err["message_type"] == "input_error" and "previous_text" in err["error"]
                # still serving
                await ws.send(json.dumps({**first, "commit": True}))
                assert (await recv_json(ws))["message_type"] == "committed_transcript"
                assert ear.stats.input_errors == 8

    arun(main)


@pytest.mark.parametrize(
    "query",
    [
        "audio_format=mp3_44100",
        "model_id=",
        "commit_strategy=sometimes",
        "vad_silence_threshold_secs=9",
    ],
)
def test_scribe_bad_query_is_input_error_then_close(query: str) -> None:
    async def main() -> None:
        async with LocalEar() as ear:
            base = f"{ear.url}/v1/speech-to-text/realtime?model_id=scribe_v2_realtime&audio_format=ulaw_8000"
            async with connect(f"{base}&{query}") as ws:
                msg = await recv_json(ws)
                assert msg["message_type"] == "input_error"
                with pytest.raises(ConnectionClosed):
                    await asyncio.wait_for(ws.recv(), 5)
                assert ws.close_code == 1008

    arun(main)


def test_scribe_auth_and_refuse() -> None:
    async def main() -> None:
        async with LocalEar(EarConfig(api_key="secret")) as ear:
            for url, headers in (
                (scribe_url(ear), {}),
                (scribe_url(ear), {"xi-api-key": "wrong"}),
                (scribe_url(ear, fault="refuse"), {"xi-api-key": "secret"}),
            ):
                async with connect(url, additional_headers=headers) as ws:
                    assert (await recv_json(ws))["message_type"] == "auth_error"
                    with pytest.raises(ConnectionClosed):
                        await ws.recv()
                    assert ws.close_code == 1008
            async with connect(scribe_url(ear), additional_headers={"xi-api-key": "secret"}) as ws:
                assert (await recv_json(ws))["message_type"] == "session_started"
            async with connect(scribe_url(ear) + "&token=secret") as ws:
                assert (await recv_json(ws))["message_type"] == "session_started"
            with pytest.raises(InvalidStatus):
                async with connect(f"{ear.url}/v1/elsewhere"):
                    pass

    arun(main)


def test_scribe_faults_garbage_and_drop() -> None:
    async def main() -> None:
        async with LocalEar(EarConfig(drop_after_chunks=3)) as ear:
            async with connect(scribe_url(ear, fault="garbage")) as ws:
                await until(ws, "session_started")
                one = ScribeRealtime()
                one.send_audio(b"\xff" * 160)
                await drain(ws, one)
                assert await ws.recv() == "this is not json {"
                assert await ws.recv() == b"\x00\x01binary"
                assert (await recv_json(ws))["message_type"] == "surprise"
            async with connect(scribe_url(ear, fault="drop")) as ws:
                await until(ws, "session_started")
                with pytest.raises(ConnectionClosed):
                    for _ in range(10):
                        one = ScribeRealtime()
                        one.send_audio(b"\xff" * 160)
                        await drain(ws, one)
                        await asyncio.sleep(0.05)
                    await ws.recv()
            assert ear.stats.faults_injected == 2

    arun(main)


# ---------------------------------------------------------------------------- Deepgram


def test_deepgram_stand_in_protocol() -> None:
    async def main() -> None:
        async with LocalEar(EarConfig(api_key="dg")) as ear:
            proto = DeepgramLive(keyterms=PHRASES, endpointing_ms=500)
            url = proto.url(ear.url)
            with pytest.raises(InvalidStatus) as refused:
                async with connect(url, additional_headers=DeepgramLive.headers("bad")):
                    pass
            assert refused.value.response.status_code == 401
            async with connect(url, additional_headers=DeepgramLive.headers("dg")) as ws:
                audio = phrase_ulaw("Where can I buy merch?") + SILENCE_1S
                for c in chunks(audio, 800):
                    proto.send_audio(c)
                    await drain(ws, proto)
                started = await until(ws, "SpeechStarted", "type")
                assert started["timestamp"] > 0
                final = await until(ws, "Results", "type")
                while not final["is_final"]:
                    final = await until(ws, "Results", "type")
                assert final["speech_final"] is True
                alt = final["channel"]["alternatives"][0]
                assert alt["transcript"] == "where can i buy merch"
                assert [w["word"] for w in alt["words"]] == ["where", "can", "i", "buy", "merch"]
                assert (await recv_json(ws))["type"] == "UtteranceEnd"
                proto.keep_alive()
                await drain(ws, proto)
                for c in chunks(phrase_ulaw("Goodbye"), 800):
                    proto.send_audio(c)
                    await drain(ws, proto)
                proto.finalize()
                await drain(ws, proto)
                fin = await until(ws, "Results", "type")
                while not fin["is_final"]:
                    fin = await until(ws, "Results", "type")
                assert fin["from_finalize"] is True
                assert fin["channel"]["alternatives"][0]["transcript"] == "goodbye"
                proto.close_stream()
                await drain(ws, proto)
                meta = await until(ws, "Metadata", "type")
                assert meta["duration"] > 2.0
                with pytest.raises(ConnectionClosed):
                    await ws.recv()
                assert ws.close_code == 1000

    arun(main)


def test_deepgram_idle_close_net_0001_and_bad_query() -> None:
    async def main() -> None:
        async with LocalEar(EarConfig(idle_close_s=0.5)) as ear:
            async with connect(DeepgramLive().url(ear.url)) as ws:
                with pytest.raises(ConnectionClosed):
                    await asyncio.wait_for(ws.recv(), 5)
                assert ws.close_code == 1011 and ws.close_reason == "NET-0001"
            with pytest.raises(InvalidStatus) as bad:
                async with connect(f"{ear.url}/v1/listen?encoding=linear16&sample_rate=16000"):
                    pass
            assert bad.value.response.status_code == 400

    arun(main)


def test_deepgram_linear16_is_heard_like_mulaw() -> None:
    """Deepgram's ``encoding=linear16`` (what a client that decodes the line first sends, e.g.
    pipecat's Deepgram service): PCM in messages that split samples, heard as the µ-law is."""
    from urllib.parse import urlencode

    from hotline.codec import ulaw_decode

    async def main() -> None:
        async with LocalEar() as ear:
            query = urlencode(
                [("encoding", "linear16"), ("sample_rate", "8000"), ("interim_results", "true")]
                + [("keyterm", p) for p in PHRASES]
            )
            async with connect(f"{ear.url}/v1/listen?{query}") as ws:
                pcm = ulaw_decode(phrase_ulaw("Where can I buy merch?") + SILENCE_1S)
                for c in chunks(pcm, 1601):  # odd: every other message splits a sample
                    await ws.send(c)
                await ws.send(json.dumps({"type": "Finalize"}))
                final = await until(ws, "Results", "type")
                while not final["is_final"]:
                    final = await until(ws, "Results", "type")
                assert final["channel"]["alternatives"][0]["transcript"] == "where can i buy merch"
                await ws.send(json.dumps({"type": "CloseStream"}))
                meta = await until(ws, "Metadata", "type")
                assert meta["duration"] == pytest.approx(len(pcm) / 16000, abs=0.001)

    arun(main)


def test_a_stopping_ear_does_not_decode_what_a_gone_peer_left_queued() -> None:
    """A client that sends a minute of line noise at once and waits for nothing leaves it
    queued in the socket's buffers; the ear that is stopped then closes the connection and
    decodes at most the chunk in hand, not the backlog (it once took longer than the embedding
    server's 5 s grace and was killed)."""
    from hotline.sim.noise import line_noise

    async def main() -> tuple[int, int]:
        ear = await start_local_ear()
        noise = b"".join(line_noise(1000, dbfs=-20.0, seed=s) for s in range(60))
        try:
            async with connect(scribe_url(ear)) as ws:
                assert (await recv_json(ws))["message_type"] == "session_started"
                for c in chunks(noise, 800):
                    await ws.send(scribe_chunk(c))
                await wait_until(lambda: ear.stats.audio_bytes > 0, 30.0, "the ear to decode")
                await ear.stop()
        finally:
            await ear.stop()
        return ear.stats.audio_bytes, len(noise)

    decoded, sent = arun(main)
    assert 0 < decoded < sent // 4, (decoded, sent)


# --------------------------------------------------------------------------------- CLI


def test_cli_serves_and_stops() -> None:
    env = {**os.environ, "PYTHONPATH": os.getcwd()}
    proc = subprocess.Popen(
        [sys.executable, "-m", "hotline.ear", "--port", "0", "--keyterm", "goodbye"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        env=env,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert "/v1/speech-to-text/realtime" in line and "127.0.0.1" in line
        base = line.split()[3].rsplit("/v1/", 1)[0]

        async def main() -> None:
            async with connect(ScribeRealtime().url(base)) as ws:
                assert (await recv_json(ws))["message_type"] == "session_started"

        arun(main)
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(20) == 0
        if proc.stdout is not None:
            proc.stdout.close()


def test_start_helper() -> None:
    async def main() -> None:
        ear = await start_local_ear()
        try:
            assert ear.url.startswith("ws://127.0.0.1:")
        finally:
            await ear.stop()

    arun(main)
