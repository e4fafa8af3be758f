"""LocalEar: an offline speech-to-text WebSocket server on loopback (pocketsphinx).

Two vendor protocols on one server, so hotline's real STT client paths run offline:

* **ElevenLabs Scribe v2 Realtime** on ``/v1/speech-to-text/realtime`` (shared/docs/
  conversation.md A.1): query ``model_id`` (required), ``audio_format`` (``ulaw_8000`` or
  ``pcm_8000`` here), ``commit_strategy`` (``manual`` default, or ``vad``),
  ``vad_silence_threshold_secs`` (0.3-3.0, default 1.5), ``language_code``,
  ``include_timestamps``, repeatable ``keyterms``; key in ``xi-api-key`` (or a ``token``
  query parameter). Messages: ``session_started`` first; ``input_audio_chunk`` in;
  ``partial_transcript`` / ``committed_transcript`` (+ ``committed_transcript_with_timestamps``)
  out; errors as ``{"message_type": <kind>, "error": ...}``: ``auth_error`` (then close 1008),
  ``input_error`` for a malformed message or a ``previous_text`` after the first chunk,
  ``chunk_size_exceeded`` for a chunk over :attr:`EarConfig.max_chunk_bytes` (both
  non-fatal: the session goes on).
* **Deepgram live** on ``/v1/listen`` (A.2): ``encoding=mulaw&sample_rate=8000``, key in
  ``Authorization: Token <key>`` (HTTP 401 otherwise); audio as binary frames; ``Results``
  (interim ``is_final: false``; ``is_final``+``speech_final`` after ``endpointing`` ms of
  silence; ``from_finalize`` after ``Finalize``), ``UtteranceEnd`` after ``utterance_end_ms``
  (sent right after the final here: the segmenter has already waited out the silence),
  ``SpeechStarted`` (``vad_events``), ``KeepAlive``, ``CloseStream`` -> ``Metadata`` + close
  1000, and a close with reason ``NET-0001`` after :attr:`EarConfig.idle_close_s` (10 s)
  without audio or a message.

Recognition (hotline.ear.recognizer): key terms become a grammar; only speech segments are
decoded, in a worker thread (``asyncio.to_thread``), one segmenter+decoder per connection.

Fault modes (:data:`FAULT_MODES`), for the whole server (:attr:`EarConfig.fault`) or per
connection (query ``hotline_fault=<mode>``): ``refuse`` (Scribe: ``auth_error`` + close 1008
right after the handshake; Deepgram: HTTP 401), ``drop`` (TCP reset after
:attr:`EarConfig.drop_after_chunks` audio chunks), ``garbage`` (a non-JSON text frame, a
binary frame and a JSON message of an unknown type after the first chunk, then normal
service), ``slow`` (every result delayed by :attr:`EarConfig.slow_s`).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import binascii
import contextlib
import json
import logging
import re
import socket
import struct
import uuid
from dataclasses import dataclass, field
from typing import IO, Any
from urllib.parse import parse_qs, urlsplit

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from hotline.ear.recognizer import Final, Partial, Recognizer, RecognizerConfig

__all__ = [
    "FAULT_MODES",
    "EarConfig",
    "EarStats",
    "LocalEar",
    "add_arguments",
    "run",
    "start_local_ear",
]

log = logging.getLogger("hotline.ear")

FAULT_MODES: tuple[str, ...] = ("refuse", "drop", "garbage", "slow")
SCRIBE_PATH = "/v1/speech-to-text/realtime"
DEEPGRAM_PATH = "/v1/listen"
SCRIBE_DEFAULT_SILENCE_S = 1.5


@dataclass(frozen=True)
class EarConfig:
    """How the local ear behaves.

    Attributes:
        api_key: if set, required (Scribe ``xi-api-key``/``token``; Deepgram ``Token``).
        fault: a :data:`FAULT_MODES` entry for every connection, or None.
        max_chunk_bytes: decoded audio per ``input_audio_chunk`` above which Scribe answers
            ``chunk_size_exceeded`` (the real limit is undocumented; 2 s of µ-law here).
        drop_after_chunks: audio chunks received before ``drop`` resets the connection.
        slow_s: delay added before every result under ``slow``.
        idle_close_s: Deepgram closes with NET-0001 after this long without any message.
        default_keyterms: grammar when the client sends no key terms (empty: the open LM).
    """

    api_key: str | None = None
    fault: str | None = None
    max_chunk_bytes: int = 16_000
    drop_after_chunks: int = 25
    slow_s: float = 1.0
    idle_close_s: float = 10.0
    default_keyterms: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.fault is not None and self.fault not in FAULT_MODES:
            raise ValueError(f"unknown fault mode {self.fault!r}; one of {', '.join(FAULT_MODES)}")


@dataclass
class EarStats:
    connections: int = 0
    open_connections: int = 0
    rejected_handshakes: int = 0
    audio_bytes: int = 0
    commits: int = 0
    input_errors: int = 0
    faults_injected: int = 0
    cpu_seconds: float = 0.0
    closes: dict[str, int] = field(default_factory=dict)


def _query(path: str) -> tuple[str, dict[str, list[str]]]:
    parts = urlsplit(path)
    return parts.path.rstrip("/") or "/", parse_qs(parts.query, keep_blank_values=True)


def _one(query: dict[str, list[str]], key: str, default: str | None = None) -> str | None:
    values = query.get(key)
    return values[-1] if values else default


def _reset(ws: ServerConnection) -> None:
    """A TCP reset (SO_LINGER 0 + abort): the peer sees the connection vanish mid-stream."""
    transport = ws.transport
    sock = transport.get_extra_info("socket")
    with contextlib.suppress(OSError, AttributeError):
        if sock is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport.abort()


class _Session:
    """What both protocols share: the recogniser in a thread, fault injection, sending."""

    def __init__(self, ear: LocalEar, ws: ServerConnection, query: dict[str, list[str]]) -> None:
        self.ear = ear
        self.cfg = ear.config
        self.ws = ws
        self.query = query
        self.fault = _one(query, "hotline_fault", self.cfg.fault)
        self.chunks = 0
        self.rec: Recognizer | None = None
        self.lock = asyncio.Lock()

    async def make_recognizer(self, keyterms: tuple[str, ...], silence_ms: int, vad: bool) -> None:
        cfg = RecognizerConfig(
            keyterms=keyterms or self.cfg.default_keyterms, silence_ms=silence_ms, vad=vad
        )
        self.rec = await asyncio.to_thread(Recognizer, cfg)

    async def recognise(self, ulaw: bytes, *, commit: bool = False) -> list[Partial | Final]:
        rec = self.rec
        assert rec is not None

        def work() -> tuple[list[Partial | Final], float]:
            import time

            t0 = time.thread_time()
            out = rec.feed(ulaw) if ulaw else []
            if commit:
                out.append(rec.commit())
            return out, time.thread_time() - t0

        async with self.lock:  # one decoder, fed in order
            out, cpu = await asyncio.to_thread(work)
        self.ear.stats.cpu_seconds += cpu
        self.ear.stats.audio_bytes += len(ulaw)
        if out and self.fault == "slow":
            await asyncio.sleep(self.cfg.slow_s)
        return out

    async def send(self, obj: dict[str, Any]) -> None:
        await self.ws.send(json.dumps(obj, separators=(",", ":")))

    async def on_audio_chunk(self) -> bool:
        """Count a chunk and inject faults; False when the connection was dropped."""
        self.chunks += 1
        if self.fault == "drop" and self.chunks >= self.cfg.drop_after_chunks:
            self.ear.stats.faults_injected += 1
            _reset(self.ws)
            return False
        if self.fault == "garbage" and self.chunks == 1:
            self.ear.stats.faults_injected += 1
            await self.ws.send("this is not json {")
            await self.ws.send(b"\x00\x01binary")
            await self.send({"message_type": "surprise", "type": "Surprise"})
        return True


# ------------------------------------------------------------------------------- Scribe


class _ScribeSession(_Session):
    async def run(self) -> None:
        q = self.query
        session_id = uuid.uuid4().hex
        if self.fault == "refuse" or not self.ear._authorised(
            self.ws.request.headers.get("xi-api-key") if self.ws.request else None,
            _one(q, "token"),
        ):
            if self.fault == "refuse":
                self.ear.stats.faults_injected += 1
            await self.send({"message_type": "auth_error", "error": "You must be authenticated."})
            await self.ws.close(1008, "auth_error")
            return
        error = self._configure()
        if error is not None:
            await self.send({"message_type": "input_error", "error": error})
            await self.ws.close(1008, "input_error")
            return
        keyterms = tuple(t for t in q.get("keyterms", []) if t.strip())
        await self.make_recognizer(keyterms, int(self.silence_s * 1000), self.vad)
        await self.send(
            {
                "message_type": "session_started",
                "session_id": session_id,
                "config": {
                    "sample_rate": 8000,
                    "audio_format": self.audio_format,
                    "language_code": _one(q, "language_code", "en"),
                    "timestamps_granularity": "word",
                    "vad_commit_strategy": self.vad,
                    "vad_silence_threshold_secs": self.silence_s,
                    "model_id": _one(q, "model_id"),
                    "enable_logging": True,
                    "include_timestamps": self.timestamps,
                    "include_language_detection": False,
                },
            }
        )
        first = True
        async for raw in self.ws:
            if isinstance(raw, bytes):
                await self._input_error("binary frames are not accepted; send input_audio_chunk")
                continue
            try:
                msg = json.loads(raw)
            except ValueError:
                await self._input_error("message is not valid JSON")
                continue
            if type(msg) is not dict or msg.get("message_type") != "input_audio_chunk":
                await self._input_error("unknown or missing message_type")
                continue
            audio_b64 = msg.get("audio_base_64")
            commit = msg.get("commit", False)
            if type(audio_b64) is not str or type(commit) is not bool:
                await self._input_error("audio_base_64 must be a string and commit a boolean")
                continue
            if "previous_text" in msg and not first:
                await self._input_error("previous_text can only be sent with the first chunk")
                continue
            sample_rate = msg.get("sample_rate", 8000)
            if sample_rate != 8000:
                await self._input_error("sample_rate must match the audio format (8000)")
                continue
            try:
                audio = base64.b64decode(audio_b64, validate=True)
            except (binascii.Error, ValueError):
                await self._input_error("audio_base_64 is not valid base64")
                continue
            if len(audio) > self.cfg.max_chunk_bytes:
                self.ear.stats.input_errors += 1
                await self.send(
                    {
                        "message_type": "chunk_size_exceeded",
                        "error": f"audio chunk larger than {self.cfg.max_chunk_bytes} bytes",
                    }
                )
                continue
            first = False
            if self.audio_format == "pcm_8000":
                from hotline.codec import ulaw_encode

                audio = ulaw_encode(audio[: len(audio) - len(audio) % 2])
            if audio and not await self.on_audio_chunk():
                return
            for result in await self.recognise(audio, commit=commit):
                await self._result(result)

    def _configure(self) -> str | None:
        q = self.query
        if not _one(q, "model_id"):
            return "model_id is required"
        self.audio_format = _one(q, "audio_format", "pcm_16000") or ""
        if self.audio_format not in ("ulaw_8000", "pcm_8000"):
            return f"audio_format {self.audio_format!r} is not served by the local ear"
        strategy = _one(q, "commit_strategy", "manual")
        if strategy not in ("manual", "vad"):
            return f"commit_strategy must be manual or vad, got {strategy!r}"
        self.vad = strategy == "vad"
        raw = _one(q, "vad_silence_threshold_secs")
        try:
            self.silence_s = float(raw) if raw is not None else SCRIBE_DEFAULT_SILENCE_S
        except ValueError:
            return "vad_silence_threshold_secs must be a number"
        if not 0.3 <= self.silence_s <= 3.0:
            return "vad_silence_threshold_secs must be within 0.3..3.0"
        self.timestamps = (_one(q, "include_timestamps", "false") or "").lower() == "true"
        return None

    async def _input_error(self, message: str) -> None:
        self.ear.stats.input_errors += 1
        await self.send({"message_type": "input_error", "error": message})

    async def _result(self, result: Partial | Final) -> None:
        if isinstance(result, Partial):
            await self.send({"message_type": "partial_transcript", "text": result.text})
            return
        self.ear.stats.commits += 1
        await self.send({"message_type": "committed_transcript", "text": result.text})
        if self.timestamps:
            words: list[dict[str, Any]] = []
            for i, w in enumerate(result.words):
                if i:
                    words.append({"text": " ", "start": w.start, "end": w.start, "type": "spacing"})
                words.append(
                    {
                        "text": w.text,
                        "start": round(w.start, 3),
                        "end": round(w.end, 3),
                        "type": "word",
                    }
                )
            await self.send(
                {
                    "message_type": "committed_transcript_with_timestamps",
                    "text": result.text,
                    "language_code": "en",
                    "words": words,
                }
            )


# ----------------------------------------------------------------------------- Deepgram


class _DeepgramSession(_Session):
    async def run(self) -> None:
        q = self.query
        self.request_id = str(uuid.uuid4())
        self.interim = (_one(q, "interim_results", "false") or "") == "true"
        self.vad_events = (_one(q, "vad_events", "false") or "") == "true"
        endpointing = _one(q, "endpointing", "10") or "10"
        self.utterance_end = _one(q, "utterance_end_ms")
        silence_ms = 3000 if endpointing == "false" else max(int(endpointing), 300)
        keyterms = tuple(t for t in [*q.get("keyterm", []), *q.get("keywords", [])] if t.strip())
        keyterms = tuple(t.rsplit(":", 1)[0] if ":" in t else t for t in keyterms)
        await self.make_recognizer(keyterms, silence_ms, True)
        self.audio_s = 0.0
        self.in_speech = False
        while True:
            try:
                raw = await asyncio.wait_for(self.ws.recv(), self.cfg.idle_close_s)
            except asyncio.TimeoutError:  # not the builtin on 3.10
                await self.ws.close(1011, "NET-0001")
                return
            except ConnectionClosed:
                return
            if isinstance(raw, bytes):
                if not raw:
                    continue
                if not await self.on_audio_chunk():
                    return
                was = self.rec.in_segment if self.rec else False
                results = await self.recognise(raw)
                self.audio_s += len(raw) / 8000
                if self.vad_events and not was and self.rec is not None and self.rec.in_segment:
                    await self.send(
                        {
                            "type": "SpeechStarted",
                            "channel": [0],
                            "timestamp": round(self.audio_s, 3),
                        }
                    )
                for r in results:
                    await self._result(r, from_finalize=False)
                continue
            try:
                msg = json.loads(raw)
            except ValueError:
                await self.ws.close(1008, "DATA-0000")
                return
            kind = msg.get("type") if type(msg) is dict else None
            if kind == "KeepAlive":
                continue
            if kind == "Finalize":
                for r in await self.recognise(b"", commit=True):
                    await self._result(r, from_finalize=True)
            elif kind == "CloseStream":
                for r in await self.recognise(b"", commit=True):
                    await self._result(r, from_finalize=True)
                await self.send(
                    {
                        "type": "Metadata",
                        "transaction_key": "deprecated",
                        "request_id": self.request_id,
                        "sha256": "",
                        "created": "",
                        "duration": round(self.audio_s, 3),
                        "channels": 1,
                        "models": ["local-ear"],
                        "model_info": {},
                    }
                )
                await self.ws.close(1000)
                return
            else:
                await self.ws.close(1008, "DATA-0000")
                return

    def _results(
        self, text: str, words: list[dict[str, Any]], start: float, end: float, **flags: bool
    ) -> dict[str, Any]:
        return {
            "type": "Results",
            "channel_index": [0, 1],
            "duration": round(max(end - start, 0.0), 3),
            "start": round(start, 3),
            "is_final": flags.get("is_final", False),
            "speech_final": flags.get("speech_final", False),
            "from_finalize": flags.get("from_finalize", False),
            "channel": {
                "alternatives": [
                    {"transcript": text, "confidence": 0.9 if text else 0.0, "words": words}
                ]
            },
            "metadata": {"request_id": self.request_id, "model_info": {"name": "local-ear"}},
        }

    async def _result(self, result: Partial | Final, *, from_finalize: bool) -> None:
        if isinstance(result, Partial):
            if self.interim:
                await self.send(self._results(result.text, [], 0.0, self.audio_s))
            return
        self.ear.stats.commits += 1
        words = [
            {
                "word": w.text,
                "start": round(w.start, 3),
                "end": round(w.end, 3),
                "confidence": 0.9,
                "punctuated_word": w.text,
            }
            for w in result.words
        ]
        await self.send(
            self._results(
                result.text,
                words,
                result.start,
                result.end,
                is_final=True,
                speech_final=not from_finalize,
                from_finalize=from_finalize,
            )
        )
        if self.utterance_end is not None and result.text and not from_finalize:
            last = result.words[-1].end if result.words else result.end
            await self.send(
                {"type": "UtteranceEnd", "channel": [0, 1], "last_word_end": round(last, 3)}
            )


# ------------------------------------------------------------------------------- server


class LocalEar:
    """The speech-to-text server. ``async with LocalEar(cfg) as ear: ear.url``."""

    def __init__(self, config: EarConfig | None = None) -> None:
        self.config = config if config is not None else EarConfig()
        self.stats = EarStats()
        self._server: Server | None = None
        self._host = "127.0.0.1"
        self._port = 0

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> None:
        if self._server is not None:
            raise RuntimeError("LocalEar already started")
        self._server = await serve(
            self._handler,
            host,
            port,
            process_request=self._process_request,
            compression=None,
            ping_interval=None,
            max_size=2**20,
            logger=logging.getLogger("hotline.ear.ws"),
        )
        name = next(iter(self._server.sockets)).getsockname()
        self._host, self._port = str(name[0]), int(name[1])
        log.info("local ear (pocketsphinx; Scribe and Deepgram protocols) on %s", self.url)

    @property
    def url(self) -> str:
        """``ws://127.0.0.1:PORT``: the base for both Scribe and Deepgram URLs."""
        if self._server is None:
            raise RuntimeError("LocalEar is not running")
        host = f"[{self._host}]" if ":" in self._host else self._host
        return f"ws://{host}:{self._port}"

    @property
    def port(self) -> int:
        return self._port

    async def stop(self) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        server.close()
        await server.wait_closed()

    async def __aenter__(self) -> LocalEar:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    def _authorised(self, header: str | None, token: str | None = None) -> bool:
        key = self.config.api_key
        return key is None or header == key or token == key

    async def _process_request(self, conn: ServerConnection, request: Request) -> Response | None:
        path, query = _query(request.path)
        fault = _one(query, "hotline_fault", self.config.fault)
        if fault is not None and fault not in FAULT_MODES:
            self.stats.rejected_handshakes += 1
            return conn.respond(400, f"unknown hotline_fault {fault!r}\n")
        if path == SCRIBE_PATH:
            return None  # Scribe reports auth failures in-band: auth_error then a close
        if path == DEEPGRAM_PATH:
            auth = request.headers.get("Authorization", "")
            token = auth[len("Token ") :] if auth.startswith("Token ") else None
            if fault == "refuse" or not self._authorised(token):
                self.stats.rejected_handshakes += 1
                if fault == "refuse":
                    self.stats.faults_injected += 1
                return conn.respond(
                    401, '{"err_code":"INVALID_AUTH","err_msg":"Invalid credentials."}\n'
                )
            if _one(query, "encoding") != "mulaw" or _one(query, "sample_rate") != "8000":
                self.stats.rejected_handshakes += 1
                return conn.respond(
                    400,
                    '{"err_code":"Bad Request","err_msg":"the local ear takes encoding=mulaw&sample_rate=8000"}\n',
                )
            return None
        self.stats.rejected_handshakes += 1
        return conn.respond(404, "Not Found\n")

    async def _handler(self, ws: ServerConnection) -> None:
        self.stats.connections += 1
        self.stats.open_connections += 1
        path, query = _query(ws.request.path if ws.request is not None else "")
        session: _Session = (
            _ScribeSession(self, ws, query)
            if path == SCRIBE_PATH
            else _DeepgramSession(self, ws, query)
        )
        try:
            await session.run()  # type: ignore[attr-defined]
        except ConnectionClosed:
            pass
        except Exception:  # a bug must not take the server down; the peer sees 1011
            log.exception("local ear session failed")
            with contextlib.suppress(Exception):
                await ws.close(1011, "transcriber_error")
        finally:
            self.stats.open_connections -= 1
            key = str(ws.close_code)
            self.stats.closes[key] = self.stats.closes.get(key, 0) + 1


