"""How well the grammar ear's confidence separates words that were said from junk it forced
onto a phrase.

The grammar ear (pocketsphinx on a grammar of the call script's key terms) always returns its
nearest phrase; the voicing gate keeps coughs and noise out, but anything voiced still comes
out as words. Each final now carries a confidence: the segment aligned to the words heard,
against an all-phone loop over the same audio (their log ratio per frame; see
:meth:`hotline.ear.recognizer.Recognizer._confidence`). This measures it, on generated audio:

* **said**: the script's phrases (every ending phrase, and others), spoken by eSpeak NG with
  several voices and rates, that the ear heard right (the words match the phrase);
* **junk** that passes the voicing gate: the same phrases played backwards (speech-like, no
  words), fillers and grunts ("hmm", "uh", "erm"), nonsense words, and synthetic voiced grunts
  (a glottal pulse train through a formant, 250-600 ms): every one that came out as words.

Reported: the likelihood ratio per frame and the confidence for each class (quantiles), the
ROC area, and at each threshold the share of said phrases kept and of junk let through (and
of junk heard as an *ending* phrase), then goodbyes and handoffs apart. The decision the script
brain takes is only for ending intents, and their costs differ: junk obeyed as a goodbye hangs
up on the caller, as a handoff it passes them to a person; either one not obeyed costs the
caller a repeat. So each has its floor (``end_confidence``, ``handoff_confidence``).

    python -m benchmarks.bench_confidence [--json]

Measured (2026-12-07, 2 shared cores; the call's key terms, the final asked for at the 200 ms
pause): 337 finals of said phrases (5 voices x 150/190 wpm), 217 heard right, 120 of them
ending phrases; 440 junk clips came out as words (339 backwards, 79 fillers, 22 grunts), 95 as
an ending phrase. ROC area 0.79 (all), 0.89 (ending phrases). At confidence 0.5 (the shipped
``CONFIDENCE_MID``, ratio 0.8): 92.3 % of the 52 goodbyes heard right pass and 26.7 % of the 60
junk clips heard as one; of the 68 handoffs only 80.9 % (37.1 % of 35 junk). At 0.2, the
handoff's shipped floor: 94.1 % of handoffs, 42.9 % of their junk. pocketsphinx's posterior is not
available with the Viterbi backtrace the ear uses (``bestpath=False``, chosen for speed); a
flat all-phone loop (no phone language model) separated worse (ROC 0.85 against 0.95 on a
smaller set). Extra CPU per final: an all-phone pass and an alignment, ~0.05-0.1 s per second
of segment.
"""

from __future__ import annotations

import argparse
import array
import functools
import json
import math
import random
import sys
import time
from typing import Any

from benchmarks.common import versions
from hotline.codec import Resampler, ulaw_encode
from hotline.core.script import CallScript, IntentAction, default_script
from hotline.ear.recognizer import Final, Recognizer, RecognizerConfig, normalise
from hotline.tts_standin.espeak import synthesize

VOICES = ("en-us", "en", "en-us+f3", "en-us+m3", "en-gb-x-rp")
RATES = (150, 190)
GAP = b"\xff" * 4000  # 500 ms of line silence
PAUSE = b"\xff" * 1600  # the 200 ms pause at which the final is asked for (the shipped pause_ms)
FILLERS = ("hmm", "uh", "um", "erm", "ah", "mm hmm", "huh", "ugh", "oh", "eh")
NONSENSE = ("flerb gronk", "mib tosh", "vrindle pake", "snorf", "glib dab", "porv nak tishel")


def _ulaw(pcm: bytes, rate: int) -> bytes:
    rs = Resampler(rate, 8000)
    return ulaw_encode(rs.process(pcm) + rs.flush())


def spoken(text: str, voice: str, rate: int) -> bytes:
    pcm = synthesize(text, voice=voice, rate_wpm=rate)
    return _ulaw(pcm.samples, pcm.sample_rate)


