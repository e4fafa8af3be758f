# The compiled codec: libmpg123 (feed API) -> polyphase resampler -> G.711 µ-law.
#
# Layout: C kernels live in csrc/ (declared in _kernels.pxd), libmpg123 in _mpg123.pxd.
# Every libmpg123 return code goes through _check(); NEED_MORE / NEW_FORMAT / DONE are control
# flow inside the decode loop. The work of a feed() (decode -> resample -> encode) runs with
# the GIL released, in as many nogil regions as it needs: the GIL is retaken between them to
# set up a resampler when the MP3 stream's rate changes (_ST_NEED_RATE), and to build the
# result; the only Python objects a feed() creates are the returned bytes (and, on a rate
# change, the new Resampler).
#
# Buffers: input is borrowed through PyObject_GetBuffer(PyBUF_SIMPLE) (zero-copy: bytes,
# bytearray, memoryview, numpy). Scratch buffers (decoded int16, µ-law) belong to the object,
# are malloc'd and only ever grow; realloc happens inside the nogil regions (libc malloc does
# not need the GIL).
#
# After any exception from feed()/flush() (CodecError, DecoderError, MemoryError, ...), the
# object's stream state is undefined until reset(): the contract in hotline/codec/__init__.py.

from cpython.buffer cimport PyBUF_SIMPLE, PyBuffer_Release, PyObject_GetBuffer
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize
from libc.stddef cimport ptrdiff_t
from libc.stdint cimport int16_t, uint8_t, uint32_t, uint64_t
from libc.stdlib cimport free, malloc, realloc
from libc.string cimport memcmp, memcpy
from posix.types cimport off_t

from hotline.codec._kernels cimport *
from hotline.codec._mpg123 cimport *

from hotline.errors import CodecError, DecoderError

cdef extern from *:
    """
    #include <mpg123.h>
    #ifndef HOTLINE_MPG123_PKGVERSION
    #define HOTLINE_MPG123_PKGVERSION ""
    #endif
    #ifndef HOTLINE_BUILD_CFLAGS
    #define HOTLINE_BUILD_CFLAGS ""
    #endif
    /* The compile flags setup.py passed for this build (csrc/ and this module alike). */
    static const char *hl_build_cflags(void) { return HOTLINE_BUILD_CFLAGS; }
    /* mpg123_distversion() exists from API 48 (libmpg123 1.32); before that only the
       build-time version (pkg-config, passed in by setup.py) is known. */
    static const char *hl_mpg123_version(void) {
    #if MPG123_API_VERSION >= 48
        return mpg123_distversion(NULL, NULL, NULL);
    #else
        return HOTLINE_MPG123_PKGVERSION;
    #endif
    }
    static int hl_mpg123_version_is_runtime(void) { return MPG123_API_VERSION >= 48; }
    """
    const char *hl_mpg123_version()
    int hl_mpg123_version_is_runtime()
    const char *hl_build_cflags()


SUPPORTED_FORMATS = (
    "mp3_22050_32",
    "mp3_24000_48",
    "mp3_44100_32",
    "mp3_44100_64",
    "mp3_44100_96",
    "mp3_44100_128",
    "mp3_44100_192",
    "pcm_8000",
    "pcm_16000",
    "pcm_22050",
    "pcm_24000",
    "pcm_32000",
    "pcm_44100",
    "pcm_48000",
    "ulaw_8000",
    "alaw_8000",
)

cdef enum:
    _OUT_RATE = 8000
    # input kinds
    _K_MP3 = 1
    _K_PCM = 2
    _K_ULAW = 3
    _K_ALAW = 4
    # results of the nogil loops
    _ST_DONE = 0
    _ST_NEED_RATE = 1   # audio at a new rate: set up a resampler (needs the GIL)
    _ST_NOMEM = 2
    _ST_MPG123 = 3      # libmpg123 error, code in self._err
    _ST_KERNEL = 4      # a kernel returned a negative code, in self._err
    _ST_STUCK = 5       # the MP3 frame sync made no progress (_FEED_STUCK)
    # libmpg123 counts as stuck when this many more frames went in than came out (it lags by
    # one frame for its first-frame check, by up to ~2 more for frames gapless skips whole)
    _STALL_FRAMES = 8
    # _Mp3.feed(): the frame sync took no input and released nothing (cannot happen with a
    # buffer of at least HL_MP3SYNC_MIN_CAP; a guard against spinning for ever if it does)
    _FEED_STUCK = -1000
    # filter-table cache: least recently used tables go first beyond either bound (a table in
    # use stays alive through its Resamplers)
    _TABLE_CACHE_MAX = 32
    _TABLE_CACHE_FLOATS = 1 << 22   # 16 MiB of float taps


def mpg123_version():
    """The libmpg123 version: the runtime library's own (libmpg123 >= 1.32), otherwise the
    version of the headers the extension was built against."""
    cdef bytes v = hl_mpg123_version()
    s = v.decode("ascii", "replace")
    if not hl_mpg123_version_is_runtime():
        s = f"{s or 'unknown'} (build-time, API {MPG123_API_VERSION})"
    return s


def build_info():
    """How this extension was built: ``{"compile_args": [...], "mpg123": version}``.

    ``compile_args`` are the flags setup.py passed to the C compiler for csrc/ and this module
    (recorded into the binary at build time). Bit-exact output relies on some of them
    (``-ffp-contract=off``, no ``-ffast-math``)."""
    cdef bytes flags = hl_build_cflags()
    return {"compile_args": flags.decode("ascii", "replace").split(), "mpg123": mpg123_version()}


# ------------------------------------------------------------------------- error mapping

cdef int _check(int rc, mpg123_handle *mh=NULL) except -1:
    """Raise DecoderError for every libmpg123 code that is neither OK nor a loop message."""
    if rc == MPG123_OK or rc == MPG123_NEED_MORE or rc == MPG123_NEW_FORMAT or rc == MPG123_DONE:
        return 0
    cdef int code = rc
    if rc == MPG123_ERR and mh != NULL:
        code = mpg123_errcode(mh)   # the handle knows the specific reason
        if code == MPG123_OK:
            code = rc
    msg = (<bytes>mpg123_plain_strerror(code)).decode("ascii", "replace")
    raise DecoderError(f"libmpg123 error {code}: {msg}")


