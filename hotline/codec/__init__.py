"""The codec: ElevenLabs audio in any supported ``output_format`` -> raw G.711 µ-law, 8 kHz, mono.

Everything here is sans-I/O and compiled (``hotline.codec._codec``: Cython over libmpg123 and
the C kernels in ``csrc/``). A missing extension fails loudly at import: there is no slow
fallback in the service. ``hotline.codec.reference`` holds the pure-Python oracles used by the
tests and benchmarks.

Call order for one utterance::

    t = Transcoder("mp3_44100_128")
    for chunk in chunks:          # any sizes, any boundaries
        out = t.feed(chunk)       # µ-law bytes (possibly empty)
    out = t.flush()               # the tail; t is ready for the next utterance
    t.reset()                     # barge-in: drop everything buffered, start clean

The output depends only on the concatenated input, never on how it was cut.

API:
    Transcoder(output_format)  feed(data) -> bytes, flush() -> bytes, reset(), stats
    Mp3Decoder()               libmpg123 feed decoder: MP3 bytes -> int16 mono PCM at ``rate``
    Resampler(in_rate, out_rate)  stateful polyphase windowed-sinc resampler on int16 PCM
    ulaw_encode(pcm16) / ulaw_decode(ulaw) / alaw_to_ulaw(alaw)  G.711, bit-exact
    ulaw_frame_stats(ulaw) -> (rms_dbfs, zero_crossing_rate)   for the caller-side VAD
    mpg123_version() -> str
    SUPPORTED_FORMATS          every ``output_format`` Transcoder accepts

Errors: ``hotline.errors.CodecError`` (a ValueError) for bad arguments and unusable input,
``hotline.errors.DecoderError`` when libmpg123 cannot recover.
"""

from hotline.codec._codec import (
    SUPPORTED_FORMATS,
    Mp3Decoder,
    Resampler,
    Transcoder,
    TranscoderStats,
    alaw_to_ulaw,
    mpg123_version,
    ulaw_decode,
    ulaw_encode,
    ulaw_frame_stats,
)

__all__ = [
    "SUPPORTED_FORMATS",
    "Mp3Decoder",
    "Resampler",
    "Transcoder",
    "TranscoderStats",
    "alaw_to_ulaw",
    "mpg123_version",
    "ulaw_decode",
    "ulaw_encode",
    "ulaw_frame_stats",
]
