"""The Whisper ear and the grammar ear side by side, on the suite's own generated speech.

Utterances: :data:`hotline.ear.phrases.FREE_SENTENCES` (not in any script) and the script's
:data:`~hotline.ear.phrases.PHRASES`, each spoken by several eSpeak NG voices at several rates
(:data:`COMBOS`), 8 kHz µ-law as Twilio delivers a caller. Nothing is downloaded; no audio is
stored.

Measured:

* **offline** (the Whisper model alone, in this process): each utterance decoded in one piece,
  with the ear's settings (a window the utterance's length + 8 s, beam 5, the prompt from the
  key terms) and, for contrast, faster-whisper's own ``transcribe`` (30 s window,
  beam 5) with and without the same prompt. Word error rate, CPU per utterance.
* **live** (each ear in its own process, ``python -m hotline.ear``, over its real socket with
  the Scribe protocol, VAD commits after ``--silence-ms`` as hotline's client asks): the speech
  is sent as fast as the socket takes it, the silence after it in real time (100 ms chunks, as
  hotline's client sends); end of speech (the utterance's last frame above -42 dBFS: eSpeak's
  trailing silence is cut) -> committed transcript, p50/p95; word error rate;
  the ear process's CPU (from /proc) per utterance and per second of audio.
* **callers per core**: a caller who takes a turn every ``--turn-every-s`` seconds costs the
  ear's CPU per utterance (which holds the segmenting of the ~4 s of audio each utterance came
  with) that often: one core serves ``turn_every_s / cpu_per_utterance`` of them.

Word error rate: words lower-cased, punctuation dropped, numbers under 100 spelled out
("40" -> "forty"), Levenshtein distance over the reference's length.

    python -m benchmarks.bench_whisper [--json] [--quick] [--ears whisper,grammar]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import re
import statistics
import sys
import time
from dataclasses import dataclass
from typing import Any

from benchmarks.common import versions
from hotline.core.ulaw import SILENCE
from hotline.ear.phrases import FREE_SENTENCES, PHRASES, phrase_ulaw

#: (voice, words per minute): several voices and rates.
COMBOS: tuple[tuple[str, int], ...] = (("en-us", 175), ("en", 150), ("en-029", 200))
LEAD_S = 0.3

_ONES = (
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen "
    "fifteen sixteen seventeen eighteen nineteen"
).split()
_TENS = "_ _ twenty thirty forty fifty sixty seventy eighty ninety".split()


def _spell(n: int) -> str:
    if n < 20:
        return _ONES[n]
    if n < 100:
        return _TENS[n // 10] + ("" if n % 10 == 0 else " " + _ONES[n % 10])
    return str(n)


def words(text: str) -> list[str]:
    """Lower case, punctuation dropped, numbers under 100 spelled out."""
    text = text.lower().replace("’", "'")
    text = re.sub(r"\d+", lambda m: f" {_spell(int(m.group()))} ", text)
    return re.findall(r"[a-z']+", text)


def edits(ref: list[str], hyp: list[str]) -> int:
    """Word-level Levenshtein distance."""
    d = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        prev, d[0] = d[0], i
        for j, h in enumerate(hyp, 1):
            cur = min(d[j] + 1, d[j - 1] + 1, prev + (r != h))
            prev, d[j] = d[j], cur
    return d[len(hyp)]


def wer(pairs: list[tuple[str, str]]) -> float:
    """Word error rate (%) over (reference, heard) pairs."""
    e = n = 0
    for ref, hyp in pairs:
        r = words(ref)
        e += edits(r, words(hyp))
        n += len(r)
    return 100.0 * e / max(n, 1)


@dataclass(frozen=True)
class Utterance:
    text: str
    voice: str
    rate: int
    free: bool

    def ulaw(self) -> bytes:
        return phrase_ulaw(self.text, self.rate, self.voice)

    def speech(self) -> bytes:
        """The utterance up to its last frame of speech (the ears' -42 dBFS): end of speech is
        where the audio ends, so the silence after it is what the benchmark paces."""
        from hotline.codec import ulaw_frame_stats

        audio = self.ulaw()
        end = len(audio) - len(audio) % 160
        while end >= 160 and ulaw_frame_stats(audio[end - 160 : end])[0] < -42.0:
            end -= 160
        return audio[:end]


def utterances(quick: bool = False) -> list[Utterance]:
    combos = COMBOS[:1] if quick else COMBOS
    free = FREE_SENTENCES[:5] if quick else FREE_SENTENCES
    out = [Utterance(t, v, r, True) for v, r in combos for t in free]
    out += [Utterance(t, v, r, False) for v, r in combos[:2] for t in PHRASES]
    return out


def keyterms() -> tuple[str, ...]:
    """What hotline's server sends the local ear: the script's example sentences, then its
    key terms."""
    from hotline.core.script import default_script

    script = default_script()
    return tuple(dict.fromkeys([*script.caller_phrases(), *script.keyterms()]))[:100]


def _pcm16k(ulaw: bytes) -> bytes:
    from hotline.codec import Resampler, ulaw_decode

    r = Resampler(8000, 16000)
    return r.process(ulaw_decode(ulaw)) + r.flush()


def _split(rows: list[dict[str, Any]]) -> dict[str, Any]:
    free = [(r["text"], r["heard"]) for r in rows if r["free"]]
    script = [(r["text"], r["heard"]) for r in rows if not r["free"]]
    return {
        "wer_free": round(wer(free), 1),
        "wer_script": round(wer(script), 1),
        "n_free": len(free),
        "n_script": len(script),
    }


# ---------------------------------------------------------------------------- offline


def offline(utts: list[Utterance], contrast: bool) -> dict[str, Any]:
    from hotline.ear.whisper import WhisperEngine, WhisperSettings, prompt_from_keyterms

    prompt = prompt_from_keyterms(keyterms())
    engine = WhisperEngine(WhisperSettings(threads=1, workers=1))
    audio = [_pcm16k(u.ulaw()) for u in utts]
    out: dict[str, Any] = {}
    runs: list[tuple[str, Any]] = [
        (
            "ear settings (window = speech + 8 s, beam 5, prompt)",
            lambda a: engine.decode(a, prompt).raw,
        ),
        ("same, no prompt", lambda a: engine.decode(a, " ").raw),
    ]
    if contrast:
        import numpy as np

        model = engine._model

        def transcribe(a: bytes, p: str | None) -> str:
            x = np.frombuffer(a, np.int16).astype(np.float32) / 32768.0
            segs, _ = model.transcribe(
                x,
                beam_size=5,
                language="en",
                vad_filter=False,
                condition_on_previous_text=False,
                without_timestamps=True,
                initial_prompt=p,
            )
            return " ".join(s.text.strip() for s in segs)

        runs += [
            (
                "faster-whisper transcribe (30 s window, beam 5, prompt)",
                lambda a: transcribe(a, prompt),
            ),
            ("faster-whisper transcribe (30 s window, beam 5)", lambda a: transcribe(a, None)),
        ]
    for name, fn in runs:
        rows = []
        t0 = time.process_time()
        w0 = time.monotonic()
        for u, a in zip(utts, audio, strict=True):
            rows.append({"text": u.text, "heard": fn(a), "free": u.free})
        cpu = time.process_time() - t0
        out[name] = {
            **_split(rows),
            "cpu_s_per_utt": round(cpu / len(utts), 3),
            "wall_s_per_utt": round((time.monotonic() - w0) / len(utts), 3),
            "rows": rows,
        }
    return out


# ---------------------------------------------------------------------------- live


def _proc_cpu(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def live(
    engine: str, utts: list[Utterance], silence_ms: int, tail_s: float, extra: tuple[str, ...]
) -> dict[str, Any]:
    from websockets.asyncio.client import connect

    from hotline.ear.process import EarProcess

    ear = await EarProcess.start(60.0, engine=engine, extra_args=extra)
    try:
        query = [
            ("model_id", "scribe_v2_realtime"),
            ("audio_format", "ulaw_8000"),
            ("commit_strategy", "vad"),
            ("vad_silence_threshold_secs", str(silence_ms / 1000)),
        ] + [("keyterms", k) for k in keyterms()]
        from urllib.parse import urlencode

        url = f"{ear.url}/v1/speech-to-text/realtime?{urlencode(query)}"
        rows: list[dict[str, Any]] = []
        latencies: list[float] = []
        # No keepalive pings: the grammar ear decoding a free sentence against a long grammar
        # holds its GIL for seconds (it is measured, not failed, here).
        async with connect(url, max_size=None, ping_interval=None, close_timeout=30) as ws:
            msg = json.loads(await ws.recv())
            assert msg["message_type"] == "session_started", msg

            async def send(audio: bytes) -> None:
                await ws.send(
                    json.dumps(
                        {
                            "message_type": "input_audio_chunk",
                            "audio_base_64": base64.b64encode(audio).decode(),
                            "commit": False,
                            "sample_rate": 8000,
                        }
                    )
                )

            cpu0 = _proc_cpu(ear.proc.pid)
            audio_s = 0.0
            for u in utts:
                speech = SILENCE * int(LEAD_S * 8000) + u.speech()
                for i in range(0, len(speech), 800):
                    await send(speech[i : i + 800])
                end_of_speech = time.monotonic()
                heard: list[str] = []
                got_at: float | None = None
                chunks = int(tail_s * 10)
                for k in range(chunks):
                    await send(SILENCE * 800)
                    deadline = end_of_speech + (k + 1) * 0.1
                    while (wait := deadline - time.monotonic()) > 0:
                        try:
                            raw = await asyncio.wait_for(ws.recv(), wait)
                        except asyncio.TimeoutError:  # not the builtin on 3.10
                            break
                        m = json.loads(raw)
                        if m.get("message_type") == "committed_transcript":
                            heard.append(m["text"])
                            if got_at is None:
                                got_at = time.monotonic()
                if got_at is None:  # late: wait for it (unpaced), so it is not the next one's
                    try:
                        while got_at is None:
                            m = json.loads(await asyncio.wait_for(ws.recv(), 30.0))
                            if m.get("message_type") == "committed_transcript":
                                heard.append(m["text"])
                                got_at = time.monotonic()
                    except asyncio.TimeoutError:  # not the builtin on 3.10
                        pass
                audio_s += len(speech) / 8000 + chunks * 0.1
                if got_at is not None:
                    latencies.append(got_at - end_of_speech)
                rows.append(
                    {
                        "text": u.text,
                        "voice": u.voice,
                        "rate": u.rate,
                        "heard": " ".join(t for t in heard if t),
                        "free": u.free,
                        "final_s": None if got_at is None else round(got_at - end_of_speech, 3),
                    }
                )
            cpu = _proc_cpu(ear.proc.pid) - cpu0
    finally:
        await ear.stop()
    lat = sorted(latencies)
    return {
        **_split(rows),
        "final_p50_s": round(statistics.median(lat), 3) if lat else None,
        "final_p95_s": round(lat[min(len(lat) - 1, int(0.95 * len(lat)))], 3) if lat else None,
        "finals": f"{len(lat)}/{len(utts)}",
        "cpu_s_per_utt": round(cpu / len(utts), 3),
        "cpu_s_per_audio_s": round(cpu / audio_s, 4),
        "audio_s": round(audio_s, 1),
        "rows": rows,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--quick", action="store_true", help="5 free sentences, one voice")
    parser.add_argument("--ears", default="whisper,grammar")
    parser.add_argument("--no-offline", action="store_true")
    parser.add_argument("--contrast", action="store_true", help="also faster-whisper's 30 s")
    parser.add_argument("--silence-ms", type=int, default=700, help="as HOTLINE_TURN_SILENCE_MS")
    parser.add_argument("--tail-s", type=float, default=2.0, help="silence sent after each")
    parser.add_argument("--turn-every-s", type=float, default=8.0, help="a caller's turn rate")
    parser.add_argument("--ear-args", default="", help="more python -m hotline.ear options")
    args = parser.parse_args(argv)
    utts = utterances(args.quick)
    report: dict[str, Any] = {
        "versions": versions(),
        "load_before": os.getloadavg(),
        "utterances": len(utts),
        "free": sum(u.free for u in utts),
        "combos": COMBOS,
    }
    if not args.no_offline and "whisper" in args.ears:
        report["offline"] = offline(utts, args.contrast)
    report["live"] = {}
    for ear in [e for e in args.ears.split(",") if e]:
        r = asyncio.run(live(ear, utts, args.silence_ms, args.tail_s, tuple(args.ear_args.split())))
        # cpu_s_per_utt already holds the segmenting of the ~4 s of audio each one came with
        r["callers_per_core"] = round(args.turn_every_s / r["cpu_s_per_utt"], 1)
        report["live"][ear] = r
    report["load_after"] = os.getloadavg()
    if args.json:
        json.dump(report, sys.stdout, indent=2)
        print()
        return 0
    print(
        f"{len(utts)} utterances ({report['free']} free sentences); load "
        f"{report['load_before'][0]:.2f} -> {report['load_after'][0]:.2f}"
    )
    for name, r in report.get("offline", {}).items():
        print(
            f"offline {name}: WER free {r['wer_free']}%, script {r['wer_script']}%; "
            f"{r['cpu_s_per_utt']} CPU-s per utterance"
        )
    for ear, r in report["live"].items():
        print(
            f"live {ear}: WER free {r['wer_free']}%, script {r['wer_script']}%; end of speech "
            f"-> final p50 {r['final_p50_s']} s, p95 {r['final_p95_s']} s ({r['finals']}); "
            f"{r['cpu_s_per_utt']} CPU-s per utterance, {r['cpu_s_per_audio_s']} per audio-s; "
            f"~{r['callers_per_core']} conversing callers per core "
            f"(a turn every {args.turn_every_s:g} s)"
        )
        for row in r["rows"]:
            if words(row["heard"]) != words(row["text"]):
                print(f"    [{row['voice']} {row['rate']}] {row['text']!r} -> {row['heard']!r}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
