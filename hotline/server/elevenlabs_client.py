"""One ElevenLabs ``stream-input`` utterance over a real WebSocket (the I/O around
:class:`hotline.core.elevenlabs.ElevenLabsStream`)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field

from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus

from hotline.core.elevenlabs import ElevenLabsStream, stream_input_url
from hotline.core.events import TTSEvent, TTSFailure, TTSFinal
from hotline.errors import ElevenLabsProtocolError, TTSError

__all__ = ["TTSConfig", "TTSFailed", "synthesize"]

log = logging.getLogger("hotline.tts")

# ElevenLabs audio messages are a few KB to a few hundred KB of base64; ElevenLabs' own side
# allows 16 MB (pipecat PR #1107, from an ElevenLabs contributor), so accept what it may send.
_MAX_MESSAGE = 16 * 2**20


@dataclass(frozen=True)
class TTSConfig:
    base_url: str
    voice_id: str
    model_id: str
    output_format: str
    api_key: str | None = field(default=None, repr=False)
    timeout: float = 8.0  # no message for this long -> the utterance ends
    open_timeout: float = 5.0
    voice_settings: Mapping[str, object] | None = None
    generation_config: Mapping[str, object] | None = None
    extra_query: Mapping[str, str] | None = None

    def __post_init__(self) -> None:
        from hotline.server.settings import check_model_options

        check_model_options(self.model_id, "", self.extra_query)  # raises ConfigError

    def url(self) -> str:
        return stream_input_url(
            self.base_url,
            self.voice_id,
            model_id=self.model_id,
            output_format=self.output_format,
            extra=self.extra_query,
        )


class TTSFailed(TTSError):
    """The utterance's TTS stream failed; ``kind`` labels the metric."""

    def __init__(self, kind: str, detail: str) -> None:
        super().__init__(f"{kind}: {detail}")
        self.kind = kind
        self.detail = detail


async def synthesize(
    config: TTSConfig,
    text: str,
    on_event: Callable[[TTSEvent], Awaitable[bool]],
    on_bad_message: Callable[[ElevenLabsProtocolError], None],
) -> None:
    """Speak ``text``: init, text, flush, end; hand every event to ``on_event``.

    ``on_event`` (a coroutine function) resolves to False when the audio is no longer wanted;
    the socket is then closed.
    Returns after ``isFinal``. Malformed messages go to ``on_bad_message`` and are dropped
    (never treated as audio).

    Raises:
        TTSFailed: could not connect, handshake refused, an error message, a close without
            ``isFinal``, or nothing received for ``config.timeout`` seconds.
    """
    stream = ElevenLabsStream(
        voice_settings=config.voice_settings, generation_config=config.generation_config
    )
    headers = {"xi-api-key": config.api_key} if config.api_key else None
    try:
        ws_cm = connect(
            config.url(),
            additional_headers=headers,
            open_timeout=config.open_timeout,
            close_timeout=1.0,
            max_size=_MAX_MESSAGE,
            compression=None,
            ping_interval=None,
            logger=log,
        )
        async with ws_cm as ws:
            stream.send_init()
            stream.send_text(text)
            stream.send_flush()
            stream.send_end()
            for message in stream.data_to_send():
                await ws.send(message)
            while True:
                try:
                    raw = await asyncio.wait_for(ws.recv(), config.timeout)
                except asyncio.TimeoutError:
                    raise TTSFailed(
                        "timeout", f"no message for {config.timeout:g} s (no isFinal)"
                    ) from None
                except ConnectionClosed as exc:
                    code = exc.rcvd.code if exc.rcvd is not None else None
                    raise TTSFailed("closed", f"closed without isFinal (code {code})") from None
                try:
                    if isinstance(raw, str):
                        stream.receive_text(raw)
                    else:
                        stream.receive_bytes(raw)
                except ElevenLabsProtocolError as exc:
                    on_bad_message(exc)
                    continue
                for event in stream.events_received():
                    wanted = await on_event(event)
                    if isinstance(event, TTSFailure):
                        raise TTSFailed("error", f"{event.error}: {event.message}")
                    if isinstance(event, TTSFinal) or not wanted:
                        return
    except InvalidStatus as exc:
        raise TTSFailed("handshake", f"HTTP {exc.response.status_code}") from None
    except ConnectionClosed as exc:
        code = exc.rcvd.code if exc.rcvd is not None else None
        raise TTSFailed("closed", f"closed while sending (code {code})") from None
    except (OSError, InvalidHandshake, asyncio.TimeoutError) as exc:
        raise TTSFailed("connect", f"{type(exc).__name__}: {exc}") from None
