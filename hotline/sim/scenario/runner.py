"""Run scenarios against a line and judge them: :func:`run_scenario` (one call),
:func:`run_all` (several scenarios, each ``repeat`` times, ``jobs`` calls at once)."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hotline.core.script import CallScript, IntentAction, default_script, load_script, normalise
from hotline.core.ulaw import FRAME_BYTES
from hotline.sim.scenario.audio import StepAudio, step_audio
from hotline.sim.scenario.checks import (
    Check,
    StepView,
    check_call,
    check_record,
    check_step,
    script_lines,
)
from hotline.sim.scenario.driver import CallRun, StepRecord, new_caller_number, run_call
from hotline.sim.scenario.ear import CallerEar
from hotline.sim.scenario.judge import JudgeConfig, judge
from hotline.sim.scenario.model import Scenario, ScenarioError, Step

__all__ = ["Line", "ScenarioResult", "StepResult", "ear_vocabulary", "run_all", "run_scenario"]


@dataclass(frozen=True)
class Line:
    """The hotline under test: its base URL, the Twilio auth token it checks signatures with,
    and its admin token (for the server's transcript; None: judged on what was heard only)."""

    url: str
    auth_token: str | None
    admin_token: str | None = None


@dataclass
class StepResult:
    index: int
    step: str
    heard: str | None
    server_lines: list[str] | None
    server_turns: list[str] | None
    latency_ms: float | None
    barge_clear_ms: float | None

    def as_dict(self) -> dict[str, Any]:
        return dict(vars(self))


@dataclass
class ScenarioResult:
    name: str
    path: str | None
    run: int  # 1.. of --repeat
    call_sid: str
    checks: list[Check]
    steps: list[StepResult] = field(default_factory=list)
    seconds: float = 0.0
    ear: str = ""
    ended_by: str = ""
    #: What the ``<Connect action>`` POST was answered with after the server ended the stream
    #: (``hangup``, ``dial`` ...; None: not asked)
    action_answer: str | None = None
    #: The call's record summary (``[expect] record`` read it; None: not read, or none)
    summary: str | None = None

    @property
    def passed(self) -> bool:
        return all(c.ok is not False for c in self.checks)

    def failures(self) -> list[Check]:
        return [c for c in self.checks if c.ok is False]

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "path": self.path,
            "run": self.run,
            "call_sid": self.call_sid,
            "passed": self.passed,
            "seconds": round(self.seconds, 2),
            "ear": self.ear,
            "ended_by": self.ended_by,
            "action_answer": self.action_answer,
            "summary": self.summary,
            "checks": [c.as_dict() for c in self.checks],
            "steps": [s.as_dict() for s in self.steps],
        }


def scenario_script(scenario: Scenario) -> CallScript:
    """The call script the scenario's line runs (its ``script``, else the built-in one).

    Raises:
        ScenarioError: the script cannot be read or is invalid.
    """
    if scenario.script is None:
        return default_script()
    try:
        text = scenario.script.read_text("utf-8")
        return load_script(text, source=str(scenario.script))
    except (OSError, ValueError) as exc:
        raise ScenarioError(f"{scenario.path}: script: {exc}") from None


def ear_vocabulary(scenarios: list[Scenario]) -> list[str]:
    """What the grammar ear listens for: every line of the scripts and every expected word."""
    words: list[str] = []
    for sc in scenarios:
        words.extend(script_lines(scenario_script(sc)).values())
        for step in sc.steps:
            words.extend(step.expect.words)
            words.extend(step.expect.not_words)
    return words


async def _transcript(line: Line, call_sid: str) -> list[dict[str, Any]] | None:
    import httpx

    if not line.admin_token:
        return None
    url = f"{line.url.rstrip('/')}/calls/{call_sid}/transcript"
    headers = {"Authorization": f"Bearer {line.admin_token}"}
    async with httpx.AsyncClient(timeout=5.0) as http:
        for _ in range(20):  # the call's end reaches the transcript store a moment later
            try:
                r = await http.get(url, headers=headers)
            except httpx.HTTPError:
                return None
            if r.status_code == 200:
                data = r.json()
                if data.get("ended", True):
                    entries = data.get("entries")
                    return entries if isinstance(entries, list) else None
            elif r.status_code != 404:
                return None
            await asyncio.sleep(0.1)
    return None


