"""Fetch an audio URL (ConversationRelay ``play``) and convert it to 8 kHz µ-law.

:func:`fetch_ulaw` GETs the URL with httpx (a bounded body, a total timeout, redirects
followed up to 5), then :func:`to_ulaw` decodes by content, not by name:

* MP3 (an ID3v2 tag or an MPEG audio frame sync) -> libmpg123 via ``Transcoder``;
* WAV (RIFF/WAVE): 16-bit PCM, mono or stereo (averaged), at 8/16/22.05/24/32/44.1/48 kHz;
  G.711 µ-law or A-law at 8 kHz mono.

Anything else, an HTTP status other than 2xx, a body over ``max_bytes``, a timeout or a
connection failure raises :class:`hotline.errors.PlayError` with a message that names the
problem (never the URL's query string, which may hold a token).
"""

from __future__ import annotations

import struct
from urllib.parse import urlsplit

import httpx

from hotline.codec import SUPPORTED_FORMATS, Transcoder
from hotline.errors import CodecError, PlayError

__all__ = ["MAX_PLAY_BYTES", "fetch_ulaw", "to_ulaw"]

#: Largest audio file fetched (about 5 minutes of 128 kbit/s MP3).
MAX_PLAY_BYTES = 5 * 1024 * 1024


def _where(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}{parts.path}"


async def fetch_ulaw(
    url: str,
    *,
    client: httpx.AsyncClient | None = None,
    max_bytes: int = MAX_PLAY_BYTES,
    timeout: float = 5.0,
) -> bytes:
    """GET ``url`` and return its audio as 8 kHz µ-law.

    Raises:
        PlayError: not http(s), a non-2xx status, too big, timeout, connection error,
            or audio :func:`to_ulaw` cannot decode.
    """
    if urlsplit(url).scheme not in ("http", "https"):
        raise PlayError("play source must be an http(s) URL")
    where = _where(url)
    own = client is None
    http = client or httpx.AsyncClient(timeout=timeout, follow_redirects=True, max_redirects=5)
    try:
        async with http.stream("GET", url, timeout=timeout) as response:
            if not 200 <= response.status_code < 300:
                raise PlayError(f"{where}: HTTP {response.status_code}")
            declared = response.headers.get("content-length")
            if declared is not None and declared.isdigit() and int(declared) > max_bytes:
                raise PlayError(f"{where}: {declared} bytes is over the {max_bytes}-byte limit")
            body = bytearray()
            async for piece in response.aiter_bytes():
                body += piece
                if len(body) > max_bytes:
                    raise PlayError(f"{where}: over the {max_bytes}-byte limit")
            content_type = response.headers.get("content-type")
    except httpx.TimeoutException:
        raise PlayError(f"{where}: timed out after {timeout:g} s") from None
    except httpx.HTTPError as exc:
        raise PlayError(f"{where}: {type(exc).__name__}") from None
    finally:
        if own:
            await http.aclose()
    try:
        return to_ulaw(bytes(body), content_type)
    except PlayError as exc:
        raise PlayError(f"{where}: {exc}") from None


def _is_mp3(data: bytes) -> bool:
    if data[:3] == b"ID3":
        return True
    return len(data) >= 2 and data[0] == 0xFF and (data[1] & 0xE0) == 0xE0


def to_ulaw(data: bytes, content_type: str | None = None) -> bytes:
    """Decode a whole MP3 or WAV file to 8 kHz µ-law (``content_type`` is only a hint).

    Raises:
        PlayError: empty, an unsupported container or encoding, or undecodable audio.
    """
    if not data:
        raise PlayError("empty audio file")
    try:
        if data[:4] == b"RIFF" and data[8:12] == b"WAVE":
            fmt, payload = _wav(data)
        elif _is_mp3(data) or (content_type or "").startswith(("audio/mpeg", "audio/mp3")):
            fmt, payload = "mp3_44100_128", data
        else:
            raise PlayError("not MP3 or WAV audio")
        transcoder = Transcoder(fmt)
        out = transcoder.feed(payload) + transcoder.flush()
    except CodecError as exc:
        raise PlayError(f"undecodable audio ({exc})") from None
    if not out:
        raise PlayError("no audio in the file")
    return out


def _wav(data: bytes) -> tuple[str, bytes]:
    pos = 12
    fmt: tuple[int, int, int, int] | None = None
    while pos + 8 <= len(data):
        chunk_id = data[pos : pos + 4]
        (size,) = struct.unpack_from("<I", data, pos + 4)
        body = data[pos + 8 : pos + 8 + size]
        if chunk_id == b"fmt ":
            if len(body) < 16:
                raise PlayError("WAV fmt chunk too short")
            tag, channels, rate, _, _, bits = struct.unpack_from("<HHIIHH", body)
            if tag == 0xFFFE and len(body) >= 26:  # WAVE_FORMAT_EXTENSIBLE: the sub-format
                (tag,) = struct.unpack_from("<H", body, 24)
            fmt = (tag, channels, rate, bits)
        elif chunk_id == b"data":
            if fmt is None:
                raise PlayError("WAV data before fmt")
            return _wav_format(fmt, body)
        pos += 8 + size + (size & 1)
    raise PlayError("WAV without fmt and data chunks")


def _wav_format(fmt: tuple[int, int, int, int], body: bytes) -> tuple[str, bytes]:
    tag, channels, rate, bits = fmt
    if tag in (6, 7):  # A-law, µ-law
        if rate != 8000 or channels != 1 or bits != 8:
            raise PlayError("G.711 WAV must be 8 kHz mono")
        return ("ulaw_8000" if tag == 7 else "alaw_8000"), body
    if tag != 1 or bits != 16 or channels not in (1, 2):
        raise PlayError(f"unsupported WAV encoding (format {tag}, {bits}-bit, {channels} ch)")
    name = f"pcm_{rate}"
    if name not in SUPPORTED_FORMATS:
        raise PlayError(f"unsupported WAV sample rate {rate}")
    if channels == 2:
        body = body[: len(body) // 4 * 4]
        samples = memoryview(body).cast("h")
        mono = [(samples[i] + samples[i + 1]) // 2 for i in range(0, len(samples), 2)]
        body = struct.pack(f"<{len(mono)}h", *mono)
    return name, body
