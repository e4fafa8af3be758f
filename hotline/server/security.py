"""Twilio request signatures, per-call stream tokens, admin bearer tokens, failure rate limits."""

from __future__ import annotations

import base64
import collections
import hashlib
import hmac
import ipaddress
import logging
import math
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

from starlette.requests import HTTPConnection
from twilio.request_validator import RequestValidator

from hotline.server import logs

__all__ = [
    "AdminAuth",
    "CallTokens",
    "FailureLimiter",
    "SignatureChecker",
    "TokenEntry",
    "client_address",
    "parse_trusted_proxies",
]

log = logging.getLogger("hotline.http")


class SignatureChecker:
    """``X-Twilio-Signature`` checks for the webhooks and the media-stream upgrade.

    URLs are built from the configured public URL (never from proxy-rewritten request
    attributes); only in insecure-dev without a public URL is the request's own URL used.
    Without an auth token (insecure-dev only) every check passes.

    A request carrying ``X-Twilio-Webhooks-Signature-Settings`` (an account Webhook Rule
    matched the URL) is signed with that rule's SharedKey and the algorithm the header names,
    not with the Auth Token; it is checked against ``signing_key`` (``TWILIO_SIGNING_KEY``)
    and refused, with a log line naming the setting, when none is configured.
    """

    def __init__(
        self, auth_token: str | None, public_url: str | None, signing_key: str | None = None
    ) -> None:
        self._validator = RequestValidator(auth_token) if auth_token else None
        self._shared = RequestValidator(signing_key) if signing_key else None
        self.public_url = public_url
        self._warned_no_key = False

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

    def public_http_url(self, conn: HTTPConnection, path: str) -> str:
        """``path`` on the public origin (the ``<Connect action>`` and ``statusCallback``)."""
        if self.public_url:
            return self.public_url + path
        return f"{conn.url.scheme}://{conn.url.netloc}{path}"

    def ws_url(self, conn: HTTPConnection, path: str = "/media-stream") -> str:
        """The ``wss://`` URL of the media stream (``ws://`` only for an insecure-dev
        ``http://`` URL: settings refuse an ``http://`` public URL outside insecure-dev)."""
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
        signature_settings: str | None = None,
    ) -> bool:
        """Whether ``signature`` signs ``url`` + ``params`` (a dict, or a multi-dict with
        ``getlist``, e.g. Starlette's FormData). Always True when no auth token is set.

        ``signature_settings`` is the raw ``X-Twilio-Webhooks-Signature-Settings`` header:
        absent means Auth Token + HMAC-SHA1; present means the SharedKey and its algorithm.
        """
        if self._validator is None:
            return True
        if not signature:
            return False
        validator = self._validator
        algorithm = HMAC_SHA1
        if signature_settings is not None and signature_settings.strip():
            algorithm = _signature_algorithm(signature_settings)
            if self._shared is None:
                if not self._warned_no_key:
                    self._warned_no_key = True
                    log.error(
                        "a Twilio Webhook Rule signs this URL with a SharedKey, but "
                        "TWILIO_SIGNING_KEY is not set: every such request is refused"
                    )
                return False
            validator = self._shared
        try:
            return bool(validator.validate(url, params, signature, algorithm))
        except Exception:  # a malformed signature or unknown algorithm must not become a 500
            return False


HMAC_SHA1 = "HMAC_SHA1"


def _signature_algorithm(header: str) -> str:
    """The ``algorithm=`` named in ``X-Twilio-Webhooks-Signature-Settings`` (default SHA1)."""
    for part in header.split(","):
        name, separator, value = part.partition("=")
        if separator and name.strip().lower() == "algorithm" and value.strip():
            return value.strip()
    return HMAC_SHA1


@dataclass(frozen=True)
class TokenEntry:
    call_sid: str
    caller: str
    mode: str  # "script" | "debug"
    expires: float


_TOKEN_VERSION = "v1"
_MODES = ("script", "debug")
#: Seconds of clock difference tolerated between the replica that issued and the one checking.
CLOCK_SKEW = 30.0


