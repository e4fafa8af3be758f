"""Test harness: the real app on a real uvicorn (127.0.0.1, ephemeral port) in the test's event
loop, and a minimal Twilio side (signed webhook, signed upgrade, real-time inbound frames,
a playback clock that echoes marks only once the audio before them has played)."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import re
import socket
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field, replace
from typing import Any

import httpx
import uvicorn
from fastapi import FastAPI
from twilio.request_validator import RequestValidator
from websockets.asyncio.client import ClientConnection, connect

from hotline.server.app import create_app
from hotline.server.cli import uvicorn_config_kwargs
from hotline.server.hub import Hub
from hotline.server.settings import Settings

AUTH_TOKEN = "test-twilio-auth-token-0123456789"
ADMIN_TOKEN = "test-admin-token-abcdef"
CALLER = "+15555550123"
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


def sign(url: str, params: dict[str, str], token: str = AUTH_TOKEN) -> str:
    return str(RequestValidator(token).compute_signature(url, params))


@dataclass
class Running:
    base: str
    hub: Hub
    server: uvicorn.Server
    app: FastAPI

    @property
    def ws_url(self) -> str:
        return self.base.replace("http://", "ws://") + "/media-stream"


@contextlib.asynccontextmanager
async def running_server(**overrides: Any) -> AsyncIterator[Running]:
    """Serve ``create_app`` on 127.0.0.1:<ephemeral> until the block exits."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    base = f"http://127.0.0.1:{port}"
    kwargs: dict[str, Any] = {
        "twilio_auth_token": AUTH_TOKEN,
        "public_url": base,
        "admin_token": ADMIN_TOKEN,
        "local_voice_first_chunk_delay": 0.05,
        "tts_timeout": 1.5,
        # These tests watch the per-utterance stream-input path (one socket per line, closed on
        # barge-in) with nothing cached; tests/scale covers the multi-context socket and the cache.
        "elevenlabs_transport": "single",
        "cache_bytes": 0,
    }
    kwargs.update(overrides)
    app = create_app(Settings(**kwargs))
    config = uvicorn.Config(app, log_config=None, log_level="warning", **uvicorn_config_kwargs())  # type: ignore[arg-type]
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        while not server.started:
            if task.done():
                task.result()
                raise RuntimeError("uvicorn exited before starting")
            await asyncio.sleep(0.01)
        yield Running(base, app.state.hub, server, app)
    finally:
        server.should_exit = True
        await task
        sock.close()


# --------------------------------------------------------------------------- Twilio's side


@dataclass
class Heard:
    """What the fake Twilio received and played."""

    frames: list[tuple[float, int, bytes]] = field(default_factory=list)  # (wall, media ms, frame)
    played: bytearray = field(default_factory=bytearray)
    marks: list[tuple[str, int]] = field(default_factory=list)  # (name, media ms when echoed)
    clears: list[int] = field(default_factory=list)  # media ms when received
    closed_at: int | None = None
    close_code: int | None = None
    bad: list[str] = field(default_factory=list)
    underrun_ms: int = 0


