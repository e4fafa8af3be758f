"""Judging a scenario's call: each expectation against what the caller heard (the caller's ear)
and against the server's own transcript (admin API), with a message that says what the caller
got instead. Pure: no I/O (the LLM judge is :mod:`hotline.sim.scenario.judge`).
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass, field
from typing import Any

from hotline.core.script import CallScript, IntentAction, normalise
from hotline.sim.scenario.model import Expect, RecordExpect, Scenario

__all__ = [
    "Check",
    "StepView",
    "best_line",
    "check_call",
    "check_record",
    "check_step",
    "heard_score",
]

#: A heard word counts as an expected one at this similarity (Whisper writes "Galloway").
FUZZY = 0.75
#: Share of the expected line's content words the caller must have heard (the Whisper ear's).
HEARD_MIN = 0.5
#: Reply audio below this much speech is "nothing said".
SILENT_SPEECH_MS = 300.0

_STOP = frozenset(
    "a an and are at be but by can for from i in is it its it's of on or so that the this to "
    "was we you your you'll you've and every just".split()
)


@dataclass
class Check:
    """One judged expectation. ``ok`` None: not judged (the detail says why)."""

    step: int | None  # None: the whole call
    what: str
    ok: bool | None
    detail: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {"step": self.step, "what": self.what, "ok": self.ok, "detail": self.detail}


@dataclass
class StepView:
    """What one step's window held: what the caller heard and what the server recorded."""

    index: int
    expect: Expect
    heard: str | None  # the caller's ear on the reply audio (None: not transcribed)
    reply_speech_ms: float
    server_lines: list[str] | None  # hotline entries in the window (None: no transcript)
    server_turns: list[str] | None  # caller entries in the window
    previous_line: str | None  # the last hotline line before this window (server transcript)
    latency_ms: float | None
    barge_clear_ms: float | None  # first clear after the caller began talking over the line
    ended_call: bool  # the server hung up during this step's window
    notes: list[str] = field(default_factory=list)


def _tokens(text: str) -> list[str]:
    return normalise(text).split()


def _content(text: str) -> list[str]:
    return list(dict.fromkeys(t for t in _tokens(text) if t not in _STOP and len(t) > 1))


def _near(word: str, heard: list[str]) -> bool:
    if word in heard:
        return True
    return any(difflib.SequenceMatcher(None, word, h).ratio() >= FUZZY for h in heard)


def heard_score(line: str, heard: str) -> float:
    """Share of ``line``'s content words found (fuzzily) in ``heard``."""
    want = _content(line)
    if not want:
        return 0.0
    got = _tokens(heard)
    return sum(_near(w, got) for w in want) / len(want)


def _has_phrase(phrase: str, text: str, *, fuzzy: bool) -> bool:
    want = _tokens(phrase)
    got = _tokens(text)
    if not want:
        return True
    if fuzzy:
        return all(_near(w, got) for w in want)
    n = len(want)
    return any(got[i : i + n] == want for i in range(len(got) - n + 1))


def script_lines(script: CallScript) -> dict[str, str]:
    """Every line a script can say, by name (``intent.<name>``, ``menu.<key>``, ...)."""
    lines = {
        "greeting": script.greeting,
        "goodbye": script.goodbye,
        "fallback": script.fallback,
        "invalid_digit": script.invalid_digit,
        "brain_error": script.brain_error,
    }
    if script.returning_greeting is not None:
        lines["returning_greeting"] = script.returning_greeting
    for key, entry in script.menu.items():
        lines[f"menu.{key}"] = entry.say
    for intent in script.intents:
        if intent.say:
            lines[f"intent.{intent.name}"] = intent.say
    return lines


def best_line(heard: str, lines: dict[str, str]) -> tuple[str, float] | None:
    """The script line ``heard`` is closest to, and its score (None: nothing scored)."""
    scored = [(heard_score(text, heard), name) for name, text in lines.items()]
    scored = [s for s in scored if s[0] > 0]
    if not scored:
        return None
    score, name = max(scored)
    return name, score


def _expected_line(
    e: Expect, script: CallScript | None, previous: str | None
) -> tuple[str, str | None] | None:
    """(what is expected, its text) for an intent/line expectation (text None: unknowable)."""
    if e.line is not None:
        if script is None:
            return e.line, None
        lines = script_lines(script)
        if e.line not in lines:
            return e.line, None
        return e.line, lines[e.line]
    if e.intent is None:
        return None
    if script is None:
        return f"intent {e.intent}", None
    intent = next((i for i in script.intents if i.name == e.intent), None)
    if intent is None:
        return f"intent {e.intent}", None
    if intent.action is IntentAction.REPEAT:
        return f"intent {e.intent} (the line before)", previous
    if intent.action is IntentAction.GOODBYE:
        return f"intent {e.intent}", script.goodbye
    return f"intent {e.intent}", intent.say


