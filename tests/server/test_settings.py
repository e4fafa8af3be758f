"""Settings: defaults, parsing, clear errors; secrets stay out of repr; everything derived from
the one declaration per variable holds for every variable."""

from __future__ import annotations

from pathlib import Path

import pytest

from hotline.core.turns import BargeInMode
from hotline.errors import ConfigError
from hotline.server.env import integer, number
from hotline.server.settings import (
    DEFAULT_VOICE_ID,
    ENV_VARS,
    BrainKind,
    ListenSettings,
    Settings,
    TTSSource,
    TTSTransport,
)
from hotline.server.stt_client import SttProvider


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
        ({"HOTLINE_VAD": "webrtc"}, "HOTLINE_VAD must be one of"),
        ({"HOTLINE_TURN_MODEL": "/nowhere/model.onnx"}, "no end-of-turn model"),
        ({"HOTLINE_PUBLIC_URL": "x.example.com"}, "HOTLINE_PUBLIC_URL"),
        ({"HOTLINE_PUBLIC_URL": "https://x.example.com/voice"}, "bare origin"),
        ({"ELEVENLABS_BASE_URL": "https://api.elevenlabs.io"}, "ELEVENLABS_BASE_URL"),
        ({"HOTLINE_TTS_TIMEOUT": "0"}, "HOTLINE_TTS_TIMEOUT"),
        ({"HOTLINE_HANDOFF_URL": "crm.example/handoff"}, "HOTLINE_HANDOFF_URL"),
        ({"HOTLINE_HANDOFF_NUMBER": "555-0142"}, "HOTLINE_HANDOFF_NUMBER must be an E.164"),
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


# ------------------------------------------------------- one declaration per variable

#: A valid value for every variable that needs a particular shape (the rest take any text).
SAMPLES = {
    "HOTLINE_END_CONFIDENCE": "0.7",
    "HOTLINE_HANDOFF_CONFIDENCE": "0.3",
    "HOTLINE_PUBLIC_URL": "https://x.example.com",
    "RAILWAY_PUBLIC_DOMAIN": "x.up.railway.app",
    "ELEVENLABS_OUTPUT_FORMAT": "ulaw_8000",
    "ELEVENLABS_BASE_URL": "ws://127.0.0.1:9",
    "ELEVENLABS_TRANSPORT": "single",
    "ELEVENLABS_TEXT_NORMALIZATION": "off",
    "HOTLINE_CACHE_WARMUP": "1",
    "HOTLINE_REDIS_URL": "redis://:s3cret-redis@10.0.0.5:6379/2",
    "HOTLINE_TRUSTED_PROXIES": "10.0.0.0/8",
    "HOTLINE_STT": "off",
    "HOTLINE_STT_URL": "wss://stt.example",
    "HOTLINE_BARGE_IN": "words",
    "HOTLINE_TURN_THRESHOLD": "0.7",
    "HOTLINE_TURN_MIN_CONFIDENCE": "0.9",
    "HOTLINE_TURN_SPECULATE": "0",
    "HOTLINE_RELAY_URL": "wss://app.example/relay?token=s3cret-relay",
    "HOTLINE_REDIS_HEARTBEAT": "1",
    "HOTLINE_REDIS_CALL_EXPIRY": "30",
    "HOTLINE_VAD_THRESHOLD_DBFS": "-40",
    "HOTLINE_VAD": "energy",
    "HOTLINE_TURN_MODEL": "auto",
    "HOTLINE_BRAIN": "llm",
    "HOTLINE_HANDOFF_URL": "https://crm.example/handoff?key=s3cret-handoff",
    "HOTLINE_HANDOFF_NUMBER": "+15551234567",
    "HOTLINE_DATABASE_URL": "postgresql://hotline:s3cret-db@10.0.0.7:5432/calls",
    "DATABASE_URL": "postgres://u:s3cret-railway-db@db.railway.internal:5432/railway",
    "HOTLINE_STORE_CALLER_NUMBERS": "1",
    "HOTLINE_STT_SEND_SILENCE": "1",
    "HOTLINE_NOTIFY_URL": "https://owner.example/hook?token=s3cret-hook",
    "HOTLINE_OWNER_NUMBER": "+15555550199",
    "HOTLINE_TWILIO_API_URL": "http://127.0.0.1:9",
}
#: What a variable needs beside it to be valid.
NEEDS = {
    "HOTLINE_BRAIN": {"HOTLINE_LLM_URL": "http://127.0.0.1:9/v1"},
    "HOTLINE_OWNER_NUMBER": {
        "TWILIO_ACCOUNT_SID": "AC" + "1" * 32,
        "TWILIO_AUTH_TOKEN": "t",
        "HOTLINE_SMS_FROM": "+15555550100",
    },
}
#: What the logs must never show of a secret, when it is not the whole value.
REDACTED = {
    "HOTLINE_REDIS_URL": "s3cret-redis",
    "HOTLINE_RELAY_URL": "token=s3cret-relay",
    "HOTLINE_HANDOFF_URL": "key=s3cret-handoff",
    "HOTLINE_DATABASE_URL": "s3cret-db",
    "DATABASE_URL": "s3cret-railway-db",
    "HOTLINE_NOTIFY_URL": "token=s3cret-hook",
}


def _sample(name: str) -> str:
    row = ENV_VARS[name]
    if name in SAMPLES:
        return SAMPLES[name]
    if row.parse is integer:
        return "7"
    if row.parse is number:
        return "1.5"
    return f"s3cret-{name.lower()}" if row.secret else f"v-{name.lower()}"


