"""Helpers shared by the Twilio and ElevenLabs protocol objects."""

from __future__ import annotations

import base64
import sys
from binascii import a2b_base64

__all__ = ["b64decode_strict", "describe"]

if sys.version_info >= (3, 11):

    def b64decode_strict(data: str) -> bytes:
        """Decode base64, rejecting any character outside the alphabet (binascii.Error)."""
        return a2b_base64(data, strict_mode=True)

else:  # pragma: no cover - Python 3.10

    def b64decode_strict(data: str) -> bytes:
        """Decode base64, rejecting any character outside the alphabet (binascii.Error)."""
        return base64.b64decode(data, validate=True)


def describe(value: object) -> str:
    """A type name for error messages (never the value itself: it may be a caller's data)."""
    return "null" if value is None else type(value).__name__
