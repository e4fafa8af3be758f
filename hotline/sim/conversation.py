"""The caller's side of a conversation: the questions it asks aloud, each once the last line
was heard (``CallOptions.speak``), the barge-in, the server's per-turn split around each
question, and what the server heard of each (its transcript).

:class:`Conversation` is mixed into the stream's call (:class:`hotline.sim.stream.MediaStream`):
its state is the call's, which the 20 ms clock reads on every frame; the attributes it uses
are declared here for the type checker.
"""

from __future__ import annotations

import asyncio
from typing import Any

from hotline.sim.call_report import CallReport, SpokenTurn
from hotline.sim.options import CallOptions
from hotline.sim.playback import Playback

__all__ = ["Conversation", "read_transcript"]


class Conversation:
    """Which question is next and when it is asked; the barge-in; the per-turn snapshots."""

    opts: CallOptions
    r: CallReport
    loop: asyncio.AbstractEventLoop
    playback: Playback
    # the caller's voice
    speech_pos: int  # next frame of speech_payloads to send (-1: silent)
    speech_payloads: tuple[str, ...]
    speech_end: int  # index of the question's last speech frame
    barge_onset: float | None
    # keys (pressed once the conversation is over)
    digits: list[str]
    digit_due: float | None
    # spoken questions
    questions: list[str]
    turn: SpokenTurn | None  # the question being spoken or awaiting its reply
    last_audio_ms: float | None  # the last frame that played audio
    snapshots: list[asyncio.Task[Any]]  # /metrics around each question
    http: Any
    conversed: bool  # every question asked and its reply heard

    def now_ms(self) -> float:
        raise NotImplementedError

    def _line_over(self, now: float) -> bool:
        """What was playing has ended and ``speak_gap_s`` of silence followed."""
        return (
            self.playback.buffered_bytes == 0
            and self.last_audio_ms is not None
            and now - self.last_audio_ms >= self.opts.speak_gap_s * 1000.0
        )

    def _converse(self, now: float) -> None:
        """Ask the next question once the last line (the reply to the previous one) was heard."""
        if self.conversed or self.speech_pos >= 0:
            return
        turn = self.turn
        if turn is not None and turn.first_reply_ms is None:
            assert turn.ended_ms is not None
            if now - turn.ended_ms < self.opts.reply_timeout_s * 1000.0:
                return  # still waiting for the reply to start
        elif not self._line_over(now):
            return
        self._snapshot()
        if not self.questions:
            self.conversed = True
            self.turn = None
            if self.digits and self.opts.digit_after_s is None and self.digit_due is None:
                self.digit_due = now + 300.0
            return
        text = self.questions.pop(0)
        from hotline.sim.speech import caller_speech_end, caller_speech_payloads

        try:
            self.speech_payloads = caller_speech_payloads(text)
            self.speech_end = caller_speech_end(text)
        except Exception as exc:  # eSpeak/codec unavailable: the call goes on without speech
            self.r.errors.append(f"caller speech unavailable: {exc}")
            self.questions.clear()
            self.conversed = True
            return
        self.speech_pos = 0
        self.turn = SpokenTurn(text=text, spoke_at_ms=now)
        self.r.turns.append(self.turn)

    def _snapshot(self) -> None:
        """Scrape the server's voice-to-voice histogram in the background (a turn boundary)."""
        if not self.opts.server_split or self.http is None:
            return
        from hotline.sim.server_split import scrape_v2v

        self.snapshots.append(self.loop.create_task(scrape_v2v(self.http, self.opts.url)))

    async def _close_snapshots(self) -> None:
        from hotline.sim.server_split import scrape_v2v, split_between

        snaps = [await t for t in self.snapshots]
        if len(snaps) == len(self.r.turns) and snaps:  # the call ended before the last reply
            snaps.append(await scrape_v2v(self.http, self.opts.url))
        for i, turn in enumerate(self.r.turns):
            if i + 1 < len(snaps):
                got = split_between(snaps[i], snaps[i + 1])
                if got is not None:
                    turn.server = got[0]

    def _start_barge_in(self) -> None:
        from hotline.sim.speech import DEFAULT_CALLER_TEXT, caller_speech_payloads

        try:
            self.speech_payloads = caller_speech_payloads(
                self.opts.barge_in_text or DEFAULT_CALLER_TEXT
            )
        except Exception as exc:  # eSpeak/codec unavailable: the call goes on without speech
            self.r.errors.append(f"caller speech unavailable: {exc}")
            return
        self.speech_pos = 0
        self.barge_onset = self.now_ms()
        self.r.barge_in_onset_ms = self.barge_onset

    # -- the clock -----------------------------------------------------------------------------


async def read_transcript(opts: CallOptions, report: CallReport) -> None:
    """What the server heard of each question and the line it said next (admin transcript)."""
    import httpx

    url = f"{opts.url.rstrip('/')}/calls/{opts.call_sid}/transcript"
    try:
        async with httpx.AsyncClient() as http:
            r = await http.get(
                url, headers={"Authorization": f"Bearer {opts.admin_token}"}, timeout=5.0
            )
        entries = r.json().get("entries", []) if r.status_code == 200 else []
    except (httpx.HTTPError, ValueError, AttributeError):
        return
    if not isinstance(entries, list):
        return
    turns = iter(report.turns)
    turn: SpokenTurn | None = None
    for entry in entries:
        if not isinstance(entry, dict):
            continue
        if entry.get("speaker") == "caller":
            turn = next(turns, None)
            if turn is None:
                break
            turn.heard_as = str(entry.get("text", ""))
        elif entry.get("speaker") == "hotline" and turn is not None and turn.reply_text is None:
            turn.reply_text = str(entry.get("text", ""))
