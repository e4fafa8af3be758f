"""Turn taking on the suite's own generated calls: premature cut-offs and the end-of-turn wait.

Scored as the public end-of-turn benchmarks are (LiveKit's eot-bench; ``shared/docs/
turn-taking.md`` §5): a **cut-off** is a turn ended during one of the caller's mid-turn pauses
(the rest of the question then becomes a second turn); the **wait** is the time from the
caller's true end of speech to the turn ended, p50 / p95 over every utterance.

The set (:func:`dataset`, made here, nothing stored or downloaded): questions spoken by several
eSpeak NG voices at several rates, 8 kHz µ-law as Twilio delivers a caller:

* **paused**: a question broken at an unfinished point by a silence of 300-1500 ms ("What are
  the … tour dates?"). The two halves are cut from one synthesis of the whole sentence where
  eSpeak's word event says the next word begins, so the first part keeps its mid-sentence
  intonation (a prefix synthesised alone ends like a finished sentence). Some break after a
  word the transcript signal knows ("the", "to", "about", "my", "any", "or", numbers), some
  after one it cannot know ("Where can I … buy merch?");
* **whole**: a question with no pause;
* **overlays**: a 200 ms cough (:mod:`hotline.sim.noise`) inside the pause or after a whole
  question, and steady line noise (-48 dBFS) under the whole utterance.

Each utterance runs through the real endpointer (:class:`hotline.core.turns.TurnTaker`), the
real speech detector (the energy VAD or Silero, :mod:`hotline.turn.silero`) and the real local
ear (the grammar ear on the default script's phrases, and the Whisper ear when its extra is
installed), in process, on a simulated clock: 20 ms frames in media time; when the endpointer
asks for the final (``CommitTranscript``) or the model's verdict (``JudgeTurn``), the ear or
the model runs at once in a worker thread (off the simulation's loop, as in the server) and its
answer is delivered after the CPU time it took (the process's: the Whisper ear decodes in its
pool's thread; one thread each, so on an idle core that is its wall time, and the figures do
not move with whatever else loads a shared machine). Policies:

* ``silence-300`` / ``-700`` / ``-1200``: today's silence-only endpointing
  (``HOTLINE_TURN_SILENCE_MS``);
* ``vad``: two steps with no signal (the pause, then ``settle_ms`` of silence);
* ``words``: two steps, the words as the server reads them for the ear (the default): the
  transcript signal (a turn ending in "the", "and", "to"… waits for the fallback) and, with the
  Whisper ear, its confidence (a turn that is one final rated below ``min_confidence``, 0.8:
  :meth:`hotline.ear.process.EarProcess.min_confidence`, waits too);
* ``words-conf``: the transcript signal alone (what the confidence adds);
* ``model``: two steps, Smart Turn v3.2 alone (no transcript signal, no confidence);
* ``model+words``: both.

``--min-confidence X`` sets the confidence floor for ``words`` and ``model+words``.

Measured and not shipped (session 7-8): the transcript signal also reading a final the ear
wrote as trailing off ("...", "-", ","): no cut-off fewer on this set, +28 ms median wait.

    python -m benchmarks.bench_turns [--ears grammar,whisper] [--vads energy,silero]
        [--policies ...] [--threshold 0.5] [--min-confidence X] [--quick] [--json]
"""

from __future__ import annotations

import argparse
import array
import ctypes
import heapq
import itertools
import json
import sys
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import Any

from benchmarks.common import versions
from hotline.codec import Resampler, ulaw_decode, ulaw_encode, ulaw_frame_stats
from hotline.core import turns as turns_module
from hotline.core.events import Media, SpeechEnded, SpeechStarted
from hotline.core.turns import (
    CommitTranscript,
    JudgeTurn,
    TurnConfig,
    TurnEnded,
    TurnTaker,
)
from hotline.core.ulaw import FRAME_BYTES
from hotline.core.vad import Vad, VadConfig
from hotline.sim.noise import cough, line_noise

