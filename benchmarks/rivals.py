"""The pipelines hotline is measured against, each as ``Pipeline(output_format)``: streaming
``feed(chunk) -> µ-law bytes`` and ``flush() -> µ-law bytes`` like ``hotline.codec.Transcoder``.

- ``Prototype``: the earlier prototype: every chunk decoded on its own by pydub (an ffmpeg
  process per chunk), ``set_frame_rate(8000).set_channels(1)``, ``audioop.lin2ulaw``.
- ``PyAvSwr``: one PyAV CodecContext (parse + decode) for the stream, PyAV's AudioResampler
  (libswresample) to s16 mono 8 kHz, ``audioop.lin2ulaw``.
- ``PyAvSoxr``: one PyAV CodecContext, ``soxr.ResampleStream`` (HQ), ``audioop.lin2ulaw``; the
  careful rival. By default its fastest form: ffmpeg's float decoder and a float32 stream;
  ``PyAvSoxrS16`` is the int16 form (fixed-point decoder, int16 soxr, as pipecat resamples).
- ``Mpg123Only``: hotline's libmpg123 binding alone (``hotline.codec.Mp3Decoder``): the decode
  floor of the MP3 path, no resampling, no µ-law.
- ``Hotline``: ``hotline.codec.Transcoder``.

Only MP3 input is meaningful for the rivals except ``Hotline``/``PyAvSoxr``, which also take PCM.
"""

from __future__ import annotations

import io
import warnings
from typing import Any, ClassVar, Protocol

import numpy as np

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    import audioop

    from pydub import AudioSegment  # imports audioop too


class Pipeline(Protocol):
    name: ClassVar[str]

    def feed(self, chunk: bytes) -> bytes: ...
    def flush(self) -> bytes: ...


def run(pipeline: Pipeline, chunks: list[bytes]) -> bytes:
    """Feed every chunk, then flush; the concatenated output."""
    out = bytearray()
    for c in chunks:
        out += pipeline.feed(c)
    out += pipeline.flush()
    return bytes(out)


class Prototype:
    """Per-chunk pydub + ffmpeg (two process spawns per chunk: probe and convert)."""

    name: ClassVar[str] = "prototype: pydub per chunk"

    def __init__(self, output_format: str = "mp3_44100_128") -> None:
        self.fmt = output_format.split("_")[0]
        self.failed_chunks = 0

    def feed(self, chunk: bytes) -> bytes:
        try:
            seg = AudioSegment.from_file(io.BytesIO(chunk), format=self.fmt)
        except Exception:  # the prototype skipped chunks ffmpeg could not read
            self.failed_chunks += 1
            return b""
        seg = seg.set_frame_rate(8000).set_channels(1)
        return audioop.lin2ulaw(seg.raw_data, seg.sample_width)

    def flush(self) -> bytes:
        return b""


# ffmpeg has two MP3 decoders: "mp3float" (float planar; what av.open() picks, and the faster
# one here) and "mp3" (fixed point, s16 planar). The rivals use the faster unless told.
FAST_MP3_DECODER = "mp3float"


def _codec_context(output_format: str, decoder: str = FAST_MP3_DECODER) -> Any:
    import av

    codec = output_format.split("_")[0]
    if codec != "mp3":
        raise ValueError(f"PyAV rivals decode MP3 only, not {output_format}")
    return av.CodecContext.create(decoder, "r")


class PyAvSwr:
    """PyAV streaming decode + libswresample to s16 mono 8 kHz."""

    name: ClassVar[str] = "PyAV decode + swresample"

    def __init__(
        self, output_format: str = "mp3_44100_128", *, decoder: str = FAST_MP3_DECODER
    ) -> None:
        import av

        self.ctx = _codec_context(output_format, decoder)
        self.resampler = av.AudioResampler(format="s16", layout="mono", rate=8000)

    def _frames(self, frames: list[Any]) -> bytes:
        out = bytearray()
        for frame in frames:
            for rf in self.resampler.resample(frame):
                out += bytes(rf.planes[0])[: rf.samples * 2]
        return audioop.lin2ulaw(bytes(out), 2)

    def feed(self, chunk: bytes) -> bytes:
        frames = []
        for packet in self.ctx.parse(chunk):
            frames.extend(self.ctx.decode(packet))
        return self._frames(frames)

    def flush(self) -> bytes:
        frames = []
        for packet in self.ctx.parse(None):
            frames.extend(self.ctx.decode(packet))
        frames.extend(self.ctx.decode(None))
        out = self._frames(frames)
        tail = bytearray()
        for rf in self.resampler.resample(None):
            tail += bytes(rf.planes[0])[: rf.samples * 2]
        return out + audioop.lin2ulaw(bytes(tail), 2)


