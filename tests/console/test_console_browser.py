"""The console in a real browser: Debian's chromium (headless) through chromedriver, against a
real hotline with simulated calls (``hotline.sim``: signed webhook and upgrade, real-time
media, questions spoken with eSpeak NG and heard by the local ear).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest

from hotline.server.session import CallSession
from tests.console.conftest import SimCall, live, make_driver, sign_in, signed_in_client, wait_for
from tests.support.server import ADMIN_TOKEN, ServerThread

pytestmark = pytest.mark.xdist_group("console-browser")


def _requested_urls(driver: Any) -> list[str]:
    """Every URL the browser requested (Chrome's performance log)."""
    urls = []
    for entry in driver.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        if message.get("method") == "Network.requestWillBeSent":
            urls.append(message["params"]["request"]["url"])
    return urls


def _no_alert(driver: Any) -> None:
    from selenium.common.exceptions import NoAlertPresentException

    with pytest.raises(NoAlertPresentException):
        driver.switch_to.alert.text  # noqa: B018


def _row(driver: Any, call_sid: str) -> Any:
    from selenium.webdriver.common.by import By

    found = driver.find_elements(By.CSS_SELECTOR, f'li.call[data-sid="{call_sid}"]')
    return found[0] if found else None


def _text(row: Any, css: str) -> str:
    from selenium.webdriver.common.by import By

    return str(row.find_element(By.CSS_SELECTOR, css).get_attribute("textContent"))


# ------------------------------------------------------------------ sign-in / sign-out


def test_sign_in_and_out_in_the_browser(server: ServerThread, browser: Any) -> None:
    from selenium.webdriver.common.by import By

    base = server.base
    browser.get(base + "/console")
    assert browser.current_url == base + "/console/sign-in"  # refused: to the sign-in form
    sign_in(browser, base, token="not-the-token")
    error = wait_for(browser, lambda d: d.find_elements(By.ID, "sign-in-error"))
    assert "not the admin token" in error[0].text
    assert browser.get_cookies() == []
    sign_in(browser, base)
    wait_for(browser, lambda d: d.current_url == base + "/console")
    assert browser.find_element(By.TAG_NAME, "h1").text == "Live calls"
    (cookie,) = browser.get_cookies()
    assert cookie["name"] == "__Host-hotline-console"
    assert cookie["httpOnly"] is True and cookie["secure"] is True
    assert cookie["sameSite"] == "Strict" and cookie["path"] == "/"
    assert browser.execute_script("return document.cookie") == ""  # HttpOnly: no script sees it
    for url in [*_requested_urls(browser), browser.current_url]:
        assert ADMIN_TOKEN not in url, url  # the token never travels in a URL
    # The CSP is in force: an inline script injected into the page does not run.
    browser.execute_script(
        "const s = document.createElement('script'); s.textContent = 'window.ran = 1';"
        "document.body.appendChild(s);"
    )
    assert browser.execute_script("return window.ran === undefined") is True
    browser.find_element(By.ID, "sign-out").click()
    wait_for(browser, lambda d: d.current_url == base + "/console/sign-in")
    assert browser.get_cookies() == []
    browser.get(base + "/console/health")
    assert browser.current_url == base + "/console/sign-in"


# ------------------------------------------------------------------ a live call


@pytest.mark.slow
def test_a_live_call_in_the_console(server: ServerThread, browser: Any) -> None:
    """A spoken call appears live, its state changes, the caller's words and hotline's line
    show up; Say from the page is spoken on the call; Hang up ends it; its page shows the
    turns with latency bars split by stage."""
    from selenium.webdriver.common.by import By

    base = server.base
    sign_in(browser, base)
    wait_for(browser, lambda d: d.current_url == base + "/console")
    call = SimCall(server, speak=("What are the tour dates?",), speak_gap_s=0.7)
    row = wait_for(browser, lambda d: _row(d, call.call_sid), 30)
    assert _text(row, ".caller") == "+1555***0123"  # masked
    states: set[str] = set()

    def heard_and_answered(driver: Any) -> bool:
        r = _row(driver, call.call_sid)
        if r is None:
            return False
        states.add(_text(r, ".state"))
        answer = _text(r, ".hotline-words")  # the tour line, not the greeting
        return "tour" in _text(r, ".caller-words").lower() and "on the road" in answer

    wait_for(browser, heard_and_answered, 60)
    # the greeting and the answer were spoken; between them the line listened
    assert "speaking" in states and "listening" in states, states
    assert float(_text(row, ".duration").split()[0]) >= 1

    # Say from the page: typed, sent, spoken on the call by the voice.
    said = "Console says hello to the caller"
    box = row.find_element(By.CSS_SELECTOR, ".say-text")
    box.send_keys(said)
    row.find_element(By.CSS_SELECTOR, ".say-button").click()
    wait_for(browser, lambda d: _text(_row(d, call.call_sid), ".result") == "Queued.")
    wait_for(browser, lambda d: _text(_row(d, call.call_sid), ".hotline-words") == said, 30)

    # Hang up from the page: the call ends on hotline's side and leaves the list.
    _row(browser, call.call_sid).find_element(By.CSS_SELECTOR, ".hangup-button").click()
    report = call.result(60)
    assert report.ended_by == "server_hangup", report.errors
    wait_for(browser, lambda d: _row(d, call.call_sid) is None, 15)

    # History lists it once its record is written (off the call's path, so: soon).
    def listed(driver: Any) -> bool:
        driver.get(f"{base}/console/history")
        return bool(driver.find_elements(By.CSS_SELECTOR, f'tr[data-sid="{call.call_sid}"]'))

    wait_for(browser, listed, 30)
    entry = browser.find_element(By.CSS_SELECTOR, f'tr[data-sid="{call.call_sid}"]')
    assert "hangup requested via API" in entry.text  # its outcome: hung up from the page
    assert "+1555***0123" in entry.text
    # Its page (now from the record): the turns as a timeline, each reply's latency a bar.
    entry.find_element(By.TAG_NAME, "a").click()
    wait_for(browser, lambda d: d.current_url == f"{base}/console/calls/{call.call_sid}")
    assert "hangup requested via API" in browser.find_element(By.ID, "ended-by").text
    turns = browser.find_elements(By.CSS_SELECTOR, "#timeline li.turn")
    texts = [t.find_element(By.CSS_SELECTOR, ".text").text for t in turns]
    assert any("tour" in t.lower() for t in texts), texts
    assert said in texts
    bars = browser.find_elements(By.CSS_SELECTOR, "figure.latency")
    assert bars, "no latency bar"
    for bar in bars:
        segs = bar.find_elements(By.CSS_SELECTOR, "rect.seg")
        assert [s.get_attribute("data-stage") for s in segs] == [
            "silence",
            "recogniser",
            "brain",
            "voice",
            "hotline",
        ]
        parts = [float(s.get_attribute("data-ms")) for s in segs]
        total = float(bar.find_element(By.CSS_SELECTOR, ".total").text.split()[0])
        assert parts[0] > 0 and sum(parts) > 0  # the turn detector waited for silence
        assert abs(sum(parts) - total) <= 0.5 * len(parts) + 1, (parts, total)
        widths = [float(s.get_attribute("width")) for s in segs]
        assert 0 < sum(widths) <= 100.01
        rendered = segs[0].size["width"]  # drawn, not just in the markup
        assert rendered > 0
    events = browser.find_element(By.ID, "events").text
    assert "hanging up (hangup requested via API)" in events, events
    data = httpx.get(f"{base}/console/calls/{call.call_sid}/data")
    assert data.status_code == 401  # no cookie, no data


# ------------------------------------------------------------------ untrusted words


def _inject_caller_words(server: ServerThread, call_sid: str, text: str) -> None:
    """The recogniser committed ``text`` on the live call (what the STT stream does)."""

    def run() -> None:
        session = server.hub.registry.get(call_sid)  # type: ignore[union-attr]
        assert isinstance(session, CallSession)
        session.call.transcript_final(text, time.perf_counter())
        session.fed()

    server.call_on_loop(run)


@pytest.mark.slow
def test_a_callers_markup_is_shown_as_text(server: ServerThread, browser: Any) -> None:
    from selenium.webdriver.common.by import By

    base = server.base
    sign_in(browser, base)
    call = SimCall(server, max_seconds=40.0)
    try:
        live(server, call.call_sid)
        # the recogniser's interim words (what the listener hands the console), as text
        partial = "<b>where</b> is the"
        server.call_on_loop(
            lambda: server.hub.console_turns.hearing(call.call_sid, partial)  # type: ignore[union-attr]
        )
        wait_for(
            browser,
            lambda d: (
                _row(d, call.call_sid) is not None
                and _text(_row(d, call.call_sid), ".caller-words.partial") == partial
            ),
            20,
        )
        server.call_on_loop(lambda: server.hub.console_turns.hearing(call.call_sid, ""))  # type: ignore[union-attr]
        words = "<script>alert(1)</script> and <img src=x onerror=alert(2)> the tour"
        _inject_caller_words(server, call.call_sid, words)
        wait_for(
            browser,
            lambda d: (
                _row(d, call.call_sid) is not None
                and _text(_row(d, call.call_sid), ".caller-words") == words
            ),
            20,
        )
        _no_alert(browser)
        row = _row(browser, call.call_sid)
        assert not row.find_elements(By.CSS_SELECTOR, ".caller-words script, .caller-words img")
        browser.get(f"{base}/console/calls/{call.call_sid}")
        texts = [e.text for e in browser.find_elements(By.CSS_SELECTOR, "#timeline .text")]
        assert words in texts
        assert not browser.find_elements(By.CSS_SELECTOR, "#timeline script, #timeline img")
        _no_alert(browser)
        # A handoff: the script brain says its line and ends the call for a person.
        _inject_caller_words(server, call.call_sid, "I want to talk to a person")
        report = call.result(40)
        assert report.ended_by == "server_hangup", report.errors
        browser.get(f"{base}/console/calls/{call.call_sid}")
        kinds = [
            e.get_attribute("class") for e in browser.find_elements(By.CSS_SELECTOR, "#events li")
        ]
        assert "event handoff" in kinds, kinds
        assert browser.find_element(By.CSS_SELECTOR, ".meta .state").text == "ended"
    finally:
        if call.report is None:
            call.hang_up()


# ------------------------------------------------------------------ cross-site requests


class _Evil(BaseHTTPRequestHandler):
    """Another origin on the same host (same *site*: SameSite=Strict lets the cookie go):
    a page that posts a hang-up form to the console as soon as it loads."""

    target = ""

    def do_GET(self) -> None:
        page = (
            "<!doctype html><form id=f method=post action='" + self.target + "'>"
            "<input name=csrf value=guess></form><script>document.getElementById('f').submit()"
            "</script>"
        ).encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(page)))
        self.end_headers()
        self.wfile.write(page)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def evil_site() -> Iterator[ThreadingHTTPServer]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Evil)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield httpd
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_a_cross_site_form_post_is_refused(
    server: ServerThread, browser: Any, evil_site: ThreadingHTTPServer
) -> None:
    from selenium.webdriver.common.by import By

    base = server.base
    sign_in(browser, base)
    wait_for(browser, lambda d: d.current_url == base + "/console")
    call = SimCall(server, max_seconds=40.0)
    try:
        live(server, call.call_sid)
        _Evil.target = f"{base}/console/calls/{call.call_sid}/hangup"
        # Another site (localhost is not 127.0.0.1): SameSite=Strict keeps the cookie home.
        browser.get(f"http://localhost:{evil_site.server_port}/")
        wait_for(browser, lambda d: d.current_url.startswith(base), 15)
        body = browser.find_element(By.TAG_NAME, "body").text
        assert "console session required" in body, body
        # The same site, another origin (a port): the cookie goes, the origin check refuses.
        browser.get(f"http://127.0.0.1:{evil_site.server_port}/")
        wait_for(browser, lambda d: d.current_url.startswith(base), 15)
        body = browser.find_element(By.TAG_NAME, "body").text
        assert "cross-origin request refused" in body, body
        time.sleep(0.5)
        assert server.call_on_loop(lambda: call.call_sid in server.hub.registry.calls)  # type: ignore[union-attr]
        # the same post from the console's own origin, with no token, is refused too
        browser.get(base + "/console")
        browser.execute_script(
            "const f = document.createElement('form'); f.method = 'post';"
            "f.action = arguments[0]; document.body.appendChild(f); f.submit();",
            _Evil.target,
        )
        wait_for(browser, lambda d: "CSRF" in d.find_element(By.TAG_NAME, "body").text, 15)
        assert server.call_on_loop(lambda: call.call_sid in server.hub.registry.calls)  # type: ignore[union-attr]
    finally:
        call.hang_up()


