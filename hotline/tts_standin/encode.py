"""Encode synthesised PCM into the bytes ElevenLabs sends for an ``output_format``.

Formats are hotline.codec.SUPPORTED_FORMATS (``codec_rate[_kbps]``):

- ``mp3_<rate>_<kbps>``: mono CBR MPEG layer III from LAME (``lameenc``), no Xing/LAME tag
  (a stream, like ElevenLabs'); ``encode(..., lame_tag=True)`` prepends an ``Info`` frame with
  a LAME tag giving encoder delay and padding, so gapless decoders trim exactly.
- ``pcm_<rate>``: headerless signed 16-bit little-endian mono.
- ``ulaw_8000`` / ``alaw_8000``: headerless G.711 at 8 kHz.

Rate conversion uses the codec's stateful resampler (``hotline.codec.Resampler``), so streamed
output does not depend on how the input was cut. The compiled codec is imported on first use:
importing this module does not need it, encoding does (there is no fallback).

Call order for streaming::

    enc = Encoder("mp3_44100_128", in_rate=22050)
    for pcm16 in pieces:          # any byte counts, odd ones included
        send(enc.feed(pcm16))     # possibly empty
    send(enc.flush())             # the tail; the encoder is then finished
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Final, Protocol

from hotline.errors import CodecError
from hotline.tts_standin.espeak import Pcm

if TYPE_CHECKING:
    from hotline.codec import Resampler

__all__ = ["Encoder", "alaw_encode", "encode", "parse_format", "supported_formats"]

MP3_QUALITY: Final = 3  # LAME -q (0 best/slowest .. 9): LAME's default; 2 costs 2.2x the CPU
_LAME_ENCODER_DELAY: Final = 576  # samples LAME puts before the input (lame_get_encoder_delay)


def supported_formats() -> tuple[str, ...]:
    """Every ``output_format`` accepted here (hotline.codec.SUPPORTED_FORMATS)."""
    from hotline.codec import SUPPORTED_FORMATS

    return tuple(SUPPORTED_FORMATS)


def parse_format(output_format: str) -> tuple[str, int, int | None]:
    """Split an ElevenLabs ``output_format`` into ``(codec, sample_rate, kbps or None)``.

    Raises:
        CodecError: the format is not one hotline supports.
    """
    formats = supported_formats()
    if not isinstance(output_format, str) or output_format not in formats:
        raise CodecError(
            f"unsupported output_format {output_format!r}; supported: {', '.join(formats)}"
        )
    parts = output_format.split("_")
    codec, rate = parts[0], int(parts[1])
    kbps = int(parts[2]) if len(parts) > 2 else None
    return codec, rate, kbps


# --- G.711 A-law ------------------------------------------------------------------------------
# The codec has no A-law encoder (Twilio never needs one); this is the classic exact G.711
# encoder (Sun g711.c, the same one audioop.lin2alaw uses) tabulated over all 65,536 int16
# values, indexed by the sample's unsigned 16-bit pattern.

_ALAW_SEG_END: Final = (0x1F, 0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF)


def _alaw_of(sample: int) -> int:
    pcm = sample >> 3  # 13-bit magnitude domain
    if pcm >= 0:
        mask = 0xD5
    else:
        mask = 0x55
        pcm = -pcm - 1
    seg = 0
    while seg < 8 and pcm > _ALAW_SEG_END[seg]:
        seg += 1
    if seg >= 8:
        return 0x7F ^ mask
    aval = seg << 4
    aval |= (pcm >> 1) & 0x0F if seg < 2 else (pcm >> seg) & 0x0F
    return aval ^ mask


_ALAW_TABLE: Final = bytes(_alaw_of(u - 65536 if u >= 32768 else u) for u in range(65536))


def alaw_encode(pcm16: bytes | bytearray | memoryview) -> bytes:
    """G.711 A-law of int16 little-endian PCM; bit-exact with ``audioop.lin2alaw(pcm16, 2)``.

    Raises:
        CodecError: odd byte count.
    """
    mv = memoryview(pcm16).cast("B")
    if len(mv) % 2:
        raise CodecError(f"A-law input must be whole int16 samples, got {len(mv)} bytes")
    if sys.byteorder != "little":  # pragma: no cover - big-endian hosts
        import array

        arr = array.array("H", mv.tobytes())
        arr.byteswap()
        return bytes(map(_ALAW_TABLE.__getitem__, arr))
    return bytes(map(_ALAW_TABLE.__getitem__, mv.cast("H")))


# --- MP3 Info/LAME tag ------------------------------------------------------------------------

_MPEG1_BITRATES: Final = (0, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320)
_MPEG2_BITRATES: Final = (0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160)
_SAMPLE_RATES: Final = {3: (44100, 48000, 32000), 2: (22050, 24000, 16000), 0: (11025, 12000, 8000)}


def _crc16(data: bytes, crc: int = 0) -> int:
    # CRC-16/ARC (reflected 0x8005), what LAME uses for the tag and music CRCs.
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0xA001 if crc & 1 else crc >> 1
    return crc


def _frame_info(header: bytes) -> tuple[int, int, int, int]:
    """(version_id, sample_rate, kbps, samples_per_frame) of an MPEG audio layer III header."""
    h = int.from_bytes(header[:4], "big")
    if (h >> 21) & 0x7FF != 0x7FF or (h >> 17) & 3 != 1:
        raise CodecError("LAME output does not start with a layer III frame header")
    version = (h >> 19) & 3
    kbps = (_MPEG1_BITRATES if version == 3 else _MPEG2_BITRATES)[(h >> 12) & 0xF]
    rate = _SAMPLE_RATES[version][(h >> 10) & 3]
    return version, rate, kbps, 1152 if version == 3 else 576


def _lame_tag_frame(mp3: bytes, n_samples: int) -> bytes:
    """An ``Info`` frame with a LAME tag for the CBR mono stream ``mp3`` of ``n_samples``."""
    version, rate, kbps, spf = _frame_info(mp3)
    h = int.from_bytes(mp3[:4], "big")
    h |= 1 << 16  # no CRC
    h &= ~(1 << 9)  # no padding slot
    h = (h & ~(3 << 6)) | (3 << 6)  # channel mode: mono
    size = (144000 if version == 3 else 72000) * kbps // rate
    n_frames = _count_frames(mp3)
    padding = n_frames * spf - n_samples - _LAME_ENCODER_DELAY
    if not 0 <= padding < 4096:
        raise CodecError(f"unexpected LAME padding {padding} samples")
    side_info = 17 if version == 3 else 9  # mono
    xing_at = 4 + side_info
    toc = xing_at + 8 + 4 + 4 + 100 + 4 + 36 <= size
    flags = 0x1 | 0x2 | 0x8 | (0x4 if toc else 0)
    if xing_at + 8 + 4 + 4 + 4 + 36 > size:
        raise CodecError(f"a {kbps} kb/s frame is too small for a LAME tag")
    frame = bytearray(size)
    frame[0:4] = h.to_bytes(4, "big")
    pos = xing_at
    frame[pos : pos + 4] = b"Info"
    frame[pos + 4 : pos + 8] = flags.to_bytes(4, "big")
    pos += 8
    frame[pos : pos + 4] = n_frames.to_bytes(4, "big")
    frame[pos + 4 : pos + 8] = (size + len(mp3)).to_bytes(4, "big")
    pos += 8
    if toc:  # CBR: a straight line
        frame[pos : pos + 100] = bytes(min(255, i * 256 // 100) for i in range(100))
        pos += 100
    frame[pos : pos + 4] = (100 - 10 * MP3_QUALITY).to_bytes(4, "big")  # LAME's "quality"
    pos += 4
    lame = pos
    frame[lame : lame + 9] = b"LAME3.100"
    frame[lame + 9] = (0 << 4) | 1  # tag revision 0, VBR method 1 = CBR
    frame[lame + 10] = 0  # lowpass unknown
    # peak + replay gains (lame+11 .. lame+18) left zero = not computed
    frame[lame + 19] = 0  # encoding flags, ATH type
    frame[lame + 20] = min(kbps, 255)
    frame[lame + 21 : lame + 24] = ((_LAME_ENCODER_DELAY << 12) | padding).to_bytes(3, "big")
    frame[lame + 24] = 0  # misc: noise shaping, stereo mode (mono), unwise, source rate
    frame[lame + 25] = 0  # MP3 gain
    frame[lame + 26 : lame + 28] = b"\0\0"  # surround + preset
    frame[lame + 28 : lame + 32] = (size + len(mp3)).to_bytes(4, "big")
    frame[lame + 32 : lame + 34] = _crc16(mp3).to_bytes(2, "big")
    frame[lame + 34 : lame + 36] = _crc16(bytes(frame[: lame + 34])).to_bytes(2, "big")
    return bytes(frame)


def _count_frames(mp3: bytes) -> int:
    """Frames in a clean LAME CBR stream (walks the headers)."""
    pos = n = 0
    while pos + 4 <= len(mp3):
        version, rate, kbps, _spf = _frame_info(mp3[pos : pos + 4])
        pad = (mp3[pos + 2] >> 1) & 1
        pos += (144000 if version == 3 else 72000) * kbps // rate + pad
        n += 1
    if pos != len(mp3):
        raise CodecError("LAME output ends with a partial frame")
    return n


class _Lame(Protocol):
    def encode(self, pcm: bytes) -> bytes | bytearray: ...
    def flush(self) -> bytes | bytearray: ...


# --- encoders ---------------------------------------------------------------------------------


class Encoder:
    """Streaming encoder: int16 mono PCM at ``in_rate`` -> ``output_format`` bytes.

    Args:
        output_format: an ElevenLabs format (see ``supported_formats()``).
        in_rate: sample rate of the PCM fed in (eSpeak NG: 22050).

    Attributes:
        out_rate: the format's sample rate.
        samples_out: samples (at ``out_rate``) encoded so far; after ``flush()``, the
            utterance's length as a gapless decoder should return it.

    Raises:
        CodecError: unsupported format, or a non-positive rate.
    """

    def __init__(self, output_format: str, in_rate: int) -> None:
        codec, rate, kbps = parse_format(output_format)
        if isinstance(in_rate, bool) or not isinstance(in_rate, int) or in_rate <= 0:
            raise CodecError(f"in_rate must be a positive int, got {in_rate!r}")
        from hotline import codec as _codec

        self.output_format = output_format
        self.in_rate = in_rate
        self.out_rate = rate
        self._codec = codec
        self._ulaw_encode = _codec.ulaw_encode
        self._resampler: Resampler | None = (
            _codec.Resampler(in_rate, rate) if in_rate != rate else None
        )
        self._carry = b""  # a partial int16 sample between feeds
        self.samples_out = 0  # samples at out_rate handed to the final encoding stage
        self._finished = False
        self._lame: _Lame | None = None
        self._lame_started = False
        if codec == "mp3":
            import lameenc

            lame = lameenc.Encoder()
            assert kbps is not None
            lame.set_bit_rate(kbps)
            lame.set_in_sample_rate(rate)
            lame.set_out_sample_rate(rate)
            lame.set_channels(1)
            lame.set_quality(MP3_QUALITY)
            self._lame = lame

    def feed(self, pcm16: bytes | bytearray | memoryview) -> bytes:
        """Encode more PCM; returns whatever output is ready (possibly empty).

        Raises:
            CodecError: called after ``flush()``.
        """
        if self._finished:
            raise CodecError("Encoder.feed() after flush(); make a new Encoder")
        data = self._carry + bytes(pcm16)
        cut = len(data) & ~1
        self._carry = data[cut:]
        if self._resampler is not None:
            pcm = self._resampler.process(data[:cut])
        else:
            pcm = data[:cut]
        return self._encode(pcm)

    def flush(self) -> bytes:
        """Finish: drain the resampler and the MP3 encoder. The encoder cannot be fed again.

        A trailing odd byte (half a sample) is dropped.
        """
        if self._finished:
            return b""
        self._finished = True
        self._carry = b""
        pcm = self._resampler.flush() if self._resampler is not None else b""
        out = self._encode(pcm)
        if self._lame is not None and self._lame_started:
            out += bytes(self._lame.flush())  # lameenc refuses to flush before any encode
        return out

    def _encode(self, pcm: bytes) -> bytes:
        codec = self._codec
        self.samples_out += len(pcm) // 2
        if codec == "pcm":
            return pcm
        if codec == "ulaw":
            return self._ulaw_encode(pcm) if pcm else b""
        if codec == "alaw":
            return alaw_encode(pcm) if pcm else b""
        if not pcm or self._lame is None:
            return b""
        self._lame_started = True
        return bytes(self._lame.encode(pcm))


def encode(pcm: Pcm, output_format: str, *, lame_tag: bool = False) -> bytes:
    """Encode a whole utterance.

    Args:
        pcm: mono int16 PCM (e.g. from ``hotline.tts_standin.espeak.synthesize``).
        output_format: an ElevenLabs format.
        lame_tag: for ``mp3_*`` only: prepend an ``Info`` frame with a LAME tag (encoder
            delay 576, padding), as a LAME-encoded file has. ElevenLabs' streams carry none.

    Returns:
        Exactly the bytes a streaming ``Encoder`` would produce in total (plus the tag frame).

    Raises:
        CodecError: unsupported format, or ``lame_tag`` for a non-MP3 format.
    """
    enc = Encoder(output_format, pcm.sample_rate)
    out = enc.feed(pcm.samples) + enc.flush()
    if lame_tag:
        if not output_format.startswith("mp3_"):
            raise CodecError(f"lame_tag applies to mp3_* formats, not {output_format}")
        if not out:
            return out
        out = _lame_tag_frame(out, enc.samples_out) + out
    return out
