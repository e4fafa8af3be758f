"""Handing a caller to a person: what the ``<Connect action>`` answers when the brain ended the
call for one (a relay app's ``end`` with ``handoffData``, the script's ``handoff`` intent, the
LLM's ``transfer_to_human`` tool).

The stream's replica records the :class:`~hotline.server.registry.Handoff` before it closes the
stream (in Redis when clustered), so Twilio's action request may land on any replica. There:

* ``HOTLINE_HANDOFF_URL`` set: hotline POSTs it what ConversationRelay's action URL receives,
  the call's parameters (the action request's form) plus ``HandoffData``, ``SessionId``,
  ``SessionStatus`` (``ended``) and ``SessionDuration``, form-encoded and signed with
  ``X-Twilio-Signature`` as Twilio signs its requests (the auth token, the URL, the sorted
  parameters), and answers Twilio with that URL's TwiML, unchanged;
* else ``HOTLINE_HANDOFF_NUMBER`` set: ``<Dial>`` that number;
* neither: ``<Hangup/>`` (the stream already said the script's ``no_handoff`` line, which
  promises nobody; start-up says once that no handoff is configured).

A handoff URL that fails (no answer within :data:`TIMEOUT_S`, an HTTP error, an answer that is
not TwiML) gets one log line; the caller hears the script's ``handoff_failed`` apology
(``<Say>``), then ``<Dial>`` the number if one is set, else the call ends.
"""

from __future__ import annotations

import logging
import xml.etree.ElementTree as ET
from collections.abc import Mapping

import httpx
from twilio.request_validator import RequestValidator
from twilio.twiml.voice_response import VoiceResponse

from hotline.core.script import CallScript
from hotline.server.registry import Handoff

__all__ = ["TIMEOUT_S", "HandoffDesk"]

log = logging.getLogger("hotline.http")

#: Seconds the handoff URL has to answer (Twilio waits 15 s for the action's answer).
TIMEOUT_S = 5.0
#: Largest TwiML accepted from the handoff URL.
MAX_TWIML_BYTES = 64 * 1024


class HandoffFailed(Exception):
    """The handoff URL gave no usable TwiML (the message says how, never the body)."""


class HandoffDesk:
    """Where a call ended for a person goes (see the module docstring).

    Args:
        url: ``HOTLINE_HANDOFF_URL`` (None: unset).
        number: ``HOTLINE_HANDOFF_NUMBER`` (None: unset).
        auth_token: signs the POST to ``url`` (None: unsigned, insecure-dev only).
        script: its ``handoff_failed`` line.
        timeout: seconds for the URL's answer.
    """

    def __init__(
        self,
        url: str | None,
        number: str | None,
        auth_token: str | None,
        script: CallScript,
        *,
        timeout: float = TIMEOUT_S,
    ) -> None:
        self.url = url
        self.number = number
        self.auth_token = auth_token
        self.script = script
        self.timeout = timeout

    @property
    def configured(self) -> bool:
        """A person can be reached (a URL or a number)."""
        return bool(self.url or self.number)

    def describe(self) -> str:
        """One start-up line (never the URL's query, which may hold a token)."""
        if self.url:
            base = self.url.split("?", 1)[0]
            then = f", then {self.number} if it fails" if self.number else ""
            return f"handoff to a person: the TwiML of {base}{then}"
        if self.number:
            return f"handoff to a person: <Dial> {self.number}"
        return (
            "handoff to a person: none configured (HOTLINE_HANDOFF_URL, HOTLINE_HANDOFF_NUMBER); "
            "a caller who asks for one hears the script's no_handoff line and the call ends"
        )

    async def twiml(self, form: Mapping[str, str], handoff: Handoff, label: str) -> str:
        """The TwiML that answers Twilio's action request for a call ended for a person.

        Args:
            form: the action request's parameters (first value of each).
            handoff: what the brain ended the call with.
            label: the call, for the log line.
        """
        if self.url:
            try:
                return await self._ask(form, handoff)
            except HandoffFailed as exc:
                log.warning(
                    "call %s: the handoff URL failed (%s): the caller hears an apology, then %s",
                    label,
                    exc,
                    "the handoff number" if self.number else "the call ends",
                )
            response = VoiceResponse()
            response.say(self.script.handoff_failed)
            self._dial_or_hang_up(response)
            return str(response)
        response = VoiceResponse()
        self._dial_or_hang_up(response)
        return str(response)

    def _dial_or_hang_up(self, response: VoiceResponse) -> None:
        if self.number:
            response.dial(self.number)
        else:
            response.hangup()

    async def _ask(self, form: Mapping[str, str], handoff: Handoff) -> str:
        assert self.url is not None
        params = dict(form)
        params["HandoffData"] = handoff.data
        params["SessionStatus"] = "ended"
        params["SessionDuration"] = str(handoff.seconds)
        if handoff.session_id:
            params["SessionId"] = handoff.session_id
        headers = {"User-Agent": "TwilioProxy/1.1"}
        if self.auth_token:
            signature = RequestValidator(self.auth_token).compute_signature(self.url, params)
            headers["X-Twilio-Signature"] = str(signature)
        try:
            async with httpx.AsyncClient(timeout=self.timeout) as client:
                r = await client.post(self.url, data=params, headers=headers)
        except httpx.TimeoutException:
            raise HandoffFailed(f"no answer within {self.timeout:g} s") from None
        except httpx.HTTPError as exc:
            raise HandoffFailed(type(exc).__name__) from None
        if not 200 <= r.status_code < 300:
            raise HandoffFailed(f"HTTP {r.status_code}")
        body = r.content
        if len(body) > MAX_TWIML_BYTES:
            raise HandoffFailed(f"an answer over {MAX_TWIML_BYTES} bytes")
        try:
            root = ET.fromstring(body)
        except ET.ParseError:
            raise HandoffFailed("not TwiML: not XML") from None
        if root.tag != "Response":
            raise HandoffFailed(f"not TwiML: <{root.tag[:40]}> is not <Response>")
        return body.decode("utf-8", "replace")
