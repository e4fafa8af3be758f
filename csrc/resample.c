/*
 * Streaming rational resampler: polyphase Kaiser-windowed sinc, float taps, int16 out, one or
 * two stages. See hotline_kernels.h for the time-alignment contract.
 */
#include <math.h>
#include <string.h>

#include "hl_round.h"
#include "hotline_kernels.h"

/* Filter design, relative to the lower Nyquist frequency nyq = min(in, out) / 2: passband to
 * 0.913 nyq, stopband from nyq itself, 75 dB Kaiser design attenuation. To 8 kHz that is flat to
 * 3652 Hz and nothing folds back (measured: >= 84 dB down for tones above 4.4 kHz).
 *
 * Why these numbers (measured on eSpeak speech against soxr VHQ, which uses the same 0.913 / 1.0
 * band edges): a stopband edge above nyq (e.g. 1.075) lets 4.0-4.3 kHz fold into 3.7-4.0 kHz and
 * costs 10 dB of SNR against the reference (30.8 dB); 0.90/1.0 gives 41 dB before and 36.3 dB
 * after µ-law; 0.913/1.0 gives 45.5 dB before and 40.1 dB after µ-law. 80 or 85 dB attenuation
 * buys < 1 dB more for 7-15% more taps. Override at build time for experiments. */
#ifndef HL_PASS_FRAC
#define HL_PASS_FRAC 0.913
#endif
#ifndef HL_STOP_FRAC
#define HL_STOP_FRAC 1.0
#endif
#ifndef HL_ATTEN_DB
#define HL_ATTEN_DB 75.0
#endif
/* The pre-decimation stage is short, so it gets more attenuation for little cost: whatever it
 * lets through folds straight into the passband. */
#ifndef HL_ATTEN1_DB
#define HL_ATTEN1_DB 90.0
#endif
/* Two stages when in/D >= HL_STAGE_MARGIN * out for an integer D >= 2 dividing in. */
#ifndef HL_STAGE_MARGIN
#define HL_STAGE_MARGIN 1.35
#endif
#define HL_MAX_PHASES 2048u
#define HL_BLOCK 4096u /* history working block, samples */
#define HL_PI 3.14159265358979323846
#define HL_LANES 8u /* ntaps is a multiple of this (one 8-float vector) */

static uint32_t gcd_u32(uint32_t a, uint32_t b)
{
    while (b) {
        uint32_t t = a % b;
        a = b;
        b = t;
    }
    return a;
}

/* ------------------------------------------------------------------------------ design */

static int stage_plan(hl_stage_plan *sp, uint32_t in_rate, uint32_t out_rate, double pass_hz,
                      double stop_hz, double a)
{
    memset(sp, 0, sizeof *sp);
    uint32_t g = gcd_u32(in_rate, out_rate);
    sp->in_rate = in_rate;
    sp->out_rate = out_rate;
    sp->phases = out_rate / g;
    sp->step = in_rate / g;
    if (in_rate == out_rate) {
        sp->passthrough = 1;
        sp->ntaps = 1;
        return HL_OK;
    }
    if (sp->phases > HL_MAX_PHASES)
        return HL_EINVAL;
    sp->atten_db = a;
    sp->pass_hz = pass_hz;
    sp->stop_hz = stop_hz;
    sp->cutoff_hz = 0.5 * (pass_hz + stop_hz);
    sp->beta = a > 50.0 ? 0.1102 * (a - 8.7) : 0.5842 * pow(a - 21.0, 0.4) + 0.07886 * (a - 21.0);
    /* Kaiser's length estimate, in input samples (each branch runs at the input rate). */
    double dw = 2.0 * HL_PI * (stop_hz - pass_hz) / (double)in_rate;
    uint32_t n = (uint32_t)ceil((a - 7.95) / (2.285 * dw) + 1.0);
    n = (n + HL_LANES - 1u) / HL_LANES * HL_LANES; /* whole blocks of partial sums, even */
    sp->ntaps = n;
    sp->half = n / 2u;
    if ((uint64_t)sp->phases * n > HL_RESAMPLER_MAX_TABLE)
        return HL_E2BIG;
    return HL_OK;
}