async def start_local_ear(config: EarConfig | None = None, port: int = 0) -> LocalEar:
    """Start a LocalEar on 127.0.0.1 (``port`` 0: any free port); ``.url`` is its base URL.

    The caller owns it and must ``await ear.stop()``.
    """
    ear = LocalEar(config)
    await ear.start("127.0.0.1", port)
    return ear


class EarProcess:
    """The local ear in a process of its own (what ``hotline serve`` embeds).

    pocketsphinx decodes in C but holds the GIL for long stretches: in the server's own process
    a caller's speech stalled every call's event loop by ~200 ms (underruns for everyone). In
    its own process it costs the server nothing but the socket.
    """

    def __init__(self, proc: asyncio.subprocess.Process, url: str) -> None:
        self.proc = proc
        self.url = url

    @classmethod
    async def start(
        cls,
        timeout: float = 30.0,
        *,
        api_key: str | None = None,
        stderr: int | IO[Any] | None = None,
    ) -> EarProcess:
        """Spawn ``python -m hotline.ear`` on a free loopback port and wait until it listens.

        Args:
            timeout: seconds to wait for it to listen.
            api_key: the key its clients must present (None: any).
            stderr: where its log goes (a file or descriptor; None: this process's stderr).

        Raises:
            RuntimeError: it exited or did not come up within ``timeout`` seconds.
        """
        import sys

        args = ["--port", "0", "--watch-stdin"]
        if api_key is not None:
            args += ["--api-key", api_key]
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "hotline.ear",
            *args,
            stdin=asyncio.subprocess.PIPE,  # closed when this process exits, however it exits
            stdout=asyncio.subprocess.PIPE,
            stderr=stderr,
        )
        assert proc.stdout is not None
        try:
            line = await asyncio.wait_for(proc.stdout.readline(), timeout)
        except asyncio.TimeoutError:  # not the builtin on 3.10
            line = b""
        # The port is the one it bound (port 0: no probe, no race for the port).
        ready = re.match(rb"local ear on (ws://127\.0\.0\.1:\d+)/", line)
        if ready is None:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()
            raise RuntimeError(f"the local ear did not start (exit {proc.returncode})")
        return cls(proc, ready.group(1).decode())

    async def stop(self) -> None:
        """Stop it (SIGTERM, then SIGKILL after 5 s)."""
        if self.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.terminate()
            try:
                await asyncio.wait_for(self.proc.wait(), 5.0)
            except asyncio.TimeoutError:  # not the builtin on 3.10
                with contextlib.suppress(ProcessLookupError):
                    self.proc.kill()
                await self.proc.wait()


