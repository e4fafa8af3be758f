"""The caller simulator: Twilio's side of one call (``hotline call``).

It does what Twilio does for a ``<Connect><Stream>`` call (shared/docs/protocols.md §1):
a signed voice-webhook POST, the TwiML parsed, a signed WebSocket upgrade to the ``<Stream>``
url, ``connected`` then ``start`` (with the ``<Parameter>`` values in ``customParameters``),
inbound media every 20 ms (silence, or eSpeak speech for barge-in and for spoken questions:
``speak``, each asked once the previous line has ended and silence followed), ``dtmf`` presses, and
``stop`` at the end; all numbers are JSON strings. Outbound audio is played by a simulated
8 kHz playback clock: marks are echoed only once the audio queued before them has played
(at once if nothing is queued), ``clear`` drops the buffer and echoes every pending mark.
Outbound messages are checked as strictly as Twilio checks them (31950/31951).

One call costs two asyncio tasks (this coroutine's 20 ms clock and a receiver) and no
per-frame work beyond a string format and, while audio plays, one small C call.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import json
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

from hotline.sim.call_report import CallReport, HeardUtterance, SpokenTurn, report_json
from hotline.sim.errors import CallError
from hotline.sim.messages import CONNECTED, TwilioMessages, b64
from hotline.sim.playback import Last, Playback
from hotline.sim.speech import FRAME_BYTES, SILENCE_FRAME, SPEECH_DBFS
from hotline.sim.webhook import (
    connect_action,
    connect_url,
    is_hangup,
    parse_twiml,
    post_action,
    post_webhook,
    sign,
)

__all__ = [
    "CallControl",
    "CallError",
    "CallOptions",
    "CallReport",
    "HeardUtterance",
    "SpokenTurn",
    "parse_twiml",
    "place_call",
    "report_json",
]

FRAME_S = 0.02
_SILENCE_B64 = b64(SILENCE_FRAME)
_MAX_CATCH_UP = 50  # frames processed in one wake-up when the event loop was late


def _sid(prefix: str) -> str:
    return prefix + secrets.token_hex(16)


class CallControl:
    """Steer a running call from outside (tests, the load generator): press keys, hang up.

    Pass one in ``CallOptions.control``; calls take effect on the next 20 ms tick.
    """

    def __init__(self) -> None:
        self._digits: list[str] = []
        self._hangup = False

    def press(self, digits: str) -> None:
        self._digits.extend(digits)

    def hang_up(self) -> None:
        self._hangup = True


@dataclass
class CallOptions:
    """One simulated call. Defaults place a plain call and wait for the server to hang up.

    Fault flags (issue 5) make the caller misbehave the way a broken or hostile Twilio peer
    could; each one is described next to it.
    """

    url: str = (
        "http://127.0.0.1:8000"  # the hotline server's base URL; the WS URL comes from its TwiML
    )
    auth_token: str | None = None  # TWILIO_AUTH_TOKEN used to sign the webhook and the upgrade
    voice_path: str = "/voice"
    call_sid: str = field(default_factory=lambda: _sid("CA"))
    account_sid: str = field(default_factory=lambda: _sid("AC"))
    stream_sid: str = field(default_factory=lambda: _sid("MZ"))
    from_number: str = "+15555550123"
    to_number: str = "+15555550100"
    digits: str = ""  # DTMF keys to press
    digit_after_s: float | None = (
        None  # None: each key after the next mark echo (the greeting/line finished)
    )
    digit_gap_s: float = 4.0  # with digit_after_s: seconds between keys
    barge_in_at: float | None = None  # seconds after `start`: the caller starts talking
    barge_in_text: str | None = None  # what the caller says (default: a short question)
    barge_in_after_answer_s: float | None = (
        None  # talk this long after the answer to the first key began playing
    )
    hangup_after_barge_in_s: float | None = None  # hang up this long after starting to talk
    hangup_after_s: float | None = None  # caller sends `stop` and closes at this time
    max_seconds: float = 30.0  # bound on the whole call (then `stop`, ended_by="timeout")
    out: str | None = None  # WAV of what the caller heard
    realtime: bool = True  # False: the clock runs 10x faster (quick functional checks only)
    keep_audio: bool = True  # keep `heard` (disable for big load runs)
    ws_url: str | None = (
        None  # connect here instead of the TwiML url (the TwiML url is still signed)
    )
    extra_form: dict[str, str] = field(default_factory=dict)  # more webhook form fields
    on_started: Callable[[CallReport], object] | None = None  # called right after `start` is sent
    control: CallControl | None = None  # press keys / hang up from outside while the call runs
    http_timeout: float = 10.0
    # Follow <Connect action> the way Twilio does when the stream closes without the call
    # being hung up (the server closed it, or its replica died): POST it (signed, with the
    # call's standard parameters) and play what it answers (<Hangup/>, or a new stream).
    # Off by default: the fault options below then describe one stream's life.
    follow_action: bool = False
    max_streams: int = 5  # bound on streams per call (a resume loop ends here)
    # One clock task for every call of this event loop (the load generator: hundreds of calls
    # cost one timer wake-up per 20 ms, not one each). Only for plain calls: no keys, no barge-in,
    # no control, no faults (those take the per-call clock regardless).
    shared_clock: bool = False
    # -- Twilio-side faults --------------------------------------------------------------------
    bad_signature: bool = False  # sign with a wrong token (expect 403 / refused upgrade)
    drop_without_stop: bool = False  # end by dropping the TCP connection: no `stop`, no close frame
    stop_before_media: bool = False  # `connected`, `start`, then `stop` at once
    duplicate_connection: bool = False  # a second stream for the same CallSid while the first runs
    unknown_events: bool = False  # an unknown event every 0.5 s
    malformed_json: bool = False  # a truncated JSON text every 0.5 s
    binary_frames: bool = False  # a binary frame every 0.5 s
    huge_message: bool = False  # one 1 MB text message 0.2 s in
    never_echo_marks: bool = False  # marks are never echoed (not even on clear)
    dtmf_storm: int = 0  # this many DTMF messages in one burst 0.5 s in
    media_speedup: float = 1.0  # inbound media this many times faster than real time
    # -- a conversation ------------------------------------------------------------------------
    speak: tuple[str, ...] = ()  # questions spoken in turn, each after the last line was heard
    speak_gap_s: float = 0.7  # silence after the line's audio ends before the caller speaks
    reply_timeout_s: float = 15.0  # no reply audio this long after a question: ask the next
    hangup_after_replies: bool = False  # hang up once the last reply was heard (and a gap)
    server_split: bool = False  # read the server's per-turn split from /metrics deltas
    admin_token: str | None = None  # read the call's transcript afterwards (what was heard)


class _Call:
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

    def _line_over(self, now: float) -> bool:
        """What was playing has ended and ``speak_gap_s`` of silence followed."""
        return (
            self.playback.buffered_bytes == 0
            and self.last_audio_ms is not None
            and now - self.last_audio_ms >= self.opts.speak_gap_s * 1000.0
        )

    def _converse(self, now: float) -> None:
        """Ask the next question once the last line (the reply to the previous one) was heard."""
        if self.conversed or self.speech_pos >= 0:
            return
        turn = self.turn
        if turn is not None and turn.first_reply_ms is None:
            assert turn.ended_ms is not None
            if now - turn.ended_ms < self.opts.reply_timeout_s * 1000.0:
                return  # still waiting for the reply to start
        elif not self._line_over(now):
            return
        self._snapshot()
        if not self.questions:
            self.conversed = True
            self.turn = None
            if self.digits and self.opts.digit_after_s is None and self.digit_due is None:
                self.digit_due = now + 300.0
            return
        text = self.questions.pop(0)
        from hotline.sim.speech import caller_speech_end, caller_speech_payloads

        try:
            self.speech_payloads = caller_speech_payloads(text)
            self.speech_end = caller_speech_end(text)
        except Exception as exc:  # eSpeak/codec unavailable: the call goes on without speech
            self.r.errors.append(f"caller speech unavailable: {exc}")
            self.questions.clear()
            self.conversed = True
            return
        self.speech_pos = 0
        self.turn = SpokenTurn(text=text, spoke_at_ms=now)
        self.r.turns.append(self.turn)

    def _snapshot(self) -> None:
        """Scrape the server's voice-to-voice histogram in the background (a turn boundary)."""
        if not self.opts.server_split or self.http is None:
            return
        from hotline.sim.server_split import scrape_v2v

        self.snapshots.append(self.loop.create_task(scrape_v2v(self.http, self.opts.url)))

    async def _close_snapshots(self) -> None:
        from hotline.sim.server_split import scrape_v2v, split_between

        snaps = [await t for t in self.snapshots]
        if len(snaps) == len(self.r.turns) and snaps:  # the call ended before the last reply
            snaps.append(await scrape_v2v(self.http, self.opts.url))
        for i, turn in enumerate(self.r.turns):
            if i + 1 < len(snaps):
                got = split_between(snaps[i], snaps[i + 1])
                if got is not None:
                    turn.server = got[0]

    def _start_barge_in(self) -> None:
        from hotline.sim.speech import DEFAULT_CALLER_TEXT, caller_speech_payloads

        try:
            self.speech_payloads = caller_speech_payloads(
                self.opts.barge_in_text or DEFAULT_CALLER_TEXT
            )
        except Exception as exc:  # eSpeak/codec unavailable: the call goes on without speech
            self.r.errors.append(f"caller speech unavailable: {exc}")
            return
        self.speech_pos = 0
        self.barge_onset = self.now_ms()
        self.r.barge_in_onset_ms = self.barge_onset

    # -- the clock -----------------------------------------------------------------------------

    async def _faults(self, tick: int) -> None:
        o = self.opts
        every = 25  # 0.5 s
        if o.unknown_events and tick % every == 3:
            await self._send(
                json.dumps(
                    {
                        "event": "hotline-unknown",
                        "sequenceNumber": self.msgs.next_seq(),
                        "streamSid": self.sid,
                        "unknown": {"x": "1"},
                    }
                )
            )
        if o.malformed_json and tick % every == 7:
            await self._send('{"event":"media","streamSid":"' + self.sid + '","media":{"payload":')
        if o.binary_frames and tick % every == 11:
            await self._send(SILENCE_FRAME)
        if o.huge_message and tick == 10:
            big = "A" * (1 << 20)
            await self._send(self.msgs.media_at(big, self.msgs.chunk + 1, self.msgs.chunk * 20))
        if o.dtmf_storm and tick == 25:
            keys = "0123456789*#"
            for i in range(o.dtmf_storm):
                await self._send(self.msgs.dtmf(keys[i % len(keys)]))
                self.r.dtmf_sent += 1

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
            dup = self.loop.create_task(self._duplicate())
        if o.digit_after_s is not None and self.digits:
            self.digit_due = o.digit_after_s * 1000.0
        ended_by = "timeout"
        tick = 0
        try:
            if self._plain() and o.shared_clock:
                ended_by = await _Ticker.join(self)
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
                await self._faults(tick)
                # frames due by the wall clock (catch up if the loop was late)
                due = int(now / 20.0) + 1 - self.played_frames
                pb = self.playback
                if due > 0 and pb.last is Last.MEDIA and pb.buffered_bytes < due * FRAME_BYTES:
                    # About to starve: first let the receiver take what already arrived (in one
                    # loop iteration the timer can run before the task reading the socket).
                    await asyncio.sleep(0)
                for _ in range(min(max(due, 0), _MAX_CATCH_UP)):
                    await self._play_frame()
                    sends = max(1, round(o.media_speedup)) if o.media_speedup >= 1 else 1
                    for _ in range(sends):
                        await self._send(self._media_message())
                        self.r.inbound_frames += 1
                if due > _MAX_CATCH_UP:  # hopelessly late: skip ahead instead of bursting
                    self.played_frames += due - _MAX_CATCH_UP
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

    def _plain(self) -> bool:
        """No keys, barge-in, control or faults: a call the shared clock can run."""
        o = self.opts
        return not (
            self.digits
            or o.control is not None
            or o.barge_in_at is not None
            or o.barge_in_after_answer_s is not None
            or o.hangup_after_barge_in_s is not None
            or o.unknown_events
            or o.malformed_json
            or o.binary_frames
            or o.huge_message
            or o.dtmf_storm
            or o.media_speedup != 1.0
            or o.duplicate_connection
        )

    def _send_now(self, text: str) -> None:
        """Send a text message without awaiting: straight into the connection's sans-I/O
        protocol and out to the transport (what ``ws.send`` does for an unfragmented message,
        minus its coroutine and lock)."""
        ws = self.ws
        ws.protocol.send_text(text.encode())
        ws.send_data()

    def _tick(self) -> str | None:
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
        for _ in range(min(max(due, 0), _MAX_CATCH_UP)):
            for echo in self._play():
                send(echo)
            send(self._media_message())
            self.r.inbound_frames += 1
        if due > _MAX_CATCH_UP:  # hopelessly late: skip ahead instead of bursting
            self.played_frames += due - _MAX_CATCH_UP
        return None

    async def _end_by_caller(self) -> None:
        from websockets.exceptions import ConnectionClosed

        if self.opts.drop_without_stop:
            self.ws.transport.abort()
            return
        with contextlib.suppress(ConnectionClosed):
            await self._send(self.msgs.stop())

    async def _duplicate(self) -> None:
        """Open a second stream for the same call (same signed URL, same parameters)."""
        from websockets.asyncio.client import connect
        from websockets.exceptions import ConnectionClosed, InvalidStatus

        assert self.r.stream_url is not None
        url = self.opts.ws_url or connect_url(self.r.stream_url, self.opts.url)
        headers = {}
        if self.opts.auth_token:
            headers["X-Twilio-Signature"] = sign(self.opts.auth_token, self.r.stream_url, {})
        await asyncio.sleep(0.3)
        try:
            async with connect(
                url,
                additional_headers=headers,
                compression=None,
                ping_interval=None,
                open_timeout=5,
            ) as ws2:
                sid2 = _sid("MZ")
                await ws2.send(
                    json.dumps({"event": "connected", "protocol": "Call", "version": "1.0.0"})
                )
                await ws2.send(self.msgs.start(self.params, stream_sid=sid2))

                async def drain() -> None:
                    with contextlib.suppress(ConnectionClosed):  # any close code: reported below
                        async for _ in ws2:
                            pass

                try:
                    await asyncio.wait_for(drain(), 3.0)
                    self.r.duplicate_result = f"closed by server (code {ws2.close_code})"
                except asyncio.TimeoutError:
                    self.r.duplicate_result = "still open after 3 s"
        except InvalidStatus as exc:
            self.r.duplicate_result = f"upgrade refused (HTTP {exc.response.status_code})"
        except (ConnectionClosed, OSError) as exc:
            self.r.duplicate_result = f"failed: {type(exc).__name__}"


