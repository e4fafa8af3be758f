/*
 * Streaming rational resampler: polyphase Kaiser-windowed sinc, float taps, int16 out.
 * See hotline_kernels.h for the time-alignment contract.
 */
#include <math.h>
#include <string.h>

#include "hotline_kernels.h"

/* Filter design, relative to the lower Nyquist frequency nyq = min(in, out) / 2.
 * To 8 kHz: passband to 3600 Hz (telephone band 300-3400 Hz flat), stopband from 4300 Hz,
 * 85 dB design attenuation (the target is >= 70 dB above 4.4 kHz). The band 4.0-4.3 kHz is
 * attenuated but may alias into 3.7-4.0 kHz, above the telephone band. */
#define HL_PASS_FRAC 0.90
#define HL_STOP_FRAC 1.075
#define HL_ATTEN_DB 85.0
#define HL_MAX_PHASES 2048u
#define HL_BLOCK 4096u /* history working block, samples */
#define HL_PI 3.14159265358979323846

static uint32_t gcd_u32(uint32_t a, uint32_t b)
{
    while (b) {
        uint32_t t = a % b;
        a = b;
        b = t;
    }
    return a;
}

int hl_resampler_plan_init(hl_resampler_plan *plan, uint32_t in_rate, uint32_t out_rate)
{
    if (!plan || in_rate < HL_RATE_MIN || in_rate > HL_RATE_MAX || out_rate < HL_RATE_MIN ||
        out_rate > HL_RATE_MAX)
        return HL_EINVAL;
    memset(plan, 0, sizeof *plan);
    uint32_t g = gcd_u32(in_rate, out_rate);
    plan->in_rate = in_rate;
    plan->out_rate = out_rate;
    plan->phases = out_rate / g;
    plan->step = in_rate / g;
    if (in_rate == out_rate) {
        plan->passthrough = 1;
        plan->ntaps = 1;
        plan->half = 0;
        return HL_OK;
    }
    if (plan->phases > HL_MAX_PHASES)
        return HL_EINVAL;
    double nyq = 0.5 * (double)(in_rate < out_rate ? in_rate : out_rate);
    double a = HL_ATTEN_DB;
    plan->atten_db = a;
    plan->pass_hz = HL_PASS_FRAC * nyq;
    plan->stop_hz = HL_STOP_FRAC * nyq;
    plan->cutoff = 0.5 * (plan->pass_hz + plan->stop_hz);
    plan->beta = a > 50.0 ? 0.1102 * (a - 8.7) : 0.5842 * pow(a - 21.0, 0.4) + 0.07886 * (a - 21.0);
    /* Kaiser's length estimate, in input samples (the filter runs at the input rate per phase). */
    double dw = 2.0 * HL_PI * (plan->stop_hz - plan->pass_hz) / (double)in_rate;
    double len = (a - 7.95) / (2.285 * dw) + 1.0;
    uint32_t n = (uint32_t)ceil(len);
    n = (n + 7u) & ~7u; /* multiple of 8: whole SIMD blocks, even */
    if (n < 8u)
        n = 8u;
    plan->ntaps = n;
    plan->half = n / 2u;
    return HL_OK;
}

size_t hl_resampler_table_size(const hl_resampler_plan *plan)
{
    return (size_t)plan->phases * plan->ntaps;
}

/* Modified Bessel function of the first kind, order 0 (power series; converges fast for the
 * beta values used here). */
static double bessel_i0(double x)
{
    double sum = 1.0, term = 1.0, q = 0.25 * x * x;
    for (int k = 1; k < 200; k++) {
        term *= q / ((double)k * (double)k);
        sum += term;
        if (term < sum * 1e-17)
            break;
    }
    return sum;
}

int hl_resampler_design(const hl_resampler_plan *plan, float *taps)
{
    if (!plan || !taps)
        return HL_EINVAL;
    if (plan->passthrough) {
        taps[0] = 1.0f;
        return HL_OK;
    }
    const uint32_t L = plan->phases, K = plan->ntaps, half = plan->half;
    const double fc = plan->cutoff / (double)plan->in_rate; /* cycles per input sample */
    const double i0b = bessel_i0(plan->beta);
    for (uint32_t p = 0; p < L; p++) {
        float *h = taps + (size_t)p * K;
        double sum = 0.0;
        /* two passes (sum, then normalised values) instead of a scratch array: K can be large
         * and this runs once per rate pair */
        for (int pass = 0; pass < 2; pass++) {
            for (uint32_t k = 0; k < K; k++) {
                /* tap k of phase p weighs input sample (i + k - (half - 1)) for an output at
                 * time i + p/L: tau is its distance from the output instant, in input samples */
                double tau = (double)k - (double)(half - 1u) - (double)p / (double)L;
                double r = tau / (double)half;
                double w = r * r < 1.0 ? bessel_i0(plan->beta * sqrt(1.0 - r * r)) / i0b : 0.0;
                double x = 2.0 * fc * tau;
                double s = x == 0.0 ? 1.0 : sin(HL_PI * x) / (HL_PI * x);
                double v = 2.0 * fc * s * w;
                if (pass == 0)
                    sum += v;
                else
                    h[k] = (float)(v / sum); /* unity DC gain for every phase */
            }
        }
    }
    return HL_OK;
}

