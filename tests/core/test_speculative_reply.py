"""Speculative replies on the Call (sans-I/O): a reply opened while the brain answers a turn
that may go on renders as usual (its TTS starts, its audio is framed) but nothing of it is sent,
written to the transcript or counted as speaking until it is confirmed; retracted, it is dropped
unheard, and the lines around it play as if it had never been."""

from __future__ import annotations

from hotline.core.actions import (
    CancelTTS,
    StartTTS,
    TTSClose,
    UtteranceEnded,
    UtteranceOutcome,
    UtteranceSource,
)
from hotline.core.call import Call
from hotline.core.events import TTSAudio, TTSFinal
from tests.core.test_call import audio, frames_of, sent, started_call


def _greeted(now: float = 0.0) -> Call:
    """A started call whose greeting (40 ms) has been rendered and sent."""
    call = started_call(now, mark_every_frames=0)
    call.receive_tts(1, audio(40), now)
    call.receive_tts(1, TTSFinal(), now)
    call.pump(now)
    call.data_to_send()
    call.actions()
    return call


def _hotline_lines(call: Call) -> list[str]:
    assert call.transcript is not None
    return [e.text for e in call.transcript.entries if e.speaker.value == "hotline"][1:]


def _speculative_reply(call: Call, text: str, now: float) -> int:
    call.lines.speculate()
    uid = call.lines.reply_open(now)
    call.lines.reply_text(uid, text, now)
    call.lines.reply_close(uid, now)
    return uid


def test_a_speculative_reply_renders_unheard_until_confirmed() -> None:
    call = _greeted()
    uid = _speculative_reply(call, "The tour starts in May.", 1.0)
    assert call.actions() == [StartTTS(uid, "The tour starts in May.", True), TTSClose(uid)]
    call.receive_tts(uid, audio(200, 0x22), 1.1)  # its first audio, in hand
    call.pump(1.2)
    assert frames_of(sent(call)) == []  # nothing goes out
    assert not call.is_speaking(5.0) and call.next_deadline(5.0) is None
    assert _hotline_lines(call) == []  # nor is it written as said
    call.lines.confirm(1.5)
    assert _hotline_lines(call) == ["The tour starts in May."]
    call.pump(1.5)
    frames = frames_of(sent(call))
    assert frames and all(f == b"\x22" * 160 for f in frames)  # at once, the audio in hand
    assert call.is_speaking(1.5)


def test_a_retracted_reply_is_dropped_unheard_and_the_next_one_plays_clean() -> None:
    call = _greeted()
    uid = _speculative_reply(call, "Sorry, I only know", 1.0)
    call.actions()
    # An odd amount of audio: the framer holds a partial frame of it when it is retracted.
    call.receive_tts(uid, TTSAudio(b"\x22" * 1000, None, None), 1.1)
    call.lines.retract(1.2)
    assert call.actions() == [
        CancelTTS(uid),
        UtteranceEnded(
            uid, UtteranceSource.BRAIN, UtteranceOutcome.DROPPED, "speculative reply retracted"
        ),
    ]
    assert not call.receive_tts(uid, audio(20, 0x22), 1.3)  # late audio: not wanted
    nxt = call.say("We play Portland on the twelfth.", 1.4)
    assert call.actions() == [StartTTS(nxt, "We play Portland on the twelfth.")]
    call.receive_tts(nxt, audio(100, 0x33), 1.5)
    call.receive_tts(nxt, TTSFinal(), 1.5)
    call.pump(1.5)
    frames = frames_of(sent(call))
    assert b"".join(frames) == b"\x33" * 800  # none of the retracted reply's bytes
    assert _hotline_lines(call) == ["We play Portland on the twelfth."]


def test_a_speculative_reply_waits_behind_what_plays_and_leaves_it_alone_when_retracted() -> None:
    call = _greeted()
    line = call.say("Press 1 for the tour.", 1.0)
    call.actions()
    uid = _speculative_reply(call, "It is out in May.", 1.0)
    assert call.actions() == []  # queued: one TTS at a time
    call.receive_tts(line, audio(100, 0x44), 1.1)
    call.receive_tts(line, TTSFinal(), 1.1)
    assert call.actions() == [StartTTS(uid, "It is out in May.", True), TTSClose(uid)]
    call.receive_tts(uid, audio(100, 0x22), 1.2)
    call.pump(1.2)
    msgs = sent(call)
    assert b"".join(frames_of(msgs)) == b"\x44" * 800  # the line, not the reply
    assert msgs[-1]["event"] == "mark" and call.is_speaking(1.2)
    call.lines.retract(1.3)
    call.pump(3.0)
    assert sent(call) == []  # nothing of the reply, ever
    assert _hotline_lines(call) == ["Press 1 for the tour."]


def test_only_replies_opened_while_speculating_are_held() -> None:
    call = _greeted()
    uid = _speculative_reply(call, "One.", 1.0)
    call.lines.confirm(1.1)
    call.actions()
    later = call.lines.reply_open(2.0)  # after the confirmation: an ordinary reply
    call.lines.reply_text(later, "Two.", 2.0)
    call.lines.reply_close(later, 2.0)
    call.receive_tts(uid, audio(20, 0x22), 2.0)
    call.receive_tts(uid, TTSFinal(), 2.0)
    call.receive_tts(later, audio(20, 0x33), 2.0)
    call.pump(2.0)
    assert frames_of(sent(call)) == [b"\x22" * 160, b"\x33" * 160]


def test_a_line_queued_behind_a_speculative_reply_still_counts_as_speaking() -> None:
    """A speculative reply waiting for its first words, and the script's line behind it (a key
    pressed meanwhile): the call is about to speak, whatever the reply's fate."""
    call = _greeted()
    call.pump(60.0)
    call.data_to_send()
    assert not call.is_speaking(60.0)
    call.lines.speculate()
    call.lines.reply_open(60.0)  # no words yet
    assert not call.is_speaking(60.0)
    call.say("Press 1 for the tour.", 60.0)
    assert call.is_speaking(60.0)
