"""Each expectation judged on what a step's window held: it passes on what a correct line
gives, and fails, saying what the caller got instead, on what a misbehaving line gives."""

from __future__ import annotations

from typing import Any

from hotline.core.script import default_script
from hotline.sim.scenario.checks import Check, StepView, best_line, check_call, check_step
from hotline.sim.scenario.checks import script_lines as lines_of
from hotline.sim.scenario.model import Expect, parse_scenario

SCRIPT = default_script()
LINES = lines_of(SCRIPT)
TOUR = LINES["intent.tour"]
MERCH = LINES["intent.merch"]
#: What the Whisper ear made of the tour line spoken by the local voice (a real take).
TOUR_HEARD = (
    "Random on the road this spring, Portland on April 12, Seattle on the 14th, and Vancouver "
    "on the 16th, tickets are at Rencalway.com and every show in all ages."
)


def view(expect: Expect, **kw: Any) -> StepView:
    base: dict[str, Any] = {
        "index": 1,
        "expect": expect,
        "heard": TOUR_HEARD,
        "reply_speech_ms": 6000.0,
        "server_lines": [TOUR],
        "server_turns": ["what are the tour dates"],
        "previous_line": SCRIPT.greeting,
        "latency_ms": 900.0,
        "barge_clear_ms": None,
        "ended_call": False,
    }
    base.update(kw)
    return StepView(**base)


def failed(checks: list[Check]) -> list[Check]:
    return [c for c in checks if c.ok is False]


def test_a_correct_reply_passes_every_check() -> None:
    e = Expect(intent="tour", words=("Portland", "Seattle"), pattern=r"April \d+", latency_ms=2000,
               one_turn=True)  # fmt: skip
    checks = check_step(view(e), SCRIPT)
    assert not failed(checks), checks
    assert {c.what for c in checks} >= {"intent tour (heard)", "intent tour (server)", "one turn"}


def test_another_intents_line_fails_saying_what_was_heard_and_said() -> None:
    merch_heard = (
        "Merch is at Rencalway.com slash shop, shirts, tote bags and the new record on vinyl."
    )
    checks = check_step(
        view(Expect(intent="tour"), heard=merch_heard, server_lines=[MERCH]), SCRIPT
    )
    bad = {c.what: c.detail for c in failed(checks)}
    assert (
        "intent tour (heard)" in bad and "closest line: intent.merch" in bad["intent tour (heard)"]
    )
    assert "Merch is at" in bad["intent tour (server)"]


def test_a_changed_line_fails_on_what_the_caller_heard_alone() -> None:
    """No admin token: only the ear judges, and it still catches the changed line."""
    changed = "Wren is taking a break this year, there are no shows planned."
    checks = check_step(view(Expect(intent="tour"), heard=changed, server_lines=None), SCRIPT)
    assert [c.what for c in failed(checks)] == ["intent tour (heard)"]
    assert any(c.ok is None and "no server transcript" in c.detail for c in checks)


def test_missing_words_and_an_unmatched_pattern_fail() -> None:
    checks = check_step(view(Expect(words=("Chicago",), pattern="May \\d+")), SCRIPT)
    assert {c.what for c in failed(checks)} == {
        "words 'Chicago' (heard)", "words 'Chicago' (server)", "pattern /May \\d+/ (server)"
    }  # fmt: skip


def test_fuzzy_on_the_ear_exact_on_the_server() -> None:
    e = Expect(words=("Calloway",))
    assert not failed(check_step(view(e, heard="the Wren Galloway hotline", server_lines=["Wren Calloway"]), SCRIPT))  # fmt: skip


def test_a_slow_reply_fails_its_budget_and_no_reply_fails_too() -> None:
    slow = failed(check_step(view(Expect(latency_ms=2000), latency_ms=3400.0), SCRIPT))
    assert [(c.what, c.detail) for c in slow] == [("latency <= 2000 ms", "3400 ms")]
    none = failed(check_step(view(Expect(latency_ms=2000), latency_ms=None), SCRIPT))
    assert none[0].detail == "no reply audio came"


def test_a_caller_cut_off_into_two_turns_fails_one_turn() -> None:
    bad = failed(check_step(view(Expect(one_turn=True), server_turns=["tell me about", "the new album"]), SCRIPT))  # fmt: skip
    assert (
        bad[0].what == "one turn"
        and "2 turn(s)" in bad[0].detail
        and "the new album" in bad[0].detail
    )


def test_a_cough_heard_as_a_turn_fails_no_turn() -> None:
    bad = failed(check_step(view(Expect(no_turn=True), server_turns=["hang up"]), SCRIPT))
    assert bad[0].what == "no turn" and "hang up" in bad[0].detail


def test_no_reply() -> None:
    e = Expect(no_reply=True)
    assert not failed(check_step(view(e, heard="", reply_speech_ms=0.0, server_lines=[]), SCRIPT))
    bad = failed(check_step(view(e), SCRIPT))
    assert {c.what for c in bad} == {"no reply (heard)", "no reply (server)"}