#: How long the line's records may take to list a call (they are written off the hot path).
RECORD_WAIT_S = 15.0
#: How far into the greeting the earlier call of a returning caller (``called_before``) hangs up.
EARLIER_CALL_S = 1.0


def _needs_admin(scenario: Scenario, line: Line) -> None:
    if scenario.uses_records() and not line.admin_token:
        what = "called_before" if scenario.caller.called_before else "[expect] record"
        raise ScenarioError(
            f"{scenario.path or scenario.name}: {what} needs the line's call records, read with "
            "its admin token: give --admin-token (or $HOTLINE_ADMIN_TOKEN)"
        )


def _records_problem(scenario: Scenario, status: int, detail: str) -> ScenarioError:
    where = scenario.path or scenario.name
    if status == 404:
        return ScenarioError(
            f"{where}: the line keeps no call records ({detail or 'HTTP 404'}); a returning "
            "caller and record checks need them"
        )
    if status in (401, 403):
        return ScenarioError(f"{where}: the line refused the admin token (HTTP {status})")
    return ScenarioError(f"{where}: the line's call records answered HTTP {status}: {detail}")


async def records_ready(scenario: Scenario, line: Line) -> None:
    """The line keeps call records and takes the admin token (asked before any call is placed).

    Raises:
        ScenarioError: it does not (records off, the token refused, the line away).
    """
    import httpx

    _needs_admin(scenario, line)
    try:
        async with httpx.AsyncClient(timeout=5.0) as http:
            r = await http.get(
                f"{line.url.rstrip('/')}/history",
                params={"limit": 1},
                headers={"Authorization": f"Bearer {line.admin_token}"},
            )
    except httpx.HTTPError as exc:
        raise ScenarioError(
            f"{scenario.path or scenario.name}: the line's call records: {exc}"
        ) from None
    if r.status_code not in (200, 503):  # 503: the database is away for a moment
        raise _records_problem(scenario, r.status_code, _detail(r))


def _detail(r: Any) -> str:
    try:
        body = r.json()
    except ValueError:
        return r.text[:200]
    return str(body.get("detail", "")) if isinstance(body, dict) else ""


async def call_before(scenario: Scenario, line: Line, number: str) -> str:
    """A returning caller's earlier call: from ``number``, hearing the first second of the
    greeting, then hanging up; returns once the line's call records list it (its CallSid).

    Raises:
        ScenarioError: the call failed, the line keeps no records (or refused the admin token),
            or its records did not list the call within :data:`RECORD_WAIT_S`.
    """
    import httpx

    where = scenario.path or scenario.name
    earlier = Scenario(
        name=f"{scenario.name} (the earlier call)",
        path=scenario.path,
        caller=dataclasses.replace(scenario.caller, number=number, called_before=False),
        steps=(Step("hangup", True, over_line_after=EARLIER_CALL_S),),
        max_seconds=30.0,
    )
    run = await run_call(earlier, {}, url=line.url, auth_token=line.auth_token)
    if run.error is not None:
        raise ScenarioError(f"{where}: called_before: the earlier call failed: {run.error}")
    sid = run.report.call_sid
    url = f"{line.url.rstrip('/')}/history"
    headers = {"Authorization": f"Bearer {line.admin_token}"}
    deadline = time.monotonic() + RECORD_WAIT_S
    async with httpx.AsyncClient(timeout=5.0) as http:
        while True:
            try:
                r = await http.get(url, params={"caller": number, "limit": 50}, headers=headers)
            except httpx.HTTPError as exc:
                raise ScenarioError(f"{where}: the line's call records: {exc}") from None
            if r.status_code == 200:
                calls = r.json().get("calls") or []
                if any(isinstance(c, dict) and c.get("call_sid") == sid for c in calls):
                    return sid
            elif r.status_code != 503:  # 503: the database is away for a moment
                raise _records_problem(scenario, r.status_code, _detail(r))
            if time.monotonic() > deadline:
                raise ScenarioError(
                    f"{where}: called_before: the line's call records did not list the earlier "
                    f"call within {RECORD_WAIT_S:g} s"
                )
            await asyncio.sleep(0.2)


