"""The scenario format: what it accepts, and a clear error naming the file and field for
everything else."""

from __future__ import annotations

from pathlib import Path

import pytest

from hotline.sim.scenario.driver import new_caller_number
from hotline.sim.scenario.model import ScenarioError, load_scenario, parse_scenario
from hotline.sim.scenario.runner import collect, scenario_script

ROOT = Path(__file__).resolve().parents[2]

FULL = """
name = "everything"
max_seconds = 60
[caller]
number = "+15555550142"
voice = "en-us+f3"
rate = 160
parameters = { CallerCity = "PORTLAND" }

[[step]]
listen = true
expect = { line = "greeting", latency_ms = 3000 }

[[step]]
say = ["Tell me about", "the new album"]
gap_ms = 300
expect = { intent = "album", words = ["Paper Lanterns"], pattern = "ten songs", one_turn = true }

[[step]]
cough = 200
over_line_after = 1.5
expect = { no_turn = true, barge_in_ms = 900 }

[[step]]
noise = 500
noise_dbfs = -35

[[step]]
press = "1#"

[[step]]
wav = "caller.wav"

[[step]]
silent = 2.5
expect = { no_reply = true }

[[step]]
hangup = true

[expect]
outcome = "caller_hangup"
judge = "The line is friendly."
"""


def test_a_full_scenario_parses() -> None:
    sc = parse_scenario(FULL, source="x.toml", path=Path("/tmp/sc/x.toml"))
    assert sc.name == "everything" and sc.max_seconds == 60
    assert sc.caller.number == "+15555550142" and sc.caller.rate == 160
    assert sc.caller.parameters == {"CallerCity": "PORTLAND"}
    assert [s.action for s in sc.steps] == [
        "listen", "say", "cough", "noise", "press", "wav", "silent", "hangup"
    ]  # fmt: skip
    assert sc.steps[1].value == ("Tell me about", "the new album")
    assert sc.steps[1].gap_ms == 300 and sc.steps[1].expect.words == ("Paper Lanterns",)
    assert sc.steps[2].over_line_after == 1.5 and sc.steps[2].expect.barge_in_ms == 900
    assert sc.steps[5].value == Path("/tmp/sc/caller.wav")  # relative to the scenario
    assert sc.outcome == "caller_hangup" and sc.judge == "The line is friendly."


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("name = ", "not TOML"),
        ('name = "x"', "no [[step]]"),
        ("[[step]]\nsay = 'hi'\npress = '1'", "needs exactly one of"),
        ("[[step]]\nshout = 'hi'", "needs exactly one of"),
        ("[[step]]\nsay = 'hi'\nloud = true", "step[0]: unknown field(s) loud"),
        ("[[step]]\nsay = ''", "step[0].say"),
        ("[[step]]\npress = 'a'", "step[0].press: expected DTMF keys"),
        ("[[step]]\ncough = 'long'", "step[0].cough: expected a number, got str"),
        ("[[step]]\nsilent = -1", "step[0].silent: must be within"),
        (
            "[[step]]\nsay = 'x'\nexpect = { intent = 3 }",
            "step[0].expect.intent: expected a string",
        ),
        ("[[step]]\nsay = 'x'\nexpect = { pattern = '(' }", "not a regular expression"),
        ("[[step]]\nsay = 'x'\nexpect = { line = 'menu' }", "step[0].expect.line"),
        ("[[step]]\nsay = 'x'\nexpect = { one_turn = true, no_turn = true }", "contradict"),
        ("[[step]]\nsay = 'x'\nexpect = { barge_in_ms = 500 }", "needs over_line_after"),
        ("[[step]]\nhangup = true\nexpect = { no_turn = true }", "cannot expect"),
        ("[[step]]\nlisten = false", "step[0].listen: expected true"),
        ("[caller]\nnumber = 'me'\n[[step]]\nlisten = true", "caller.number"),
        ("[[step]]\nlisten = true\n[expect]\noutcome = 'won'", "expect.outcome"),
        # an LLM judge is never the only check
        ("[[step]]\nlisten = true\n[expect]\njudge = 'nice'", "never the only check"),
        ("[[step]]\nsay = 'x'\nexpect = { judge = 'nice' }", "never the only check of a step"),
        # a returning caller, and what the call's record holds
        ("[caller]\ncalled_before = 'yes'\n[[step]]\nlisten = true", "caller.called_before"),
        ("[caller]\nreturning = true\n[[step]]\nlisten = true", "unknown field(s) returning"),
        ("[[step]]\nlisten = true\n[expect]\nrecord = 'tour'", "expect.record must be a table"),
        ("[[step]]\nlisten = true\n[expect]\nrecord = {}", "expect.record: expects nothing"),
        ("[[step]]\nlisten = true\n[expect.record]\nturns = 2", "unknown field(s) turns"),
        (
            "[[step]]\nlisten = true\n[expect.record]\ncaller_turns = 1.5",
            "expect.record.caller_turns: expected an integer",
        ),
        (
            "[[step]]\nlisten = true\n[expect.record]\ncaller_turns = -1",
            "expect.record.caller_turns: must be within",
        ),
        (
            "[[step]]\nlisten = true\n[expect.record]\nended_by = 'fan'",
            "expect.record.ended_by: expected one of caller, hotline",
        ),
        (
            "[[step]]\nlisten = true\n[expect.record]\nsummary_words = ['']",
            "expect.record.summary_words: expected non-empty strings",
        ),
        ("[[step]]\nlisten = true\n[expect.record]\noutcome = ' '", "expect.record.outcome"),
        (
            "[[step]]\nsay = 'x'\nexpect = { line = 'returning' }",
            "step[0].expect.line: expected greeting, returning_greeting",
        ),
    ],
)
def test_a_bad_scenario_is_refused_naming_the_field(text: str, message: str) -> None:
    with pytest.raises(ScenarioError) as err:
        parse_scenario(text, source="bad.toml")
    assert message in str(err.value) and str(err.value).startswith("bad.toml")


