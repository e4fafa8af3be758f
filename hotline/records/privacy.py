"""Callers' numbers at rest: a keyed hash to recognise a caller, a masked form to show.

The hash is HMAC-SHA256 of the number (digits and a leading ``+``) keyed with the records key:
the same on every replica (it is derived from a secret they share), useless to whoever reads
the database without it (a phone number has too few digits for a plain hash to hide it).
"""

from __future__ import annotations

import hashlib
import hmac

__all__ = ["caller_key", "derive_key", "mask", "normalise"]


def normalise(number: str) -> str:
    """``+1 (555) 555-0123`` -> ``+15555550123``; anything else is kept as given, stripped."""
    raw = number.strip()
    digits = "".join(ch for ch in raw if ch.isdigit())
    if digits and all(ch.isdigit() or ch in "+-(). " for ch in raw):
        return ("+" if raw.startswith("+") else "") + digits
    return raw


def derive_key(secret: str) -> bytes:
    """The records key from a secret the replicas share."""
    return hmac.new(secret.encode(), b"hotline caller key v1", hashlib.sha256).digest()


def caller_key(key: bytes, number: str) -> str | None:
    """The keyed hash of ``number`` (hex); None for no number (anonymous, withheld)."""
    number = normalise(number)
    if not number:
        return None
    return hmac.new(key, number.encode(), hashlib.sha256).hexdigest()


def mask(number: str) -> str:
    """``+15555550123`` -> ``+1555***0123``; anything that is not a number -> ``***``."""
    number = normalise(number)
    prefix = "+" if number.startswith("+") else ""
    digits = number[len(prefix) :]
    if not digits.isdigit() or len(digits) < 7:
        return "***" if number else ""
    keep = 4 if len(digits) >= 10 else 2
    return f"{prefix}{digits[:keep]}***{digits[-keep:]}"
