"""Prometheus metrics: one CollectorRegistry per app (so tests and apps never share counters)."""

from __future__ import annotations

import logging

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from hotline.core.actions import (
    Action,
    AudioSkipped,
    BargeIn,
    CallerTurn,
    CancelTTS,
    CommitSpeech,
    DigitPressed,
    FirstFrame,
    Hangup,
    JudgeTurn,
    LineHeld,
    LineInterrupted,
    LineResumed,
    Speculate,
    Started,
    StartTTS,
    Stopped,
    TTSClose,
    TTSText,
    TurnLatency,
    Underrun,
    Unspeculate,
    UtteranceEnded,
    UtteranceOutcome,
    UtteranceRecorded,
)
from hotline.errors import assert_never

__all__ = ["CORRUPT_AUDIO_LOG_BYTES", "Metrics", "observe"]

_log = logging.getLogger("hotline.call")

#: Undecodable TTS bytes in one utterance worth a warning (a stray partial frame is not).
CORRUPT_AUDIO_LOG_BYTES = 1024

# Seconds; bridge overhead and per-chunk conversion are expected well under a millisecond.
_FINE = (2e-5, 5e-5, 1e-4, 2.5e-4, 5e-4, 1e-3, 2.5e-3, 5e-3, 1e-2, 2.5e-2, 5e-2, 0.1)
#: Voice-to-voice stages run from microseconds (hotline's share) to seconds (the silence wait).
_V2V = (1e-4, 5e-4, 1e-3, 2.5e-3, 5e-3, 1e-2, 2e-2, 5e-2, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5)
_V2V_SLOW = (2.0, 3.0, 5.0, 10.0)
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
        # ---- listening (issue 10)
        self.voice_to_voice = Histogram(
            "hotline_voice_to_voice_seconds",
            "Caller's end of speech -> first reply frame sent, per stage: silence, recogniser, "
            "dispatch, model, to_tts, voice, playout; total; hotline (dispatch+to_tts+playout)",
            ["stage"],
            buckets=(*_V2V, *_V2V_SLOW),
            registry=r,
        )
        self.caller_turns = Counter(
            "hotline_caller_turns", "Caller turns handed to the brain", registry=r
        )
        self.lines_interrupted = Counter(
            "hotline_lines_interrupted", "Lines the caller cut (heard text reported)", registry=r
        )
        self.lines_held = Counter(
            "hotline_lines_held", "Lines held while the caller's sound lasted", registry=r
        )
        self.lines_resumed = Counter(
            "hotline_lines_resumed",
            "Held lines played on (a cough or a backchannel, no interruption)",
            registry=r,
        )
        self.stt_failures = Counter(
            "hotline_stt_failures",
            "Speech-to-text streams that failed or dropped, by kind (the call went on)",
            ["kind"],
            registry=r,
        )
        self.stt_audio_dropped = Counter(
            "hotline_stt_audio_dropped_bytes",
            "Caller µ-law not sent to speech-to-text (buffer full while connecting, or STT down)",
            registry=r,
        )
        self.stt_audio_held_back = Counter(
            "hotline_stt_audio_held_back_bytes",
            "Caller µ-law of the line's long silences not streamed to speech-to-text "
            "(HOTLINE_STT_SEND_SILENCE)",
            registry=r,
        )
        self.brain_fallbacks = Counter(
            "hotline_brain_fallbacks",
            "Brain turns that failed and were answered with the fallback line, by reason",
            ["reason"],
            registry=r,
        )
        self.stream_events = Counter(
            "hotline_stream_events",
            "Twilio <Stream statusCallback> events (stream-started, stream-stopped, stream-error)",
            ["event"],
            registry=r,
        )
        self.stream_resumes = Counter(
            "hotline_stream_resumes",
            "Streams lost without hotline ending them, answered with a new stream",
            registry=r,
        )

    def render(self) -> bytes:
        return generate_latest(self.registry)