async def read_record(
    scenario: Scenario, line: Line, call_sid: str, *, summary: bool
) -> tuple[dict[str, Any] | None, str]:
    """The call's record (``GET /history/{CallSid}``) once the line wrote it (and summarised
    it, with ``summary``), or None and why not.

    Raises:
        ScenarioError: the line keeps no records, or refused the admin token.
    """
    import httpx

    url = f"{line.url.rstrip('/')}/history/{call_sid}"
    headers = {"Authorization": f"Bearer {line.admin_token}"}
    deadline = time.monotonic() + RECORD_WAIT_S
    last: dict[str, Any] | None = None
    async with httpx.AsyncClient(timeout=5.0) as http:
        while time.monotonic() < deadline:
            try:
                r = await http.get(url, headers=headers)
            except httpx.HTTPError as exc:
                return None, f"the line's call records did not answer: {exc}"
            if r.status_code == 200:
                last = r.json()
                if not summary or last.get("summary"):
                    return last, ""
            elif r.status_code == 404 and "records are off" in _detail(r):
                raise _records_problem(scenario, 404, _detail(r))
            elif r.status_code not in (404, 503):  # 404: not written yet
                raise _records_problem(scenario, r.status_code, _detail(r))
            await asyncio.sleep(0.2)
    if last is not None:
        return last, ""
    return None, f"the line's call records held no record of the call after {RECORD_WAIT_S:g} s"


def _slice(heard: bytes, start_ms: float, end_ms: float) -> bytes:
    a = max(0, int(start_ms / 20)) * FRAME_BYTES
    b = max(a, int(end_ms / 20) * FRAME_BYTES)
    return heard[a:b]


def _speech_ms(ulaw: bytes) -> float:
    from hotline.sim.speech import frame_is_speech

    return 20.0 * sum(
        frame_is_speech(ulaw[i : i + FRAME_BYTES])
        for i in range(0, len(ulaw) - FRAME_BYTES + 1, FRAME_BYTES)
    )


class _Clock:
    """The server's transcript entries on the caller's clock. The server's times start when it
    accepts the stream, later than the caller's `start` (a second later under load): its
    greeting (the first line, at ~0) is placed where its first audio reached the caller, and
    every entry moves by as much. That places lines late by the voice's first-chunk time at
    most (~0.3 s), never early: a reply stays in its step, whose window runs until the line
    ended and the caller acted again."""

    def __init__(self, entries: list[dict[str, Any]] | None, first_audio_ms: float | None):
        self.entries = [e for e in entries or [] if isinstance(e, dict)]
        said = [_at(e) for e in self.entries if e.get("speaker") == "hotline"]
        self.offset = max(0.0, first_audio_ms - said[0]) if said and first_audio_ms else 0.0

    def ms(self, e: dict[str, Any]) -> float:
        return _at(e) + self.offset

    def texts(self, speaker: str, start: float, end: float) -> list[str]:
        return [
            str(e.get("text", ""))
            for e in self.entries
            if e.get("speaker") == speaker and start <= self.ms(e) < end
        ]

    def previous(self, before: float) -> str | None:
        said = [
            str(e.get("text", ""))
            for e in self.entries
            if e.get("speaker") == "hotline" and self.ms(e) < before
        ]
        return said[-1] if said else None


def _at(e: dict[str, Any]) -> float:
    try:
        return float(e.get("at", -1.0)) * 1000.0
    except (TypeError, ValueError):
        return -1.0


