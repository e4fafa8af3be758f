"""hotline.server.ws_client over real sockets on 127.0.0.1: an attempt ends with its task (the
half-open transport is closed, the handshake is not waited out), fatal statuses stop the
reconnecting, the backoff doubles and starts again after a connection that worked."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

from websockets.asyncio.client import ClientConnection
from websockets.asyncio.server import ServerConnection, serve
from websockets.datastructures import Headers
from websockets.http11 import Request, Response

from hotline.server.ws_client import Backoff, WsError, WsFailure, WsOptions, open_ws, reconnect


def arun(factory: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(asyncio.wait_for(factory(), 20))


@asynccontextmanager
async def tarpit() -> AsyncIterator[tuple[str, list[asyncio.Event]]]:
    """A TCP server that reads the upgrade request and never answers; each connection's event
    is set when the client closed it."""
    closed: list[asyncio.Event] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        gone = asyncio.Event()
        closed.append(gone)
        while await reader.read(4096):
            pass
        gone.set()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"ws://127.0.0.1:{port}/", closed
    finally:
        server.close()
        await server.wait_closed()


def test_a_cancelled_attempt_ends_at_once_and_closes_its_transport() -> None:
    async def main() -> None:
        async with tarpit() as (url, closed):
            attempt = asyncio.create_task(open_ws(url, WsOptions(open_timeout=10.0)))
            while not closed:
                await asyncio.sleep(0.01)
            await asyncio.sleep(0.1)  # the upgrade request is out, no answer comes
            t0 = time.monotonic()
            attempt.cancel()
            await asyncio.gather(attempt, return_exceptions=True)
            assert attempt.cancelled()
            assert time.monotonic() - t0 < 0.5
            await asyncio.wait_for(closed[0].wait(), 2.0)  # the server saw the socket close

    arun(main)


def test_a_silent_server_times_out_as_a_retryable_failure() -> None:
    async def main() -> None:
        async with tarpit() as (url, _closed):
            try:
                await open_ws(url, WsOptions(open_timeout=0.2))
            except WsError as err:
                assert err.failure.kind == "connect_failed" and not err.failure.fatal
            else:
                raise AssertionError("connected to a server that never answered")

    arun(main)


def _refusing(status: int) -> Callable[[ServerConnection, Request], Response]:
    def refuse(conn: ServerConnection, request: Request) -> Response:
        return Response(status, "no", Headers(), b"")

    return refuse


async def _serve_ok(ws: ServerConnection) -> None:
    await ws.wait_closed()


def test_fatal_status_stops_reconnecting_and_others_retry() -> None:
    async def main() -> None:
        for status, fatal in ((401, True), (503, False)):
            async with serve(_serve_ok, "127.0.0.1", 0, process_request=_refusing(status)) as srv:
                port = srv.sockets[0].getsockname()[1]
                failures: list[WsFailure] = []

                async def failed(failure: WsFailure, failures: list[WsFailure] = failures) -> None:
                    failures.append(failure)

                async def never(ws: ClientConnection) -> bool:
                    raise AssertionError("a refused handshake served a connection")

                options = WsOptions(backoff=(0.01, 0.02), fatal_statuses=frozenset({401}))
                run = reconnect(
                    f"ws://127.0.0.1:{port}/",
                    options,
                    never,
                    failed,
                    stop=lambda failures=failures: len(failures) >= 3,  # type: ignore[misc]
                )
                result = await asyncio.wait_for(run, 5)
                assert all(f.status == status and f.kind == "refused" for f in failures)
                if fatal:
                    assert len(failures) == 1 and result is failures[0] and result.fatal
                else:
                    assert len(failures) == 3 and result is None

    arun(main)


def test_a_connection_that_worked_resets_the_backoff_and_is_closed() -> None:
    async def main() -> None:
        async with serve(_serve_ok, "127.0.0.1", 0) as srv:
            port = srv.sockets[0].getsockname()[1]
            served: list[ClientConnection] = []

            async def once(ws: ClientConnection) -> bool:
                served.append(ws)
                return True

            async def failed(failure: WsFailure) -> None:
                raise AssertionError(f"unexpected failure: {failure.describe()}")

            await asyncio.wait_for(
                reconnect(
                    f"ws://127.0.0.1:{port}/",
                    WsOptions(backoff=(0.01, 0.05)),
                    once,
                    failed,
                    stop=lambda: len(served) >= 3,
                ),
                5,
            )
            assert len(served) == 3
            for ws in served:  # each connection was closed after it was served
                assert ws.close_code == 1000

    arun(main)


def test_backoff_doubles_up_to_its_largest_and_resets() -> None:
    backoff = Backoff(0.05, 0.3)
    assert [backoff.next() for _ in range(5)] == [0.05, 0.1, 0.2, 0.3, 0.3]
    backoff.reset()
    assert backoff.next() == 0.05