async def _read_transcript(opts: CallOptions, report: CallReport) -> None:
    """What the server heard of each question and the line it said next (admin transcript)."""
    import httpx

    url = f"{opts.url.rstrip('/')}/calls/{opts.call_sid}/transcript"
    try:
        async with httpx.AsyncClient() as http:
            r = await http.get(
                url, headers={"Authorization": f"Bearer {opts.admin_token}"}, timeout=5.0
            )
        entries = r.json().get("entries", []) if r.status_code == 200 else []
    except (httpx.HTTPError, ValueError, AttributeError):
        return
    if not isinstance(entries, list):
        return
    turns = iter(report.turns)
    turn: SpokenTurn | None = None
    for entry in entries:
        if not isinstance(entry, dict):
            continue
        if entry.get("speaker") == "caller":
            turn = next(turns, None)
            if turn is None:
                break
            turn.heard_as = str(entry.get("text", ""))
        elif entry.get("speaker") == "hotline" and turn is not None and turn.reply_text is None:
            turn.reply_text = str(entry.get("text", ""))


class _Ticker:
    """The shared clock: one task per event loop steps every joined call each 10 ms (each call
    still plays and sends by its own 20 ms schedule; a step sends what is due)."""

    PERIOD_S = 0.01
    _running: ClassVar[dict[asyncio.AbstractEventLoop, _Ticker]] = {}

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.calls: dict[_Call, asyncio.Future[str]] = {}
        self.task: asyncio.Task[None] | None = None

    @classmethod
    async def join(cls, call: _Call) -> str:
        """Run ``call`` on this loop's shared clock until it ends; returns how it ended."""
        loop = call.loop
        ticker = cls._running.get(loop)
        if ticker is None:
            ticker = cls._running[loop] = _Ticker(loop)
        done: asyncio.Future[str] = loop.create_future()
        ticker.calls[call] = done
        if ticker.task is None:
            ticker.task = loop.create_task(ticker._run())
        try:
            return await done
        finally:
            ticker.calls.pop(call, None)
            call.ended = True

    async def _run(self) -> None:
        from websockets.exceptions import ConnectionClosed, InvalidState

        loop = self.loop
        try:
            next_at = loop.time()
            while self.calls:
                # let the receivers take what already arrived before frames are played
                await asyncio.sleep(0)
                for call, done in list(self.calls.items()):
                    if done.done():
                        continue
                    try:
                        ended = call._tick()
                    except (ConnectionClosed, InvalidState):
                        ended = "server_hangup"
                    except Exception as exc:  # the call's own failure, raised in its run()
                        done.set_exception(exc)
                        continue
                    if ended is not None:
                        done.set_result(ended)
                next_at += self.PERIOD_S
                delay = next_at - loop.time()
                if delay > 0:
                    await asyncio.sleep(delay)
                else:
                    next_at = loop.time()  # the loop was late: no burst of catch-up steps
        finally:
            self.task = None
            if self._running.get(loop) is self and not self.calls:
                del self._running[loop]