class CallTokens:
    """Signed, stateless per-call tokens handed out in TwiML ``<Parameter>`` and checked on
    ``start``: any replica sharing the key checks any replica's token, with no shared state.

    A token is ``v1.<mode>.<expiry>.<mac>``: ``mac`` is HMAC-SHA256 over the CallSid, the
    caller, the mode and the expiry (wall-clock seconds), keyed from ``secret`` (the
    ``HOTLINE_TOKEN_SECRET`` setting, else the Twilio auth token; without either, a random
    per-process key, which is fine for the single insecure-dev process). It is bound to one
    call, expires after ``ttl``, is compared in constant time, and this replica refuses a
    second use of a token it has already accepted (a bounded spent list; Twilio signs the
    upgrade, so a replay needs a signed upgrade anyway).
    """

    def __init__(
        self, secret: str | bytes | None = None, ttl: float = 300.0, capacity: int = 10_000
    ) -> None:
        if isinstance(secret, str):
            secret = secret.encode()
        if not secret:
            secret = secrets.token_bytes(32)
        self._key = hmac.new(secret, b"hotline call token v1", hashlib.sha256).digest()
        self.ttl = ttl
        self.capacity = capacity
        self._spent: collections.OrderedDict[str, float] = collections.OrderedDict()

    def __len__(self) -> int:
        """Tokens this replica has accepted that have not yet expired."""
        return len(self._spent)

    def _mac(self, call_sid: str, caller: str, mode: str, expiry: int) -> str:
        message = "\0".join((_TOKEN_VERSION, call_sid, caller, mode, str(expiry))).encode()
        digest = hmac.new(self._key, message, hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")

    def issue(self, call_sid: str, caller: str, mode: str, now: float | None = None) -> str:
        if mode not in _MODES:
            raise ValueError(f"unknown call mode {mode!r}")
        now = time.time() if now is None else now
        expiry = math.ceil(now + self.ttl)
        token = f"{_TOKEN_VERSION}.{mode}.{expiry}.{self._mac(call_sid, caller, mode, expiry)}"
        logs.register_call_secret(token)
        return token

    def consume(
        self, token: str | None, call_sid: str, caller: str = "", now: float | None = None
    ) -> TokenEntry | None:
        """The entry if ``token`` was issued for ``call_sid`` (and ``caller``) and has not
        expired nor been used here before; else None, with a log line saying why."""
        now = time.time() if now is None else now
        self._expire(now)
        if not token:
            log.warning("per-call token refused: missing")
            return None
        parts = token.split(".")
        if len(parts) != 4 or parts[0] != _TOKEN_VERSION or parts[1] not in _MODES:
            log.warning("per-call token refused: malformed (%d characters)", len(token))
            return None
        _, mode, raw_expiry, mac = parts
        if not raw_expiry.isdigit() or len(raw_expiry) > 12:
            log.warning("per-call token refused: malformed expiry")
            return None
        expiry = int(raw_expiry)
        if not hmac.compare_digest(mac, self._mac(call_sid, caller, mode, expiry)):
            log.warning("per-call token refused: forged, or issued for another call")
            return None
        if expiry + CLOCK_SKEW <= now:
            log.warning("per-call token refused: expired %.0f s ago", now - expiry)
            return None
        if token in self._spent:
            log.warning("per-call token refused: already used on this replica")
            return None
        self._spent[token] = expiry + CLOCK_SKEW
        while len(self._spent) > self.capacity:
            self._spent.popitem(last=False)
        logs.forget_secret(token)
        return TokenEntry(call_sid, caller, mode, float(expiry))

    def _expire(self, now: float) -> None:
        spent = self._spent
        while spent:
            _token, until = next(iter(spent.items()))
            if until > now:
                break
            spent.popitem(last=False)


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


Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_trusted_proxies(value: str | None) -> tuple[Network, ...]:
    """``HOTLINE_TRUSTED_PROXIES``: comma-separated IPs / CIDRs, or ``*`` (every hop).

    Raises:
        ValueError: an entry is neither an IP address nor a network (the message names it).
    """
    out: list[Network] = []
    for raw in (value or "").split(","):
        item = raw.strip()
        if not item:
            continue
        if item == "*":
            out += [ipaddress.ip_network("0.0.0.0/0"), ipaddress.ip_network("::/0")]
            continue
        try:
            out.append(ipaddress.ip_network(item, strict=False))
        except ValueError:
            raise ValueError(f"{item!r} is not an IP address or CIDR network") from None
    return tuple(out)


def _ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    text = text.strip()
    if text.startswith("[") and "]" in text:  # [v6]:port
        text = text[1 : text.index("]")]
    elif text.count(":") == 1:  # v4:port
        text = text.split(":", 1)[0]
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def client_address(conn: HTTPConnection, trusted: tuple[Network, ...] = ()) -> str:
    """The real client address of ``conn``.

    The TCP peer, unless the peer is a trusted proxy: then ``X-Forwarded-For`` is walked from
    the right (the entry the nearest proxy appended) past every trusted hop, and the first
    untrusted address is the client. If every hop is trusted (``*``), the leftmost entry is
    taken, which is only right behind an edge that discards client-sent entries (Railway's
    does). An unparseable entry stops the walk at the last good hop.
    """
    peer = conn.client.host if conn.client is not None else "unknown"
    if not trusted:
        return peer

    def is_trusted(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
        return any(address.version == net.version and address in net for net in trusted)

    peer_ip = _ip(peer)
    if peer_ip is None or not is_trusted(peer_ip):
        return peer
    hops = [h for v in conn.headers.getlist("x-forwarded-for") for h in v.split(",")]
    client = peer
    for hop in reversed(hops):
        address = _ip(hop)
        if address is None:
            break
        client = str(address)
        if not is_trusted(address):
            break
    return client


class FailureLimiter:
    """Counts failed signature attempts per client address in a sliding window.

    Only invalid attempts are limited: callers check the signature first and serve a valid
    one whatever this says. After ``limit`` failures within ``window`` seconds an address's
    invalid attempts are refused outright (429 / refused upgrade) until its failures age out;
    a failure from an already-blocked address is not counted, so a block never renews itself.
    ``client(conn)`` gives the address to key by (``X-Forwarded-For`` honoured only from
    ``trusted_proxies``). Bounded to ``capacity`` addresses.
    """

    def __init__(
        self,
        limit: int = 20,
        window: float = 60.0,
        capacity: int = 10_000,
        trusted_proxies: tuple[Network, ...] = (),
    ) -> None:
        self.limit = limit
        self.window = window
        self.capacity = capacity
        self.trusted_proxies = trusted_proxies
        self._fails: collections.OrderedDict[str, collections.deque[float]] = (
            collections.OrderedDict()
        )

    def client(self, conn: HTTPConnection) -> str:
        return client_address(conn, self.trusted_proxies)

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

    def failed(self, address: str, now: float | None = None) -> bool:
        """Record a failed attempt; returns whether ``address`` is now blocked. A failure
        while already blocked is not recorded (the block ages out on its own)."""
        now = time.monotonic() if now is None else now
        if self.blocked(address, now):
            return True
        times = self._fails.setdefault(address, collections.deque(maxlen=self.limit))
        times.append(now)
        self._fails.move_to_end(address)
        while len(self._fails) > self.capacity:
            self._fails.popitem(last=False)
        return len(times) >= self.limit
