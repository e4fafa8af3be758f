"""A reply streamed token by token reaches the voice as one text, not a generation a word
(issue 19, D2), on both transports: the real app, the local voice (which buffers unflushed text
by ElevenLabs' chunk_length_schedule), a Twilio side in real time, a ConversationRelay app that
streams its reply as an LLM does.

Measured figures (first audio, heard time) are in ``benchmarks/bench_streamed_reply.py``; this
test holds the shape: pieces go without ``flush`` except the first, a sentence's end and the
end, and the streamed reply's audio is no longer than the same text's in one piece (it was
1.36 times as long when every word was its own generation)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
from collections.abc import AsyncIterator
from typing import Any

import pytest
from websockets.asyncio.server import ServerConnection, serve

from hotline.server.settings import ListenSettings
from tests.e2e.test_conversation import caller_says
from tests.support.aio import arun
from tests.support.server import Running, running_server
from tests.support.twilio import FakeTwilio

REPLY = "Wren plays Portland and Seattle in April. Tickets are online, see you there!"
TOKENS = re.findall(r"\s*\S+", REPLY)


async def _app(ws: ServerConnection) -> None:
    async for frame in ws:
        msg = json.loads(frame)
        if msg.get("type") != "prompt":
            continue
        if msg["voicePrompt"] == "one":
            await ws.send(json.dumps({"type": "text", "token": REPLY, "last": True}))
            continue
        if msg["voicePrompt"] == "pause":  # the app stops mid-sentence (a tool call, say)
            for token in ("Let ", "me ", "check ", "the ", "dates "):
                await ws.send(json.dumps({"type": "text", "token": token}))
                await asyncio.sleep(0.05)
            await asyncio.sleep(2.0)
            await ws.send(json.dumps({"type": "text", "token": "for you.", "last": True}))
            continue
        for token in TOKENS:
            await ws.send(json.dumps({"type": "text", "token": token}))
            await asyncio.sleep(0.02)
        await ws.send(json.dumps({"type": "text", "token": "", "last": True}))


@contextlib.asynccontextmanager
async def streaming_app() -> AsyncIterator[str]:
    async with serve(_app, "127.0.0.1", 0) as server:
        yield f"ws://127.0.0.1:{next(iter(server.sockets)).getsockname()[1]}/relay"


async def reply_audio(run: Running, tw: FakeTwilio, said: str) -> int:
    """µ-law bytes of the reply to ``said``, once its end mark is echoed."""
    before = len(tw.heard.frames)
    caller_says(run, tw, said)
    await tw.wait_for(lambda: len(tw.heard.frames) > before, 10)
    first_ms = tw.heard.frames[before][1]
    await tw.wait_for(
        lambda: any(n.endswith("-end") and ms > first_ms for n, ms in tw.heard.marks), 30
    )
    return sum(len(f) for _, _, f in tw.heard.frames[before:])


def streamed_texts(run: Running) -> list[dict[str, Any]]:
    """The text messages of the streamed reply, as the voice received them."""
    groups: dict[tuple[int, Any], list[dict[str, Any]]] = {}
    for record in run.voice.records:
        for msg in record.messages:
            if isinstance(msg.get("text"), str) and msg["text"].strip():
                groups.setdefault((record.number, msg.get("context_id")), []).append(msg)
    (texts,) = [g for g in groups.values() if len(g) > 3]  # the one-piece reply is one message
    return texts


@pytest.mark.parametrize("transport", ["multi", "single"])
def test_streamed_pieces_go_unflushed_and_sound_as_long_as_one_piece(transport: str) -> None:
    async def main() -> None:
        async with streaming_app() as url:
            listen = ListenSettings(stt="off", brain="relay", relay_url=url)
            async with running_server(listen=listen, elevenlabs_transport=transport) as run:
                tw = FakeTwilio(run)
                await tw.start()
                await tw.wait_for(lambda: run.hub.registry.get(tw.call_sid) is not None, 5)
                streamed = await reply_audio(run, tw, "stream")
                whole = await reply_audio(run, tw, "one")
                texts = streamed_texts(run)
                assert "".join(m["text"] for m in texts).split() == REPLY.split()
                flushed = [m["text"] for m in texts if m.get("flush")]
                # The first piece (first audio as soon as before), the first sentence's end,
                # and (unless a bare flush or the end message did it) the last piece.
                assert 2 <= len(flushed) <= 3, flushed
                assert flushed[0] == texts[0]["text"] and flushed[1].rstrip().endswith(".")
                assert len(texts) - len(flushed) >= 3
                assert streamed <= 1.05 * whole, (streamed, whole)
                await tw.hang_up()

    arun(main, 90)


@pytest.mark.parametrize("transport", ["multi", "single"])
def test_text_held_unflushed_is_voiced_when_the_app_pauses(transport: str) -> None:
    async def main() -> None:
        async with streaming_app() as url:
            listen = ListenSettings(stt="off", brain="relay", relay_url=url)
            async with running_server(listen=listen, elevenlabs_transport=transport) as run:
                tw = FakeTwilio(run)
                await tw.start()
                await tw.wait_for(lambda: run.hub.registry.get(tw.call_sid) is not None, 5)
                await reply_audio(run, tw, "pause")
                messages = [m for r in run.voice.records for m in r.messages]
                texts = [str(m.get("text", "")) for m in messages]
                later = next(i for i, t in enumerate(texts) if "for you" in t)
                # "me check the dates" went unflushed, then a bare flush voiced it while the
                # app was silent (before "for you." came), not 2 s later.
                bare = [
                    i
                    for i, m in enumerate(messages)
                    if m.get("flush") and not str(m.get("text", "")).strip()
                ]
                assert any(i < later for i in bare), messages
                await tw.hang_up()

    arun(main, 60)