#: Sentences with the unfinished point marked by "|".
PAUSED: tuple[str, ...] = (
    # after a word the transcript signal knows
    "What are the | tour dates?",
    "Can you tell me about | the new album?",
    "I would like to | buy two tickets.",
    "Do you have any | shows in London?",
    "I am calling about my | refund.",
    "Is there a show in Paris or | in Berlin?",
    "My order number is four five | six seven.",
    # after a word it cannot know
    "Where can I | buy merch?",
    "When does the show | start?",
    "How much are | the tickets?",
    "Is the new album | out yet?",
    "Will there be | a livestream?",
)
WHOLE: tuple[str, ...] = (
    "What are the tour dates?",
    "Where can I buy merch?",
    "When does the show start?",
    "How much are the tickets?",
    "Is the new album out yet?",
    "Can I get a refund?",
    "Tell me about the tour.",
    "Thank you, goodbye.",
)
#: Whole statements: the endpointing set's whole turns are WHOLE and these, by every voice (a
#: signal that holds turns is measured on enough finished ones); the model is scored on them
#: too, since eSpeak ends a question rising, which a model trained on people may read as
#: "unfinished".
STATEMENTS: tuple[str, ...] = (
    "I want to buy a ticket for the Seattle show.",
    "My name is Sam and I live in Portland.",
    "I bought a shirt last week and it never arrived.",
    "I just wanted to say the new record is lovely.",
    "The show in Vancouver was sold out.",
    "I need to change the address on my order.",
)
VOICES: tuple[tuple[str, int], ...] = (
    ("en-us", 175),
    ("en-gb-x-rp", 150),
    ("en-us+f3", 200),
    ("en", 165),
)
PAUSES_MS: tuple[int, ...] = (300, 500, 700, 900, 1200, 1500)
LEAD_MS = 500
TAIL_MS = 3500  # after the last word: longer than any fallback
SPEECH_DBFS = -45.0


@dataclass(frozen=True)
class Utterance:
    """One caller turn: its µ-law and where its speech is (ms from the start)."""

    name: str
    ulaw: bytes
    end_ms: int  # the true end of speech (the last speech frame's end)
    pauses: tuple[tuple[int, int], ...]  # mid-turn silences (start, end), ms
    kind: str  # "paused" or "whole"
    overlay: str  # "", "cough", "noise"


def _speech(text: str, voice: str, rate: int) -> bytes:
    from hotline.tts_standin.espeak import synthesize

    pcm = synthesize(text, voice=voice, rate_wpm=rate)
    rs = Resampler(pcm.sample_rate, 8000)
    return _trim(ulaw_encode(rs.process(pcm.samples) + rs.flush()))


def _loud(ulaw: bytes) -> bool:
    return ulaw_frame_stats(ulaw)[0] > SPEECH_DBFS


def _trim(ulaw: bytes) -> bytes:
    """Without eSpeak's leading and trailing silence (10 ms steps)."""
    a, b = 0, len(ulaw)
    while a < b and not _loud(ulaw[a : a + 80]):
        a += 80
    while b > a and not _loud(ulaw[b - 80 : b]):
        b -= 80
    return ulaw[a:b]


class _EspeakEvent(ctypes.Structure):
    # speak_lib.h espeak_EVENT: type, unique_identifier, text_position, length,
    # audio_position, sample, user_data, id (a union of 8 bytes).
    _fields_ = [
        ("type", ctypes.c_int),
        ("unique_identifier", ctypes.c_uint),
        ("text_position", ctypes.c_int),
        ("length", ctypes.c_int),
        ("audio_position", ctypes.c_int),
        ("sample", ctypes.c_int),
        ("user_data", ctypes.c_void_p),
        ("id", ctypes.c_char * 8),
    ]


_EVENT_WORD = 1  # espeakEVENT_WORD; 0 ends the list


def _speech_with_words(
    text: str, voice: str, rate: int
) -> tuple[bytes, int, list[tuple[int, int]]]:
    """eSpeak's int16 PCM for ``text``, its rate, and (character position, first sample) of
    every word, from the word events hotline's voice does not collect: the benchmark swaps its
    own callback in for one synthesis, under the engine's lock."""
    from hotline.tts_standin import espeak

    marks: list[tuple[int, int]] = []
    with espeak._LOCK:
        engine = espeak._get_engine()

        def on_samples(wav: Any, n: int, events: Any) -> int:
            if n > 0 and wav:
                engine._chunks.append(ctypes.string_at(wav, n * 2))
            if events:
                ev = ctypes.cast(events, ctypes.POINTER(_EspeakEvent))
                i = 0
                while ev[i].type != 0:
                    if ev[i].type == _EVENT_WORD:
                        marks.append((ev[i].text_position, ev[i].sample))
                    i += 1
            return 0

        callback = espeak._SYNTH_CALLBACK(on_samples)
        engine._lib.espeak_SetSynthCallback(callback)
        try:
            samples = engine.synthesize(text, voice, rate, 50)
        finally:
            engine._lib.espeak_SetSynthCallback(engine._callback)
        return samples, engine.sample_rate, marks


