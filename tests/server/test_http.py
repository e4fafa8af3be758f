"""HTTP endpoints on a real uvicorn (127.0.0.1): signatures, TwiML, admin auth, health,
metrics, logs and their masking."""

from __future__ import annotations

import asyncio
import inspect
import logging
import re
import xml.etree.ElementTree as ET
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import httpx
import pytest

from hotline.server import logs
from tests.support.server import ServerThread

from .harness import ADMIN, ADMIN_TOKEN, AUTH_TOKEN, CALLER, running_server, sign

PUBLIC = "https://hotline.example.com"
FORM = {
    "CallSid": "CA" + "f" * 32,
    "AccountSid": "AC" + "1" * 32,
    "From": CALLER,
    "To": "+15555550100",
    "CallStatus": "ringing",
}


Client = httpx.AsyncClient


@pytest.fixture(scope="module")
def http_server() -> Iterator[ServerThread]:
    """One server on the defaults for this module's tests that only read or count what they
    did themselves. Its failure limiter blocks an address after 20 signature failures; the
    tests on it cause about 15 between them (the limiter's own test has its own server)."""
    srv = ServerThread({"public_url": PUBLIC})
    srv.start()
    try:
        yield srv
    finally:
        alive = srv.alive
        srv.stop()
    assert alive, f"the shared server died: {srv.error!r}"


def served(
    *, fresh: bool = False, **overrides: Any
) -> Callable[[Callable[..., Awaitable[None]]], Callable[..., None]]:
    """Run an async test with an httpx client (``client.hub``: the server's hub) on the
    module's shared server, or, with ``fresh`` or ``overrides`` (Settings fields), on a
    server of its own (a test that changes the server's state: draining, the limiter)."""
    settings: dict[str, Any] = {"public_url": PUBLIC}
    settings.update(overrides)
    own = fresh or bool(overrides)

    def wrap(test: Callable[..., Awaitable[None]]) -> Callable[..., None]:
        def run(*args: Any, **kwargs: Any) -> None:
            shared: ServerThread | None = kwargs.pop("http_server", None)

            async def on(base: str, hub: Any) -> None:
                async with httpx.AsyncClient(base_url=base) as client:
                    client.hub = hub  # type: ignore[attr-defined]
                    await test(client, *args, **kwargs)

            async def main() -> None:
                if shared is not None:
                    # The hub lives on the server thread's loop; the tests only touch its
                    # plain data between requests.
                    await on(shared.base, shared.hub)
                    return
                async with running_server(**settings) as server:
                    await on(server.base, server.hub)

            asyncio.run(main())

        run.__name__ = test.__name__
        params = list(inspect.signature(test).parameters.values())[1:]
        if not own:
            params.append(inspect.Parameter("http_server", inspect.Parameter.KEYWORD_ONLY))
        run.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
        return run

    return wrap


def metric_value(text: str, sample: str) -> float:
    """The value of ``sample`` (a name with its labels) in a /metrics text; 0 when absent."""
    for line in text.splitlines():
        if line.startswith(sample + " "):
            return float(line.split()[-1])
    return 0.0


async def post_signed(
    client: Client, path: str, form: dict[str, str], signature: str | None
) -> httpx.Response:
    headers = {} if signature is None else {"X-Twilio-Signature": signature}
    return await client.post(path, data=form, headers=headers)