cdef inline void _get_buffer(object data, Py_buffer *view) except *:
    try:
        PyObject_GetBuffer(data, view, PyBUF_SIMPLE)
    except (BufferError, ValueError) as e:
        # e.g. a strided numpy view (numpy raises ValueError): PyBUF_SIMPLE asks for one
        # contiguous block of bytes
        raise CodecError(f"expected a C-contiguous bytes-like object: {e}") from e


cdef inline int _grow(void **buf, size_t *cap, size_t need, size_t item) noexcept nogil:
    if need <= cap[0]:
        return 0
    cdef size_t ncap = cap[0] * 2
    if ncap < need:
        ncap = need
    if ncap < 1024:
        ncap = 1024
    cdef void *p = realloc(buf[0], ncap * item)
    if p == NULL:
        return -1
    buf[0] = p
    cap[0] = ncap
    return 0


# ------------------------------------------------------------------------ G.711 helpers

def ulaw_encode(pcm16):
    """int16 native-endian PCM (little-endian on supported hosts) -> µ-law, one byte per sample.

    A trailing odd byte is an error (CodecError)."""
    cdef Py_buffer view
    cdef char *dst
    cdef size_t n
    _get_buffer(pcm16, &view)
    try:
        if view.len % 2:
            raise CodecError("int16 PCM needs an even number of bytes")
        n = view.len // 2
        out = PyBytes_FromStringAndSize(NULL, n)
        dst = PyBytes_AS_STRING(out)
        with nogil:
            hl_ulaw_encode_s16le(<const uint8_t *>view.buf, n, <uint8_t *>dst)
        return out
    finally:
        PyBuffer_Release(&view)


def ulaw_decode(ulaw):
    """µ-law -> int16 PCM (native-endian), two bytes per input byte."""
    cdef Py_buffer view
    cdef char *dst
    cdef size_t n
    _get_buffer(ulaw, &view)
    try:
        out = PyBytes_FromStringAndSize(NULL, view.len * 2)
        dst = PyBytes_AS_STRING(out)
        with nogil:
            hl_ulaw_decode(<const uint8_t *>view.buf, view.len, <int16_t *>dst)
        return out
    finally:
        PyBuffer_Release(&view)


def alaw_to_ulaw(alaw):
    """A-law -> µ-law, byte for byte (as audioop.lin2ulaw(audioop.alaw2lin(x, 2), 2))."""
    cdef Py_buffer view
    cdef char *dst
    cdef size_t n
    _get_buffer(alaw, &view)
    try:
        out = PyBytes_FromStringAndSize(NULL, view.len)
        dst = PyBytes_AS_STRING(out)
        with nogil:
            hl_alaw_to_ulaw(<const uint8_t *>view.buf, view.len, <uint8_t *>dst)
        return out
    finally:
        PyBuffer_Release(&view)


def ulaw_frame_stats(ulaw):
    """(rms_dbfs, zero_crossing_rate) of a µ-law frame; see hotline.codec for the contract."""
    cdef Py_buffer view
    cdef double db = 0.0, zcr = 0.0
    _get_buffer(ulaw, &view)
    try:
        with nogil:
            hl_ulaw_frame_stats(<const uint8_t *>view.buf, view.len, &db, &zcr)
    finally:
        PyBuffer_Release(&view)
    return (db, zcr)


def ulaw_periodicity(ulaw, min_lag, max_lag):
    """Largest normalised autocorrelation of a µ-law window over a lag range; see
    hotline.codec for the contract."""
    cdef Py_buffer view
    cdef double r = 0.0
    if not isinstance(min_lag, int) or not isinstance(max_lag, int):
        raise TypeError("min_lag and max_lag must be int")
    if not 1 <= min_lag <= max_lag:
        raise CodecError(f"need 1 <= min_lag <= max_lag, got {min_lag}, {max_lag}")
    cdef size_t lo = min_lag, hi = max_lag
    _get_buffer(ulaw, &view)
    try:
        with nogil:
            r = hl_ulaw_periodicity(<const uint8_t *>view.buf, view.len, lo, hi)
    finally:
        PyBuffer_Release(&view)
    return r


# ---------------------------------------------------------------------- filter tables

cdef class _Table:
    """One rate pair's polyphase table; shared read-only by every resampler of that pair."""
    cdef hl_resampler_plan plan
    cdef float *taps
    cdef size_t nfloats

    def __dealloc__(self):
        free(self.taps)


cdef dict _TABLES = {}   # (in_rate, out_rate) -> _Table, least recently used first
cdef size_t _tables_floats = 0


def _table_cache_info():
    """(tables cached, floats they hold, max tables, max floats): for the tests."""
    return (len(_TABLES), _tables_floats, _TABLE_CACHE_MAX, _TABLE_CACHE_FLOATS)


cdef _Table _get_table(long in_rate, long out_rate):
    # Built once per pair under the GIL and cached (a Transcoder is created per utterance, so
    # its set-up must not redesign filters); the cache is bounded, least recently used first
    # out: a process that meets many pairs (the public Resampler) does not keep them all.
    global _tables_floats
    key = (in_rate, out_rate)
    cdef _Table t = _TABLES.pop(key, None)
    if t is not None:
        _TABLES[key] = t  # most recently used
        return t
    t = _Table.__new__(_Table)
    if (in_rate < HL_RATE_MIN or in_rate > HL_RATE_MAX or out_rate < HL_RATE_MIN
            or out_rate > HL_RATE_MAX):
        raise CodecError(f"unsupported rate pair {in_rate} -> {out_rate} Hz "
                         f"(rates must be {HL_RATE_MIN}..{HL_RATE_MAX} Hz)")
    cdef int rc = hl_resampler_plan_init(&t.plan, <uint32_t>in_rate, <uint32_t>out_rate)
    if rc == HL_E2BIG:
        raise CodecError(f"unsupported rate pair {in_rate} -> {out_rate} Hz: its filter would "
                         f"need more than {HL_RESAMPLER_MAX_TABLE} taps (phases x taps per "
                         f"phase); use rates with a simpler ratio")
    if rc != HL_OK:
        raise CodecError(f"unsupported rate pair {in_rate} -> {out_rate} Hz: the ratio is too "
                         f"fine (more than 2048 filter phases); use rates with a simpler ratio")
    cdef size_t nfloats = hl_resampler_table_size(&t.plan)
    t.taps = <float *>malloc(nfloats * sizeof(float))
    if t.taps == NULL:
        raise MemoryError()
    with nogil:
        hl_resampler_design(&t.plan, t.taps)
    t.nfloats = nfloats
    _TABLES[key] = t
    _tables_floats += nfloats
    cdef _Table old
    while len(_TABLES) > 1 and (len(_TABLES) > _TABLE_CACHE_MAX
                                or _tables_floats > _TABLE_CACHE_FLOATS):
        old = _TABLES.pop(next(iter(_TABLES)))
        _tables_floats -= old.nfloats
    return t


