"""Helpers shared by the Twilio and ElevenLabs protocol objects."""

from __future__ import annotations

import base64
import json
import sys
from binascii import a2b_base64
from collections.abc import Callable
from typing import Any, NoReturn

from hotline.errors import ProtocolError

__all__ = ["b64decode_strict", "describe", "load_object", "raiser"]

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


def raiser(error: type[ProtocolError]) -> Callable[[str], NoReturn]:
    """A protocol module's ``_fail(message)``: raises ``error(message)``."""

    def fail(message: str) -> NoReturn:
        raise error(message)

    return fail


def load_object(text: object, error: type[ProtocolError]) -> dict[str, Any]:
    """Parse one JSON text frame that must hold an object; anything else raises ``error``."""
    if not isinstance(text, str):
        raise error(f"expected a JSON text frame, got {describe(text)}")
    try:
        msg = json.loads(text)
    except RecursionError:
        raise error("message nested too deeply") from None
    except ValueError as exc:
        # JSONDecodeError, or an integer literal longer than Python's digit limit.
        raise error(f"message is not valid JSON ({str(exc)[:80]})") from None
    if type(msg) is not dict:
        raise error(f"message must be a JSON object, got {describe(msg)}")
    return msg
