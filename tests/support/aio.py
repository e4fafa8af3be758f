"""Running a coroutine from a sync test, and waiting for a condition without a sleep guess."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")


def arun(factory: Callable[[], Awaitable[T]], timeout: float = 45.0) -> T:
    """``asyncio.run`` the awaitable ``factory()`` returns, bounded by ``timeout`` seconds
    (a hang fails the test instead of stalling the suite)."""

    async def main() -> T:
        return await asyncio.wait_for(factory(), timeout)

    return asyncio.run(main())


async def wait_until(
    cond: Callable[[], object], timeout: float = 10.0, what: str = "the condition"
) -> None:
    """Poll ``cond`` every 10 ms until it is true; AssertionError naming ``what`` after ``timeout``.

    ``what`` may be a callable returning the message (evaluated only on failure).
    """
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while not cond():
        if loop.time() > end:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        await asyncio.sleep(0.01)
