"""A scenario's call: Twilio's side of one call (the caller simulator's stream) driven step by
step, and what happened in each step's window (:class:`StepRecord`).

The stream is :class:`hotline.sim.stream.MediaStream` (its 20 ms clock, its playback model and
its strict receiver); this module only replaces what the caller does next
(:meth:`ScenarioStream._converse`, called on every tick): wait for the line to end (or talk
over it N s in), act (speak, press, cough, stay silent, hang up), then wait for the reply to
start and end. Times are ms since ``start`` was sent, the caller's clock.
"""

from __future__ import annotations

import asyncio
import secrets
from dataclasses import dataclass, field
from typing import Any

from hotline.sim.call_report import CallReport, SpokenTurn
from hotline.sim.errors import CallError
from hotline.sim.options import CallControl, CallOptions
from hotline.sim.playback import Last
from hotline.sim.scenario.audio import StepAudio
from hotline.sim.scenario.model import Scenario, Step
from hotline.sim.stream import MediaStream


def new_caller_number() -> str:
    """A number no call has come from yet: +1 555 (no such area code), seven random digits."""
    return f"+1555{secrets.randbelow(10**7):07d}"


__all__ = ["CallRun", "ScenarioStream", "StepRecord", "run_call"]

#: Silence after a line's last audio before the caller takes its turn.
GAP_MS = 700.0
#: After the last step, the line must have been quiet this long before the caller hangs up
#: (the server's own hang-up, after a goodbye, comes first).
END_QUIET_MS = 1500.0


@dataclass
class StepRecord:
    """What happened in one step. ``acted_ms``: the caller's action began (first frame sent,
    key pressed); ``ended_ms``: it ended (last speech frame sent); ``window_end_ms``: the next
    step's action began (or the call ended). Its reply is what played after ``ended_ms``."""

    index: int
    step: Step
    acted_ms: float | None = None
    ended_ms: float | None = None
    window_end_ms: float | None = None
    first_reply_ms: float | None = None
    clears_ms: list[float] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    done: bool = False

    @property
    def latency_ms(self) -> float | None:
        if self.ended_ms is None or self.first_reply_ms is None:
            return None
        return self.first_reply_ms - self.ended_ms


class ScenarioStream(MediaStream):
    """One media stream whose caller follows a scenario's steps."""

    def __init__(
        self,
        ws: Any,
        opts: CallOptions,
        report: CallReport,
        params: dict[str, str],
        steps: list[StepRecord],
        audio: dict[int, StepAudio],
    ) -> None:
        super().__init__(ws, opts, report, params)
        self.records = steps
        self.audio = audio
        self.control = opts.control
        assert self.control is not None
        self.conversed = False  # the base class's own conversation stays off (no `speak`)
        self.i = 0
        self.phase = "wait"
        self.phase_at = 0.0
        self.all_done_at: float | None = None
        self.clear_log: list[float] = []

    # -- the line ------------------------------------------------------------------------------

    def _quiet(self, now: float) -> bool:
        """A line has played and ended (its last mark echoed or cleared) and a gap followed."""
        pb = self.playback
        return (
            self.last_audio_ms is not None
            and pb.buffered_bytes == 0
            and pb.last is not Last.MEDIA
            and now - self.last_audio_ms >= GAP_MS
        )

    async def _on_clear(self) -> None:
        self.clear_log.append(self.now_ms())
        await super()._on_clear()

    # -- the steps -----------------------------------------------------------------------------

    def _converse(self, now: float) -> None:
        if self.phase == "wait" and self.phase_at == 0.0:
            self.phase_at = now
        while self.i < len(self.records):
            rec = self.records[self.i]
            if self.phase == "wait":
                if not self._ready(rec, now):
                    return
                self._act(rec, now)
                self.phase, self.phase_at = "act", now
            if self.phase == "act":
                if not self._acted(rec, now):
                    return
                self.phase, self.phase_at = "reply", now
            if self.phase == "reply":
                if not self._replied(rec, now):
                    return
                rec.done = True
                self.i += 1
                self.phase, self.phase_at = "wait", now
        if self.all_done_at is None:
            self.all_done_at = now
        if (
            self._quiet(now) and now - (self.last_audio_ms or 0.0) >= END_QUIET_MS
        ) or now - self.all_done_at >= 30_000.0:
            assert self.control is not None
            self.control.hang_up()

    def _ready(self, rec: StepRecord, now: float) -> bool:
        step = rec.step
        waited = now - self.phase_at
        if step.action == "listen":
            return True
        if step.over_line_after is not None:
            if self.utt_start is not None and now - self.utt_start >= step.over_line_after * 1e3:
                return True
            if waited >= (step.over_line_after + step.reply_timeout) * 1000.0:
                rec.notes.append("no line was playing to talk over")
                return True
            return False
        if self._quiet(now):
            return True
        if self.last_audio_ms is None and waited >= step.reply_timeout * 1000.0:
            rec.notes.append(f"no line played in {step.reply_timeout:g} s before this step")
            return True
        return False

    def _act(self, rec: StepRecord, now: float) -> None:
        step = rec.step
        rec.acted_ms = now
        if self.i > 0:
            self.records[self.i - 1].window_end_ms = now
        self.turn = SpokenTurn(text=step.describe(), spoke_at_ms=now)
        audio = self.audio.get(rec.index)
        assert self.control is not None
        if audio is not None:
            self.speech_payloads = audio.payloads
            self.speech_end = audio.speech_end if audio.speech_end >= 0 else len(audio.payloads)
            self.speech_pos = 0
            if step.over_line_after is not None:
                self.barge_onset = now
                self.r.barge_in_onset_ms = now
        elif step.action == "press":
            self.control.press(step.value)
            self.turn.ended_ms = now
        elif step.action == "hangup":
            self.control.hang_up()
            self.turn.ended_ms = now
        else:  # listen, silent
            self.turn.ended_ms = now

    def _acted(self, rec: StepRecord, now: float) -> bool:
        step = rec.step
        if step.action in ("say", "wav", "cough", "noise"):
            if self.speech_pos >= 0:
                return False
            assert self.turn is not None
            if self.turn.ended_ms is None:  # nothing in it was speech: it ends with its audio
                self.turn.ended_ms = now
            rec.ended_ms = self.turn.ended_ms
            return True
        if step.action == "silent":
            if rec.ended_ms is None:
                rec.ended_ms = rec.acted_ms
            return now - (rec.acted_ms or now) >= float(step.value) * 1000.0
        rec.ended_ms = rec.acted_ms
        return True

    def _replied(self, rec: StepRecord, now: float) -> bool:
        step = rec.step
        turn = self.turn
        assert turn is not None
        rec.first_reply_ms = turn.first_reply_ms
        if step.action in ("silent", "hangup"):
            return True
        if turn.first_reply_ms is None:
            return now - self.phase_at >= step.reply_timeout * 1000.0
        return self._quiet(now)

    def finish(self) -> None:
        """The call ended: close the last window, file each clear in its step."""
        end = self.now_ms()
        for rec in self.records:
            if rec.acted_ms is not None and rec.window_end_ms is None:
                rec.window_end_ms = end
            if rec.acted_ms is not None and rec.first_reply_ms is None and rec is self._current():
                rec.first_reply_ms = self.turn.first_reply_ms if self.turn else None
        for t in self.clear_log:
            for rec in self.records:
                if rec.acted_ms is not None and rec.acted_ms <= t < (rec.window_end_ms or end):
                    rec.clears_ms.append(t)

    def _current(self) -> StepRecord | None:
        return self.records[self.i] if self.i < len(self.records) else None


