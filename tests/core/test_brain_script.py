"""Spoken intents of the call script and the sans-I/O script brain."""

from __future__ import annotations

import json

import pytest

from hotline.core.brain import CallEnding, CallerDigit, CallerTurn, EndCall, Interrupted, SayText
from hotline.core.script import IntentAction, default_script, load_script, normalise
from hotline.core.script_brain import ScriptBrain
from hotline.errors import ConfigError

BASE = """
greeting = "Hi."
goodbye = "Bye then."
invalid_digit = "No."
goodbye_digit = "0"
fallback = "Say again?"
brain_error = "Oops."
[menu]
1 = "Tour line."
"""


def script(extra: str = "") -> object:
    return load_script(BASE + extra)


TOUR = """
[intents.tour]
phrases = ["tour", "tour dates", "Shows"]
say = "We tour."
[intents.dates]
phrases = ["dates"]
say = "Dates."
[intents.merch]
phrases = ["t-shirt", "merch"]
say = "Merch."
[intents.bye]
phrases = ["bye", "good bye"]
action = "goodbye"
[intents.again]
phrases = ["repeat", "say that again"]
action = "repeat"
[intents.human]
phrases = ["a person"]
action = "handoff"
say = "Passing you on."
"""


def test_normalise() -> None:
    assert normalise("  What's ON, the TOUR?!  ") == "what s on the tour"
    assert normalise("T-Shirt_size") == "t shirt size"
    assert normalise("Café Zürich") == "café zürich"
    assert normalise("...") == ""


@pytest.mark.parametrize(
    ("text", "name"),
    [
        ("When are your TOUR dates?", "tour"),  # two words beat one ("dates")
        ("any dates?", "dates"),
        ("do you have a T shirt", "merch"),  # punctuation in the phrase is normalised too
        ("detour", None),  # whole words only
        ("tours", None),
        ("shows", "tour"),  # phrases are lowercased
        ("ok good bye", "bye"),
        ("", None),
        ("¿?", None),
    ],
)
def test_match_intent(text: str, name: str | None) -> None:
    s = load_script(BASE + TOUR)
    found = s.match_intent(text)
    assert (found.name if found else None) == name


def test_tie_goes_to_the_first_declared_and_longest_chars() -> None:
    s = load_script(
        BASE
        + """
[intents.a]
phrases = ["new"]
say = "A."
[intents.b]
phrases = ["new"]
say = "B."
[intents.c]
phrases = ["record"]
say = "C."
"""
    )
    assert s.match_intent("new").name == "a"  # type: ignore[union-attr]
    # Same word count: the longer phrase wins, wherever it is in the file.
    assert s.match_intent("new record").name == "c"  # type: ignore[union-attr]


def test_keyterms_are_the_phrases_as_written_without_duplicates() -> None:
    s = load_script(BASE + TOUR + '[intents.x]\nphrases = ["Tour", "vinyl  record"]\nsay = "x"\n')
    terms = s.keyterms()
    assert terms[:3] == ("tour", "tour dates", "Shows")
    assert "vinyl record" in terms
    assert len(terms) == len(set(normalise(t) for t in terms))


