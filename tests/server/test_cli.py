"""``hotline serve`` as a real process."""

from __future__ import annotations

import signal
import subprocess

import httpx

from hotline.loopback import free_port
from tests.support.spawn import run_serve, spawn_serve, wait_healthy


def test_refuses_without_twilio_token() -> None:
    r = run_serve()
    assert r.returncode == 2
    assert "TWILIO_AUTH_TOKEN is not set" in r.stderr and "--insecure-dev" in r.stderr


def test_refuses_without_public_url() -> None:
    r = run_serve(TWILIO_AUTH_TOKEN="t")
    assert r.returncode == 2 and "HOTLINE_PUBLIC_URL" in r.stderr


def test_insecure_dev_is_loopback_only() -> None:
    r = run_serve("--insecure-dev", "--host", "0.0.0.0")
    assert r.returncode == 2 and "127.0.0.1 only" in r.stderr


def test_bad_setting_is_reported() -> None:
    r = run_serve("--insecure-dev", ELEVENLABS_OUTPUT_FORMAT="wav_44100")
    assert r.returncode == 2 and "ELEVENLABS_OUTPUT_FORMAT" in r.stderr


def test_insecure_dev_serves_with_the_local_voice() -> None:
    port = free_port()
    proc = spawn_serve(
        "--insecure-dev",
        "--port",
        str(port),
        env={"HOTLINE_LOCAL_VOICE_FIRST_CHUNK_DELAY": "0.05"},
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        wait_healthy(base, proc, 20)
        body = httpx.get(base + "/health/streaming").json()
        assert (
            body["voice"] == "local"
            and body["websocket_url"] == f"ws://127.0.0.1:{port}/media-stream"
        )
        # No token: signatures are not checked (insecure-dev), and the stream URL comes from
        # the request.
        r = httpx.post(base + "/voice", data={"CallSid": "CA1", "From": "+15555550123"})
        assert r.status_code == 200 and f"ws://127.0.0.1:{port}/media-stream" in r.text
    finally:
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=20)
    assert proc.returncode == 0, err
    assert "insecure-dev: listening on 127.0.0.1 only" in err
    assert "Twilio signatures are NOT checked" in err
    assert "voice: local" in err
    assert "5555550123" not in err
