"""The local ear's recogniser: energy segmentation + pocketsphinx on the speech segments only.

Synchronous and single-threaded per object (the server runs it in a worker thread). Input is
8 kHz G.711 µ-law in any chunking; output is a list of :class:`Partial` / :class:`Final`.

Choices, measured on this machine (``benchmarks/bench_ear.py``):

* **16 kHz, not 8 kHz.** pocketsphinx's US English model is a 16 kHz model; its ``feat.params``
  (which override the caller's settings) fix ``upperf=6800``, so ``samprate=8000`` fails to
  initialise. A copy of the model with ``upperf 3500`` initialises at 8 kHz but recognised
  nothing right (the filterbank no longer matches training). So µ-law is decoded
  (:func:`hotline.codec.ulaw_decode`) and upsampled 8 -> 16 kHz (:class:`hotline.codec.Resampler`).
* **remove_noise off** (a model copy whose ``feat.params`` says ``-remove_noise no``): with the
  noise remover on, the last word of a phrase was often lost.
* **A grammar from the key terms**, never the open language model: with the default LM most
  words of eSpeak telephone speech came out wrong. The grammar is a loop over the key terms
  (each a word or a phrase): ``public <s> = <kt>+``. With whole caller phrases as key terms this
  recognises phrases; with single words it spots the key words of a sentence. With no key terms
  at all the default LM is used (open vocabulary, poor).
* **Only speech is decoded**: frames are classified by :func:`hotline.codec.ulaw_frame_stats`
  (loud enough, not noise-like); a segment opens after ``min_speech_ms`` of speech (with
  ``preroll_ms`` of audio before it), and closes after ``silence_ms`` without speech: the
  silence is fed too (the decoder needs trailing silence to finish the last word).
* **No words without voiced speech.** A grammar recogniser always returns its nearest phrase: a
  200 ms cough came out as "hang up", "bye" or "person", and ended or handed off the call. Loud,
  not-too-noisy frames open a segment as before, but a segment is decoded into words only when
  it held ``min_voiced_ms`` of voiced frames in one run (one unvoiced frame inside does not
  break it): periodic at a voice's pitch (:func:`hotline.codec.ulaw_periodicity` >=
  ``min_periodicity`` over a 40 ms window, lags of 2.5-15 ms, i.e. 66-400 Hz). The gate is 80
  ms: eSpeak's shortest words ("yes", "no", "bye", "ok"; five voices, 100 takes of the hardest,
  whose audio varies from take to take) had runs of 120-200 ms, once 80 ms (as little as 60 ms
  when any dip broke a run); the generated coughs 20 ms at most (``tests/ear/test_gate.py``).
  At 60 ms a test stream of a spoken phrase then coughs gave "that is all" once more. Counted
  in total rather than as a run, a fit of coughs 500 ms apart (one segment) added up
  past the gate and was heard as "that is all", an ending intent. Otherwise the segment ends
  with an empty final and no partials (counted in
  :attr:`Recognizer.unvoiced`).
"""

from __future__ import annotations

import hashlib
import math
import os
import re
import shutil
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, TypeVar

from hotline.codec import Resampler, ulaw_decode, ulaw_frame_stats, ulaw_periodicity
from hotline.core.ulaw import BYTES_PER_MS, FRAME_BYTES

__all__ = [
    "EXTRA_PRONUNCIATIONS",
    "Final",
    "Partial",
    "Recognizer",
    "RecognizerConfig",
    "VoicingGate",
    "Word",
]

#: Pitch periods looked for, in samples at 8 kHz: 400 Hz down to ~66 Hz.
_PITCH_LAGS = (20, 120)

#: Words the CMU dictionary lacks that an artist hotline needs (ARPAbet phones).
EXTRA_PRONUNCIATIONS: dict[str, str] = {
    "merch": "M ER CH",
    "merchandise": "M ER CH AH N D AY Z",
    "setlist": "S EH T L IH S T",
    "livestream": "L AY V S T R IY M",
}


