"""One accepted connection of the stand-in: the receive loop (stream-input or
multi-stream-input), one pump task per stream generating and pacing its audio, and the faults."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
import random
from dataclasses import dataclass
from typing import Any, Protocol

from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed

from hotline.errors import HotlineError
from hotline.tts_standin.config import ConnectionRecord, StandInConfig, StandInStats
from hotline.tts_standin.faults import fault_for, reset_mid_message
from hotline.tts_standin.protocol import (
    DEFAULT_INACTIVITY_TIMEOUT,
    DEFAULT_OUTPUT_FORMAT,
    FIRST_ONLY,
    LANGUAGE_MODELS,
    MAX_INACTIVITY_TIMEOUT,
    Invalid,
    bool_param,
    check_fields,
    check_first,
    parse_message,
    parse_target,
    timeout_message,
)
from hotline.tts_standin.synth import StreamSynth
from hotline.tts_standin.textbuf import (
    DEFAULT_SCHEDULE,
    TextBuffer,
    bytes_per_second,
    chunk_alignments,
    cut_chunks,
    normalise_text,
)

#: ElevenLabs' text for a sixth context on one socket (livekit/agents-js#1985).
MAX_CONTEXTS_MESSAGE = (
    "Maximum simultaneous contexts per WebSocket connection exceeded ({n}). "
    "Please close an existing context before opening a new one."
)


class StandInHost(Protocol):
    """What a session uses of the server that accepted it (the server module imports this one)."""

    @property
    def config(self) -> StandInConfig: ...
    @property
    def stats(self) -> StandInStats: ...


__all__ = ["Session"]

log = logging.getLogger("hotline.voice")  # the name hotline.server.logs routes (audio loggers)


class _Done(Exception):
    """The connection was ended by the server (error, fault, final)."""


@dataclass
class _Job:
    text: str
    end: bool  # flush the encoder after this generation
    final: bool  # send the final message after it
    trigger: float


class _Stream:
    """One utterance stream: the single-context socket, or one multi-stream-input context."""

    def __init__(
        self, context_id: str | None, synth: StreamSynth, buf: TextBuffer, now: float
    ) -> None:
        self.context_id = context_id
        self.synth = synth
        self.buf = buf
        self.queue: asyncio.Queue[_Job] = asyncio.Queue()
        self.task: asyncio.Task[None] | None = None
        self.next_send_at = 0.0
        self.first_audio_sent = False
        self.spoke = False
        self.last_activity = now


class Session:
    """One accepted connection: the receive loop plus one pump task per stream."""

    def __init__(self, voice: StandInHost, ws: ServerConnection, number: int) -> None:
        self.voice = voice
        self.cfg = voice.config
        self.ws = ws
        self.loop = asyncio.get_running_loop()
        target = parse_target(ws.request.path if ws.request is not None else "")
        assert target is not None  # process_request refused everything else
        voice_id, kind, query = target
        self.kind = kind
        self.query = query
        self.fault = fault_for(voice_id, query, voice.config.fault)
        self.record = ConnectionRecord(
            number=number,
            kind=kind,
            voice_id=voice_id,
            query=dict(query),
            fault=self.fault,
            opened_at=self.loop.time(),
            model_id=query.get("model_id"),
            output_format=query.get("output_format", DEFAULT_OUTPUT_FORMAT),
        )
        self.output_format = self.record.output_format
        self.rng = random.Random(f"{self.cfg.seed}-{number}")
        self.server_closing = False
        self.audio_sent = 0  # audio messages on this connection
        self.fault_done = False
        self.schedule: tuple[int, ...] = DEFAULT_SCHEDULE
        self.auto_mode = bool_param(query.get("auto_mode"))
        self.tasks: set[asyncio.Task[None]] = set()
        self.inactivity = DEFAULT_INACTIVITY_TIMEOUT
        self.chunk_range = (1, 1)
        self.espeak_voice = voice.config.voice  # language_code may choose another

    # -- setup ---------------------------------------------------------------------------------

    def _configure(self) -> str | None:
        """Validate query parameters; returns an error message or None."""
        try:
            from hotline.tts_standin.encode import supported_formats

            formats = supported_formats()
        except ImportError:  # pragma: no cover - codec not built
            formats = ()
        if self.output_format not in formats:
            return f"Invalid output_format {self.output_format!r}. Supported: {', '.join(formats)}"
        raw = self.query.get("inactivity_timeout")
        if raw is not None:
            try:
                value = float(raw)
            except ValueError:
                return f"Invalid inactivity_timeout {raw!r}"
            if not 0 < value <= MAX_INACTIVITY_TIMEOUT:
                return f"inactivity_timeout must be within 1..{MAX_INACTIVITY_TIMEOUT:.0f} seconds"
            self.inactivity = value
        lang = self.query.get("language_code")
        if lang is not None:  # ElevenLabs: enforce this language (ISO 639-1) on the model
            if not (2 <= len(lang) <= 3 and lang.isalpha() and lang.isascii()):
                return f"Invalid language_code {lang!r}"
            model = self.record.model_id
            if model is not None and model not in LANGUAGE_MODELS:
                return (
                    f"Model {model!r} does not support language enforcement: language_code "
                    f"is accepted by {', '.join(sorted(LANGUAGE_MODELS))} only"
                )
            if lang.lower() != "en":  # English keeps the configured (en-us) voice
                self.espeak_voice = lang.lower()  # eSpeak NG names voices by language code
        self.record.espeak_voice = self.espeak_voice
        if self.fault == "idle_close":
            self.inactivity = self.cfg.idle_close_s
        if self.cfg.chunk_bytes is not None:
            self.chunk_range = self.cfg.chunk_bytes
        else:
            bps = bytes_per_second(self.output_format)
            lo_ms, hi_ms = self.cfg.chunk_ms
            self.chunk_range = (max(1, int(bps * lo_ms / 1000)), max(2, int(bps * hi_ms / 1000)))
        return None

    def _new_stream(self, context_id: str | None) -> _Stream:
        synth = StreamSynth(
            self.output_format,
            voice=self.espeak_voice,
            rate_wpm=self.cfg.rate_wpm,
            cache=self.cfg.cache,
        )
        st = _Stream(
            context_id, synth, TextBuffer(self.schedule, auto_mode=self.auto_mode), self.loop.time()
        )
        st.task = self.loop.create_task(self._pump(st))
        self.tasks.add(st.task)
        st.task.add_done_callback(self.tasks.discard)
        return st

    # -- sending -------------------------------------------------------------------------------

    async def _send_json(self, obj: dict[str, Any]) -> None:
        await self.ws.send(json.dumps(obj, separators=(",", ":")))

    async def _close(self, code: int, reason: str = "") -> None:
        self.server_closing = True
        with contextlib.suppress(ConnectionClosed):
            await self.ws.close(code, reason[:120])

    async def fail(self, error: str, message: str, *, context_id: str | None = None) -> None:
        """ElevenLabs' error shape, then a 1008 close."""
        self.voice.stats.errors_sent += 1
        self.record.error_sent = error
        body: dict[str, Any] = {"message": message, "error": error, "code": 1008}
        if context_id is not None:
            body["contextId"] = context_id
        self.server_closing = True
        with contextlib.suppress(ConnectionClosed):
            await self._send_json(body)
        await self._close(1008, error)

    async def _reset_mid_chunk(self, payload: str) -> None:
        """Half an audio message on the wire, then a TCP RST."""
        self.server_closing = True
        reset_mid_message(self.ws.transport, payload)

    async def _pump(self, st: _Stream) -> None:
        stats = self.voice.stats
        try:
            while True:
                job = await st.queue.get()
                if job.text or job.end:
                    try:
                        gen = await asyncio.to_thread(st.synth.generate, job.text, end=job.end)
                    except (HotlineError, ValueError) as exc:
                        log.warning("local voice: cannot synthesize (%s); skipped", exc)
                        gen = None
                    if gen is not None and gen.audio:
                        stats.generations += 1
                        await self._send_generation(st, job, gen.audio, gen.text, gen.duration_ms)
                if job.final:
                    await self._send_final(st)
                    return
        except (ConnectionClosed, _Done):
            return
        except Exception:  # a bug here must not hang the client: report it like ElevenLabs would
            log.exception("local voice: stream failed")
            await self.fail("internal_error", "The local voice failed to generate audio.")

    async def _send_generation(
        self, st: _Stream, job: _Job, audio: bytes, text: str, duration_ms: float
    ) -> None:
        cfg = self.cfg
        stats = self.voice.stats
        bps = bytes_per_second(self.output_format)
        chunks = cut_chunks(audio, self.rng, *self.chunk_range)
        durs = [1000.0 * len(c) / bps for c in chunks]
        aligns = chunk_alignments(text, duration_ms, durs)
        # normalizedAlignment counts the normalised text's characters ("12" -> "twelve").
        normalized = normalise_text(text)
        norm_aligns = (
            aligns if normalized == text else chunk_alignments(normalized, duration_ms, durs)
        )
        delay = cfg.first_chunk_delay
        if self.fault == "slow_first_chunk" and not st.first_audio_sent:
            delay = cfg.slow_first_chunk_s
        ready = job.trigger + delay
        for chunk, dur, al, nal in zip(chunks, durs, aligns, norm_aligns, strict=True):
            t = max(ready, st.next_send_at)
            wait = t - self.loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
            else:
                t = self.loop.time()
            if self.fault == "corrupt_audio" and self.audio_sent % 3 == 1:
                stats.faults_injected += 1
                chunk = self.rng.randbytes(len(chunk))
            null = self.rng.random() < cfg.null_alignment  # sometimes no alignment at all
            msg: dict[str, Any] = {
                "audio": base64.b64encode(chunk).decode("ascii"),
                "isFinal": False,
                "normalizedAlignment": nal.to_json() if nal is not None and not null else None,
                "alignment": al.to_json() if al is not None and not null else None,
            }
            if st.context_id is not None:
                msg["contextId"] = st.context_id
            if (
                self.fault in ("error_1008", "reset_mid_chunk")
                and self.audio_sent >= cfg.fault_after_chunks
            ):
                await self._strike(json.dumps(msg, separators=(",", ":")))
            await self._send_json(msg)
            self.audio_sent += 1
            st.first_audio_sent = True
            st.next_send_at = t + dur / 1000.0 / cfg.realtime_factor
            self.record.audio_messages += 1
            self.record.audio_bytes += len(chunk)
            if self.record.first_audio_at is None:
                self.record.first_audio_at = self.loop.time()
            stats.audio_messages += 1
            stats.audio_bytes += len(chunk)

    async def _strike(self, payload: str) -> None:
        """The mid-utterance faults; never returns."""
        self.voice.stats.faults_injected += 1
        self.fault_done = True
        if self.fault == "error_1008":
            await self.fail(
                "internal_error",
                "Unfortunately something went wrong with this request. You are not charged for it.",
            )
        else:
            await self._reset_mid_chunk(payload)
        raise _Done

    async def _send_final(self, st: _Stream) -> None:
        if self.fault == "no_final":
            self.voice.stats.faults_injected += 1
            return
        if self.fault in ("error_1008", "reset_mid_chunk") and not self.fault_done:
            await self._strike('{"audio":"","isFinal":false}')
        self.voice.stats.finals_sent += 1
        self.record.final_sent = True
        if st.context_id is None:
            await self._send_json(
                {"audio": None, "isFinal": True, "normalizedAlignment": None, "alignment": None}
            )
            await self._close(1000)
        else:
            if self.cfg.final_delay > 0:  # the final follows the last audio, not at once
                await asyncio.sleep(self.cfg.final_delay)
            await self._send_json({"isFinal": True, "contextId": st.context_id})

    # -- receiving -----------------------------------------------------------------------------

    def _parse(self, raw: str | bytes) -> dict[str, Any]:
        obj = parse_message(raw)
        if len(self.record.messages) < 200:
            self.record.messages.append(obj)
        return check_fields(obj)

    def _apply_first(self, obj: dict[str, Any]) -> None:
        schedule = check_first(obj)
        if schedule is not None:
            self.schedule = schedule

    def _enqueue(
        self, st: _Stream, segments: list[str], rest: str | None, *, end: bool, final: bool
    ) -> None:
        now = self.loop.time()
        for seg in segments:
            st.queue.put_nowait(_Job(seg, False, False, now))
        if rest is not None or end or final:
            st.queue.put_nowait(_Job(rest or "", end, final, now))
        if (segments or rest) and not st.spoke:
            st.spoke = True
            self.voice.stats.utterances += 1

    async def _recv(self, deadline: float | None) -> str | bytes:
        if deadline is None:
            return await self.ws.recv()
        return await asyncio.wait_for(self.ws.recv(), max(0.0, deadline - self.loop.time()))

    async def run(self) -> None:
        error = self._configure()
        if error is None and self.espeak_voice != self.cfg.voice:
            from hotline.tts_standin.espeak import has_voice

            if not await asyncio.to_thread(has_voice, self.espeak_voice):  # the engine's lock
                error = f"language_code {self.espeak_voice!r} is not supported by the local voice"
        if error is not None:
            await self.fail("invalid_request", error)
            return
        try:
            if self.kind == "stream-input":
                await self._run_single()
            else:
                await self._run_multi()
        except Invalid as exc:
            self.voice.stats.invalid_messages += 1
            await self.fail("invalid_input_message", f"Invalid message received: {exc}")
        except ConnectionClosed:
            pass
        finally:
            for t in list(self.tasks):
                t.cancel()
            if self.tasks:
                await asyncio.gather(*self.tasks, return_exceptions=True)

    async def _run_single(self) -> None:
        st: _Stream | None = None
        first = True
        ended = False
        last = self.loop.time()
        while True:
            deadline = None if (ended or self.fault == "no_final") else last + self.inactivity
            try:
                raw = await self._recv(deadline)
            except asyncio.TimeoutError:
                self.voice.stats.timeouts += 1
                await self.fail("input_timeout_exceeded", timeout_message(self.inactivity))
                return
            last = self.loop.time()
            obj = self._parse(raw)
            if ended:
                continue  # after end of stream ElevenLabs ignores input until it closes
            text = obj.get("text")
            flush = obj.get("flush", False)
            if first:
                if not isinstance(text, str) or not text or text.strip():
                    raise Invalid("the first message must initialise the stream with text ' '")
                self._apply_first(obj)
                first = False
                st = self._new_stream(None)
                continue
            assert st is not None
            for key in FIRST_ONLY:
                if key in obj:
                    raise Invalid(f"{key} may only be sent in the first message")
            if text is None and not flush:
                raise Invalid("field 'text' is required")
            if text == "":  # end of stream: flush, isFinal, close
                self._enqueue(st, [], st.buf.flush(), end=True, final=True)
                ended = True
                continue
            segments = st.buf.add(text or "", try_trigger=obj.get("try_trigger_generation", False))
            self._enqueue(st, segments, st.buf.flush() if flush else None, end=flush, final=False)

    async def _run_multi(self) -> None:
        contexts: dict[str, _Stream] = {}
        # Closed contexts still flushing: they generate on and count toward max_contexts
        # until their final message has gone (ElevenLabs' accounting).
        closing: list[_Stream] = []
        last = self.loop.time()
        while True:
            now = self.loop.time()
            deadlines = [c.last_activity + self.inactivity for c in contexts.values()]
            deadline: float | None = min(deadlines) if deadlines else last + self.inactivity
            if self.fault == "no_final":
                deadline = None
            try:
                raw = await self._recv(deadline)
            except asyncio.TimeoutError:
                now = self.loop.time()
                if not contexts:
                    self.voice.stats.timeouts += 1
                    await self.fail("input_timeout_exceeded", timeout_message(self.inactivity))
                    return
                for dead, c in list(contexts.items()):
                    if c.last_activity + self.inactivity <= now:
                        self.voice.stats.timeouts += 1
                        self.voice.stats.errors_sent += 1
                        del contexts[dead]
                        if c.task is not None:
                            c.task.cancel()
                        await self._send_json(
                            {
                                "message": timeout_message(self.inactivity),
                                "error": "input_timeout_exceeded",
                                "code": 1008,
                                "contextId": dead,
                            }
                        )
                last = now
                continue
            now = last = self.loop.time()
            obj = self._parse(raw)
            if obj.get("close_socket") is True:
                await self._close_socket(contexts, flush=obj.get("flush", False))
                return
            cid: Any = obj.get("context_id")
            if cid is None:
                if set(obj) <= {"text"} and obj.get("text", "").strip() == "":
                    continue  # socket keep-alive
                raise Invalid("field 'context_id' is required")
            if not isinstance(cid, str) or not cid or len(cid) > 256:
                raise Invalid("context_id must be a non-empty string")
            st = contexts.get(cid)
            fresh = st is None
            if st is None:
                if obj.get("close_context") is True:
                    continue  # closing an unknown (already closed) context: nothing to do
                closing[:] = [c for c in closing if c.task is not None and not c.task.done()]
                if len(contexts) + len(closing) >= self.cfg.max_contexts:
                    await self.fail(
                        "max_active_conversations",
                        MAX_CONTEXTS_MESSAGE.format(n=self.cfg.max_contexts),
                    )
                    return
                self._apply_first(obj)
                st = contexts[cid] = self._new_stream(cid)
            else:
                for key in FIRST_ONLY:
                    if key in obj:
                        raise Invalid(f"{key} may only be sent in the first message of a context")
            st.last_activity = now
            if obj.get("close_context") is True:
                del contexts[cid]
                closing.append(st)
                self.voice.stats.contexts_closed += 1
                if obj.get("flush", False):
                    segments = st.buf.add(obj.get("text", ""))
                    self._enqueue(st, segments, st.buf.flush(), end=True, final=True)
                else:
                    # Without flush, text not yet sent for generation is dropped; but what was
                    # already flushed (or triggered) goes on generating: "If it has already
                    # been set to flush it will continue flushing" (CloseContext schema). The
                    # final follows its last audio, and until then the context counts.
                    st.buf.clear()
                    self._enqueue(st, [], None, end=False, final=True)
                continue
            text = obj.get("text", "")
            if fresh and text.strip() == "":
                continue  # context initialisation
            segments = st.buf.add(text) if text else []
            flush = obj.get("flush", False)
            rest = st.buf.flush() if flush else None
            if segments or flush:
                self._enqueue(st, segments, rest, end=flush, final=False)

    async def _close_socket(self, contexts: dict[str, _Stream], *, flush: bool) -> None:
        for st in contexts.values():
            if flush:
                self._enqueue(st, [], st.buf.flush(), end=True, final=True)
        pumps = list(self.tasks)  # includes contexts already closing with a flush
        if not flush:
            for t in pumps:
                t.cancel()
        if pumps:
            await asyncio.gather(*pumps, return_exceptions=True)
        contexts.clear()
        await self._close(1000)
