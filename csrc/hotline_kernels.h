/*
 * hotline C kernels: G.711 and a streaming polyphase resampler.
 *
 * Plain C11 on <stdint.h>/<stddef.h>; nothing here knows about Python or libmpg123.
 * Every function works on caller-owned buffers and returns a count (>= 0) or a
 * negative HL_E* code. Every public symbol carries the hl_ prefix.
 */
#ifndef HOTLINE_KERNELS_H
#define HOTLINE_KERNELS_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

enum {
    HL_OK = 0,
    HL_EINVAL = -1, /* bad argument (rate out of range, NULL, ...) */
    HL_ENOSPC = -2, /* caller's buffer too small */
    HL_E2BIG = -3   /* resampler: the filter tables would exceed HL_RESAMPLER_MAX_TABLE */
};

/* ---------------------------------------------------------------- G.711 (ulaw.c) */

/* int16 PCM -> µ-law, bit-exact with the Sun/CCITT g711.c coder (as in audioop.lin2ulaw:
 * the sample is first reduced to 14 bits by an arithmetic shift). Returns n. */
size_t hl_ulaw_encode(const int16_t *restrict pcm, size_t n, uint8_t *restrict out);

/* µ-law -> int16 PCM (audioop.ulaw2lin). Returns n. */
size_t hl_ulaw_decode(const uint8_t *restrict ulaw, size_t n, int16_t *restrict out);

/* Little-endian int16 byte pairs (any alignment) -> µ-law; n is the sample count. */
size_t hl_ulaw_encode_s16le(const uint8_t *restrict pcm, size_t n, uint8_t *restrict out);

/* A-law -> µ-law, defined as hl_ulaw_encode(alaw2lin(a)) (audioop semantics). Returns n.
 * In-place (alaw == out) is allowed. */
size_t hl_alaw_to_ulaw(const uint8_t *alaw, size_t n, uint8_t *out);

/* One byte each, for tables and tests. */
uint8_t hl_ulaw_encode1(int16_t sample);
int16_t hl_ulaw_decode1(uint8_t code);
int16_t hl_alaw_decode1(uint8_t code);

/* Floor reported by hl_ulaw_frame_stats for digital silence and empty input. */
#define HL_DBFS_FLOOR (-120.0)

/* Statistics of a µ-law frame for a voice-activity detector.
 * rms_dbfs: 20*log10(rms / 32768) over the decoded int16 samples, HL_DBFS_FLOOR when the
 *           rms is 0 (all samples decode to 0) or n == 0; never below the floor.
 * zcr:      sign changes between neighbouring decoded samples / (n - 1); a sample counts as
 *           negative when < 0 (0 is positive); 0.0 when n < 2. */
void hl_ulaw_frame_stats(const uint8_t *restrict ulaw, size_t n, double *rms_dbfs, double *zcr);

/* Periodicity of a µ-law window, for telling voiced speech from a cough or noise: the largest
 * normalised autocorrelation of the decoded, mean-removed samples over lags min_lag..max_lag
 * (inclusive), each lag comparing x[0 .. n-max_lag) with x[lag .. lag+n-max_lag):
 *     r(lag) = sum(a*b) / sqrt(sum(a*a) * sum(b*b))
 * Returns 0.0 when n <= max_lag, when either energy is 0, or when no r is positive; never
 * above 1.0 (up to rounding). The caller checks 1 <= min_lag <= max_lag. */
double hl_ulaw_periodicity(const uint8_t *restrict ulaw, size_t n, size_t min_lag,
                           size_t max_lag);

/* PCM helpers. */
/* float * scale -> int16, rounded half to even and saturated; NaN -> 0 */
size_t hl_f32_to_s16(const float *restrict in, size_t n, float scale, int16_t *restrict out);

/* ------------------------------------------------------- resampler (resample.c) */

/* Rational rate conversion in_rate -> out_rate, both in [HL_RATE_MIN, HL_RATE_MAX].
 *
 * Filter: Kaiser-windowed sinc, float taps computed in double, each polyphase branch normalised
 * to unity DC gain. Band edges are relative to the lower Nyquist frequency nyq = min(in,out)/2:
 * passband to 0.913 nyq, stopband from nyq, 75 dB (see resample.c for why).
 *
 * Stages: a large downsampling ratio runs as two stages. Stage 1 decimates by an integer D
 * (in -> in/D, in/D >= 1.35 out) with a short filter that only has to keep 0..pass flat and
 * stop what would fold onto 0..nyq; stage 2 does the sharp rational in/D -> out step. Stage 1
 * hands floats to stage 2 (no intermediate rounding). For 44.1 kHz -> 8 kHz that is 44100 ->
 * 11025 -> 8000 and 2.4x fewer multiply-adds than one 608-tap stage.
 *
 * Time alignment (group delay compensation): each stage puts output sample n exactly at input
 * time t_n = n * in/out (in input samples) and computes sum_j x[j] h(j - t_n) over the taps
 * around t_n: the filter is applied zero-phase. The stream is preceded by zeros, so output 0 is
 * centred on input 0. The price is latency: a stage emits output n only once input
 * ceil(t_n) + ntaps/2 has arrived (hl_resampler_delay). hl_resampler_flush() pads with zeros
 * and emits every output with t_n < n_in, so one stage gives exactly ceil(n_in * out / in)
 * samples for a whole stream (two stages: ceil(ceil(n_in / D) * out * D / in), within 1).
 *
 * Positions are integers (sample index + phase numerator), never a float clock, and every
 * output is the same dot product whatever the chunking, so the output is byte-identical
 * however the input is cut.
 */