@dataclass(frozen=True, slots=True)
class RecognizerConfig:
    """Segmentation and decoding settings.

    Attributes:
        keyterms: words/phrases the grammar is built from (empty: the open LM).
        silence_ms: silence that ends a segment (Scribe's ``vad_silence_threshold_secs``).
        min_speech_ms: speech needed to open a segment.
        preroll_ms: audio kept from before the segment opened.
        threshold_dbfs / max_zcr: a frame is speech when louder and not noise-like.
        max_segment_ms: a segment this long is cut (committed) even without silence.
        partial_every_ms: how often a partial hypothesis is taken while speech goes on.
        vad: commit on silence; False means only :meth:`Recognizer.commit` ends a segment.
        min_voiced_ms: a run of voiced speech a segment needs to be decoded into words (a
            cough, a click or line noise has none: its segment ends with an empty final).
        min_periodicity: a loud frame is voiced when its window's periodicity reaches this.
        rate_phrases: the grammar ear rates a final (its confidence: a second and third pass
            over the segment, ~0.1 s on this machine for a 1.5 s question, on the turn's
            critical path) only when its words hold one of these phrases; None: every final.
            The server passes its script's ending phrases (goodbye, handoff), the only turns
            whose confidence it reads.
    """

    keyterms: tuple[str, ...] = ()
    silence_ms: int = 500
    min_speech_ms: int = 100
    preroll_ms: int = 100
    threshold_dbfs: float = -42.0
    max_zcr: float = 0.45
    max_segment_ms: int = 15_000
    partial_every_ms: int = 300
    vad: bool = True
    min_voiced_ms: int = 80
    min_periodicity: float = 0.6
    rate_phrases: tuple[str, ...] | None = None


@dataclass(frozen=True, slots=True)
class Word:
    text: str
    start: float  # seconds since the stream began
    end: float


@dataclass(frozen=True, slots=True)
class Partial:
    text: str


@dataclass(frozen=True, slots=True)
class Final:
    text: str
    words: tuple[Word, ...]
    start: float
    end: float
    #: How sure the recogniser is of ``text``, 0..1 (None: it cannot say).
    confidence: float | None = None


#: Initial cepstral mean: the model's ``40,3,-1`` is for wideband audio; this is the mean
#: live CMN settled on for speech that went through 8 kHz µ-law and back up to 16 kHz
#: (measured). Without it the first utterance of a stream was usually lost while CMN adapted.
CMN_INIT = "55,24,-36,51,-33,1,4,-41,14,-21,12,10,-19"

#: The logistic that maps the likelihood ratio per frame to a confidence (0.5 at the mid).
#: Chosen with ``benchmarks/bench_confidence.py`` (the live path: the final asked for at the
#: caller's pause, a call's key terms): at a ratio of 0.8 (confidence 0.5) 92 % of the goodbyes
#: eSpeak said, and the ear heard right, pass the first time; of the junk the ear forced onto a
#: goodbye (backwards speech, fillers, grunts) 27 % still does (all of it before). A goodbye
#: asked again costs the caller a repeat; a junk hang-up costs the call. (Handoff phrases rate
#: lower: the script's ``handoff_confidence`` is 0.2.)
CONFIDENCE_MID = 0.8
CONFIDENCE_SCALE = 0.2

_MODEL_LOCK = threading.Lock()
_MODEL_DIR: Path | None = None
_WORD = re.compile(r"[a-z']+")


def _model_dir() -> Path:
    """A copy of the bundled acoustic model with ``-remove_noise no`` (symlinks + one file)."""
    global _MODEL_DIR
    with _MODEL_LOCK:
        if _MODEL_DIR is not None and _MODEL_DIR.exists():
            return _MODEL_DIR
        from pocketsphinx import get_model_path

        src = Path(get_model_path()) / "en-us" / "en-us"
        dst = Path(tempfile.mkdtemp(prefix="hotline-ear-model-"))
        for item in src.iterdir():
            if item.name != "feat.params":
                os.symlink(item, dst / item.name)
        params = (src / "feat.params").read_text()
        params = params.replace("-remove_noise yes", "-remove_noise no")
        (dst / "feat.params").write_text(params)
        _MODEL_DIR = dst
        return dst


_CMUDICT: dict[str, list[str]] | None = None


