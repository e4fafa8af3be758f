"""The scenario format: a TOML file saying what a caller does and what it must hear.

::

    name = "tour dates"
    max_seconds = 90            # bound on the whole call

    [caller]
    number = "+15555550123"     # From (unset: a new caller each call, a fresh 555 number)
    called_before = true        # a returning caller: a short call from this number comes first
    voice = "en-us"             # eSpeak NG voice of `say` steps
    rate = 170                  # words per minute
    [caller.parameters]         # more fields on the voice-webhook POST (Twilio's call parameters)
    CallerCity = "PORTLAND"

    [[step]]                    # the greeting: listen to the line until it ends
    listen = true
    expect = { line = "greeting", latency_ms = 3000 }

    [[step]]
    say = "What are the tour dates?"
    expect = { intent = "tour", words = ["Portland", "Seattle"], latency_ms = 2500, one_turn = true }

What a step does (exactly one of): ``say`` (text, or a list of parts spoken with ``gap_ms``
between them: a mid-sentence pause), ``wav`` (a recorded caller, any rate, resampled; a path
relative to the scenario), ``press`` (DTMF keys), ``cough`` (ms of a generated cough), ``noise``
(ms of line noise), ``silent`` (seconds the caller says nothing), ``listen`` (wait for the next
line and hear it out), ``hangup``. ``over_line_after`` = N: start this step N seconds into the
line that is playing (a barge-in) instead of after it ended.

What a step expects (all optional, all must hold): see :class:`Expect`. A scenario's ``[expect]``
table holds the call's ``outcome``, what its call record must hold (``record``, see
:class:`RecordExpect`) and an optional LLM ``judge`` rubric, which never stands alone::

    [expect]
    outcome = "caller_hangup"
    record = { outcome = "twilio stop", ended_by = "caller", caller_turns = 1, topics = ["tour"], summary_words = ["tour"] }

``called_before = true``: before the scenario's call, the runner places a short call from the
same number (a fresh one when ``number`` is unset): it hears the first second of the greeting
and hangs up; then it waits until the line's call records list that call
(``GET /history?caller=``), so the line knows the caller when the scenario's call comes (the
script's ``returning_greeting``: ``expect = { line = "returning_greeting" }``). It and
``record`` need the line's call records and its admin token (``--admin-token``); a line with
records off (``HOTLINE_DATABASE_URL=off``) is an error, not a pass.
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

__all__ = [
    "ACTIONS",
    "ENDED_BY",
    "OUTCOMES",
    "Caller",
    "Expect",
    "RecordExpect",
    "Scenario",
    "ScenarioError",
    "Step",
    "load_scenario",
    "parse_scenario",
]

#: What a step can do (exactly one per step).
ACTIONS = ("say", "wav", "press", "cough", "noise", "silent", "listen", "hangup")

#: How a call can end: the server hung up, the caller did, or the server handed the caller on.
OUTCOMES = ("server_hangup", "caller_hangup", "handoff")

#: Who ended a call, as its call record says (``hotline.server.recording.ended_by``).
ENDED_BY = ("caller", "hotline", "admin", "replica", "error")

_DTMF = re.compile(r"^[0-9*#]+$")
_NUMBER = re.compile(r"^\+?[0-9]{3,16}$")


class ScenarioError(ValueError):
    """A scenario file that cannot be run; the message names the file and the field."""


@dataclass(frozen=True)
class Caller:
    #: The caller's number (``From``); ``None``: each call comes from a new number, so the line's
    #: call records never know the caller (a named number is a returning caller from its second
    #: call on: the line may greet them as one).
    number: str | None = None
    voice: str = "en-us"
    rate: int = 170
    parameters: dict[str, str] = field(default_factory=dict)
    #: A returning caller: a short call from the same number comes first, and the scenario's
    #: call waits until the line's call records know it.
    called_before: bool = False


@dataclass(frozen=True)
class Expect:
    """What must hold of the line hotline says next (a step's window: from the end of the
    caller's action until the next step begins).

    Attributes:
        intent: the script intent whose line must be said (its ``say``; ``repeat``: the line
            before; ``goodbye``: the script's goodbye line).
        line: a named line of the script: ``greeting``, ``returning_greeting`` (said instead
            of the greeting to a caller the call records know), ``goodbye``, ``fallback``,
            ``invalid_digit``, ``brain_error`` or ``menu.<digit>``.
        words: words (or phrases) the line must contain.
        pattern: a regular expression the line must match (case-insensitive, searched).
        not_words: words the line must not contain.
        latency_ms: end of the caller's speech (or key press) -> first reply audio, at most.
        one_turn: the server heard exactly one caller turn in this step (no cut-off, no split).
        turn_words: words the server must have heard the caller say in this step (its
            transcript of the caller's turns): the caller was understood, not cut short.
        no_turn: the server heard no caller turn in this step (a cough, line noise).
        no_reply: hotline said nothing in this step.
        barge_in_ms: the line was cleared within this many ms of the caller starting to talk.
        handoff: the caller was handed to a person (the handoff line, then the server ended).
        judge: a rubric for the optional LLM judge, about this step (never the only check).
    """

    intent: str | None = None
    line: str | None = None
    words: tuple[str, ...] = ()
    pattern: str | None = None
    not_words: tuple[str, ...] = ()
    latency_ms: float | None = None
    one_turn: bool = False
    turn_words: tuple[str, ...] = ()
    no_turn: bool = False
    no_reply: bool = False
    barge_in_ms: float | None = None
    handoff: bool = False
    judge: str | None = None

    def checks_line(self) -> bool:
        """Whether anything is expected of what hotline says (the ear has to listen)."""
        return bool(self.intent or self.line or self.words or self.pattern or self.not_words)

    def empty(self) -> bool:
        """Nothing but (perhaps) a judge rubric."""
        return not (
            self.checks_line()
            or self.latency_ms is not None
            or self.one_turn
            or self.turn_words
            or self.no_turn
            or self.no_reply
            or self.barge_in_ms is not None
            or self.handoff
        )


@dataclass(frozen=True)
class RecordExpect:
    """What the call's record must hold (``GET /history/{CallSid}``, read once the line wrote
    it). All optional, all must hold.

    Attributes:
        outcome: the record's outcome begins with this (``goodbye played``, ``twilio stop``,
            ``call ended by the brain`` ...), case ignored.
        ended_by: who ended the call: ``caller``, ``hotline``, ``admin``, ``replica``, ``error``.
        caller_turns: how many caller turns the record holds.
        topics: what the lines said answered (each hotline turn's ``topic``: an intent's name,
            or ``menu <key>``): each must be among them.
        summary_words: words (or phrases) the record's summary must contain.
    """

    outcome: str | None = None
    ended_by: str | None = None
    caller_turns: int | None = None
    topics: tuple[str, ...] = ()
    summary_words: tuple[str, ...] = ()


@dataclass(frozen=True)
class Step:
    """One thing the caller does. ``value`` is the action's argument (text parts, a path, keys,
    ms, seconds; True for listen / hangup)."""

    action: str
    value: Any
    expect: Expect = Expect()
    over_line_after: float | None = None
    gap_ms: int = 400  # between the parts of a `say`
    reply_timeout: float = 10.0  # no reply this long after the action: go on
    noise_dbfs: float = -30.0

    def describe(self) -> str:
        v = self.value
        if self.action == "say":
            return "say " + repr(" ... ".join(v))
        if self.action in ("cough", "noise"):
            return f"{self.action} {v} ms"
        if self.action == "silent":
            return f"silent {v:g} s"
        if self.action in ("listen", "hangup"):
            return self.action
        return f"{self.action} {v}"


@dataclass(frozen=True)
class Scenario:
    name: str
    path: Path | None
    caller: Caller
    steps: tuple[Step, ...]
    max_seconds: float = 120.0
    outcome: str | None = None
    judge: str | None = None
    script: Path | None = None  # the call script the line runs (None: the built-in one)
    record: RecordExpect | None = None  # what the call's record must hold

    def uses_judge(self) -> bool:
        return self.judge is not None or any(s.expect.judge for s in self.steps)

    def uses_records(self) -> bool:
        """Whether the line's call records are needed (a returning caller, a record check)."""
        return self.caller.called_before or self.record is not None


