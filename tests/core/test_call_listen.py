"""The listening Call: caller audio sink, turns, streamed replies, heard text, turn latency."""

from __future__ import annotations

from typing import Any

import pytest

from hotline.core.actions import (
    LATENCY_STAGES,
    BargeIn,
    CallerTurn,
    CancelTTS,
    CommitSpeech,
    DigitPressed,
    FirstFrame,
    Hangup,
    LineInterrupted,
    StartTTS,
    TTSClose,
    TTSText,
    TurnLatency,
    UtteranceEnded,
    UtteranceOutcome,
    UtteranceSource,
)
from hotline.core.call import Call
from hotline.core.callstate import CallState, CallStateError
from hotline.core.events import Alignment, TTSAudio, TTSFinal
from hotline.core.turns import BargeInMode, TurnConfig
from tests.core.test_call import (
    CALL_SID,
    SCRIPT,
    SILENCE,
    _tone_frame,
    audio,
    dtmf_msg,
    make_call,
    mark_msg,
    media_msg,
    start_msg,
    twilio,
)


def listening(barge_in: BargeInMode = BargeInMode.SPEECH, **kw: Any) -> Call:
    kw.setdefault("turns", TurnConfig(silence_ms=400, final_timeout_ms=1000, barge_in=barge_in))
    call = make_call(recognise=True, **kw)
    call.receive_text(start_msg(), 0.0)
    call.actions()
    call.accept(0.0)
    assert call.actions() == [StartTTS(1, SCRIPT.greeting)]
    return call


