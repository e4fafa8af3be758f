"""The console's pages, data endpoints, live events and actions (``/console``).

Every page and data endpoint needs the session cookie (:mod:`.auth`): without it a page
redirects to the sign-in form (303) and a data endpoint answers 401. Every POST is checked for
the console's own origin and, past sign-in, for the session's CSRF token. Every console
response carries a Content-Security-Policy that allows only hotline's own scripts, styles and
connections, and no framing.

Say and Hang up go through :meth:`CallRegistry.command_anywhere`, the path of the admin API's
``say``/``hangup``: the replica holding the call acts, wherever the console was served from.
"""

from __future__ import annotations

import asyncio
import csv
import io
import json
import logging
import re
import time
from collections.abc import AsyncIterator
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import jinja2
from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.responses import StreamingResponse

from hotline import __version__
from hotline.records.model import CallRecord
from hotline.server.console.auth import ConsoleAuth, ConsoleSession, cookie_name, same_origin
from hotline.server.console.turns import STAGES, stages_from_marks
from hotline.server.hub import Hub

__all__ = ["CSP", "Console", "install"]

log = logging.getLogger("hotline.console")

HERE = Path(__file__).resolve().parent
PREFIX = "/console"
#: Only hotline's own assets and connections; no inline script or style, no framing.
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",  # no-referrer would make Origin "null" on posts
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-store",
}
_STATIC_TYPES = {".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8"}
#: Seconds between live snapshots; and how long one event stream lasts before the browser's
#: EventSource reconnects (a stream never outlives a deploy by much).
LIVE_INTERVAL = 0.5
STREAM_SECONDS = 30.0
MAX_FORM_BYTES = 16 * 1024
MAX_SAY_CHARS = 2000


def _static_files() -> dict[str, tuple[bytes, str]]:
    out: dict[str, tuple[bytes, str]] = {}
    for path in sorted((HERE / "static").iterdir()):
        kind = _STATIC_TYPES.get(path.suffix)
        if kind is not None:
            out[path.name] = (path.read_bytes(), kind)
    return out


class Console:
    """What the console's routes share: the hub, the sign-in, the templates, the assets."""

    def __init__(self, hub: Hub, auth: ConsoleAuth) -> None:
        self.hub = hub
        self.auth = auth
        self.secure = not hub.settings.insecure_dev
        self.cookie = cookie_name(self.secure)
        self.templates = jinja2.Environment(
            loader=jinja2.FileSystemLoader(HERE / "templates"),
            autoescape=True,
            undefined=jinja2.StrictUndefined,
        )
        self.templates.filters["ms"] = _ms
        self.static = _static_files()

    # ------------------------------------------------------------------ sessions

    def session(self, request: Request) -> ConsoleSession | None:
        return self.auth.session(request.cookies.get(self.cookie))

    def page(self, request: Request, name: str, status: int = 200, **context: Any) -> Response:
        session = context.pop("session", None) or self.session(request)
        html = self.templates.get_template(name).render(
            version=__version__,
            csrf=self.auth.csrf(session) if session is not None else "",
            signed_in=session is not None,
            stages=STAGES,
            **context,
        )
        return secured(HTMLResponse(html, status_code=status))


def secured(response: Response) -> Response:
    """The console's security headers on ``response``."""
    for key, value in _HEADERS.items():
        response.headers[key] = value
    return response


def _ms(value: float | None) -> str:
    if value is None:
        return "—"
    return f"{value:.1f} ms" if value < 10 else f"{value:.0f} ms"  # hotline's share is small


def _console(request: Request) -> Console:
    console: Console = request.app.state.console
    return console


def _refused(request: Request, console: Console) -> Response:
    """No valid session: a page goes to the sign-in form, data answers 401."""
    if not console.auth.enabled:
        return secured(
            Response("console disabled: set HOTLINE_ADMIN_TOKEN\n", 503, media_type="text/plain")
        )
    wants_page = "text/html" in request.headers.get("accept", "")
    if wants_page and request.method == "GET":
        return secured(RedirectResponse(f"{PREFIX}/sign-in", status_code=303))
    return secured(JSONResponse({"detail": "console session required"}, status_code=401))


