"""The console over HTTP, without a browser: what is refused, the cookie's flags, the CSP, CSRF.

The app is the real one (``create_app``) behind Starlette's TestClient; the browser tests
(test_console_browser.py) drive the same routes from chromium.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from fastapi.routing import APIRoute
from starlette.testclient import TestClient

from hotline.server.app import create_app
from hotline.server.console.auth import ConsoleAuth
from hotline.server.console.views import CSP
from hotline.server.console.views import router as console_router
from hotline.server.settings import ListenSettings, Settings
from tests.support.server import ADMIN_TOKEN, AUTH_TOKEN, fresh_records

BASE = "https://hotline.test"
OPEN = {"/console/sign-in", "/console/static/{name}"}


def _app(**overrides: object) -> TestClient:
    settings = Settings(
        twilio_auth_token=AUTH_TOKEN,
        admin_token=ADMIN_TOKEN,
        public_url=BASE,
        listen=ListenSettings(stt="off"),
        records=fresh_records(),
        **overrides,  # type: ignore[arg-type]
    )
    return TestClient(create_app(settings), base_url=BASE)


@pytest.fixture
def client() -> Iterator[TestClient]:
    with _app() as c:
        yield c


def _sign_in(client: TestClient) -> str:
    response = client.post(
        "/console/sign-in",
        data={"token": ADMIN_TOKEN},
        headers={"Origin": BASE},
        follow_redirects=False,
    )
    assert response.status_code == 303, response.text
    page = client.get("/console")
    found = re.search(r'data-csrf="([0-9a-f]+)"', page.text)
    assert found is not None
    return found.group(1)


def _console_routes() -> list[APIRoute]:
    routes = [r for r in console_router.routes if isinstance(r, APIRoute)]
    assert all(r.path.startswith("/console") for r in routes)
    assert len(routes) >= 12
    return routes


def test_every_console_page_and_data_endpoint_is_refused_without_a_session(
    client: TestClient,
) -> None:
    for route in _console_routes():
        if route.path in OPEN:
            continue
        path = route.path.replace("{call_sid}", "CA0123").replace("{name}", "x")
        for method in route.methods:
            # a page asked for as a page goes to the sign-in form, anything else is 401
            for accept, want in (("text/html", 303 if method == "GET" else 401), ("*/*", 401)):
                response = client.request(
                    method,
                    path,
                    headers={"Accept": accept, "Origin": BASE},
                    follow_redirects=False,
                )
                assert response.status_code == want, (method, path, accept, response.text)
                assert response.headers["content-security-policy"] == CSP
                if want == 303:
                    assert response.headers["location"] == "/console/sign-in"
                assert "CA0123" not in response.text or want == 401


def test_the_admin_bearer_token_and_a_forged_cookie_are_not_a_session(client: TestClient) -> None:
    bearer = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    assert client.get("/console/live.json", headers=bearer).status_code == 401
    assert client.get(f"/console/live.json?token={ADMIN_TOKEN}").status_code == 401
    client.cookies.set("__Host-hotline-console", "abc.9999999999.deadbeef")
    assert client.get("/console/live.json").status_code == 401


def test_sign_in_sets_a_host_only_httponly_secure_strict_cookie(client: TestClient) -> None:
    wrong = client.post(
        "/console/sign-in",
        data={"token": "nope"},
        headers={"Origin": BASE},
        follow_redirects=False,
    )
    assert wrong.status_code == 401 and "set-cookie" not in wrong.headers
    assert "not the admin token" in wrong.text
    ok = client.post(
        "/console/sign-in",
        data={"token": ADMIN_TOKEN},
        headers={"Origin": BASE},
        follow_redirects=False,
    )
    assert ok.status_code == 303 and ok.headers["location"] == "/console"
    cookie = ok.headers["set-cookie"]
    assert cookie.startswith("__Host-hotline-console=")
    flags = {part.strip().lower() for part in cookie.split(";")[1:]}
    assert {"httponly", "secure", "samesite=strict", "path=/"} <= flags
    assert not any(f.startswith("domain") for f in flags)
    assert ADMIN_TOKEN not in cookie  # the token is exchanged, never stored in the cookie
    assert ADMIN_TOKEN not in ok.headers["location"]
    page = client.get("/console")
    assert page.status_code == 200 and "Live calls" in page.text
    assert ADMIN_TOKEN not in page.text


def test_insecure_dev_cookie_is_not_secure_but_still_httponly_and_strict() -> None:
    with _app(insecure_dev=True) as c:
        ok = c.post(
            "/console/sign-in",
            data={"token": ADMIN_TOKEN},
            headers={"Origin": BASE},
            follow_redirects=False,
        )
        cookie = ok.headers["set-cookie"]
        assert cookie.startswith("hotline-console=")
        flags = {part.strip().lower() for part in cookie.split(";")[1:]}
        assert "secure" not in flags and {"httponly", "samesite=strict"} <= flags


def test_every_console_response_has_the_content_security_policy(client: TestClient) -> None:
    csrf = _sign_in(client)
    for path in (
        "/console",
        "/console/sign-in",
        "/console/health",
        "/console/live.json",
        "/console/health.json",
        "/console/calls/CA404",
    ):
        response = client.get(path, follow_redirects=False)
        assert response.headers["content-security-policy"] == CSP, path
        assert response.headers["x-frame-options"] == "DENY"
        assert response.headers["x-content-type-options"] == "nosniff"
    assert "'unsafe-inline'" not in CSP and "frame-ancestors 'none'" in CSP
    page = client.get("/console").text
    assert "<script>" not in page and "style=" not in page  # nothing the CSP would block
    for src in re.findall(r'(?:src|href)="([^"]+)"', page):
        assert src.startswith("/") or src.startswith("#"), src  # every asset from hotline
    assert client.get("/console/static/console.js").status_code == 200
    assert csrf


def test_actions_need_the_csrf_token_and_the_consoles_origin(client: TestClient) -> None:
    csrf = _sign_in(client)
    json_ = {"Accept": "application/json"}
    no_token = client.post("/console/calls/CA1/hangup", data={}, headers=json_)
    assert no_token.status_code == 403 and "CSRF" in no_token.text
    wrong = client.post("/console/calls/CA1/hangup", data={"csrf": "0" * 64}, headers=json_)
    assert wrong.status_code == 403
    other = client.post(
        "/console/calls/CA1/hangup",
        data={"csrf": csrf},
        headers={**json_, "Origin": "http://127.0.0.1:9999"},
    )
    assert other.status_code == 403 and "cross-origin" in other.text
    cross_site = client.post(
        "/console/calls/CA1/hangup",
        data={"csrf": csrf},
        headers={**json_, "Sec-Fetch-Site": "same-site"},
    )
    assert cross_site.status_code == 403
    # with the token, from the console: the command runs (no such call here: 404)
    ok = client.post(
        "/console/calls/CA1/hangup", data={"csrf": csrf}, headers={**json_, "Origin": BASE}
    )
    assert ok.status_code == 404 and ok.json() == {"detail": "no such active call"}
    blank = client.post("/console/calls/CA1/say", data={"csrf": csrf, "text": " "}, headers=json_)
    assert blank.status_code == 422
    cross_sign_in = client.post(
        "/console/sign-in",
        data={"token": ADMIN_TOKEN},
        headers={"Origin": "https://evil.test"},
        follow_redirects=False,
    )
    assert cross_sign_in.status_code == 403 and "set-cookie" not in cross_sign_in.headers


def test_sign_out_revokes_the_session(client: TestClient) -> None:
    csrf = _sign_in(client)
    cookie = client.cookies.get("__Host-hotline-console")
    assert cookie
    refused = client.post("/console/sign-out", data={}, follow_redirects=False)
    assert refused.status_code == 403  # sign-out is an action too
    out = client.post("/console/sign-out", data={"csrf": csrf}, follow_redirects=False)
    assert out.status_code == 303 and out.headers["location"] == "/console/sign-in"
    assert (
        "Max-Age=0" in out.headers["set-cookie"] or "expires=" in out.headers["set-cookie"].lower()
    )
    client.cookies.set("__Host-hotline-console", cookie)  # a copy kept by an attacker
    assert client.get("/console/live.json").status_code == 401


def test_wrong_tokens_are_rate_limited(client: TestClient) -> None:
    codes = [
        client.post(
            "/console/sign-in",
            data={"token": f"guess{i}"},
            headers={"Origin": BASE},
            follow_redirects=False,
        ).status_code
        for i in range(25)
    ]
    assert codes[0] == 401 and codes[-1] == 429


def test_sessions_expire_and_are_bound_to_the_admin_token() -> None:
    auth = ConsoleAuth("token-a", lifetime=60)
    cookie = auth.sign_in("token-a", now=1000.0)
    assert cookie is not None
    session = auth.session(cookie, now=1059.0)
    assert session is not None
    assert auth.session(cookie, now=1061.0) is None
    assert ConsoleAuth("token-b", lifetime=60).session(cookie, now=1001.0) is None
    assert auth.sign_in("token-b") is None and auth.sign_in("") is None
    assert ConsoleAuth(None, lifetime=60).sign_in("") is None
    other = auth.sign_in("token-a", now=1000.0)
    assert other is not None and other != cookie
    other_session = auth.session(other, now=1001.0)
    assert other_session is not None
    assert auth.csrf(session) != auth.csrf(other_session)  # each session its own CSRF token
    assert auth.csrf_ok(session, auth.csrf(session))
    assert not auth.csrf_ok(session, auth.csrf(other_session))


def test_without_an_admin_token_the_console_is_off() -> None:
    settings = Settings(
        twilio_auth_token=AUTH_TOKEN,
        public_url=BASE,
        listen=ListenSettings(stt="off"),
        records=fresh_records(),
    )
    with TestClient(create_app(settings), base_url=BASE) as c:
        assert c.get("/console/live.json").status_code == 503
        form = c.get("/console/sign-in")
        assert "HOTLINE_ADMIN_TOKEN" in form.text
        empty = c.post("/console/sign-in", data={"token": ""}, headers={"Origin": BASE})
        assert empty.status_code == 401 and "set-cookie" not in empty.headers


# ------------------------------------------------------------------ history (the records)

DAY = "2001-02-03"  # a day no other test's calls fall on (the test process shares one SQLite)


def _records(client: TestClient, n: int, number: str, **fields: object) -> list[str]:
    """``n`` ended calls from ``number`` on :data:`DAY`, written to the real database."""
    from datetime import datetime, timezone

    from hotline.records.model import CallRecord

    hub = client.app.state.hub  # type: ignore[attr-defined]
    records = hub.records
    base = int(datetime(2001, 2, 3, 10, tzinfo=timezone.utc).timestamp() * 1000)
    made = []
    for i in range(n):
        sid = f"CA{number[-4:]}{i:028d}"
        made.append(sid)
        record = CallRecord(
            call_sid=sid,
            started_ms=base + i * 60_000,
            ended_ms=base + i * 60_000 + 42_000,
            outcome=str(fields.get("outcome", "goodbye played")),
            ended_by=str(fields.get("ended_by", "hotline")),
            brain="script",
            turns=[
                {"speaker": "caller", "text": "what are the tour dates", "at": 3.0},
                {
                    "speaker": "hotline",
                    "text": "Wren is on the road",
                    "at": 4.1,
                    "utterance_id": 1,
                    "latency_ms": {
                        "silence": 700,
                        "final": 720,
                        "handed": 721,
                        "first_token": 800,
                        "tts_started": 801,
                        "first_audio": 1050,
                        "sent": 1052,
                    },
                },
                {
                    "speaker": "heard",
                    "text": "Wren is",
                    "at": 5.0,
                    "utterance_id": 1,
                    "heard_ms": 600.0,
                },
            ],
            barge_ins=1,
            handoffs=[{"data": '{"reason":"handoff"}'}] if i == 0 else [],
            errors=[{"kind": "brain fallback", "count": 2}] if i == 0 else [],
            summary=str(fields.get("summary", f"Call {i} asked about the tour.")),
            **records.caller_fields(number),
        )
        client.portal.call(records.store.write, [record])  # type: ignore[union-attr]
    return made


def test_history_filters_pages_and_a_past_calls_page(client: TestClient) -> None:
    csrf = _sign_in(client)
    number, other = "+15555557001", "+15555557002"
    mine = _records(client, 55, number)
    theirs = _records(client, 2, other, ended_by="caller", outcome="twilio stop")
    form = {"csrf": csrf, "from": DAY, "to": DAY, "caller": number}
    page = client.post("/console/history", data=form)
    assert page.status_code == 200, page.text
    shown = re.findall(r'<tr data-sid="([^"]+)"', page.text)
    assert shown == mine[::-1][:50]  # newest first, 50 a page
    assert "+1555***7001" in page.text and number not in page.text.replace(f'value="{number}"', "")
    cursor = re.search(r'name="cursor" value="([^"]+)"', page.text)
    assert cursor is not None
    more = client.post("/console/history", data={**form, "cursor": cursor.group(1)})
    assert re.findall(r'<tr data-sid="([^"]+)"', more.text) == mine[::-1][50:]
    by_caller = client.post(
        "/console/history", data={"csrf": csrf, "from": DAY, "to": DAY, "outcome": "caller"}
    )
    assert set(re.findall(r'<tr data-sid="([^"]+)"', by_caller.text)) == set(theirs)
    bad = client.post("/console/history", data={"csrf": csrf, "from": "yesterday"})
    assert bad.status_code == 422 and "must be a date" in bad.text
    assert client.post("/console/history", data={"from": DAY}).status_code == 403  # no CSRF
    # a past call's page is its record: turns, the bar from its marks, the cut line, facts
    call = client.get(f"/console/calls/{mine[0]}")
    assert call.status_code == 200
    assert 'data-stage="brain" data-ms="79.0"' in call.text
    assert 'data-stage="hotline" data-ms="4.0"' in call.text
    assert "barge-in" in call.text and "Wren is" in call.text
    assert "brain fallback × 2" in call.text and "handoff" in call.text
    assert "Call 0 asked about the tour." in call.text
    data = client.get(f"/console/calls/{mine[0]}/data").json()
    assert data["source"] == "record" and data["timeline"][1]["latency"]["total"] == 1052.0


def test_history_exports_csv_and_json(client: TestClient) -> None:
    import csv
    import io
    import json

    csrf = _sign_in(client)
    number = "+15555557003"
    sids = _records(client, 3, number, summary='=HYPERLINK("http://x") said the caller')
    form = {"csrf": csrf, "from": DAY, "to": DAY, "caller": number}
    out = client.post("/console/history/export", data={**form, "format": "csv"})
    assert out.status_code == 200 and out.headers["content-type"].startswith("text/csv")
    assert out.headers["content-disposition"].startswith("attachment;")
    rows = list(csv.DictReader(io.StringIO(out.text)))
    assert [r["call_sid"] for r in rows] == sids[::-1]
    assert rows[0]["caller"] == "+1555***7003"
    assert rows[0]["summary"].startswith("'=HYPERLINK")  # not a formula in a spreadsheet
    js = client.post("/console/history/export", data={**form, "format": "json"})
    calls = json.loads(js.text)["calls"]
    assert [c["call_sid"] for c in calls] == sids[::-1]
    assert calls[0]["summary"].startswith("=HYPERLINK")  # JSON keeps the text as it is
    assert client.post("/console/history/export", data={**form, "format": "xml"}).status_code == 422
    assert client.post("/console/history/export", data={"format": "csv"}).status_code == 403


def test_a_huge_or_odd_form_is_no_sign_in(client: TestClient) -> None:
    huge = client.post(
        "/console/sign-in",
        content=b"token=" + b"x" * 5_000_000,
        headers={"Origin": BASE, "Content-Type": "application/x-www-form-urlencoded"},
        follow_redirects=False,
    )
    assert huge.status_code == 401 and "set-cookie" not in huge.headers
    for body, kind in (
        (b"\xff\xfe=\x00", "application/x-www-form-urlencoded"),
        (b'{"token": "' + ADMIN_TOKEN.encode() + b'"}', "application/json"),
    ):
        odd = client.post(
            "/console/sign-in",
            content=body,
            headers={"Origin": BASE, "Content-Type": kind},
            follow_redirects=False,
        )
        assert odd.status_code == 401 and "set-cookie" not in odd.headers
    assert client.get("/health").status_code == 200  # and the server goes on
