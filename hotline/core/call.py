"""The per-call state machine: utterances, pacing, marks, barge-in, hang-up. Sans-I/O.

A :class:`Call` owns one :class:`~hotline.core.twilio.TwilioStream`, the call's script, a queue
of utterances, the current utterance's µ-law converter (a new :class:`hotline.codec.Transcoder`
per utterance, flushed at its end, reset on barge-in), a :class:`~hotline.core.framer.Framer`
and a :class:`~hotline.core.playhead.Playhead`. It never sleeps, reads a clock or touches a
socket: the shell passes the time in (``now``, seconds on any monotonic clock) and executes
what comes out (:mod:`hotline.core.actions`)::

    call = Call(script, output_format="mp3_44100_128")
    call.receive_text(text, now)          # every Twilio text frame (raises TwilioProtocolError)
    call.accept(now)                      # after Started: the shell checked the token
    call.play_recorded(uid, ulaw, now)    # StartTTS answered from the phrase cache
    call.receive_tts(uid, event, now)     # ... or every ElevenLabs event of utterance ``uid``
    call.tts_failed(uid, detail, now)     # the TTS socket closed / timed out without isFinal
    call.say(text, now, interrupt=False)  # an outside brain speaks into the call
    call.pump(now)                        # move the audio that is due into the Twilio stream
    call.data_to_send()                   # -> Twilio text frames, in order (send them all)
    call.actions()                        # -> StartTTS, CancelTTS, Hangup, ... (execute them)
    call.next_deadline(now)               # when to call pump() again if nothing else happens

Listening (a call built with ``turns``; see :mod:`hotline.core.turns`)::

    call = Call(script, output_format=..., vad=vad, turns=TurnConfig(...), caller_audio=stt.feed)
    call.transcript_partial(text, now)    # the recogniser's interim transcript
    call.transcript_final(text, now)      # ... and its committed one
    call.stt_down(now) / call.stt_up()    # the recogniser failed / is back
    call.turn_handed(now)                 # the shell handed a CallerTurn to the brain
    uid = call.reply_open(now)            # a streamed reply: StartTTS(streaming=True) ...
    call.reply_text(uid, piece, now)      # ... TTSText per piece ...
    call.reply_close(uid, now)            # ... TTSClose
    call.play_ulaw(ulaw, now)             # ready-made audio (a fetched file, DTMF tones)
    call.finish(now, goodbye)             # let the reply play (or say goodbye), then hang up

Every inbound media payload goes to ``caller_audio``; the VAD's onsets and ends and every
media timestamp go to the :class:`~hotline.core.turns.TurnTaker`, which decides barge-in
(``speech``/``words``/``off``), asks for :class:`CommitSpeech` once the caller's silence is
long enough, and ends the turn as :class:`CallerTurn`. The first frame of the reply to a turn
comes with a :class:`TurnLatency` (the voice-to-voice split). A cut line is reported as
:class:`LineInterrupted`: what the caller heard, from the playhead and the TTS alignment placed
at each chunk's offset on the utterance's own audio timeline.

Recording and replay. A call built with ``record_max_bytes`` > 0 keeps the µ-law its converter
produced for each utterance; when an utterance's TTS ends cleanly (``isFinal``, no failure, no
undecodable audio skipped, not cut, not longer than ``record_max_bytes``) it emits
:class:`~hotline.core.actions.UtteranceRecorded` with exactly the bytes the caller is sent. A
later :meth:`play_recorded` of those bytes frames them the same way, so a replay is
byte-identical to the first rendering.

Pacing. :meth:`pump` keeps at most ``max_ahead_ms`` of audio queued at Twilio ahead of the
playhead estimate (so a ``clear`` drops little and memory stays bounded) and never holds a
frame back when the buffer is empty. It refills in steps of ``refill_ms`` so a call needs a few
wake-ups per second, not fifty. An utterance's first frames go out at once, one 20 ms frame per
message; once ``batch_after_ms`` is queued ahead, frames are joined into messages of up to
``batch_ms`` (Twilio plays media payloads of any size in order), so a second of audio costs
about six messages, not fifty. Every echoed mark corrects the estimate.

Marks. One mark after each utterance's last frame (``u<id>-end``) and, every
``mark_every_frames`` frames, an accounting mark (``u<id>-f<n>``). A ``clear`` makes Twilio
echo every pending mark at once, so on barge-in the pending marks are forgotten first and any
echo of an unknown name is ignored.

Barge-in. A :class:`~hotline.core.events.SpeechStarted` from the VAD while something is
playing in an active call (audio queued at Twilio, frames not yet sent, or a TTS stream
running; the goodbye is not interruptible) sends ``clear``, drops the pending marks and
frames, resets the converter and the framer, and asks the shell to close that utterance's
ElevenLabs stream (:class:`~hotline.core.actions.CancelTTS`). Late audio for it is ignored.

Converter failures. Any exception from the converter (a :class:`~hotline.errors.CodecError`
for bad audio, but also e.g. ``MemoryError``) fails that utterance only: the converter is
reset (or replaced), :attr:`Call.converter_failures` counts it, the utterance ends
``failed`` with the reason in its detail, and the next utterance plays.

Script. On ``start`` (once the shell has checked the per-call token and called :meth:`accept`)
the greeting is spoken. A DTMF digit speaks its line (interrupting what plays); a goodbye digit
speaks the goodbye and hangs up once its end mark has echoed (or, if Twilio never echoes it,
``mark_grace`` seconds after it should have finished playing).
"""

from __future__ import annotations

import enum
from collections import deque
from collections.abc import Callable, Iterable
from typing import Protocol

from hotline.core.actions import (
    Action,
    AudioSkipped,
    BargeIn,
    CallerTurn,
    CancelTTS,
    CommitSpeech,
    DigitPressed,
    FirstFrame,
    Hangup,
    LineInterrupted,
    Started,
    StartTTS,
    Stopped,
    TTSClose,
    TTSText,
    TurnLatency,
    Underrun,
    UtteranceEnded,
    UtteranceOutcome,
    UtteranceRecorded,
    UtteranceSource,
)
from hotline.core.events import (
    Connected,
    Dtmf,
    MarkEcho,
    Media,
    SpeechEnded,
    SpeechStarted,
    Start,
    Stop,
    TTSAudio,
    TTSEvent,
    TTSFailure,
    TTSFinal,
    TwilioEvent,
)
from hotline.core.framer import Framer
from hotline.core.heard import HeardText
from hotline.core.playhead import Playhead
from hotline.core.script import CallScript
from hotline.core.turns import CommitTranscript, Interrupt, TurnConfig, TurnEnded, TurnTaker
from hotline.core.twilio import TwilioStream
from hotline.core.ulaw import BYTES_PER_MS, FRAME_BYTES
from hotline.errors import CodecError, HotlineError, assert_never

