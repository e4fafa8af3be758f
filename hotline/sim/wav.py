"""WAV output for the caller simulator (stdlib ``wave``): 8 kHz, 16-bit, mono."""

from __future__ import annotations

import wave
from pathlib import Path


def ulaw_to_pcm16(ulaw: bytes) -> bytes:
    """G.711 µ-law -> int16 little-endian PCM (the codec's bit-exact decoder)."""
    from hotline.codec import ulaw_decode

    return ulaw_decode(ulaw) if ulaw else b""


def write_wav(path: str | Path, pcm16: bytes, sample_rate: int = 8000) -> None:
    """Write mono int16 PCM as a WAV file."""
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(sample_rate)
        w.writeframes(pcm16)


def write_ulaw_wav(path: str | Path, ulaw: bytes) -> None:
    """Decode 8 kHz µ-law and write it as a 16-bit PCM WAV (what players open everywhere)."""
    write_wav(path, ulaw_to_pcm16(ulaw), 8000)


def read_wav(path: str | Path) -> tuple[bytes, int]:
    """(mono int16 PCM, sample rate) of a 16-bit mono WAV file."""
    with wave.open(str(path), "rb") as w:
        if w.getnchannels() != 1 or w.getsampwidth() != 2:
            raise ValueError(f"{path}: expected 16-bit mono")
        return w.readframes(w.getnframes()), w.getframerate()