async def _form(request: Request) -> dict[str, str] | None:
    """A small urlencoded form (None: not one). A body past :data:`MAX_FORM_BYTES` is not
    read on (the sign-in form takes posts from anyone)."""
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind != "application/x-www-form-urlencoded":
        return None
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FORM_BYTES:
            return None
    try:
        return dict(parse_qsl(body.decode("utf-8"), keep_blank_values=True))
    except UnicodeDecodeError:
        return None


def _wants_json(request: Request) -> bool:
    return "application/json" in request.headers.get("accept", "")


# ------------------------------------------------------------------------ live data


def _state(info: dict[str, Any], entries: list[dict[str, Any]]) -> str:
    """speaking / thinking / listening (ending once the goodbye plays or the stream closes)."""
    if info.get("state") in ("closing", "ended"):
        return "ending"
    if info.get("speaking"):
        return "speaking"
    if entries and entries[-1].get("speaker") == "caller":
        return "thinking"  # the caller's turn is in; no line of the reply has started
    return "listening"


def _last(entries: list[dict[str, Any]], speaker: str) -> str:
    for entry in reversed(entries):
        if entry.get("speaker") == speaker:
            return str(entry.get("text", ""))
    return ""


async def live_calls(hub: Hub) -> list[dict[str, Any]]:
    """Every live call (every replica's when clustered), newest first. The words of the
    current turn come from the transcript of a call held by this replica."""
    now = time.time()
    out: list[dict[str, Any]] = []
    for info in await hub.registry.all_infos():
        sid = info.get("call_sid")
        if not isinstance(sid, str) or not sid:
            continue
        local = hub.registry.get(sid)
        transcript = local.transcript_dict() if local is not None else None
        entries: list[dict[str, Any]] = transcript["entries"] if transcript else []
        started = float(info.get("started_at") or now)
        hearing = hub.console_turns.heard_so_far(sid) if local is not None else ""
        out.append(
            {
                "call_sid": sid,
                "caller": str(info.get("caller") or ""),
                "mode": _label(info.get("mode") or ""),
                "started_at": started,
                "duration_s": round(max(now - started, 0.0), 1),
                "state": _state(info, entries),
                "caller_words": hearing or _last(entries, "caller"),
                "caller_speaking": bool(hearing),
                "hotline_words": _last(entries, "hotline"),
                "barge_ins": int(info.get("barge_ins") or 0),
                "replica": str(info.get("replica") or "this one"),
                "here": local is not None,
            }
        )
    out.sort(key=lambda c: c["started_at"], reverse=True)
    return out


def _bar(ms: dict[str, float], scale: float) -> list[dict[str, Any]]:
    """The bar's segments: stage, milliseconds, x and width in percent of ``scale``."""
    x = 0.0
    out = []
    for stage in STAGES:
        value = max(float(ms.get(stage, 0.0)), 0.0)
        width = 100.0 * value / scale
        out.append({"stage": stage, "ms": value, "x": round(x, 3), "width": round(width, 3)})
        x += width
    return out


def call_events(hub: Hub, call_sid: str) -> list[dict[str, str]]:
    """What the log ring holds of a call beyond its words (redacted as ``/logs`` is): its
    warnings and errors, a brain's handoff or end, hotline hanging up."""
    mark = f"call {call_sid}:"
    out = []
    for record in hub.ring.snapshot():
        message = str(record.get("message", ""))
        if mark not in message:
            continue
        level = str(record.get("level", ""))
        if level in ("WARNING", "ERROR", "CRITICAL"):
            kind = "error"
        elif "ends the call (handoff" in message:
            kind = "handoff"
        elif "ends the call" in message or "hanging up" in message:
            kind = "end"
        else:
            continue
        text = message.split(mark, 1)[1].strip()
        out.append({"kind": kind, "time": str(record.get("time", "")), "text": text})
    return out[-50:]


