"""Barge-in a cough cannot trigger: what a cough over hotline's line costs the caller, and how
fast real words stop it.

    python -m benchmarks.bench_bargein [--modes pause,speech] [--coughs 6] [--cough-ms 200]
        [--sentences 4] [--json]

Each trial is one call to an in-process ``hotline`` (the shipped defaults but the barge-in
mode: the script brain, the embedded local voice and the local grammar ear, over real sockets),
placed by the tests' fake Twilio (:mod:`tests.support.twilio`), which plays what it receives in
real time, obeys ``clear`` and speaks the caller's frames in real time. 1.5 s into the greeting
the caller either coughs (a 200 ms burst from :mod:`hotline.sim.noise`, a different seed and
timbre each trial; ``--cough-ms 500`` for a sound long enough to hold the line) or says a
sentence (eSpeak). Reported per trial and summarised:

* **cough**: whether the line was held (``clear``), for how long nothing played (the first
  frame after the clear, minus the clear, media clock), and the line the caller lost: the
  greeting's audio never heard (a held line is sent again from the playhead, so only the
  estimate's error is lost, or heard twice), or, in ``speech`` mode, everything after the cut;
* **words**: the speech onset to the ``clear`` (media clock).

Targets (issue 18): a 200 ms cough costs <= 300 ms of the line and pauses it <= 1.5 s; real
words stop it within 900 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from typing import Any

from benchmarks.common import versions
from hotline.core.script import default_script
from hotline.core.turns import BargeInMode
from hotline.ear.phrases import phrase_ulaw
from hotline.server.settings import ListenSettings
from hotline.server.stt_client import SttProvider
from hotline.sim.noise import cough
from tests.support.server import running_server
from tests.support.twilio import FakeTwilio

SENTENCES = (
    "Tell me about the new album",
    "What are the tour dates?",
    "Where can I buy merch?",
    "Can you repeat that?",
)
#: (seed, smoothing, buzz Hz) per cough trial: hissy to dull, with and without a voiced buzz.
COUGH_KINDS = ((0, 0.9, 0), (1, 0.95, 120), (2, 0.8, 0), (3, 0.5, 120), (4, 0.95, 0), (5, 0.9, 120))


def _frames(ulaw: bytes) -> list[bytes]:
    ulaw += b"\xff" * (-len(ulaw) % 160)
    return [ulaw[i : i + 160] for i in range(0, len(ulaw), 160)]


def _line_lost(tw: FakeTwilio, cleared: int | None, line_bytes: int) -> tuple[float, float]:
    """(ms of the line never heard, ms heard twice) once the greeting has played or stopped."""
    played = len(tw.heard.played)
    if cleared is None:
        return (line_bytes - played) / 8, 0.0
    sent = [(ms, f) for _, ms, f in tw.heard.frames]
    before = b"".join(f for ms, f in sent if ms <= cleared)
    after = b"".join(f for ms, f in sent if ms > cleared)
    heard_before = played - len(after)
    if not after:  # cut for good (speech mode): the rest was never heard
        return (line_bytes - played) / 8, 0.0
    resent_from = before.find(after[:320])
    if resent_from < 0:
        return float("nan"), float("nan")
    gap = resent_from - heard_before
    return max(gap, 0) / 8, max(-gap, 0) / 8


async def _call(
    mode: BargeInMode, frames: list[bytes], line_bytes: int, *, words: bool
) -> dict[str, Any]:
    async with running_server(listen=ListenSettings(stt=SttProvider.LOCAL, barge_in=mode)) as run:
        tw = FakeTwilio(run)
        await tw.start()
        await tw.wait_for(lambda: len(tw.heard.played) > 8000 * 1.5, 20)
        onset = tw.speak(frames)
        await tw.wait_for(lambda: not tw._speech, 20)
        if words:
            await tw.wait_for(lambda: bool(tw.heard.clears), 10)
            out: dict[str, Any] = {
                "onset_ms": onset,
                "cleared_after_ms": tw.heard.clears[0] - onset,
            }
            await tw.hang_up()
            return out
        # Long enough for a held line to resume (1.5 s after the sound) and play on a while.
        await asyncio.sleep(3.5)
        cleared = tw.heard.clears[0] if tw.heard.clears else None
        paused_ms = None
        if cleared is not None:
            later = [ms for _, ms, _ in tw.heard.frames if ms > cleared]
            paused_ms = (later[0] - cleared) if later else None
        # Let the greeting finish (or stay cut) before counting what was lost.
        if cleared is None or paused_ms is not None:
            await tw.wait_for(lambda: tw.mark_echoed("u1-end") or tw.mark_echoed("u1r1-end"), 30)
        lost_ms, twice_ms = _line_lost(tw, cleared, line_bytes)
        out = {
            "onset_ms": onset,
            "cleared_after_ms": None if cleared is None else cleared - onset,
            "paused_ms": paused_ms,
            "lost_ms": lost_ms,
            "heard_twice_ms": twice_ms,
        }
        await tw.hang_up()
        return out


async def _greeting_bytes() -> int:
    """The greeting's µ-law length as the local voice renders it (one undisturbed call)."""
    async with running_server(listen=ListenSettings(stt=SttProvider.OFF)) as run:
        tw = FakeTwilio(run)
        await tw.start()
        await tw.wait_for(lambda: tw.mark_echoed("u1-end"), 40)
        n = len(tw.heard.played)
        await tw.hang_up()
        return n