class _Fields:
    """Reads one table, naming the file and the field in every error; unknown keys are errors."""

    def __init__(self, table: Any, where: str, source: str) -> None:
        if not isinstance(table, dict):
            raise ScenarioError(f"{source}: {where} must be a table")
        self.t = dict(table)
        self.where = where
        self.source = source

    def fail(self, key: str, problem: str) -> ScenarioError:
        return ScenarioError(f"{self.source}: {self.where}.{key}: {problem}")

    def pop(self, key: str, kind: type | tuple[type, ...], default: Any = None) -> Any:
        if key not in self.t:
            return default
        value = self.t.pop(key)
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if not isinstance(value, kind) or (isinstance(value, bool) and kind in (int, float)):
            raise self.fail(key, f"expected {_kind(kind)}, got {type(value).__name__}")
        return value

    def number(self, key: str, low: float, high: float, default: Any = None) -> Any:
        value = self.pop(key, float, default)
        if value is not None and not low <= value <= high:
            raise self.fail(key, f"must be within {low:g}..{high:g}, got {value:g}")
        return value

    def words(self, key: str) -> tuple[str, ...]:
        value = self.pop(key, (str, list), [])
        items = [value] if isinstance(value, str) else value
        if not all(isinstance(w, str) and w.strip() for w in items):
            raise self.fail(key, "expected non-empty strings")
        return tuple(w.strip() for w in items)

    def done(self) -> None:
        if self.t:
            names = ", ".join(sorted(self.t))
            raise ScenarioError(f"{self.source}: {self.where}: unknown field(s) {names}")


