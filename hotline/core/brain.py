"""The brain contract: what decides the hotline's replies, sans-I/O types only.

A *brain* hears the call (inputs) and answers with outputs; the session shell owns the
audio, the TTS and the Twilio socket and only moves these events around::

    session                                   brain
    -------                                   -----
    stream "start"   -> CallStarted   ->      await brain.start(ev, emit)
    final transcript -> CallerTurn    ->      await brain.handle(ev)
    DTMF key         -> CallerDigit   ->      await brain.handle(ev)
    barge-in         -> Interrupted   ->      await brain.handle(ev)
    caller went on   -> Retract       ->      await brain.handle(ev)
    hang-up / stop   -> CallEnding    ->      await brain.handle(ev); await brain.aclose()

                     <- SayText / PlayAudio / SendDigits / SetLanguage / EndCall / Fallback
                        (through ``await emit(output)``, from any task of the brain)

What the shell does with each output:

* :class:`SayText` -- append ``token`` *untrimmed* to the current reply and speak it
  (pieces may be sent to TTS as they come); ``last=True`` closes the reply (flush TTS).
  ``interruptible=False``: caller speech does not barge in on it. ``preemptible=True``: the
  next SayText/PlayAudio of a *new* reply may cut it off. ``lang`` overrides the TTS language.
* :class:`PlayAudio` -- fetch ``url`` (``hotline.server.play.fetch_ulaw``) and play it
  ``loop`` times (0 = 1000, Twilio's maximum); same barge-in flags.
* :class:`SendDigits` -- play the DTMF tones (``hotline.core.dtmf.dtmf_tones``).
* :class:`SetLanguage` -- switch TTS and/or speech-recognition language (None = unchanged).
* :class:`EndCall` -- let queued speech finish, then hang up; ``handoff_data`` goes to the
  call record (ConversationRelay passes it to the ``<Connect action>`` URL).
* :class:`Fallback` -- the brain failed this turn: speak the script's ``brain_error`` line;
  the call goes on and the next :class:`CallerTurn` is handled normally.

Ordering: outputs of one reply arrive in order; a brain never emits after ``aclose()``
returned. A brain must not raise from ``start``/``handle`` for a failure of its peer (the
LLM, the relay app): it emits :class:`Fallback` instead. ``emit`` itself may raise only if
the call is gone (the brain then stops).

Why ``emit`` is a callback and not a return value: the LLM and relay brains produce output
on their own schedule (tokens stream in, the app talks whenever it likes), so a
request/response ``handle() -> list`` would force the shell to poll. The sans-I/O brains
(:class:`hotline.core.script.ScriptBrain`) still return lists; the shell adapter
``hotline.server.brains.SansIOBrain`` turns them into emits.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Protocol

__all__ = [
    "Brain",
    "BrainInput",
    "BrainOutput",
    "CallEnding",
    "CallStarted",
    "CallerDigit",
    "CallerTurn",
    "Emit",
    "EndCall",
    "Fallback",
    "Interrupted",
    "PlayAudio",
    "Retract",
    "SayText",
    "SendDigits",
    "SetLanguage",
]


# ----------------------------------------------------------------------------- inputs


@dataclass(frozen=True, slots=True)
class CallStarted:
    """The media stream started (Twilio ``start``).

    Attributes:
        call_sid: Twilio ``CA...`` call SID.
        stream_sid: Twilio ``MZ...`` stream SID.
        to: the number called.
        from_masked: the caller's number as the shell chooses to reveal it (masked, or None
            when the brain must not see it). Never logged.
        custom_parameters: ``<Parameter>`` values from the TwiML.
        account_sid: the Twilio account, if known (ConversationRelay ``setup`` carries it).
        forwarded_from, caller_name, parent_call_sid, direction: what the voice webhook said
            (``ForwardedFrom``, ``CallerName``, ``ParentCallSid``, ``Direction``; "" if not).
        caller_history: a returning caller's earlier calls, newest first: ``{"date":
            "YYYY-MM-DD", "summary": ...}`` each (bounded; empty for a new or erased caller).
            Never logged.
    """

    call_sid: str
    stream_sid: str
    to: str = ""
    from_masked: str | None = None
    custom_parameters: Mapping[str, str] = field(default_factory=dict)
    account_sid: str = ""
    forwarded_from: str = ""
    caller_name: str = ""
    parent_call_sid: str = ""
    direction: str = "inbound"
    caller_history: tuple[Mapping[str, str], ...] = ()


@dataclass(frozen=True, slots=True)
class CallerTurn:
    """What the recogniser heard. ``final=False`` is a partial the brain may ignore.

    ``confidence`` (0..1): how sure the recogniser was of these words (the least sure of the
    turn's finals); None when it gave none (unknown)."""

    text: str
    lang: str = "en-US"
    final: bool = True
    confidence: float | None = None


@dataclass(frozen=True, slots=True)
class CallerDigit:
    """One DTMF key: ``0-9``, ``*``, ``#``, ``A-D``."""

    digit: str


@dataclass(frozen=True, slots=True)
class Interrupted:
    """The caller barged in; playback of the current reply was stopped.

    Attributes:
        utterance_text_heard: the part of the reply's text the caller actually heard.
        heard_ms: milliseconds of the reply's audio that were played.
    """

    utterance_text_heard: str
    heard_ms: int


@dataclass(frozen=True, slots=True)
class CallEnding:
    """The call is ending (caller hung up, stream stopped, or after an :class:`EndCall`)."""


@dataclass(frozen=True, slots=True)
class Retract:
    """The last :class:`CallerTurn` was speculative (the caller paused) and the caller went on:
    cancel its reply and forget the turn; its whole form comes as a new :class:`CallerTurn`.
    Nothing of that reply was heard (the shell held it). Only brains with ``speculates = True``
    are sent speculative turns."""


BrainInput = CallerTurn | CallerDigit | Interrupted | Retract | CallEnding


# ----------------------------------------------------------------------------- outputs


@dataclass(frozen=True, slots=True)
class SayText:
    """A streamed piece of the reply, to be forwarded untrimmed; ``last`` closes the reply."""

    token: str
    last: bool = False
    interruptible: bool = True
    preemptible: bool = False
    lang: str | None = None


@dataclass(frozen=True, slots=True)
class PlayAudio:
    """Play the audio at ``url`` ``loop`` times (0 means 1000, Twilio's maximum)."""

    url: str
    loop: int = 1
    interruptible: bool = True
    preemptible: bool = False


@dataclass(frozen=True, slots=True)
class SendDigits:
    """Play DTMF tones: ``0-9``, ``*``, ``#``, ``A-D``; ``w`` is a half-second pause."""

    digits: str


@dataclass(frozen=True, slots=True)
class SetLanguage:
    """Switch the TTS and/or the recognition language (None leaves it unchanged)."""

    tts_language: str | None = None
    transcription_language: str | None = None


@dataclass(frozen=True, slots=True)
class EndCall:
    """Hang up once queued speech has played."""

    reason: str
    handoff_data: str | None = None


@dataclass(frozen=True, slots=True)
class Fallback:
    """The brain failed this turn; the shell speaks the script's ``brain_error`` line.

    ``reason`` is for logs and metrics (never caller content)."""

    reason: str


BrainOutput = SayText | PlayAudio | SendDigits | SetLanguage | EndCall | Fallback

#: How a brain hands an output to the shell.
Emit = Callable[[BrainOutput], Awaitable[None]]


class Brain(Protocol):
    """An asynchronous brain, driven by the session shell (see the module docstring)."""

    async def start(self, ev: CallStarted, emit: Emit) -> None:
        """Begin the call. May emit (e.g. an LLM greeting); returns once the brain is ready.

        Never raises for a peer failure: a relay app that cannot be reached emits
        :class:`Fallback` and the brain carries on as a script-less fallback."""
        ...

    async def handle(self, ev: BrainInput) -> None:
        """Take one input. Returns quickly: long work (an LLM turn) runs in the brain's
        own task and emits as it goes. A new :class:`CallerTurn` or :class:`Interrupted`
        cancels any reply in progress."""
        ...

    async def aclose(self) -> None:
        """Stop every task and close every connection; idempotent. No emit after it."""
        ...