async def measure(
    modes: list[BargeInMode], coughs: int, sentences: int, cough_ms: int = 200
) -> dict[str, Any]:
    line = await _greeting_bytes()
    results: dict[str, Any] = {"greeting_ms": line / 8, "modes": {}}
    for mode in modes:
        rows: dict[str, list[dict[str, Any]]] = {"cough": [], "words": []}
        for seed, smooth, buzz in COUGH_KINDS[:coughs]:
            burst = cough(cough_ms, seed=seed, smooth=smooth, buzz_hz=buzz)
            rows["cough"].append(await _call(mode, _frames(burst), line, words=False))
        for text in SENTENCES[:sentences]:
            rows["words"].append(await _call(mode, _frames(phrase_ulaw(text)), line, words=True))
        held = [r for r in rows["cough"] if r["cleared_after_ms"] is not None]
        stops = [r["cleared_after_ms"] for r in rows["words"] if r["cleared_after_ms"] is not None]
        results["modes"][mode.value] = {
            "trials": rows,
            "cough_held": f"{len(held)}/{len(rows['cough'])}",
            "cough_lost_ms_max": max((r["lost_ms"] for r in rows["cough"]), default=0.0),
            "cough_paused_ms_max": max((r["paused_ms"] or 0 for r in rows["cough"]), default=0),
            "words_stopped": f"{len(stops)}/{len(rows['words'])}",
            "words_to_clear_ms_max": max(stops, default=None),
        }
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--modes", default="pause,speech")
    parser.add_argument("--coughs", type=int, default=len(COUGH_KINDS))
    parser.add_argument("--sentences", type=int, default=len(SENTENCES))
    parser.add_argument("--cough-ms", type=int, default=200)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    modes = [BargeInMode(m.strip()) for m in args.modes.split(",") if m.strip()]
    default_script()  # fail early on a broken install
    result = asyncio.run(measure(modes, args.coughs, args.sentences, args.cough_ms))
    result["cough_ms"] = args.cough_ms
    result["versions"] = versions()
    if args.json:
        json.dump(result, sys.stdout, indent=2)
        print()
        return 0
    print(f"greeting {result['greeting_ms']:.0f} ms of audio")
    for mode, r in result["modes"].items():
        print(f"== HOTLINE_BARGE_IN={mode}")
        for row in r["trials"]["cough"]:
            print(
                f"  {result['cough_ms']} ms cough: cleared {row['cleared_after_ms']} ms after onset, "
                f"paused {row['paused_ms']} ms, line lost {row['lost_ms']:.0f} ms, "
                f"heard twice {row['heard_twice_ms']:.0f} ms"
            )
        for row in r["trials"]["words"]:
            print(f"  words: cleared {row['cleared_after_ms']} ms after onset")
        print(
            f"  coughs held {r['cough_held']}, max lost {r['cough_lost_ms_max']:.0f} ms, "
            f"max paused {r['cough_paused_ms_max']} ms; words stopped {r['words_stopped']}, "
            f"max onset -> clear {r['words_to_clear_ms_max']} ms"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
