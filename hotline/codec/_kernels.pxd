# Declarations of the C kernels in csrc/hotline_kernels.h (only what _codec.pyx calls).
# Signed counts are ptrdiff_t, as the C prototypes say (not POSIX ssize_t).
from libc.stddef cimport ptrdiff_t
from libc.stdint cimport int16_t, uint8_t, uint32_t, uint64_t


cdef extern from "hotline_kernels.h" nogil:
    enum:
        HL_OK
        HL_E2BIG
        HL_RATE_MIN
        HL_RATE_MAX
        HL_RESAMPLER_MAX_TABLE

    size_t hl_ulaw_encode(const int16_t *pcm, size_t n, uint8_t *out)
    size_t hl_ulaw_decode(const uint8_t *ulaw, size_t n, int16_t *out)
    size_t hl_ulaw_encode_s16le(const uint8_t *pcm, size_t n, uint8_t *out)
    size_t hl_alaw_to_ulaw(const uint8_t *alaw, size_t n, uint8_t *out)
    void hl_ulaw_frame_stats(const uint8_t *ulaw, size_t n, double *rms_dbfs, double *zcr)
    double hl_ulaw_periodicity(const uint8_t *ulaw, size_t n, size_t min_lag, size_t max_lag)
    size_t hl_f32_to_s16(const float *inp, size_t n, float scale, int16_t *out)

    # opaque here: the C header defines them, Cython only passes pointers and embeds them
    ctypedef struct hl_resampler_plan:
        pass

    ctypedef struct hl_resampler:
        pass

    int hl_resampler_plan_init(hl_resampler_plan *plan, uint32_t in_rate, uint32_t out_rate)
    size_t hl_resampler_table_size(const hl_resampler_plan *plan)
    int hl_resampler_design(const hl_resampler_plan *plan, float *taps)
    size_t hl_resampler_work_size(const hl_resampler_plan *plan)
    int hl_resampler_init(hl_resampler *rs, const hl_resampler_plan *plan, const float *taps,
                          float *work, size_t work_cap)
    void hl_resampler_reset(hl_resampler *rs)
    size_t hl_resampler_max_out(const hl_resampler *rs, size_t n_in)
    size_t hl_resampler_out_count(const hl_resampler *rs, size_t n_in)
    size_t hl_resampler_flush_count(const hl_resampler *rs)
    ptrdiff_t hl_resampler_process_s16le(hl_resampler *rs, const uint8_t *inp, size_t n,
                                         int16_t *out, size_t out_cap)
    ptrdiff_t hl_resampler_process_f32(hl_resampler *rs, const float *inp, size_t n,
                                       float scale, int16_t *out, size_t out_cap)
    ptrdiff_t hl_resampler_flush(hl_resampler *rs, int16_t *out, size_t out_cap)
    double hl_resampler_delay(const hl_resampler_plan *plan)

    enum:
        HL_MP3SYNC_CAP

    ctypedef struct hl_mp3sync:
        uint8_t *buf
        uint64_t frames
        uint64_t junk_bytes
        uint64_t meta_bytes
        uint64_t resyncs

    int hl_mp3sync_init(hl_mp3sync *s, uint8_t *buf, size_t cap)
    void hl_mp3sync_reset(hl_mp3sync *s)
    size_t hl_mp3sync_push(hl_mp3sync *s, const uint8_t *inp, size_t n)
    size_t hl_mp3sync_pull(hl_mp3sync *s, int final, size_t *off)


# ---- Twilio inbound `media` fast path (csrc/twilio_media.c; issue 11) ----
cdef extern from "hotline_kernels.h" nogil:
    ctypedef struct hl_twilio_media:
        size_t track_off
        size_t track_len
        size_t sid_off
        size_t sid_len
        size_t payload_off
        size_t payload_len
        size_t decoded_len
        uint64_t sequence_number
        uint64_t chunk
        uint64_t timestamp

    int hl_twilio_media_scan(const char *text, size_t n, hl_twilio_media *m)
    void hl_b64_decode_checked(const char *b64, size_t n, uint8_t *out)


# ---- WebSocket client frames, the common case (csrc/ws_frames.c; issue 11) ----
cdef extern from "hotline_kernels.h" nogil:
    ctypedef struct hl_ws_frame:
        int opcode
        size_t mask_off
        size_t payload_off
        size_t payload_len

    int hl_ws_frame_scan(const uint8_t *buf, size_t n, uint64_t max_payload, hl_ws_frame *f)
    void hl_ws_unmask(const uint8_t *src, size_t n, const uint8_t *mask, uint8_t *dst)