def grunt(ms: int, pitch_hz: float, formant_hz: float, seed: int) -> bytes:
    """A voiced burst: a glottal pulse train through one resonance, fast attack, decay."""
    rng = random.Random(seed)
    n = ms * 8
    r = 0.97
    theta = 2 * math.pi * formant_hz / 8000
    a1, a2 = 2 * r * math.cos(theta), -r * r
    y1 = y2 = 0.0
    out = array.array("h")
    phase = 0.0
    for i in range(n):
        f0 = pitch_hz * (1 + 0.05 * math.sin(i / 400))
        phase += f0 / 8000
        x = 1.0 if phase >= 1.0 else 0.0
        phase -= int(phase)
        y = x + a1 * y1 + a2 * y2 + rng.uniform(-0.02, 0.02)
        y2, y1 = y1, y
        env = min(1.0, i / 80) * (1 - i / n) ** 0.7
        out.append(max(-32768, min(32767, int(env * y * 2500))))
    return ulaw_encode(out.tobytes())


def phrases() -> tuple[list[str], set[str]]:
    script = default_script()
    said: list[str] = []
    ending: set[str] = set()
    for intent in script.intents:
        if intent.action in (IntentAction.GOODBYE, IntentAction.HANDOFF):
            said.extend(intent.phrases)
            ending.update(" ".join(p.split()) for p in intent.phrases)
        else:
            said.extend(intent.phrases[:4])
    return said, ending


def hear(rec: Recognizer, audio: bytes) -> list[tuple[str, float | None, float | None]]:
    """(text, ratio, confidence) of every final with words.

    As on a call: the turn taker asks for the final at the caller's first 200 ms pause (the
    client's commit), so the ear decodes the segment up to there (the ``asked`` path)."""
    out = rec.feed(GAP + audio + PAUSE)
    out.append(rec.commit())
    out += rec.feed(GAP * 2)
    got = []
    for o in out:
        if isinstance(o, Final) and o.text:
            got.append((o.text, rec.last_ratio, o.confidence))
    return got


@functools.cache
def _script() -> CallScript:
    return default_script()


def action(text: str) -> IntentAction | None:
    """What the script brain would do with these words (None: no intent)."""
    intent = _script().match_intent(text)
    return intent.action if intent is not None else None


def is_ending(text: str, ending: set[str]) -> bool:
    return action(text) in (IntentAction.GOODBYE, IntentAction.HANDOFF)


def auc(pos: list[float], neg: list[float]) -> float:
    if not pos or not neg:
        return float("nan")
    wins = sum((p > n) + 0.5 * (p == n) for p in pos for n in neg)
    return wins / (len(pos) * len(neg))


def quantiles(xs: list[float]) -> dict[str, float]:
    if not xs:
        return {}
    s = sorted(xs)
    q = lambda f: s[min(len(s) - 1, int(f * len(s)))]  # noqa: E731
    return {"min": s[0], "p10": q(0.1), "p50": q(0.5), "p90": q(0.9), "max": s[-1]}