def test_barge_in_bound() -> None:
    assert not failed(check_step(view(Expect(barge_in_ms=800), barge_clear_ms=420.0), SCRIPT))
    late = failed(check_step(view(Expect(barge_in_ms=800), barge_clear_ms=1300.0), SCRIPT))
    assert late[0].detail == "1300 ms"
    never = failed(check_step(view(Expect(barge_in_ms=800), barge_clear_ms=None), SCRIPT))
    assert never[0].detail == "the line was never cleared"


def test_handoff_needs_the_handoff_line_and_the_server_ending_the_call() -> None:
    person = LINES["intent.person"]
    e = Expect(handoff=True)
    assert not failed(check_step(view(e, server_lines=[person], ended_call=True), SCRIPT))
    assert failed(check_step(view(e, server_lines=[person], ended_call=False), SCRIPT))
    goodbye = failed(check_step(view(e, server_lines=[SCRIPT.goodbye], ended_call=True), SCRIPT))
    assert "not a handoff line" in goodbye[0].detail


def test_repeat_expects_the_line_before() -> None:
    e = Expect(intent="repeat")
    ok = view(e, server_lines=[TOUR], previous_line=TOUR)
    assert not failed(check_step(ok, SCRIPT))
    assert failed(check_step(view(e, server_lines=[MERCH], previous_line=TOUR), SCRIPT))


def test_an_intent_the_script_lacks_is_not_judged_rather_than_passed_silently() -> None:
    checks = check_step(view(Expect(intent="weather")), SCRIPT)
    assert [(c.ok, c.detail) for c in checks] == [
        (None, "not judged: the call script does not say that line")
    ]


def test_best_line_finds_the_line_heard() -> None:
    assert best_line(TOUR_HEARD, LINES) is not None
    name, _ = best_line(TOUR_HEARD, LINES) or ("", 0)
    assert name in ("intent.tour", "menu.1")  # the same words


def test_outcome() -> None:
    sc = parse_scenario("[[step]]\nlisten = true\n[expect]\noutcome = 'handoff'")
    assert all(c.ok for c in check_call(sc, "server_hangup", True, []))
    bad = failed(check_call(sc, "server_hangup", False, []))
    assert bad[0].detail == "server_hangup"
    assert failed(check_call(sc, "caller_stop", False, []))[0].detail == "caller_hangup"
    err = failed(check_call(sc, "error", False, ["webhook POST answered HTTP 403"]))
    assert err[0].what == "call ran" and "403" in err[0].detail


def test_server_entries_are_placed_on_the_callers_clock() -> None:
    """The server's clock started 800 ms after the caller's: by its own times the menu line
    (said 30 ms after the key at 20.0 s) would fall before the key; moved by the greeting's
    first audio (1.05 s, the voice taking 250 ms of it) it falls after."""
    from hotline.sim.scenario.runner import _Clock

    entries = [
        {"speaker": "hotline", "text": "greeting", "at": 0.0, "utterance_id": 1},
        {"speaker": "hotline", "text": "menu one", "at": 19.23, "utterance_id": 2},
        {"speaker": "caller", "text": "what are the tour dates", "at": 30.0},
        {"speaker": "hotline", "text": "tour line", "at": 30.5, "utterance_id": 3},
    ]
    clock = _Clock(entries, 1050.0)
    assert clock.offset == 1050.0
    assert clock.texts("hotline", 20_000.0, 29_000.0) == ["menu one"]
    assert clock.texts("caller", 29_000.0, 40_000.0) == ["what are the tour dates"]
    assert clock.previous(29_000.0) == "menu one"
    assert _Clock(entries, None).texts("hotline", 20_000.0, 29_000.0) == []  # server times


def test_turn_words_say_what_the_server_heard_instead() -> None:
    e = Expect(turn_words=("tell me about", "new album"))
    ok = view(e, server_turns=["tell me about the new album"])
    assert not failed(check_step(ok, SCRIPT))
    bad = failed(check_step(view(e, server_turns=["bye album"]), SCRIPT))
    assert [(c.what, c.detail) for c in bad] == [
        ("turn words 'tell me about'", "the server heard 'bye album'"),
        ("turn words 'new album'", "the server heard 'bye album'"),
    ]


#: The returning greeting as an ear might write it down (names misheard, digits as digits).
RETURNING_HEARD = (
    "Hey, welcome back to the Ren Calloway hotline! Good to hear from you again. Press 1 for tour "
    "dates, 2 for the new record, 3 to leave Wren a message, or 4 for the mailing list. Press 9 "
    "to hear this again, or 0 to end the call."
)
GREETING_HEARD = (
    "Hey, you've reached the Ren Calloway hotline, thanks for calling! Press 1 for tour dates, 2 "
    "for the new record, 3 to leave Wren a message, or 4 for the mailing list. Press 9 to hear "
    "this again, or 0 to end the call."
)


