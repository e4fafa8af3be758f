"""Time to first audio: per-call multi-context socket vs a socket per utterance, and a cached
greeting vs a synthesised one.

    python -m benchmarks.bench_first_word [--calls 3] [--lines 3] [--connect-delay 0.3] [--json]

Each configuration runs a real hotline (uvicorn on 127.0.0.1, the embedded local voice with a
simulated handshake cost of ``--connect-delay`` seconds) and the caller simulator. Figures are
hotline's own: text handed to TTS -> first media frame sent (for the greeting that is from
``start`` handled), split by utterance (the greeting, then the lines said through
``POST /calls/{CallSid}/say``), plus the caller's time from sending ``start`` to the first
media frame received.

Where the call's multi socket is opened is the benchmark's to choose (``run_config``'s
``preopen``): hotline opens it at the media-stream upgrade; the other two places are built here
through ``create_app``'s ``tts_factory``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import statistics
import sys
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx

from benchmarks.common import versions
from hotline.core.events import TTSEvent
from hotline.errors import ElevenLabsProtocolError
from hotline.server.app import create_app
from hotline.server.elevenlabs_client import TextFeed, TTSConfig
from hotline.server.hub import Hub
from hotline.server.settings import Settings
from hotline.server.speech import CallTTS
from hotline.server.speech_service import TTSFactory
from hotline.sim.call_report import CallReport
from hotline.sim.caller import place_call
from hotline.sim.options import CallOptions
from tests.support.net import base_url, bind_ephemeral
from tests.support.server import serve_asgi

TOKEN = "bench-first-word-twilio-token-0123"
ADMIN = "bench-first-word-admin-token"
SCRIPT = """
greeting = "Hello, and thanks for calling. This is the first word benchmark."
invalid_digit = "That key does nothing."
goodbye = "Goodbye."
goodbye_digit = "0"

[menu]
1 = "Option one."
"""
LINES = (
    "Here is a line said by the outside brain.",
    "And another one, a little while later.",
    "One more line, to have a few of them.",
    "The last line of this call.",
)


class _OpenAtStart:
    """The call's TTS, not connecting before the call's first utterance (at its ``start``)."""

    def __init__(self, tts: CallTTS) -> None:
        self.tts = tts
        self.config = tts.config

    @property
    def label(self) -> str:
        return self.tts.label

    @label.setter
    def label(self, value: str) -> None:
        self.tts.label = value

    def start(self) -> None:
        """Not at the upgrade: the first synthesis connects."""

    async def synthesize(
        self,
        text: str | TextFeed,
        on_event: Callable[[TTSEvent], Awaitable[bool]],
        on_bad_message: Callable[[ElevenLabsProtocolError], None],
    ) -> None:
        await self.tts.synthesize(text, on_event, on_bad_message)

    async def aclose(self) -> None:
        await self.tts.aclose()


class Preopen:
    """Where the call's multi socket is opened (a ``tts_factory``): ``upgrade`` (hotline's
    way: where the stream lands), ``start`` (not before the call's start), ``webhook`` (as
    ``POST /voice`` answers, :meth:`webhook`: only right when the stream lands on the same
    replica, as it does here)."""

    def __init__(self, where: str) -> None:
        self.where = where
        self._opened: CallTTS | None = None

    def __call__(self, config: TTSConfig, build: Callable[[TTSConfig], CallTTS]) -> CallTTS:
        if self.where == "start":
            return _OpenAtStart(build(config))
        opened, self._opened = self._opened, None
        return opened if opened is not None else build(config)

    def webhook(self, hub: Hub) -> None:
        """The next call's webhook: open its socket now (the next upgrade takes it)."""
        assert hub.tts is not None
        self._opened = hub.speech.new_tts(hub.tts)
        self._opened.start()


@contextlib.asynccontextmanager
async def serving(
    tts_factory: TTSFactory | None = None, **settings: Any
) -> AsyncIterator[tuple[str, Hub]]:
    sock = bind_ephemeral()
    base = base_url(sock)
    app = create_app(
        Settings(twilio_auth_token=TOKEN, public_url=base, admin_token=ADMIN, **settings),
        tts_factory=tts_factory,
    )
    async with serve_asgi(app, sock):
        yield base, app.state.hub


async def one_call(
    base: str, call_sid: str, lines: int, hub: Hub | None = None, preopen: Preopen | None = None
) -> CallReport:
    live: list[CallReport] = []
    if preopen is not None and preopen.where == "webhook" and hub is not None:
        preopen.webhook(hub)  # the old way: opened as POST /voice answers
    options = CallOptions(
        url=base, auth_token=TOKEN, call_sid=call_sid, max_seconds=60, on_started=live.append
    )
    call = asyncio.create_task(place_call(options))

    async def played(mark: str) -> None:
        while not (live and any(u.mark == mark for u in live[0].utterances)):
            if call.done():
                raise RuntimeError(f"the call ended early: {call.result().errors}")
            await asyncio.sleep(0.02)

    await played("u1-end")
    async with httpx.AsyncClient(
        base_url=base, headers={"Authorization": f"Bearer {ADMIN}"}
    ) as client:
        for n in range(lines):
            r = await client.post(f"/calls/{call_sid}/say", json={"text": LINES[n % len(LINES)]})
            r.raise_for_status()
            await played(f"u{r.json()['utterance_id']}-end")
        await client.post(f"/calls/{call_sid}/hangup")
    return await call