class PyAvSoxr:
    """PyAV streaming decode (or PCM passthrough) + soxr.ResampleStream HQ + audioop."""

    name: ClassVar[str] = "PyAV decode + soxr HQ stream"

    def __init__(
        self,
        output_format: str = "mp3_44100_128",
        *,
        dtype: str = "float32",
        decoder: str = FAST_MP3_DECODER,
    ) -> None:
        self.dtype = dtype
        codec = output_format.split("_")[0]
        self.pcm_rate = int(output_format.split("_")[1]) if codec == "pcm" else 0
        self.ctx = None if self.pcm_rate else _codec_context(output_format, decoder)
        self.stream: Any = None
        self.carry = b""
        if self.pcm_rate:
            self._open(self.pcm_rate)

    def _open(self, rate: int) -> None:
        import soxr

        self.stream = soxr.ResampleStream(rate, 8000, 1, dtype=self.dtype, quality="HQ")

    def _resample(self, x: np.ndarray, last: bool = False) -> bytes:
        y = self.stream.resample_chunk(x, last=last)
        if self.dtype == "int16":
            return audioop.lin2ulaw(y.tobytes(), 2)
        pcm = np.clip(np.rint(y * 32768.0), -32768, 32767).astype("<i2")
        return audioop.lin2ulaw(pcm.tobytes(), 2)

    def _frames(self, frames: list[Any], last: bool = False) -> bytes:
        if not frames:
            if self.stream is None:
                return b""
            return self._resample(np.zeros(0, self.dtype), last=last) if last else b""
        if self.stream is None:
            self._open(frames[0].sample_rate)
        # mono: plane 0; float32 from "mp3float", int16 from the fixed-point "mp3"
        parts = [f.to_ndarray()[0] for f in frames]
        x = np.concatenate(parts) if len(parts) > 1 else parts[0]
        if x.dtype == np.int16 and self.dtype != "int16":
            x = x.astype(np.float32) / np.float32(32768.0)
        elif x.dtype != np.int16 and self.dtype == "int16":
            x = np.clip(np.rint(x * 32768.0), -32768, 32767).astype(np.int16)
        return self._resample(x, last=last)

    def feed(self, chunk: bytes) -> bytes:
        if self.pcm_rate:
            data = self.carry + chunk
            cut = len(data) & ~1
            self.carry = data[cut:]
            x = np.frombuffer(data[:cut], "<i2")
            if self.dtype != "int16":
                x = x.astype(np.float32) / np.float32(32768.0)
            return self._resample(x)
        assert self.ctx is not None
        frames = []
        for packet in self.ctx.parse(chunk):
            frames.extend(self.ctx.decode(packet))
        return self._frames(frames)

    def flush(self) -> bytes:
        if self.pcm_rate:
            return self._resample(np.zeros(0, self.dtype), last=True)
        assert self.ctx is not None
        frames = []
        for packet in self.ctx.parse(None):
            frames.extend(self.ctx.decode(packet))
        frames.extend(self.ctx.decode(None))
        return self._frames(frames, last=True)


class PyAvSoxrS16(PyAvSoxr):
    """PyAvSoxr with ffmpeg's fixed-point decoder and an int16 soxr stream."""

    name: ClassVar[str] = "PyAV (s16) + soxr HQ int16 stream"

    def __init__(self, output_format: str = "mp3_44100_128") -> None:
        super().__init__(output_format, dtype="int16", decoder="mp3")


class Mpg123Only:
    """hotline's libmpg123 decoder alone: the floor for the MP3 path (returns PCM, not µ-law)."""

    name: ClassVar[str] = "libmpg123 decode only"

    def __init__(self, output_format: str = "mp3_44100_128") -> None:
        from hotline.codec import Mp3Decoder

        self.dec = Mp3Decoder()

    def feed(self, chunk: bytes) -> bytes:
        return self.dec.feed(chunk)

    def flush(self) -> bytes:
        return self.dec.flush()


class Hotline:
    """hotline.codec.Transcoder."""

    name: ClassVar[str] = "hotline Transcoder"

    def __init__(self, output_format: str = "mp3_44100_128") -> None:
        from hotline.codec import Transcoder

        self.t = Transcoder(output_format)

    def feed(self, chunk: bytes) -> bytes:
        return self.t.feed(chunk)

    def flush(self) -> bytes:
        return self.t.flush()
