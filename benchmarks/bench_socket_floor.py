"""The floor under a call's CPU: what the event loop alone costs to take Twilio's traffic.

    python -m benchmarks.bench_socket_floor [--calls 100] [--seconds 20]

A server process (uvloop, one ``asyncio.Protocol`` per connection) takes N connections, each
sent one ~400-byte masked WebSocket text frame (a Twilio ``media`` message) every 20 ms by a
client process, and does, per level:

- ``bare``: nothing with the bytes (the loop's wake-up, ``read``, the callback);
- ``parse``: also websockets' sans-I/O frame parser (``ServerProtocol.receive_data``) and the
  UTF-8 decode, as uvicorn does;
- ``twilio``: also hotline's own Twilio parser (``TwilioStream.receive_text``: the compiled
  media fast path, base64 and the VAD statistics);
- ``reply``: also one 160-byte-payload outbound frame per 100 ms per connection written back
  (hotline's batched outbound rate), as a server that speaks does.

It prints the server's CPU per connection-second for each, beside the codec's own cost for
mp3_44100_128 measured in the same run (as ``bench_load`` does), so the part of
``bench_load``'s server CPU that is the loop's and the kernel's (not hotline's) can be read off.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import subprocess
import sys
import time

from hotline.loopback import free_port

LEVELS = ("bare", "parse", "twilio", "reply")
_SID = "MZ" + "0" * 32


def _media(seq: int) -> str:
    payload = base64.b64encode(bytes(range(160))).decode()
    return json.dumps(
        {
            "event": "media",
            "sequenceNumber": str(seq),
            "media": {
                "track": "inbound",
                "chunk": str(seq),
                "timestamp": str(seq * 20),
                "payload": payload,
            },
            "streamSid": _SID,
        }
    )


def _masked_frame(text: str) -> bytes:
    payload = text.encode()
    mask = os.urandom(4)
    body = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    n = len(payload)
    header = (
        bytes((0x81, 0x80 | 126)) + n.to_bytes(2, "big") if n >= 126 else bytes((0x81, 0x80 | n))
    )
    return header + mask + body


def _start_message() -> str:
    return json.dumps(
        {
            "event": "start",
            "sequenceNumber": "1",
            "start": {
                "streamSid": _SID,
                "accountSid": "AC" + "0" * 32,
                "callSid": "CA" + "0" * 32,
                "tracks": ["inbound"],
                "customParameters": {},
                "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1},
            },
            "streamSid": _SID,
        }
    )


# ----------------------------------------------------------------------------- server side


def serve(port: int, level: str) -> None:
    import uvloop
    from websockets.frames import Frame
    from websockets.protocol import State
    from websockets.server import ServerProtocol

    from hotline.core.twilio import TwilioStream

    reply = bytes((0x81, 126)) + (300).to_bytes(2, "big") + b"x" * 300

    class Conn(asyncio.Protocol):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            self.transport = transport
            self.conn = ServerProtocol(max_size=65536)
            self.conn.state = State.OPEN
            self.twilio = TwilioStream()
            self.twilio.receive_text(
                json.dumps({"event": "connected", "protocol": "Call", "version": "1.0.0"})
            )
            self.twilio.receive_text(_start_message())
            self.twilio.events_received()
            self.n = 0

        def data_received(self, data: bytes) -> None:
            if level == "bare":
                return
            self.conn.receive_data(data)
            for frame in self.conn.events_received():
                assert isinstance(frame, Frame)
                text = bytes(frame.data).decode()
                if level == "parse":
                    continue
                self.twilio.receive_text(text)
                self.twilio.events_received()
                if level == "reply":
                    self.n += 1
                    if self.n % 5 == 0:
                        self.transport.write(reply)  # type: ignore[attr-defined]

    async def main() -> None:
        loop = asyncio.get_running_loop()
        server = await loop.create_server(Conn, "127.0.0.1", port)
        print("ready", flush=True)
        await server.serve_forever()

    uvloop.run(main())


# ----------------------------------------------------------------------------- client side


async def _drive(port: int, calls: int, seconds: float) -> None:
    frames = [_masked_frame(_media(i)) for i in range(50)]
    writers = []
    for _ in range(calls):
        _, w = await asyncio.open_connection("127.0.0.1", port)
        writers.append(w)
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    tick = 0
    while loop.time() - t0 < seconds:
        tick += 1
        for i, w in enumerate(writers):
            w.write(frames[(tick + i) % 50])
        await asyncio.sleep(max(0.0, t0 + tick * 0.02 - loop.time()))
    for w in writers:
        w.close()


def _cpu_s(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        parts = f.read().rsplit(")", 1)[1].split()
    return (int(parts[11]) + int(parts[12])) / os.sysconf("SC_CLK_TCK")


def measure(level: str, calls: int, seconds: float) -> float:
    port = free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "benchmarks.bench_socket_floor",
            "--serve",
            str(port),
            "--level",
            level,
        ],
        stdout=subprocess.PIPE,
    )
    try:
        assert proc.stdout is not None
        proc.stdout.readline()
        cpu0 = _cpu_s(proc.pid)
        t0 = time.monotonic()
        asyncio.run(_drive(port, calls, seconds))
        wall = time.monotonic() - t0
        cpu = _cpu_s(proc.pid) - cpu0
        return cpu * 1000.0 / (calls * wall)
    finally:
        proc.terminate()
        proc.wait(10)


def codec_ms_per_audio_second() -> float:
    from benchmarks.bench_load import codec_cpu_ms_per_audio_second

    return codec_cpu_ms_per_audio_second("mp3_44100_128")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m benchmarks.bench_socket_floor", description=__doc__
    )
    ap.add_argument("--calls", type=int, default=100)
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--serve", type=int, default=None, help=argparse.SUPPRESS)
    ap.add_argument("--level", choices=LEVELS, default="bare", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.serve is not None:
        serve(args.serve, args.level)
        return 0
    try:
        codec = codec_ms_per_audio_second()
    except Exception as exc:  # the floor figures stand without it
        print(f"# codec cost not measured: {exc}")
        codec = float("nan")
    print(f"# {args.calls} connections x {args.seconds:g} s, one Twilio media frame per 20 ms each")
    print(f"# codec's own CPU (mp3_44100_128 -> µ-law, same run): {codec:.3f} ms per audio-second")
    print("level    server ms/conn-s   / codec")
    for level in LEVELS:
        ms = measure(level, args.calls, args.seconds)
        print(f"{level:<8} {ms:>16.3f}   {ms / codec:>6.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
