"""The server tests' harness: the shared starter and Twilio side from :mod:`tests.support`,
plus the fault switch for the next utterances' TTS connections."""

from __future__ import annotations

from tests.support.server import (
    ADMIN,
    ADMIN_TOKEN,
    AUTH_TOKEN,
    CALLER,
    Running,
    running_server,
    sign,
)
from tests.support.tts import FaultSwitch
from tests.support.twilio import FakeTwilio, Heard

__all__ = [
    "ADMIN",
    "ADMIN_TOKEN",
    "AUTH_TOKEN",
    "CALLER",
    "FakeTwilio",
    "FaultSwitch",
    "Heard",
    "Running",
    "running_server",
    "sign",
]
