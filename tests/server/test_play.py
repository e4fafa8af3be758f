"""play: fetch an audio URL from a real local HTTP server and convert it to 8 kHz µ-law."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

import lameenc
import numpy as np
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from hotline.codec import ulaw_decode, ulaw_encode
from hotline.errors import PlayError
from hotline.loopback import free_port
from hotline.server.play import fetch_ulaw, to_ulaw
from tests.audio import tone, wav_bytes
from tests.support.server import serve


def mp3_of(pcm16: bytes, rate: int = 44100) -> bytes:
    enc = lameenc.Encoder()
    enc.set_in_sample_rate(rate)
    enc.set_channels(1)
    enc.set_bit_rate(64)
    enc.set_quality(5)
    return bytes(enc.encode(pcm16)) + bytes(enc.flush())


def dominant_hz(ulaw: bytes) -> float:
    x = np.frombuffer(ulaw_decode(ulaw), dtype="<i2").astype(np.float64)
    spectrum = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    return float(np.argmax(spectrum) * 8000 / len(x))


MP3 = mp3_of(tone(440.0, seconds=1.0))
STEREO = np.repeat(np.frombuffer(tone(1000.0, 22050, seconds=0.5), dtype="<i2"), 2).tobytes()


def stereo_wav() -> bytes:
    wav = bytearray(wav_bytes(STEREO, 22050))
    wav[22:24] = (2).to_bytes(2, "little")  # channels
    wav[28:32] = (22050 * 4).to_bytes(4, "little")
    wav[32:34] = (4).to_bytes(2, "little")
    return bytes(wav)


async def stream_forever(request: Request) -> Response:
    async def body() -> AsyncIterator[bytes]:
        while True:
            yield b"\xff" * 65536
            await asyncio.sleep(0)

    return StreamingResponse(body(), media_type="audio/mpeg")


async def hang(request: Request) -> Response:
    await asyncio.sleep(30)
    return Response(b"")


async def fixed(request: Request) -> Response:
    files = {
        "a.mp3": (MP3, "audio/mpeg"),
        "a.wav": (stereo_wav(), "audio/wav"),
        "u.wav": (
            wav_bytes(ulaw_encode(tone(500.0, 8000, seconds=0.5)), 8000, "ulaw"),
            "audio/wav",
        ),
        "page.html": (b"<html>not audio</html>", "text/html"),
    }
    name = request.path_params["name"]
    if name not in files:
        return Response(b'{"error":"nope"}', status_code=404)
    data, kind = files[name]
    return Response(data, media_type=kind)


APP = Starlette(
    routes=[Route("/forever", stream_forever), Route("/hang", hang), Route("/f/{name}", fixed)]
)


def run(test: Callable[[str], Awaitable[None]]) -> None:
    async def main() -> None:
        async with serve(APP) as base:
            await test(base)

    asyncio.run(asyncio.wait_for(main(), 60))


def test_mp3_from_a_url() -> None:
    async def t(base: str) -> None:
        out = await fetch_ulaw(base + "/f/a.mp3?sig=secret")
        assert abs(len(out) - 8000) < 400  # one second (± the encoder's padding)
        assert abs(dominant_hz(out) - 440.0) < 5

    run(t)


def test_wav_stereo_pcm_and_ulaw() -> None:
    async def t(base: str) -> None:
        out = await fetch_ulaw(base + "/f/a.wav")
        assert abs(len(out) - 4000) <= 2 and abs(dominant_hz(out) - 1000.0) < 5
        u = await fetch_ulaw(base + "/f/u.wav")
        assert u == ulaw_encode(tone(500.0, 8000, seconds=0.5))  # passes through untouched

    run(t)


@pytest.mark.parametrize(
    ("path", "kwargs", "match"),
    [
        ("/f/missing.mp3?token=hunter2", {}, r"/f/missing\.mp3: HTTP 404$"),
        ("/f/page.html", {}, "not MP3 or WAV"),
        ("/f/a.mp3", {"max_bytes": 1000}, "over the 1000-byte limit"),
        ("/forever", {"max_bytes": 200_000}, "over the 200000-byte limit"),
        ("/hang", {"timeout": 0.3}, "timed out after 0.3 s"),
    ],
)
def test_clear_errors(path: str, kwargs: dict[str, float], match: str) -> None:
    async def t(base: str) -> None:
        with pytest.raises(PlayError, match=match) as info:
            await fetch_ulaw(base + path, **kwargs)  # type: ignore[arg-type]
        assert "hunter2" not in str(info.value)

    run(t)


def test_connection_refused_and_bad_scheme() -> None:
    async def t(base: str) -> None:
        port = free_port()  # nothing listens there
        with pytest.raises(PlayError, match="ConnectError"):
            await fetch_ulaw(f"http://127.0.0.1:{port}/a.mp3")
        with pytest.raises(PlayError, match="http"):
            await fetch_ulaw("file:///etc/passwd")

    run(t)


@pytest.mark.parametrize(
    ("data", "match"),
    [
        (b"", "empty"),
        (b"RIFF\x10\x00\x00\x00WAVEjunk", "without fmt"),
        (wav_bytes(b"\x00" * 100, 11025), "sample rate 11025"),
        (b"\xff\xfb" + b"\x00" * 50, "no audio|undecodable"),
    ],
)
def test_to_ulaw_rejects(data: bytes, match: str) -> None:
    with pytest.raises(PlayError, match=match):
        to_ulaw(data)