async def run_scenario(
    scenario: Scenario,
    line: Line,
    ear: CallerEar,
    *,
    judge_config: JudgeConfig | None = None,
    run: int = 1,
) -> ScenarioResult:
    """Place the scenario's call against ``line``, then judge every expectation.

    Raises:
        ScenarioError: the scenario cannot be run (a WAV or the script cannot be read, eSpeak
            has no such voice); a misbehaving line is a failed result, never an exception.
    """
    t0 = time.monotonic()
    script = scenario_script(scenario)
    _needs_admin(scenario, line)
    audio: dict[int, StepAudio] = {}
    for i, step in enumerate(scenario.steps):
        try:
            got = await asyncio.to_thread(
                step_audio, step, scenario.caller.voice, scenario.caller.rate
            )
        except ScenarioError:
            raise
        except Exception as exc:  # eSpeak: no such voice
            raise ScenarioError(f"{scenario.path}: step[{i}]: no caller audio: {exc}") from None
        if got is not None:
            audio[i] = got
    if scenario.uses_records():
        await records_ready(scenario, line)
    if scenario.caller.called_before:
        number = scenario.caller.number or new_caller_number()
        await call_before(scenario, line, number)
        scenario = dataclasses.replace(
            scenario, caller=dataclasses.replace(scenario.caller, number=number)
        )
    call = await run_call(scenario, audio, url=line.url, auth_token=line.auth_token)
    report = call.report
    entries = await _transcript(line, report.call_sid) if call.error is None else None
    results, views = await _views(scenario, call, entries, ear)
    checks: list[Check] = []
    for v in views:
        checks.extend(check_step(v, script, ear.heard_min))
    last_said = next(
        (e.get("text", "") for e in reversed(entries or []) if e.get("speaker") == "hotline"), ""
    )
    handed_off = report.ended_by == "server_hangup" and any(
        i.action is IntentAction.HANDOFF and i.say and normalise(i.say) == normalise(last_said)
        for i in script.intents
    )
    checks.extend(check_call(scenario, report.ended_by, handed_off, report.errors))
    summary = None
    if scenario.record is not None:
        if call.error is None:
            want = bool(scenario.record.summary_words)
            record, problem = await read_record(scenario, line, report.call_sid, summary=want)
        else:
            record, problem = None, f"the call failed: {call.error}"
        checks.extend(check_record(scenario.record, record, problem))
        summary = record.get("summary") if record is not None else None
    if scenario.uses_judge():
        checks.extend(await _judge(scenario, results, judge_config))
    return ScenarioResult(
        name=scenario.name,
        path=str(scenario.path) if scenario.path else None,
        run=run,
        call_sid=report.call_sid,
        checks=checks,
        steps=results,
        seconds=time.monotonic() - t0,
        ear=ear.name,
        ended_by=report.ended_by,
        action_answer=call.action_answer,
        summary=summary if isinstance(summary, str) else None,
    )