# ----------------------------------------------------------------------------- Resampler

cdef class Resampler:
    """Stateful polyphase windowed-sinc resampler on int16 PCM (see hotline.codec).

    After any exception from a call (CodecError, DecoderError, MemoryError, ...), call reset()
    before using the object again."""
    cdef bint _busy  # set while a call runs (the GIL is released inside)
    cdef hl_resampler rs
    cdef _Table _table
    cdef float *_hist
    cdef readonly int in_rate
    cdef readonly int out_rate

    def __cinit__(self, int in_rate, int out_rate):
        self._table = _get_table(in_rate, out_rate)
        cdef size_t cap = hl_resampler_work_size(&self._table.plan)
        self._hist = <float *>malloc((cap + 1) * sizeof(float))
        if self._hist == NULL:
            raise MemoryError()
        if hl_resampler_init(&self.rs, &self._table.plan, self._table.taps, self._hist, cap) != HL_OK:
            raise CodecError("resampler set-up failed")
        self.in_rate = in_rate
        self.out_rate = out_rate

    def __dealloc__(self):
        free(self._hist)

    @property
    def delay(self):
        """Look-ahead in seconds: input the resampler must see beyond an output instant
        before it can emit that output. The output itself is time-aligned with the input
        (zero-phase filter); flush() emits what is held back."""
        return hl_resampler_delay(&self._table.plan) / self.in_rate

    def process(self, pcm16):
        """Resample int16 PCM (even byte count); returns int16 PCM bytes at out_rate."""
        if self._busy:
            raise RuntimeError("Resampler used from two threads at once")
        self._busy = True
        try:
            return self._process(pcm16)
        finally:
            self._busy = False

    cdef object _process(self, object pcm16):
        cdef Py_buffer view
        cdef ptrdiff_t got = 0
        cdef size_t n, cnt
        cdef char *dst
        _get_buffer(pcm16, &view)
        try:
            if view.len % 2:
                raise CodecError("int16 PCM needs an even number of bytes")
            n = view.len // 2
            cnt = hl_resampler_out_count(&self.rs, n)  # exact: the result is sized once
            out = PyBytes_FromStringAndSize(NULL, cnt * 2)
            dst = PyBytes_AS_STRING(out)
            with nogil:
                got = hl_resampler_process_s16le(&self.rs, <const uint8_t *>view.buf, n,
                                                 <int16_t *>dst, cnt)
            if got < 0 or <size_t>got != cnt:
                raise CodecError(f"resampler kernel error {got}")
            return out
        finally:
            PyBuffer_Release(&view)

    def flush(self):
        """Emit the tail (zero-padded look-ahead); the next process() starts a new stream."""
        if self._busy:
            raise RuntimeError("Resampler used from two threads at once")
        self._busy = True
        try:
            return self._flush()
        finally:
            self._busy = False

    cdef object _flush(self):
        cdef size_t cnt = hl_resampler_flush_count(&self.rs)
        cdef ptrdiff_t got
        out = PyBytes_FromStringAndSize(NULL, cnt * 2)
        cdef int16_t *dst = <int16_t *>PyBytes_AS_STRING(out)
        with nogil:
            got = hl_resampler_flush(&self.rs, dst, cnt)
        if got < 0 or <size_t>got != cnt:
            raise CodecError(f"resampler kernel error {got}")
        return out

    def reset(self):
        """Drop all history; the next process() starts a new stream."""
        if self._busy:
            raise RuntimeError("Resampler used from two threads at once")
        self._busy = True
        try:
            return self._reset()
        finally:
            self._busy = False

    cdef object _reset(self):
        hl_resampler_reset(&self.rs)


# ------------------------------------------------------------------------- MP3 decoding

_STUCK_MSG = "MP3 frame sync made no progress (internal error); reset() before reuse"

