"""Make the console's screenshots: a real hotline, a real simulated call, chromium.

    python scripts/console_screenshots.py [--out docs]

The README shows the two PNGs (small; the console issue asks for them there) and describes the
pages in words too; run this after changing what the pages look like.

Starts ``hotline serve --insecure-dev`` (the local voice, the local ear) on a free port with a
throwaway admin token, places a call with ``hotline.sim`` that asks two questions aloud, signs
in to ``/console`` in headless chromium (the system one, through the system chromedriver), and
saves ``console-live.png`` (the live view, mid-call) and ``console-call.png`` (that call's
page once it has ended). Needs chromium and chromium-driver (``make testdeps``).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

from hotline.loopback import free_port
from hotline.sim.caller import place_call
from hotline.sim.options import CallControl, CallOptions

ROOT = Path(__file__).resolve().parents[1]


def _driver(width: int, height: int):  # type: ignore[no-untyped-def]
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    os.environ["SE_OFFLINE"] = "true"
    options = Options()
    options.binary_location = "/usr/bin/chromium"
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-dev-shm-usage",
        "--hide-scrollbars",
        f"--window-size={width},{height}",
    ):
        options.add_argument(arg)
    return webdriver.Chrome(options=options, service=Service("/usr/bin/chromedriver"))


def _wait(predicate, timeout: float, what: str) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise SystemExit(f"timed out waiting for {what}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(ROOT / "docs"), help="folder for the PNGs")
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    from selenium.webdriver.common.by import By

    port = free_port()
    base = f"http://127.0.0.1:{port}"
    token = secrets.token_urlsafe(16)
    scratch = tempfile.mkdtemp(prefix="hotline-screenshots-")
    env = {
        **os.environ,
        "HOTLINE_ADMIN_TOKEN": token,
        "HOTLINE_DATABASE_URL": f"sqlite:///{scratch}/records.sqlite3",
        "PYTHONPATH": str(ROOT),
    }
    server = subprocess.Popen(
        [sys.executable, "-m", "hotline", "serve", "--insecure-dev", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    driver = None
    try:
        _wait(lambda: _up(base), 60, "the server")
        control = CallControl()
        options = CallOptions(
            url=base,
            speak=("What are the tour dates?", "Where can I buy merch?"),
            control=control,
            max_seconds=90,
        )
        done = threading.Event()
        threading.Thread(
            target=lambda: (asyncio.run(place_call(options)), done.set()), daemon=True
        ).start()
        driver = _driver(900, 760)
        driver.get(base + "/console")
        driver.find_element(By.ID, "token").send_keys(token)
        driver.find_element(By.ID, "sign-in").click()

        def answered_twice() -> bool:
            rows = driver.find_elements(By.CSS_SELECTOR, "li.call .hotline-words")
            return bool(rows) and "merch" in (rows[0].get_attribute("textContent") or "").lower()

        _wait(answered_twice, 80, "the second answer")
        driver.find_element(By.CSS_SELECTOR, ".say-text").send_keys("Thanks for calling!")
        driver.save_screenshot(str(out / "console-live.png"))
        control.hang_up()
        _wait(done.is_set, 30, "the call's end")
        driver.set_window_size(900, 1250)

        def recorded() -> bool:
            driver.get(f"{base}/console/calls/{options.call_sid}")
            return bool(driver.find_elements(By.ID, "ended-by"))

        _wait(recorded, 30, "the call's record")
        driver.save_screenshot(str(out / "console-call.png"))
        print(f"wrote {out / 'console-live.png'} and {out / 'console-call.png'}")
        return 0
    finally:
        if driver is not None:
            driver.quit()
        server.terminate()
        server.wait(30)
        shutil.rmtree(scratch, ignore_errors=True)


def _up(base: str) -> bool:
    try:
        return httpx.get(base + "/health", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


if __name__ == "__main__":
    raise SystemExit(main())