def _timeline(
    entries: list[dict[str, Any]], latencies: dict[int, dict[str, float]]
) -> tuple[list[dict[str, Any]], int, float]:
    """The turns as shown: caller and hotline lines in order, a cut line with what the caller
    heard of it, a reply with its latency bar. Returns them, the barge-ins and the bar scale."""
    heard = {e["utterance_id"]: e for e in entries if e.get("speaker") == "heard"}
    totals = [ms["total"] for ms in latencies.values()] or [0.0]
    scale = max(max(totals), 1000.0)
    timeline: list[dict[str, Any]] = []
    for entry in entries:
        speaker = entry.get("speaker")
        if speaker not in ("caller", "hotline"):
            continue  # "heard" is shown with its line
        item: dict[str, Any] = {
            "speaker": speaker,
            "text": str(entry.get("text", "")),
            "at": float(entry.get("at", 0.0) or 0.0),
            "truncated": bool(entry.get("truncated")),
        }
        uid = entry.get("utterance_id")
        if speaker == "hotline" and uid is not None:
            cut = heard.get(uid)
            if cut is not None:
                item["heard"] = str(cut.get("text", ""))
                item["heard_ms"] = float(cut.get("heard_ms", 0.0) or 0.0)
            ms = latencies.get(uid)
            if ms is not None:
                item["latency"] = ms
                item["bar"] = _bar(ms, scale)
        timeline.append(item)
    return timeline, len(heard), scale


class RecordsDown(Exception):
    """The records database did not answer."""


async def _record(hub: Hub, call_sid: str) -> CallRecord | None:
    """The call's record, read as ``GET /history/{CallSid}`` reads it."""
    if hub.records is None:
        return None
    try:
        return await hub.records.get(call_sid)
    except Exception as exc:
        log.warning("console: the records database did not answer (%s)", type(exc).__name__)
        raise RecordsDown from None


def _record_view(hub: Hub, record: CallRecord) -> dict[str, Any]:
    latencies: dict[int, dict[str, float]] = {}
    for turn in record.turns:
        uid, marks = turn.get("utterance_id"), turn.get("latency_ms")
        if isinstance(uid, int) and isinstance(marks, dict):
            ms = stages_from_marks(marks)
            if ms is not None:
                latencies[uid] = ms
    timeline, _, scale = _timeline(record.turns, latencies)
    item = record.item()
    return {
        "call_sid": record.call_sid,
        "live": False,
        "caller": record.caller_masked,
        "started_at": item["started_at"],
        "duration_s": record.duration_s,
        "outcome": record.outcome,
        "ended_by": record.ended_by,
        "brain": record.brain,
        "resumes": record.resumes,
        "barge_ins": record.barge_ins,
        "handoffs": [json.dumps(h, sort_keys=True)[:300] for h in record.handoffs],
        "errors": [f"{e.get('kind', '?')} × {e.get('count', 1)}" for e in record.errors],
        "summary": record.summary or "",
        "events": call_events(hub, record.call_sid),
        "timeline": timeline,
        "dropped": 0,
        "scale_ms": scale,
        "source": "record",
    }