@dataclass
class CallRun:
    """A finished scenario call: the simulator's report, the steps, the ``<Connect action>``
    answer (``hangup``, ``dial`` ...) and the call's TwiML parameters."""

    report: CallReport
    steps: list[StepRecord]
    action_answer: str | None = None
    error: str | None = None


async def run_call(
    scenario: Scenario,
    audio: dict[int, StepAudio],
    *,
    url: str,
    auth_token: str | None,
    call_sid: str | None = None,
) -> CallRun:
    """Place the scenario's call against ``url`` and drive it to its end. Never raises for the
    server's misbehaviour: a failed webhook or upgrade lands in ``CallRun.error``."""
    from websockets.asyncio.client import connect
    from websockets.exceptions import InvalidHandshake, InvalidStatus

    from hotline.sim.webhook import (
        connect_action,
        connect_url,
        parse_twiml,
        post_action,
        post_webhook,
        sign,
    )

    opts = CallOptions(
        url=url,
        auth_token=auth_token,
        from_number=scenario.caller.number or new_caller_number(),
        extra_form=dict(scenario.caller.parameters),
        max_seconds=scenario.max_seconds,
        control=CallControl(),
    )
    if call_sid:
        opts.call_sid = call_sid
    report = CallReport(call_sid=opts.call_sid)
    records = [StepRecord(i, s) for i, s in enumerate(scenario.steps)]
    run = CallRun(report, records)
    try:
        twiml = await post_webhook(opts, report)
        stream_url, params = parse_twiml(twiml)
        report.stream_url = stream_url
        report.custom_parameters = dict(params)
        headers = {}
        if auth_token:
            headers["X-Twilio-Signature"] = sign(auth_token, stream_url, {})
        try:
            async with connect(
                connect_url(stream_url, url),
                additional_headers=headers,
                user_agent_header="Twilio.TmeWs/1.0",
                compression=None,
                ping_interval=None,
                open_timeout=opts.http_timeout,
                max_size=None,
                close_timeout=2,
            ) as ws:
                stream = ScenarioStream(ws, opts, report, params, records, audio)
                try:
                    await stream.run()
                finally:
                    stream.finish()
                    report.close_code = ws.close_code
        except InvalidStatus as exc:
            raise CallError(f"WebSocket upgrade refused: HTTP {exc.response.status_code}") from None
        except (InvalidHandshake, OSError, asyncio.TimeoutError) as exc:
            raise CallError(f"WebSocket failed: {type(exc).__name__}: {exc}") from None
        action = connect_action(twiml)
        if action is not None and report.ended_by == "server_hangup":
            status, answer = await post_action(opts, action)
            run.action_answer = _twiml_verb(answer) if status == 200 else f"http {status}"
    except CallError as exc:
        run.error = str(exc)
        report.errors.append(str(exc))
        report.ended_by = "error"
    return run


def _twiml_verb(text: str) -> str:
    """The first verb of a TwiML answer, lower-case (``hangup``, ``dial``, ``connect`` ...)."""
    import xml.etree.ElementTree as ET

    try:
        root = ET.fromstring(text)
    except ET.ParseError:
        return "not TwiML"
    first = next(iter(root), None)
    return first.tag.lower() if first is not None else "empty"
