"""The caller's turns and when they interrupt hotline. Sans-I/O.

A caller's *turn* runs from their first speech to the moment hotline decides they are done. Three
sources feed it: the VAD on the caller's audio (fast, in media time, knows nothing of words), the
speech-to-text stream (slower, knows the words) and, optionally, an end-of-turn *judge* (a model
that hears the turn's audio and says how likely it is complete). The :class:`TurnTaker` joins
them::

    turns = TurnTaker(TurnConfig(judge=True))
    turns.speech_started(ts_ms, now, bot_speaking)    # VAD SpeechStarted
    turns.speech_ended(ts_ms, now)                    # VAD SpeechEnded (silence began at ts_ms)
    turns.media(ts_ms, now, payload)                  # every inbound frame: the silence clock
    turns.partial(text, now, bot_speaking)            # STT interim transcript
    turns.final(text, now, bot_speaking)              # STT committed / final transcript
    turns.verdict(seq, probability, now)              # the judge's answer to JudgeTurn(seq)
    turns.poll(now)                                   # when next_deadline() passes
    for event in turns.events(): ...                  # see TurnEvent

**Endpointing in two steps** (the default, ``silence_ms=None``). Once the caller has been silent
for ``pause_ms`` (media clock), the turn taker at once asks the recogniser for its final
(:class:`CommitTranscript`) and asks whether the caller is done: :class:`JudgeTurn` carries the
turn's last ≤ 8 s of µ-law for the judge (a config with ``judge``), and the final transcript is
read by :func:`unfinished` (a turn ending in "the", "and", "to", "um"… is not done). Done (the
judge's probability ≥ ``threshold`` and the words do not end unfinished; without a judge: the
words do not end unfinished and the silence reached ``settle_ms``) → :class:`TurnEnded` now. Not
done → keep listening: new words are read again as they arrive, and the turn ends anyway once the
silence reaches ``fallback_ms``. Speech that resumes continues the *same* turn (one utterance,
one turn, one prompt); the judge is asked again at the next pause, on the whole turn.

**Speculation** (``speculate``). While a paused turn waits for its verdict or its fallback, the
words so far are offered as :class:`Speculate` (the shell may start the brain on them, holding
its reply); :class:`Unspeculate` says the caller went on (cancel that reply; nothing of it may be
heard). The :class:`TurnEnded` that follows carries the confirmed words: the same text confirms
the speculation, any other text replaces it.

**Silence only** (``silence_ms`` set: ``HOTLINE_TURN_SILENCE_MS``). Today's policy: once the
silence reaches ``silence_ms`` the turn ends at the next final transcript; no judge, no
transcript signal, no speculation.

In both policies a turn with no words (a cough, a click, line noise) is dropped: it never reaches
the brain. The wait for the recogniser's final is measured on the shell's clock (``now``),
bounded by ``final_timeout_ms``; a final that arrives after its turn timed out (and before the
caller speaks again) belongs to that turn: it is dropped and counted (:attr:`TurnTaker.late_finals`).

Barge-in (``HOTLINE_BARGE_IN``), while hotline speaks:

* ``pause`` (the default): speech that lasts ``guard_ms`` holds the line (:class:`HoldLine`: stop
  sending, ``clear``, keep what was not heard). Words then decide: a stop phrase ("stop",
  "wait", "no"…) or any word that is not a backchannel interrupts (:class:`Interrupt`); words
  that are only backchannels ("mm-hm", "yeah", "okay"…) never interrupt, release a held line
  (:class:`ResumeLine`) and are no turn for the brain; no words within ``resume_ms`` of the end
  of that sound releases it too (a cough: the line goes on from where the caller stopped hearing
  it). While the recogniser is down it falls back to ``speech``.
* ``speech``: the onset of speech interrupts.
* ``words``: the first transcribed word interrupts (falls back to ``speech`` while the recogniser
  is down).
* ``off``: the caller's voice never interrupts (DTMF still does).
"""

from __future__ import annotations

import enum
import re
from collections import deque
from dataclasses import dataclass

from hotline.errors import ConfigError

__all__ = [
    "BACKCHANNELS",
    "JUDGE_AUDIO_BYTES",
    "STOP_PHRASES",
    "UNFINISHED_WORDS",
    "BargeInMode",
    "CommitTranscript",
    "HoldLine",
    "Interrupt",
    "JudgeTurn",
    "ResumeLine",
    "Speculate",
    "TurnConfig",
    "TurnEnded",
    "TurnEvent",
    "TurnTaker",
    "Unspeculate",
    "has_stop_phrase",
    "has_words",
    "is_backchannel",
    "normalise",
    "phrase_words",
    "unfinished",
]

#: The judge hears at most this much of a turn: 8 s of 8 kHz µ-law.
JUDGE_AUDIO_BYTES = 8 * 8000
#: Audio kept from before the VAD's onset for the judge (its first syllable).
_PREROLL_BYTES = 500 * 8

