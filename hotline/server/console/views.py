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
import json
import logging
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import jinja2
from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.responses import StreamingResponse

from hotline import __version__
from hotline.server.console.auth import ConsoleAuth, ConsoleSession, cookie_name, same_origin
from hotline.server.console.turns import STAGES
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
    return "—" if value is None else f"{value:.0f} ms"


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
    """A small urlencoded form (None: not one)."""
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    body = await request.body()
    if kind != "application/x-www-form-urlencoded" or len(body) > MAX_FORM_BYTES:
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


def call_view(hub: Hub, call_sid: str) -> dict[str, Any] | None:
    """A call's page: its turns as a timeline (caller, hotline with what was heard of a cut
    line, each reply's latency bar), live or recently ended on this replica."""
    local = hub.registry.get(call_sid)
    transcript = local.transcript_dict() if local is not None else None
    if transcript is None:
        ended = hub.transcripts.get(call_sid)
        transcript = ended.as_dict() if ended is not None else None
    latencies = {t["utterance_id"]: t for t in hub.console_turns.get(call_sid)}
    if transcript is None and not latencies:
        return None
    entries: list[dict[str, Any]] = transcript["entries"] if transcript else []
    heard = {e["utterance_id"]: e for e in entries if e.get("speaker") == "heard"}
    totals = [t["ms"]["total"] for t in latencies.values()] or [0.0]
    scale = max(max(totals), 1000.0)
    timeline: list[dict[str, Any]] = []
    for entry in entries:
        speaker = entry.get("speaker")
        if speaker == "heard":
            continue  # shown with its line
        item: dict[str, Any] = {
            "speaker": speaker,
            "text": entry.get("text", ""),
            "at": entry.get("at", 0.0),
            "truncated": bool(entry.get("truncated")),
        }
        uid = entry.get("utterance_id")
        if speaker == "hotline" and uid is not None:
            cut = heard.get(uid)
            if cut is not None:
                item["heard"] = cut.get("text", "")
                item["heard_ms"] = cut.get("heard_ms", 0.0)
            turn = latencies.get(uid)
            if turn is not None:
                item["latency"] = turn["ms"]
                item["bar"] = _bar(turn["ms"], scale)
        timeline.append(item)
    info = local.info() if local is not None else None
    events = call_events(hub, call_sid)
    return {
        "events": events,
        "call_sid": call_sid,
        "live": info is not None and not getattr(local, "end_reason", ""),
        "caller": info["caller"] if info else "",
        "started_at": info["started_at"] if info else None,
        "barge_ins": info["barge_ins"] if info else len(heard),
        "timeline": timeline,
        "dropped": transcript.get("dropped", 0) if transcript else 0,
        "scale_ms": scale,
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


def _guard(request: Request) -> tuple[Console, ConsoleSession | None]:
    console = _console(request)
    return console, console.session(request)


async def _checked_post(
    request: Request,
) -> tuple[Console, ConsoleSession, dict[str, str]] | Response:
    """A console POST: session, same origin, CSRF token (form field or ``X-CSRF-Token``)."""
    console, session = _guard(request)
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
    console.auth.revoke(session)
    response = secured(RedirectResponse(f"{PREFIX}/sign-in", status_code=303))
    response.delete_cookie(
        console.cookie, path="/", secure=console.secure, httponly=True, samesite="strict"
    )
    return response


@router.get("")
async def live_page(request: Request) -> Response:
    console, session = _guard(request)
    if session is None:
        return _refused(request, console)
    calls = await live_calls(console.hub)
    return console.page(request, "live.html", session=session, calls=calls, title="Live calls")


@router.get("/live.json")
async def live_json(request: Request) -> Response:
    console, session = _guard(request)
    if session is None:
        return _refused(request, console)
    return secured(JSONResponse({"calls": await live_calls(console.hub)}))


@router.get("/live/events")
async def live_events(request: Request) -> Response:
    """Server-sent events: ``calls`` (the live calls, when they change, and at least every few
    seconds for the durations). The stream ends after :data:`STREAM_SECONDS`; the browser's
    EventSource reconnects (``retry``)."""
    console, session = _guard(request)
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


@router.get("/calls/{call_sid}")
async def call_page(call_sid: str, request: Request) -> Response:
    console, session = _guard(request)
    if session is None:
        return _refused(request, console)
    view = call_view(console.hub, call_sid)
    if view is None:
        return console.page(
            request, "missing.html", 404, session=session, title="No such call", call_sid=call_sid
        )
    return console.page(request, "call.html", session=session, call=view, title="Call")


@router.get("/calls/{call_sid}/timeline")
async def call_timeline(call_sid: str, request: Request) -> Response:
    """The call page's timeline alone (what the page's script swaps in while the call is live)."""
    console, session = _guard(request)
    if session is None:
        return _refused(request, console)
    view = call_view(console.hub, call_sid)
    if view is None:
        return secured(JSONResponse({"detail": "no such call"}, status_code=404))
    return console.page(request, "timeline.html", session=session, call=view)


@router.get("/calls/{call_sid}/data")
async def call_json(call_sid: str, request: Request) -> Response:
    console, session = _guard(request)
    if session is None:
        return _refused(request, console)
    view = call_view(console.hub, call_sid)
    if view is None:
        return secured(JSONResponse({"detail": "no such call"}, status_code=404))
    return secured(JSONResponse(view))


@router.get("/health")
async def health_page(request: Request) -> Response:
    console, session = _guard(request)
    if session is None:
        return _refused(request, console)
    view = await health_view(console.hub)
    return console.page(request, "health.html", session=session, health=view, title="Health")


@router.get("/health.json")
async def health_json(request: Request) -> Response:
    console, session = _guard(request)
    if session is None:
        return _refused(request, console)
    return secured(JSONResponse(await health_view(console.hub)))


def install(app: FastAPI, hub: Hub) -> None:
    """Serve the console on ``app`` (off, answering 503, without ``HOTLINE_ADMIN_TOKEN``)."""
    hours = hub.settings.console_session_hours
    app.state.console = Console(hub, ConsoleAuth(hub.settings.admin_token, hours * 3600.0))
    app.include_router(router)