def _split_pcm(sentence: str, voice: str, rate: int) -> tuple[bytes, bytes, int]:
    """One synthesis of the whole sentence, cut where the word after the "|" begins (eSpeak's
    word event): int16 PCM of both parts at eSpeak's rate."""
    head_text, tail_text = (part.strip() for part in sentence.split("|"))
    text = f"{head_text} {tail_text}"
    samples, sr, marks = _speech_with_words(text, voice, rate)
    first = len(head_text) + 2  # 1-based position of the tail's first character
    cut = min((s for pos, s in marks if pos >= first), default=None)
    if cut is None:
        raise RuntimeError(f"eSpeak gave no word event for {tail_text!r}")
    return samples[: 2 * cut], samples[2 * cut :], sr


def _phone(pcm: bytes, sr: int) -> bytes:
    rs = Resampler(sr, 8000)
    return ulaw_encode(rs.process(pcm) + rs.flush())


def _split(sentence: str, voice: str, rate: int) -> tuple[bytes, bytes]:
    """:func:`_split_pcm` as trimmed 8 kHz µ-law: the first part keeps its mid-sentence
    intonation."""
    head, tail, sr = _split_pcm(sentence, voice, rate)
    return _trim(_phone(head, sr)), _trim(_phone(tail, sr))


def _mix(base: bytes, extra: bytes, at: int) -> bytes:
    """``extra`` added (as PCM) into ``base`` from byte ``at``."""
    a = array.array("h", ulaw_decode(base))
    b = array.array("h", ulaw_decode(extra))
    for i, v in enumerate(b):
        j = at + i
        if j < len(a):
            a[j] = max(-32768, min(32767, a[j] + v))
    return ulaw_encode(a.tobytes())


