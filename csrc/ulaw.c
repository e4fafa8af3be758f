/*
 * G.711 µ-law / A-law kernels, bit-exact with the Sun Microsystems g711.c coder that
 * CPython's audioop uses (lin2ulaw, ulaw2lin, alaw2lin).
 */
#include <math.h>
#include <string.h>

#include "hotline_kernels.h"

#define ULAW_BIAS 0x84  /* 132: bias added before the segment search (full 16-bit scale) */
#define ULAW_CLIP 8159  /* magnitude clip in the 14-bit domain */

/* Segment of a biased 14-bit magnitude v in [33, 8192]: the smallest s with v <= (64 << s) - 1;
 * 8 means "out of range" (only v == 8192), which encodes like the largest code. */
static inline int seg_of(int v)
{
    unsigned t = (unsigned)v >> 6;
#if defined(__GNUC__) || defined(__clang__)
    return t ? 32 - __builtin_clz(t) : 0;
#else
    int s = 0;
    while (t) {
        s++;
        t >>= 1;
    }
    return s;
#endif
}

static inline uint8_t ulaw_enc(int16_t sample)
{
    /* audioop: st_14linear2ulaw(sample >> 2); the shift is arithmetic, so -1 stays -1. */
    int v = (int)sample >> 2;
    int mask;
    if (v < 0) {
        v = -v;
        mask = 0x7F;
    } else {
        mask = 0xFF;
    }
    if (v > ULAW_CLIP)
        v = ULAW_CLIP;
    v += ULAW_BIAS >> 2;
    int seg = seg_of(v);
    if (seg >= 8)
        return (uint8_t)(0x7F ^ mask);
    return (uint8_t)(((seg << 4) | ((v >> (seg + 1)) & 0xF)) ^ mask);
}

static inline int16_t ulaw_dec(uint8_t code)
{
    unsigned u = (uint8_t)~code;
    int t = (int)(((u & 0x0F) << 3) + ULAW_BIAS);
    t <<= (u & 0x70) >> 4;
    return (int16_t)((u & 0x80) ? (ULAW_BIAS - t) : (t - ULAW_BIAS));
}

static inline int16_t alaw_dec(uint8_t code)
{
    unsigned a = code ^ 0x55u;
    int t = (int)((a & 0x0F) << 4);
    int seg = (int)((a & 0x70) >> 4);
    switch (seg) {
    case 0:
        t += 8;
        break;
    case 1:
        t += 0x108;
        break;
    default:
        t += 0x108;
        t <<= seg - 1;
    }
    return (int16_t)((a & 0x80) ? t : -t);
}

uint8_t hl_ulaw_encode1(int16_t sample) { return ulaw_enc(sample); }
int16_t hl_ulaw_decode1(uint8_t code) { return ulaw_dec(code); }
int16_t hl_alaw_decode1(uint8_t code) { return alaw_dec(code); }

size_t hl_ulaw_encode(const int16_t *restrict pcm, size_t n, uint8_t *restrict out)
{
    for (size_t i = 0; i < n; i++)
        out[i] = ulaw_enc(pcm[i]);
    return n;
}

size_t hl_ulaw_encode_s16le(const uint8_t *restrict pcm, size_t n, uint8_t *restrict out)
{
    for (size_t i = 0; i < n; i++)
        out[i] = ulaw_enc((int16_t)(uint16_t)(pcm[2 * i] | ((unsigned)pcm[2 * i + 1] << 8)));
    return n;
}

size_t hl_ulaw_decode(const uint8_t *restrict ulaw, size_t n, int16_t *restrict out)
{
    for (size_t i = 0; i < n; i++)
        out[i] = ulaw_dec(ulaw[i]);
    return n;
}

size_t hl_alaw_to_ulaw(const uint8_t *alaw, size_t n, uint8_t *out)
{
    /* Per byte rather than a lazily built table: no global state to initialise (thread-safe),
     * and a few integer ops per byte is far below the cost of anything around it. */
    for (size_t i = 0; i < n; i++)
        out[i] = ulaw_enc(alaw_dec(alaw[i]));
    return n;
}

void hl_ulaw_frame_stats(const uint8_t *restrict ulaw, size_t n, double *rms_dbfs, double *zcr)
{
    double sumsq = 0.0;
    size_t crossings = 0;
    int prev_neg = 0;
    for (size_t i = 0; i < n; i++) {
        int s = ulaw_dec(ulaw[i]);
        int neg = s < 0;
        sumsq += (double)s * (double)s;
        if (i > 0 && neg != prev_neg)
            crossings++;
        prev_neg = neg;
    }
    double db = HL_DBFS_FLOOR;
    if (n > 0 && sumsq > 0.0) {
        db = 10.0 * log10(sumsq / (double)n) - 20.0 * log10(32768.0);
        if (db < HL_DBFS_FLOOR)
            db = HL_DBFS_FLOOR;
    }
    *rms_dbfs = db;
    *zcr = n >= 2 ? (double)crossings / (double)(n - 1) : 0.0;
}

size_t hl_f32_to_s16(const float *restrict in, size_t n, float scale, int16_t *restrict out)
{
    for (size_t i = 0; i < n; i++) {
        float v = in[i] * scale;
        v = v == v ? v : 0.f; /* NaN -> 0, so the conversion below is always defined */
        v = v > 32767.f ? 32767.f : v;
        v = v < -32768.f ? -32768.f : v;
        /* round half to even like lrintf(), but vectorisable: adding and subtracting 1.5 * 2^23
         * leaves the nearest integer for |v| < 2^22 (exact without -ffast-math) */
        v = (v + 12582912.0f) - 12582912.0f;
        out[i] = (int16_t)(int32_t)v;
    }
    return n;
}