#define HL_RATE_MIN 1000
#define HL_RATE_MAX 384000
#define HL_MAX_STAGES 2
/* Cap on the floats of one rate pair's tables (all stages' phases x taps): 4 MiB. Designing costs
 * time and memory in proportion (an unbounded 383998 -> 1000 Hz needed 20.6 M floats, 3.6 s); the
 * largest table among the common rates (8 k .. 384 k) is 143,360 floats. */
#define HL_RESAMPLER_MAX_TABLE (1u << 20)

typedef struct hl_stage_plan {
    uint32_t in_rate, out_rate;
    uint32_t phases;     /* L = out / gcd */
    uint32_t step;       /* M = in / gcd: input advance per output, in 1/L input samples */
    uint32_t ntaps;      /* taps per phase (multiple of 8); 1 for passthrough */
    uint32_t half;       /* ntaps / 2 */
    double pass_hz, stop_hz, cutoff_hz, atten_db, beta;
    int passthrough;     /* in_rate == out_rate */
} hl_stage_plan;

typedef struct hl_resampler_plan {
    uint32_t in_rate, out_rate;
    uint32_t nstages;    /* 1 or 2 */
    hl_stage_plan stage[HL_MAX_STAGES];
} hl_resampler_plan;

/* Fill *plan for the pair. Returns HL_OK, HL_EINVAL (rates out of range, ratio too fine: more
 * than 2048 phases) or HL_E2BIG (tables larger than HL_RESAMPLER_MAX_TABLE floats). */
int hl_resampler_plan_init(hl_resampler_plan *plan, uint32_t in_rate, uint32_t out_rate);

/* Floats hl_resampler_design writes (all stages' polyphase tables). */
size_t hl_resampler_table_size(const hl_resampler_plan *plan);

/* Write the tables: stage after stage, each phase-major (phase p's taps at p * ntaps). */
int hl_resampler_design(const hl_resampler_plan *plan, float *taps);

/* Floats of working memory (histories + the stage hand-off buffer) a resampler needs. */
size_t hl_resampler_work_size(const hl_resampler_plan *plan);

typedef struct hl_stage {
    hl_stage_plan plan;
    const float *taps;    /* plan.phases * plan.ntaps, read-only, may be shared */
    float *hist;          /* history, hist_cap floats, inside the caller's work memory */
    size_t hist_cap;
    size_t hist_len;      /* valid samples in hist */
    size_t pos;           /* hist index of tap 0 for the next output */
    size_t real_end;      /* hist index one past the last real (non-padding) sample */
    uint32_t frac;        /* phase (0..L-1) of the next output */
    uint32_t step_int, step_frac; /* M / L, M % L */
} hl_stage;

/* Streaming state; the caller owns it, the tables and the work memory. */
typedef struct hl_resampler {
    hl_resampler_plan plan;
    hl_stage stage[HL_MAX_STAGES];
    float *mid;           /* stage 1 -> stage 2 hand-off, mid_cap floats */
    size_t mid_cap;
} hl_resampler;

/* Bind plan + tables + work memory and reset. Returns HL_OK or HL_EINVAL. */
int hl_resampler_init(hl_resampler *rs, const hl_resampler_plan *plan, const float *taps,
                      float *work, size_t work_cap);

/* Drop all history: the next sample is the start of a new stream. */
void hl_resampler_reset(hl_resampler *rs);

/* Exact number of outputs process(n_in) will return, and that flush() will return now: the
 * out_cap those calls need. */
size_t hl_resampler_out_count(const hl_resampler *rs, size_t n_in);
size_t hl_resampler_flush_count(const hl_resampler *rs);
/* Upper bound of what process(n_in) and a flush after it can return together. */
size_t hl_resampler_max_out(const hl_resampler *rs, size_t n_in);

/* Feed n int16 samples (s16; s16le: n little-endian byte pairs at any alignment) or n floats
 * multiplied by `scale` (f32; 32768.0f for +-1.0 PCM). Writes int16 samples and returns how
 * many, or HL_ENOSPC (nothing consumed) when out_cap < hl_resampler_out_count(rs, n). */
ptrdiff_t hl_resampler_process_s16(hl_resampler *rs, const int16_t *restrict in, size_t n,
                                   int16_t *restrict out, size_t out_cap);
ptrdiff_t hl_resampler_process_s16le(hl_resampler *rs, const uint8_t *restrict in, size_t n,
                                     int16_t *restrict out, size_t out_cap);
