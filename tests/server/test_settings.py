"""Settings.from_env: defaults, parsing, clear errors; secrets stay out of repr."""

from __future__ import annotations

from pathlib import Path

import pytest

from hotline.errors import ConfigError
from hotline.server.settings import DEFAULT_VOICE_ID, Settings


def test_defaults() -> None:
    s = Settings.from_env({})
    assert s.elevenlabs_model_id == "eleven_flash_v2_5"
    assert s.elevenlabs_output_format == "mp3_44100_128"
    assert s.elevenlabs_voice_id == DEFAULT_VOICE_ID
    assert s.elevenlabs_base_url == "wss://api.elevenlabs.io"
    assert s.public_url is None and s.twilio_auth_token is None and s.port == 8000
    assert s.voice == "local"
    assert not s.insecure_dev


def test_everything_from_env() -> None:
    s = Settings.from_env(
        {
            "TWILIO_AUTH_TOKEN": "tok",
            "HOTLINE_PUBLIC_URL": "https://x.example.com/",
            "HOTLINE_ADMIN_TOKEN": "adm",
            "ELEVENLABS_API_KEY": "sk_123",
            "ELEVENLABS_VOICE_ID": "v1",
            "ELEVENLABS_MODEL_ID": "eleven_turbo_v2_5",
            "ELEVENLABS_OUTPUT_FORMAT": "ulaw_8000",
            "ELEVENLABS_BASE_URL": "ws://127.0.0.1:9",
            "HOTLINE_SCRIPT": "/tmp/s.toml",
            "PORT": "9000",
            "HOTLINE_VAD_THRESHOLD_DBFS": "-40",
            "HOTLINE_VAD_MIN_SPEECH_MS": "80",
            "HOTLINE_VAD_HANG_MS": "200",
            "HOTLINE_LOCAL_VOICE_FIRST_CHUNK_DELAY": "0.1",
            "HOTLINE_TTS_TIMEOUT": "3",
        }
    )
    assert s.public_url == "https://x.example.com"
    assert s.voice == "elevenlabs"
    assert (s.port, s.vad_threshold_dbfs, s.vad_min_speech_ms, s.vad_hang_ms) == (
        9000,
        -40,
        80,
        200,
    )
    assert s.elevenlabs_output_format == "ulaw_8000" and s.tts_timeout == 3.0
    text = repr(s)
    for secret in ("tok", "adm", "sk_123"):
        assert f"'{secret}'" not in text
    assert s.describe()["twilio_auth_token"] == "set"
    assert set(s.secrets()) == {"tok", "adm", "sk_123"}
    s.check_servable()


def test_railway_domain_gives_the_public_url() -> None:
    s = Settings.from_env({"RAILWAY_PUBLIC_DOMAIN": "hotline.up.railway.app"})
    assert s.public_url == "https://hotline.up.railway.app"
    s = Settings.from_env(
        {"RAILWAY_PUBLIC_DOMAIN": "a.up.railway.app", "HOTLINE_PUBLIC_URL": "https://b.example"}
    )
    assert s.public_url == "https://b.example"


@pytest.mark.parametrize(
    ("env", "words"),
    [
        ({"ELEVENLABS_OUTPUT_FORMAT": "opus_48000_64"}, "ELEVENLABS_OUTPUT_FORMAT"),
        ({"PORT": "eighty"}, "PORT must be an integer"),
        ({"PORT": "70000"}, "PORT"),
        ({"HOTLINE_VAD_THRESHOLD_DBFS": "loud"}, "HOTLINE_VAD_THRESHOLD_DBFS"),
        ({"HOTLINE_VAD_THRESHOLD_DBFS": "nan"}, "finite"),
        ({"HOTLINE_VAD_THRESHOLD_DBFS": "10"}, "HOTLINE_VAD_THRESHOLD_DBFS"),
        ({"HOTLINE_PUBLIC_URL": "x.example.com"}, "HOTLINE_PUBLIC_URL"),
        ({"HOTLINE_PUBLIC_URL": "https://x.example.com/voice"}, "bare origin"),
        ({"ELEVENLABS_BASE_URL": "https://api.elevenlabs.io"}, "ELEVENLABS_BASE_URL"),
        ({"HOTLINE_TTS_TIMEOUT": "0"}, "HOTLINE_TTS_TIMEOUT"),
    ],
)
def test_bad_values_name_the_variable(env: dict[str, str], words: str) -> None:
    with pytest.raises(ConfigError, match=words):
        Settings.from_env(env)


def test_servable_needs_token_and_public_url_unless_insecure_dev() -> None:
    with pytest.raises(ConfigError, match="TWILIO_AUTH_TOKEN"):
        Settings.from_env({}).check_servable()
    with pytest.raises(ConfigError, match="HOTLINE_PUBLIC_URL"):
        Settings.from_env({"TWILIO_AUTH_TOKEN": "t"}).check_servable()
    Settings.from_env({}).with_insecure_dev().check_servable()


def test_blank_secrets_are_unset() -> None:
    s = Settings.from_env({"TWILIO_AUTH_TOKEN": "  ", "ELEVENLABS_API_KEY": ""})
    assert s.twilio_auth_token is None and s.voice == "local"


def test_create_app_refuses_unsigned_traffic_outside_insecure_dev() -> None:
    from hotline.server.app import create_app

    with pytest.raises(ConfigError, match="TWILIO_AUTH_TOKEN"):
        create_app(Settings())
    with pytest.raises(ConfigError, match="HOTLINE_PUBLIC_URL"):
        create_app(Settings(twilio_auth_token="t"))
    create_app(Settings(insecure_dev=True))


def test_bad_script_is_a_config_error(tmp_path: Path) -> None:
    from hotline.server.app import create_app

    bad = tmp_path / "s.toml"
    bad.write_text('greeting = "hi"\n')
    with pytest.raises(ConfigError, match="goodbye"):
        create_app(Settings(insecure_dev=True, script_path=str(bad)))
    with pytest.raises(ConfigError, match="cannot read"):
        create_app(Settings(insecure_dev=True, script_path=str(tmp_path / "missing.toml")))
