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
    ulaw_periodicity(ulaw, min_lag, max_lag) -> float         voiced speech vs a cough
    twilio_media_fast(text, stream_sid) -> (track, chunk, timestamp, payload, rms_dbfs, zcr) | None
        one compiled call per usual Twilio ``media`` frame; None = use the full parser
    ws_client_frames(data, max_size) -> (messages, consumed, stopped)
        a client's plain WebSocket frames unmasked in one call (the media stream's direct path)
    mpg123_version() -> str
    build_info() -> dict       the compile flags the extension was built with
    SUPPORTED_FORMATS          every ``output_format`` Transcoder accepts

Calling contract (Transcoder, Mp3Decoder, Resampler alike):
    feed()/process() take any C-contiguous buffer (bytes, bytearray, memoryview, numpy array)
    without copying it; a strided buffer raises CodecError. Each call returns a new ``bytes``
    (possibly empty) and holds no reference to the input.

    flush() ends the stream: it drains the decoder and the resampler's look-ahead (and drops
    half a PCM sample, which cannot be played). The object is then ready for the next
    utterance: a feed() after flush() starts a new stream, exactly as a new object would;
    flushing twice returns ``b""`` the second time.

    reset() drops everything buffered (barge-in) without output; the next feed() starts a new
    stream. After *any* exception from feed()/process() or flush() -- CodecError, DecoderError,
    but also MemoryError or anything else -- the stream state is undefined: call reset() before
    using the object again (it then behaves exactly as a new one). A caller that keeps a
    converter across such an error must reset it on every exception, not only CodecError.

    The objects are not thread-safe (they release the GIL while working); calling one from two
    threads at once raises RuntimeError instead of corrupting state.

Formats: ``mp3_*`` are decoded by libmpg123 whatever rate the name says (the stream's own
headers decide; a rate change mid-stream is followed). ``pcm_<rate>`` is little-endian int16
mono; an odd byte is carried to the next feed(). ``ulaw_8000`` passes through byte for byte,
``alaw_8000`` is mapped by table. Output is µ-law 8 kHz mono and depends only on the
concatenated input of an utterance, never on how it was cut.

MP3 input passes through a frame sync before libmpg123 sees it: only whole MPEG-1/2/2.5
layer III frames whose headers are confirmed by the next frame reach the decoder. Junk (an
error body fed as audio, zero runs, truncated frames) is dropped and counted in
``stats.skipped_bytes``; ``stats.decoder_resyncs`` counts the times sync was lost and found
again after junk. ID3v2 tags and the LAME/Xing Info frame are metadata, not junk; tag bytes
are counted in ``stats.metadata_bytes``. A tag is believed where a stream starts, elsewhere only
when a confirmed frame follows it (so "ID3" and a plausible size in junk cannot swallow the
speech after it); a tag too large to check there is counted as junk. Gapless:
with a LAME/Xing tag the encoder delay and padding are trimmed. Free-format MP3 and layers
I/II are not supported (ElevenLabs sends neither).

Resampler: Kaiser-windowed sinc, passband to 0.913 and stopband from 1.0 of the lower Nyquist
frequency (to 8 kHz: flat to 3652 Hz, >= 75 dB down from 4 kHz), one stage or an integer
pre-decimation plus a rational stage. Output sample n is time-aligned with input time
n * in_rate / out_rate (the filter's group delay is compensated; ``delay`` is the look-ahead
in seconds that this costs); a whole stream of n samples gives round(n * out / in) +- 1.
A rate pair whose filter tables would exceed 2**20 floats (phases x taps; 4 MiB) is refused
with CodecError before anything is designed; designed tables are cached per pair, at most 32
tables and 2**22 floats, least recently used first out.

ulaw_frame_stats: rms over the decoded samples in dB relative to full scale 32768, floored at
-120.0 (also for silence and empty input); zero-crossing rate = sign changes between
neighbouring samples / (n - 1) (0 counts as positive; 0.0 for fewer than two samples).

ulaw_periodicity: over the decoded samples x (mean removed) of a window of n bytes, the largest
r(lag) = sum(a*b) / sqrt(sum(a*a) * sum(b*b)) for min_lag <= lag <= max_lag, where a =
x[0 .. n-max_lag) and b = x[lag .. lag+n-max_lag); 0.0 when n <= max_lag, when an energy is 0 or
no r is positive. Voiced speech (a glottal pitch period) scores 0.7-1.0 at lags of 2.5-12.5 ms;
a cough, breath or line noise is aperiodic and stays below ~0.6. CodecError unless
1 <= min_lag <= max_lag.

TranscoderStats counts over the object's lifetime (flush() and reset() do not clear it):
bytes_in, bytes_out, feeds, skipped_bytes, decoder_resyncs, metadata_bytes (ID3v2 tags
skipped), input_rate (the format's rate,
or for MP3 the rate of the last decoded audio; 0 before any).

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
    build_info,
    mpg123_version,
    twilio_media_fast,
    ulaw_decode,
    ulaw_encode,
    ulaw_frame_stats,
    ulaw_periodicity,
    ws_client_frames,
)

__all__ = [
    "SUPPORTED_FORMATS",
    "Mp3Decoder",
    "Resampler",
    "Transcoder",
    "TranscoderStats",
    "alaw_to_ulaw",
    "build_info",
    "mpg123_version",
    "twilio_media_fast",
    "ulaw_decode",
    "ulaw_encode",
    "ulaw_frame_stats",
    "ulaw_periodicity",
    "ws_client_frames",
]