#: Last words after which a turn is not finished (the transcript signal; numbers are too).
UNFINISHED_WORDS: tuple[str, ...] = (
    # articles and determiners
    "a", "an", "the", "my", "your", "our", "their", "this", "these", "those", "some", "any",
    "every",
    # conjunctions
    "and", "or", "but", "because", "so", "if", "than", "which", "who",
    # particles and prepositions that rarely end a statement
    "to", "of", "for", "with", "at", "from", "about", "like",
    # fillers
    "um", "uh", "er", "erm", "hmm",
    # a subject, an auxiliary or a question word with nothing after it ("where can I ...");
    # an auxiliary right after a subject pronoun is an answer ("yes I do"): see unfinished()
    "i", "is", "are", "was", "were", "can", "could", "would", "will", "do", "does", "did",
    "what", "where", "when", "how", "why",
    "am", "be", "been", "has", "have", "had", "should", "shall", "might", "must",
    "into", "onto", "during", "between", "without", "whether", "whose",
)  # fmt: skip
# ("that" is not one: as often a pronoun that ends a request, "can you repeat that", as a
# conjunction that does not.)
#: Auxiliaries and modals: the verb of a question's opening ("can you ...", "is there ...").
_AUX = frozenset(
    "am is are was were be been has have had do does did can could will would shall should "
    "may might must".split()
)
#: Auxiliaries that need a main verb after their subject ("where do you ...", "can I ...");
#: the others (be, have) can be the main verb ("how are you").
_NEEDS_VERB = frozenset("do does did can could will would shall should may might must".split())
_SUBJECTS = frozenset("i you we they he she it there".split())
_WH = frozenset("what where when how why who which whose".split())
_ARTICLES = frozenset("the a an my your our their".split())
_DISCOURSE = frozenset(
    "hi hello hey so and but um uh er okay ok oh well yes yeah also sorry please then".split()
)
#: Utterances made only of these do not interrupt hotline while it speaks.
BACKCHANNELS: tuple[str, ...] = (
    "mm-hmm", "mhmm", "mm-hm", "mm", "hmm", "uh-huh", "uh huh", "yeah", "yep", "yes", "ok",
    "okay", "right", "sure", "alright", "all right", "got it", "gotcha", "i see", "cool",
)  # fmt: skip
#: Phrases that always interrupt hotline, even alone.
STOP_PHRASES: tuple[str, ...] = (
    "stop", "wait", "no", "nope", "nah", "hold on", "hang on", "cancel", "actually",
    "excuse me", "never mind", "uh-uh", "mm-mm", "nuh-uh",
)  # fmt: skip

_NUMBER_WORDS = frozenset(
    "zero oh one two three four five six seven eight nine ten eleven twelve thirteen fourteen "
    "fifteen sixteen seventeen eighteen nineteen twenty thirty forty fifty sixty seventy eighty "
    "ninety hundred thousand".split()
)
_NOT_WORD = re.compile(r"[^\w'\-]+")


class BargeInMode(str, enum.Enum):
    """What of the caller's voice interrupts hotline."""

    PAUSE = "pause"
    SPEECH = "speech"
    WORDS = "words"
    OFF = "off"


