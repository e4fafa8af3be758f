"""HeardText: the text of an interrupted line up to the playhead."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from hotline.core.events import Alignment
from hotline.core.heard import HeardText

TEXT = "Wren is on the road this spring."


def aligned(text: str, ms_per_char: int = 50) -> Alignment:
    n = len(text)
    return Alignment(tuple(text), tuple(i * ms_per_char for i in range(n)), (ms_per_char,) * n)


def chunked(text: str, sizes: list[int], ms_per_char: int = 50) -> HeardText:
    """The text aligned over chunks of ``sizes`` characters, each placed at its audio offset."""
    heard = HeardText(text)
    pos = 0
    for size in sizes:
        piece = text[pos : pos + size]
        heard.add_chunk(aligned(piece, ms_per_char), pos * ms_per_char, len(piece) * ms_per_char)
        pos += size
    return heard


def test_a_word_counts_once_it_has_started() -> None:
    heard = chunked(TEXT, [10, 10, 12])
    # "Wren is on the road": 'r' of "road" starts at 15 * 50 = 750 ms
    assert heard.heard(749) == "Wren is on the"
    assert heard.heard(751) == "Wren is on the road"
    assert heard.heard(0) == ""
    assert heard.heard(10_000) == TEXT


def test_chunk_offsets_place_later_chunks() -> None:
    heard = chunked(TEXT, [5, 27])  # the second chunk's times restart at 0
    assert heard.heard(5 * 50 + 1) == "Wren is"


def test_missing_alignment_falls_back_to_the_audio_share() -> None:
    heard = HeardText(TEXT)
    heard.add_chunk(aligned(TEXT[:10]), 0, 500)
    heard.add_chunk(None, 500, 1100)  # the service sent none for this chunk
    assert heard.audio_ms == 1600
    # half the audio played -> half the characters, extended to the word's end
    assert heard.heard(800) == "Wren is on the road"  # 16 of 32 chars: inside "road"
    assert heard.heard(800, total_ms=3200) == "Wren is"


def test_streamed_text_grows() -> None:
    heard = HeardText()
    heard.add_text("Hello")
    heard.add_chunk(aligned("Hello"), 0, 250)
    heard.add_text(" there, friend")
    heard.add_chunk(aligned(" there, friend"), 250, 700)
    assert heard.text == "Hello there, friend"
    assert heard.heard(301) == "Hello there,"


def test_normalised_or_respaced_alignment_still_maps() -> None:
    heard = HeardText("Call  12 now")
    heard.add_chunk(aligned("Call 12 now"), 0, 550)
    assert heard.heard(5 * 50 + 1) == "Call  12"


@settings(max_examples=200, deadline=None)
@given(
    st.text(alphabet="ab .,", min_size=1, max_size=40),
    st.lists(st.integers(1, 8), min_size=1, max_size=10),
    st.floats(min_value=-10, max_value=5000),
)
def test_heard_is_always_a_prefix_and_monotonic(text: str, sizes: list[int], played: float) -> None:
    heard = chunked(text, sizes)
    got = heard.heard(played)
    assert text.startswith(got)
    assert len(heard.heard(played + 100)) >= len(got)
