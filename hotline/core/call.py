"""The per-call state machine: it owns every utterance from queued to heard. Sans-I/O.

A :class:`Call` joins one :class:`~hotline.core.twilio.TwilioStream`, the call's script, its
:class:`~hotline.core.utterances.Utterances`, a :class:`~hotline.core.render.Voice` (TTS audio
to µ-law, the clean-recording rule), a :class:`~hotline.core.pacer.Pacer` (frames, marks, the
playhead) and :class:`~hotline.core.listening.Listening` (the caller's side: their audio for the
recogniser, the VAD, the :class:`~hotline.core.turns.TurnTaker`). It never sleeps, reads
a clock or touches a socket, and never calls the shell: the shell passes the time in (``now``,
seconds on any monotonic clock), feeds it input and drains what comes out, once per wake-up::

    call = Call(script, output_format="mp3_44100_128")
    call.receive_text(text, now)          # every Twilio text frame (raises TwilioProtocolError)
    call.accept(now)                      # after Started: the shell checked the token
    call.play_recorded(uid, ulaw, now)    # StartTTS answered from the phrase cache
    call.receive_tts(uid, event, now)     # ... or every ElevenLabs event of utterance ``uid``
    call.render_held(uid, now)            # ... once the first slice's frames are out (holds_audio)
    call.tts_failed(uid, detail, now)     # the TTS socket closed / timed out without isFinal
    call.say(text, now, interrupt=False)  # an outside brain speaks into the call
    call.pump(now)                        # move the audio that is due into the Twilio stream
    call.data_to_send()                   # -> Twilio text frames, in order (send them all)
    call.actions()                        # -> StartTTS, CancelTTS, Hangup, ... (execute them)
    call.next_deadline(now)               # when to call pump() again if nothing else happens

Listening (a call built with ``turns``; see :mod:`hotline.core.turns`)::

    call = Call(script, output_format=..., vad=vad, turns=TurnConfig(...), recognise=True)
    call.audio_to_recognise()             # -> the caller's µ-law since the last call (for STT)
    call.transcript_partial(text, now)    # the recogniser's interim transcript
    call.transcript_final(text, now)      # ... and its committed one
    call.stt_down(now) / call.stt_up()    # the recogniser failed / is back
    call.turn_handed(now)                 # the shell handed a CallerTurn to the brain
    call.replies.say(piece, now, last=.)  # the brain's reply, streamed (call.lines.reply_*)
    call.replies.play(ulaw, now)          # ready-made audio (a fetched file; lines.play_ulaw)
    call.finish(now, goodbye)             # let the reply play (or say goodbye), then hang up

What the caller says goes through :class:`~hotline.core.listening.Listening` (barge-in, the
turn's end, :class:`CallerTurn`); what hotline says, and how a line is cut, through
:class:`~hotline.core.lines.Lines`. The call's :class:`~hotline.core.transcript.Transcript`
(from ``accept``) gets every caller turn, every line hotline began to say and what the caller
heard of a cut one.

Script: on ``start`` (once the shell has called :meth:`accept`) the greeting is spoken. A DTMF
digit speaks its line (interrupting what plays); a goodbye digit speaks the goodbye and hangs up
once its end mark has echoed (or ``mark_grace`` seconds after it should have finished playing).
"""

from __future__ import annotations

from collections.abc import Callable

from hotline.core.actions import (
    Action,
    DigitPressed,
    Hangup,
    LineHeld,
    LineResumed,
    Started,
    Stopped,
    UtteranceOutcome,
    UtteranceSource,
)
from hotline.core.callstate import CallState, CallStateError
from hotline.core.events import (
    Connected,
    Dtmf,
    MarkEcho,
    Media,
    Start,
    Stop,
    TTSEvent,
    TwilioEvent,
)
from hotline.core.lines import Lines
from hotline.core.listening import Listening, QuietGate, SpeechDetector
from hotline.core.pacer import Pacer
from hotline.core.render import Converter, Renderer, Voice
from hotline.core.script import CallScript
from hotline.core.transcript import Transcript
from hotline.core.turns import TurnConfig, TurnTaker
from hotline.core.twilio import TwilioStream
from hotline.core.ulaw import BYTES_PER_MS, FRAME_BYTES
from hotline.core.utterances import Replies, Utterance, Utterances
from hotline.errors import assert_never

