"""The playback estimate alone (hotline.core.playhead): no Call, no Twilio, time passed in."""

from __future__ import annotations

import pytest

from hotline.core.playhead import SPANS_KEPT, Playhead


def test_playback_advances_with_time_and_never_passes_what_was_sent() -> None:
    head = Playhead()
    head.restart(10.0)
    head.sent(1, 800)  # 100 ms
    assert head.played(10.0) == 0
    assert head.played(10.05) == 400
    assert head.ahead(10.05) == 400
    assert head.played(11.0) == 800  # capped at what was sent
    assert head.drained_at() == pytest.approx(10.1)


def test_a_mark_echo_corrects_the_estimate() -> None:
    head = Playhead()
    head.restart(0.0)
    head.sent(1, 1600)
    head.echo(400, 0.2)  # Twilio was behind our estimate: only 50 ms played at 0.2 s
    assert head.played(0.2) == 400
    assert head.drained_at() == pytest.approx(0.35)


def test_played_ms_per_utterance_and_frozen_by_a_clear() -> None:
    head = Playhead()
    head.restart(0.0)
    head.sent(1, 800)
    head.sent(2, 800)
    assert head.played_ms(1, 0.05) == pytest.approx(50.0)
    assert head.played_ms(2, 0.05) == 0.0
    assert head.played_ms(2, 0.15) == pytest.approx(50.0)
    head.clear(0.15)
    assert head.ahead(0.15) == 0
    assert head.played_ms(2, 9.0) == pytest.approx(50.0)  # nothing after the cut
    assert head.played_ms(1, 9.0) == pytest.approx(100.0)
    assert head.played_ms(3, 9.0) is None


def test_only_recent_spans_are_kept() -> None:
    head = Playhead()
    for uid in range(1, SPANS_KEPT + 2):
        head.sent(uid, 160)
    assert head.played_ms(1, 0.0) is None
    assert head.played_ms(SPANS_KEPT + 1, 0.0) is not None