@pytest.mark.parametrize("path", ["/voice", "/debug-websocket-voice"])
@served()
async def test_signed_webhook_answers_twiml(client: Client, path: str) -> None:
    r = await post_signed(client, path, FORM, sign(PUBLIC + path, FORM))
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("application/xml")
    root = ET.fromstring(r.text)
    assert root.tag == "Response"
    (connect,) = list(root)
    assert connect.tag == "Connect"
    (stream,) = list(connect)
    assert stream.tag == "Stream"
    mode = "debug" if path.startswith("/debug") else "script"
    # <Connect action> brings the call back when the stream ends; statusCallback reports it.
    assert connect.attrib == {"action": f"{PUBLIC}/stream-ended?mode={mode}"}
    assert stream.attrib == {
        "url": "wss://hotline.example.com/media-stream",
        "statusCallback": f"{PUBLIC}/stream-status",
        "statusCallbackMethod": "POST",
    }
    params = {p.attrib["name"]: p.attrib["value"] for p in stream}
    assert params["CallSid"] == FORM["CallSid"] and params["From"] == CALLER
    assert re.fullmatch(r"v1\.(script|debug)\.[0-9]+\.[A-Za-z0-9_-]{43}", params["token"])
    entry = client.hub.tokens.consume(params["token"], FORM["CallSid"], CALLER)  # type: ignore[attr-defined]
    assert entry is not None
    assert entry.mode == mode


@served(fresh=True)  # records calls as ended and resumed
async def test_connect_action_hangs_up_a_call_hotline_ended_and_resumes_a_dropped_one(
    client: Client,
) -> None:
    hub = client.hub  # type: ignore[attr-defined]
    action = "/stream-ended?mode=script"
    form = dict(FORM, CallStatus="in-progress")
    unsigned = await post_signed(client, action, form, None)
    assert unsigned.status_code == 403
    # Not recorded as ended by hotline (its replica died): a new stream, a fresh token.
    r = await post_signed(client, action, form, sign(PUBLIC + action, form))
    assert r.status_code == 200, r.text
    stream = ET.fromstring(r.text).find("./Connect/Stream")
    assert stream is not None
    params = {p.attrib["name"]: p.attrib["value"] for p in stream}
    assert params["resume"] == "1" and params["CallSid"] == FORM["CallSid"]
    assert hub.tokens.consume(params["token"], FORM["CallSid"], CALLER) is not None
    # Recorded as ended on purpose (a refused token here): <Hangup/>.
    hub.registry.refused(FORM["CallSid"])
    r = await post_signed(client, action, form, sign(PUBLIC + action, form))
    assert ET.fromstring(r.text).find("./Hangup") is not None
    # The caller already gone: <Hangup/> whatever was recorded.
    other = dict(form, CallSid="CA" + "e" * 32, CallStatus="completed")
    r = await post_signed(client, action, other, sign(PUBLIC + action, other))
    assert ET.fromstring(r.text).find("./Hangup") is not None
    # A stream that keeps dropping is not resumed for ever.
    again = dict(form, CallSid="CA" + "d" * 32)
    answers = [
        await post_signed(client, action, again, sign(PUBLIC + action, again)) for _ in range(6)
    ]
    assert ET.fromstring(answers[4].text).find("./Connect/Stream") is not None
    assert ET.fromstring(answers[5].text).find("./Hangup") is not None
    metrics = (await client.get("/metrics")).text
    assert "hotline_stream_resumes_total 6.0" in metrics


@served()
async def test_stream_status_callbacks_are_counted_and_an_error_logged_once(
    client: Client, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="hotline")
    path = "/stream-status"
    base = {"AccountSid": FORM["AccountSid"], "CallSid": FORM["CallSid"], "StreamSid": "MZ1"}
    for event in ("stream-started", "stream-error", "stream-error", "stream-stopped"):
        form = dict(base, StreamEvent=event, Timestamp="2026-12-01T00:00:00Z")
        if event == "stream-error":
            form["StreamError"] = "31920: Stream - WebSocket - Handshake Error"
        r = await post_signed(client, path, form, sign(PUBLIC + path, form))
        assert r.status_code == 204
    metrics = (await client.get("/metrics")).text
    assert 'hotline_stream_events_total{event="stream-error"} 2.0' in metrics
    assert 'hotline_stream_events_total{event="stream-started"} 1.0' in metrics
    errors = [r for r in caplog.records if "stream error" in r.getMessage()]
    assert len(errors) == 1 and "31920" in errors[0].getMessage()
    assert (await post_signed(client, path, base, None)).status_code == 403