size_t hl_resampler_hist_min(const hl_resampler_plan *plan)
{
    return (size_t)plan->ntaps + HL_BLOCK;
}

double hl_resampler_delay(const hl_resampler_plan *plan)
{
    return plan->passthrough ? 0.0 : (double)plan->half;
}

void hl_resampler_reset(hl_resampler *rs)
{
    /* half-1 zeros of history: output 0 is centred on input 0 (see the header). */
    size_t pre = rs->plan.passthrough ? 0 : (size_t)rs->plan.half - 1u;
    if (pre)
        memset(rs->hist, 0, pre * sizeof(float));
    rs->hist_len = pre;
    rs->real_end = pre;
    rs->pos = 0;
    rs->frac = 0;
}

int hl_resampler_init(hl_resampler *rs, const hl_resampler_plan *plan, const float *taps,
                      float *hist, size_t hist_cap)
{
    if (!rs || !plan || !taps || (!plan->passthrough && (!hist || hist_cap < hl_resampler_hist_min(plan))))
        return HL_EINVAL;
    rs->plan = *plan;
    rs->taps = taps;
    rs->hist = hist;
    rs->hist_cap = hist_cap;
    rs->step_int = plan->step / plan->phases;
    rs->step_frac = plan->step % plan->phases;
    hl_resampler_reset(rs);
    return HL_OK;
}

size_t hl_resampler_max_out(const hl_resampler *rs, size_t n_in)
{
    if (rs->plan.passthrough)
        return n_in;
    /* outputs still to come are those whose time lies before the end of real input */
    uint64_t start = (uint64_t)rs->pos + rs->plan.half - 1u;
    uint64_t end = (uint64_t)rs->real_end + n_in;
    if (end <= start)
        return 0;
    uint64_t avail = end - start;
    return (size_t)((avail * rs->plan.phases) / rs->plan.step + 2u);
}

size_t hl_resampler_out_count(const hl_resampler *rs, size_t n_in)
{
    if (rs->plan.passthrough)
        return n_in;
    /* outputs j = 0.. sit at pos + floor((frac + j*M) / L); each needs pos_j + ntaps <= len */
    uint64_t len = (uint64_t)rs->hist_len + n_in, K = rs->plan.ntaps;
    if (len < (uint64_t)rs->pos + K)
        return 0;
    uint64_t d = len - K - rs->pos, L = rs->plan.phases, M = rs->plan.step;
    return (size_t)(((d + 1u) * L - rs->frac + M - 1u) / M);
}

size_t hl_resampler_flush_count(const hl_resampler *rs)
{
    if (rs->plan.passthrough)
        return 0;
    /* outputs still due are those with pos_j + half - 1 < real_end, minus those already out */
    uint64_t start = (uint64_t)rs->pos + rs->plan.half - 1u;
    if (start >= rs->real_end)
        return 0;
    uint64_t d = rs->real_end - 1u - start, L = rs->plan.phases, M = rs->plan.step;
    return (size_t)(((d + 1u) * L - rs->frac + M - 1u) / M);
}

static inline float dot8(const float *restrict x, const float *restrict h, size_t K)
{
    /* Eight independent partial sums in a fixed order: the compiler can keep them in SIMD
     * registers without -ffast-math, and the result does not depend on the chunking. */
    float a0 = 0.f, a1 = 0.f, a2 = 0.f, a3 = 0.f, a4 = 0.f, a5 = 0.f, a6 = 0.f, a7 = 0.f;
    for (size_t k = 0; k < K; k += 8) {
        a0 += x[k + 0] * h[k + 0];
        a1 += x[k + 1] * h[k + 1];
        a2 += x[k + 2] * h[k + 2];
        a3 += x[k + 3] * h[k + 3];
        a4 += x[k + 4] * h[k + 4];
        a5 += x[k + 5] * h[k + 5];
        a6 += x[k + 6] * h[k + 6];
        a7 += x[k + 7] * h[k + 7];
    }
    return ((a0 + a4) + (a1 + a5)) + ((a2 + a6) + (a3 + a7));
}

static inline int16_t to_s16(float v)
{
    v = fminf(fmaxf(v, -32768.0f), 32767.0f);
    return (int16_t)lrintf(v);
}

/* Emit every output whose taps are all in the history; when flushing, stop at the first
 * output that lies at or after the end of the real input. */
static size_t rs_run(hl_resampler *rs, int16_t *restrict out, int flushing)
{
    const size_t K = rs->plan.ntaps, half = rs->plan.half;
    const uint32_t L = rs->plan.phases, si = rs->step_int, sf = rs->step_frac;
    const float *restrict taps = rs->taps;
    const float *restrict hist = rs->hist;
    const size_t len = rs->hist_len, real_end = rs->real_end;
    size_t pos = rs->pos, n = 0;
    uint32_t frac = rs->frac;
    while (pos + K <= len) {
        if (flushing && pos + half - 1u >= real_end)
            break;
        out[n++] = to_s16(dot8(hist + pos, taps + (size_t)frac * K, K));
        pos += si;
        frac += sf;
        if (frac >= L) {
            frac -= L;
            pos++;
        }
    }
    rs->pos = pos;
    rs->frac = frac;
    return n;
}