def _quote(text: str, n: int = 90) -> str:
    text = " ".join(text.split())
    return repr(text if len(text) <= n else text[: n - 3] + "...")


def check_step(v: StepView, script: CallScript | None, heard_min: float = HEARD_MIN) -> list[Check]:
    """Every expectation of one step; a line counts as heard with ``heard_min`` of its words
    (and no other line of the script closer)."""
    e = v.expect
    out: list[Check] = []
    said = " ".join(v.server_lines) if v.server_lines is not None else None
    heard_desc = (
        "nothing"
        if not v.heard
        else _quote(v.heard)
        if v.heard is not None
        else "(not transcribed)"
    )
    said_desc = "nothing" if not said else _quote(said)

    def add(what: str, ok: bool | None, detail: str) -> None:
        out.append(Check(v.index, what, ok, detail))

    want = _expected_line(e, script, v.previous_line)
    if want is not None:
        label, text = want
        if text is None:
            add(label, None, "not judged: the call script does not say that line")
        else:
            # what the caller heard: the closest line of the script must be this one
            if v.heard is None:
                add(f"{label} (heard)", None, "not judged: the caller's ear did not run")
            else:
                score = heard_score(text, v.heard)
                lines = script_lines(script) if script is not None else {}
                best = best_line(v.heard, lines)
                best_score = best[1] if best else 0.0
                ok = score >= heard_min and score >= best_score - 1e-9
                detail = f"heard {score:.0%} of its words"
                if not ok:
                    closest = f"; closest line: {best[0]} ({best[1]:.0%})" if best else ""
                    detail = f"the caller heard {heard_desc}{closest}; {detail}"
                add(f"{label} (heard)", ok, detail)
            if said is None:
                add(f"{label} (server)", None, "not judged: no server transcript")
            else:
                first = v.server_lines[0] if v.server_lines else ""
                ok = normalise(first) == normalise(text)
                add(
                    f"{label} (server)",
                    ok,
                    "said it" if ok else f"hotline said {said_desc}, expected {_quote(text)}",
                )
    for w in e.words:
        if v.heard is not None:
            ok = _has_phrase(w, v.heard, fuzzy=True)
            add(f"words {w!r} (heard)", ok, "heard" if ok else f"the caller heard {heard_desc}")
        if said is not None:
            ok = _has_phrase(w, said, fuzzy=False)
            add(f"words {w!r} (server)", ok, "said" if ok else f"hotline said {said_desc}")
    for w in e.not_words:
        if v.heard is not None:
            ok = not _has_phrase(w, v.heard, fuzzy=False)
            add(f"not {w!r} (heard)", ok, "absent" if ok else f"the caller heard {heard_desc}")
        if said is not None:
            ok = not _has_phrase(w, said, fuzzy=False)
            add(f"not {w!r} (server)", ok, "absent" if ok else f"hotline said {said_desc}")
    if e.pattern is not None:
        target, where = (said, "server") if said is not None else (v.heard, "heard")
        if target is None:
            add(f"pattern /{e.pattern}/", None, "not judged: no transcript")
        else:
            ok = re.search(e.pattern, target, re.IGNORECASE) is not None
            got = said_desc if where == "server" else heard_desc
            add(f"pattern /{e.pattern}/ ({where})", ok, "matched" if ok else f"got {got}")
    if e.latency_ms is not None:
        if v.latency_ms is None:
            add(f"latency <= {e.latency_ms:.0f} ms", False, "no reply audio came")
        else:
            ok = v.latency_ms <= e.latency_ms
            add(f"latency <= {e.latency_ms:.0f} ms", ok, f"{v.latency_ms:.0f} ms")
    if e.one_turn or e.no_turn:
        what = "one turn" if e.one_turn else "no turn"
        if v.server_turns is None:
            add(what, None, "not judged: no server transcript")
        else:
            n = len(v.server_turns)
            ok = n == (1 if e.one_turn else 0)
            heard_as = "; ".join(_quote(t, 50) for t in v.server_turns) or "nothing"
            add(what, ok, f"the server heard {n} turn(s): {heard_as}")
    if e.turn_words:
        if v.server_turns is None:
            add("turn words", None, "not judged: no server transcript")
        else:
            turns = " ".join(v.server_turns)
            for w in e.turn_words:
                ok = _has_phrase(w, turns, fuzzy=False)
                add(
                    f"turn words {w!r}",
                    ok,
                    "heard" if ok else f"the server heard {_quote(turns) if turns else 'nothing'}",
                )
    if e.no_reply:
        ok_audio = v.reply_speech_ms < SILENT_SPEECH_MS
        add(
            "no reply (heard)",
            ok_audio,
            f"{v.reply_speech_ms:.0f} ms of speech" + ("" if ok_audio else f": {heard_desc}"),
        )
        if v.server_lines is not None:
            add("no reply (server)", not v.server_lines, f"hotline said {said_desc}")
    if e.barge_in_ms is not None:
        if v.barge_clear_ms is None:
            add(f"barge-in cleared <= {e.barge_in_ms:.0f} ms", False, "the line was never cleared")
        else:
            ok = v.barge_clear_ms <= e.barge_in_ms
            add(f"barge-in cleared <= {e.barge_in_ms:.0f} ms", ok, f"{v.barge_clear_ms:.0f} ms")
    if e.handoff:
        ok = v.ended_call
        detail = "the server ended the call" if ok else "the call went on"
        if ok and script is not None and v.server_lines is not None:
            handoffs = [
                i.say or ""
                for i in script.intents
                if i.action is IntentAction.HANDOFF and i.say is not None
            ]
            last = v.server_lines[-1] if v.server_lines else ""
            ok = any(normalise(last) == normalise(h) for h in handoffs)
            detail = (
                "the handoff line, then the server ended the call"
                if ok
                else f"the server ended the call after {said_desc}, not a handoff line"
            )
        add("handoff", ok, detail)
    for note in v.notes:
        add("step ran", False, note)
    return out


