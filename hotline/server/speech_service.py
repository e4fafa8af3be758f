"""The app's speech service: the phrase store, each call's TTS, the first-audio records.

Each media stream gets its call's TTS where its upgrade lands (:meth:`SpeechService.stream_socket`):
with ``ELEVENLABS_TRANSPORT=multi`` (the default) a ``multi-stream-input`` socket that starts
connecting at once, so its handshake overlaps the WebSocket accept and Twilio's
``connected``/``start``; with ``single``, a ``stream-input`` socket per utterance. The route hands
it to its :class:`~hotline.server.session.CallSession`, whose ``start`` makes it the call's
(:meth:`SpeechService.for_call`); a stream that never gets a valid ``start`` closes it unused.

A call whose speech switches language (ElevenLabs takes ``language_code`` per connection) gets
a TTS opened in that language (:meth:`SpeechService.language_tts`): on ``multi`` a socket
borrowed from the service's :class:`~hotline.server.tts_multi.SocketPool` (reused across calls
in the same language) and given back when the call ends; on ``single`` the per-utterance
sockets opened with that ``language_code``. A model that takes no ``language_code`` speaks on
in the call's voice, with a warning once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Histogram

from hotline.core.elevenlabs import LANGUAGE_MODELS, takes_language
from hotline.core.script import CallScript
from hotline.server import phrases
from hotline.server.elevenlabs_client import SingleTTS, TTSConfig
from hotline.server.phrases import MAX_PHRASE_BYTES, PhraseStore
from hotline.server.settings import TTSTransport
from hotline.server.speech import CallSpeech, CallTTS, SpeechPath
from hotline.server.speech_metrics import SpeechCollector
from hotline.server.tts_multi import MultiStats, MultiTTS, SocketPool

__all__ = [
    "SpeechService",
    "TTSFactory",
    "UtteranceRecord",
]

log = logging.getLogger("hotline.tts")

_FIRST_FRAME = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.0)
#: A call's TTS before a call has taken it (its logs' label).
_UNCLAIMED = "(stream)"


#: Builds a call's TTS for a target, given the service's own builder
#: (:meth:`SpeechService.new_tts`).
TTSFactory = Callable[[TTSConfig, Callable[[TTSConfig], CallTTS]], CallTTS]


@dataclass(frozen=True)
class UtteranceRecord:
    """One utterance's path and time to first audio (text handed to TTS -> first frame sent)."""

    call_sid: str
    utterance_id: int
    path: SpeechPath
    time_to_first_audio: float


