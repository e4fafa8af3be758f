"""The server's side of the call records (:mod:`hotline.records`): built from the settings at
start-up, a record made from each call's session when it ends, a returning caller's memory
looked up at the webhook.

Nothing here awaits on a call's path: :func:`call_ended` builds the record from what the session
holds and hands it to the writer's queue; :meth:`~hotline.records.service.Records.prefetch`
starts the memory lookup as a task when Twilio's webhook is answered.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

from hotline.core.actions import TurnLatency
from hotline.errors import ConfigError
from hotline.records.model import CallRecord
from hotline.records.notify import SmsNotifier, WebhookNotifier
from hotline.records.privacy import derive_key
from hotline.records.service import Records, RecordsConfig
from hotline.records.store import sqlite_path
from hotline.records.summary import LlmSummariser
from hotline.server.settings import BrainKind, Settings
from hotline.server.tls import client_context

__all__ = ["call_ended", "ended_by", "open_records", "record_of"]

log = logging.getLogger("hotline.records")

#: Stand-in key when no secret is configured (insecure-dev only): hashes still hide numbers
#: from a reader of the database, but another deployment would compute the same ones.
_DEV_KEY = "hotline insecure-dev records key"

_BY_CALLER = ("twilio stop", "twilio disconnected")
_BY_HOTLINE = ("goodbye played", "call ended by the brain")


def open_records(settings: Settings) -> Records | None:
    """The records as the settings ask (None: ``HOTLINE_DATABASE_URL=off``).

    Raises:
        ConfigError: PostgreSQL named but its driver not installed.
    """
    rs = settings.records
    if not rs.enabled:
        return None
    secret = rs.records_key or settings.call_token_secret
    if secret is None:
        log.warning(
            "records: no HOTLINE_RECORDS_KEY, HOTLINE_TOKEN_SECRET or TWILIO_AUTH_TOKEN: callers' "
            "number hashes use a fixed development key (insecure-dev only)"
        )
        secret = _DEV_KEY
    url = rs.database_url
    spool = rs.records_spool
    if spool is None:
        db_file = sqlite_path(url)
        spool = str(db_file) + ".spool" if db_file is not None else "hotline-records.spool"
    config = RecordsConfig(
        url=url,
        key=derive_key(secret),
        store_numbers=rs.store_caller_numbers,
        retention_days=rs.retention_days,
        memory_calls=rs.memory_calls,
        queue=rs.records_queue,
        spool=Path(spool),
    )
    summariser = None
    listen = settings.listen
    if listen.brain is BrainKind.LLM and listen.llm_url:
        from hotline.server.brain_llm import make_client

        summariser = LlmSummariser(
            make_client(listen.llm_url, listen.llm_api_key or "", timeout=20.0), listen.llm_model
        )
    notifiers: list[Any] = []
    if rs.notify_url:
        notifiers.append(WebhookNotifier(rs.notify_url, rs.notify_secret, verify=client_context()))
    if rs.owner_number and rs.twilio_account_sid and rs.sms_from:
        notifiers.append(
            SmsNotifier(
                _twilio_client(
                    rs.twilio_account_sid, settings.twilio_auth_token, rs.twilio_api_url
                ),
                rs.owner_number,
                rs.sms_from,
            )
        )
    try:
        return Records(config, summariser=summariser, notifiers=tuple(notifiers))
    except ValueError as exc:
        raise ConfigError(f"HOTLINE_DATABASE_URL: {exc}") from None


def _twilio_client(account_sid: str, auth_token: str | None, api_url: str | None) -> Any:
    """The official client; ``api_url`` (tests only: a stand-in on 127.0.0.1) replaces
    ``https://api.twilio.com`` for the Messages API."""
    from twilio.rest import Client

    # its request lines name the account and the API; one SMS a call is no reason for ten lines
    logging.getLogger("twilio.http_client").setLevel(logging.WARNING)
    client = Client(account_sid, auth_token)
    if api_url is not None:
        client.api.base_url = api_url
    return client


def ended_by(reason: str) -> str:
    """Who ended a call, from its end reason."""
    if reason in _BY_CALLER:
        return "caller"
    if reason.startswith(_BY_HOTLINE):
        return "hotline"
    if reason == "hangup requested":
        return "admin"
    if reason == "server shutting down":
        return "replica"
    if reason in ("internal error", "teardown"):
        return "error"
    return "hotline"


def _latency(turn: TurnLatency) -> dict[str, float]:
    """The stages of one turn, in ms from the caller's end of speech."""
    base = turn.ended_at
    return {
        name: round((value - base) * 1000, 1)
        for name, value in (
            ("silence", turn.silence_at),
            ("final", turn.final_at),
            ("handed", turn.handed_at),
            ("first_token", turn.first_token_at),
            ("tts_started", turn.tts_started_at),
            ("first_audio", turn.first_audio_at),
            ("sent", turn.sent_at),
        )
    }


def _topics(script: Any) -> dict[str, str]:
    """The script's lines by what they answer: an intent's name, or ``menu <key>``."""
    out: dict[str, str] = {}
    for key, entry in script.menu.items():
        out.setdefault(entry.say, f"menu {key}")
    for intent in script.intents:
        if intent.say:
            out[intent.say] = intent.name
    return out


def record_of(session: Any, records: Records, now: float | None = None) -> CallRecord:
    """The record of an ended call (:class:`hotline.server.session.CallSession`)."""
    call = session.call
    transcript = call.transcript
    latencies = {t.utterance_id: _latency(t) for t in session.latencies}
    turns: list[dict[str, Any]] = []
    if transcript is not None:
        for entry in transcript.entries:
            item = entry.as_dict()
            if entry.utterance_id in latencies and entry.speaker.value == "hotline":
                item["latency_ms"] = latencies[entry.utterance_id]
            turns.append(item)
    topics = _topics(session.hub.script)
    for item in turns:
        if item["speaker"] == "hotline" and item["text"] in topics:
            item["topic"] = topics[item["text"]]
    runner = session.brain
    handoffs = []
    errors = [{"kind": kind, "count": count} for kind, count in session._error_kinds.items()]
    if runner is not None:
        if runner.handoff_data is not None:
            handoffs.append({"data": runner.handoff_data})
        if runner.fallbacks:
            errors.append({"kind": "brain fallback", "count": runner.fallbacks})
    if session.end_reason == "internal error":
        errors.append({"kind": "internal error", "count": 1})
    ended = time.time() if now is None else now
    return CallRecord(
        call_sid=session.call_sid,
        started_ms=int(session.started_at * 1000),
        ended_ms=int(ended * 1000),
        outcome=session.end_reason or "ended",
        ended_by=ended_by(session.end_reason),
        brain=session.hub.settings.listen.brain.value
        if session.mode.value == "script"
        else session.mode.value,
        resumes=session.resumes,
        turns=turns,
        barge_ins=call.barge_ins,
        handoffs=handoffs,
        errors=errors,
        **records.caller_fields(session.caller),
    )


def call_ended(session: Any) -> None:
    """Hand the ended call's record to the writer (never raises, never awaits)."""
    records = session.hub.records
    if records is None or session.call_sid is None:
        return
    try:
        records.submit(record_of(session, records))
    except Exception:
        log.exception("call %s: its record could not be made", session.call_sid)
