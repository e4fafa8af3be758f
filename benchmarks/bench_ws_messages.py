"""Server CPU per outbound Twilio media message vs message size, on hotline's own stack.

    python -m benchmarks.bench_ws_messages [--seconds-of-audio 600] [--ws websockets-sansio]

A uvicorn + Starlette WebSocket server (uvloop, the ws implementation chosen with ``--ws``)
sends the same amount of µ-law audio to a client on 127.0.0.1 as Twilio media messages built by
:class:`hotline.core.twilio.TwilioStream` (base64 + JSON), cut into messages of 20, 40, 100,
200 and 400 ms, awaiting ``send_text`` per message as hotline's send loop does. The server's
CPU (``/proc/<pid>/stat``) per audio-second and per message shows what batching outbound audio
into larger messages saves: Twilio accepts media messages of any size (protocols.md §1.3).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import time
from typing import Any

from hotline.loopback import free_port
from hotline.sim.load import proc_sample

SIZES_MS = (20, 40, 100, 200, 400)

SERVER = r"""
import sys, uvicorn
from starlette.applications import Starlette
from starlette.routing import WebSocketRoute
from hotline.core.twilio import TwilioStream

START = ('{"event":"start","sequenceNumber":"1","start":{"accountSid":"AC1","streamSid":"MZ1",'
         '"callSid":"CA1","tracks":["inbound"],"customParameters":{},"mediaFormat":'
         '{"encoding":"audio/x-mulaw","sampleRate":8000,"channels":1}},"streamSid":"MZ1"}')

async def media(ws):
    await ws.accept()
    frame_bytes = int(ws.query_params["bytes"])
    total = int(ws.query_params["total"])
    stream = TwilioStream()
    stream.receive_text(START)
    chunk = bytes(range(256)) * (frame_bytes // 256 + 1)
    chunk = chunk[:frame_bytes]
    sent = 0
    while sent < total:
        for _ in range(10):  # a pump's worth: one refill step of frames
            stream.send_media(chunk)
            sent += frame_bytes
        for text in stream.data_to_send():
            await ws.send_text(text)
    await ws.send_text("done")
    await ws.close()

app = Starlette(routes=[WebSocketRoute("/m", media)])
uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), ws=sys.argv[2], loop="uvloop",
            log_level="warning", ws_ping_interval=None)
"""


async def _drain(url: str) -> int:
    from websockets.asyncio.client import connect

    n = 0
    async with connect(url, max_size=None) as ws:
        async for msg in ws:
            if msg == "done":
                break
            n += 1
    return n


async def _wait_port(port: int, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            _r, w = await asyncio.open_connection("127.0.0.1", port)
            w.close()
            return
        except OSError:
            await asyncio.sleep(0.1)
    raise RuntimeError("server did not start")


def run(seconds_of_audio: float, ws_impl: str, rounds: int) -> dict[str, Any]:
    port = free_port()
    env = dict(os.environ)
    proc = subprocess.Popen([sys.executable, "-c", SERVER, str(port), ws_impl], env=env)
    out: dict[str, Any] = {"ws": ws_impl, "audio_seconds": seconds_of_audio, "sizes": {}}
    try:
        asyncio.run(_wait_port(port))
        total = int(seconds_of_audio * 8000)
        for ms in SIZES_MS:
            best = float("inf")
            msgs = 0
            for _ in range(rounds):
                before = proc_sample(proc.pid)
                msgs = asyncio.run(_drain(f"ws://127.0.0.1:{port}/m?bytes={ms * 8}&total={total}"))
                after = proc_sample(proc.pid)
                assert before is not None and after is not None
                best = min(best, after.cpu_s - before.cpu_s)
            out["sizes"][ms] = {
                "messages": msgs,
                "cpu_ms_per_audio_second": round(best * 1000 / seconds_of_audio, 3),
                "us_per_message": round(best * 1e6 / msgs, 2),
            }
    finally:
        proc.terminate()
        proc.wait(10)
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.bench_ws_messages")
    p.add_argument("--seconds-of-audio", type=float, default=600.0)
    p.add_argument("--ws", default="websockets-sansio")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    res = run(args.seconds_of_audio, args.ws, args.rounds)
    if args.json:
        print(json.dumps(res, indent=2))
        return 0
    print(f"# uvicorn ws={res['ws']}, {res['audio_seconds']:.0f} s of audio per size, best round")
    print(f"{'msg ms':>6} {'messages':>9} {'server cpu ms/audio-s':>22} {'µs/msg':>8}")
    for ms, r in res["sizes"].items():
        print(
            f"{ms:>6} {r['messages']:>9} {r['cpu_ms_per_audio_second']:>22.3f} "
            f"{r['us_per_message']:>8.2f}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
