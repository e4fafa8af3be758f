"""LocalEar: an offline speech-to-text WebSocket server on loopback (pocketsphinx or Whisper).

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
* **Deepgram live** on ``/v1/listen`` (A.2): ``encoding=mulaw`` or ``linear16`` (16-bit
  little-endian PCM, converted to µ-law on arrival), ``sample_rate=8000``, key in
  ``Authorization: Token <key>`` (HTTP 401 otherwise); audio as binary frames; ``Results``
  (interim ``is_final: false``; ``is_final``+``speech_final`` after ``endpointing`` ms of
  silence; ``from_finalize`` after ``Finalize``), ``UtteranceEnd`` after ``utterance_end_ms``
  (sent right after the final here: the segmenter has already waited out the silence),
  ``SpeechStarted`` (``vad_events``), ``KeepAlive``, ``CloseStream`` -> ``Metadata`` + close
  1000, and a close with reason ``NET-0001`` after :attr:`EarConfig.idle_close_s` (10 s)
  without audio or a message.

Recognition, :attr:`EarConfig.engine`: ``grammar`` (hotline.ear.recognizer): key terms become
a grammar; only speech segments are decoded, in a worker thread (``asyncio.to_thread``), one
segmenter+decoder per connection. ``whisper`` (hotline.ear.whisper): one segmenter per
connection, one Whisper model for the server, decoding in its pool; the key terms' sentences
are the prompt.

Fault modes (:data:`FAULT_MODES`), for the whole server (:attr:`EarConfig.fault`) or per
connection (query ``hotline_fault=<mode>``): ``refuse`` (Scribe: ``auth_error`` + close 1008
right after the handshake; Deepgram: HTTP 401), ``drop`` (TCP reset after
:attr:`EarConfig.drop_after_chunks` audio chunks), ``garbage`` (a non-JSON text frame, a
binary frame and a JSON message of an unknown type after the first chunk, then normal
service), ``slow`` (every result delayed by :attr:`EarConfig.slow_s`).

The package: ``config`` (configuration, counters, fault modes, endpoints), ``session`` (what
both protocols share), ``scribe`` and ``deepgram`` (one connection of each), this module (the
server), ``process`` (the ear in its own process, what ``hotline serve`` embeds), ``cli``
(``python -m hotline.ear``); ``recognizer`` and ``phrases`` do the hearing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from hotline.ear.config import DEEPGRAM_PATH, FAULT_MODES, SCRIBE_PATH, EarConfig, EarStats
from hotline.ear.deepgram import DEEPGRAM_ENCODINGS, DeepgramSession
from hotline.ear.scribe import ScribeSession
from hotline.ear.session import Session, query_value, split_target
from hotline.ear.whisper import DecodePool, WhisperEngine
from hotline.loopback import LoopbackServer

__all__ = ["LocalEar", "start_local_ear"]

log = logging.getLogger("hotline.ear")


class LocalEar(LoopbackServer):
    """The speech-to-text server. ``async with LocalEar(cfg) as ear: ear.url``."""

    ws_logger = "hotline.ear.ws"

    def __init__(self, config: EarConfig | None = None) -> None:
        super().__init__()
        self.config = config if config is not None else EarConfig()
        self.stats = EarStats()
        self._pool: DecodePool | None = None

    @property
    def pool(self) -> DecodePool | None:
        return self._pool

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> None:
        if self.config.engine == "whisper" and self._pool is None:
            # One model for every connection, loaded before the port opens (seconds, once).
            engine = await asyncio.to_thread(WhisperEngine, self.config.whisper)
            self._pool = DecodePool(engine)
        await super().start(host, port)
        what = (
            f"Whisper {self._pool.engine.model_name}"
            if self._pool is not None
            else "pocketsphinx on the key terms' grammar"
        )
        log.info("local ear (%s; Scribe and Deepgram protocols) on %s", what, self.url)

    async def stop(self) -> None:
        await super().stop()
        pool, self._pool = self._pool, None
        if pool is not None:
            self.stats.decode_seconds = pool.decode_seconds
            done = sum(pool.decoded)
            log.info(
                "decode pool: %d finals, %d early, %d partials decoded (skipped: %d early, "
                "%d partials); %.1f s decoding, mean wait in queue %.0f ms",
                *pool.decoded,
                pool.skipped[1],
                pool.skipped[2],
                pool.decode_seconds,
                1000 * pool.queued_seconds / max(done, 1),
            )
            await asyncio.to_thread(pool.close)
            pool.engine.close()

    def authorised(self, header: str | None, token: str | None = None) -> bool:
        key = self.config.api_key
        return key is None or header == key or token == key

    async def _process_request(self, conn: ServerConnection, request: Request) -> Response | None:
        path, query = split_target(request.path)
        fault = query_value(query, "hotline_fault", self.config.fault)
        if fault is not None and fault not in FAULT_MODES:
            self.stats.rejected_handshakes += 1
            return conn.respond(400, f"unknown hotline_fault {fault!r}\n")
        if path == SCRIBE_PATH:
            return None  # Scribe reports auth failures in-band: auth_error then a close
        if path == DEEPGRAM_PATH:
            auth = request.headers.get("Authorization", "")
            token = auth[len("Token ") :] if auth.startswith("Token ") else None
            if fault == "refuse" or not self.authorised(token):
                self.stats.rejected_handshakes += 1
                if fault == "refuse":
                    self.stats.faults_injected += 1
                return conn.respond(
                    401, '{"err_code":"INVALID_AUTH","err_msg":"Invalid credentials."}\n'
                )
            if (
                query_value(query, "encoding") not in DEEPGRAM_ENCODINGS
                or query_value(query, "sample_rate") != "8000"
            ):
                self.stats.rejected_handshakes += 1
                return conn.respond(
                    400,
                    '{"err_code":"Bad Request","err_msg":"the local ear takes encoding=mulaw or '
                    'linear16 with sample_rate=8000"}\n',
                )
            return None
        self.stats.rejected_handshakes += 1
        return conn.respond(404, "Not Found\n")

    async def _handler(self, ws: ServerConnection) -> None:
        self.stats.connections += 1
        self.stats.open_connections += 1
        path, query = split_target(ws.request.path if ws.request is not None else "")
        session: Session = (
            ScribeSession(self, ws, query)
            if path == SCRIBE_PATH
            else DeepgramSession(self, ws, query)
        )
        try:
            await session.run()
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