def test_the_returning_greeting_is_told_apart_from_the_greeting() -> None:
    assert SCRIPT.returning_greeting and "returning_greeting" in LINES
    back = Expect(line="returning_greeting")
    first = Expect(line="greeting")
    returning = {"heard": RETURNING_HEARD, "server_lines": [SCRIPT.returning_greeting]}
    new = {"heard": GREETING_HEARD, "server_lines": [SCRIPT.greeting]}
    assert not failed(check_step(view(back, **returning), SCRIPT))
    assert not failed(check_step(view(first, **new), SCRIPT))
    # a caller the line did not know again: what they heard instead, by the ear and the server
    bad = {c.what: c.detail for c in failed(check_step(view(back, **new), SCRIPT))}
    assert bad["returning_greeting (heard)"].startswith("the caller heard \"Hey, you've reached")
    assert "you've reached" in bad["returning_greeting (server)"]
    # and a new caller greeted as a returning one
    bad = {c.what: c.detail for c in failed(check_step(view(first, **returning), SCRIPT))}
    assert bad["greeting (heard)"].startswith("the caller heard 'Hey, welcome back")
    assert "welcome back" in bad["greeting (server)"]


def a_record(**kw: Any) -> dict[str, Any]:
    """A record as ``GET /history/{CallSid}`` hands it over: the records' own model, the turns
    as the server files them (a topic on each line of the script), the plain summary."""
    from hotline.records.model import CallRecord
    from hotline.records.summary import plain_summary

    fields: dict[str, Any] = {
        "call_sid": "CA" + "0" * 32,
        "started_ms": 1_796_400_000_000,
        "ended_ms": 1_796_400_021_500,
        "outcome": "twilio stop",
        "ended_by": "caller",
        "brain": "script",
        "caller_masked": "+1555***0123",
        "caller_key": "k" * 16,
        "turns": [
            {"speaker": "hotline", "text": SCRIPT.returning_greeting, "at": 0.0, "utterance_id": 1},
            {"speaker": "caller", "text": "what are the tour dates", "at": 13.2},
            {"speaker": "hotline", "text": TOUR, "at": 14.1, "utterance_id": 2, "topic": "tour"},
        ],
    }
    fields.update(kw)
    record = CallRecord(**fields)
    record.summary, record.summary_by = plain_summary(record), "plain"
    return record.as_dict()


def test_a_record_that_holds_what_is_expected_passes() -> None:
    from hotline.sim.scenario.checks import check_record
    from hotline.sim.scenario.model import RecordExpect

    want = RecordExpect(
        outcome="twilio stop",
        ended_by="caller",
        caller_turns=1,
        topics=("tour",),
        summary_words=("tour dates", "Answered: tour"),
    )
    checks = check_record(want, a_record())
    assert len(checks) == 6 and all(c.ok for c in checks), checks


def test_a_record_that_says_something_else_fails_saying_what_it_holds() -> None:
    from hotline.sim.scenario.checks import check_record
    from hotline.sim.scenario.model import RecordExpect

    want = RecordExpect(
        outcome="twilio stop",
        ended_by="caller",
        caller_turns=1,
        topics=("tour",),
        summary_words=("tour",),
    )
    merch = [
        {"speaker": "hotline", "text": SCRIPT.greeting, "at": 0.0, "utterance_id": 1},
        {"speaker": "caller", "text": "do you have shirts", "at": 12.0},
        {"speaker": "hotline", "text": MERCH, "at": 12.8, "utterance_id": 2, "topic": "merch"},
        {"speaker": "caller", "text": "bye", "at": 20.0},
        {"speaker": "hotline", "text": SCRIPT.goodbye, "at": 20.5, "utterance_id": 3},
    ]
    record = a_record(outcome="goodbye played", ended_by="hotline", turns=merch)
    bad = {c.what: c.detail for c in failed(check_record(want, record))}
    assert bad == {
        "record outcome 'twilio stop'": "the record says 'goodbye played'",
        "record ended_by caller": "the record says ended by hotline (goodbye played)",
        "record caller_turns 1": "the record holds 2 caller turn(s): 'do you have shirts'; 'bye'",
        "record topic 'tour'": "the record's lines answered merch",
        "record summary 'tour'": bad["record summary 'tour'"],
    }
    assert bad["record summary 'tour'"].startswith("the summary says 'A 22 s call, 2 caller")
    assert "Answered: merch" in bad["record summary 'tour'"]


def test_no_record_or_no_summary_fails_every_record_check() -> None:
    from hotline.sim.scenario.checks import check_record
    from hotline.sim.scenario.model import RecordExpect

    want = RecordExpect(outcome="twilio stop", summary_words=("tour",))
    none = check_record(want, None, "the line's call records held no record of the call")
    assert [c.ok for c in none] == [False, False]
    assert all("held no record" in c.detail for c in none)
    unsummarised = a_record()
    unsummarised["summary"] = None
    bad = failed(check_record(want, unsummarised))
    assert [(c.what, c.detail) for c in bad] == [
        ("record summary 'tour'", "the record has no summary")
    ]
