"""The console's tests: a real hotline (uvicorn in a thread, the local voice, the local ear),
Debian's chromium driven by Selenium through the system chromedriver, and simulated calls
(``hotline.sim``: signed webhook, signed upgrade, real-time media with eSpeak speech).

Selenium Manager never runs: the driver and the browser are given by path, and ``SE_OFFLINE``
forbids any download. Without chromium or chromedriver installed (``make testdeps`` installs
both) the browser tests are skipped with that reason, except under CI (``CI`` set, as
``.ci/run`` runs), where that is a failure; everything else runs.
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from hotline.server.settings import ListenSettings
from hotline.sim.call_report import CallReport
from hotline.sim.caller import place_call
from hotline.sim.options import CallControl, CallOptions
from tests.support.server import ADMIN_TOKEN, AUTH_TOKEN, ServerThread

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")


def browser_missing() -> str | None:
    for path in (CHROMIUM, CHROMEDRIVER):
        if not path.exists():
            return (
                f"{path} is not installed (make testdeps: apt-get install chromium chromium-driver)"
            )
    return None


@pytest.fixture(scope="module")
def server() -> Iterator[ServerThread]:
    """One hotline for the module, listening with the local ear (the shipped default ear)."""
    srv = ServerThread({"listen": ListenSettings(stt="local")})
    srv.start()
    try:
        yield srv
    finally:
        srv.stop()


def make_driver(width: int = 1280, height: int = 900) -> Any:
    reason = browser_missing()
    if reason is not None:
        if os.environ.get("CI"):  # .ci/run installs both (make testdeps): never skip there
            pytest.fail(f"CI without the browser: {reason}")
        pytest.skip(reason)
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    os.environ["SE_OFFLINE"] = "true"  # Selenium Manager may not fetch anything
    options = Options()
    options.binary_location = str(CHROMIUM)
    for arg in (
        "--headless=new",
        "--no-sandbox",  # root in CI
        "--disable-dev-shm-usage",
        "--disable-gpu",
        "--disable-extensions",
        "--no-first-run",
        f"--window-size={width},{height}",
    ):
        options.add_argument(arg)
    if width < 500:  # headless windows are never narrower: a phone's screen, emulated
        options.add_experimental_option(
            "mobileEmulation",
            {"deviceMetrics": {"width": width, "height": height, "pixelRatio": 2.0}},
        )
    options.set_capability("goog:loggingPrefs", {"performance": "ALL", "browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service(str(CHROMEDRIVER)))
    driver.set_page_load_timeout(30)
    return driver


@pytest.fixture
def browser() -> Iterator[Any]:
    driver = make_driver()
    try:
        yield driver
    finally:
        driver.quit()


def sign_in(driver: Any, base: str, token: str = ADMIN_TOKEN) -> None:
    from selenium.webdriver.common.by import By

    driver.get(base + "/console")
    driver.find_element(By.ID, "token").send_keys(token)
    driver.find_element(By.ID, "sign-in").click()
    if token == ADMIN_TOKEN:
        # Signed in once the console's own page (with its sign-out button) has loaded: a
        # navigation before then can race the form post and land on the sign-in page again.
        wait_for(driver, lambda d: d.find_elements(By.ID, "sign-out"))


def wait_for(driver: Any, condition: Callable[[Any], Any], timeout: float = 20.0) -> Any:
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, timeout, poll_frequency=0.1).until(condition)


class SimCall:
    """A simulated call (``hotline.sim.place_call``) running in its own thread and loop."""

    def __init__(self, server: ServerThread, **options: Any) -> None:
        self.control = CallControl()
        self.options = CallOptions(
            url=server.base,
            auth_token=AUTH_TOKEN,
            control=self.control,
            **{"max_seconds": 60.0, **options},
        )
        self.call_sid = self.options.call_sid
        self.report: CallReport | None = None
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._main, name="console-sim-call", daemon=True)
        self._thread.start()

    def _main(self) -> None:
        try:
            self.report = asyncio.run(place_call(self.options))
        except BaseException as exc:  # reported by result()
            self.error = exc

    def result(self, timeout: float = 90.0) -> CallReport:
        self._thread.join(timeout)
        assert not self._thread.is_alive(), "the simulated call did not end"
        if self.error is not None:
            raise self.error
        assert self.report is not None
        return self.report

    def hang_up(self) -> None:
        self.control.hang_up()
        self._thread.join(30)


def live(server: ServerThread, call_sid: str, timeout: float = 20.0) -> None:
    """Wait until ``call_sid`` is a live call of the server."""
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.call_on_loop(lambda: call_sid in server.hub.registry.calls):  # type: ignore[union-attr]
            return
        time.sleep(0.05)
    raise AssertionError(f"call {call_sid} never went live")


def signed_in_client(base: str) -> httpx.Client:
    """An HTTP client holding a console session (and the page's CSRF token in ``.csrf``)."""
    import re

    client = httpx.Client(base_url=base, timeout=10)
    response = client.post(
        "/console/sign-in",
        data={"token": ADMIN_TOKEN},
        headers={"Origin": base},
    )
    assert response.status_code == 303, response.text
    # the cookie is Secure: a cookie jar keeps it off http://127.0.0.1, a browser does not
    client.cookies.clear()
    client.headers["Cookie"] = response.headers["set-cookie"].split(";")[0]
    page = client.get("/console")
    found = re.search(r'data-csrf="([0-9a-f]+)"', page.text)
    assert found is not None
    client.csrf = found.group(1)  # type: ignore[attr-defined]
    return client
