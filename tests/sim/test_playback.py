"""The pure pieces of the caller simulator: Twilio's playback buffer and its messages."""

from __future__ import annotations

import json

from hotline.core.ulaw import FRAME_BYTES, SILENCE_FRAME
from hotline.sim.messages import CONNECTED, TwilioMessages, b64
from hotline.sim.playback import Last, Playback


def test_mark_with_nothing_queued_is_due_at_once() -> None:
    pb = Playback()
    assert pb.mark("m0") is True
    assert pb.tick().marks == ()  # not queued: the owner echoed it


def test_mark_is_due_in_the_tick_after_its_audio_finished() -> None:
    pb = Playback()
    pb.media(b"\x01" * 240)  # 30 ms
    assert pb.mark("m1") is False
    first = pb.tick()
    assert (first.got, first.frame, first.marks) == (160, b"\x01" * 160, ())
    second = pb.tick()  # the last 10 ms, then the mark is reached inside this frame
    assert second.got == 80 and second.frame == b"\x01" * 80 + SILENCE_FRAME[:80]
    assert second.marks == () and second.underrun_bytes == 0  # a mark ended the utterance
    assert pb.tick().marks == ("m1",)
    assert pb.buffered_bytes == 0


def test_underrun_counts_only_mid_utterance() -> None:
    pb = Playback()
    idle = pb.tick()
    assert idle.frame == SILENCE_FRAME and idle.underrun_bytes == 0  # nothing received yet
    pb.media(b"\x02" * 100)
    starved = pb.tick()
    assert starved.got == 100 and starved.underrun_bytes == FRAME_BYTES - 100
    assert pb.tick().underrun_bytes == FRAME_BYTES  # still media last: still starving
    pb.mark("end")
    assert pb.last is Last.MARK and pb.tick().underrun_bytes == 0


def test_clear_drops_audio_and_returns_every_pending_mark() -> None:
    pb = Playback()
    pb.media(b"\x03" * 400)
    pb.mark("a")
    pb.media(b"\x04" * 400)
    pb.mark("b")
    pb.tick()
    assert pb.clear() == ["a", "b"]
    assert pb.buffered_bytes == 0 and pb.last is Last.CLEAR
    after = pb.tick()
    assert after.got == 0 and after.marks == () and after.underrun_bytes == 0


def test_chunks_not_frame_aligned_play_in_order() -> None:
    pb = Playback()
    audio = bytes(range(256)) * 3
    for i in range(0, len(audio), 97):
        pb.media(audio[i : i + 97])
    played = b""
    while pb.buffered_bytes:
        t = pb.tick()
        played += t.frame[: t.got]
    assert played == audio


def test_messages_follow_twilios_shapes() -> None:
    msgs = TwilioMessages("MZ1", "CA1", "AC1")
    assert json.loads(CONNECTED) == {"event": "connected", "protocol": "Call", "version": "1.0.0"}
    start = json.loads(msgs.start({"k": "v"}))
    assert start["sequenceNumber"] == "1" and start["streamSid"] == "MZ1"
    assert start["start"]["customParameters"] == {"k": "v"}
    assert start["start"]["mediaFormat"] == {
        "encoding": "audio/x-mulaw",
        "sampleRate": 8000,
        "channels": 1,
    }
    m1, m2 = json.loads(msgs.media(b64(b"\xff"))), json.loads(msgs.media(b64(b"\x7f")))
    assert (m1["sequenceNumber"], m1["media"]["chunk"], m1["media"]["timestamp"]) == ("2", "1", "0")
    assert (m2["sequenceNumber"], m2["media"]["chunk"], m2["media"]["timestamp"]) == (
        "3",
        "2",
        "20",
    )
    assert m1["media"]["payload"] == "/w==" and m1["media"]["track"] == "inbound"
    assert json.loads(msgs.dtmf("5"))["dtmf"] == {"track": "inbound_track", "digit": "5"}
    assert json.loads(msgs.mark("u1-end"))["mark"] == {"name": "u1-end"}
    stop = json.loads(msgs.stop())
    assert stop["stop"] == {"accountSid": "AC1", "callSid": "CA1"} and stop["sequenceNumber"] == "6"
    other = json.loads(msgs.start({}, stream_sid="MZ2"))
    assert other["streamSid"] == other["start"]["streamSid"] == "MZ2"
