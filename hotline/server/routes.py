"""HTTP and WebSocket endpoints."""

from __future__ import annotations

import logging
from datetime import datetime, timezone
from typing import Annotated, Any
from urllib.parse import parse_qsl

from fastapi import APIRouter, Depends, HTTPException, Request, WebSocket
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST
from pydantic import BaseModel, ConfigDict, Field
from twilio.twiml.voice_response import Connect, VoiceResponse

from hotline import __version__
from hotline.records.model import CallRecord
from hotline.records.service import Records
from hotline.server.brain_runner import APP_PARAMETER, CALL_FIELDS
from hotline.server.hub import CallMode, Hub
from hotline.server.logs import AUDIO_LOGGERS
from hotline.server.registry import MAX_RESUMES
from hotline.server.session import CallSession

__all__ = ["router"]

log = logging.getLogger("hotline.http")
router = APIRouter()

MEDIA_PATH = "/media-stream"
ENDED_PATH = "/stream-ended"
STATUS_PATH = "/stream-status"
MAX_FORM_BYTES = 64 * 1024


class _Form(dict[str, list[str]]):
    """Form fields with every value kept (RequestValidator signs all of them)."""

    def getlist(self, key: str) -> list[str]:
        return self[key]

    def first(self, key: str) -> str:
        values = self.get(key)
        return values[0] if values else ""


def _hub(conn: Request | WebSocket) -> Hub:
    hub: Hub = conn.app.state.hub
    return hub


def _client(conn: Request | WebSocket) -> str:
    return _hub(conn).limiter.client(conn)  # X-Forwarded-For only from trusted proxies


def _algorithm(conn: Request | WebSocket) -> str | None:
    return conn.headers.get("x-twilio-webhooks-signature-settings")  # SharedKey + algorithm


# ------------------------------------------------------------------------- Twilio webhooks


async def _signed_form(request: Request) -> _Form | Response:
    """The webhook's form if it is signed by Twilio, else the refusal to answer with."""
    hub = _hub(request)
    client = _client(request)
    endpoint = request.url.path.lstrip("/")
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    body = await request.body()
    if content_type != "application/x-www-form-urlencoded" or len(body) > MAX_FORM_BYTES:
        return Response(
            "expected an application/x-www-form-urlencoded body (at most 64 KiB)\n",
            status_code=415,
            media_type="text/plain",
        )
    try:
        pairs = parse_qsl(body.decode("utf-8"), keep_blank_values=True, strict_parsing=False)
    except UnicodeDecodeError:
        return Response("form body is not UTF-8\n", status_code=400, media_type="text/plain")
    form = _Form()
    for key, value in pairs:
        form.setdefault(key, []).append(value)
    signature = request.headers.get("x-twilio-signature")
    url = hub.signatures.http_url(request)
    if not hub.signatures.valid(url, form, signature, _algorithm(request)):  # type: ignore[arg-type]
        hub.metrics.signature_failures.labels(endpoint).inc()
        if hub.limiter.blocked(client):  # only invalid attempts are limited
            return Response(
                "too many failed signatures\n", status_code=429, media_type="text/plain"
            )
        hub.limiter.failed(client)
        log.warning(
            "POST /%s refused: %s Twilio signature",
            endpoint,
            "missing" if not signature else "invalid",
        )
        return Response("invalid Twilio signature\n", status_code=403, media_type="text/plain")
    if not form.first("CallSid"):
        return Response("CallSid missing\n", status_code=400, media_type="text/plain")
    return form


