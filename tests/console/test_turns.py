"""The console's turn log: stage groups, bounds, interim words."""

from __future__ import annotations

import pytest

from hotline.core.actions import TurnLatency
from hotline.server.console.turns import STAGES, TurnLog


def _latency(uid: int, t0: float) -> TurnLatency:
    # stopped, silence long enough, final, handed, first token, to TTS, first audio, sent
    return TurnLatency(
        uid, 0, t0, t0 + 0.7, t0 + 0.72, t0 + 0.721, t0 + 1.0, t0 + 1.001, t0 + 1.25, t0 + 1.2505
    )


def test_a_turn_is_split_into_the_consoles_five_stages() -> None:
    log = TurnLog()
    log.add("CA1", _latency(3, 100.0), now=101.2515, started_at=90.0)
    (turn,) = log.get("CA1")
    assert turn["utterance_id"] == 3 and turn["at"] == 10.0
    ms = turn["ms"]
    assert list(ms)[:5] == list(STAGES)
    assert ms["silence"] == 700.0 and ms["recogniser"] == 20.0 and ms["brain"] == 279.0
    assert ms["voice"] == 249.0
    # hotline's own: dispatch 1 + to TTS 1 + playout (first audio -> frame out at now) 1.5
    assert ms["hotline"] == pytest.approx(3.5, abs=0.05)
    assert ms["total"] == pytest.approx(sum(ms[s] for s in STAGES), abs=0.2)


def test_bounded_per_call_and_in_calls() -> None:
    log = TurnLog(keep=2, turns=3)
    for i in range(5):
        log.add("CA1", _latency(i, 0.0), 1.3, 0.0)
    assert [t["utterance_id"] for t in log.get("CA1")] == [2, 3, 4]
    log.add("CA2", _latency(0, 0.0), 1.3, 0.0)
    log.add("CA3", _latency(0, 0.0), 1.3, 0.0)
    assert log.get("CA1") == [] and log.get("CA3")
    with pytest.raises(ValueError):
        TurnLog(keep=0)


def test_interim_words_are_bounded_and_cleared() -> None:
    log = TurnLog(keep=2)
    log.hearing("CA1", "x" * 900)
    assert len(log.heard_so_far("CA1")) == 500
    log.hearing("CA1", "")
    assert log.heard_so_far("CA1") == ""
    for sid in ("CA1", "CA2", "CA3"):
        log.hearing(sid, "words")
    assert log.heard_so_far("CA1") == "" and log.heard_so_far("CA3") == "words"


def test_a_records_marks_give_the_same_stages() -> None:
    from hotline.server.console.turns import stages_from_marks

    t0 = 100.0
    turn = _latency(1, t0)
    marks = {
        name: round((value - t0) * 1000, 1)
        for name, value in (
            ("silence", turn.silence_at),
            ("final", turn.final_at),
            ("handed", turn.handed_at),
            ("first_token", turn.first_token_at),
            ("tts_started", turn.tts_started_at),
            ("first_audio", turn.first_audio_at),
            ("sent", turn.sent_at),
        )
    }
    ms = stages_from_marks(marks)
    assert ms is not None
    log = TurnLog()
    log.add("CA1", turn, now=turn.sent_at, started_at=t0)
    live = log.get("CA1")[0]["ms"]
    for name in (*STAGES, "total"):
        assert ms[name] == pytest.approx(live[name], abs=0.2), name
    assert stages_from_marks({"silence": 1}) is None
    assert stages_from_marks({**marks, "sent": "x"}) is None