def _kind(kind: type | tuple[type, ...]) -> str:
    kinds = kind if isinstance(kind, tuple) else (kind,)
    names = {str: "a string", int: "an integer", float: "a number", bool: "true or false"}
    return " or ".join(names.get(k, k.__name__) for k in kinds)


def _expect(raw: Any, where: str, source: str) -> Expect:
    f = _Fields(raw if raw is not None else {}, where, source)
    pattern = f.pop("pattern", str)
    if pattern is not None:
        try:
            re.compile(pattern)
        except re.error as exc:
            raise f.fail("pattern", f"not a regular expression: {exc}") from None
    line = f.pop("line", str)
    if line is not None and not re.fullmatch(
        r"greeting|returning_greeting|goodbye|fallback|invalid_digit|brain_error|menu\.[0-9*#]",
        line,
    ):
        raise f.fail(
            "line",
            "expected greeting, returning_greeting, goodbye, fallback, invalid_digit, "
            "brain_error or menu.<key>",
        )
    judge = f.pop("judge", str)
    e = Expect(
        intent=f.pop("intent", str),
        line=line,
        words=f.words("words"),
        pattern=pattern,
        not_words=f.words("not_words"),
        latency_ms=f.number("latency_ms", 1, 600_000),
        one_turn=f.pop("one_turn", bool, False),
        turn_words=f.words("turn_words"),
        no_turn=f.pop("no_turn", bool, False),
        no_reply=f.pop("no_reply", bool, False),
        barge_in_ms=f.number("barge_in_ms", 1, 60_000),
        handoff=f.pop("handoff", bool, False),
        judge=judge.strip() if judge else None,
    )
    f.done()
    if e.one_turn and e.no_turn:
        raise ScenarioError(f"{source}: {where}: one_turn and no_turn contradict each other")
    if e.no_reply and (e.checks_line() or e.latency_ms is not None):
        raise ScenarioError(f"{source}: {where}: no_reply contradicts expecting a line")
    return e


def _record(raw: Any, source: str) -> RecordExpect:
    f = _Fields(raw, "expect.record", source)
    outcome = f.pop("outcome", str)
    if outcome is not None and not outcome.strip():
        raise f.fail("outcome", "expected a non-empty string")
    ended_by = f.pop("ended_by", str)
    if ended_by is not None and ended_by not in ENDED_BY:
        raise f.fail("ended_by", f"expected one of {', '.join(ENDED_BY)}, got {ended_by!r}")
    turns = f.pop("caller_turns", int)
    if turns is not None and not 0 <= turns <= 10_000:
        raise f.fail("caller_turns", f"must be within 0..10000, got {turns}")
    r = RecordExpect(
        outcome=outcome.strip() if outcome else None,
        ended_by=ended_by,
        caller_turns=turns,
        topics=f.words("topics"),
        summary_words=f.words("summary_words"),
    )
    f.done()
    if r == RecordExpect():
        raise ScenarioError(
            f"{source}: expect.record: expects nothing (outcome, ended_by, "
            "caller_turns, topics or summary_words)"
        )
    return r