__all__ = [
    "Action",
    "AudioSkipped",
    "BargeIn",
    "Call",
    "CallState",
    "CallStateError",
    "CallerTurn",
    "CancelTTS",
    "CommitSpeech",
    "Converter",
    "ConverterStats",
    "DigitPressed",
    "FirstFrame",
    "Hangup",
    "LineInterrupted",
    "SpeechDetector",
    "StartTTS",
    "Started",
    "Stopped",
    "TTSClose",
    "TTSText",
    "TurnLatency",
    "Underrun",
    "UtteranceEnded",
    "UtteranceOutcome",
    "UtteranceRecorded",
    "UtteranceSource",
]


class CallStateError(HotlineError, RuntimeError):
    """A call method was used in a state that does not allow it (e.g. ``say`` after hang-up)."""


class ConverterStats(Protocol):
    """The converter statistics :class:`Call` reads."""

    @property
    def skipped_bytes(self) -> int: ...


class Converter(Protocol):
    """What :class:`Call` needs from :class:`hotline.codec.Transcoder`: TTS audio in, µ-law out.

    ``feed`` and ``flush`` may raise anything; :class:`Call` fails only that utterance.
    """

    def feed(self, data: bytes) -> bytes: ...

    def flush(self) -> bytes: ...

    def reset(self) -> None: ...

    @property
    def stats(self) -> ConverterStats: ...


class SpeechDetector(Protocol):
    """What :class:`Call` needs from :class:`hotline.core.vad.Vad`."""

    def process(self, media: Media) -> SpeechStarted | SpeechEnded | None: ...

    def reset(self) -> None: ...


class CallState(enum.Enum):
    """Where a :class:`Call` is in its life."""

    CONNECTING = "connecting"  # before Twilio's ``start``
    STARTED = "started"  # ``start`` seen; waiting for the shell to accept() or reject()
    ACTIVE = "active"  # speaking, listening
    CLOSING = "closing"  # the goodbye is playing; hang up once it has played
    ENDED = "ended"  # hung up, stopped or rejected; everything else is ignored


# ---------------------------------------------------------------------------- internals


class _Latency:
    """The timestamps of one caller turn, until its reply's first frame goes out."""

    __slots__ = ("ended_at", "final_at", "first_token_at", "handed_at", "silence_at")

    def __init__(self, ended_at: float, silence_at: float, final_at: float) -> None:
        self.ended_at = ended_at
        self.silence_at = silence_at
        self.final_at = final_at
        self.handed_at = final_at
        self.first_token_at: float | None = None


class _Utt:
    __slots__ = (
        "closed",
        "first_audio_at",
        "frames_sent",
        "hangup_after",
        "heard",
        "id",
        "interruptible",
        "latency",
        "queued_at",
        "recording",
        "recording_bytes",
        "reported",
        "skipped_before",
        "source",
        "streaming",
        "text",
        "tts_started_at",
        "ulaw",
        "ulaw_bytes",
    )

    def __init__(
        self, uid: int, text: str, source: UtteranceSource, hangup_after: bool, now: float
    ) -> None:
        self.id = uid
        self.text = text
        self.source = source
        self.hangup_after = hangup_after
        self.queued_at = now
        self.tts_started_at: float | None = None
        self.first_audio_at: float | None = None
        self.frames_sent = 0
        self.reported = False
        # The µ-law produced for it (None: not recording, replayed, or spoiled).
        self.recording: list[bytes] | None = None
        self.recording_bytes = 0
        self.skipped_before = 0
        # A streamed reply (Call.reply_open) is ``streaming``; ``closed`` once its text is whole.
        self.streaming = False
        self.closed = True
        self.interruptible = True
        self.heard = HeardText(text)
        self.ulaw_bytes = 0  # µ-law produced for it so far (its audio timeline)
        self.ulaw: bytes | None = None  # ready-made audio (play_ulaw): no TTS at all
        self.latency: _Latency | None = None


class _Mark:
    __slots__ = ("final", "pos", "utt")

    def __init__(self, utt: _Utt, pos: int, final: bool) -> None:
        self.utt = utt
        self.pos = pos
        self.final = final


# An outbound queue entry: a µ-law frame, or (str) the name of the utterance's end mark.
_OutItem = tuple[_Utt, bytes | str]


def _default_converter(output_format: str) -> Converter:
    from hotline.codec import Transcoder

    return Transcoder(output_format)