async def call_view(hub: Hub, call_sid: str) -> dict[str, Any] | None:
    """A call's page: its turns as a timeline (caller, hotline with what was heard of a cut
    line, each reply's latency bar). A live call from the Call itself (its transcript, the
    turn log); an ended one from its record (any replica's), or with records off from what
    this replica keeps of its recent calls.

    Raises:
        RecordsDown: the records database did not answer.
    """
    local = hub.registry.get(call_sid)
    live = local is not None and not local.end_reason
    if not live:
        record = await _record(hub, call_sid)
        if record is not None:
            return _record_view(hub, record)
    transcript = local.transcript_dict() if local is not None else None
    if transcript is None:
        ended = hub.transcripts.get(call_sid)
        transcript = ended.as_dict() if ended is not None else None
    latencies = {t["utterance_id"]: t["ms"] for t in hub.console_turns.get(call_sid)}
    if transcript is None and not latencies:
        return None
    entries: list[dict[str, Any]] = transcript["entries"] if transcript else []
    timeline, cut, scale = _timeline(entries, latencies)
    info = local.info() if local is not None else None
    return {
        "call_sid": call_sid,
        "live": live,
        "caller": info["caller"] if info else "",
        "started_at": None,
        "duration_s": round(time.time() - info["started_at"], 1) if info else None,
        "outcome": "",
        "ended_by": "",
        "brain": _label(hub.settings.listen.brain),
        "resumes": 0,
        "barge_ins": info["barge_ins"] if info else cut,
        "handoffs": [],
        "errors": [],
        "summary": "",
        "events": call_events(hub, call_sid),
        "timeline": timeline,
        "dropped": transcript.get("dropped", 0) if transcript else 0,
        "scale_ms": scale,
        "source": "live" if live else "memory",
    }


def _label(value: object) -> str:
    return str(getattr(value, "value", value))


async def health_view(hub: Hub) -> dict[str, Any]:
    settings = hub.settings
    listen = settings.listen
    warnings = [
        r for r in hub.ring.snapshot() if r.get("level") in ("WARNING", "ERROR", "CRITICAL")
    ][-50:]
    cluster = hub.cluster
    here = cluster.replica if cluster is not None else "this one alone"
    replicas: dict[str, int] = {here: 0}
    for info in await hub.registry.all_infos():  # every replica with live calls, when clustered
        name = str(info.get("replica") or here)
        replicas[name] = replicas.get(name, 0) + 1
    redis = "off"
    if cluster is not None:
        redis = f"up ({cluster.outages} outages)" if cluster.up else "down: serving alone"
    return {
        "version": __version__,
        "status": "draining" if hub.registry.draining else "ok",
        "replica": here,
        "replicas": [{"name": k, "live_calls": v} for k, v in sorted(replicas.items())],
        "redis": redis,
        "voice": {
            "source": _label(hub.tts_source),
            "ready": hub.tts is not None,
            "output_format": settings.elevenlabs_output_format,
        },
        "stt": {
            "provider": _label(listen.stt) if listen.stt is not None else "off",
            "ear": hub.stt_url is not None,
        },
        "brain": {"kind": _label(listen.brain)},
        "live_calls": len(hub.registry.calls),
        "warnings": list(reversed(warnings)),
    }


# ------------------------------------------------------------------------ routes

router = APIRouter(prefix=PREFIX)


@router.get("/static/{name}")
async def static(name: str, request: Request) -> Response:
    found = _console(request).static.get(name)
    if found is None:
        return secured(Response("not found\n", 404, media_type="text/plain"))
    body, kind = found
    response = Response(body, media_type=kind)
    response.headers["Cache-Control"] = "no-cache"
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response


@router.get("/sign-in")
async def sign_in_form(request: Request) -> Response:
    console = _console(request)
    if console.session(request) is not None:
        return secured(RedirectResponse(PREFIX, status_code=303))
    return console.page(request, "sign_in.html", error="", enabled=console.auth.enabled)


