"""Twilio ConversationRelay's WebSocket message set, sans-I/O (hotline plays Twilio's side).

An app written for ConversationRelay connects nothing of its own: hotline dials the app's
WebSocket, sends what Twilio would send, and turns the app's messages into brain outputs::

    relay = RelaySession()
    relay.send_setup(call, session_id="VX...")          # once, first
    relay.send_prompt("when do you tour", "en-US")      # final transcript (last=True)
    relay.send_dtmf("1"); relay.send_interrupt("Hello, wor", 460)
    for frame in relay.data_to_send(): ...              # JSON text frames to the app
    relay.receive_text(frame)                           # each frame from the app
    for out in relay.events_received(): ...             # SayText | PlayAudio | SendDigits |
                                                        # SetLanguage | EndCall
    relay.close_code                                    # (1007, reason) -> close the socket

Messages to the app (Twilio -> app): ``setup`` (sessionId, accountSid, parentCallSid,
callSid, from, to, forwardedFrom, callType, callerName, direction, callStatus,
customParameters), ``prompt`` (voicePrompt, lang, last), ``dtmf`` (digit), ``interrupt``
(utteranceUntilInterrupt, durationUntilInterruptMs), ``error`` (description).

Messages from the app: ``text`` (``token`` string required, may be ""; ``last``, ``lang``,
``interruptible``, ``preemptible``), ``play`` (``source`` required; ``loop`` int >= 0 (0 is
1000 plays), ``preemptible``, ``interruptible``), ``sendDigits`` (``digits`` of ``0-9 w # *``),
``language`` (``ttsLanguage`` and/or ``transcriptionLanguage``), ``end`` (``handoffData``
string, optional). Unknown extra keys are ignored (Twilio's newer messages add fields).

An invalid message is dropped: :meth:`RelaySession.receive_text` queues an ``error`` message
for the app ("Invalid message received: ...") and raises :class:`RelayProtocolError`. After
:data:`MAX_MALFORMED` invalid messages in a row, :attr:`RelaySession.close_code` becomes
``(1007, "Too many consecutive malformed messages")`` as Twilio does; a valid message resets
the count. After ``end`` the session is finished and further app messages are ignored.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from hotline.core._wire import describe, load_object, raiser
from hotline.core.brain import (
    BrainOutput,
    CallStarted,
    EndCall,
    PlayAudio,
    SayText,
    SendDigits,
    SetLanguage,
)
from hotline.errors import RelayProtocolError

__all__ = ["MAX_MALFORMED", "RelaySession", "parse_app_message"]

#: Consecutive invalid app messages before the socket is closed with 1007.
MAX_MALFORMED = 10
_MAX_TOKEN_CHARS = 10_000
_MAX_URL_CHARS = 4_000
_DIGITS = re.compile(r"^[0-9w#*]{1,256}$")
_LANG = re.compile(r"^[A-Za-z]{2,8}(-[A-Za-z0-9]{1,8})*$|^multi$")


_fail = raiser(RelayProtocolError)


def _opt_bool(msg: Mapping[str, Any], key: str, default: bool) -> bool:
    value = msg.get(key)
    if value is None:
        return default
    if not isinstance(value, bool):
        _fail(f"{key} must be a boolean, got {describe(value)}")
    return value


def _opt_lang(msg: Mapping[str, Any], key: str) -> str | None:
    value = msg.get(key)
    if value is None:
        return None
    if not isinstance(value, str) or not _LANG.match(value):
        _fail(f"{key} must be a BCP-47 language tag")
    return value


def parse_app_message(frame: object, *, interruptible: bool = True) -> BrainOutput:
    """One app -> Twilio message as a brain output.

    Args:
        frame: the text frame.
        interruptible: whether the caller's voice cuts a ``text``/``play`` that does not say
            (the session's ``interruptible``: speech or any).

    Raises:
        RelayProtocolError: not a JSON object, unknown ``type``, a missing or mistyped field.
    """
    msg = load_object(frame, RelayProtocolError)
    kind = msg.get("type")
    if kind == "text":
        token = msg.get("token")
        if not isinstance(token, str):
            _fail(f"text.token must be a string, got {describe(token)}")
        if len(token) > _MAX_TOKEN_CHARS:
            _fail(f"text.token longer than {_MAX_TOKEN_CHARS} characters")
        return SayText(
            token,
            last=_opt_bool(msg, "last", False),
            interruptible=_opt_bool(msg, "interruptible", interruptible),
            preemptible=_opt_bool(msg, "preemptible", False),
            lang=_opt_lang(msg, "lang"),
        )
    if kind == "play":
        source = msg.get("source")
        if not isinstance(source, str) or not source.startswith(("http://", "https://")):
            _fail("play.source must be an http(s) URL")
        if len(source) > _MAX_URL_CHARS:
            _fail("play.source too long")
        loop = msg.get("loop", 1)
        if isinstance(loop, bool) or not isinstance(loop, int) or not 0 <= loop <= 1000:
            _fail("play.loop must be an integer 0..1000")
        return PlayAudio(
            source,
            loop=loop,
            interruptible=_opt_bool(msg, "interruptible", interruptible),
            preemptible=_opt_bool(msg, "preemptible", False),
        )
    if kind == "sendDigits":
        digits = msg.get("digits")
        if not isinstance(digits, str) or not _DIGITS.match(digits):
            _fail("sendDigits.digits must be 1-256 of 0-9, w, #, *")
        return SendDigits(digits)
    if kind == "language":
        tts = _opt_lang(msg, "ttsLanguage")
        stt = _opt_lang(msg, "transcriptionLanguage")
        if tts is None and stt is None:
            _fail("language needs ttsLanguage or transcriptionLanguage")
        return SetLanguage(tts, stt)
    if kind == "end":
        data = msg.get("handoffData")
        if data is not None and not isinstance(data, str):
            _fail(f"end.handoffData must be a string, got {describe(data)}")
        return EndCall("relay_end", handoff_data=data)
    if isinstance(kind, str):
        _fail(f"unknown message type ({len(kind)} characters)")
    _fail(f"type must be a string, got {describe(kind)}")


class RelaySession:
    """Twilio's side of one ConversationRelay session (see the module docstring).

    Args:
        interruptible: whether the caller's voice cuts the app's ``text``/``play`` when the
            message does not say (``<ConversationRelay interruptible>`` speech or any).
    """

    def __init__(self, *, interruptible: bool = True) -> None:
        self.interruptible = interruptible
        self._out: list[str] = []
        self._events: list[BrainOutput] = []
        self.malformed_in_a_row = 0
        self.close_code: tuple[int, str] | None = None
        self.setup_sent = False
        self.ended = False

    def _queue(self, msg: Mapping[str, Any]) -> None:
        self._out.append(json.dumps(msg, separators=(",", ":")))

    def send_setup(
        self,
        call: CallStarted,
        *,
        session_id: str,
        caller: str = "",
        call_type: str = "PSTN",
        call_status: str = "IN-PROGRESS",
    ) -> None:
        """Queue ``setup`` (once, before anything else).

        Args:
            call: the call (``callSid``, ``to``, ``accountSid``, ``customParameters``,
                ``forwardedFrom``, ``callerName``, ``parentCallSid``, ``direction``: what the
                voice webhook said).
            session_id: ``VX`` + 32 hex digits.
            caller: the ``from`` number as the app may see it (the shell decides masking).
        """
        if self.setup_sent:
            raise RelayProtocolError("setup already sent")
        self.setup_sent = True
        self._queue(
            {
                "type": "setup",
                "sessionId": session_id,
                "accountSid": call.account_sid,
                "parentCallSid": call.parent_call_sid,
                "callSid": call.call_sid,
                "from": caller,
                "to": call.to,
                "forwardedFrom": call.forwarded_from,
                "callType": call_type,
                "callerName": call.caller_name,
                "direction": call.direction,
                "callStatus": call_status,
                "customParameters": _custom_parameters(call),
            }
        )

    def _check_open(self) -> None:
        if not self.setup_sent:
            raise RelayProtocolError("setup must be sent first")

    def send_prompt(self, text: str, lang: str = "en-US", last: bool = True) -> None:
        """Queue ``prompt``: the caller's transcribed speech."""
        self._check_open()
        self._queue({"type": "prompt", "voicePrompt": text, "lang": lang, "last": last})

    def send_dtmf(self, digit: str) -> None:
        """Queue ``dtmf``: one key the caller pressed."""
        self._check_open()
        self._queue({"type": "dtmf", "digit": digit})

    def send_interrupt(self, heard: str, heard_ms: int) -> None:
        """Queue ``interrupt``: the caller barged in after hearing ``heard`` (``heard_ms``)."""
        self._check_open()
        self._queue(
            {
                "type": "interrupt",
                "utteranceUntilInterrupt": heard,
                "durationUntilInterruptMs": int(heard_ms),
            }
        )

    def send_error(self, description: str) -> None:
        """Queue ``error``."""
        self._queue({"type": "error", "description": description})

    def data_to_send(self) -> list[str]:
        """The JSON text frames queued for the app (and forget them)."""
        out, self._out = self._out, []
        return out

    def receive_text(self, frame: object) -> None:
        """Take one frame from the app (see the module docstring for invalid ones).

        Raises:
            RelayProtocolError: the frame was invalid and dropped (an ``error`` is queued).
        """
        if self.ended or self.close_code is not None:
            return
        try:
            out = parse_app_message(frame, interruptible=self.interruptible)
        except RelayProtocolError as exc:
            self.malformed_in_a_row += 1
            self.send_error(f"Invalid message received: {exc}")
            if self.malformed_in_a_row >= MAX_MALFORMED:
                self.close_code = (1007, "Too many consecutive malformed messages")
            raise
        self.malformed_in_a_row = 0
        if isinstance(out, EndCall):
            self.ended = True
        self._events.append(out)

    def events_received(self) -> list[BrainOutput]:
        """The outputs parsed since the last call, in order."""
        out, self._events = self._events, []
        return out


def _custom_parameters(call: CallStarted) -> dict[str, str]:
    """The ``<Parameter>`` values, and for a returning caller ``callerHistory``: their earlier
    calls as JSON (``[{"date", "summary"}, ...]``, newest first)."""
    params = dict(call.custom_parameters)
    if call.caller_history:
        history = [dict(item) for item in call.caller_history]
        params["callerHistory"] = json.dumps(history, separators=(",", ":"), ensure_ascii=False)
    return params