@served(fresh=True)
async def test_health_says_draining_after_sigterm(client: Client) -> None:
    assert (await client.get("/health")).json()["status"] == "ok"
    client.hub.registry.start_drain()  # type: ignore[attr-defined]
    r = await client.get("/health")
    assert r.status_code == 503 and r.json()["status"] == "draining"


@pytest.mark.parametrize("path", ["/voice", "/debug-websocket-voice"])
@served()
async def test_bad_signatures_are_refused(client: Client, path: str) -> None:
    good = sign(PUBLIC + path, FORM)
    failures = f'hotline_signature_failures_total{{endpoint="{path[1:]}"}}'
    failed_before = metric_value((await client.get("/metrics")).text, failures)
    tokens_before = len(client.hub.tokens)  # type: ignore[attr-defined]
    assert (await post_signed(client, path, FORM, None)).status_code == 403  # missing
    assert (
        await post_signed(client, path, FORM, sign(PUBLIC + path, FORM, "wrong-token"))
    ).status_code == 403
    tampered = dict(FORM, From="+15555559999")
    assert (await post_signed(client, path, tampered, good)).status_code == 403  # params changed
    extra = dict(FORM, Extra="1")
    assert (await post_signed(client, path, extra, good)).status_code == 403  # a param added
    other_url = sign("https://evil.example.com" + path, FORM)
    assert (await post_signed(client, path, FORM, other_url)).status_code == 403
    assert (await post_signed(client, path, FORM, "not base64 at all!")).status_code == 403
    assert len(client.hub.tokens) == tokens_before  # type: ignore[attr-defined]
    metrics = (await client.get("/metrics")).text
    assert metric_value(metrics, failures) == failed_before + 6


@served()
async def test_webhook_signature_covers_every_param_and_query(client: Client) -> None:
    form = dict(FORM, NewField="added by Twilio later")
    assert (
        await post_signed(client, "/voice", form, sign(PUBLIC + "/voice", form))
    ).status_code == 200
    r = await client.post(
        "/voice?x=1", data=FORM, headers={"X-Twilio-Signature": sign(PUBLIC + "/voice?x=1", FORM)}
    )
    assert r.status_code == 200
    r = await client.post(
        "/voice?x=2", data=FORM, headers={"X-Twilio-Signature": sign(PUBLIC + "/voice?x=1", FORM)}
    )
    assert r.status_code == 403


@served()
async def test_webhook_rejects_non_form_bodies(client: Client) -> None:
    r = await client.post("/voice", json=FORM, headers={"X-Twilio-Signature": "x"})
    assert r.status_code == 415


@served(fresh=True)
async def test_repeated_signature_failures_are_rate_limited(client: Client) -> None:
    codes = [(await post_signed(client, "/voice", FORM, "bad")).status_code for _ in range(22)]
    assert codes[:20] == [403] * 20 and codes[20:] == [429, 429]
    # A valid signature is never refused, even from a blocked address (it may be the proxy
    # every real Twilio request comes through).
    assert (
        await post_signed(client, "/voice", FORM, sign(PUBLIC + "/voice", FORM))
    ).status_code == 200


@served()
async def test_health(client: Client) -> None:
    r = await client.get("/health")
    assert r.status_code == 200 and r.json()["status"] == "ok"
    r = await client.get("/health/streaming")
    body = r.json()
    assert body == {
        "streaming_enabled": True,
        "elevenlabs_configured": False,
        "voice": "local",
        "output_format": "mp3_44100_128",
        "websocket_url": "wss://hotline.example.com/media-stream",
        "status": "ok",
    }
    for secret in (AUTH_TOKEN, ADMIN_TOKEN):
        assert secret not in r.text


