"""What the simulated caller lived through: :class:`CallReport` and its heard utterances."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["CallReport", "HeardUtterance", "SpokenTurn", "report_json"]

#: The server's voice-to-voice stages (``hotline_voice_to_voice_seconds{stage=...}``), in order.
SERVER_STAGES = ("silence", "recogniser", "dispatch", "model", "to_tts", "voice", "playout")


@dataclass
class HeardUtterance:
    """A stretch of played audio closed by a mark echo, a clear, or the end of the call (mark None)."""

    start_ms: float
    end_ms: float
    audio_ms: float
    speech_ms: float
    mark: str | None
    cleared: bool


@dataclass
class SpokenTurn:
    """One question the caller spoke (``--speak``) and the reply it heard.

    Times are ms since ``start`` was sent (the caller's clock). ``server`` is the server's own
    split of that turn's voice to voice in ms per stage (:data:`SERVER_STAGES` plus ``total``
    and ``hotline``), read from ``/metrics`` deltas around the turn, when it could be read.
    """

    text: str
    spoke_at_ms: float  # first frame of the question sent
    ended_ms: float | None = None  # the caller stopped speaking (last speech frame sent)
    first_reply_ms: float | None = None  # first reply audio received after that
    reply_audio_ms: float = 0.0  # reply audio played (until the next question or the end)
    reply_speech_ms: float = 0.0
    server: dict[str, float] | None = None
    heard_as: str | None = None  # what the server's recogniser made of it (admin transcript)
    reply_text: str | None = None  # the line hotline said next (admin transcript)

    @property
    def voice_to_voice_ms(self) -> float | None:
        """Caller-side voice to voice: end of speech -> first reply audio received."""
        if self.ended_ms is None or self.first_reply_ms is None:
            return None
        return self.first_reply_ms - self.ended_ms


@dataclass
class CallReport:
    call_sid: str
    stream_sid: str = ""
    time_to_first_audio_ms: float | None = None  # `start` sent -> first media received
    underrun_ms: float = 0.0  # playback starved while the last message received was media
    underrun_events: int = 0
    # (start ms, length ms) of each gap, first 100
    underruns: list[tuple[float, float]] = field(default_factory=list)
    media_frames: int = 0  # media messages received
    media_bytes: int = 0  # µ-law bytes in them (messages carry any length)
    audio_ms: float = 0.0  # audio actually played (8 bytes = 1 ms)
    marks_received: int = 0
    marks_echoed: int = 0
    clears: int = 0
    heard: bytes = b""  # the caller's earpiece, 8 kHz µ-law, 0xFF where nothing played
    ended_by: str = "error"  # "server_hangup" | "caller_stop" | "timeout" | "error"
    errors: list[str] = field(default_factory=list)
    speech_ms: float = 0.0
    first_clear_after_barge_in_ms: float | None = None
    barge_in_onset_ms: float | None = None
    close_code: int | None = None
    duration_ms: float = 0.0
    unplayed_ms_at_end: float = 0.0  # audio still queued when the call ended
    dtmf_sent: int = 0
    inbound_frames: int = 0
    protocol_violations: int = 0
    utterances: list[HeardUtterance] = field(default_factory=list)
    mark_names: list[str] = field(default_factory=list)
    webhook_status: int | None = None
    stream_url: str | None = None
    custom_parameters: dict[str, str] = field(default_factory=dict)
    duplicate_result: str | None = None
    #: One entry per media stream of the call (a dropped stream followed by its
    #: ``<Connect action>`` gives a second): stream_sid, started_ms / first_audio_ms /
    #: ended_ms (since the first stream's ``start``), ended_by, close_code.
    streams: list[dict[str, Any]] = field(default_factory=list)
    #: What each ``<Connect action>`` POST was answered with: "hangup", "stream",
    #: "unreachable", "http NNN" or "other".
    actions: list[str] = field(default_factory=list)
    out: str | None = None
    turns: list[SpokenTurn] = field(default_factory=list)  # spoken questions (--speak)

    @property
    def ok(self) -> bool:
        """The call connected, heard audio, and ended normally without protocol errors."""
        return (
            not self.errors
            and self.time_to_first_audio_ms is not None
            and self.ended_by in ("server_hangup", "caller_stop")
        )

    def summary(self) -> str:
        def ms(v: float | None) -> str:
            return "-" if v is None else f"{v:.0f} ms"

        lines = [
            f"call {self.call_sid}  stream {self.stream_sid or '-'}",
            f"  ended by             {self.ended_by} (close code {self.close_code}) after {self.duration_ms / 1000:.1f} s",
            f"  time to first audio  {ms(self.time_to_first_audio_ms)}",
            f"  audio heard          {self.audio_ms / 1000:.2f} s ({self.speech_ms / 1000:.2f} s speech) in {self.media_frames} media messages",
            f"  underrun             {self.underrun_ms:.0f} ms in {self.underrun_events} gaps",
            f"  marks                {self.marks_received} received, {self.marks_echoed} echoed",
            f"  clears               {self.clears}"
            + (
                f" (first {self.first_clear_after_barge_in_ms:.0f} ms after barge-in onset)"
                if self.first_clear_after_barge_in_ms is not None
                else (" (barge-in: no clear)" if self.barge_in_onset_ms is not None else "")
            ),
            f"  dtmf sent            {self.dtmf_sent}",
        ]
        for i, u in enumerate(self.utterances, 1):
            how = "cleared" if u.cleared else "played"
            lines.append(
                f"  utterance {i:<2}        {u.start_ms / 1000:6.2f}-{u.end_ms / 1000:6.2f} s  "
                f"{u.audio_ms / 1000:5.2f} s audio, {u.speech_ms / 1000:5.2f} s speech  {how}"
                + (f" (mark {u.mark})" if u.mark else "")
            )
        for i, t in enumerate(self.turns, 1):
            lines.extend(_turn_lines(i, t))
        if self.duplicate_result is not None:
            lines.append(f"  second connection    {self.duplicate_result}")
        if self.out:
            lines.append(f"  heard audio written  {self.out}")
        lines.append(
            "  errors               " + ("none" if not self.errors else "; ".join(self.errors[:5]))
        )
        return "\n".join(lines)


def _turn_lines(i: int, t: SpokenTurn) -> list[str]:
    def ms(v: float | None) -> str:
        return "-" if v is None else f"{v:.0f} ms"

    lines = [
        f"  question {i:<2}         spoke {t.spoke_at_ms / 1000:.2f}-"
        + ("?" if t.ended_ms is None else f"{t.ended_ms / 1000:.2f}")
        + f" s ({len(t.text)} chars); voice to voice {ms(t.voice_to_voice_ms)} (caller side); "
        f"reply {t.reply_audio_ms / 1000:.2f} s heard ({t.reply_speech_ms / 1000:.2f} s speech)"
    ]
    if t.server:
        s = t.server
        split = ", ".join(f"{k} {s[k]:.1f}" for k in SERVER_STAGES if k in s)
        lines.append(
            f"    server split (ms)  {split}; total {s.get('total', 0):.0f}, "
            f"hotline's own {s.get('hotline', 0):.2f}"
        )
    return lines


def report_json(report: CallReport) -> dict[str, Any]:
    d = {k: v for k, v in vars(report).items() if k not in ("heard", "utterances", "turns")}
    d["utterances"] = [vars(u) for u in report.utterances]
    d["turns"] = [dict(vars(t), voice_to_voice_ms=t.voice_to_voice_ms) for t in report.turns]
    d["ok"] = report.ok
    return d
