"""Logging: redaction of caller numbers and secrets on every record, and the /logs ring.

:func:`install_redaction` wraps the process's log-record factory, so *every* record from any
logger (ours, uvicorn's, websockets') is redacted when it is created, before any handler or
formatter sees it: the message is formatted once, phone numbers are masked
(``+15555550123`` -> ``+1555***0123``) and registered secrets (tokens, keys) are replaced by
``***``; exception text is formatted and redacted eagerly too. :class:`RingHandler` keeps a
bounded window of recent records for ``GET /logs``.
"""

from __future__ import annotations

import collections
import logging
import re
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

__all__ = [
    "AUDIO_LOGGERS",
    "RedactingFilter",
    "RingHandler",
    "forget_secret",
    "install_redaction",
    "mask_number",
    "redact",
    "register_call_secret",
    "register_secret",
]

#: Loggers on the audio path (``GET /logs/streaming``).
AUDIO_LOGGERS = ("hotline.call", "hotline.tts", "hotline.voice")

# +E.164 (also URL-encoded %2B) or a bare run of 10-15 digits not inside a word.
_PHONE = re.compile(r"(?<![\w%])(\+|%2[Bb])?(\d{7,15})(?![\w])")
# Two stores. Pinned: secrets known for the life of the process (API keys, the admin token),
# never evicted, only dropped by forget_secret(). Per-call: short-lived secrets (stream tokens),
# a bounded LRU larger than CallTokens' capacity (10,000), so an outstanding token is never
# evicted either; when a flood does overflow it, only per-call secrets go, never a pinned key.
_MAX_CALL_SECRETS = 16_384
_pinned: dict[str, None] = {}
_secrets: collections.OrderedDict[str, None] = collections.OrderedDict()
_secret_order: tuple[str, ...] | None = ()
_lock = threading.Lock()


def mask_number(number: str) -> str:
    """``+15555550123`` -> ``+1555***0123``; anything that is not a number -> ``***``."""
    prefix = "+" if number.startswith("+") else ""
    digits = number[len(prefix) :]
    if not digits.isdigit() or len(digits) < 7:
        return "***" if number else number
    keep = 4 if len(digits) >= 10 else 2
    return f"{prefix}{digits[:keep]}***{digits[-keep:]}"


def _phone_sub(match: re.Match[str]) -> str:
    plus, digits = match.group(1), match.group(2)
    if plus is None and len(digits) < 10:
        return match.group(0)  # short bare numbers (ids, counts, ms) are not phone numbers
    keep = 4 if len(digits) >= 10 else 2
    return f"{plus or ''}{digits[:keep]}***{digits[-keep:]}"


def register_secret(value: str | None) -> None:
    """Never let ``value`` reach a log line: pinned, never evicted (start-up secrets, keys)."""
    global _secret_order
    if not value or len(value) < 4:
        return
    with _lock:
        if value not in _pinned:
            _pinned[value] = None
            _secret_order = None


def register_call_secret(value: str | None) -> None:
    """Redact a short-lived per-call secret (a stream token) until :func:`forget_secret`.

    Bounded: past ``_MAX_CALL_SECRETS`` the oldest per-call secret is forgotten first; a
    secret from :func:`register_secret` is never evicted by these.
    """
    global _secret_order
    if not value or len(value) < 4:
        return
    with _lock:
        _secrets[value] = None
        _secrets.move_to_end(value)
        while len(_secrets) > _MAX_CALL_SECRETS:
            _secrets.popitem(last=False)
        _secret_order = None


def forget_secret(value: str | None) -> None:
    """Stop redacting ``value`` (pinned or per-call)."""
    global _secret_order
    if not value:
        return
    with _lock:
        popped = _secrets.pop(value, 1) is None
        popped = _pinned.pop(value, 1) is None or popped
        if popped:
            _secret_order = None


def _ordered_secrets() -> tuple[str, ...]:
    # Plain substring replacement, not one big regex: secrets come and go with every call (the
    # per-call stream tokens), and recompiling an alternation per call cost CPU and filled
    # re's pattern cache. Longest first, so a secret containing another is replaced whole.
    global _secret_order
    order = _secret_order
    if order is None:
        with _lock:
            order = _secret_order = tuple(
                sorted(_pinned.keys() | _secrets.keys(), key=len, reverse=True)
            )
    return order


def redact(text: str) -> str:
    """Mask phone numbers and registered secrets in ``text``."""
    for secret in _ordered_secrets():
        if secret in text:
            text = text.replace(secret, "***")
    return _PHONE.sub(_phone_sub, text)


_formatter = logging.Formatter()


def _redact_record(record: logging.LogRecord) -> None:
    if getattr(record, "_hotline_redacted", False):
        return
    try:
        message = record.getMessage()
    except Exception:  # a bad format string must not kill the caller
        message = f"{record.msg!r} (unformattable log arguments)"
    record.msg = redact(message)
    record.args = None
    if record.exc_info and not record.exc_text:
        record.exc_text = _formatter.formatException(record.exc_info)
    if record.exc_text:
        record.exc_text = redact(record.exc_text)
    if record.stack_info:
        record.stack_info = redact(record.stack_info)
    record._hotline_redacted = True


class RedactingFilter(logging.Filter):
    """A handler filter doing the same redaction (for records made before installation)."""

    def filter(self, record: logging.LogRecord) -> bool:
        _redact_record(record)
        return True


_installed = False


def install_redaction() -> None:
    """Wrap the log-record factory once per process (idempotent)."""
    global _installed
    with _lock:
        if _installed:
            return
        previous: Callable[..., logging.LogRecord] = logging.getLogRecordFactory()

        def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
            record = previous(*args, **kwargs)
            _redact_record(record)
            return record

        logging.setLogRecordFactory(factory)
        _installed = True


class RingHandler(logging.Handler):
    """Keeps the last ``capacity`` records as small dicts for ``GET /logs``."""

    def __init__(self, capacity: int = 1000, level: int = logging.INFO) -> None:
        super().__init__(level)
        self.records: collections.deque[dict[str, Any]] = collections.deque(maxlen=capacity)
        self.addFilter(RedactingFilter())

    def emit(self, record: logging.LogRecord) -> None:
        try:
            message = record.getMessage()
            if record.exc_text:
                message = f"{message}\n{record.exc_text}"
            self.records.append(
                {
                    "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
                    + f".{int(record.msecs):03d}Z",
                    "level": record.levelname,
                    "logger": record.name,
                    "message": message,
                }
            )
        except Exception:  # pragma: no cover - logging must never raise
            self.handleError(record)

    def snapshot(
        self, prefixes: Iterable[str] | None = None, limit: int | None = None
    ) -> list[dict[str, Any]]:
        items = list(self.records)
        if prefixes is not None:
            wanted = tuple(prefixes)
            items = [
                r
                for r in items
                if any(r["logger"] == p or r["logger"].startswith(p + ".") for p in wanted)
            ]
        if limit is not None:
            items = items[-limit:]
        return items
