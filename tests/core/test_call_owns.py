"""What the Call owns end to end, driven without a shell: the transcript, the brain's streamed
reply (Replies), the first-slice rule, ready-made audio, and the folded utterance bookkeeping."""

from __future__ import annotations

from typing import Any

import pytest

from hotline.core.actions import (
    BargeIn,
    CancelTTS,
    Hangup,
    LineInterrupted,
    StartTTS,
    TTSClose,
    TTSText,
    UtteranceEnded,
    UtteranceOutcome,
    UtteranceSource,
)
from hotline.core.call import Call
from hotline.core.callstate import CallStateError
from hotline.core.events import Alignment, TTSAudio, TTSFinal
from hotline.core.render import FIRST_SLICE
from hotline.core.transcript import Speaker
from hotline.core.turns import TurnConfig
from hotline.core.utterances import Utterances
from tests.core.test_call import SCRIPT, audio, frames_of, make_call, mark_msg, sent, start_msg
from tests.core.test_call_listen import Clock, finish_greeting, listening


def entries(call: Call) -> list[tuple[str, str, int | None]]:
    assert call.transcript is not None
    return [(e.speaker.value, e.text, e.utterance_id) for e in call.transcript.entries]


# ------------------------------------------------------------------ transcript


def test_no_transcript_before_accept_and_the_greeting_is_its_first_line() -> None:
    call = make_call()
    call.receive_text(start_msg(), 0.0)
    assert call.transcript is None
    call.accept(5.0)
    assert entries(call) == [("hotline", SCRIPT.greeting, 1)]
    assert call.transcript is not None and call.transcript.entries[0].at == 0.0


def test_a_streamed_reply_joins_the_transcript_once_whole() -> None:
    call = listening()
    finish_greeting(call)
    uid = call.lines.reply_open(1.0)
    call.lines.reply_text(uid, "Wren is", 1.1)
    call.lines.reply_text(uid, " on tour.", 1.2)
    assert entries(call) == [("hotline", SCRIPT.greeting, 1)]  # not before its close
    call.lines.reply_close(uid, 1.3)
    assert entries(call)[-1] == ("hotline", "Wren is on tour.", uid)
    call.lines.reply_close(uid, 1.4)
    assert len(entries(call)) == 2


def test_a_cut_streamed_reply_joins_with_what_it_had_then_what_was_heard() -> None:
    call = listening()
    finish_greeting(call)
    uid = call.lines.reply_open(1.0)
    call.lines.reply_text(uid, "Wren is on tour", 1.0)
    chars = "Wren is on tour"
    al = Alignment(tuple(chars), tuple(i * 50 for i in range(len(chars))), (50,) * len(chars))
    call.receive_tts(uid, TTSAudio(b"\x55" * 8 * 750, al, None), 1.0)
    call.pump(1.0)
    call.data_to_send()
    clock = Clock(call, ts=1000, now=1.0)
    clock.frames(300, speech=True)  # the caller talks over it
    cut = [a for a in clock.take() if isinstance(a, LineInterrupted)]
    assert cut and cut[0].utterance_id == uid
    said = entries(call)
    assert said[-2] == ("hotline", "Wren is on tour", uid)
    assert said[-1][0] == "heard" and said[-1][2] == uid
    assert "Wren is on tour".startswith(said[-1][1])


def test_caller_turns_and_ready_made_audio_are_in_the_transcript() -> None:
    call = listening()
    finish_greeting(call)
    clock = Clock(call, now=1.0)
    clock.frames(600, speech=True)
    clock.frames(600, speech=False)
    call.transcript_final("What are the tour dates?", clock.now)
    call.lines.play_ulaw(b"\x55" * 800, clock.now, label="[digits 3]")
    assert call.transcript is not None
    speakers = [e.speaker for e in call.transcript.entries]
    assert speakers == [Speaker.HOTLINE, Speaker.CALLER, Speaker.HOTLINE]
    assert entries(call)[1:] == [
        ("caller", "What are the tour dates?", None),
        ("hotline", "[digits 3]", 2),
    ]