async def _stream(
    opts: CallOptions,
    report: CallReport,
    stream_url: str,
    params: dict[str, str],
    *,
    ws_url: str | None,
    stream_sid: str | None,
    max_seconds: float,
) -> _Call:
    """One media stream of the call: the signed upgrade, then the call until it ends.

    Raises:
        CallError: the upgrade failed.
    """
    from websockets.asyncio.client import connect
    from websockets.exceptions import InvalidHandshake, InvalidStatus

    headers: dict[str, str] = {}
    if opts.auth_token:
        token = opts.auth_token + "x" if opts.bad_signature else opts.auth_token
        headers["X-Twilio-Signature"] = sign(token, stream_url, {})
    url = ws_url or connect_url(stream_url, opts.url)
    report.close_code = None
    try:
        async with connect(
            url,
            additional_headers=headers,
            user_agent_header="Twilio.TmeWs/1.0",
            compression=None,
            ping_interval=None,
            open_timeout=opts.http_timeout,
            max_size=None,
            close_timeout=2,
        ) as ws:
            call = _Call(ws, opts, report, params, stream_sid, max_seconds)
            call.heard = bytearray(report.heard)  # the earpiece goes on across streams
            try:
                await call.run()
            finally:
                report.close_code = ws.close_code
        if report.close_code is None:  # we closed it after `stop`
            report.close_code = ws.close_code
    except InvalidStatus as exc:
        raise CallError(f"WebSocket upgrade refused: HTTP {exc.response.status_code}") from None
    except (InvalidHandshake, OSError, asyncio.TimeoutError) as exc:
        raise CallError(f"WebSocket to {url} failed: {type(exc).__name__}: {exc}") from None
    if report.close_code is None and opts.drop_without_stop:
        report.close_code = 1006
    return call