def _stream_twiml(request: Request, form: _Form, mode: CallMode, resume: int = 0) -> Response:
    """``<Connect action><Stream statusCallback>`` with a fresh per-call token.

    The action URL brings the call back to hotline when the stream ends: ``<Hangup/>`` if
    hotline ended it, a new stream (this answer again, ``resume`` > 0) if the replica died.
    The webhook's :data:`CALL_FIELDS` and the script's ``[relay.parameters]`` (their
    ``{{Field}}``s filled from this webhook) ride on the stream as ``<Parameter>``s, so the
    replica the stream lands on has them.
    """
    call_sid, caller = form.first("CallSid"), form.first("From")
    hub = _hub(request)
    signatures = hub.signatures
    token = hub.tokens.issue(call_sid, caller, mode)
    if hub.records is not None and mode is CallMode.SCRIPT:
        hub.records.prefetch(call_sid, caller)  # a returning caller's memory, for the stream
    response = VoiceResponse()
    connect = Connect(action=signatures.public_http_url(request, f"{ENDED_PATH}?mode={mode}"))
    stream = connect.stream(
        url=signatures.ws_url(request, MEDIA_PATH),
        status_callback=signatures.public_http_url(request, STATUS_PATH),
        status_callback_method="POST",
    )
    stream.parameter(name="CallSid", value=call_sid)
    stream.parameter(name="From", value=caller)
    stream.parameter(name="token", value=token)
    if resume:
        stream.parameter(name="resume", value=str(resume))
    for name in CALL_FIELDS:
        if form.first(name):
            stream.parameter(name=name, value=form.first(name)[: 499 - len(name)])
    webhook = {key: values[0] for key, values in form.items() if values}
    for name, value in hub.script.relay.custom_parameters(webhook).items():
        name = APP_PARAMETER + name
        stream.parameter(name=name, value=value[: max(0, 499 - len(name))])
    response.append(connect)
    return Response(str(response), media_type="application/xml")


async def _twiml(request: Request, mode: CallMode) -> Response:
    form = await _signed_form(request)
    if isinstance(form, Response):
        return form
    call_sid = form.first("CallSid")
    # No TTS socket is opened here: the stream may land on another replica. It is opened
    # where the upgrade lands (media_stream below), overlapping Twilio's connected/start.
    log.info("call %s: %s webhook answered with a media stream", call_sid, request.url.path)
    return _stream_twiml(request, form, mode)


def _hangup() -> Response:
    response = VoiceResponse()
    response.hangup()
    return Response(str(response), media_type="application/xml")


@router.post("/voice")
async def voice(request: Request) -> Response:
    return await _twiml(request, CallMode.SCRIPT)


@router.post("/debug-websocket-voice")
async def debug_websocket_voice(request: Request) -> Response:
    return await _twiml(request, CallMode.DEBUG)


@router.post(ENDED_PATH)
async def stream_ended(request: Request) -> Response:
    """Twilio's ``<Connect action>``: the media stream has ended.

    If hotline ended it on purpose (recorded before the close, shared through Redis), the
    call is over: ``<Hangup/>``; if the brain ended it for a person, the handoff's TwiML
    (:mod:`hotline.server.handoff`). Otherwise its replica died (or was stopped mid-call): answer
    a new stream here, the caller hears the script's ``reconnect`` line and the call goes on.
    """
    form = await _signed_form(request)
    if isinstance(form, Response):
        return form
    hub = _hub(request)
    call_sid = form.first("CallSid")
    status = form.first("CallStatus")
    if status in ("completed", "busy", "failed", "no-answer", "canceled"):
        return _hangup()  # the caller is gone
    ended = await hub.registry.ended_on_purpose(call_sid)
    if ended is not None and ended.handoff is not None and hub.handoff is not None:
        log.info("call %s: stream ended for a person; handing the call on", call_sid)
        fields = {key: values[0] for key, values in form.items() if values}
        twiml = await hub.handoff.twiml(fields, ended.handoff, call_sid)
        return Response(twiml, media_type="application/xml")
    if ended is not None:
        log.info("call %s: stream ended by hotline; hanging up", call_sid)
        return _hangup()
    try:
        mode = CallMode(request.query_params.get("mode", CallMode.SCRIPT.value))
    except ValueError:
        mode = CallMode.SCRIPT
    if mode is CallMode.DEBUG:
        return _hangup()  # the debug call is its greeting: nothing to resume
    resumes = await hub.registry.count_resume(call_sid)
    if resumes > MAX_RESUMES:
        log.warning("call %s: stream lost %d times; hanging up", call_sid, resumes)
        return _hangup()
    state = await hub.registry.last_state(call_sid)
    hub.metrics.stream_resumes.inc()
    log.info(
        "call %s: stream lost (not ended by hotline; resume %d, %d utterances before); "
        "answering a new stream",
        call_sid,
        resumes,
        int(state.get("utterances", 0) or 0),
    )
    return _stream_twiml(request, form, mode, resume=resumes)