# ------------------------------------------------------------------ Replies


def test_replies_stream_pieces_into_one_reply() -> None:
    call = listening()
    finish_greeting(call)
    call.replies.say("Wren", 1.0, last=False)
    call.replies.say(" plays.", 1.1, last=True)
    call.replies.say("", 1.2, last=True)  # an empty, closed reply: nothing
    assert call.actions() == [
        StartTTS(2, "Wren", streaming=True),
        TTSText(2, " plays."),
        TTSClose(2),
    ]
    assert call.replies.open is None


def test_a_cut_reply_drops_its_remaining_pieces_until_last() -> None:
    call = listening()
    finish_greeting(call)
    call.replies.say("One two three four five six", 1.0, last=False)
    call.receive_tts(2, audio(1000), 1.0)
    call.pump(1.0)
    call.data_to_send()
    clock = Clock(call, ts=1000, now=1.0)
    clock.frames(300, speech=True)
    assert any(isinstance(a, BargeIn) for a in clock.take())
    assert call.replies.dead and call.replies.open is None
    call.replies.say(" seven", clock.now, last=False)  # dropped: the caller cut it
    call.replies.say(" eight.", clock.now, last=True)  # dropped, and the reply is over
    assert not call.replies.dead
    assert call.actions() == []
    call.replies.say("Yes?", clock.now, last=True)  # the next reply is heard
    assert StartTTS(3, "Yes?", streaming=True) in call.actions()


def test_a_preemptible_reply_is_cut_by_the_next_one() -> None:
    call = listening()
    finish_greeting(call)
    call.replies.say("Let me check.", 1.0, last=True, preemptible=True)
    call.actions()
    call.replies.say("Found it.", 1.1, last=True)
    acts = call.actions()
    assert CancelTTS(2) in acts
    assert UtteranceEnded(2, UtteranceSource.BRAIN, UtteranceOutcome.INTERRUPTED) in acts
    assert StartTTS(3, "Found it.", streaming=True) in acts


def test_a_preemptible_reply_is_cut_by_the_brains_audio_too() -> None:
    call = listening()
    finish_greeting(call)
    call.replies.say("Hold on.", 1.0, last=True, preemptible=True)
    call.actions()
    uid = call.replies.play(b"\x55" * 800, 1.1, label="[audio]")
    acts = call.actions()
    assert CancelTTS(2) in acts and uid == 3
    assert call.replies.preemptible is False


def test_replies_close_completes_an_open_reply() -> None:
    call = listening()
    finish_greeting(call)
    call.replies.say("Half", 1.0, last=False)
    call.replies.close(1.1)
    assert call.actions()[-1] == TTSClose(2)
    call.replies.close(1.2)  # nothing open: nothing happens
    assert call.actions() == []


def test_a_new_reply_needs_an_active_call() -> None:
    call = listening()
    call.hangup(0.0)
    with pytest.raises(CallStateError):
        call.replies.say("Too late.", 0.1, last=True)


# ------------------------------------------------------------------ first slice


def _first_slice_call(**kw: Any) -> Call:
    call = make_call(first_slice_bytes=FIRST_SLICE, **kw)
    call.receive_text(start_msg(), 0.0)
    call.accept(0.0)
    call.actions()
    return call


def test_a_big_first_message_goes_out_in_two_steps() -> None:
    call = _first_slice_call()
    call.receive_tts(1, audio(1000), 0.0)  # 8000 bytes
    assert call.holds_audio
    call.pump(0.0)
    first = frames_of(sent(call))
    assert sum(len(f) for f in first) == FIRST_SLICE - FIRST_SLICE % 160  # whole frames only
    assert call.render_held(1, 0.0)
    assert not call.holds_audio
    call.receive_tts(1, TTSFinal(), 0.0)
    call.pump(0.0)
    rest = frames_of(sent(call))
    assert b"".join(first + rest) == b"\x55" * 8000


