"""TurnTaker: VAD + transcripts -> caller turns and barge-in decisions (no clocks, no I/O)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hotline.core.turns import (
    BargeInMode,
    CommitTranscript,
    Interrupt,
    TurnConfig,
    TurnEnded,
    TurnTaker,
    has_words,
)
from hotline.errors import ConfigError


def frames(turns: TurnTaker, start_ms: int, end_ms: int, now0: float = 0.0) -> None:
    """Silent frames every 20 ms from ``start_ms`` (exclusive) to ``end_ms`` (inclusive)."""
    for ts in range(start_ms + 20, end_ms + 1, 20):
        turns.media(ts, now0 + ts / 1000)


def test_a_turn_ends_after_the_silence_and_the_final_transcript() -> None:
    turns = TurnTaker(TurnConfig(silence_ms=700))
    turns.speech_started(1000, 1.0, bot_speaking=False)
    turns.partial("what are the", 1.5, bot_speaking=False)
    turns.speech_ended(2000, 2.3)
    frames(turns, 2300, 2680)
    assert turns.events() == []  # 680 ms of silence: not yet
    turns.media(2700, 2.7)
    assert turns.events() == [CommitTranscript()]
    assert turns.next_deadline() == pytest.approx(2.7 + 2.0)
    turns.final("What are the tour dates?", 2.9, bot_speaking=False)
    (ended,) = turns.events()
    assert isinstance(ended, TurnEnded)
    assert ended.text == "What are the tour dates?"
    assert (ended.speech_started_ms, ended.speech_ended_ms) == (1000, 2000)
    assert (ended.silence_at, ended.commit_at, ended.final_at) == (2.7, 2.7, 2.9)
    assert not ended.timed_out and not turns.in_turn and turns.turns == 1


def test_a_turn_already_committed_ends_without_asking_again() -> None:
    turns = TurnTaker(TurnConfig(silence_ms=500))
    turns.speech_started(0, 0.0, False)
    turns.speech_ended(1000, 1.3)
    turns.final("Where can I buy merch?", 1.4, False)  # the recogniser committed on its own
    turns.media(1500, 1.5)
    (ended,) = turns.events()
    assert isinstance(ended, TurnEnded) and ended.commit_at is None
    assert ended.text == "Where can I buy merch?"


def test_a_final_while_still_speaking_is_not_the_end() -> None:
    turns = TurnTaker(TurnConfig(silence_ms=500))
    turns.speech_started(0, 0.0, False)
    turns.final("Where can I", 0.9, False)  # committed mid-speech: more may follow
    turns.speech_ended(1000, 1.3)
    turns.media(1500, 1.5)
    assert turns.events() == [CommitTranscript()]
    turns.final("buy merch?", 1.6, False)
    (ended,) = turns.events()
    assert isinstance(ended, TurnEnded) and ended.text == "Where can I buy merch?"


def test_speech_resumed_within_the_silence_continues_the_same_turn() -> None:
    turns = TurnTaker(TurnConfig(silence_ms=700))
    turns.speech_started(0, 0.0, False)
    turns.final("Tell me", 0.5, False)
    turns.speech_ended(600, 0.9)
    turns.media(1200, 1.2)  # 600 ms: not enough
    turns.speech_started(1240, 1.24, False)
    turns.speech_ended(2000, 2.3)
    turns.media(2700, 2.7)
    assert turns.events() == [CommitTranscript()]
    turns.final("about the new album", 2.8, False)
    (ended,) = turns.events()
    assert isinstance(ended, TurnEnded)
    assert ended.text == "Tell me about the new album"
    assert ended.speech_started_ms == 0 and ended.speech_ended_ms == 2000


def test_a_turn_without_words_is_dropped() -> None:
    turns = TurnTaker(TurnConfig(silence_ms=300, final_timeout_ms=1000))
    turns.speech_started(0, 0.0, False)  # a cough
    turns.speech_ended(200, 0.5)
    turns.media(500, 0.5)
    assert turns.events() == [CommitTranscript()]
    turns.final("", 0.6, False)  # the recogniser found nothing
    assert turns.events() == [] and turns.in_turn
    turns.poll(1.4)
    assert turns.in_turn
    turns.poll(1.5)
    assert turns.events() == [] and not turns.in_turn and turns.dropped == 1


def test_final_timeout_keeps_the_last_interim_words() -> None:
    turns = TurnTaker(TurnConfig(silence_ms=300, final_timeout_ms=1000))
    turns.speech_started(0, 0.0, False)
    turns.partial("goodbye", 0.4, False)
    turns.speech_ended(500, 0.8)
    turns.media(800, 0.8)
    assert turns.events() == [CommitTranscript()]
    turns.poll(1.8)
    (ended,) = turns.events()
    assert isinstance(ended, TurnEnded) and ended.timed_out and ended.text == "goodbye"


@pytest.mark.parametrize(
    ("mode", "onset", "word"),
    [
        (BargeInMode.SPEECH, True, False),
        (BargeInMode.WORDS, False, True),
        (BargeInMode.OFF, False, False),
    ],
)
def test_barge_in_modes(mode: BargeInMode, onset: bool, word: bool) -> None:
    turns = TurnTaker(TurnConfig(barge_in=mode))
    turns.speech_started(3000, 3.0, bot_speaking=True)
    assert (turns.events() == [Interrupt("speech", 3000)]) is onset
    turns.partial("  ", 3.2, bot_speaking=True)  # no word yet
    assert turns.events() == []
    turns.partial("wait", 3.4, bot_speaking=True)
    assert (turns.events() == [Interrupt("words", 3000)]) is word


def test_words_mode_a_cough_never_interrupts() -> None:
    turns = TurnTaker(TurnConfig(silence_ms=300, final_timeout_ms=500, barge_in=BargeInMode.WORDS))
    turns.speech_started(0, 0.0, bot_speaking=True)
    turns.speech_ended(200, 0.5)
    turns.media(500, 0.5)
    turns.final("", 0.7, bot_speaking=True)
    turns.poll(1.0)
    assert turns.events() == [CommitTranscript()]


def test_words_mode_falls_back_to_speech_while_the_recogniser_is_down() -> None:
    turns = TurnTaker(TurnConfig(barge_in=BargeInMode.WORDS))
    turns.stt_down()
    turns.speech_started(100, 0.1, bot_speaking=True)
    assert turns.events() == [Interrupt("speech", 100)]
    turns.speech_ended(400, 0.7)
    turns.media(1100, 1.1)
    assert turns.events() == [] and turns.dropped == 1  # nobody transcribes it
    turns.stt_up()
    turns.speech_started(2000, 2.0, bot_speaking=True)
    assert turns.events() == []


def test_stt_down_while_finalising_ends_with_what_was_committed() -> None:
    turns = TurnTaker(TurnConfig(silence_ms=300))
    turns.speech_started(0, 0.0, False)
    turns.partial("can you", 0.2, False)
    turns.final("Can you", 0.3, False)
    turns.partial("repeat", 0.5, False)
    turns.speech_ended(600, 0.9)
    turns.media(900, 0.9)
    assert turns.events() == [CommitTranscript()]
    turns.stt_down()
    (ended,) = turns.events()
    assert isinstance(ended, TurnEnded) and ended.text == "Can you" and ended.timed_out


def test_a_late_final_belongs_to_the_turn_that_timed_out() -> None:
    """Seen with the grammar ear: the turn timed out waiting for the final and was answered,
    then the final arrived 0.1-1.2 s later and became a second turn (a second prompt to the
    brain, a second reply)."""
    turns = TurnTaker(TurnConfig(silence_ms=300, final_timeout_ms=1000))
    turns.speech_started(0, 0.0, False)
    turns.partial("what are the", 0.4, False)
    turns.speech_ended(500, 0.8)
    turns.media(800, 0.8)
    assert turns.events() == [CommitTranscript()]
    turns.poll(1.8)
    (ended,) = turns.events()
    assert isinstance(ended, TurnEnded) and ended.timed_out and ended.text == "what are the"
    turns.final("what are the tour dates", 2.5, False)
    assert turns.events() == [] and not turns.in_turn
    assert (turns.late_finals, turns.late_text, turns.turns) == (1, "what are the tour dates", 1)
    # The caller speaks again: a turn as usual, and the words the VAD missed count again.
    turns.speech_started(3000, 3.0, False)
    turns.speech_ended(3500, 3.5)
    turns.media(3800, 3.8)
    assert turns.events() == [CommitTranscript()]
    turns.final("goodbye", 3.9, False)
    (ended,) = turns.events()
    assert isinstance(ended, TurnEnded) and ended.text == "goodbye" and not ended.timed_out
    turns.final("hello?", 5.0, False)
    (ended,) = turns.events()
    assert isinstance(ended, TurnEnded) and ended.text == "hello?"


def test_words_the_vad_missed_still_make_a_turn() -> None:
    turns = TurnTaker()
    turns.final("hello?", 5.0, False)
    (ended,) = turns.events()
    assert isinstance(ended, TurnEnded) and ended.text == "hello?"


def test_config_is_checked() -> None:
    with pytest.raises(ConfigError):
        TurnConfig(silence_ms=-1)
    with pytest.raises(ConfigError):
        TurnConfig(final_timeout_ms=0)
    with pytest.raises(ConfigError):
        TurnConfig(barge_in="words")  # type: ignore[arg-type]


def test_has_words() -> None:
    assert has_words("a") and has_words(" 12 ") and not has_words(" .,- ") and not has_words("")


_step = st.one_of(
    st.tuples(st.just("start"), st.integers(0, 60_000), st.booleans()),
    st.tuples(st.just("end"), st.integers(0, 60_000), st.booleans()),
    st.tuples(st.just("media"), st.integers(0, 60_000), st.booleans()),
    st.tuples(st.just("partial"), st.text(max_size=12), st.booleans()),
    st.tuples(st.just("final"), st.text(max_size=12), st.booleans()),
    st.tuples(st.just("poll"), st.integers(0, 60_000), st.booleans()),
    st.tuples(st.just("down"), st.none(), st.booleans()),
    st.tuples(st.just("up"), st.none(), st.booleans()),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(_step, max_size=40), st.sampled_from(list(BargeInMode)))
def test_any_sequence_keeps_the_contract(
    steps: list[tuple[str, object, bool]], mode: BargeInMode
) -> None:
    """Whatever arrives in whatever order: no exception, every turn has words, interrupts only
    while hotline speaks and never in ``off`` mode."""
    turns = TurnTaker(TurnConfig(silence_ms=300, final_timeout_ms=800, barge_in=mode))
    now = 0.0
    for kind, arg, speaking in steps:
        now += 0.02
        if kind == "start":
            turns.speech_started(int(arg), now, speaking)  # type: ignore[call-overload]
        elif kind == "end":
            turns.speech_ended(int(arg), now)  # type: ignore[call-overload]
        elif kind == "media":
            turns.media(int(arg), now)  # type: ignore[call-overload]
        elif kind == "partial":
            turns.partial(str(arg), now, speaking)
        elif kind == "final":
            turns.final(str(arg), now, speaking)
        elif kind == "poll":
            turns.poll(now + int(arg) / 1000)  # type: ignore[call-overload]
        elif kind == "down":
            turns.stt_down()
        else:
            turns.stt_up()
        for event in turns.events():
            if isinstance(event, TurnEnded):
                assert has_words(event.text)
            elif isinstance(event, Interrupt):
                assert speaking and mode is not BargeInMode.OFF