/* Drop history that no future output needs. */
static void rs_compact(hl_resampler *rs)
{
    size_t drop = rs->pos < rs->hist_len ? rs->pos : rs->hist_len;
    if (!drop)
        return;
    memmove(rs->hist, rs->hist + drop, (rs->hist_len - drop) * sizeof(float));
    rs->hist_len -= drop;
    rs->pos -= drop;
    rs->real_end = rs->real_end > drop ? rs->real_end - drop : 0;
}

/* Make room for at least one working block (or `want` samples if fewer). */
static size_t rs_room(hl_resampler *rs, size_t want)
{
    size_t room = rs->hist_cap - rs->hist_len;
    if (room < want && room < HL_BLOCK) {
        rs_compact(rs);
        room = rs->hist_cap - rs->hist_len;
    }
    return room;
}

ptrdiff_t hl_resampler_process_s16(hl_resampler *rs, const int16_t *restrict in, size_t n,
                                   int16_t *restrict out, size_t out_cap)
{
    if (out_cap < hl_resampler_max_out(rs, n))
        return HL_ENOSPC;
    if (rs->plan.passthrough) {
        if (n)
            memcpy(out, in, n * sizeof(int16_t));
        return (ptrdiff_t)n;
    }
    size_t produced = 0;
    while (n) {
        size_t take = rs_room(rs, n);
        if (take > n)
            take = n;
        float *restrict dst = rs->hist + rs->hist_len;
        for (size_t i = 0; i < take; i++)
            dst[i] = (float)in[i];
        rs->hist_len += take;
        rs->real_end = rs->hist_len;
        in += take;
        n -= take;
        produced += rs_run(rs, out + produced, 0);
    }
    return (ptrdiff_t)produced;
}

ptrdiff_t hl_resampler_process_s16le(hl_resampler *rs, const uint8_t *restrict in, size_t n,
                                     int16_t *restrict out, size_t out_cap)
{
    if (out_cap < hl_resampler_max_out(rs, n))
        return HL_ENOSPC;
    if (rs->plan.passthrough) {
        for (size_t i = 0; i < n; i++)
            out[i] = (int16_t)(uint16_t)(in[2 * i] | ((unsigned)in[2 * i + 1] << 8));
        return (ptrdiff_t)n;
    }
    size_t produced = 0;
    while (n) {
        size_t take = rs_room(rs, n);
        if (take > n)
            take = n;
        float *restrict dst = rs->hist + rs->hist_len;
        for (size_t i = 0; i < take; i++)
            dst[i] = (float)(int16_t)(uint16_t)(in[2 * i] | ((unsigned)in[2 * i + 1] << 8));
        rs->hist_len += take;
        rs->real_end = rs->hist_len;
        in += 2 * take;
        n -= take;
        produced += rs_run(rs, out + produced, 0);
    }
    return (ptrdiff_t)produced;
}

ptrdiff_t hl_resampler_process_f32(hl_resampler *rs, const float *restrict in, size_t n,
                                   float scale, int16_t *restrict out, size_t out_cap)
{
    if (out_cap < hl_resampler_max_out(rs, n))
        return HL_ENOSPC;
    if (rs->plan.passthrough)
        return (ptrdiff_t)hl_f32_to_s16(in, n, scale, out);
    size_t produced = 0;
    while (n) {
        size_t take = rs_room(rs, n);
        if (take > n)
            take = n;
        float *restrict dst = rs->hist + rs->hist_len;
        for (size_t i = 0; i < take; i++)
            dst[i] = in[i] * scale;
        rs->hist_len += take;
        rs->real_end = rs->hist_len;
        in += take;
        n -= take;
        produced += rs_run(rs, out + produced, 0);
    }
    return (ptrdiff_t)produced;
}

ptrdiff_t hl_resampler_flush(hl_resampler *rs, int16_t *restrict out, size_t out_cap)
{
    if (rs->plan.passthrough)
        return 0;
    if (out_cap < hl_resampler_max_out(rs, 0))
        return HL_ENOSPC;
    size_t produced = 0;
    for (;;) {
        /* the last output has time < real_end, so it needs history up to real_end + half */
        size_t need = rs->real_end + rs->plan.half;
        if (rs->hist_len < need) {
            size_t take = rs_room(rs, need - rs->hist_len);
            need = rs->real_end + rs->plan.half; /* compaction may have moved real_end */
            if (take > need - rs->hist_len)
                take = need - rs->hist_len;
            memset(rs->hist + rs->hist_len, 0, take * sizeof(float));
            rs->hist_len += take;
        }
        produced += rs_run(rs, out + produced, 1);
        if (rs->hist_len >= rs->real_end + rs->plan.half || rs->pos + rs->plan.half - 1u >= rs->real_end)
            break;
    }
    hl_resampler_reset(rs);
    return (ptrdiff_t)produced;
}
