"""The stand-in's multi-stream-input accounting as ElevenLabs does it: a closed context that
was flushed goes on generating and counts toward the limit of five until its (late) final; a
sixth gets the real error text and a 1008 close; alignment is sometimes null and spelled
``charDurationsMs``; ``normalizedAlignment`` counts the normalised text's characters."""

from __future__ import annotations

import asyncio
import base64
import json
from typing import Any

from websockets.asyncio.client import connect

from hotline.tts_standin.server import StandInConfig, TTSStandIn
from hotline.tts_standin.session import MAX_CONTEXTS_MESSAGE
from hotline.tts_standin.textbuf import normalise_text
from tests.support.aio import arun
from tests.tts_standin.test_server import collect, path

FAST = StandInConfig(first_chunk_delay=0.05, realtime_factor=50.0, cache=False)
LINE = "Wren plays Portland on April 12 and Seattle on the 14th, then rests for 3 days."


def _chars(msgs: list[dict[str, Any]], key: str) -> str:
    return "".join("".join(m[key]["chars"]) for m in msgs if m.get(key))


def test_text_flush_close_back_to_back_speaks_the_whole_line() -> None:
    """What pipecat 1.14's ElevenLabs service sends: text, flush, close_context at once."""

    async def main() -> None:
        async with (
            TTSStandIn(StandInConfig(first_chunk_delay=0.05, realtime_factor=50.0)) as voice,
            connect(voice.url + path(kind="multi-stream-input", output_format="ulaw_8000")) as ws,
        ):
            await ws.send(json.dumps({"text": " ", "context_id": "p1"}))
            await ws.send(json.dumps({"text": LINE + " ", "context_id": "p1"}))
            await ws.send(json.dumps({"context_id": "p1", "flush": True}))
            await ws.send(json.dumps({"context_id": "p1", "close_context": True}))
            got: list[dict[str, Any]] = []
            while not got or not got[-1].get("isFinal"):
                got.append(json.loads(await asyncio.wait_for(ws.recv(), 10)))
            audio = [m for m in got if m.get("audio")]
            assert audio, "no audio: the close dropped a line that was already flushed"
            assert got[-1] == {"isFinal": True, "contextId": "p1"}  # after the last audio
            # The whole line: as much audio as the same line closed with flush (the reference).
            await ws.send(json.dumps({"text": " ", "context_id": "ref"}))
            await ws.send(json.dumps({"text": LINE + " ", "context_id": "ref"}))
            await ws.send(json.dumps({"context_id": "ref", "close_context": True, "flush": True}))
            ref: list[dict[str, Any]] = []
            while not ref or not ref[-1].get("isFinal"):
                ref.append(json.loads(await asyncio.wait_for(ws.recv(), 10)))
            heard = sum(len(base64.b64decode(m["audio"])) for m in audio)
            whole = sum(len(base64.b64decode(m["audio"])) for m in ref if m.get("audio"))
            assert whole > 8000 and abs(heard - whole) <= whole * 0.05, (heard, whole)
            assert voice.stats.errors_sent == 0

    arun(main)


def test_closed_contexts_count_until_final_and_a_sixth_gets_the_real_error() -> None:
    async def main() -> None:
        cfg = StandInConfig(first_chunk_delay=0.3, realtime_factor=4.0, cache=False)
        async with (
            TTSStandIn(cfg) as voice,
            connect(voice.url + path(kind="multi-stream-input")) as ws,
        ):
            for i in range(5):  # five flushed lines, closed at once (a barge-in storm)
                await ws.send(json.dumps({"text": " ", "context_id": f"c{i}"}))
                await ws.send(
                    json.dumps({"text": f"Line {i} says something.", "context_id": f"c{i}"})
                )
                await ws.send(json.dumps({"context_id": f"c{i}", "flush": True}))
                await ws.send(json.dumps({"context_id": f"c{i}", "close_context": True}))
            await ws.send(json.dumps({"text": " ", "context_id": "c5"}))  # a sixth: too many
            msgs = await collect(ws, 10)
            error = msgs[-1]
            assert error["error"] == "max_active_conversations" and error["code"] == 1008
            assert error["message"] == MAX_CONTEXTS_MESSAGE.format(n=5)
            assert error["message"].startswith(
                "Maximum simultaneous contexts per WebSocket connection exceeded (5)."
            )
            assert ws.close_code == 1008

    arun(main)


def test_a_slot_frees_when_the_closed_contexts_final_has_come() -> None:
    async def main() -> None:
        async with (
            TTSStandIn(FAST) as voice,
            connect(voice.url + path(kind="multi-stream-input")) as ws,
        ):
            for i in range(5):
                await ws.send(json.dumps({"text": " ", "context_id": f"c{i}"}))
                await ws.send(json.dumps({"text": "Short.", "context_id": f"c{i}"}))
                await ws.send(json.dumps({"context_id": f"c{i}", "flush": True}))
                await ws.send(json.dumps({"context_id": f"c{i}", "close_context": True}))
            finals: set[str] = set()
            while len(finals) < 5:
                m = json.loads(await asyncio.wait_for(ws.recv(), 10))
                if m.get("isFinal"):
                    finals.add(m["contextId"])
            await ws.send(json.dumps({"text": " ", "context_id": "c5"}))  # room again
            await ws.send(json.dumps({"text": "Sixth.", "context_id": "c5", "flush": True}))
            m = json.loads(await asyncio.wait_for(ws.recv(), 10))
            assert m.get("audio") and m["contextId"] == "c5"
            assert voice.stats.errors_sent == 0

    arun(main)


def test_alignment_spelling_nulls_and_normalised_characters() -> None:
    async def main() -> None:
        cfg = StandInConfig(first_chunk_delay=0.05, realtime_factor=50.0, null_alignment=0.3)
        async with (
            TTSStandIn(cfg) as voice,
            connect(voice.url + path(kind="multi-stream-input")) as ws,
        ):
            await ws.send(json.dumps({"text": " ", "context_id": "a"}))
            for _ in range(3):
                await ws.send(json.dumps({"text": LINE + " ", "context_id": "a"}))
            await ws.send(json.dumps({"context_id": "a", "close_context": True, "flush": True}))
            await ws.send(json.dumps({"close_socket": True, "flush": True}))
            audio = [m for m in await collect(ws) if m.get("audio")]
            nulls = [m for m in audio if m["alignment"] is None and not m["normalizedAlignment"]]
            assert nulls, "alignment is never null"
            for m in audio:
                for key in ("alignment", "normalizedAlignment"):
                    if m[key] is not None:
                        assert set(m[key]) == {"chars", "charStartTimesMs", "charDurationsMs"}
            assert "12" in _chars(audio, "alignment") or "1" in _chars(audio, "alignment")
            normalised = _chars(audio, "normalizedAlignment")
            assert "twelve" in normalise_text(LINE) and "12" not in normalised
            assert "twelve" in normalised or "three" in normalised
            del voice

    arun(main)