@router.post(STATUS_PATH)
async def stream_status(request: Request) -> Response:
    """``<Stream statusCallback>``: stream-started / stream-stopped / stream-error."""
    form = await _signed_form(request)
    if isinstance(form, Response):
        return form
    hub = _hub(request)
    event = form.first("StreamEvent")
    label = event if event in ("stream-started", "stream-stopped", "stream-error") else "other"
    hub.metrics.stream_events.labels(label).inc()
    if label == "stream-error" and hub.registry.first_stream_error(form.first("CallSid")):
        log.warning(
            "call %s: Twilio reports a stream error: %s (further ones counted only)",
            form.first("CallSid"),
            form.first("StreamError")[:200] or "(no detail)",
        )
    return Response(status_code=204)


@router.websocket(MEDIA_PATH)
async def media_stream(ws: WebSocket) -> None:
    hub = _hub(ws)
    client = _client(ws)
    signature = ws.headers.get("x-twilio-signature")
    url = hub.signatures.ws_url(ws, MEDIA_PATH)
    if not hub.signatures.valid(url, {}, signature, _algorithm(ws)):
        hub.metrics.signature_failures.labels("media-stream").inc()
        if not hub.limiter.blocked(client):  # a blocked address's failures are not counted
            hub.limiter.failed(client)
            log.warning(
                "media stream upgrade refused: %s Twilio signature",
                "missing" if not signature else "invalid",
            )
        await ws.close(code=1008)  # before accept: the upgrade is answered with HTTP 403
        return
    # The call's TTS socket is opened here, where the stream landed: its handshake overlaps
    # the WebSocket accept and Twilio's connected/start; the session's start takes it, and a
    # stream that never starts closes it (nothing is left on any replica).
    async with hub.speech.stream_socket(hub.tts) as tts:
        await ws.accept()
        await CallSession(hub, ws, tts_socket=tts).run()


# --------------------------------------------------------------------------------- health


@router.get("/health")
async def health(request: Request) -> JSONResponse:
    if _hub(request).registry.draining:  # SIGTERM: the platform routes new calls elsewhere
        return JSONResponse({"status": "draining", "version": __version__}, status_code=503)
    return JSONResponse({"status": "ok", "version": __version__})


@router.get("/health/streaming")
async def health_streaming(request: Request) -> dict[str, Any]:
    hub = _hub(request)
    settings = hub.settings
    return {
        "streaming_enabled": hub.tts is not None,
        "elevenlabs_configured": settings.elevenlabs_api_key is not None,
        "voice": hub.tts_source,
        "output_format": settings.elevenlabs_output_format,
        "websocket_url": hub.signatures.ws_url(request, MEDIA_PATH),
        "status": "ok" if hub.tts is not None else "starting",
    }


@router.get("/metrics")
async def metrics(request: Request) -> Response:
    return Response(_hub(request).metrics.render(), media_type=CONTENT_TYPE_LATEST)


# ---------------------------------------------------------------------------------- admin


async def require_admin(request: Request) -> Hub:
    hub = _hub(request)
    if not hub.admin.enabled:
        raise HTTPException(503, "admin disabled: set HOTLINE_ADMIN_TOKEN")
    if not hub.admin.check(request.headers.get("authorization")):
        raise HTTPException(401, "admin bearer token required", {"WWW-Authenticate": "Bearer"})
    return hub


Admin = Annotated[Hub, Depends(require_admin)]


class SayBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    text: str = Field(min_length=1, max_length=2000)
    interrupt: bool = False


@router.get("/logs")
async def logs(hub: Admin, limit: int = 200) -> dict[str, Any]:
    return {"records": hub.ring.snapshot(limit=max(1, min(limit, 1000)))}


@router.get("/logs/streaming")
async def logs_streaming(hub: Admin, limit: int = 200) -> dict[str, Any]:
    return {"records": hub.ring.snapshot(AUDIO_LOGGERS, limit=max(1, min(limit, 1000)))}


@router.get("/calls")
async def calls(hub: Admin) -> dict[str, Any]:
    return {"calls": await hub.registry.all_infos()}  # every replica's when clustered


async def _command(hub: Hub, call_sid: str, op: str, body: dict[str, Any]) -> JSONResponse:
    """Act here if this replica holds the call, else on the replica that does (Redis)."""
    status, payload = await hub.registry.command_anywhere(call_sid, op, body)
    if status >= 400:
        raise HTTPException(status, payload["detail"])
    return JSONResponse(payload, status_code=status)