def test_held_audio_is_converted_before_the_next_event_and_dropped_on_a_cut() -> None:
    call = _first_slice_call()
    call.receive_tts(1, audio(1000), 0.0)
    call.receive_tts(1, audio(100, byte=0x66), 0.0)  # the shell did not wait: order is kept
    assert not call.holds_audio
    call.receive_tts(1, TTSFinal(), 0.0)
    out = b"".join(frames_of(_drain(call)))
    assert out == b"\x55" * 8000 + b"\x66" * 800
    again = _first_slice_call()
    again.receive_tts(1, audio(1000), 0.0)
    again.say("Cut.", 0.0, interrupt=True)
    assert not again.holds_audio
    assert not again.render_held(1, 0.0)


def test_a_small_first_message_is_not_held() -> None:
    call = _first_slice_call()
    call.receive_tts(1, TTSAudio(b"\x55" * FIRST_SLICE, None, None), 0.0)
    assert not call.holds_audio


def _drain(call: Call) -> list[dict[str, Any]]:
    out = []
    now = 0.0
    for _ in range(100):
        call.pump(now)
        out += sent(call)
        now += 0.5
    return out


# ------------------------------------------------------------------ folded bookkeeping


def test_ids_are_allocated_once_for_every_kind_of_line() -> None:
    call = listening()
    finish_greeting(call)
    ids = [
        call.say("Said.", 1.0),
        call.lines.reply_open(1.0),
        call.lines.play_ulaw(b"\x55" * 160, 1.0),
    ]
    assert ids == [2, 3, 4] and call.utterances_total == 4


def test_now_playing_prefers_the_rendering_line_then_playing_then_unsent_then_queued() -> None:
    utts = Utterances([])
    a = utts.add("a", UtteranceSource.SAY, 0.0)
    assert utts.now_playing(None) is None
    assert utts.now_playing(None, queued=True) is a
    b = utts.add("b", UtteranceSource.SAY, 0.0)
    assert utts.now_playing(b) is b
    utts.playing.append(utts.queue.popleft())
    assert utts.now_playing(b) is a
    utts.current = utts.queue.popleft()
    assert utts.now_playing(None) is b
    assert utts.last() is b


def test_drop_all_reports_each_line_once_and_cancels_the_rendering_one() -> None:
    actions: list[Any] = []
    utts = Utterances(actions)
    playing = utts.add("p", UtteranceSource.SCRIPT, 0.0)
    utts.playing.append(utts.queue.popleft())
    current = utts.add("c", UtteranceSource.SAY, 0.0)
    utts.current = utts.queue.popleft()
    queued = utts.add("q", UtteranceSource.BRAIN, 0.0)
    assert utts.drop_all(UtteranceOutcome.INTERRUPTED)
    assert actions == [
        UtteranceEnded(playing.id, UtteranceSource.SCRIPT, UtteranceOutcome.INTERRUPTED),
        CancelTTS(current.id),
        UtteranceEnded(current.id, UtteranceSource.SAY, UtteranceOutcome.INTERRUPTED),
        UtteranceEnded(queued.id, UtteranceSource.BRAIN, UtteranceOutcome.DROPPED),
    ]
    assert not utts.drop_all(UtteranceOutcome.INTERRUPTED)
    assert len(actions) == 4


def test_the_goodbye_safety_hangup_is_armed_once_its_end_mark_is_out() -> None:
    call = listening(turns=TurnConfig())
    finish_greeting(call)
    uid = call.say("Last words.", 1.0)
    call.receive_tts(uid, audio(100), 1.0)
    call.receive_tts(uid, TTSFinal(), 1.0)
    call.pump(1.0)
    call.data_to_send()
    call.finish(1.0)  # its end mark is out: the deadline is armed here
    deadline = call.next_deadline(1.0)
    assert deadline is not None and deadline == pytest.approx(1.1 + call.pacer.mark_grace)
    call.receive_text(mark_msg(f"u{uid}-end"), 1.2)
    assert Hangup("goodbye played") in call.actions()
