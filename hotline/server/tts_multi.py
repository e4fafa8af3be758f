"""One pre-connected ElevenLabs ``multi-stream-input`` socket per call (the I/O around
:class:`hotline.core.elevenlabs.ElevenLabsMultiStream`).

:class:`MultiTTS` keeps one socket open for the whole call and speaks each utterance in its own
context (``u1``, ``u2``, ...), so only the first utterance can pay for the TLS + upgrade
handshake, and not even that one: the socket is opened when the media-stream upgrade arrives
(:meth:`hotline.server.speech_service.SpeechService.stream_socket`), so its handshake overlaps
Twilio's ``connected``/``start``. Per utterance: ``{"text":" ", voice settings, "context_id"}``,
the text with ``flush``; once the context's audio has voiced the whole text (alignment), or has
gone quiet, ``close_context`` with ``flush`` asks for its final message. Barge-in cancels the
utterance: a context still generating gets ``close_context`` without flush (no reconnect) and
whatever it still sends is dropped. Keep-alives go out within the inactivity timeout, at most
:data:`~hotline.core.elevenlabs.MAX_CONTEXTS` contexts are live or closing (ElevenLabs counts a
closed context until its final message; a sixth utterance waits for a slot), a dropped socket is
reopened
with backoff (the utterance that was on it fails, the call goes on), and :meth:`MultiTTS.aclose`
ends with ``close_socket``.

ElevenLabs takes ``language_code`` per connection (a query parameter), so a call whose speech
switches language (a ConversationRelay ``language`` message, a token's ``lang``) speaks on
through a socket opened in that language: :class:`SocketPool` lends one, by URL (one per
language), to one call at a time, and keeps it open when the call is over for the next call in
that language (bounded, and closed after a while idle).

:meth:`MultiTTS.synthesize` has the contract of :func:`hotline.server.elevenlabs_client.synthesize`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed

from hotline.core.elevenlabs import MAX_CONTEXTS, ElevenLabsMultiStream, stream_input_url
from hotline.core.events import TTSAudio, TTSEvent, TTSFailure, TTSFinal
from hotline.errors import ElevenLabsProtocolError
from hotline.server.elevenlabs_client import (
    FEED_WAIT,
    STALL_FLUSH,
    TextFeed,
    TTSConfig,
    TTSFailed,
)
from hotline.server.ws_client import WsFailure, reconnect

if TYPE_CHECKING:
    from hotline.server.speech import CallTTS

__all__ = ["MultiStats", "MultiTTS", "PoolStats", "SocketPool"]

log = logging.getLogger("hotline.tts")

_MAX_MESSAGE = 16 * 2**20  # ElevenLabs allows 16 MB messages (see elevenlabs_client)
#: Socket-level keep-alive when no context is live: an empty text only resets timers here.
_SOCKET_KEEPALIVE = '{"text":""}'


@dataclass
class MultiStats:
    connects: int = 0
    reconnects: int = 0
    connect_failures: int = 0
    contexts_opened: int = 0
    contexts_cancelled: int = 0  # close_context without flush (barge-in)
    keepalives: int = 0
    late_messages_dropped: int = 0
    slot_waits: int = 0  # utterances that waited for a closing context's final (5 counted)
    contexts_forgotten: int = 0  # closing contexts whose final never came (bounded wait)
    socket_closed_cleanly: bool = False

    def __iadd__(self, other: MultiStats) -> MultiStats:
        """Add ``other``'s counts (totals over sockets; ``socket_closed_cleanly`` is per
        socket and stays as it is)."""
        for name, value in vars(other).items():
            if not isinstance(value, bool):
                setattr(self, name, getattr(self, name) + value)
        return self


class _FeedChanged:
    """Queued on a context when its :class:`TextFeed` has new text or was closed."""


_FEED_CHANGED = _FeedChanged()


class _Ctx:
    __slots__ = ("cid", "last_sent", "queue")

    def __init__(self, cid: str, now: float) -> None:
        self.cid = cid
        self.queue: asyncio.Queue[TTSEvent | _FeedChanged | None] = asyncio.Queue()
        self.last_sent = now


class MultiTTS:
    """A call's ``multi-stream-input`` socket.

    Args:
        config: where and how to synthesise (the same :class:`TTSConfig` as the single path).
        inactivity_timeout: seconds, sent as the ``inactivity_timeout`` query parameter.
        keepalive_interval: seconds between keep-alives of an idle socket/context (default:
            a third of the inactivity timeout, at most 10 s).
        quiet: seconds without audio after which a live context is closed with flush (the
            alignment usually says sooner that the whole text has been voiced).
        backoff: first and largest delay between reconnection attempts.
        label: for logs (the CallSid).
        closing_wait: seconds a closed context keeps its slot waiting for its final message
            (ElevenLabs counts it until then); after that it is forgotten. Default: the
            config's ``timeout``.
    """

    def __init__(
        self,
        config: TTSConfig,
        *,
        inactivity_timeout: int = 20,
        keepalive_interval: float | None = None,
        quiet: float = 0.3,
        backoff: tuple[float, float] = (0.05, 2.0),
        label: str = "",
        closing_wait: float | None = None,
    ) -> None:
        self.config = config
        self.closing_wait = config.timeout if closing_wait is None else closing_wait
        self._slot = asyncio.Event()  # set when a context's final (or error) frees a slot
        self._closed_at: dict[str, float] = {}  # closing context -> when close_context went
        self.url = stream_input_url(
            config.base_url,
            config.voice_id,
            multi=True,
            model_id=config.model_id,
            output_format=config.output_format,
            inactivity_timeout=inactivity_timeout,
            extra=config.extra_query,
        )
        self.keepalive_interval = (
            keepalive_interval
            if keepalive_interval is not None
            else min(10.0, inactivity_timeout / 3.0)
        )
        self.quiet = quiet
        self.backoff = backoff
        self.label = label
        self.stats = MultiStats()
        self._ws: ClientConnection | None = None
        self._proto: ElevenLabsMultiStream | None = None
        self._ready = asyncio.Event()
        self._kick = asyncio.Event()
        self._contexts: dict[str, _Ctx] = {}
        self._runner: asyncio.Task[None] | None = None
        self._closing = False
        self._next = 0
        self._last_error = "not connected yet"
        self._socket_last_sent = 0.0
        self._logged_failure = False
        #: Called once when :meth:`aclose` has finished (the owner's bookkeeping).
        self.on_closed: Callable[[MultiTTS], None] | None = None

    # ------------------------------------------------------------------ life

    @property
    def connected(self) -> bool:
        return self._ready.is_set()

    def start(self) -> None:
        """Open the socket in the background (idempotent)."""
        if self._runner is None and not self._closing:
            self._runner = asyncio.get_running_loop().create_task(
                self._run(), name=f"hotline-tts-multi-{self.label}"
            )

    async def wait_connected(self, timeout: float) -> bool:
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self._ready.wait(), timeout)
        return self._ready.is_set()

    async def aclose(self) -> None:
        """``close_socket``, close the connection, stop every task; idempotent."""
        if self._closing and self._runner is None:
            return
        self._closing = True
        proto, ws = self._proto, self._ws
        if proto is not None and ws is not None and not proto.socket_closed:
            with contextlib.suppress(Exception):
                proto.close_socket()
                for message in proto.data_to_send():
                    await ws.send(message)
                self.stats.socket_closed_cleanly = True
        runner, self._runner = self._runner, None
        if runner is not None:
            # A connection attempt ends at once (ws_client closes its half-open transport);
            # an open socket gets its closing handshake first.
            if ws is not None:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(ws.close(), 1.0)
            runner.cancel()
            await asyncio.gather(runner, return_exceptions=True)
        self._fail_all()
        self._slot.set()
        callback, self.on_closed = self.on_closed, None
        if callback is not None:
            callback(self)

    # ------------------------------------------------------------------ synthesis

    async def synthesize(
        self,
        text: str | TextFeed,
        on_event: Callable[[TTSEvent], Awaitable[bool]],
        on_bad_message: Callable[[ElevenLabsProtocolError], None],
    ) -> None:
        """Speak ``text`` in a new context; same contract as
        :func:`hotline.server.elevenlabs_client.synthesize`.

        ``text`` is a fixed line (a :class:`TextFeed` closed at birth) or a streamed
        utterance's feed: each ready piece goes out with ``flush`` as it arrives; the context
        is closed (with flush) only once the feed is closed and its whole text has been voiced,
        or has gone quiet.

        Raises:
            TTSFailed: not connected within ``config.open_timeout``, too many live contexts,
                an error message, the socket dropped, or nothing received for ``config.timeout``.
        """
        del on_bad_message  # malformed frames are reported by the reader, once per socket
        feed = text if isinstance(text, TextFeed) else TextFeed.fixed(text)
        if self._closing:
            raise TTSFailed("closed", "the call's TTS socket is closed")
        self.start()
        if not await self.wait_connected(self.config.open_timeout):
            raise TTSFailed("connect", self._last_error)
        proto = await self._admit()
        loop = asyncio.get_running_loop()
        self._next += 1
        cid = f"u{self._next}"
        ctx = self._contexts[cid] = _Ctx(cid, loop.time())
        want_chars = feed.wants
        voiced = 0
        got_audio = False
        done = False
        try:
            try:
                proto.open_context(cid)
                first = feed.take()
                if first:
                    proto.send_text(cid, first, flush=feed.flush_due(first))
            except ElevenLabsProtocolError as exc:
                raise TTSFailed("protocol", str(exc)) from None
            if not feed.closed:
                feed.on_change = lambda: ctx.queue.put_nowait(_FEED_CHANGED)
            self.stats.contexts_opened += 1
            self._kick.set()
            while True:
                live = cid in proto.live_contexts
                complete = feed.closed
                if live and got_audio and complete:
                    wait = self.quiet
                elif not complete and feed.held:
                    wait = min(self.config.timeout, STALL_FLUSH)  # flush if the brain pauses
                elif not complete and voiced >= want_chars:
                    wait = max(self.config.timeout, FEED_WAIT)  # waiting for the brain
                else:
                    wait = self.config.timeout
                try:
                    event = await asyncio.wait_for(ctx.queue.get(), wait)
                except asyncio.TimeoutError:
                    if live and got_audio and complete:
                        self._close_context(proto, cid, flush=True)
                        continue
                    if not complete and live and feed.flush_held():
                        with contextlib.suppress(ElevenLabsProtocolError):
                            proto.flush_context(cid)
                        self._kick.set()
                        continue
                    raise TTSFailed(
                        "timeout", f"no message for {self.config.timeout:g} s (no isFinal)"
                    ) from None
                if event is None:
                    raise TTSFailed("closed", f"socket dropped ({self._last_error})")
                if isinstance(event, _FeedChanged):
                    piece = feed.take()
                    want_chars = feed.wants
                    if cid in proto.live_contexts:
                        with contextlib.suppress(ElevenLabsProtocolError):
                            if piece:
                                proto.send_text(cid, piece, flush=feed.flush_due(piece))
                            elif feed.flush_due(""):  # closed: voice what is buffered
                                proto.flush_context(cid)
                        self._kick.set()
                        if feed.closed and got_audio and voiced >= want_chars:
                            self._close_context(proto, cid, flush=True)
                    continue
                wanted = await on_event(event)
                if isinstance(event, TTSFailure):
                    raise TTSFailed("error", f"{event.error}: {event.message}")
                if isinstance(event, TTSFinal):
                    done = True
                    return
                if not wanted:
                    return  # barge-in seen by the caller of on_event: cancelled below
                if isinstance(event, TTSAudio):
                    got_audio = True
                    align = event.alignment or event.normalized_alignment
                    if align is not None:
                        voiced += len(align.chars)
                    if voiced >= want_chars and feed.closed and cid in proto.live_contexts:
                        self._close_context(proto, cid, flush=True)
        finally:
            feed.on_change = None
            self._contexts.pop(cid, None)
            if not done and proto is self._proto and cid in proto.live_contexts:
                # Cancelled (barge-in, hang-up) or unwanted while still generating.
                self._close_context(proto, cid, flush=False)
                self.stats.contexts_cancelled += 1

    async def _admit(self) -> ElevenLabsMultiStream:
        """The socket's protocol once it has a free context slot.

        ElevenLabs counts a closed context until its final message, so with
        :data:`MAX_CONTEXTS` live or closing, wait for a final (a closing context that sends
        none within ``closing_wait`` is forgotten) rather than open a sixth and have the
        server close the socket with ``max_active_conversations`` (1008).

        Raises:
            TTSFailed: no slot within ``config.timeout``, or the socket went away.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.config.timeout
        waited = False
        while True:
            proto = self._proto
            if proto is None or not self._ready.is_set():
                if not await self.wait_connected(max(deadline - loop.time(), 0.0)):
                    raise TTSFailed("connect", self._last_error)
                continue
            now = loop.time()
            expiry: float | None = None
            for cid in proto.closing_contexts:
                closed = self._closed_at.setdefault(cid, now)
                if now - closed >= self.closing_wait:
                    proto.forget_context(cid)
                    self._closed_at.pop(cid, None)
                    self.stats.contexts_forgotten += 1
                    log.info("call %s: TTS context %s never sent its final", self.label, cid)
                else:
                    at = closed + self.closing_wait
                    expiry = at if expiry is None else min(expiry, at)
            if proto.active_contexts < MAX_CONTEXTS:
                return proto
            if not waited:
                waited = True
                self.stats.slot_waits += 1
            if now >= deadline:
                raise TTSFailed(
                    "contexts",
                    f"{MAX_CONTEXTS} contexts still counted after {self.config.timeout:g} s",
                )
            self._slot.clear()
            wake = deadline if expiry is None else min(deadline, expiry)
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._slot.wait(), max(wake - now, 0.0))
            if self._closing:
                raise TTSFailed("closed", "the call's TTS socket is closed")

    def _close_context(self, proto: ElevenLabsMultiStream, cid: str, *, flush: bool) -> None:
        with contextlib.suppress(ElevenLabsProtocolError):
            proto.close_context(cid, flush=flush)
            self._closed_at[cid] = asyncio.get_running_loop().time()
        self._kick.set()

    def _fail_all(self) -> None:
        for ctx in self._contexts.values():
            ctx.queue.put_nowait(None)

    # ------------------------------------------------------------------ connection

    async def _run(self) -> None:
        cfg = self.config
        headers = {"xi-api-key": cfg.api_key} if cfg.api_key else None
        await reconnect(
            self.url,
            cfg.ws_options(backoff=self.backoff),
            self._connected,
            self._connect_failed,
            headers=headers,
            stop=lambda: self._closing,
        )

    async def _connect_failed(self, failure: WsFailure) -> None:
        self.stats.connect_failures += 1
        self._last_error = failure.describe()
        if not self._logged_failure:
            self._logged_failure = True
            log.warning(
                "call %s: cannot open the TTS socket: %s; retrying", self.label, self._last_error
            )

    async def _connected(self, ws: ClientConnection) -> bool:
        if self.stats.connects:
            self.stats.reconnects += 1
            log.info("call %s: TTS socket reopened", self.label)
        self.stats.connects += 1
        self._logged_failure = False
        try:
            await self._serve(ws)
        finally:
            self._ready.clear()
            self._ws = None
            self._fail_all()
        if not self._closing:
            log.warning(
                "call %s: TTS socket dropped (%s); reconnecting", self.label, self._last_error
            )
        return True

    async def _serve(self, ws: ClientConnection) -> None:
        cfg = self.config
        self._ws = ws
        self._proto = ElevenLabsMultiStream(
            voice_settings=cfg.voice_settings, generation_config=cfg.generation_config
        )
        self._closed_at.clear()  # a new socket counts nothing yet
        self._slot.set()
        self._socket_last_sent = asyncio.get_running_loop().time()
        self._ready.set()
        writer = asyncio.get_running_loop().create_task(self._write(ws, self._proto))
        try:
            await self._read(ws, self._proto)
        finally:
            writer.cancel()
            await asyncio.gather(writer, return_exceptions=True)

    async def _read(self, ws: ClientConnection, proto: ElevenLabsMultiStream) -> None:
        bad_logged = False
        while True:
            try:
                raw = await ws.recv()
            except ConnectionClosed as exc:
                code = exc.rcvd.code if exc.rcvd is not None else None
                self._last_error = f"closed with code {code}"
                return
            try:
                if isinstance(raw, str):
                    proto.receive_text(raw)
                else:
                    proto.receive_bytes(raw)
            except ElevenLabsProtocolError as exc:
                if not bad_logged:
                    bad_logged = True
                    log.warning("call %s: dropped a malformed TTS message: %s", self.label, exc)
                continue
            for event in proto.events_received():
                cid = event.context_id
                if isinstance(event, (TTSFinal, TTSFailure)):
                    if cid is not None:
                        self._closed_at.pop(cid, None)
                    self._slot.set()  # a context stopped counting: a waiting utterance may go
                if cid is None:  # a socket-level error: every context fails with it
                    for ctx in self._contexts.values():
                        ctx.queue.put_nowait(event)
                    if isinstance(event, TTSFailure):
                        self._last_error = f"{event.error}: {event.message}"
                    continue
                target = self._contexts.get(cid)
                if target is None:
                    self.stats.late_messages_dropped += 1  # a cancelled context's tail
                    continue
                target.queue.put_nowait(event)

    async def _write(self, ws: ClientConnection, proto: ElevenLabsMultiStream) -> None:
        loop = asyncio.get_running_loop()
        interval = self.keepalive_interval
        while True:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._kick.wait(), interval / 2)
            self._kick.clear()
            now = loop.time()
            messages = proto.data_to_send()
            if messages:
                self._socket_last_sent = now
                for ctx in self._contexts.values():
                    ctx.last_sent = now  # good enough: one context per call is live at a time
            else:
                live = proto.live_contexts
                for cid in live:
                    owner = self._contexts.get(cid)
                    if owner is not None and now - owner.last_sent >= interval:
                        proto.keepalive(cid)
                        owner.last_sent = now
                        self.stats.keepalives += 1
                messages = proto.data_to_send()
                if not live and now - self._socket_last_sent >= interval:
                    messages.append(_SOCKET_KEEPALIVE)
                    self.stats.keepalives += 1
                if messages:
                    self._socket_last_sent = now
            try:
                for message in messages:
                    await ws.send(message)
            except ConnectionClosed:
                return


