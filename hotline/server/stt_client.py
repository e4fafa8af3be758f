"""The speech-to-text socket client: one :class:`SttStream` per call (Scribe, Deepgram, local ear).

::

    stream = SttStream(SttConfig(provider=SttProvider.LOCAL, url=ear.url), on_event)
    stream.start()                 # connects in the background
    stream.feed(ulaw)              # every inbound Twilio media payload; never blocks
    stream.commit()                # optional: end the utterance now
    await stream.aclose()

Audio goes into one bounded buffer (``SttConfig.buffer_ms``, 3 s by default) that a sender task
drains; while connecting or reconnecting it fills, and the oldest audio is dropped and counted.
A refused, failed or dropped STT never raises into the caller: it reconnects with backoff
(:mod:`hotline.server.ws_client`) unless a failure is ``permanent`` (a refused key, a server
error the protocol object marks so: it will not heal), reports :class:`SttFailure` events with
the client's own kinds (``refused``, ``connect_failed``, ``dropped``, ``protocol_error``)
through ``on_event``, keeps :attr:`SttStream.status` and :attr:`SttStream.stats`, and logs once
per failure kind (lengths only, never transcripts). :meth:`SttStream.aclose` ends a connection
attempt at once (the half-open transport is closed, the handshake is not waited out).
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed

from hotline.core.deepgram import DeepgramLive
from hotline.core.scribe import CommitStrategy, ScribeRealtime
from hotline.core.stt import (
    SttClosed,
    SttCommitted,
    SttEvent,
    SttFailure,
    SttPartial,
    SttSessionStarted,
    SttSpeechStarted,
)
from hotline.core.ulaw import BYTES_PER_MS
from hotline.errors import ConfigError, SttProtocolError
from hotline.server.ws_client import WsFailure, WsOptions, reconnect

__all__ = ["SttConfig", "SttProvider", "SttStats", "SttStatus", "SttStream"]

log = logging.getLogger("hotline.stt")

#: Handshake statuses that will not heal by reconnecting: the key is wrong or not allowed.
_REFUSED_FOR_GOOD = frozenset({401, 403})


class SttProvider(enum.Enum):
    ELEVENLABS = "elevenlabs"
    DEEPGRAM = "deepgram"
    LOCAL = "local"  # the local ear (hotline.ear), Scribe protocol
    OFF = "off"


class SttStatus(enum.Enum):
    IDLE = "idle"  # start() not called
    CONNECTING = "connecting"
    LIVE = "live"
    RECONNECTING = "reconnecting"  # waiting out the backoff after a failure
    FAILED = "failed"  # gave up (a permanent failure: a refused key, quota); audio is dropped
    CLOSED = "closed"
    OFF = "off"


DEFAULT_URLS = {
    SttProvider.ELEVENLABS: "wss://api.elevenlabs.io",
    SttProvider.DEEPGRAM: "wss://api.deepgram.com",
}


@dataclass(frozen=True, slots=True)
class SttConfig:
    """One call's speech-to-text settings.

    Attributes:
        provider: which service; ``LOCAL`` speaks Scribe to the local ear at ``url``.
        url: base ``ws(s)://host``; empty for the provider's public endpoint.
        api_key: ``xi-api-key`` (Scribe/local) or Deepgram ``Token``; may be empty for local.
        keyterms: words/phrases to bias recognition toward.
        language: ``en`` (Scribe ``language_code``) / ``en-US`` (Deepgram ``language``); empty
            for the service default.
        silence_ms: silence that ends an utterance (Scribe ``vad_silence_threshold_secs``,
            Deepgram ``endpointing``).
        commit_strategy: Scribe ``vad`` (default) or ``manual``.
        utterance_end_ms: Deepgram ``utterance_end_ms`` (None: off).
        deepgram_model: e.g. ``nova-3``; empty for the account default.
        include_timestamps: Scribe word timings.
        buffer_ms: audio kept while not connected; the oldest is dropped beyond it.
        chunk_ms: audio per message sent (Twilio sends 20 ms; batching lowers message rate).
        keepalive_s: Deepgram KeepAlive when no audio was sent for this long.
        connect_timeout_s: handshake timeout.
        backoff_s / backoff_max_s: first and longest wait between reconnects.
    """

    provider: SttProvider = SttProvider.LOCAL
    url: str = ""
    api_key: str = ""
    keyterms: tuple[str, ...] = ()
    language: str = ""
    silence_ms: int = 600
    commit_strategy: CommitStrategy = CommitStrategy.VAD
    utterance_end_ms: int | None = 1000
    deepgram_model: str = ""
    include_timestamps: bool = False
    buffer_ms: int = 3000
    chunk_ms: int = 100
    keepalive_s: float = 4.0
    connect_timeout_s: float = 5.0
    backoff_s: float = 0.2
    backoff_max_s: float = 5.0

    def __post_init__(self) -> None:
        if not isinstance(self.provider, SttProvider):
            raise ConfigError("provider must be an SttProvider")
        if self.provider is SttProvider.LOCAL and not self.url:
            raise ConfigError("the local ear needs its url (ws://127.0.0.1:PORT)")
        if not 300 <= self.silence_ms <= 3000:
            raise ConfigError("silence_ms must be within 300..3000")
        if not 20 <= self.buffer_ms <= 60_000 or not 20 <= self.chunk_ms <= 1000:
            raise ConfigError("buffer_ms must be 20..60000 and chunk_ms 20..1000")
        if self.backoff_s <= 0 or self.backoff_max_s < self.backoff_s or self.keepalive_s <= 0:
            raise ConfigError("backoff and keep-alive times must be positive")

    def protocol(self) -> ScribeRealtime | DeepgramLive:
        """A fresh protocol object for one connection."""
        if self.provider is SttProvider.DEEPGRAM:
            return DeepgramLive(
                keyterms=self.keyterms,
                language=self.language or None,
                model=self.deepgram_model or None,
                endpointing_ms=self.silence_ms,
                utterance_end_ms=self.utterance_end_ms,
            )
        return ScribeRealtime(
            keyterms=self.keyterms,
            language_code=self.language.split("-")[0] or None if self.language else None,
            commit_strategy=self.commit_strategy,
            vad_silence_threshold_secs=self.silence_ms / 1000,
            include_timestamps=self.include_timestamps,
        )

    def base_url(self) -> str:
        return self.url or DEFAULT_URLS.get(self.provider, "")

    def ws_options(self) -> WsOptions:
        """The STT use of the shared client policy (see :mod:`hotline.server.ws_client`)."""
        return WsOptions(
            open_timeout=self.connect_timeout_s,
            close_timeout=2.0,
            ping_interval=20.0,
            max_size=2**20,
            backoff=(self.backoff_s, self.backoff_max_s),
            fatal_statuses=_REFUSED_FOR_GOOD,
        )


@dataclass
class SttStats:
    """Counters for one stream (lengths and counts only)."""

    connects: int = 0
    connect_failures: int = 0
    drops: int = 0
    audio_bytes_in: int = 0
    audio_bytes_sent: int = 0
    audio_bytes_dropped: int = 0
    messages_received: int = 0
    protocol_errors: int = 0
    server_errors: int = 0
    partials: int = 0
    commits: int = 0
    committed_chars: int = 0
    keepalives: int = 0
    callback_errors: int = 0
    errors_by_kind: dict[str, int] = field(default_factory=dict)


class SttStream:
    """One call's speech-to-text connection (see the module docstring)."""

    def __init__(self, config: SttConfig, on_event: Callable[[SttEvent], Awaitable[None]]) -> None:
        self.config = config
        self.on_event = on_event
        self.stats = SttStats()
        self.status = SttStatus.OFF if config.provider is SttProvider.OFF else SttStatus.IDLE
        self._buffer: deque[bytes] = deque()
        self._buffered = 0
        self._limit = config.buffer_ms * BYTES_PER_MS
        #: feed() wakes the sender only once a whole message's worth is buffered (not per 20 ms).
        self._chunk = config.chunk_ms * BYTES_PER_MS
        self._wake = asyncio.Event()
        self._commit_requested = False
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self._logged: set[str] = set()

    # -- the caller's side (sync, never blocks)

    def start(self) -> None:
        if self._task is not None or self.status is SttStatus.OFF:
            return
        self.status = SttStatus.CONNECTING
        self._task = asyncio.get_running_loop().create_task(self._run(), name="stt")

    def feed(self, ulaw: bytes) -> None:
        """Queue caller audio; beyond ``buffer_ms`` the oldest audio is dropped and counted."""
        if not ulaw or self._closing or self.status in (SttStatus.OFF, SttStatus.FAILED):
            if ulaw:
                self.stats.audio_bytes_dropped += len(ulaw)
            return
        data = bytes(ulaw)
        self.stats.audio_bytes_in += len(data)
        self._buffer.append(data)
        self._buffered += len(data)
        while self._buffered > self._limit:
            old = self._buffer.popleft()
            excess = self._buffered - self._limit
            if len(old) > excess:  # keep the newest part of a chunk
                self._buffer.appendleft(old[excess:])
                self._buffered -= excess
                self.stats.audio_bytes_dropped += excess
            else:
                self._buffered -= len(old)
                self.stats.audio_bytes_dropped += len(old)
        if self._buffered >= self._chunk:
            self._wake.set()

    def commit(self) -> None:
        """End the current utterance now (Scribe commit / Deepgram Finalize), after queued audio."""
        if self.status in (SttStatus.OFF, SttStatus.FAILED) or self._closing:
            return
        self._commit_requested = True
        self._wake.set()

    @property
    def buffered_bytes(self) -> int:
        return self._buffered

    async def aclose(self) -> None:
        """Stop: a connection attempt ends at once, a live connection is closed."""
        self._closing = True
        self._wake.set()
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        if self.status is not SttStatus.OFF:
            self.status = SttStatus.CLOSED

    # -- internals

    def _log_once(self, kind: str, message: str, *args: object) -> None:
        self.stats.errors_by_kind[kind] = self.stats.errors_by_kind.get(kind, 0) + 1
        if kind not in self._logged:
            self._logged.add(kind)
            log.warning(message, *args)

    async def _emit(self, event: SttEvent) -> None:
        try:
            await self.on_event(event)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self.stats.callback_errors += 1
            # the type only: the exception text may quote what the caller said
            self._log_once("callback", "stt on_event callback raised %s", type(exc).__name__)

    async def _run(self) -> None:
        config = self.config
        first = config.protocol()  # each connection gets a fresh one (see _connected)
        url = first.url(config.base_url())
        headers = first.headers(config.api_key) if config.api_key else None
        failure = await reconnect(
            url,
            config.ws_options(),
            self._connected,
            self._connect_failed,
            headers=headers,
            stop=lambda: self._closing or self.status is SttStatus.FAILED,
            on_attempt=self._connecting,
        )
        if failure is not None or self.status is SttStatus.FAILED:
            self.status = SttStatus.FAILED
            self._drop_buffer()

    def _connecting(self) -> None:
        self.status = SttStatus.CONNECTING

    async def _connect_failed(self, failure: WsFailure) -> None:
        self.stats.connect_failures += 1
        if failure.status is not None:
            code = failure.status
            self._log_once("refused", "stt handshake refused (HTTP %d)", code)
            await self._emit(
                SttFailure(
                    "refused", f"handshake refused: HTTP {code}", True, permanent=failure.fatal
                )
            )
        else:
            name = type(failure.exc).__name__
            self._log_once("connect_failed", "stt connect failed (%s)", name)
            await self._emit(SttFailure("connect_failed", name, True, permanent=failure.fatal))
        self.status = SttStatus.RECONNECTING

    async def _connected(self, ws: ClientConnection) -> bool:
        """Serve one connection; True when it had worked (the backoff starts again)."""
        self.stats.connects += 1
        proto = self.config.protocol()
        try:
            permanent = await self._serve(ws, proto)
        except (OSError, ConnectionClosed, SttProtocolError) as exc:
            # e.g. an outgoing message refused by the protocol object: reconnect
            self._log_once("internal", "stt session ended: %s", type(exc).__name__)
            permanent = False
        worked = self.status is SttStatus.LIVE
        if permanent:
            self.status = SttStatus.FAILED
        elif not self._closing:
            self.status = SttStatus.RECONNECTING
        return worked

    def _drop_buffer(self) -> None:
        self.stats.audio_bytes_dropped += self._buffered
        self._buffer.clear()
        self._buffered = 0

    async def _serve(self, ws: ClientConnection, proto: ScribeRealtime | DeepgramLive) -> bool:
        """Run one connection; True when a failure is permanent (do not reconnect)."""
        permanent = False
        if isinstance(proto, DeepgramLive):
            rid = ws.response.headers.get("dg-request-id", "") if ws.response else ""
            proto.connection_opened(rid)
        sender = asyncio.get_running_loop().create_task(self._send_loop(ws, proto), name="stt-send")
        try:
            async for frame in ws:
                self.stats.messages_received += 1
                try:
                    if isinstance(frame, bytes):
                        proto.receive_bytes(frame)
                    else:
                        proto.receive_text(frame)
                except SttProtocolError as exc:
                    self.stats.protocol_errors += 1
                    self._log_once("protocol_error", "stt message dropped: %s", str(exc)[:120])
                    await self._emit(SttFailure("protocol_error", str(exc)[:200], False))
                if await self._dispatch(proto):
                    permanent = True
        except ConnectionClosed:
            pass
        finally:
            sender.cancel()
            with contextlib.suppress(asyncio.CancelledError, ConnectionClosed):
                await sender
        if isinstance(proto, DeepgramLive):
            proto.receive_close(ws.close_code, ws.close_reason or "")
        else:
            proto.flush_pending()
        if await self._dispatch(proto):
            permanent = True
        if not self._closing and not permanent:
            self.stats.drops += 1
            self._log_once("dropped", "stt connection lost (close code %s)", ws.close_code)
            await self._emit(
                SttFailure("dropped", f"connection closed (code {ws.close_code})", True)
            )
        return permanent

    async def _dispatch(self, proto: ScribeRealtime | DeepgramLive) -> bool:
        """Hand the protocol's events on; True when one of them is permanent."""
        permanent = False
        for ev in proto.events_received():
            if isinstance(ev, SttSessionStarted):
                self.status = SttStatus.LIVE
            elif isinstance(ev, SttPartial):
                self.stats.partials += 1
            elif isinstance(ev, SttCommitted):
                self.stats.commits += 1
                self.stats.committed_chars += len(ev.text)
            elif isinstance(ev, SttFailure):
                self.stats.server_errors += 1
                self._log_once(
                    f"server:{ev.kind}", "stt server error %s (fatal=%s)", ev.kind, ev.fatal
                )
                permanent = permanent or ev.permanent  # the protocol object's word
            elif isinstance(ev, SttSpeechStarted | SttClosed):
                pass
            await self._emit(ev)
        return permanent

    async def _send_loop(self, ws: ClientConnection, proto: ScribeRealtime | DeepgramLive) -> None:
        loop = asyncio.get_running_loop()
        chunk = self._chunk
        # A part message goes when no whole one has filled for two message lengths (the caller's
        # audio paused or ended); Twilio's 50 payloads a second fill one long before that.
        flush_after = 2 * self.config.chunk_ms / 1000
        deepgram = proto if isinstance(proto, DeepgramLive) else None
        keepalive_s = self.config.keepalive_s
        last_sent = loop.time()
        # Checked every turn: aclose() sets the event, then cancels, and a cancel that lands as
        # the awaited event fires must not leave the loop running.
        while not self._closing:
            if self._buffered >= chunk:
                await self._send_audio(ws, proto, chunk)
                last_sent = loop.time()
                continue
            if self._commit_requested:
                if self._buffered:
                    await self._send_audio(ws, proto, self._buffered)
                self._commit_requested = False
                proto.commit()
                await _drain(ws, proto)
                last_sent = loop.time()
                continue
            # Asleep until a whole message is buffered (feed() wakes it then, not per 20 ms
            # payload), a commit, aclose() or the timer: one timer per message, no task.
            self._wake.clear()
            timeout = flush_after
            if deepgram is not None and not self._buffered:
                timeout = max(0.0, min(timeout, keepalive_s - (loop.time() - last_sent)))
            timer = loop.call_later(timeout, self._wake.set)
            try:
                await self._wake.wait()
            finally:
                timer.cancel()
            if self._closing or self._commit_requested or self._buffered >= chunk:
                continue
            if self._buffered:
                await self._send_audio(ws, proto, self._buffered)
                last_sent = loop.time()
            elif deepgram is not None and loop.time() - last_sent >= keepalive_s:
                deepgram.keep_alive()
                await _drain(ws, deepgram)
                self.stats.keepalives += 1
                last_sent = loop.time()

    async def _send_audio(
        self, ws: ClientConnection, proto: ScribeRealtime | DeepgramLive, n: int
    ) -> None:
        data = self._take(n)
        try:
            proto.send_audio(data)
            await _drain(ws, proto)
        except BaseException:
            self.stats.audio_bytes_dropped += len(data)  # taken but never on the wire
            raise
        self.stats.audio_bytes_sent += len(data)

    def _take(self, n: int) -> bytes:
        parts = []
        got = 0
        while self._buffer and got < n:
            part = self._buffer.popleft()
            if got + len(part) > n:
                self._buffer.appendleft(part[n - got :])
                part = part[: n - got]
            parts.append(part)
            got += len(part)
        self._buffered -= got
        return b"".join(parts)


async def _drain(ws: ClientConnection, proto: ScribeRealtime | DeepgramLive) -> None:
    for message in proto.data_to_send():
        await ws.send(message)