@router.post("/calls/{call_sid}/say", status_code=202)
async def say(call_sid: str, body: SayBody, hub: Admin) -> JSONResponse:
    if not body.text.strip():
        raise HTTPException(422, "text must not be blank")
    return await _command(hub, call_sid, "say", {"text": body.text, "interrupt": body.interrupt})


@router.get("/calls/{call_sid}/transcript")
async def transcript(call_sid: str, hub: Admin) -> dict[str, Any]:
    """What was said on a call: live on this replica, else from its record (any replica's;
    with records off, the last ended calls of this replica)."""
    live = hub.registry.get(call_sid)
    data = live.transcript_dict() if live is not None else None
    if data is None and hub.records is not None:
        record = await _record(hub, call_sid)
        if record is not None:
            data = {"entries": record.turns, "dropped": 0, "ended": True}
    if data is None and hub.records is None:
        ended = hub.transcripts.get(call_sid)
        data = ended.as_dict() if ended is not None else None
    if data is None:
        raise HTTPException(404, "no transcript for that call")
    return {"call_sid": call_sid, **data}


# ------------------------------------------------------------------------- call records


def _records(hub: Hub) -> Records:
    if hub.records is None:
        raise HTTPException(404, "call records are off (HOTLINE_DATABASE_URL=off)")
    return hub.records


def _unavailable(exc: Exception) -> HTTPException:
    log.warning("records: the database did not answer (%s)", type(exc).__name__)
    return HTTPException(503, "the records database is not available; try again")


async def _record(hub: Hub, call_sid: str) -> CallRecord | None:
    try:
        return await _records(hub).get(call_sid)
    except HTTPException:
        raise
    except Exception as exc:
        raise _unavailable(exc) from None


def _moment(name: str, raw: str | None) -> int | None:
    """``since``/``until``: an ISO 8601 date or time (UTC unless it says) or epoch seconds."""
    if raw is None or not raw.strip():
        return None
    text = raw.strip()
    try:
        return int(float(text) * 1000)
    except ValueError:
        pass
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise HTTPException(
            422, f"{name} must be an ISO 8601 date or time, or epoch seconds"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return int(moment.timestamp() * 1000)


@router.get("/history")
async def history(
    hub: Admin,
    limit: int = 50,
    cursor: str | None = None,
    caller: str | None = None,
    since: str | None = None,
    until: str | None = None,
) -> dict[str, Any]:
    """Ended calls, newest first: ``{"calls": [...], "next": <cursor or null>}``."""
    records = _records(hub)
    if not 1 <= limit <= 200:
        raise HTTPException(422, "limit must be within 1..200")
    key = None
    if caller is not None:
        key = records.key_of(caller)
        if key is None:
            raise HTTPException(422, "caller must be a phone number")
    since_ms, until_ms = _moment("since", since), _moment("until", until)
    try:
        page, after = await records.store.history(
            limit=limit, cursor=cursor, caller_key=key, since_ms=since_ms, until_ms=until_ms
        )
    except ValueError as exc:
        raise HTTPException(422, str(exc)) from None
    except Exception as exc:
        raise _unavailable(exc) from None
    return {"calls": [r.item() for r in page], "next": after}


@router.get("/history/{call_sid}")
async def history_call(call_sid: str, hub: Admin) -> dict[str, Any]:
    """One call's whole record."""
    record = await _record(hub, call_sid)
    if record is None:
        raise HTTPException(404, "no record of that call")
    return record.as_dict()


@router.delete("/callers/{number}")
async def forget_caller(number: str, hub: Admin) -> dict[str, Any]:
    """Forget a caller: their records, and so their memory."""
    records = _records(hub)
    if records.key_of(number) is None:
        raise HTTPException(422, "not a phone number")
    try:
        deleted = await records.forget(number)
    except Exception as exc:
        raise _unavailable(exc) from None
    log.info("records: a caller was erased (%d record(s))", deleted)
    return {"deleted": deleted}


@router.post("/calls/{call_sid}/hangup", status_code=202)
async def hangup(call_sid: str, hub: Admin) -> JSONResponse:
    return await _command(hub, call_sid, "hangup", {})