int hl_resampler_plan_init(hl_resampler_plan *plan, uint32_t in_rate, uint32_t out_rate)
{
    if (!plan || in_rate < HL_RATE_MIN || in_rate > HL_RATE_MAX || out_rate < HL_RATE_MIN ||
        out_rate > HL_RATE_MAX)
        return HL_EINVAL;
    memset(plan, 0, sizeof *plan);
    plan->in_rate = in_rate;
    plan->out_rate = out_rate;
    double nyq = 0.5 * (double)(in_rate < out_rate ? in_rate : out_rate);
    double pass = HL_PASS_FRAC * nyq, stop = HL_STOP_FRAC * nyq;
    uint32_t d = 0;
    if (in_rate > out_rate) {
        for (uint32_t k = 2; (double)in_rate / k >= HL_STAGE_MARGIN * out_rate; k++)
            if (in_rate % k == 0)
                d = k;
    }
    if (d) {
        /* stage 1 keeps 0..pass and stops whatever would fold onto 0..stop at in/d */
        uint32_t mid = in_rate / d;
        plan->nstages = 2;
        int rc = stage_plan(&plan->stage[0], in_rate, mid, pass, (double)mid - stop, HL_ATTEN1_DB);
        if (rc == HL_OK)
            rc = stage_plan(&plan->stage[1], mid, out_rate, pass, stop, HL_ATTEN_DB);
        if (rc != HL_OK)
            return rc;
    } else {
        plan->nstages = 1;
        int rc = stage_plan(&plan->stage[0], in_rate, out_rate, pass, stop, HL_ATTEN_DB);
        if (rc != HL_OK)
            return rc;
    }
    /* checked before anything is designed: the size follows from the plan alone */
    if (hl_resampler_table_size(plan) > HL_RESAMPLER_MAX_TABLE)
        return HL_E2BIG;
    return HL_OK;
}

static size_t stage_table_size(const hl_stage_plan *sp)
{
    return (size_t)sp->phases * sp->ntaps;
}

size_t hl_resampler_table_size(const hl_resampler_plan *plan)
{
    size_t n = 0;
    for (uint32_t s = 0; s < plan->nstages; s++)
        n += stage_table_size(&plan->stage[s]);
    return n;
}

/* Modified Bessel function of the first kind, order 0 (power series; converges fast for the
 * beta values used here). */
static double bessel_i0(double x)
{
    double sum = 1.0, term = 1.0, q = 0.25 * x * x;
    for (int k = 1; k < 500; k++) {
        term *= q / ((double)k * (double)k);
        sum += term;
        if (term < sum * 1e-17)
            break;
    }
    return sum;
}

static void stage_design(const hl_stage_plan *sp, float *taps)
{
    if (sp->passthrough) {
        taps[0] = 1.0f;
        return;
    }
    const uint32_t L = sp->phases, K = sp->ntaps, half = sp->half;
    const double fc = sp->cutoff_hz / (double)sp->in_rate; /* cycles per input sample */
    const double i0b = bessel_i0(sp->beta);
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
                double w = r * r < 1.0 ? bessel_i0(sp->beta * sqrt(1.0 - r * r)) / i0b : 0.0;
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
}

int hl_resampler_design(const hl_resampler_plan *plan, float *taps)
{
    if (!plan || !taps)
        return HL_EINVAL;
    for (uint32_t s = 0; s < plan->nstages; s++) {
        stage_design(&plan->stage[s], taps);
        taps += stage_table_size(&plan->stage[s]);
    }
    return HL_OK;
}

static size_t stage_hist_cap(const hl_stage_plan *sp)
{
    return sp->passthrough ? 0 : (size_t)sp->ntaps + HL_BLOCK;
}

