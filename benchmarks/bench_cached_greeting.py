"""How fast a cached greeting leaves: a real hotline (uvicorn on 127.0.0.1, the embedded local
voice, the production defaults: multi-context socket and phrase cache) whose greeting is in the
cache, and one call per round from the tests' Twilio side (tests.support.twilio).

Each round times one call from the signed webhook to the first outbound media frame received;
``extra_info`` carries hotline's own figure for the same calls (``start`` handled -> first frame
sent on the cache path, median and max in ms), the number that must stay within a few ms.

    pytest benchmarks/bench_cached_greeting.py --benchmark-only
"""

from __future__ import annotations

import asyncio
import contextlib
import statistics
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.server import Running, running_server
from tests.support.twilio import FakeTwilio

SCRIPT = """
greeting = "Hello, and thanks for calling. This greeting comes from the cache."
invalid_digit = "That key does nothing."
goodbye = "Goodbye."
"""
ROUNDS = 15


@pytest.fixture(scope="module")
def warm_server() -> Iterator[tuple[asyncio.AbstractEventLoop, Running]]:
    """A server in its own loop whose greeting was recorded by one full call."""
    loop = asyncio.new_event_loop()
    stack = contextlib.AsyncExitStack()
    with tempfile.TemporaryDirectory() as tmp:
        script = Path(tmp) / "script.toml"
        script.write_text(SCRIPT)
        server = loop.run_until_complete(
            stack.enter_async_context(running_server(script_path=str(script)))
        )
        loop.run_until_complete(_call(server, 0, to_end=True))
        speech = server.hub.speech
        assert speech is not None and speech.store is not None and speech.store.stats.stores == 1
        try:
            yield loop, server
        finally:
            loop.run_until_complete(stack.aclose())
            loop.close()


async def _call(server: Running, n: int, *, to_end: bool = False) -> None:
    tw = FakeTwilio(server, call_sid="CA" + f"{n:032x}")
    await tw.start()
    if to_end:
        await tw.wait_for(lambda: tw.mark_echoed("u1-end"))
    else:
        await tw.wait_for(lambda: tw.heard.frames)
    await tw.hang_up()


def test_cached_greeting_first_frame(
    benchmark: Any, warm_server: tuple[asyncio.AbstractEventLoop, Running]
) -> None:
    loop, server = warm_server
    calls = iter(range(1, 10_000))
    benchmark.pedantic(
        lambda: loop.run_until_complete(_call(server, next(calls))), rounds=ROUNDS, iterations=1
    )
    speech = server.hub.speech
    assert speech is not None
    cached = [1000 * r.time_to_first_audio for r in speech.records if r.path == "cache"]
    assert len(cached) >= ROUNDS  # every timed call was served from the cache
    benchmark.extra_info.update(
        {
            "server_start_to_first_frame_ms_median": statistics.median(cached),
            "server_start_to_first_frame_ms_max": max(cached),
            "calls": len(cached),
        }
    )