def test_every_variable_is_read() -> None:
    for name in ENV_VARS:
        needs = NEEDS.get(name, {})
        s = Settings.from_env({**needs, name: _sample(name)})
        assert s != Settings.from_env(needs), f"{name} changed nothing"


def test_every_secret_is_kept_out_of_logs() -> None:
    secret = [name for name, row in ENV_VARS.items() if row.secret]
    assert {"TWILIO_AUTH_TOKEN", "HOTLINE_REDIS_URL", "OPENAI_API_KEY"} <= set(secret)
    for name in secret:
        value = _sample(name)
        s = Settings.from_env({**NEEDS.get(name, {}), name: value})
        hidden = REDACTED.get(name, value)
        assert hidden in s.secrets(), name
        assert hidden not in repr(s) and hidden not in str(s.describe()), name
    assert "set" in str(Settings.from_env({"OPENAI_API_KEY": "k"}).describe()["listen"])


def test_blank_means_unset_for_every_variable() -> None:
    assert Settings.from_env({name: "  " for name in ENV_VARS}) == Settings.from_env({})
    assert Settings(twilio_auth_token=" ", redis_url="").secrets() == ()
    assert Settings(twilio_auth_token=" ").twilio_auth_token is None


def test_choices_are_enum_members_from_the_environment_and_from_code() -> None:
    s = Settings.from_env(
        {"ELEVENLABS_TRANSPORT": "Single", "HOTLINE_BRAIN": "script", "HOTLINE_BARGE_IN": "OFF"}
    )
    assert s.elevenlabs_transport is TTSTransport.SINGLE and s.voice is TTSSource.LOCAL
    assert s.listen.brain is BrainKind.SCRIPT and s.listen.barge_in is BargeInMode.OFF
    listen = ListenSettings(stt="off", barge_in="words")  # type: ignore[arg-type]
    assert listen.stt is SttProvider.OFF and listen.barge_in is BargeInMode.WORDS
    assert Settings(elevenlabs_transport="single").elevenlabs_transport is TTSTransport.SINGLE  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="HOTLINE_BRAIN must be one of script, llm, relay"):
        ListenSettings(brain="oracle")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="HOTLINE_STT must be one of"):
        Settings.from_env({"HOTLINE_STT": "whisper"})
    assert s.describe()["elevenlabs_transport"] == "single"  # plain values in the logs


def test_scribe_when_an_elevenlabs_key_is_set_in_code_too() -> None:
    assert Settings.from_env({"ELEVENLABS_API_KEY": "k"}).listen.stt is SttProvider.ELEVENLABS
    assert Settings(elevenlabs_api_key="k").listen.stt is SttProvider.ELEVENLABS
    assert Settings().listen.stt is SttProvider.LOCAL
    chosen = Settings(elevenlabs_api_key="k", listen=ListenSettings(stt=SttProvider.LOCAL))
    assert chosen.listen.stt is SttProvider.LOCAL
    assert Settings.from_env({"ELEVENLABS_API_KEY": "k", "HOTLINE_STT": "off"}).listen.stt is (
        SttProvider.OFF
    )


def test_drain_timeout_is_declared_like_the_rest() -> None:
    assert "HOTLINE_DRAIN_TIMEOUT" in ENV_VARS
    assert Settings.from_env({"HOTLINE_DRAIN_TIMEOUT": "12"}).drain_timeout == 12.0
    for bad in ("soon", "-1", "4000"):
        with pytest.raises(ConfigError, match="HOTLINE_DRAIN_TIMEOUT"):
            Settings.from_env({"HOTLINE_DRAIN_TIMEOUT": bad})


def test_checks_hold_for_settings_built_in_code() -> None:
    for kwargs, words in (
        ({"port": 0}, "PORT"),
        ({"tts_timeout": 0.0}, "HOTLINE_TTS_TIMEOUT"),
        ({"public_url": "x.example.com"}, "HOTLINE_PUBLIC_URL"),
        ({"trusted_proxies": ("proxy.local",)}, "HOTLINE_TRUSTED_PROXIES"),
    ):
        with pytest.raises(ConfigError, match=words):
            Settings(**kwargs)  # type: ignore[arg-type]
    assert Settings(public_url="https://x.example.com/").public_url == "https://x.example.com"


def test_turn_min_confidence_is_the_ears_unless_the_script_or_the_environment_says() -> None:
    """The Whisper ear's ratings are hotline's calibration: 0.8 by default with it, off with
    any other recogniser; the script's [turns] and then HOTLINE_TURN_MIN_CONFIDENCE override."""
    import dataclasses

    from hotline.core.script import default_script
    from hotline.ear.process import EarProcess
    from hotline.server.listen import turn_config

    script = default_script()
    listen = Settings.from_env({}).listen
    whisper, grammar = EarProcess.min_confidence("whisper"), EarProcess.min_confidence("grammar")
    assert (whisper, grammar) == (0.8, 0.0)
    assert turn_config(listen, script, judge=False, min_confidence=whisper).min_confidence == 0.8
    assert turn_config(listen, script, judge=False).min_confidence == 0.0
    scripted = dataclasses.replace(script, turns={**script.turns, "min_confidence": 0.6})
    assert turn_config(listen, scripted, judge=False, min_confidence=0.8).min_confidence == 0.6
    env = Settings.from_env({"HOTLINE_TURN_MIN_CONFIDENCE": "0"}).listen
    assert turn_config(env, scripted, judge=False, min_confidence=0.8).min_confidence == 0.0
    with pytest.raises(ConfigError, match="HOTLINE_TURN_MIN_CONFIDENCE"):
        Settings.from_env({"HOTLINE_TURN_MIN_CONFIDENCE": "1.5"})