# ------------------------------------------------------------------ a phone's screen


def test_a_phone_screen_and_the_keyboard(server: ServerThread) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    driver = make_driver(width=360, height=740)
    call = SimCall(server, max_seconds=40.0)
    try:
        base = server.base
        sign_in(driver, base)
        live(server, call.call_sid)
        row = wait_for(driver, lambda d: _row(d, call.call_sid), 20)
        width = driver.execute_script("return document.documentElement.clientWidth")
        assert width <= 360
        for _ in range(3):
            scroll = driver.execute_script("return document.documentElement.scrollWidth")
            assert scroll <= width, (scroll, width)  # nothing wider than the phone
            time.sleep(0.3)
        for css in (".say-text", ".say-button", ".hangup-button"):
            control = row.find_element(By.CSS_SELECTOR, css)
            assert control.is_displayed()
            box = control.rect
            assert box["x"] >= 0 and box["x"] + box["width"] <= width + 0.5, (css, box)
            assert box["height"] >= 30, (css, box)  # a thumb can hit it
            label = driver.execute_script(
                "const e = arguments[0]; return e.labels && e.labels.length"
                " ? e.labels[0].textContent : e.getAttribute('aria-label') || e.textContent",
                control,
            )
            assert label.strip(), css
        # Keyboard only: tab to the call's Say box, type, Enter sends it.
        driver.find_element(By.TAG_NAME, "body").send_keys(Keys.TAB)
        target = row.find_element(By.CSS_SELECTOR, ".say-text")
        for _ in range(30):
            if driver.switch_to.active_element == target:
                break
            driver.switch_to.active_element.send_keys(Keys.TAB)
        assert driver.switch_to.active_element == target
        target.send_keys("Typed on a phone", Keys.ENTER)
        wait_for(driver, lambda d: _text(_row(d, call.call_sid), ".result") == "Queued.")
        # ... and Hang up is reachable with Tab and pressed with Enter.
        for _ in range(10):
            active = driver.switch_to.active_element
            if "hangup-button" in (active.get_attribute("class") or ""):
                break
            active.send_keys(Keys.TAB)
        driver.switch_to.active_element.send_keys(Keys.ENTER)
        report = call.result(40)
        assert report.ended_by == "server_hangup", report.errors
        # The other pages fit the phone too (a wide table scrolls inside its own box).
        for path in (f"/console/calls/{call.call_sid}", "/console/history", "/console/health"):
            driver.get(base + path)
            scroll = driver.execute_script("return document.documentElement.scrollWidth")
            assert scroll <= width, (path, scroll, width)
    finally:
        driver.quit()
        if call.report is None:
            call.hang_up()