def _cmudict() -> dict[str, list[str]]:
    """The bundled CMU dictionary, read once per process: word -> its lines (alternates too)."""
    global _CMUDICT
    with _MODEL_LOCK:
        if _CMUDICT is None:
            from pocketsphinx import get_model_path

            words: dict[str, list[str]] = {}
            path = Path(get_model_path()) / "en-us" / "cmudict-en-us.dict"
            with open(path, encoding="utf-8", errors="replace") as f:
                for line in f:
                    head, _, rest = line.partition(" ")
                    if rest:
                        words.setdefault(head.split("(", 1)[0], []).append(line.rstrip("\n"))
            _CMUDICT = words
        return _CMUDICT


def _dictionary_for(phrases: tuple[str, ...]) -> Path:
    """A dictionary file of only the grammar's words (the CMU lines, then the extras).

    A decoder loads its dictionary whole: the full CMU one (135,000 words) took ~115 ms of CPU
    per session here, a few dozen words ~25 ms; the file is written once per set of phrases.
    """
    cmu = _cmudict()
    words = sorted({w for p in phrases for w in p.split()})
    lines: list[str] = []
    for w in words:
        if w in cmu:
            lines.extend(cmu[w])
        elif w in EXTRA_PRONUNCIATIONS:
            lines.append(f"{w} {EXTRA_PRONUNCIATIONS[w]}")
    text = "\n".join(lines) + "\n"
    path = _model_dir() / f"ear-{hashlib.sha1(text.encode()).hexdigest()[:16]}.dict"
    with _MODEL_LOCK:
        if not path.exists():
            tmp = path.with_suffix(f".{threading.get_ident()}.tmp")
            tmp.write_text(text, encoding="utf-8")
            os.replace(tmp, path)
    return path


def cleanup_model_dir() -> None:
    """Remove the model copy (tests and the CLI call it at exit; harmless if absent)."""
    global _MODEL_DIR
    with _MODEL_LOCK:
        if _MODEL_DIR is not None:
            shutil.rmtree(_MODEL_DIR, ignore_errors=True)
            _MODEL_DIR = None


def normalise(term: str) -> list[str]:
    """A key term as dictionary words: lower case, punctuation dropped."""
    return _WORD.findall(term.lower().replace("’", "'"))


class VoicingGate:
    """Whether a segment held a voice: its longest run of voiced frames (loud, and periodic at
    a voice's pitch over a 40 ms window), where one unvoiced frame inside a run does not break
    it and two do. Both local ears decode a segment only when :attr:`longest_ms` reaches
    ``min_voiced_ms``."""

    def __init__(self, config: RecognizerConfig) -> None:
        self.config = config
        self.reset()

    def reset(self) -> None:
        """A new segment."""
        self._last_frame = b""
        self._run_ms = 0
        self._gap_frames = 0  # unvoiced frames since the run's last voiced one
        self.longest_ms = 0

    def feed(self, frame: bytes, level: float | None = None) -> None:
        """One 20 ms frame of the segment, in order; ``level`` its RMS in dBFS if the caller
        has it already (the segmenter has: it is not computed twice)."""
        window = self._last_frame + frame
        self._last_frame = frame
        cfg = self.config
        if level is None:
            level = ulaw_frame_stats(frame)[0]
        voiced = (
            level >= cfg.threshold_dbfs
            and ulaw_periodicity(window, *_PITCH_LAGS) >= cfg.min_periodicity
        )
        if voiced:
            self._run_ms += len(frame) // BYTES_PER_MS
            self.longest_ms = max(self.longest_ms, self._run_ms)
            self._gap_frames = 0
        else:
            # one frame's dip (a window straddling a glide or a plosive) does not break a run;
            # two do (coughs in a fit are hundreds of ms apart)
            self._gap_frames += 1
            if self._gap_frames > 1:
                self._run_ms = 0

    @property
    def open(self) -> bool:
        return self.longest_ms >= self.config.min_voiced_ms


F = TypeVar("F")  # what a segment's end returns