cdef class _Mp3:
    """One libmpg123 feed-mode handle behind our frame sync (csrc/mp3sync.c): libmpg123 only
    ever sees whole, validated layer III frames; the sync counts the junk it drops."""
    cdef mpg123_handle *mh
    cdef hl_mp3sync sync
    cdef uint8_t *syncbuf
    cdef long rate          # libmpg123's current output rate (0 until the first NEW_FORMAT)
    cdef long last_rate     # rate of the last decoded audio, kept across flush() for stats
    cdef bint pending       # NEW_FORMAT came with a parsed frame not yet decoded
    cdef uint64_t parsed    # frames libmpg123 returned in this stream
    cdef uint64_t stalls    # times libmpg123 had to be reopened (lifetime)

    def __cinit__(self):
        cdef int err = MPG123_OK
        self.syncbuf = <uint8_t *>malloc(HL_MP3SYNC_CAP)
        if self.syncbuf == NULL:
            raise MemoryError()
        if hl_mp3sync_init(&self.sync, self.syncbuf, HL_MP3SYNC_CAP) != HL_OK:
            raise CodecError("MP3 frame sync set-up failed")
        mpg123_init()  # a no-op from libmpg123 1.27 on; required before
        self.mh = mpg123_new(NULL, &err)
        if self.mh == NULL:
            if err == MPG123_OUT_OF_MEM:
                raise MemoryError()
            _check(err if err != MPG123_OK else MPG123_ERR)
        # Gapless: trim encoder delay/padding announced by a LAME/Xing tag. Mono mix. Quiet:
        # libmpg123 would print resync notes to stderr. Resync limit -1: skip any amount of junk.
        _check(mpg123_param(self.mh, MPG123_FLAGS,
                            MPG123_GAPLESS | MPG123_MONO_MIX | MPG123_QUIET, 0.0), self.mh)
        _check(mpg123_param(self.mh, MPG123_RESYNC_LIMIT, -1, 0.0), self.mh)
        # No free-format streams (bitrate index 0): ElevenLabs never sends them, and with
        # the default (-1, "find the frame size by reading ahead") four junk bytes such as
        # FF FD 00 00 make libmpg123 lock onto a phantom free-format stream and skip the
        # whole valid stream that follows. A size of 0 makes such headers invalid: resync.
        _check(mpg123_param(self.mh, MPG123_FREEFORMAT_SIZE, 0, 0.0), self.mh)
        # Output: float32 mono at whatever rate the stream has; the resampler takes floats
        # directly, so no int16 quantisation happens before the final one.
        cdef const long *rates = NULL
        cdef size_t nrates = 0, i
        _check(mpg123_format_none(self.mh), self.mh)
        mpg123_rates(&rates, &nrates)
        for i in range(nrates):
            _check(mpg123_format(self.mh, rates[i], MPG123_MONO, MPG123_ENC_FLOAT_32), self.mh)
        self.open()

    def __dealloc__(self):
        if self.mh != NULL:
            mpg123_delete(self.mh)
        free(self.syncbuf)

    @property
    def skipped(self):
        return self.sync.junk_bytes

    @property
    def resyncs(self):
        return self.sync.resyncs + self.stalls

    @property
    def metadata(self):
        return self.sync.meta_bytes

    cdef int open(self) except -1:
        # A fresh stream: drops buffered input and the previous stream's gapless/format state.
        _check(mpg123_open_feed(self.mh), self.mh)
        # self.rate survives: libmpg123 keeps its output format across streams and announces
        # NEW_FORMAT only when the next stream's format differs
        self.pending = False
        self.parsed = 0
        hl_mp3sync_reset(&self.sync)
        return 0

    cdef int feed(self, const uint8_t *p, size_t n, bint final) noexcept nogil:
        """Pass input through the frame sync; whole frames go to libmpg123 (which copies them
        into its own buffer chain). final: end of stream, release a last unconfirmed frame."""
        cdef size_t took, run, off = 0
        cdef bint moved
        cdef int rc
        while True:
            took = hl_mp3sync_push(&self.sync, p, n)
            p += took
            n -= took
            moved = took != 0
            while True:
                run = hl_mp3sync_pull(&self.sync, final and n == 0, &off)
                if run == 0:
                    break
                moved = True
                rc = mpg123_feed(self.mh, self.sync.buf + off, run)
                if rc != MPG123_OK:
                    return rc
            if n == 0:
                return MPG123_OK
            if not moved:
                # input left, but the sync neither took any nor released a frame: it would
                # spin here for ever (its buffer is full of bytes it cannot resolve)
                return _FEED_STUCK

    cdef int next(self, float **audio, size_t *nsamples) noexcept nogil:
        """One step: MPG123_OK with one frame's samples (0 for a frame that is skipped or
        trimmed by gapless decoding), NEED_MORE, NEW_FORMAT (self.rate updated) or an error.

        Frame by frame (parse, look, then decode) rather than mpg123_decode_frame(), so a
        frame that is not layer III is never decoded: it would be noise in the caller's ear,
        and libmpg123's layer II decoder writes to stderr whatever MPG123_QUIET says. The sync
        in front already drops such frames; this is the second line."""
        cdef off_t num = 0
        cdef unsigned char *buf = NULL
        cdef size_t nbytes = 0
        cdef long rate = 0
        cdef int ch = 0, enc = 0
        cdef mpg123_frameinfo info
        cdef int rc
        nsamples[0] = 0
        if self.pending:
            self.pending = False  # the frame parsed before NEW_FORMAT is still to decode
        else:
            rc = mpg123_framebyframe_next(self.mh)
            if rc == MPG123_NEED_MORE and self.sync.frames > self.parsed + _STALL_FRAMES:
                # libmpg123 has been fed whole frames but returns none: its parser locked
                # onto something junk made look like a stream (seen with a confirmed junk
                # header ahead of a valid stream). Reopen it; what it held is lost, the
                # frames that follow decode.
                if mpg123_open_feed(self.mh) == MPG123_OK:
                    self.stalls += 1
                    self.pending = False
                self.parsed = self.sync.frames
                return rc
            if rc == MPG123_NEW_FORMAT:
                if mpg123_getformat(self.mh, &rate, &ch, &enc) == MPG123_OK:
                    self.rate = rate
                self.pending = True
                return rc
            if rc != MPG123_OK:
                return rc
        self.parsed += 1
        if mpg123_info(self.mh, &info) != MPG123_OK or info.layer != 3:
            return MPG123_OK  # cannot happen behind the sync; never decode it if it does
        rc = mpg123_framebyframe_decode(self.mh, &num, &buf, &nbytes)
        if rc != MPG123_OK:
            return rc
        if nbytes:
            if self.rate == 0 and mpg123_getformat(self.mh, &rate, &ch, &enc) == MPG123_OK:
                self.rate = rate  # defensive: audio before any NEW_FORMAT
            self.last_rate = self.rate
        audio[0] = <float *>buf
        nsamples[0] = nbytes // sizeof(float)
        return rc