async def _views(
    scenario: Scenario,
    call: CallRun,
    entries: list[dict[str, Any]] | None,
    ear: CallerEar,
) -> tuple[list[StepResult], list[StepView]]:
    report = call.report
    clock = _Clock(entries, report.time_to_first_audio_ms)
    acted = [r for r in call.steps if r.acted_ms is not None]
    last_acted = acted[-1] if acted else None
    results: list[StepResult] = []
    views: list[StepView] = []
    for rec in call.steps:
        e = rec.step.expect
        if rec.acted_ms is None:
            if not e.empty() and call.error is None:
                rec.notes.append(f"never reached: the call ended ({report.ended_by}) before it")
            if call.error is None:
                views.append(_unreached(rec))
            results.append(StepResult(rec.index, rec.step.describe(), None, None, None, None, None))
            continue
        start = rec.ended_ms if rec.ended_ms is not None else rec.acted_ms
        end = rec.window_end_ms if rec.window_end_ms is not None else report.duration_ms
        audio = _slice(report.heard, start, end)
        heard: str | None = None
        if e.checks_line() or e.judge or scenario.judge:
            heard = await asyncio.to_thread(ear.transcribe, audio)
        barge = None
        if rec.step.over_line_after is not None:
            after = [t - rec.acted_ms for t in rec.clears_ms if t >= rec.acted_ms]
            barge = after[0] if after else None
        # A listen step first in the call hears the greeting, which the server starts as it
        # accepts the stream: maybe a few ms before the caller's first tick.
        first_listen = rec.step.action == "listen" and rec is (acted[0] if acted else None)
        win = -1e9 if first_listen else rec.acted_ms
        server_lines = clock.texts("hotline", win, end) if entries is not None else None
        server_turns = clock.texts("caller", win, end) if entries is not None else None
        views.append(
            StepView(
                index=rec.index,
                expect=e,
                heard=heard,
                reply_speech_ms=_speech_ms(audio),
                server_lines=server_lines,
                server_turns=server_turns,
                previous_line=clock.previous(win) if entries is not None else None,
                latency_ms=rec.latency_ms,
                barge_clear_ms=barge,
                ended_call=report.ended_by == "server_hangup" and rec is last_acted,
                notes=rec.notes,
            )
        )
        results.append(
            StepResult(
                rec.index,
                rec.step.describe(),
                heard,
                server_lines,
                server_turns,
                rec.latency_ms,
                barge,
            )
        )
    return results, views


def _unreached(rec: StepRecord) -> StepView:
    return StepView(
        index=rec.index,
        expect=rec.step.expect.__class__(),  # nothing to judge: the note says why
        heard=None,
        reply_speech_ms=0.0,
        server_lines=None,
        server_turns=None,
        previous_line=None,
        latency_ms=None,
        barge_clear_ms=None,
        ended_call=False,
        notes=rec.notes,
    )


async def _judge(
    scenario: Scenario, steps: list[StepResult], config: JudgeConfig | None
) -> list[Check]:
    rubrics: list[tuple[int | None, str]] = [(None, scenario.judge)] if scenario.judge else []
    rubrics += [(i, s.expect.judge) for i, s in enumerate(scenario.steps) if s.expect.judge]
    if config is None:
        return [Check(i, "judge", None, "not judged: no --judge-url") for i, _ in rubrics]
    lines = []
    for s in steps:
        lines.append(f"CALLER: ({s.step})")
        if s.heard is not None:
            lines.append(f"LINE (as the caller heard it): {s.heard or '(nothing)'}")
    conversation = "\n".join(lines)
    out = []
    for i, rubric in rubrics:
        v = await judge(config, rubric, conversation)
        if v.ok is None:
            out.append(Check(i, "judge", False, f"no verdict: {v.reason}"))
        else:
            out.append(Check(i, "judge", v.ok, v.reason))
    return out


async def run_all(
    scenarios: list[Scenario],
    line: Line,
    ear: CallerEar,
    *,
    repeat: int = 1,
    jobs: int = 1,
    judge_config: JudgeConfig | None = None,
    on_result: Any = None,
) -> list[ScenarioResult]:
    """Every scenario ``repeat`` times, at most ``jobs`` calls at once; results in order.
    ``on_result(result)`` is called as each finishes."""
    sem = asyncio.Semaphore(max(1, jobs))

    async def one(sc: Scenario, n: int) -> ScenarioResult:
        async with sem:
            res = await run_scenario(sc, line, ear, judge_config=judge_config, run=n)
        if on_result is not None:
            on_result(res)
        return res

    tasks = [one(sc, n) for sc in scenarios for n in range(1, repeat + 1)]
    return list(await asyncio.gather(*tasks))


def collect(paths: list[str]) -> list[Path]:
    """Scenario files: each path itself, or a directory's ``*.toml`` files (sorted).

    Raises:
        ScenarioError: a path that does not exist, or a directory without scenarios.
    """
    out: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            found = sorted(p.glob("*.toml"))
            if not found:
                raise ScenarioError(f"{p}: no *.toml scenario in this directory")
            out.extend(found)
        elif p.is_file():
            out.append(p)
        else:
            raise ScenarioError(f"{p}: no such file or directory")
    return out
