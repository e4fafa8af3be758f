"""Framer: exact frames, carried remainder, 0xFF padding only at end(), clear, re-chunking edges."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hotline.core.framer import Framer
from hotline.core.ulaw import SILENCE
from hotline.errors import CodecError

DATA = bytes((i * 37 + 11) % 256 for i in range(1000))


def test_exact_frames() -> None:
    f = Framer()
    frames = f.push(DATA[:480])
    assert frames == [DATA[0:160], DATA[160:320], DATA[320:480]]
    assert all(type(fr) is bytes for fr in frames)
    assert f.pending == 0
    assert f.end() is None  # exact multiple: nothing to pad, nothing lost


def test_remainder_is_carried() -> None:
    f = Framer()
    assert f.push(DATA[:100]) == []
    assert f.pending == 100
    assert f.push(DATA[100:170]) == [DATA[:160]]
    assert f.pending == 10
    assert f.push(DATA[170:330]) == [DATA[160:320]]
    assert f.pending == 10


def test_end_pads_with_silence_only_at_end() -> None:
    f = Framer()
    assert f.push(DATA[:170]) == [DATA[:160]]  # no padding mid-utterance
    tail = f.end()
    assert tail == DATA[160:170] + b"\xff" * 150
    assert SILENCE == b"\xff" and len(tail) == 160
    assert f.pending == 0 and f.end() is None  # nothing left, ready for the next utterance
    assert f.push(DATA[:160]) == [DATA[:160]]


def test_sub_frame_utterance() -> None:
    """An utterance shorter than one frame is not lost (vocode's re-chunker drops it)."""
    f = Framer()
    assert f.push(b"\x01\x02\x03") == []
    assert f.end() == b"\x01\x02\x03" + b"\xff" * 157


def test_exact_multiple_after_carry() -> None:
    """The last full frame of an exact multiple is returned, not held (vocode's bug)."""
    f = Framer()
    out = f.push(DATA[:60]) + f.push(DATA[60:320])
    assert out == [DATA[:160], DATA[160:320]]
    assert f.pending == 0 and f.end() is None


def test_clear_drops_the_remainder() -> None:
    f = Framer()
    f.push(DATA[:250])
    assert f.pending == 90
    f.clear()
    assert f.pending == 0 and f.end() is None
    assert f.push(DATA[:160]) == [DATA[:160]]  # the next utterance starts on a clean frame


def test_empty_push() -> None:
    f = Framer()
    assert f.push(b"") == []
    f.push(DATA[:5])
    assert f.push(b"") == [] and f.pending == 5


@pytest.mark.parametrize("kind", [bytes, bytearray, memoryview])
def test_buffer_types_and_no_aliasing(kind: type) -> None:
    src = bytearray(DATA[:400])
    f = Framer()
    frames = f.push(kind(src))
    src[:] = b"\x00" * 400  # the caller reuses its buffer
    assert frames == [DATA[:160], DATA[160:320]]
    assert f.end() == DATA[320:400] + b"\xff" * 80


@pytest.mark.parametrize("size", [1, 80, 160, 320, 4000])
def test_other_frame_sizes(size: int) -> None:
    f = Framer(size)
    frames = f.push(DATA)
    assert all(len(fr) == size for fr in frames)
    tail = f.end()
    out = b"".join(frames) + (tail or b"")
    assert out[: len(DATA)] == DATA and set(out[len(DATA) :]) <= {0xFF}


@pytest.mark.parametrize("bad", [0, -160, 1.5, "160", None, True])
def test_bad_frame_size(bad: object) -> None:
    with pytest.raises(CodecError):
        Framer(bad)  # type: ignore[arg-type]


@settings(max_examples=300, deadline=None)
@given(
    frame=st.integers(1, 400),
    data=st.binary(max_size=3000),
    cuts=st.lists(st.integers(0, 3000), max_size=30),
)
def test_any_push_sizes_give_input_plus_padding(frame: int, data: bytes, cuts: list[int]) -> None:
    points = sorted({min(c, len(data)) for c in cuts} | {0, len(data)})
    f = Framer(frame)
    frames: list[bytes] = []
    for a, b in itertools.pairwise(points):
        frames += f.push(data[a:b])
        assert f.pending < frame
    assert all(len(fr) == frame for fr in frames)
    assert b"".join(frames) == data[: len(frames) * frame]  # frames never padded mid-stream
    tail = f.end()
    padding = (-len(data)) % frame
    if padding == 0:
        assert tail is None
    else:
        assert tail is not None and len(tail) == frame
        frames.append(tail)
    assert b"".join(frames) == data + b"\xff" * padding
