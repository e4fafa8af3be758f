"""A TTS factory for test servers (``create_app(settings, tts_factory=...)``) that points the
next utterances at another TTS target: a fault mode of the local voice
(``hotline_fault=<mode>`` on its URL) or any other :class:`TTSConfig` change.

Each call's TTS is the app's own (:meth:`SpeechService.new_tts`, so sockets count in the
metrics as they do in production). While the switch is armed, an utterance that starts is
spoken by a TTS the app builds for the changed target; the next utterance on the default target
closes it and builds a fresh one for the default. A call therefore sees, for its utterances,
what it would see with its TTS target changed between them: on ``multi`` a new socket each
time the target changes, on ``single`` a connection per utterance anyway.
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import Any

from hotline.core.events import TTSEvent
from hotline.errors import ElevenLabsProtocolError
from hotline.server.elevenlabs_client import TextFeed, TTSConfig
from hotline.server.speech import CallTTS

__all__ = ["FaultSwitch"]


class FaultSwitch:
    """``tts_factory`` for a test app; :meth:`arm` / :meth:`disarm` from the test."""

    def __init__(self) -> None:
        self._changes: dict[str, Any] | None = None

    def arm(self, fault: str | None = None, **changes: Any) -> None:
        """Utterances that start from now on go to ``fault`` (and ``changes``)."""
        extra = {"hotline_fault": fault} if fault else None
        self._changes = {"extra_query": extra, **changes}

    def disarm(self) -> None:
        """Utterances that start from now on go to the app's own target again."""
        self._changes = None

    def target(self, config: TTSConfig) -> TTSConfig:
        return config if self._changes is None else replace(config, **self._changes)

    def __call__(self, config: TTSConfig, build: Callable[[TTSConfig], CallTTS]) -> CallTTS:
        return _Switched(self, config, build)


class _Switched:
    """A call's TTS behind a :class:`FaultSwitch`: the app's own, rebuilt on a target change."""

    def __init__(
        self, switch: FaultSwitch, config: TTSConfig, build: Callable[[TTSConfig], CallTTS]
    ) -> None:
        self.switch = switch
        self.config = config
        self._build = build
        self._tts = build(switch.target(config))

    @property
    def label(self) -> str:
        return self._tts.label

    @label.setter
    def label(self, value: str) -> None:
        self._tts.label = value

    def start(self) -> None:
        self._tts.start()

    async def synthesize(
        self,
        text: str | TextFeed,
        on_event: Callable[[TTSEvent], Awaitable[bool]],
        on_bad_message: Callable[[ElevenLabsProtocolError], None],
    ) -> None:
        target = self.switch.target(self.config)
        tts = self._tts
        if tts.config != target:
            label = tts.label
            with contextlib.suppress(Exception):
                await tts.aclose()
            tts = self._tts = self._build(target)
            tts.label = label
            tts.start()
        await tts.synthesize(text, on_event, on_bad_message)

    async def aclose(self) -> None:
        await self._tts.aclose()