@pytest.mark.parametrize(
    ("method", "path", "json"),
    [
        ("GET", "/logs", None),
        ("GET", "/logs/streaming", None),
        ("GET", "/calls", None),
        ("POST", "/calls/CA123/say", {"text": "hi"}),
        ("POST", "/calls/CA123/hangup", None),
    ],
)
@served()
async def test_admin_endpoints_need_the_bearer_token(
    client: Client, method: str, path: str, json: dict[str, str] | None
) -> None:
    assert (await client.request(method, path, json=json)).status_code == 401
    bad = {"Authorization": "Bearer nope"}
    assert (await client.request(method, path, json=json, headers=bad)).status_code == 401
    basic = {"Authorization": f"Basic {ADMIN_TOKEN}"}
    assert (await client.request(method, path, json=json, headers=basic)).status_code == 401
    r = await client.request(method, path, json=json, headers=ADMIN)
    assert r.status_code == (404 if "/calls/" in path else 200)


@served()
async def test_say_validation(client: Client) -> None:
    assert (
        await client.post("/calls/CA1/say", json={"text": ""}, headers=ADMIN)
    ).status_code == 422
    assert (
        await client.post("/calls/CA1/say", json={"txt": "x"}, headers=ADMIN)
    ).status_code == 422
    assert (await client.post("/calls/CA1/say", json={"text": 5}, headers=ADMIN)).status_code == 422
    assert (await client.post("/calls/CA1/say", content=b"{", headers=ADMIN)).status_code == 422
    r = await client.post("/calls/CA1/say", json={"text": "hi", "interrupt": True}, headers=ADMIN)
    assert r.status_code == 404


@served(admin_token=None)
async def test_admin_disabled_without_a_token(client: Client) -> None:
    r = await client.get("/calls", headers=ADMIN)
    assert r.status_code == 503 and "admin disabled" in r.text
    assert (await client.get("/logs")).status_code == 503


@served()
async def test_metrics_text(client: Client) -> None:
    r = await client.get("/metrics")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    for name in (
        "hotline_active_calls",
        "hotline_utterances_total",
        "hotline_audio_bytes_out_total",
        "hotline_time_to_first_audio_seconds_bucket",
        "hotline_bridge_overhead_seconds_bucket",
        "hotline_conversion_seconds_bucket",
        "hotline_underruns_total",
        "hotline_barge_ins_total",
        "hotline_elevenlabs_errors_total",
        "hotline_signature_failures_total",
    ):
        assert name in r.text, name


@served()
async def test_caller_numbers_and_secrets_never_reach_logs(
    client: Client, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    assert (
        await post_signed(client, "/voice", FORM, sign(PUBLIC + "/voice", FORM))
    ).status_code == 200
    log = logging.getLogger("hotline.call")
    log.warning("caller %s called, raw %s, encoded %%2B15555550123", CALLER, CALLER[1:])
    log.warning("token leak attempt: %s and %s", AUTH_TOKEN, ADMIN_TOKEN)
    try:
        raise ValueError(f"bad number {CALLER}")
    except ValueError:
        log.exception("with traceback")
    r = await client.get("/logs", headers=ADMIN)
    text = r.text
    assert "+1555***0123" in text
    for leaked in ("5555550123", AUTH_TOKEN, ADMIN_TOKEN):
        assert leaked not in text
        assert leaked not in caplog.text
    streaming = (await client.get("/logs/streaming", headers=ADMIN)).json()["records"]
    assert any(rec["logger"] == "hotline.call" for rec in streaming)
    assert all(rec["logger"].startswith(logs.AUDIO_LOGGERS) for rec in streaming)
    everything = (await client.get("/logs", headers=ADMIN)).json()["records"]
    assert any(rec["logger"] == "hotline.http" for rec in everything)


def test_mask_number() -> None:
    assert logs.mask_number("+15555550123") == "+1555***0123"
    assert logs.mask_number("anonymous") == "***"
    assert logs.redact("ids 1234 and 20 ms stay") == "ids 1234 and 20 ms stay"
    assert logs.redact("CA0123456789abcdef0123456789abcdef") == "CA0123456789abcdef0123456789abcdef"
