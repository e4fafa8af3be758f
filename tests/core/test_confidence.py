"""Ending intents need confident words (sans-I/O): the script brain's rule, the confidence
carried by Scribe's ``words[].logprob`` and Deepgram's ``confidence``, and a turn's confidence
from its finals."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from importlib import resources

import pytest

from hotline.core.brain import CallerTurn, EndCall, SayText
from hotline.core.deepgram import DeepgramLive
from hotline.core.scribe import ScribeRealtime
from hotline.core.script import default_script, load_script
from hotline.core.script_brain import ScriptBrain
from hotline.core.stt import SttCommitted
from hotline.core.turns import TurnConfig, TurnEnded, TurnTaker
from hotline.errors import ConfigError, SttProtocolError

SCRIPT = default_script()


def said(out: Sequence[object]) -> list[str]:
    return [o.token for o in out if isinstance(o, SayText)]


@pytest.mark.parametrize("text", ["That's all, goodbye", "hang up", "bye"])
def test_an_unsure_goodbye_is_asked_again_and_the_call_goes_on(text: str) -> None:
    brain = ScriptBrain(SCRIPT)
    out = brain.respond(CallerTurn(text, confidence=0.2))
    assert said(out) == [SCRIPT.fallback]
    assert not any(isinstance(o, EndCall) for o in out)
    assert brain.doubted == 1 and brain.last_intent is None


@pytest.mark.parametrize("confidence", [0.5, 0.93, None])
def test_a_sure_or_unrated_goodbye_ends_the_call(confidence: float | None) -> None:
    out = ScriptBrain(SCRIPT).respond(CallerTurn("That's all, goodbye", confidence=confidence))
    assert said(out) == [SCRIPT.goodbye]
    assert isinstance(out[-1], EndCall) and out[-1].reason == "goodbye"


def test_an_unsure_handoff_is_asked_again() -> None:
    out = ScriptBrain(SCRIPT, handoff=True).respond(CallerTurn("talk to a person", confidence=0.1))
    assert said(out) == [SCRIPT.fallback] and not any(isinstance(o, EndCall) for o in out)
    out = ScriptBrain(SCRIPT, handoff=True).respond(CallerTurn("talk to a person", confidence=0.8))
    assert isinstance(out[-1], EndCall) and out[-1].reason == "handoff"


def test_a_handoff_needs_less_confidence_than_a_goodbye() -> None:
    # 0.35: below the goodbye's floor, above the handoff's (the grammar ear rates a fifth of
    # the "talk to a person" it hears right under 0.5: those callers were asked again)
    assert SCRIPT.handoff_confidence < 0.35 < SCRIPT.end_confidence
    out = ScriptBrain(SCRIPT, handoff=True).respond(CallerTurn("talk to a person", confidence=0.35))
    assert isinstance(out[-1], EndCall) and out[-1].reason == "handoff"
    out = ScriptBrain(SCRIPT).respond(CallerTurn("That's all, goodbye", confidence=0.35))
    assert said(out) == [SCRIPT.fallback] and not any(isinstance(o, EndCall) for o in out)
    strict = ScriptBrain(SCRIPT, handoff=True, handoff_confidence=0.5)
    out = strict.respond(CallerTurn("talk to a person", confidence=0.35))
    assert said(out) == [SCRIPT.fallback] and strict.doubted == 1


def test_other_intents_answer_whatever_the_confidence() -> None:
    tour = next(i for i in SCRIPT.intents if i.name == "tour")
    out = ScriptBrain(SCRIPT).respond(CallerTurn("tour dates", confidence=0.05))
    assert said(out) == [tour.say]


def test_the_threshold_comes_from_the_script_or_the_shell() -> None:
    # the package's data, not the source tree's (the wheel checks run these tests alone)
    text = resources.files("hotline.core").joinpath("default_script.toml").read_text("utf-8")
    strict = load_script("end_confidence = 0.95\n" + text)
    assert strict.end_confidence == 0.95
    out = ScriptBrain(strict).respond(CallerTurn("goodbye", confidence=0.9))
    assert not any(isinstance(o, EndCall) for o in out)
    out = ScriptBrain(strict, end_confidence=0.0).respond(CallerTurn("goodbye", confidence=0.01))
    assert isinstance(out[-1], EndCall)
    for bad in ("2", "-0.1", "true", '"high"'):
        for key in ("end_confidence", "handoff_confidence"):
            with pytest.raises(ConfigError, match=key):
                load_script(f"{key} = {bad}\n" + text)
    assert load_script("handoff_confidence = 0.6\n" + text).handoff_confidence == 0.6


def _turn(*finals: tuple[str, float | None], partial: str = "") -> TurnEnded:
    """One turn made of ``finals`` (and a last interim ``partial`` nobody committed)."""
    turns = TurnTaker(TurnConfig(silence_ms=500, final_timeout_ms=1000))
    turns.speech_started(0, 0.0, False)
    for text, confidence in finals:
        turns.final(text, 0.5, False, confidence)
    if partial:
        turns.partial(partial, 0.8, False)
    turns.speech_ended(1000, 1.0)
    turns.media(1500, 1.5)
    turns.events()
    turns.poll(2.6)  # a partial left: the final wait runs out and the partial is kept
    (ended,) = [e for e in turns.events() if isinstance(e, TurnEnded)]
    return ended


def test_a_turn_has_its_least_sure_final() -> None:
    ended = _turn(("that's all", 0.8), ("goodbye", 0.3))
    assert ended.text == "that's all goodbye" and ended.confidence == 0.3
    assert _turn(("goodbye", 0.93)).confidence == 0.93


def test_a_turn_with_an_unrated_final_or_from_an_unrating_recogniser_is_unknown() -> None:
    assert _turn(("goodbye", None)).confidence is None  # cloud Scribe without timestamps
    assert _turn(("that's all", 0.9), ("goodbye", None)).confidence is None


def test_words_a_rating_recogniser_never_committed_are_vouched_for_by_nobody() -> None:
    ended = _turn(("that's all", 0.9), partial="goodbye")
    assert ended.text == "that's all goodbye" and ended.timed_out and ended.confidence == 0.0
    assert _turn(partial="goodbye").confidence is None  # never rated anything: unknown


def test_the_confidence_reaches_the_brain_on_the_calls_caller_turn() -> None:
    from hotline.core.actions import CallerTurn as TurnAction
    from tests.core.test_call import SILENCE, make_call, media_msg, start_msg

    call = make_call(recognise=True, turns=TurnConfig(silence_ms=300), script=SCRIPT)
    call.receive_text(start_msg(), 0.0)
    call.accept(0.0)
    call.play_recorded(1, b"\xff" * 800, 0.0)
    call.actions()
    call.transcript_final("that's all goodbye", 0.5, 0.42)
    now, ts = 0.6, 600
    for _ in range(30):  # silence past the pause: the turn ends on the committed words
        call.receive_text(media_msg(ts, SILENCE), now)
        now, ts = now + 0.02, ts + 20
    turns = [a for a in call.actions() if isinstance(a, TurnAction)]
    assert [(t.text, t.confidence) for t in turns] == [("that's all goodbye", 0.42)]


def _scribe_commit(words: list[dict[str, object]]) -> SttCommitted:
    s = ScribeRealtime(include_timestamps=True)
    s.receive_text(json.dumps({"message_type": "committed_transcript", "text": "hang up"}))
    msg = {"message_type": "committed_transcript_with_timestamps", "text": "hang up"}
    s.receive_text(json.dumps({**msg, "words": words}))
    (ev,) = s.events_received()
    assert isinstance(ev, SttCommitted)
    return ev


def test_scribe_words_logprob_is_the_commits_confidence() -> None:
    ev = _scribe_commit(
        [
            {"text": "hang", "start": 0.1, "end": 0.3, "type": "word", "logprob": -0.1},
            {"text": " ", "start": 0.3, "end": 0.3, "type": "spacing"},
            {"text": "up", "start": 0.3, "end": 0.5, "type": "word", "logprob": -1.2},
        ]
    )
    assert ev.confidence == pytest.approx(math.exp(-1.2))
    assert ev.words[0].confidence == pytest.approx(math.exp(-0.1))
    # cloud Scribe as documented before: no logprob, no confidence (unknown)
    assert _scribe_commit([{"text": "hang", "start": 0.1, "end": 0.3}]).confidence is None


def test_scribe_logprob_must_be_a_log_probability() -> None:
    s = ScribeRealtime(include_timestamps=True)
    for bad in (0.5, "high", float("inf")):
        with pytest.raises(SttProtocolError):
            s.receive_text(
                json.dumps(
                    {
                        "message_type": "committed_transcript_with_timestamps",
                        "text": "bye",
                        "words": [{"text": "bye", "start": 0, "end": 1, "logprob": bad}],
                    }
                )
            )
    assert s.events_received() == []


def test_deepgram_confidence_is_the_least_sure_segments() -> None:
    d = DeepgramLive()

    def results(text: str, confidence: float | None, speech_final: bool) -> str:
        alt: dict[str, object] = {"transcript": text, "words": []}
        if confidence is not None:
            alt["confidence"] = confidence
        return json.dumps(
            {
                "type": "Results",
                "is_final": True,
                "speech_final": speech_final,
                "channel": {"alternatives": [alt]},
            }
        )

    d.receive_text(results("that's all", 0.97, False))
    d.receive_text(results("goodbye", 0.41, True))
    commits = [e for e in d.events_received() if isinstance(e, SttCommitted)]
    assert [(c.text, c.confidence) for c in commits] == [("that's all goodbye", 0.41)]
    d.receive_text(results("bye", None, True))
    commits = [e for e in d.events_received() if isinstance(e, SttCommitted)]
    assert [(c.text, c.confidence) for c in commits] == [("bye", None)]


def test_the_ending_phrases_are_the_goodbye_and_handoff_intents_phrases() -> None:
    ending = SCRIPT.ending_phrases()
    assert {"goodbye", "hang up", "bye", "person", "talk to a person"} <= set(ending)
    assert not {"tour", "merch", "repeat"} & set(ending)
