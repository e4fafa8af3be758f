"""One connected media stream of a simulated call (:class:`MediaStream`): the 20 ms clock that
plays the outbound audio and sends the inbound media, and the receiver that checks what the
application sends as strictly as Twilio does."""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import json
from collections.abc import Callable
from typing import Any

from hotline.core.ulaw import FRAME_BYTES, SILENCE_FRAME
from hotline.sim.call_report import CallReport, HeardUtterance, SpokenTurn
from hotline.sim.clock import FRAME_S, MAX_CATCH_UP, SharedClock
from hotline.sim.conversation import Conversation
from hotline.sim.faults import duplicate_stream, send_faults
from hotline.sim.messages import CONNECTED, TwilioMessages, b64
from hotline.sim.options import CallOptions
from hotline.sim.playback import Last, Playback
from hotline.sim.speech import SPEECH_DBFS

__all__ = ["MediaStream"]

_SILENCE_B64 = b64(SILENCE_FRAME)


class MediaStream(Conversation):
    """A connected stream: the 20 ms clock (inbound media + playback) and the receiver."""

    def __init__(
        self,
        ws: Any,
        opts: CallOptions,
        report: CallReport,
        params: dict[str, str],
        stream_sid: str | None = None,
        max_seconds: float | None = None,
    ) -> None:
        self.ws = ws
        self.opts = opts
        self.r = report
        self.params = params
        self.loop = asyncio.get_running_loop()
        self.sid = stream_sid or opts.stream_sid
        self.max_seconds = opts.max_seconds if max_seconds is None else max_seconds
        self.msgs = TwilioMessages(self.sid, opts.call_sid, opts.account_sid)
        self.first_media_at: float | None = None  # loop time of this stream's first audio
        self.t0 = 0.0
        self.scale = 1.0 if opts.realtime else 10.0
        self.frame_s = FRAME_S / self.scale
        self.playback = Playback()
        self.heard = bytearray()
        self.server_closed = asyncio.Event()
        self.played_frames = 0
        self.in_underrun = False
        # current utterance (as heard)
        self.utt_start: float | None = None
        self.utt_audio = 0
        self.utt_speech = 0
        # caller speech
        self.speech_pos = -1
        self.speech_payloads: tuple[str, ...] = ()
        self.barge_onset: float | None = None
        # digits
        self.digits = list(opts.digits)
        self.digit_due: float | None = None
        self.first_digit_at: float | None = None
        self.answer_at: float | None = None
        self.ended = False
        # spoken questions
        self.questions = list(opts.speak)
        self.turn: SpokenTurn | None = None  # the question being spoken or awaiting its reply
        self.speech_end = -1  # index of the question's last speech frame
        self.last_audio_ms: float | None = None  # the last frame that played audio
        self.snapshots: list[asyncio.Task[Any]] = []  # /metrics around each question
        self.http: Any = None
        self.conversed = not self.questions  # every question asked and its reply heard
        try:
            from hotline.codec import ulaw_frame_stats

            self._stats: Callable[[bytes], tuple[float, float]] | None = ulaw_frame_stats
        except ImportError:  # pragma: no cover - codec not built
            self._stats = None

    def now_ms(self) -> float:
        return (self.loop.time() - self.t0) * 1000.0 * self.scale

    async def _send(self, text: str | bytes) -> None:
        await self.ws.send(text)

    def _violation(self, code: str, what: str) -> None:
        self.r.protocol_violations += 1
        msg = f"{code}: {what}"
        if msg not in self.r.errors and len(self.r.errors) < 50:
            self.r.errors.append(msg)

    async def _echo_mark(self, name: str, *, cleared: bool = False) -> None:
        text = self._mark_echo(name, cleared=cleared)
        if text is not None:
            await self._send(text)

    def _mark_echo(self, name: str, *, cleared: bool = False) -> str | None:
        """The echo of mark ``name`` to send (None: echoes are off), with its bookkeeping."""
        if self.opts.never_echo_marks:
            return None
        self.r.marks_echoed += 1
        text = self.msgs.mark(name)
        if (
            not cleared
            and self.digits
            and self.opts.digit_after_s is None
            and self.digit_due is None
            and self.conversed
        ):
            self.digit_due = self.now_ms() + 300.0  # a caller reacts after a moment
        return text

    # -- receiving -----------------------------------------------------------------------------

    async def receiver(self) -> None:
        try:
            async for raw in self.ws:
                await self._on_message(raw)
        except Exception as exc:  # ConnectionClosedError and friends
            from websockets.exceptions import ConnectionClosed

            if not isinstance(exc, ConnectionClosed):
                self.r.errors.append(f"receiver: {type(exc).__name__}: {exc}")
        finally:
            self.server_closed.set()

    async def _on_message(self, raw: str | bytes) -> None:
        if isinstance(raw, bytes):
            self._violation("31950", "binary frame from the application")
            return
        try:
            msg = json.loads(raw)
        except ValueError:
            self._violation("31951", "message is not JSON")
            return
        if not isinstance(msg, dict):
            self._violation("31951", "message is not a JSON object")
            return
        event = msg.get("event")
        if msg.get("streamSid") != self.sid:
            self._violation(
                "31951", f"{event} message with a streamSid that does not match the stream"
            )
            return
        if event == "media":
            media = msg.get("media")
            if (
                set(msg) != {"event", "streamSid", "media"}
                or not isinstance(media, dict)
                or set(media) != {"payload"}
            ):
                self._violation(
                    "31951",
                    f"media message with wrong fields: {sorted(msg)} / {sorted(media) if isinstance(media, dict) else media!r}",
                )
                return
            try:
                audio = base64.b64decode(media["payload"], validate=True)
            except (binascii.Error, TypeError, ValueError):
                self._violation("31951", "media payload is not base64")
                return
            if not audio:
                return
            self.r.media_frames += 1
            if self.first_media_at is None:
                self.first_media_at = self.loop.time()
            self.r.media_bytes += len(audio)
            if self.r.time_to_first_audio_ms is None:
                self.r.time_to_first_audio_ms = self.now_ms()
            turn = self.turn
            if turn is not None and turn.ended_ms is not None and turn.first_reply_ms is None:
                turn.first_reply_ms = self.now_ms()
            self.playback.media(audio)
        elif event == "mark":
            mark = msg.get("mark")
            if (
                set(msg) != {"event", "streamSid", "mark"}
                or not isinstance(mark, dict)
                or set(mark) != {"name"}
                or not isinstance(mark.get("name"), str)
            ):
                self._violation("31951", "mark message with wrong fields")
                return
            name = mark["name"]
            self.r.marks_received += 1
            self.r.mark_names.append(name)
            if self.playback.mark(name):
                self._close_utterance(name, cleared=False)
                await self._echo_mark(name)
        elif event == "clear":
            if set(msg) != {"event", "streamSid"}:
                self._violation("31951", "clear message with wrong fields")
                return
            await self._on_clear()
        else:
            self._violation("31951", f"unknown event {event!r} from the application")

    async def _on_clear(self) -> None:
        now = self.now_ms()
        self.r.clears += 1
        if self.barge_onset is not None and self.r.first_clear_after_barge_in_ms is None:
            self.r.first_clear_after_barge_in_ms = now - self.barge_onset
        pending = self.playback.clear()
        self._close_utterance(None, cleared=True)
        for name in pending:
            await self._echo_mark(name, cleared=True)

    # -- playback ------------------------------------------------------------------------------

    def _close_utterance(self, mark: str | None, *, cleared: bool) -> None:
        if self.utt_start is None:
            return
        self.r.utterances.append(
            HeardUtterance(
                start_ms=self.utt_start,
                end_ms=self.now_ms(),
                audio_ms=self.utt_audio / 8.0,
                speech_ms=self.utt_speech * 20.0,
                mark=mark,
                cleared=cleared,
            )
        )
        self.utt_start = None
        self.utt_audio = 0
        self.utt_speech = 0

    async def _play_frame(self) -> None:
        """Play 20 ms: echo marks whose audio finished, take up to 160 bytes from the buffer."""
        for echo in self._play():
            await self._send(echo)

    def _play(self) -> list[str]:
        """Play 20 ms (see :meth:`_play_frame`); returns the mark echoes to send, in order."""
        t = self.playback.tick()
        echoes: list[str] = []
        for name in t.marks:
            self._close_utterance(name, cleared=False)
            echo = self._mark_echo(name)
            if echo is not None:
                echoes.append(echo)
        if t.got:
            if self.utt_start is None:
                self.utt_start = self.now_ms()
                if self.answer_at is None and self.first_digit_at is not None:
                    self.answer_at = self.utt_start
            self.utt_audio += t.got
            self.r.audio_ms += t.got / 8.0
            self.last_audio_ms = self.now_ms()
            turn = self.turn  # until the next question (or the end of the conversation)
            replying = turn is not None and turn.first_reply_ms is not None
            if turn is not None and replying:
                turn.reply_audio_ms += t.got / 8.0
            if self._stats is not None and self._stats(t.frame)[0] > SPEECH_DBFS:
                self.utt_speech += 1
                self.r.speech_ms += 20.0
                if turn is not None and replying:
                    turn.reply_speech_ms += 20.0
        if t.underrun_bytes:
            self.r.underrun_ms += t.underrun_bytes / 8.0
            if not self.in_underrun:
                self.r.underrun_events += 1
                if len(self.r.underruns) < 100:
                    self.r.underruns.append((self.now_ms(), 0.0))
            if self.r.underruns and len(self.r.underruns) <= 100:
                start, length = self.r.underruns[-1]
                self.r.underruns[-1] = (start, length + t.underrun_bytes / 8.0)
            self.in_underrun = True
        else:
            self.in_underrun = False
        if self.opts.keep_audio:
            self.heard += t.frame
        self.played_frames += 1
        return echoes

    # -- inbound media -------------------------------------------------------------------------

    def _media_message(self) -> str:
        payload = _SILENCE_B64
        if self.speech_pos >= 0:
            if self.speech_pos < len(self.speech_payloads):
                payload = self.speech_payloads[self.speech_pos]
                turn = self.turn
                if (
                    turn is not None
                    and turn.ended_ms is None
                    and self.speech_pos >= self.speech_end
                ):
                    turn.ended_ms = self.now_ms()  # the question's last speech frame goes out
                self.speech_pos += 1
            else:
                self.speech_pos = -1
        return self.msgs.media(payload)

    # -- spoken questions ----------------------------------------------------------------------

    async def run(self) -> None:
        if not self.opts.server_split or not self.opts.speak:
            await self._run()
            return
        import httpx

        async with httpx.AsyncClient() as http:
            self.http = http
            try:
                await self._run()
            finally:
                await self._close_snapshots()

    async def _run(self) -> None:
        o = self.opts
        await self._send(CONNECTED)
        self.t0 = self.loop.time()
        await self._send(self.msgs.start(self.params))
        self.r.stream_sid = self.sid
        if o.on_started is not None:
            o.on_started(self.r)
        if o.stop_before_media:
            await self._send(self.msgs.stop())
            self.r.ended_by = "caller_stop"
            return
        receiver = self.loop.create_task(self.receiver())
        dup: asyncio.Task[None] | None = None
        if o.duplicate_connection:
            dup = self.loop.create_task(duplicate_stream(o, self.r, self.msgs, self.params))
        if o.digit_after_s is not None and self.digits:
            self.digit_due = o.digit_after_s * 1000.0
        ended_by = "timeout"
        tick = 0
        try:
            if o.plain() and o.shared_clock:
                ended_by = await SharedClock.join(self)
            while not self.ended:
                if self.server_closed.is_set():
                    ended_by = "server_hangup"
                    break
                now = self.now_ms()
                if o.hangup_after_s is not None and now >= o.hangup_after_s * 1000.0:
                    ended_by = "caller_stop"
                    break
                ctl = o.control
                if ctl is not None:
                    if ctl._hangup:
                        ended_by = "caller_stop"
                        break
                    while ctl._digits:
                        await self._send(self.msgs.dtmf(ctl._digits.pop(0)))
                        self.r.dtmf_sent += 1
                if now >= self.max_seconds * 1000.0:
                    ended_by = "timeout"
                    break
                self._converse(now)
                if (
                    o.hangup_after_replies
                    and self.conversed
                    and self.r.turns
                    and self.speech_pos < 0
                    and self._line_over(now)
                ):
                    ended_by = "caller_stop"
                    break
                if self.barge_onset is None and self.speech_pos < 0:
                    if (o.barge_in_at is not None and now >= o.barge_in_at * 1000.0) or (
                        o.barge_in_after_answer_s is not None
                        and self.answer_at is not None
                        and now >= self.answer_at + o.barge_in_after_answer_s * 1000.0
                    ):
                        self._start_barge_in()
                if (
                    o.hangup_after_barge_in_s is not None
                    and self.barge_onset is not None
                    and now >= self.barge_onset + o.hangup_after_barge_in_s * 1000.0
                ):
                    ended_by = "caller_stop"
                    break
                if self.digit_due is not None and now >= self.digit_due and self.digits:
                    await self._send(self.msgs.dtmf(self.digits.pop(0)))
                    self.r.dtmf_sent += 1
                    if self.first_digit_at is None:
                        self.first_digit_at = now
                    self.digit_due = (
                        (now + o.digit_gap_s * 1000.0)
                        if (o.digit_after_s is not None and self.digits)
                        else None
                    )
                await send_faults(self._send, self.msgs, o, self.r, tick)
                # frames due by the wall clock (catch up if the loop was late)
                due = int(now / 20.0) + 1 - self.played_frames
                pb = self.playback
                if due > 0 and pb.last is Last.MEDIA and pb.buffered_bytes < due * FRAME_BYTES:
                    # About to starve: first let the receiver take what already arrived (in one
                    # loop iteration the timer can run before the task reading the socket).
                    await asyncio.sleep(0)
                for _ in range(min(max(due, 0), MAX_CATCH_UP)):
                    await self._play_frame()
                    sends = max(1, round(o.media_speedup)) if o.media_speedup >= 1 else 1
                    for _ in range(sends):
                        await self._send(self._media_message())
                        self.r.inbound_frames += 1
                if due > MAX_CATCH_UP:  # hopelessly late: skip ahead instead of bursting
                    self.played_frames += due - MAX_CATCH_UP
                tick += 1
                next_at = self.t0 + (self.played_frames * FRAME_S) / self.scale
                delay = next_at - self.loop.time()
                if delay > 0:  # a plain timer: no task per tick (a hang-up is seen within 20 ms)
                    await asyncio.sleep(delay)
        except Exception as exc:
            from websockets.exceptions import ConnectionClosed

            if isinstance(exc, ConnectionClosed):
                ended_by = "server_hangup"
            else:
                raise
        finally:
            self.r.ended_by = ended_by
            self.r.unplayed_ms_at_end = self.playback.buffered_bytes / 8.0
            self._close_utterance(None, cleared=False)  # what was playing when the call ended
            self.r.duration_ms = self.now_ms()
            if ended_by != "server_hangup":
                await self._end_by_caller()
            receiver.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await receiver
            if dup is not None:
                dup.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await dup
            self.r.heard = bytes(self.heard)

    # -- the shared clock (load runs) -----------------------------------------------------------

    def _send_now(self, text: str) -> None:
        """Send a text message without awaiting: straight into the connection's sans-I/O
        protocol and out to the transport (what ``ws.send`` does for an unfragmented message,
        minus its coroutine and lock)."""
        ws = self.ws
        ws.protocol.send_text(text.encode())
        ws.send_data()

    def tick(self) -> str | None:
        """One step of the shared clock: play and send the frames due by now. Returns how the
        call ended, or None while it runs."""
        o = self.opts
        if self.server_closed.is_set():
            return "server_hangup"
        now = self.now_ms()
        if o.hangup_after_s is not None and now >= o.hangup_after_s * 1000.0:
            return "caller_stop"
        if now >= o.max_seconds * 1000.0:
            return "timeout"
        due = int(now / 20.0) + 1 - self.played_frames
        send = self._send_now
        for _ in range(min(max(due, 0), MAX_CATCH_UP)):
            for echo in self._play():
                send(echo)
            send(self._media_message())
            self.r.inbound_frames += 1
        if due > MAX_CATCH_UP:  # hopelessly late: skip ahead instead of bursting
            self.played_frames += due - MAX_CATCH_UP
        return None

    async def _end_by_caller(self) -> None:
        from websockets.exceptions import ConnectionClosed

        if self.opts.drop_without_stop:
            self.ws.transport.abort()
            return
        with contextlib.suppress(ConnectionClosed):
            await self._send(self.msgs.stop())