size_t hl_resampler_work_size(const hl_resampler_plan *plan)
{
    size_t n = 0;
    for (uint32_t s = 0; s < plan->nstages; s++)
        n += stage_hist_cap(&plan->stage[s]);
    if (plan->nstages > 1)
        n += stage_hist_cap(&plan->stage[0]); /* hand-off: at most one stage-1 history's worth */
    return n;
}

double hl_resampler_delay(const hl_resampler_plan *plan)
{
    /* look-ahead of stage 2 counts in stage-1 output samples: scale it to input samples */
    double d = 0.0, scale = 1.0;
    for (uint32_t s = 0; s < plan->nstages; s++) {
        const hl_stage_plan *sp = &plan->stage[s];
        if (!sp->passthrough)
            d += scale * (double)sp->half;
        scale *= (double)sp->step / (double)sp->phases;
    }
    return d;
}

/* --------------------------------------------------------------------------- one stage */

static void stage_reset(hl_stage *st)
{
    /* half-1 zeros of history: output 0 is centred on input 0 (see the header). */
    size_t pre = st->plan.passthrough ? 0 : (size_t)st->plan.half - 1u;
    if (pre)
        memset(st->hist, 0, pre * sizeof(float));
    st->hist_len = pre;
    st->real_end = pre;
    st->pos = 0;
    st->frac = 0;
}

/* Outputs with pos_j + ntaps <= hist_len + add, where pos_j = pos + floor((frac + j M) / L). */
static uint64_t stage_count_process(const hl_stage *st, uint64_t add)
{
    if (st->plan.passthrough)
        return add;
    uint64_t len = (uint64_t)st->hist_len + add, K = st->plan.ntaps;
    if (len < (uint64_t)st->pos + K)
        return 0;
    uint64_t d = len - K - st->pos, L = st->plan.phases, M = st->plan.step;
    return ((d + 1u) * L - st->frac + M - 1u) / M;
}

/* Outputs still due when `add` more real samples arrive and the stage is then flushed: those
 * with pos_j + half - 1 < real_end + add. */
static uint64_t stage_count_flush(const hl_stage *st, uint64_t add)
{
    if (st->plan.passthrough)
        return add;
    uint64_t start = (uint64_t)st->pos + st->plan.half - 1u, end = (uint64_t)st->real_end + add;
    if (start >= end)
        return 0;
    uint64_t d = end - 1u - start, L = st->plan.phases, M = st->plan.step;
    return ((d + 1u) * L - st->frac + M - 1u) / M;
}

/* Dot product over K taps (K a multiple of 8) with 32 partial sums in a fixed order: four
 * 8-lane accumulators give enough independent chains to hide the add latency, and the same
 * arithmetic happens whatever the chunking or instruction set (GCC lowers an 8-lane vector to
 * one ymm or two xmm registers), so results are bit-identical; no -ffast-math needed. */
#if defined(__GNUC__) || defined(__clang__)
typedef float hl_v8 __attribute__((vector_size(32)));
typedef float hl_v8u __attribute__((vector_size(32), aligned(4))); /* unaligned view */
#define load8(p) (*(const hl_v8u *)(p))

static inline float dot(const float *restrict x, const float *restrict h, size_t K)
{
    hl_v8 a0 = {0}, a1 = {0}, a2 = {0}, a3 = {0};
    size_t k = 0;
    for (; k + 32 <= K; k += 32) {
        a0 += load8(x + k) * load8(h + k);
        a1 += load8(x + k + 8) * load8(h + k + 8);
        a2 += load8(x + k + 16) * load8(h + k + 16);
        a3 += load8(x + k + 24) * load8(h + k + 24);
    }
    for (; k < K; k += 8) /* K % 32 taps left, in whole vectors */
        a0 += load8(x + k) * load8(h + k);
    hl_v8 s = (a0 + a2) + (a1 + a3);
    return ((s[0] + s[4]) + (s[1] + s[5])) + ((s[2] + s[6]) + (s[3] + s[7]));
}
#else
static inline float dot(const float *restrict x, const float *restrict h, size_t K)
{
    float a[32] = {0};
    size_t k = 0;
    for (; k + 32 <= K; k += 32)
        for (unsigned j = 0; j < 32; j++)
            a[j] += x[k + j] * h[k + j];
    for (; k < K; k += 8)
        for (unsigned j = 0; j < 8; j++)
            a[j] += x[k + j] * h[k + j];
    float s[8];
    for (unsigned j = 0; j < 8; j++)
        s[j] = (a[j] + a[j + 16]) + (a[j + 8] + a[j + 24]);
    return ((s[0] + s[4]) + (s[1] + s[5])) + ((s[2] + s[6]) + (s[3] + s[7]));
}
#endif

