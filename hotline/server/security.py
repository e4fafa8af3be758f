"""Twilio request signatures, per-call stream tokens, admin bearer tokens, failure rate limits."""

from __future__ import annotations

import collections
import hmac
import logging
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

from starlette.requests import HTTPConnection
from twilio.request_validator import RequestValidator

from hotline.server import logs

__all__ = ["AdminAuth", "CallTokens", "FailureLimiter", "SignatureChecker", "TokenEntry"]

log = logging.getLogger("hotline.http")


class SignatureChecker:
    """``X-Twilio-Signature`` checks for the webhooks and the media-stream upgrade.

    URLs are built from the configured public URL (never from proxy-rewritten request
    attributes); only in insecure-dev without a public URL is the request's own URL used.
    Without an auth token (insecure-dev only) every check passes.
    """

    def __init__(self, auth_token: str | None, public_url: str | None) -> None:
        self._validator = RequestValidator(auth_token) if auth_token else None
        self.public_url = public_url

    @property
    def enforced(self) -> bool:
        return self._validator is not None

    def http_url(self, conn: HTTPConnection) -> str:
        """The URL Twilio signed for an HTTP webhook (public origin + path + query)."""
        query = conn.url.query
        suffix = conn.url.path + (f"?{query}" if query else "")
        if self.public_url:
            return self.public_url + suffix
        return f"{conn.url.scheme}://{conn.url.netloc}{suffix}"

    def ws_url(self, conn: HTTPConnection, path: str = "/media-stream") -> str:
        """The ``wss://`` (or ``ws://`` for an http public URL) URL of the media stream."""
        if self.public_url:
            parts = urlsplit(self.public_url)
            scheme = "wss" if parts.scheme == "https" else "ws"
            return f"{scheme}://{parts.netloc}{path}"
        scheme = {"https": "wss", "http": "ws"}.get(conn.url.scheme, conn.url.scheme)
        return f"{scheme}://{conn.url.netloc}{path}"

    def valid(
        self,
        url: str,
        params: Mapping[str, str],
        signature: str | None,
        algorithm: str | None = None,
    ) -> bool:
        """Whether ``signature`` signs ``url`` + ``params`` (a dict, or a multi-dict with
        ``getlist``, e.g. Starlette's FormData). Always True when no auth token is set."""
        if self._validator is None:
            return True
        if not signature:
            return False
        try:
            return bool(self._validator.validate(url, params, signature, algorithm))
        except Exception:  # a malformed signature must not become a 500
            return False


@dataclass(frozen=True)
class TokenEntry:
    call_sid: str
    caller: str
    mode: str  # "script" | "debug"
    expires: float


class CallTokens:
    """Per-call random tokens handed out in TwiML ``<Parameter>`` and checked on ``start``.

    Bounded (oldest evicted) and expiring; each token is single-use.
    """

    def __init__(self, ttl: float = 300.0, capacity: int = 10_000) -> None:
        self.ttl = ttl
        self.capacity = capacity
        self._tokens: collections.OrderedDict[str, TokenEntry] = collections.OrderedDict()

    def __len__(self) -> int:
        return len(self._tokens)

    def issue(self, call_sid: str, caller: str, mode: str, now: float | None = None) -> str:
        now = time.monotonic() if now is None else now
        self._expire(now)
        token = secrets.token_urlsafe(24)
        self._tokens[token] = TokenEntry(call_sid, caller, mode, now + self.ttl)
        logs.register_call_secret(token)
        while len(self._tokens) > self.capacity:
            old, _ = self._tokens.popitem(last=False)
            logs.forget_secret(old)
        return token

    def consume(
        self, token: str | None, call_sid: str, now: float | None = None
    ) -> TokenEntry | None:
        """The entry if ``token`` is live and was issued for ``call_sid`` (then it is spent)."""
        now = time.monotonic() if now is None else now
        self._expire(now)
        if not token:
            return None
        entry = self._tokens.get(token)
        if entry is None or not hmac.compare_digest(entry.call_sid, call_sid):
            return None
        del self._tokens[token]
        logs.forget_secret(token)
        return entry

    def _expire(self, now: float) -> None:
        tokens = self._tokens
        while tokens:
            token, entry = next(iter(tokens.items()))
            if entry.expires > now:
                break
            tokens.popitem(last=False)
            logs.forget_secret(token)


class AdminAuth:
    """``Authorization: Bearer <HOTLINE_ADMIN_TOKEN>``, compared in constant time.

    With no admin token configured the admin endpoints are disabled (503), in every mode.
    """

    def __init__(self, token: str | None) -> None:
        self._token = token.encode() if token else None

    @property
    def enabled(self) -> bool:
        return self._token is not None

    def check(self, authorization: str | None) -> bool:
        if self._token is None or not authorization:
            return False
        scheme, _, value = authorization.partition(" ")
        if scheme.lower() != "bearer":
            return False
        return hmac.compare_digest(value.strip().encode(), self._token)


class FailureLimiter:
    """Counts failed signature attempts per client address in a sliding window.

    After ``limit`` failures within ``window`` seconds an address is refused outright (429 /
    refused upgrade) until its failures age out. Bounded to ``capacity`` addresses.
    """

    def __init__(self, limit: int = 20, window: float = 60.0, capacity: int = 10_000) -> None:
        self.limit = limit
        self.window = window
        self.capacity = capacity
        self._fails: collections.OrderedDict[str, collections.deque[float]] = (
            collections.OrderedDict()
        )

    def blocked(self, address: str, now: float | None = None) -> bool:
        now = time.monotonic() if now is None else now
        times = self._fails.get(address)
        if times is None:
            return False
        while times and times[0] <= now - self.window:
            times.popleft()
        if not times:
            del self._fails[address]
            return False
        return len(times) >= self.limit

    def failed(self, address: str, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        times = self._fails.setdefault(address, collections.deque(maxlen=self.limit))
        times.append(now)
        self._fails.move_to_end(address)
        while len(self._fails) > self.capacity:
            self._fails.popitem(last=False)
