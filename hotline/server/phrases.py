"""The phrase store: finished utterances' µ-law by phrase key, and the cache warm-up.

A hit hands the stored µ-law to :meth:`hotline.core.call.Call.play_recorded` (the caller hears
exactly the first rendering). A miss is synthesised; the Call records it and reports a clean
one (``isFinal``, no error, no undecodable audio, not cut) as
:class:`~hotline.core.actions.UtteranceRecorded`, which is stored once the synthesis returned
(:class:`hotline.server.speech.CallSpeech`).
"""

from __future__ import annotations

import logging
from typing import Protocol

from hotline.core.cache import CacheStats, PhraseCache, phrase_key
from hotline.core.events import TTSAudio, TTSEvent, TTSFinal
from hotline.core.render import Renderer
from hotline.core.script import CallScript
from hotline.errors import CodecError, ElevenLabsProtocolError
from hotline.server.elevenlabs_client import TTSConfig, TTSFailed, synthesize

__all__ = ["MAX_PHRASE_BYTES", "LocalPhraseStore", "PhraseStore", "key_for", "warm_up"]

log = logging.getLogger("hotline.tts")

#: A single utterance longer than this (µ-law, 8 kB/s) is never recorded: 2 minutes.
MAX_PHRASE_BYTES = 120 * 8000


class PhraseStore(Protocol):
    """Where finished phrases live (in-process, or Redis behind an in-process layer)."""

    stats: CacheStats

    async def get(self, key: str) -> bytes | None: ...

    async def put(self, key: str, ulaw: bytes) -> None: ...


class LocalPhraseStore:
    """The in-process store: a :class:`PhraseCache`."""

    def __init__(self, max_bytes: int) -> None:
        self.cache = PhraseCache(max_bytes)
        self.stats = self.cache.stats

    async def get(self, key: str) -> bytes | None:
        return self.cache.get(key)

    async def put(self, key: str, ulaw: bytes) -> None:
        self.cache.put(key, ulaw)


def key_for(config: TTSConfig, text: str) -> str | None:
    """The phrase key of ``text`` spoken with ``config``'s voice, in its language (None: not
    cacheable)."""
    try:
        return phrase_key(
            voice_id=config.voice_id,
            model_id=config.model_id,
            output_format=config.output_format,
            voice_settings=config.voice_settings,
            text=text,
            language_code=config.language_code,
        )
    except ValueError:
        return None


async def warm_up(store: PhraseStore, config: TTSConfig, script: CallScript) -> int:
    """Synthesise the script's fixed lines into ``store`` (``HOTLINE_CACHE_WARMUP=1``).

    Returns:
        How many lines were stored (already cached lines count too).
    """
    lines = [script.greeting, script.goodbye, script.invalid_digit, script.filler]
    lines += [entry.say for entry in script.menu.values()]
    stored = 0
    for text in dict.fromkeys(lines):
        key = key_for(config, text)
        if key is None:
            continue
        if await store.get(key) is not None:
            stored += 1
            continue
        try:
            recording = await _record_line(config, text)
        except (TTSFailed, CodecError) as exc:
            log.warning("cache warm-up: a line failed (%s); skipped", exc)
            continue
        if recording is not None:
            await store.put(key, recording)
            stored += 1
    log.info("cache warm-up: %d of %d fixed lines cached", stored, len(set(lines)))
    return stored


async def _record_line(config: TTSConfig, text: str) -> bytes | None:
    """Synthesise ``text`` and return its µ-law as a call records it: rendered by the core's
    :class:`~hotline.core.render.Renderer` under the same clean-recording rule (None: not clean).

    Raises:
        TTSFailed: as :func:`synthesize` does.
        CodecError: the output format is not supported.
    """
    render = Renderer(config.output_format, record_max=MAX_PHRASE_BYTES)
    render.begin()
    failure: str | None = "stream ended without isFinal"

    async def feed(event: TTSEvent) -> bool:
        nonlocal failure
        if isinstance(event, TTSFinal):
            failure = None
        elif isinstance(event, TTSAudio):
            return render.feed(event.data) is not None  # the converter failed: not clean
        return True

    await synthesize(config, text, feed, _ignore_bad)
    render.finish(failure)
    if render.failure is not None:
        log.warning("cache warm-up: a line was not rendered cleanly (%s); skipped", render.failure)
    return render.recording


def _ignore_bad(exc: ElevenLabsProtocolError) -> None:
    log.warning("cache warm-up: dropped a malformed TTS message: %s", exc)
