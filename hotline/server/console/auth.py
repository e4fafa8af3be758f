"""Console sign-in: the admin token exchanged for a signed, expiring session cookie.

The cookie holds ``<nonce>.<expiry>.<mac>``: an HMAC-SHA256, keyed from ``HOTLINE_ADMIN_TOKEN``,
over the nonce and the expiry. Any replica with the same admin token accepts it (nothing is
stored per session); changing the token signs every session out. Signing out deletes the
cookie and revokes its nonce here (a bounded set) and, with Redis, on every replica
(:mod:`.views`).

Actions carry a CSRF token bound to the session (an HMAC of its nonce), checked in constant
time, and every console POST must come from the console's own origin (``Origin`` /
``Sec-Fetch-Site``): SameSite=Strict alone lets a page on another port of the same host post
with the cookie.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections import OrderedDict
from dataclasses import dataclass
from urllib.parse import urlsplit

from starlette.requests import HTTPConnection

__all__ = ["ConsoleAuth", "ConsoleSession", "cookie_name", "same_origin"]

_KEY_LABEL = b"hotline console session v1"


def cookie_name(secure: bool) -> str:
    """``__Host-`` (Secure, host-only, Path=/) outside insecure-dev, where it is allowed."""
    return "__Host-hotline-console" if secure else "hotline-console"


@dataclass(frozen=True)
class ConsoleSession:
    nonce: str
    expires: int


class ConsoleAuth:
    """Sign-in, sessions and CSRF tokens for the console.

    Args:
        admin_token: ``HOTLINE_ADMIN_TOKEN`` (None: the console is off, like the admin API).
        lifetime: seconds a session lasts.
    """

    def __init__(self, admin_token: str | None, lifetime: float) -> None:
        self._token = admin_token.encode() if admin_token else None
        self._key = (
            hmac.new(self._token, _KEY_LABEL, hashlib.sha256).digest() if self._token else None
        )
        self.lifetime = lifetime
        self._revoked: OrderedDict[str, int] = OrderedDict()

    @property
    def enabled(self) -> bool:
        return self._key is not None

    def _mac(self, label: str, message: str) -> str:
        assert self._key is not None
        return hmac.new(self._key, f"{label}|{message}".encode(), hashlib.sha256).hexdigest()

    def sign_in(self, token: str, now: float | None = None) -> str | None:
        """The cookie value for a correct admin ``token``, else None."""
        if self._token is None or not token:
            return None
        if not hmac.compare_digest(token.strip().encode(), self._token):
            return None
        nonce = secrets.token_urlsafe(18)
        expires = int((time.time() if now is None else now) + self.lifetime)
        body = f"{nonce}.{expires}"
        return f"{body}.{self._mac('session', body)}"

    def session(self, cookie: str | None, now: float | None = None) -> ConsoleSession | None:
        """The session a cookie value holds, if it is genuine, unexpired and not revoked."""
        if self._key is None or not cookie or len(cookie) > 200:
            return None
        nonce, _, rest = cookie.partition(".")
        expiry, _, mac = rest.partition(".")
        if not nonce or not expiry.isdigit() or not mac:
            return None
        if not hmac.compare_digest(mac, self._mac("session", f"{nonce}.{expiry}")):
            return None
        expires = int(expiry)
        if expires <= (time.time() if now is None else now) or nonce in self._revoked:
            return None
        return ConsoleSession(nonce, expires)

    def csrf(self, session: ConsoleSession) -> str:
        """The session's CSRF token (what the console's forms and scripts send back)."""
        return self._mac("csrf", session.nonce)

    def csrf_ok(self, session: ConsoleSession, value: str | None) -> bool:
        return bool(value) and hmac.compare_digest(str(value), self.csrf(session))

    def revoke(self, session: ConsoleSession, now: float | None = None) -> None:
        """Sign ``session`` out (on this replica; its cookie is deleted too)."""
        t = time.time() if now is None else now
        self._revoked[session.nonce] = session.expires
        while self._revoked and (
            len(self._revoked) > 10_000 or next(iter(self._revoked.values())) <= t
        ):
            self._revoked.popitem(last=False)


def same_origin(conn: HTTPConnection, public_url: str | None) -> bool:
    """A state-changing request comes from the console's own origin.

    ``Origin`` (sent by every current browser on a POST) must name this host (the ``Host``
    header, or the public URL's host behind a proxy); without it, ``Sec-Fetch-Site`` must be
    ``same-origin``; a request with neither (not a browser: curl, a script) is let through to
    the CSRF token check, which it cannot pass without the session's token.
    """
    origin = conn.headers.get("origin")
    if origin is not None:
        if origin == "null":
            return False
        netloc = urlsplit(origin).netloc.lower()
        allowed = {conn.headers.get("host", "").lower()}
        if public_url:
            allowed.add(urlsplit(public_url).netloc.lower())
        return netloc in allowed
    site = conn.headers.get("sec-fetch-site")
    return site is None or site in ("same-origin", "none")
