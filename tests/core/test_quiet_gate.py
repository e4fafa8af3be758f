"""What the recogniser hears with the quiet gate: the caller's audio around sound, not the line's
long silences (sans-I/O, through the Call)."""

from __future__ import annotations

import math

from hotline.codec import ulaw_encode
from hotline.core.call import Call
from hotline.core.listening import QuietGate
from hotline.core.turns import TurnConfig
from tests.core.test_call import SILENCE, _tone_frame, make_call, media_msg, start_msg

GATE = QuietGate(open_dbfs=-50.0, hold_ms=2000, preroll_ms=500)


def tone(ts: int, dbfs: float) -> bytes:
    """A 20 ms frame of 300 Hz at ``dbfs`` RMS."""
    amp = 32768 * 10 ** (dbfs / 20) * math.sqrt(2)
    pcm = b"".join(
        int(amp * math.sin(2 * math.pi * 300 * (ts * 8 + i) / 8000)).to_bytes(
            2, "little", signed=True
        )
        for i in range(160)
    )
    return ulaw_encode(pcm)


class Line:
    """A started, accepted call fed 20 ms frames in real time; counts what reaches the ear."""

    def __init__(self, gate: QuietGate | None = GATE, turns: TurnConfig | None = None) -> None:
        self.call: Call = make_call(
            recognise=True, quiet_gate=gate, turns=turns or TurnConfig(silence_ms=400)
        )
        self.call.receive_text(start_msg(), 0.0)
        self.call.accept(0.0)
        self.ts = 0
        self.sent: list[bytes] = []

    def feed(self, ms: int, frame: bytes | None = None, *, loud: bool = False) -> list[bytes]:
        """``ms`` of frames (silence, a tone, or ``frame``); what the recogniser got."""
        got: list[bytes] = []
        for _ in range(ms // 20):
            payload = frame if frame is not None else _tone_frame(self.ts * 8) if loud else SILENCE
            self.call.receive_text(media_msg(self.ts, payload), self.ts / 1000)
            self.ts += 20
            got += self.call.audio_to_recognise()
            self.call.actions()
        self.sent += got
        return got


def ms(frames: list[bytes]) -> int:
    return sum(len(f) for f in frames) // 8


def test_without_a_gate_every_frame_is_heard() -> None:
    line = Line(gate=None)
    assert ms(line.feed(10_000)) == 10_000
    assert line.call.audio_held_back == 0


def test_long_silences_are_held_back_and_the_preroll_goes_with_the_next_sound() -> None:
    line = Line()
    assert ms(line.feed(10_000)) == 2000  # the hold time, then nothing
    word = line.feed(20, loud=True)
    assert ms(word) == 520  # the last 500 ms of the silence, then the loud frame
    assert word[-1] != SILENCE and all(f == SILENCE for f in word[:-1])
    assert ms(line.feed(1500)) == 1500  # the quiet after a sound is heard, up to the hold time
    assert line.call.audio_held_back == (10_000 - 2000 - 500) * 8


def test_sound_below_the_vad_but_above_the_gate_is_heard() -> None:
    line = Line()
    line.feed(5000)
    murmur = tone(0, -46.0)  # under any VAD's threshold, over the line's silence
    assert ms(line.feed(100, murmur)) == 600
    hiss = tone(0, -60.0)  # a quiet line's noise floor: held back like silence
    line.feed(3000, hiss)
    assert ms(line.feed(1000, hiss)) == 0


def test_a_turn_in_progress_keeps_the_gate_open() -> None:
    """From the caller's speech until the turn ends, every frame goes (the final is owed),
    however long the quiet: here the turn waits for a final that has not come."""
    line = Line(turns=TurnConfig(silence_ms=400, final_timeout_ms=30_000))
    line.feed(3000)
    line.feed(600, loud=True)  # speech: a turn begins
    assert line.call.turns is not None and line.call.turns.in_turn
    assert ms(line.feed(4000)) == 4000  # the turn is deciding: its audio is heard
    line.call.transcript_final("hello", line.ts / 1000)
    line.call.actions()
    assert not line.call.turns.in_turn
    assert ms(line.feed(4000)) == 2000  # the turn is over: the hold time, then nothing
