"""Renderer (TTS audio -> µ-law, the clean-recording rule) and the first slice, without a Call."""

from __future__ import annotations

import pytest

from hotline.core.events import Alignment, TTSAudio
from hotline.core.render import FIRST_SLICE, Renderer, converter_detail, first_slice
from hotline.errors import CodecError


class _Stats:
    def __init__(self) -> None:
        self.skipped_bytes = 0


class FakeConverter:
    """µ-law in, the same bytes out; ``b"!"`` in the input counts as undecodable (skipped),
    ``b"X"`` makes ``feed`` raise, ``fail_flush`` makes ``flush`` raise."""

    def __init__(self, tail: bytes = b"", fail_flush: bool = False) -> None:
        self.stats = _Stats()
        self.tail = tail
        self.fail_flush = fail_flush
        self.resets = 0

    def feed(self, data: bytes) -> bytes:
        if b"X" in data:
            raise CodecError("bad frame")
        self.stats.skipped_bytes += data.count(b"!")
        return data.replace(b"!", b"")

    def flush(self) -> bytes:
        if self.fail_flush:
            raise MemoryError
        return self.tail

    def reset(self) -> None:
        self.resets += 1


def renderer(record_max: int = 1000, **kw: object) -> tuple[Renderer, list[FakeConverter]]:
    made: list[FakeConverter] = []

    def factory(fmt: str) -> FakeConverter:
        assert fmt == "ulaw_8000"
        conv = FakeConverter(**kw)  # type: ignore[arg-type]
        made.append(conv)
        return conv

    return Renderer("ulaw_8000", factory, record_max=record_max), made


def test_a_clean_utterance_is_recorded_with_its_tail() -> None:
    render, _ = renderer(tail=b"t")
    render.begin()
    assert render.feed(b"ab") == b"ab"
    assert render.feed(b"") == b""
    assert render.finish(None) == (b"t", 0)
    assert render.failure is None and render.recording == b"abt"


@pytest.mark.parametrize(
    ("audio", "failure", "why"),
    [
        (b"ab", "stream ended without isFinal", "no isFinal"),
        (b"a!b", None, "undecodable audio skipped"),
        (b"a" * 11, None, "longer than record_max"),
        (b"", None, "nothing at all"),
    ],
)
def test_what_is_not_clean_is_not_recorded(audio: bytes, failure: str | None, why: str) -> None:
    render, _ = renderer(record_max=10)
    render.begin()
    render.feed(audio)
    render.finish(failure)
    assert render.recording is None, why


def test_a_streamed_or_unrecorded_utterance_keeps_nothing() -> None:
    render, _ = renderer()
    render.begin(record=False)
    render.feed(b"abc")
    render.finish(None)
    assert render.recording is None
    zero, _ = renderer(record_max=0)
    zero.begin()
    zero.feed(b"abc")
    zero.finish(None)
    assert zero.recording is None


def test_a_converter_failure_fails_only_that_utterance() -> None:
    render, made = renderer()
    render.begin()
    assert render.feed(b"aXb") is None
    assert render.failure == "codec: bad frame" and render.failures == 1
    assert made[0].resets == 1
    render.finish(None, flush=False)
    assert render.recording is None
    render.begin()  # the next utterance: a new converter, a clean slate
    assert len(made) == 2 and render.failure is None
    assert render.feed(b"ok") == b"ok"
    render.finish(None)
    assert render.recording == b"ok"


def test_the_tts_failure_wins_over_a_flush_failure() -> None:
    render, _ = renderer(fail_flush=True)
    render.begin()
    render.feed(b"ab")
    assert render.finish("error: quota") == (b"", 0)
    assert render.failure == "error: quota" and render.failures == 1
    render.begin()
    render.finish(None)
    assert render.failure == "codec: MemoryError"


def test_one_converter_per_utterance_the_first_one_built_at_once() -> None:
    render, made = renderer()
    assert len(made) == 1  # a bad output format fails at construction
    render.begin()
    assert len(made) == 1
    render.begin()
    render.begin()
    assert len(made) == 3


def test_forget_drops_the_recording_of_a_replayed_utterance() -> None:
    render, _ = renderer()
    render.begin()
    render.forget()
    render.finish(None)
    assert render.recording is None


def test_converter_detail_names_the_exception() -> None:
    assert converter_detail(CodecError("x")) == "codec: x"
    assert converter_detail(MemoryError()) == "codec: MemoryError"
    assert converter_detail(ValueError("v")) == "codec: ValueError: v"


def test_first_slice_cuts_a_big_first_message_and_keeps_its_alignment_on_the_head() -> None:
    chars = Alignment(("a",), (0,), (10,))
    event = TTSAudio(bytes(range(256)) * 10, chars, chars, "ctx")
    head, rest = first_slice(event, FIRST_SLICE)
    assert head.data == event.data[:FIRST_SLICE] and rest == event.data[FIRST_SLICE:]
    assert head.alignment == chars and head.normalized_alignment is None
    assert head.context_id == "ctx"
    assert first_slice(event, 0) == (event, b"")  # 0: never cut
    small = TTSAudio(b"x" * FIRST_SLICE, None, None)
    assert first_slice(small, FIRST_SLICE) == (small, b"")