cdef class Mp3Decoder:
    """libmpg123 feed decoder: MP3 bytes -> int16 mono PCM at ``rate`` (see hotline.codec).

    After any exception from a call (CodecError, DecoderError, MemoryError, ...), call reset()
    before using the object again."""
    cdef bint _busy  # set while a call runs (the GIL is released inside)
    cdef _Mp3 _mp3
    cdef int16_t *_pcm
    cdef size_t _pcm_cap, _pcm_len
    cdef int _err

    def __cinit__(self):
        self._mp3 = _Mp3()

    def __dealloc__(self):
        free(self._pcm)

    @property
    def rate(self):
        """Sample rate of the decoded audio (0 before the first frame). A stream that changes
        rate mid-way changes this; one feed() returns audio of one rate only up to such a
        change, so a caller that needs to know keeps feeds small or checks rate often."""
        return self._mp3.last_rate

    @property
    def skipped_bytes(self):
        return self._mp3.skipped

    @property
    def resyncs(self):
        return self._mp3.resyncs

    @property
    def metadata_bytes(self):
        return self._mp3.metadata

    cdef int _run(self) noexcept nogil:
        cdef float *audio = NULL
        cdef size_t ns = 0
        cdef int rc
        while True:
            rc = self._mp3.next(&audio, &ns)
            if rc == MPG123_OK:
                if ns:
                    if _grow(<void **>&self._pcm, &self._pcm_cap, self._pcm_len + ns, sizeof(int16_t)):
                        return _ST_NOMEM
                    hl_f32_to_s16(audio, ns, 32768.0, self._pcm + self._pcm_len)
                    self._pcm_len += ns
            elif rc == MPG123_NEW_FORMAT:
                continue
            elif rc == MPG123_NEED_MORE or rc == MPG123_DONE:
                return _ST_DONE
            else:
                self._err = rc
                return _ST_MPG123

    cdef object _take(self, int st):
        if st == _ST_NOMEM:
            self._pcm_len = 0
            raise MemoryError()
        if st == _ST_STUCK:
            self._pcm_len = 0
            raise CodecError(_STUCK_MSG)
        if st == _ST_MPG123:
            self._pcm_len = 0
            _check(self._err if self._err != MPG123_OK else MPG123_ERR, self._mp3.mh)
        out = PyBytes_FromStringAndSize(<char *>self._pcm, self._pcm_len * sizeof(int16_t))
        self._pcm_len = 0
        return out

    def feed(self, data):
        """Feed MP3 bytes (any cut); returns the int16 PCM decoded so far."""
        if self._busy:
            raise RuntimeError("Mp3Decoder used from two threads at once")
        self._busy = True
        try:
            return self._feed(data)
        finally:
            self._busy = False

    cdef object _feed(self, object data):
        cdef Py_buffer view
        cdef int st
        _get_buffer(data, &view)
        try:
            with nogil:
                st = self._mp3.feed(<const uint8_t *>view.buf, view.len, False)
                if st == _FEED_STUCK:
                    st = _ST_STUCK
                elif st != MPG123_OK:
                    self._err = st
                    st = _ST_MPG123
                else:
                    st = self._run()
        finally:
            PyBuffer_Release(&view)
        return self._take(st)

    def flush(self):
        """End of stream: returns what is left; the next feed() starts a new stream."""
        if self._busy:
            raise RuntimeError("Mp3Decoder used from two threads at once")
        self._busy = True
        try:
            return self._flush()
        finally:
            self._busy = False

    cdef object _flush(self):
        cdef int st
        with nogil:
            st = self._mp3.feed(NULL, 0, True)  # release a last unconfirmed frame
            if st == _FEED_STUCK:
                st = _ST_STUCK
            elif st != MPG123_OK:
                self._err = st
                st = _ST_MPG123
            else:
                st = self._run()
        try:
            return self._take(st)
        finally:
            self._mp3.open()

    def reset(self):
        """Drop all buffered input; the next feed() starts a new stream."""
        if self._busy:
            raise RuntimeError("Mp3Decoder used from two threads at once")
        self._busy = True
        try:
            return self._reset()
        finally:
            self._busy = False

    cdef object _reset(self):
        self._pcm_len = 0
        self._mp3.open()


# --------------------------------------------------------------------------- Transcoder

cdef class TranscoderStats:
    """Counters of one Transcoder over its lifetime (they survive flush() and reset())."""
    cdef readonly long long bytes_in
    cdef readonly long long bytes_out
    cdef readonly long long feeds
    cdef readonly long long skipped_bytes
    cdef readonly long long decoder_resyncs
    cdef readonly long long metadata_bytes
    cdef readonly long input_rate

    def __repr__(self):
        return (f"TranscoderStats(bytes_in={self.bytes_in}, bytes_out={self.bytes_out}, "
                f"feeds={self.feeds}, skipped_bytes={self.skipped_bytes}, "
                f"decoder_resyncs={self.decoder_resyncs}, "
                f"metadata_bytes={self.metadata_bytes}, input_rate={self.input_rate})")

    def as_dict(self):
        return {
            "bytes_in": self.bytes_in,
            "bytes_out": self.bytes_out,
            "feeds": self.feeds,
            "skipped_bytes": self.skipped_bytes,
            "decoder_resyncs": self.decoder_resyncs,
            "metadata_bytes": self.metadata_bytes,
            "input_rate": self.input_rate,
        }


# The tables ElevenLabs' MP3 formats need, designed at import (about 10 ms once) rather than
# inside the first utterance's first feed().
for _pair in ((44100, 8000), (22050, 8000), (24000, 8000)):
    _get_table(_pair[0], _pair[1])

cdef dict _FORMATS = {}
for _f in SUPPORTED_FORMATS:
    _codec_name, _rate = _f.split("_")[:2]
    _FORMATS[_f] = ({"mp3": _K_MP3, "pcm": _K_PCM, "ulaw": _K_ULAW, "alaw": _K_ALAW}[_codec_name],
                    int(_rate))