static inline int16_t to_s16(float v)
{
    return hl_round_s16(v); /* the kernels' one rounding (hl_round.h) */
}

/* On x86-64 the hot loops are compiled twice, baseline (SSE2) and AVX2, and picked at load time
 * (GCC/clang function multi-versioning through an ifunc). The partial sums in dot() are the
 * same arithmetic in either version (4 ymm or 8 xmm registers, no FMA contraction: setup.py
 * passes -ffp-contract=off), so the output is bit-identical on every x86-64 machine. */
#if defined(__x86_64__) && defined(__ELF__) && !defined(HL_NO_MULTIVERSION) && defined(__has_attribute)
#if __has_attribute(target_clones)
#define HL_MULTIVERSION __attribute__((target_clones("avx2", "default")))
#endif
#endif
#ifndef HL_MULTIVERSION
#define HL_MULTIVERSION
#endif

/* Emit every output whose taps are all in the history; when flushing, stop at the first
 * output that lies at or after the end of the real input. Float output (stage 1) or int16.
 * Never more than cap: the callers size cap exactly, the check is defence in depth (a stopped
 * run leaves its state consistent and the outputs pending). */
#define STAGE_RUN_BODY(STORE)                                                                  \
    const size_t K = st->plan.ntaps, half = st->plan.half;                                    \
    const uint32_t L = st->plan.phases, si = st->step_int, sf = st->step_frac;                \
    const float *restrict taps = st->taps;                                                    \
    const float *restrict hist = st->hist;                                                    \
    const size_t len = st->hist_len, real_end = st->real_end;                                 \
    size_t pos = st->pos, n = 0;                                                              \
    uint32_t frac = st->frac;                                                                 \
    while (pos + K <= len && n < cap) {                                                       \
        if (flushing && pos + half - 1u >= real_end)                                          \
            break;                                                                            \
        float v = dot(hist + pos, taps + (size_t)frac * K, K);                                \
        STORE;                                                                                \
        n++;                                                                                  \
        pos += si;                                                                            \
        frac += sf;                                                                           \
        if (frac >= L) {                                                                      \
            frac -= L;                                                                        \
            pos++;                                                                            \
        }                                                                                     \
    }                                                                                         \
    st->pos = pos;                                                                            \
    st->frac = frac;                                                                          \
    return n;

HL_MULTIVERSION
static size_t stage_run_s(hl_stage *st, int16_t *restrict out, size_t cap, int flushing)
{
    STAGE_RUN_BODY(out[n] = to_s16(v))
}

HL_MULTIVERSION
static size_t stage_run_f(hl_stage *st, float *restrict out, size_t cap, int flushing)
{
    STAGE_RUN_BODY(out[n] = v)
}

/* Drop history that no future output needs. */
static void stage_compact(hl_stage *st)
{
    size_t drop = st->pos < st->hist_len ? st->pos : st->hist_len;
    if (!drop)
        return;
    memmove(st->hist, st->hist + drop, (st->hist_len - drop) * sizeof(float));
    st->hist_len -= drop;
    st->pos -= drop;
    st->real_end = st->real_end > drop ? st->real_end - drop : 0;
}

/* Free room in the history: compact when less than `want` (or a working block) is left. */
static size_t stage_room(hl_stage *st, size_t want)
{
    size_t room = st->hist_cap - st->hist_len;
    if (room < want && room < HL_BLOCK) {
        stage_compact(st);
        room = st->hist_cap - st->hist_len;
    }
    return room;
}