# -- CLI -------------------------------------------------------------------------------------------


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8766)
    parser.add_argument("--fault", choices=FAULT_MODES, default=None)
    parser.add_argument("--api-key", default=None, help="require this key")
    parser.add_argument(
        "--keyterm", action="append", default=[], help="default key term (repeatable)"
    )
    parser.add_argument(
        "--watch-stdin",
        action="store_true",
        help="exit when stdin reaches end of file (the embedding server is gone)",
    )


class _ParentWatch(asyncio.Protocol):
    """Sets ``stop`` when the read end of stdin reaches end of file or fails."""

    def __init__(self, stop: asyncio.Event) -> None:
        self.stop = stop

    def eof_received(self) -> bool:
        self.stop.set()
        return False  # close the transport

    def connection_lost(self, exc: Exception | None) -> None:
        self.stop.set()


async def _serve(cfg: EarConfig, host: str, port: int, watch_stdin: bool = False) -> None:
    import signal

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    watch: asyncio.BaseTransport | None = None
    if watch_stdin:
        # Embedded by a server: its end of our stdin closes when it exits, however it exits
        # (kill -9 included), and then so do we: never an orphan holding ports and pipes.
        # Watched by the event loop on fd 0 itself: a thread blocked in sys.stdin.buffer.read
        # held the buffered reader's lock, and the interpreter aborted at exit waiting for it.
        stdin = open(0, "rb", buffering=0, closefd=False)  # noqa: SIM115 (the transport owns it)
        watch, _ = await loop.connect_read_pipe(lambda: _ParentWatch(stop), stdin)
    ear = LocalEar(cfg)
    try:
        await ear.start(host, port)
        print(
            f"local ear on {ear.url}{SCRIBE_PATH} (Scribe) and {ear.url}{DEEPGRAM_PATH} (Deepgram)",
            flush=True,
        )
        await stop.wait()
    finally:
        await ear.stop()
        if watch is not None:
            watch.close()


def run(args: argparse.Namespace) -> int:
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        cfg = EarConfig(
            api_key=args.api_key, fault=args.fault, default_keyterms=tuple(args.keyterm)
        )
    except ValueError as exc:
        print(f"hotline ear: {exc}")
        return 2
    try:
        asyncio.run(_serve(cfg, args.host, args.port, args.watch_stdin))
    except OSError as exc:
        print(f"hotline ear: cannot listen on {args.host}:{args.port}: {exc}")
        return 1
    finally:
        from hotline.ear.recognizer import cleanup_model_dir

        cleanup_model_dir()
    return 0
