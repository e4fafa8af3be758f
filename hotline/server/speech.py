"""How one call's utterances get their audio: the phrase cache first, then the call's TTS
(its ``multi-stream-input`` socket, or with ``ELEVENLABS_TRANSPORT=single`` a ``stream-input``
socket per utterance).

:class:`CallSpeech` is per call (built by
:meth:`hotline.server.speech_service.SpeechService.for_call`); :meth:`CallSpeech.utter` is the
task that gets one utterance its audio. A fixed line and a streamed one take the same path: a
fixed line is a :class:`~hotline.server.elevenlabs_client.TextFeed` closed at birth, and only a
fixed line can come from the phrase store (:mod:`hotline.server.phrases`).

Each utterance is spoken in its language (:attr:`hotline.core.actions.StartTTS.language`: a
relay app's ``language`` message or token ``lang``). ElevenLabs takes ``language_code`` per
connection, so an utterance in another language than the call's TTS was opened in goes through
a TTS opened in that language (:meth:`SpeechLanguages.language_tts`; on ``multi`` a socket
borrowed for the call, at most :data:`MAX_CALL_LANGUAGES` of them, given back at the end), and
its phrase key carries the language.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Protocol

from hotline.core.actions import LabelEnum, UtteranceRecorded
from hotline.core.call import Call
from hotline.core.elevenlabs import language_code
from hotline.core.events import TTSAudio, TTSEvent, TTSFailure
from hotline.errors import ElevenLabsProtocolError
from hotline.server import phrases
from hotline.server.elevenlabs_client import TextFeed, TextSource, TTSConfig, TTSFailed
from hotline.server.metrics import Metrics
from hotline.server.phrases import PhraseStore

__all__ = [
    "MAX_CALL_LANGUAGES",
    "CallSpeech",
    "CallTTS",
    "SpeechHost",
    "SpeechLanguages",
    "SpeechPath",
]

#: A call's TTS sockets in other languages than its own, at most (the least recently used idle
#: one goes back first).
MAX_CALL_LANGUAGES = 3

call_log = logging.getLogger("hotline.call")
clock = time.perf_counter


class SpeechPath(LabelEnum):
    """Where one utterance's audio came from (the ``path`` label)."""

    CACHE = "cache"
    MULTI = "multi"
    SINGLE = "single"


class CallTTS(Protocol):
    """What speaks a call's utterances: :class:`~hotline.server.tts_multi.MultiTTS` or
    :class:`~hotline.server.elevenlabs_client.SingleTTS`."""

    config: TTSConfig
    label: str

    def start(self) -> None:
        """Start connecting, if it keeps a socket."""

    async def synthesize(
        self,
        text: str | TextFeed,
        on_event: Callable[[TTSEvent], Awaitable[bool]],
        on_bad_message: Callable[[ElevenLabsProtocolError], None],
    ) -> None:
        """Speak one utterance (see :func:`hotline.server.elevenlabs_client.synthesize`)."""

    async def aclose(self) -> None:
        """Close what is open; idempotent."""


class SpeechLanguages(Protocol):
    """Where a call gets its TTS in another language
    (:class:`~hotline.server.speech_service.SpeechService`)."""

    def language_tts(self, config: TTSConfig, code: str | None, label: str) -> CallTTS | None:
        """A TTS like ``config``'s held to ``code`` (None: the model takes no language)."""

    def language_done(self, tts: CallTTS) -> None:
        """The call is done with ``tts``."""


#: Records an utterance's first frame sent: (CallSid, utterance, path, seconds from text to it).
FirstFrameSent = Callable[[str, int, SpeechPath, float], None]


class SpeechHost(Protocol):
    """What :meth:`CallSpeech.utter` needs from the call's session."""

    @property
    def call(self) -> Call: ...

    @property
    def metrics(self) -> Metrics: ...

    @property
    def label(self) -> str: ...

    def fed(self) -> None:
        """The Call was fed: its actions are drained once this wake-up is over (a callback
        scheduled now, so it runs before this task resumes from its next await)."""

    def bad_message(self, side: str, exc: Exception) -> None:
        """Count (and log once per kind) a malformed message that was dropped."""