def test_health_page(server: ServerThread, browser: Any) -> None:
    from selenium.webdriver.common.by import By

    base = server.base
    client = signed_in_client(base)
    try:
        data = client.get("/console/health.json").json()
    finally:
        client.close()
    assert data["stt"]["provider"] == "local" and data["stt"]["ear"] is True
    assert data["voice"]["ready"] is True and data["brain"]["kind"] == "script"
    # a warning with a secret and a number in it, shown redacted as /logs shows it
    server.call_on_loop(
        lambda: (
            __import__("logging")
            .getLogger("hotline.app")
            .warning("test warning for +15555550199 with %s", ADMIN_TOKEN)
        )
    )
    sign_in(browser, base)
    browser.get(base + "/console/health")
    assert browser.find_element(By.ID, "health-stt").text.startswith("local")
    warnings = browser.find_element(By.ID, "warnings").text
    assert "test warning for" in warnings
    assert ADMIN_TOKEN not in warnings and "+15555550199" not in warnings


# ------------------------------------------------------------------ replicas


@pytest.fixture
def two_replicas() -> Iterator[tuple[ServerThread, ServerThread]]:
    from hotline.loopback import free_port
    from tests.scale.conftest import RedisServer

    redis = RedisServer(free_port())
    redis.start()
    shared = {"redis_url": redis.url, "redis_heartbeat": 0.5, "redis_call_expiry": 10.0}
    a, b = ServerThread(shared), ServerThread(shared)
    try:
        a.start()
        b.start()
        yield a, b
    finally:
        a.stop()
        b.stop()
        redis.stop()


