"""A call's utterances, from queued to played, and the brain's streamed reply. Sans-I/O.

:class:`Utterances` keeps the lines of one :class:`~hotline.core.call.Call`: waiting for their
turn (``queue``), rendering (``current``: its TTS runs, or its ready-made audio is being framed)
and playing (rendered, end mark not echoed yet). Each is reported exactly once
(:class:`~hotline.core.actions.UtteranceEnded`). An :class:`Utterance`'s text is kept once, in its
:class:`~hotline.core.heard.HeardText` (a streamed reply's grows there).

:class:`Replies` is what the brain is saying: the streamed reply open now, whether it was cut (its
remaining pieces are dropped until the brain's ``last``) and whether the next reply may cut the
last one (``preemptible``)::

    call.replies.say(token, now, last=False)   # SayText pieces -> one streamed reply
    call.replies.play(ulaw, now, label="[audio]")
    call.replies.close(now)                    # something else comes: the reply is complete
"""

from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING, Protocol

from hotline.core.actions import (
    Action,
    CancelTTS,
    UtteranceEnded,
    UtteranceOutcome,
    UtteranceSource,
)
from hotline.core.heard import HeardText

if TYPE_CHECKING:
    from hotline.core.latency import TurnTimes
    from hotline.core.playhead import Playhead

__all__ = ["Replies", "Utterance", "Utterances"]


class Utterance:
    """One line: its text, who asked, where it is, and its timestamps."""

    __slots__ = (
        "closed",
        "first_audio_at",
        "frames_sent",
        "hangup_after",
        "heard",
        "id",
        "interruptible",
        "language",
        "latency",
        "prepared",
        "queued_at",
        "reported",
        "said",
        "source",
        "streaming",
        "tts_started_at",
        "ulaw",
        "ulaw_bytes",
    )

    def __init__(
        self, uid: int, text: str, source: UtteranceSource, hangup_after: bool, now: float
    ) -> None:
        self.id = uid
        self.source = source
        self.hangup_after = hangup_after
        self.queued_at = now
        self.tts_started_at: float | None = None
        self.first_audio_at: float | None = None
        self.frames_sent = 0
        self.reported = False
        self.said = False  # in the transcript
        # A streamed reply (Lines.reply_open) is ``streaming``; ``closed`` once its text is whole.
        self.streaming = False
        self.closed = True
        self.interruptible = True
        #: The BCP-47 tag its voice speaks (None: the call's own voice).
        self.language: str | None = None
        self.heard = HeardText(text)
        self.ulaw_bytes = 0  # µ-law produced for it so far (its audio timeline)
        self.ulaw: bytes | None = None  # ready-made audio (play_ulaw): no TTS at all
        self.latency: TurnTimes | None = None
        #: A speculative reply (:meth:`hotline.core.lines.Lines.speculate`): its TTS may run
        #: and its audio be framed, but nothing of it is sent, said or heard until confirmed.
        self.prepared = False

    @property
    def text(self) -> str:
        return self.heard.text


class Utterances:
    """The call's utterances (see the module docstring); reports go to ``actions``."""

    __slots__ = ("_actions", "_next_id", "current", "language", "playing", "queue", "total")

    def __init__(self, actions: list[Action]) -> None:
        self._actions = actions
        #: The voice's language for new utterances (a relay app's latest ``language``
        #: message's ``ttsLanguage``); None: the call's own voice.
        self.language: str | None = None
        self._next_id = 1
        self.total = 0
        self.queue: deque[Utterance] = deque()  # waiting for their turn
        self.current: Utterance | None = None  # rendering (its TTS runs)
        self.playing: list[Utterance] = []  # rendered, end mark not echoed yet

    def add(
        self,
        text: str,
        source: UtteranceSource,
        now: float,
        *,
        hangup_after: bool = False,
        interruptible: bool = True,
        language: str | None = None,
    ) -> Utterance:
        """A new utterance, queued last, in ``language`` (None: :attr:`language`, the
        session's)."""
        utt = Utterance(self._next_id, text, source, hangup_after, now)
        utt.interruptible = interruptible
        utt.language = language or self.language
        self._next_id += 1
        self.total += 1
        self.queue.append(utt)
        return utt

    def report(self, utt: Utterance, outcome: UtteranceOutcome, detail: str = "") -> None:
        if not utt.reported:
            utt.reported = True
            self._actions.append(UtteranceEnded(utt.id, utt.source, outcome, detail))

    def now_playing(self, unsent: Utterance | None, *, queued: bool = False) -> Utterance | None:
        """What the caller hears (or is about to): the rendering line, else the first one still
        playing, else ``unsent`` (the first with frames not sent yet), else (``queued``) the
        next in the queue."""
        utt = self.current or (self.playing[0] if self.playing else None) or unsent
        if utt is None and queued and self.queue:
            utt = self.queue[0]
        return None if utt is not None and utt.prepared else utt

    def being_heard(self, head: Playhead, unsent: Utterance | None, now: float) -> Utterance | None:
        """The utterance the caller is hearing (or about to hear) at ``now``, if any: the first
        one sent but not played to its end, else the rendering one, else ``unsent``."""
        for utt in self.playing:
            if utt.frames_sent:
                full = head.played_ms(utt.id, now + 1e6)
                played = head.played_ms(utt.id, now)
                if full is not None and played is not None and played < full:
                    return utt
        last = self.current or unsent
        return None if last is not None and last.prepared else last

    def audible(self) -> bool:
        """Whether a line renders or waits that is not a speculative reply."""
        current = self.current
        if current is not None and not current.prepared:
            return True
        return any(not u.prepared for u in self.queue)

    def last(self) -> Utterance | None:
        """The utterance that will end last."""
        if self.queue:
            return self.queue[-1]
        return self.current or (self.playing[-1] if self.playing else None)

    def open_reply(self, utterance_id: int) -> Utterance | None:
        """Streamed reply ``utterance_id`` if it still takes text (not closed, not gone)."""
        utt = self.current
        if utt is None or utt.id != utterance_id:
            utt = next((u for u in self.queue if u.id == utterance_id), None)
        if utt is None or not utt.streaming or utt.closed:
            return None
        return utt

    def drop_all(self, outcome: UtteranceOutcome) -> bool:
        """Every utterance ends: the playing and rendering ones with ``outcome`` (the rendering
        one's TTS cancelled), the queued ones dropped. Returns whether a TTS was cancelled."""
        for utt in self.playing:
            self.report(utt, outcome)
        self.playing.clear()
        current, self.current = self.current, None
        if current is not None:
            self._actions.append(CancelTTS(current.id))
            self.report(current, outcome)
        for utt in self.queue:
            self.report(utt, UtteranceOutcome.DROPPED)
        self.queue.clear()
        return current is not None


