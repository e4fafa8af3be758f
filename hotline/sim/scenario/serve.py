"""An offline hotline for ``hotline test --spawn-server``: ``python -m hotline serve`` on a free
127.0.0.1 port with fresh tokens, the local voice (eSpeak NG) and the local ear; stopped by its
own process handle."""

from __future__ import annotations

import contextlib
import os
import secrets
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass

from hotline.loopback import free_port

__all__ = ["SpawnedLine", "parse_env", "spawn_line"]

#: Variables of the environment the spawned server does not inherit (it is configured here).
_PREFIXES = ("TWILIO_", "ELEVENLABS_", "HOTLINE_", "RAILWAY_", "DEEPGRAM_")


@dataclass(frozen=True)
class SpawnedLine:
    url: str
    auth_token: str
    admin_token: str


def parse_env(items: list[str]) -> dict[str, str]:
    """``NAME=VALUE`` items as a dict.

    Raises:
        ValueError: an item without ``=`` or without a name.
    """
    env = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise ValueError(f"server setting {item!r}: expected NAME=VALUE")
        env[name] = value
    return env


@contextlib.contextmanager
def spawn_line(env: dict[str, str] | None = None, timeout: float = 60.0) -> Iterator[SpawnedLine]:
    """A hotline server of its own, offline, until the block exits; ``env`` adds or overrides
    its settings (``HOTLINE_SCRIPT``, ``HOTLINE_BRAIN`` ...). A caller asking for a person is
    handed to a test number (``HOTLINE_HANDOFF_NUMBER``).

    Raises:
        RuntimeError: it exited or did not answer ``/health`` within ``timeout`` (its log).
    """
    import httpx

    port = free_port()
    line = SpawnedLine(
        url=f"http://127.0.0.1:{port}",
        auth_token=secrets.token_hex(16),
        admin_token=secrets.token_hex(16),
    )
    child = {k: v for k, v in os.environ.items() if not k.startswith(_PREFIXES)}
    child.update(
        TWILIO_AUTH_TOKEN=line.auth_token,
        HOTLINE_ADMIN_TOKEN=line.admin_token,
        HOTLINE_PUBLIC_URL=line.url,
        # A person to hand callers to (the <Connect action> answers <Dial>): without one the
        # script's handoff intent promises nobody (its no_handoff line instead).
        HOTLINE_HANDOFF_NUMBER="+15555550100",
    )
    child.update(env or {})
    with tempfile.TemporaryFile("w+") as log, tempfile.TemporaryDirectory() as scratch:
        # Call records of its own, gone with it (not the default file in the working directory,
        # where every run would meet the last run's callers again).
        child.setdefault("HOTLINE_DATABASE_URL", f"sqlite:///{scratch}/records.sqlite3")
        proc = subprocess.Popen(
            [sys.executable, "-m", "hotline", "serve", "--host", "127.0.0.1", "--port", str(port)],
            env=child,
            stdout=subprocess.DEVNULL,
            stderr=log,
            text=True,
        )
        try:
            deadline = time.monotonic() + timeout
            while True:
                with contextlib.suppress(httpx.TransportError):
                    if httpx.get(line.url + "/health", timeout=1).status_code == 200:
                        break
                if proc.poll() is not None or time.monotonic() > deadline:
                    log.seek(0)
                    raise RuntimeError(
                        f"the spawned hotline did not come up (exit {proc.poll()}):\n"
                        + log.read()[-3000:]
                    )
                time.sleep(0.1)
            yield line
        finally:
            if proc.poll() is None:
                proc.send_signal(2)  # SIGINT: a graceful stop
                try:
                    proc.wait(20)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