def _frames_len(n: int) -> int:
    return -(-n // FRAME_BYTES) * FRAME_BYTES


def dataset(quick: bool = False) -> list[Utterance]:
    """The generated set (see the module docstring); ``quick``: a quarter of it."""
    out: list[Utterance] = []
    silence = b"\xff"
    pause_cycle = itertools.cycle(PAUSES_MS)
    n = 0
    for vi, (voice, rate) in enumerate(VOICES):
        for si, sentence in enumerate(PAUSED):
            if quick and (si + vi) % 4:
                continue
            head, tail = _split(sentence, voice, rate)
            pause = next(pause_cycle)
            overlay = ("", "", "cough", "noise")[n % 4]
            n += 1
            p0 = LEAD_MS * 8 + len(head)
            p1 = p0 + pause * 8
            audio = silence * (LEAD_MS * 8) + head + silence * (pause * 8) + tail
            end = len(audio)
            audio += silence * (TAIL_MS * 8)
            if overlay == "cough" and pause >= 500:
                audio = _mix(audio, cough(200, seed=n, smooth=0.9), p0 + (pause * 8 - 1600) // 2)
            elif overlay == "noise":
                audio = _mix(audio, line_noise(len(audio) // 8, seed=n, dbfs=-48.0), 0)
            else:
                overlay = "" if overlay == "cough" else overlay
            name = f"{sentence.replace(' | ', ' … ')} [{voice} {rate}, {pause} ms]"
            pad = _frames_len(len(audio)) - len(audio)
            out.append(
                Utterance(
                    name,
                    audio + silence * pad,
                    end // 8,
                    ((p0 // 8, p1 // 8),),
                    "paused",
                    overlay,
                )
            )
    for vi, (voice, rate) in enumerate(VOICES if not quick else VOICES[:1]):
        for si, text in enumerate(WHOLE + STATEMENTS):
            speech = _speech(text, voice, rate)
            audio = silence * (LEAD_MS * 8) + speech
            end = len(audio)
            audio += silence * (TAIL_MS * 8)
            overlay = ""
            if (si + vi) % 3 == 0:
                overlay = "cough"  # a cough 600 ms after the question
                audio = _mix(audio, cough(200, seed=100 + si, smooth=0.8), end + 600 * 8)
            pad = _frames_len(len(audio)) - len(audio)
            out.append(
                Utterance(
                    f"{text} [{voice} {rate}]",
                    audio + silence * pad,
                    end // 8,
                    (),
                    "whole",
                    overlay,
                )
            )
    return out


# ------------------------------------------------------------------------------ the ears


class Ear:
    """The local ear in process: ``feed`` a frame, ``commit``; finals come with the CPU time they took."""

    def __init__(
        self, kind: str, keyterms: tuple[str, ...], rate_phrases: tuple[str, ...] = ()
    ) -> None:
        from hotline.ear.recognizer import Recognizer, RecognizerConfig

        self.kind = kind
        # The endpointer commits at every pause: the ear's own silence commit is off. The
        # grammar ear rates what the server has it rate: the phrases that end a call.
        self._config = RecognizerConfig(
            keyterms=keyterms, vad=False, rate_phrases=rate_phrases if kind == "grammar" else None
        )
        self._pool: Any = None
        if kind == "whisper":
            from hotline.ear.whisper import DecodePool, WhisperEngine

            self._pool = DecodePool(WhisperEngine())
        self._make: Callable[[], Any] = (
            (lambda: Recognizer(self._config)) if kind == "grammar" else (lambda: self._whisper())
        )
        self.rec: Any = None
        self.latencies: list[float] = []

    def _whisper(self) -> Any:
        from hotline.ear.whisper import WhisperRecognizer

        return WhisperRecognizer(self._config, self._pool)

    def new_stream(self) -> None:
        self.rec = self._make()

    def _resolve(self, items: list[Any]) -> list[Any]:
        from hotline.ear.whisper import PendingFinal

        return [i.future.result() if isinstance(i, PendingFinal) else i for i in items]

    def feed(self, frame: bytes) -> tuple[list[Any], float]:
        t = time.process_time()
        out = self._resolve(list(self.rec.feed(frame)))
        return out, time.process_time() - t

    def commit(self) -> tuple[Any, float]:
        t = time.process_time()
        final = self._resolve([self.rec.commit()])[0]
        wall = time.process_time() - t
        self.latencies.append(wall)
        return final, wall

    def close(self) -> None:
        if self._pool is not None:
            self._pool.close()


# ------------------------------------------------------------------------------ one run


@dataclass
class Outcome:
    name: str
    kind: str
    overlay: str
    turns: list[tuple[float, str, str]] = field(default_factory=list)  # (at ms, text, reason)
    cut_off: bool = False
    wait_ms: float | None = None
    judge_calls: int = 0
    judge_cpu: float = 0.0
    pauses: tuple[tuple[int, int], ...] = ()
    #: what happened, in media ms: ("final", text), ("verdict", p), ("onset", vad ts),
    #: ("offset", vad ts), ("loud", first loud frame after a pause began)
    trace: list[tuple[float, str, Any]] = field(default_factory=list)


def _detector(kind: str, config: VadConfig) -> Any:
    if kind == "silero":
        from hotline.turn.silero import SileroDetector

        return SileroDetector(config)
    return Vad(config)


def run_one(
    utt: Utterance,
    config: TurnConfig,
    vad_kind: str,
    ear: Ear,
    judge: Any,
    worker: ThreadPoolExecutor,
) -> Outcome:
    vad_config = VadConfig()  # the server's defaults (HOTLINE_VAD_*)
    det = _detector(vad_kind, vad_config)
    turns = TurnTaker(config)
    ear.new_stream()
    out = Outcome(utt.name, utt.kind, utt.overlay, pauses=utt.pauses)
    queue: list[tuple[float, int, str, Any]] = []  # (due s, tie, kind, payload)
    tie = itertools.count()

    def handle(now: float) -> None:
        for event in turns.events():
            if isinstance(event, CommitTranscript):
                final, took = worker.submit(ear.commit).result()
                heapq.heappush(
                    queue, (now + took, next(tie), "final", (final.text, final.confidence))
                )
            elif isinstance(event, JudgeTurn):
                assert judge is not None
                fut: Future[tuple[float, float, float]] = worker.submit(_judge, judge, event.audio)
                p, took, cpu = fut.result()
                out.judge_calls += 1
                out.judge_cpu += cpu
                heapq.heappush(queue, (now + took, next(tie), "verdict", (event.seq, p)))
            elif isinstance(event, TurnEnded):
                out.turns.append((now * 1000, event.text, event.reason))

    ulaw = utt.ulaw
    for i in range(0, len(ulaw), FRAME_BYTES):
        ts = i // 8
        now = ts / 1000
        while queue and queue[0][0] <= now:
            due, _, kind, payload = heapq.heappop(queue)
            if kind == "final":
                text, confidence = payload
                out.trace.append((due * 1000, "final", text))
                out.trace.append((due * 1000, "confidence", confidence))
                turns.final(text, due, False, confidence)
            else:
                out.trace.append((due * 1000, "verdict", payload[1]))
                turns.verdict(payload[0], payload[1], due)
            handle(due)
        frame = ulaw[i : i + FRAME_BYTES]
        results, wall = ear.feed(frame)
        for r in results:
            if hasattr(r, "words"):  # a Final of the ear's own (max segment)
                heapq.heappush(queue, (now + wall, next(tie), "final", (r.text, r.confidence)))
            elif r.text:
                turns.partial(r.text, now, False)
        event = det.process(Media("inbound", 0, ts, frame))
        if isinstance(event, SpeechStarted):
            out.trace.append((ts, "onset", event.timestamp_ms))
            turns.speech_started(event.timestamp_ms, now, False)
        elif isinstance(event, SpeechEnded):
            out.trace.append((ts, "offset", event.timestamp_ms))
            turns.speech_ended(event.timestamp_ms, now)
        if any(p1 <= ts < p1 + 20 for _, p1 in utt.pauses):
            out.trace.append((ts, "resumed", getattr(det, "voiced", True)))
        # As the server does (hotline.core.listening): the detector's view of the frame.
        turns.media(ts, now, frame, getattr(det, "voiced", True), getattr(det, "loud", None))
        handle(now)
        turns.poll(now)
        handle(now)
    if hasattr(det, "close"):
        det.close()
    ends = [t for t in out.turns if t[1]]
    out.cut_off = any(at < utt.end_ms for at, _, _ in ends)
    after = [at for at, _, _ in ends if at >= utt.end_ms]
    out.wait_ms = after[0] - utt.end_ms if after else None
    return out


def explain(o: Outcome, end_ms: int) -> tuple[str, str]:
    """Why a cut-off happened: its cause (a short key, counted in the summary) and a line
    with the evidence: the turn that ended early (when, by which signal, on what words), what
    the ear returned at each forced final and the model's probabilities before it, and when
    the caller's speech resumed against when the detector reported it."""
    ends = [t for t in o.turns if t[1] and t[0] < end_ms]
    at, text, reason = ends[0]
    p0, p1 = next(((a, b) for a, b in o.pauses if a <= at + 3000), (0, 0))
    finals = [repr(x) for t, k, x in o.trace if k == "final" and t <= at]
    rated = [f"{x:.2f}" for t, k, x in o.trace if k == "confidence" and t <= at and x is not None]
    probs = [f"{x:.2f}" for t, k, x in o.trace if k == "verdict" and t <= at]
    onsets = [(t, x) for t, k, x in o.trace if k == "onset" and x >= p1 - 100]
    voiced = next((x for t, k, x in o.trace if k == "resumed"), None)
    if at >= p1:
        heard = f"{onsets[0][0] - p1:.0f} ms" if onsets else "never"
        cause = "resumed speech not yet reported"
        why = (
            f"ended {at - p1:.0f} ms after speech resumed; the detector reported the onset "
            f"after {heard} (its first resumed frame voiced: {voiced})"
        )
    elif reason == "words":
        flag = "unfinished" if turns_module.unfinished(text) else "finished"
        cause = "words looked finished"
        why = f"no model; the words read {flag} and the silence reached settle_ms"
    elif reason == "judge":
        cause = "model said done"
        why = f"the model's p={probs[-1] if probs else '?'} (words read finished)"
    elif reason == "fallback":
        cause = "pause longer than the fallback"
        why = "the silence reached fallback_ms"
    else:
        cause = f"{reason}"
        why = f"ended by {reason}"
    line = (
        f"CUT {o.name}: pause {p0}-{p1} ms, ended at {at:.0f} ms ({at - p0:.0f} ms into it) "
        f"by {reason!r} on {text!r}; finals {', '.join(finals) or '-'}; "
        f"confidence {', '.join(rated) or '-'}; p {', '.join(probs) or '-'}; {why}"
    )
    return cause, line


def _judge(model: Any, audio: bytes) -> tuple[float, float, float]:
    c = time.process_time()
    p = model.complete_probability(audio)
    cpu = time.process_time() - c
    return p, cpu, cpu


# ------------------------------------------------------------------------------ policies


def policies(
    threshold: float, phrases: tuple[str, ...] = (), min_confidence: float = 0.0
) -> dict[str, TurnConfig]:
    """The policies, each as the server builds it (``phrases``: the script's, as the server
    passes them, and ``min_confidence``, the ear's: see :func:`hotline.server.listen.turn_config`)."""
    base = TurnConfig(speculate=False, phrases=phrases, min_confidence=min_confidence)
    return {
        "silence-300": replace(base, silence_ms=300),
        "silence-700": replace(base, silence_ms=700),
        "silence-1200": replace(base, silence_ms=1200),
        "vad": replace(base, unfinished_words=(), min_confidence=0.0),
        "words": base,
        "model": replace(
            base, judge=True, threshold=threshold, unfinished_words=(), min_confidence=0.0
        ),
        "model+words": replace(base, judge=True, threshold=threshold),
        "words-conf": replace(base, min_confidence=0.0),
    }


def _pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    s = sorted(values)
    return s[min(len(s) - 1, max(0, round(q * (len(s) - 1))))]


def summarise(outcomes: list[Outcome]) -> dict[str, Any]:
    paused = [o for o in outcomes if o.kind == "paused"]
    waits = [o.wait_ms for o in outcomes if o.wait_ms is not None]
    whole = [o.wait_ms for o in outcomes if o.kind == "whole" and o.wait_ms is not None]
    return {
        "whole_wait_p50_ms": _pct(whole, 0.5),
        # finished turns held as if unfinished (the fallback's wait, not the short one)
        "whole_held_pct": 100 * sum(w >= 1500 for w in whole) / max(len(whole), 1),
        "utterances": len(outcomes),
        "cut_off_pct": 100 * sum(o.cut_off for o in outcomes) / max(len(outcomes), 1),
        "cut_off_paused_pct": 100 * sum(o.cut_off for o in paused) / max(len(paused), 1),
        "wait_p50_ms": _pct(waits, 0.5),
        "wait_p95_ms": _pct(waits, 0.95),
        "never_ended": sum(o.wait_ms is None for o in outcomes),
        "split_turns": sum(len([t for t in o.turns if t[1]]) > 1 for o in outcomes),
        "judge_calls": sum(o.judge_calls for o in outcomes),
        "judge_cpu_ms_per_call": (
            1000 * sum(o.judge_cpu for o in outcomes) / max(sum(o.judge_calls for o in outcomes), 1)
        ),
    }


def cpu_figures(seconds: float = 60.0) -> dict[str, float]:
    """CPU per call-second of the speech detectors, and of one Smart Turn query.

    The caller's side of a call: ``seconds`` of audio that is 1/3 speech (the questions of the
    set, one after another with 2 s of silence between: a caller who talks a third of the
    time) and, apart, all silence (a caller listening to hotline)."""
    from hotline.turn.silero import SileroDetector, SileroPool, silero_available
    from hotline.turn.smart_turn import load

    talk = bytearray()
    for i in itertools.count():
        voice, rate = VOICES[i % len(VOICES)]
        talk += _speech(WHOLE[i % len(WHOLE)], voice, rate) + b"\xff" * 16000
        if len(talk) >= seconds * 8000:
            break
    talk_bytes = bytes(talk[: int(seconds * 8000) // FRAME_BYTES * FRAME_BYTES])
    quiet = b"\xff" * len(talk_bytes)
    speech_share = sum(
        _loud(talk_bytes[i : i + FRAME_BYTES]) for i in range(0, len(talk_bytes), FRAME_BYTES)
    ) / (len(talk_bytes) // FRAME_BYTES)
    out: dict[str, float] = {"speech_share": speech_share}

    def per_call_second(make: Callable[[], Any], audio: bytes) -> float:
        best = float("inf")
        for _ in range(3):
            det = make()
            frames = [
                Media("inbound", 0, i // 8, bytes(audio[i : i + FRAME_BYTES]))
                for i in range(0, len(audio), FRAME_BYTES)
            ]
            t = time.process_time()
            for m in frames:
                det.process(m)
            best = min(best, time.process_time() - t)
        return 1000 * best / (len(audio) / 8000)

    out["energy_ms_per_call_s_talking"] = per_call_second(Vad, talk_bytes)
    out["energy_ms_per_call_s_silent"] = per_call_second(Vad, quiet)
    if silero_available():
        pool = SileroPool(prewarm=1)
        out["silero_ms_per_call_s_talking"] = per_call_second(
            lambda: SileroDetector(pool=pool), talk_bytes
        )
        out["silero_ms_per_call_s_silent"] = per_call_second(
            lambda: SileroDetector(pool=pool), quiet
        )
    model = load("auto")
    if model is not None:
        turn = _speech(WHOLE[0], "en-us", 175) + b"\xff" * 2000
        cpu_feat, cpu_all = [], []
        for _ in range(10):
            t = time.process_time()
            model.features(turn)
            cpu_feat.append(time.process_time() - t)
            t = time.process_time()
            model.complete_probability(turn)
            cpu_all.append(time.process_time() - t)
        out["smart_turn_features_ms"] = 1000 * sorted(cpu_feat)[len(cpu_feat) // 2]
        out["smart_turn_query_ms"] = 1000 * sorted(cpu_all)[len(cpu_all) // 2]
    return out


def model_scores(model: Any) -> dict[str, Any]:
    """Smart Turn on its own: the probability it gives each first part of a broken question
    (unfinished) and each whole question (finished), each followed by 200 ms of silence, on
    the phone (8 kHz µ-law, upsampled) and on wideband (eSpeak's own rate resampled straight to
    16 kHz: what the model was trained on). Rates at thresholds 0.5 / 0.7 / 0.9."""
    import numpy as np

    def wide(pcm: bytes, sr: int) -> Any:
        rs = Resampler(sr, 16000)
        x = np.frombuffer(rs.process(pcm) + rs.flush(), dtype="<i2").astype(np.float32) / 32768
        loud = np.nonzero(np.abs(x) > 10 ** (SPEECH_DBFS / 20))[0]
        x = x[loud[0] : loud[-1] + 1] if loud.size else x
        return np.concatenate([x, np.zeros(3200, np.float32)])

    silence = b"\xff" * 1600
    scores: dict[str, list[float]] = {
        k: [] for k in ("unf_phone", "unf_wide", "fin_phone", "fin_wide")
    }
    finished_is_question: list[bool] = []
    for voice, rate in VOICES:
        for sentence in PAUSED:
            head, _tail, sr = _split_pcm(sentence, voice, rate)
            scores["unf_phone"].append(
                model.complete_probability(_trim(_phone(head, sr)) + silence)
            )
            scores["unf_wide"].append(model.complete_probability_16k(wide(head, sr)))
        for text in (*WHOLE, *STATEMENTS, *(p.replace(" |", "") for p in PAUSED)):
            finished_is_question.append(text.rstrip().endswith("?"))
            samples, sr, _ = _speech_with_words(text, voice, rate)
            scores["fin_phone"].append(
                model.complete_probability(_trim(_phone(samples, sr)) + silence)
            )
            scores["fin_wide"].append(model.complete_probability_16k(wide(samples, sr)))
    out: dict[str, Any] = {k: len(v) for k, v in scores.items()}
    for t in (0.5, 0.7, 0.9):
        for band in ("phone", "wide"):
            unf, fin = scores[f"unf_{band}"], scores[f"fin_{band}"]
            out[f"{band}@{t}"] = {
                "unfinished_called_finished_pct": 100 * sum(p >= t for p in unf) / len(unf),
                "finished_called_unfinished_pct": 100 * sum(p < t for p in fin) / len(fin),
            }

    def auc(fin: list[float], unf: list[float]) -> float:
        # The chance that a finished sentence scores above an unfinished part (ROC AUC).
        pairs = [(f > u) + 0.5 * (f == u) for f in fin for u in unf]
        return sum(pairs) / len(pairs)

    for band in ("phone", "wide"):
        unf, fin = scores[f"unf_{band}"], scores[f"fin_{band}"]
        out[f"{band}_auc"] = auc(fin, unf)
        out[f"{band}_median"] = {"unfinished": _pct(unf, 0.5), "finished": _pct(fin, 0.5)}
        # Questions (eSpeak gives them a rising end) apart from statements (a falling one).
        for kind, keep in (("questions", True), ("statements", False)):
            sub = [p for p, q in zip(fin, finished_is_question, strict=True) if q is keep]
            out[f"{band}_auc_{kind}"] = auc(sub, unf)
            out[f"{band}_median_{kind}"] = _pct(sub, 0.5)
    out["finished_questions"] = sum(finished_is_question) // len(VOICES)
    out["finished_statements"] = (len(finished_is_question) // len(VOICES)) - out[
        "finished_questions"
    ]
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--ears", default="grammar,whisper")
    parser.add_argument("--vads", default="energy,silero")
    parser.add_argument("--policies", default="")
    parser.add_argument("--threshold", type=float, default=0.5)
    parser.add_argument(
        "--min-confidence",
        type=float,
        default=None,
        help="min_confidence for the two-step policies (default: the ear's, as the server sets)",
    )
    parser.add_argument(
        "--settle", type=int, default=None, help="settle_ms for the two-step policies"
    )
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--verbose", action="store_true")
    parser.add_argument(
        "--explain",
        action="store_true",
        help="for every cut-off: which signal said done, on what words, and the timing",
    )
    parser.add_argument(
        "--model", action="store_true", help="only the model's scores, phone against wideband"
    )
    parser.add_argument(
        "--cpu", action="store_true", help="only the CPU figures (detectors, one model query)"
    )
    args = parser.parse_args(argv)
    if args.model:
        from hotline.turn.smart_turn import load as load_model

        loaded = load_model("auto")
        if loaded is None:
            print("Smart Turn not installed", file=sys.stderr)
            return 1
        print(json.dumps({"versions": versions(), **model_scores(loaded)}, indent=2))
        return 0
    if args.cpu:
        figures = cpu_figures()
        for k, v in figures.items():
            print(f"{k:34} {v:8.3f}")
        if args.json:
            print(json.dumps({"versions": versions(), **figures}, indent=2))
        return 0

    from hotline.core.script import default_script
    from hotline.ear.process import EarProcess
    from hotline.turn.smart_turn import load

    script = default_script()
    keyterms = tuple(dict.fromkeys([*script.caller_phrases(), *script.keyterms()]))[:100]
    ears = [e for e in args.ears.split(",") if e]
    if "whisper" in ears:
        from hotline.ear.whisper import whisper_available

        if not whisper_available():
            print("whisper ear not installed: skipped", file=sys.stderr)
            ears.remove("whisper")
    judge = load("auto")

    def ear_policies(ear_kind: str) -> dict[str, TurnConfig]:
        floor = args.min_confidence
        if floor is None:
            floor = EarProcess.min_confidence(ear_kind)
        out = policies(args.threshold, keyterms, floor)
        if args.settle is not None:
            out = {
                k: v if v.silence_only else replace(v, settle_ms=args.settle)
                for k, v in out.items()
            }
        return out

    chosen = [p for p in (args.policies.split(",") if args.policies else policies(0.5)) if p]
    if judge is None:
        print("Smart Turn not installed: model policies skipped", file=sys.stderr)
        chosen = [p for p in chosen if "model" not in p]

    t0 = time.perf_counter()
    data = dataset(args.quick)
    print(
        f"dataset: {len(data)} utterances ({sum(u.kind == 'paused' for u in data)} paused, "
        f"{sum(u.kind == 'whole' for u in data)} whole; "
        f"{sum(u.overlay == 'cough' for u in data)} with a cough, "
        f"{sum(u.overlay == 'noise' for u in data)} with line noise), "
        f"made in {time.perf_counter() - t0:.1f} s",
        file=sys.stderr,
    )
    results: dict[str, Any] = {"versions": versions(), "threshold": args.threshold, "runs": []}
    worker = ThreadPoolExecutor(1, thread_name_prefix="bench-turns")
    header = (
        f"{'ear':8} {'vad':7} {'policy':13} {'cut-off':>8} {'(paused)':>9} "
        f"{'wait p50':>9} {'p95':>7} {'whole p50':>10} {'held':>6} {'split':>6} {'never':>6} "
        f"{'judge':>6}"
    )
    table = sys.stderr if args.json else sys.stdout
    print(header, file=table)
    for ear_kind in ears:
        ear = Ear(ear_kind, keyterms, script.ending_phrases())
        all_policies = ear_policies(ear_kind)
        for vad_kind in args.vads.split(","):
            for name in chosen:
                config = all_policies[name]
                outcomes = [run_one(u, config, vad_kind, ear, judge, worker) for u in data]
                s = summarise(outcomes)
                s["ear_commit_p50_ms"] = 1000 * _pct(ear.latencies, 0.5)
                ear.latencies.clear()
                results["runs"].append(
                    {
                        "ear": ear_kind,
                        "vad": vad_kind,
                        "policy": name,
                        **s,
                        "outcomes": [
                            {"name": o.name, "cut_off": o.cut_off, "wait_ms": o.wait_ms}
                            for o in outcomes
                        ],
                    }
                )
                print(
                    f"{ear_kind:8} {vad_kind:7} {name:13} {s['cut_off_pct']:7.1f}% "
                    f"{s['cut_off_paused_pct']:8.1f}% {s['wait_p50_ms']:8.0f}ms "
                    f"{s['wait_p95_ms']:5.0f}ms {s['whole_wait_p50_ms']:8.0f}ms "
                    f"{s['whole_held_pct']:5.1f}% {s['split_turns']:6d} {s['never_ended']:6d} "
                    f"{s['judge_calls']:6d}",
                    file=table,
                    flush=True,
                )
                if args.explain:
                    causes: dict[str, int] = {}
                    lines = []
                    for o, u in zip(outcomes, data, strict=True):
                        if o.cut_off:
                            cause, line = explain(o, u.end_ms)
                            causes[cause] = causes.get(cause, 0) + 1
                            lines.append(line)
                    print(f"    cut-offs by cause: {causes}", file=table)
                    for line in lines:
                        print(f"    {line}", file=table)
                if args.verbose:
                    for o in outcomes:
                        print(
                            f"    {'CUT ' if o.cut_off else '    '}{o.wait_ms} {o.name} {o.turns}",
                            file=table,
                        )
        ear.close()
    worker.shutdown()
    if judge is not None and any("model" in p for p in chosen):
        print("Smart Turn CPU per query: judge_cpu_ms_per_call in --json", file=sys.stderr)
    if args.json:
        print(json.dumps(results, indent=2, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
