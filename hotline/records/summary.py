"""The call's summary: by the configured LLM (an OpenAI-compatible Chat Completions endpoint),
else a plain one made from the turns.

The plain summary says how long, how many turns, what the caller asked first and last (their
words, cut short), which of the script's intents and menu lines answered them (the turns'
``topic``) and how the call ended. The LLM gets the turns as a transcript and a
short instruction; a failure or a timeout falls back to the plain summary, so every record has
one.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from hotline.records.model import CallRecord

__all__ = ["LlmSummariser", "plain_summary"]

log = logging.getLogger("hotline.records")

_QUOTE = 80
_PROMPT = (
    "You summarise phone calls to a hotline for its owner. In at most three short sentences, "
    "say what the caller wanted, what they were told and anything the owner should follow up. "
    "Plain text, no lists, no phone numbers."
)


def _cut(text: str, limit: int = _QUOTE) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def plain_summary(record: CallRecord) -> str:
    """A summary from the turns alone."""
    said = [t["text"] for t in record.turns if t.get("speaker") == "caller" and t.get("text")]
    lines = sum(1 for t in record.turns if t.get("speaker") == "hotline")
    parts = [f"A {record.duration_s:.0f} s call, {len(said)} caller turn(s), {lines} line(s) said."]
    if said:
        parts.append(f'The caller said first: "{_cut(said[0])}".')
        if len(said) > 1:
            parts.append(f'Last: "{_cut(said[-1])}".')
    topics = list(dict.fromkeys(t["topic"] for t in record.turns if t.get("topic")))
    if topics:
        parts.append(f"Answered: {', '.join(topics)}.")
    if record.barge_ins:
        parts.append(f"They cut in {record.barge_ins} time(s).")
    parts.append(f"Ended by {record.ended_by} ({record.outcome}).")
    return " ".join(parts)


def transcript_text(record: CallRecord, limit: int = 6000) -> str:
    lines = []
    for turn in record.turns:
        speaker = turn.get("speaker")
        if speaker == "heard":
            continue
        who = "Caller" if speaker == "caller" else "Hotline"
        lines.append(f"{who}: {turn.get('text', '')}")
    text = "\n".join(lines)
    return text[-limit:]


class LlmSummariser:
    """Summaries by a Chat Completions endpoint (the one the LLM brain uses).

    Args:
        client: an ``openai.AsyncOpenAI``.
        model: the model name.
        timeout: seconds for the whole answer (then the plain summary).
    """

    def __init__(self, client: Any, model: str, *, timeout: float = 20.0) -> None:
        self.client = client
        self.model = model
        self.timeout = timeout

    async def summarise(self, record: CallRecord) -> str | None:
        """The LLM's summary, or None (no turns, a failure: the caller uses the plain one)."""
        if not any(t.get("speaker") == "caller" for t in record.turns):
            return None
        try:
            reply = await asyncio.wait_for(
                self.client.chat.completions.create(
                    model=self.model,
                    messages=[
                        {"role": "system", "content": _PROMPT},
                        {"role": "user", "content": transcript_text(record)},
                    ],
                    max_tokens=160,
                ),
                self.timeout,
            )
            text = (reply.choices[0].message.content or "").strip()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning(
                "records: the LLM summary failed (%s); a plain one instead", type(exc).__name__
            )
            return None
        return _cut(text, 1000) or None

    async def aclose(self) -> None:
        await self.client.close()