class CallSpeech:
    """One call's speech path (see the module docstring).

    Args:
        call_sid: the call.
        tts: the call's TTS, or None when no TTS is configured (every utterance fails).
        store: the phrase store, or None for no cache.
        path: the path of an utterance that is not a cache hit (the TTS transport).
        first_frame_sent: where each utterance's time to first audio goes.
        language: the BCP-47 tag ``tts`` speaks (None: the voice's default).
        languages: where TTS in other languages comes from (None: ``tts`` speaks all).
    """

    def __init__(
        self,
        call_sid: str,
        tts: CallTTS | None,
        *,
        store: PhraseStore | None,
        path: SpeechPath,
        first_frame_sent: FirstFrameSent,
        language: str | None = None,
        languages: SpeechLanguages | None = None,
    ) -> None:
        self.call_sid = call_sid
        self.tts = tts
        self._home = language_code(language) if language else None
        self._languages = languages
        #: The call's TTS in other languages, by ``language_code`` (None: none enforced), most
        #: recently used last; a None value: the model takes no language, ``tts`` speaks.
        self._voices: dict[str | None, CallTTS | None] = {}
        self._busy: dict[str | None, int] = {}  # utterances speaking on each of them
        self.store = store
        self.path = path
        self._first_frame_sent = first_frame_sent
        self.paths: dict[int, SpeechPath] = {}
        self._keys: dict[int, str] = {}  # utterance -> phrase key, while synthesising a miss
        self._recorded: dict[int, bytes] = {}  # clean recordings waiting to be stored
        self._feeds: dict[int, TextFeed] = {}  # streamed utterances' text, by utterance
        self._ending: set[int] = set()  # utterances whose task is ending on its own

    # ------------------------------------------------------------------ streamed text

    def open_feed(self, utterance_id: int, source: TextSource) -> None:
        """A streamed utterance starts (``StartTTS(streaming=True)``); its text is read from
        ``source`` (the Call's utterance), where it is kept."""
        self._feeds[utterance_id] = TextFeed(source)

    def text_changed(self, utterance_id: int) -> None:
        """``TTSText`` / ``TTSClose``: a streamed utterance's text grew or is complete."""
        feed = self._feeds.get(utterance_id)
        if feed is not None:
            feed.changed()

    async def utter(
        self, host: SpeechHost, utterance_id: int, text: str, language: str | None = None
    ) -> None:
        """Get utterance ``utterance_id`` its audio (the task behind a ``StartTTS``), spoken in
        ``language`` (a BCP-47 tag; None: the call's voice): replay it from the phrase store,
        or synthesise it into the Call. Failures end the utterance (the Call goes on); returns
        when the utterance's TTS is over, or raises CancelledError."""
        call = host.call
        metrics = host.metrics

        async def on_event(event: TTSEvent) -> bool:
            now = clock()
            if not call.receive_tts(utterance_id, event, now):
                self._ending.add(utterance_id)
                return False  # barge-in / hang-up: late audio dropped, close the socket
            if isinstance(event, TTSAudio):
                metrics.conversion.observe(clock() - now)
            host.fed()  # a held first slice is rendered by the sender once its frames are out
            if isinstance(event, TTSFailure) or call.current_utterance != utterance_id:
                self._ending.add(utterance_id)  # this task ends itself: CancelTTS need not
                return False
            return True

        def on_bad(exc: ElevenLabsProtocolError) -> None:
            host.bad_message("elevenlabs", exc)

        try:
            await self._speak(host, utterance_id, text, language, on_event, on_bad)
        except asyncio.CancelledError:
            raise
        except TTSFailed as exc:
            metrics.elevenlabs_errors.labels(exc.kind).inc()
            call.tts_failed(utterance_id, str(exc), clock())
            host.fed()
        except Exception as exc:
            call_log.exception("call %s: utterance %d: TTS task failed", host.label, utterance_id)
            metrics.elevenlabs_errors.labels("internal").inc()
            call.tts_failed(utterance_id, f"internal: {type(exc).__name__}", clock())
            host.fed()
        else:
            # The stream ended (isFinal, or we stopped wanting it); if the Call still waits
            # for this utterance (stream ended without isFinal being seen), end it.
            if call.current_utterance == utterance_id:
                call.tts_failed(utterance_id, "stream ended without isFinal", clock())
                host.fed()
        finally:
            self._keys.pop(utterance_id, None)
            self._recorded.pop(utterance_id, None)
            self._feeds.pop(utterance_id, None)
            self._ending.discard(utterance_id)

    async def _speak(
        self,
        host: SpeechHost,
        utterance_id: int,
        text: str,
        language: str | None,
        on_event: Callable[[TTSEvent], Awaitable[bool]],
        on_bad_message: Callable[[ElevenLabsProtocolError], None],
    ) -> None:
        """A streamed utterance goes to the TTS piece by piece; a fixed line (a feed closed at
        birth) is looked up in the phrase store first, and stored if its recording is clean.
        Either goes through the call's TTS in ``language``."""
        if self.tts is None:
            raise TTSFailed("connect", "no TTS configured")
        code = self._voice_for(language)
        self._busy[code] = self._busy.get(code, 0) + 1
        try:
            voice = self._voices.get(code) if code != self._HOME else None
            await self._speak_on(
                host, voice or self.tts, utterance_id, text, on_event, on_bad_message
            )
        finally:
            if code in self._busy:
                self._busy[code] -= 1

    #: The key of the call's own TTS in ``_busy``.
    _HOME = "(home)"

    def _voice_for(self, language: str | None) -> str | None:
        """The key of the TTS that speaks ``language``: :attr:`_HOME` (the call's own) or a
        ``language_code`` in :attr:`_voices`, opened now if need be."""
        tts = self.tts
        assert tts is not None
        if language is None or self._languages is None:
            return self._HOME
        code = language_code(language)
        if code == self._home or tts.config.in_language(code).url() == tts.config.url():
            return self._HOME
        if code in self._voices:
            self._voices[code] = self._voices.pop(code)  # most recently used last
            return code
        self._voices[code] = self._languages.language_tts(tts.config, code, self.call_sid)
        for old in list(self._voices):
            if len(self._voices) <= MAX_CALL_LANGUAGES:
                break
            if old != code and not self._busy.get(old):
                self._give_back(old)
        return code

    def _give_back(self, code: str | None) -> None:
        voice = self._voices.pop(code, None)
        self._busy.pop(code, None)
        if voice is not None and self._languages is not None:
            self._languages.language_done(voice)

    async def _speak_on(
        self,
        host: SpeechHost,
        tts: CallTTS,
        utterance_id: int,
        text: str,
        on_event: Callable[[TTSEvent], Awaitable[bool]],
        on_bad_message: Callable[[ElevenLabsProtocolError], None],
    ) -> None:
        store = self.store
        key: str | None = None
        feed = self._feeds.get(utterance_id)
        if feed is None:
            feed = TextFeed.fixed(text)
            key = phrases.key_for(tts.config, text) if store is not None else None
            if store is not None and key is not None:
                hit = await store.get(key)
                if hit is not None:
                    self.paths[utterance_id] = SpeechPath.CACHE
                    if host.call.play_recorded(utterance_id, hit, clock()):
                        host.fed()
                    return
                self._keys[utterance_id] = key
        self.paths[utterance_id] = self.path
        await tts.synthesize(feed, on_event, on_bad_message)
        await asyncio.sleep(0)  # let the drain fed by the last event run first (UtteranceRecorded)
        recording = self._recorded.pop(utterance_id, None)
        if store is not None and key is not None and recording is not None:
            await store.put(key, recording)

    def recorded(self, action: UtteranceRecorded) -> None:
        """The Call recorded a clean miss: store it once its synthesis has returned."""
        if action.utterance_id in self._keys:
            self._recorded[action.utterance_id] = action.ulaw

    def ending(self, utterance_id: int) -> bool:
        """Utterance ``utterance_id``'s task has told its TTS to stop and is ending on its own
        (its CancelTTS, drained later, must not cut that ending short)."""
        return utterance_id in self._ending

    def first_frame_sent(self, utterance_id: int, time_to_first_audio: float) -> None:
        path = self.paths.pop(utterance_id, self.path)
        self._first_frame_sent(self.call_sid, utterance_id, path, time_to_first_audio)

    async def aclose(self) -> None:
        for code in list(self._voices):
            self._give_back(code)  # kept open for the next call in that language
        tts, self.tts = self.tts, None
        if tts is not None:
            with contextlib.suppress(Exception):
                await tts.aclose()