def test_a_judge_beside_other_checks_is_accepted() -> None:
    sc = parse_scenario("[[step]]\nlisten = true\n[expect]\noutcome = 'handoff'\njudge = 'ok'")
    assert sc.uses_judge()


def test_the_shipped_scenarios_parse_and_name_lines_of_the_built_in_script() -> None:
    paths = collect([str(ROOT / "scenarios")])
    assert len(paths) >= 5
    for p in paths:
        sc = load_scenario(p)
        script = scenario_script(sc)
        intents = {i.name for i in script.intents}
        for step in sc.steps:
            assert step.expect.intent is None or step.expect.intent in intents, (p, step)


def test_missing_paths_are_errors(tmp_path: Path) -> None:
    with pytest.raises(ScenarioError, match="no such file"):
        collect([str(tmp_path / "nope.toml")])
    with pytest.raises(ScenarioError, match=r"no \*\.toml"):
        collect([str(tmp_path)])
    with pytest.raises(ScenarioError, match="cannot read"):
        load_scenario(tmp_path)


def test_a_caller_without_a_number_is_a_new_caller_on_every_call() -> None:
    # Call records recognise a number they have seen: an unnamed caller must not become a
    # returning one (greeted with the script's returning_greeting) on a line's second call.
    scenario = parse_scenario('[[step]]\nsay = "hello"\n')
    assert scenario.caller.number is None
    numbers = {new_caller_number() for _ in range(50)}
    assert len(numbers) == 50
    assert all(n.startswith("+1555") and len(n) == 12 and n[1:].isdigit() for n in numbers)
    named = parse_scenario('[caller]\nnumber = "+15555550142"\n[[step]]\nsay = "hi"\n')
    assert named.caller.number == "+15555550142"


RETURNING = """
[caller]
called_before = true
[[step]]
listen = true
expect = { line = "returning_greeting" }
[expect]
outcome = "caller_hangup"
judge = "Friendly."
record = { outcome = "twilio stop", ended_by = "caller", caller_turns = 1, topics = ["tour"], summary_words = ["tour", "twilio stop"] }
"""


def test_a_returning_caller_and_record_expectations_parse() -> None:
    from hotline.sim.scenario.model import RecordExpect

    sc = parse_scenario(RETURNING, source="r.toml")
    assert sc.caller.called_before and sc.caller.number is None and sc.uses_records()
    assert sc.steps[0].expect.line == "returning_greeting"
    assert sc.record == RecordExpect(
        outcome="twilio stop",
        ended_by="caller",
        caller_turns=1,
        topics=("tour",),
        summary_words=("tour", "twilio stop"),
    )
    # a record expectation is something besides a judge
    only = parse_scenario(
        "[[step]]\nlisten = true\n[expect]\njudge = 'ok'\nrecord = { caller_turns = 0 }"
    )
    assert only.record == RecordExpect(caller_turns=0) and only.uses_records()
    plain = parse_scenario("[[step]]\nlisten = true")
    assert not plain.caller.called_before and plain.record is None and not plain.uses_records()


def test_the_shipped_returning_caller_scenario() -> None:
    sc = load_scenario(ROOT / "scenarios" / "returning_caller.toml")
    assert sc.caller.called_before and sc.record is not None and sc.record.summary_words
    assert sc.steps[0].expect.line == "returning_greeting"
    assert scenario_script(sc).returning_greeting  # the built-in script has one
