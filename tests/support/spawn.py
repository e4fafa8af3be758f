"""``hotline serve`` as a real process: the one way the tests spawn it.

Always ``python -m hotline serve`` from this interpreter, in the repository, with a clean
environment (no inherited TWILIO_/ELEVENLABS_/HOTLINE_/RAILWAY_ variable: what a test sets is
all the process sees). Processes are stopped by their own handle, never by name.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from hotline.loopback import free_port

ROOT = Path(__file__).resolve().parents[2]
SERVE = (sys.executable, "-m", "hotline", "serve")
#: Call records of the spawned servers (on by default: SQLite), kept out of the repository.
RECORDS_DIR = tempfile.mkdtemp(prefix="hotline-test-serve-records-")


def clean_env(**extra: str) -> dict[str, str]:
    """This process's environment without hotline's, Twilio's, ElevenLabs' and Railway's
    variables, plus ``extra``."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("TWILIO_", "ELEVENLABS_", "HOTLINE_", "RAILWAY_"))
        and k != "DATABASE_URL"
    }
    # call records (on by default) in a new SQLite file (a new deployment), not the repository's
    env["HOTLINE_DATABASE_URL"] = f"sqlite:///{tempfile.mkdtemp(dir=RECORDS_DIR)}/records.sqlite3"
    env.update(extra)
    return env


def run_serve(*args: str, timeout: float = 30, **env: str) -> subprocess.CompletedProcess[str]:
    """``hotline serve *args`` run to its exit (a refusal), output captured."""
    return subprocess.run(
        [*SERVE, *args],
        cwd=ROOT,
        env=clean_env(**env),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def spawn_serve(*args: str, env: dict[str, str], **popen: Any) -> subprocess.Popen[Any]:
    """``hotline serve *args`` started with ``env`` added to :func:`clean_env`; ``popen`` goes
    to :class:`subprocess.Popen` (where its output goes)."""
    return subprocess.Popen([*SERVE, *args], cwd=ROOT, env=clean_env(**env), **popen)


def wait_healthy(
    base: str,
    proc: subprocess.Popen[Any],
    timeout: float = 30,
    output: Callable[[], str] = lambda: "",
) -> None:
    """Poll ``base``/health until it answers 200.

    Raises:
        AssertionError: the process exited first, or ``timeout`` passed (with ``output()``).
    """
    deadline = time.monotonic() + timeout
    while True:
        with contextlib.suppress(httpx.TransportError):
            if httpx.get(base + "/health", timeout=1).status_code == 200:
                return
        if proc.poll() is not None:
            raise AssertionError(f"hotline serve exited with {proc.returncode}:\n{output()}")
        if time.monotonic() > deadline:
            raise AssertionError(f"hotline serve did not answer in {timeout} s:\n{output()}")
        time.sleep(0.05)


def stop(proc: subprocess.Popen[Any], sig: int = signal.SIGINT, timeout: float = 20) -> str:
    """Send ``sig`` (if still running), wait up to ``timeout`` s (then kill); returns what it
    wrote to a piped stderr."""
    if proc.poll() is None:
        proc.send_signal(sig)
    try:
        _, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        _, err = proc.communicate()
    return err or ""


@dataclass
class Served:
    port: int
    base: str
    proc: subprocess.Popen[str]
    stderr: str = ""  # filled in when the server has stopped


@contextlib.contextmanager
def hotline_serve(*args: str, port: int | None = None, **env: str) -> Iterator[Served]:
    """``hotline serve --port PORT *args`` with ``env``, once ``/health`` answers; stopped
    with SIGINT when the block exits. The served record's ``stderr`` then holds the log."""
    port = free_port() if port is None else port
    proc = spawn_serve(
        "--port",
        str(port),
        *args,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    served = Served(port, f"http://127.0.0.1:{port}", proc)
    try:
        try:
            wait_healthy(served.base, proc)
        except AssertionError as exc:
            raise RuntimeError(f"{exc}\n{stop(proc)}") from None
        yield served
    finally:
        served.stderr = stop(proc)
