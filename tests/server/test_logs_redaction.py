"""Secret redaction under load: per-call stream tokens must never evict a start-up secret."""

from __future__ import annotations

import logging
import secrets
from collections.abc import Iterator

import pytest

from hotline.server import logs
from hotline.server.security import CallTokens


@pytest.fixture
def api_key() -> Iterator[str]:
    key = "sk_" + secrets.token_hex(24)  # shaped like an ElevenLabs key
    logs.register_secret(key)  # what create_app does for settings.secrets() at start-up
    yield key
    logs.forget_secret(key)


def test_api_key_redacted_with_5000_outstanding_call_tokens(api_key: str) -> None:
    tokens = CallTokens("auth-token")  # stateless: every issued token stays valid until used
    caller = "+15555550123"
    issued = [tokens.issue(f"CA{i:032x}", caller, "script", now=0.0) for i in range(5000)]
    try:
        line = f"calling ElevenLabs with xi-api-key={api_key} token={issued[0]}"
        assert logs.redact(line) == "calling ElevenLabs with xi-api-key=*** token=***"
        # the newest token too, and through a real log record
        ring = logs.RingHandler()
        logger = logging.getLogger("hotline.test.redaction")
        logger.addHandler(ring)
        try:
            logger.warning("key %s last %s", api_key, issued[-1])
        finally:
            logger.removeHandler(ring)
        (record,) = ring.snapshot()
        assert record["message"] == "key *** last ***"
    finally:
        for i, token in enumerate(issued):
            assert tokens.consume(token, f"CA{i:032x}", caller, now=0.0) is not None
    assert logs.redact(issued[0]) == issued[0]  # spent tokens are forgotten
    assert logs.redact(api_key) == "***"


def test_call_secret_flood_evicts_only_call_secrets(api_key: str) -> None:
    flood = [secrets.token_urlsafe(24) for _ in range(logs._MAX_CALL_SECRETS + 100)]
    try:
        for token in flood:
            logs.register_call_secret(token)
        assert logs.redact(api_key) == "***"
        assert logs.redact(flood[0]) == flood[0]  # the oldest per-call secret went first
        assert logs.redact(flood[-1]) == "***"
    finally:
        for token in flood:
            logs.forget_secret(token)


def test_forget_drops_a_pinned_secret() -> None:
    key = "sk_" + secrets.token_hex(24)
    logs.register_secret(key)
    assert logs.redact(key) == "***"
    logs.forget_secret(key)
    assert logs.redact(key) == key