/* Flush one stage: zero-pad the look-ahead and emit the remaining outputs (to fout when not
 * NULL, else sout); then reset it. */
static size_t stage_flush(hl_stage *st, float *restrict fout, int16_t *restrict sout, size_t cap)
{
    size_t produced = 0;
    for (;;) {
        /* the last output has time < real_end, so it needs history up to real_end + half */
        size_t need = st->real_end + st->plan.half;
        if (st->hist_len < need) {
            size_t take = stage_room(st, need - st->hist_len);
            need = st->real_end + st->plan.half; /* compaction may have moved real_end */
            if (take > need - st->hist_len)
                take = need - st->hist_len;
            memset(st->hist + st->hist_len, 0, take * sizeof(float));
            st->hist_len += take;
        }
        produced += fout ? stage_run_f(st, fout + produced, cap - produced, 1)
                         : stage_run_s(st, sout + produced, cap - produced, 1);
        if (st->hist_len >= st->real_end + st->plan.half ||
            st->pos + st->plan.half - 1u >= st->real_end || produced == cap)
            break;
    }
    stage_reset(st);
    return produced;
}

/* --------------------------------------------------------------------------- the chain */

void hl_resampler_reset(hl_resampler *rs)
{
    for (uint32_t s = 0; s < rs->plan.nstages; s++)
        stage_reset(&rs->stage[s]);
}

int hl_resampler_init(hl_resampler *rs, const hl_resampler_plan *plan, const float *taps,
                      float *work, size_t work_cap)
{
    if (!rs || !plan || !taps || plan->nstages < 1 || plan->nstages > HL_MAX_STAGES)
        return HL_EINVAL;
    size_t need = hl_resampler_work_size(plan);
    if (need && (!work || work_cap < need))
        return HL_EINVAL;
    memset(rs, 0, sizeof *rs);
    rs->plan = *plan;
    for (uint32_t s = 0; s < plan->nstages; s++) {
        hl_stage *st = &rs->stage[s];
        st->plan = plan->stage[s];
        st->taps = taps;
        taps += stage_table_size(&st->plan);
        st->hist_cap = stage_hist_cap(&st->plan);
        st->hist = st->hist_cap ? work : NULL;
        work += st->hist_cap;
        st->step_int = st->plan.step / st->plan.phases;
        st->step_frac = st->plan.step % st->plan.phases;
    }
    if (plan->nstages > 1) {
        rs->mid = work;
        rs->mid_cap = stage_hist_cap(&plan->stage[0]);
    }
    hl_resampler_reset(rs);
    return HL_OK;
}

size_t hl_resampler_out_count(const hl_resampler *rs, size_t n_in)
{
    uint64_t n = n_in;
    for (uint32_t s = 0; s < rs->plan.nstages; s++)
        n = stage_count_process(&rs->stage[s], n);
    return (size_t)n;
}

size_t hl_resampler_flush_count(const hl_resampler *rs)
{
    uint64_t n = 0;
    for (uint32_t s = 0; s < rs->plan.nstages; s++)
        n = stage_count_flush(&rs->stage[s], n);
    return (size_t)n;
}

size_t hl_resampler_max_out(const hl_resampler *rs, size_t n_in)
{
    uint64_t n = n_in;
    for (uint32_t s = 0; s < rs->plan.nstages; s++)
        n = stage_count_flush(&rs->stage[s], n);
    return (size_t)n + 2u;
}

/* Stage 2 of a chain: take stage 1's floats (already scaled) and emit int16. */
static size_t chain_tail(hl_stage *st, const float *restrict x, size_t n, int16_t *restrict out,
                         size_t cap)
{
    size_t produced = 0;
    while (n) {
        size_t take = stage_room(st, n);
        if (take > n)
            take = n;
        if (!take) /* only if cap ran out (a sizing bug): never spin */
            break;
        memcpy(st->hist + st->hist_len, x, take * sizeof(float));
        st->hist_len += take;
        st->real_end = st->hist_len;
        x += take;
        n -= take;
        produced += stage_run_s(st, out + produced, cap - produced, 0);
    }
    return produced;
}

