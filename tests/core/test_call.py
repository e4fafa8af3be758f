"""The per-call state machine, driven with synthetic Twilio/TTS events and explicit times."""

from __future__ import annotations

import base64
import itertools
import json
import math
import random
import types
from typing import Any

import pytest

from hotline.codec import Transcoder
from hotline.core.actions import (
    BargeIn,
    CancelTTS,
    FirstFrame,
    Hangup,
    Started,
    StartTTS,
    Stopped,
    Underrun,
    UtteranceEnded,
    UtteranceOutcome,
    UtteranceRecorded,
    UtteranceSource,
)
from hotline.core.call import Call
from hotline.core.callstate import CallState, CallStateError
from hotline.core.events import TTSAudio, TTSFailure, TTSFinal
from hotline.core.render import Converter
from hotline.core.script import CallScript, MenuEntry, default_script
from hotline.core.vad import Vad, VadConfig
from hotline.errors import CodecError, TwilioProtocolError

SID = "MZ0123456789abcdef0123456789abcdef"
CALL_SID = "CA0123456789abcdef0123456789abcdef"

SCRIPT = CallScript(
    greeting="Hello and welcome.",
    menu=types.MappingProxyType(
        {
            "1": MenuEntry("Line one."),
            "2": MenuEntry("Line two."),
            "0": MenuEntry("Goodbye now.", hangup=True),
        }
    ),
    goodbye="Goodbye now.",
    goodbye_digit="0",
    invalid_digit="No such key.",
)


# ------------------------------------------------------------------------------ helpers


class _UlawPassthrough:
    """A byte-for-byte converter double: the base of the failing converters below (the calls
    themselves convert with the compiled :class:`~hotline.codec.Transcoder`)."""

    def feed(self, data: bytes) -> bytes:
        return bytes(data)

    def flush(self) -> bytes:
        return b""

    def reset(self) -> None:
        pass

    @property
    def stats(self) -> _NoStats:
        return _NoStats()


class _NoStats:
    skipped_bytes = 0


def _ulaw_to_linear(u: int) -> int:
    u = ~u & 0xFF
    t = ((u & 0x0F) << 3) + 0x84
    t <<= (u & 0x70) >> 4
    return (0x84 - t) if u & 0x80 else (t - 0x84)


def _linear_to_ulaw(x: int) -> int:
    sign = 0x80 if x < 0 else 0
    x = min(abs(x), 32635) + 0x84
    exp = max(0, x.bit_length() - 8)
    exp = min(exp, 7)
    mant = (x >> (exp + 3)) & 0x0F
    return ~(sign | (exp << 4) | mant) & 0xFF


def _stats(ulaw: bytes) -> tuple[float, float]:
    """Pure-Python (rms_dbfs, zcr), the oracle the VAD allows injecting."""
    pcm = [_ulaw_to_linear(b) for b in ulaw]
    rms = math.sqrt(sum(s * s for s in pcm) / len(pcm))
    dbfs = 20 * math.log10(rms / 32768) if rms > 0 else -120.0
    zc = sum(1 for a, b in itertools.pairwise(pcm) if (a < 0) != (b < 0))
    return dbfs, zc / len(pcm)


def _tone_frame(start: int, freq: float = 220.0, amp: float = 8000.0) -> bytes:
    return bytes(
        _linear_to_ulaw(int(amp * math.sin(2 * math.pi * freq * (start + i) / 8000)))
        for i in range(160)
    )


SILENCE = b"\xff" * 160


def make_call(**kw: Any) -> Call:
    kw.setdefault("output_format", "ulaw_8000")
    kw.setdefault("converter_factory", Transcoder)
    kw.setdefault("vad", Vad(VadConfig(min_speech_ms=60), frame_stats=_stats))
    return Call(kw.pop("script", SCRIPT), **kw)


def twilio(event: str, **fields: Any) -> str:
    seq = fields.pop("seq", 1)
    msg: dict[str, Any] = {"event": event, "sequenceNumber": str(seq), "streamSid": SID}
    msg.update(fields)
    return json.dumps(msg)


def start_msg(params: dict[str, str] | None = None) -> str:
    return twilio(
        "start",
        start={
            "streamSid": SID,
            "callSid": CALL_SID,
            "accountSid": "AC00",
            "tracks": ["inbound"],
            "customParameters": params or {"token": "t0k"},
            "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1},
        },
    )


