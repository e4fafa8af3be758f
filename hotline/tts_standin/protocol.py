"""ElevenLabs' stream-input protocol as the stand-in checks it (shared/docs/protocols.md §2):
the URL, the client's messages and first-message settings, the timeout message text."""

from __future__ import annotations

import json
import re
from typing import Any
from urllib.parse import parse_qs, urlsplit

__all__ = [
    "DEFAULT_INACTIVITY_TIMEOUT",
    "DEFAULT_OUTPUT_FORMAT",
    "FIRST_ONLY",
    "LANGUAGE_MODELS",
    "MAX_INACTIVITY_TIMEOUT",
    "Invalid",
    "bool_param",
    "check_fields",
    "check_first",
    "parse_message",
    "parse_target",
    "timeout_message",
]

DEFAULT_OUTPUT_FORMAT = "mp3_44100_128"
DEFAULT_INACTIVITY_TIMEOUT = 20.0
MAX_INACTIVITY_TIMEOUT = 180.0

PATH = re.compile(r"^/v1/text-to-speech/([^/]+)/(stream-input|multi-stream-input)$")
FIRST_ONLY = ("voice_settings", "generation_config", "pronunciation_dictionary_locators")
#: The models that take ``language_code``. ElevenLabs' API reference: "Currently only Turbo
#: v2.5 and Flash v2.5 support language enforcement. For other models, an error will be
#: returned if language code is provided."
LANGUAGE_MODELS = frozenset({"eleven_flash_v2_5", "eleven_turbo_v2_5"})


class Invalid(Exception):
    """A client message ElevenLabs would refuse (``invalid_input_message``)."""


def parse_target(path: str) -> tuple[str, str, dict[str, str]] | None:
    parts = urlsplit(path)
    m = PATH.match(parts.path)
    if m is None:
        return None
    query = {k: v[0] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
    return m.group(1), m.group(2), query


def bool_param(value: str | None) -> bool:
    return value is not None and value.lower() in ("1", "true", "yes")


def timeout_message(seconds: float) -> str:
    return (
        f"Have not received a new text input within the timeout of {seconds:.1f} seconds. "
        "Streaming input terminated. Please make sure to send a text message at least every "
        f"{seconds:.1f} seconds."
    )


def parse_message(raw: str | bytes) -> dict[str, Any]:
    """A client message as a JSON object (its fields checked by :func:`check_fields`).

    Raises:
        Invalid: what ElevenLabs would answer with ``invalid_input_message``.
    """
    if isinstance(raw, bytes):
        raise Invalid("binary frames are not accepted; send JSON text messages")
    try:
        obj = json.loads(raw)
    except ValueError:
        raise Invalid("message is not valid JSON") from None
    if not isinstance(obj, dict):
        raise Invalid("message must be a JSON object")
    return obj


def check_fields(obj: dict[str, Any]) -> dict[str, Any]:
    """``obj`` with its control fields type-checked.

    Raises:
        Invalid: a field of the wrong type.
    """
    for key in ("flush", "try_trigger_generation", "close_context", "close_socket"):
        if key in obj and not isinstance(obj[key], bool):
            raise Invalid(f"field {key!r} must be a boolean")
    if "text" in obj and not isinstance(obj["text"], str):
        raise Invalid("field 'text' must be a string")
    return obj


def check_first(obj: dict[str, Any]) -> tuple[int, ...] | None:
    """Check the settings only a first message may carry; returns its ``chunk_length_schedule``.

    Raises:
        Invalid: a setting out of range.
    """
    vs = obj.get("voice_settings")
    if vs is not None:
        if not isinstance(vs, dict):
            raise Invalid("voice_settings must be an object")
        for key in ("stability", "similarity_boost", "style"):
            v = vs.get(key)
            if v is not None and (
                not isinstance(v, (int, float)) or isinstance(v, bool) or not 0 <= v <= 1
            ):
                raise Invalid(f"voice_settings.{key} must be a number within 0..1")
        speed = vs.get("speed")
        if speed is not None and (not isinstance(speed, (int, float)) or not 0.7 <= speed <= 1.2):
            raise Invalid("voice_settings.speed must be within 0.7..1.2")
    gc = obj.get("generation_config")
    if gc is not None:
        if not isinstance(gc, dict):
            raise Invalid("generation_config must be an object")
        sched = gc.get("chunk_length_schedule")
        if sched is not None:
            if (
                not isinstance(sched, list)
                or not sched
                or not all(
                    isinstance(x, int) and not isinstance(x, bool) and 50 <= x <= 500 for x in sched
                )
            ):
                raise Invalid("chunk_length_schedule must be a list of integers within 50..500")
            return tuple(sched)
    return None
