"""Caller-side voice activity detection for barge-in: energy + zero-crossing rate.

Each inbound µ-law frame is reduced to ``(rms_dbfs, zcr)`` by the compiled
:func:`hotline.codec.ulaw_frame_stats`. A frame *sounds like speech* when it is loud enough
(``rms_dbfs >= threshold_dbfs``) and not noise-like (``zcr <= max_zcr``): voiced speech at
8 kHz crosses zero far less often (roughly 0.02-0.35 per sample) than white line noise
(0.5). Then::

    quiet --(speech frames totalling >= min_speech_ms)--> speaking   => SpeechStarted
    speaking --(non-speech frames totalling >= hang_ms)--> quiet     => SpeechEnded

While collecting the onset, a dip of at most ``onset_gap_ms`` (syllable boundaries, stops) does
not restart the count; a longer one does. Durations come from byte counts (8 bytes = 1 ms), so
any frame length works (Twilio sends 20 ms; the statistics need a few ms per frame to mean
anything, so frames of 5 ms or more); event times come from the frames' media timestamps::

    vad = Vad(VadConfig(threshold_dbfs=-35.0))
    for event in twilio.events_received():
        if isinstance(event, Media):
            speech = vad.process(event)   # SpeechStarted | SpeechEnded | None

No clocks, no I/O: deterministic for a given sequence of frames.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from hotline.core.events import Media, SpeechEnded, SpeechStarted
from hotline.core.ulaw import BYTES_PER_MS
from hotline.errors import ConfigError

__all__ = ["Vad", "VadConfig"]


@dataclass(frozen=True, slots=True)
class VadConfig:
    """VAD tuning.

    Attributes:
        threshold_dbfs: minimum frame RMS, dB relative to int16 full scale (a full-scale sine
            is about -3 dBFS; telephone speech typically -30..-15; line noise -60..-45).
        min_speech_ms: speech needed before :class:`SpeechStarted` (guards against clicks).
        hang_ms: non-speech needed before :class:`SpeechEnded` (bridges pauses between words).
        max_zcr: zero crossings per sample above which a loud frame counts as noise, not
            speech. White noise sits at 0.5 (+- 0.04 on 20 ms frames); voiced speech at 8 kHz
            stays below ~0.35, telephone-band and synthetic voices included. 0.4 keeps both
            margins; fricatives above it simply do not count toward the onset.
        onset_gap_ms: longest dip tolerated inside an onset without restarting it.

    Raises:
        ConfigError: a value out of range.
    """

    threshold_dbfs: float = -35.0
    min_speech_ms: int = 120
    hang_ms: int = 200
    max_zcr: float = 0.4
    onset_gap_ms: int = 40

    def __post_init__(self) -> None:
        if not -120.0 <= self.threshold_dbfs <= 0.0:
            raise ConfigError("VAD threshold_dbfs must be within -120..0 dBFS")
        if not 0.0 < self.max_zcr <= 1.0:
            raise ConfigError("VAD max_zcr must be within (0, 1]")
        for name in ("min_speech_ms", "hang_ms", "onset_gap_ms"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ConfigError(f"VAD {name} must be a non-negative integer (ms)")


class Vad:
    """Speech start/end detector over a stream of µ-law frames of any length.

    Args:
        config: thresholds and durations.
        frame_stats: ``ulaw -> (rms_dbfs, zcr)``; defaults to the compiled
            :func:`hotline.codec.ulaw_frame_stats` (the parameter exists for oracles in tests).
    """

    __slots__ = (
        "_gap",
        "_onset_ts",
        "_run",
        "_silence",
        "_silence_ts",
        "_stats",
        "_use_cached",
        "config",
        "in_speech",
        "voiced",
    )

    def __init__(
        self,
        config: VadConfig | None = None,
        *,
        frame_stats: Callable[[bytes], tuple[float, float]] | None = None,
    ) -> None:
        from hotline.codec import ulaw_frame_stats

        # Media.frame_stats (from the Twilio fast path) is the compiled statistic: use it only
        # when that is the statistic asked for.
        self._use_cached = frame_stats is None or frame_stats is ulaw_frame_stats
        if frame_stats is None:
            frame_stats = ulaw_frame_stats
        self.config = config if config is not None else VadConfig()
        self._stats = frame_stats
        self.in_speech = False
        """True between SpeechStarted and SpeechEnded."""
        self.voiced = False
        """The last frame sounded like speech (the hang after it is not speech)."""
        self._run = 0  # speech bytes collected toward the onset
        self._gap = 0  # non-speech bytes inside the onset being collected
        self._onset_ts = 0
        self._silence = 0  # non-speech bytes since the last speech frame while speaking
        self._silence_ts = 0

    def reset(self) -> None:
        """Forget everything (new call, or after the shell drops frames)."""
        self.in_speech = False
        self._run = self._gap = self._silence = 0

    def is_speech(self, ulaw: bytes) -> bool:
        """Whether one frame, on its own, counts as speech."""
        rms_dbfs, zcr = self._stats(ulaw)
        cfg = self.config
        return rms_dbfs >= cfg.threshold_dbfs and zcr <= cfg.max_zcr

    def process(self, media: Media) -> SpeechStarted | SpeechEnded | None:
        """Feed one inbound media event; return a transition, if this frame caused one.

        Uses ``media.frame_stats`` when the parser already computed them (and this VAD uses
        the compiled statistic), so a frame is measured once.
        """
        stats = media.frame_stats
        if stats is None or not self._use_cached:
            return self.process_frame(media.payload, media.timestamp)
        n = len(media.payload)
        if n == 0:
            return None
        cfg = self.config
        speech = stats[0] >= cfg.threshold_dbfs and stats[1] <= cfg.max_zcr
        return self._step(n, speech, media.timestamp)

    def process_frame(self, ulaw: bytes, timestamp_ms: int) -> SpeechStarted | SpeechEnded | None:
        """As :meth:`process`, for a bare frame and its media timestamp (ms)."""
        n = len(ulaw)
        if n == 0:
            return None
        return self._step(n, self.is_speech(ulaw), timestamp_ms)

    def _step(self, n: int, speech: bool, timestamp_ms: int) -> SpeechStarted | SpeechEnded | None:
        cfg = self.config
        self.voiced = speech
        if self.in_speech:
            if speech:
                self._silence = 0
                return None
            if self._silence == 0:
                self._silence_ts = timestamp_ms
            self._silence += n
            if self._silence >= cfg.hang_ms * BYTES_PER_MS:
                self.in_speech = False
                self._run = self._gap = self._silence = 0
                return SpeechEnded(self._silence_ts)
            return None
        if speech:
            if self._run == 0:
                self._onset_ts = timestamp_ms
            self._run += n
            self._gap = 0
            if self._run >= cfg.min_speech_ms * BYTES_PER_MS:
                self.in_speech = True
                self._run = self._gap = self._silence = 0
                return SpeechStarted(self._onset_ts)
        elif self._run:
            self._gap += n
            if self._gap > cfg.onset_gap_ms * BYTES_PER_MS:
                self._run = self._gap = 0
        return None
