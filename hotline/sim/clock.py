"""The simulated caller's 20 ms frame clock: its constants, and the clock one event loop shares
among its plain calls (the load generator: hundreds of calls cost one timer wake-up per
10 ms, not one each). A call with keys, barge-in, control or faults runs its own clock
(:meth:`hotline.sim.stream.MediaStream.run`)."""

from __future__ import annotations

import asyncio
from typing import ClassVar, Protocol

__all__ = ["FRAME_S", "MAX_CATCH_UP", "ClockedCall", "SharedClock"]

FRAME_S = 0.02
MAX_CATCH_UP = 50  # frames processed in one wake-up when the event loop was late


class ClockedCall(Protocol):
    """What the shared clock drives of a call."""

    loop: asyncio.AbstractEventLoop
    ended: bool

    def tick(self) -> str | None:
        """Play and send the frames due by now; how the call ended, or None while it runs."""
        ...


class SharedClock:
    """The shared clock: one task per event loop steps every joined call each 10 ms (each call
    still plays and sends by its own 20 ms schedule; a step sends what is due)."""

    PERIOD_S = 0.01
    _running: ClassVar[dict[asyncio.AbstractEventLoop, SharedClock]] = {}

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.calls: dict[ClockedCall, asyncio.Future[str]] = {}
        self.task: asyncio.Task[None] | None = None

    @classmethod
    async def join(cls, call: ClockedCall) -> str:
        """Run ``call`` on this loop's shared clock until it ends; returns how it ended."""
        loop = call.loop
        ticker = cls._running.get(loop)
        if ticker is None:
            ticker = cls._running[loop] = SharedClock(loop)
        done: asyncio.Future[str] = loop.create_future()
        ticker.calls[call] = done
        if ticker.task is None:
            ticker.task = loop.create_task(ticker._run())
        try:
            return await done
        finally:
            ticker.calls.pop(call, None)
            call.ended = True

    async def _run(self) -> None:
        from websockets.exceptions import ConnectionClosed, InvalidState

        loop = self.loop
        try:
            next_at = loop.time()
            while self.calls:
                # let the receivers take what already arrived before frames are played
                await asyncio.sleep(0)
                for call, done in list(self.calls.items()):
                    if done.done():
                        continue
                    try:
                        ended = call.tick()
                    except (ConnectionClosed, InvalidState):
                        ended = "server_hangup"
                    except Exception as exc:  # the call's own failure, raised in its run()
                        done.set_exception(exc)
                        continue
                    if ended is not None:
                        done.set_result(ended)
                next_at += self.PERIOD_S
                delay = next_at - loop.time()
                if delay > 0:
                    await asyncio.sleep(delay)
                else:
                    next_at = loop.time()  # the loop was late: no burst of catch-up steps
        finally:
            self.task = None
            if self._running.get(loop) is self and not self.calls:
                del self._running[loop]