class _Voice(Protocol):
    """What :class:`Replies` needs from the call's :class:`~hotline.core.lines.Lines`."""

    @property
    def language(self) -> str | None: ...

    def reply_open(
        self, now: float, *, interrupt: bool, interruptible: bool, language: str | None
    ) -> int: ...

    def reply_text(self, utterance_id: int, piece: str, now: float) -> bool: ...

    def reply_close(self, utterance_id: int, now: float) -> bool: ...

    def play_ulaw(
        self, ulaw: bytes, now: float, *, label: str, interrupt: bool, interruptible: bool
    ) -> int: ...


class Replies:
    """What the brain says into the call, through its ``lines`` (see the module docstring)."""

    __slots__ = ("_lines", "dead", "open", "open_language", "preemptible")

    def __init__(self, lines: _Voice) -> None:
        self._lines = lines
        self.open: int | None = None  # the open streamed reply
        self.open_language: str | None = None  # the language it is spoken in
        self.dead = False  # the open reply was cut: drop its pieces until ``last``
        self.preemptible = False  # the last reply may be cut by the next one

    def say(
        self,
        token: str,
        now: float,
        *,
        last: bool,
        interruptible: bool = True,
        preemptible: bool = False,
        lang: str | None = None,
    ) -> None:
        """One piece of the brain's reply (``last``: the reply is complete after it).

        ``lang`` (a ConversationRelay ``text`` token's) overrides the session's TTS language
        for this token (ConversationRelay's precedence: ``language`` < ``ttsLanguage`` < the
        latest ``language`` message < a token's ``lang``): a reply opened by it is spoken in
        it, and a token whose ``lang`` differs from the open reply's language ends that reply
        (it plays out) and opens the next one in its own language. A token without ``lang``
        goes on in the open reply's language.

        Raises:
            CallStateError: a new reply, and the call is not active.
        """
        if self.dead:
            if last:
                self.dead = False
            return
        lines = self._lines
        uid = self.open
        interrupt = self.preemptible
        if uid is not None and lang is not None and token and lang != self.open_language:
            lines.reply_close(uid, now)  # what was said so far plays out in its language
            uid = self.open = None
            interrupt = False  # the same reply goes on: it never cuts its own first part
        if uid is None:
            if not token and last:
                return  # an empty, closed reply
            uid = self.open = lines.reply_open(
                now, interrupt=interrupt, interruptible=interruptible, language=lang
            )
            self.open_language = lang or lines.language
            self.preemptible = preemptible
        if token and not lines.reply_text(uid, token, now):
            self.open = None  # cut meanwhile
            self.dead = not last
            return
        if last:
            lines.reply_close(uid, now)
            self.open = None

    def play(
        self,
        ulaw: bytes,
        now: float,
        *,
        label: str = "[audio]",
        interruptible: bool = True,
        preemptible: bool = False,
    ) -> int:
        """Ready-made audio from the brain, cutting the last reply if that one was preemptible.

        Raises:
            ValueError: no audio.
            CallStateError: the call is not active.
        """
        uid = self._lines.play_ulaw(
            ulaw, now, label=label, interrupt=self.preemptible, interruptible=interruptible
        )
        self.preemptible = preemptible
        return uid

    def close(self, now: float) -> None:
        """Something else follows: the open reply (if any) is complete."""
        uid, self.open = self.open, None
        self.dead = False
        if uid is not None:
            self._lines.reply_close(uid, now)

    def forget(self, utterance_ids: set[int]) -> None:
        """Those utterances were dropped unheard (retracted speculative replies): if the open
        reply is one, the brain's next piece opens a new one."""
        if self.open is not None and self.open in utterance_ids:
            self.open = None
            self.dead = False

    def cut(self, utterance_id: int) -> None:
        """Utterance ``utterance_id`` was cut while heard: if it is the open reply, the rest of
        it is unwanted."""
        if self.open is not None and utterance_id == self.open:
            self.dead = True
            self.open = None
