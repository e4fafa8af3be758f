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
    HL_ENOSPC = -2  /* caller's buffer too small */
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

/* PCM helpers. */
/* float (int16 scale, i.e. +-32768.0 is full scale) -> int16 with round-half-away and saturation */
size_t hl_f32_to_s16(const float *restrict in, size_t n, float scale, int16_t *restrict out);

/* ------------------------------------------------------- resampler (resample.c) */

/* Rational rate conversion in_rate -> out_rate, both in [HL_RATE_MIN, HL_RATE_MAX].
 *
 * Filter: Kaiser-windowed sinc, polyphase with `phases` = out/g branches of `ntaps` taps
 * (g = gcd(in, out)); cutoff and transition are placed relative to the lower Nyquist
 * frequency (see hl_resampler_plan). Taps are float, computed in double at design time and
 * each phase is normalised to unity DC gain.
 *
 * Time alignment (group delay compensation): output sample n sits exactly at input time
 * t_n = n * in/out (in input samples), and is sum_j x[j] h(j - t_n) over the taps around
 * t_n, i.e. the filter is applied zero-phase. The stream is preceded by zeros, so output 0
 * is centred on input 0. The price is latency: output n is produced only once input
 * ceil(t_n) + ntaps/2 has arrived (the look-ahead is `ntaps/2` input samples, see
 * hl_resampler_delay). hl_resampler_flush() pads with zeros and emits every output with
 * t_n < n_in, so a whole stream gives exactly ceil(n_in * out / in) samples.
 *
 * Positions are tracked as integers (integer index + phase numerator), never as a float
 * clock, and each output is the same dot product whatever the chunking, so the output is
 * byte-identical however the input is cut.
 */
#define HL_RATE_MIN 1000
#define HL_RATE_MAX 384000

typedef struct hl_resampler_plan {
    uint32_t in_rate, out_rate;
    uint32_t phases;     /* L = out / gcd */
    uint32_t step;       /* M = in / gcd: input advance per output, in 1/L input samples */
    uint32_t ntaps;      /* taps per phase (even, multiple of 8); 1 for passthrough */
    uint32_t half;       /* ntaps / 2 */
    double cutoff;       /* -6 dB point, Hz */
    double pass_hz, stop_hz, atten_db, beta;
    int passthrough;     /* in_rate == out_rate */
} hl_resampler_plan;

/* Fill *plan for the pair. Returns HL_OK or HL_EINVAL. */
int hl_resampler_plan_init(hl_resampler_plan *plan, uint32_t in_rate, uint32_t out_rate);

/* Number of floats hl_resampler_design writes: phases * ntaps. */
size_t hl_resampler_table_size(const hl_resampler_plan *plan);

/* Write the polyphase table (phase-major: phase p's taps at taps[p * ntaps]). */
int hl_resampler_design(const hl_resampler_plan *plan, float *taps);

/* Streaming state; the caller owns it, the table and the history buffer. */
typedef struct hl_resampler {
    hl_resampler_plan plan;
    const float *taps;    /* plan.phases * plan.ntaps, read-only, may be shared */
    float *hist;          /* caller-owned history, hist_cap floats */
    size_t hist_cap;      /* >= hl_resampler_hist_min(plan) */
    size_t hist_len;      /* valid samples in hist */
    size_t pos;           /* hist index of tap 0 for the next output */
    size_t real_end;      /* hist index one past the last real (non-padding) sample */
    uint32_t frac;        /* phase (0..L-1) of the next output */
    uint32_t step_int, step_frac; /* M / L, M % L */
} hl_resampler;

/* Minimum history capacity for a plan (ntaps + a working block). */
size_t hl_resampler_hist_min(const hl_resampler_plan *plan);

/* Bind plan + table + history and reset. Returns HL_OK or HL_EINVAL. */
int hl_resampler_init(hl_resampler *rs, const hl_resampler_plan *plan, const float *taps,
                      float *hist, size_t hist_cap);

/* Drop all history: the next sample is the start of a new stream. */
void hl_resampler_reset(hl_resampler *rs);

/* Upper bound of the outputs that process(n_in) or a following flush can produce. */
size_t hl_resampler_max_out(const hl_resampler *rs, size_t n_in);

/* Exact number of outputs process(n_in) will return, and that flush() will return now. */
size_t hl_resampler_out_count(const hl_resampler *rs, size_t n_in);
size_t hl_resampler_flush_count(const hl_resampler *rs);

/* Feed n int16 samples (s16) or n floats multiplied by `scale` (f32; pass 32768.0f for
 * +-1.0 float PCM). Writes at most out_cap int16 samples and returns how many, or HL_ENOSPC
 * (nothing consumed) when out_cap < hl_resampler_max_out(rs, n). s16le reads n little-endian
 * byte pairs at any alignment. */
ptrdiff_t hl_resampler_process_s16(hl_resampler *rs, const int16_t *restrict in, size_t n,
                                   int16_t *restrict out, size_t out_cap);
ptrdiff_t hl_resampler_process_s16le(hl_resampler *rs, const uint8_t *restrict in, size_t n,
                                     int16_t *restrict out, size_t out_cap);
ptrdiff_t hl_resampler_process_f32(hl_resampler *rs, const float *restrict in, size_t n,
                                   float scale, int16_t *restrict out, size_t out_cap);

/* End of stream: emit the tail (zero-padded look-ahead) and reset for a new stream. */
ptrdiff_t hl_resampler_flush(hl_resampler *rs, int16_t *restrict out, size_t out_cap);

/* Look-ahead latency in input samples (ntaps/2; 0 for passthrough). */
double hl_resampler_delay(const hl_resampler_plan *plan);

#ifdef __cplusplus
}
#endif
#endif /* HOTLINE_KERNELS_H */
