"""Inbound Twilio ``media`` handling per message: the compiled fast path vs the Python path.

    python -m benchmarks.bench_twilio_inbound [--rounds N] [--json]
    pytest benchmarks/bench_twilio_inbound.py --benchmark-only

One 20 ms Twilio frame (160 µ-law bytes, Twilio's key order) handled three ways, each ending
with the Media fields, the decoded payload as ``bytes`` and the VAD frame statistics:

- ``fast``: :func:`hotline.codec.twilio_media_fast` (one compiled call).
- ``python``: ``json.loads`` + strict base64 decode + :func:`hotline.codec.ulaw_frame_stats`
  (the minimum a Python parser does, no field checks).
- ``stream_fast`` / ``stream_full``: :meth:`TwilioStream.receive_text` + ``events_received`` +
  ``Vad.process``, with the fast path and with it disabled (today's full parser).

Figures are CPU µs per message (best round of 50,000 messages).
"""

from __future__ import annotations

import argparse
import base64
import json
import sys
from collections.abc import Callable
from typing import Any

import pytest

from benchmarks.common import best_cpu_seconds_interleaved, versions
from hotline.codec import twilio_media_fast, ulaw_frame_stats
from hotline.core import twilio as twilio_mod
from hotline.core._wire import b64decode_strict
from hotline.core.twilio import TwilioStream
from hotline.core.vad import Vad

SID = "MZ0123456789abcdef0123456789abcdef"
FRAME = bytes((i * 37) & 0xFF for i in range(160))
START = json.dumps(
    {
        "event": "start",
        "sequenceNumber": "1",
        "start": {
            "accountSid": "AC" + "0" * 32,
            "streamSid": SID,
            "callSid": "CA" + "0" * 32,
            "tracks": ["inbound"],
            "customParameters": {},
            "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1},
        },
        "streamSid": SID,
    }
)
MESSAGES = 50_000


def media_text(i: int) -> str:
    b64 = base64.b64encode(FRAME).decode()
    return (
        f'{{"event":"media","sequenceNumber":"{i + 2}","media":{{"track":"inbound",'
        f'"chunk":"{i + 1}","timestamp":"{i * 20}","payload":"{b64}"}},"streamSid":"{SID}"}}'
    )


TEXTS = [media_text(i) for i in range(100)]


def python_path(text: str) -> tuple[Any, ...]:
    msg = json.loads(text)
    media = msg["media"]
    payload = b64decode_strict(media["payload"])
    rms, zcr = ulaw_frame_stats(payload)
    return (media["track"], int(media["chunk"]), int(media["timestamp"]), payload, rms, zcr)


def _no_fast(text: object, stream_sid: str) -> tuple[str, int, int, bytes, float, float] | None:
    return None


def _stream_case() -> Callable[[str], object]:
    stream = TwilioStream()
    stream.receive_text(START)
    stream.events_received()
    vad = Vad()

    def one(text: str) -> object:
        stream.receive_text(text)
        out = None
        for ev in stream.events_received():
            out = vad.process(ev)  # type: ignore[arg-type]
        return out

    return one


def cases() -> dict[str, Callable[[str], object]]:
    return {
        "fast": lambda t: twilio_media_fast(t, SID),
        "python": python_path,
        "stream_fast": _stream_case(),
        # the same code with the fast path replaced by a function that always defers (so this
        # is today's full parser plus one Python call, ~0.05 µs)
        "stream_full": _stream_case(),
    }


def _loop(fn: Callable[[str], object], n: int, *, fast: bool = True) -> Callable[[], None]:
    texts = TEXTS

    def run() -> None:
        saved = twilio_mod._media_fast
        if not fast:
            twilio_mod._media_fast = _no_fast
        try:
            for i in range(n):
                fn(texts[i % 100])
        finally:
            twilio_mod._media_fast = saved

    return run


# --- pytest-benchmark -------------------------------------------------------------------------


@pytest.mark.parametrize("key", ["fast", "python", "stream_fast", "stream_full"])
def test_twilio_inbound(benchmark: Any, key: str) -> None:
    fn = cases()[key]
    benchmark.group = "twilio inbound media (1000 messages)"
    benchmark(_loop(fn, 1000, fast=key != "stream_full"))
    if key in ("fast", "python"):
        assert fn(TEXTS[0]) == python_path(TEXTS[0])


# --- command line -----------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.bench_twilio_inbound")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    fns: dict[str, Callable[[], object]] = {
        k: _loop(fn, MESSAGES, fast=k != "stream_full") for k, fn in cases().items()
    }
    best = best_cpu_seconds_interleaved(fns, args.rounds)
    us = {k: round(v / MESSAGES * 1e6, 3) for k, v in best.items()}
    if args.json:
        print(json.dumps({"versions": versions(), "us_per_message": us}, indent=2))
        return 0
    for name, version in versions().items():
        print(f"# {name}: {version}")
    print(f"{'path':<12} {'µs/msg':>8}")
    for k, per in us.items():
        print(f"{k:<12} {per:>8.3f}")
    print(
        f"fast vs python: {us['python'] / us['fast']:.1f}x; "
        f"stream with vs without fast path: {us['stream_full'] / us['stream_fast']:.1f}x"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
