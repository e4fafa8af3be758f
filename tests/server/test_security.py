"""Signed per-call tokens, the failure limiter, client addresses behind proxies, SharedKey
signatures, and the start-up refusals of settings ElevenLabs or Twilio would refuse later."""

from __future__ import annotations

import logging
from dataclasses import replace

import pytest
from starlette.requests import HTTPConnection
from twilio.request_validator import RequestValidator

from hotline.errors import ConfigError
from hotline.server.elevenlabs_client import TTSConfig
from hotline.server.security import (
    CallTokens,
    FailureLimiter,
    SignatureChecker,
    client_address,
    parse_trusted_proxies,
)
from hotline.server.settings import Settings

SID, OTHER_SID = "CA" + "1" * 32, "CA" + "2" * 32
CALLER = "+15555550123"
NOW = 1_800_000_000.0


# ------------------------------------------------------------------------- per-call tokens


def test_token_is_checked_by_any_replica_sharing_the_key() -> None:
    a, b = CallTokens("twilio-auth-token"), CallTokens("twilio-auth-token")
    token = a.issue(SID, CALLER, "debug", now=NOW)
    entry = b.consume(token, SID, CALLER, now=NOW + 1)  # no state shared with `a`
    assert entry is not None and (entry.call_sid, entry.caller, entry.mode) == (
        SID,
        CALLER,
        "debug",
    )
    assert len(b) == 1 and len(a) == 0


@pytest.mark.parametrize(
    ("change", "why"),
    [
        ({"call_sid": OTHER_SID}, "forged, or issued for another call"),
        ({"caller": "+15555559999"}, "forged, or issued for another call"),
        ({"secret": "another-key"}, "forged, or issued for another call"),
        ({"now": NOW + 300 + 31}, "expired"),
        ({"token": "v1.script.1800000300.AAAA"}, "forged"),
        ({"token": "v1.admin.1800000300.AAAA"}, "malformed"),
        ({"token": "random-token-from-an-old-release"}, "malformed"),
        ({"token": "v1.script.-5.AAAA"}, "malformed expiry"),
        ({"token": None}, "missing"),
    ],
)
def test_bad_tokens_are_refused_with_a_clear_line(
    change: dict[str, object], why: str, caplog: pytest.LogCaptureFixture
) -> None:
    token = CallTokens("key").issue(SID, CALLER, "script", now=NOW)
    checker = CallTokens(str(change.get("secret", "key")))
    with caplog.at_level(logging.WARNING, "hotline.http"):
        entry = checker.consume(
            change.get("token", token),  # type: ignore[arg-type]
            str(change.get("call_sid", SID)),
            str(change.get("caller", CALLER)),
            now=float(change.get("now", NOW + 1)),  # type: ignore[arg-type]
        )
    assert entry is None
    assert f"per-call token refused: {why}" in caplog.text
    assert token.rsplit(".", 1)[1] not in caplog.text  # the MAC never reaches a log
    assert "key" not in caplog.text.replace("token", "")


def test_token_tolerates_clock_skew_then_expires() -> None:
    tokens = CallTokens("key", ttl=60)
    token = tokens.issue(SID, CALLER, "script", now=NOW)
    assert tokens.consume(token, SID, CALLER, now=NOW + 60 + 29) is not None
    other = tokens.issue(SID, CALLER, "script", now=NOW)
    assert other == token  # same call, same second: same token, so already spent here
    late = tokens.issue(SID, CALLER, "script", now=NOW + 1)
    assert tokens.consume(late, SID, CALLER, now=NOW + 1 + 60 + 31) is None


def test_token_is_single_use_on_a_replica_and_the_spent_list_is_bounded() -> None:
    tokens = CallTokens("key", capacity=3)
    token = tokens.issue(SID, CALLER, "script", now=NOW)
    assert tokens.consume(token, SID, CALLER, now=NOW) is not None
    assert tokens.consume(token, SID, CALLER, now=NOW) is None  # replay
    for i in range(10):
        t = tokens.issue(f"CA{i:032d}", CALLER, "script", now=NOW)
        assert tokens.consume(t, f"CA{i:032d}", CALLER, now=NOW) is not None
    assert len(tokens) == 3
    assert len(CallTokens("key")) == 0
    tokens.consume(None, SID, now=NOW + 10_000)  # expiry empties the spent list
    assert len(tokens) == 0


def test_tokens_without_a_secret_use_a_random_process_key() -> None:
    token = CallTokens(None).issue(SID, CALLER, "script", now=NOW)
    assert CallTokens(None).consume(token, SID, CALLER, now=NOW) is None
    with pytest.raises(ValueError, match="mode"):
        CallTokens(None).issue(SID, CALLER, "admin")


