"""``--spawn-server``: ``hotline serve`` (and the local voice) as child processes on free ports."""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Any

from hotline.ear.process import EarProcess
from hotline.loopback import free_port


@dataclass
class SpawnedServer:
    url: str
    auth_token: str
    admin_token: str
    pid: int
    voice_pid: int | None
    log_path: str
    first_chunk_delay: float
    #: The local ear in its own process, as the server's Scribe service (None: not spawned).
    ear_pid: int | None = None


def _tail(path: str, lines: int = 20) -> str:
    try:
        with open(path, errors="replace") as f:
            return "".join(f.readlines()[-lines:])
    except OSError:
        return ""


@contextlib.asynccontextmanager
async def spawn_server(
    *,
    embedded_voice: bool = False,
    first_chunk_delay: float = 0.25,
    log_level: str = "info",
    extra_env: Mapping[str, str] | None = None,
    startup_timeout: float = 30.0,
    server_cpus: frozenset[int] | None = None,
) -> AsyncIterator[SpawnedServer]:
    """``hotline serve --insecure-dev`` (plus ``hotline tts-standin`` unless ``embedded_voice``) as
    child processes on free loopback ports, with generated tokens; stopped on exit.

    With the voice in its own process the server is configured as a deployment is: ElevenLabs
    for the voice *and* for speech-to-text (Scribe realtime, the default once
    ``ELEVENLABS_API_KEY`` is set), the local ear (``python -m hotline.ear``) standing in for
    Scribe in a third process, so every call streams its caller's audio to a recogniser over
    the real client path. ``HOTLINE_STT`` or ``HOTLINE_STT_URL`` in ``extra_env`` overrides
    that (e.g. ``HOTLINE_STT=off``). ``server_cpus``: the server runs on those CPUs only, and
    the voice, the ear and the calling process on the others."""
    import httpx

    auth_token = secrets.token_hex(16)
    admin_token = secrets.token_hex(16)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    logdir = tempfile.mkdtemp(prefix="hotline-load-")
    log_path = os.path.join(logdir, "server.log")
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("ELEVENLABS_", "HOTLINE_", "TWILIO_")) and k != "PORT"
    }
    env.update(
        TWILIO_AUTH_TOKEN=auth_token,
        HOTLINE_ADMIN_TOKEN=admin_token,
        HOTLINE_PUBLIC_URL=url,
        HOTLINE_LOCAL_VOICE_FIRST_CHUNK_DELAY=str(first_chunk_delay),
        PYTHONUNBUFFERED="1",
        # call records (on by default) in a SQLite file of this run, not the working directory
        HOTLINE_DATABASE_URL=f"sqlite:///{logdir}/records.sqlite3",
    )
    env.update(extra_env or {})
    procs: list[subprocess.Popen[bytes]] = []
    logs: list[Any] = []
    voice_pid: int | None = None
    ear: EarProcess | None = None
    ear_pid: int | None = None
    # restored on exit (server_cpus moves this process); Linux only, like the pinning
    own_cpus = os.sched_getaffinity(0) if server_cpus else None
    try:
        if not embedded_voice:
            voice_port = free_port()
            voice_key = secrets.token_hex(16)
            vlog = open(os.path.join(logdir, "voice.log"), "wb")
            logs.append(vlog)
            vproc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "hotline",
                    "tts-standin",
                    "--port",
                    str(voice_port),
                    "--api-key",
                    voice_key,
                    "--first-chunk-delay",
                    str(first_chunk_delay),
                ],
                stdout=vlog,
                stderr=subprocess.STDOUT,
                env=env,
            )
            procs.append(vproc)
            voice_pid = vproc.pid
            env.update(
                ELEVENLABS_API_KEY=voice_key, ELEVENLABS_BASE_URL=f"ws://127.0.0.1:{voice_port}"
            )
            await _wait_port(voice_port, vproc, startup_timeout, os.path.join(logdir, "voice.log"))
            if not {"HOTLINE_STT", "HOTLINE_STT_URL"} & set(extra_env or {}):
                ear_log = os.path.join(logdir, "ear.log")
                with open(ear_log, "wb") as elog:
                    try:
                        ear = await EarProcess.start(
                            startup_timeout, api_key=voice_key, stderr=elog
                        )
                    except RuntimeError as exc:
                        raise RuntimeError(f"{exc}:\n{_tail(ear_log)}") from None
                ear_pid = ear.proc.pid
                env.update(HOTLINE_STT_URL=ear.url)
        slog = open(log_path, "wb")
        logs.append(slog)
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "hotline",
                "serve",
                "--insecure-dev",
                "--port",
                str(port),
                "--log-level",
                log_level,
            ],
            stdout=slog,
            stderr=subprocess.STDOUT,
            env=env,
        )
        procs.append(proc)
        if server_cpus:
            others = set(os.sched_getaffinity(0)) - set(server_cpus)
            os.sched_setaffinity(proc.pid, server_cpus)
            if others:
                for helper in (voice_pid, ear_pid, 0):  # 0: this process
                    if helper is not None:
                        os.sched_setaffinity(helper, others)
        deadline = time.monotonic() + startup_timeout
        async with httpx.AsyncClient(timeout=2.0) as client:
            while True:
                if proc.poll() is not None:
                    raise RuntimeError(
                        f"hotline serve exited with {proc.returncode}:\n{_tail(log_path)}"
                    )
                with contextlib.suppress(httpx.HTTPError):
                    r = await client.get(url + "/health/streaming")
                    if r.status_code == 200 and r.json().get("status") == "ok":
                        break
                if time.monotonic() > deadline:
                    raise RuntimeError(f"hotline serve did not start:\n{_tail(log_path)}")
                await asyncio.sleep(0.1)
        yield SpawnedServer(
            url, auth_token, admin_token, proc.pid, voice_pid, log_path, first_chunk_delay, ear_pid
        )
    finally:
        if own_cpus is not None:
            os.sched_setaffinity(0, own_cpus)
        for p in reversed(procs):
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in reversed(procs):
            try:
                await asyncio.to_thread(p.wait, 10.0)
            except subprocess.TimeoutExpired:
                p.kill()
                await asyncio.to_thread(p.wait)
        if ear is not None:
            await ear.stop()
        for f in logs:
            f.close()
        if not os.environ.get("HOTLINE_LOAD_KEEP_LOGS"):
            shutil.rmtree(logdir, ignore_errors=True)


async def _wait_port(
    port: int,
    proc: subprocess.Popen[bytes],
    timeout: float,
    log: str,
    what: str = "hotline tts-standin",
) -> None:
    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode}:\n{_tail(log)}")
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()
            return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what} did not start:\n{_tail(log)}")
        await asyncio.sleep(0.1)


# ----------------------------------------------------------------------------- the run