class SpeechService:
    """Per app: phrase store, the calls' TTS, metrics.

    Args:
        transport: ``"multi"`` (a pre-connected ``multi-stream-input`` socket per call) or
            ``"single"`` (a ``stream-input`` socket per utterance).
        store: the phrase store, or None for no cache.
        registry: where the cache and socket metrics are registered.
        inactivity_timeout: the multi socket's ``inactivity_timeout`` (keep-alives go out
            well within it).
        tts_factory: builds each call's TTS instead of :meth:`new_tts` (which it is given).

    Raises:
        ValueError: an unknown transport.
    """

    def __init__(
        self,
        *,
        transport: TTSTransport | str = TTSTransport.MULTI,
        store: PhraseStore | None = None,
        registry: CollectorRegistry | None = None,
        inactivity_timeout: int = 20,
        tts_factory: TTSFactory | None = None,
    ) -> None:
        try:
            self.transport = TTSTransport(transport)
        except ValueError:
            names = tuple(t.value for t in TTSTransport)
            raise ValueError(f"transport must be one of {names}, got {transport!r}") from None
        self.store = store
        self.inactivity_timeout = inactivity_timeout
        self.records: deque[UtteranceRecord] = deque(maxlen=1000)
        self.multi_totals = MultiStats()
        self.warmed = asyncio.Event()
        self._factory = tts_factory
        self._sockets: set[MultiTTS] = set()
        self._claimed: set[CallTTS] = set()  # opened at an upgrade, taken by its call's start
        #: Sockets in other languages than their calls' own, lent to one call at a time.
        self.pool = SocketPool(self._build)
        self._warned_language = False
        #: TTS sockets opened at a media-stream upgrade and closed unused (no valid start).
        self.stream_sockets_unused = 0
        self.first_frame = Histogram(
            "hotline_first_audio_by_path_seconds",
            "Text handed to TTS -> first media frame sent, by path (cache, multi, single)",
            ["path"],
            buckets=_FIRST_FRAME,
            registry=registry,
        )
        if registry is not None:
            registry.register(SpeechCollector(self))

    # ------------------------------------------------------------------ per call

    @property
    def record_max_bytes(self) -> int:
        """What a call should record of each utterance (0 without a phrase store)."""
        return MAX_PHRASE_BYTES if self.store is not None else 0

    def new_tts(self, config: TTSConfig) -> CallTTS:
        """A call's TTS on this service's transport (a multi socket counts in the metrics)."""
        if self.transport is TTSTransport.SINGLE:
            return SingleTTS(config, label=_UNCLAIMED)
        sock = MultiTTS(config, inactivity_timeout=self.inactivity_timeout, label=_UNCLAIMED)
        sock.on_closed = self._socket_closed
        self._sockets.add(sock)
        return sock

    @contextlib.asynccontextmanager
    async def stream_socket(self, config: TTSConfig | None) -> AsyncIterator[CallTTS | None]:
        """Around one media stream: its call's TTS, connecting from now on (None: no TTS
        configured).

        Its handshake overlaps the WebSocket accept and Twilio's ``connected``/``start``; the
        session handed it makes it the call's at ``start`` (:meth:`for_call`) and closes it
        with the call. A stream that never gets a valid ``start`` closes it on the way out,
        so no socket outlives its stream.
        """
        if config is None:
            yield None
            return
        tts = self._build(config)
        tts.start()
        try:
            yield tts
        finally:
            if tts in self._claimed:
                self._claimed.discard(tts)
            elif self.transport is TTSTransport.MULTI:
                self.stream_sockets_unused += 1
            await tts.aclose()  # a call that took it has closed it already

    def _build(self, config: TTSConfig) -> CallTTS:
        return self._factory(config, self.new_tts) if self._factory else self.new_tts(config)

    def for_call(
        self, call_sid: str, tts: CallTTS | None, *, language: str | None = None
    ) -> CallSpeech:
        """Call ``call_sid`` started on the stream that opened ``tts``: its speech path.
        ``language``: the BCP-47 tag ``tts`` speaks (a relay app's ``[relay]`` ttsLanguage;
        None: the voice's default)."""
        if tts is not None:
            self._claimed.add(tts)
            tts.label = call_sid
        return CallSpeech(
            call_sid,
            tts,
            store=self.store,
            path=SpeechPath(self.transport.value),
            first_frame_sent=self.first_frame_sent,
            language=language,
            languages=self,
        )

    def language_tts(self, config: TTSConfig, code: str | None, label: str) -> CallTTS | None:
        """A TTS like ``config``'s held to ``language_code`` ``code`` (None: without one), for
        call ``label``: on ``multi`` borrowed from :attr:`pool` (give it back with
        :meth:`language_done`), on ``single`` a new per-utterance one. None when the model
        takes no ``language_code`` (ElevenLabs would refuse every utterance): the call's voice
        speaks on, and the first time this is logged."""
        if code is not None and not takes_language(config.model_id):
            if not self._warned_language:
                self._warned_language = True
                log.warning(
                    "ELEVENLABS_MODEL_ID=%s takes no language_code (only %s do): speech in "
                    "%s goes on in the call's voice, unenforced",
                    config.model_id,
                    " and ".join(sorted(LANGUAGE_MODELS)),
                    code,
                )
            return None
        target = config.in_language(code)
        if self.transport is TTSTransport.SINGLE:
            tts = self._build(target)
            tts.label = label
            return tts
        return self.pool.borrow(target, label)

    def language_done(self, tts: CallTTS) -> None:
        """A call is done with a TTS from :meth:`language_tts`."""
        if self.transport is TTSTransport.MULTI:
            self.pool.give_back(tts)

    def phrase_key(self, config: TTSConfig, text: str) -> str | None:
        return phrases.key_for(config, text)

    def first_frame_sent(
        self, call_sid: str, utterance_id: int, path: SpeechPath, time_to_first_audio: float
    ) -> None:
        self.first_frame.labels(path).observe(time_to_first_audio)
        self.records.append(UtteranceRecord(call_sid, utterance_id, path, time_to_first_audio))

    def _socket_closed(self, sock: MultiTTS) -> None:
        if sock in self._sockets:
            self._sockets.discard(sock)
            self.multi_totals += sock.stats

    def multi_stats(self) -> MultiStats:
        """Totals over closed and live sockets."""
        out = MultiStats(**vars(self.multi_totals))
        for sock in self._sockets:
            out += sock.stats
        return out

    # ------------------------------------------------------------------ warm-up, shutdown

    async def warm_up(self, config: TTSConfig, script: CallScript) -> int:
        """Synthesise the script's fixed lines into the store (``HOTLINE_CACHE_WARMUP=1``).

        Returns:
            How many lines were stored (already cached lines count too).
        """
        try:
            if self.store is None:
                return 0
            return await phrases.warm_up(self.store, config, script)
        finally:
            self.warmed.set()

    async def aclose(self) -> None:
        await self.pool.aclose()
        for sock in list(self._sockets):
            await sock.aclose()