cdef class Transcoder:
    """ElevenLabs audio in ``output_format`` -> µ-law 8 kHz mono (see hotline.codec).

    After any exception from a call (CodecError, DecoderError, MemoryError, ...), call reset()
    before using the object again."""
    cdef bint _busy  # set while a call runs (the GIL is released inside)
    cdef readonly str output_format
    cdef int _kind
    cdef long _in_rate          # PCM: the format's rate; MP3: the stream's (0 = not yet known)
    cdef _Mp3 _mp3
    cdef Resampler _rs          # None for 8 kHz input
    cdef hl_resampler *_rsp     # &self._rs.rs, for the nogil loops
    cdef int16_t *_pcm          # resampled int16 scratch
    cdef size_t _pcm_cap
    cdef uint8_t *_out          # µ-law scratch (MP3 path)
    cdef size_t _out_cap, _out_len
    cdef bint _odd              # PCM: a first byte of a sample is pending
    cdef uint8_t _odd_byte
    cdef int _err
    cdef const float *_pend_audio  # a decoded frame waiting for a resampler at its rate
    cdef size_t _pend_ns
    cdef long long _bytes_in, _bytes_out, _feeds

    def __cinit__(self, str output_format):
        spec = _FORMATS.get(output_format)
        if spec is None:
            raise CodecError(f"unsupported output_format {output_format!r}; "
                             f"supported: {', '.join(SUPPORTED_FORMATS)}")
        self.output_format = output_format
        self._kind, rate = spec
        self._rsp = NULL
        if self._kind == _K_MP3:
            self._mp3 = _Mp3()
            self._in_rate = 0
        else:
            self._in_rate = rate
            if self._kind == _K_PCM and rate != _OUT_RATE:
                self._set_rate(rate)

    def __dealloc__(self):
        free(self._pcm)
        free(self._out)

    cdef int _set_rate(self, long rate) except -1:
        if rate == _OUT_RATE:
            self._rs = None
            self._rsp = NULL
        elif self._rs is None or self._rs.in_rate != rate:
            self._rs = Resampler(rate, _OUT_RATE)
            self._rsp = &self._rs.rs
        else:
            hl_resampler_reset(self._rsp)
        self._in_rate = rate
        return 0

    @property
    def input_rate(self):
        """Rate of the input audio: the format's, or for MP3 the stream's (0 until known)."""
        if self._kind == _K_MP3:
            return self._mp3.last_rate
        return self._in_rate

    @property
    def stats(self):
        cdef TranscoderStats s = TranscoderStats.__new__(TranscoderStats)
        s.bytes_in = self._bytes_in
        s.bytes_out = self._bytes_out
        s.feeds = self._feeds
        s.input_rate = self.input_rate
        if self._kind == _K_MP3:
            s.skipped_bytes = self._mp3.skipped
            s.decoder_resyncs = self._mp3.resyncs
            s.metadata_bytes = self._mp3.metadata
        return s

    # -- MP3 path (nogil) ----------------------------------------------------------------

    cdef int _emit_pcm(self, const int16_t *pcm, size_t n) noexcept nogil:
        if _grow(<void **>&self._out, &self._out_cap, self._out_len + n, 1):
            return _ST_NOMEM
        hl_ulaw_encode(pcm, n, self._out + self._out_len)
        self._out_len += n
        return _ST_DONE

    cdef int _resample_f32(self, const float *x, size_t n) noexcept nogil:
        cdef size_t cap
        cdef ptrdiff_t got
        if self._rsp == NULL:  # 8 kHz MP3: only the int16 conversion
            if _grow(<void **>&self._pcm, &self._pcm_cap, n, sizeof(int16_t)):
                return _ST_NOMEM
            hl_f32_to_s16(x, n, 32768.0, self._pcm)
            return self._emit_pcm(self._pcm, n)
        cap = hl_resampler_max_out(self._rsp, n)
        if _grow(<void **>&self._pcm, &self._pcm_cap, cap, sizeof(int16_t)):
            return _ST_NOMEM
        got = hl_resampler_process_f32(self._rsp, x, n, 32768.0, self._pcm, self._pcm_cap)
        if got < 0:
            self._err = <int>got
            return _ST_KERNEL
        return self._emit_pcm(self._pcm, got)

    cdef int _drain_resampler(self) noexcept nogil:
        cdef size_t cap
        cdef ptrdiff_t got
        if self._rsp == NULL:
            return _ST_DONE
        cap = hl_resampler_max_out(self._rsp, 0)
        if _grow(<void **>&self._pcm, &self._pcm_cap, cap, sizeof(int16_t)):
            return _ST_NOMEM
        got = hl_resampler_flush(self._rsp, self._pcm, self._pcm_cap)
        if got < 0:
            self._err = <int>got
            return _ST_KERNEL
        return self._emit_pcm(self._pcm, got)

    cdef int _run_mp3(self) noexcept nogil:
        cdef float *audio = NULL
        cdef size_t ns = 0
        cdef int rc, st
        if self._pend_ns:
            ns = self._pend_ns
            self._pend_ns = 0
            st = self._resample_f32(self._pend_audio, ns)
            if st != _ST_DONE:
                return st
        while True:
            rc = self._mp3.next(&audio, &ns)
            if rc == MPG123_OK:
                if ns == 0:
                    continue
                if self._mp3.rate != self._in_rate:
                    # audio at a new rate: finish the old rate's tail, keep this frame (it
                    # stays valid in libmpg123's buffer until the next decode call) and let
                    # the caller, with the GIL, set up the resampler and call again. Rates are
                    # switched on audio, not on NEW_FORMAT, so a junk header cannot cut the
                    # resampler's stream.
                    st = self._drain_resampler()
                    if st != _ST_DONE:
                        return st
                    self._pend_audio = audio
                    self._pend_ns = ns
                    return _ST_NEED_RATE
                st = self._resample_f32(audio, ns)
                if st != _ST_DONE:
                    return st
            elif rc == MPG123_NEW_FORMAT:
                continue
            elif rc == MPG123_NEED_MORE or rc == MPG123_DONE:
                return _ST_DONE
            else:
                self._err = rc
                return _ST_MPG123

    cdef object _mp3_result(self, int st):
        # called with the GIL after the nogil loop; st is never _ST_NEED_RATE here
        if st != _ST_DONE:
            self._out_len = 0
            if st == _ST_NOMEM:
                raise MemoryError()
            if st == _ST_STUCK:
                raise CodecError(_STUCK_MSG)
            if st == _ST_MPG123:
                _check(self._err if self._err != MPG123_OK else MPG123_ERR, self._mp3.mh)
            raise CodecError(f"kernel error {self._err}")
        out = PyBytes_FromStringAndSize(<char *>self._out, self._out_len)
        self._out_len = 0
        return out

    cdef object _feed_mp3(self, const uint8_t *p, size_t n):
        cdef int st
        with nogil:
            st = self._mp3.feed(p, n, False)
            if st == _FEED_STUCK:
                st = _ST_STUCK
            elif st != MPG123_OK:
                self._err = st
                st = _ST_MPG123
            else:
                st = self._run_mp3()
        while st == _ST_NEED_RATE:
            self._set_rate(self._mp3.rate)
            with nogil:
                st = self._run_mp3()
        return self._mp3_result(st)

    # -- PCM path --------------------------------------------------------------------------

    cdef object _feed_pcm(self, const uint8_t *p, size_t n):
        cdef uint8_t pair[2]
        cdef size_t ns, cnt, cap, k = 0
        cdef ptrdiff_t got = 0, got1 = 0
        cdef bint lead = False
        cdef uint8_t *dst
        if self._odd and n:
            # complete the sample split across feeds
            pair[0] = self._odd_byte
            pair[1] = p[0]
            lead = True
            p += 1
            n -= 1
        # self._odd is cleared only once the samples went through: a MemoryError from the
        # allocations below leaves the pending byte where it was
        ns = n // 2
        if self._rsp == NULL:  # pcm_8000: encode only, straight into the result
            out = PyBytes_FromStringAndSize(NULL, ns + lead)
            dst = <uint8_t *>PyBytes_AS_STRING(out)
            with nogil:
                if lead:
                    hl_ulaw_encode_s16le(pair, 1, dst)
                hl_ulaw_encode_s16le(p, ns, dst + lead)
        else:
            cnt = hl_resampler_out_count(self._rsp, ns + lead)
            cap = hl_resampler_max_out(self._rsp, ns + lead)
            if _grow(<void **>&self._pcm, &self._pcm_cap, cap, sizeof(int16_t)):
                raise MemoryError()
            out = PyBytes_FromStringAndSize(NULL, cnt)
            dst = <uint8_t *>PyBytes_AS_STRING(out)
            with nogil:
                if lead:
                    got1 = hl_resampler_process_s16le(self._rsp, pair, 1, self._pcm, self._pcm_cap)
                if got1 >= 0:
                    got = hl_resampler_process_s16le(self._rsp, p, ns, self._pcm + got1,
                                                     self._pcm_cap - got1)
                if got1 >= 0 and got >= 0 and <size_t>(got1 + got) == cnt:
                    hl_ulaw_encode(self._pcm, cnt, dst)
            if got1 < 0 or got < 0 or <size_t>(got1 + got) != cnt:
                raise CodecError(f"resampler kernel error {got1}/{got}")
        if lead:
            self._odd = False
        if n % 2:
            self._odd = True
            self._odd_byte = p[n - 1]
        return out

    # -- public ----------------------------------------------------------------------------

    def feed(self, data):
        """Transcode one chunk; returns µ-law 8 kHz bytes (possibly empty)."""
        if self._busy:
            raise RuntimeError("Transcoder used from two threads at once")
        self._busy = True
        try:
            return self._feed(data)
        finally:
            self._busy = False

    cdef object _feed(self, object data):
        cdef Py_buffer view
        cdef const uint8_t *p
        cdef uint8_t *dst
        cdef size_t n
        _get_buffer(data, &view)
        try:
            p = <const uint8_t *>view.buf
            n = <size_t>view.len
            self._feeds += 1
            self._bytes_in += n
            if self._kind == _K_MP3:
                out = self._feed_mp3(p, n)
            elif self._kind == _K_PCM:
                out = self._feed_pcm(p, n)
            elif self._kind == _K_ULAW:
                out = PyBytes_FromStringAndSize(<const char *>p, n)
            else:
                out = PyBytes_FromStringAndSize(NULL, n)
                dst = <uint8_t *>PyBytes_AS_STRING(out)
                with nogil:
                    hl_alaw_to_ulaw(p, n, dst)
        finally:
            PyBuffer_Release(&view)
        self._bytes_out += len(out)
        return out

    def flush(self):
        """End the utterance: drain decoder and resampler; ready for a new utterance."""
        if self._busy:
            raise RuntimeError("Transcoder used from two threads at once")
        self._busy = True
        try:
            return self._flush()
        finally:
            self._busy = False

    cdef object _flush(self):
        cdef int st = _ST_DONE
        cdef size_t cnt, cap
        cdef ptrdiff_t got = 0
        cdef uint8_t *dst
        self._odd = False  # a half sample at the end of an utterance cannot be played
        if self._kind == _K_MP3:
            with nogil:
                st = self._mp3.feed(NULL, 0, True)  # release a last unconfirmed frame
                if st == _FEED_STUCK:
                    st = _ST_STUCK
                elif st != MPG123_OK:
                    self._err = st
                    st = _ST_MPG123
                else:
                    st = self._run_mp3()
            while st == _ST_NEED_RATE:
                self._set_rate(self._mp3.rate)
                with nogil:
                    st = self._run_mp3()
            if st == _ST_DONE:
                with nogil:
                    st = self._drain_resampler()
            try:
                out = self._mp3_result(st)
            finally:
                self._pend_ns = 0
                self._mp3.open()
                if self._rsp != NULL:
                    hl_resampler_reset(self._rsp)
        elif self._kind == _K_PCM and self._rsp != NULL:
            cnt = hl_resampler_flush_count(self._rsp)
            cap = hl_resampler_max_out(self._rsp, 0)
            if _grow(<void **>&self._pcm, &self._pcm_cap, cap, sizeof(int16_t)):
                raise MemoryError()
            out = PyBytes_FromStringAndSize(NULL, cnt)
            dst = <uint8_t *>PyBytes_AS_STRING(out)
            with nogil:
                got = hl_resampler_flush(self._rsp, self._pcm, self._pcm_cap)
                if got >= 0 and <size_t>got == cnt:
                    hl_ulaw_encode(self._pcm, cnt, dst)
            if got < 0 or <size_t>got != cnt:
                raise CodecError(f"resampler kernel error {got}")
        else:
            out = b""
        self._bytes_out += len(out)
        return out

    def reset(self):
        """Drop everything buffered (barge-in); the next feed() starts a new utterance."""
        if self._busy:
            raise RuntimeError("Transcoder used from two threads at once")
        self._busy = True
        try:
            return self._reset()
        finally:
            self._busy = False

    cdef object _reset(self):
        self._odd = False
        self._out_len = 0
        self._pend_ns = 0
        if self._kind == _K_MP3:
            self._mp3.open()
        if self._rsp != NULL:
            hl_resampler_reset(self._rsp)


