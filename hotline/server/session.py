"""One live call: the tasks that move data between the Twilio socket, the TTS sockets and
:class:`hotline.core.call.Call`.

Tasks per call: the *receiver* (reads Twilio frames, hands them to the Call, never awaits
anything else), the *sender* (pumps due frames out, wakes on new audio or the Call's next
deadline) and one *TTS task* per utterance. :meth:`CallSession.run` returns once the call is
over, and only after every task is finished and every socket closed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from types import MappingProxyType
from typing import NoReturn

from starlette.websockets import WebSocket, WebSocketState

from hotline.core.call import (
    Action,
    BargeIn,
    Call,
    CallState,
    CancelTTS,
    FirstFrame,
    Hangup,
    Started,
    StartTTS,
    Stopped,
    Underrun,
    UtteranceEnded,
)
from hotline.core.events import TTSAudio, TTSEvent
from hotline.core.script import CallScript
from hotline.core.vad import Vad
from hotline.errors import ElevenLabsProtocolError, ProtocolError
from hotline.server.elevenlabs_client import TTSConfig, TTSFailed, synthesize
from hotline.server.hub import Hub
from hotline.server.logs import mask_number
from hotline.server.speaker import CallVoice

__all__ = ["MAX_MESSAGE", "CallSession"]

log = logging.getLogger("hotline.call")

DEBUG_SENTENCE = "WebSocket is working! You should hear this message clearly."
#: The /debug-websocket-voice call: one sentence, then hang up.
DEBUG_SCRIPT = CallScript(
    greeting=DEBUG_SENTENCE,
    menu=MappingProxyType({}),
    goodbye=DEBUG_SENTENCE,
    goodbye_digit=None,
    invalid_digit=DEBUG_SENTENCE,
)

#: Largest Twilio message accepted on /media-stream (a 20 ms media message is ~300 bytes).
MAX_MESSAGE = 64 * 1024
_MAX_ERROR_KINDS = 32
#: Bytes of an utterance's first TTS audio message converted before the first frames go out.
FIRST_SLICE = 2048
#: Seconds a media stream may stay open without a valid ``start``.
START_TIMEOUT = 10.0
#: Undecodable TTS bytes in one utterance worth a warning (a stray partial frame is not).
CORRUPT_AUDIO_LOG_BYTES = 1024

clock = time.perf_counter


def _assert_never(value: NoReturn) -> NoReturn:
    raise AssertionError(f"unhandled action: {value!r}")


class CallSession:
    def __init__(self, hub: Hub, ws: WebSocket) -> None:
        self.hub = hub
        self.ws = ws
        settings = hub.settings
        self.call = Call(
            hub.script,
            output_format=settings.elevenlabs_output_format,
            vad=Vad(hub.vad_config),
            converter_factory=hub.speech.converter_factory if hub.speech is not None else None,
        )
        #: The call's speech path (phrase cache, its TTS socket); set at ``start``.
        self.voice: CallVoice | None = None
        self.call_sid: str | None = None
        self.caller = ""
        self.mode = "script"
        self.started_at = time.time()
        self.registered = False
        self.end_reason = ""
        self.close_code = 1000
        self._done = asyncio.Event()
        self._wake = asyncio.Event()
        self._tts_tasks: dict[int, asyncio.Task[None]] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._error_kinds: dict[str, int] = {}
        self._tts_first_chunk: dict[int, float] = {}

    # ------------------------------------------------------------------ public

    @property
    def label(self) -> str:
        return self.call_sid or "(no start yet)"

    def info(self) -> dict[str, object]:
        now = clock()
        call = self.call
        return {
            "call_sid": self.call_sid,
            "stream_sid": call.stream_sid,
            "caller": mask_number(self.caller),
            "mode": self.mode,
            "state": call.state.value,
            "started_at": self.started_at,
            "speaking": call.is_speaking(now),
            "current_utterance": call.current_utterance,
            "queued_utterances": call.queued_utterances,
            "utterances": call.utterances_total,
            "barge_ins": call.barge_ins,
            "audio_ms_sent": call.bytes_sent / 8,
        }

    def say(self, text: str, interrupt: bool) -> int:
        """Queue (or, with ``interrupt``, replace what plays with) ``text``.

        Raises:
            CallStateError: the call is not active.
            ValueError: empty text.
        """
        uid = self.call.say(text, clock(), interrupt=interrupt)
        self._dispatch()
        return uid

    def hangup(self, reason: str = "hangup requested") -> None:
        self.call.hangup(clock(), reason)
        self._dispatch()

    async def run(self) -> None:
        """Run the call until it ends; then cancel every task and close every socket."""
        self.hub.sessions.add(self)
        no_start = asyncio.get_running_loop().call_later(START_TIMEOUT, self._start_timeout)
        try:
            self._tasks = [
                asyncio.create_task(self._receive_loop(), name="hotline-receive"),
                asyncio.create_task(self._send_loop(), name="hotline-send"),
            ]
            await self._done.wait()
        finally:
            no_start.cancel()
            await self._teardown()

    def _start_timeout(self) -> None:
        if self.call_sid is None and not self._done.is_set():
            log.warning("media stream closed: no valid start within %g s", START_TIMEOUT)
            self._finish("no start", code=1008)

    # ------------------------------------------------------------------ tasks

    async def _receive_loop(self) -> None:
        ws = self.ws
        call = self.call
        try:
            while True:
                message = await ws.receive()
                kind = message["type"]
                if kind == "websocket.disconnect":
                    if message.get("code") == 1009:
                        # uvicorn's ws_max_size refused a message over MAX_MESSAGE bytes.
                        self.hub.metrics.protocol_errors.labels("twilio").inc()
                        log.warning(
                            "call %s: a message over %d bytes: stream closed (1009)",
                            self.label,
                            MAX_MESSAGE,
                        )
                    self._finish("twilio disconnected", code=None)
                    return
                text = message.get("text")
                try:
                    if text is not None:
                        if len(text) > MAX_MESSAGE:
                            raise ProtocolError(f"message over {MAX_MESSAGE} bytes")
                        call.receive_text(text, clock())
                    else:
                        call.receive_bytes(message.get("bytes") or b"")
                except ProtocolError as exc:
                    self._bad_message("twilio", exc)
                    continue
                # Most messages are inbound audio that changes nothing to send: wake the
                # sender only when there is something for it to do.
                actions = call.actions()
                for action in actions:
                    self._execute(action)
                if actions or call.has_data_to_send:
                    self._wake.set()
                else:
                    now = clock()
                    deadline = call.next_deadline(now)
                    if deadline is not None and deadline <= now:
                        self._wake.set()
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("call %s: receive loop failed", self.label)
            self._finish("internal error", code=1011)

    async def _send_loop(self) -> None:
        loop = asyncio.get_running_loop()
        call = self.call
        ws = self.ws
        metrics = self.hub.metrics
        try:
            while True:
                self._wake.clear()
                now = clock()
                bytes_before = call.bytes_sent
                call.pump(now)
                messages = call.data_to_send()
                firsts: dict[int, FirstFrame] = {}
                for action in call.actions():
                    if isinstance(action, FirstFrame):
                        firsts[action.message_index] = action
                    else:
                        self._execute(action)
                for index, message in enumerate(messages):
                    await ws.send_text(message)
                    first = firsts.get(index)
                    if first is not None:
                        self._first_frame(first, clock())
                if call.bytes_sent > bytes_before:
                    metrics.audio_bytes_out.inc(call.bytes_sent - bytes_before)
                if self._done.is_set():
                    return
                if self._wake.is_set():
                    continue
                now = clock()
                deadline = call.next_deadline(now)
                handle = None
                if deadline is not None:
                    handle = loop.call_later(max(deadline - now, 0.0), self._wake.set)
                try:
                    await self._wake.wait()
                finally:
                    if handle is not None:
                        handle.cancel()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            if self._done.is_set():
                return
            if _is_disconnect(exc):
                self._finish("twilio disconnected", code=None)
                return
            log.exception("call %s: send loop failed", self.label)
            self._finish("internal error", code=1011)

    async def _tts_task(
        self, uid: int, text: str, config: TTSConfig | None, converter: object
    ) -> None:
        hub = self.hub
        call = self.call
        started = clock()
        skipped_before = getattr(getattr(converter, "stats", None), "skipped_bytes", 0)
        conversion = hub.metrics.conversion

        async def on_event(event: TTSEvent) -> bool:
            now = clock()
            if isinstance(event, TTSAudio) and uid not in self._tts_first_chunk:
                self._tts_first_chunk[uid] = now - started
                data = event.data
                if len(data) > FIRST_SLICE:
                    # A big first chunk: convert a slice, let the sender put the first frames
                    # on the wire, then convert the rest (the codec is chunking-invariant).
                    head = TTSAudio(data[:FIRST_SLICE], event.alignment, None, event.context_id)
                    if not call.receive_tts(uid, head, now):
                        return False
                    conversion.observe(clock() - now)
                    self._dispatch()
                    await asyncio.sleep(0)
                    if call.current_utterance != uid:
                        return False
                    now = clock()
                    event = TTSAudio(data[FIRST_SLICE:], None, None, event.context_id)
            if not call.receive_tts(uid, event, now):
                return False  # barge-in / hang-up: late audio dropped, close the socket
            if isinstance(event, TTSAudio):
                conversion.observe(clock() - now)
            self._dispatch()
            return call.current_utterance == uid

        def on_bad(exc: ElevenLabsProtocolError) -> None:
            self._bad_message("elevenlabs", exc)

        try:
            if config is None:
                raise TTSFailed("connect", "no TTS configured")
            if self.voice is not None:
                await self.voice.speak(uid, config, text, converter, on_event, on_bad)
            else:
                await synthesize(config, text, on_event, on_bad)
        except asyncio.CancelledError:
            raise
        except TTSFailed as exc:
            hub.metrics.elevenlabs_errors.labels(exc.kind).inc()
            call.tts_failed(uid, str(exc), clock())
            self._dispatch()
        except Exception as exc:
            log.exception("call %s: utterance %d: TTS task failed", self.label, uid)
            hub.metrics.elevenlabs_errors.labels("internal").inc()
            call.tts_failed(uid, f"internal: {type(exc).__name__}", clock())
            self._dispatch()
        else:
            # The stream ended (isFinal, or we stopped wanting it); if the Call still waits
            # for this utterance (stream ended without isFinal being seen), end it.
            if call.current_utterance == uid:
                call.tts_failed(uid, "stream ended without isFinal", clock())
                self._dispatch()
            skipped = getattr(getattr(converter, "stats", None), "skipped_bytes", 0)
            if skipped - skipped_before > CORRUPT_AUDIO_LOG_BYTES:
                hub.metrics.elevenlabs_errors.labels("corrupt_audio").inc()
                log.warning(
                    "call %s: utterance %d: %d bytes of undecodable TTS audio skipped",
                    self.label,
                    uid,
                    skipped - skipped_before,
                )
        finally:
            self._tts_tasks.pop(uid, None)

    # ------------------------------------------------------------------ actions

    def _dispatch(self) -> None:
        """Execute the Call's pending actions and wake the sender."""
        for action in self.call.actions():
            self._execute(action)
        self._wake.set()

    def _execute(self, action: Action) -> None:
        hub = self.hub
        metrics = hub.metrics
        if isinstance(action, StartTTS):
            if not self._done.is_set():
                self._tts_tasks[action.utterance_id] = asyncio.create_task(
                    self._tts_task(action.utterance_id, action.text, hub.tts, self.call.converter),
                    name=f"hotline-tts-u{action.utterance_id}",
                )
        elif isinstance(action, CancelTTS):
            task = self._tts_tasks.pop(action.utterance_id, None)
            if task is not None and task is not asyncio.current_task():
                task.cancel()
        elif isinstance(action, FirstFrame):
            self._first_frame(action, clock())
        elif isinstance(action, UtteranceEnded):
            metrics.utterances.labels(action.source, action.outcome).inc()
            self._tts_first_chunk.pop(action.utterance_id, None)
            if action.outcome == "failed":
                log.warning(
                    "call %s: utterance %d failed (%s); the call goes on",
                    self.label,
                    action.utterance_id,
                    action.detail,
                )
        elif isinstance(action, BargeIn):
            metrics.barge_ins.inc()
            log.info(
                "call %s: barge-in at %d ms over utterance %d: clear sent, %.0f ms dropped",
                self.label,
                action.timestamp_ms,
                action.utterance_id,
                action.dropped_ms,
            )
        elif isinstance(action, Underrun):
            metrics.underruns.inc()
            metrics.underrun_seconds.inc(action.duration_ms / 1000)
        elif isinstance(action, Started):
            self._on_start(action)
        elif isinstance(action, Hangup):
            log.info("call %s: hanging up (%s)", self.label, action.reason)
            self._finish(action.reason, code=1000)
        elif isinstance(action, Stopped):
            self._finish("twilio stop", code=1000)
        else:
            _assert_never(action)

    def _first_frame(self, first: FirstFrame, sent: float) -> None:
        metrics = self.hub.metrics
        total = sent - first.tts_started_at
        voice = first.first_audio_at - first.tts_started_at
        bridge = sent - first.first_audio_at
        metrics.time_to_first_audio.observe(total)
        metrics.tts_first_chunk.observe(voice)
        metrics.bridge_overhead.observe(bridge)
        if self.voice is not None:
            self.voice.first_frame_sent(first.utterance_id, total)
        log.info(
            "call %s: utterance %d first audio after %.1f ms (voice %.1f ms + bridge %.3f ms)",
            self.label,
            first.utterance_id,
            total * 1000,
            voice * 1000,
            bridge * 1000,
        )

    def _on_start(self, action: Started) -> None:
        hub = self.hub
        start = action.start
        params = start.custom_parameters
        entry = hub.tokens.consume(params.get("token"), start.call_sid, params.get("From", ""))
        if entry is None or params.get("CallSid", start.call_sid) != start.call_sid:
            hub.metrics.signature_failures.labels("start-token").inc()
            log.warning(
                "call %s: media stream refused: missing, unknown or spent per-call token",
                start.call_sid,
            )
            self.call.reject()
            self._finish("bad token", code=1008)
            return
        if start.call_sid in hub.calls:
            log.warning("call %s: a second media stream for a live call, refused", start.call_sid)
            self.call.reject()
            self._finish("duplicate stream", code=1008)
            return
        self.call_sid = start.call_sid
        self.caller = entry.caller
        self.mode = entry.mode
        if entry.mode == "debug":
            self.call.script = DEBUG_SCRIPT
            self.call.hangup_after_greeting = True
        hub.calls[start.call_sid] = self
        self.registered = True
        if hub.speech is not None:
            self.voice = hub.speech.for_call(start.call_sid, hub.tts)
        if hub.cluster is not None:
            hub.cluster.register_soon(start.call_sid, self.info())
        hub.metrics.calls.inc()
        hub.metrics.active_calls.inc()
        log.info(
            "call %s: stream started (caller %s, %s voice, %s)",
            self.call_sid,
            mask_number(self.caller),
            hub.voice,
            hub.settings.elevenlabs_output_format,
        )
        self.call.accept(clock())

    def _bad_message(self, side: str, exc: Exception) -> None:
        self.hub.metrics.protocol_errors.labels(side).inc()
        kind = f"{side}: {exc}"
        count = self._error_kinds.get(kind)
        if count is None:
            if len(self._error_kinds) < _MAX_ERROR_KINDS:
                self._error_kinds[kind] = 1
                log.warning("call %s: dropped a malformed %s message: %s", self.label, side, exc)
            return
        self._error_kinds[kind] = count + 1

    def _finish(self, reason: str, *, code: int | None) -> None:
        if self._done.is_set():
            return
        self.end_reason = reason
        if code is not None:
            self.close_code = code
        else:
            self.close_code = 0  # the peer is gone; nothing to close
        self._done.set()
        self._wake.set()

    async def _teardown(self) -> None:
        current = asyncio.current_task()
        tasks = [t for t in (*self._tasks, *self._tts_tasks.values()) if t is not current]
        for task in tasks:
            task.cancel()
        # TTS tasks close their sockets while being cancelled; wait for all of them.
        while tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
            tasks = [t for t in self._tts_tasks.values() if not t.done()]
            for task in tasks:
                task.cancel()
        if self.call.state is not CallState.ENDED:
            self.call.hangup(clock(), self.end_reason or "teardown")
            self.call.actions()
        ws = self.ws
        if self.close_code and ws.application_state is WebSocketState.CONNECTED:
            with contextlib.suppress(Exception):
                await ws.close(code=self.close_code)
        if self.voice is not None:
            await self.voice.aclose()  # close_socket on the call's TTS socket
        hub = self.hub
        hub.sessions.discard(self)
        if self.registered and hub.calls.get(self.call_sid or "") is self:
            del hub.calls[self.call_sid or ""]
            hub.metrics.active_calls.dec()
            if hub.cluster is not None:
                await hub.cluster.unregister(self.call_sid or "")
        repeats = sum(n - 1 for n in self._error_kinds.values())
        if self.registered or repeats:
            log.info(
                "call %s: ended (%s)%s",
                self.label,
                self.end_reason,
                f"; {repeats} further malformed messages dropped" if repeats else "",
            )


def _is_disconnect(exc: Exception) -> bool:
    from starlette.websockets import WebSocketDisconnect

    if isinstance(exc, (WebSocketDisconnect, OSError)):  # uvicorn: ClientDisconnected
        return True
    # Starlette raises RuntimeError when sending on a closed socket.
    return isinstance(exc, RuntimeError) and "close" in str(exc).lower()
