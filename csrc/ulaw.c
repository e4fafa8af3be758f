/*
 * G.711 µ-law / A-law kernels, bit-exact with the Sun Microsystems g711.c coder that
 * CPython's audioop uses (lin2ulaw, ulaw2lin, alaw2lin).
 */
#include <math.h>
#include <string.h>

#include "hl_round.h"
#include "hotline_kernels.h"

#define ULAW_BIAS 0x84  /* 132: bias added before the segment search (full 16-bit scale) */
#define ULAW_CLIP 8159  /* magnitude clip in the 14-bit domain */

static inline uint8_t ulaw_enc(int16_t sample)
{
    /* audioop: st_14linear2ulaw(sample >> 2); the shift is arithmetic, so -1 stays -1.
     * Written without branches so that loops over it vectorise: the segment is the position
     * of the leading one of the biased magnitude, read from the exponent of its float value,
     * and the 4 mantissa bits are the float's top mantissa bits. */
    int32_t v = (int32_t)sample >> 2;
    int32_t neg = v < 0;
    int32_t mag = neg ? -v : v;
    mag = mag > ULAW_CLIP ? ULAW_CLIP : mag;
    mag += ULAW_BIAS >> 2; /* 33 .. 8192 */
    float f = (float)mag;  /* exact */
    uint32_t bits;
    memcpy(&bits, &f, sizeof bits);
    int32_t seg = (int32_t)(bits >> 23) - 127 - 5; /* floor(log2(mag)) - 5 */
    int32_t mant = (int32_t)(bits >> 19) & 0xF;
    int32_t small = mag < 64; /* segment 0: no implicit leading one to drop */
    seg = small ? 0 : seg;
    mant = small ? (mag >> 1) & 0xF : mant;
    int32_t over = seg > 7; /* only 8192: codes like the largest magnitude */
    seg = over ? 7 : seg;
    mant = over ? 0xF : mant;
    return (uint8_t)(((seg << 4) | mant) ^ (neg ? 0x7F : 0xFF));
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

/* Windows up to this many samples are decoded once into a stack buffer; longer ones are
 * decoded on the fly (a table-free shift and add per sample, same sums, same order). */
#define HL_PERIODICITY_STACK 1024

static inline double periodicity_sample(const uint8_t *restrict ulaw, const double *x, size_t i,
                                        double mean)
{
    return x ? x[i] : (double)ulaw_dec(ulaw[i]) - mean;
}

double hl_ulaw_periodicity(const uint8_t *restrict ulaw, size_t n, size_t min_lag,
                           size_t max_lag)
{
    if (n <= max_lag || min_lag < 1 || min_lag > max_lag)
        return 0.0;
    double mean = 0.0;
    for (size_t i = 0; i < n; i++)
        mean += (double)ulaw_dec(ulaw[i]);
    mean /= (double)n;
    double buf[HL_PERIODICITY_STACK];
    const double *x = NULL;
    if (n <= HL_PERIODICITY_STACK) {
        for (size_t i = 0; i < n; i++)
            buf[i] = (double)ulaw_dec(ulaw[i]) - mean;
        x = buf;
    }
    size_t m = n - max_lag;
    double ea = 0.0;
    for (size_t i = 0; i < m; i++) {
        double a = periodicity_sample(ulaw, x, i, mean);
        ea += a * a;
    }
    double best = 0.0;
    for (size_t lag = min_lag; lag <= max_lag; lag++) {
        double ab = 0.0, eb = 0.0;
        for (size_t i = 0; i < m; i++) {
            double a = periodicity_sample(ulaw, x, i, mean);
            double b = periodicity_sample(ulaw, x, i + lag, mean);
            ab += a * b;
            eb += b * b;
        }
        if (ea > 0.0 && eb > 0.0) {
            double r = ab / sqrt(ea * eb);
            if (r > best)
                best = r;
        }
    }
    return best;
}

size_t hl_f32_to_s16(const float *restrict in, size_t n, float scale, int16_t *restrict out)
{
    for (size_t i = 0; i < n; i++) {
        out[i] = hl_round_s16(in[i] * scale); /* the kernels' one rounding (hl_round.h) */
    }
    return n;
}