class Call:
    """One phone call: Twilio stream in and out, utterances, pacing, barge-in.

    Args:
        script: what to say (:class:`hotline.core.script.CallScript`).
        hangup_after_greeting: hang up once the greeting has played (the debug call).
        output_format: the ElevenLabs ``output_format`` the TTS audio arrives in.
        vad: speech detector for barge-in (``None``: no barge-in).
        converter_factory: builds the µ-law converter (default :class:`hotline.codec.Transcoder`).
        record_max_bytes: record each synthesised utterance up to this many µ-law bytes and
            report clean ones as :class:`UtteranceRecorded` (0: record nothing).
        frame_bytes: outbound media frame size (160 = 20 ms).
        max_ahead_ms: audio kept queued at Twilio ahead of the estimated playhead, at most.
        refill_ms: pump wakes up once the queue has drained this much below ``max_ahead_ms``.
        batch_ms: once ``batch_after_ms`` is queued ahead of the playhead, frames go out
            joined in messages of up to this much audio (``frame_bytes`` minimum: no batching).
        batch_after_ms: audio queued ahead below which every frame is its own message (an
            utterance's first frames go at once and small).
        mark_every_frames: an accounting mark after every N frames (0: only end marks).
        mark_grace: seconds after a goodbye should have finished playing before hanging up
            without its mark echo.
        twilio: the stream object (default: a new :class:`TwilioStream`).
        caller_audio: called with every inbound media payload (raw µ-law) once ``start`` was
            seen and until the call ends: the shell's speech-to-text feed. Must not block.
        turns: turn-taking settings; with them a :class:`~hotline.core.turns.TurnTaker` joins
            the VAD and the transcripts (:meth:`transcript_partial` / :meth:`transcript_final`)
            into :class:`CallerTurn`, :class:`CommitSpeech` and barge-in. Without them (or
            while the recogniser is down) barge-in is on speech onset, as before.
        brain_digits: a DTMF key cuts what plays and is reported as :class:`DigitPressed`
            (the brain answers) instead of being answered from the script's menu.

    A call built with ``turns`` also reports every cut line as :class:`LineInterrupted`
    (what the caller heard of it: the playhead plus the TTS alignment, via
    :class:`~hotline.core.heard.HeardText`).

    Raises:
        ValueError: a nonsensical pacing parameter.
        CodecError: ``output_format`` is not supported by the converter.
    """

    def __init__(
        self,
        script: CallScript,
        *,
        hangup_after_greeting: bool = False,
        output_format: str,
        vad: SpeechDetector | None = None,
        converter_factory: Callable[[str], Converter] | None = None,
        record_max_bytes: int = 0,
        frame_bytes: int = FRAME_BYTES,
        max_ahead_ms: int = 1000,
        refill_ms: int = 500,
        batch_ms: int = 200,
        batch_after_ms: int = 200,
        mark_every_frames: int = 0,
        mark_grace: float = 2.0,
        twilio: TwilioStream | None = None,
        caller_audio: Callable[[bytes], None] | None = None,
        turns: TurnConfig | None = None,
        brain_digits: bool = False,
    ) -> None:
        if frame_bytes <= 0:
            raise ValueError("frame_bytes must be positive")
        if max_ahead_ms * BYTES_PER_MS < frame_bytes:
            raise ValueError("max_ahead_ms must hold at least one frame")
        if not 0 <= refill_ms <= max_ahead_ms:
            raise ValueError("refill_ms must be between 0 and max_ahead_ms")
        if mark_every_frames < 0:
            raise ValueError("mark_every_frames must be >= 0")
        if batch_ms < 0 or batch_after_ms < 0:
            raise ValueError("batch_ms and batch_after_ms must be >= 0")
        if record_max_bytes < 0:
            raise ValueError("record_max_bytes must be >= 0")
        self.script = script
        self.hangup_after_greeting = hangup_after_greeting
        self.output_format = output_format
        self.state = CallState.CONNECTING
        self.twilio = twilio if twilio is not None else TwilioStream()
        self._vad = vad
        factory = converter_factory if converter_factory is not None else _default_converter
        self._new_converter = lambda: factory(output_format)
        self._converter = self._new_converter()  # fails early on a bad format
        self._framer = Framer(frame_bytes)
        self._frame_bytes = frame_bytes
        self._max_ahead = max_ahead_ms * BYTES_PER_MS
        self._low_water = self._max_ahead - refill_ms * BYTES_PER_MS
        self._batch_bytes = max(batch_ms * BYTES_PER_MS, frame_bytes)
        self._batch_after = max(batch_after_ms * BYTES_PER_MS, 1)
        self._mark_every = mark_every_frames
        self._mark_grace = mark_grace
        self._record_max = record_max_bytes

        self._next_id = 1
        self._queue: deque[_Utt] = deque()  # waiting for TTS
        self._tts: _Utt | None = None  # TTS stream running
        self._playing: list[_Utt] = []  # TTS done, end mark not echoed yet
        self._out: deque[_OutItem] = deque()
        self._marks: dict[str, _Mark] = {}
        self._actions: list[Action] = []
        self._n_out = 0  # messages queued in the TwilioStream since the last data_to_send()

        self.playhead = Playhead()
        self._hangup_deadline: float | None = None

        self.start: Start | None = None
        self.utterances_total = 0
        self.barge_ins = 0
        #: Utterances failed by an exception from the converter (the call went on).
        self.converter_failures = 0
        self.last_media_timestamp: int | None = None

        self._caller_audio = caller_audio
        self.turns: TurnTaker | None = TurnTaker(turns) if turns is not None else None
        self.brain_digits = brain_digits
        self._speech_ended_at: float | None = None  # shell-clock end of the caller's speech
        self._latency: _Latency | None = None  # the last turn, until a reply claims it
        self._last_turn: _Latency | None = None
        #: The ``caller_audio`` sink raised once and was dropped.
        self.caller_audio_failed = False
        #: Caller turns handed out (:class:`CallerTurn`).
        self.caller_turns = 0

    # ------------------------------------------------------------------ properties

    @property
    def call_sid(self) -> str | None:
        return self.twilio.call_sid

    @property
    def stream_sid(self) -> str | None:
        return self.twilio.stream_sid

    @property
    def bytes_sent(self) -> int:
        """µ-law bytes handed to Twilio so far (8 per millisecond)."""
        return self.playhead.sent_pos

    @property
    def current_utterance(self) -> int | None:
        """The utterance whose TTS is running, if any."""
        return self._tts.id if self._tts is not None else None

    @property
    def queued_utterances(self) -> int:
        return len(self._queue)

    def ahead_ms(self, now: float) -> float:
        """Audio queued at Twilio and not yet played, by our estimate."""
        return self.playhead.ahead(now) / BYTES_PER_MS

    def played_ms(self, utterance_id: int, now: float) -> float | None:
        """Milliseconds of utterance ``utterance_id`` the caller has heard by ``now`` (by our
        estimate; after a cut, up to the cut). None: nothing of it was sent (or long ago)."""
        return self.playhead.played_ms(utterance_id, now)

    def is_speaking(self, now: float) -> bool:
        """True while something is (or is about to be) heard by the caller."""
        if self._tts is not None or self._out or self._queue:
            return True
        if self.playhead.ahead(now) > 0:
            return True
        # Our estimate says Twilio's buffer is empty, but an end mark has not echoed yet:
        # believe the mark for a short while (the echo may be on its way).
        if any(m.final for m in self._marks.values()):
            return now < self.playhead.drained_at() + self._mark_grace
        return False

    # ------------------------------------------------------------------ outputs

    @property
    def has_data_to_send(self) -> bool:
        """True if :meth:`data_to_send` would return something."""
        return self._n_out > 0

    @property
    def has_actions(self) -> bool:
        """True if :meth:`actions` would return something."""
        return bool(self._actions)

    def data_to_send(self) -> list[str]:
        """Return and forget the Twilio text frames to send, in order."""
        self._n_out = 0
        return self.twilio.data_to_send()

    def actions(self) -> list[Action]:
        """Return and forget the actions for the shell, in order."""
        out, self._actions = self._actions, []
        return out

    # ------------------------------------------------------------------ Twilio side

    def receive_text(self, text: str, now: float) -> None:
        """Handle one Twilio text frame.

        Raises:
            TwilioProtocolError: the frame is malformed; it was dropped, nothing changed.
        """
        if self.state is CallState.ENDED:
            return
        self.twilio.receive_text(text)
        for event in self.twilio.events_received():
            self._handle_twilio(event, now)

    def receive_bytes(self, data: bytes) -> None:
        """A binary frame from Twilio: always an error (Twilio sends text only).

        Raises:
            TwilioProtocolError: always.
        """
        self.twilio.receive_bytes(data)

    def _handle_twilio(self, event: TwilioEvent, now: float) -> None:
        if isinstance(event, Media):
            self._on_media(event, now)
        elif isinstance(event, MarkEcho):
            self._on_mark(event.name, now)
        elif isinstance(event, Dtmf):
            self._on_digit(event.digit, now)
        elif isinstance(event, Start):
            self.start = event
            self.state = CallState.STARTED
            self.playhead.restart(now)
            self._actions.append(Started(event))
        elif isinstance(event, Stop):
            self._end(now, UtteranceOutcome.INTERRUPTED)
            self._actions.append(Stopped())
        elif isinstance(event, Connected):
            pass
        else:
            assert_never(event)

    def accept(
        self,
        now: float,
        *,
        script: CallScript | None = None,
        hangup_after_greeting: bool | None = None,
    ) -> None:
        """The shell checked ``start``: begin the call by speaking the greeting.

        Args:
            now: the time.
            script: the script this call follows (default: the one given at construction).
            hangup_after_greeting: hang up once the greeting has played (default: as given at
                construction).

        Raises:
            CallStateError: not waiting for acceptance.
        """
        if self.state is not CallState.STARTED:
            raise CallStateError(f"accept() in state {self.state.value}")
        if script is not None:
            self.script = script
        if hangup_after_greeting is not None:
            self.hangup_after_greeting = hangup_after_greeting
        self.state = CallState.CLOSING if self.hangup_after_greeting else CallState.ACTIVE
        self._enqueue(self.script.greeting, UtteranceSource.SCRIPT, self.hangup_after_greeting, now)

    def reject(self) -> None:
        """The shell refused ``start`` (bad token): the call ends without a word."""
        self.state = CallState.ENDED

    def _on_media(self, media: Media, now: float) -> None:
        self.last_media_timestamp = media.timestamp
        sink = self._caller_audio
        if sink is not None and self.state is not CallState.CONNECTING:
            try:
                sink(media.payload)
            except Exception:  # a broken speech-to-text feed is no reason to end the call
                self._caller_audio = None
                self.caller_audio_failed = True
                self.stt_down(now)
        if self._vad is None or self.state is not CallState.ACTIVE:
            return  # the goodbye (CLOSING) is not interruptible: it plays, then we hang up
        event = self._vad.process(media)
        turns = self.turns
        if turns is None:
            if isinstance(event, SpeechStarted) and self._can_barge_in(now):
                self._barge_in(event.timestamp_ms, now)
            return
        if event is not None:
            if isinstance(event, SpeechStarted):
                turns.speech_started(event.timestamp_ms, now, self._can_barge_in(now))
            elif isinstance(event, SpeechEnded):
                behind = max(media.timestamp - event.timestamp_ms, 0) / 1000.0
                self._speech_ended_at = now - behind
                turns.speech_ended(event.timestamp_ms, now)
            else:
                assert_never(event)
        turns.media(media.timestamp, now)
        self._turn_events(now)

    def _can_barge_in(self, now: float) -> bool:
        """The caller's voice may cut what plays now (something plays and it is interruptible)."""
        if self.state is not CallState.ACTIVE or not self.is_speaking(now):
            return False
        current = self._tts or (self._playing[0] if self._playing else None)
        if current is None:
            current = self._out[0][0] if self._out else (self._queue[0] if self._queue else None)
        return current is None or current.interruptible

    def _turn_events(self, now: float) -> None:
        turns = self.turns
        if turns is None or not turns.has_events:
            return  # the common case, once per inbound frame: nothing to hand out
        for event in turns.events():
            if isinstance(event, Interrupt):
                if self._can_barge_in(now):
                    self._barge_in(event.timestamp_ms, now)
            elif isinstance(event, CommitTranscript):
                self._actions.append(CommitSpeech())
            elif isinstance(event, TurnEnded):
                ended_at = self._speech_ended_at
                if ended_at is None or ended_at > event.silence_at:
                    ended_at = event.silence_at
                self._speech_ended_at = None
                self._latency = self._last_turn = _Latency(
                    ended_at, event.silence_at, event.final_at
                )
                self.caller_turns += 1
                self._actions.append(
                    CallerTurn(
                        text=event.text,
                        speech_started_ms=event.speech_started_ms,
                        speech_ended_ms=event.speech_ended_ms,
                        ended_at=ended_at,
                        silence_at=event.silence_at,
                        final_at=event.final_at,
                        timed_out=event.timed_out,
                    )
                )
            else:
                assert_never(event)

    # ------------------------------------------------------------------ speech-to-text side

    def transcript_partial(self, text: str, now: float) -> None:
        """An interim transcript of the caller's speech (replaces the previous one)."""
        if self.turns is None or self.state is not CallState.ACTIVE:
            return
        self.turns.partial(text, now, self._can_barge_in(now))
        self._turn_events(now)

    def transcript_final(self, text: str, now: float) -> None:
        """A final (committed) transcript of a stretch of the caller's speech."""
        if self.turns is None or self.state is not CallState.ACTIVE:
            return
        self.turns.final(text, now, self._can_barge_in(now))
        self._turn_events(now)

    def stt_down(self, now: float) -> None:
        """The recogniser failed or dropped: a turn waiting for it ends with what it has, and
        barge-in falls back to speech onset until :meth:`stt_up`."""
        if self.turns is None:
            return
        self.turns.stt_down()
        if self.state is CallState.ACTIVE:
            self._turn_events(now)
        else:
            self.turns.events()

    def stt_up(self) -> None:
        """The recogniser is (back) up."""
        if self.turns is not None:
            self.turns.stt_up()

    def turn_handed(self, now: float) -> None:
        """The shell handed the last :class:`CallerTurn` to the brain at ``now`` (for
        :class:`TurnLatency`; without it the hand-over counts as instant)."""
        lat = self._last_turn
        if lat is not None and lat.first_token_at is None:
            lat.handed_at = now

    def _on_digit(self, digit: str, now: float) -> None:
        if self.state is not CallState.ACTIVE:
            return  # not started yet, or the goodbye is playing
        self._latency = None  # what follows answers the key, not the last spoken turn
        if self.brain_digits:
            self._interrupt(now)
            self._actions.append(DigitPressed(digit))
            return
        entry = self.script.entry_for(digit)
        self._interrupt(now)
        if entry.hangup:
            self.state = CallState.CLOSING
        self._enqueue(entry.say, UtteranceSource.SCRIPT, entry.hangup, now)

    def _on_mark(self, name: str, now: float) -> None:
        mark = self._marks.pop(name, None)
        if mark is None:
            return  # unknown, or a late echo after a clear: ignore
        self.playhead.echo(mark.pos, now)
        if not mark.final:
            return
        utt = mark.utt
        if utt in self._playing:
            self._playing.remove(utt)
        self._report(utt, UtteranceOutcome.PLAYED)
        if utt.hangup_after:
            self._hangup("goodbye played", now)

    # ------------------------------------------------------------------ TTS side

    def receive_tts(self, utterance_id: int, event: TTSEvent, now: float) -> bool:
        """Handle one TTS event of utterance ``utterance_id``.

        Returns:
            False if that utterance is no longer wanted (barge-in, hang-up): the event was
            dropped, which is the right thing for late audio.
        """
        utt = self._tts
        if utt is None or utt.id != utterance_id or self.state is CallState.ENDED:
            return False
        if isinstance(event, TTSAudio):
            if utt.first_audio_at is None:
                utt.first_audio_at = now
            try:
                ulaw = self._converter.feed(event.data)
            except Exception as exc:  # any converter failure fails this utterance only
                self._converter_failed()
                self._actions.append(CancelTTS(utt.id))
                self._finish_tts(utt, now, _converter_detail(exc), flush=False)
                return True
            n = len(ulaw)
            utt.heard.add_chunk(
                event.alignment or event.normalized_alignment,
                utt.ulaw_bytes / BYTES_PER_MS,
                n / BYTES_PER_MS,
            )
            if n:
                utt.ulaw_bytes += n
                self._record(utt, ulaw)
                self._push_frames(utt, self._framer.push(ulaw))
        elif isinstance(event, TTSFinal):
            self._finish_tts(utt, now, None, flush=True)
        elif isinstance(event, TTSFailure):
            self._actions.append(CancelTTS(utt.id))
            self._finish_tts(utt, now, f"{event.error}: {event.message}", flush=True)
        else:
            assert_never(event)
        return True

    def tts_failed(self, utterance_id: int, detail: str, now: float) -> bool:
        """The shell's TTS stream for ``utterance_id`` ended without ``isFinal`` (closed, timed
        out, could not connect). The audio received so far still plays; the next utterance starts.

        Returns:
            False if that utterance was no longer current (nothing to do).
        """
        utt = self._tts
        if utt is None or utt.id != utterance_id or self.state is CallState.ENDED:
            return False
        self._finish_tts(utt, now, detail, flush=True)
        return True

    def play_recorded(self, utterance_id: int, ulaw: bytes, now: float) -> bool:
        """Play ``ulaw`` (an earlier :class:`UtteranceRecorded`'s bytes) as utterance
        ``utterance_id`` instead of synthesising it: framed exactly as the first rendering was,
        then the utterance's TTS is over (no converter, nothing recorded).

        Returns:
            False if that utterance is no longer wanted (nothing was queued).
        """
        utt = self._tts
        if utt is None or utt.id != utterance_id or self.state is CallState.ENDED:
            return False
        utt.first_audio_at = now
        utt.recording = None
        utt.heard.add_chunk(None, 0.0, len(ulaw) / BYTES_PER_MS)
        utt.ulaw_bytes += len(ulaw)
        self._push_frames(utt, self._framer.push(ulaw))
        self._end_utterance_audio(utt, now, None)
        return True

    def _push_frames(self, utt: _Utt, frames: Iterable[bytes]) -> None:
        out = self._out
        for frame in frames:
            out.append((utt, frame))

    def _record(self, utt: _Utt, ulaw: bytes) -> None:
        parts = utt.recording
        if parts is None:
            return
        utt.recording_bytes += len(ulaw)
        if utt.recording_bytes > self._record_max:
            utt.recording = None  # would not fit the cache: abandoned
            return
        parts.append(ulaw)

    def _finish_tts(self, utt: _Utt, now: float, failure: str | None, *, flush: bool) -> None:
        tail = b""
        if flush:
            try:
                tail = self._converter.flush()
            except Exception as exc:  # any converter failure fails this utterance only
                self._converter_failed()
                failure = failure or _converter_detail(exc)
        if tail:
            utt.ulaw_bytes += len(tail)
            self._record(utt, tail)
            self._push_frames(utt, self._framer.push(tail))
        skipped = self._skipped_bytes() - utt.skipped_before
        if skipped > 0:
            self._actions.append(AudioSkipped(utt.id, skipped))
        if failure is None and not skipped and utt.recording:
            self._actions.append(UtteranceRecorded(utt.id, utt.text, b"".join(utt.recording)))
        utt.recording = None
        self._end_utterance_audio(utt, now, failure)

    def _end_utterance_audio(self, utt: _Utt, now: float, failure: str | None) -> None:
        last = self._framer.end()
        if last:
            self._out.append((utt, last))
        self._out.append((utt, f"u{utt.id}-end"))
        self._tts = None
        self._playing.append(utt)
        if failure is not None:
            self._report(utt, UtteranceOutcome.FAILED, failure)
        self._start_next(now)

    def _skipped_bytes(self) -> int:
        try:
            return int(self._converter.stats.skipped_bytes)
        except Exception:  # a broken converter's statistics are no reason to fail the call
            return 0

    def _reset_converter(self) -> None:
        try:
            self._converter.reset()
        except Exception:
            self._converter = self._new_converter()

    def _converter_failed(self) -> None:
        self.converter_failures += 1
        self._reset_converter()

    # ------------------------------------------------------------------ outside brain

    def say(self, text: str, now: float, *, interrupt: bool = False) -> int:
        """Queue ``text`` as an utterance; with ``interrupt`` replace what is playing.

        Returns:
            The utterance id.

        Raises:
            ValueError: empty text.
            CallStateError: the call is not active (not started yet, saying goodbye, ended).
        """
        if not text or not text.strip():
            raise ValueError("text must not be empty")
        if self.state is not CallState.ACTIVE:
            raise CallStateError(f"cannot say in state {self.state.value}")
        if interrupt:
            self._interrupt(now)
        return self._enqueue(text, UtteranceSource.SAY, False, now, reply=True)

    # ------------------------------------------------------------------ streamed replies

    def reply_open(
        self,
        now: float,
        *,
        source: UtteranceSource = UtteranceSource.BRAIN,
        interrupt: bool = False,
        interruptible: bool = True,
    ) -> int:
        """Open a reply whose text arrives in pieces (:meth:`reply_text`, then
        :meth:`reply_close`). It is queued like any utterance; once it is its turn and has some
        text, :class:`StartTTS` (``streaming=True``) carries the text so far, every later piece
        a :class:`TTSText` and the close a :class:`TTSClose`, so the first words are voiced
        while the rest is still being written. A reply closed without any text is dropped.

        Args:
            now: the time.
            source: who speaks (default the brain).
            interrupt: cut what plays first (a preemptible line, an interrupting reply).
            interruptible: ``False``: the caller's voice does not cut this reply.

        Returns:
            The utterance id.

        Raises:
            CallStateError: the call is not active.
        """
        if self.state is not CallState.ACTIVE:
            raise CallStateError(f"cannot reply in state {self.state.value}")
        if interrupt:
            self._interrupt(now)
        uid = self._next_id
        self._next_id += 1
        self.utterances_total += 1
        utt = _Utt(uid, "", source, False, now)
        utt.streaming = True
        utt.closed = False
        utt.interruptible = interruptible
        self._claim_latency(utt, None)
        self._queue.append(utt)
        return uid

    def reply_text(self, utterance_id: int, piece: str, now: float) -> bool:
        """Append ``piece`` (kept verbatim, spaces included) to open reply ``utterance_id``.

        Returns:
            False if that reply is gone (cut, dropped, the call ended) or already closed.
        """
        utt = self._open_reply(utterance_id)
        if utt is None:
            return False
        if not piece:
            return True
        utt.text += piece
        utt.heard.add_text(piece)
        lat = utt.latency
        if lat is not None and lat.first_token_at is None and piece.strip():
            lat.first_token_at = now
        if self._tts is utt:
            self._actions.append(TTSText(utt.id, piece))
        elif self._tts is None:
            self._start_next(now)  # it may have been waiting for its first words
        return True

    def reply_close(self, utterance_id: int, now: float) -> bool:
        """Reply ``utterance_id``'s text is complete (its TTS is flushed and closed).

        Returns:
            False if that reply is gone or was already closed.
        """
        utt = self._open_reply(utterance_id)
        if utt is None:
            return False
        utt.closed = True
        if self._tts is utt:
            self._actions.append(TTSClose(utt.id))
        elif self._tts is None:
            self._start_next(now)
        return True

    def _open_reply(self, utterance_id: int) -> _Utt | None:
        if self.state is CallState.ENDED:
            return None
        utt = self._tts
        if utt is None or utt.id != utterance_id:
            utt = next((u for u in self._queue if u.id == utterance_id), None)
        if utt is None or not utt.streaming or utt.closed:
            return None
        return utt

    def play_ulaw(
        self,
        ulaw: bytes,
        now: float,
        *,
        source: UtteranceSource = UtteranceSource.BRAIN,
        label: str = "[audio]",
        interrupt: bool = False,
        interruptible: bool = True,
    ) -> int:
        """Queue ready-made 8 kHz µ-law (a fetched audio file, DTMF tones) as an utterance: it
        plays in turn like any line, with no TTS (no :class:`StartTTS`).

        Args:
            ulaw: the audio.
            now: the time.
            source: who asked for it.
            label: its text for transcripts and :class:`LineInterrupted`.
            interrupt: cut what plays first.
            interruptible: ``False``: the caller's voice does not cut it.

        Returns:
            The utterance id.

        Raises:
            ValueError: no audio.
            CallStateError: the call is not active.
        """
        if not ulaw:
            raise ValueError("ulaw must not be empty")
        if self.state is not CallState.ACTIVE:
            raise CallStateError(f"cannot play in state {self.state.value}")
        if interrupt:
            self._interrupt(now)
        uid = self._next_id
        self._next_id += 1
        self.utterances_total += 1
        utt = _Utt(uid, label, source, False, now)
        utt.ulaw = bytes(ulaw)
        utt.interruptible = interruptible
        self._claim_latency(utt, now)
        self._queue.append(utt)
        if self._tts is None:
            self._start_next(now)
        return uid

    def finish(self, now: float, goodbye: str | None = None) -> None:
        """End the call gracefully: say ``goodbye`` (if given) after what is queued, or let
        what is queued and playing finish, then hang up. Nothing left to play and no goodbye:
        hang up now. A no-op unless the call is active."""
        if self.state is not CallState.ACTIVE:
            return
        if goodbye is not None and goodbye.strip():
            self.state = CallState.CLOSING
            self._enqueue(goodbye, UtteranceSource.SCRIPT, True, now)
            return
        last = (
            self._queue[-1]
            if self._queue
            else self._tts or (self._playing[-1] if self._playing else None)
        )
        if last is None:
            self._hangup("call ended by the brain", now)
            return
        self.state = CallState.CLOSING
        last.hangup_after = True
        if last in self._playing and f"u{last.id}-end" in self._marks:
            # Its end mark is already out: the safety hang-up must be armed here.
            self._hangup_deadline = max(now, self.playhead.drained_at()) + self._mark_grace

    def hangup(self, now: float, reason: str = "hangup requested") -> None:
        """Hang up now (what plays is cut). A no-op once the call has ended."""
        if self.state is CallState.ENDED:
            return
        self._hangup(reason, now)

    # ------------------------------------------------------------------ pacing

    def pump(self, now: float) -> None:
        """Move what is due into the Twilio stream: frames while at most ``max_ahead_ms`` is
        queued at Twilio (a frame always goes when its buffer is empty), and marks; fire the
        goodbye safety hang-up. Call it whenever audio arrived or :meth:`next_deadline` passed.
        """
        if self._hangup_deadline is not None and now >= self._hangup_deadline:
            self._hangup_deadline = None
            if self.state is not CallState.ENDED:
                self._hangup("goodbye played (no mark echo)", now)
            return
        if self.state is CallState.ENDED or self.twilio.stream_sid is None:
            return
        turns = self.turns
        if turns is not None and turns.next_deadline() is not None:
            turns.poll(now)
            if self.state is CallState.ACTIVE:
                self._turn_events(now)
        out = self._out
        twilio = self.twilio
        head = self.playhead
        max_ahead = self._max_ahead
        played = head.played(now)
        # Refill in steps: once above the low-water mark, wait until the queue drains to it.
        refilling = head.sent_pos - played <= self._low_water
        batch_after = self._batch_after
        while out:
            utt, item = out[0]
            if type(item) is str:
                out.popleft()
                self._send_mark(item, utt, True, now)
                continue
            assert isinstance(item, bytes)
            ahead = head.sent_pos - played
            # An utterance's first frame goes as soon as it fits under the cap, refill step or
            # not (what the caller waits for); the rest follow in refill steps.
            if ahead > 0 and ((not refilling and utt.frames_sent) or ahead + len(item) > max_ahead):
                break
            out.popleft()
            frames = 1
            if ahead >= batch_after:
                # Well ahead of the playhead: one larger message of this utterance's next
                # frames (never past the ahead cap, an end mark or an accounting mark).
                item, frames = self._gather(utt, item, max_ahead - ahead)
            elif ahead <= 0:
                # Twilio's buffer is empty: playback (re)starts with this frame.
                if utt.frames_sent:
                    gap = now - head.drained_at()
                    if gap >= 0.001:
                        self._actions.append(Underrun(utt.id, gap * 1000.0))
                head.restart(now)
                played = head.sent_pos
            twilio.send_media(item)
            head.sent(utt.id, len(item))
            if not utt.frames_sent:
                self._actions.append(
                    FirstFrame(
                        utterance_id=utt.id,
                        source=utt.source,
                        message_index=self._n_out,
                        queued_at=utt.queued_at,
                        tts_started_at=utt.tts_started_at
                        if utt.tts_started_at is not None
                        else now,
                        first_audio_at=utt.first_audio_at
                        if utt.first_audio_at is not None
                        else now,
                        sent_at=now,
                    )
                )
                lat = utt.latency
                if lat is not None:
                    utt.latency = None
                    tts_at = utt.tts_started_at if utt.tts_started_at is not None else now
                    self._actions.append(
                        TurnLatency(
                            utterance_id=utt.id,
                            message_index=self._n_out,
                            ended_at=lat.ended_at,
                            silence_at=lat.silence_at,
                            final_at=lat.final_at,
                            handed_at=lat.handed_at,
                            first_token_at=lat.first_token_at
                            if lat.first_token_at is not None
                            else tts_at,
                            tts_started_at=tts_at,
                            first_audio_at=utt.first_audio_at
                            if utt.first_audio_at is not None
                            else now,
                            sent_at=now,
                        )
                    )
            self._n_out += 1
            utt.frames_sent += frames
            if self._mark_every and utt.frames_sent % self._mark_every == 0:
                self._send_mark(f"u{utt.id}-f{utt.frames_sent}", utt, False, now)

    def _gather(self, utt: _Utt, first: bytes, room: int) -> tuple[bytes, int]:
        """``first`` and the next frames of ``utt`` waiting in the queue, as one message of at
        most ``min(batch_bytes, room)`` bytes; returns it and the number of frames in it."""
        out = self._out
        limit = min(self._batch_bytes, room)
        size = len(first)
        frames = 1
        if self._mark_every:
            # stop on the accounting mark's frame, as frame-by-frame sending would
            limit_frames = self._mark_every - utt.frames_sent % self._mark_every
        else:
            limit_frames = 1 << 30
        parts: list[bytes] | None = None
        while out and frames < limit_frames:
            nutt, nxt = out[0]
            if nutt is not utt or type(nxt) is str or size + len(nxt) > limit:
                break
            assert isinstance(nxt, bytes)
            out.popleft()
            if parts is None:
                parts = [first]
            parts.append(nxt)
            size += len(nxt)
            frames += 1
        return (first if parts is None else b"".join(parts)), frames

    def _send_mark(self, name: str, utt: _Utt, final: bool, now: float) -> None:
        self.twilio.send_mark(name)
        self._n_out += 1
        self._marks[name] = _Mark(utt, self.playhead.sent_pos, final)
        if final and utt.hangup_after:
            self._hangup_deadline = max(now, self.playhead.drained_at()) + self._mark_grace

    def next_deadline(self, now: float) -> float | None:
        """When :meth:`pump` has something to do next if no new input arrives (``None``: not
        until new input). A value ``<= now`` means: pump now."""
        deadline = self._hangup_deadline
        if self.turns is not None and self.state is CallState.ACTIVE:
            turn_deadline = self.turns.next_deadline()
            if turn_deadline is not None:
                deadline = turn_deadline if deadline is None else min(deadline, turn_deadline)
        if self._out and self.state is not CallState.ENDED and self.twilio.stream_sid:
            utt, item = self._out[0]
            ahead = self.playhead.ahead(now)
            if type(item) is str or ahead <= self._low_water:
                return now
            if not utt.frames_sent and ahead + len(item) <= self._max_ahead:
                return now  # an utterance's first frame: at once
            wait_bytes = ahead - max(self._low_water, 0)
            due = now + max(wait_bytes, 0) / (BYTES_PER_MS * 1000)
            deadline = due if deadline is None else min(deadline, due)
        return deadline

    # ------------------------------------------------------------------ internals

    def _enqueue(
        self,
        text: str,
        source: UtteranceSource,
        hangup_after: bool,
        now: float,
        *,
        reply: bool = False,
    ) -> int:
        uid = self._next_id
        self._next_id += 1
        self.utterances_total += 1
        utt = _Utt(uid, text, source, hangup_after, now)
        if reply:
            self._claim_latency(utt, now)
        self._queue.append(utt)
        if self._tts is None:
            self._start_next(now)
        return uid

    def _claim_latency(self, utt: _Utt, first_token_at: float | None) -> None:
        """The reply to the last caller turn (if one is waiting) is ``utt``."""
        lat = self._latency
        if lat is not None:
            self._latency = None
            if first_token_at is not None:
                lat.first_token_at = first_token_at
            utt.latency = lat

    def _start_next(self, now: float) -> None:
        if self._tts is not None or self.state is CallState.ENDED:
            return
        queue = self._queue
        while queue:
            head = queue[0]
            if not head.streaming or head.text.strip():
                break
            if not head.closed:
                return  # a streamed reply with no words yet: wait for them
            queue.popleft()  # closed without a word: nothing to say
            self._report(head, UtteranceOutcome.DROPPED, "empty reply")
            if head.hangup_after:
                self._hangup("goodbye played", now)
                return
        if not queue:
            return
        utt = queue.popleft()
        utt.tts_started_at = now
        if utt.id > 1:
            # One converter per utterance: no decoder or resampler state crosses utterances.
            self._converter = self._new_converter()
        utt.skipped_before = self._skipped_bytes()
        if self._record_max and not utt.streaming:  # a streamed reply is never cached
            utt.recording = []
        self._tts = utt
        if utt.ulaw is not None:
            ulaw, utt.ulaw = utt.ulaw, None
            utt.first_audio_at = now
            utt.heard.add_chunk(None, 0.0, len(ulaw) / BYTES_PER_MS)
            utt.ulaw_bytes = len(ulaw)
            self._push_frames(utt, self._framer.push(ulaw))
            self._end_utterance_audio(utt, now, None)  # starts the next one
            return
        self._actions.append(StartTTS(utt.id, utt.text, utt.streaming))
        if utt.streaming and utt.closed:
            self._actions.append(TTSClose(utt.id))

    def _report(self, utt: _Utt, outcome: UtteranceOutcome, detail: str = "") -> None:
        if not utt.reported:
            utt.reported = True
            self._actions.append(UtteranceEnded(utt.id, utt.source, outcome, detail))

    def _interrupt(self, now: float) -> float:
        """Cut everything that plays or waits: clear, forget marks and frames, cancel the TTS.

        Returns:
            Milliseconds of audio dropped (queued at Twilio by our estimate + unsent frames).
        """
        ahead = self.playhead.ahead(now)
        dropped = ahead + sum(len(item) for _, item in self._out if type(item) is bytes)
        # What the caller heard of a cut line is for the brain: reported by a listening call.
        cut = self._being_heard(now) if self.turns is not None else None
        # Clear only if Twilio may still hold audio: unplayed by our estimate, or a mark of
        # ours has not echoed yet.
        at_twilio = ahead > 0 or bool(self._marks)
        if at_twilio and self.twilio.stream_sid is not None and self.state is not CallState.ENDED:
            self.twilio.send_clear()
            self._n_out += 1
        self._marks.clear()
        self._out.clear()
        self.playhead.clear(now)
        self._hangup_deadline = None
        if cut is not None:
            self._heard_report(cut, now)
        for utt in self._playing:
            self._report(utt, UtteranceOutcome.INTERRUPTED)
        self._playing.clear()
        if self._tts is not None:
            self._actions.append(CancelTTS(self._tts.id))
            self._report(self._tts, UtteranceOutcome.INTERRUPTED)
            self._tts = None
            self._reset_converter()
            self._framer.clear()
        for utt in self._queue:
            self._report(utt, UtteranceOutcome.DROPPED)
        self._queue.clear()
        return dropped / BYTES_PER_MS

    def _being_heard(self, now: float) -> _Utt | None:
        """The utterance the caller is hearing (or about to hear) at ``now``, if any: the first
        one sent but not played to its end, else the one whose TTS is running."""
        head = self.playhead
        for utt in self._playing:
            if utt.frames_sent:
                full = head.played_ms(utt.id, now + 1e6)
                played = head.played_ms(utt.id, now)
                if full is not None and played is not None and played < full:
                    return utt
        if self._tts is not None:
            return self._tts
        if self._out:
            return self._out[0][0]
        return None

    def _heard_report(self, utt: _Utt, now: float) -> None:
        played = self.playhead.played_ms(utt.id, now) if utt.frames_sent else None
        heard_ms = played if played is not None else 0.0
        total = utt.ulaw_bytes / BYTES_PER_MS if utt is not self._tts else None
        self._actions.append(
            LineInterrupted(
                utterance_id=utt.id,
                heard_text=utt.heard.heard(heard_ms, total_ms=total),
                heard_ms=heard_ms,
                text=utt.text,
                source=utt.source,
            )
        )

    def _barge_in(self, timestamp_ms: int, now: float) -> None:
        current = self._tts or (self._playing[0] if self._playing else None)
        if current is None and self._out:
            current = self._out[0][0]
        uid = current.id if current is not None else 0
        dropped_ms = self._interrupt(now)
        self.barge_ins += 1
        self._actions.append(BargeIn(uid, timestamp_ms, dropped_ms))

    def _end(self, now: float, outcome: UtteranceOutcome) -> None:
        for utt in self._playing:
            self._report(utt, outcome)
        self._playing.clear()
        if self._tts is not None:
            self._actions.append(CancelTTS(self._tts.id))
            self._report(self._tts, outcome)
            self._tts = None
        for utt in self._queue:
            self._report(utt, UtteranceOutcome.DROPPED)
        self._queue.clear()
        self._out.clear()
        self._marks.clear()
        self._hangup_deadline = None
        self._reset_converter()
        self._framer.clear()
        self.state = CallState.ENDED

    def _hangup(self, reason: str, now: float) -> None:
        self._end(now, UtteranceOutcome.INTERRUPTED)
        self._actions.append(Hangup(reason))


def _converter_detail(exc: Exception) -> str:
    if isinstance(exc, CodecError):
        return f"codec: {exc}"
    return f"codec: {type(exc).__name__}: {exc}" if str(exc) else f"codec: {type(exc).__name__}"