@router.post("/sign-in")
async def sign_in(request: Request) -> Response:
    console = _console(request)
    hub = console.hub
    if not same_origin(request, hub.settings.public_url):
        return secured(Response("cross-origin sign-in refused\n", 403, media_type="text/plain"))
    client = hub.limiter.client(request)
    form = await _form(request)
    cookie = console.auth.sign_in(form.get("token", "")) if form is not None else None
    if cookie is None:
        if hub.limiter.blocked(client):
            return console.page(
                request,
                "sign_in.html",
                429,
                error="Too many failed sign-ins: wait a minute.",
                enabled=console.auth.enabled,
            )
        hub.limiter.failed(client)
        log.warning("console sign-in refused: wrong admin token")
        return console.page(
            request,
            "sign_in.html",
            401,
            error="That is not the admin token.",
            enabled=console.auth.enabled,
        )
    response = secured(RedirectResponse(PREFIX, status_code=303))
    response.set_cookie(
        console.cookie,
        cookie,
        max_age=int(console.auth.lifetime),
        path="/",
        secure=console.secure,
        httponly=True,
        samesite="strict",
    )
    log.info("console: signed in")
    return response


async def _guard(request: Request) -> tuple[Console, ConsoleSession | None]:
    """The console and the request's session (None: none, or signed out on any replica)."""
    console = _console(request)
    session = console.session(request)
    if session is not None and await _revoked_elsewhere(console, session):
        return console, None
    return console, session


def _revoked_key(console: Console, session: ConsoleSession) -> str:
    assert console.hub.cluster is not None
    return f"{console.hub.cluster.prefix}:console:revoked:{session.nonce}"


async def _revoked_elsewhere(console: Console, session: ConsoleSession) -> bool:
    """Signed out on another replica (Redis; with Redis down, this replica's own list)."""
    cluster = console.hub.cluster
    if cluster is None or not cluster.up:
        return False
    try:
        return bool(await cluster.client.exists(_revoked_key(console, session)))
    except Exception:
        return False


async def _revoke(console: Console, session: ConsoleSession) -> None:
    """Sign ``session`` out here, and on every replica through Redis when there is one."""
    console.auth.revoke(session)
    cluster = console.hub.cluster
    if cluster is None or not cluster.up:
        return
    ttl = max(int((session.expires - time.time()) * 1000), 1)
    try:
        await cluster.client.set(_revoked_key(console, session), 1, px=ttl)
    except Exception as exc:
        log.warning("console: sign-out not shared (Redis: %s)", type(exc).__name__)


async def _checked_post(
    request: Request,
) -> tuple[Console, ConsoleSession, dict[str, str]] | Response:
    """A console POST: session, same origin, CSRF token (form field or ``X-CSRF-Token``)."""
    console, session = await _guard(request)
    if session is None:
        return _refused(request, console)
    if not same_origin(request, console.hub.settings.public_url):
        return secured(JSONResponse({"detail": "cross-origin request refused"}, status_code=403))
    form = await _form(request) or {}  # anything but a small urlencoded form has no fields
    token = request.headers.get("x-csrf-token") or form.get("csrf")
    if not console.auth.csrf_ok(session, token):
        log.warning("console: action refused: missing or wrong CSRF token")
        return secured(JSONResponse({"detail": "CSRF token missing or wrong"}, status_code=403))
    return console, session, form


@router.post("/sign-out")
async def sign_out(request: Request) -> Response:
    checked = await _checked_post(request)
    if isinstance(checked, Response):
        return checked
    console, session, _ = checked
    await _revoke(console, session)
    response = secured(RedirectResponse(f"{PREFIX}/sign-in", status_code=303))
    response.delete_cookie(
        console.cookie, path="/", secure=console.secure, httponly=True, samesite="strict"
    )
    return response


@router.get("")
async def live_page(request: Request) -> Response:
    console, session = await _guard(request)
    if session is None:
        return _refused(request, console)
    calls = await live_calls(console.hub)
    return console.page(request, "live.html", session=session, calls=calls, title="Live calls")


@router.get("/live.json")
async def live_json(request: Request) -> Response:
    console, session = await _guard(request)
    if session is None:
        return _refused(request, console)
    return secured(JSONResponse({"calls": await live_calls(console.hub)}))


