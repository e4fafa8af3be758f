"""The local ear's accuracy and cost on the hotline caller phrases, over its real socket.

Each phrase (hotline.ear.phrases.PHRASES) is spoken by eSpeak NG, resampled to 8 kHz µ-law and
fed in 20 ms frames, with silence around it, through :class:`hotline.server.stt_client.SttStream`
to a :class:`hotline.ear.server.LocalEar` (Scribe protocol, VAD commits) on 127.0.0.1.

Two biasing set-ups, each at two speaking rates:

* ``phrases``: the whole phrases are the key terms (a menu of what callers say);
* ``keywords``: only the key words (tour, dates, merch, album, person, goodbye, repeat).

Reported: word accuracy (1 - WER against the phrase; for ``keywords`` against the phrase's key
words, the most that set-up can produce; negative when insertions outnumber the reference),
words found (share of reference words present in the transcript), the share of phrases recognised exactly, and the
ear's CPU-seconds (recogniser threads) per second of audio sent (silence included) and per
second of speech decoded.

    python -m benchmarks.bench_ear [--json] [--rates 150,175]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from typing import Any

from benchmarks.common import versions
from hotline.core.stt import SttCommitted, SttEvent
from hotline.ear.config import EarConfig
from hotline.ear.phrases import KEYWORDS, PHRASES, phrase_ulaw
from hotline.ear.recognizer import normalise
from hotline.ear.server import LocalEar
from hotline.server.stt_client import SttConfig, SttProvider, SttStream

LEAD = b"\xff" * 4000  # 0.5 s
TAIL = b"\xff" * 8000  # 1 s


def _wer(ref: list[str], hyp: list[str]) -> tuple[int, int]:
    """(edit distance, reference length)."""
    d = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        prev, d[0] = d[0], i
        for j, h in enumerate(hyp, 1):
            cur = min(d[j] + 1, d[j - 1] + 1, prev + (r != h))
            prev, d[j] = d[j], cur
    return d[len(hyp)], len(ref)


async def _run(keyterms: tuple[str, ...], rate: int, reference: list[list[str]]) -> dict[str, Any]:
    async with LocalEar(EarConfig()) as ear:
        got: list[str] = []
        changed = asyncio.Event()

        async def on_event(ev: SttEvent) -> None:
            if isinstance(ev, SttCommitted):
                got.append(ev.text)
                changed.set()

        stream = SttStream(
            SttConfig(provider=SttProvider.LOCAL, url=ear.url, keyterms=keyterms, silence_ms=500),
            on_event,
        )
        stream.start()
        audio_bytes = 0
        for phrase in PHRASES:
            audio = LEAD + phrase_ulaw(phrase, rate) + TAIL
            audio_bytes += len(audio)
            n = len(got)
            for i in range(0, len(audio), 160):
                stream.feed(audio[i : i + 160])
                await asyncio.sleep(0)
            try:
                while len(got) == n:
                    changed.clear()
                    await asyncio.wait_for(changed.wait(), 20)
            except TimeoutError:
                got.append("")  # nothing committed for this phrase
        await stream.aclose()
        cpu = ear.stats.cpu_seconds
    errors = total = exact = found = 0
    rows = []
    for ref, hyp_text in zip(reference, got, strict=False):
        hyp = hyp_text.split()
        e, n = _wer(ref, hyp)
        errors += e
        total += n
        exact += hyp == ref
        found += sum(1 for w in ref if w in hyp)
        rows.append({"reference": " ".join(ref), "heard": hyp_text})
    audio_s = audio_bytes / 8000
    return {
        "rate_wpm": rate,
        "word_accuracy": round(1 - errors / total, 3),
        "word_recall": round(found / total, 3),
        "phrases_exact": f"{exact}/{len(reference)}",
        "phrase_rate": round(exact / len(reference), 3),
        "cpu_s_per_audio_s": round(cpu / audio_s, 4),
        "audio_s": round(audio_s, 2),
        "cpu_s": round(cpu, 3),
        "results": rows,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--rates", default="150,175")
    args = parser.parse_args(argv)
    rates = [int(r) for r in args.rates.split(",")]
    kw = set(KEYWORDS)
    setups = {
        "phrases": (PHRASES, [normalise(p) for p in PHRASES]),
        "keywords": (KEYWORDS, [[w for w in normalise(p) if w in kw] for p in PHRASES]),
    }
    report: dict[str, Any] = {"versions": versions(), "setups": {}}
    for name, (keyterms, reference) in setups.items():
        report["setups"][name] = [asyncio.run(_run(keyterms, r, reference)) for r in rates]
    if args.json:
        json.dump(report, sys.stdout, indent=2)
        print()
        return 0
    for name, runs in report["setups"].items():
        for run in runs:
            print(
                f"{name:9s} {run['rate_wpm']} wpm: word accuracy {run['word_accuracy']:.1%}, "
                f"words found {run['word_recall']:.1%}, "
                f"phrases exact {run['phrases_exact']}, "
                f"{run['cpu_s_per_audio_s']:.3f} CPU-s per audio-s"
            )
            for row in run["results"]:
                if row["heard"] != row["reference"]:
                    print(f"    {row['reference']!r} -> {row['heard']!r}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
