"""One live call: the tasks that move data between the Twilio socket and
:class:`hotline.core.call.Call`, and its teardown.

Per call: the *receiving side* (:meth:`CallSession.on_text`: each Twilio message to the Call,
never awaiting; called from the connection's ``data_received`` on hotline's own uvicorn protocol,
:mod:`hotline.server.media_ws`, else by a receive task over ASGI), the *sender* task (pumps due
frames out, wakes on new audio or the Call's next deadline) and one speech task per utterance
(:meth:`hotline.server.speech.CallSpeech.utter`). Whatever feeds the Call (a Twilio message, a
TTS or STT event, the brain, the HTTP API, the sender's timer) is one wake-up: the Call's actions
are drained once, by :meth:`CallSession._drain`, and executed. A Twilio message and the sender
drain in place; every other feeder only feeds the Call and says so (:meth:`CallSession.fed`),
and one drain scheduled for the end of that wake-up serves all of them. The speech and listening
tasks do I/O only; a held first slice (:attr:`Call.holds_audio`) is rendered by the sender once
the first frames are out. :meth:`CallSession.run` returns once the call is over, and only after
every task is finished and every socket closed. What actions say is counted and logged by
:func:`hotline.server.metrics.observe`; this module only executes them.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
from typing import Any

from starlette.websockets import WebSocket, WebSocketState

from hotline.core.actions import (
    Action,
    AudioSkipped,
    BargeIn,
    CallerTurn,
    CancelTTS,
    CommitSpeech,
    DigitPressed,
    FirstFrame,
    Hangup,
    LineHeld,
    LineInterrupted,
    LineResumed,
    Started,
    StartTTS,
    Stopped,
    TTSClose,
    TTSText,
    TurnLatency,
    Underrun,
    UtteranceEnded,
    UtteranceRecorded,
)
from hotline.core.call import Call
from hotline.core.callstate import CallState
from hotline.core.render import FIRST_SLICE
from hotline.core.script import DEBUG_SCRIPT
from hotline.core.transcript import Transcript
from hotline.core.turns import JudgeTurn, Speculate, Unspeculate
from hotline.errors import ProtocolError, assert_never
from hotline.server.brain_runner import BrainRunner, new_brain
from hotline.server.hub import CallMode, Hub
from hotline.server.listen import Listener, quiet_gate, recognises, turn_config
from hotline.server.logs import mask_number
from hotline.server.media_ws import DirectSocket, direct_socket
from hotline.server.metrics import Metrics, observe
from hotline.server.recording import call_ended
from hotline.server.registry import Handoff
from hotline.server.settings import BrainKind
from hotline.server.speech import CallSpeech, CallTTS
from hotline.turn.silero import speech_detector

__all__ = ["MAX_MESSAGE", "START_TIMEOUT", "CallSession"]

log = logging.getLogger("hotline.call")

#: Largest Twilio message accepted on /media-stream (a 20 ms media message is ~300 bytes).
MAX_MESSAGE = 64 * 1024
_MAX_ERROR_KINDS = 32
#: Seconds a media stream may stay open without a valid ``start``.
START_TIMEOUT = 10.0
#: Seconds the greeting waits for a returning caller's memory still being looked up (the
#: lookup started at the webhook; it normally took a few ms and is over by then).
MEMORY_WAIT = 0.1

clock = time.perf_counter
_NEVER = float("inf")
#: µ-law bytes a call sends between two updates of hotline_audio_bytes_out (1 s of audio).
_COUNT_EVERY_BYTES = 8000


class CallSession:
    """One media stream's call.

    Args:
        hub: the app's shared state.
        ws: the media stream.
        tts_socket: the TTS opened where the stream landed
            (:meth:`~hotline.server.speech_service.SpeechService.stream_socket`); the call's
            ``start`` takes it (None: no TTS configured).
    """

    def __init__(self, hub: Hub, ws: WebSocket, *, tts_socket: CallTTS | None) -> None:
        self.hub = hub
        self.ws = ws
        self._tts_socket = tts_socket
        settings = hub.settings
        listen = settings.listen
        self.call = Call(
            hub.script,
            output_format=settings.elevenlabs_output_format,
            vad=speech_detector(settings.vad, hub.vad_config),
            record_max_bytes=hub.speech.record_max_bytes,
            first_slice_bytes=FIRST_SLICE,
            recognise=recognises(hub),
            quiet_gate=quiet_gate(hub),
            turns=turn_config(
                listen,
                hub.script,
                judge=hub.turn_judge is not None,
                speculate=listen.brain is not BrainKind.RELAY,
                min_confidence=hub.ear_min_confidence,
            ),
            brain_digits=listen.brain is not BrainKind.SCRIPT,
        )
        #: The call's ears (speech-to-text stream, end-of-turn judge); set at ``start``.
        self.listener: Listener | None = None
        #: The call's brain (its queue and task, speculation); set at ``start``.
        self.brain: BrainRunner | None = None
        #: The call's speech path (phrase cache, its TTS socket); set at ``start``.
        self.speech: CallSpeech | None = None
        self.call_sid: str | None = None
        self.caller = ""
        self.mode = CallMode.SCRIPT
        self.started_at = time.time()
        self.registered = False
        self.end_reason = ""
        self.close_code = 1000
        self._done = asyncio.Event()
        self._wake = asyncio.Event()
        #: When the sender's timer fires (the receiver wakes it early past this time).
        self._wake_at = _NEVER
        self._drain_due = False  # a drain is scheduled (fed())
        self._bytes_counted = 0  # of call.bytes_sent, added to hotline_audio_bytes_out
        self._tts_tasks: dict[int, asyncio.Task[None]] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._error_kinds: dict[str, int] = {}
        #: The connection's direct path (None: ASGI receive/send), set by run().
        self._direct: DirectSocket | None = None
        #: For the call's record (hotline.server.recording): its turns' latencies, the
        #: stream's resume count, a returning caller's earlier calls.
        self.latencies: list[TurnLatency] = []
        self.resumes = 0
        self.caller_history: tuple[dict[str, str], ...] = ()

    # ------------------------------------------------------------------ public

    @property
    def label(self) -> str:
        return self.call_sid or "(no start yet)"

    @property
    def metrics(self) -> Metrics:
        return self.hub.metrics

    def info(self) -> dict[str, Any]:
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

    @property
    def handoff(self) -> Handoff | None:
        """Set when the brain ended the call for a person (read by the registry at the end)."""
        runner = self.brain
        if runner is None or runner.handoff_data is None:
            return None
        session_id = getattr(runner.brain, "session_id", "")  # a relay app's VX... session
        return Handoff(
            runner.handoff_data,
            session_id if isinstance(session_id, str) else "",
            int(time.time() - self.started_at),
        )

    def say(self, text: str, interrupt: bool) -> int:
        """Queue (or, with ``interrupt``, replace what plays with) ``text``.

        Raises:
            CallStateError: the call is not active.
            ValueError: empty text.
        """
        uid = self.call.say(text, clock(), interrupt=interrupt)
        self.fed()
        return uid

    def hangup(self, reason: str = "hangup requested") -> None:
        self.call.hangup(clock(), reason)
        self.fed()

    @property
    def transcript(self) -> Transcript | None:
        """What was said on this call (the Call's, from ``start``; kept by the hub once it ended)."""
        return self.call.transcript

    def transcript_dict(self) -> dict[str, Any] | None:
        """The call's transcript as JSON (None before ``start``)."""
        transcript = self.call.transcript
        return transcript.as_dict() if transcript is not None else None

    async def run(self) -> None:
        """Run the call until it ends; then cancel every task and close every socket."""
        self.hub.registry.attach(self)
        no_start = asyncio.get_running_loop().call_later(START_TIMEOUT, self._start_timeout)
        try:
            # uvicorn with hotline's protocol hands each message to on_text() as it is parsed
            # (no receive task); any other server goes through ASGI.
            self._direct = direct_socket(self.ws.scope, self)
            if self._direct is None:
                self._tasks.append(
                    asyncio.create_task(self._receive_loop(), name="hotline-receive")
                )
            self._tasks.append(asyncio.create_task(self._send_loop(), name="hotline-send"))
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
        """The ASGI path (a server without :mod:`hotline.server.media_ws`'s direct path)."""
        receive = self.ws.receive
        try:
            while True:
                message = await receive()
                text = message.get("text")
                if text is not None:
                    self.on_text(text)
                elif message["type"] == "websocket.disconnect":
                    self.on_disconnect(int(message.get("code") or 1005))
                    return
                else:
                    self.on_bytes(message.get("bytes") or b"")
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("call %s: receive loop failed", self.label)
            self._finish("internal error", code=1011)

    # The receiving side, called per Twilio message: by the ASGI loop above, or directly from
    # the connection's data_received (media_ws.DirectSink). Never raises.

    def on_text(self, text: str) -> None:
        now = clock()
        call = self.call
        try:
            if len(text) > MAX_MESSAGE:
                raise ProtocolError(f"message over {MAX_MESSAGE} bytes")
            call.receive_text(text, now)
        except ProtocolError as exc:
            self.bad_message("twilio", exc)
            return
        except Exception:
            log.exception("call %s: a Twilio message failed", self.label)
            self._finish("internal error", code=1011)
            return
        listener = self.listener
        if listener is not None:  # from start on: the caller's audio to the recogniser
            audio = call.audio_to_recognise()
            if audio:
                try:
                    listener.hear(audio)
                except Exception:  # a broken speech-to-text feed is no reason to end the call
                    call.stop_recognising(now)
        # Most messages are inbound audio that changes nothing to send: wake the sender only
        # when there is something for it to do, or its wake time (cached by the sender when it
        # went to sleep) has passed.
        try:
            if call.has_actions:
                self._drain()
                self._wake.set()
            elif call.has_data_to_send or now >= self._wake_at:
                self._wake.set()
        except Exception:
            log.exception("call %s: receive loop failed", self.label)
            self._finish("internal error", code=1011)

    def on_bytes(self, data: bytes) -> None:
        try:
            self.call.receive_bytes(data)
        except ProtocolError as exc:
            self.bad_message("twilio", exc)

    def on_disconnect(self, code: int) -> None:
        if code == 1009 and not self._done.is_set():
            # uvicorn's ws_max_size refused a message over MAX_MESSAGE bytes.
            self.hub.metrics.protocol_errors.labels("twilio").inc()
            log.warning(
                "call %s: a message over %d bytes: stream closed (1009)", self.label, MAX_MESSAGE
            )
        self._finish("twilio disconnected", code=None)

    async def _send_direct(self, message: str) -> None:
        direct = self._direct
        assert direct is not None
        if direct.write_paused:  # Twilio reads slowly: wait, as ASGI's send() would
            await direct.wait_writable()
        if not direct.send_text(message):
            raise ConnectionResetError("media stream closed")

    async def _send_direct_batch(self, messages: list[str]) -> None:
        direct = self._direct
        assert direct is not None
        if direct.write_paused:
            await direct.wait_writable()
        if not direct.send_texts(messages):
            raise ConnectionResetError("media stream closed")

    async def _send_loop(self) -> None:
        loop = asyncio.get_running_loop()
        call = self.call
        direct = self._direct
        send_text = self._send_direct if direct is not None else self.ws.send_text
        wake = self._wake
        try:
            while True:
                wake.clear()
                self._wake_at = _NEVER  # awake: the receiver need not look at the clock
                call.pump(clock())
                messages = call.data_to_send()
                firsts = self._drain(timed=True)
                if firsts is None:
                    if direct is not None and len(messages) > 1:
                        await self._send_direct_batch(messages)  # one write, one syscall
                    else:
                        for message in messages:
                            await send_text(message)
                else:
                    for index, message in enumerate(messages):
                        await send_text(message)
                        timed = firsts.get(index)
                        if timed is not None:
                            sent_at = clock()
                            for action in timed:
                                self._execute(action, sent_at)
                self._count_audio_out(False)
                if self._done.is_set():
                    return
                if call.holds_audio:
                    # Only the first slice of a big first message was converted, and its
                    # frames are out now: have the rest converted, then pump again.
                    uid = call.current_utterance
                    now = clock()
                    if uid is not None and call.render_held(uid, now):
                        self.hub.metrics.conversion.observe(clock() - now)
                    continue
                if wake.is_set():
                    continue
                now = clock()
                deadline = call.next_deadline(now)
                handle = None
                if deadline is not None:
                    if deadline <= now:
                        await asyncio.sleep(0)  # due already: pump again after a yield
                        continue
                    self._wake_at = deadline
                    handle = loop.call_later(deadline - now, wake.set)
                else:
                    self._wake_at = _NEVER
                try:
                    await wake.wait()
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

    def _count_audio_out(self, final: bool) -> None:
        """Add the call's µ-law bytes sent since the last count to the counter, in batches of
        about a second of audio (one locked ``inc()`` per second per call, not per wake-up)."""
        unsent = self.call.bytes_sent - self._bytes_counted
        if unsent >= _COUNT_EVERY_BYTES or (final and unsent > 0):
            self._bytes_counted += unsent
            self.hub.metrics.audio_bytes_out.inc(unsent)

    # ------------------------------------------------------------------ actions

    def fed(self) -> None:
        """The Call was fed (a TTS or STT event, the brain, the API): its actions are drained
        once, by a callback scheduled for the end of this wake-up (however many feeders called
        this meanwhile), which also wakes the sender."""
        if not self._drain_due:
            self._drain_due = True
            asyncio.get_running_loop().call_soon(self._drain_fed)

    def _drain_fed(self) -> None:
        self._drain_due = False
        try:
            self._drain()
        except Exception:
            log.exception("call %s: an action failed", self.label)
            self._finish("internal error", code=1011)
        self._wake.set()

    def _drain(self, *, timed: bool = False) -> dict[int, list[FirstFrame | TurnLatency]] | None:
        """Execute the Call's pending actions, once per wake-up. With ``timed`` (the sender,
        right after ``pump``/``data_to_send``), a first frame's :class:`FirstFrame` and
        :class:`TurnLatency` are returned by message index instead, to be executed once that
        message has left."""
        call = self.call
        if not call.has_actions:
            return None
        firsts: dict[int, list[FirstFrame | TurnLatency]] | None = None
        for action in call.actions():
            if timed and isinstance(action, (FirstFrame, TurnLatency)):
                if firsts is None:
                    firsts = {}
                firsts.setdefault(action.message_index, []).append(action)
            else:
                self._execute(action)
        return firsts

    def _execute(self, action: Action, now: float | None = None) -> None:
        observe(self.hub.metrics, self.label, action, clock() if now is None else now)
        if isinstance(action, StartTTS):
            if not self._done.is_set():
                assert self.speech is not None  # set at start, before accept()
                uid = action.utterance_id
                if action.streaming:
                    source = self.call.rendering(uid)
                    if source is None:
                        return  # cut before this drain (its CancelTTS follows): nothing to voice
                    self.speech.open_feed(uid, source)
                self._tts_tasks[uid] = asyncio.create_task(
                    self.speech.utter(self, uid, action.text, action.language),
                    name=f"hotline-tts-u{uid}",
                )
        elif isinstance(action, CancelTTS):
            uid = action.utterance_id
            task = self._tts_tasks.pop(uid, None)
            if task is not None and not (self.speech is not None and self.speech.ending(uid)):
                task.cancel()
        elif isinstance(action, FirstFrame):
            if self.speech is not None:
                sent = clock() if now is None else now
                self.speech.first_frame_sent(action.utterance_id, sent - action.tts_started_at)
        elif isinstance(action, UtteranceRecorded):
            if self.speech is not None:
                self.speech.recorded(action)
        elif isinstance(action, Started):
            self._on_start(action)
        elif isinstance(action, Hangup):
            self._finish(action.reason, code=1000)
        elif isinstance(action, Stopped):
            self._finish("twilio stop", code=1000)
        elif isinstance(action, (TTSText, TTSClose)):
            if self.speech is not None:
                self.speech.text_changed(action.utterance_id)
        elif isinstance(action, LineInterrupted):
            if self.brain is not None:
                self.brain.line_interrupted(action)
        elif isinstance(action, CallerTurn):
            if self.brain is not None:
                self.brain.caller_turn(action)
        elif isinstance(action, DigitPressed):
            if self.brain is not None:
                self.brain.digit(action.digit)
        elif isinstance(action, CommitSpeech):
            if self.listener is not None:
                self.listener.commit_speech()
        elif isinstance(action, JudgeTurn):
            if self.listener is not None:
                self.listener.judge_turn(action)
        elif isinstance(action, Speculate):
            if self.brain is not None:
                self.brain.speculate(action.text, action.confidence, voice=action.likely)
        elif isinstance(action, Unspeculate):
            if self.brain is not None:
                self.brain.unspeculate()
        elif isinstance(action, TurnLatency):
            self.latencies.append(action)  # for the call's record
            transcript = self.call.transcript
            if self.call_sid is not None and transcript is not None:
                sent = clock() if now is None else now
                self.hub.console_turns.add(self.call_sid, action, sent, transcript.started_at)
        elif isinstance(
            action, (UtteranceEnded, BargeIn, Underrun, AudioSkipped, LineHeld, LineResumed)
        ):
            pass  # observed above
        else:
            assert_never(action)

    def _on_start(self, action: Started) -> None:
        hub = self.hub
        start = action.start
        params = start.custom_parameters
        # a returning caller's memory, looked up since the webhook was answered
        memory = hub.records.take(start.call_sid) if hub.records is not None else None
        entry = hub.tokens.consume(params.get("token"), start.call_sid, params.get("From", ""))
        refused = (
            entry is None
            or params.get("CallSid", start.call_sid) != start.call_sid
            or start.call_sid in hub.registry.calls
        )
        if memory is not None and refused:
            memory.cancel()  # refused below: nobody will read it
        if entry is None or params.get("CallSid", start.call_sid) != start.call_sid:
            hub.metrics.signature_failures.labels("start-token").inc()
            log.warning(
                "call %s: media stream refused: missing, unknown or spent per-call token",
                start.call_sid,
            )
            self.call.reject()
            hub.registry.refused(start.call_sid)  # its <Connect action> answers <Hangup/>
            self._finish("bad token", code=1008)
            return
        if start.call_sid in hub.registry.calls:
            log.warning("call %s: a second media stream for a live call, refused", start.call_sid)
            self.call.reject()
            self._finish("duplicate stream", code=1008)
            return
        self.call_sid = start.call_sid
        self.caller = entry.caller
        if memory is None and hub.records is not None and entry.mode == CallMode.SCRIPT:
            # the webhook was answered by another replica: look the caller up here
            memory = hub.records.lookup(entry.caller)
        self.mode = CallMode(entry.mode)
        self.registered = hub.registry.admit(start.call_sid, self)
        is_relay = hub.settings.listen.brain is BrainKind.RELAY
        self.speech = hub.speech.for_call(  # the voice's language: the app's ttsLanguage
            start.call_sid,
            self._tts_socket,
            language=hub.script.relay.tts_language if is_relay else None,
        )
        with contextlib.suppress(ValueError):
            self.resumes = int(params.get("resume") or 0)
        self.listener = listener = Listener(self, hub.turn_judge)
        self.brain = brain = BrainRunner(self, new_brain(hub, entry.caller), listener.hear_in)
        listener.partials_to(brain.partial)
        log.info(
            "call %s: stream started (caller %s, %s voice, %s)",
            self.call_sid,
            mask_number(self.caller),
            hub.tts_source,
            hub.settings.elevenlabs_output_format,
        )
        if memory is not None and not memory.done():
            # The greeting depends on it: wait for the lookup (a few ms), never long.
            timer = asyncio.get_running_loop().call_later(MEMORY_WAIT, memory.cancel)

            def looked_up(task: asyncio.Task[Any]) -> None:
                timer.cancel()
                try:
                    self._begin(start, task)
                except Exception:
                    log.exception("call %s: the call could not begin", self.label)
                    self._finish("internal error", code=1011)
                self.fed()

            memory.add_done_callback(looked_up)
            return
        self._begin(start, memory)

    def _begin(self, start: Any, memory: asyncio.Task[Any] | None) -> None:
        """The greeting (or the returning caller's, or the resumed stream's line), the
        recogniser and the brain."""
        if self._done.is_set() or self.listener is None or self.brain is None:
            return
        hub = self.hub
        if memory is not None and not memory.cancelled():
            self.caller_history = tuple(m.as_dict() for m in memory.result())
        relay = hub.script.relay if hub.settings.listen.brain is BrainKind.RELAY else None
        if relay is not None:  # the app's <ConversationRelay interruptible> for keys
            self.call.digits_cut = relay.interruptible.by_digit
        if self.mode is CallMode.DEBUG:
            self.call.accept(clock(), script=DEBUG_SCRIPT, hangup_after_greeting=True)
        elif start.custom_parameters.get("resume"):  # a dropped stream back: no greeting
            self.call.accept(clock(), script=hub.script.resumed())
        elif relay is not None:  # its welcomeGreeting, or nothing: the app speaks first
            self.call.accept(
                clock(),
                script=dataclasses.replace(hub.script, greeting=relay.welcome_greeting or ""),
                greeting_interruptible=relay.welcome_greeting_interruptible.by_speech,
            )
        elif self.caller_history:  # a returning caller
            self.call.accept(clock(), script=hub.script.returning())
        else:
            self.call.accept(clock())
        self.listener.open_stt(hub.stt_url)
        if self.listener.stt is None:
            # No recogniser (HOTLINE_STT=off): barge-in on speech onset, DTMF and say work.
            self.call.stt_down(clock())
        self.brain.start(start)

    def bad_message(self, side: str, exc: Exception) -> None:
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
        # Everything that needs no await comes first, and the release is in a finally: when the
        # server cancels the route (shutdown, a client gone under a test client), every await
        # here may raise CancelledError, and the call must still leave the registry.
        current = asyncio.current_task()
        tasks = [t for t in (*self._tasks, *self._tts_tasks.values()) if t is not current]
        for task in tasks:
            task.cancel()
        if self.call.state is not CallState.ENDED:
            self.call.hangup(clock(), self.end_reason or "teardown")
            self.call.actions()
        try:
            # TTS tasks close their sockets while being cancelled; wait for all of them.
            while tasks:
                await asyncio.gather(*tasks, return_exceptions=True)
                tasks = [t for t in self._tts_tasks.values() if not t.done()]
                for task in tasks:
                    task.cancel()
            ws = self.ws
            await self.hub.registry.ending(self)  # "ended on purpose", before Twilio sees it
            if self.close_code and ws.application_state is WebSocketState.CONNECTED:
                with contextlib.suppress(Exception):
                    await ws.close(code=self.close_code)
        finally:
            # The call leaves the registry first, then its sockets close: a recogniser or a
            # voice that cannot be reached must not keep a hung-up call listed (or its SID
            # taken) while their attempts end.
            try:
                transcript = self.call.transcript
                if transcript is not None and self.call_sid is not None and self.registered:
                    self.hub.transcripts.ended(self.call_sid, transcript)
                    log.info(
                        "call %s: transcript of %d entries (%d chars) kept",
                        self.label,
                        len(transcript),
                        transcript.chars(),
                    )
                if self.registered:
                    call_ended(self)  # its record, to the writer's queue (never awaits)
                self._count_audio_out(True)
                repeats = sum(n - 1 for n in self._error_kinds.values())
                if self.registered or repeats:
                    log.info(
                        "call %s: ended (%s)%s",
                        self.label,
                        self.end_reason,
                        f"; {repeats} further malformed messages dropped" if repeats else "",
                    )
                # Forgets the call at once; only the shared-registry delete awaits.
                await self.hub.registry.release(self)
            finally:
                self.call.close()  # a pooled Silero instance back to the pool
                if self.brain is not None:
                    await self.brain.aclose()  # the brain hears CallEnding
                if self.listener is not None:
                    await self.listener.aclose()  # STT closes
                if self.speech is not None:
                    await self.speech.aclose()  # close_socket on the call's TTS socket


def _is_disconnect(exc: Exception) -> bool:
    from starlette.websockets import WebSocketDisconnect

    if isinstance(exc, (WebSocketDisconnect, OSError)):  # uvicorn: ClientDisconnected
        return True
    # Starlette raises RuntimeError when sending on a closed socket.
    return isinstance(exc, RuntimeError) and "close" in str(exc).lower()