@router.get("/live/events")
async def live_events(request: Request) -> Response:
    """Server-sent events: ``calls`` (the live calls, when they change, and at least every few
    seconds for the durations). The stream ends after :data:`STREAM_SECONDS`; the browser's
    EventSource reconnects (``retry``)."""
    console, session = await _guard(request)
    if session is None:
        return _refused(request, console)
    hub = console.hub

    async def events() -> AsyncIterator[bytes]:
        yield b"retry: 1000\n\n"
        loop = asyncio.get_running_loop()
        end = loop.time() + STREAM_SECONDS
        last = ""
        last_sent = 0.0
        while loop.time() < end and console.auth.session(request.cookies.get(console.cookie)):
            calls = await live_calls(hub)
            shape = json.dumps([{**c, "duration_s": 0} for c in calls], sort_keys=True)
            if shape != last or loop.time() - last_sent >= 1.0:
                last, last_sent = shape, loop.time()
                body = json.dumps({"calls": calls}, separators=(",", ":"))
                yield f"event: calls\ndata: {body}\n\n".encode()
            if await request.is_disconnected():
                return
            await asyncio.sleep(LIVE_INTERVAL)

    response = StreamingResponse(events(), media_type="text/event-stream")
    response.headers["X-Accel-Buffering"] = "no"  # nginx: do not hold the events back
    return secured(response)


async def _act(request: Request, call_sid: str, op: str) -> Response:
    checked = await _checked_post(request)
    if isinstance(checked, Response):
        return checked
    console, _, form = checked
    body: dict[str, Any] = {}
    if op == "say":
        text = form.get("text", "").strip()
        if not text or len(text) > MAX_SAY_CHARS:
            return secured(
                JSONResponse(
                    {"detail": f"text must be 1 to {MAX_SAY_CHARS} characters"}, status_code=422
                )
            )
        body = {"text": text, "interrupt": form.get("interrupt") in ("1", "on", "true")}
    status, payload = await console.hub.registry.command_anywhere(call_sid, op, body)
    log.info("console: %s on call %s answered %d", op, call_sid, status)
    if _wants_json(request):
        return secured(JSONResponse(payload, status_code=status))
    return secured(RedirectResponse(PREFIX, status_code=303))


@router.post("/calls/{call_sid}/say")
async def say(call_sid: str, request: Request) -> Response:
    return await _act(request, call_sid, "say")


@router.post("/calls/{call_sid}/hangup")
async def hangup(call_sid: str, request: Request) -> Response:
    return await _act(request, call_sid, "hangup")


async def _call_or_refusal(
    request: Request, call_sid: str, page: bool
) -> tuple[Console, ConsoleSession, dict[str, Any]] | Response:
    console, session = await _guard(request)
    if session is None:
        return _refused(request, console)
    try:
        view = await call_view(console.hub, call_sid)
    except RecordsDown:
        if page:
            return console.page(
                request,
                "missing.html",
                503,
                session=session,
                title="Records unavailable",
                call_sid=call_sid,
                down=True,
            )
        return secured(JSONResponse({"detail": "records database unavailable"}, 503))
    if view is None:
        if page:
            return console.page(
                request,
                "missing.html",
                404,
                session=session,
                title="No such call",
                call_sid=call_sid,
                down=False,
            )
        return secured(JSONResponse({"detail": "no such call"}, status_code=404))
    return console, session, view


@router.get("/calls/{call_sid}")
async def call_page(call_sid: str, request: Request) -> Response:
    found = await _call_or_refusal(request, call_sid, page=True)
    if isinstance(found, Response):
        return found
    console, session, view = found
    return console.page(request, "call.html", session=session, call=view, title="Call")


@router.get("/calls/{call_sid}/timeline")
async def call_timeline(call_sid: str, request: Request) -> Response:
    """The call page's timeline alone (what the page's script swaps in while the call is live)."""
    found = await _call_or_refusal(request, call_sid, page=False)
    if isinstance(found, Response):
        return found
    console, session, view = found
    return console.page(request, "timeline.html", session=session, call=view)