/* The input loop, per sample type: fill stage 1's history a block at a time, run it, and pass
 * its floats to stage 2 when there is one. */
#define PROCESS_BODY(PASSTHROUGH, LOAD, STRIDE)                                                \
    if (out_cap < hl_resampler_out_count(rs, n))                                              \
        return HL_ENOSPC;                                                                     \
    hl_stage *s1 = &rs->stage[0];                                                             \
    if (s1->plan.passthrough) {                                                               \
        PASSTHROUGH;                                                                          \
        return (ptrdiff_t)n;                                                                  \
    }                                                                                         \
    size_t produced = 0;                                                                      \
    while (n) {                                                                               \
        size_t take = stage_room(s1, n);                                                      \
        if (take > n)                                                                         \
            take = n;                                                                         \
        if (!take) /* only if out_cap ran out (a sizing bug): never spin */                   \
            break;                                                                            \
        float *restrict dst = s1->hist + s1->hist_len;                                        \
        for (size_t i = 0; i < take; i++)                                                     \
            dst[i] = LOAD;                                                                    \
        s1->hist_len += take;                                                                 \
        s1->real_end = s1->hist_len;                                                          \
        in += (STRIDE) * take;                                                                \
        n -= take;                                                                            \
        if (rs->plan.nstages == 1) {                                                          \
            produced += stage_run_s(s1, out + produced, out_cap - produced, 0);               \
        } else {                                                                              \
            size_t m = stage_run_f(s1, rs->mid, rs->mid_cap, 0);                              \
            produced += chain_tail(&rs->stage[1], rs->mid, m, out + produced,                 \
                                   out_cap - produced);                                       \
        }                                                                                     \
    }                                                                                         \
    return (ptrdiff_t)produced;

#define LE16(p, i) ((int16_t)(uint16_t)((p)[2 * (i)] | ((unsigned)(p)[2 * (i) + 1] << 8)))

ptrdiff_t hl_resampler_process_s16(hl_resampler *rs, const int16_t *restrict in, size_t n,
                                   int16_t *restrict out, size_t out_cap)
{
    PROCESS_BODY(if (n) memcpy(out, in, n * sizeof(int16_t)), (float)in[i], 1)
}

ptrdiff_t hl_resampler_process_s16le(hl_resampler *rs, const uint8_t *restrict in, size_t n,
                                     int16_t *restrict out, size_t out_cap)
{
    PROCESS_BODY(for (size_t i = 0; i < n; i++) out[i] = LE16(in, i), (float)LE16(in, i), 2)
}

ptrdiff_t hl_resampler_process_f32(hl_resampler *rs, const float *restrict in, size_t n,
                                   float scale, int16_t *restrict out, size_t out_cap)
{
    PROCESS_BODY(hl_f32_to_s16(in, n, scale, out), in[i] * scale, 1)
}

ptrdiff_t hl_resampler_flush(hl_resampler *rs, int16_t *restrict out, size_t out_cap)
{
    if (out_cap < hl_resampler_flush_count(rs))
        return HL_ENOSPC;
    hl_stage *s1 = &rs->stage[0];
    if (s1->plan.passthrough)
        return 0;
    if (rs->plan.nstages == 1)
        return (ptrdiff_t)stage_flush(s1, NULL, out, out_cap);
    /* stage 1's pending outputs are fewer than ntaps/D + 1: they fit the hand-off buffer */
    size_t m = stage_flush(s1, rs->mid, NULL, rs->mid_cap);
    size_t produced = chain_tail(&rs->stage[1], rs->mid, m, out, out_cap);
    produced += stage_flush(&rs->stage[1], NULL, out + produced, out_cap - produced);
    return (ptrdiff_t)produced;
}
