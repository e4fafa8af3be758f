"""TurnTaker: VAD + transcripts -> caller turns and barge-in decisions (no clocks, no I/O)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hotline.core.turns import (
    JUDGE_AUDIO_BYTES,
    BargeInMode,
    CommitTranscript,
    HoldLine,
    Interrupt,
    JudgeTurn,
    ResumeLine,
    Speculate,
    TurnConfig,
    TurnEnded,
    TurnTaker,
    Unspeculate,
    has_stop_phrase,
    has_words,
    is_backchannel,
    phrase_words,
    unfinished,
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
    held = False
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
                assert (speaking or held) and mode is not BargeInMode.OFF
                held = False
            elif isinstance(event, HoldLine):
                assert mode is BargeInMode.PAUSE and not held
                held = True
            elif isinstance(event, ResumeLine):
                assert held
                held = False


# ---------------------------------------------------------------- endpointing in two steps

FRAME = b"\x55" * 160  # 20 ms of µ-law


def feed(turns: TurnTaker, start_ms: int, end_ms: int) -> list[object]:
    """Frames every 20 ms from ``start_ms`` (exclusive) to ``end_ms`` (inclusive), the shell
    clock following the media clock; returns the events."""
    out: list[object] = []
    for ts in range(start_ms + 20, end_ms + 1, 20):
        turns.media(ts, ts / 1000, FRAME)
        out += turns.events()
    return out


def judge_of(events: list[object]) -> JudgeTurn:
    (ask,) = [e for e in events if isinstance(e, JudgeTurn)]
    return ask


def test_a_finished_turn_ends_at_the_judges_verdict() -> None:
    turns = TurnTaker(TurnConfig(judge=True, pause_ms=250))
    feed(turns, 0, 1000)  # quiet: the pre-roll
    turns.speech_started(1000, 1.0, False)
    feed(turns, 1000, 2000)
    turns.speech_ended(2000, 2.0)
    assert feed(turns, 2000, 2240) == []  # 240 ms: no pause yet
    events = feed(turns, 2240, 2260)
    assert events[0] == CommitTranscript()
    ask = judge_of(events)
    # The judge hears the turn and 500 ms before it, up to the pause.
    assert len(ask.audio) == (500 + 1000 + 260) * 8
    turns.final("What are the tour dates?", 2.33, False)
    assert turns.events() == [Speculate("What are the tour dates?")]  # the verdict is due
    turns.verdict(ask.seq, 0.93, 2.35)
    (ended,) = turns.events()
    assert isinstance(ended, TurnEnded) and ended.reason == "judge"
    assert ended.text == "What are the tour dates?" and ended.final_at == 2.35
    assert (ended.silence_at, ended.commit_at) == (2.26, 2.26)


def test_unfinished_by_the_judge_ends_at_the_fallback() -> None:
    turns = TurnTaker(TurnConfig(judge=True, fallback_ms=2500))
    turns.speech_started(0, 0.0, False)
    feed(turns, 0, 1000)
    turns.speech_ended(1000, 1.0)
    ask = judge_of(feed(turns, 1000, 1260))
    turns.final("I would like", 1.3, False)
    turns.verdict(ask.seq, 0.2, 1.32)
    assert turns.events() == [Speculate("I would like")]
    assert feed(turns, 1260, 3480) == []
    (ended,) = feed(turns, 3480, 3500)
    assert (
        isinstance(ended, TurnEnded) and ended.reason == "fallback" and ended.text == "I would like"
    )


def test_the_transcript_signal_overrules_a_confident_judge() -> None:
    """A paused question ("what are the ... tour dates") is one turn, one prompt."""
    turns = TurnTaker(TurnConfig(judge=True, pause_ms=250))
    turns.speech_started(0, 0.0, False)
    feed(turns, 0, 800)
    turns.speech_ended(800, 0.8)
    first = judge_of(feed(turns, 800, 1060))
    turns.final("What are the", 1.1, False)
    turns.verdict(first.seq, 0.97, 1.12)
    assert turns.events() == [Speculate("What are the")]
    feed(turns, 1060, 1800)  # 1 s of pause: less than the fallback
    turns.speech_started(1800, 1.8, False)  # the caller goes on: the same turn
    assert turns.events() == [Unspeculate()]
    turns.verdict(first.seq, 0.97, 1.81)  # a stale answer changes nothing
    feed(turns, 1800, 2600)
    turns.speech_ended(2600, 2.6)
    events = feed(turns, 2600, 2860)
    second = judge_of(events)
    assert second.seq > first.seq and CommitTranscript() in events
    turns.final("tour dates?", 2.9, False)
    turns.verdict(second.seq, 0.9, 2.92)
    assert turns.events()[-1] == TurnEnded(
        text="What are the tour dates?",
        speech_started_ms=0,
        speech_ended_ms=2600,
        silence_at=2.86,
        commit_at=2.86,
        final_at=2.92,
        reason="judge",
    )
    assert turns.turns == 1


def test_without_a_judge_finished_words_end_at_the_settle_time() -> None:
    turns = TurnTaker(TurnConfig(settle_ms=500))
    turns.speech_started(0, 0.0, False)
    turns.speech_ended(1000, 1.0)
    assert feed(turns, 1000, 1260) == [CommitTranscript()]
    turns.final("Where can I buy merch?", 1.3, False)
    # finished words: the turn ends at the settle time unless the caller goes on, so its
    # reply is worth voicing ahead (likely); unfinished or unsure words are not (below)
    assert turns.events() == [Speculate("Where can I buy merch?", likely=True)]
    assert feed(turns, 1260, 1480) == []
    (ended,) = feed(turns, 1480, 1500)
    assert isinstance(ended, TurnEnded) and ended.reason == "words"


def test_without_a_judge_a_late_final_past_the_settle_time_ends_at_once() -> None:
    turns = TurnTaker(TurnConfig(settle_ms=500))
    turns.speech_started(0, 0.0, False)
    turns.speech_ended(1000, 1.0)
    feed(turns, 1000, 1600)
    turns.final("Where can I buy merch?", 1.6, False)
    (ended,) = turns.events()
    assert isinstance(ended, TurnEnded) and ended.reason == "words"


def test_without_a_judge_unfinished_words_wait_for_the_fallback() -> None:
    turns = TurnTaker(TurnConfig(fallback_ms=2000))
    turns.speech_started(0, 0.0, False)
    turns.speech_ended(1000, 1.0)
    feed(turns, 1000, 1260)
    turns.final("Can I pay with", 1.3, False)
    assert turns.events() == [Speculate("Can I pay with")]
    assert feed(turns, 1260, 2980) == []
    (ended,) = feed(turns, 2980, 3000)
    assert isinstance(ended, TurnEnded) and ended.reason == "fallback"


def test_words_the_ear_is_unsure_of_wait_for_the_fallback() -> None:
    """min_confidence: a misheard fragment reads as a whole sentence ("We'll marry." for "Will
    there be …"), but the ear rated it low: it waits as unfinished words do, and the caller's
    going on continues the turn, whose later finals (tails decoded alone) do not hold it. Sure
    words, unrated words, or the signal off: the short wait."""

    def run(config: TurnConfig, confidence: float | None) -> TurnTaker:
        turns = TurnTaker(config)
        turns.speech_started(0, 0.0, False)
        turns.speech_ended(1000, 1.0)
        feed(turns, 1000, 1260)
        turns.final("We'll marry.", 1.3, False, confidence)
        return turns

    unsure = run(TurnConfig(min_confidence=0.8, fallback_ms=2000), 0.62)
    assert unsure.events() == [Speculate("We'll marry.", 0.62)]
    assert feed(unsure, 1260, 2980) == []
    (ended,) = feed(unsure, 2980, 3000)
    assert isinstance(ended, TurnEnded) and ended.reason == "fallback"
    assert ended.confidence == 0.62

    went_on = run(TurnConfig(min_confidence=0.8), 0.62)
    went_on.events()
    went_on.speech_started(1500, 1.5, False)
    went_on.speech_ended(2200, 2.2)
    assert CommitTranscript() in feed(went_on, 2200, 2460)
    went_on.final("a live stream.", 2.5, False, 0.38)  # a tail decoded alone: rated low
    ended = next(e for e in feed(went_on, 2460, 2900) if isinstance(e, TurnEnded))
    assert ended.text == "We'll marry. a live stream." and ended.reason == "words"
    assert ended.confidence == 0.38  # the turn's least sure final

    for config, confidence in (
        (TurnConfig(min_confidence=0.8), 0.93),  # sure
        (TurnConfig(min_confidence=0.8), None),  # a recogniser that does not rate
        (TurnConfig(), 0.62),  # the signal off (the default: the shell sets it per ear)
    ):
        turns = run(config, confidence)
        (ended,) = [e for e in feed(turns, 1260, 1600) if isinstance(e, TurnEnded)]
        assert ended.reason == "words", (config, confidence)


@pytest.mark.parametrize("value", [-0.1, 1.5, True, "0.8"])
def test_min_confidence_is_a_number_within_0_to_1(value: object) -> None:
    with pytest.raises(ConfigError, match="min_confidence"):
        TurnConfig(min_confidence=value)  # type: ignore[arg-type]


def test_words_after_an_unfinished_final_are_read_again() -> None:
    turns = TurnTaker(TurnConfig(settle_ms=500))
    turns.speech_started(0, 0.0, False)
    turns.speech_ended(1000, 1.0)
    feed(turns, 1000, 1260)
    turns.final("my number is", 1.3, False)
    turns.events()
    turns.final("five", 1.4, False)  # the recogniser's next final: still a number
    assert turns.events() == [Unspeculate(), Speculate("my number is five")]
    feed(turns, 1400, 2000)
    assert turns.in_turn


def test_a_judge_that_fails_leaves_the_fallback() -> None:
    turns = TurnTaker(TurnConfig(judge=True, fallback_ms=1000))
    turns.speech_started(0, 0.0, False)
    feed(turns, 0, 500)
    turns.speech_ended(500, 0.5)
    ask = judge_of(feed(turns, 500, 760))
    turns.final("Hello there", 0.8, False)
    turns.judge_failed(ask.seq, 0.9)
    turns.events()
    (ended,) = feed(turns, 760, 1500)
    assert isinstance(ended, TurnEnded) and ended.reason == "fallback"


def test_speculation_can_be_turned_off() -> None:
    turns = TurnTaker(TurnConfig(speculate=False, fallback_ms=1000))
    turns.speech_started(0, 0.0, False)
    turns.speech_ended(500, 0.5)
    feed(turns, 500, 760)
    turns.final("I want the", 0.8, False)
    assert turns.events() == []


def test_a_cough_alone_is_dropped() -> None:
    turns = TurnTaker(TurnConfig(final_timeout_ms=500))
    turns.speech_started(0, 0.0, False)
    turns.speech_ended(200, 0.2)
    assert feed(turns, 200, 460) == [CommitTranscript()]
    turns.final("", 0.5, False)
    turns.poll(0.96)
    assert turns.events() == [] and not turns.in_turn and turns.dropped == 1


def test_the_judge_hears_at_most_8_seconds() -> None:
    turns = TurnTaker(TurnConfig(judge=True))
    turns.speech_started(0, 0.0, False)
    feed(turns, 0, 20_000)
    turns.speech_ended(20_000, 20.0)
    ask = judge_of(feed(turns, 20_000, 20_260))
    assert len(ask.audio) == JUDGE_AUDIO_BYTES


def test_silence_only_never_asks_the_judge() -> None:
    turns = TurnTaker(TurnConfig(silence_ms=300, judge=True))
    turns.speech_started(0, 0.0, False)
    feed(turns, 0, 500)
    turns.speech_ended(500, 0.5)
    assert feed(turns, 500, 800) == [CommitTranscript()]
    turns.final("I want the", 0.9, False)  # unfinished words: silence only ends it anyway
    (ended,) = turns.events()
    assert isinstance(ended, TurnEnded) and ended.reason == "silence"


# ---------------------------------------------------------------- the transcript signal


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("What are the", True),
        ("I'd like to", True),
        ("Because, um...", True),
        ("my number is 5 5 5", True),
        ("two tickets for twenty", True),
        ("What are the tour dates?", False),
        ("Where can I buy merch", False),
        ("", False),
        ("...", False),
        # auxiliaries and modals, prepositions that need an object
        ("How much are", True),
        ("Will there be", True),
        ("Do you have", True),
        ("Is it coming out during", True),
        # an auxiliary after a subject pronoun is an answer
        ("Yes I do", False),
        ("I think it is.", False),
        ("What do you have?", False),
        # a question's opening with no verb after it
        ("Can you", True),
        ("So, could you", True),
        ("Where do you", True),
        ("Is there", True),
        ("How are you?", False),
        ("Who are you", False),
        ("Thank you", False),
        ("How long will it be?", False),
        # "that" ends a request as often as it begins a clause
        ("Can you repeat that?", False),
        # an inverted question whose subject (an article and a word) has no verb after it
        ("When does the show", True),
        ("What time does the show", True),
        ("Um, is the album", True),
        ("Can my friend", True),
        ("Where is the show?", False),
        ("Does that work?", False),
        ("Is that right?", False),
        ("The band does the shows", False),
        ("Does the shop ship?", False),
    ],
)
def test_unfinished(text: str, expected: bool) -> None:
    assert unfinished(text) is expected


PHRASES = phrase_words(
    ("Can you repeat that?", "Do you have t shirts?", "Are you playing near me?", "tour", "t shirt")
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("do you have t", True),  # a grammar ear forced to finalise mid-phrase
        ("tour do you have t", True),  # after a whole phrase
        ("can you repeat that", False),  # the whole phrase
        ("tour", False),
        ("how are you", False),  # "are you" begins a phrase, but not after a phrase
        ("you have t", False),  # not where a phrase begins
        ("tour t", True),  # one word into a phrase after a whole one
        ("t", False),  # one word alone is not enough
        ("the tour t", False),  # after words that are no phrase
    ],
)
def test_unfinished_reads_the_script_phrases(text: str, expected: bool) -> None:
    assert unfinished(text, phrases=PHRASES) is expected
    assert not unfinished(text.replace(" t", " tea").replace("do you", "did you") + " now")


def test_whole_script_phrases_are_never_unfinished() -> None:
    from hotline.core.script import default_script

    script = default_script()
    phrases = (*script.caller_phrases(), *script.keyterms())
    words = phrase_words(phrases)
    held = [p for p in phrases if unfinished(p, phrases=words)]
    assert held == []


def test_no_unfinished_words_turn_the_signal_off() -> None:
    assert unfinished("can you", phrases=PHRASES)
    assert not unfinished("can you", (), PHRASES)
    assert not unfinished("my number is 5", ())


def test_the_turn_taker_reads_its_phrases() -> None:
    def run(config: TurnConfig) -> list[object]:
        turns = TurnTaker(config)
        turns.speech_started(0, 0.0, False)
        turns.speech_ended(1000, 1.0)
        feed(turns, 1000, 1260)
        turns.final("do you have t", 1.3, False)
        turns.events()
        return feed(turns, 1300, 1700)

    (ended,) = run(TurnConfig(speculate=False))
    assert isinstance(ended, TurnEnded) and ended.reason == "words"
    assert run(TurnConfig(speculate=False, phrases=("Do you have t shirts?",))) == []


def test_a_paused_turn_does_not_end_while_the_detector_hears_speech() -> None:
    """Resumed speech is reported min_speech_ms after it begins: until then, a frame the
    detector calls speech holds the decision, and the onset continues the same turn."""
    turns = TurnTaker(TurnConfig(speculate=False, settle_ms=300))
    turns.speech_started(0, 0.0, False)
    turns.speech_ended(1000, 1.0)
    feed(turns, 1000, 1260)
    turns.final("where is the show", 1.27, False)
    assert feed(turns, 1260, 1280) == []
    for ts in range(1300, 1420, 20):  # speech resumes at 1300; not reported yet
        turns.media(ts, ts / 1000, FRAME, True)
        assert turns.events() == []
    turns.speech_started(1300, 1.42, False)
    assert turns.in_turn and turns.turns == 0
    turns.speech_ended(1800, 1.8)
    feed(turns, 1800, 2060)
    turns.final("tonight", 2.07, False)
    (ended,) = feed(turns, 2060, 2200)
    assert isinstance(ended, TurnEnded) and ended.text == "where is the show tonight"


def test_a_sound_in_the_pause_that_is_no_speech_delays_the_end_by_its_length() -> None:
    turns = TurnTaker(TurnConfig(speculate=False, settle_ms=300))
    turns.speech_started(0, 0.0, False)
    turns.speech_ended(1000, 1.0)
    feed(turns, 1000, 1260)
    turns.final("where is the show", 1.27, False)
    for ts in range(1280, 1400, 20):  # a cough the detector calls speech, never an onset
        turns.media(ts, ts / 1000, FRAME, True)
        assert turns.events() == []
    turns.media(1400, 1.4, FRAME, False)
    (ended,) = turns.events()
    assert isinstance(ended, TurnEnded) and ended.final_at == 1.4


def test_a_judges_verdict_during_speech_waits_for_quiet() -> None:
    turns = TurnTaker(TurnConfig(judge=True, speculate=False))
    turns.speech_started(0, 0.0, False)
    feed(turns, 0, 500)
    turns.speech_ended(500, 0.5)
    ask = judge_of(feed(turns, 500, 760))
    turns.final("Hello there", 0.78, False)
    turns.media(780, 0.78, FRAME, True)
    turns.verdict(ask.seq, 0.9, 0.79)
    assert turns.events() == []
    turns.media(800, 0.8, FRAME, False)
    (ended,) = turns.events()
    assert isinstance(ended, TurnEnded) and ended.reason == "judge"


def test_phrases_must_be_strings() -> None:
    with pytest.raises(ConfigError):
        TurnConfig(phrases=("ok", 3))  # type: ignore[arg-type]


def test_backchannels_and_stop_phrases() -> None:
    assert is_backchannel("Mm-hmm.") and is_backchannel("yeah, okay") and is_backchannel("uh huh")
    assert is_backchannel("all right") and is_backchannel("Uh-huh, I see")
    assert (
        not is_backchannel("okay but when") and not is_backchannel("") and not is_backchannel("no")
    )
    assert (
        has_stop_phrase("Wait!") and has_stop_phrase("no no") and has_stop_phrase("hold on a sec")
    )
    assert (
        not has_stop_phrase("nobody") and not has_stop_phrase("holding") and not has_stop_phrase("")
    )
    assert is_backchannel("sure", ("sure",)) and not is_backchannel("yeah", ("sure",))


# ---------------------------------------------------------------- barge-in: pause


def test_a_short_cough_over_the_line_does_nothing() -> None:
    turns = TurnTaker(TurnConfig(final_timeout_ms=500))
    turns.speech_started(1000, 1.0, bot_speaking=True)
    assert feed(turns, 1000, 1200) == []  # 200 ms: under the guard
    turns.speech_ended(1200, 1.2)
    events = feed(turns, 1200, 3000)
    assert not any(isinstance(e, (HoldLine, Interrupt, TurnEnded)) for e in events)


def test_a_longer_sound_holds_the_line_and_resumes_it_without_words() -> None:
    turns = TurnTaker(TurnConfig(guard_ms=300, resume_ms=1500, final_timeout_ms=500))
    turns.speech_started(1000, 1.0, bot_speaking=True)
    assert feed(turns, 1000, 1280) == []
    assert feed(turns, 1280, 1300) == [HoldLine(1000)]
    assert turns.held
    turns.speech_ended(1400, 1.4)
    events = feed(turns, 1300, 2880)
    assert CommitTranscript() in events and ResumeLine() not in events
    turns.final("", 1.7, bot_speaking=False)
    assert feed(turns, 2880, 2900) == [ResumeLine()]  # 1500 ms after the sound ended
    assert not turns.held and turns.turns == 0


def test_words_over_the_line_interrupt() -> None:
    turns = TurnTaker(TurnConfig())
    turns.speech_started(1000, 1.0, bot_speaking=True)
    feed(turns, 1000, 1300)
    assert turns.held
    turns.partial("what time", 1.5, bot_speaking=False)  # held: hotline is silent
    assert turns.events() == [Interrupt("words", 1000)]
    assert not turns.held


def test_words_before_the_guard_interrupt_too() -> None:
    turns = TurnTaker(TurnConfig())
    turns.speech_started(1000, 1.0, bot_speaking=True)
    turns.partial("when", 1.2, bot_speaking=True)
    assert turns.events() == [Interrupt("words", 1000)]


@pytest.mark.parametrize("text", ["mm-hm", "yeah", "uh-huh", "okay", "right"])
def test_a_backchannel_never_interrupts_and_is_no_turn(text: str) -> None:
    turns = TurnTaker(TurnConfig())
    turns.speech_started(1000, 1.0, bot_speaking=True)
    turns.partial(text, 1.1, bot_speaking=True)
    feed(turns, 1000, 1400)  # long enough to hold the line
    assert turns.held
    turns.speech_ended(1400, 1.4)
    events = feed(turns, 1400, 1660)
    assert CommitTranscript() in events
    turns.final(text, 1.7, bot_speaking=False)
    assert turns.events() == [ResumeLine()]  # at once, not after resume_ms
    assert not turns.in_turn and turns.turns == 0 and turns.backchannels == 1


@pytest.mark.parametrize("text", ["stop", "wait", "no", "hold on", "okay wait"])
def test_a_stop_phrase_always_interrupts(text: str) -> None:
    turns = TurnTaker(TurnConfig())
    turns.speech_started(1000, 1.0, bot_speaking=True)
    turns.partial(text, 1.1, bot_speaking=True)
    assert turns.events() == [Interrupt("words", 1000)]


def test_backchannels_are_a_turn_when_hotline_is_silent() -> None:
    turns = TurnTaker(TurnConfig())
    turns.speech_started(0, 0.0, bot_speaking=False)
    turns.speech_ended(500, 0.5)
    feed(turns, 500, 760)
    turns.final("yeah", 0.8, bot_speaking=False)
    feed(turns, 760, 1000)
    assert turns.turns == 1


def test_pause_falls_back_to_speech_while_the_recogniser_is_down() -> None:
    turns = TurnTaker(TurnConfig())
    turns.stt_down()
    turns.speech_started(100, 0.1, bot_speaking=True)
    assert turns.events() == [Interrupt("speech", 100)]


def test_a_held_line_is_released_when_the_recogniser_goes_down() -> None:
    turns = TurnTaker(TurnConfig())
    turns.speech_started(0, 0.0, bot_speaking=True)
    feed(turns, 0, 400)
    assert turns.held
    turns.stt_down()
    assert turns.events() == [ResumeLine()]


def test_new_config_is_checked() -> None:
    for bad in (
        {"pause_ms": -1},
        {"pause_ms": 3000, "fallback_ms": 2000},
        {"threshold": 1.5},
        {"guard_ms": True},
        {"backchannels": ["yeah"]},
        {"stop_phrases": ("",)},
    ):
        with pytest.raises(ConfigError):
            TurnConfig(**bad)


_step2 = st.one_of(
    _step,
    st.tuples(st.just("verdict"), st.floats(0.0, 1.0), st.booleans()),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(_step2, max_size=50), st.booleans())
def test_two_step_any_sequence_keeps_the_contract(
    steps: list[tuple[str, object, bool]], judge: bool
) -> None:
    """Two-step endpointing, any order: every turn has words, speculations pair up, a held line
    is released or interrupted exactly once."""
    turns = TurnTaker(TurnConfig(judge=judge, final_timeout_ms=800, fallback_ms=1000))
    now = 0.0
    ts = 0
    held = False
    speculated = False
    seq = 0
    for kind, arg, speaking in steps:
        now += 0.02
        if kind == "start":
            turns.speech_started(ts, now, speaking)
        elif kind == "end":
            turns.speech_ended(ts, now)
        elif kind == "media":
            ts += int(arg) % 700  # type: ignore[call-overload]
            turns.media(ts, now, FRAME)
        elif kind == "partial":
            turns.partial(str(arg), now, speaking)
        elif kind == "final":
            turns.final(str(arg), now, speaking)
        elif kind == "poll":
            turns.poll(now + int(arg) / 1000)  # type: ignore[call-overload]
        elif kind == "verdict":
            turns.verdict(seq, float(arg), now)  # type: ignore[arg-type]
        elif kind == "down":
            turns.stt_down()
        else:
            turns.stt_up()
        for event in turns.events():
            if isinstance(event, TurnEnded):
                assert has_words(event.text)
                speculated = False
            elif isinstance(event, Interrupt):
                assert speaking or held
                held = False
            elif isinstance(event, HoldLine):
                assert not held
                held = True
            elif isinstance(event, ResumeLine):
                assert held
                held = False
            elif isinstance(event, JudgeTurn):
                assert judge and 0 < len(event.audio) <= JUDGE_AUDIO_BYTES
                seq = event.seq
            elif isinstance(event, Speculate):
                assert has_words(event.text) and not speculated
                speculated = True
            elif isinstance(event, Unspeculate):
                assert speculated
                speculated = False


def test_a_yes_begun_over_the_end_of_a_line_is_an_answer_once_the_line_is_over() -> None:
    turns = TurnTaker(TurnConfig())
    turns.speech_started(1000, 1.0, bot_speaking=True)  # overlaps the line's last words
    turns.speech_ended(1200, 1.2)
    feed(turns, 1200, 1460)
    turns.final("Yes.", 1.5, bot_speaking=False)  # the line has ended meanwhile
    feed(turns, 1460, 1600)
    assert turns.turns == 1 and turns.backchannels == 0
