"""Deploys drain: a uvicorn server whose SIGTERM lets live calls play on.

uvicorn's own SIGTERM handling closes every connection at once (WebSockets included), which
cuts every caller off mid-sentence. :class:`DrainingServer` intercepts SIGTERM instead: the
registry starts draining (``/health`` answers 503 ``draining``, so the platform sends new
calls elsewhere), webhooks that still arrive are answered, live calls go on to their natural
end, and only once the last one is over (or ``drain_timeout`` passed) does uvicorn's normal
shutdown run. A second SIGTERM is ignored (the platform's SIGKILL is the hard stop); SIGINT
(Ctrl-C) keeps uvicorn's immediate behaviour, and a SIGINT during a drain stops at once.

The calls' records are not lost on the way out: once the calls are over, the app's lifespan
writes the records still queued (:meth:`hotline.records.service.Records.aclose`, 10 s at
most) and spools to a local file whatever the database could not take, for the next start.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from types import FrameType

import uvicorn

from hotline.server.registry import CallRegistry

__all__ = ["DrainingServer"]

log = logging.getLogger("hotline.app")


class DrainingServer(uvicorn.Server):
    """``uvicorn.Server`` that drains on SIGTERM.

    Args:
        config: the uvicorn config.
        registry: the app's call registry (``app.state.hub.registry``).
        drain_timeout: seconds to wait for live calls after SIGTERM (``HOTLINE_DRAIN_TIMEOUT``).
    """

    def __init__(
        self, config: uvicorn.Config, registry: CallRegistry, drain_timeout: float
    ) -> None:
        super().__init__(config)
        self.registry = registry
        self.drain_timeout = drain_timeout
        self._loop: asyncio.AbstractEventLoop | None = None
        self._drain_task: asyncio.Task[None] | None = None
        #: Seconds to keep answering after the last call ended (its action callback).
        self.grace = 1.0

    async def startup(self, sockets: list[object] | None = None) -> None:  # type: ignore[override]
        self._loop = asyncio.get_running_loop()
        await super().startup(sockets=sockets)  # type: ignore[arg-type]

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if sig != signal.SIGTERM or self._loop is None or self.should_exit:
            super().handle_exit(sig, frame)
            return
        if self._drain_task is None:
            self._loop.call_soon_threadsafe(self._start_drain)

    def _start_drain(self) -> None:
        if self._drain_task is None:
            self._drain_task = asyncio.get_running_loop().create_task(
                self._drain(), name="hotline-drain"
            )

    async def _drain(self) -> None:
        registry = self.registry
        registry.start_drain()
        had_calls = bool(registry.attached)
        if await registry.drained(self.drain_timeout):
            log.info("draining: every call has ended; stopping")
            if had_calls:  # Twilio's <Connect action> for the last call follows its close
                await asyncio.sleep(self.grace)
        else:
            left = len(self.registry.attached)
            log.warning(
                "draining: %d call(s) still live after HOTLINE_DRAIN_TIMEOUT=%g s; handing "
                "them over (their <Connect action> resumes them on another replica)",
                left,
                self.drain_timeout,
            )
        self.should_exit = True
