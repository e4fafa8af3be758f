"""The one way the tests start a server in-process: an ASGI app on a real uvicorn, 127.0.0.1,
an ephemeral port (:func:`serve_asgi`); hotline's app in the test's own event loop
(:func:`running_server`) or in a thread with its own loop (:class:`ServerThread`, for a server
shared by many tests); any other app, e.g. a stand-in, with :func:`serve`.

The hotline app runs on the configuration users run: whatever ``Settings`` defaults to (today
the multi-context ElevenLabs socket and a 32 MiB phrase cache). A test that needs the other
transport or no cache says so with an override.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import tempfile
import threading
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import uvicorn
from fastapi import FastAPI

from hotline.server.app import create_app
from hotline.server.cli import uvicorn_config_kwargs
from hotline.server.hub import Hub
from hotline.server.settings import ListenSettings, RecordsSettings, Settings
from hotline.server.speech_service import TTSFactory
from hotline.sim import webhook

from .net import base_url, bind_ephemeral

T = TypeVar("T")

AUTH_TOKEN = "test-twilio-auth-token-0123456789"
ADMIN_TOKEN = "test-admin-token-abcdef"
CALLER = "+15555550123"
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}

# What every test server gets unless it overrides it: tokens, a quick local voice, and no
# speech-to-text (each lifespan with the default local ear spawns a `python -m hotline.ear`
# process, ~1.2 s a server). A test that listens opts in: ``listen=ListenSettings(stt="local")``.
TEST_SETTINGS: dict[str, Any] = {
    "twilio_auth_token": AUTH_TOKEN,
    "admin_token": ADMIN_TOKEN,
    "local_voice_first_chunk_delay": 0.05,
    "tts_timeout": 1.5,
    "listen": ListenSettings(stt="off"),
}
# Call records stay on (the default: SQLite); each server unless told otherwise gets a new file
# (a new deployment: no caller is a returning one) under this directory, not the working one.
RECORDS_DIR = tempfile.mkdtemp(prefix="hotline-test-records-")


def fresh_records() -> RecordsSettings:
    """The default records (SQLite) in a new file of their own."""
    return RecordsSettings(
        database_url=f"sqlite:///{tempfile.mkdtemp(dir=RECORDS_DIR)}/records.sqlite3"
    )


def sign(url: str, params: dict[str, str], token: str = AUTH_TOKEN) -> str:
    """Twilio's ``X-Twilio-Signature`` for ``url`` and form ``params`` (the simulator's)."""
    return webhook.sign(token, url, params)


@contextlib.asynccontextmanager
async def serve_asgi(
    app: Any, sock: socket.socket | None = None, **config: Any
) -> AsyncIterator[uvicorn.Server]:
    """Serve ``app`` on uvicorn (127.0.0.1, ephemeral port unless ``sock``) until the block exits.

    ``config`` goes to ``uvicorn.Config`` (the server's own ``uvicorn_config_kwargs`` when empty).
    """
    sock = sock or bind_ephemeral()
    kwargs = config or uvicorn_config_kwargs()
    server = uvicorn.Server(uvicorn.Config(app, log_config=None, log_level="warning", **kwargs))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        while not server.started:
            if task.done():
                task.result()
                raise RuntimeError("uvicorn exited before starting")
            await asyncio.sleep(0.01)
        yield server
    finally:
        server.should_exit = True
        await task
        sock.close()


@contextlib.asynccontextmanager
async def serve(app: Any) -> AsyncIterator[str]:
    """Any ASGI app (a stand-in: the LLM, a media server) served on uvicorn's sans-I/O WebSocket
    protocol (``"auto"`` picks the deprecated legacy one on uvicorn < 0.36), with TCP_NODELAY;
    yields ``http://127.0.0.1:<port>``."""
    sock = bind_ephemeral(nodelay=True)
    async with serve_asgi(app, sock, timeout_graceful_shutdown=2, ws="websockets-sansio"):
        yield base_url(sock)


@dataclass
class Running:
    """A hotline server serving in this event loop."""

    base: str
    hub: Hub
    server: uvicorn.Server
    app: FastAPI

    @property
    def ws_url(self) -> str:
        return self.base.replace("http://", "ws://") + "/media-stream"

    @property
    def voice(self) -> Any:
        """The embedded local ElevenLabs stand-in (None with a real API key)."""
        return self.app.state.voice


@contextlib.asynccontextmanager
async def running_server(
    *, tts_factory: TTSFactory | None = None, **overrides: Any
) -> AsyncIterator[Running]:
    """``create_app(Settings(...))`` served in this loop; ``overrides`` are Settings fields,
    ``tts_factory`` goes to ``create_app`` (e.g. a :class:`tests.support.tts.FaultSwitch`)."""
    sock = bind_ephemeral()
    base = base_url(sock)
    settings = Settings(
        **{**TEST_SETTINGS, "public_url": base, "records": fresh_records(), **overrides}
    )
    app = create_app(settings, tts_factory=tts_factory)
    async with serve_asgi(app, sock) as server:
        yield Running(base, app.state.hub, server, app)


class ServerThread:
    """``create_app(Settings(...))`` served by uvicorn in a thread with its own event loop."""

    def __init__(self, settings: dict[str, Any], *, tts_factory: TTSFactory | None = None) -> None:
        self.settings = {**TEST_SETTINGS, **settings}
        self.tts_factory = tts_factory
        self.loop: asyncio.AbstractEventLoop | None = None
        self.server: uvicorn.Server | None = None
        self.hub: Hub | None = None
        self.app: Any = None
        self.base = ""
        self.baseline: set[asyncio.Task[Any]] = set()
        self.error: BaseException | None = None
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._main, name="hotline-test-server", daemon=True)

    def start(self) -> None:
        self._thread.start()
        if not self._ready.wait(30):
            raise RuntimeError("server thread did not start")
        if self.error is not None:
            raise RuntimeError("server failed to start") from self.error

    def _main(self) -> None:
        try:
            asyncio.run(self._serve())
        except BaseException as exc:  # reported by start() / alive
            self.error = exc
            self._ready.set()

    async def _serve(self) -> None:
        self.loop = asyncio.get_running_loop()
        async with running_server(tts_factory=self.tts_factory, **self.settings) as run:
            self.base, self.app, self.hub, self.server = run.base, run.app, run.hub, run.server
            self.baseline = set(asyncio.all_tasks())
            self._ready.set()
            while not run.server.should_exit:
                await asyncio.sleep(0.05)

    def stop(self) -> None:
        if self.loop is not None and self.server is not None and self._thread.is_alive():
            self.loop.call_soon_threadsafe(setattr, self.server, "should_exit", True)
        self._thread.join(20)

    @property
    def alive(self) -> bool:
        return self._thread.is_alive() and self.error is None

    @property
    def voice(self) -> Any:
        return self.app.state.voice

    def call_on_loop(self, fn: Callable[[], T], timeout: float = 5.0) -> T:
        """Run ``fn`` on the server's loop and return its result."""
        assert self.loop is not None

        async def wrapper() -> T:
            return fn()

        return asyncio.run_coroutine_threadsafe(wrapper(), self.loop).result(timeout)

    def stray_tasks(self) -> list[str]:
        """Tasks in the server's loop that were not there once it had started."""

        def collect() -> list[str]:
            current = asyncio.current_task()
            return [
                f"{t.get_name()}: {t.get_coro()!r}"
                for t in asyncio.all_tasks()
                if t not in self.baseline and t is not current
            ]

        return self.call_on_loop(collect)
