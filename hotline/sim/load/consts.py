"""What the load generator says and reads: the callers' lines, the server metrics it reports."""

from __future__ import annotations

#: What the callers hear, in turn (each 2-4 s of speech; the local voice caches repeats).
DEFAULT_TEXTS: tuple[str, ...] = (
    "Thanks for holding. Your call matters to us, and we will be right with you.",
    "The next show is in Portland on April twelfth, and tickets are still available.",
    "Paper Lanterns is out now everywhere you stream music, and on vinyl at the merch table.",
    "You can leave a message for Wren at hello at wren calloway dot com.",
)

#: Server metrics read from /metrics (names as hotline.server.metrics exports them).
HIST_TTFA = "hotline_time_to_first_audio_seconds"
HIST_TTS_FIRST = "hotline_tts_first_chunk_seconds"
HIST_BRIDGE = "hotline_bridge_overhead_seconds"
HIST_CONVERSION = "hotline_conversion_seconds"
_HISTOGRAMS = (HIST_TTFA, HIST_TTS_FIRST, HIST_BRIDGE, HIST_CONVERSION)
_COUNTERS = (  # counters, and the one gauge
    "hotline_active_calls",
    "hotline_calls_total",
    "hotline_utterances_total",
    "hotline_audio_bytes_out_total",
    "hotline_underruns_total",
    "hotline_underrun_seconds_total",
    "hotline_barge_ins_total",
    "hotline_elevenlabs_errors_total",
    "hotline_signature_failures_total",
    "hotline_protocol_errors_total",
)
UNDERRUN_LIMIT_MS = 20.0


# ----------------------------------------------------------------------------- /proc
