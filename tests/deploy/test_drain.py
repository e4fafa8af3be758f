"""Deploys drain: SIGTERM to a real ``hotline serve`` 3 s into a call. The caller hears the
greeting to its end, ``/health`` says draining meanwhile (and webhooks are still answered),
and the process exits once the call is over."""

from __future__ import annotations

import asyncio
import signal
import time
from pathlib import Path

import httpx
import pytest

from hotline.sim.call_report import CallReport
from hotline.sim.caller import place_call
from hotline.sim.options import CallControl, CallOptions
from tests.support.spawn import hotline_serve

pytestmark = pytest.mark.slow  # real processes in real time: `make test-all`, not `make test`

TOKEN = "drain-test-twilio-token-0123456789abcd"
GREETING = (
    "Thanks for calling the drain line. This greeting takes several seconds to say, so "
    "that the server is told to stop while the caller is still listening to it, and it "
    "must be heard to its very last word."
)
SCRIPT = f"""
greeting = "{GREETING}"
invalid_digit = "That key does nothing."
goodbye = "Goodbye."
"""


def test_sigterm_mid_call_lets_the_greeting_finish_then_exits(tmp_path: Path) -> None:
    script = tmp_path / "script.toml"
    script.write_text(SCRIPT)
    env = {
        "TWILIO_AUTH_TOKEN": TOKEN,
        "HOTLINE_SCRIPT": str(script),
        "HOTLINE_LOCAL_VOICE_FIRST_CHUNK_DELAY": "0.05",
        "HOTLINE_DRAIN_TIMEOUT": "60",
    }
    with hotline_serve("--insecure-dev", **env) as served:

        async def main() -> tuple[CallReport, list[int], int, float | None]:
            live: list[CallReport] = []
            control = CallControl()
            task = asyncio.create_task(
                place_call(
                    CallOptions(
                        url=served.base,
                        auth_token=TOKEN,
                        max_seconds=40,
                        control=control,
                        on_started=live.append,
                    )
                )
            )
            while not live:
                await asyncio.sleep(0.02)
            await asyncio.sleep(3.0)
            served.proc.send_signal(signal.SIGTERM)
            statuses: list[int] = []
            webhook_status = 0
            async with httpx.AsyncClient(timeout=2) as client:
                while not live[0].utterances:  # the greeting plays on
                    try:
                        r = await client.get(served.base + "/health")
                        statuses.append(r.status_code)
                        assert r.status_code != 503 or r.json()["status"] == "draining"
                    except httpx.TransportError:
                        statuses.append(-1)
                    if statuses[-1] == 503 and not webhook_status:
                        # A webhook that still arrives is answered (unsigned: 403, not dropped).
                        webhook_status = (
                            await client.post(served.base + "/voice", data={"CallSid": "CA1"})
                        ).status_code
                    await asyncio.sleep(0.1)
            control.hang_up()  # the caller heard the greeting out and hangs up
            report = await task
            ended = time.monotonic()
            exited_after: float | None = None
            while time.monotonic() - ended < 15:
                if served.proc.poll() is not None:
                    exited_after = time.monotonic() - ended
                    break
                await asyncio.sleep(0.05)
            return report, statuses, webhook_status, exited_after

        report, statuses, webhook_status, exited_after = asyncio.run(main())
        assert exited_after is not None, "the server did not exit once the call was over"
        print(f"\nexited {exited_after:.2f} s after the call ended")
    assert report.errors == [] and report.protocol_violations == 0, report.errors
    greeting = report.utterances[0]
    assert greeting.mark is not None and not greeting.cleared  # heard to its end, mark echoed
    assert greeting.audio_ms > 4000
    assert report.ended_by == "caller_stop"
    assert 503 in statuses and -1 not in statuses[: statuses.index(503)]
    assert webhook_status == 403
    assert served.proc.returncode == 0
    assert "draining: 1 live call(s) play on" in served.stderr
    assert "draining: every call has ended; stopping" in served.stderr
