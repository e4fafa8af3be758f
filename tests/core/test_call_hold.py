"""``pause`` barge-in on a real Call: a held line resumes from where the caller stopped hearing
it (every byte heard once, in order, marks right), words cut it, backchannels do not; the
filler; the judge's verdict through the Call. Twilio's side is played out here in real time
(:class:`Phone`): media is heard 8 bytes a millisecond, ``clear`` drops what is queued and
echoes every pending mark at once, a mark echoes when playback reaches it."""

from __future__ import annotations

import base64
import json
from collections import deque
from typing import Any

from hotline.core.actions import (
    BargeIn,
    CallerTurn,
    CommitSpeech,
    JudgeTurn,
    LineHeld,
    LineInterrupted,
    LineResumed,
    StartTTS,
    Underrun,
    UtteranceEnded,
    UtteranceOutcome,
    UtteranceSource,
)
from hotline.core.call import Call
from hotline.core.turns import BargeInMode, TurnConfig
from tests.core.test_call import (
    SCRIPT,
    SILENCE,
    _tone_frame,
    make_call,
    mark_msg,
    media_msg,
    start_msg,
)

#: A 4 s line whose every 20 ms frame is different (so a repeat or a gap shows).
LINE = b"".join(bytes([(i * 7 + j) % 251 for j in range(160)]) for i in range(200))