def run() -> dict[str, Any]:
    said, ending = phrases()
    script = default_script()
    # the key terms a call's ear gets (hotline.server.listen.Listener.open_stt): the script's
    # example sentences, then its intent phrases
    keyterms = tuple(dict.fromkeys([*script.caller_phrases(), *script.keyterms()]))[:100]
    config = RecognizerConfig(keyterms=keyterms)
    rows: list[dict[str, Any]] = []
    cpu0 = time.process_time()
    for voice in VOICES:
        rec = Recognizer(config)
        for rate in RATES:
            for text in said:
                audio = spoken(text, voice, rate)
                ref = " ".join(normalise(text))
                for got, ratio, conf in hear(rec, audio):
                    rows.append(
                        dict(
                            kind="said",
                            voice=voice,
                            rate=rate,
                            ref=ref,
                            text=got,
                            right=got == ref,
                            ratio=ratio,
                            conf=conf,
                        )
                    )
                for got, ratio, conf in hear(rec, audio[::-1]):
                    rows.append(
                        dict(
                            kind="junk",
                            source="backwards",
                            voice=voice,
                            rate=rate,
                            ref=ref,
                            text=got,
                            ratio=ratio,
                            conf=conf,
                        )
                    )
        for text in (*FILLERS, *NONSENSE):
            for got, ratio, conf in hear(rec, spoken(text, voice, 170)):
                rows.append(
                    dict(
                        kind="junk",
                        source="filler",
                        voice=voice,
                        ref=text,
                        text=got,
                        ratio=ratio,
                        conf=conf,
                    )
                )
    rec = Recognizer(config)
    for seed in range(24):
        rng = random.Random(seed)
        audio = grunt(
            rng.choice((250, 350, 450, 600)), rng.uniform(90, 230), rng.uniform(400, 900), seed
        )
        for got, ratio, conf in hear(rec, audio):
            rows.append(dict(kind="junk", source="grunt", ref="", text=got, ratio=ratio, conf=conf))
    cpu = time.process_time() - cpu0
    right = [r for r in rows if r["kind"] == "said" and r["right"]]
    junk = [r for r in rows if r["kind"] == "junk"]
    right_end = [r for r in right if is_ending(r["text"], ending)]
    junk_end = [r for r in junk if is_ending(r["text"], ending)]
    thresholds = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8)

    def share(xs: list[dict[str, Any]], t: float) -> float:
        return sum((r["conf"] or 0) >= t for r in xs) / len(xs) if xs else float("nan")

    return {
        "versions": versions(),
        "counts": {
            "said_finals": sum(r["kind"] == "said" for r in rows),
            "said_right": len(right),
            "said_right_ending": len(right_end),
            "junk_with_words": len(junk),
            "junk_as_ending": len(junk_end),
            "junk_by_source": {
                s: sum(r.get("source") == s for r in junk) for s in ("backwards", "filler", "grunt")
            },
        },
        "ratio": {
            "said_right": quantiles([r["ratio"] for r in right if r["ratio"] is not None]),
            "junk": quantiles([r["ratio"] for r in junk if r["ratio"] is not None]),
        },
        "auc": {
            "all": auc([r["conf"] or 0 for r in right], [r["conf"] or 0 for r in junk]),
            "ending": auc([r["conf"] or 0 for r in right_end], [r["conf"] or 0 for r in junk_end]),
        },
        "at_threshold": [
            {
                "threshold": t,
                "said_kept": share(right, t),
                "ending_kept": share(right_end, t),
                "junk_through": share(junk, t),
                "junk_ending_through": share(junk_end, t),
            }
            for t in thresholds
        ],
        # the two ending intents apart: a junk goodbye hangs up on the caller, a junk handoff
        # passes them to a person; a goodbye not obeyed costs a repeat, and so does a handoff
        "by_action": {
            kind.value: {
                "right": len(r_act := [r for r in right_end if action(r["text"]) is kind]),
                "junk": len(j_act := [r for r in junk_end if action(r["text"]) is kind]),
                "at_threshold": [
                    {"threshold": t, "kept": share(r_act, t), "junk_through": share(j_act, t)}
                    for t in (0.1, 0.2, 0.3, 0.4, 0.5)
                ],
            }
            for kind in (IntentAction.GOODBYE, IntentAction.HANDOFF)
        },
        "cpu_s": cpu,
        "rows": rows,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--json", action="store_true", help="print the whole result as JSON")
    args = parser.parse_args(argv)
    result = run()
    if args.json:
        json.dump(result, sys.stdout, indent=1, default=str)
        print()
        return 0
    c = result["counts"]
    print(json.dumps(c))
    print("ratio per frame (x1000), said right:", result["ratio"]["said_right"])
    print("ratio per frame (x1000), junk:      ", result["ratio"]["junk"])
    print(f"ROC area: all {result['auc']['all']:.3f}, ending phrases {result['auc']['ending']:.3f}")
    print("threshold  said kept  goodbyes kept  junk through  junk-as-ending through")
    for row in result["at_threshold"]:
        print(
            f"{row['threshold']:9.1f}  {row['said_kept']:9.1%}  {row['ending_kept']:13.1%}"
            f"  {row['junk_through']:12.1%}  {row['junk_ending_through']:22.1%}"
        )
    for kind, row in result["by_action"].items():
        print(f"{kind}: {row['right']} heard right, {row['junk']} junk heard as one")
        for t in row["at_threshold"]:
            print(
                f"  at {t['threshold']:.1f}: {t['kept']:6.1%} kept, "
                f"{t['junk_through']:6.1%} of the junk through"
            )
    print(f"CPU {result['cpu_s']:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
