"""The FastAPI application: ``create_app(settings)``."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import secrets
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

from fastapi import FastAPI

from hotline import __version__
from hotline.core.elevenlabs import LANGUAGE_MODELS, language_code, takes_language
from hotline.core.script import CallScript, default_script, load_script
from hotline.core.transcript import Transcripts
from hotline.core.vad import VadConfig
from hotline.errors import ConfigError
from hotline.server import logs
from hotline.server.console.views import install as install_console
from hotline.server.elevenlabs_client import TTSConfig
from hotline.server.handoff import HandoffDesk
from hotline.server.hub import Hub
from hotline.server.logs import RingHandler
from hotline.server.metrics import Metrics
from hotline.server.phrases import LocalPhraseStore, PhraseStore
from hotline.server.recording import open_records
from hotline.server.redis_backend import Cluster, RedisPhraseStore
from hotline.server.registry import CallRegistry
from hotline.server.routes import router
from hotline.server.security import (
    AdminAuth,
    CallTokens,
    FailureLimiter,
    SignatureChecker,
    parse_trusted_proxies,
)
from hotline.server.settings import BrainKind, Settings
from hotline.server.speech_service import SpeechService, TTSFactory
from hotline.server.stt_client import SttProvider
from hotline.turn.silero import SileroPool, prepare, silero_available

__all__ = ["create_app", "load_call_script"]

log = logging.getLogger("hotline.app")


def load_call_script(path: str | None) -> CallScript:
    """The script at ``path`` (TOML), or the built-in one.

    Raises:
        ConfigError: unreadable or invalid script.
    """
    if path is None:
        return default_script()
    try:
        text = Path(path).read_text("utf-8")
    except OSError as exc:
        raise ConfigError(f"HOTLINE_SCRIPT={path!r}: cannot read it ({exc.strerror})") from None
    return load_script(text, source=path)


def _tts_query(settings: Settings, script: CallScript) -> dict[str, str] | None:
    """The TTS URL's extra query: the settings', and for a relay app's call script with a
    ``[relay]`` ttsLanguage other than English, ElevenLabs' ``language_code`` (its primary
    subtag: the flash and turbo v2.5 models enforce it, and refuse nothing else; the local
    voice picks that eSpeak NG voice). A model that takes no ``language_code`` is not sent
    one (ElevenLabs would refuse every utterance): said once at start-up."""
    query = dict(settings.elevenlabs_extra_query or {})
    code = language_code(script.relay.tts_language)
    if settings.listen.brain is BrainKind.RELAY and code not in (None, "en"):
        if takes_language(settings.elevenlabs_model_id):
            query["language_code"] = code
        else:
            log.warning(
                "ELEVENLABS_MODEL_ID=%s takes no language_code (only %s do): the [relay] "
                "ttsLanguage %s is not enforced",
                settings.elevenlabs_model_id,
                " and ".join(sorted(LANGUAGE_MODELS)),
                script.relay.tts_language,
            )
    return query or None


def _scale_out(
    settings: Settings, metrics: Metrics, tts_factory: TTSFactory | None
) -> tuple[Cluster | None, SpeechService]:
    """The Redis link (HOTLINE_REDIS_URL) and the speech service (cache, TTS transport)."""
    cluster: Cluster | None = None
    if settings.redis_url:
        cluster = Cluster(
            settings.redis_url,
            heartbeat=settings.redis_heartbeat,
            expiry=settings.redis_call_expiry,
        )
    store: PhraseStore | None = None
    if settings.cache_bytes > 0:
        store = (
            RedisPhraseStore(cluster, settings.cache_bytes)
            if cluster is not None
            else LocalPhraseStore(settings.cache_bytes)
        )
    speech = SpeechService(
        transport=settings.elevenlabs_transport,
        store=store,
        registry=metrics.registry,
        tts_factory=tts_factory,
    )
    return cluster, speech


def _turn_judge(setting: str) -> Callable[[bytes], float] | None:
    """The end-of-turn model ``HOTLINE_TURN_MODEL`` names, loaded once for the process (its
    queries run in the listener's worker thread), or None."""
    from hotline.turn.smart_turn import load

    model = load(setting)
    if model is None:
        if setting == "auto":
            log.warning(
                "HOTLINE_TURN_MODEL=auto: Smart Turn is not installed (hotline[turn] and "
                "pipecat-ai: make); turns end on the words and the silence"
            )
        return None
    log.info("end-of-turn model: %s", model.path.name)
    return model.complete_probability


def _uses_silero(setting: str) -> bool:
    return setting != "energy" and silero_available()


def _detector_desc(setting: str) -> str:
    """What ``HOTLINE_VAD`` runs, for the start-up log (``auto`` without Silero says so)."""
    if not _uses_silero(setting):
        if setting == "auto":
            return "energy (Silero VAD not installed: pip install 'hotline[vad]')"
        return "energy"
    return "Silero VAD behind the energy gate"


def create_app(
    settings: Settings | None = None, *, tts_factory: TTSFactory | None = None
) -> FastAPI:
    """Build the app. The lifespan starts the embedded local voice when no ElevenLabs key is
    set and the local ear (its own process) when ``HOTLINE_STT=local``; on shutdown it ends
    every live call, then stops the ear and the voice.

    ``tts_factory`` builds each call's TTS in place of the speech service's own (which it is
    handed): what tests and benchmarks use to point utterances at a fault or open sockets
    elsewhere; the server leaves it None.

    Raises:
        ConfigError: invalid settings or script; no ``TWILIO_AUTH_TOKEN`` or public URL
            outside insecure-dev.
    """
    if settings is None:
        settings = Settings.from_env()
    settings.check_servable()  # no unsigned Twilio traffic outside insecure-dev
    logs.install_redaction()
    for secret in settings.secrets():
        logs.register_secret(secret)
    script = load_call_script(settings.script_path)
    metrics = Metrics()
    cluster, speech = _scale_out(settings, metrics, tts_factory)
    hub = Hub(
        settings=settings,
        script=script,
        metrics=metrics,
        signatures=SignatureChecker(
            settings.twilio_auth_token, settings.public_url, settings.twilio_signing_key
        ),
        admin=AdminAuth(settings.admin_token),
        tokens=CallTokens(settings.call_token_secret),
        limiter=FailureLimiter(
            trusted_proxies=parse_trusted_proxies(",".join(settings.trusted_proxies))
        ),
        ring=RingHandler(),
        vad_config=VadConfig(
            threshold_dbfs=settings.vad_threshold_dbfs,
            min_speech_ms=settings.vad_min_speech_ms,
            hang_ms=settings.vad_hang_ms,
        ),
        registry=CallRegistry(metrics, cluster),
        speech=speech,
        tts_source=settings.voice,
        cluster=cluster,
        transcripts=Transcripts(settings.listen.transcripts_kept),
        handoff=HandoffDesk(
            settings.handoff_url, settings.handoff_number, settings.twilio_auth_token, script
        ),
        records=open_records(settings),
        turn_judge=_turn_judge(settings.listen.turn_model),
    )

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        hotline_logger = logging.getLogger("hotline")
        if hotline_logger.level == logging.NOTSET or hotline_logger.level > logging.INFO:
            hotline_logger.setLevel(logging.INFO)
        hotline_logger.addHandler(hub.ring)
        voice: Any = None
        ear: Any = None
        warmup: asyncio.Task[int] | None = None
        silero_pool: SileroPool | None = None
        try:
            tts_kwargs: dict[str, Any] = {
                "voice_id": settings.elevenlabs_voice_id,
                "model_id": settings.elevenlabs_model_id,
                "output_format": settings.elevenlabs_output_format,
                "timeout": settings.tts_timeout,
                "voice_settings": script.voice_settings,
                "extra_query": _tts_query(settings, script),
            }
            if settings.elevenlabs_api_key:
                hub.tts = TTSConfig(
                    base_url=settings.elevenlabs_base_url,
                    api_key=settings.elevenlabs_api_key,
                    **tts_kwargs,
                )
                log.info(
                    "voice: ElevenLabs (%s, model %s, %s)",
                    settings.elevenlabs_base_url,
                    settings.elevenlabs_model_id,
                    settings.elevenlabs_output_format,
                )
            else:
                from hotline.tts_standin.config import StandInConfig
                from hotline.tts_standin.server import TTSStandIn

                key = secrets.token_urlsafe(24)
                logs.register_secret(key)
                voice = TTSStandIn(
                    StandInConfig(
                        api_key=key,
                        first_chunk_delay=settings.local_voice_first_chunk_delay,
                        connect_delay=settings.local_voice_connect_delay,
                    )
                )
                await voice.start("127.0.0.1", 0)
                hub.tts = TTSConfig(base_url=voice.url, api_key=key, **tts_kwargs)
                log.info(
                    "voice: local (eSpeak NG, ElevenLabs protocol on %s; no ELEVENLABS_API_KEY), %s",
                    voice.url,
                    settings.elevenlabs_output_format,
                )
            app.state.voice = voice
            if settings.listen.stt is SttProvider.LOCAL:
                from hotline.ear.process import EarProcess

                engine, model = EarProcess.choose(
                    settings.listen.ear_model,
                    open_vocabulary=settings.listen.brain is not BrainKind.SCRIPT,
                )
                # its own process: decoding holds the GIL (pocketsphinx) or the CPU (Whisper)
                # The grammar ear rates only what could end a call (the script brain reads a
                # turn's confidence for its goodbye and handoff intents alone): a final's
                # rating is two more passes over its audio, on the turn's critical path.
                rated = tuple(f"--rate-phrase={p}" for p in script.ending_phrases() if p.strip())
                ear = await EarProcess.start(
                    60.0,
                    engine=engine,
                    model=model,
                    extra_args=rated if engine == "grammar" else (),
                )
                hub.stt_url = ear.url
                hub.ear_min_confidence = EarProcess.min_confidence(engine)
                log.info(
                    "speech-to-text: the local ear (%s) on %s",
                    "pocketsphinx on the script's phrases"
                    if engine == "grammar"
                    else f"Whisper {model or 'tiny.en'}",
                    ear.url,
                )
                if engine == "grammar" and settings.listen.brain is not BrainKind.SCRIPT:
                    log.warning(
                        "the local grammar ear hears only the script's phrases: the %s brain "
                        "will get them, not what callers say (pip install 'hotline[whisper]' "
                        "for the Whisper ear)",
                        settings.listen.brain.value,
                    )
            if hub.cluster is not None:
                await hub.cluster.start(hub.registry.infos, hub.registry.command)
            if hub.records is not None:
                await hub.records.start()  # migrations, under the database's lock
            if settings.cache_warmup and hub.tts is not None:
                warmup = asyncio.create_task(
                    hub.speech.warm_up(hub.tts, script), name="hotline-cache-warmup"
                )
            log.info(
                "TTS transport: %s; phrase cache: %s; replicas: %s",
                settings.elevenlabs_transport,
                f"{settings.cache_bytes} bytes" if settings.cache_bytes else "off",
                "Redis" if hub.cluster is not None else "this one alone",
            )
            log.info("caller speech detector: %s", _detector_desc(settings.vad))
            listen = settings.listen
            if listen.brain is BrainKind.LLM and listen.llm_url:
                # one client for every call (its connections outlive each call), and openai
                # imported now (0.3-0.5 s), not on the event loop under the first call
                from hotline.server.brain_llm import make_client

                hub.llm_client = make_client(
                    listen.llm_url, listen.llm_api_key or "", timeout=script.llm.total_timeout_s
                )
            if _uses_silero(settings.vad):
                silero_pool = await asyncio.to_thread(prepare)  # not on the first caller's time
            if hub.handoff is not None:
                log.info("%s", hub.handoff.describe())
            if not hub.signatures.enforced:
                log.warning(
                    "INSECURE DEV MODE: no TWILIO_AUTH_TOKEN, Twilio signatures are NOT checked"
                )
            # Everything built at start-up (modules, the app, the script, the phrase cache's
            # tables) lives as long as the process: out of the collector's sight, a call's
            # garbage collections only walk what calls made.
            gc.freeze()
            yield
        finally:
            hub.registry.hangup_all()  # handed over: their <Connect action> resumes them
            await hub.registry.drained(5.0)
            if hub.records is not None:  # the ended calls' records: written, or spooled
                await hub.records.aclose(10.0)
            if warmup is not None:
                warmup.cancel()
                await asyncio.gather(warmup, return_exceptions=True)
            await hub.speech.aclose()
            if hub.cluster is not None:
                await hub.cluster.aclose()
            if ear is not None:
                await ear.stop()
            if voice is not None:
                await voice.stop()
            if hub.llm_client is not None:
                await hub.llm_client.close()
                hub.llm_client = None
            if silero_pool is not None:  # an instance still being made, before the exit
                await asyncio.to_thread(silero_pool.join, 10.0)
            hub.tts = None
            hotline_logger.removeHandler(hub.ring)

    app = FastAPI(
        title="hotline",
        version=__version__,
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )
    app.state.hub = hub
    app.state.voice = None
    app.include_router(router)
    install_console(app, hub)
    return app
