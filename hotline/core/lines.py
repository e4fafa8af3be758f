"""What a :class:`~hotline.core.call.Call` says next, and how a line is cut. Sans-I/O.

:class:`Lines` turns the call's queue into TTS starts (:class:`StartTTS`, or ready-made audio
framed at once), feeds a streamed reply's text to its running TTS (:class:`TTSText`,
:class:`TTSClose`), writes every line hotline began to say into the transcript, and cuts what
plays (``clear``, marks and frames dropped, :class:`CancelTTS`), reporting what the caller heard
of a cut line (:class:`LineInterrupted`) and a barge-in (:class:`BargeIn`). The Call decides
*when* (its state, its inputs); this decides *what* follows.

Barge-in: speech (or words) from the caller while something interruptible plays in an active
call (audio queued at Twilio, frames not yet sent, or a TTS stream running; the goodbye is not
interruptible) sends ``clear``, drops the pending marks and frames, resets the converter and asks
the shell to close that utterance's TTS stream (:class:`CancelTTS`); late audio is ignored. A
cut line is reported as :class:`LineInterrupted` with what the caller heard (the playhead and
the TTS alignment, via :class:`~hotline.core.heard.HeardText`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

from hotline.core.actions import (
    Action,
    BargeIn,
    CancelTTS,
    LineInterrupted,
    StartTTS,
    TTSClose,
    TTSText,
    UtteranceOutcome,
    UtteranceSource,
)
from hotline.core.callstate import CallState, CallStateError
from hotline.core.ulaw import BYTES_PER_MS

if TYPE_CHECKING:
    from hotline.core.listening import Listening
    from hotline.core.pacer import Pacer
    from hotline.core.render import Voice
    from hotline.core.transcript import Transcript
    from hotline.core.utterances import Replies, Utterance, Utterances

__all__ = ["Lines"]


class _Call(Protocol):
    """What :class:`Lines` reads of its :class:`~hotline.core.call.Call`."""

    @property
    def state(self) -> CallState: ...

    @property
    def ended(self) -> bool: ...

    @property
    def transcript(self) -> Transcript | None: ...

    @property
    def replies(self) -> Replies: ...

    def hangup(self, now: float, reason: str = ...) -> None: ...


class Lines:
    """One call's lines (see the module docstring); actions go to ``actions``."""

    __slots__ = (
        "_actions",
        "_call",
        "_ears",
        "_pacer",
        "_speculating",
        "_utts",
        "_voice",
        "barge_ins",
    )

    def __init__(
        self,
        call: _Call,
        utts: Utterances,
        voice: Voice,
        pacer: Pacer,
        ears: Listening,
        actions: list[Action],
    ) -> None:
        self._call = call
        self._utts = utts
        self._voice = voice
        self._pacer = pacer
        self._ears = ears
        self._actions = actions
        self.barge_ins = 0
        self._speculating = False

    def add(
        self,
        text: str,
        source: UtteranceSource,
        now: float,
        *,
        interrupt: bool,
        interruptible: bool = True,
        language: str | None = None,
    ) -> Utterance:
        """A new utterance from outside the script, queued last (in ``language``, else the
        session's: :attr:`language`).

        Raises:
            CallStateError: the call is not active.
        """
        state = self._call.state
        if state is not CallState.ACTIVE:
            raise CallStateError(f"cannot speak in state {state.value}")
        if interrupt:
            self.interrupt(now)
        return self._utts.add(text, source, now, interruptible=interruptible, language=language)

    # ------------------------------------------------------------------ the voice's language

    @property
    def language(self) -> str | None:
        """The voice's language for what is queued from now on (None: the call's own)."""
        return self._utts.language

    def speak_in(self, language: str | None) -> None:
        """A ConversationRelay ``language`` message's ``ttsLanguage``: every line queued from
        now on, the script's included, is spoken in ``language`` (a BCP-47 tag; None: the
        call's own voice again); what is already queued or playing keeps its language."""
        self._utts.language = language or None

    # ------------------------------------------------------------------ a streamed reply

    def reply_open(
        self,
        now: float,
        *,
        source: UtteranceSource = UtteranceSource.BRAIN,
        interrupt: bool = False,
        interruptible: bool = True,
        language: str | None = None,
    ) -> int:
        """Open a reply whose text arrives in pieces (:meth:`reply_text`, then
        :meth:`reply_close`). It is queued like any utterance; once it is its turn and has some
        text, :class:`StartTTS` (``streaming=True``) starts its TTS, every later piece is a
        :class:`TTSText` and the close a :class:`TTSClose` (the text itself is kept once, in the
        utterance, where the shell's feed reads it: :meth:`Call.rendering`), so the first words
        are voiced while the rest is still being written. A reply closed without any text is
        dropped.

        Args:
            now: the time.
            source: who speaks (default the brain).
            interrupt: cut what plays first (a preemptible line, an interrupting reply).
            interruptible: ``False``: the caller's voice does not cut this reply.
            language: the BCP-47 tag it is spoken in (None: the session's, :attr:`language`).

        Returns:
            The utterance id.

        Raises:
            CallStateError: the call is not active.
        """
        prepared = self._speculating
        utt = self.add(
            "",
            source,
            now,
            interrupt=interrupt and not prepared,  # a speculative reply cuts nothing
            interruptible=interruptible,
            language=language,
        )
        utt.streaming = True
        utt.closed = False
        utt.prepared = prepared
        # a speculative reply answers the turn that is not over yet: claimed when confirmed
        utt.latency = None if prepared else self._ears.latency.claim(None)
        return utt.id

    # ------------------------------------------------------------------ speculative replies

    def speculate(self) -> None:
        """Replies opened from now on are speculative (the brain answers the words of a turn
        that may go on): their TTS starts and their audio is framed as usual, but nothing of
        them is sent to Twilio, written to the transcript, or counted as speaking until
        :meth:`confirm`; :meth:`retract` drops them unheard."""
        self._speculating = True

    def _prepared(self) -> list[Utterance]:
        utts = self._utts
        live = [*utts.playing, *([utts.current] if utts.current is not None else []), *utts.queue]
        return [u for u in live if u.prepared]

    def confirm(self, now: float) -> None:
        """The speculative turn was the caller's whole turn: its replies are heard, in order,
        as if queued at ``now`` (the stages they went through before it took none of the
        turn's time: that is what speculating saves)."""
        self._speculating = False
        for utt in self._prepared():
            utt.prepared = False
            utt.queued_at = max(utt.queued_at, now)
            if utt.tts_started_at is not None:
                utt.tts_started_at = max(utt.tts_started_at, now)
            if utt.first_audio_at is not None:
                utt.first_audio_at = max(utt.first_audio_at, now)
            if utt.latency is None:
                utt.latency = self._ears.latency.claim(now)
            if utt.tts_started_at is not None and utt.closed:
                self.said(utt, now)
        self.start_next(now)

    def retract(self, now: float) -> None:
        """The caller went on: the speculative replies are dropped unheard (the rendering
        one's TTS cancelled, their frames forgotten; never sent, said or reported heard)."""
        self._speculating = False
        utts = self._utts
        gone = self._prepared()
        if not gone:
            return
        ids = {u.id for u in gone}
        current = utts.current
        rendering = current is not None and current.id in ids
        if rendering:
            assert current is not None
            utts.current = None
            self._actions.append(CancelTTS(current.id))
            self._voice.cut()
        utts.playing = [u for u in utts.playing if u.id not in ids]
        for utt in [u for u in utts.queue if u.id in ids]:
            utts.queue.remove(utt)
        for utt in gone:
            utts.report(utt, UtteranceOutcome.DROPPED, "speculative reply retracted")
        self._pacer.discard(ids, rendering=rendering)
        self._call.replies.forget(ids)
        self.start_next(now)

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
        utt.heard.add_text(piece)
        lat = utt.latency
        if lat is not None and lat.first_token_at is None and piece.strip():
            lat.first_token_at = now
        if self._utts.current is utt:
            self._actions.append(TTSText(utt.id, piece))
        elif self._utts.current is None:
            self.start_next(now)  # it may have been waiting for its first words
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
        if self._utts.current is utt:
            self._close_text(utt, now)
        elif self._utts.current is None:
            self.start_next(now)
        return True

    def _open_reply(self, utterance_id: int) -> Utterance | None:
        if self._call.ended:
            return None
        return self._utts.open_reply(utterance_id)

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
        plays in turn like any line, with no TTS (no :class:`StartTTS`); ``label`` is its text
        (in the transcript from now on, and in :class:`LineInterrupted`).

        Raises:
            ValueError: no audio.
            CallStateError: the call is not active.
        """
        if not ulaw:
            raise ValueError("ulaw must not be empty")
        utt = self.add(label, source, now, interrupt=interrupt, interruptible=interruptible)
        utt.ulaw = bytes(ulaw)
        utt.latency = self._ears.latency.claim(now)
        self.said(utt, now)
        self.start_next(now)
        return utt.id

    # ------------------------------------------------------------------ in turn, and cut

    def start_next(self, now: float) -> None:
        """Start the next queued utterance(s) if none is rendering."""
        call = self._call
        utts = self._utts
        queue = utts.queue
        while utts.current is None and not call.ended and queue:
            utt = queue[0]
            if utt.streaming and not utt.text.strip():
                if not utt.closed:
                    return  # a streamed reply with no words yet: wait for them
                queue.popleft()  # closed without a word: nothing to say
                utts.report(utt, UtteranceOutcome.DROPPED, "empty reply")
                if utt.hangup_after:
                    call.hangup(now, "goodbye played")
                continue
            utt = utts.current = queue.popleft()
            utt.tts_started_at = now
            if utt.ulaw is not None:  # ready-made: it is rendered at once, the next one starts
                ulaw, utt.ulaw = utt.ulaw, None
                self._voice.ready(utt, ulaw, now)
                continue
            self._voice.renderer.begin(record=not utt.streaming)  # a streamed reply is never cached
            self._actions.append(StartTTS(utt.id, utt.text, utt.streaming, utt.language))
            if not utt.streaming:
                self.said(utt, now)
            elif utt.closed:
                self._close_text(utt, now)

    def _close_text(self, utt: Utterance, now: float) -> None:
        """The rendering streamed reply's text is whole: close its TTS; it joins the transcript."""
        self._actions.append(TTSClose(utt.id))
        self.said(utt, now)

    def said(self, utt: Utterance, now: float) -> None:
        """``utt`` began to be said: it joins the transcript (once; a speculative reply when
        it is confirmed)."""
        transcript = self._call.transcript
        if not utt.said and not utt.prepared and transcript is not None:
            utt.said = True
            transcript.hotline(utt.id, utt.text, now)

    def interrupt(self, now: float) -> float:
        """Cut everything that plays or waits: clear, forget marks and frames, cancel the TTS.

        Returns:
            Milliseconds of audio dropped (queued at Twilio by our estimate + unsent frames).
        """
        # What the caller heard of a cut line is for the brain: reported by a listening call.
        pacer = self._pacer
        cut = None
        if self._ears.turns is not None:
            cut = self._utts.being_heard(pacer.playhead, pacer.unsent(), now)
        dropped = pacer.cut(now, may_clear=not self._call.ended)
        if cut is not None:
            self._heard_report(cut, now)
        if self._utts.drop_all(UtteranceOutcome.INTERRUPTED):
            self._voice.cut()
        return dropped / BYTES_PER_MS

    def _heard_report(self, utt: Utterance, now: float) -> None:
        played = self._pacer.playhead.played_ms(utt.id, now) if utt.frames_sent else None
        heard_ms = played if played is not None else 0.0
        total = utt.ulaw_bytes / BYTES_PER_MS if utt is not self._utts.current else None
        heard_text = utt.heard.heard(heard_ms, total_ms=total)
        if utt.streaming and utt.tts_started_at is not None:
            self.said(utt, now)  # a streamed line cut before its close: what it had
        transcript = self._call.transcript
        if transcript is not None:
            transcript.heard(utt.id, heard_text, heard_ms, now)
        self._call.replies.cut(utt.id)
        self._actions.append(LineInterrupted(utt.id, heard_text, heard_ms, utt.text, utt.source))

    def barge_in(self, timestamp_ms: int, now: float) -> None:
        """The caller's voice cut what plays."""
        current = self._utts.now_playing(self._pacer.unsent())
        uid = current.id if current is not None else 0
        dropped_ms = self.interrupt(now)
        self.barge_ins += 1
        self._actions.append(BargeIn(uid, timestamp_ms, dropped_ms))
