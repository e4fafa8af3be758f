"""The caller's ears on the local voice's own speech (eSpeak NG, 8 kHz µ-law, as the caller
receives it): the line said is judged heard; a changed line is not."""

from __future__ import annotations

import pytest

from hotline.core.script import default_script
from hotline.ear.phrases import phrase_ulaw
from hotline.ear.whisper import whisper_available
from hotline.sim.scenario.checks import StepView, check_step, script_lines
from hotline.sim.scenario.ear import (
    CallerEar,
    GrammarEar,
    grammar_phrases,
    make_ear,
    speech_segments,
)
from hotline.sim.scenario.model import Expect

SCRIPT = default_script()
LINES = script_lines(SCRIPT)
CHANGED = "Wren is taking the year off: there are no shows planned, sorry."


def heard_ok(ear: CallerEar, spoken: str, intent: str) -> bool | None:
    heard = ear.transcribe(phrase_ulaw(spoken) + b"\xff" * 8000)
    view = StepView(1, Expect(intent=intent), heard, 5000.0, None, None, None, 900.0, None, False)
    checks = check_step(view, SCRIPT, ear.heard_min)
    return next(c.ok for c in checks if c.what == f"intent {intent} (heard)")


def test_grammar_phrases_cut_lines_into_spellable_clauses() -> None:
    phrases = grammar_phrases([LINES["intent.tour"]])
    assert "portland on april twelfth" in phrases and "seattle on the fourteenth" in phrases
    assert "wren is on the road this spring" in phrases


def test_speech_segments_split_at_silence() -> None:
    a = phrase_ulaw("Press 1 for tour dates")
    segs = speech_segments(a + b"\xff" * 8000 + a)
    assert len(segs) == 2 and all(len(s) >= len(a) // 2 for s in segs)
    assert speech_segments(b"\xff" * 16000) == []


@pytest.mark.parametrize("intent", ["tour", "merch"])
def test_the_grammar_ear_hears_a_line_and_not_a_changed_one(intent: str) -> None:
    ear = GrammarEar(LINES.values())
    line = next(i.say for i in SCRIPT.intents if i.name == intent)
    assert line is not None
    assert heard_ok(ear, line, intent) is True
    assert heard_ok(ear, CHANGED, intent) is False


@pytest.mark.skipif(not whisper_available(), reason="hotline[whisper] is not installed")
def test_the_whisper_ear_hears_a_line_and_not_a_changed_one() -> None:
    ear = make_ear("whisper", [])
    tour = next(i.say for i in SCRIPT.intents if i.name == "tour")
    assert tour is not None
    assert heard_ok(ear, tour, "tour") is True
    assert heard_ok(ear, CHANGED, "tour") is False


def test_an_unknown_ear_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown ear"):
        make_ear("robot", [])