class Clock:
    """Sends real-time 20 ms inbound frames and keeps the media timestamp and ``now``."""

    def __init__(self, call: Call, ts: int = 0, now: float = 0.0) -> None:
        self.call = call
        self.ts = ts
        self.now = now
        self.actions: list[Any] = []

    def frames(self, ms: int, *, speech: bool) -> None:
        for _ in range(ms // 20):
            payload = _tone_frame(self.ts * 8) if speech else SILENCE
            self.call.receive_text(media_msg(self.ts, payload), self.now)
            self.ts += 20
            self.now += 0.020
            self.call.pump(self.now)
            self.call.data_to_send()
            self.actions += self.call.actions()

    def take(self) -> list[Any]:
        out, self.actions = self.actions, []
        return out


def finish_greeting(call: Call, now: float = 0.0) -> None:
    call.receive_tts(1, audio(100), now)
    call.receive_tts(1, TTSFinal(), now)
    call.pump(now)
    call.data_to_send()
    call.receive_text(mark_msg("u1-end"), now + 0.2)
    call.actions()


def test_caller_audio_is_kept_for_the_recogniser_from_start_on() -> None:
    call = make_call(recognise=True, turns=TurnConfig())
    call.receive_text(start_msg(), 0.0)
    call.receive_text(media_msg(0, b"\x01" * 160), 0.0)
    call.receive_text(media_msg(20, b"\x02" * 160), 0.02)
    assert call.audio_to_recognise() == [b"\x01" * 160, b"\x02" * 160]
    assert call.audio_to_recognise() == []  # drained
    call.accept(0.0)
    call.receive_text(media_msg(40, b"\x03" * 160), 0.04)
    call.receive_text(twilio("stop", stop={"accountSid": "AC00", "callSid": CALL_SID}), 0.06)
    call.receive_text(media_msg(60, b"\x04" * 160), 0.06)  # after the call ended: ignored
    assert call.audio_to_recognise() == [b"\x03" * 160]


def test_a_call_that_does_not_recognise_keeps_no_audio() -> None:
    call = make_call(turns=TurnConfig())
    call.receive_text(start_msg(), 0.0)
    call.receive_text(media_msg(0, b"\x01" * 160), 0.0)
    assert call.audio_to_recognise() == []


def test_stop_recognising_keeps_no_more_audio_and_the_call_goes_on() -> None:
    call = make_call(recognise=True, turns=TurnConfig())
    call.receive_text(start_msg(), 0.0)
    call.accept(0.0)
    call.receive_text(media_msg(0, SILENCE), 0.0)
    assert call.audio_to_recognise() == [SILENCE]
    call.stop_recognising(0.01)  # the shell's feed broke
    call.receive_text(media_msg(20, SILENCE), 0.02)
    assert call.audio_to_recognise() == []
    assert call.state is CallState.ACTIVE
    assert call.turns is not None and not call.turns.stt_available


def test_a_turn_commits_then_ends_with_the_final_transcript() -> None:
    call = listening()
    finish_greeting(call)
    clock = Clock(call, now=1.0)
    clock.frames(600, speech=True)
    call.transcript_partial("what are the", clock.now)
    clock.frames(600, speech=False)
    acts = clock.take()
    assert CommitSpeech() in acts
    assert not any(isinstance(a, CallerTurn) for a in acts)
    final_at = clock.now + 0.05
    call.transcript_final("What are the tour dates?", final_at)
    (turn,) = [a for a in call.actions() if isinstance(a, CallerTurn)]
    assert turn.text == "What are the tour dates?"
    assert turn.ended_at <= turn.silence_at <= turn.final_at == final_at
    # The caller stopped about 400 ms (the silence) before the silence was judged long enough.
    assert 0.3 <= turn.silence_at - turn.ended_at <= 0.7
    assert call.caller_turns == 1


def test_a_cough_without_words_is_no_turn() -> None:
    call = listening()
    finish_greeting(call)
    clock = Clock(call, now=1.0)
    clock.frames(200, speech=True)
    clock.frames(600, speech=False)
    assert CommitSpeech() in clock.take()
    call.transcript_final("", clock.now)
    clock.frames(1200, speech=False)  # the final-transcript wait runs out
    assert not any(isinstance(a, CallerTurn) for a in clock.take() + call.actions())


def test_words_mode_a_cough_does_not_cut_the_line_a_word_does() -> None:
    call = listening(BargeInMode.WORDS)
    call.receive_tts(1, audio(3000), 0.0)
    clock = Clock(call)
    clock.frames(200, speech=True)  # a 200 ms cough while the greeting plays
    clock.frames(400, speech=False)
    assert not any(isinstance(a, BargeIn) for a in clock.take())
    clock.frames(300, speech=True)
    call.transcript_partial("wait", clock.now)
    acts = call.actions()
    assert any(isinstance(a, BargeIn) for a in acts)
    (cut,) = [a for a in acts if isinstance(a, LineInterrupted)]
    assert cut.utterance_id == 1 and cut.source is UtteranceSource.SCRIPT
    assert 0 < cut.heard_ms < 3000


def test_speech_mode_cuts_on_onset_and_words_falls_back_while_stt_is_down() -> None:
    call = listening(BargeInMode.SPEECH)
    call.receive_tts(1, audio(3000), 0.0)
    clock = Clock(call)
    clock.frames(200, speech=True)
    assert any(isinstance(a, BargeIn) for a in clock.take())

    call = listening(BargeInMode.WORDS)
    call.stt_down(0.0)
    call.receive_tts(1, audio(3000), 0.0)
    clock = Clock(call)
    clock.frames(200, speech=True)
    assert any(isinstance(a, BargeIn) for a in clock.take())


def test_without_turns_the_onset_barges_in_as_before() -> None:
    call = make_call()
    call.receive_text(start_msg(), 0.0)
    call.accept(0.0)
    call.actions()
    call.receive_tts(1, audio(3000), 0.0)
    clock = Clock(call)
    clock.frames(200, speech=True)
    acts = clock.take()
    assert any(isinstance(a, BargeIn) for a in acts)
    assert not any(isinstance(a, LineInterrupted) for a in acts)


# ------------------------------------------------------------------ streamed replies


def test_streamed_reply_pieces_go_to_tts_as_they_arrive() -> None:
    call = listening()
    finish_greeting(call)
    uid = call.lines.reply_open(1.0)
    assert call.actions() == []  # no words yet: nothing to voice
    assert call.lines.reply_text(uid, "Wren is", 1.1)
    assert call.actions() == [StartTTS(uid, "Wren is", streaming=True)]
    assert call.lines.reply_text(uid, " on tour.", 1.2)
    assert call.actions() == [TTSText(uid, " on tour.")]
    assert call.lines.reply_close(uid, 1.3)
    assert call.actions() == [TTSClose(uid)]
    assert not call.lines.reply_text(uid, "late", 1.4)
    assert not call.lines.reply_close(uid, 1.4)


def test_a_queued_streamed_reply_starts_with_its_text_so_far() -> None:
    call = listening()
    uid = call.lines.reply_open(0.1)
    call.lines.reply_text(uid, "One", 0.1)
    call.lines.reply_text(uid, " two.", 0.2)
    call.lines.reply_close(uid, 0.3)
    assert call.actions() == []  # the greeting still synthesises
    call.receive_tts(1, audio(100), 0.4)
    call.receive_tts(1, TTSFinal(), 0.4)
    acts = call.actions()
    assert StartTTS(uid, "One two.", streaming=True) in acts
    assert acts[-1] == TTSClose(uid)


def test_a_reply_closed_without_words_is_dropped() -> None:
    call = listening()
    finish_greeting(call)
    first = call.lines.reply_open(1.0)
    second = call.lines.reply_open(1.0)
    call.lines.reply_text(second, "Next.", 1.0)
    call.lines.reply_close(first, 1.1)
    acts = call.actions()
    assert UtteranceEnded(
        first, UtteranceSource.BRAIN, UtteranceOutcome.DROPPED, "empty reply"
    ) in (acts)
    assert StartTTS(second, "Next.", streaming=True) in acts


def test_reply_needs_an_active_call() -> None:
    call = make_call(turns=TurnConfig())
    with pytest.raises(CallStateError):
        call.lines.reply_open(0.0)


# ------------------------------------------------------------------ heard text


def _aligned(text: str, ms_per_char: int) -> TTSAudio:
    chars = tuple(text)
    starts = tuple(i * ms_per_char for i in range(len(chars)))
    durs = tuple(ms_per_char for _ in chars)
    return TTSAudio(b"\x55" * (len(chars) * ms_per_char * 8), Alignment(chars, starts, durs), None)


def test_line_interrupted_reports_the_heard_words_from_the_alignment() -> None:
    call = listening()
    finish_greeting(call)
    uid = call.lines.reply_open(1.0)
    call.lines.reply_text(uid, "Wren is on the road this spring.", 1.0)
    call.actions()
    # 32 characters at 50 ms each: 1.6 s of audio in two chunks.
    call.receive_tts(uid, _aligned("Wren is on the r", 50), 1.0)
    call.receive_tts(uid, _aligned("oad this spring.", 50), 1.0)
    for step in range(80):  # pump as the sender would, 20 ms at a time
        call.pump(1.0 + step * 0.02)
        call.data_to_send()
    call.actions()
    # 0.52 s after playback began: "Wren is on" (chars 0..10 started by 500 ms).
    call.say("Stop.", 1.52, interrupt=True)
    (cut,) = [a for a in call.actions() if isinstance(a, LineInterrupted)]
    assert cut.utterance_id == uid
    assert cut.heard_text == "Wren is on"
    assert cut.heard_ms == pytest.approx(520, abs=20)
    assert cut.text == "Wren is on the road this spring."


# ------------------------------------------------------------------ digits, finish


def test_brain_digits_cut_and_report_the_key() -> None:
    call = listening(brain_digits=True)
    call.receive_tts(1, audio(500), 0.0)
    call.pump(0.0)
    call.data_to_send()
    call.actions()
    call.receive_text(dtmf_msg("5"), 0.1)
    acts = call.actions()
    assert CancelTTS(1) in acts and acts[-1] == DigitPressed("5")
    assert not any(isinstance(a, StartTTS) for a in acts)


def test_finish_lets_the_reply_play_then_hangs_up() -> None:
    call = listening()
    finish_greeting(call)
    uid = call.say("Bye for now.", 1.0)
    call.finish(1.0)
    assert call.state is CallState.CLOSING
    call.receive_tts(uid, audio(100), 1.0)
    call.receive_tts(uid, TTSFinal(), 1.0)
    call.pump(1.0)
    call.data_to_send()
    call.actions()
    call.receive_text(mark_msg(f"u{uid}-end"), 1.2)
    assert any(isinstance(a, Hangup) for a in call.actions())


def test_finish_with_nothing_to_play_says_the_goodbye() -> None:
    call = listening()
    finish_greeting(call)
    call.finish(1.0, SCRIPT.goodbye)
    acts = call.actions()
    assert acts == [StartTTS(2, SCRIPT.goodbye)]
    call.finish(1.0)  # not active any more: a no-op
    assert call.actions() == []


# ------------------------------------------------------------------ turn latency


def test_turn_latency_is_reported_with_the_replys_first_frame() -> None:
    call = listening()
    finish_greeting(call)
    clock = Clock(call, now=1.0)
    clock.frames(600, speech=True)
    clock.frames(600, speech=False)
    clock.take()
    call.transcript_final("tour dates", clock.now + 0.1)
    (turn,) = [a for a in call.actions() if isinstance(a, CallerTurn)]
    call.turn_handed(turn.final_at + 0.001)
    uid = call.lines.reply_open(turn.final_at + 0.002)
    call.lines.reply_text(uid, "Wren tours", turn.final_at + 0.300)  # the model's first token
    call.actions()
    call.receive_tts(uid, audio(200), turn.final_at + 0.500)  # the voice's first audio
    call.pump(turn.final_at + 0.501)
    call.data_to_send()
    acts = call.actions()
    (first,) = [a for a in acts if isinstance(a, FirstFrame)]
    (lat,) = [a for a in acts if isinstance(a, TurnLatency)]
    assert lat.utterance_id == uid and lat.message_index == first.message_index
    stages = lat.stages(turn.final_at + 0.502)
    assert set(stages) == {*LATENCY_STAGES, "total", "hotline"}
    assert stages["recogniser"] == pytest.approx(turn.final_at - turn.silence_at)
    assert stages["dispatch"] == pytest.approx(0.001)
    assert stages["model"] == pytest.approx(0.299)
    assert stages["to_tts"] == pytest.approx(0.0)
    assert stages["voice"] == pytest.approx(0.2)
    assert stages["playout"] == pytest.approx(0.002)
    assert stages["hotline"] == pytest.approx(0.003)
    assert stages["total"] == pytest.approx(sum(stages[s] for s in LATENCY_STAGES))
    # Only the first reply after a turn carries it.
    later = call.say("More.", turn.final_at + 1.0)
    call.receive_tts(later, audio(100), turn.final_at + 1.0)
    call.pump(turn.final_at + 1.0)
    assert not any(isinstance(a, TurnLatency) for a in call.actions())


def test_play_ulaw_plays_in_turn_without_tts() -> None:
    call = listening()
    uid = call.lines.play_ulaw(b"\x11" * 800, 0.0, label="[tones]")
    assert call.actions() == []  # the greeting is still being synthesised
    call.receive_tts(1, audio(100), 0.0)
    call.receive_tts(1, TTSFinal(), 0.0)
    acts = call.actions()
    assert not any(isinstance(a, StartTTS) for a in acts)
    for step in range(20):
        call.pump(step * 0.02)
    frames = [m for m in call.data_to_send() if '"media"' in m]
    assert len(frames) == 5 + 5  # 100 ms of greeting + 100 ms of the audio
    assert any(isinstance(a, FirstFrame) and a.utterance_id == uid for a in call.actions())
    with pytest.raises(ValueError):
        call.lines.play_ulaw(b"", 1.0)