def test_settings_key_the_tokens_from_the_twilio_token_or_the_configured_secret() -> None:
    s = Settings.from_env({"TWILIO_AUTH_TOKEN": "tw"})
    assert s.call_token_secret == "tw"
    s = Settings.from_env({"TWILIO_AUTH_TOKEN": "tw", "HOTLINE_TOKEN_SECRET": "s3cr3t-0123"})
    assert s.call_token_secret == "s3cr3t-0123" and "s3cr3t-0123" in s.secrets()
    assert "s3cr3t-0123" not in repr(s) and s.describe()["token_secret"] == "set"


# --------------------------------------------------------------------------------- limiter


def test_a_failure_while_blocked_does_not_extend_the_block() -> None:
    limiter = FailureLimiter(limit=3, window=60)
    for t in (0, 1, 2):
        limiter.failed("1.2.3.4", now=t)
    assert limiter.blocked("1.2.3.4", now=2)
    for t in range(3, 60, 5):  # keeps failing while blocked
        assert limiter.failed("1.2.3.4", now=t)
    assert limiter.blocked("1.2.3.4", now=59.5)
    # The first failure ages out at 60 s: the block ends on time, the failures made while
    # blocked did not renew it (before, each one was recorded and the block never ended).
    assert not limiter.blocked("1.2.3.4", now=60.5)
    assert not limiter.failed("1.2.3.4", now=61)  # counted again: 2 and 61 in the window
    assert limiter.failed("1.2.3.4", now=61.5)  # the third within 60 s blocks anew
    assert not limiter.blocked("5.6.7.8", now=2)


def _conn(peer: str, *xff: str) -> HTTPConnection:
    headers = [(b"x-forwarded-for", v.encode()) for v in xff]
    return HTTPConnection({"type": "http", "client": (peer, 1234), "headers": headers})


@pytest.mark.parametrize(
    ("trusted", "peer", "xff", "client"),
    [
        ("", "10.0.0.5", ("203.0.113.7",), "10.0.0.5"),  # no trusted proxies: the peer
        ("10.0.0.0/8", "10.0.0.5", ("203.0.113.7",), "203.0.113.7"),
        ("10.0.0.0/8", "192.0.2.1", ("203.0.113.7",), "192.0.2.1"),  # untrusted peer's XFF
        # A client-sent entry is left of what the proxy appended: the rightmost untrusted wins.
        ("10.0.0.0/8", "10.0.0.5", ("6.6.6.6, 203.0.113.7",), "203.0.113.7"),
        ("10.0.0.0/8,127.0.0.1", "127.0.0.1", ("6.6.6.6, 203.0.113.7, 10.1.1.1",), "203.0.113.7"),
        ("10.0.0.0/8", "10.0.0.5", ("6.6.6.6", "203.0.113.7"), "203.0.113.7"),  # two headers
        ("10.0.0.0/8", "10.0.0.5", (), "10.0.0.5"),
        ("10.0.0.0/8", "10.0.0.5", ("garbage, 203.0.113.7",), "203.0.113.7"),
        ("10.0.0.0/8", "10.0.0.5", ("203.0.113.7, garbage",), "10.0.0.5"),
        ("10.0.0.0/8", "10.0.0.5", ("203.0.113.7:4711",), "203.0.113.7"),
        ("10.0.0.0/8", "10.0.0.5", ("[2001:db8::1]:4711",), "2001:db8::1"),
        ("::1", "::1", ("2001:db8::1",), "2001:db8::1"),
        # "*" (Railway: its edge drops client-sent entries, then appends its own hop):
        ("*", "100.64.0.2", ("203.0.113.7, 152.233.33.161",), "203.0.113.7"),
    ],
)
def test_client_address(trusted: str, peer: str, xff: tuple[str, ...], client: str) -> None:
    assert client_address(_conn(peer, *xff), parse_trusted_proxies(trusted)) == client


def test_trusted_proxies_setting() -> None:
    s = Settings.from_env({"HOTLINE_TRUSTED_PROXIES": " 10.0.0.0/8, 127.0.0.1 ,*,"})
    assert s.trusted_proxies == ("10.0.0.0/8", "127.0.0.1/32", "*")
    with pytest.raises(ConfigError, match=r"HOTLINE_TRUSTED_PROXIES: 'proxy.local'"):
        Settings.from_env({"HOTLINE_TRUSTED_PROXIES": "10.0.0.1,proxy.local"})
    with pytest.raises(ValueError, match="not an IP"):
        parse_trusted_proxies("10.0.0.300")


# ---------------------------------------------------------------------- SharedKey signatures

URL = "https://hotline.example.com/voice"
PARAMS = {"CallSid": SID, "From": CALLER}
RULE = "key=webhooks_sharedkey_0123,algorithm=HMAC_SHA256"