def _ms(values: list[float]) -> dict[str, float]:
    if not values:
        return {}
    return {
        "n": len(values),
        "p50": statistics.median(values),
        "min": min(values),
        "max": max(values),
    }


async def run_config(
    name: str, calls: int, lines: int, preopen: str = "upgrade", **settings: Any
) -> dict[str, Any]:
    """``preopen``: where the multi socket is opened: ``upgrade`` (hotline's way: where the
    stream lands), ``start`` (not before the call's start), ``webhook`` (as POST /voice
    answers: only right when the stream lands on the same replica)."""
    with tempfile.TemporaryDirectory() as tmp:
        script = Path(tmp) / "script.toml"
        script.write_text(SCRIPT)
        where = Preopen(preopen)
        factory = where if preopen != "upgrade" else None
        async with serving(factory, script_path=str(script), **settings) as (base, hub):
            reports = [await one_call(base, f"CA{n:032x}", lines, hub, where) for n in range(calls)]
            assert hub.speech is not None
            records = list(hub.speech.records)
    greeting = [1000 * r.time_to_first_audio for r in records if r.utterance_id == 1]
    later = [1000 * r.time_to_first_audio for r in records if r.utterance_id > 1]
    caller = [r.time_to_first_audio_ms for r in reports if r.time_to_first_audio_ms is not None]
    return {
        "config": name,
        "settings": {k: v for k, v in settings.items() if k != "script_path"},
        "paths": sorted({r.path for r in records}),
        "greeting_ms": _ms(greeting[:1]) if settings.get("cache_bytes") else _ms(greeting),
        "greeting_cached_ms": _ms(greeting[1:]) if settings.get("cache_bytes") else {},
        "later_lines_ms": _ms(later),
        "caller_first_audio_ms": _ms(caller),
        "errors": [e for r in reports for e in r.errors],
    }


async def run_all(calls: int, lines: int, delay: float, first_chunk: float) -> list[dict[str, Any]]:
    common: dict[str, Any] = {
        "cache_bytes": 0,  # "no cache" means it: every line synthesised (the default is 32 MiB)
        "local_voice_connect_delay": delay,
        "local_voice_first_chunk_delay": first_chunk,
    }
    return [
        await run_config("single, no cache", calls, lines, elevenlabs_transport="single", **common),
        await run_config("multi, no cache", calls, lines, elevenlabs_transport="multi", **common),
        await run_config(
            "multi, open@start", calls, 0, "start", elevenlabs_transport="multi", **common
        ),
        await run_config(
            "multi, open@webhook", calls, 0, "webhook", elevenlabs_transport="multi", **common
        ),
        await run_config(
            "multi + cache",
            calls,
            0,
            elevenlabs_transport="multi",
            **{**common, "cache_bytes": 1 << 24},
        ),
    ]


def _cell(stats: dict[str, float]) -> str:
    if not stats:
        return "-"
    return f"{stats['p50']:8.1f} ({stats['min']:.1f}..{stats['max']:.1f}, n={int(stats['n'])})"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.bench_first_word", description=__doc__)
    p.add_argument("--calls", type=int, default=3, help="calls per configuration")
    p.add_argument("--lines", type=int, default=3, help="lines said per call after the greeting")
    p.add_argument("--connect-delay", type=float, default=0.3, help="voice handshake cost (s)")
    p.add_argument("--first-chunk-delay", type=float, default=0.25, help="voice TTFB (s)")
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    logging.getLogger("hotline").setLevel(logging.WARNING)
    runs = asyncio.run(run_all(args.calls, args.lines, args.connect_delay, args.first_chunk_delay))
    out = {
        "versions": versions(),
        "command": " ".join(["python -m benchmarks.bench_first_word", *(argv or sys.argv[1:])]),
        "connect_delay_ms": args.connect_delay * 1000,
        "first_chunk_delay_ms": args.first_chunk_delay * 1000,
        "runs": runs,
    }
    if args.json:
        print(json.dumps(out, indent=2))
        return 0
    for k, v in out["versions"].items():
        print(f"# {k}: {v}")
    print(
        f"# {out['command']}  (voice handshake {out['connect_delay_ms']:.0f} ms, "
        f"first chunk {out['first_chunk_delay_ms']:.0f} ms)"
    )
    print("# ms, p50 (min..max, n): text handed to TTS -> first media frame sent")
    print(f"{'config':<20} {'greeting':<34} {'cached greeting':<34} {'lines 2+':<34}")
    for r in runs:
        print(
            f"{r['config']:<20} {_cell(r['greeting_ms']):<34} "
            f"{_cell(r['greeting_cached_ms']):<34} {_cell(r['later_lines_ms']):<34}"
        )
    print("# caller side, start sent -> first media frame received (ms):")
    for r in runs:
        print(f"{r['config']:<20} {_cell(r['caller_first_audio_ms'])}")
    bad = [e for r in runs for e in r["errors"]]
    if bad:
        print(f"# caller errors: {bad}")
    return 1 if bad else 0


if __name__ == "__main__":
    raise SystemExit(main())