def _step(raw: Any, i: int, source: str, base: Path | None) -> Step:
    where = f"step[{i}]"
    f = _Fields(raw, where, source)
    present = [a for a in ACTIONS if a in f.t]
    if len(present) != 1:
        raise ScenarioError(
            f"{source}: {where}: needs exactly one of {', '.join(ACTIONS)}"
            + (f" (has {', '.join(present)})" if present else "")
        )
    action = present[0]
    value: Any
    if action == "say":
        said = f.pop("say", (str, list))
        parts = [said] if isinstance(said, str) else said
        if not parts or not all(isinstance(p, str) and p.strip() for p in parts):
            raise f.fail("say", "expected text, or a list of non-empty texts")
        value = tuple(p.strip() for p in parts)
    elif action == "wav":
        path = Path(f.pop("wav", str))
        if not path.is_absolute() and base is not None:
            path = base / path
        value = path
    elif action == "press":
        keys = f.pop("press", str)
        if not _DTMF.match(keys):
            raise f.fail("press", f"expected DTMF keys 0-9 * #, got {keys!r}")
        value = keys
    elif action in ("cough", "noise"):
        value = int(f.number(action, 20, 60_000))
    elif action == "silent":
        value = f.number("silent", 0.02, 600)
    else:
        if f.pop(action, bool) is not True:
            raise f.fail(action, "expected true")
        value = True
    step = Step(
        action=action,
        value=value,
        expect=_expect(f.t.pop("expect", None), f"{where}.expect", source),
        over_line_after=f.number("over_line_after", 0, 600),
        gap_ms=int(f.number("gap_ms", 0, 10_000, 400.0)),
        reply_timeout=f.number("reply_timeout", 0.1, 600, 10.0),
        noise_dbfs=f.number("noise_dbfs", -90, 0, -30.0),
    )
    f.done()
    if action == "hangup" and not step.expect.empty():
        raise ScenarioError(f"{source}: {where}: a hangup step cannot expect anything")
    if step.expect.barge_in_ms is not None and step.over_line_after is None:
        raise ScenarioError(f"{source}: {where}: barge_in_ms needs over_line_after")
    return step


def parse_scenario(text: str, *, source: str = "scenario", path: Path | None = None) -> Scenario:
    """A :class:`Scenario` from TOML text.

    Raises:
        ScenarioError: not TOML, or a field missing, unknown, or of the wrong type or range.
    """
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ScenarioError(f"{source}: not TOML: {exc}") from None
    base = path.parent if path is not None else None
    top = _Fields(raw, "scenario", source)
    name = top.pop("name", str) or (path.stem if path is not None else "scenario")
    caller_f = _Fields(top.t.pop("caller", {}), "caller", source)
    number = caller_f.pop("number", str, None)
    if number is not None and not _NUMBER.match(number):
        raise caller_f.fail("number", f"expected a phone number like +15555550123, got {number!r}")
    params = caller_f.pop("parameters", dict, {})
    if not all(isinstance(k, str) and isinstance(v, str) for k, v in params.items()):
        raise caller_f.fail("parameters", "expected a table of strings")
    caller = Caller(
        number=number,
        voice=caller_f.pop("voice", str, "en-us"),
        rate=int(caller_f.number("rate", 80, 450, 170.0)),
        parameters=dict(params),
        called_before=caller_f.pop("called_before", bool, False),
    )
    caller_f.done()
    raw_steps = top.pop("step", list, [])
    if not raw_steps:
        raise ScenarioError(f"{source}: no [[step]]: a scenario needs at least one")
    steps = tuple(_step(s, i, source, base) for i, s in enumerate(raw_steps))
    exp = _Fields(top.t.pop("expect", {}), "expect", source)
    outcome = exp.pop("outcome", str)
    if outcome is not None and outcome not in OUTCOMES:
        raise exp.fail("outcome", f"expected one of {', '.join(OUTCOMES)}, got {outcome!r}")
    judge = exp.pop("judge", str)
    record = _record(exp.t.pop("record"), source) if "record" in exp.t else None
    exp.done()
    script = top.pop("script", str)
    script_path = None
    if script is not None:
        script_path = Path(script)
        if not script_path.is_absolute() and base is not None:
            script_path = base / script_path
    scenario = Scenario(
        name=name,
        path=path,
        caller=caller,
        steps=steps,
        max_seconds=top.number("max_seconds", 1, 3600, 120.0),
        outcome=outcome,
        judge=judge.strip() if judge else None,
        script=script_path,
        record=record,
    )
    top.done()
    for i, s in enumerate(steps):
        if s.expect.judge and s.expect.empty():
            raise ScenarioError(
                f"{source}: step[{i}].expect: a judge rubric is never the only check of a step"
            )
    if (
        scenario.uses_judge()
        and outcome is None
        and record is None
        and all(s.expect.empty() for s in steps)
    ):
        raise ScenarioError(
            f"{source}: an LLM judge is never the only check: expect something else too"
        )
    return scenario


def load_scenario(path: str | Path) -> Scenario:
    """Read and parse a scenario file.

    Raises:
        ScenarioError: unreadable, or see :func:`parse_scenario`.
    """
    p = Path(path)
    try:
        text = p.read_text("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ScenarioError(f"{p}: cannot read: {exc}") from None
    return parse_scenario(text, source=str(p), path=p)
