"""The scale-out settings: environment defaults, parsing, clear errors, no secret in logs."""

from __future__ import annotations

import pytest

from hotline.errors import ConfigError
from hotline.server.settings import ENV_VARS, Settings


def test_defaults_are_multi_and_a_32_mib_cache() -> None:
    s = Settings.from_env({})
    assert s.elevenlabs_transport == "multi" and s.cache_bytes == 32 * 2**20
    assert not s.cache_warmup and s.redis_url is None
    assert (s.redis_heartbeat, s.redis_call_expiry) == (5.0, 15.0)
    assert s.local_voice_connect_delay == 0.0
    built = Settings()  # the same defaults in code as from the environment
    assert built.elevenlabs_transport == "multi" and built.cache_bytes == 32 * 2**20
    for name in ("ELEVENLABS_TRANSPORT", "HOTLINE_CACHE_BYTES", "HOTLINE_REDIS_URL"):
        assert name in ENV_VARS


def test_everything_from_env() -> None:
    s = Settings.from_env(
        {
            "ELEVENLABS_TRANSPORT": "Single",
            "HOTLINE_CACHE_BYTES": "1024",
            "HOTLINE_CACHE_WARMUP": "1",
            "HOTLINE_REDIS_URL": "redis://:s3cret-pass@10.0.0.5:6379/2",
            "HOTLINE_REDIS_HEARTBEAT": "0.5",
            "HOTLINE_REDIS_CALL_EXPIRY": "2",
            "HOTLINE_LOCAL_VOICE_CONNECT_DELAY": "0.3",
        }
    )
    assert s.elevenlabs_transport == "single" and s.cache_bytes == 1024 and s.cache_warmup
    assert s.local_voice_connect_delay == 0.3
    assert (s.redis_heartbeat, s.redis_call_expiry) == (0.5, 2.0)
    assert "s3cret-pass" not in repr(s) and s.describe()["redis_url"] == "set"
    assert "s3cret-pass" in s.secrets()  # registered for log redaction


@pytest.mark.parametrize(
    ("env", "needle"),
    [
        ({"ELEVENLABS_TRANSPORT": "carrier-pigeon"}, "ELEVENLABS_TRANSPORT"),
        ({"HOTLINE_CACHE_BYTES": "lots"}, "HOTLINE_CACHE_BYTES"),
        ({"HOTLINE_CACHE_BYTES": "-1"}, "HOTLINE_CACHE_BYTES"),
        ({"HOTLINE_CACHE_WARMUP": "maybe"}, "HOTLINE_CACHE_WARMUP"),
        ({"HOTLINE_REDIS_URL": "http://x"}, "HOTLINE_REDIS_URL"),
        ({"HOTLINE_REDIS_HEARTBEAT": "20"}, "HOTLINE_REDIS_HEARTBEAT"),
        ({"HOTLINE_LOCAL_VOICE_CONNECT_DELAY": "nan"}, "HOTLINE_LOCAL_VOICE_CONNECT_DELAY"),
    ],
)
def test_bad_values_name_the_variable(env: dict[str, str], needle: str) -> None:
    with pytest.raises(ConfigError, match=needle):
        Settings.from_env(env)