@router.get("/calls/{call_sid}/data")
async def call_json(call_sid: str, request: Request) -> Response:
    found = await _call_or_refusal(request, call_sid, page=False)
    if isinstance(found, Response):
        return found
    return secured(JSONResponse(found[2]))


# ------------------------------------------------------------------------ history

#: Who ended a call (the records' ``ended_by``): the History page's outcome filter.
OUTCOMES = ("caller", "hotline", "admin", "replica", "error")
#: Rows one export holds at most; rows a filtered page scans at most.
EXPORT_ROWS = 10_000
SCAN_ROWS = 2_000
PAGE_ROWS = 50
_CSV_COLUMNS = (
    "call_sid",
    "started_at",
    "ended_at",
    "duration_s",
    "outcome",
    "ended_by",
    "brain",
    "caller",
    "turns",
    "summary",
)


class Filters:
    """The History form: dates (UTC days), a caller's number, who ended the call.

    Sent as a POST form (CSRF-checked), never in a URL: a caller's number would otherwise
    land in proxies' logs and the browser's history.
    """

    def __init__(self, form: dict[str, str]) -> None:
        self.date_from = form.get("from", "").strip()
        self.date_to = form.get("to", "").strip()
        self.caller = form.get("caller", "").strip()
        self.outcome = form.get("outcome", "").strip()
        self.cursor = form.get("cursor", "").strip() or None
        self.errors: list[str] = []
        self.since_ms = self._day("from", self.date_from, 0)
        self.until_ms = self._day("to", self.date_to, 1)  # the whole "to" day
        if self.outcome and self.outcome not in OUTCOMES:
            self.errors.append(f"outcome must be one of {', '.join(OUTCOMES)}")

    def _day(self, name: str, text: str, add_days: int) -> int | None:
        if not text:
            return None
        try:
            day = date.fromisoformat(text)
        except ValueError:
            self.errors.append(f"{name} must be a date (YYYY-MM-DD)")
            return None
        moment = datetime(day.year, day.month, day.day, tzinfo=timezone.utc)
        return int((moment + timedelta(days=add_days)).timestamp() * 1000)

    def as_form(self) -> dict[str, str]:
        return {
            "from": self.date_from,
            "to": self.date_to,
            "caller": self.caller,
            "outcome": self.outcome,
        }


async def history_rows(
    hub: Hub, filters: Filters, want: int, scan: int
) -> tuple[list[dict[str, Any]], str | None]:
    """Ended calls, newest first, read through the records' own query (what ``GET /history``
    runs): up to ``want`` that match, scanning at most ``scan`` records (the outcome is
    filtered here). Returns them (``GET /history`` items) and the cursor to go on from.

    Raises:
        RecordsDown: the database did not answer.
        ValueError: a bad filter (the message says which).
    """
    records = hub.records
    if records is None:
        return [], None
    key = None
    if filters.caller:
        key = records.key_of(filters.caller)
        if key is None:
            raise ValueError("caller must be a phone number")
    out: list[dict[str, Any]] = []
    cursor = filters.cursor
    scanned = 0
    while len(out) < want and scanned < scan:
        try:
            page, cursor = await records.store.history(
                limit=200 if filters.outcome else max(1, min(200, want - len(out))),
                cursor=cursor,
                caller_key=key,
                since_ms=filters.since_ms,
                until_ms=filters.until_ms,
            )
        except ValueError:
            raise ValueError("that page is no longer valid: start again") from None
        except Exception as exc:
            log.warning("console: the records database did not answer (%s)", type(exc).__name__)
            raise RecordsDown from None
        scanned += len(page)
        # whole pages: the cursor goes on after the last record read (a filtered page may
        # hold a few more than ``want``)
        out += [r.item() for r in page if not filters.outcome or r.ended_by == filters.outcome]
        if cursor is None:
            break
    return out, cursor


