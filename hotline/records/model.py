"""One call's record, as the server hands it over and as the API shows it."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

__all__ = ["CallRecord", "iso"]


def iso(ms: int) -> str:
    """Epoch milliseconds as an ISO 8601 UTC time (``2026-12-06T16:03:43.120Z``)."""
    moment = datetime.fromtimestamp(ms / 1000, tz=timezone.utc)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass
class CallRecord:
    """A call, ended.

    Attributes:
        call_sid: Twilio's CallSid.
        started_ms, ended_ms: epoch milliseconds (UTC).
        outcome: why it ended (``goodbye played``, ``twilio stop``, ...).
        ended_by: ``caller``, ``hotline``, ``admin``, ``replica`` (handed over) or ``error``.
        brain: ``script``, ``llm`` or ``relay``.
        resumes: media streams resumed after a lost one (0: one stream).
        caller_key: keyed hash of the number (:mod:`hotline.records.privacy`); None: no number.
        caller_masked: the number masked (``+1555***0123``).
        caller_number: the number itself, only with ``HOTLINE_STORE_CALLER_NUMBERS=1``.
        turns: ``{"speaker": "caller" | "hotline" | "heard", "text", "at", ...}``: ``at`` in
            seconds from the start; a hotline line may carry ``latency_ms`` (its turn's stages).
        barge_ins: lines the caller cut.
        handoffs: handoffs to a person or another line, as the brain reported them.
        errors: ``{"kind", "count"}`` of what went wrong (malformed messages, fallbacks).
        summary: a few sentences on the call (None until summarised).
        summary_by: ``llm`` or ``plain``.
    """

    call_sid: str
    started_ms: int
    ended_ms: int
    outcome: str
    ended_by: str
    brain: str
    caller_masked: str
    caller_key: str | None = None
    caller_number: str | None = None
    resumes: int = 0
    turns: list[dict[str, Any]] = field(default_factory=list)
    barge_ins: int = 0
    handoffs: list[dict[str, Any]] = field(default_factory=list)
    errors: list[dict[str, Any]] = field(default_factory=list)
    summary: str | None = None
    summary_by: str | None = None

    @property
    def duration_s(self) -> float:
        return round(max(self.ended_ms - self.started_ms, 0) / 1000, 3)

    def row(self) -> dict[str, Any]:
        """The ``calls`` row."""
        out = dataclasses.asdict(self)
        out["duration_s"] = self.duration_s
        out["outcome"] = self.outcome[:200]
        return out

    @classmethod
    def from_row(cls, row: Any) -> CallRecord:
        data = dict(row._mapping) if hasattr(row, "_mapping") else dict(row)
        data.pop("duration_s", None)
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})

    def merge(self, later: CallRecord) -> CallRecord:
        """This record and the same call's next stream (resumed elsewhere): one record."""
        offset = (later.started_ms - self.started_ms) / 1000
        shifted = [{**t, "at": round(t.get("at", 0.0) + offset, 3)} for t in later.turns]
        return dataclasses.replace(
            later,
            started_ms=min(self.started_ms, later.started_ms),
            ended_ms=max(self.ended_ms, later.ended_ms),
            resumes=max(self.resumes, later.resumes),
            turns=self.turns + shifted,
            barge_ins=self.barge_ins + later.barge_ins,
            handoffs=self.handoffs + later.handoffs,
            errors=self.errors + later.errors,
        )

    def item(self) -> dict[str, Any]:
        """One entry of ``GET /history``."""
        return {
            "call_sid": self.call_sid,
            "started_at": iso(self.started_ms),
            "ended_at": iso(self.ended_ms),
            "duration_s": self.duration_s,
            "outcome": self.outcome,
            "ended_by": self.ended_by,
            "brain": self.brain,
            "caller": self.caller_masked,
            "turns": len(self.turns),
            "summary": self.summary,
        }

    def as_dict(self) -> dict[str, Any]:
        """The whole record (``GET /history/{CallSid}``, the webhook's ``call``)."""
        out = self.item()
        out.update(
            {
                "caller_number": self.caller_number,
                "resumes": self.resumes,
                "turns": self.turns,
                "barge_ins": self.barge_ins,
                "handoffs": self.handoffs,
                "errors": self.errors,
                "summary_by": self.summary_by,
            }
        )
        if self.caller_number is None:
            del out["caller_number"]
        return out

    def journal(self) -> dict[str, Any]:
        """What the spool file keeps (everything, ``from_journal`` reads it back)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_journal(cls, data: dict[str, Any]) -> CallRecord:
        return cls(**data)
