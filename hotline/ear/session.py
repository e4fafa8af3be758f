"""What both protocols' sessions share: the recogniser in a worker thread, fault injection,
sending, and reading the handshake's query."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import struct
from typing import Any, Protocol
from urllib.parse import parse_qs, urlsplit

from websockets.asyncio.server import ServerConnection
from websockets.protocol import State

from hotline.ear.config import EarConfig, EarStats
from hotline.ear.recognizer import Final, Partial, Recognizer, RecognizerConfig
from hotline.ear.whisper import DecodePool, PendingFinal, WhisperRecognizer

__all__ = ["EarHost", "Session", "query_value", "reset_connection", "split_target"]


class EarHost(Protocol):
    """What a session uses of the server that accepted it (the server module imports this one)."""

    @property
    def config(self) -> EarConfig: ...
    @property
    def stats(self) -> EarStats: ...
    @property
    def pool(self) -> DecodePool | None:
        """The Whisper decode pool (None: the grammar ear)."""
        ...

    def authorised(self, header: str | None, token: str | None = None) -> bool: ...


def split_target(path: str) -> tuple[str, dict[str, list[str]]]:
    parts = urlsplit(path)
    return parts.path.rstrip("/") or "/", parse_qs(parts.query, keep_blank_values=True)


def query_value(query: dict[str, list[str]], key: str, default: str | None = None) -> str | None:
    values = query.get(key)
    return values[-1] if values else default


def reset_connection(ws: ServerConnection) -> None:
    """A TCP reset (SO_LINGER 0 + abort): the peer sees the connection vanish mid-stream."""
    transport = ws.transport
    sock = transport.get_extra_info("socket")
    with contextlib.suppress(OSError, AttributeError):
        if sock is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport.abort()


class Session:
    """What both protocols share: the recogniser in a thread, fault injection, sending."""

    def __init__(self, ear: EarHost, ws: ServerConnection, query: dict[str, list[str]]) -> None:
        self.ear = ear
        self.cfg = ear.config
        self.ws = ws
        self.query = query
        self.fault = query_value(query, "hotline_fault", self.cfg.fault)
        self.chunks = 0
        self.rec: Recognizer | WhisperRecognizer | None = None
        self.lock = asyncio.Lock()

    async def run(self) -> None:
        """Serve the connection until it ends (each protocol's session implements it)."""
        raise NotImplementedError

    async def make_recognizer(self, keyterms: tuple[str, ...], silence_ms: int, vad: bool) -> None:
        cfg = RecognizerConfig(
            keyterms=keyterms or self.cfg.default_keyterms,
            silence_ms=silence_ms,
            vad=vad,
            rate_phrases=self.cfg.rate_phrases,
        )
        pool = self.ear.pool
        if pool is not None:
            self.rec = WhisperRecognizer(cfg, pool)  # the model is the ear's, loaded once
        else:
            self.rec = await asyncio.to_thread(Recognizer, cfg)

    async def recognise(self, ulaw: bytes, *, commit: bool = False) -> list[Partial | Final]:
        rec = self.rec
        assert rec is not None

        def work() -> tuple[list[Partial | Final | PendingFinal], float]:
            import time

            t0 = time.thread_time()
            out: list[Partial | Final | PendingFinal] = list(rec.feed(ulaw)) if ulaw else []
            if commit:
                out.append(rec.commit())
            return out, time.thread_time() - t0

        async with self.lock:  # one decoder, fed in order
            pending, cpu = await asyncio.to_thread(work)
            # The Whisper ear's finals are decoded by the ear's pool: awaited here, in order,
            # without holding a thread of the loop's executor.
            out: list[Partial | Final] = []
            for r in pending:
                if isinstance(r, PendingFinal):
                    final: Final = await asyncio.wrap_future(r.future)
                    out.append(final)
                else:
                    out.append(r)
        self.ear.stats.cpu_seconds += cpu
        self.ear.stats.audio_bytes += len(ulaw)
        if out and self.fault == "slow":
            await asyncio.sleep(self.cfg.slow_s)
        return out

    async def send(self, obj: dict[str, Any]) -> None:
        await self.ws.send(json.dumps(obj, separators=(",", ":")))

    async def on_audio_chunk(self) -> bool:
        """Count a chunk and inject faults; False when the connection was dropped or is closing.

        A peer that hung up (or an ear that is stopping, which closes every connection) leaves
        audio queued in the socket's buffers behind its close: decoding it would be for nobody,
        and kept a stopping ear busy past its parent's grace period (it was killed)."""
        if self.ws.state is not State.OPEN:
            return False
        self.chunks += 1
        if self.fault == "drop" and self.chunks >= self.cfg.drop_after_chunks:
            self.ear.stats.faults_injected += 1
            reset_connection(self.ws)
            return False
        if self.fault == "garbage" and self.chunks == 1:
            self.ear.stats.faults_injected += 1
            await self.ws.send("this is not json {")
            await self.ws.send(b"\x00\x01binary")
            await self.send({"message_type": "surprise", "type": "Surprise"})
        return True