async def _history(request: Request, form: dict[str, str]) -> Response:
    console, session = await _guard(request)
    assert session is not None
    filters = Filters(form)
    rows: list[dict[str, Any]] = []
    after = None
    status = 200
    if not filters.errors:
        try:
            rows, after = await history_rows(console.hub, filters, PAGE_ROWS, SCAN_ROWS)
        except ValueError as exc:
            filters.errors.append(str(exc))
        except RecordsDown:
            filters.errors.append("The records database is not available; try again.")
            status = 503
    if filters.errors and status == 200:
        status = 422
    return console.page(
        request,
        "history.html",
        status,
        session=session,
        title="History",
        rows=rows,
        after=after,
        filters=filters,
        outcomes=OUTCOMES,
        records_on=console.hub.records is not None,
    )


@router.get("/history")
async def history_page(request: Request) -> Response:
    console, session = await _guard(request)
    if session is None:
        return _refused(request, console)
    return await _history(request, {})


@router.post("/history")
async def history_search(request: Request) -> Response:
    checked = await _checked_post(request)
    if isinstance(checked, Response):
        return checked
    return await _history(request, checked[2])


_NUMBERISH = re.compile(r"\+?[0-9*]+")


def _cell(value: object) -> str:
    """A CSV cell a spreadsheet will not run: a leading = + - @ (or tab, CR) is quoted away,
    except in a (masked) number, which holds no formula."""
    text = "" if value is None else str(value)
    if text[:1] in ("=", "+", "-", "@", "\t", "\r") and not _NUMBERISH.fullmatch(text):
        return "'" + text
    return text


@router.post("/history/export")
async def history_export(request: Request) -> Response:
    """The filtered history as CSV or JSON (``format``), at most :data:`EXPORT_ROWS` calls."""
    checked = await _checked_post(request)
    if isinstance(checked, Response):
        return checked
    console, _, form = checked
    kind = form.get("format", "csv")
    filters = Filters({**form, "cursor": ""})
    if kind not in ("csv", "json") or filters.errors:
        detail = "; ".join(filters.errors) or "format must be csv or json"
        return secured(JSONResponse({"detail": detail}, status_code=422))
    try:
        rows, _ = await history_rows(console.hub, filters, EXPORT_ROWS, EXPORT_ROWS * 5)
        rows = rows[:EXPORT_ROWS]
    except ValueError as exc:
        return secured(JSONResponse({"detail": str(exc)}, status_code=422))
    except RecordsDown:
        return secured(JSONResponse({"detail": "records database unavailable"}, 503))
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    if kind == "json":
        body = json.dumps({"calls": rows}, ensure_ascii=False, indent=1).encode()
        media = "application/json"
    else:
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\r\n")
        writer.writerow(_CSV_COLUMNS)
        for row in rows:
            writer.writerow([_cell(row.get(c)) for c in _CSV_COLUMNS])
        body = buffer.getvalue().encode("utf-8")
        media = "text/csv; charset=utf-8"
    response = Response(body, media_type=media)
    response.headers["Content-Disposition"] = f'attachment; filename="hotline-calls-{stamp}.{kind}"'
    return secured(response)


@router.get("/health")
async def health_page(request: Request) -> Response:
    console, session = await _guard(request)
    if session is None:
        return _refused(request, console)
    view = await health_view(console.hub)
    return console.page(request, "health.html", session=session, health=view, title="Health")


@router.get("/health.json")
async def health_json(request: Request) -> Response:
    console, session = await _guard(request)
    if session is None:
        return _refused(request, console)
    return secured(JSONResponse(await health_view(console.hub)))


def install(app: FastAPI, hub: Hub) -> None:
    """Serve the console on ``app`` (off, answering 503, without ``HOTLINE_ADMIN_TOKEN``)."""
    hours = hub.settings.console_session_hours
    app.state.console = Console(hub, ConsoleAuth(hub.settings.admin_token, hours * 3600.0))
    app.include_router(router)