ptrdiff_t hl_resampler_process_f32(hl_resampler *rs, const float *restrict in, size_t n,
                                   float scale, int16_t *restrict out, size_t out_cap);

/* End of stream: emit the tail (zero-padded look-ahead) and reset for a new stream; needs
 * out_cap >= hl_resampler_flush_count(rs), else HL_ENOSPC. */
ptrdiff_t hl_resampler_flush(hl_resampler *rs, int16_t *restrict out, size_t out_cap);

/* Look-ahead latency in input samples (0 for passthrough). */
double hl_resampler_delay(const hl_resampler_plan *plan);

/* ------------------------------------------------------- MP3 frame sync (mp3sync.c) */

/* Splits a byte stream into whole MPEG layer III frames (MPEG-1, 2 and 2.5; no free format)
 * and drops everything else: junk is counted, ID3v2 tags are skipped as metadata. A tag is
 * believed at the start of a stream, elsewhere only when a confirmed frame follows it (see
 * mp3sync.c): "ID3" and a plausible size in junk must not swallow the valid audio after it.
 *
 * Out of sync (at the start, after junk) a header is accepted only when the frame it
 * announces is followed by another compatible header (same version and sample rate), or, at
 * the end of the stream, when its frame is complete. In sync, a frame is accepted when it is
 * complete, starts where the previous one ended and belongs to the same stream; anything else
 * there loses sync, and finding the next confirmed frame after skipping junk is one resync (a
 * new stream right there, e.g. a rate change, is not). Bytes are held only while a frame is incomplete or awaits confirmation (at most one
 * frame + 4 bytes), so the buffer never needs more than HL_MP3SYNC_MIN_CAP.
 *
 * Use: push() input (it takes what fits), then pull() runs of frames until it returns 0;
 * repeat until all input is taken. A pulled run is buf[off, off + n) and stays valid until
 * the next push(). pull(final = 1) at the end of the stream accepts a last unconfirmed frame
 * and counts what is left as junk. */
#define HL_MP3SYNC_MIN_CAP 4096u
#define HL_MP3SYNC_CAP 16384u

typedef struct hl_mp3sync {
    uint8_t *buf;        /* caller-owned, cap bytes */
    size_t cap, len, pos; /* buf[pos, len) is pending */
    int in_sync;
    int lost;            /* sync was lost and not regained yet */
    uint64_t lost_at;    /* junk_bytes when it was lost */
    uint8_t last[4];     /* header of the last frame passed on */
    uint32_t skip;       /* bytes of an ID3v2 tag still to skip */
    int fresh;           /* nothing consumed since init/reset: a stream may start here */
    uint64_t frames;     /* frames passed on (this stream) */
    uint64_t junk_bytes, meta_bytes, resyncs; /* lifetime counters, kept by reset */
} hl_mp3sync;

/* HL_OK, or HL_EINVAL when buf is NULL or cap < HL_MP3SYNC_MIN_CAP. */
int hl_mp3sync_init(hl_mp3sync *s, uint8_t *buf, size_t cap);
/* A new stream: drop pending bytes and sync state, keep the counters. */
void hl_mp3sync_reset(hl_mp3sync *s);
size_t hl_mp3sync_push(hl_mp3sync *s, const uint8_t *in, size_t n);
size_t hl_mp3sync_pull(hl_mp3sync *s, int final, size_t *off);


/* ---- Twilio inbound `media` fast path (csrc/twilio_media.c) ----
 * scan() returns 1 and fills *m (spans are byte offsets into the text) only for a `media`
 * message the full parser would accept with the same fields; 0 means "use the full parser".
 * decode_checked() decodes a payload span scan() accepted into decoded_len bytes. */
typedef struct hl_twilio_media {
    size_t track_off, track_len;
    size_t sid_off, sid_len;
    size_t payload_off, payload_len; /* the base64 text */
    size_t decoded_len;
    uint64_t sequence_number, chunk, timestamp;
} hl_twilio_media;

int hl_twilio_media_scan(const char *text, size_t n, hl_twilio_media *m);
void hl_b64_decode_checked(const char *b64, size_t n, uint8_t *out);

/* ---- WebSocket client frames, the common case (csrc/ws_frames.c) ----
 * scan() returns 1 for a complete final, masked, uncompressed text/binary frame of at most
 * max_payload bytes (*f filled: offsets from the frame's first byte), 0 for "need more bytes",
 * -1 for any other frame (the full parser's business). unmask() XORs n bytes with the 4-byte
 * mask, the mask's phase starting at src[0]; dst may equal src. */
typedef struct hl_ws_frame {
    int opcode;          /* 1 text, 2 binary */
    size_t mask_off;     /* the 4 mask bytes */
    size_t payload_off, payload_len;
} hl_ws_frame;

int hl_ws_frame_scan(const uint8_t *buf, size_t n, uint64_t max_payload, hl_ws_frame *f);
void hl_ws_unmask(const uint8_t *src, size_t n, const uint8_t mask[4], uint8_t *dst);

#ifdef __cplusplus
}
#endif
#endif /* HOTLINE_KERNELS_H */
