"""How a Twilio call starts (shared/docs/protocols.md §1): the signed voice-webhook POST, the
TwiML it answers (``<Connect><Stream url>`` and its ``<Parameter>``s), the signature of the
WebSocket upgrade, and where to really connect."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Mapping
from typing import Any, Protocol
from urllib.parse import urlsplit, urlunsplit

from hotline.sim.errors import CallError


class WebhookCall(Protocol):
    """What the webhook POST reads of a call's options (:class:`hotline.sim.options.CallOptions`)."""

    @property
    def url(self) -> str: ...
    @property
    def voice_path(self) -> str: ...
    @property
    def account_sid(self) -> str: ...
    @property
    def call_sid(self) -> str: ...
    @property
    def to_number(self) -> str: ...
    @property
    def from_number(self) -> str: ...
    @property
    def extra_form(self) -> Mapping[str, str]: ...
    @property
    def auth_token(self) -> str | None: ...
    @property
    def bad_signature(self) -> bool: ...
    @property
    def http_timeout(self) -> float: ...


class WebhookReport(Protocol):
    webhook_status: int | None


__all__ = [
    "connect_action",
    "connect_url",
    "is_hangup",
    "parse_twiml",
    "post_action",
    "post_webhook",
    "sign",
    "ssl_context",
]


def parse_twiml(text: str) -> tuple[str, dict[str, str]]:
    """The ``<Connect><Stream url>`` and its ``<Parameter>``s from a TwiML document.

    Raises:
        CallError: not TwiML, or no bidirectional stream in it.
    """
    try:
        root = ET.fromstring(text)
    except ET.ParseError as exc:
        raise CallError(f"webhook answer is not XML: {exc}") from None
    if root.tag != "Response":
        raise CallError(f"TwiML root is <{root.tag}>, not <Response>")
    stream = root.find("./Connect/Stream")
    if stream is None:
        raise CallError("TwiML has no <Connect><Stream> (a bidirectional stream)")
    url = stream.get("url")
    if not url:
        raise CallError("<Stream> has no url")
    parts = urlsplit(url)
    if parts.scheme not in ("wss", "ws"):
        raise CallError(f"<Stream url> must be wss://, got {url!r}")
    if parts.query:
        raise CallError(f"<Stream url> must not carry a query string (Twilio error 31920): {url!r}")
    params: dict[str, str] = {}
    for p in stream.findall("./Parameter"):
        name, value = p.get("name"), p.get("value")
        if name is None or value is None:
            raise CallError("<Parameter> without name or value")
        params[name] = value
    return url, params


def connect_action(text: str) -> str | None:
    """The ``<Connect action>`` URL of a TwiML document (None without one, or not TwiML)."""
    try:
        root = ET.fromstring(text)
    except ET.ParseError:
        return None
    connect = root.find("./Connect")
    return connect.get("action") if connect is not None else None


def is_hangup(text: str) -> bool:
    """True if the TwiML document is (or ends the call with) ``<Hangup/>``."""
    try:
        root = ET.fromstring(text)
    except ET.ParseError:
        return False
    return root.tag == "Response" and root.find("./Hangup") is not None


def sign(token: str, url: str, params: dict[str, str]) -> str:
    from twilio.request_validator import RequestValidator

    return str(RequestValidator(token).compute_signature(url, params))


def connect_url(stream_url: str, base_url: str) -> str:
    """Where to really connect: a wss:// TwiML url is reached over ws:// when the server is plain HTTP."""
    parts = urlsplit(stream_url)
    if parts.scheme == "wss" and urlsplit(base_url).scheme == "http":
        return urlunsplit(("ws", *parts[1:]))
    return stream_url


_SSL_CONTEXT: Any = None


def ssl_context() -> Any:
    """One TLS context per process: building one loads the CA store (~30 ms of CPU), which
    would dominate the cost of a simulated call under load."""
    global _SSL_CONTEXT
    if _SSL_CONTEXT is None:
        import ssl

        _SSL_CONTEXT = ssl.create_default_context()
    return _SSL_CONTEXT


def _base_form(opts: WebhookCall, status: str) -> dict[str, str]:
    return {
        "AccountSid": opts.account_sid,
        "ApiVersion": "2010-04-01",
        "CallSid": opts.call_sid,
        "CallStatus": status,
        "Called": opts.to_number,
        "Caller": opts.from_number,
        "Direction": "inbound",
        "From": opts.from_number,
        "To": opts.to_number,
        "CallerCountry": "US",
        "ToCountry": "US",
    }


async def post_action(opts: WebhookCall, action_url: str) -> tuple[int | None, str]:
    """What Twilio does when a ``<Connect><Stream>`` ends without the call being hung up:
    a signed POST of the standard voice parameters to the ``<Connect action>`` URL.

    Returns:
        (HTTP status, body); status None if the URL could not be reached.
    """
    import httpx

    url = action_url
    if urlsplit(url).scheme == "https" and urlsplit(opts.url).scheme == "http":
        url = urlunsplit(("http", *urlsplit(url)[1:]))  # a plain-HTTP test server
    form = _base_form(opts, "in-progress")
    headers = {"User-Agent": "TwilioProxy/1.1"}
    if opts.auth_token:
        headers["X-Twilio-Signature"] = sign(opts.auth_token, action_url, form)
    async with httpx.AsyncClient(timeout=opts.http_timeout, verify=ssl_context()) as client:
        try:
            resp = await client.post(url, data=form, headers=headers)
        except httpx.HTTPError:
            return None, ""
    return resp.status_code, resp.text


async def post_webhook(opts: WebhookCall, report: WebhookReport) -> str:
    """The signed voice-webhook POST Twilio makes when the call comes in; returns the TwiML.

    Raises:
        CallError: the POST failed or was not answered with HTTP 200.
    """
    import httpx

    url = opts.url.rstrip("/") + opts.voice_path
    form = _base_form(opts, "ringing")
    form.update(opts.extra_form)
    headers = {"User-Agent": "TwilioProxy/1.1"}
    if opts.auth_token:
        token = opts.auth_token + "x" if opts.bad_signature else opts.auth_token
        headers["X-Twilio-Signature"] = sign(token, url, form)
    async with httpx.AsyncClient(timeout=opts.http_timeout, verify=ssl_context()) as client:
        try:
            resp = await client.post(url, data=form, headers=headers)
        except httpx.HTTPError as exc:
            raise CallError(f"webhook POST {url} failed: {type(exc).__name__}: {exc}") from None
    report.webhook_status = resp.status_code
    if resp.status_code != 200:
        raise CallError(f"webhook POST {url} answered HTTP {resp.status_code}")
    return resp.text
