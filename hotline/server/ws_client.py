"""The one outgoing WebSocket client under TTS (multi and single), STT and the relay brain.

One policy: the connect keyword arguments (:class:`WsOptions`), what a failed attempt means
(:func:`classify`: retryable or fatal, as websockets' ``process_exception`` decides it), the
backoff between attempts (:class:`Backoff`) and the close. Each use passes only what must
differ:

=============  =========  ==========  ===========  =========  ===========  ================
use            ping (s)   close (s)   compression  max size   backoff (s)  fatal statuses
=============  =========  ==========  ===========  =========  ===========  ================
TTS multi      off        1           none         16 MB      0.05..2      none
TTS single     off        1           none         16 MB      (once)       (once)
STT            20         2           none         1 MB       0.2..5       401, 403
relay          20         2           deflate      1 MB       (once)       (once)
=============  =========  ==========  ===========  =========  ===========  ================

Why they differ: ElevenLabs' TTS sockets carry their own keep-alive messages (a WebSocket ping
does not reset its inactivity timer) and send audio messages far above 1 MB; STT and the relay
have no keep-alive message of their own while idle. The relay keeps offering
permessage-deflate, as it always did (websockets' default): Twilio's documentation does not say
whether its own client offers it, an app written against Twilio may have been tested with it,
and an app that does not want it declines it in the handshake, so offering cannot break one.
A refused STT key (401/403) does not heal, and the STT stream retries in the background for
the whole call, so it stops; the TTS socket keeps retrying (as it always did) because every
utterance reports its own failure (``TTSFailed``) and a key may be fixed while a call runs.

Attempts belong to their owner's task: cancelling it (the call hung up) ends the attempt at
once. websockets (from 14.1, the declared floor, to today's) closes the half-open transport
when a handshake is cancelled, and asyncio closes a socket whose TCP or TLS connect is
cancelled, so no handshake is waited out. Every failure of an attempt is awaited and caught
here and becomes a :class:`WsFailure` (anything else is a bug and raised to the owner's task,
which its owner awaits): nothing is left in a future for the garbage collector to report.

websockets' own ``async for ws in connect(...)`` with ``process_exception`` has this shape and
was checked, but not used: at 14.1 its backoff is global (environment variables, a random
first delay of up to 5 s, then 3.1 s and more; 17.x made it a method), where hotline reconnects
a dropped TTS socket after 50 ms; it reconnects at once after a connection that closed, and
``process_exception`` is synchronous, where the STT stream reports each failure as an event.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import InvalidStatus, WebSocketException
from websockets.http11 import USER_AGENT

from hotline.server.tls import ssl_for

__all__ = [
    "Backoff",
    "WsError",
    "WsFailure",
    "WsOptions",
    "classify",
    "close_ws",
    "open_ws",
    "reconnect",
]


@dataclass(frozen=True, slots=True)
class WsOptions:
    """One use's connect parameters (see the module docstring's table).

    Attributes:
        open_timeout: seconds for TCP, TLS and the upgrade together.
        close_timeout: seconds the closing handshake may take before the transport is dropped.
        ping_interval: seconds between WebSocket pings (None: no pings).
        max_size: largest message accepted.
        compression: ``"deflate"`` to offer permessage-deflate, None not to.
        user_agent: the ``User-Agent`` header (None: websockets' own).
        backoff: first and largest wait between reconnects.
        fatal_statuses: handshake HTTP statuses after which reconnecting stops.
        logger: websockets' logger for the connection.
    """

    open_timeout: float = 5.0
    close_timeout: float = 1.0
    ping_interval: float | None = None
    max_size: int = 2**20
    compression: str | None = None
    user_agent: str | None = None
    backoff: tuple[float, float] = (0.05, 2.0)
    fatal_statuses: frozenset[int] = frozenset()
    logger: logging.Logger | None = None


@dataclass(frozen=True, slots=True)
class WsFailure:
    """A failed connection attempt.

    Attributes:
        exc: what the attempt raised.
        status: the HTTP status when the handshake was refused, else None.
        fatal: do not try again.
    """

    exc: Exception
    status: int | None
    fatal: bool

    @property
    def kind(self) -> str:
        """``refused`` (the server answered the upgrade with an HTTP status) or
        ``connect_failed`` (DNS, TCP, TLS, timeout, a bad handshake)."""
        return "refused" if self.status is not None else "connect_failed"

    def describe(self) -> str:
        if self.status is not None:
            return f"handshake refused (HTTP {self.status})"
        return f"{type(self.exc).__name__}: {self.exc}"


def classify(exc: Exception, options: WsOptions) -> WsFailure | None:
    """What a connect attempt's exception means (None: not a connection failure: a bug,
    re-raised by the caller)."""
    if isinstance(exc, InvalidStatus):
        status = exc.response.status_code
        return WsFailure(exc, status, status in options.fatal_statuses)
    if isinstance(exc, OSError | EOFError | asyncio.TimeoutError | WebSocketException):
        return WsFailure(exc, None, False)
    if isinstance(exc, ValueError):  # a URL websockets cannot use: retrying will not help
        return WsFailure(exc, None, True)
    return None


async def open_ws(
    url: str, options: WsOptions, headers: Mapping[str, str] | None = None
) -> ClientConnection:
    """One connection attempt with ``options``.

    Raises:
        WsError: the attempt failed (``.failure`` says how).
    """
    try:
        return await connect(
            url,
            ssl=ssl_for(url),
            additional_headers=dict(headers) if headers else None,
            open_timeout=options.open_timeout,
            close_timeout=options.close_timeout,
            ping_interval=options.ping_interval,
            max_size=options.max_size,
            compression=options.compression,
            logger=options.logger,
            user_agent_header=options.user_agent or USER_AGENT,
        )
    except Exception as exc:
        failure = classify(exc, options)
        if failure is None:
            raise
        raise WsError(failure) from None


class WsError(Exception):
    """:func:`open_ws` failed; ``failure`` classifies it."""

    def __init__(self, failure: WsFailure) -> None:
        super().__init__(failure.describe())
        self.failure = failure


async def close_ws(ws: ClientConnection, code: int = 1000, reason: str = "") -> None:
    """Close ``ws``; never raises (the close timeout bounds the closing handshake)."""
    with contextlib.suppress(Exception):
        await ws.close(code, reason)


class Backoff:
    """Waits between reconnects: ``first``, doubling up to ``largest``; :meth:`reset` after a
    connection that worked."""

    def __init__(self, first: float, largest: float) -> None:
        self.first = first
        self.largest = largest
        self._delays = self._series()

    def _series(self) -> Iterator[float]:
        delay = self.first
        while True:
            yield delay
            delay = min(delay * 2, self.largest)

    def reset(self) -> None:
        self._delays = self._series()

    def next(self) -> float:
        return next(self._delays)


async def reconnect(
    url: str,
    options: WsOptions,
    serve: Callable[[ClientConnection], Awaitable[bool]],
    on_failure: Callable[[WsFailure], Awaitable[None]],
    *,
    headers: Mapping[str, str] | None = None,
    stop: Callable[[], bool] = lambda: False,
    on_attempt: Callable[[], None] = lambda: None,
) -> WsFailure | None:
    """Connect, ``serve`` the connection, close it, wait the backoff, again, until ``stop()``.

    Args:
        serve: runs one connection; returns True when it worked (the backoff starts again
            from its first delay). The connection is closed after it, also on cancellation.
        on_failure: told of every failed attempt, before the backoff.
        stop: checked before every attempt and after every connection.
        on_attempt: called as each attempt starts.

    Returns:
        The fatal failure that ended the loop, or None when ``stop()`` ended it.
    """
    backoff = Backoff(*options.backoff)
    while not stop():
        on_attempt()
        try:
            ws = await open_ws(url, options, headers)
        except WsError as err:
            await on_failure(err.failure)
            if err.failure.fatal:
                return err.failure
        else:
            try:
                worked = await serve(ws)
            finally:  # also on cancellation: the call is over
                await close_ws(ws)
            if stop():
                return None
            if worked:
                backoff.reset()
        await asyncio.sleep(backoff.next())
    return None
