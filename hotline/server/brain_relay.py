"""The relay brain: a ConversationRelay app (``HOTLINE_RELAY_URL``) answers the call.

At :meth:`RelayBrain.start` hotline dials the app's WebSocket (``ws://`` or ``wss://``) the
way Twilio does: the upgrade request carries ``X-Twilio-Signature`` (:func:`relay_signature`),
so an app's existing check passes. Twilio's own agent SDK (twilio-agent-connect) validates a
ConversationRelay upgrade with ``RequestValidator(token).validate(url, params, signature)``
where ``url`` is scheme, host and path *without* the query and ``params`` are the query's
parameters (``parse_qs``, the first value of each, blank values dropped); hotline signs the
same way, so a tenant or token in ``HOTLINE_RELAY_URL``'s query does not break the check.
A refused handshake is logged with its HTTP status (403 reads as a wrong auth token, not an
outage). Then ``setup``
is sent, and the call's events become ``prompt`` / ``dtmf`` / ``interrupt`` messages
(:mod:`hotline.core.relay`). The app's ``text`` / ``play`` / ``sendDigits`` / ``language``
/ ``end`` come back as brain outputs through ``emit``.

The script's ``[relay]`` table (:class:`hotline.core.script.RelaySettings`) is the session's
``<ConversationRelay>``: ``prompt.lang`` is its transcription language (then the latest
``language`` message's), ``dtmf`` goes to the app only with ``dtmfDetection``, unfinalised
speech goes as ``prompt`` with ``last: false`` only with ``partialPrompts``, and a ``text``
without ``interruptible`` is cut by the caller's voice as ``interruptible`` says. A ``prompt``
is sent for a confirmed turn only (a final :class:`CallerTurn`), never for a guess.

Failure is never a dead call: if the app cannot be reached, or its socket drops before it
sent ``end``, the brain emits ``Fallback("relay_connect" | "relay_gone")`` once and answers
the rest of the call from the script (:class:`hotline.core.script_brain.ScriptBrain`).
Invalid app messages get an ``error`` message back and are dropped; ten in a row close the
socket with 1007 (then: ``Fallback`` and the script, as above).
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from urllib.parse import parse_qs, urlsplit, urlunsplit

from twilio.request_validator import RequestValidator
from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed

from hotline.core.brain import (
    BrainInput,
    CallEnding,
    CallerDigit,
    CallerTurn,
    CallStarted,
    Emit,
    EndCall,
    Fallback,
    Interrupted,
    Retract,
    SetLanguage,
)
from hotline.core.relay import RelaySession
from hotline.core.script import CallScript
from hotline.core.script_brain import ScriptBrain
from hotline.errors import RelayProtocolError
from hotline.server.ws_client import WsError, WsOptions, close_ws, open_ws

__all__ = ["RelayBrain", "relay_signature"]

log = logging.getLogger("hotline.brain")


def relay_signature(url: str, auth_token: str) -> str:
    """The ``X-Twilio-Signature`` of a ConversationRelay upgrade to ``url``: HMAC-SHA1 of the
    URL without its query (an empty path is ``/``, the request target sent), followed by the
    query's parameters sorted by name, as ``RequestValidator.compute_signature`` computes it
    (see the module docstring for why)."""
    parts = urlsplit(url)
    base = urlunsplit((parts.scheme, parts.netloc, parts.path or "/", "", ""))
    params = {name: values[0] for name, values in parse_qs(parts.query).items()}
    return str(RequestValidator(auth_token).compute_signature(base, params))


class RelayBrain:
    """A :class:`hotline.core.brain.Brain` that relays the call to a ConversationRelay app.

    Args:
        url: the app's ``ws://`` / ``wss://`` URL (``HOTLINE_RELAY_URL``).
        script: for the fallback after the app is gone.
        auth_token: the Twilio auth token to sign the handshake with (None: no signature).
        caller: the ``from`` the app sees in ``setup`` (the shell decides masking).
        open_timeout: seconds to connect and upgrade.
        handoff: a person can take a handed-off call (for the script after a fallback).
    """

    def __init__(
        self,
        url: str,
        script: CallScript,
        *,
        auth_token: str | None,
        caller: str = "",
        open_timeout: float = 5.0,
        handoff: bool = False,
    ) -> None:
        if not url.startswith(("ws://", "wss://")):
            raise ValueError("the relay URL must start with ws:// or wss://")
        self.url = url
        self.auth_token = auth_token
        self.caller = caller
        self.open_timeout = open_timeout
        self.settings = script.relay
        self.relay = RelaySession(interruptible=self.settings.interruptible.by_speech)
        #: ``prompt.lang``: the transcription language, as ``language`` messages change it.
        self.lang = self.settings.transcription_language
        self.session_id = "VX" + secrets.token_hex(16)
        self._script = ScriptBrain(script, handoff=handoff)
        self._ws: ClientConnection | None = None
        self._reader: asyncio.Task[None] | None = None
        self._emit: Emit | None = None
        self._send_lock = asyncio.Lock()
        self._gone = False  # the app is unusable: the script answers
        self._closing = False
        #: Why the app went away (None while it is up), for logs and metrics.
        self.failure: str | None = None

    async def start(self, ev: CallStarted, emit: Emit) -> None:
        self._emit = emit
        headers: dict[str, str] = {}
        if self.auth_token:
            headers["X-Twilio-Signature"] = relay_signature(self.url, self.auth_token)
        # The relay's use of the shared client policy (hotline.server.ws_client), connected
        # once: pings (an app may sit silent between prompts), permessage-deflate offered as
        # always (an app that does not want it declines it), Twilio's user agent.
        options = WsOptions(
            open_timeout=self.open_timeout,
            close_timeout=2.0,
            ping_interval=20.0,
            max_size=1 << 20,
            compression="deflate",
            user_agent="TwilioProxy/1.1",
        )
        try:
            self._ws = await open_ws(self.url, options, headers)
        except WsError as err:
            status = err.failure.status
            if status is not None:  # it answered: not an outage (401/403: the auth token?)
                log.warning(
                    "relay app refused the handshake: HTTP %d%s",
                    status,
                    " (does it check X-Twilio-Signature with another auth token?)"
                    if status in (401, 403)
                    else "",
                )
            else:
                log.warning("relay app unreachable: %s", type(err.failure.exc).__name__)
            await self._give_up("relay_connect")
            return
        self.relay.send_setup(ev, session_id=self.session_id, caller=self.caller)
        await self._flush()
        self._reader = asyncio.create_task(self._read(), name="relay-reader")

    async def handle(self, ev: BrainInput) -> None:
        if self._emit is None or self._closing:
            return
        if self._gone:
            for out in self._script.respond(ev):
                await self._emit(out)
            return
        if isinstance(ev, CallerTurn):
            if not ev.text.strip():
                return
            if ev.final:
                self.relay.send_prompt(ev.text, self.lang, last=True)
            elif self.settings.partial_prompts:
                self.relay.send_prompt(ev.text, self.lang, last=False)
            else:
                return
        elif isinstance(ev, CallerDigit):
            if not self.settings.dtmf_detection:
                return  # as Twilio: no dtmfDetection, no dtmf messages
            self.relay.send_dtmf(ev.digit)
        elif isinstance(ev, Interrupted):
            self.relay.send_interrupt(ev.utterance_text_heard, ev.heard_ms)
        elif isinstance(ev, CallEnding):
            await self.aclose()
            return
        elif isinstance(ev, Retract):
            return  # never sent: the relay app gets prompt only for a confirmed turn
        else:  # pragma: no cover - exhaustive
            raise TypeError(f"not a brain input: {type(ev).__name__}")
        await self._flush()

    async def aclose(self) -> None:
        self._closing = True
        ws, self._ws = self._ws, None
        if ws is not None:
            await close_ws(ws)
        reader, self._reader = self._reader, None
        if reader is not None and reader is not asyncio.current_task():
            reader.cancel()
            await asyncio.gather(reader, return_exceptions=True)

    async def _flush(self) -> None:
        ws = self._ws
        frames = self.relay.data_to_send()
        if ws is None:
            return
        try:
            async with self._send_lock:
                for frame in frames:
                    await ws.send(frame)
        except (ConnectionClosed, OSError):
            pass  # the reader sees the close and falls back

    async def _give_up(self, reason: str) -> None:
        if self._gone or self._closing:
            return
        self._gone = True
        self.failure = reason
        if self._emit is not None:
            await self._emit(Fallback(reason))

    async def _read(self) -> None:
        assert self._ws is not None and self._emit is not None
        ws, emit = self._ws, self._emit
        try:
            async for frame in ws:
                try:
                    self.relay.receive_text(frame)
                except RelayProtocolError as exc:
                    log.info("relay app sent an invalid message (%d chars): %s", len(frame), exc)
                await self._flush()
                ended = False
                for out in self.relay.events_received():
                    if isinstance(out, SetLanguage) and out.transcription_language:
                        self.lang = out.transcription_language
                    await emit(out)
                    ended = ended or isinstance(out, EndCall)
                if ended:
                    self._closing = True
                    await ws.close(1000)
                    return
                if self.relay.close_code is not None:
                    code, reason = self.relay.close_code
                    await ws.close(code, reason)
                    break
        except ConnectionClosed:
            pass
        except Exception as exc:  # a misbehaving app must not take the call down
            log.warning("relay reader failed: %s", type(exc).__name__)
        if not self._closing:
            await self._give_up("relay_gone")

    @property
    def connected(self) -> bool:
        """Whether the app's socket is up."""
        return self._ws is not None and not self._gone

    def __repr__(self) -> str:  # never the URL's query (it may hold a token)
        return f"RelayBrain(session={self.session_id}, gone={self._gone})"