def media_msg(ts: int, payload: bytes) -> str:
    import base64

    return twilio(
        "media",
        media={
            "track": "inbound",
            "chunk": str(ts // 20 + 1),
            "timestamp": str(ts),
            "payload": base64.b64encode(payload).decode(),
        },
    )


def mark_msg(name: str) -> str:
    return twilio("mark", mark={"name": name})


def dtmf_msg(digit: str) -> str:
    return twilio("dtmf", dtmf={"track": "inbound_track", "digit": digit})


def started_call(now: float = 0.0, **kw: Any) -> Call:
    call = make_call(**kw)
    call.receive_text(
        json.dumps({"event": "connected", "protocol": "Call", "version": "1.0.0"}), now
    )
    call.receive_text(start_msg(), now)
    acts = call.actions()
    assert len(acts) == 1 and isinstance(acts[0], Started)
    assert acts[0].start.custom_parameters["token"] == "t0k"
    call.accept(now)
    assert call.actions() == [StartTTS(1, SCRIPT.greeting)]
    return call


def sent(call: Call) -> list[dict[str, Any]]:
    return [json.loads(m) for m in call.data_to_send()]


def frames_of(msgs: list[dict[str, Any]]) -> list[bytes]:
    import base64

    return [base64.b64decode(m["media"]["payload"]) for m in msgs if m["event"] == "media"]


def audio(ms: int, byte: int = 0x55) -> TTSAudio:
    return TTSAudio(bytes([byte]) * (ms * 8), None, None)


# ------------------------------------------------------------------------------- start


def test_nothing_is_spoken_before_accept() -> None:
    call = make_call()
    assert call.state is CallState.CONNECTING
    call.receive_text(start_msg(), 0.0)
    assert call.state is CallState.STARTED
    assert [type(a) for a in call.actions()] == [Started]
    call.receive_text(media_msg(0, SILENCE), 0.0)
    call.pump(0.0)
    assert call.data_to_send() == [] and call.actions() == []
    with pytest.raises(CallStateError):
        call.say("hi", 0.0)


def test_reject_ends_the_call_silently() -> None:
    call = make_call()
    call.receive_text(start_msg(), 0.0)
    call.actions()
    call.reject()
    assert call.state is CallState.ENDED
    call.receive_text(dtmf_msg("1"), 0.1)
    call.pump(0.2)
    assert call.actions() == [] and call.data_to_send() == []
    with pytest.raises(CallStateError):
        call.accept(0.0)


def test_greeting_frames_padding_and_end_mark() -> None:
    call = started_call(mark_every_frames=0)
    assert call.receive_tts(1, audio(30), 0.1)  # 240 bytes: one frame + 80 carried
    call.pump(0.1)
    msgs = sent(call)
    assert [m["event"] for m in msgs] == ["media"]
    assert msgs[0] == {
        "event": "media",
        "streamSid": SID,
        "media": {"payload": msgs[0]["media"]["payload"]},
    }
    ff = [a for a in call.actions() if isinstance(a, FirstFrame)]
    assert len(ff) == 1 and ff[0].utterance_id == 1 and ff[0].message_index == 0
    assert ff[0].tts_started_at == 0.0 and ff[0].first_audio_at == 0.1 and ff[0].sent_at == 0.1
    call.receive_tts(1, TTSFinal(), 0.11)  # before the first frame has played out
    call.pump(0.11)
    msgs = sent(call)
    assert [m["event"] for m in msgs] == ["media", "mark"]
    last = frames_of(msgs)[0]
    assert (
        last == b"\x55" * 80 + b"\xff" * 80
    )  # the tail, padded with µ-law silence at the end only
    assert msgs[1] == {"event": "mark", "streamSid": SID, "mark": {"name": "u1-end"}}
    assert call.actions() == []
    call.receive_text(mark_msg("u1-end"), 0.3)
    assert call.actions() == [UtteranceEnded(1, UtteranceSource.SCRIPT, UtteranceOutcome.PLAYED)]
    assert call.state is CallState.ACTIVE


def test_chunking_does_not_change_the_frames() -> None:
    rng = random.Random(7)
    data = bytes(rng.randrange(256) for _ in range(8000))

    def run(cuts: list[int]) -> list[bytes]:
        call = started_call()
        pos = 0
        for n in cuts:
            call.receive_tts(1, TTSAudio(data[pos : pos + n], None, None), 0.0)
            pos += n
        call.receive_tts(1, TTSFinal(), 0.0)
        out: list[bytes] = []
        t = 0.0
        while call.next_deadline(t) is not None and t < 10:
            call.pump(t)
            out += frames_of(sent(call))
            t += 0.25
        return out

    one = run([len(data)])
    cuts: list[int] = []
    left = len(data)
    while left:
        n = min(left, rng.choice([1, 7, 159, 160, 161, 333, 1000]))
        cuts.append(n)
        left -= n
    assert run(cuts) == one
    assert b"".join(one)[: len(data)] == data
    assert len(one[0]) == 160  # the first frame alone, the rest in whole frames
    assert all(len(f) % 160 == 0 for f in one)


# ------------------------------------------------------------------------------ pacing


def test_pacing_keeps_at_most_one_second_ahead() -> None:
    # frame by frame (no batching), refill in 200 ms steps
    call = started_call(mark_every_frames=0, batch_ms=20, refill_ms=200)
    call.receive_tts(1, audio(3000), 0.0)
    call.pump(0.0)
    assert len(frames_of(sent(call))) == 50  # 1000 ms at once: Twilio buffers
    assert call.ahead_ms(0.0) == 1000
    # Nothing more until the queue has drained to the low-water mark (refill 200 ms).
    assert call.next_deadline(0.0) == pytest.approx(0.2)
    call.pump(0.1)
    assert frames_of(sent(call)) == []
    assert call.next_deadline(0.1) == pytest.approx(0.2)
    call.pump(0.2)
    assert len(frames_of(sent(call))) == 10
    assert call.ahead_ms(0.2) == pytest.approx(1000)
    t = 0.2
    total = 60
    while total < 150:
        t = call.next_deadline(t) or t
        call.pump(t)
        total += len(frames_of(sent(call)))
        assert call.ahead_ms(t) <= 1000
    assert t == pytest.approx(2.0, abs=1e-3)  # 3 s of audio, all sent 1 s before its end
    assert not any(isinstance(a, Underrun) for a in call.actions())


def test_never_starves_and_reports_underrun_mid_utterance() -> None:
    call = started_call(mark_every_frames=0)
    call.receive_tts(1, audio(100), 1.0)
    call.pump(1.0)
    assert len(frames_of(sent(call))) == 5
    acts = call.actions()
    assert [type(a) for a in acts] == [FirstFrame]  # no underrun for an utterance's first frame
    # TTS stalls: the 100 ms played out by t=1.1; audio arrives again at t=1.25.
    call.receive_tts(1, audio(40), 1.25)
    assert call.next_deadline(1.25) == 1.25  # buffer empty: send at once
    call.pump(1.25)
    assert len(frames_of(sent(call))) == 2
    (under,) = call.actions()
    assert isinstance(under, Underrun) and under.utterance_id == 1
    assert under.duration_ms == pytest.approx(150, abs=1)


def test_mark_echo_corrects_the_playhead() -> None:
    call = started_call(mark_every_frames=25, batch_ms=20)
    call.receive_tts(1, audio(3000), 0.0)
    call.pump(0.0)
    msgs = sent(call)
    assert [m["mark"]["name"] for m in msgs if m["event"] == "mark"] == ["u1-f25", "u1-f50"]
    # By wall time 0.9 s would have played; the echo says only 500 ms had (Twilio started late).
    call.receive_text(mark_msg("u1-f25"), 0.9)
    assert call.ahead_ms(0.9) == pytest.approx(500)
    call.pump(0.9)
    assert len(frames_of(sent(call))) == 25  # refilled to 1000 ms ahead of the corrected playhead
    assert call.ahead_ms(0.9) == pytest.approx(1000)


def _drive(call: Call, until: float, step: float = 0.01) -> list[tuple[float, dict[str, Any]]]:
    """Pump ``call`` at its deadlines (at least every ``step``) until ``until``; every message
    sent, with the time it went."""
    out: list[tuple[float, dict[str, Any]]] = []
    t = 0.0
    while t < until:
        call.pump(t)
        out += [(t, m) for m in sent(call)]
        deadline = call.next_deadline(t)
        t = min(t + step, deadline) if deadline is not None and deadline > t else t + step
    return out


def test_batching_first_frames_small_then_large_messages_within_the_cap() -> None:
    call = started_call(mark_every_frames=0)  # defaults: batch 200 ms after 200 ms ahead
    call.receive_tts(1, audio(3000), 0.0)
    call.receive_tts(1, TTSFinal(), 0.0)
    msgs = _drive(call, 4.0)
    media = [(t, base64.b64decode(m["media"]["payload"])) for t, m in msgs if m["event"] == "media"]
    sizes = [len(b) for _, b in media]
    assert sum(sizes) == 3000 * 8
    assert sizes[:10] == [160] * 10  # the first 200 ms go at once, one frame per message
    assert max(sizes) == 1600 and all(s % 160 == 0 for s in sizes)
    assert len(media) < 40  # 150 frames in far fewer messages
    assert msgs[-1][1] == {"event": "mark", "streamSid": SID, "mark": {"name": "u1-end"}}
    # never more than 1 s ahead of the playhead (playback started at t=0, nothing stalled)
    sent_bytes = 0
    for t, b in media:
        sent_bytes += len(b)
        assert sent_bytes - min(t * 8000, sent_bytes) <= 8000
    assert not any(isinstance(a, Underrun) for a in call.actions())


def test_batching_keeps_accounting_marks_at_the_same_bytes() -> None:
    def marks(**kw: Any) -> list[tuple[str, int]]:
        call = started_call(mark_every_frames=7, **kw)
        call.receive_tts(1, audio(2000), 0.0)
        call.receive_tts(1, TTSFinal(), 0.0)
        pos, out = 0, []
        for _, m in _drive(call, 3.0):
            if m["event"] == "media":
                pos += len(base64.b64decode(m["media"]["payload"]))
            elif m["event"] == "mark":
                out.append((m["mark"]["name"], pos))
        return out

    batched = marks()
    assert batched == marks(batch_ms=20)
    assert batched[-1] == ("u1-end", 16000) and len(batched) == 100 // 7 + 1


def test_batching_barge_in_clears_and_drops_at_most_the_cap() -> None:
    call = started_call(mark_every_frames=0)
    call.receive_tts(1, audio(5000), 0.0)
    _drive(call, 1.5)
    assert 0 < call.ahead_ms(1.5) <= 1000
    call.actions()
    call.receive_text(dtmf_msg("1"), 1.5)  # a digit interrupts like a barge-in
    assert sent(call) == [{"event": "clear", "streamSid": SID}]
    assert call.ahead_ms(1.5) == 0


def test_consecutive_utterances_are_sequential_and_gapless() -> None:
    call = started_call(mark_every_frames=0)
    u2 = call.say("Second.", 0.0)
    u3 = call.say("Third.", 0.0)
    assert (u2, u3) == (2, 3)
    assert call.actions() == []  # one TTS stream at a time
    call.receive_tts(1, audio(40), 0.0)
    call.receive_tts(1, TTSFinal(), 0.0)
    assert call.actions() == [StartTTS(2, "Second.")]
    assert not call.receive_tts(3, audio(20), 0.0)  # not its turn
    call.receive_tts(2, audio(20, 0x11), 0.05)
    call.receive_tts(2, TTSFinal(), 0.05)
    assert call.actions() == [StartTTS(3, "Third.")]
    call.pump(0.05)
    msgs = sent(call)
    assert [m["event"] for m in msgs] == ["media", "media", "mark", "media", "mark"]
    assert msgs[2]["mark"]["name"] == "u1-end" and msgs[4]["mark"]["name"] == "u2-end"
    assert frames_of(msgs)[2] == b"\x11" * 160


# ----------------------------------------------------------------------- DTMF, goodbye


def test_digit_interrupts_and_speaks_its_line() -> None:
    call = started_call()
    call.receive_tts(1, audio(500), 0.0)
    call.pump(0.0)
    sent(call)
    call.actions()
    call.receive_text(dtmf_msg("1"), 0.2)
    assert sent(call) == [{"event": "clear", "streamSid": SID}]
    assert call.actions() == [
        CancelTTS(1),
        UtteranceEnded(1, UtteranceSource.SCRIPT, UtteranceOutcome.INTERRUPTED),
        StartTTS(2, "Line one."),
    ]
    assert not call.receive_tts(1, audio(20), 0.21)  # late audio of the old utterance: dropped
    call.receive_text(dtmf_msg("7"), 0.3)
    assert call.actions()[-1] == StartTTS(3, "No such key.")


def test_goodbye_hangs_up_once_its_mark_echoes() -> None:
    call = started_call(mark_every_frames=0)
    call.receive_text(dtmf_msg("0"), 0.0)
    assert call.state is CallState.CLOSING
    acts = call.actions()
    assert acts[-1] == StartTTS(2, "Goodbye now.")
    call.receive_text(dtmf_msg("1"), 0.05)  # digits are ignored while the goodbye plays
    with pytest.raises(CallStateError):
        call.say("more", 0.05)
    assert call.actions() == []
    call.receive_tts(2, audio(200), 0.1)
    call.receive_tts(2, TTSFinal(), 0.1)
    call.pump(0.1)
    assert [m["event"] for m in sent(call)][-1] == "mark"
    assert isinstance(call.actions()[0], FirstFrame)
    call.receive_text(mark_msg("u2-end"), 0.31)
    assert call.actions() == [
        UtteranceEnded(2, UtteranceSource.SCRIPT, UtteranceOutcome.PLAYED),
        Hangup("goodbye played"),
    ]
    assert call.state is CallState.ENDED


def test_goodbye_hangs_up_even_if_the_mark_never_echoes() -> None:
    call = started_call(mark_every_frames=0, mark_grace=1.0)
    call.receive_text(dtmf_msg("0"), 0.0)
    call.actions()
    call.receive_tts(2, audio(200), 0.0)
    call.receive_tts(2, TTSFinal(), 0.0)
    call.pump(0.0)
    sent(call)
    call.actions()
    deadline = call.next_deadline(0.0)
    assert deadline == pytest.approx(1.2)  # 200 ms of audio + 1 s grace
    call.pump(1.0)
    assert call.actions() == []
    call.pump(1.21)
    acts = call.actions()
    assert isinstance(acts[-1], Hangup) and call.state is CallState.ENDED


def test_debug_call_hangs_up_after_the_greeting() -> None:
    call = started_call(hangup_after_greeting=True, mark_every_frames=0)
    assert call.state is CallState.CLOSING
    call.receive_tts(1, audio(100), 0.0)
    call.receive_tts(1, TTSFinal(), 0.0)
    call.pump(0.0)
    sent(call)
    call.receive_text(mark_msg("u1-end"), 0.1)
    assert isinstance(call.actions()[-1], Hangup)


# ---------------------------------------------------------------------------- barge-in


def _speak(call: Call, start_ms: int, ms: int, now0: float) -> list[Any]:
    acts: list[Any] = []
    for i in range(ms // 20):
        ts = start_ms + 20 * i
        call.receive_text(media_msg(ts, _tone_frame(ts * 8)), now0 + (ts - start_ms) / 1000)
        acts += call.actions()
    return acts


def test_barge_in_clears_cancels_and_ignores_late_echoes() -> None:
    call = started_call(mark_every_frames=25)
    call.receive_tts(1, audio(2000), 0.0)
    call.pump(0.0)
    sent(call)
    call.actions()
    # Line noise and silence do not trigger.
    for ts in range(0, 400, 20):
        call.receive_text(media_msg(ts, SILENCE), ts / 1000)
    noise = random.Random(1)
    for ts in range(400, 800, 20):
        call.receive_text(media_msg(ts, bytes(noise.randrange(256) for _ in range(160))), ts / 1000)
    assert call.actions() == [] and call.data_to_send() == []
    acts = _speak(call, 800, 200, 0.8)
    barge = [a for a in acts if isinstance(a, BargeIn)]
    assert len(barge) == 1 and barge[0].utterance_id == 1
    onset = barge[0].timestamp_ms
    assert onset == 800
    # min_speech_ms=60: detected 60 ms after onset (well inside the 300 ms budget).
    msgs = sent(call)
    assert msgs == [{"event": "clear", "streamSid": SID}]
    assert (
        CancelTTS(1) in acts
        and UtteranceEnded(1, UtteranceSource.SCRIPT, UtteranceOutcome.INTERRUPTED) in acts
    )
    assert call.barge_ins == 1
    # Twilio echoes every pending mark after a clear: all ignored.
    call.receive_text(mark_msg("u1-f25"), 1.0)
    call.receive_text(mark_msg("u1-f50"), 1.0)
    assert call.actions() == []
    assert not call.receive_tts(1, audio(100), 1.0)
    call.pump(1.0)
    assert call.data_to_send() == []
    assert call.next_deadline(1.0) is None
    assert not call.is_speaking(1.0)
    # Still talking while nothing plays: no second barge-in; a new utterance works normally.
    assert _speak(call, 1000, 100, 1.0) == []
    u = call.say("After.", 1.2)
    assert call.actions() == [StartTTS(u, "After.")]
    call.receive_tts(u, audio(40), 1.3)
    call.pump(1.3)
    assert len(frames_of(sent(call))) == 2


def test_speech_while_idle_is_not_a_barge_in() -> None:
    call = started_call()
    call.receive_tts(1, audio(100), 0.0)
    call.receive_tts(1, TTSFinal(), 0.0)
    call.pump(0.0)
    sent(call)
    call.receive_text(mark_msg("u1-end"), 0.1)
    call.actions()
    assert _speak(call, 2000, 200, 2.0) == []
    assert call.data_to_send() == []


def test_the_goodbye_is_not_interruptible() -> None:
    call = started_call()
    call.receive_text(dtmf_msg("0"), 0.0)
    call.actions()
    call.receive_tts(2, audio(1000), 0.0)
    call.pump(0.0)
    sent(call)
    call.actions()
    assert not any(isinstance(a, BargeIn) for a in _speak(call, 100, 200, 0.1))
    assert [m["event"] for m in sent(call)] in ([], ["media"] * len(sent(call)))


def test_say_interrupt_replaces_what_plays() -> None:
    call = started_call()
    call.receive_tts(1, audio(500), 0.0)
    call.pump(0.0)
    sent(call)
    call.actions()
    call.say("Queued.", 0.1)
    assert call.actions() == []
    u = call.say("Now!", 0.2, interrupt=True)
    assert sent(call) == [{"event": "clear", "streamSid": SID}]
    assert call.actions() == [
        CancelTTS(1),
        UtteranceEnded(1, UtteranceSource.SCRIPT, UtteranceOutcome.INTERRUPTED),
        UtteranceEnded(2, UtteranceSource.SAY, UtteranceOutcome.DROPPED),
        StartTTS(u, "Now!"),
    ]
    with pytest.raises(ValueError):
        call.say("   ", 0.3)


# ---------------------------------------------------------------------------- failures


def test_tts_failure_plays_what_came_and_moves_on() -> None:
    call = started_call(mark_every_frames=0)
    call.say("Next one.", 0.0)
    call.receive_tts(1, audio(30), 0.1)
    call.receive_tts(1, TTSFailure("input_timeout_exceeded", "timeout", 1008), 0.2)
    assert call.actions() == [
        CancelTTS(1),
        UtteranceEnded(
            1, UtteranceSource.SCRIPT, UtteranceOutcome.FAILED, "input_timeout_exceeded: timeout"
        ),
        StartTTS(2, "Next one."),
    ]
    call.pump(0.2)
    msgs = sent(call)
    assert [m["event"] for m in msgs] == ["media", "media", "mark"]
    assert [type(a) for a in call.actions()] == [FirstFrame]
    call.receive_text(mark_msg("u1-end"), 0.3)
    assert call.actions() == []  # reported once, as failed
    call.receive_tts(2, audio(20), 0.4)
    call.pump(0.4)
    assert len(frames_of(sent(call))) == 1


def test_tts_closed_without_final() -> None:
    call = started_call(mark_every_frames=0)
    assert call.tts_failed(1, "closed without isFinal", 1.0)
    assert call.actions() == [
        UtteranceEnded(1, UtteranceSource.SCRIPT, UtteranceOutcome.FAILED, "closed without isFinal")
    ]
    assert not call.tts_failed(1, "again", 1.0)
    call.pump(1.0)
    assert [m["event"] for m in sent(call)] == ["mark"]  # nothing heard, but the mark keeps order


class _Exploding(_UlawPassthrough):
    def feed(self, data: bytes) -> bytes:
        if data.startswith(b"{"):
            raise CodecError("not audio")
        return bytes(data)


def test_codec_error_fails_the_utterance_only() -> None:
    call = started_call(converter_factory=lambda fmt: _Exploding(), mark_every_frames=0)
    call.say("Later.", 0.0)
    call.receive_tts(1, audio(20), 0.0)
    call.receive_tts(1, TTSAudio(b'{"error": "x"}', None, None), 0.1)
    acts = call.actions()
    assert acts[0] == CancelTTS(1)
    assert isinstance(acts[1], UtteranceEnded) and acts[1].outcome == "failed"
    assert acts[1].detail.startswith("codec:")
    assert acts[2] == StartTTS(2, "Later.")
    assert not call.receive_tts(1, TTSFinal(), 0.2)


# ------------------------------------------------------------------------- stop, errors


def test_stop_ends_everything() -> None:
    call = started_call()
    call.say("Queued.", 0.0)
    call.receive_tts(1, audio(200), 0.0)
    call.pump(0.0)
    sent(call)
    call.actions()
    call.receive_text(twilio("stop", stop={"accountSid": "AC00", "callSid": CALL_SID}), 0.5)
    assert call.actions() == [
        CancelTTS(1),
        UtteranceEnded(1, UtteranceSource.SCRIPT, UtteranceOutcome.INTERRUPTED),
        UtteranceEnded(2, UtteranceSource.SAY, UtteranceOutcome.DROPPED),
        Stopped(),
    ]
    assert call.state is CallState.ENDED
    call.receive_text("not even json", 0.6)  # ignored once ended
    call.pump(0.7)
    assert call.data_to_send() == [] and call.next_deadline(0.7) is None


def test_hangup_requested() -> None:
    call = started_call()
    call.hangup(0.1, "admin")
    assert call.actions() == [
        CancelTTS(1),
        UtteranceEnded(1, UtteranceSource.SCRIPT, UtteranceOutcome.INTERRUPTED),
        Hangup("admin"),
    ]
    call.hangup(0.2)
    assert call.actions() == []


@pytest.mark.parametrize(
    "bad",
    [
        "{not json",
        '{"event":"bogus","streamSid":"' + SID + '"}',
        '{"event":"media","streamSid":"MZother","sequenceNumber":"3",'
        '"media":{"track":"inbound","chunk":"1","timestamp":"0","payload":""}}',
        '{"event":"dtmf","streamSid":"' + SID + '","sequenceNumber":"3"}',
        "[]",
    ],
)
def test_malformed_twilio_messages_raise_and_change_nothing(bad: str) -> None:
    call = started_call()
    call.receive_tts(1, audio(40), 0.0)
    with pytest.raises(TwilioProtocolError):
        call.receive_text(bad, 0.1)
    with pytest.raises(TwilioProtocolError):
        call.receive_bytes(b"\x00\x01")
    assert call.actions() == []
    call.pump(0.1)
    assert len(frames_of(sent(call))) == 2
    call.receive_text(dtmf_msg("2"), 0.2)
    assert call.actions()[-1] == StartTTS(2, "Line two.")


def test_first_frame_message_index_counts_marks_and_clears() -> None:
    call = started_call(mark_every_frames=0)
    call.receive_tts(1, audio(20), 0.0)
    call.receive_tts(1, TTSFinal(), 0.0)
    call.say("Two.", 0.0)
    call.actions()
    call.receive_tts(2, audio(20), 0.0)
    call.pump(0.0)
    msgs = call.data_to_send()
    ffs = [a for a in call.actions() if isinstance(a, FirstFrame)]
    assert [(f.utterance_id, f.message_index) for f in ffs] == [(1, 0), (2, 2)]
    assert json.loads(msgs[2])["event"] == "media"


def test_default_script_digits() -> None:
    script = default_script()
    call = make_call(script=script)
    call.receive_text(start_msg(), 0.0)
    call.actions()
    call.accept(0.0)
    assert call.actions() == [StartTTS(1, script.greeting)]
    assert script.goodbye_digit is not None
    call.receive_text(dtmf_msg(script.goodbye_digit), 0.1)
    assert call.actions()[-1] == StartTTS(2, script.goodbye)
    assert call.state is CallState.CLOSING


def test_bad_parameters() -> None:
    with pytest.raises(ValueError):
        make_call(max_ahead_ms=10)
    with pytest.raises(ValueError):
        make_call(refill_ms=2000)
    with pytest.raises(ValueError):
        make_call(mark_every_frames=-1)


def test_one_converter_per_utterance() -> None:
    made: list[_UlawPassthrough] = []

    def factory(fmt: str) -> Converter:
        made.append(_UlawPassthrough())
        return made[-1]

    call = started_call(converter_factory=factory)
    assert len(made) == 1
    call.receive_tts(1, TTSFinal(), 0.0)
    call.say("Two.", 0.0)
    assert len(made) == 2


# --------------------------------------------------------------- converter failure (defect 4)


class _FailsOnce(_UlawPassthrough):
    """Raises ``exc`` on the ``at``-th feed, then behaves."""

    def __init__(self, exc: BaseException, at: int = 2) -> None:
        self.exc = exc
        self.at = at
        self.feeds = 0
        self.resets = 0

    def feed(self, data: bytes) -> bytes:
        self.feeds += 1
        if self.feeds == self.at:
            raise self.exc
        return bytes(data)

    def reset(self) -> None:
        self.resets += 1


@pytest.mark.parametrize("exc", [MemoryError(), RuntimeError("boom"), CodecError("bad")])
def test_any_converter_exception_fails_the_utterance_and_the_call_goes_on(
    exc: Exception,
) -> None:
    made: list[_FailsOnce] = []

    def factory(fmt: str) -> Converter:
        made.append(_FailsOnce(exc))
        return made[-1]

    call = started_call(converter_factory=factory, mark_every_frames=0)
    call.say("Next line.", 0.0)
    assert call.receive_tts(1, audio(40), 0.0)
    assert call.receive_tts(1, audio(40), 0.05)  # raises inside: the utterance fails
    acts = call.actions()
    assert acts[0] == CancelTTS(1)
    assert isinstance(acts[1], UtteranceEnded)
    assert acts[1].outcome is UtteranceOutcome.FAILED and acts[1].detail.startswith("codec:")
    assert acts[2] == StartTTS(2, "Next line.")
    assert made[0].resets >= 1 and call.converter_failures == 1
    assert call.state is CallState.ACTIVE
    # The next utterance plays: its audio reaches Twilio after the first one's 40 ms.
    call.pump(0.05)
    sent(call)
    assert call.receive_tts(2, audio(100, 0x33), 0.06)
    assert call.receive_tts(2, TTSFinal(), 0.06)
    call.pump(0.2)
    media = [m for m in sent(call) if m["event"] == "media"]
    assert media and all(base64.b64decode(m["media"]["payload"]) == b"\x33" * 160 for m in media)


def test_converter_whose_reset_fails_is_replaced() -> None:
    class _Broken(_FailsOnce):
        def reset(self) -> None:
            raise MemoryError

    made: list[_FailsOnce] = []

    def factory(fmt: str) -> Converter:
        made.append(_Broken(MemoryError(), at=1))
        return made[-1]

    call = started_call(converter_factory=factory)
    call.receive_tts(1, audio(20), 0.0)
    assert len(made) == 2  # the broken one was replaced
    call.say("Still here.", 0.1)
    assert call.actions()[-1] == StartTTS(2, "Still here.")


# ---------------------------------------------------------------------- recording and replay


def _recording_call(**kw: Any) -> Call:
    kw.setdefault("record_max_bytes", 1 << 20)
    kw.setdefault("mark_every_frames", 0)
    return started_call(**kw)


def _all_media(call: Call, until: float) -> bytes:
    out = bytearray()
    t = 0.0
    while t <= until:
        call.pump(t)
        for m in sent(call):
            if m["event"] == "media":
                out += base64.b64decode(m["media"]["payload"])
        t += 0.1
    return bytes(out)


def test_clean_miss_is_recorded_and_replays_byte_identical() -> None:
    call = _recording_call()
    call.receive_tts(1, TTSAudio(b"\x11" * 997, None, None), 0.0)  # not frame aligned
    call.receive_tts(1, TTSAudio(b"\x22" * 1003, None, None), 0.0)
    call.receive_tts(1, TTSFinal(), 0.0)
    recorded = [a for a in call.actions() if isinstance(a, UtteranceRecorded)]
    assert len(recorded) == 1
    rec = recorded[0]
    assert rec.utterance_id == 1 and rec.text == SCRIPT.greeting
    assert rec.ulaw == b"\x11" * 997 + b"\x22" * 1003
    heard_first = _all_media(call, 1.0)

    again = _recording_call()
    assert again.play_recorded(1, rec.ulaw, 0.0)
    acts = again.actions()
    assert not any(isinstance(a, UtteranceRecorded) for a in acts)  # a replay is not re-recorded
    assert _all_media(again, 1.0) == heard_first


@pytest.mark.parametrize("how", ["barge", "failure", "no-final", "too-big", "skipped"])
def test_dirty_miss_is_not_recorded(how: str) -> None:
    class _Skipping(_UlawPassthrough):
        skipped = 0

        def feed(self, data: bytes) -> bytes:
            self.skipped += 3
            return bytes(data)

        @property
        def stats(self) -> Any:
            return types.SimpleNamespace(skipped_bytes=self.skipped)

    kw: dict[str, Any] = {}
    if how == "too-big":
        kw["record_max_bytes"] = 100
    if how == "skipped":
        kw["converter_factory"] = lambda fmt: _Skipping()
    call = _recording_call(**kw)
    call.receive_tts(1, audio(40), 0.0)
    if how == "barge":
        call.say("Instead.", 0.01, interrupt=True)
    elif how == "failure":
        call.receive_tts(1, TTSFailure("quota_exceeded", "no", None), 0.01)
    elif how == "no-final":
        call.tts_failed(1, "stream ended without isFinal", 0.01)
    else:
        call.receive_tts(1, TTSFinal(), 0.01)
    acts = call.actions()
    assert not any(isinstance(a, UtteranceRecorded) for a in acts)
    if how == "skipped":
        from hotline.core.actions import AudioSkipped

        assert AudioSkipped(1, 3) in acts


def test_without_record_max_bytes_nothing_is_recorded() -> None:
    call = started_call(mark_every_frames=0)
    call.receive_tts(1, audio(40), 0.0)
    call.receive_tts(1, TTSFinal(), 0.0)
    assert not any(isinstance(a, UtteranceRecorded) for a in call.actions())


def test_play_recorded_for_an_unwanted_utterance_is_refused() -> None:
    call = _recording_call()
    assert not call.play_recorded(7, b"\xff" * 160, 0.0)
    call.hangup(0.0)
    assert not call.play_recorded(1, b"\xff" * 160, 0.0)


def test_real_transcoder_recording_replays_byte_identical() -> None:
    from hotline.tts_standin.synth import StreamSynth

    mp3 = StreamSynth("mp3_44100_128", cache=False).generate("Replayed exactly.", end=True).audio
    fmt = "mp3_44100_128"
    call = _recording_call(output_format=fmt, converter_factory=Transcoder)
    for i in range(0, len(mp3), 997):
        call.receive_tts(1, TTSAudio(mp3[i : i + 997], None, None), 0.0)
    call.receive_tts(1, TTSFinal(), 0.0)
    rec = next(a for a in call.actions() if isinstance(a, UtteranceRecorded))
    assert len(rec.ulaw) > 8000
    heard_first = _all_media(call, 5.0)
    again = _recording_call(output_format=fmt, converter_factory=Transcoder)
    again.play_recorded(1, rec.ulaw, 0.0)
    assert _all_media(again, 5.0) == heard_first


# ---------------------------------------------------------------------------- accept, playhead


def test_accept_with_a_script_and_hangup_after_greeting() -> None:
    other = CallScript(
        greeting="Only this.",
        menu=types.MappingProxyType({}),
        goodbye="Only this.",
        goodbye_digit=None,
        invalid_digit="Only this.",
    )
    call = make_call()
    call.receive_text(start_msg(), 0.0)
    call.actions()
    call.accept(0.0, script=other, hangup_after_greeting=True)
    assert call.actions() == [StartTTS(1, "Only this.")]
    assert call.state is CallState.CLOSING
    with pytest.raises(CallStateError):
        call.say("no", 0.0)


def test_played_ms_follows_the_playhead_and_stops_at_a_cut() -> None:
    call = started_call(mark_every_frames=0)
    head = call.pacer.playhead
    assert head.played_ms(1, 0.0) is None
    call.receive_tts(1, audio(400), 0.0)
    call.pump(0.0)
    assert head.played_ms(1, 0.0) == 0.0
    assert head.played_ms(1, 0.1) == pytest.approx(100.0)
    call.say("Cut.", 0.15, interrupt=True)
    assert head.played_ms(1, 0.15) == pytest.approx(150.0)
    assert head.played_ms(1, 5.0) == pytest.approx(150.0)  # nothing after the cut was heard


def test_enums_keep_their_label_strings() -> None:
    call = started_call(mark_every_frames=0)
    call.hangup(0.0)
    ended = [a for a in call.actions() if isinstance(a, UtteranceEnded)]
    assert ended[0].source == "script" and ended[0].source is UtteranceSource.SCRIPT
    assert ended[0].outcome == "interrupted" and str(ended[0].outcome) == "interrupted"