def test_say_and_hang_up_from_one_replicas_console_on_anothers_call(
    two_replicas: tuple[ServerThread, ServerThread], browser: Any
) -> None:
    from selenium.webdriver.common.by import By

    a, b = two_replicas
    call = SimCall(b, max_seconds=40.0)  # the call lands on replica B
    try:
        live(b, call.call_sid)
        sign_in(browser, a.base)  # the owner's console is served by replica A
        row = wait_for(browser, lambda d: _row(d, call.call_sid), 20)
        assert _text(row, ".caller") == "+1555***0123"
        said = "Said through the other replica"
        row.find_element(By.CSS_SELECTOR, ".say-text").send_keys(said)
        row.find_element(By.CSS_SELECTOR, ".say-button").click()
        wait_for(browser, lambda d: _text(_row(d, call.call_sid), ".result") == "Queued.")

        def spoken_on_b() -> bool:
            session = b.hub.registry.get(call.call_sid)  # type: ignore[union-attr]
            entries = session.transcript_dict()["entries"] if session is not None else []  # type: ignore[index]
            return any(e["speaker"] == "hotline" and e["text"] == said for e in entries)

        wait_for(browser, lambda d: b.call_on_loop(spoken_on_b), 20)
        browser.get(a.base + "/console/health")
        replicas = browser.find_element(By.ID, "health-replicas").text
        assert "1 live call" in replicas and "0 live calls" in replicas, replicas
        assert "up" in browser.find_element(By.ID, "health-redis").text
        browser.get(a.base + "/console")
        row = wait_for(browser, lambda d: _row(d, call.call_sid), 20)
        row.find_element(By.CSS_SELECTOR, ".hangup-button").click()
        report = call.result(30)
        assert report.ended_by == "server_hangup", report.errors
        # Signing out on A signs the session out on B too (the cookie is good on both).
        (cookie,) = browser.get_cookies()
        jar = {"Cookie": f"{cookie['name']}={cookie['value']}"}
        assert httpx.get(b.base + "/console/live.json", headers=jar).status_code == 200
        browser.find_element(By.ID, "sign-out").click()
        wait_for(browser, lambda d: d.current_url == a.base + "/console/sign-in")
        assert httpx.get(b.base + "/console/live.json", headers=jar).status_code == 401
    finally:
        if call.report is None:
            call.hang_up()