class Segmenter(Generic[F]):
    """One µ-law stream cut into speech segments: the loop both local ears share.

    A frame is speech when it is loud enough and not hiss (``threshold_dbfs``, ``max_zcr``); a
    segment opens after ``min_speech_ms`` of speech (with ``preroll_ms`` of what came before)
    and ends after ``silence_ms`` of silence (with ``vad``) or ``max_segment_ms``. Every frame
    of a segment goes to the :class:`VoicingGate` (with the level computed here) and to the
    ear's :meth:`_take`; the ear decides what to decode and when (:meth:`_step`), and what a
    segment's end returns (:meth:`_close`).
    """

    def __init__(self, config: RecognizerConfig) -> None:
        self.config = config
        self._carry = b""
        self._pos = 0  # bytes of µ-law seen = sample index at 8 kHz
        self._preroll: list[tuple[bytes, float]] = []  # (frame, level), before an onset
        self._onset: list[tuple[bytes, float]] = []
        self._onset_ms = 0
        self._in_segment = False
        self._seg_start = 0
        self._seg_ms = 0
        self._speech_end_ms = 0  # segment time just after its last speech frame
        self._silence_ms = 0
        self._since_partial = 0
        self._gate = VoicingGate(config)
        self.speech_seconds = 0.0

    # -- the ear's part

    def _opened(self) -> None:
        """A segment opens (its frames follow through :meth:`_take`)."""
        raise NotImplementedError

    def _take(self, frame: bytes) -> None:
        """One frame of the open segment."""
        raise NotImplementedError

    def _close(self) -> F:
        """The segment ends: its result."""
        raise NotImplementedError

    def _asked(self) -> F:
        """The segment ends because the client committed (default: as :meth:`_close`)."""
        return self._close()

    def _speech(self) -> None:
        """A speech frame inside the segment (after :meth:`_take`)."""

    def _step(self, out: list[Partial | F]) -> None:
        """After each frame of a segment that goes on (partials, early decodes)."""

    def _fed(self, out: list[Partial | F]) -> None:
        """After a :meth:`feed` call's frames."""

    # -- the loop

    def _add(self, frame: bytes, level: float) -> None:
        self._gate.feed(frame, level)
        self._take(frame)
        self._seg_ms += len(frame) // BYTES_PER_MS
        self.speech_seconds += len(frame) / 8000

    def _open(self, start: int, audio: list[tuple[bytes, float]]) -> None:
        self._in_segment = True
        self._seg_start = start
        self._seg_ms = 0
        self._gate.reset()
        self._silence_ms = 0
        self._since_partial = 0
        self._opened()
        for frame, level in audio:
            self._add(frame, level)
        self._speech_end_ms = self._seg_ms

    def feed(self, ulaw: bytes) -> list[Partial | F]:
        """Take any amount of µ-law; return what it finished (partials, finals)."""
        cfg = self.config
        data = self._carry + ulaw
        n = len(data) - len(data) % FRAME_BYTES
        self._carry = data[n:]
        out: list[Partial | F] = []
        for i in range(0, n, FRAME_BYTES):
            frame = data[i : i + FRAME_BYTES]
            start = self._pos
            self._pos += FRAME_BYTES
            level, zcr = ulaw_frame_stats(frame)
            speech = level >= cfg.threshold_dbfs and zcr <= cfg.max_zcr
            if not self._in_segment:
                if speech:
                    self._onset.append((frame, level))
                    self._onset_ms += 20
                    if self._onset_ms >= cfg.min_speech_ms:
                        audio = self._preroll + self._onset
                        first = start - (len(audio) - 1) * FRAME_BYTES
                        self._preroll, self._onset, self._onset_ms = [], [], 0
                        self._open(max(first, 0), audio)
                else:
                    self._preroll.extend(self._onset)
                    self._preroll.append((frame, level))
                    self._onset, self._onset_ms = [], 0
                    keep = max(cfg.preroll_ms // 20, 0)
                    del self._preroll[: max(len(self._preroll) - keep, 0)]
                continue
            self._add(frame, level)
            if speech:
                self._silence_ms = 0
                self._speech_end_ms = self._seg_ms
                self._speech()
            else:
                self._silence_ms += 20
            self._since_partial += 20
            if (
                cfg.vad and self._silence_ms >= cfg.silence_ms
            ) or self._seg_ms >= cfg.max_segment_ms:
                self._in_segment = False
                out.append(self._close())
            else:
                self._step(out)
        self._fed(out)
        return out

    def commit(self) -> F | Final:
        """End the current segment now (manual commit: the client asked, at once); an empty
        Final when none is open."""
        self._preroll, self._onset, self._onset_ms = [], [], 0
        if not self._in_segment:
            t = self._pos / 8000
            return Final("", (), t, t)
        self._in_segment = False
        return self._asked()

    @property
    def in_segment(self) -> bool:
        return self._in_segment

    @property
    def audio_seconds(self) -> float:
        return self._pos / 8000


class Recognizer(Segmenter[Final]):
    """Segments one µ-law stream and decodes each speech segment with a key-term grammar."""

    def __init__(self, config: RecognizerConfig) -> None:
        from pocketsphinx import set_loglevel

        set_loglevel("FATAL")
        super().__init__(config)
        self.unknown_terms = 0
        self.phrases: tuple[str, ...] = ()
        self.fallbacks = 0
        self.grammar = self._grammar_for(config.keyterms)
        # Built at the first speech onset: a session that hears only silence (most of a load
        # run's) never pays for one; the grammar was checked above.
        self._decoder: Any = None
        self._phrase_searches: set[int] = set()  # kt{i}, added to the decoder when first needed
        self._resampler = Resampler(8000, 16000)
        self._segment_pcm: list[bytes] = []
        self._last_partial = ""
        self.segments = 0
        self.unvoiced = 0  # segments ended without words: no voiced speech in them
        self._phone_loop = False  # the all-phone search, added when first needed
        #: The last final's likelihood ratio (see :meth:`_confidence`), for the benchmark.
        self.last_ratio: float | None = None

    def _grammar_for(self, keyterms: tuple[str, ...]) -> str | None:
        """A JSGF loop over the key terms that the dictionary can spell (None: no key terms)."""
        if not keyterms:
            return None
        cmu = _cmudict()
        phrases = []
        for term in keyterms:
            words = normalise(term)
            ok = bool(words)
            for w in words:
                if w not in cmu and w not in EXTRA_PRONUNCIATIONS:
                    ok = False
            if ok:
                phrases.append(" ".join(words))
            else:
                self.unknown_terms += 1
        if not phrases:
            raise ValueError("no key term is in the recogniser's dictionary")
        self.phrases = tuple(sorted(set(phrases)))
        alts = " | ".join(f"( {p} )" for p in self.phrases)
        return f"#JSGF V1.0;\ngrammar ear;\npublic <s> = <kt>+ ;\n<kt> = {alts} ;\n"

    @staticmethod
    def _new_decoder(*, lm: bool, dictionary: Path | None = None) -> Any:
        from pocketsphinx import Decoder, get_model_path

        models = Path(get_model_path()) / "en-us"
        return Decoder(
            hmm=str(_model_dir()),
            dict=str(dictionary or models / "cmudict-en-us.dict"),
            lm=str(models / "en-us.lm.bin") if lm else None,
            dither=True,
            # The dither's noise from a fixed seed: with the default (-1) pocketsphinx seeds it
            # from the clock at each decoder's start, so the same audio could give other
            # partials from one second to the next (seen in the tests).
            seed=1,
            cmninit=CMN_INIT,
            # The hypothesis from the Viterbi backtrace, not a lattice search: with a loop over
            # a script's ~70 key terms, bestpath made one hyp() take 1-9 s of CPU (a caller's
            # turn then missed its final-transcript deadline); the words come out the same.
            bestpath=False,
            # Each decoder resets pocketsphinx's (process-wide) log level from its own config
            # (default WARN), undoing set_loglevel: fsg_search's "Final result does not match
            # the grammar" then reached stderr dozens of times per commit.
            loglevel="FATAL",
        )

    def _build(self) -> Any:
        if self.grammar is None:
            return self._new_decoder(lm=True)
        decoder = self._new_decoder(lm=False, dictionary=_dictionary_for(self.phrases))
        alts = " | ".join(f"( {p} )" for p in self.phrases)
        decoder.add_jsgf_string("one", f"#JSGF V1.0;\ngrammar one;\npublic <s> = {alts} ;\n")
        decoder.add_jsgf_string("ear", self.grammar)
        decoder.activate_search("ear")
        return decoder

    # -- helpers

    def _take(self, frame: bytes) -> None:
        pcm = self._resampler.process(ulaw_decode(frame))
        self._segment_pcm.append(pcm)
        if pcm:
            self._decoder.process_raw(pcm, False, False)

    def _opened(self) -> None:
        self._resampler.reset()
        self._segment_pcm = []
        if self._decoder is None:
            self._decoder = self._build()
        self._decoder.start_utt()
        self._last_partial = ""

    def _close(self, *, asked: bool = False) -> Final:
        pcm = b"".join(self._segment_pcm)
        tail = self._resampler.flush()
        if tail:
            self._decoder.process_raw(tail, False, False)
        partial = ""
        if asked and self.phrases:
            hyp = self._decoder.hyp()  # before end_utt: the best path so far, as a partial
            partial = " ".join(normalise(hyp.hypstr)) if hyp is not None else ""
        self._decoder.end_utt()
        pcm += tail
        self._segment_pcm = []
        self._in_segment = False
        self.segments += 1
        offset = self._seg_start / 8000
        if not self._gate.open:
            self.unvoiced += 1
            return Final("", (), offset, offset + self._seg_ms / 1000)
        hyp = self._decoder.hyp()
        text = " ".join(normalise(hyp.hypstr)) if hyp is not None else ""
        if self.phrases and not self._complete(text):
            # The loop grammar ended mid-phrase. Asked for (the caller paused; more may come):
            # what was heard so far, at once ("what are the" reads as unfinished). The ear's
            # own end of utterance: the best single key term (seconds of CPU for a long one).
            text = partial if asked else self._best_phrase(pcm)
        words = []
        for seg in self._decoder.seg() or ():
            token = seg.word
            # fillers (<sil>, [NOISE]) and the grammar's null transitions, "(NULL)", which the
            # Viterbi backtrace lists
            if token.startswith(("<", "[", "(")):
                continue
            token = re.sub(r"\(\d+\)$", "", token).strip()
            if token:
                # frames are 10 ms
                words.append(
                    Word(token, offset + seg.start_frame / 100, offset + seg.end_frame / 100)
                )
        end = offset + self._seg_ms / 1000
        if [w.text for w in words] != text.split():
            # The text is not the path's (a partial, the best single key term): its words
            # spread over the segment, so each can carry the final's confidence.
            tokens = text.split()
            step = (end - offset) / max(len(tokens), 1)
            words = [
                Word(tok, round(offset + i * step, 3), round(offset + (i + 1) * step, 3))
                for i, tok in enumerate(tokens)
            ]
        confidence = (
            self._confidence(pcm, text) if text and self.phrases and self._rated(text) else None
        )
        return Final(text, tuple(words), offset, end, confidence)

    def _rated(self, text: str) -> bool:
        """Whether a final with these words is rated (:attr:`RecognizerConfig.rate_phrases`)."""
        phrases = self.config.rate_phrases
        if phrases is None:
            return True
        padded = f" {' '.join(_WORD.findall(text.lower()))} "
        return any(f" {' '.join(_WORD.findall(p.lower()))} " in padded for p in phrases)

    def _confidence(self, pcm: bytes, text: str) -> float:
        """How well ``text`` explains the segment against any sequence of phones: 0..1.

        The classic likelihood-ratio confidence: the segment is aligned to the words heard
        (the acoustic score of that path) and decoded again by an all-phone loop (the best any
        speech sounds could score); their log ratio per 10 ms frame is near zero or above for
        words that were said, and well below for audio the grammar only forced onto its
        nearest phrase (a grunt, a mumble, speech played backwards). Mapped to 0..1 by a
        logistic fitted on generated speech against junk (``benchmarks/bench_confidence.py``).
        """
        from pocketsphinx import get_model_path

        d = self._decoder
        if not self._phone_loop:
            loop = Path(get_model_path()) / "en-us" / "en-us-phone.lm.bin"
            d.add_allphone_file("phone", str(loop))
            self._phone_loop = True
        try:
            d.activate_search("phone")
            d.start_utt()
            d.process_raw(pcm, False, True)
            d.end_utt()
            phones, frames = d.hyp(), d.n_frames()
            d.set_align_text(text)
            d.start_utt()
            d.process_raw(pcm, False, True)
            d.end_utt()
            aligned = d.hyp()
        finally:
            d.activate_search("ear")
        if phones is None or aligned is None or frames <= 0:
            self.last_ratio = None
            return 0.0
        if aligned.best_score <= 0 or phones.best_score <= 0:
            self.last_ratio = None
            return 0.0
        # best_score is the path score as a probability (logmath's exp): its log difference
        # per frame, in thousandths
        ratio = 1000 * math.log(aligned.best_score / phones.best_score) / frames
        self.last_ratio = ratio
        return 1 / (1 + math.exp(-(ratio - CONFIDENCE_MID) / CONFIDENCE_SCALE))

    def _complete(self, text: str) -> bool:
        """Whether ``text`` is a whole sequence of key terms (the grammar's end was reached)."""
        words = text.split()
        if not words:
            return False
        ok = [True] + [False] * len(words)
        split = [p.split() for p in self.phrases]
        for i in range(len(words)):
            if ok[i]:
                for p in split:
                    if words[i : i + len(p)] == p:
                        ok[i + len(p)] = True
        return ok[-1]

    def _best_phrase(self, pcm: bytes) -> str:
        """The loop grammar ended mid-phrase (pocketsphinx then returns the best partial
        path): the best single key term for the whole segment.

        One pass over a grammar of exactly one key term (the phrases as alternatives) finds
        it; only when that pass too ends mid-phrase is each key term scored alone (a pass per
        term: with a script's ~70 terms, seconds of CPU for a 2 s segment, which had the
        recogniser miss the turn's final-transcript deadline on a loaded machine)."""
        self.fallbacks += 1
        d = self._decoder
        text = self._decode_with("one", pcm)
        if text in self.phrases:
            return text
        best, best_score = "", None
        for i, phrase in enumerate(self.phrases):
            if i not in self._phrase_searches:
                d.add_jsgf_string(
                    f"kt{i}", f"#JSGF V1.0;\ngrammar kt{i};\npublic <s> = {phrase} ;\n"
                )
                self._phrase_searches.add(i)
            d.activate_search(f"kt{i}")
            d.start_utt()
            for j in range(0, len(pcm), 3200):
                d.process_raw(pcm[j : j + 3200], False, False)
            d.end_utt()
            hyp = d.hyp()
            if hyp is not None and " ".join(normalise(hyp.hypstr)) == phrase:
                if best_score is None or hyp.best_score > best_score:
                    best, best_score = phrase, hyp.best_score
        d.activate_search("ear")
        return best

    def _decode_with(self, search: str, pcm: bytes) -> str:
        """The segment decoded again with another search; the normalised hypothesis."""
        d = self._decoder
        d.activate_search(search)
        try:
            d.start_utt()
            for j in range(0, len(pcm), 3200):
                d.process_raw(pcm[j : j + 3200], False, False)
            d.end_utt()
            hyp = d.hyp()
            return " ".join(normalise(hyp.hypstr)) if hyp is not None else ""
        finally:
            d.activate_search("ear")

    def _partial(self) -> Partial | None:
        hyp = self._decoder.hyp()
        text = " ".join(normalise(hyp.hypstr)) if hyp is not None else ""
        if text and text != self._last_partial:
            self._last_partial = text
            return Partial(text)
        return None

    def _step(self, out: list[Partial | Final]) -> None:
        if (
            self._since_partial >= self.config.partial_every_ms
            and self._silence_ms == 0
            and self._gate.open
        ):
            self._since_partial = 0
            p = self._partial()
            if p is not None:
                out.append(p)

    def _asked(self) -> Final:
        # The client asked (the caller paused; more may come): a grammar path that ended
        # mid-phrase gives what was heard so far, at once, not the slow best key term.
        return self._close(asked=True)
