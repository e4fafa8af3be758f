"""The bounded per-call transcript and the store of ended calls' transcripts."""

from __future__ import annotations

import pytest

from hotline.core.transcript import Speaker, Transcript, Transcripts


def test_entries_in_order_with_relative_times() -> None:
    t = Transcript(100.0)
    t.hotline(1, "Hello.", 100.5)
    t.caller("What are the tour dates?", 103.25)
    t.hotline(2, "Wren is on the road this spring.", 103.9)
    t.heard(2, "Wren is on", 1180.04, 105.0)
    out = t.as_dict()
    assert out["dropped"] == 0 and out["ended"] is False
    assert out["entries"] == [
        {"speaker": "hotline", "text": "Hello.", "at": 0.5, "utterance_id": 1},
        {"speaker": "caller", "text": "What are the tour dates?", "at": 3.25},
        {
            "speaker": "hotline",
            "text": "Wren is on the road this spring.",
            "at": 3.9,
            "utterance_id": 2,
        },
        {
            "speaker": "heard",
            "text": "Wren is on",
            "at": 5.0,
            "utterance_id": 2,
            "heard_ms": 1180.0,
        },
    ]


def test_bounded_in_entries_and_characters() -> None:
    t = Transcript(0.0, max_entries=3, max_chars=5)
    for i in range(5):
        t.caller(f"turn number {i}", float(i))
    assert len(t) == 3 and t.dropped == 2
    assert [e.text for e in t.entries] == ["turn "] * 3
    assert all(e.truncated for e in t.entries)
    assert t.entries[0].at == 2.0
    assert t.chars() == 15
    assert t.entries[0].speaker is Speaker.CALLER


def test_bad_bounds_are_refused() -> None:
    with pytest.raises(ValueError):
        Transcript(0.0, max_entries=0)
    with pytest.raises(ValueError):
        Transcripts(-1)


def test_ended_calls_are_kept_up_to_the_bound() -> None:
    store = Transcripts(keep=2)
    for sid in ("CA1", "CA2", "CA3"):
        store.ended(sid, Transcript(0.0))
    assert store.get("CA1") is None
    t3 = store.get("CA3")
    assert t3 is not None and t3.ended
    assert len(store) == 2
    none = Transcripts(keep=0)
    none.ended("CA1", Transcript(0.0))
    assert none.get("CA1") is None