@pytest.mark.parametrize(
    ("extra", "match"),
    [
        ('[intents.a]\nsay = "x"\n', r"intents\.a\.phrases: expected a non-empty array"),
        ('[intents.a]\nphrases = []\nsay = "x"\n', "non-empty array"),
        ('[intents.a]\nphrases = ["x"]\n', r"intents\.a\.say: missing"),
        ('[intents.a]\nphrases = [1]\nsay = "x"\n', "expected strings"),
        ('[intents.a]\nphrases = ["?!"]\nsay = "x"\n', "no letters or digits"),
        ('[intents.a]\nphrases = ["x"]\naction = "dance"\n', "expected one of say, goodbye"),
        ('[intents.a]\nphrases = ["x"]\naction = "goodbye"\nsay = "x"\n', "not used with"),
        ('[intents.a]\nphrases = ["x"]\nsay = "x"\nweight = 2\n', "unknown key"),
        ("[intents]\na = 1\n", r"intents\.a: expected a table"),
        ("[llm]\ntemperature = 3\n", r"llm\.temperature: must be within 0\.0\.\.2\.0"),
        ("[llm]\nmax_history_turns = 0\n", "must be within 1..100"),
        ("[llm]\nmax_reply_tokens = 1.5\n", "expected an integer"),
        ("[llm]\nfirst_token_timeout_s = 0\n", "must be positive"),
        ("[llm]\nfirst_token_timeout_s = 5\ntotal_timeout_s = 2\n", "at least first_token"),
        ('[llm]\nsystem_prompt = " "\n', "non-empty string"),
        ("[llm]\nmodel = 'x'\n", "unknown key"),
    ],
)
def test_bad_intents_and_llm_settings(extra: str, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        load_script(BASE + extra)


def test_empty_fallback_line_is_rejected() -> None:
    with pytest.raises(ConfigError, match="fallback: must not be empty"):
        load_script(BASE.replace('fallback = "Say again?"', 'fallback = "  "'))


def test_llm_settings_parse() -> None:
    s = load_script(
        BASE
        + '[llm]\nsystem_prompt = "Be brief."\nmax_history_turns = 3\nmax_reply_tokens = 40\n'
        + "temperature = 0\nfirst_token_timeout_s = 1.5\ntotal_timeout_s = 4\n"
    )
    assert (s.llm.system_prompt, s.llm.max_history_turns, s.llm.max_reply_tokens) == (
        "Be brief.",
        3,
        40,
    )
    assert (s.llm.temperature, s.llm.first_token_timeout_s, s.llm.total_timeout_s) == (
        0.0,
        1.5,
        4.0,
    )


def test_brain_answers_intents_fallback_repeat_goodbye_handoff() -> None:
    brain = ScriptBrain(load_script(BASE + TOUR))
    assert brain.respond(CallerTurn("repeat that")) == [SayText("Hi.", last=True)]  # greeting
    assert brain.respond(CallerTurn("tour dates please")) == [SayText("We tour.", last=True)]
    assert brain.respond(CallerTurn("say that again")) == [SayText("We tour.", last=True)]
    assert brain.respond(CallerTurn("what is the weather")) == [SayText("Say again?", last=True)]
    assert brain.last_intent is None
    assert brain.respond(CallerTurn("tour", final=False)) == []
    assert brain.respond(CallerTurn("   ")) == []
    assert brain.respond(Interrupted("We", 300)) == []
    assert brain.respond(CallEnding()) == []
    out = brain.respond(CallerTurn("can I talk to a person"))
    assert out[0] == SayText("Passing you on.", last=True)
    assert isinstance(out[1], EndCall) and out[1].reason == "handoff"
    assert json.loads(out[1].handoff_data or "") == {"reason": "handoff", "intent": "human"}
    assert brain.respond(CallerTurn("bye")) == [SayText("Bye then.", last=True), EndCall("goodbye")]


def test_handoff_intent_promises_no_one_when_no_one_is_there() -> None:
    # The intent's line ("Passing you on.") promises a person: said only when one can come.
    brain = ScriptBrain(load_script(BASE + TOUR), handoff=False)
    (end,) = brain.respond(CallerTurn("can I talk to a person"))
    assert isinstance(end, EndCall) and end.reason == "handoff" and end.handoff_data


def test_brain_keeps_the_dtmf_menu() -> None:
    brain = ScriptBrain(load_script(BASE + TOUR))
    assert brain.respond(CallerDigit("1")) == [SayText("Tour line.", last=True)]
    assert brain.respond(CallerDigit("5")) == [SayText("No.", last=True)]
    assert brain.respond(CallerDigit("0")) == [SayText("Bye then.", last=True), EndCall("digit")]


@pytest.mark.parametrize(
    ("said", "intent"),
    [
        ("When's the next tour?", "tour"),
        ("are you playing near Seattle", "tour"),
        ("do you sell t-shirts", "merch"),
        ("Tell me about the new album", "album"),
        ("can I talk to a real person", "person"),
        ("sorry, come again?", "repeat"),
        ("that's all, thanks, bye", "goodbye"),
    ],
)
def test_default_script_intents(said: str, intent: str) -> None:
    s = default_script()
    found = s.match_intent(said)
    assert found is not None and found.name == intent
    if intent == "goodbye":
        assert found.action is IntentAction.GOODBYE
    assert s.fallback and s.brain_error and s.llm.system_prompt
    assert "tour dates" in s.keyterms()


def test_intent_examples_are_the_caller_phrases() -> None:

    script = default_script()
    phrases = script.caller_phrases()
    assert "What are the tour dates?" in phrases and "I want to talk to a person" in phrases
    assert len(phrases) == len(set(phrases))
    with pytest.raises(ConfigError, match="examples"):
        load_script(
            'greeting = "Hi"\ngoodbye = "Bye"\ninvalid_digit = "?"\n'
            '[intents.x]\nphrases = ["x"]\nsay = "X"\nexamples = [3]\n'
        )