async def place_call(options: CallOptions) -> CallReport:
    """Place one simulated call and report what the caller lived through. Never raises for
    server misbehaviour: failures land in ``report.errors`` with ``ended_by="error"``."""
    opts = options
    report = CallReport(call_sid=opts.call_sid)
    t_begin = time.monotonic()
    for text in opts.speak:  # the questions, synthesized before the clock starts
        from hotline.sim.speech import caller_speech_end

        with contextlib.suppress(Exception):  # reported when the question is due
            await asyncio.to_thread(caller_speech_end, text)
    if (
        opts.barge_in_at is not None or opts.barge_in_after_answer_s is not None
    ):  # synthesize the caller's words before the clock starts
        from hotline.sim.speech import DEFAULT_CALLER_TEXT, caller_speech_payloads

        with contextlib.suppress(Exception):  # reported when the barge-in starts
            await asyncio.to_thread(
                caller_speech_payloads, opts.barge_in_text or DEFAULT_CALLER_TEXT
            )
    try:
        twiml = await post_webhook(opts, report)
        stream_url, params = parse_twiml(twiml)
        report.stream_url = stream_url
        report.custom_parameters = dict(params)
        t_first: float | None = None  # loop time of the first stream's start
        while True:
            first = not report.streams
            left = opts.max_seconds
            if t_first is not None:
                left -= asyncio.get_running_loop().time() - t_first
            call = await _stream(
                opts,
                report,
                stream_url,
                params,
                ws_url=opts.ws_url if first else None,
                stream_sid=None if first else _sid("MZ"),
                max_seconds=max(left, 0.0),
            )
            if t_first is None:
                t_first = call.t0
            origin = t_first
            ended_at = asyncio.get_running_loop().time()
            first_audio = call.first_media_at
            report.streams.append(
                {
                    "stream_sid": call.sid,
                    "started_ms": (call.t0 - origin) * 1000.0,
                    "first_audio_ms": None
                    if first_audio is None
                    else (first_audio - origin) * 1000.0,
                    "ended_ms": (ended_at - origin) * 1000.0,
                    "ended_by": report.ended_by,
                    "close_code": report.close_code,
                }
            )
            action = connect_action(twiml)
            if (
                not opts.follow_action
                or action is None
                or report.ended_by != "server_hangup"
                or len(report.streams) >= opts.max_streams
            ):
                break
            status, twiml = await post_action(opts, action)
            if status is None:
                report.actions.append("unreachable")
                break
            if status != 200:
                report.actions.append(f"http {status}")
                report.errors.append(f"<Connect action> POST answered HTTP {status}")
                break
            if is_hangup(twiml):
                report.actions.append("hangup")
                break
            try:
                stream_url, params = parse_twiml(twiml)
            except CallError:
                report.actions.append("other")
                break
            report.actions.append("stream")
    except CallError as exc:
        report.errors.append(str(exc))
        report.ended_by = "error"
    if len(report.streams) > 1:  # the whole call, over every stream
        report.duration_ms = report.streams[-1]["ended_ms"]
    if not report.duration_ms:
        report.duration_ms = (time.monotonic() - t_begin) * 1000.0
    if opts.admin_token and report.turns:
        await _read_transcript(opts, report)
    if opts.out:
        from hotline.sim.wav import write_ulaw_wav

        write_ulaw_wav(opts.out, report.heard)
        report.out = opts.out
    return report