def _check_ms(name: str, value: object, low: int, high: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ConfigError(f"turn {name} must be an integer within {low}..{high} (ms)")


def _check_phrases(name: str, value: object) -> None:
    if not isinstance(value, tuple) or not all(isinstance(p, str) and p.strip() for p in value):
        raise ConfigError(f"turn {name} must be a tuple of non-empty strings")


@dataclass(frozen=True, slots=True)
class TurnConfig:
    """Turn-taking settings (every one in the call script's ``[turns]`` and the environment).

    Attributes:
        silence_ms: ``None``: endpointing in two steps. Set: the silence-only policy, the turn
            ends after this much silence (``HOTLINE_TURN_SILENCE_MS``).
        pause_ms: the short pause that forces the final and asks whether the caller is done.
        fallback_ms: the silence that ends a turn the judge or the words said was unfinished.
        settle_ms: without a judge, the silence that ends a turn whose words look finished.
        threshold: the judge's probability at or above which the turn is complete.
        judge: an end-of-turn judge answers :class:`JudgeTurn` (the shell loaded one).
        speculate: offer the words so far at the pause (:class:`Speculate`).
        final_timeout_ms: how long to wait for the recogniser's final transcript after asking.
        barge_in: what interrupts hotline (``HOTLINE_BARGE_IN``).
        guard_ms: ``pause`` mode: speech this long holds the line.
        resume_ms: ``pause`` mode: a held line resumes when no words came this long after the
            sound ended.
        filler_ms: no reply queued this long after a turn ended: the script's filler line plays
            (once per turn; 0: never). Used by :class:`~hotline.core.listening.Listening`.
        min_confidence: a turn that is one final the recogniser rated below this (0..1) waits
            for the fallback as unfinished words do: a fragment an ear misheard reads as a
            whole sentence ("Is the new album …" heard "It's a mouth."), but the ear is unsure
            of it. 0: off. A rating is each recogniser's own scale, so the shell sets it for
            an ear it calibrated.
        backchannels / stop_phrases / unfinished_words: the word lists (lowercase); empty
            ``unfinished_words`` turn the transcript signal off (:func:`unfinished`).
        phrases: what callers are expected to say (the call script's caller phrases and key
            terms; not a ``[turns]`` key): words that stop partway into one of them
            are unfinished (see :func:`unfinished`).

    Raises:
        ConfigError: a value out of range.
    """

    silence_ms: int | None = None
    pause_ms: int = 200
    fallback_ms: int = 2500
    settle_ms: int = 300
    threshold: float = 0.5
    judge: bool = False
    speculate: bool = True
    final_timeout_ms: int = 2000
    barge_in: BargeInMode = BargeInMode.PAUSE
    guard_ms: int = 300
    resume_ms: int = 1500
    filler_ms: int = 1200
    min_confidence: float = 0.0
    backchannels: tuple[str, ...] = BACKCHANNELS
    stop_phrases: tuple[str, ...] = STOP_PHRASES
    unfinished_words: tuple[str, ...] = UNFINISHED_WORDS
    phrases: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.silence_ms is not None:
            _check_ms("silence_ms", self.silence_ms, 0, 10_000)
        _check_ms("pause_ms", self.pause_ms, 0, 5_000)
        _check_ms("fallback_ms", self.fallback_ms, 0, 10_000)
        _check_ms("settle_ms", self.settle_ms, 0, 10_000)
        _check_ms("final_timeout_ms", self.final_timeout_ms, 1, 30_000)
        _check_ms("guard_ms", self.guard_ms, 0, 5_000)
        _check_ms("resume_ms", self.resume_ms, 0, 30_000)
        _check_ms("filler_ms", self.filler_ms, 0, 30_000)
        if not self.pause_ms <= self.fallback_ms:
            raise ConfigError("turn pause_ms must not exceed fallback_ms")
        for name in ("threshold", "min_confidence"):
            value = getattr(self, name)
            if type(value) not in (int, float) or not 0.0 <= value <= 1.0:
                raise ConfigError(f"turn {name} must be a number within 0..1")
        if not isinstance(self.barge_in, BargeInMode):
            raise ConfigError("turn barge_in must be a BargeInMode")
        if not isinstance(self.phrases, tuple) or not all(isinstance(p, str) for p in self.phrases):
            raise ConfigError("turn phrases must be a tuple of strings")
        for name in ("backchannels", "stop_phrases", "unfinished_words"):
            _check_phrases(name, getattr(self, name))

    @property
    def silence_only(self) -> bool:
        return self.silence_ms is not None


@dataclass(frozen=True, slots=True)
class Interrupt:
    """Interrupt hotline now: ``cause`` is ``"speech"`` (an onset) or ``"words"`` (words)."""

    cause: str
    timestamp_ms: int


@dataclass(frozen=True, slots=True)
class HoldLine:
    """``pause`` barge-in: the caller's sound lasted: stop the line, keep what was not heard."""

    timestamp_ms: int


@dataclass(frozen=True, slots=True)
class ResumeLine:
    """``pause`` barge-in: it was no interruption: play the held line on from where it stopped."""


@dataclass(frozen=True, slots=True)
class CommitTranscript:
    """Ask the recogniser to finalise the speech it holds (the caller paused)."""


@dataclass(frozen=True, slots=True)
class JudgeTurn:
    """Ask the end-of-turn judge whether the caller is done; answer with
    :meth:`TurnTaker.verdict` (``seq``). ``audio``: the turn's last ≤ 8 s of 8 kHz µ-law."""

    seq: int
    audio: bytes


@dataclass(frozen=True, slots=True)
class Speculate:
    """The caller paused after ``text``: a reply to it may be prepared, not yet heard.
    ``confidence``: the recogniser's in these words, as :attr:`TurnEnded.confidence`.
    ``likely``: the words look finished and no judge is asked, so the turn ends at the settle
    time unless the caller goes on: worth voicing the reply ahead. Otherwise the turn waits
    for a verdict or the fallback, and the caller usually goes on (the reply's voice would be
    paid for on a guess that is mostly wrong)."""

    text: str
    confidence: float | None = None
    likely: bool = False


@dataclass(frozen=True, slots=True)
class Unspeculate:
    """The caller went on: the reply prepared for :class:`Speculate` is unwanted."""


@dataclass(frozen=True, slots=True)
class TurnEnded:
    """The caller's turn is over; ``text`` is its final transcript (never empty).

    Attributes:
        speech_started_ms / speech_ended_ms: media timestamps of the turn's first speech and of
            the silence that ended it.
        silence_at: ``now`` when the pause was long enough (the end of the silence wait).
        commit_at: ``now`` when :class:`CommitTranscript` was asked for (``None``: not needed).
        final_at: ``now`` when the turn ended (its final transcript, the verdict, the fallback).
        timed_out: the recogniser's final never came; ``text`` is what had been committed.
        reason: what ended it: ``"silence"`` (silence only), ``"judge"``, ``"words"`` (no judge:
            the words looked finished), ``"fallback"``, ``"timeout"``.
        confidence: how sure the recogniser was of ``text``, 0..1: its least sure final's;
            None (unknown) when a final came without one or the recogniser never gives any;
            0.0 when a recogniser that rates its finals never committed these words (the turn
            ended on an interim transcript: words nobody vouched for).
    """

    text: str
    speech_started_ms: int
    speech_ended_ms: int
    silence_at: float
    commit_at: float | None
    final_at: float
    timed_out: bool = False
    reason: str = "silence"
    confidence: float | None = None


TurnEvent = (
    Interrupt
    | HoldLine
    | ResumeLine
    | CommitTranscript
    | JudgeTurn
    | Speculate
    | Unspeculate
    | TurnEnded
)


def has_words(text: str) -> bool:
    """True if a transcript holds at least one word (a letter or a digit)."""
    return any(c.isalnum() for c in text)


def normalise(text: str) -> list[str]:
    """The words of a transcript: lowercased, punctuation dropped (hyphens and apostrophes kept)."""
    return [w.strip("-'") for w in _NOT_WORD.split(text.lower()) if w.strip("-'")]


def unfinished(
    text: str,
    words: tuple[str, ...] = UNFINISHED_WORDS,
    phrases: tuple[tuple[str, ...], ...] = (),
) -> bool:
    """The transcript signal: True when ``text`` ends where a sentence rarely does. It votes
    "not done", never "done". The rules, each about the end of the words:

    * the last word is one of ``words`` (an article, a conjunction, a preposition, a filler,
      an auxiliary, a question word), or a number. An auxiliary right after a subject pronoun
      is an answer and finished ("yes I do", "it is");
    * a question's opening with no verb after it: an auxiliary that needs one followed only
      by its subject ("can you", "where do you", "will there be"), or a form of *be* followed
      only by a subject that no question word came before ("is there", not "how are you");
      a modal with "be" after a question word is whole ("how long will it be");
    * ``phrases`` (a script's caller phrases as word tuples, see :func:`phrase_words`): the
      words end in the beginning of one of them, after nothing or only whole ones, and do
      not end in a whole one: "can you" of "can you repeat that", "album talk" of "album" and
      "talk to a person" (what a grammar ear forced to finalise mid-phrase returns); one word
      alone is not enough ("good" of "good bye").

    Empty ``words`` turn the signal off (every rule).
    """
    tokens = normalise(text)
    if not tokens or not words:
        return False
    last = tokens[-1]
    if last in _NUMBER_WORDS or last.isdigit():
        return True
    if last in words:
        # "yes I do", "it is": an answer; but "do you have" asks with no object (unless a
        # question word is the object: "what do you have")
        ellipsis = last in _AUX and len(tokens) > 1 and tokens[-2] in _SUBJECTS
        if ellipsis and len(tokens) > 2 and tokens[-3] in _AUX:
            ellipsis = any(t in _WH for t in tokens[:-3])
        if not ellipsis:
            return True
    return _open_question(tokens) or _mid_phrase(tokens, phrases)


def _open_question(tokens: list[str]) -> bool:
    if _subject_only(tokens):
        return True
    k = len(tokens) - (2 if tokens[-1] == "be" else 1)
    while k >= 0 and tokens[k] not in _AUX:
        k -= 1
    if k < 0 or k == len(tokens) - 1:
        return False
    rest = tokens[k + 1 :]
    if len(rest) > 2 or not all(t in _SUBJECTS or t == "be" for t in rest) or rest[0] == "be":
        return False
    wh_before = any(t in _WH for t in tokens[:k])
    if rest[-1] == "be":
        return tokens[k] in _NEEDS_VERB and len(rest) == 2 and not wh_before
    if len(rest) != 1:
        return False
    if tokens[k] in _NEEDS_VERB:
        return True
    return not (k > 0 and (tokens[k - 1] in _WH or tokens[k - 1] in _SUBJECTS))


def _subject_only(tokens: list[str]) -> bool:
    """An inverted question whose subject is an article or a possessive and one word, with
    nothing after it: "when does the show", "is the album", "can my friend". Only where the
    auxiliary opens the question (first, after greetings and fillers, or after a question
    word and at most one more: "what time does the show"), so "the band does the shows" and
    "where is the show" are not read; "that"/"this" are left out ("does that work")."""
    if len(tokens) < 3 or tokens[-2] not in _ARTICLES or tokens[-3] not in _AUX:
        return False
    k = len(tokens) - 3
    before = tokens[:k]
    if all(t in _DISCOURSE for t in before):
        return True
    lead = [t for t in before if t not in _DISCOURSE]
    return tokens[k] in _NEEDS_VERB and lead[0] in _WH and len(lead) <= 2


def phrase_words(phrases: tuple[str, ...]) -> tuple[tuple[str, ...], ...]:
    """Phrases as the word tuples :func:`unfinished` reads (normalised, empty ones dropped)."""
    out = (tuple(normalise(p)) for p in phrases)
    return tuple(dict.fromkeys(p for p in out if p))


def _mid_phrase(tokens: list[str], phrases: tuple[tuple[str, ...], ...]) -> bool:
    if not phrases:
        return False
    n = len(tokens)
    for p in phrases:
        if len(p) <= n and tuple(tokens[n - len(p) :]) == p:
            return False  # ends in a whole phrase
    for p in phrases:
        for k in range(1, min(len(p) - 1, n) + 1):
            # The begun phrase opens the turn or follows whole ones (as a grammar ear's
            # phrases do): "how are you" does not begin "are you playing near me". One word
            # only after a whole phrase ("album talk"): alone, "good" may be an answer.
            if k == 1 and n == 1:
                continue
            if tuple(tokens[n - k :]) == p[:k] and _whole_phrases(tokens[: n - k], phrases):
                return True
    return False


def _whole_phrases(tokens: list[str], phrases: tuple[tuple[str, ...], ...]) -> bool:
    """Whether ``tokens`` is a sequence of whole phrases (the empty one is)."""
    ok = [True] + [False] * len(tokens)
    for i in range(len(tokens)):
        if ok[i]:
            for p in phrases:
                if tuple(tokens[i : i + len(p)]) == p:
                    ok[i + len(p)] = True
    return ok[-1]


def _phrase_tokens(phrases: tuple[str, ...]) -> list[list[str]]:
    # Longest first, so "uh huh" is taken whole before "uh"; "mm-hmm" also matches "mm hmm".
    out = [normalise(p.replace("-", " ")) for p in phrases]
    return sorted((t for t in out if t), key=len, reverse=True)


def _covered(tokens: list[str], phrases: list[list[str]]) -> bool:
    i = 0
    while i < len(tokens):
        for p in phrases:
            if tokens[i : i + len(p)] == p:
                i += len(p)
                break
        else:
            return False
    return True


def is_backchannel(text: str, phrases: tuple[str, ...] = BACKCHANNELS) -> bool:
    """True if ``text`` has words and every one belongs to a backchannel ("mm-hm, okay")."""
    tokens = normalise(text.replace("-", " "))
    return bool(tokens) and _covered(tokens, _phrase_tokens(phrases))


def has_stop_phrase(text: str, phrases: tuple[str, ...] = STOP_PHRASES) -> bool:
    """True if ``text`` holds a stop phrase ("stop", "wait", "hold on") as whole words."""
    tokens = normalise(text.replace("-", " "))
    for p in _phrase_tokens(phrases):
        n = len(p)
        if any(tokens[i : i + n] == p for i in range(len(tokens) - n + 1)):
            return True
    return False


class _State(enum.Enum):
    QUIET = "quiet"  # no turn in progress
    SPEAKING = "speaking"  # the caller is talking
    PAUSED = "paused"  # silence began; shorter than the pause (or silence_ms)
    DECIDING = "deciding"  # the pause is long enough: final, verdict, or the fallback awaited


class TurnTaker:
    """Joins VAD, transcripts and the judge into caller turns and barge-in decisions.

    Args:
        config: turn settings.
    """

    def __init__(self, config: TurnConfig | None = None) -> None:
        self.config = config if config is not None else TurnConfig()
        cfg = self.config
        self._backchannels = cfg.backchannels
        self._stops = cfg.stop_phrases
        self._phrases = phrase_words(cfg.phrases)
        self._read: tuple[str, bool] = ("", False)  # the last text read, and whether unfinished
        self._sounding = False  # the detector called the last frame of a pause speech
        self.stt_available = True
        self._state = _State.QUIET
        self._events: list[TurnEvent] = []
        self._committed: list[str] = []  # final transcripts of this turn, in order
        self._vouched: list[float | None] = []  # the recogniser's confidence in each
        self._rated = False  # the recogniser rates its finals (one has come with a confidence)
        self._pending = ""  # the latest interim transcript not yet committed
        self._uncommitted = False  # speech heard since the last final transcript
        self._started_ms = 0
        self._ended_ms = 0
        self._silence_at = 0.0
        self._commit_at: float | None = None
        self._deadline: float | None = None  # shell clock: the final transcript's wait
        self._awaiting_final = False
        # The judge: the turn's audio, the question in flight and its answer.
        self._audio: bytearray | None = bytearray() if cfg.judge else None
        self._preroll: deque[bytes] | None = deque() if cfg.judge else None
        self._preroll_bytes = 0
        self._media_ms = 0  # the last frame's media timestamp
        self._seq = 0
        self._asked: int | None = None  # seq of the question whose answer is awaited
        self._probability: float | None = None  # this pause's answer
        self._speculated: str | None = None
        # Barge-in (pause mode): the caller's sound began while hotline spoke.
        self._over_bot = False
        self._onset_ms = 0
        self._held = False
        self._words_over_bot = False  # non-backchannel words arrived over the line
        self._bot_speaking = False  # hotline was speaking at the last transcript or onset
        self.turns = 0
        self.dropped = 0
        self.backchannels = 0  # turns of backchannel words only, dropped
        self.verdicts = 0
        #: a turn ended without its final (timed out): a final that comes before the caller
        #: speaks again is that turn's, late
        self._owed_final = False
        self.late_finals = 0  # late finals dropped (their turn had ended without them)
        self.late_text = ""  # the last one's text

    # ------------------------------------------------------------------ queries

    @property
    def in_turn(self) -> bool:
        """True from the caller's first speech until the turn ends or is dropped."""
        return self._state is not _State.QUIET

    @property
    def held(self) -> bool:
        """The line is held (``pause`` barge-in) until :class:`ResumeLine` or :class:`Interrupt`."""
        return self._held

    def next_deadline(self) -> float | None:
        """When :meth:`poll` must run if nothing else happens (the final-transcript wait)."""
        return self._deadline

    @property
    def has_events(self) -> bool:
        """True if :meth:`events` would return something (checked per frame, so no list is made)."""
        return bool(self._events)

    def events(self) -> list[TurnEvent]:
        """Return and forget the events, in order."""
        out, self._events = self._events, []
        return out

    def _mode(self) -> BargeInMode:
        mode = self.config.barge_in
        if mode in (BargeInMode.WORDS, BargeInMode.PAUSE) and not self.stt_available:
            return BargeInMode.SPEECH
        return mode

    # ------------------------------------------------------------------ VAD side

    def speech_started(self, timestamp_ms: int, now: float, bot_speaking: bool) -> None:
        """The VAD heard the caller start (or resume) talking at media time ``timestamp_ms``."""
        if self._state is _State.QUIET:
            self._begin(timestamp_ms)
        elif self._state is _State.DECIDING:
            self._went_on()
        self._owed_final = False
        self._bot_speaking = bot_speaking
        self._state = _State.SPEAKING
        self._uncommitted = True
        self._deadline = None
        self._awaiting_final = False
        mode = self._mode()
        if bot_speaking and mode is BargeInMode.SPEECH:
            self._interrupt("speech", timestamp_ms)
        elif mode is BargeInMode.PAUSE and (bot_speaking or self._held):
            if not self._over_bot:
                self._over_bot = True
            self._onset_ms = timestamp_ms

    def speech_ended(self, timestamp_ms: int, now: float) -> None:
        """The VAD says the caller fell silent at media time ``timestamp_ms``."""
        if self._state is not _State.SPEAKING:
            return
        self._state = _State.PAUSED
        self._ended_ms = timestamp_ms

    def media(
        self,
        timestamp_ms: int,
        now: float,
        payload: bytes = b"",
        voiced: bool | None = None,
        loud: bool | None = None,
    ) -> None:
        """An inbound frame at media time ``timestamp_ms`` (``payload``: its µ-law, kept for the
        judge; ``voiced``: whether the detector called the frame speech, ``None``: unknown;
        ``loud``: whether it passed the detector's energy gate, which a slower detector may not
        have judged yet): the guard, the pause, the fallback and a held line's resume run on
        this clock.

        A paused turn never ends on a frame that is voiced or loud: the caller may be going
        on, and the detector reports an onset only after ``min_speech_ms`` (Silero took up to
        535 ms on a resumed "six", while a 300 ms pause had its turn ended). It ends at the
        first quiet frame after (a cough costs its own length)."""
        state = self._state
        self._sounding = bool(voiced) or bool(loud)
        self._media_ms = timestamp_ms
        if self._audio is not None and payload:
            self._keep(payload)
        if state is _State.QUIET:
            if self._held and timestamp_ms - self._ended_ms >= self.config.resume_ms:
                self._release()  # the sound was no turn (a cough): the line goes on
            return
        cfg = self.config
        if state is _State.SPEAKING:
            if (
                self._over_bot
                and voiced is not False
                and not self._held
                and timestamp_ms - self._onset_ms >= cfg.guard_ms
                and self._mode() is BargeInMode.PAUSE
            ):
                self._held = True
                self._events.append(HoldLine(self._onset_ms))
            return
        silence = timestamp_ms - self._ended_ms
        if self._held and not self._words_over_bot and silence >= cfg.resume_ms:
            self._release()
        if state is _State.PAUSED:
            wait = cfg.silence_ms if cfg.silence_ms is not None else cfg.pause_ms
            if silence >= wait:
                self._paused(now)
        elif not self._awaiting_final and self._committed:
            # Deciding, the words in: the fallback; or the verdict or (no judge) the settle
            # time, once the caller is quiet.
            if silence >= cfg.fallback_ms:
                self._end(now, reason="fallback")
            elif not self._sounding and (
                cfg.judge or (silence >= cfg.settle_ms and not self._waits(self._text()))
            ):
                self._decide(now)

    def _paused(self, now: float) -> None:
        """The pause is long enough: force the final, ask the judge."""
        cfg = self.config
        self._silence_at = now
        if not self.stt_available:
            # Nobody will transcribe this turn: drop it (DTMF and say still work).
            self._drop()
            return
        self._state = _State.DECIDING
        self._probability = None
        if self._uncommitted or has_words(self._pending) or not self._committed:
            self._awaiting_final = True
            self._commit_at = now
            self._deadline = now + cfg.final_timeout_ms / 1000.0
            self._events.append(CommitTranscript())
        else:
            self._awaiting_final = False
        if cfg.judge and not cfg.silence_only and self._audio:
            self._seq += 1
            self._asked = self._seq
            self._events.append(JudgeTurn(self._seq, bytes(self._audio[-JUDGE_AUDIO_BYTES:])))
        self._decide(now)

    # ------------------------------------------------------------------ judge side

    def verdict(self, seq: int, probability: float, now: float) -> None:
        """The judge's answer to :class:`JudgeTurn` ``seq`` (a stale one is ignored)."""
        if seq != self._asked or self._state is not _State.DECIDING:
            return
        self._asked = None
        self.verdicts += 1
        self._probability = probability
        self._decide(now)

    def judge_failed(self, seq: int, now: float) -> None:
        """The judge could not answer ``seq``: decide without it (the fallback)."""
        if seq == self._asked:
            self._asked = None
            self._probability = 0.0
            self._decide(now)

    # ------------------------------------------------------------------ transcript side

    def partial(self, text: str, now: float, bot_speaking: bool) -> None:
        """An interim transcript (it replaces the previous interim one)."""
        self._bot_speaking = bot_speaking
        self._pending = text
        self._maybe_words(text, bot_speaking, final=False)

    def final(
        self, text: str, now: float, bot_speaking: bool, confidence: float | None = None
    ) -> None:
        """A final (committed) transcript of a stretch of the caller's speech, and the
        recogniser's confidence in it (None: it gave none)."""
        self._bot_speaking = bot_speaking
        if confidence is not None:
            self._rated = True
        self._pending = ""
        if self._state is not _State.SPEAKING:
            # Committed after the silence began: nothing said since is left uncommitted.
            self._uncommitted = False
        if has_words(text):
            if self._state is _State.QUIET and self._owed_final:
                # The final of the turn that timed out waiting for it: that turn has been
                # answered; as a turn of its own it gave the brain a second prompt and the
                # caller a second reply.
                self.late_finals += 1
                self.late_text = text.strip()
                return
            if self._state is _State.QUIET:
                # The recogniser heard words the VAD missed (quiet speech): a turn of its own,
                # already past its pause.
                self._begin(0)
                self._state = _State.DECIDING
                self._silence_at = now
                self._commit(text, confidence)
                self._maybe_words(text, bot_speaking, final=True)
                self._end(now, reason="silence" if self.config.silence_only else "words")
                return
            self._commit(text, confidence)
            self._maybe_words(text, bot_speaking, final=True)
        if self._state is _State.DECIDING and not self._uncommitted:
            if not self._committed and self._awaiting_final:
                return  # an empty final while waiting: the rest may follow, until the deadline
            self._awaiting_final = False
            self._deadline = None
            self._decide(now)

    def stt_down(self) -> None:
        """The recogniser failed or dropped: end what can be ended; barge-in falls back."""
        self.stt_available = False
        if self._held:
            self._release()
        if self._state is _State.DECIDING:
            if self._committed:
                self._end(self._silence_at, timed_out=True, reason="timeout")
            else:
                self._drop()

    def stt_up(self) -> None:
        """The recogniser is (back) up."""
        self.stt_available = True

    def poll(self, now: float) -> None:
        """The final-transcript wait may have run out."""
        if self._deadline is None or now < self._deadline:
            return
        self._deadline = None
        if self._state is _State.DECIDING and self._awaiting_final:
            self._awaiting_final = False
            if has_words(self._pending):
                # words nobody committed: a rating recogniser did not vouch for them
                self._commit(self._pending, 0.0 if self._rated else None)
                self._pending = ""
            if self._committed:
                self._end(now, timed_out=True, reason="timeout")
            else:
                self._drop()

    def reset(self) -> None:
        """Forget the turn in progress (the call ended)."""
        self._state = _State.QUIET
        self._committed.clear()
        self._vouched.clear()
        self._pending = ""
        self._deadline = None
        self._held = False
        if self._audio is not None:
            self._audio.clear()

    # ------------------------------------------------------------------ internals

    def _text(self) -> str:
        return " ".join(t for t in self._committed if t)

    def _commit(self, text: str, confidence: float | None) -> None:
        self._committed.append(text.strip())
        self._vouched.append(confidence)

    def _confidence(self) -> float | None:
        """The turn's words' confidence (see :attr:`TurnEnded.confidence`)."""
        if not self._rated or not self._vouched or None in self._vouched:
            return None
        return min(c for c in self._vouched if c is not None)

    def _waits(self, text: str) -> bool:
        """Whether the turn's words wait for the fallback: :func:`unfinished` says so (read
        once per text: media asks per frame), or they are one final the recogniser is less
        sure of than ``min_confidence`` (a misheard fragment). Once the caller went on, the
        later finals are tails decoded alone, rated low even when right ("tour dates." 0.24,
        ``bench_turns``): the words decide then, as without the rating."""
        if self._read[0] != text:
            self._read = (text, unfinished(text, self.config.unfinished_words, self._phrases))
        if self._read[1]:
            return True
        floor = self.config.min_confidence
        if not floor or len(self._vouched) != 1:
            return False
        rated = self._vouched[0]
        return rated is not None and rated < floor

    def _decide(self, now: float) -> None:
        """Deciding: end the turn if the final and the verdict are in and say done."""
        if self._state is not _State.DECIDING or self._awaiting_final:
            return
        cfg = self.config
        text = self._text()
        if not has_words(text):
            self._drop()
            return
        if (
            self._over_bot
            and (self._held or self._bot_speaking)
            and is_backchannel(text, self._backchannels)
        ):
            # "mm-hm" over hotline's line: no interruption, and no turn for the brain. (A "yes"
            # begun over the end of a line that has finished since is an answer: a turn.)
            self.backchannels += 1
            if self._held:
                self._release()
            self._drop(counted=False)
            return
        if cfg.silence_only:
            self._end(now, reason="silence")
            return
        if self._asked is not None:
            self._maybe_speculate(text)
            return  # the verdict is on its way
        if self._waits(text):
            self._maybe_speculate(text)
            return  # the fallback (media) ends it unless the caller goes on
        if self._sounding:
            self._maybe_speculate(text)
            return  # the caller may be going on: decided at the next quiet frame (media)
        if cfg.judge and self._probability is not None:
            if self._probability >= cfg.threshold:
                self._end(now, reason="judge")
                return
        elif not cfg.judge and self._media_ms - self._ended_ms >= cfg.settle_ms:
            self._end(now, reason="words")
            return
        self._maybe_speculate(text, likely=not cfg.judge)

    def _maybe_speculate(self, text: str, *, likely: bool = False) -> None:
        if not self.config.speculate or text == self._speculated:
            return
        if self._held or (self._over_bot and not self._words_over_bot):
            return  # maybe a backchannel over the line: nothing to answer yet
        if self._speculated is not None:
            self._events.append(Unspeculate())
        self._speculated = text
        self._events.append(Speculate(text, self._confidence(), likely))

    def _went_on(self) -> None:
        """Speech resumed in a paused turn: the question in flight and a speculation are void."""
        self._asked = None
        self._probability = None
        if self._speculated is not None:
            self._speculated = None
            self._events.append(Unspeculate())

    def _keep(self, payload: bytes) -> None:
        audio = self._audio
        assert audio is not None
        if self._state is _State.QUIET:
            pre = self._preroll
            assert pre is not None
            pre.append(payload)
            self._preroll_bytes += len(payload)
            while self._preroll_bytes - len(pre[0]) >= _PREROLL_BYTES:
                self._preroll_bytes -= len(pre.popleft())
            return
        audio += payload
        if len(audio) > 2 * JUDGE_AUDIO_BYTES:
            del audio[:-JUDGE_AUDIO_BYTES]

    def _begin(self, timestamp_ms: int) -> None:
        self._started_ms = timestamp_ms
        self._uncommitted = False
        self._committed.clear()
        self._vouched.clear()
        self._pending = ""
        self._commit_at = None
        self._silence_at = 0.0
        self._awaiting_final = False
        self._asked = None
        self._probability = None
        self._speculated = None
        self._over_bot = False
        self._words_over_bot = False
        audio = self._audio
        if audio is not None:
            audio.clear()
            pre = self._preroll
            assert pre is not None
            for chunk in pre:
                audio += chunk
            pre.clear()
            self._preroll_bytes = 0

    def _maybe_words(self, text: str, bot_speaking: bool, *, final: bool) -> None:
        if not has_words(text) or not self.stt_available:
            return
        mode = self.config.barge_in
        if mode is BargeInMode.WORDS and bot_speaking:
            self._interrupt("words", self._started_ms)
        elif mode is BargeInMode.PAUSE and (bot_speaking or self._held):
            self._over_bot = True
            if has_stop_phrase(text, self._stops):
                self._words_over_bot = True
                self._interrupt("words", self._started_ms)
            elif not is_backchannel(text, self._backchannels):
                # A partial "yeah" may still grow into "yeah but"; any other word is real. A
                # final of backchannels only releases a held line when the turn is decided.
                self._words_over_bot = True
                self._interrupt("words", self._started_ms)

    def _interrupt(self, cause: str, timestamp_ms: int) -> None:
        # No latch: once the Call has cut its line it is no longer speaking, so the next
        # onset or word interrupts only a line that started since.
        self._held = False
        self._events.append(Interrupt(cause, timestamp_ms))

    def _release(self) -> None:
        self._held = False
        self._events.append(ResumeLine())

    def _end(self, now: float, *, timed_out: bool = False, reason: str) -> None:
        text = self._text()
        if self._held:
            # Words that are a turn of their own were never heard as an interruption (a
            # partial-less recogniser): the line they talked over is cut now.
            self._interrupt("words", self._started_ms)
        self._events.append(
            TurnEnded(
                text=text,
                speech_started_ms=self._started_ms,
                speech_ended_ms=self._ended_ms,
                silence_at=self._silence_at or now,
                commit_at=self._commit_at,
                final_at=now,
                timed_out=timed_out,
                reason=reason,
                confidence=self._confidence(),
            )
        )
        self._owed_final = timed_out
        self.turns += 1
        self._quiet()

    def _drop(self, *, counted: bool = True) -> None:
        if counted:
            self.dropped += 1
        if self._speculated is not None:
            self._events.append(Unspeculate())
        self._quiet()

    def _quiet(self) -> None:
        self._state = _State.QUIET
        self._committed.clear()
        self._vouched.clear()
        self._pending = ""
        self._deadline = None
        self._awaiting_final = False
        self._asked = None
        self._speculated = None
        self._over_bot = False
        self._words_over_bot = False
        if self._audio is not None:
            self._audio.clear()
