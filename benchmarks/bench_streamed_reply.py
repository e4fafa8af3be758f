"""A ConversationRelay app's reply streamed token by token against the same text sent in one
piece: how long the caller hears it and how soon its first audio comes (issue 19, D2).

    python -m benchmarks.bench_streamed_reply [--runs 3] [--token-delay 0.02] [--json]

The real app in-process on uvicorn with ``HOTLINE_BRAIN=relay`` and the shipped defaults (the
local voice, its shipped first-chunk delay, the multi-context transport), a Twilio side playing
in real time (``tests.support.twilio.FakeTwilio``), and a ConversationRelay app on loopback that
answers a prompt with :data:`REPLY` either as one ``text`` (``last: true``) or as LLM-like
tokens (each word with its leading space, ``--token-delay`` apart, then ``last: true``).

Per reply, from the moment the caller's turn is handed over: ``first_audio_s`` (the first reply
frame reaches Twilio), ``audio_s`` (the reply's µ-law received / 8000) and ``heard_s`` (Twilio's
media clock from the first reply frame to the reply's end mark: what the caller hears, gaps
included). The ratio is streamed / one piece. Runs against any tree with the same tests helpers:
``PYTHONPATH=/work/main python benchmarks/bench_streamed_reply.py`` measures that tree.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import json
import re
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from websockets.asyncio.server import ServerConnection, serve

from benchmarks.common import versions
from hotline.server.settings import ListenSettings, Settings
from tests.e2e.test_conversation import caller_says
from tests.support.server import running_server
from tests.support.twilio import FakeTwilio

REPLY = (
    "Wren is on the road this spring: Portland on April twelfth, Seattle on the fourteenth, "
    "and Vancouver on the sixteenth. Tickets are at wren calloway dot com, and every show is "
    "all ages. The new record is out now wherever you stream music."
)
TOKENS = re.findall(r"\s*\S+", REPLY)
SCRIPT = 'greeting = "Hello."\ngoodbye = "Bye."\ninvalid_digit = "No."\n'


class App:
    """Answers ``one`` with one text, ``stream`` with tokens."""

    def __init__(self, token_delay: float) -> None:
        self.token_delay = token_delay

    async def handler(self, ws: ServerConnection) -> None:
        async for frame in ws:
            msg = json.loads(frame)
            if msg.get("type") != "prompt":
                continue
            if msg["voicePrompt"] == "one":
                await ws.send(json.dumps({"type": "text", "token": REPLY, "last": True}))
                continue
            for n, token in enumerate(TOKENS):
                if n:
                    await asyncio.sleep(self.token_delay)
                await ws.send(json.dumps({"type": "text", "token": token, "last": False}))
            await ws.send(json.dumps({"type": "text", "token": "", "last": True}))


@contextlib.asynccontextmanager
async def relay_app(token_delay: float) -> AsyncIterator[str]:
    app = App(token_delay)
    async with serve(app.handler, "127.0.0.1", 0) as server:
        port = next(iter(server.sockets)).getsockname()[1]
        yield f"ws://127.0.0.1:{port}/relay"


async def one_reply(run: Any, tw: FakeTwilio, mode: str) -> dict[str, float]:
    t0 = time.monotonic()
    frames_before = len(tw.heard.frames)
    caller_says(run, tw, mode)
    await tw.wait_for(lambda: len(tw.heard.frames) > frames_before, 20)
    wall, first_ms, _ = tw.heard.frames[frames_before]

    def ended() -> bool:
        return any(n.endswith("-end") and ms > first_ms for n, ms in tw.heard.marks)

    await tw.wait_for(ended, 60)
    end_ms = min(ms for n, ms in tw.heard.marks if n.endswith("-end") and ms > first_ms)
    audio = sum(len(f) for _, _, f in tw.heard.frames[frames_before:])
    return {
        "first_audio_s": wall - t0,
        "audio_s": audio / 8000,
        "heard_s": (end_ms - first_ms) / 1000,
    }


async def measure(runs: int, token_delay: float) -> dict[str, Any]:
    shipped = {f.name: f.default for f in dataclasses.fields(Settings)}
    results: dict[str, list[dict[str, float]]] = {"one": [], "stream": []}
    with tempfile.TemporaryDirectory() as tmp:
        script = Path(tmp) / "script.toml"
        script.write_text(SCRIPT)
        async with relay_app(token_delay) as url:
            listen = ListenSettings(stt="off", brain="relay", relay_url=url)
            async with running_server(
                listen=listen,
                script_path=str(script),
                local_voice_first_chunk_delay=shipped["local_voice_first_chunk_delay"],
                tts_timeout=shipped["tts_timeout"],
            ) as run:
                tw = FakeTwilio(run)
                await tw.start()
                await asyncio.sleep(2.0)  # the greeting (if the tree has one) has played
                for _ in range(runs):
                    for mode in ("one", "stream"):
                        results[mode].append(await one_reply(run, tw, mode))
                        await asyncio.sleep(0.5)
                await tw.hang_up()
    out: dict[str, Any] = {
        "reply_chars": len(REPLY),
        "tokens": len(TOKENS),
        "token_delay_s": token_delay,
        "runs": runs,
    }
    for mode, rows in results.items():
        for key in ("first_audio_s", "audio_s", "heard_s"):
            out[f"{mode}_{key}"] = round(statistics.median(r[key] for r in rows), 3)
    out["heard_ratio"] = round(out["stream_heard_s"] / out["one_heard_s"], 3)
    out["audio_ratio"] = round(out["stream_audio_s"] / out["one_audio_s"], 3)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--token-delay", type=float, default=0.02)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    result = asyncio.run(measure(args.runs, args.token_delay))
    if args.json:
        print(json.dumps({"versions": versions(), "result": result}, indent=2))
    else:
        for key, value in result.items():
            print(f"{key:>22}: {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