class Phone:
    """Twilio's playback of what the Call sends, plus the caller's inbound frames."""

    def __init__(self, call: Call) -> None:
        self.call = call
        self.queue: deque[bytes | str] = deque()
        self.heard = bytearray()
        self.clears = 0
        self.marks: list[str] = []
        self.ts = 0
        self.now = 0.0
        self.actions: list[Any] = []
        self.playing = False

    def _take(self) -> None:
        for raw in self.call.data_to_send():
            msg = json.loads(raw)
            event = msg["event"]
            if event == "media":
                self.queue.append(base64.b64decode(msg["media"]["payload"]))
            elif event == "mark":
                self.queue.append(msg["mark"]["name"])
            elif event == "clear":
                self.clears += 1
                pending = [item for item in self.queue if isinstance(item, str)]
                self.queue.clear()
                for name in pending:  # Twilio echoes every pending mark at a clear
                    self._echo(name)

    def _echo(self, name: str) -> None:
        self.marks.append(name)
        self.call.receive_text(mark_msg(name), self.now)

    def _play(self, n: int) -> None:
        while self.queue:
            head = self.queue[0]
            if isinstance(head, str):
                self.queue.popleft()
                self._echo(head)
                continue
            if n <= 0:
                break
            take = head[:n]
            self.heard += take
            n -= len(take)
            if len(take) == len(head):
                self.queue.popleft()
            else:
                self.queue[0] = head[len(take) :]

    def step(self, ms: int, *, speech: bool = False) -> None:
        """``ms`` of real time in 20 ms steps: an inbound frame, a pump, 20 ms of playback."""
        for _ in range(ms // 20):
            payload = _tone_frame(self.ts * 8) if speech else SILENCE
            self.call.receive_text(media_msg(self.ts, payload), self.now)
            self.call.pump(self.now)
            self._take()
            self.actions += self.call.actions()
            self.ts += 20
            self.now += 0.020
            self._play(160)
            self.actions += self.call.actions()

    def take(self) -> list[Any]:
        out, self.actions = self.actions, []
        return out


def speaking(**turns: Any) -> tuple[Call, Phone]:
    """A listening call whose greeting is :data:`LINE` (ready-made audio), just started."""
    turns.setdefault("barge_in", BargeInMode.PAUSE)
    call = make_call(recognise=True, turns=TurnConfig(**turns))
    call.receive_text(start_msg(), 0.0)
    call.accept(0.0)
    assert call.actions()[-1] == StartTTS(1, SCRIPT.greeting)
    call.play_recorded(1, LINE, 0.0)
    phone = Phone(call)
    phone.actions += call.actions()
    return call, phone


def of(kind: type, actions: list[Any]) -> list[Any]:
    return [a for a in actions if isinstance(a, kind)]


def test_a_cough_over_the_line_holds_it_and_it_resumes_where_the_caller_stopped() -> None:
    call, phone = speaking(guard_ms=300, resume_ms=1500)
    phone.step(1000)
    phone.step(400, speech=True)  # 400 ms of sound: past the guard
    acts = phone.take()
    (held,) = of(LineHeld, acts)
    assert held.utterance_id == 1 and phone.clears == 1
    assert 0 < held.held_ms <= 1100  # what was queued at Twilio, unheard
    heard_at_hold = len(phone.heard)
    phone.step(600)  # the recogniser finds no words
    assert CommitSpeech() in phone.take()
    call.transcript_final("", phone.now)
    phone.step(900)
    assert len(phone.heard) == heard_at_hold  # held: nothing plays
    phone.step(200)  # 1500 ms after the sound ended: the line plays on
    acts = phone.take()
    (resumed,) = of(LineResumed, acts)
    assert resumed.utterance_id == 1 and resumed.held_s <= 1.5 + 0.3 + 0.2
    phone.step(4000)
    acts = phone.take()
    # Every byte of the line heard exactly once, in order; its (renamed) end mark echoed.
    assert bytes(phone.heard) == LINE
    assert phone.marks[-1] == "u1-end"  # its end mark was not out yet: sent as usual
    assert UtteranceEnded(1, UtteranceSource.SCRIPT, UtteranceOutcome.PLAYED) in acts
    assert not of(LineInterrupted, acts) and not of(BargeIn, acts) and not of(Underrun, acts)
    assert not of(CallerTurn, acts) and call.caller_turns == 0


def test_a_held_line_whose_end_mark_was_out_resumes_with_a_renamed_mark() -> None:
    call, phone = speaking()
    phone.step(3600)
    phone.step(400, speech=True)  # the greeting's last 400 ms and its end mark were out
    assert of(LineHeld, phone.take()) and phone.clears == 1
    assert phone.marks == ["u1-end"]  # echoed by the clear: not taken as played
    assert not of(UtteranceEnded, phone.actions)
    call.transcript_final("", phone.now + 0.3)
    phone.step(2000)
    acts = phone.take()
    assert of(LineResumed, acts)
    assert bytes(phone.heard) == LINE and phone.marks == ["u1-end", "u1r1-end"]
    assert UtteranceEnded(1, UtteranceSource.SCRIPT, UtteranceOutcome.PLAYED) in acts


def test_a_short_cough_does_not_even_hold_the_line() -> None:
    call, phone = speaking(guard_ms=300)
    phone.step(1000)
    phone.step(200, speech=True)
    phone.step(3400)
    acts = phone.take()
    assert phone.clears == 0 and not of(LineHeld, acts)
    call.transcript_final("", phone.now)
    phone.step(1000)
    assert bytes(phone.heard) == LINE


def test_words_while_held_cut_the_line_and_what_was_heard_is_exact() -> None:
    call, phone = speaking()
    phone.step(1500)
    phone.step(400, speech=True)
    assert of(LineHeld, phone.take())
    call.transcript_partial("what time does", phone.now)
    phone.step(20)
    acts = phone.take()
    (barge,) = of(BargeIn, acts)
    (cut,) = of(LineInterrupted, acts)
    assert barge.utterance_id == cut.utterance_id == 1
    heard = len(phone.heard)
    assert cut.heard_ms == heard / 8  # the playhead froze where the caller stopped hearing
    assert phone.clears == 1  # the hold's clear; the cut needs none
    phone.step(2000)
    assert len(phone.heard) == heard  # nothing more of the line
    assert UtteranceEnded(1, cut.source, UtteranceOutcome.INTERRUPTED) in acts


def test_a_stop_word_cuts_the_line_before_the_guard() -> None:
    call, phone = speaking()
    phone.step(1500)
    phone.step(100, speech=True)
    call.transcript_partial("wait", phone.now)
    phone.step(20)
    acts = phone.take()
    assert of(BargeIn, acts) and not of(LineHeld, acts) and phone.clears == 1


def test_a_backchannel_resumes_the_line_at_once_and_is_no_turn() -> None:
    call, phone = speaking()
    phone.step(1000)
    call.transcript_partial("mm-hm", phone.now)
    phone.step(400, speech=True)
    assert of(LineHeld, phone.take()) and not of(BargeIn, phone.actions)
    phone.step(300)
    call.transcript_final("Mm-hmm.", phone.now)
    acts = phone.take() + call.actions()
    assert of(LineResumed, acts) and not of(BargeIn, acts)
    phone.step(4000)
    acts = phone.take()
    assert bytes(phone.heard) == LINE and not of(CallerTurn, acts)
    assert call.turns is not None and call.turns.backchannels == 1


def test_speech_mode_still_cuts_on_the_onset() -> None:
    _call, phone = speaking(barge_in=BargeInMode.SPEECH)
    phone.step(1000)
    phone.step(200, speech=True)
    assert of(BargeIn, phone.take()) and phone.clears == 1


def finished_turn(phone: Phone, call: Call, text: str) -> list[Any]:
    phone.step(600, speech=True)
    phone.step(300)
    call.transcript_final(text, phone.now)
    phone.step(600)
    return phone.take() + call.actions()


def quiet_call(**turns: Any) -> tuple[Call, Phone]:
    call, phone = speaking(**turns)
    phone.step(4200)
    phone.take()
    return call, phone


def test_the_filler_plays_once_when_no_reply_comes() -> None:
    call, phone = quiet_call(filler_ms=1200)
    acts = finished_turn(phone, call, "Where can I buy merch?")
    assert of(CallerTurn, acts)
    phone.step(1400)
    acts = phone.take()
    (start,) = of(StartTTS, acts)
    assert start.text == SCRIPT.filler and start.utterance_id == 2
    phone.step(3000)
    assert not of(StartTTS, phone.take())  # once per turn


def test_no_filler_when_the_reply_is_queued_in_time() -> None:
    call, phone = quiet_call(filler_ms=1200)
    finished_turn(phone, call, "Where can I buy merch?")
    phone.step(500)
    call.replies.say("Merch is at the table.", phone.now, last=True)
    phone.step(2000)
    starts = of(StartTTS, phone.take() + call.actions())
    assert [s.text for s in starts] == ["Merch is at the table."]


def test_the_judges_verdict_ends_the_turn_through_the_call() -> None:
    call, phone = quiet_call(judge=True)
    phone.step(600, speech=True)
    phone.step(300)
    acts = phone.take()
    (ask,) = of(JudgeTurn, acts)
    assert len(ask.audio) >= 600 * 8
    call.transcript_final("Where can I buy merch?", phone.now)
    assert not of(CallerTurn, call.actions())
    call.turn_verdict(ask.seq, 0.9, phone.now + 0.05)
    (turn,) = of(CallerTurn, call.actions())
    assert turn.text == "Where can I buy merch?"
