"""Hotline's own share of voice to voice, with 1 and with 50 conversing calls.

    python -m benchmarks.bench_voice_to_voice [--calls 1,50] [--questions 2] [--json]

Each run spawns ``hotline serve`` with the script brain, the local voice and the local ear in
their own processes (the ear over Deepgram's live protocol, as a remote recogniser would be:
its CPU is not in hotline's process) and places conversing calls (``hotline load --converse``,
:mod:`hotline.sim.load.converse`): every caller asks its questions aloud in real-time frames.

Hotline's own share of a turn is everything in voice to voice except the other parties' delays
(the silence wait, the recogniser's, the brain's/model's and the voice's): ``dispatch`` (final
transcript -> handed to the brain), ``to_tts`` (the brain's first text -> handed to TTS) and
``playout`` (first TTS audio -> first frame out), as the server observes it into
``hotline_voice_to_voice_seconds{stage="hotline"}``. Reported: its p50 (exact per turn with one
call; Prometheus-style interpolation in the histogram's buckets with many), beside the caller's
own voice to voice and the codec's speed on this machine (resample 44.1 kHz -> 8 kHz + µ-law per
20 ms frame), so the figure can be read against what the machine does per frame.

Targets (issue 10): p50 <= 5 ms with 1 call, <= 20 ms with 50 conversing calls.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import sys
from typing import Any

from benchmarks.common import best_cpu_seconds, versions
from hotline.sim.load.converse import ConverseOptions, run_converse

TARGETS_MS = {1: 5.0, 50: 20.0}


def codec_us_per_frame() -> float:
    """The codec's resample (44.1 kHz -> 8 kHz) + µ-law encode, CPU µs per 20 ms of output."""
    from array import array

    from hotline.codec import Resampler, ulaw_encode

    pcm = array(
        "h", (int(8000 * math.sin(2 * math.pi * 440 * i / 44100)) for i in range(44100))
    ).tobytes()

    def one_second() -> None:
        rs = Resampler(44100, 8000)
        ulaw_encode(rs.process(pcm) + rs.flush())

    return best_cpu_seconds(one_second, 20) / 50 * 1e6


async def measure(calls: int, questions: int) -> dict[str, Any]:
    result = await run_converse(ConverseOptions(calls=calls, questions=questions))
    hs = result["server_v2v"].get("hotline", {})
    exact = result.get("hotline_share_exact_p50_ms")
    p50 = exact if exact is not None else hs.get("p50_ms")
    target = TARGETS_MS.get(calls)
    return {
        "calls": calls,
        "questions": result["questions"],
        "answered": result["answered"],
        "hotline_share_p50_ms": p50,
        "hotline_share_p50_how": "exact per turn" if exact is not None else "histogram buckets",
        "hotline_share_mean_ms": hs.get("mean_ms"),
        "hotline_share_p95_ms": hs.get("p95_ms"),
        "target_p50_ms": target,
        "meets_target": None if target is None or p50 is None else p50 <= target,
        "caller_v2v_p50_ms": result["caller_v2v_ms"]["p50"],
        "caller_v2v_p95_ms": result["caller_v2v_ms"]["p95"],
        "server_stage_mean_ms": {k: v["mean_ms"] for k, v in result["server_v2v"].items()},
        "errors": result["errors"]["total"],
        "underrun_ms": result["underrun_ms"],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--calls", default="1,50", help="comma-separated call counts")
    parser.add_argument("--questions", type=int, default=2, help="questions per call")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    counts = [int(c) for c in args.calls.split(",") if c.strip()]
    codec = codec_us_per_frame()
    runs = [asyncio.run(measure(n, args.questions)) for n in counts]
    out = {"codec_us_per_20ms_frame": codec, "runs": runs, "versions": versions()}
    if args.json:
        print(json.dumps(out, indent=2))
        return 0
    print(f"codec (resample 44.1k->8k + µ-law)  {codec:.1f} µs CPU per 20 ms frame")
    for r in runs:

        def f(v: float | None, d: int = 2) -> str:
            return "-" if v is None else f"{v:.{d}f}"

        verdict = {True: "meets", False: "MISSES", None: ""}[r["meets_target"]]
        print(
            f"{r['calls']:>3} calls: hotline's own share p50 {f(r['hotline_share_p50_ms'])} ms "
            f"({r['hotline_share_p50_how']}; mean {f(r['hotline_share_mean_ms'])}, "
            f"p95 {f(r['hotline_share_p95_ms'])}) {verdict} target {r['target_p50_ms']} ms; "
            f"caller v2v p50 {f(r['caller_v2v_p50_ms'], 0)} ms; "
            f"{r['answered']}/{r['questions']} answered, {r['errors']} errors"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