# =====================================================================================
# Twilio inbound `media` fast path (csrc/twilio_media.c; issue 11). Self-contained section:
# nothing above depends on it.

cdef extern from "Python.h":
    const char *PyUnicode_AsUTF8AndSize(object s, Py_ssize_t *size) except NULL
    bint PyUnicode_IS_ASCII(object s)

cdef str _INBOUND = "inbound"


def twilio_media_fast(text, str stream_sid not None):
    """Parse one Twilio ``media`` text frame in one compiled call, or return None to defer.

    Returns ``(track, chunk, timestamp, payload, rms_dbfs, zcr)`` only when *text* is a
    ``media`` message that ``json.loads`` plus hotline.core.twilio's full parser would accept
    with exactly these fields and whose ``streamSid`` equals *stream_sid*; ``payload`` is the
    decoded µ-law (a new ``bytes``, decoded straight into it), ``(rms_dbfs, zcr)`` is
    :func:`ulaw_frame_stats` of it. Anything else (another event, an unusual but valid shape,
    any malformed input, another stream's sid, a non-str) returns None: the caller then runs
    the full parser, which is where every error comes from. Never raises on input.
    """
    cdef hl_twilio_media m
    cdef Py_ssize_t n, sid_n
    cdef const char *s
    cdef const char *want
    cdef bytes payload
    cdef double db = 0.0, zcr = 0.0
    cdef uint8_t *out
    if type(text) is not str or not PyUnicode_IS_ASCII(text):
        return None
    s = PyUnicode_AsUTF8AndSize(text, &n)
    want = PyUnicode_AsUTF8AndSize(stream_sid, &sid_n)
    # No nogil: a 20 ms frame takes well under a microsecond here, less than a GIL hand-off.
    if not hl_twilio_media_scan(s, <size_t>n, &m):
        return None
    if m.sid_len != <size_t>sid_n or memcmp(s + m.sid_off, want, m.sid_len) != 0:
        return None
    payload = PyBytes_FromStringAndSize(NULL, <Py_ssize_t>m.decoded_len)
    out = <uint8_t *>PyBytes_AS_STRING(payload)
    hl_b64_decode_checked(s + m.payload_off, m.payload_len, out)
    hl_ulaw_frame_stats(out, m.decoded_len, &db, &zcr)
    if m.track_len == 7 and memcmp(s + m.track_off, b"inbound", 7) == 0:
        track = _INBOUND
    else:
        track = text[m.track_off:m.track_off + m.track_len]
    return (track, m.chunk, m.timestamp, payload, db, zcr)