# ---------------------------------------------------------------------------------- the pool

#: An idle socket's label in logs.
_POOLED = "(pool)"


@dataclass
class PoolStats:
    lent_new: int = 0  # a socket opened for the call that borrowed it
    lent_idle: int = 0  # an idle one reused (its handshake paid by an earlier call)
    kept: int = 0  # given back and kept open
    closed: int = 0  # given back beyond the bounds, or idle too long, or at shutdown


class SocketPool:
    """Call TTS sockets in a language other than the calls' own, by URL (one URL per
    ``language_code``), lent to one call at a time.

    :meth:`borrow` hands out an idle socket for the target's URL if one is kept (its handshake
    already paid), else a new one (``build``); it is the borrowing call's alone (ElevenLabs:
    one socket per conversation; five contexts counted per socket) until :meth:`give_back`.
    Given back, it stays open (its keep-alives go on) for the next call in that language: at
    most ``per_url`` idle sockets a URL and ``total`` in all (the oldest are closed first), each
    for at most ``idle`` seconds.

    Args:
        build: opens a call's TTS for a target (the speech service's builder).
        per_url: idle sockets kept per URL.
        total: idle sockets kept in all.
        idle: seconds an idle socket is kept.
    """

    def __init__(
        self,
        build: Callable[[TTSConfig], CallTTS],
        *,
        per_url: int = 2,
        total: int = 8,
        idle: float = 60.0,
    ) -> None:
        self._build = build
        self.per_url = per_url
        self.total = total
        self.idle = idle
        self.stats = PoolStats()
        self._idle: list[tuple[str, CallTTS, float]] = []  # (URL, socket, since), oldest first
        self._closing: set[asyncio.Task[None]] = set()
        self._sweep: asyncio.TimerHandle | None = None
        self._closed = False

    @property
    def idle_sockets(self) -> int:
        return len(self._idle)

    def borrow(self, config: TTSConfig, label: str) -> CallTTS:
        """A socket for ``config``'s URL, connecting if new; the caller gives it back."""
        url = config.url()
        for i in range(len(self._idle) - 1, -1, -1):  # the most recently kept first
            if self._idle[i][0] == url:
                _, tts, _ = self._idle.pop(i)
                self.stats.lent_idle += 1
                break
        else:
            tts = self._build(config)
            self.stats.lent_new += 1
        tts.label = label
        tts.start()
        return tts

    def give_back(self, tts: CallTTS) -> None:
        """The call is done with ``tts``: kept for the next call in its language, within the
        bounds, or closed."""
        if self._closed:
            self._close(tts)
            return
        loop = asyncio.get_running_loop()
        tts.label = _POOLED
        self._idle.append((tts.config.url(), tts, loop.time()))
        self.stats.kept += 1
        url = tts.config.url()
        same = [entry for entry in self._idle if entry[0] == url]
        for entry in same[: max(len(same) - self.per_url, 0)]:
            self._drop(entry)
        while len(self._idle) > self.total:
            self._drop(self._idle[0])
        if self._sweep is None:
            self._sweep = loop.call_later(self.idle, self._expire)

    def _expire(self) -> None:
        self._sweep = None
        loop = asyncio.get_running_loop()
        now = loop.time()
        for entry in [e for e in self._idle if now - e[2] >= self.idle]:
            self._drop(entry)
        if self._idle:
            wake = min(since for _, _, since in self._idle) + self.idle
            self._sweep = loop.call_later(max(wake - now, 0.01), self._expire)

    def _drop(self, entry: tuple[str, CallTTS, float]) -> None:
        self._idle.remove(entry)
        self._close(entry[1])

    def _close(self, tts: CallTTS) -> None:
        self.stats.closed += 1
        task = asyncio.get_running_loop().create_task(tts.aclose())
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    async def aclose(self) -> None:
        """Close every idle socket (those lent out are their calls' to give back)."""
        self._closed = True
        if self._sweep is not None:
            self._sweep.cancel()
            self._sweep = None
        while self._idle:
            self._drop(self._idle[0])
        if self._closing:
            await asyncio.gather(*self._closing, return_exceptions=True)
