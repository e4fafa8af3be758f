"""The server tests' harness: the shared starter and Twilio side from :mod:`tests.support`,
plus the fault switch for the next utterances' TTS connections."""

from __future__ import annotations

from dataclasses import replace

from hotline.server.hub import Hub
from tests.support.server import (
    ADMIN,
    ADMIN_TOKEN,
    AUTH_TOKEN,
    CALLER,
    Running,
    running_server,
    sign,
)
from tests.support.twilio import FakeTwilio, Heard

__all__ = [
    "ADMIN",
    "ADMIN_TOKEN",
    "AUTH_TOKEN",
    "CALLER",
    "FakeTwilio",
    "Heard",
    "Running",
    "running_server",
    "sign",
    "with_fault",
]


def with_fault(hub: Hub, fault: str | None) -> None:
    """Make the next utterances' TTS connections ask the local voice for ``fault``."""
    assert hub.tts is not None
    hub.tts = replace(hub.tts, extra_query={"hotline_fault": fault} if fault else None)
