"""Prometheus metrics: one CollectorRegistry per app (so tests and apps never share counters)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

__all__ = ["Metrics"]

# Seconds; bridge overhead and per-chunk conversion are expected well under a millisecond.
_FINE = (2e-5, 5e-5, 1e-4, 2.5e-4, 5e-4, 1e-3, 2.5e-3, 5e-3, 1e-2, 2.5e-2, 5e-2, 0.1)
_TTFA = (0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0)


class Metrics:
    def __init__(self) -> None:
        r = self.registry = CollectorRegistry(auto_describe=True)
        self.active_calls = Gauge(
            "hotline_active_calls", "Calls with a live media stream", registry=r
        )
        self.calls = Counter("hotline_calls", "Media streams accepted", registry=r)
        self.utterances = Counter(
            "hotline_utterances",
            "Utterances finished, by source and outcome",
            ["source", "outcome"],
            registry=r,
        )
        self.audio_bytes_out = Counter(
            "hotline_audio_bytes_out", "µ-law bytes sent to Twilio (8000 per second)", registry=r
        )
        self.time_to_first_audio = Histogram(
            "hotline_time_to_first_audio_seconds",
            "Text handed to TTS -> first media frame sent to Twilio",
            buckets=_TTFA,
            registry=r,
        )
        self.tts_first_chunk = Histogram(
            "hotline_tts_first_chunk_seconds",
            "Text handed to TTS -> first audio message received (the voice's own delay)",
            buckets=_TTFA,
            registry=r,
        )
        self.bridge_overhead = Histogram(
            "hotline_bridge_overhead_seconds",
            "First TTS audio message received -> first media frame sent",
            buckets=_FINE,
            registry=r,
        )
        self.conversion = Histogram(
            "hotline_conversion_seconds",
            "Transcode + frame time per TTS audio message",
            buckets=_FINE,
            registry=r,
        )
        self.underruns = Counter(
            "hotline_underruns", "Playback starved mid-utterance (estimated)", registry=r
        )
        self.underrun_seconds = Counter(
            "hotline_underrun_seconds", "Total estimated starvation mid-utterance", registry=r
        )
        self.barge_ins = Counter("hotline_barge_ins", "Caller talked over the hotline", registry=r)
        self.elevenlabs_errors = Counter(
            "hotline_elevenlabs_errors", "TTS utterances that failed, by kind", ["kind"], registry=r
        )
        self.signature_failures = Counter(
            "hotline_signature_failures",
            "Requests refused for a bad Twilio signature or token",
            ["endpoint"],
            registry=r,
        )
        self.protocol_errors = Counter(
            "hotline_protocol_errors", "Malformed messages dropped, by side", ["side"], registry=r
        )

    def render(self) -> bytes:
        return generate_latest(self.registry)