__all__ = ["Call"]


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
        frame_bytes, max_ahead_ms, refill_ms, batch_ms, batch_after_ms, mark_every_frames,
            mark_grace: pacing and marks (:class:`~hotline.core.pacer.Pacer`).
        twilio: the stream object (default: a new :class:`TwilioStream`).
        first_slice_bytes: of an utterance's first TTS audio message convert only this much
            at once and hold the rest (:attr:`holds_audio`) until the shell has sent the first
            frames (:data:`~hotline.core.render.FIRST_SLICE`; 0: convert whole messages).
        recognise: keep every inbound media payload from ``start`` on for
            :meth:`audio_to_recognise` (the shell's speech-to-text feed drains it).
        quiet_gate: with ``recognise``, hold the line's long silences back from the
            recogniser (:class:`~hotline.core.listening.QuietGate`; None: every payload).
        turns: turn-taking settings; with them a :class:`~hotline.core.turns.TurnTaker` joins
            the VAD and the transcripts into :class:`CallerTurn`, :class:`CommitSpeech` and
            barge-in, and every cut line is reported as :class:`LineInterrupted`. Without them
            (or while the recogniser is down) barge-in is on speech onset.
        brain_digits: a DTMF key cuts what plays and is reported as :class:`DigitPressed`
            (the brain answers) instead of being answered from the script's menu.

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
        first_slice_bytes: int = 0,
        recognise: bool = False,
        quiet_gate: QuietGate | None = None,
        turns: TurnConfig | None = None,
        brain_digits: bool = False,
    ) -> None:
        self.script = script
        self.hangup_after_greeting = hangup_after_greeting
        self.output_format = output_format
        self.state = CallState.CONNECTING
        self.twilio = twilio if twilio is not None else TwilioStream()
        self._actions: list[Action] = []
        self.pacer = Pacer(
            self.twilio,
            self._actions,
            frame_bytes=frame_bytes,
            max_ahead_ms=max_ahead_ms,
            refill_ms=refill_ms,
            batch_ms=batch_ms,
            batch_after_ms=batch_after_ms,
            mark_every_frames=mark_every_frames,
            mark_grace=mark_grace,
        )
        self._utts = Utterances(self._actions)
        renderer = Renderer(output_format, converter_factory, record_max=record_max_bytes)
        self._voice = Voice(renderer, self.pacer, self._utts, self._actions, first_slice_bytes)
        self._ears = Listening(
            self._actions,
            vad,
            turns,
            recognise=recognise,
            quiet_gate=quiet_gate,
            can_barge_in=self._can_barge_in,
            barge_in=self._barge_in,
            hold=self._hold_line,
            resume=self._resume_line,
            filler=self._say_filler,
            filler_ms=turns.filler_ms if turns is not None else 0,
        )
        self._held_at: float | None = None
        self.brain_digits = brain_digits
        #: A DTMF key reported to the brain cuts what plays (a relay app's ``interruptible``
        #: says whether keys do); a key the script's menu answers always does.
        self.digits_cut = True
        #: What was said on this call (from :meth:`accept` on).
        self.transcript: Transcript | None = None
        #: What hotline says next: a streamed reply (``lines.reply_open`` / ``reply_text`` /
        #: ``reply_close``), the queue's TTS starts, cuts (:class:`~hotline.core.lines.Lines`).
        self.lines = Lines(self, self._utts, self._voice, self.pacer, self._ears, self._actions)
        #: What the brain is saying (its streamed reply; see :class:`Replies`).
        self.replies = Replies(self.lines)

    # ------------------------------------------------------------------ properties

    @property
    def turns(self) -> TurnTaker | None:
        """The turn taker (a call built with ``turns``)."""
        return self._ears.turns

    @property
    def caller_turns(self) -> int:
        """Caller turns handed out (:class:`CallerTurn`)."""
        return self._ears.caller_turns

    @property
    def barge_ins(self) -> int:
        """Times the caller's voice cut what played."""
        return self.lines.barge_ins

    @property
    def ended(self) -> bool:
        return self.state is CallState.ENDED

    @property
    def call_sid(self) -> str | None:
        return self.twilio.call_sid

    @property
    def stream_sid(self) -> str | None:
        return self.twilio.stream_sid

    @property
    def bytes_sent(self) -> int:
        """µ-law bytes handed to Twilio so far (8 per millisecond)."""
        return self.pacer.playhead.sent_pos

    @property
    def current_utterance(self) -> int | None:
        """The utterance whose TTS is running, if any."""
        current = self._utts.current
        return current.id if current is not None else None

    @property
    def queued_utterances(self) -> int:
        return len(self._utts.queue)

    @property
    def utterances_total(self) -> int:
        return self._utts.total

    @property
    def converter_failures(self) -> int:
        """Utterances failed by an exception from the converter (the call went on)."""
        return self._voice.renderer.failures

    @property
    def holds_audio(self) -> bool:
        """The current utterance's first slice went ahead: the shell should let its frames
        out, then call :meth:`render_held`."""
        return bool(self._voice.held)

    def ahead_ms(self, now: float) -> float:
        """Audio queued at Twilio and not yet played, by our estimate."""
        return self.pacer.ahead(now) / BYTES_PER_MS

    def is_speaking(self, now: float) -> bool:
        """True while something is (or is about to be) heard by the caller."""
        return self._utts.audible() or self.pacer.speaking(now)

    # ------------------------------------------------------------------ outputs

    @property
    def has_data_to_send(self) -> bool:
        """True if :meth:`data_to_send` would return something."""
        return self.pacer.n_out > 0

    @property
    def has_actions(self) -> bool:
        """True if :meth:`actions` would return something."""
        return bool(self._actions)

    def data_to_send(self) -> list[str]:
        """Return and forget the Twilio text frames to send, in order."""
        return self.pacer.data_to_send()

    def actions(self) -> list[Action]:
        """Return and forget the actions for the shell, in order."""
        out = self._actions[:]
        self._actions.clear()
        return out

    @property
    def audio_held_back(self) -> int:
        """The caller's µ-law the quiet gate kept from the recogniser (bytes, 8 per ms)."""
        return self._ears.unsent_bytes

    def audio_to_recognise(self) -> list[bytes]:
        """Return and forget the caller's µ-law payloads received since the last call (a call
        built with ``recognise``; from ``start`` until the call ends)."""
        return self._ears.audio_to_recognise()

    def stop_recognising(self, now: float) -> None:
        """The shell can no longer feed the recogniser: keep no more audio, and barge-in falls
        back to speech onset (:meth:`stt_down`)."""
        self._ears.stop_recognising()
        self.stt_down(now)

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
            self.state = CallState.STARTED
            self.pacer.playhead.restart(now)
            self._actions.append(Started(event))
        elif isinstance(event, Stop):
            self._end(UtteranceOutcome.INTERRUPTED)
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
        greeting_interruptible: bool = True,
    ) -> None:
        """The shell checked ``start``: begin the call (and its transcript) with the greeting.

        Args:
            now: the time.
            script: the script this call follows (default: the one given at construction); an
                empty greeting says nothing (a ConversationRelay app without welcomeGreeting).
            hangup_after_greeting: hang up once the greeting has played (default: as given at
                construction).
            greeting_interruptible: whether the caller's voice cuts the greeting.

        Raises:
            CallStateError: not waiting for acceptance.
        """
        if self.state is not CallState.STARTED:
            raise CallStateError(f"accept() in state {self.state.value}")
        if script is not None:
            self.script = script
        if hangup_after_greeting is not None:
            self.hangup_after_greeting = hangup_after_greeting
        self.transcript = self._ears.transcript = Transcript(now)
        self.state = CallState.CLOSING if self.hangup_after_greeting else CallState.ACTIVE
        greeting, hangup = self.script.greeting, self.hangup_after_greeting
        if greeting:
            self._utts.add(
                greeting,
                UtteranceSource.SCRIPT,
                now,
                hangup_after=hangup,
                interruptible=greeting_interruptible,
            )
            self.lines.start_next(now)

    def reject(self) -> None:
        """The shell refused ``start`` (bad token): the call ends without a word."""
        self.state = CallState.ENDED

    def _on_media(self, media: Media, now: float) -> None:
        if self.state is not CallState.CONNECTING:
            self._ears.keep(media)
        if self.state is CallState.ACTIVE:  # the goodbye (CLOSING) plays, then we hang up
            self._ears.media(media, now)

    def _can_barge_in(self, now: float) -> bool:
        """The caller's voice may cut what plays now (something plays and it is interruptible)."""
        if self.state is not CallState.ACTIVE or not self.is_speaking(now):
            return False
        current = self._utts.now_playing(self.pacer.unsent(), queued=True)
        return current is None or current.interruptible

    def _on_digit(self, digit: str, now: float) -> None:
        if self.state is not CallState.ACTIVE:
            return  # not started yet, or the goodbye is playing
        self._ears.latency.forget()  # what follows answers the key, not the last spoken turn
        if self.digits_cut or not self.brain_digits:
            self.lines.interrupt(now)
        if self.brain_digits:
            self._actions.append(DigitPressed(digit))
            return
        entry = self.script.entry_for(digit)
        if entry.hangup:
            self.state = CallState.CLOSING
        self._utts.add(entry.say, UtteranceSource.SCRIPT, now, hangup_after=entry.hangup)
        self.lines.start_next(now)

    def _on_mark(self, name: str, now: float) -> None:
        mark = self.pacer.echo(name, now)
        if mark is None or not mark.final:
            return  # unknown, a late echo after a clear, or an accounting mark
        utt = mark.utt
        if utt in self._utts.playing:
            self._utts.playing.remove(utt)
        self._utts.report(utt, UtteranceOutcome.PLAYED)
        if utt.hangup_after:
            self._hangup("goodbye played")

    # ------------------------------------------------------------------ speech-to-text side

    def transcript_partial(self, text: str, now: float) -> None:
        """An interim transcript of the caller's speech (replaces the previous one)."""
        if self.state is CallState.ACTIVE:
            self._ears.partial(text, now)

    def transcript_final(self, text: str, now: float, confidence: float | None = None) -> None:
        """A final (committed) transcript of a stretch of the caller's speech, and the
        recogniser's confidence in it (0..1; None: it gave none). The turn's
        :class:`~hotline.core.actions.CallerTurn` carries its finals' least."""
        if self.state is CallState.ACTIVE:
            self._ears.final(text, now, confidence)

    def stt_down(self, now: float) -> None:
        """The recogniser failed or dropped: a turn waiting for it ends with what it has, and
        barge-in falls back to speech onset until :meth:`stt_up`."""
        self._ears.stt_down(now, active=self.state is CallState.ACTIVE)

    def stt_up(self) -> None:
        """The recogniser is (back) up."""
        self._ears.stt_up()

    def turn_verdict(self, seq: int, probability: float | None, now: float) -> None:
        """The end-of-turn judge answered :class:`JudgeTurn` ``seq`` (``None``: it failed)."""
        if self.state is CallState.ACTIVE:
            self._ears.verdict(seq, probability, now)

    def turn_handed(self, now: float) -> None:
        """The shell handed the last :class:`CallerTurn` to the brain at ``now`` (for
        :class:`TurnLatency`; without it the hand-over counts as instant)."""
        self._ears.latency.handed(now)

    # ------------------------------------------------------------------ TTS side

    def receive_tts(self, utterance_id: int, event: TTSEvent, now: float) -> bool:
        """Handle one TTS event of utterance ``utterance_id``. Of a large first audio message
        only the first slice is converted; the rest is held (:attr:`holds_audio`).

        Returns:
            False if that utterance is no longer wanted (barge-in, hang-up): the event was
            dropped, which is the right thing for late audio.
        """
        utt = self.rendering(utterance_id)
        if utt is None:
            return False
        if self._voice.receive(utt, event, now):
            self.lines.start_next(now)
        return True

    def render_held(self, utterance_id: int, now: float) -> bool:
        """Convert the rest of utterance ``utterance_id``'s first audio message (after its
        first frames went out). Returns False if that utterance is no longer wanted."""
        utt = self.rendering(utterance_id)
        if utt is None:
            return False
        if self._voice.release(utt):
            self.lines.start_next(now)
            return False
        return True

    def tts_failed(self, utterance_id: int, detail: str, now: float) -> bool:
        """The shell's TTS stream for ``utterance_id`` ended without ``isFinal`` (closed, timed
        out, could not connect). The audio received so far still plays; the next utterance starts.

        Returns:
            False if that utterance was no longer current (nothing to do).
        """
        utt = self.rendering(utterance_id)
        if utt is None:
            return False
        self._voice.failed(utt, detail)
        self.lines.start_next(now)
        return True

    def play_recorded(self, utterance_id: int, ulaw: bytes, now: float) -> bool:
        """Play ``ulaw`` (an earlier :class:`UtteranceRecorded`'s bytes) as utterance
        ``utterance_id`` instead of synthesising it: framed exactly as the first rendering was,
        then the utterance's TTS is over (no converter, nothing recorded).

        Returns:
            False if that utterance is no longer wanted (nothing was queued).
        """
        utt = self.rendering(utterance_id)
        if utt is None:
            return False
        self._voice.ready(utt, ulaw, now)
        self.lines.start_next(now)
        return True

    def rendering(self, utterance_id: int) -> Utterance | None:
        """Utterance ``utterance_id`` if its TTS is running (None once the call ended: nothing
        renders then). The shell's TTS feed reads a streamed reply's text from it."""
        utt = self._utts.current
        return utt if utt is not None and utt.id == utterance_id else None

    # ------------------------------------------------------------------ what to say

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
        utt = self.lines.add(text, UtteranceSource.SAY, now, interrupt=interrupt)
        utt.latency = self._ears.latency.claim(now)
        self.lines.start_next(now)
        return utt.id

    def finish(self, now: float, goodbye: str | None = None) -> None:
        """End the call gracefully: say ``goodbye`` (if given) after what is queued, or let
        what is queued and playing finish, then hang up. Nothing left to play and no goodbye:
        hang up now. A no-op unless the call is active."""
        if self.state is not CallState.ACTIVE:
            return
        if goodbye is not None and goodbye.strip():
            self.state = CallState.CLOSING
            self._utts.add(goodbye, UtteranceSource.SCRIPT, now, hangup_after=True)
            self.lines.start_next(now)
            return
        last = self._utts.last()
        if last is None:
            self._hangup("call ended by the brain")
            return
        self.state = CallState.CLOSING
        last.hangup_after = True
        if last in self._utts.playing and self.pacer.end_mark_out(last):
            self.pacer.arm_hangup(now)  # its end mark is out: arm the safety hang-up here

    def hangup(self, now: float, reason: str = "hangup requested") -> None:
        """Hang up now (what plays is cut). A no-op once the call has ended."""
        if self.state is not CallState.ENDED:
            self._hangup(reason)

    def close(self) -> None:
        """The call is over and gone from the shell: what it holds outside Python's memory (a
        pooled speech-detector instance) is given back now, not whenever it is collected."""
        self._ears.close()

    # ------------------------------------------------------------------ pacing

    def pump(self, now: float) -> None:
        """Move what is due into the Twilio stream: frames while at most ``max_ahead_ms`` is
        queued at Twilio (a frame always goes when its buffer is empty), and marks; fire the
        goodbye safety hang-up. Call it whenever audio arrived or :meth:`next_deadline` passed.
        """
        deadline = self.pacer.hangup_deadline
        if deadline is not None and now >= deadline:
            self.pacer.hangup_deadline = None
            if self.state is not CallState.ENDED:
                self._hangup("goodbye played (no mark echo)")
            return
        if self.state is CallState.ENDED or self.twilio.stream_sid is None:
            return
        self._ears.poll(now, active=self.state is CallState.ACTIVE)
        self.pacer.pump(now)

    def next_deadline(self, now: float) -> float | None:
        """When :meth:`pump` has something to do next if no new input arrives (``None``: not
        until new input). A value ``<= now`` means: pump now."""
        deadlines = [self.pacer.hangup_deadline]
        if self.state is CallState.ACTIVE:
            deadlines.append(self._ears.next_deadline())
        if self.state is not CallState.ENDED:
            deadlines.append(self.pacer.next_due(now))
        return min((d for d in deadlines if d is not None), default=None)

    # ------------------------------------------------------------------ internals

    def _hold_line(self, timestamp_ms: int, now: float) -> None:
        """``pause`` barge-in: stop the line, keep what the caller has not heard."""
        current = self._utts.now_playing(self.pacer.unsent())
        held = self.pacer.hold(now)
        if self._held_at is None:
            self._held_at = now
        self._actions.append(
            LineHeld(current.id if current is not None else 0, timestamp_ms, held / BYTES_PER_MS)
        )

    def _resume_line(self, now: float) -> None:
        """It was no interruption: the held line plays on from where the caller stopped."""
        if self.pacer.resume():
            current = self._utts.now_playing(self.pacer.unsent())
            held_at, self._held_at = self._held_at, None
            self._actions.append(
                LineResumed(
                    current.id if current is not None else 0,
                    now - held_at if held_at is not None else 0.0,
                )
            )

    def _say_filler(self, now: float) -> None:
        """The brain is slow: the script's filler line, unless something plays already."""
        line = self.script.filler
        if line and self.state is CallState.ACTIVE and not self.is_speaking(now):
            self.lines.add(line, UtteranceSource.SCRIPT, now, interrupt=False)
            self.lines.start_next(now)

    def _barge_in(self, timestamp_ms: int, now: float) -> None:
        self._held_at = None
        self.lines.barge_in(timestamp_ms, now)

    def _end(self, outcome: UtteranceOutcome) -> None:
        self._utts.drop_all(outcome)
        self.pacer.stop()
        self._voice.cut()
        self.state = CallState.ENDED

    def _hangup(self, reason: str) -> None:
        self._end(UtteranceOutcome.INTERRUPTED)
        self._actions.append(Hangup(reason))