def test_sharedkey_signed_requests_are_checked_with_the_signing_key() -> None:
    checker = SignatureChecker("auth-token", "https://hotline.example.com", "shared-secret")
    by_key = RequestValidator("shared-secret").compute_signature(URL, PARAMS, "HMAC_SHA256")
    by_token = RequestValidator("auth-token").compute_signature(URL, PARAMS)
    assert checker.valid(URL, PARAMS, by_key, RULE)
    assert not checker.valid(URL, PARAMS, by_token, RULE)  # a rule matched: not the token
    assert checker.valid(URL, PARAMS, by_token, None)  # no header: the Auth Token, SHA1
    assert not checker.valid(URL, PARAMS, by_key, None)
    sha1_key = RequestValidator("shared-secret").compute_signature(URL, PARAMS)
    assert checker.valid(URL, PARAMS, sha1_key, "key=k,algorithm=HMAC_SHA1")
    assert not checker.valid(URL, PARAMS, by_key, "key=k,algorithm=HMAC_MD5")  # no 500


def test_sharedkey_request_without_a_configured_key_is_refused_with_one_line(
    caplog: pytest.LogCaptureFixture,
) -> None:
    checker = SignatureChecker("auth-token", "https://hotline.example.com")
    by_key = RequestValidator("shared-secret").compute_signature(URL, PARAMS, "HMAC_SHA256")
    with caplog.at_level(logging.ERROR, "hotline.http"):
        assert not checker.valid(URL, PARAMS, by_key, RULE)
        assert not checker.valid(URL, PARAMS, by_key, RULE)
    assert caplog.text.count("TWILIO_SIGNING_KEY is not set") == 1


def test_signing_key_setting_is_a_secret() -> None:
    s = Settings.from_env({"TWILIO_SIGNING_KEY": "shared-secret"})
    assert s.twilio_signing_key == "shared-secret" and "shared-secret" in s.secrets()
    assert "shared-secret" not in repr(s) and s.describe()["twilio_signing_key"] == "set"


# ------------------------------------------------------------------ refused at settings load


@pytest.mark.parametrize("transport", ["multi", "single"])
def test_eleven_v3_is_refused_at_settings_load(transport: str) -> None:
    env = {"ELEVENLABS_MODEL_ID": "eleven_v3", "ELEVENLABS_TRANSPORT": transport}
    with pytest.raises(ConfigError, match="ELEVENLABS_MODEL_ID=eleven_v3 cannot be streamed") as e:
        Settings.from_env(env)
    assert "\n" not in str(e.value) and ("multi-context" in str(e.value))
    with pytest.raises(ConfigError, match="eleven_v3"):
        TTSConfig("wss://api.elevenlabs.io", "voice", "eleven_v3", "ulaw_8000")
    assert Settings.from_env(dict(env, ELEVENLABS_MODEL_ID="eleven_multilingual_v2"))


@pytest.mark.parametrize("model", ["eleven_flash_v2_5", "eleven_turbo_v2_5"])
def test_text_normalization_on_is_refused_for_flash_and_turbo_v2_5(model: str) -> None:
    env = {"ELEVENLABS_MODEL_ID": model, "ELEVENLABS_TEXT_NORMALIZATION": "on"}
    with pytest.raises(ConfigError, match=f"apply_text_normalization=on is refused.*{model}"):
        Settings.from_env(env)
    s = Settings.from_env(dict(env, ELEVENLABS_TEXT_NORMALIZATION="OFF"))
    assert s.elevenlabs_extra_query == {"apply_text_normalization": "off"}
    s = Settings.from_env(dict(env, ELEVENLABS_MODEL_ID="eleven_multilingual_v2"))
    assert s.elevenlabs_extra_query == {"apply_text_normalization": "on"}
    with pytest.raises(ConfigError, match="auto, on or off"):
        Settings.from_env({"ELEVENLABS_TEXT_NORMALIZATION": "yes"})
    config = TTSConfig("wss://api.elevenlabs.io", "voice", model, "ulaw_8000")
    assert config.extra_query is None
    with pytest.raises(ConfigError, match="apply_text_normalization=on"):
        replace(config, extra_query={"apply_text_normalization": "on"})


def test_http_public_url_is_refused_outside_insecure_dev() -> None:
    s = Settings.from_env({"TWILIO_AUTH_TOKEN": "t", "HOTLINE_PUBLIC_URL": "http://x.example"})
    with pytest.raises(ConfigError, match="ws://, which Twilio refuses"):
        s.check_servable()
    s.with_insecure_dev().check_servable()
    for local in ("http://127.0.0.1:8000", "http://localhost:8000", "http://[::1]:8000"):
        # Twilio cannot reach a loopback URL: that is a local test run, not a deployment.
        Settings(twilio_auth_token="t", public_url=local).check_servable()
    Settings.from_env(
        {"TWILIO_AUTH_TOKEN": "t", "HOTLINE_PUBLIC_URL": "https://x"}
    ).check_servable()