def observe(metrics: Metrics, label: str, action: Action, now: float) -> None:
    """Count and log what ``action`` says about call ``label`` (the shell executes it apart).

    ``now`` is the shell's clock when the action is observed (for :class:`FirstFrame`: when its
    frame actually left).
    """
    if isinstance(action, FirstFrame):
        total = now - action.tts_started_at
        voice = action.first_audio_at - action.tts_started_at
        bridge = now - action.first_audio_at
        metrics.time_to_first_audio.observe(total)
        metrics.tts_first_chunk.observe(voice)
        metrics.bridge_overhead.observe(bridge)
        _log.info(
            "call %s: utterance %d first audio after %.1f ms (voice %.1f ms + bridge %.3f ms)",
            label,
            action.utterance_id,
            total * 1000,
            voice * 1000,
            bridge * 1000,
        )
    elif isinstance(action, UtteranceEnded):
        metrics.utterances.labels(action.source, action.outcome).inc()
        if action.outcome is UtteranceOutcome.FAILED:
            _log.warning(
                "call %s: utterance %d failed (%s); the call goes on",
                label,
                action.utterance_id,
                action.detail,
            )
    elif isinstance(action, BargeIn):
        metrics.barge_ins.inc()
        _log.info(
            "call %s: barge-in at %d ms over utterance %d: clear sent, %.0f ms dropped",
            label,
            action.timestamp_ms,
            action.utterance_id,
            action.dropped_ms,
        )
    elif isinstance(action, Underrun):
        metrics.underruns.inc()
        metrics.underrun_seconds.inc(action.duration_ms / 1000)
    elif isinstance(action, AudioSkipped):
        if action.skipped_bytes > CORRUPT_AUDIO_LOG_BYTES:
            metrics.elevenlabs_errors.labels("corrupt_audio").inc()
            _log.warning(
                "call %s: utterance %d: %d bytes of undecodable TTS audio skipped",
                label,
                action.utterance_id,
                action.skipped_bytes,
            )
    elif isinstance(action, Hangup):
        _log.info("call %s: hanging up (%s)", label, action.reason)
    elif isinstance(action, TurnLatency):
        stages = action.stages(now)
        hist = metrics.voice_to_voice
        for stage, seconds in stages.items():
            hist.labels(stage).observe(seconds)
        _log.info(
            "call %s: voice to voice %.0f ms (hotline %.2f ms; silence %.0f, recogniser %.0f, "
            "model %.0f, voice %.0f)",
            label,
            stages["total"] * 1000,
            stages["hotline"] * 1000,
            stages["silence"] * 1000,
            stages["recogniser"] * 1000,
            stages["model"] * 1000,
            stages["voice"] * 1000,
        )
    elif isinstance(action, CallerTurn):
        metrics.caller_turns.inc()
        # Never the words: lengths only.
        _log.info(
            "call %s: caller turn of %d chars%s",
            label,
            len(action.text),
            " (recogniser timed out)" if action.timed_out else "",
        )
    elif isinstance(action, LineInterrupted):
        metrics.lines_interrupted.inc()
        _log.info(
            "call %s: utterance %d cut after %.0f ms (%d of %d chars heard)",
            label,
            action.utterance_id,
            action.heard_ms,
            len(action.heard_text),
            len(action.text),
        )
    elif isinstance(action, LineHeld):
        metrics.lines_held.inc()
        _log.info(
            "call %s: line held at %d ms over utterance %d: clear sent, %.0f ms kept",
            label,
            action.timestamp_ms,
            action.utterance_id,
            action.held_ms,
        )
    elif isinstance(action, LineResumed):
        metrics.lines_resumed.inc()
        _log.info(
            "call %s: utterance %d resumed after %.0f ms held (no interruption)",
            label,
            action.utterance_id,
            action.held_s * 1000,
        )
    elif isinstance(
        action,
        (
            Started,
            JudgeTurn,
            Speculate,
            Unspeculate,
            StartTTS,
            TTSText,
            TTSClose,
            CommitSpeech,
            DigitPressed,
            CancelTTS,
            Stopped,
            UtteranceRecorded,
        ),
    ):
        pass  # control only: nothing to count
    else:
        assert_never(action)