def check_call(
    scenario: Scenario, ended_by: str, handed_off: bool, errors: list[str]
) -> list[Check]:
    """The call as a whole: it ran without protocol errors; its outcome."""
    out = [
        Check(
            None,
            "call ran",
            not errors,
            "; ".join(errors[:3]) if errors else f"ended by {ended_by}",
        )
    ]
    if scenario.outcome is not None:
        got = {"server_hangup": "server_hangup", "caller_stop": "caller_hangup"}.get(
            ended_by, ended_by
        )
        if got == "server_hangup" and handed_off:
            got = "handoff"
        out.append(Check(None, f"outcome {scenario.outcome}", got == scenario.outcome, got))
    return out


def check_record(
    want: RecordExpect, record: dict[str, Any] | None, problem: str = ""
) -> list[Check]:
    """What the call's record holds (``GET /history/{CallSid}``, :meth:`CallRecord.as_dict`)
    against ``[expect] record``; ``record`` None: there is none (``problem`` says why), and
    every expectation fails with that."""
    out: list[Check] = []
    names = []
    if want.outcome is not None:
        names.append(f"record outcome {want.outcome!r}")
    if want.ended_by is not None:
        names.append(f"record ended_by {want.ended_by}")
    if want.caller_turns is not None:
        names.append(f"record caller_turns {want.caller_turns}")
    names += [f"record topic {t!r}" for t in want.topics]
    names += [f"record summary {w!r}" for w in want.summary_words]
    if record is None:
        return [Check(None, n, False, problem or "no record of the call") for n in names]

    def add(what: str, ok: bool, detail: str) -> None:
        out.append(Check(None, what, ok, detail))

    outcome = str(record.get("outcome") or "")
    ended_by = str(record.get("ended_by") or "")
    if want.outcome is not None:
        ok = outcome.lower().startswith(want.outcome.lower())
        add(f"record outcome {want.outcome!r}", ok, f"the record says {outcome!r}")
    if want.ended_by is not None:
        ok = ended_by == want.ended_by
        add(
            f"record ended_by {want.ended_by}",
            ok,
            f"the record says ended by {ended_by or 'nobody'} ({outcome})",
        )
    turns = [t for t in record.get("turns") or [] if isinstance(t, dict)]
    if want.caller_turns is not None:
        said = [str(t.get("text", "")) for t in turns if t.get("speaker") == "caller"]
        ok = len(said) == want.caller_turns
        quoted = "; ".join(_quote(t, 50) for t in said) or "nothing"
        add(
            f"record caller_turns {want.caller_turns}",
            ok,
            f"the record holds {len(said)} caller turn(s): {quoted}",
        )
    topics = list(dict.fromkeys(str(t["topic"]) for t in turns if t.get("topic")))
    for topic in want.topics:
        ok = topic in topics
        add(
            f"record topic {topic!r}",
            ok,
            "answered" if ok else f"the record's lines answered {', '.join(topics) or 'nothing'}",
        )
    summary = record.get("summary")
    for w in want.summary_words:
        if not summary:
            add(f"record summary {w!r}", False, "the record has no summary")
            continue
        ok = _has_phrase(w, str(summary), fuzzy=False)
        add(
            f"record summary {w!r}",
            ok,
            "named" if ok else f"the summary says {_quote(str(summary), 160)}",
        )
    return out