# =====================================================================================
# WebSocket client frames, the common case (csrc/ws_frames.c; issue 11). Self-contained
# section: used by hotline.server.media_ws's direct path, nothing above depends on it.

cdef extern from "Python.h":
    object PyUnicode_DecodeUTF8(const char *s, Py_ssize_t size, const char *errors)


def ws_client_frames(bytes data not None, Py_ssize_t max_size):
    """Split a client's byte stream into the messages of its leading plain frames.

    Takes frames from the start of *data* while each is a complete final (unfragmented),
    masked, uncompressed text or binary frame of at most *max_size* payload bytes, and returns
    ``(messages, consumed, stopped)``: the unmasked payloads in order (``str`` for text, strictly
    UTF-8 decoded; ``bytes`` for binary), how many bytes of *data* they took, and whether taking
    stopped at a frame that is not of that kind (a control frame, a fragment, RSV bits, an
    unmasked frame, an oversized one, text that is not UTF-8) rather than at the end of the
    data or a frame not yet complete. ``data[consumed:]`` starts at a frame boundary: when
    *stopped*, it belongs to the full parser (websockets), which rules on it exactly as it would
    have on the whole stream. Never raises on input.
    """
    cdef const uint8_t *p = <const uint8_t *>PyBytes_AS_STRING(data)
    cdef size_t n = <size_t>len(data)
    cdef size_t pos = 0
    cdef list out = []
    cdef bint stopped = False
    cdef hl_ws_frame f
    cdef int r
    cdef bytes payload
    cdef uint8_t *scratch
    cdef uint8_t small[2048]
    cdef uint64_t limit = <uint64_t>max_size if max_size > 0 else 0
    while pos < n:
        r = hl_ws_frame_scan(p + pos, n - pos, limit, &f)
        if r == 0:
            break
        if r < 0:
            stopped = True
            break
        if f.opcode == 2:
            payload = PyBytes_FromStringAndSize(NULL, <Py_ssize_t>f.payload_len)
            hl_ws_unmask(p + pos + f.payload_off, f.payload_len, p + pos + f.mask_off,
                         <uint8_t *>PyBytes_AS_STRING(payload))
            out.append(payload)
        else:
            if f.payload_len <= sizeof(small):
                scratch = &small[0]
            else:
                scratch = <uint8_t *>malloc(f.payload_len)
                if scratch == NULL:
                    raise MemoryError()
            hl_ws_unmask(p + pos + f.payload_off, f.payload_len, p + pos + f.mask_off, scratch)
            try:
                out.append(PyUnicode_DecodeUTF8(<const char *>scratch, <Py_ssize_t>f.payload_len, NULL))
            except UnicodeDecodeError:
                stopped = True
                break
            finally:
                if scratch != &small[0]:
                    free(scratch)
        pos += f.payload_off + f.payload_len
    return out, <Py_ssize_t>pos, stopped