class FakeTwilio:
    """One bidirectional Media Stream, played in real time at 8 kHz (one 20 ms tick at a time)."""

    def __init__(self, run: Running, call_sid: str = "CA" + "0" * 31 + "1") -> None:
        self.run = run
        self.call_sid = call_sid
        self.stream_sid = "MZ" + "ab" * 16
        self.heard = Heard()
        self.params: dict[str, str] = {}
        self.ws: ClientConnection | None = None
        self.media_ms = 0  # the inbound media clock (timestamp of the next frame)
        self._buffer = bytearray()
        self._pending: list[tuple[str, int]] = []  # (mark, buffered bytes before it)
        self._speech: list[bytes] = []
        self._last_was_media = False
        self._seq = 0
        self._tasks: list[asyncio.Task[None]] = []
        self.stopped = asyncio.Event()

    async def webhook(
        self, path: str = "/voice", form: dict[str, str] | None = None
    ) -> httpx.Response:
        form = form or {
            "CallSid": self.call_sid,
            "AccountSid": "AC" + "1" * 32,
            "From": CALLER,
            "To": "+15555550100",
            "CallStatus": "ringing",
            "Direction": "inbound",
        }
        url = self.run.base + path
        async with httpx.AsyncClient() as client:
            return await client.post(
                url, data=form, headers={"X-Twilio-Signature": sign(url, form)}
            )

    async def start(self, path: str = "/voice") -> None:
        response = await self.webhook(path)
        assert response.status_code == 200, response.text
        twiml = response.text
        match = re.search(r'<Stream url="([^"]+)"', twiml)
        assert match, twiml
        url = match.group(1)
        assert url == self.run.ws_url
        self.params = dict(re.findall(r'<Parameter name="([^"]+)" value="([^"]*)"', twiml))
        self.ws = await connect(url, additional_headers={"X-Twilio-Signature": sign(url, {})})
        await self._send({"event": "connected", "protocol": "Call", "version": "1.0.0"})
        await self._send(
            {
                "event": "start",
                "sequenceNumber": self._next_seq(),
                "start": {
                    "accountSid": "AC" + "1" * 32,
                    "streamSid": self.stream_sid,
                    "callSid": self.call_sid,
                    "tracks": ["inbound"],
                    "customParameters": self.params,
                    "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1},
                },
                "streamSid": self.stream_sid,
            }
        )
        self._tasks = [
            asyncio.create_task(self._reader()),
            asyncio.create_task(self._ticker()),
        ]

    def _next_seq(self) -> str:
        self._seq += 1
        return str(self._seq)

    async def _send(self, msg: dict[str, Any]) -> None:
        assert self.ws is not None
        await self.ws.send(json.dumps(msg))

    def speak(self, frames: list[bytes]) -> int:
        """Start talking (frames go out one per tick); returns the onset media timestamp."""
        self._speech = list(frames)
        return self.media_ms

    async def dtmf(self, digit: str) -> None:
        await self._send(
            {
                "event": "dtmf",
                "streamSid": self.stream_sid,
                "sequenceNumber": self._next_seq(),
                "dtmf": {"track": "inbound_track", "digit": digit},
            }
        )

    async def stop(self) -> None:
        await self._send(
            {
                "event": "stop",
                "sequenceNumber": self._next_seq(),
                "stop": {"accountSid": "AC" + "1" * 32, "callSid": self.call_sid},
                "streamSid": self.stream_sid,
            }
        )

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self.ws is not None:
            await self.ws.close()

    async def _reader(self) -> None:
        assert self.ws is not None
        try:
            async for raw in self.ws:
                if not isinstance(raw, str):
                    self.heard.bad.append("binary frame")
                    continue
                msg = json.loads(raw)
                event = msg.get("event")
                keys = set(msg)
                if event == "media":
                    if keys != {"event", "streamSid", "media"} or set(msg["media"]) != {"payload"}:
                        self.heard.bad.append(f"media shape {sorted(keys)}")
                    frame = base64.b64decode(msg["media"]["payload"])
                    self.heard.frames.append((time.monotonic(), self.media_ms, frame))
                    self._buffer += frame
                    self._last_was_media = True
                elif event == "mark":
                    if keys != {"event", "streamSid", "mark"}:
                        self.heard.bad.append(f"mark shape {sorted(keys)}")
                    self._pending.append((msg["mark"]["name"], len(self._buffer)))
                    self._last_was_media = False
                elif event == "clear":
                    if keys != {"event", "streamSid"}:
                        self.heard.bad.append(f"clear shape {sorted(keys)}")
                    self.heard.clears.append(self.media_ms)
                    self._buffer.clear()
                    self._last_was_media = False
                    for name, _ in self._pending:
                        await self._echo(name)
                    self._pending.clear()
                else:
                    self.heard.bad.append(f"unknown event {event!r}")
                if msg.get("streamSid") != self.stream_sid:
                    self.heard.bad.append("wrong streamSid")
        except Exception as exc:  # connection closed abnormally
            self.heard.bad.append(f"reader: {type(exc).__name__}")
        finally:
            self.heard.closed_at = self.media_ms
            self.heard.close_code = self.ws.close_code
            self.stopped.set()

    async def _echo(self, name: str) -> None:
        self.heard.marks.append((name, self.media_ms))
        await self._send(
            {
                "event": "mark",
                "sequenceNumber": self._next_seq(),
                "streamSid": self.stream_sid,
                "mark": {"name": name},
            }
        )

    async def _ticker(self) -> None:
        """Every 20 ms: send one inbound frame, play 20 ms, echo the marks that are due."""
        t0 = time.monotonic()
        tick = 0
        try:
            while not self.stopped.is_set():
                frame = self._speech.pop(0) if self._speech else b"\xff" * 160
                await self._send(
                    {
                        "event": "media",
                        "sequenceNumber": self._next_seq(),
                        "media": {
                            "track": "inbound",
                            "chunk": str(tick + 1),
                            "timestamp": str(self.media_ms),
                            "payload": base64.b64encode(frame).decode(),
                        },
                        "streamSid": self.stream_sid,
                    }
                )
                # Play 20 ms.
                played = bytes(self._buffer[:160])
                del self._buffer[:160]
                if len(played) < 160 and self._last_was_media:
                    # Starved mid-utterance: the last message was media, no mark after it yet.
                    self.heard.underrun_ms += (160 - len(played)) // 8
                self.heard.played += played
                due = [(n, p) for n, p in self._pending if p <= len(played)]
                self._pending = [(n, p - len(played)) for n, p in self._pending if p > len(played)]
                for name, _ in due:
                    await self._echo(name)
                tick += 1
                self.media_ms += 20
                await asyncio.sleep(max(0.0, t0 + tick * 0.02 - time.monotonic()))
        except Exception as exc:
            if not self.stopped.is_set():
                self.heard.bad.append(f"ticker: {type(exc).__name__}")

    # -- waiting helpers

    async def wait_for(self, predicate: Any, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"timed out; heard marks={self.heard.marks} bad={self.heard.bad}"
                )
            await asyncio.sleep(0.01)

    def mark_echoed(self, name: str) -> bool:
        return any(n == name for n, _ in self.heard.marks)


def with_fault(hub: Hub, fault: str | None) -> None:
    """Make the next utterances' TTS connections ask the local voice for ``fault``."""
    assert hub.tts is not None
    hub.tts = replace(hub.tts, extra_query={"hotline_fault": fault} if fault else None)
