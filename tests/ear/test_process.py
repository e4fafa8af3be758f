"""EarProcess: the local ear in its own process, as ``hotline serve`` embeds it: it serves,
logs nothing pocketsphinx-internal, stops cleanly and promptly, and never outlives its parent."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from websockets.asyncio.client import connect

from hotline.core.scribe import CommitStrategy, ScribeRealtime
from hotline.ear.phrases import PHRASES, phrase_ulaw
from hotline.ear.process import EarProcess
from tests.ear.test_ear import drain, until
from tests.support import marks
from tests.support.aio import arun


@marks.wall_clock  # stops within 0.5 s of wall time
def test_ear_process_serves_logs_no_decoder_noise_and_stops_cleanly(tmp_path: Path) -> None:
    log = tmp_path / "ear.log"

    async def main() -> float:
        with open(log, "wb") as err:
            ear = await EarProcess.start(api_key="k", stderr=err)
        try:
            assert ear.url.startswith("ws://127.0.0.1:")
            url = ScribeRealtime(keyterms=PHRASES, commit_strategy=CommitStrategy.MANUAL).url(
                ear.url
            )
            async with connect(url, additional_headers={"xi-api-key": "k"}) as ws:
                await until(ws, "session_started")
                proto = ScribeRealtime()
                # Half a phrase, then a commit: the grammar search ends outside a final state,
                # which pocketsphinx reports as "Final result does not match the grammar".
                for phrase in PHRASES:
                    audio = phrase_ulaw(phrase)
                    proto.send_audio(audio[: len(audio) // 2])
                    proto.commit()
                    await drain(ws, proto)
                    await until(ws, "committed_transcript")
        finally:
            t0 = time.monotonic()
            await ear.stop()
            elapsed = time.monotonic() - t0
        assert ear.proc.returncode == 0
        return elapsed

    elapsed = arun(main)
    text = log.read_text(errors="replace")
    assert "Fatal Python error" not in text
    assert "does not match the grammar" not in text
    assert "ERROR:" not in text  # nothing from pocketsphinx's own log stream
    assert elapsed < 0.5, elapsed  # it used to wait 1 s, then abort


def test_ear_process_exits_when_its_stdin_closes(tmp_path: Path) -> None:
    log = tmp_path / "ear.log"

    async def main() -> None:
        with open(log, "wb") as err:
            ear = await EarProcess.start(stderr=err)
        assert ear.proc.stdin is not None
        ear.proc.stdin.close()  # what the kernel does when the parent dies, however it dies
        try:
            assert await asyncio.wait_for(ear.proc.wait(), 5.0) == 0
        finally:
            await ear.stop()

    arun(main)
    assert "Fatal Python error" not in log.read_text(errors="replace")


PARENT = """
import asyncio, sys
from hotline.ear.process import EarProcess

async def main():
    ear = await EarProcess.start()
    print(ear.proc.pid, flush=True)
    await asyncio.sleep(60)

asyncio.run(main())
"""


def _gone(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"  # a zombie has exited
    except FileNotFoundError:
        return True


def test_ear_process_does_not_outlive_a_killed_parent() -> None:
    parent = subprocess.Popen(
        [sys.executable, "-c", PARENT],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "PYTHONPATH": os.getcwd()},
        text=True,
    )
    assert parent.stdout is not None
    try:
        ear_pid = int(parent.stdout.readline())
        parent.send_signal(signal.SIGKILL)
        parent.wait(10)
        deadline = time.monotonic() + 5.0
        while not _gone(ear_pid):
            assert time.monotonic() < deadline, "the ear outlived its parent"
            time.sleep(0.05)
    finally:
        if parent.poll() is None:
            parent.kill()
            parent.wait()
        parent.stdout.close()
